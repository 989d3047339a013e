// #[PerformanceCriticalPath]
//! The group index (Leopard-style, Zanzibar §3.2.4): an in-memory index of
//! *pure-nesting* relations that answers "does S have `T#R` on `T:g`?"
//! without storage reads, whatever the nesting depth.
//!
//! ```text
//!  Raft apply ──after_apply(tenant, rev)──▶ GroupIndex ──changes_since──▶ store changelog
//!                                            │ per tenant: RelIndex per qualifying T#R
//!  Walker::eval (stored relation) ──answer──▶ │ (exact at the reader's revision, or fallback)
//! ```
//!
//! **Qualifying relations** ([`qualifying`]): a stored relation `T#R`
//! whose allowed subjects are direct types (`U`, `U:*`) plus at least one
//! userset, every userset being `T#R` itself, with no caveat and no
//! expiration — e.g. `definition group { relation member: user | group#member }`.
//! Only such a relation's own tuples decide membership in it. (The schema
//! compiler refuses `U:*` on a relation that includes itself, so wildcards
//! do not occur in practice; the index would handle them.)
//!
//! **Structure** ([`RelIndex`]): interned group ids; for each direct
//! member `(U, id)` the groups it is directly in; for each group the groups
//! that directly include it (tuple `T:g1#R@T:g0#R` is the edge g0 → g1).
//! Questions are answered by a breadth-first search from the subject's
//! direct groups up the inclusion edges until a target group is found
//! (option (b) of the plan). We chose the search over a maintained
//! transitive closure: a closure needs recomputing every ancestor on an
//! edge removal, whose correctness under arbitrary cycles is hard to get
//! right in the time we had, while the search is obviously exact, bounded
//! by the reachable ancestors (10 groups on the deep workload) and cycles
//! terminate through its visited set. A userset subject `T:h#R` is
//! answered too (h reaches g). The walker's depth limit still holds: a
//! path longer than the remaining budget, or (for a non-member) groups
//! nested below the target deeper than it, are left to the walk, which
//! reports the limit as without the index.
//!
//! **Maintenance**: on every replica the state machine calls
//! [`GroupIndex::after_apply`] after each applied entry; the index reads
//! exactly what changed at that revision from the tenant's changelog
//! ([`RelationStore::changes_since`], Watch's source) and updates the
//! tenant's relations, recording the revision each relation last changed.
//! A bulk import is not read back: [`GroupIndex::before_import`] keeps the
//! imported tuples of the tenant's qualifying relations (usually none) and
//! `after_apply` applies them directly when that is exact (see the
//! INVARIANT in `process`), else it catches up from the changelog. A
//! batch that changes the tenant's schema (and a tenant deletion, which
//! writes a tombstone schema) rebuilds that tenant from a store snapshot at
//! that revision on a background thread, never stalling the applying
//! thread; a snapshot install or a start rebuilds every tenant (in the
//! background too). Until a tenant is built the index says "not ready" and
//! the walker walks; a build catches up to the latest applied revision
//! before it installs, and only the newest build of a tenant installs.
//! Group ids stay interned after their last member or edge goes; each
//! relation counts its live ids as tuples apply, and once the dead ones
//! are at least [`COMPACT_MIN_DEAD`] and more than half, `after_apply`
//! starts such a background rebuild (a *compaction*), which interns only
//! the live ids.
//!
//! **Exactness**: an answer is given only when the index's state equals the
//! state at the reader's revision `r`: the tenant's index is built from the
//! schema version the engine evaluates, has processed every entry through
//! `r`, and the relation did not change in `(r, indexed]`. Otherwise the
//! walker falls back to the walk. Answers depend on the whole relation, so
//! their cache footprint is the relation-wide key
//! ([`super::cache::relation_key`]), which the decision cache's write log
//! records for every write to that relation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use verdict_storage::{
    ChangeBatch, ChangeKind, RelationStore, Revision, StorageError, Tenant, Tuple, TupleFilter,
    TupleReader, TupleReaderExt, WILDCARD,
};

use super::cache::relation_key;
use super::outcome::Outcome;
use crate::schema::ir::{AllowedKind, RelationId, RelationKind, Schema, TypeId};
use crate::schema::{self, SchemaLimits};

/// Change batches read per changelog call while catching up.
const CATCH_UP_PAGE: usize = 1024;
/// Tuples per page while building from a snapshot.
const BUILD_PAGE: usize = 4096;
/// A relation whose dead interned ids (referenced by no member or edge)
/// number at least this many, and more than half of its interned ids,
/// has its tenant rebuilt in the background to release them.
const COMPACT_MIN_DEAD: usize = 1024;

/// The stored relations of `schema` the index can answer (see the module
/// docs): direct subject types plus only `T#R` usersets on `T#R`, without
/// caveats or expiration, and at least one such userset.
pub fn qualifying(schema: &Schema) -> Vec<(TypeId, RelationId)> {
    let mut out = Vec::new();
    for def in schema.definitions() {
        for rel in &def.relations {
            let RelationKind::Relation { allowed } = &rel.kind else {
                continue;
            };
            let mut nesting = false;
            let pure = allowed.iter().all(|a| {
                a.caveat.is_none()
                    && !a.expiration
                    && match a.kind {
                        AllowedKind::Direct | AllowedKind::Wildcard => true,
                        AllowedKind::Userset(r) => {
                            nesting = true;
                            a.subject_type == def.id && r == rel.id
                        }
                    }
            });
            if pure && nesting {
                out.push((def.id, rel.id));
            }
        }
    }
    out
}

/// Why the index did not answer a question (the walker then walks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The tenant's index is being built, or was built from another schema
    /// version than the engine's.
    NotReady,
    /// The index has not yet processed every entry through the reader's
    /// revision.
    Behind,
    /// The relation changed after the reader's revision (the index is
    /// ahead of it), or holds a tuple outside the schema.
    Stale,
    /// The relation qualifies but the subject's shape is not one the
    /// index answers (e.g. a userset of another relation).
    NotQualifying,
    /// The nesting is deeper than the walker's depth budget: the walk
    /// decides (and reports the depth limit, as without the index).
    TooDeep,
}

/// The subject of a question.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Its type name.
    pub object_type: &'a str,
    /// Its id (`*` for the wildcard).
    pub id: &'a str,
    /// Its relation, for a userset subject.
    pub relation: Option<&'a str>,
}

/// An answer of the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// ALLOWED or DENIED (the index never holds conditional tuples).
    pub outcome: Outcome,
    /// The relation-wide cache footprint key the answer depends on.
    pub footprint: u64,
    /// A trace line explaining it, when asked for.
    pub explain: Option<String>,
}

/// One qualifying relation `T#R` of one tenant.
#[derive(Debug, Default)]
struct RelIndex {
    object_type: Box<str>,
    relation: Box<str>,
    /// Allowed direct subject types.
    direct: Vec<Box<str>>,
    /// Subject types whose wildcard is allowed.
    wildcard: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    /// For each group, the member and edge entries naming it (an edge
    /// counts once at each end): an id with none is dead, and stays
    /// interned until the tenant is rebuilt (see [`RelIndex::wants_compaction`]).
    refs: Vec<u32>,
    /// The interned ids with at least one reference.
    live: usize,
    /// For each group, the groups that directly include it.
    parents: Vec<Vec<u32>>,
    /// For each group, the groups it directly includes (to tell how deep
    /// the walk below a group would go).
    children: Vec<Vec<u32>>,
    /// Subject type → subject id → groups it is directly in.
    members: HashMap<Box<str>, HashMap<Box<str>, Vec<u32>>>,
    member_count: u64,
    edge_count: u64,
    /// The last revision at which a tuple of this relation changed (the
    /// build revision at first).
    last_changed: Revision,
    /// Set when a tuple outside the qualifying shape was seen (caveat,
    /// expiration, another userset): the index then never answers.
    tainted: bool,
}

fn insert(v: &mut Vec<u32>, x: u32) -> bool {
    if v.contains(&x) {
        return false;
    }
    v.push(x);
    true
}

fn remove(v: &mut Vec<u32>, x: u32) -> bool {
    match v.iter().position(|&y| y == x) {
        Some(i) => {
            v.swap_remove(i);
            true
        }
        None => false,
    }
}

