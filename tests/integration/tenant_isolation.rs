//! Tenant isolation, end to end: the built `verdict serve` binary holds
//! tenants whose schemas use identical type names and whose relationships
//! use identical ids (separators, maximum length, and names that are
//! prefixes of each other). No request scoped to one tenant — check, bulk
//! check, expand, both lookups, read, export, watch, schema read, deletes,
//! zookies minted by another tenant's write — returns or touches anything of
//! another.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::Server;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use verdict::api::convert::{object_to_pb, subject_to_pb, tuple_from_pb, tuple_to_pb};
use verdict::api::pb;
use verdict::api::pb::permission_service_client::PermissionServiceClient;
use verdict::api::pb::relationship_service_client::RelationshipServiceClient;
use verdict::api::pb::schema_service_client::SchemaServiceClient;
use verdict::api::pb::tenant_service_client::TenantServiceClient;
use verdict::api::pb::watch_service_client::WatchServiceClient;
use verdict_storage::{ObjectRef, SubjectRef, Tuple};

/// The schema every tenant uses; `extra` makes each tenant's text unique so
/// a schema read that leaks is visible.
fn schema(extra: &str) -> String {
    format!(
        "definition user {{}}
definition group {{
    relation member: user | group#member
}}
definition document {{
    relation viewer: user | user:* | group#member
    relation parent: document
    permission view = viewer + parent->view
}}
definition {extra} {{}}"
    )
}

/// An id at the maximum length, made of separator characters.
fn long_id() -> String {
    let pattern = "a|b/c=d+e-f_g.h@";
    pattern.chars().cycle().take(1024).collect()
}

/// The relationships each tenant holds: the same resources and ids in
/// every tenant, with the subject naming the tenant.
fn tuples_for(marker: &str) -> Vec<String> {
    let long = long_id();
    vec![
        format!("document:shared#viewer@user:{marker}"),
        format!("document:{long}#viewer@user:{marker}"),
        format!("document:a|b/c#viewer@group:eng#member"),
        format!("group:eng#member@user:{marker}-eng"),
        format!("document:child#parent@document:shared"),
        format!("document:{marker}-public#viewer@user:*"),
    ]
}

struct Clients {
    schema: SchemaServiceClient<Channel>,
    rels: RelationshipServiceClient<Channel>,
    perms: PermissionServiceClient<Channel>,
    watch: WatchServiceClient<Channel>,
}

impl Clients {
    async fn connect(endpoint: &str) -> Clients {
        Clients {
            schema: SchemaServiceClient::connect(endpoint.to_string())
                .await
                .unwrap(),
            rels: RelationshipServiceClient::connect(endpoint.to_string())
                .await
                .unwrap(),
            perms: PermissionServiceClient::connect(endpoint.to_string())
                .await
                .unwrap(),
            watch: WatchServiceClient::connect(endpoint.to_string())
                .await
                .unwrap(),
        }
    }

