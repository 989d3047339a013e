//! Keeps the engine's group index in step with this replica's state
//! machine: every applied entry is fed to it, a snapshot install rebuilds
//! it, and a start builds it in the background (see
//! [`crate::engine::group_index`]).

use std::sync::Arc;

use verdict_storage::{Revision, RocksStore, Tenant, Tuple, WriteBatch};

use super::tenants::TenantRegistry;
use crate::engine::GroupIndex;

/// The state machine observer that maintains a [`GroupIndex`].
#[derive(Debug)]
pub struct GroupIndexSync {
    index: Arc<GroupIndex>,
    store: Arc<RocksStore>,
    tenants: Arc<TenantRegistry>,
}

impl GroupIndexSync {
    /// An observer maintaining `index` from `store`.
    pub fn new(
        index: Arc<GroupIndex>,
        store: Arc<RocksStore>,
        tenants: Arc<TenantRegistry>,
    ) -> Self {
        GroupIndexSync {
            index,
            store,
            tenants,
        }
    }

    /// Builds every registered tenant's index on a background thread
    /// (questions fall back to the walk until a tenant is built).
    pub fn rebuild_in_background(&self) {
        let (index, store) = (self.index.clone(), self.store.clone());
        let tenants: Vec<Tenant> = self
            .tenants
            .list()
            .iter()
            .filter_map(|t| Tenant::new(t).ok())
            .collect();
        let spawned = std::thread::Builder::new()
            .name("group-index-build".into())
            .spawn(move || index.rebuild_all(&*store, &tenants));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the group index build; the walker walks");
        }
    }
}

impl verdict_raft::ApplyObserver for GroupIndexSync {
    fn before_write(&self, _tenant: &Tenant, _revision: Revision, _batch: &WriteBatch) {}

    fn before_import(&self, tenant: &Tenant, revision: Revision, tuples: &[Tuple]) {
        self.index.before_import(tenant, revision, tuples);
    }

    fn import_rejected(&self, tenant: &Tenant, revision: Revision) {
        self.index.import_rejected(tenant, revision);
    }

    fn before_snapshot(&self, _revision: Revision) {
        self.index.clear();
    }

    fn after_apply(&self, tenant: Option<&Tenant>, revision: Revision) {
        self.index.after_apply(&self.store, tenant, revision);
    }

    fn after_snapshot(&self, revision: Revision) {
        self.index.after_apply(&self.store, None, revision);
        self.rebuild_in_background();
    }
}
