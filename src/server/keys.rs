//! Tenant API keys: `vk_<id>_<secret>` tokens whose SHA-256 hash (never the
//! token) is persisted as one JSON file in the data directory (written to a
//! temporary file, fsynced, renamed), looked up by id and compared in
//! constant time.
//!
//! Keys are replicated: the key service mints a token on the node serving
//! the request and proposes only its [`KeyRecord`] (hash, never the token)
//! through Raft; every node's state machine applies it here through
//! [`verdict_raft::KeySet`], so `keys.json` is each node's applied state.

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::path::PathBuf;

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::NodeError;

pub use verdict_raft::KeyRecord;

/// The tenant keys of this node.
#[derive(Debug)]
pub struct KeyStore {
    path: Option<PathBuf>,
    keys: RwLock<BTreeMap<String, KeyRecord>>,
}

/// Hex SHA-256 of `text`.
pub fn sha256_hex(text: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(text);
    let mut out = String::with_capacity(64);
    for b in digest {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl KeyStore {
    /// A store that is never persisted (unit tests, embedded use).
    pub fn in_memory() -> Self {
        KeyStore {
            path: None,
            keys: RwLock::new(BTreeMap::new()),
        }
    }

    /// Loads (or creates) the key file `path`.
    ///
    /// # Errors
    /// An unreadable or malformed file.
    pub fn open(path: PathBuf) -> Result<Self, NodeError> {
        let keys: BTreeMap<String, KeyRecord> = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let list: Vec<KeyRecord> = serde_json::from_str(&text).map_err(|e| {
                    NodeError::Internal(format!("key file `{}` is corrupt: {e}", path.display()))
                })?;
                list.into_iter().map(|k| (k.id.clone(), k)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(NodeError::Internal(format!(
                    "cannot read `{}`: {e}",
                    path.display()
                )))
            }
        };
        Ok(KeyStore {
            path: Some(path),
            keys: RwLock::new(keys),
        })
    }

    /// Applies `edit` to a copy of the keys and, when the copy differs,
    /// writes it to the key file and only then makes it the keys this node
    /// authenticates with — all under the write lock. So the file never
    /// lags what authentication sees (a key refused here is gone from
    /// `keys.json` too), two changes never reach the file out of order, and
    /// a failed write changes nothing.
    fn update<T>(
        &self,
        edit: impl FnOnce(&mut BTreeMap<String, KeyRecord>) -> T,
    ) -> Result<T, NodeError> {
        let mut keys = self.keys.write();
        let mut next = keys.clone();
        let out = edit(&mut next);
        if next != *keys {
            self.persist(&next)?;
            *keys = next;
        }
        Ok(out)
    }

    fn persist(&self, keys: &BTreeMap<String, KeyRecord>) -> Result<(), NodeError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let list: Vec<&KeyRecord> = keys.values().collect();
        let json =
            serde_json::to_vec_pretty(&list).map_err(|e| NodeError::Internal(e.to_string()))?;
        verdict_storage::durable_file::write_atomic(path, &json)
            .map_err(|e| NodeError::Internal(format!("cannot write `{}`: {e}", path.display())))
    }

    /// A new key for `tenant` (stored nowhere yet): its record and its
    /// token (shown once: only its hash is ever kept or replicated).
    pub fn mint(tenant: &str) -> (KeyRecord, String) {
        let id = random_hex(8);
        let token = format!("vk_{id}_{}", random_hex(32));
        let record = KeyRecord {
            id,
            tenant: tenant.to_string(),
            sha256: sha256_hex(token.as_bytes()),
            created: verdict_storage::Timestamp::now().to_string(),
        };
        (record, token)
    }

    /// Creates a key for `tenant` on this node only (not replicated: unit
    /// tests and embedded use; the key service proposes it through Raft).
    ///
    /// # Errors
    /// A failed write.
    pub fn create(&self, tenant: &str) -> Result<(KeyRecord, String), NodeError> {
        let (record, token) = KeyStore::mint(tenant);
        self.update(|keys| keys.insert(record.id.clone(), record.clone()))?;
        Ok((record, token))
    }

    /// The key with `id`, if this node has it.
    pub fn get(&self, id: &str) -> Option<KeyRecord> {
        self.keys.read().get(id).cloned()
    }

    /// The keys of `tenant` (every key when `None`), by id.
    pub fn list(&self, tenant: Option<&str>) -> Vec<KeyRecord> {
        self.keys
            .read()
            .values()
            .filter(|r| tenant.is_none_or(|t| r.tenant == t))
            .cloned()
            .collect()
    }

    /// Revokes key `id` on this node only (not replicated).
    ///
    /// # Errors
    /// An unknown id (NOT_FOUND-like FAILED_PRECONDITION) or a failed write.
    pub fn revoke(&self, id: &str) -> Result<KeyRecord, NodeError> {
        self.update(|keys| keys.remove(id))?
            .ok_or_else(|| NodeError::invalid("id", format!("no key with id `{id}`")))
    }

    /// Revokes every key of `tenant` on this node only (not replicated:
    /// the state machine does it on every node when a tenant is deleted).
    ///
    /// # Errors
    /// A failed write.
    pub fn revoke_tenant(&self, tenant: &str) -> Result<usize, NodeError> {
        self.update(|keys| {
            let before = keys.len();
            keys.retain(|_, r| r.tenant != tenant);
            before - keys.len()
        })
    }

    /// The key a `vk_<id>_<secret>` token belongs to, if it is valid.
    pub fn authenticate(&self, token: &str) -> Option<KeyRecord> {
        self.authenticate_hashed(token, &sha256_hex(token.as_bytes()))
    }

    /// [`KeyStore::authenticate`] with the token's hex SHA-256 already known.
    pub fn authenticate_hashed(&self, token: &str, hash: &str) -> Option<KeyRecord> {
        let rest = token.strip_prefix("vk_")?;
        let (id, _) = rest.split_once('_')?;
        let keys = self.keys.read();
        let record = keys.get(id)?;
        constant_time_eq(hash.as_bytes(), record.sha256.as_bytes()).then(|| record.clone())
    }
}

