//! What one logical line of a requirements file says: a requirement (PEP 508, parsed by
//! `pep508_rs`), a location pip installs directly (a URL, a path, an archive), and pip's options.
//!
//! pip reads a line as arguments up to the first token that starts with `-`, then options
//! (`shlex`-split, long options matched by unambiguous prefix as `optparse` does). This follows
//! that reading so that every option an installer would act on is seen here.

use std::str::FromStr;

use pep508_rs::{Requirement, VersionOrUrl};

/// What an option does, which decides what a pack may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OptionKind {
    /// `-r`: another requirements file.
    Requirement,
    /// `-c`: a constraints file.
    Constraint,
    /// `-e`: a path or VCS URL installed in editable mode.
    Editable,
    /// Chooses where packages come from or what is trusted.
    Index,
    /// Lets source builds back in.
    NoBinary,
    /// Changes neither where packages come from nor what is trusted.
    Harmless,
}

/// One of the options pip accepts in a requirements file.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OptionSpec {
    pub short: Option<char>,
    pub long: &'static str,
    pub takes_value: bool,
    pub kind: OptionKind,
}

const fn option(
    short: Option<char>,
    long: &'static str,
    takes_value: bool,
    kind: OptionKind,
) -> OptionSpec {
    OptionSpec {
        short,
        long,
        takes_value,
        kind,
    }
}

/// Every option pip's requirements-file parser knows (`SUPPORTED_OPTIONS` and
/// `SUPPORTED_OPTIONS_REQ`); anything else (`--cert`, `--proxy`, `--upgrade`...) pip rejects.
pub(super) const OPTIONS: [OptionSpec; 17] = [
    option(Some('r'), "--requirement", true, OptionKind::Requirement),
    option(Some('c'), "--constraint", true, OptionKind::Constraint),
    option(Some('e'), "--editable", true, OptionKind::Editable),
    option(Some('i'), "--index-url", true, OptionKind::Index),
    option(None, "--extra-index-url", true, OptionKind::Index),
    option(None, "--no-index", false, OptionKind::Index),
    option(Some('f'), "--find-links", true, OptionKind::Index),
    option(None, "--trusted-host", true, OptionKind::Index),
    // `--use-feature truststore` changes which certificates are trusted.
    option(None, "--use-feature", true, OptionKind::Index),
    option(None, "--pre", false, OptionKind::Harmless),
    option(None, "--prefer-binary", false, OptionKind::Harmless),
    option(None, "--only-binary", true, OptionKind::Harmless),
    option(None, "--no-binary", true, OptionKind::NoBinary),
    option(None, "--require-hashes", false, OptionKind::Harmless),
    option(None, "--hash", true, OptionKind::Harmless),
    // Arguments to a source build, which runs the package's own code anyway.
    option(None, "--global-option", true, OptionKind::Harmless),
    option(None, "--config-settings", true, OptionKind::Harmless),
];

/// An option as a line gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GivenOption {
    pub spec: &'static OptionSpec,
    /// The token as written, e.g. `--index` for `--index-url`.
    pub given: String,
    pub value: Option<String>,
}

/// Where a package comes from when a line names it directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Location {
    /// A URL with a scheme other than `file:` (including `git+https://...`).
    Remote(String),
    /// A path, or a `file:` URL's path, as written.
    Local(String),
}

impl Location {
    pub fn of(text: &str) -> Location {
        if let Some(path) = text.strip_prefix("file:") {
            let path = path.strip_prefix("//localhost").unwrap_or(path);
            let path = match path.strip_prefix("//") {
                Some(_) if path.starts_with("///") => &path[2..],
                Some(rest) => rest,
                None => path,
            };
            return Location::Local(path.to_string());
        }
        // A VCS URL over `file:` (`git+file:///srv/repo`) reads this machine's disk.
        if let Some((scheme, rest)) = text.split_once("://")
            && scheme.ends_with("+file")
        {
            return Location::Local(rest.strip_prefix("localhost").unwrap_or(rest).to_string());
        }
        if has_scheme(text) {
            return Location::Remote(text.to_string());
        }
        Location::Local(text.to_string())
    }

