//! The cache directory and its one owner: every cache st2pack keeps is a bucket of [`Cache`].
//!
//! Layout (as uv's cache): one directory per bucket, named with the bucket's format version,
//! `<root>/<bucket>-v<N>/`. A format change bumps `N`, so a new st2pack never reads entries an
//! older one wrote; `st2pack cache prune` removes the directories of other versions (and the
//! unversioned ones of st2pack before buckets existed). Beside the buckets: `CACHEDIR.TAG` (so
//! backup tools skip the cache), the lock file `.lock`, and `.trash/`, where removals go.
//!
//! **Last use.** An entry's last use is its modification time, set to now by the code that uses
//! it (a build restoring a virtualenv, fetching into a git mirror, finding a layer or a blob).
//! Access times are not trusted: `noatime` and `relatime` mounts keep them stale.
//!
//! **Pruning while builds run.** Every command that uses the cache holds a shared OS file lock
//! (`flock`) on `<root>/.lock` for its whole run ([`Cache::init`]); `cache prune` takes the same
//! lock exclusively ([`Cache::lock_exclusive`]), waiting (bounded, saying so) for running
//! commands to finish, and a command started meanwhile waits for the prune. So an entry in use
//! is never removed, and nothing has to track which entries a build will touch. One global lock
//! was chosen over per-entry locks because prunes are rare and short while builds take many
//! entries, some (hard-linked files) shared between buckets. The kernel releases the lock of a
//! killed process, so a stale lock cannot exist. A removal renames the entry into `.trash/`
//! first and deletes it from there, so even without the lock a reader sees an entry or nothing,
//! and a prune killed half way leaves only trash, which the next prune empties.

mod lock;
mod prune;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use lock::LockMode;
pub use prune::{BucketUsage, CacheUsage, PrunePolicy, PruneReport};

use crate::image::blobs::{BlobError, BlobStore};
use crate::image::layer_cache::{CacheError as LayerCacheError, LayerCache};
use crate::image::segment_cache::SegmentCache;

/// Name of the lock file in the cache directory: shared by every command that uses the cache,
/// exclusive for `cache prune`.
pub const LOCK_FILE: &str = ".lock";
const TAG_FILE: &str = "CACHEDIR.TAG";
const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
                   # This file is a cache directory tag created by st2pack.\n\
                   # For information about cache directory tags see https://bford.info/cachedir/\n";
const TRASH_DIR: &str = ".trash";

/// The name of the only build root today (one per runtime target, later).
const DEFAULT_BUILD_ROOT: &str = "default";

/// One kind of cached thing, in its own directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bucket {
    /// Bare mirrors of remote git repositories, one per URL (`<name>-<hash>.git`).
    Git,
    /// Finished virtualenvs keyed by every input that shapes them.
    Virtualenvs,
    /// Checked-hash `.pyc` by interpreter, relative path and source (`<xx>/<key>.pyc`).
    Bytecode,
    /// Layer, config and base-image blobs by digest (`sha256/<hex>`).
    Blobs,
    /// Which layer blob a pack's unchanged trees gave (`<key>.json`).
    Layers,
    /// Where a layer segment's compressed bytes sit in a blob (`<key>.json`).
    Segments,
    /// Installed trees `st2pack build` layers, kept so unchanged packs are not reinstalled.
    BuildRoots,
    /// Runtime images unpacked (only what running their interpreter needs), by manifest
    /// digest (`<hex>/`).
    Runtimes,
}

