//! The pack spec grammar: what users type after `st2-pack-install` and in pack.yaml `dependencies:`.
//!
//! It is kept compatible with upstream st2-pack-install, so existing Dockerfiles and pack.yaml files
//! keep working: `name[=version]` from the Exchange, `owner/repo` on GitHub, any git URL, or a local
//! directory, each optionally pinned with `=ref`. Specs may carry credentials in URLs, so nothing in
//! here ever prints one without [`redact_url`].

use std::fmt;
use std::path::{Path, PathBuf};

use super::name::{NameError, PackName};
use crate::redact::redact_url;

/// Where a pack comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PackSource {
    /// A name looked up in the StackStorm Exchange index.
    Exchange { name: String },
    /// Any git URL: `https://`, `http://`, `ssh://`, `git://`, scp-like `git@host:org/repo(.git)`, `file:///abs/path`.
    Git { url: String },
    /// A local directory given as a plain path: `./dir`, `../dir`, `/abs/dir`, `~/dir` (tilde expanded from $HOME).
    Local { path: PathBuf },
}

// Hand-written so `{:?}` in a log line cannot leak a password from a git URL.
impl fmt::Debug for PackSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackSource::Exchange { name } => {
                f.debug_struct("Exchange").field("name", name).finish()
            }
            PackSource::Git { url } => f
                .debug_struct("Git")
                .field("url", &redact_spec(url))
                .finish(),
            PackSource::Local { path } => f.debug_struct("Local").field("path", path).finish(),
        }
    }
}

/// One parsed pack spec.
#[derive(Clone, PartialEq, Eq)]
pub struct PackSpec {
    /// Exactly what the user typed (may contain credentials: show it only through `Display`).
    pub raw: String,
    pub source: PackSource,
    /// The `=…` suffix: an Exchange version, or a git branch, tag or commit.
    pub reference: Option<String>,
}

impl fmt::Debug for PackSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackSpec")
            .field("raw", &redact_spec(&self.raw))
            .field("source", &self.source)
            .field("reference", &self.reference)
            .finish()
    }
}

impl fmt::Display for PackSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_spec(&self.raw))
    }
}

/// URL schemes git can fetch that we pass through unchanged.
const URL_SCHEMES: [&str; 4] = ["https", "http", "git", "ssh"];

const ACCEPTED_FORMS: &str = "accepted forms: NAME or NAME=VERSION (StackStorm Exchange), \
OWNER/REPO (GitHub), a git URL (https://, http://, git://, ssh://, file:///abs/path or \
user@host:org/repo.git), or a local directory (./dir, ../dir, /abs/dir, ~/dir); \
git URLs, OWNER/REPO and directories may end in =REF (branch, tag or commit)";

impl PackSpec {
    /// Parses one spec, expanding a leading `~` from `$HOME`.
    pub fn parse(raw: &str) -> Result<PackSpec, SpecError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::parse_with_home(raw, home.as_deref())
    }

    /// [`PackSpec::parse`] with an explicit home directory, so parsing does not depend on the
    /// environment (tests, callers that already resolved the home).
    pub fn parse_with_home(raw: &str, home: Option<&Path>) -> Result<PackSpec, SpecError> {
        let (source, reference) = parse_source(raw, home)?;
        if let Some(r) = &reference {
            check_reference(raw, r)?;
        }
        Ok(PackSpec {
            raw: raw.to_string(),
            source,
            reference,
        })
    }

    /// The git URL to clone, when the spec names one directly (not for Exchange names).
    pub fn git_url_of(&self) -> Option<&str> {
        match &self.source {
            PackSource::Git { url } => Some(url),
            _ => None,
        }
    }
}

