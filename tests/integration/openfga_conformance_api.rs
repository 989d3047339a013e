//! OpenFGA conformance through the API (issue 19, item 4): the same
//! OpenFGA server suite as `openfga_conformance` (which runs it in-process
//! through the engine), here driven over the HTTP/JSON API of a real
//! `verdict serve`, as OpenFGA's own runner drives its server:
//!
//! - each test gets a new store (CreateStore); each stage writes its model
//!   (WriteAuthorizationModel, the DSL converted to JSON as the `fga` CLI
//!   does) and its tuples (Write, 100 at a time), and its questions pin
//!   that model;
//! - Check, ListObjects (also through StreamedListObjects) and ListUsers
//!   with their contextual tuples and context; `errorCode` assertions
//!   compare the code OpenFGA names in the error body;
//! - every listed object and user is re-checked with Check;
//! - each single-stage test runs again with the stage's tuples sent as
//!   contextual tuples instead of written (skipped above 100, as upstream).
//!
//! Prints the pass counts; fails when a test not listed in
//! [`KNOWN_FAILURES`] fails or a listed one passes. Without the suite's
//! directory it prints why and passes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::openfga_api::{call, create_store};
use crate::openfga_conformance::{conformance_dir, Key, Suite, Tally, Test};
use crate::support::Server;

/// Tests (with `_ctxTuples` for the contextual run) known to fail over the
/// API, each with the reason.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// OpenFGA's numeric code of an error body's `code` name.
fn code_number(name: &str) -> u32 {
    match name {
        "validation_error" => 2000,
        "authorization_model_not_found" => 2001,
        "authorization_model_resolution_too_complex" => 2002,
        "invalid_write_input" => 2003,
        "cannot_allow_duplicate_tuples_in_one_request" => 2004,
        "cannot_allow_duplicate_types_in_one_request" => 2005,
        "invalid_continuation_token" => 2007,
        "write_failed_due_to_invalid_input" => 2017,
        "latest_authorization_model_not_found" => 2020,
        "type_not_found" => 2021,
        "relation_not_found" => 2022,
        "invalid_tuple" => 2027,
        "exceeded_entity_limit" => 2053,
        "invalid_authorization_model" => 2056,
        "unsupported_schema_version" => 2057,
        "internal_error" => 4000,
        "deadline_exceeded" => 4004,
        "store_id_not_found" => 5002,
        _ => 1,
    }
}

fn key_json(k: &Key) -> Value {
    let mut v = json!({"user": k.user, "relation": k.relation, "object": k.object});
    if let Some(c) = &k.condition {
        v["condition"] = json!({"name": c.name, "context": c.context.clone().unwrap_or_default()});
    }
    v
}

/// An answer over the API: the body, or OpenFGA's numeric error code.
type Answer = Result<Value, (u32, String)>;

fn answer((status, body): (u16, Value)) -> Answer {
    if status == 200 {
        Ok(body)
    } else {
        let name = body["code"].as_str().unwrap_or("").to_string();
        Err((code_number(&name), format!("{status} {body}")))
    }
}

fn code_of<T>(r: &Result<T, (u32, String)>) -> u32 {
    r.as_ref().err().map_or(0, |e| e.0)
}

/// One store's questions.
struct Questions<'a> {
    server: &'a Server,
    store: String,
    model_id: String,
}

