//! CheckPermission's `debug_trace` and `optional_expires_at`, both read off
//! the engine's check trace (`engine::trace`).
//!
//! The trace is a tree of visited sub-problems. Those labelled
//! `type:id#relation` become SpiceDB `CheckDebugTrace`s (resource,
//! permission, whether it is a relation or a permission, result, their
//! sub-problems); operator nodes (`union`, `intersection`, ...) and group
//! index lines are not SpiceDB sub-problems, so their children are lifted
//! into the enclosing one. A sub-problem over several ids of one type at
//! once (the walker batches them) names them comma-separated in
//! `resource.object_id`. `source` is `verdict`; durations are not measured.

use verdict_storage::{SubjectRef, Timestamp, Tuple};

use super::convert::subject_to_pb;
use super::pb;
use crate::engine::Outcome;
use crate::engine::TraceNode;
use crate::schema::ir::Schema;

use pb::check_debug_trace::{PermissionType, Permissionship, Resolution, SubProblems};

/// The `DebugInformation` of a traced check.
pub fn debug_information(
    trace: &TraceNode,
    schema: &Schema,
    schema_text: &str,
    subject: &SubjectRef,
) -> pb::DebugInformation {
    let subject = subject_to_pb(subject);
    let mut roots = convert(trace, schema, &subject);
    let check = if roots.len() == 1 {
        roots.pop()
    } else {
        // The root was an operator: keep its shape under one node.
        Some(pb::CheckDebugTrace {
            resource: None,
            permission: trace.label.clone(),
            permission_type: PermissionType::Permission as i32,
            subject: Some(subject),
            result: permissionship(&trace.outcome) as i32,
            resolution: Some(Resolution::SubProblems(SubProblems { traces: roots })),
            source: "verdict".into(),
            ..Default::default()
        })
    };
    pb::DebugInformation {
        check,
        schema_used: schema_text.to_string(),
    }
}

fn permissionship(outcome: &Outcome) -> Permissionship {
    match outcome {
        Outcome::Allowed => Permissionship::HasPermission,
        Outcome::Denied => Permissionship::NoPermission,
        Outcome::Conditional { .. } => Permissionship::ConditionalPermission,
    }
}

/// `type:id#relation` (ids possibly `{a,b}`) → its parts.
fn parse_label(label: &str) -> Option<(&str, String, &str)> {
    let (object, relation) = label.rsplit_once('#')?;
    let (ty, ids) = object.split_once(':')?;
    if ty.is_empty() || relation.is_empty() || ids.is_empty() || label.contains(' ') {
        return None;
    }
    let ids = ids
        .strip_prefix('{')
        .and_then(|i| i.strip_suffix('}'))
        .unwrap_or(ids);
    Some((ty, ids.to_string(), relation))
}

/// The SpiceDB traces `node` stands for: one for a resource node, its
/// children's for an operator node.
fn convert(
    node: &TraceNode,
    schema: &Schema,
    subject: &pb::SubjectReference,
) -> Vec<pb::CheckDebugTrace> {
    let children: Vec<pb::CheckDebugTrace> = node
        .children
        .iter()
        .flat_map(|c| convert(c, schema, subject))
        .collect();
    let Some((ty, ids, relation)) = parse_label(&node.label) else {
        return children;
    };
    let is_permission = schema
        .relation(ty, relation)
        .is_some_and(|r| r.is_permission());
    vec![pb::CheckDebugTrace {
        resource: Some(pb::ObjectReference {
            object_type: ty.to_string(),
            object_id: ids,
        }),
        permission: relation.to_string(),
        permission_type: if is_permission {
            PermissionType::Permission
        } else {
            PermissionType::Relation
        } as i32,
        subject: Some(subject.clone()),
        result: permissionship(&node.outcome) as i32,
        resolution: Some(Resolution::SubProblems(SubProblems { traces: children })),
        optional_expires_at: earliest_expiration(node).map(|e| prost_types::Timestamp {
            seconds: e.0,
            nanos: 0,
        }),
        source: "verdict".into(),
        ..Default::default()
    }]
}

/// The earliest expiration among the relationships that granted `node`
/// (its tuples and those of its granting sub-problems), `None` when it was
/// denied or nothing that granted it expires. A conservative bound: the
/// answer may change then (another path may still grant it afterwards).
pub fn earliest_expiration(node: &TraceNode) -> Option<Timestamp> {
    if node.outcome.is_denied() {
        return None;
    }
    let own = node
        .tuples
        .iter()
        .filter_map(|t| t.parse::<Tuple>().ok())
        .filter_map(|t| t.expiration);
    let below = node.children.iter().filter_map(earliest_expiration);
    own.chain(below).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(label: &str, outcome: Outcome, tuples: &[&str], children: Vec<TraceNode>) -> TraceNode {
        TraceNode {
            label: label.into(),
            outcome,
            tuples: tuples.iter().map(|t| (*t).to_string()).collect(),
            children,
        }
    }

    #[test]
    fn the_earliest_expiration_comes_from_granting_branches_only() {
        let trace = node(
            "document:a#view",
            Outcome::Allowed,
            &[],
            vec![node(
                "union",
                Outcome::Allowed,
                &[],
                vec![
                    node(
                        "document:a#viewer",
                        Outcome::Allowed,
                        &["document:a#viewer@user:x[expiration:2030-01-01T00:00:00Z]"],
                        vec![],
                    ),
                    node(
                        "document:a#banned",
                        Outcome::Denied,
                        &["document:a#banned@user:x[expiration:2029-01-01T00:00:00Z]"],
                        vec![],
                    ),
                ],
            )],
        );
        let expected: Tuple = "document:a#viewer@user:x[expiration:2030-01-01T00:00:00Z]"
            .parse()
            .unwrap();
        assert_eq!(earliest_expiration(&trace), expected.expiration);
        assert!(expected.expiration.is_some());
    }

    #[test]
    fn operator_nodes_are_lifted_into_their_resource_node() {
        let trace = node(
            "document:a#view",
            Outcome::Allowed,
            &[],
            vec![node(
                "union",
                Outcome::Allowed,
                &[],
                vec![node("document:{a,b}#viewer", Outcome::Allowed, &[], vec![])],
            )],
        );
        let subject = "document:a#viewer@user:x".parse::<Tuple>().unwrap().subject;
        let info = debug_information(&trace, &Schema::default(), "schema", &subject);
        let root = info.check.unwrap();
        assert_eq!(root.permission, "view");
        let Some(Resolution::SubProblems(sub)) = root.resolution else {
            panic!("no sub-problems");
        };
        assert_eq!(sub.traces.len(), 1);
        assert_eq!(sub.traces[0].resource.as_ref().unwrap().object_id, "a,b");
        assert_eq!(sub.traces[0].result, Permissionship::HasPermission as i32);
    }
}