impl Bucket {
    pub const ALL: [Bucket; 8] = [
        Bucket::Git,
        Bucket::Virtualenvs,
        Bucket::Bytecode,
        Bucket::Blobs,
        Bucket::Layers,
        Bucket::Segments,
        Bucket::BuildRoots,
        Bucket::Runtimes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Git => "git",
            Bucket::Virtualenvs => "virtualenvs",
            Bucket::Bytecode => "bytecode",
            Bucket::Blobs => "blobs",
            Bucket::Layers => "layers",
            Bucket::Segments => "segments",
            Bucket::BuildRoots => "build-roots",
            Bucket::Runtimes => "runtimes",
        }
    }

    /// Bump when the layout or the meaning of an entry changes: the bucket moves to a new
    /// directory and old entries are never read again.
    fn version(self) -> u32 {
        match self {
            Bucket::Git
            | Bucket::Virtualenvs
            | Bucket::Bytecode
            | Bucket::Blobs
            | Bucket::Layers
            | Bucket::Segments
            | Bucket::BuildRoots
            | Bucket::Runtimes => 1,
        }
    }

    /// The bucket's directory name, e.g. `virtualenvs-v1`.
    pub fn dir_name(self) -> String {
        format!("{}-v{}", self.name(), self.version())
    }
}

/// Directories of st2pack versions from before the buckets; never read, removed by a prune.
const UNVERSIONED_DIRS: [&str; 4] = ["git", "virtualenvs", "oci", "build-root"];

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "could not {action} {path}: {source}\n  check that the cache directory is writable, or \
         choose another with --cache-dir (or ST2PACK_CACHE_DIR)"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the cache {dir} is still being pruned by another st2pack after waiting {} s\n  \
         wait for `st2pack cache prune` to finish, or raise --lock-timeout",
        .waited.as_secs()
    )]
    PruneRunning { dir: PathBuf, waited: Duration },
    #[error(
        "other st2pack commands are still using the cache {dir} after waiting {} s\n  \
         wait for them to finish, or raise --lock-timeout",
        .waited.as_secs()
    )]
    InUse { dir: PathBuf, waited: Duration },
}

impl CacheError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheError {
        let path = path.to_path_buf();
        move |source| CacheError::Io {
            action,
            path,
            source,
        }
    }
}

/// The cache directory. [`Cache::from_path`] only names it; [`Cache::init`] creates it and holds
/// the shared lock for as long as any clone of the handle lives.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    lock: Option<Arc<lock::CacheLock>>,
}

impl Cache {
    /// The cache at `root` (made absolute), without touching the disk.
    pub fn from_path(root: impl Into<PathBuf>) -> Cache {
        let root = root.into();
        Cache {
            root: std::path::absolute(&root).unwrap_or(root),
            lock: None,
        }
    }

    /// The cache at `dir`, else at [`default_dir`].
    pub fn from_option(dir: Option<PathBuf>) -> Cache {
        Cache::from_path(dir.unwrap_or_else(default_dir))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `bucket` (not created).
    pub fn bucket(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.dir_name())
    }

    /// Creates the cache directory and takes the shared lock, waiting up to `timeout` for a
    /// running prune (`on_wait` is called once if it has to wait). A handle already holding the
    /// lock is returned as it is.
    pub fn init(self, timeout: Duration, on_wait: impl FnOnce()) -> Result<Cache, CacheError> {
        if self.lock.is_some() {
            return Ok(self);
        }
        std::fs::create_dir_all(&self.root)
            .map_err(CacheError::io("create the cache directory", &self.root))?;
        let tag = self.root.join(TAG_FILE);
        if !tag.exists() {
            std::fs::write(&tag, TAG).map_err(CacheError::io("write", &tag))?;
        }
        let lock = lock::acquire(&self.root, LockMode::Shared, timeout, on_wait)?;
        Ok(Cache {
            lock: Some(Arc::new(lock)),
            ..self
        })
    }

    /// Takes the cache for this process alone (for `cache prune`), waiting up to `timeout` for
    /// the commands using it to finish.
    pub fn lock_exclusive(
        &self,
        timeout: Duration,
        on_wait: impl FnOnce(),
    ) -> Result<ExclusiveCache, CacheError> {
        let lock = lock::acquire(&self.root, LockMode::Exclusive, timeout, on_wait)?;
        Ok(ExclusiveCache {
            cache: self.clone(),
            _lock: lock,
        })
    }

