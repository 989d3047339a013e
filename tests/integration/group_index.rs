//! The group index, end to end: the built `verdict serve` binary on the deep
//! workload's shape (a 10-deep group chain, members in the innermost group,
//! a document shared with the outermost) answers nested membership from the
//! index — members and non-members, the explanation in the trace, the
//! metrics counter — flips the answer at the zookie of a write that cuts
//! the chain while an older zookie keeps the old answer, and gives the same
//! answers after a restart (the index rebuilt from disk).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::time::{Duration, Instant};

use support::{full, obj, subj, Clients, Server};
use verdict::api::pb;

const DEEP: usize = 10;
const MEMBERS: usize = 200;

fn touch_or_delete(line: &str, op: pb::relationship_update::Operation) -> pb::RelationshipUpdate {
    let t = verdict_storage::Tuple::parse(line).expect("tuple");
    pb::RelationshipUpdate {
        operation: op as i32,
        relationship: Some(verdict::api::convert::tuple_to_pb(&t)),
    }
}

async fn write(
    c: &mut Clients,
    lines: &[String],
    op: pb::relationship_update::Operation,
) -> pb::Zookie {
    c.rel
        .write_relationships(pb::WriteRelationshipsRequest {
            tenant: String::new(),
            updates: lines.iter().map(|l| touch_or_delete(l, op)).collect(),
            preconditions: vec![],
        })
        .await
        .expect("write")
        .into_inner()
        .written_at
        .expect("zookie")
}

/// `resource#permission@subject` at `consistency`: (permissionship, trace).
async fn check(
    c: &mut Clients,
    resource: (&str, &str),
    permission: &str,
    subject: (&str, &str, &str),
    consistency: pb::Consistency,
) -> (pb::Permissionship, String) {
    let r = c
        .perm
        .check(pb::CheckRequest {
            tenant: String::new(),
            consistency: Some(consistency),
            resource: Some(obj(resource.0, resource.1)),
            permission: permission.into(),
            subject: Some(subj(subject.0, subject.1, subject.2)),
            context: None,
            with_trace: true,
            with_footprint: false,
        })
        .await
        .expect("check")
        .into_inner();
    (r.permissionship(), r.trace)
}

fn at_least(z: &pb::Zookie) -> pb::Consistency {
    pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(z.clone())),
    }
}

fn exactly(z: &pb::Zookie) -> pb::Consistency {
    pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(z.clone())),
    }
}

fn answers(server: &Server) -> u64 {
    let body = server.http_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix("verdict_group_index_answers_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no group index counter in /metrics:\n{body}"))
}

