//! Malformed and hostile requests over real gRPC, one RPC after another:
//! each gets its documented status (named field and reason), and a healthy
//! client running alongside keeps getting correct answers throughout.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{check_request, obj, subj, Clients, Server};
use tonic::Code;
use verdict::api::pb;

/// Asserts `result` failed with `code` and a message containing `needle`.
fn expect<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, tonic::Status>,
    code: Code,
    needle: &str,
) {
    match result {
        Ok(v) => panic!("{what}: expected {code:?}, got {v:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: {e:?}");
            assert!(
                e.message().contains(needle),
                "{what}: message `{}` lacks `{needle}`",
                e.message()
            );
        }
    }
}

/// Like [`expect`], and the status details carry a `google.rpc.ErrorInfo`
/// with the stable `reason` in the `verdict.dev` domain (and, when given,
/// the metadata `key` = `value`).
fn expect_reason<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, tonic::Status>,
    code: Code,
    reason: &str,
    metadata: Option<(&str, &str)>,
) {
    use tonic_types::StatusExt as _;
    let e = result.expect_err(what);
    assert_eq!(e.code(), code, "{what}: {e:?}");
    let details = e.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("{what}: no ErrorInfo in {e:?}"));
    assert_eq!(info.reason, reason, "{what}: {e:?}");
    assert_eq!(info.domain, "verdict.dev", "{what}");
    if let Some((key, value)) = metadata {
        assert_eq!(
            info.metadata.get(key).map(String::as_str),
            Some(value),
            "{what}: {:?}",
            info.metadata
        );
    }
}

/// A client asking a known question every 20 ms until stopped; counts
/// answers, wrong answers/errors, and the slowest answer.
struct Healthy {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    slowest_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Healthy {
    fn start(mut c: Clients) -> Healthy {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let (s, o, b, w) = (stop.clone(), ok.clone(), bad.clone(), slowest_ms.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                let answer =
                    tokio::time::timeout(Duration::from_secs(5), c.check("", "healthy", "alice"))
                        .await;
                w.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                match answer {
                    Ok(Ok(pb::Permissionship::Allowed)) => o.fetch_add(1, Ordering::Relaxed),
                    _ => b.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Healthy {
            stop,
            ok,
            bad,
            slowest_ms,
            task,
        }
    }

    async fn finish(self, started: Instant) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let ok = self.ok.load(Ordering::Relaxed);
        let bad = self.bad.load(Ordering::Relaxed);
        let slowest = self.slowest_ms.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "healthy client: {ok} answers, {bad} failures, slowest {slowest} ms over {secs:.1}s"
        );
        assert_eq!(bad, 0, "the healthy client saw failures");
        // At least one answer per half second of the run, none slower than 2 s.
        assert!(ok as f64 >= secs * 2.0, "only {ok} answers in {secs:.1}s");
        assert!(slowest < 2_000, "slowest healthy answer took {slowest} ms");
    }
}

/// A Struct nested `depth` levels deep.
fn nested(depth: usize) -> prost_types::Struct {
    let mut s = prost_types::Struct::default();
    for _ in 0..depth {
        let mut outer = prost_types::Struct::default();
        outer.fields.insert(
            "a".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StructValue(s)),
            },
        );
        s = outer;
    }
    s
}

fn tuple(r: (&str, &str), rel: &str, s: (&str, &str, &str)) -> pb::Relationship {
    pb::Relationship {
        resource: Some(obj(r.0, r.1)),
        relation: rel.into(),
        subject: Some(subj(s.0, s.1, s.2)),
        ..Default::default()
    }
}

