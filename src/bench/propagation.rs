//! `verdict bench run --mode propagation`: the staleness contract of the
//! client library's local cache, measured.
//!
//! ```text
//!  N LocalCaches (own channel + watch each) ◀── one reader task each:
//!      Zipf(s = 1) over the workload's checks, through the cache
//!  writer: per cycle, grant a fresh probe tuple, warm it in every cache,
//!      revoke it, then poll every cache until none answers ALLOWED
//!      locally: propagation = acknowledgement → last cache dropped it
//! ```
//!
//! `stale_beyond_bound` counts (revocation, cache) pairs where the cache
//! still answered the revoked ALLOWED locally later than the staleness
//! bound after the acknowledgement (the contract says: never).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;
use verdict_client::cache::Lookup;
use verdict_client::{
    AnswerSource, CachePolicy, Check, Client, ClientConfig, LocalCache, Object, Permissionship,
    Relationship, Subject, Update,
};

use crate::cli::client::{CliError, Resolved};
use crate::workload::Workload;

/// Settings of a propagation run.
#[derive(Debug, Clone)]
pub struct PropagationOptions {
    /// Client caches (each with its reader task).
    pub caches: usize,
    /// Length of the measured phase.
    pub duration: Duration,
    /// The name the report gives the workload.
    pub workload_name: String,
}

/// What a propagation run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PropagationReport {
    /// The workload file's name.
    pub workload: String,
    /// Always `propagation`.
    pub mode: String,
    /// Client caches.
    pub caches: usize,
    /// Measured seconds.
    pub duration_s: f64,
    /// The caches' staleness bound, ms.
    pub bound_ms: u64,
    /// Revocations measured.
    pub revocations: u64,
    /// Median time from a revocation's acknowledgement until no cache
    /// answers the old ALLOWED, ms.
    pub propagation_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub propagation_p99_ms: f64,
    /// Slowest, ms.
    pub propagation_max_ms: f64,
    /// Reader checks in all.
    pub checks: u64,
    /// Reader checks answered by a local cache.
    pub local_hits: u64,
    /// `local_hits / checks`.
    pub local_hit_ratio: f64,
    /// Median latency of a local hit, µs.
    pub local_hit_p50_us: f64,
    /// 99th percentile of a local hit, µs.
    pub local_hit_p99_us: f64,
    /// Reader checks that went to the server, per second.
    pub server_checks_per_s: f64,
    /// Revoked ALLOWEDs still answered locally past the bound.
    pub stale_beyond_bound: u64,
    /// Failed reader checks and writes.
    pub errors: u64,
}

fn nanos_histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant digits; the bounds are valid constants.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures are valid"))
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Cumulative Zipf(s = 1) weights over `n` ranks.
fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut total = 0.0;
    (1..=n)
        .map(|rank| {
            total += 1.0 / rank as f64;
            total
        })
        .collect()
}

fn zipf_pick(cdf: &[f64], rng: &mut impl Rng) -> usize {
    let total = cdf.last().copied().unwrap_or(1.0);
    let x = rng.gen_range(0.0..total);
    cdf.partition_point(|c| *c <= x)
        .min(cdf.len().saturating_sub(1))
}

fn to_check(t: &verdict_storage::Tuple) -> Check {
    Check {
        resource: Object::new(t.resource.object_type.clone(), t.resource.object_id.clone()),
        permission: t.relation.clone(),
        subject: Subject {
            object: Object::new(
                t.subject.object.object_type.clone(),
                t.subject.object.object_id.clone(),
            ),
            relation: t.subject.relation.clone(),
        },
    }
}

fn client_for(resolved: &Resolved) -> Result<Client, CliError> {
    if resolved.tls_ca.is_some() {
        return Err(CliError::Usage(
            "--mode propagation does not support TLS yet (the client library speaks plain gRPC)"
                .into(),
        ));
    }
    let mut config = ClientConfig::new(resolved.endpoint.clone());
    config.bearer_key = resolved.token.clone();
    Client::connect(config).map_err(|e| CliError::Invalid(e.to_string()))
}

