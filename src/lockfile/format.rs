//! The lock file itself: what it holds, and reading and writing it.
//!
//! TOML, because people read it in reviews: one `[[pack]]` table per pack, sorted by name, each
//! with its `[[pack.requirement]]` tables sorted by name, and no timestamps, so that locking
//! twice gives the same bytes and a diff shows only what changed. `format` comes first and is
//! read before anything else, so that a file from a newer st2pack is refused by what it is rather
//! than by the first field this one does not know.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::pack::pin::RuntimePin;

/// The format this st2pack writes and reads.
pub const FORMAT: u32 = 1;

/// The default file name, beside the pipeline that builds with it; at the root of a pack
/// directory it is not part of the pack.
pub const DEFAULT_FILE: &str = crate::source::local::LOCK_FILE;

const HEADER: &str = "# st2packs.lock: exact pack commits and Python requirements, made by \
`st2pack lock`.\n# Build with `st2pack build --locked FILE`; check it with `st2pack lock \
--check`. Do not edit by hand.\n";

/// A whole lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    pub format: u32,
    /// The specs the lock was made from (credentials removed): what `lock --check` resolves
    /// again when given none.
    pub requested: Vec<String>,
    /// The runtime the requirements were resolved for: a build for another is refused.
    pub runtime: RuntimePin,
    pub settings: LockSettings,
    #[serde(default, rename = "pack")]
    pub packs: Vec<LockedPackEntry>,
}

/// The settings that shaped what was locked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSettings {
    /// `six` is locked, as every pack virtualenv gets it.
    pub base_requirements: bool,
    /// pip and wheel are locked too (`--keep-pip`, and always for `st2-pack-install`).
    pub keep_pip: bool,
    /// Only wheels were considered.
    pub only_binary: bool,
}

/// One pack, as exactly as it can be named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackEntry {
    pub name: String,
    pub version: String,
    /// Where it comes from (credentials removed): a git URL or a local directory.
    pub source: String,
    /// The tag or branch that was locked; the build takes `commit` even if it has moved.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// For a directory copied as it is: the digest of its files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    /// Every spec that resolved to this pack, on the command line or in a `dependencies:` list.
    #[serde(default)]
    pub specs: Vec<String>,
    /// The packs it depends on, by name (all in this file).
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// `sha256:` of the pack's requirements files, as its pin records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_digest: Option<String>,
    /// Everything its virtualenv gets: seeds, base requirement and the pack's requirements,
    /// with their dependencies.
    #[serde(default, rename = "requirement")]
    pub requirements: Vec<LockedRequirement>,
}

/// One distribution at one version, with the hashes of every file allowed to install it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LockedRequirement {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A direct reference (`name @ URL`) instead of a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    pub hashes: Vec<String>,
}

impl LockedRequirement {
    /// The requirement as a requirements-file line without its hashes: `six==1.16.0`.
    pub fn specifier(&self) -> String {
        let mut line = match (&self.version, &self.url) {
            (_, Some(url)) => format!("{} @ {url}", self.name),
            (Some(version), None) => format!("{}=={version}", self.name),
            (None, None) => self.name.clone(),
        };
        if let Some(marker) = &self.marker {
            line.push_str(&format!(" ; {marker}"));
        }
        line
    }
}

impl LockedPackEntry {
    /// The requirements file that installs exactly these requirements with `--require-hashes`.
    pub fn requirements_text(&self) -> String {
        let mut text = String::new();
        for requirement in &self.requirements {
            text.push_str(&requirement.specifier());
            for hash in &requirement.hashes {
                text.push_str(&format!(" \\\n    --hash={hash}"));
            }
            text.push('\n');
        }
        text
    }
}

#[derive(Debug, Error)]
pub enum LockFileError {
    #[error(
        "cannot read the lock file {path}: {source}\n  make one with `st2pack lock PACK... -o {path}`"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a lock file of format {found}, but this st2pack reads format {FORMAT} only\n  \
         use the st2pack version that wrote it, or a newer one, or lock again with this one"
    )]
    Newer { path: PathBuf, found: i64 },
    #[error(
        "{path}:{line}: not a valid lock file: {message}\n  fix that line, or lock again with `st2pack lock`"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot write the lock file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl LockFileError {
    /// Bad input (2), except a failed write (1).
    pub fn exit_code(&self) -> i32 {
        match self {
            LockFileError::Write { .. } => 1,
            _ => 2,
        }
    }
}

impl LockFile {
    /// Reads and checks the lock file at `path`.
    pub fn read(path: &Path) -> Result<LockFile, LockFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`, read from `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<LockFile, LockFileError> {
        let corrupt = |error: toml::de::Error| LockFileError::Corrupt {
            path: path.to_path_buf(),
            line: error.span().map_or(1, |span| line_of(text, span.start)),
            message: error.message().trim().to_string(),
        };
        let table: toml::Table = toml::from_str(text).map_err(corrupt)?;
        match table.get("format") {
            Some(toml::Value::Integer(found)) if *found > i64::from(FORMAT) => {
                return Err(LockFileError::Newer {
                    path: path.to_path_buf(),
                    found: *found,
                });
            }
            Some(toml::Value::Integer(found)) if *found == i64::from(FORMAT) => {}
            Some(other) => {
                return Err(LockFileError::Corrupt {
                    path: path.to_path_buf(),
                    line: key_line(text, "format"),
                    message: format!("`format` is {other}, but this st2pack reads format {FORMAT}"),
                });
            }
            None => {
                return Err(LockFileError::Corrupt {
                    path: path.to_path_buf(),
                    line: 1,
                    message: "it has no `format` key: it was not written by `st2pack lock`"
                        .to_string(),
                });
            }
        }
        toml::from_str(text).map_err(corrupt)
    }

