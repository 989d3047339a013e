//! Evaluation of caveats: CEL expressions over a relationship's stored context
//! merged with the context of a request, as SpiceDB evaluates them.
//!
//! A caveat is compiled once per schema version ([`CompiledCaveat::compile`])
//! and evaluated many times ([`CompiledCaveat::evaluate`]). Evaluation is
//! three-valued: the expression is true ([`Outcome::Allowed`]), false
//! ([`Outcome::Denied`]), or cannot be decided because parameters it needs are
//! missing from the context ([`Outcome::Conditional`], naming them).
//!
//! Partial evaluation follows cel-go's rules for unknown values, which SpiceDB
//! relies on: missing parameters are unknown; `&&`, `||`, `!` and `?:` are
//! evaluated here, over the expression tree, so that `unknown || true` is true,
//! `unknown && false` is false and an unknown beats an error on the other side;
//! every other sub-expression is evaluated by the `cel` interpreter, and
//! becomes unknown when it reads a missing parameter. The missing parameters
//! reported are the ones the undecided parts of the expression (its residual)
//! refer to.
//!
//! JSON context values are converted by the parameter's declared type, as
//! SpiceDB does: `int` from an integral number, `uint` from a non-negative
//! one, `bytes` from base64, `duration` from a Go duration string (`"1h30m"`),
//! `timestamp` from RFC 3339, `ipaddress` from an IPv4 or IPv6 address string
//! (with the `in_cidr` method), lists and maps element by element.
//!
//! Limits: the merged context is at most [`MAX_CONTEXT_BYTES`] serialized; the
//! expression tree at most [`MAX_AST_DEPTH`] deep (the parser runs on a
//! dedicated thread with a large stack, and evaluation recursion is bounded by
//! the tree depth); and each evaluation has a work budget, charged for every
//! read of a context parameter by the size of the value read, so that nested
//! comprehensions over large client-supplied lists cannot run away.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use cel::common::ast::{EntryExpr, Expr};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::extractors::This;
use cel::objects::{Key, Map, Opaque};
use cel::{Context, Env, ExecutionError, IdedExpr, Program, Value};
use serde_json::Value as Json;

use crate::engine::outcome::Outcome;
use crate::schema::ir::{Caveat, CaveatType};

/// Largest merged context accepted, serialized as JSON, in bytes.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// Longest expression accepted, in bytes (as the schema compiler's bound).
pub const MAX_EXPRESSION_BYTES: usize = 32 * 1024;

/// Deepest expression tree accepted. The schema's type checker already bounds
/// nesting (to 128 levels of its own walk, over the same tree); evaluation
/// recurses once per level, so this bounds the evaluator's stack use.
pub const MAX_AST_DEPTH: usize = 160;

/// Work units one evaluation may spend. Every read of a context parameter
/// costs 1 plus the size of the value read (elements, and bytes / 16 of
/// strings), since the interpreter may copy it.
pub const MAX_EVALUATION_COST: u64 = 200_000;

/// Deepest nesting of lists and maps converted for an `any` parameter.
const MAX_ANY_DEPTH: usize = 64;

/// Stack of the thread the parser runs on (only touched pages are committed).
const COMPILE_THREAD_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Deepest tree evaluated on the caller's thread. The interpreter needs about
/// 1.5 KiB of stack per level in release builds and 40 KiB in debug builds;
/// deeper trees (rare: typical caveats are under 10 levels) are evaluated on
/// a dedicated thread with [`EVAL_THREAD_STACK_BYTES`] of stack.
const INLINE_EVAL_DEPTH: usize = if cfg!(debug_assertions) { 8 } else { 32 };

/// Stack of the thread deep trees are evaluated on.
const EVAL_THREAD_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Longest error message passed on from the interpreter, in bytes (its
/// messages may print whole values).
const MAX_MESSAGE_BYTES: usize = 512;

/// The runtime type name of `ipaddress` values.
const IPADDRESS_TYPE: &str = "ipaddress";

/// Why a caveat could not be evaluated (these become INVALID_ARGUMENT for the
/// caller; never ALLOWED).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CaveatError {
    #[error("caveat `{caveat}` does not compile: {message}")]
    Compile { caveat: String, message: String },
    #[error("caveat `{caveat}`: context parameter `{param}` must be {expected}, found {found}")]
    ContextType {
        caveat: String,
        param: String,
        expected: String,
        found: String,
    },
    #[error("caveat `{caveat}`: context is too large ({size} bytes, limit {limit})")]
    ContextTooLarge {
        caveat: String,
        size: usize,
        limit: usize,
    },
    #[error("caveat `{caveat}` failed to evaluate: {message}")]
    Evaluation { caveat: String, message: String },
}

/// A caveat compiled once per schema version, ready to evaluate many times.
/// Send + Sync; cheap to clone.
#[derive(Clone)]
pub struct CompiledCaveat {
    name: String,
    params: Vec<(String, CaveatType)>,
    program: Arc<Program>,
    /// Levels of the expression tree.
    depth: usize,
}

impl std::fmt::Debug for CompiledCaveat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledCaveat")
            .field("name", &self.name)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// The environment every caveat compiles and runs in: CEL's standard library
/// (the `ipaddress` extension is added per evaluation, to the context).
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

impl CompiledCaveat {
    /// Compiles the caveat's CEL expression.
    ///
    /// # Errors
    /// [`CaveatError::Compile`] when the expression does not compile (the
    /// schema compiler normally prevents this), is too long or too deeply
    /// nested.
    pub fn compile(caveat: &Caveat) -> Result<CompiledCaveat, CaveatError> {
        let name = caveat.name.to_string();
        let compile_error = |message: String| CaveatError::Compile {
            caveat: name.clone(),
            message,
        };
        let expression = caveat.expression.as_str();
        if expression.len() > MAX_EXPRESSION_BYTES {
            return Err(compile_error(format!(
                "the expression is too long ({} bytes, limit {MAX_EXPRESSION_BYTES})",
                expression.len()
            )));
        }
        if expression.trim().is_empty() {
            return Err(compile_error("the expression is empty".to_owned()));
        }
        let source = expression.to_owned();
        // The parser is recursive and stack-hungry, and so are the drop and
        // the depth walk of a deep tree: all happen on a thread with a large
        // stack. A program that comes back is at most MAX_AST_DEPTH deep.
        let spawned = std::thread::Builder::new()
            .name("caveat-compile".to_owned())
            .stack_size(COMPILE_THREAD_STACK_BYTES)
            .spawn(move || compile_on_this_thread(&source));
        let (program, depth) = match spawned {
            Ok(handle) => match handle.join() {
                Ok(result) => result.map_err(compile_error)?,
                Err(_) => return Err(compile_error("internal error: the parser panicked".into())),
            },
            Err(err) => {
                return Err(compile_error(format!(
                    "internal error: could not start the parser thread: {err}"
                )))
            }
        };
        Ok(CompiledCaveat {
            name,
            params: caveat
                .params
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
            program: Arc::new(program),
            depth,
        })
    }

