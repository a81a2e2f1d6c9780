//! A pack's requirements.txt, read once and the way pip reads it, for everyone who needs it: the
//! virtualenv cache key (the content of every file it includes), the installer (what a pack may
//! ask of pip or uv, see [`Policy`]) and `st2pack validate` (every line pip would reject).
//!
//! Lines are cut as pip cuts them (continuations, comments, Python's line breaks); requirements
//! are parsed by `pep508_rs` (names, extras, versions, `@ URL`, environment markers); options by
//! pip's own rules. Includes (`-r`, `-c`) are followed as pip follows them, relative to the
//! including file as the operating system resolves it, and only inside the pack's directory.

mod entry;
mod lines;
mod policy;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::redact::redact_urls_in;
use entry::{Entry, GivenOption, Location, OptionKind, has_scheme};
use lines::Numbered;
pub use policy::Policy;

/// The file a pack's Python requirements are in, at the pack's root.
pub const REQUIREMENTS_FILE: &str = "requirements.txt";

/// Everything read from a pack's requirements file and the files it includes.
#[derive(Debug, Default)]
pub struct Requirements {
    /// Every file read, in the order pip reads them, each once.
    pub files: Vec<ReadFile>,
    pub problems: Vec<Problem>,
    /// The options that choose where packages come from (`--index-url`, `--find-links`...), as
    /// requirement lines in reading order, when the policy allows them: a lock file's exact
    /// requirements are installed from there too. A relative `--find-links` path is made
    /// absolute, as pip resolves it against the file that names it.
    pub index_options: Vec<String>,
    /// The local directories (or files) those `--find-links` options name, resolved the same
    /// way: what is in them is an input of the virtualenv as much as the requirements' text.
    pub find_links_paths: Vec<PathBuf>,
}

/// One file of the requirements, with its path relative to the pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFile {
    pub path: PathBuf,
    pub content: Vec<u8>,
}

/// A line (or a whole file) that pip would reject, or that asks for what the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Relative to the pack's directory.
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    pub message: String,
    /// The installer must not run: the line asks for what a pack may not, or cannot be checked.
    /// Other problems are the installer's to report.
    pub refused: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// The requirements file itself (or the pack directory) could not be read.
#[derive(Debug, thiserror::Error)]
#[error("could not read {}: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl Requirements {
    /// Reads `file` (relative to the pack directory `root`) and the files it includes.
    pub fn read(root: &Path, file: &Path, policy: Policy) -> Result<Requirements, ReadError> {
        let canonical_root = fs::canonicalize(root).map_err(|source| ReadError {
            path: root.join(file),
            source,
        })?;
        let mut reader = Reader {
            root: canonical_root,
            policy,
            found: Requirements::default(),
            seen: HashSet::new(),
            reported: HashSet::new(),
            reading: Reading::Pip,
        };
        let top = root.join(file);
        match reader.inside(&top) {
            Ok(Some(canonical)) => {
                let content = fs::read(&canonical).map_err(|source| ReadError {
                    path: top.clone(),
                    source,
                })?;
                reader.read_file(file, &top, &canonical, content);
            }
            Ok(None) => {
                return Err(ReadError {
                    path: top,
                    source: io::ErrorKind::NotFound.into(),
                });
            }
            Err(reason) => {
                let message = format!("{reason}; a pack's requirements must be inside the pack");
                reader.refuse(file, None, String::new(), message);
            }
        }
        Ok(reader.found)
    }

    /// The problems that stop an install.
    pub fn refusals(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.refused)
    }
}

struct Reader {
    /// The pack directory, symlinks resolved.
    root: PathBuf,
    policy: Policy,
    found: Requirements,
    /// Files already read, symlinks resolved.
    seen: HashSet<PathBuf>,
    /// What was already refused, per file, so the two readings of a file report it once.
    reported: HashSet<(PathBuf, String)>,
    /// How the lines being checked were cut.
    reading: Reading,
}

impl Reader {
    /// `path` with symlinks resolved, when it exists and stays in the pack.
    fn inside(&self, path: &Path) -> Result<Option<PathBuf>, String> {
        let canonical = match fs::canonicalize(path) {
            Ok(canonical) => canonical,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot resolve it: {e}")),
        };
        if canonical.starts_with(&self.root) {
            return Ok(Some(canonical));
        }
        let link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        Err(match link {
            true => format!(
                "it is a symlink to {}, outside the pack",
                canonical.display()
            ),
            false => format!("{} is outside the pack", canonical.display()),
        })
    }

