//! Type checking of caveat expressions (CEL), as SpiceDB does with cel-go at
//! schema-write time.
//!
//! The expression is parsed with the `cel` crate and a type-inference pass
//! over its AST checks it against the caveat's declared parameters with CEL's
//! standard typing rules (plus SpiceDB's `ipaddress` extension). The
//! expression must yield `bool`, or `dyn` (a parameter of type `any`), as
//! cel-go accepts.
//!
//! Overloads are described by a table ([`overloads`]) of signatures with type
//! parameters (`A`, `B`), resolved the way cel-go's checker does: `dyn` is
//! assignable to and from everything; when several overloads match (because an
//! argument is `dyn`) the result is their common type, or `dyn`.
//!
//! The parser (ANTLR based) recurses deeply and needs a lot of stack even for
//! moderately nested input, so [`check_caveat_expression`] runs the parse and
//! the check on a dedicated thread with a large stack, bounds the length of the
//! expression, and bounds the checker's own recursion depth.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, SelectExpr, SourceInfo,
};

/// Longest expression accepted, in bytes. Caveat expressions are small; the
/// bound keeps parsing time and parser stack use in check.
pub const MAX_EXPRESSION_BYTES: usize = 32 * 1024;

/// Deepest AST nesting the checker descends into before reporting an error.
const MAX_CHECK_DEPTH: usize = 128;

/// Stack of the thread the parser and checker run on. Only the pages actually
/// touched are committed.
const CHECK_THREAD_STACK_BYTES: usize = 256 * 1024 * 1024;

/// A caveat parameter type as written in the schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CaveatType {
    Any,
    Int,
    Uint,
    Double,
    Bool,
    String,
    Bytes,
    Duration,
    Timestamp,
    List(Box<CaveatType>),
    Map(Box<CaveatType>),
    IpAddress,
}

impl CaveatType {
    /// Parses a type name as written in schema text: "int", "list<string>",
    /// "map<list<int>>", "ipaddress" ... (whitespace inside <> allowed).
    /// Returns None for unknown names or wrong generic arity (e.g. "list",
    /// "map<a,b>", "int<int>").
    pub fn parse(text: &str) -> Option<CaveatType> {
        Self::parse_depth(text, 0)
    }

    fn parse_depth(text: &str, depth: usize) -> Option<CaveatType> {
        if depth > 32 {
            return None;
        }
        let text = text.trim();
        let (base, args) = match text.find('<') {
            None => (text, Vec::new()),
            Some(open) => {
                let inner = text.get(open + 1..)?.strip_suffix('>')?;
                let args = split_top_level(inner)?;
                (text.get(..open)?.trim_end(), args)
            }
        };
        let simple = |t: CaveatType| if args.is_empty() { Some(t) } else { None };
        match base {
            "any" => simple(CaveatType::Any),
            "int" => simple(CaveatType::Int),
            "uint" => simple(CaveatType::Uint),
            "double" => simple(CaveatType::Double),
            "bool" => simple(CaveatType::Bool),
            "string" => simple(CaveatType::String),
            "bytes" => simple(CaveatType::Bytes),
            "duration" => simple(CaveatType::Duration),
            "timestamp" => simple(CaveatType::Timestamp),
            "ipaddress" => simple(CaveatType::IpAddress),
            "list" | "map" => {
                let [arg] = args.as_slice() else {
                    return None;
                };
                let inner = Box::new(Self::parse_depth(arg, depth + 1)?);
                Some(if base == "list" {
                    CaveatType::List(inner)
                } else {
                    CaveatType::Map(inner)
                })
            }
            _ => None,
        }
    }

    fn to_ty(&self) -> Ty {
        match self {
            CaveatType::Any => Ty::Dyn,
            CaveatType::Int => Ty::Int,
            CaveatType::Uint => Ty::Uint,
            CaveatType::Double => Ty::Double,
            CaveatType::Bool => Ty::Bool,
            CaveatType::String => Ty::String,
            CaveatType::Bytes => Ty::Bytes,
            CaveatType::Duration => Ty::Duration,
            CaveatType::Timestamp => Ty::Timestamp,
            CaveatType::IpAddress => Ty::IpAddress,
            CaveatType::List(elem) => Ty::List(Box::new(elem.to_ty())),
            CaveatType::Map(value) => Ty::Map(Box::new(Ty::String), Box::new(value.to_ty())),
        }
    }
}

/// The comma-separated parts of `inner`, splitting only outside `<...>`; None
/// when the brackets don't balance or a part is empty.
fn split_top_level(inner: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                parts.push(inner.get(start..i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    parts.push(inner.get(start..)?);
    if parts.iter().any(|p| p.trim().is_empty()) {
        return None;
    }
    Some(parts)
}

impl fmt::Display for CaveatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaveatType::Any => f.write_str("any"),
            CaveatType::Int => f.write_str("int"),
            CaveatType::Uint => f.write_str("uint"),
            CaveatType::Double => f.write_str("double"),
            CaveatType::Bool => f.write_str("bool"),
            CaveatType::String => f.write_str("string"),
            CaveatType::Bytes => f.write_str("bytes"),
            CaveatType::Duration => f.write_str("duration"),
            CaveatType::Timestamp => f.write_str("timestamp"),
            CaveatType::IpAddress => f.write_str("ipaddress"),
            CaveatType::List(elem) => write!(f, "list<{elem}>"),
            CaveatType::Map(value) => write!(f, "map<{value}>"),
        }
    }
}

/// One problem found in a caveat expression. `offset` is a byte offset into
/// the expression text when known (for line:column reporting by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelTypeError {
    pub message: String,
    pub offset: Option<usize>,
}

impl CelTypeError {
    fn new(message: impl Into<String>, offset: Option<usize>) -> Self {
        Self {
            message: message.into(),
            offset,
        }
    }
}

impl fmt::Display for CelTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CelTypeError {}

/// Parses and type-checks `expression` against `params`; Ok(()) when it is
/// well-typed and yields bool (or dyn). Returns every error found (at least
/// one on failure). Must never panic on any input string.
pub fn check_caveat_expression(
    expression: &str,
    params: &[(String, CaveatType)],
) -> Result<(), Vec<CelTypeError>> {
    if expression.len() > MAX_EXPRESSION_BYTES {
        return Err(vec![CelTypeError::new(
            format!(
                "caveat expression is too long ({} bytes, limit {MAX_EXPRESSION_BYTES})",
                expression.len()
            ),
            None,
        )]);
    }
    if expression.trim().is_empty() {
        return Err(vec![CelTypeError::new("caveat expression is empty", None)]);
    }
    let expression = expression.to_owned();
    let params = params.to_vec();
    let spawned = std::thread::Builder::new()
        .name("cel-check".to_owned())
        .stack_size(CHECK_THREAD_STACK_BYTES)
        .spawn(move || check_on_this_thread(&expression, &params));
    match spawned {
        Ok(handle) => handle.join().unwrap_or_else(|_| {
            Err(vec![CelTypeError::new(
                "internal error: the caveat expression checker panicked",
                None,
            )])
        }),
        Err(err) => Err(vec![CelTypeError::new(
            format!("internal error: could not start the caveat expression checker: {err}"),
            None,
        )]),
    }
}

