//! Request metrics: counts per method, tenant and status code, and latency
//! histograms per method and tenant — atomics behind a read-mostly map, so
//! the request path takes no global mutex.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::exposition::{self, label_value, Encoded, HistogramCounts};
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

    /// Writes these metrics: request counts by method, tenant and code,
    /// latency histograms by method and tenant, and the node-wide counters.
    ///
    /// Recording stays on per-series atomics found by `&str` lookups, not
    /// a `prometheus_client` `Family`: a `Family` lookup needs an owned
    /// label set (two `String`s) per request, and this is on every
    /// request's path.
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Encoded {
        let map = self.series.read();
        let mut rows: Vec<(String, String, &Arc<Series>)> = map
            .iter()
            .flat_map(|(m, t)| {
                t.iter()
                    .map(move |(tenant, s)| (label_value(m), label_value(tenant), s))
            })
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        exposition::counters(
            encoder,
            "verdict_requests",
            "gRPC requests by method, tenant and status code.",
            rows.iter().flat_map(|(method, tenant, s)| {
                CODES.iter().zip(&s.codes).filter_map(move |(code, n)| {
                    let n = n.load(Ordering::Relaxed);
                    (n > 0).then(|| {
                        (
                            [
                                ("method", method.clone()),
                                ("tenant", tenant.clone()),
                                ("code", (*code).to_string()),
                            ],
                            n,
                        )
                    })
                })
            }),
        )?;
        let mut family = encoder.encode_descriptor(
            "verdict_request_duration_seconds",
            "gRPC request latency (to the response headers) by method and tenant.",
            None,
            MetricType::Histogram,
        )?;
        for (method, tenant, s) in &rows {
            let labels = [("method", method.as_str()), ("tenant", tenant.as_str())];
            s.histogram().encode(&mut family.encode_family(&labels)?)?;
        }
        exposition::counter(
            encoder,
            "verdict_requests_shed",
            "Requests refused with UNAVAILABLE because --max-concurrent-requests were in flight.",
            self.shed.load(Ordering::Relaxed),
        )?;
        exposition::counter(
            encoder,
            "verdict_rate_limited",
            "Requests refused with RESOURCE_EXHAUSTED by --tenant-rate-limit.",
            self.rate_limited.load(Ordering::Relaxed),
        )?;
        exposition::counter(
            encoder,
            "verdict_decision_log_dropped",
            "Decision log lines dropped because the writer fell behind.",
            self.decision_log_dropped.load(Ordering::Relaxed),
        )?;
        exposition::counter(
            encoder,
            "verdict_decision_log_written",
            "Decision log lines written.",
            self.decision_log_written.load(Ordering::Relaxed),
        )?;
        exposition::gauge(
            encoder,
            "verdict_watch_consumers",
            "Open watch streams.",
            self.watch_consumers.load(Ordering::Relaxed),
        )?;
        exposition::gauge(
            encoder,
            "verdict_requests_in_flight",
            "gRPC requests being evaluated now.",
            self.in_flight.load(Ordering::Relaxed),
        )
    }
}

impl Series {
    fn histogram(&self) -> HistogramCounts {
        HistogramCounts {
            buckets: BUCKETS
                .iter()
                .zip(&self.buckets)
                .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Only(RequestMetrics);

    impl prometheus_client::collector::Collector for Only {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Encoded {
            self.0.encode(&mut encoder)
        }
    }

    #[test]
    fn counts_and_histograms_render() {
        let m = RequestMetrics::default();
        m.record("/v1.P/Check\"", "acme", 0, Duration::from_secs(60));
        m.record("/v1.P/Check", "acme", 0, Duration::from_millis(2));
        m.record("/v1.P/Check", "acme", 0, Duration::from_millis(20));
        m.record("/v1.P/Check", "acme", 7, Duration::from_millis(1));
        let out = super::super::exposition::render(Only(m));
        assert!(out.contains(
            "verdict_requests_total{method=\"/v1.P/Check\",tenant=\"acme\",code=\"OK\"} 2"
        ));
        assert!(out.contains("code=\"PERMISSION_DENIED\"} 1"));
        // prometheus-client writes `le` before the family's labels.
        assert!(out.contains(
            "verdict_request_duration_seconds_bucket{le=\"0.0025\",method=\"/v1.P/Check\",tenant=\"acme\"} 2"
        ));
        assert!(out.contains(
            "verdict_request_duration_seconds_count{method=\"/v1.P/Check\",tenant=\"acme\"} 3"
        ));
        // Above the last bound: only in +Inf; a quote in a method is escaped.
        assert!(out.contains(
            "verdict_request_duration_seconds_bucket{le=\"10.0\",method=\"/v1.P/Check\\\"\",tenant=\"acme\"} 0"
        ), "{out}");
        assert!(out.contains(
            "verdict_request_duration_seconds_bucket{le=\"+Inf\",method=\"/v1.P/Check\\\"\",tenant=\"acme\"} 1"
        ), "{out}");
        assert!(out.contains("verdict_requests_shed_total 0"), "{out}");
    }
}