fn parse_source(raw: &str, home: Option<&Path>) -> Result<(PackSource, Option<String>), SpecError> {
    if raw.is_empty() {
        return Err(SpecError::Empty);
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SpecError::Whitespace {
            spec: redact_spec(raw),
        });
    }

    // Plain paths first: `./a://b` is a directory, not a URL.
    if is_plain_path(raw) {
        let (body, reference) = split_ref(raw, false)?;
        let path = expand_tilde(raw, body, home)?;
        return Ok((PackSource::Local { path }, reference));
    }
    if raw.starts_with('~') {
        return Err(SpecError::TildeUser {
            spec: redact_spec(raw),
        });
    }

    if let Some(scheme) = url_scheme(raw) {
        let (url, reference) = split_ref(raw, true)?;
        let rest = &url[scheme.len() + 3..];
        if scheme == "file" {
            if !rest.starts_with('/') {
                return Err(SpecError::FileNotAbsolute {
                    spec: redact_spec(raw),
                });
            }
        } else if !URL_SCHEMES.contains(&scheme) {
            return Err(SpecError::UnsupportedScheme {
                spec: redact_spec(raw),
                scheme: scheme.to_string(),
            });
        } else {
            let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            let host = authority.rsplit('@').next().unwrap_or_default();
            if host.is_empty() || host.starts_with(':') {
                return Err(SpecError::MissingHost {
                    spec: redact_spec(raw),
                });
            }
            // An ssh "host" starting with `-` would be read by ssh as an option (CVE-2017-1000117).
            if host.starts_with('-') {
                return Err(SpecError::DashHost {
                    spec: redact_spec(raw),
                });
            }
        }
        return Ok((
            PackSource::Git {
                url: url.to_string(),
            },
            reference,
        ));
    }

    if let Some(host) = scp_like_host(raw) {
        if host.starts_with('-') || raw.starts_with('-') {
            return Err(SpecError::DashHost {
                spec: redact_spec(raw),
            });
        }
        let (url, reference) = split_ref(raw, false)?;
        return Ok((
            PackSource::Git {
                url: url.to_string(),
            },
            reference,
        ));
    }

    if raw.contains('/') {
        let (body, reference) = split_ref(raw, false)?;
        return match body.split_once('/') {
            Some((owner, repo)) if is_github_part(owner) && is_github_part(repo) => Ok((
                PackSource::Git {
                    url: format!("https://github.com/{owner}/{repo}"),
                },
                reference,
            )),
            _ => Err(SpecError::NotShorthand {
                spec: redact_spec(raw),
                body: redact_spec(body),
            }),
        };
    }

    // An Exchange name; its version is everything after the first `=` (names cannot contain `=`).
    let (name, reference) = match raw.split_once('=') {
        Some((name, reference)) => (name, Some(reference)),
        None => (raw, None),
    };
    if reference == Some("") {
        return Err(SpecError::EmptyRef {
            spec: redact_spec(raw),
        });
    }
    if reference.is_some_and(|r| r.starts_with('=')) {
        return Err(SpecError::DoubleEquals {
            spec: redact_spec(raw),
            name: name.to_string(),
        });
    }
    PackName::new(name).map_err(|source| SpecError::BadName {
        spec: redact_spec(raw),
        source,
    })?;
    Ok((
        PackSource::Exchange {
            name: name.to_string(),
        },
        reference.map(str::to_string),
    ))
}

fn is_plain_path(raw: &str) -> bool {
    let body = raw.split('=').next().unwrap_or(raw);
    ["./", "../", "/", "~/"].iter().any(|p| raw.starts_with(p)) || matches!(body, "." | ".." | "~")
}

/// The scheme of a `scheme://…` string, when what precedes `://` looks like a scheme.
fn url_scheme(raw: &str) -> Option<&str> {
    let end = raw.find("://")?;
    let scheme = &raw[..end];
    let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(scheme)
}

/// The host of an scp-like `user@host:path`, which git only recognises with no `/` before the
/// first `:`.
fn scp_like_host(raw: &str) -> Option<&str> {
    let (before, path) = raw.split_once(':')?;
    if before.contains('/') || path.is_empty() {
        return None;
    }
    let (user, host) = before.split_once('@')?;
    (!user.is_empty() && !host.is_empty() && !host.contains('@')).then_some(host)
}

