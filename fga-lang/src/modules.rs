//! Modular models (schema 1.2): `fga.mod` and combining module files into
//! one model, as upstream's mod-to-json and modules-to-model.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{DslError, DslErrors, ErrorKind, Range};
use crate::model::{AuthorizationModel, Condition, SourceInfo, TypeDefinition};
use crate::parser::parse_dsl_syntax;
use crate::validate::{locate_in_file, validate_model};

/// A value of fga.mod with its position (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located<T> {
    pub value: T,
    pub line: Range,
    pub column: Range,
}

/// A parsed `fga.mod`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModFile {
    pub schema: Located<String>,
    pub contents: Located<Vec<Located<String>>>,
}

impl serde::Serialize for Range {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Range", 2)?;
        st.serialize_field("start", &self.start)?;
        st.serialize_field("end", &self.end)?;
        st.end()
    }
}

/// One YAML scalar of fga.mod: its text, whether it was quoted, position.
struct Scalar {
    text: String,
    quoted: bool,
    line: usize,
    col: usize,
    raw_len: usize,
}

fn scalar(raw: &str, line: usize, col: usize) -> Scalar {
    let t = raw.trim_end();
    let quoted = t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')));
    let text = if quoted {
        let inner = t.get(1..t.len() - 1).unwrap_or("");
        if t.starts_with('"') {
            inner.replace("\\\\", "\\").replace("\\\"", "\"")
        } else {
            inner.replace("''", "'")
        }
    } else {
        t.to_string()
    };
    Scalar {
        text,
        quoted,
        line,
        col,
        raw_len: t.chars().count(),
    }
}

/// A plain scalar YAML would not read as a string.
fn is_string(s: &Scalar) -> bool {
    if s.quoted {
        return true;
    }
    let t = s.text.as_str();
    let lower = t.to_ascii_lowercase();
    !(matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | ""
    ) || t.parse::<f64>().is_ok())
}

fn mod_error(msg: String, line: usize, col: usize, len: usize) -> DslError {
    let mut e = DslError::transformation(msg, "fga.mod");
    e.kind = ErrorKind::Semantic;
    e.error_type = String::new();
    e.line = Range {
        start: line,
        end: line,
    };
    e.column = Range {
        start: col,
        end: col + len,
    };
    e
}

fn strip_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(i) => line.get(..i).unwrap_or(line),
        None if line.trim_start().starts_with('#') => "",
        None => line,
    }
}

