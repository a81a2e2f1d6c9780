//! Image references as users type them: `[registry[:port]/]repository[:tag][@sha256:…]`.
//!
//! We parse them ourselves instead of relying on `oci_client::Reference::from_str` because its
//! errors say only "invalid reference format" and its grammar has no bracketed IPv6 hosts
//! (`[::1]:5000/repo`). The rules are docker's (distribution's `reference` package), so a
//! reference means here what it means to `docker pull`: no registry means Docker Hub, a
//! single-component Docker Hub name gets `library/`, no tag and no digest means `latest`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::image::model::sha256_hex;

/// Docker Hub, as docker spells it in references (the API lives at `index.docker.io`).
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &[&str] = &["index.docker.io", "registry-1.docker.io"];
const DEFAULT_TAG: &str = "latest";
/// distribution's limit on the repository path.
const MAX_REPOSITORY_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed image reference. `Display` gives the normalised form (`docker.io/library/busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why a reference could not be parsed; names what was typed and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid image reference `{input}`: {reason} (expected [REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST], \
     e.g. 127.0.0.1:5000/st2packs:1.0 or docker.io/library/busybox:1.36)"
)]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

impl Reference {
    /// Parses a reference with docker's defaults (registry `docker.io`, tag `latest`).
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let fail = |reason: String| ReferenceError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(fail("it is empty".into()));
        }
        if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail(format!("it contains the character {c:?}")));
        }

        let (name_and_tag, digest) = match input.split_once('@') {
            Some((name, digest)) => (name, Some(parse_digest(digest).map_err(fail)?)),
            None => (input, None),
        };
        // A tag is whatever follows the last ':' that comes after the last '/', so the port in
        // `host:5000/repo` is not mistaken for one.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                let tag = &name_and_tag[at + 1..];
                validate_tag(tag).map_err(fail)?;
                (&name_and_tag[..at], Some(tag.to_string()))
            }
            None => (name_and_tag, None),
        };
        if name.is_empty() {
            return Err(fail("the repository name is missing".into()));
        }

        let (registry, path) = split_registry(name);
        let registry = match registry {
            Some(registry) => {
                validate_registry(registry).map_err(fail)?;
                if DOCKER_HUB_LEGACY.contains(&registry) {
                    DOCKER_HUB.to_string()
                } else {
                    registry.to_string()
                }
            }
            None => DOCKER_HUB.to_string(),
        };
        validate_repository(path).map_err(fail)?;
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if repository.len() > MAX_REPOSITORY_LEN {
            return Err(fail(format!(
                "the repository name is longer than {MAX_REPOSITORY_LEN} characters"
            )));
        }

        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as written in references: `host[:port]`, `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path on the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `sha256:<hex>` when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same repository with another tag (and no digest): used to push one image to several tags.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag).map_err(|reason| ReferenceError {
            input: format!("{}/{}:{tag}", self.registry, self.repository),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (and no tag).
    pub fn with_digest(&self, digest: &str) -> Result<Reference, ReferenceError> {
        let digest = parse_digest(digest).map_err(|reason| ReferenceError {
            input: format!("{}/{}@{digest}", self.registry, self.repository),
            reason,
        })?;
        Ok(Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        })
    }

    /// Whether two references live on the same registry, so blobs can be mounted between them.
    pub fn same_registry(&self, other: &Reference) -> bool {
        self.registry.eq_ignore_ascii_case(&other.registry)
    }

    /// The host part of the registry (`[::1]` stays bracketed), without the port.
    pub fn host(&self) -> &str {
        split_host_port(&self.registry).0
    }

    /// `localhost`, `127.0.0.0/8` or `[::1]`: registries on this machine, reached over plain
    /// HTTP without asking, as docker does.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.host())
    }

    /// The reference in oci-client's terms (built field by field: its parser rejects IPv6 hosts).
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        let registry = self.registry.clone();
        let repository = self.repository.clone();
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
                registry,
                repository,
                tag.clone(),
                digest.clone(),
            ),
            (None, Some(digest)) => {
                oci_client::Reference::with_digest(registry, repository, digest.clone())
            }
            (tag, None) => oci_client::Reference::with_tag(
                registry,
                repository,
                tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_string()),
            ),
        }
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether `host` (no port; IPv6 in brackets) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return ip.is_loopback();
    }
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<Ipv6Addr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// Splits `host[:port]` (IPv6 hosts bracketed) into host and optional port text.
pub fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    if registry.starts_with('[') {
        return match registry.find(']') {
            Some(end) => {
                let rest = &registry[end + 1..];
                (&registry[..=end], rest.strip_prefix(':'))
            }
            None => (registry, None),
        };
    }
    match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    }
}

/// docker's rule: the first path component is a registry when it looks like a host name
/// (has a `.` or `:`, is `localhost`, is a bracketed IPv6 address) or has upper case letters,
/// which a repository never does.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.starts_with('[')
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = split_host_port(registry);
    if let Some(port) = port
        && (port.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(format!(
            "`{port}` in registry `{registry}` is not a port number"
        ));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "`{host}` in registry `{registry}` is not an IPv6 address"
            ))
        };
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || !host.split('.').all(valid_label) {
        return Err(format!("`{host}` is not a valid registry host name"));
    }
    Ok(())
}

