//! A content-addressed blob store on disk.
//!
//! The layout is `<root>/sha256/<hex>`, exactly the `blobs/` directory of an OCI image layout, so
//! a layout writer can hard-link or copy blobs out of it (or use an OCI layout's `blobs/` as the
//! root directly). Blobs are written to a temporary file under `<root>/.tmp/`, hashed on the way,
//! synced, and only then renamed to their digest: a crash can leave a stray temporary file, never
//! a partial blob under a digest name. Two writers of the same content both rename identical bytes
//! into place, which is harmless. Everything streams through fixed-size buffers, so memory does
//! not grow with blob size.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use super::model::{self, Descriptor};

/// Buffer size for streaming blobs to and from disk.
const BUF_SIZE: usize = 128 * 1024;

/// Temporary files older than this are left over from a crashed writer and removed on open.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Why the blob store could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A digest that is not `sha256:<64 lowercase hex>`; never turned into a path.
    #[error(
        "`{digest}` is not a sha256 digest (`sha256:` followed by 64 lowercase hex digits); check \
         the image manifest or reference it came from"
    )]
    InvalidDigest { digest: String },

    /// The blob is not in the store.
    #[error("blob {digest} is not in the blob store {root}; build or pull the image again")]
    Missing { digest: String, root: PathBuf },

    /// The blob's bytes do not hash to its name.
    #[error(
        "blob {path} is corrupt: its content hashes to {actual}; delete it and build or pull the \
         image again"
    )]
    Corrupt { path: PathBuf, actual: String },

    /// A filesystem operation in the store failed.
    #[error(
        "could not {action} {path}: {source}; check that the directory is writable and the disk \
         is not full"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BlobError {
    fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> BlobError {
        let path = path.into();
        move |source| BlobError::Io {
            action,
            path,
            source,
        }
    }
}

/// A directory of blobs named by their sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobStore {
    root: PathBuf,
    /// A cache's store: a blob found or read gets its mtime set to now (see [`Self::recording_use`]).
    record_use: bool,
}

impl BlobStore {
    /// Opens (creating if needed) the store at `root`, and removes temporary files a crashed
    /// writer left more than a day ago (younger ones may belong to a writer still running).
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore, BlobError> {
        let store = BlobStore {
            root: root.into(),
            record_use: false,
        };
        for dir in [store.blobs_dir(), store.temp_dir()] {
            fs::create_dir_all(&dir).map_err(BlobError::io("create the blob directory", &dir))?;
        }
        store.remove_stale_temp_files();
        Ok(store)
    }

