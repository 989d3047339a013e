//! Structural diff of two compiled schemas: definitions, relations, allowed
//! subject types (with caveat/expiration traits), permissions (by canonical
//! printed expression) and caveats. Pure: no storage, no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::ast::ArrowFunc;
use super::ir::{AllowedKind, AllowedSubject, Definition, Rewrite, Schema};

/// An allowed subject type added to or removed from a relation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SubjectTypeChange {
    /// `type#relation`.
    pub relation: String,
    /// The subject type as written, e.g. `user:*` or `user with expiration`.
    pub subject: String,
}

/// A permission or caveat whose body changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BodyChange {
    /// `type#permission`, or the caveat name.
    pub name: String,
    /// The canonical body before.
    pub before: String,
    /// The canonical body after.
    pub after: String,
}

/// What changed between two schemas. Every list is sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SchemaDiff {
    /// Definitions only in the new schema.
    pub definitions_added: Vec<String>,
    /// Definitions only in the old schema.
    pub definitions_removed: Vec<String>,
    /// Relations (`type#relation`) only in the new schema.
    pub relations_added: Vec<String>,
    /// Relations only in the old schema (including those of removed
    /// definitions, and relations that became permissions).
    pub relations_removed: Vec<String>,
    /// Allowed subject types new on a relation both schemas have.
    pub subject_types_added: Vec<SubjectTypeChange>,
    /// Allowed subject types dropped from a relation both schemas have.
    pub subject_types_removed: Vec<SubjectTypeChange>,
    /// Permissions (`type#permission = expr`) only in the new schema.
    pub permissions_added: Vec<String>,
    /// Permissions only in the old schema.
    pub permissions_removed: Vec<String>,
    /// Permissions whose canonical expression changed.
    pub permissions_changed: Vec<BodyChange>,
    /// Caveats only in the new schema.
    pub caveats_added: Vec<String>,
    /// Caveats only in the old schema.
    pub caveats_removed: Vec<String>,
    /// Caveats whose parameters or expression changed.
    pub caveats_changed: Vec<BodyChange>,
}

impl SchemaDiff {
    /// Whether nothing structural changed.
    pub fn is_empty(&self) -> bool {
        *self == SchemaDiff::default()
    }

    /// One line per change: `+` added, `-` removed, `~` changed.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        for d in &self.definitions_added {
            line(format!("+ definition {d}"));
        }
        for d in &self.definitions_removed {
            line(format!("- definition {d}"));
        }
        for r in &self.relations_added {
            line(format!("+ relation {r}"));
        }
        for r in &self.relations_removed {
            line(format!("- relation {r}"));
        }
        for s in &self.subject_types_added {
            line(format!("+ subject type {} on {}", s.subject, s.relation));
        }
        for s in &self.subject_types_removed {
            line(format!("- subject type {} on {}", s.subject, s.relation));
        }
        for p in &self.permissions_added {
            line(format!("+ permission {p}"));
        }
        for p in &self.permissions_removed {
            line(format!("- permission {p}"));
        }
        for c in &self.permissions_changed {
            line(format!(
                "~ permission {}: {} => {}",
                c.name, c.before, c.after
            ));
        }
        for c in &self.caveats_added {
            line(format!("+ caveat {c}"));
        }
        for c in &self.caveats_removed {
            line(format!("- caveat {c}"));
        }
        for c in &self.caveats_changed {
            line(format!("~ caveat {}: {} => {}", c.name, c.before, c.after));
        }
        if out.is_empty() {
            out.push_str("no structural changes\n");
        }
        out
    }
}