/// Parses `fga.mod`: `schema: '1.2'` and `contents: [files]`.
pub fn parse_mod_file(src: &str) -> Result<ModFile, DslErrors> {
    let lines: Vec<&str> = src.split('\n').collect();
    let mut schema: Option<Scalar> = None;
    let mut contents: Option<(Option<Scalar>, Vec<Scalar>, usize)> = None;
    let mut in_contents = false;
    for (i, raw) in lines.iter().enumerate() {
        let line = strip_comment(raw);
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if indent > 0 || body.starts_with("- ") || body == "-" {
            if in_contents {
                if let Some(item) = body.strip_prefix('-') {
                    let lead = item.len() - item.trim_start().len();
                    let col = indent + 1 + lead;
                    if let Some((_, items, _)) = contents.as_mut() {
                        items.push(scalar(item.trim_start(), i, col));
                    }
                }
            }
            continue;
        }
        in_contents = false;
        let Some((key, value)) = body.split_once(':') else {
            continue;
        };
        let lead = value.len() - value.trim_start().len();
        let vcol = key.len() + 1 + lead;
        let v = value.trim();
        match key.trim() {
            "schema" => schema = Some(scalar(v, i, vcol)),
            "contents" => {
                if v.is_empty() {
                    in_contents = true;
                    contents = Some((None, Vec::new(), i));
                } else {
                    contents = Some((Some(scalar(v, i, vcol)), Vec::new(), i));
                }
            }
            _ => {}
        }
    }
    let mut errors = Vec::new();
    let schema_out = match schema {
        None => {
            errors.push(mod_error("missing schema field".into(), 0, 0, 0));
            None
        }
        Some(s) if !is_string(&s) => {
            errors.push(mod_error(
                format!(
                    "unexpected schema type, expected string got value {}",
                    s.text
                ),
                s.line,
                s.col,
                s.raw_len,
            ));
            None
        }
        Some(s) if s.text != "1.2" => {
            errors.push(mod_error(
                "unsupported schema version, fga.mod only supported in version `1.2`".into(),
                s.line,
                s.col,
                s.raw_len,
            ));
            None
        }
        Some(s) => Some(Located {
            value: s.text,
            line: Range {
                start: s.line,
                end: s.line,
            },
            column: Range {
                start: s.col,
                end: s.col + s.raw_len,
            },
        }),
    };
    let contents_out = match contents {
        None => {
            errors.push(mod_error("missing contents field".into(), 0, 0, 0));
            None
        }
        Some((Some(v), _, _)) => {
            errors.push(mod_error(
                format!(
                    "unexpected contents type, expected list of strings got value {}",
                    v.text
                ),
                v.line,
                v.col,
                v.raw_len,
            ));
            None
        }
        Some((None, items, key_line)) => {
            let mut out = Vec::new();
            for it in &items {
                let err = |msg: String| mod_error(msg, it.line, it.col, it.raw_len);
                if !is_string(it) {
                    errors.push(err(format!(
                        "unexpected contents item type, expected string got value {}",
                        it.text
                    )));
                    continue;
                }
                let decoded = percent_decode(&it.text);
                let Some(decoded) = decoded else {
                    errors.push(err(format!("failed to decode path: {}", it.text)));
                    continue;
                };
                let path = decoded.replace('\\', "/");
                if path.contains("../") || path.starts_with('/') {
                    errors.push(err(format!("invalid contents item {}", it.text)));
                    continue;
                }
                if !path.ends_with(".fga") {
                    errors.push(err(format!(
                        "contents items should use fga file extension, got {}",
                        it.text
                    )));
                    continue;
                }
                out.push(Located {
                    value: path,
                    line: Range {
                        start: it.line,
                        end: it.line,
                    },
                    column: Range {
                        start: it.col,
                        end: it.col + it.raw_len,
                    },
                });
            }
            let (start_line, start_col) = items
                .first()
                .map_or((key_line, 0), |f| (f.line, f.col.saturating_sub(2)));
            let end_line = items.last().map_or(key_line, |l| l.line + 1);
            Some(Located {
                value: out,
                line: Range {
                    start: start_line,
                    end: end_line,
                },
                column: Range {
                    start: start_col,
                    end: 0,
                },
            })
        }
    };
    match (schema_out, contents_out) {
        (Some(schema), Some(contents)) if errors.is_empty() => Ok(ModFile { schema, contents }),
        _ => Err(DslErrors(errors)),
    }
}

/// URL query unescaping (`%2e` → `.`, `+` → space), `None` on a bad escape.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// One module file: its name (as listed in fga.mod) and text.
#[derive(Debug, Clone)]
pub struct ModuleFile {
    pub name: String,
    pub contents: String,
}

