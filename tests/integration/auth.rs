//! API keys end to end: the admin key, tenant keys created/listed/revoked
//! with the CLI, each refusal's status, and keys stored only hashed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use support::{Server, ADMIN};
use tonic::Code;
use verdict::api::pb;

#[test]
fn serve_refuses_to_start_without_choosing_an_auth_mode() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let r = support::run(
        &[
            "serve",
            "--data-dir",
            dir,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("--admin-key"), "{r:?}");
    assert!(r.stderr.contains("--insecure-no-auth"), "{r:?}");
    let short = support::run(&["serve", "--data-dir", dir, "--admin-key", "short"], &[]);
    assert_ne!(short.code, 0);
    assert!(short.stderr.contains("at least 16"), "{short:?}");
}

/// Creates a key for `tenant` with the CLI; returns (id, token).
fn create_key(server: &Server, tenant: &str) -> (String, String) {
    let r = server.cli(
        &["key", "create", "--tenant", tenant, "--json"],
        &[("VERDICT_TOKEN", ADMIN)],
    );
    let v: serde_json::Value = serde_json::from_str(r.ok().trim()).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    let id = v["id"].as_str().unwrap().to_string();
    assert!(token.starts_with(&format!("vk_{id}_")), "{token}");
    (id, token)
}

#[test]
fn keys_scope_requests_and_each_refusal_has_its_status() {
    let server = Server::start(&["--admin-key", ADMIN]);
    // Tenants are admin-only: the CLI with the admin key creates them.
    for t in ["acme", "globex"] {
        server
            .cli(&["tenant", "create", t, "--token", ADMIN], &[])
            .ok();
    }
    let (acme_id, acme) = create_key(&server, "acme");
    let text = server.cli(
        &["key", "create", "--tenant", "globex"],
        &[("VERDICT_TOKEN", ADMIN)],
    );
    assert!(text.ok().trim().starts_with("vk_"), "{text:?}");
    assert!(text.stderr.contains("shown only once"), "{text:?}");
    // Without --tenant the CLI refuses before calling.
    let no_tenant = server.cli(&["key", "create", "--token", ADMIN], &[]);
    assert_eq!(no_tenant.code, 2, "{no_tenant:?}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut admin = server.clients(Some(ADMIN)).await;
        admin.write_schema("acme").await;
        admin.write_schema("globex").await;
        admin
            .write("globex", &[("document", "d", "viewer", "user", "u", "")])
            .await
            .unwrap();

        // Missing, malformed and wrong keys: UNAUTHENTICATED.
        let mut none = server.clients(None).await;
        let e = none.check("acme", "d", "u").await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert!(e.message().contains("missing API key"), "{e:?}");
        for bad in [
            "nope",
            "vk_0000_0000",
            &format!("vk_{acme_id}_{}", "0".repeat(64)),
        ] {
            let mut c = server.clients(Some(bad)).await;
            let e = c.check("acme", "d", "u").await.unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "{bad}: {e:?}");
            assert!(e.message().contains("invalid or revoked"), "{e:?}");
        }

        // The acme key works on acme...
        let mut tenant = server.clients(Some(&acme)).await;
        tenant
            .write("acme", &[("document", "d", "viewer", "user", "u", "")])
            .await
            .unwrap();
        assert_eq!(
            tenant.check("acme", "d", "u").await.unwrap(),
            pb::Permissionship::Allowed
        );
        // ...and nowhere else: other tenants (existing or not, and the
        // default one) are PERMISSION_DENIED, naming both tenants.
        for other in ["globex", "", "nosuch"] {
            let e = tenant.check(other, "d", "u").await.unwrap_err();
            assert_eq!(e.code(), Code::PermissionDenied, "{other}: {e:?}");
            assert!(e.message().contains("scoped to tenant `acme`"), "{e:?}");
        }
        let e = tenant
            .schema
            .read_schema(pb::ReadSchemaRequest {
                tenant: "globex".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        // Admin services: PERMISSION_DENIED for a tenant key.
        let e = tenant
            .tenants
            .create_tenant(pb::CreateTenantRequest { name: "x".into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("admin key"), "{e:?}");
        let e = tenant
            .keys
            .list_keys(pb::ListKeysRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        // The admin key reaches every tenant.
        assert_eq!(
            admin.check("globex", "d", "u").await.unwrap(),
            pb::Permissionship::Allowed
        );
    });

    // The CLI reports the same statuses.
    let denied = server.cli(&["tenant", "create", "evil", "--token", &acme], &[]);
    assert_eq!(denied.code, 1);
    assert!(denied.stderr.contains("PERMISSION_DENIED"), "{denied:?}");
    let unauth = server.cli(&["tenant", "list"], &[]);
    assert!(unauth.stderr.contains("UNAUTHENTICATED"), "{unauth:?}");
    let check = server.cli(
        &[
            "check",
            "document:d#view@user:u",
            "--tenant",
            "acme",
            "--consistency",
            "full",
        ],
        &[("VERDICT_TOKEN", &acme)],
    );
    assert_eq!(check.ok().trim(), "ALLOWED");

    // list shows ids, never tokens; revoke stops the key at once.
    let list = server.cli(&["key", "list", "--tenant", "acme", "--token", ADMIN], &[]);
    assert!(list.ok().contains(&acme_id), "{list:?}");
    assert!(!list.stdout.contains(&acme));
    let all = server.cli(&["key", "list", "--token", ADMIN], &[]);
    assert_eq!(all.ok().lines().count(), 2, "{all:?}");
    server
        .cli(&["key", "revoke", &acme_id, "--token", ADMIN], &[])
        .ok();
    let revoked = server.cli(
        &["check", "document:d#view@user:u", "--tenant", "acme"],
        &[("VERDICT_TOKEN", &acme)],
    );
    assert!(revoked.stderr.contains("UNAUTHENTICATED"), "{revoked:?}");
    let again = server.cli(&["key", "revoke", &acme_id, "--token", ADMIN], &[]);
    assert!(again.stderr.contains("INVALID_ARGUMENT"), "{again:?}");

    // Keys are stored hashed: no token text in any file of the data dir.
    let (_, live) = create_key(&server, "globex");
    let mut scanned = 0;
    for file in support::files_under(server.data_dir()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        scanned += 1;
        for token in [&acme, &live] {
            let secret = token.rsplit('_').next().unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a token secret",
                file.display()
            );
        }
    }
    assert!(scanned > 3);
    let keys = std::fs::read_to_string(server.data_dir().join("keys.json")).unwrap();
    assert!(keys.contains("sha256"), "{keys}");
}

#[test]
fn keys_die_with_their_tenant() {
    let server = Server::start(&["--admin-key", ADMIN]);
    server
        .cli(&["tenant", "create", "acme", "--token", ADMIN], &[])
        .ok();
    let (_, token) = create_key(&server, "acme");
    let schema = server.cli(
        &["schema", "read", "--tenant", "acme"],
        &[("VERDICT_TOKEN", &token)],
    );
    // No schema yet, but authenticated and in scope: FAILED_PRECONDITION.
    assert!(schema.stderr.contains("FAILED_PRECONDITION"), "{schema:?}");
    server
        .cli(
            &[
                "tenant",
                "delete",
                "acme",
                "--confirm",
                "acme",
                "--token",
                ADMIN,
            ],
            &[],
        )
        .ok();
    let gone = server.cli(
        &["schema", "read", "--tenant", "acme"],
        &[("VERDICT_TOKEN", &token)],
    );
    assert!(gone.stderr.contains("UNAUTHENTICATED"), "{gone:?}");
}

#[test]
fn health_checks_and_probes_need_no_key() {
    let server = Server::start(&["--admin-key", ADMIN]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
        let r = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap();
        assert_eq!(
            r.into_inner().status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    });
    // The HTTP probes answer without a key too.
    assert!(server.http_get("/healthz").starts_with("HTTP/1.1 200"));
    assert!(server.http_get("/readyz").starts_with("HTTP/1.1 200"));
}
