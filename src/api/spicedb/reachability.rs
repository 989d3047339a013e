//! SpiceDB's schema reachability, as ComputablePermissions and
//! DependentRelations answer it: which relations and permissions a
//! subject type can reach (walking outward), and which ones a permission
//! is computed from (walking inward). Pure functions over the schema IR.
//!
//! A relation or permission is entered from a *subject*: a relation
//! `viewer: user | group#member` is entered from `user` (any object of the
//! type, `user#...`) and from `group#member`; `viewer: user:*` from every
//! subject of type `user`; a permission from each relation it names
//! (`editor`), from `T#target` for each direct subject type `T` of an
//! arrow's tupleset (`parent->view`), and from the resource itself
//! (`self`). These are SpiceDB's reachability entrypoints
//! (pkg/schema/reachabilitygraphbuilder.go).

use std::collections::BTreeSet;

use crate::schema::ir::{AllowedKind, Definition, RelationId, Rewrite, Schema, TypeId};

/// A relation or permission: its definition and its id there.
pub type Node = (TypeId, RelationId);

/// A subject a relation or permission is entered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    /// `T` (relation `None`, SpiceDB's `...`) or `T#relation`.
    Subject(TypeId, Option<RelationId>),
    /// `T:*`: any subject of type `T`.
    AnyOfType(TypeId),
}

impl Entry {
    fn admits(self, subject: (TypeId, Option<RelationId>)) -> bool {
        match self {
            Entry::Subject(t, r) => (t, r) == subject,
            Entry::AnyOfType(t) => t == subject.0,
        }
    }
}

/// How a relation or permission is entered, and the arrows' tuplesets
/// that lead into it (relations of the same definition).
#[derive(Debug, Default)]
struct Entrypoints {
    entries: BTreeSet<Entry>,
    tuplesets: BTreeSet<RelationId>,
}

fn entrypoints(schema: &Schema, def: &Definition, id: RelationId) -> Entrypoints {
    let mut out = Entrypoints::default();
    let rel = def.relation(id);
    match &rel.kind {
        crate::schema::ir::RelationKind::Relation { allowed } => {
            for a in allowed {
                out.entries.insert(match a.kind {
                    AllowedKind::Direct => Entry::Subject(a.subject_type, None),
                    AllowedKind::Userset(r) => Entry::Subject(a.subject_type, Some(r)),
                    AllowedKind::Wildcard => Entry::AnyOfType(a.subject_type),
                });
            }
        }
        crate::schema::ir::RelationKind::Permission { rewrite } => {
            rewrite_entrypoints(schema, def, rewrite, &mut out);
        }
    }
    out
}

fn rewrite_entrypoints(schema: &Schema, def: &Definition, rw: &Rewrite, out: &mut Entrypoints) {
    match rw {
        Rewrite::Nil => {}
        Rewrite::SelfRef => {
            out.entries.insert(Entry::Subject(def.id, None));
        }
        Rewrite::Computed(r) => {
            out.entries.insert(Entry::Subject(def.id, Some(*r)));
        }
        Rewrite::Arrow(arrow) => {
            let tupleset = def.relation(arrow.tupleset);
            for a in tupleset.allowed() {
                if matches!(a.kind, AllowedKind::Userset(_)) {
                    continue;
                }
                let target_def = schema.definition(a.subject_type);
                if let Some(target) = target_def.relation_id(&arrow.target) {
                    out.entries
                        .insert(Entry::Subject(a.subject_type, Some(target)));
                    out.tuplesets.insert(arrow.tupleset);
                }
            }
        }
        Rewrite::Union(children) | Rewrite::Intersection(children) => {
            for c in children {
                rewrite_entrypoints(schema, def, c, out);
            }
        }
        Rewrite::Exclusion(base, subtract) => {
            rewrite_entrypoints(schema, def, base, out);
            rewrite_entrypoints(schema, def, subtract, out);
        }
    }
}

