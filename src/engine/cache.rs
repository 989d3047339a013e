// #[PerformanceCriticalPath]
//! The decision cache: answers to sub-problems, shared across requests.
//!
//! Keys hold the tenant, so an answer computed for one tenant can never
//! serve another. Each entry remembers the revision it was computed at and
//! its *footprint*: the storage keys (tenant, object type, object id,
//! relation) its evaluation read. It answers a request at that revision;
//! and, when the cache has a write log ([`DecisionCache::with_write_log`],
//! fed by the commit path before each write becomes visible), it also
//! answers a request at a later revision if no write between the two
//! touched its footprint — so a write to one document does not evict the
//! answers about every other one (fresh zookies do not defeat the cache).
//! A request at an older revision never sees a newer entry.
//!
//! Only answers that depend on nothing but the graph at that revision are
//! stored: the walker does not insert results that touched a caveat, an
//! expiring tuple or a cycle assumption. Sized in bytes; a shard that
//! outgrows its share is cleared.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use verdict_footprint::{ObjectKey, SubjectKey};
use verdict_storage::{Op, SubjectRef, Tuple, WriteBatch};

use super::outcome::Outcome;
use crate::schema::ir::{RelationId, TypeId};

const SHARDS: usize = 16;
/// Rough per-entry overhead beyond the key's strings (map slot, enum).
const ENTRY_OVERHEAD: usize = 96;
/// Writes (storage keys) the log remembers; older entries cannot be
/// reused across revisions.
const LOG_CAPACITY: usize = 32_768;
/// A batch with more keys than this is logged as "everything changed".
const LOG_BATCH_MAX: usize = 1_024;
/// Logged keys an entry may be validated against before it is recomputed.
const MAX_SCAN: usize = 2_048;
/// The log key meaning "any storage key may have changed".
const ANY_KEY: u64 = verdict_footprint::ANY_KEY;

/// The storage key a read of every subject of `type:id#relation`
/// (`subjects(type, [id], relation)`) covers, and every write of
/// `type:id#relation@...` changes (never 0). Derived by
/// [`verdict_footprint::storage_key`], stable across processes.
pub fn storage_key(tenant: &str, object_type: &str, object_id: &str, relation: &str) -> u64 {
    verdict_footprint::storage_key(tenant, object_type, object_id, relation)
}

fn object_key<'a>(object_type: &'a str, object_id: &'a str, relation: &'a str) -> ObjectKey<'a> {
    ObjectKey {
        object_type,
        object_id,
        relation,
    }
}

fn subject_of(subject: &SubjectRef) -> SubjectKey<'_> {
    SubjectKey {
        subject_type: &subject.object.object_type,
        subject_id: &subject.object.object_id,
        subject_relation: subject.relation.as_deref(),
    }
}

/// The key of one tuple `type:id#relation@subject` (a point lookup reads
/// it; a write of that tuple changes it), never 0
/// ([`verdict_footprint::subject_key`]).
pub fn subject_key(
    tenant: &str,
    object_type: &str,
    object_id: &str,
    relation: &str,
    subject: &SubjectRef,
) -> u64 {
    verdict_footprint::subject_key(
        tenant,
        object_key(object_type, object_id, relation),
        subject_of(subject),
    )
}

/// The key of the usersets of one subject type under `type:id#relation`
/// (a scan of them reads it; a write of any such userset changes it),
/// never 0 ([`verdict_footprint::userset_key`]).
pub fn userset_key(
    tenant: &str,
    object_type: &str,
    object_id: &str,
    relation: &str,
    subject_type: &str,
) -> u64 {
    verdict_footprint::userset_key(tenant, object_type, object_id, relation, subject_type)
}

/// Every key a write of `tuple` changes: its relation, the tuple itself,
/// for a userset subject the usersets of its type, and the whole relation
/// ([`verdict_footprint::tuple_keys`], which the client applies to the
/// watch feed).
fn written_keys(tenant: &str, t: &Tuple, out: &mut Vec<u64>) {
    verdict_footprint::tuple_keys(
        tenant,
        object_key(&t.resource.object_type, &t.resource.object_id, &t.relation),
        subject_of(&t.subject),
        out,
    );
}

/// The key of a whole relation `type#relation` (what a group index answer
/// read); every write to the relation is logged under it too.
pub fn relation_key(tenant: &str, object_type: &str, relation: &str) -> u64 {
    verdict_footprint::relation_key(tenant, object_type, relation)
}

