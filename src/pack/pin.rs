//! The pin of an installed pack: exactly what one install of a pack is — which pack, at which
//! version, from where, at which commit or content, and with which virtualenv inputs.
//!
//! One type serves every consumer, so the facts cannot drift apart: the installer writes it
//! beside `pack.yaml` as `.st2pack.json` (and compares it to skip an unchanged re-install), the
//! image builder reads it back from an installed tree and makes the image's pack label from it,
//! and lock files and cache keys are to be made from it too. It lives in `pack/`, beneath both
//! `install/` and `build/`, because it describes a pack and depends on neither.
//!
//! The virtualenv's inputs — the interpreter, a digest of the requirements files, the installer
//! and its settings — are recorded as themselves, for a person or a lock file to compare, and
//! as the digest the virtualenv cache keys them by (`install::venv::venv_key`), which also
//! covers what is not worth showing (wheelhouse listing, index variables). The file ships
//! inside every pack layer, so its bytes are part of the image digest: a field added here
//! changes every image built after, and must be a deliberate change of format. Every field
//! added since the first format is optional, so older pins still read.
//!
//! A pin holds no timestamps, so identical installs give identical files, and its source carries
//! no credentials.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// File name of the pin, inside the installed pack directory.
pub const PIN_FILE: &str = ".st2pack.json";

/// What one install of a pack is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackPin {
    pub name: String,
    pub version: String,
    /// The source as the user could type it again, credentials removed; for a pack found
    /// installed without a pin, the directory it was found in.
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
    /// The pack's virtualenv; absent when nothing is known of one (a pack installed by another
    /// tool without a virtualenv, or an image label that names no Python).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualenv: Option<VirtualenvPin>,
}

/// What a pack's virtualenv was built from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualenvPin {
    /// Digest of every input of the virtualenv build: interpreter, requirements, installer and
    /// its settings (see `install::venv::venv_key`). Unknown for a virtualenv st2pack did not
    /// build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Python version of the interpreter the virtualenv was built with, e.g. `3.11.7`: a
    /// virtualenv only works with that interpreter, so this is what to compare with the st2
    /// runtime image.
    pub python_version: String,
    /// The interpreter the virtualenv runs, as its `bin/python` names it (`/usr/bin/python3.8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// `sha256:` of every requirements file the installer reads — the pack's
    /// `requirements.txt`, then what it includes, in reading order; absent when the pack has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_digest: Option<String>,
    /// `sha256:` of the lock file's requirements (exact versions and hashes) the virtualenv was
    /// installed from; absent when it was not built from a lock file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_requirements_digest: Option<String>,
    /// The installer and the settings that shaped the virtualenv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<InstallerPin>,
    /// The runtime the virtualenv was built for: it only works there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimePin>,
}

/// The cluster runtime a virtualenv was built for: the interpreter at that path, of that
/// version, on that platform. Two virtualenvs built for equal runtimes run side by side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimePin {
    /// How it was chosen: `native` (built by the interpreter that runs it), `preset`,
    /// `described` (`--target-python`...), or `image` (`--runtime-image`).
    pub kind: String,
    /// The preset's name (`st2-3.8`), for `preset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `MAJOR.MINOR` of the target Python.
    pub python: String,
    /// The interpreter the virtualenv's `bin/python` names there.
    pub interpreter: String,
    /// The wheel platform in uv's spelling (`x86_64-manylinux_2_31`); absent for a native build,
    /// which takes whatever the interpreter accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The runtime image as given (credentials removed), for `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The runtime image's manifest digest, for `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

