//! Write batches, their outcome, changelog entries and schema records.

use crate::filter::TupleFilter;
use crate::revision::Revision;
use crate::tuple::Tuple;

/// One operation of a [`WriteBatch`].
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert the tuple; the batch fails if it already exists.
    Create(Tuple),
    /// Insert or overwrite the tuple (its caveat and expiration).
    Touch(Tuple),
    /// Delete the tuple; a no-op (and no changelog entry) if it is absent.
    Delete(Tuple),
    /// Delete the tuples matching `filter`, at most `limit` of them (all when
    /// `None`), in scan order.
    DeleteByFilter {
        /// Which tuples to delete.
        filter: TupleFilter,
        /// The most tuples to delete.
        limit: Option<usize>,
    },
    /// Make a new schema version active for the tenant at this revision.
    /// At most one per batch.
    PutSchema(SchemaVersionRecord),
}

/// A condition checked against the state *before* the batch.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// At least one live tuple must match.
    MustMatch(TupleFilter),
    /// No live tuple may match.
    MustNotMatch(TupleFilter),
}

/// Operations and preconditions applied atomically at one revision.
///
/// Preconditions are evaluated first, against the state before the batch;
/// operations then run in order, each seeing the effect of the previous
/// ones. A tuple may be named by at most one explicit operation
/// (`Create`/`Touch`/`Delete`).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// The operations, in order.
    pub ops: Vec<Op>,
    /// The preconditions.
    pub preconditions: Vec<Precondition>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a CREATE.
    pub fn create(mut self, t: Tuple) -> Self {
        self.ops.push(Op::Create(t));
        self
    }

    /// Adds a TOUCH.
    pub fn touch(mut self, t: Tuple) -> Self {
        self.ops.push(Op::Touch(t));
        self
    }

    /// Adds a DELETE.
    pub fn delete(mut self, t: Tuple) -> Self {
        self.ops.push(Op::Delete(t));
        self
    }

    /// Adds a delete-by-filter.
    pub fn delete_by_filter(mut self, filter: TupleFilter, limit: Option<usize>) -> Self {
        self.ops.push(Op::DeleteByFilter { filter, limit });
        self
    }

    /// Adds a schema version.
    pub fn put_schema(mut self, record: SchemaVersionRecord) -> Self {
        self.ops.push(Op::PutSchema(record));
        self
    }

    /// Adds a precondition.
    pub fn precondition(mut self, p: Precondition) -> Self {
        self.preconditions.push(p);
        self
    }
}

/// What applying a batch did.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The revision the batch was applied at.
    pub revision: Revision,
    /// How the call ended.
    pub status: ApplyStatus,
    /// Number of tuple changes recorded in the changelog.
    pub changes: usize,
    /// True when a delete-by-filter stopped at its limit with more matches left.
    pub delete_truncated: bool,
}

/// How an `apply` call ended.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyStatus {
    /// The batch was applied now.
    Applied,
    /// The revision was already applied earlier (a replay); nothing changed.
    AlreadyApplied,
}

/// The kind of a changelog operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A tuple was created.
    Create,
    /// A tuple was created or overwritten.
    Touch,
    /// A tuple was deleted.
    Delete,
}

/// One tuple change of a [`ChangeBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The tuple (for deletes: as it was before the delete).
    pub tuple: Tuple,
}

/// Everything one revision changed for one tenant, in operation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    /// The revision.
    pub revision: Revision,
    /// The tuple changes.
    pub changes: Vec<Change>,
    /// The schema version that became active at this revision, if any.
    pub schema_version: Option<u64>,
}

/// A schema version as stored: the admin-visible version number and text.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaVersionRecord {
    /// The version number (chosen by the caller, usually previous + 1).
    pub version: u64,
    /// The schema source text.
    pub text: String,
    /// Free-form note recorded with the version (e.g. who applied it and why).
    pub comment: String,
    /// Who wrote it (the caller's key id; empty in records stored before
    /// authors were recorded).
    pub author: String,
}

impl SchemaVersionRecord {
    /// The record that ends a tenant's schema (tenant deletion): from its
    /// revision on the tenant has no schema, as if it never had one.
    pub fn tombstone(version: u64, comment: impl Into<String>) -> SchemaVersionRecord {
        SchemaVersionRecord {
            version,
            text: String::new(),
            comment: comment.into(),
            ..SchemaVersionRecord::default()
        }
    }

    /// Whether this record removes the schema (empty text) rather than
    /// defining one.
    pub fn is_tombstone(&self) -> bool {
        self.text.is_empty()
    }
}

/// Drops the versions up to and including the last tombstone: what is left
/// is the current generation's history.
pub(crate) fn current_generation(mut history: Vec<StoredSchema>) -> Vec<StoredSchema> {
    if let Some(last) = history.iter().rposition(|s| s.record.is_tombstone()) {
        history.drain(..=last);
    }
    history
}

/// A schema version with the revision at which it became active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    /// The revision whose batch stored it.
    pub revision: Revision,
    /// The record.
    pub record: SchemaVersionRecord,
}

/// What garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// The new floor: reads below it now fail.
    pub floor: Revision,
    /// Tuple versions (forward + reverse index entries) removed.
    pub versions_removed: u64,
    /// Changelog entries removed.
    pub changelog_removed: u64,
    /// Schema versions removed.
    pub schemas_removed: u64,
}
