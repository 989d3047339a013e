//! DSL → [`AuthorizationModel`]: a recursive-descent parser over
//! OpenFGAParser.g4, building the model as upstream's listener does
//! (pkg/go/transformer/dsltojson.go).

use std::collections::BTreeMap;

use crate::error::{DslError, DslErrors};
use crate::lexer::{clean, tokenize, Kind, Token};
use crate::model::{
    AuthorizationModel, Condition, ConditionMetadata, ConditionParamTypeRef, Difference,
    Metadata, RelationMetadata, RelationReference, TypeDefinition, Userset, Usersets,
};

/// A parsed DSL file: the model plus what modular combination needs.
#[derive(Debug, Clone, Default)]
pub struct ParsedDsl {
    pub model: AuthorizationModel,
    /// `module NAME` header, if any.
    pub module: Option<String>,
    /// Types declared with `extend type`, in order (each also appears in
    /// `model.type_definitions`).
    pub extended: Vec<String>,
}

/// Parses schema 1.1/1.2 DSL into a model. Syntax errors only; run
/// [`crate::validate_dsl`] for semantic checks.
pub fn parse_dsl_syntax(src: &str) -> Result<ParsedDsl, DslErrors> {
    let cleaned = clean(src);
    let mut p = Parser {
        toks: tokenize(&cleaned),
        src: &cleaned,
        i: 0,
        errors: Vec::new(),
        out: ParsedDsl::default(),
    };
    match p.main() {
        Ok(()) if p.errors.is_empty() => Ok(p.out),
        Ok(()) => Err(DslErrors(p.errors)),
        Err(e) => {
            p.errors.push(e);
            Err(DslErrors(p.errors))
        }
    }
}

type PResult<T> = Result<T, DslError>;

/// Where a relation expression stands: whether `[...]` may start it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direct {
    Allowed,
    Forbidden,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Or,
    And,
    ButNot,
}

const EXPECT_IDENT: &str =
    "{IDENTIFIER, 'module', 'model', 'schema', 'extend', 'type', 'relation', EXTENDED_IDENTIFIER}";
const EXPECT_OPERAND: &str = "{'[', '(', IDENTIFIER, 'module', 'model', 'schema', 'extend', 'type', 'relation', EXTENDED_IDENTIFIER}";
const PARAM_TYPES: &[&str] = &[
    "bool",
    "string",
    "int",
    "uint",
    "double",
    "duration",
    "timestamp",
    "ipaddress",
];

struct Parser<'a> {
    toks: Vec<Token>,
    src: &'a str,
    i: usize,
    errors: Vec<DslError>,
    out: ParsedDsl,
}

fn is_identifier(t: &Token) -> bool {
    t.kind == Kind::Word && !t.text.contains(['.', '/']) && !is_reserved_word(&t.text)
}

/// Lexer keywords that the grammar's `identifier` rule does not accept.
fn is_reserved_word(w: &str) -> bool {
    matches!(
        w,
        "and" | "or" | "from" | "condition" | "relations" | "define" | "with" | "in" | "true" | "false" | "null"
    )
}

