//! OpenFGA authorization models compiled to the schema IR.
//!
//! OpenFGA has one relation kind: `define viewer: [user] or editor` both
//! stores tuples (as `viewer`) and computes. The IR keeps SpiceDB's split,
//! so such a define becomes the permission `viewer` plus a *hidden* stored
//! relation, also named `viewer` (tuples are read back under the define's
//! own name), that the rewrite names where the model says `this`
//! ([`ir::Definition::stored_relation`] finds it for writes). A define that
//! is only `[user, ...]` is a plain stored relation; one without `[...]`
//! a plain permission.
//!
//! Names are mapped losslessly onto Verdict's grammar ([`names`]); the
//! compiled schema carries [`ir::Schema::is_openfga`], so the engine applies
//! OpenFGA's semantics to it: stored tuples the model does not allow are
//! ignored, a condition missing a parameter is an error, resolution depth
//! is bounded at 25 and cycles evaluate to false.

mod dsl;
pub mod names;

use std::collections::HashMap;
use std::sync::Arc;

use verdict_fga_lang::model::{AuthorizationModel, RelationReference, Userset};

use super::cel_check::CaveatType;
use super::diagnostic::{Diagnostic, Span};
use super::ir::{
    AllowedKind, AllowedSubject, Arrow, ArrowFunc, Caveat, CaveatId, Definition, Relation,
    RelationId, RelationKind, Rewrite, Schema, TypeId,
};

/// Reads OpenFGA model text, DSL or JSON, into the JSON model.
///
/// # Errors
/// The syntax and semantic errors the language reports.
pub fn parse_model(
    text: &str,
    language: super::Language,
) -> Result<AuthorizationModel, Vec<Diagnostic>> {
    match language {
        super::Language::OpenFgaJson => AuthorizationModel::from_json(text).map_err(|e| {
            vec![err(
                "OPENFGA:InvalidJson",
                format!("{e} (line {}, column {})", e.line(), e.column()),
            )]
        }),
        _ => dsl::parse(text),
    }
}

/// Reads a model file: `.fga` DSL, `.json`, or an `fga.mod` modular model
/// (its modules read from beside it).
///
/// # Errors
/// The file cannot be read, or is a modular model this build cannot read.
pub fn read_model_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read model file {}: {e}", path.display()))?;
    if path.file_name().and_then(|n| n.to_str()) == Some("fga.mod") {
        return dsl::combine_modules(path, &text);
    }
    Ok(text)
}

/// The OpenFGA model a file holds, with the name to report it under:
/// `None` when the file is not OpenFGA's (a `.fga` DSL file, `fga.mod`, a
/// `*.fga.yaml` store file's `model` / `model_file`, or any other
/// non-YAML file whose text is an OpenFGA model).
pub fn load_model(path: &std::path::Path) -> Option<Result<(String, String), String>> {
    #[derive(serde::Deserialize)]
    struct StoreModel {
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        model_file: Option<String>,
    }
    let file_name = path.file_name()?.to_str()?;
    let shown = path.display().to_string();
    if file_name.ends_with(".fga.yaml") || file_name.ends_with(".fga.yml") {
        let load = || -> Result<(String, String), String> {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
            let store: StoreModel =
                serde_yaml_ng::from_str(&text).map_err(|e| format!("{shown}: {e}"))?;
            match (store.model, store.model_file) {
                (Some(m), _) => Ok((shown.clone(), m)),
                (None, Some(f)) => {
                    let p = path.parent().unwrap_or(std::path::Path::new(".")).join(f);
                    Ok((p.display().to_string(), read_model_file(&p)?))
                }
                (None, None) => Err(format!("{shown}: neither `model` nor `model_file`")),
            }
        };
        return Some(load());
    }
    if file_name.ends_with(".yaml") || file_name.ends_with(".yml") {
        return None;
    }
    let named_fga = file_name.ends_with(".fga") || file_name == "fga.mod";
    match read_model_file(path) {
        Ok(text) if named_fga || super::detect_language(&text).is_openfga() => {
            Some(Ok((shown, text)))
        }
        Err(e) if named_fga => Some(Err(e)),
        // Not OpenFGA's: the SpiceDB path reads (and reports) it.
        _ => None,
    }
}

