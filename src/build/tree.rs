//! The installed tree an image is made from: `<root>/packs/<pack>` and
//! `<root>/virtualenvs/<pack>`, the layout `st2-pack-install` writes, with each pack's pin.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::pack::manifest::PackManifest;
use crate::pack::name::PackName;
use crate::pack::pin::{PackPin, RuntimePin, VirtualenvPin};

/// One installed pack, ready to become a layer.
#[derive(Debug, Clone)]
pub struct PackTree {
    pub name: PackName,
    pub pack_dir: PathBuf,
    /// Absent for a pack installed by another tool without a virtualenv, and for one whose
    /// virtualenv was not built because a `--cache-from` image has its layer
    /// ([`virtualenv_elsewhere`](Self::virtualenv_elsewhere)).
    pub virtualenv_dir: Option<PathBuf>,
    /// The install built no virtualenv: one in a `--cache-from` image is the same (see
    /// `InstallOptions::virtualenvs_elsewhere`), and its directory here is empty.
    pub virtualenv_elsewhere: bool,
    /// What the install was: the pin st2pack left, or for a pack installed by another tool what
    /// its pack.yaml and virtualenv say (its source is then the directory it was found in).
    pub pin: PackPin,
}

#[derive(Debug, Error)]
pub enum TreeError {
    #[error(
        "--root {0}: no such directory\n  give the directory st2-pack-install installed into (it holds packs/ and virtualenvs/)"
    )]
    MissingRoot(PathBuf),
    #[error(
        "--root {0} has no packs/ directory with packs in it\n  install packs first (st2-pack-install --packs-dir {0}/packs --virtualenvs-dir {0}/virtualenvs PACK...), or give pack specs to st2pack build"
    )]
    NoPacks(PathBuf),
    #[error("{path}: {message}")]
    Pack { path: PathBuf, message: String },
    #[error(
        "--root {root}: the virtualenv of pack {pack} is not there (its directory is empty: the \
         build that installed the pack took the virtualenv's layer from a --cache-from image). \
         Give the pack to st2pack build (st2pack build --root {root} PACK...) to build it here"
    )]
    VirtualenvElsewhere { root: PathBuf, pack: String },
    #[error(
        "--root {root}: the virtualenv of pack {pack} was built for {built_for}, but this build \
         is for {asked}; a virtualenv only runs on the runtime it was built for, so one image \
         cannot hold both. Build for {built_for} (the same runtime options as before), or \
         install into a new --root"
    )]
    OtherRuntime {
        root: PathBuf,
        pack: String,
        built_for: String,
        asked: String,
    },
}

/// Refuses a tree holding a pack whose virtualenv was built for another runtime than `asked`.
/// Packs with no runtime recorded (installed by another tool, or by an older st2pack) pass.
pub fn check_runtime(root: &Path, asked: &RuntimePin) -> Result<(), TreeError> {
    if !root.join("packs").is_dir() {
        return Ok(());
    }
    let packs = match every_pack(root) {
        Ok(packs) => packs,
        Err(TreeError::NoPacks(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    for pack in packs {
        if let Some(built_for) = pack.pin.runtime().filter(|r| !r.runs_with(asked)) {
            return Err(TreeError::OtherRuntime {
                root: root.to_path_buf(),
                pack: pack.name.to_string(),
                built_for: built_for.describe(),
                asked: asked.describe(),
            });
        }
    }
    Ok(())
}

/// Every pack under `<root>/packs`, sorted by name, to be layered as it is. Entries that are not
/// packs (dot files, the installer's staging and lock) are ignored; a directory with a pack name
/// but a broken pack.yaml is an error, since shipping it would break the cluster's pack
/// registration, and so is a pack whose virtualenv a `--cache-from` build left empty.
pub fn collect(root: &Path) -> Result<Vec<PackTree>, TreeError> {
    let packs = every_pack(root)?;
    // An empty virtualenv directory is one a --cache-from build left: layering it would ship a
    // pack without the virtualenv its pin claims.
    if let Some(pack) = packs.iter().find(|pack| {
        pack.pin.virtualenv_key().is_some()
            && pack
                .virtualenv_dir
                .as_ref()
                .is_some_and(|dir| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none()))
    }) {
        return Err(TreeError::VirtualenvElsewhere {
            root: root.to_path_buf(),
            pack: pack.name.to_string(),
        });
    }
    Ok(packs)
}

/// Every pack under `<root>/packs`, sorted by name (see [`collect`]), however complete.
fn every_pack(root: &Path) -> Result<Vec<PackTree>, TreeError> {
    if !root.is_dir() {
        return Err(TreeError::MissingRoot(root.to_path_buf()));
    }
    let packs_dir = root.join("packs");
    let entries =
        std::fs::read_dir(&packs_dir).map_err(|_| TreeError::NoPacks(root.to_path_buf()))?;
    let mut names: Vec<PackName> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| PackName::new(&e.file_name().to_string_lossy()).ok())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(TreeError::NoPacks(root.to_path_buf()));
    }
    names
        .into_iter()
        .map(|name| pack_tree(root, name))
        .collect()
}

