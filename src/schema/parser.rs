//! The schema parser: tokens to [`SchemaFile`], reporting every syntax error
//! it finds (it resynchronises at statement and definition boundaries).

use super::ast::*;
use super::diagnostic::{Diagnostic, Span};
use super::lexer::{doc_comment_text, Lexer, Token, TokenKind};
use super::limits::SchemaLimits;

/// Use flags SpiceDB knows.
pub const USE_FLAGS: &[&str] = &["expiration", "import", "partial", "self", "typechecking"];

/// Words that cannot name a definition, relation, permission or caveat.
pub const RESERVED_WORDS: &[&str] = &[
    "definition",
    "caveat",
    "relation",
    "permission",
    "nil",
    "with",
    "import",
    "partial",
    "use",
    "any",
    "all",
];

/// Parses `text`; returns the tree (possibly partial) and every syntax error.
pub fn parse(text: &str, limits: &SchemaLimits) -> (SchemaFile, Vec<Diagnostic>) {
    parse_at(text, 0, limits)
}

/// Parses `text` whose spans start at `base` (for files combined by
/// imports into one offset space).
pub fn parse_at(text: &str, base: usize, limits: &SchemaLimits) -> (SchemaFile, Vec<Diagnostic>) {
    if text.len() > limits.max_source_bytes {
        let d = Diagnostic::error(
            "SCHEMA:TooLarge",
            Span::new(base, base),
            format!(
                "schema is {} bytes, more than the limit of {} bytes",
                text.len(),
                limits.max_source_bytes
            ),
        )
        .with_hint("split the schema or raise the schema size limit");
        return (SchemaFile::default(), vec![d]);
    }
    let mut parser = Parser {
        lexer: Lexer::with_base(text, base),
        token: Token {
            kind: TokenKind::Eof,
            span: Span::default(),
            newline_before: false,
            doc: None,
        },
        prev_end: 0,
        diagnostics: Vec::new(),
        flags: Vec::new(),
        seen_definition: false,
        limits,
        depth: 0,
    };
    parser.bump();
    let file = parser.file();
    (file, parser.diagnostics)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    token: Token,
    prev_end: usize,
    diagnostics: Vec<Diagnostic>,
    flags: Vec<String>,
    seen_definition: bool,
    limits: &'a SchemaLimits,
    depth: usize,
}

/// A syntax error already reported; parsing resynchronises.
struct Recover;

type PResult<T> = Result<T, Recover>;

