//! The capabilities the engine and the Raft state machine program against:
//! [`TupleReader`] (reads at one revision) and [`RelationStore`] (writes,
//! snapshots, changelog, schema versions, GC, bulk import).

use crate::batch::{ApplyOutcome, ChangeBatch, GcStats, StoredSchema, WriteBatch};
use crate::error::Result;
use crate::filter::{SubjectRelationFilter, TupleFilter};
use crate::revision::{Revision, Timestamp};
use crate::tenant::Tenant;
use crate::tuple::Tuple;

/// An opaque, resumable position in a [`TupleReader::scan`]. Valid for the
/// same tenant and filter; using it at another revision resumes after the
/// same tuple key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor(pub(crate) Vec<u8>);

impl Cursor {
    /// The cursor as bytes (to embed in an API token).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Rebuilds a cursor from [`Cursor::as_bytes`]. Malformed bytes are
    /// rejected when the cursor is used ([`crate::StorageError::InvalidCursor`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Cursor {
        Cursor(bytes)
    }
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    /// The tuples, in forward key order (resource type, id, relation, subject).
    pub tuples: Vec<Tuple>,
    /// Where to resume; `None` when the scan is complete.
    pub cursor: Option<Cursor>,
}

/// A reverse (subject → resources) query.
#[derive(Debug, Clone)]
pub struct ReverseQuery<'a> {
    /// The subject type.
    pub subject_type: &'a str,
    /// The subject ids, batched into one call.
    pub subject_ids: &'a [&'a str],
    /// The subject relation; `None` for any.
    pub subject_relation: Option<SubjectRelationFilter>,
    /// Only resources of this type.
    pub resource_type: Option<&'a str>,
    /// Only this relation (needs `resource_type` to narrow the key range;
    /// without it the relation is filtered while scanning).
    pub relation: Option<&'a str>,
}

/// Reads the tuples of one tenant exactly as they were at one revision.
///
/// Results are the tuples live at the revision: created at or before it and
/// not deleted at or before it. Expired tuples are returned as stored (the
/// engine filters by request time).
pub trait TupleReader {
    /// The tenant this reader is scoped to.
    fn tenant(&self) -> &Tenant;

    /// The revision this reader sees.
    fn revision(&self) -> Revision;

    /// The live tuple with the same resource, relation and subject as `key`
    /// (its caveat/expiration are ignored), with its stored payload.
    ///
    /// # Errors
    /// Storage failures.
    fn tuple(&self, key: &Tuple) -> Result<Option<Tuple>>;

    /// Forward read: the tuples `resource_type:id#relation@*` for every id in
    /// `resource_ids` (duplicates ignored), in key order (id, then subject).
    ///
    /// # Errors
    /// Storage failures.
    fn subjects(
        &self,
        resource_type: &str,
        resource_ids: &[&str],
        relation: &str,
    ) -> Result<Vec<Tuple>>;

    /// Reverse read: the tuples whose subject is one of `query.subject_ids`,
    /// in reverse-index order (subject, subject relation, resource type,
    /// relation, resource id).
    ///
    /// # Errors
    /// Storage failures.
    fn resources_for_subjects(&self, query: &ReverseQuery<'_>) -> Result<Vec<Tuple>>;

    /// Filtered scan in forward key order, at most `limit` tuples, resuming
    /// after `cursor`.
    ///
    /// # Errors
    /// [`crate::StorageError::InvalidCursor`] for a malformed cursor; storage failures.
    fn scan(&self, filter: &TupleFilter, cursor: Option<&Cursor>, limit: usize)
        -> Result<ScanPage>;

    /// The schema version active at this revision, if any.
    ///
    /// # Errors
    /// Storage failures.
    fn schema(&self) -> Result<Option<StoredSchema>>;
}

/// A multi-tenant tuple store with MVCC revisions.
///
/// ```text
///  Raft apply ──apply(tenant, rev, batch)──▶ ┌──────────────┐ ◀──snapshot(tenant, rev)── engine
///             ──mark_applied(rev)──────────▶ │ RelationStore│ ◀──changes_since(..)───── watch
///  admin      ──bulk_import / gc ──────────▶ └──────────────┘
/// ```
///
/// Revisions are global to the store (not per tenant) and strictly increase.
/// A batch that is *rejected* (invalid operation, failed precondition,
/// CREATE of an existing tuple, see [`crate::StorageError::is_rejection`])
/// still consumes its revision: `apply` returns the error, nothing else
/// changes, and the applied revision advances — so every replica that
/// applies the same Raft log agrees on the applied revision.
pub trait RelationStore: Send + Sync {
    /// A reader at one revision.
    type Snapshot<'a>: TupleReader + 'a
    where
        Self: 'a;

    /// The highest applied revision (0 for an empty store).
    fn applied_revision(&self) -> Revision;

    /// The oldest revision still readable; reads below fail.
    fn gc_floor(&self) -> Revision;

    /// Applies `batch` for `tenant` at `revision`, atomically together with its
    /// changelog entry and the applied-revision marker. A `revision` at or
    /// below the applied revision is a no-op returning
    /// [`crate::ApplyStatus::AlreadyApplied`].
    ///
    /// # Errors
    /// Rejections (the revision is consumed, see the trait docs) and
    /// storage failures (the store is poisoned).
    fn apply(
        &self,
        tenant: &Tenant,
        revision: Revision,
        batch: &WriteBatch,
    ) -> Result<ApplyOutcome>;

