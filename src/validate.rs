//! `verdict validate`: runs SpiceDB validation files — schema,
//! relationships, assertions (`assertTrue` / `assertFalse` /
//! `assertCaveated`) and expected relations (`validation:`) — against a
//! real store and the engine, and explains every failure.

pub mod openfga;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use verdict_storage::{
    Op, RelationStore, Revision, RocksOptions, RocksStore, Tenant, Timestamp, Tuple, TupleReader,
    WriteBatch,
};

use crate::engine::{CheckRequest, Engine, EngineConfig, Outcome};
use crate::relationships::validate_against_schema;
use crate::schema::ir::{ArrowFunc, RelationKind, Rewrite, Schema};
use crate::schema::{self, loader, SchemaLimits};

/// What a validation file run found.
#[derive(Debug, Default)]
pub struct FileReport {
    /// Assertions that held.
    pub passed: usize,
    /// Assertions or expected relations that did not, each explained.
    pub failures: Vec<String>,
    /// Expected-relations keys compared.
    pub expected_relations_checked: usize,
    /// A problem that stopped the run (schema, relationship, load errors).
    pub fatal: Option<String>,
}

impl FileReport {
    /// Whether everything held.
    pub fn ok(&self) -> bool {
        self.fatal.is_none() && self.failures.is_empty()
    }
}

/// Whether `path` names an OpenFGA store test file (`*.fga.yaml` /
/// `*.fga.yml`), which `fga model test` runs.
pub fn is_openfga_store_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".fga.yaml") || n.ends_with(".fga.yml"))
}

fn fatal(message: String) -> FileReport {
    FileReport {
        fatal: Some(message),
        ..FileReport::default()
    }
}

/// Runs one validation file; `now` is the time expirations are judged at.
pub fn validate_file(path: &Path, now: Timestamp) -> FileReport {
    if is_openfga_store_file(path) {
        return openfga::validate_store_file(path);
    }
    let loaded = match loader::load(path) {
        Ok(l) => l,
        Err(e) => return fatal(e.to_string()),
    };
    let compiled = match schema::compile(&loaded.text, &SchemaLimits::default()) {
        Ok(c) => c,
        Err(e) => return fatal(e.render(&loaded.name, &loaded.text)),
    };
    let file = loaded.validation.unwrap_or_default();
    let schema = Arc::new(compiled.schema);

    let mut tuples: Vec<Tuple> = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (line, text) in file.relationship_lines() {
        let tuple = match Tuple::parse(text) {
            Ok(t) => t,
            Err(e) => return fatal(format!("relationship line {line} `{text}`: {e}")),
        };
        // As SpiceDB's loader: the same relationship twice (caveat and
        // expiration aside) is an error, not a silent overwrite.
        let identity = Tuple {
            caveat: None,
            expiration: None,
            ..tuple.clone()
        }
        .to_string();
        if let Some(first) = seen.insert(identity, line) {
            return fatal(format!(
                "relationship line {line} `{text}` repeats the relationship of line {first}"
            ));
        }
        if let Err(e) = validate_against_schema(&schema, &tuple) {
            return fatal(format!("relationship line {line} `{text}`: {e}"));
        }
        tuples.push(tuple);
    }

    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return fatal(format!("cannot create a temporary store: {e}")),
    };
    let options = RocksOptions {
        sync_writes: false,
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 8 << 20,
        ..RocksOptions::default()
    };
    let store = match RocksStore::open(dir.path(), options) {
        Ok(s) => s,
        Err(e) => return fatal(format!("cannot open a temporary store: {e}")),
    };
    let tenant = Tenant::default_tenant();
    let batch = WriteBatch {
        ops: tuples.into_iter().map(Op::Touch).collect(),
        preconditions: Vec::new(),
    };
    if let Err(e) = store.apply(&tenant, Revision(1), &batch) {
        return fatal(format!("loading relationships failed: {e}"));
    }
    let reader = match store.snapshot(&tenant, Revision(1)) {
        Ok(r) => r,
        Err(e) => return fatal(format!("reading the store failed: {e}")),
    };
    let engine = match Engine::new(schema.clone(), EngineConfig::default()) {
        Ok(e) => e,
        Err(e) => return fatal(e.to_string()),
    };

    let mut report = FileReport::default();
    if let Some(assertions) = &file.assertions {
        let kinds = [
            (&assertions.assert_true, Expect::Allowed),
            (&assertions.assert_false, Expect::Denied),
            (&assertions.assert_caveated, Expect::Conditional),
        ];
        for (list, expect) in kinds {
            for text in list.iter().flatten() {
                match run_assertion(&engine, &reader, text, expect, now) {
                    Ok(()) => report.passed += 1,
                    Err(why) => report.failures.push(why),
                }
            }
        }
    }
    if let Some(expected) = file.validation.as_ref().and_then(|v| v.as_mapping()) {
        for (key, subjects) in expected {
            let Some(key) = key.as_str() else { continue };
            report.expected_relations_checked += 1;
            if let Err(why) = check_expected(&schema, &reader, key, subjects, now) {
                report.failures.push(why);
            }
        }
    }
    report
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Allowed,
    Denied,
    Conditional,
}

