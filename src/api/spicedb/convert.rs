//! `authzed.api.v1` messages ⇄ domain types, with SpiceDB's request
//! validation (the protovalidate rules of the protos: object types, ids,
//! relation and caveat names) and its messages, naming the field.

use tonic::Code;
use verdict_storage::{
    IdFilter, ObjectRef, Revision, SubjectRef, SubjectRelationFilter, Timestamp, Tuple,
    TupleCaveat, TupleFilter, WILDCARD,
};

use super::error::{SpiceError, SpiceResult};
use super::pb;
use crate::engine::Outcome;
use crate::schema::ir::Schema;
use crate::server::consistency::Consistency;
use crate::zookie::{ZookieCodec, ZookieError};

/// SpiceDB's pattern for object types (`prefix/name` allowed).
pub const TYPE_PATTERN: &str = r"^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$";
/// SpiceDB's pattern for object ids.
pub const ID_PATTERN: &str = r"^(([a-zA-Z0-9/_|\-=+]{1,})|\*)$";
/// SpiceDB's pattern for relation and permission names.
pub const RELATION_PATTERN: &str = r"^[a-z][a-z0-9_]{1,62}[a-z0-9]$";
/// SpiceDB's pattern for caveat names.
pub const CAVEAT_PATTERN: &str = r"^([a-zA-Z0-9_][a-zA-Z0-9/_|-]{0,127})$";

fn no_match(field: &str, pattern: &str) -> SpiceError {
    SpiceError::validation(field, format!("does not match regex pattern `{pattern}`"))
}

/// `[a-z][a-z0-9_]{min_mid,max_mid}[a-z0-9]`.
fn is_name(s: &str, max_len: usize) -> bool {
    let b = s.as_bytes();
    if b.len() < 3 || b.len() > max_len {
        return false;
    }
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_lowercase()
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Checks an object type against [`TYPE_PATTERN`] (and at most 128 bytes).
pub fn validate_type(field: &str, s: &str) -> SpiceResult<()> {
    let mut parts = s.split('/').peekable();
    let mut ok = s.len() <= 128;
    while let Some(part) = parts.next() {
        let max = if parts.peek().is_some() { 63 } else { 64 };
        ok &= is_name(part, max);
    }
    if ok {
        Ok(())
    } else {
        Err(no_match(field, TYPE_PATTERN))
    }
}

/// Checks an object id against [`ID_PATTERN`] (and at most 1024 bytes).
pub fn validate_id(field: &str, s: &str) -> SpiceResult<()> {
    let ok = s == WILDCARD
        || (!s.is_empty()
            && s.len() <= 1024
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"/_|-=+".contains(&c)));
    if ok {
        Ok(())
    } else {
        Err(no_match(field, ID_PATTERN))
    }
}

/// Checks a relation or permission name against [`RELATION_PATTERN`];
/// empty is allowed when `optional`.
pub fn validate_relation(field: &str, s: &str, optional: bool) -> SpiceResult<()> {
    if (optional && s.is_empty()) || is_name(s, 64) {
        Ok(())
    } else if optional {
        Err(no_match(field, "^([a-z][a-z0-9_]{1,62}[a-z0-9])?$"))
    } else {
        Err(no_match(field, RELATION_PATTERN))
    }
}

/// Checks a caveat name against [`CAVEAT_PATTERN`].
pub fn validate_caveat_name(field: &str, s: &str) -> SpiceResult<()> {
    let b = s.as_bytes();
    let ok = b
        .first()
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"/_|-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(no_match(field, CAVEAT_PATTERN))
    }
}

/// A required message field.
pub fn required<'a, T>(value: Option<&'a T>, field: &str) -> SpiceResult<&'a T> {
    value.ok_or_else(|| SpiceError::validation(field, "value is required"))
}

/// `ObjectReference` → [`ObjectRef`], validated.
pub fn object_from_pb(o: Option<&pb::ObjectReference>, field: &str) -> SpiceResult<ObjectRef> {
    let o = required(o, field)?;
    validate_type(&format!("{field}.object_type"), &o.object_type)?;
    validate_id(&format!("{field}.object_id"), &o.object_id)?;
    Ok(ObjectRef::new(&o.object_type, &o.object_id))
}

