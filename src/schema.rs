//! The schema language: SpiceDB's schema DSL compiled to a typed IR.
//!
//! ```text
//! text ─▶ lexer ─▶ parser ─▶ ast::SchemaFile ─▶ compiler ─▶ ir::Schema
//!                                   │
//!                                   └─▶ format (canonical printer)
//! ```
//!
//! This module owns syntax, name resolution, type checking (including caveat
//! CEL expressions) and formatting. It does not evaluate anything: the engine
//! walks [`ir::Schema`], and caveat evaluation lives with the engine.

pub mod ast;
pub mod cel_check;
pub mod compiler;
pub mod diagnostic;
pub mod diff;
pub mod format;
pub mod imports;
pub mod ir;
pub mod lexer;
mod limits;
pub mod loader;
pub mod openfga;
pub mod parser;

pub use diagnostic::{Diagnostic, Severity, SourceMap, Span};
pub use ir::Schema;
pub use limits::SchemaLimits;

/// A schema that compiled, with the warnings it produced.
#[derive(Debug, Clone)]
pub struct CompiledSchema {
    /// The IR the engine walks.
    pub schema: Schema,
    /// The syntax tree (for formatting and `schema read`).
    pub ast: ast::SchemaFile,
    /// Warnings; the schema is accepted regardless.
    pub warnings: Vec<Diagnostic>,
    /// The language the text was written in (an OpenFGA model has an
    /// empty `ast`).
    pub language: Language,
}

/// The language of a schema text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// SpiceDB's schema language.
    #[default]
    SpiceDb,
    /// OpenFGA's modeling language (`model` / `schema 1.1` / `type ...`).
    OpenFgaDsl,
    /// OpenFGA's JSON authorization model (`{"schema_version": ...}`).
    OpenFgaJson,
}

impl Language {
    /// Whether this is one of OpenFGA's forms.
    pub fn is_openfga(self) -> bool {
        !matches!(self, Language::SpiceDb)
    }
}

/// The language `text` is written in: OpenFGA JSON when it starts with
/// `{`, the OpenFGA DSL when its first word (after blank lines and `#`
/// comments) is `model`, else SpiceDB (whose definitions never start so).
pub fn detect_language(text: &str) -> Language {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"));
    match first {
        Some(l) if l.starts_with('{') => Language::OpenFgaJson,
        Some(l) if l.split_whitespace().next() == Some("model") => Language::OpenFgaDsl,
        _ => Language::SpiceDb,
    }
}

/// Compiles schema text in whichever language it is written in (see
/// [`detect_language`]): the one function the node, the APIs and the CLI
/// use, so an OpenFGA model goes through the same schema write path,
/// versions and migrations as a SpiceDB schema.
///
/// # Errors
/// The language's syntax or semantic errors.
pub fn compile_any(text: &str, limits: &SchemaLimits) -> Result<(Schema, Language), SchemaError> {
    compile(text, limits).map(|c| (c.schema, c.language))
}

/// Compiles an OpenFGA model, DSL or JSON.
fn compile_openfga_text(text: &str, language: Language) -> Result<CompiledSchema, SchemaError> {
    let model = openfga::parse_model(text, language).map_err(|diagnostics| SchemaError { diagnostics })?;
    let schema =
        openfga::compile_openfga_model(&model).map_err(|diagnostics| SchemaError { diagnostics })?;
    Ok(CompiledSchema {
        schema,
        ast: ast::SchemaFile::default(),
        warnings: Vec::new(),
        language,
    })
}

/// A schema that did not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("schema has {} error(s); first: {}", self.error_count(), self.first_message())]
pub struct SchemaError {
    /// Every error and warning, errors first.
    pub diagnostics: Vec<Diagnostic>,
}

impl SchemaError {
    /// How many diagnostics are errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    fn first_message(&self) -> &str {
        self.diagnostics
            .iter()
            .find(|d| d.is_error())
            .map_or("", |d| d.message.as_str())
    }

    /// Renders every diagnostic against the source it came from.
    pub fn render(&self, name: &str, text: &str) -> String {
        SourceMap::new(name, text).render_all(&self.diagnostics)
    }
}

/// Parses `text` only (no name resolution); returns the syntax tree or the
/// syntax errors.
///
/// # Errors
/// Every syntax error found.
pub fn parse(text: &str, limits: &SchemaLimits) -> Result<ast::SchemaFile, SchemaError> {
    let (file, diagnostics) = parser::parse(text, limits);
    if diagnostics.is_empty() {
        Ok(file)
    } else {
        Err(SchemaError { diagnostics })
    }
}

/// Parses and compiles schema text: SpiceDB's language, or an OpenFGA
/// model (see [`detect_language`]).
///
/// # Errors
/// Every syntax error, or (when the syntax is valid) every semantic error,
/// each with a span and, where possible, a hint.
pub fn compile(text: &str, limits: &SchemaLimits) -> Result<CompiledSchema, SchemaError> {
    let language = detect_language(text);
    if language.is_openfga() {
        return compile_openfga_text(text, language);
    }
    let ast = parse(text, limits)?;
    compile_parsed(ast, limits)
}

/// Compiles an already-parsed schema.
///
/// # Errors
/// Every semantic error.
pub fn compile_parsed(
    ast: ast::SchemaFile,
    limits: &SchemaLimits,
) -> Result<CompiledSchema, SchemaError> {
    match compiler::compile_ast(&ast, limits) {
        Ok((schema, warnings)) => Ok(CompiledSchema {
            schema,
            ast,
            warnings,
            language: Language::SpiceDb,
        }),
        Err(diagnostics) => Err(SchemaError { diagnostics }),
    }
}

/// Formats schema text canonically.
///
/// # Errors
/// The syntax errors, when the text does not parse.
pub fn format(text: &str, limits: &SchemaLimits) -> Result<String, SchemaError> {
    let language = detect_language(text);
    if language.is_openfga() {
        return openfga::format_model(text, language).map_err(|diagnostics| SchemaError { diagnostics });
    }
    parse(text, limits).map(|file| format::format_schema(&file))
}
