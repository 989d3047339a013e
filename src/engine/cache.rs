// #[PerformanceCriticalPath]
//! The decision cache: answers to sub-problems, shared across requests.
//!
//! Keys hold the tenant and the revision, so an answer computed for one
//! tenant or one snapshot can never serve another, and a zookie read at a
//! newer revision can never see an older entry. Only answers that depend on
//! nothing but the graph at that revision are stored: the walker does not
//! insert results that touched a caveat, an expiring tuple or a cycle
//! assumption. Sized in bytes; a shard that outgrows its share is cleared.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::outcome::Outcome;
use crate::schema::ir::{RelationId, TypeId};

const SHARDS: usize = 16;
/// Rough per-entry overhead beyond the key's strings (map slot, enum).
const ENTRY_OVERHEAD: usize = 96;

/// One cached sub-problem: does `subject` have `relation` on
/// `object_type:object_id` in `tenant` at `revision`?
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionKey {
    /// The tenant.
    pub tenant: String,
    /// The snapshot revision.
    pub revision: u64,
    /// Schema version marker (the schema's address) so a new schema never
    /// reads an old schema's ids.
    pub schema: usize,
    /// The resource type.
    pub object_type: TypeId,
    /// The relation or permission.
    pub relation: RelationId,
    /// The resource id.
    pub object_id: String,
    /// The subject type.
    pub subject_type: TypeId,
    /// The subject id.
    pub subject_id: String,
    /// The subject relation, if a userset.
    pub subject_relation: Option<String>,
}

impl DecisionKey {
    fn bytes(&self) -> usize {
        ENTRY_OVERHEAD
            + self.tenant.len()
            + self.object_id.len()
            + self.subject_id.len()
            + self.subject_relation.as_ref().map_or(0, String::len)
    }
}

/// Hit/miss counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that were not.
    pub misses: u64,
    /// Entries stored.
    pub entries: u64,
    /// Approximate bytes held.
    pub bytes: u64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<DecisionKey, Outcome>,
    bytes: usize,
}

/// A byte-bounded, sharded map of decided sub-problems.
pub struct DecisionCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl DecisionCache {
    /// A cache holding about `max_bytes` of entries.
    pub fn new(max_bytes: usize) -> Self {
        DecisionCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: (max_bytes / SHARDS).max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &DecisionKey) -> &Mutex<Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// The cached answer, if any.
    pub fn get(&self, key: &DecisionKey) -> Option<Outcome> {
        let found = self
            .shard(key)
            .lock()
            .ok()
            .and_then(|s| s.map.get(key).cloned());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores an answer.
    pub fn insert(&self, key: DecisionKey, outcome: Outcome) {
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        let size = key.bytes();
        if shard.bytes + size > self.shard_budget {
            shard.map.clear();
            shard.bytes = 0;
        }
        if shard.map.insert(key, outcome).is_none() {
            shard.bytes += size;
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for shard in &self.shards {
            if let Ok(mut s) = shard.lock() {
                s.map.clear();
                s.bytes = 0;
            }
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let (mut entries, mut bytes) = (0u64, 0u64);
        for shard in &self.shards {
            if let Ok(s) = shard.lock() {
                entries += s.map.len() as u64;
                bytes += s.bytes as u64;
            }
        }
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str, revision: u64, id: &str) -> DecisionKey {
        DecisionKey {
            tenant: tenant.into(),
            revision,
            schema: 1,
            object_type: TypeId(0),
            relation: RelationId(0),
            object_id: id.into(),
            subject_type: TypeId(1),
            subject_id: "ann".into(),
            subject_relation: None,
        }
    }

    #[test]
    fn keys_separate_tenants_and_revisions() {
        let cache = DecisionCache::new(1 << 20);
        cache.insert(key("a", 5, "d1"), Outcome::Allowed);
        assert_eq!(cache.get(&key("a", 5, "d1")), Some(Outcome::Allowed));
        assert_eq!(cache.get(&key("b", 5, "d1")), None);
        assert_eq!(cache.get(&key("a", 6, "d1")), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (1, 2, 1));
    }

    #[test]
    fn stays_within_its_byte_budget() {
        let cache = DecisionCache::new(16 * 1024);
        for i in 0..10_000 {
            cache.insert(key("t", 1, &format!("doc{i}")), Outcome::Denied);
        }
        assert!(cache.stats().bytes <= 16 * 1024, "{:?}", cache.stats());
    }
}