/// Formats OpenFGA model text canonically in its own language.
///
/// # Errors
/// As [`parse_model`].
pub fn format_model(text: &str, language: super::Language) -> Result<String, Vec<Diagnostic>> {
    let model = parse_model(text, language)?;
    match language {
        super::Language::OpenFgaJson => Ok(model.to_json_pretty()),
        _ => dsl::format(text, &model),
    }
}

/// Schema versions accepted.
const SCHEMA_VERSIONS: &[&str] = &["1.1", "1.2"];

fn err(code: &'static str, message: String) -> Diagnostic {
    Diagnostic::error(code, Span::new(0, 0), message)
}

fn name(s: &str, what: &'static str, errors: &mut Vec<Diagnostic>) -> String {
    names::encode_name(s, what).unwrap_or_else(|e| {
        errors.push(err("OPENFGA:InvalidName", e.to_string()));
        s.to_string()
    })
}

/// Whether `u` mentions `this` anywhere.
fn has_this(u: &Userset) -> bool {
    match u {
        Userset::This(_) => true,
        Userset::ComputedUserset(_) | Userset::TupleToUserset(_) => false,
        Userset::Union(c) | Userset::Intersection(c) => c.child.iter().any(has_this),
        Userset::Difference(d) => has_this(&d.base) || has_this(&d.subtract),
    }
}

/// An OpenFGA condition parameter type as a caveat type.
fn param_type(t: &verdict_fga_lang::model::ConditionParamTypeRef) -> Option<CaveatType> {
    let generic = || t.generic_types.first().and_then(param_type).map(Box::new);
    Some(match t.type_name.as_str() {
        "TYPE_NAME_ANY" => CaveatType::Any,
        "TYPE_NAME_BOOL" => CaveatType::Bool,
        "TYPE_NAME_STRING" => CaveatType::String,
        "TYPE_NAME_INT" => CaveatType::Int,
        "TYPE_NAME_UINT" => CaveatType::Uint,
        "TYPE_NAME_DOUBLE" => CaveatType::Double,
        "TYPE_NAME_DURATION" => CaveatType::Duration,
        "TYPE_NAME_TIMESTAMP" => CaveatType::Timestamp,
        "TYPE_NAME_IPADDRESS" => CaveatType::IpAddress,
        "TYPE_NAME_LIST" => CaveatType::List(generic()?),
        "TYPE_NAME_MAP" => CaveatType::Map(generic()?),
        _ => return None,
    })
}

