//! The modes an install leaves, whatever the umask or the installers' habits.
//!
//! The packs and virtualenvs are read in the cluster by non-root st2 processes and never written
//! there, so every directory is 0755 and every file 0755 when any execute bit is set, 0644
//! otherwise: the rule the pack copy and the git export already follow. pip, uv and Python's
//! bytecode compiler create files under the process umask (0600 under `umask 077`), and uv
//! leaves a 0666 `.lock` in each virtualenv; this pass puts them right.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;
use walkdir::WalkDir;

#[derive(Debug, Error)]
#[error("cannot set the mode of {}: {source}; check that the install directories are yours", path.display())]
pub struct ModeError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Gives every directory and file under `root` (and `root` itself) its documented mode.
/// Symlinks are not followed: their targets are inside the tree, or none of its business.
pub fn normalize(root: &Path) -> Result<(), ModeError> {
    for entry in WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|e| ModeError {
            path: e.path().unwrap_or(root).to_path_buf(),
            source: e.into(),
        })?;
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            continue;
        }
        let error = |source: io::Error| ModeError {
            path: entry.path().to_path_buf(),
            source,
        };
        let mode = entry
            .metadata()
            .map_err(|e| error(e.into()))?
            .permissions()
            .mode()
            & 0o7777;
        let wanted = if file_type.is_dir() || mode & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        if mode != wanted {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(wanted)).map_err(error)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directories_0755_files_0644_or_0755_links_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tree");
        fs::create_dir_all(root.join("sub")).unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, "").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
        for (name, before) in [("sub/a.pyc", 0o600), ("tool", 0o700), (".lock", 0o666)] {
            fs::write(root.join(name), "").unwrap();
            fs::set_permissions(root.join(name), fs::Permissions::from_mode(before)).unwrap();
        }
        symlink(&outside, root.join("link")).unwrap();
        fs::set_permissions(root.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
        normalize(&root).unwrap();
        assert_eq!(mode(&root.join("sub")), 0o755);
        assert_eq!(mode(&root.join("sub/a.pyc")), 0o644);
        assert_eq!(mode(&root.join("tool")), 0o755);
        assert_eq!(mode(&root.join(".lock")), 0o644);
        assert_eq!(mode(&outside), 0o600);
    }
}