/// The replicated view: the Raft state machine adds and removes keys
/// through this (persisted before returning).
impl verdict_raft::KeySet for KeyStore {
    fn get(&self, id: &str) -> Option<KeyRecord> {
        KeyStore::get(self, id)
    }

    fn insert(&self, record: KeyRecord) -> Result<bool, String> {
        self.update(|keys| {
            if keys.contains_key(&record.id) {
                return false;
            }
            keys.insert(record.id.clone(), record);
            true
        })
        .map_err(|e| e.to_string())
    }

    fn remove(&self, id: &str) -> Result<Option<KeyRecord>, String> {
        self.update(|keys| keys.remove(id))
            .map_err(|e| e.to_string())
    }

    fn remove_tenant(&self, tenant: &str) -> Result<usize, String> {
        self.revoke_tenant(tenant).map_err(|e| e.to_string())
    }

    fn all(&self) -> Vec<KeyRecord> {
        self.list(None)
    }

    fn replace(&self, keys: Vec<KeyRecord>) -> Result<(), String> {
        self.update(|current| *current = keys.into_iter().map(|k| (k.id.clone(), k)).collect())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_authenticate_revoke_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let store = KeyStore::open(path.clone()).unwrap();
        let (record, token) = store.create("acme").unwrap();
        assert!(token.starts_with(&format!("vk_{}_", record.id)));
        assert_eq!(store.authenticate(&token).unwrap().tenant, "acme");
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(!on_disk.contains(&token));
        assert!(on_disk.contains(&record.sha256));
        // A wrong secret with the right id fails.
        let forged = format!("vk_{}_{}", record.id, "0".repeat(64));
        assert!(store.authenticate(&forged).is_none());
        assert!(store.authenticate("garbage").is_none());
        let reopened = KeyStore::open(path).unwrap();
        assert_eq!(reopened.list(Some("acme")).len(), 1);
        assert!(reopened.list(Some("other")).is_empty());
        reopened.revoke(&record.id).unwrap();
        assert!(reopened.authenticate(&token).is_none());
        assert!(reopened.revoke(&record.id).is_err());
    }

    #[test]
    fn the_replicated_view_persists_what_the_state_machine_applies() {
        use verdict_raft::KeySet as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let store = KeyStore::open(path.clone()).unwrap();
        let (record, token) = KeyStore::mint("acme");
        assert!(
            store.authenticate(&token).is_none(),
            "minting stores nothing"
        );
        assert!(verdict_raft::KeySet::insert(&store, record.clone()).unwrap());
        assert!(!verdict_raft::KeySet::insert(&store, record.clone()).unwrap());
        assert_eq!(
            KeyStore::open(path.clone()).unwrap().authenticate(&token),
            Some(record.clone())
        );
        let (other, _) = KeyStore::mint("globex");
        store.replace(vec![other.clone()]).unwrap();
        let reopened = KeyStore::open(path.clone()).unwrap();
        assert!(reopened.authenticate(&token).is_none());
        assert_eq!(reopened.all(), vec![other.clone()]);
        assert_eq!(store.remove_tenant("globex").unwrap(), 1);
        assert!(KeyStore::open(path).unwrap().all().is_empty());
        assert_eq!(
            verdict_raft::KeySet::remove(&store, &other.id).unwrap(),
            None
        );
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // The file's directory does not exist: every write fails.
        let store = KeyStore::open(dir.path().join("missing").join("keys.json")).unwrap();
        assert!(store.create("acme").is_err());
        assert!(store.list(None).is_empty(), "the key must not be usable");
        let (record, _) = KeyStore::mint("acme");
        assert!(verdict_raft::KeySet::insert(&store, record).is_err());
        assert!(store.list(None).is_empty());
    }

    #[test]
    fn sha256_hex_matches_a_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
