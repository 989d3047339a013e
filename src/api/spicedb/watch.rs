//! `authzed.api.v1.WatchService`: the tenant's changelog from a ZedToken
//! (or from now), one response per revision in ascending order, filtered
//! by object types or relationship filters, with schema-change and
//! checkpoint responses when asked for.
//!
//! Each watch is one task reading the changelog (`changes_since`), never a
//! hook in the write path. Responses go through a bounded channel: a slow
//! consumer slows only its own watch.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use verdict_storage::{
    ChangeBatch, ChangeKind, RelationStore, Revision, StorageError, Tenant, TupleFilter,
};

use super::auth;
use super::convert::{filter_from_pb, relationship_to_pb, validate_type, zedtoken};
use super::error::{SpiceError, SpiceResult};
use super::pb;
use crate::server::state::AppState;

/// Responses buffered per watch.
const WATCH_BUFFER: usize = 128;
/// Change batches read per storage call.
const CHANGES_PER_READ: usize = 100;

type WatchItem = Result<pb::WatchResponse, Status>;

/// The WatchService implementation.
#[derive(Debug, Clone)]
pub struct WatchApi {
    state: Arc<AppState>,
    /// How often an idle watch that asked for checkpoints gets one.
    /// Default = 1s (SpiceDB's `--watch-api-heartbeat`)
    heartbeat: Duration,
}

impl WatchApi {
    /// A service over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        WatchApi {
            state,
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// What one watch reports.
struct Selection {
    types: Vec<String>,
    filters: Vec<TupleFilter>,
    relationships: bool,
    schema: bool,
    checkpoints: bool,
}

/// One running watch.
struct Feed {
    state: Arc<AppState>,
    tenant: Tenant,
    selection: Selection,
    heartbeat: Duration,
    tx: mpsc::Sender<WatchItem>,
}

impl Feed {
    fn response(&self, batch: &ChangeBatch) -> Option<pb::WatchResponse> {
        use pb::relationship_update::Operation;
        let s = &self.selection;
        let updates: Vec<pb::RelationshipUpdate> = if s.relationships {
            batch
                .changes
                .iter()
                .filter(|c| {
                    (s.types.is_empty() && s.filters.is_empty())
                        || s.types.contains(&c.tuple.resource.object_type)
                        || s.filters.iter().any(|f| f.matches(&c.tuple))
                })
                .map(|c| pb::RelationshipUpdate {
                    operation: match c.kind {
                        ChangeKind::Create | ChangeKind::Touch => Operation::Touch,
                        ChangeKind::Delete => Operation::Delete,
                    } as i32,
                    relationship: Some(relationship_to_pb(&c.tuple)),
                })
                .collect()
        } else {
            Vec::new()
        };
        let schema_updated = s.schema && batch.schema_version.is_some();
        (!updates.is_empty() || schema_updated).then(|| pb::WatchResponse {
            updates,
            changes_through: Some(zedtoken(&self.state.zookies, batch.revision)),
            optional_transaction_metadata: None,
            schema_updated,
            is_checkpoint: false,
            full_revision_metadata: Vec::new(),
        })
    }

