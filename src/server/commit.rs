//! The commit path: `propose(tenant, batch) → revision`. Today it assigns
//! the next revision locally and applies it durably (WAL fsync); the Raft
//! issue puts consensus under this one narrow interface.

use std::sync::Arc;

use tokio::sync::{watch, Mutex};
use verdict_storage::{
    ApplyOutcome, RelationStore, Revision, RocksStore, Tenant, Tuple, WriteBatch,
};

use crate::api::error::ApiError;

/// Serialises writes and announces each applied revision.
#[derive(Debug)]
pub struct LocalCommitter {
    store: Arc<RocksStore>,
    lock: Mutex<()>,
    applied: watch::Sender<Revision>,
}

impl LocalCommitter {
    /// A committer over `store`.
    pub fn new(store: Arc<RocksStore>) -> Self {
        let (applied, _) = watch::channel(store.applied_revision());
        LocalCommitter {
            store,
            lock: Mutex::new(()),
            applied,
        }
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
        let result = tokio::task::spawn_blocking(move || {
            let revision = store.applied_revision().next();
            store.apply(&tenant, revision, &batch)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("commit task failed: {e}")))?;
        self.applied.send_replace(self.store.applied_revision());
        Ok(result?)
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
        let result = tokio::task::spawn_blocking(move || {
            let revision = store.applied_revision().next();
            store.bulk_import(&tenant, revision, &mut tuples.into_iter())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("import task failed: {e}")))?;
        self.applied.send_replace(self.store.applied_revision());
        Ok(result?)
    }
}
