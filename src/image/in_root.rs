//! Paths inside an unpacked image root, resolved as the image itself would: an absolute symlink
//! (`lib64/ld-linux-x86-64.so.2 -> /lib/...`) means the image's `/lib`, never this machine's,
//! and `..` never climbs above the root.

use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one path may go through, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// A path went through more than [`MAX_SYMLINKS`] symlinks: a loop.
#[derive(Debug)]
pub struct SymlinkLoop;

/// `inside` (a path of the image, absolute or not) with every symlink on it followed inside
/// `root`; returns it relative to the root. The last component need not exist.
pub fn resolve(root: &Path, inside: &Path) -> Result<PathBuf, SymlinkLoop> {
    let mut pending = reversed_parts(inside);
    let mut resolved = PathBuf::new();
    let mut followed = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        match fs::read_link(root.join(&candidate)) {
            Ok(target) => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(SymlinkLoop);
                }
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(reversed_parts(&target));
            }
            Err(_) => resolved = candidate,
        }
    }
    Ok(resolved)
}

fn reversed_parts(path: &Path) -> Vec<OsString> {
    let mut parts: Vec<OsString> = path
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    parts.reverse();
    parts
}
