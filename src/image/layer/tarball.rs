//! Writing the planned entries as a GNU tar stream with pinned metadata.
//!
//! Names and link targets longer than the 100-byte header fields go into `././@LongLink`
//! records first (link target `K`, then name `L`, as GNU tar orders them), which GNU tar, Go's
//! archive/tar (umoci, containerd, skopeo) and Python's tarfile all read. Bytes are written
//! exactly as found on disk: no path normalisation of names or symlink targets.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tar::{EntryType, Header};

use super::error::LayerError;
use super::input::{LayerOptions, LayerStats};
use super::scan::{Entry, Kind};

const BLOCK: usize = 512;
const NAME_FIELD: usize = 100;
const COPY_BUF: usize = 128 * 1024;

/// What ends a tar stream: two zeroed blocks.
pub(super) const END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// Writes `entries` (sorted, as planned) and the end-of-archive marker to `out`. Read problems
/// name the file on disk; write problems name `dest`. `bytes_uncompressed` is left to the caller,
/// which counts what actually reached its writer.
pub(super) fn write<W: Write>(
    out: W,
    entries: &[Entry],
    options: &LayerOptions,
    dest: &Path,
) -> Result<(W, LayerStats), LayerError> {
    let (mut out, stats) = write_entries(out, entries, options, dest)?;
    out.write_all(&END_OF_ARCHIVE)
        .map_err(|source| write_error(dest, source))?;
    Ok((out, stats))
}

/// Writes `entries` as [`write`] does, without the end-of-archive marker: a part of a stream.
pub(super) fn write_entries<W: Write>(
    out: W,
    entries: &[Entry],
    options: &LayerOptions,
    dest: &Path,
) -> Result<(W, LayerStats), LayerError> {
    let mut tar = TarWriter {
        out,
        buf: vec![0; COPY_BUF],
        dest,
    };
    let mut stats = LayerStats::default();
    for entry in entries {
        tar.append(entry, options)?;
        if entry.kind != Kind::Dir {
            stats.files += 1;
        }
    }
    Ok((tar.out, stats))
}

struct TarWriter<'a, W> {
    out: W,
    buf: Vec<u8>,
    dest: &'a Path,
}

