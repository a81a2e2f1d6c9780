//! What the cache holds, and removing what is no longer worth keeping.
//!
//! Each bucket's entries sit at a known place (see [`Bucket`]): a git mirror, a virtualenv, a
//! `.pyc`, a blob, a record, a build root, an unpacked runtime image. Names starting with `.` (and `.tmp` files in the
//! bytecode bucket) are writers' temporaries; a prune, which runs alone, removes them all.
//! Sizes are bytes of file contents, each hard-linked file counted once per bucket (per entry
//! when pruning), so a file linked from two buckets counts in both.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Bucket, Cache, CacheError, TRASH_DIR, UNVERSIONED_DIRS};

/// What a prune removes. With neither limit, it removes nothing but old formats and leftovers.
#[derive(Debug, Clone, Default)]
pub struct PrunePolicy {
    /// Entries not used for longer than this.
    pub unused_for: Option<Duration>,
    /// Then the least recently used entries, until the rest add up to at most this many bytes.
    pub max_bytes: Option<u64>,
}

/// How much each bucket holds.
#[derive(Debug, Clone, Serialize)]
pub struct CacheUsage {
    pub dir: PathBuf,
    pub buckets: Vec<BucketUsage>,
    /// Directories of other bucket format versions: never read, removed by any prune.
    pub old_formats: Vec<OldFormat>,
    /// Every byte above, each hard-linked file counted once.
    pub total_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketUsage {
    pub name: &'static str,
    pub dir: PathBuf,
    pub entries: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OldFormat {
    pub dir: PathBuf,
    pub bytes: u64,
}

/// What a prune did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub removed_entries: u64,
    pub removed_bytes: u64,
    pub kept_entries: u64,
    pub kept_bytes: u64,
    /// Old-format directories removed.
    pub old_formats: Vec<PathBuf>,
    /// What could not be removed (the prune goes on past it).
    pub warnings: Vec<String>,
}

/// One cache entry: its path, what goes with it, when it was last used and its size.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    companions: Vec<PathBuf>,
    last_use: SystemTime,
    bytes: u64,
}

/// Counts file bytes under `path` (not following symlinks) into `sums`, each inode once per set.
fn count_bytes(path: &Path, sums: &mut [(&mut HashSet<(u64, u64)>, &mut u64)]) {
    for entry in walkdir::WalkDir::new(path).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_dir() {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let id = (metadata.dev(), metadata.ino());
        for (seen, total) in sums.iter_mut() {
            if metadata.nlink() < 2 || seen.insert(id) {
                **total += metadata.len();
            }
        }
    }
}

fn bytes_of(path: &Path) -> u64 {
    let (mut seen, mut bytes) = (HashSet::new(), 0);
    count_bytes(path, &mut [(&mut seen, &mut bytes)]);
    bytes
}

fn is_leftover(bucket: Bucket, name: &str) -> bool {
    name.starts_with('.') || (bucket == Bucket::Bytecode && name.ends_with(".tmp"))
}

fn names(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    names.sort();
    names
}

/// The directories that hold a bucket's entries.
fn entry_parents(bucket: Bucket, dir: &Path) -> Vec<PathBuf> {
    match bucket {
        Bucket::Blobs => vec![dir.join("sha256")],
        Bucket::Bytecode => names(dir)
            .into_iter()
            .filter(|(name, path)| !is_leftover(bucket, name) && path.is_dir())
            .map(|(_, path)| path)
            .collect(),
        _ => vec![dir.to_path_buf()],
    }
}

