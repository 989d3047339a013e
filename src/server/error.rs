//! The node's errors, each with a stable reason code.
//!
//! [`NodeError`] is what the node layer (state, consistency, the commit
//! path, tenants, keys, limits) answers when a request fails; the front
//! doors use it too for their own field validation. Every variant has a
//! [`Reason`]: a stable code such as `VERDICT_TENANT_NOT_FOUND` that the
//! gRPC front doors put in the status details as a `google.rpc.ErrorInfo`
//! (`api::error` is the one place that maps errors to statuses). Messages
//! are for people and may change; reasons are for programs and do not.
//!
//! Structured causes stay structured: a storage error, an engine error, a
//! zookie error or a replicated rejection is kept as the source, and its
//! reason is derived from its kind rather than from a formatted string.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use verdict_raft::codec::CodecError;
use verdict_raft::openraft::error::{ClientWriteError, RaftError};
use verdict_raft::openraft::BasicNode;
use verdict_raft::{NodeId, Rejection};
use verdict_storage::{Revision, StorageError};

use crate::engine::EngineError;
use crate::zookie::ZookieError;

/// The domain of every [`Reason`] (the `domain` of a `google.rpc.ErrorInfo`).
pub const REASON_DOMAIN: &str = "verdict.dev";

/// A stable, machine-readable reason code (see the table on [`Reason::as_str`]).
///
/// The gRPC status code of an error is a function of its reason alone
/// (`api::error`), so a reason never changes its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A field of the request is invalid.
    InvalidArgument,
    /// A request message is larger than the server accepts.
    MessageTooLarge,
    /// A zookie is malformed, corrupt or from another cluster.
    InvalidZookie,
    /// A schema did not compile.
    SchemaRejected,
    /// An object type named by the request is not in the schema.
    UnknownType,
    /// A relation or permission named by the request is not on its type.
    UnknownRelation,
    /// A caveat could not be evaluated with the given context.
    CaveatError,
    /// The tenant does not exist.
    TenantNotFound,
    /// The tenant has no schema yet.
    SchemaNotFound,
    /// A precondition did not hold (write preconditions, a schema version
    /// that changed, a state that does not allow the request).
    PreconditionFailed,
    /// The revision (or the changelog after it) was garbage-collected.
    RevisionCompacted,
    /// Something the request creates already exists.
    AlreadyExists,
    /// The node has not applied the revision asked for within the wait bound.
    RevisionNotApplied,
    /// No leader, leadership could not be confirmed, or a peer failed.
    Unavailable,
    /// Too many requests are in flight on this node.
    Overloaded,
    /// The tenant's rate budget is spent.
    RateLimited,
    /// A bound was exceeded (a watch consumer fell behind, a size limit).
    ResourceExhausted,
    /// A check went deeper than `--max-depth`.
    DepthExceeded,
    /// The request did not finish within the server deadline.
    DeadlineExceeded,
    /// No valid API key or cluster key.
    Unauthenticated,
    /// The key may not do this.
    PermissionDenied,
    /// The store failed (I/O, corruption, poisoned by an earlier failure).
    StorageFailure,
    /// A failure on the server's side.
    Internal,
}

impl Reason {
    /// Every reason, in the order of the table below.
    pub const ALL: [Reason; 23] = [
        Reason::InvalidArgument,
        Reason::MessageTooLarge,
        Reason::InvalidZookie,
        Reason::SchemaRejected,
        Reason::UnknownType,
        Reason::UnknownRelation,
        Reason::CaveatError,
        Reason::TenantNotFound,
        Reason::SchemaNotFound,
        Reason::PreconditionFailed,
        Reason::RevisionCompacted,
        Reason::AlreadyExists,
        Reason::RevisionNotApplied,
        Reason::Unavailable,
        Reason::Overloaded,
        Reason::RateLimited,
        Reason::ResourceExhausted,
        Reason::DepthExceeded,
        Reason::DeadlineExceeded,
        Reason::Unauthenticated,
        Reason::PermissionDenied,
        Reason::StorageFailure,
        Reason::Internal,
    ];

