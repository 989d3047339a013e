//! How client results look: text lines for people and scripts, JSON
//! objects for `--json`.

use serde_json::{json, Value};

use super::parse::{relationship_text, subject_text};
use crate::api::pb;

/// `ALLOWED`, `DENIED`, `CONDITIONAL` (or `UNSPECIFIED`).
pub fn permissionship_name(p: i32) -> &'static str {
    match pb::Permissionship::try_from(p) {
        Ok(pb::Permissionship::Allowed) => "ALLOWED",
        Ok(pb::Permissionship::Denied) => "DENIED",
        Ok(pb::Permissionship::Conditional) => "CONDITIONAL",
        _ => "UNSPECIFIED",
    }
}

/// A zookie's token, or `""`.
pub fn token(z: Option<&pb::Zookie>) -> &str {
    z.map_or("", |z| z.token.as_str())
}

/// The result line of a check: `ALLOWED`, `DENIED` or
/// `CONDITIONAL (missing: a, b)`.
pub fn check_line(permissionship: i32, missing: &[String]) -> String {
    let name = permissionship_name(permissionship);
    if name == "CONDITIONAL" && !missing.is_empty() {
        format!("{name} (missing: {})", missing.join(", "))
    } else {
        name.to_string()
    }
}

/// `--json` for a check.
pub fn check_json(r: &pb::CheckResponse, with_trace: bool) -> Value {
    let mut v = json!({
        "result": permissionship_name(r.permissionship),
        "zookie": token(r.checked_at.as_ref()),
        "missing": r.missing_fields,
    });
    if let (true, Some(object)) = (with_trace, v.as_object_mut()) {
        object.insert("trace".into(), Value::String(r.trace.clone()));
    }
    v
}

/// The line of one bulk-check item: a check line, or
/// `ERROR <CODE>: <message>`.
pub fn bulk_line(result: &pb::BulkCheckResult) -> String {
    match &result.response {
        Some(pb::bulk_check_result::Response::Item(r)) => {
            check_line(r.permissionship, &r.missing_fields)
        }
        Some(pb::bulk_check_result::Response::Error(e)) => format!(
            "ERROR {}: {}",
            super::client::code_name(tonic::Code::from_i32(e.code)),
            e.message
        ),
        None => "ERROR UNKNOWN: empty result".to_string(),
    }
}

/// `--json` for one bulk-check item.
pub fn bulk_json(tuple: &str, result: &pb::BulkCheckResult, zookie: &str) -> Value {
    match &result.response {
        Some(pb::bulk_check_result::Response::Item(r)) => json!({
            "check": tuple,
            "result": permissionship_name(r.permissionship),
            "missing": r.missing_fields,
            "zookie": zookie,
        }),
        Some(pb::bulk_check_result::Response::Error(e)) => json!({
            "check": tuple,
            "error": {
                "code": super::client::code_name(tonic::Code::from_i32(e.code)),
                "message": e.message,
            },
        }),
        None => json!({"check": tuple, "error": {"code": "UNKNOWN", "message": "empty result"}}),
    }
}

fn node_label(node: &pb::ExpandNode) -> String {
    let object = node.object.as_ref().map_or_else(String::new, |o| {
        format!("{}:{}", o.object_type, o.object_id)
    });
    format!("{object}#{}", node.relation)
}

/// An expand tree, one node per line, children indented by two spaces:
/// operators as `union|intersection|exclusion type:id#rel` (just the
/// operator when nested inside one permission), leaves as `type:id#rel`
/// with their subjects below, cycles as `cycle type:id#rel`.
pub fn expand_lines(node: &pb::ExpandNode) -> Vec<String> {
    let mut lines = Vec::new();
    expand_into(node, 0, &mut lines);
    lines
}

fn expand_into(node: &pb::ExpandNode, depth: usize, lines: &mut Vec<String>) {
    use pb::expand_node::Kind;
    let indent = "  ".repeat(depth);
    let label = node_label(node);
    let op = match Kind::try_from(node.kind) {
        Ok(Kind::Union) => Some("union"),
        Ok(Kind::Intersection) => Some("intersection"),
        Ok(Kind::Exclusion) => Some("exclusion"),
        Ok(Kind::Cycle) => Some("cycle"),
        Ok(Kind::Leaf | Kind::Unspecified) | Err(_) => None,
    };
    // Nested operators of one permission carry no relation of their own.
    match (op, node.relation.is_empty()) {
        (Some(op), true) => lines.push(format!("{indent}{op}")),
        (Some(op), false) => lines.push(format!("{indent}{op} {label}")),
        (None, _) => lines.push(format!("{indent}{label}")),
    }
    for subject in &node.subjects {
        lines.push(format!("{indent}  {}", subject_text(subject)));
    }
    for child in &node.children {
        expand_into(child, depth + 1, lines);
    }
}