    /// The caveat's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Evaluates with the relationship's stored context merged over the
    /// request context (stored values win).
    ///
    /// # Errors
    /// [`CaveatError::ContextType`] when a supplied value does not fit its
    /// declared parameter type (names the parameter, the expected and the
    /// found type); [`CaveatError::ContextTooLarge`] when the merged context
    /// exceeds limits; [`CaveatError::Evaluation`] for runtime failures (e.g.
    /// division by zero, bad cidr string, evaluation budget exceeded). Never
    /// panics.
    pub fn evaluate(
        &self,
        stored: Option<&serde_json::Map<String, Json>>,
        request: &serde_json::Map<String, Json>,
    ) -> Result<Outcome, CaveatError> {
        let guarded = || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.evaluate_here(stored, request)
            }))
            .unwrap_or_else(|_| {
                Err(self.evaluation_error("internal error: the evaluator panicked".to_owned()))
            })
        };
        if self.depth <= INLINE_EVAL_DEPTH {
            return guarded();
        }
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("caveat-eval".to_owned())
                .stack_size(EVAL_THREAD_STACK_BYTES)
                .spawn_scoped(scope, guarded);
            match spawned {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Err(self.evaluation_error("internal error: the evaluator panicked".to_owned()))
                }),
                Err(err) => Err(self.evaluation_error(format!(
                    "internal error: could not start the evaluator thread: {err}"
                ))),
            }
        })
    }

    /// Checks a context bound at write time: every value given for a
    /// parameter must fit its declared type, and the context must be within
    /// the size limit. Keys that are not parameters are ignored, as in
    /// evaluation.
    ///
    /// # Errors
    /// [`CaveatError::ContextType`] or [`CaveatError::ContextTooLarge`].
    pub fn check_context(
        &self,
        context: &serde_json::Map<String, Json>,
    ) -> Result<(), CaveatError> {
        let size = merged_size(Some(context), &serde_json::Map::new(), MAX_CONTEXT_BYTES);
        if size > MAX_CONTEXT_BYTES {
            return Err(CaveatError::ContextTooLarge {
                caveat: self.name.clone(),
                size,
                limit: MAX_CONTEXT_BYTES,
            });
        }
        for (param, ty) in &self.params {
            if let Some(json) = context.get(param.as_str()) {
                convert(json, ty, 0).map_err(|e| CaveatError::ContextType {
                    caveat: self.name.clone(),
                    param: param.clone(),
                    expected: ty.to_string(),
                    found: e.describe(param),
                })?;
            }
        }
        Ok(())
    }

    /// [`CompiledCaveat::evaluate`] on this thread.
    fn evaluate_here(
        &self,
        stored: Option<&serde_json::Map<String, Json>>,
        request: &serde_json::Map<String, Json>,
    ) -> Result<Outcome, CaveatError> {
        let size = merged_size(stored, request, MAX_CONTEXT_BYTES);
        if size > MAX_CONTEXT_BYTES {
            return Err(CaveatError::ContextTooLarge {
                caveat: self.name.clone(),
                size,
                limit: MAX_CONTEXT_BYTES,
            });
        }

        let mut bindings = Bindings::default();
        let mut missing = BTreeSet::new();
        for (param, ty) in &self.params {
            let supplied = stored
                .and_then(|s| s.get(param.as_str()))
                .or_else(|| request.get(param.as_str()));
            let Some(json) = supplied else {
                missing.insert(param.clone());
                continue;
            };
            let value = convert(json, ty, 0).map_err(|e| CaveatError::ContextType {
                caveat: self.name.clone(),
                param: param.clone(),
                expected: ty.to_string(),
                found: e.describe(param),
            })?;
            let weight = 1 + value_weight(&value);
            let val: Box<dyn Val> = value.try_into().map_err(|e: ExecutionError| {
                self.evaluation_error(format!(
                    "internal error: cannot bind parameter `{param}`: {e}"
                ))
            })?;
            bindings.names.push(param.clone());
            bindings.values.push(val);
            bindings.weights.push(weight);
        }

        let mut context = Context::with_env(Arc::clone(env()));
        if context.add_function("in_cidr", in_cidr).is_err()
            || context.add_function("ipaddress", ipaddress).is_err()
        {
            return Err(self.evaluation_error(
                "internal error: cannot register the ipaddress functions".to_owned(),
            ));
        }
        context.set_variable_resolver(&bindings);

        let result = eval_partial(self.program.expression(), &context, &missing);
        if bindings.exceeded.load(Ordering::Relaxed) {
            return Err(self.evaluation_error(format!(
                "evaluation budget exceeded (limit {MAX_EVALUATION_COST} units)"
            )));
        }
        match result {
            Ok(Partial::Known(Value::Bool(true))) => Ok(Outcome::Allowed),
            Ok(Partial::Known(Value::Bool(false))) => Ok(Outcome::Denied),
            Ok(Partial::Known(other)) => Err(self.evaluation_error(format!(
                "the expression evaluated to {}, not a bool",
                other.type_of()
            ))),
            Ok(Partial::Unknown(names)) if !names.is_empty() => {
                Ok(Outcome::Conditional { missing: names })
            }
            // Unreachable in practice: an unknown always names a parameter.
            Ok(Partial::Unknown(_)) => Ok(Outcome::Conditional { missing }),
            Err(err) => Err(self.evaluation_error(truncate(err.to_string()))),
        }
    }

    fn evaluation_error(&self, message: String) -> CaveatError {
        CaveatError::Evaluation {
            caveat: self.name.clone(),
            message,
        }
    }
}

/// Parses `source` and checks the depth of its tree (on the big-stack thread).
fn compile_on_this_thread(source: &str) -> Result<(Program, usize), String> {
    let program = env().compile(source).map_err(|errs| {
        if errs
            .errors
            .iter()
            .any(|e| e.msg.contains("Recursion limit"))
        {
            return "the expression is nested too deeply for the parser".to_owned();
        }
        let mut messages: Vec<String> = errs
            .errors
            .iter()
            .take(5)
            .map(|e| {
                let msg = if e.msg == "UNKNOWN" {
                    "syntax error"
                } else {
                    e.msg.as_str()
                };
                format!("{msg} at {}:{}", e.pos.0, e.pos.1)
            })
            .collect();
        messages.dedup();
        if messages.is_empty() {
            "syntax error".to_owned()
        } else {
            truncate(messages.join("; "))
        }
    })?;
    let depth = tree_depth(program.expression(), MAX_AST_DEPTH);
    if depth > MAX_AST_DEPTH {
        return Err(format!(
            "the expression is nested too deeply (more than {MAX_AST_DEPTH} levels)"
        ));
    }
    Ok((program, depth))
}