fn is_github_part(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Splits `=ref` off at the last `=`, but only when what follows has no `/` (so `=` inside a path
/// survives) and, for URLs, when that `=` is not a query string's `key=value`.
fn split_ref(raw: &str, is_url: bool) -> Result<(&str, Option<String>), SpecError> {
    let Some(eq) = raw.rfind('=') else {
        return Ok((raw, None));
    };
    let (body, reference) = (&raw[..eq], &raw[eq + 1..]);
    if reference.contains('/') {
        return Ok((raw, None));
    }
    if is_url && let Some(q) = body.find('?') {
        let param = &body[q + 1..];
        let param = &param[param.rfind('&').map_or(0, |i| i + 1)..];
        if !param.contains('=') {
            return Ok((raw, None));
        }
    }
    if reference.is_empty() {
        return Err(SpecError::EmptyRef {
            spec: redact_spec(raw),
        });
    }
    Ok((body, Some(reference.to_string())))
}

fn check_reference(raw: &str, reference: &str) -> Result<(), SpecError> {
    // A ref starting with `-` would be taken as an option by git or pip.
    if reference.starts_with('-') {
        return Err(SpecError::DashRef {
            spec: redact_spec(raw),
            reference: reference.to_string(),
        });
    }
    Ok(())
}

fn expand_tilde(raw: &str, body: &str, home: Option<&Path>) -> Result<PathBuf, SpecError> {
    let rest = match body.strip_prefix('~') {
        Some(rest) => rest.trim_start_matches('/'),
        None => return Ok(PathBuf::from(body)),
    };
    match home {
        Some(home) if !home.as_os_str().is_empty() => Ok(if rest.is_empty() {
            home.to_path_buf()
        } else {
            home.join(rest)
        }),
        _ => Err(SpecError::NoHome {
            spec: redact_spec(raw),
        }),
    }
}

/// [`redact_url`] plus a guard for specs it does not treat as URLs (or where a password contains
/// `/`): everything before an `@` that follows a `:` in what could be user info is hidden.
/// Over-redacting an odd path in an error message is harmless; leaking a password is not.
pub(crate) fn redact_spec(raw: &str) -> String {
    let s = redact_url(raw);
    let start = s.find("://").map_or(0, |i| i + 3);
    let Some(at) = s[start..].rfind('@').map(|i| start + i) else {
        return s;
    };
    if s[start..at].contains(':') {
        format!("{}***{}", &s[..start], &s[at..])
    } else {
        s
    }
}

/// Why a pack spec was rejected. `spec` fields are already redacted, so every message is safe to
/// print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty pack spec: give the pack to install; {ACCEPTED_FORMS}")]
    Empty,
    #[error(
        "invalid pack spec {spec:?}: it contains whitespace or control characters; \
         pass several packs as separate arguments, and percent-encode spaces in URLs"
    )]
    Whitespace { spec: String },
    #[error(
        "invalid pack spec {spec:?}: nothing follows the \"=\"; write NAME=VERSION or URL=REF \
         (a branch, tag or commit), or drop the \"=\""
    )]
    EmptyRef { spec: String },
    #[error(
        "invalid pack spec {spec:?}: a version is given with a single \"=\" (pip's \"==\" is not \
         used here); write {name}=VERSION"
    )]
    DoubleEquals { spec: String, name: String },
    #[error(
        "invalid pack spec {spec:?}: {} is not a valid Exchange pack name (nor OWNER/REPO, a git \
         URL or a ./dir path): {}",
        .source.quoted_name(),
        .source.reason()
    )]
    BadName {
        spec: String,
        #[source]
        source: NameError,
    },
    #[error(
        "invalid pack spec {spec:?}: file:// must be followed by an absolute path; \
         write file:///abs/path, or ./path for a directory relative to the current one"
    )]
    FileNotAbsolute { spec: String },
    #[error(
        "invalid pack spec {spec:?}: the URL scheme {scheme:?} is not supported; {ACCEPTED_FORMS}"
    )]
    UnsupportedScheme { spec: String, scheme: String },
    #[error(
        "invalid pack spec {spec:?}: the URL has no host; write it like https://github.com/owner/repo"
    )]
    MissingHost { spec: String },
    #[error(
        "invalid pack spec {spec:?}: a git host or user may not start with \"-\" \
         (it would be read as an ssh option); check the URL"
    )]
    DashHost { spec: String },
    #[error(
        "invalid pack spec {spec:?}: the ref {reference:?} starts with \"-\", which git would read \
         as an option; give a branch, tag or commit name"
    )]
    DashRef { spec: String, reference: String },
    #[error(
        "invalid pack spec {spec:?}: {body:?} is not OWNER/REPO (exactly one \"/\", letters, digits, \
         \"_\", \".\" and \"-\"); for a local directory write ./{body} or /abs/path, for a git \
         repository give its full URL (https://host/{body}); {ACCEPTED_FORMS}"
    )]
    NotShorthand { spec: String, body: String },
    #[error(
        "invalid pack spec {spec:?}: only a leading \"~/\" is expanded (to $HOME); \
         write the directory as an absolute path"
    )]
    TildeUser { spec: String },
    #[error(
        "invalid pack spec {spec:?}: cannot expand \"~\" because $HOME is not set; \
         write the directory as an absolute path"
    )]
    NoHome { spec: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_style_double_equals_is_refused_with_the_fix() {
        let err = PackSpec::parse("aws==2.0.2").unwrap_err().to_string();
        assert!(err.contains("aws=VERSION"), "{err}");
    }

    const HOME: &str = "/home/st2";

    fn parse(raw: &str) -> Result<PackSpec, SpecError> {
        PackSpec::parse_with_home(raw, Some(Path::new(HOME)))
    }

    fn ok(raw: &str) -> (PackSource, Option<String>) {
        let spec = parse(raw).unwrap_or_else(|e| panic!("{raw:?} should parse: {e}"));
        assert_eq!(spec.raw, raw);
        (spec.source, spec.reference)
    }

    fn git(url: &str) -> PackSource {
        PackSource::Git { url: url.into() }
    }

    fn local(path: &str) -> PackSource {
        PackSource::Local { path: path.into() }
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn exchange_name_and_version() {
        assert_eq!(
            ok("aws"),
            (PackSource::Exchange { name: "aws".into() }, None)
        );
        assert_eq!(
            ok("pack=1.2.0"),
            (
                PackSource::Exchange {
                    name: "pack".into()
                },
                some("1.2.0")
            )
        );
        // Everything after the first `=` is the version (git refs may contain `=`).
        assert_eq!(ok("pack=a=b").1, some("a=b"));
        assert_eq!(parse("aws").unwrap().git_url_of(), None);
    }

    #[test]
    fn exchange_bad_names() {
        for (raw, needle) in [
            ("Upper", "did you mean \"upper\"?"),
            ("Upper=1.0", "did you mean \"upper\"?"),
            ("my-pack", "did you mean \"my_pack\"?"),
            ("_global", "reserved"),
            ("=1.0", "must not be empty"),
            ("a\\b", "lowercase letters"),
            ("..x", "lowercase letters"),
        ] {
            let err = parse(raw).unwrap_err();
            assert!(matches!(err, SpecError::BadName { .. }), "{raw}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("{raw:?}")), "{msg}");
            assert!(msg.contains(needle), "{raw}: {msg}");
            assert!(msg.contains("OWNER/REPO"), "{msg}");
        }
    }

    #[test]
    fn github_shorthand() {
        assert_eq!(
            ok("StackStorm-Exchange/stackstorm-aws"),
            (
                git("https://github.com/StackStorm-Exchange/stackstorm-aws"),
                None
            )
        );
        assert_eq!(
            ok("owner/repo.git=v1.0.0"),
            (git("https://github.com/owner/repo.git"), some("v1.0.0"))
        );
        assert_eq!(
            parse("a_b/c-d.e").unwrap().git_url_of(),
            Some("https://github.com/a_b/c-d.e")
        );
    }

    #[test]
    fn three_parts_is_not_shorthand() {
        let err = parse("a/b/c").unwrap_err();
        assert!(matches!(err, SpecError::NotShorthand { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("./a/b/c"), "{msg}");
        assert!(msg.contains("https://host/a/b/c"), "{msg}");
        assert!(msg.contains("accepted forms"), "{msg}");
    }

    #[test]
    fn bad_shorthand_parts() {
        for raw in ["a/", "owner/.repo", ".owner/repo", "o:x/repo", "a/b c"] {
            assert!(parse(raw).is_err(), "{raw}");
        }
        assert!(matches!(
            parse("owner/.hidden").unwrap_err(),
            SpecError::NotShorthand { .. }
        ));
        // `/` alone is an absolute path, not shorthand.
        assert_eq!(ok("/").0, local("/"));
        // `=ref` with a slash after it is not split, so this is three parts.
        assert!(matches!(
            parse("a/b=c/d").unwrap_err(),
            SpecError::NotShorthand { .. }
        ));
    }

    #[test]
    fn https_and_friends() {
        assert_eq!(
            ok("https://github.com/org/repo.git"),
            (git("https://github.com/org/repo.git"), None)
        );
        assert_eq!(
            ok("http://host:8080/repo=main"),
            (git("http://host:8080/repo"), some("main"))
        );
        assert_eq!(
            ok("git://host/repo.git=abc123"),
            (git("git://host/repo.git"), some("abc123"))
        );
        assert_eq!(
            ok("ssh://git@host:22/org/repo.git=v2"),
            (git("ssh://git@host:22/org/repo.git"), some("v2"))
        );
    }

    #[test]
    fn equals_in_url_path_survives() {
        assert_eq!(
            ok("https://host/a=b/repo.git"),
            (git("https://host/a=b/repo.git"), None)
        );
        assert_eq!(
            ok("https://host/a=b/repo.git=v1"),
            (git("https://host/a=b/repo.git"), some("v1"))
        );
    }

    #[test]
    fn query_string_survives() {
        assert_eq!(
            ok("https://host/repo?x=1"),
            (git("https://host/repo?x=1"), None)
        );
        assert_eq!(
            ok("https://host/repo?x=1&y=2"),
            (git("https://host/repo?x=1&y=2"), None)
        );
        assert_eq!(
            ok("https://host/repo?x=1=v3"),
            (git("https://host/repo?x=1"), some("v3"))
        );
    }

    #[test]
    fn password_url_with_ref() {
        let spec = parse("https://u:pw@host/r.git=v1.2.0").unwrap();
        assert_eq!(spec.source, git("https://u:pw@host/r.git"));
        assert_eq!(spec.reference, some("v1.2.0"));
        assert_eq!(spec.git_url_of(), Some("https://u:pw@host/r.git"));
        assert_eq!(spec.to_string(), "https://***@host/r.git=v1.2.0");
        let debug = format!("{spec:?}");
        assert!(!debug.contains("pw"), "{debug}");
        assert!(debug.contains("//***@host"), "{debug}");
    }

    #[test]
    fn password_never_in_errors() {
        for raw in [
            "https://u:secretpw@host/r.git=",
            "ftp://u:secretpw@host/r.git",
            "file://u:secretpw@host/r",
            "https://u:secretpw@/r",
            "https://u:secretpw@host/r git",
            "u:secretpw@host:org/a/b",
            "https://u:secret/pw@host/r=",
            "ssh://u:secretpw@-oProxyCommand=x/r",
            "https://u:secretpw@host/r=-x",
        ] {
            let err = parse(raw).expect_err(raw);
            let msg = err.to_string();
            let debug = format!("{err:?}");
            assert!(!msg.contains("secret"), "{raw}: {msg}");
            assert!(!debug.contains("secret"), "{raw}: {debug}");
            assert!(msg.contains("***"), "{raw}: {msg}");
        }
    }

    #[test]
    fn scp_like() {
        assert_eq!(
            ok("git@github.com:org/repo.git=main"),
            (git("git@github.com:org/repo.git"), some("main"))
        );
        assert_eq!(
            ok("gitlab@gitlab.example.com:group/sub/repo.git"),
            (git("gitlab@gitlab.example.com:group/sub/repo.git"), None)
        );
        assert_eq!(ok("deploy@host:repo").0, git("deploy@host:repo"));
        // scp-like user is a name, not a secret.
        assert_eq!(
            parse("git@github.com:org/repo.git").unwrap().to_string(),
            "git@github.com:org/repo.git"
        );
    }

    #[test]
    fn scp_like_rejects_option_injection() {
        for raw in ["git@-oProxyCommand=x:repo", "-oProxyCommand=x@host:repo"] {
            let err = parse(raw).unwrap_err();
            assert!(matches!(err, SpecError::DashHost { .. }), "{raw}: {err:?}");
        }
        assert!(matches!(
            parse("ssh://-oProxyCommand=x/repo").unwrap_err(),
            SpecError::DashHost { .. }
        ));
    }

    #[test]
    fn dash_ref_rejected() {
        let err = parse("https://host/r=-uhack").unwrap_err();
        assert!(matches!(err, SpecError::DashRef { .. }), "{err:?}");
        assert!(matches!(
            parse("pack=--force").unwrap_err(),
            SpecError::DashRef { .. }
        ));
    }

    #[test]
    fn file_urls() {
        assert_eq!(
            ok("file:///tmp/x=abc123"),
            (git("file:///tmp/x"), some("abc123"))
        );
        assert_eq!(ok("file:///srv/packs/a").0, git("file:///srv/packs/a"));
        let err = parse("file://relative/dir").unwrap_err();
        assert!(matches!(err, SpecError::FileNotAbsolute { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("file:///abs/path") && msg.contains("./path"),
            "{msg}"
        );
    }

    #[test]
    fn url_errors() {
        let err = parse("ftp://host/repo").unwrap_err();
        assert_eq!(
            err,
            SpecError::UnsupportedScheme {
                spec: "ftp://host/repo".into(),
                scheme: "ftp".into()
            }
        );
        assert!(err.to_string().contains("accepted forms"));
        for raw in [
            "https://",
            "https:///path",
            "https://user@/r",
            "http://:80/r",
        ] {
            assert!(
                matches!(parse(raw).unwrap_err(), SpecError::MissingHost { .. }),
                "{raw}"
            );
        }
        assert!(matches!(
            parse("https://host/repo=").unwrap_err(),
            SpecError::EmptyRef { .. }
        ));
    }

    #[test]
    fn plain_paths() {
        assert_eq!(ok("./dir"), (local("./dir"), None));
        assert_eq!(ok("../dir"), (local("../dir"), None));
        assert_eq!(ok("/abs/dir"), (local("/abs/dir"), None));
        assert_eq!(ok("."), (local("."), None));
        assert_eq!(ok(".."), (local(".."), None));
        assert_eq!(ok("./a=b"), (local("./a"), some("b")));
        assert_eq!(ok("/abs/a=b/c"), (local("/abs/a=b/c"), None));
        assert_eq!(ok(".=v1"), (local("."), some("v1")));
        assert_eq!(ok("./x://y"), (local("./x://y"), None));
        assert_eq!(parse("./dir").unwrap().git_url_of(), None);
    }

    #[test]
    fn tilde_paths() {
        assert_eq!(ok("~/packs/x"), (local("/home/st2/packs/x"), None));
        assert_eq!(ok("~/x=dev"), (local("/home/st2/x"), some("dev")));
        assert_eq!(ok("~"), (local(HOME), None));
        // raw keeps what was typed.
        assert_eq!(parse("~/x").unwrap().to_string(), "~/x");
        let err = PackSpec::parse_with_home("~/x", None).unwrap_err();
        assert!(matches!(err, SpecError::NoHome { .. }));
        assert!(err.to_string().contains("$HOME"));
        assert!(matches!(
            PackSpec::parse_with_home("~/x", Some(Path::new(""))).unwrap_err(),
            SpecError::NoHome { .. }
        ));
        assert!(matches!(
            parse("~other/x").unwrap_err(),
            SpecError::TildeUser { .. }
        ));
    }

    #[test]
    fn empty_and_whitespace() {
        assert_eq!(parse("").unwrap_err(), SpecError::Empty);
        assert!(SpecError::Empty.to_string().contains("accepted forms"));
        for raw in [" ", "aws ", " aws", "a b", "a\tb", "https://h/r\n", "a\0b"] {
            assert!(
                matches!(parse(raw).unwrap_err(), SpecError::Whitespace { .. }),
                "{raw:?}"
            );
        }
        assert!(matches!(
            parse("./x=").unwrap_err(),
            SpecError::EmptyRef { .. }
        ));
        assert!(matches!(
            parse("aws=").unwrap_err(),
            SpecError::EmptyRef { .. }
        ));
        assert!(parse("aws=").unwrap_err().to_string().contains("\"aws=\""));
    }

    /// Every short string over the grammar's special characters parses or errors, never panics,
    /// and an Exchange result is always a valid pack name.
    #[test]
    fn never_panics_on_odd_input() {
        let alphabet = ['a', '/', ':', '@', '=', '.', '~', '-', '?', '&', 'é'];
        let mut inputs = vec![String::new()];
        for _ in 0..5 {
            let next: Vec<String> = inputs
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            for raw in &next {
                if let Ok(spec) = parse(raw)
                    && let PackSource::Exchange { name } = &spec.source
                {
                    assert!(PackName::new(name).is_ok(), "{raw:?}");
                }
                let _ = parse(&format!("https://{raw}"));
                let _ = parse(&format!("file://{raw}"));
            }
            inputs = next;
        }
    }

    #[test]
    fn redact_spec_forms() {
        assert_eq!(redact_spec("https://u:pw@h/r"), "https://***@h/r");
        assert_eq!(redact_spec("https://u:p/w@h/r"), "https://***@h/r");
        assert_eq!(redact_spec("u:pw@h:r"), "***@h:r");
        assert_eq!(redact_spec("git@h:o/r"), "git@h:o/r");
        assert_eq!(redact_spec("https://h/r"), "https://h/r");
        assert_eq!(redact_spec("./dir"), "./dir");
    }

    #[test]
    fn parse_uses_home_env() {
        // Only checks that `parse` reaches the same grammar; HOME itself is not modified here.
        assert_eq!(
            PackSpec::parse("owner/repo").unwrap().git_url_of(),
            Some("https://github.com/owner/repo")
        );
    }
}
