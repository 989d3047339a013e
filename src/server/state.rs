//! Shared server state: the store, the commit path, tenants, zookies,
//! consistency resolution and the compiled engine for each schema version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use verdict_storage::{RelationStore, Revision, RocksStore, StoredSchema, Tenant};

use super::config::ServerSettings;
use super::consistency::Consistency;
use super::error::{NodeError, ServerError};
use super::raft_commit::RaftCommitter;
use super::tenants::TenantRegistry;
use super::zookie::ZookieCodec;
use crate::engine::{DecisionCache, Engine, EngineConfig, GroupIndex};
use crate::schema::{self, SchemaLimits};

/// The engine for one schema version of one tenant.
#[derive(Debug)]
pub struct SchemaEngine {
    /// The compiled engine.
    pub engine: Engine,
    /// The schema version number.
    pub version: u64,
    /// The revision at which this version became active.
    pub active_since: Revision,
    /// The schema text.
    pub text: String,
}

/// Everything the services share.
#[derive(Debug)]
pub struct AppState {
    /// The tuple store.
    pub store: Arc<RocksStore>,
    /// The write path (Raft).
    pub committer: RaftCommitter,
    /// Which tenants exist (changed only by the Raft state machine).
    pub tenants: Arc<TenantRegistry>,
    /// Token codec for this cluster.
    pub zookies: ZookieCodec,
    /// Shared decision cache.
    pub cache: Arc<DecisionCache>,
    /// The group index (`--group-index on`), maintained by the state machine.
    pub group_index: Option<Arc<GroupIndex>>,
    /// Resolved settings.
    pub settings: ServerSettings,
    /// Tenant API keys.
    pub keys: Arc<super::keys::KeyStore>,
    /// Metrics, rate budgets and the decision log.
    pub ops: Arc<super::ops::OpsState>,
    engines: Mutex<HashMap<(String, u64), Arc<SchemaEngine>>>,
    /// The revision minimize_latency reads share.
    shared_read: super::shared_read::SharedRead,
}

