//! The OpenFGA DSL, through `verdict-fga-lang`.

use verdict_fga_lang::model::AuthorizationModel;

use super::super::diagnostic::{Diagnostic, Span};

/// The byte offset of 0-based `line`, `column` (characters) in `text`.
fn offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
    let rest = text.get(start..).unwrap_or("");
    start
        + rest
            .char_indices()
            .nth(column)
            .map_or(rest.find('\n').unwrap_or(rest.len()), |(i, _)| i)
}

/// Parses DSL text into the JSON model (syntax and semantic validation as
/// OpenFGA's language reports them).
pub(super) fn parse(text: &str) -> Result<AuthorizationModel, Vec<Diagnostic>> {
    verdict_fga_lang::parse_dsl(text).map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| {
                let start = offset(text, e.line.start, e.column.start);
                let end = offset(text, e.line.end, e.column.end).max(start);
                let code = match e.kind {
                    verdict_fga_lang::ErrorKind::Syntax => "OPENFGA:SyntaxError",
                    verdict_fga_lang::ErrorKind::Semantic => "OPENFGA:ValidationError",
                    verdict_fga_lang::ErrorKind::Transformation => "OPENFGA:TransformationError",
                };
                Diagnostic::error(code, Span::new(start, end), e.msg.clone())
            })
            .collect()
    })
}

/// The DSL text, formatted canonically (as `fga model transform` writes it).
pub(super) fn format(_text: &str, model: &AuthorizationModel) -> Result<String, Vec<Diagnostic>> {
    verdict_fga_lang::to_dsl(model).map_err(|e| {
        vec![Diagnostic::error(
            "OPENFGA:ToDsl",
            Span::new(0, 0),
            e.to_string(),
        )]
    })
}

/// An `fga.mod` modular model (its module files read from beside it),
/// combined into one model and returned as its JSON text.
pub(super) fn combine_modules(path: &std::path::Path, text: &str) -> Result<String, String> {
    let shown = path.display();
    let m = verdict_fga_lang::modules::parse_mod_file(text).map_err(|e| format!("{shown}: {e}"))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut files = Vec::new();
    for name in &m.contents.value {
        let p = dir.join(&name.value);
        let contents = std::fs::read_to_string(&p)
            .map_err(|e| format!("{shown}: cannot read module {}: {e}", p.display()))?;
        files.push(verdict_fga_lang::modules::ModuleFile {
            name: name.value.clone(),
            contents,
        });
    }
    let model = verdict_fga_lang::modules::combine_modules(&files, &m.schema.value)
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(model.to_json_pretty())
}
