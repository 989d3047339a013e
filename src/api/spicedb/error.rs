//! SpiceDB-shaped errors: the gRPC code, the message, and a
//! `google.rpc.ErrorInfo{reason: "ERROR_REASON_…", domain: "authzed.com",
//! metadata}` in the status details, as SpiceDB sends them (request
//! validation errors carry no ErrorInfo, as in SpiceDB). Node, engine and
//! storage errors become [`SpiceError`]s here, and [`SpiceError`] becomes a
//! status in exactly one place ([`SpiceError::to_rpc_status`], used by
//! `From<SpiceError> for tonic::Status` and by CheckBulkPermissions'
//! per-item errors).

use std::collections::BTreeMap;

use prost::Message as _;
use tonic::Code;

use super::pb::{self, ErrorReason};
use crate::api::error::ApiError;
use crate::engine::caveat_eval::CaveatError;
use crate::engine::EngineError;
use crate::relationships::RelationshipError;

/// The ErrorInfo domain of every SpiceDB error.
pub const DOMAIN: &str = "authzed.com";

/// One failed request, as SpiceDB reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiceError {
    /// The gRPC code.
    pub code: Code,
    /// The message (SpiceDB's wording where it is observable).
    pub message: String,
    /// The ErrorInfo reason; `None` sends no ErrorInfo.
    pub reason: Option<ErrorReason>,
    /// The ErrorInfo metadata.
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Display for SpiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// `Result` with [`SpiceError`].
pub type SpiceResult<T> = Result<T, SpiceError>;

impl SpiceError {
    /// An error without ErrorInfo.
    pub fn plain(code: Code, message: impl Into<String>) -> Self {
        SpiceError {
            code,
            message: message.into(),
            reason: None,
            metadata: BTreeMap::new(),
        }
    }

    /// An error with ErrorInfo `reason` and `metadata`.
    pub fn reasoned(
        code: Code,
        reason: ErrorReason,
        message: impl Into<String>,
        metadata: &[(&str, &str)],
    ) -> Self {
        SpiceError {
            code,
            message: message.into(),
            reason: Some(reason),
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        }
    }

    /// A request-validation failure (`validation error: <field>: <what>`).
    pub fn validation(field: &str, what: impl std::fmt::Display) -> Self {
        SpiceError::plain(
            Code::InvalidArgument,
            format!("validation error: {field}: {what}"),
        )
    }

    /// An unknown object definition.
    pub fn unknown_definition(name: &str) -> Self {
        SpiceError::reasoned(
            Code::FailedPrecondition,
            ErrorReason::UnknownDefinition,
            format!("object definition `{name}` not found"),
            &[("definition_name", name)],
        )
    }

    /// An unknown relation or permission of a definition.
    pub fn unknown_relation(definition: &str, relation: &str) -> Self {
        SpiceError::reasoned(
            Code::FailedPrecondition,
            ErrorReason::UnknownRelationOrPermission,
            format!("relation/permission `{relation}` not found under definition `{definition}`"),
            &[
                ("definition_name", definition),
                ("relation_or_permission_name", relation),
            ],
        )
    }

    /// A relationship filter that selects nothing or is contradictory.
    pub fn invalid_filter(what: &str, filter: &str) -> Self {
        SpiceError::reasoned(
            Code::InvalidArgument,
            ErrorReason::InvalidFilter,
            format!("the relationship filter provided is not valid: {what}"),
            &[("filter", filter)],
        )
    }

    /// A limit above the server's maximum.
    pub fn limit_exceeded(provided: u32, maximum: u32) -> Self {
        SpiceError::reasoned(
            Code::InvalidArgument,
            ErrorReason::ExceedsMaximumAllowableLimit,
            format!("provided limit {provided} is greater than maximum allowed of {maximum}"),
            &[
                ("limit_provided", &provided.to_string()),
                ("maximum_limit_allowed", &maximum.to_string()),
            ],
        )
    }

