//! `verdict validate FILE.fga.yaml`: runs an OpenFGA store test file (the
//! `fga model test` format) through the real engine on a temporary RocksDB
//! store: the model (`model` or `model_file`), the store's tuples (`tuples`,
//! `tuple_file`, `tuple_files`), then each test's own tuples on top and its
//! `check`, `list_objects` and `list_users` assertions (with `context`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use verdict_storage::{
    Op, RelationStore, Revision, RocksOptions, RocksStore, Tenant, Tuple, WriteBatch,
};

use super::FileReport;
use crate::engine::openfga::{
    model_rejects, to_tuple, FgaCondition, FgaLimits, FgaTupleKey, FgaUser,
};
use crate::engine::{Engine, EngineConfig};
use crate::schema::{self, SchemaLimits};

/// One tuple as store files write it.
#[derive(Debug, Clone, Deserialize)]
struct TupleEntry {
    user: String,
    relation: String,
    object: String,
    #[serde(default)]
    condition: Option<ConditionEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct ConditionEntry {
    name: String,
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

impl TupleEntry {
    fn key(&self) -> FgaTupleKey {
        FgaTupleKey {
            user: self.user.clone(),
            relation: self.relation.clone(),
            object: self.object.clone(),
            condition: self.condition.as_ref().map(|c| FgaCondition {
                name: c.name.clone(),
                context: c.context.clone().unwrap_or_default(),
            }),
        }
    }
}

/// One or many (store files accept `user: x` or `users: [x, y]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn all(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct CheckEntry {
    #[serde(default, alias = "users")]
    user: Option<OneOrMany>,
    #[serde(default, alias = "objects")]
    object: Option<OneOrMany>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    assertions: std::collections::BTreeMap<String, bool>,
}

#[derive(Debug, Clone, Deserialize)]
struct ListObjectsEntry {
    user: String,
    #[serde(rename = "type")]
    object_type: String,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    assertions: std::collections::BTreeMap<String, Option<Vec<String>>>,
}

#[derive(Debug, Clone, Deserialize)]
struct UserFilter {
    #[serde(rename = "type")]
    object_type: String,
    #[serde(default)]
    relation: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct ListUsersExpect {
    #[serde(default)]
    users: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
struct ListUsersEntry {
    object: String,
    #[serde(default)]
    user_filter: Vec<UserFilter>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    assertions: std::collections::BTreeMap<String, ListUsersExpect>,
}

#[derive(Debug, Clone, Deserialize)]
struct TestEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    tuples: Option<Vec<TupleEntry>>,
    #[serde(default)]
    tuple_file: Option<String>,
    #[serde(default)]
    check: Option<Vec<CheckEntry>>,
    #[serde(default)]
    list_objects: Option<Vec<ListObjectsEntry>>,
    #[serde(default)]
    list_users: Option<Vec<ListUsersEntry>>,
}

#[derive(Debug, Clone, Deserialize)]
struct StoreFile {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    model_file: Option<String>,
    #[serde(default)]
    tuples: Option<Vec<TupleEntry>>,
    #[serde(default)]
    tuple_file: Option<String>,
    #[serde(default)]
    tuple_files: Option<Vec<String>>,
    #[serde(default)]
    tests: Option<Vec<TestEntry>>,
}

fn fatal(message: String) -> FileReport {
    FileReport {
        fatal: Some(message),
        ..FileReport::default()
    }
}

/// Reads a tuple file: YAML or JSON (a list of tuples) or CSV with
/// OpenFGA's header (`user_type,user_id,user_relation,relation,
/// object_type,object_id[,condition_name,condition_context]`).
fn read_tuple_file(path: &Path) -> Result<Vec<TupleEntry>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read tuple file {}: {e}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("csv") {
        return read_csv(&text).map_err(|e| format!("tuple file {}: {e}", path.display()));
    }
    serde_yaml::from_str(&text).map_err(|e| format!("tuple file {}: {e}", path.display()))
}

fn read_csv(text: &str) -> Result<Vec<TupleEntry>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty CSV")?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (ut, ui, ur, r, ot, oi) = (
        col("user_type").ok_or("missing column user_type")?,
        col("user_id").ok_or("missing column user_id")?,
        col("user_relation"),
        col("relation").ok_or("missing column relation")?,
        col("object_type").ok_or("missing column object_type")?,
        col("object_id").ok_or("missing column object_id")?,
    );
    let (cn, cc) = (col("condition_name"), col("condition_context"));
    let mut out = Vec::new();
    for line in lines {
        // The context column (JSON) may contain commas: it is the rest.
        let fields: Vec<&str> = line.splitn(header.len(), ',').map(str::trim).collect();
        let get = |i: Option<usize>| i.and_then(|i| fields.get(i)).copied().unwrap_or("");
        let mut user = format!("{}:{}", get(Some(ut)), get(Some(ui)));
        if !get(ur).is_empty() {
            user = format!("{user}#{}", get(ur));
        }
        let condition = if get(cn).is_empty() {
            None
        } else {
            let ctx = get(cc).trim_matches('"').replace("\"\"", "\"");
            let context = if ctx.is_empty() {
                None
            } else {
                Some(serde_json::from_str(&ctx).map_err(|e| format!("condition_context: {e}"))?)
            };
            Some(ConditionEntry {
                name: get(cn).to_string(),
                context,
            })
        };
        out.push(TupleEntry {
            user,
            relation: get(Some(r)).to_string(),
            object: format!("{}:{}", get(Some(ot)), get(Some(oi))),
            condition,
        });
    }
    Ok(out)
}

