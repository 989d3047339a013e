//! Parsers for what the client verbs take on the command line: tuples,
//! filters, objects and subjects, consistency and context.

use verdict_storage::Tuple;

use crate::api::convert;
use crate::api::pb;

/// A consistency flag: `full`, `minimize-latency`, `at-least:ZOOKIE` or
/// `exact:ZOOKIE` (the proto's long names are accepted too).
///
/// # Errors
/// An unknown mode or an empty zookie.
pub fn parse_consistency(s: &str) -> Result<pb::Consistency, String> {
    use pb::consistency::Requirement;
    let zookie = |token: &str| -> Result<pb::Zookie, String> {
        if token.trim().is_empty() {
            Err(format!("`{s}`: the zookie is empty"))
        } else {
            Ok(pb::Zookie {
                token: token.trim().to_string(),
            })
        }
    };
    let requirement = match s {
        "full" | "fully-consistent" | "fully_consistent" => Requirement::FullyConsistent(true),
        "minimize-latency" | "minimize_latency" => Requirement::MinimizeLatency(true),
        _ => match s.split_once(':') {
            Some(("at-least" | "at-least-as-fresh" | "at_least_as_fresh", z)) => {
                Requirement::AtLeastAsFresh(zookie(z)?)
            }
            Some(("exact" | "at-exact-snapshot" | "at_exact_snapshot", z)) => {
                Requirement::AtExactSnapshot(zookie(z)?)
            }
            _ => {
                return Err(format!(
                    "`{s}`: expected full, minimize-latency, at-least:ZOOKIE or exact:ZOOKIE"
                ))
            }
        },
    };
    Ok(pb::Consistency {
        requirement: Some(requirement),
    })
}

/// A `--context` value: a JSON object.
///
/// # Errors
/// Not JSON, or not an object.
pub fn parse_context(s: &str) -> Result<prost_types::Struct, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(map)) => Ok(convert::json_to_struct(&map)),
        Ok(_) => Err("must be a JSON object, e.g. '{\"ip\": \"10.0.0.1\"}'".into()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// A relationship in the text form
/// (`res:id#rel@subj:id[#rel][caveat:{json}][expiration:...]`).
///
/// # Errors
/// What is wrong with it.
pub fn parse_relationship(s: &str) -> Result<pb::Relationship, String> {
    let tuple = Tuple::parse(s.trim()).map_err(|e| format!("invalid tuple `{s}`: {e}"))?;
    Ok(convert::tuple_to_pb(&tuple))
}

/// A check question: `res:id#permission@subj:id[#rel]`.
///
/// # Errors
/// Malformed, or it carries a caveat or expiration (use `--context`).
pub fn parse_check(s: &str) -> Result<(pb::ObjectRef, String, pb::SubjectRef), String> {
    let tuple = Tuple::parse(s.trim()).map_err(|e| format!("invalid tuple `{s}`: {e}"))?;
    if tuple.caveat.is_some() || tuple.expiration.is_some() {
        return Err(format!(
            "invalid tuple `{s}`: a check takes no caveat or expiration (pass --context instead)"
        ));
    }
    Ok((
        convert::object_to_pb(&tuple.resource),
        tuple.relation,
        convert::subject_to_pb(&tuple.subject),
    ))
}

/// An object: `type:id`.
///
/// # Errors
/// Malformed.
pub fn parse_object(s: &str) -> Result<pb::ObjectRef, String> {
    if s.contains(['#', '[']) || !s.contains(':') {
        return Err(format!("invalid object `{s}`: expected `type:id`"));
    }
    let tuple = Tuple::parse(&format!("{s}#placeholder@placeholder:x"))
        .map_err(|e| format!("invalid object `{s}`: {e}"))?;
    Ok(convert::object_to_pb(&tuple.resource))
}

/// `type:id#permission` (expand's argument).
///
/// # Errors
/// Malformed.
pub fn parse_object_relation(s: &str) -> Result<(pb::ObjectRef, String), String> {
    let Some((object, relation)) = s.split_once('#') else {
        return Err(format!("invalid `{s}`: expected `type:id#permission`"));
    };
    let tuple = Tuple::parse(&format!("{object}#{relation}@placeholder:x"))
        .map_err(|e| format!("invalid `{s}`: {e}"))?;
    Ok((convert::object_to_pb(&tuple.resource), tuple.relation))
}

/// A subject: `type:id` or `type:id#relation`.
///
/// # Errors
/// Malformed.
pub fn parse_subject(s: &str) -> Result<pb::SubjectRef, String> {
    if s.contains('[') {
        return Err(format!(
            "invalid subject `{s}`: expected `type:id[#relation]`"
        ));
    }
    let tuple = Tuple::parse(&format!("placeholder:x#placeholder@{s}"))
        .map_err(|e| format!("invalid subject `{s}`: {e}"))?;
    Ok(convert::subject_to_pb(&tuple.subject))
}

/// `SUBJECT_TYPE[#RELATION]` (lookup-subjects); `#...` is a direct subject.
///
/// # Errors
/// Malformed.
pub fn parse_subject_type(s: &str) -> Result<(String, String), String> {
    let (ty, rel) = match s.split_once('#') {
        Some((ty, rel)) => (ty, rel),
        None => (s, ""),
    };
    let probe = if rel.is_empty() || rel == "..." {
        format!("placeholder:x#placeholder@{ty}:x")
    } else {
        format!("placeholder:x#placeholder@{ty}:x#{rel}")
    };
    let tuple = Tuple::parse(&probe).map_err(|e| format!("invalid subject type `{s}`: {e}"))?;
    Ok((
        tuple.subject.object.object_type,
        tuple.subject.relation.unwrap_or_default(),
    ))
}

/// Whether `s` starts with something that can only be a subject filter:
/// a type followed by `:`, `#` or the end.
fn starts_with_type(s: &str) -> bool {
    let end = s
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '/'))
        .unwrap_or(s.len());
    end > 0 && matches!(s[end..].chars().next(), None | Some(':' | '#'))
}

