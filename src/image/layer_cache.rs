//! Incremental rebuilds: a layer whose source trees have not changed is not re-tarred or
//! recompressed.
//!
//! The key hashes a format version, st2pack's version, the [`LayerOptions`], each path in the
//! image, and the *stat data* of every entry of the source trees: relative path, type, normalised
//! mode, size, symlink target, mtime and ctime in nanoseconds, inode, device and link count —
//! like git's index, not the contents. Trade-off: a stat walk costs one `lstat` per file, where
//! hashing contents would read every byte; in exchange, a tree that is re-created with identical
//! contents (a fresh CI checkout, a re-install) gets new inodes and ctimes and misses, which only
//! costs a rebuild. Every change to a file's data or metadata updates its ctime, which user space
//! cannot set back, so a change is never missed...
//!
//! ...except when it lands in the same filesystem timestamp tick as the stat we recorded (git's
//! "racy" entries). So when any entry's mtime or ctime is within the racy window (2 s by default)
//! of the build's start, the entry is stored as *unconfirmed*: the next lookup re-tars the trees
//! without compressing (cheap next to compression) and trusts the entry only if the diff id
//! matches, then confirms it.
//!
//! Entries are small JSON files `<root>/layers/<key>.json` (or in a directory of their own, see
//! [`LayerCache::open_in`]) and are only valid while their blob is still in the [`BlobStore`]; a
//! record's mtime is its last use. When a layer must be rebuilt, the [`SegmentCache`] under the same
//! root lets it copy the compressed bytes of its unchanged trees (a virtualenv linked again with
//! the same files).

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::blobs::BlobStore;
use super::cache_key::KeyHasher;
use super::layer::{
    self, FORMAT_VERSION, LayerError, LayerInput, LayerOptions, LayerStats, parallel_map,
    walk_source,
};
use super::model::{self, Descriptor, Layer};
use super::segment_cache::SegmentCache;

/// How close to the build's start a timestamp must be for its entry to be unconfirmed.
pub const DEFAULT_RACY_WINDOW: Duration = Duration::from_secs(2);

/// Why the layer cache could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    #[error(transparent)]
    Layer(#[from] LayerError),

    /// A key that is not 64 lowercase hex digits (it becomes a file name).
    #[error(
        "`{key}` is not a layer cache key (64 lowercase hex digits); use layer_cache::fingerprint"
    )]
    InvalidKey { key: String },

    /// The cache directory could not be created or written.
    #[error(
        "could not {action} {path}: {source}; check that the cache directory is writable (or \
         choose another with --cache-dir)"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A built layer, and whether it came from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLayer {
    pub layer: Layer,
    pub stats: LayerStats,
    pub from_cache: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    format: u32,
    descriptor: Descriptor,
    diff_id: String,
    stats: LayerStats,
    /// Recorded while a timestamp was racy: trust only after re-checking the diff id.
    #[serde(default)]
    unconfirmed: bool,
}

/// Layer cache entries under `<root>/layers/`, valid while their blob is in `store`.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
    store: BlobStore,
    segments: SegmentCache,
    racy_window: Duration,
}

impl LayerCache {
    /// Opens (creating if needed) the cache under `root`, for layers stored in `store`.
    pub fn open(root: impl AsRef<Path>, store: &BlobStore) -> Result<LayerCache, CacheError> {
        let segments = SegmentCache::open(root.as_ref(), store).map_err(io_error(
            "create the segment records directory in",
            root.as_ref(),
        ))?;
        LayerCache::open_in(root.as_ref().join("layers"), segments)
    }

