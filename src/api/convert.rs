//! Conversions between protobuf messages and domain types. Every
//! conversion from the wire validates and names the offending field.

use std::fmt::Display;

use serde_json::{Map, Number, Value};
use verdict_storage::{
    IdFilter, ObjectRef, SubjectRef, SubjectRelationFilter, Timestamp, Tuple, TupleCaveat,
    TupleFilter,
};

use super::error::ApiError;
use super::pb;
use crate::server::consistency::Consistency;
use crate::zookie::ZookieCodec;

/// The `verdict.v1` zookie of `revision`, minted by this cluster's codec.
pub fn zookie_to_pb(revision: verdict_storage::Revision, zookies: &ZookieCodec) -> pb::Zookie {
    pb::Zookie {
        token: zookies.encode(revision),
    }
}

/// `pb::Consistency` → [`Consistency`] (absent = minimize_latency), with
/// its zookie decoded by this cluster's codec.
pub fn consistency_from_pb(
    consistency: Option<&pb::Consistency>,
    zookies: &ZookieCodec,
) -> Result<Consistency, ApiError> {
    use pb::consistency::Requirement;
    let decode = |zookie: &pb::Zookie, field: &str| {
        zookies
            .decode(&zookie.token)
            .map_err(|source| ApiError::Zookie {
                field: field.to_string(),
                source,
            })
    };
    Ok(match consistency.and_then(|c| c.requirement.as_ref()) {
        None | Some(Requirement::MinimizeLatency(_)) => Consistency::MinimizeLatency,
        Some(Requirement::FullyConsistent(_)) => Consistency::FullyConsistent,
        Some(Requirement::AtLeastAsFresh(z)) => {
            Consistency::AtLeastAsFresh(decode(z, "consistency.at_least_as_fresh")?)
        }
        Some(Requirement::AtExactSnapshot(z)) => {
            Consistency::AtExactSnapshot(decode(z, "consistency.at_exact_snapshot")?)
        }
    })
}

/// A required message field.
pub fn required<'a, T>(value: &'a Option<T>, field: &str) -> Result<&'a T, ApiError> {
    value
        .as_ref()
        .ok_or_else(|| ApiError::invalid(field, "is required"))
}

/// `pb::ObjectRef` → [`ObjectRef`].
pub fn object_from_pb(
    o: &pb::ObjectRef,
    field: &(impl Display + ?Sized),
) -> Result<ObjectRef, ApiError> {
    if o.object_type.is_empty() {
        return Err(ApiError::invalid(
            format!("{field}.object_type"),
            "is required",
        ));
    }
    if o.object_id.is_empty() {
        return Err(ApiError::invalid(
            format!("{field}.object_id"),
            "is required",
        ));
    }
    if o.object_id.len() > verdict_storage::MAX_OBJECT_ID_LEN {
        return Err(ApiError::invalid(
            format!("{field}.object_id"),
            format!(
                "is {} bytes long; at most {} are allowed",
                o.object_id.len(),
                verdict_storage::MAX_OBJECT_ID_LEN
            ),
        ));
    }
    Ok(ObjectRef::new(&o.object_type, &o.object_id))
}

/// `pb::SubjectRef` → [`SubjectRef`].
pub fn subject_from_pb(
    s: &pb::SubjectRef,
    field: &(impl Display + ?Sized),
) -> Result<SubjectRef, ApiError> {
    let object = match &s.object {
        Some(o) => object_from_pb(o, &Sub(field, "object"))?,
        None => return Err(ApiError::invalid(format!("{field}.object"), "is required")),
    };
    Ok(SubjectRef {
        object,
        relation: (!s.optional_relation.is_empty() && s.optional_relation != "...")
            .then(|| s.optional_relation.clone()),
    })
}

/// `pb::Relationship` → a validated [`Tuple`].
///
/// `field` (the request path, for errors) is only formatted when an error
/// names it: imports convert millions of these.
pub fn tuple_from_pb(
    r: &pb::Relationship,
    field: &(impl Display + ?Sized),
) -> Result<Tuple, ApiError> {
    let resource = match &r.resource {
        Some(o) => object_from_pb(o, &Sub(field, "resource"))?,
        None => {
            return Err(ApiError::invalid(
                format!("{field}.resource"),
                "is required",
            ))
        }
    };
    if r.relation.is_empty() {
        return Err(ApiError::invalid(
            format!("{field}.relation"),
            "is required",
        ));
    }
    let subject = match &r.subject {
        Some(sub) => subject_from_pb(sub, &Sub(field, "subject"))?,
        None => return Err(ApiError::invalid(format!("{field}.subject"), "is required")),
    };
    let caveat = match &r.optional_caveat {
        None => None,
        Some(c) if c.caveat_name.is_empty() => {
            return Err(ApiError::invalid(
                format!("{field}.optional_caveat.caveat_name"),
                "is required",
            ))
        }
        Some(c) => Some(TupleCaveat {
            name: c.caveat_name.clone(),
            context: c.context.as_ref().map(struct_to_json).unwrap_or_default(),
        }),
    };
    let expiration = r.optional_expires_at.as_ref().map(|t| Timestamp(t.seconds));
    let tuple = Tuple {
        resource,
        relation: r.relation.clone(),
        subject,
        caveat,
        expiration,
    };
    tuple
        .validate()
        .map_err(|e| ApiError::invalid(field.to_string(), e))?;
    Ok(tuple)
}