impl RelIndex {
    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.ids.get(id) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.ids.insert(id.into(), i);
        self.names.push(id.into());
        self.parents.push(Vec::new());
        self.children.push(Vec::new());
        self.refs.push(0);
        i
    }

    /// Counts one more (`up`) or one fewer reference to group `i`.
    fn reference(&mut self, i: u32, up: bool) {
        let Some(n) = self.refs.get_mut(i as usize) else {
            return;
        };
        if up {
            self.live += usize::from(*n == 0);
            *n = n.saturating_add(1);
        } else if *n > 0 {
            *n -= 1;
            self.live -= usize::from(*n == 0);
        }
    }

    /// Whether enough interned ids are dead (no member or edge names them)
    /// to rebuild the tenant and release them: at least
    /// [`COMPACT_MIN_DEAD`] and more than half of them.
    fn wants_compaction(&self) -> bool {
        let dead = self.names.len().saturating_sub(self.live);
        dead >= COMPACT_MIN_DEAD && dead * 2 > self.names.len()
    }

    /// Adds (`present`) or removes `tuple`, a tuple of this relation.
    fn apply(&mut self, tuple: &Tuple, present: bool) {
        if tuple.caveat.is_some() || tuple.expiration.is_some() {
            self.tainted = true;
            return;
        }
        let s = &tuple.subject;
        let group = self.intern(&tuple.resource.object_id);
        match &s.relation {
            Some(r) if *s.object.object_type == *self.object_type && **r == *self.relation => {
                let child = self.intern(&s.object.object_id);
                #[expect(
                    clippy::indexing_slicing,
                    reason = "`child` from `intern` just above: ids come from `intern`, which grows `names`, `parents`, `children` and `refs` together, and are never freed (compaction rebuilds the RelIndex)"
                )]
                let parents = &mut self.parents[child as usize];
                let changed = if present {
                    insert(parents, group)
                } else {
                    remove(parents, group)
                };
                #[expect(
                    clippy::indexing_slicing,
                    reason = "`group` from `intern` just above: ids come from `intern`, which grows `names`, `parents`, `children` and `refs` together, and are never freed (compaction rebuilds the RelIndex)"
                )]
                let children = &mut self.children[group as usize];
                if present {
                    insert(children, child);
                } else {
                    remove(children, child);
                }
                if changed {
                    self.edge_count = if present {
                        self.edge_count + 1
                    } else {
                        self.edge_count.saturating_sub(1)
                    };
                    self.reference(group, present);
                    self.reference(child, present);
                }
            }
            Some(_) => self.tainted = true,
            None => {
                let ty = &*s.object.object_type;
                let allowed = if s.object.object_id == WILDCARD {
                    self.wildcard.iter().any(|w| **w == *ty)
                } else {
                    self.direct.iter().any(|d| **d == *ty)
                };
                if !allowed {
                    self.tainted = true;
                    return;
                }
                let by_id = self.members.entry(ty.into()).or_default();
                let changed = if present {
                    insert(
                        by_id.entry(s.object.object_id.as_str().into()).or_default(),
                        group,
                    )
                } else {
                    match by_id.get_mut(s.object.object_id.as_str()) {
                        Some(groups) => {
                            let removed = remove(groups, group);
                            if groups.is_empty() {
                                by_id.remove(s.object.object_id.as_str());
                            }
                            removed
                        }
                        None => false,
                    }
                };
                if changed {
                    self.member_count = if present {
                        self.member_count + 1
                    } else {
                        self.member_count.saturating_sub(1)
                    };
                    self.reference(group, present);
                }
            }
        }
    }

    /// The groups `subject` is directly in (with the group itself as the
    /// path's first step for a userset), or `None` for an unsupported shape.
    #[expect(
        clippy::indexing_slicing,
        reason = "`h` is looked up in `ids`: ids come from `intern`, which grows `names`, `parents`, `children` and `refs` together, and are never freed (compaction rebuilds the RelIndex)"
    )]
    fn starts(&self, subject: &Subject<'_>) -> Option<Vec<(u32, Option<u32>)>> {
        match subject.relation {
            Some(r) => {
                if subject.object_type != &*self.object_type || r != &*self.relation {
                    return None;
                }
                let Some(&h) = self.ids.get(subject.id) else {
                    return Some(Vec::new());
                };
                Some(
                    self.parents[h as usize]
                        .iter()
                        .map(|&p| (p, Some(h)))
                        .collect(),
                )
            }
            None => {
                let ty = subject.object_type;
                let direct = self.direct.iter().any(|d| &**d == ty);
                let wildcard = subject.id == WILDCARD && self.wildcard.iter().any(|w| &**w == ty);
                if !(direct || wildcard) {
                    return None;
                }
                let mut out = Vec::new();
                if let Some(by_id) = self.members.get(ty) {
                    if let Some(groups) = by_id.get(subject.id) {
                        out.extend(groups.iter().map(|&g| (g, None)));
                    }
                    if subject.id != WILDCARD && self.wildcard.iter().any(|w| &**w == ty) {
                        if let Some(groups) = by_id.get(WILDCARD) {
                            out.extend(groups.iter().map(|&g| (g, None)));
                        }
                    }
                }
                Some(out)
            }
        }
    }

    /// Searches from `subject`'s direct groups up the inclusion edges for
    /// one of `targets`, at most `levels` groups deep (the walker's depth
    /// budget: a longer path, or an unfinished search, is left to the walk,
    /// which then reports the depth limit as it always has).
    fn search(&self, subject: &Subject<'_>, targets: &[&str], levels: u32) -> Search {
        let Some(starts) = self.starts(subject) else {
            return Search::Unsupported;
        };
        let targets: Vec<u32> = targets
            .iter()
            .filter_map(|t| self.ids.get(*t).copied())
            .collect();
        if targets.is_empty() {
            return Search::NotMember;
        }
        if starts.is_empty() {
            return if self.deeper_than(&targets, levels) {
                Search::TooDeep
            } else {
                Search::NotMember
            };
        }
        // node → (predecessor on the search tree (u32::MAX = a root), level).
        let mut seen: HashMap<u32, (u32, u32)> = HashMap::new();
        let mut queue = VecDeque::new();
        let path_to = |seen: &HashMap<u32, (u32, u32)>, mut n: u32| {
            let mut path = vec![n];
            while let Some(&(p, _)) = seen.get(&n) {
                if p == u32::MAX {
                    break;
                }
                path.push(p);
                n = p;
            }
            path.reverse();
            path
        };
        for (g, via) in starts {
            // The userset subject's own group roots the path (and is never
            // a target: the walker answers `h` on `h` itself). Inserted
            // first, so a self-loop edge cannot make it its own predecessor.
            if let Some(h) = via {
                seen.entry(h).or_insert((u32::MAX, 0));
            }
            if seen.contains_key(&g) {
                continue;
            }
            seen.insert(g, (via.unwrap_or(u32::MAX), 1));
            if targets.contains(&g) {
                return Search::Member(path_to(&seen, g));
            }
            queue.push_back((g, 1));
        }
        let mut truncated = false;
        while let Some((g, level)) = queue.pop_front() {
            #[expect(
                clippy::indexing_slicing,
                reason = "queued groups are starts or parents of interned groups: ids come from `intern`, which grows `names`, `parents`, `children` and `refs` together, and are never freed (compaction rebuilds the RelIndex); the search's hot loop"
            )]
            let parents = &self.parents[g as usize];
            if level >= levels {
                truncated |= !parents.is_empty();
                continue;
            }
            for &p in parents {
                if seen.contains_key(&p) {
                    continue;
                }
                seen.insert(p, (g, level + 1));
                if targets.contains(&p) {
                    return Search::Member(path_to(&seen, p));
                }
                queue.push_back((p, level + 1));
            }
        }
        if truncated || self.deeper_than(&targets, levels) {
            Search::TooDeep
        } else {
            Search::NotMember
        }
    }

    /// Whether the groups nested below `targets` go more than `levels`
    /// levels deep (counting the targets as level 1): the walk, which
    /// descends level by level to find a non-member absent, would then hit
    /// its depth limit.
    #[expect(
        clippy::indexing_slicing,
        reason = "targets are looked up in `ids` and the frontier grows by children: ids come from `intern`, which grows `names`, `parents`, `children` and `refs` together, and are never freed (compaction rebuilds the RelIndex)"
    )]
    fn deeper_than(&self, targets: &[u32], levels: u32) -> bool {
        let mut seen: HashSet<u32> = targets.iter().copied().collect();
        let mut frontier: Vec<u32> = seen.iter().copied().collect();
        let mut level = 1;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for g in frontier {
                for &c in &self.children[g as usize] {
                    if seen.insert(c) {
                        next.push(c);
                    }
                }
            }
            if !next.is_empty() && level >= levels {
                return true;
            }
            frontier = next;
            level += 1;
        }
        false
    }
}

/// What a search found.
enum Search {
    /// A path of groups from the subject to a target.
    Member(Vec<u32>),
    NotMember,
    /// The subject's shape is not one the index answers.
    Unsupported,
    /// Deeper than the depth budget.
    TooDeep,
}

/// One tenant's index at one revision.
#[derive(Debug)]
struct TenantState {
    /// The revision at which the schema it was built from became active
    /// (`None`: the tenant had no schema).
    schema_revision: Option<Revision>,
    /// Every change through this revision is in.
    indexed: Revision,
    relations: Vec<RelIndex>,
}

impl TenantState {
    /// Applies the TOUCHes of an import at `revision` (only tuples of this
    /// state's relations matter), unless a build already caught up past it.
    fn apply_import(&mut self, kept: &[Tuple], revision: Revision) {
        if self.indexed >= revision {
            return;
        }
        for t in kept {
            for rel in &mut self.relations {
                if *rel.object_type == *t.resource.object_type && *rel.relation == *t.relation {
                    rel.apply(t, true);
                    rel.last_changed = revision;
                }
            }
        }
        self.indexed = revision;
    }

    /// Whether one of its relations holds enough dead ids to be rebuilt.
    fn wants_compaction(&self) -> bool {
        self.relations.iter().any(RelIndex::wants_compaction)
    }

    fn apply_batch(&mut self, batch: &ChangeBatch) {
        for change in &batch.changes {
            let t = &change.tuple;
            for rel in &mut self.relations {
                if *rel.object_type == *t.resource.object_type && *rel.relation == *t.relation {
                    rel.apply(t, change.kind != ChangeKind::Delete);
                    rel.last_changed = batch.revision;
                }
            }
        }
    }
}

/// A tenant's slot: its state when ready, and the build in progress.
#[derive(Debug, Default)]
struct Slot {
    state: Option<TenantState>,
    /// A build is running; only the one holding `ticket` may install.
    building: bool,
    ticket: u64,
}