    /// Whether installing it means building from source (anything but a wheel).
    pub fn needs_build(&self) -> bool {
        let text = match self {
            Location::Remote(text) | Location::Local(text) => text,
        };
        let path = text.split(['#', '?']).next().unwrap_or(text);
        !path.to_ascii_lowercase().ends_with(".whl")
    }
}

/// What a logical line says; `problems` are what pip itself would reject.
#[derive(Debug, Default)]
pub(super) struct Entry {
    /// What the line installs from a location (a URL or path requirement, `-e` values), with
    /// how the line wrote it.
    pub locations: Vec<(String, Location)>,
    pub options: Vec<GivenOption>,
    /// Options pip does not accept in a requirements file: st2pack cannot judge them.
    pub unknown: Vec<String>,
    /// The line could not be read the way pip reads it (unbalanced quotes).
    pub unreadable: Option<String>,
    pub problems: Vec<String>,
}

impl Entry {
    pub fn parse(line: &str) -> Entry {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let split = tokens
            .iter()
            .position(|t| t.starts_with('-'))
            .unwrap_or(tokens.len());
        let (args, options) = tokens.split_at(split);
        let mut entry = Entry::default();
        if !args.is_empty() {
            match requirement(&args.join(" ")) {
                Ok(location) => entry
                    .locations
                    .extend(location.map(|l| (args.join(" "), l))),
                Err(reason) => entry.problems.push(format!(
                    "{line:?} is not a requirement, a pip option or a URL/path: {reason}; fix or \
                     remove the line"
                )),
            }
        }
        if !options.is_empty() {
            entry.read_options(&options.join(" "));
        }
        entry
    }

    fn read_options(&mut self, text: &str) {
        let Some(tokens) = shlex::split(text) else {
            self.unreadable = Some(format!(
                "{text:?} has unbalanced quotes, so its options cannot be read as pip reads them; \
                 fix the quoting"
            ));
            return;
        };
        let mut rest = tokens.into_iter();
        while let Some(token) = rest.next() {
            let (spec, inline) = match find_option(&token) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    self.problems.push(format!(
                        "{token:?} is neither an option nor part of a requirement (pip ignores \
                         it); fix or remove it"
                    ));
                    continue;
                }
                Err(()) => {
                    self.unknown.push(token);
                    continue;
                }
            };
            let given = token.split('=').next().unwrap_or(&token).to_string();
            if !spec.takes_value {
                if inline.is_some() {
                    self.problems.push(format!(
                        "pip option {} takes no value, but got {token:?}",
                        spec.long
                    ));
                }
                self.options.push(GivenOption {
                    spec,
                    given,
                    value: None,
                });
                continue;
            }
            let value = inline.or_else(|| rest.next()).unwrap_or_default();
            if value.is_empty() || value.starts_with('-') {
                self.problems.push(format!(
                    "pip option {} needs a value, as in `{} VALUE`",
                    spec.long, spec.long
                ));
            }
            if spec.kind == OptionKind::Editable && !value.is_empty() {
                let shown = format!("{given} {value}");
                self.locations.push((shown, Location::of(&value)));
            }
            self.options.push(GivenOption {
                spec,
                given,
                value: Some(value),
            });
        }
    }
}

/// `Ok(None)`: not an option at all; `Err`: an option pip does not know.
fn find_option(token: &str) -> Result<Option<(&'static OptionSpec, Option<String>)>, ()> {
    if let Some(long) = token.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (long, None),
        };
        let name = format!("--{name}");
        // optparse accepts an unambiguous prefix of a long option.
        let exact = OPTIONS.iter().find(|o| o.long == name);
        let mut prefixed = OPTIONS.iter().filter(|o| o.long.starts_with(&name));
        let found = match (exact, prefixed.next(), prefixed.next()) {
            (Some(spec), _, _) => spec,
            (None, Some(spec), None) if name.len() > 2 => spec,
            _ => return Err(()),
        };
        return Ok(Some((found, value)));
    }
    let Some(short) = token.strip_prefix('-') else {
        return Ok(None);
    };
    let mut chars = short.chars();
    let Some(letter) = chars.next() else {
        return Err(());
    };
    let spec = OPTIONS.iter().find(|o| o.short == Some(letter)).ok_or(())?;
    let value = chars.as_str();
    Ok(Some((spec, (!value.is_empty()).then(|| value.to_string()))))
}

