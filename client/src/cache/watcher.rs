//! The background task that keeps a cache exact: follows the tenant's
//! watch feed from the last position, turns each change into footprint
//! keys, and reconnects with backoff when the stream breaks.

use std::sync::Arc;
use std::time::Instant;

use tonic::Code;
use tracing::Instrument;
use verdict_footprint::{tuple_keys, ObjectKey, SubjectKey, ANY_KEY};

use super::{bump, Shared};
use crate::pb;
use crate::retry::RetryPolicy;
use crate::zookie::Zookie;

/// Follows the feed forever (the task is aborted when the cache drops).
pub(super) async fn run(shared: Arc<Shared>) {
    let backoff = RetryPolicy {
        max_attempts: u32::MAX,
        initial_backoff: shared.policy.reconnect_backoff,
        max_backoff: shared.policy.max_reconnect_backoff,
    };
    let mut failures = 0u32;
    loop {
        let from = shared.store().position().map_or(0, Zookie::revision);
        let span = tracing::info_span!("verdict_client.watch", tenant = %shared.tenant, from);
        let outcome = follow(&shared).instrument(span).await;
        shared.store().disconnected();
        match outcome {
            // The stream made progress before it ended: retry soon.
            Ok(()) => failures = 0,
            Err(status) => {
                tracing::info!(tenant = %shared.tenant, code = ?status.code(), error = %status.message(), "watch stream ended");
                if matches!(status.code(), Code::FailedPrecondition | Code::NotFound) {
                    // History compacted or the tenant is gone: the feed
                    // cannot vouch for any entry; start over from now.
                    let dropped = shared.store().reset();
                    bump(&shared.counters.invalidations, dropped);
                }
            }
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(backoff.backoff(failures)).await;
    }
}

/// One stream: from the position to its end. `Ok` when it delivered
/// something before ending.
async fn follow(shared: &Shared) -> Result<(), tonic::Status> {
    let start = shared.store().position().cloned();
    let mut stream = match shared.client.watch(&shared.tenant, start.as_ref()).await {
        Ok(s) => s,
        Err(crate::ClientError::Status(status)) => return Err(status),
        Err(other) => return Err(tonic::Status::unavailable(other.to_string())),
    };
    bump(&shared.counters.watch_connects, 1);
    let mut progressed = false;
    loop {
        match stream.message().await {
            Ok(Some(response)) => {
                apply(shared, &response);
                progressed = true;
            }
            Ok(None) => return Ok(()),
            Err(status) if progressed => {
                tracing::info!(tenant = %shared.tenant, error = %status, "watch stream broke");
                return Ok(());
            }
            Err(status) => return Err(status),
        }
    }
}

/// Applies one response: drops what its changes touch, then moves the
/// position (a checkpoint proves it current).
fn apply(shared: &Shared, response: &pb::WatchResponse) {
    let Some(through) = Zookie::from_pb(response.changes_through.as_ref()) else {
        return;
    };
    let mut keys = Vec::with_capacity(4 * response.changes.len());
    if response.schema_version != 0 {
        keys.push(ANY_KEY);
    }
    for change in &response.changes {
        match change.relationship.as_ref().and_then(change_parts) {
            Some((object, subject)) => tuple_keys(&shared.key_tenant, object, subject, &mut keys),
            // A change we cannot read: void everything (conservative).
            None => keys.push(ANY_KEY),
        }
    }
    let now = Instant::now();
    let mut store = shared.store();
    if !keys.is_empty() {
        let dropped = store.apply_changes(through.revision(), &keys);
        bump(&shared.counters.invalidations, dropped);
    }
    store.advance(through, response.checkpoint, now);
}

fn change_parts(r: &pb::Relationship) -> Option<(ObjectKey<'_>, SubjectKey<'_>)> {
    let resource = r.resource.as_ref()?;
    let subject = r.subject.as_ref()?;
    let subject_object = subject.object.as_ref()?;
    Some((
        ObjectKey {
            object_type: &resource.object_type,
            object_id: &resource.object_id,
            relation: &r.relation,
        },
        SubjectKey {
            subject_type: &subject_object.object_type,
            subject_id: &subject_object.object_id,
            subject_relation: (!subject.optional_relation.is_empty())
                .then_some(subject.optional_relation.as_str()),
        },
    ))
}
