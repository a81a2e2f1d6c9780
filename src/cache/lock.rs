//! The cache lock: shared by the commands that use the cache, exclusive for a prune.
//!
//! The same mechanism as the install lock ([`crate::install::lock`]): an OS file lock, polled
//! with a growing pause up to a timeout, so a wait is bounded and a dead holder never blocks
//! anyone (the kernel releases its lock).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{CacheError, LOCK_FILE};

/// How the cache is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Using entries: any number of holders at once.
    Shared,
    /// Removing entries: nobody else.
    Exclusive,
}

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
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    let mut on_wait = Some(on_wait);
    loop {
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(CacheLock { _file: file }),
            Err(TryLockError::WouldBlock) if started.elapsed() < timeout => {
                if let Some(notify) = on_wait.take() {
                    notify();
                }
                std::thread::sleep(pause.min(timeout.saturating_sub(started.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(TryLockError::WouldBlock) => {
                if let Some(notify) = on_wait.take() {
                    notify();
                }
                let dir = root.to_path_buf();
                return Err(match mode {
                    LockMode::Shared => CacheError::PruneRunning {
                        dir,
                        waited: timeout,
                    },
                    LockMode::Exclusive => CacheError::InUse {
                        dir,
                        waited: timeout,
                    },
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(CacheError::io("lock", &path)(e));
            }
        }
    }
}
