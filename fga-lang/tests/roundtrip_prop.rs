#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]
//! Property: for models generated from a small grammar,
//! parse_dsl(to_dsl(m)) == m, and parsing arbitrary text never panics.

use std::collections::BTreeMap;

use proptest::prelude::*;
use verdict_fga_lang::model::{
    AuthorizationModel, Difference, Metadata, RelationMetadata, RelationReference, TypeDefinition,
    Userset, Usersets,
};

const RELS: &[&str] = &["owner", "editor", "viewer", "parent", "blocked"];

fn leaf() -> impl Strategy<Value = Userset> {
    prop_oneof![
        prop::sample::select(RELS).prop_map(Userset::computed),
        (prop::sample::select(RELS), prop::sample::select(RELS))
            .prop_map(|(a, b)| Userset::tuple_to_userset(a, b)),
    ]
}

fn rewrite() -> impl Strategy<Value = Userset> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|c| Userset::Union(Usersets { child: c })),
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|c| Userset::Intersection(Usersets { child: c })),
            (inner.clone(), inner).prop_map(|(a, b)| Userset::Difference(Difference {
                base: Box::new(a),
                subtract: Box::new(b)
            })),
        ]
    })
}

/// A relation: direct (`this` first, as the DSL writes it), or a rewrite.
fn relation() -> impl Strategy<Value = (Userset, Vec<RelationReference>)> {
    let refs = prop::collection::vec(
        (0..3usize, prop::sample::select(RELS), any::<bool>()).prop_map(|(k, r, c)| {
            RelationReference {
                type_name: ["user", "group", "doc"][k].to_string(),
                relation: if k == 1 { r.to_string() } else { String::new() },
                wildcard: k == 0 && c,
                condition: if k == 2 && c {
                    "cond".to_string()
                } else {
                    String::new()
                },
            }
        }),
        1..4,
    );
    prop_oneof![
        refs.clone().prop_map(|r| (Userset::this(), r)),
        (refs, prop::collection::vec(leaf(), 1..3)).prop_map(|(r, rest)| {
            let mut child = vec![Userset::this()];
            child.extend(rest);
            (Userset::Union(Usersets { child }), r)
        }),
        rewrite().prop_map(|u| (u, Vec::new())),
    ]
}

fn model() -> impl Strategy<Value = AuthorizationModel> {
    prop::collection::btree_map(prop::sample::select(RELS), relation(), 0..5).prop_map(|rels| {
        let mut relations = BTreeMap::new();
        let mut meta = BTreeMap::new();
        for (name, (u, refs)) in rels {
            relations.insert(name.to_string(), u);
            meta.insert(
                name.to_string(),
                RelationMetadata {
                    directly_related_user_types: refs,
                    ..Default::default()
                },
            );
        }
        let doc = TypeDefinition {
            type_name: "doc".into(),
            metadata: if meta.is_empty() {
                None
            } else {
                Some(Metadata {
                    relations: Some(meta),
                    ..Default::default()
                })
            },
            relations,
        };
        AuthorizationModel {
            id: None,
            schema_version: "1.1".into(),
            type_definitions: vec![
                TypeDefinition {
                    type_name: "user".into(),
                    relations: BTreeMap::new(),
                    metadata: None,
                },
                doc,
            ],
            conditions: BTreeMap::new(),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn dsl_round_trip(m in model()) {
        let dsl = verdict_fga_lang::to_dsl(&m).unwrap();
        let back = verdict_fga_lang::parse_dsl_syntax(&dsl).map_err(|e| format!("{e}\n{dsl}")).unwrap().model;
        prop_assert_eq!(back, m, "{}", dsl);
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,200}") {
        let _ = verdict_fga_lang::parse_dsl(&s);
        let _ = verdict_fga_lang::model::AuthorizationModel::from_json(&s);
        let _ = verdict_fga_lang::modules::parse_mod_file(&s);
    }

    #[test]
    fn dsl_like_input_never_panics(s in "(model\n  schema 1\\.[12]\n|type [a-z]{1,3}\n|  relations\n|    define [a-z]{1,3}: |\\[[a-z#:*, ]{0,8}\\]| or | and | but not | from |\\(|\\)|condition c\\(x: (int|list<string>)\\) \\{ x \\}\n|[a-z]{1,4}){0,20}") {
        let _ = verdict_fga_lang::parse_dsl(&s);
    }
}
