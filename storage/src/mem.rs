//! [`MemStore`]: an in-memory [`RelationStore`] for engine unit tests and as
//! a second implementation in the conformance suite. Deliberately naive
//! (reverse reads and filtered scans walk every tuple of the tenant); not
//! durable. Shares batch semantics with `RocksStore` through `plan`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use crate::batch::{
    ApplyOutcome, ApplyStatus, ChangeBatch, ChangeKind, GcStats, StoredSchema, WriteBatch,
};
use crate::batch::{Change, SchemaVersionRecord};
use crate::error::{Result, StorageError};
use crate::filter::TupleFilter;
use crate::keys;
use crate::plan;
use crate::revision::{Revision, Timestamp};
use crate::store::{self, Cursor, RelationStore, ReverseQuery, ScanPage, TupleReader};
use crate::tenant::Tenant;
use crate::tuple::Tuple;

/// One tuple's versions, oldest first: `(revision, Some(live tuple) | None = deleted)`.
type History = Vec<(Revision, Option<Tuple>)>;

#[derive(Debug, Default)]
struct MemTenant {
    /// Keyed by the forward key body, so iteration order equals RocksStore's.
    tuples: BTreeMap<Vec<u8>, History>,
    changelog: BTreeMap<Revision, ChangeBatch>,
    schemas: BTreeMap<Revision, SchemaVersionRecord>,
}

#[derive(Debug, Default)]
struct MemState {
    applied: Revision,
    floor: Revision,
    tenants: HashMap<Tenant, MemTenant>,
}

/// The in-memory store. GC removes history immediately, even under live
/// snapshots (unlike `RocksStore`, whose snapshots pin what they read).
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    state: Arc<RwLock<MemState>>,
    /// Serializes writers: a batch is planned and applied under it.
    writer: Arc<Mutex<()>>,
}

impl MemStore {
    /// An empty store at revision 0.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, ()>> {
        self.writer.lock().map_err(|_| StorageError::Poisoned)
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, MemState>> {
        self.state.read().map_err(|_| StorageError::Poisoned)
    }
}

fn body(t: &Tuple) -> Vec<u8> {
    let mut b = Vec::new();
    keys::push_fwd_body(&mut b, t);
    b
}

fn visible(h: &History, at: Revision) -> Option<&Tuple> {
    h.iter()
        .rev()
        .find(|(r, _)| *r <= at)
        .and_then(|(_, t)| t.as_ref())
}

fn already(revision: Revision) -> ApplyOutcome {
    ApplyOutcome {
        revision,
        status: ApplyStatus::AlreadyApplied,
        changes: 0,
        delete_truncated: false,
    }
}

impl RelationStore for MemStore {
    type Snapshot<'a> = MemSnapshot;

    fn applied_revision(&self) -> Revision {
        self.read().map(|s| s.applied).unwrap_or_default()
    }

    fn gc_floor(&self) -> Revision {
        self.read().map(|s| s.floor).unwrap_or_default()
    }

    fn apply(
        &self,
        tenant: &Tenant,
        revision: Revision,
        batch: &WriteBatch,
    ) -> Result<ApplyOutcome> {
        let _w = self.lock_writer()?;
        let applied = self.applied_revision();
        if revision <= applied {
            return Ok(already(revision));
        }
        // Plan against a snapshot at the applied revision (under the writer lock).
        let snap = MemSnapshot {
            state: self.state.clone(),
            tenant: tenant.clone(),
            revision: applied,
        };
        let planned = plan::validate(batch).and_then(|()| plan::plan(&snap, batch));
        let mut st = self.state.write().map_err(|_| StorageError::Poisoned)?;
        let p = match planned {
            Ok(p) => p,
            Err(e) => {
                if e.is_rejection() {
                    st.applied = revision;
                }
                return Err(e);
            }
        };
        st.applied = revision;
        let tn = st.tenants.entry(tenant.clone()).or_default();
        for (key, (t, live)) in &p.writes {
            tn.tuples
                .entry(key.clone())
                .or_default()
                .push((revision, live.then(|| t.clone())));
        }
        if let Some(s) = &p.schema {
            tn.schemas.insert(revision, s.clone());
        }
        if !p.changes.is_empty() || p.schema.is_some() {
            tn.changelog.insert(
                revision,
                ChangeBatch {
                    revision,
                    changes: p.changes.clone(),
                    schema_version: p.schema.as_ref().map(|s| s.version),
                },
            );
        }
        Ok(ApplyOutcome {
            revision,
            status: ApplyStatus::Applied,
            changes: p.changes.len(),
            delete_truncated: p.delete_truncated,
        })
    }

