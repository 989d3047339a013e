//! `verdict validate FILE.fga.yaml`: runs an OpenFGA store test file (the
//! `fga model test` format) through the real engine on a temporary RocksDB
//! store: the model (`model` or `model_file`), the store's tuples (`tuples`,
//! `tuple_file`, `tuple_files`), then each test's own tuples on top and its
//! `check`, `list_objects` and `list_users` assertions (with `context`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use verdict_fga_lang::store_file::{self, CheckTest, StoreFile, StoreTest};
use verdict_storage::{
    Op, RelationStore, Revision, RocksOptions, RocksStore, Tenant, Tuple, WriteBatch,
};

use super::FileReport;
use crate::engine::openfga::{
    model_rejects, to_tuple, FgaCondition, FgaLimits, FgaTupleKey, FgaUser,
};
use crate::engine::{Engine, EngineConfig};
use crate::schema::{self, SchemaLimits};

/// The engine's form of a store file's tuple.
fn key(t: &store_file::Tuple) -> FgaTupleKey {
    FgaTupleKey {
        user: t.user.clone(),
        relation: t.relation.clone(),
        object: t.object.clone(),
        condition: t.condition.as_ref().map(|c| FgaCondition {
            name: c.name.clone(),
            context: c.context.clone().unwrap_or_default(),
        }),
    }
}

fn fatal(message: String) -> FileReport {
    FileReport {
        fatal: Some(message),
        ..FileReport::default()
    }
}

/// Validates and converts tuples as a write would (OpenFGA refuses tuples
/// its model does not allow).
fn tuples_for(
    schema: &crate::schema::Schema,
    entries: &[store_file::Tuple],
) -> Result<Vec<Tuple>, String> {
    entries
        .iter()
        .map(|e| {
            let key = key(e);
            let t = to_tuple(schema, &key).map_err(|err| {
                format!(
                    "tuple {}#{}@{}: {}",
                    key.object, key.relation, key.user, err.message
                )
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
    let file = match StoreFile::parse(&text) {
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

    let entries = match file.resolve_tuples(&dir) {
        Ok(t) => t,
        Err(e) => return fatal(e.to_string()),
    };
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
    for test in &file.tests {
        let extra = match test.resolve_tuples(&dir) {
            Ok(t) => t,
            Err(e) => {
                report.failures.push(format!("test `{}`: {e}", test.name));
                continue;
            }
        };
        // A test's own tuples are written on top of the store's: validated
        // as writes, then laid over the snapshot for this test only.
        if let Err(e) = tuples_for(&schema, &extra) {
            report.failures.push(format!("test `{}`: {e}", test.name));
            continue;
        }
        let extra: Vec<FgaTupleKey> = extra.iter().map(key).collect();
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
    test: &StoreTest,
    extra: &[FgaTupleKey],
    limits: &FgaLimits,
    report: &mut FileReport,
) {
    let name = &test.name;
    // Each query's own `context` (the `fga` CLI ignores a test-level one).
    let context_of = |own: &Option<Map<String, Value>>| own.clone().unwrap_or_default();
    for c in &test.check {
        let context = context_of(&c.context);
        let (users, objects) = (CheckTest::all_users(c), CheckTest::all_objects(c));
        for user in &users {
            for object in &objects {
                for (relation, expected) in &c.assertions {
                    let key = FgaTupleKey::new(
                        (*user).to_string(),
                        relation.clone(),
                        (*object).to_string(),
                    );
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
    for l in &test.list_objects {
        let context = context_of(&l.context);
        for (relation, expected) in &l.assertions {
            let expected: BTreeSet<String> = expected.iter().cloned().collect();
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
    for l in &test.list_users {
        let context = context_of(&l.context);
        for (relation, expected) in &l.assertions {
            let expected: BTreeSet<String> = expected.users.iter().cloned().collect();
            let what = format!(
                "ListUsers(object={}, relation={relation}, filters={}{})",
                l.object,
                l.user_filter
                    .iter()
                    .map(|f| match &f.relation {
                        Some(r) => format!("{}#{r}", f.type_name),
                        None => f.type_name.clone(),
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
                    &f.type_name,
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