/// `SubjectReference` → [`SubjectRef`], validated.
pub fn subject_from_pb(s: Option<&pb::SubjectReference>, field: &str) -> SpiceResult<SubjectRef> {
    let s = required(s, field)?;
    let object = object_from_pb(s.object.as_ref(), &format!("{field}.object"))?;
    validate_relation(
        &format!("{field}.optional_relation"),
        &s.optional_relation,
        true,
    )?;
    Ok(SubjectRef {
        object,
        relation: (!s.optional_relation.is_empty()).then(|| s.optional_relation.clone()),
    })
}

/// Refuses `*` as the id of a resource or subject that must be concrete.
pub fn refuse_wildcard(id: &str, what: &str) -> SpiceResult<()> {
    if id == WILDCARD {
        return Err(SpiceError::plain(
            Code::InvalidArgument,
            format!("invalid {what}.ObjectId: alphanumeric value is required"),
        ));
    }
    Ok(())
}

/// `Relationship` → a validated [`Tuple`].
pub fn relationship_from_pb(r: Option<&pb::Relationship>, field: &str) -> SpiceResult<Tuple> {
    let r = required(r, field)?;
    let resource = object_from_pb(r.resource.as_ref(), &format!("{field}.resource"))?;
    refuse_wildcard(&resource.object_id, "ObjectReference")?;
    validate_relation(&format!("{field}.relation"), &r.relation, false)?;
    let subject = subject_from_pb(r.subject.as_ref(), &format!("{field}.subject"))?;
    let caveat = match &r.optional_caveat {
        Some(c) if !c.caveat_name.is_empty() => {
            validate_caveat_name(
                &format!("{field}.optional_caveat.caveat_name"),
                &c.caveat_name,
            )?;
            Some(TupleCaveat {
                name: c.caveat_name.clone(),
                context: c.context.as_ref().map(struct_to_json).unwrap_or_default(),
            })
        }
        _ => None,
    };
    let tuple = Tuple {
        resource,
        relation: r.relation.clone(),
        subject,
        caveat,
        expiration: r.optional_expires_at.as_ref().map(|t| Timestamp(t.seconds)),
    };
    tuple
        .validate()
        .map_err(|e| SpiceError::validation(field, e))?;
    Ok(tuple)
}

/// [`ObjectRef`] → `ObjectReference`.
pub fn object_to_pb(o: &ObjectRef) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: o.object_type.clone(),
        object_id: o.object_id.clone(),
    }
}

/// [`SubjectRef`] → `SubjectReference`.
pub fn subject_to_pb(s: &SubjectRef) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(object_to_pb(&s.object)),
        optional_relation: s.relation.clone().unwrap_or_default(),
    }
}

/// [`Tuple`] → `Relationship` (no empty caveat message or context).
pub fn relationship_to_pb(t: &Tuple) -> pb::Relationship {
    pb::Relationship {
        resource: Some(object_to_pb(&t.resource)),
        relation: t.relation.clone(),
        subject: Some(subject_to_pb(&t.subject)),
        optional_caveat: t.caveat.as_ref().map(|c| pb::ContextualizedCaveat {
            caveat_name: c.name.clone(),
            context: (!c.context.is_empty()).then(|| json_to_struct(&c.context)),
        }),
        optional_expires_at: t.expiration.map(|e| prost_types::Timestamp {
            seconds: e.0,
            nanos: 0,
        }),
    }
}

/// `resource#relation@subject`, SpiceDB's text of a relationship's key.
pub fn relationship_key(t: &Tuple) -> String {
    format!("{}#{}@{}", t.resource, t.relation, t.subject)
}

/// The ZedToken of `revision` (a Verdict zookie).
pub fn zedtoken(zookies: &ZookieCodec, revision: Revision) -> pb::ZedToken {
    pb::ZedToken {
        token: zookies.encode(revision),
    }
}