enum CatchUp {
    Done,
    SchemaChanged,
}

/// An import announced by [`GroupIndex::before_import`], awaiting its
/// `after_apply`.
#[derive(Debug)]
struct PendingImport {
    tenant: Box<str>,
    revision: Revision,
    /// The ticket of the ready state `kept` was filtered for.
    ticket: u64,
    /// The imported tuples of that state's relations (none once the
    /// import was rejected).
    kept: Vec<Tuple>,
}

/// The index's counters.
#[derive(Debug, Default)]
struct Counters {
    answers: AtomicU64,
    not_ready: AtomicU64,
    behind: AtomicU64,
    stale: AtomicU64,
    not_qualifying: AtomicU64,
    too_deep: AtomicU64,
    rebuilds: AtomicU64,
    compactions: AtomicU64,
    imports_direct: AtomicU64,
}

/// Counters and sizes of the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupIndexStats {
    /// Questions answered by the index.
    pub answers: u64,
    /// Fallbacks: tenant not built (or built from another schema version).
    pub fallback_not_ready: u64,
    /// Fallbacks: the index had not processed the reader's revision yet.
    pub fallback_behind: u64,
    /// Fallbacks: the relation changed after the reader's revision.
    pub fallback_stale: u64,
    /// Fallbacks: a subject shape the index does not answer.
    pub fallback_not_qualifying: u64,
    /// Fallbacks: nesting deeper than the walker's depth budget.
    pub fallback_too_deep: u64,
    /// Tenant builds completed.
    pub rebuilds: u64,
    /// Tenant builds started to release dead interned ids.
    pub compactions: u64,
    /// Imports applied from their announced tuples (not read back).
    pub imports_direct: u64,
    /// Direct member tuples held.
    pub members: u64,
    /// Nesting edges held.
    pub edges: u64,
    /// Group ids interned.
    pub interned_ids: u64,
    /// Interned group ids some member or edge names.
    pub live_ids: u64,
}

/// The group index of every tenant on this replica.
#[derive(Debug, Default)]
pub struct GroupIndex {
    tenants: RwLock<HashMap<String, Arc<RwLock<Slot>>>>,
    /// Every applied entry through this revision has been processed (for
    /// each tenant whose state is ready).
    synced: AtomicU64,
    tickets: AtomicU64,
    counters: Counters,
    /// The import being applied, announced by `before_import`.
    pending: Mutex<Option<PendingImport>>,
    /// Background builds started by `after_apply` and not yet finished.
    in_flight: Mutex<usize>,
    builds_finished: Condvar,
}

/// Counts one background build as finished when dropped (even by a panic).
struct InFlight<'a>(&'a GroupIndex);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.in_flight.lock() {
            *n = n.saturating_sub(1);
        }
        self.0.builds_finished.notify_all();
    }
}

impl GroupIndex {
    /// An empty index (every tenant "not ready" until built).
    pub fn new() -> Self {
        GroupIndex::default()
    }

    fn slot(&self, tenant: &str) -> Option<Arc<RwLock<Slot>>> {
        self.tenants.read().ok()?.get(tenant).cloned()
    }

    fn slot_or_insert(&self, tenant: &str) -> Option<Arc<RwLock<Slot>>> {
        if let Some(s) = self.slot(tenant) {
            return Some(s);
        }
        let mut map = self.tenants.write().ok()?;
        Some(map.entry(tenant.to_string()).or_default().clone())
    }