    /// `shown`: what the pack wrote (`-r base.txt`); `pip_path`: the path pip opens.
    fn read_file(&mut self, shown: &Path, pip_path: &Path, canonical: &Path, content: Vec<u8>) {
        if !self.seen.insert(canonical.to_path_buf()) {
            return;
        }
        let relative = canonical
            .strip_prefix(&self.root)
            .map_or_else(|_| shown.to_path_buf(), Path::to_path_buf);
        let text = std::str::from_utf8(&content).map(str::to_string);
        self.found.files.push(ReadFile {
            path: relative.clone(),
            content,
        });
        let Ok(text) = text else {
            let reason = "it is not UTF-8 text, so st2pack cannot check what it asks of the \
                          installer; save it as UTF-8";
            return self.refuse(&relative, None, String::new(), reason.to_string());
        };
        for (number, c) in lines::odd_line_breaks(&text) {
            let reason = format!(
                "the control character U+{:04X} is a line break to some installers and not to \
                 others; remove it",
                u32::from(c)
            );
            self.refuse(&relative, Some(number), format!("{c:?}"), reason);
        }
        let physical = lines::physical(&text);
        let file = File {
            relative: &relative,
            pip_path,
        };
        let outer = self.reading;
        self.reading = Reading::Pip;
        for line in lines::logical(&physical) {
            self.line(&file, &line);
        }
        self.reading = Reading::Alone;
        for line in lines::each_alone(&physical) {
            self.line(&file, &line);
        }
        self.reading = outer;
    }

    fn line(&mut self, file: &File<'_>, line: &Numbered) {
        let entry = Entry::parse(&line.text);
        let at = Some(line.number);
        let relative = file.relative;
        for message in entry.problems {
            self.problem(relative, at, message);
        }
        if let Some(reason) = entry.unreadable {
            self.refuse(relative, at, line.text.clone(), reason);
        }
        for option in entry.unknown {
            let message = policy::unknown_option(&option);
            self.refuse(relative, at, option, message);
        }
        if !self.policy.allow_index_options {
            for name in policy::environment_references(&line.text) {
                let message = policy::environment_variable(name);
                self.refuse(relative, at, format!("${{{name}}}"), message);
            }
        }
        for (shown, location) in &entry.locations {
            self.location(relative, at, shown, location);
        }
        for option in &entry.options {
            self.option(file, at, option);
        }
    }

    fn option(&mut self, file: &File<'_>, at: Option<usize>, option: &GivenOption) {
        let value = option.value.as_deref().unwrap_or("");
        let shown = format!("{} {value}", option.given).trim_end().to_string();
        match option.spec.kind {
            OptionKind::Requirement | OptionKind::Constraint if !value.is_empty() => {
                self.include(file, at, &shown, value);
            }
            OptionKind::Index if !self.policy.allow_index_options => {
                let message = policy::index_option(&shown);
                self.refuse(file.relative, at, shown, message);
            }
            OptionKind::Index if self.reading == Reading::Pip => {
                let local = match value.strip_prefix("file://") {
                    Some(path) => Some(PathBuf::from(path)),
                    None if option.spec.long == "--find-links" && !has_scheme(value) => {
                        let base = file.pip_path.parent().unwrap_or(Path::new(""));
                        Some(base.join(value))
                    }
                    None => None,
                };
                let value = match &local {
                    Some(path) if option.spec.long == "--find-links" => {
                        self.found.find_links_paths.push(path.clone());
                        if value.starts_with("file://") {
                            value.to_string()
                        } else {
                            path.display().to_string()
                        }
                    }
                    _ => value.to_string(),
                };
                let line = format!("{} {value}", option.spec.long);
                self.found.index_options.push(line.trim_end().to_string());
            }
            OptionKind::NoBinary if self.policy.only_binary => {
                let message = policy::no_binary(&shown);
                self.refuse(file.relative, at, shown, message);
            }
            _ => {}
        }
    }