    /// A cursor that does not decode.
    pub fn bad_cursor(what: impl std::fmt::Display) -> Self {
        SpiceError::reasoned(
            Code::InvalidArgument,
            ErrorReason::InvalidCursor,
            format!("error decoding cursor: {what}"),
            &[],
        )
    }

    /// A cursor reused with other request parameters.
    pub fn cursor_mismatch() -> Self {
        SpiceError::reasoned(
            Code::InvalidArgument,
            ErrorReason::InvalidCursor,
            "the cursor provided does not have the same arguments as the original API call; please ensure you are making the same API call, with the exact same parameters (besides the cursor)",
            &[],
        )
    }

    /// An undecodable ZedToken in `consistency`.
    pub fn bad_zedtoken() -> Self {
        SpiceError::plain(Code::InvalidArgument, "invalid revision requested")
    }

    /// The `google.rpc.Status` of this error (code, message, ErrorInfo).
    pub fn to_rpc_status(&self) -> pb::google::rpc::Status {
        let details = self
            .reason
            .map(|reason| {
                let info = pb::google::rpc::ErrorInfo {
                    reason: reason.as_str_name().to_string(),
                    domain: DOMAIN.to_string(),
                    metadata: self
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                };
                prost_types::Any {
                    type_url: "type.googleapis.com/google.rpc.ErrorInfo".to_string(),
                    value: info.encode_to_vec(),
                }
            })
            .into_iter()
            .collect();
        pb::google::rpc::Status {
            code: self.code as i32,
            message: self.message.clone(),
            details,
        }
    }
}

impl From<SpiceError> for tonic::Status {
    fn from(e: SpiceError) -> Self {
        if e.reason.is_none() {
            return tonic::Status::new(e.code, e.message);
        }
        let details = e.to_rpc_status().encode_to_vec();
        tonic::Status::with_details(e.code, e.message, details.into())
    }
}

impl From<EngineError> for SpiceError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownType(name) => match name.strip_prefix("caveat ") {
                Some(caveat) => SpiceError::reasoned(
                    Code::FailedPrecondition,
                    ErrorReason::UnknownCaveat,
                    format!("caveat `{caveat}` not found"),
                    &[("caveat_name", caveat)],
                ),
                None => SpiceError::unknown_definition(&name),
            },
            EngineError::UnknownRelation {
                object_type,
                relation,
            } => SpiceError::unknown_relation(&object_type, &relation),
            EngineError::DepthExceeded { max_depth } => SpiceError::reasoned(
                Code::ResourceExhausted,
                ErrorReason::MaximumDepthExceeded,
                format!("max depth exceeded: this usually indicates a recursive or too deep data dependency (maximum depth {max_depth})"),
                &[("maximum_depth_allowed", &max_depth.to_string())],
            ),
            EngineError::Caveat(c) => c.into(),
            EngineError::Storage(e) => SpiceError::plain(
                crate::api::error::code(crate::api::error::storage_reason(&e)),
                e.to_string(),
            ),
            EngineError::Internal(m) => SpiceError::plain(Code::Internal, m),
        }
    }
}

impl From<CaveatError> for SpiceError {
    fn from(e: CaveatError) -> Self {
        match &e {
            CaveatError::ContextType {
                caveat,
                param,
                expected,
                found,
            } => SpiceError::reasoned(
                Code::InvalidArgument,
                ErrorReason::CaveatParameterTypeError,
                format!("type error for parameters for caveat `{caveat}`: could not convert context parameter `{param}`: a {expected} value is required, but found {found}"),
                &[("caveat_name", caveat), ("parameter_name", param)],
            ),
            CaveatError::ContextTooLarge { caveat, limit, .. } => SpiceError::reasoned(
                Code::InvalidArgument,
                ErrorReason::MaxRelationshipContextSize,
                e.to_string(),
                &[("caveat_name", caveat), ("max_allowed_size", &limit.to_string())],
            ),
            CaveatError::Evaluation { caveat, .. } => SpiceError::reasoned(
                Code::InvalidArgument,
                ErrorReason::CaveatEvaluationError,
                e.to_string(),
                &[("caveat_name", caveat)],
            ),
            CaveatError::Compile { .. } => SpiceError::plain(Code::Internal, e.to_string()),
        }
    }
}

