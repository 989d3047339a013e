//! The pre-Raft local commit path: `propose(tenant, batch) → revision`,
//! assigning the next revision locally. The server now commits through
//! [`super::raft_commit::RaftCommitter`] (same interface, revisions = Raft
//! log indexes); this stays as the reference for that interface.

use std::sync::Arc;

use tokio::sync::{watch, Mutex};
use verdict_storage::{
    ApplyOutcome, RelationStore, Revision, RocksStore, Tenant, Tuple, WriteBatch,
};

use crate::api::error::ApiError;
use crate::engine::DecisionCache;

/// Serialises writes and announces each applied revision.
#[derive(Debug)]
pub struct LocalCommitter {
    store: Arc<RocksStore>,
    lock: Mutex<()>,
    applied: watch::Sender<Revision>,
    /// Told what each batch may change before it is applied (so cached
    /// answers about other keys stay usable at the new revision).
    cache: Option<Arc<DecisionCache>>,
}

impl LocalCommitter {
    /// A committer over `store`.
    pub fn new(store: Arc<RocksStore>) -> Self {
        let (applied, _) = watch::channel(store.applied_revision());
        LocalCommitter {
            store,
            lock: Mutex::new(()),
            applied,
            cache: None,
        }
    }

    /// Announces every batch to `cache`'s write log before applying it.
    pub fn with_cache(mut self, cache: Arc<DecisionCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Follows the applied revision (for watch and waits).
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.applied.subscribe()
    }

    /// Commits `batch` for `tenant` at the next revision.
    ///
    /// # Errors
    /// The batch's rejection (nothing applied; the revision is consumed) or
    /// a storage failure.
    pub async fn propose(
        &self,
        tenant: &Tenant,
        batch: WriteBatch,
    ) -> Result<ApplyOutcome, ApiError> {
        let _turn = self.lock.lock().await;
        let store = self.store.clone();
        let tenant = tenant.clone();
        let cache = self.cache.clone();
        let result = tokio::task::spawn_blocking(move || {
            let revision = store.applied_revision().next();
            if let Some(c) = &cache {
                c.note_batch(tenant.as_str(), revision.0, &batch);
            }
            store.apply(&tenant, revision, &batch)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("commit task failed: {e}")))?;
        self.applied.send_replace(self.store.applied_revision());
        Ok(result?)
    }

    /// Like [`LocalCommitter::propose`], but only if the tenant's schema is
    /// still the version that became active at `schema_since` — the one the
    /// batch was validated against. Checked under the commit lock, so a
    /// schema write cannot slip between validation and commit.
    ///
    /// # Errors
    /// FAILED_PRECONDITION when the schema changed; otherwise as `propose`.
    pub async fn propose_validated(
        &self,
        tenant: &Tenant,
        batch: WriteBatch,
        schema_since: Revision,
    ) -> Result<ApplyOutcome, ApiError> {
        let _turn = self.lock.lock().await;
        let store = self.store.clone();
        let tenant = tenant.clone();
        let cache = self.cache.clone();
        let result = tokio::task::spawn_blocking(move || {
            let applied = store.applied_revision();
            let active = store.schema_at(&tenant, applied)?.map(|s| s.revision);
            if active != Some(schema_since) {
                return Err(ApiError::FailedPrecondition(
                    "the tenant's schema changed while this write was being validated; retry the write".into(),
                ));
            }
            if let Some(c) = &cache {
                c.note_batch(tenant.as_str(), applied.next().0, &batch);
            }
            Ok(store.apply(&tenant, applied.next(), &batch)?)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("commit task failed: {e}")))?;
        self.applied.send_replace(self.store.applied_revision());
        result
    }

    /// Builds the batch under the commit lock from the state it will be
    /// applied on (`plan` sees the store and the applied revision), then
    /// commits it at the next revision — so a precondition `plan` checks
    /// (schema version, orphaned relationships) cannot go stale.
    ///
    /// # Errors
    /// `plan`'s error (nothing applied, no revision consumed), the batch's
    /// rejection, or a storage failure.
    pub async fn propose_planned<T: Send + 'static>(
        &self,
        tenant: &Tenant,
        plan: impl FnOnce(&RocksStore, Revision) -> Result<(WriteBatch, T), ApiError> + Send + 'static,
    ) -> Result<(ApplyOutcome, T), ApiError> {
        let _turn = self.lock.lock().await;
        let store = self.store.clone();
        let tenant = tenant.clone();
        let result = tokio::task::spawn_blocking(move || {
            let applied = store.applied_revision();
            let (batch, extra) = plan(&store, applied)?;
            Ok((store.apply(&tenant, applied.next(), &batch)?, extra))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("commit task failed: {e}")))?;
        self.applied.send_replace(self.store.applied_revision());
        result
    }

    /// Loads `tuples` for `tenant` at the next revision (bulk import).
    ///
    /// # Errors
    /// A malformed tuple or a storage failure.
    pub async fn import(
        &self,
        tenant: &Tenant,
        tuples: Vec<Tuple>,
    ) -> Result<ApplyOutcome, ApiError> {
        let _turn = self.lock.lock().await;
        let store = self.store.clone();
        let tenant = tenant.clone();
        let cache = self.cache.clone();
        let result = tokio::task::spawn_blocking(move || {
            let revision = store.applied_revision().next();
            if let Some(c) = &cache {
                c.note_import(tenant.as_str(), revision.0, tuples.iter());
            }
            store.bulk_import(&tenant, revision, &mut tuples.into_iter())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("import task failed: {e}")))?;
        self.applied.send_replace(self.store.applied_revision());
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_storage::{RocksOptions, SchemaVersionRecord};

    fn schema(version: u64) -> WriteBatch {
        WriteBatch::new().put_schema(SchemaVersionRecord {
            version,
            text: "definition user {}".into(),
            comment: String::new(),
            author: String::new(),
        })
    }

    #[tokio::test]
    async fn a_schema_change_between_validation_and_commit_refuses_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let options = RocksOptions {
            sync_writes: false,
            ..RocksOptions::default()
        };
        let store = Arc::new(RocksStore::open(dir.path(), options).unwrap());
        let committer = LocalCommitter::new(store.clone());
        let tenant = Tenant::default_tenant();
        let v1 = committer
            .propose(&tenant, schema(1))
            .await
            .unwrap()
            .revision;
        let tuple = Tuple::parse("doc:1#viewer@user:a").unwrap();
        committer
            .propose_validated(&tenant, WriteBatch::new().touch(tuple.clone()), v1)
            .await
            .unwrap();
        committer.propose(&tenant, schema(2)).await.unwrap();
        let before = store.applied_revision();
        let err = committer
            .propose_validated(&tenant, WriteBatch::new().touch(tuple), v1)
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::FailedPrecondition(_)), "{err}");
        assert_eq!(store.applied_revision(), before, "nothing was applied");
    }
}