fn check_on_this_thread(
    expression: &str,
    params: &[(String, CaveatType)],
) -> Result<(), Vec<CelTypeError>> {
    let (ast, source_info) = cel::parser::Parser::new()
        .parse_with_source_info(expression)
        .map_err(|errs| convert_parse_errors(expression, errs))?;
    let mut checker = Checker {
        params: params.iter().map(|(n, t)| (n.clone(), t.to_ty())).collect(),
        param_names: params.iter().map(|(n, _)| n.clone()).collect(),
        scopes: Vec::new(),
        source_info,
        errors: Vec::new(),
        depth_exceeded: false,
    };
    let result = checker.check(&ast, 0);
    if !matches!(result, Ty::Bool | Ty::Dyn | Ty::Free | Ty::Error) {
        checker.error(
            ast.id,
            format!("caveat expression must be `bool`, found `{result}`"),
        );
    }
    if checker.errors.is_empty() {
        Ok(())
    } else {
        Err(checker.errors)
    }
}

fn convert_parse_errors(source: &str, errs: cel::ParseErrors) -> Vec<CelTypeError> {
    let mut out: Vec<CelTypeError> = errs
        .errors
        .iter()
        .map(|e| {
            let mut msg = e.msg.clone();
            if msg.contains("Recursion limit") {
                msg = "caveat expression is nested too deeply for the parser".to_owned();
            } else if msg == "UNKNOWN" {
                msg = match &e.source {
                    Some(inner) => format!("syntax error: {inner}"),
                    None => "syntax error".to_owned(),
                };
            } else if let Some(rest) = msg.strip_prefix("Syntax error: ") {
                msg = format!("syntax error: {rest}");
            }
            CelTypeError::new(msg, line_col_to_offset(source, e.pos.0, e.pos.1))
        })
        .collect();
    if out.is_empty() {
        out.push(CelTypeError::new("syntax error", None));
    }
    out
}

/// Byte offset of a 1-based (line, character column) position.
fn line_col_to_offset(source: &str, line: isize, col: isize) -> Option<usize> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let col = usize::try_from(col).ok()?.checked_sub(1)?;
    let mut line_start = 0usize;
    for (i, l) in source.split_inclusive('\n').enumerate() {
        if i == line {
            let within = l
                .char_indices()
                .map(|(b, _)| b)
                .chain(std::iter::once(l.len()))
                .nth(col)?;
            return Some(line_start + within);
        }
        line_start += l.len();
    }
    // A position just past the end (e.g. an unexpected end of input on an
    // empty last line).
    (line == source.split_inclusive('\n').count() && col == 0).then_some(source.len())
}

/// A type during checking.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    /// `dyn`: any value; the type of `any` parameters.
    Dyn,
    /// Not yet known, e.g. the elements of `[]`: takes the type it meets.
    Free,
    /// The type of an expression already reported as wrong: accepted
    /// everywhere so that one mistake gives one error.
    Error,
    Null,
    Int,
    Uint,
    Double,
    Bool,
    String,
    Bytes,
    Duration,
    Timestamp,
    IpAddress,
    /// A type value, e.g. `int` or `type(x)`.
    Type,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// A type parameter of an overload signature (only in [`overloads`]).
    Var(usize),
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Dyn | Ty::Free => f.write_str("any"),
            Ty::Error => f.write_str("error"),
            Ty::Null => f.write_str("null"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::Bool => f.write_str("bool"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Duration => f.write_str("duration"),
            Ty::Timestamp => f.write_str("timestamp"),
            Ty::IpAddress => f.write_str("ipaddress"),
            Ty::Type => f.write_str("type"),
            Ty::List(elem) => write!(f, "list<{elem}>"),
            Ty::Map(key, value) if **key == Ty::String => write!(f, "map<{value}>"),
            Ty::Map(key, value) => write!(f, "map<{key}, {value}>"),
            Ty::Var(0) => f.write_str("A"),
            Ty::Var(_) => f.write_str("B"),
        }
    }
}

fn is_dynish(t: &Ty) -> bool {
    matches!(t, Ty::Dyn | Ty::Free | Ty::Error)
}

/// Types cel-go lets `null` be compared with.
fn is_nullable(t: &Ty) -> bool {
    matches!(t, Ty::Null | Ty::Timestamp | Ty::Duration | Ty::IpAddress)
}

/// Whether a value of one type may stand where the other is expected.
fn compatible(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        _ if is_dynish(a) || is_dynish(b) => true,
        (Ty::Null, other) | (other, Ty::Null) => is_nullable(other),
        (Ty::List(x), Ty::List(y)) => compatible(x, y),
        (Ty::Map(k1, v1), Ty::Map(k2, v2)) => compatible(k1, k2) && compatible(v1, v2),
        _ => a == b,
    }
}

/// The most specific type covering two compatible types.
fn join(a: &Ty, b: &Ty) -> Ty {
    match (a, b) {
        (Ty::Error, _) | (_, Ty::Error) => Ty::Error,
        (Ty::Free, other) | (other, Ty::Free) => other.clone(),
        (Ty::List(x), Ty::List(y)) => Ty::List(Box::new(join(x, y))),
        (Ty::Map(k1, v1), Ty::Map(k2, v2)) => {
            Ty::Map(Box::new(join(k1, k2)), Box::new(join(v1, v2)))
        }
        (Ty::Null, other) | (other, Ty::Null) if is_nullable(other) => other.clone(),
        _ if a == b => a.clone(),
        _ => Ty::Dyn,
    }
}

/// One signature of a function, operator or method.
struct Overload {
    name: &'static str,
    /// Called as `target.name(args)`; the target is the first parameter.
    member: bool,
    params: Vec<Ty>,
    result: Ty,
}

/// The functions a caveat expression may call: CEL's standard library and
/// SpiceDB's `ipaddress` extension.
fn overloads() -> &'static [Overload] {
    static TABLE: OnceLock<Vec<Overload>> = OnceLock::new();
    TABLE.get_or_init(build_overloads)
}

