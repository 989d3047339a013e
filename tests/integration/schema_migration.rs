//! End-to-end (real `verdict serve`, real gRPC): versioned schema history
//! with authors and hashes, reads of old versions and at old zookies,
//! optimistic concurrency, plan (diff, orphans, decision flips) and apply
//! with each refusal's exact message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use verdict::api::pb;
use verdict::api::pb::permission_service_client::PermissionServiceClient;
use verdict::api::pb::relationship_service_client::RelationshipServiceClient;
use verdict::api::pb::schema_service_client::SchemaServiceClient;

/// A running server; killed on drop so a failing test never leaks it.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--insecure-no-auth",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("verdict serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut endpoint = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("stdout line");
            if let Some(addr) = line.strip_prefix("grpc listening on ") {
                endpoint = format!("http://{addr}");
            }
            if line == "ready" {
                break;
            }
        }
        assert!(!endpoint.is_empty(), "server never printed its address");
        Server { child, endpoint }
    }

    async fn clients(
        &self,
    ) -> (
        SchemaServiceClient<Channel>,
        RelationshipServiceClient<Channel>,
        PermissionServiceClient<Channel>,
    ) {
        let channel = Channel::from_shared(self.endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connects");
        (
            SchemaServiceClient::new(channel.clone()),
            RelationshipServiceClient::new(channel.clone()),
            PermissionServiceClient::new(channel),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exact(z: &pb::Zookie) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(z.clone())),
    })
}

fn full() -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    })
}

async fn check(
    client: &mut PermissionServiceClient<Channel>,
    tuple: &str,
    consistency: Option<pb::Consistency>,
) -> Result<i32, tonic::Status> {
    let t = verdict_storage::Tuple::parse(tuple).expect("check tuple");
    Ok(client
        .check(pb::CheckRequest {
            tenant: String::new(),
            consistency,
            resource: Some(verdict::api::convert::object_to_pb(&t.resource)),
            permission: t.relation.clone(),
            subject: Some(verdict::api::convert::subject_to_pb(&t.subject)),
            context: None,
            with_trace: false,
            with_footprint: false,
        })
        .await?
        .into_inner()
        .permissionship)
}

const ALLOWED: i32 = pb::Permissionship::Allowed as i32;
const DENIED: i32 = pb::Permissionship::Denied as i32;

async fn touch(client: &mut RelationshipServiceClient<Channel>, tuples: &[&str]) -> pb::Zookie {
    client
        .write_relationships(pb::WriteRelationshipsRequest {
            tenant: String::new(),
            updates: tuples
                .iter()
                .map(|t| pb::RelationshipUpdate {
                    operation: pb::relationship_update::Operation::Touch as i32,
                    relationship: Some(verdict::api::convert::tuple_to_pb(
                        &verdict_storage::Tuple::parse(t).expect("tuple"),
                    )),
                })
                .collect(),
            preconditions: Vec::new(),
        })
        .await
        .expect("write succeeds")
        .into_inner()
        .written_at
        .expect("zookie")
}

async fn read_all(
    client: &mut RelationshipServiceClient<Channel>,
    resource_type: &str,
    consistency: Option<pb::Consistency>,
) -> Vec<String> {
    let mut stream = client
        .read_relationships(pb::ReadRelationshipsRequest {
            tenant: String::new(),
            consistency,
            filter: Some(pb::RelationshipFilter {
                resource_type: resource_type.into(),
                ..Default::default()
            }),
            limit: 0,
            cursor: String::new(),
        })
        .await
        .expect("read")
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.next().await {
        let r = r.expect("read item").relationship.expect("relationship");
        out.push(verdict::cli::parse::relationship_text(&r));
    }
    out.sort();
    out
}

fn write_request(schema: &str, expected: u64, comment: &str) -> pb::WriteSchemaRequest {
    pb::WriteSchemaRequest {
        tenant: String::new(),
        schema: schema.into(),
        expected_version: expected,
        comment: comment.into(),
    }
}

const V1: &str = "definition user {}
definition document {
    relation reader: user
    relation owner: user
    permission view = reader + owner
}";