#[test]
fn hostile_requests_get_their_status_and_healthy_clients_keep_going() {
    let server = Server::start(&["--insecure-no-auth", "--max-message-bytes", "1048576"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = server.clients(None).await;
        c.write_schema("").await;
        c.write(
            "",
            &[("document", "healthy", "viewer", "user", "alice", "")],
        )
        .await
        .unwrap();
        let started = Instant::now();
        let healthy = Healthy::start(server.clients(None).await);

        // --- PermissionService ---
        let mut missing = check_request("", "d", "u");
        missing.resource = None;
        expect(
            "check without resource",
            c.perm.check(missing).await,
            Code::InvalidArgument,
            "resource",
        );
        // The same refusal, as a program sees it: a stable reason code.
        let mut missing = check_request("", "d", "u");
        missing.resource = None;
        expect_reason(
            "check without resource",
            c.perm.check(missing).await,
            Code::InvalidArgument,
            "VERDICT_INVALID_ARGUMENT",
            Some(("field", "resource")),
        );
        let mut empty = check_request("", "d", "u");
        empty.permission.clear();
        expect(
            "check without permission",
            c.perm.check(empty).await,
            Code::InvalidArgument,
            "permission",
        );
        let mut unknown = check_request("", "d", "u");
        unknown.resource = Some(obj("nosuchtype", "x"));
        expect(
            "check of an unknown type",
            c.perm.check(unknown).await,
            Code::InvalidArgument,
            "nosuchtype",
        );
        let mut bad_zookie = check_request("", "d", "u");
        bad_zookie.consistency = Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(pb::Zookie {
                token: "garbage!".into(),
            })),
        });
        expect(
            "check with a forged zookie",
            c.perm.check(bad_zookie).await,
            Code::InvalidArgument,
            "consistency.at_least_as_fresh",
        );
        expect(
            "check of an unknown tenant",
            c.perm.check(check_request("nosuch", "d", "u")).await,
            Code::NotFound,
            "nosuch",
        );
        expect_reason(
            "check of an unknown tenant",
            c.perm.check(check_request("nosuch", "d", "u")).await,
            Code::NotFound,
            "VERDICT_TENANT_NOT_FOUND",
            Some(("tenant", "nosuch")),
        );
        let mut unknown = check_request("", "d", "u");
        unknown.resource = Some(obj("nosuchtype", "x"));
        expect_reason(
            "check of an unknown type",
            c.perm.check(unknown).await,
            Code::InvalidArgument,
            "VERDICT_UNKNOWN_TYPE",
            Some(("object_type", "nosuchtype")),
        );
        let mut bad_zookie = check_request("", "d", "u");
        bad_zookie.consistency = Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(pb::Zookie {
                token: "garbage!".into(),
            })),
        });
        expect_reason(
            "check with a forged zookie",
            c.perm.check(bad_zookie).await,
            Code::InvalidArgument,
            "VERDICT_INVALID_ZOOKIE",
            Some(("field", "consistency.at_least_as_fresh")),
        );
        let mut bad_id = check_request("", "d", "u");
        bad_id.resource = Some(obj("document", &"x".repeat(100_000)));
        expect(
            "check with a 100 kB id",
            c.perm.check(bad_id).await,
            Code::InvalidArgument,
            "resource",
        );
        // Oversized message: over --max-message-bytes (1 MiB).
        let mut huge = check_request("", "d", "u");
        huge.permission = "p".repeat(2 << 20);
        expect(
            "oversized check",
            c.perm.check(huge).await,
            Code::InvalidArgument,
            "--max-message-bytes",
        );
        let mut huge = check_request("", "d", "u");
        huge.permission = "p".repeat(2 << 20);
        expect_reason(
            "oversized check",
            c.perm.check(huge).await,
            Code::InvalidArgument,
            "VERDICT_MESSAGE_TOO_LARGE",
            None,
        );
        // Context nested past the decoder's recursion limit.
        let mut deep = check_request("", "d", "u");
        deep.context = Some(nested(200));
        expect(
            "context nested 200 deep",
            c.perm.check(deep).await,
            Code::InvalidArgument,
            "could not be decoded",
        );
        // Nesting the decoder accepts (20 levels) is evaluated normally.
        let mut ok_deep = check_request("", "healthy", "alice");
        ok_deep.context = Some(nested(20));
        assert_eq!(
            c.perm
                .check(ok_deep)
                .await
                .unwrap()
                .into_inner()
                .permissionship(),
            pb::Permissionship::Allowed
        );
        let too_many = pb::BulkCheckRequest {
            items: vec![pb::BulkCheckItem::default(); 1001],
            ..Default::default()
        };
        expect(
            "bulk check of 1001 items",
            c.perm.bulk_check(too_many).await,
            Code::InvalidArgument,
            "at most 1000",
        );
        let bulk = c
            .perm
            .bulk_check(pb::BulkCheckRequest {
                items: vec![pb::BulkCheckItem::default()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        match &bulk.results[0].response {
            Some(pb::bulk_check_result::Response::Error(e)) => {
                assert_eq!(e.code, Code::InvalidArgument as i32);
                assert!(e.message.contains("items[0].resource"), "{e:?}");
            }
            other => panic!("bulk item without fields: {other:?}"),
        }
        expect(
            "expand without resource",
            c.perm
                .expand(pb::ExpandRequest {
                    permission: "view".into(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "resource",
        );
        expect(
            "lookup resources without subject",
            c.perm
                .lookup_resources(pb::LookupResourcesRequest {
                    resource_type: "document".into(),
                    permission: "view".into(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "subject",
        );
        expect(
            "lookup subjects of an unknown type",
            c.perm
                .lookup_subjects(pb::LookupSubjectsRequest {
                    resource: Some(obj("document", "d")),
                    permission: "view".into(),
                    subject_type: "nosuchtype".into(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "nosuchtype",
        );

        // --- RelationshipService ---
        let updates: Vec<_> = (0..1001)
            .map(|i| support::update(("document", &format!("d{i}"), "viewer", "user", "u", "")))
            .collect();
        expect(
            "write of 1001 updates",
            c.rel
                .write_relationships(pb::WriteRelationshipsRequest {
                    updates,
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "1000",
        );
        expect(
            "write with a bad relation",
            c.write("", &[("document", "d", "nosuchrel", "user", "u", "")])
                .await,
            Code::InvalidArgument,
            "nosuchrel",
        );
        expect(
            "write without operation",
            c.rel
                .write_relationships(pb::WriteRelationshipsRequest {
                    updates: vec![pb::RelationshipUpdate {
                        operation: 0,
                        relationship: Some(tuple(("document", "d"), "viewer", ("user", "u", ""))),
                    }],
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "updates[0]",
        );
        expect(
            "delete without filter",
            c.rel
                .delete_relationships(pb::DeleteRelationshipsRequest::default())
                .await,
            Code::InvalidArgument,
            "filter",
        );
        expect(
            "import for an unknown type",
            c.rel
                .import_relationships(tokio_stream::iter(vec![pb::ImportRelationshipsRequest {
                    tenant: String::new(),
                    relationships: vec![tuple(("nosuchtype", "x"), "viewer", ("user", "u", ""))],
                }]))
                .await,
            Code::InvalidArgument,
            "nosuchtype",
        );

        let bad_filter = || pb::RelationshipFilter {
            resource_type: "Bad Type!".into(),
            ..Default::default()
        };
        expect(
            "read with a bad filter",
            c.rel
                .read_relationships(pb::ReadRelationshipsRequest {
                    filter: Some(bad_filter()),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "filter",
        );
        expect(
            "export with a bad filter",
            c.rel
                .export_relationships(pb::ExportRelationshipsRequest {
                    optional_filter: Some(bad_filter()),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "filter",
        );

        // --- SchemaService, WatchService, TenantService, KeyService ---
        expect(
            "schema read of an unknown tenant",
            c.schema
                .read_schema(pb::ReadSchemaRequest {
                    tenant: "nosuch".into(),
                    ..Default::default()
                })
                .await,
            Code::NotFound,
            "nosuch",
        );
        expect(
            "schema versions of an invalid tenant name",
            c.schema
                .list_schema_versions(pb::ListSchemaVersionsRequest {
                    tenant: "Bad Name!".into(),
                })
                .await,
            Code::InvalidArgument,
            "tenant",
        );
        expect(
            "tenant delete without confirmation",
            c.tenants
                .delete_tenant(pb::DeleteTenantRequest {
                    name: "default".into(),
                    confirm: "nope".into(),
                })
                .await,
            Code::InvalidArgument,
            "confirm",
        );
        expect(
            "key for an unknown tenant",
            c.keys
                .create_key(pb::CreateKeyRequest {
                    tenant: "nosuch".into(),
                })
                .await,
            Code::NotFound,
            "nosuch",
        );
        expect(
            "revoke without id",
            c.keys.revoke_key(pb::RevokeKeyRequest::default()).await,
            Code::InvalidArgument,
            "id",
        );
        expect(
            "schema that does not compile",
            c.schema
                .write_schema(pb::WriteSchemaRequest {
                    schema: "definition {".into(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "schema",
        );
        expect(
            "watch of a bad resource type",
            c.watch
                .watch(pb::WatchRequest {
                    optional_resource_types: vec!["Bad Type!".into()],
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
            "optional_resource_types[0]",
        );
        expect(
            "tenant with a bad name",
            c.tenants
                .create_tenant(pb::CreateTenantRequest {
                    name: "Bad Name!".into(),
                })
                .await,
            Code::InvalidArgument,
            "name",
        );

        // --- Cyclic groups and chains past the depth limit ---
        c.write(
            "",
            &[
                ("group", "a", "member", "group", "b", "member"),
                ("group", "b", "member", "group", "a", "member"),
                ("document", "cyc", "viewer", "group", "a", "member"),
            ],
        )
        .await
        .unwrap();
        // The engine recognises the cycle: a plain DENIED, quickly.
        assert_eq!(
            c.check("", "cyc", "nobody").await.unwrap(),
            pb::Permissionship::Denied
        );
        // A chain of 60 nested groups is past the default depth (50):
        // RESOURCE_EXHAUSTED naming the depth limit, never a silent DENIED.
        let names: Vec<String> = (0..60).map(|i| format!("g{i}")).collect();
        let mut chain: Vec<(&str, &str, &str, &str, &str, &str)> = names
            .windows(2)
            .map(|w| {
                (
                    "group",
                    w[0].as_str(),
                    "member",
                    "group",
                    w[1].as_str(),
                    "member",
                )
            })
            .collect();
        chain.push(("group", "g59", "member", "user", "end", ""));
        chain.push(("document", "chain", "viewer", "group", "g0", "member"));
        c.write("", &chain).await.unwrap();
        expect(
            "check through 60 nested groups",
            c.check("", "chain", "end").await,
            Code::ResourceExhausted,
            "maximum depth of 50",
        );

        // --- Huge fan-out: 5,000 documents through one group ---
        for chunk in 0..5 {
            let updates: Vec<_> = (0..1000)
                .map(|i| {
                    support::update((
                        "document",
                        &format!("f{}", chunk * 1000 + i),
                        "viewer",
                        "group",
                        "big",
                        "member",
                    ))
                })
                .collect();
            c.rel
                .write_relationships(pb::WriteRelationshipsRequest {
                    updates,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        c.write("", &[("group", "big", "member", "user", "fan", "")])
            .await
            .unwrap();
        let lookup = || pb::LookupResourcesRequest {
            consistency: Some(support::full()),
            resource_type: "document".into(),
            permission: "view".into(),
            subject: Some(subj("user", "fan", "")),
            ..Default::default()
        };
        let mut stream = c
            .perm
            .lookup_resources(lookup())
            .await
            .unwrap()
            .into_inner();
        let mut found = 0;
        while let Some(_item) = stream.message().await.unwrap() {
            found += 1;
        }
        assert_eq!(found, 5000);

        // --- Abrupt disconnects mid stream, and a client that never reads ---
        for _ in 0..5 {
            let mut s = c
                .perm
                .lookup_resources(lookup())
                .await
                .unwrap()
                .into_inner();
            assert!(s.message().await.unwrap().is_some());
            drop(s);
            let mut w = c
                .watch
                .watch(pb::WatchRequest::default())
                .await
                .unwrap()
                .into_inner();
            let _ = tokio::time::timeout(Duration::from_millis(20), w.message()).await;
            drop(w);
        }
        // Separate connections that open streams and then never read.
        let mut stalled = Vec::new();
        let mut stalled_watches = Vec::new();
        for _ in 0..3 {
            let mut slow = server.clients(None).await;
            stalled.push(
                slow.perm
                    .lookup_resources(lookup())
                    .await
                    .unwrap()
                    .into_inner(),
            );
            stalled_watches.push(
                slow.watch
                    .watch(pb::WatchRequest::default())
                    .await
                    .unwrap()
                    .into_inner(),
            );
        }
        // Writes keep flowing to the stalled watchers meanwhile.
        for i in 0..20 {
            c.write(
                "",
                &[("document", &format!("w{i}"), "viewer", "user", "x", "")],
            )
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            c.check("", "healthy", "alice").await.unwrap(),
            pb::Permissionship::Allowed
        );
        drop(stalled);
        drop(stalled_watches);

        healthy.finish(started).await;
    });
    // The server is still up, its metrics saw the failures, and nothing
    // the disconnected or stalled clients started is left counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = server.http_get("/metrics");
        assert!(metrics.contains("code=\"INVALID_ARGUMENT\""), "{metrics}");
        if metrics.contains("verdict_requests_in_flight 0")
            && metrics.contains("verdict_watch_consumers 0")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "requests or watches left open:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
