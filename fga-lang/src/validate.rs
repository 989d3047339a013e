//! Semantic validation of a model, as upstream's validate-dsl.ts
//! (`validateJSON`): names, schema version, undefined relations and types,
//! tuplesets, duplicates, entry points and loops, conditions. With the DSL
//! lines at hand, errors carry line and column as upstream computes them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{DslError, Range};
use crate::model::{AuthorizationModel, RelationReference, TypeDefinition, Userset};
use crate::names::{validate_relation_name, validate_type_name, RELATION_RULE, TYPE_RULE};

/// Error types (`metadata.errorType`) as upstream names them.
pub mod error_type {
    pub const SCHEMA_VERSION_REQUIRED: &str = "schema-version-required";
    pub const RESERVED_TYPE_KEYWORDS: &str = "reserved-type-keywords";
    pub const RESERVED_RELATION_KEYWORDS: &str = "reserved-relation-keywords";
    pub const INVALID_NAME: &str = "invalid-name";
    pub const MISSING_DEFINITION: &str = "missing-definition";
    pub const INVALID_RELATION_TYPE: &str = "invalid-relation-type";
    pub const INVALID_RELATION_ON_TUPLESET: &str = "invalid-relation-on-tupleset";
    pub const INVALID_TYPE: &str = "invalid-type";
    pub const RELATION_NO_ENTRYPOINT: &str = "relation-no-entry-point";
    pub const TUPLESET_NOT_DIRECT: &str = "tupleuserset-not-direct";
    pub const DUPLICATED_ERROR: &str = "duplicated-error";
    pub const ASSIGNABLE_RELATION_MUST_HAVE_TYPE: &str = "assignable-relation-must-have-type";
    pub const INVALID_SCHEMA: &str = "invalid-schema";
    pub const TYPE_WILDCARD_RELATION: &str = "type-wildcard-relation";
    pub const CONDITION_NOT_DEFINED: &str = "condition-not-defined";
    pub const CONDITION_NOT_USED: &str = "condition-not-used";
    pub const DIFFERENT_NESTED_CONDITION_NAME: &str = "different-nested-condition-name";
    pub const MULTIPLE_MODULES_IN_FILE: &str = "multiple-modules-in-file";
}
use error_type as et;

/// Validates a model; `dsl` (the source it was parsed from) positions the
/// errors.
pub fn validate_model(model: &AuthorizationModel, dsl: Option<&str>) -> Vec<DslError> {
    let lines: Option<Vec<&str>> = dsl.map(|d| d.split('\n').collect());
    let mut v = Validator {
        lines,
        errors: Vec::new(),
        file_modules: BTreeMap::new(),
    };
    v.run(model);
    v.errors
}

/// Upstream's `customResolver`: (found index, raw line, symbol) → column.
type Resolver<'r> = &'r dyn Fn(usize, &str, &str) -> usize;

struct Validator<'a> {
    lines: Option<Vec<&'a str>>,
    errors: Vec<DslError>,
    file_modules: BTreeMap<String, Vec<String>>,
}

