//! The `Reflection*` messages of SchemaService built from the compiled
//! schema IR: definitions, relations, permissions, subject types and
//! caveats, as ReflectSchema, DiffSchema and the reachability RPCs answer
//! them.

use crate::schema::ir::{AllowedKind, AllowedSubject, Caveat, Definition, Relation, Schema};

use super::pb;

/// A relation (stored tuples) with its allowed subject types.
pub fn relation_repr(schema: &Schema, def: &Definition, rel: &Relation) -> pb::ReflectionRelation {
    pb::ReflectionRelation {
        name: rel.name.to_string(),
        comment: rel.doc.clone().unwrap_or_default(),
        parent_definition_name: def.name.to_string(),
        subject_types: rel.allowed().iter().map(|a| type_repr(schema, a)).collect(),
    }
}

/// A permission.
pub fn permission_repr(def: &Definition, rel: &Relation) -> pb::ReflectionPermission {
    pb::ReflectionPermission {
        name: rel.name.to_string(),
        comment: rel.doc.clone().unwrap_or_default(),
        parent_definition_name: def.name.to_string(),
    }
}

/// One allowed subject type of a relation.
pub fn type_repr(schema: &Schema, a: &AllowedSubject) -> pb::ReflectionTypeReference {
    use pb::reflection_type_reference::Typeref;
    let subject = schema.definition(a.subject_type);
    let typeref = match a.kind {
        AllowedKind::Direct => Typeref::IsTerminalSubject(true),
        AllowedKind::Wildcard => Typeref::IsPublicWildcard(true),
        AllowedKind::Userset(r) => {
            Typeref::OptionalRelationName(subject.relation(r).name.to_string())
        }
    };
    pb::ReflectionTypeReference {
        subject_definition_name: subject.name.to_string(),
        optional_caveat_name: a
            .caveat
            .map(|c| schema.caveat(c).name.to_string())
            .unwrap_or_default(),
        typeref: Some(typeref),
    }
}

/// The relations and permissions of a definition that clients may name
/// (OpenFGA's hidden stored relations are left out).
pub fn visible_relations(def: &Definition) -> impl Iterator<Item = &Relation> {
    def.relations.iter().filter(|r| !def.is_hidden(r.id))
}

/// A whole definition: every relation and permission.
pub fn definition_repr(schema: &Schema, def: &Definition) -> pb::ReflectionDefinition {
    let mut relations = Vec::new();
    let mut permissions = Vec::new();
    for rel in visible_relations(def) {
        if rel.is_permission() {
            permissions.push(permission_repr(def, rel));
        } else {
            relations.push(relation_repr(schema, def, rel));
        }
    }
    pb::ReflectionDefinition {
        name: def.name.to_string(),
        comment: def.doc.clone().unwrap_or_default(),
        relations,
        permissions,
    }
}

/// One parameter of a caveat, `None` if the caveat has no such parameter.
pub fn parameter_repr(caveat: &Caveat, name: &str) -> Option<pb::ReflectionCaveatParameter> {
    caveat
        .params
        .iter()
        .find(|(n, _)| &**n == name)
        .map(|(n, ty)| pb::ReflectionCaveatParameter {
            name: n.to_string(),
            r#type: ty.to_string(),
            parent_caveat_name: caveat.name.to_string(),
        })
}

/// A caveat with its parameters and expression.
pub fn caveat_repr(caveat: &Caveat) -> pb::ReflectionCaveat {
    pb::ReflectionCaveat {
        name: caveat.name.to_string(),
        comment: caveat.doc.clone().unwrap_or_default(),
        parameters: caveat
            .params
            .iter()
            .map(|(name, ty)| pb::ReflectionCaveatParameter {
                name: name.to_string(),
                r#type: ty.to_string(),
                parent_caveat_name: caveat.name.to_string(),
            })
            .collect(),
        expression: caveat.expression.clone(),
    }
}

/// A `definition#relation` reference as ComputablePermissions and
/// DependentRelations answer it.
pub fn relation_reference(def: &Definition, rel: &Relation) -> pb::ReflectionRelationReference {
    pb::ReflectionRelationReference {
        definition_name: def.name.to_string(),
        relation_name: rel.name.to_string(),
        is_permission: rel.is_permission(),
    }
}
