//! `fga model test` store files (`*.fga.yaml`): parsing and the structural
//! checks of upstream's validate-store.ts (JSON-schema style errors). The
//! assertions are run elsewhere, against Verdict's engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DslErrors;
use crate::model::AuthorizationModel;
use crate::modules::{combine_modules, parse_mod_file, ModuleFile};

/// A store file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    #[serde(default)]
    pub name: String,
    /// Inline DSL; takes precedence over `model_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuples: Vec<Tuple>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuple_file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuple_files: Vec<String>,
    #[serde(default)]
    pub tests: Vec<StoreTest>,
}

/// A relationship tuple, optionally conditioned.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuple {
    pub user: String,
    pub relation: String,
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<TupleCondition>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TupleCondition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One named test.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreTest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuples: Vec<Tuple>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuple_file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuple_files: Vec<String>,
    #[serde(default)]
    pub check: Vec<CheckTest>,
    #[serde(default)]
    pub list_objects: Vec<ListObjectsTest>,
    #[serde(default)]
    pub list_users: Vec<ListUsersTest>,
}

/// One check block: `user`/`users` × `object`/`objects` × each asserted
/// relation (the `fga` CLI accepts the plural lists since v0.6).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckTest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    pub assertions: BTreeMap<String, bool>,
}

impl CheckTest {
    /// Every user this block asks about: `user`, then `users`.
    pub fn all_users(&self) -> Vec<&str> {
        std::iter::once(self.user.as_str())
            .filter(|u| !u.is_empty())
            .chain(self.users.iter().map(String::as_str))
            .collect()
    }

    /// Every object this block asks about: `object`, then `objects`.
    pub fn all_objects(&self) -> Vec<&str> {
        std::iter::once(self.object.as_str())
            .filter(|o| !o.is_empty())
            .chain(self.objects.iter().map(String::as_str))
            .collect()
    }
}

/// `null` (the CLI writes it for "no objects") reads as empty.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A map whose `null` values read as empty.
fn null_values_as_default<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    let map: BTreeMap<String, Option<T>> = null_as_default(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListObjectsTest {
    pub user: String,
    #[serde(rename = "type")]
    pub object_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(deserialize_with = "null_values_as_default")]
    pub assertions: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsersTest {
    pub object: String,
    pub user_filter: Vec<UserFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    pub assertions: BTreeMap<String, ListUsersAssertion>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserFilter {
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsersAssertion {
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<String>,
}

/// One structural problem, shaped as upstream's (ajv) errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreError {
    pub keyword: String,
    pub message: String,
    #[serde(rename = "instancePath")]
    pub instance_path: String,
    #[serde(rename = "schemaPath")]
    pub schema_path: String,
    /// `additionalProperty` / `missingProperty` / `type`, when relevant.
    pub params: BTreeMap<String, String>,
}

/// Why a store file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreFileError {
    #[error("store file is not valid YAML: {0}")]
    Yaml(String),
    #[error("store file is invalid: {}", .0.iter().map(|e| format!("{} {}", e.instance_path, e.message)).collect::<Vec<_>>().join("; "))]
    Schema(Vec<StoreError>),
    #[error("cannot read `{path}`: {reason}")]
    Io { path: String, reason: String },
    #[error("model is invalid: {0}")]
    Model(DslErrors),
    #[error("tuple file `{path}` is invalid: {reason}")]
    TupleFile { path: String, reason: String },
}

impl StoreFileError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreFileError::Yaml(_) => "STORE_FILE:InvalidYaml",
            StoreFileError::Schema(_) => "STORE_FILE:InvalidStructure",
            StoreFileError::Io { .. } => "STORE_FILE:Io",
            StoreFileError::Model(_) => "STORE_FILE:InvalidModel",
            StoreFileError::TupleFile { .. } => "STORE_FILE:InvalidTupleFile",
        }
    }
}

type Shape = &'static [(&'static str, Kind)];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Obj,
    Tuples,
    Tests,
    Checks,
    ListObjects,
    ListUsers,
    StrList,
}

