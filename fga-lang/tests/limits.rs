#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
//! Hostile inputs end in an error, never a stack overflow or a hang.

use std::fmt::Write as _;

#[test]
fn deeply_nested_parentheses_are_an_error() {
    let dsl = format!(
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define a: [user]\n    define b: {}a{}\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let err = verdict_fga_lang::parse_dsl(&dsl).unwrap_err();
    assert!(err.0[0].msg.contains("nested deeper than"), "{err}");
    // Within the limit it parses.
    let ok = format!(
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define a: [user]\n    define b: {}a{}\n",
        "(".repeat(100),
        ")".repeat(100)
    );
    verdict_fga_lang::parse_dsl(&ok).unwrap();
}

#[test]
fn long_relation_chains_validate_quickly() {
    // 3000 relations, each computed from the next: deep for upstream's
    // recursive entry-point search; validation must finish and accept it.
    let mut dsl = String::from("model\n  schema 1.1\ntype user\ntype doc\n  relations\n");
    for i in 0..3000 {
        writeln!(dsl, "    define r{i}: r{}", i + 1).unwrap();
    }
    dsl.push_str("    define r3000: [user]\n");
    let start = std::time::Instant::now();
    verdict_fga_lang::parse_dsl(&dsl).unwrap();
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}