/// The structural diff from `old` to `new`.
pub fn diff(old: &Schema, new: &Schema) -> SchemaDiff {
    let mut d = SchemaDiff::default();
    let old_defs = defs(old);
    let new_defs = defs(new);
    for (name, def) in &old_defs {
        let Some(other) = new_defs.get(name) else {
            d.definitions_removed.push(name.clone());
            for r in &def.relations {
                side(def, r, &mut d.relations_removed, &mut d.permissions_removed);
            }
            continue;
        };
        for r in &def.relations {
            match other.relation_named(&r.name) {
                Some(o) if o.is_permission() == r.is_permission() => {
                    if r.is_permission() {
                        let (before, after) = (permission_expr(def, r), permission_expr(other, o));
                        if before != after {
                            d.permissions_changed.push(BodyChange {
                                name: format!("{name}#{}", r.name),
                                before,
                                after,
                            });
                        }
                    } else {
                        let before = allowed_set(old, r.allowed());
                        let after = allowed_set(new, o.allowed());
                        let relation = format!("{name}#{}", r.name);
                        for s in after.difference(&before) {
                            d.subject_types_added.push(SubjectTypeChange {
                                relation: relation.clone(),
                                subject: s.clone(),
                            });
                        }
                        for s in before.difference(&after) {
                            d.subject_types_removed.push(SubjectTypeChange {
                                relation: relation.clone(),
                                subject: s.clone(),
                            });
                        }
                    }
                }
                _ => side(def, r, &mut d.relations_removed, &mut d.permissions_removed),
            }
        }
    }
    for (name, def) in &new_defs {
        let Some(other) = old_defs.get(name) else {
            d.definitions_added.push(name.clone());
            for r in &def.relations {
                side(def, r, &mut d.relations_added, &mut d.permissions_added);
            }
            continue;
        };
        for r in &def.relations {
            match other.relation_named(&r.name) {
                Some(o) if o.is_permission() == r.is_permission() => {}
                _ => side(def, r, &mut d.relations_added, &mut d.permissions_added),
            }
        }
    }
    let old_cav = caveats(old);
    let new_cav = caveats(new);
    for (name, body) in &old_cav {
        match new_cav.get(name) {
            None => d.caveats_removed.push(name.clone()),
            Some(after) if after != body => d.caveats_changed.push(BodyChange {
                name: name.clone(),
                before: body.clone(),
                after: after.clone(),
            }),
            Some(_) => {}
        }
    }
    for name in new_cav.keys() {
        if !old_cav.contains_key(name) {
            d.caveats_added.push(name.clone());
        }
    }
    for v in [
        &mut d.definitions_added,
        &mut d.definitions_removed,
        &mut d.relations_added,
        &mut d.relations_removed,
        &mut d.permissions_added,
        &mut d.permissions_removed,
        &mut d.caveats_added,
        &mut d.caveats_removed,
    ] {
        v.sort();
    }
    d.subject_types_added.sort();
    d.subject_types_removed.sort();
    d.permissions_changed.sort();
    d.caveats_changed.sort();
    d
}

/// Records a relation or permission that exists on one side only.
fn side(
    def: &Definition,
    r: &super::ir::Relation,
    relations: &mut Vec<String>,
    permissions: &mut Vec<String>,
) {
    if r.is_permission() {
        permissions.push(format!(
            "{}#{} = {}",
            def.name,
            r.name,
            permission_expr(def, r)
        ));
    } else {
        relations.push(format!("{}#{}", def.name, r.name));
    }
}

fn defs(schema: &Schema) -> BTreeMap<String, &Definition> {
    schema
        .definitions()
        .iter()
        .map(|d| (d.name.to_string(), d))
        .collect()
}

fn caveats(schema: &Schema) -> BTreeMap<String, String> {
    schema
        .caveats()
        .iter()
        .map(|c| {
            let params = c
                .params
                .iter()
                .map(|(n, t)| format!("{n} {t}"))
                .collect::<Vec<_>>()
                .join(", ");
            (
                c.name.to_string(),
                format!("({params}) {{ {} }}", c.expression.trim()),
            )
        })
        .collect()
}

/// The allowed subject types as written (`user`, `user:*`,
/// `group#member with expiration`).
fn allowed_set(schema: &Schema, allowed: &[AllowedSubject]) -> BTreeSet<String> {
    allowed.iter().map(|a| allowed_text(schema, a)).collect()
}