fn run_assertion(
    engine: &Engine,
    reader: &dyn TupleReader,
    text: &str,
    expect: Expect,
    now: Timestamp,
) -> Result<(), String> {
    let (relationship, context) = match text.split_once(" with ") {
        Some((rel, json)) => {
            let context: Map<String, Value> = serde_json::from_str(json.trim())
                .map_err(|e| format!("assertion `{text}`: context is not a JSON object: {e}"))?;
            (rel.trim(), context)
        }
        None => (text.trim(), Map::new()),
    };
    let tuple = Tuple::parse(relationship).map_err(|e| format!("assertion `{text}`: {e}"))?;
    let mut request = CheckRequest::new(tuple.resource, tuple.relation, tuple.subject);
    request.context = context;
    request.now = now;
    let response = engine
        .check(reader, &request)
        .map_err(|e| format!("assertion `{text}`: check failed: {e}"))?;
    let holds = matches!(
        (expect, &response.outcome),
        (Expect::Allowed, Outcome::Allowed)
            | (Expect::Denied, Outcome::Denied)
            | (Expect::Conditional, Outcome::Conditional { .. })
    );
    if holds {
        return Ok(());
    }
    request.trace = true;
    let trace = engine
        .check(reader, &request)
        .ok()
        .and_then(|r| r.trace)
        .map(|t| t.render())
        .unwrap_or_default();
    let wanted = match expect {
        Expect::Allowed => "ALLOWED",
        Expect::Denied => "DENIED",
        Expect::Conditional => "CONDITIONAL",
    };
    Err(format!(
        "assertion `{text}`: expected {wanted}, got {}\n{trace}",
        response.outcome
    ))
}

/// Subjects reachable from `type:id#relation` by full recursive expansion,
/// each with the relationships (`type:id#relation` of the tuple naming it)
/// it was found through — SpiceDB's "expected relations" form.
type Reachable = BTreeMap<String, BTreeSet<String>>;

