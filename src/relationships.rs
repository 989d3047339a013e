//! Checks a relationship against a tenant's schema before it is written:
//! the resource type and relation exist, the relation is not a permission,
//! and the subject (type, userset relation or wildcard, caveat, expiration)
//! is one the relation allows.

use verdict_storage::{Tuple, WILDCARD};

use crate::schema::ir::{AllowedKind, Schema};

/// Why a relationship does not fit the schema. Each names the part of the
/// relationship that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelationshipError {
    /// `resource.object_type` is not a definition.
    #[error("resource type `{0}` is not defined in the schema")]
    UnknownResourceType(String),
    /// `relation` is not on the resource type.
    #[error("relation `{relation}` is not defined on `{resource_type}`")]
    UnknownRelation {
        /// The resource type.
        resource_type: String,
        /// The missing relation.
        relation: String,
    },
    /// `relation` names a permission, which is computed, never written.
    #[error("`{resource_type}#{relation}` is a permission; relationships can only be written to relations")]
    WriteToPermission {
        /// The resource type.
        resource_type: String,
        /// The permission.
        relation: String,
    },
    /// The subject is not among the relation's allowed types.
    #[error(
        "subject `{subject}` is not allowed on `{resource_type}#{relation}` (allowed: {allowed})"
    )]
    SubjectNotAllowed {
        /// The resource type.
        resource_type: String,
        /// The relation.
        relation: String,
        /// The subject as written, with its caveat/expiration traits.
        subject: String,
        /// The allowed subject types, as written in the schema.
        allowed: String,
    },
}

/// Checks `tuple` against `schema`.
///
/// # Errors
/// The first way the tuple does not fit (see [`RelationshipError`]).
pub fn validate_against_schema(schema: &Schema, tuple: &Tuple) -> Result<(), RelationshipError> {
    let resource_type = &tuple.resource.object_type;
    let def = schema
        .definition_named(resource_type)
        .ok_or_else(|| RelationshipError::UnknownResourceType(resource_type.clone()))?;
    let relation =
        def.relation_named(&tuple.relation)
            .ok_or_else(|| RelationshipError::UnknownRelation {
                resource_type: resource_type.clone(),
                relation: tuple.relation.clone(),
            })?;
    // An OpenFGA define that also computes stores its tuples in a hidden
    // relation of the same name (schema::openfga).
    let Some(relation) = def.stored_relation(&relation.name) else {
        return Err(RelationshipError::WriteToPermission {
            resource_type: resource_type.clone(),
            relation: tuple.relation.clone(),
        });
    };
    let subject = &tuple.subject;
    let caveat = tuple.caveat.as_ref().map(|c| c.name.as_str());
    let fits = relation.allowed().iter().any(|a| {
        let sdef = schema.definition(a.subject_type);
        if *sdef.name != *subject.object.object_type {
            return false;
        }
        let kind_ok = match a.kind {
            AllowedKind::Direct => {
                subject.relation.is_none() && subject.object.object_id != WILDCARD
            }
            AllowedKind::Wildcard => {
                subject.relation.is_none() && subject.object.object_id == WILDCARD
            }
            AllowedKind::Userset(r) => subject.relation.as_deref() == Some(&*sdef.relation(r).name),
        };
        let caveat_ok = a.caveat.map(|c| &*schema.caveat(c).name) == caveat;
        kind_ok && caveat_ok && a.expiration == tuple.expiration.is_some()
    });
    if fits {
        return Ok(());
    }
    let mut written = subject.to_string();
    if let Some(c) = caveat {
        written.push_str(&format!(" with {c}"));
    }
    if tuple.expiration.is_some() {
        written.push_str(if caveat.is_some() {
            " and expiration"
        } else {
            " with expiration"
        });
    }
    Err(RelationshipError::SubjectNotAllowed {
        resource_type: resource_type.clone(),
        relation: tuple.relation.clone(),
        subject: written,
        allowed: allowed_text(schema, relation.allowed()),
    })
}

fn allowed_text(schema: &Schema, allowed: &[crate::schema::ir::AllowedSubject]) -> String {
    allowed
        .iter()
        .map(|a| {
            let def = schema.definition(a.subject_type);
            let mut s = def.name.to_string();
            match a.kind {
                AllowedKind::Direct => {}
                AllowedKind::Wildcard => s.push_str(":*"),
                AllowedKind::Userset(r) => {
                    s.push('#');
                    s.push_str(&def.relation(r).name);
                }
            }
            match (a.caveat, a.expiration) {
                (Some(c), true) => {
                    s.push_str(&format!(" with {} and expiration", schema.caveat(c).name))
                }
                (Some(c), false) => s.push_str(&format!(" with {}", schema.caveat(c).name)),
                (None, true) => s.push_str(" with expiration"),
                (None, false) => {}
            }
            s
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{compile, SchemaLimits};

    fn schema() -> Schema {
        compile(
            "use expiration\ndefinition user {}\ndefinition group {\n relation member: user | group#member\n}\ncaveat cond(x int) { x == 1 }\ndefinition doc {\n relation viewer: user | user:* | group#member | user with cond\n relation temp: user with expiration\n permission view = viewer\n}",
            &SchemaLimits::default(),
        )
        .unwrap()
        .schema
    }

    fn check(text: &str) -> Result<(), RelationshipError> {
        validate_against_schema(&schema(), &Tuple::parse(text).unwrap())
    }

    #[test]
    fn accepts_allowed_subjects() {
        for ok in [
            "doc:1#viewer@user:a",
            "doc:1#viewer@user:*",
            "doc:1#viewer@group:g#member",
            "doc:1#viewer@user:a[cond]",
            "doc:1#temp@user:a[expiration:2300-01-01T00:00:00Z]",
            "group:g#member@group:h#member",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_a_reason_naming_the_part() {
        assert!(
            matches!(check("folder:1#viewer@user:a"), Err(RelationshipError::UnknownResourceType(t)) if t == "folder")
        );
        assert!(matches!(
            check("doc:1#editor@user:a"),
            Err(RelationshipError::UnknownRelation { .. })
        ));
        assert!(matches!(
            check("doc:1#view@user:a"),
            Err(RelationshipError::WriteToPermission { .. })
        ));
        for bad in [
            "doc:1#viewer@group:g",
            "doc:1#viewer@group:g#nope",
            "doc:1#viewer@user:a[other]",
            "doc:1#temp@user:a",
            "doc:1#viewer@user:a[expiration:2300-01-01T00:00:00Z]",
            "group:g#member@user:*",
        ] {
            let err = check(bad).unwrap_err();
            assert!(
                matches!(err, RelationshipError::SubjectNotAllowed { .. }),
                "{bad}: {err}"
            );
        }
        let msg = check("doc:1#viewer@group:g").unwrap_err().to_string();
        assert!(
            msg.contains("allowed: user | user:* | group#member | user with cond"),
            "{msg}"
        );
    }
}
