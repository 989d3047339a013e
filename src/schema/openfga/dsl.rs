//! The OpenFGA DSL, through `verdict-fga-lang`.

use verdict_fga_lang::model::AuthorizationModel;

use super::super::diagnostic::{Diagnostic, Span};

/// Parses DSL text into the JSON model.
pub(super) fn parse(_text: &str) -> Result<AuthorizationModel, Vec<Diagnostic>> {
    Err(vec![Diagnostic::error(
        "OPENFGA:DslUnavailable",
        Span::new(0, 0),
        "the OpenFGA DSL parser is not available in this build; send the model as JSON",
    )])
}

/// The DSL text, formatted.
pub(super) fn format(text: &str, _model: &AuthorizationModel) -> Result<String, Vec<Diagnostic>> {
    Ok(text.to_string())
}

/// An `fga.mod` modular model as one model text (JSON).
pub(super) fn combine_modules(path: &std::path::Path, _text: &str) -> Result<String, String> {
    Err(format!(
        "{}: modular models (fga.mod) are not supported in this build",
        path.display()
    ))
}