#[derive(Default, Clone)]
struct Meta {
    file: String,
    module: String,
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Char index of the first match of the pattern `\bsymbol\b` in `line`,
/// as upstream's JS `search`; a symbol that is no valid pattern is looked up
/// literally.
fn word_search(line: &str, symbol: &str) -> Option<usize> {
    if let Ok(re) = regex::Regex::new(&format!(r"(?-u:\b){symbol}(?-u:\b)")) {
        return re
            .find(line)
            .map(|m| line.get(..m.start()).map_or(0, |s| s.chars().count()));
    }
    literal_word_search(line, symbol)
}

fn literal_word_search(line: &str, symbol: &str) -> Option<usize> {
    if symbol.is_empty() {
        return Some(0);
    }
    let chars: Vec<char> = line.chars().collect();
    let sym: Vec<char> = symbol.chars().collect();
    let (first, last) = (sym.first().copied()?, sym.last().copied()?);
    (0..=chars.len().checked_sub(sym.len())?).find(|&i| {
        if chars.get(i..i + sym.len()) != Some(&sym[..]) {
            return false;
        }
        let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
        let after = chars.get(i + sym.len()).copied();
        let left_ok = before.is_some_and(is_word) != is_word(first);
        let right_ok = after.is_some_and(is_word) != is_word(last);
        left_ok && right_ok
    })
}

fn char_index_of(hay: &str, needle: &str) -> Option<usize> {
    hay.find(needle)
        .map(|b| hay.get(..b).map_or(0, |s| s.chars().count()))
}

fn restriction_string(r: &RelationReference) -> String {
    let mut s = r.type_name.clone();
    if r.wildcard {
        s.push_str(":*");
    } else if !r.relation.is_empty() {
        s.push('#');
        s.push_str(&r.relation);
    }
    if !r.condition.is_empty() {
        s.push_str(" with ");
        s.push_str(&r.condition);
    }
    s
}

struct Decoded {
    ty: String,
    relation: Option<String>,
    wildcard: bool,
    condition: Option<String>,
}

/// upstream `destructTupleToUserset` over the restriction string.
fn decode(s: &str) -> Decoded {
    let mut parts = s.split(" with ");
    let tuple = parts.next().unwrap_or("");
    let condition = parts.next().map(str::to_string);
    let wildcard = tuple.contains(":*");
    let rest = tuple.replacen(":*", "", 1);
    let mut sp = rest.split('#');
    let ty = sp.next().unwrap_or("").to_string();
    let relation = sp.next().map(str::to_string);
    Decoded {
        ty,
        relation,
        wildcard,
        condition,
    }
}

enum Rewrite {
    Direct,
    Computed(String),
    Ttu(String, String),
}

fn rewrite_of(u: &Userset) -> Rewrite {
    match u {
        Userset::ComputedUserset(c) if !c.relation.is_empty() => {
            Rewrite::Computed(c.relation.clone())
        }
        Userset::TupleToUserset(t) => {
            let target = t.computed_userset.relation.clone();
            let from = t.tupleset.relation.clone();
            match (target.is_empty(), from.is_empty()) {
                (_, false) => Rewrite::Ttu(target, from),
                (false, true) => Rewrite::Computed(target),
                _ => Rewrite::Direct,
            }
        }
        _ => Rewrite::Direct,
    }
}

fn def_name(u: &Userset) -> Option<String> {
    match rewrite_of(u) {
        Rewrite::Computed(t) => Some(t),
        Rewrite::Ttu(t, f) => Some(format!("{t} from {f}")),
        Rewrite::Direct => match u {
            Userset::ComputedUserset(c) => Some(c.relation.clone()),
            _ => None,
        },
    }
}

fn type_meta(td: &TypeDefinition) -> Meta {
    let m = td.metadata.as_ref();
    Meta {
        file: m
            .and_then(|m| m.source_info.as_ref())
            .map(|s| s.file.clone())
            .unwrap_or_default(),
        module: m.map(|m| m.module.clone()).unwrap_or_default(),
    }
}

fn restrictions<'m>(td: &'m TypeDefinition, relation: &str) -> &'m [RelationReference] {
    td.metadata
        .as_ref()
        .and_then(|m| m.relations.as_ref())
        .and_then(|r| r.get(relation))
        .map_or(&[], |r| &r.directly_related_user_types[..])
}