/// What an evaluation read: sorted, de-duplicated storage keys, or
/// unknown (then its answer only serves its own revision).
pub type Footprint = Option<Arc<[u64]>>;

/// Recent writes: (revision, storage key), oldest first.
#[derive(Debug, Default)]
struct WriteLog {
    entries: VecDeque<(u64, u64)>,
    /// Writes at or below this revision may have been forgotten.
    floor: u64,
}

impl WriteLog {
    fn push(&mut self, revision: u64, key: u64) {
        self.entries.push_back((revision, key));
        while self.entries.len() > LOG_CAPACITY {
            if let Some((r, _)) = self.entries.pop_front() {
                self.floor = self.floor.max(r);
            }
        }
    }

    /// Whether no write in `(from, to]` touched `footprint`.
    fn untouched(&self, from: u64, to: u64, footprint: &[u64]) -> bool {
        if from < self.floor {
            return false;
        }
        let mut scanned = 0usize;
        for &(revision, key) in self.entries.iter().rev() {
            if revision <= from {
                break;
            }
            scanned += 1;
            if scanned > MAX_SCAN {
                return false;
            }
            if revision > to {
                continue;
            }
            if key == ANY_KEY || footprint.binary_search(&key).is_ok() {
                return false;
            }
        }
        true
    }
}

/// One cached sub-problem: does `subject` have `relation` on
/// `object_type:object_id` in `tenant` at `revision`?
///
/// Equality and hashing ignore `revision`: the cache holds one entry per
/// sub-problem and judges by its own revision whether it serves the
/// requested one.
#[derive(Debug, Clone)]
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

impl PartialEq for DecisionKey {
    fn eq(&self, o: &Self) -> bool {
        self.schema == o.schema
            && self.object_type == o.object_type
            && self.relation == o.relation
            && self.subject_type == o.subject_type
            && self.object_id == o.object_id
            && self.subject_id == o.subject_id
            && self.subject_relation == o.subject_relation
            && self.tenant == o.tenant
    }
}

impl Eq for DecisionKey {}

impl Hash for DecisionKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (
            &self.tenant,
            self.schema,
            self.object_type,
            self.relation,
            &self.object_id,
            self.subject_type,
            &self.subject_id,
            &self.subject_relation,
        )
            .hash(h);
    }
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

/// A stored answer: computed at `revision`, having read `footprint`.
#[derive(Clone)]
struct Entry {
    outcome: Outcome,
    revision: u64,
    footprint: Footprint,
}

/// Two generations: inserts go to `map`; when it outgrows half the
/// shard's budget it becomes `old` (the previous `old` is dropped), and a
/// hit in `old` moves the entry back. Entries in use survive; a full
/// shard never loses everything at once.
#[derive(Default)]
struct Shard {
    /// Keys' revisions are not compared (the entry holds its own).
    map: HashMap<DecisionKey, Entry>,
    bytes: usize,
    old: HashMap<DecisionKey, Entry>,
    old_bytes: usize,
}

impl Shard {
    fn put(&mut self, key: DecisionKey, entry: Entry, size: usize, budget: usize) {
        if self.bytes + size > budget / 2 {
            self.old = std::mem::take(&mut self.map);
            self.old_bytes = std::mem::take(&mut self.bytes);
        }
        // Sizes of replaced entries are not subtracted: the budget errs
        // towards turning generations early.
        self.map.insert(key, entry);
        self.bytes += size;
    }

    fn find(&mut self, key: &DecisionKey, budget: usize) -> Option<Entry> {
        if let Some(e) = self.map.get(key) {
            return Some(e.clone());
        }
        let (key, entry) = self.old.remove_entry(key)?;
        let size = entry_size(&key, &entry);
        self.old_bytes = self.old_bytes.saturating_sub(size);
        self.put(key, entry.clone(), size, budget);
        Some(entry)
    }
}

fn entry_size(key: &DecisionKey, entry: &Entry) -> usize {
    key.bytes() + entry.footprint.as_ref().map_or(0, |f| f.len() * 8)
}

