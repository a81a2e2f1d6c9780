//! The cache lock: shared by the commands that use the cache, exclusive for a prune. An OS file
//! lock waited for with a bound ([`crate::file_lock`]), as the install lock is.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use super::{CacheError, LOCK_FILE};
pub use crate::file_lock::LockMode;
use crate::file_lock::{WaitError, wait_for};

/// Held while the cache is in use; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

/// Waits up to `timeout` for the lock of the cache at `root`, calling `on_wait` once if the lock
/// is not free at once.
pub(super) fn acquire(
    root: &Path,
    mode: LockMode,
    timeout: Duration,
    on_wait: impl FnOnce(),
) -> Result<CacheLock, CacheError> {
    let path = root.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(CacheError::io("open the lock file", &path))?;
    match wait_for(&file, mode, timeout, on_wait) {
        Ok(()) => Ok(CacheLock { _file: file }),
        Err(WaitError::TimedOut) => {
            let dir = root.to_path_buf();
            Err(match mode {
                LockMode::Shared => CacheError::PruneRunning {
                    dir,
                    waited: timeout,
                },
                LockMode::Exclusive => CacheError::InUse {
                    dir,
                    waited: timeout,
                },
            })
        }
        Err(WaitError::Io(e)) => Err(CacheError::io("lock", &path)(e)),
    }
}