const TOP: Shape = &[
    ("name", Kind::Str),
    ("model_file", Kind::Str),
    ("model", Kind::Str),
    ("tuple_file", Kind::Str),
    ("tuple_files", Kind::StrList),
    ("tuples", Kind::Tuples),
    ("tests", Kind::Tests),
];
const TUPLE: Shape = &[
    ("user", Kind::Str),
    ("relation", Kind::Str),
    ("object", Kind::Str),
    ("condition", Kind::Obj),
];
const TEST: Shape = &[
    ("name", Kind::Str),
    ("description", Kind::Str),
    ("context", Kind::Obj),
    ("tuple_file", Kind::Str),
    ("tuple_files", Kind::StrList),
    ("tuples", Kind::Tuples),
    ("check", Kind::Checks),
    ("list_objects", Kind::ListObjects),
    ("list_users", Kind::ListUsers),
];
const CHECK: Shape = &[
    ("user", Kind::Str),
    ("users", Kind::StrList),
    ("object", Kind::Str),
    ("objects", Kind::StrList),
    ("assertions", Kind::Obj),
    ("context", Kind::Obj),
];
const LIST_OBJECTS: Shape = &[
    ("user", Kind::Str),
    ("relation", Kind::Str),
    ("type", Kind::Str),
    ("assertions", Kind::Obj),
    ("context", Kind::Obj),
];
const LIST_USERS: Shape = &[
    ("object", Kind::Str),
    ("user_filter", Kind::Obj),
    ("context", Kind::Obj),
    ("assertions", Kind::Obj),
];

struct Checker {
    errors: Vec<StoreError>,
}

