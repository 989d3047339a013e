//! `verdict bench run --mode write`: N concurrent writers, each request
//! one TOUCH of one new relationship through WriteRelationships (the RPC
//! clients use, so the real write path: validation, Raft, group commit).
//!
//! The relationships are the workload's own with a fresh resource id
//! (`<id>-w<phase>-<n>`), so each write is a real change that fits the
//! schema, and a later phase or run writes new ones again.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::driver::{drive, Done, Latency};
use super::report::ConcurrencyRun;
use crate::api::convert::tuple_to_pb;
use crate::api::pb;
use crate::cli::client::Conn;
use crate::workload::Workload;

/// The `n`-th relationship a phase writes: the workload's `n`-th (mod its
/// size) under a resource id no other phase uses.
fn fresh(workload: &Workload, phase: u128, n: usize) -> Option<verdict_storage::Tuple> {
    let len = workload.relationships.len();
    let mut t = workload.relationships.get(n.checked_rem(len)?)?.clone();
    t.resource.object_id = format!("{}-w{phase}-{n}", t.resource.object_id);
    Some(t)
}

/// Writes for `duration` from `concurrency` tasks; the figures are in
/// [`ConcurrencyRun::writes`] (units = relationships written).
pub async fn run_at(
    conn: &Conn,
    workload: &Arc<Workload>,
    concurrency: usize,
    duration: Duration,
) -> ConcurrencyRun {
    let phase = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let (conn2, workload2) = (conn.clone(), workload.clone());
    let (writes, first_error, _) = drive(concurrency, duration, move |_, i| {
        let (conn, workload) = (conn2.clone(), workload2.clone());
        async move {
            let t = fresh(&workload, phase, i)
                .ok_or_else(|| "the workload has no relationships to write".to_string())?;
            conn.relationships()
                .write_relationships(pb::WriteRelationshipsRequest {
                    tenant: conn.tenant.clone(),
                    updates: vec![pb::RelationshipUpdate {
                        operation: pb::relationship_update::Operation::Touch as i32,
                        relationship: Some(tuple_to_pb(&t)),
                    }],
                    preconditions: Vec::new(),
                })
                .await
                .map_err(|s| format!("write {t}: {}", s.message()))?;
            Ok(Done::Counted(1))
        }
    })
    .await;
    if let Some(e) = first_error {
        eprintln!("warning: some writes failed; the first: {e}");
    }
    ConcurrencyRun {
        concurrency,
        writes: Some(writes),
        ..ConcurrencyRun::default()
    }
}

/// The headline of a write run: `writes_per_s`, `p50_us`, `p99_us` of the
/// highest concurrency.
pub fn headline(runs: &[ConcurrencyRun]) -> Option<&Latency> {
    runs.iter()
        .max_by_key(|r| r.concurrency)
        .and_then(|r| r.writes.as_ref())
}
