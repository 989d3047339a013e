#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
//! Upstream's store-file cases (tests-data/stores) and our own.

mod common;

use verdict_fga_lang::store_file::{check_store_yaml, StoreFile};

#[test]
fn upstream_store_cases() {
    let Some(dir) = common::data_dir() else {
        return;
    };
    let mut dirs: Vec<_> = std::fs::read_dir(dir.join("stores"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let mut results = Vec::new();
    for case in dirs {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let path = case.join("store.fga.yaml");
        let src = std::fs::read_to_string(&path).unwrap();
        let r = (|| -> Result<(), String> {
            match std::fs::read_to_string(case.join("expected_errors.json")) {
                Ok(want) => {
                    let want: Vec<serde_json::Value> = serde_json::from_str(&want).unwrap();
                    let got = check_store_yaml(&src).map_err(|e| e.to_string())?;
                    let key = |keyword: &str, msg: &str, ip: &str, sp: &str| {
                        format!("{keyword}|{msg}|{ip}|{sp}")
                    };
                    let mut g: Vec<String> = got
                        .iter()
                        .map(|e| key(&e.keyword, &e.message, &e.instance_path, &e.schema_path))
                        .collect();
                    let mut w: Vec<String> = want
                        .iter()
                        .map(|e| {
                            key(
                                e["keyword"].as_str().unwrap(),
                                e["message"].as_str().unwrap(),
                                e["instancePath"].as_str().unwrap(),
                                e["schemaPath"].as_str().unwrap(),
                            )
                        })
                        .collect();
                    g.sort();
                    w.sort();
                    if g != w {
                        return Err(format!("got {g:#?}\nwant {w:#?}"));
                    }
                    if StoreFile::from_yaml(&src).is_ok() {
                        return Err("loaded despite errors".into());
                    }
                    Ok(())
                }
                Err(_) => {
                    let (store, base) = StoreFile::load(&path).map_err(|e| e.to_string())?;
                    let model = store.resolve_model(&base).map_err(|e| e.to_string())?;
                    let tuples = store.resolve_tuples(&base).map_err(|e| e.to_string())?;
                    if model.type_definitions.len() != 2
                        || tuples.len() != 2
                        || store.tests.len() != 2
                    {
                        return Err(format!("unexpected content: {store:?}"));
                    }
                    Ok(())
                }
            }
        })();
        results.push((name, r));
    }
    common::report("stores/*", &results, &[]);
}

#[test]
fn tuple_files_and_assertions() {
    let dir = std::env::temp_dir().join(format!("fga-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("t.csv"),
        "user_type,user_id,user_relation,relation,object_type,object_id,condition_name,condition_context\n\
         group,eng,member,viewer,doc,1,,\n\
         user,anne,,viewer,doc,2,in_office,\"{\"\"ip\"\":\"\"10.0.0.1\"\"}\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("t.yaml"),
        "- user: user:bob\n  relation: viewer\n  object: doc:3\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("store.fga.yaml"),
        "name: s\nmodel: |\n  model\n    schema 1.1\n  type user\n  type group\n    relations\n      define member: [user]\n  type doc\n    relations\n      define viewer: [user, group#member, user with in_office]\n  condition in_office(ip: ipaddress) {\n    ip.in_cidr(\"10.0.0.0/8\")\n  }\n\
tuple_files: [t.csv, t.yaml]\ntests:\n  - name: a\n    check:\n      - user: user:bob\n        object: doc:3\n        context: {ip: 10.0.0.1}\n        assertions: {viewer: true}\n    list_users:\n      - object: doc:1\n        user_filter: [{type: group, relation: member}]\n        assertions: {viewer: {users: [group:eng#member]}}\n",
    )
    .unwrap();
    let (store, base) = StoreFile::load(&dir.join("store.fga.yaml")).unwrap();
    let tuples = store.resolve_tuples(&base).unwrap();
    assert_eq!(tuples.len(), 3);
    assert_eq!(tuples[0].user, "group:eng#member");
    assert_eq!(tuples[1].condition.as_ref().unwrap().name, "in_office");
    assert_eq!(
        tuples[1]
            .condition
            .as_ref()
            .unwrap()
            .context
            .as_ref()
            .unwrap()["ip"],
        "10.0.0.1"
    );
    assert_eq!(tuples[2].object, "doc:3");
    let model = store.resolve_model(&base).unwrap();
    assert!(model.conditions.contains_key("in_office"));
    assert!(store.tests[0].check[0].assertions["viewer"]);
    assert_eq!(
        store.tests[0].list_users[0].user_filter[0]
            .relation
            .as_deref(),
        Some("member")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn structural_errors_name_the_field() {
    let errs =
        check_store_yaml("model: x\ntests:\n  - check:\n      - user: 1\n        object: doc:1\n")
            .unwrap();
    let paths: Vec<_> = errs
        .iter()
        .map(|e| (e.instance_path.as_str(), e.keyword.as_str()))
        .collect();
    assert!(
        paths.contains(&("/tests/0/check/0", "required")),
        "{paths:?}"
    );
    assert!(
        paths.contains(&("/tests/0/check/0/user", "type")),
        "{paths:?}"
    );
}

/// What the `fga` CLI reads and the strict (JSON-schema) pass does not:
/// `users:`/`objects:` lists in a check and `null` expected lists.
#[test]
fn parse_reads_check_lists_and_null_expectations() {
    let src = r#"
model_file: m.fga
tests:
  - name: lists
    check:
      - users: [user:anne, user:bob]
        objects: [doc:1, doc:2]
        assertions: {viewer: true}
      - user: user:carl
        object: doc:1
        objects: [doc:3]
        assertions: {viewer: false}
    list_objects:
      - user: user:anne
        type: doc
        assertions: {viewer: null, editor: [doc:1]}
    list_users:
      - object: doc:1
        user_filter: [{type: user}]
        assertions: {viewer: {users: null}}
"#;
    let store = StoreFile::parse(src).unwrap();
    let test = &store.tests[0];
    assert_eq!(test.check[0].all_users(), ["user:anne", "user:bob"]);
    assert_eq!(test.check[0].all_objects(), ["doc:1", "doc:2"]);
    assert_eq!(test.check[1].all_users(), ["user:carl"]);
    assert_eq!(test.check[1].all_objects(), ["doc:1", "doc:3"]);
    let lo = &test.list_objects[0].assertions;
    assert!(lo["viewer"].is_empty());
    assert_eq!(lo["editor"], ["doc:1"]);
    assert!(test.list_users[0].assertions["viewer"].users.is_empty());
    // An unknown key is still refused, naming it.
    let err = StoreFile::parse("model: x\ntests: [{name: t, chek: []}]\n").unwrap_err();
    assert!(err.to_string().contains("chek"), "{err}");
}
