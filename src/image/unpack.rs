//! Applying an image's layers to a directory, as a container runtime builds a root filesystem.
//!
//! Layers come from images we do not control, and the directory is written as root, so every
//! entry is placed as the image itself would see it: every directory on its way is resolved
//! inside the root (a symlink planted by an earlier entry, even an absolute one, leads back into
//! the root, never out of it, as containerd resolves them), and an entry naming `..` is refused.
//! OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) remove what lower layers put there. Device nodes
//! and FIFOs are skipped, ownership is not kept (the files are read, never served), and modes
//! are kept without setuid, setgid or sticky bits. Modification times of files are kept: an
//! interpreter checks its standard library's bytecode against them.
//!
//! The `tar` crate's own `unpack_in` is not used: it refuses absolute symlinks on the way
//! (which real images have, `/lib64 -> /usr/lib64`) and follows a symlink when it sets the mode
//! of a directory entry that replaces it.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use super::in_root;
use super::model::{OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD};

/// The name of an opaque whiteout: the directory holding it hides what lower layers put in it.
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The prefix of a whiteout: `.wh.NAME` removes `NAME` of lower layers.
const WHITEOUT_PREFIX: &str = ".wh.";
/// How much decompressed tar is read at once.
const DECOMPRESSED_BUFFER: usize = 1 << 20;
/// Permission bits kept from an entry's mode.
const MODE_BITS: u32 = 0o777;

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(
        "its media type {media_type} is not a layer st2pack can read (only tar, tar+gzip and \
         tar+zstd)"
    )]
    UnsupportedMediaType { media_type: String },
    #[error("entry `{entry}` points outside the image root")]
    Breakout { entry: String },
    #[error("entry `{entry}` goes through too many symlinks")]
    SymlinkLoop { entry: String },
    #[error("entry `{entry}` is a hard link to `{target}`, which the layers do not hold")]
    MissingLinkTarget { entry: String, target: String },
    #[error("it is not a readable tar archive: {source}")]
    Corrupt {
        #[source]
        source: io::Error,
    },
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// 2 for a layer that is malformed or hostile (bad input), 1 for a failure writing it.
    pub fn exit_code(&self) -> i32 {
        match self {
            UnpackError::Io { .. } => 1,
            _ => 2,
        }
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UnpackError {
    let path = path.to_path_buf();
    move |source| UnpackError::Io {
        action,
        path,
        source,
    }
}

/// Applies the layer `blob` (of `media_type`, an OCI layer type) on top of `root`, writing only
/// the entries `keep` accepts. `keep` is given each entry's path inside the image (relative, with
/// the directories on its way resolved) and whether it is a directory.
pub fn apply_layer(
    root: &Path,
    blob: impl Read,
    media_type: &str,
    keep: &dyn Fn(&Path, bool) -> bool,
) -> Result<(), UnpackError> {
    let tar: Box<dyn Read> = match media_type {
        OCI_LAYER_TAR => Box::new(blob),
        // Concatenated gzip members are one stream (see `layer::members`).
        OCI_LAYER_GZIP => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(blob))),
        OCI_LAYER_ZSTD => Box::new(
            zstd::stream::read::Decoder::new(blob)
                .map_err(|source| UnpackError::Corrupt { source })?,
        ),
        other => {
            return Err(UnpackError::UnsupportedMediaType {
                media_type: other.to_string(),
            });
        }
    };
    let ended_at = Rc::new(Cell::new(None));
    let mut layer = Layer {
        root,
        keep,
        written: HashSet::new(),
        ended_at: Rc::clone(&ended_at),
    };
    let mut archive = tar::Archive::new(TarEnd {
        // The tar reader asks for 512 bytes at a time; a decompressor asked for so little
        // moves its whole window on every call.
        inner: BufReader::with_capacity(DECOMPRESSED_BUFFER, tar),
        read: 0,
        ended_at,
        padding: 0,
    });
    let entries = archive
        .entries()
        .map_err(|source| UnpackError::Corrupt { source })?;
    for entry in entries {
        let entry = entry.map_err(|source| UnpackError::Corrupt { source })?;
        layer.apply(entry)?;
    }
    Ok(())
}

/// One layer being applied.
struct Layer<'a> {
    root: &'a Path,
    keep: &'a dyn Fn(&Path, bool) -> bool,
    /// Paths (inside the image) this layer wrote: an opaque whiteout in it keeps them.
    written: HashSet<PathBuf>,
    /// Where the layer's own bytes ended, once they have (see [`TarEnd`]).
    ended_at: Rc<Cell<Option<u64>>>,
}