/// The direct sub-expressions of `expr`.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(call.args.iter())
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => entries(&map.entries),
        Expr::Struct(s) => entries(&s.entries),
        Expr::Select(select) => vec![&*select.operand],
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entries(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&IdedExpr> {
    entries
        .iter()
        .flat_map(|e| match &e.expr {
            EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })
        .collect()
}

/// The number of levels of the tree under `root`, or `limit + 1` if more
/// (iterative).
fn tree_depth(root: &IdedExpr, limit: usize) -> usize {
    let mut max = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((expr, depth)) = stack.pop() {
        if depth > limit {
            return depth;
        }
        max = max.max(depth);
        stack.extend(children(expr).into_iter().map(|c| (c, depth + 1)));
    }
    max
}

/// The identifiers under `root` that name one of `missing`.
fn missing_in(root: &IdedExpr, missing: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(expr) = stack.pop() {
        if let Expr::Ident(name) = &expr.expr {
            if missing.contains(name) {
                found.insert(name.clone());
            }
        }
        stack.extend(children(expr));
    }
    found
}

/// The value of a sub-expression under partial evaluation.
enum Partial {
    Known(Value),
    /// Depends on missing parameters (named).
    Unknown(BTreeSet<String>),
}

/// Evaluates `expr`, treating the `missing` parameters as unknown, with
/// cel-go's rules for unknowns in `&&`, `||`, `!` and `?:`.
fn eval_partial(
    expr: &IdedExpr,
    ctx: &Context<'_, '_>,
    missing: &BTreeSet<String>,
) -> Result<Partial, ExecutionError> {
    if let Expr::Call(call) = &expr.expr {
        if call.target.is_none() {
            match (call.func_name.as_str(), call.args.as_slice()) {
                ("_||_", [a, b]) => return eval_logical(a, b, true, ctx, missing),
                ("_&&_", [a, b]) => return eval_logical(a, b, false, ctx, missing),
                ("!_", [a]) => {
                    return match eval_partial(a, ctx, missing)? {
                        Partial::Known(Value::Bool(v)) => Ok(Partial::Known(Value::Bool(!v))),
                        Partial::Known(other) => Err(ExecutionError::no_such_overload(
                            "!_",
                            vec![other.type_of().to_string()],
                        )),
                        unknown @ Partial::Unknown(_) => Ok(unknown),
                    };
                }
                ("_?_:_", [cond, then, otherwise]) => {
                    return match eval_partial(cond, ctx, missing)? {
                        Partial::Known(Value::Bool(true)) => eval_partial(then, ctx, missing),
                        Partial::Known(Value::Bool(false)) => eval_partial(otherwise, ctx, missing),
                        Partial::Known(other) => Err(ExecutionError::no_such_overload(
                            "_?_:_",
                            vec![other.type_of().to_string()],
                        )),
                        Partial::Unknown(mut names) => {
                            // The residual keeps both branches.
                            names.extend(missing_in(then, missing));
                            names.extend(missing_in(otherwise, missing));
                            Ok(Partial::Unknown(names))
                        }
                    };
                }
                _ => {}
            }
        }
    }
    match Value::resolve(expr, ctx) {
        Ok(value) => Ok(Partial::Known(value)),
        Err(ExecutionError::UndeclaredReference(name)) if missing.contains(name.as_str()) => {
            let mut names = missing_in(expr, missing);
            names.insert(name.to_string());
            Ok(Partial::Unknown(names))
        }
        Err(err) => Err(err),
    }
}

/// `a || b` (`is_or`) or `a && b`: the absorbing value (true for `||`) wins
/// over unknowns and errors, an unknown wins over errors, else errors
/// propagate left first.
fn eval_logical(
    a: &IdedExpr,
    b: &IdedExpr,
    is_or: bool,
    ctx: &Context<'_, '_>,
    missing: &BTreeSet<String>,
) -> Result<Partial, ExecutionError> {
    let absorbing = is_or;
    let left = eval_partial(a, ctx, missing);
    if matches!(left, Ok(Partial::Known(Value::Bool(v))) if v == absorbing) {
        return Ok(Partial::Known(Value::Bool(absorbing)));
    }
    let right = eval_partial(b, ctx, missing);
    if matches!(right, Ok(Partial::Known(Value::Bool(v))) if v == absorbing) {
        return Ok(Partial::Known(Value::Bool(absorbing)));
    }
    let name = if is_or { "_||_" } else { "_&&_" };
    match (left, right) {
        (Ok(Partial::Unknown(mut x)), Ok(Partial::Unknown(y))) => {
            x.extend(y);
            Ok(Partial::Unknown(x))
        }
        (Ok(Partial::Unknown(x)), _) | (_, Ok(Partial::Unknown(x))) => Ok(Partial::Unknown(x)),
        (Err(e), _) | (_, Err(e)) => Err(e),
        // Both known, neither the absorbing value: the other bool, or a type
        // error.
        (Ok(Partial::Known(Value::Bool(x))), Ok(Partial::Known(Value::Bool(_)))) => {
            Ok(Partial::Known(Value::Bool(x)))
        }
        (Ok(Partial::Known(x)), Ok(Partial::Known(y))) => Err(ExecutionError::no_such_overload(
            name,
            vec![x.type_of().to_string(), y.type_of().to_string()],
        )),
    }
}

/// The parameters bound for one evaluation, served to the interpreter by
/// reference, charging the work budget on every read.
#[derive(Default)]
struct Bindings {
    names: Vec<String>,
    values: Vec<Box<dyn Val>>,
    weights: Vec<u64>,
    spent: AtomicU64,
    exceeded: AtomicBool,
}

impl VariableResolver for Bindings {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let index = self.names.iter().position(|n| n == variable)?;
        let weight = self.weights.get(index).copied().unwrap_or(1);
        let spent = self
            .spent
            .fetch_add(weight, Ordering::Relaxed)
            .saturating_add(weight);
        if spent > MAX_EVALUATION_COST {
            // Failing the read stops the evaluation; `evaluate` reports why.
            self.exceeded.store(true, Ordering::Relaxed);
            return None;
        }
        self.values.get(index).map(|v| CowVal::Borrowed(v.as_ref()))
    }
}

/// The work a read of `value` may cost: its elements, and its bytes / 16.
fn value_weight(value: &Value) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(1);
        match v {
            Value::List(items) => stack.extend(items.iter()),
            Value::Map(map) => {
                for (k, item) in map.map.iter() {
                    if let Key::String(s) = k {
                        total = total.saturating_add(s.len() as u64 / 16);
                    }
                    stack.push(item);
                }
            }
            Value::String(s) => total = total.saturating_add(s.len() as u64 / 16),
            Value::Bytes(b) => total = total.saturating_add(b.len() as u64 / 16),
            _ => {}
        }
    }
    total
}

/// The serialized size of `stored` merged over `request`, counted up to just
/// past `limit` (without recursion, so any nesting is safe).
fn merged_size(
    stored: Option<&serde_json::Map<String, Json>>,
    request: &serde_json::Map<String, Json>,
    limit: usize,
) -> usize {
    let mut size = 2usize; // {}
    let mut entries = 0usize;
    let mut stack: Vec<&Json> = Vec::new();
    let stored_entries = stored.into_iter().flat_map(|s| s.iter());
    let request_entries = request
        .iter()
        .filter(|(k, _)| !stored.is_some_and(|s| s.contains_key(k.as_str())));
    for (key, value) in stored_entries.chain(request_entries) {
        size = size.saturating_add(string_size(key) + 1);
        entries += 1;
        stack.push(value);
        while let Some(v) = stack.pop() {
            let own = match v {
                Json::Null => 4,
                Json::Bool(true) => 4,
                Json::Bool(false) => 5,
                Json::Number(n) => n.to_string().len(),
                Json::String(s) => string_size(s),
                Json::Array(items) => {
                    stack.extend(items.iter());
                    2 + items.len().saturating_sub(1)
                }
                Json::Object(map) => {
                    for (k, item) in map {
                        size = size.saturating_add(string_size(k) + 1);
                        stack.push(item);
                    }
                    2 + map.len().saturating_sub(1)
                }
            };
            size = size.saturating_add(own);
            if size > limit {
                return size;
            }
        }
    }
    size.saturating_add(entries.saturating_sub(1))
}

