//! SchemaService's ComputablePermissions, DependentRelations and
//! DiffSchema, their ExperimentalService twins, and CheckPermission's
//! `debug_trace` and `optional_expires_at`, over real gRPC (the generated
//! Rust client against `verdict serve`). The peer SpiceDB harness
//! (`peers/spicedb_grpc_server.py`) does not serve these RPCs, so the
//! expected answers are worked out from SpiceDB's reachability and diff
//! rules (internal/services/v1/schema.go, pkg/schema, pkg/diff).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    deprecated,
    reason = "tests assert by panicking; the Experimental* RPCs are deprecated upstream and tested on purpose"
)]

use crate::support;

use prost::Message as _;
use support::Server;
use tonic::Code;
use verdict::api::spicedb::pb;

const SCHEMA: &str = "definition user {}
definition group {
  relation member: user | group#member
}
definition folder {
  relation viewer: user | group#member
  permission view = viewer
}
definition doc {
  relation parent: folder
  relation reader: user:*
  relation banned: user
  permission view = (reader + parent->view) - banned
}
";

type Channel = tonic::transport::Channel;

struct Clients {
    schema: pb::schema_service_client::SchemaServiceClient<Channel>,
    experimental: pb::experimental_service_client::ExperimentalServiceClient<Channel>,
    perms: pb::permissions_service_client::PermissionsServiceClient<Channel>,
}

async fn clients(server: &Server) -> Clients {
    let channel = server.channel().await;
    Clients {
        schema: pb::schema_service_client::SchemaServiceClient::new(channel.clone()),
        experimental: pb::experimental_service_client::ExperimentalServiceClient::new(
            channel.clone(),
        ),
        perms: pb::permissions_service_client::PermissionsServiceClient::new(channel),
    }
}

async fn write_schema(c: &mut Clients, text: &str) {
    c.schema
        .write_schema(pb::WriteSchemaRequest {
            schema: text.into(),
        })
        .await
        .unwrap();
}

fn full() -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    })
}

/// The ErrorInfo reason and metadata of a failed call.
fn error_info(status: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    let details = pb::google::rpc::Status::decode(status.details()).unwrap();
    let any = details.details.first().unwrap();
    let info = pb::google::rpc::ErrorInfo::decode(any.value.as_slice()).unwrap();
    assert_eq!(info.domain, "authzed.com");
    (info.reason, info.metadata)
}