    /// The stable code.
    ///
    /// | code | gRPC status |
    /// |---|---|
    /// | `VERDICT_INVALID_ARGUMENT` | INVALID_ARGUMENT |
    /// | `VERDICT_MESSAGE_TOO_LARGE` | INVALID_ARGUMENT |
    /// | `VERDICT_INVALID_ZOOKIE` | INVALID_ARGUMENT |
    /// | `VERDICT_SCHEMA_REJECTED` | INVALID_ARGUMENT |
    /// | `VERDICT_UNKNOWN_TYPE` | INVALID_ARGUMENT |
    /// | `VERDICT_UNKNOWN_RELATION` | INVALID_ARGUMENT |
    /// | `VERDICT_CAVEAT_ERROR` | INVALID_ARGUMENT |
    /// | `VERDICT_TENANT_NOT_FOUND` | NOT_FOUND |
    /// | `VERDICT_SCHEMA_NOT_FOUND` | FAILED_PRECONDITION |
    /// | `VERDICT_PRECONDITION_FAILED` | FAILED_PRECONDITION |
    /// | `VERDICT_REVISION_COMPACTED` | FAILED_PRECONDITION |
    /// | `VERDICT_ALREADY_EXISTS` | ALREADY_EXISTS |
    /// | `VERDICT_REVISION_NOT_APPLIED` | UNAVAILABLE |
    /// | `VERDICT_UNAVAILABLE` | UNAVAILABLE |
    /// | `VERDICT_OVERLOADED` | UNAVAILABLE |
    /// | `VERDICT_RATE_LIMITED` | RESOURCE_EXHAUSTED |
    /// | `VERDICT_RESOURCE_EXHAUSTED` | RESOURCE_EXHAUSTED |
    /// | `VERDICT_DEPTH_EXCEEDED` | RESOURCE_EXHAUSTED |
    /// | `VERDICT_DEADLINE_EXCEEDED` | DEADLINE_EXCEEDED |
    /// | `VERDICT_UNAUTHENTICATED` | UNAUTHENTICATED |
    /// | `VERDICT_PERMISSION_DENIED` | PERMISSION_DENIED |
    /// | `VERDICT_STORAGE_FAILURE` | INTERNAL |
    /// | `VERDICT_INTERNAL` | INTERNAL |
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidArgument => "VERDICT_INVALID_ARGUMENT",
            Reason::MessageTooLarge => "VERDICT_MESSAGE_TOO_LARGE",
            Reason::InvalidZookie => "VERDICT_INVALID_ZOOKIE",
            Reason::SchemaRejected => "VERDICT_SCHEMA_REJECTED",
            Reason::UnknownType => "VERDICT_UNKNOWN_TYPE",
            Reason::UnknownRelation => "VERDICT_UNKNOWN_RELATION",
            Reason::CaveatError => "VERDICT_CAVEAT_ERROR",
            Reason::TenantNotFound => "VERDICT_TENANT_NOT_FOUND",
            Reason::SchemaNotFound => "VERDICT_SCHEMA_NOT_FOUND",
            Reason::PreconditionFailed => "VERDICT_PRECONDITION_FAILED",
            Reason::RevisionCompacted => "VERDICT_REVISION_COMPACTED",
            Reason::AlreadyExists => "VERDICT_ALREADY_EXISTS",
            Reason::RevisionNotApplied => "VERDICT_REVISION_NOT_APPLIED",
            Reason::Unavailable => "VERDICT_UNAVAILABLE",
            Reason::Overloaded => "VERDICT_OVERLOADED",
            Reason::RateLimited => "VERDICT_RATE_LIMITED",
            Reason::ResourceExhausted => "VERDICT_RESOURCE_EXHAUSTED",
            Reason::DepthExceeded => "VERDICT_DEPTH_EXCEEDED",
            Reason::DeadlineExceeded => "VERDICT_DEADLINE_EXCEEDED",
            Reason::Unauthenticated => "VERDICT_UNAUTHENTICATED",
            Reason::PermissionDenied => "VERDICT_PERMISSION_DENIED",
            Reason::StorageFailure => "VERDICT_STORAGE_FAILURE",
            Reason::Internal => "VERDICT_INTERNAL",
        }
    }

    /// The reason whose code is `code`, if any.
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// On the wire (the Raft port) a reason is its code, so peers agree on it
/// however the enum evolves; a code this node does not know reads as
/// [`Reason::Internal`].
impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Ok(Reason::from_code(&code).unwrap_or(Reason::Internal))
    }
}