    /// Consumes `revision` without a batch (a Raft entry that carries no
    /// tuples). No-op when already applied.
    ///
    /// # Errors
    /// Storage failures.
    fn mark_applied(&self, revision: Revision) -> Result<()>;

    /// A reader for `tenant` at `revision`.
    ///
    /// # Errors
    /// [`crate::StorageError::RevisionInFuture`] above the applied revision,
    /// [`crate::StorageError::RevisionCompacted`] below the GC floor.
    fn snapshot(&self, tenant: &Tenant, revision: Revision) -> Result<Self::Snapshot<'_>>;

    /// The tenant's change batches with revision above `after`, in order, at
    /// most `limit` of them. Revisions with no change for the tenant are absent.
    ///
    /// # Errors
    /// [`crate::StorageError::ChangelogCompacted`] when `after` is below the GC floor.
    fn changes_since(
        &self,
        tenant: &Tenant,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<ChangeBatch>>;

    /// The schema version active for `tenant` at `revision`.
    ///
    /// # Errors
    /// As [`RelationStore::snapshot`].
    fn schema_at(&self, tenant: &Tenant, revision: Revision) -> Result<Option<StoredSchema>>;

    /// Every retained schema version of `tenant`'s current generation,
    /// oldest first: versions before the last tombstone (a deletion of the
    /// tenant) belong to the deleted tenant and are left out, as is the
    /// tombstone itself.
    ///
    /// # Errors
    /// Storage failures.
    fn schema_history(&self, tenant: &Tenant) -> Result<Vec<StoredSchema>>;

    /// Removes history older than `floor` (clamped to the applied revision):
    /// afterwards reads at `floor` or above are unchanged and reads below fail
    /// with [`crate::StorageError::RevisionCompacted`]. Does not block writes.
    ///
    /// # Errors
    /// Storage failures.
    fn gc(&self, floor: Revision) -> Result<GcStats>;

    /// Physically removes expired relationships; returns how many tuples
    /// (relationships, not versions) were removed.
    ///
    /// A tuple is removed — every stored version, in both the forward and
    /// the reverse index — when the version live at the applied revision has
    /// `expiration + grace_secs <= now` and every older stored version is
    /// gone for good as well (a tombstone or itself expired by that rule).
    /// A tuple with an older version that is live and unexpired is left to
    /// [`RelationStore::gc`]: removing the newer versions would make that
    /// older one visible at later revisions. Since the engine treats a tuple
    /// as absent once `now >= expiration` and time only moves forward, no
    /// answer at any readable revision changes (as long as readers' clocks
    /// are at most `grace_secs` behind `now`; a negative grace counts as 0).
    ///
    /// Only versions at or below the revision examined are deleted, so a
    /// concurrent write of the same tuple (a later revision) is never lost.
    /// The changelog is untouched: watch history still shows the writes.
    /// Runs in bounded batches and does not block writes.
    ///
    /// # Errors
    /// Storage failures.
    fn gc_expired(&self, now: Timestamp, grace_secs: i64) -> Result<u64>;

    /// Loads many tuples at one new revision (TOUCH semantics: existing tuples
    /// are overwritten), much faster than `apply`. Recorded in the changelog.
    ///
    /// # Errors
    /// A malformed tuple rejects the whole import (the revision is consumed);
    /// storage failures.
    fn bulk_import(
        &self,
        tenant: &Tenant,
        revision: Revision,
        tuples: &mut dyn Iterator<Item = Tuple>,
    ) -> Result<ApplyOutcome>;
}

/// Whether a stored version is gone for every reader from `now` on: a
/// tombstone (`None`), or live with `expiration + grace_secs <= now`.
pub(crate) fn gone_for_good(
    version: Option<Option<Timestamp>>,
    now: Timestamp,
    grace_secs: i64,
) -> bool {
    match version {
        None => true,
        Some(exp) => exp.is_some_and(|e| e.0.saturating_add(grace_secs.max(0)) <= now.0),
    }
}

/// Decides whether `gc_expired` removes a tuple from its versions at or
/// below the examined revision, newest first (`None` = tombstone, else the
/// live version's expiration): the newest must be live and expired, and
/// every version gone for good.
pub(crate) fn chain_expired(
    mut versions: impl Iterator<Item = Option<Option<Timestamp>>>,
    now: Timestamp,
    grace_secs: i64,
) -> bool {
    match versions.next() {
        Some(Some(exp)) if gone_for_good(Some(exp), now, grace_secs) => {
            versions.all(|v| gone_for_good(v, now, grace_secs))
        }
        _ => false,
    }
}

/// Conveniences on every [`TupleReader`].
pub trait TupleReaderExt: TupleReader {
    /// Streams every tuple matching `filter`, page by page (`page` tuples per
    /// storage read), into `f`. Used for export.
    ///
    /// # Errors
    /// Storage failures, or the first error returned by `f`.
    fn for_each_tuple(
        &self,
        filter: &TupleFilter,
        page: usize,
        mut f: impl FnMut(Tuple) -> Result<()>,
    ) -> Result<u64> {
        let mut cursor = None;
        let mut n = 0;
        loop {
            let p = self.scan(filter, cursor.as_ref(), page.max(1))?;
            for t in p.tuples {
                n += 1;
                f(t)?;
            }
            match p.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(n),
            }
        }
    }
}

impl<T: TupleReader + ?Sized> TupleReaderExt for T {}
