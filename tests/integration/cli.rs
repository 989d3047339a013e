//! End-to-end: the built `verdict` binary, run as a process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::process::Command;

fn verdict(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("verdict runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn schema_check_accepts_examples_and_reports_errors_with_positions() {
    let (ok, stdout, _) = verdict(&["schema", "check", "schema-examples/document-sharing.yaml"]);
    assert!(ok);
    assert!(
        stdout.contains("ok: schema-examples/document-sharing.yaml"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.zed");
    std::fs::write(&bad, "definition user {}\ndefinition doc {\n    relation viewer: usr\n    permission view = viewr\n}\n").unwrap();
    let (ok, _, stderr) = verdict(&["schema", "check", bad.to_str().unwrap()]);
    assert!(!ok, "a schema with errors must fail");
    assert!(stderr.contains("bad.zed:3:22"), "{stderr}");
    assert!(stderr.contains("bad.zed:4:23"), "{stderr}");
    assert!(stderr.contains("did you mean `user`?"), "{stderr}");
    assert!(stderr.contains("2 error(s)"), "{stderr}");

    // --parse-only accepts a fragment with unresolved names.
    let (ok, _, stderr) = verdict(&["schema", "check", "--parse-only", bad.to_str().unwrap()]);
    assert!(ok, "{stderr}");
}

#[test]
fn parse_only_does_not_need_imported_files() {
    // SpiceDB's `localimport*.zed` parser cases: the imported file is absent.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("imports.zed");
    std::fs::write(
        &file,
        "use import\n\nimport \"path/to/user.zed\"\n\ndefinition resource {\n    relation user: user\n}\n",
    )
    .unwrap();
    let (ok, _, stderr) = verdict(&["schema", "check", "--parse-only", file.to_str().unwrap()]);
    assert!(ok, "--parse-only must not resolve imports: {stderr}");
    // A full check still resolves them, and says the file is missing.
    let (ok, _, stderr) = verdict(&["schema", "check", file.to_str().unwrap()]);
    assert!(!ok, "a full check must resolve the import");
    assert!(stderr.contains("path/to/user.zed"), "{stderr}");
}

#[test]
fn schema_fmt_prints_canonical_form_and_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.zed");
    std::fs::write(
        &file,
        "definition user {}\ndefinition doc { relation viewer: user\npermission view = (viewer) }",
    )
    .unwrap();
    let (ok, stdout, _) = verdict(&["schema", "fmt", file.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(
        stdout,
        "definition user {}\n\ndefinition doc {\n    relation viewer: user\n\n    permission view = viewer\n}\n"
    );
    let (ok, _, _) = verdict(&["schema", "fmt", "--check", file.to_str().unwrap()]);
    assert!(!ok, "unformatted file must fail --check");
    let (ok, _, _) = verdict(&["schema", "fmt", "--write", file.to_str().unwrap()]);
    assert!(ok);
    let (ok, _, _) = verdict(&["schema", "fmt", "--check", file.to_str().unwrap()]);
    assert!(ok, "formatted file passes --check");
}

#[test]
fn validate_passes_good_files_and_explains_failures() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "schema: |-\n  definition user {}\n  definition doc {\n    relation viewer: user\n    permission view = viewer\n  }\nrelationships: |-\n  doc:1#viewer@user:ann\nassertions:\n  assertTrue:\n    - doc:1#view@user:ann\n  assertFalse:\n    - doc:1#view@user:bob\nvalidation:\n  doc:1#view:\n    - \"[user:ann] is <doc:1#viewer>\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = verdict(&["validate", good.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("2 assertion(s), 1 expected relation(s)"),
        "{stdout}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "schema: |-\n  definition user {}\n  definition doc {\n    relation viewer: user\n    permission view = viewer\n  }\nrelationships: |-\n  doc:1#viewer@user:ann\nassertions:\n  assertTrue:\n    - doc:1#view@user:bob\n",
    )
    .unwrap();
    let (ok, _, stderr) = verdict(&["validate", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("expected ALLOWED, got DENIED"), "{stderr}");
    assert!(
        stderr.contains("doc:1#view → DENIED"),
        "the trace explains it: {stderr}"
    );

    let rels = dir.path().join("rels.yaml");
    std::fs::write(
        &rels,
        "schema: |-\n  definition user {}\n  definition doc {\n    relation viewer: user\n  }\nrelationships: |-\n  doc:1#editor@user:ann\n",
    )
    .unwrap();
    let (ok, _, stderr) = verdict(&["validate", rels.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("relationship line 1"), "{stderr}");
    assert!(
        stderr.contains("relation `editor` is not defined on `doc`"),
        "{stderr}"
    );
}
