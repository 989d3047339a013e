//! SpiceDB's official Python client against the real `verdict serve`:
//! `tests/sdk/spicedb_python.sh` installs `authzed` (pinned) from PyPI into
//! a cached venv and runs `tests/sdk/spicedb_python_test.py`, which drives
//! every implemented `authzed.api.v1` RPC, errors included, on one server
//! started with `--insecure-no-auth` and checks the preshared-key rules on
//! another started with `--grpc-preshared-key`.
//!
//! The same scenarios run against `verdict serve-testing` (each token its
//! own tenant), and SpiceDB's official Node client (`@authzed/authzed-node`,
//! pinned, installed by `tests/sdk/spicedb_node.sh` from npm) drives both
//! `verdict serve` and `verdict serve-testing` through
//! `tests/sdk/spicedb_node_test.mjs`.
//!
//! Skips (saying so) only when python3/venv or node/npm is missing or the
//! registry is unreachable (the scripts exit 77).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::process::Command;

use support::Server;

const PRESHARED: &str = "sdk-preshared-key-0123456789";

/// Runs an SDK script (`tests/sdk/<script>`) with `env`; skips on exit 77.
fn run_sdk(script: &str, env: &[(&str, &str)]) {
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) {
        eprintln!("skipped: {}", stderr.trim());
        return;
    }
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the {script} SDK tests failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}\n{stderr}");
}

#[test]
fn the_official_python_client_works_unchanged() {
    let open = Server::start(&["--insecure-no-auth"]);
    let guarded = Server::start(&["--grpc-preshared-key", PRESHARED]);
    run_sdk(
        "spicedb_python.sh",
        &[
            ("VERDICT_ENDPOINT", &open.grpc),
            ("VERDICT_AUTH_ENDPOINT", &guarded.grpc),
            ("VERDICT_PRESHARED_KEY", PRESHARED),
        ],
    );
}

#[test]
fn the_official_python_client_works_against_serve_testing() {
    let testing = Server::start_testing(&[]);
    run_sdk(
        "spicedb_python.sh",
        &[
            ("VERDICT_ENDPOINT", &testing.grpc),
            ("VERDICT_SERVE_TESTING", "1"),
        ],
    );
}

#[test]
fn the_official_node_client_works_unchanged() {
    let open = Server::start(&["--insecure-no-auth"]);
    let guarded = Server::start(&["--grpc-preshared-key", PRESHARED]);
    run_sdk(
        "spicedb_node.sh",
        &[
            ("VERDICT_ENDPOINT", &open.grpc),
            ("VERDICT_AUTH_ENDPOINT", &guarded.grpc),
            ("VERDICT_PRESHARED_KEY", PRESHARED),
        ],
    );
}

#[test]
fn the_official_node_client_works_against_serve_testing() {
    let testing = Server::start_testing(&[]);
    run_sdk(
        "spicedb_node.sh",
        &[
            ("VERDICT_ENDPOINT", &testing.grpc),
            ("VERDICT_SERVE_TESTING", "1"),
        ],
    );
}