    async fn write(&mut self, tenant: &str, tuples: &[String]) -> pb::Zookie {
        self.rels
            .write_relationships(pb::WriteRelationshipsRequest {
                tenant: tenant.into(),
                updates: tuples
                    .iter()
                    .map(|t| pb::RelationshipUpdate {
                        operation: pb::relationship_update::Operation::Touch as i32,
                        relationship: Some(tuple_to_pb(&Tuple::parse(t).expect("tuple"))),
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

    async fn check(&mut self, tenant: &str, tuple: &str, consistency: pb::Consistency) -> i32 {
        let t = Tuple::parse(tuple).expect("check tuple");
        self.perms
            .check(pb::CheckRequest {
                tenant: tenant.into(),
                consistency: Some(consistency),
                resource: Some(object_to_pb(&t.resource)),
                permission: t.relation.clone(),
                subject: Some(subject_to_pb(&t.subject)),
                context: None,
                with_trace: false,
                with_footprint: false,
            })
            .await
            .expect("check succeeds")
            .into_inner()
            .permissionship
    }

    /// Every relationship of `tenant` through ReadRelationships, one type
    /// at a time.
    async fn read_all(&mut self, tenant: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for resource_type in ["document", "group"] {
            let mut stream = self
                .rels
                .read_relationships(pb::ReadRelationshipsRequest {
                    tenant: tenant.into(),
                    consistency: Some(full()),
                    filter: Some(pb::RelationshipFilter {
                        resource_type: resource_type.into(),
                        ..Default::default()
                    }),
                    limit: 0,
                    cursor: String::new(),
                })
                .await
                .expect("read succeeds")
                .into_inner();
            while let Some(item) = stream.next().await {
                let r = item.expect("read item").relationship.expect("relationship");
                found.insert(tuple_from_pb(&r, "r").expect("valid").to_string());
            }
        }
        found
    }

    async fn export_all(&mut self, tenant: &str) -> BTreeSet<String> {
        let mut stream = self
            .rels
            .export_relationships(pb::ExportRelationshipsRequest {
                tenant: tenant.into(),
                consistency: Some(full()),
                optional_filter: None,
            })
            .await
            .expect("export succeeds")
            .into_inner();
        let mut found = BTreeSet::new();
        while let Some(page) = stream.next().await {
            for r in page.expect("export page").relationships {
                found.insert(tuple_from_pb(&r, "r").expect("valid").to_string());
            }
        }
        found
    }

    async fn lookup_resources(&mut self, tenant: &str, subject: &str) -> BTreeSet<String> {
        let subject = SubjectRef::direct("user", subject);
        let mut stream = self
            .perms
            .lookup_resources(pb::LookupResourcesRequest {
                tenant: tenant.into(),
                consistency: Some(full()),
                resource_type: "document".into(),
                permission: "view".into(),
                subject: Some(subject_to_pb(&subject)),
                context: None,
                limit: 0,
                cursor: String::new(),
            })
            .await
            .expect("lookup resources succeeds")
            .into_inner();
        let mut found = BTreeSet::new();
        while let Some(item) = stream.next().await {
            found.insert(item.expect("lookup item").resource_id);
        }
        found
    }

    async fn lookup_subjects(&mut self, tenant: &str, resource_id: &str) -> BTreeSet<String> {
        let mut stream = self
            .perms
            .lookup_subjects(pb::LookupSubjectsRequest {
                tenant: tenant.into(),
                consistency: Some(full()),
                resource: Some(object_to_pb(&ObjectRef::new("document", resource_id))),
                permission: "view".into(),
                subject_type: "user".into(),
                optional_subject_relation: String::new(),
                context: None,
            })
            .await
            .expect("lookup subjects succeeds")
            .into_inner();
        let mut found = BTreeSet::new();
        while let Some(item) = stream.next().await {
            found.insert(item.expect("lookup item").subject_id);
        }
        found
    }

    /// Every subject id mentioned anywhere in an expand tree.
    async fn expand_subjects(&mut self, tenant: &str, resource_id: &str) -> BTreeSet<String> {
        let tree = self
            .perms
            .expand(pb::ExpandRequest {
                tenant: tenant.into(),
                consistency: Some(full()),
                resource: Some(object_to_pb(&ObjectRef::new("document", resource_id))),
                permission: "view".into(),
            })
            .await
            .expect("expand succeeds")
            .into_inner()
            .tree
            .expect("tree");
        let mut found = BTreeSet::new();
        let mut stack = vec![tree];
        while let Some(node) = stack.pop() {
            for s in &node.subjects {
                if let Some(object) = &s.object {
                    found.insert(object.object_id.clone());
                }
            }
            stack.extend(node.children);
        }
        found
    }
}

fn full() -> pb::Consistency {
    pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    }
}

fn exact(z: &pb::Zookie) -> pb::Consistency {
    pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(z.clone())),
    }
}

fn at_least(z: &pb::Zookie) -> pb::Consistency {
    pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(z.clone())),
    }
}

const ALLOWED: i32 = pb::Permissionship::Allowed as i32;
const DENIED: i32 = pb::Permissionship::Denied as i32;