/// `Consistency` → the node's [`Consistency`] (absent = minimize_latency).
/// A token of another cluster under `at_least_as_fresh` means
/// fully_consistent, as SpiceDB's default `--mismatch-zed-token-behavior`.
pub fn consistency_from_pb(
    c: Option<&pb::Consistency>,
    zookies: &ZookieCodec,
) -> SpiceResult<Consistency> {
    use pb::consistency::Requirement;
    Ok(match c.and_then(|c| c.requirement.as_ref()) {
        None | Some(Requirement::MinimizeLatency(_)) => Consistency::MinimizeLatency,
        Some(Requirement::FullyConsistent(_)) => Consistency::FullyConsistent,
        Some(Requirement::AtLeastAsFresh(z)) => match zookies.decode(&z.token) {
            Ok(r) => Consistency::AtLeastAsFresh(r),
            Err(ZookieError::ForeignCluster) => Consistency::FullyConsistent,
            Err(_) => return Err(SpiceError::bad_zedtoken()),
        },
        Some(Requirement::AtExactSnapshot(z)) => Consistency::AtExactSnapshot(
            zookies
                .decode(&z.token)
                .map_err(|_| SpiceError::bad_zedtoken())?,
        ),
    })
}

/// The prototext-like form of a filter SpiceDB puts in messages and metadata.
pub fn filter_text(f: &pb::RelationshipFilter) -> String {
    let mut parts = Vec::new();
    let mut field = |name: &str, value: &str| {
        if !value.is_empty() {
            parts.push(format!("{name}:{value:?}"));
        }
    };
    field("resource_type", &f.resource_type);
    field("optional_resource_id", &f.optional_resource_id);
    field("optional_relation", &f.optional_relation);
    let subject = f.optional_subject_filter.as_ref().map(|s| {
        let mut inner = Vec::new();
        if !s.subject_type.is_empty() {
            inner.push(format!("subject_type:{:?}", s.subject_type));
        }
        if !s.optional_subject_id.is_empty() {
            inner.push(format!("optional_subject_id:{:?}", s.optional_subject_id));
        }
        if let Some(r) = &s.optional_relation {
            inner.push(format!("optional_relation:{{relation:{:?}}}", r.relation));
        }
        format!("optional_subject_filter:{{{}}}", inner.join(" "))
    });
    field(
        "optional_resource_id_prefix",
        &f.optional_resource_id_prefix,
    );
    if let Some(s) = subject {
        parts.push(s);
    }
    parts.join(" ")
}

/// `RelationshipFilter` → [`TupleFilter`], with SpiceDB's rules: at least
/// one field, not both an id and an id prefix, every name well-formed.
pub fn filter_from_pb(f: Option<&pb::RelationshipFilter>, field: &str) -> SpiceResult<TupleFilter> {
    let Some(f) = f else {
        return Err(SpiceError::invalid_filter(
            "at least one field must be set",
            "",
        ));
    };
    let text = filter_text(f);
    if f.resource_type.is_empty()
        && f.optional_resource_id.is_empty()
        && f.optional_resource_id_prefix.is_empty()
        && f.optional_relation.is_empty()
        && f.optional_subject_filter.is_none()
    {
        return Err(SpiceError::invalid_filter(
            "at least one field must be set",
            &text,
        ));
    }
    if !f.optional_resource_id.is_empty() && !f.optional_resource_id_prefix.is_empty() {
        return Err(SpiceError::invalid_filter(
            "resource_id and resource_id_prefix cannot be set at the same time",
            &text,
        ));
    }
    let mut filter = TupleFilter::default();
    if !f.resource_type.is_empty() {
        validate_type(&format!("{field}.resource_type"), &f.resource_type)?;
        filter.resource_type = Some(f.resource_type.clone());
    }
    if !f.optional_resource_id.is_empty() {
        validate_id(
            &format!("{field}.optional_resource_id"),
            &f.optional_resource_id,
        )?;
        filter.resource_id = Some(IdFilter::Exact(f.optional_resource_id.clone()));
    } else if !f.optional_resource_id_prefix.is_empty() {
        validate_id(
            &format!("{field}.optional_resource_id_prefix"),
            &f.optional_resource_id_prefix,
        )?;
        filter.resource_id = Some(IdFilter::Prefix(f.optional_resource_id_prefix.clone()));
    }
    if !f.optional_relation.is_empty() {
        validate_relation(
            &format!("{field}.optional_relation"),
            &f.optional_relation,
            false,
        )?;
        filter.relation = Some(f.optional_relation.clone());
    }
    if let Some(s) = &f.optional_subject_filter {
        let sf = format!("{field}.optional_subject_filter");
        validate_type(&format!("{sf}.subject_type"), &s.subject_type)?;
        filter.subject_type = Some(s.subject_type.clone());
        if !s.optional_subject_id.is_empty() {
            validate_id(&format!("{sf}.optional_subject_id"), &s.optional_subject_id)?;
            filter.subject_id = Some(s.optional_subject_id.clone());
        }
        if let Some(r) = &s.optional_relation {
            validate_relation(
                &format!("{sf}.optional_relation.relation"),
                &r.relation,
                true,
            )?;
            filter.subject_relation = Some(if r.relation.is_empty() {
                SubjectRelationFilter::Direct
            } else {
                SubjectRelationFilter::Relation(r.relation.clone())
            });
        }
    }
    filter
        .validate()
        .map_err(|e| SpiceError::validation(field, e))?;
    Ok(filter)
}

