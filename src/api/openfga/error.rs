//! OpenFGA's errors: a numeric code with its enum name and a message,
//! answered as `{"code": name, "message": …}` with the HTTP status of the
//! code's range, and over gRPC with the number itself as the status code
//! (the guard layer rewrites `grpc-status` from [`CODE_HEADER`]).
//! Node errors are mapped once here, from their kind, never their text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tonic::metadata::MetadataValue;
use tonic::Status;

use crate::server::error::NodeError;

/// Response metadata carrying the OpenFGA code, for the guard layer.
pub const CODE_HEADER: &str = "x-openfga-code";

/// One OpenFGA error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FgaError {
    /// The OpenFGA code (`ErrorCode`, `NotFoundErrorCode`, `AuthErrorCode`,
    /// `InternalErrorCode`).
    pub code: u32,
    /// The enum name (`validation_error`, `store_id_not_found`, …).
    pub name: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Results of this front door.
pub type FgaResult<T> = Result<T, FgaError>;

macro_rules! codes {
    ($($fn_name:ident = $code:literal, $name:literal;)*) => {
        impl FgaError {
            $(
                #[doc = concat!("`", $name, "` (", stringify!($code), ").")]
                pub fn $fn_name(message: impl Into<String>) -> FgaError {
                    FgaError { code: $code, name: $name, message: message.into() }
                }
            )*
        }
    };
}

codes! {
    validation = 2000, "validation_error";
    model_not_found = 2001, "authorization_model_not_found";
    too_complex = 2002, "authorization_model_resolution_too_complex";
    invalid_write_input = 2003, "invalid_write_input";
    duplicate_tuples = 2004, "cannot_allow_duplicate_tuples_in_one_request";
    duplicate_types = 2005, "cannot_allow_duplicate_types_in_one_request";
    invalid_continuation_token = 2007, "invalid_continuation_token";
    write_failed = 2017, "write_failed_due_to_invalid_input";
    latest_model_not_found = 2020, "latest_authorization_model_not_found";
    type_not_found = 2021, "type_not_found";
    relation_not_found = 2022, "relation_not_found";
    invalid_tuple = 2027, "invalid_tuple";
    exceeded_entity_limit = 2053, "exceeded_entity_limit";
    invalid_model = 2056, "invalid_authorization_model";
    unsupported_schema_version = 2057, "unsupported_schema_version";
    unauthenticated = 1500, "unauthenticated";
    bearer_missing = 1010, "bearer_token_missing";
    forbidden = 1600, "forbidden";
    internal = 4000, "internal_error";
    deadline_exceeded = 4004, "deadline_exceeded";
    store_not_found = 5002, "store_id_not_found";
    unimplemented = 5004, "unimplemented";
    undefined_endpoint = 5000, "undefined_endpoint";
}

impl FgaError {
    /// A validation error naming the field, as OpenFGA's request validation
    /// words it (`invalid CheckRequest.TupleKey: …`).
    pub fn field(field: &str, reason: impl std::fmt::Display) -> FgaError {
        FgaError::validation(format!("invalid {field}: {reason}"))
    }

    /// The HTTP status OpenFGA answers for this code.
    pub fn http_status(&self) -> StatusCode {
        match self.code {
            1600 => StatusCode::FORBIDDEN,
            1000..=1999 => StatusCode::UNAUTHORIZED,
            2000..=3499 => StatusCode::BAD_REQUEST,
            3500..=3999 => StatusCode::UNPROCESSABLE_ENTITY,
            4000..=4999 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::NOT_FOUND,
        }
    }

    /// The standard gRPC code closest to this one (the guard layer then
    /// puts OpenFGA's own number on the wire).
    fn grpc_code(&self) -> tonic::Code {
        match self.code {
            1600 => tonic::Code::PermissionDenied,
            1000..=1999 => tonic::Code::Unauthenticated,
            2000..=3999 => tonic::Code::InvalidArgument,
            4004 => tonic::Code::DeadlineExceeded,
            4000..=4999 => tonic::Code::Internal,
            5004 => tonic::Code::Unimplemented,
            _ => tonic::Code::NotFound,
        }
    }

    /// The JSON body OpenFGA sends.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.name, "message": self.message })
    }
}

impl std::fmt::Display for FgaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.code, self.message)
    }
}

impl From<FgaError> for Status {
    fn from(e: FgaError) -> Status {
        let mut status = Status::new(e.grpc_code(), e.message.clone());
        if let Ok(v) = MetadataValue::try_from(e.code.to_string()) {
            status.metadata_mut().insert(CODE_HEADER, v);
        }
        status
    }
}

impl IntoResponse for FgaError {
    fn into_response(self) -> Response {
        (self.http_status(), axum::Json(self.body())).into_response()
    }
}

impl From<NodeError> for FgaError {
    fn from(e: NodeError) -> FgaError {
        let message = e.to_string();
        match e {
            NodeError::InvalidArgument { .. } | NodeError::Zookie { .. } => {
                FgaError::validation(message)
            }
            NodeError::SchemaRejected(_) => FgaError::invalid_model(message),
            NodeError::TenantNotFound(_) => FgaError::store_not_found(message),
            NodeError::NoSchema(_) => FgaError::latest_model_not_found(
                "No authorization models found for store.".to_string(),
            ),
            NodeError::Unauthenticated(_) => FgaError::unauthenticated(message),
            NodeError::PermissionDenied(_) => FgaError::forbidden(message),
            NodeError::Engine(crate::engine::EngineError::DepthExceeded { .. }) => {
                FgaError::too_complex(message)
            }
            NodeError::Storage(verdict_storage::StorageError::InvalidCursor) => {
                FgaError::invalid_continuation_token(message)
            }
            NodeError::DeadlineExceeded { .. } => FgaError::deadline_exceeded(message),
            _ => FgaError::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_follows_the_code_range() {
        assert_eq!(
            FgaError::validation("x").http_status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            FgaError::store_not_found("x").http_status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            FgaError::internal("x").http_status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            FgaError::unauthenticated("x").http_status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            FgaError::forbidden("x").http_status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            FgaError::type_not_found("x").body(),
            serde_json::json!({"code": "type_not_found", "message": "x"})
        );
    }

    #[test]
    fn grpc_status_carries_the_openfga_number() {
        let s = Status::from(FgaError::type_not_found("no such type"));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.metadata().get(CODE_HEADER).unwrap(), "2021");
    }
}
