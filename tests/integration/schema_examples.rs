//! Every schema in `schema-examples/` compiles without errors, and its
//! canonical form compiles to the same IR.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use verdict::schema::{self, loader, SchemaLimits};

#[test]
fn every_example_compiles_and_formats_stably() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        count += 1;
        let loaded = loader::load(&path).unwrap();
        let limits = SchemaLimits::default();
        let compiled = schema::compile(&loaded.text, &limits)
            .unwrap_or_else(|e| panic!("{}", e.render(&loaded.name, &loaded.text)));
        let formatted = schema::format(&loaded.text, &limits).unwrap();
        let again = schema::compile(&formatted, &limits).unwrap();
        assert_eq!(compiled.schema, again.schema, "{}", path.display());
        assert_eq!(schema::format(&formatted, &limits).unwrap(), formatted);
        let v = loaded.validation.unwrap();
        assert!(
            !v.relationship_lines().is_empty(),
            "{} has no relationships",
            path.display()
        );
    }
    assert!(count >= 5, "expected at least five examples, found {count}");
}

/// Every example passes `verdict validate`: its assertions hold.
#[test]
fn every_example_passes_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-examples");
    let now = verdict_storage::Timestamp::now();
    let mut failures = Vec::new();
    let mut assertions = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let report = verdict::validate::validate_file(&path, now);
        assertions += report.passed;
        if let Some(f) = report.fatal {
            failures.push(format!("{}: {f}", path.display()));
        }
        failures.extend(
            report
                .failures
                .into_iter()
                .map(|f| format!("{}: {f}", path.display())),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(assertions >= 50, "only {assertions} assertions ran");
}