const HAS: pb::Permissionship = pb::Permissionship::Allowed;
const NO: pb::Permissionship = pb::Permissionship::Denied;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_groups_are_answered_by_the_index_exactly_at_each_zookie_and_after_a_restart() {
    let server = Server::start(&["--insecure-no-auth", "--group-index", "on"]);
    let mut c = server.clients(None).await;
    c.write_schema("").await;
    let mut lines = vec![format!("document:top#viewer@group:g{}#member", DEEP - 1)];
    for g in 1..DEEP {
        lines.push(format!("group:g{g}#member@group:g{}#member", g - 1));
    }
    for u in 0..MEMBERS {
        lines.push(format!("group:g0#member@user:u{u}"));
    }
    let touch = pb::relationship_update::Operation::Touch;
    let loaded = write(&mut c, &lines, touch).await;

    let before = answers(&server);
    let outer = ("group", "g9");
    for u in [0, 57, MEMBERS - 1] {
        let user = format!("u{u}");
        let (p, trace) = check(&mut c, outer, "member", ("user", &user, ""), full()).await;
        assert_eq!(p, HAS, "u{u}: {trace}");
        assert!(
            trace.contains(&format!(
                "group index: user:{user} reaches group:g9#member via g0 → g1"
            )),
            "{trace}"
        );
        let (p, _) = check(
            &mut c,
            ("document", "top"),
            "view",
            ("user", &user, ""),
            full(),
        )
        .await;
        assert_eq!(p, HAS);
    }
    let (p, trace) = check(&mut c, outer, "member", ("user", "stranger", ""), full()).await;
    assert_eq!(p, NO);
    assert!(trace.contains("is not a member"), "{trace}");
    // A userset subject: g3's members are g9's.
    let (p, _) = check(&mut c, outer, "member", ("group", "g3", "member"), full()).await;
    assert_eq!(p, HAS);
    assert!(
        answers(&server) >= before + 5,
        "the index answered the checks"
    );

    // Cut the chain between g4 and g5.
    let delete = pb::relationship_update::Operation::Delete;
    let cut = write(
        &mut c,
        &["group:g5#member@group:g4#member".to_string()],
        delete,
    )
    .await;
    let (p, trace) = check(&mut c, outer, "member", ("user", "u7", ""), at_least(&cut)).await;
    assert_eq!(p, NO, "{trace}");
    assert!(trace.contains("group index"), "{trace}");
    let (p, _) = check(
        &mut c,
        ("document", "top"),
        "view",
        ("user", "u7", ""),
        at_least(&cut),
    )
    .await;
    assert_eq!(p, NO);
    // The old zookie still sees the chain (the walk answers there).
    let (p, _) = check(
        &mut c,
        outer,
        "member",
        ("user", "u7", ""),
        exactly(&loaded),
    )
    .await;
    assert_eq!(p, HAS);
    let (p, _) = check(
        &mut c,
        ("document", "top"),
        "view",
        ("user", "u7", ""),
        exactly(&loaded),
    )
    .await;
    assert_eq!(p, HAS);
    // Above the cut the chain still holds.
    let (p, _) = check(
        &mut c,
        ("group", "g4"),
        "member",
        ("user", "u7", ""),
        at_least(&cut),
    )
    .await;
    assert_eq!(p, HAS);

    // Restart on the same data: the index is rebuilt from disk.
    drop(c);
    let data = server.stop();
    let server = Server::start_in(data, &["--insecure-no-auth"]);
    let mut c = server.clients(None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 10.. {
        // A user not asked before each time, so no cached answer hides
        // whether the index answered.
        let user = format!("u{attempt}");
        let (p, trace) = check(&mut c, outer, "member", ("user", &user, ""), full()).await;
        assert_eq!(p, NO);
        let (p, _) = check(
            &mut c,
            ("group", "g4"),
            "member",
            ("user", "u7", ""),
            full(),
        )
        .await;
        assert_eq!(p, HAS);
        let (p, _) = check(
            &mut c,
            ("document", "top"),
            "view",
            ("user", "u7", ""),
            exactly(&loaded),
        )
        .await;
        assert_eq!(p, HAS);
        if trace.contains("group index") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the index is not built after a restart: {trace}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (p, trace) = check(
        &mut c,
        ("group", "g4"),
        "member",
        ("group", "g0", "member"),
        full(),
    )
    .await;
    assert_eq!(p, HAS, "{trace}");
    assert!(trace.contains("group index"), "{trace}");
    assert!(answers(&server) > 0);
}

fn metric(server: &Server, name: &str) -> u64 {
    let body = server.http_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}

/// A bulk import of a nested hierarchy (several Raft entries, most of its
/// tuples irrelevant to the index) is applied to the index from its own
/// tuples, not read back from the changelog, and answered exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_hierarchy_is_applied_to_the_index_directly_and_answered() {
    use verdict::server::raft_commit::IMPORT_ENTRY_TUPLES;
    let server = Server::start(&["--insecure-no-auth", "--group-index", "on"]);
    let mut c = server.clients(None).await;
    c.write_schema("").await;
    // The schema's build runs in the background: wait until the index answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let user = format!("probe{attempt}");
        let (p, trace) = check(
            &mut c,
            ("group", "g0"),
            "member",
            ("user", &user, ""),
            full(),
        )
        .await;
        assert_eq!(p, NO);
        if trace.contains("group index") {
            break;
        }
        assert!(Instant::now() < deadline, "the index is not built: {trace}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let rel =
        |resource: (&str, &str), relation: &str, subject: (&str, &str, &str)| pb::Relationship {
            resource: Some(obj(resource.0, resource.1)),
            relation: relation.into(),
            subject: Some(subj(subject.0, subject.1, subject.2)),
            ..Default::default()
        };
    let mut rels = Vec::new();
    for d in 0..2 * IMPORT_ENTRY_TUPLES {
        rels.push(rel(
            ("document", &format!("d{d}")),
            "viewer",
            ("user", "u0", ""),
        ));
    }
    rels.push(rel(("group", "g0"), "member", ("user", "ann", "")));
    for g in 1..DEEP {
        let child = format!("g{}", g - 1);
        rels.push(rel(
            ("group", &format!("g{g}")),
            "member",
            ("group", &child, "member"),
        ));
    }
    let direct = metric(&server, "verdict_group_index_direct_imports_total");
    let entries = metric(&server, "verdict_raft_last_log_index");
    let imported = c
        .rel
        .import_relationships(tokio_stream::iter(vec![pb::ImportRelationshipsRequest {
            tenant: String::new(),
            relationships: rels,
        }]))
        .await
        .expect("import")
        .into_inner()
        .imported;
    assert_eq!(imported, (2 * IMPORT_ENTRY_TUPLES + DEEP) as u64);
    let entries = metric(&server, "verdict_raft_last_log_index") - entries;
    assert!(entries >= 2, "the import took {entries} entries");
    assert_eq!(
        metric(&server, "verdict_group_index_direct_imports_total"),
        direct + entries,
        "every import entry was applied from its own tuples"
    );

    let outer = ("group", "g9");
    let (p, trace) = check(&mut c, outer, "member", ("user", "ann", ""), full()).await;
    assert_eq!(p, HAS, "{trace}");
    assert!(
        trace.contains("group index: user:ann reaches group:g9#member via g0 → g1"),
        "{trace}"
    );
    let (p, trace) = check(&mut c, outer, "member", ("user", "u0", ""), full()).await;
    assert_eq!(p, NO, "{trace}");
    assert!(trace.contains("group index"), "{trace}");
}
