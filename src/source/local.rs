//! Local directory sources: packs given as a plain path, copied as they are on disk.
//!
//! A directory without git (or a work tree given with no ref) is copied with its uncommitted edits,
//! because that is what a user iterating on a pack expects to install. Its "commit" for provenance
//! and for skipping unchanged re-installs is a digest of the copied content.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;
use walkdir::WalkDir;

#[derive(Debug, Error)]
pub enum LocalError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(
        "{path} is a {kind}: packs may hold only files, directories and symlinks; remove it from the pack"
    )]
    SpecialFile { path: PathBuf, kind: &'static str },
}

fn io_err(path: &Path, err: impl std::fmt::Display) -> LocalError {
    LocalError::Io {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

/// A failed copy names the destination first: a full disk or a read-only target is where the
/// fix is, and the source comes second.
fn copy_err(source: &Path, target: &Path, err: std::io::Error) -> LocalError {
    let hint = match err.kind() {
        std::io::ErrorKind::StorageFull => "; free space on that disk and retry",
        _ => "",
    };
    io_err(
        target,
        format!("cannot copy {} here: {err}{hint}", source.display()),
    )
}

/// What kind of directory a local pack path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalKind {
    /// No git at all: copied as is.
    Plain,
    /// A git work tree (has `.git`).
    WorkTree,
    /// A bare git repository.
    Bare,
}

pub fn classify(path: &Path) -> Result<LocalKind, LocalError> {
    let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
    if !meta.is_dir() {
        return Err(io_err(
            path,
            "not a directory: a local pack is a directory holding pack.yaml",
        ));
    }
    if path.join(".git").exists() {
        Ok(LocalKind::WorkTree)
    } else if path.join("HEAD").is_file()
        && path.join("objects").is_dir()
        && path.join("refs").is_dir()
    {
        Ok(LocalKind::Bare)
    } else {
        Ok(LocalKind::Plain)
    }
}

/// Copies `src` into `dest` (which must not exist): directories 0755, files 0644 or 0755 when any
/// execute bit is set, symlinks as symlinks (never followed), `.git` and a root [`LOCK_FILE`]
/// left out. Sockets, devices and
/// FIFOs are refused, naming the path.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), LocalError> {
    for entry in walk(src) {
        let entry = entry?;
        let relative = entry.path().strip_prefix(src).unwrap_or(entry.path());
        let target = dest.join(relative);
        let file_type = entry.file_type();
        if file_type.is_dir() {
            fs::create_dir(&target).map_err(|e| io_err(&target, e))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                .map_err(|e| io_err(&target, e))?;
        } else if file_type.is_symlink() {
            let link = fs::read_link(entry.path()).map_err(|e| io_err(entry.path(), e))?;
            symlink(&link, &target).map_err(|e| io_err(&target, e))?;
        } else {
            check_regular(entry.path(), file_type)?;
            fs::copy(entry.path(), &target).map_err(|e| copy_err(entry.path(), &target, e))?;
            let mode = normalised_mode(entry.path())?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| io_err(&target, e))?;
        }
    }
    Ok(())
}

