//! Running safely, end to end: TLS on both ports, load shedding, the
//! server-side deadline, per-tenant rate limits, the decision log,
//! `/metrics` and request ids.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Server, ADMIN};
use tonic::Code;
use verdict::api::pb;
use verdict::server::zookie::ZookieCodec;
use verdict_storage::Revision;

/// A zookie for a revision far in the future: reads wait for it (up to
/// --max-wait), which makes a request slow on demand.
fn future_zookie(server: &Server) -> pb::Zookie {
    let id: u64 = std::fs::read_to_string(server.data_dir().join("cluster-id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    pb::Zookie {
        token: ZookieCodec::new(id).encode(Revision(1_000_000)),
    }
}

fn slow_check(server: &Server) -> pb::CheckRequest {
    pb::CheckRequest {
        consistency: Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(future_zookie(
                server,
            ))),
        }),
        ..support::check_request("", "d", "u")
    }
}

async fn seeded(server: &Server, token: Option<&str>) -> support::Clients {
    let mut c = server.clients(token).await;
    c.write_schema("").await;
    c.write("", &[("document", "d", "viewer", "user", "u", "")])
        .await
        .unwrap();
    c
}

#[test]
fn tls_on_grpc_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let server = Server::start(&[
        "--insecure-no-auth",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let ca = cert_path.to_str().unwrap();
    // The CLI verifies the server with --tls-ca (https implied).
    let write = server.cli(&["tenant", "list", "--tls-ca", ca], &[]);
    assert_eq!(write.ok().trim(), "default");
    let explicit = support::run(
        &[
            "tenant",
            "list",
            "--tls-ca",
            ca,
            "--endpoint",
            &format!(
                "https://localhost:{}",
                server.grpc.rsplit(':').next().unwrap()
            ),
        ],
        &[],
    );
    assert_eq!(explicit.ok().trim(), "default");
    // Plain text to the TLS port fails; https without a CA is a usage error.
    let plain = server.cli(&["tenant", "list"], &[]);
    assert_ne!(plain.code, 0, "{plain:?}");
    let no_ca = support::run(
        &[
            "tenant",
            "list",
            "--endpoint",
            &format!("https://{}", server.grpc),
        ],
        &[],
    );
    assert_eq!(no_ca.code, 2);
    assert!(no_ca.stderr.contains("--tls-ca"), "{no_ca:?}");

    // HTTP over TLS: /metrics answers with the CA; plain HTTP gets no answer.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(&server.http).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        let _ = tls.read_to_string(&mut text).await;
        text
    });
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("verdict_requests_total"), "{body}");
    let plain = std::panic::catch_unwind(|| server.http_get("/healthz")).unwrap_or_default();
    assert!(!plain.contains("200 OK"), "{plain}");
}

