//! Opaque cursors for ReadRelationships, LookupResources, LookupSubjects
//! and ExportBulkRelationships.
//!
//! As SpiceDB's, a cursor carries the revision the first page was read at
//! (every later page reads there too), the resume point, and a hash of the
//! request without its cursor: resuming with other parameters (even another
//! consistency) is INVALID_ARGUMENT, `ERROR_REASON_INVALID_CURSOR`.
//!
//! ```text
//! base64url( 0x01 | revision u64 BE | request hash u64 BE | position… | fnv32 of all before )
//! ```

use base64::Engine as _;
use prost::Message;
use sha2::{Digest, Sha256};
use verdict_storage::Revision;

use super::error::{SpiceError, SpiceResult};

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + 8;
const MAX_TOKEN: usize = 102_400;

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The revision every page of the call reads at.
    pub revision: Revision,
    /// Where to resume (the meaning depends on the RPC).
    pub after: Vec<u8>,
}

fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The hash of a request with its cursor field cleared by the caller.
pub fn request_hash(request: &impl Message) -> u64 {
    let digest = Sha256::digest(request.encode_to_vec());
    digest
        .iter()
        .take(8)
        .fold(0u64, |h, b| (h << 8) | u64::from(*b))
}

/// Encodes a cursor resuming after `after`, at `revision`, for the request
/// hashing to `hash`.
pub fn encode(revision: Revision, hash: u64, after: &[u8]) -> super::pb::Cursor {
    let mut bytes = Vec::with_capacity(HEADER + after.len() + 4);
    bytes.push(VERSION);
    bytes.extend_from_slice(&revision.0.to_be_bytes());
    bytes.extend_from_slice(&hash.to_be_bytes());
    bytes.extend_from_slice(after);
    let sum = fnv32(&bytes);
    bytes.extend_from_slice(&sum.to_be_bytes());
    super::pb::Cursor {
        token: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    }
}

/// Decodes `cursor` (absent or empty = start) for the request hashing to
/// `hash`.
///
/// # Errors
/// INVALID_CURSOR for garbage, or a cursor of another request.
pub fn decode(cursor: Option<&super::pb::Cursor>, hash: u64) -> SpiceResult<Option<Position>> {
    let Some(token) = cursor.map(|c| c.token.as_str()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if token.len() > MAX_TOKEN {
        return Err(SpiceError::validation(
            "optional_cursor.token",
            format!("value length must be at most {MAX_TOKEN} bytes"),
        ));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(SpiceError::bad_cursor)?;
    let Some((body, sum)) = bytes.split_last_chunk::<4>() else {
        return Err(SpiceError::bad_cursor("too short"));
    };
    if body.len() < HEADER || fnv32(body) != u32::from_be_bytes(*sum) {
        return Err(SpiceError::bad_cursor("checksum mismatch"));
    }
    let Some((&version, rest)) = body.split_first() else {
        return Err(SpiceError::bad_cursor("too short"));
    };
    if version != VERSION {
        return Err(SpiceError::bad_cursor(format!(
            "unknown cursor version {version}"
        )));
    }
    let Some((revision, rest)) = rest.split_first_chunk::<8>() else {
        return Err(SpiceError::bad_cursor("too short"));
    };
    let Some((stored_hash, after)) = rest.split_first_chunk::<8>() else {
        return Err(SpiceError::bad_cursor("too short"));
    };
    if u64::from_be_bytes(*stored_hash) != hash {
        return Err(SpiceError::cursor_mismatch());
    }
    Ok(Some(Position {
        revision: Revision(u64::from_be_bytes(*revision)),
        after: after.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::spicedb::pb::ErrorReason;

    #[test]
    fn cursors_round_trip_and_refuse_garbage_and_other_requests() {
        let c = encode(Revision(42), 7, b"after");
        let p = decode(Some(&c), 7).unwrap().unwrap();
        assert_eq!(p.revision, Revision(42));
        assert_eq!(p.after, b"after");
        let err = decode(Some(&c), 8).unwrap_err();
        assert_eq!(err.reason, Some(ErrorReason::InvalidCursor));
        assert!(err.message.contains("same arguments"), "{}", err.message);
        let garbage = crate::api::spicedb::pb::Cursor {
            token: "!!!!".into(),
        };
        let err = decode(Some(&garbage), 7).unwrap_err();
        assert_eq!(err.reason, Some(ErrorReason::InvalidCursor));
        assert!(err.message.starts_with("error decoding cursor"));
        assert_eq!(decode(None, 7).unwrap(), None);
    }
}