/// `(request tenant name, marker in its data, extra definition)`. The
/// default tenant is addressed by the empty string; `acme` is a prefix of
/// `acme2` and `acme-2` (a key layout without a tenant delimiter would mix
/// them up).
const TENANTS: &[(&str, &str, &str)] = &[
    ("", "dflt", "only_default"),
    ("acme", "acme", "only_acme"),
    ("acme2", "acmetwo", "only_acme2"),
    ("acme-2", "acmedash", "only_acme_dash"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_scoped_to_one_tenant_sees_another() {
    let server = Server::start(&["--insecure-no-auth"]);
    let endpoint = format!("http://{}", server.grpc);
    let mut c = Clients::connect(&endpoint).await;
    let mut admin = TenantServiceClient::connect(endpoint.clone())
        .await
        .unwrap();
    for (tenant, _, _) in TENANTS.iter().filter(|(t, _, _)| !t.is_empty()) {
        admin
            .create_tenant(pb::CreateTenantRequest {
                name: (*tenant).into(),
            })
            .await
            .expect("create tenant");
    }

    // A watch on `acme` opened before any tenant writes.
    let mut acme_watch = c
        .watch
        .watch(pb::WatchRequest {
            tenant: "acme".into(),
            optional_start: None,
            optional_resource_types: Vec::new(),
        })
        .await
        .expect("watch opens")
        .into_inner();

    let mut zookies = Vec::new();
    for (tenant, marker, extra) in TENANTS {
        c.schema
            .write_schema(pb::WriteSchemaRequest {
                tenant: (*tenant).into(),
                schema: schema(extra),
                expected_version: 0,
                comment: String::new(),
            })
            .await
            .expect("schema write");
        zookies.push(c.write(tenant, &tuples_for(marker)).await);
    }
    let latest = zookies.last().cloned().expect("zookies");

    for (i, (tenant, marker, extra)) in TENANTS.iter().enumerate() {
        let mine: BTreeSet<String> = tuples_for(marker)
            .iter()
            .map(|t| Tuple::parse(t).unwrap().to_string())
            .collect();
        assert_eq!(c.read_all(tenant).await, mine, "read in tenant {tenant:?}");
        assert_eq!(
            c.export_all(tenant).await,
            mine,
            "export in tenant {tenant:?}"
        );

        let read = c
            .schema
            .read_schema(pb::ReadSchemaRequest {
                tenant: (*tenant).into(),
                consistency: Some(full()),
                version: 0,
            })
            .await
            .expect("schema read")
            .into_inner();
        assert!(read.schema_text.contains(extra), "{tenant:?}");
        let by_version = c
            .schema
            .read_schema(pb::ReadSchemaRequest {
                tenant: (*tenant).into(),
                consistency: Some(full()),
                version: read.version,
            })
            .await
            .expect("schema read by version")
            .into_inner();
        assert_eq!(by_version.schema_text, read.schema_text, "{tenant:?}");
        for (_, _, other) in TENANTS.iter().filter(|(_, _, e)| e != extra) {
            assert!(
                !read.schema_text.contains(&format!("definition {other} ")),
                "tenant {tenant:?} read another tenant's schema"
            );
        }

        // Own data answers; every other tenant's marker is unknown here,
        // including at zookies minted by other tenants' writes.
        let long = long_id();
        for consistency in [full(), at_least(&latest), exact(&latest)] {
            for (_, other, _) in TENANTS {
                let expected = if other == marker { ALLOWED } else { DENIED };
                for check in [
                    format!("document:shared#view@user:{other}"),
                    format!("document:child#view@user:{other}"),
                    format!("document:{long}#view@user:{other}"),
                    format!("document:a|b/c#view@user:{other}-eng"),
                ] {
                    assert_eq!(
                        c.check(tenant, &check, consistency.clone()).await,
                        expected,
                        "tenant {tenant:?}: {check}"
                    );
                }
                // Each tenant's public document exists only there.
                let public = format!("document:{other}-public#view@user:nobody");
                assert_eq!(
                    c.check(tenant, &public, consistency.clone()).await,
                    expected,
                    "tenant {tenant:?}: {public}"
                );
            }
        }
        // At a zookie minted by the default tenant's first write, this
        // tenant had no schema yet: the check is refused, never answered
        // from the default tenant's data.
        if i > 0 {
            let t = Tuple::parse("document:shared#view@user:dflt").unwrap();
            let err = c
                .perms
                .check(pb::CheckRequest {
                    tenant: (*tenant).into(),
                    consistency: Some(exact(&zookies[0])),
                    resource: Some(object_to_pb(&t.resource)),
                    permission: t.relation.clone(),
                    subject: Some(subject_to_pb(&t.subject)),
                    context: None,
                    with_trace: false,
                    with_footprint: false,
                })
                .await
                .expect_err("no schema at that revision");
            assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
            assert!(err.message().contains("no schema"), "{}", err.message());
        }

        let resources = c.lookup_resources(tenant, marker).await;
        let public = format!("{marker}-public");
        let expected: BTreeSet<String> = [
            "shared".to_string(),
            "child".into(),
            long_id(),
            public.clone(),
        ]
        .into_iter()
        .collect();
        assert_eq!(resources, expected, "lookup resources in {tenant:?}");
        // Another tenant's user sees only this tenant's public document.
        for (_, other, _) in TENANTS.iter().filter(|(_, m, _)| m != marker) {
            let found = c.lookup_resources(tenant, other).await;
            assert_eq!(found, [public.clone()].into_iter().collect());
        }
        let expected: BTreeSet<String> = [marker.to_string()].into_iter().collect();
        assert_eq!(c.lookup_subjects(tenant, "shared").await, expected);
        assert_eq!(c.expand_subjects(tenant, "shared").await, expected);
        let expected: BTreeSet<String> = [format!("{marker}-eng")].into_iter().collect();
        assert_eq!(c.lookup_subjects(tenant, "a|b/c").await, expected);

        let bulk = c
            .perms
            .bulk_check(pb::BulkCheckRequest {
                tenant: (*tenant).into(),
                consistency: Some(full()),
                items: TENANTS
                    .iter()
                    .map(|(_, other, _)| pb::BulkCheckItem {
                        resource: Some(object_to_pb(&ObjectRef::new("document", "shared"))),
                        permission: "view".into(),
                        subject: Some(subject_to_pb(&SubjectRef::direct("user", *other))),
                        context: None,
                    })
                    .collect(),
            })
            .await
            .expect("bulk check")
            .into_inner();
        let answers: Vec<i32> = bulk
            .results
            .iter()
            .map(|r| match &r.response {
                Some(pb::bulk_check_result::Response::Item(item)) => item.permissionship,
                other => panic!("bulk check item failed: {other:?}"),
            })
            .collect();
        let expected: Vec<i32> = TENANTS
            .iter()
            .map(|(_, other, _)| if other == marker { ALLOWED } else { DENIED })
            .collect();
        assert_eq!(answers, expected, "bulk check in {tenant:?}");
    }

    // The acme watch saw acme's changes and nothing else.
    let mut seen = BTreeSet::new();
    while seen.len() < tuples_for("acme").len() {
        let response = tokio::time::timeout(Duration::from_secs(10), acme_watch.next())
            .await
            .expect("watch delivers within 10s")
            .expect("stream open")
            .expect("no error");
        for change in response.changes {
            let t = tuple_from_pb(change.relationship.as_ref().expect("rel"), "r").unwrap();
            seen.insert(t.to_string());
        }
    }
    let acme: BTreeSet<String> = tuples_for("acme")
        .iter()
        .map(|t| Tuple::parse(t).unwrap().to_string())
        .collect();
    assert_eq!(seen, acme, "acme's watch saw only acme's changes");

    // A delete by filter in one tenant leaves the others untouched.
    let deleted = c
        .rels
        .delete_relationships(pb::DeleteRelationshipsRequest {
            tenant: "acme".into(),
            filter: Some(pb::RelationshipFilter {
                resource_type: "document".into(),
                ..Default::default()
            }),
            preconditions: Vec::new(),
            limit: 0,
            dry_run: false,
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.deleted, 5, "acme's five document relationships");
    for (tenant, marker, _) in TENANTS.iter().filter(|(t, _, _)| *t != "acme") {
        assert_eq!(c.read_all(tenant).await.len(), tuples_for(marker).len());
    }

    // Deleting a tenant removes only its data; a tenant re-created under
    // the same name starts empty.
    admin
        .delete_tenant(pb::DeleteTenantRequest {
            name: "acme2".into(),
            confirm: "acme2".into(),
        })
        .await
        .expect("delete tenant");
    for (tenant, marker, _) in TENANTS
        .iter()
        .filter(|(t, _, _)| t.is_empty() || *t == "acme-2")
    {
        assert_eq!(c.read_all(tenant).await.len(), tuples_for(marker).len());
    }
    admin
        .create_tenant(pb::CreateTenantRequest {
            name: "acme2".into(),
        })
        .await
        .expect("re-create tenant");
    assert!(c.export_all("acme2").await.is_empty());
    let old_schema = c
        .schema
        .read_schema(pb::ReadSchemaRequest {
            tenant: "acme2".into(),
            consistency: Some(full()),
            version: 0,
        })
        .await;
    assert!(
        old_schema.is_err(),
        "a re-created tenant must not inherit the deleted tenant's schema: {old_schema:?}"
    );
    let history = c
        .schema
        .list_schema_versions(pb::ListSchemaVersionsRequest {
            tenant: "acme2".into(),
        })
        .await
        .expect("history")
        .into_inner()
        .versions;
    assert!(
        history.is_empty(),
        "a re-created tenant must not list the deleted tenant's versions: {history:?}"
    );
}

/// Ids that break naive key encodings are refused with the field named, and
/// nothing is written to any tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ids_are_refused_and_change_nothing() {
    let server = Server::start(&["--insecure-no-auth"]);
    let endpoint = format!("http://{}", server.grpc);
    let mut c = Clients::connect(&endpoint).await;
    let mut admin = TenantServiceClient::connect(endpoint.clone())
        .await
        .unwrap();
    admin
        .create_tenant(pb::CreateTenantRequest {
            name: "acme".into(),
        })
        .await
        .unwrap();
    for tenant in ["", "acme"] {
        c.schema
            .write_schema(pb::WriteSchemaRequest {
                tenant: tenant.into(),
                schema: schema("extra"),
                expected_version: 0,
                comment: String::new(),
            })
            .await
            .unwrap();
    }
    let too_long = "x".repeat(1025);
    let hostile = [
        ("", "resource"),
        ("dökument", "resource"),
        ("ünïcode", "resource"),
        ("a\u{0}b", "resource"),
        ("a:b", "resource"),
        ("a#b", "resource"),
        (too_long.as_str(), "resource"),
    ];
    for (id, field) in hostile {
        let err = c
            .rels
            .write_relationships(pb::WriteRelationshipsRequest {
                tenant: "acme".into(),
                updates: vec![pb::RelationshipUpdate {
                    operation: pb::relationship_update::Operation::Touch as i32,
                    relationship: Some(pb::Relationship {
                        resource: Some(pb::ObjectRef {
                            object_type: "document".into(),
                            object_id: id.into(),
                        }),
                        relation: "viewer".into(),
                        subject: Some(subject_to_pb(&SubjectRef::direct("user", "alice"))),
                        ..Default::default()
                    }),
                }],
                preconditions: Vec::new(),
            })
            .await
            .expect_err("hostile id refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{id:?}");
        assert!(
            err.message().contains(field) && err.message().contains("updates[0]"),
            "{id:?}: {}",
            err.message()
        );
    }
    // Unknown and malformed tenant names are refused, not mapped to the
    // default tenant.
    for tenant in ["nope", "ACME", "acme/../x", "acme\u{0}", "ünï"] {
        let err = c
            .rels
            .read_relationships(pb::ReadRelationshipsRequest {
                tenant: tenant.into(),
                consistency: Some(full()),
                filter: Some(pb::RelationshipFilter {
                    resource_type: "document".into(),
                    ..Default::default()
                }),
                limit: 0,
                cursor: String::new(),
            })
            .await
            .expect_err("bad tenant refused");
        assert!(
            matches!(
                err.code(),
                tonic::Code::InvalidArgument | tonic::Code::NotFound
            ),
            "{tenant:?}: {err:?}"
        );
        assert!(err.message().contains("tenant"), "{}", err.message());
    }
    assert!(c.read_all("").await.is_empty());
    assert!(c.read_all("acme").await.is_empty());
}
