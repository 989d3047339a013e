//! The set-up scripts a new user runs first: `scripts/have-libclang.sh`
//! must agree with bindgen about whether a libclang is present, or the
//! README's commands fail on a fresh machine (issue 16).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::process::Command;

#[test]
fn libclang_detection_matches_bindgen_on_fake_trees() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-have-libclang.sh");
    let out = Command::new("bash").arg(script).output();
    let out = match out {
        Ok(out) => out,
        Err(err) => panic!("running {script}: {err}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libclang detection disagrees with bindgen:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok   only-libclang-cpp: missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok   libclang-path-dir: present"),
        "{stdout}"
    );
}