/// The length of `s` as a JSON string literal.
fn string_size(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// Why a JSON value does not fit a type: where in the value (a path such as
/// `[1]` or `["k"]`, empty for the value itself) and what was found.
struct ConvertError {
    path: Vec<String>,
    found: String,
}

impl ConvertError {
    fn new(found: impl Into<String>) -> Self {
        ConvertError {
            path: Vec::new(),
            found: found.into(),
        }
    }

    fn at(mut self, step: String) -> Self {
        self.path.push(step);
        self
    }

    fn describe(&self, param: &str) -> String {
        if self.path.is_empty() {
            self.found.clone()
        } else {
            let path: String = self.path.iter().rev().map(String::as_str).collect();
            format!("{} at `{param}{path}`", self.found)
        }
    }
}

/// The JSON type of `v`, for messages.
fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_i64() || n.is_u64() => "int",
        Json::Number(_) => "double",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "map",
    }
}

/// `s` quoted for a message, shortened.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == 64 {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// Converts a JSON context value to a CEL value of the declared type.
fn convert(json: &Json, ty: &CaveatType, depth: usize) -> Result<Value, ConvertError> {
    let wrong = || ConvertError::new(json_kind(json));
    match ty {
        CaveatType::Any => convert_any(json, depth),
        CaveatType::Int => match json {
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Value::Int(i))
                } else if n.is_u64() {
                    Err(ConvertError::new(format!("{n}, out of range for int")))
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    // -2^63 <= f < 2^63 and integral.
                    if f.fract() == 0.0
                        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                    {
                        Ok(Value::Int(f as i64))
                    } else {
                        Err(ConvertError::new(format!("double {n}")))
                    }
                }
            }
            _ => Err(wrong()),
        },
        CaveatType::Uint => match json {
            Json::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Ok(Value::UInt(u))
                } else if n.is_i64() {
                    Err(ConvertError::new(format!("negative int {n}")))
                } else {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    if f.fract() == 0.0 && (0.0..1.844_674_407_370_955_2e19).contains(&f) {
                        Ok(Value::UInt(f as u64))
                    } else {
                        Err(ConvertError::new(format!("double {n}")))
                    }
                }
            }
            _ => Err(wrong()),
        },
        CaveatType::Double => match json {
            Json::Number(n) => n.as_f64().map(Value::Float).ok_or_else(wrong),
            _ => Err(wrong()),
        },
        CaveatType::Bool => match json {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            _ => Err(wrong()),
        },
        CaveatType::String => match json {
            Json::String(s) => Ok(Value::String(Arc::new(s.clone()))),
            _ => Err(wrong()),
        },
        CaveatType::Bytes => match json {
            Json::String(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(|b| Value::Bytes(Arc::new(b)))
                .map_err(|_| ConvertError::new(format!("string {} (not base64)", quoted(s)))),
            _ => Err(wrong()),
        },
        CaveatType::Duration => match json {
            Json::String(s) => parse_go_duration(s)
                .map(Value::Duration)
                .map_err(|why| ConvertError::new(format!("string {} ({why})", quoted(s)))),
            _ => Err(wrong()),
        },
        CaveatType::Timestamp => match json {
            Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(Value::Timestamp)
                .map_err(|_| {
                    ConvertError::new(format!("string {} (not an RFC 3339 timestamp)", quoted(s)))
                }),
            _ => Err(wrong()),
        },
        CaveatType::IpAddress => match json {
            Json::String(s) => s
                .parse::<IpAddr>()
                .map(|ip| Value::Opaque(Arc::new(IpAddress(ip))))
                .map_err(|_| {
                    ConvertError::new(format!("string {} (not an IP address)", quoted(s)))
                }),
            _ => Err(wrong()),
        },
        CaveatType::List(elem) => match json {
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, elem, depth + 1).map_err(|e| e.at(format!("[{i}]"))))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| Value::List(Arc::new(v))),
            _ => Err(wrong()),
        },
        CaveatType::Map(value_ty) => match json {
            Json::Object(map) => map
                .iter()
                .map(|(k, item)| {
                    convert(item, value_ty, depth + 1)
                        .map(|v| (Key::String(Arc::new(k.clone())), v))
                        .map_err(|e| e.at(format!("[{}]", quoted(k))))
                })
                .collect::<Result<std::collections::HashMap<_, _>, _>>()
                .map(|m| Value::Map(Map { map: Arc::new(m) })),
            _ => Err(wrong()),
        },
    }
}

/// Converts JSON naturally, for an `any` parameter: integers to `int` (or
/// `uint` beyond its range), other numbers to `double`.
fn convert_any(json: &Json, depth: usize) -> Result<Value, ConvertError> {
    if depth > MAX_ANY_DEPTH {
        return Err(ConvertError::new(format!(
            "a value nested more than {MAX_ANY_DEPTH} levels deep"
        )));
    }
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert_any(item, depth + 1).map_err(|e| e.at(format!("[{i}]"))))
                .collect::<Result<Vec<_>, _>>()?,
        )),
        Json::Object(map) => Value::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(k, item)| {
                        convert_any(item, depth + 1)
                            .map(|v| (Key::String(Arc::new(k.clone())), v))
                            .map_err(|e| e.at(format!("[{}]", quoted(k))))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        }),
    })
}

/// Parses a duration as Go's `time.ParseDuration` does: an optional sign and
/// a sequence of decimal numbers with units (`ns`, `us`/`µs`, `ms`, `s`, `m`,
/// `h`), e.g. `"1h30m"`, `"1.5h"`, `"-10s"`, `"0"`; at most ±2^63 ns.
fn parse_go_duration(text: &str) -> Result<chrono::Duration, &'static str> {
    const INVALID: &str = "not a duration";
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return Err(INVALID);
    }
    let mut total: u128 = 0;
    let mut s = rest;
    while !s.is_empty() {
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = s.split_at(int_len);
        let mut value: u128 = 0;
        for d in int_digits.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(d - b'0')))
                .filter(|v| *v <= u128::from(u64::MAX))
                .ok_or("out of range")?;
        }
        // Fraction.
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(len)
            }
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(INVALID);
        }
        // Unit: up to the next digit or '.'.
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit"),
            _ => return Err("unknown unit"),
        };
        let mut part = value.checked_mul(unit_ns).ok_or("out of range")?;
        // The fraction, to nanosecond precision (extra digits truncated).
        let mut scale: u128 = 1;
        let mut frac: u128 = 0;
        for d in frac_digits.bytes().take(30) {
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        part = part
            .checked_add(frac.saturating_mul(unit_ns) / scale)
            .ok_or("out of range")?;
        total = total.checked_add(part).ok_or("out of range")?;
        if total > 1u128 << 63 {
            return Err("out of range");
        }
        s = after;
    }
    let nanos: i64 = if negative {
        0i64.checked_sub_unsigned(u64::try_from(total).map_err(|_| "out of range")?)
            .ok_or("out of range")?
    } else {
        i64::try_from(total).map_err(|_| "out of range")?
    };
    Ok(chrono::Duration::nanoseconds(nanos))
}

/// An `ipaddress` value: SpiceDB's CEL extension type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpAddress(IpAddr);

