//! The graph engine's correctness harness.
//!
//! A deliberately naive reference evaluator — the least fixpoint of the
//! schema's set equations over plain `BTreeSet`s — is compared with
//! `Engine::check`, `bulk_check`, `lookup_resources`, `lookup_subjects` and
//! `expand` on random schemas and data (property tests), followed by
//! hand-written cases for the corners: nested and cyclic groups, arrows,
//! `.all()`, exclusion under a wildcard, userset subjects, the depth bound
//! and debug traces. Caveats (`is_small`, `flag_on`) make answers three-valued
//! (ALLOWED / DENIED / CONDITIONAL with the missing parameters): the
//! reference combines them with `Outcome::or/and/minus`, per request context.
//!
//! ```text
//!  bytes ─▶ generate ─▶ schema text ─▶ compile ─▶ IR ─┬─▶ Reference (fixpoint)
//!                    └─▶ tuples ─▶ MemStore/RocksStore ─┴─▶ Engine ─▶ compare
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::any;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{json, Map, Value};
use verdict::engine::{
    CheckRequest, DecisionCache, Engine, EngineConfig, EngineError, GroupIndex, LookupSubject,
    Outcome,
};
use verdict::schema::ir::{ArrowFunc, RelationKind, Rewrite, Schema};
use verdict::schema::{compile, SchemaLimits};
use verdict_storage::{
    MemStore, ObjectRef, Op, RelationStore, Revision, RocksOptions, RocksStore,
    SchemaVersionRecord, SubjectRef, Tenant, Timestamp, Tuple, TupleCaveat, TupleReader,
    WriteBatch, WILDCARD,
};

// ───────────────────────────── reference evaluator ─────────────────────────────

/// A member of a set: `(type, id, None)` for a direct subject,
/// `(type, id, Some(relation))` for a userset.
type Elem = (String, String, Option<String>);
/// `(type, id, relation or permission)`.
type Node = (String, String, String);

/// Every `type:id#relation` of the universe with its members, each with a
/// three-valued membership (absent = DENIED).
///
/// Rules (SpiceDB's semantics, spelled out as sets):
/// - every node contains itself as a userset (`group:g#member` is a member
///   of `group:g#member`), ALLOWED;
/// - relation: direct tuple subjects; for `T:*` every object of `T` in the
///   universe; for a userset subject `G:g#m`, the set of `G:g#m`; a tuple's
///   caveat value (DENIED: the tuple is skipped) is ANDed with what it
///   contributes;
/// - permission: union (`or`) / intersection (`and`) / difference (`minus`)
///   of the operands, with `Outcome`'s truth tables; `t->x` and `t.any(x)`
///   the union over the tupleset's subject objects `X:x'` (subject relation
///   ignored) of `caveat AND X:x'#x`, or nothing when `X` lacks `x`;
///   `t.all(x)` the intersection of the same over every unexpired tuple of
///   `t` (nothing for no such tuple, for a tuple whose caveat is DENIED, or
///   for a target type lacking `x`): each branch is `caveat AND X:x'#x`.
///
/// Computed by Jacobi iteration from all-DENIED until nothing changes: the
/// least fixpoint for monotone schemas, and the unique fixpoint on acyclic
/// data (which the generator guarantees whenever exclusion or caveats occur).
struct Reference {
    sets: BTreeMap<Node, Members>,
    empty: Members,
}

/// Members of a set with their (never DENIED) membership.
type Members = BTreeMap<Elem, Outcome>;

/// Adds `value` to `e`'s membership by union.
fn join(m: &mut Members, e: Elem, value: Outcome) {
    if value.is_denied() {
        return;
    }
    let old = m.remove(&e).unwrap_or(Outcome::Denied);
    m.insert(e, old.or(value));
}

/// Every membership ANDed with `cond`.
fn guard(m: &Members, cond: &Outcome) -> Members {
    m.iter()
        .map(|(e, v)| (e.clone(), cond.clone().and(v.clone())))
        .filter(|(_, v)| !v.is_denied())
        .collect()
}

fn intersect(a: &Members, b: &Members) -> Members {
    a.iter()
        .filter_map(|(e, v)| Some((e.clone(), v.clone().and(b.get(e)?.clone()))))
        .filter(|(_, v)| !v.is_denied())
        .collect()
}

/// The value of the small caveat expressions the generator uses, with the
/// stored context winning over the request's.
fn eval_caveat(name: &str, stored: &Map<String, Value>, request: &Map<String, Value>) -> Outcome {
    let get = |k: &str| stored.get(k).or_else(|| request.get(k));
    let params: &[&str] = match name {
        "is_small" => &["x", "limit"],
        "flag_on" => &["flag"],
        other => panic!("unknown caveat {other}"),
    };
    let missing: Vec<String> = params
        .iter()
        .filter(|p| get(p).is_none())
        .map(|p| p.to_string())
        .collect();
    if !missing.is_empty() {
        return Outcome::conditional(missing);
    }
    let holds = match name {
        "is_small" => get("x").and_then(Value::as_i64) <= get("limit").and_then(Value::as_i64),
        _ => get("flag").and_then(Value::as_bool).expect("bool flag"),
    };
    outcome_of(holds)
}

struct Universe<'a> {
    schema: &'a Schema,
    pools: &'a BTreeMap<String, Vec<String>>,
    /// Tuples by (resource type, resource id, relation), with their caveat
    /// value (DENIED for a caveat that is false).
    index: BTreeMap<Node, Vec<(&'a Tuple, Outcome)>>,
}

impl Reference {
    fn compute(
        schema: &Schema,
        pools: &BTreeMap<String, Vec<String>>,
        tuples: &[Tuple],
        context: &Map<String, Value>,
    ) -> Reference {
        let mut index: BTreeMap<Node, Vec<(&Tuple, Outcome)>> = BTreeMap::new();
        for t in tuples {
            // A tuple whose caveat is false stays in the index: it adds
            // nothing to a union, but it is a (false) branch of `.all()`.
            let cond = match &t.caveat {
                None => Outcome::Allowed,
                Some(c) => eval_caveat(&c.name, &c.context, context),
            };
            index
                .entry((
                    t.resource.object_type.clone(),
                    t.resource.object_id.clone(),
                    t.relation.clone(),
                ))
                .or_default()
                .push((t, cond));
        }
        let u = Universe {
            schema,
            pools,
            index,
        };
        let mut nodes = Vec::new();
        for def in schema.definitions() {
            for id in pools.get(&*def.name).into_iter().flatten() {
                for rel in &def.relations {
                    nodes.push((def.name.to_string(), id.clone(), rel.name.to_string()));
                }
            }
        }
        let mut reference = Reference {
            sets: nodes.iter().map(|n| (n.clone(), Members::new())).collect(),
            empty: Members::new(),
        };
        for _round in 0..10_000 {
            let next: BTreeMap<Node, Members> = nodes
                .iter()
                .map(|n| (n.clone(), reference.eval_node(&u, n)))
                .collect();
            if next == reference.sets {
                return reference;
            }
            reference.sets = next;
        }
        panic!("reference evaluator did not converge");
    }

    fn get(&self, ty: &str, id: &str, rel: &str) -> &Members {
        self.sets
            .get(&(ty.to_string(), id.to_string(), rel.to_string()))
            .unwrap_or(&self.empty)
    }

    /// Whether `subject` has `permission` on `resource`.
    fn has(&self, resource: &ObjectRef, permission: &str, subject: &SubjectRef) -> Outcome {
        self.get(&resource.object_type, &resource.object_id, permission)
            .get(&elem(subject))
            .cloned()
            .unwrap_or(Outcome::Denied)
    }

    fn eval_node(&self, u: &Universe<'_>, (ty, id, rel): &Node) -> Members {
        let def = u.schema.definition_named(ty).expect("type in schema");
        let relation = def.relation_named(rel).expect("relation in schema");
        let mut out = Members::from([(
            (ty.clone(), id.clone(), Some(rel.clone())),
            Outcome::Allowed,
        )]);
        match &relation.kind {
            RelationKind::Relation { .. } => {
                let key = (ty.clone(), id.clone(), rel.clone());
                for (t, cond) in u.index.get(&key).into_iter().flatten() {
                    let s = &t.subject;
                    let sty = &s.object.object_type;
                    match &s.relation {
                        None if s.object.object_id == WILDCARD => {
                            for x in u.pools.get(sty).into_iter().flatten() {
                                join(&mut out, (sty.clone(), x.clone(), None), cond.clone());
                            }
                        }
                        None => {
                            join(
                                &mut out,
                                (sty.clone(), s.object.object_id.clone(), None),
                                cond.clone(),
                            );
                        }
                        Some(m) => {
                            join(&mut out, elem(s), cond.clone());
                            let members = guard(self.get(sty, &s.object.object_id, m), cond);
                            for (e, v) in members {
                                join(&mut out, e, v);
                            }
                        }
                    }
                }
            }
            RelationKind::Permission { rewrite } => {
                for (e, v) in self.eval_rewrite(u, ty, id, rewrite) {
                    join(&mut out, e, v);
                }
            }
        }
        out
    }