/// An error as it crosses the Raft port between nodes (forwarded writes,
/// read index, administration): its reason code and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PeerError {
    /// The stable reason code.
    pub reason: Reason,
    /// The message, for people.
    pub message: String,
}

/// A node's error as it answers a peer; an error it got from another peer
/// (an admin request it forwarded to the leader) passes through unchanged.
impl From<&NodeError> for PeerError {
    fn from(e: &NodeError) -> Self {
        match e {
            NodeError::Peer { source } => source.clone(),
            _ => PeerError {
                reason: e.reason_kind(),
                message: e.to_string(),
            },
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A field of the request is invalid; names the field and the reason.
    #[error("invalid `{field}`: {reason}")]
    InvalidArgument {
        /// The field path, e.g. `updates[2].relationship.subject`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The schema did not compile (rendered diagnostics).
    #[error("schema rejected:\n{0}")]
    SchemaRejected(String),
    /// A zookie was refused.
    #[error("invalid `{field}`: {source}")]
    Zookie {
        /// The field holding it.
        field: String,
        /// Why.
        #[source]
        source: ZookieError,
    },
    /// The tenant does not exist.
    #[error("tenant `{0}` not found")]
    TenantNotFound(String),
    /// The tenant has no schema yet.
    #[error("tenant `{0}` has no schema; write one first")]
    NoSchema(String),
    /// The state does not allow it (precondition failed, stale version...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// Not available now (no leader, ...); retrying may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// A consumer fell behind, or another bound is exceeded.
    #[error("{0}")]
    ResourceExhausted(String),
    /// No valid API key or cluster key.
    #[error("{0}")]
    Unauthenticated(String),
    /// The key may not do this (another tenant, ...).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The engine could not answer.
    #[error(transparent)]
    Engine(EngineError),
    /// The store refused or failed.
    #[error("{}", storage_message(.0))]
    Storage(#[from] StorageError),
    /// The state machine refused a command (identically on every replica).
    /// A refusal the store made arrives as [`NodeError::Storage`] instead
    /// (see `From<Rejection>`).
    #[error(transparent)]
    Rejected(Rejection),
    /// A read names a revision this node has not applied within the wait bound.
    #[error(
        "`{field}` names revision {} but this node has applied only {} after waiting {waited:?}; retry later",
        .wanted.0,
        .applied.0
    )]
    RevisionNotApplied {
        /// The request field naming it.
        field: &'static str,
        /// The revision asked for.
        wanted: Revision,
        /// The revision this node had applied.
        applied: Revision,
        /// How long it waited (`--max-wait`).
        waited: Duration,
    },
    /// A read names a revision that garbage collection removed.
    #[error(
        "`{field}` names revision {}, which was garbage-collected (oldest readable: {})",
        .wanted.0,
        .floor.0
    )]
    RevisionCompacted {
        /// The request field naming it.
        field: &'static str,
        /// The revision asked for.
        wanted: Revision,
        /// The oldest readable revision.
        floor: Revision,
    },
    /// The tenant's rate budget is spent.
    #[error(
        "rate limit exceeded for tenant `{tenant}`: at most {per_second} requests per second (--tenant-rate-limit); retry in {}ms",
        .retry_in.as_millis().max(1)
    )]
    RateLimited {
        /// The tenant.
        tenant: String,
        /// Its budget.
        per_second: f64,
        /// When a request would be admitted again.
        retry_in: Duration,
    },
    /// A tenant key called an admin-only service.
    #[error("key `{key_id}` of tenant `{tenant}` may not call `{method}`: it needs the admin key")]
    AdminOnly {
        /// The key id.
        key_id: String,
        /// Its tenant.
        tenant: String,
        /// The gRPC method.
        method: String,
    },
    /// Load shedding: the node serves as many requests as it may.
    #[error("server overloaded: {limit} requests already in flight (--max-concurrent-requests); retry with backoff")]
    Overloaded {
        /// `--max-concurrent-requests`.
        limit: usize,
    },
    /// The request did not finish within the server deadline.
    #[error(
        "the request did not finish within the server deadline of {timeout:?} (--request-timeout)"
    )]
    DeadlineExceeded {
        /// `--request-timeout`.
        timeout: Duration,
    },
    /// A request message is larger than `--max-message-bytes`.
    #[error(
        "request message too large: {detail}; the limit is {limit} bytes (--max-message-bytes)"
    )]
    MessageTooLarge {
        /// What the decoder said.
        detail: String,
        /// The limit.
        limit: usize,
    },
    /// A request message could not be decoded.
    #[error("request message could not be decoded: {0}")]
    Undecodable(String),
    /// A peer (the leader) answered an error over the Raft port.
    #[error("{source}; retry")]
    Peer {
        /// Its error, with its reason.
        #[source]
        source: PeerError,
    },
    /// A payload on the Raft port could not be decoded.
    #[error("malformed payload: {0}")]
    MalformedPayload(#[source] CodecError),
    /// A reply on the Raft port could not be encoded or decoded.
    #[error("internal error: {0}")]
    Codec(#[from] CodecError),
    /// Raft refused a membership change or a write.
    #[error("{0}")]
    Raft(#[from] Box<RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>),
    /// A failure on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The message of a storage error as clients have always seen it.
fn storage_message(e: &StorageError) -> String {
    use StorageError as S;
    match e {
        S::InvalidTenant { .. } => format!("invalid `tenant`: {e}"),
        S::InvalidTuple(_)
        | S::InvalidOperation { .. }
        | S::OperationNotAllowed { .. }
        | S::DuplicateTuple { .. } => format!("invalid `updates`: {e}"),
        S::TupleAlreadyExists { .. }
        | S::PreconditionFailed { .. }
        | S::RevisionCompacted { .. }
        | S::ChangelogCompacted { .. }
        | S::RevisionInFuture { .. } => e.to_string(),
        _ => format!("internal error: {e}"),
    }
}

/// The reason a store error maps to, wherever it surfaced (a node call or
/// inside the engine).
pub(crate) fn storage_reason(e: &StorageError) -> Reason {
    use StorageError as S;
    match e {
        S::InvalidTenant { .. }
        | S::InvalidTuple(_)
        | S::InvalidOperation { .. }
        | S::OperationNotAllowed { .. }
        | S::DuplicateTuple { .. } => Reason::InvalidArgument,
        S::TupleAlreadyExists { .. } => Reason::AlreadyExists,
        S::PreconditionFailed { .. } => Reason::PreconditionFailed,
        S::RevisionCompacted { .. } | S::ChangelogCompacted { .. } => Reason::RevisionCompacted,
        S::RevisionInFuture { .. } => Reason::RevisionNotApplied,
        // A cursor reaching here was not named as the `cursor` field by
        // the service: INTERNAL, as it always was.
        S::RevisionNotIncreasing { .. } | S::InvalidCursor => Reason::Internal,
        S::Corrupt { .. } | S::Poisoned | S::Engine(_) => Reason::StorageFailure,
        _ => Reason::Internal,
    }
}

fn storage_metadata(e: &StorageError) -> Vec<(&'static str, String)> {
    let mut m = vec![("storage_code", e.code().to_string())];
    match e {
        StorageError::RevisionCompacted { requested, floor } => {
            m.push(("requested_revision", requested.0.to_string()));
            m.push(("oldest_revision", floor.0.to_string()));
        }
        StorageError::ChangelogCompacted { after, floor } => {
            m.push(("requested_revision", after.0.to_string()));
            m.push(("oldest_revision", floor.0.to_string()));
        }
        _ => {}
    }
    m
}

fn engine_reason(e: &EngineError) -> Reason {
    match e {
        EngineError::UnknownType(_) => Reason::UnknownType,
        EngineError::UnknownRelation { .. } => Reason::UnknownRelation,
        EngineError::Caveat(_) => Reason::CaveatError,
        EngineError::DepthExceeded { .. } => Reason::DepthExceeded,
        EngineError::Storage(e) => storage_reason(e),
        EngineError::Internal(_) => Reason::Internal,
    }
}

fn rejection_reason(r: &Rejection) -> Reason {
    match r {
        Rejection::InvalidArgument { .. } => Reason::InvalidArgument,
        Rejection::AlreadyExists(_) => Reason::AlreadyExists,
        Rejection::FailedPrecondition(_) | Rejection::ChangedSincePlan { .. } => {
            Reason::PreconditionFailed
        }
        Rejection::TenantNotFound(_) => Reason::TenantNotFound,
        Rejection::RelationshipExists { .. } => Reason::AlreadyExists,
        Rejection::PreconditionFailed { .. } => Reason::PreconditionFailed,
    }
}

/// A store failure met inside the engine is the store's own error: it
/// becomes [`NodeError::Storage`] and so maps to the same reason, code and
/// metadata as when a handler calls the store (a compacted revision stays
/// `VERDICT_REVISION_COMPACTED`, not a storage failure).
impl From<EngineError> for NodeError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Storage(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(e) => NodeError::Storage(e),
                Err(shared) => NodeError::Engine(EngineError::Storage(shared)),
            },
            other => NodeError::Engine(other),
        }
    }
}