    /// Opens an existing store for reading only, creating and cleaning nothing: for the `blobs/`
    /// of a user's OCI layout, which may be read-only and is not ours to modify.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<BlobStore, BlobError> {
        let store = BlobStore {
            root: root.into(),
            record_use: false,
        };
        let blobs = store.blobs_dir();
        fs::read_dir(&blobs).map_err(BlobError::io("read the blob directory", &blobs))?;
        Ok(store)
    }

    /// The same store, recording each blob's last use as its modification time whenever
    /// [`Self::contains`] finds it or [`Self::open_blob`] opens it: for a store that is a cache,
    /// so that a pruner can tell the blobs builds still use from the forgotten ones.
    pub fn recording_use(self) -> BlobStore {
        BlobStore {
            record_use: true,
            ..self
        }
    }

    fn mark_used(&self, path: &Path) {
        if self.record_use {
            let _ = filetime::set_file_mtime(path, filetime::FileTime::now());
        }
    }

    /// Makes blob `digest` of `from` available here: hard-linked when both are on one
    /// filesystem, else copied through a writer, which checks the digest on the way.
    pub fn import(&self, from: &BlobStore, digest: &str) -> Result<(), BlobError> {
        if self.contains(digest) {
            return Ok(());
        }
        if fs::hard_link(from.path(digest)?, self.path(digest)?).is_ok() {
            return Ok(());
        }
        let mut writer = self.writer()?;
        let mut source = from.open_blob(digest)?;
        let target = self.path(digest)?;
        std::io::copy(&mut source, &mut writer)
            .map_err(BlobError::io("copy a blob to", &target))?;
        let written = writer.finish("application/octet-stream")?;
        if written.digest != digest {
            return Err(BlobError::Corrupt {
                path: from.path(digest)?,
                actual: written.digest,
            });
        }
        Ok(())
    }

    /// The store's root: the `blobs/` directory of an OCI layout.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/sha256`, where the blobs are.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    /// Where the blob `digest` is (or would be). The digest is validated first, so a hostile
    /// digest such as `sha256:../../x` never becomes a path.
    pub fn path(&self, digest: &str) -> Result<PathBuf, BlobError> {
        let hex = model::sha256_hex(digest).ok_or_else(|| BlobError::InvalidDigest {
            digest: digest.to_owned(),
        })?;
        Ok(self.blobs_dir().join(hex))
    }

    /// Whether the blob is in the store (false for an invalid digest).
    pub fn contains(&self, digest: &str) -> bool {
        let found = self.path(digest).ok().filter(|path| path.is_file());
        if let Some(path) = &found {
            self.mark_used(path);
        }
        found.is_some()
    }

    /// Stores `bytes` (a config or manifest) and describes them.
    pub fn put_bytes(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, BlobError> {
        let mut writer = self.writer()?;
        writer.write_all(bytes).map_err(BlobError::io(
            "write a blob into the blob store",
            self.temp_dir(),
        ))?;
        writer.finish(media_type)
    }

    /// A writer for a new blob whose digest is known once it is finished.
    pub fn writer(&self) -> Result<BlobWriter, BlobError> {
        let dir = self.temp_dir();
        let temp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&dir)
            .map_err(BlobError::io("create a temporary blob in", &dir))?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(BUF_SIZE, temp),
            hasher: Sha256::new(),
            size: 0,
            store: self.clone(),
        })
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &str) -> Result<File, BlobError> {
        let path = self.path(digest)?;
        self.mark_used(&path);
        File::open(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => BlobError::Missing {
                digest: digest.to_owned(),
                root: self.root.clone(),
            },
            _ => BlobError::Io {
                action: "open blob",
                path,
                source,
            },
        })
    }

    /// Re-hashes a blob and checks that it matches its name.
    pub fn verify(&self, digest: &str) -> Result<(), BlobError> {
        let path = self.path(digest)?;
        let mut file = self.open_blob(digest)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0; BUF_SIZE];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(BlobError::Io {
                        action: "read blob",
                        path,
                        source,
                    });
                }
            };
            hasher.update(&buf[..n]);
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual == digest {
            Ok(())
        } else {
            Err(BlobError::Corrupt { path, actual })
        }
    }

    /// Best effort: a failure here only leaves some disk space used.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.temp_dir()) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| {
                    now.duration_since(modified).unwrap_or_default() > STALE_TEMP_AGE
                });
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Writes one blob: hashes the bytes as they go to a temporary file in the store, and renames the
/// file to its digest in [`BlobWriter::finish`]. Dropped unfinished, it removes its temporary file.
#[derive(Debug)]
pub struct BlobWriter {
    file: BufWriter<NamedTempFile>,
    hasher: Sha256,
    size: u64,
    store: BlobStore,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the blob to disk and moves it under its digest; returns its descriptor.
    pub fn finish(self, media_type: &str) -> Result<Descriptor, BlobError> {
        let temp_dir = self.store.temp_dir();
        let temp = self.file.into_inner().map_err(|e| BlobError::Io {
            action: "write a blob into",
            path: temp_dir.clone(),
            source: e.into_error(),
        })?;
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        let dest = self.store.path(&digest)?;
        // Synced before the rename, so that after a power loss the digest name never points at
        // a file whose data did not reach the disk.
        temp.as_file()
            .sync_all()
            .map_err(BlobError::io("sync a blob in", &temp_dir))?;
        // Blobs are content, readable by whoever serves the layout; tempfile creates them 0600.
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))
            .map_err(BlobError::io("set permissions on a blob in", &temp_dir))?;
        temp.persist(&dest)
            .map_err(|e| BlobError::io("move a finished blob to", &dest)(e.error))?;
        Ok(Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size: self.size,
            annotations: None,
        })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_makes_another_stores_blob_available() {
        let (_a, from) = store();
        let (_b, to) = store();
        let descriptor = from
            .put_bytes("application/octet-stream", b"layer")
            .unwrap();
        to.import(&from, &descriptor.digest).unwrap();
        assert!(to.contains(&descriptor.digest));
        to.verify(&descriptor.digest).unwrap();
        assert!(
            to.import(&from, &format!("sha256:{}", "0".repeat(64)))
                .is_err()
        );
    }

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path().join("blobs")).expect("open");
        (dir, store)
    }

    #[test]
    fn put_then_read_back_and_verify() {
        let (_dir, store) = store();
        let desc = store.put_bytes(model::OCI_CONFIG, b"{}").expect("put");
        assert_eq!(desc.digest, model::sha256_digest(b"{}"));
        assert_eq!(desc.size, 2);
        assert_eq!(desc.media_type, model::OCI_CONFIG);
        assert!(store.contains(&desc.digest));
        let path = store.path(&desc.digest).expect("path");
        assert_eq!(path, store.root().join("sha256").join(&desc.digest[7..]));
        assert_eq!(fs::read(&path).expect("read"), b"{}");
        assert_eq!(
            fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
            0o644
        );
        store.verify(&desc.digest).expect("verify");
        // Nothing is left behind in the temporary directory.
        assert_eq!(fs::read_dir(store.temp_dir()).expect("ls").count(), 0);
    }

    #[test]
    fn streaming_writer_matches_put_bytes_and_tolerates_rewrites() {
        let (_dir, store) = store();
        let data: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = store.writer().expect("writer");
        for chunk in data.chunks(7_777) {
            writer.write_all(chunk).expect("write");
        }
        assert_eq!(writer.size(), data.len() as u64);
        let streamed = writer.finish(model::OCI_LAYER_GZIP).expect("finish");
        let again = store
            .put_bytes(model::OCI_LAYER_GZIP, &data)
            .expect("put same content");
        assert_eq!(streamed, again);
        store.verify(&streamed.digest).expect("verify");
    }

    #[test]
    fn verify_detects_corruption() {
        let (_dir, store) = store();
        let desc = store.put_bytes(model::OCI_CONFIG, b"hello").expect("put");
        fs::write(store.path(&desc.digest).expect("path"), b"jello").expect("corrupt");
        let err = store
            .verify(&desc.digest)
            .expect_err("corrupt blob accepted");
        assert!(matches!(err, BlobError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("delete it"), "{err}");
    }

    #[test]
    fn invalid_and_missing_digests_are_errors_not_paths() {
        let (_dir, store) = store();
        for bad in ["sha256:../x", "sha256:../../etc/passwd", "md5:00", ""] {
            assert!(
                matches!(store.path(bad), Err(BlobError::InvalidDigest { .. })),
                "{bad}"
            );
            assert!(!store.contains(bad));
            assert!(store.open_blob(bad).is_err());
        }
        let absent = model::sha256_digest(b"absent");
        assert!(!store.contains(&absent));
        let err = store.open_blob(&absent).expect_err("missing blob opened");
        assert!(matches!(err, BlobError::Missing { .. }), "{err}");
        assert!(matches!(
            store.verify(&absent),
            Err(BlobError::Missing { .. })
        ));
    }

    #[test]
    fn unfinished_writer_leaves_no_blob() {
        let (_dir, store) = store();
        let mut writer = store.writer().expect("writer");
        writer.write_all(b"partial").expect("write");
        drop(writer);
        assert_eq!(fs::read_dir(store.blobs_dir()).expect("ls").count(), 0);
        assert_eq!(fs::read_dir(store.temp_dir()).expect("ls").count(), 0);
    }
}