    fn eval_rewrite(&self, u: &Universe<'_>, ty: &str, id: &str, rewrite: &Rewrite) -> Members {
        let def = u.schema.definition_named(ty).expect("type in schema");
        match rewrite {
            Rewrite::Nil => Members::new(),
            Rewrite::SelfRef => {
                Members::from([((ty.to_string(), id.to_string(), None), Outcome::Allowed)])
            }
            Rewrite::Computed(rel) => self.get(ty, id, &def.relation(*rel).name).clone(),
            Rewrite::Union(children) => {
                let mut out = Members::new();
                for c in children {
                    for (e, v) in self.eval_rewrite(u, ty, id, c) {
                        join(&mut out, e, v);
                    }
                }
                out
            }
            Rewrite::Intersection(children) => {
                let mut sets = children.iter().map(|c| self.eval_rewrite(u, ty, id, c));
                let first = sets.next().unwrap_or_default();
                sets.fold(first, |acc, s| intersect(&acc, &s))
            }
            Rewrite::Exclusion(base, subtract) => {
                let b = self.eval_rewrite(u, ty, id, base);
                let s = self.eval_rewrite(u, ty, id, subtract);
                b.into_iter()
                    .map(|(e, v)| {
                        let sv = s.get(&e).cloned().unwrap_or(Outcome::Denied);
                        (e, v.minus(sv))
                    })
                    .filter(|(_, v)| !v.is_denied())
                    .collect()
            }
            Rewrite::Arrow(arrow) => {
                let tupleset = def.relation(arrow.tupleset).name.to_string();
                let key = (ty.to_string(), id.to_string(), tupleset);
                let targets: Vec<Members> = u
                    .index
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .map(|(t, cond)| {
                        let o = &t.subject.object;
                        let has_target = u
                            .schema
                            .definition_named(&o.object_type)
                            .is_some_and(|d| d.relation_id(&arrow.target).is_some());
                        if has_target {
                            guard(self.get(&o.object_type, &o.object_id, &arrow.target), cond)
                        } else {
                            Members::new()
                        }
                    })
                    .collect();
                if arrow.func == ArrowFunc::All {
                    let mut it = targets.into_iter();
                    let first = it.next().unwrap_or_default();
                    it.fold(first, |acc, s| intersect(&acc, &s))
                } else {
                    let mut out = Members::new();
                    for (e, v) in targets.into_iter().flatten() {
                        join(&mut out, e, v);
                    }
                    out
                }
            }
        }
    }
}

fn elem(s: &SubjectRef) -> Elem {
    (
        s.object.object_type.clone(),
        s.object.object_id.clone(),
        s.relation.clone(),
    )
}

// ───────────────────────────── random generation ─────────────────────────────

/// An expiration long past (2001) and one far ahead (year 3000).
const PAST: Timestamp = Timestamp(1_000_000_000);
const FUTURE: Timestamp = Timestamp(32_503_680_000);
/// Request times before `PAST` (1998) and between `PAST` and `FUTURE` (2030).
const EARLY: Timestamp = Timestamp(900_000_000);
const LATER: Timestamp = Timestamp(1_900_000_000);

/// The caveats a schema may declare: name and declaration.
const CAVEATS: [(&str, &str); 2] = [
    (
        "is_small",
        "caveat is_small(x int, limit int) {\n    x <= limit\n}\n",
    ),
    ("flag_on", "caveat flag_on(flag bool) {\n    flag\n}\n"),
];

/// Stored contexts for a caveated tuple, per caveat (partial on purpose).
fn stored_contexts(caveat: usize) -> Vec<Map<String, Value>> {
    let values = match caveat {
        0 => vec![
            json!({}),
            json!({"limit": 3}),
            json!({"x": 2}),
            json!({"x": 5, "limit": 3}),
        ],
        _ => vec![json!({}), json!({"flag": true}), json!({"flag": false})],
    };
    values.into_iter().map(to_map).collect()
}

/// Request contexts a case is verified under.
fn request_contexts() -> Vec<Map<String, Value>> {
    [
        json!({}),
        json!({"x": 1}),
        json!({"x": 5, "limit": 9}),
        json!({"flag": true}),
        json!({"x": 4, "flag": false}),
        json!({"limit": 0}),
        json!({"x": 3, "limit": 3, "flag": true}),
    ]
    .into_iter()
    .map(to_map)
    .collect()
}

fn to_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Type names; index 0 (`user`) has no relations.
const TYPE_NAMES: [&str; 4] = ["user", "group", "folder", "doc"];

/// Reads choices from a byte string (0 when exhausted), so that smaller
/// bytes mean a simpler case and proptest's shrinking simplifies it.
struct Choices<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Choices<'_> {
    fn below(&mut self, n: usize) -> usize {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        if n <= 1 {
            0
        } else {
            usize::from(b) % n
        }
    }

    /// True with probability `num/den`; false for a zero byte.
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) >= den - num
    }

    fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.below(items.len())]
    }
}

#[derive(Debug, Clone, PartialEq)]
enum AllowedSpec {
    Direct(usize),
    Wildcard(usize),
    Userset(usize, String),
}

#[derive(Debug, Clone)]
struct RelSpec {
    name: String,
    /// Allows a wildcard: never a tupleset nor a userset target.
    wildcard: bool,
    /// Every allowed subject type is `with expiration`.
    expiring: bool,
    /// Every allowed subject type is `with` this caveat (an index into
    /// `CAVEATS`); never together with `expiring` or `wildcard`.
    caveat: Option<usize>,
    /// With `caveat`: every allowed subject type is also allowed plain.
    also_plain: bool,
    allowed: Vec<AllowedSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Arrow,
    Any,
    All,
}

#[derive(Debug, Clone)]
enum Ex {
    Nil,
    SelfRef,
    Ref(String),
    Arrow(String, Func, String),
    Bin(char, Box<Ex>, Box<Ex>),
}

impl Ex {
    fn render(&self) -> String {
        match self {
            Ex::Nil => "nil".into(),
            Ex::SelfRef => "self".into(),
            Ex::Ref(n) => n.clone(),
            Ex::Arrow(t, Func::Arrow, x) => format!("{t}->{x}"),
            Ex::Arrow(t, Func::Any, x) => format!("{t}.any({x})"),
            Ex::Arrow(t, Func::All, x) => format!("{t}.all({x})"),
            Ex::Bin(op, a, b) => format!("({} {op} {})", a.render(), b.render()),
        }
    }

    fn has_exclusion(&self) -> bool {
        match self {
            Ex::Bin(op, a, b) => *op == '-' || a.has_exclusion() || b.has_exclusion(),
            _ => false,
        }
    }

    fn has_self(&self) -> bool {
        match self {
            Ex::SelfRef => true,
            Ex::Bin(_, a, b) => a.has_self() || b.has_self(),
            _ => false,
        }
    }