#[test]
fn excess_concurrency_is_shed_quickly_then_served() {
    let server = Server::start(&[
        "--insecure-no-auth",
        "--max-concurrent-requests",
        "1",
        "--max-wait",
        "2s",
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = seeded(&server, None).await;
        let mut slow = c.clone();
        let request = slow_check(&server);
        let started = Instant::now();
        let holder = tokio::spawn(async move { slow.perm.check(request).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut fast = c.clone();
        let t = Instant::now();
        let e = fast.check("", "d", "u").await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{e:?}");
        assert!(e.message().contains("overloaded"), "{e:?}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "shed slowly: {:?}",
            t.elapsed()
        );
        // The slow request ends (its wait bound), freeing the slot.
        let slow = holder.await.unwrap().unwrap_err();
        assert_eq!(slow.code(), Code::Unavailable);
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert_eq!(
            fast.check("", "d", "u").await.unwrap(),
            pb::Permissionship::Allowed
        );
    });
    let metrics = server.http_get("/metrics");
    assert!(
        metrics.contains("verdict_requests_shed_total 1"),
        "{metrics}"
    );
}

#[test]
fn requests_past_the_server_deadline_get_deadline_exceeded() {
    let server = Server::start(&[
        "--insecure-no-auth",
        "--request-timeout",
        "300ms",
        "--max-wait",
        "10s",
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = seeded(&server, None).await;
        let t = Instant::now();
        let e = c.perm.check(slow_check(&server)).await.unwrap_err();
        assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
        assert!(e.message().contains("--request-timeout"), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(
            c.check("", "d", "u").await.unwrap(),
            pb::Permissionship::Allowed
        );
    });
}

#[test]
fn tenant_rate_limit_is_resource_exhausted_and_per_tenant() {
    let server = Server::start(&["--admin-key", ADMIN, "--tenant-rate-limit", "5/s"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = server.clients(Some(ADMIN)).await;
        c.tenants
            .create_tenant(pb::CreateTenantRequest { name: "b".into() })
            .await
            .unwrap();
        c.write_schema("").await; // 1 of default's budget
        c.write_schema("b").await;
        let (mut allowed, mut limited) = (0, 0);
        for _ in 0..30 {
            match c.check("", "d", "u").await {
                Ok(_) => allowed += 1,
                Err(e) => {
                    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                    assert!(
                        e.message()
                            .contains("rate limit exceeded for tenant `default`"),
                        "{e:?}"
                    );
                    limited += 1;
                }
            }
        }
        assert!(limited >= 20, "allowed {allowed}, limited {limited}");
        assert!(allowed <= 8, "allowed {allowed}");
        // Another tenant has its own budget.
        assert_eq!(
            c.check("b", "d", "u").await.unwrap(),
            pb::Permissionship::Denied
        );
        // The budget refills.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(c.check("", "d", "u").await.is_ok());
    });
    let metrics = server.http_get("/metrics");
    assert!(metrics.contains("verdict_rate_limited_total"), "{metrics}");
    assert!(
        metrics.contains("tenant=\"default\",code=\"RESOURCE_EXHAUSTED\"}"),
        "{metrics}"
    );
}

#[test]
fn decision_log_metrics_and_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server = Server::start(&[
        "--insecure-no-auth",
        "--decision-log",
        log.to_str().unwrap(),
    ]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = seeded(&server, None).await;
        // A request id is echoed; one is generated when absent.
        let mut request = tonic::Request::new(support::check_request("", "d", "u"));
        request
            .metadata_mut()
            .insert("x-request-id", "req-42".parse().unwrap());
        let response = c.perm.check(request).await.unwrap();
        assert_eq!(response.metadata().get("x-request-id").unwrap(), "req-42");
        let generated = c
            .perm
            .check(support::check_request("", "d", "nobody"))
            .await
            .unwrap();
        assert!(!generated.metadata().get("x-request-id").unwrap().is_empty());
        let mut context = prost_types::Struct::default();
        context.fields.insert(
            "ip".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("10.0.0.1".into())),
            },
        );
        let mut bulk = tonic::Request::new(pb::BulkCheckRequest {
            items: vec![
                pb::BulkCheckItem {
                    resource: Some(support::obj("document", "d")),
                    permission: "view".into(),
                    subject: Some(support::subj("user", "u", "")),
                    context: Some(context),
                },
                pb::BulkCheckItem {
                    resource: Some(support::obj("document", "d")),
                    permission: "view".into(),
                    subject: Some(support::subj("group", "g", "member")),
                    context: None,
                },
            ],
            consistency: Some(support::full()),
            ..Default::default()
        });
        bulk.metadata_mut()
            .insert("x-request-id", "bulk-7".parse().unwrap());
        c.perm.bulk_check(bulk).await.unwrap();

        // A watch stream shows in the consumer gauge while open.
        let mut watch = c
            .watch
            .watch(pb::WatchRequest::default())
            .await
            .unwrap()
            .into_inner();
        let _ = tokio::time::timeout(Duration::from_millis(100), watch.message()).await;
        let metrics = server.http_get("/metrics");
        assert!(metrics.contains("verdict_watch_consumers 1"), "{metrics}");
        drop(watch);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server
            .http_get("/metrics")
            .contains("verdict_watch_consumers 0")
        {
            assert!(
                Instant::now() < deadline,
                "watch consumer gauge never dropped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // Four decisions, in the exact format.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= 4 {
            break lines;
        }
        assert!(Instant::now() < deadline, "decision log has {lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 4, "{lines:?}");
    let keys = |line: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut order: Vec<(usize, String)> = v
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (line.find(&format!("\"{k}\":")).unwrap(), k.clone()))
            .collect();
        order.sort();
        order.into_iter().map(|(_, k)| k).collect()
    };
    let expected = [
        "time",
        "request_id",
        "tenant",
        "resource",
        "permission",
        "subject",
        "result",
        "revision",
        "schema_version",
        "cached",
        "latency_us",
    ];
    assert_eq!(keys(&lines[0]), expected);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["request_id"], "req-42");
    assert_eq!(first["tenant"], "");
    assert_eq!(first["resource"], "document:d");
    assert_eq!(first["permission"], "view");
    assert_eq!(first["subject"], "user:u");
    assert_eq!(first["result"], "ALLOWED");
    assert!(first["revision"].as_u64().unwrap() >= 2);
    assert_eq!(first["schema_version"], 1);
    assert!(first["cached"].is_boolean());
    assert!(first["latency_us"].is_u64());
    let time = first["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["result"], "DENIED");
    let third: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(third["request_id"], "bulk-7");
    assert_eq!(third["context"], serde_json::json!({"ip": "10.0.0.1"}));
    let mut with_context = expected.to_vec();
    with_context.push("context");
    assert_eq!(keys(&lines[2]), with_context);
    let fourth: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
    assert_eq!(fourth["subject"], "group:g#member");
    assert_eq!(fourth["request_id"], "bulk-7");

    let metrics = server.http_get("/metrics");
    for needle in [
        "verdict_requests_total{method=\"/verdict.v1.PermissionService/Check\",tenant=\"default\",code=\"OK\"} 2",
        "verdict_request_duration_seconds_bucket{le=\"+Inf\",method=\"/verdict.v1.PermissionService/Check\",tenant=\"default\"} 2",
        "verdict_request_duration_seconds_count{method=\"/verdict.v1.PermissionService/BulkCheck\",tenant=\"default\"} 1",
        "verdict_decision_cache_hit_ratio ",
        "verdict_revision_lag ",
        "verdict_storage_live_sst_bytes ",
        "verdict_decision_log_written_total 4",
        "verdict_decision_log_dropped_total 0",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }
}
