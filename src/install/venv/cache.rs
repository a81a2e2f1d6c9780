//! The built-virtualenv cache: the main speed lever.
//!
//! Building a venv means resolving and installing packages; copying a finished one is a few
//! hundred milliseconds. An entry is keyed by a hash of every input that can change the result, and
//! holds a venv that is already relocated and compiled for its final path (which is in the key).
//!
//! Layout: `<cache_dir>/<key>/venv/` plus `<cache_dir>/<key>/entry.json`. An entry is written to a
//! `.tmp-*` directory beside it and renamed into place, so a killed or concurrent run never leaves
//! a half entry under a key; leftovers of killed runs are swept after a day.
//!
//! Installed virtualenvs share their files' inodes with the entry they came from, so a file
//! edited in place in an installed virtualenv changes the entry too. `entry.json` records a
//! digest of the entry's tree, checked before every use: a changed entry is never restored, but
//! rebuilt and replaced.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::installer::{self, BASE_REQUIREMENT, SEEDS};
use super::relocate::walk_error;
use super::{VenvError, VenvSpec};
use crate::pack::requirements::Requirements;

/// Bump when the layout of a built venv or of an entry changes.
const KEY_FORMAT: &str = "st2pack-venv-cache-2";

/// Environment variables that choose where packages come from.
const INDEX_ENV: [&str; 13] = [
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "PIP_CONSTRAINT",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
];

const ENTRY_FILE: &str = "entry.json";
const VENV_DIR: &str = "venv";
const TMP_PREFIX: &str = ".tmp-";
const STALE_TMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// What an entry records beside its venv.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    pub key: String,
    pub python_version: String,
    pub installer: String,
    pub warnings: Vec<String>,
}

struct Hasher(Sha256);

