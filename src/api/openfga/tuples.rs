//! `openfga.v1` messages ⇄ the engine's OpenFGA types
//! (`engine::openfga`), and storage tuples ⇄ OpenFGA's tuple keys (names
//! and ids mapped losslessly by `schema::openfga::names`).

use serde_json::{Map, Value};
use verdict_storage::{SubjectRef, Tuple, WILDCARD};

use super::error::{FgaError, FgaResult};
use super::pb;
use crate::engine::openfga::{self as fga, FgaCondition, FgaTupleKey};
use crate::schema::openfga::names::{decode_id, decode_name, encode_id, encode_name};

/// A request's `context` as a JSON object. A `Struct` holds every number
/// as a double; integral ones become integers again (so `3` reaches an
/// `int` condition parameter as 3, as OpenFGA reads it).
pub fn context_map(s: Option<&pbjson_types::Struct>) -> Map<String, Value> {
    match s.and_then(|s| serde_json::to_value(s).ok()) {
        Some(Value::Object(mut m)) => {
            m.values_mut().for_each(integral);
            m
        }
        _ => Map::new(),
    }
}

/// Turns integral doubles (within ±2^53) back into integers, recursively.
fn integral(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "integral and within ±2^53, so exact"
                )]
                let i = f as i64;
                *v = Value::from(i);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral),
        Value::Object(m) => m.values_mut().for_each(integral),
        _ => {}
    }
}

/// A JSON object as a `Struct`.
pub fn to_struct(m: &Map<String, Value>) -> Option<pbjson_types::Struct> {
    serde_json::from_value(Value::Object(m.clone())).ok()
}

/// A tuple key of a request, for the engine.
pub fn key(k: &pb::TupleKey) -> FgaTupleKey {
    FgaTupleKey {
        user: k.user.clone(),
        relation: k.relation.clone(),
        object: k.object.clone(),
        condition: k
            .condition
            .as_ref()
            .filter(|c| !c.name.is_empty())
            .map(|c| FgaCondition {
                name: c.name.clone(),
                context: context_map(c.context.as_ref()),
            }),
    }
}

/// A check's tuple key, for the engine.
pub fn check_key(k: &pb::CheckRequestTupleKey) -> FgaTupleKey {
    FgaTupleKey::new(k.user.clone(), k.relation.clone(), k.object.clone())
}

/// Contextual tuples, for the engine.
pub fn keys(ct: Option<&pb::ContextualTupleKeys>) -> Vec<FgaTupleKey> {
    ct.map(|c| c.tuple_keys.iter().map(key).collect())
        .unwrap_or_default()
}

/// A stored tuple as OpenFGA's key (its condition too, unless `bare`).
pub fn key_of(t: &Tuple, bare: bool) -> pb::TupleKey {
    let k = fga::from_tuple(t);
    pb::TupleKey {
        user: k.user,
        relation: k.relation,
        object: k.object,
        condition: k
            .condition
            .filter(|_| !bare)
            .map(|c| pb::RelationshipCondition {
                name: c.name,
                context: to_struct(&c.context),
            }),
    }
}

/// A stored subject as OpenFGA writes a user.
pub fn user_text(s: &SubjectRef) -> String {
    let mut out = format!(
        "{}:{}",
        decode_name(&s.object.object_type),
        decode_id(&s.object.object_id)
    );
    if let Some(r) = &s.relation {
        out.push('#');
        out.push_str(&decode_name(r));
    }
    out
}

/// The storage name of an OpenFGA type or relation.
///
/// # Errors
/// A name OpenFGA does not allow: `validation_error`.
pub fn name(s: &str, what: &'static str) -> FgaResult<String> {
    encode_name(s, what).map_err(|e| FgaError::validation(e.to_string()))
}

/// The storage form of an OpenFGA id (`*` stays the wildcard).
///
/// # Errors
/// An id OpenFGA does not allow: `validation_error`.
pub fn id(s: &str) -> FgaResult<String> {
    if s == WILDCARD {
        return Ok(s.to_string());
    }
    encode_id(s).map_err(|e| FgaError::validation(e.to_string()))
}

/// The engine's error as this front door's.
pub fn engine_error(e: fga::FgaError) -> FgaError {
    let code = e.code.number();
    FgaError {
        code,
        name: e.code.name(),
        message: e.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_contexts_convert_both_ways() {
        let k: pb::TupleKey = serde_json::from_str(
            r#"{"user":"user:anne","relation":"viewer","object":"doc:1",
                "condition":{"name":"ok","context":{"x":3}}}"#,
        )
        .unwrap();
        let fk = key(&k);
        assert_eq!(
            fk.condition.as_ref().unwrap().context["x"],
            3,
            "an integer again"
        );
        let half: pbjson_types::Struct = serde_json::from_str(r#"{"y":1.5,"l":[2]}"#).unwrap();
        let m = context_map(Some(&half));
        assert_eq!(
            (m["y"].clone(), m["l"].clone()),
            (serde_json::json!(1.5), serde_json::json!([2]))
        );
        let ctx = context_map(k.condition.as_ref().unwrap().context.as_ref());
        assert_eq!(to_struct(&ctx).map(|s| context_map(Some(&s))), Some(ctx));
        let t = Tuple::parse("doc:1#viewer@user:anne").unwrap();
        let back = key_of(&t, false);
        assert_eq!(
            (
                back.user.as_str(),
                back.relation.as_str(),
                back.object.as_str()
            ),
            ("user:anne", "viewer", "doc:1")
        );
        assert_eq!(user_text(&t.subject), "user:anne");
        assert_eq!(id("*").unwrap(), "*");
        let mapped = name("scopeA", "a type name").unwrap();
        assert_ne!(
            mapped, "scopeA",
            "OpenFGA names outside storage's grammar are encoded"
        );
        assert_eq!(decode_name(&mapped), "scopeA", "losslessly");
    }
}
