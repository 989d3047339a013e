//! DiffSchema's answer: the differences from the stored schema to a
//! comparison schema as SpiceDB's `ReflectionSchemaDiff`s (pkg/diff):
//! definitions and caveats added or removed; per shared definition its
//! doc comment, relations and permissions added or removed, permission
//! expressions and doc comments, relation doc comments and allowed subject
//! types; per shared caveat its doc comment, parameters (added, removed,
//! retyped) and expression. Expressions compare by the canonical printing
//! of `schema::diff` and subject types by their written form (with caveat
//! and expiration traits). Deterministic order: definitions added, removed,
//! caveats added, removed, then each shared definition and caveat by name.

use std::collections::{BTreeMap, BTreeSet};

use crate::schema::diff::{allowed_text, permission_expr};
use crate::schema::ir::{Caveat, Definition, Relation, Schema};

use super::pb;
use super::pb::reflection_schema_diff::Diff;
use super::reflection::{
    caveat_repr, definition_repr, parameter_repr, permission_repr, relation_repr, type_repr,
    visible_relations,
};

/// The differences from `existing` to `comparison`.
pub fn diff(existing: &Schema, comparison: &Schema) -> Vec<pb::ReflectionSchemaDiff> {
    let mut out = Vec::new();
    let old_defs = by_name(existing.definitions().iter().map(|d| (&*d.name, d)));
    let new_defs = by_name(comparison.definitions().iter().map(|d| (&*d.name, d)));
    let old_cavs = by_name(existing.caveats().iter().map(|c| (&*c.name, c)));
    let new_cavs = by_name(comparison.caveats().iter().map(|c| (&*c.name, c)));
    for (name, def) in &new_defs {
        if !old_defs.contains_key(name) {
            out.push(Diff::DefinitionAdded(definition_repr(comparison, def)));
        }
    }
    for (name, def) in &old_defs {
        if !new_defs.contains_key(name) {
            out.push(Diff::DefinitionRemoved(definition_repr(existing, def)));
        }
    }
    for (name, cav) in &new_cavs {
        if !old_cavs.contains_key(name) {
            out.push(Diff::CaveatAdded(caveat_repr(cav)));
        }
    }
    for (name, cav) in &old_cavs {
        if !new_cavs.contains_key(name) {
            out.push(Diff::CaveatRemoved(caveat_repr(cav)));
        }
    }
    for (name, old) in &old_defs {
        if let Some(new) = new_defs.get(name) {
            definition_diff(existing, old, comparison, new, &mut out);
        }
    }
    for (name, old) in &old_cavs {
        if let Some(new) = new_cavs.get(name) {
            caveat_diff(old, new, &mut out);
        }
    }
    out.into_iter()
        .map(|d| pb::ReflectionSchemaDiff { diff: Some(d) })
        .collect()
}

fn by_name<'a, T>(items: impl Iterator<Item = (&'a str, T)>) -> BTreeMap<&'a str, T> {
    items.collect()
}

/// A definition's relations and permissions by name, split by kind.
fn split(def: &Definition) -> (BTreeMap<&str, &Relation>, BTreeMap<&str, &Relation>) {
    let mut relations = BTreeMap::new();
    let mut permissions = BTreeMap::new();
    for r in visible_relations(def) {
        if r.is_permission() {
            permissions.insert(&*r.name, r);
        } else {
            relations.insert(&*r.name, r);
        }
    }
    (relations, permissions)
}