/// A PEP 508 requirement, or a URL or path pip installs directly.
fn requirement(spec: &str) -> Result<Option<Location>, String> {
    if is_url_or_path(spec) {
        let first = spec.split([' ', ';']).next().unwrap_or(spec);
        return Ok(Some(Location::of(first)));
    }
    let parsed = Requirement::<url::Url>::from_str(&arbitrary_equality_as_version(spec))
        .map_err(|e| hint(spec, e.message.to_string()))?;
    Ok(match parsed.version_or_url {
        Some(VersionOrUrl::Url(url)) => Some(match url.scheme() {
            "file" => Location::Local(url.path().to_string()),
            _ => Location::Remote(url.to_string()),
        }),
        _ => None,
    })
}

/// pip accepts any string after `===` (PEP 440 arbitrary equality); `pep508_rs` wants a version
/// there, so the string is replaced by one before parsing.
fn arbitrary_equality_as_version(spec: &str) -> String {
    let Some((before, after)) = spec.split_once("===") else {
        return spec.to_string();
    };
    let after = after.trim_start();
    let end = after
        .find(|c: char| c.is_whitespace() || ",;)".contains(c))
        .unwrap_or(after.len());
    if end == 0 {
        return spec.to_string();
    }
    format!("{before}===0{}", &after[end..])
}

/// The usual typo, `name=1.0`, gets the fix spelled out.
fn hint(spec: &str, reason: String) -> String {
    match spec.split_once('=') {
        Some((name, version))
            if !name.ends_with(['=', '<', '>', '!', '~']) && !version.starts_with('=') =>
        {
            format!(
                "{reason}; pin a version with ==, as in {}=={}",
                name.trim(),
                version.trim()
            )
        }
        _ => reason,
    }
}

/// Lines pip installs from a location instead of an index.
fn is_url_or_path(spec: &str) -> bool {
    let first = spec.split([' ', ';']).next().unwrap_or(spec);
    let archive = [".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tar", ".zip"]
        .iter()
        .any(|ext| first.ends_with(ext));
    has_scheme(first)
        || ["git+", "hg+", "svn+", "bzr+", "file:"]
            .iter()
            .any(|p| first.starts_with(p))
        || first.starts_with(['.', '/', '~'])
        || first.contains(['/', '\\'])
        || archive
}

