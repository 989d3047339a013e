//! The syntax tree of a schema file, as written (before name resolution).

use super::diagnostic::Span;

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The text, e.g. `document` or `acme/document`.
    pub text: String,
    /// Where it is.
    pub span: Span,
}

/// A parsed schema file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaFile {
    /// The top-level items, in source order.
    pub items: Vec<Item>,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `use expiration`
    Use(Name),
    /// `import "path.zed"`
    Import {
        /// The path as written, without quotes.
        path: String,
        /// The whole statement.
        span: Span,
    },
    /// `definition name { ... }`
    Definition(Definition),
    /// `partial name { ... }` (with `use partial`)
    Partial(Definition),
    /// `caveat name(params) { expression }`
    Caveat(CaveatDef),
}

/// A definition (or a partial, which has the same shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// Its name, possibly with a `prefix/`.
    pub name: Name,
    /// Its doc comment, decoration stripped.
    pub doc: Option<String>,
    /// Relations, permissions and partial references in source order.
    pub members: Vec<Member>,
    /// The whole definition.
    pub span: Span,
}

/// A member of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// `relation name: types`
    Relation(RelationDef),
    /// `permission name = expression`
    Permission(PermissionDef),
    /// `...partial_name`
    PartialRef(Name),
}

/// `relation name: type | type#rel | type:* | type with caveat ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationDef {
    /// Its name.
    pub name: Name,
    /// Its doc comment.
    pub doc: Option<String>,
    /// The allowed subject types, in source order.
    pub types: Vec<TypeRef>,
    /// The whole statement.
    pub span: Span,
}

/// What part of a subject type a relation allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKind {
    /// `user`: the object itself.
    Direct,
    /// `group#member`: a userset.
    Relation(Name),
    /// `user:*`: every object of the type.
    Wildcard,
}

/// One allowed subject type of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef {
    /// The subject's definition name.
    pub type_name: Name,
    /// Direct, userset or wildcard.
    pub kind: SubjectKind,
    /// `with caveat_name`
    pub caveat: Option<Name>,
    /// `with expiration` (or `with caveat and expiration`)
    pub expiration: bool,
    /// The whole reference.
    pub span: Span,
}

/// `permission name = expression`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionDef {
    /// Its name.
    pub name: Name,
    /// Its doc comment.
    pub doc: Option<String>,
    /// An optional type annotation (`permission view: user | group = ...`).
    pub annotation: Vec<Name>,
    /// The rewrite expression.
    pub expr: Expr,
    /// The whole statement.
    pub span: Span,
}

/// The function of an arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArrowFunc {
    /// `a->b`: the subject needs `b` on any object `a` names.
    Arrow,
    /// `a.any(b)`: the same as `->`.
    Any,
    /// `a.all(b)`: the subject needs `b` on every object `a` names.
    All,
}

/// A permission expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A relation or permission of the same definition.
    Ref(Name),
    /// `nil`: nobody.
    Nil(Span),
    /// `self`: the resource itself as a subject (with `use self`).
    SelfRef(Span),
    /// `left->right`, `left.any(right)`, `left.all(right)`.
    Arrow {
        /// The tupleset side.
        left: Box<Expr>,
        /// The computed relation on the targets.
        right: Name,
        /// Which arrow.
        func: ArrowFunc,
        /// The whole arrow.
        span: Span,
    },
    /// `a + b`
    Union(Box<Expr>, Box<Expr>),
    /// `a & b`
    Intersection(Box<Expr>, Box<Expr>),
    /// `a - b`
    Exclusion(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Where the expression is.
    pub fn span(&self) -> Span {
        match self {
            Expr::Ref(name) => name.span,
            Expr::Nil(span) | Expr::SelfRef(span) | Expr::Arrow { span, .. } => *span,
            Expr::Union(a, b) | Expr::Intersection(a, b) | Expr::Exclusion(a, b) => {
                a.span().to(b.span())
            }
        }
    }
}

/// `caveat name(param type, ...) { expression }`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaveatDef {
    /// Its name.
    pub name: Name,
    /// Its doc comment.
    pub doc: Option<String>,
    /// The parameters in order.
    pub params: Vec<CaveatParam>,
    /// The CEL expression text, trimmed.
    pub expression: String,
    /// Where the expression text starts and ends.
    pub expression_span: Span,
    /// The whole caveat.
    pub span: Span,
}

/// One caveat parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaveatParam {
    /// Its name.
    pub name: Name,
    /// Its type as written, whitespace removed, e.g. `list<string>`.
    pub type_text: String,
    /// Where the type is.
    pub type_span: Span,
}