/// `base.suffix`, formatted only when displayed.
struct Sub<'a, D: ?Sized>(&'a D, &'static str);

impl<D: Display + ?Sized> Display for Sub<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// [`Tuple`] → `pb::Relationship`.
pub fn tuple_to_pb(t: &Tuple) -> pb::Relationship {
    pb::Relationship {
        resource: Some(object_to_pb(&t.resource)),
        relation: t.relation.clone(),
        subject: Some(subject_to_pb(&t.subject)),
        optional_caveat: t.caveat.as_ref().map(|c| pb::ContextualizedCaveat {
            caveat_name: c.name.clone(),
            context: Some(json_to_struct(&c.context)),
        }),
        optional_expires_at: t.expiration.map(|e| prost_types::Timestamp {
            seconds: e.0,
            nanos: 0,
        }),
    }
}

/// [`ObjectRef`] → `pb::ObjectRef`.
pub fn object_to_pb(o: &ObjectRef) -> pb::ObjectRef {
    pb::ObjectRef {
        object_type: o.object_type.clone(),
        object_id: o.object_id.clone(),
    }
}

/// [`SubjectRef`] → `pb::SubjectRef`.
pub fn subject_to_pb(s: &SubjectRef) -> pb::SubjectRef {
    pb::SubjectRef {
        object: Some(object_to_pb(&s.object)),
        optional_relation: s.relation.clone().unwrap_or_default(),
    }
}

/// `pb::RelationshipFilter` → [`TupleFilter`]; `resource_type` may be
/// empty only when `allow_any_type`.
pub fn filter_from_pb(
    f: &pb::RelationshipFilter,
    field: &str,
    allow_any_type: bool,
) -> Result<TupleFilter, ApiError> {
    if f.resource_type.is_empty() && !allow_any_type {
        return Err(ApiError::invalid(
            format!("{field}.resource_type"),
            "is required",
        ));
    }
    if !f.optional_resource_id.is_empty() && !f.optional_resource_id_prefix.is_empty() {
        return Err(ApiError::invalid(
            format!("{field}.optional_resource_id_prefix"),
            "cannot be combined with optional_resource_id",
        ));
    }
    let mut filter = TupleFilter {
        resource_type: (!f.resource_type.is_empty()).then(|| f.resource_type.clone()),
        ..TupleFilter::default()
    };
    if !f.optional_resource_id.is_empty() {
        filter.resource_id = Some(IdFilter::Exact(f.optional_resource_id.clone()));
    } else if !f.optional_resource_id_prefix.is_empty() {
        filter.resource_id = Some(IdFilter::Prefix(f.optional_resource_id_prefix.clone()));
    }
    if !f.optional_relation.is_empty() {
        filter.relation = Some(f.optional_relation.clone());
    }
    if let Some(s) = &f.optional_subject_filter {
        if s.subject_type.is_empty() {
            return Err(ApiError::invalid(
                format!("{field}.optional_subject_filter.subject_type"),
                "is required",
            ));
        }
        filter.subject_type = Some(s.subject_type.clone());
        if !s.optional_subject_id.is_empty() {
            filter.subject_id = Some(s.optional_subject_id.clone());
        }
        if let Some(r) = &s.optional_relation {
            filter.subject_relation = Some(if r.relation.is_empty() || r.relation == "..." {
                SubjectRelationFilter::Direct
            } else {
                SubjectRelationFilter::Relation(r.relation.clone())
            });
        }
    }
    filter.validate().map_err(|e| ApiError::invalid(field, e))?;
    Ok(filter)
}

/// `google.protobuf.Struct` → a JSON object.
pub fn struct_to_json(s: &prost_types::Struct) -> Map<String, Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn value_to_json(v: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            // Integral numbers stay integers, so `int` caveat parameters accept them.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::Number(Number::from(*n as i64))
            } else {
                Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_json(s)),
    }
}

/// A JSON object → `google.protobuf.Struct`.
pub fn json_to_struct(m: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationship_round_trips_and_bad_fields_are_named() {
        let t = Tuple::parse(
            r#"doc:1#viewer@group:eng#member[cav:{"n":3,"s":"x"}][expiration:2300-01-01T00:00:00Z]"#,
        )
        .unwrap();
        let back = tuple_from_pb(&tuple_to_pb(&t), "r").unwrap();
        assert_eq!(back, t);
        let mut bad = tuple_to_pb(&t);
        bad.resource.as_mut().unwrap().object_id = "has space".into();
        let err = tuple_from_pb(&bad, "updates[3].relationship")
            .unwrap_err()
            .to_string();
        assert!(err.contains("updates[3].relationship"), "{err}");
        let mut missing = tuple_to_pb(&t);
        missing.subject = None;
        let err = tuple_from_pb(&missing, "updates[0].relationship")
            .unwrap_err()
            .to_string();
        assert!(err.contains("updates[0].relationship.subject"), "{err}");
    }

    #[test]
    fn filters_require_a_type_unless_allowed() {
        let f = pb::RelationshipFilter::default();
        assert!(filter_from_pb(&f, "filter", false).is_err());
        assert!(filter_from_pb(&f, "filter", true).is_ok());
    }
}