impl RuntimePin {
    /// True when a virtualenv built for `self` runs where one built for `other` does: same
    /// Python, same interpreter path and, when both name one, same platform. How the runtime
    /// was named does not matter.
    pub fn runs_with(&self, other: &RuntimePin) -> bool {
        self.python == other.python
            && self.interpreter == other.interpreter
            && match (&self.platform, &other.platform) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            }
    }

    /// How messages name it: `CPython 3.9 at /usr/bin/python3.9 on x86_64-manylinux_2_31
    /// (st2-3.8)`.
    pub fn describe(&self) -> String {
        let mut text = format!("CPython {} at {}", self.python, self.interpreter);
        if let Some(platform) = &self.platform {
            text.push_str(&format!(" on {platform}"));
        }
        match (&self.name, &self.image) {
            (Some(name), _) => text.push_str(&format!(" ({name})")),
            (None, Some(image)) => text.push_str(&format!(" (image {image})")),
            (None, None) => text.push_str(&format!(" ({})", self.kind)),
        }
        text
    }
}

/// The installer of a virtualenv and its settings, as far as they change what it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallerPin {
    /// `uv` or `pip`.
    pub engine: String,
    /// `six>=1.9.0,<2.0` was installed, as upstream does.
    pub base_requirements: bool,
    pub system_site_packages: bool,
    /// No requirement was built from source.
    pub only_binary: bool,
    /// Requirements came only from a local wheelhouse.
    pub offline_wheelhouse: bool,
}