impl<'a> Parser<'a> {
    fn text(&self, span: Span) -> &'a str {
        let base = self.lexer.base();
        self.lexer
            .text()
            .get(span.start.saturating_sub(base)..span.end.saturating_sub(base))
            .unwrap_or("")
    }

    fn bump(&mut self) -> Token {
        let previous = self.token;
        self.prev_end = previous.span.end;
        self.token = self.lexer.next_token();
        previous
    }

    fn at(&self, kind: TokenKind) -> bool {
        self.token.kind == kind
    }

    fn at_word(&self, word: &str) -> bool {
        self.at(TokenKind::Ident) && self.text(self.token.span) == word
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    fn is_keyword(&self, word: &str) -> bool {
        RESERVED_WORDS.contains(&word)
            || (word == "expiration" && self.flag("expiration"))
            || (word == "self" && self.flag("self"))
            || (word == "and" && self.flag("expiration"))
    }

    fn found(&self) -> String {
        match self.token.kind {
            TokenKind::Ident => format!("`{}`", self.text(self.token.span)),
            TokenKind::Eof => "end of input".to_string(),
            _ => format!("`{}`", self.text(self.token.span)),
        }
    }

    fn error(&mut self, span: Span, message: impl Into<String>) -> Recover {
        self.diagnostics
            .push(Diagnostic::error("SCHEMA:Syntax", span, message));
        Recover
    }

    fn error_hint(&mut self, span: Span, message: impl Into<String>, hint: &str) -> Recover {
        self.diagnostics
            .push(Diagnostic::error("SCHEMA:Syntax", span, message).with_hint(hint));
        Recover
    }

    fn expect(&mut self, kind: TokenKind, context: &str) -> PResult<Token> {
        if self.at(kind) {
            Ok(self.bump())
        } else {
            let found = self.found();
            Err(self.error(
                self.token.span,
                format!("expected {} {context}, found {found}", kind.describe()),
            ))
        }
    }

    /// An identifier that names something (not a keyword).
    fn name(&mut self, what: &str) -> PResult<Name> {
        if !self.at(TokenKind::Ident) {
            let found = self.found();
            return Err(self.error(
                self.token.span,
                format!("expected {what} name, found {found}"),
            ));
        }
        let text = self.text(self.token.span);
        if self.is_keyword(text) {
            let span = self.token.span;
            return Err(self.error_hint(
                span,
                format!("`{text}` is a reserved word and cannot be used as a {what} name"),
                "choose another name",
            ));
        }
        let token = self.bump();
        Ok(Name {
            text: text.to_string(),
            span: token.span,
        })
    }

    /// A name with optional `prefix/` segments: `acme/billing/invoice`.
    fn path(&mut self, what: &str) -> PResult<Name> {
        let mut name = self.name(what)?;
        while self.at(TokenKind::Slash) {
            self.bump();
            let next = self.name(what)?;
            name.text.push('/');
            name.text.push_str(&next.text);
            name.span = name.span.to(next.span);
        }
        Ok(name)
    }

    fn doc(&self, token: Token) -> Option<String> {
        token.doc.map(|span| doc_comment_text(self.text(span)))
    }

    fn file(&mut self) -> SchemaFile {
        let mut file = SchemaFile::default();
        let mut definitions = 0usize;
        while !self.at(TokenKind::Eof) {
            match self.item() {
                Ok(Some(item)) => {
                    if matches!(item, Item::Definition(_) | Item::Caveat(_)) {
                        definitions += 1;
                        if definitions == self.limits.max_definitions + 1 {
                            let span = match &item {
                                Item::Definition(d) => d.name.span,
                                Item::Caveat(c) => c.name.span,
                                _ => Span::default(),
                            };
                            self.diagnostics.push(
                                Diagnostic::error(
                                    "SCHEMA:TooManyDefinitions",
                                    span,
                                    format!(
                                        "schema has more than {} definitions and caveats",
                                        self.limits.max_definitions
                                    ),
                                )
                                .with_hint("raise the definition limit or split the tenant"),
                            );
                        }
                    }
                    file.items.push(item);
                }
                Ok(None) => {}
                Err(Recover) => self.recover_top_level(),
            }
        }
        file
    }

    fn recover_top_level(&mut self) {
        loop {
            if self.at(TokenKind::Eof) {
                return;
            }
            if self.token.newline_before
                && ["definition", "caveat", "partial", "use", "import"]
                    .iter()
                    .any(|w| self.at_word(w))
            {
                return;
            }
            self.bump();
        }
    }

    fn item(&mut self) -> PResult<Option<Item>> {
        let start = self.token;
        if self.at_word("use") {
            self.bump();
            let name = if self.at(TokenKind::Ident) {
                let t = self.bump();
                Name {
                    text: self.text(t.span).to_string(),
                    span: t.span,
                }
            } else {
                let found = self.found();
                return Err(
                    self.error(self.token.span, format!("expected use flag, found {found}"))
                );
            };
            if !USE_FLAGS.contains(&name.text.as_str()) {
                return Err(self.error_hint(
                    name.span,
                    format!("unknown use flag `{}`", name.text),
                    &format!("options are: {}", USE_FLAGS.join(", ")),
                ));
            }
            if self.seen_definition {
                return Err(self.error_hint(
                    start.span.to(name.span),
                    "`use` must come before any definition",
                    "move the `use` line to the top of the schema",
                ));
            }
            self.end_of_statement()?;
            self.flags.push(name.text.clone());
            return Ok(Some(Item::Use(name)));
        }
        if self.at_word("import") {
            self.bump();
            let token = self.expect(TokenKind::Str, "after `import`")?;
            let raw = self.text(token.span);
            let quote_len = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
                3
            } else {
                1
            };
            let path = raw
                .get(quote_len..raw.len().saturating_sub(quote_len))
                .unwrap_or("")
                .to_string();
            self.end_of_statement()?;
            return Ok(Some(Item::Import {
                path,
                span: start.span.to(token.span),
            }));
        }
        if self.at_word("definition") || self.at_word("partial") {
            let is_partial = self.at_word("partial");
            self.seen_definition = true;
            self.bump();
            let name = self.path(if is_partial { "partial" } else { "definition" })?;
            let doc = self.doc(start);
            let members = self.definition_body()?;
            let def = Definition {
                name,
                doc,
                members,
                span: start.span.to(Span::new(self.prev_end, self.prev_end)),
            };
            return Ok(Some(if is_partial {
                Item::Partial(def)
            } else {
                Item::Definition(def)
            }));
        }
        if self.at_word("caveat") {
            self.seen_definition = true;
            self.bump();
            return self.caveat(start).map(|c| Some(Item::Caveat(c)));
        }
        if self.at(TokenKind::Error) {
            return Err(self.error(self.token.span, "invalid character or unterminated comment"));
        }
        let found = self.found();
        Err(self.error_hint(
            self.token.span,
            format!("unexpected {found} at the top level"),
            "a schema holds `use`, `import`, `definition`, `partial` and `caveat` items",
        ))
    }

    fn end_of_statement(&mut self) -> PResult<()> {
        if self.at(TokenKind::Semicolon) {
            self.bump();
            return Ok(());
        }
        if self.token.newline_before || self.at(TokenKind::RBrace) || self.at(TokenKind::Eof) {
            return Ok(());
        }
        let found = self.found();
        Err(self.error_hint(
            self.token.span,
            format!("expected the end of the statement, found {found}"),
            "put each statement on its own line",
        ))
    }

    fn definition_body(&mut self) -> PResult<Vec<Member>> {
        self.expect(TokenKind::LBrace, "to open the definition")?;
        let mut members = Vec::new();
        loop {
            if self.at(TokenKind::RBrace) {
                self.bump();
                return Ok(members);
            }
            if self.at(TokenKind::Eof) {
                return Err(self.error_hint(
                    self.token.span,
                    "expected `}` to close the definition, found end of input",
                    "add the missing `}`",
                ));
            }
            match self.member() {
                Ok(member) => members.push(member),
                Err(Recover) => {
                    // Skip to the next member or the end of the definition.
                    loop {
                        if self.at(TokenKind::Eof) || self.at(TokenKind::RBrace) {
                            break;
                        }
                        if self.token.newline_before
                            && (self.at_word("relation")
                                || self.at_word("permission")
                                || self.at(TokenKind::Ellipsis))
                        {
                            break;
                        }
                        if self.token.newline_before
                            && (self.at_word("definition") || self.at_word("caveat"))
                        {
                            return Err(Recover);
                        }
                        self.bump();
                    }
                }
            }
        }
    }

    fn member(&mut self) -> PResult<Member> {
        let start = self.token;
        if self.at(TokenKind::Ellipsis) {
            self.bump();
            let name = self.path("partial")?;
            self.end_of_statement()?;
            return Ok(Member::PartialRef(name));
        }
        if self.at_word("relation") {
            self.bump();
            let name = self.name("relation")?;
            self.expect(TokenKind::Colon, "after the relation name")?;
            let mut types = vec![self.type_ref()?];
            while self.at(TokenKind::Pipe) {
                self.bump();
                types.push(self.type_ref()?);
            }
            let span = start.span.to(Span::new(self.prev_end, self.prev_end));
            self.end_of_statement()?;
            return Ok(Member::Relation(RelationDef {
                name,
                doc: self.doc(start),
                types,
                span,
            }));
        }
        if self.at_word("permission") {
            self.bump();
            let name = self.name("permission")?;
            let mut annotation = Vec::new();
            if self.at(TokenKind::Colon) {
                self.bump();
                if self.token.newline_before {
                    return Err(self.error(
                        self.token.span,
                        "expected a type in the permission's type annotation",
                    ));
                }
                annotation.push(self.path("type")?);
                while self.at(TokenKind::Pipe) {
                    self.bump();
                    annotation.push(self.path("type")?);
                }
            }
            self.expect(TokenKind::Equals, "after the permission name")?;
            if self.token.newline_before || self.at(TokenKind::RBrace) {
                return Err(self.error_hint(
                    self.token.span,
                    "expected an expression after `=`",
                    "use `nil` for a permission nobody has",
                ));
            }
            self.depth = 0;
            let expr = self.expr()?;
            let span = start.span.to(Span::new(self.prev_end, self.prev_end));
            self.end_of_statement()?;
            return Ok(Member::Permission(PermissionDef {
                name,
                doc: self.doc(start),
                annotation,
                expr,
                span,
            }));
        }
        let found = self.found();
        Err(self.error_hint(
            self.token.span,
            format!("expected `relation` or `permission`, found {found}"),
            "a definition holds `relation name: type` and `permission name = expression` lines",
        ))
    }

    fn type_ref(&mut self) -> PResult<TypeRef> {
        let type_name = self.path("type")?;
        let mut span = type_name.span;
        let kind = if self.at(TokenKind::Hash) {
            self.bump();
            if self.at(TokenKind::Ellipsis) {
                span = span.to(self.bump().span);
                SubjectKind::Direct
            } else {
                let rel = self.name("relation")?;
                span = span.to(rel.span);
                SubjectKind::Relation(rel)
            }
        } else if self.at(TokenKind::Colon) {
            self.bump();
            let star = self.expect(TokenKind::Star, "after `:` (a wildcard is `type:*`)")?;
            span = span.to(star.span);
            SubjectKind::Wildcard
        } else {
            SubjectKind::Direct
        };
        let mut caveat = None;
        let mut expiration = false;
        if self.at_word("with") {
            self.bump();
            if self.flag("expiration") && self.at_word("expiration") {
                span = span.to(self.bump().span);
                expiration = true;
            } else {
                let name = self.path("caveat")?;
                span = span.to(name.span);
                caveat = Some(name);
                if self.at_word("and") {
                    self.bump();
                    if self.flag("expiration") && self.at_word("expiration") {
                        span = span.to(self.bump().span);
                        expiration = true;
                    } else {
                        return Err(self.error_hint(
                            self.token.span,
                            "expected `expiration` after `and`",
                            "write `with caveat_name and expiration` (needs `use expiration`)",
                        ));
                    }
                }
            }
        }
        Ok(TypeRef {
            type_name,
            kind,
            caveat,
            expiration,
            span,
        })
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.limits.max_expression_depth {
            let span = self.token.span;
            self.diagnostics.push(
                Diagnostic::error(
                    "SCHEMA:TooDeep",
                    span,
                    format!(
                        "expression nests deeper than the limit of {}",
                        self.limits.max_expression_depth
                    ),
                )
                .with_hint("split the expression into several permissions"),
            );
            return Err(Recover);
        }
        Ok(())
    }

    // Precedence, lowest first, as SpiceDB defines it: `-`, then `&`, then
    // `+`; all left-associative. Arrows bind tightest.
    fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        let mut left = self.intersection()?;
        while self.at(TokenKind::Minus) && !self.token.newline_before {
            self.bump();
            let right = self.intersection()?;
            left = Expr::Exclusion(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn intersection(&mut self) -> PResult<Expr> {
        let mut left = self.union()?;
        while self.at(TokenKind::Amp) && !self.token.newline_before {
            self.bump();
            let right = self.union()?;
            left = Expr::Intersection(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn union(&mut self) -> PResult<Expr> {
        let mut left = self.arrow()?;
        while self.at(TokenKind::Plus) && !self.token.newline_before {
            self.bump();
            let right = self.arrow()?;
            left = Expr::Union(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn arrow(&mut self) -> PResult<Expr> {
        let mut left = self.primary()?;
        loop {
            if self.at(TokenKind::Arrow) {
                self.bump();
                let right = self.name("relation or permission")?;
                let span = left.span().to(right.span);
                left = Expr::Arrow {
                    left: Box::new(left),
                    right,
                    func: ArrowFunc::Arrow,
                    span,
                };
            } else if self.at(TokenKind::Dot) {
                self.bump();
                let func = if self.at_word("any") {
                    ArrowFunc::Any
                } else if self.at_word("all") {
                    ArrowFunc::All
                } else {
                    let found = self.found();
                    return Err(self.error_hint(
                        self.token.span,
                        format!("expected `any` or `all` after `.`, found {found}"),
                        "arrow functions are `relation.any(permission)` and `relation.all(permission)`",
                    ));
                };
                self.bump();
                self.expect(TokenKind::LParen, "after the arrow function")?;
                let right = self.name("relation or permission")?;
                let close = self.expect(TokenKind::RParen, "to close the arrow function")?;
                let span = left.span().to(close.span);
                left = Expr::Arrow {
                    left: Box::new(left),
                    right,
                    func,
                    span,
                };
            } else {
                return Ok(left);
            }
        }
    }

    fn primary(&mut self) -> PResult<Expr> {
        if self.at(TokenKind::LParen) {
            self.bump();
            let inner = self.expr()?;
            self.expect(TokenKind::RParen, "to close the parenthesis")?;
            return Ok(inner);
        }
        if self.at_word("nil") {
            return Ok(Expr::Nil(self.bump().span));
        }
        if self.at_word("self") && self.flag("self") {
            return Ok(Expr::SelfRef(self.bump().span));
        }
        if self.at(TokenKind::Ident) {
            let name = self.name("relation or permission")?;
            return Ok(Expr::Ref(name));
        }
        let found = self.found();
        Err(self.error(
            self.token.span,
            format!("expected a relation, permission, `nil` or `(`, found {found}"),
        ))
    }

    fn caveat(&mut self, start: Token) -> PResult<CaveatDef> {
        let name = self.path("caveat")?;
        self.expect(TokenKind::LParen, "to open the caveat parameters")?;
        let mut params = Vec::new();
        loop {
            let param_name = if self.at(TokenKind::Ident) {
                let t = self.bump();
                Name {
                    text: self.text(t.span).to_string(),
                    span: t.span,
                }
            } else {
                let found = self.found();
                return Err(self.error(
                    self.token.span,
                    format!("expected a parameter name, found {found}"),
                ));
            };
            let (type_text, type_span) = self.caveat_type()?;
            params.push(CaveatParam {
                name: param_name,
                type_text,
                type_span,
            });
            if self.at(TokenKind::Comma) {
                self.bump();
                continue;
            }
            self.expect(TokenKind::RParen, "to close the caveat parameters")?;
            break;
        }
        // The body is CEL, read raw: the current token must be `{`.
        if !self.at(TokenKind::LBrace) {
            let found = self.found();
            return Err(self.error(
                self.token.span,
                format!("expected `{{` to open the caveat expression, found {found}"),
            ));
        }
        self.lexer.seek(self.token.span.end);
        let body = match self.lexer.caveat_body() {
            Ok(span) => span,
            Err(span) => {
                self.bump();
                return Err(self.error_hint(
                    span,
                    "invalid caveat expression: unexpected character or missing `}`",
                    "a caveat body is one CEL expression inside `{ }`",
                ));
            }
        };
        self.bump();
        let raw = self.text(body);
        let expression = raw.trim().to_string();
        if expression.is_empty() {
            return Err(self.error_hint(
                body,
                format!("caveat `{}` has an empty expression", name.text),
                "a caveat body is one CEL expression that yields a bool",
            ));
        }
        let lead = raw.len() - raw.trim_start().len();
        let expression_span = Span::new(body.start + lead, body.start + lead + expression.len());
        Ok(CaveatDef {
            doc: self.doc(start),
            name,
            params,
            expression,
            expression_span,
            span: start.span.to(Span::new(self.prev_end, self.prev_end)),
        })
    }

    /// A caveat parameter type: `int`, `list<string>`, `map<list<int>>`.
    fn caveat_type(&mut self) -> PResult<(String, Span)> {
        let first = self.expect(TokenKind::Ident, "for the parameter type")?;
        let mut text = self.text(first.span).to_string();
        let mut span = first.span;
        if self.at(TokenKind::LAngle) {
            self.bump();
            text.push('<');
            let (inner, _) = self.caveat_type()?;
            text.push_str(&inner);
            while self.at(TokenKind::Comma) {
                self.bump();
                let (inner, _) = self.caveat_type()?;
                text.push(',');
                text.push_str(&inner);
            }
            let close = self.expect(TokenKind::RAngle, "to close the type parameter")?;
            text.push('>');
            span = span.to(close.span);
        }
        Ok((text, span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> SchemaFile {
        let (file, errors) = parse(text, &SchemaLimits::default());
        assert!(errors.is_empty(), "{errors:?}");
        file
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        parse(text, &SchemaLimits::default()).1
    }

    fn permission_expr(text: &str) -> Expr {
        let file = ok(&format!("definition d {{\n permission p = {text}\n}}"));
        match &file.items[0] {
            Item::Definition(d) => match &d.members[0] {
                Member::Permission(p) => p.expr.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn shape(e: &Expr) -> String {
        match e {
            Expr::Ref(n) => n.text.clone(),
            Expr::Nil(_) => "nil".into(),
            Expr::SelfRef(_) => "self".into(),
            Expr::Arrow {
                left, right, func, ..
            } => format!("({}{func:?}{})", shape(left), right.text),
            Expr::Union(a, b) => format!("({} + {})", shape(a), shape(b)),
            Expr::Intersection(a, b) => format!("({} & {})", shape(a), shape(b)),
            Expr::Exclusion(a, b) => format!("({} - {})", shape(a), shape(b)),
        }
    }

    #[test]
    fn precedence_matches_spicedb() {
        assert_eq!(shape(&permission_expr("a + b - c")), "((a + b) - c)");
        assert_eq!(shape(&permission_expr("a - b + c")), "(a - (b + c))");
        assert_eq!(shape(&permission_expr("a - b - c")), "((a - b) - c)");
        assert_eq!(shape(&permission_expr("a & b + c")), "(a & (b + c))");
        assert_eq!(shape(&permission_expr("a - b & c")), "(a - (b & c))");
        assert_eq!(shape(&permission_expr("(a - b) & c")), "((a - b) & c)");
    }

    #[test]
    fn arrows_chain_left_to_right_and_bind_tightest() {
        assert_eq!(
            shape(&permission_expr("p.any(m).all(n)->o + x")),
            "((((pAnym)Alln)Arrowo) + x)"
        );
    }

    #[test]
    fn relation_types_with_caveats_wildcards_and_expiration() {
        let file = ok("use expiration\ndefinition doc {\n relation r: user | group#member with c and expiration | user:* | team#... | x/y with expiration\n}");
        let Item::Definition(d) = &file.items[1] else {
            panic!()
        };
        let Member::Relation(r) = &d.members[0] else {
            panic!()
        };
        assert_eq!(r.types.len(), 5);
        assert_eq!(r.types[1].caveat.as_ref().unwrap().text, "c");
        assert!(r.types[1].expiration);
        assert_eq!(r.types[2].kind, SubjectKind::Wildcard);
        assert_eq!(r.types[3].kind, SubjectKind::Direct);
        assert_eq!(r.types[4].type_name.text, "x/y");
        assert!(r.types[4].expiration && r.types[4].caveat.is_none());
    }

    #[test]
    fn expiration_is_a_caveat_name_without_the_flag() {
        let file = ok("definition doc {\n relation r: user with expiration\n}");
        let Item::Definition(d) = &file.items[0] else {
            panic!()
        };
        let Member::Relation(r) = &d.members[0] else {
            panic!()
        };
        assert_eq!(r.types[0].caveat.as_ref().unwrap().text, "expiration");
    }

    #[test]
    fn caveat_with_params_and_raw_body() {
        let file =
            ok("caveat c(a int, b map<list<string>>) {\n  a > 1 && {\"k\": 1}[\"k\"] == 1\n}\n");
        let Item::Caveat(c) = &file.items[0] else {
            panic!()
        };
        assert_eq!(c.params[1].type_text, "map<list<string>>");
        assert_eq!(c.expression, "a > 1 && {\"k\": 1}[\"k\"] == 1");
    }

    #[test]
    fn doc_comments_attach_to_definitions_and_members() {
        let file = ok("/** a doc */\ndefinition d {\n  /** rel doc */\n  relation r: user\n}");
        let Item::Definition(d) = &file.items[0] else {
            panic!()
        };
        assert_eq!(d.doc.as_deref(), Some("a doc"));
        let Member::Relation(r) = &d.members[0] else {
            panic!()
        };
        assert_eq!(r.doc.as_deref(), Some("rel doc"));
    }

    #[test]
    fn reports_several_errors_at_once() {
        let errs = errors("definition a {\n relation : user\n permission p = \n}\ndefinition b {\n relation r: user:\n}");
        assert!(errs.len() >= 3, "{errs:?}");
    }

    #[test]
    fn rejects_what_spicedb_rejects() {
        for bad in [
            "definition a {\n permission view = a.foo(bar)\n}",
            "use something\ndefinition a {}",
            "definition a {}\nuse expiration",
            "caveat c(x int) {\n}\n",
            "caveat c(x int) {\n x == 1 `\n}\n",
            "definition a {\n permission * = b\n}",
            "definition a {\n relation r: user | user: | x\n}",
            "use expiration\ncaveat expiration(x int) { x == 1 }",
            "definition a {\n relation r user\n}",
            "definition a {\n permission view: | = viewer\n}",
            "definition a {\n relation nil: user\n}",
            "definition a {\n relation r: user permission p = r\n}",
        ] {
            assert!(!errors(bad).is_empty(), "accepted: {bad}");
        }
    }

    #[test]
    fn statements_may_end_with_semicolons() {
        ok("definition a { relation r: user; permission p = r; }");
    }

    #[test]
    fn expression_depth_is_bounded() {
        let deep = format!("{}a{}", "(".repeat(500), ")".repeat(500));
        let errs = errors(&format!("definition d {{\n permission p = {deep}\n}}"));
        assert!(errs.iter().any(|e| e.code == "SCHEMA:TooDeep"), "{errs:?}");
    }
}
