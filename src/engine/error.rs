//! Engine failures (answers such as DENIED are not errors).

use std::sync::Arc;

use super::caveat_eval::CaveatError;

/// Why the engine could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The type is not in the schema.
    #[error("object type `{0}` not found in the schema")]
    UnknownType(String),
    /// The relation or permission is not on the type.
    #[error("relation or permission `{relation}` not found on type `{object_type}`")]
    UnknownRelation {
        /// The type.
        object_type: String,
        /// The missing name.
        relation: String,
    },
    /// The walk went deeper than the configured bound.
    #[error("check exceeded the maximum depth of {max_depth} (deeply nested or cyclic data)")]
    DepthExceeded {
        /// The bound.
        max_depth: u32,
    },
    /// A caveat could not be evaluated with the given context.
    #[error(transparent)]
    Caveat(#[from] CaveatError),
    /// The store failed: its typed error, shared so the engine's errors stay
    /// `Clone` (one failure can answer several waiting callers). The edge
    /// maps it exactly as it maps the store's own errors.
    #[error("storage error: {0}")]
    Storage(Arc<verdict_storage::StorageError>),
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<verdict_storage::StorageError> for EngineError {
    fn from(e: verdict_storage::StorageError) -> Self {
        EngineError::Storage(Arc::new(e))
    }
}