/// Validates and converts tuples as a write would (OpenFGA refuses tuples
/// its model does not allow).
fn tuples_for(
    schema: &crate::schema::Schema,
    entries: &[TupleEntry],
) -> Result<Vec<Tuple>, String> {
    entries
        .iter()
        .map(|e| {
            let key = e.key();
            let t = to_tuple(schema, &key).map_err(|err| {
                format!("tuple {}#{}@{}: {}", key.object, key.relation, key.user, err.message)
            })?;
            match model_rejects(schema, &t) {
                Some(reason) => Err(format!(
                    "tuple {}#{}@{}: {reason}",
                    key.object, key.relation, key.user
                )),
                None => Ok(t),
            }
        })
        .collect()
}

/// Runs one OpenFGA store test file.
pub fn validate_store_file(path: &Path) -> FileReport {
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fatal(format!("cannot read {}: {e}", path.display())),
    };
    let file: StoreFile = match serde_yaml::from_str(&text) {
        Ok(f) => f,
        Err(e) => return fatal(format!("not an OpenFGA store file: {e}")),
    };
    let (model_text, model_name) = match (&file.model, &file.model_file) {
        (Some(m), _) => (m.clone(), path.display().to_string()),
        (None, Some(f)) => {
            let p = dir.join(f);
            match crate::schema::openfga::read_model_file(&p) {
                Ok(t) => (t, p.display().to_string()),
                Err(e) => return fatal(e),
            }
        }
        (None, None) => return fatal("the store file has neither `model` nor `model_file`".into()),
    };
    let compiled = match schema::compile(&model_text, &SchemaLimits::default()) {
        Ok(c) if c.language.is_openfga() => c,
        Ok(_) => return fatal(format!("{model_name}: the model is not an OpenFGA model")),
        Err(e) => return fatal(e.render(&model_name, &model_text)),
    };
    let schema = Arc::new(compiled.schema);

    let mut entries = file.tuples.clone().unwrap_or_default();
    let files = file
        .tuple_file
        .iter()
        .chain(file.tuple_files.iter().flatten());
    for f in files {
        match read_tuple_file(&dir.join(f)) {
            Ok(t) => entries.extend(t),
            Err(e) => return fatal(e),
        }
    }
    let tuples = match tuples_for(&schema, &entries) {
        Ok(t) => t,
        Err(e) => return fatal(e),
    };

    let tmp = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return fatal(format!("cannot create a temporary store: {e}")),
    };
    let options = RocksOptions {
        sync_writes: false,
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 8 << 20,
        ..RocksOptions::default()
    };
    let store = match RocksStore::open(tmp.path(), options) {
        Ok(s) => s,
        Err(e) => return fatal(format!("cannot open a temporary store: {e}")),
    };
    let tenant = Tenant::default_tenant();
    let batch = WriteBatch {
        ops: tuples.into_iter().map(Op::Touch).collect(),
        preconditions: Vec::new(),
    };
    if let Err(e) = store.apply(&tenant, Revision(1), &batch) {
        return fatal(format!("loading tuples failed: {e}"));
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
    for test in file.tests.iter().flatten() {
        let mut extra = test.tuples.clone().unwrap_or_default();
        if let Some(f) = &test.tuple_file {
            match read_tuple_file(&dir.join(f)) {
                Ok(t) => extra.extend(t),
                Err(e) => {
                    report.failures.push(format!("test `{}`: {e}", test.name));
                    continue;
                }
            }
        }
        // A test's own tuples are written on top of the store's: validated
        // as writes, then laid over the snapshot for this test only.
        if let Err(e) = tuples_for(&schema, &extra) {
            report.failures.push(format!("test `{}`: {e}", test.name));
            continue;
        }
        let extra: Vec<FgaTupleKey> = extra.iter().map(TupleEntry::key).collect();
        let limits = FgaLimits {
            max_contextual_tuples: usize::MAX,
            max_results: 0,
        };
        run_test(&engine, &reader, test, &extra, &limits, &mut report);
    }
    report
}

