//! OpenFGA's JSON `AuthorizationModel` (openfga/v1/authzed_model.proto), with
//! the exact key spelling and field omission of upstream's JSON: empty
//! optional fields are left out, `metadata` and `relations` of a type
//! definition are always written (`null` / `{}`), userset variants use the
//! proto's camelCase JSON names (`computedUserset`, `tupleToUserset`).
//! Deserialisation also accepts the alternative spelling protojson accepts
//! (camelCase for snake_case keys and vice versa).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A JSON model that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid authorization model JSON: {source}")]
pub struct JsonError {
    #[from]
    source: serde_json::Error,
}

impl JsonError {
    /// Line (1-based) of the error in the input, 0 if unknown.
    pub fn line(&self) -> usize {
        self.source.line()
    }
    /// Column (1-based) of the error in the input, 0 if unknown.
    pub fn column(&self) -> usize {
        self.source.column()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An OpenFGA authorization model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthorizationModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, alias = "schemaVersion")]
    pub schema_version: String,
    #[serde(
        default,
        alias = "typeDefinitions",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub type_definitions: Vec<TypeDefinition>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub conditions: BTreeMap<String, Condition>,
}

impl AuthorizationModel {
    /// Reads a model from OpenFGA's JSON form.
    pub fn from_json(src: &str) -> Result<Self, JsonError> {
        Ok(serde_json::from_str(src)?)
    }

    /// The model as pretty-printed JSON, keys as upstream writes them.
    pub fn to_json_pretty(&self) -> String {
        // Serialising these plain types (string keys only) cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The model as a JSON value.
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// One object type and its relations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TypeDefinition {
    #[serde(rename = "type", default)]
    pub type_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub relations: BTreeMap<String, Userset>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

/// The rewrite of one relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Userset {
    /// Direct relationships (`[user, group#member]`).
    #[serde(rename = "this")]
    This(DirectUserset),
    /// Another relation on the same object.
    #[serde(rename = "computedUserset", alias = "computed_userset")]
    ComputedUserset(ObjectRelation),
    /// `relation from tupleset`.
    #[serde(rename = "tupleToUserset", alias = "tuple_to_userset")]
    TupleToUserset(TupleToUserset),
    #[serde(rename = "union")]
    Union(Usersets),
    #[serde(rename = "intersection")]
    Intersection(Usersets),
    /// `base but not subtract`.
    #[serde(rename = "difference")]
    Difference(Difference),
}

impl Userset {
    /// `this` (direct assignment).
    pub fn this() -> Self {
        Userset::This(DirectUserset {})
    }
    /// A computed userset naming `relation`.
    pub fn computed(relation: impl Into<String>) -> Self {
        Userset::ComputedUserset(ObjectRelation {
            object: String::new(),
            relation: relation.into(),
        })
    }
    /// `computed from tupleset`.
    pub fn tuple_to_userset(tupleset: impl Into<String>, computed: impl Into<String>) -> Self {
        Userset::TupleToUserset(TupleToUserset {
            tupleset: ObjectRelation {
                object: String::new(),
                relation: tupleset.into(),
            },
            computed_userset: ObjectRelation {
                object: String::new(),
                relation: computed.into(),
            },
        })
    }
}

/// The empty `this {}` message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DirectUserset {}

/// `{object?, relation}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjectRelation {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub relation: String,
}

/// `{tupleset: {relation}, computedUserset: {relation}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TupleToUserset {
    #[serde(default)]
    pub tupleset: ObjectRelation,
    #[serde(rename = "computedUserset", alias = "computed_userset", default)]
    pub computed_userset: ObjectRelation,
}

/// The operands of a union or intersection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usersets {
    #[serde(default, deserialize_with = "null_as_default")]
    pub child: Vec<Userset>,
}

/// `base but not subtract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub base: Box<Userset>,
    pub subtract: Box<Userset>,
}

/// Type metadata: the allowed direct user types per relation, and for
/// modular models the module and file a type came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relations: Option<BTreeMap<String, RelationMetadata>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module: String,
    #[serde(default, alias = "sourceInfo", skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// Metadata of one relation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RelationMetadata {
    #[serde(
        default,
        alias = "directlyRelatedUserTypes",
        deserialize_with = "null_as_default"
    )]
    pub directly_related_user_types: Vec<RelationReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module: String,
    #[serde(default, alias = "sourceInfo", skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// One allowed direct user type: `user`, `user:*`, `group#member`, each
/// optionally `with condition`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RelationReference {
    #[serde(rename = "type", default)]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub relation: String,
    #[serde(
        default,
        skip_serializing_if = "is_false",
        serialize_with = "wildcard_out",
        deserialize_with = "wildcard_in"
    )]
    pub wildcard: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
}

/// The file a type, relation or condition was declared in (modular models).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
}

/// A named CEL condition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Condition {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub expression: String,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub parameters: BTreeMap<String, ConditionParamTypeRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ConditionMetadata>,
}

/// Module and file of a condition (modular models).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConditionMetadata {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module: String,
    #[serde(default, alias = "sourceInfo", skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// A condition parameter type: `TYPE_NAME_STRING`, or `TYPE_NAME_LIST` /
/// `TYPE_NAME_MAP` with one generic type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConditionParamTypeRef {
    #[serde(default, alias = "typeName")]
    pub type_name: String,
    #[serde(
        default,
        alias = "genericTypes",
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub generic_types: Vec<ConditionParamTypeRef>,
}

/// The DSL names of condition parameter types and their JSON enum names.
pub const PARAM_TYPES: &[(&str, &str)] = &[
    ("any", "TYPE_NAME_ANY"),
    ("bool", "TYPE_NAME_BOOL"),
    ("string", "TYPE_NAME_STRING"),
    ("int", "TYPE_NAME_INT"),
    ("uint", "TYPE_NAME_UINT"),
    ("double", "TYPE_NAME_DOUBLE"),
    ("duration", "TYPE_NAME_DURATION"),
    ("timestamp", "TYPE_NAME_TIMESTAMP"),
    ("map", "TYPE_NAME_MAP"),
    ("list", "TYPE_NAME_LIST"),
    ("ipaddress", "TYPE_NAME_IPADDRESS"),
];

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn wildcard_out<S: serde::Serializer>(_: &bool, s: S) -> Result<S::Ok, S::Error> {
    DirectUserset {}.serialize(s)
}

fn wildcard_in<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<serde_json::Value>::deserialize(d)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_null_metadata_round_trip() {
        let src = r#"{"schema_version":"1.1","type_definitions":[
            {"type":"user","relations":{},"metadata":null},
            {"type":"doc","relations":{"viewer":{"union":{"child":[{"this":{}},
              {"tupleToUserset":{"tupleset":{"relation":"parent"},"computedUserset":{"relation":"viewer"}}}]}}},
             "metadata":{"relations":{"viewer":{"directly_related_user_types":[{"type":"user","wildcard":{}},{"type":"user","condition":"c"}]}}}}]}"#;
        let m = AuthorizationModel::from_json(src).unwrap();
        let back: serde_json::Value = serde_json::from_str(&m.to_json_pretty()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(src).unwrap();
        assert_eq!(back, orig);
        let refs = &m.type_definitions[1]
            .metadata
            .as_ref()
            .unwrap()
            .relations
            .as_ref()
            .unwrap()["viewer"];
        assert!(refs.directly_related_user_types[0].wildcard);
        assert!(!refs.directly_related_user_types[1].wildcard);
    }
}
