//! StackStorm's `st2.conf`, read the way StackStorm reads it, plus `ST2_<GROUP>__<OPTION>` overrides.
//!
//! `st2-pack-install` must put packs and virtualenvs where the st2 services will look, so it honours
//! the same file and options they do. The file is an oslo.config INI file; it is parsed with the
//! `configparser` crate in its Python-`configparser`-like mode (multi-line values, case-sensitive
//! option names, `:` or `=`, `#`/`;` comment lines, no inline comments), plus a few thin steps that
//! close the gaps to oslo.config that matter for the options st2pack reads (see `parse_ini`).
//!
//! st2.conf holds database and message-queue passwords: error messages here name the file and line,
//! never the text of a line.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use configparser::ini::{Ini, IniDefault};

/// Where StackStorm packages install their configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/st2/st2.conf";

/// StackStorm's default for `[system] base_path`.
pub const DEFAULT_BASE_PATH: &str = "/opt/stackstorm";

/// The env variable StackStorm's own tools read to find st2.conf.
pub const CONFIG_PATH_ENV: &str = "ST2_CONFIG_PATH";

/// Options whose `ST2_<GROUP>__<OPTION>` override is captured even when the file does not mention
/// them: the environment is only consulted while loading (it is injected, and cannot be listed).
const KNOWN_OPTIONS: &[(&str, &str)] = &[
    ("system", "base_path"),
    ("content", "packs_base_paths"),
    ("content", "system_packs_base_path"),
    ("content", "index_url"),
    ("actionrunner", "python_binary"),
    ("actionrunner", "virtualenv_binary"),
    ("actionrunner", "virtualenv_opts"),
    ("actionrunner", "pip_opts"),
];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config file {} (given with --config-file) does not exist; check the path, or leave out \
         --config-file to use {CONFIG_PATH_ENV} or {DEFAULT_CONFIG_PATH}",
        path.display()
    )]
    ExplicitMissing { path: PathBuf },

    #[error(
        "{CONFIG_PATH_ENV} points to {}, which does not exist; fix the path or unset \
         {CONFIG_PATH_ENV}",
        path.display()
    )]
    EnvPathMissing { path: PathBuf },

    #[error(
        "cannot read config file {}: {source}; check that it is a readable text file, or pass \
         another one with --config-file",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{}, line {line}: {message}; fix the line (st2.conf uses oslo.config INI syntax: \
         `[group]` headers, `option = value` lines, `#` comments)",
        path.display()
    )]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Parsed st2.conf values plus the environment overrides in force when it was loaded.
#[derive(Debug, Clone, Default)]
pub struct St2Config {
    file: Option<PathBuf>,
    /// group -> option -> value; for repeated options the last one wins, as for oslo `StrOpt`s.
    values: BTreeMap<String, BTreeMap<String, String>>,
    /// Same shape, from `ST2_<GROUP>__<OPTION>`.
    overrides: BTreeMap<String, BTreeMap<String, String>>,
}

