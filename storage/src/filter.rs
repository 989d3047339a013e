//! Tuple filters: used by delete-by-filter, preconditions and filtered scans.

use crate::error::{TupleError, TuplePart};
use crate::tuple::{validate_id, validate_name, validate_type, Tuple};

/// How a filter constrains the subject relation.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectRelationFilter {
    /// Only direct subjects (no subject relation; SpiceDB's `...`).
    Direct,
    /// Only subjects with exactly this relation.
    Relation(String),
}

impl SubjectRelationFilter {
    /// Whether a subject relation passes this filter.
    pub fn matches(&self, relation: Option<&str>) -> bool {
        match self {
            SubjectRelationFilter::Direct => relation.is_none(),
            SubjectRelationFilter::Relation(r) => relation == Some(r.as_str()),
        }
    }
}

/// How a filter constrains the resource id.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdFilter {
    /// Exactly this id.
    Exact(String),
    /// Ids starting with this prefix (may be empty).
    Prefix(String),
}

impl IdFilter {
    /// Whether an id passes this filter.
    pub fn matches(&self, id: &str) -> bool {
        match self {
            IdFilter::Exact(x) => id == x,
            IdFilter::Prefix(p) => id.starts_with(p.as_str()),
        }
    }
}

/// A conjunction of optional constraints on a tuple; the empty filter
/// matches every tuple of the tenant.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TupleFilter {
    /// The resource type.
    pub resource_type: Option<String>,
    /// The resource id, exact or by prefix.
    pub resource_id: Option<IdFilter>,
    /// The relation on the resource.
    pub relation: Option<String>,
    /// The subject type.
    pub subject_type: Option<String>,
    /// The subject id (`*` addresses the wildcard tuple itself).
    pub subject_id: Option<String>,
    /// The subject relation.
    pub subject_relation: Option<SubjectRelationFilter>,
}

impl TupleFilter {
    /// A filter on the resource type only.
    pub fn resource_type(t: impl Into<String>) -> Self {
        TupleFilter {
            resource_type: Some(t.into()),
            ..Default::default()
        }
    }

    /// Restricts the resource id to exactly `id`.
    pub fn with_resource_id(mut self, id: impl Into<String>) -> Self {
        self.resource_id = Some(IdFilter::Exact(id.into()));
        self
    }

    /// Restricts the resource id to ids starting with `prefix`.
    pub fn with_resource_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.resource_id = Some(IdFilter::Prefix(prefix.into()));
        self
    }

    /// Restricts the relation.
    pub fn with_relation(mut self, relation: impl Into<String>) -> Self {
        self.relation = Some(relation.into());
        self
    }

    /// Restricts the subject type and optionally id.
    pub fn with_subject(
        mut self,
        subject_type: impl Into<String>,
        subject_id: Option<String>,
    ) -> Self {
        self.subject_type = Some(subject_type.into());
        self.subject_id = subject_id;
        self
    }

    /// Restricts the subject relation.
    pub fn with_subject_relation(mut self, r: SubjectRelationFilter) -> Self {
        self.subject_relation = Some(r);
        self
    }

    /// Whether `t` passes every constraint.
    pub fn matches(&self, t: &Tuple) -> bool {
        self.resource_type
            .as_ref()
            .is_none_or(|x| *x == t.resource.object_type)
            && self
                .resource_id
                .as_ref()
                .is_none_or(|f| f.matches(&t.resource.object_id))
            && self.relation.as_ref().is_none_or(|x| *x == t.relation)
            && self
                .subject_type
                .as_ref()
                .is_none_or(|x| *x == t.subject.object.object_type)
            && self
                .subject_id
                .as_ref()
                .is_none_or(|x| *x == t.subject.object.object_id)
            && self
                .subject_relation
                .as_ref()
                .is_none_or(|f| f.matches(t.subject.relation.as_deref()))
    }

    /// Checks the names in the filter. An id prefix may be empty and is
    /// only checked for allowed characters.
    ///
    /// # Errors
    /// A [`TupleError`] naming the first bad part.
    pub fn validate(&self) -> Result<(), TupleError> {
        if let Some(t) = &self.resource_type {
            validate_type(TuplePart::ResourceType, t)?;
        }
        match &self.resource_id {
            Some(IdFilter::Exact(id)) => validate_id(TuplePart::ResourceId, id, false)?,
            Some(IdFilter::Prefix(p)) if !p.bytes().all(crate::tuple::is_id_char) => {
                return Err(TupleError::new(
                    TuplePart::ResourceId,
                    p,
                    "may only contain [A-Za-z0-9/_|-=+@.]",
                ))
            }
            _ => {}
        }
        if let Some(r) = &self.relation {
            validate_name(TuplePart::Relation, r)?;
        }
        if let Some(t) = &self.subject_type {
            validate_type(TuplePart::SubjectType, t)?;
        }
        if let Some(id) = &self.subject_id {
            validate_id(TuplePart::SubjectId, id, true)?;
        }
        if let Some(SubjectRelationFilter::Relation(r)) = &self.subject_relation {
            validate_name(TuplePart::SubjectRelation, r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_each_constraint() {
        let t: Tuple = "document:readme#viewer@group:eng#member".parse().unwrap();
        assert!(TupleFilter::default().matches(&t));
        assert!(TupleFilter::resource_type("document")
            .with_resource_id_prefix("rea")
            .matches(&t));
        assert!(!TupleFilter::resource_type("document")
            .with_resource_id("rea")
            .matches(&t));
        assert!(!TupleFilter::resource_type("folder").matches(&t));
        assert!(TupleFilter::default().with_relation("viewer").matches(&t));
        assert!(!TupleFilter::default().with_relation("editor").matches(&t));
        assert!(TupleFilter::default()
            .with_subject("group", Some("eng".into()))
            .matches(&t));
        assert!(!TupleFilter::default()
            .with_subject("user", None)
            .matches(&t));
        let direct = TupleFilter::default().with_subject_relation(SubjectRelationFilter::Direct);
        assert!(!direct.matches(&t));
        let member = TupleFilter::default()
            .with_subject_relation(SubjectRelationFilter::Relation("member".into()));
        assert!(member.matches(&t));
        assert!(TupleFilter::resource_type("Bad").validate().is_err());
        assert!(TupleFilter::default()
            .with_resource_id_prefix("")
            .validate()
            .is_ok());
    }
}
