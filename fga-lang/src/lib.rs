//! OpenFGA's modeling language for Verdict: the JSON authorization model
//! ([`model`]), the DSL ([`parse_dsl`], [`to_dsl`]), semantic validation
//! ([`validate_json`]), name grammars ([`names`]), the modular `fga.mod`
//! form and `fga model test` store files.
//!
//! Behaviour follows github.com/openfga/language (pkg/go and pkg/js); error
//! messages, positions and error types match upstream so OpenFGA users see
//! the same diagnostics.

pub mod error;
mod lexer;
pub mod model;
pub mod modules;
pub mod names;
mod parser;
pub mod store_file;
mod to_dsl;
pub mod validate;

pub use error::{DslError, DslErrors, ErrorKind, Range};
pub use names::{validate_object_id, validate_relation_name, validate_type_name};
pub use parser::{parse_dsl_syntax, ParsedDsl};
pub use to_dsl::{to_dsl, to_dsl_with, ToDslError, ToDslOptions};

/// Parses and validates a DSL model (schema 1.1, or one 1.2 module file
/// on its own). Syntax errors are reported first; semantic errors only for
/// a syntactically valid model, as upstream does.
pub fn parse_dsl(src: &str) -> Result<model::AuthorizationModel, DslErrors> {
    let parsed = parse_dsl_syntax(src)?;
    let errors = validate::validate_model(&parsed.model, Some(src));
    if errors.is_empty() {
        Ok(parsed.model)
    } else {
        Err(DslErrors(errors))
    }
}

/// Semantic validation of a JSON model (no positions).
pub fn validate_json(model: &model::AuthorizationModel) -> Result<(), DslErrors> {
    let errors = validate::validate_model(model, None);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DslErrors(errors))
    }
}
