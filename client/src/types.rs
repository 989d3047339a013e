//! Typed requests and answers: objects, subjects, relationships, filters
//! and consistency, with the text forms the CLI uses
//! (`document:readme`, `group:eng#member`, `document:readme#viewer@user:alice`).

use std::fmt;
use std::str::FromStr;

use crate::error::ClientError;
use crate::pb;
use crate::zookie::Zookie;

/// An object `type:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Object {
    /// The type, e.g. `document`.
    pub object_type: String,
    /// The id, e.g. `readme`.
    pub object_id: String,
}

impl Object {
    /// `object_type:object_id`.
    pub fn new(object_type: impl Into<String>, object_id: impl Into<String>) -> Self {
        Object {
            object_type: object_type.into(),
            object_id: object_id.into(),
        }
    }

    pub(crate) fn to_pb(&self) -> pb::ObjectRef {
        pb::ObjectRef {
            object_type: self.object_type.clone(),
            object_id: self.object_id.clone(),
        }
    }

    fn from_pb(o: &pb::ObjectRef) -> Self {
        Object::new(o.object_type.clone(), o.object_id.clone())
    }
}

impl FromStr for Object {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, ClientError> {
        match s.split_once(':') {
            Some((t, id)) if !t.is_empty() && !id.is_empty() => Ok(Object::new(t, id)),
            _ => Err(ClientError::invalid(
                "object",
                format!("`{s}` is not type:id"),
            )),
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.object_id)
    }
}

/// A subject: an object, or a userset `type:id#relation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    /// The subject object.
    pub object: Object,
    /// The relation, for a userset.
    pub relation: Option<String>,
}

impl Subject {
    /// A direct subject `type:id`.
    pub fn new(object_type: impl Into<String>, object_id: impl Into<String>) -> Self {
        Subject {
            object: Object::new(object_type, object_id),
            relation: None,
        }
    }

    pub(crate) fn to_pb(&self) -> pb::SubjectRef {
        pb::SubjectRef {
            object: Some(self.object.to_pb()),
            optional_relation: self.relation.clone().unwrap_or_default(),
        }
    }

    fn from_pb(s: &pb::SubjectRef) -> Option<Self> {
        Some(Subject {
            object: Object::from_pb(s.object.as_ref()?),
            relation: (!s.optional_relation.is_empty()).then(|| s.optional_relation.clone()),
        })
    }
}

impl FromStr for Subject {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, ClientError> {
        let (object, relation) = match s.split_once('#') {
            Some((o, r)) if !r.is_empty() => (o, Some(r.to_string())),
            Some(_) => {
                return Err(ClientError::invalid(
                    "subject",
                    format!("`{s}` has an empty relation"),
                ))
            }
            None => (s, None),
        };
        Ok(Subject {
            object: object.parse()?,
            relation,
        })
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relation {
            Some(r) => write!(f, "{}#{r}", self.object),
            None => write!(f, "{}", self.object),
        }
    }
}

/// A relationship `resource#relation@subject` (caveats and expirations
/// are not expressed by this client yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relationship {
    /// The resource.
    pub resource: Object,
    /// The relation.
    pub relation: String,
    /// The subject.
    pub subject: Subject,
}

impl Relationship {
    pub(crate) fn to_pb(&self) -> pb::Relationship {
        pb::Relationship {
            resource: Some(self.resource.to_pb()),
            relation: self.relation.clone(),
            subject: Some(self.subject.to_pb()),
            optional_caveat: None,
            optional_expires_at: None,
        }
    }

    pub(crate) fn from_pb(r: &pb::Relationship) -> Option<Self> {
        Some(Relationship {
            resource: Object::from_pb(r.resource.as_ref()?),
            relation: r.relation.clone(),
            subject: Subject::from_pb(r.subject.as_ref()?)?,
        })
    }
}

impl FromStr for Relationship {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, ClientError> {
        let bad = || {
            ClientError::invalid(
                "relationship",
                format!("`{s}` is not type:id#relation@subject"),
            )
        };
        let (left, subject) = s.split_once('@').ok_or_else(bad)?;
        let (resource, relation) = left.split_once('#').ok_or_else(bad)?;
        if relation.is_empty() {
            return Err(bad());
        }
        Ok(Relationship {
            resource: resource.parse()?,
            relation: relation.to_string(),
            subject: subject.parse()?,
        })
    }
}

impl fmt::Display for Relationship {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.resource, self.relation, self.subject)
    }
}

/// One update of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Fails if the relationship exists.
    Create(Relationship),
    /// Inserts or replaces.
    Touch(Relationship),
    /// Removes (no-op when absent).
    Delete(Relationship),
}

