//! The compiled schema: an immutable, interned, typed IR that the engine
//! walks. Names are resolved to ids once, at compile time; the walker never
//! compares schema strings.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub use super::ast::ArrowFunc;
pub use super::cel_check::CaveatType;

/// Index of a definition in [`Schema::definitions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u32);

/// Index of a relation or permission in its [`Definition::relations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationId(pub u32);

/// Index of a caveat in [`Schema::caveats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaveatId(pub u32);

/// A compiled, validated schema.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    pub(crate) definitions: Vec<Definition>,
    pub(crate) caveats: Vec<Caveat>,
    pub(crate) type_ids: HashMap<Arc<str>, TypeId>,
    pub(crate) caveat_ids: HashMap<Arc<str>, CaveatId>,
    pub(crate) use_flags: BTreeSet<String>,
    /// Compiled from an OpenFGA model: evaluate with OpenFGA's semantics
    /// (stored tuples the model does not allow are ignored, a condition
    /// missing a parameter is an error, depth is bounded at 25).
    pub(crate) openfga: bool,
}

impl Schema {
    /// Every definition, indexed by [`TypeId`].
    pub fn definitions(&self) -> &[Definition] {
        &self.definitions
    }

    /// Every caveat, indexed by [`CaveatId`].
    pub fn caveats(&self) -> &[Caveat] {
        &self.caveats
    }

    /// The `use` flags the schema enables (`expiration`, `self`, ...).
    pub fn use_flags(&self) -> &BTreeSet<String> {
        &self.use_flags
    }

    /// Whether this schema was compiled from an OpenFGA model (see
    /// `schema::openfga`).
    pub fn is_openfga(&self) -> bool {
        self.openfga
    }

    /// The relation holding the tuples written as `type#relation`: the
    /// relation itself, or for an OpenFGA define that both stores tuples and
    /// combines them with other operands, its hidden stored relation.
    pub fn stored_relation(&self, type_name: &str, relation: &str) -> Option<&Relation> {
        self.definition_named(type_name)?.stored_relation(relation)
    }

    /// The id of a definition by name.
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.type_ids.get(name).copied()
    }

    /// A definition by id.
    ///
    /// # Panics
    /// If the id does not come from this schema.
    #[expect(
        clippy::indexing_slicing,
        reason = "a TypeId is minted by the compiler as a position in `definitions`; one from another schema is the caller's bug (# Panics); the walker's hot path"
    )]
    pub fn definition(&self, id: TypeId) -> &Definition {
        &self.definitions[id.0 as usize]
    }

    /// A definition by name.
    pub fn definition_named(&self, name: &str) -> Option<&Definition> {
        self.type_id(name).map(|id| self.definition(id))
    }

    /// The id of a caveat by name.
    pub fn caveat_id(&self, name: &str) -> Option<CaveatId> {
        self.caveat_ids.get(name).copied()
    }

    /// A caveat by id.
    ///
    /// # Panics
    /// If the id does not come from this schema.
    #[expect(
        clippy::indexing_slicing,
        reason = "a CaveatId is minted by the compiler as a position in `caveats`; one from another schema is the caller's bug (# Panics)"
    )]
    pub fn caveat(&self, id: CaveatId) -> &Caveat {
        &self.caveats[id.0 as usize]
    }

    /// A relation or permission by type and name.
    pub fn relation(&self, type_name: &str, relation: &str) -> Option<&Relation> {
        self.definition_named(type_name)?.relation_named(relation)
    }
}

/// An object type: `definition document { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// Its id.
    pub id: TypeId,
    /// Its name, e.g. `document` or `acme/document`.
    pub name: Arc<str>,
    /// Its doc comment.
    pub doc: Option<String>,
    /// Relations and permissions, indexed by [`RelationId`], in source order.
    pub relations: Vec<Relation>,
    pub(crate) relation_ids: HashMap<Arc<str>, RelationId>,
    /// OpenFGA only: a define `viewer: [user] or editor` is the permission
    /// `viewer` (in `relation_ids`) computed from a hidden stored relation
    /// also named `viewer` (so it reads the tuples written as `viewer`);
    /// this maps the name to that hidden relation. Empty for SpiceDB.
    pub(crate) stored_ids: HashMap<Arc<str>, RelationId>,
}

impl Definition {
    /// The id of a relation or permission by name.
    pub fn relation_id(&self, name: &str) -> Option<RelationId> {
        self.relation_ids.get(name).copied()
    }

