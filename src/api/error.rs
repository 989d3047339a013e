//! API errors, and their mapping to gRPC statuses — in exactly one place
//! ([`From<ApiError> for tonic::Status`]).

use crate::engine::EngineError;
use crate::server::zookie::ZookieError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
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
    /// The state does not allow it (precondition failed, stale version,
    /// garbage-collected revision...).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Something already exists (CREATE of an existing relationship).
    #[error("{0}")]
    AlreadyExists(String),
    /// Not ready for the requested revision within the bound.
    #[error("{0}")]
    Unavailable(String),
    /// A consumer fell behind, or a rate budget is spent.
    #[error("{0}")]
    ResourceExhausted(String),
    /// No valid API key.
    #[error("{0}")]
    Unauthenticated(String),
    /// The key may not do this (another tenant, an admin call).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The engine could not answer.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A failure on our side.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ApiError::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<verdict_storage::StorageError> for ApiError {
    fn from(e: verdict_storage::StorageError) -> Self {
        use verdict_storage::StorageError as S;
        match &e {
            S::InvalidTenant { .. } => ApiError::invalid("tenant", &e),
            S::InvalidTuple(_)
            | S::InvalidOperation { .. }
            | S::OperationNotAllowed { .. }
            | S::DuplicateTuple { .. } => ApiError::invalid("updates", &e),
            S::TupleAlreadyExists { .. } => ApiError::AlreadyExists(e.to_string()),
            S::PreconditionFailed { .. }
            | S::RevisionCompacted { .. }
            | S::ChangelogCompacted { .. } => ApiError::FailedPrecondition(e.to_string()),
            S::RevisionInFuture { .. } => ApiError::Unavailable(e.to_string()),
            _ => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        use tonic::Code;
        let code = match &e {
            ApiError::InvalidArgument { .. }
            | ApiError::SchemaRejected(_)
            | ApiError::Zookie { .. } => Code::InvalidArgument,
            ApiError::TenantNotFound(_) => Code::NotFound,
            ApiError::NoSchema(_) | ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Engine(engine) => match engine {
                EngineError::UnknownType(_)
                | EngineError::UnknownRelation { .. }
                | EngineError::Caveat(_) => Code::InvalidArgument,
                EngineError::DepthExceeded { .. } => Code::ResourceExhausted,
                EngineError::Storage(_) | EngineError::Internal(_) => Code::Internal,
            },
            ApiError::Internal(_) => Code::Internal,
        };
        tonic::Status::new(code, e.to_string())
    }
}
