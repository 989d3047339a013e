//! Bulk import end to end: a 25,000-tuple ImportRelationships stream on the
//! real `verdict serve` lands completely, in several Raft log entries
//! (each at most `IMPORT_ENTRY_TUPLES`), so a huge import never travels as
//! one entry.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use support::{full, obj, subj, Server};
use verdict::api::pb;
use verdict::server::raft_commit::IMPORT_ENTRY_TUPLES;

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_import_lands_whole_in_bounded_entries() {
    let server = Server::start(&["--insecure-no-auth"]);
    let mut c = server.clients(None).await;
    c.write_schema("").await;

    let total = 2 * IMPORT_ENTRY_TUPLES + 5_000;
    let before = metric(&server.http_get("/metrics"), "verdict_raft_last_log_index");
    let messages: Vec<pb::ImportRelationshipsRequest> = (0..total)
        .collect::<Vec<_>>()
        .chunks(5_000)
        .map(|ids| pb::ImportRelationshipsRequest {
            tenant: String::new(),
            relationships: ids
                .iter()
                .map(|i| pb::Relationship {
                    resource: Some(obj("document", &format!("d{i}"))),
                    relation: "viewer".into(),
                    subject: Some(subj("user", &format!("u{}", i % 97), "")),
                    ..Default::default()
                })
                .collect(),
        })
        .collect();
    let response = c
        .rel
        .import_relationships(tokio_stream::iter(messages))
        .await
        .expect("import")
        .into_inner();
    assert_eq!(response.imported, total as u64);
    let after = metric(&server.http_get("/metrics"), "verdict_raft_last_log_index");
    assert!(
        after - before >= 3,
        "{total} tuples should take at least 3 log entries, took {}",
        after - before
    );

    // Every tuple is there: the first and last of each entry's range answer.
    for i in [0, IMPORT_ENTRY_TUPLES - 1, IMPORT_ENTRY_TUPLES, total - 1] {
        let r = c
            .perm
            .check(pb::CheckRequest {
                tenant: String::new(),
                consistency: Some(full()),
                resource: Some(obj("document", &format!("d{i}"))),
                permission: "view".into(),
                subject: Some(subj("user", &format!("u{}", i % 97), "")),
                ..Default::default()
            })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(r.permissionship(), pb::Permissionship::Allowed, "d{i}");
    }
    let mut exported = 0;
    let mut stream = c
        .rel
        .export_relationships(pb::ExportRelationshipsRequest {
            tenant: String::new(),
            consistency: Some(full()),
            optional_filter: None,
        })
        .await
        .expect("export")
        .into_inner();
    while let Some(page) = stream.message().await.expect("export page") {
        exported += page.relationships.len();
    }
    assert_eq!(exported, total);
}