/// Compiles an OpenFGA model (schema 1.1 / 1.2, already validated by the
/// language's own checks) to the IR, with OpenFGA semantics on.
///
/// # Errors
/// Every reference the IR cannot resolve (unknown type, relation or
/// condition), an unsupported schema version, or a name that cannot be
/// mapped.
pub fn compile_openfga_model(model: &AuthorizationModel) -> Result<Schema, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    if !SCHEMA_VERSIONS.contains(&model.schema_version.as_str()) {
        errors.push(err(
            "OPENFGA:UnsupportedSchemaVersion",
            format!(
                "schema version `{}` is not supported (use 1.1 or 1.2)",
                model.schema_version
            ),
        ));
        return Err(errors);
    }
    let mut schema = Schema {
        openfga: true,
        ..Schema::default()
    };
    // Pass 1: types and conditions.
    for td in &model.type_definitions {
        let n: Arc<str> = Arc::from(name(&td.type_name, "a type name", &mut errors));
        if schema.type_ids.contains_key(&n) {
            errors.push(err(
                "OPENFGA:DuplicateType",
                format!("type `{}` is defined twice", td.type_name),
            ));
            continue;
        }
        let id = TypeId(schema.definitions.len() as u32);
        schema.type_ids.insert(n.clone(), id);
        schema.definitions.push(Definition {
            id,
            name: n,
            doc: None,
            relations: Vec::new(),
            relation_ids: HashMap::new(),
            stored_ids: HashMap::new(),
        });
    }
    for (cname, cond) in &model.conditions {
        let n: Arc<str> = Arc::from(name(cname, "a condition name", &mut errors));
        let mut params = Vec::new();
        for (p, t) in &cond.parameters {
            match param_type(t) {
                Some(ty) => params.push((Arc::from(p.as_str()), ty)),
                None => errors.push(err(
                    "OPENFGA:UnknownParameterType",
                    format!(
                        "condition `{cname}` parameter `{p}` has unknown type `{}`",
                        t.type_name
                    ),
                )),
            }
        }
        let id = CaveatId(schema.caveats.len() as u32);
        schema.caveat_ids.insert(n.clone(), id);
        schema.caveats.push(Caveat {
            id,
            name: n,
            doc: None,
            params,
            expression: cond.expression.clone(),
        });
    }
    // Pass 2: relation names and ids (named first, hidden stored ones after,
    // so every reference can be resolved in pass 3).
    let mut hidden: Vec<(TypeId, Arc<str>)> = Vec::new();
    for td in &model.type_definitions {
        let Some(ty) = schema
            .type_ids
            .get(&*name(&td.type_name, "a type name", &mut Vec::new()))
            .copied()
        else {
            continue;
        };
        let Some(def) = schema.definitions.get_mut(ty.0 as usize) else {
            continue;
        };
        for (rname, userset) in &td.relations {
            let n: Arc<str> = Arc::from(name(rname, "a relation name", &mut errors));
            let id = RelationId(def.relations.len() as u32);
            def.relation_ids.insert(n.clone(), id);
            def.relations.push(Relation {
                id,
                name: n.clone(),
                doc: None,
                kind: RelationKind::Permission {
                    rewrite: Rewrite::Nil,
                },
            });
            if has_this(userset) && !matches!(userset, Userset::This(_)) {
                hidden.push((ty, n));
            }
        }
    }
    for (ty, n) in hidden {
        if let Some(def) = schema.definitions.get_mut(ty.0 as usize) {
            let id = RelationId(def.relations.len() as u32);
            def.stored_ids.insert(n.clone(), id);
            def.relations.push(Relation {
                id,
                name: n,
                doc: None,
                kind: RelationKind::Relation {
                    allowed: Vec::new(),
                },
            });
        }
    }
    // Pass 3: allowed subjects and rewrites.
    let mut kinds: Vec<(TypeId, RelationId, RelationKind)> = Vec::new();
    for td in &model.type_definitions {
        let tname = name(&td.type_name, "a type name", &mut Vec::new());
        let Some(ty) = schema.type_ids.get(tname.as_str()).copied() else {
            continue;
        };
        let def = schema.definition(ty);
        for (rname, userset) in &td.relations {
            let rn = name(rname, "a relation name", &mut Vec::new());
            let Some(rid) = def.relation_id(&rn) else {
                continue;
            };
            let refs: &[RelationReference] = td
                .metadata
                .as_ref()
                .and_then(|m| m.relations.as_ref())
                .and_then(|r| r.get(rname))
                .map_or(&[], |m| m.directly_related_user_types.as_slice());
            let allowed = if has_this(userset) {
                allowed_subjects(&schema, &td.type_name, rname, refs, &mut errors)
            } else {
                Vec::new()
            };
            let stored = def.stored_ids.get(rn.as_str()).copied();
            if matches!(userset, Userset::This(_)) {
                kinds.push((ty, rid, RelationKind::Relation { allowed }));
                continue;
            }
            if let Some(h) = stored {
                kinds.push((ty, h, RelationKind::Relation { allowed }));
            }
            let ctx = Ctx {
                schema: &schema,
                model,
                ty,
                type_name: &td.type_name,
                relation: rname,
                this: stored,
            };
            let rewrite = ctx.rewrite(userset, &mut errors);
            kinds.push((ty, rid, RelationKind::Permission { rewrite }));
        }
    }
    for (ty, rid, kind) in kinds {
        if let Some(rel) = schema
            .definitions
            .get_mut(ty.0 as usize)
            .and_then(|d| d.relations.get_mut(rid.0 as usize))
        {
            rel.kind = kind;
        }
    }
    if errors.is_empty() {
        Ok(schema)
    } else {
        Err(errors)
    }
}