/// Path components: lower-case letters and digits, separated by `.`, `_`, `__` or runs of `-`.
fn validate_repository(path: &str) -> Result<(), String> {
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "repository names must be lower case (did you mean `{}`?)",
            path.to_ascii_lowercase()
        ));
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err(format!("repository `{path}` has an empty path component"));
        }
        if !valid_component(component) {
            return Err(format!(
                "repository path component `{component}` may contain only a-z, 0-9 and single \
                 `.`, `_`, `__` or `-` separators between them"
            ));
        }
    }
    Ok(())
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__`, or any number of `-`.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    match chars.next() {
        None => Err("the tag after `:` is empty".into()),
        Some(first) if !word(first) => Err(format!(
            "tag `{tag}` must start with a letter, digit or `_`"
        )),
        Some(_) if tag.len() > MAX_TAG_LEN => Err(format!(
            "tag `{tag}` is longer than {MAX_TAG_LEN} characters"
        )),
        Some(_) => match chars.find(|&c| !(word(c) || c == '.' || c == '-')) {
            Some(c) => Err(format!(
                "tag `{tag}` contains {c:?}; tags may contain only letters, digits, `_`, `.` and `-`"
            )),
            None => Ok(()),
        },
    }
}

fn parse_digest(digest: &str) -> Result<String, String> {
    if sha256_hex(digest).is_some() {
        Ok(digest.to_string())
    } else if digest.starts_with("sha256:") && sha256_hex(&digest.to_ascii_lowercase()).is_some() {
        Ok(digest.to_ascii_lowercase())
    } else {
        Err(format!(
            "digest `{digest}` is not sha256: followed by 64 hexadecimal digits"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn docker_hub_defaults() {
        let r = parse("busybox");
        assert_eq!(
            (r.registry(), r.repository(), r.tag(), r.digest()),
            ("docker.io", "library/busybox", Some("latest"), None)
        );
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(parse("stackstorm/st2:3.8").repository(), "stackstorm/st2");
        assert_eq!(
            parse("index.docker.io/busybox").repository(),
            "library/busybox"
        );
        assert_eq!(parse("docker.io/library/busybox:1.36").tag(), Some("1.36"));
    }

    #[test]
    fn registries_with_ports_and_ip_addresses() {
        let r = parse("127.0.0.1:5000/st2packs:1.0");
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "st2packs", Some("1.0"))
        );
        assert!(r.is_loopback());
        let r = parse("localhost:5000/team/packs");
        assert_eq!((r.registry(), r.tag()), ("localhost:5000", Some("latest")));
        assert!(r.is_loopback());
        let r = parse("[::1]:5000/packs:v2");
        assert_eq!(
            (r.registry(), r.host(), r.tag()),
            ("[::1]:5000", "[::1]", Some("v2"))
        );
        assert!(r.is_loopback());
        let r = parse("registry.example.com/org/packs");
        assert!(!r.is_loopback());
        assert_eq!(r.host(), "registry.example.com");
        assert!(!parse("10.0.0.1:5000/x").is_loopback());
        assert!(parse("127.1.2.3:5000/x").is_loopback());
    }

    #[test]
    fn digests_and_tags_together() {
        let r = parse(&format!("127.0.0.1:5000/packs:1.0@{DIGEST}"));
        assert_eq!((r.tag(), r.digest()), (Some("1.0"), Some(DIGEST)));
        let r = parse(&format!("busybox@{DIGEST}"));
        assert_eq!((r.tag(), r.digest()), (None, Some(DIGEST)));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{DIGEST}"));
        let oci = r.to_oci();
        assert_eq!((oci.registry(), oci.digest()), ("docker.io", Some(DIGEST)));
    }

    #[test]
    fn errors_name_the_input_and_the_problem() {
        for (input, needle) in [
            ("", "empty"),
            ("Busybox", "lower case"),
            ("127.0.0.1:5000/St2Packs:1", "did you mean `st2packs`"),
            ("repo:", "tag after `:` is empty"),
            ("repo:-x", "must start"),
            ("repo:a+b", "contains '+'"),
            ("repo@sha256:abc", "64 hexadecimal"),
            ("repo@md5:abc", "sha256"),
            ("host:99999/repo", "not a port"),
            ("a..b/x", "not a valid registry host"),
            ("host:5000//x", "empty path component"),
            ("host:5000/a--/b", "may contain only"),
            ("my repo", "character ' '"),
            ("[::zz]:5000/x", "not an IPv6"),
        ] {
            let err = Reference::parse(input).expect_err(input).to_string();
            assert!(err.contains(&format!("`{input}`")), "{err}");
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn component_grammar() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "st2-packs", "x9"] {
            assert!(valid_component(ok), "{ok}");
        }
        for bad in ["_a", "a_", "a..b", "a___b", "a._b", "-a"] {
            assert!(!valid_component(bad), "{bad}");
        }
        assert!(validate_tag(&"a".repeat(128)).is_ok());
        assert!(validate_tag(&"a".repeat(129)).is_err());
    }

    #[test]
    fn retagging_keeps_the_repository() {
        let r = parse(&format!("127.0.0.1:5000/packs:1.0@{DIGEST}"));
        let t = r.with_tag("latest").unwrap();
        assert_eq!(t.to_string(), "127.0.0.1:5000/packs:latest");
        assert!(r.with_tag("bad tag").is_err());
        assert_eq!(r.with_digest(DIGEST).unwrap().tag(), None);
        assert!(r.same_registry(&parse("127.0.0.1:5000/other")));
        assert!(!r.same_registry(&parse("127.0.0.1:5001/packs")));
    }
}
