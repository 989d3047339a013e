//! Authorization models as tenant schema versions.
//!
//! Each WriteAuthorizationModel is a new schema version of the store's
//! tenant, written through the schema write path; its ULID and the model
//! exactly as written (protojson) are stored alongside the version, in the
//! record's comment ([`Meta`]), so model id ⇄ schema version is lossless
//! and models are immutable. A store's name rides on the empty schema
//! version its creation writes.
//!
//! SEAM (issue 19 part 1/2, `fga-engine`): until the schema layer compiles
//! OpenFGA models itself (`schema::compile_any`), the version's text is a
//! translation of the model to the SpiceDB language made here: a define
//! that is only `[types]` is a relation; one that mixes `[types]` with
//! rewrites stores its direct tuples in a hidden relation
//! `<name>_fgadirect` under a permission `<name>`. Conditions, and names
//! outside SpiceDB's grammar, are refused (2056) until then.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::error::{FgaError, FgaResult};
use super::pb;

/// The suffix of the hidden relation holding a mixed define's direct tuples.
pub const DIRECT_SUFFIX: &str = "_fgadirect";

/// The schema text of a store's first (model-less) version.
pub const STORE_TEXT: &str = "// OpenFGA store: no authorization model yet\n";

/// What a schema version's comment records for this front door.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meta {
    /// The version a CreateStore wrote.
    OpenfgaStore {
        /// The store's name.
        name: String,
    },
    /// A model (its `id` set).
    OpenfgaModel(pb::AuthorizationModel),
}

