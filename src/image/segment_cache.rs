//! Compressed members of earlier layers, so that a layer made again from the same files (a
//! virtualenv linked again from the installer's cache: new inodes, which the layer cache's key
//! covers) is not compressed again.
//!
//! A layer blob is a series of compressed members, one per segment of its entries (see
//! [`layer`](super::layer)). A record maps a segment's key (its entries' names, sizes and
//! modification times) to where its member sits in a blob of the [`BlobStore`], with the digest
//! of the member and of the segment's uncompressed tar. The key is only a hint: the layer builder
//! re-tars a segment anyway, since the layer's diff id needs those bytes, and copies the member
//! only when the tar's digest is the recorded one. A change the key misses costs a
//! recompression, never a wrong layer, so unlike the layer cache there is no racy window.
//!
//! Records are small JSON files `<root>/segments/<key>.json` (or in a directory of their own, see
//! [`SegmentCache::open_in`]); they point into blobs and take no room of their own. A record's
//! mtime is its last use. The layer builder's keys cover its format version, so a layer format
//! change never finds an older record; `RECORD_FORMAT` versions the record files themselves.
//! This module depends only on the blob store: the layer builder uses it, never the other way
//! round.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Take};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::blobs::BlobStore;
use super::model;

/// Version of the record files; a record of another version is ignored.
const RECORD_FORMAT: u32 = 2;

/// Where an earlier build left a segment's compressed member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The layer blob holding the member.
    pub blob: String,
    /// Where the member starts in the blob, and its length.
    pub offset: u64,
    pub length: u64,
    /// `sha256:` of the member's bytes, checked before they are reused.
    pub member_digest: String,
    /// `sha256:` of the segment's uncompressed tar, which the new build must reproduce.
    pub tar_digest: String,
}

/// A member found in an earlier layer's blob.
pub struct CachedMember {
    /// The blob file (for error messages).
    pub blob: PathBuf,
    /// Its bytes; the copier checks them again against the record's digest as they pass.
    pub bytes: Take<File>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredRecord {
    format: u32,
    #[serde(flatten)]
    record: SegmentRecord,
}

/// Segment records under `<root>/segments/`, pointing into blobs of `store`.
#[derive(Debug, Clone)]
pub struct SegmentCache {
    dir: PathBuf,
    store: BlobStore,
}

impl SegmentCache {
    /// Opens (creating if needed) the records under `root`, for layers stored in `store`.
    pub fn open(root: impl AsRef<Path>, store: &BlobStore) -> io::Result<SegmentCache> {
        SegmentCache::open_in(root.as_ref().join("segments"), store)
    }

    /// Opens (creating if needed) the records in `dir` itself.
    pub fn open_in(dir: impl Into<PathBuf>, store: &BlobStore) -> io::Result<SegmentCache> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(SegmentCache {
            dir,
            store: store.clone(),
        })
    }

    /// The directory of the records (for error messages).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store the recorded members are in.
    pub fn blob_store(&self) -> &BlobStore {
        &self.store
    }

    /// The record for `key`, if it is readable, of this format, and its blob is long enough.
    /// A record found gets its mtime set to now: its last use, for whoever prunes the cache.
    pub fn lookup(&self, key: &str) -> Option<SegmentRecord> {
        let path = self.path(key)?;
        let bytes = fs::read(&path).ok()?;
        let stored: StoredRecord = serde_json::from_slice(&bytes).ok()?;
        let record = stored.record;
        let blob_len = fs::metadata(self.store.path(&record.blob).ok()?)
            .ok()?
            .len();
        let end = record.offset.checked_add(record.length)?;
        let valid = stored.format == RECORD_FORMAT
            && end <= blob_len
            && model::sha256_hex(&record.member_digest).is_some()
            && model::sha256_hex(&record.tar_digest).is_some();
        if valid {
            let _ = filetime::set_file_mtime(&path, filetime::FileTime::now());
        }
        valid.then_some(record)
    }

    /// The member `record` points at, once its bytes have been checked against the record's
    /// digest; `None` if the blob is gone or no longer holds those bytes.
    pub fn member(&self, record: &SegmentRecord) -> Option<CachedMember> {
        let blob = self.store.path(&record.blob).ok()?;
        let mut file = self.store.open_blob(&record.blob).ok()?;
        file.seek(SeekFrom::Start(record.offset)).ok()?;
        let mut hasher = Sha256::new();
        let copied = io::copy(&mut (&mut file).take(record.length), &mut hasher).ok()?;
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if copied != record.length || digest != record.member_digest {
            return None;
        }
        file.seek(SeekFrom::Start(record.offset)).ok()?;
        Some(CachedMember {
            blob,
            bytes: file.take(record.length),
        })
    }

    /// Records where the member of the segment with `key` is.
    pub fn remember(&self, key: &str, record: &SegmentRecord) -> io::Result<()> {
        let path = self.path(key).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{key}` is not a segment key"),
            )
        })?;
        let stored = StoredRecord {
            format: RECORD_FORMAT,
            record: record.clone(),
        };
        let json = serde_json::to_vec_pretty(&stored).map_err(io::Error::other)?;
        // Written aside and renamed, so a reader never sees half a record.
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
        io::Write::write_all(&mut temp, &json)?;
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Keys are 64 hex digits and become file names; anything else has no path.
    fn path(&self, key: &str) -> Option<PathBuf> {
        model::sha256_hex(&format!("sha256:{key}")).map(|hex| self.dir.join(format!("{hex}.json")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        "ab".repeat(32)
    }

    #[test]
    fn records_are_trusted_only_while_their_blob_holds_the_member() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path().join("blobs")).expect("store");
        let cache = SegmentCache::open(dir.path(), &store).expect("cache");
        let blob = store
            .put_bytes("application/octet-stream", b"0123456789")
            .expect("blob");
        let record = SegmentRecord {
            blob: blob.digest.clone(),
            offset: 2,
            length: 3,
            member_digest: model::sha256_digest(b"234"),
            tar_digest: model::sha256_digest(b"tar"),
        };
        assert_eq!(cache.lookup(&key()), None);
        cache.remember(&key(), &record).expect("remember");
        assert_eq!(cache.lookup(&key()), Some(record.clone()));
        let mut member = Vec::new();
        cache
            .member(&record)
            .expect("member")
            .bytes
            .read_to_end(&mut member)
            .expect("read");
        assert_eq!(member, b"234");

        // Bytes that are not the member's, or past the blob's end, are not served.
        let other = SegmentRecord {
            member_digest: model::sha256_digest(b"345"),
            ..record.clone()
        };
        assert!(cache.member(&other).is_none());
        let past_end = SegmentRecord {
            offset: 8,
            ..record.clone()
        };
        cache.remember(&key(), &past_end).expect("remember");
        assert_eq!(cache.lookup(&key()), None);

        // Gone with its blob; keys that are not 64 hex digits have no record.
        cache.remember(&key(), &record).expect("remember");
        fs::remove_file(store.path(&blob.digest).expect("path")).expect("rm");
        assert_eq!(cache.lookup(&key()), None);
        assert!(cache.remember("../escape", &record).is_err());
        assert_eq!(cache.lookup("../escape"), None);
    }
}
