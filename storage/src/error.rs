//! The storage error type and its stable codes.

use crate::revision::Revision;

/// Which part of a tuple (or tuple text) a [`TupleError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TuplePart {
    /// The overall `resource#relation@subject` shape.
    Syntax,
    /// The resource's object type.
    ResourceType,
    /// The resource's object id.
    ResourceId,
    /// The relation on the resource.
    Relation,
    /// The subject's object type.
    SubjectType,
    /// The subject's object id.
    SubjectId,
    /// The subject relation (`#relation` after the subject).
    SubjectRelation,
    /// The caveat name.
    CaveatName,
    /// The caveat context (a JSON object).
    CaveatContext,
    /// The expiration timestamp.
    Expiration,
}

impl std::fmt::Display for TuplePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TuplePart::Syntax => "tuple",
            TuplePart::ResourceType => "resource type",
            TuplePart::ResourceId => "resource id",
            TuplePart::Relation => "relation",
            TuplePart::SubjectType => "subject type",
            TuplePart::SubjectId => "subject id",
            TuplePart::SubjectRelation => "subject relation",
            TuplePart::CaveatName => "caveat name",
            TuplePart::CaveatContext => "caveat context",
            TuplePart::Expiration => "expiration",
        })
    }
}

/// A tuple (or its text form) is malformed; names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {part} `{value}`: {reason}")]
pub struct TupleError {
    /// The part of the tuple that is wrong.
    pub part: TuplePart,
    /// The offending text (truncated to 200 bytes).
    pub value: String,
    /// Why it is wrong, lower-case.
    pub reason: &'static str,
}

impl TupleError {
    pub(crate) fn new(part: TuplePart, value: &str, reason: &'static str) -> Self {
        let mut end = value.len().min(200);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        TupleError {
            part,
            value: value[..end].to_owned(),
            reason,
        }
    }
}

/// Everything that can go wrong in `verdict-storage`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A tenant name does not match `[a-z0-9][a-z0-9_-]{0,62}`.
    #[error("invalid tenant `{tenant}`: must match [a-z0-9][a-z0-9_-]{{0,62}}")]
    InvalidTenant {
        /// The rejected name (truncated).
        tenant: String,
    },
    /// A tuple or its text form is malformed.
    #[error(transparent)]
    InvalidTuple(#[from] TupleError),
    /// An operation of a write batch carries a malformed tuple or filter.
    #[error("operation {index} is invalid: {source}")]
    InvalidOperation {
        /// Index of the operation in the batch.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: TupleError,
    },
    /// An operation of a write batch is not allowed as given.
    #[error("operation {index} is not allowed: {reason}")]
    OperationNotAllowed {
        /// Index of the operation in the batch.
        index: usize,
        /// Why, lower-case.
        reason: &'static str,
    },
    /// The same tuple appears twice among the explicit operations of one batch.
    #[error("operation {index} repeats tuple `{tuple}` of operation {first_index}")]
    DuplicateTuple {
        /// Index of the second mention.
        index: usize,
        /// Index of the first mention.
        first_index: usize,
        /// The tuple, in text form.
        tuple: String,
    },
    /// A CREATE names a tuple that already exists.
    #[error("operation {index} creates `{tuple}`, which already exists")]
    TupleAlreadyExists {
        /// Index of the operation in the batch.
        index: usize,
        /// The tuple, in text form.
        tuple: String,
    },
    /// A precondition of a write batch did not hold.
    #[error("precondition {index} failed: {kind} filter")]
    PreconditionFailed {
        /// Index of the precondition in the batch.
        index: usize,
        /// `must match` or `must not match`.
        kind: &'static str,
    },
    /// The revision given to a write is not above the applied revision.
    #[error("revision {revision} is not above the applied revision {applied}")]
    RevisionNotIncreasing {
        /// The revision the caller asked to write.
        revision: Revision,
        /// The store's applied revision.
        applied: Revision,
    },
    /// A read asked for a revision that has not been applied yet.
    #[error("revision {requested} is in the future; the applied revision is {applied}")]
    RevisionInFuture {
        /// The revision the caller asked for.
        requested: Revision,
        /// The store's applied revision.
        applied: Revision,
    },
    /// A read asked for a revision that garbage collection has removed.
    #[error(
        "revision {requested} is older than the retained floor {floor}; it was garbage-collected"
    )]
    RevisionCompacted {
        /// The revision the caller asked for.
        requested: Revision,
        /// The oldest revision still readable.
        floor: Revision,
    },
    /// A changelog read starts before the retained changelog.
    #[error(
        "changes after revision {after} are no longer retained; the changelog starts after {floor}"
    )]
    ChangelogCompacted {
        /// The revision the caller asked to read after.
        after: Revision,
        /// Changes after this revision are retained.
        floor: Revision,
    },
    /// A scan cursor is malformed or belongs to another tenant or filter.
    #[error("invalid cursor")]
    InvalidCursor,
    /// Stored bytes could not be decoded.
    #[error("corrupt stored data: {what}")]
    Corrupt {
        /// Which record, lower-case.
        what: &'static str,
    },
    /// An earlier write failed; the in-memory state may disagree with disk.
    #[error("storage is poisoned by an earlier failed write; restart the node")]
    Poisoned,
    /// The storage engine reported an error (details in the source).
    #[error("storage engine error")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `Result` with [`StorageError`].
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A stable error code such as `"STORAGE:RevisionCompacted"`.
///
/// | code | meaning |
/// |---|---|
/// | `STORAGE:InvalidTenant` | tenant name is malformed |
/// | `STORAGE:InvalidTuple` | tuple or tuple text is malformed |
/// | `STORAGE:InvalidOperation` | a batch operation carries a malformed tuple |
/// | `STORAGE:OperationNotAllowed` | a batch operation is not allowed as given |
/// | `STORAGE:DuplicateTuple` | a tuple appears twice in one batch |
/// | `STORAGE:TupleAlreadyExists` | CREATE of an existing tuple |
/// | `STORAGE:PreconditionFailed` | a batch precondition did not hold |
/// | `STORAGE:RevisionNotIncreasing` | write revision not above the applied one |
/// | `STORAGE:RevisionInFuture` | read revision not applied yet |
/// | `STORAGE:RevisionCompacted` | read revision garbage-collected |
/// | `STORAGE:ChangelogCompacted` | changelog read before retention |
/// | `STORAGE:InvalidCursor` | malformed scan cursor |
/// | `STORAGE:Corrupt` | stored bytes do not decode |
/// | `STORAGE:Poisoned` | an earlier write failed |
/// | `STORAGE:Engine` | RocksDB error |
pub type ErrorCode = &'static str;

