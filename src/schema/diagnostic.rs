//! Diagnostics: errors and warnings with a source span, rendered with
//! `file:line:column`, a one-line excerpt and a caret, plus a hint.

use std::fmt::Write as _;

/// A half-open byte range `[start, end)` into a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (bytes).
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The schema is still accepted.
    Warning,
    /// The schema is rejected.
    Error,
}

/// One problem found in a schema, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable code, e.g. `"SCHEMA:UnknownRelation"`.
    pub code: &'static str,
    /// What is wrong, lower-case, user input in backticks.
    pub message: String,
    /// Where it is.
    pub span: Span,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A new error.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            hint: None,
        }
    }

    /// A new warning.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Attaches a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether this diagnostic rejects the schema.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Maps byte offsets of a source text to 1-based line and column numbers.
#[derive(Debug, Clone)]
pub struct SourceMap<'a> {
    name: &'a str,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    /// Indexes `text`, which is called `name` in rendered diagnostics.
    pub fn new(name: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            name,
            text,
            line_starts,
        }
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        // `line_starts` opens with 0, so every offset has a line.
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }

    fn line_text(&self, line: usize) -> &'a str {
        let Some(&start) = line.checked_sub(1).and_then(|i| self.line_starts.get(i)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next.saturating_sub(1));
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches('\r')
    }

    /// Renders a diagnostic in the compiler style:
    ///
    /// ```text
    /// error[SCHEMA:UnknownRelation]: relation or permission `viewr` not found under definition `document`
    ///   --> schema.zed:4:23
    ///    |
    ///  4 |     permission view = viewr
    ///    |                       ^^^^^
    ///    = hint: did you mean `viewer`?
    /// ```
    pub fn render(&self, diagnostic: &Diagnostic) -> String {
        let (line, column) = self.line_col(diagnostic.span.start);
        let label = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let text = self.line_text(line);
        let gutter = line.to_string().len();
        let width = {
            let (end_line, end_column) = self.line_col(diagnostic.span.end);
            if end_line == line && end_column > column {
                end_column - column
            } else {
                1
            }
        };
        let mut out = String::new();
        let _ = writeln!(out, "{label}[{}]: {}", diagnostic.code, diagnostic.message);
        let _ = writeln!(out, "{:gutter$}--> {}:{line}:{column}", "", self.name);
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{line} | {text}");
        let prefix: String = text
            .chars()
            .take(column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = writeln!(out, "{:gutter$} | {prefix}{}", "", "^".repeat(width));
        if let Some(hint) = &diagnostic.hint {
            let _ = writeln!(out, "{:gutter$} = hint: {hint}", "");
        }
        out
    }

    /// Renders every diagnostic, errors and warnings alike.
    pub fn render_all(&self, diagnostics: &[Diagnostic]) -> String {
        diagnostics.iter().map(|d| self.render(d)).collect()
    }
}

/// The closest of `candidates` to `name` by edit distance, if close enough to
/// suggest (used for "did you mean" hints).
pub fn suggest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (name.len() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.cmp(b))
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // Levenshtein, one row at a time: `row[j]` is the distance between the
    // prefix of `a` read so far and `b[..j]`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let Some((first, rest)) = row.split_first_mut() else {
            break;
        };
        // The previous row's `row[j]` (diagonal) and this row's `row[j]` (left).
        let mut diagonal = *first;
        *first = i + 1;
        let mut left = *first;
        for (cell, cb) in rest.iter_mut().zip(&b) {
            let up = *cell;
            *cell = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(up).min(left)
            };
            diagonal = up;
            left = *cell;
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_and_in_characters() {
        let map = SourceMap::new("s", "ab\ncdé f\n");
        assert_eq!(map.line_col(0), (1, 1));
        assert_eq!(map.line_col(3), (2, 1));
        // `é` is two bytes but one column.
        assert_eq!(map.line_col(3 + "cdé ".len()), (2, 5));
    }

    #[test]
    fn render_shows_excerpt_caret_and_hint() {
        let text = "definition doc {\n    permission view = viewr\n}\n";
        let start = text.find("viewr").unwrap();
        let d = Diagnostic::error(
            "SCHEMA:UnknownRelation",
            Span::new(start, start + 5),
            "nope",
        )
        .with_hint("did you mean `viewer`?");
        let out = SourceMap::new("x.zed", text).render(&d);
        assert!(out.contains("--> x.zed:2:23"), "{out}");
        assert!(out.contains("2 |     permission view = viewr"), "{out}");
        assert!(out.contains("  |                       ^^^^^\n"), "{out}");
        assert!(out.contains("= hint: did you mean `viewer`?"), "{out}");
    }

    #[test]
    fn suggest_finds_close_names_only() {
        assert_eq!(suggest("viewr", ["viewer", "editor"]), Some("viewer"));
        assert_eq!(suggest("zzz", ["viewer", "editor"]), None);
    }
}