impl Layer<'_> {
    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path = inside_path(&raw, &shown)?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(()); // The root itself.
        };
        let parent = self.resolve(parent, &shown)?;
        if name == OPAQUE_WHITEOUT {
            return self.hide_lower(&parent);
        }
        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let hidden = parent.join(OsStr::from_bytes(hidden));
            return remove(&self.root.join(hidden));
        }
        let inside = parent.join(name);
        let kind = entry.header().entry_type();
        if !(self.keep)(&inside, kind.is_dir()) {
            return Ok(());
        }
        let host = self.root.join(&inside);
        let mode = entry.header().mode().unwrap_or(0o644) & MODE_BITS;
        match kind {
            tar::EntryType::Directory => {
                self.make_parent(&host)?;
                match fs::symlink_metadata(&host) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        remove(&host)?;
                        fs::create_dir(&host).map_err(io_error("create the directory", &host))?;
                    }
                    Err(_) => {
                        fs::create_dir(&host).map_err(io_error("create the directory", &host))?
                    }
                }
                // The owner (root here) keeps write access, so later layers can fill it.
                set_mode(&host, mode | 0o700)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.make_parent(&host)?;
                remove(&host)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&host)
                    .map_err(io_error("create the file", &host))?;
                let size = io::copy(&mut entry, &mut file)
                    .map_err(|source| UnpackError::Corrupt { source })?;
                drop(file);
                if let Some(end) = self.ended_at.get()
                    && entry.raw_file_position() + size > end
                {
                    return Err(UnpackError::Corrupt {
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("it ends inside the data of `{shown}`"),
                        ),
                    });
                }
                set_mode(&host, mode)?;
                if let Ok(mtime) = entry.header().mtime() {
                    let mtime = filetime::FileTime::from_unix_time(mtime as i64, 0);
                    filetime::set_file_mtime(&host, mtime)
                        .map_err(io_error("set the modification time of", &host))?;
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|target| OsStr::from_bytes(&target).to_os_string())
                    .unwrap_or_default();
                self.make_parent(&host)?;
                remove(&host)?;
                std::os::unix::fs::symlink(&target, &host)
                    .map_err(io_error("create the symlink", &host))?;
            }
            tar::EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .map(|target| target.into_owned())
                    .unwrap_or_default();
                let target_shown = String::from_utf8_lossy(&target_raw).into_owned();
                let target = inside_path(&target_raw, &target_shown)?;
                let target = match (target.parent(), target.file_name()) {
                    (Some(parent), Some(name)) => self.resolve(parent, &target_shown)?.join(name),
                    _ => return Err(missing_link(&shown, &target_shown)),
                };
                if !(self.keep)(&target, false) {
                    return Ok(()); // A link to what is not unpacked is not needed either.
                }
                let source = self.root.join(&target);
                match fs::symlink_metadata(&source) {
                    Ok(meta) if !meta.is_dir() => {}
                    _ => return Err(missing_link(&shown, &target_shown)),
                }
                self.make_parent(&host)?;
                remove(&host)?;
                // linkat without AT_SYMLINK_FOLLOW: a link to a symlink is that symlink.
                fs::hard_link(&source, &host).map_err(io_error("create the hard link", &host))?;
            }
            // Device nodes and FIFOs: nothing an interpreter reads.
            _ => return Ok(()),
        }
        self.written.insert(inside);
        Ok(())
    }

    /// Makes the directories on the way to `host`, whose parent was resolved already (so
    /// whatever exists on the way is a real directory).
    fn make_parent(&self, host: &Path) -> Result<(), UnpackError> {
        match host.parent() {
            Some(parent) => {
                fs::create_dir_all(parent).map_err(io_error("create the directory", parent))
            }
            None => Ok(()),
        }
    }

    /// `path` (inside the image, relative) with every symlink on it followed inside the root:
    /// absolute targets start again from the root, and `..` never goes above it.
    fn resolve(&self, path: &Path, entry: &str) -> Result<PathBuf, UnpackError> {
        in_root::resolve(self.root, path).map_err(|_| UnpackError::SymlinkLoop {
            entry: entry.to_string(),
        })
    }

    /// Removes what lower layers put under `dir` (inside the image), keeping this layer's own.
    fn hide_lower(&self, dir: &Path) -> Result<(), UnpackError> {
        let host = self.root.join(dir);
        let Ok(children) = fs::read_dir(&host) else {
            return Ok(());
        };
        for child in children {
            let child = child.map_err(io_error("read the directory", &host))?;
            let inside = dir.join(child.file_name());
            if !self.written.contains(&inside) {
                remove(&child.path())?;
            } else if child.file_type().is_ok_and(|kind| kind.is_dir()) {
                self.hide_lower(&inside)?;
            }
        }
        Ok(())
    }
}

/// A layer's tar stream as the `tar` crate expects it to end. Some writers (umoci 0.4) end a
/// layer right after the last entry's data, without the padding to 512 bytes and the two zero
/// blocks that end an archive; Go's reader, and so containerd, accepts that, so this reader
/// supplies them. It records where the real bytes ended, so that a file cut short is still
/// caught rather than filled with zeros.
struct TarEnd<R> {
    inner: R,
    read: u64,
    ended_at: Rc<Cell<Option<u64>>>,
    /// Zero bytes still to give once the inner stream ended.
    padding: u64,
}

