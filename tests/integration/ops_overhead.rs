//! Check throughput with and without API-key auth + the decision log
//! (metrics and request ids are always on). Ignored by default; run in
//! release: `cargo test --release --test ops_overhead -- --ignored --nocapture`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Server, ADMIN};

async fn throughput(server: &Server, token: Option<&str>, seconds: f64) -> f64 {
    let clients = server.clients(token).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let mut c = clients.clone();
        let (stop, done) = (stop.clone(), done.clone());
        let tenant = if token.is_some() { "acme" } else { "" };
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let doc = format!("d{}", (i >> 33) % 1000);
                let user = format!("u{}", (i >> 17) % 100);
                c.perm
                    .check(support::check_request(tenant, &doc, &user))
                    .await
                    .expect("check");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for t in tasks {
        t.await.unwrap();
    }
    rate
}

async fn seed(c: &mut support::Clients, tenant: &str) {
    c.write_schema(tenant).await;
    for chunk in 0..10 {
        let tuples: Vec<(String, String)> = (0..100)
            .map(|i| {
                let d = chunk * 100 + i;
                (format!("d{d}"), format!("u{}", d % 100))
            })
            .collect();
        let rows: Vec<_> = tuples
            .iter()
            .map(|(d, u)| ("document", d.as_str(), "viewer", "user", u.as_str(), ""))
            .collect();
        c.write(tenant, &rows).await.unwrap();
    }
}

#[test]
#[ignore]
fn check_throughput_with_and_without_auth_and_decision_log() {
    let seconds: f64 = std::env::var("OPS_OVERHEAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let plain = Server::start(&["--insecure-no-auth"]);
    let secured = Server::start(&[
        "--admin-key",
        ADMIN,
        "--decision-log",
        log.to_str().unwrap(),
    ]);
    secured
        .cli(&["tenant", "create", "acme", "--token", ADMIN], &[])
        .ok();
    let key = secured.cli(
        &["key", "create", "--tenant", "acme", "--token", ADMIN],
        &[],
    );
    let key = key.ok().trim().to_string();
    rt.block_on(async {
        seed(&mut plain.clients(None).await, "").await;
        seed(&mut secured.clients(Some(ADMIN)).await, "acme").await;
        let mut best = (0.0f64, 0.0f64);
        for _ in 0..2 {
            best.0 = best.0.max(throughput(&plain, None, seconds).await);
            best.1 = best.1.max(throughput(&secured, Some(&key), seconds).await);
        }
        eprintln!(
            "checks/s at concurrency 8: --insecure-no-auth {:.0}, tenant key + decision log {:.0} (ratio {:.3})",
            best.0,
            best.1,
            best.1 / best.0
        );
    });
    let lines = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count();
    eprintln!("decision log lines: {lines}");
    let metrics = secured.http_get("/metrics");
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("verdict_decision_log_dropped_total"))
        .unwrap_or("")
        .to_string();
    eprintln!("{dropped}");
}
