//! This machine's platform, and the one rule for choosing an image from a multi-platform index.
//!
//! Every reader (the registry pull, the OCI layout reader) picks from an index the same way, so
//! `--base REF` and `--base oci:DIR` built from one multi-platform image give the same base. The
//! rule, as containerd's matcher has it for the cases that occur: linux on this machine's
//! architecture with a variant it runs (`arm64` means `v8`, so `arm64/v8` and a bare `arm64`
//! both match; 32-bit `arm` takes `v7`, then older variants; `amd64` takes only the baseline,
//! not `amd64/v3`, which needs newer CPUs), and failing that linux/amd64: the virtualenvs st2pack
//! adds are built for this machine, and the cluster's st2 images are amd64 only.

use std::fmt;

use oci_spec::image::{Descriptor, Os, Platform};

/// The image platform of this machine: always linux (images are Linux images), the architecture
/// in the Go spelling images use, and the variant that architecture implies.
pub fn host_platform() -> PlatformName {
    let architecture = host_architecture().to_string();
    let variant = match architecture.as_str() {
        "arm64" => Some("v8".to_string()),
        _ => None,
    };
    PlatformName {
        os: "linux".into(),
        architecture,
        variant,
    }
}

/// This machine's architecture in the Go spelling images use (`amd64`, `arm64`, ...).
pub fn host_architecture() -> &'static str {
    go_architecture(std::env::consts::ARCH)
}

/// Maps a Rust `target_arch` name to GOARCH.
pub fn go_architecture(rust_arch: &'static str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "big") => "ppc64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// `os/architecture[/variant]`, as users and `docker --platform` write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformName {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl PlatformName {
    pub fn of(platform: &Platform) -> PlatformName {
        PlatformName {
            os: platform.os().to_string(),
            architecture: platform.architecture().to_string(),
            variant: platform.variant().clone(),
        }
    }

    /// `linux/amd64` without the variant (what messages about a missing platform name).
    pub fn os_arch(&self) -> String {
        format!("{}/{}", self.os, self.architecture)
    }
}

impl fmt::Display for PlatformName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variant {
            Some(variant) => write!(f, "{}/{}/{variant}", self.os, self.architecture),
            None => write!(f, "{}/{}", self.os, self.architecture),
        }
    }
}

/// The entry of `entries` (an index's manifests) to use on this machine, by the rule above.
pub fn choose(entries: &[Descriptor]) -> Option<&Descriptor> {
    choose_for(&host_platform(), entries)
}

/// [`choose`] for a given host platform (tests pass others).
pub fn choose_for<'a>(host: &PlatformName, entries: &'a [Descriptor]) -> Option<&'a Descriptor> {
    let mut wanted = vec![host.architecture.as_str()];
    if host.architecture != "amd64" {
        wanted.push("amd64");
    }
    for architecture in wanted {
        let host_variant = (architecture == host.architecture)
            .then_some(host.variant.as_deref())
            .flatten();
        for variant in acceptable_variants(architecture, host_variant) {
            let found = entries.iter().find(|entry| {
                entry.platform().as_ref().is_some_and(|p| {
                    *p.os() == Os::Linux
                        && p.architecture().to_string() == architecture
                        && normalised_variant(architecture, p.variant().as_deref()) == variant
                })
            });
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// The variants of `architecture` a host with `host_variant` runs, best first.
fn acceptable_variants(
    architecture: &str,
    host_variant: Option<&str>,
) -> Vec<Option<&'static str>> {
    match architecture {
        "arm64" => vec![Some("v8")],
        "arm" => {
            let all = ["v8", "v7", "v6", "v5"];
            let start = host_variant
                .and_then(|v| all.iter().position(|a| *a == v))
                .unwrap_or(1);
            all[start..].iter().map(|v| Some(*v)).collect()
        }
        "amd64" => vec![Some("v1")],
        _ => vec![None],
    }
}

/// Spellings that mean the same platform, made one: a bare `arm64` is `v8`, a bare `arm` `v7`,
/// a bare `amd64` the baseline `v1`.
fn normalised_variant<'a>(architecture: &str, variant: Option<&'a str>) -> Option<&'a str> {
    match (architecture, variant) {
        ("arm64", None) => Some("v8"),
        ("arm", None) => Some("v7"),
        ("amd64", None) => Some("v1"),
        (_, variant) => variant,
    }
}