impl Questions<'_> {
    fn post(&self, route: &str, body: Value) -> (u16, Value) {
        call(
            self.server,
            "POST",
            &format!("/stores/{}/{route}", self.store),
            Some(&body),
            None,
        )
    }

    fn check(
        &self,
        user: &str,
        relation: &str,
        object: &str,
        ctx: &[Value],
        context: &Map<String, Value>,
    ) -> Result<bool, (u32, String)> {
        answer(self.post(
            "check",
            json!({"tuple_key": {"user": user, "relation": relation, "object": object},
                   "contextual_tuples": {"tuple_keys": ctx}, "context": context,
                   "authorization_model_id": self.model_id}),
        ))
        .map(|b| b["allowed"].as_bool().unwrap_or(false))
    }

    fn list_objects(
        &self,
        streamed: bool,
        ty: &str,
        relation: &str,
        user: &str,
        ctx: &[Value],
        context: &Map<String, Value>,
    ) -> Result<Vec<String>, (u32, String)> {
        let body = json!({"type": ty, "relation": relation, "user": user,
                          "contextual_tuples": {"tuple_keys": ctx}, "context": context,
                          "authorization_model_id": self.model_id});
        if !streamed {
            let b = answer(self.post("list-objects", body))?;
            return Ok(strings(&b["objects"]));
        }
        let lines = answer(self.post("streamed-list-objects", body))?;
        let mut out = Vec::new();
        for line in lines.as_array().cloned().unwrap_or_default() {
            if let Some(e) = line.get("error") {
                let code = e["code"].as_u64().unwrap_or(1) as u32;
                return Err((code, e.to_string()));
            }
            out.push(line["result"]["object"].as_str().unwrap_or("").to_string());
        }
        Ok(out)
    }

    fn list_users(
        &self,
        object: &str,
        relation: &str,
        filter: &str,
        ctx: &[Value],
        context: &Map<String, Value>,
    ) -> Result<Vec<String>, (u32, String)> {
        let (ot, oid) = object.split_once(':').unwrap_or((object, ""));
        let filter = match filter.split_once('#') {
            Some((t, r)) => json!({"type": t, "relation": r}),
            None => json!({"type": filter}),
        };
        let b = answer(self.post(
            "list-users",
            json!({"object": {"type": ot, "id": oid}, "relation": relation,
                   "user_filters": [filter], "contextual_tuples": ctx, "context": context,
                   "authorization_model_id": self.model_id}),
        ))?;
        Ok(b["users"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|u| {
                if let Some(o) = u.get("object") {
                    format!(
                        "{}:{}",
                        o["type"].as_str().unwrap(),
                        o["id"].as_str().unwrap()
                    )
                } else if let Some(s) = u.get("userset") {
                    format!(
                        "{}:{}#{}",
                        s["type"].as_str().unwrap(),
                        s["id"].as_str().unwrap(),
                        s["relation"].as_str().unwrap()
                    )
                } else {
                    format!("{}:*", u["wildcard"]["type"].as_str().unwrap())
                }
            })
            .collect())
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn run_test(server: &Server, test: &Test, contextual: bool, tally: &mut Tally) {
    let name = if contextual {
        format!("{}_ctxTuples", test.name)
    } else {
        test.name.clone()
    };
    if contextual && test.stages.len() > 1 {
        return; // upstream: multi-stage expectations rely on stored tuples
    }
    let store = create_store(server, "conformance");
    for (n, stage) in test.stages.iter().enumerate() {
        let tuples: Vec<Key> = stage.tuples.clone().unwrap_or_default();
        if contextual && tuples.len() > 100 {
            continue;
        }
        let model = match verdict_fga_lang::parse_dsl(&stage.model) {
            Ok(m) => serde_json::to_value(&m).unwrap(),
            Err(e) => {
                tally.check(&name, false, || format!("stage {n}: model: {e:?}"));
                continue;
            }
        };
        let (status, body) = call(
            server,
            "POST",
            &format!("/stores/{store}/authorization-models"),
            Some(&model),
            None,
        );
        if status != 201 {
            tally.check(&name, false, || {
                format!("stage {n}: WriteAuthorizationModel: {status} {body}")
            });
            continue;
        }
        let q = Questions {
            server,
            store: store.clone(),
            model_id: body["authorization_model_id"].as_str().unwrap().to_string(),
        };
        if !contextual {
            for chunk in tuples.chunks(100) {
                let keys: Vec<Value> = chunk.iter().map(key_json).collect();
                let (status, body) = q.post(
                    "write",
                    json!({"writes": {"tuple_keys": keys}, "authorization_model_id": q.model_id}),
                );
                tally.check(&name, status == 200, || {
                    format!("stage {n}: Write: {status} {body}")
                });
            }
        }
        let stage_ctx: Vec<Value> = if contextual {
            tuples.iter().map(key_json).collect()
        } else {
            Vec::new()
        };
        let ctx_tuples = |own: &Option<Vec<Key>>| -> Vec<Value> {
            let mut v: Vec<Value> = own.iter().flatten().map(key_json).collect();
            v.extend(stage_ctx.iter().cloned());
            v
        };
        for (i, a) in stage.check.iter().flatten().enumerate() {
            let ctx = ctx_tuples(&a.contextual_tuples);
            let context = a.context.clone().unwrap_or_default();
            let t = &a.tuple;
            let got = q.check(&t.user, &t.relation, &t.object, &ctx, &context);
            let ok = if a.error_code == 0 {
                got.as_ref().is_ok_and(|g| *g == a.expectation)
            } else {
                code_of(&got) == a.error_code
            };
            tally.check(&name, ok, || {
                format!(
                    "stage {n} check {i} {t:?}: expected {} / error {}, got {got:?}",
                    a.expectation, a.error_code
                )
            });
        }
        for (i, a) in stage.list_objects.iter().flatten().enumerate() {
            let ctx = ctx_tuples(&a.contextual_tuples);
            let context = a.context.clone().unwrap_or_default();
            let r = &a.request;
            let want: BTreeSet<String> = a.expectation.iter().flatten().cloned().collect();
            for streamed in [false, true] {
                let got = q.list_objects(
                    streamed,
                    &r.object_type,
                    &r.relation,
                    &r.user,
                    &ctx,
                    &context,
                );
                let ok = if a.error_code == 0 {
                    got.as_ref().is_ok_and(|g| {
                        g.iter().cloned().collect::<BTreeSet<_>>() == want && g.len() == want.len()
                    })
                } else {
                    code_of(&got) == a.error_code
                };
                tally.check(&name, ok, || {
                    format!(
                        "stage {n} list_objects {i} (streamed: {streamed}) {r:?}: expected {want:?} / error {}, got {got:?}",
                        a.error_code
                    )
                });
                if let (0, Ok(objects)) = (a.error_code, &got) {
                    for o in objects {
                        let c = q.check(&r.user, &r.relation, o, &ctx, &context);
                        tally.check(&name, matches!(c, Ok(true)), || {
                            format!("stage {n} list_objects {i}: listed {o} but check says {c:?}")
                        });
                    }
                }
            }
        }
        for (i, a) in stage.list_users.iter().flatten().enumerate() {
            let ctx = ctx_tuples(&a.contextual_tuples);
            let context = a.context.clone().unwrap_or_default();
            let r = &a.request;
            let mut got: Result<Vec<String>, (u32, String)> = Ok(Vec::new());
            for f in &r.filters {
                let res = q.list_users(&r.object, &r.relation, f, &ctx, &context);
                got = match (got, res) {
                    (Ok(mut all), Ok(more)) => {
                        all.extend(more);
                        Ok(all)
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
            }
            let want: BTreeSet<String> = a.expectation.iter().flatten().cloned().collect();
            let ok = if a.error_code == 0 {
                got.as_ref()
                    .is_ok_and(|g| g.iter().cloned().collect::<BTreeSet<_>>() == want)
            } else {
                code_of(&got) == a.error_code
            };
            tally.check(&name, ok, || {
                format!(
                    "stage {n} list_users {i} {r:?}: expected {want:?} / error {}, got {got:?}",
                    a.error_code
                )
            });
            if let (0, Ok(users)) = (a.error_code, &got) {
                for u in users {
                    let c = q.check(u, &r.relation, &r.object, &ctx, &context);
                    tally.check(&name, matches!(c, Ok(true)), || {
                        format!("stage {n} list_users {i}: listed {u} but check says {c:?}")
                    });
                }
            }
        }
    }
}

#[test]
fn openfga_server_conformance_over_the_api() {
    let Some(dir) = conformance_dir() else {
        eprintln!("skipped: no conformance directory (set VERDICT_CONFORMANCE_DIR)");
        return;
    };
    let server = Server::start(&["--insecure-no-auth"]);
    let mut all_failing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut found = false;
    for file in ["consolidated_1_1_tests.yaml", "abac_tests.yaml"] {
        let path = dir.join("openfga").join(file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: {} not found", path.display());
            continue;
        };
        found = true;
        let suite: Suite = serde_yaml_ng::from_str(&text).unwrap();
        let mut stored = Tally::default();
        let mut ctx = Tally::default();
        for test in &suite.tests {
            run_test(&server, test, false, &mut stored);
            run_test(&server, test, true, &mut ctx);
        }
        println!(
            "openfga conformance over the HTTP API, {file}: {} tests; stored tuples: {} assertions passed, {} failed ({} tests failing); contextual tuples: {} passed, {} failed ({} tests failing)",
            suite.tests.len(),
            stored.passed,
            stored.failed,
            stored.failing.len(),
            ctx.passed,
            ctx.failed,
            ctx.failing.len()
        );
        all_failing.extend(stored.failing);
        all_failing.extend(ctx.failing);
    }
    if !found {
        return;
    }
    let known: BTreeSet<&str> = KNOWN_FAILURES.iter().map(|(n, _)| *n).collect();
    let unexpected: Vec<String> = all_failing
        .iter()
        .filter(|(n, _)| !known.contains(n.as_str()))
        .map(|(n, f)| format!("{n}:\n    {}", f.join("\n    ")))
        .collect();
    let fixed: Vec<&&str> = known
        .iter()
        .filter(|n| !all_failing.contains_key(**n))
        .collect();
    assert!(
        unexpected.is_empty() && fixed.is_empty(),
        "{} tests fail over the API that are not known failures:\n{}\nknown failures that now pass (remove them): {fixed:?}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