fn definition_diff(
    old_schema: &Schema,
    old: &Definition,
    new_schema: &Schema,
    new: &Definition,
    out: &mut Vec<Diff>,
) {
    if old.doc != new.doc {
        out.push(Diff::DefinitionDocCommentChanged(definition_repr(
            new_schema, new,
        )));
    }
    let (old_rels, old_perms) = split(old);
    let (new_rels, new_perms) = split(new);
    for (name, r) in &old_rels {
        if !new_rels.contains_key(name) {
            out.push(Diff::RelationRemoved(relation_repr(old_schema, old, r)));
        }
    }
    for (name, r) in &new_rels {
        if !old_rels.contains_key(name) {
            out.push(Diff::RelationAdded(relation_repr(new_schema, new, r)));
        }
    }
    for (name, p) in &old_perms {
        if !new_perms.contains_key(name) {
            out.push(Diff::PermissionRemoved(permission_repr(old, p)));
        }
    }
    for (name, p) in &new_perms {
        if !old_perms.contains_key(name) {
            out.push(Diff::PermissionAdded(permission_repr(new, p)));
        }
    }
    for (name, before) in &old_perms {
        let Some(after) = new_perms.get(name) else {
            continue;
        };
        if permission_expr(old, before) != permission_expr(new, after) {
            out.push(Diff::PermissionExprChanged(permission_repr(new, after)));
        }
        if before.doc != after.doc {
            out.push(Diff::PermissionDocCommentChanged(permission_repr(
                new, after,
            )));
        }
    }
    for (name, before) in &old_rels {
        let Some(after) = new_rels.get(name) else {
            continue;
        };
        if before.doc != after.doc {
            out.push(Diff::RelationDocCommentChanged(relation_repr(
                new_schema, new, after,
            )));
        }
        let old_types: BTreeMap<String, _> = before
            .allowed()
            .iter()
            .map(|a| (allowed_text(old_schema, a), a))
            .collect();
        let new_types: BTreeMap<String, _> = after
            .allowed()
            .iter()
            .map(|a| (allowed_text(new_schema, a), a))
            .collect();
        for (text, a) in &old_types {
            if !new_types.contains_key(text) {
                out.push(Diff::RelationSubjectTypeRemoved(
                    pb::ReflectionRelationSubjectTypeChange {
                        relation: Some(relation_repr(new_schema, new, after)),
                        changed_subject_type: Some(type_repr(old_schema, a)),
                    },
                ));
            }
        }
        for (text, a) in &new_types {
            if !old_types.contains_key(text) {
                out.push(Diff::RelationSubjectTypeAdded(
                    pb::ReflectionRelationSubjectTypeChange {
                        relation: Some(relation_repr(new_schema, new, after)),
                        changed_subject_type: Some(type_repr(new_schema, a)),
                    },
                ));
            }
        }
    }
}

fn caveat_diff(old: &Caveat, new: &Caveat, out: &mut Vec<Diff>) {
    if old.doc != new.doc {
        out.push(Diff::CaveatDocCommentChanged(caveat_repr(new)));
    }
    let old_params: BTreeMap<&str, String> = old
        .params
        .iter()
        .map(|(n, t)| (&**n, t.to_string()))
        .collect();
    let new_params: BTreeMap<&str, String> = new
        .params
        .iter()
        .map(|(n, t)| (&**n, t.to_string()))
        .collect();
    let names: BTreeSet<&str> = old_params
        .keys()
        .chain(new_params.keys())
        .copied()
        .collect();
    for name in names {
        match (old_params.get(name), new_params.get(name)) {
            (None, Some(_)) => {
                if let Some(p) = parameter_repr(new, name) {
                    out.push(Diff::CaveatParameterAdded(p));
                }
            }
            (Some(_), None) => {
                if let Some(p) = parameter_repr(old, name) {
                    out.push(Diff::CaveatParameterRemoved(p));
                }
            }
            (Some(before), Some(after)) if before != after => {
                out.push(Diff::CaveatParameterTypeChanged(
                    pb::ReflectionCaveatParameterTypeChange {
                        parameter: parameter_repr(new, name),
                        previous_type: before.clone(),
                    },
                ));
            }
            _ => {}
        }
    }
    if normalized(&old.expression) != normalized(&new.expression) {
        out.push(Diff::CaveatExprChanged(caveat_repr(new)));
    }
}