/// The installed pack `name` under `root`.
pub fn pack_tree(root: &Path, name: PackName) -> Result<PackTree, TreeError> {
    let pack_dir = root.join("packs").join(name.as_str());
    let virtualenv_dir = root.join("virtualenvs").join(name.as_str());
    let pin = match PackPin::read(&pack_dir) {
        // The directory names the pack in the image, whatever a copied pin says.
        Some(pin) => PackPin {
            name: name.to_string(),
            ..pin
        },
        None => unpinned(&name, &pack_dir, &virtualenv_dir)?,
    };
    Ok(PackTree {
        virtualenv_dir: virtualenv_dir.is_dir().then_some(virtualenv_dir),
        virtualenv_elsewhere: false,
        pack_dir,
        name,
        pin,
    })
}

/// What can be known of a pack installed without a pin.
fn unpinned(name: &PackName, pack_dir: &Path, virtualenv_dir: &Path) -> Result<PackPin, TreeError> {
    let manifest = PackManifest::load(pack_dir).map_err(|e| TreeError::Pack {
        path: pack_dir.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(PackPin {
        name: name.to_string(),
        version: manifest.version,
        source: pack_dir.display().to_string(),
        r#ref: None,
        commit: None,
        content_digest: None,
        virtualenv: python_version_of(virtualenv_dir).map(|python_version| VirtualenvPin {
            key: None,
            python_version,
            ..Default::default()
        }),
    })
}

/// The Python version recorded in a virtualenv's `pyvenv.cfg` (`version = 3.8.10`, or
/// `version_info` as uv writes it).
fn python_version_of(virtualenv: &Path) -> Option<String> {
    let text = std::fs::read_to_string(virtualenv.join("pyvenv.cfg")).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(root: &Path, name: &str, version: &str) {
        let dir = root.join("packs").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("pack.yaml"),
            format!("name: {name}\ndescription: d\nversion: {version}\nauthor: a\n"),
        )
        .unwrap();
    }

    #[test]
    fn collects_packs_sorted_and_skips_bookkeeping() {
        let tmp = tempfile::tempdir().unwrap();
        pack(tmp.path(), "zeta", "1.0.0");
        pack(tmp.path(), "alpha", "2.0.0");
        std::fs::create_dir_all(tmp.path().join("packs/.st2pack-staging/x")).unwrap();
        std::fs::write(tmp.path().join("packs/.st2pack.lock"), "1").unwrap();
        std::fs::create_dir_all(tmp.path().join("virtualenvs/alpha")).unwrap();
        std::fs::write(
            tmp.path().join("virtualenvs/alpha/pyvenv.cfg"),
            "home = /usr/bin\nversion_info = 3.8.10\n",
        )
        .unwrap();
        let packs = collect(tmp.path()).unwrap();
        let names: Vec<&str> = packs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(packs[0].pin.version, "2.0.0");
        assert_eq!(packs[0].pin.python_version(), Some("3.8.10"));
        assert!(packs[1].virtualenv_dir.is_none());
    }

    #[test]
    fn missing_root_and_empty_packs_dir_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = collect(&tmp.path().join("nope")).unwrap_err().to_string();
        assert!(missing.contains("no such directory"), "{missing}");
        std::fs::create_dir_all(tmp.path().join("packs")).unwrap();
        let empty = collect(tmp.path()).unwrap_err().to_string();
        assert!(
            empty.contains("has no packs/ directory with packs"),
            "{empty}"
        );
    }
}
