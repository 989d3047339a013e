//! Request metrics: counts per method, tenant and status code, and latency
//! histograms per method and tenant — atomics behind a read-mostly map, so
//! the request path takes no global mutex.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The canonical gRPC code names, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

#[derive(Debug, Default)]
struct Series {
    codes: [AtomicU64; 17],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

type ByTenant = HashMap<String, Arc<Series>>;

/// Every request metric of this node.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    series: RwLock<HashMap<String, ByTenant>>,
    /// Requests shed because the concurrency limit was reached.
    pub shed: AtomicU64,
    /// Requests refused by a tenant's rate limit.
    pub rate_limited: AtomicU64,
    /// Decision log lines dropped because the writer fell behind.
    pub decision_log_dropped: AtomicU64,
    /// Decision log lines written.
    pub decision_log_written: AtomicU64,
    /// Open watch streams.
    pub watch_consumers: AtomicI64,
    /// Requests being evaluated now.
    pub in_flight: AtomicI64,
}

impl RequestMetrics {
    fn series(&self, method: &str, tenant: &str) -> Arc<Series> {
        if let Some(found) = self.series.read().get(method).and_then(|t| t.get(tenant)) {
            return found.clone();
        }
        self.series
            .write()
            .entry(method.to_string())
            .or_default()
            .entry(tenant.to_string())
            .or_default()
            .clone()
    }

    /// Records one finished request: `code` is the gRPC status number.
    pub fn record(&self, method: &str, tenant: &str, code: usize, elapsed: Duration) {
        let series = self.series(method, tenant);
        if let Some(c) = series.codes.get(code) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        if let Some((_, bucket)) = BUCKETS
            .iter()
            .zip(&series.buckets)
            .find(|(bound, _)| secs <= **bound)
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        series.count.fetch_add(1, Ordering::Relaxed);
        series.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Appends the Prometheus text of these metrics to `out`.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP verdict_requests_total gRPC requests by method, tenant and status code."
        );
        let _ = writeln!(out, "# TYPE verdict_requests_total counter");
        let map = self.series.read();
        let mut rows: Vec<(&String, &String, &Arc<Series>)> = map
            .iter()
            .flat_map(|(m, t)| t.iter().map(move |(tenant, s)| (m, tenant, s)))
            .collect();
        rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (method, tenant, s) in &rows {
            for (name, n) in CODES.iter().zip(&s.codes) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "verdict_requests_total{{method=\"{}\",tenant=\"{}\",code=\"{}\"}} {n}",
                        escape(method),
                        escape(tenant),
                        name
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP verdict_request_duration_seconds gRPC request latency (to the response headers) by method and tenant."
        );
        let _ = writeln!(out, "# TYPE verdict_request_duration_seconds histogram");
        for (method, tenant, s) in &rows {
            let labels = format!(
                "method=\"{}\",tenant=\"{}\"",
                escape(method),
                escape(tenant)
            );
            let mut cumulative = 0u64;
            for (bound, bucket) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "verdict_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let sum = s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "verdict_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "verdict_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "verdict_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        let simple: [(&str, &str, &str, i64); 6] = [
            (
                "verdict_requests_shed_total",
                "counter",
                "Requests refused with UNAVAILABLE because --max-concurrent-requests were in flight.",
                self.shed.load(Ordering::Relaxed) as i64,
            ),
            (
                "verdict_rate_limited_total",
                "counter",
                "Requests refused with RESOURCE_EXHAUSTED by --tenant-rate-limit.",
                self.rate_limited.load(Ordering::Relaxed) as i64,
            ),
            (
                "verdict_decision_log_dropped_total",
                "counter",
                "Decision log lines dropped because the writer fell behind.",
                self.decision_log_dropped.load(Ordering::Relaxed) as i64,
            ),
            (
                "verdict_decision_log_written_total",
                "counter",
                "Decision log lines written.",
                self.decision_log_written.load(Ordering::Relaxed) as i64,
            ),
            (
                "verdict_watch_consumers",
                "gauge",
                "Open watch streams.",
                self.watch_consumers.load(Ordering::Relaxed),
            ),
            (
                "verdict_requests_in_flight",
                "gauge",
                "gRPC requests being evaluated now.",
                self.in_flight.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in simple {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histograms_render() {
        let m = RequestMetrics::default();
        m.record("/v1.P/Check", "acme", 0, Duration::from_millis(2));
        m.record("/v1.P/Check", "acme", 0, Duration::from_millis(20));
        m.record("/v1.P/Check", "acme", 7, Duration::from_millis(1));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains(
            "verdict_requests_total{method=\"/v1.P/Check\",tenant=\"acme\",code=\"OK\"} 2"
        ));
        assert!(out.contains("code=\"PERMISSION_DENIED\"} 1"));
        assert!(out.contains(
            "verdict_request_duration_seconds_bucket{method=\"/v1.P/Check\",tenant=\"acme\",le=\"0.0025\"} 2"
        ));
        assert!(out.contains(
            "verdict_request_duration_seconds_count{method=\"/v1.P/Check\",tenant=\"acme\"} 3"
        ));
    }
}
