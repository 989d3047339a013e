//! Errors reported on a DSL, JSON model or module, with upstream's message,
//! position and error type.

use std::fmt;

/// Whether an error came from the grammar or from semantic validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax,
    Semantic,
}

/// A start/end pair (line or column; 0-based, column end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    pub start: usize,
    pub end: usize,
}

/// One diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DslError {
    pub kind: ErrorKind,
    pub msg: String,
    pub line: Range,
    pub column: Range,
    /// The offending text (`metadata.symbol` upstream).
    pub symbol: String,
    /// Upstream's `metadata.errorType` (`missing-definition`, ...), empty for
    /// syntax errors.
    pub error_type: String,
    /// The file, for modular models.
    pub file: String,
}

impl DslError {
    pub(crate) fn syntax(msg: impl Into<String>, line: usize, col: usize, symbol: &str) -> Self {
        DslError {
            kind: ErrorKind::Syntax,
            msg: msg.into(),
            line: Range { start: line, end: line },
            column: Range {
                start: col,
                end: col + symbol.chars().count(),
            },
            symbol: symbol.to_string(),
            error_type: String::new(),
            file: String::new(),
        }
    }

    pub(crate) fn semantic(msg: impl Into<String>, error_type: &str, symbol: &str) -> Self {
        DslError {
            kind: ErrorKind::Semantic,
            msg: msg.into(),
            line: Range::default(),
            column: Range::default(),
            symbol: symbol.to_string(),
            error_type: error_type.to_string(),
            file: String::new(),
        }
    }
}

impl fmt::Display for DslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Syntax => write!(
                f,
                "syntax error at line={}, column={}: {}",
                self.line.start, self.column.start, self.msg
            ),
            ErrorKind::Semantic => write!(
                f,
                "{} (line {}, column {})",
                self.msg, self.line.start, self.column.start
            ),
        }
    }
}

/// All errors found in one input (upstream reports them together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DslErrors(pub Vec<DslError>);

impl fmt::Display for DslErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} error{} occurred:", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "\n\t* {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DslErrors {}