fn context_text(context: &Map<String, Value>) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(", context={}", Value::Object(context.clone()))
    }
}

fn run_test(
    engine: &Engine,
    reader: &dyn verdict_storage::TupleReader,
    test: &TestEntry,
    extra: &[FgaTupleKey],
    limits: &FgaLimits,
    report: &mut FileReport,
) {
    let name = &test.name;
    for c in test.check.iter().flatten() {
        let context = c.context.clone().unwrap_or_default();
        let users = c.user.as_ref().map(OneOrMany::all).unwrap_or_default();
        let objects = c.object.as_ref().map(OneOrMany::all).unwrap_or_default();
        for user in &users {
            for object in &objects {
                for (relation, expected) in &c.assertions {
                    let key = FgaTupleKey::new(user.clone(), relation.clone(), object.clone());
                    let got = engine.fga_check(reader, &key, extra, &context, limits);
                    let what = format!(
                        "Check(user={user}, relation={relation}, object={object}{})",
                        context_text(&context)
                    );
                    match got {
                        Ok(g) if g == *expected => report.passed += 1,
                        Ok(g) => report.failures.push(format!(
                            "(FAILING) {name}: {what}: expected={expected}, got={g}"
                        )),
                        Err(e) => report.failures.push(format!(
                            "(FAILING) {name}: {what}: expected={expected}, got error: {e}"
                        )),
                    }
                }
            }
        }
    }
    for l in test.list_objects.iter().flatten() {
        let context = l.context.clone().unwrap_or_default();
        for (relation, expected) in &l.assertions {
            let expected: BTreeSet<String> = expected.iter().flatten().cloned().collect();
            let what = format!(
                "ListObjects(user={}, relation={relation}, type={}{})",
                l.user,
                l.object_type,
                context_text(&context)
            );
            match engine.fga_list_objects(
                reader,
                &l.object_type,
                relation,
                &l.user,
                extra,
                &context,
                limits,
            ) {
                Ok(got) => {
                    let got: BTreeSet<String> = got.into_iter().collect();
                    if got == expected {
                        report.passed += 1;
                    } else {
                        report.failures.push(format!(
                            "(FAILING) {name}: {what}: expected={expected:?}, got={got:?}"
                        ));
                    }
                }
                Err(e) => report.failures.push(format!(
                    "(FAILING) {name}: {what}: expected={expected:?}, got error: {e}"
                )),
            }
        }
    }
    for l in test.list_users.iter().flatten() {
        let context = l.context.clone().unwrap_or_default();
        for (relation, expected) in &l.assertions {
            let expected: BTreeSet<String> = expected.users.iter().flatten().cloned().collect();
            let what = format!(
                "ListUsers(object={}, relation={relation}, filters={}{})",
                l.object,
                l.user_filter
                    .iter()
                    .map(|f| match &f.relation {
                        Some(r) => format!("{}#{r}", f.object_type),
                        None => f.object_type.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                context_text(&context)
            );
            let mut got: BTreeSet<String> = BTreeSet::new();
            let mut error = None;
            for f in &l.user_filter {
                match engine.fga_list_users(
                    reader,
                    &l.object,
                    relation,
                    &f.object_type,
                    f.relation.as_deref(),
                    extra,
                    &context,
                    limits,
                ) {
                    Ok(users) => got.extend(users.iter().map(FgaUser::to_string)),
                    Err(e) => error = Some(e),
                }
            }
            match error {
                Some(e) => report.failures.push(format!(
                    "(FAILING) {name}: {what}: expected={expected:?}, got error: {e}"
                )),
                None if got == expected => report.passed += 1,
                None => report.failures.push(format!(
                    "(FAILING) {name}: {what}: expected={expected:?}, got={got:?}"
                )),
            }
        }
    }
}
