//! The one place that maps errors to gRPC statuses: [`status`] (and
//! `From<NodeError> for tonic::Status`, which calls it).
//!
//! The status code is a function of the error's stable [`Reason`]; the
//! message is the error's `Display`; the details carry a
//! `google.rpc.ErrorInfo { reason, domain: "verdict.dev", metadata }` so a
//! client can act on the reason without parsing the message.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

pub(crate) use crate::server::error::storage_reason;
/// `ApiError` is the API's name for the node's error type: services
/// validate their fields with it and answer it; [`status`] turns it into a
/// status.
pub use crate::server::error::{NodeError, NodeError as ApiError, Reason, REASON_DOMAIN};

/// The gRPC status code of every error with `reason`.
pub fn code(reason: Reason) -> Code {
    match reason {
        Reason::InvalidArgument
        | Reason::MessageTooLarge
        | Reason::InvalidZookie
        | Reason::SchemaRejected
        | Reason::UnknownType
        | Reason::UnknownRelation
        | Reason::CaveatError => Code::InvalidArgument,
        Reason::TenantNotFound => Code::NotFound,
        Reason::SchemaNotFound | Reason::PreconditionFailed | Reason::RevisionCompacted => {
            Code::FailedPrecondition
        }
        Reason::AlreadyExists => Code::AlreadyExists,
        Reason::RevisionNotApplied | Reason::Unavailable | Reason::Overloaded => Code::Unavailable,
        Reason::RateLimited | Reason::ResourceExhausted | Reason::DepthExceeded => {
            Code::ResourceExhausted
        }
        Reason::DeadlineExceeded => Code::DeadlineExceeded,
        Reason::Unauthenticated => Code::Unauthenticated,
        Reason::PermissionDenied => Code::PermissionDenied,
        Reason::StorageFailure | Reason::Internal => Code::Internal,
    }
}

/// The status a client receives for `e`: its code, its message and an
/// `ErrorInfo` with its reason and metadata in the details.
pub fn status(e: NodeError) -> Status {
    let reason = e.reason_kind();
    let metadata: HashMap<String, String> = e
        .metadata()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let details = ErrorDetails::with_error_info(reason.as_str(), REASON_DOMAIN, metadata);
    Status::with_error_details(code(reason), e.to_string(), details)
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Self {
        status(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineError;

    #[test]
    fn codes_and_messages_are_those_clients_always_saw() {
        let cases = [
            (NodeError::invalid("tenant", "bad"), Code::InvalidArgument),
            (NodeError::TenantNotFound("t".into()), Code::NotFound),
            (NodeError::NoSchema("t".into()), Code::FailedPrecondition),
            (NodeError::AlreadyExists("x".into()), Code::AlreadyExists),
            (NodeError::Unavailable("x".into()), Code::Unavailable),
            (
                NodeError::Engine(EngineError::DepthExceeded { max_depth: 3 }),
                Code::ResourceExhausted,
            ),
            (
                NodeError::Engine(EngineError::UnknownType("x".into())),
                Code::InvalidArgument,
            ),
            (NodeError::Internal("x".into()), Code::Internal),
        ];
        for (e, want) in cases {
            let message = e.to_string();
            let s = status(e);
            assert_eq!(s.code(), want, "{message}");
            assert_eq!(s.message(), message);
        }
    }

    #[test]
    fn the_reason_travels_in_the_error_info() {
        let s = Status::from(NodeError::invalid("updates[0]", "is empty"));
        let info = s.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "VERDICT_INVALID_ARGUMENT");
        assert_eq!(info.domain, "verdict.dev");
        assert_eq!(info.metadata["field"], "updates[0]");
    }
}