impl Hasher {
    /// Length-prefixed so that no two different field sequences hash alike.
    fn field(&mut self, name: &str, value: &[u8]) {
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    fn path(&mut self, name: &str, value: Option<&Path>) {
        match value {
            Some(path) => self.field(name, path.as_os_str().as_bytes()),
            None => self.field(name, b"\0none"),
        }
    }
}

/// The cache key for `spec` when built with `engine` (`"uv"` or `"pip"`), with the requirements
/// read from `spec.requirements`.
pub(crate) fn key_for(
    spec: &VenvSpec,
    engine: &str,
    requirements: Option<&Requirements>,
) -> Result<String, VenvError> {
    inputs_digest(spec, engine, Some(requirements))
}

/// The digest of every input [`key_for`] covers except the requirements files' contents: what
/// a build's settings make of any pack's virtualenv. Two packs at the same commit (so with the
/// same requirements files) and equal settings keys have equal cache keys.
pub(crate) fn settings_key_for(spec: &VenvSpec, engine: &str) -> Result<String, VenvError> {
    inputs_digest(spec, engine, None)
}

/// [`key_for`] with the requirements (`Some`), or without them (`None`, [`settings_key_for`]).
fn inputs_digest(
    spec: &VenvSpec,
    engine: &str,
    requirements: Option<Option<&Requirements>>,
) -> Result<String, VenvError> {
    let mut h = Hasher(Sha256::new());
    h.field("format", KEY_FORMAT.as_bytes());
    h.field("tool", env!("CARGO_PKG_VERSION").as_bytes());
    // The venv links to `path` and records its directory; `real_path` is the binary behind it.
    h.path("python.path", Some(&spec.python.path));
    h.path("python.real_path", Some(&spec.python.real_path));
    h.field("python.version", spec.python.version.as_bytes());
    h.field("installer", engine.as_bytes());
    for seed in &SEEDS {
        h.field("seed", seed.requirement.as_bytes());
    }
    let base = if spec.base_requirements {
        BASE_REQUIREMENT
    } else {
        ""
    };
    h.field("base_requirements", base.as_bytes());
    h.field(
        "system_site_packages",
        if spec.system_site_packages {
            b"1"
        } else {
            b"0"
        },
    );
    h.path("st2_site_packages", spec.st2_site_packages.as_deref());
    h.path("final_dir", Some(&spec.final_dir));
    match requirements {
        // Every file pip reads: the requirements file, then what it includes, in reading order.
        Some(Some(requirements)) => {
            for file in &requirements.files {
                h.field("requirements", &file.content);
            }
            // What a local `--find-links` offers is installed as surely as what the text names
            // (a pack may ship its own wheels): a new wheel there is a new virtualenv.
            for path in &requirements.find_links_paths {
                hash_find_links(&mut h, path)?;
            }
        }
        Some(None) => h.field("requirements", b"\0none"),
        None => h.field("requirements", b"\0not covered"),
    }
    // Only when set, so that the keys of existing entries stay what they were.
    if spec.only_binary {
        h.field("only_binary", b"1");
    }
    if !spec.keep_pip {
        h.field("lean", b"1");
    }
    if let Some(locked) = &spec.locked_requirements {
        h.field("locked_requirements", locked.as_bytes());
    }
    if let super::VenvRuntime::Target(build) = &spec.runtime {
        let target = &build.target;
        h.field("target.python", target.python.to_string().as_bytes());
        h.path("target.interpreter", Some(&target.interpreter));
        h.field("target.platform", target.platform.uv_triple().as_bytes());
        h.path("target.pyvenv_home", Some(&target.pyvenv_home));
        h.path(
            "target.st2_site_packages",
            target.st2_site_packages.as_deref(),
        );
        h.field("target.kind", build.pin.kind.as_bytes());
        let image_digest = build.pin.image_digest.as_deref();
        h.field("target.image_digest", image_digest.unwrap_or("").as_bytes());
        // An image's launcher lives in a temporary directory; the image digest stands for it.
        let bytecode = build
            .bytecode_python
            .as_deref()
            .filter(|_| image_digest.is_none());
        h.path("target.bytecode_python", bytecode);
        h.field(
            "target.bytecode",
            if build.bytecode_python.is_some() {
                b"1"
            } else {
                b"0"
            },
        );
    }
    h.path("wheelhouse", spec.wheelhouse.as_deref());
    if let Some(dir) = &spec.wheelhouse {
        for (name, size) in installer::wheelhouse_listing(dir)? {
            h.field("wheel", name.as_bytes());
            h.field("size", &size.to_le_bytes());
        }
    }
    for name in INDEX_ENV {
        match std::env::var_os(name) {
            Some(value) => h.field(name, value.as_bytes()),
            None => h.field(name, b"\0unset"),
        }
    }
    Ok(hex::encode(h.0.finalize()))
}

/// Hashes the name and content of each distribution a local `--find-links` path offers: the
/// wheels and source archives of a directory (not its subdirectories, as pip and uv read it), or
/// the file itself. Nothing else there is read: installers take nothing else from it.
fn hash_find_links(h: &mut Hasher, path: &Path) -> Result<(), VenvError> {
    let is_distribution = |file: &Path| {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        DISTRIBUTION_SUFFIXES
            .iter()
            .any(|suffix| name.ends_with(suffix))
            && file.is_file()
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|file| is_distribution(file))
            .collect(),
        Err(_) if is_distribution(path) => vec![path.to_path_buf()],
        Err(_) => {
            h.field("find_links", b"\0missing");
            return Ok(());
        }
    };
    files.sort();
    h.field("find_links", b"");
    for file in files {
        let read_error = |e| VenvError::io("read", &file, e);
        let mut digest = Sha256::new();
        std::io::copy(
            &mut std::fs::File::open(&file).map_err(read_error)?,
            &mut digest,
        )
        .map_err(read_error)?;
        let name = file.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        h.field("find_links.file", name);
        h.field("find_links.sha256", &digest.finalize());
    }
    Ok(())
}

/// The files an installer takes from a `--find-links` location.
const DISTRIBUTION_SUFFIXES: [&str; 5] = [".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz"];

fn entry_dir(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join(key)
}

