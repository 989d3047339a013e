//! Locating upstream's language test data (never copied into the repo).

use std::path::PathBuf;

/// `$VERDICT_FGA_LANGUAGE_TESTS`, else the shared checkout next to the repo.
/// `None` (after printing why) when the directory is absent.
pub fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("VERDICT_FGA_LANGUAGE_TESTS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance/openfga/language/tests-data"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "upstream OpenFGA language cases not found at {}; cases skipped",
            dir.display()
        );
        None
    }
}

/// Prints `N of M cases pass` for `file` and fails on any failure not in
/// `known` (case name → reason). A known failure that passes also fails, so
/// the list cannot go stale.
pub fn report(file: &str, results: &[(String, Result<(), String>)], known: &[(&str, &str)]) {
    let pass = results.iter().filter(|(_, r)| r.is_ok()).count();
    println!("{file}: {pass} of {} cases pass", results.len());
    let mut bad = Vec::new();
    for (name, r) in results {
        let is_known = known.iter().any(|(k, _)| k == name);
        match r {
            Err(e) if !is_known => bad.push(format!("{name}: {e}")),
            Ok(()) if is_known => bad.push(format!("{name}: listed as a known failure but passes")),
            _ => {}
        }
    }
    assert!(
        bad.is_empty(),
        "{file}: {} failures:\n{}",
        bad.len(),
        bad.join("\n\n")
    );
}
