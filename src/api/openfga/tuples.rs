//! OpenFGA's `type:id` strings ⇄ Verdict's objects, subjects and tuples,
//! validated as OpenFGA validates them (the field is named in the error).

use verdict_storage::{ObjectRef, SubjectRef, Tuple, WILDCARD};

use super::error::{FgaError, FgaResult};
use super::model::{public_relation, Model};
use super::pb;

/// Longest object OpenFGA accepts (bytes).
pub const MAX_OBJECT_BYTES: usize = 256;
/// Longest user OpenFGA accepts (bytes).
pub const MAX_USER_BYTES: usize = 512;

/// `type:id` as an object.
///
/// # Errors
/// Not `type:id`, or too long: `validation_error` naming `field`.
pub fn object(s: &str, field: &str) -> FgaResult<ObjectRef> {
    if s.len() > MAX_OBJECT_BYTES {
        return Err(FgaError::field(
            field,
            format!("value length must be at most {MAX_OBJECT_BYTES} bytes"),
        ));
    }
    match s.split_once(':') {
        Some((ty, id))
            if !ty.is_empty()
                && !id.is_empty()
                && !s.contains('#')
                && !s.contains(char::is_whitespace)
                && !id.contains(':') =>
        {
            Ok(ObjectRef::new(ty, id))
        }
        _ => Err(FgaError::validation(format!(
            "invalid '{field}' field format: `{s}` is not `type:id`"
        ))),
    }
}

/// `type:id`, `type:id#relation` or `type:*` as a subject.
///
/// # Errors
/// Another shape, or too long: `validation_error` naming `field`.
pub fn user(s: &str, field: &str) -> FgaResult<SubjectRef> {
    if s.len() > MAX_USER_BYTES {
        return Err(FgaError::field(
            field,
            format!("value length must be at most {MAX_USER_BYTES} bytes"),
        ));
    }
    let bad = || {
        FgaError::validation(format!(
            "invalid '{field}' field format: `{s}` is not `type:id`, `type:id#relation` or `type:*`"
        ))
    };
    let (obj, relation) = match s.split_once('#') {
        Some((o, r)) if !r.is_empty() && !r.contains(['#', ':']) => (o, Some(r)),
        Some(_) => return Err(bad()),
        None => (s, None),
    };
    let (ty, id) = obj.split_once(':').ok_or_else(bad)?;
    if ty.is_empty() || id.is_empty() || id.contains(':') || s.contains(char::is_whitespace) {
        return Err(bad());
    }
    if id == WILDCARD && relation.is_some() {
        return Err(bad());
    }
    Ok(SubjectRef {
        object: ObjectRef::new(ty, id),
        relation: relation.map(str::to_string),
    })
}

/// A subject as OpenFGA writes a user.
pub fn user_text(s: &SubjectRef) -> String {
    match &s.relation {
        Some(r) => format!(
            "{}:{}#{}",
            s.object.object_type,
            s.object.object_id,
            public_relation(r)
        ),
        None => format!("{}:{}", s.object.object_type, s.object.object_id),
    }
}

/// A stored tuple as OpenFGA's key.
pub fn key_of(t: &Tuple) -> pb::TupleKey {
    pb::TupleKey {
        user: user_text(&t.subject),
        relation: public_relation(&t.relation).to_string(),
        object: format!("{}:{}", t.resource.object_type, t.resource.object_id),
        condition: None,
    }
}

fn tuple_text(user: &str, relation: &str, object: &str) -> String {
    format!("{object}#{relation}@{user}")
}

fn invalid(user: &str, relation: &str, object: &str, reason: String) -> FgaError {
    FgaError::validation(format!(
        "Invalid tuple '{}'. Reason: {reason}",
        tuple_text(user, relation, object)
    ))
}

