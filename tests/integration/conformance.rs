//! Conformance: SpiceDB's own schema test data, compiled by Verdict.
//!
//! Reads the directory named by `VERDICT_CONFORMANCE_DIR` (CI points it at
//! `../shared/conformance/public` and `../shared/conformance/spicedb`), or
//! the project's fixtures in `tests/fixtures/conformance` without it, and
//! walks it recursively:
//!
//! - every SpiceDB validation file (YAML with `schema:`/`schemaFile:`) must
//!   load and compile, except the loader's negative cases, which must fail;
//! - every parser test `X.zed` with SpiceDB's expected AST `X.zed.expected`
//!   must parse, unless the expected AST holds an error node, in which case
//!   it must fail to parse.
//!
//! Prints accepted/rejected/mismatched counts and fails on any mismatch.
//! A second test runs `verdict validate` over every validation file found.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::path::{Path, PathBuf};

use verdict::schema::{self, loader, SchemaLimits};

/// Validation files SpiceDB's loader rejects (missing/invalid/non-local
/// schema files, both `schema` and `schemaFile`, legacy keys, bad caveat).
const LOADER_REJECTS: &[&str] = &[
    "invalid_caveat.yaml",
    "loader_using_invalid_schemafile.yaml",
    "loader_using_missing_schemafile.yaml",
    "loader_using_non-local_schemafile.yaml",
    "schema_and_schemafile.yaml",
    "legacy.yaml",
];

/// An importer case: a directory with `root.zed` (and the files it
/// imports) and, when the import must succeed, `expected.zed`. Each
/// definition and caveat of the combined schema must match the expected one.
fn check_import_case(dir: &Path, tally: &mut Tally) {
    let limits = SchemaLimits::default();
    let expected = dir.join("expected.zed");
    let expect_reject = !expected.is_file();
    let (combined, sources) = schema::imports::load_with_imports(&dir.join("root.zed"), &limits);
    let outcome = combined
        .map_err(|errors| sources.render_all(&errors))
        .and_then(|file| {
            schema::compile_parsed(file, &limits).map_err(|e| sources.render_all(&e.diagnostics))
        })
        .and_then(|compiled| {
            if expect_reject {
                return Ok(());
            }
            let text = std::fs::read_to_string(&expected).unwrap_or_default();
            let want =
                schema::parse(&text, &limits).map_err(|e| e.render("expected.zed", &text))?;
            let items = |file: &schema::ast::SchemaFile| {
                let mut out: Vec<String> = schema::format::format_schema(file)
                    .split("\n\n")
                    .map(str::to_string)
                    .filter(|s| !s.starts_with("use "))
                    .collect();
                out.sort();
                out
            };
            if items(&compiled.ast) == items(&want) {
                Ok(())
            } else {
                Err(format!(
                    "combined schema differs from expected.zed:\n{}",
                    schema::format::format_schema(&compiled.ast)
                ))
            }
        });
    record(dir, expect_reject, outcome, tally);
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    rejected: usize,
    mismatched: Vec<String>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn is_spicedb_validation_file(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(value) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
        // Malformed YAML among SpiceDB's files is a loader negative case.
        return LOADER_REJECTS.contains(&file_name(path));
    };
    let Some(map) = value.as_mapping() else {
        return false;
    };
    ["schema", "schemaFile", "validation_tuples", "relationships"]
        .iter()
        .any(|k| map.contains_key(*k))
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn check_validation_file(path: &Path, tally: &mut Tally) {
    let expect_reject = LOADER_REJECTS.contains(&file_name(path));
    let outcome = loader::load(path)
        .map_err(|e| e.to_string())
        .and_then(|loaded| {
            schema::compile(&loaded.text, &SchemaLimits::default())
                .map(|_| ())
                .map_err(|e| e.render(&loaded.name, &loaded.text))
        });
    record(path, expect_reject, outcome, tally);
}

fn check_parser_case(path: &Path, expected: &Path, tally: &mut Tally) {
    let expected = std::fs::read_to_string(expected).unwrap_or_default();
    let expect_reject = expected.contains("NodeTypeError");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let outcome = schema::parse(&text, &SchemaLimits::default())
        .map(|_| ())
        .map_err(|e| e.render(&path.display().to_string(), &text));
    record(path, expect_reject, outcome, tally);
}

fn record(path: &Path, expect_reject: bool, outcome: Result<(), String>, tally: &mut Tally) {
    match (expect_reject, outcome) {
        (false, Ok(())) => tally.accepted += 1,
        (true, Err(_)) => tally.rejected += 1,
        (false, Err(message)) => tally.mismatched.push(format!(
            "{}: SpiceDB accepts it, Verdict rejected it:\n{message}",
            path.display()
        )),
        (true, Ok(())) => tally.mismatched.push(format!(
            "{}: SpiceDB rejects it, Verdict accepted it",
            path.display()
        )),
    }
}

#[test]
fn spicedb_schemas_compile_or_fail_as_spicedb_does() {
    let dir = std::env::var_os("VERDICT_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance")
        });
    assert!(
        dir.is_dir(),
        "conformance directory {} not found",
        dir.display()
    );
    let mut files = Vec::new();
    walk(&dir, &mut files);
    let mut validation = Tally::default();
    let mut parser = Tally::default();
    let mut importer = Tally::default();
    for path in &files {
        let name = file_name(path);
        if name == "root.zed" {
            check_import_case(path.parent().unwrap_or(Path::new(".")), &mut importer);
            continue;
        }
        if path.parent().is_some_and(|p| p.join("root.zed").is_file()) {
            continue; // imported by a root.zed case
        }
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            if is_spicedb_validation_file(path) {
                check_validation_file(path, &mut validation);
            }
        } else if name.ends_with(".zed") {
            let expected = path.with_file_name(format!("{name}.expected"));
            if expected.is_file() {
                check_parser_case(path, &expected, &mut parser);
            }
        }
    }
    println!(
        "conformance over {}:\n  validation files: {} accepted, {} rejected, {} mismatched\n  parser cases:     {} accepted, {} rejected, {} mismatched\n  import cases:     {} accepted, {} rejected, {} mismatched",
        dir.display(),
        validation.accepted,
        validation.rejected,
        validation.mismatched.len(),
        parser.accepted,
        parser.rejected,
        parser.mismatched.len(),
        importer.accepted,
        importer.rejected,
        importer.mismatched.len()
    );
    let total = validation.accepted
        + validation.rejected
        + parser.accepted
        + parser.rejected
        + importer.accepted
        + importer.rejected;
    assert!(
        total > 0,
        "no conformance cases found under {}",
        dir.display()
    );
    let mismatched: Vec<String> = validation
        .mismatched
        .into_iter()
        .chain(parser.mismatched)
        .chain(importer.mismatched)
        .collect();
    assert!(
        mismatched.is_empty(),
        "{} mismatch(es):\n{}",
        mismatched.len(),
        mismatched.join("\n")
    );
}