/// Checks the names a filter uses against the schema, as SpiceDB does
/// before reading or deleting.
pub fn filter_against_schema(schema: &Schema, f: &TupleFilter) -> SpiceResult<()> {
    if let Some(t) = &f.resource_type {
        let def = schema
            .definition_named(t)
            .ok_or_else(|| SpiceError::unknown_definition(t))?;
        if let Some(r) = &f.relation {
            if def.relation_named(r).is_none() {
                return Err(SpiceError::unknown_relation(t, r));
            }
        }
    }
    if let Some(t) = &f.subject_type {
        let def = schema
            .definition_named(t)
            .ok_or_else(|| SpiceError::unknown_definition(t))?;
        if let Some(SubjectRelationFilter::Relation(r)) = &f.subject_relation {
            if def.relation_named(r).is_none() {
                return Err(SpiceError::unknown_relation(t, r));
            }
        }
    }
    Ok(())
}

/// [`filter_against_schema`] for ReadRelationships, which SpiceDB also
/// refuses on a permission (a permission holds no relationships);
/// DeleteRelationships and preconditions accept one and match nothing, as
/// in SpiceDB (found by tests/integration/spicedb_api_differential.rs).
pub fn read_filter_against_schema(schema: &Schema, f: &TupleFilter) -> SpiceResult<()> {
    filter_against_schema(schema, f)?;
    let (Some(t), Some(r)) = (&f.resource_type, &f.relation) else {
        return Ok(());
    };
    match schema.definition_named(t) {
        Some(def) if def.stored_relation(r).is_none() => Err(SpiceError::reasoned(
            Code::FailedPrecondition,
            pb::ErrorReason::SchemaTypeError,
            format!("relation `{r}` does not have type information"),
            &[],
        )),
        _ => Ok(()),
    }
}

/// `Precondition` → the storage precondition.
pub fn precondition_from_pb(
    p: &pb::Precondition,
    field: &str,
) -> SpiceResult<verdict_storage::Precondition> {
    use pb::precondition::Operation;
    let filter = filter_from_pb(p.filter.as_ref(), &format!("{field}.filter"))?;
    match Operation::try_from(p.operation) {
        Ok(Operation::MustMatch) => Ok(verdict_storage::Precondition::MustMatch(filter)),
        Ok(Operation::MustNotMatch) => Ok(verdict_storage::Precondition::MustNotMatch(filter)),
        _ => Err(SpiceError::validation(
            &format!("{field}.operation"),
            "value must not be in list [0]",
        )),
    }
}