impl St2Config {
    /// Which file: `explicit` (from --config-file; must exist, else error naming it), else env
    /// ST2_CONFIG_PATH (must exist), else /etc/st2/st2.conf when it exists, else no file.
    /// `env` is injected so tests need not touch the process environment.
    pub fn load(
        explicit: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<St2Config, ConfigError> {
        Self::load_with_default(explicit, env, Path::new(DEFAULT_CONFIG_PATH))
    }

    /// [`St2Config::load`] with the fallback path made explicit, so tests can point it elsewhere.
    fn load_with_default(
        explicit: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        default_path: &Path,
    ) -> Result<St2Config, ConfigError> {
        let from_env = env(CONFIG_PATH_ENV)
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from);
        let (path, missing): (PathBuf, fn(PathBuf) -> ConfigError) = match (explicit, from_env) {
            (Some(p), _) => (p.to_path_buf(), |path| ConfigError::ExplicitMissing {
                path,
            }),
            (None, Some(p)) => (p, |path| ConfigError::EnvPathMissing { path }),
            // An absent default file is normal (containers, CI); an unreadable one is not ignored,
            // because installing into the wrong place silently is worse than stopping.
            (None, None) if default_path.exists() => {
                (default_path.to_path_buf(), |path| ConfigError::Read {
                    path,
                    source: ErrorKind::NotFound.into(),
                })
            }
            (None, None) => return Ok(Self::from_parts(None, BTreeMap::new(), env)),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(missing(path)),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Self::from_ini_str(&text, &path, env)
    }

    /// Parses st2.conf text; `file` is only used in messages and [`St2Config::source_file`].
    pub fn from_ini_str(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<St2Config, ConfigError> {
        let values = parse_ini(text).map_err(|(line, message)| ConfigError::Syntax {
            path: file.to_path_buf(),
            line,
            message,
        })?;
        Ok(Self::from_parts(Some(file.to_path_buf()), values, env))
    }

    fn from_parts(
        file: Option<PathBuf>,
        values: BTreeMap<String, BTreeMap<String, String>>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> St2Config {
        let mut wanted: Vec<(String, String)> = KNOWN_OPTIONS
            .iter()
            .map(|(g, o)| (g.to_string(), o.to_string()))
            .collect();
        for (group, options) in &values {
            wanted.extend(options.keys().map(|o| (group.clone(), o.clone())));
        }
        let mut overrides: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (group, option) in wanted {
            if let Some(value) = env(&env_var_name(&group, &option)) {
                overrides.entry(group).or_default().insert(option, value);
            }
        }
        St2Config {
            file,
            values,
            overrides,
        }
    }

    /// The value of `[group] option`: the env override if one was set, else the file's value.
    pub fn get(&self, group: &str, option: &str) -> Option<String> {
        let group = normalise_group(group);
        [&self.overrides, &self.values]
            .into_iter()
            .find_map(|layer| layer.get(&group).and_then(|opts| opts.get(option)).cloned())
    }

    /// The st2.conf that was read, if any.
    pub fn source_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// `[system] base_path`, default `/opt/stackstorm`.
    pub fn base_path(&self) -> PathBuf {
        self.non_blank("system", "base_path")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BASE_PATH))
    }

    /// Where packs are installed, as StackStorm's own installer does it: `[content]
    /// system_packs_base_path` if set, else the first entry of `[content] packs_base_paths`
    /// (colon-separated), else `<base_path>/packs`.
    pub fn packs_dir(&self) -> PathBuf {
        self.non_blank("content", "system_packs_base_path")
            .map(PathBuf::from)
            .or_else(|| {
                self.get("content", "packs_base_paths").and_then(|v| {
                    v.split(':')
                        .map(str::trim)
                        .find(|p| !p.is_empty())
                        .map(PathBuf::from)
                })
            })
            .unwrap_or_else(|| self.base_path().join("packs"))
    }

    /// `<base_path>/virtualenvs`, where st2 looks for each pack's virtualenv.
    pub fn virtualenvs_dir(&self) -> PathBuf {
        self.base_path().join("virtualenvs")
    }

    /// `[content] index_url` as a list (comma-separated, blanks dropped); empty if unset. Line
    /// breaks of a multi-line value separate entries too, since a URL cannot contain one.
    pub fn index_urls(&self) -> Vec<String> {
        self.get("content", "index_url")
            .map(|v| {
                v.split([',', '\n'])
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `[actionrunner] python_binary`, the interpreter pack virtualenvs must be built with.
    pub fn python_binary(&self) -> Option<PathBuf> {
        self.non_blank("actionrunner", "python_binary")
            .map(PathBuf::from)
    }

    /// `[actionrunner] virtualenv_opts`, whitespace-split; only what is configured, no defaults.
    pub fn virtualenv_opts(&self) -> Vec<String> {
        self.get("actionrunner", "virtualenv_opts")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Whether `virtualenv_opts` asks for access to the interpreter's site-packages.
    pub fn system_site_packages(&self) -> bool {
        self.virtualenv_opts()
            .iter()
            .any(|o| o == "--system-site-packages")
    }

    /// A trimmed value, treating a blank one (e.g. `ST2_SYSTEM__BASE_PATH=`) as unset.
    fn non_blank(&self, group: &str, option: &str) -> Option<String> {
        self.get(group, option)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

/// `ST2_CONTENT__INDEX_URL` for (`content`, `index_url`).
pub fn env_var_name(group: &str, option: &str) -> String {
    format!(
        "ST2_{}__{}",
        normalise_group(group).to_uppercase(),
        option.to_uppercase()
    )
}

/// oslo.config lower-cases group names except `DEFAULT`.
fn normalise_group(group: &str) -> String {
    if group == "DEFAULT" {
        group.to_string()
    } else {
        group.to_lowercase()
    }
}

type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// Parses st2.conf with the `configparser` crate, set up to match oslo.config: case-sensitive
/// option names, multi-line values (indented lines continue the value above), `=` and `:` as
/// delimiters, `#`/`;` comments only at the start of a line (an inline `#` is part of the value,
/// as in oslo), and `[DEFAULT]` kept as an ordinary group (no cascading).
///
/// Three thin post-processing steps bring the result in line with oslo.config where it matters
/// for the paths and interpreter st2pack reads (`base_path`, `packs_base_paths`,
/// `system_packs_base_path`, `index_url`, `python_binary`, `virtualenv_opts`):
/// - group names are lower-cased (except `DEFAULT`), as oslo does; the crate's case-sensitive
///   mode keeps them as written. Should a file spell one group in several ways and repeat an
///   option across them, the lower-case spelling wins.
/// - one pair of matching quotes around a value is stripped, as oslo does, so
///   `base_path = "/srv/st2"` means `/srv/st2` rather than a path with quotes in it.
/// - a line without `=` or `:` (which the crate keeps as an option with no value, e.g. a
///   `base_path /srv/st2` missing its `=`) is an error, as in oslo, instead of silently leaving
///   `base_path` at its default; the crate does not say on which line it was, so the first line
///   whose text is that option is reported.
///
/// Errors are (1-based line, message) and never quote the line, which could hold a password:
/// the crate's own message is not passed on, only its line number.
fn parse_ini(text: &str) -> Result<Sections, (usize, String)> {
    let mut defaults = IniDefault::default();
    defaults.case_sensitive = true;
    defaults.multiline = true;
    defaults.delimiters = vec!['=', ':'];
    defaults.comment_symbols = vec!['#', ';'];
    defaults.enable_inline_comments = false;
    defaults.cascade_defaults = false;
    let mut ini = Ini::new_from_defaults(defaults);
    let parsed = ini.read(text.to_string()).map_err(crate_error)?;

    // Sorted so that the merge below is deterministic; upper case sorts before lower case.
    let parsed: BTreeMap<String, _> = parsed.into_iter().collect();
    let mut sections: Sections = BTreeMap::new();
    for (section, options) in parsed {
        let group = sections.entry(normalise_group(&section)).or_default();
        for (key, value) in options {
            let Some(value) = value else {
                let line = text
                    .lines()
                    .position(|l| l.trim() == key)
                    .map_or(0, |i| i + 1);
                return Err((
                    line,
                    "line is neither a `[group]` header, an `option = value` assignment nor a \
                     comment"
                        .to_string(),
                ));
            };
            group.insert(key, strip_quotes(value));
        }
    }
    Ok(sections)
}

/// Turns a `configparser` error (`line N: ...` or `line N:COL: ...`) into (line, message) with a
/// message of our own, so no text the crate might quote from the file is passed on.
fn crate_error(error: String) -> (usize, String) {
    let line = error
        .strip_prefix("line ")
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or("")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let message = if error.contains("closing bracket") {
        "group header is missing its closing `]`"
    } else if error.contains("Key cannot be empty") {
        "assignment has no option name before `=`"
    } else {
        "the line is not valid INI syntax"
    };
    (line, message.to_string())
}

/// oslo.config strips one pair of matching quotes from the first line of a value.
fn strip_quotes(value: String) -> String {
    let first = value.split('\n').next().unwrap_or("");
    let quoted = |q: char| first.len() >= 2 && first.starts_with(q) && first.ends_with(q);
    if quoted('"') || quoted('\'') {
        format!("{}{}", &first[1..first.len() - 1], &value[first.len()..])
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn parse(text: &str) -> St2Config {
        St2Config::from_ini_str(text, Path::new("/etc/st2/st2.conf"), &no_env).unwrap()
    }

    fn syntax_error(text: &str) -> (usize, String) {
        match St2Config::from_ini_str(text, Path::new("/x/st2.conf"), &no_env) {
            Err(ConfigError::Syntax { line, message, .. }) => (line, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    const SAMPLE: &str = "\
# System-wide configuration
[DEFAULT]
debug = False

[system]
base_path = /srv/st2

[content]
packs_base_paths = /srv/packs:/srv/packs-dev:
index_url = https://a.example/index.json, ,https://b.example/index.json

[actionrunner]
python_binary = /usr/bin/python3.8
virtualenv_opts = --always-copy --system-site-packages
; a comment
[database]
password = \"s3cr#t\"
";

    #[test]
    fn defaults_without_a_file() {
        let cfg = St2Config::load_with_default(None, &no_env, Path::new("/nonexistent/st2.conf"))
            .unwrap();
        assert_eq!(cfg.source_file(), None);
        assert_eq!(cfg.base_path(), Path::new("/opt/stackstorm"));
        assert_eq!(cfg.packs_dir(), Path::new("/opt/stackstorm/packs"));
        assert_eq!(
            cfg.virtualenvs_dir(),
            Path::new("/opt/stackstorm/virtualenvs")
        );
        assert!(cfg.index_urls().is_empty());
        assert_eq!(cfg.python_binary(), None);
        assert!(cfg.virtualenv_opts().is_empty());
        assert!(!cfg.system_site_packages());
    }

    #[test]
    fn every_accessor_reads_the_file() {
        let cfg = parse(SAMPLE);
        assert_eq!(cfg.source_file(), Some(Path::new("/etc/st2/st2.conf")));
        assert_eq!(cfg.base_path(), Path::new("/srv/st2"));
        assert_eq!(cfg.packs_dir(), Path::new("/srv/packs"));
        assert_eq!(cfg.virtualenvs_dir(), Path::new("/srv/st2/virtualenvs"));
        assert_eq!(
            cfg.index_urls(),
            vec![
                "https://a.example/index.json",
                "https://b.example/index.json"
            ]
        );
        assert_eq!(
            cfg.python_binary(),
            Some(PathBuf::from("/usr/bin/python3.8"))
        );
        assert_eq!(
            cfg.virtualenv_opts(),
            vec!["--always-copy", "--system-site-packages"]
        );
        assert!(cfg.system_site_packages());
        assert_eq!(cfg.get("DEFAULT", "debug").as_deref(), Some("False"));
        // Quotes are stripped and an inline `#` is part of the value, as in oslo.config.
        assert_eq!(cfg.get("database", "password").as_deref(), Some("s3cr#t"));
    }

    #[test]
    fn packs_dir_without_packs_base_paths_follows_base_path() {
        let cfg = parse("[system]\nbase_path = /data/st2\n");
        assert_eq!(cfg.packs_dir(), Path::new("/data/st2/packs"));
        // Leading empty entries are skipped, not turned into "".
        let cfg = parse("[content]\npacks_base_paths = :/b:/c\n");
        assert_eq!(cfg.packs_dir(), Path::new("/b"));
        // A multi-line list works too.
        let cfg = parse("[content]\npacks_base_paths =\n    /m1:\n    /m2\n");
        assert_eq!(cfg.packs_dir(), Path::new("/m1"));
    }

    #[test]
    fn packs_dir_prefers_system_packs_base_path() {
        let text = "[system]\nbase_path = /data/st2\n\
                    [content]\n\
                    packs_base_paths = /extra/a:/extra/b\n\
                    system_packs_base_path = /data/system-packs\n";
        assert_eq!(parse(text).packs_dir(), Path::new("/data/system-packs"));

        // The env override of system_packs_base_path wins, even when the file lacks it.
        let env = env_of(&[("ST2_CONTENT__SYSTEM_PACKS_BASE_PATH", "/env/packs")]);
        let cfg = St2Config::from_ini_str(SAMPLE, Path::new("f"), &env).unwrap();
        assert_eq!(cfg.packs_dir(), Path::new("/env/packs"));

        // Blank counts as unset: packs_base_paths, then <base_path>/packs, take over.
        let env = env_of(&[("ST2_CONTENT__SYSTEM_PACKS_BASE_PATH", " ")]);
        let cfg = St2Config::from_ini_str(text, Path::new("f"), &env).unwrap();
        assert_eq!(cfg.packs_dir(), Path::new("/extra/a"));
        let cfg = parse("[system]\nbase_path = /data/st2\n[content]\nsystem_packs_base_path =\n");
        assert_eq!(cfg.packs_dir(), Path::new("/data/st2/packs"));
    }

    #[test]
    fn env_override_beats_file_and_works_without_file() {
        let env = env_of(&[
            ("ST2_SYSTEM__BASE_PATH", "/env/st2"),
            ("ST2_CONTENT__INDEX_URL", "file:///i.json,https://c/i.json"),
            ("ST2_ACTIONRUNNER__VIRTUALENV_OPTS", "--always-copy"),
            ("ST2_DATABASE__PASSWORD", "fromenv"),
            ("ST2_DEFAULT__DEBUG", "True"),
        ]);
        let cfg = St2Config::from_ini_str(SAMPLE, Path::new("/etc/st2/st2.conf"), &env).unwrap();
        assert_eq!(cfg.base_path(), Path::new("/env/st2"));
        assert_eq!(cfg.virtualenvs_dir(), Path::new("/env/st2/virtualenvs"));
        assert_eq!(cfg.index_urls(), vec!["file:///i.json", "https://c/i.json"]);
        assert!(!cfg.system_site_packages());
        // Options that are only in the file get their overrides too.
        assert_eq!(cfg.get("database", "password").as_deref(), Some("fromenv"));
        assert_eq!(cfg.get("DEFAULT", "debug").as_deref(), Some("True"));
        // Untouched options still come from the file.
        assert_eq!(cfg.packs_dir(), Path::new("/srv/packs"));

        let cfg =
            St2Config::load_with_default(None, &env, Path::new("/nonexistent/st2.conf")).unwrap();
        assert_eq!(cfg.base_path(), Path::new("/env/st2"));
        assert_eq!(cfg.packs_dir(), Path::new("/env/st2/packs"));
    }

    #[test]
    fn blank_env_override_falls_back_to_default() {
        let env = env_of(&[("ST2_SYSTEM__BASE_PATH", "  ")]);
        let cfg = St2Config::from_ini_str(SAMPLE, Path::new("f"), &env).unwrap();
        assert_eq!(cfg.base_path(), Path::new("/opt/stackstorm"));
    }

    #[test]
    fn env_var_names() {
        assert_eq!(
            env_var_name("content", "index_url"),
            "ST2_CONTENT__INDEX_URL"
        );
        assert_eq!(env_var_name("DEFAULT", "debug"), "ST2_DEFAULT__DEBUG");
    }

    #[test]
    fn explicit_file_is_used_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("st2.conf");
        std::fs::write(&path, "[system]\nbase_path = /from/explicit\n").unwrap();
        // Explicit beats ST2_CONFIG_PATH.
        let env = env_of(&[("ST2_CONFIG_PATH", "/nonexistent/other.conf")]);
        let cfg = St2Config::load(Some(&path), &env).unwrap();
        assert_eq!(cfg.source_file(), Some(path.as_path()));
        assert_eq!(cfg.base_path(), Path::new("/from/explicit"));

        let missing = dir.path().join("missing.conf");
        let err = St2Config::load(Some(&missing), &no_env).unwrap_err();
        assert!(
            matches!(err, ConfigError::ExplicitMissing { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&missing.display().to_string()), "{msg}");
        assert!(msg.contains("--config-file"), "{msg}");
    }

    #[test]
    fn st2_config_path_is_used_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.conf");
        std::fs::write(&path, "[content]\nindex_url = file:///srv/index.json\n").unwrap();
        let path_text = path.display().to_string();
        let env = env_of(&[("ST2_CONFIG_PATH", &path_text)]);
        let cfg = St2Config::load(None, &env).unwrap();
        assert_eq!(cfg.source_file(), Some(path.as_path()));
        assert_eq!(cfg.index_urls(), vec!["file:///srv/index.json"]);

        let env = env_of(&[("ST2_CONFIG_PATH", "/nonexistent/st2pack/st2.conf")]);
        let err = St2Config::load(None, &env).unwrap_err();
        assert!(matches!(err, ConfigError::EnvPathMissing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("ST2_CONFIG_PATH") && msg.contains("/nonexistent/st2pack/st2.conf"));
    }

    #[test]
    fn default_path_is_read_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("st2.conf");
        std::fs::write(&path, "[system]\nbase_path = /from/default\n").unwrap();
        let cfg = St2Config::load_with_default(None, &no_env, &path).unwrap();
        assert_eq!(cfg.source_file(), Some(path.as_path()));
        assert_eq!(cfg.base_path(), Path::new("/from/default"));
    }

    #[test]
    fn unreadable_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory exists but cannot be read as text.
        let err = St2Config::load(Some(dir.path()), &no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn multi_line_values_comments_and_oslo_syntax() {
        let cfg = parse(
            "[content]\n\
             index_url = https://a/i.json,\n  \
             https://b/i.json\n  \
             https://c/i.json\n\
             packs_base_paths = /p\n\
             \t# a comment line, even indented, is not part of the value\n\
             \n\
             [ActionRunner]\n\
             virtualenv_opts:\n    --always-copy\n    --system-site-packages\n\
             python_binary = /a\n\
             python_binary = /b\n\
             Python_Binary = /case-sensitive\n",
        );
        assert_eq!(
            cfg.get("content", "index_url").as_deref(),
            Some("https://a/i.json,\nhttps://b/i.json\nhttps://c/i.json")
        );
        assert_eq!(
            cfg.index_urls(),
            ["https://a/i.json", "https://b/i.json", "https://c/i.json"]
        );
        assert_eq!(
            cfg.get("content", "packs_base_paths").as_deref(),
            Some("/p")
        );
        // Group names are case-insensitive, option names are not; the last repeat wins.
        assert!(cfg.system_site_packages());
        assert_eq!(cfg.python_binary(), Some(PathBuf::from("/b")));
        assert_eq!(
            cfg.get("actionrunner", "Python_Binary").as_deref(),
            Some("/case-sensitive")
        );
        assert_eq!(cfg.get("actionrunner", "PYTHON_BINARY"), None);
    }

    #[test]
    fn crlf_and_indented_comment_before_any_option() {
        let cfg = parse("[system]\r\n  # note\r\nbase_path = /crlf\r\n");
        assert_eq!(cfg.base_path(), Path::new("/crlf"));
    }

    #[test]
    fn quotes_are_stripped_from_paths_as_in_oslo() {
        let cfg = parse(
            "[system]\nbase_path = \"/srv/my st2\"\n\
             [actionrunner]\npython_binary = '/usr/bin/python3'\n\
             virtualenv_opts = \"--always-copy\n    --system-site-packages\n\
             [content]\nindex_url = 'https://a/i.json\n",
        );
        assert_eq!(cfg.base_path(), Path::new("/srv/my st2"));
        assert_eq!(cfg.python_binary(), Some(PathBuf::from("/usr/bin/python3")));
        // Only a matching pair around the first line is stripped.
        assert_eq!(
            cfg.virtualenv_opts(),
            ["\"--always-copy", "--system-site-packages"]
        );
        assert_eq!(cfg.index_urls(), ["'https://a/i.json"]);
    }

    #[test]
    fn malformed_files_name_file_and_line_without_quoting_it() {
        let (line, msg) = syntax_error("[system]\nbase_path = /x\n[content\n");
        assert_eq!(line, 3);
        assert!(msg.contains("`]`"), "{msg}");

        let (line, msg) = syntax_error("[database]\nthis line is junk hunter2\n");
        assert_eq!(line, 2);
        assert!(!msg.contains("hunter2"), "{msg}");

        let (line, msg) = syntax_error("[system]\n= hunter2\n");
        assert_eq!(line, 2);
        assert!(
            msg.contains("option name") && !msg.contains("hunter2"),
            "{msg}"
        );
        assert_eq!(syntax_error("[system]\n\n  stray continuation\n").0, 3);

        let err = St2Config::from_ini_str("[a\n", Path::new("/x/st2.conf"), &no_env).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/x/st2.conf, line 1:"), "{text}");
    }

    #[test]
    fn malformed_file_through_load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("st2.conf");
        std::fs::write(&path, "[system]\nbase_path /nope\n").unwrap();
        let err = St2Config::load(Some(&path), &no_env).unwrap_err();
        match &err {
            ConfigError::Syntax { path: p, line, .. } => {
                assert_eq!(p, &path);
                assert_eq!(*line, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