/// What `entry.json` holds: the entry's facts and the digest of its tree when it was stored.
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    #[serde(flatten)]
    meta: EntryMeta,
    /// [`tree_digest`] of the entry's `venv/`.
    #[serde(default)]
    digest: String,
}

fn read_entry(cache_dir: &Path, key: &str) -> Option<StoredEntry> {
    let dir = entry_dir(cache_dir, key);
    let stored: StoredEntry =
        serde_json::from_slice(&std::fs::read(dir.join(ENTRY_FILE)).ok()?).ok()?;
    (stored.meta.key == key && dir.join(VENV_DIR).join("pyvenv.cfg").is_file()).then_some(stored)
}

/// The entry for `key`, if a complete one exists.
pub(crate) fn lookup(cache_dir: &Path, key: &str) -> Option<EntryMeta> {
    read_entry(cache_dir, key).map(|stored| stored.meta)
}

/// Puts the entry's venv into `build_dir` (which must be empty), hard-linked, once its files
/// are checked to be exactly those stored, and marks the entry used.
pub(crate) fn restore(cache_dir: &Path, key: &str, build_dir: &Path) -> Result<(), VenvError> {
    let entry = entry_dir(cache_dir, key);
    let venv = entry.join(VENV_DIR);
    let stored = read_entry(cache_dir, key).ok_or_else(|| {
        VenvError::io(
            "read the cache entry",
            &entry,
            std::io::Error::other("it is incomplete"),
        )
    })?;
    if tree_digest(&venv)? != stored.digest {
        return Err(VenvError::io(
            "trust the cached virtualenv",
            venv,
            std::io::Error::other(
                "its files changed since it was stored (was a file of an installed virtualenv \
                 edited in place?)",
            ),
        ));
    }
    link_tree(&venv, build_dir)?;
    crate::cache::mark_used(&entry);
    Ok(())
}

/// The digest of a virtualenv tree: paths, file types and modes, link targets and contents.
fn tree_digest(venv: &Path) -> Result<String, VenvError> {
    crate::source::local::tree_digest(venv)
        .map_err(|e| VenvError::io("read", venv, std::io::Error::other(e.to_string())))
}

/// Stores the finished venv in `build_dir` under `key`. An existing entry is kept unless
/// `replace`, in which case it is swapped out for this one.
pub(crate) fn store(
    cache_dir: &Path,
    build_dir: &Path,
    meta: &EntryMeta,
    replace: bool,
) -> Result<(), VenvError> {
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| VenvError::io("create cache directory", cache_dir, e))?;
    sweep_stale_tmp(cache_dir);
    let target = entry_dir(cache_dir, &meta.key);
    if !replace && lookup(cache_dir, &meta.key).is_some() {
        return Ok(());
    }
    let tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempdir_in(cache_dir)
        .map_err(|e| VenvError::io("create a directory in", cache_dir, e))?;
    let venv = tmp.path().join(VENV_DIR);
    link_tree(build_dir, &venv)?;
    let stored = StoredEntry {
        meta: meta.clone(),
        digest: tree_digest(&venv)?,
    };
    let json = serde_json::to_vec_pretty(&stored).map_err(|e| {
        VenvError::io(
            "write",
            tmp.path().join(ENTRY_FILE),
            std::io::Error::other(e),
        )
    })?;
    std::fs::write(tmp.path().join(ENTRY_FILE), json)
        .map_err(|e| VenvError::io("write", tmp.path().join(ENTRY_FILE), e))?;

    if std::fs::rename(tmp.path(), &target).is_ok() {
        return Ok(());
    }
    // The key is taken: by a concurrent run (keep theirs) or an entry being replaced.
    if !replace && lookup(cache_dir, &meta.key).is_some() {
        return Ok(());
    }
    let old = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempdir_in(cache_dir)
        .map_err(|e| VenvError::io("create a directory in", cache_dir, e))?;
    let old_entry = old.path().join("old");
    std::fs::rename(&target, &old_entry)
        .map_err(|e| VenvError::io("move aside old cache entry", &target, e))?;
    std::fs::rename(tmp.path(), &target)
        .map_err(|e| VenvError::io("store cache entry", &target, e))?;
    Ok(())
}

