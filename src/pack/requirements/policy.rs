//! What a pack's requirements may ask of the installer.
//!
//! A pack is often third-party code, built on a machine that holds credentials. Its requirements
//! file is handed to pip or uv, which act on every option in it, so a pack could make the build
//! read a file of the build machine (`-r /home/ci/.docker/config.json`), send what it read to a
//! server of its choosing (`--index-url`, `${CI_TOKEN}`), or trust a host the user never chose.
//! The rules:
//!
//! * Always refused: including a file (`-r`, `-c`) outside the pack's directory, by absolute
//!   path, `..` or a symlink; installing a local path (`-e`, a path or `file:` URL) that is
//!   absolute or climbs with `..`; a file st2pack cannot read as the installers do (not UTF-8,
//!   unbalanced quotes, odd line breaks); options pip does not accept in a requirements file
//!   (`--cert`, `--client-cert`, `--proxy`, ...).
//! * Refused unless the user passes `--allow-pack-index-options`: the options that choose where
//!   packages come from or what is trusted (`-i`/`--index-url`, `--extra-index-url`,
//!   `--no-index`, `-f`/`--find-links`, `--trusted-host`, `--use-feature`), including a file by
//!   URL (its options cannot be checked), and `${NAME}` references (the installers replace them
//!   with the build machine's environment variables).
//! * Refused with `--only-binary`: `--no-binary`, `-e`, and locations that are not wheels (a VCS
//!   URL, a directory, an sdist), since each means building from source.
//! * Allowed: requirements, `--pre`, `--prefer-binary`, `--only-binary`, `--no-binary`,
//!   `--require-hashes`, `--hash`, `--global-option`, `--config-settings` (these last two only
//!   reach a source build, which runs the package's own code anyway), and remote URLs of
//!   packages (`pkg @ https://...`, `git+https://...`).

/// What the user allows a pack's requirements to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--allow-pack-index-options`: the user trusts the packs with index and trust options.
    pub allow_index_options: bool,
    /// `--only-binary`: nothing may be built from source.
    pub only_binary: bool,
}

pub(super) const ALLOW_FLAG: &str = "--allow-pack-index-options";

pub(super) fn index_option(shown: &str) -> String {
    format!(
        "{shown}: a pack may not choose where packages come from or what is trusted; index and \
         trust settings come from you (--wheelhouse, PIP_INDEX_URL / UV_INDEX_URL, pip.conf). \
         Remove the line, or pass {ALLOW_FLAG} if you trust this pack"
    )
}

pub(super) fn url_include(shown: &str) -> String {
    format!(
        "{shown}: a file included by URL cannot be checked (it may set any option); copy it into \
         the pack and include it by a relative path, or pass {ALLOW_FLAG} if you trust this pack"
    )
}

pub(super) fn environment_variable(name: &str) -> String {
    format!(
        "${{{name}}} would be replaced by the installer with the build machine's environment \
         variable {name}, which may hold a secret; write the value itself, or pass {ALLOW_FLAG} \
         if you trust this pack"
    )
}

pub(super) fn outside_include(shown: &str, reason: &str) -> String {
    format!(
        "{shown}: {reason}; a pack may only include files inside its own directory, by a path \
         relative to the including file"
    )
}

pub(super) fn outside_location(shown: &str, reason: &str) -> String {
    format!(
        "{shown}: {reason}; a pack may only install local paths inside its own directory, \
         written relative and without '..'"
    )
}

pub(super) fn unknown_option(option: &str) -> String {
    format!(
        "{option:?} is not an option pip accepts in a requirements file, and st2pack refuses what \
         it cannot judge; remove it (certificates, proxies and other installer settings come \
         from you, not from a pack)"
    )
}

pub(super) fn source_build(shown: &str) -> String {
    format!(
        "{shown}: needs a build from source, which --only-binary forbids (a source build runs \
         the package's own code); use a wheel, or leave out --only-binary if you trust this pack"
    )
}

pub(super) fn no_binary(shown: &str) -> String {
    format!(
        "{shown}: asks for builds from source, which --only-binary forbids; remove the line, or \
         leave out --only-binary if you trust this pack"
    )
}

/// The `${NAME}` references pip and uv expand: upper-case letters, digits and `_`.
pub(super) fn environment_references(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        if end > 0 && after[end..].starts_with('}') {
            names.push(&after[..end]);
        }
        rest = after;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_references_pip_expands() {
        assert_eq!(
            environment_references("pkg @ https://${HOST}/x/${TOKEN_2}/${lower}/${A"),
            ["HOST", "TOKEN_2"]
        );
        assert!(environment_references("pkg $HOME ${}").is_empty());
    }
}