    /// `-r`/`-c`: pip opens the value joined to the including file's directory.
    fn include(&mut self, file: &File<'_>, at: Option<usize>, shown: &str, value: &str) {
        let relative = file.relative;
        if has_scheme(value) && !value.starts_with("file:") {
            if !self.policy.allow_index_options {
                let message = policy::url_include(shown);
                self.refuse(relative, at, shown.to_string(), message);
            }
            return;
        }
        if value.contains("${") {
            return; // refused above unless allowed; then it cannot be resolved here
        }
        let path = match Location::of(value) {
            Location::Local(path) | Location::Remote(path) => path,
        };
        if Path::new(&path).is_absolute() {
            let message =
                policy::outside_include(shown, "an absolute path names a file of this machine");
            return self.refuse(relative, at, shown.to_string(), message);
        }
        let dir = relative.parent().unwrap_or(Path::new(""));
        if !stays_within(&dir.join(&path)) {
            let message = policy::outside_include(shown, "'..' leaves the pack's directory");
            return self.refuse(relative, at, shown.to_string(), message);
        }
        let base = file.pip_path.parent().unwrap_or(Path::new(""));
        let pip_path = base.join(&path);
        match self.inside(&pip_path) {
            Ok(Some(canonical)) => match fs::read(&canonical) {
                Ok(content) => self.read_file(Path::new(&path), &pip_path, &canonical, content),
                Err(e) => {
                    let message = format!("{shown}: cannot read it: {e}");
                    self.refuse(relative, at, shown.to_string(), message);
                }
            },
            Ok(None) => self.problem(
                relative,
                at,
                format!(
                    "{shown}: no such file (paths are relative to {}); add it or fix the path",
                    relative.display()
                ),
            ),
            Err(reason) => {
                let message = policy::outside_include(shown, &reason);
                self.refuse(relative, at, shown.to_string(), message);
            }
        }
    }

    /// A path or URL a line installs from.
    fn location(&mut self, relative: &Path, at: Option<usize>, shown: &str, location: &Location) {
        if self.policy.only_binary && location.needs_build() {
            let message = policy::source_build(shown);
            self.refuse(relative, at, shown.to_string(), message);
        }
        let Location::Local(path) = location else {
            return;
        };
        let reason = if path.starts_with(['/', '~']) {
            Some("an absolute path names a file of this machine".to_string())
        } else if Path::new(path)
            .components()
            .any(|c| c == Component::ParentDir)
        {
            Some("'..' leaves the pack".to_string())
        } else {
            let dir = self.root.join(relative);
            let base = dir.parent().unwrap_or(&self.root);
            self.inside(&base.join(path)).err()
        };
        if let Some(reason) = reason {
            let message = policy::outside_location(shown, &reason);
            self.refuse(relative, at, format!("{shown} (path)"), message);
        }
    }

    /// Records what pip would reject, as pip reads the file.
    fn problem(&mut self, file: &Path, line: Option<usize>, message: String) {
        if self.reading == Reading::Alone {
            return;
        }
        self.found.problems.push(Problem {
            file: file.to_path_buf(),
            line,
            message: redact_urls_in(&message),
            refused: false,
        });
    }

    /// Records a refusal once per file and `key` (what the pack wrote).
    fn refuse(&mut self, file: &Path, line: Option<usize>, key: String, message: String) {
        if !self.reported.insert((file.to_path_buf(), key)) {
            return;
        }
        self.found.problems.push(Problem {
            file: file.to_path_buf(),
            line,
            message: redact_urls_in(&message),
            refused: true,
        });
    }
}

/// Whether a relative path stays inside its root once `.` and `..` are applied in order.
fn stays_within(path: &Path) -> bool {
    let mut depth = 0usize;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// A file being read: its path relative to the pack, and the path pip opens it by.
struct File<'a> {
    relative: &'a Path,
    pip_path: &'a Path,
}