/// A rejection the store made on the replica that applied the entry (a
/// CREATE conflict, a failed precondition) becomes the store's own error
/// again, so it maps exactly as on a single node; the state machine's own
/// refusals stay [`NodeError::Rejected`].
impl From<Rejection> for NodeError {
    fn from(r: Rejection) -> Self {
        match r.storage_error() {
            Some(e) => NodeError::Storage(e),
            None => NodeError::Rejected(r),
        }
    }
}

impl NodeError {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        NodeError::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// The stable reason code, e.g. `VERDICT_TENANT_NOT_FOUND`.
    pub fn reason(&self) -> &'static str {
        self.reason_kind().as_str()
    }

    /// The [`Reason`] of this error.
    pub fn reason_kind(&self) -> Reason {
        match self {
            NodeError::InvalidArgument { .. } | NodeError::Undecodable(_) => {
                Reason::InvalidArgument
            }
            NodeError::MessageTooLarge { .. } => Reason::MessageTooLarge,
            NodeError::SchemaRejected(_) => Reason::SchemaRejected,
            NodeError::Zookie { .. } => Reason::InvalidZookie,
            NodeError::TenantNotFound(_) => Reason::TenantNotFound,
            NodeError::NoSchema(_) => Reason::SchemaNotFound,
            NodeError::FailedPrecondition(_) => Reason::PreconditionFailed,
            NodeError::AlreadyExists(_) => Reason::AlreadyExists,
            NodeError::Unavailable(_) | NodeError::Raft(_) => Reason::Unavailable,
            NodeError::ResourceExhausted(_) => Reason::ResourceExhausted,
            NodeError::Unauthenticated(_) => Reason::Unauthenticated,
            NodeError::PermissionDenied(_) | NodeError::AdminOnly { .. } => {
                Reason::PermissionDenied
            }
            NodeError::Engine(e) => engine_reason(e),
            NodeError::Storage(e) => storage_reason(e),
            NodeError::Rejected(r) => rejection_reason(r),
            NodeError::RevisionNotApplied { .. } => Reason::RevisionNotApplied,
            NodeError::RevisionCompacted { .. } => Reason::RevisionCompacted,
            NodeError::RateLimited { .. } => Reason::RateLimited,
            NodeError::Overloaded { .. } => Reason::Overloaded,
            NodeError::DeadlineExceeded { .. } => Reason::DeadlineExceeded,
            NodeError::Peer { source } => source.reason,
            NodeError::MalformedPayload(_) => Reason::InvalidArgument,
            NodeError::Codec(_) | NodeError::Internal(_) => Reason::Internal,
        }
    }

    /// Structured facts about the error for the `ErrorInfo` metadata (the
    /// field at fault, the tenant, revisions), as `(key, value)` pairs.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            NodeError::InvalidArgument { field, .. } | NodeError::Zookie { field, .. } => {
                vec![("field", field.clone())]
            }
            NodeError::TenantNotFound(tenant) | NodeError::NoSchema(tenant) => {
                vec![("tenant", tenant.clone())]
            }
            NodeError::Storage(e) => storage_metadata(e),
            NodeError::Engine(EngineError::Storage(e)) => storage_metadata(e),
            NodeError::Rejected(Rejection::InvalidArgument { field, .. }) => {
                vec![("field", field.clone())]
            }
            NodeError::Rejected(Rejection::TenantNotFound(tenant)) => {
                vec![("tenant", tenant.clone())]
            }
            NodeError::RevisionNotApplied {
                field,
                wanted,
                applied,
                ..
            } => vec![
                ("field", (*field).to_string()),
                ("requested_revision", wanted.0.to_string()),
                ("applied_revision", applied.0.to_string()),
            ],
            NodeError::RevisionCompacted {
                field,
                wanted,
                floor,
            } => vec![
                ("field", (*field).to_string()),
                ("requested_revision", wanted.0.to_string()),
                ("oldest_revision", floor.0.to_string()),
            ],
            NodeError::RateLimited {
                tenant, retry_in, ..
            } => vec![
                ("tenant", tenant.clone()),
                ("retry_after_ms", retry_in.as_millis().max(1).to_string()),
            ],
            NodeError::Engine(EngineError::UnknownType(object_type)) => {
                vec![("object_type", object_type.clone())]
            }
            NodeError::Engine(EngineError::UnknownRelation {
                object_type,
                relation,
            }) => vec![
                ("object_type", object_type.clone()),
                ("relation", relation.clone()),
            ],
            _ => Vec::new(),
        }
    }
}