fn allowed_subjects(
    schema: &Schema,
    type_name: &str,
    relation: &str,
    refs: &[RelationReference],
    errors: &mut Vec<Diagnostic>,
) -> Vec<AllowedSubject> {
    let mut out = Vec::new();
    for r in refs {
        let Some(st) = schema.type_id(&name(&r.type_name, "a type name", &mut Vec::new())) else {
            errors.push(err(
                "OPENFGA:UnknownType",
                format!(
                    "`{type_name}#{relation}` allows unknown type `{}`",
                    r.type_name
                ),
            ));
            continue;
        };
        let kind = if r.wildcard {
            AllowedKind::Wildcard
        } else if r.relation.is_empty() {
            AllowedKind::Direct
        } else {
            let rn = name(&r.relation, "a relation name", &mut Vec::new());
            match schema.definition(st).relation_id(&rn) {
                Some(id) => AllowedKind::Userset(id),
                None => {
                    errors.push(err(
                        "OPENFGA:UnknownRelation",
                        format!(
                            "`{type_name}#{relation}` allows `{}#{}`, which is not defined",
                            r.type_name, r.relation
                        ),
                    ));
                    continue;
                }
            }
        };
        let caveat = if r.condition.is_empty() {
            None
        } else {
            let cn = name(&r.condition, "a condition name", &mut Vec::new());
            match schema.caveat_id(&cn) {
                Some(c) => Some(c),
                None => {
                    errors.push(err(
                        "OPENFGA:UnknownCondition",
                        format!(
                            "`{type_name}#{relation}` names unknown condition `{}`",
                            r.condition
                        ),
                    ));
                    continue;
                }
            }
        };
        out.push(AllowedSubject {
            subject_type: st,
            kind,
            caveat,
            expiration: false,
        });
    }
    out
}

/// What a rewrite is compiled against.
struct Ctx<'a> {
    schema: &'a Schema,
    model: &'a AuthorizationModel,
    ty: TypeId,
    type_name: &'a str,
    relation: &'a str,
    /// The hidden stored relation `this` reads, if the define has one.
    this: Option<RelationId>,
}