    /// Starts a build of `tenant`: its state is dropped (not ready) and the
    /// returned ticket is the only one allowed to install the new state.
    fn begin_build(&self, slot: &mut Slot) -> u64 {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed) + 1;
        slot.state = None;
        slot.building = true;
        slot.ticket = ticket;
        ticket
    }

    /// Installs `built` (unless another build superseded `ticket`), first
    /// catching it up to the store's applied revision.
    fn finish_build<S: RelationStore>(
        &self,
        store: &S,
        tenant: &Tenant,
        ticket: u64,
        mut built: Result<TenantState, StorageError>,
    ) {
        loop {
            let Some(slot) = self.slot(tenant.as_str()) else {
                return;
            };
            let Ok(mut slot) = slot.write() else { return };
            if slot.ticket != ticket {
                return;
            }
            let target = store.applied_revision();
            let result = built.and_then(|mut state| {
                Ok(match catch_up(store, tenant, &mut state, target)? {
                    CatchUp::Done => Some(state),
                    CatchUp::SchemaChanged => None,
                })
            });
            slot.building = false;
            match result {
                Ok(Some(state)) => {
                    slot.state = Some(state);
                    self.counters.rebuilds.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(None) => {
                    // The schema changed while building (rare): build again
                    // at `target`, without holding the tenant's lock.
                    slot.building = true;
                    drop(slot);
                    built = build_caught_up(store, tenant, target);
                }
                Err(e) => {
                    tracing::warn!(tenant = tenant.as_str(), error = %e, "group index build failed; the walker walks");
                    return;
                }
            }
        }
    }

    /// Processes the entry just applied at `revision` (for `tenant`, if it
    /// was a tenant's command): reads what changed from the changelog and
    /// updates that tenant, starting a background rebuild on a schema
    /// change. Call after every applied entry, in order, on the applying
    /// thread.
    pub fn after_apply<S: RelationStore + 'static>(
        self: &Arc<Self>,
        store: &Arc<S>,
        tenant: Option<&Tenant>,
        revision: Revision,
    ) {
        if let Some(tenant) = tenant {
            self.process(store, tenant, revision);
        }
        self.synced.fetch_max(revision.0, Ordering::AcqRel);
    }

    /// Notes the tuples an import into `tenant` at `revision` is about to
    /// touch, keeping those of the tenant's qualifying relations, so that
    /// [`GroupIndex::after_apply`] need not read them back. Call on the
    /// applying thread, before the store applies the import.
    pub fn before_import(&self, tenant: &Tenant, revision: Revision, tuples: &[Tuple]) {
        let pending = self.slot(tenant.as_str()).and_then(|slot| {
            let guard = slot.read().ok()?;
            let state = guard.state.as_ref()?;
            let kept = if state.relations.is_empty() {
                Vec::new()
            } else {
                tuples
                    .iter()
                    .filter(|t| {
                        state.relations.iter().any(|r| {
                            *r.relation == *t.relation && *r.object_type == *t.resource.object_type
                        })
                    })
                    .cloned()
                    .collect()
            };
            Some(PendingImport {
                tenant: tenant.as_str().into(),
                revision,
                ticket: guard.ticket,
                kept,
            })
        });
        if let Ok(mut p) = self.pending.lock() {
            *p = pending;
        }
    }

    /// The import announced at `revision` was rejected: it changed nothing.
    pub fn import_rejected(&self, tenant: &Tenant, revision: Revision) {
        if let Ok(mut p) = self.pending.lock() {
            if let Some(p) = p
                .as_mut()
                .filter(|p| p.revision == revision && *p.tenant == *tenant.as_str())
            {
                p.kept.clear();
            }
        }
    }

    /// The pending import of `tenant` at `revision`, if one was announced
    /// (any other is dropped: its entry was not applied).
    fn take_pending(&self, tenant: &Tenant, revision: Revision) -> Option<PendingImport> {
        let pending = self.pending.lock().ok()?.take()?;
        (pending.revision == revision && *pending.tenant == *tenant.as_str()).then_some(pending)
    }

    fn process<S: RelationStore + 'static>(
        self: &Arc<Self>,
        store: &Arc<S>,
        tenant: &Tenant,
        revision: Revision,
    ) {
        let pending = self.take_pending(tenant, revision);
        let Some(slot) = self.slot_or_insert(tenant.as_str()) else {
            return;
        };
        let ticket = {
            let Ok(mut guard) = slot.write() else { return };
            let ticket = guard.ticket;
            // INVARIANT (direct import): a ready state holds every change of
            // its tenant below `revision`. It was installed by a build that
            // caught up to the store's applied revision A under this lock;
            // each later entry of the tenant (revision > A, so applied after
            // that read) then reached this lock after the install and was
            // processed into it — entries arrive in log order on this thread,
            // replays on start are never observed but precede every build's
            // A, and anything that drops the state (a schema change, a failed
            // catch-up, a snapshot's clear, a rebuild) takes a new ticket. So
            // when the state that filtered `kept` (same ticket) is still
            // ready, the import's changes are exactly `kept` (none if it was
            // rejected) and applying them is exact; if a build already caught
            // up past `revision` they are in. Otherwise: the changelog.
            let outcome = guard.state.as_mut().map(|state| match pending {
                Some(p) if p.ticket == ticket => {
                    state.apply_import(&p.kept, revision);
                    self.counters.imports_direct.fetch_add(1, Ordering::Relaxed);
                    Ok(CatchUp::Done)
                }
                _ => catch_up(&**store, tenant, state, revision),
            });
            match outcome {
                // Churn left too many dead interned ids: release them by
                // rebuilding in the background (not ready meanwhile).
                Some(Ok(CatchUp::Done))
                    if guard
                        .state
                        .as_ref()
                        .is_some_and(TenantState::wants_compaction) =>
                {
                    self.counters.compactions.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        tenant = tenant.as_str(),
                        "group index compaction: rebuilding to release dead ids"
                    );
                }
                Some(Ok(CatchUp::Done)) => return,
                Some(Ok(CatchUp::SchemaChanged)) => {}
                Some(Err(e)) => {
                    tracing::warn!(tenant = tenant.as_str(), error = %e, "group index catch-up failed; rebuilding");
                }
                None if guard.building => return,
                None => {}
            }
            self.begin_build(&mut guard)
        };
        self.build_in_background(store, tenant, ticket, revision);
    }

    /// Builds `tenant` at `revision` for build `ticket` on a new thread and
    /// installs it (the tenant is "not ready" meanwhile). Should the thread
    /// not start, builds here.
    fn build_in_background<S: RelationStore + 'static>(
        self: &Arc<Self>,
        store: &Arc<S>,
        tenant: &Tenant,
        ticket: u64,
        revision: Revision,
    ) {
        if let Ok(mut n) = self.in_flight.lock() {
            *n += 1;
        }
        let job = {
            let (index, store, tenant) = (self.clone(), store.clone(), tenant.clone());
            move || {
                let _done = InFlight(&index);
                let built = build_caught_up(&*store, &tenant, revision);
                index.finish_build(&*store, &tenant, ticket, built);
            }
        };
        let spawned = std::thread::Builder::new()
            .name("group-index-build".into())
            .spawn(job);
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a group index build thread; building on this one");
            let _done = InFlight(self);
            let built = build_caught_up(&**store, tenant, revision);
            self.finish_build(&**store, tenant, ticket, built);
        }
    }

    /// Waits until every background build `after_apply` started has
    /// finished, at most `timeout`; whether they all had.
    pub fn wait_for_builds(&self, timeout: Duration) -> bool {
        let Ok(n) = self.in_flight.lock() else {
            return false;
        };
        self.builds_finished
            .wait_timeout_while(n, timeout, |n| *n > 0)
            .is_ok_and(|(_, t)| !t.timed_out())
    }

    /// Forgets every tenant (a snapshot is replacing the store).
    pub fn clear(&self) {
        if let Ok(mut map) = self.tenants.write() {
            map.clear();
        }
        if let Ok(mut p) = self.pending.lock() {
            *p = None;
        }
    }

    /// Marks `tenants` as being built and builds each from a snapshot at
    /// the store's applied revision, catching each up before installing it
    /// (run on a background thread: on start and after a snapshot install).
    pub fn rebuild_all<S: RelationStore>(&self, store: &S, tenants: &[Tenant]) {
        let mut tickets = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            if let Some(slot) = self.slot_or_insert(tenant.as_str()) {
                if let Ok(mut guard) = slot.write() {
                    tickets.push((tenant, self.begin_build(&mut guard)));
                }
            }
        }
        for (tenant, ticket) in tickets {
            let built = build_caught_up(store, tenant, store.applied_revision());
            self.finish_build(store, tenant, ticket, built);
        }
    }

    /// The index's answer to "does `subject` have `object_type#relation` on
    /// any of `ids`?" at the reader's revision, or why it cannot give one.
    #[expect(
        clippy::too_many_arguments,
        reason = "one index question: where (reader, schema revision), what (type, relation, ids), who, how deep, and whether to explain the answer"
    )]
    pub fn answer(
        &self,
        reader: &dyn TupleReader,
        schema_revision: Revision,
        object_type: &str,
        relation: &str,
        ids: &[&str],
        subject: &Subject<'_>,
        levels: u32,
        explain: bool,
    ) -> Result<Answer, Fallback> {
        let result = self.answer_inner(
            reader,
            schema_revision,
            object_type,
            relation,
            ids,
            subject,
            levels,
            explain,
        );
        let c = &self.counters;
        let counter = match &result {
            Ok(_) => &c.answers,
            Err(Fallback::NotReady) => &c.not_ready,
            Err(Fallback::Behind) => &c.behind,
            Err(Fallback::Stale) => &c.stale,
            Err(Fallback::NotQualifying) => &c.not_qualifying,
            Err(Fallback::TooDeep) => &c.too_deep,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the arguments of `GroupIndex::answer`, which it wraps to count the outcome"
    )]
    fn answer_inner(
        &self,
        reader: &dyn TupleReader,
        schema_revision: Revision,
        object_type: &str,
        relation: &str,
        ids: &[&str],
        subject: &Subject<'_>,
        levels: u32,
        explain: bool,
    ) -> Result<Answer, Fallback> {
        let tenant = reader.tenant().as_str();
        let revision = reader.revision();
        let slot = self.slot(tenant).ok_or(Fallback::NotReady)?;
        let guard = slot.read().map_err(|_| Fallback::NotReady)?;
        let state = guard.state.as_ref().ok_or(Fallback::NotReady)?;
        if state.schema_revision != Some(schema_revision) {
            return Err(Fallback::NotReady);
        }
        let synced = Revision(self.synced.load(Ordering::Acquire));
        if state.indexed.max(synced) < revision {
            return Err(Fallback::Behind);
        }
        let rel = state
            .relations
            .iter()
            .find(|r| &*r.object_type == object_type && &*r.relation == relation)
            .ok_or(Fallback::NotQualifying)?;
        // INVARIANT (exact-at-revision): the relation is the same at
        // `revision` as at `indexed` only if it did not change in between.
        if rel.tainted || rel.last_changed > revision {
            return Err(Fallback::Stale);
        }
        let found = match rel.search(subject, ids, levels) {
            Search::Member(path) => Some(path),
            Search::NotMember => None,
            Search::Unsupported => return Err(Fallback::NotQualifying),
            Search::TooDeep => return Err(Fallback::TooDeep),
        };
        let outcome = if found.is_some() {
            Outcome::Allowed
        } else {
            Outcome::Denied
        };
        let explain = explain.then(|| {
            let mut s = format!("group index: {}:{}", subject.object_type, subject.id);
            if let Some(r) = subject.relation {
                let _ = write!(s, "#{r}");
            }
            match &found {
                Some(path) => {
                    let name = |g: u32| rel.names.get(g as usize).map_or("", |n| &**n);
                    let last = path.last().map_or("", |&g| name(g));
                    let _ = write!(s, " reaches {object_type}:{last}#{relation} via ");
                    let steps: Vec<&str> = path.iter().map(|&g| name(g)).collect();
                    s.push_str(&steps.join(" → "));
                }
                None => {
                    let _ = write!(
                        s,
                        " is not a member of {object_type}:{}#{relation}",
                        ids.join(",")
                    );
                }
            }
            s
        });
        Ok(Answer {
            outcome,
            footprint: relation_key(tenant, object_type, relation),
            explain,
        })
    }

    /// Counters and sizes.
    pub fn stats(&self) -> GroupIndexStats {
        let c = &self.counters;
        let mut stats = GroupIndexStats {
            answers: c.answers.load(Ordering::Relaxed),
            fallback_not_ready: c.not_ready.load(Ordering::Relaxed),
            fallback_behind: c.behind.load(Ordering::Relaxed),
            fallback_stale: c.stale.load(Ordering::Relaxed),
            fallback_not_qualifying: c.not_qualifying.load(Ordering::Relaxed),
            fallback_too_deep: c.too_deep.load(Ordering::Relaxed),
            rebuilds: c.rebuilds.load(Ordering::Relaxed),
            compactions: c.compactions.load(Ordering::Relaxed),
            imports_direct: c.imports_direct.load(Ordering::Relaxed),
            ..GroupIndexStats::default()
        };
        let slots: Vec<_> = self
            .tenants
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for slot in slots {
            if let Ok(s) = slot.read() {
                for rel in s.state.iter().flat_map(|st| &st.relations) {
                    stats.members += rel.member_count;
                    stats.edges += rel.edge_count;
                    stats.interned_ids += rel.names.len() as u64;
                    stats.live_ids += rel.live as u64;
                }
            }
        }
        stats
    }
}

/// Applies `tenant`'s changes in `(state.indexed, target]` to `state`.
fn catch_up<S: RelationStore>(
    store: &S,
    tenant: &Tenant,
    state: &mut TenantState,
    target: Revision,
) -> Result<CatchUp, StorageError> {
    while state.indexed < target {
        let batches = store.changes_since(tenant, state.indexed, CATCH_UP_PAGE)?;
        let full = batches.len() == CATCH_UP_PAGE;
        for batch in &batches {
            if batch.revision > target {
                break;
            }
            if batch.schema_version.is_some() {
                return Ok(CatchUp::SchemaChanged);
            }
            state.apply_batch(batch);
            state.indexed = batch.revision;
        }
        if !full || batches.last().is_some_and(|b| b.revision >= target) {
            break;
        }
    }
    state.indexed = state.indexed.max(target);
    Ok(CatchUp::Done)
}

/// Builds `tenant`'s index at `at` and catches it up to the store's
/// applied revision, without holding the tenant's lock (the install then
/// has only the entries applied meanwhile left to catch up; a schema change
/// met here is met again there, and rebuilt for).
fn build_caught_up<S: RelationStore>(
    store: &S,
    tenant: &Tenant,
    at: Revision,
) -> Result<TenantState, StorageError> {
    let mut state = build(store, tenant, at)?;
    catch_up(store, tenant, &mut state, store.applied_revision())?;
    Ok(state)
}

