//! What a log entry carries and what applying it answers.

use std::sync::Arc;

use crate::keys::KeyRecord;
use serde::{Deserialize, Serialize};
use verdict_storage::{ApplyOutcome, Revision, StorageError, Tenant, Timestamp, Tuple, WriteBatch};

/// One replicated command, with the leader's clock when it was proposed
/// (`at`), so every replica makes the same time-dependent decisions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The proposer's wall clock (seconds since the epoch).
    pub at: Timestamp,
    /// The command.
    pub command: Command,
}

impl Request {
    /// `command`, stamped with the current time.
    pub fn now(command: Command) -> Request {
        Request {
            at: Timestamp::now(),
            command,
        }
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.command {
            Command::Write { tenant, batch, .. } => {
                write!(f, "write({}, {} ops)", tenant.as_str(), batch.ops.len())
            }
            Command::Import { tenant, tuples } => {
                write!(f, "import({}, {} tuples)", tenant.as_str(), tuples.len())
            }
            Command::CreateTenant { name } => write!(f, "create-tenant({name})"),
            Command::DeleteTenant { tenant } => write!(f, "delete-tenant({})", tenant.as_str()),
            Command::CreateKey { record } => {
                write!(f, "create-key({}, {})", record.id, record.tenant)
            }
            Command::RevokeKey { id } => write!(f, "revoke-key({id})"),
            Command::RegisterCounter { tenant, name, .. } => {
                write!(f, "register-counter({}, {name})", tenant.as_str())
            }
            Command::UnregisterCounter { tenant, name } => {
                write!(f, "unregister-counter({}, {name})", tenant.as_str())
            }
            Command::WriteGroup { tenant, writes } => {
                write!(
                    f,
                    "write-group({}, {} writes)",
                    tenant.as_str(),
                    writes.len()
                )
            }
        }
    }
}

/// A replicated state change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Apply a write batch (relationships and/or a schema version).
    Write {
        /// The tenant.
        tenant: Tenant,
        /// The batch.
        batch: WriteBatch,
        /// Commit only if the tenant's active schema became active at this
        /// revision (the version the batch was validated against).
        expected_schema_since: Option<Revision>,
        /// Commit only if the tenant has no change after this revision (the
        /// state the batch was planned from: schema apply, relation copy).
        #[serde(default)]
        unchanged_since: Option<Revision>,
    },
    /// Bulk-load tuples (TOUCH semantics).
    Import {
        /// The tenant.
        tenant: Tenant,
        /// The tuples: shared, so the proposer's copy (kept to forward the
        /// command if leadership moved) costs no copy of the tuples. Encoded
        /// as a plain sequence.
        tuples: Arc<Vec<Tuple>>,
    },
    /// Create a tenant.
    CreateTenant {
        /// Its name (validated when applied).
        name: String,
    },
    /// Delete every relationship of a tenant and remove it.
    DeleteTenant {
        /// The tenant.
        tenant: Tenant,
    },
    // New variants go last: older log entries name variants by position.
    /// Add a tenant API key (its record only: the token's secret never
    /// enters the log).
    CreateKey {
        /// The key's id, tenant, token hash and creation time.
        record: KeyRecord,
    },
    /// Revoke a tenant API key.
    RevokeKey {
        /// The key's id.
        id: String,
    },
    /// Several independent writes of one tenant in one entry (group
    /// commit): applied in order at the entry's revision, each with its own
    /// preconditions and outcome, each seeing the ones before it; a refused
    /// one leaves no trace and does not fail the others. Answered with
    /// [`Response::Group`]. Nodes that predate it cannot apply it: upgrade
    /// every node before a leader proposes one.
    WriteGroup {
        /// The tenant.
        tenant: Tenant,
        /// The writes, in the order they are applied.
        writes: Vec<GroupedWrite>,
    },
    /// Register a relationship counter (SpiceDB's
    /// ExperimentalRegisterRelationshipCounter): a name and the filter
    /// whose matches it counts. A name already registered is refused
    /// (`AlreadyExists`). Nodes that predate it cannot apply it.
    RegisterCounter {
        /// The tenant.
        tenant: Tenant,
        /// The counter's name.
        name: String,
        /// The filter, encoded by the front door that registered it.
        filter: Vec<u8>,
    },
    /// Unregister a relationship counter; an unknown name is refused
    /// (`FailedPrecondition`).
    UnregisterCounter {
        /// The tenant.
        tenant: Tenant,
        /// The counter's name.
        name: String,
    },
}