/// The platforms an index offers, for messages (`linux/arm64/v8, linux/amd64`).
pub fn offered(entries: &[Descriptor]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e.platform().as_ref())
        .map(|p| PlatformName::of(p).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{Arch, DescriptorBuilder, MediaType, PlatformBuilder};

    fn entries(platforms: &[&str]) -> Vec<Descriptor> {
        platforms
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let mut parts = spec.split('/');
                let os = parts.next().unwrap();
                let arch = parts.next().unwrap();
                let mut platform = PlatformBuilder::default()
                    .os(Os::from(os))
                    .architecture(Arch::from(arch));
                if let Some(variant) = parts.next() {
                    platform = platform.variant(variant.to_string());
                }
                DescriptorBuilder::default()
                    .media_type(MediaType::ImageManifest)
                    .digest(
                        format!("sha256:{i:064}")
                            .parse::<oci_spec::image::Digest>()
                            .unwrap(),
                    )
                    .size(1u64)
                    .platform(platform.build().unwrap())
                    .build()
                    .unwrap()
            })
            .collect()
    }

    fn host(spec: &str) -> PlatformName {
        let mut parts = spec.split('/');
        PlatformName {
            os: parts.next().unwrap().into(),
            architecture: parts.next().unwrap().into(),
            variant: parts.next().map(String::from),
        }
    }

    fn pick(host_spec: &str, offered: &[&str]) -> Option<String> {
        let list = entries(offered);
        choose_for(&host(host_spec), &list)
            .and_then(|d| d.platform().as_ref())
            .map(|p| PlatformName::of(p).to_string())
    }

    #[test]
    fn this_machine_first_then_amd64() {
        let all = [
            "linux/s390x",
            "linux/amd64",
            "linux/arm64/v8",
            "windows/arm64",
        ];
        assert_eq!(pick("linux/amd64", &all).as_deref(), Some("linux/amd64"));
        assert_eq!(
            pick("linux/arm64/v8", &all).as_deref(),
            Some("linux/arm64/v8")
        );
        assert_eq!(pick("linux/s390x", &all).as_deref(), Some("linux/s390x"));
        assert_eq!(
            pick("linux/ppc64le", &all).as_deref(),
            Some("linux/amd64"),
            "amd64 is the fallback"
        );
        assert_eq!(pick("linux/amd64", &["windows/amd64", "linux/arm64"]), None);
    }

    #[test]
    fn variants_that_mean_the_same_platform_match() {
        assert_eq!(
            pick("linux/arm64/v8", &["linux/arm/v7", "linux/arm64"]).as_deref(),
            Some("linux/arm64")
        );
        // An arm64 host does not take a 32-bit image, it falls back to amd64.
        assert_eq!(
            pick("linux/arm64/v8", &["linux/arm/v7", "linux/amd64"]).as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(
            pick("linux/arm/v7", &["linux/arm/v5", "linux/arm/v6"]).as_deref(),
            Some("linux/arm/v6")
        );
        assert_eq!(pick("linux/arm/v6", &["linux/arm/v7"]), None);
        // amd64/v3 needs newer CPUs than the baseline.
        assert_eq!(
            pick("linux/amd64", &["linux/amd64/v3", "linux/amd64/v1"]).as_deref(),
            Some("linux/amd64/v1")
        );
        assert_eq!(pick("linux/amd64", &["linux/amd64/v3"]), None);
    }

    #[test]
    fn go_architecture_names() {
        assert_eq!(go_architecture("x86_64"), "amd64");
        assert_eq!(go_architecture("aarch64"), "arm64");
        assert_eq!(go_architecture("s390x"), "s390x");
    }

    #[test]
    fn the_host_is_linux_in_go_spelling() {
        let host = host_platform();
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.to_string(), "linux/amd64");
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(host.to_string(), "linux/arm64/v8");
        }
    }
}