/// The wire permissionship of a check and its missing caveat parameters.
pub fn check_permissionship(
    outcome: &Outcome,
) -> (
    pb::check_permission_response::Permissionship,
    Option<pb::PartialCaveatInfo>,
) {
    use pb::check_permission_response::Permissionship as P;
    match outcome {
        Outcome::Allowed => (P::HasPermission, None),
        Outcome::Denied => (P::NoPermission, None),
        Outcome::Conditional { missing } => (
            P::ConditionalPermission,
            Some(pb::PartialCaveatInfo {
                missing_required_context: missing.iter().cloned().collect(),
            }),
        ),
    }
}

/// The wire permissionship of a lookup result.
pub fn lookup_permissionship(
    outcome: &Outcome,
) -> (pb::LookupPermissionship, Option<pb::PartialCaveatInfo>) {
    match outcome {
        Outcome::Conditional { missing } => (
            pb::LookupPermissionship::ConditionalPermission,
            Some(pb::PartialCaveatInfo {
                missing_required_context: missing.iter().cloned().collect(),
            }),
        ),
        Outcome::Allowed | Outcome::Denied => (pb::LookupPermissionship::HasPermission, None),
    }
}

/// `google.protobuf.Struct` ⇄ JSON: the same well-known type in every front
/// door, so one conversion (with its integral-number rule) serves all.
pub use crate::api::convert::{json_to_struct, struct_to_json};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_spicedbs_patterns() {
        assert!(validate_type("t", "doc").is_ok());
        assert!(validate_type("t", "test/user").is_ok());
        assert!(validate_type("t", "abc/def/doc_1").is_ok());
        assert!(validate_type("t", "a/doc").is_err());
        for bad in ["", "do", "Doc", "doc_", "1doc", "doc/", "/doc", "doc-x"] {
            assert!(validate_type("t", bad).is_err(), "{bad}");
        }
        assert!(validate_id("i", "a-b_c|d=e+f/g").is_ok());
        assert!(validate_id("i", "*").is_ok());
        for bad in ["", "a b", "a:b", "a#b", "a*"] {
            assert!(validate_id("i", bad).is_err(), "{bad}");
        }
        assert!(validate_relation("r", "view", false).is_ok());
        assert!(validate_relation("r", "", true).is_ok());
        assert!(validate_relation("r", "", false).is_err());
        assert!(validate_relation("r", "...", true).is_err());
        let err = validate_id("resource.object_id", "a b").unwrap_err();
        assert_eq!(
            err.message,
            "validation error: resource.object_id: does not match regex pattern `^(([a-zA-Z0-9/_|\\-=+]{1,})|\\*)$`"
        );
        assert!(validate_caveat_name("c", "only_if").is_ok());
        assert!(validate_caveat_name("c", "").is_err());
    }

    #[test]
    fn empty_and_contradictory_filters_are_invalid_filter() {
        use pb::ErrorReason;
        let err = filter_from_pb(None, "relationship_filter").unwrap_err();
        assert_eq!(err.reason, Some(ErrorReason::InvalidFilter));
        let f = pb::RelationshipFilter {
            resource_type: "doc".into(),
            optional_resource_id: "1".into(),
            optional_resource_id_prefix: "1".into(),
            ..Default::default()
        };
        let err = filter_from_pb(Some(&f), "relationship_filter").unwrap_err();
        assert_eq!(err.reason, Some(ErrorReason::InvalidFilter));
        assert_eq!(
            filter_text(&pb::RelationshipFilter {
                resource_type: "doc".into(),
                optional_resource_id: "nope".into(),
                ..Default::default()
            }),
            r#"resource_type:"doc" optional_resource_id:"nope""#
        );
    }

    #[test]
    fn relationships_round_trip_without_empty_submessages() {
        let t = Tuple::parse("doc:1#viewer@group:eng#member[only_if]").unwrap();
        let r = relationship_to_pb(&t);
        assert_eq!(r.optional_caveat.as_ref().unwrap().context, None);
        assert_eq!(r.optional_expires_at, None);
        assert_eq!(relationship_from_pb(Some(&r), "r").unwrap(), t);
    }
}