impl PackPin {
    /// The pin an install left in `pack_dir`; `None` when there is none, it cannot be read, or
    /// it is a symlink (a pack may ship a file of that name, and a link would read a file outside
    /// the pack). The pack is then treated as installed by another tool.
    pub fn read(pack_dir: &Path) -> Option<PackPin> {
        let path = pack_dir.join(PIN_FILE);
        if std::fs::symlink_metadata(&path).ok()?.is_symlink() {
            return None;
        }
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the pin into `pack_dir`, readable by everyone (the pack is shipped read-only),
    /// replacing whatever the pack shipped under that name: the old entry is removed and a new
    /// file created, so a symlink is never written through.
    pub fn write(&self, pack_dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        text.push(b'\n');
        let path = pack_dir.join(PIN_FILE);
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

    /// Python version of the pack's virtualenv, when known.
    pub fn python_version(&self) -> Option<&str> {
        self.virtualenv.as_ref().map(|v| v.python_version.as_str())
    }

    /// The runtime the pack's virtualenv was built for, when recorded.
    pub fn runtime(&self) -> Option<&RuntimePin> {
        self.virtualenv.as_ref().and_then(|v| v.runtime.as_ref())
    }

    /// The virtualenv cache key, when known.
    pub fn virtualenv_key(&self) -> Option<&str> {
        self.virtualenv.as_ref().and_then(|v| v.key.as_deref())
    }

    /// True when `other` installs the very same files and virtualenv inputs as `self`, from the
    /// same source and ref: the pin (and the image label made from it) must name the source
    /// given this time, so the same commit from another URL is installed again. A pin without a
    /// virtualenv key cannot vouch for its virtualenv, so it is never the same.
    pub fn same_install_as(&self, other: &PackPin) -> bool {
        self.name == other.name
            && self.source == other.source
            && self.r#ref == other.r#ref
            && self.commit == other.commit
            && self.content_digest == other.content_digest
            && self
                .virtualenv_key()
                .is_some_and(|key| other.virtualenv_key() == Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PackPin {
        PackPin {
            name: "demo".into(),
            version: "1.0.0".into(),
            source: "https://host/demo.git".into(),
            r#ref: Some("v1.0.0".into()),
            commit: Some("abc".into()),
            content_digest: None,
            virtualenv: Some(VirtualenvPin {
                key: Some("k".into()),
                python_version: "3.11.7".into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        sample().write(dir.path()).unwrap();
        assert_eq!(PackPin::read(dir.path()), Some(sample()));
    }

    /// `.st2pack.json` as installs before the pin wrote it (the provenance record): it is read
    /// back whole, and written again byte for byte, since the file is inside every pack layer and
    /// so part of the image digest.
    #[test]
    fn reads_and_rewrites_the_provenance_format_byte_for_byte() {
        let git = "{\n  \"name\": \"demo\",\n  \"version\": \"1.0.0\",\n  \"source\": \"https://host/demo.git\",\n  \"ref\": \"v1.0.0\",\n  \"commit\": \"abc\",\n  \"virtualenv\": {\n    \"key\": \"k\",\n    \"python_version\": \"3.11.7\"\n  }\n}\n";
        let local = "{\n  \"name\": \"hello_st2\",\n  \"version\": \"0.1.0\",\n  \"source\": \"/src/hello_st2\",\n  \"content_digest\": \"0d5a\",\n  \"virtualenv\": {\n    \"key\": \"9f1e\",\n    \"python_version\": \"3.11.2\"\n  }\n}\n";
        let every_field = "{\n  \"name\": \"demo\",\n  \"version\": \"1.0.0\",\n  \"source\": \"/src/demo\",\n  \"ref\": \"HEAD\",\n  \"commit\": \"abc\",\n  \"content_digest\": \"0d5a\",\n  \"virtualenv\": {\n    \"key\": \"k\",\n    \"python_version\": \"3.11.7\"\n  }\n}\n";
        for (old, expected) in [(git, Some(sample())), (local, None), (every_field, None)] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(PIN_FILE), old).unwrap();
            let pin = PackPin::read(dir.path()).expect("an old record is read");
            if let Some(expected) = expected {
                assert_eq!(pin, expected);
            }
            std::fs::remove_file(dir.path().join(PIN_FILE)).unwrap();
            pin.write(dir.path()).unwrap();
            assert_eq!(
                std::fs::read_to_string(dir.path().join(PIN_FILE)).unwrap(),
                old
            );
        }
    }

    #[test]
    fn a_different_commit_or_venv_key_is_a_different_install() {
        let mut other = sample();
        assert!(sample().same_install_as(&other));
        other.commit = Some("def".into());
        assert!(!sample().same_install_as(&other));
        let other = PackPin {
            source: "https://mirror/demo.git".into(),
            ..sample()
        };
        assert!(!sample().same_install_as(&other));
        let other = PackPin {
            r#ref: Some("main".into()),
            ..sample()
        };
        assert!(!sample().same_install_as(&other));
        let mut other = sample();
        other.virtualenv.as_mut().unwrap().key = Some("k2".into());
        assert!(!sample().same_install_as(&other));
        let unknown = PackPin {
            virtualenv: None,
            ..sample()
        };
        assert!(!unknown.same_install_as(&unknown));
    }

    #[test]
    fn runtimes_compare_by_python_interpreter_and_platform() {
        let focal = RuntimePin {
            kind: "preset".into(),
            name: Some("st2-3.8".into()),
            python: "3.8".into(),
            interpreter: "/usr/bin/python3.8".into(),
            platform: Some("x86_64-manylinux_2_31".into()),
            ..Default::default()
        };
        let described = RuntimePin {
            kind: "described".into(),
            name: None,
            ..focal.clone()
        };
        assert!(focal.runs_with(&described));
        let native = RuntimePin {
            kind: "native".into(),
            platform: None,
            ..described.clone()
        };
        assert!(native.runs_with(&focal));
        for other in [
            RuntimePin {
                python: "3.9".into(),
                ..focal.clone()
            },
            RuntimePin {
                interpreter: "/usr/local/bin/python3.8".into(),
                ..focal.clone()
            },
            RuntimePin {
                platform: Some("x86_64-manylinux_2_35".into()),
                ..focal.clone()
            },
        ] {
            assert!(!focal.runs_with(&other), "{}", other.describe());
        }
        assert_eq!(
            focal.describe(),
            "CPython 3.8 at /usr/bin/python3.8 on x86_64-manylinux_2_31 (st2-3.8)"
        );
    }

    #[test]
    fn unreadable_pins_are_absent() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PackPin::read(dir.path()), None);
        std::fs::write(dir.path().join(PIN_FILE), "{not json").unwrap();
        assert_eq!(PackPin::read(dir.path()), None);
    }
}