/// pip's logical lines, or each physical line alone (only refusals count there: what another
/// installer might act on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Pip,
    Alone,
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    const STRICT: Policy = Policy {
        allow_index_options: false,
        only_binary: false,
    };

    fn pack(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("pack")).unwrap();
        for (path, content) in files {
            let path = dir.path().join("pack").join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn read(dir: &tempfile::TempDir, policy: Policy) -> Requirements {
        Requirements::read(
            &dir.path().join("pack"),
            Path::new(REQUIREMENTS_FILE),
            policy,
        )
        .unwrap()
    }

    fn refusals(found: &Requirements) -> Vec<String> {
        found.refusals().map(ToString::to_string).collect()
    }

    #[test]
    fn index_options_are_kept_in_reading_order_only_when_allowed() {
        let dir = pack(&[
            (
                "requirements.txt",
                b"--index-url https://bob:s3cret@pypi.example/simple\nsix\n-r reqs/more.txt\n",
            ),
            (
                "reqs/more.txt",
                b"-f ./wheels\n--extra-index-url=https://x.example/simple\n--no-index\npyyaml\n",
            ),
        ]);
        let allowed = Policy {
            allow_index_options: true,
            only_binary: false,
        };
        let wheels = dir.path().join("pack").join("reqs").join("./wheels");
        assert_eq!(
            read(&dir, allowed).index_options,
            [
                "--index-url https://bob:s3cret@pypi.example/simple".to_string(),
                format!("--find-links {}", wheels.display()),
                "--extra-index-url https://x.example/simple".to_string(),
                "--no-index".to_string(),
            ]
        );
        assert_eq!(read(&dir, allowed).find_links_paths, [wheels]);
        assert!(read(&dir, STRICT).index_options.is_empty());
    }

    #[test]
    fn a_refusal_never_quotes_a_credential_the_pack_wrote() {
        let dir = pack(&[(
            "requirements.txt",
            b"--index-url https://bob:s3cret@pypi.example/simple\n\
              -r https://tok3n@files.example/reqs.txt\n",
        )]);
        let shown = refusals(&read(&dir, STRICT)).join("\n");
        assert!(shown.contains("https://***@pypi.example/simple"), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("tok3n"),
            "{shown}"
        );
    }

    #[test]
    fn includes_are_followed_through_continuations_each_file_once() {
        let dir = pack(&[
            (
                "requirements.txt",
                b"six\n-r \\\n  reqs/base.txt\n-c c.txt\n",
            ),
            ("reqs/base.txt", b"-r ../requirements.txt\n-r more.txt\n"),
            ("reqs/more.txt", b"pyyaml\n"),
            ("c.txt", b"six<2\n"),
        ]);
        let found = read(&dir, STRICT);
        let paths: Vec<&Path> = found.files.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(
            paths,
            [
                Path::new("requirements.txt"),
                Path::new("reqs/base.txt"),
                Path::new("reqs/more.txt"),
                Path::new("c.txt")
            ]
        );
        assert!(found.problems.is_empty(), "{:?}", found.problems);
        assert_eq!(found.files[2].content, b"pyyaml\n");
    }

    #[test]
    fn host_files_are_never_read() {
        let dir = pack(&[
            (
                "requirements.txt",
                b"-r /etc/hostname\n-c ../secret.txt\n-r link.txt\n-r up/../secret.txt\n\
                  -r file:///etc/hostname\n-r inside/x.txt\n",
            ),
            ("inside/x.txt", b"six\n"),
        ]);
        fs::write(dir.path().join("secret.txt"), "token\n").unwrap();
        fs::create_dir_all(dir.path().join("outside/inner")).unwrap();
        fs::write(dir.path().join("outside/secret.txt"), "token\n").unwrap();
        symlink(
            dir.path().join("secret.txt"),
            dir.path().join("pack/link.txt"),
        )
        .unwrap();
        // Lexically `up/../secret.txt` is inside; the OS resolves it outside.
        symlink(dir.path().join("outside/inner"), dir.path().join("pack/up")).unwrap();
        let found = read(&dir, STRICT);
        let refused = refusals(&found);
        assert_eq!(refused.len(), 5, "{refused:#?}");
        assert!(refused[0].starts_with("requirements.txt:1: -r /etc/hostname: an absolute path"));
        assert!(refused[1].starts_with("requirements.txt:2: -c ../secret.txt: '..' leaves"));
        assert!(
            refused[2].contains("-r link.txt: it is a symlink to"),
            "{refused:?}"
        );
        assert!(
            refused[3].contains("secret.txt is outside the pack"),
            "{refused:?}"
        );
        assert!(
            refused[4].contains("-r file:///etc/hostname"),
            "{refused:?}"
        );
        let read_paths: Vec<&Path> = found.files.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(
            read_paths,
            [Path::new("requirements.txt"), Path::new("inside/x.txt")]
        );
        assert!(found.files.iter().all(|f| f.content != b"token\n"));
    }

    #[test]
    fn a_requirements_file_linked_out_of_the_pack_is_refused() {
        let dir = pack(&[]);
        fs::write(dir.path().join("secret.txt"), "token\n").unwrap();
        symlink("../secret.txt", dir.path().join("pack/requirements.txt")).unwrap();
        let found = read(&dir, STRICT);
        assert!(found.files.is_empty());
        let refused = refusals(&found);
        assert!(
            refused[0].starts_with("requirements.txt: it is a symlink to"),
            "{refused:?}"
        );
    }

    #[test]
    fn index_and_trust_options_need_the_users_consent() {
        let text = b"--index http://x\n-ihttp://x\n--extra-index-url http://x\n--no-index\n\
                     -f ./wheels\n--trusted-host x\n--use-feature truststore\n\
                     pkg @ https://x/${CI_TOKEN}/p.whl\n-r https://x/r.txt\n\
                     six # note \\\n--find-links http://y\n--pre --prefer-binary --hash sha256:x\n";
        let dir = pack(&[("requirements.txt", text)]);
        let found = read(&dir, STRICT);
        let lines: Vec<Option<usize>> = found.refusals().map(|p| p.line).collect();
        let expected: Vec<Option<usize>> = (1..=9).chain([11]).map(Some).collect();
        assert_eq!(lines, expected, "{:#?}", found.problems);
        let refused = refusals(&found);
        assert!(refused[0].contains("--index http://x: a pack may not choose"));
        assert!(refused[7].contains("${CI_TOKEN}"), "{refused:?}");
        assert!(refused[9].contains("--find-links http://y"), "{refused:?}");
        let allowed = Policy {
            allow_index_options: true,
            only_binary: false,
        };
        assert!(read(&dir, allowed).problems.is_empty());
    }

    #[test]
    fn local_paths_stay_in_the_pack() {
        let dir = pack(&[(
            "requirements.txt",
            b"-e /srv/lib\n./vendor/pkg\n-e ../sibling\npkg @ file:///srv/p.whl\n~/pkg.whl\n\
              git+file:///srv/repo\n-e git+https://x/r.git#egg=r\n",
        )]);
        let found = read(&dir, STRICT);
        let lines: Vec<Option<usize>> = found.refusals().map(|p| p.line).collect();
        assert_eq!(
            lines,
            [Some(1), Some(3), Some(4), Some(5), Some(6)],
            "{found:#?}"
        );
    }

    #[test]
    fn only_binary_refuses_every_source_build() {
        let dir = pack(&[(
            "requirements.txt",
            b"requests\n-e ./local\ngit+https://x/r.git\npkg @ https://x/p-1.0.tar.gz\n\
              --no-binary :all:\npkg @ https://x/p-1.0-py3-none-any.whl\n",
        )]);
        assert!(read(&dir, STRICT).problems.is_empty());
        let only_binary = Policy {
            allow_index_options: false,
            only_binary: true,
        };
        let found = read(&dir, only_binary);
        let lines: Vec<Option<usize>> = found.refusals().map(|p| p.line).collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4), Some(5)], "{found:#?}");
    }

    #[test]
    fn text_read_differently_by_installers_is_refused() {
        let dir = pack(&[("requirements.txt", b"six\n\xff\n")]);
        let refused = refusals(&read(&dir, STRICT));
        assert!(refused[0].contains("not UTF-8"), "{refused:?}");
        let dir = pack(&[(
            "requirements.txt",
            b"six\x1e--index-url http://x\n--cert /x\n",
        )]);
        let refused = refusals(&read(&dir, STRICT));
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused[0].contains("U+001E"), "{refused:?}");
        assert!(refused[1].contains("--index-url"), "{refused:?}");
        assert!(
            refused[2].contains("\"--cert\" is not an option"),
            "{refused:?}"
        );
    }
}