impl<R: Read> Read for TarEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended_at.get().is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            self.ended_at.set(Some(self.read));
            self.padding = (512 - self.read % 512) % 512 + 1024;
        }
        let n = buf.len().min(self.padding as usize);
        buf[..n].fill(0);
        self.padding -= n as u64;
        Ok(n)
    }
}

/// An entry's name as a relative path inside the image: a leading `/` or `./` is the root, and
/// `..` is refused (no layer of a real image needs it).
fn inside_path(raw: &[u8], shown: &str) -> Result<PathBuf, UnpackError> {
    let mut path = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(raw)).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::ParentDir => {
                return Err(UnpackError::Breakout {
                    entry: shown.to_string(),
                });
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(path)
}

fn missing_link(entry: &str, target: &str) -> UnpackError {
    UnpackError::MissingLinkTarget {
        entry: entry.to_string(),
        target: target.to_string(),
    }
}

/// Removes whatever is at `path` (a directory with its contents), without following a symlink.
fn remove(path: &Path) -> Result<(), UnpackError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return Ok(()),
    };
    result.map_err(io_error("remove", path))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), UnpackError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_error("set the mode of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(name, kind, content or link target)`, names written as given (even `..`).
    fn tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            header.set_mtime(1_000_000);
            let body: &[u8] = if kind.is_file() { data.as_bytes() } else { b"" };
            header.set_size(body.len() as u64);
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                header.set_link_name(data).unwrap();
            }
            header.set_cksum();
            builder.append(&header, body).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn apply(root: &Path, entries: &[(&str, tar::EntryType, &str)]) -> Result<(), UnpackError> {
        apply_layer(root, &tar(entries)[..], OCI_LAYER_TAR, &|_, _| true)
    }

    use tar::EntryType::{Directory as D, Link as L, Regular as F, Symlink as S};

    #[test]
    fn symlinks_on_the_way_resolve_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let outside_link = outside.to_str().unwrap();
        apply(
            &root,
            &[
                ("usr/lib/", D, ""),
                ("lib", S, "usr/lib"),
                ("lib/libc.so", F, "libc"),
                ("abs", S, outside_link),
                ("abs/pwned", F, "x"),
                ("up", S, "../../../.."),
                ("up/pwned2", F, "x"),
                ("abs", D, ""),
                ("hard", L, "/lib/libc.so"),
            ],
        )
        .unwrap();
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(
            fs::read_to_string(root.join("usr/lib/libc.so")).unwrap(),
            "libc"
        );
        let inside = root.join(outside_link.trim_start_matches('/'));
        assert!(inside.join("pwned").is_file());
        assert!(root.join("pwned2").is_file());
        // The directory entry replaced the symlink instead of following it.
        assert!(fs::symlink_metadata(root.join("abs")).unwrap().is_dir());
        assert!(root.join("hard").is_file());
    }

    #[test]
    fn parent_dir_entries_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(&root).unwrap();
        for entries in [
            &[("../escape", F, "x")][..],
            &[("a/../../escape", F, "x")][..],
            &[("hard", L, "../escape")][..],
        ] {
            let error = apply(&root, entries).unwrap_err();
            assert!(matches!(error, UnpackError::Breakout { .. }), "{error}");
            assert_eq!(error.exit_code(), 2);
        }
        assert!(!tmp.path().join("escape").exists());
    }

    #[test]
    fn whiteouts_hide_lower_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        apply(
            root,
            &[
                ("a/keep", F, "1"),
                ("a/gone", F, "2"),
                ("b/old", F, "3"),
                ("b/sub/old", F, "4"),
            ],
        )
        .unwrap();
        apply(
            root,
            &[
                ("b/new", F, "5"),
                ("a/.wh.gone", F, ""),
                ("b/.wh..wh..opq", F, ""),
            ],
        )
        .unwrap();
        assert!(root.join("a/keep").is_file());
        assert!(!root.join("a/gone").exists());
        assert!(!root.join("a/.wh.gone").exists());
        assert!(root.join("b/new").is_file());
        assert!(!root.join("b/old").exists() && !root.join("b/sub").exists());
    }

    #[test]
    fn a_tar_without_its_end_blocks_is_read_but_a_file_cut_short_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let whole = tar(&[("a", F, "hello"), ("b", F, "world")]);
        // As umoci 0.4 writes them: the last data unpadded, no end-of-archive blocks.
        let unended = &whole[..512 * 3 + 5];
        apply_layer(tmp.path(), unended, OCI_LAYER_TAR, &|_, _| true).unwrap();
        assert_eq!(fs::read_to_string(tmp.path().join("b")).unwrap(), "world");
        let cut = &whole[..512 * 3 + 3];
        let error = apply_layer(tmp.path(), cut, OCI_LAYER_TAR, &|_, _| true).unwrap_err();
        assert!(
            error.to_string().contains("inside the data of `b`"),
            "{error}"
        );
    }

    #[test]
    fn unknown_media_types_are_refused() {
        let error = apply_layer(
            Path::new("/nonexistent"),
            &b""[..],
            "text/plain",
            &|_, _| true,
        )
        .unwrap_err();
        assert!(error.to_string().contains("text/plain"), "{error}");
    }
}
