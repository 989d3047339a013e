//! Relationship counters (SpiceDB's `ExperimentalRegisterRelationshipCounter`):
//! per tenant, a name and the encoded filter whose matches it counts. The
//! rows (`keys::COUNTER`) are written by the replicated state machine and
//! travel in snapshots with the rest of the store; they are not versioned.

use rocksdb::WriteOptions;

use super::{engine, total_order, RocksStore};
use crate::error::Result;
use crate::keys;
use crate::tenant::Tenant;

impl RocksStore {
    /// Registers counter `name` of `tenant` with `filter`; `false` (and no
    /// change) when the name is already registered.
    ///
    /// # Errors
    /// Storage failures.
    pub fn put_counter(&self, tenant: &Tenant, name: &str, filter: &[u8]) -> Result<bool> {
        let _w = self.lock_writer()?;
        let key = keys::counter_key(tenant, name);
        if self.db.get(&key).map_err(engine)?.is_some() {
            return Ok(false);
        }
        let mut wb = rocksdb::WriteBatch::default();
        wb.put(&key, filter);
        self.commit(wb, &WriteOptions::default())?;
        Ok(true)
    }

    /// Removes counter `name` of `tenant`; `false` when there was none.
    ///
    /// # Errors
    /// Storage failures.
    pub fn delete_counter(&self, tenant: &Tenant, name: &str) -> Result<bool> {
        let _w = self.lock_writer()?;
        let key = keys::counter_key(tenant, name);
        if self.db.get(&key).map_err(engine)?.is_none() {
            return Ok(false);
        }
        let mut wb = rocksdb::WriteBatch::default();
        wb.delete(&key);
        self.commit(wb, &WriteOptions::default())?;
        Ok(true)
    }

    /// The filter of counter `name` of `tenant`, if registered.
    ///
    /// # Errors
    /// Storage failures.
    pub fn counter(&self, tenant: &Tenant, name: &str) -> Result<Option<Vec<u8>>> {
        self.db.get(keys::counter_key(tenant, name)).map_err(engine)
    }

    /// Removes every counter of `tenant` (the tenant is being deleted).
    ///
    /// # Errors
    /// Storage failures.
    pub fn delete_counters(&self, tenant: &Tenant) -> Result<()> {
        let _w = self.lock_writer()?;
        let prefix = keys::counter_prefix(tenant);
        let mut wb = rocksdb::WriteBatch::default();
        let mut it = self.db.raw_iterator_opt(total_order());
        it.seek(&prefix);
        while let Some(k) = it.key() {
            if !k.starts_with(&prefix) {
                break;
            }
            wb.delete(k);
            it.next();
        }
        it.status().map_err(engine)?;
        drop(it);
        self.commit(wb, &WriteOptions::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_register_once_and_stay_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), super::super::RocksOptions::default()).unwrap();
        let a = Tenant::new("alpha").unwrap();
        let b = Tenant::new("beta").unwrap();
        assert!(store.put_counter(&a, "docs", b"f1").unwrap());
        assert!(!store.put_counter(&a, "docs", b"f2").unwrap());
        assert_eq!(
            store.counter(&a, "docs").unwrap().as_deref(),
            Some(&b"f1"[..])
        );
        assert_eq!(store.counter(&b, "docs").unwrap(), None);
        assert!(store.put_counter(&b, "docs", b"f3").unwrap());
        store.delete_counters(&a).unwrap();
        assert_eq!(store.counter(&a, "docs").unwrap(), None);
        assert!(store.counter(&b, "docs").unwrap().is_some());
        assert!(store.delete_counter(&b, "docs").unwrap());
        assert!(!store.delete_counter(&b, "docs").unwrap());
    }
}