/// A digest of everything [`copy_tree`] would copy: paths, normalised modes, symlink targets and
/// file contents, in a fixed order. Equal digests mean an identical installed pack.
pub fn tree_digest(dir: &Path) -> Result<String, LocalError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    for entry in walk(dir) {
        let entry = entry?;
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        hasher.update(relative.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        let file_type = entry.file_type();
        if file_type.is_dir() {
            hasher.update(b"d");
        } else if file_type.is_symlink() {
            hasher.update(b"l");
            let link = fs::read_link(entry.path()).map_err(|e| io_err(entry.path(), e))?;
            hasher.update(link.as_os_str().as_encoded_bytes());
        } else {
            check_regular(entry.path(), file_type)?;
            hasher.update(format!("f{:o}", normalised_mode(entry.path())?).as_bytes());
            let mut file = fs::File::open(entry.path()).map_err(|e| io_err(entry.path(), e))?;
            loop {
                let read = file
                    .read(&mut buffer)
                    .map_err(|e| io_err(entry.path(), e))?;
                if read == 0 {
                    break;
                }
                hasher.update(&buffer[..read]);
            }
        }
        hasher.update([0]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Entries of `dir` in sorted order (so digests do not depend on directory read order), `.git`
/// left out, symlinks not followed.
/// The lock file's default name (`st2pack lock`). At the root of a pack directory it is not part
/// of the pack, like `.git`: a pack repository keeps the lock of its own build there, and a pack
/// locked by the digest of its content cannot hold that digest.
pub const LOCK_FILE: &str = "st2packs.lock";

fn walk(dir: &Path) -> impl Iterator<Item = Result<walkdir::DirEntry, LocalError>> {
    WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            let name = entry.file_name();
            entry.depth() == 0 || !(name == ".git" || (entry.depth() == 1 && name == LOCK_FILE))
        })
        .map(|entry| {
            entry.map_err(|e| {
                let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                io_err(&path, e)
            })
        })
}

fn check_regular(path: &Path, file_type: fs::FileType) -> Result<(), LocalError> {
    let kind = if file_type.is_socket() {
        "socket"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        return Ok(());
    };
    Err(LocalError::SpecialFile {
        path: path.to_path_buf(),
        kind,
    })
}

fn normalised_mode(path: &Path) -> Result<u32, LocalError> {
    let mode = fs::symlink_metadata(path)
        .map_err(|e| io_err(path, e))?
        .permissions()
        .mode();
    Ok(if mode & 0o111 != 0 { 0o755 } else { 0o644 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(root: &Path) {
        fs::create_dir_all(root.join("actions")).unwrap();
        fs::write(root.join("pack.yaml"), "name: x\n").unwrap();
        fs::write(root.join("actions/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            root.join("actions/run.sh"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        fs::set_permissions(root.join("pack.yaml"), fs::Permissions::from_mode(0o600)).unwrap();
        symlink("run.sh", root.join("actions/link.sh")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    }

    #[test]
    fn copy_normalises_modes_keeps_symlinks_and_skips_git() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample(&src);
        let dest = tmp.path().join("dest");
        copy_tree(&src, &dest).unwrap();
        let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("pack.yaml"), 0o644);
        assert_eq!(mode("actions/run.sh"), 0o755);
        assert_eq!(mode("actions"), 0o755);
        assert_eq!(
            fs::read_link(dest.join("actions/link.sh")).unwrap(),
            Path::new("run.sh")
        );
        assert!(!dest.join(".git").exists());
    }

    #[test]
    fn digest_follows_content_and_mode_not_git() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample(&src);
        let first = tree_digest(&src).unwrap();
        fs::write(src.join(".git/HEAD"), "changed").unwrap();
        assert_eq!(first, tree_digest(&src).unwrap());
        fs::set_permissions(src.join("pack.yaml"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(first, tree_digest(&src).unwrap());
    }

    #[test]
    fn the_lock_file_at_the_root_is_not_part_of_the_pack() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample(&src);
        let first = tree_digest(&src).unwrap();
        fs::write(src.join(LOCK_FILE), "format = 1\n").unwrap();
        assert_eq!(first, tree_digest(&src).unwrap());
        // Deeper down, a file of that name is the pack's own.
        fs::write(src.join("actions").join(LOCK_FILE), "x").unwrap();
        assert_ne!(first, tree_digest(&src).unwrap());
        let dest = tmp.path().join("dest");
        copy_tree(&src, &dest).unwrap();
        assert!(!dest.join(LOCK_FILE).exists());
        assert!(dest.join("actions").join(LOCK_FILE).exists());
    }

    #[test]
    fn fifo_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(src.join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let err = copy_tree(&src, &tmp.path().join("dest"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pipe") && err.contains("FIFO"), "{err}");
    }

    #[test]
    fn classify_kinds() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(classify(tmp.path()).unwrap(), LocalKind::Plain);
        git2::Repository::init(tmp.path().join("wt")).unwrap();
        assert_eq!(
            classify(&tmp.path().join("wt")).unwrap(),
            LocalKind::WorkTree
        );
        git2::Repository::init_bare(tmp.path().join("bare")).unwrap();
        assert_eq!(classify(&tmp.path().join("bare")).unwrap(), LocalKind::Bare);
        assert!(classify(&tmp.path().join("missing")).is_err());
    }
}
