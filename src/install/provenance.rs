//! The record an install leaves beside `pack.yaml`: where the pack came from and what its
//! virtualenv was built from.
//!
//! It lets a re-install with unchanged inputs be skipped, lets the image builder label images
//! with each pack's version and commit, and tells a person where an installed pack came from.
//! It holds no timestamps, so identical installs produce identical files, and no credentials.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// File name, inside the installed pack directory.
pub const PROVENANCE_FILE: &str = ".st2pack.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub name: String,
    pub version: String,
    /// The source as the user could type it again, credentials removed.
    pub source: String,
    /// The ref that was installed (`v1.2.0`, `main`, `HEAD`), when the source is git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// The git commit, when the pack came from a commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Digest of the pack's files (see `source::local::tree_digest`), when it was copied from a
    /// directory as it is on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    pub virtualenv: VirtualenvRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualenvRecord {
    /// Digest of every input of the virtualenv build (see `install::venv::venv_key`).
    pub key: String,
    /// Python version of the interpreter the virtualenv was built with, e.g. `3.11.7`.
    pub python_version: String,
}

impl Provenance {
    /// The record in `pack_dir`; none when the file is missing, unreadable or a symlink (a pack
    /// may ship a file of that name, and a link would read a file outside the pack).
    pub fn read(pack_dir: &Path) -> Option<Provenance> {
        let path = pack_dir.join(PROVENANCE_FILE);
        if std::fs::symlink_metadata(&path).ok()?.is_symlink() {
            return None;
        }
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the record into `pack_dir`, replacing whatever the pack shipped under that name:
    /// the old entry is removed and a new file created, so a symlink is never written through.
    pub fn write(&self, pack_dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        text.push(b'\n');
        let path = pack_dir.join(PROVENANCE_FILE);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)?;
        file.write_all(&text)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
    }

    /// True when `other` installs the very same files and virtualenv inputs as `self`.
    pub fn same_install_as(&self, other: &Provenance) -> bool {
        self.name == other.name
            && self.commit == other.commit
            && self.content_digest == other.content_digest
            && self.virtualenv.key == other.virtualenv.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Provenance {
        Provenance {
            name: "demo".into(),
            version: "1.0.0".into(),
            source: "https://host/demo.git".into(),
            r#ref: Some("v1.0.0".into()),
            commit: Some("abc".into()),
            content_digest: None,
            virtualenv: VirtualenvRecord {
                key: "k".into(),
                python_version: "3.11.7".into(),
            },
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        sample().write(dir.path()).unwrap();
        assert_eq!(Provenance::read(dir.path()), Some(sample()));
    }

    #[test]
    fn a_different_commit_or_venv_key_is_a_different_install() {
        let mut other = sample();
        assert!(sample().same_install_as(&other));
        other.commit = Some("def".into());
        assert!(!sample().same_install_as(&other));
        let mut other = sample();
        other.virtualenv.key = "k2".into();
        assert!(!sample().same_install_as(&other));
    }
}