impl StorageError {
    /// The stable code of this error (see [`ErrorCode`]).
    pub fn code(&self) -> ErrorCode {
        match self {
            StorageError::InvalidTenant { .. } => "STORAGE:InvalidTenant",
            StorageError::InvalidTuple(_) => "STORAGE:InvalidTuple",
            StorageError::InvalidOperation { .. } => "STORAGE:InvalidOperation",
            StorageError::OperationNotAllowed { .. } => "STORAGE:OperationNotAllowed",
            StorageError::DuplicateTuple { .. } => "STORAGE:DuplicateTuple",
            StorageError::TupleAlreadyExists { .. } => "STORAGE:TupleAlreadyExists",
            StorageError::PreconditionFailed { .. } => "STORAGE:PreconditionFailed",
            StorageError::RevisionNotIncreasing { .. } => "STORAGE:RevisionNotIncreasing",
            StorageError::RevisionInFuture { .. } => "STORAGE:RevisionInFuture",
            StorageError::RevisionCompacted { .. } => "STORAGE:RevisionCompacted",
            StorageError::ChangelogCompacted { .. } => "STORAGE:ChangelogCompacted",
            StorageError::InvalidCursor => "STORAGE:InvalidCursor",
            StorageError::Corrupt { .. } => "STORAGE:Corrupt",
            StorageError::Poisoned => "STORAGE:Poisoned",
            StorageError::Engine(_) => "STORAGE:Engine",
        }
    }

    /// True when the batch was rejected because of its content (validation,
    /// preconditions, CREATE of an existing tuple): the revision is still
    /// consumed, nothing else changed, and retrying the same batch at a new
    /// revision fails the same way unless the data changed.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            StorageError::InvalidOperation { .. }
                | StorageError::OperationNotAllowed { .. }
                | StorageError::DuplicateTuple { .. }
                | StorageError::TupleAlreadyExists { .. }
                | StorageError::PreconditionFailed { .. }
        )
    }
}
