//! `verdict bench load` and `verdict bench run` over a connected client.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_stream::StreamExt as _;
use tonic::metadata::MetadataValue;

use super::answers::{Answers, Mismatches};
use super::driver::{drive, histogram, micros, summarise, Done, Latency, OpResult};
use super::report::{ConcurrencyRun, RunReport};
use crate::api::convert::{object_to_pb, subject_to_pb, tuple_to_pb};
use crate::api::pb;
use crate::api::spicedb::pb as authzed;
use crate::api::CACHE_HEADER;
use crate::cli::client::{CliError, Conn};
use crate::workload::Workload;

/// How decision caches are treated during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Every check asks the server to bypass its decision cache
    /// (`x-verdict-cache: bypass`).
    Cold,
    /// The checks run once before measuring, then again with the cache.
    Warm,
    /// Reads and writes interleaved (`--mix`), after the same warm-up as
    /// `warm`: writes go through WriteRelationships, and each task's checks
    /// carry the zookie its last write returned (at_least_as_fresh).
    Mixed,
    /// Writes only: one new relationship per WriteRelationships request
    /// from each of `--concurrency` writers (`bench::write_load`).
    Write,
    /// N client-library caches under a Zipf read load while a writer
    /// revokes and grants: propagation time, local hit ratio and latency
    /// (see [`super::propagation`]; `--concurrency` is the cache count).
    Propagation,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Cold => "cold",
            Mode::Warm => "warm",
            Mode::Mixed => "mixed",
            Mode::Write => "write",
            Mode::Propagation => "propagation",
        }
    }
}

/// Which front door the checks go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Api {
    /// `verdict.v1.PermissionService/Check`.
    #[default]
    Verdict,
    /// SpiceDB's `authzed.api.v1.PermissionsService/CheckPermission` (the
    /// tenant is the one the bearer token selects: with the admin key, the
    /// default tenant).
    Authzed,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Verdict => "verdict",
            Api::Authzed => "authzed",
        }
    }
}

/// What `bench load` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    /// Relationships the server imported.
    pub relationships: u64,
    /// Wall time of the import, s.
    pub seconds: f64,
    /// Relationships per second.
    pub per_s: f64,
}

/// Writes the workload's schema and bulk-imports its relationships in
/// batches of `batch`.
///
/// # Errors
/// The server refused the schema or the import.
pub async fn load(conn: &Conn, workload: &Workload, batch: usize) -> Result<LoadReport, CliError> {
    conn.schema()
        .write_schema(pb::WriteSchemaRequest {
            tenant: conn.tenant.clone(),
            schema: workload.schema.clone(),
            ..Default::default()
        })
        .await?;
    let tenant = conn.tenant.clone();
    let batches: Vec<pb::ImportRelationshipsRequest> = workload
        .relationships
        .chunks(batch.max(1))
        .map(|c| pb::ImportRelationshipsRequest {
            tenant: tenant.clone(),
            relationships: c.iter().map(tuple_to_pb).collect(),
        })
        .collect();
    let start = Instant::now();
    let imported = conn
        .relationships()
        .import_relationships(tokio_stream::iter(batches))
        .await?
        .into_inner();
    let seconds = start.elapsed().as_secs_f64();
    Ok(LoadReport {
        relationships: imported.imported,
        seconds,
        per_s: imported.imported as f64 / seconds.max(1e-9),
    })
}

/// Settings of `bench run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Concurrencies, run in order.
    pub concurrency: Vec<usize>,
    /// Length of each measured phase.
    pub duration: Duration,
    /// Cache treatment.
    pub mode: Mode,
    /// Mixed mode: reads and writes per cycle (e.g. 99 and 1).
    pub mix: (u32, u32),
    /// Subjects sampled for lookup-resources (0 = skip).
    pub lookup_subjects: usize,
    /// Tuples per write request in the writes phase (0 = skip).
    pub write_batch: usize,
    /// Concurrency of the writes phase.
    pub write_concurrency: usize,
    /// The name the report gives the workload.
    pub workload_name: String,
    /// The API the checks use.
    pub api: Api,
}

fn at_least_as_fresh(z: pb::Zookie) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(z)),
    })
}

fn answer_name(permissionship: i32) -> &'static str {
    match pb::Permissionship::try_from(permissionship) {
        Ok(pb::Permissionship::Allowed) => "allowed",
        Ok(pb::Permissionship::Denied) => "denied",
        Ok(pb::Permissionship::Conditional) => "conditional",
        _ => "unspecified",
    }
}

