//! The schema lexer: turns text into tokens on demand.
//!
//! The parser drives it one token at a time because caveat bodies are CEL,
//! not schema tokens: at a caveat's `{` the parser asks for the raw
//! expression text up to the matching `}` instead.

use super::diagnostic::Span;

/// The kinds of token the schema language has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A name: `[A-Za-z_][A-Za-z0-9_]*` (keywords are identifiers too; the
    /// parser decides by position).
    Ident,
    /// A quoted string (`"..."`, `'...'` or `"""..."""`), for `import`.
    Str,
    /// `:`
    Colon,
    /// `;`
    Semicolon,
    /// `#`
    Hash,
    /// `*`
    Star,
    /// `|`
    Pipe,
    /// `=`
    Equals,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `&`
    Amp,
    /// `->`
    Arrow,
    /// `.`
    Dot,
    /// `...`
    Ellipsis,
    /// `,`
    Comma,
    /// `/`
    Slash,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `<`
    LAngle,
    /// `>`
    RAngle,
    /// A character the language does not use, or an unterminated comment
    /// or string.
    Error,
    /// End of input.
    Eof,
}

impl TokenKind {
    /// How the token is shown in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::Ident => "identifier",
            TokenKind::Str => "string",
            TokenKind::Colon => "`:`",
            TokenKind::Semicolon => "`;`",
            TokenKind::Hash => "`#`",
            TokenKind::Star => "`*`",
            TokenKind::Pipe => "`|`",
            TokenKind::Equals => "`=`",
            TokenKind::Plus => "`+`",
            TokenKind::Minus => "`-`",
            TokenKind::Amp => "`&`",
            TokenKind::Arrow => "`->`",
            TokenKind::Dot => "`.`",
            TokenKind::Ellipsis => "`...`",
            TokenKind::Comma => "`,`",
            TokenKind::Slash => "`/`",
            TokenKind::LParen => "`(`",
            TokenKind::RParen => "`)`",
            TokenKind::LBrace => "`{`",
            TokenKind::RBrace => "`}`",
            TokenKind::LAngle => "`<`",
            TokenKind::RAngle => "`>`",
            TokenKind::Error => "invalid character",
            TokenKind::Eof => "end of input",
        }
    }
}

/// One token with its position and the trivia before it that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Where it is.
    pub span: Span,
    /// Whether a line break separates it from the previous token (statements
    /// end at line breaks).
    pub newline_before: bool,
    /// The last `/** doc comment */` (or `///` line run) directly before it.
    pub doc: Option<Span>,
}