/// Runs the measurement against the server `resolved` names (the workload
/// must be loaded).
///
/// # Errors
/// A workload without checks or relationships, or a server that refuses
/// the probe writes.
pub async fn run(
    resolved: &Resolved,
    workload: Arc<Workload>,
    opts: &PropagationOptions,
) -> Result<PropagationReport, CliError> {
    let checks: Arc<Vec<Check>> = Arc::new(workload.checks.iter().map(to_check).collect());
    let template = workload
        .relationships
        .iter()
        .find(|t| t.subject.relation.is_none() && t.caveat.is_none() && t.expiration.is_none())
        .ok_or_else(|| {
            CliError::Invalid("the workload has no plain direct relationship to probe with".into())
        })?;
    if checks.is_empty() {
        return Err(CliError::Invalid("the workload has no checks".into()));
    }
    let policy = CachePolicy::default();
    let bound = policy.default_max_staleness;
    let tenant = resolved.tenant.clone();
    let caches: Vec<Arc<LocalCache>> = (0..opts.caches.max(1))
        .map(|_| {
            Ok(Arc::new(LocalCache::new(
                client_for(resolved)?,
                &tenant,
                policy.clone(),
            )))
        })
        .collect::<Result<_, CliError>>()?;
    let writer = client_for(resolved)?;

    let stop = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(Mutex::new(nanos_histogram()));
    let (total, local, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let cdf = Arc::new(zipf_cdf(checks.len()));
    let mut readers = Vec::new();
    for cache in &caches {
        let (cache, checks, cdf, stop) = (cache.clone(), checks.clone(), cdf.clone(), stop.clone());
        let (hits, total, local, errors) =
            (hits.clone(), total.clone(), local.clone(), errors.clone());
        readers.push(tokio::spawn(async move {
            let mut own = nanos_histogram();
            while !stop.load(Ordering::Relaxed) {
                let i = zipf_pick(&cdf, &mut rand::thread_rng());
                let Some(check) = checks.get(i) else { continue };
                let started = Instant::now();
                let answer = cache.check(check).await;
                let took = started.elapsed();
                total.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok(a) if a.source == AnswerSource::LocalCache => {
                        local.fetch_add(1, Ordering::Relaxed);
                        own.saturating_record(nanos(took).max(1));
                        // Let the other tasks run between local hits.
                        tokio::task::yield_now().await;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let mut all = hits.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = all.add(&own);
        }));
    }

    // Warm-up: let the caches follow their watches and fill up.
    tokio::time::sleep(Duration::from_secs(2).min(opts.duration)).await;
    total.store(0, Ordering::Relaxed);
    local.store(0, Ordering::Relaxed);
    hits.lock().unwrap_or_else(PoisonError::into_inner).reset();

    let started = Instant::now();
    let mut propagation = nanos_histogram();
    let mut stale_beyond_bound = 0u64;
    let mut revocations = 0u64;
    let mut probe_id = 0u64;
    let run_tag: u32 = rand::thread_rng().gen();
    while started.elapsed() < opts.duration {
        probe_id += 1;
        let probe = Relationship {
            resource: Object::new(
                template.resource.object_type.clone(),
                format!("vprobe{run_tag:08x}n{probe_id}"),
            ),
            relation: template.relation.clone(),
            subject: Subject::new(
                template.subject.object.object_type.clone(),
                template.subject.object.object_id.clone(),
            ),
        };
        let check = Check {
            resource: probe.resource.clone(),
            permission: probe.relation.clone(),
            subject: probe.subject.clone(),
        };
        let granted = match writer.write(&tenant, &[Update::Touch(probe.clone())]).await {
            Ok(z) => z,
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        // Warm the probe's ALLOWED in every cache (bounded).
        let warm_deadline = Instant::now() + bound;
        for cache in &caches {
            while Instant::now() < warm_deadline
                && cache.lookup(&check, 0) != Lookup::Hit(Permissionship::Allowed)
            {
                if cache.check_at_least(&check, Some(&granted)).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        if writer
            .write(&tenant, &[Update::Delete(probe.clone())])
            .await
            .is_err()
        {
            errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let acknowledged = Instant::now();
        let mut pending: Vec<&Arc<LocalCache>> = caches.iter().collect();
        while !pending.is_empty() {
            pending.retain(|c| c.lookup(&check, 0) == Lookup::Hit(Permissionship::Allowed));
            if acknowledged.elapsed() > bound {
                stale_beyond_bound += pending.len() as u64;
                break;
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        propagation.saturating_record(nanos(acknowledged.elapsed()).max(1));
        revocations += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    let hits = hits.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let (checks_done, local_hits) = (total.load(Ordering::Relaxed), local.load(Ordering::Relaxed));
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e6;
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    Ok(PropagationReport {
        workload: opts.workload_name.clone(),
        mode: "propagation".into(),
        caches: caches.len(),
        duration_s: elapsed,
        bound_ms: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
        revocations,
        propagation_p50_ms: ms(&propagation, 0.5),
        propagation_p99_ms: ms(&propagation, 0.99),
        propagation_max_ms: propagation.max() as f64 / 1e6,
        checks: checks_done,
        local_hits,
        local_hit_ratio: local_hits as f64 / (checks_done.max(1)) as f64,
        local_hit_p50_us: us(&hits, 0.5),
        local_hit_p99_us: us(&hits, 0.99),
        server_checks_per_s: checks_done.saturating_sub(local_hits) as f64 / elapsed.max(1e-9),
        stale_beyond_bound,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// The report as a few Markdown lines.
pub fn markdown(r: &PropagationReport) -> String {
    format!(
        "| workload | caches | revocations | propagation p50 / p99 / max ms | local hit ratio | local hit p50 / p99 µs | server checks/s | stale beyond {} ms |\n|---|---|---|---|---|---|---|---|\n| {} | {} | {} | {:.2} / {:.2} / {:.2} | {:.3} | {:.2} / {:.2} | {:.0} | {} |\n",
        r.bound_ms,
        r.workload,
        r.caches,
        r.revocations,
        r.propagation_p50_ms,
        r.propagation_p99_ms,
        r.propagation_max_ms,
        r.local_hit_ratio,
        r.local_hit_p50_us,
        r.local_hit_p99_us,
        r.server_checks_per_s,
        r.stale_beyond_bound,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_low_ranks_and_stays_in_range() {
        let cdf = zipf_cdf(100);
        let mut rng = rand::thread_rng();
        let mut counts = [0u32; 100];
        for _ in 0..20_000 {
            counts[zipf_pick(&cdf, &mut rng)] += 1;
        }
        assert!(
            counts[0] > counts[9] && counts[9] > counts[99],
            "{counts:?}"
        );
        assert!(zipf_pick(&[], &mut rng) == 0);
    }
}