/// One prepared check: the request (consistency set per call) in both
/// APIs, and its line.
struct PreparedCheck {
    request: pb::CheckRequest,
    authzed: authzed::CheckPermissionRequest,
    line: String,
}

/// Shared by every check task.
struct CheckCtx {
    conn: Conn,
    checks: Vec<PreparedCheck>,
    answers: Option<Answers>,
    mismatches: Mismatches,
    compared: std::sync::atomic::AtomicU64,
    bypass: bool,
    api: Api,
}

impl CheckCtx {
    async fn check(&self, index: usize, zookie: pb::Zookie) -> OpResult {
        let Some(c) = self.checks.get(index % self.checks.len().max(1)) else {
            return Err("the workload has no checks".into());
        };
        let got = match self.api {
            Api::Verdict => self.check_verdict(c, zookie).await?,
            Api::Authzed => self.check_authzed(c, zookie).await?,
        };
        if let Some(expected) = self.answers.as_ref().and_then(|a| a.expected(&c.line)) {
            self.compared
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if got != expected {
                self.mismatches.record(&c.line, expected, got);
            }
        }
        Ok(Done::Counted(0))
    }

    async fn check_verdict(
        &self,
        c: &PreparedCheck,
        zookie: pb::Zookie,
    ) -> Result<&'static str, String> {
        let mut request = tonic::Request::new(pb::CheckRequest {
            consistency: at_least_as_fresh(zookie),
            ..c.request.clone()
        });
        if self.bypass {
            request
                .metadata_mut()
                .insert(CACHE_HEADER, MetadataValue::from_static("bypass"));
        }
        let response = self
            .conn
            .permissions()
            .check(request)
            .await
            .map_err(|s| format!("check {}: {}", c.line, s.message()))?
            .into_inner();
        Ok(answer_name(response.permissionship))
    }

    async fn check_authzed(
        &self,
        c: &PreparedCheck,
        zookie: pb::Zookie,
    ) -> Result<&'static str, String> {
        let mut request = tonic::Request::new(authzed::CheckPermissionRequest {
            consistency: Some(authzed::Consistency {
                requirement: Some(authzed::consistency::Requirement::AtLeastAsFresh(
                    authzed::ZedToken {
                        token: zookie.token,
                    },
                )),
            }),
            ..c.authzed.clone()
        });
        if self.bypass {
            request
                .metadata_mut()
                .insert(CACHE_HEADER, MetadataValue::from_static("bypass"));
        }
        let response = self
            .conn
            .authzed_permissions()
            .check_permission(request)
            .await
            .map_err(|s| format!("check {}: {}", c.line, s.message()))?
            .into_inner();
        use authzed::check_permission_response::Permissionship as P;
        Ok(match P::try_from(response.permissionship) {
            Ok(P::HasPermission) => "allowed",
            Ok(P::NoPermission) => "denied",
            Ok(P::ConditionalPermission) => "conditional",
            _ => "unspecified",
        })
    }
}

async fn touch(
    conn: &Conn,
    workload: &Workload,
    first: usize,
    n: usize,
) -> Result<pb::Zookie, String> {
    let len = workload.relationships.len();
    if len == 0 {
        return Err("the workload has no relationships to write".into());
    }
    // Relationships `first, first + 1, ...` (mod len): `n` of them, wrapping.
    let updates = workload
        .relationships
        .iter()
        .cycle()
        .skip(first % len)
        .take(n)
        .map(|t| pb::RelationshipUpdate {
            operation: pb::relationship_update::Operation::Touch as i32,
            relationship: Some(tuple_to_pb(t)),
        })
        .collect();
    conn.relationships()
        .write_relationships(pb::WriteRelationshipsRequest {
            tenant: conn.tenant.clone(),
            updates,
            preconditions: Vec::new(),
        })
        .await
        .map_err(|s| format!("write: {}", s.message()))?
        .into_inner()
        .written_at
        .ok_or_else(|| "write returned no zookie".to_string())
}

/// The ceiling: grpc.health.v1 Check from the same client.
async fn ceiling(conn: &Conn, concurrency: usize, duration: Duration) -> Latency {
    let health = conn.health();
    drive(concurrency, duration, move |_, _| {
        let mut h = health.clone();
        async move {
            h.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|s| format!("health: {}", s.message()))?;
            Ok(Done::Counted(0))
        }
    })
    .await
    .0
}