/// `scheme://...`
pub(super) fn has_scheme(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Entry {
        let entry = Entry::parse(line);
        assert!(
            entry.problems.is_empty() && entry.unknown.is_empty() && entry.unreadable.is_none(),
            "{line}: {entry:?}"
        );
        entry
    }

    fn bad(line: &str, needle: &str) {
        let entry = Entry::parse(line);
        let all: Vec<String> = entry
            .problems
            .iter()
            .cloned()
            .chain(entry.unknown.iter().map(|u| format!("unknown {u}")))
            .chain(entry.unreadable.clone())
            .collect();
        assert!(
            all.iter().any(|m| m.contains(needle)),
            "{line}: {all:?} lacks {needle:?}"
        );
    }

    #[test]
    fn requirements_pip_accepts_pass() {
        for line in [
            "requests",
            "requests==2.31.0",
            "requests >= 2.0, < 3",
            "requests (>=2.0,<3)",
            "Requests_OAuthlib.x-y",
            "requests[security,socks]>=2.8.1",
            "requests [ security ] == 2.8.*",
            "pyyaml~=6.0",
            "pkg===weird-version",
            "pkg!=1.0.post1,>=1.0a1,<2.0.dev3",
            "pkg==v1.0+local.7",
            "pkg==1!2.0",
            "six; python_version < \"3\"",
            "six ; python_version >= '3.8' and (sys_platform == 'linux' or os_name != \"nt\")",
            "pywin32; platform_system == \"Windows\" and extra not in 'a b'",
            "pkg; 'linux' in sys_platform",
            "pkg @ https://example.com/pkg-1.0.tar.gz",
            "pkg[extra] @ git+https://example.com/pkg.git@v1 ; python_version >= '3'",
            "https://example.com/pkg-1.0-py3-none-any.whl",
            "git+https://github.com/org/repo.git@v1#egg=repo",
            "./vendor/pkg",
            "../pkg-1.0.tar.gz",
            "pkg-1.0-py3-none-any.whl",
            "file:///opt/wheels/pkg.whl",
        ] {
            ok(line);
        }
    }

    #[test]
    fn options_pip_accepts_are_read_with_their_values() {
        for line in [
            "-i https://pypi.example.com/simple",
            "--index-url=https://pypi.example.com/simple",
            "--extra-index-url https://x --trusted-host x",
            "--no-index",
            "-f ./wheels",
            "--find-links=/wheels",
            "--pre",
            "--only-binary :all:",
            "-e git+https://example.com/repo.git#egg=repo",
            "-e ./local",
            "requests==2.31.0 --hash=sha256:abc --hash sha256:def",
        ] {
            ok(line);
        }
        let entry = ok("-r base.txt -c constraints.txt");
        let read: Vec<(&str, Option<&str>)> = entry
            .options
            .iter()
            .map(|o| (o.spec.long, o.value.as_deref()))
            .collect();
        assert_eq!(
            read,
            [
                ("--requirement", Some("base.txt")),
                ("--constraint", Some("constraints.txt"))
            ]
        );
        assert_eq!(
            ok("-rbase.txt").options[0].value.as_deref(),
            Some("base.txt")
        );
        let quoted = ok("--requirement=\"my file.txt\"");
        assert_eq!(quoted.options[0].value.as_deref(), Some("my file.txt"));
        // optparse's abbreviations are what pip acts on.
        let short = ok("--index http://x --extra http://y");
        assert_eq!(short.options[0].spec.long, "--index-url");
        assert_eq!(short.options[0].given, "--index");
        assert_eq!(short.options[1].spec.long, "--extra-index-url");
        assert_eq!(
            ok("-e ./local").locations,
            [("-e ./local".into(), Location::Local("./local".into()))]
        );
        assert_eq!(
            ok("pkg @ file:///opt/x.whl").locations[0].1,
            Location::Local("/opt/x.whl".into())
        );
        assert_eq!(
            ok("pkg @ https://x/p.whl").locations[0].1,
            Location::Remote("https://x/p.whl".into())
        );
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        bad("this is not a requirement", "is not a requirement");
        bad("==1.0", "package name");
        bad("requests=2.0", "pin a version with ==, as in requests==2.0");
        bad("requests>=", "version");
        bad("requests>=two", "version");
        bad("requests>=1.*", "wildcard");
        bad("requests~=2", "two segments");
        bad("requests 2.0", "found `2`");
        bad("requests[secu rity]", "extras");
        bad("requests[security", "closing bracket");
        bad("requests (>=1.0", "closing parenthesis");
        bad("pkg @", "Expected URL");
        bad("_private", "package name");
        bad("pkg; python_version", "marker operator");
        bad("pkg; python_versio < '3'", "python_versio");
        bad(
            "pkg; python_version < '3",
            "end of dependency specification",
        );
        bad("pkg; (python_version < '3'", "Expected ')'");
        bad("--index-url", "needs a value");
        bad("-r", "needs a value");
        bad("--pre=yes", "takes no value");
        bad("--upgrade", "unknown --upgrade");
        bad("--cert /x", "unknown --cert");
        bad("--no x", "unknown --no");
        bad("requests --frobnicate", "unknown --frobnicate");
        bad("-r 'unclosed", "unbalanced quotes");
    }

    #[test]
    fn wheels_alone_need_no_build() {
        assert!(!Location::of("https://x/p-1.0-py3-none-any.whl#sha256=1").needs_build());
        assert!(Location::of("https://x/p-1.0.tar.gz").needs_build());
        assert!(Location::of("git+https://x/p.git").needs_build());
        assert!(Location::of("./local").needs_build());
        assert_eq!(
            Location::of("git+ssh://git@x/p.git"),
            Location::Remote("git+ssh://git@x/p.git".into())
        );
        assert_eq!(
            Location::of("git+file:///srv/repo"),
            Location::Local("/srv/repo".into())
        );
    }
}
