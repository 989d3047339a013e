//! Tokens of the OpenFGA DSL (after upstream's comment stripping), with
//! 0-based line and column, following OpenFGALexer.g4 where it matters:
//! a NEWLINE token swallows the blanks around it and any blank lines, and
//! `but not` is one token.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Spaces or tabs.
    Ws,
    /// One or more line breaks and the blanks around them.
    Nl,
    /// An identifier, extended identifier or keyword.
    Word,
    /// `1.1`
    Version,
    /// Digits.
    Num,
    /// `but not`
    ButNot,
    /// Any other single character.
    Punct,
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub text: String,
    /// Byte offset in the cleaned source.
    pub offset: usize,
    pub line: usize,
    pub col: usize,
}

impl Token {
    pub fn is(&self, kind: Kind, text: &str) -> bool {
        self.kind == kind && self.text == text
    }
    pub fn is_word(&self, text: &str) -> bool {
        self.is(Kind::Word, text)
    }
    pub fn is_punct(&self, c: &str) -> bool {
        self.is(Kind::Punct, c)
    }
    /// The text as ANTLR shows it in messages.
    pub fn display(&self) -> String {
        if self.kind == Kind::Eof {
            return "<EOF>".to_string();
        }
        self.text
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    }
}

/// Upstream's pre-processing: whole-line `#` comments become empty lines,
/// ` #` starts a trailing comment, trailing blanks go, and trailing line
/// breaks of the file go. Line numbers are kept.
pub(crate) fn clean(src: &str) -> String {
    let mut lines = Vec::new();
    for line in src.split('\n') {
        let t = line.trim_start_matches(' ');
        if t.is_empty() || t.starts_with('#') {
            lines.push(String::new());
        } else {
            let head = line.split(" #").next().unwrap_or("");
            lines.push(head.trim_end_matches(' ').to_string());
        }
    }
    lines.join("\n").trim_end_matches('\n').to_string()
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{c}'
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Splits cleaned source into tokens, ending with one `Eof`.
pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let off = |i: usize| chars.get(i).map_or(src.len(), |&(o, _)| o);
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 0usize, 0usize);
    while let Some(c) = at(i) {
        let start = i;
        let (sline, scol) = (line, col);
        let kind;
        if is_blank(c) || c == '\n' || c == '\r' {
            let mut j = i;
            while at(j).is_some_and(is_blank) {
                j += 1;
            }
            if matches!(at(j), Some('\n' | '\r')) {
                // NEWLINE: blanks, breaks, blanks, repeated.
                while let Some(d) = at(j) {
                    if is_blank(d) {
                        j += 1;
                    } else if d == '\n' || d == '\r' {
                        j += 1;
                        if d == '\r' && at(j) == Some('\n') {
                            j += 1;
                        }
                        line += 1;
                        col = 0;
                        continue;
                    } else {
                        break;
                    }
                    col += 1;
                }
                // Columns after the last break.
                kind = Kind::Nl;
            } else {
                col += j - i;
                kind = Kind::Ws;
            }
            i = j;
        } else if is_word_start(c) {
            let mut j = i + 1;
            loop {
                match at(j) {
                    Some(d) if is_word_char(d) => j += 1,
                    Some('.' | '/') if at(j + 1).is_some_and(|d| d.is_ascii_alphanumeric() || d == '_') => {
                        j += 2
                    }
                    _ => break,
                }
            }
            let word: String = chars.get(i..j).unwrap_or(&[]).iter().map(|&(_, c)| c).collect();
            if word == "but"
                && at(j) == Some(' ')
                && at(j + 1) == Some('n')
                && at(j + 2) == Some('o')
                && at(j + 3) == Some('t')
                && !at(j + 4).is_some_and(is_word_char)
            {
                j += 4;
                kind = Kind::ButNot;
            } else {
                kind = Kind::Word;
            }
            col += j - i;
            i = j;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while at(j).is_some_and(|d| d.is_ascii_digit()) {
                j += 1;
            }
            if at(j) == Some('.') && at(j + 1).is_some_and(|d| d.is_ascii_digit()) {
                j += 1;
                while at(j).is_some_and(|d| d.is_ascii_digit()) {
                    j += 1;
                }
                kind = Kind::Version;
            } else {
                kind = Kind::Num;
            }
            col += j - i;
            i = j;
        } else {
            kind = Kind::Punct;
            i += 1;
            col += 1;
        }
        out.push(Token {
            kind,
            text: src.get(off(start)..off(i)).unwrap_or("").to_string(),
            offset: off(start),
            line: sline,
            col: scol,
        });
    }
    out.push(Token {
        kind: Kind::Eof,
        text: String::new(),
        offset: src.len(),
        line,
        col,
    });
    out
}