/// A tuple to write, checked against `model`'s types, relations and type
/// restrictions, with its relation routed to where direct tuples are kept.
///
/// # Errors
/// `validation_error` ("Invalid tuple … Reason: …").
pub fn for_write(model: &Model, key: &pb::TupleKey, field: &str) -> FgaResult<Tuple> {
    if key.condition.as_ref().is_some_and(|c| !c.name.is_empty()) {
        return Err(FgaError::field(
            &format!("{field}.condition"),
            "conditions on tuples are not supported by Verdict yet",
        ));
    }
    let (u, r, o) = (&key.user, &key.relation, &key.object);
    let resource = object(o, "object")?;
    let subject = user(u, "user")?;
    let ty = &resource.object_type;
    if model.type_def(ty).is_none() {
        return Err(invalid(u, r, o, format!("type '{ty}' not found")));
    }
    if !model.has_relation(ty, r) {
        return Err(invalid(u, r, o, format!("relation '{ty}#{r}' not found")));
    }
    if subject.relation.as_deref() == Some(r.as_str()) && subject.object == resource {
        return Err(invalid(
            u,
            r,
            o,
            "cannot write a tuple that is implicit (an object's relation to itself)".into(),
        ));
    }
    let Some(stored) = model.stored_relation(ty, r) else {
        return Err(invalid(
            u,
            r,
            o,
            format!("relation '{ty}#{r}' is not directly assignable"),
        ));
    };
    use pb::relation_reference::RelationOrWildcard as R;
    let ut = &subject.object.object_type;
    let fits = model.allowed(ty, r).iter().any(|a| {
        a.r#type == *ut
            && match (&a.relation_or_wildcard, &subject.relation) {
                (Some(R::Wildcard(_)), None) => subject.is_wildcard(),
                (None, None) => !subject.is_wildcard(),
                (Some(R::Relation(ar)), Some(sr)) => ar == sr,
                _ => false,
            }
    });
    if !fits {
        let what = match (&subject.relation, subject.is_wildcard()) {
            (Some(sr), _) => format!("{ut}#{sr}"),
            (None, true) => format!("{ut}:*"),
            (None, false) => ut.clone(),
        };
        return Err(invalid(
            u,
            r,
            o,
            format!("type '{what}' is not an allowed type restriction for '{ty}#{r}'"),
        ));
    }
    Ok(Tuple {
        resource,
        relation: stored.to_string(),
        subject,
        caveat: None,
        expiration: None,
    })
}

/// A tuple to delete: its shape is checked, its relation routed through
/// `model` when the model still has it (tuples an older model allowed can
/// still be deleted).
///
/// # Errors
/// `validation_error` for a malformed user or object.
pub fn for_delete(model: &Model, key: &pb::TupleKeyWithoutCondition) -> FgaResult<Tuple> {
    let resource = object(&key.object, "object")?;
    let subject = user(&key.user, "user")?;
    if key.relation.is_empty() {
        return Err(FgaError::field("relation", "value is required"));
    }
    let relation = model
        .stored_relation(&resource.object_type, &key.relation)
        .unwrap_or(&key.relation)
        .to_string();
    Ok(Tuple {
        resource,
        relation,
        subject,
        caveat: None,
        expiration: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_objects_parse_as_openfga_writes_them() {
        assert_eq!(
            object("doc:1", "object").unwrap(),
            ObjectRef::new("doc", "1")
        );
        assert_eq!(object("doc:a/b|c", "object").unwrap().object_id, "a/b|c");
        for bad in ["doc", "doc:", ":1", "doc:1#x", "doc :1"] {
            assert_eq!(object(bad, "object").unwrap_err().code, 2000, "{bad}");
        }
        let u = user("group:eng#member", "user").unwrap();
        assert_eq!(u.relation.as_deref(), Some("member"));
        assert_eq!(user_text(&u), "group:eng#member");
        assert!(user("user:*", "user").unwrap().is_wildcard());
        for bad in ["user", "user:", "user:*#member", "group:eng#", "a:b:c"] {
            assert_eq!(user(bad, "user").unwrap_err().code, 2000, "{bad}");
        }
        let long = format!("doc:{}", "x".repeat(300));
        assert!(object(&long, "object").unwrap_err().message.contains("256"));
    }
}