impl Update {
    pub(crate) fn to_pb(&self) -> pb::RelationshipUpdate {
        use pb::relationship_update::Operation;
        let (op, r) = match self {
            Update::Create(r) => (Operation::Create, r),
            Update::Touch(r) => (Operation::Touch, r),
            Update::Delete(r) => (Operation::Delete, r),
        };
        pb::RelationshipUpdate {
            operation: op as i32,
            relationship: Some(r.to_pb()),
        }
    }
}

/// Selects relationships: a resource type and optionally an id, relation
/// and subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The resource type (required).
    pub resource_type: String,
    /// Only this resource id.
    pub resource_id: Option<String>,
    /// Only this relation.
    pub relation: Option<String>,
    /// Only this subject (type, id and, for a userset, relation).
    pub subject: Option<Subject>,
}

impl Filter {
    /// Every relationship of `resource_type`.
    pub fn resource_type(resource_type: impl Into<String>) -> Self {
        Filter {
            resource_type: resource_type.into(),
            ..Filter::default()
        }
    }

    pub(crate) fn to_pb(&self) -> pb::RelationshipFilter {
        pb::RelationshipFilter {
            resource_type: self.resource_type.clone(),
            optional_resource_id: self.resource_id.clone().unwrap_or_default(),
            optional_resource_id_prefix: String::new(),
            optional_relation: self.relation.clone().unwrap_or_default(),
            optional_subject_filter: self.subject.as_ref().map(|s| pb::SubjectFilter {
                subject_type: s.object.object_type.clone(),
                optional_subject_id: s.object.object_id.clone(),
                optional_relation: Some(pb::RelationFilter {
                    relation: s.relation.clone().unwrap_or_default(),
                }),
            }),
        }
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Consistency {
    /// The server's recent revision within its staleness bound (a
    /// [`crate::Session`] upgrades it to its newest write).
    #[default]
    MinimizeLatency,
    /// At least as fresh as the zookie.
    AtLeastAsFresh(Zookie),
    /// Exactly at the zookie's revision.
    AtExactSnapshot(Zookie),
    /// The newest committed revision.
    FullyConsistent,
}

impl Consistency {
    pub(crate) fn to_pb(&self) -> pb::Consistency {
        use pb::consistency::Requirement;
        let requirement = match self {
            Consistency::MinimizeLatency => Requirement::MinimizeLatency(true),
            Consistency::AtLeastAsFresh(z) => Requirement::AtLeastAsFresh(z.to_pb()),
            Consistency::AtExactSnapshot(z) => Requirement::AtExactSnapshot(z.to_pb()),
            Consistency::FullyConsistent => Requirement::FullyConsistent(true),
        };
        pb::Consistency {
            requirement: Some(requirement),
        }
    }
}

/// A check's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permissionship {
    /// The subject has the permission.
    Allowed,
    /// It does not.
    Denied,
    /// A caveat could not be decided with the context given.
    Conditional,
}

impl Permissionship {
    pub(crate) fn from_pb(value: i32) -> Option<Self> {
        match pb::Permissionship::try_from(value).ok()? {
            pb::Permissionship::Allowed => Some(Permissionship::Allowed),
            pb::Permissionship::Denied => Some(Permissionship::Denied),
            pb::Permissionship::Conditional => Some(Permissionship::Conditional),
            pb::Permissionship::Unspecified => None,
        }
    }

    /// Whether this is [`Permissionship::Allowed`].
    pub fn is_allowed(self) -> bool {
        self == Permissionship::Allowed
    }
}

/// One check question.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    /// The resource.
    pub resource: Object,
    /// A permission or relation of the resource's type.
    pub permission: String,
    /// The subject.
    pub subject: Subject,
}

impl Check {
    /// `resource#permission@subject` from their text forms.
    ///
    /// # Errors
    /// A resource or subject that does not parse.
    pub fn parse(resource: &str, permission: &str, subject: &str) -> Result<Self, ClientError> {
        Ok(Check {
            resource: resource.parse()?,
            permission: permission.to_string(),
            subject: subject.parse()?,
        })
    }

    /// `type#permission`, the key of per-permission cache bounds.
    pub fn type_permission(&self) -> String {
        format!("{}#{}", self.resource.object_type, self.permission)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.resource, self.permission, self.subject)
    }
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckAnswer {
    /// Allowed, denied or conditional.
    pub permissionship: Permissionship,
    /// The revision it was evaluated at (`None` for a local cache hit:
    /// see [`CheckAnswer::source`]).
    pub checked_at: Option<Zookie>,
    /// Where it came from.
    pub source: AnswerSource,
}

/// Which cache (if any) answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerSource {
    /// The server evaluated it (possibly from its own decision cache).
    Server,
    /// The client's local cache, current within the permission's bound.
    LocalCache,
}

/// A server check answer with its footprint, when it has one.
#[derive(Debug, Clone)]
pub(crate) struct ServerCheck {
    pub permissionship: Permissionship,
    pub checked_at: Zookie,
    /// (tenant the keys were derived with, sorted keys).
    pub footprint: Option<(String, Vec<u64>)>,
}
