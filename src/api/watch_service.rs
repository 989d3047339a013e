//! WatchService: a tenant's change feed from a zookie (or now), in revision
//! order, with event ids, idle checkpoints and a bounded buffer.
//!
//! Each watch is one task reading the changelog (`changes_since`) — never a
//! hook in the write path, so a watcher can not slow writes down. Responses
//! go through a bounded buffer of [`WATCH_BUFFER`]; a consumer that leaves it
//! full for longer than the grace period is disconnected with
//! RESOURCE_EXHAUSTED (after the responses already buffered), and resumes
//! from the last zookie it received.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use verdict_storage::{ChangeBatch, ChangeKind, RelationStore, Revision, StorageError, Tenant};

use super::convert::tuple_to_pb;
use super::convert::zookie_to_pb;
use super::error::ApiError;
use super::pb;
use crate::server::state::AppState;

/// Responses buffered per watch before the consumer counts as too slow.
pub const WATCH_BUFFER: usize = 128;
/// Change batches read from the changelog per storage call.
const CHANGES_PER_READ: usize = 100;
/// The message a too-slow consumer is disconnected with.
pub const TOO_SLOW: &str = "watch consumer too slow; resume from the last zookie";

type WatchItem = Result<pb::WatchResponse, Status>;

/// Timing of a watch stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTiming {
    /// An idle stream gets a checkpoint this often. Default = 1s
    pub checkpoint_interval: Duration,
    /// How long the buffer may stay full before the consumer is
    /// disconnected. Default = 5s
    pub slow_consumer_grace: Duration,
}

impl Default for WatchTiming {
    fn default() -> Self {
        WatchTiming {
            checkpoint_interval: Duration::from_secs(1),
            slow_consumer_grace: Duration::from_secs(5),
        }
    }
}

/// The WatchService implementation.
#[derive(Debug, Clone)]
pub struct WatchApi {
    state: Arc<AppState>,
    timing: WatchTiming,
}

impl WatchApi {
    /// A service over the shared state, with the default timing.
    pub fn new(state: Arc<AppState>) -> Self {
        WatchApi {
            state,
            timing: WatchTiming::default(),
        }
    }

    /// The same service with other checkpoint/slow-consumer timing.
    pub fn with_timing(mut self, timing: WatchTiming) -> Self {
        self.timing = timing;
        self
    }
}

fn compacted(after: Revision, floor: Revision) -> ApiError {
    ApiError::FailedPrecondition(format!(
        "`optional_start` names revision {}, which is older than the changelog retention (changes are kept after revision {}); start a new watch from a fresh read",
        after.0, floor.0
    ))
}

/// One running watch: the producer side of the response stream.
struct Feed {
    state: Arc<AppState>,
    tenant: Tenant,
    types: Vec<String>,
    timing: WatchTiming,
    tx: mpsc::Sender<WatchItem>,
    /// Delivered after everything in `tx`: the status the stream ends with.
    end: mpsc::Sender<WatchItem>,
}

/// Why sending stopped.
enum Stop {
    /// The client went away.
    Gone,
    /// The stream ends with this status.
    Fail(ApiError),
}

