//! Replicated key changes: a key created or revoked through any node is
//! proposed as a Raft command (its record only: the token's secret stays on
//! the node serving the request) and applied to every node's key store.

use std::time::Duration;

use verdict_raft::{Command, Request, Response};
use verdict_storage::{RelationStore as _, Revision};

use super::error::NodeError;
use super::keys::{KeyRecord, KeyStore};
use super::state::AppState;

/// The revision `response` consumed, or its rejection.
fn done(response: Response) -> Result<Revision, NodeError> {
    match response {
        Response::Rejected { rejection, .. } => Err(rejection.into()),
        other => Ok(other.revision()),
    }
}

/// Waits (bounded by `max_wait`) until this node has applied `revision`,
/// so a change made through it holds here when the call returns (other
/// nodes follow as they apply the log). On timeout the change stays
/// committed; only a warning is logged.
pub async fn wait_applied(state: &AppState, revision: Revision) {
    if state.store.applied_revision() >= revision {
        return;
    }
    let mut applied = state.committer.subscribe();
    let within: Duration = state.settings.max_wait;
    let reached = tokio::time::timeout(within, applied.wait_for(|r| *r >= revision)).await;
    if !matches!(reached, Ok(Ok(_))) {
        tracing::warn!(
            revision = revision.0,
            "the change is committed but not yet applied on this node"
        );
    }
}

/// Creates a key for `tenant` on every node; returns its record and its
/// token (shown once).
///
/// # Errors
/// An unknown tenant (it may have been deleted meanwhile), UNAVAILABLE
/// without a Raft leader.
pub async fn create_key(state: &AppState, tenant: &str) -> Result<(KeyRecord, String), NodeError> {
    let (record, token) = KeyStore::mint(tenant);
    let cmd = Command::CreateKey {
        record: record.clone(),
    };
    let revision = done(state.committer.submit(Request::now(cmd)).await?)?;
    wait_applied(state, revision).await;
    Ok((record, token))
}

/// Revokes key `id` on every node; returns its record (as this node knew
/// it before, or only its id when this node had not applied it yet).
///
/// # Errors
/// An unknown id (INVALID_ARGUMENT naming `id`), UNAVAILABLE without a
/// Raft leader.
pub async fn revoke_key(state: &AppState, id: &str) -> Result<KeyRecord, NodeError> {
    let known = state.keys.get(id);
    let cmd = Command::RevokeKey { id: id.to_string() };
    let revision = done(state.committer.submit(Request::now(cmd)).await?)?;
    wait_applied(state, revision).await;
    Ok(known.unwrap_or_else(|| KeyRecord {
        id: id.to_string(),
        tenant: String::new(),
        sha256: String::new(),
        created: String::new(),
    }))
}
