//! OpenFGA's modeling language for Verdict: the JSON authorization model
//! ([`model`]), the DSL ([`parse_dsl`], [`to_dsl`]), semantic validation, the
//! modular `fga.mod` form and `fga model test` store files.
//!
//! Behaviour follows github.com/openfga/language (pkg/go and pkg/js); error
//! messages, positions and error types match upstream so OpenFGA users see
//! the same diagnostics.

pub mod error;
mod lexer;
pub mod model;
mod parser;
mod to_dsl;

pub use error::{DslError, DslErrors, ErrorKind, Range};
pub use parser::{parse_dsl_syntax, ParsedDsl};
pub use to_dsl::{to_dsl, to_dsl_with, ToDslError, ToDslOptions};

/// Parses a schema 1.1 DSL model (syntax and semantics).
pub fn parse_dsl(src: &str) -> Result<model::AuthorizationModel, DslErrors> {
    Ok(parse_dsl_syntax(src)?.model)
}
