//! [`AuthorizationModel`] → DSL text, formatted as upstream formats it
//! (pkg/go/transformer/jsontodsl.go).

use std::cmp::Ordering;

use crate::model::{AuthorizationModel, ConditionParamTypeRef, RelationReference, Userset};

/// A model the DSL cannot express.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToDslError {
    #[error("the '{relation}' relation definition under the '{type_name}' type is not supported by the OpenFGA DSL syntax yet")]
    UnsupportedNesting { type_name: String, relation: String },
    #[error("the '{key}' condition has a different nested condition name ('{name}')")]
    ConditionNameMismatch { key: String, name: String },
}

impl ToDslError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            ToDslError::UnsupportedNesting { .. } => "FGA:UnsupportedDslNesting",
            ToDslError::ConditionNameMismatch { .. } => "FGA:ConditionNameMismatch",
        }
    }
}

/// Options of [`to_dsl_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ToDslOptions {
    /// Append ` # module: M, file: F` to modular declarations.
    pub include_source_information: bool,
}

/// The model in DSL form.
pub fn to_dsl(model: &AuthorizationModel) -> Result<String, ToDslError> {
    to_dsl_with(model, ToDslOptions::default())
}

fn sort_by_module(a: (&str, &str, &str), b: (&str, &str, &str)) -> Ordering {
    let (an, am, af) = a;
    let (bn, bm, bf) = b;
    if am.is_empty() && bm.is_empty() {
        return an.cmp(bn);
    }
    if am.is_empty() {
        return Ordering::Less;
    }
    if bm.is_empty() {
        return Ordering::Greater;
    }
    if am != bm {
        return am.cmp(bm);
    }
    if af != bf {
        return af.cmp(bf);
    }
    an.cmp(bn)
}

fn source_comment(module: &str, file: &str, lead: &str, include: bool) -> String {
    if (module.is_empty() && file.is_empty()) || !include {
        return String::new();
    }
    format!(" #{lead} module: {module}, file: {file}")
}

/// The model in DSL form, with options.
pub fn to_dsl_with(model: &AuthorizationModel, opts: ToDslOptions) -> Result<String, ToDslError> {
    let include = opts.include_source_information;
    let mut types: Vec<_> = model.type_definitions.iter().collect();
    let modular = types
        .iter()
        .any(|t| t.metadata.as_ref().is_some_and(|m| !m.module.is_empty()));
    let key = |t: &crate::model::TypeDefinition| {
        let m = t.metadata.as_ref();
        (
            t.type_name.clone(),
            m.map(|m| m.module.clone()).unwrap_or_default(),
            m.and_then(|m| m.source_info.as_ref())
                .map(|s| s.file.clone())
                .unwrap_or_default(),
        )
    };
    if modular {
        types.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            sort_by_module((&ka.0, &ka.1, &ka.2), (&kb.0, &kb.1, &kb.2))
        });
    }
    let mut parts = Vec::new();
    for t in types {
        let (_, module, file) = key(t);
        let mut s = format!(
            "type {}{}",
            t.type_name,
            source_comment(&module, &file, "", include)
        );
        if !t.relations.is_empty() {
            s.push_str("\n  relations");
            let rel_meta = t.metadata.as_ref().and_then(|m| m.relations.as_ref());
            let mut names: Vec<&String> = t.relations.keys().collect();
            if modular {
                let rk = |n: &String| {
                    let m = rel_meta.and_then(|r| r.get(n));
                    (
                        m.map(|m| m.module.clone()).unwrap_or_default(),
                        m.and_then(|m| m.source_info.as_ref())
                            .map(|s| s.file.clone())
                            .unwrap_or_default(),
                    )
                };
                names.sort_by(|a, b| {
                    let (ma, fa) = rk(a);
                    let (mb, fb) = rk(b);
                    sort_by_module((a, &ma, &fa), (b, &mb, &fb))
                });
            }
            for name in names {
                let Some(def) = t.relations.get(name) else {
                    continue;
                };
                let meta = rel_meta.and_then(|r| r.get(name));
                let empty = Vec::new();
                let restrictions = meta.map_or(&empty, |m| &m.directly_related_user_types);
                let src = source_comment(
                    meta.map_or("", |m| m.module.as_str()),
                    meta.and_then(|m| m.source_info.as_ref())
                        .map_or("", |s| s.file.as_str()),
                    " extended by:",
                    include,
                );
                let mut count = 0usize;
                let err = || ToDslError::UnsupportedNesting {
                    type_name: t.type_name.clone(),
                    relation: name.clone(),
                };
                let text = match def {
                    Userset::Union(u) => join(&u.child, " or ", restrictions, &mut count),
                    Userset::Intersection(u) => join(&u.child, " and ", restrictions, &mut count),
                    Userset::Difference(d) => difference(d, restrictions, &mut count),
                    other => sub(other, restrictions, &mut count),
                };
                if !(count == 0 || (count == 1 && is_first_position(def))) {
                    return Err(err());
                }
                s.push_str(&format!("\n    define {name}: {text}{src}"));
            }
        }
        parts.push(format!("\n{s}"));
    }
    let mut type_defs = parts.join("\n");
    if !parts.is_empty() {
        type_defs.push('\n');
    }
    let mut conditions = String::new();
    let mut names: Vec<&String> = model.conditions.keys().collect();
    let ck = |n: &String| {
        let m = model.conditions.get(n).and_then(|c| c.metadata.as_ref());
        (
            m.map(|m| m.module.clone()).unwrap_or_default(),
            m.and_then(|m| m.source_info.as_ref())
                .map(|s| s.file.clone())
                .unwrap_or_default(),
        )
    };
    names.sort_by(|a, b| {
        let (ma, fa) = ck(a);
        let (mb, fb) = ck(b);
        sort_by_module((a, &ma, &fa), (b, &mb, &fb))
    });
    for name in names {
        let Some(c) = model.conditions.get(name) else {
            continue;
        };
        if *name != c.name {
            return Err(ToDslError::ConditionNameMismatch {
                key: name.clone(),
                name: c.name.clone(),
            });
        }
        let params: Vec<String> = c
            .parameters
            .iter()
            .map(|(p, t)| format!("{p}: {}", param_type(t)))
            .collect();
        let (m, f) = ck(name);
        conditions.push_str(&format!(
            "\ncondition {}({}) {{\n  {}\n}}{}\n",
            c.name,
            params.join(", "),
            c.expression,
            source_comment(&m, &f, "", include)
        ));
    }
    Ok(format!(
        "model\n  schema {}\n{type_defs}{conditions}",
        model.schema_version
    ))
}

