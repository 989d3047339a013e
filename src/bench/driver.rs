//! Runs an operation from N concurrent tasks for a fixed time and
//! summarises the latencies (HDR histogram).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Operations per second and latency percentiles of one timed phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Completed operations (errors included).
    pub count: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Completed operations per second of wall time.
    pub per_s: f64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 95th percentile, µs.
    pub p95_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Slowest operation, µs.
    pub max_us: u64,
    /// Units the operations produced (results, tuples), when counted.
    pub units: u64,
    /// `units` per second.
    pub units_per_s: f64,
}

/// What one successful operation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Recorded here, with the units it produced (results, tuples; 0 if
    /// not counted).
    Counted(u64),
    /// Not recorded here (the operation accounted for itself elsewhere,
    /// e.g. the writes of a mixed run).
    Aside,
}

/// What one operation reports, or why it failed.
pub type OpResult = Result<Done, String>;

/// An empty histogram for 1 µs .. 60 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits; bounds are valid constants.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures are valid"))
    })
}

/// Runs `op(worker, i)` from `concurrency` tasks for `duration` (each task
/// numbers its calls `worker, worker + concurrency, ...`) and summarises.
/// The first error message and the wall time (s) are returned beside the
/// figures.
pub async fn drive<F, Fut>(
    concurrency: usize,
    duration: Duration,
    op: F,
) -> (Latency, Option<String>, f64)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = OpResult> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let op = op.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let (mut errors, mut units, mut first_error) = (0u64, 0u64, None);
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match op(worker, i).await {
                    Ok(Done::Counted(n)) => units += n,
                    Ok(Done::Aside) => {
                        i += concurrency;
                        continue;
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
                h.saturating_record(micros(t));
                i += concurrency;
            }
            (h, errors, units, first_error)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = histogram();
    let (mut errors, mut units, mut first_error) = (0u64, 0u64, None);
    for task in tasks {
        match task.await {
            Ok((h, e, u, first)) => {
                let _ = all.add(&h);
                errors += e;
                units += u;
                if first_error.is_none() {
                    first_error = first;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("worker failed: {e}"));
            }
        }
    }
    let wall = start.elapsed().as_secs_f64().max(1e-9);
    (summarise(&all, errors, units, wall), first_error, wall)
}

/// Microseconds since `t`.
pub fn micros(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Figures for what `h` recorded over `wall` seconds.
pub fn summarise(h: &Histogram<u64>, errors: u64, units: u64, wall: f64) -> Latency {
    let count = h.len();
    if count == 0 {
        return Latency {
            errors,
            ..Latency::default()
        };
    }
    Latency {
        count,
        errors,
        per_s: count as f64 / wall,
        p50_us: h.value_at_quantile(0.50),
        p95_us: h.value_at_quantile(0.95),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        units,
        units_per_s: units as f64 / wall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.saturating_record(v);
        }
        let l = summarise(&h, 2, 10, 2.0);
        assert_eq!(l.count, 1000);
        assert_eq!(l.errors, 2);
        assert!((l.per_s - 500.0).abs() < 1e-9);
        assert_eq!((l.p50_us, l.p99_us, l.max_us), (500, 990, 1000));
        assert!((l.units_per_s - 5.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn drive_counts_calls_and_errors() {
        let (l, first, _) = drive(2, Duration::from_millis(50), |_, i| async move {
            tokio::task::yield_now().await;
            if i % 2 == 0 {
                Ok(Done::Counted(3))
            } else {
                Err(format!("odd {i}"))
            }
        })
        .await;
        // Worker 0 makes the even calls (all succeed), worker 1 the odd.
        assert!(l.errors > 0 && l.errors < l.count, "{l:?}");
        assert_eq!(l.units, 3 * (l.count - l.errors));
        assert!(first.is_some_and(|e| e.starts_with("odd")));
    }
}