/// A byte-bounded, sharded map of decided sub-problems.
pub struct DecisionCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Present when every write is noted ([`DecisionCache::note_batch`]).
    log: Option<RwLock<WriteLog>>,
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
            log: None,
        }
    }

    /// Lets entries serve later revisions whose writes did not touch their
    /// footprint. Every write must then be announced with
    /// [`DecisionCache::note_batch`] before it becomes readable.
    pub fn with_write_log(mut self) -> Self {
        self.log = Some(RwLock::new(WriteLog::default()));
        self
    }

    /// Records the storage keys `batch` (for `tenant`, at `revision`) may
    /// change. Call before the batch is applied, so no reader can see the
    /// revision before the log does.
    pub fn note_batch(&self, tenant: &str, revision: u64, batch: &WriteBatch) {
        let mut keys = Vec::with_capacity(4 * batch.ops.len());
        let mut any = batch.ops.len() > LOG_BATCH_MAX;
        for op in &batch.ops {
            match op {
                Op::Create(t) | Op::Touch(t) | Op::Delete(t) if !any => {
                    written_keys(tenant, t, &mut keys);
                }
                Op::Create(_) | Op::Touch(_) | Op::Delete(_) => {}
                Op::PutSchema(_) => {}
                _ => any = true,
            }
        }
        keys.sort_unstable();
        keys.dedup();
        self.note_keys(revision, &keys, any);
    }

    /// Records that the tuples of a bulk import (`count` of them, keys
    /// from `keys`) change at `revision`.
    pub fn note_import<'a>(
        &self,
        tenant: &str,
        revision: u64,
        tuples: impl ExactSizeIterator<Item = &'a verdict_storage::Tuple>,
    ) {
        if tuples.len() > LOG_BATCH_MAX {
            return self.note_keys(revision, &[], true);
        }
        let mut keys = Vec::with_capacity(4 * tuples.len());
        for t in tuples {
            written_keys(tenant, t, &mut keys);
        }
        keys.sort_unstable();
        keys.dedup();
        self.note_keys(revision, &keys, false);
    }

    /// Drops every entry and forgets every write at or below `revision`,
    /// so no answer learnt before it is reused past it (a snapshot replaced
    /// the state, or writes before `revision` were never noted).
    pub fn forget_through(&self, revision: u64) {
        if let Some(log) = &self.log {
            // A poisoned log is never consulted again (see note_keys).
            if let Ok(mut log) = log.write() {
                log.floor = log.floor.max(revision);
            }
        }
        self.clear();
    }

    fn note_keys(&self, revision: u64, keys: &[u64], any: bool) {
        let Some(log) = &self.log else { return };
        let Ok(mut log) = log.write() else {
            // A poisoned log can vouch for nothing: forget everything.
            self.clear();
            return;
        };
        if any {
            log.push(revision, ANY_KEY);
        } else {
            for &k in keys {
                log.push(revision, k);
            }
        }
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "`new` builds exactly SHARDS shards, and `% SHARDS` is below that; every cache lookup passes here"
    )]
    fn shard(&self, key: &DecisionKey) -> &Mutex<Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// The cached answer, if any.
    pub fn get(&self, key: &DecisionKey) -> Option<Outcome> {
        self.get_with_footprint(key).map(|(o, _)| o)
    }

    /// The cached answer valid at `key.revision`, with what it read.
    pub fn get_with_footprint(&self, key: &DecisionKey) -> Option<(Outcome, Footprint)> {
        let revision = key.revision;
        let found = self.shard(key).lock().ok().and_then(|mut shard| {
            let e = shard.find(key, self.shard_budget)?;
            if e.revision == revision {
                return Some((e.outcome, e.footprint));
            }
            let (Some(log), Some(fp)) = (&self.log, &e.footprint) else {
                return None;
            };
            if e.revision > revision
                || !log
                    .read()
                    .is_ok_and(|l| l.untouched(e.revision, revision, fp))
            {
                return None;
            }
            // Valid from its revision through `revision`: restamp it, so
            // later lookups only scan the writes after `revision`.
            if let Some(stored) = shard.map.get_mut(key) {
                if stored.revision == e.revision {
                    stored.revision = revision;
                }
            }
            Some((e.outcome, e.footprint))
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores an answer valid at `key.revision` only.
    pub fn insert(&self, key: DecisionKey, outcome: Outcome) {
        self.insert_with_footprint(key, outcome, None);
    }

    /// Stores an answer computed at `key.revision` that read `footprint`.
    pub fn insert_with_footprint(
        &self,
        mut key: DecisionKey,
        outcome: Outcome,
        footprint: Footprint,
    ) {
        let entry = Entry {
            outcome,
            revision: std::mem::take(&mut key.revision),
            footprint,
        };
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        let size = entry_size(&key, &entry);
        shard.put(key, entry, size, self.shard_budget);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for shard in &self.shards {
            if let Ok(mut s) = shard.lock() {
                *s = Shard::default();
            }
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let (mut entries, mut bytes) = (0u64, 0u64);
        for shard in &self.shards {
            if let Ok(s) = shard.lock() {
                entries += (s.map.len() + s.old.len()) as u64;
                bytes += (s.bytes + s.old_bytes) as u64;
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

    fn fp(keys: &[u64]) -> Footprint {
        let mut v = keys.to_vec();
        v.sort_unstable();
        Some(v.into())
    }

    #[test]
    fn without_a_write_log_entries_serve_only_their_revision() {
        let cache = DecisionCache::new(1 << 20);
        cache.insert_with_footprint(key("a", 5, "d1"), Outcome::Allowed, fp(&[7]));
        assert_eq!(cache.get(&key("a", 5, "d1")), Some(Outcome::Allowed));
        assert_eq!(cache.get(&key("a", 6, "d1")), None);
    }

    #[test]
    fn later_revisions_reuse_entries_whose_footprint_no_write_touched() {
        let cache = DecisionCache::new(1 << 20).with_write_log();
        let read = storage_key("a", "doc", "d1", "viewer");
        let other = storage_key("a", "doc", "d2", "viewer");
        cache.insert_with_footprint(key("a", 5, "d1"), Outcome::Allowed, fp(&[read]));
        // An unrelated write at 6: still valid at 6 and 7.
        let t = verdict_storage::Tuple::parse("doc:d2#viewer@user:x").unwrap();
        cache.note_batch("a", 6, &WriteBatch::new().touch(t));
        assert_eq!(cache.get(&key("a", 7, "d1")), Some(Outcome::Allowed));
        assert!(other != read);
        // Never for an older revision.
        assert_eq!(cache.get(&key("a", 4, "d1")), None);
        // A write to what it read at 8: valid at 7, not at 8 or later.
        let t = verdict_storage::Tuple::parse("doc:d1#viewer@user:y").unwrap();
        cache.note_batch("a", 8, &WriteBatch::new().delete(t));
        assert_eq!(cache.get(&key("a", 7, "d1")), Some(Outcome::Allowed));
        assert_eq!(cache.get(&key("a", 8, "d1")), None);
        assert_eq!(cache.get(&key("a", 9, "d1")), None);
        // Entries without a footprint serve only their revision.
        cache.insert(key("a", 10, "d3"), Outcome::Denied);
        assert_eq!(cache.get(&key("a", 11, "d3")), None);
        // Delete-by-filter changes anything.
        cache.insert_with_footprint(key("a", 10, "d4"), Outcome::Denied, fp(&[other]));
        cache.note_batch(
            "a",
            11,
            &WriteBatch::new().delete_by_filter(verdict_storage::TupleFilter::default(), None),
        );
        assert_eq!(cache.get(&key("a", 10, "d4")), Some(Outcome::Denied));
        assert_eq!(cache.get(&key("a", 11, "d4")), None);
    }

    #[test]
    fn forgotten_writes_make_old_entries_unusable() {
        let cache = DecisionCache::new(1 << 20).with_write_log();
        cache.insert_with_footprint(key("a", 1, "d1"), Outcome::Allowed, fp(&[3]));
        for r in 2..(LOG_CAPACITY as u64 + 10) {
            cache.note_keys(r, &[5], false);
        }
        assert_eq!(cache.get(&key("a", 1, "d1")), Some(Outcome::Allowed));
        assert_eq!(cache.get(&key("a", 2, "d1")), None);
    }

    #[test]
    fn entries_in_use_survive_generation_turns() {
        let cache = DecisionCache::new(64 * 1024);
        cache.insert(key("t", 1, "hot"), Outcome::Allowed);
        for i in 0..20_000 {
            cache.insert(key("t", 1, &format!("doc{i}")), Outcome::Denied);
            if i % 50 == 0 {
                assert_eq!(
                    cache.get(&key("t", 1, "hot")),
                    Some(Outcome::Allowed),
                    "{i}"
                );
            }
        }
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