    /// A relation or permission by name.
    pub fn relation_named(&self, name: &str) -> Option<&Relation> {
        self.relation_id(name).map(|id| self.relation(id))
    }

    /// The relation holding the tuples written under `name` (see
    /// [`Schema::stored_relation`]); `None` for a permission.
    pub fn stored_relation(&self, name: &str) -> Option<&Relation> {
        if let Some(id) = self.stored_ids.get(name) {
            return Some(self.relation(*id));
        }
        self.relation_named(name).filter(|r| !r.is_permission())
    }

    /// Whether relation `id` is a hidden stored relation (OpenFGA), not
    /// addressable by name.
    pub fn is_hidden(&self, id: RelationId) -> bool {
        self.stored_ids.values().any(|h| *h == id)
    }

    /// A relation or permission by id.
    ///
    /// # Panics
    /// If the id does not come from this definition.
    #[expect(
        clippy::indexing_slicing,
        reason = "a RelationId is minted by the compiler as a position in `relations`; one from another definition is the caller's bug (# Panics); the walker's hot path"
    )]
    pub fn relation(&self, id: RelationId) -> &Relation {
        &self.relations[id.0 as usize]
    }
}

/// A relation (stored tuples) or a permission (computed).
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// Its id within the definition.
    pub id: RelationId,
    /// Its name.
    pub name: Arc<str>,
    /// Its doc comment.
    pub doc: Option<String>,
    /// Relation or permission.
    pub kind: RelationKind,
}

impl Relation {
    /// Whether this is a permission (computed, never written).
    pub fn is_permission(&self) -> bool {
        matches!(self.kind, RelationKind::Permission { .. })
    }

    /// The subject types a relation allows (empty for a permission).
    pub fn allowed(&self) -> &[AllowedSubject] {
        match &self.kind {
            RelationKind::Relation { allowed } => allowed,
            RelationKind::Permission { .. } => &[],
        }
    }
}

/// What a relation is.
#[derive(Debug, Clone, PartialEq)]
pub enum RelationKind {
    /// Holds tuples whose subjects match one of `allowed`.
    Relation {
        /// The allowed subject types, in source order.
        allowed: Vec<AllowedSubject>,
    },
    /// Computed from the rewrite.
    Permission {
        /// The rewrite tree.
        rewrite: Rewrite,
    },
}

/// One allowed subject type on a relation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedSubject {
    /// The subject's type.
    pub subject_type: TypeId,
    /// Direct object, wildcard, or userset.
    pub kind: AllowedKind,
    /// A caveat tuples of this kind must carry.
    pub caveat: Option<CaveatId>,
    /// Whether tuples of this kind may (and must be allowed to) expire.
    pub expiration: bool,
}

/// The shape of an allowed subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllowedKind {
    /// `user`
    Direct,
    /// `user:*`
    Wildcard,
    /// `group#member`: the relation id on the subject type.
    Userset(RelationId),
}

/// A permission's rewrite tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Rewrite {
    /// Nobody.
    Nil,
    /// The resource itself (`use self`).
    SelfRef,
    /// Another relation or permission of the same definition.
    Computed(RelationId),
    /// `tupleset->target` (or `.any` / `.all`).
    Arrow(Arrow),
    /// Any child.
    Union(Vec<Rewrite>),
    /// Every child.
    Intersection(Vec<Rewrite>),
    /// `base` but not `subtract`.
    Exclusion(Box<Rewrite>, Box<Rewrite>),
}

/// An arrow: follow the tupleset relation, then check `target` on each
/// object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    /// The relation on this definition whose subjects are followed.
    pub tupleset: RelationId,
    /// The relation or permission name checked on the subjects.
    pub target: Arc<str>,
    /// `->`/`.any()` or `.all()`.
    pub func: ArrowFunc,
    /// `target` resolved on each subject type of the tupleset that has it.
    pub resolved: Vec<(TypeId, RelationId)>,
}

/// A compiled caveat definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Caveat {
    /// Its id.
    pub id: CaveatId,
    /// Its name.
    pub name: Arc<str>,
    /// Its doc comment.
    pub doc: Option<String>,
    /// The parameters in order, with their types.
    pub params: Vec<(Arc<str>, CaveatType)>,
    /// The CEL expression (type-checked against the parameters).
    pub expression: String,
}