/// Every relation and permission (of any definition) whose answer can
/// change when relationships with subject `start` (`T`, or `T#relation`)
/// change: the relations that admit it, the permissions computed from
/// those, and so on. May include `start` itself when it is reached again.
pub fn reachable_from_subject(
    schema: &Schema,
    start: (TypeId, Option<RelationId>),
) -> BTreeSet<Node> {
    let mut all: Vec<(Node, Entrypoints)> = Vec::new();
    for def in schema.definitions() {
        for rel in super::reflection::visible_relations(def) {
            all.push(((def.id, rel.id), entrypoints(schema, def, rel.id)));
        }
    }
    let mut found = BTreeSet::new();
    let mut frontier = vec![start];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for (node, entries) in &all {
            for subject in &frontier {
                if (node.0, Some(node.1)) == *subject {
                    continue;
                }
                if entries.entries.iter().any(|e| e.admits(*subject)) && found.insert(*node) {
                    next.push((node.0, Some(node.1)));
                }
            }
        }
        frontier = next;
    }
    found
}

/// Every relation and permission that `start` is computed from: the
/// relations and permissions it names, the subject relations those
/// admit (`group#member`), the arrows' tuplesets and targets,
/// transitively. Includes `start`.
pub fn dependencies_of(schema: &Schema, start: Node) -> BTreeSet<Node> {
    let mut visited = BTreeSet::new();
    let mut encountered = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(node) = stack.pop() {
        if !visited.insert(node) {
            continue;
        }
        encountered.insert(node);
        let def = schema.definition(node.0);
        let entries = entrypoints(schema, def, node.1);
        for ts in &entries.tuplesets {
            encountered.insert((node.0, *ts));
        }
        for e in &entries.entries {
            if let Entry::Subject(t, Some(r)) = e {
                stack.push((*t, *r));
            }
        }
    }
    encountered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, SchemaLimits};

    const SCHEMA: &str = "
        definition user {}
        definition group {
            relation member: user | group#member
        }
        definition folder {
            relation viewer: user | group#member
            permission view = viewer
        }
        definition document {
            relation parent: folder
            relation reader: user:*
            relation banned: user
            permission view = (reader + parent->view) - banned
            permission other = nil
        }
    ";

    fn compiled() -> Schema {
        let limits = SchemaLimits::default();
        let parsed = schema::parse(SCHEMA, &limits).unwrap();
        schema::compile_parsed(parsed, &limits).unwrap().schema
    }

    fn names(schema: &Schema, nodes: &BTreeSet<Node>) -> Vec<String> {
        let mut v: Vec<String> = nodes
            .iter()
            .map(|(t, r)| {
                let d = schema.definition(*t);
                format!("{}#{}", d.name, d.relation(*r).name)
            })
            .collect();
        v.sort();
        v
    }

    fn node(schema: &Schema, t: &str, r: &str) -> Node {
        let d = schema.definition_named(t).unwrap();
        (d.id, d.relation_id(r).unwrap())
    }

    #[test]
    fn a_user_reaches_every_relation_admitting_users_and_the_permissions_over_them() {
        let s = compiled();
        let user = s.type_id("user").unwrap();
        let got = names(&s, &reachable_from_subject(&s, (user, None)));
        assert_eq!(
            got,
            vec![
                "document#banned",
                "document#reader",
                "document#view",
                "folder#view",
                "folder#viewer",
                "group#member",
            ]
        );
    }

    #[test]
    fn a_permission_depends_on_its_operands_arrows_and_their_targets() {
        let s = compiled();
        let got = names(&s, &dependencies_of(&s, node(&s, "document", "view")));
        assert_eq!(
            got,
            vec![
                "document#banned",
                "document#parent",
                "document#reader",
                "document#view",
                "folder#view",
                "folder#viewer",
                "group#member",
            ]
        );
        let nil = names(&s, &dependencies_of(&s, node(&s, "document", "other")));
        assert_eq!(nil, vec!["document#other"]);
    }
}