impl Ctx<'_> {
    fn relation_id(&self, rel: &str, errors: &mut Vec<Diagnostic>) -> Option<RelationId> {
        let rn = name(rel, "a relation name", &mut Vec::new());
        let found = self.schema.definition(self.ty).relation_id(&rn);
        if found.is_none() {
            errors.push(err(
                "OPENFGA:UnknownRelation",
                format!(
                    "`{}#{}` refers to relation `{rel}`, which `{}` does not define",
                    self.type_name, self.relation, self.type_name
                ),
            ));
        }
        found
    }

    fn rewrite(&self, u: &Userset, errors: &mut Vec<Diagnostic>) -> Rewrite {
        match u {
            Userset::This(_) => self.this.map_or(Rewrite::Nil, Rewrite::Computed),
            Userset::ComputedUserset(c) => self
                .relation_id(&c.relation, errors)
                .map_or(Rewrite::Nil, Rewrite::Computed),
            Userset::TupleToUserset(t) => {
                self.arrow(&t.tupleset.relation, &t.computed_userset.relation, errors)
            }
            Userset::Union(c) => {
                Rewrite::Union(c.child.iter().map(|c| self.rewrite(c, errors)).collect())
            }
            Userset::Intersection(c) => {
                Rewrite::Intersection(c.child.iter().map(|c| self.rewrite(c, errors)).collect())
            }
            Userset::Difference(d) => Rewrite::Exclusion(
                Box::new(self.rewrite(&d.base, errors)),
                Box::new(self.rewrite(&d.subtract, errors)),
            ),
        }
    }

    /// `target from tupleset`: follows the tuples stored under `tupleset`
    /// (its hidden stored relation when the define also computes).
    fn arrow(&self, tupleset: &str, target: &str, errors: &mut Vec<Diagnostic>) -> Rewrite {
        let Some(ts) = self.relation_id(tupleset, errors) else {
            return Rewrite::Nil;
        };
        let def = self.schema.definition(self.ty);
        let ts_name = name(tupleset, "a relation name", &mut Vec::new());
        let ts = def.stored_ids.get(ts_name.as_str()).copied().unwrap_or(ts);
        // The tupleset's allowed subject types, from the model (the IR's
        // `allowed` is filled in after all rewrites are built).
        let refs: Vec<&RelationReference> = self
            .model
            .type_definitions
            .iter()
            .filter(|td| td.type_name == self.type_name)
            .filter_map(|td| td.metadata.as_ref()?.relations.as_ref()?.get(tupleset))
            .flat_map(|m| m.directly_related_user_types.iter())
            .collect();
        let target_name: Arc<str> = Arc::from(name(target, "a relation name", &mut Vec::new()));
        let mut resolved: Vec<(TypeId, RelationId)> = Vec::new();
        for r in refs {
            let Some(st) = self
                .schema
                .type_id(&name(&r.type_name, "a type name", &mut Vec::new()))
            else {
                continue;
            };
            if let Some(tr) = self.schema.definition(st).relation_id(&target_name) {
                if !resolved.contains(&(st, tr)) {
                    resolved.push((st, tr));
                }
            }
        }
        Rewrite::Arrow(Arrow {
            tupleset: ts,
            target: target_name,
            func: ArrowFunc::Any,
            resolved,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(json: &str) -> AuthorizationModel {
        AuthorizationModel::from_json(json).unwrap()
    }

    #[test]
    fn a_define_with_direct_types_and_operands_gets_a_hidden_stored_relation() {
        let m = model(
            r#"{"schema_version":"1.1","type_definitions":[
            {"type":"user"},
            {"type":"document","relations":{
              "editor":{"this":{}},
              "viewer":{"union":{"child":[{"this":{}},{"computedUserset":{"relation":"editor"}}]}}},
             "metadata":{"relations":{
              "editor":{"directly_related_user_types":[{"type":"user"}]},
              "viewer":{"directly_related_user_types":[{"type":"user"},{"type":"user","wildcard":{}}]}}}}]}"#,
        );
        let s = compile_openfga_model(&m).unwrap();
        assert!(s.is_openfga());
        let doc = s.definition_named("document").unwrap();
        let viewer = doc.relation_named("viewer").unwrap();
        assert!(viewer.is_permission());
        let stored = doc.stored_relation("viewer").unwrap();
        assert!(!stored.is_permission());
        assert_eq!(&*stored.name, "viewer");
        assert_eq!(stored.allowed().len(), 2);
        assert!(doc.is_hidden(stored.id));
        // A plain `[user]` define is a plain stored relation.
        let editor = doc.relation_named("editor").unwrap();
        assert!(!editor.is_permission());
        assert_eq!(doc.stored_relation("editor").unwrap().id, editor.id);
        match &viewer.kind {
            RelationKind::Permission {
                rewrite: Rewrite::Union(c),
            } => {
                assert_eq!(c[0], Rewrite::Computed(stored.id));
                assert_eq!(c[1], Rewrite::Computed(editor.id));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_references_are_errors() {
        let m = model(
            r#"{"schema_version":"1.1","type_definitions":[
            {"type":"document","relations":{"viewer":{"computedUserset":{"relation":"nope"}}}}]}"#,
        );
        assert!(compile_openfga_model(&m).is_err());
        let m = model(r#"{"schema_version":"9.9","type_definitions":[]}"#);
        assert!(compile_openfga_model(&m).is_err());
    }

    #[test]
    fn wider_names_are_mapped() {
        let m = model(
            r#"{"schema_version":"1.1","type_definitions":[
            {"type":"User"},
            {"type":"asset-category","relations":{"r":{"this":{}}},
             "metadata":{"relations":{"r":{"directly_related_user_types":[{"type":"User"}]}}}}]}"#,
        );
        let s = compile_openfga_model(&m).unwrap();
        let t = names::encode_name("asset-category", "t").unwrap();
        let r = names::encode_name("r", "r").unwrap();
        assert!(s.stored_relation(&t, &r).is_some());
    }
}