/// Runs every check once (bounded by `deadline`) so the cache is warm.
async fn warm_up(ctx: &Arc<CheckCtx>, concurrency: usize, zookie: &pb::Zookie, limit: Duration) {
    let deadline = Instant::now() + limit;
    let n = ctx.checks.len();
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let ctx = ctx.clone();
        let z = zookie.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n && Instant::now() < deadline {
                let _ = ctx.check(i, z.clone()).await;
                i += concurrency.max(1);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Runs the checks (and in mixed mode the writes) at each concurrency,
/// each after its ceiling; then lookups and writes.
///
/// # Errors
/// The server cannot answer the first (fully consistent) check.
pub async fn run(
    conn: &Conn,
    workload: Arc<Workload>,
    answers: Option<Answers>,
    opts: &RunOptions,
) -> Result<RunReport, CliError> {
    let checks: Vec<PreparedCheck> = workload
        .checks
        .iter()
        .map(|c| PreparedCheck {
            request: pb::CheckRequest {
                tenant: conn.tenant.clone(),
                consistency: None,
                resource: Some(object_to_pb(&c.resource)),
                permission: c.relation.clone(),
                subject: Some(subject_to_pb(&c.subject)),
                context: None,
                with_trace: false,
                with_footprint: false,
            },
            authzed: authzed::CheckPermissionRequest {
                consistency: None,
                resource: Some(crate::api::spicedb::convert::object_to_pb(&c.resource)),
                permission: c.relation.clone(),
                subject: Some(crate::api::spicedb::convert::subject_to_pb(&c.subject)),
                context: None,
                with_tracing: false,
            },
            line: c.to_string(),
        })
        .collect();
    let Some(first) = checks.first() else {
        return Err(CliError::Invalid("the workload has no checks".into()));
    };
    // A zookie at least as fresh as everything loaded so far.
    let base = conn
        .permissions()
        .check(pb::CheckRequest {
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
            }),
            ..first.request.clone()
        })
        .await?
        .into_inner()
        .checked_at
        .ok_or_else(|| CliError::Invalid("the server returned no zookie".into()))?;
    let ctx = Arc::new(CheckCtx {
        conn: conn.clone(),
        checks,
        answers,
        mismatches: Mismatches::default(),
        compared: std::sync::atomic::AtomicU64::new(0),
        bypass: opts.mode == Mode::Cold,
        api: opts.api,
    });
    let mut report = RunReport {
        workload: opts.workload_name.clone(),
        relationships: workload.relationships.len(),
        workload_checks: workload.checks.len(),
        mode: opts.mode.name().to_string(),
        api: (opts.api != Api::Verdict).then(|| opts.api.name().to_string()),
        mix: (opts.mode == Mode::Mixed).then(|| format!("{}:{}", opts.mix.0, opts.mix.1)),
        duration_s: opts.duration.as_secs_f64(),
        ..RunReport::default()
    };
    for &concurrency in &opts.concurrency {
        let concurrency = concurrency.max(1);
        let ceiling = ceiling(conn, concurrency, opts.duration).await;
        // Mixed runs start warm too: they measure what writes cost a warm
        // cache, beside the pure-read warm figure.
        if !matches!(opts.mode, Mode::Cold | Mode::Write) {
            warm_up(&ctx, concurrency, &base, opts.duration * 3).await;
        }
        let mut run = match opts.mode {
            Mode::Cold | Mode::Warm => {
                let ctx = ctx.clone();
                let base = base.clone();
                let (checks, first_error, _) = drive(concurrency, opts.duration, move |_, i| {
                    let ctx = ctx.clone();
                    let z = base.clone();
                    async move { ctx.check(i, z).await }
                })
                .await;
                report_error(first_error);
                ConcurrencyRun {
                    concurrency,
                    checks,
                    ..ConcurrencyRun::default()
                }
            }
            Mode::Mixed => mixed(&ctx, &workload, &base, concurrency, opts).await,
            Mode::Write => {
                super::write_load::run_at(conn, &workload, concurrency, opts.duration).await
            }
            Mode::Propagation => {
                return Err(CliError::Usage(
                    "--mode propagation runs through bench::propagation".into(),
                ))
            }
        };
        run.fraction_of_ceiling = run.checks.per_s / ceiling.per_s.max(1e-9);
        run.ceiling = ceiling;
        report.runs.push(run);
    }
    report.mismatches = ctx.mismatches.count();
    report.mismatch_list = ctx.mismatches.list(100);
    report.answers_compared = ctx.compared.load(std::sync::atomic::Ordering::Relaxed);
    report.set_headline();
    let low = opts.concurrency.iter().copied().min().unwrap_or(1).max(1);
    if opts.lookup_subjects > 0 {
        report.lookups = Some(lookups(conn, &workload, &base, low, opts).await);
    }
    if opts.write_batch > 0 {
        let workload = workload.clone();
        let conn2 = conn.clone();
        let batch = opts.write_batch;
        let (writes, first_error, _) = drive(opts.write_concurrency, opts.duration, move |_, i| {
            let conn = conn2.clone();
            let workload = workload.clone();
            async move {
                touch(&conn, &workload, i * batch, batch).await?;
                Ok(Done::Counted(batch as u64))
            }
        })
        .await;
        report_error(first_error);
        report.writes = Some(writes);
    }
    Ok(report)
}

