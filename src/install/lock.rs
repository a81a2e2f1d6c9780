//! The install lock: one installer at a time per packs directory, and never an endless wait.
//!
//! Upstream's lock file outlives a killed process and then blocks every later run; an OS file
//! lock ([`crate::file_lock`]) is released by the kernel when its holder dies, so a stale lock
//! cannot exist.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::file_lock::{LockMode, WaitError, wait_for};

/// Name of the lock file inside the packs directory.
pub const LOCK_FILE: &str = ".st2pack.lock";

#[derive(Debug, Error)]
pub enum LockError {
    #[error(
        "another install into {dir} is still running (process {holder}) after waiting {waited:?}\n  \
         wait for it to finish, or raise --lock-timeout"
    )]
    Timeout {
        dir: PathBuf,
        holder: String,
        waited: Duration,
    },
    #[error(
        "cannot create the lock file {path}: {message}\n  check that the directory is writable"
    )]
    Io { path: PathBuf, message: String },
}

/// Held while installing; the lock is released when this is dropped (or the process dies).
#[derive(Debug)]
pub struct InstallLock {
    _file: File,
}

/// Waits up to `timeout` for the install lock of `dir`.
pub fn acquire(dir: &Path, timeout: Duration) -> Result<InstallLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io_err = |e: std::io::Error| LockError::Io {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err)?;
    match wait_for(&file, LockMode::Exclusive, timeout, || {}) {
        Ok(()) => {}
        Err(WaitError::TimedOut) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(LockError::Timeout {
                dir: dir.to_path_buf(),
                holder: holder.trim().to_string(),
                waited: timeout,
            });
        }
        Err(WaitError::Io(e)) => return Err(io_err(e)),
    }
    // Record who holds it, for the message another waiting run prints.
    file.set_len(0).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    write!(file, "{}", std::process::id()).map_err(io_err)?;
    Ok(InstallLock { _file: file })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn second_holder_times_out_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let _held = acquire(dir.path(), Duration::from_secs(1)).unwrap();
        let started = Instant::now();
        let err = acquire(dir.path(), Duration::from_millis(200)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let text = err.to_string();
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert!(text.contains("--lock-timeout"), "{text}");
    }

    #[test]
    fn lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        drop(acquire(dir.path(), Duration::from_secs(1)).unwrap());
        acquire(dir.path(), Duration::from_millis(10)).unwrap();
    }
}