/// Relation metadata's file/module, falling back to the type's.
fn relation_meta(td: &TypeDefinition, relation: &str) -> Meta {
    let tm = type_meta(td);
    let rm = td
        .metadata
        .as_ref()
        .and_then(|m| m.relations.as_ref())
        .and_then(|r| r.get(relation));
    let file = rm
        .and_then(|r| r.source_info.as_ref())
        .map(|s| s.file.clone())
        .filter(|f| !f.is_empty())
        .unwrap_or(tm.file);
    let module = rm
        .map(|r| r.module.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or(tm.module);
    Meta { file, module }
}

type Visited = HashMap<String, BTreeSet<String>>;

fn has_entry_or_loop(
    types: &HashMap<&str, &TypeDefinition>,
    type_name: &str,
    relation: &str,
    rewrite: &Userset,
    visited_in: &Visited,
    depth: usize,
) -> (bool, bool) {
    if depth > 10_000 {
        return (false, true);
    }
    let mut visited = visited_in.clone();
    visited
        .entry(type_name.to_string())
        .or_default()
        .insert(relation.to_string());
    let Some(td) = types.get(type_name) else {
        return (false, false);
    };
    if !td.relations.contains_key(relation) {
        return (false, false);
    }
    match rewrite {
        Userset::This(_) => {
            for r in restrictions(td, relation) {
                let d = decode(&restriction_string(r));
                let Some(dr) = d.relation.filter(|_| !d.wildcard) else {
                    return (true, false);
                };
                let Some(assignable) = types.get(d.ty.as_str()).and_then(|t| t.relations.get(&dr))
                else {
                    return (false, false);
                };
                if visited.get(&d.ty).is_some_and(|s| s.contains(&dr)) {
                    continue;
                }
                let (has, _) =
                    has_entry_or_loop(types, &d.ty, &dr, assignable, &visited, depth + 1);
                if has {
                    return (true, false);
                }
            }
            (false, false)
        }
        Userset::ComputedUserset(c) => {
            let name = &c.relation;
            if name.is_empty() {
                return (false, false);
            }
            let Some(computed) = td.relations.get(name) else {
                return (false, false);
            };
            if visited.get(type_name).is_some_and(|s| s.contains(name)) {
                return (false, true);
            }
            has_entry_or_loop(types, type_name, name, computed, &visited, depth + 1)
        }
        Userset::TupleToUserset(t) => {
            let ts = &t.tupleset.relation;
            let cr = &t.computed_userset.relation;
            if ts.is_empty() || cr.is_empty() || !td.relations.contains_key(ts) {
                return (false, false);
            }
            for r in restrictions(td, ts) {
                let ty = r.type_name.as_str();
                if !r.relation.is_empty() || r.wildcard {
                    continue;
                }
                if let Some(assignable) = types.get(ty).and_then(|t| t.relations.get(cr)) {
                    if visited.get(ty).is_some_and(|s| s.contains(cr)) {
                        continue;
                    }
                    let (has, _) =
                        has_entry_or_loop(types, ty, cr, assignable, &visited, depth + 1);
                    if has {
                        return (true, false);
                    }
                }
            }
            (false, false)
        }
        Userset::Union(u) => {
            let mut any_loop = false;
            for c in &u.child {
                let (has, lp) =
                    has_entry_or_loop(types, type_name, relation, c, &visited, depth + 1);
                if has {
                    return (true, false);
                }
                any_loop = any_loop || lp;
            }
            (false, any_loop)
        }
        Userset::Intersection(u) => {
            for c in &u.child {
                let (has, lp) =
                    has_entry_or_loop(types, type_name, relation, c, &visited, depth + 1);
                if !has {
                    return (false, lp);
                }
            }
            (true, false)
        }
        Userset::Difference(d) => {
            let visited = visited_in.clone();
            let (has, lp) =
                has_entry_or_loop(types, type_name, relation, &d.base, &visited, depth + 1);
            if !has {
                return (false, lp);
            }
            let (has, lp) =
                has_entry_or_loop(types, type_name, relation, &d.subtract, &visited, depth + 1);
            if !has {
                return (false, lp);
            }
            (true, false)
        }
    }
}

impl Validator<'_> {
    fn line(&self, i: usize) -> Option<&str> {
        self.lines.as_ref().and_then(|l| l.get(i)).copied()
    }

    fn find_line(&self, skip: Option<usize>, pred: impl Fn(&str) -> bool) -> Option<usize> {
        let lines = self.lines.as_ref()?;
        let skip = skip.unwrap_or(0);
        lines
            .iter()
            .enumerate()
            .skip(skip)
            .find(|(_, l)| pred(l))
            .map(|(i, _)| i)
    }

    fn type_line(&self, name: &str) -> Option<usize> {
        let prefix = format!("type {name}");
        self.find_line(None, |l| {
            let t = l.trim();
            t.strip_prefix(&prefix).is_some_and(|rest| {
                rest.is_empty()
                    || (rest.starts_with(char::is_whitespace) && rest.trim_start().starts_with('#'))
            })
        })
    }

    fn extended_type_line(&self, name: &str) -> Option<usize> {
        let prefix = format!("extend type {name}");
        self.find_line(None, |l| {
            let t = l.trim();
            t.strip_prefix(&prefix).is_some_and(|rest| {
                rest.is_empty()
                    || (rest.starts_with(char::is_whitespace) && rest.trim_start().starts_with('#'))
            })
        })
    }

    fn relation_line(&self, relation: &str, skip: Option<usize>) -> Option<usize> {
        let prefix = format!("define {relation}");
        self.find_line(skip, |l| {
            let mut norm = String::new();
            let mut prev_space = false;
            // Collapse runs of 2+ spaces into one, as upstream does.
            for c in l.trim().chars() {
                if c == ' ' {
                    if prev_space {
                        continue;
                    }
                    prev_space = true;
                } else {
                    prev_space = false;
                }
                norm.push(c);
            }
            norm.strip_prefix(&prefix)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
    }

    fn rel_line(&self, type_name: &str, relation: &str) -> Option<usize> {
        let t = self.type_line(type_name);
        self.relation_line(relation, t)
    }

    fn condition_line(&self, name: &str) -> Option<usize> {
        let prefix = format!("condition {name}");
        self.find_line(None, |l| {
            l.trim()
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest.trim_start().starts_with('('))
        })
    }

    fn schema_line(&self, schema: &str) -> usize {
        let prefix = format!("schema {schema}");
        self.find_line(None, |l| {
            let t = l.trim();
            t.strip_prefix(&prefix).is_some_and(|rest| {
                rest.is_empty()
                    || (rest.starts_with(char::is_whitespace) && rest.trim_start().starts_with('#'))
            })
        })
        .unwrap_or(0)
    }

    /// upstream `constructValidationError`.
    fn raise(
        &mut self,
        msg: String,
        error_type: &str,
        symbol: &str,
        line: Option<usize>,
        meta: &Meta,
        resolver: Option<Resolver<'_>>,
    ) {
        let mut e = DslError::semantic(msg, error_type, symbol);
        e.file = meta.file.clone();
        e.module = meta.module.clone();
        if let Some((i, raw)) = line.and_then(|i| self.line(i).map(|r| (i, r))) {
            let mut idx = word_search(raw, symbol).unwrap_or(0);
            if let Some(f) = resolver {
                idx = f(idx, raw, symbol);
            }
            e.line = Range { start: i, end: i };
            e.column = Range {
                start: idx,
                end: idx + symbol.chars().count(),
            };
        }
        self.errors.push(e);
    }

    /// Records the type/relation metadata on the error just raised.
    fn tag(&mut self, type_name: &str, relation: &str, offending_type: &str) {
        if let Some(e) = self.errors.last_mut() {
            e.type_name = type_name.to_string();
            e.relation = relation.to_string();
            e.offending_type = offending_type.to_string();
        }
    }

    fn track(&mut self, meta: &Meta) {
        if !meta.file.is_empty() && !meta.module.is_empty() {
            let v = self.file_modules.entry(meta.file.clone()).or_default();
            if !v.contains(&meta.module) {
                v.push(meta.module.clone());
            }
        }
    }

    fn run(&mut self, model: &AuthorizationModel) {
        self.populate_relations(model);
        let schema = model.schema_version.as_str();
        if schema.is_empty() {
            self.raise(
                "schema version required".into(),
                et::SCHEMA_VERSION_REQUIRED,
                "",
                Some(0),
                &Meta::default(),
                None,
            );
        } else if schema == "1.1" || schema == "1.2" {
            self.model_validation(model);
        } else {
            let line = self.schema_line(schema);
            self.raise(
                format!("invalid schema {schema}"),
                et::INVALID_SCHEMA,
                schema,
                Some(line),
                &Meta::default(),
                None,
            );
        }
        let multi: Vec<(String, Vec<String>)> = self
            .file_modules
            .iter()
            .filter(|(_, m)| m.len() > 1)
            .map(|(f, m)| (f.clone(), m.clone()))
            .collect();
        for (file, modules) in multi {
            self.raise(
                format!(
                    "file {file} would contain multiple module definitions ({}) when transforming to DSL. Only one module can be defined per file.",
                    modules.join(", ")
                ),
                et::MULTIPLE_MODULES_IN_FILE,
                &file,
                None,
                &Meta::default(),
                None,
            );
        }
    }

    fn populate_relations(&mut self, model: &AuthorizationModel) {
        for td in &model.type_definitions {
            let name = td.type_name.as_str();
            let tm = type_meta(td);
            self.track(&tm);
            if name == "self" || name == "this" {
                let l = self.type_line(name);
                self.raise(
                    "a type cannot be named 'self' or 'this'.".into(),
                    et::RESERVED_TYPE_KEYWORDS,
                    name,
                    l,
                    &tm,
                    None,
                );
            }
            if !validate_type_name(name) {
                let l = self.type_line(name);
                self.raise(
                    format!("type '{name}' does not match naming rule: '{TYPE_RULE}'."),
                    et::INVALID_NAME,
                    name,
                    l,
                    &tm,
                    None,
                );
            }
            for rel in td.relations.keys() {
                let rm = td
                    .metadata
                    .as_ref()
                    .and_then(|m| m.relations.as_ref())
                    .and_then(|r| r.get(rel))
                    .filter(|r| !r.module.is_empty())
                    .map(|r| Meta {
                        module: r.module.clone(),
                        file: r
                            .source_info
                            .as_ref()
                            .map(|s| s.file.clone())
                            .unwrap_or_default(),
                    })
                    .unwrap_or_else(|| tm.clone());
                if rel == "self" || rel == "this" {
                    let l = self.rel_line(name, rel);
                    self.raise(
                        "a relation cannot be named 'self' or 'this'.".into(),
                        et::RESERVED_RELATION_KEYWORDS,
                        rel,
                        l,
                        &rm,
                        None,
                    );
                }
                if !validate_relation_name(rel) {
                    let l = self.rel_line(name, rel);
                    self.raise(
                        format!("relation '{rel}' of type '{name}' does not match naming rule: '{RELATION_RULE}'."),
                        et::INVALID_NAME,
                        rel,
                        l,
                        &rm,
                        None,
                    );
                }
            }
        }
    }

    fn model_validation(&mut self, model: &AuthorizationModel) {
        if !self.errors.is_empty() {
            return;
        }
        let mut types: HashMap<&str, &TypeDefinition> = HashMap::new();
        let mut used_conditions = BTreeSet::new();
        for td in &model.type_definitions {
            types.insert(td.type_name.as_str(), td);
            if let Some(rels) = td.metadata.as_ref().and_then(|m| m.relations.as_ref()) {
                for r in rels.values() {
                    for t in &r.directly_related_user_types {
                        if !t.condition.is_empty() {
                            used_conditions.insert(t.condition.clone());
                        }
                    }
                }
            }
        }
        for td in &model.type_definitions {
            for rel in td.relations.keys() {
                self.relation_defined(&types, &td.type_name, rel, model);
            }
        }
        if self.errors.is_empty() {
            let mut seen = BTreeSet::new();
            for td in &model.type_definitions {
                let tm = type_meta(td);
                if !seen.insert(td.type_name.as_str()) {
                    let l = self.type_line(&td.type_name);
                    self.raise(
                        format!("the type `{}` is a duplicate.", td.type_name),
                        et::DUPLICATED_ERROR,
                        &td.type_name,
                        l,
                        &tm,
                        None,
                    );
                    self.tag(&td.type_name, "", "");
                }
                let Some(rels) = td.metadata.as_ref().and_then(|m| m.relations.as_ref()) else {
                    continue;
                };
                for (rel, rm) in rels {
                    let mut names = BTreeSet::new();
                    for r in &rm.directly_related_user_types {
                        let s = restriction_string(r);
                        if names.contains(&s) {
                            let t = self.type_line(&r.type_name);
                            let l = self.relation_line(rel, t);
                            let meta = Meta {
                                file: rm
                                    .source_info
                                    .as_ref()
                                    .map(|s| s.file.clone())
                                    .filter(|f| !f.is_empty())
                                    .unwrap_or_else(|| tm.file.clone()),
                                module: Some(rm.module.clone())
                                    .filter(|m| !m.is_empty())
                                    .unwrap_or_else(|| tm.module.clone()),
                            };
                            self.raise(
                                format!("the type restriction `{s}` is a duplicate in the relation `{rel}`."),
                                et::DUPLICATED_ERROR,
                                &s,
                                l,
                                &meta,
                                None,
                            );
                            self.tag(&td.type_name, rel, "");
                        }
                        names.insert(s);
                    }
                    self.duplicates_in_relation(td, rel, &tm);
                }
            }
        }
        if self.errors.is_empty() {
            for td in &model.type_definitions {
                for (rel, def) in &td.relations {
                    let meta = relation_meta(td, rel);
                    self.track(&meta);
                    let (has, lp) =
                        has_entry_or_loop(&types, &td.type_name, rel, def, &Visited::new(), 0);
                    if !has {
                        let l = self.rel_line(&td.type_name, rel);
                        let why = if lp {
                            "potential loop"
                        } else {
                            "no entrypoint"
                        };
                        self.raise(
                            format!(
                                "`{rel}` is an impossible relation for `{}` ({why}).",
                                td.type_name
                            ),
                            et::RELATION_NO_ENTRYPOINT,
                            rel,
                            l,
                            &meta,
                            None,
                        );
                        self.tag(&td.type_name, rel, "");
                    }
                }
            }
        }
        for (name, c) in &model.conditions {
            let meta = Meta {
                module: c
                    .metadata
                    .as_ref()
                    .map(|m| m.module.clone())
                    .unwrap_or_default(),
                file: c
                    .metadata
                    .as_ref()
                    .and_then(|m| m.source_info.as_ref())
                    .map(|s| s.file.clone())
                    .unwrap_or_default(),
            };
            self.track(&meta);
            if *name != c.name {
                self.raise(
                    format!(
                        "condition key is `{name}` but nested name property is {}",
                        c.name
                    ),
                    et::DIFFERENT_NESTED_CONDITION_NAME,
                    &c.name,
                    None,
                    &Meta::default(),
                    None,
                );
            }
            if !used_conditions.contains(name) {
                let l = self.condition_line(name);
                self.raise(
                    format!("`{name}` condition is not used in the model."),
                    et::CONDITION_NOT_USED,
                    name,
                    l,
                    &meta,
                    None,
                );
            }
        }
    }

    fn duplicates_in_relation(&mut self, td: &TypeDefinition, rel: &str, tm: &Meta) {
        let Some(def) = td.relations.get(rel) else {
            return;
        };
        let mut dups = Vec::new();
        match def {
            Userset::Union(u) | Userset::Intersection(u) => {
                let mut seen: BTreeSet<Option<String>> = BTreeSet::new();
                for c in &u.child {
                    let n = def_name(c);
                    if n.is_some() && seen.contains(&n) {
                        dups.extend(n.clone());
                    }
                    seen.insert(n);
                }
            }
            Userset::Difference(d) => {
                let b = def_name(&d.base);
                if b.is_some() && b == def_name(&d.subtract) {
                    dups.extend(b);
                }
            }
            _ => {}
        }
        for n in dups {
            let l = self.rel_line(&td.type_name, rel);
            self.raise(
                format!(
                    "the partial relation definition `{n}` is a duplicate in the relation `{rel}`."
                ),
                et::DUPLICATED_ERROR,
                &n,
                l,
                tm,
                None,
            );
            self.tag(&td.type_name, rel, "");
        }
    }

    fn relation_defined(
        &mut self,
        types: &HashMap<&str, &TypeDefinition>,
        type_name: &str,
        rel: &str,
        model: &AuthorizationModel,
    ) {
        let Some(def) = types.get(type_name).and_then(|t| t.relations.get(rel)) else {
            return;
        };
        let mut queue: std::collections::VecDeque<&Userset> =
            std::collections::VecDeque::from([def]);
        while let Some(child) = queue.pop_front() {
            match child {
                Userset::Union(u) | Userset::Intersection(u) if !u.child.is_empty() => {
                    queue.extend(u.child.iter());
                }
                Userset::Difference(d) => {
                    queue.push_back(&d.base);
                    queue.push_back(&d.subtract);
                }
                _ => self.child_def_defined(types, type_name, rel, child, model),
            }
        }
    }

    fn child_def_defined(
        &mut self,
        types: &HashMap<&str, &TypeDefinition>,
        type_name: &str,
        rel: &str,
        child: &Userset,
        model: &AuthorizationModel,
    ) {
        let Some(td) = types.get(type_name).copied() else {
            return;
        };
        if !td.relations.contains_key(rel) {
            return;
        }
        let meta = relation_meta(td, rel);
        let line = self.rel_line(type_name, rel);
        match rewrite_of(child) {
            Rewrite::Direct => {
                let possible: Vec<String> = restrictions(td, rel)
                    .iter()
                    .map(restriction_string)
                    .collect();
                if possible.is_empty() {
                    let raw = line.and_then(|i| self.line(i)).map(str::to_string);
                    match raw {
                        Some(raw) => {
                            let actual = match (raw.find('['), raw.rfind(']')) {
                                (Some(a), Some(b)) if b >= a => {
                                    raw.get(a..b).unwrap_or("").to_string()
                                }
                                (Some(a), _) => raw.get(a..).unwrap_or("").to_string(),
                                _ => "self".to_string(),
                            };
                            self.raise(
                                format!("assignable relation '{actual}' must have types"),
                                et::ASSIGNABLE_RELATION_MUST_HAVE_TYPE,
                                &actual,
                                line,
                                &Meta::default(),
                                Some(&|_, raw: &str, sym: &str| {
                                    let sub: String = sym.chars().skip(1).collect();
                                    char_index_of(raw, &sub).unwrap_or(0)
                                }),
                            );
                        }
                        None => self.raise(
                            "assignable relation '' must have types".into(),
                            et::ASSIGNABLE_RELATION_MUST_HAVE_TYPE,
                            "",
                            None,
                            &Meta::default(),
                            None,
                        ),
                    }
                }
                for item in possible {
                    let d = decode(&item);
                    if !types.contains_key(d.ty.as_str()) {
                        self.raise(
                            format!("`{}` is not a valid type.", d.ty),
                            et::INVALID_TYPE,
                            &d.ty,
                            line,
                            &meta,
                            Some(&|_, raw: &str, sym: &str| {
                                let mut sp = raw.split(':');
                                let head = sp.next().unwrap_or("").chars().count();
                                let second = sp.next().unwrap_or("");
                                match word_search(second, sym) {
                                    Some(i) => head + i + 1,
                                    None => head,
                                }
                            }),
                        );
                        self.tag(type_name, rel, "");
                    }
                    if let Some(c) = &d.condition {
                        if !model.conditions.contains_key(c) {
                            self.raise(
                                format!("`{c}` is not a defined condition in the model."),
                                et::CONDITION_NOT_DEFINED,
                                c,
                                line,
                                &meta,
                                None,
                            );
                            self.tag(type_name, rel, "");
                        }
                    }
                    if d.wildcard && d.relation.is_some() {
                        self.raise(
                            format!("type restriction `{item}` cannot contain both wildcard and relation"),
                            et::TYPE_WILDCARD_RELATION,
                            &item,
                            line,
                            &meta,
                            None,
                        );
                        self.tag(type_name, rel, "");
                    } else if let Some(dr) = &d.relation {
                        let ok = types
                            .get(d.ty.as_str())
                            .is_some_and(|t| t.relations.contains_key(dr));
                        if !ok {
                            self.raise(
                                format!("`{dr}` is not a valid relation for `{}`.", d.ty),
                                et::INVALID_RELATION_TYPE,
                                &format!("{}#{dr}", d.ty),
                                line,
                                &meta,
                                None,
                            );
                            self.tag(&d.ty, rel, type_name);
                        }
                    }
                }
            }
            Rewrite::Computed(target) => {
                if !td.relations.contains_key(&target) {
                    self.raise(
                        format!("the relation `{target}` does not exist."),
                        et::MISSING_DEFINITION,
                        &target,
                        line,
                        &meta,
                        None,
                    );
                    self.tag(type_name, rel, "");
                }
            }
            Rewrite::Ttu(target, from) => {
                if target.is_empty() {
                    return;
                }
                let symbol = format!("{target} from {from}");
                if !td.relations.contains_key(&from) {
                    self.raise(
                        format!("`{from}` is not a valid relation for `{type_name}`."),
                        et::INVALID_RELATION_TYPE,
                        &symbol,
                        line,
                        &meta,
                        None,
                    );
                    self.tag(type_name, rel, type_name);
                    return;
                }
                let from_def = td.relations.get(&from);
                let single = !matches!(
                    from_def,
                    Some(Userset::Union(_) | Userset::Intersection(_) | Userset::Difference(_))
                );
                let from_types: Vec<String> = match from_def.map(rewrite_of) {
                    Some(Rewrite::Direct) if single => restrictions(td, &from)
                        .iter()
                        .map(restriction_string)
                        .collect(),
                    _ => Vec::new(),
                };
                let not_direct = |v: &mut Self| {
                    v.raise(
                        format!("`{from}` relation used inside from allows only direct relation."),
                        et::TUPLESET_NOT_DIRECT,
                        &from,
                        line,
                        &meta,
                        Some(&|_, raw: &str, sym: &str| {
                            let start = char_index_of(raw, "from").map_or(3, |i| i + 4);
                            let rest: String = raw.chars().skip(start).collect();
                            match char_index_of(&rest, sym) {
                                Some(i) => start + i,
                                None => start.saturating_sub(1),
                            }
                        }),
                    );
                    v.tag(type_name, rel, "");
                };
                if single && !from_types.is_empty() {
                    let mut invalid = Vec::new();
                    for item in &from_types {
                        let d = decode(item);
                        if d.wildcard || d.relation.is_some() {
                            not_direct(self);
                        } else if !types
                            .get(d.ty.as_str())
                            .is_some_and(|t| t.relations.contains_key(&target))
                        {
                            invalid.push(d.ty);
                        }
                    }
                    if invalid.len() == from_types.len() {
                        for ty in invalid {
                            self.raise(
                                format!("the `{target}` relation definition on type `{type_name}` is not valid: `{target}` does not exist on `{from}`, which is of type `{ty}`."),
                                et::INVALID_RELATION_ON_TUPLESET,
                                &symbol,
                                line,
                                &meta,
                                None,
                            );
                            self.tag(type_name, rel, "");
                        }
                    }
                } else {
                    not_direct(self);
                }
            }
        }
    }
}

/// Places a validation error of a combined modular model in the lines of
/// its file, as upstream's modules-to-model.ts does; false when it cannot.
pub(crate) fn locate_in_file(e: &mut DslError, src: &str) -> bool {
    let v = Validator {
        lines: Some(src.split('\n').collect()),
        errors: Vec::new(),
        file_modules: BTreeMap::new(),
    };
    let type_or_extended = |t: &str| v.type_line(t).or_else(|| v.extended_type_line(t));
    let line = match e.error_type.as_str() {
        et::CONDITION_NOT_USED => v.condition_line(&e.symbol),
        et::RESERVED_TYPE_KEYWORDS => v.type_line(&e.symbol),
        et::INVALID_NAME if e.msg.starts_with("relation") => v.relation_line(&e.symbol, None),
        et::INVALID_NAME => v.type_line(&e.symbol),
        et::RESERVED_RELATION_KEYWORDS => v.relation_line(&e.symbol, None),
        et::INVALID_RELATION_TYPE => {
            let t = type_or_extended(&e.offending_type);
            v.relation_line(&e.relation, t)
        }
        et::INVALID_RELATION_ON_TUPLESET
        | et::MISSING_DEFINITION
        | et::INVALID_TYPE
        | et::CONDITION_NOT_DEFINED
        | et::TUPLESET_NOT_DIRECT
        | et::TYPE_WILDCARD_RELATION
        | et::RELATION_NO_ENTRYPOINT
        | et::DUPLICATED_ERROR => {
            let t = type_or_extended(&e.type_name);
            if e.relation.is_empty() {
                t
            } else {
                v.relation_line(&e.relation, t)
            }
        }
        _ => None,
    };
    let Some((i, raw)) = line.and_then(|i| v.line(i).map(|r| (i, r))) else {
        return false;
    };
    let idx = match e.error_type.as_str() {
        et::INVALID_TYPE => {
            let mut sp = raw.split(':');
            let head = sp.next().unwrap_or("").chars().count();
            let second = sp.next().unwrap_or("");
            word_search(second, &e.symbol).map_or(0, |k| head + k + 1)
        }
        et::TUPLESET_NOT_DIRECT => {
            let start = char_index_of(raw, "from").map_or(3, |k| k + 4);
            let rest: String = raw.chars().skip(start).collect();
            char_index_of(&rest, &e.symbol).map_or(start.saturating_sub(1), |k| start + k)
        }
        _ => word_search(raw, &e.symbol).unwrap_or(0),
    };
    e.line = Range { start: i, end: i };
    e.column = Range {
        start: idx,
        end: idx + e.symbol.chars().count(),
    };
    true
}

/// `\bsymbol\b` search for sibling modules.
pub(crate) fn word_search_pub(line: &str, symbol: &str) -> Option<usize> {
    word_search(line, symbol)
}