fn type_short(t: &str) -> String {
    t.strip_prefix("TYPE_NAME_").unwrap_or(t).to_lowercase()
}

fn param_type(t: &ConditionParamTypeRef) -> String {
    let base = type_short(&t.type_name);
    if base == "list" || base == "map" {
        let g = t
            .generic_types
            .first()
            .map_or_else(|| "unspecified".to_string(), |g| type_short(&g.type_name));
        format!("{base}<{g}>")
    } else {
        base
    }
}

fn restriction(r: &RelationReference) -> String {
    let mut s = r.type_name.clone();
    if r.wildcard {
        s.push_str(":*");
    }
    if !r.relation.is_empty() {
        s.push('#');
        s.push_str(&r.relation);
    }
    if !r.condition.is_empty() {
        s.push_str(" with ");
        s.push_str(&r.condition);
    }
    s
}

/// `this` first, the rest in order.
fn prioritize_direct(children: &[Userset]) -> Vec<&Userset> {
    let pos = children.iter().position(|c| matches!(c, Userset::This(_)));
    let mut out: Vec<&Userset> = Vec::with_capacity(children.len());
    if let Some(p) = pos {
        if let Some(c) = children.get(p) {
            out.push(c);
        }
        out.extend(children.iter().enumerate().filter(|(i, _)| *i != p).map(|(_, c)| c));
    } else {
        out.extend(children.iter());
    }
    out
}

fn join(children: &[Userset], sep: &str, rs: &[RelationReference], count: &mut usize) -> String {
    prioritize_direct(children)
        .into_iter()
        .map(|c| sub(c, rs, count))
        .collect::<Vec<_>>()
        .join(sep)
}

fn difference(d: &crate::model::Difference, rs: &[RelationReference], count: &mut usize) -> String {
    let base = sub(&d.base, rs, count);
    let subtract = sub(&d.subtract, rs, count);
    format!("{base} but not {subtract}")
}

fn sub(u: &Userset, rs: &[RelationReference], count: &mut usize) -> String {
    match u {
        Userset::This(_) => {
            *count += 1;
            format!(
                "[{}]",
                rs.iter().map(restriction).collect::<Vec<_>>().join(", ")
            )
        }
        Userset::ComputedUserset(c) => c.relation.clone(),
        Userset::TupleToUserset(t) => {
            format!("{} from {}", t.computed_userset.relation, t.tupleset.relation)
        }
        Userset::Union(x) => format!("({})", join(&x.child, " or ", rs, count)),
        Userset::Intersection(x) => format!("({})", join(&x.child, " and ", rs, count)),
        Userset::Difference(d) => format!("({})", difference(d, rs, count)),
    }
}

fn is_first_position(u: &Userset) -> bool {
    match u {
        Userset::This(_) => true,
        Userset::Difference(d) => is_first_position(&d.base),
        Userset::Intersection(x) | Userset::Union(x) => {
            if x.child.iter().any(|c| matches!(c, Userset::This(_))) {
                return true;
            }
            x.child.first().is_some_and(is_first_position)
        }
        _ => false,
    }
}