impl<W: Write> TarWriter<'_, W> {
    fn append(&mut self, entry: &Entry, options: &LayerOptions) -> Result<(), LayerError> {
        let file_mode = |executable: bool| if executable { 0o755 } else { 0o644 };
        match &entry.kind {
            Kind::Dir => {
                let mut name = entry.name.clone();
                name.push(b'/');
                self.header(&name, b"", EntryType::Directory, 0o755, 0, options)
            }
            Kind::Symlink { target } => {
                self.header(&entry.name, target, EntryType::Symlink, 0o777, 0, options)
            }
            Kind::Hardlink { target, executable } => self.header(
                &entry.name,
                target,
                EntryType::Link,
                file_mode(*executable),
                0,
                options,
            ),
            Kind::File {
                size,
                executable,
                dev,
                ino,
                ..
            } => {
                let read_error = |source| LayerError::Read {
                    path: entry.origin.clone(),
                    source,
                };
                let changed = || LayerError::Changed {
                    path: entry.origin.clone(),
                };
                let mut file = File::open(&entry.origin).map_err(read_error)?;
                // The same inode and size as listed: the header's size must match the data, and a
                // file swapped for a symlink since must not be followed.
                let now = file.metadata().map_err(read_error)?;
                if (now.dev(), now.ino(), now.len()) != (*dev, *ino, *size) {
                    return Err(changed());
                }
                let mode = file_mode(*executable);
                self.header(&entry.name, b"", EntryType::Regular, mode, *size, options)?;
                let mut remaining = *size;
                while remaining > 0 {
                    let want = remaining.min(self.buf.len() as u64) as usize;
                    let n = match file.read(&mut self.buf[..want]) {
                        Ok(0) => return Err(changed()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(read_error(e)),
                    };
                    self.out
                        .write_all(&self.buf[..n])
                        .map_err(|source| write_error(self.dest, source))?;
                    remaining -= n as u64;
                }
                self.pad(*size)
            }
        }
    }

    fn header(
        &mut self,
        name: &[u8],
        link: &[u8],
        entry_type: EntryType,
        mode: u32,
        size: u64,
        options: &LayerOptions,
    ) -> Result<(), LayerError> {
        if link.len() > NAME_FIELD {
            self.long_link(EntryType::GNULongLink, link)?;
        }
        if name.len() > NAME_FIELD {
            self.long_link(EntryType::GNULongName, name)?;
        }
        let mut header = Header::new_gnu();
        let fields = header.as_old_mut();
        copy_truncated(&mut fields.name, name);
        copy_truncated(&mut fields.linkname, link);
        header.set_mode(mode);
        header.set_uid(options.uid);
        header.set_gid(options.gid);
        header.set_mtime(options.mtime);
        header.set_size(size);
        header.set_entry_type(entry_type);
        header.set_cksum();
        self.put(header.as_bytes())
    }

    /// A GNU `././@LongLink` record holding `value` and a NUL; its own metadata is fixed.
    fn long_link(&mut self, entry_type: EntryType, value: &[u8]) -> Result<(), LayerError> {
        let mut header = Header::new_gnu();
        copy_truncated(&mut header.as_old_mut().name, b"././@LongLink");
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let size = value.len() as u64 + 1;
        header.set_size(size);
        header.set_entry_type(entry_type);
        header.set_cksum();
        self.put(header.as_bytes())?;
        self.put(value)?;
        self.put(&[0])?;
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<(), LayerError> {
        let partial = (size % BLOCK as u64) as usize;
        if partial == 0 {
            return Ok(());
        }
        self.put(&[0; BLOCK][..BLOCK - partial])
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), LayerError> {
        self.out
            .write_all(bytes)
            .map_err(|source| write_error(self.dest, source))
    }
}

fn copy_truncated(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn write_error(dest: &Path, source: io::Error) -> LayerError {
    LayerError::Write {
        dest: dest.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use super::*;
    use crate::image::layer::input::Compression;

    fn options() -> LayerOptions {
        LayerOptions {
            mtime: 1_700_000_000,
            uid: 1000,
            gid: 2000,
            compression: Compression::Gzip,
        }
    }

    fn entry(name: &str, kind: Kind) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            origin: PathBuf::from("/nonexistent"),
            kind,
        }
    }

    /// Name, type, mode, uid, mtime, size, link target.
    type ReadBack = (String, EntryType, u32, u64, u64, u64, Option<String>);

    /// Reads the stream back with the tar crate (an independent GNU long-name reader).
    fn read_back(bytes: &[u8]) -> Vec<ReadBack> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    h.entry_type(),
                    h.mode().expect("mode"),
                    h.uid().expect("uid"),
                    h.mtime().expect("mtime"),
                    h.size().expect("size"),
                    e.link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn headers_carry_pinned_metadata_and_long_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        fs::write(&file, "hello").expect("write");
        let md = fs::metadata(&file).expect("stat");
        let long_name = format!("d/{}", "n".repeat(150));
        let long_target = "t".repeat(300);
        let entries = [
            entry("d", Kind::Dir),
            Entry {
                name: long_name.clone().into_bytes(),
                origin: file.clone(),
                kind: Kind::File {
                    size: 5,
                    executable: true,
                    dev: md.dev(),
                    ino: md.ino(),
                    linked: false,
                    mtime_ns: 0,
                },
            },
            entry(
                "d/link",
                Kind::Symlink {
                    target: long_target.clone().into_bytes(),
                },
            ),
            entry(
                "d/same",
                Kind::Hardlink {
                    target: long_name.clone().into_bytes(),
                    executable: true,
                },
            ),
        ];
        let (bytes, stats) =
            write(Vec::new(), &entries, &options(), Path::new("mem")).expect("write");
        assert_eq!(stats.files, 3);
        assert_eq!(bytes.len() % BLOCK, 0);
        let got = read_back(&bytes);
        let (m, u) = (1_700_000_000, 1000);
        assert_eq!(
            got,
            [
                ("d/".into(), EntryType::Directory, 0o755, u, m, 0, None),
                (long_name.clone(), EntryType::Regular, 0o755, u, m, 5, None),
                (
                    "d/link".into(),
                    EntryType::Symlink,
                    0o777,
                    u,
                    m,
                    0,
                    Some(long_target)
                ),
                (
                    "d/same".into(),
                    EntryType::Link,
                    0o755,
                    u,
                    m,
                    0,
                    Some(long_name)
                ),
            ]
        );
        // No user or group names, and the same bytes every time.
        let header = Header::from_byte_slice(&bytes[..BLOCK]);
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(header.groupname_bytes(), Some(&b""[..]));
        let (again, _) = write(Vec::new(), &entries, &options(), Path::new("mem")).expect("write");
        assert_eq!(bytes, again);
    }

    #[test]
    fn a_file_that_changed_since_listing_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        fs::write(&file, "hello").expect("write");
        let md = fs::metadata(&file).expect("stat");
        let listed = |size| Entry {
            name: b"f".to_vec(),
            origin: file.clone(),
            kind: Kind::File {
                size,
                executable: false,
                dev: md.dev(),
                ino: md.ino(),
                linked: false,
                mtime_ns: 0,
            },
        };
        let err = write(Vec::new(), &[listed(4)], &options(), Path::new("mem")).expect_err("grew");
        assert!(matches!(err, LayerError::Changed { .. }), "{err}");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        fs::remove_file(&file).expect("rm");
        let err = write(Vec::new(), &[listed(5)], &options(), Path::new("mem")).expect_err("gone");
        assert!(matches!(err, LayerError::Read { .. }), "{err}");
    }
}