/// A bucket's entries (sizes left at 0) and its leftovers.
fn scan(bucket: Bucket, dir: &Path) -> (Vec<Entry>, Vec<PathBuf>) {
    let mut entries = Vec::new();
    let mut leftovers: Vec<PathBuf> = names(dir)
        .into_iter()
        .filter(|(name, _)| is_leftover(bucket, name))
        .map(|(_, path)| path)
        .collect();
    for parent in entry_parents(bucket, dir) {
        for (name, path) in names(&parent) {
            if is_leftover(bucket, &name) {
                leftovers.push(path);
                continue;
            }
            // A git mirror's lock file goes with the mirror; without one, it is a leftover.
            if bucket == Bucket::Git && name.ends_with(".lock") {
                if !path.with_extension("git").exists() {
                    leftovers.push(path);
                }
                continue;
            }
            let Ok(metadata) = fs::symlink_metadata(&path) else {
                continue;
            };
            let companions = match bucket {
                Bucket::Git => vec![path.with_extension("lock")],
                _ => Vec::new(),
            };
            entries.push(Entry {
                path,
                companions,
                last_use: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                bytes: 0,
            });
        }
    }
    (entries, leftovers)
}

/// Directories of bucket versions other than the current ones, and the unversioned ones.
fn old_formats(cache: &Cache) -> Vec<PathBuf> {
    names(cache.root())
        .into_iter()
        .filter(|(name, path)| {
            let other_version = name.rsplit_once("-v").is_some_and(|(bucket, version)| {
                Bucket::ALL.iter().any(|b| b.name() == bucket)
                    && !version.is_empty()
                    && version.bytes().all(|c| c.is_ascii_digit())
                    && Bucket::ALL.iter().all(|b| b.dir_name() != *name)
            });
            path.is_dir() && (other_version || UNVERSIONED_DIRS.contains(&name.as_str()))
        })
        .map(|(_, path)| path)
        .collect()
}

pub(super) fn usage(cache: &Cache) -> CacheUsage {
    let mut all_seen = HashSet::new();
    let mut total_bytes = 0;
    let mut buckets = Vec::new();
    for bucket in Bucket::ALL {
        let dir = cache.bucket(bucket);
        let (entries, _) = scan(bucket, &dir);
        let (mut seen, mut bytes) = (HashSet::new(), 0);
        count_bytes(
            &dir,
            &mut [(&mut seen, &mut bytes), (&mut all_seen, &mut total_bytes)],
        );
        buckets.push(BucketUsage {
            name: bucket.name(),
            dir,
            entries: entries.len() as u64,
            bytes,
        });
    }
    let old_formats = old_formats(cache)
        .into_iter()
        .map(|dir| {
            let (mut seen, mut bytes) = (HashSet::new(), 0);
            count_bytes(
                &dir,
                &mut [(&mut seen, &mut bytes), (&mut all_seen, &mut total_bytes)],
            );
            OldFormat { dir, bytes }
        })
        .collect();
    CacheUsage {
        dir: cache.root().to_path_buf(),
        buckets,
        old_formats,
        total_bytes,
    }
}

/// Moves paths into one trash directory, then deletes it: whoever looks at a bucket sees an entry
/// whole or not at all.
struct Trash {
    dir: Option<tempfile::TempDir>,
    parent: PathBuf,
    count: u64,
}

impl Trash {
    fn new(cache: &Cache) -> Trash {
        Trash {
            dir: None,
            parent: cache.root().join(TRASH_DIR),
            count: 0,
        }
    }

    /// Empties what a killed prune left in the trash.
    fn empty_leftovers(&self) -> Vec<String> {
        names(&self.parent)
            .into_iter()
            .filter_map(|(_, path)| remove(&path).err())
            .collect()
    }

    fn discard(&mut self, path: &Path) -> Result<(), String> {
        if fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        if self.dir.is_none() {
            fs::create_dir_all(&self.parent).map_err(|e| describe(&self.parent, &e))?;
            self.dir = Some(
                tempfile::Builder::new()
                    .prefix("prune-")
                    .tempdir_in(&self.parent)
                    .map_err(|e| describe(&self.parent, &e))?,
            );
        }
        let dir = self.dir.as_ref().map(|d| d.path()).unwrap_or(&self.parent);
        self.count += 1;
        match fs::rename(path, dir.join(self.count.to_string())) {
            Ok(()) => Ok(()),
            // Another filesystem mounted in the cache: remove in place.
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => remove(path),
            Err(e) => Err(describe(path, &e)),
        }
    }

