//! Who a SpiceDB client is, and which tenant it addresses.
//!
//! SpiceDB has one schema per server; Verdict has tenants. A bearer token
//! (`authorization: Bearer <key>`, scheme case-insensitive) that is:
//!
//! - a Verdict tenant key selects that tenant;
//! - a `--grpc-preshared-key` (SpiceDB's flag) or the admin key serves the
//!   default tenant.
//!
//! With authentication on, a missing token is UNAUTHENTICATED and an
//! unknown one PERMISSION_DENIED, with SpiceDB's messages. With
//! `--insecure-no-auth` (and no preshared key) every request is served,
//! on the default tenant unless its token is a tenant key.

use http::HeaderMap;
use tonic::Status;
use verdict_storage::Tenant;

use crate::api::guard::{self, Principal};
use crate::server::keys::{constant_time_eq, sha256_hex};
use crate::server::state::AppState;

/// The gRPC path prefix of every `authzed.api.v1` service.
pub const SERVICE_PREFIX: &str = "/authzed.api.v1.";

/// The key id recorded for requests authenticated by a preshared key.
pub const PRESHARED_KEY_ID: &str = "grpc-preshared-key";

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticates a request to an `authzed.api.v1` service (called by the
/// guard layer for paths under [`SERVICE_PREFIX`]).
///
/// # Errors
/// UNAUTHENTICATED without a token, PERMISSION_DENIED for an unknown one,
/// when authentication is on.
pub fn authenticate(
    state: &AppState,
    admin_hash: Option<&str>,
    headers: &HeaderMap,
) -> Result<Principal, Status> {
    if super::testing::enabled(state) {
        return Ok(super::testing::principal(bearer(headers)));
    }
    let preshared = &state.settings.ops.grpc_preshared_keys;
    let auth_on = admin_hash.is_some() || !preshared.is_empty();
    let Some(token) = bearer(headers) else {
        return if auth_on {
            Err(Status::unauthenticated(
                "invalid preshared key: missing preshared key",
            ))
        } else {
            Ok(Principal::Anonymous)
        };
    };
    let hash = sha256_hex(token.as_bytes());
    if admin_hash.is_some_and(|a| constant_time_eq(hash.as_bytes(), a.as_bytes())) {
        return Ok(Principal::Admin);
    }
    // Every key is compared (no early exit), in constant time each.
    let preshared_match = preshared.iter().fold(false, |found, key| {
        found | constant_time_eq(key.as_bytes(), token.as_bytes())
    });
    if preshared_match {
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
        Err(Status::permission_denied(
            "invalid preshared key: invalid token",
        ))
    } else {
        Ok(Principal::Anonymous)
    }
}

/// The tenant the current request addresses (`""` = the default tenant).
pub fn tenant_name() -> String {
    match guard::current().as_deref().map(|c| &c.principal) {
        Some(Principal::Tenant { tenant, .. }) => tenant.clone(),
        _ => String::new(),
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
        h.insert("authorization", "BEARER  abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