    fn mark_applied(&self, revision: Revision) -> Result<()> {
        let _w = self.lock_writer()?;
        let mut st = self.state.write().map_err(|_| StorageError::Poisoned)?;
        st.applied = st.applied.max(revision);
        Ok(())
    }

    fn snapshot(&self, tenant: &Tenant, revision: Revision) -> Result<MemSnapshot> {
        let st = self.read()?;
        if revision > st.applied {
            return Err(StorageError::RevisionInFuture {
                requested: revision,
                applied: st.applied,
            });
        }
        if revision < st.floor {
            return Err(StorageError::RevisionCompacted {
                requested: revision,
                floor: st.floor,
            });
        }
        Ok(MemSnapshot {
            state: self.state.clone(),
            tenant: tenant.clone(),
            revision,
        })
    }

    fn changes_since(
        &self,
        tenant: &Tenant,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<ChangeBatch>> {
        let st = self.read()?;
        if after < st.floor {
            return Err(StorageError::ChangelogCompacted {
                after,
                floor: st.floor,
            });
        }
        Ok(st
            .tenants
            .get(tenant)
            .map(|t| {
                t.changelog
                    .range(after.next()..)
                    .take(limit)
                    .map(|(_, b)| b.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn schema_at(&self, tenant: &Tenant, revision: Revision) -> Result<Option<StoredSchema>> {
        self.snapshot(tenant, revision)?.schema()
    }

    fn schema_history(&self, tenant: &Tenant) -> Result<Vec<StoredSchema>> {
        let st = self.read()?;
        Ok(crate::batch::current_generation(
            st.tenants
                .get(tenant)
                .map(|t| {
                    t.schemas
                        .iter()
                        .map(|(r, s)| StoredSchema {
                            revision: *r,
                            record: s.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }

    fn gc(&self, floor: Revision) -> Result<GcStats> {
        let mut st = self.state.write().map_err(|_| StorageError::Poisoned)?;
        let floor = floor.min(st.applied).max(st.floor);
        st.floor = floor;
        let mut stats = GcStats {
            floor,
            ..Default::default()
        };
        for tn in st.tenants.values_mut() {
            for h in tn.tuples.values_mut() {
                // Keep versions above the floor and the newest at or below it if live.
                let keep_from = h.iter().enumerate().rfind(|(_, (r, _))| *r <= floor);
                if let Some((i, (_, value))) = keep_from {
                    let drop_n = if value.is_some() { i } else { i + 1 };
                    stats.versions_removed += 2 * drop_n as u64;
                    h.drain(..drop_n);
                }
            }
            tn.tuples.retain(|_, h| !h.is_empty());
            let before = tn.changelog.len();
            tn.changelog.retain(|r, _| *r > floor);
            stats.changelog_removed += (before - tn.changelog.len()) as u64;
            if let Some(keep) = tn.schemas.range(..=floor).next_back().map(|(r, _)| *r) {
                let before = tn.schemas.len();
                tn.schemas.retain(|r, _| *r >= keep);
                stats.schemas_removed += (before - tn.schemas.len()) as u64;
            }
        }
        Ok(stats)
    }

    fn gc_expired(&self, now: Timestamp, grace_secs: i64) -> Result<u64> {
        // Like `gc`, one short pass under the state lock (writers wait for
        // it; every version is then at or below the applied revision).
        let mut st = self.state.write().map_err(|_| StorageError::Poisoned)?;
        let examined = st.applied;
        let mut removed = 0u64;
        for tn in st.tenants.values_mut() {
            tn.tuples.retain(|_, h| {
                let versions = h
                    .iter()
                    .rev()
                    .filter(|(r, _)| *r <= examined)
                    .map(|(_, t)| t.as_ref().map(|t| t.expiration));
                if !store::chain_expired(versions, now, grace_secs) {
                    return true;
                }
                removed += 1;
                h.retain(|(r, _)| *r > examined);
                !h.is_empty()
            });
        }
        Ok(removed)
    }

    fn bulk_import(
        &self,
        tenant: &Tenant,
        revision: Revision,
        tuples: &mut dyn Iterator<Item = Tuple>,
    ) -> Result<ApplyOutcome> {
        let _w = self.lock_writer()?;
        let mut st = self.state.write().map_err(|_| StorageError::Poisoned)?;
        if revision <= st.applied {
            return Ok(already(revision));
        }
        let mut changes = Vec::new();
        for (index, t) in tuples.enumerate() {
            if let Err(source) = t.validate() {
                st.applied = revision;
                return Err(StorageError::InvalidOperation { index, source });
            }
            changes.push(Change {
                kind: ChangeKind::Touch,
                tuple: t,
            });
        }
        st.applied = revision;
        let tn = st.tenants.entry(tenant.clone()).or_default();
        for c in &changes {
            let h = tn.tuples.entry(body(&c.tuple)).or_default();
            if h.last().is_some_and(|(r, _)| *r == revision) {
                h.pop();
            }
            h.push((revision, Some(c.tuple.clone())));
        }
        let n = changes.len();
        if n > 0 {
            tn.changelog.insert(
                revision,
                ChangeBatch {
                    revision,
                    changes,
                    schema_version: None,
                },
            );
        }
        Ok(ApplyOutcome {
            revision,
            status: ApplyStatus::Applied,
            changes: n,
            delete_truncated: false,
        })
    }
}

/// A reader of a [`MemStore`] at one revision.
#[derive(Debug, Clone)]
pub struct MemSnapshot {
    state: Arc<RwLock<MemState>>,
    tenant: Tenant,
    revision: Revision,
}

impl MemSnapshot {
    fn with_tenant<T>(&self, f: impl FnOnce(&MemTenant) -> Result<T>, empty: T) -> Result<T> {
        let st = self.state.read().map_err(|_| StorageError::Poisoned)?;
        match st.tenants.get(&self.tenant) {
            Some(t) => f(t),
            None => Ok(empty),
        }
    }

    /// Every live tuple of the tenant at the revision, in forward order.
    fn all(&self) -> Result<Vec<(Vec<u8>, Tuple)>> {
        self.with_tenant(
            |t| {
                Ok(t.tuples
                    .iter()
                    .filter_map(|(k, h)| visible(h, self.revision).map(|t| (k.clone(), t.clone())))
                    .collect())
            },
            Vec::new(),
        )
    }
}

impl TupleReader for MemSnapshot {
    fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    fn revision(&self) -> Revision {
        self.revision
    }

    fn tuple(&self, key: &Tuple) -> Result<Option<Tuple>> {
        let k = body(key);
        self.with_tenant(
            |t| {
                Ok(t.tuples
                    .get(&k)
                    .and_then(|h| visible(h, self.revision))
                    .cloned())
            },
            None,
        )
    }

    fn subjects(
        &self,
        resource_type: &str,
        resource_ids: &[&str],
        relation: &str,
    ) -> Result<Vec<Tuple>> {
        let mut ids: Vec<&str> = resource_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let all = self.all()?;
        let mut out = Vec::new();
        for id in ids {
            out.extend(
                all.iter()
                    .filter(|(_, t)| {
                        t.resource.object_type == resource_type
                            && t.resource.object_id == id
                            && t.relation == relation
                    })
                    .map(|(_, t)| t.clone()),
            );
        }
        Ok(out)
    }

    fn resources_for_subjects(&self, q: &ReverseQuery<'_>) -> Result<Vec<Tuple>> {
        let mut out: Vec<(Vec<u8>, Tuple)> = self
            .all()?
            .into_iter()
            .filter(|(_, t)| {
                t.subject.object.object_type == q.subject_type
                    && q.subject_ids.contains(&t.subject.object.object_id.as_str())
                    && q.subject_relation
                        .as_ref()
                        .is_none_or(|f| f.matches(t.subject.relation.as_deref()))
                    && q.resource_type
                        .is_none_or(|rt| rt == t.resource.object_type)
                    && q.relation.is_none_or(|r| r == t.relation)
            })
            .map(|(_, t)| {
                let mut k = Vec::new();
                keys::rev_chain_key(&mut k, &self.tenant, &t);
                (k, t)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, t)| t).collect())
    }

    fn scan(
        &self,
        filter: &TupleFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        let limit = limit.max(1);
        if let Some(c) = cursor {
            keys::decode_fwd_body(&c.0).map_err(|_| StorageError::InvalidCursor)?;
        }
        let mut tuples = Vec::new();
        let mut last = None;
        for (k, t) in self.all()? {
            if cursor.is_some_and(|c| k <= c.0) || !filter.matches(&t) {
                continue;
            }
            tuples.push(t);
            if tuples.len() >= limit {
                last = Some(Cursor(k));
                break;
            }
        }
        Ok(ScanPage {
            tuples,
            cursor: last,
        })
    }

    fn schema(&self) -> Result<Option<StoredSchema>> {
        self.with_tenant(
            |t| {
                Ok(t.schemas
                    .range(..=self.revision)
                    .next_back()
                    .filter(|(_, s)| !s.is_tombstone())
                    .map(|(r, s)| StoredSchema {
                        revision: *r,
                        record: s.clone(),
                    }))
            },
            None,
        )
    }
}