/// Builds `tenant`'s index from a snapshot at `at`, for the schema active
/// there.
fn build<S: RelationStore>(
    store: &S,
    tenant: &Tenant,
    at: Revision,
) -> Result<TenantState, StorageError> {
    let span = tracing::info_span!(
        "group_index_build",
        tenant = tenant.as_str(),
        revision = at.0
    );
    let _entered = span.enter();
    let started = Instant::now();
    let stored = store.schema_at(tenant, at)?;
    let mut state = TenantState {
        schema_revision: stored.as_ref().map(|s| s.revision),
        indexed: at,
        relations: Vec::new(),
    };
    let Some(stored) = stored.filter(|s| !s.record.text.is_empty()) else {
        return Ok(state);
    };
    let compiled = match schema::compile(&stored.record.text, &SchemaLimits::default()) {
        Ok(c) => c.schema,
        Err(e) => {
            tracing::warn!(error = %e, "stored schema does not compile; no group index");
            return Ok(state);
        }
    };
    let snapshot = store.snapshot(tenant, at)?;
    for (ty, rel) in qualifying(&compiled) {
        let def = compiled.definition(ty);
        let relation = def.relation(rel);
        let mut index = RelIndex {
            object_type: (*def.name).into(),
            relation: (*relation.name).into(),
            last_changed: at,
            ..RelIndex::default()
        };
        for a in relation.allowed() {
            let name: Box<str> = (*compiled.definition(a.subject_type).name).into();
            match a.kind {
                AllowedKind::Direct => index.direct.push(name),
                AllowedKind::Wildcard => index.wildcard.push(name),
                AllowedKind::Userset(_) => {}
            }
        }
        let filter = TupleFilter {
            resource_type: Some(def.name.to_string()),
            relation: Some(relation.name.to_string()),
            ..TupleFilter::default()
        };
        snapshot.for_each_tuple(&filter, BUILD_PAGE, |t| {
            index.apply(&t, true);
            Ok(())
        })?;
        state.relations.push(index);
    }
    let (members, edges): (u64, u64) = state
        .relations
        .iter()
        .fold((0, 0), |(m, e), r| (m + r.member_count, e + r.edge_count));
    tracing::info!(
        relations = state.relations.len(),
        members,
        edges,
        duration_ms = started.elapsed().as_secs_f64() * 1e3,
        "group index built"
    );
    Ok(state)
}

/// The group index as one engine (one schema version of one tenant) uses
/// it: the index, the schema version's revision and its qualifying
/// relations.
#[derive(Debug, Clone)]
pub struct EngineGroupIndex {
    index: Arc<GroupIndex>,
    schema_revision: Revision,
    qualifying: Arc<HashSet<(TypeId, RelationId)>>,
}

impl EngineGroupIndex {
    /// Binds `index` to the schema that became active at `schema_revision`.
    pub fn new(index: Arc<GroupIndex>, schema: &Schema, schema_revision: Revision) -> Self {
        EngineGroupIndex {
            index,
            schema_revision,
            qualifying: Arc::new(qualifying(schema).into_iter().collect()),
        }
    }