fn is_extended_identifier(t: &Token) -> bool {
    t.kind == Kind::Word && !is_reserved_word(&t.text)
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, k: usize) -> &Token {
        static EOF: Token = Token {
            kind: Kind::Eof,
            text: String::new(),
            offset: 0,
            line: 0,
            col: 0,
        };
        self.toks
            .get(self.i + k)
            .or_else(|| self.toks.last())
            .unwrap_or(&EOF)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn eat(&mut self, kind: Kind) -> bool {
        if self.peek().kind == kind {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn mismatched(&self, expecting: &str) -> DslError {
        let t = self.peek();
        let shown = t.display();
        DslError::syntax(
            format!("mismatched input '{shown}' expecting {expecting}"),
            t.line,
            t.col,
            &shown,
        )
    }

    fn expect_word(&mut self, w: &str) -> PResult<Token> {
        if self.peek().is_word(w) {
            Ok(self.bump())
        } else {
            Err(self.mismatched(&format!("'{w}'")))
        }
    }

    fn expect_kind(&mut self, kind: Kind, name: &str) -> PResult<Token> {
        if self.peek().kind == kind {
            Ok(self.bump())
        } else {
            Err(self.mismatched(name))
        }
    }

    fn expect_punct(&mut self, c: &str) -> PResult<Token> {
        if self.peek().is_punct(c) {
            Ok(self.bump())
        } else {
            Err(self.mismatched(&format!("'{c}'")))
        }
    }

    fn notify(&mut self, msg: String, at: &Token) {
        self.errors
            .push(DslError::syntax(msg, at.line, at.col, &at.text));
    }

    fn main(&mut self) -> PResult<()> {
        self.eat(Kind::Ws);
        self.eat(Kind::Nl);
        if self.peek().is_word("model") {
            self.bump();
            self.expect_kind(Kind::Nl, "NEWLINE")?;
            self.expect_word("schema")?;
            self.expect_kind(Kind::Ws, "WHITESPACE")?;
            let v = self.expect_kind(Kind::Version, "SCHEMA_VERSION")?;
            self.out.model.schema_version = v.text;
            self.eat(Kind::Ws);
        } else if self.peek().is_word("module") {
            self.bump();
            self.expect_kind(Kind::Ws, "WHITESPACE")?;
            if !is_identifier(self.peek()) && !matches!(self.peek().text.as_str(), "module" | "model") {
                return Err(self.mismatched("{IDENTIFIER, 'module', 'model', 'schema', 'extend', 'type', 'relation'}"));
            }
            let name = self.bump();
            self.out.module = Some(name.text);
            self.eat(Kind::Ws);
        } else {
            return Err(self.mismatched("{'#', 'module', 'model'}"));
        }
        let mut in_conditions = false;
        loop {
            match self.peek().kind {
                Kind::Eof => return Ok(()),
                Kind::Nl => {}
                _ => return Err(self.mismatched("{<EOF>, NEWLINE}")),
            }
            let next = self.peek_at(1);
            if next.kind == Kind::Eof {
                self.bump();
                return Ok(());
            }
            if next.is_word("condition") {
                self.bump();
                in_conditions = true;
                self.condition()?;
            } else if !in_conditions && (next.is_word("type") || next.is_word("extend")) {
                self.bump();
                self.type_def()?;
            } else {
                self.bump();
                let expecting = if in_conditions {
                    "{<EOF>, 'condition'}"
                } else {
                    "{<EOF>, 'extend', 'type', 'condition'}"
                };
                return Err(self.mismatched(expecting));
            }
        }
    }

    fn type_def(&mut self) -> PResult<()> {
        let extend = if self.peek().is_word("extend") {
            self.bump();
            self.expect_kind(Kind::Ws, "WHITESPACE")?;
            true
        } else {
            false
        };
        self.expect_word("type")?;
        self.expect_kind(Kind::Ws, "WHITESPACE")?;
        if !is_extended_identifier(self.peek()) {
            return Err(self.mismatched(EXPECT_IDENT));
        }
        let name = self.bump();
        let modular = self.out.module.is_some();
        if extend && !modular {
            self.notify("extend can only be used in a modular model".into(), &name);
        }
        let mut relations = BTreeMap::new();
        let mut meta = BTreeMap::new();
        if self.peek().kind == Kind::Nl && self.peek_at(1).is_word("relations") {
            self.bump();
            self.bump();
            let mut count = 0;
            while self.peek().kind == Kind::Nl && self.peek_at(1).is_word("define") {
                self.bump();
                self.bump();
                self.relation(&name.text, extend, &mut relations, &mut meta)?;
                count += 1;
            }
            if count == 0 {
                self.bump_nl_if_any();
                return Err(self.mismatched("'define'"));
            }
        }
        let module = self.out.module.clone().unwrap_or_default();
        let metadata = if meta.is_empty() {
            if modular {
                Some(Metadata {
                    relations: None,
                    module,
                    source_info: None,
                })
            } else {
                None
            }
        } else {
            Some(Metadata {
                relations: Some(meta),
                module: if modular { module } else { String::new() },
                source_info: None,
            })
        };
        self.out.model.type_definitions.push(TypeDefinition {
            type_name: name.text.clone(),
            relations,
            metadata,
        });
        if extend && modular {
            if self.out.extended.contains(&name.text) {
                self.notify(format!("'{}' is already extended in file.", name.text), &name);
            } else {
                self.out.extended.push(name.text);
            }
        }
        Ok(())
    }

    fn bump_nl_if_any(&mut self) {
        if self.peek().kind == Kind::Nl {
            self.bump();
        }
    }

    fn relation(
        &mut self,
        type_name: &str,
        extend: bool,
        relations: &mut BTreeMap<String, Userset>,
        meta: &mut BTreeMap<String, RelationMetadata>,
    ) -> PResult<()> {
        self.expect_kind(Kind::Ws, "WHITESPACE")?;
        if !is_extended_identifier(self.peek()) {
            return Err(self.mismatched(EXPECT_IDENT));
        }
        let name = self.bump();
        self.eat(Kind::Ws);
        self.expect_punct(":")?;
        self.eat(Kind::Ws);
        let mut direct = Vec::new();
        let def = self.expr(Direct::Allowed, &mut direct)?;
        if relations.contains_key(&name.text) {
            self.notify(
                format!("'{}' is already defined in '{type_name}'", name.text),
                &name,
            );
        }
        relations.insert(name.text.clone(), def);
        let module = match (&self.out.module, extend) {
            (Some(m), true) => m.clone(),
            _ => String::new(),
        };
        meta.insert(
            name.text,
            RelationMetadata {
                directly_related_user_types: direct,
                module,
                source_info: None,
            },
        );
        Ok(())
    }

    /// `operand ((or|and) operand)* | operand but not operand`.
    fn expr(&mut self, d: Direct, direct: &mut Vec<RelationReference>) -> PResult<Userset> {
        let first = self.operand(d, direct)?;
        let mut items = vec![first];
        let mut op: Option<Op> = None;
        loop {
            if self.peek().kind != Kind::Ws {
                break;
            }
            let kw = self.peek_at(1).clone();
            let this_op = if kw.is_word("or") {
                Op::Or
            } else if kw.is_word("and") {
                Op::And
            } else if kw.kind == Kind::ButNot {
                Op::ButNot
            } else {
                break;
            };
            if let Some(prev) = op {
                if prev != this_op || prev == Op::ButNot {
                    self.bump();
                    let shown = kw.display();
                    return Err(DslError::syntax(
                        format!("extraneous input '{shown}' expecting {{')', WHITESPACE}}"),
                        kw.line,
                        kw.col,
                        &shown,
                    ));
                }
            }
            op = Some(this_op);
            self.bump();
            self.bump();
            self.expect_kind(Kind::Ws, "WHITESPACE")?;
            let next = self.operand(Direct::Forbidden, direct)?;
            items.push(next);
        }
        Ok(match (op, items.len()) {
            (_, 1) | (None, _) => items.into_iter().next().unwrap_or_else(Userset::this),
            (Some(Op::Or), _) => Userset::Union(Usersets { child: items }),
            (Some(Op::And), _) => Userset::Intersection(Usersets { child: items }),
            (Some(Op::ButNot), _) => {
                let mut it = items.into_iter();
                let base = it.next().unwrap_or_else(Userset::this);
                let subtract = it.next().unwrap_or_else(Userset::this);
                Userset::Difference(Difference {
                    base: Box::new(base),
                    subtract: Box::new(subtract),
                })
            }
        })
    }

    fn operand(&mut self, d: Direct, direct: &mut Vec<RelationReference>) -> PResult<Userset> {
        let t = self.peek().clone();
        if t.is_punct("[") {
            if d == Direct::Forbidden {
                let shown = t.display();
                return Err(DslError::syntax(
                    format!("mismatched input '{shown}' expecting {}", EXPECT_OPERAND.replacen("'[', ", "", 1)),
                    t.line,
                    t.col,
                    &shown,
                ));
            }
            self.direct_assignment(direct)?;
            return Ok(Userset::this());
        }
        if t.is_punct("(") {
            self.bump();
            while self.eat(Kind::Ws) {}
            let inner = self.expr(d, direct)?;
            while self.eat(Kind::Ws) {}
            self.expect_punct(")")?;
            return Ok(inner);
        }
        if !is_extended_identifier(&t) {
            return Err(self.mismatched(if d == Direct::Allowed {
                EXPECT_OPERAND
            } else {
                EXPECT_IDENT
            }));
        }
        let computed = self.bump();
        if self.peek().kind == Kind::Ws && self.peek_at(1).is_word("from") {
            self.bump();
            self.bump();
            self.expect_kind(Kind::Ws, "WHITESPACE")?;
            if !is_extended_identifier(self.peek()) {
                return Err(self.mismatched(EXPECT_IDENT));
            }
            let tupleset = self.bump();
            return Ok(Userset::tuple_to_userset(tupleset.text, computed.text));
        }
        Ok(Userset::computed(computed.text))
    }

    fn direct_assignment(&mut self, direct: &mut Vec<RelationReference>) -> PResult<()> {
        self.expect_punct("[")?;
        direct.clear();
        self.eat(Kind::Ws);
        loop {
            self.eat(Kind::Nl);
            direct.push(self.type_restriction()?);
            self.eat(Kind::Nl);
            self.eat(Kind::Ws);
            let t = self.peek().clone();
            if t.is_punct(",") {
                self.bump();
                self.eat(Kind::Ws);
                continue;
            }
            if t.is_punct("]") {
                self.bump();
                return Ok(());
            }
            return Err(self.mismatched("{',', ']'}"));
        }
    }

    fn type_restriction(&mut self) -> PResult<RelationReference> {
        if !is_extended_identifier(self.peek()) {
            return Err(self.mismatched(EXPECT_IDENT));
        }
        let ty = self.bump();
        let mut r = RelationReference {
            type_name: ty.text,
            ..RelationReference::default()
        };
        if self.peek().is_punct(":") {
            self.bump();
            self.expect_punct("*")?;
            r.wildcard = true;
        } else if self.peek().is_punct("#") {
            self.bump();
            if !is_extended_identifier(self.peek()) {
                return Err(self.mismatched(EXPECT_IDENT));
            }
            r.relation = self.bump().text;
        }
        if self.peek().kind == Kind::Ws && self.peek_at(1).is_word("with") {
            self.bump();
            self.bump();
            self.expect_kind(Kind::Ws, "WHITESPACE")?;
            if self.peek().kind != Kind::Word || is_reserved_word(&self.peek().text) || self.peek().text.contains(['.', '/']) {
                return Err(self.mismatched("IDENTIFIER"));
            }
            r.condition = self.bump().text;
        }
        Ok(r)
    }

    fn condition(&mut self) -> PResult<()> {
        self.expect_word("condition")?;
        self.expect_kind(Kind::Ws, "WHITESPACE")?;
        if self.peek().kind != Kind::Word || self.peek().text.contains(['.', '/']) {
            return Err(self.mismatched("IDENTIFIER"));
        }
        let name = self.bump();
        if self.out.model.conditions.contains_key(&name.text) {
            self.notify(
                format!("condition '{}' is already defined in the model", name.text),
                &name,
            );
        }
        self.eat(Kind::Ws);
        self.expect_punct("(")?;
        let mut params = BTreeMap::new();
        self.eat(Kind::Ws);
        loop {
            self.eat(Kind::Nl);
            if self.peek().kind != Kind::Word || self.peek().text.contains(['.', '/']) {
                return Err(self.mismatched("IDENTIFIER"));
            }
            let pname = self.bump();
            self.eat(Kind::Ws);
            self.expect_punct(":")?;
            self.eat(Kind::Ws);
            let ty = self.param_type()?;
            if params.contains_key(&pname.text) {
                self.notify(
                    format!(
                        "parameter '{}' is already defined in the condition '{}'",
                        pname.text, name.text
                    ),
                    &pname,
                );
            }
            params.insert(pname.text, ty);
            self.eat(Kind::Ws);
            if self.peek().is_punct(",") {
                self.bump();
                self.eat(Kind::Ws);
                continue;
            }
            self.eat(Kind::Nl);
            if self.peek().is_punct(")") {
                self.bump();
                break;
            }
            return Err(self.mismatched("{',', ')'}"));
        }
        self.eat(Kind::Ws);
        let open = self.expect_punct("{")?;
        let (expression, close) = self.condition_body(open.offset + 1)?;
        while self.peek().offset < close && self.peek().kind != Kind::Eof {
            self.bump();
        }
        self.expect_punct("}")?;
        let metadata = self.out.module.as_ref().map(|m| ConditionMetadata {
            module: m.clone(),
            source_info: None,
        });
        self.out.model.conditions.insert(
            name.text.clone(),
            Condition {
                name: name.text,
                expression,
                parameters: params,
                metadata,
            },
        );
        Ok(())
    }

    fn param_type(&mut self) -> PResult<ConditionParamTypeRef> {
        let t = self.peek().clone();
        if t.kind == Kind::Word && PARAM_TYPES.contains(&t.text.as_str()) {
            self.bump();
            return Ok(ConditionParamTypeRef {
                type_name: format!("TYPE_NAME_{}", t.text.to_uppercase()),
                generic_types: Vec::new(),
            });
        }
        if t.is_word("map") || t.is_word("list") {
            self.bump();
            self.expect_punct("<")?;
            let g = self.peek().clone();
            if !(g.kind == Kind::Word && PARAM_TYPES.contains(&g.text.as_str())) {
                return Err(self.mismatched("CONDITION_PARAM_TYPE"));
            }
            self.bump();
            self.expect_punct(">")?;
            return Ok(ConditionParamTypeRef {
                type_name: format!("TYPE_NAME_{}", t.text.to_uppercase()),
                generic_types: vec![ConditionParamTypeRef {
                    type_name: format!("TYPE_NAME_{}", g.text.to_uppercase()),
                    generic_types: Vec::new(),
                }],
            });
        }
        Err(self.mismatched("{CONDITION_PARAM_CONTAINER, CONDITION_PARAM_TYPE}"))
    }

    /// The CEL text from `from` (just after `{`) to the first `}` outside a
    /// string literal; returns it trimmed and the `}`'s offset.
    fn condition_body(&mut self, from: usize) -> PResult<(String, usize)> {
        let rest = self.src.get(from..).unwrap_or("");
        let mut quote: Option<char> = None;
        let mut escaped = false;
        for (k, c) in rest.char_indices() {
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q || c == '\n' {
                    quote = None;
                }
                continue;
            }
            match c {
                '"' | '\'' => quote = Some(c),
                '}' => {
                    let body = rest.get(..k).unwrap_or("");
                    let body = body.trim_start_matches([' ', '\t']);
                    let body = body.trim_start_matches(['\n', '\r']);
                    let body = body.trim_start_matches([' ', '\t', '\n', '\r']);
                    let body = body.trim_end_matches([' ', '\t', '\n', '\r']);
                    return Ok((body.to_string(), from + k));
                }
                _ => {}
            }
        }
        let eof = self.toks.last().cloned().unwrap_or(Token {
            kind: Kind::Eof,
            text: String::new(),
            offset: 0,
            line: 0,
            col: 0,
        });
        Err(DslError::syntax(
            "mismatched input '<EOF>' expecting '}'",
            eof.line,
            eof.col,
            "<EOF>",
        ))
    }
}
