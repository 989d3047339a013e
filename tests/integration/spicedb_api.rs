//! SpiceDB's `authzed.api.v1` over real gRPC (the generated Rust client
//! against `verdict serve`): the core RPCs, errors with their
//! `google.rpc.ErrorInfo`, and how bearer tokens pick tenants.
//! The official SDK's view is in `spicedb_sdk.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use prost::Message as _;
use support::{Server, ADMIN};
use tokio_stream::StreamExt as _;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;
use verdict::api::spicedb::pb;

const SCHEMA: &str = "definition user {}
definition group {
  relation member: user | group#member
}
definition doc {
  relation viewer: user | group#member
  relation banned: user
  permission view = viewer - banned
}
";

#[derive(Clone)]
struct Bearer(Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            let v: MetadataValue<_> = format!("Bearer {t}").parse().unwrap();
            r.metadata_mut().insert("authorization", v);
        }
        Ok(r)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

struct Spice {
    perms: pb::permissions_service_client::PermissionsServiceClient<Svc>,
    schema: pb::schema_service_client::SchemaServiceClient<Svc>,
}

async fn spice(server: &Server, token: Option<&str>) -> Spice {
    let channel = server.channel().await;
    let bearer = Bearer(token.map(str::to_string));
    Spice {
        perms: pb::permissions_service_client::PermissionsServiceClient::new(
            InterceptedService::new(channel.clone(), bearer.clone()),
        ),
        schema: pb::schema_service_client::SchemaServiceClient::new(InterceptedService::new(
            channel, bearer,
        )),
    }
}

fn obj(s: &str) -> pb::ObjectReference {
    let (t, id) = s.split_once(':').unwrap();
    pb::ObjectReference {
        object_type: t.into(),
        object_id: id.into(),
    }
}

fn subj(s: &str) -> pb::SubjectReference {
    let (o, rel) = s.split_once('#').unwrap_or((s, ""));
    pb::SubjectReference {
        object: Some(obj(o)),
        optional_relation: rel.into(),
    }
}

fn touch(text: &str) -> pb::RelationshipUpdate {
    let (resource, rest) = text.split_once('#').unwrap();
    let (relation, subject) = rest.split_once('@').unwrap();
    pb::RelationshipUpdate {
        operation: pb::relationship_update::Operation::Touch as i32,
        relationship: Some(pb::Relationship {
            resource: Some(obj(resource)),
            relation: relation.into(),
            subject: Some(subj(subject)),
            optional_caveat: None,
            optional_expires_at: None,
        }),
    }
}

fn full() -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    })
}

/// The ErrorInfo reason of a failed call.
fn reason(status: &tonic::Status) -> Option<String> {
    let details = pb::google::rpc::Status::decode(status.details()).ok()?;
    let any = details.details.first()?;
    let info = pb::google::rpc::ErrorInfo::decode(any.value.as_slice()).ok()?;
    assert_eq!(info.domain, "authzed.com");
    Some(info.reason)
}

async fn check(s: &mut Spice, resource: &str, permission: &str, subject: &str) -> i32 {
    s.perms
        .check_permission(pb::CheckPermissionRequest {
            consistency: full(),
            resource: Some(obj(resource)),
            permission: permission.into(),
            subject: Some(subj(subject)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .permissionship
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_rpcs_answer_as_spicedb_does() {
    let server = Server::start(&["--insecure-no-auth"]);
    let mut s = spice(&server, None).await;
    let err = s
        .schema
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    s.schema
        .write_schema(pb::WriteSchemaRequest {
            schema: SCHEMA.into(),
        })
        .await
        .unwrap();
    let written = s
        .perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![
                touch("doc:1#viewer@group:eng#member"),
                touch("group:eng#member@user:alice"),
                touch("doc:1#banned@user:mallory"),
                touch("group:eng#member@user:mallory"),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(written.written_at.is_some());
    use pb::check_permission_response::Permissionship as P;
    assert_eq!(
        check(&mut s, "doc:1", "view", "user:alice").await,
        P::HasPermission as i32
    );
    assert_eq!(
        check(&mut s, "doc:1", "view", "user:mallory").await,
        P::NoPermission as i32
    );

    // Unknown permission: FAILED_PRECONDITION with its ErrorInfo.
    let err = s
        .perms
        .check_permission(pb::CheckPermissionRequest {
            resource: Some(obj("doc:1")),
            permission: "nosuch".into(),
            subject: Some(subj("user:alice")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        reason(&err).as_deref(),
        Some("ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION")
    );

    // LookupResources streams with a cursor.
    let found: Vec<_> = s
        .perms
        .lookup_resources(pb::LookupResourcesRequest {
            consistency: full(),
            resource_object_type: "doc".into(),
            permission: "view".into(),
            subject: Some(subj("user:alice")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().resource_object_id)
        .collect()
        .await;
    assert_eq!(found, ["1"]);

    // ReadRelationships pages with cursors; an empty filter is INVALID_FILTER.
    let filter = pb::RelationshipFilter {
        resource_type: "group".into(),
        ..Default::default()
    };
    let page: Vec<_> = s
        .perms
        .read_relationships(pb::ReadRelationshipsRequest {
            consistency: full(),
            relationship_filter: Some(filter.clone()),
            optional_limit: 1,
            optional_cursor: None,
        })
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(page.len(), 1);
    let rest: Vec<_> = s
        .perms
        .read_relationships(pb::ReadRelationshipsRequest {
            consistency: full(),
            relationship_filter: Some(filter),
            // The same request as the first page but for the cursor
            // (another limit would be INVALID_CURSOR, as in SpiceDB).
            optional_limit: 1,
            optional_cursor: page[0].after_result_cursor.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(rest.len(), 1);
    let subjects: Vec<_> = page
        .iter()
        .chain(&rest)
        .map(|r| {
            let rel = r.relationship.as_ref().unwrap();
            rel.subject
                .as_ref()
                .unwrap()
                .object
                .as_ref()
                .unwrap()
                .object_id
                .clone()
        })
        .collect();
    assert_eq!(subjects, ["alice", "mallory"]);
    let err = s
        .perms
        .read_relationships(pb::ReadRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err).as_deref(), Some("ERROR_REASON_INVALID_FILTER"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_pick_tenants() {
    let server = Server::start(&["--admin-key", ADMIN]);
    server
        .cli(&["tenant", "create", "acme", "--token", ADMIN], &[])
        .ok();
    let key = server.cli(
        &["key", "create", "--tenant", "acme"],
        &[("VERDICT_TOKEN", ADMIN)],
    );
    let acme_key = key.ok().trim().to_string();

    // No token: UNAUTHENTICATED; an unknown one: PERMISSION_DENIED (SpiceDB).
    let err = spice(&server, None)
        .await
        .schema
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    let err = spice(&server, Some("not-a-key"))
        .await
        .schema
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");

    // The tenant key writes acme's schema; the admin key serves the
    // default tenant, which still has none.
    let mut acme = spice(&server, Some(&acme_key)).await;
    acme.schema
        .write_schema(pb::WriteSchemaRequest {
            schema: SCHEMA.into(),
        })
        .await
        .unwrap();
    let text = acme
        .schema
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner()
        .schema_text;
    assert!(text.contains("definition doc"), "{text}");
    let err = spice(&server, Some(ADMIN))
        .await
        .schema
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
}