impl Meta {
    /// The record comment.
    pub fn to_comment(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The meta of a record comment, when it has one.
    pub fn from_comment(comment: &str) -> Option<Meta> {
        if !comment.starts_with('{') {
            return None;
        }
        serde_json::from_str(comment).ok()
    }
}

/// A model, with what requests need to route tuples.
#[derive(Debug, Clone)]
pub struct Model {
    /// The model as written.
    pub pb: pb::AuthorizationModel,
    /// (type, relation) → the stored relation of its direct tuples, for
    /// every directly assignable define.
    stored: HashMap<(String, String), String>,
}

fn is_this(u: &pb::Userset) -> bool {
    matches!(u.userset, Some(pb::userset::Userset::This(_)))
}

fn has_this(u: &pb::Userset) -> bool {
    use pb::userset::Userset as U;
    match &u.userset {
        Some(U::This(_)) => true,
        Some(U::Union(s) | U::Intersection(s)) => s.child.iter().any(has_this),
        Some(U::Difference(d)) => {
            d.base.as_deref().is_some_and(has_this) || d.subtract.as_deref().is_some_and(has_this)
        }
        _ => false,
    }
}

/// SpiceDB's identifier grammar (what the interim translation can carry).
fn plain_name(name: &str) -> bool {
    let b = name.as_bytes();
    (2..=64).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

impl Model {
    /// Indexes `pb`.
    pub fn new(pb: pb::AuthorizationModel) -> Model {
        let mut stored = HashMap::new();
        for td in &pb.type_definitions {
            for (name, rewrite) in &td.relations {
                let target = if is_this(rewrite) {
                    name.clone()
                } else if has_this(rewrite) {
                    format!("{name}{DIRECT_SUFFIX}")
                } else {
                    continue;
                };
                stored.insert((td.r#type.clone(), name.clone()), target);
            }
        }
        Model { pb, stored }
    }

    /// The model id.
    pub fn id(&self) -> &str {
        &self.pb.id
    }

    /// The type definition named `ty`.
    pub fn type_def(&self, ty: &str) -> Option<&pb::TypeDefinition> {
        self.pb.type_definitions.iter().find(|t| t.r#type == ty)
    }

    /// Whether `ty` defines `relation`.
    pub fn has_relation(&self, ty: &str, relation: &str) -> bool {
        self.type_def(ty)
            .is_some_and(|t| t.relations.contains_key(relation))
    }

    /// The stored relation of `ty#relation`'s direct tuples, if assignable.
    pub fn stored_relation(&self, ty: &str, relation: &str) -> Option<&str> {
        self.stored
            .get(&(ty.to_string(), relation.to_string()))
            .map(String::as_str)
    }

    /// The user types `ty#relation` allows directly.
    pub fn allowed(&self, ty: &str, relation: &str) -> &[pb::RelationReference] {
        self.type_def(ty)
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.relations.get(relation))
            .map_or(&[], |r| r.directly_related_user_types.as_slice())
    }
}

/// The OpenFGA relation a stored relation reports as.
pub fn public_relation(stored: &str) -> &str {
    stored.strip_suffix(DIRECT_SUFFIX).unwrap_or(stored)
}

/// Checks the parts of a model the API validates itself (OpenFGA's
/// request validation) before it is compiled.
///
/// # Errors
/// No types, an unsupported schema version, duplicate types, too many.
pub fn validate(m: &pb::AuthorizationModel) -> FgaResult<()> {
    if m.type_definitions.is_empty() {
        return Err(FgaError::field(
            "WriteAuthorizationModelRequest.TypeDefinitions",
            "value must contain at least 1 item(s)",
        ));
    }
    if m.type_definitions.len() > 100 {
        return Err(FgaError::exceeded_entity_limit(
            "the number of type definitions exceeds the allowed limit of 100",
        ));
    }
    match m.schema_version.as_str() {
        "1.1" | "1.2" => {}
        "" => {
            return Err(FgaError::field(
                "WriteAuthorizationModelRequest.SchemaVersion",
                "value is required",
            ))
        }
        other => {
            return Err(FgaError::unsupported_schema_version(format!(
                "unsupported schema version `{other}` (1.1 and 1.2 are)"
            )))
        }
    }
    let mut seen = std::collections::HashSet::new();
    for td in &m.type_definitions {
        if !seen.insert(td.r#type.as_str()) {
            return Err(FgaError::duplicate_types(format!(
                "the type `{}` is defined more than once",
                td.r#type
            )));
        }
    }
    Ok(())
}

fn unsupported(what: String) -> FgaError {
    FgaError::invalid_model(format!("{what} (not supported by Verdict yet)"))
}

/// SEAM: the interim translation of `m` to SpiceDB schema text (see the
/// module docs).
///
/// # Errors
/// `invalid_authorization_model` naming what cannot be carried.
pub fn to_spicedb(m: &Model) -> FgaResult<String> {
    if !m.pb.conditions.is_empty() {
        return Err(unsupported("conditions".into()));
    }
    let mut out = String::new();
    for td in &m.pb.type_definitions {
        if !plain_name(&td.r#type) {
            return Err(unsupported(format!("the type name `{}`", td.r#type)));
        }
        let _ = writeln!(out, "definition {} {{", td.r#type);
        let relations: BTreeMap<&String, &pb::Userset> = td.relations.iter().collect();
        for (name, rewrite) in relations {
            if !plain_name(name) || name.ends_with(DIRECT_SUFFIX) {
                return Err(unsupported(format!(
                    "the relation name `{}#{name}`",
                    td.r#type
                )));
            }
            let types = m
                .allowed(&td.r#type, name)
                .iter()
                .map(|r| {
                    use pb::relation_reference::RelationOrWildcard as R;
                    if !r.condition.is_empty() {
                        return Err(unsupported(format!(
                            "the condition on `{}#{name}`",
                            td.r#type
                        )));
                    }
                    Ok(match &r.relation_or_wildcard {
                        Some(R::Relation(rel)) => format!("{}#{rel}", r.r#type),
                        Some(R::Wildcard(_)) => format!("{}:*", r.r#type),
                        None => r.r#type.clone(),
                    })
                })
                .collect::<FgaResult<Vec<_>>>()?;
            if has_this(rewrite) && types.is_empty() {
                return Err(FgaError::invalid_model(format!(
                    "the relation `{}#{name}` is assignable but allows no user types",
                    td.r#type
                )));
            }
            if is_this(rewrite) {
                let _ = writeln!(out, "    relation {name}: {}", types.join(" | "));
            } else {
                if has_this(rewrite) {
                    let _ = writeln!(
                        out,
                        "    relation {name}{DIRECT_SUFFIX}: {}",
                        types.join(" | ")
                    );
                }
                let expr = expression(m, &td.r#type, name, rewrite)?;
                let _ = writeln!(out, "    permission {name} = {expr}");
            }
        }
        out.push_str("}\n\n");
    }
    Ok(out)
}

fn expression(m: &Model, ty: &str, name: &str, u: &pb::Userset) -> FgaResult<String> {
    use pb::userset::Userset as U;
    let join = |children: &[pb::Userset], op: &str| -> FgaResult<String> {
        let parts = children
            .iter()
            .map(|c| expression(m, ty, name, c))
            .collect::<FgaResult<Vec<_>>>()?;
        if parts.is_empty() {
            return Err(FgaError::invalid_model(format!(
                "`{ty}#{name}` has an empty union or intersection"
            )));
        }
        Ok(format!("({})", parts.join(op)))
    };
    match &u.userset {
        Some(U::This(_)) => Ok(format!("{name}{DIRECT_SUFFIX}")),
        Some(U::ComputedUserset(r)) => Ok(r.relation.clone()),
        Some(U::TupleToUserset(t)) => {
            let tupleset = t
                .tupleset
                .as_ref()
                .map(|r| r.relation.as_str())
                .unwrap_or("");
            let computed = t
                .computed_userset
                .as_ref()
                .map(|r| r.relation.as_str())
                .unwrap_or("");
            let stored = m.stored_relation(ty, tupleset).unwrap_or(tupleset);
            Ok(format!("{stored}->{computed}"))
        }
        Some(U::Union(s)) => join(&s.child, " + "),
        Some(U::Intersection(s)) => join(&s.child, " & "),
        Some(U::Difference(d)) => {
            let (Some(base), Some(subtract)) = (d.base.as_deref(), d.subtract.as_deref()) else {
                return Err(FgaError::invalid_model(format!(
                    "`{ty}#{name}` has a difference without base or subtract"
                )));
            };
            Ok(format!(
                "({} - {})",
                expression(m, ty, name, base)?,
                expression(m, ty, name, subtract)?
            ))
        }
        None => Err(FgaError::invalid_model(format!(
            "`{ty}#{name}` has an empty definition"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(json: &str) -> Model {
        Model::new(serde_json::from_str(json).unwrap())
    }

    const DOCS: &str = r#"{"schema_version":"1.1","type_definitions":[
        {"type":"user"},
        {"type":"group","relations":{"member":{"this":{}}},
         "metadata":{"relations":{"member":{"directly_related_user_types":[{"type":"user"}]}}}},
        {"type":"folder","relations":{"viewer":{"this":{}}},
         "metadata":{"relations":{"viewer":{"directly_related_user_types":[{"type":"user"}]}}}},
        {"type":"document","relations":{
            "parent":{"this":{}},
            "editor":{"this":{}},
            "viewer":{"union":{"child":[{"this":{}},{"computedUserset":{"relation":"editor"}},
                {"tupleToUserset":{"tupleset":{"relation":"parent"},"computedUserset":{"relation":"viewer"}}}]}},
            "blocked_viewer":{"difference":{"base":{"computedUserset":{"relation":"viewer"}},
                "subtract":{"computedUserset":{"relation":"editor"}}}}},
         "metadata":{"relations":{
            "parent":{"directly_related_user_types":[{"type":"folder"}]},
            "editor":{"directly_related_user_types":[{"type":"user"},{"type":"group","relation":"member"}]},
            "viewer":{"directly_related_user_types":[{"type":"user"},{"type":"user","wildcard":{}}]}}}}]}"#;

    #[test]
    fn translates_mixed_defines_through_a_hidden_relation() {
        let m = model(DOCS);
        validate(&m.pb).unwrap();
        let text = to_spicedb(&m).unwrap();
        assert!(
            text.contains("relation editor: user | group#member"),
            "{text}"
        );
        assert!(
            text.contains("relation viewer_fgadirect: user | user:*"),
            "{text}"
        );
        assert!(
            text.contains("permission viewer = (viewer_fgadirect + editor + parent->viewer)"),
            "{text}"
        );
        assert!(
            text.contains("permission blocked_viewer = (viewer - editor)"),
            "{text}"
        );
        assert_eq!(
            m.stored_relation("document", "viewer"),
            Some("viewer_fgadirect")
        );
        assert_eq!(m.stored_relation("document", "editor"), Some("editor"));
        assert_eq!(m.stored_relation("document", "blocked_viewer"), None);
        assert_eq!(public_relation("viewer_fgadirect"), "viewer");
        crate::schema::compile(&text, &crate::schema::SchemaLimits::default()).unwrap();
    }

    #[test]
    fn refuses_what_the_interim_translation_cannot_carry() {
        let mut m = model(DOCS);
        m.pb.type_definitions[0].r#type = "User".into();
        assert_eq!(to_spicedb(&m).unwrap_err().code, 2056);
        let mut bad = model(DOCS).pb;
        bad.schema_version = "1.0".into();
        assert_eq!(validate(&bad).unwrap_err().code, 2057);
        bad.schema_version = "1.1".into();
        bad.type_definitions.clear();
        assert_eq!(validate(&bad).unwrap_err().code, 2000);
    }

    #[test]
    fn meta_round_trips_through_the_comment() {
        let mut m = model(DOCS).pb;
        m.id = "01HZZZZZZZZZZZZZZZZZZZZZZZ".into();
        let comment = Meta::OpenfgaModel(m.clone()).to_comment();
        match Meta::from_comment(&comment) {
            Some(Meta::OpenfgaModel(back)) => assert_eq!(back, m),
            other => panic!("{other:?}"),
        }
        assert!(Meta::from_comment("authzed.api.v1 WriteSchema").is_none());
    }
}