    fn empty(self) -> Result<(), String> {
        match self.dir {
            Some(dir) => {
                let path = dir.path().to_path_buf();
                dir.close().map_err(|e| describe(&path, &e))
            }
            None => Ok(()),
        }
    }
}

fn remove(path: &Path) -> Result<(), String> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return Ok(()),
    };
    result.map_err(|e| describe(path, &e))
}

fn describe(path: &Path, error: &std::io::Error) -> String {
    format!("could not remove {}: {error}", path.display())
}

pub(super) fn prune(cache: &Cache, policy: &PrunePolicy) -> Result<PruneReport, CacheError> {
    let mut report = PruneReport::default();
    let mut trash = Trash::new(cache);
    report.warnings.extend(trash.empty_leftovers());

    for dir in old_formats(cache) {
        match trash.discard(&dir) {
            Ok(()) => report.old_formats.push(dir),
            Err(warning) => report.warnings.push(warning),
        }
    }
    let mut entries = Vec::new();
    for bucket in Bucket::ALL {
        let (found, leftovers) = scan(bucket, &cache.bucket(bucket));
        for path in leftovers {
            if let Err(warning) = trash.discard(&path) {
                report.warnings.push(warning);
            }
        }
        entries.extend(found);
    }
    for entry in &mut entries {
        entry.bytes = bytes_of(&entry.path);
    }

    // Least recently used first.
    entries.sort_by_key(|e| e.last_use);
    let now = SystemTime::now();
    let mut kept_bytes: u64 = entries.iter().map(|e| e.bytes).sum();
    for entry in &entries {
        let unused = policy.unused_for.is_some_and(|limit| {
            now.duration_since(entry.last_use)
                .is_ok_and(|age| age > limit)
        });
        let too_big = policy.max_bytes.is_some_and(|max| kept_bytes > max);
        if !(unused || too_big) {
            report.kept_entries += 1;
            continue;
        }
        let removed = std::iter::once(&entry.path)
            .chain(&entry.companions)
            .try_for_each(|path| trash.discard(path));
        match removed {
            Ok(()) => {
                report.removed_entries += 1;
                report.removed_bytes += entry.bytes;
                kept_bytes -= entry.bytes;
            }
            Err(warning) => {
                report.warnings.push(warning);
                report.kept_entries += 1;
            }
        }
    }
    report.kept_bytes = kept_bytes;
    if let Err(warning) = trash.empty() {
        report.warnings.push(warning);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filetime::{FileTime, set_file_mtime};

    const DAY: u64 = 24 * 3600;

    fn days_ago(days: u64) -> FileTime {
        FileTime::from_system_time(SystemTime::now() - Duration::from_secs(days * DAY))
    }

    /// A cache with an entry in every bucket, of `size` bytes each, last used `age` days ago.
    fn fill(cache: &Cache, size: usize) -> Vec<PathBuf> {
        let content = vec![b'x'; size];
        let mut entries = Vec::new();
        for bucket in Bucket::ALL {
            let dir = cache.bucket(bucket);
            let entry = match bucket {
                Bucket::Git => dir.join("repo-0123.git"),
                Bucket::Blobs => dir.join("sha256").join("ab".repeat(32)),
                Bucket::Bytecode => dir.join("ab").join("abcd.pyc"),
                Bucket::Layers | Bucket::Segments => dir.join(format!("{}.json", "cd".repeat(32))),
                Bucket::Virtualenvs | Bucket::BuildRoots => dir.join("k"),
                Bucket::Runtimes => dir.join("ef".repeat(32)),
            };
            if matches!(
                bucket,
                Bucket::Git | Bucket::Virtualenvs | Bucket::BuildRoots | Bucket::Runtimes
            ) {
                fs::create_dir_all(&entry).unwrap();
                fs::write(entry.join("file"), &content).unwrap();
            } else {
                fs::create_dir_all(entry.parent().unwrap()).unwrap();
                fs::write(&entry, &content).unwrap();
            }
            entries.push(entry);
        }
        fs::write(cache.bucket(Bucket::Git).join("repo-0123.lock"), "").unwrap();
        entries
    }

    #[test]
    fn usage_counts_entries_and_bytes_per_bucket() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::from_path(tmp.path());
        fill(&cache, 10);
        // A hard link inside one bucket is counted once.
        let blobs = cache.bucket(Bucket::Blobs).join("sha256");
        fs::hard_link(blobs.join("ab".repeat(32)), blobs.join("ef".repeat(32))).unwrap();
        fs::create_dir_all(tmp.path().join("oci/sha256")).unwrap();
        fs::write(tmp.path().join("oci/sha256/x"), "12345").unwrap();
        let usage = cache.usage();
        for bucket in &usage.buckets {
            let expected_entries = if bucket.name == "blobs" { 2 } else { 1 };
            assert_eq!(bucket.entries, expected_entries, "{bucket:?}");
            assert_eq!(bucket.bytes, 10, "{bucket:?}");
        }
        assert_eq!(usage.old_formats.len(), 1);
        assert_eq!(usage.old_formats[0].bytes, 5);
        assert_eq!(usage.total_bytes, Bucket::ALL.len() as u64 * 10 + 5);
    }

    #[test]
    fn prune_removes_unused_entries_old_formats_and_leftovers_only() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::from_path(tmp.path());
        let entries = fill(&cache, 10);
        for old in &entries[..3] {
            set_file_mtime(old, days_ago(40)).unwrap();
        }
        fs::create_dir_all(tmp.path().join("virtualenvs-v0/k")).unwrap();
        fs::create_dir_all(tmp.path().join("unrelated-v1")).unwrap();
        let leftover = cache.bucket(Bucket::Virtualenvs).join(".tmp-123");
        fs::create_dir_all(&leftover).unwrap();
        let report = prune(
            &cache,
            &PrunePolicy {
                unused_for: Some(Duration::from_secs(30 * DAY)),
                max_bytes: None,
            },
        )
        .unwrap();
        let kept = Bucket::ALL.len() as u64 - 3;
        assert_eq!((report.removed_entries, report.kept_entries), (3, kept));
        assert_eq!((report.removed_bytes, report.kept_bytes), (30, kept * 10));
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.exists(), i >= 3, "{}", entry.display());
        }
        // The git mirror's lock file went with it.
        assert!(!cache.bucket(Bucket::Git).join("repo-0123.lock").exists());
        assert!(!leftover.exists());
        assert!(!tmp.path().join("virtualenvs-v0").exists());
        assert!(tmp.path().join("unrelated-v1").exists());
        assert!(names(&tmp.path().join(TRASH_DIR)).is_empty());
    }

    #[test]
    fn max_size_removes_the_least_recently_used_first() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::from_path(tmp.path());
        let entries = fill(&cache, 10);
        for (age, entry) in entries.iter().rev().enumerate() {
            set_file_mtime(entry, days_ago(age as u64 + 1)).unwrap();
        }
        let policy = |max| PrunePolicy {
            unused_for: None,
            max_bytes: Some(max),
        };
        // All but the two most recently used go.
        let removed = entries.len() - 2;
        let report = prune(&cache, &policy(25)).unwrap();
        assert_eq!(
            (report.removed_entries, report.kept_bytes),
            (removed as u64, 20)
        );
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.exists(), i >= removed, "{}", entry.display());
        }
        let report = prune(&cache, &policy(0)).unwrap();
        assert_eq!((report.removed_entries, report.kept_bytes), (2, 0));
        assert!(cache.usage().buckets.iter().all(|b| b.entries == 0));
    }

    #[test]
    fn a_killed_prunes_trash_is_emptied() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::from_path(tmp.path());
        let stale = tmp.path().join(TRASH_DIR).join("prune-x/1");
        fs::create_dir_all(&stale).unwrap();
        prune(&cache, &PrunePolicy::default()).unwrap();
        assert!(names(&tmp.path().join(TRASH_DIR)).is_empty());
    }
}
