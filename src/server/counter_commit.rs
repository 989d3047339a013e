//! Replicated relationship counters (SpiceDB's experimental counters): a
//! registration or removal is proposed as a Raft command and applied to
//! every node's store (`RocksStore::put_counter`), so counters survive
//! restarts, travel in snapshots and are the same on every node. Counting
//! is a read (the front door scans the filter at a revision).

use verdict_raft::{Command, Request, Response};
use verdict_storage::{Revision, Tenant};

use super::error::NodeError;
use super::key_commit::wait_applied;
use super::state::AppState;

fn done(response: Response) -> Result<Revision, NodeError> {
    match response {
        Response::Rejected { rejection, .. } => Err(rejection.into()),
        other => Ok(other.revision()),
    }
}

/// Registers counter `name` of `tenant` counting `filter` (the front
/// door's encoding); applied here before it returns (within `max_wait`).
///
/// # Errors
/// The name is taken (`Reason::AlreadyExists`), an unknown tenant,
/// UNAVAILABLE without a Raft leader.
pub async fn register_counter(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    filter: Vec<u8>,
) -> Result<Revision, NodeError> {
    let cmd = Command::RegisterCounter {
        tenant: tenant.clone(),
        name: name.to_string(),
        filter,
    };
    let revision = done(state.committer.submit(Request::now(cmd)).await?)?;
    wait_applied(state, revision).await;
    Ok(revision)
}

/// Removes counter `name` of `tenant`.
///
/// # Errors
/// No such counter (`Reason::PreconditionFailed`), an unknown tenant,
/// UNAVAILABLE without a Raft leader.
pub async fn unregister_counter(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
) -> Result<Revision, NodeError> {
    let cmd = Command::UnregisterCounter {
        tenant: tenant.clone(),
        name: name.to_string(),
    };
    let revision = done(state.committer.submit(Request::now(cmd)).await?)?;
    wait_applied(state, revision).await;
    Ok(revision)
}