impl Opaque for IpAddress {
    fn runtime_type_name(&self) -> &str {
        IPADDRESS_TYPE
    }
}

/// `ip.in_cidr("10.0.0.0/8")`: whether the address is in the network. A
/// malformed CIDR is an error; an address of the other family is not in it.
fn in_cidr(This(this): This<Value>, cidr: Arc<String>) -> Result<Value, ExecutionError> {
    let ip = match &this {
        Value::Opaque(o) => o.as_ref().downcast_ref::<IpAddress>().map(|ip| ip.0),
        _ => None,
    }
    .ok_or_else(|| {
        ExecutionError::no_such_overload(
            "in_cidr",
            vec![this.type_of().to_string(), "string".to_owned()],
        )
    })?;
    let (network, bits) =
        parse_cidr(&cidr).map_err(|why| ExecutionError::function_error("in_cidr", why))?;
    Ok(Value::Bool(cidr_contains(network, bits, ip)))
}

/// `ipaddress("10.1.2.3")`: parses an address.
fn ipaddress(text: Arc<String>) -> Result<Value, ExecutionError> {
    text.parse::<IpAddr>()
        .map(|ip| Value::Opaque(Arc::new(IpAddress(ip))))
        .map_err(|_| {
            ExecutionError::function_error(
                "ipaddress",
                format!("{} is not an IP address", quoted(&text)),
            )
        })
}

/// Parses `addr/bits`, with bits in range for the address family (decimal,
/// no sign, no leading zeros), as Go's `netip.ParsePrefix`.
fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8), String> {
    let bad = |why: &str| format!("invalid CIDR {}: {why}", quoted(cidr));
    let (addr, bits) = cidr.split_once('/').ok_or_else(|| bad("no `/`"))?;
    let network: IpAddr = addr.parse().map_err(|_| bad("bad address"))?;
    let max = if network.is_ipv4() { 32 } else { 128 };
    let well_formed = !bits.is_empty()
        && bits.len() <= 3
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits == "0" || !bits.starts_with('0'));
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| well_formed && *b <= max)
        .ok_or_else(|| bad("bad prefix length"))?;
    Ok((network, bits))
}

/// Whether `ip` is in `network/bits` (false across address families).
fn cidr_contains(network: IpAddr, bits: u8, ip: IpAddr) -> bool {
    fn mask_eq(a: u128, b: u128, bits: u8, width: u8) -> bool {
        if bits == 0 {
            return true;
        }
        let shift = u32::from(width.saturating_sub(bits));
        (a >> shift) == (b >> shift)
    }
    match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            mask_eq(u128::from(u32::from(n)), u128::from(u32::from(a)), bits, 32)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => mask_eq(u128::from(n), u128::from(a), bits, 128),
        _ => false,
    }
}