impl Checker {
    fn push(
        &mut self,
        keyword: &str,
        message: String,
        instance: &str,
        schema: &str,
        params: &[(&str, &str)],
    ) {
        self.errors.push(StoreError {
            keyword: keyword.into(),
            message,
            instance_path: instance.into(),
            schema_path: schema.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
    }

    fn object(
        &mut self,
        v: &serde_yaml_ng::Value,
        shape: Shape,
        required: &[&str],
        instance: &str,
        schema: &str,
    ) {
        let Some(map) = v.as_mapping() else {
            self.push(
                "type",
                "must be object".into(),
                instance,
                &format!("{schema}/type"),
                &[("type", "object")],
            );
            return;
        };
        for (k, _) in map {
            let key = k.as_str().unwrap_or("");
            if !shape.iter().any(|(n, _)| *n == key) {
                self.push(
                    "additionalProperties",
                    "must NOT have additional properties".into(),
                    instance,
                    &format!("{schema}/additionalProperties"),
                    &[("additionalProperty", key)],
                );
            }
        }
        for r in required {
            if map.get(*r).is_none() {
                self.push(
                    "required",
                    format!("must have required property '{r}'"),
                    instance,
                    &format!("{schema}/required"),
                    &[("missingProperty", r)],
                );
            }
        }
        for (name, kind) in shape {
            let Some(child) = map.get(*name) else {
                continue;
            };
            let inst = format!("{instance}/{name}");
            let sch = format!("{schema}/properties/{name}");
            self.value(child, *kind, &inst, &sch);
        }
    }

    fn array(
        &mut self,
        v: &serde_yaml_ng::Value,
        instance: &str,
        schema: &str,
        mut each: impl FnMut(&mut Self, &serde_yaml_ng::Value, &str, &str),
    ) {
        let Some(seq) = v.as_sequence() else {
            self.push(
                "type",
                "must be array".into(),
                instance,
                &format!("{schema}/type"),
                &[("type", "array")],
            );
            return;
        };
        for (i, item) in seq.iter().enumerate() {
            each(
                self,
                item,
                &format!("{instance}/{i}"),
                &format!("{schema}/items"),
            );
        }
    }

    fn value(&mut self, v: &serde_yaml_ng::Value, kind: Kind, instance: &str, schema: &str) {
        match kind {
            Kind::Str => {
                if !v.is_string() {
                    self.push(
                        "type",
                        "must be string".into(),
                        instance,
                        &format!("{schema}/type"),
                        &[("type", "string")],
                    );
                }
            }
            Kind::Obj => {
                if !v.is_mapping() && !v.is_sequence() {
                    self.push(
                        "type",
                        "must be object".into(),
                        instance,
                        &format!("{schema}/type"),
                        &[("type", "object")],
                    );
                }
            }
            Kind::StrList => self.array(v, instance, schema, |c, x, i, s| {
                c.value(x, Kind::Str, i, s)
            }),
            Kind::Tuples => self.array(v, instance, schema, |c, x, i, s| {
                c.object(x, TUPLE, &["user", "relation", "object"], i, s)
            }),
            Kind::Tests => self.array(v, instance, schema, |c, x, i, s| {
                c.object(x, TEST, &[], i, s)
            }),
            Kind::Checks => self.array(v, instance, schema, |c, x, i, s| {
                c.object(x, CHECK, &["user", "object", "assertions"], i, s)
            }),
            Kind::ListObjects => self.array(v, instance, schema, |c, x, i, s| {
                c.object(x, LIST_OBJECTS, &["user", "type", "assertions"], i, s)
            }),
            Kind::ListUsers => self.array(v, instance, schema, |c, x, i, s| {
                c.object(
                    x,
                    LIST_USERS,
                    &["object", "user_filter", "assertions"],
                    i,
                    s,
                )
            }),
        }
    }
}

/// Structural errors of a store file's YAML, as upstream reports them.
pub fn check_store_yaml(src: &str) -> Result<Vec<StoreError>, StoreFileError> {
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(src).map_err(|e| StoreFileError::Yaml(e.to_string()))?;
    let mut c = Checker { errors: Vec::new() };
    c.object(&v, TOP, &["tests"], "", "#");
    if let Some(map) = v.as_mapping() {
        if map.get("model").is_none() && map.get("model_file").is_none() {
            c.push(
                "valid_store",
                "'model' or 'model_file' must be presenet keys.".into(),
                "",
                "#/valid_store",
                &[],
            );
        }
    }
    Ok(c.errors)
}

impl StoreFile {
    /// Parses a store file's YAML as the `fga` CLI reads it: unknown keys
    /// are refused, but no JSON-schema pass runs first (so `users:` lists
    /// in checks and `null` assertion lists are accepted).
    pub fn parse(src: &str) -> Result<Self, StoreFileError> {
        serde_yaml_ng::from_str(src).map_err(|e| StoreFileError::Yaml(e.to_string()))
    }

    /// Parses and structurally checks a store file's YAML.
    pub fn from_yaml(src: &str) -> Result<Self, StoreFileError> {
        let errors = check_store_yaml(src)?;
        if !errors.is_empty() {
            return Err(StoreFileError::Schema(errors));
        }
        serde_yaml_ng::from_str(src).map_err(|e| StoreFileError::Yaml(e.to_string()))
    }

    /// Reads a store file from disk.
    pub fn load(path: &Path) -> Result<(Self, PathBuf), StoreFileError> {
        let src = read(path)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((Self::from_yaml(&src)?, dir))
    }

    /// The model: inline `model`, else `model_file` (a `.fga` file or an
    /// `fga.mod`) relative to `dir`, parsed and validated.
    pub fn resolve_model(&self, dir: &Path) -> Result<AuthorizationModel, StoreFileError> {
        if let Some(src) = &self.model {
            return crate::parse_dsl(src).map_err(StoreFileError::Model);
        }
        let Some(file) = &self.model_file else {
            return Err(StoreFileError::Schema(
                check_store_yaml("{}").unwrap_or_default(),
            ));
        };
        let path = dir.join(file);
        let src = read(&path)?;
        if path.file_name().is_some_and(|n| n == "fga.mod") {
            let m = parse_mod_file(&src).map_err(StoreFileError::Model)?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut files = Vec::new();
            for c in &m.contents.value {
                files.push(ModuleFile {
                    name: c.value.clone(),
                    contents: read(&base.join(&c.value))?,
                });
            }
            return combine_modules(&files, &m.schema.value).map_err(StoreFileError::Model);
        }
        crate::parse_dsl(&src).map_err(StoreFileError::Model)
    }

    /// The store's tuples: inline `tuples` plus those of `tuple_file(s)`.
    pub fn resolve_tuples(&self, dir: &Path) -> Result<Vec<Tuple>, StoreFileError> {
        resolve_tuples(
            &self.tuples,
            self.tuple_file.as_deref(),
            &self.tuple_files,
            dir,
        )
    }
}

impl StoreTest {
    /// This test's extra tuples: inline plus `tuple_file(s)`.
    pub fn resolve_tuples(&self, dir: &Path) -> Result<Vec<Tuple>, StoreFileError> {
        resolve_tuples(
            &self.tuples,
            self.tuple_file.as_deref(),
            &self.tuple_files,
            dir,
        )
    }
}

fn read(path: &Path) -> Result<String, StoreFileError> {
    std::fs::read_to_string(path).map_err(|e| StoreFileError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn resolve_tuples(
    inline: &[Tuple],
    file: Option<&str>,
    files: &[String],
    dir: &Path,
) -> Result<Vec<Tuple>, StoreFileError> {
    let mut out = inline.to_vec();
    for f in file.into_iter().chain(files.iter().map(String::as_str)) {
        out.extend(load_tuple_file(&dir.join(f))?);
    }
    Ok(out)
}

/// Tuples from a `.yaml`/`.yml`, `.json` or `.csv` file. CSV has a header
/// with `user_type,user_id,user_relation,relation,object_type,object_id`
/// and optionally `condition_name,condition_context`.
pub fn load_tuple_file(path: &Path) -> Result<Vec<Tuple>, StoreFileError> {
    let src = read(path)?;
    let bad = |reason: String| StoreFileError::TupleFile {
        path: path.display().to_string(),
        reason,
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "json" => serde_json::from_str(&src).map_err(|e| bad(e.to_string())),
        "yaml" | "yml" => serde_yaml_ng::from_str(&src).map_err(|e| bad(e.to_string())),
        "csv" => parse_csv_tuples(&src).map_err(bad),
        other => Err(bad(format!(
            "unsupported extension `{other}` (use yaml, json or csv)"
        ))),
    }
}

/// Splits one CSV line, honouring double quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn parse_csv_tuples(src: &str) -> Result<Vec<Tuple>, String> {
    let mut lines = src.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .map(csv_fields)
        .ok_or_else(|| "empty csv file".to_string())?
        .into_iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let need = |name: &str| col(name).ok_or_else(|| format!("csv header is missing `{name}`"));
    let (ut, ui, rel, ot, oi) = (
        need("user_type")?,
        need("user_id")?,
        need("relation")?,
        need("object_type")?,
        need("object_id")?,
    );
    let (ur, cn, cc) = (
        col("user_relation"),
        col("condition_name"),
        col("condition_context"),
    );
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let f = csv_fields(line);
        let get = |i: usize| f.get(i).map(|s| s.trim().to_string()).unwrap_or_default();
        let mut user = format!("{}:{}", get(ut), get(ui));
        if let Some(r) = ur.map(get).filter(|r| !r.is_empty()) {
            user.push('#');
            user.push_str(&r);
        }
        let condition = match cn.map(get).filter(|c| !c.is_empty()) {
            None => None,
            Some(name) => {
                let ctx = cc.map(get).filter(|c| !c.is_empty());
                let context = match ctx {
                    None => None,
                    Some(c) => Some(
                        serde_json::from_str(&c)
                            .map_err(|e| format!("row {}: condition_context: {e}", n + 2))?,
                    ),
                };
                Some(TupleCondition { name, context })
            }
        };
        out.push(Tuple {
            user,
            relation: get(rel),
            object: format!("{}:{}", get(ot), get(oi)),
            condition,
        });
    }
    Ok(out)
}