/// One write of a [`Command::WriteGroup`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupedWrite {
    /// The batch (no schema version: those go alone in a `Write`).
    pub batch: WriteBatch,
    /// Apply only if the tenant's active schema became active at this
    /// revision (the version the batch was validated against).
    pub expected_schema_since: Option<Revision>,
}

/// A deterministic refusal: every replica reaches the same one, and the
/// entry's revision is consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// A field of the command is invalid.
    #[error("invalid `{field}`: {reason}")]
    InvalidArgument {
        /// The field (`updates`, `tenant`, `name`).
        field: String,
        /// Why.
        reason: String,
    },
    /// Something already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The state does not allow it (precondition, schema changed).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The tenant does not exist.
    #[error("tenant `{0}` not found")]
    TenantNotFound(String),
    /// A CREATE named a relationship that already exists: the store's
    /// `TupleAlreadyExists`, kept typed across the Raft port.
    #[error("operation {index} creates `{tuple}`, which already exists")]
    RelationshipExists {
        /// Index of the operation in the batch.
        index: usize,
        /// The relationship, in text form.
        tuple: String,
    },
    /// A precondition of a write batch did not hold: the store's
    /// `PreconditionFailed`, kept typed across the Raft port.
    #[error("precondition {index} failed: {} filter", precondition_kind(*must_match))]
    PreconditionFailed {
        /// Index of the precondition in the batch.
        index: usize,
        /// Whether it was a must-match (else must-not-match) precondition.
        must_match: bool,
    },
    /// The tenant changed after the revision a planned batch was built at;
    /// the proposer plans again.
    #[error("tenant `{tenant}` changed after revision {since} while the write was planned; retry")]
    ChangedSincePlan {
        /// The tenant.
        tenant: String,
        /// The revision the plan read.
        since: u64,
    },
}

/// The store's words for a precondition's kind.
fn precondition_kind(must_match: bool) -> &'static str {
    if must_match {
        "must match"
    } else {
        "must not match"
    }
}

impl Rejection {
    /// The store's own error for a rejection the store made (a CREATE
    /// conflict, a failed precondition), rebuilt on this side of the Raft
    /// port so it reaches the edge with the same reason, code and metadata
    /// as on the replica that applied it; `None` for the state machine's
    /// own refusals.
    pub fn storage_error(&self) -> Option<StorageError> {
        match self {
            Rejection::RelationshipExists { index, tuple } => {
                Some(StorageError::TupleAlreadyExists {
                    index: *index,
                    tuple: tuple.clone(),
                })
            }
            Rejection::PreconditionFailed { index, must_match } => {
                Some(StorageError::PreconditionFailed {
                    index: *index,
                    kind: precondition_kind(*must_match),
                })
            }
            _ => None,
        }
    }

    /// The rejection for a storage rejection (see `StorageError::is_rejection`).
    pub fn from_storage(e: &StorageError) -> Rejection {
        use StorageError as S;
        match e {
            S::InvalidTenant { .. } => Rejection::InvalidArgument {
                field: "tenant".into(),
                reason: e.to_string(),
            },
            S::TupleAlreadyExists { index, tuple } => Rejection::RelationshipExists {
                index: *index,
                tuple: tuple.clone(),
            },
            S::PreconditionFailed { index, kind } => Rejection::PreconditionFailed {
                index: *index,
                must_match: *kind == precondition_kind(true),
            },
            _ => Rejection::InvalidArgument {
                field: "updates".into(),
                reason: e.to_string(),
            },
        }
    }
}

/// What applying an entry answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A blank or membership entry, or a tenant command, consumed `revision`.
    Done {
        /// The entry's revision.
        revision: Revision,
    },
    /// A write or import was applied (or had been, on a replay).
    Applied(ApplyOutcome),
    /// The command was refused; nothing changed but the revision.
    Rejected {
        /// The entry's revision.
        revision: Revision,
        /// Why.
        rejection: Rejection,
    },
    /// A [`Command::WriteGroup`] was applied: one result per write, in
    /// order (every write kept shares the entry's revision).
    Group {
        /// The entry's revision.
        revision: Revision,
        /// Each write's outcome or refusal.
        results: Vec<Result<ApplyOutcome, Rejection>>,
    },
}

impl Response {
    /// The revision (log index) of the entry.
    pub fn revision(&self) -> Revision {
        match self {
            Response::Done { revision }
            | Response::Rejected { revision, .. }
            | Response::Group { revision, .. } => *revision,
            Response::Applied(o) => o.revision,
        }
    }
}