/// Why the node could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The data directory could not be prepared.
    #[error("data directory `{path}`: {message}")]
    DataDir {
        /// The directory.
        path: String,
        /// What failed.
        message: String,
    },
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(String),
    /// The settings do not allow starting (no auth mode chosen, bad TLS files).
    #[error("{0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_rejection_that_crossed_raft_is_the_store_error_again() {
        let stored = || {
            [
                StorageError::TupleAlreadyExists {
                    index: 2,
                    tuple: "doc:1#viewer@user:a".into(),
                },
                StorageError::PreconditionFailed {
                    index: 1,
                    kind: "must not match",
                },
                StorageError::PreconditionFailed {
                    index: 0,
                    kind: "must match",
                },
            ]
        };
        for (e, same) in stored().into_iter().zip(stored()) {
            let direct = NodeError::from(same);
            // Through the log's codec, as a follower's answer arrives.
            let rejection = Rejection::from_storage(&e);
            let bytes = serde_json::to_vec(&rejection).unwrap();
            let crossed: Rejection = serde_json::from_slice(&bytes).unwrap();
            let lifted = NodeError::from(crossed);
            assert!(matches!(lifted, NodeError::Storage(_)), "{lifted:?}");
            assert_eq!(lifted.to_string(), direct.to_string());
            assert_eq!(lifted.reason_kind(), direct.reason_kind());
            assert_eq!(lifted.metadata(), direct.metadata());
        }
        // The state machine's own refusals stay rejections.
        let own = NodeError::from(Rejection::TenantNotFound("acme".into()));
        assert!(matches!(own, NodeError::Rejected(_)));
        assert_eq!(own.reason_kind(), Reason::TenantNotFound);
    }

    #[test]
    fn a_store_error_met_in_the_engine_maps_as_the_store_error_does() {
        use verdict_storage::Revision;
        let compacted = || StorageError::RevisionCompacted {
            requested: Revision(3),
            floor: Revision(9),
        };
        let direct = NodeError::from(compacted());
        let through_engine = NodeError::from(EngineError::from(compacted()));
        assert_eq!(through_engine.reason_kind(), Reason::RevisionCompacted);
        assert_eq!(through_engine.reason_kind(), direct.reason_kind());
        assert_eq!(through_engine.metadata(), direct.metadata());
        assert!(through_engine
            .metadata()
            .contains(&("oldest_revision", "9".to_string())));

        // Still shared with another waiter: stays an engine error, same
        // reason and metadata.
        let shared = EngineError::from(compacted());
        let _other_waiter = shared.clone();
        let kept = NodeError::from(shared);
        assert!(matches!(kept, NodeError::Engine(EngineError::Storage(_))));
        assert_eq!(kept.reason_kind(), Reason::RevisionCompacted);
        assert_eq!(kept.metadata(), direct.metadata());

        let corrupt = NodeError::from(EngineError::from(StorageError::Poisoned));
        assert_eq!(corrupt.reason_kind(), Reason::StorageFailure);
    }

    #[test]
    fn every_reason_round_trips_through_its_code() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.as_str()), Some(reason));
            assert!(reason.as_str().starts_with("VERDICT_"));
        }
        let codes: std::collections::BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(codes.len(), Reason::ALL.len(), "codes are unique");
    }

    #[test]
    fn a_peer_error_keeps_its_reason_across_the_wire() {
        let e = NodeError::TenantNotFound("acme".into());
        let wire = verdict_raft::codec::encode(&Err::<u64, _>(PeerError::from(&e))).unwrap();
        let back: Result<u64, PeerError> = verdict_raft::codec::decode(&wire).unwrap();
        let back = NodeError::Peer {
            source: back.unwrap_err(),
        };
        assert_eq!(back.reason(), "VERDICT_TENANT_NOT_FOUND");
        assert_eq!(back.to_string(), "tenant `acme` not found; retry");
        let json = serde_json::to_string(&PeerError::from(&e)).unwrap();
        assert!(json.contains("\"VERDICT_TENANT_NOT_FOUND\""), "{json}");
        let unknown: PeerError =
            serde_json::from_str(r#"{"reason":"VERDICT_SOMETHING_NEW","message":"m"}"#).unwrap();
        assert_eq!(unknown.reason, Reason::Internal);
    }

    #[test]
    fn storage_errors_keep_their_messages_and_gain_reasons() {
        let e = NodeError::from(StorageError::RevisionCompacted {
            requested: Revision(3),
            floor: Revision(9),
        });
        assert_eq!(e.reason(), "VERDICT_REVISION_COMPACTED");
        assert_eq!(
            e.to_string(),
            StorageError::RevisionCompacted {
                requested: Revision(3),
                floor: Revision(9),
            }
            .to_string()
        );
        let e = NodeError::from(StorageError::InvalidTenant { tenant: "A".into() });
        assert_eq!(e.reason(), "VERDICT_INVALID_ARGUMENT");
        assert!(e.to_string().starts_with("invalid `tenant`: "), "{e}");
        let e = NodeError::from(StorageError::Poisoned);
        assert_eq!(e.reason(), "VERDICT_STORAGE_FAILURE");
        assert!(e.to_string().starts_with("internal error: "), "{e}");
    }
}
