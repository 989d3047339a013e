//! Property tests for the schema formatter over generated schemas:
//! formatting is idempotent, and the formatted text compiles to the same IR
//! as the original (whatever spacing, comments and parentheses it used).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use proptest::prelude::*;
use verdict::schema::{self, SchemaLimits};

#[derive(Debug, Clone)]
enum GenExpr {
    Leaf(usize),
    Arrow(usize),
    ArrowAll(usize),
    Nil,
    Union(Box<GenExpr>, Box<GenExpr>),
    Intersection(Box<GenExpr>, Box<GenExpr>),
    Exclusion(Box<GenExpr>, Box<GenExpr>),
}

fn expr_strategy() -> impl Strategy<Value = GenExpr> {
    let leaf = prop_oneof![
        4 => (0usize..3).prop_map(GenExpr::Leaf),
        1 => (0usize..2).prop_map(GenExpr::Arrow),
        1 => (0usize..2).prop_map(GenExpr::ArrowAll),
        1 => Just(GenExpr::Nil),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| GenExpr::Union(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| GenExpr::Intersection(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| GenExpr::Exclusion(Box::new(a), Box::new(b))),
        ]
    })
}

/// Renders with full parentheses and random spacing, so the formatter has
/// to normalise it.
fn render(e: &GenExpr, spaces: &[bool], i: &mut usize) -> String {
    let binary = |a: &GenExpr, b: &GenExpr, op: char, i: &mut usize| {
        let left = render(a, spaces, i);
        *i += 1;
        let pad = if spaces[*i % spaces.len()] { "  " } else { " " };
        let right = render(b, spaces, i);
        format!("({left}{pad}{op}{pad}{right})")
    };
    match e {
        GenExpr::Leaf(n) => ["viewer", "editor", "owner"][*n].to_string(),
        GenExpr::Arrow(n) => format!("parent->{}", ["view", "edit"][*n]),
        GenExpr::ArrowAll(n) => format!("parent.all({})", ["view", "edit"][*n]),
        GenExpr::Nil => "nil".to_string(),
        GenExpr::Union(a, b) => binary(a, b, '+', i),
        GenExpr::Intersection(a, b) => binary(a, b, '&', i),
        GenExpr::Exclusion(a, b) => binary(a, b, '-', i),
    }
}

fn schema_strategy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((expr_strategy(), expr_strategy(), any::<bool>()), 1..6),
        prop::collection::vec(any::<bool>(), 1..16),
    )
        .prop_map(|(defs, spaces)| {
            let mut text = String::from("// generated\ndefinition user {}\n\n");
            let mut i = 0;
            for (n, (view, edit, doc)) in defs.iter().enumerate() {
                let parent = if n == 0 { format!("res{}", defs.len() - 1) } else { format!("res{}", n - 1) };
                if *doc {
                    text.push_str(&format!("/** resource {n} */\n"));
                }
                text.push_str(&format!(
                    "definition res{n} {{\n  relation parent: {parent}\n\trelation viewer: user | user:* | res{n}#edit\n  relation editor: user with cond\n  relation owner: user\n  permission view = {}\n    permission edit = {}\n}}\n",
                    render(view, &spaces, &mut i),
                    render(edit, &spaces, &mut i),
                ));
            }
            text.push_str("caveat cond(limit int, amount int) {\n  amount   <= limit\n}\n");
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn format_is_idempotent_and_preserves_the_ir(text in schema_strategy()) {
        let limits = SchemaLimits::default();
        let formatted = schema::format(&text, &limits).expect("generated schema parses");
        prop_assert_eq!(schema::format(&formatted, &limits).unwrap(), formatted.clone());
        let original = schema::compile(&text, &limits);
        let reformatted = schema::compile(&formatted, &limits);
        match (original, reformatted) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a.schema, b.schema),
            (Err(a), Err(b)) => {
                let codes = |e: &schema::SchemaError| e.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>();
                prop_assert_eq!(codes(&a), codes(&b));
            }
            (a, b) => prop_assert!(false, "compile results differ: {:?} vs {:?}", a.is_ok(), b.is_ok()),
        }
    }
}
