//! The bytes of log entries and internal Raft messages: MessagePack
//! behind a one-byte tag, and JSON (what logs written before the tag held)
//! still read.
//!
//! ```text
//!  0x01 ‖ MessagePack (structs as arrays)     written now
//!  `{` … JSON                                  read only (older logs and peers)
//! ```
//!
//! MessagePack is smaller (a 1M-tuple import's log: 75 MB, 85 MB as JSON)
//! and decoding it skips JSON's string scanning; the log's fsync, the read
//! back for apply and replication to followers all carry it.

use serde::{de::DeserializeOwned, Serialize};

/// The tag byte of the MessagePack encoding (JSON never starts with it).
const MSGPACK: u8 = 0x01;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// MessagePack encoding failed.
    #[error("encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// The MessagePack bytes are malformed.
    #[error("decoding MessagePack: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// The legacy JSON bytes are malformed.
    #[error("decoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Nothing to decode.
    #[error("decoding: no bytes")]
    Empty,
}

/// `value` as tagged MessagePack.
///
/// # Errors
/// A value serde cannot encode (none of Verdict's types).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    out.push(MSGPACK);
    rmp_serde::encode::write(&mut out, value)?;
    Ok(out)
}

/// Decodes bytes written by [`encode`], or legacy JSON.
///
/// # Errors
/// Empty or malformed bytes, or bytes of another type.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&MSGPACK, body)) => Ok(rmp_serde::from_slice(body)?),
        Some(_) => Ok(serde_json::from_slice(bytes)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, Request, TypeConfig};
    use openraft::{Entry, EntryPayload, LogId};
    use proptest::prelude::*;
    use verdict_storage::{Tenant, Timestamp, Tuple, TupleCaveat};

    fn import_entry(tuples: Vec<Tuple>) -> Entry<TypeConfig> {
        let tenant = Tenant::new("acme").unwrap_or_else(|e| panic!("{e}"));
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(3, 1), 42),
            payload: EntryPayload::Normal(Request {
                at: Timestamp(1_700_000_000),
                command: Command::Import {
                    tenant,
                    tuples: std::sync::Arc::new(tuples),
                },
            }),
        }
    }

    fn tuple(s: &str) -> Tuple {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn same(a: &Entry<TypeConfig>, b: &Entry<TypeConfig>) -> bool {
        serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
    }

    #[test]
    fn entries_round_trip_including_caveat_context_and_expiration() {
        let e = import_entry(vec![
            tuple("document:readme#viewer@user:alice"),
            tuple("document:readme#viewer@group:eng#member"),
            tuple(
                r#"document:a#viewer@user:bob[ip_allowed:{"cidr":"10.0.0.0/8","n":[1,2.5,null,true]}]"#,
            ),
            tuple("document:b#viewer@user:*[expiration:2030-01-01T00:00:00Z]"),
        ]);
        let bytes = encode(&e).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(bytes[0], MSGPACK);
        let back: Entry<TypeConfig> = decode(&bytes).unwrap_or_else(|err| panic!("{err}"));
        assert!(same(&e, &back), "{e:?} != {back:?}");
        let json = serde_json::to_vec(&e).unwrap_or_else(|err| panic!("{err}"));
        assert!(
            bytes.len() < json.len(),
            "{} >= {}",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn legacy_json_entries_still_decode() {
        let e = import_entry(vec![tuple("document:readme#viewer@user:alice")]);
        let json = serde_json::to_vec(&e).unwrap_or_else(|err| panic!("{err}"));
        let back: Entry<TypeConfig> = decode(&json).unwrap_or_else(|err| panic!("{err}"));
        assert!(same(&e, &back));
    }

    #[test]
    fn empty_and_truncated_bytes_are_errors_not_panics() {
        assert!(matches!(
            decode::<Entry<TypeConfig>>(&[]),
            Err(CodecError::Empty)
        ));
        let e = import_entry(vec![tuple("document:readme#viewer@user:alice")]);
        let bytes = encode(&e).unwrap_or_else(|err| panic!("{err}"));
        for cut in 1..bytes.len() {
            assert!(
                decode::<Entry<TypeConfig>>(&bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e12f64..1e12).prop_map(serde_json::Value::from),
            ".{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    type Row = (
        String,
        Option<serde_json::Map<String, serde_json::Value>>,
        Option<i64>,
    );

    fn arb_row() -> impl Strategy<Value = Row> {
        let context = proptest::collection::btree_map("[a-z]{1,4}", arb_json(), 0..4)
            .prop_map(|m| m.into_iter().collect::<serde_json::Map<_, _>>());
        (
            "[a-z0-9_]{1,12}",
            proptest::option::of(context),
            proptest::option::of(0i64..4_000_000_000),
        )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Entry<TypeConfig>>(&bytes);
            let mut tagged = vec![MSGPACK];
            tagged.extend_from_slice(&bytes);
            let _ = decode::<Entry<TypeConfig>>(&tagged);
        }

        #[test]
        fn tuples_round_trip(rows in proptest::collection::vec(arb_row(), 1..20)) {
            let tuples: Vec<Tuple> = rows
                .into_iter()
                .map(|(id, context, expires)| {
                    let mut t = tuple(&format!("document:{id}#viewer@user:{id}"));
                    t.caveat = context.map(|context| TupleCaveat { name: "cav".into(), context });
                    t.expiration = expires.map(Timestamp);
                    t
                })
                .collect();
            let e = import_entry(tuples);
            let bytes = encode(&e).map_err(|err| TestCaseError::fail(err.to_string()))?;
            let back: Entry<TypeConfig> =
                decode(&bytes).map_err(|err| TestCaseError::fail(err.to_string()))?;
            prop_assert!(same(&e, &back), "{:?} != {:?}", e, back);
        }
    }
}
