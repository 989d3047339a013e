//! Load generator: drives a `verdict serve` process over gRPC with the
//! shared workload (`gen_workload.py --seed 42 --relationships 100000
//! --checks 20000`).
//!
//! - starts the release `verdict` binary on a temporary data directory (or
//!   uses `VERDICT_ENDPOINT` if set, after loading into it);
//! - bulk-imports the workload, reporting relationships/s;
//! - runs its checks at concurrency 1, 8 and 64 (`VERDICT_LOADGEN_SECONDS`
//!   each, default 10), reporting checks/s and p50/p99/p99.9/max;
//! - measures the transport ceiling with the cheapest RPC (grpc.health.v1
//!   Check) at the same concurrency, and gives each figure as a fraction
//!   of it;
//! - measures writes/s (one TOUCH per request) at concurrency 8.
//!
//! Run: `cargo bench --bench loadgen`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use verdict::api::convert::{object_to_pb, subject_to_pb, tuple_to_pb};
use verdict::api::pb;
use verdict::workload::benchmark_workload;

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data_dir: &std::path::Path) -> (ServerProcess, String) {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_verdict"));
    let mut child = Command::new(exe)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args([
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--insecure-no-auth",
        ])
        .env("VERDICT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("verdict serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut endpoint = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(addr) = line.strip_prefix("grpc listening on ") {
            endpoint = format!("http://{addr}");
        }
        if line == "ready" {
            break;
        }
    }
    (ServerProcess(child), endpoint)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

struct Run {
    rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Runs `concurrency` tasks calling `op(i)` for `seconds`.
async fn drive<F, Fut>(concurrency: usize, seconds: f64, op: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let op = op.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                op(i).await;
                latencies.push(t.elapsed());
                i += concurrency;
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let wall = start.elapsed().as_secs_f64();
    all.sort();
    Run {
        rate: all.len() as f64 / wall,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        p999: percentile(&all, 0.999),
        max: all.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds: f64 = std::env::var("VERDICT_LOADGEN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let workload =
        benchmark_workload(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers"))
            .expect("benchmark workload");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, endpoint) = match std::env::var("VERDICT_ENDPOINT") {
        Ok(e) => (None, e),
        Err(_) => {
            let (p, e) = start_server(dir.path());
            (Some(p), e)
        }
    };
    let channel = Channel::from_shared(endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");

    let mut schema = pb::schema_service_client::SchemaServiceClient::new(channel.clone());
    let written = schema
        .write_schema(pb::WriteSchemaRequest {
            schema: workload.schema.clone(),
            ..Default::default()
        })
        .await
        .expect("schema")
        .into_inner();
    let _ = written;

    // Bulk import.
    let mut rels = pb::relationship_service_client::RelationshipServiceClient::new(channel.clone());
    let batches: Vec<pb::ImportRelationshipsRequest> = workload
        .relationships
        .chunks(5_000)
        .map(|c| pb::ImportRelationshipsRequest {
            tenant: String::new(),
            relationships: c.iter().map(tuple_to_pb).collect(),
        })
        .collect();
    let start = Instant::now();
    let imported = rels
        .import_relationships(tokio_stream::iter(batches))
        .await
        .expect("import")
        .into_inner();
    let import_secs = start.elapsed().as_secs_f64();
    println!(
        "workload s42-r100000 over gRPC at {endpoint}: imported {} relationships in {:.2}s = {:.0}/s",
        imported.imported,
        import_secs,
        imported.imported as f64 / import_secs
    );
    let zookie = imported.written_at.expect("zookie");
    // Reads at least as fresh as the import (then quantized reads hit).
    let consistency = Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(zookie)),
    });
    let checks: Arc<Vec<pb::CheckRequest>> = Arc::new(
        workload
            .checks
            .iter()
            .map(|c| pb::CheckRequest {
                tenant: String::new(),
                consistency: consistency.clone(),
                resource: Some(object_to_pb(&c.resource)),
                permission: c.relation.clone(),
                subject: Some(subject_to_pb(&c.subject)),
                context: None,
                with_trace: false,
            })
            .collect(),
    );

    println!("concurrency | checks/s | p50 µs | p99 µs | p99.9 µs | max µs | ceiling (health) /s | fraction of ceiling");
    for concurrency in [1usize, 8, 64] {
        let health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let ceiling = drive(concurrency, seconds / 2.0, move |_| {
            let mut h = health.clone();
            async move {
                let _ = h
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
            }
        })
        .await;
        let client = pb::permission_service_client::PermissionServiceClient::new(channel.clone());
        let checks = checks.clone();
        let run = drive(concurrency, seconds, move |i| {
            let mut c = client.clone();
            let req = checks[i % checks.len()].clone();
            async move {
                let r = c.check(req).await;
                assert!(r.is_ok(), "check failed: {r:?}");
            }
        })
        .await;
        println!(
            "{concurrency:>11} | {:>8.0} | {:>6.0} | {:>6.0} | {:>8.0} | {:>6.0} | {:>19.0} | {:.2}",
            run.rate,
            run.p50,
            run.p99,
            run.p999,
            run.max,
            ceiling.rate,
            run.rate / ceiling.rate
        );
    }

    // Writes: one TOUCH per request, concurrency 8.
    let client = pb::relationship_service_client::RelationshipServiceClient::new(channel.clone());
    let run = drive(8, seconds, move |i| {
        let mut c = client.clone();
        let t = verdict_storage::Tuple::parse(&format!(
            "document:loadgen{i}#viewer@user:u{}",
            i % 1000
        ))
        .expect("tuple");
        async move {
            let r = c
                .write_relationships(pb::WriteRelationshipsRequest {
                    tenant: String::new(),
                    updates: vec![pb::RelationshipUpdate {
                        operation: pb::relationship_update::Operation::Touch as i32,
                        relationship: Some(tuple_to_pb(&t)),
                    }],
                    preconditions: Vec::new(),
                })
                .await;
            assert!(r.is_ok(), "write failed: {r:?}");
        }
    })
    .await;
    println!(
        "writes (TOUCH, 1 per request, concurrency 8, fsync on): {:.0}/s, p50 {:.0} µs, p99 {:.0} µs",
        run.rate, run.p50, run.p99
    );
}
