//! Store ids ⇄ tenants, new ULIDs, and the opaque continuation tokens.
//!
//! A store is a tenant. Stores created through this API get a ULID id;
//! the tenant is its lower-case spelling (tenant names are lower case;
//! Crockford base32 is case-insensitive), so the mapping is lossless both
//! ways: store id = upper-case tenant name. Tenants made otherwise
//! (`default`, `acme`) are stores too, addressed by their upper-case name.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use ulid::Ulid;

use super::error::{FgaError, FgaResult};

/// The tenant a store id names.
///
/// # Errors
/// A store id that is no tenant name in any case (validation error).
pub fn tenant_of(store_id: &str) -> FgaResult<String> {
    let lower = store_id.to_ascii_lowercase();
    if store_id.is_empty() || verdict_storage::Tenant::new(&lower).is_err() {
        return Err(FgaError::field(
            "store_id",
            format!("`{store_id}` is not a store id (a ULID, or a Verdict tenant name)"),
        ));
    }
    Ok(lower)
}

/// The store id of a tenant.
pub fn store_of(tenant: &str) -> String {
    tenant.to_ascii_uppercase()
}

/// A new ULID (now, random).
pub fn new_ulid() -> Ulid {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ulid::from_parts(ms, rand::random::<u128>())
}

/// The creation time a ULID carries, when `id` is one.
pub fn ulid_time(id: &str) -> Option<pbjson_types::Timestamp> {
    let ulid = Ulid::from_string(id).ok()?;
    let ms = ulid.timestamp_ms();
    Some(pbjson_types::Timestamp {
        seconds: i64::try_from(ms / 1000).ok()?,
        nanos: i32::try_from((ms % 1000) * 1_000_000).ok()?,
    })
}

/// Whether `id` is a canonical ULID (`^[0-9A-HJKMNP-TV-Z]{26}$`).
pub fn is_ulid(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

/// The wall clock as a protobuf timestamp.
pub fn now() -> pbjson_types::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Encodes a continuation token (base64url, padded, like OpenFGA's).
pub fn encode_token(payload: &[u8]) -> String {
    URL_SAFE.encode(payload)
}

/// Decodes a continuation token (`""` = none).
///
/// # Errors
/// Not base64url: `invalid_continuation_token`.
pub fn decode_token(token: &str) -> FgaResult<Option<Vec<u8>>> {
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > 5120 {
        return Err(FgaError::invalid_continuation_token(
            "continuation_token is longer than 5120 bytes",
        ));
    }
    URL_SAFE
        .decode(token)
        .map(Some)
        .map_err(|_| FgaError::invalid_continuation_token("Invalid continuation token"))
}

/// A page size: 0 = `default`, else 1..=`max`.
///
/// # Errors
/// Out of range: `validation_error` naming the field.
pub fn page_size(value: Option<i32>, default: usize, max: usize) -> FgaResult<usize> {
    match value {
        None | Some(0) => Ok(default),
        Some(n) if n >= 1 && usize::try_from(n).is_ok_and(|n| n <= max) => {
            Ok(usize::try_from(n).unwrap_or(default))
        }
        Some(n) => Err(FgaError::field(
            "page_size",
            format!("value must be inside range [1, {max}], got {n}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_and_tenants_map_both_ways() {
        let id = new_ulid().to_string();
        assert!(is_ulid(&id));
        let tenant = tenant_of(&id).unwrap();
        assert_eq!(tenant, id.to_ascii_lowercase());
        assert_eq!(store_of(&tenant), id);
        assert_eq!(tenant_of("DEFAULT").unwrap(), "default");
        assert!(tenant_of("").is_err());
        assert!(tenant_of("a b").is_err());
        assert!(ulid_time(&id).is_some());
    }

    #[test]
    fn tokens_and_page_sizes() {
        let t = encode_token(b"12|doc");
        assert_eq!(decode_token(&t).unwrap().unwrap(), b"12|doc");
        assert_eq!(decode_token("").unwrap(), None);
        assert_eq!(decode_token("!!").unwrap_err().code, 2007);
        assert_eq!(page_size(None, 50, 100).unwrap(), 50);
        assert_eq!(page_size(Some(100), 50, 100).unwrap(), 100);
        assert_eq!(page_size(Some(101), 50, 100).unwrap_err().code, 2000);
        assert_eq!(page_size(Some(-1), 50, 100).unwrap_err().code, 2000);
    }
}