fn check_expected(
    schema: &Schema,
    reader: &dyn TupleReader,
    key: &str,
    expected: &serde_yaml_ng::Value,
    now: Timestamp,
) -> Result<(), String> {
    let (object, relation) = key
        .rsplit_once('#')
        .ok_or_else(|| format!("expected relations key `{key}` is not `type:id#relation`"))?;
    let (object_type, object_id) = object
        .split_once(':')
        .ok_or_else(|| format!("expected relations key `{key}` is not `type:id#relation`"))?;
    let mut want: Reachable = BTreeMap::new();
    for entry in expected.as_sequence().into_iter().flatten() {
        let Some(line) = entry.as_str() else { continue };
        let (subject, sources) = parse_expected_line(line).ok_or_else(|| {
            format!("expected relations entry `{line}` is not `[subject] is <source>`")
        })?;
        want.insert(subject, sources);
    }
    let mut walk = Reach {
        schema,
        reader,
        now,
        path: Vec::new(),
    };
    let got = walk
        .relation(object_type, object_id, relation)
        .map_err(|e| format!("expected relations for `{key}`: {e}"))?;
    if got == want {
        return Ok(());
    }
    let render = |r: &Reachable| {
        r.iter()
            .map(|(s, src)| {
                let src: Vec<String> = src.iter().map(|s| format!("<{s}>")).collect();
                format!("  [{s}] is {}", src.join("/"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Err(format!(
        "expected relations for `{key}` differ:\n expected:\n{}\n found:\n{}",
        render(&want),
        render(&got)
    ))
}

fn parse_expected_line(line: &str) -> Option<(String, BTreeSet<String>)> {
    let line = line.trim();
    let rest = line.strip_prefix('[')?;
    let close = rest.find("] is ")?;
    let subject = rest[..close].to_string();
    // Sources may themselves contain `/` in type names: rejoin pieces that
    // were split inside `<...>`.
    let mut joined = BTreeSet::new();
    let mut pending = String::new();
    for piece in rest[close + 5..].split('/') {
        if !pending.is_empty() {
            pending.push('/');
        }
        pending.push_str(piece.trim());
        if pending.starts_with('<') && pending.ends_with('>') {
            joined.insert(pending[1..pending.len() - 1].to_string());
            pending.clear();
        }
    }
    Some((subject, joined))
}

struct Reach<'a> {
    schema: &'a Schema,
    reader: &'a dyn TupleReader,
    now: Timestamp,
    path: Vec<(String, String, String)>,
}

impl Reach<'_> {
    fn relation(
        &mut self,
        object_type: &str,
        id: &str,
        relation: &str,
    ) -> Result<Reachable, String> {
        let key = (
            object_type.to_string(),
            id.to_string(),
            relation.to_string(),
        );
        if self.path.contains(&key) || self.path.len() > 50 {
            return Ok(Reachable::new());
        }
        let def = self
            .schema
            .definition_named(object_type)
            .ok_or_else(|| format!("unknown type `{object_type}`"))?;
        let rel = def
            .relation_named(relation)
            .ok_or_else(|| format!("unknown relation `{object_type}#{relation}`"))?;
        self.path.push(key);
        let result = match &rel.kind {
            RelationKind::Relation { .. } => self.stored(object_type, id, relation),
            RelationKind::Permission { rewrite } => self.rewrite(object_type, id, rewrite),
        };
        self.path.pop();
        result
    }

    fn stored(&mut self, object_type: &str, id: &str, relation: &str) -> Result<Reachable, String> {
        let tuples = self
            .reader
            .subjects(object_type, &[id], relation)
            .map_err(|e| e.to_string())?;
        let mut out = Reachable::new();
        let source = format!("{object_type}:{id}#{relation}");
        let now = self.now;
        for t in tuples.iter().filter(|t| !t.is_expired_at(now)) {
            let mut subject = t.subject.to_string();
            if t.caveat.is_some() {
                subject.push_str("[...]");
            }
            out.entry(subject).or_default().insert(source.clone());
            if let Some(r) = &t.subject.relation {
                let nested = self.relation(
                    &t.subject.object.object_type,
                    &t.subject.object.object_id,
                    r,
                )?;
                merge(&mut out, nested);
            }
        }
        Ok(out)
    }

    fn rewrite(
        &mut self,
        object_type: &str,
        id: &str,
        rewrite: &Rewrite,
    ) -> Result<Reachable, String> {
        let def = self
            .schema
            .definition_named(object_type)
            .ok_or_else(|| format!("unknown type `{object_type}`"))?;
        Ok(match rewrite {
            Rewrite::Nil => Reachable::new(),
            Rewrite::SelfRef => {
                let mut r = Reachable::new();
                r.entry(format!("{object_type}:{id}")).or_default();
                r
            }
            Rewrite::Computed(rel) => {
                let name = def.relation(*rel).name.to_string();
                self.relation(object_type, id, &name)?
            }
            Rewrite::Union(children) => {
                let mut out = Reachable::new();
                for c in children {
                    let r = self.rewrite(object_type, id, c)?;
                    merge(&mut out, r);
                }
                out
            }
            Rewrite::Intersection(children) => {
                let mut sets = Vec::new();
                for c in children {
                    sets.push(self.rewrite(object_type, id, c)?);
                }
                let mut out = Reachable::new();
                if let Some(first) = sets.first() {
                    for subject in first.keys() {
                        if sets.iter().all(|s| s.contains_key(subject)) {
                            for s in &sets {
                                if let Some(src) = s.get(subject) {
                                    out.entry(subject.clone())
                                        .or_default()
                                        .extend(src.iter().cloned());
                                }
                            }
                        }
                    }
                }
                out
            }
            Rewrite::Exclusion(base, subtract) => {
                let mut out = self.rewrite(object_type, id, base)?;
                let minus = self.rewrite(object_type, id, subtract)?;
                out.retain(|s, _| !minus.contains_key(s));
                out
            }
            Rewrite::Arrow(arrow) => {
                let tupleset = def.relation(arrow.tupleset).name.to_string();
                let tuples = self
                    .reader
                    .subjects(object_type, &[id], &tupleset)
                    .map_err(|e| e.to_string())?;
                let mut parts = Vec::new();
                let now = self.now;
                for t in tuples.iter().filter(|t| !t.is_expired_at(now)) {
                    let sty = &t.subject.object.object_type;
                    let Some(sdef) = self.schema.definition_named(sty) else {
                        continue;
                    };
                    if sdef.relation_named(&arrow.target).is_some() {
                        parts.push(self.relation(
                            sty,
                            &t.subject.object.object_id,
                            &arrow.target,
                        )?);
                    } else if arrow.func == ArrowFunc::All {
                        parts.push(Reachable::new());
                    }
                }
                let mut out = Reachable::new();
                if arrow.func == ArrowFunc::All {
                    if let Some(first) = parts.first() {
                        for subject in first.keys() {
                            if parts.iter().all(|p| p.contains_key(subject)) {
                                for p in &parts {
                                    if let Some(src) = p.get(subject) {
                                        out.entry(subject.clone())
                                            .or_default()
                                            .extend(src.iter().cloned());
                                    }
                                }
                            }
                        }
                    }
                } else {
                    for p in parts {
                        merge(&mut out, p);
                    }
                }
                out
            }
        })
    }
}

fn merge(into: &mut Reachable, from: Reachable) {
    for (subject, sources) in from {
        into.entry(subject).or_default().extend(sources);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_expected_lines() {
        let (s, src) = parse_expected_line(
            "[user:jake] is <organization:authzed#own>/<repository:authzed_go#reader>",
        )
        .unwrap();
        assert_eq!(s, "user:jake");
        assert_eq!(src.len(), 2);
        let (s, src) = parse_expected_line("[user:a[...]] is <acme/doc:1#reader>").unwrap();
        assert_eq!(s, "user:a[...]");
        assert!(src.contains("acme/doc:1#reader"));
    }
}