    async fn read(&self, after: Revision) -> SpiceResult<Vec<ChangeBatch>> {
        let store = self.state.store.clone();
        let tenant = self.tenant.clone();
        let read = tokio::task::spawn_blocking(move || {
            store.changes_since(&tenant, after, CHANGES_PER_READ)
        })
        .await
        .map_err(|e| SpiceError::plain(Code::Internal, format!("watch read failed: {e}")))?;
        match read {
            Ok(b) => Ok(b),
            Err(StorageError::ChangelogCompacted { after, floor }) => Err(SpiceError::plain(
                Code::OutOfRange,
                format!("invalid revision: changes after revision {} are no longer retained (the changelog starts after {})", after.0, floor.0),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams until the client leaves (`Ok`) or a failure (`Err`).
    async fn run(&self, mut after: Revision) -> SpiceResult<()> {
        let mut applied = self.state.committer.subscribe();
        let mut last_sent = Instant::now();
        loop {
            applied.borrow_and_update();
            let applied_before = self.state.store.applied_revision();
            let batches = self.read(after).await?;
            let more = batches.len() >= CHANGES_PER_READ;
            for batch in &batches {
                after = after.max(batch.revision);
                if let Some(r) = self.response(batch) {
                    if self.tx.send(Ok(r)).await.is_err() {
                        return Ok(());
                    }
                    last_sent = Instant::now();
                }
            }
            if more {
                continue;
            }
            after = after.max(applied_before);
            let deadline = last_sent + self.heartbeat;
            if self.selection.checkpoints && Instant::now() >= deadline {
                let checkpoint = pb::WatchResponse {
                    changes_through: Some(zedtoken(&self.state.zookies, after)),
                    is_checkpoint: true,
                    ..pb::WatchResponse::default()
                };
                if self.tx.send(Ok(checkpoint)).await.is_err() {
                    return Ok(());
                }
                last_sent = Instant::now();
                continue;
            }
            tokio::select! {
                changed = applied.changed() => {
                    if changed.is_err() {
                        return Err(SpiceError::plain(Code::Unavailable, "the server is shutting down"));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {}
                () = self.tx.closed() => return Ok(()),
            }
        }
    }
}

#[tonic::async_trait]
impl pb::watch_service_server::WatchService for WatchApi {
    type WatchStream = ReceiverStream<WatchItem>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        use pb::WatchKind;
        let req = request.into_inner();
        if !req.optional_object_types.is_empty() && !req.optional_relationship_filters.is_empty() {
            return Err(SpiceError::plain(
                Code::InvalidArgument,
                "cannot specify both object types and relationship filters",
            )
            .into());
        }
        for (i, t) in req.optional_object_types.iter().enumerate() {
            validate_type(&format!("optional_object_types[{i}]"), t)?;
        }
        let filters = req
            .optional_relationship_filters
            .iter()
            .enumerate()
            .map(|(i, f)| filter_from_pb(Some(f), &format!("optional_relationship_filters[{i}]")))
            .collect::<SpiceResult<Vec<_>>>()?;
        let kinds = &req.optional_update_kinds;
        let has = |k: WatchKind| kinds.contains(&(k as i32));
        let selection = Selection {
            types: req.optional_object_types.clone(),
            filters,
            relationships: kinds.is_empty()
                || has(WatchKind::Unspecified)
                || has(WatchKind::IncludeRelationshipUpdates),
            schema: has(WatchKind::IncludeSchemaUpdates),
            checkpoints: has(WatchKind::IncludeCheckpoints),
        };
        let tenant = self
            .state
            .tenant(&auth::tenant_name())
            .map_err(SpiceError::from)?;
        let after = match req.optional_start_cursor.as_ref() {
            Some(z) => self.state.zookies.decode(&z.token).map_err(|e| {
                SpiceError::plain(
                    Code::InvalidArgument,
                    format!("failed to decode start revision: {e}"),
                )
            })?,
            None => self.state.store.applied_revision(),
        };
        if after > self.state.store.applied_revision() {
            // A token from the future (this node is behind): wait, bounded.
            let mut applied = self.state.committer.subscribe();
            let reached = tokio::time::timeout(
                self.state.settings.max_wait,
                applied.wait_for(|r| *r >= after),
            )
            .await;
            if !matches!(reached, Ok(Ok(_))) {
                return Err(SpiceError::plain(
                    Code::Unavailable,
                    format!(
                        "`optional_start_cursor` names revision {} but this node has applied only {}; retry later",
                        after.0,
                        self.state.store.applied_revision().0
                    ),
                )
                .into());
            }
        }
        let floor = self.state.store.gc_floor();
        if after < floor {
            return Err(SpiceError::plain(
                Code::OutOfRange,
                format!(
                    "invalid revision: revision {} was garbage-collected (oldest readable: {})",
                    after.0, floor.0
                ),
            )
            .into());
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let feed = Feed {
            state: self.state.clone(),
            tenant,
            selection,
            heartbeat: self.heartbeat,
            tx,
        };
        tokio::spawn(async move {
            if let Err(e) = feed.run(after).await {
                let _ = feed.tx.send(Err(e.into())).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
