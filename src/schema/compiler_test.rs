//! Compiler tests: what compiles to what, and what is rejected with which
//! error code.

use super::super::{compile, SchemaLimits};
use super::*;

fn ok(text: &str) -> (Schema, Vec<Diagnostic>) {
    match compile(text, &SchemaLimits::default()) {
        Ok(c) => (c.schema, c.warnings),
        Err(e) => panic!("{}", e.render("test.zed", text)),
    }
}

fn error_codes(text: &str) -> Vec<&'static str> {
    match compile(text, &SchemaLimits::default()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code)
            .collect(),
    }
}

fn assert_rejects(text: &str, code: &str) {
    let codes = error_codes(text);
    assert!(
        codes.contains(&code),
        "expected {code}, got {codes:?} for:\n{text}"
    );
}

const DOCS: &str = "definition user {}\n\ndefinition group {\n    relation member: user | group#member\n}\n\ndefinition folder {\n    relation parent: folder\n    relation viewer: user | group#member\n    permission view = viewer + parent->view\n}\n\ndefinition document {\n    relation folder: folder\n    relation owner: user\n    relation viewer: user | user:* | group#member\n    relation banned: user\n    permission edit = owner\n    permission view = (viewer + edit + folder->view) - banned\n    permission strict = folder.all(view) & edit\n}\n";

#[test]
fn compiles_names_ids_and_rewrites() {
    let (schema, _) = ok(DOCS);
    assert_eq!(schema.definitions().len(), 4);
    let doc = schema.definition_named("document").unwrap();
    let view = doc.relation_named("view").unwrap();
    let RelationKind::Permission { rewrite } = &view.kind else {
        panic!("view is a permission")
    };
    let id = |n: &str| doc.relation_id(n).unwrap();
    let Rewrite::Exclusion(base, subtract) = rewrite else {
        panic!("{rewrite:?}")
    };
    assert_eq!(**subtract, Rewrite::Computed(id("banned")));
    let Rewrite::Union(children) = &**base else {
        panic!("{base:?}")
    };
    assert_eq!(children.len(), 3, "union is flattened");
    let Rewrite::Arrow(arrow) = &children[2] else {
        panic!("{children:?}")
    };
    assert_eq!(arrow.tupleset, id("folder"));
    let folder = schema.type_id("folder").unwrap();
    let folder_view = schema.definition(folder).relation_id("view").unwrap();
    assert_eq!(arrow.resolved, vec![(folder, folder_view)]);

    let viewer = doc.relation_named("viewer").unwrap();
    let group = schema.type_id("group").unwrap();
    let member = schema.definition(group).relation_id("member").unwrap();
    assert_eq!(viewer.allowed().len(), 3);
    assert_eq!(viewer.allowed()[1].kind, AllowedKind::Wildcard);
    assert_eq!(viewer.allowed()[2].kind, AllowedKind::Userset(member));
}

#[test]
fn caveats_and_expiration_resolve() {
    let (schema, warnings) = ok("use expiration\n\ndefinition user {}\n\ncaveat limit(amount int, max int) {\n    amount <= max\n}\n\ndefinition account {\n    relation spender: user with limit | user with limit and expiration | user with expiration\n    permission spend = spender\n}\n");
    assert!(warnings.is_empty(), "{warnings:?}");
    let allowed = schema.relation("account", "spender").unwrap().allowed();
    let limit = schema.caveat_id("limit").unwrap();
    assert_eq!(allowed[0].caveat, Some(limit));
    assert!(allowed[1].expiration && allowed[1].caveat == Some(limit));
    assert!(allowed[2].expiration && allowed[2].caveat.is_none());
    assert_eq!(schema.caveat(limit).params[0].1, CaveatType::Int);
}

#[test]
fn partials_are_inlined() {
    let (schema, _) = ok("use partial\n\npartial viewable {\n    relation viewer: user\n    permission view = viewer\n}\n\ndefinition user {}\n\ndefinition doc {\n    ...viewable\n    relation owner: user\n}\n");
    let doc = schema.definition_named("doc").unwrap();
    assert!(doc.relation_named("view").is_some());
    assert!(doc.relation_named("owner").is_some());
}

#[test]
fn rejects_unknown_names_with_suggestions() {
    let text = "definition user {}\ndefinition doc {\n    relation viewer: usr\n    permission read = viewr\n}\n";
    let err = compile(text, &SchemaLimits::default()).unwrap_err();
    let codes: Vec<_> = err.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        vec!["SCHEMA:UnknownDefinition", "SCHEMA:UnknownRelation"],
        "both errors are reported at once"
    );
    assert_eq!(
        err.diagnostics[0].hint.as_deref(),
        Some("did you mean `user`?")
    );
    assert_eq!(
        err.diagnostics[1].hint.as_deref(),
        Some("did you mean `viewer`?")
    );
    let rendered = err.render("doc.zed", text);
    assert!(rendered.contains("doc.zed:3:22"), "{rendered}");
    assert!(rendered.contains("doc.zed:4:23"), "{rendered}");
}

