//! The decision log: one JSON line per check decision, appended by a writer
//! thread fed through a bounded channel — the request path never blocks on
//! the file; when the channel is full the line is dropped and counted.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use verdict_storage::{ObjectRef, SubjectRef, Timestamp};

use super::metrics::RequestMetrics;
use crate::engine::Outcome;

/// Lines buffered before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 16_384;

/// A handle to the writer thread.
#[derive(Debug)]
pub struct DecisionLog {
    tx: Option<SyncSender<String>>,
    writer: Option<std::thread::JoinHandle<()>>,
    metrics: Arc<RequestMetrics>,
}

impl Drop for DecisionLog {
    /// Closes the channel and waits for the writer to flush what is queued.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One decision to log.
#[derive(Debug)]
pub struct Decision<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// The tenant name as requested (`""` = default).
    pub tenant: &'a str,
    /// The resource.
    pub resource: &'a ObjectRef,
    /// The permission.
    pub permission: &'a str,
    /// The subject.
    pub subject: &'a SubjectRef,
    /// The outcome.
    pub outcome: &'a Outcome,
    /// The revision evaluated at.
    pub revision: u64,
    /// The schema version.
    pub schema_version: u64,
    /// Whether the decision cache answered part of it.
    pub cached: bool,
    /// Latency in microseconds.
    pub latency_us: u64,
    /// The request's caveat context.
    pub context: &'a Map<String, Value>,
}

/// Now as RFC 3339 UTC with milliseconds.
fn now_rfc3339() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = Timestamp(i64::try_from(since.as_secs()).unwrap_or(0)).to_string();
    let base = seconds.trim_end_matches('Z');
    format!("{base}.{:03}Z", since.subsec_millis())
}

fn json_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

impl Decision<'_> {
    /// The exact JSON line (without the newline); key order is fixed.
    pub fn to_line(&self, time: &str) -> String {
        let result = match self.outcome {
            Outcome::Allowed => "ALLOWED",
            Outcome::Denied => "DENIED",
            Outcome::Conditional { .. } => "CONDITIONAL",
        };
        let mut line = format!(
            "{{\"time\":{},\"request_id\":{},\"tenant\":{},\"resource\":{},\"permission\":{},\"subject\":{},\"result\":\"{result}\",\"revision\":{},\"schema_version\":{},\"cached\":{},\"latency_us\":{}",
            json_str(time),
            json_str(self.request_id),
            json_str(self.tenant),
            json_str(&self.resource.to_string()),
            json_str(self.permission),
            json_str(&self.subject.to_string()),
            self.revision,
            self.schema_version,
            self.cached,
            self.latency_us,
        );
        if !self.context.is_empty() {
            let context = serde_json::to_string(self.context).unwrap_or_else(|_| "{}".into());
            line.push_str(",\"context\":");
            line.push_str(&context);
        }
        line.push('}');
        line
    }
}

fn write_loop(rx: Receiver<String>, file: std::fs::File, metrics: Arc<RequestMetrics>) {
    let mut out = BufWriter::new(file);
    while let Ok(line) = rx.recv() {
        let mut batch = vec![line];
        while let Ok(l) = rx.try_recv() {
            batch.push(l);
        }
        for l in &batch {
            if writeln!(out, "{l}").is_err() {
                tracing::warn!("decision log write failed");
            }
        }
        if out.flush().is_err() {
            tracing::warn!("decision log flush failed");
        }
        metrics
            .decision_log_written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
    let _ = out.flush();
}

impl DecisionLog {
    /// Opens `path` for appending and starts the writer thread.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: &Path, metrics: Arc<RequestMetrics>) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let writer_metrics = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(rx, file, writer_metrics))?;
        Ok(DecisionLog {
            tx: Some(tx),
            writer: Some(writer),
            metrics,
        })
    }

    /// Queues one decision; never blocks (drops and counts when full).
    pub fn record(&self, decision: &Decision<'_>) {
        let line = decision.to_line(&now_rfc3339());
        let sent = self.tx.as_ref().is_some_and(|tx| tx.try_send(line).is_ok());
        if !sent {
            self.metrics
                .decision_log_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The request id of the request being served on this task (`""` if none).
pub fn current_request_id() -> String {
    super::request_context::current()
        .map(|c| c.request_id.clone())
        .unwrap_or_default()
}

/// Logs one check decision, if `state` has a decision log.
#[expect(
    clippy::too_many_arguments,
    reason = "one decision-log line: the request, its answer and the revision, schema version and latency it was answered at"
)]
pub fn log_check(
    state: &super::state::AppState,
    request_id: &str,
    tenant: &str,
    check: &crate::engine::CheckRequest,
    response: &crate::engine::CheckResponse,
    revision: u64,
    schema_version: u64,
    latency_us: u64,
) {
    let Some(log) = &state.ops.decision_log else {
        return;
    };
    let tenant = if tenant == verdict_storage::Tenant::default_tenant().as_str() {
        ""
    } else {
        tenant
    };
    log.record(&Decision {
        request_id,
        tenant,
        resource: &check.resource,
        permission: &check.permission,
        subject: &check.subject,
        outcome: &response.outcome,
        revision,
        schema_version,
        cached: response.cache_hits > 0,
        latency_us,
        context: &check.context,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_is_exact() {
        let resource = ObjectRef::new("doc", "1");
        let subject = SubjectRef::userset("group", "eng", "member");
        let context = Map::new();
        let d = Decision {
            request_id: "r1",
            tenant: "",
            resource: &resource,
            permission: "view",
            subject: &subject,
            outcome: &Outcome::Allowed,
            revision: 7,
            schema_version: 2,
            cached: false,
            latency_us: 15,
            context: &context,
        };
        assert_eq!(
            d.to_line("2026-11-28T04:00:00.000Z"),
            r#"{"time":"2026-11-28T04:00:00.000Z","request_id":"r1","tenant":"","resource":"doc:1","permission":"view","subject":"group:eng#member","result":"ALLOWED","revision":7,"schema_version":2,"cached":false,"latency_us":15}"#
        );
        let mut with_context = Map::new();
        with_context.insert("ip".into(), Value::String("10.0.0.1".into()));
        let d = Decision {
            context: &with_context,
            ..d
        };
        assert!(d
            .to_line("t")
            .ends_with(r#""latency_us":15,"context":{"ip":"10.0.0.1"}}"#));
        assert!(now_rfc3339().ends_with('Z'));
    }

    #[test]
    fn dropping_the_log_flushes_every_queued_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let metrics = Arc::new(RequestMetrics::default());
        let log = DecisionLog::open(&path, metrics.clone()).unwrap();
        let resource = ObjectRef::new("doc", "1");
        let subject = SubjectRef::direct("user", "u");
        let context = Map::new();
        for i in 0..1000 {
            log.record(&Decision {
                request_id: &i.to_string(),
                tenant: "t",
                resource: &resource,
                permission: "view",
                subject: &subject,
                outcome: &Outcome::Denied,
                revision: 1,
                schema_version: 1,
                cached: true,
                latency_us: 1,
                context: &context,
            });
        }
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1000);
        assert_eq!(metrics.decision_log_dropped.load(Ordering::Relaxed), 0);
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    }
}
