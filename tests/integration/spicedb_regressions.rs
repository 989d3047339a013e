//! Small SpiceDB validation files written by us (issue 23), run through
//! `verdict validate`, and — when `../shared/peers` is beside the project —
//! through the real SpiceDB (`spicedb_oracle.py`) too:
//!
//! - `tests/fixtures/spicedb-regressions/*.yaml`: cases where Verdict was
//!   wrong, or could be; every assertion is SpiceDB's answer as well, so
//!   SpiceDB must pass the file;
//! - `tests/fixtures/spicedb-differences/*.yaml`: deliberate differences,
//!   where SpiceDB v1.54.0 is wrong (README, "Deliberate differences from
//!   SpiceDB"). Verdict must pass every assertion, and SpiceDB must still
//!   answer exactly as recorded in `X.spicedb.txt`: a SpiceDB that stops
//!   being wrong shows up here, and the file then moves to
//!   `spicedb-regressions`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn verdict_passes(path: &Path) {
    let report = verdict::validate::validate_file(path, verdict_storage::Timestamp::now());
    assert!(
        report.ok(),
        "{}: {}\n{}",
        path.display(),
        report.fatal.unwrap_or_default(),
        report.failures.join("\n")
    );
    assert!(report.passed > 0, "{}: no assertions", path.display());
}

/// SpiceDB's output on `path` (status, stdout), or `None` when the peers
/// are not installed.
fn spicedb(path: &Path) -> Option<(i32, String)> {
    let peers = std::env::var_os("VERDICT_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers"));
    let python = peers.join(".venv/bin/python");
    if !python.is_file() {
        return None;
    }
    let out = Command::new(python)
        .arg(peers.join("spicedb_oracle.py"))
        .arg(path)
        .output()
        .expect("run spicedb_oracle.py");
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[test]
fn regressions_pass_in_verdict_and_spicedb() {
    for path in fixtures("spicedb-regressions") {
        verdict_passes(&path);
        match spicedb(&path) {
            None => eprintln!(
                "{}: SpiceDB not checked (../shared/peers/.venv absent)",
                path.display()
            ),
            Some((status, out)) => {
                assert_eq!(status, 0, "SpiceDB fails {}:\n{out}", path.display())
            }
        }
    }
}

#[test]
fn deliberate_differences_hold() {
    for path in fixtures("spicedb-differences") {
        verdict_passes(&path);
        let recorded = path.with_extension("spicedb.txt");
        let want = std::fs::read_to_string(&recorded)
            .unwrap_or_else(|e| panic!("{}: {e}", recorded.display()));
        match spicedb(&path) {
            None => eprintln!("{}: SpiceDB not checked (../shared/peers/.venv absent)", path.display()),
            Some((_, out)) => assert_eq!(
                out,
                want,
                "SpiceDB no longer answers {} as recorded in {}: if it now agrees with Verdict, move the file to tests/fixtures/spicedb-regressions and update the README",
                path.display(),
                recorded.display()
            ),
        }
    }
}