/// An on-demand tokenizer over schema text.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    /// Added to every span, so several files can share one offset space.
    base: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Lexer::with_base(text, 0)
    }

    /// A lexer whose spans start at `base` instead of 0 (for imported files
    /// that share one offset space with the file importing them).
    pub fn with_base(text: &'a str, base: usize) -> Self {
        Lexer { text, pos: 0, base }
    }

    /// The offset added to every span.
    pub fn base(&self) -> usize {
        self.base
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(start + self.base, end + self.base)
    }

    /// The text being lexed.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The current byte offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Moves to a span offset (as found in a token's span).
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos.saturating_sub(self.base).min(self.text.len());
    }

    fn peek_byte(&self, ahead: usize) -> Option<u8> {
        self.text.as_bytes().get(self.pos + ahead).copied()
    }

    /// Skips whitespace and comments; reports whether a line break was seen,
    /// the last doc comment, and an unterminated-comment error span.
    fn skip_trivia(&mut self) -> (bool, Option<Span>, Option<Span>) {
        let mut newline = false;
        let mut doc = None;
        loop {
            match self.peek_byte(0) {
                Some(b'\n') => {
                    newline = true;
                    self.pos += 1;
                }
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'/') if self.peek_byte(1) == Some(b'/') => {
                    let start = self.pos;
                    let end = self.text[start..]
                        .find('\n')
                        .map_or(self.text.len(), |i| start + i);
                    if self.text[start..].starts_with("///") {
                        doc = Some(match doc {
                            Some(Span { start: s, end: e })
                                if self.text[e..start].trim().is_empty()
                                    && self.text[s..].starts_with("///") =>
                            {
                                Span::new(s, end)
                            }
                            _ => Span::new(start, end),
                        });
                    }
                    self.pos = end;
                }
                Some(b'/') if self.peek_byte(1) == Some(b'*') => {
                    let start = self.pos;
                    match self.text[start + 2..].find("*/") {
                        Some(i) => {
                            let end = start + 2 + i + 2;
                            if self.text[start..end].contains('\n') {
                                newline = true;
                            }
                            if self.text[start..].starts_with("/**") && end - start > 4 {
                                doc = Some(Span::new(start, end));
                            }
                            self.pos = end;
                        }
                        None => {
                            self.pos = self.text.len();
                            return (newline, doc, Some(Span::new(start, start + 2)));
                        }
                    }
                }
                _ => return (newline, doc, None),
            }
        }
    }

    /// The next token.
    pub fn next_token(&mut self) -> Token {
        let (newline_before, doc, error) = self.skip_trivia();
        let doc = doc.map(|d| self.span(d.start, d.end));
        let error = error.map(|e| self.span(e.start, e.end));
        let start = self.pos;
        let base = self.base;
        let token = |kind, end| Token {
            kind,
            span: Span::new(start + base, end + base),
            newline_before,
            doc,
        };
        if let Some(span) = error {
            return Token {
                kind: TokenKind::Error,
                span,
                newline_before,
                doc,
            };
        }
        let Some(c) = self.text[start..].chars().next() else {
            return token(TokenKind::Eof, start);
        };
        if c.is_ascii_alphabetic() || c == '_' {
            let len = self.text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(self.text.len() - start);
            self.pos = start + len;
            return token(TokenKind::Ident, self.pos);
        }
        if c == '"' || c == '\'' {
            return match self.scan_string(start) {
                Some(end) => {
                    self.pos = end;
                    token(TokenKind::Str, end)
                }
                None => {
                    self.pos = self.text.len();
                    token(TokenKind::Error, self.text.len())
                }
            };
        }
        let rest = &self.text[start..];
        let (kind, len) = if rest.starts_with("...") {
            (TokenKind::Ellipsis, 3)
        } else if rest.starts_with("->") {
            (TokenKind::Arrow, 2)
        } else {
            let kind = match c {
                ':' => TokenKind::Colon,
                ';' => TokenKind::Semicolon,
                '#' => TokenKind::Hash,
                '*' => TokenKind::Star,
                '|' => TokenKind::Pipe,
                '=' => TokenKind::Equals,
                '+' => TokenKind::Plus,
                '-' => TokenKind::Minus,
                '&' => TokenKind::Amp,
                '.' => TokenKind::Dot,
                ',' => TokenKind::Comma,
                '/' => TokenKind::Slash,
                '(' => TokenKind::LParen,
                ')' => TokenKind::RParen,
                '{' => TokenKind::LBrace,
                '}' => TokenKind::RBrace,
                '<' => TokenKind::LAngle,
                '>' => TokenKind::RAngle,
                _ => TokenKind::Error,
            };
            (kind, c.len_utf8())
        };
        self.pos = start + len;
        token(kind, self.pos)
    }

    /// Scans a string literal starting at `start`; returns the end offset,
    /// or `None` when it is unterminated.
    fn scan_string(&self, start: usize) -> Option<usize> {
        let rest = &self.text[start..];
        for triple in ["\"\"\"", "'''"] {
            if let Some(body) = rest.strip_prefix(triple) {
                return body.find(triple).map(|i| start + 3 + i + 3);
            }
        }
        let quote = rest.chars().next()?;
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                '\n' => return None,
                '\\' if !escaped => escaped = true,
                c if c == quote && !escaped => return Some(start + i + 1),
                _ => escaped = false,
            }
        }
        None
    }

    /// Reads a caveat body: the raw CEL text from the current position (just
    /// after `{`) to the matching `}`, which is consumed. Braces inside CEL
    /// strings and map literals are balanced. Returns the span of the text,
    /// or `Err(span)` of the offending character for a character CEL cannot
    /// contain (a backtick) or a missing `}`.
    pub fn caveat_body(&mut self) -> Result<Span, Span> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut depth = 0usize;
        let mut i = start;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'{' => depth += 1,
                b'}' if depth == 0 => {
                    self.pos = i + 1;
                    return Ok(self.span(start, i));
                }
                b'}' => depth -= 1,
                b'`' => {
                    self.pos = i;
                    return Err(self.span(i, i + 1));
                }
                b'"' | b'\'' => match self.scan_string(i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => {
                        self.pos = i;
                        return Err(self.span(i, i + 1));
                    }
                },
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    i = self.text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        self.pos = bytes.len();
        Err(self.span(start.saturating_sub(1), start))
    }
}

