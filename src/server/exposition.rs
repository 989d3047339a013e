//! The node's metrics in the OpenMetrics text format, written with
//! `prometheus-client`'s encoder: it owns the descriptor lines, the
//! `_total`/`_bucket`/`_sum`/`_count` suffixes, number formatting and the
//! closing `# EOF`. The values are read at scrape time from the node's own
//! counters (request series, the decision cache, Raft, the group index,
//! the group committer), so nothing is copied into a registry on the
//! request path.

use std::fmt;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

/// What an encoder call returns.
pub type Encoded = Result<(), fmt::Error>;

/// The content type of [`prometheus_client::encoding::text::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One gauge without labels.
pub fn gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: V,
) -> Encoded {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One counter without labels. `name` is the family name: the encoder
/// adds `_total` to the sample.
pub fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> Encoded {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// A counter family with one sample per label set.
pub fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> Encoded {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
    }
    Ok(())
}

/// A gauge family with one sample per label set.
pub fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) -> Encoded {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// A histogram read from per-bucket (not cumulative) counts.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramCounts {
    /// `(upper bound, observations in this bucket only)`, bounds ascending.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation, including those above the last bound.
    pub count: u64,
    /// The sum of the observations.
    pub sum: f64,
}

impl HistogramCounts {
    /// Writes this histogram as the metric `encoder` stands at; the
    /// observations above the last bound land in `+Inf`.
    pub fn encode(&self, encoder: &mut MetricEncoder<'_>) -> Encoded {
        let bounded: u64 = self.buckets.iter().map(|(_, n)| n).sum();
        let mut buckets = self.buckets.clone();
        // prometheus-client writes the bound `f64::MAX` as `+Inf`.
        buckets.push((f64::MAX, self.count.saturating_sub(bounded)));
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &buckets, None)
    }
}

/// A histogram family without labels.
pub fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    counts: &HistogramCounts,
) -> Encoded {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    counts.encode(&mut metric)
}

/// A label value as the text format needs it. prometheus-client 0.24
/// writes label values as given, so a `"`, `\` or newline (a gRPC method
/// path is the client's to choose) is escaped here.
pub fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Renders everything `collect` encodes as one OpenMetrics document.
pub fn render(collector: impl prometheus_client::collector::Collector) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        // Writing to a String cannot fail; keep what was written.
        tracing::warn!("metrics: the OpenMetrics encoder reported an error");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sample;

    impl prometheus_client::collector::Collector for Sample {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Encoded {
            gauge(&mut encoder, "t_applied_revision", "Applied.", 7u64)?;
            counter(&mut encoder, "t_shed", "Shed.", 3)?;
            counters(
                &mut encoder,
                "t_requests",
                "Requests.",
                [(
                    [("method", label_value("/a\"b")), ("code", "OK".to_string())],
                    2,
                )],
            )?;
            histogram(
                &mut encoder,
                "t_wait_seconds",
                "Wait.",
                &HistogramCounts {
                    buckets: vec![(0.001, 1), (0.01, 2)],
                    count: 4,
                    sum: 0.5,
                },
            )
        }
    }

    #[test]
    fn families_render_in_the_openmetrics_text_format() {
        let out = render(Sample);
        for line in [
            "# TYPE t_applied_revision gauge",
            "t_applied_revision 7",
            "# TYPE t_shed counter",
            "t_shed_total 3",
            "t_requests_total{method=\"/a\\\"b\",code=\"OK\"} 2",
            "# TYPE t_wait_seconds histogram",
            "t_wait_seconds_bucket{le=\"0.001\"} 1",
            "t_wait_seconds_bucket{le=\"0.01\"} 3",
            "t_wait_seconds_bucket{le=\"+Inf\"} 4",
            "t_wait_seconds_count 4",
            "t_wait_seconds_sum 0.5",
            "# EOF",
        ] {
            assert!(out.lines().any(|l| l == line), "{line:?} missing in\n{out}");
        }
    }
}
