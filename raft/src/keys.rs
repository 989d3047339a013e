//! Replicated tenant API keys: the record a key command carries (only the
//! hash of the token: the secret never enters the log), the set the state
//! machine applies them to, and the deterministic apply rules.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::command::Rejection;
use crate::state_machine::TenantSet;

/// One stored key: its id, tenant and the hash of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The public key id (`vk_<id>_...`).
    pub id: String,
    /// The tenant the key is scoped to.
    pub tenant: String,
    /// Hex SHA-256 of the whole token.
    pub sha256: String,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
}

/// The replicated set of tenant keys, persisted by the implementor
/// (durably, before returning).
pub trait KeySet: Send + Sync + Debug + 'static {
    /// The key with `id`, if any.
    fn get(&self, id: &str) -> Option<KeyRecord>;
    /// Adds `record`; `Ok(false)` (nothing changed) when its id exists.
    ///
    /// # Errors
    /// It could not be persisted.
    fn insert(&self, record: KeyRecord) -> Result<bool, String>;
    /// Removes key `id`; `Ok(None)` when there was none.
    ///
    /// # Errors
    /// It could not be persisted.
    fn remove(&self, id: &str) -> Result<Option<KeyRecord>, String>;
    /// Removes every key of `tenant`; answers how many.
    ///
    /// # Errors
    /// It could not be persisted.
    fn remove_tenant(&self, tenant: &str) -> Result<usize, String>;
    /// Every key, by id.
    fn all(&self) -> Vec<KeyRecord>;
    /// Replaces the whole set (snapshot install).
    ///
    /// # Errors
    /// It could not be persisted.
    fn replace(&self, keys: Vec<KeyRecord>) -> Result<(), String>;
}

/// A [`KeySet`] kept in memory only (tests, and state machines opened
/// without one).
#[derive(Debug, Default)]
pub struct MemKeySet(std::sync::Mutex<std::collections::BTreeMap<String, KeyRecord>>);

impl MemKeySet {
    fn keys(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::BTreeMap<String, KeyRecord>>, String>
    {
        self.0
            .lock()
            .map_err(|_| "key set lock poisoned".to_string())
    }
}

impl KeySet for MemKeySet {
    fn get(&self, id: &str) -> Option<KeyRecord> {
        self.keys().ok()?.get(id).cloned()
    }
    fn insert(&self, record: KeyRecord) -> Result<bool, String> {
        let mut keys = self.keys()?;
        if keys.contains_key(&record.id) {
            return Ok(false);
        }
        keys.insert(record.id.clone(), record);
        Ok(true)
    }
    fn remove(&self, id: &str) -> Result<Option<KeyRecord>, String> {
        Ok(self.keys()?.remove(id))
    }
    fn remove_tenant(&self, tenant: &str) -> Result<usize, String> {
        let mut keys = self.keys()?;
        let before = keys.len();
        keys.retain(|_, r| r.tenant != tenant);
        Ok(before - keys.len())
    }
    fn all(&self) -> Vec<KeyRecord> {
        self.keys()
            .map(|k| k.values().cloned().collect())
            .unwrap_or_default()
    }
    fn replace(&self, keys: Vec<KeyRecord>) -> Result<(), String> {
        *self.keys()? = keys.into_iter().map(|k| (k.id.clone(), k)).collect();
        Ok(())
    }
}

/// Applies `CreateKey { record }`: a function of the replicated state only,
/// so every replica answers the same. `Ok(Err(_))` is a rejection (nothing
/// changed); `Err(_)` a persistence failure.
pub(crate) fn apply_create(
    keys: &dyn KeySet,
    tenants: &dyn TenantSet,
    record: KeyRecord,
) -> Result<Result<(), Rejection>, String> {
    if record.id.is_empty() || record.sha256.is_empty() {
        return Ok(Err(Rejection::InvalidArgument {
            field: "key".into(),
            reason: "a key record needs an id and a hash".into(),
        }));
    }
    if !tenants.contains(&record.tenant) {
        return Ok(Err(Rejection::TenantNotFound(record.tenant)));
    }
    match keys.get(&record.id) {
        // The same record again (a replay after a crash between persisting
        // the key and marking the revision applied): already done.
        Some(existing) if existing == record => Ok(Ok(())),
        Some(_) => Ok(Err(Rejection::AlreadyExists(format!(
            "a key with id `{}` already exists",
            record.id
        )))),
        None => {
            keys.insert(record)?;
            Ok(Ok(()))
        }
    }
}

/// Applies `RevokeKey { id }`; an unknown id is rejected as the key
/// service always refused it (INVALID_ARGUMENT naming `id`).
pub(crate) fn apply_revoke(keys: &dyn KeySet, id: &str) -> Result<Result<(), Rejection>, String> {
    match keys.remove(id)? {
        Some(_) => Ok(Ok(())),
        None => Ok(Err(Rejection::InvalidArgument {
            field: "id".into(),
            reason: format!("no key with id `{id}`"),
        })),
    }
}