fn refs(list: &[pb::ReflectionRelationReference]) -> Vec<String> {
    list.iter()
        .map(|r| {
            format!(
                "{}#{}{}",
                r.definition_name,
                r.relation_name,
                if r.is_permission { " (permission)" } else { "" }
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computable_and_dependent_follow_spicedb_reachability() {
    let server = Server::start(&["--insecure-no-auth"]);
    let mut c = clients(&server).await;
    write_schema(&mut c, SCHEMA).await;

    let computable = |def: &str, rel: &str, filter: &str| pb::ComputablePermissionsRequest {
        consistency: full(),
        definition_name: def.into(),
        relation_name: rel.into(),
        optional_definition_name_filter: filter.into(),
    };
    // Objects of type user (no relation): everything a user can reach.
    let got = c
        .schema
        .computable_permissions(computable("user", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(got.read_at.is_some());
    assert_eq!(
        refs(&got.permissions),
        vec![
            "doc#banned",
            "doc#reader",
            "doc#view (permission)",
            "folder#view (permission)",
            "folder#viewer",
            "group#member",
        ]
    );
    // group#member: the relations admitting it and what is computed from
    // them; the filter keeps definitions by prefix.
    let got = c
        .schema
        .computable_permissions(computable("group", "member", "fo"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        refs(&got.permissions),
        vec!["folder#view (permission)", "folder#viewer"]
    );
    let got = c
        .schema
        .computable_permissions(computable("folder", "", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refs(&got.permissions), vec!["doc#parent"]);

    let dependent = |def: &str, perm: &str| pb::DependentRelationsRequest {
        consistency: full(),
        definition_name: def.into(),
        permission_name: perm.into(),
    };
    let got = c
        .schema
        .dependent_relations(dependent("doc", "view"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        refs(&got.relations),
        vec![
            "doc#banned",
            "doc#parent",
            "doc#reader",
            "folder#view (permission)",
            "folder#viewer",
            "group#member",
        ]
    );

    // Errors, as SpiceDB gives them.
    let err = c
        .schema
        .computable_permissions(computable("nosuch", "", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert_eq!(error_info(&err).0, "ERROR_REASON_UNKNOWN_DEFINITION");
    let err = c
        .schema
        .computable_permissions(computable("doc", "nosuch", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert_eq!(
        error_info(&err).0,
        "ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION"
    );
    let err = c
        .schema
        .dependent_relations(dependent("doc", "reader"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert_eq!(err.message(), "the relation `reader` is not a permission");
    let (reason, metadata) = error_info(&err);
    assert_eq!(reason, "ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION");
    assert_eq!(
        metadata.get("relationName").map(String::as_str),
        Some("reader")
    );

    // The Experimental twins give the same answers.
    let twin = c
        .experimental
        .experimental_dependent_relations(pb::ExperimentalDependentRelationsRequest {
            consistency: full(),
            definition_name: "doc".into(),
            permission_name: "view".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<String> = twin
        .relations
        .iter()
        .map(|r| format!("{}#{}", r.definition_name, r.relation_name))
        .collect();
    assert_eq!(
        names,
        vec![
            "doc#banned",
            "doc#parent",
            "doc#reader",
            "folder#view",
            "folder#viewer",
            "group#member",
        ]
    );
    let twin = c
        .experimental
        .experimental_computable_permissions(pb::ExperimentalComputablePermissionsRequest {
            consistency: full(),
            definition_name: "folder".into(),
            relation_name: String::new(),
            optional_definition_name_filter: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(twin.permissions.len(), 1);
    assert_eq!(twin.permissions[0].relation_name, "parent");
}

fn diff_names(diffs: &[pb::ReflectionSchemaDiff]) -> Vec<String> {
    use pb::reflection_schema_diff::Diff;
    diffs
        .iter()
        .map(|d| match d.diff.as_ref().unwrap() {
            Diff::DefinitionAdded(x) => format!("definition_added {}", x.name),
            Diff::DefinitionRemoved(x) => format!("definition_removed {}", x.name),
            Diff::DefinitionDocCommentChanged(x) => format!("definition_doc {}", x.name),
            Diff::RelationAdded(x) => {
                format!("relation_added {}#{}", x.parent_definition_name, x.name)
            }
            Diff::RelationRemoved(x) => {
                format!("relation_removed {}#{}", x.parent_definition_name, x.name)
            }
            Diff::RelationDocCommentChanged(x) => format!("relation_doc {}", x.name),
            Diff::RelationSubjectTypeAdded(x) => format!(
                "subject_type_added {} on {}",
                x.changed_subject_type
                    .as_ref()
                    .unwrap()
                    .subject_definition_name,
                x.relation.as_ref().unwrap().name
            ),
            Diff::RelationSubjectTypeRemoved(x) => format!(
                "subject_type_removed {} on {}",
                x.changed_subject_type
                    .as_ref()
                    .unwrap()
                    .subject_definition_name,
                x.relation.as_ref().unwrap().name
            ),
            Diff::PermissionAdded(x) => format!("permission_added {}", x.name),
            Diff::PermissionRemoved(x) => format!("permission_removed {}", x.name),
            Diff::PermissionDocCommentChanged(x) => format!("permission_doc {}", x.name),
            Diff::PermissionExprChanged(x) => format!("permission_expr {}", x.name),
            Diff::CaveatAdded(x) => format!("caveat_added {}", x.name),
            Diff::CaveatRemoved(x) => format!("caveat_removed {}", x.name),
            Diff::CaveatDocCommentChanged(x) => format!("caveat_doc {}", x.name),
            Diff::CaveatExprChanged(x) => format!("caveat_expr {}", x.name),
            Diff::CaveatParameterAdded(x) => format!("parameter_added {}", x.name),
            Diff::CaveatParameterRemoved(x) => format!("parameter_removed {}", x.name),
            Diff::CaveatParameterTypeChanged(x) => format!(
                "parameter_type {} from {}",
                x.parameter.as_ref().unwrap().name,
                x.previous_type
            ),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_schema_reports_each_change_against_the_stored_schema() {
    let server = Server::start(&["--insecure-no-auth"]);
    let mut c = clients(&server).await;
    // No schema yet: everything is added.
    let got = c
        .schema
        .diff_schema(pb::DiffSchemaRequest {
            consistency: full(),
            comparison_schema: "definition user {}".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(diff_names(&got.diffs), vec!["definition_added user"]);

    write_schema(
        &mut c,
        "caveat limited(a int) { a > 1 }
definition user {}
definition team {}
definition doc {
  relation viewer: user
  relation editor: user
  permission view = viewer
}",
    )
    .await;
    let comparison = "caveat limited(a string, b int) { b > 2 }
definition user {}
definition org {}
/** docs */
definition doc {
  relation viewer: user | org
  permission view = viewer + editor
  relation editor: user
  permission admin = editor
}";
    let got = c
        .schema
        .diff_schema(pb::DiffSchemaRequest {
            consistency: full(),
            comparison_schema: comparison.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.read_at.is_some());
    assert_eq!(
        diff_names(&got.diffs),
        vec![
            "definition_added org",
            "definition_removed team",
            "definition_doc doc",
            "permission_added admin",
            "permission_expr view",
            "subject_type_added org on viewer",
            "parameter_type a from int",
            "parameter_added b",
            "caveat_expr limited",
        ]
    );
    // The same schema: nothing.
    let same = c
        .experimental
        .experimental_diff_schema(pb::ExperimentalDiffSchemaRequest {
            consistency: full(),
            comparison_schema: "caveat limited(a int) { a > 1 }
definition user {}
definition team {}
definition doc {
  relation viewer: user
  relation editor: user
  permission view = viewer
}"
            .into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(same.diffs.is_empty(), "{:?}", same.diffs);
    // A comparison schema that does not parse.
    let err = c
        .schema
        .diff_schema(pb::DiffSchemaRequest {
            consistency: full(),
            comparison_schema: "definition {".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert_eq!(error_info(&err).0, "ERROR_REASON_SCHEMA_PARSE_ERROR");
}

fn relationship(text: &str, expires: Option<i64>) -> pb::RelationshipUpdate {
    let (resource, rest) = text.split_once('#').unwrap();
    let (relation, subject) = rest.split_once('@').unwrap();
    let obj = |s: &str| {
        let (t, id) = s.split_once(':').unwrap();
        pb::ObjectReference {
            object_type: t.into(),
            object_id: id.into(),
        }
    };
    let (subject, subject_relation) = subject.split_once('#').unwrap_or((subject, ""));
    pb::RelationshipUpdate {
        operation: pb::relationship_update::Operation::Touch as i32,
        relationship: Some(pb::Relationship {
            resource: Some(obj(resource)),
            relation: relation.into(),
            subject: Some(pb::SubjectReference {
                object: Some(obj(subject)),
                optional_relation: subject_relation.into(),
            }),
            optional_caveat: None,
            optional_expires_at: expires
                .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        }),
    }
}

fn check_request(
    resource: &str,
    permission: &str,
    subject: &str,
    trace: bool,
) -> pb::CheckPermissionRequest {
    let (t, id) = resource.split_once(':').unwrap();
    let (st, sid) = subject.split_once(':').unwrap();
    pb::CheckPermissionRequest {
        consistency: full(),
        resource: Some(pb::ObjectReference {
            object_type: t.into(),
            object_id: id.into(),
        }),
        permission: permission.into(),
        subject: Some(pb::SubjectReference {
            object: Some(pb::ObjectReference {
                object_type: st.into(),
                object_id: sid.into(),
            }),
            optional_relation: String::new(),
        }),
        context: None,
        with_tracing: trace,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_its_trace_and_when_the_answer_expires() {
    let server = Server::start(&["--insecure-no-auth"]);
    let mut c = clients(&server).await;
    write_schema(
        &mut c,
        "use expiration
definition user {}
definition group {
  relation member: user with expiration
}
definition doc {
  relation viewer: user with expiration | group#member
  relation owner: user
  permission view = viewer + owner
}",
    )
    .await;
    const Y2100: i64 = 4_102_444_800;
    const Y2090: i64 = 3_786_912_000;
    c.perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![
                relationship("doc:a#viewer@user:ann", Some(Y2100)),
                relationship("doc:a#viewer@group:g#member", None),
                relationship("group:g#member@user:bob", Some(Y2090)),
                relationship("doc:a#owner@user:cat", None),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let expires =
        |r: &pb::CheckPermissionResponse| r.optional_expires_at.as_ref().map(|t| t.seconds);
    let ann = c
        .perms
        .check_permission(check_request("doc:a", "view", "user:ann", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ann.permissionship,
        pb::check_permission_response::Permissionship::HasPermission as i32
    );
    assert_eq!(expires(&ann), Some(Y2100));
    assert!(ann.debug_trace.is_none(), "no trace unless asked for");
    // Through the group: its membership expires first.
    let bob = c
        .perms
        .check_permission(check_request("doc:a", "view", "user:bob", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expires(&bob), Some(Y2090));
    // Nothing that grants cat expires; dan is denied.
    let cat = c
        .perms
        .check_permission(check_request("doc:a", "view", "user:cat", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expires(&cat), None);
    let dan = c
        .perms
        .check_permission(check_request("doc:a", "view", "user:dan", false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(expires(&dan), None);

    // The trace: the root is the question asked, its sub-problems lead to
    // the group membership that granted it.
    let info = bob.debug_trace.expect("with_tracing gives a debug trace");
    assert!(info.schema_used.contains("definition doc"));
    let root = info.check.unwrap();
    assert_eq!(root.resource.as_ref().unwrap().object_id, "a");
    assert_eq!(root.permission, "view");
    assert_eq!(
        root.permission_type,
        pb::check_debug_trace::PermissionType::Permission as i32
    );
    assert_eq!(
        root.result,
        pb::check_debug_trace::Permissionship::HasPermission as i32
    );
    assert_eq!(
        root.subject
            .as_ref()
            .unwrap()
            .object
            .as_ref()
            .unwrap()
            .object_id,
        "bob"
    );
    fn visits(t: &pb::CheckDebugTrace, out: &mut Vec<String>) {
        let r = t.resource.as_ref().unwrap();
        out.push(format!(
            "{}:{}#{}",
            r.object_type, r.object_id, t.permission
        ));
        if let Some(pb::check_debug_trace::Resolution::SubProblems(s)) = &t.resolution {
            for c in &s.traces {
                visits(c, out);
            }
        }
    }
    let mut seen = Vec::new();
    visits(&root, &mut seen);
    assert!(seen.contains(&"group:g#member".to_string()), "{seen:?}");
    assert!(seen.contains(&"doc:a#viewer".to_string()), "{seen:?}");
}

async fn count(c: &mut Clients, name: &str) -> Result<u64, tonic::Status> {
    let answer = c
        .experimental
        .experimental_count_relationships(pb::ExperimentalCountRelationshipsRequest {
            name: name.into(),
        })
        .await?
        .into_inner();
    match answer.counter_result {
        Some(pb::experimental_count_relationships_response::CounterResult::ReadCounterValue(v)) => {
            assert!(v.read_at.is_some());
            Ok(v.relationship_count)
        }
        other => panic!("no counter value: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationship_counters_count_their_filter_and_survive_a_restart() {
    let server = Server::start(&["--insecure-no-auth"]);
    let mut c = clients(&server).await;
    write_schema(&mut c, SCHEMA).await;
    c.perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![
                relationship("folder:f#viewer@user:ann", None),
                relationship("folder:f#viewer@user:bob", None),
                relationship("folder:g#viewer@user:ann", None),
                relationship("doc:d#banned@user:ann", None),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let register = |name: &str, filter: pb::RelationshipFilter| {
        pb::ExperimentalRegisterRelationshipCounterRequest {
            name: name.into(),
            relationship_filter: Some(filter),
        }
    };
    let viewers = pb::RelationshipFilter {
        resource_type: "folder".into(),
        optional_relation: "viewer".into(),
        ..Default::default()
    };
    let anns = pb::RelationshipFilter {
        optional_subject_filter: Some(pb::SubjectFilter {
            subject_type: "user".into(),
            optional_subject_id: "ann".into(),
            optional_relation: None,
        }),
        ..Default::default()
    };
    c.experimental
        .experimental_register_relationship_counter(register("folder_viewers", viewers.clone()))
        .await
        .unwrap();
    c.experimental
        .experimental_register_relationship_counter(register("anns", anns))
        .await
        .unwrap();
    assert_eq!(count(&mut c, "folder_viewers").await.unwrap(), 3);
    assert_eq!(count(&mut c, "anns").await.unwrap(), 3);

    // SpiceDB's errors: a taken name, an unknown one, a filter naming an
    // unknown type, a bad name.
    let err = c
        .experimental
        .experimental_register_relationship_counter(register("anns", viewers.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert_eq!(
        error_info(&err).0,
        "ERROR_REASON_COUNTER_ALREADY_REGISTERED"
    );
    let err = count(&mut c, "nosuch").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    let (reason, metadata) = error_info(&err);
    assert_eq!(reason, "ERROR_REASON_COUNTER_NOT_REGISTERED");
    assert_eq!(
        metadata.get("counter_name").map(String::as_str),
        Some("nosuch")
    );
    let err = c
        .experimental
        .experimental_register_relationship_counter(register(
            "bad_filter",
            pb::RelationshipFilter {
                resource_type: "nosuch".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert_eq!(error_info(&err).0, "ERROR_REASON_UNKNOWN_DEFINITION");
    let err = c
        .experimental
        .experimental_register_relationship_counter(register("Bad-Name", viewers.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    // Counts follow writes.
    c.perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![relationship("folder:h#viewer@user:cat", None)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(count(&mut c, "folder_viewers").await.unwrap(), 4);
    c.experimental
        .experimental_unregister_relationship_counter(
            pb::ExperimentalUnregisterRelationshipCounterRequest {
                name: "anns".into(),
            },
        )
        .await
        .unwrap();
    let err = c
        .experimental
        .experimental_unregister_relationship_counter(
            pb::ExperimentalUnregisterRelationshipCounterRequest {
                name: "anns".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error_info(&err).0, "ERROR_REASON_COUNTER_NOT_REGISTERED");

    // Counters are stored: a restarted node still has them.
    drop(c);
    let data = server.stop();
    let server = Server::start_in(data, &["--insecure-no-auth"]);
    let mut c = clients(&server).await;
    assert_eq!(count(&mut c, "folder_viewers").await.unwrap(), 4);
    assert_eq!(
        error_info(&count(&mut c, "anns").await.unwrap_err()).0,
        "ERROR_REASON_COUNTER_NOT_REGISTERED"
    );
}