/// Combines module files into one model (`schema_version`, normally 1.2),
/// then validates it; errors name their file and position in it.
pub fn combine_modules(
    files: &[ModuleFile],
    schema_version: &str,
) -> Result<AuthorizationModel, DslErrors> {
    let mut errors: Vec<DslError> = Vec::new();
    let mut type_defs: Vec<TypeDefinition> = Vec::new();
    let mut extended: Vec<(String, TypeDefinition)> = Vec::new();
    let mut conditions: BTreeMap<String, Condition> = BTreeMap::new();
    let texts: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.name.as_str(), f.contents.as_str()))
        .collect();
    for f in files {
        let parsed = match parse_dsl_syntax(&f.contents) {
            Ok(p) => p,
            Err(DslErrors(es)) => {
                errors.extend(es.into_iter().map(|mut e| {
                    e.file = f.name.clone();
                    e
                }));
                continue;
            }
        };
        for mut td in parsed.model.type_definitions {
            if parsed.extended.contains(&td.type_name) {
                extended.push((f.name.clone(), td));
                continue;
            }
            let Some(meta) = td.metadata.as_mut() else {
                let e = DslError::transformation("file is not a module", &f.name);
                errors.push(e);
                continue;
            };
            meta.source_info = Some(SourceInfo {
                file: f.name.clone(),
            });
            type_defs.push(td);
        }
        for (name, mut c) in parsed.model.conditions {
            if conditions.contains_key(&name) {
                let mut e =
                    DslError::transformation(format!("duplicate condition {name}"), &f.name);
                locate_symbol(&mut e, &f.contents, &name, |l| {
                    l.trim()
                        .strip_prefix(&format!("condition {name}"))
                        .is_some_and(|r| r.trim_start().starts_with('('))
                });
                errors.push(e);
                continue;
            }
            if let Some(m) = c.metadata.as_mut() {
                m.source_info = Some(SourceInfo {
                    file: f.name.clone(),
                });
            }
            conditions.insert(name, c);
        }
    }
    for (file, ext) in extended {
        let src = texts.get(file.as_str()).copied().unwrap_or("");
        let Some(original) = type_defs.iter_mut().find(|t| t.type_name == ext.type_name) else {
            let mut e = DslError::transformation(
                format!("extended type {} does not exist", ext.type_name),
                &file,
            );
            let t = ext.type_name.clone();
            locate_symbol(&mut e, src, &t, |l| {
                l.trim()
                    .strip_prefix(&format!("extend type {t}"))
                    .is_some_and(|r| r.is_empty() || r.trim_start().starts_with('#'))
            });
            errors.push(e);
            continue;
        };
        let ext_meta = ext.metadata.and_then(|m| m.relations).unwrap_or_default();
        if original.relations.is_empty() {
            original.relations = ext.relations;
            let meta = original.metadata.get_or_insert_with(Default::default);
            let mut rels = ext_meta;
            for m in rels.values_mut() {
                m.source_info = Some(SourceInfo { file: file.clone() });
            }
            meta.relations = Some(rels);
            continue;
        }
        for (name, rel) in ext.relations {
            if original.relations.contains_key(&name) {
                let mut e = DslError::transformation(
                    format!("relation {name} already exists on type {}", ext.type_name),
                    &file,
                );
                locate_symbol(&mut e, src, &name, |l| {
                    l.trim()
                        .strip_prefix(&format!("define {name}"))
                        .is_some_and(|r| r.trim_start().starts_with(':'))
                });
                errors.push(e);
                continue;
            }
            let Some(mut m) = ext_meta.get(&name).cloned() else {
                errors.push(DslError::transformation(
                    format!("unable to find relation metadata for {name}"),
                    &file,
                ));
                continue;
            };
            m.source_info = Some(SourceInfo { file: file.clone() });
            original.relations.insert(name.clone(), rel);
            let meta = original.metadata.get_or_insert_with(Default::default);
            meta.relations
                .get_or_insert_with(Default::default)
                .insert(name, m);
        }
    }
    let model = AuthorizationModel {
        id: None,
        schema_version: schema_version.to_string(),
        type_definitions: type_defs,
        conditions,
    };
    for mut e in validate_model(&model, None) {
        if !e.file.is_empty() && !e.module.is_empty() && !e.symbol.is_empty() {
            if let Some(src) = texts.get(e.file.as_str()) {
                locate_in_file(&mut e, src);
            }
        }
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(model)
    } else {
        Err(DslErrors(errors))
    }
}

/// Line/column of `symbol` on the first line matching `pred` (0,0 if none).
fn locate_symbol(e: &mut DslError, src: &str, symbol: &str, pred: impl Fn(&str) -> bool) {
    e.symbol = symbol.to_string();
    let Some((i, line)) = src.split('\n').enumerate().find(|(_, l)| pred(l)) else {
        return;
    };
    let col = crate::validate::word_search_pub(line, symbol).unwrap_or(0);
    e.line = Range { start: i, end: i };
    e.column = Range {
        start: col,
        end: col + symbol.chars().count(),
    };
}

/// The distinct modules a combined model came from, sorted.
pub fn modules_of(model: &AuthorizationModel) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for t in &model.type_definitions {
        if let Some(m) = &t.metadata {
            if !m.module.is_empty() {
                out.insert(m.module.clone());
            }
            for r in m.relations.iter().flat_map(|r| r.values()) {
                if !r.module.is_empty() {
                    out.insert(r.module.clone());
                }
            }
        }
    }
    for c in model.conditions.values() {
        if let Some(m) = c.metadata.as_ref().filter(|m| !m.module.is_empty()) {
            out.insert(m.module.clone());
        }
    }
    out.into_iter().collect()
}
