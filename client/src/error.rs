//! The client's errors.

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status (its code, message and
    /// details are kept; `ErrorInfo.reason` is in the details).
    #[error("server error {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The endpoint could not be parsed or configured.
    #[error("bad endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    /// A reference, relationship or argument that is not well formed.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being parsed.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The server's answer lacked a field it always sends.
    #[error("the server's answer has no {0}")]
    Missing(&'static str),
    /// A bearer key that cannot be sent as metadata.
    #[error("the bearer key is not valid metadata")]
    BadKey,
}

impl ClientError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        ClientError::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// The gRPC status code, for a server error.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}