/// Splits a filter at the `@` that starts the subject. Object ids may
/// contain `@` themselves, so the separator is the first `@` followed by a
/// type (ids can hold neither `:` nor `#`).
fn split_filter(s: &str) -> (&str, Option<&str>) {
    for (i, _) in s.match_indices('@') {
        let subject = &s[i + 1..];
        if starts_with_type(subject) {
            return (&s[..i], Some(subject));
        }
    }
    (s, None)
}

/// A relationship filter:
/// `TYPE[:ID][#RELATION][@SUBJECT_TYPE[:SUBJECT_ID][#SUBJECT_RELATION]]`.
///
/// `ID` ending in `*` is a prefix (`document:2024-*`); a subject id `*`
/// addresses wildcard tuples; `#...` as the subject relation selects
/// direct subjects only.
///
/// # Errors
/// Malformed; the message names the part.
pub fn parse_filter(s: &str) -> Result<pb::RelationshipFilter, String> {
    let bad = |why: &str| format!("invalid filter `{s}`: {why}");
    let (resource, subject) = split_filter(s.trim());
    let (object, relation) = match resource.split_once('#') {
        Some((o, "")) => return Err(bad(&format!("empty relation in `{o}#`"))),
        Some((o, r)) => (o, r),
        None => (resource, ""),
    };
    let (resource_type, resource_id) = match object.split_once(':') {
        Some((_, "")) => return Err(bad("empty resource id after `:`")),
        Some((t, id)) => (t, id),
        None => (object, ""),
    };
    if resource_type.is_empty() {
        return Err(bad("expected TYPE[:ID][#RELATION][@SUBJECT]"));
    }
    let mut filter = pb::RelationshipFilter {
        resource_type: resource_type.to_string(),
        optional_relation: relation.to_string(),
        ..pb::RelationshipFilter::default()
    };
    if resource_id == "*" {
        return Err(bad(
            "a resource id cannot be `*` (omit the id to match every one)",
        ));
    }
    match resource_id.strip_suffix('*') {
        Some(prefix) => filter.optional_resource_id_prefix = prefix.to_string(),
        None => filter.optional_resource_id = resource_id.to_string(),
    }
    if let Some(subject) = subject {
        let (object, relation) = match subject.split_once('#') {
            Some((_, "")) => return Err(bad("empty subject relation after `#`")),
            Some((o, r)) => (o, Some(r)),
            None => (subject, None),
        };
        let (subject_type, subject_id) = match object.split_once(':') {
            Some((_, "")) => return Err(bad("empty subject id after `:`")),
            Some((t, id)) => (t, id),
            None => (object, ""),
        };
        filter.optional_subject_filter = Some(pb::SubjectFilter {
            subject_type: subject_type.to_string(),
            optional_subject_id: subject_id.to_string(),
            optional_relation: relation.map(|r| pb::RelationFilter {
                relation: if r == "..." {
                    String::new()
                } else {
                    r.to_string()
                },
            }),
        });
    }
    // The server's own validation, so both sides agree on what is valid.
    convert::filter_from_pb(&filter, "filter", false).map_err(|e| bad(&e.to_string()))?;
    Ok(filter)
}

