//! The state machine adapter: applies committed entries to the tuple store
//! at revision = log index, idempotently, and builds/installs snapshots.
//!
//! Replays are no-ops: an entry at or below the store's applied revision is
//! skipped, so after a restart openraft may re-apply from the last snapshot
//! without changing anything. The store may therefore write without fsync:
//! the Raft log is the durability source. Only the snapshot (and its meta)
//! is persisted by this module; if the store is found behind the persisted
//! snapshot on open (a power loss), it is restored from it.

use std::fmt::Debug;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use tokio::sync::watch;
use verdict_storage::{
    ApplyOutcome, ApplyStatus, Op, RelationStore, Revision, RocksStore, SchemaVersionRecord,
    Tenant, Tuple, TupleFilter, TupleReader, WriteBatch,
};

use crate::command::{Command, GroupedWrite, Rejection, Request, Response};
use crate::keys::{self, KeySet, MemKeySet};
use crate::snapshot::{self, SnapshotError};
use crate::{io_err, Node, NodeId, StorageError, TypeConfig};

/// The replicated set of tenant names, persisted by the implementor
/// (durably, before returning).
pub trait TenantSet: Send + Sync + Debug + 'static {
    /// Whether `name` exists.
    fn contains(&self, name: &str) -> bool;
    /// Adds `name`; `Ok(false)` when it already existed.
    ///
    /// # Errors
    /// It could not be persisted.
    fn insert(&self, name: &str) -> Result<bool, String>;
    /// Removes `name`; `Ok(false)` when it did not exist.
    ///
    /// # Errors
    /// It could not be persisted.
    fn remove(&self, name: &str) -> Result<bool, String>;
    /// Every name, sorted.
    fn list(&self) -> Vec<String>;
    /// Replaces the whole set (snapshot install).
    ///
    /// # Errors
    /// It could not be persisted.
    fn replace(&self, names: Vec<String>) -> Result<(), String>;
}

/// A [`TenantSet`] kept in memory only (tests, simulations).
#[derive(Debug, Default)]
pub struct MemTenantSet(std::sync::Mutex<std::collections::BTreeSet<String>>);