/// `message`, cut to [`MAX_MESSAGE_BYTES`] at a character boundary.
fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        let _ = write!(message, "…");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caveat(name: &str, params: &[(&str, &str)], expression: &str) -> Caveat {
        Caveat {
            id: crate::schema::ir::CaveatId(0),
            name: name.into(),
            doc: None,
            params: params
                .iter()
                .map(|(n, t)| (Arc::from(*n), parse_type(t)))
                .collect(),
            expression: expression.to_owned(),
        }
    }

    /// A tiny parser for the test's type names (the schema's own lives in
    /// `cel_check`).
    fn parse_type(t: &str) -> CaveatType {
        let t = t.trim();
        if let Some(inner) = t.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
            return CaveatType::List(Box::new(parse_type(inner)));
        }
        if let Some(inner) = t.strip_prefix("map<").and_then(|r| r.strip_suffix('>')) {
            return CaveatType::Map(Box::new(parse_type(inner)));
        }
        match t {
            "any" => CaveatType::Any,
            "int" => CaveatType::Int,
            "uint" => CaveatType::Uint,
            "double" => CaveatType::Double,
            "bool" => CaveatType::Bool,
            "string" => CaveatType::String,
            "bytes" => CaveatType::Bytes,
            "duration" => CaveatType::Duration,
            "timestamp" => CaveatType::Timestamp,
            "ipaddress" => CaveatType::IpAddress,
            other => panic!("unknown test type {other}"),
        }
    }

    fn compile(params: &[(&str, &str)], expression: &str) -> CompiledCaveat {
        CompiledCaveat::compile(&caveat("test", params, expression))
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn eval(
        params: &[(&str, &str)],
        expression: &str,
        request: serde_json::Value,
    ) -> Result<Outcome, CaveatError> {
        compile(params, expression).evaluate(None, &obj(request))
    }

    fn cond(names: &[&str]) -> Outcome {
        Outcome::conditional(names.iter().map(|s| s.to_string()))
    }

    const A: Outcome = Outcome::Allowed;
    const D: Outcome = Outcome::Denied;

    #[test]
    fn send_and_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<CompiledCaveat>();
    }

    #[test]
    fn ints_and_the_stored_context_wins() {
        let c = CompiledCaveat::compile(&caveat(
            "amount_ok",
            &[("amount", "int"), ("limit", "int")],
            "amount <= limit",
        ))
        .unwrap();
        assert_eq!(c.name(), "amount_ok");
        let stored = obj(json!({"limit": 100}));
        assert_eq!(
            c.evaluate(Some(&stored), &obj(json!({"amount": 50}))),
            Ok(A)
        );
        assert_eq!(
            c.evaluate(Some(&stored), &obj(json!({"amount": 150}))),
            Ok(D)
        );
        // The relationship's value wins over the request's.
        assert_eq!(
            c.evaluate(Some(&stored), &obj(json!({"amount": 150, "limit": 1000}))),
            Ok(D)
        );
        assert_eq!(
            c.evaluate(Some(&stored), &obj(json!({"amount": 50, "limit": 10}))),
            Ok(A)
        );
        // Integral doubles are ints; extra keys are ignored.
        assert_eq!(
            c.evaluate(None, &obj(json!({"amount": 5.0, "limit": 5, "other": "x"}))),
            Ok(A)
        );
    }

    #[test]
    fn missing_params_are_conditional() {
        let c = compile(&[("amount", "int"), ("limit", "int")], "amount <= limit");
        let stored = obj(json!({"limit": 100}));
        assert_eq!(
            c.evaluate(Some(&stored), &obj(json!({}))),
            Ok(cond(&["amount"]))
        );
        assert_eq!(
            c.evaluate(None, &obj(json!({}))),
            Ok(cond(&["amount", "limit"]))
        );
        // Only params the expression needs are reported.
        assert_eq!(
            eval(&[("a", "int"), ("unused", "int")], "a > 1", json!({})),
            Ok(cond(&["a"]))
        );
        // A parameter the expression doesn't use needn't be supplied.
        assert_eq!(
            eval(&[("a", "int"), ("unused", "int")], "a > 1", json!({"a": 2})),
            Ok(A)
        );
    }

    #[test]
    fn partial_evaluation_decides_without_missing_params() {
        let p = [("a", "bool"), ("b", "bool")];
        assert_eq!(eval(&p, "a || b", json!({"a": true})), Ok(A));
        assert_eq!(eval(&p, "a || b", json!({"b": true})), Ok(A));
        assert_eq!(eval(&p, "a || b", json!({"a": false})), Ok(cond(&["b"])));
        assert_eq!(eval(&p, "a && b", json!({"b": false})), Ok(D));
        assert_eq!(eval(&p, "a && b", json!({"a": true})), Ok(cond(&["b"])));
        assert_eq!(eval(&p, "a && b", json!({})), Ok(cond(&["a", "b"])));
        assert_eq!(eval(&p, "!a", json!({})), Ok(cond(&["a"])));
        assert_eq!(eval(&p, "!(a && b)", json!({"a": false})), Ok(A));
        // Only the undecided part's parameters are named.
        let q = [("p", "bool"), ("x", "int"), ("q", "bool"), ("y", "int")];
        assert_eq!(
            eval(
                &q,
                "(p && x > 1) || (q && y > 1)",
                json!({"p": false, "q": true})
            ),
            Ok(cond(&["y"]))
        );
        // An unknown beats an error on the other side, as in cel-go.
        assert_eq!(
            eval(
                &[("a", "bool"), ("n", "int")],
                "a || 1 / n == 1",
                json!({"n": 0})
            ),
            Ok(cond(&["a"]))
        );
        assert_eq!(
            eval(
                &[("a", "bool"), ("n", "int")],
                "1 / n == 1 || a",
                json!({"n": 0})
            ),
            Ok(cond(&["a"]))
        );
        // The ternary.
        let t = [("c", "bool"), ("x", "int"), ("y", "int")];
        assert_eq!(
            eval(&t, "c ? x > 1 : y > 1", json!({"c": true, "x": 2})),
            Ok(A)
        );
        assert_eq!(
            eval(&t, "c ? x > 1 : y > 1", json!({"c": false})),
            Ok(cond(&["y"]))
        );
        assert_eq!(
            eval(&t, "c ? x > 1 : y > 1", json!({"x": 1})),
            Ok(cond(&["c", "y"]))
        );
        // A missing param inside a larger sub-expression.
        assert_eq!(
            eval(
                &[("xs", "list<int>"), ("n", "int")],
                "xs.exists(x, x == n)",
                json!({"xs": [1, 2]})
            ),
            Ok(cond(&["n"]))
        );
        // Decided without it when the loop never reaches it.
        assert_eq!(
            eval(
                &[("xs", "list<int>"), ("n", "int")],
                "xs.exists(x, x == n)",
                json!({"xs": []})
            ),
            Ok(D)
        );
    }

    #[test]
    fn scalar_types() {
        assert_eq!(eval(&[("u", "uint")], "u == 5u", json!({"u": 5})), Ok(A));
        assert_eq!(eval(&[("u", "uint")], "u > 1u", json!({"u": 1.0})), Ok(D));
        assert_eq!(
            eval(&[("d", "double")], "d > 1.25", json!({"d": 1.5})),
            Ok(A)
        );
        assert_eq!(eval(&[("d", "double")], "d == 2.0", json!({"d": 2})), Ok(A));
        assert_eq!(eval(&[("b", "bool")], "b", json!({"b": true})), Ok(A));
        assert_eq!(eval(&[("b", "bool")], "b", json!({"b": false})), Ok(D));
        assert_eq!(
            eval(
                &[("s", "string")],
                "s.startsWith('ab') && size(s) == 3",
                json!({"s": "abc"})
            ),
            Ok(A)
        );
        assert_eq!(
            eval(&[("b", "bytes")], "b == b'hello'", json!({"b": "aGVsbG8="})),
            Ok(A)
        );
        assert_eq!(
            eval(&[("b", "bytes")], "size(b) == 5", json!({"b": "aGVsbG8="})),
            Ok(A)
        );
        assert_eq!(
            eval(
                &[("a", "any")],
                "a.x == 1 && a.y[1] == 'b'",
                json!({"a": {"x": 1, "y": ["a", "b"]}})
            ),
            Ok(A)
        );
        assert_eq!(eval(&[("a", "any")], "a == 1.5", json!({"a": 1.5})), Ok(A));
        // Large integers.
        assert_eq!(
            eval(
                &[("i", "int")],
                "i == 9223372036854775807",
                json!({"i": i64::MAX})
            ),
            Ok(A)
        );
        assert_eq!(
            eval(
                &[("u", "uint")],
                "u == 18446744073709551615u",
                json!({"u": u64::MAX})
            ),
            Ok(A)
        );
    }

    #[test]
    fn durations_and_timestamps() {
        let p = [("now", "timestamp"), ("open", "duration"), ("tz", "string")];
        let ok = json!({"now": "2024-03-05T14:30:00Z", "open": "1h30m", "tz": "Europe/Paris"});
        assert_eq!(eval(&p, "now.getHours(tz) >= 9", ok.clone()), Ok(A));
        assert_eq!(eval(&p, "now.getHours(tz) == 15", ok.clone()), Ok(A));
        assert_eq!(eval(&p, "now.getHours() == 14", ok.clone()), Ok(A));
        assert_eq!(eval(&p, "open == duration('90m')", ok.clone()), Ok(A));
        assert_eq!(
            eval(
                &p,
                "now + open == timestamp('2024-03-05T16:00:00Z')",
                ok.clone()
            ),
            Ok(A)
        );
        assert_eq!(
            eval(&p, "now < timestamp('2024-01-01T00:00:00Z')", ok.clone()),
            Ok(D)
        );
        assert_eq!(eval(&p, "open > duration('1h')", ok), Ok(A));
        let d = [("d", "duration")];
        for (text, secs) in [
            ("10s", 10.0),
            ("1.5h", 5400.0),
            ("-2m", -120.0),
            ("0", 0.0),
            ("1h0m1s", 3601.0),
            ("500ms", 0.5),
            ("1500us", 0.0015),
            (".5s", 0.5),
        ] {
            let c = compile(&d, &format!("d == duration('{secs}s')"));
            assert_eq!(c.evaluate(None, &obj(json!({"d": text}))), Ok(A), "{text}");
        }
        assert_eq!(
            parse_go_duration("2562047h47m16.854775807s").map(|d| d.num_nanoseconds()),
            Ok(Some(i64::MAX))
        );
        assert!(parse_go_duration("2562048h").is_err());
        for bad in ["", "1", "h", "1x", "1.h.", "--1s", ".s", "1h 2m", "١s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        // Timestamps keep their offset and compare by instant.
        assert_eq!(
            eval(
                &[("t", "timestamp")],
                "t == timestamp('2024-03-05T12:00:00Z')",
                json!({"t": "2024-03-05T14:00:00+02:00"})
            ),
            Ok(A)
        );
    }

    #[test]
    fn lists_and_maps() {
        let p = [("tags", "list<string>"), ("t", "string")];
        assert_eq!(
            eval(&p, "t in tags", json!({"tags": ["a", "b"], "t": "b"})),
            Ok(A)
        );
        assert_eq!(
            eval(&p, "t in tags", json!({"tags": ["a", "b"], "t": "c"})),
            Ok(D)
        );
        assert_eq!(
            eval(
                &p,
                "tags.exists(x, x.startsWith(t))",
                json!({"tags": ["ab"], "t": "a"})
            ),
            Ok(A)
        );
        assert_eq!(
            eval(
                &p,
                "tags.all(x, size(x) == 1)",
                json!({"tags": ["a", "bc"]})
            ),
            Ok(D)
        );
        let m = [("limits", "map<int>"), ("k", "string")];
        assert_eq!(
            eval(
                &m,
                "k in limits && limits[k] > 10",
                json!({"limits": {"x": 20}, "k": "x"})
            ),
            Ok(A)
        );
        assert_eq!(
            eval(
                &m,
                "limits.exists(key, limits[key] > 100)",
                json!({"limits": {"x": 20}})
            ),
            Ok(D)
        );
        let nested = [("m", "map<list<int>>")];
        assert_eq!(
            eval(
                &nested,
                "m.a[1] == 2 && size(m.b) == 0",
                json!({"m": {"a": [1, 2], "b": []}})
            ),
            Ok(A)
        );
        let ts = [("ts", "list<timestamp>")];
        assert_eq!(
            eval(
                &ts,
                "ts.all(t, t > timestamp('2020-01-01T00:00:00Z'))",
                json!({"ts": ["2021-01-01T00:00:00Z", "2022-01-01T00:00:00Z"]})
            ),
            Ok(A)
        );
    }

    #[test]
    fn ipaddress_and_in_cidr() {
        let c = compile(
            &[("user_ip", "ipaddress"), ("allowed", "list<string>")],
            "allowed.exists(c, user_ip.in_cidr(c))",
        );
        let run = |ip: &str, allowed: serde_json::Value| {
            c.evaluate(None, &obj(json!({"user_ip": ip, "allowed": allowed})))
        };
        assert_eq!(
            run("10.1.2.3", json!(["192.168.0.0/16", "10.0.0.0/8"])),
            Ok(A)
        );
        assert_eq!(run("11.1.2.3", json!(["10.0.0.0/8"])), Ok(D));
        assert_eq!(run("10.1.2.3", json!(["10.1.2.3/32"])), Ok(A));
        assert_eq!(run("10.1.2.4", json!(["10.1.2.3/32"])), Ok(D));
        assert_eq!(run("1.2.3.4", json!(["0.0.0.0/0"])), Ok(A));
        assert_eq!(run("2001:db8::1", json!(["2001:db8::/32"])), Ok(A));
        assert_eq!(run("2001:db9::1", json!(["2001:db8::/32"])), Ok(D));
        assert_eq!(run("::1", json!(["::1/128"])), Ok(A));
        // Across families: never in.
        assert_eq!(run("10.0.0.1", json!(["::/0"])), Ok(D));
        assert_eq!(run("::ffff:10.0.0.1", json!(["10.0.0.0/8"])), Ok(D));
        // Malformed CIDRs are errors.
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/08",
            "nope/8",
            "::/129",
            "10.0.0.0/",
        ] {
            assert!(
                matches!(
                    run("10.0.0.1", json!([bad])),
                    Err(CaveatError::Evaluation { .. })
                ),
                "{bad}"
            );
        }
        // ipaddress() literals and equality.
        let p = [("ip", "ipaddress")];
        assert_eq!(
            eval(&p, "ip == ipaddress('10.0.0.1')", json!({"ip": "10.0.0.1"})),
            Ok(A)
        );
        assert_eq!(
            eval(&p, "ip == ipaddress('10.0.0.2')", json!({"ip": "10.0.0.1"})),
            Ok(D)
        );
        assert_eq!(
            eval(&p, "ip.in_cidr('10.0.0.0/8')", json!({})),
            Ok(cond(&["ip"]))
        );
        assert!(matches!(
            eval(&p, "ip.in_cidr('10.0.0.0/8')", json!({"ip": "10.0.0.300"})),
            Err(CaveatError::ContextType { param, expected, .. }) if param == "ip" && expected == "ipaddress"
        ));
    }

    #[test]
    fn wrong_json_types_name_the_param() {
        let check = |ty: &str, value: serde_json::Value, found: &str| {
            let err = eval(&[("p", ty)], "p == p", json!({ "p": value }));
            match err {
                Err(CaveatError::ContextType {
                    caveat,
                    param,
                    expected,
                    found: f,
                }) => {
                    assert_eq!(caveat, "test");
                    assert_eq!(param, "p");
                    assert_eq!(expected, ty);
                    assert!(f.contains(found), "{ty}: {f:?} does not contain {found:?}");
                }
                other => panic!("{ty} {value}: {other:?}"),
            }
        };
        check("int", json!("5"), "string");
        check("int", json!(1.5), "double 1.5");
        check("int", json!(u64::MAX), "out of range");
        check("int", json!(null), "null");
        check("uint", json!(-1), "negative");
        check("double", json!(true), "bool");
        check("bool", json!(1), "int");
        check("string", json!(["a"]), "list");
        check("bytes", json!("not base64!"), "not base64");
        check("duration", json!("1 hour"), "\"1 hour\"");
        check("duration", json!(60), "int");
        check("timestamp", json!("2024-13-01T00:00:00Z"), "RFC 3339");
        check("ipaddress", json!("localhost"), "not an IP address");
        check("list<int>", json!({"a": 1}), "map");
        check("list<int>", json!([1, "two"]), "string at `p[1]`");
        check("map<bool>", json!({"k": 1}), "int at `p[\"k\"]`");
        check(
            "map<list<int>>",
            json!({"k": [1, 2.5]}),
            "double 2.5 at `p[\"k\"][1]`",
        );
        // The message names everything.
        let err = eval(&[("amount", "int")], "amount > 1", json!({"amount": "x"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "caveat `test`: context parameter `amount` must be int, found string"
        );
    }

    #[test]
    fn runtime_errors() {
        let p = [("a", "int"), ("b", "int")];
        assert!(matches!(
            eval(&p, "a / b == 1", json!({"a": 1, "b": 0})),
            Err(CaveatError::Evaluation { .. })
        ));
        assert!(matches!(
            eval(&p, "a % b == 1", json!({"a": 1, "b": 0})),
            Err(CaveatError::Evaluation { .. })
        ));
        assert!(matches!(
            eval(&p, "a + b > 0", json!({"a": i64::MAX, "b": 1})),
            Err(CaveatError::Evaluation { .. })
        ));
        assert!(matches!(
            eval(&[("m", "map<int>")], "m.nope == 1", json!({"m": {}})),
            Err(CaveatError::Evaluation { .. })
        ));
        // A non-bool result (an `any` parameter).
        assert!(matches!(
            eval(&[("x", "any")], "x", json!({"x": 3})),
            Err(CaveatError::Evaluation { message, .. }) if message.contains("not a bool")
        ));
        assert_eq!(eval(&[("x", "any")], "x", json!({"x": true})), Ok(A));
        // A bad timezone.
        assert!(matches!(
            eval(
                &[("t", "timestamp")],
                "t.getHours('Nowhere/Land') > 1",
                json!({"t": "2024-01-01T00:00:00Z"})
            ),
            Err(CaveatError::Evaluation { .. })
        ));
    }

    #[test]
    fn context_limits() {
        let c = compile(&[("s", "string")], "size(s) > 0");
        let big = "x".repeat(MAX_CONTEXT_BYTES);
        assert!(matches!(
            c.evaluate(None, &obj(json!({"s": big}))),
            Err(CaveatError::ContextTooLarge {
                limit: MAX_CONTEXT_BYTES,
                ..
            })
        ));
        // Counted over the merge, unknown keys included.
        let half = "y".repeat(MAX_CONTEXT_BYTES / 2);
        let stored = obj(json!({"s": half.clone()}));
        assert!(matches!(
            c.evaluate(Some(&stored), &obj(json!({"other": half.clone()}))),
            Err(CaveatError::ContextTooLarge { .. })
        ));
        // A key present in both counts once.
        assert_eq!(c.evaluate(Some(&stored), &obj(json!({"s": half}))), Ok(A));
        // The size matches serde_json's.
        let sample =
            obj(json!({"a": [1, -2.5, "x\"y\n\u{1}é"], "b": {"c": null, "d": true}, "e": false}));
        let request = obj(json!({"z": 1, "a": 0}));
        let mut merged = request.clone();
        merged.extend(sample.clone());
        assert_eq!(
            merged_size(Some(&sample), &request, usize::MAX),
            serde_json::to_string(&merged).unwrap().len()
        );
        assert_eq!(merged_size(None, &obj(json!({})), usize::MAX), 2);
    }

    #[test]
    fn evaluation_budget() {
        let p = [("xs", "list<int>")];
        let xs: Vec<i64> = (0..3000).collect();
        // Quadratic work over a client-supplied list is cut off.
        let err = eval(
            &p,
            "xs.exists(x, xs.exists(y, x + y < 0))",
            json!({"xs": xs.clone()}),
        );
        assert!(
            matches!(&err, Err(CaveatError::Evaluation { message, .. }) if message.contains("budget")),
            "{err:?}"
        );
        let err = eval(&p, "xs.map(x, xs).size() == 0", json!({"xs": xs.clone()}));
        assert!(
            matches!(err, Err(CaveatError::Evaluation { .. })),
            "{err:?}"
        );
        // Linear work is fine.
        assert_eq!(
            eval(&p, "xs.exists(x, x == 2999)", json!({"xs": xs})),
            Ok(A)
        );
    }

    #[test]
    fn compile_errors() {
        for bad in ["", "   ", "a >", "(((", "a +* b", "'unterminated"] {
            assert!(
                matches!(
                    CompiledCaveat::compile(&caveat("c", &[("a", "int")], bad)),
                    Err(CaveatError::Compile { ref caveat, .. }) if caveat == "c"
                ),
                "{bad:?}"
            );
        }
        let too_long = "a".repeat(MAX_EXPRESSION_BYTES + 1);
        assert!(CompiledCaveat::compile(&caveat("c", &[("a", "bool")], &too_long)).is_err());
        let deep = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
        assert!(CompiledCaveat::compile(&caveat("c", &[], &deep)).is_err());
        let chain = format!("{} > 0", vec!["a"; 1000].join(" + "));
        let err = CompiledCaveat::compile(&caveat("c", &[("a", "int")], &chain)).unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }

    /// The deepest tree accepted evaluates within a small stack (tokio's
    /// default worker stack is 2 MiB).
    #[test]
    fn deepest_tree_evaluates_on_a_small_stack() {
        // Each `+` nests one level; a comparison and the root add two more.
        let chain = format!("{} > 0", vec!["a"; MAX_AST_DEPTH - 1].join(" + "));
        let c = compile(&[("a", "int")], &chain);
        // Partial evaluation over the deepest sub-expression.
        let d = compile(
            &[("a", "int"), ("b", "bool")],
            &format!("{} > 0 || b", vec!["a"; MAX_AST_DEPTH - 2].join(" + ")),
        );
        // The deepest tree evaluated inline.
        let inline = format!("{} > 0", ["a"; INLINE_EVAL_DEPTH - 1].join(" + "));
        let e = compile(&[("a", "int")], &inline);
        assert_eq!(e.depth, INLINE_EVAL_DEPTH);
        let handle = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                assert_eq!(e.evaluate(None, &obj(json!({"a": 1}))), Ok(A));
                (
                    c.evaluate(None, &obj(json!({"a": 1}))),
                    d.evaluate(None, &obj(json!({"a": -1}))),
                    d.evaluate(None, &obj(json!({"a": -1, "b": false}))),
                )
            })
            .unwrap();
        let (r1, r2, r3) = handle.join().unwrap();
        assert_eq!(r1, Ok(A));
        assert_eq!(r2, Ok(cond(&["b"])));
        assert_eq!(r3, Ok(D));
    }

    #[test]
    fn garbage_never_panics() {
        let params = [
            ("a", "int"),
            ("b", "bool"),
            ("s", "string"),
            ("ip", "ipaddress"),
            ("xs", "list<any>"),
            ("m", "map<any>"),
            ("d", "duration"),
            ("t", "timestamp"),
        ];
        let expressions = [
            "a",
            "b",
            "s",
            "ip",
            "xs",
            "m",
            "a / 0 == 1",
            "s[0] == 'a'",
            "m.x.y.z",
            "xs[100] == 1",
            "xs[-1] == 1",
            "ip.in_cidr(s)",
            "ip.in_cidr('')",
            "in_cidr(ip, '1.2.3.4/1')",
            "ipaddress(s) == ip",
            "ipaddress('') == ip",
            "s.in_cidr('10.0.0.0/8')",
            "d.getHours() > t.getHours()",
            "t - t > d",
            "t + d > t",
            "int(s) > 1",
            "uint(a) > 1u",
            "double(s) > 1.0",
            "timestamp(s) > t",
            "duration(s) > d",
            "s.matches(s)",
            "xs.all(x, x)",
            "m.exists(k, m[k])",
            "a ? b : s",
            "-a < a",
            "b.x",
            "{1: 2}[a] == 2",
            "[a, b, s][a] == s",
            "type(ip) == type(s)",
            "dyn(a) == dyn(s)",
            "xs.map(x, x + 1).size() > 0",
            "a.?b == 1",
            "has(m.x)",
            "null == ip",
            "t.getDayOfWeek(s) > 1",
            "1 +",
            "((",
            "\u{0}",
            "a == a == a",
        ];
        let contexts = [
            json!({}),
            json!({"a": 0, "b": false, "s": "", "ip": "::", "xs": [], "m": {}, "d": "0", "t": "0001-01-01T00:00:00Z"}),
            json!({"a": -9223372036854775807i64, "b": true, "s": "10.0.0.0/8", "ip": "255.255.255.255",
                   "xs": [null, true, 1, 1.5, "x", [[]], {"k": {}}], "m": {"x": {"y": {"z": [1]}}},
                   "d": "-2562047h", "t": "9999-12-31T23:59:59.999999999Z"}),
            json!({"a": "x", "b": 1, "s": 2}),
            json!({"s": "(", "m": {"k": true}, "xs": [true, false], "t": "2024-01-01T00:00:00+14:00", "d": "1ns"}),
        ];
        for expr in expressions {
            let Ok(c) = CompiledCaveat::compile(&caveat("g", &params, expr)) else {
                continue;
            };
            for ctx in &contexts {
                let _ = c.evaluate(None, &obj(ctx.clone()));
                let _ = c.evaluate(Some(&obj(ctx.clone())), &obj(json!({"a": 1})));
            }
        }
        // Deeply nested `any` values are refused, not recursed into.
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        assert!(matches!(
            eval(&[("x", "any")], "x == x", json!({ "x": deep })),
            Err(CaveatError::ContextType { .. })
        ));
    }
}
