//! Authorization models as tenant schema versions.
//!
//! Each WriteAuthorizationModel is a new schema version of the store's
//! tenant, written through the schema write path: its text is the model's
//! JSON (with its id), which the schema layer compiles as an OpenFGA model
//! (`schema::compile` detects the language). The ULID and the model as
//! written are also recorded in the version's comment ([`Meta`]), so model
//! id ⇄ schema version is lossless and models are immutable. A store's
//! name rides on the model-less version its creation writes; a rename
//! (UpdateStore) and each WriteAssertions are further versions that keep
//! the active text unchanged and only carry their meta, so they are
//! replicated and durable exactly as models are.

use serde::{Deserialize, Serialize};

use super::error::{FgaError, FgaResult};
use super::pb;

/// The schema text of a store's first (model-less) version.
pub const STORE_TEXT: &str = "// OpenFGA store: no authorization model yet\n";

/// Most type definitions in one model (OpenFGA's `maxTypesPerAuthorizationModel`).
pub const MAX_TYPES: usize = 100;

/// Largest model (OpenFGA's 256 KiB).
pub const MAX_MODEL_BYTES: usize = 256 * 1024;

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
    /// The assertions of one model (WriteAssertions replaces the set); the
    /// version's text is the text that was active, unchanged.
    OpenfgaAssertions {
        /// The model they belong to.
        model_id: String,
        /// The set, as written.
        assertions: Vec<pb::Assertion>,
    },
}

/// Whether a version's text is a model the API evaluates under: a model's
/// own version, or a meta-only version (rename, assertions) written while a
/// model was active.
pub fn carries_model(s: &verdict_storage::StoredSchema) -> bool {
    match Meta::from_comment(&s.record.comment) {
        Some(Meta::OpenfgaModel(_)) => true,
        Some(Meta::OpenfgaAssertions { .. } | Meta::OpenfgaStore { .. }) => {
            !s.record.is_tombstone() && s.record.text != STORE_TEXT
        }
        None => false,
    }
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

/// Checks what OpenFGA's request validation checks before a model is
/// compiled.
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
    if m.type_definitions.len() > MAX_TYPES {
        return Err(FgaError::exceeded_entity_limit(format!(
            "the number of type definitions ({}) exceeds the allowed limit of {MAX_TYPES}",
            m.type_definitions.len()
        )));
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

/// The schema text of `m`: its JSON, which the schema layer compiles.
///
/// # Errors
/// A model over [`MAX_MODEL_BYTES`]; a model that does not compile:
/// `invalid_authorization_model` with the compiler's message.
pub fn schema_text(m: &pb::AuthorizationModel) -> FgaResult<String> {
    let text = serde_json::to_string(m)
        .map_err(|e| FgaError::internal(format!("cannot encode the model: {e}")))?;
    if text.len() > MAX_MODEL_BYTES {
        return Err(FgaError::exceeded_entity_limit(format!(
            "the model is {} bytes, more than the allowed {MAX_MODEL_BYTES}",
            text.len()
        )));
    }
    crate::schema::compile(&text, &crate::schema::SchemaLimits::default()).map_err(|e| {
        let reasons: Vec<String> = e.diagnostics.iter().map(|d| d.message.clone()).collect();
        FgaError::invalid_model(reasons.join("; "))
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: &str = r#"{"schema_version":"1.1","type_definitions":[
        {"type":"user"},
        {"type":"group","relations":{"member":{"this":{}}},
         "metadata":{"relations":{"member":{"directly_related_user_types":[{"type":"user"}]}}}},
        {"type":"document","relations":{
            "editor":{"this":{}},
            "viewer":{"union":{"child":[{"this":{}},{"computedUserset":{"relation":"editor"}}]}}},
         "metadata":{"relations":{
            "editor":{"directly_related_user_types":[{"type":"user"},{"type":"group","relation":"member"}]},
            "viewer":{"directly_related_user_types":[{"type":"user"},{"type":"user","wildcard":{}}]}}}}]}"#;

    fn model() -> pb::AuthorizationModel {
        serde_json::from_str(DOCS).unwrap()
    }

    #[test]
    fn a_model_compiles_from_its_protojson() {
        let mut m = model();
        m.id = "01HZZZZZZZZZZZZZZZZZZZZZZZ".into();
        validate(&m).unwrap();
        let text = schema_text(&m).unwrap();
        assert!(text.starts_with('{'), "{text}");
        let compiled =
            crate::schema::compile(&text, &crate::schema::SchemaLimits::default()).unwrap();
        assert!(compiled.schema.is_openfga());
        let mut bad = m.clone();
        bad.type_definitions[2].relations.insert(
            "broken".into(),
            serde_json::from_str(r#"{"computedUserset":{"relation":"missing"}}"#).unwrap(),
        );
        assert_eq!(schema_text(&bad).unwrap_err().code, 2056);
    }

    #[test]
    fn request_validation() {
        let mut bad = model();
        bad.schema_version = "1.0".into();
        assert_eq!(validate(&bad).unwrap_err().code, 2057);
        bad.schema_version = "1.1".into();
        let dup = bad.type_definitions[0].clone();
        bad.type_definitions.push(dup);
        assert_eq!(validate(&bad).unwrap_err().code, 2005);
        bad.type_definitions.clear();
        assert_eq!(validate(&bad).unwrap_err().code, 2000);
    }

    #[test]
    fn meta_round_trips_through_the_comment() {
        let mut m = model();
        m.id = "01HZZZZZZZZZZZZZZZZZZZZZZZ".into();
        let comment = Meta::OpenfgaModel(m.clone()).to_comment();
        match Meta::from_comment(&comment) {
            Some(Meta::OpenfgaModel(back)) => assert_eq!(back, m),
            other => panic!("{other:?}"),
        }
        assert!(Meta::from_comment("authzed.api.v1 WriteSchema").is_none());
        let a: pb::Assertion = serde_json::from_str(
            r#"{"tuple_key":{"user":"user:anne","relation":"viewer","object":"doc:1"},"expectation":true}"#,
        )
        .unwrap();
        let comment = Meta::OpenfgaAssertions {
            model_id: m.id.clone(),
            assertions: vec![a.clone()],
        }
        .to_comment();
        match Meta::from_comment(&comment) {
            Some(Meta::OpenfgaAssertions {
                model_id,
                assertions,
            }) => {
                assert_eq!((model_id, assertions), (m.id, vec![a]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn meta_only_versions_carry_the_model_that_was_active() {
        let version = |text: &str, meta: Meta| verdict_storage::StoredSchema {
            revision: verdict_storage::Revision(3),
            record: verdict_storage::SchemaVersionRecord {
                version: 2,
                text: text.into(),
                comment: meta.to_comment(),
                author: String::new(),
            },
        };
        let renamed = |text: &str| {
            version(
                text,
                Meta::OpenfgaStore {
                    name: "renamed".into(),
                },
            )
        };
        assert!(!carries_model(&renamed(STORE_TEXT)), "no model yet");
        assert!(carries_model(&renamed("{\"schema_version\":\"1.1\"}")));
        let mut native = renamed("definition user {}");
        native.record.comment = "a SpiceDB schema".into();
        assert!(!carries_model(&native));
    }
}