    /// The blob store of the [`Bucket::Blobs`] bucket; it marks each blob it finds as used.
    pub fn blob_store(&self) -> Result<BlobStore, BlobError> {
        Ok(BlobStore::open(self.bucket(Bucket::Blobs))?.recording_use())
    }

    /// The layer cache, with its layer and segment records in their buckets, for blobs of `store`.
    pub fn layer_cache(&self, store: &BlobStore) -> Result<LayerCache, LayerCacheError> {
        let segments =
            SegmentCache::open_in(self.bucket(Bucket::Segments), store).map_err(|source| {
                LayerCacheError::Io {
                    action: "create the segment records directory",
                    path: self.bucket(Bucket::Segments),
                    source,
                }
            })?;
        LayerCache::open_in(self.bucket(Bucket::Layers), segments)
    }

    /// The installed tree `st2pack build` installs packs into, marked as used now.
    pub fn build_root(&self) -> PathBuf {
        let root = self.bucket(Bucket::BuildRoots).join(DEFAULT_BUILD_ROOT);
        mark_used(&root);
        root
    }

    /// Size and entry count of every bucket. Takes no lock: it may run beside builds and prunes
    /// (and then counts what it saw).
    pub fn usage(&self) -> CacheUsage {
        prune::usage(self)
    }
}

/// The cache, held by this process alone: the only way to prune it.
#[derive(Debug)]
pub struct ExclusiveCache {
    cache: Cache,
    _lock: lock::CacheLock,
}

impl ExclusiveCache {
    /// Removes what `policy` selects, old bucket formats, and what killed writers left.
    pub fn prune(&self, policy: &PrunePolicy) -> Result<PruneReport, CacheError> {
        prune::prune(&self.cache, policy)
    }
}

/// Records that the entry at `path` was used now (its modification time; see the module docs).
/// Best effort: an entry that cannot be marked only becomes a candidate for pruning sooner.
pub fn mark_used(path: &Path) {
    let _ = filetime::set_file_mtime(path, filetime::FileTime::now());
}

/// The default cache directory: `$XDG_CACHE_HOME/st2pack` or `~/.cache/st2pack`.
pub fn default_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("st2pack")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_have_distinct_versioned_directories() {
        let cache = Cache::from_path("/c");
        let dirs: std::collections::BTreeSet<_> =
            Bucket::ALL.iter().map(|b| cache.bucket(*b)).collect();
        assert_eq!(dirs.len(), Bucket::ALL.len());
        assert_eq!(
            cache.bucket(Bucket::Virtualenvs),
            Path::new("/c/virtualenvs-v1")
        );
        for name in UNVERSIONED_DIRS {
            assert!(!dirs.contains(&cache.root().join(name)));
        }
    }

    #[test]
    fn init_tags_the_directory_and_shares_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let one = Cache::from_path(tmp.path().join("c"))
            .init(Duration::from_secs(1), || {})
            .unwrap();
        let two = Cache::from_path(tmp.path().join("c"))
            .init(Duration::from_secs(1), || {
                panic!("shared locks do not wait")
            })
            .unwrap();
        assert!(one.root().join(TAG_FILE).is_file());
        let mut waited = false;
        let err = one
            .lock_exclusive(Duration::from_millis(50), || waited = true)
            .unwrap_err();
        assert!(waited);
        assert!(err.to_string().contains("--lock-timeout"), "{err}");
        drop((one, two));
        let exclusive = Cache::from_path(tmp.path().join("c"))
            .lock_exclusive(Duration::from_secs(1), || panic!("nothing holds the cache"))
            .unwrap();
        let err = Cache::from_path(tmp.path().join("c"))
            .init(Duration::from_millis(50), || {})
            .unwrap_err();
        assert!(matches!(err, CacheError::PruneRunning { .. }), "{err}");
        drop(exclusive);
    }
}