    /// The file's text: a header comment, then the TOML.
    pub fn to_text(&self) -> String {
        // Every field is a plain string, bool, number or list of them: serializing cannot fail.
        let body = toml::to_string(self).unwrap_or_default();
        format!("{HEADER}\n{body}")
    }

    /// Writes the file at `path` through a temporary file beside it, so that an interrupted
    /// write never leaves half a lock file.
    pub fn write(&self, path: &Path) -> Result<(), LockFileError> {
        let error = |source| LockFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut file = tempfile::Builder::new()
            .prefix(".st2packs-lock-")
            .tempfile_in(dir)
            .map_err(error)?;
        std::io::Write::write_all(&mut file, self.to_text().as_bytes()).map_err(error)?;
        file.persist(path).map_err(|e| error(e.error))?;
        Ok(())
    }

    /// Sorts everything that has no meaningful order, so equal locks are equal files.
    pub fn normalize(&mut self) {
        self.requested.sort();
        self.requested.dedup();
        self.packs.sort_by(|a, b| a.name.cmp(&b.name));
        for pack in &mut self.packs {
            pack.specs.sort();
            pack.specs.dedup();
            pack.dependencies.sort();
            pack.dependencies.dedup();
            for requirement in &mut pack.requirements {
                requirement.hashes.sort();
                requirement.hashes.dedup();
            }
            pack.requirements.sort();
        }
    }

    pub fn pack(&self, name: &str) -> Option<&LockedPackEntry> {
        self.packs.iter().find(|p| p.name == name)
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line where top-level `key` is set, else 1.
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LockFile {
        let mut lock = LockFile {
            format: FORMAT,
            requested: vec!["b".into(), "a".into()],
            runtime: RuntimePin {
                kind: "preset".into(),
                name: Some("st2-3.8".into()),
                python: "3.8".into(),
                interpreter: "/usr/bin/python3.8".into(),
                platform: Some("x86_64-manylinux_2_31".into()),
                ..Default::default()
            },
            settings: LockSettings {
                base_requirements: true,
                keep_pip: false,
                only_binary: false,
            },
            packs: vec![LockedPackEntry {
                name: "demo".into(),
                version: "1.0.0".into(),
                source: "https://example.com/demo.git".into(),
                reference: Some("v1.0.0".into()),
                commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
                content_digest: None,
                specs: vec!["https://example.com/demo.git=v1.0.0".into()],
                dependencies: vec![],
                requirements_digest: Some("sha256:00".into()),
                requirements: vec![
                    LockedRequirement {
                        name: "six".into(),
                        version: Some("1.16.0".into()),
                        url: None,
                        marker: None,
                        hashes: vec!["sha256:bb".into(), "sha256:aa".into()],
                    },
                    LockedRequirement {
                        name: "setuptools".into(),
                        version: Some("65.5.0".into()),
                        url: None,
                        marker: None,
                        hashes: vec!["sha256:cc".into()],
                    },
                ],
            }],
        };
        lock.normalize();
        lock
    }

    #[test]
    fn round_trips_and_is_stable() {
        let lock = sample();
        let text = lock.to_text();
        assert!(text.contains("format = 1\n"), "{text}");
        assert!(text.contains("[[pack.requirement]]"), "{text}");
        let read = LockFile::parse(&text, Path::new("x.lock")).unwrap();
        assert_eq!(read, lock);
        assert_eq!(read.to_text(), text);
        assert_eq!(
            lock.packs[0].requirements_text(),
            "setuptools==65.5.0 \\\n    --hash=sha256:cc\nsix==1.16.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        );
    }

    #[test]
    fn a_newer_format_names_file_and_both_formats() {
        let text = "format = 7\nsomething_new = true\n";
        let error = LockFile::parse(text, Path::new("ci/st2packs.lock")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("ci/st2packs.lock"), "{message}");
        assert!(message.contains("format 7"), "{message}");
        assert!(message.contains("format 1"), "{message}");
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn a_corrupt_file_names_the_line() {
        let mut text = sample().to_text();
        text = text.replace("version = \"1.0.0\"", "version = \"1.0.0");
        let line = text
            .lines()
            .position(|l| l.starts_with("version = \"1.0.0"))
            .unwrap()
            + 1;
        let message = LockFile::parse(&text, Path::new("a.lock"))
            .unwrap_err()
            .to_string();
        assert!(message.contains(&format!("a.lock:{line}:")), "{message}");

        let text = sample().to_text().replace("name = \"six\"", "name = 6");
        let line = text.lines().position(|l| l == "name = 6").unwrap() + 1;
        let message = LockFile::parse(&text, Path::new("a.lock"))
            .unwrap_err()
            .to_string();
        assert!(message.contains(&format!("a.lock:{line}:")), "{message}");
        let message = LockFile::parse("packs = []\n", Path::new("a.lock"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("no `format`"), "{message}");
    }
}