/// `--json` for an expand tree (nested objects).
pub fn expand_json(node: &pb::ExpandNode) -> Value {
    use pb::expand_node::Kind;
    let kind = match Kind::try_from(node.kind) {
        Ok(Kind::Leaf) => "leaf",
        Ok(Kind::Union) => "union",
        Ok(Kind::Intersection) => "intersection",
        Ok(Kind::Exclusion) => "exclusion",
        Ok(Kind::Cycle) => "cycle",
        Ok(Kind::Unspecified) | Err(_) => "unspecified",
    };
    json!({
        "node": node_label(node),
        "kind": kind,
        "subjects": node.subjects.iter().map(subject_text).collect::<Vec<_>>(),
        "children": node.children.iter().map(expand_json).collect::<Vec<_>>(),
    })
}

/// A lookup-resources line: the id, or `id (CONDITIONAL, missing: a, b)`.
pub fn lookup_resource_line(r: &pb::LookupResourcesResponse) -> String {
    conditional_suffix(&r.resource_id, r.permissionship, &r.missing_fields)
}

fn conditional_suffix(id: &str, permissionship: i32, missing: &[String]) -> String {
    if permissionship_name(permissionship) == "CONDITIONAL" {
        if missing.is_empty() {
            format!("{id} (CONDITIONAL)")
        } else {
            format!("{id} (CONDITIONAL, missing: {})", missing.join(", "))
        }
    } else {
        id.to_string()
    }
}

/// `--json` for a lookup-resources result.
pub fn lookup_resource_json(r: &pb::LookupResourcesResponse) -> Value {
    json!({
        "resource_id": r.resource_id,
        "result": permissionship_name(r.permissionship),
        "missing": r.missing_fields,
        "zookie": token(r.looked_up_at.as_ref()),
    })
}

/// A lookup-subjects result: the id (as for resources), and for the
/// wildcard `*` a second line `  excluding: a, b` when it excludes any.
pub fn lookup_subject_lines(r: &pb::LookupSubjectsResponse) -> Vec<String> {
    let mut lines = vec![conditional_suffix(
        &r.subject_id,
        r.permissionship,
        &r.missing_fields,
    )];
    if !r.excluded_subject_ids.is_empty() {
        lines.push(format!(
            "  excluding: {}",
            r.excluded_subject_ids.join(", ")
        ));
    }
    lines
}

/// `--json` for a lookup-subjects result.
pub fn lookup_subject_json(r: &pb::LookupSubjectsResponse) -> Value {
    json!({
        "subject_id": r.subject_id,
        "result": permissionship_name(r.permissionship),
        "missing": r.missing_fields,
        "excluded": r.excluded_subject_ids,
        "zookie": token(r.looked_up_at.as_ref()),
    })
}

/// `CREATE`, `TOUCH`, `DELETE`.
pub fn operation_name(op: i32) -> &'static str {
    use pb::relationship_change::Operation;
    match Operation::try_from(op) {
        Ok(Operation::Create) => "CREATE",
        Ok(Operation::Touch) => "TOUCH",
        Ok(Operation::Delete) => "DELETE",
        Ok(Operation::Unspecified) | Err(_) => "UNSPECIFIED",
    }
}

fn change_tuple(c: &pb::RelationshipChange) -> String {
    c.relationship
        .as_ref()
        .map(relationship_text)
        .unwrap_or_default()
}

/// A watch line: `<OPERATION> <tuple>`.
pub fn watch_line(c: &pb::RelationshipChange) -> String {
    format!("{} {}", operation_name(c.operation), change_tuple(c))
}

/// `--json` for one change.
pub fn watch_json(c: &pb::RelationshipChange, zookie: &str) -> Value {
    json!({
        "zookie": zookie,
        "operation": operation_name(c.operation),
        "tuple": change_tuple(c),
        "event_id": c.event_id,
    })
}