fn build_overloads() -> Vec<Overload> {
    use Ty::*;
    let a = || Var(0);
    let b = || Var(1);
    let list = |t: Ty| List(Box::new(t));
    let map = |k: Ty, v: Ty| Map(Box::new(k), Box::new(v));
    let mut t: Vec<Overload> = Vec::new();
    let mut global = |name: &'static str, params: Vec<Ty>, result: Ty| {
        t.push(Overload {
            name,
            member: false,
            params,
            result,
        })
    };

    // Logic.
    global("_&&_", vec![Bool, Bool], Bool);
    global("_||_", vec![Bool, Bool], Bool);
    global("!_", vec![Bool], Bool);
    global("@not_strictly_false", vec![Bool], Bool);
    global("_?_:_", vec![Bool, a(), a()], a());

    // Arithmetic.
    for num in [Int, Double] {
        global("-_", vec![num.clone()], num);
    }
    for op in ["_+_", "_-_", "_*_", "_/_"] {
        for num in [Int, Uint, Double] {
            global(op, vec![num.clone(), num.clone()], num);
        }
    }
    for num in [Int, Uint] {
        global("_%_", vec![num.clone(), num.clone()], num);
    }
    global("_+_", vec![String, String], String);
    global("_+_", vec![Bytes, Bytes], Bytes);
    global("_+_", vec![list(a()), list(a())], list(a()));
    global("_+_", vec![Duration, Duration], Duration);
    global("_+_", vec![Timestamp, Duration], Timestamp);
    global("_+_", vec![Duration, Timestamp], Timestamp);
    global("_-_", vec![Duration, Duration], Duration);
    global("_-_", vec![Timestamp, Duration], Timestamp);
    global("_-_", vec![Timestamp, Timestamp], Duration);

    // Equality, ordering, membership, indexing.
    global("_==_", vec![a(), a()], Bool);
    global("_!=_", vec![a(), a()], Bool);
    for op in ["_<_", "_<=_", "_>_", "_>=_"] {
        for ty in [Int, Uint, Double, String, Bytes, Bool, Timestamp, Duration] {
            global(op, vec![ty.clone(), ty], Bool);
        }
        for (x, y) in [
            (Int, Uint),
            (Int, Double),
            (Uint, Int),
            (Uint, Double),
            (Double, Int),
            (Double, Uint),
        ] {
            global(op, vec![x, y], Bool);
        }
    }
    global("@in", vec![a(), list(a())], Bool);
    global("@in", vec![a(), map(a(), b())], Bool);
    global("_[_]", vec![list(a()), Int], a());
    global("_[_]", vec![map(a(), b()), a()], b());

    // Size.
    for ty in [String, Bytes, list(a()), map(a(), b())] {
        global("size", vec![ty], Int);
    }

    // Conversions.
    for ty in [Int, Uint, Double, String, Timestamp, Duration] {
        global("int", vec![ty], Int);
    }
    for ty in [Int, Uint, Double, String] {
        global("uint", vec![ty], Uint);
    }
    for ty in [Int, Uint, Double, String] {
        global("double", vec![ty], Double);
    }
    for ty in [Int, Uint, Double, Bool, String, Bytes, Timestamp, Duration] {
        global("string", vec![ty], String);
    }
    for ty in [String, Bytes] {
        global("bytes", vec![ty], Bytes);
    }
    for ty in [Bool, String] {
        global("bool", vec![ty], Bool);
    }
    for ty in [String, Duration] {
        global("duration", vec![ty], Duration);
    }
    for ty in [String, Timestamp, Int] {
        global("timestamp", vec![ty], Timestamp);
    }
    global("dyn", vec![a()], Dyn);
    global("type", vec![a()], Type);
    global("matches", vec![String, String], Bool);

    // SpiceDB's ipaddress extension.
    global("ipaddress", vec![String], IpAddress);

    let mut member = |name: &'static str, params: Vec<Ty>, result: Ty| {
        t.push(Overload {
            name,
            member: true,
            params,
            result,
        })
    };
    for ty in [String, Bytes, list(a()), map(a(), b())] {
        member("size", vec![ty], Int);
    }
    for name in ["contains", "startsWith", "endsWith", "matches"] {
        member(name, vec![String, String], Bool);
    }
    for name in [
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    ] {
        member(name, vec![Timestamp], Int);
        member(name, vec![Timestamp, String], Int);
    }
    for name in ["getHours", "getMinutes", "getSeconds", "getMilliseconds"] {
        member(name, vec![Duration], Int);
    }
    member("in_cidr", vec![IpAddress, String], Bool);
    t
}

/// Matches an argument against a parameter, binding type parameters.
fn unify(param: &Ty, arg: &Ty, bindings: &mut [Option<Ty>; 2]) -> bool {
    match param {
        Ty::Var(i) => match bindings.get_mut(*i) {
            Some(slot @ None) => {
                *slot = Some(arg.clone());
                true
            }
            Some(Some(prev)) if compatible(prev, arg) => {
                *prev = join(prev, arg);
                true
            }
            Some(Some(_)) | None => false,
        },
        Ty::List(p) => match arg {
            Ty::List(x) => unify(p, x, bindings),
            _ => is_dynish(arg),
        },
        Ty::Map(pk, pv) => match arg {
            Ty::Map(k, v) => unify(pk, k, bindings) && unify(pv, v, bindings),
            _ => is_dynish(arg),
        },
        Ty::Dyn => true,
        _ => compatible(param, arg),
    }
}

fn substitute(t: &Ty, bindings: &[Option<Ty>; 2]) -> Ty {
    match t {
        Ty::Var(i) => match bindings.get(*i) {
            Some(Some(bound)) => bound.clone(),
            _ => Ty::Dyn,
        },
        Ty::List(e) => Ty::List(Box::new(substitute(e, bindings))),
        Ty::Map(k, v) => Ty::Map(
            Box::new(substitute(k, bindings)),
            Box::new(substitute(v, bindings)),
        ),
        other => other.clone(),
    }
}

/// How a call could not be resolved.
enum Unresolved {
    UnknownFunction,
    /// The function exists, but only called the other way (global/method).
    WrongStyle,
    /// No overload takes this many arguments; the counts that exist.
    WrongArity(Vec<usize>),
    NoMatchingOverload,
}

/// The result type of calling `name` with `args` (the target first for a
/// method call).
fn resolve(name: &str, member: bool, args: &[Ty]) -> Result<Ty, Unresolved> {
    let same_name: Vec<&Overload> = overloads().iter().filter(|o| o.name == name).collect();
    if same_name.is_empty() {
        return Err(Unresolved::UnknownFunction);
    }
    let same_style: Vec<&Overload> = same_name
        .into_iter()
        .filter(|o| o.member == member)
        .collect();
    if same_style.is_empty() {
        return Err(Unresolved::WrongStyle);
    }
    let same_arity: Vec<&Overload> = same_style
        .iter()
        .copied()
        .filter(|o| o.params.len() == args.len())
        .collect();
    if same_arity.is_empty() {
        let offset = usize::from(member);
        let mut counts: Vec<usize> = same_style
            .iter()
            .map(|o| o.params.len().saturating_sub(offset))
            .collect();
        counts.sort_unstable();
        counts.dedup();
        return Err(Unresolved::WrongArity(counts));
    }
    let mut result: Option<Ty> = None;
    for o in same_arity {
        let mut bindings = [None, None];
        if o.params
            .iter()
            .zip(args)
            .all(|(p, a)| unify(p, a, &mut bindings))
        {
            let r = substitute(&o.result, &bindings);
            result = Some(match result {
                None => r,
                Some(prev) if prev == r => prev,
                Some(_) => Ty::Dyn,
            });
        }
    }
    result.ok_or(Unresolved::NoMatchingOverload)
}

/// The operator an internal function name spells, for messages.
fn operator_symbol(name: &str) -> Option<&'static str> {
    Some(match name {
        "_+_" => "+",
        "_-_" | "-_" => "-",
        "_*_" => "*",
        "_/_" => "/",
        "_%_" => "%",
        "_==_" => "==",
        "_!=_" => "!=",
        "_<_" => "<",
        "_<=_" => "<=",
        "_>_" => ">",
        "_>=_" => ">=",
        "_&&_" => "&&",
        "_||_" => "||",
        "!_" => "!",
        "@in" => "in",
        "@not_strictly_false" => "@not_strictly_false",
        _ => return None,
    })
}

/// When `call` is the loop step a macro (`all`, `exists`, `exists_one`,
/// `filter`, `map` with a filter) expanded to, and the user's predicate in it
/// is not `bool`: the predicate's node and type.
fn macro_predicate(call: &CallExpr, args: &[Ty]) -> Option<(u64, Ty)> {
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if n.starts_with('@'));
    let (pred, ty) = match (call.func_name.as_str(), call.args.as_slice(), args) {
        ("_&&_" | "_||_", [accu, pred], [_, ty]) if is_accu(accu) => (pred, ty),
        ("_?_:_", [pred, _, accu], [ty, _, _]) if is_accu(accu) => (pred, ty),
        _ => return None,
    };
    (!compatible(ty, &Ty::Bool)).then(|| (pred.id, ty.clone()))
}