/// v1 with `view` narrowed to owners.
const V2: &str = "definition user {}
definition document {
    relation reader: user
    relation owner: user
    permission view = owner
}";

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn history_records_author_hash_and_old_versions_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (mut schema, mut rels, mut perms) = server.clients().await;

    // A client-supplied key id is not trusted: the auth layer replaces it
    // with the authenticated one ("anonymous" under --insecure-no-auth).
    let mut first = tonic::Request::new(write_request(V1, 0, "initial"));
    first
        .metadata_mut()
        .insert("x-verdict-key-id", "key-alice".parse().unwrap());
    let v1 = schema.write_schema(first).await.unwrap().into_inner();
    assert_eq!(v1.version, 1);
    let z = touch(&mut rels, &["document:d#reader@user:bob"]).await;
    assert_eq!(
        check(&mut perms, "document:d#view@user:bob", exact(&z))
            .await
            .unwrap(),
        ALLOWED
    );

    // A stale expected version is refused, naming both versions.
    let stale = schema
        .write_schema(write_request(V2, 7, ""))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        stale.message(),
        "schema is at version 1, the write expected 7; re-read, re-plan and retry"
    );

    let v2 = schema
        .write_schema(write_request(V2, 1, "owners only"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v2.version, 2);

    // The history: both versions, authors (anonymous without a key),
    // comments, revisions and SHA-256 of the text.
    let history = schema
        .list_schema_versions(pb::ListSchemaVersionsRequest {
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    let summary: Vec<_> = history
        .iter()
        .map(|v| (v.version, v.author.as_str(), v.comment.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![(1, "anonymous", "initial"), (2, "anonymous", "owners only")]
    );
    assert_eq!(history[0].text_sha256, sha256(V1));
    assert_eq!(history[1].text_sha256, sha256(V2));
    assert!(history[0].revision < history[1].revision);

    // Read by version.
    let read_v1 = schema
        .read_schema(pb::ReadSchemaRequest {
            tenant: String::new(),
            consistency: None,
            version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read_v1.schema_text, V1);
    assert_eq!(read_v1.active_since_revision, history[0].revision);
    let missing = schema
        .read_schema(pb::ReadSchemaRequest {
            tenant: String::new(),
            consistency: None,
            version: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    assert!(missing
        .message()
        .contains("schema version 9 does not exist (retained: 1, 2)"));

    // At the old zookie: the old schema text, and checks evaluate with the
    // permission as it was then (reader counts); now it does not.
    let at_old = schema
        .read_schema(pb::ReadSchemaRequest {
            tenant: String::new(),
            consistency: exact(&z),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((at_old.version, at_old.schema_text.as_str()), (1, V1));
    assert_eq!(
        check(&mut perms, "document:d#view@user:bob", exact(&z))
            .await
            .unwrap(),
        ALLOWED
    );
    assert_eq!(
        check(&mut perms, "document:d#view@user:bob", full())
            .await
            .unwrap(),
        DENIED
    );
}

/// v1 with `reader` renamed to `viewer` (orphans every reader tuple).
const RENAMED: &str = "definition user {}
definition document {
    relation viewer: user
    relation owner: user
    permission view = viewer + owner
}";

fn apply_request(schema: &str) -> pb::ApplySchemaRequest {
    pb::ApplySchemaRequest {
        tenant: String::new(),
        schema: schema.into(),
        expected_version: 0,
        comment: String::new(),
        allow_orphan_delete: false,
        accept_decision_changes: false,
        checks: Vec::new(),
    }
}

fn sim(resource: &str, permission: &str, subject: &str) -> pb::SimulatedCheck {
    pb::SimulatedCheck {
        resource: resource.into(),
        permission: permission.into(),
        subject: subject.into(),
        context: None,
    }
}

#[tokio::test]
async fn plan_reports_impact_and_apply_refuses_or_deletes_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (mut schema, mut rels, mut perms) = server.clients().await;
    schema.write_schema(write_request(V1, 0, "")).await.unwrap();
    let before = touch(
        &mut rels,
        &[
            "document:a#reader@user:ann",
            "document:b#reader@user:ben",
            "document:a#owner@user:olga",
        ],
    )
    .await;

    let checks = vec![
        sim("document:a", "view", "user:ann"),
        sim("document:a", "view", "user:olga"),
        sim("document:b", "view", "user:nobody"),
    ];
    let plan = schema
        .plan_schema_change(pb::PlanSchemaChangeRequest {
            tenant: String::new(),
            schema: RENAMED.into(),
            consistency: None,
            checks: checks.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.current_version, 1);
    assert!(plan.computed_at.is_some());
    assert!(
        plan.diff_text.contains("+ relation document#viewer\n"),
        "{}",
        plan.diff_text
    );
    assert!(
        plan.diff_text.contains("- relation document#reader\n"),
        "{}",
        plan.diff_text
    );
    assert!(
        plan.diff_text
            .contains("~ permission document#view: owner + reader => owner + viewer"),
        "{}",
        plan.diff_text
    );
    assert_eq!(plan.orphans.len(), 1);
    let o = &plan.orphans[0];
    assert_eq!(
        (o.resource_type.as_str(), o.relation.as_str(), o.count),
        ("document", "reader", 2)
    );
    assert_eq!(
        o.examples,
        vec!["document:a#reader@user:ann", "document:b#reader@user:ben"]
    );
    // The simulation sees the data as apply would leave it: ann's reader
    // tuple is orphaned (deleted), so her view flips; olga's does not.
    assert_eq!(plan.checks_simulated, 3);
    let counts: Vec<_> = plan
        .flip_counts
        .iter()
        .map(|c| (c.before.as_str(), c.after.as_str(), c.count))
        .collect();
    assert_eq!(counts, vec![("ALLOWED", "DENIED", 1)]);
    assert_eq!(plan.flips[0].check, "document:a#view@user:ann");

    // Refusal 1: decisions flip.
    let mut req = apply_request(RENAMED);
    req.checks = checks.clone();
    let err = schema.apply_schema(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "the new schema changes 1 of 3 simulated decisions (ALLOWED→DENIED: 1; e.g. document:a#view@user:ann ALLOWED→DENIED); set accept_decision_changes (verdict schema apply --accept-decision-changes) to apply anyway"
    );

    // Refusal 2: orphans (decision changes accepted).
    req.accept_decision_changes = true;
    let err = schema.apply_schema(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "the new schema would orphan 2 existing relationship(s): document#reader: 2 (relation `reader` is not defined on `document`; e.g. document:a#reader@user:ann, document:b#reader@user:ben); delete them first, or set allow_orphan_delete (verdict schema apply --allow-orphan-delete) to delete them in the same revision as the schema"
    );

    // A plain WriteSchema refuses the same change, as SpiceDB does.
    let err = schema
        .write_schema(write_request(RENAMED, 0, "plain write"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().starts_with(
            "the new schema would orphan 2 existing relationship(s): document#reader: 2"
        ),
        "{}",
        err.message()
    );

    // Refusal 3: a stale expected version.
    req.expected_version = 5;
    let err = schema.apply_schema(req.clone()).await.unwrap_err();
    assert_eq!(
        err.message(),
        "schema is at version 1, the write expected 5; re-read, re-plan and retry"
    );
    // Nothing changed by the refusals.
    assert_eq!(read_all(&mut rels, "document", full()).await.len(), 3);

    // Allowed: the orphans go in the schema's own revision.
    req.expected_version = 1;
    req.allow_orphan_delete = true;
    req.comment = "rename reader".into();
    let applied = schema.apply_schema(req).await.unwrap().into_inner();
    assert_eq!((applied.version, applied.orphans_deleted), (2, 2));
    let written_at = applied.written_at.expect("zookie");
    assert_eq!(
        read_all(&mut rels, "document", exact(&written_at)).await,
        vec!["document:a#owner@user:olga"]
    );
    let read = schema
        .read_schema(pb::ReadSchemaRequest {
            tenant: String::new(),
            consistency: exact(&written_at),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.version, 2);
    // The revision just before: the old schema with all its tuples (no
    // state in between exists).
    let history = schema
        .list_schema_versions(pb::ListSchemaVersionsRequest {
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(history[1].revision, read.active_since_revision);
    assert_eq!(history[1].comment, "rename reader");
    assert_eq!(
        read_all(&mut rels, "document", exact(&before)).await.len(),
        3
    );
    assert_eq!(
        check(&mut perms, "document:a#view@user:olga", full())
            .await
            .unwrap(),
        ALLOWED
    );
}

/// One CLI invocation's outcome.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn verdict(server: &Server, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(args)
        .args(["--endpoint", &server.endpoint])
        .env_remove("VERDICT_ENDPOINT")
        .env_remove("VERDICT_TOKEN")
        .env_remove("VERDICT_TENANT")
        .env_remove("VERDICT_PROFILE")
        .stdin(Stdio::null())
        .output()
        .expect("verdict runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn cli_history_read_diff_plan_apply() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (v1, renamed) = (file("v1.zed", V1), file("renamed.zed", RENAMED));
    let checks = file(
        "checks.log",
        "{\"resource\":\"document:a\",\"permission\":\"view\",\"subject\":\"user:ann\"}\n\
         document:a#view@user:olga\n",
    );
    let r = verdict(&server, &["schema", "write", &v1, "--comment", "initial"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (_, mut rels, _) = server.clients().await;
    touch(
        &mut rels,
        &["document:a#reader@user:ann", "document:a#owner@user:olga"],
    )
    .await;

    // Offline diff of two files.
    let r = verdict(&server, &["schema", "diff", &v1, &renamed]);
    assert_eq!(
        r.stdout,
        "+ relation document#viewer\n- relation document#reader\n~ permission document#view: owner + reader => owner + viewer\n",
        "{r:?}"
    );
    // Against the server: v:1 to live is empty.
    let r = verdict(&server, &["schema", "diff", "v:1", "live"]);
    assert_eq!(r.stdout, "no structural changes\n", "{r:?}");
    let r = verdict(&server, &["schema", "diff", "v:x", "live"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("invalid version `v:x`: expected `v:N`"),
        "{r:?}"
    );

    // Plan.
    let r = verdict(&server, &["schema", "plan", &renamed, "--checks", &checks]);
    assert_eq!(r.code, 0, "{r:?}");
    for want in [
        "orphaned relationships: 1",
        "  document#reader: 1 (relation `reader` is not defined on `document`)",
        "    e.g. document:a#reader@user:ann",
        "decisions: 2 simulated, 1 flipped",
        "  ALLOWED→DENIED: 1",
        "    e.g. document:a#view@user:ann ALLOWED→DENIED",
    ] {
        assert!(
            r.stdout.lines().any(|l| l == want),
            "missing `{want}`: {}",
            r.stdout
        );
    }

    // Apply: each refusal exits 1 with the server's message.
    let r = verdict(&server, &["schema", "apply", &renamed, "--checks", &checks]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.trim_end(),
        "error: FAILED_PRECONDITION: the new schema changes 1 of 2 simulated decisions (ALLOWED→DENIED: 1; e.g. document:a#view@user:ann ALLOWED→DENIED); set accept_decision_changes (verdict schema apply --accept-decision-changes) to apply anyway"
    );
    let r = verdict(&server, &["schema", "apply", &renamed]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.trim_end(),
        "error: FAILED_PRECONDITION: the new schema would orphan 1 existing relationship(s): document#reader: 1 (relation `reader` is not defined on `document`; e.g. document:a#reader@user:ann); delete them first, or set allow_orphan_delete (verdict schema apply --allow-orphan-delete) to delete them in the same revision as the schema"
    );
    let r = verdict(
        &server,
        &[
            "schema",
            "apply",
            &renamed,
            "--allow-orphan-delete",
            "--expect-version",
            "3",
        ],
    );
    assert_eq!(
        r.stderr.trim_end(),
        "error: FAILED_PRECONDITION: schema is at version 1, the write expected 3; re-read, re-plan and retry"
    );
    let r = verdict(
        &server,
        &[
            "schema",
            "apply",
            &renamed,
            "--allow-orphan-delete",
            "--expect-version",
            "1",
            "--comment",
            "rename reader to viewer",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("schema version 2 (1 orphaned relationships deleted)"),
        "{r:?}"
    );
    let zookie = r.stdout.trim().to_string();

    // History and old versions.
    let r = verdict(&server, &["schema", "history", "--json"]);
    let rows: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{r:?}");
    assert_eq!(rows[0]["comment"], "initial");
    assert_eq!(rows[1]["comment"], "rename reader to viewer");
    assert_eq!(rows[1]["author"], "anonymous");
    assert_eq!(rows[1]["sha256"], sha256(RENAMED));
    let r = verdict(&server, &["schema", "history"]);
    assert!(r.stdout.starts_with("v1\trevision "), "{r:?}");
    let r = verdict(&server, &["schema", "read", "--version", "1"]);
    assert_eq!(r.stdout.trim_end(), V1);
    let r = verdict(&server, &["schema", "read", "--at", &zookie]);
    assert_eq!(r.stdout.trim_end(), RENAMED);
}

const GROUPS: &str = "use expiration
definition user {}
definition group {
    relation member: user
    relation admin: user
}
definition document {
    relation reader: user | group#member | group#admin
    relation viewer: user | user with expiration | group#admin
    permission view = reader + viewer
}";

fn copy_request(
    from: &str,
    to: &str,
    snapshot: Option<pb::Zookie>,
    cursor: String,
) -> pb::CopyRelationRequest {
    pb::CopyRelationRequest {
        tenant: String::new(),
        resource_type: "document".into(),
        from_relation: from.into(),
        to_relation: to.into(),
        from_subject_relation: String::new(),
        to_subject_relation: String::new(),
        delete_source: false,
        snapshot,
        cursor,
        batch_size: 1,
    }
}

#[tokio::test]
async fn copy_relation_is_batched_at_a_snapshot_and_never_resurrects_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let (mut schema, mut rels, _) = server.clients().await;
    schema
        .write_schema(write_request(GROUPS, 0, ""))
        .await
        .unwrap();
    touch(
        &mut rels,
        &[
            "document:a#reader@user:ann",
            "document:b#reader@user:ben",
            "document:c#reader@user:cid",
            "document:c#viewer@user:cid[expiration:2999-01-01T00:00:00Z]",
        ],
    )
    .await;
    // Batch 1 (batch size 1) fixes the snapshot.
    let first = schema
        .copy_relation(copy_request("reader", "viewer", None, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.copied, first.skipped), (1, 0));
    assert!(!first.cursor.is_empty());
    // Revoke ben after the snapshot: the copy must not bring him back.
    rels.delete_relationships(pb::DeleteRelationshipsRequest {
        tenant: String::new(),
        filter: Some(pb::RelationshipFilter {
            resource_type: "document".into(),
            optional_resource_id: "b".into(),
            ..Default::default()
        }),
        preconditions: vec![],
        limit: 0,
        dry_run: false,
    })
    .await
    .unwrap();
    let (mut cursor, mut snapshot) = (first.cursor, first.snapshot);
    let (mut copied, mut skipped) = (first.copied, 0);
    while !cursor.is_empty() {
        let r = schema
            .copy_relation(copy_request("reader", "viewer", snapshot.clone(), cursor))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.snapshot, snapshot,
            "every batch reads at the first snapshot"
        );
        copied += r.copied;
        skipped += r.skipped;
        cursor = r.cursor;
        snapshot = r.snapshot;
    }
    // ann copied; ben revoked (skipped); cid's existing viewer kept as is.
    assert_eq!((copied, skipped), (1, 1));
    let all = read_all(&mut rels, "document", full()).await;
    assert_eq!(
        all,
        vec![
            "document:a#reader@user:ann",
            "document:a#viewer@user:ann",
            "document:c#reader@user:cid",
            "document:c#viewer@user:cid[expiration:2999-01-01T00:00:00Z]",
        ]
    );

    // A destination the schema does not allow: refused, nothing written.
    touch(&mut rels, &["document:d#reader@group:eng#member"]).await;
    let err = schema
        .copy_relation(pb::CopyRelationRequest {
            batch_size: 10,
            ..copy_request("reader", "viewer", None, String::new())
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "cannot copy `document:d#reader@group:eng#member` to `document:d#viewer@group:eng#member`: subject `group:eng#member` is not allowed on `document#viewer` (allowed: user | user with expiration | group#admin); add the destination to the schema first"
    );
    let bad = schema
        .copy_relation(copy_request("reader", "reader", None, String::new()))
        .await
        .unwrap_err();
    assert_eq!(
        bad.message(),
        "invalid `to_relation`: is the same as `from_relation` and no subject relation is rewritten"
    );

    // The CLI: a move with the subject relation rewritten member → admin.
    let r = verdict(
        &server,
        &[
            "rel",
            "copy",
            "--from",
            "document#reader",
            "--to",
            "document#viewer",
            "--subject-relation",
            "member:admin",
            "--delete-source",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("copied 1 relationship(s)"), "{r:?}");
    let all = read_all(&mut rels, "document", full()).await;
    assert_eq!(
        all,
        vec![
            "document:a#viewer@user:ann",
            "document:c#viewer@user:cid[expiration:2999-01-01T00:00:00Z]",
            "document:d#viewer@group:eng#admin",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_expecting_the_same_version_let_exactly_one_win() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let (mut schema, _, _) = server.clients().await;
    schema.write_schema(write_request(V1, 0, "")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut client = schema.clone();
        tasks.push(tokio::spawn(async move {
            client
                .write_schema(write_request(V2, 1, &format!("admin {i}")))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.into_inner().version, 2);
                wins += 1;
            }
            Err(s) => assert_eq!(
                s.message(),
                "schema is at version 2, the write expected 1; re-read, re-plan and retry"
            ),
        }
    }
    assert_eq!(wins, 1);
    let versions = schema
        .list_schema_versions(pb::ListSchemaVersionsRequest {
            tenant: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 2);
}