impl AppState {
    /// Opens (creating if needed) a data directory: the RocksDB store in
    /// `store/`, the tenant registry, the cluster id and the Raft node in
    /// `raft/` (initialized as a one-member cluster on first start unless
    /// the cluster flags say otherwise).
    ///
    /// # Errors
    /// The directory or store cannot be opened, or Raft cannot start.
    pub async fn open(settings: ServerSettings) -> Result<AppState, ServerError> {
        let dir = settings.data_dir.clone();
        let err = |message: String| ServerError::DataDir {
            path: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let cluster = super::cluster::cluster_id(&dir, &settings.cluster)
            .await
            .map_err(err)?;
        // The Raft log (fsynced per `sync_writes`) is the durability source:
        // the store replays it after a crash, so it writes without fsync.
        let options = verdict_storage::RocksOptions {
            sync_writes: false,
            ..verdict_storage::RocksOptions::default()
        };
        let store =
            Arc::new(RocksStore::open(dir.join("store"), options).map_err(|e| err(e.to_string()))?);
        let tenants = Arc::new(
            TenantRegistry::open(dir.join("tenants.json")).map_err(|e| err(e.to_string()))?,
        );
        let keys = Arc::new(
            super::keys::KeyStore::open(dir.join("keys.json")).map_err(|e| err(e.to_string()))?,
        );
        let ops = super::ops::OpsState::open(&settings).map_err(err)?;
        let committer = RaftCommitter::start(
            &dir.join("raft"),
            settings.sync_writes,
            store.clone(),
            tenants.clone(),
            keys.clone(),
            &settings.cluster,
            cluster,
        )
        .await
        .map_err(err)?
        .with_group_commit(settings.group_commit);
        let mut state = AppState::new(store, tenants, committer, settings);
        state.keys = keys;
        state.ops = Arc::new(ops);
        Ok(state)
    }

    /// Builds the state over an open store and a started committer.
    pub fn new(
        store: Arc<RocksStore>,
        tenants: Arc<TenantRegistry>,
        committer: RaftCommitter,
        settings: ServerSettings,
    ) -> Self {
        let cluster_id = committer.cluster_id();
        let cache = Arc::new(DecisionCache::new(settings.cache_bytes).with_write_log());
        committer.observe(cache.clone());
        let group_index = settings.group_index.then(|| {
            let index = Arc::new(GroupIndex::new());
            let sync = Arc::new(super::group_index_sync::GroupIndexSync::new(
                index.clone(),
                store.clone(),
                tenants.clone(),
            ));
            committer.state_machine().set_observer(sync.clone());
            sync.rebuild_in_background();
            index
        });
        AppState {
            group_index,
            committer,
            store,
            tenants,
            zookies: ZookieCodec::new(cluster_id),
            cache,
            keys: Arc::new(super::keys::KeyStore::in_memory()),
            ops: Arc::new(super::ops::OpsState::new(&settings)),
            shared_read: super::shared_read::SharedRead::new(
                Duration::from_secs(1),
                settings.max_staleness,
            ),
            settings,
            engines: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant a request names (`""` = default), if the caller's key
    /// may use it and its rate budget allows.
    ///
    /// # Errors
    /// Invalid or unknown tenant, a key of another tenant
    /// (PERMISSION_DENIED), a spent rate budget (RESOURCE_EXHAUSTED).
    pub fn tenant(&self, name: &str) -> Result<Tenant, NodeError> {
        self.ops.authorize(name)?;
        let tenant = self.tenants.get(name, "tenant")?;
        self.ops.charge(tenant.as_str())?;
        Ok(tenant)
    }

    /// The zookie token for `revision` (each front door wraps it in its
    /// own message type).
    pub fn zookie(&self, revision: Revision) -> String {
        self.zookies.encode(revision)
    }

    /// Waits (bounded by `max_wait`) until `revision` is applied.
    async fn wait_for(&self, revision: Revision, field: &'static str) -> Result<(), NodeError> {
        if self.store.applied_revision() >= revision {
            return Ok(());
        }
        let mut applied = self.committer.subscribe();
        let reached = tokio::time::timeout(self.settings.max_wait, async {
            applied.wait_for(|r| *r >= revision).await.is_ok()
        })
        .await;
        match reached {
            Ok(true) => Ok(()),
            _ => Err(NodeError::RevisionNotApplied {
                field,
                wanted: revision,
                applied: self.store.applied_revision(),
                waited: self.settings.max_wait,
            }),
        }
    }

    /// The revision a read evaluates at, for the requested consistency.
    ///
    /// # Errors
    /// Revisions not applied within the wait bound (UNAVAILABLE),
    /// garbage-collected revisions (FAILED_PRECONDITION).
    pub async fn read_revision(&self, consistency: Consistency) -> Result<Revision, NodeError> {
        match consistency {
            Consistency::MinimizeLatency => {
                let now = Instant::now();
                if let Some(shared) = self.shared_read.current(now) {
                    return Ok(shared);
                }
                let proven_at = self
                    .committer
                    .fresh_since()
                    .filter(|at| now.saturating_duration_since(*at) < self.settings.max_staleness);
                if let Some(proven_at) = proven_at {
                    let applied = self.store.applied_revision();
                    return Ok(self.shared_read.renew(applied, proven_at, now));
                }
                // Possibly staler than promised: catch up to the leader first.
                let index = self.committer.read_index().await?;
                self.wait_for(index, "consistency.minimize_latency").await?;
                let applied = self.store.applied_revision();
                Ok(self.shared_read.renew(applied, now, Instant::now()))
            }
            Consistency::FullyConsistent => {
                let asked = Instant::now();
                let index = self.committer.read_index().await?;
                self.wait_for(index, "consistency.fully_consistent").await?;
                let applied = self.store.applied_revision();
                // The answer is exactly the applied revision (it is newer
                // than any shared one); it also renews the shared one.
                self.shared_read.renew(applied, asked, Instant::now());
                Ok(applied)
            }
            Consistency::AtLeastAsFresh(wanted) => {
                // Any snapshot at or after `wanted` is correct; the shared
                // one keeps requests on one revision (Zanzibar).
                if let Some(shared) = self.shared_read.current(Instant::now()) {
                    if shared >= wanted {
                        return Ok(shared);
                    }
                }
                self.wait_for(wanted, "consistency.at_least_as_fresh")
                    .await?;
                // Waiting proves nothing about staleness (the node may be
                // far behind the leader): the answer raises the shared
                // revision but does not renew it.
                let revision = self.store.applied_revision().max(wanted);
                self.shared_read.raise(revision);
                Ok(revision)
            }
            Consistency::AtExactSnapshot(wanted) => {
                self.wait_for(wanted, "consistency.at_exact_snapshot")
                    .await?;
                let floor = self.store.gc_floor();
                if wanted < floor {
                    return Err(NodeError::RevisionCompacted {
                        field: "consistency.at_exact_snapshot",
                        wanted,
                        floor,
                    });
                }
                Ok(wanted)
            }
        }
    }

    /// How many revisions minimize_latency reads currently trail the
    /// applied revision (the staleness window at work).
    pub fn read_lag(&self) -> u64 {
        match self.shared_read.revision().0 {
            0 => 0,
            shared => self.store.applied_revision().0.saturating_sub(shared),
        }
    }

    /// The engine for the schema active for `tenant` at `revision`.
    ///
    /// # Errors
    /// No schema at that revision, or a storage failure.
    pub fn engine_at(
        &self,
        tenant: &Tenant,
        revision: Revision,
    ) -> Result<Arc<SchemaEngine>, NodeError> {
        let stored = self
            .store
            .schema_at_shared(tenant, revision)?
            .ok_or_else(|| NodeError::NoSchema(tenant.as_str().to_string()))?;
        let key = (tenant.as_str().to_string(), stored.revision.0);
        if let Some(found) = self.engines.lock().get(&key).cloned() {
            return Ok(found);
        }
        let stored = StoredSchema::clone(&stored);
        let compiled = schema::compile(&stored.record.text, &SchemaLimits::default())
            .map_err(|e| NodeError::Internal(format!("stored schema does not compile: {e}")))?;
        let engine = Engine::new(
            Arc::new(compiled.schema),
            EngineConfig {
                max_depth: self.settings.max_depth,
            },
        )?
        .with_cache(self.cache.clone());
        let engine = match &self.group_index {
            Some(index) => engine.with_group_index(index.clone(), stored.revision),
            None => engine,
        };
        let entry = Arc::new(SchemaEngine {
            engine,
            version: stored.record.version,
            active_since: stored.revision,
            text: stored.record.text,
        });
        self.engines.lock().insert(key, entry.clone());
        Ok(entry)
    }
}