/// Identifiers CEL resolves to type values when no variable has the name.
const TYPE_IDENTS: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

struct Checker {
    params: HashMap<String, Ty>,
    param_names: Vec<String>,
    /// Comprehension variables in scope, innermost last.
    scopes: Vec<(String, Ty)>,
    source_info: SourceInfo,
    errors: Vec<CelTypeError>,
    depth_exceeded: bool,
}

impl Checker {
    fn error(&mut self, id: u64, message: impl Into<String>) {
        let offset = self
            .source_info
            .offset_for(id)
            .and_then(|(start, _)| usize::try_from(start).ok());
        self.errors.push(CelTypeError::new(message, offset));
    }

    fn check(&mut self, e: &IdedExpr, depth: usize) -> Ty {
        if depth > MAX_CHECK_DEPTH {
            if !self.depth_exceeded {
                self.depth_exceeded = true;
                self.error(
                    e.id,
                    format!("caveat expression is nested too deeply (limit {MAX_CHECK_DEPTH})"),
                );
            }
            return Ty::Error;
        }
        let depth = depth + 1;
        match &e.expr {
            Expr::Unspecified => {
                self.error(e.id, "invalid expression");
                Ty::Error
            }
            Expr::Literal(lit) => match lit {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            },
            Expr::Ident(name) => self.ident(e.id, name),
            Expr::List(list) => {
                let mut elem = Ty::Free;
                for item in &list.elements {
                    let t = self.check(item, depth);
                    elem = if compatible(&elem, &t) {
                        join(&elem, &t)
                    } else {
                        Ty::Dyn
                    };
                }
                Ty::List(Box::new(elem))
            }
            Expr::Map(map) => {
                let (mut key, mut value) = (Ty::Free, Ty::Free);
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            let k = self.check(&me.key, depth);
                            let v = self.check(&me.value, depth);
                            if !matches!(k, Ty::Int | Ty::Uint | Ty::String | Ty::Bool)
                                && !is_dynish(&k)
                            {
                                self.error(
                                    me.key.id,
                                    format!("map key must be `int`, `uint`, `string` or `bool`, found `{k}`"),
                                );
                            }
                            key = if compatible(&key, &k) {
                                join(&key, &k)
                            } else {
                                Ty::Dyn
                            };
                            value = if compatible(&value, &v) {
                                join(&value, &v)
                            } else {
                                Ty::Dyn
                            };
                        }
                        EntryExpr::StructField(_) => {
                            self.error(entry.id, "invalid map entry");
                        }
                    }
                }
                Ty::Map(Box::new(key), Box::new(value))
            }
            Expr::Struct(s) => {
                self.error(
                    e.id,
                    format!(
                        "message construction `{}{{...}}` is not supported in caveat expressions",
                        s.type_name
                    ),
                );
                Ty::Error
            }
            Expr::Select(select) => self.select(e.id, select, depth),
            Expr::Call(call) => self.call(e.id, call, depth),
            Expr::Comprehension(comp) => self.comprehension(comp, depth),
        }
    }

    fn ident(&mut self, id: u64, name: &str) -> Ty {
        if let Some((_, t)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return t.clone();
        }
        if let Some(t) = self.params.get(name) {
            return t.clone();
        }
        if TYPE_IDENTS.contains(&name) {
            return Ty::Type;
        }
        let known = if self.param_names.is_empty() {
            "the caveat has no parameters".to_owned()
        } else {
            let names: Vec<String> = self.param_names.iter().map(|n| format!("`{n}`")).collect();
            format!("parameters: {}", names.join(", "))
        };
        self.error(id, format!("unknown identifier `{name}` ({known})"));
        Ty::Error
    }

    fn select(&mut self, id: u64, select: &SelectExpr, depth: usize) -> Ty {
        let operand = self.check(&select.operand, depth);
        let field = &select.field;
        match &operand {
            t if is_dynish(t) => {
                if select.test {
                    Ty::Bool
                } else if *t == Ty::Error {
                    Ty::Error
                } else {
                    Ty::Dyn
                }
            }
            Ty::Map(key, value) if compatible(key, &Ty::String) => {
                if select.test {
                    Ty::Bool
                } else {
                    (**value).clone()
                }
            }
            other => {
                if select.test {
                    self.error(
                        id,
                        format!("`has()` cannot test field `{field}` on `{other}`"),
                    );
                    Ty::Error
                } else {
                    self.error(id, format!("cannot select field `{field}` on `{other}`"));
                    Ty::Error
                }
            }
        }
    }

    fn call(&mut self, id: u64, call: &CallExpr, depth: usize) -> Ty {
        let mut args: Vec<Ty> = Vec::with_capacity(call.args.len() + 1);
        let member = call.target.is_some();
        if let Some(target) = &call.target {
            args.push(self.check(target, depth));
        }
        for arg in &call.args {
            args.push(self.check(arg, depth));
        }
        let name = call.func_name.as_str();
        if args.contains(&Ty::Error) {
            // Already reported; whatever the call would give is unknowable.
            return match resolve(name, member, &args) {
                Ok(Ty::Bool) => Ty::Bool,
                _ => Ty::Error,
            };
        }
        match resolve(name, member, &args) {
            Ok(t) => t,
            Err(why) => {
                if let Some((pred_id, pred_ty)) = macro_predicate(call, &args) {
                    self.error(
                        pred_id,
                        format!("macro predicate must be `bool`, found `{pred_ty}`"),
                    );
                    return Ty::Error;
                }
                let message = self.call_error(name, member, &args, why);
                self.error(id, message);
                Ty::Error
            }
        }
    }

    fn call_error(&self, name: &str, member: bool, args: &[Ty], why: Unresolved) -> String {
        let list = |ts: &[Ty]| {
            ts.iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (name, args) {
            ("_?_:_", [cond, yes, no]) => {
                return if !compatible(cond, &Ty::Bool) {
                    format!("the condition of `?:` must be `bool`, found `{cond}`")
                } else {
                    format!("the branches of `?:` have different types: `{yes}` and `{no}`")
                };
            }
            ("_[_]", [container, index]) => {
                return format!("cannot index `{container}` with `{index}`");
            }
            _ => {}
        }
        if let Some(op) = operator_symbol(name) {
            return match args {
                [x] => format!("operator `{op}` cannot apply to `{x}`"),
                [x, y] => format!("operator `{op}` cannot apply to `{x}` and `{y}`"),
                _ => format!("operator `{op}` cannot apply to {}", list(args)),
            };
        }
        let (kind, shown_args) = if member {
            ("method", args.get(1..).unwrap_or_default())
        } else {
            ("function", args)
        };
        match why {
            Unresolved::UnknownFunction => format!("unknown {kind} `{name}`"),
            Unresolved::WrongStyle if member => {
                format!("`{name}` is not a method; call it as a function: `{name}(...)`")
            }
            Unresolved::WrongStyle => {
                format!("`{name}` is a method; call it on a value: `x.{name}(...)`")
            }
            Unresolved::WrongArity(counts) => {
                let counts: Vec<String> = counts.iter().map(|c| c.to_string()).collect();
                let plural = if counts.len() == 1 && counts.first().is_some_and(|c| c == "1") {
                    "argument"
                } else {
                    "arguments"
                };
                format!(
                    "{kind} `{name}` expects {} {plural}, found {}",
                    counts.join(" or "),
                    shown_args.len()
                )
            }
            Unresolved::NoMatchingOverload => match (member, args.first()) {
                (true, Some(target)) if shown_args.is_empty() => {
                    format!("method `{name}` cannot apply to `{target}`")
                }
                (true, Some(target)) => format!(
                    "method `{name}` cannot apply to `{target}` with arguments ({})",
                    list(shown_args)
                ),
                _ => format!(
                    "function `{name}` cannot apply to arguments ({})",
                    list(shown_args)
                ),
            },
        }
    }

    fn comprehension(&mut self, comp: &ComprehensionExpr, depth: usize) -> Ty {
        let range = self.check(&comp.iter_range, depth);
        let (first, second) = match &range {
            Ty::List(elem) => (Ty::Int, (**elem).clone()),
            Ty::Map(key, value) => ((**key).clone(), (**value).clone()),
            Ty::Error => (Ty::Error, Ty::Error),
            t if is_dynish(t) => (Ty::Dyn, Ty::Dyn),
            other => {
                self.error(
                    comp.iter_range.id,
                    format!("cannot iterate over `{other}`: expected a list or a map"),
                );
                (Ty::Error, Ty::Error)
            }
        };
        // With one variable, a list binds its elements, a map its keys.
        let vars: Vec<(String, Ty)> = match &comp.iter_var2 {
            Some(var2) => vec![(comp.iter_var.clone(), first), (var2.clone(), second)],
            None => {
                let t = match &range {
                    Ty::List(_) => second,
                    _ => first,
                };
                vec![(comp.iter_var.clone(), t)]
            }
        };
        let accu_init = self.check(&comp.accu_init, depth);
        let base = self.scopes.len();
        self.scopes.push((comp.accu_var.clone(), accu_init.clone()));
        self.scopes.extend(vars);
        let cond = self.check(&comp.loop_cond, depth);
        if !compatible(&cond, &Ty::Bool) {
            self.error(
                comp.loop_cond.id,
                format!("comprehension condition must be `bool`, found `{cond}`"),
            );
        }
        let step = self.check(&comp.loop_step, depth);
        self.scopes.truncate(base);
        let accu = if compatible(&accu_init, &step) {
            join(&accu_init, &step)
        } else {
            self.error(
                comp.loop_step.id,
                format!("comprehension step of type `{step}` does not match its accumulator of type `{accu_init}`"),
            );
            Ty::Error
        };
        self.scopes.push((comp.accu_var.clone(), accu));
        let result = self.check(&comp.result, depth);
        self.scopes.truncate(base);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(specs: &[(&str, &str)]) -> Vec<(String, CaveatType)> {
        specs
            .iter()
            .map(|(n, t)| {
                let ty = CaveatType::parse(t).unwrap_or_else(|| panic!("bad type {t}"));
                ((*n).to_owned(), ty)
            })
            .collect()
    }

    fn ok(expr: &str, params: &[(&str, &str)]) {
        if let Err(errs) = check_caveat_expression(expr, &p(params)) {
            panic!("expected `{expr}` to type-check, got {errs:?}");
        }
    }

    fn err(expr: &str, params: &[(&str, &str)]) -> Vec<CelTypeError> {
        match check_caveat_expression(expr, &p(params)) {
            Ok(()) => panic!("expected `{expr}` to be rejected"),
            Err(errs) => {
                assert!(!errs.is_empty());
                errs
            }
        }
    }

    /// Rejected with an error whose message contains `needle`.
    fn err_has(expr: &str, params: &[(&str, &str)], needle: &str) -> Vec<CelTypeError> {
        let errs = err(expr, params);
        assert!(
            errs.iter().any(|e| e.message.contains(needle)),
            "`{expr}`: expected an error containing {needle:?}, got {errs:?}"
        );
        errs
    }

    // ---- CaveatType ----

    #[test]
    fn parses_and_displays_types() {
        let cases = [
            ("int", "int"),
            ("uint", "uint"),
            ("double", "double"),
            ("bool", "bool"),
            ("string", "string"),
            ("bytes", "bytes"),
            ("duration", "duration"),
            ("timestamp", "timestamp"),
            ("ipaddress", "ipaddress"),
            ("any", "any"),
            ("list<string>", "list<string>"),
            ("list< string >", "list<string>"),
            ("map<list<int>>", "map<list<int>>"),
            (" map < list < int > > ", "map<list<int>>"),
            ("list<map<any>>", "list<map<any>>"),
        ];
        for (text, canonical) in cases {
            let t = CaveatType::parse(text).unwrap_or_else(|| panic!("{text} should parse"));
            assert_eq!(t.to_string(), canonical);
            assert_eq!(CaveatType::parse(canonical), Some(t));
        }
        assert_eq!(
            CaveatType::parse("map<list<int>>"),
            Some(CaveatType::Map(Box::new(CaveatType::List(Box::new(
                CaveatType::Int
            )))))
        );
    }

    #[test]
    fn rejects_bad_type_names() {
        for text in [
            "",
            "list",
            "map",
            "map<a,b>",
            "map<string,int>",
            "int<int>",
            "list<>",
            "list<int",
            "list<int>>",
            "list<<int>>",
            "foo",
            "Int",
            "list<foo>",
            "map<>",
            "list<int,>",
            "listint>",
            ">",
            "<",
            "list<int> x",
            "ipaddress<string>",
        ] {
            assert_eq!(CaveatType::parse(text), None, "{text:?} should not parse");
        }
        let deep = format!("{}int{}", "list<".repeat(1000), ">".repeat(1000));
        assert_eq!(CaveatType::parse(&deep), None);
    }

    // ---- accepted expressions ----

    #[test]
    fn accepts_spicedb_examples() {
        ok(
            "allowed_ranges.exists(r, user_ip.in_cidr(r))",
            &[("user_ip", "ipaddress"), ("allowed_ranges", "list<string>")],
        );
        ok(
            "amount <= limit && now < expires && \"a\" in tags && tags[\"a\"] == \"x\"",
            &[
                ("amount", "int"),
                ("limit", "int"),
                ("now", "timestamp"),
                ("expires", "timestamp"),
                ("tags", "map<string>"),
            ],
        );
        ok("amount <= limit", &[("amount", "int"), ("limit", "int")]);
        ok(
            "user_ip.in_cidr(cidr)",
            &[("user_ip", "ipaddress"), ("cidr", "string")],
        );
        ok("user_ip.in_cidr('10.0.0.0/8')", &[("user_ip", "ipaddress")]);
        ok(
            "now < expires",
            &[("now", "timestamp"), ("expires", "timestamp")],
        );
    }

    #[test]
    fn accepts_timestamps_and_durations() {
        let ps = [("now", "timestamp"), ("d", "duration"), ("t", "timestamp")];
        ok("timestamp(\"2020-01-01T00:00:00Z\") < now", &ps);
        ok("duration(\"1h\") > d", &ps);
        ok("now - t < duration('5m')", &ps);
        ok("now + d > t", &ps);
        ok("d + now > t && now - d < t", &ps);
        ok("d + d == duration('2h')", &ps);
        ok(
            "now.getHours() >= 9 && now.getHours('America/New_York') < 17",
            &ps,
        );
        ok("now.getFullYear() == 2024 && now.getDayOfWeek() < 5", &ps);
        ok("d.getMinutes() > 30", &ps);
        ok("int(now) > 0 && timestamp(0) < now", &ps);
        ok("now == null || string(now) != ''", &ps);
    }

    #[test]
    fn accepts_collections() {
        ok("\"admin\" in roles", &[("roles", "list<string>")]);
        ok("attrs[\"k\"] == \"v\"", &[("attrs", "map<string>")]);
        ok("a.b == 1", &[("a", "map<int>")]);
        ok("has(a.b) && a.b > 1", &[("a", "map<int>")]);
        ok(
            "size(xs) > 0 && xs.size() < 10 && xs[0] == 1",
            &[("xs", "list<int>")],
        );
        ok("xs.all(x, x > 0)", &[("xs", "list<int>")]);
        ok("xs.exists_one(x, x == 3)", &[("xs", "list<int>")]);
        ok("xs.map(x, x * 2).exists(y, y > 3)", &[("xs", "list<int>")]);
        ok("xs.map(x, x > 1, x * 2)[0] == 4", &[("xs", "list<int>")]);
        ok("xs.filter(x, x > 1).size() == 2", &[("xs", "list<int>")]);
        ok(
            "m.exists(k, k.startsWith('a') && m[k] > 1)",
            &[("m", "map<int>")],
        );
        ok("m.all(k, m[k].all(v, v > 0))", &[("m", "map<list<int>>")]);
        ok("xs + [1, 2] == [1, 2, 3]", &[("xs", "list<int>")]);
        ok(
            "[] == xs && {} == m",
            &[("xs", "list<int>"), ("m", "map<int>")],
        );
        ok("{'a': 1, 'b': 2}['a'] == 1", &[]);
        ok("{1: 'x'}[1] == 'x'", &[]);
        ok("[1, 'a'].size() == 2", &[]);
        ok("size(m) == 1 && 'k' in m", &[("m", "map<bool>")]);
        ok(
            "ls.exists(l, l.exists(s, s == 'x'))",
            &[("ls", "list<list<string>>")],
        );
        ok("[1, 2].map(x, [x]).exists(l, l[0] == 2)", &[]);
    }

    #[test]
    fn accepts_strings_and_conversions() {
        let ps = [("s", "string"), ("b", "bytes"), ("n", "int"), ("u", "uint")];
        ok("size(s) > 3 && s.startsWith(\"a\")", &ps);
        ok(
            "s.contains('x') || s.endsWith('y') || s.matches('^a+$') || matches(s, 'b')",
            &ps,
        );
        ok("s + 'x' == 'ax' && b + b'x' == b'yx' && size(b) == 2", &ps);
        ok("int(s) == n && uint(n) == u && double(n) > 1.5", &ps);
        ok("string(n) == s && bytes(s) == b && bool('true')", &ps);
        ok("s < 'm' && b >= b'a'", &ps);
        ok("dyn(n) == s || type(n) == int", &ps);
    }

    #[test]
    fn accepts_numeric_rules() {
        let ps = [("i", "int"), ("u", "uint"), ("d", "double")];
        ok("i + 1 == 2 && u + 1u == 2u && d + 1.0 == 2.0", &ps);
        ok("i % 2 == 0 && u % 2u == 0u && -i < 0 && -d < 0.0", &ps);
        ok("i < u && u < d && d < i && i <= 1.5 && u > 0", &ps);
        ok("i * 2 / 3 - 1 >= 0", &ps);
        ok("(i > 0 ? i : -i) > 3", &ps);
    }

    #[test]
    fn accepts_any_typed_parameters() {
        ok("x.foo > 3", &[("x", "any")]);
        ok("x", &[("x", "any")]);
        ok(
            "x + 1 > 2 && x.y.z == 'a' && x[0] && x.startsWith('a')",
            &[("x", "any")],
        );
        ok("x.exists(e, e > 1) && has(x.f)", &[("x", "any")]);
        ok("x in [1, 2] && 'k' in x", &[("x", "any")]);
        ok("x.in_cidr('10.0.0.0/8')", &[("x", "any")]);
        ok("m.k.v == 1", &[("m", "map<any>")]);
        ok("dyn(1) == 'x' || dyn(xs)[0] == 1", &[("xs", "list<int>")]);
    }

    #[test]
    fn accepts_ipaddress_operations() {
        let ps = [("ip", "ipaddress"), ("other", "ipaddress")];
        ok("ip == other", &ps);
        ok("ip != ipaddress('10.0.0.1')", &ps);
        ok("ipaddress('192.168.1.1').in_cidr('192.168.0.0/16')", &ps);
        ok("[ip].exists(i, i.in_cidr('10.0.0.0/8'))", &ps);
    }

    #[test]
    fn accepts_boolean_logic() {
        let ps = [("a", "bool"), ("b", "bool")];
        ok("a", &ps);
        ok("!a || (b && !b)", &ps);
        ok("a ? b : !b", &ps);
        ok("true", &[]);
        ok("a == b && a != false", &ps);
        ok("a\n  &&\n  b", &ps);
    }

    #[test]
    fn comprehension_variable_shadows_parameter() {
        ok(
            "xs.exists(n, n == 'a') && n > 1",
            &[("xs", "list<string>"), ("n", "int")],
        );
    }

    // ---- rejected expressions ----

    #[test]
    fn rejects_unknown_identifier() {
        let errs = err_has(
            "amountt <= limit",
            &[("amount", "int"), ("limit", "int")],
            "unknown identifier `amountt` (parameters: `amount`, `limit`)",
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs.first().and_then(|e| e.offset), Some(0));
        err_has(
            "x",
            &[],
            "unknown identifier `x` (the caveat has no parameters)",
        );
        err_has("y.b == 1", &[("a", "map<int>")], "unknown identifier `y`");
        // The iteration variable is not visible outside its macro.
        err_has(
            "xs.exists(x, x > 1) && x > 2",
            &[("xs", "list<int>")],
            "unknown identifier `x`",
        );
    }

    #[test]
    fn rejects_bad_arithmetic() {
        let errs = err_has(
            "amount + \"x\" == 1",
            &[("amount", "int")],
            "operator `+` cannot apply to `int` and `string`",
        );
        assert_eq!(errs.first().and_then(|e| e.offset), Some(7));
        err_has(
            "i + 1.0 > 0.0",
            &[("i", "int")],
            "operator `+` cannot apply to `int` and `double`",
        );
        err_has(
            "i + 1u > 0u",
            &[("i", "int")],
            "operator `+` cannot apply to `int` and `uint`",
        );
        err_has(
            "-u < 0",
            &[("u", "uint")],
            "operator `-` cannot apply to `uint`",
        );
        err_has(
            "d % 2.0 == 0.0",
            &[("d", "double")],
            "operator `%` cannot apply to `double` and `double`",
        );
        err_has(
            "ip + 1 == ip",
            &[("ip", "ipaddress")],
            "operator `+` cannot apply to `ipaddress` and `int`",
        );
        err_has(
            "now + now > now",
            &[("now", "timestamp")],
            "operator `+` cannot apply to `timestamp` and `timestamp`",
        );
        err_has(
            "d - now > d",
            &[("d", "duration"), ("now", "timestamp")],
            "operator `-` cannot apply to `duration` and `timestamp`",
        );
        err_has(
            "[1] + ['a'] == []",
            &[],
            "operator `+` cannot apply to `list<int>` and `list<string>`",
        );
        err_has(
            "b && 1 > 0",
            &[("b", "int")],
            "operator `&&` cannot apply to `int` and `bool`",
        );
        err_has(
            "!s",
            &[("s", "string")],
            "operator `!` cannot apply to `string`",
        );
    }

    #[test]
    fn rejects_bad_comparisons() {
        err_has(
            "name > 3",
            &[("name", "string")],
            "operator `>` cannot apply to `string` and `int`",
        );
        err_has(
            "1 == 'a'",
            &[],
            "operator `==` cannot apply to `int` and `string`",
        );
        err_has(
            "1 == 1.0",
            &[],
            "operator `==` cannot apply to `int` and `double`",
        );
        err_has(
            "ip < ip",
            &[("ip", "ipaddress")],
            "operator `<` cannot apply to `ipaddress` and `ipaddress`",
        );
        err_has(
            "xs < xs",
            &[("xs", "list<int>")],
            "operator `<` cannot apply to `list<int>` and `list<int>`",
        );
        err_has(
            "n == null",
            &[("n", "int")],
            "operator `==` cannot apply to `int` and `null`",
        );
        err_has(
            "now < d",
            &[("now", "timestamp"), ("d", "duration")],
            "operator `<` cannot apply to `timestamp` and `duration`",
        );
        err_has(
            "ip == 'a'",
            &[("ip", "ipaddress")],
            "operator `==` cannot apply to `ipaddress` and `string`",
        );
    }

    #[test]
    fn rejects_bad_membership_and_indexing() {
        err_has(
            "1 in roles",
            &[("roles", "list<string>")],
            "operator `in` cannot apply to `int` and `list<string>`",
        );
        err_has(
            "'a' in s",
            &[("s", "string")],
            "operator `in` cannot apply to `string` and `string`",
        );
        err_has(
            "1 in tags",
            &[("tags", "map<string>")],
            "operator `in` cannot apply to `int` and `map<string>`",
        );
        err_has(
            "tags[1] == 'x'",
            &[("tags", "map<string>")],
            "cannot index `map<string>` with `int`",
        );
        err_has(
            "xs['a'] == 1",
            &[("xs", "list<int>")],
            "cannot index `list<int>` with `string`",
        );
        err_has(
            "n[0] == 1",
            &[("n", "int")],
            "cannot index `int` with `int`",
        );
        err_has(
            "s.foo == 'x'",
            &[("s", "string")],
            "cannot select field `foo` on `string`",
        );
        err_has(
            "xs.foo == 1",
            &[("xs", "list<int>")],
            "cannot select field `foo` on `list<int>`",
        );
        err_has(
            "has(s.foo)",
            &[("s", "string")],
            "`has()` cannot test field `foo` on `string`",
        );
        err_has(
            "a.b == 'x'",
            &[("a", "map<int>")],
            "operator `==` cannot apply to `int` and `string`",
        );
    }

    #[test]
    fn rejects_unknown_functions_and_wrong_arity() {
        err_has("foo(1)", &[], "unknown function `foo`");
        err_has("s.foo()", &[("s", "string")], "unknown method `foo`");
        err_has(
            "size(s, s) > 1",
            &[("s", "string")],
            "function `size` expects 1 argument, found 2",
        );
        err_has(
            "s.contains('a', 'b')",
            &[("s", "string")],
            "method `contains` expects 1 argument, found 2",
        );
        err_has(
            "ip.in_cidr()",
            &[("ip", "ipaddress")],
            "method `in_cidr` expects 1 argument, found 0",
        );
        err_has(
            "contains(s, 'a')",
            &[("s", "string")],
            "`contains` is a method",
        );
        err_has("s.int() > 1", &[("s", "string")], "`int` is not a method");
        err_has(
            "in_cidr(ip, 'x')",
            &[("ip", "ipaddress")],
            "`in_cidr` is a method",
        );
        err_has(
            "s.startsWith(1)",
            &[("s", "string")],
            "method `startsWith` cannot apply to `string` with arguments (`int`)",
        );
        err_has(
            "s.in_cidr('10.0.0.0/8')",
            &[("s", "string")],
            "method `in_cidr` cannot apply to `string` with arguments (`string`)",
        );
        err_has(
            "size(1) > 0",
            &[],
            "function `size` cannot apply to arguments (`int`)",
        );
        err_has(
            "n.size() > 0",
            &[("n", "int")],
            "method `size` cannot apply to `int`",
        );
        err_has(
            "ipaddress(1).in_cidr('x')",
            &[],
            "function `ipaddress` cannot apply to arguments (`int`)",
        );
        err_has(
            "d.getFullYear() > 1",
            &[("d", "duration")],
            "method `getFullYear` cannot apply to `duration`",
        );
        err_has(
            "duration(1) > d",
            &[("d", "duration")],
            "function `duration` cannot apply to arguments (`int`)",
        );
    }

    #[test]
    fn rejects_non_bool_results() {
        err_has(
            "amount",
            &[("amount", "int")],
            "caveat expression must be `bool`, found `int`",
        );
        err_has(
            "s + 'x'",
            &[("s", "string")],
            "caveat expression must be `bool`, found `string`",
        );
        err_has(
            "xs.map(x, x > 1)",
            &[("xs", "list<int>")],
            "caveat expression must be `bool`, found `list<bool>`",
        );
        err_has(
            "tags",
            &[("tags", "map<list<int>>")],
            "caveat expression must be `bool`, found `map<list<int>>`",
        );
        err_has(
            "ip",
            &[("ip", "ipaddress")],
            "caveat expression must be `bool`, found `ipaddress`",
        );
        err_has(
            "null",
            &[],
            "caveat expression must be `bool`, found `null`",
        );
        err_has(
            "b ? 1 : 2",
            &[("b", "bool")],
            "caveat expression must be `bool`, found `int`",
        );
    }

    #[test]
    fn rejects_bad_ternaries_and_macros() {
        err_has(
            "n ? true : false",
            &[("n", "int")],
            "the condition of `?:` must be `bool`, found `int`",
        );
        err_has(
            "(b ? 1 : 'a') == 1",
            &[("b", "bool")],
            "the branches of `?:` have different types: `int` and `string`",
        );
        err_has(
            "xs.all(x, x + 1)",
            &[("xs", "list<int>")],
            "macro predicate must be `bool`, found `int`",
        );
        err_has(
            "xs.exists(x, x)",
            &[("xs", "list<int>")],
            "macro predicate must be `bool`, found `int`",
        );
        err_has(
            "xs.filter(x, x).size() > 0",
            &[("xs", "list<int>")],
            "macro predicate must be `bool`, found `int`",
        );
        let errs = err_has(
            "xs.exists_one(x, 'a')",
            &[("xs", "list<int>")],
            "macro predicate must be `bool`, found `string`",
        );
        // Points at the predicate itself.
        assert_eq!(errs.first().and_then(|e| e.offset), Some(17));
        err_has(
            "xs.map(x, x, x * 2).size() > 0",
            &[("xs", "list<int>")],
            "macro predicate must be `bool`, found `int`",
        );
        err_has(
            "n.exists(x, x > 1)",
            &[("n", "int")],
            "cannot iterate over `int`",
        );
        err_has(
            "s.all(c, c == 'a')",
            &[("s", "string")],
            "cannot iterate over `string`",
        );
        err_has(
            "m.exists(k, k > 1)",
            &[("m", "map<int>")],
            "operator `>` cannot apply to `string` and `int`",
        );
        err_has(
            "Foo{a: 1}",
            &[],
            "message construction `Foo{...}` is not supported",
        );
        err_has("{[1]: 2}.size() > 0", &[], "map key must be");
    }

    #[test]
    fn reports_every_error_without_cascades() {
        let errs = err(
            "a + 'x' == 1 && b.nope() && c",
            &[("a", "int"), ("b", "string")],
        );
        let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("operator `+`")));
        assert!(messages.iter().any(|m| m.contains("unknown method `nope`")));
        assert!(messages
            .iter()
            .any(|m| m.contains("unknown identifier `c`")));
        // An unknown identifier is reported once, not again by every operator
        // around it, nor by the result check.
        let errs = err("(x + 1) * 2 > 3", &[]);
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn reports_parse_errors_with_offsets() {
        let errs = err_has("amount <= ", &[("amount", "int")], "syntax error");
        assert_eq!(errs.first().and_then(|e| e.offset), Some(10));
        let errs = err_has("a &&\n  )", &[("a", "bool")], "syntax error");
        assert_eq!(errs.first().and_then(|e| e.offset), Some(7));
        // Column counts characters; the offset is in bytes.
        let errs = err_has("'é' == )", &[], "syntax error");
        assert_eq!(errs.first().and_then(|e| e.offset), Some(8));
        err_has(
            "xs.exists(1, true)",
            &[("xs", "list<int>")],
            "argument must be a simple name",
        );
        err_has("has(x)", &[("x", "any")], "invalid argument to has() macro");
        err_has("", &[], "caveat expression is empty");
        err_has("   ", &[], "caveat expression is empty");
    }

    #[test]
    fn type_error_offsets_point_at_the_node() {
        let src = "a > 1 &&\n  s.startsWith(2)";
        let errs = err(src, &[("a", "int"), ("s", "string")]);
        let offset = errs.first().and_then(|e| e.offset);
        assert!(
            matches!(offset, Some(o) if (11..src.len()).contains(&o)),
            "{errs:?}"
        );
    }

    #[test]
    fn bounds_nesting_depth() {
        let deep_parens = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
        err_has(&deep_parens, &[], "nested too deeply");
        let deep_lists = format!("{}1{}", "[".repeat(3000), "]".repeat(3000));
        err(&deep_lists, &[]);
        let long_chain = format!("{} > 0", vec!["a"; 3000].join(" + "));
        err_has(&long_chain, &[("a", "int")], "nested too deeply");
        let selects = format!("x{} == 1", ".f".repeat(3000));
        err_has(&selects, &[("x", "any")], "nested too deeply");
        let calls = format!("{}1{}", "size(".repeat(500), ")".repeat(500));
        err(&calls, &[]);
        // Moderate nesting is fine.
        let moderate = format!("{}true{}", "(".repeat(40), ")".repeat(40));
        ok(&moderate, &[]);
        let ands = vec!["a"; 2000].join(" && ");
        ok(&ands, &[("a", "bool")]);
        let too_long = "a".repeat(MAX_EXPRESSION_BYTES + 1);
        err_has(&too_long, &[("a", "bool")], "too long");
    }

    #[test]
    fn no_panic_on_garbage() {
        let samples = [
            "",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "{{",
            "a.",
            ".a",
            "..",
            "?:",
            "? :",
            "a ?",
            "1 ? 2",
            "'",
            "\"",
            "'''",
            "r'",
            "b'\\x'",
            "'\\u12'",
            "1e",
            "0x",
            "18446744073709551616u",
            "9223372036854775808",
            "-9223372036854775809",
            "1.7976931348623157e309",
            "a[",
            "a[]",
            "f(,)",
            "f(1,)",
            "x.all()",
            "x.all(y)",
            "x.map(a, b, c, d)",
            "has()",
            "has(a, b)",
            "has(a.b.c)",
            "a.?b",
            "a[?0]",
            "`a`",
            "a.`b`",
            "\u{0}",
            "\u{feff}",
            "é",
            "💥 && ✓",
            "{1:2:3}",
            "[1,,2]",
            "!",
            "-",
            "--",
            "in",
            "a in",
            "null.x",
            "true.false",
            "1.2.3",
            "a.b(",
            "int",
            "type",
            "dyn",
            "list",
            "@in(a, b)",
            "_+_(1, 2)",
            "@result",
            "\\",
            "/* */",
            "// x",
            "a // x\n && b",
            "Foo{",
            "Foo{a:}",
            "google.protobuf.Duration{}",
        ];
        for s in samples {
            let result = check_caveat_expression(s, &p(&[("a", "any"), ("x", "list<int>")]));
            if let Err(errs) = result {
                assert!(!errs.is_empty());
                assert!(
                    errs.iter().all(|e| !e.message.contains("internal error")),
                    "{s:?}: {errs:?}"
                );
            }
        }
    }

    #[test]
    fn no_panic_on_random_token_soup() {
        // A small deterministic PRNG so the test needs no extra dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let tokens = [
            "a",
            "b",
            "x",
            "s",
            "ip",
            "1",
            "2u",
            "3.0",
            "'s'",
            "b'y'",
            "true",
            "null",
            "+",
            "-",
            "*",
            "/",
            "%",
            "==",
            "!=",
            "<",
            ">=",
            "&&",
            "||",
            "!",
            "?",
            ":",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ",",
            ".",
            "in",
            "size",
            "has",
            "exists",
            "all",
            "map",
            "filter",
            "exists_one",
            "in_cidr",
            "timestamp",
            "duration",
            "int",
            "dyn",
            "foo",
            " ",
            "\n",
        ];
        let params = p(&[
            ("a", "int"),
            ("b", "bool"),
            ("x", "list<map<string>>"),
            ("s", "string"),
            ("ip", "ipaddress"),
        ]);
        for _ in 0..300 {
            let len = (next() % 24) as usize;
            let mut src = String::new();
            for _ in 0..len {
                let i = (next() % tokens.len() as u64) as usize;
                src.push_str(tokens.get(i).copied().unwrap_or(""));
            }
            let _ = check_caveat_expression(&src, &params);
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn never_panics_on_arbitrary_strings(s in "\\PC{0,64}") {
                let params = p(&[("a", "any"), ("n", "int"), ("m", "map<list<int>>")]);
                let _ = check_caveat_expression(&s, &params);
            }

            #[test]
            fn never_panics_on_cel_like_strings(
                s in "[a-z0-9_ .,()\\[\\]{}'\"+*/%<>=!&|?:-]{0,48}"
            ) {
                let params = p(&[("a", "any"), ("n", "int"), ("m", "map<list<int>>")]);
                let _ = check_caveat_expression(&s, &params);
            }

            #[test]
            fn errors_carry_in_range_offsets(s in "[a-z0-9 .()'+<=&]{0,32}") {
                let params = p(&[("a", "int"), ("n", "int")]);
                if let Err(errs) = check_caveat_expression(&s, &params) {
                    prop_assert!(!errs.is_empty());
                    for e in errs {
                        if let Some(o) = e.offset {
                            prop_assert!(o <= s.len(), "offset {} out of range for {:?}", o, s);
                        }
                    }
                }
            }
        }
    }
}