/// The text form of a relationship as it came from the server (not
/// validated: print whatever the server sent).
pub fn relationship_text(r: &pb::Relationship) -> String {
    use verdict_storage::{ObjectRef, SubjectRef, Timestamp, TupleCaveat};
    let object = |o: Option<&pb::ObjectRef>| {
        o.map_or_else(
            || ObjectRef::new("", ""),
            |o| ObjectRef::new(&o.object_type, &o.object_id),
        )
    };
    let subject = r.subject.as_ref();
    let tuple = Tuple {
        resource: object(r.resource.as_ref()),
        relation: r.relation.clone(),
        subject: SubjectRef {
            object: object(subject.and_then(|s| s.object.as_ref())),
            relation: subject
                .map(|s| s.optional_relation.as_str())
                .filter(|rel| !rel.is_empty() && *rel != "...")
                .map(str::to_string),
        },
        caveat: r.optional_caveat.as_ref().map(|c| TupleCaveat {
            name: c.caveat_name.clone(),
            context: c
                .context
                .as_ref()
                .map(convert::struct_to_json)
                .unwrap_or_default(),
        }),
        expiration: r.optional_expires_at.as_ref().map(|t| Timestamp(t.seconds)),
    };
    tuple.to_string()
}

/// The text form of a subject from the server.
pub fn subject_text(s: &pb::SubjectRef) -> String {
    let mut text = match &s.object {
        Some(o) => format!("{}:{}", o.object_type, o.object_id),
        None => String::new(),
    };
    if !s.optional_relation.is_empty() && s.optional_relation != "..." {
        text.push('#');
        text.push_str(&s.optional_relation);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::consistency::Requirement;

    fn subject_filter(f: &pb::RelationshipFilter) -> &pb::SubjectFilter {
        f.optional_subject_filter.as_ref().unwrap()
    }

    #[test]
    fn filter_forms() {
        let f = parse_filter("document").unwrap();
        assert_eq!(f.resource_type, "document");
        assert!(f.optional_resource_id.is_empty() && f.optional_relation.is_empty());
        assert!(f.optional_subject_filter.is_none());

        let f = parse_filter("document:readme#viewer").unwrap();
        assert_eq!(
            (
                f.optional_resource_id.as_str(),
                f.optional_relation.as_str()
            ),
            ("readme", "viewer")
        );

        let f = parse_filter("document#viewer@user").unwrap();
        assert_eq!(f.optional_relation, "viewer");
        let s = subject_filter(&f);
        assert_eq!(s.subject_type, "user");
        assert!(s.optional_subject_id.is_empty() && s.optional_relation.is_none());

        let f = parse_filter("document:readme@group:eng#member").unwrap();
        assert_eq!(f.optional_resource_id, "readme");
        assert!(f.optional_relation.is_empty());
        let s = subject_filter(&f);
        assert_eq!(
            (s.subject_type.as_str(), s.optional_subject_id.as_str()),
            ("group", "eng")
        );
        assert_eq!(s.optional_relation.as_ref().unwrap().relation, "member");

        let f = parse_filter("document@user:*").unwrap();
        assert_eq!(subject_filter(&f).optional_subject_id, "*");

        let f = parse_filter("document@user#...").unwrap();
        assert_eq!(
            subject_filter(&f)
                .optional_relation
                .as_ref()
                .unwrap()
                .relation,
            ""
        );

        let f = parse_filter("document:2024-*").unwrap();
        assert_eq!(f.optional_resource_id_prefix, "2024-");
        assert!(f.optional_resource_id.is_empty());

        let f = parse_filter("team/document:plan").unwrap();
        assert_eq!(f.resource_type, "team/document");
    }

    #[test]
    fn filter_ids_may_contain_at_signs() {
        let f = parse_filter("user_email:alice@example.com#owner").unwrap();
        assert_eq!(f.optional_resource_id, "alice@example.com");
        assert!(f.optional_subject_filter.is_none());

        let f = parse_filter("doc:x@user:alice@example.com").unwrap();
        assert_eq!(f.optional_resource_id, "x");
        assert_eq!(subject_filter(&f).optional_subject_id, "alice@example.com");
    }

    #[test]
    fn bad_filters_name_the_problem() {
        for (bad, needle) in [
            ("", "expected TYPE"),
            (":x", "expected TYPE"),
            ("Document", "filter"),
            ("document:", "empty resource id"),
            ("document#", "empty relation"),
            ("document@user:", "empty subject id"),
            ("document@user#", "empty subject relation"),
            ("document:a b", "filter"),
            ("document:*", "cannot be `*`"),
        ] {
            let err = parse_filter(bad).unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
            assert!(err.contains("invalid filter"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn consistency_modes() {
        let c = |s| parse_consistency(s).unwrap().requirement.unwrap();
        assert_eq!(c("full"), Requirement::FullyConsistent(true));
        assert_eq!(c("minimize-latency"), Requirement::MinimizeLatency(true));
        assert_eq!(
            c("at-least:abc=="),
            Requirement::AtLeastAsFresh(pb::Zookie {
                token: "abc==".into()
            })
        );
        // Tokens may themselves contain `:`.
        assert_eq!(
            c("exact:v1:xyz"),
            Requirement::AtExactSnapshot(pb::Zookie {
                token: "v1:xyz".into()
            })
        );
        assert!(parse_consistency("at-least:").is_err());
        assert!(parse_consistency("fresh").is_err());
        assert!(parse_consistency("latest:x").is_err());
    }

    #[test]
    fn context_must_be_an_object() {
        let s = parse_context(r#"{"ip": "10.0.0.1", "n": 3}"#).unwrap();
        assert_eq!(s.fields.len(), 2);
        assert!(parse_context("[1]").unwrap_err().contains("JSON object"));
        assert!(parse_context("{").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn tuples_subjects_and_objects() {
        let r = parse_relationship(r#"doc:1#viewer@group:eng#member[cav:{"n":1}]"#).unwrap();
        assert_eq!(
            relationship_text(&r),
            r#"doc:1#viewer@group:eng#member[cav:{"n":1}]"#
        );
        assert!(parse_relationship("doc:1#viewer").is_err());

        let (res, perm, subj) = parse_check("document:readme#view@user:alice").unwrap();
        assert_eq!(res.object_id, "readme");
        assert_eq!(perm, "view");
        assert_eq!(subject_text(&subj), "user:alice");
        assert!(
            parse_check("doc:1#view@user:a[expiration:2300-01-01T00:00:00Z]")
                .unwrap_err()
                .contains("--context")
        );

        assert_eq!(
            subject_text(&parse_subject("group:eng#member").unwrap()),
            "group:eng#member"
        );
        assert!(parse_subject("group").is_err());
        assert_eq!(
            parse_object("document:readme").unwrap().object_type,
            "document"
        );
        assert!(parse_object("document").is_err());
        assert!(parse_object("document:a#b").is_err());
        let (o, p) = parse_object_relation("document:readme#view").unwrap();
        assert_eq!((o.object_id.as_str(), p.as_str()), ("readme", "view"));
        assert!(parse_object_relation("document:readme").is_err());
        assert_eq!(
            parse_subject_type("group#member").unwrap(),
            ("group".to_string(), "member".to_string())
        );
        assert_eq!(
            parse_subject_type("user").unwrap(),
            ("user".to_string(), String::new())
        );
        assert!(parse_subject_type("User").is_err());
    }
}
