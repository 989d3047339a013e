//! Compile time of a large generated schema (1,000 definitions with
//! relations, permissions, arrows and a caveat), parse + compile + type
//! check together.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed setup step aborts it loudly"
)]

use criterion::{criterion_group, criterion_main, Criterion};
use verdict::schema::{self, SchemaLimits};

/// A schema of `n` resource definitions in the shape of real ones: each
/// has owners, editors, viewers, a parent link to the previous definition
/// and permissions that inherit through it.
pub fn generated_schema(n: usize) -> String {
    let mut s = String::from(
        "definition user {}\n\ncaveat on_network(ip ipaddress, cidr string) {\n    ip.in_cidr(cidr)\n}\n\ndefinition group {\n    relation member: user | group#member\n}\n\n",
    );
    for i in 0..n {
        let parent = if i == 0 {
            "group".to_string()
        } else {
            format!("res{}", i - 1)
        };
        let parent_view = if i == 0 { "member" } else { "view" };
        s.push_str(&format!(
            "/** resource {i} */\ndefinition res{i} {{\n    relation parent: {parent}\n    relation owner: user\n    relation editor: user | group#member\n    relation viewer: user | user with on_network | group#member | user:*\n    relation banned: user\n    permission manage = owner\n    permission edit = editor + manage\n    permission view = (viewer + edit + parent->{parent_view}) - banned\n    permission audit = manage & parent.any({parent_view})\n}}\n\n"
        ));
    }
    s
}

fn bench(c: &mut Criterion) {
    let text = generated_schema(1_000);
    let limits = SchemaLimits::default();
    assert!(schema::compile(&text, &limits).is_ok());
    c.bench_function("compile 1000 definitions", |b| {
        b.iter(|| {
            schema::compile(std::hint::black_box(&text), &limits)
                .map(|c| c.schema.definitions().len())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
