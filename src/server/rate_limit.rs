//! Per-tenant request budgets: one `governor` GCRA limiter per tenant,
//! refilled at the configured rate and holding at most one second's worth
//! (at least one request). The tenant map is ours so a request looks its
//! tenant up by `&str` (a keyed governor limiter needs an owned key per
//! call); the budget arithmetic is governor's.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota};
use parking_lot::RwLock;

/// Budgets by tenant.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    quota: Quota,
    budgets: RwLock<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per tenant (`parse_rate`
    /// accepts only finite positive rates; anything else allows
    /// `u32::MAX` per second).
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            per_second,
            quota: quota(per_second),
            budgets: RwLock::new(HashMap::new()),
        }
    }

    /// The configured rate.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    fn budget(&self, tenant: &str) -> Arc<DefaultDirectRateLimiter> {
        if let Some(b) = self.budgets.read().get(tenant) {
            return b.clone();
        }
        self.budgets
            .write()
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(governor::RateLimiter::direct(self.quota)))
            .clone()
    }

    /// Takes one request from `tenant`'s budget; `Err(wait)` when it is
    /// spent, with how long until the next request fits.
    pub fn try_acquire(&self, tenant: &str) -> Result<(), Duration> {
        let budget = self.budget(tenant);
        budget
            .check()
            .map_err(|not_until| not_until.wait_time_from(budget.clock().now()))
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

    #[test]
    fn budget_is_per_tenant_and_refills() {
        let l = RateLimiter::new(5.0);
        for _ in 0..5 {
            assert!(l.try_acquire("a").is_ok());
        }
        let wait = l.try_acquire("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert!(l.try_acquire("b").is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.try_acquire("a").is_ok());
    }

    #[test]
    fn a_slow_rate_still_allows_one_request() {
        let l = RateLimiter::new(0.5);
        assert!(l.try_acquire("a").is_ok());
        let wait = l.try_acquire("a").unwrap_err();
        assert!(wait > Duration::from_millis(1500), "{wait:?}");
    }
}
