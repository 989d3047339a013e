//! Group commit at the store: several write batches of one tenant applied
//! at one revision, each on its own terms.
//!
//! Each batch is validated and planned against the state the batches
//! before it in the group left (the store at the applied revision overlaid
//! with their writes), so its preconditions and operations see them. A
//! batch that is refused (see [`StorageError::is_rejection`]) leaves no
//! trace; the others are written together in ONE RocksDB write batch: the
//! final version of every tuple they touched at the group's revision and
//! one changelog entry listing their changes in group order, so the watch
//! feed shows each change once.

use std::sync::atomic::Ordering;

use super::{put_version, RocksStore};
use crate::batch::{ApplyOutcome, ApplyStatus, Change, Op, WriteBatch};
use crate::error::{Result, StorageError};
use crate::keys::{self, SUB_LOG};
use crate::plan::{self, Overlay};
use crate::revision::Revision;
use crate::store::RelationStore;
use crate::tenant::Tenant;
use crate::value::{self, RevisionStatus};

/// What applying a group did.
#[derive(Debug)]
pub struct GroupOutcome {
    /// The revision the group was applied at (shared by every batch kept).
    pub revision: Revision,
    /// `AlreadyApplied` on a replay (nothing changed, every result is `Ok`).
    pub status: ApplyStatus,
    /// One result per batch, in group order: its outcome, or the
    /// rejection that kept it out (nothing of it was written).
    pub results: Vec<Result<ApplyOutcome>>,
}

/// Refuses what a grouped batch may not do: a schema version belongs to
/// an entry of its own (it is checked against the schema the other
/// batches were validated with).
fn groupable(batch: &WriteBatch) -> Result<()> {
    match batch
        .ops
        .iter()
        .position(|op| matches!(op, Op::PutSchema(_)))
    {
        Some(index) => Err(StorageError::OperationNotAllowed {
            index,
            reason: "a grouped write may not store a schema version",
        }),
        None => Ok(()),
    }
}

impl RocksStore {
    /// Applies `batches` of `tenant` at `revision`, in order; see the
    /// module doc. A replay (`revision` already applied) changes nothing.
    ///
    /// # Errors
    /// Storage failures (the store is then poisoned); rejections of single
    /// batches are in [`GroupOutcome::results`], never here.
    pub fn apply_group(
        &self,
        tenant: &Tenant,
        revision: Revision,
        batches: &[&WriteBatch],
    ) -> Result<GroupOutcome> {
        let _w = self.lock_writer()?;
        let applied = self.applied_revision();
        if revision <= applied {
            return Ok(GroupOutcome {
                revision,
                status: ApplyStatus::AlreadyApplied,
                results: batches
                    .iter()
                    .map(|_| {
                        Ok(ApplyOutcome {
                            revision,
                            status: ApplyStatus::AlreadyApplied,
                            changes: 0,
                            delete_truncated: false,
                        })
                    })
                    .collect(),
            });
        }
        let base = self.reader(tenant, applied);
        let mut overlay = Overlay::new();
        let mut changes: Vec<Change> = Vec::new();
        let mut results = Vec::with_capacity(batches.len());
        for batch in batches.iter().copied() {
            let planned = groupable(batch)
                .and_then(|()| plan::validate(batch))
                .and_then(|()| plan::plan_over(&base, &overlay, batch));
            match planned {
                Ok(p) => {
                    results.push(Ok(ApplyOutcome {
                        revision,
                        status: ApplyStatus::Applied,
                        changes: p.changes.len(),
                        delete_truncated: p.delete_truncated,
                    }));
                    overlay.extend(p.writes);
                    changes.extend(p.changes);
                }
                Err(e) if e.is_rejection() => results.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
        drop(base);
        let mut wb = rocksdb::WriteBatch::default();
        let mut buf = Vec::with_capacity(128);
        for (t, live) in overlay.values() {
            put_version(&mut wb, &mut buf, tenant, revision, t, *live);
        }
        if !changes.is_empty() {
            buf.clear();
            keys::tenant_rev_key(&mut buf, tenant, SUB_LOG, revision);
            buf.extend_from_slice(&0u32.to_be_bytes());
            wb.put(&buf[..], value::encode_change_chunk(None, &changes));
        }
        let status = if results.iter().any(|r| r.is_ok()) {
            RevisionStatus::Applied
        } else {
            RevisionStatus::Rejected
        };
        self.put_marker(&mut wb, revision, status, tenant.as_str());
        self.commit(wb, &self.write_opts())?;
        self.applied.store(revision.0, Ordering::SeqCst);
        Ok(GroupOutcome {
            revision,
            status: ApplyStatus::Applied,
            results,
        })
    }
}