/// Validation files SpiceDB itself refuses to run because a relationship is
/// invalid or repeated (these must fail `verdict validate` too).
const RELATIONSHIP_REJECTS: &[&str] = &[
    "invalid_caveated_rel.yaml",
    "invalid_caveated_rel_syntax.yaml",
    "repeated_relationship.yaml",
];

/// Runs every SpiceDB validation file through `verdict validate` (schema,
/// relationships, assertions, expected relations) and reports
/// passed/failed files and assertions. Every file must pass, except the
/// ones SpiceDB rejects, which must fail.
#[test]
fn spicedb_validation_files_pass_verdict_validate() {
    let dir = std::env::var_os("VERDICT_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance")
        });
    let mut files = Vec::new();
    walk(&dir, &mut files);
    let now = verdict_storage::Timestamp::now();
    let (mut passed_files, mut failed_files, mut skipped_files) = (0, 0, 0);
    let (mut passed_assertions, mut failed_assertions) = (0, 0);
    let mut unexpected = Vec::new();
    for path in &files {
        let name = file_name(path);
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) || !is_spicedb_validation_file(path)
        {
            continue;
        }
        if LOADER_REJECTS.contains(&name) {
            skipped_files += 1; // covered by the schema conformance test
            continue;
        }
        let has_schema = loader::load(path).is_ok_and(|l| !l.text.trim().is_empty());
        if !has_schema {
            skipped_files += 1; // relationships for an existing schema: nothing to validate against
            continue;
        }
        let report = verdict::validate::validate_file(path, now);
        passed_assertions += report.passed;
        failed_assertions += report.failures.len();
        let must_fail = RELATIONSHIP_REJECTS.contains(&name);
        match (report.ok(), must_fail) {
            (true, false) | (false, true) => passed_files += 1,
            (false, false) => {
                failed_files += 1;
                let mut why = report.fatal.clone().unwrap_or_default();
                why.push_str(&report.failures.join("\n"));
                unexpected.push(format!("{}:\n{why}", path.display()));
            }
            (true, true) => {
                failed_files += 1;
                unexpected.push(format!(
                    "{}: SpiceDB rejects it, verdict validate passed it",
                    path.display()
                ));
            }
        }
    }
    println!(
        "verdict validate over {}: files {passed_files} as expected, {failed_files} not, {skipped_files} skipped (loader negatives, no schema); assertions {passed_assertions} passed, {failed_assertions} failed",
        dir.display()
    );
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n\n"));
}