/// Removes `.tmp-*` directories that killed runs left behind long ago.
fn sweep_stale_tmp(cache_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .as_bytes()
            .starts_with(TMP_PREFIX.as_bytes())
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TMP_AGE);
        if stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Mirrors `src` into `dst` (created if missing): symlinks stay symlinks, files are hard-linked
/// (copied with their modes when the two are on different filesystems), directories get their
/// modes once filled.
///
/// Linking is what makes a warm install fast: a virtualenv is a few thousand files. st2pack
/// never edits an installed virtualenv in place (it builds a new one and swaps it in), and pip
/// replaces files rather than rewriting them; anything else that does is caught by the entry's
/// digest (see the module docs).
pub(crate) fn link_tree(src: &Path, dst: &Path) -> Result<(), VenvError> {
    std::fs::create_dir_all(dst).map_err(|e| VenvError::io("create", dst, e))?;
    let mut dir_modes = Vec::new();
    for entry in walkdir::WalkDir::new(src).follow_links(false) {
        let entry = entry.map_err(|e| walk_error(src, e))?;
        let from = entry.path();
        let rel = from.strip_prefix(src).unwrap_or(from);
        let to = dst.join(rel);
        let file_type = entry.file_type();
        if file_type.is_dir() {
            if !rel.as_os_str().is_empty() {
                match std::fs::create_dir(&to) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(VenvError::io("create", &to, e));
                    }
                    _ => {}
                }
            }
            let mode = entry
                .metadata()
                .map_err(|e| walk_error(src, e))?
                .permissions()
                .mode();
            dir_modes.push((to, mode));
        } else if file_type.is_symlink() {
            let target =
                std::fs::read_link(from).map_err(|e| VenvError::io("read link", from, e))?;
            std::os::unix::fs::symlink(&target, &to)
                .map_err(|e| VenvError::io("create link", &to, e))?;
        } else if file_type.is_file() && std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to).map_err(|e| VenvError::io("copy to", &to, e))?;
        }
        // Sockets and fifos have no place in a venv: skipped.
    }
    // Deepest first, so a read-only directory is not closed before its children are written.
    for (dir, mode) in dir_modes.into_iter().rev() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
            .map_err(|e| VenvError::io("set permissions of", &dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_trees_with_hard_links_symlinks_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::write(src.join("bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.join("bin/tool"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("tool", src.join("bin/alias")).unwrap();
        std::os::unix::fs::symlink("bin", src.join("bin64")).unwrap();
        let dst = tmp.path().join("dst");
        link_tree(&src, &dst).unwrap();
        let mode = std::fs::metadata(dst.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(dst.join("bin/alias")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(
            std::fs::read_link(dst.join("bin64")).unwrap(),
            Path::new("bin")
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(dst.join("bin/tool")).unwrap().nlink(), 2);
    }

    #[test]
    fn store_and_lookup_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let venv = tmp.path().join("venv");
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        let cache = tmp.path().join("cache");
        let meta = EntryMeta {
            key: "k1".into(),
            python_version: "3.11.7".into(),
            installer: "uv".into(),
            warnings: vec!["w".into()],
        };
        assert!(lookup(&cache, "k1").is_none());
        store(&cache, &venv, &meta, false).unwrap();
        assert_eq!(lookup(&cache, "k1"), Some(meta.clone()));
        // Replacing swaps the entry and leaves no temporary directory behind.
        std::fs::write(venv.join("new"), "x").unwrap();
        store(&cache, &venv, &meta, true).unwrap();
        let out = tmp.path().join("out");
        restore(&cache, "k1", &out).unwrap();
        assert!(out.join("new").is_file());
        // A file edited in place through the restored (hard-linked) copy spoils the entry.
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(out.join("new"))
            .unwrap();
        file.write_all(b"tampered").unwrap();
        let err = restore(&cache, "k1", &tmp.path().join("out2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("changed since it was stored"), "{err}");
        let names: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["k1"]);
    }
}