impl Feed {
    /// Queues a response; waits at most the grace period for buffer space.
    async fn send(&self, response: pb::WatchResponse) -> Result<(), Stop> {
        use mpsc::error::{SendTimeoutError, TrySendError};
        let response = match self.tx.try_send(Ok(response)) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => return Err(Stop::Gone),
            Err(TrySendError::Full(r)) => r,
        };
        match self
            .tx
            .send_timeout(response, self.timing.slow_consumer_grace)
            .await
        {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Closed(_)) => Err(Stop::Gone),
            Err(SendTimeoutError::Timeout(_)) => {
                Err(Stop::Fail(ApiError::ResourceExhausted(TOO_SLOW.into())))
            }
        }
    }

    /// The response for one change batch, or `None` when the type filter
    /// leaves nothing of it (a schema change is always sent). Event ids count positions in the whole batch,
    /// so they do not depend on the filter.
    fn response(&self, batch: &ChangeBatch) -> Option<pb::WatchResponse> {
        use pb::relationship_change::Operation;
        let changes: Vec<pb::RelationshipChange> = batch
            .changes
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                self.types.is_empty() || self.types.contains(&c.tuple.resource.object_type)
            })
            .map(|(position, c)| pb::RelationshipChange {
                operation: match c.kind {
                    ChangeKind::Create => Operation::Create,
                    ChangeKind::Touch => Operation::Touch,
                    ChangeKind::Delete => Operation::Delete,
                } as i32,
                relationship: Some(tuple_to_pb(&c.tuple)),
                event_id: format!("{}.{position}", batch.revision.0),
            })
            .collect();
        let schema_version = batch.schema_version.unwrap_or(0);
        (!changes.is_empty() || schema_version != 0).then(|| pb::WatchResponse {
            changes,
            changes_through: Some(zookie_to_pb(batch.revision, &self.state.zookies)),
            checkpoint: false,
            schema_version,
        })
    }

    /// The tenant's change batches after `after` (at most one read's worth).
    async fn read(&self, after: Revision) -> Result<Vec<ChangeBatch>, Stop> {
        let store = self.state.store.clone();
        let tenant = self.tenant.clone();
        let read = tokio::task::spawn_blocking(move || {
            store.changes_since(&tenant, after, CHANGES_PER_READ)
        })
        .await
        .map_err(|e| Stop::Fail(ApiError::Internal(format!("watch read failed: {e}"))))?;
        match read {
            Ok(batches) => Ok(batches),
            Err(StorageError::ChangelogCompacted { after, floor }) => {
                Err(Stop::Fail(compacted(after, floor)))
            }
            Err(e) => Err(Stop::Fail(e.into())),
        }
    }

    /// Streams changes after `after` until the client leaves or a failure.
    async fn run(&self, mut after: Revision) -> Stop {
        let mut applied = self.state.committer.subscribe();
        // Checkpoints prove currency to a consumer's cache: one goes out at
        // least every interval, also while changes keep flowing, and the
        // first as soon as the stream has caught up.
        let mut last_checkpoint = Instant::now()
            .checked_sub(self.timing.checkpoint_interval)
            .unwrap_or_else(Instant::now);
        loop {
            // Mark the current revision seen *before* reading, so a commit
            // racing the read still wakes the wait below.
            applied.borrow_and_update();
            let applied_before = self.state.store.applied_revision();
            let batches = match self.read(after).await {
                Ok(b) => b,
                Err(stop) => return stop,
            };
            let more = batches.len() >= CHANGES_PER_READ;
            for batch in &batches {
                after = after.max(batch.revision);
                if let Some(response) = self.response(batch) {
                    if let Err(stop) = self.send(response).await {
                        return stop;
                    }
                }
            }
            if more {
                continue;
            }
            // Everything up to the revision applied before the read is seen.
            after = after.max(applied_before);
            let deadline = last_checkpoint + self.timing.checkpoint_interval;
            if Instant::now() >= deadline {
                let checkpoint = pb::WatchResponse {
                    changes: Vec::new(),
                    changes_through: Some(zookie_to_pb(after, &self.state.zookies)),
                    checkpoint: true,
                    schema_version: 0,
                };
                if let Err(stop) = self.send(checkpoint).await {
                    return stop;
                }
                last_checkpoint = Instant::now();
                continue;
            }
            tokio::select! {
                changed = applied.changed() => {
                    if changed.is_err() {
                        return Stop::Fail(ApiError::Unavailable("the server is shutting down".into()));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {}
                () = self.tx.closed() => return Stop::Gone,
            }
        }
    }
}

#[tonic::async_trait]
impl pb::watch_service_server::WatchService for WatchApi {
    type WatchStream = Pin<Box<dyn Stream<Item = WatchItem> + Send + 'static>>;

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        for (i, t) in req.optional_resource_types.iter().enumerate() {
            verdict_storage::TupleFilter::resource_type(t.clone())
                .validate()
                .map_err(|e| ApiError::invalid(format!("optional_resource_types[{i}]"), e))?;
        }
        let after = match req.optional_start.as_ref().filter(|z| !z.token.is_empty()) {
            Some(z) => self
                .state
                .zookies
                .decode(&z.token)
                .map_err(|source| ApiError::Zookie {
                    field: "optional_start".into(),
                    source,
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
                return Err(ApiError::Unavailable(format!(
                    "`optional_start` names revision {} but this node has applied only {} after waiting {:?}; retry later",
                    after.0,
                    self.state.store.applied_revision().0,
                    self.state.settings.max_wait
                ))
                .into());
            }
        }
        let floor = self.state.store.gc_floor();
        if after < floor {
            return Err(compacted(after, floor).into());
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let (end, end_rx) = mpsc::channel(1);
        let feed = Feed {
            state: self.state.clone(),
            tenant,
            types: req.optional_resource_types,
            timing: self.timing,
            tx,
            end,
        };
        tokio::spawn(async move {
            match feed.run(after).await {
                Stop::Gone => {}
                Stop::Fail(e) => {
                    tracing::info!(tenant = feed.tenant.as_str(), error = %e, "watch ended");
                    let _ = feed.end.try_send(Err(e.into()));
                }
            }
        });
        let stream = ReceiverStream::new(rx).chain(ReceiverStream::new(end_rx));
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pb::relationship_service_server::RelationshipService as _;
    use crate::api::pb::watch_service_server::WatchService as _;
    use crate::api::RelationshipApi;
    use crate::server::config::ServerSettings;
    use tonic::Code;
    use verdict_storage::{SchemaVersionRecord, Tuple, WriteBatch};

    const SCHEMA: &str = "definition user {}\ndefinition group {\n    relation member: user\n}\ndefinition document {\n    relation viewer: user\n}\n";

    async fn setup() -> (tempfile::TempDir, Arc<AppState>) {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(
            AppState::open(ServerSettings::for_data_dir(dir.path()))
                .await
                .unwrap(),
        );
        let batch = WriteBatch::new().put_schema(SchemaVersionRecord {
            version: 1,
            text: SCHEMA.into(),
            comment: String::new(),
            author: String::new(),
        });
        state
            .committer
            .propose(&Tenant::default_tenant(), batch)
            .await
            .unwrap();
        (dir, state)
    }

    /// Writes TOUCHes (or DELETEs for `-tuple`) in one request; its zookie.
    async fn write(state: &Arc<AppState>, tuples: &[&str]) -> pb::Zookie {
        use pb::relationship_update::Operation;
        let updates = tuples
            .iter()
            .map(|t| {
                let (op, t) = match t.strip_prefix('-') {
                    Some(t) => (Operation::Delete, t),
                    None => (Operation::Touch, *t),
                };
                pb::RelationshipUpdate {
                    operation: op as i32,
                    relationship: Some(tuple_to_pb(&Tuple::parse(t).unwrap())),
                }
            })
            .collect();
        RelationshipApi::new(state.clone())
            .write_relationships(Request::new(pb::WriteRelationshipsRequest {
                updates,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .written_at
            .unwrap()
    }

    fn fast() -> WatchTiming {
        WatchTiming {
            checkpoint_interval: Duration::from_millis(200),
            slow_consumer_grace: Duration::from_millis(200),
        }
    }

    async fn start(
        state: &Arc<AppState>,
        from: Option<pb::Zookie>,
        types: &[&str],
    ) -> Result<<WatchApi as pb::watch_service_server::WatchService>::WatchStream, Status> {
        WatchApi::new(state.clone())
            .with_timing(fast())
            .watch(Request::new(pb::WatchRequest {
                tenant: String::new(),
                optional_start: from,
                optional_resource_types: types.iter().map(|s| s.to_string()).collect(),
            }))
            .await
            .map(Response::into_inner)
    }

    /// The next response that carries changes (skipping checkpoints).
    async fn next_changes(
        stream: &mut <WatchApi as pb::watch_service_server::WatchService>::WatchStream,
    ) -> pb::WatchResponse {
        loop {
            let r = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("a response within 10s")
                .expect("the stream is open")
                .expect("not an error");
            if !r.checkpoint {
                return r;
            }
        }
    }

    fn summary(r: &pb::WatchResponse) -> Vec<(i32, String, String)> {
        r.changes
            .iter()
            .map(|c| {
                let t = crate::api::convert::tuple_from_pb(c.relationship.as_ref().unwrap(), "r")
                    .unwrap();
                (c.operation, t.to_string(), c.event_id.clone())
            })
            .collect()
    }

    #[tokio::test]
    async fn watch_from_a_zookie_yields_later_writes_in_order_and_resumes() {
        use pb::relationship_change::Operation as Op;
        let (_dir, state) = setup().await;
        let z0 = write(&state, &["document:a#viewer@user:alice"]).await;
        let z1 = write(
            &state,
            &["document:b#viewer@user:bob", "group:eng#member@user:bob"],
        )
        .await;
        let z2 = write(&state, &["-document:a#viewer@user:alice"]).await;
        let r1 = state.zookies.decode(&z1.token).unwrap().0;
        let r2 = state.zookies.decode(&z2.token).unwrap().0;

        let mut stream = start(&state, Some(z0.clone()), &[]).await.unwrap();
        let first = next_changes(&mut stream).await;
        assert_eq!(
            summary(&first),
            vec![
                (
                    Op::Touch as i32,
                    "document:b#viewer@user:bob".to_string(),
                    format!("{r1}.0")
                ),
                (
                    Op::Touch as i32,
                    "group:eng#member@user:bob".to_string(),
                    format!("{r1}.1")
                ),
            ]
        );
        assert_eq!(first.changes_through.as_ref().unwrap().token, z1.token);
        let second = next_changes(&mut stream).await;
        assert_eq!(
            summary(&second),
            vec![(
                Op::Delete as i32,
                "document:a#viewer@user:alice".to_string(),
                format!("{r2}.0")
            )]
        );
        assert_eq!(second.changes_through.as_ref().unwrap().token, z2.token);
        // A live write arrives on the open stream.
        let z3 = write(&state, &["document:c#viewer@user:carol"]).await;
        let third = next_changes(&mut stream).await;
        assert_eq!(third.changes_through.as_ref().unwrap().token, z3.token);
        assert_eq!(third.changes.len(), 1);
        drop(stream);

        // Resuming from z1 yields only what came after it: no repeats.
        let mut resumed = start(&state, Some(z1), &[]).await.unwrap();
        let a = next_changes(&mut resumed).await;
        assert_eq!(a.changes_through.as_ref().unwrap().token, z2.token);
        let b = next_changes(&mut resumed).await;
        assert_eq!(b.changes_through.as_ref().unwrap().token, z3.token);

        // A type filter keeps event ids stable and drops other types.
        let mut groups = start(&state, Some(z0), &["group"]).await.unwrap();
        let g = next_changes(&mut groups).await;
        assert_eq!(
            summary(&g),
            vec![(
                Op::Touch as i32,
                "group:eng#member@user:bob".to_string(),
                format!("{r1}.1")
            )]
        );
        write(&state, &["group:ops#member@user:dan"]).await;
        let g2 = next_changes(&mut groups).await;
        assert_eq!(summary(&g2)[0].1, "group:ops#member@user:dan");
    }

    #[tokio::test]
    async fn bad_start_zookies_are_invalid_argument() {
        let (_dir, state) = setup().await;
        for token in ["garbage!", "AAAA"] {
            let err = start(
                &state,
                Some(pb::Zookie {
                    token: token.into(),
                }),
                &[],
            )
            .await
            .err()
            .unwrap();
            assert_eq!(err.code(), Code::InvalidArgument, "{err}");
            assert!(err.message().contains("optional_start"), "{err}");
        }
        let foreign = crate::server::zookie::ZookieCodec::new(12345).encode(Revision(1));
        let err = start(&state, Some(pb::Zookie { token: foreign }), &[])
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        // A start this node has not reached waits (bounded), then says so.
        let future = zookie_to_pb(
            Revision(state.store.applied_revision().0 + 100),
            &state.zookies,
        );
        let err = start(&state, Some(future), &[]).await.err().unwrap();
        assert_eq!(err.code(), Code::Unavailable, "{err}");
        assert!(err.message().contains("optional_start"), "{err}");
        let err = start(&state, None, &["Bad Type"]).await.err().unwrap();
        assert!(
            err.message().contains("optional_resource_types[0]"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_idle_stream_gets_checkpoints() {
        let (_dir, state) = setup().await;
        let z = write(&state, &["document:a#viewer@user:alice"]).await;
        let mut stream = start(&state, None, &[]).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(r.checkpoint);
        assert!(r.changes.is_empty());
        assert_eq!(r.changes_through.unwrap().token, z.token);
        // And again, periodically.
        let again = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(again.checkpoint);
    }

    #[tokio::test]
    async fn a_start_older_than_retention_fails_precondition() {
        let (_dir, state) = setup().await;
        let z0 = write(&state, &["document:a#viewer@user:alice"]).await;
        write(&state, &["document:b#viewer@user:alice"]).await;
        let z2 = write(&state, &["document:c#viewer@user:alice"]).await;
        state
            .store
            .gc(state.zookies.decode(&z2.token).unwrap())
            .unwrap();
        let err = start(&state, Some(z0), &[]).await.err().unwrap();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert!(err.message().contains("retention"), "{err}");
    }

    #[tokio::test]
    async fn a_consumer_that_does_not_read_is_disconnected_not_waited_for() {
        let (_dir, state) = setup().await;
        let strict = WatchTiming {
            checkpoint_interval: Duration::from_secs(60),
            slow_consumer_grace: Duration::ZERO,
        };
        let mut stream = WatchApi::new(state.clone())
            .with_timing(strict)
            .watch(Request::new(pb::WatchRequest::default()))
            .await
            .unwrap()
            .into_inner();
        // Far more revisions than the buffer holds; the writes never block.
        let writes = async {
            for i in 0..(WATCH_BUFFER + 20) {
                write(&state, &[&format!("document:d{i}#viewer@user:alice")]).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), writes)
            .await
            .expect("writes are not slowed by the watcher");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut received = 0;
        let drain = async {
            loop {
                match stream.next().await {
                    Some(Ok(r)) => received += usize::from(!r.checkpoint),
                    Some(Err(status)) => break status,
                    None => panic!("the stream ended without a status"),
                }
            }
        };
        let status = tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .expect("the stream ends");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
        assert!(status.message().contains("too slow"), "{status}");
        assert!(received <= WATCH_BUFFER, "{received}");
        assert!(received > 0);
    }
}