    /// The index's answer for `ty#rel` on `ids`, when the relation qualifies
    /// and the index may answer at the reader's revision.
    #[expect(
        clippy::too_many_arguments,
        reason = "the walker's question as `GroupIndex::answer` takes it, plus the schema that resolves its ids"
    )]
    pub(crate) fn answer(
        &self,
        schema: &Schema,
        reader: &dyn TupleReader,
        (ty, rel): (TypeId, RelationId),
        ids: &[&str],
        subject: &Subject<'_>,
        levels: u32,
        explain: bool,
    ) -> Option<Answer> {
        if !self.qualifying.contains(&(ty, rel)) {
            return None;
        }
        let def = schema.definition(ty);
        self.index
            .answer(
                reader,
                self.schema_revision,
                &def.name,
                &def.relation(rel).name,
                ids,
                subject,
                levels,
                explain,
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CheckRequest, DecisionCache, Engine, EngineConfig};
    use proptest::prelude::*;
    use verdict_storage::{MemStore, ObjectRef, SchemaVersionRecord, SubjectRef, WriteBatch};

    const SCHEMA: &str = "definition user {}
definition group {
    relation member: user | group#member
}
definition doc {
    relation viewer: user | group#member
    permission view = viewer
}
";

    const GROUPS: usize = 4;
    const USERS: usize = 3;

    fn compile(text: &str) -> Arc<Schema> {
        Arc::new(
            schema::compile(text, &SchemaLimits::default())
                .unwrap()
                .schema,
        )
    }

    fn record(version: u64, text: &str) -> SchemaVersionRecord {
        SchemaVersionRecord {
            version,
            text: text.into(),
            ..SchemaVersionRecord::default()
        }
    }

    /// A store, the index fed after every apply, and a decision cache fed
    /// before it (as the server's state machine does).
    struct Fixture {
        store: Arc<MemStore>,
        index: Arc<GroupIndex>,
        cache: Arc<DecisionCache>,
        revision: u64,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                store: Arc::new(MemStore::new()),
                index: Arc::new(GroupIndex::new()),
                cache: Arc::new(DecisionCache::new(1 << 20).with_write_log()),
                revision: 0,
            }
        }

        fn apply(&mut self, tenant: &Tenant, batch: WriteBatch) -> Revision {
            self.revision += 1;
            let r = Revision(self.revision);
            self.cache.note_batch(tenant.as_str(), r.0, &batch);
            self.store.apply(tenant, r, &batch).unwrap();
            self.after_apply(tenant, r)
        }

        /// Processes `r` and waits for any build it started.
        fn after_apply(&self, tenant: &Tenant, r: Revision) -> Revision {
            self.index.after_apply(&self.store, Some(tenant), r);
            assert!(self.index.wait_for_builds(Duration::from_secs(30)));
            r
        }

        /// A bulk import, told to the index as the state machine does
        /// (announced, applied or rejected, then processed).
        fn import(&mut self, tenant: &Tenant, tuples: Vec<Tuple>) -> Revision {
            self.revision += 1;
            let r = Revision(self.revision);
            self.cache.note_import(tenant.as_str(), r.0, tuples.iter());
            self.index.before_import(tenant, r, &tuples);
            match self.store.bulk_import(tenant, r, &mut tuples.into_iter()) {
                Ok(_) => {}
                Err(e) if e.is_rejection() => self.index.import_rejected(tenant, r),
                Err(e) => panic!("import: {e}"),
            }
            self.after_apply(tenant, r)
        }

        fn engines(&self, text: &str, schema_revision: Revision) -> (Engine, Engine) {
            let plain = Engine::new(compile(text), EngineConfig::default()).unwrap();
            let indexed = plain
                .clone()
                .with_group_index(self.index.clone(), schema_revision)
                .with_cache(self.cache.clone());
            (plain, indexed)
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "test helper: one check spelled out in full at each call site"
    )]
    fn check(
        engine: &Engine,
        store: &MemStore,
        tenant: &Tenant,
        at: u64,
        resource: &str,
        permission: &str,
        subject: &SubjectRef,
        trace: bool,
    ) -> (Outcome, Option<String>) {
        let reader = store.snapshot(tenant, Revision(at)).unwrap();
        let (ty, id) = resource.split_once(':').unwrap();
        let mut req = CheckRequest::new(ObjectRef::new(ty, id), permission, subject.clone());
        req.trace = trace;
        let resp = engine.check(&reader, &req).unwrap();
        (resp.outcome, resp.trace.map(|t| t.render()))
    }

    fn user(id: &str) -> SubjectRef {
        SubjectRef::direct("user", id)
    }

    /// `user:ann` in g0, and g0 ⊂ g1 ⊂ … ⊂ g9.
    fn ann_in_a_ten_deep_chain() -> WriteBatch {
        let mut batch = WriteBatch::new().touch(Tuple::parse("group:g0#member@user:ann").unwrap());
        for g in 1..10 {
            batch = batch.touch(
                Tuple::parse(&format!("group:g{g}#member@group:g{}#member", g - 1)).unwrap(),
            );
        }
        batch
    }

    fn group_set(g: usize) -> SubjectRef {
        SubjectRef::userset("group", format!("g{g}"), "member")
    }

    #[test]
    fn a_deep_chain_is_answered_with_its_path_and_flips_only_at_later_revisions() {
        let mut f = Fixture::new();
        let t = Tenant::new("acme").unwrap();
        let schema_rev = f.apply(&t, WriteBatch::new().put_schema(record(1, SCHEMA)));
        let batch = ann_in_a_ten_deep_chain();
        let built = f.apply(&t, batch);
        let (_, engine) = f.engines(SCHEMA, schema_rev);
        let (o, trace) = check(
            &engine,
            &f.store,
            &t,
            built.0,
            "group:g9",
            "member",
            &user("ann"),
            true,
        );
        assert_eq!(o, Outcome::Allowed);
        let trace = trace.unwrap();
        assert!(
            trace.contains("group index: user:ann reaches group:g9#member via g0 → g1"),
            "{trace}"
        );
        assert_eq!(f.index.stats().answers, 1);
        assert_eq!((f.index.stats().members, f.index.stats().edges), (1, 9));
        // Cut the chain in the middle; the old revision keeps its answer
        // (by the walk: the relation changed after it), the new one flips.
        let cut = f.apply(
            &t,
            WriteBatch::new().delete(Tuple::parse("group:g5#member@group:g4#member").unwrap()),
        );
        let (o, trace) = check(
            &engine,
            &f.store,
            &t,
            cut.0,
            "group:g9",
            "member",
            &user("ann"),
            true,
        );
        assert_eq!(o, Outcome::Denied);
        assert!(trace.unwrap().contains("is not a member"));
        let before = f.index.stats();
        let engine = engine.without_cache();
        let (o, _) = check(
            &engine,
            &f.store,
            &t,
            built.0,
            "group:g9",
            "member",
            &user("ann"),
            false,
        );
        assert_eq!(o, Outcome::Allowed);
        // Every group the walk visits fell back (the relation changed since).
        assert_eq!(f.index.stats().fallback_stale, before.fallback_stale + 10);
        assert_eq!(f.index.stats().answers, before.answers);
    }

    #[test]
    fn nesting_past_the_depth_limit_is_left_to_the_walk_which_reports_it() {
        let mut f = Fixture::new();
        let t = Tenant::new("acme").unwrap();
        let schema_rev = f.apply(&t, WriteBatch::new().put_schema(record(1, SCHEMA)));
        let batch = ann_in_a_ten_deep_chain();
        let at = f.apply(&t, batch);
        let config = EngineConfig { max_depth: 6 };
        let plain = Engine::new(compile(SCHEMA), config.clone()).unwrap();
        let indexed = plain.clone().with_group_index(f.index.clone(), schema_rev);
        let reader = f.store.snapshot(&t, at).unwrap();
        let ask = |engine: &Engine, g: usize, who: &str| {
            let req = CheckRequest::new(
                ObjectRef::new("group", format!("g{g}")),
                "member",
                user(who),
            );
            engine
                .check(&reader, &req)
                .map(|r| r.outcome)
                .map_err(|e| e.to_string())
        };
        for g in 0..10 {
            for who in ["ann", "bob"] {
                assert_eq!(ask(&indexed, g, who), ask(&plain, g, who), "g{g} {who}");
            }
        }
        assert!(
            ask(&plain, 9, "ann").is_err(),
            "10 deep is past a depth of 6"
        );
        assert!(f.index.stats().fallback_too_deep > 0);
        assert!(f.index.stats().answers > 0);
    }

    #[test]
    fn a_schema_change_rebuilds_the_tenant_and_old_engines_fall_back() {
        let mut f = Fixture::new();
        let t = Tenant::new("acme").unwrap();
        let v1 = f.apply(&t, WriteBatch::new().put_schema(record(1, SCHEMA)));
        let w = f.apply(
            &t,
            WriteBatch::new()
                .touch(Tuple::parse("group:a#member@user:ann").unwrap())
                .touch(Tuple::parse("group:b#member@group:a#member").unwrap()),
        );
        let text2 = format!("{SCHEMA}definition team {{}}\n");
        let v2 = f.apply(&t, WriteBatch::new().put_schema(record(2, &text2)));
        let (_, old) = f.engines(SCHEMA, v1);
        let (_, new) = f.engines(&text2, v2);
        let (old, new) = (old.without_cache(), new.without_cache());
        // The old schema's engine at an old revision: the index was rebuilt
        // for the new schema, so it falls back (still right).
        let s = f.index.stats();
        let (o, _) = check(
            &old,
            &f.store,
            &t,
            w.0,
            "group:b",
            "member",
            &user("ann"),
            false,
        );
        assert_eq!(o, Outcome::Allowed);
        // Each group the walk visits fell back.
        assert_eq!(f.index.stats().fallback_not_ready, s.fallback_not_ready + 2);
        let (o, _) = check(
            &new,
            &f.store,
            &t,
            v2.0,
            "group:b",
            "member",
            &user("ann"),
            false,
        );
        assert_eq!(o, Outcome::Allowed);
        assert_eq!(f.index.stats().answers, s.answers + 1);
        assert!(f.index.stats().rebuilds >= 2);
    }

    #[test]
    fn a_background_rebuild_equals_the_incremental_index() {
        let mut f = Fixture::new();
        let t = Tenant::new("acme").unwrap();
        let v1 = f.apply(&t, WriteBatch::new().put_schema(record(1, SCHEMA)));
        f.apply(
            &t,
            WriteBatch::new()
                .touch(Tuple::parse("group:a#member@user:zed").unwrap())
                .touch(Tuple::parse("group:b#member@group:a#member").unwrap())
                .touch(Tuple::parse("group:a#member@group:b#member").unwrap()),
        );
        let fresh = Arc::new(GroupIndex::new());
        // Not built yet: not ready.
        let engine = Engine::new(compile(SCHEMA), EngineConfig::default())
            .unwrap()
            .with_group_index(fresh.clone(), v1);
        let at = f.revision;
        let (o, _) = check(
            &engine,
            &f.store,
            &t,
            at,
            "group:b",
            "member",
            &user("zed"),
            false,
        );
        assert_eq!(o, Outcome::Allowed);
        assert_eq!(fresh.stats().fallback_not_ready, 2);
        fresh.rebuild_all(&*f.store, std::slice::from_ref(&t));
        let (o, _) = check(
            &engine,
            &f.store,
            &t,
            at,
            "group:b",
            "member",
            &user("zed"),
            false,
        );
        assert_eq!(o, Outcome::Allowed);
        assert_eq!(fresh.stats().answers, 1);
        assert_eq!(fresh.stats().edges, f.index.stats().edges);
    }

    /// A [`MemStore`] whose `schema_at` (a build's first read) waits while
    /// the gate is closed, noting the threads that called it.
    #[derive(Default)]
    struct Gated {
        inner: MemStore,
        closed: std::sync::Mutex<bool>,
        opened: Condvar,
        builders: std::sync::Mutex<Vec<std::thread::ThreadId>>,
        /// How many calls found the gate closed (builds held at it).
        held: std::sync::Mutex<usize>,
        arrived: Condvar,
    }

    impl Gated {
        fn set_closed(&self, closed: bool) {
            *self.closed.lock().unwrap() = closed;
            self.opened.notify_all();
        }

        /// Waits (bounded) until `n` builds are held at the closed gate
        /// (builds that passed while it was open do not count).
        fn wait_arrivals(&self, n: usize) {
            let held = self.held.lock().unwrap();
            let (held, _) = self
                .arrived
                .wait_timeout_while(held, Duration::from_secs(30), |h| *h < n)
                .unwrap();
            assert_eq!(*held, n, "builds at the gate");
        }
    }

    impl RelationStore for Gated {
        type Snapshot<'a> = verdict_storage::MemSnapshot;

        fn applied_revision(&self) -> Revision {
            self.inner.applied_revision()
        }
        fn gc_floor(&self) -> Revision {
            self.inner.gc_floor()
        }
        fn apply(
            &self,
            t: &Tenant,
            r: Revision,
            b: &WriteBatch,
        ) -> verdict_storage::Result<verdict_storage::ApplyOutcome> {
            self.inner.apply(t, r, b)
        }
        fn mark_applied(&self, r: Revision) -> verdict_storage::Result<()> {
            self.inner.mark_applied(r)
        }
        fn snapshot(&self, t: &Tenant, r: Revision) -> verdict_storage::Result<Self::Snapshot<'_>> {
            self.inner.snapshot(t, r)
        }
        fn changes_since(
            &self,
            t: &Tenant,
            after: Revision,
            limit: usize,
        ) -> verdict_storage::Result<Vec<ChangeBatch>> {
            self.inner.changes_since(t, after, limit)
        }
        fn schema_at(
            &self,
            t: &Tenant,
            r: Revision,
        ) -> verdict_storage::Result<Option<verdict_storage::StoredSchema>> {
            self.builders
                .lock()
                .unwrap()
                .push(std::thread::current().id());
            let closed = self.closed.lock().unwrap();
            if *closed {
                *self.held.lock().unwrap() += 1;
                self.arrived.notify_all();
            }
            let (closed, _) = self
                .opened
                .wait_timeout_while(closed, Duration::from_secs(10), |c| *c)
                .unwrap();
            drop(closed);
            self.inner.schema_at(t, r)
        }
        fn schema_history(
            &self,
            t: &Tenant,
        ) -> verdict_storage::Result<Vec<verdict_storage::StoredSchema>> {
            self.inner.schema_history(t)
        }
        fn gc(&self, floor: Revision) -> verdict_storage::Result<verdict_storage::GcStats> {
            self.inner.gc(floor)
        }
        fn gc_expired(
            &self,
            now: verdict_storage::Timestamp,
            grace: i64,
        ) -> verdict_storage::Result<u64> {
            self.inner.gc_expired(now, grace)
        }
        fn bulk_import(
            &self,
            t: &Tenant,
            r: Revision,
            tuples: &mut dyn Iterator<Item = Tuple>,
        ) -> verdict_storage::Result<verdict_storage::ApplyOutcome> {
            self.inner.bulk_import(t, r, tuples)
        }
    }

    /// Tenant `acme` on a [`Gated`] store, each batch applied at the next
    /// revision and handed to the index as the state machine does.
    struct GatedTenant {
        store: Arc<Gated>,
        index: Arc<GroupIndex>,
        tenant: Tenant,
        revision: u64,
    }

    impl GatedTenant {
        fn new() -> Self {
            GatedTenant {
                store: Arc::new(Gated::default()),
                index: Arc::new(GroupIndex::new()),
                tenant: Tenant::new("acme").unwrap(),
                revision: 0,
            }
        }

        fn apply(&mut self, batch: WriteBatch) -> Revision {
            self.revision += 1;
            let r = Revision(self.revision);
            self.store.apply(&self.tenant, r, &batch).unwrap();
            self.index.after_apply(&self.store, Some(&self.tenant), r);
            r
        }
    }

    #[test]
    fn a_schema_change_is_built_in_the_background_and_only_the_newest_build_installs() {
        let mut fx = GatedTenant::new();
        let (store, index, t) = (fx.store.clone(), fx.index.clone(), fx.tenant.clone());
        let mut apply = |batch: WriteBatch| fx.apply(batch);
        let touch = |lines: &[&str]| {
            lines
                .iter()
                .fold(WriteBatch::new(), |b, l| b.touch(Tuple::parse(l).unwrap()))
        };
        let engine = |text: &str, at: Revision| {
            Engine::new(compile(text), EngineConfig::default())
                .unwrap()
                .with_group_index(index.clone(), at)
        };
        apply(WriteBatch::new().put_schema(record(1, SCHEMA)));
        assert!(index.wait_for_builds(Duration::from_secs(30)));
        apply(touch(&[
            "group:g0#member@user:ann",
            "group:g1#member@group:g0#member",
        ]));

        // A schema change returns at once: its build waits at the gate,
        // the tenant is not ready and the walk answers.
        store.set_closed(true);
        let text2 = format!("{SCHEMA}definition team {{}}\n");
        let v2 = apply(WriteBatch::new().put_schema(record(2, &text2)));
        assert!(
            !index.wait_for_builds(Duration::from_millis(20)),
            "a build is in flight"
        );
        let s = index.stats();
        let (o, _) = check(
            &engine(&text2, v2),
            &store.inner,
            &t,
            v2.0,
            "group:g1",
            "member",
            &user("ann"),
            false,
        );
        assert_eq!(o, Outcome::Allowed);
        assert_eq!(index.stats().answers, s.answers);
        assert!(index.stats().fallback_not_ready > s.fallback_not_ready);
        // Writes and another schema change go on meanwhile; a start-style
        // rebuild begins a newer build, which alone may install.
        apply(touch(&[
            "group:g2#member@group:g1#member",
            "group:g2#member@user:bob",
        ]));
        let text3 = format!("{text2}definition org {{}}\n");
        let v3 = apply(WriteBatch::new().put_schema(record(3, &text3)));
        let rebuild = {
            let (index, store, t) = (index.clone(), store.clone(), t.clone());
            std::thread::spawn(move || index.rebuild_all(&*store, std::slice::from_ref(&t)))
        };
        store.wait_arrivals(2);
        let late = apply(touch(&["group:g0#member@user:carl"]));
        let rebuilds = index.stats().rebuilds;
        store.set_closed(false);
        rebuild.join().unwrap();
        assert!(index.wait_for_builds(Duration::from_secs(30)));
        assert_eq!(
            index.stats().rebuilds,
            rebuilds + 1,
            "only the newest build installed"
        );
        let me = std::thread::current().id();
        assert!(
            store.builders.lock().unwrap().iter().all(|b| *b != me),
            "no build on the applying thread"
        );

        // Ready for the newest schema, caught up through `late`, exact.
        let (new, old) = (engine(&text3, v3), engine(&text2, v2));
        let plain = Engine::new(compile(&text3), EngineConfig::default()).unwrap();
        for (g, who) in [
            (2, "ann"),
            (2, "bob"),
            (2, "carl"),
            (2, "dan"),
            (0, "bob"),
            (1, "carl"),
        ] {
            let resource = format!("group:g{g}");
            let want = check(
                &plain,
                &store.inner,
                &t,
                late.0,
                &resource,
                "member",
                &user(who),
                false,
            )
            .0;
            let s = index.stats();
            let got = check(
                &new,
                &store.inner,
                &t,
                late.0,
                &resource,
                "member",
                &user(who),
                false,
            )
            .0;
            assert_eq!(got, want, "{resource} {who}");
            assert_eq!(
                index.stats().answers,
                s.answers + 1,
                "the index answered {resource} {who}"
            );
        }
        let s = index.stats();
        check(
            &old,
            &store.inner,
            &t,
            late.0,
            "group:g2",
            "member",
            &user("carl"),
            false,
        );
        assert!(index.stats().fallback_not_ready > s.fallback_not_ready);
    }

    #[test]
    fn a_schema_change_during_a_build_is_built_for_off_the_applying_thread() {
        let mut fx = GatedTenant::new();
        let (store, index, t) = (fx.store.clone(), fx.index.clone(), fx.tenant.clone());
        let mut apply = |batch: WriteBatch| fx.apply(batch);
        store.set_closed(true);
        apply(WriteBatch::new().put_schema(record(1, SCHEMA)));
        store.wait_arrivals(1);
        // Applied while the first build waits: a nesting edge, then a new
        // schema (no second build starts: one is running), then a member.
        apply(WriteBatch::new().touch(Tuple::parse("group:g1#member@group:g0#member").unwrap()));
        let text2 = format!("{SCHEMA}definition team {{}}\n");
        let v2 = apply(WriteBatch::new().put_schema(record(2, &text2)));
        let late =
            apply(WriteBatch::new().touch(Tuple::parse("group:g0#member@user:ann").unwrap()));
        store.set_closed(false);
        assert!(index.wait_for_builds(Duration::from_secs(30)));
        // The first build met the schema change catching up and built again.
        assert_eq!(store.builders.lock().unwrap().len(), 2);
        let me = std::thread::current().id();
        assert!(store.builders.lock().unwrap().iter().all(|b| *b != me));
        assert_eq!(index.stats().rebuilds, 1);
        let engine = Engine::new(compile(&text2), EngineConfig::default())
            .unwrap()
            .with_group_index(index.clone(), v2);
        for (who, want) in [("ann", Outcome::Allowed), ("bob", Outcome::Denied)] {
            let s = index.stats();
            let (o, _) = check(
                &engine,
                &store.inner,
                &t,
                late.0,
                "group:g1",
                "member",
                &user(who),
                false,
            );
            assert_eq!(o, want, "{who}");
            assert_eq!(
                index.stats().answers,
                s.answers + 1,
                "the index answered {who}"
            );
        }
    }

    /// Recounts every relation's references from its members and edges and
    /// checks the counts `apply` maintains (`refs`, `live`) agree.
    fn assert_live_counted(index: &GroupIndex) {
        let slots: Vec<_> = index.tenants.read().unwrap().values().cloned().collect();
        for slot in slots {
            let slot = slot.read().unwrap();
            for rel in slot.state.iter().flat_map(|s| &s.relations) {
                let mut refs = vec![0u32; rel.names.len()];
                for groups in rel.members.values().flat_map(|m| m.values()) {
                    for &g in groups {
                        refs[g as usize] += 1;
                    }
                }
                for (child, parents) in rel.parents.iter().enumerate() {
                    for &p in parents {
                        refs[p as usize] += 1;
                        refs[child] += 1;
                    }
                }
                assert_eq!(rel.refs, refs, "reference counts of {}", rel.relation);
                assert_eq!(rel.live, refs.iter().filter(|&&n| n > 0).count());
            }
        }
    }

    /// Tuples `group:c{j}#member@user:u{j}` and `group:p{j}#member@group:c{j}#member`
    /// for `j` in `js`: two new group ids each.
    fn churn(js: std::ops::Range<usize>, add: bool) -> WriteBatch {
        js.flat_map(|j| {
            [
                format!("group:c{j}#member@user:u{j}"),
                format!("group:p{j}#member@group:c{j}#member"),
            ]
        })
        .fold(WriteBatch::new(), |b, l| {
            let t = Tuple::parse(&l).unwrap();
            if add {
                b.touch(t)
            } else {
                b.delete(t)
            }
        })
    }

    #[test]
    fn churned_group_ids_are_released_by_a_background_compaction_with_exact_answers() {
        const CHUNK: usize = 64;
        let mut fx = GatedTenant::new();
        let (store, index, t) = (fx.store.clone(), fx.index.clone(), fx.tenant.clone());
        let mut apply = |batch: WriteBatch| fx.apply(batch);
        let v1 = apply(WriteBatch::new().put_schema(record(1, SCHEMA)));
        assert!(index.wait_for_builds(Duration::from_secs(30)));
        apply(
            WriteBatch::new()
                .touch(Tuple::parse("group:keep0#member@user:ann").unwrap())
                .touch(Tuple::parse("group:keep1#member@group:keep0#member").unwrap()),
        );
        let plain = Engine::new(compile(SCHEMA), EngineConfig::default()).unwrap();
        let indexed = plain.clone().with_group_index(index.clone(), v1);
        // Asks the chunk's and the core's questions at `at`: the indexed
        // engine answers as the walk; how many the index itself answered.
        let exact = |at: Revision, j: usize| {
            let before = index.stats().answers;
            for (resource, who) in [
                ("group:keep1".to_string(), "ann".to_string()),
                ("group:keep1".to_string(), "bob".to_string()),
                (format!("group:p{j}"), format!("u{j}")),
                ("group:keep1".to_string(), format!("u{j}")),
                (format!("group:p{j}"), "ann".to_string()),
            ] {
                let want = check(
                    &plain,
                    &store.inner,
                    &t,
                    at.0,
                    &resource,
                    "member",
                    &user(&who),
                    false,
                )
                .0;
                let got = check(
                    &indexed,
                    &store.inner,
                    &t,
                    at.0,
                    &resource,
                    "member",
                    &user(&who),
                    false,
                )
                .0;
                assert_eq!(got, want, "{resource} {who} at {}", at.0);
            }
            index.stats().answers - before
        };

        // Churn with builds held at the gate: ids pile up until the dead
        // ones pass the threshold, which starts a compaction.
        store.set_closed(true);
        let mut chunk = 0;
        let mut peak = 0;
        let triggered = loop {
            assert!(chunk < 40, "no compaction after {chunk} chunks");
            let js = chunk * CHUNK..(chunk + 1) * CHUNK;
            let at = apply(churn(js.clone(), true));
            assert_eq!(exact(at, js.start), 5, "the index answers before");
            peak = peak.max(index.stats().interned_ids);
            let at = apply(churn(js.clone(), false));
            chunk += 1;
            if index.stats().compactions > 0 {
                break at;
            }
            assert_live_counted(&index);
            assert_eq!(index.stats().live_ids, 2, "only the core is live");
            assert_eq!(index.stats().interned_ids, 2 + 2 * (chunk * CHUNK) as u64);
        };
        assert!(peak >= COMPACT_MIN_DEAD as u64, "peak {peak}");
        // During the build: not ready, the walk answers (exactly).
        assert!(
            !index.wait_for_builds(Duration::from_millis(20)),
            "a compaction is in flight"
        );
        let s = index.stats();
        assert_eq!(exact(triggered, 0), 0);
        assert!(index.stats().fallback_not_ready > s.fallback_not_ready);
        // Writes go on meanwhile; the build catches up to them.
        let js = chunk * CHUNK..(chunk + 1) * CHUNK;
        apply(churn(js.clone(), true));
        apply(churn(js.clone(), false));
        let late =
            apply(WriteBatch::new().touch(Tuple::parse("group:keep1#member@user:bob").unwrap()));
        assert_eq!(exact(late, js.start), 0);
        let rebuilds = index.stats().rebuilds;
        store.set_closed(false);
        assert!(index.wait_for_builds(Duration::from_secs(30)));
        let s = index.stats();
        assert_eq!((s.compactions, s.rebuilds), (1, rebuilds + 1));
        // Only the ids churned while it built (caught up) are dead.
        assert_eq!(
            (s.interned_ids, s.live_ids),
            (2 + 2 * CHUNK as u64, 2),
            "dead ids released"
        );
        assert_eq!((s.members, s.edges), (2, 1));
        assert_live_counted(&index);
        assert_eq!(exact(late, js.start), 5, "the index answers after");
        let me = std::thread::current().id();
        assert!(
            store.builders.lock().unwrap().iter().all(|b| *b != me),
            "no build on the applying thread"
        );

        // Churning on, the interned ids stay bounded: each time the dead
        // ones pass the threshold a compaction releases them.
        let mut peak = 0;
        for c in chunk + 1..chunk + 1 + 40 {
            let js = c * CHUNK..(c + 1) * CHUNK;
            let at = apply(churn(js.clone(), true));
            assert!(index.wait_for_builds(Duration::from_secs(30)));
            assert_eq!(exact(at, js.start), 5);
            peak = peak.max(index.stats().interned_ids);
            let at = apply(churn(js.clone(), false));
            assert!(index.wait_for_builds(Duration::from_secs(30)));
            assert_eq!(exact(at, js.start), 5);
            assert_live_counted(&index);
        }
        let s = index.stats();
        assert!(s.compactions >= 3, "{s:?}");
        assert!(
            peak <= (COMPACT_MIN_DEAD + 2 * CHUNK + 3) as u64,
            "interned ids peaked at {peak} over {} churned",
            40 * 2 * CHUNK
        );
    }

    #[derive(Debug, Clone)]
    enum Edit {
        /// user `u` (None = `user:*`) in group `g`.
        Member(usize, Option<usize>, bool),
        /// group `child`'s members are group `parent`'s.
        Edge(usize, usize, bool),
        /// doc:d viewer group `g`.
        Viewer(usize, bool),
        /// A write in another tenant (other revisions pass by).
        Elsewhere(usize),
        /// A bulk import of members, edges and doc viewers (`Edit`s with
        /// `add`), the last rejected (a malformed tuple) when `reject`.
        Import(Vec<Edit>, bool),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            3 => (0..GROUPS, 0..USERS, any::<bool>())
                .prop_map(|(g, u, add)| Edit::Member(g, Some(u), add)),
            3 => (0..GROUPS, 0..GROUPS, any::<bool>())
                .prop_map(|(p, c, add)| Edit::Edge(p, c, add)),
            1 => (0..GROUPS, any::<bool>()).prop_map(|(g, add)| Edit::Viewer(g, add)),
            1 => (0..GROUPS).prop_map(Edit::Elsewhere),
            2 => (proptest::collection::vec(touch(), 1..6), prop::bool::weighted(0.25))
                .prop_map(|(ts, reject)| Edit::Import(ts, reject)),
            // Irrelevant to the index: doc viewers only.
            1 => proptest::collection::vec((0..GROUPS).prop_map(|g| Edit::Viewer(g, true)), 1..3)
                .prop_map(|ts| Edit::Import(ts, false)),
        ]
    }

    /// One imported tuple (a TOUCH).
    fn touch() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..GROUPS, 0..USERS).prop_map(|(g, u)| Edit::Member(g, Some(u), true)),
            (0..GROUPS, 0..GROUPS).prop_map(|(p, c)| Edit::Edge(p, c, true)),
            (0..GROUPS).prop_map(|g| Edit::Viewer(g, true)),
        ]
    }

    /// The tuples of an import, ending with a malformed one when `reject`.
    fn import_tuples(ts: &[Edit], reject: bool) -> Vec<Tuple> {
        let mut tuples: Vec<Tuple> = ts
            .iter()
            .flat_map(|e| batch(e).ops)
            .filter_map(|op| match op {
                verdict_storage::Op::Touch(t) => Some(t),
                _ => None,
            })
            .collect();
        if reject {
            tuples.push(Tuple::new(
                ObjectRef::new("group", "g0"),
                "member",
                SubjectRef::direct("user", "not an id!"),
            ));
        }
        tuples
    }

    fn batch(e: &Edit) -> WriteBatch {
        let (line, add) = match e {
            Edit::Member(g, u, add) => {
                let u = u.map_or("*".to_string(), |u| format!("u{u}"));
                (format!("group:g{g}#member@user:{u}"), *add)
            }
            Edit::Edge(p, c, add) => (format!("group:g{p}#member@group:g{c}#member"), *add),
            Edit::Viewer(g, add) => (format!("doc:d#viewer@group:g{g}#member"), *add),
            Edit::Elsewhere(g) => (format!("group:g{g}#member@user:u0"), true),
            Edit::Import(..) => unreachable!("an import is not a batch"),
        };
        let t = Tuple::parse(&line).unwrap();
        if add {
            WriteBatch::new().touch(t)
        } else {
            WriteBatch::new().delete(t)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

        /// Random group edits (members, nesting edges with cycles; the
        /// schema compiler forbids wildcards on self-nesting relations), applied revision by revision and fed through the
        /// changelog, or as bulk imports (some irrelevant, some rejected)
        /// applied from their own tuples: at every revision, and at every older one, the
        /// indexed engine (with a decision cache) answers as the walk does,
        /// and at the newest revision the index itself answers.
        #[test]
        fn the_index_answers_as_the_walk_at_every_revision(edits in proptest::collection::vec(edit(), 1..16)) {
            let mut f = Fixture::new();
            let t = Tenant::new("acme").unwrap();
            let other = Tenant::new("other").unwrap();
            let schema_rev = f.apply(&t, WriteBatch::new().put_schema(record(1, SCHEMA)));
            f.apply(&other, WriteBatch::new().put_schema(record(1, SCHEMA)));
            let (plain, indexed) = f.engines(SCHEMA, schema_rev);
            let uncached = indexed.without_cache();
            let mut subjects: Vec<SubjectRef> = (0..USERS).map(|u| user(&format!("u{u}"))).collect();
            subjects.push(user("*"));
            subjects.push(user("nobody"));
            subjects.extend((0..GROUPS).map(group_set));
            for e in &edits {
                let tenant = if matches!(e, Edit::Elsewhere(_)) { &other } else { &t };
                let now = match e {
                    Edit::Import(ts, reject) => {
                        let direct = f.index.stats().imports_direct;
                        let now = f.import(tenant, import_tuples(ts, *reject));
                        // Applied from its own tuples, not read back.
                        prop_assert_eq!(f.index.stats().imports_direct, direct + 1);
                        now
                    }
                    _ => f.apply(tenant, batch(e)),
                };
                assert_live_counted(&f.index);
                // The newest revision first: the cache then still holds the
                // answers the index gave at the previous newest revision, and
                // must not reuse those the write changed.
                for at in std::iter::once(now.0).chain(schema_rev.0..=now.0) {
                    for s in &subjects {
                        for g in 0..GROUPS {
                            let resource = format!("group:g{g}");
                            let want = check(&plain, &f.store, &t, at, &resource, "member", s, false).0;
                            let got = check(&indexed, &f.store, &t, at, &resource, "member", s, false).0;
                            prop_assert_eq!(&got, &want, "{} {:?} at {} (now {})", resource, s, at, now.0);
                            let before = f.index.stats().answers;
                            let got = check(&uncached, &f.store, &t, at, &resource, "member", s, false).0;
                            prop_assert_eq!(&got, &want, "uncached {} {:?} at {} (now {})", resource, s, at, now.0);
                            if at == now.0 {
                                // Nothing is stale at the newest revision.
                                prop_assert!(f.index.stats().answers > before || (s.relation.as_deref() == Some("member") && s.object.object_id == resource[6..]),
                                    "index did not answer {} {:?} at {}", resource, s, at);
                            }
                        }
                        let want = check(&plain, &f.store, &t, at, "doc:d", "view", s, false).0;
                        let got = check(&indexed, &f.store, &t, at, "doc:d", "view", s, false).0;
                        prop_assert_eq!(&got, &want, "doc:d {:?} at {} (now {})", s, at, now.0);
                    }
                }
            }
        }
    }
}