    fn has_all(&self) -> bool {
        match self {
            Ex::Arrow(_, f, _) => *f == Func::All,
            Ex::Bin(_, a, b) => a.has_all() || b.has_all(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct DefSpec {
    name: &'static str,
    rels: Vec<RelSpec>,
    perms: Vec<(String, Ex)>,
}

impl DefSpec {
    fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.rels
            .iter()
            .map(|r| r.name.clone())
            .chain(self.perms.iter().map(|p| p.0.clone()))
    }
}

/// One generated case.
#[derive(Debug, Clone)]
struct Case {
    text: String,
    tuples: Vec<Tuple>,
    /// Every object id per type (the universe).
    pools: BTreeMap<String, Vec<String>>,
    acyclic: bool,
    has_exclusion: bool,
    has_wildcard: bool,
    has_all: bool,
    has_self: bool,
    has_expiration: bool,
    /// Some tuple carries a caveat.
    has_caveats: bool,
    /// The request contexts to verify under (at least one).
    contexts: Vec<Map<String, Value>>,
}

impl Case {
    fn describe(&self) -> String {
        let tuples: Vec<String> = self.tuples.iter().map(Tuple::to_string).collect();
        format!(
            "--- schema ---\n{}\n--- tuples ({}) ---\n{}\n--- acyclic: {} ---",
            self.text,
            tuples.len(),
            tuples.join("\n"),
            self.acyclic
        )
    }
}

fn render_schema(defs: &[DefSpec]) -> String {
    let mut out = String::new();
    if defs.iter().flat_map(|d| &d.rels).any(|r| r.expiring) {
        out.push_str("use expiration\n");
    }
    if defs.iter().flat_map(|d| &d.perms).any(|p| p.1.has_self()) {
        out.push_str("use self\n");
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let mut declared: Vec<usize> = defs
        .iter()
        .flat_map(|d| &d.rels)
        .filter_map(|r| r.caveat)
        .collect();
    declared.sort();
    declared.dedup();
    for k in declared {
        out.push_str(CAVEATS[k].1);
        out.push('\n');
    }
    for d in defs {
        if d.rels.is_empty() && d.perms.is_empty() {
            out.push_str(&format!("definition {} {{}}\n\n", d.name));
            continue;
        }
        out.push_str(&format!("definition {} {{\n", d.name));
        for r in &d.rels {
            let allowed: Vec<String> = r
                .allowed
                .iter()
                .map(|a| match a {
                    AllowedSpec::Direct(t) => TYPE_NAMES[*t].to_string(),
                    AllowedSpec::Wildcard(t) => format!("{}:*", TYPE_NAMES[*t]),
                    AllowedSpec::Userset(t, m) => format!("{}#{m}", TYPE_NAMES[*t]),
                })
                .flat_map(|a| {
                    if r.expiring {
                        vec![format!("{a} with expiration")]
                    } else if let Some(k) = r.caveat {
                        let caveated = format!("{a} with {}", CAVEATS[k].0);
                        if r.also_plain {
                            vec![a, caveated]
                        } else {
                            vec![caveated]
                        }
                    } else {
                        vec![a]
                    }
                })
                .collect();
            out.push_str(&format!(
                "    relation {}: {}\n",
                r.name,
                allowed.join(" | ")
            ));
        }
        for (name, ex) in &d.perms {
            out.push_str(&format!("    permission {name} = {}\n", ex.render()));
        }
        out.push_str("}\n\n");
    }
    out
}

fn gen_leaf(c: &mut Choices<'_>, defs: &[DefSpec], i: usize, k: usize) -> Ex {
    let def = &defs[i];
    let any_rel = |c: &mut Choices<'_>| Ex::Ref(c.pick(&def.rels).name.clone());
    match c.below(9) {
        3 if k > 0 => Ex::Ref(format!("perm{}", c.below(k))),
        3..=5 => {
            // Tuplesets: relations without wildcards naming some non-user type.
            let tuplesets: Vec<(&RelSpec, Vec<usize>)> = def
                .rels
                .iter()
                .filter(|r| !r.wildcard)
                .map(|r| {
                    let mut types: Vec<usize> = r
                        .allowed
                        .iter()
                        .filter_map(|a| match a {
                            AllowedSpec::Direct(t) | AllowedSpec::Userset(t, _) if *t > 0 => {
                                Some(*t)
                            }
                            _ => None,
                        })
                        .collect();
                    types.dedup();
                    (r, types)
                })
                .filter(|(_, types)| !types.is_empty())
                .collect();
            if tuplesets.is_empty() {
                return any_rel(c);
            }
            let (ts, types) = c.pick(&tuplesets);
            let mut targets: Vec<String> = types.iter().flat_map(|t| defs[*t].names()).collect();
            targets.sort();
            targets.dedup();
            let target = c.pick(&targets).clone();
            let func = *c.pick(&[Func::Arrow, Func::Any, Func::All]);
            Ex::Arrow(ts.name.clone(), func, target)
        }
        7 => Ex::Nil,
        8 => Ex::SelfRef,
        _ => any_rel(c),
    }
}

fn gen_expr(c: &mut Choices<'_>, defs: &[DefSpec], i: usize, k: usize, depth: usize) -> Ex {
    if depth >= 2 || c.below(3) == 0 {
        return gen_leaf(c, defs, i, k);
    }
    let op = match c.below(4) {
        0 | 3 => '+',
        1 => '&',
        _ => '-',
    };
    let a = gen_expr(c, defs, i, k, depth + 1);
    let b = gen_expr(c, defs, i, k, depth + 1);
    Ex::Bin(op, Box::new(a), Box::new(b))
}

/// Whether `to` is reachable from `from` (or equal) along tuple edges.
fn reachable(
    edges: &BTreeMap<(usize, String), BTreeSet<(usize, String)>>,
    from: &(usize, String),
    to: &(usize, String),
) -> bool {
    let mut stack = vec![from.clone()];
    let mut seen = BTreeSet::new();
    while let Some(n) = stack.pop() {
        if &n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            stack.extend(edges.get(&n).into_iter().flatten().cloned());
        }
    }
    false
}

fn generate(bytes: &[u8]) -> Case {
    let mut c = Choices { bytes, pos: 0 };
    let n_defs = 2 + c.below(3);
    let pool_sizes: Vec<usize> = (0..n_defs).map(|_| 1 + c.below(5)).collect();
    let pools: Vec<Vec<String>> = pool_sizes
        .iter()
        .map(|&n| {
            (0..n)
                .map(|i| char::from(b'a' + i as u8).to_string())
                .collect()
        })
        .collect();

    // Caveats: none, `is_small`, `flag_on` or both may be used.
    let caveat_choice = c.below(5);
    let usable: Vec<usize> = match caveat_choice {
        0 | 1 => vec![],
        2 => vec![0],
        3 => vec![1],
        _ => vec![0, 1],
    };

    // Pass 1: shapes (relation wildcard flags, permission counts).
    let mut defs: Vec<DefSpec> = vec![DefSpec {
        name: TYPE_NAMES[0],
        rels: Vec::new(),
        perms: Vec::new(),
    }];
    for name in &TYPE_NAMES[1..n_defs] {
        let n_rel = 1 + c.below(3);
        let n_perm = c.below(5 - n_rel).min(3);
        let rels = (0..n_rel)
            .map(|k| {
                let wildcard = c.chance(1, 5);
                let caveat =
                    (!usable.is_empty() && !wildcard && c.chance(1, 2)).then(|| *c.pick(&usable));
                RelSpec {
                    name: format!("rel{k}"),
                    wildcard,
                    expiring: caveat.is_none() && c.chance(1, 4),
                    caveat,
                    also_plain: caveat.is_some() && c.chance(1, 2),
                    allowed: Vec::new(),
                }
            })
            .collect();
        let perms = (0..n_perm).map(|k| (format!("perm{k}"), Ex::Nil)).collect();
        defs.push(DefSpec { name, rels, perms });
    }
    // Userset targets on each type: relations without wildcards, and permissions.
    let userset_targets: Vec<Vec<String>> = defs
        .iter()
        .map(|d| {
            d.rels
                .iter()
                .filter(|r| !r.wildcard)
                .map(|r| r.name.clone())
                .chain(d.perms.iter().map(|p| p.0.clone()))
                .collect()
        })
        .collect();

    // Pass 2: allowed subject types.
    for def in defs.iter_mut().skip(1) {
        for rel in &mut def.rels {
            let allowed = if rel.wildcard {
                let t = c.below(n_defs);
                let mut a = vec![AllowedSpec::Wildcard(t)];
                if c.chance(1, 2) {
                    a.insert(0, AllowedSpec::Direct(t));
                }
                a
            } else {
                let mut a = Vec::new();
                for _ in 0..1 + c.below(3) {
                    let entry = match c.below(5) {
                        0 | 3 => AllowedSpec::Direct(0),
                        1 => AllowedSpec::Direct(c.below(n_defs)),
                        _ => {
                            let j = 1 + c.below(n_defs - 1);
                            if userset_targets[j].is_empty() {
                                AllowedSpec::Direct(j)
                            } else {
                                AllowedSpec::Userset(j, c.pick(&userset_targets[j]).clone())
                            }
                        }
                    };
                    if !a.contains(&entry) {
                        a.push(entry);
                    }
                }
                a
            };
            rel.allowed = allowed;
        }
    }

    // Pass 3: permission expressions (a permission refers only to earlier ones).
    for i in 1..n_defs {
        for k in 0..defs[i].perms.len() {
            let ex = gen_expr(&mut c, &defs, i, k, 0);
            defs[i].perms[k].1 = ex;
        }
    }
    let has_exclusion = defs
        .iter()
        .flat_map(|d| &d.perms)
        .any(|p| p.1.has_exclusion());
    let has_all = defs.iter().flat_map(|d| &d.perms).any(|p| p.1.has_all());
    let has_self = defs.iter().flat_map(|d| &d.perms).any(|p| p.1.has_self());

    // Tuples; acyclic (in the object graph) whenever exclusion occurs.
    let caveated = defs
        .iter()
        .flat_map(|d| &d.rels)
        .any(|r| r.caveat.is_some());
    let acyclic = has_exclusion || caveated || c.chance(1, 2);
    let n_tuples = 3 + c.below(23);
    let mut tuples: Vec<Tuple> = Vec::new();
    let mut edges: BTreeMap<(usize, String), BTreeSet<(usize, String)>> = BTreeMap::new();
    let mut has_wildcard = false;
    for _ in 0..n_tuples {
        let i = 1 + c.below(n_defs - 1);
        let rel = c.pick(&defs[i].rels).clone();
        let allowed = c.pick(&rel.allowed).clone();
        let rid = c.pick(&pools[i]).clone();
        let (j, sid, srel) = match allowed {
            AllowedSpec::Direct(j) => (j, c.pick(&pools[j]).clone(), None),
            AllowedSpec::Wildcard(j) => (j, WILDCARD.to_string(), None),
            AllowedSpec::Userset(j, m) => (j, c.pick(&pools[j]).clone(), Some(m)),
        };
        let edge = (j > 0 && sid != WILDCARD).then(|| (j, sid.clone()));
        if let Some(to) = &edge {
            if acyclic && reachable(&edges, to, &(i, rid.clone())) {
                continue;
            }
        }
        let subject = SubjectRef {
            object: ObjectRef::new(TYPE_NAMES[j], sid.clone()),
            relation: srel,
        };
        let mut t = Tuple::new(
            ObjectRef::new(TYPE_NAMES[i], rid.clone()),
            rel.name.clone(),
            subject,
        );
        if rel.expiring {
            t.expiration = [None, Some(FUTURE), Some(PAST)][c.below(3)];
        }
        if let Some(k) = rel.caveat {
            if !rel.also_plain || c.chance(2, 3) {
                let contexts = stored_contexts(k);
                t.caveat = Some(TupleCaveat {
                    name: CAVEATS[k].0.to_string(),
                    context: c.pick(&contexts).clone(),
                });
            }
        }
        if tuples.iter().any(|x| x.same_key(&t)) {
            continue;
        }
        has_wildcard |= sid == WILDCARD;
        tuples.push(t);
        if let Some(to) = edge {
            edges.entry((i, rid)).or_default().insert(to);
        }
    }

    let has_expiration = tuples.iter().any(|t| t.expiration.is_some());
    let has_caveats = tuples.iter().any(|t| t.caveat.is_some());
    let all_contexts = request_contexts();
    let contexts = if caveated {
        let first = c.pick(&all_contexts).clone();
        let second = c.pick(&all_contexts).clone();
        vec![first, second]
    } else {
        vec![Map::new()]
    };
    Case {
        text: render_schema(&defs),
        tuples,
        pools: (0..n_defs)
            .map(|t| (TYPE_NAMES[t].to_string(), pools[t].clone()))
            .collect(),
        acyclic,
        has_exclusion,
        has_wildcard,
        has_all,
        has_self,
        has_expiration,
        has_caveats,
        contexts,
    }
}

// ───────────────────────────── comparison ─────────────────────────────

#[derive(Debug, Default)]
struct Stats {
    cases: usize,
    not_compiled: usize,
    cyclic: usize,
    with_exclusion: usize,
    with_wildcard: usize,
    with_all: usize,
    with_self: usize,
    with_expiration: usize,
    with_caveats: usize,
    tuples: usize,
    checks: usize,
    allowed: usize,
    conditional: usize,
    userset_checks: usize,
    lookup_resources: usize,
    lookup_subjects: usize,
    wildcard_lookups: usize,
    expands: usize,
    depth_exceeded: usize,
    cache_hits: usize,
    group_index_answers: u64,
}

fn load<S: RelationStore>(store: &S, tuples: &[Tuple]) {
    if tuples.is_empty() {
        store.mark_applied(Revision(1)).expect("mark applied");
        return;
    }
    let batch = WriteBatch {
        ops: tuples.iter().cloned().map(Op::Touch).collect(),
        preconditions: vec![],
    };
    store
        .apply(&Tenant::default_tenant(), Revision(1), &batch)
        .expect("apply tuples");
}

fn outcome_of(allowed: bool) -> Outcome {
    if allowed {
        Outcome::Allowed
    } else {
        Outcome::Denied
    }
}

/// The engine's check result; `Ok(None)` for a tolerated depth error
/// (cyclic data only).
fn judge(
    result: &Result<Outcome, EngineError>,
    acyclic: bool,
    stats: &mut Stats,
) -> Result<Option<Outcome>, String> {
    match result {
        Ok(o) => Ok(Some(o.clone())),
        Err(EngineError::DepthExceeded { .. }) if !acyclic => {
            stats.depth_exceeded += 1;
            Ok(None)
        }
        Err(e) => Err(format!("engine error: {e}")),
    }
}

/// Compares every engine entry point with the reference on one case.
fn verify(
    case: &Case,
    schema: &Schema,
    engine: &Engine,
    reader: &dyn TupleReader,
    now: Timestamp,
    ctx: &Map<String, Value>,
    stats: &mut Stats,
) -> Result<(), String> {
    let live: Vec<Tuple> = case
        .tuples
        .iter()
        .filter(|t| !t.is_expired_at(now))
        .cloned()
        .collect();
    let reference = Reference::compute(schema, &case.pools, &live, ctx);

    // Resources: every object of every type with every relation/permission.
    let mut resources: Vec<(ObjectRef, String)> = Vec::new();
    // Subjects: every object directly, and every object#relation as a userset.
    let mut direct_subjects: Vec<SubjectRef> = Vec::new();
    let mut userset_subjects: Vec<SubjectRef> = Vec::new();
    for def in schema.definitions() {
        for id in &case.pools[&*def.name] {
            direct_subjects.push(SubjectRef::direct(&*def.name, id.as_str()));
            for rel in &def.relations {
                resources.push((
                    ObjectRef::new(&*def.name, id.as_str()),
                    rel.name.to_string(),
                ));
                userset_subjects.push(SubjectRef::userset(&*def.name, id.as_str(), &*rel.name));
            }
        }
    }

    // check and bulk_check, over direct and userset subjects.
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for (res, perm) in &resources {
        for s in direct_subjects.iter().chain(&userset_subjects) {
            let mut req = CheckRequest::new(res.clone(), perm.clone(), s.clone());
            req.now = now;
            req.context = ctx.clone();
            expected.push(reference.has(res, perm, s));
            requests.push(req);
        }
    }
    let describe = |r: &CheckRequest| {
        format!(
            "{}#{}@{} with {}",
            r.resource,
            r.permission,
            r.subject,
            Value::Object(r.context.clone())
        )
    };
    for (req, want) in requests.iter().zip(&expected) {
        let got = engine.check(reader, req).map(|r| r.outcome);
        stats.checks += 1;
        stats.userset_checks += usize::from(req.subject.relation.is_some());
        stats.allowed += usize::from(want.is_allowed());
        stats.conditional += usize::from(matches!(want, Outcome::Conditional { .. }));
        match judge(&got, case.acyclic, stats) {
            Ok(Some(g)) if &g != want => {
                return Err(format!(
                    "check {}: reference says {want}, engine says {g}",
                    describe(req),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("check {}: {e}", describe(req))),
        }
    }
    let bulk = engine.bulk_check(reader, &requests);
    if bulk.len() != requests.len() {
        return Err(format!(
            "bulk_check returned {} results for {} requests",
            bulk.len(),
            requests.len()
        ));
    }
    for ((req, want), got) in requests.iter().zip(&expected).zip(bulk) {
        let got = got.map(|r| r.outcome);
        match judge(&got, case.acyclic, stats) {
            Ok(Some(g)) if &g != want => {
                return Err(format!(
                    "bulk_check {}: reference says {want}, engine says {g}",
                    describe(req),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("bulk_check {}: {e}", describe(req))),
        }
    }

    // lookup_resources, paged by 3.
    for def in schema.definitions() {
        for rel in &def.relations {
            for s in direct_subjects.iter().chain(&userset_subjects) {
                stats.lookup_resources += 1;
                let want: Vec<(String, Outcome)> = case.pools[&*def.name]
                    .iter()
                    .map(|id| {
                        let o =
                            reference.has(&ObjectRef::new(&*def.name, id.as_str()), &rel.name, s);
                        (id.clone(), o)
                    })
                    .filter(|(_, o)| !o.is_denied())
                    .collect();
                let what = format!(
                    "lookup_resources({}, {}, {s}, {})",
                    def.name,
                    rel.name,
                    Value::Object(ctx.clone())
                );
                let mut got: Vec<(String, Outcome)> = Vec::new();
                let mut cursor: Option<String> = None;
                let mut pages = 0;
                loop {
                    pages += 1;
                    if pages > 100 {
                        return Err(format!("{what}: cursor does not advance"));
                    }
                    let page = match engine.lookup_resources(
                        reader,
                        &def.name,
                        &rel.name,
                        s,
                        ctx,
                        now,
                        cursor.as_deref(),
                        3,
                    ) {
                        Ok(p) => p,
                        Err(EngineError::DepthExceeded { .. }) if !case.acyclic => {
                            stats.depth_exceeded += 1;
                            got = want.clone();
                            break;
                        }
                        Err(e) => return Err(format!("{what}: engine error: {e}")),
                    };
                    if page.items.len() > 3 {
                        return Err(format!(
                            "{what}: page of {} items exceeds the limit 3",
                            page.items.len()
                        ));
                    }
                    for item in page.items {
                        got.push((item.id, item.outcome));
                    }
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                if got != want {
                    return Err(format!(
                        "{what}: reference says {want:?}, engine says {got:?}"
                    ));
                }
            }
        }
    }

    // lookup_subjects, for every subject type, directly and per relation.
    for (res, perm) in &resources {
        for sdef in schema.definitions() {
            let pool = &case.pools[&*sdef.name];
            let relations = std::iter::once(None)
                .chain(sdef.relations.iter().map(|r| Some(r.name.to_string())));
            for srel in relations {
                stats.lookup_subjects += 1;
                let what = format!(
                    "lookup_subjects({res}#{perm}, {}{})",
                    sdef.name,
                    srel.as_deref().map(|r| format!("#{r}")).unwrap_or_default()
                );
                let want: BTreeMap<String, Outcome> = pool
                    .iter()
                    .map(|id| {
                        let s = SubjectRef {
                            object: ObjectRef::new(&*sdef.name, id.as_str()),
                            relation: srel.clone(),
                        };
                        (id.clone(), reference.has(res, perm, &s))
                    })
                    .filter(|(_, o)| !o.is_denied())
                    .collect();
                let got = match engine.lookup_subjects(
                    reader,
                    res,
                    perm,
                    &sdef.name,
                    srel.as_deref(),
                    ctx,
                    now,
                ) {
                    Ok(g) => g,
                    Err(EngineError::DepthExceeded { .. }) if !case.acyclic => {
                        stats.depth_exceeded += 1;
                        continue;
                    }
                    Err(e) => return Err(format!("{what}: engine error: {e}")),
                };
                compare_subjects(&what, &got, &want, pool, srel.is_some(), true)?;
                stats.wildcard_lookups += usize::from(got.iter().any(|s| s.id == WILDCARD));
            }
        }
    }

    // expand: never fails on acyclic data; leaves are live stored subjects
    // (or, with `self`, objects themselves).
    let stored: BTreeSet<&SubjectRef> = live.iter().map(|t| &t.subject).collect();
    for (res, perm) in &resources {
        stats.expands += 1;
        match engine.expand(reader, res, perm, now) {
            Ok(tree) => {
                for leaf in tree.leaf_subjects() {
                    let self_leaf = case.has_self && leaf.relation.is_none() && !leaf.is_wildcard();
                    if !stored.contains(leaf) && !self_leaf {
                        return Err(format!("expand({res}#{perm}): leaf {leaf} is in no tuple"));
                    }
                }
            }
            Err(EngineError::DepthExceeded { .. }) if !case.acyclic => stats.depth_exceeded += 1,
            Err(e) => return Err(format!("expand({res}#{perm}): engine error: {e}")),
        }
    }
    Ok(())
}

/// Compares a lookup-subjects answer with the reference `want` (the ids of
/// the pool that have the permission, with their non-DENIED outcome).
///
/// Explicit ids must be exactly members of `want`, with the same outcome.
/// Without a wildcard entry they must be all of `want`. With `*` (excluding
/// `E`), the answer means "explicit ids, plus everyone not in `E` with the
/// wildcard's outcome": so `E` must be disjoint from `want`, and every other
/// pool id must be in `want` with that outcome.
fn compare_subjects(
    what: &str,
    got: &[LookupSubject],
    want: &BTreeMap<String, Outcome>,
    pool: &[String],
    userset: bool,
    complete: bool,
) -> Result<(), String> {
    let mut explicit = BTreeMap::new();
    let mut wildcard: Option<&LookupSubject> = None;
    for s in got {
        if s.outcome.is_denied() {
            return Err(format!("{what}: {} has outcome {}", s.id, s.outcome));
        }
        if s.id == WILDCARD {
            if wildcard.replace(s).is_some() {
                return Err(format!("{what}: two wildcard entries"));
            }
        } else if explicit.insert(s.id.clone(), s.outcome.clone()).is_some() {
            return Err(format!("{what}: {} returned twice", s.id));
        } else if !s.excluded.is_empty() {
            return Err(format!("{what}: non-wildcard {} has exclusions", s.id));
        }
    }
    if let Some((id, o)) = explicit.iter().find(|(id, o)| want.get(*id) != Some(o)) {
        return Err(format!(
            "{what}: {id} {o}: reference says {want:?}, engine says {explicit:?}"
        ));
    }
    match wildcard {
        None => {
            if complete && &explicit != want {
                return Err(format!(
                    "{what}: reference says {want:?}, engine says {explicit:?} (no wildcard)"
                ));
            }
        }
        Some(_) if userset => {
            return Err(format!("{what}: wildcard returned for a userset lookup"))
        }
        Some(w) => {
            let excluded: BTreeSet<&String> = w.excluded.iter().collect();
            if let Some(x) = excluded.iter().find(|x| want.contains_key(**x)) {
                return Err(format!(
                    "{what}: `*` excludes {x}, but the reference says {x} has it (reference {want:?}, engine {explicit:?} + * - {excluded:?})"
                ));
            }
            if let Some(x) = pool.iter().find(|x| {
                !excluded.contains(x)
                    && !explicit.contains_key(*x)
                    && want.get(*x) != Some(&w.outcome)
            }) {
                return Err(format!(
                    "{what}: `*` ({}) covers {x}, but the reference says {x} lacks it (reference {want:?}, engine {explicit:?} + * - {excluded:?})",
                    w.outcome
                ));
            }
        }
    }
    Ok(())
}

/// Generates, compiles and verifies one case against a store built by `open`.
fn run_case<S: RelationStore>(
    bytes: &[u8],
    open: &dyn Fn() -> S,
    stats: &RefCell<Stats>,
) -> Result<(), TestCaseError> {
    let case = generate(bytes);
    let mut st = stats.borrow_mut();
    st.cases += 1;
    let compiled = match compile(&case.text, &SchemaLimits::default()) {
        Ok(c) => c,
        Err(e) => {
            st.not_compiled += 1;
            return Err(TestCaseError::reject(format!(
                "schema does not compile: {e}"
            )));
        }
    };
    st.cyclic += usize::from(!case.acyclic);
    st.with_exclusion += usize::from(case.has_exclusion);
    st.with_wildcard += usize::from(case.has_wildcard);
    st.with_all += usize::from(case.has_all);
    st.with_self += usize::from(case.has_self);
    st.with_expiration += usize::from(case.has_expiration);
    st.with_caveats += usize::from(case.has_caveats);
    st.tuples += case.tuples.len();
    let schema = Arc::new(compiled.schema);
    let engine = Engine::new(schema.clone(), EngineConfig::default()).expect("engine");
    let store = open();
    load(&store, &case.tuples);
    let reader = store
        .snapshot(&Tenant::default_tenant(), Revision(1))
        .expect("snapshot");
    let fail = |m: String| TestCaseError::fail(format!("{m}\n{}", case.describe()));
    for ctx in &case.contexts {
        verify(
            &case,
            &schema,
            &engine,
            &reader,
            Timestamp::now(),
            ctx,
            &mut st,
        )
        .map_err(|m| fail(format!("with context {}: {m}", Value::Object(ctx.clone()))))?;
    }

    // More request context never changes a decided answer: whatever is
    // ALLOWED or DENIED without context stays so under each context (a
    // caveat it decides only settles a CONDITIONAL). Independent of the
    // reference, which could share a misreading of the semantics.
    if case.has_caveats {
        more_context_never_flips(&case, &schema, &engine, &reader).map_err(&fail)?;
    }

    // Again with a shared decision cache, which later queries hit; at two
    // request times between which the `PAST` tuples expire (an answer that
    // depended on an expiring tuple must never be served from the cache).
    let cache = Arc::new(DecisionCache::new(1 << 20));
    let cached = Engine::new(schema.clone(), EngineConfig::default())
        .expect("engine")
        .with_cache(cache.clone());
    // Caveated answers depend on the context: they must not be cached
    // either, so the contexts alternate.
    for (k, now) in [EARLY, LATER].into_iter().enumerate() {
        let ctx = &case.contexts[k % case.contexts.len()];
        verify(&case, &schema, &cached, &reader, now, ctx, &mut st).map_err(|m| {
            fail(format!(
                "with a decision cache, at {now:?}, with context {}: {m}",
                Value::Object(ctx.clone())
            ))
        })?;
    }
    st.cache_hits += cache.stats().hits as usize;

    // Again with the group index, built from the store once the schema is
    // stored too (as the server builds it): pure-nesting relations are then
    // answered from memory and must still match the reference.
    let tenant = Tenant::default_tenant();
    let record = SchemaVersionRecord {
        version: 1,
        text: case.text.clone(),
        ..SchemaVersionRecord::default()
    };
    store
        .apply(&tenant, Revision(2), &WriteBatch::new().put_schema(record))
        .expect("store the schema");
    let index = Arc::new(GroupIndex::new());
    index.rebuild_all(&store, std::slice::from_ref(&tenant));
    let indexed = Engine::new(schema.clone(), EngineConfig::default())
        .expect("engine")
        .with_group_index(index.clone(), Revision(2));
    let reader = store.snapshot(&tenant, Revision(2)).expect("snapshot");
    let ctx = &case.contexts[0];
    verify(
        &case,
        &schema,
        &indexed,
        &reader,
        Timestamp::now(),
        ctx,
        &mut st,
    )
    .map_err(|m| fail(format!("with the group index: {m}")))?;
    st.group_index_answers += index.stats().answers;
    Ok(())
}

/// Every check over the case's universe answered without context and
/// under each of the case's contexts: an ALLOWED or DENIED without context
/// must stay as it is.
fn more_context_never_flips(
    case: &Case,
    schema: &Schema,
    engine: &Engine,
    reader: &dyn TupleReader,
) -> Result<(), String> {
    let now = Timestamp::now();
    for def in schema.definitions() {
        for id in &case.pools[&*def.name] {
            for rel in &def.relations {
                for sdef in schema.definitions() {
                    for sid in &case.pools[&*sdef.name] {
                        let resource = ObjectRef::new(&*def.name, id.as_str());
                        let subject = SubjectRef::direct(&*sdef.name, sid.as_str());
                        let mut req = CheckRequest::new(resource, rel.name.to_string(), subject);
                        req.now = now;
                        let Ok(bare) = engine.check(reader, &req).map(|r| r.outcome) else {
                            continue;
                        };
                        if matches!(bare, Outcome::Conditional { .. }) {
                            continue;
                        }
                        for ctx in &case.contexts {
                            req.context = ctx.clone();
                            if let Ok(o) = engine.check(reader, &req).map(|r| r.outcome) {
                                if o != bare {
                                    return Err(format!(
                                        "{}#{}@{}: {bare} without context, {o} with {}",
                                        req.resource,
                                        req.permission,
                                        req.subject,
                                        Value::Object(ctx.clone())
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn run_property<S: RelationStore>(name: &str, cases: u32, open: &dyn Fn() -> S) {
    let config = Config {
        cases,
        failure_persistence: None,
        max_global_rejects: cases * 2,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let stats = RefCell::new(Stats::default());
    let start = Instant::now();
    let result = runner.run(&vec(any::<u8>(), 640), |bytes| {
        run_case(&bytes, open, &stats)
    });
    eprintln!("{name}: {:?} in {:.1?}", stats.borrow(), start.elapsed());
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, _)) => panic!("{name}: minimal failing case:\n{reason}"),
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
    let st = stats.borrow();
    assert_eq!(st.depth_exceeded, 0, "depth exceeded on small data");
}

#[test]
fn engine_matches_reference_mem_store() {
    run_property("mem", 150, &MemStore::new);
}

#[test]
fn engine_matches_reference_rocks_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counter = std::cell::Cell::new(0u32);
    run_property("rocks", 24, &|| {
        counter.set(counter.get() + 1);
        RocksStore::open(
            dir.path().join(counter.get().to_string()),
            RocksOptions {
                sync_writes: false,
                block_cache_bytes: 4 << 20,
                write_buffer_bytes: 4 << 20,
                background_jobs: 1,
            },
        )
        .expect("open rocks")
    });
}

/// The generator must produce schemas that compile (so the property tests
/// test something), with every feature represented.
#[test]
fn generator_compiles_and_covers_features() {
    let mut runner = TestRunner::deterministic();
    let strategy = vec(any::<u8>(), 640);
    let mut compiled = 0;
    let mut features = Stats::default();
    let total = 400;
    let mut failures = Vec::new();
    for _ in 0..total {
        let bytes = proptest::strategy::ValueTree::current(
            &proptest::strategy::Strategy::new_tree(&strategy, &mut runner).expect("tree"),
        );
        let case = generate(&bytes);
        match compile(&case.text, &SchemaLimits::default()) {
            Ok(_) => compiled += 1,
            Err(e) => failures.push(format!("{e}\n{}", case.text)),
        }
        features.cyclic += usize::from(!case.acyclic);
        features.with_exclusion += usize::from(case.has_exclusion);
        features.with_wildcard += usize::from(case.has_wildcard);
        features.with_all += usize::from(case.has_all);
        features.with_self += usize::from(case.has_self);
        features.with_expiration += usize::from(case.has_expiration);
        features.with_caveats += usize::from(case.has_caveats);
        features.tuples += case.tuples.len();
    }
    assert!(
        failures.is_empty(),
        "{compiled}/{total} compiled; first failure: {}",
        failures[0]
    );
    assert!(features.cyclic > total / 10, "{features:?}");
    assert!(features.with_exclusion > total / 5, "{features:?}");
    assert!(features.with_wildcard > total / 10, "{features:?}");
    assert!(features.with_all > total / 10, "{features:?}");
    assert!(features.with_self > total / 10, "{features:?}");
    assert!(features.with_expiration > total / 10, "{features:?}");
    assert!(features.with_caveats > total / 5, "{features:?}");
}

// ───────────────────────────── hand-written cases ─────────────────────────────

/// A schema, tuples in text form, a MemStore holding them and an engine;
/// `verify_all` compares every query with the reference, like the
/// property tests do.
struct Fixture {
    case: Case,
    schema: Arc<Schema>,
    engine: Engine,
    store: MemStore,
}

fn fixture(text: &str, tuples: &[&str]) -> Fixture {
    fixture_with(text, tuples, EngineConfig::default())
}

fn fixture_with(text: &str, tuples: &[&str], config: EngineConfig) -> Fixture {
    let compiled = compile(text, &SchemaLimits::default())
        .unwrap_or_else(|e| panic!("{}", e.render("test.zed", text)));
    let tuples: Vec<Tuple> = tuples
        .iter()
        .map(|t| Tuple::parse(t).unwrap_or_else(|e| panic!("{t}: {e}")))
        .collect();
    // The universe: every id in the tuples, plus one nobody mentions.
    let mut pools: BTreeMap<String, BTreeSet<String>> = compiled
        .schema
        .definitions()
        .iter()
        .map(|d| (d.name.to_string(), BTreeSet::from(["nobody".to_string()])))
        .collect();
    for t in &tuples {
        if let Some(p) = pools.get_mut(&t.resource.object_type) {
            p.insert(t.resource.object_id.clone());
        }
        if let Some(p) = pools.get_mut(&t.subject.object.object_type) {
            if !t.subject.is_wildcard() {
                p.insert(t.subject.object.object_id.clone());
            }
        }
    }
    let store = MemStore::new();
    load(&store, &tuples);
    let schema = Arc::new(compiled.schema);
    let engine = Engine::new(schema.clone(), config).expect("engine");
    Fixture {
        case: Case {
            text: text.to_string(),
            tuples,
            pools: pools
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            acyclic: true,
            has_exclusion: false,
            has_wildcard: false,
            has_all: false,
            has_self: false,
            has_expiration: false,
            has_caveats: false,
            contexts: vec![Map::new()],
        },
        schema,
        engine,
        store,
    }
}

fn obj(s: &str) -> ObjectRef {
    let (t, id) = s.split_once(':').expect("type:id");
    ObjectRef::new(t, id)
}

fn subj(s: &str) -> SubjectRef {
    match s.split_once('#') {
        Some((o, rel)) => SubjectRef {
            object: obj(o),
            relation: Some(rel.to_string()),
        },
        None => SubjectRef::direct(obj(s).object_type, obj(s).object_id),
    }
}

impl Fixture {
    fn reader(&self) -> impl TupleReader + '_ {
        self.store
            .snapshot(&Tenant::default_tenant(), Revision(1))
            .expect("snapshot")
    }

    fn check(
        &self,
        resource: &str,
        permission: &str,
        subject: &str,
    ) -> Result<Outcome, EngineError> {
        let req = CheckRequest::new(obj(resource), permission, subj(subject));
        self.engine.check(&self.reader(), &req).map(|r| r.outcome)
    }

    fn allowed(&self, resource: &str, permission: &str, subject: &str) -> bool {
        match self.check(resource, permission, subject) {
            Ok(Outcome::Allowed) => true,
            Ok(Outcome::Denied) => false,
            other => panic!("check {resource}#{permission}@{subject}: {other:?}"),
        }
    }

    fn lookup_resources(
        &self,
        resource_type: &str,
        permission: &str,
        subject: &str,
    ) -> Result<Vec<String>, EngineError> {
        let page = self.engine.lookup_resources(
            &self.reader(),
            resource_type,
            permission,
            &subj(subject),
            &Map::new(),
            Timestamp::now(),
            None,
            1000,
        )?;
        assert_eq!(page.cursor, None);
        Ok(page.items.into_iter().map(|r| r.id).collect())
    }

    fn lookup_subjects(
        &self,
        resource: &str,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
    ) -> Vec<LookupSubject> {
        self.engine
            .lookup_subjects(
                &self.reader(),
                &obj(resource),
                permission,
                subject_type,
                subject_relation,
                &Map::new(),
                Timestamp::now(),
            )
            .expect("lookup_subjects")
    }

    fn subject_ids(
        &self,
        resource: &str,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
    ) -> Vec<String> {
        self.lookup_subjects(resource, permission, subject_type, subject_relation)
            .into_iter()
            .map(|s| s.id)
            .collect()
    }

    /// Every check, bulk check, lookup and expand agrees with the reference.
    fn verify_all(&self) {
        self.verify_with(&Map::new());
    }

    /// [`Fixture::verify_all`] under a request context.
    fn verify_with(&self, ctx: &Map<String, Value>) {
        let mut stats = Stats::default();
        verify(
            &self.case,
            &self.schema,
            &self.engine,
            &self.reader(),
            Timestamp::now(),
            ctx,
            &mut stats,
        )
        .unwrap_or_else(|m| panic!("{m}\n{}", self.case.describe()));
        assert!(stats.checks > 0);
    }

    /// A check under a request context (JSON object text).
    fn check_with(&self, resource: &str, permission: &str, subject: &str, ctx: &str) -> Outcome {
        let mut req = CheckRequest::new(obj(resource), permission, subj(subject));
        req.context = to_map(serde_json::from_str(ctx).expect("json"));
        self.engine
            .check(&self.reader(), &req)
            .map(|r| r.outcome)
            .unwrap_or_else(|e| panic!("check {resource}#{permission}@{subject}: {e}"))
    }
}

const GROUPS: &str = "
definition user {}

definition group {
    relation member: user | group#member
}

definition document {
    relation viewer: user | group#member
    relation editor: user
    permission view = viewer + editor
}
";

#[test]
fn nested_groups_three_deep() {
    let f = fixture(
        GROUPS,
        &[
            "group:a#member@user:alice",
            "group:b#member@group:a#member",
            "group:c#member@group:b#member",
            "document:d#viewer@group:c#member",
            "document:d#editor@user:bob",
            "group:c#member@user:carol",
        ],
    );
    assert!(f.allowed("document:d", "view", "user:alice"));
    assert!(f.allowed("document:d", "view", "user:bob"));
    assert!(f.allowed("document:d", "view", "user:carol"));
    assert!(!f.allowed("document:d", "view", "user:mallory"));
    assert!(f.allowed("group:c", "member", "user:alice"));
    assert!(!f.allowed("group:a", "member", "user:carol"));
    assert!(f.allowed("document:d", "view", "group:a#member"));
    assert_eq!(
        f.lookup_resources("document", "view", "user:alice")
            .unwrap(),
        ["d"]
    );
    assert_eq!(
        f.lookup_resources("group", "member", "user:alice").unwrap(),
        ["a", "b", "c"]
    );
    assert_eq!(
        f.subject_ids("document:d", "view", "user", None),
        ["alice", "bob", "carol"]
    );
    assert_eq!(
        f.subject_ids("document:d", "view", "group", Some("member")),
        ["a", "b", "c"]
    );
    f.verify_all();
}

#[test]
fn folder_hierarchy_via_arrows() {
    let f = fixture(
        "
definition user {}

definition folder {
    relation parent: folder
    relation viewer: user
    permission view = viewer + parent->view
}

definition document {
    relation folder: folder
    relation viewer: user
    permission view = viewer + folder->view
}
",
        &[
            "folder:root#viewer@user:alice",
            "folder:mid#parent@folder:root",
            "folder:leaf#parent@folder:mid",
            "folder:leaf#viewer@user:bob",
            "document:readme#folder@folder:leaf",
            "document:other#viewer@user:carol",
        ],
    );
    for folder in ["folder:root", "folder:mid", "folder:leaf"] {
        assert!(f.allowed(folder, "view", "user:alice"), "{folder}");
    }
    assert!(f.allowed("document:readme", "view", "user:alice"));
    assert!(f.allowed("document:readme", "view", "user:bob"));
    assert!(!f.allowed("folder:mid", "view", "user:bob"));
    assert!(!f.allowed("document:readme", "view", "user:carol"));
    assert!(!f.allowed("document:other", "view", "user:alice"));
    assert_eq!(
        f.lookup_resources("folder", "view", "user:bob").unwrap(),
        ["leaf"]
    );
    assert_eq!(
        f.lookup_resources("folder", "view", "user:alice").unwrap(),
        ["leaf", "mid", "root"]
    );
    assert_eq!(
        f.lookup_resources("document", "view", "user:alice")
            .unwrap(),
        ["readme"]
    );
    assert_eq!(
        f.subject_ids("document:readme", "view", "user", None),
        ["alice", "bob"]
    );
    f.verify_all();
}

#[test]
fn exclusion_with_wildcard() {
    let f = fixture(
        "
definition user {}

definition document {
    relation viewer: user | user:*
    relation banned: user
    permission view = viewer - banned
}
",
        &[
            "document:d#viewer@user:*",
            "document:d#banned@user:eve",
            "document:e#viewer@user:alice",
            "document:e#banned@user:alice",
        ],
    );
    assert!(f.allowed("document:d", "view", "user:alice"));
    assert!(
        f.allowed("document:d", "view", "user:zed"),
        "a user no tuple names"
    );
    assert!(!f.allowed("document:d", "view", "user:eve"));
    assert!(!f.allowed("document:e", "view", "user:alice"));
    assert_eq!(
        f.lookup_resources("document", "view", "user:eve").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        f.lookup_resources("document", "view", "user:zed").unwrap(),
        ["d"]
    );
    let subjects = f.lookup_subjects("document:d", "view", "user", None);
    let wildcard = subjects
        .iter()
        .find(|s| s.id == WILDCARD)
        .expect("wildcard entry");
    assert_eq!(wildcard.excluded, ["eve"]);
    assert!(!subjects.iter().any(|s| s.id == "eve"), "{subjects:?}");
    assert!(f
        .lookup_subjects("document:e", "view", "user", None)
        .is_empty());
    f.verify_all();
}

#[test]
fn all_versus_any() {
    let f = fixture(
        "
definition user {}

definition team {
    relation member: user
}

definition org {
    relation admin: user
}

definition document {
    relation team: team
    relation owner: team | org
    permission any_member = team.any(member)
    permission all_members = team.all(member)
    permission arrow_member = team->member
    permission all_owners = owner.all(member)
}
",
        &[
            "document:d#team@team:t1",
            "document:d#team@team:t2",
            "team:t1#member@user:alice",
            "team:t2#member@user:alice",
            "team:t1#member@user:bob",
            "document:lonely#owner@team:t1",
            "document:mixed#owner@team:t1",
            "document:mixed#owner@org:o",
            "org:o#admin@user:alice",
        ],
    );
    for p in ["any_member", "all_members", "arrow_member"] {
        assert!(f.allowed("document:d", p, "user:alice"), "{p}");
        assert!(!f.allowed("document:d", p, "user:carol"), "{p}");
        // No team at all: nobody, for `.all` too.
        assert!(!f.allowed("document:lonely", p, "user:alice"), "{p}");
    }
    assert!(f.allowed("document:d", "any_member", "user:bob"));
    assert!(f.allowed("document:d", "arrow_member", "user:bob"));
    assert!(!f.allowed("document:d", "all_members", "user:bob"));
    // `.all` over a type lacking the target (org has no `member`): denied.
    assert!(f.allowed("document:lonely", "all_owners", "user:alice"));
    assert!(!f.allowed("document:mixed", "all_owners", "user:alice"));
    assert_eq!(
        f.lookup_resources("document", "all_members", "user:alice")
            .unwrap(),
        ["d"]
    );
    assert!(f
        .lookup_resources("document", "all_members", "user:bob")
        .unwrap()
        .is_empty());
    assert_eq!(
        f.subject_ids("document:d", "all_members", "user", None),
        ["alice"]
    );
    assert_eq!(
        f.subject_ids("document:d", "any_member", "user", None),
        ["alice", "bob"]
    );
    f.verify_all();
}

#[test]
fn cyclic_group_membership_terminates() {
    let f = fixture(
        GROUPS,
        &[
            "group:g1#member@group:g2#member",
            "group:g2#member@group:g1#member",
            "group:g1#member@user:alice",
            "group:g3#member@group:g3#member",
            "group:g4#member@group:g3#member",
            "document:d#viewer@group:g2#member",
            "document:e#viewer@group:g4#member",
        ],
    );
    for g in ["group:g1", "group:g2"] {
        assert!(f.allowed(g, "member", "user:alice"), "{g}");
        assert!(!f.allowed(g, "member", "user:bob"), "{g}");
    }
    assert!(!f.allowed("group:g3", "member", "user:alice"));
    assert!(!f.allowed("group:g4", "member", "user:alice"));
    assert!(f.allowed("document:d", "view", "user:alice"));
    assert!(!f.allowed("document:d", "view", "user:bob"));
    assert!(!f.allowed("document:e", "view", "user:alice"));
    assert!(f.allowed("group:g2", "member", "group:g1#member"));
    assert!(f.allowed("group:g1", "member", "group:g2#member"));
    assert_eq!(
        f.lookup_resources("group", "member", "user:alice").unwrap(),
        ["g1", "g2"]
    );
    assert_eq!(
        f.lookup_resources("document", "view", "user:alice")
            .unwrap(),
        ["d"]
    );
    assert_eq!(f.subject_ids("group:g2", "member", "user", None), ["alice"]);
    assert!(f.subject_ids("group:g4", "member", "user", None).is_empty());
    assert_eq!(
        f.subject_ids("document:d", "view", "group", Some("member")),
        ["g1", "g2"]
    );
    // Bulk checks share one memo: answers must not depend on order.
    let subjects = ["user:alice", "user:bob"];
    let resources = ["group:g1", "group:g2", "group:g3", "group:g4"];
    let requests: Vec<CheckRequest> = resources
        .iter()
        .rev()
        .flat_map(|r| {
            subjects
                .iter()
                .map(move |s| CheckRequest::new(obj(r), "member", subj(s)))
        })
        .collect();
    let bulk = f.engine.bulk_check(&f.reader(), &requests);
    for (req, got) in requests.iter().zip(bulk) {
        let want = req.subject.object.object_id == "alice"
            && ["g1", "g2"].contains(&req.resource.object_id.as_str());
        assert_eq!(
            got.expect("bulk").outcome,
            outcome_of(want),
            "{}#member@{}",
            req.resource,
            req.subject
        );
    }
    f.verify_all();
}

#[test]
fn userset_subject_query() {
    let f = fixture(
        GROUPS,
        &[
            "document:d#viewer@group:eng#member",
            "group:all#member@group:eng#member",
            "document:e#viewer@group:all#member",
            "document:f#viewer@user:alice",
            "group:eng#member@user:alice",
        ],
    );
    assert!(f.allowed("document:d", "view", "group:eng#member"));
    assert!(f.allowed("document:e", "view", "group:eng#member"));
    assert!(!f.allowed("document:f", "view", "group:eng#member"));
    // `all` contains `eng`, not the other way round.
    assert!(!f.allowed("document:d", "view", "group:all#member"));
    assert!(f.allowed("document:e", "view", "group:all#member"));
    assert!(f.allowed("group:eng", "member", "group:eng#member"));
    assert_eq!(
        f.lookup_resources("document", "view", "group:eng#member")
            .unwrap(),
        ["d", "e"]
    );
    assert_eq!(
        f.lookup_resources("group", "member", "group:eng#member")
            .unwrap(),
        ["all", "eng"]
    );
    assert_eq!(
        f.subject_ids("document:e", "view", "group", Some("member")),
        ["all", "eng"]
    );
    assert_eq!(f.subject_ids("document:e", "view", "user", None), ["alice"]);
    f.verify_all();
}

#[test]
fn depth_limit_is_enforced() {
    let mut tuples: Vec<String> = (0..59)
        .map(|i| format!("group:g{i}#member@group:g{}#member", i + 1))
        .collect();
    tuples.push("group:g59#member@user:alice".into());
    tuples.push("document:d#viewer@group:g0#member".into());
    let tuples: Vec<&str> = tuples.iter().map(String::as_str).collect();
    let f = fixture_with(GROUPS, &tuples, EngineConfig { max_depth: 50 });
    for subject in ["user:alice", "user:bob"] {
        let got = f.check("document:d", "view", subject);
        assert!(
            matches!(got, Err(EngineError::DepthExceeded { max_depth: 50 })),
            "{subject}: {got:?}"
        );
    }
    assert!(matches!(
        f.lookup_resources("document", "view", "user:alice"),
        Err(EngineError::DepthExceeded { .. })
    ));
    // Expand lists usersets as leaves (one level), so it is not deep here.
    let expanded = f
        .engine
        .expand(&f.reader(), &obj("document:d"), "view", Timestamp::now());
    assert!(expanded.is_ok(), "{expanded:?}");
    // Shallow questions on the same data still answer.
    assert!(f.allowed("group:g30", "member", "user:alice"));

    let deep = fixture_with(GROUPS, &tuples, EngineConfig { max_depth: 100 });
    assert!(deep.allowed("document:d", "view", "user:alice"));
    assert!(!deep.allowed("document:d", "view", "user:bob"));

    // Arrows: a 60-deep folder chain; expand follows arrows as subtrees.
    let folders = "
definition user {}

definition folder {
    relation parent: folder
    relation viewer: user
    permission view = viewer + parent->view
}
";
    let mut tuples: Vec<String> = (0..59)
        .map(|i| format!("folder:f{i}#parent@folder:f{}", i + 1))
        .collect();
    tuples.push("folder:f59#viewer@user:alice".into());
    let tuples: Vec<&str> = tuples.iter().map(String::as_str).collect();
    let f = fixture_with(folders, &tuples, EngineConfig { max_depth: 50 });
    let got = f.check("folder:f0", "view", "user:alice");
    assert!(
        matches!(got, Err(EngineError::DepthExceeded { max_depth: 50 })),
        "{got:?}"
    );
    let expanded = f
        .engine
        .expand(&f.reader(), &obj("folder:f0"), "view", Timestamp::now());
    assert!(
        matches!(expanded, Err(EngineError::DepthExceeded { max_depth: 50 })),
        "{expanded:?}"
    );
    assert!(f.allowed("folder:f40", "view", "user:alice"));
    let deep = fixture_with(folders, &tuples, EngineConfig { max_depth: 200 });
    assert!(deep.allowed("folder:f0", "view", "user:alice"));
    assert!(deep
        .engine
        .expand(&deep.reader(), &obj("folder:f0"), "view", Timestamp::now())
        .is_ok());
}

#[test]
fn debug_trace_when_asked() {
    let f = fixture(
        GROUPS,
        &[
            "group:a#member@user:alice",
            "group:b#member@group:a#member",
            "document:d#viewer@group:b#member",
        ],
    );
    let mut req = CheckRequest::new(obj("document:d"), "view", subj("user:alice"));
    let plain = f.engine.check(&f.reader(), &req).expect("check");
    assert_eq!(plain.outcome, Outcome::Allowed);
    assert!(plain.trace.is_none());
    req.trace = true;
    let traced = f.engine.check(&f.reader(), &req).expect("check");
    assert_eq!(traced.outcome, Outcome::Allowed);
    let trace = traced.trace.expect("trace requested");
    assert_eq!(trace.outcome, Outcome::Allowed);
    assert!(
        trace.label.contains("document:d#view"),
        "{}",
        trace.render()
    );
    assert!(!trace.children.is_empty(), "{}", trace.render());
    let text = trace.render();
    assert!(text.contains("group:a#member"), "{text}");
    assert!(text.contains("user:alice"), "the deciding tuple: {text}");
    // A denial is traced too; bulk checks honour the flag per request.
    let denied = CheckRequest {
        trace: true,
        ..CheckRequest::new(obj("document:d"), "view", subj("user:bob"))
    };
    let bulk = f.engine.bulk_check(&f.reader(), &[req.clone(), denied]);
    let traces: Vec<_> = bulk.into_iter().map(|r| r.expect("bulk").trace).collect();
    assert!(traces
        .iter()
        .all(|t| t.as_ref().is_some_and(|t| !t.render().is_empty())));
    assert_eq!(
        traces[1].as_ref().map(|t| t.outcome.clone()),
        Some(Outcome::Denied)
    );
}

/// Regression (found by the property test): `check` allows `group:b`
/// (through `group:b#itself`, `itself = self`), so `lookup_subjects` must
/// return it although it appears in no tuple as a direct subject.
#[test]
fn lookup_subjects_finds_subjects_reached_through_self() {
    let f = fixture(
        "
use self

definition user {}

definition group {
    relation member: group#itself
    permission itself = self
}
",
        &["group:a#member@group:b#itself"],
    );
    assert!(f.allowed("group:a", "member", "group:b"));
    assert_eq!(
        f.lookup_resources("group", "member", "group:b").unwrap(),
        ["a"]
    );
    assert_eq!(f.subject_ids("group:a", "member", "group", None), ["b"]);
}

/// Regression (found by the property test): an answer built from a memo hit
/// on an expiring tuple's answer must not reach the decision cache.
#[test]
fn decision_cache_does_not_outlive_expiring_tuples() {
    let text = "
use expiration

definition user {}

definition document {
    relation viewer: user with expiration
    permission view = viewer
    permission view_too = viewer
    permission both = view & view_too
}
";
    let schema = Arc::new(
        compile(text, &SchemaLimits::default())
            .expect("schema")
            .schema,
    );
    let mut tuple = Tuple::parse("document:d#viewer@user:alice").expect("tuple");
    tuple.expiration = Some(Timestamp(2_000_000_000));
    let store = MemStore::new();
    load(&store, &[tuple]);
    let reader = store
        .snapshot(&Tenant::default_tenant(), Revision(1))
        .expect("snapshot");
    let check = |engine: &Engine, permission: &str, now: i64| {
        let mut req = CheckRequest::new(obj("document:d"), permission, subj("user:alice"));
        req.now = Timestamp(now);
        engine.check(&reader, &req).expect("check").outcome
    };
    let cache = Arc::new(DecisionCache::new(1 << 20));
    let engine = Engine::new(schema, EngineConfig::default())
        .expect("engine")
        .with_cache(cache);
    // Before the tuple expires: `both` evaluates `view` (reading the
    // expiring tuple: volatile, not cached), then `view_too` from the memo
    // of `viewer` — not marked volatile, so `view_too` is cached.
    assert_eq!(check(&engine, "both", 1_999_999_000), Outcome::Allowed);
    // After it expired, nobody may view.
    for permission in ["viewer", "view", "view_too", "both"] {
        assert_eq!(
            check(&engine, permission, 2_000_001_000),
            Outcome::Denied,
            "{permission}"
        );
    }
}

const CAVEATED: &str = "
caveat is_small(x int, limit int) {
    x <= limit
}

caveat flag_on(flag bool) {
    flag
}

definition user {}

definition group {
    relation member: user | user with flag_on
}

definition folder {
    relation viewer: user with is_small
    relation banned: user with flag_on
}

definition document {
    relation folder: folder | folder with flag_on
    relation viewer: user | group#member with flag_on
    relation editor: user with is_small
    relation banned: user with flag_on
    permission via_folder = folder->viewer
    permission both = viewer & editor
    permission allowed = viewer - banned
    permission edit_unless_banned = editor - banned
}
";

fn cond(names: &[&str]) -> Outcome {
    Outcome::conditional(names.iter().map(|n| n.to_string()))
}

/// Issue 23: each branch of `.all()` is `caveat ∧ member`; a tupleset
/// relationship whose caveat is false makes the whole `.all()` false (as
/// SpiceDB answers), and more context never turns DENIED into ALLOWED.
#[test]
fn all_over_caveated_tupleset_relationships() {
    let f = fixture(
        "
definition user {}

caveat flag_on(flag bool) {
    flag
}

definition team {
    relation member: user
}

definition document {
    relation team: team with flag_on | team
    permission all_members = team.all(member)
    permission any_member = team.any(member)
}
",
        &[
            "team:t1#member@user:alice",
            "team:t2#member@user:alice",
            "document:false_true#team@team:t1[flag_on:{\"flag\":false}]",
            "document:false_true#team@team:t2[flag_on:{\"flag\":true}]",
            "document:open_plain#team@team:t1[flag_on]",
            "document:open_plain#team@team:t2",
        ],
    );
    let all = |res: &str, ctx: &str| f.check_with(res, "all_members", "user:alice", ctx);
    assert_eq!(all("document:false_true", "{}"), Outcome::Denied);
    assert_eq!(
        f.check_with("document:false_true", "any_member", "user:alice", "{}"),
        Outcome::Allowed
    );
    assert!(matches!(
        all("document:open_plain", "{}"),
        Outcome::Conditional { .. }
    ));
    assert_eq!(
        all("document:open_plain", r#"{"flag": true}"#),
        Outcome::Allowed
    );
    assert_eq!(
        all("document:open_plain", r#"{"flag": false}"#),
        Outcome::Denied
    );
    f.verify_with(&to_map(json!({"flag": false})));
    f.verify_with(&to_map(json!({"flag": true})));
    f.verify_all();
}

#[test]
fn caveat_under_an_arrow() {
    let f = fixture(
        CAVEATED,
        &[
            r#"document:d#folder@folder:f[flag_on]"#,
            r#"folder:f#viewer@user:alice[is_small:{"limit":3}]"#,
            "document:e#folder@folder:g",
            r#"folder:g#viewer@user:alice[is_small:{"x":1,"limit":3}]"#,
        ],
    );
    let via = |r: &str, ctx: &str| f.check_with(r, "via_folder", "user:alice", ctx);
    assert_eq!(via("document:d", "{}"), cond(&["flag", "x"]));
    assert_eq!(via("document:d", r#"{"x": 1}"#), cond(&["flag"]));
    assert_eq!(via("document:d", r#"{"flag": true}"#), cond(&["x"]));
    assert_eq!(
        via("document:d", r#"{"flag": true, "x": 2}"#),
        Outcome::Allowed
    );
    assert_eq!(
        via("document:d", r#"{"flag": true, "x": 4}"#),
        Outcome::Denied
    );
    assert_eq!(
        via("document:d", r#"{"flag": false, "x": 1}"#),
        Outcome::Denied
    );
    assert_eq!(via("document:e", "{}"), Outcome::Allowed);
    for ctx in [
        r#"{}"#,
        r#"{"x": 1}"#,
        r#"{"flag": true}"#,
        r#"{"flag": true, "x": 9}"#,
    ] {
        f.verify_with(&to_map(serde_json::from_str(ctx).unwrap()));
    }
}

#[test]
fn caveat_in_an_intersection_with_a_denied_side_is_denied() {
    let f = fixture(
        CAVEATED,
        &[
            r#"document:d#editor@user:alice[is_small]"#,
            "document:d#viewer@user:bob",
            r#"document:d#editor@user:bob[is_small]"#,
        ],
    );
    // alice is no viewer: DENIED, not CONDITIONAL, whatever the context.
    assert_eq!(
        f.check_with("document:d", "both", "user:alice", "{}"),
        Outcome::Denied
    );
    assert_eq!(
        f.check_with("document:d", "both", "user:bob", "{}"),
        cond(&["limit", "x"])
    );
    assert_eq!(
        f.check_with("document:d", "both", "user:bob", r#"{"x": 1, "limit": 2}"#),
        Outcome::Allowed
    );
    for ctx in [r#"{}"#, r#"{"x": 1}"#, r#"{"x": 1, "limit": 0}"#] {
        f.verify_with(&to_map(serde_json::from_str(ctx).unwrap()));
    }
}

#[test]
fn exclusion_of_a_conditional_is_conditional() {
    let f = fixture(
        CAVEATED,
        &[
            "document:d#viewer@user:alice",
            r#"document:d#banned@user:alice[flag_on]"#,
            r#"document:d#editor@user:bob[is_small:{"x":1}]"#,
            r#"document:d#banned@user:bob[flag_on:{"flag":false}]"#,
        ],
    );
    let allowed = |ctx: &str| f.check_with("document:d", "allowed", "user:alice", ctx);
    assert_eq!(allowed("{}"), cond(&["flag"]));
    assert_eq!(allowed(r#"{"flag": true}"#), Outcome::Denied);
    assert_eq!(allowed(r#"{"flag": false}"#), Outcome::Allowed);
    // A conditional base minus a DENIED side stays conditional.
    assert_eq!(
        f.check_with("document:d", "edit_unless_banned", "user:bob", "{}"),
        cond(&["limit"])
    );
    let lookup = f
        .engine
        .lookup_resources(
            &f.reader(),
            "document",
            "allowed",
            &subj("user:alice"),
            &Map::new(),
            Timestamp::now(),
            None,
            0,
        )
        .expect("lookup");
    assert_eq!(lookup.items.len(), 1);
    assert_eq!(lookup.items[0].outcome, cond(&["flag"]));
    for ctx in [
        r#"{}"#,
        r#"{"flag": true}"#,
        r#"{"flag": false, "limit": 1}"#,
    ] {
        f.verify_with(&to_map(serde_json::from_str(ctx).unwrap()));
    }
}

#[test]
fn stored_context_beats_request_context() {
    let f = fixture(
        CAVEATED,
        &[
            r#"document:d#editor@user:alice[is_small:{"limit":3}]"#,
            r#"group:g#member@user:bob[flag_on:{"flag":false}]"#,
            r#"document:d#viewer@group:g#member[flag_on:{"flag":true}]"#,
        ],
    );
    let edit = |ctx: &str| f.check_with("document:d", "editor", "user:alice", ctx);
    assert_eq!(edit(r#"{"x": 2, "limit": 100}"#), Outcome::Allowed);
    assert_eq!(edit(r#"{"x": 5, "limit": 100}"#), Outcome::Denied);
    assert_eq!(edit(r#"{"limit": 100}"#), cond(&["x"]));
    // Each tuple's own stored value wins: the group tuple's `false` over the
    // request's `true`, the document tuple's `true` over the request's `false`.
    for ctx in [r#"{"flag": true}"#, r#"{"flag": false}"#, "{}"] {
        assert_eq!(
            f.check_with("document:d", "viewer", "user:bob", ctx),
            Outcome::Denied,
            "{ctx}"
        );
        assert_eq!(
            f.check_with("document:d", "viewer", "group:g#member", ctx),
            Outcome::Allowed,
            "{ctx}"
        );
        f.verify_with(&to_map(serde_json::from_str(ctx).unwrap()));
    }
}