impl MemTenantSet {
    fn names(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::BTreeSet<String>>, String> {
        self.0
            .lock()
            .map_err(|_| "tenant set lock poisoned".to_string())
    }
}

impl TenantSet for MemTenantSet {
    fn contains(&self, name: &str) -> bool {
        self.names().is_ok_and(|n| n.contains(name))
    }
    fn insert(&self, name: &str) -> Result<bool, String> {
        Ok(self.names()?.insert(name.into()))
    }
    fn remove(&self, name: &str) -> Result<bool, String> {
        Ok(self.names()?.remove(name))
    }
    fn list(&self) -> Vec<String> {
        self.names()
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }
    fn replace(&self, names: Vec<String>) -> Result<(), String> {
        *self.names()? = names.into_iter().collect();
        Ok(())
    }
}

/// Told about every change before the state machine applies it (on every
/// replica), so a cache of answers knows which revisions changed what.
pub trait ApplyObserver: Send + Sync + std::fmt::Debug {
    /// `batch` is about to be applied to `tenant` at `revision`.
    fn before_write(&self, tenant: &Tenant, revision: Revision, batch: &WriteBatch);
    /// `tuples` are about to be imported into `tenant` at `revision`.
    fn before_import(&self, tenant: &Tenant, revision: Revision, tuples: &[Tuple]);
    /// The import announced to `before_import` at `revision` was rejected
    /// (a malformed tuple): nothing changed, the revision is consumed.
    fn import_rejected(&self, _tenant: &Tenant, _revision: Revision) {}
    /// A snapshot is about to replace the state up to `revision`: nothing
    /// learnt about earlier revisions may be reused past it.
    fn before_snapshot(&self, revision: Revision);
    /// The entry at `revision` (a command of `tenant`, if any) was applied
    /// (or rejected, consuming the revision); called for every entry after
    /// the store reflects it, in log order, except replays on start.
    fn after_apply(&self, _tenant: Option<&Tenant>, _revision: Revision) {}
    /// A snapshot up to `revision` was installed.
    fn after_snapshot(&self, _revision: Revision) {}
}

#[derive(Debug, Default, Clone)]
struct Applied {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<RocksStore>,
    tenants: Arc<dyn TenantSet>,
    keys: Arc<dyn KeySet>,
    dir: PathBuf,
    applied_tx: watch::Sender<Revision>,
    /// Held while applying entries and while dumping a snapshot.
    state: Mutex<Applied>,
    snapshots_built: AtomicU64,
    snapshots_installed: AtomicU64,
    snapshot_seq: AtomicU64,
    observers: std::sync::RwLock<Vec<Arc<dyn ApplyObserver>>>,
}

/// The openraft state machine over a [`RocksStore`], a [`TenantSet`] and
/// a [`KeySet`].
/// Cheap to clone (it is also its own snapshot builder).
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

fn sm_err(e: &(dyn std::error::Error + 'static)) -> StorageError {
    io_err(StorageIOError::write_state_machine, e)
}

fn snap_err(e: SnapshotError) -> StorageError {
    io_err(StorageIOError::write_state_machine, &e)
}

fn msg_err(m: String) -> StorageError {
    sm_err(&std::io::Error::other(m))
}

impl StateMachine {
    /// A state machine over `store` and `tenants`, keeping its snapshot in
    /// directory `dir`. Restores the store from the local snapshot if the
    /// store is behind it.
    ///
    /// # Errors
    /// The directory or the persisted snapshot cannot be read, or the
    /// restore fails.
    pub fn open(
        store: Arc<RocksStore>,
        tenants: Arc<dyn TenantSet>,
        dir: PathBuf,
    ) -> Result<StateMachine, StorageError> {
        StateMachine::open_with_keys(store, tenants, Arc::new(MemKeySet::default()), dir)
    }

    /// [`StateMachine::open`], applying key commands to `keys`.
    ///
    /// # Errors
    /// As [`StateMachine::open`].
    pub fn open_with_keys(
        store: Arc<RocksStore>,
        tenants: Arc<dyn TenantSet>,
        keys: Arc<dyn KeySet>,
        dir: PathBuf,
    ) -> Result<StateMachine, StorageError> {
        std::fs::create_dir_all(&dir).map_err(|e| sm_err(&e))?;
        let (applied_tx, _) = watch::channel(store.applied_revision());
        let sm = StateMachine {
            inner: Arc::new(Inner {
                store,
                tenants,
                keys,
                dir,
                applied_tx,
                state: Mutex::new(Applied::default()),
                snapshots_built: AtomicU64::new(0),
                snapshots_installed: AtomicU64::new(0),
                snapshot_seq: AtomicU64::new(0),
                observers: std::sync::RwLock::new(Vec::new()),
            }),
        };
        if let Some(current) = sm.read_current()? {
            let index = current.meta.last_log_id.map_or(0, |l| l.index);
            if sm.inner.store.applied_revision().0 < index {
                tracing::warn!(
                    index,
                    applied = sm.inner.store.applied_revision().0,
                    "store is behind the local snapshot; restoring it"
                );
                sm.restore(current.snapshot.get_ref())?;
            }
            let mut st = sm.lock()?;
            st.last = current.meta.last_log_id;
            st.membership = current.meta.last_membership.clone();
        }
        Ok(sm)
    }

    /// Follows the applied revision.
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.inner.applied_tx.subscribe()
    }

    /// The store this machine applies to.
    pub fn store(&self) -> &Arc<RocksStore> {
        &self.inner.store
    }

    /// Snapshots built and installed by this node since it started.
    pub fn snapshot_counts(&self) -> (u64, u64) {
        (
            self.inner.snapshots_built.load(Ordering::Relaxed),
            self.inner.snapshots_installed.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Applied>, StorageError> {
        self.inner
            .state
            .lock()
            .map_err(|_| msg_err("state machine lock poisoned".into()))
    }

    fn read_current(&self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let (data, meta) = snapshot::paths(&self.inner.dir);
        let meta_bytes = match std::fs::read(&meta) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(sm_err(&e)),
        };
        let meta: SnapshotMeta<NodeId, Node> =
            serde_json::from_slice(&meta_bytes).map_err(|e| sm_err(&e))?;
        let data = std::fs::read(&data).map_err(|e| sm_err(&e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }

    fn persist(&self, meta: &SnapshotMeta<NodeId, Node>, data: &[u8]) -> Result<(), StorageError> {
        let (data_path, meta_path) = snapshot::paths(&self.inner.dir);
        snapshot::write_atomic(&data_path, data).map_err(snap_err)?;
        let meta = serde_json::to_vec(meta).map_err(|e| sm_err(&e))?;
        snapshot::write_atomic(&meta_path, &meta).map_err(snap_err)
    }

    /// Replaces tenants and store with the snapshot `data`.
    fn restore(&self, data: &[u8]) -> Result<Revision, StorageError> {
        let decoded = snapshot::decode(data).map_err(snap_err)?;
        self.inner
            .tenants
            .replace(decoded.tenants.clone())
            .map_err(msg_err)?;
        // A VSNAP1 snapshot predates replicated keys: each node's keys.json
        // was its only record of the keys it had created, so it is kept
        // as is rather than emptied (emptying would lock out every key of
        // a node upgraded from a per-node-keys version). Later key commands
        // and the next VSNAP2 snapshot then carry the replicated set.
        if let Some(keys) = &decoded.keys {
            self.inner.keys.replace(keys.clone()).map_err(msg_err)?;
        }
        let revision = self
            .inner
            .store
            .import_raw(&mut decoded.pairs())
            .map_err(|e| sm_err(&e))?;
        self.inner.applied_tx.send_replace(revision);
        Ok(revision)
    }

    /// Tells `observer` (besides those added before) about every later
    /// change; returns whether it was added.
    pub fn set_observer(&self, observer: Arc<dyn ApplyObserver>) -> bool {
        match self.inner.observers.write() {
            Ok(mut list) => {
                list.push(observer);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether any observer is registered.
    fn has_observers(&self) -> bool {
        self.inner.observers.read().is_ok_and(|l| !l.is_empty())
    }

    /// Calls `f` on every observer, in the order they were added.
    fn each_observer(&self, f: impl Fn(&dyn ApplyObserver)) {
        if let Ok(list) = self.inner.observers.read() {
            for o in list.iter() {
                f(o.as_ref());
            }
        }
    }

    fn mark(&self, revision: Revision) -> Result<(), StorageError> {
        self.inner
            .store
            .mark_applied(revision)
            .map_err(|e| sm_err(&e))
    }

    fn outcome(
        &self,
        revision: Revision,
        result: verdict_storage::Result<ApplyOutcome>,
    ) -> Result<Response, StorageError> {
        match result {
            Ok(o) => Ok(Response::Applied(o)),
            Err(e) if e.is_rejection() => {
                // The store consumed the revision; make sure of it.
                self.mark(revision)?;
                Ok(Response::Rejected {
                    revision,
                    rejection: Rejection::from_storage(&e),
                })
            }
            Err(e) => Err(sm_err(&e)),
        }
    }

    fn reject(&self, revision: Revision, rejection: Rejection) -> Result<Response, StorageError> {
        self.mark(revision)?;
        Ok(Response::Rejected {
            revision,
            rejection,
        })
    }

    /// The response of a key or counter command: done, or refused.
    fn key_outcome(
        &self,
        revision: Revision,
        done: Result<(), Rejection>,
    ) -> Result<Response, StorageError> {
        match done {
            Ok(()) => {
                self.mark(revision)?;
                Ok(Response::Done { revision })
            }
            Err(rejection) => self.reject(revision, rejection),
        }
    }

    fn apply_command(&self, revision: Revision, req: Request) -> Result<Response, StorageError> {
        let store = &self.inner.store;
        let tenants = &self.inner.tenants;
        match req.command {
            Command::Write {
                tenant,
                batch,
                expected_schema_since,
                unchanged_since,
            } => {
                if !tenants.contains(tenant.as_str()) {
                    return self
                        .reject(revision, Rejection::TenantNotFound(tenant.as_str().into()));
                }
                if let Some(since) = unchanged_since {
                    let later = store
                        .changes_since(&tenant, since, 1)
                        .map_err(|e| sm_err(&e))?;
                    if !later.is_empty() {
                        return self.reject(
                            revision,
                            Rejection::ChangedSincePlan {
                                tenant: tenant.as_str().into(),
                                since: since.0,
                            },
                        );
                    }
                }
                if let Some(since) = expected_schema_since {
                    let active = store
                        .schema_at(&tenant, store.applied_revision())
                        .map_err(|e| sm_err(&e))?
                        .map(|s| s.revision);
                    if active != Some(since) {
                        return self.reject(
                            revision,
                            Rejection::FailedPrecondition(
                                "the tenant's schema changed while this write was being validated; retry the write".into(),
                            ),
                        );
                    }
                }
                if self.has_observers() {
                    let heard = answer_changing(store, &tenant, &batch);
                    self.each_observer(|o| o.before_write(&tenant, revision, &heard));
                }
                self.outcome(revision, store.apply(&tenant, revision, &batch))
            }
            Command::Import { tenant, tuples } => {
                if !tenants.contains(tenant.as_str()) {
                    return self
                        .reject(revision, Rejection::TenantNotFound(tenant.as_str().into()));
                }
                self.each_observer(|o| o.before_import(&tenant, revision, &tuples));
                // Entries read back from the log own their tuples alone.
                let tuples = Arc::try_unwrap(tuples).unwrap_or_else(|shared| (*shared).clone());
                let result = store.bulk_import(&tenant, revision, &mut tuples.into_iter());
                if result.as_ref().is_err_and(|e| e.is_rejection()) {
                    self.each_observer(|o| o.import_rejected(&tenant, revision));
                }
                self.outcome(revision, result)
            }
            Command::CreateTenant { name } => {
                if let Err(e) = Tenant::new(&name) {
                    return self.reject(
                        revision,
                        Rejection::InvalidArgument {
                            field: "name".into(),
                            reason: e.to_string(),
                        },
                    );
                }
                if !tenants.insert(&name).map_err(msg_err)? {
                    return self.reject(
                        revision,
                        Rejection::AlreadyExists(format!("tenant `{name}` already exists")),
                    );
                }
                self.mark(revision)?;
                Ok(Response::Done { revision })
            }
            Command::DeleteTenant { tenant } => {
                if tenant.as_str() == Tenant::DEFAULT_NAME {
                    return self.reject(
                        revision,
                        Rejection::FailedPrecondition(
                            "the default tenant cannot be deleted".into(),
                        ),
                    );
                }
                // Registry first: a crash before the store write replays the
                // delete; the other order could skip the registry on replay.
                let removed = tenants.remove(tenant.as_str()).map_err(msg_err)?;
                // Its keys go with it, on every replica (also before the
                // store write, for the same reason).
                self.inner
                    .keys
                    .remove_tenant(tenant.as_str())
                    .map_err(msg_err)?;
                // And its relationship counters.
                store.delete_counters(&tenant).map_err(|e| sm_err(&e))?;
                // The tuples are deleted even when the registry no longer
                // lists the tenant (a replay after such a crash, or a
                // snapshot taken in between), so every replica ends with none.
                // The schema ends with a tombstone version, so a tenant later
                // created under the same name starts with no schema.
                let batch = WriteBatch::new().delete_by_filter(TupleFilter::default(), None);
                let batch = match store.schema_at(&tenant, store.applied_revision()) {
                    Ok(Some(current)) => batch.put_schema(SchemaVersionRecord::tombstone(
                        current.record.version + 1,
                        "tenant deleted",
                    )),
                    Ok(None) => batch,
                    Err(e) => return self.outcome(revision, Err(e)),
                };
                self.each_observer(|o| o.before_write(&tenant, revision, &batch));
                let outcome = self.outcome(revision, store.apply(&tenant, revision, &batch))?;
                if removed {
                    Ok(outcome)
                } else {
                    self.reject(revision, Rejection::TenantNotFound(tenant.as_str().into()))
                }
            }
            Command::CreateKey { record } => {
                let done = keys::apply_create(self.inner.keys.as_ref(), tenants.as_ref(), record);
                self.key_outcome(revision, done.map_err(msg_err)?)
            }
            Command::RevokeKey { id } => {
                let done = keys::apply_revoke(self.inner.keys.as_ref(), &id);
                self.key_outcome(revision, done.map_err(msg_err)?)
            }
            Command::WriteGroup { tenant, writes } => {
                if !tenants.contains(tenant.as_str()) {
                    return self
                        .reject(revision, Rejection::TenantNotFound(tenant.as_str().into()));
                }
                self.apply_group(revision, &tenant, &writes)
            }
            Command::RegisterCounter {
                tenant,
                name,
                filter,
            } => {
                if !tenants.contains(tenant.as_str()) {
                    return self
                        .reject(revision, Rejection::TenantNotFound(tenant.as_str().into()));
                }
                let done = if store
                    .put_counter(&tenant, &name, &filter)
                    .map_err(|e| sm_err(&e))?
                {
                    Ok(())
                } else {
                    Err(Rejection::AlreadyExists(format!(
                        "counter `{name}` is already registered"
                    )))
                };
                self.key_outcome(revision, done)
            }
            Command::UnregisterCounter { tenant, name } => {
                if !tenants.contains(tenant.as_str()) {
                    return self
                        .reject(revision, Rejection::TenantNotFound(tenant.as_str().into()));
                }
                let done = if store
                    .delete_counter(&tenant, &name)
                    .map_err(|e| sm_err(&e))?
                {
                    Ok(())
                } else {
                    Err(Rejection::FailedPrecondition(format!(
                        "counter `{name}` is not registered"
                    )))
                };
                self.key_outcome(revision, done)
            }
        }
    }

    /// Applies the writes of a [`Command::WriteGroup`] (the tenant exists):
    /// those validated against a schema that is no longer active are
    /// refused here, the rest by the store one by one.
    fn apply_group(
        &self,
        revision: Revision,
        tenant: &Tenant,
        writes: &[GroupedWrite],
    ) -> Result<Response, StorageError> {
        let store = &self.inner.store;
        let active = if writes.iter().any(|w| w.expected_schema_since.is_some()) {
            store
                .schema_at(tenant, store.applied_revision())
                .map_err(|e| sm_err(&e))?
                .map(|s| s.revision)
        } else {
            None
        };
        let mut results: Vec<Option<Result<ApplyOutcome, Rejection>>> = Vec::new();
        let mut kept: Vec<&WriteBatch> = Vec::with_capacity(writes.len());
        for w in writes {
            match w.expected_schema_since {
                Some(since) if active != Some(since) => {
                    results.push(Some(Err(Rejection::FailedPrecondition(
                        "the tenant's schema changed while this write was being validated; retry the write".into(),
                    ))));
                }
                _ => {
                    results.push(None);
                    kept.push(&w.batch);
                }
            }
        }
        if self.has_observers() {
            // Every kept write's operations, refused ones included: telling
            // the cache about a change that did not happen only costs it
            // an entry.
            let merged = WriteBatch {
                ops: kept.iter().flat_map(|b| b.ops.iter().cloned()).collect(),
                preconditions: Vec::new(),
            };
            let heard = answer_changing(store, tenant, &merged);
            self.each_observer(|o| o.before_write(tenant, revision, &heard));
        }
        let group = store
            .apply_group(tenant, revision, &kept)
            .map_err(|e| sm_err(&e))?;
        let mut applied = group.results.into_iter();
        let results = results
            .into_iter()
            .map(|slot| match slot {
                Some(refused) => refused,
                None => match applied.next() {
                    Some(Ok(o)) => Ok(o),
                    Some(Err(e)) => Err(Rejection::from_storage(&e)),
                    None => Err(Rejection::InvalidArgument {
                        field: "updates".into(),
                        reason: "the store answered fewer results than writes".into(),
                    }),
                },
            })
            .collect();
        // The store marks the revision applied even when every write was
        // refused (and when none was kept, `apply_group` wrote the marker).
        Ok(Response::Group { revision, results })
    }

    fn apply_entry(
        &self,
        st: &mut Applied,
        entry: Entry<TypeConfig>,
    ) -> Result<Response, StorageError> {
        let revision = Revision(entry.log_id.index);
        let replay = revision <= self.inner.store.applied_revision();
        let tenant = match &entry.payload {
            EntryPayload::Normal(req) => match &req.command {
                Command::Write { tenant, .. }
                | Command::Import { tenant, .. }
                | Command::WriteGroup { tenant, .. }
                | Command::DeleteTenant { tenant }
                | Command::RegisterCounter { tenant, .. }
                | Command::UnregisterCounter { tenant, .. } => Some(tenant.clone()),
                Command::CreateTenant { .. }
                | Command::CreateKey { .. }
                | Command::RevokeKey { .. } => None,
            },
            _ => None,
        };
        let response = match entry.payload {
            EntryPayload::Blank => {
                self.mark(revision)?;
                Response::Done { revision }
            }
            EntryPayload::Membership(m) => {
                st.membership = StoredMembership::new(Some(entry.log_id), m);
                self.mark(revision)?;
                Response::Done { revision }
            }
            EntryPayload::Normal(_) if replay => Response::Applied(ApplyOutcome {
                revision,
                status: ApplyStatus::AlreadyApplied,
                changes: 0,
                delete_truncated: false,
            }),
            EntryPayload::Normal(req) => self.apply_command(revision, req)?,
        };
        if !replay {
            self.each_observer(|o| o.after_apply(tenant.as_ref(), revision));
        }
        st.last = Some(entry.log_id);
        self.inner
            .applied_tx
            .send_replace(self.inner.store.applied_revision());
        Ok(response)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, applied) = {
            let st = self.lock()?;
            let tenants = self.inner.tenants.list();
            let keys = self.inner.keys.all();
            let (data, _) =
                snapshot::encode(&self.inner.store, &tenants, &keys).map_err(snap_err)?;
            (data, st.clone())
        };
        let seq = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match applied.last {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last,
            last_membership: applied.membership,
            snapshot_id,
        };
        self.persist(&meta, &data)?;
        self.inner.snapshots_built.fetch_add(1, Ordering::Relaxed);
        tracing::info!(id = %meta.snapshot_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// `batch` without its TOUCHes of tuples already stored exactly so
/// (caveat and expiration included): they change no answer, so observers
/// (the decision cache) need not drop what depends on them — idempotent
/// re-syncs then keep caches warm. On a read error, the whole batch.
fn answer_changing<'b>(
    store: &RocksStore,
    tenant: &Tenant,
    batch: &'b WriteBatch,
) -> std::borrow::Cow<'b, WriteBatch> {
    use std::borrow::Cow;
    if !batch.ops.iter().any(|op| matches!(op, Op::Touch(_))) {
        return Cow::Borrowed(batch);
    }
    let Ok(reader) = store.snapshot(tenant, store.applied_revision()) else {
        return Cow::Borrowed(batch);
    };
    let mut ops = Vec::with_capacity(batch.ops.len());
    for op in &batch.ops {
        if let Op::Touch(t) = op {
            match reader.tuple(t) {
                Ok(Some(stored)) if stored == *t => continue,
                Ok(_) => {}
                Err(_) => return Cow::Borrowed(batch),
            }
        }
        ops.push(op.clone());
    }
    if ops.len() == batch.ops.len() {
        return Cow::Borrowed(batch);
    }
    Cow::Owned(WriteBatch {
        ops,
        preconditions: batch.preconditions.clone(),
    })
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError> {
        let st = self.lock()?;
        Ok((st.last, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Applying writes RocksDB: on the blocking pool, not an async worker.
        let this = self.clone();
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        tokio::task::spawn_blocking(move || {
            let mut st = this.lock()?;
            let mut out = Vec::with_capacity(entries.len());
            for entry in entries {
                out.push(this.apply_entry(&mut st, entry)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| {
            StorageError::from_io_error(
                openraft::ErrorSubject::StateMachine,
                openraft::ErrorVerb::Write,
                std::io::Error::other(e.to_string()),
            )
        })?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let mut st = self.lock()?;
        let installed = Revision(meta.last_log_id.map_or(0, |l| l.index));
        self.each_observer(|o| o.before_snapshot(installed));
        let revision = self.restore(&data)?;
        self.persist(meta, &data)?;
        st.last = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        self.inner
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
        self.each_observer(|o| o.after_snapshot(revision.max(installed)));
        tracing::info!(id = %meta.snapshot_id, revision = revision.0, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.read_current()
    }
}