/// Strips comment markers from a doc comment's text (`/** ... */` or `///`
/// lines), leaving its lines trimmed of the leading `*` decoration.
pub fn doc_comment_text(raw: &str) -> String {
    // Any whitespace or control character but a line break becomes a space,
    // so the printed form reads back identically.
    let raw: String = raw
        .chars()
        .map(|c| {
            if c != '\n' && (c.is_whitespace() || c.is_control()) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let lines: Vec<&str> = match raw.strip_prefix("/**") {
        Some(body) => body
            .strip_suffix("*/")
            .unwrap_or(body)
            .lines()
            .map(|line| {
                let line = line.trim();
                let line = line.strip_prefix('*').unwrap_or(line);
                line.strip_prefix(' ').unwrap_or(line).trim_end()
            })
            .collect(),
        None => raw
            .lines()
            .map(|line| {
                let line = line.trim_start();
                let line = line.strip_prefix("///").unwrap_or(line);
                line.strip_prefix(' ').unwrap_or(line).trim_end()
            })
            .collect(),
    };
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let last = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(first, |i| i + 1);
    lines
        .get(first..last.max(first))
        .unwrap_or_default()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let mut lexer = Lexer::new(text);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token();
            out.push(t.kind);
            if t.kind == TokenKind::Eof {
                return out;
            }
        }
    }

    #[test]
    fn lexes_operators_and_names() {
        use TokenKind::*;
        assert_eq!(
            kinds("a->b + c.any(d) - e & f ...g #h:*|"),
            vec![
                Ident, Arrow, Ident, Plus, Ident, Dot, Ident, LParen, Ident, RParen, Minus, Ident,
                Amp, Ident, Ellipsis, Ident, Hash, Ident, Colon, Star, Pipe, Eof
            ]
        );
    }

    #[test]
    fn comments_are_trivia_and_doc_comments_attach() {
        let mut lexer = Lexer::new("// x\n/** the doc */ /* y */ definition");
        let t = lexer.next_token();
        assert_eq!(t.kind, TokenKind::Ident);
        assert!(t.newline_before);
        let doc = t.doc.unwrap();
        assert_eq!(
            doc_comment_text(&lexer.text()[doc.start..doc.end]),
            "the doc"
        );
    }

    #[test]
    fn unterminated_comment_is_an_error_token() {
        assert_eq!(kinds("/* never closed")[0], TokenKind::Error);
    }

    #[test]
    fn caveat_body_balances_braces_and_strings() {
        let text = r#" {"a": 1}["a"] == 1 && s == "}" } rest"#;
        let mut lexer = Lexer::new(text);
        let span = lexer.caveat_body().unwrap();
        assert_eq!(
            &text[span.start..span.end],
            r#" {"a": 1}["a"] == 1 && s == "}" "#
        );
        assert_eq!(lexer.next_token().kind, TokenKind::Ident);
    }

    #[test]
    fn caveat_body_rejects_backtick_and_missing_brace() {
        assert!(Lexer::new("a == 1 ` }").caveat_body().is_err());
        assert!(Lexer::new("a == 1").caveat_body().is_err());
    }

    #[test]
    fn strings_including_triple_quoted() {
        use TokenKind::*;
        assert_eq!(
            kinds(r#""a/b.zed" 'c' """x'"y""""#),
            vec![Str, Str, Str, Eof]
        );
        assert_eq!(kinds("\"open"), vec![Error, Eof]);
    }

    #[test]
    fn doc_comment_text_strips_decoration() {
        assert_eq!(doc_comment_text("/**\n * one\n * two\n */"), "one\ntwo");
        assert_eq!(doc_comment_text("/// a\n/// b"), "a\nb");
    }
}