    /// Opens (creating if needed) the records in `dir` itself, with `segments` and its store.
    pub fn open_in(
        dir: impl Into<PathBuf>,
        segments: SegmentCache,
    ) -> Result<LayerCache, CacheError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_error("create the layer cache directory", &dir))?;
        Ok(LayerCache {
            dir,
            store: segments.blob_store().clone(),
            segments,
            racy_window: DEFAULT_RACY_WINDOW,
        })
    }

    /// Changes the racy window: wider for filesystems with coarse timestamps (FAT: 2 s, some
    /// network filesystems), narrower in tests.
    pub fn with_racy_window(mut self, window: Duration) -> LayerCache {
        self.racy_window = window;
        self
    }

    /// The blob store the cached layers live in.
    pub fn blob_store(&self) -> &BlobStore {
        &self.store
    }

    /// The cached layer for `key`, if confirmed and its blob is still stored.
    pub fn lookup(&self, key: &str) -> Option<(Layer, LayerStats)> {
        let record = self.record(key)?;
        (!record.unconfirmed).then(|| into_parts(record))
    }

    /// Records a layer built from inputs whose fingerprint is `key`.
    pub fn store(&self, key: &str, layer: &Layer, stats: &LayerStats) -> Result<(), CacheError> {
        self.put(key, &record(layer, stats, false))
    }

    fn path(&self, key: &str) -> Option<PathBuf> {
        model::sha256_hex(&format!("sha256:{key}")).map(|hex| self.dir.join(format!("{hex}.json")))
    }

    /// Any readable record whose blob is intact in size; anything else is a miss. A record found
    /// gets its mtime set to now: its last use, for whoever prunes the cache.
    fn record(&self, key: &str) -> Option<Record> {
        let path = self.path(key)?;
        let bytes = fs::read(&path).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        let size = fs::metadata(self.store.path(&record.descriptor.digest).ok()?)
            .ok()?
            .len();
        let valid = record.format == FORMAT_VERSION
            && size == record.descriptor.size
            && model::sha256_hex(&record.diff_id).is_some();
        if valid {
            let _ = filetime::set_file_mtime(&path, filetime::FileTime::now());
        }
        valid.then_some(record)
    }

    fn put(&self, key: &str, record: &Record) -> Result<(), CacheError> {
        let path = self.path(key).ok_or_else(|| CacheError::InvalidKey {
            key: key.to_owned(),
        })?;
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| io_error("serialise a cache entry for", &path)(e.into()))?;
        // Written aside and renamed, so a reader never sees half an entry.
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir)
            .map_err(io_error("create a cache entry in", &self.dir))?;
        temp.write_all(&json)
            .map_err(io_error("write a cache entry in", &self.dir))?;
        temp.persist(&path)
            .map_err(|e| io_error("write cache entry", &path)(e.error))?;
        Ok(())
    }
}

/// The cache key of a layer of `input` built with `options`: 64 hex digits.
pub fn fingerprint(input: &LayerInput, options: &LayerOptions) -> Result<String, LayerError> {
    Ok(fingerprint_and_newest(input, options)?.0)
}

/// The key, and the newest mtime or ctime in the trees (ns since the epoch) to judge raciness.
fn fingerprint_and_newest(
    input: &LayerInput,
    options: &LayerOptions,
) -> Result<(String, i128), LayerError> {
    let mut key = KeyHasher::new("st2pack-layer-cache");
    key.u64(FORMAT_VERSION.into());
    key.u64(options.mtime);
    key.u64(options.uid);
    key.u64(options.gid);
    key.bytes(options.compression.to_string().as_bytes());
    let mut newest = i128::MIN;
    for source in &input.sources {
        key.bytes(&layer::image_prefix(&source.path_in_image)?);
        walk_source(&source.source, |entry| {
            let md = entry.metadata;
            let file_type = md.file_type();
            let (type_char, mode, target) = if file_type.is_dir() {
                (b'd', 0o755, Vec::new())
            } else if file_type.is_symlink() {
                let target = fs::read_link(entry.path).map_err(|e| LayerError::Read {
                    path: entry.path.to_owned(),
                    source: e,
                })?;
                (b'l', 0o777, target.as_os_str().as_bytes().to_vec())
            } else if file_type.is_file() {
                (
                    b'f',
                    if md.mode() & 0o111 != 0 { 0o755 } else { 0o644 },
                    Vec::new(),
                )
            } else {
                (b's', md.mode() & 0o7777, Vec::new())
            };
            let mtime = i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec());
            let ctime = i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec());
            newest = newest.max(mtime).max(ctime);
            key.bytes(entry.relative.as_os_str().as_bytes());
            key.tag(type_char);
            key.u64(mode.into());
            key.u64(md.len());
            key.bytes(&target);
            key.i128(mtime);
            key.i128(ctime);
            key.u64(md.ino());
            key.u64(md.dev());
            key.u64(md.nlink());
            Ok(())
        })?;
        // Ends this source's entries, so that they cannot be read as the next source's.
        key.bytes(b"");
    }
    Ok((key.finish(), newest))
}

