//! Per-tenant request budgets: one `governor` GCRA limiter per tenant,
//! refilled at the configured rate and holding at most one second's worth
//! (at least one request). The tenant map is ours so a request looks its
//! tenant up by `&str` (a keyed governor limiter needs an owned key per
//! call); the budget arithmetic is governor's.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::Quota;
use parking_lot::RwLock;

type Budget<C> =
    governor::RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Budgets by tenant, timed by `C` (the monotonic clock; a fake one in tests).
#[derive(Debug)]
pub struct RateLimiter<C: Clock = DefaultClock> {
    per_second: f64,
    quota: Quota,
    clock: C,
    budgets: RwLock<HashMap<String, Arc<Budget<C>>>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per tenant (`parse_rate`
    /// accepts only finite positive rates; anything else allows
    /// `u32::MAX` per second).
    pub fn new(per_second: f64) -> Self {
        RateLimiter::with_clock(per_second, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// A limiter timed by `clock`.
    pub fn with_clock(per_second: f64, clock: C) -> Self {
        RateLimiter {
            per_second,
            quota: quota(per_second),
            clock,
            budgets: RwLock::new(HashMap::new()),
        }
    }

    /// The configured rate.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    fn budget(&self, tenant: &str) -> Arc<Budget<C>> {
        if let Some(b) = self.budgets.read().get(tenant) {
            return b.clone();
        }
        self.budgets
            .write()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(governor::RateLimiter::direct_with_clock(
                    self.quota,
                    self.clock.clone(),
                ))
            })
            .clone()
    }

    /// Takes one request from `tenant`'s budget; `Err(wait)` when it is
    /// spent, with how long until the next request fits.
    pub fn try_acquire(&self, tenant: &str) -> Result<(), Duration> {
        let budget = self.budget(tenant);
        budget
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// One request every `1 / per_second`, bursting up to one second's worth.
fn quota(per_second: f64) -> Quota {
    let unlimited = Quota::per_second(NonZeroU32::MAX);
    if !per_second.is_finite() || per_second <= 0.0 {
        return unlimited;
    }
    let burst = NonZeroU32::new(per_second.clamp(1.0, f64::from(u32::MAX)) as u32)
        .unwrap_or(NonZeroU32::MIN);
    match Duration::try_from_secs_f64(1.0 / per_second)
        .ok()
        .and_then(Quota::with_period)
    {
        Some(q) => q.allow_burst(burst),
        None => unlimited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn budget_is_per_tenant_and_refills() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(5.0, clock.clone());
        for _ in 0..5 {
            assert!(l.try_acquire("a").is_ok());
        }
        let wait = l.try_acquire("a").unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        assert!(
            l.try_acquire("b").is_ok(),
            "another tenant has its own budget"
        );
        clock.advance(Duration::from_millis(199));
        assert!(l.try_acquire("a").is_err());
        clock.advance(Duration::from_millis(1));
        assert!(l.try_acquire("a").is_ok());
        assert!(l.try_acquire("a").is_err());
        // A long pause refills at most one second's worth.
        clock.advance(Duration::from_secs(60));
        for _ in 0..5 {
            assert!(l.try_acquire("a").is_ok());
        }
        assert!(l.try_acquire("a").is_err());
    }

    #[test]
    fn a_slow_rate_still_allows_one_request() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(0.5, clock.clone());
        assert!(l.try_acquire("a").is_ok());
        assert_eq!(l.try_acquire("a").unwrap_err(), Duration::from_secs(2));
        clock.advance(Duration::from_secs(2));
        assert!(l.try_acquire("a").is_ok());
    }
}
