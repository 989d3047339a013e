//! Per-tenant request budgets: one token bucket per tenant (refilled at
//! the configured rate, holding at most one second's worth).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by tenant.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: RwLock<HashMap<String, Arc<Mutex<Bucket>>>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests per tenant.
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            per_second,
            buckets: RwLock::new(HashMap::new()),
        }
    }

    /// The configured rate.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    fn capacity(&self) -> f64 {
        self.per_second.max(1.0)
    }

    fn bucket(&self, tenant: &str) -> Arc<Mutex<Bucket>> {
        if let Some(b) = self.buckets.read().get(tenant) {
            return b.clone();
        }
        self.buckets
            .write()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Bucket {
                    tokens: self.capacity(),
                    last: Instant::now(),
                }))
            })
            .clone()
    }

    /// Takes one token for `tenant`; `Err(wait)` when the budget is spent,
    /// with roughly how long until a token is available.
    pub fn try_acquire(&self, tenant: &str) -> Result<(), Duration> {
        let bucket = self.bucket(tenant);
        let mut b = bucket.lock();
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(self.capacity());
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        }
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
        assert!(l.try_acquire("a").is_err());
        assert!(l.try_acquire("b").is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.try_acquire("a").is_ok());
    }
}