/// Builds each layer, or takes it from `cache` when its trees are unchanged, on `jobs` threads;
/// results in input order.
pub fn build_layers_cached(
    cache: &LayerCache,
    inputs: Vec<LayerInput>,
    options: &LayerOptions,
    jobs: usize,
) -> Result<Vec<CachedLayer>, CacheError> {
    build_layers_cached_reporting(cache, inputs, options, jobs, |_| {})
}

/// What [`build_layers_cached_reporting`] tells its caller as it works, by index of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerEvent {
    Started(usize),
    Finished(usize),
}

/// [`build_layers_cached`], calling `report` (from any of the threads) as each layer starts and
/// is finished, for progress displays.
pub fn build_layers_cached_reporting(
    cache: &LayerCache,
    inputs: Vec<LayerInput>,
    options: &LayerOptions,
    jobs: usize,
    report: impl Fn(LayerEvent) + Sync,
) -> Result<Vec<CachedLayer>, CacheError> {
    let indexed: Vec<(usize, &LayerInput)> = inputs.iter().enumerate().collect();
    parallel_map(&indexed, jobs, |&(index, input)| {
        report(LayerEvent::Started(index));
        let layer = build_cached(cache, input, options)?;
        report(LayerEvent::Finished(index));
        Ok(layer)
    })
}

fn build_cached(
    cache: &LayerCache,
    input: &LayerInput,
    options: &LayerOptions,
) -> Result<CachedLayer, CacheError> {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let (key, newest) = fingerprint_and_newest(input, options)?;
    let racy = newest > started - cache.racy_window.as_nanos() as i128;
    if let Some(mut record) = cache.record(&key) {
        let confirmed = !record.unconfirmed || layer::diff_id(input, options)? == record.diff_id;
        if confirmed {
            if record.unconfirmed && !racy {
                record.unconfirmed = false;
                cache.put(&key, &record)?;
            }
            let (layer, stats) = into_parts(record);
            return Ok(CachedLayer {
                layer,
                stats,
                from_cache: true,
            });
        }
    }
    let (layer, stats) =
        layer::build_layer_reusing(&cache.store, input, options, Some(&cache.segments))?;
    cache.put(&key, &record(&layer, &stats, racy))?;
    Ok(CachedLayer {
        layer,
        stats,
        from_cache: false,
    })
}

fn record(layer: &Layer, stats: &LayerStats, unconfirmed: bool) -> Record {
    Record {
        format: FORMAT_VERSION,
        descriptor: layer.descriptor.clone(),
        diff_id: layer.diff_id.clone(),
        stats: *stats,
        unconfirmed,
    }
}