/// `--json` for a checkpoint.
pub fn checkpoint_json(zookie: &str) -> Value {
    json!({"checkpoint": true, "zookie": zookie})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(t: &str, id: &str) -> Option<pb::ObjectRef> {
        Some(pb::ObjectRef {
            object_type: t.into(),
            object_id: id.into(),
        })
    }

    fn subject(t: &str, id: &str, rel: &str) -> pb::SubjectRef {
        pb::SubjectRef {
            object: object(t, id),
            optional_relation: rel.into(),
        }
    }

    #[test]
    fn check_lines() {
        assert_eq!(
            check_line(pb::Permissionship::Allowed as i32, &[]),
            "ALLOWED"
        );
        assert_eq!(check_line(pb::Permissionship::Denied as i32, &[]), "DENIED");
        assert_eq!(
            check_line(
                pb::Permissionship::Conditional as i32,
                &["ip".into(), "now".into()]
            ),
            "CONDITIONAL (missing: ip, now)"
        );
        let r = pb::CheckResponse {
            permissionship: pb::Permissionship::Conditional as i32,
            missing_fields: vec!["ip".into()],
            checked_at: Some(pb::Zookie { token: "z1".into() }),
            trace: "t".into(),
            ..pb::CheckResponse::default()
        };
        assert_eq!(
            check_json(&r, false),
            json!({"result": "CONDITIONAL", "zookie": "z1", "missing": ["ip"]})
        );
        assert_eq!(check_json(&r, true)["trace"], "t");
    }

    #[test]
    fn bulk_lines() {
        let ok = pb::BulkCheckResult {
            response: Some(pb::bulk_check_result::Response::Item(pb::CheckResponse {
                permissionship: pb::Permissionship::Allowed as i32,
                ..pb::CheckResponse::default()
            })),
        };
        assert_eq!(bulk_line(&ok), "ALLOWED");
        let err = pb::BulkCheckResult {
            response: Some(pb::bulk_check_result::Response::Error(pb::BulkCheckError {
                code: tonic::Code::InvalidArgument as i32,
                message: "unknown relation".into(),
            })),
        };
        assert_eq!(bulk_line(&err), "ERROR INVALID_ARGUMENT: unknown relation");
        assert_eq!(
            bulk_json("d:1#v@u:a", &err, "z")["error"]["code"],
            "INVALID_ARGUMENT"
        );
    }

    #[test]
    fn expand_tree_is_indented() {
        use pb::expand_node::Kind;
        let leaf = |rel: &str, subjects: Vec<pb::SubjectRef>| pb::ExpandNode {
            object: object("document", "readme"),
            relation: rel.into(),
            kind: Kind::Leaf as i32,
            children: vec![],
            subjects,
        };
        let tree = pb::ExpandNode {
            object: object("document", "readme"),
            relation: "view".into(),
            kind: Kind::Exclusion as i32,
            children: vec![
                pb::ExpandNode {
                    object: object("document", "readme"),
                    relation: String::new(),
                    kind: Kind::Union as i32,
                    children: vec![
                        leaf(
                            "viewer",
                            vec![
                                subject("user", "alice", ""),
                                subject("group", "eng", "member"),
                            ],
                        ),
                        leaf("editor", vec![]),
                    ],
                    subjects: vec![],
                },
                leaf("banned", vec![subject("user", "*", "")]),
            ],
            subjects: vec![],
        };
        assert_eq!(
            expand_lines(&tree).join("\n"),
            "exclusion document:readme#view\n\
             \x20 union\n\
             \x20   document:readme#viewer\n\
             \x20     user:alice\n\
             \x20     group:eng#member\n\
             \x20   document:readme#editor\n\
             \x20 document:readme#banned\n\
             \x20   user:*"
        );
        let j = expand_json(&tree);
        assert_eq!(j["kind"], "exclusion");
        assert_eq!(j["children"][1]["subjects"][0], "user:*");
    }

    #[test]
    fn lookup_lines() {
        let r = pb::LookupResourcesResponse {
            resource_id: "readme".into(),
            permissionship: pb::Permissionship::Allowed as i32,
            ..pb::LookupResourcesResponse::default()
        };
        assert_eq!(lookup_resource_line(&r), "readme");
        let r = pb::LookupResourcesResponse {
            resource_id: "plan".into(),
            permissionship: pb::Permissionship::Conditional as i32,
            missing_fields: vec!["ip".into()],
            ..pb::LookupResourcesResponse::default()
        };
        assert_eq!(lookup_resource_line(&r), "plan (CONDITIONAL, missing: ip)");
        let s = pb::LookupSubjectsResponse {
            subject_id: "*".into(),
            permissionship: pb::Permissionship::Allowed as i32,
            excluded_subject_ids: vec!["bob".into(), "mallory".into()],
            ..pb::LookupSubjectsResponse::default()
        };
        assert_eq!(
            lookup_subject_lines(&s),
            vec!["*", "  excluding: bob, mallory"]
        );
        assert_eq!(lookup_subject_json(&s)["excluded"][1], "mallory");
    }

    #[test]
    fn watch_lines() {
        let c = pb::RelationshipChange {
            operation: pb::relationship_change::Operation::Touch as i32,
            relationship: Some(pb::Relationship {
                resource: object("document", "readme"),
                relation: "viewer".into(),
                subject: Some(subject("user", "alice", "")),
                optional_caveat: None,
                optional_expires_at: None,
            }),
            event_id: "7.0".into(),
        };
        assert_eq!(watch_line(&c), "TOUCH document:readme#viewer@user:alice");
        assert_eq!(
            watch_json(&c, "z7"),
            json!({"zookie": "z7", "operation": "TOUCH",
                   "tuple": "document:readme#viewer@user:alice", "event_id": "7.0"})
        );
        assert_eq!(
            checkpoint_json("z8"),
            json!({"checkpoint": true, "zookie": "z8"})
        );
    }
}