fn report_error(first_error: Option<String>) {
    if let Some(e) = first_error {
        eprintln!("warning: some requests failed; the first: {e}");
    }
}

/// Mixed reads and writes at one concurrency.
async fn mixed(
    ctx: &Arc<CheckCtx>,
    workload: &Arc<Workload>,
    base: &pb::Zookie,
    concurrency: usize,
    opts: &RunOptions,
) -> ConcurrencyRun {
    let (reads, writes) = (u64::from(opts.mix.0), u64::from(opts.mix.1.max(1)));
    let cycle = (reads + writes) as usize;
    let zookies: Arc<Vec<Mutex<pb::Zookie>>> =
        Arc::new((0..concurrency).map(|_| Mutex::new(base.clone())).collect());
    let write_hist = Arc::new(Mutex::new((histogram(), 0u64)));
    let (ctx2, workload2, zookies2, hist2) = (
        ctx.clone(),
        workload.clone(),
        zookies.clone(),
        write_hist.clone(),
    );
    let (checks, first_error, wall) = drive(concurrency, opts.duration, move |worker, i| {
        let (ctx, workload, zookies, hist) = (
            ctx2.clone(),
            workload2.clone(),
            zookies2.clone(),
            hist2.clone(),
        );
        async move {
            let Some(slot) = zookies.get(worker % zookies.len().max(1)) else {
                return Err("no zookie slot for this worker".to_string());
            };
            if ((i % cycle) as u64) < writes {
                let t = Instant::now();
                let written = touch(&ctx.conn, &workload, i, 1).await;
                let took = micros(t);
                if let Ok(mut h) = hist.lock() {
                    h.0.saturating_record(took);
                    h.1 += u64::from(written.is_err());
                }
                let z = written?;
                if let Ok(mut s) = slot.lock() {
                    *s = z;
                }
                return Ok(Done::Aside);
            }
            let z = slot
                .lock()
                .map(|z| z.clone())
                .map_err(|_| "poisoned".to_string())?;
            ctx.check(i, z).await
        }
    })
    .await;
    report_error(first_error);
    let writes = write_hist
        .lock()
        .map(|h| summarise(&h.0, h.1, h.0.len(), wall))
        .unwrap_or_default();
    ConcurrencyRun {
        concurrency,
        checks,
        writes: Some(writes),
        ..ConcurrencyRun::default()
    }
}

/// Lookup-resources for up to `opts.lookup_subjects` distinct subjects of
/// the checks (each with its check's resource type and permission).
async fn lookups(
    conn: &Conn,
    workload: &Workload,
    base: &pb::Zookie,
    concurrency: usize,
    opts: &RunOptions,
) -> Latency {
    let mut seen = std::collections::HashSet::new();
    let requests: Arc<Vec<pb::LookupResourcesRequest>> = Arc::new(
        workload
            .checks
            .iter()
            .filter(|c| seen.insert(c.subject.to_string()))
            .take(opts.lookup_subjects)
            .map(|c| pb::LookupResourcesRequest {
                tenant: conn.tenant.clone(),
                consistency: at_least_as_fresh(base.clone()),
                resource_type: c.resource.object_type.clone(),
                permission: c.relation.clone(),
                subject: Some(subject_to_pb(&c.subject)),
                context: None,
                limit: 0,
                cursor: String::new(),
            })
            .collect(),
    );
    if requests.is_empty() {
        return Latency::default();
    }
    let conn = conn.clone();
    let (l, first_error, _) = drive(concurrency, opts.duration, move |_, i| {
        let conn = conn.clone();
        let req = requests.get(i % requests.len()).cloned();
        async move {
            let req = req.ok_or_else(|| "no lookup request".to_string())?;
            let mut stream = conn
                .permissions()
                .lookup_resources(req)
                .await
                .map_err(|s| format!("lookup: {}", s.message()))?
                .into_inner();
            let mut n = 0u64;
            while let Some(item) = stream.next().await {
                item.map_err(|s| format!("lookup: {}", s.message()))?;
                n += 1;
            }
            Ok(Done::Counted(n))
        }
    })
    .await;
    report_error(first_error);
    l
}