fn into_parts(record: Record) -> (Layer, LayerStats) {
    let layer = Layer {
        descriptor: record.descriptor,
        diff_id: record.diff_id,
    };
    (layer, record.stats)
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
    let path = path.to_owned();
    move |source| CacheError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::image::layer::Compression;

    struct Fixture {
        _dir: tempfile::TempDir,
        tree: PathBuf,
        cache: LayerCache,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("sub")).expect("mkdir");
        fs::write(tree.join("a.txt"), "a").expect("write");
        fs::write(tree.join("sub/b.txt"), "b").expect("write");
        let store = BlobStore::open(dir.path().join("blobs")).expect("store");
        let cache = LayerCache::open(dir.path().join("cache"), &store)
            .expect("cache")
            .with_racy_window(Duration::ZERO);
        Fixture {
            _dir: dir,
            tree,
            cache,
        }
    }

    fn input(f: &Fixture) -> LayerInput {
        LayerInput::new([(&f.tree, "/opt/x")])
    }

    fn build(f: &Fixture) -> CachedLayer {
        let mut built = build_layers_cached(&f.cache, vec![input(f)], &LayerOptions::default(), 1)
            .expect("build");
        built.remove(0)
    }

    #[test]
    fn fingerprint_follows_stat_data_options_and_paths() {
        let f = fixture();
        let options = LayerOptions::default();
        let key = fingerprint(&input(&f), &options).expect("fingerprint");
        assert_eq!(key.len(), 64);
        assert_eq!(fingerprint(&input(&f), &options).expect("again"), key);
        let other_path = LayerInput::new([(&f.tree, "/opt/y")]);
        assert_ne!(fingerprint(&other_path, &options).expect("path"), key);
        for changed in [
            LayerOptions {
                mtime: 1,
                ..options
            },
            LayerOptions { uid: 1, ..options },
            LayerOptions { gid: 1, ..options },
            LayerOptions {
                compression: Compression::Zstd,
                ..options
            },
        ] {
            assert_ne!(fingerprint(&input(&f), &changed).expect("options"), key);
        }
        // A chmod that does not change the normalised mode still changes the ctime.
        let file = f.tree.join("sub/b.txt");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
        let after_chmod = fingerprint(&input(&f), &options).expect("chmod");
        // A different size: a same-size rewrite within the same timestamp tick is the racy case.
        fs::write(&file, "cc").expect("rewrite");
        let after_write = fingerprint(&input(&f), &options).expect("write");
        assert_ne!(after_write, key);
        assert_ne!(after_write, after_chmod);
    }

    #[test]
    fn unchanged_trees_hit_and_changed_trees_miss() {
        let f = fixture();
        let first = build(&f);
        assert!(!first.from_cache);
        let second = build(&f);
        assert!(second.from_cache);
        assert_eq!((&second.layer, second.stats), (&first.layer, first.stats));
        let key = fingerprint(&input(&f), &LayerOptions::default()).expect("key");
        assert_eq!(
            f.cache.lookup(&key),
            Some((first.layer.clone(), first.stats))
        );

        // A different size: with no racy window, a same-size rewrite in the same tick would hit.
        fs::write(f.tree.join("sub/b.txt"), "bb").expect("rewrite");
        let third = build(&f);
        assert!(!third.from_cache);
        assert_ne!(third.layer, first.layer);
    }

    #[test]
    fn entries_without_their_blob_or_corrupt_are_misses() {
        let f = fixture();
        let first = build(&f);
        let key = fingerprint(&input(&f), &LayerOptions::default()).expect("key");
        let blob = f
            .cache
            .blob_store()
            .path(&first.layer.descriptor.digest)
            .expect("path");
        fs::remove_file(&blob).expect("rm blob");
        assert_eq!(f.cache.lookup(&key), None);
        let rebuilt = build(&f);
        assert!(!rebuilt.from_cache);
        assert!(blob.is_file());

        fs::write(f.cache.dir.join(format!("{key}.json")), "{not json").expect("corrupt");
        assert_eq!(f.cache.lookup(&key), None);
        assert!(!build(&f).from_cache);
    }

    #[test]
    fn racy_entries_are_confirmed_by_their_diff_id() {
        let mut f = fixture();
        f.cache = f.cache.with_racy_window(Duration::from_secs(3600));
        let key = fingerprint(&input(&f), &LayerOptions::default()).expect("key");
        let first = build(&f);
        assert!(!first.from_cache);
        // Unconfirmed: the public lookup does not trust it, a build re-checks the tar.
        assert_eq!(f.cache.lookup(&key), None);
        assert!(build(&f).from_cache);

        // An unconfirmed entry whose content no longer matches is rebuilt, not served.
        let mut stale = f.cache.record(&key).expect("record");
        stale.diff_id = model::sha256_digest(b"other content");
        f.cache.put(&key, &stale).expect("put");
        let rebuilt = build(&f);
        assert!(!rebuilt.from_cache);
        assert_eq!(rebuilt.layer, first.layer);

        // Once nothing is racy any more, the entry is confirmed.
        f.cache = f.cache.with_racy_window(Duration::ZERO);
        assert!(build(&f).from_cache);
        assert!(f.cache.lookup(&key).is_some());
    }

    #[test]
    fn invalid_keys_are_refused() {
        let f = fixture();
        assert_eq!(f.cache.lookup("../../etc/passwd"), None);
        let layer = build(&f).layer;
        let err = f
            .cache
            .store("../x", &layer, &LayerStats::default())
            .expect_err("bad key stored");
        assert!(matches!(err, CacheError::InvalidKey { .. }), "{err}");
    }
}
