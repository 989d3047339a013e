//! Who an OpenFGA client is: the bearer key (`Authorization: Bearer KEY`,
//! OpenFGA's preshared-key method) selects the stores it may use.
//!
//! - the admin key: every store (OpenFGA's preshared keys are global);
//! - a Verdict tenant key: that tenant's store only (its id in the path
//!   must then name it, else 1600 forbidden);
//! - a `--grpc-preshared-key`: the default tenant, as on the SpiceDB API.
//!
//! With authentication on, a missing key is 1010 `bearer_token_missing`
//! and an unknown one 1500 `unauthenticated`.

use http::HeaderMap;
use verdict_storage::Tenant;

use super::error::{FgaError, FgaResult};
use crate::server::keys::{constant_time_eq, sha256_hex};
use crate::server::request_context::Principal;
use crate::server::state::AppState;

/// The gRPC path prefix of the `openfga.v1` service.
pub const SERVICE_PREFIX: &str = "/openfga.v1.";

/// The key id recorded for requests authenticated by a preshared key.
pub const PRESHARED_KEY_ID: &str = "grpc-preshared-key";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticates an OpenFGA request (HTTP or gRPC).
///
/// # Errors
/// 1010 without a key, 1500 for an unknown one, when authentication is on.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> FgaResult<Principal> {
    let ops = &state.settings.ops;
    let admin_hash = ops.admin_key.as_deref().map(|k| sha256_hex(k.as_bytes()));
    let auth_on = admin_hash.is_some() || !ops.grpc_preshared_keys.is_empty();
    let Some(token) = bearer(headers) else {
        return if auth_on {
            Err(FgaError::bearer_missing("missing bearer token"))
        } else {
            Ok(Principal::Anonymous)
        };
    };
    let hash = sha256_hex(token.as_bytes());
    if admin_hash
        .as_deref()
        .is_some_and(|a| constant_time_eq(hash.as_bytes(), a.as_bytes()))
    {
        return Ok(Principal::Admin);
    }
    let preshared = ops.grpc_preshared_keys.iter().fold(false, |found, key| {
        found | constant_time_eq(key.as_bytes(), token.as_bytes())
    });
    if preshared {
        return Ok(Principal::Tenant {
            key_id: PRESHARED_KEY_ID.to_string(),
            tenant: Tenant::DEFAULT_NAME.to_string(),
        });
    }
    if let Some(record) = state.keys.authenticate_hashed(token, &hash) {
        return Ok(Principal::Tenant {
            key_id: record.id,
            tenant: record.tenant,
        });
    }
    if auth_on {
        Err(FgaError::unauthenticated("unauthenticated"))
    } else {
        Ok(Principal::Anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