impl From<RelationshipError> for SpiceError {
    fn from(e: RelationshipError) -> Self {
        match e {
            RelationshipError::UnknownResourceType(t) => SpiceError::unknown_definition(&t),
            RelationshipError::UnknownRelation {
                resource_type,
                relation,
            } => SpiceError::unknown_relation(&resource_type, &relation),
            RelationshipError::WriteToPermission {
                resource_type,
                relation,
            } => SpiceError::reasoned(
                Code::InvalidArgument,
                ErrorReason::CannotUpdatePermission,
                format!("cannot write a relationship to permission `{relation}` under definition `{resource_type}`"),
                &[("definition_name", &resource_type), ("permission_name", &relation)],
            ),
            RelationshipError::SubjectNotAllowed {
                resource_type,
                relation,
                subject,
                ..
            } => SpiceError::reasoned(
                Code::InvalidArgument,
                ErrorReason::InvalidSubjectType,
                format!("subjects of type `{subject}` are not allowed on relation `{resource_type}#{relation}`"),
                &[
                    ("definition_name", &resource_type),
                    ("relation_name", &relation),
                    ("subject_type", &subject),
                ],
            ),
        }
    }
}

impl From<ApiError> for SpiceError {
    /// Node-layer errors. Errors that need the request to be worded as
    /// SpiceDB does (CREATE conflicts, preconditions, missing schema) are
    /// converted by the handlers before they get here.
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Engine(engine) => engine.into(),
            ApiError::Zookie { .. } => SpiceError::bad_zedtoken(),
            ApiError::InvalidArgument { .. } | ApiError::SchemaRejected(_) => {
                SpiceError::plain(Code::InvalidArgument, e.to_string())
            }
            ApiError::TenantNotFound(_) => SpiceError::plain(Code::NotFound, e.to_string()),
            ApiError::NoSchema(_) => SpiceError::plain(
                Code::FailedPrecondition,
                "no schema has been defined; please call WriteSchema to start",
            ),
            ApiError::FailedPrecondition(m) => SpiceError::plain(Code::FailedPrecondition, m),
            ApiError::AlreadyExists(m) => SpiceError::plain(Code::AlreadyExists, m),
            // Everything else keeps the code the node's reason maps to.
            other => SpiceError::plain(
                crate::api::error::code(other.reason_kind()),
                other.to_string(),
            ),
        }
    }
}

impl From<verdict_storage::StorageError> for SpiceError {
    fn from(e: verdict_storage::StorageError) -> Self {
        ApiError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoned_errors_carry_error_info_in_the_status_details() {
        let status: tonic::Status = SpiceError::unknown_definition("nosuch").into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "object definition `nosuch` not found");
        let decoded = pb::google::rpc::Status::decode(status.details()).unwrap();
        assert_eq!(decoded.code, Code::FailedPrecondition as i32);
        let any = &decoded.details[0];
        assert_eq!(any.type_url, "type.googleapis.com/google.rpc.ErrorInfo");
        let info = pb::google::rpc::ErrorInfo::decode(any.value.as_slice()).unwrap();
        assert_eq!(info.reason, "ERROR_REASON_UNKNOWN_DEFINITION");
        assert_eq!(info.domain, "authzed.com");
        assert_eq!(info.metadata["definition_name"], "nosuch");
    }

    #[test]
    fn validation_errors_carry_no_error_info() {
        let status: tonic::Status = SpiceError::validation("resource.object_id", "x").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.details().is_empty());
    }
}
