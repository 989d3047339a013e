//! Retries with exponential backoff and full jitter, for idempotent calls
//! only (reads, checks, lookups; never writes or deletes).

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tonic::Code;

/// How often and how patiently an idempotent call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry). Default = 4
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry. Default = 20ms
    pub initial_backoff: Duration,
    /// The largest backoff ceiling. Default = 1s
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The ceiling before retry `attempt` (1-based): initial × 2^(attempt-1),
    /// capped at `max_backoff`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// A uniformly random wait in `[0, ceiling(attempt)]` (full jitter, so
    /// clients that failed together do not retry together).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::thread_rng().gen_range(0..=micros))
    }
}

/// Whether a failed idempotent call may succeed when repeated.
pub fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::Unknown
    )
}

/// Runs `call` until it succeeds, fails with a non-retryable status, or
/// the policy's attempts are spent.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: RetryPolicy,
    mut call: F,
) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(status) if attempt < policy.max_attempts && retryable(status.code()) => {
                tracing::debug!(attempt, code = ?status.code(), "retrying an idempotent call");
                tokio::time::sleep(policy.backoff(attempt)).await;
                attempt += 1;
            }
            Err(status) => return Err(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_with_jitter_below_it() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(70),
        };
        assert_eq!(p.ceiling(1), Duration::from_millis(10));
        assert_eq!(p.ceiling(2), Duration::from_millis(20));
        assert_eq!(p.ceiling(3), Duration::from_millis(40));
        assert_eq!(p.ceiling(4), Duration::from_millis(70));
        assert_eq!(p.ceiling(40), Duration::from_millis(70));
        let waits: Vec<_> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(40)));
        assert!(waits.iter().any(|w| *w != waits[0]), "jittered");
    }

    #[tokio::test]
    async fn retries_only_retryable_codes_and_stops_after_the_attempts() {
        let p = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_retries(p, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(tonic::Status::unavailable("down"))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Code::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = with_retries(p, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(tonic::Status::invalid_argument("bad"))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let r = with_retries(p, || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(tonic::Status::unavailable("blip"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
    }
}