#[test]
fn rejects_semantic_errors() {
    let cases: &[(&str, &str)] = &[
        ("definition user {}\ndefinition user {}", "SCHEMA:DuplicateDefinition"),
        ("definition user {}\ncaveat user(a int) { a == 1 }", "SCHEMA:DuplicateDefinition"),
        ("definition user {}\ndefinition doc {\n relation viewer: user\n relation viewer: user\n}", "SCHEMA:DuplicateRelation"),
        ("definition user {}\ndefinition doc {\n relation viewer: user\n permission viewer = viewer\n}", "SCHEMA:DuplicateRelation"),
        ("definition user {}\ndefinition doc {\n relation viewer: user | user\n}", "SCHEMA:DuplicateAllowedType"),
        ("definition user {}\ndefinition doc {\n relation viewer: user#nope\n}", "SCHEMA:UnknownRelation"),
        ("definition user {}\ndefinition doc {\n relation viewer: user with nope\n}", "SCHEMA:UnknownCaveat"),
        ("definition user {}\ndefinition doc {\n relation viewer: user with expiration\n}", "SCHEMA:UnknownCaveat"),
        ("definition user {}\ndefinition doc {\n relation viewer: user\n permission view = edit->viewer\n}", "SCHEMA:UnknownRelation"),
        ("definition user {}\ndefinition doc {\n relation viewer: user\n permission edit = viewer\n permission view = edit->viewer\n}", "SCHEMA:PermissionLeftOfArrow"),
        ("definition user {\n relation friend: user\n}\ndefinition doc {\n relation viewer: user | user:*\n permission view = viewer->friend\n}", "SCHEMA:WildcardInArrow"),
        ("definition user {}\ndefinition group {\n relation member: user:*\n}\ndefinition doc {\n relation viewer: group#member\n}", "SCHEMA:TransitiveWildcard"),
        ("definition user {}\ndefinition doc {\n relation rel: user\n permission aaa = bbb + rel\n permission bbb = aaa\n}", "SCHEMA:PermissionCycle"),
        ("definition user {}\ndefinition doc {\n relation rel: user\n permission aaa = aaa & rel\n}", "SCHEMA:PermissionCycle"),
        ("definition user {}\ndefinition doc {\n relation parent: doc\n permission aaa = parent->aaa->bbb\n}", "SCHEMA:NestedArrow"),
        ("definition Doc {}", "SCHEMA:InvalidName"),
        ("definition user {}\ndefinition doc {\n relation v: user\n}", "SCHEMA:InvalidName"),
        ("caveat c(a int) {\n a + 1\n}", "SCHEMA:CaveatType"),
        ("caveat c(a int) {\n b == 1\n}", "SCHEMA:CaveatType"),
        ("caveat c(a int, a int) {\n a == 1\n}", "SCHEMA:DuplicateParameter"),
        ("caveat c(a integer) {\n a == 1\n}", "SCHEMA:UnknownCaveatType"),
        ("use partial\ndefinition doc {\n ...missing\n}", "SCHEMA:UnknownPartial"),
        ("import \"other.zed\"\ndefinition doc {}", "SCHEMA:UnresolvedImport"),
    ];
    for (text, code) in cases {
        assert_rejects(text, code);
    }
}

#[test]
fn recursion_through_relations_is_fine() {
    // `view` refers to itself only through the `parent` relation (data can
    // end the recursion), which must be accepted.
    ok("definition user {}\ndefinition folder {\n relation parent: folder\n relation viewer: user\n permission view = viewer + parent->view\n}");
}

#[test]
fn warns_where_spicedb_warns() {
    let (_, warnings) = ok("definition user {}\ncaveat unused(a int) { a == 1 }\ndefinition folder {\n relation viewer: user\n}\ndefinition doc {\n relation parent: folder\n permission view = parent->viewer\n}");
    let codes: Vec<_> = warnings.iter().map(|w| w.code).collect();
    assert!(codes.contains(&"SCHEMA:UnusedCaveat"), "{codes:?}");
    assert!(codes.contains(&"SCHEMA:ArrowToRelation"), "{codes:?}");
}

#[test]
fn arrow_to_a_relation_no_subject_type_defines_is_a_warning() {
    // SpiceDB v1.54.0 accepts it; the arrow then grants nobody.
    let (_, warnings) = ok("definition user {}\ndefinition folder {\n relation reader: user\n}\ndefinition doc {\n relation parent: folder\n permission view = parent->viewer\n permission view_all = parent.all(viewer)\n}");
    let codes: Vec<_> = warnings.iter().map(|w| w.code).collect();
    assert_eq!(
        codes,
        ["SCHEMA:ArrowTargetNotFound", "SCHEMA:ArrowTargetNotFound"],
        "{codes:?}"
    );
    // A tupleset of a type without relations at all: the same.
    let (_, warnings) = ok("definition user {}\ndefinition doc {\n relation parent: user\n permission view = parent->viewer\n}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let limits = SchemaLimits {
        max_definitions: 2,
        max_relations_per_definition: 1,
        ..SchemaLimits::default()
    };
    let err = compile(
        "definition aaa {}\ndefinition bbb {}\ndefinition ccc {}",
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.diagnostics[0].code, "SCHEMA:TooManyDefinitions");
    let err = compile(
        "definition user {}\ndefinition doc {\n relation one: user\n relation two: user\n}",
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.diagnostics[0].code, "SCHEMA:TooManyRelations");
    let tiny = SchemaLimits {
        max_source_bytes: 10,
        ..SchemaLimits::default()
    };
    let err = compile("definition user {}", &tiny).unwrap_err();
    assert_eq!(err.diagnostics[0].code, "SCHEMA:TooLarge");
}