/// A CEL expression with its whitespace collapsed.
fn normalized(expression: &str) -> String {
    expression.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, SchemaLimits};

    fn compiled(text: &str) -> Schema {
        let limits = SchemaLimits::default();
        let parsed = schema::parse(text, &limits).unwrap();
        schema::compile_parsed(parsed, &limits).unwrap().schema
    }

    fn kinds(diffs: &[pb::ReflectionSchemaDiff]) -> Vec<String> {
        diffs
            .iter()
            .map(|d| match d.diff.as_ref().unwrap() {
                Diff::DefinitionAdded(x) => format!("+def {}", x.name),
                Diff::DefinitionRemoved(x) => format!("-def {}", x.name),
                Diff::DefinitionDocCommentChanged(x) => format!("~doc {}", x.name),
                Diff::RelationAdded(x) => format!("+rel {}", x.name),
                Diff::RelationRemoved(x) => format!("-rel {}", x.name),
                Diff::RelationDocCommentChanged(x) => format!("~reldoc {}", x.name),
                Diff::RelationSubjectTypeAdded(x) => format!(
                    "+type {} on {}",
                    x.changed_subject_type
                        .as_ref()
                        .unwrap()
                        .subject_definition_name,
                    x.relation.as_ref().unwrap().name
                ),
                Diff::RelationSubjectTypeRemoved(x) => format!(
                    "-type {} on {}",
                    x.changed_subject_type
                        .as_ref()
                        .unwrap()
                        .subject_definition_name,
                    x.relation.as_ref().unwrap().name
                ),
                Diff::PermissionAdded(x) => format!("+perm {}", x.name),
                Diff::PermissionRemoved(x) => format!("-perm {}", x.name),
                Diff::PermissionDocCommentChanged(x) => format!("~permdoc {}", x.name),
                Diff::PermissionExprChanged(x) => format!("~expr {}", x.name),
                Diff::CaveatAdded(x) => format!("+caveat {}", x.name),
                Diff::CaveatRemoved(x) => format!("-caveat {}", x.name),
                Diff::CaveatDocCommentChanged(x) => format!("~caveatdoc {}", x.name),
                Diff::CaveatExprChanged(x) => format!("~caveatexpr {}", x.name),
                Diff::CaveatParameterAdded(x) => format!("+param {}", x.name),
                Diff::CaveatParameterRemoved(x) => format!("-param {}", x.name),
                Diff::CaveatParameterTypeChanged(x) => format!(
                    "~param {} {} => {}",
                    x.parameter.as_ref().unwrap().name,
                    x.previous_type,
                    x.parameter.as_ref().unwrap().r#type
                ),
            })
            .collect()
    }

    #[test]
    fn identical_schemas_have_no_differences() {
        let s = compiled("definition user {}\ndefinition doc { relation viewer: user\npermission view = viewer }");
        assert!(diff(&s, &s).is_empty());
    }

    #[test]
    fn every_kind_of_change_is_reported_once() {
        let old = compiled(
            "caveat limited(a int, b string) { a > 1 }
             caveat gone(x int) { x == 1 }
             definition user {}
             definition team {}
             definition doc {
                relation viewer: user
                relation editor: user
                permission view = viewer
                permission edit = editor
             }",
        );
        let new = compiled(
            "caveat limited(a string, z int) { z > 2 }
             caveat fresh(y int) { y == 1 }
             definition user {}
             definition org {}
             definition doc {
                relation viewer: user | org
                relation owner: user
                permission view = viewer + owner
                permission edit = owner
                permission admin = owner
             }",
        );
        let got = kinds(&diff(&old, &new));
        assert_eq!(
            got,
            vec![
                "+def org",
                "-def team",
                "+caveat fresh",
                "-caveat gone",
                "-rel editor",
                "+rel owner",
                "+perm admin",
                "~expr edit",
                "~expr view",
                "+type org on viewer",
                "~param a int => string",
                "-param b",
                "+param z",
                "~caveatexpr limited",
            ]
        );
    }
}