/// One allowed subject type as written in a schema.
pub fn allowed_text(schema: &Schema, a: &AllowedSubject) -> String {
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
            let _ = write!(s, " with {} and expiration", schema.caveat(c).name);
        }
        (Some(c), false) => {
            let _ = write!(s, " with {}", schema.caveat(c).name);
        }
        (None, true) => s.push_str(" with expiration"),
        (None, false) => {}
    }
    s
}

/// A permission's expression, printed canonically: names instead of ids,
/// operands of `+` and `&` sorted, parentheses around nested operators.
pub fn permission_expr(def: &Definition, r: &super::ir::Relation) -> String {
    match &r.kind {
        super::ir::RelationKind::Permission { rewrite } => print(def, rewrite, false),
        super::ir::RelationKind::Relation { .. } => String::new(),
    }
}

fn print(def: &Definition, rw: &Rewrite, nested: bool) -> String {
    let group = |parts: Vec<String>, op: &str| {
        let mut parts = parts;
        parts.sort();
        let joined = parts.join(op);
        if nested {
            format!("({joined})")
        } else {
            joined
        }
    };
    match rw {
        Rewrite::Nil => "nil".into(),
        Rewrite::SelfRef => "self".into(),
        Rewrite::Computed(id) => def.relation(*id).name.to_string(),
        Rewrite::Arrow(a) => {
            let ts = &def.relation(a.tupleset).name;
            match a.func {
                ArrowFunc::Arrow | ArrowFunc::Any => format!("{ts}->{}", a.target),
                ArrowFunc::All => format!("{ts}.all({})", a.target),
            }
        }
        Rewrite::Union(children) => group(
            children.iter().map(|c| print(def, c, true)).collect(),
            " + ",
        ),
        Rewrite::Intersection(children) => group(
            children.iter().map(|c| print(def, c, true)).collect(),
            " & ",
        ),
        Rewrite::Exclusion(base, sub) => {
            let s = format!("{} - {}", print(def, base, true), print(def, sub, true));
            if nested {
                format!("({s})")
            } else {
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{compile, SchemaLimits};
    use proptest::prelude::*;

    fn schema(text: &str) -> Schema {
        compile(text, &SchemaLimits::default())
            .unwrap_or_else(|e| panic!("{}", e.render("test", text)))
            .schema
    }

    const OLD: &str = r#"
        use expiration
        caveat on_vpn(ip ipaddress) { ip.in_cidr('10.0.0.0/8') }
        caveat gone(n int) { n > 1 }
        definition user {}
        definition team { relation member: user }
        definition document {
            relation reader: user | team#member
            relation owner: user
            relation banned: user
            permission view = reader + owner - banned
            permission edit = owner
        }
    "#;
    const NEW: &str = r#"
        use expiration
        caveat on_vpn(ip ipaddress) { ip.in_cidr('192.168.0.0/16') }
        definition user {}
        definition folder { relation viewer: user }
        definition document {
            relation viewer: user | user:* | user with on_vpn
            relation reader: user with expiration
            relation owner: user
            relation banned: user
            permission view = owner + viewer - banned
            permission edit = owner
            permission admin = owner
        }
    "#;

    #[test]
    fn finds_every_kind_of_change() {
        let d = diff(&schema(OLD), &schema(NEW));
        assert_eq!(d.definitions_added, vec!["folder"]);
        assert_eq!(d.definitions_removed, vec!["team"]);
        assert_eq!(d.relations_added, vec!["document#viewer", "folder#viewer"]);
        assert_eq!(d.relations_removed, vec!["team#member"]);
        let added: Vec<_> = d
            .subject_types_added
            .iter()
            .map(|s| s.subject.as_str())
            .collect();
        assert_eq!(added, vec!["user with expiration"]);
        let removed: Vec<_> = d
            .subject_types_removed
            .iter()
            .map(|s| s.subject.as_str())
            .collect();
        assert_eq!(removed, vec!["team#member", "user"]);
        assert_eq!(d.permissions_added, vec!["document#admin = owner"]);
        assert!(d.permissions_removed.is_empty());
        assert_eq!(
            d.permissions_changed,
            vec![BodyChange {
                name: "document#view".into(),
                before: "(owner + reader) - banned".into(),
                after: "(owner + viewer) - banned".into(),
            }]
        );
        assert_eq!(d.caveats_removed, vec!["gone"]);
        assert!(d.caveats_added.is_empty());
        assert_eq!(d.caveats_changed.len(), 1);
        assert_eq!(d.caveats_changed[0].name, "on_vpn");
        let text = d.render();
        assert!(text.contains("- relation team#member\n"), "{text}");
        assert!(
            text.contains("~ permission document#view: (owner + reader) - banned => (owner + viewer) - banned"),
            "{text}"
        );
    }

    #[test]
    fn reordering_operands_is_not_a_change() {
        let a = "definition user {}\ndefinition doc { relation alpha: user\nrelation beta: user\npermission perm = alpha + beta }";
        let b = "definition user {}\ndefinition doc { relation beta: user\nrelation alpha: user\npermission perm = beta + alpha }";
        let d = diff(&schema(a), &schema(b));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.render(), "no structural changes\n");
    }

    #[test]
    fn relation_becoming_permission_is_removed_and_added() {
        let a = "definition user {}\ndefinition doc { relation alpha: user\nrelation extra: user }";
        let b =
            "definition user {}\ndefinition doc { relation alpha: user\npermission extra = alpha }";
        let d = diff(&schema(a), &schema(b));
        assert_eq!(d.relations_removed, vec!["doc#extra"]);
        assert_eq!(d.permissions_added, vec!["doc#extra = alpha"]);
    }

    /// A small random schema: definition `d` with some of relations
    /// r0..r3 (each allowing some of user / user:* / group#member) and a
    /// permission over a subset of them.
    fn arb_schema() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(proptest::option::of(1u8..8), 4),
            proptest::collection::vec(any::<bool>(), 4),
            any::<bool>(),
        )
            .prop_map(|(rels, perm, group)| {
                let mut s = String::from("definition user {}\n");
                if group {
                    s.push_str("definition group { relation member: user }\n");
                }
                s.push_str("definition doc {\n");
                let mut present = Vec::new();
                for (i, r) in rels.iter().enumerate() {
                    let Some(mask) = r else { continue };
                    let mut allowed = Vec::new();
                    if mask & 1 != 0 {
                        allowed.push("user");
                    }
                    if mask & 2 != 0 {
                        allowed.push("user:*");
                    }
                    if mask & 4 != 0 && group {
                        allowed.push("group#member");
                    }
                    if allowed.is_empty() {
                        allowed.push("user");
                    }
                    let _ = writeln!(s, "relation rel{i}: {}", allowed.join(" | "));
                    present.push(i);
                }
                let used: Vec<String> = present
                    .iter()
                    .filter(|i| perm[**i])
                    .map(|i| format!("rel{i}"))
                    .collect();
                if !used.is_empty() {
                    let _ = writeln!(s, "permission perm = {}", used.join(" + "));
                }
                s.push_str("}\n");
                s
            })
    }

    proptest! {
        #[test]
        fn diff_is_empty_on_itself_and_antisymmetric(a in arb_schema(), b in arb_schema()) {
            let (sa, sb) = (schema(&a), schema(&b));
            prop_assert!(diff(&sa, &sa).is_empty());
            let ab = diff(&sa, &sb);
            let ba = diff(&sb, &sa);
            prop_assert_eq!(&ab.definitions_added, &ba.definitions_removed);
            prop_assert_eq!(&ab.relations_added, &ba.relations_removed);
            prop_assert_eq!(&ab.subject_types_added, &ba.subject_types_removed);
            prop_assert_eq!(&ab.permissions_added, &ba.permissions_removed);
            prop_assert_eq!(ab.permissions_changed.len(), ba.permissions_changed.len());
            // Only relations/permissions exist here, so no change means the
            // same relation names with the same allowed types and permission.
            if ab.is_empty() {
                prop_assert!(ba.is_empty());
            }
        }
    }
}
