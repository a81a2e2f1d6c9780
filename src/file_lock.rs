//! Waiting for an OS file lock, with a bound: the install lock and the cache lock both poll with
//! a growing pause up to a timeout, so a wait never hangs, and a dead holder never blocks anyone
//! (the kernel releases its lock).

use std::fs::{File, TryLockError};
use std::io;
use std::time::{Duration, Instant};

/// How a file is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Any number of holders at once.
    Shared,
    /// Nobody else.
    Exclusive,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum WaitError {
    /// Someone else still held it after the whole timeout.
    TimedOut,
    Io(io::Error),
}

/// The first pause between two tries, and the longest.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

/// Locks `file` in `mode`, trying again with a pause that doubles (up to half a second) until
/// `timeout` has passed; `on_wait` is called once, when the lock is first found taken.
pub fn wait_for(
    file: &File,
    mode: LockMode,
    timeout: Duration,
    on_wait: impl FnOnce(),
) -> Result<(), WaitError> {
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    let mut on_wait = Some(on_wait);
    loop {
        let attempt = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(e)) => return Err(WaitError::Io(e)),
            Err(TryLockError::WouldBlock) => {
                if let Some(notify) = on_wait.take() {
                    notify();
                }
                let left = timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(WaitError::TimedOut);
                }
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_times_out_after_telling_once_and_a_shared_one_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let open = || File::create(&path).unwrap();
        let (held, other) = (open(), open());
        wait_for(&held, LockMode::Exclusive, Duration::ZERO, || {}).unwrap();
        let mut told = 0;
        let started = Instant::now();
        let result = wait_for(&other, LockMode::Shared, Duration::from_millis(100), || {
            told += 1
        });
        assert!(matches!(result, Err(WaitError::TimedOut)));
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(told, 1);

        drop(held);
        let (first, second) = (open(), open());
        wait_for(&first, LockMode::Shared, Duration::ZERO, || {}).unwrap();
        wait_for(&second, LockMode::Shared, Duration::ZERO, || panic!("free")).unwrap();
    }
}
