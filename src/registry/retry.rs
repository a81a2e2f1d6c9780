//! Retries with exponential backoff for transient registry failures.
//!
//! Registries in clusters restart, sit behind load balancers that drop long uploads, and rate
//! limit (429). Those failures go away on their own, so they are retried a few times with growing
//! pauses; everything else (401, 403, 404, 400, bad input) fails at once, because repeating it
//! only delays the message the user needs. Each attempt runs the whole operation again (a blob
//! upload re-opens its file and starts a new upload session), so no attempt depends on the state
//! a failed one left behind.

use std::future::Future;
use std::time::{Duration, Instant};

use super::RegistryError;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included (1 means no retries).
    pub attempts: u32,
    /// Pause after the first failure; doubled after each further one.
    pub initial_delay: Duration,
    /// Upper bound of a pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries, pausing 0.2 s, 0.4 s, 0.8 s, 1.6 s: about 3 s of patience for one blob.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The pause after `failures` failed attempts (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }

    /// Runs `op` (given the 1-based attempt number) until it succeeds, fails with an error that is
    /// not [retryable](RegistryError::is_retryable), or runs out of attempts. `on_retry` hears
    /// about each failure that will be retried (for `--verbose` logs).
    pub async fn run<T, F, Fut>(
        &self,
        op: F,
        on_retry: impl FnMut(u32, &RegistryError, Duration),
    ) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        self.run_within(None, op, on_retry).await
    }

    /// [`RetryPolicy::run`], starting no retry once `window` has passed since the first attempt
    /// began (a retry would start too late to help): an operation that fails slowly, as against
    /// a registry that hangs, gives up after about `window` plus one attempt, not after every
    /// attempt's timeout in turn.
    pub async fn run_within<T, F, Fut>(
        &self,
        window: Option<Duration>,
        mut op: F,
        mut on_retry: impl FnMut(u32, &RegistryError, Duration),
    ) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let attempts = self.attempts.max(1);
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let result = op(attempt).await;
            let late = window.filter(|w| started.elapsed() + self.delay(attempt) >= *w);
            match result {
                Ok(value) => return Ok(value),
                Err(e) if e.is_retryable() && attempt < attempts && late.is_none() => {
                    let delay = self.delay(attempt);
                    on_retry(attempt, &e, delay);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) if attempt > 1 => {
                    return Err(RegistryError::GaveUp {
                        attempts: attempt,
                        window: late.filter(|_| e.is_retryable() && attempt < attempts),
                        last: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn transient(status: u16) -> RegistryError {
        RegistryError::Http {
            registry: "r:1".into(),
            operation: "testing".into(),
            status,
            detail: String::new(),
        }
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let delays: Vec<_> = (1..=6).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3000, 3000]);
        assert_eq!(p.delay(100), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = Cell::new(0);
        let retries = Cell::new(0);
        let result = fast(5)
            .run(
                |attempt| {
                    calls.set(calls.get() + 1);
                    async move {
                        match attempt {
                            1 => Err(transient(503)),
                            2 => Err(transient(429)),
                            _ => Ok(attempt),
                        }
                    }
                },
                |_, _, _| retries.set(retries.get() + 1),
            )
            .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!((calls.get(), retries.get()), (3, 2));
    }

    #[tokio::test]
    async fn permanent_errors_fail_at_once() {
        let calls = Cell::new(0);
        let result: Result<(), _> = fast(5)
            .run(
                |_| {
                    calls.set(calls.get() + 1);
                    async { Err(transient(400)) }
                },
                |_, _, _| {},
            )
            .await;
        assert!(matches!(
            result,
            Err(RegistryError::Http { status: 400, .. })
        ));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test]
    async fn no_retry_starts_after_the_window() {
        let calls = Cell::new(0);
        let op = |_| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(transient(503)) }
        };
        let result = fast(5)
            .run_within(Some(Duration::ZERO), op, |_, _, _| {})
            .await;
        assert!(matches!(
            result,
            Err(RegistryError::Http { status: 503, .. })
        ));
        assert_eq!(calls.get(), 1);

        calls.set(0);
        let err = fast(3)
            .run_within(Some(Duration::from_secs(3600)), op, |_, _, _| {})
            .await
            .unwrap_err();
        assert_eq!(calls.get(), 3);
        assert!(matches!(err, RegistryError::GaveUp { window: None, .. }));
    }

    #[tokio::test]
    async fn giving_up_says_how_often_it_tried() {
        let result: Result<(), _> = fast(3)
            .run(|_| async { Err(transient(502)) }, |_, _, _| {})
            .await;
        let err = result.unwrap_err();
        assert!(err.to_string().contains("after 3 attempts"), "{err}");
        assert!(matches!(
            err.root(),
            RegistryError::Http { status: 502, .. }
        ));
    }
}
