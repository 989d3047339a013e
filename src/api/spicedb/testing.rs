//! `verdict serve-testing`: SpiceDB's `serve-testing` mode, which SDK test
//! suites run against. Any bearer token (and no token) is accepted; each
//! distinct token gets its own tenant (`testing-<sha256(token)[..32]>`),
//! created on first use and preloaded with the `--load-configs` validation
//! files (schema + relationships), as SpiceDB gives each token its own
//! preloaded memdb datastore.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use tonic::{Request, Status};
use verdict_storage::Tuple;

use super::convert::relationship_to_pb;
use super::error::SpiceError;
use super::pb;
use super::pb::permissions_service_server::PermissionsService as _;
use super::pb::schema_service_server::SchemaService as _;
use super::{PermissionsApi, SchemaApi};
use crate::api::guard::{Principal, RequestContext};
use crate::server::keys::sha256_hex;
use crate::server::request_context;
use crate::server::state::AppState;

/// The key id requests carry in serve-testing mode.
pub const KEY_ID: &str = "serve-testing";

/// Relationship updates per preload write.
const PRELOAD_CHUNK: usize = 500;

/// Tenants created and preloaded (the fast path of [`admit`]).
static READY: LazyLock<parking_lot::Mutex<HashSet<String>>> =
    LazyLock::new(|| parking_lot::Mutex::new(HashSet::new()));
/// Serialises first uses, so a tenant is preloaded exactly once and no
/// request sees it half-loaded.
static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether the server runs in serve-testing mode.
pub fn enabled(state: &AppState) -> bool {
    state.settings.ops.serve_testing.is_some()
}

/// The tenant of bearer token `token` (`None` = no token, its own tenant).
pub fn tenant_for(token: Option<&str>) -> String {
    let hash = sha256_hex(token.unwrap_or("").as_bytes());
    format!("testing-{}", hash.chars().take(32).collect::<String>())
}

/// The caller holding `token`.
pub fn principal(token: Option<&str>) -> Principal {
    Principal::Tenant {
        key_id: KEY_ID.to_string(),
        tenant: tenant_for(token),
    }
}

/// Creates and preloads the caller's tenant on its first request (no-op
/// outside serve-testing mode).
///
/// # Errors
/// The tenant could not be created, or a `--load-configs` file could not
/// be loaded into it.
pub async fn admit(state: &Arc<AppState>, principal: &Principal) -> Result<(), Status> {
    let Some(configs) = &state.settings.ops.serve_testing else {
        return Ok(());
    };
    let Principal::Tenant { tenant, .. } = principal else {
        return Ok(());
    };
    if READY.lock().contains(tenant) {
        return Ok(());
    }
    let _creating = CREATING.lock().await;
    if READY.lock().contains(tenant) {
        return Ok(());
    }
    if state.tenants.get(tenant, "tenant").is_err() {
        state
            .committer
            .create_tenant(tenant)
            .await
            .map_err(|e| Status::from(SpiceError::from(e)))?;
    }
    preload(state, principal, configs).await?;
    READY.lock().insert(tenant.clone());
    Ok(())
}

fn load_error(path: &std::path::Path, what: impl std::fmt::Display) -> Status {
    Status::failed_precondition(format!("--load-configs {}: {what}", path.display()))
}

/// Reads every `--load-configs` file: the schemas joined, the relationships in order.
///
/// # Errors
/// An unreadable file or a relationship line that does not parse.
pub fn read_configs(configs: &[PathBuf]) -> Result<(String, Vec<Tuple>), Status> {
    let mut schema = String::new();
    let mut tuples = Vec::new();
    for path in configs {
        let loaded = crate::schema::loader::load(path).map_err(|e| load_error(path, e))?;
        schema.push_str(&loaded.text);
        schema.push('\n');
        let file = loaded.validation.unwrap_or_default();
        for (line, text) in file.relationship_lines() {
            let tuple = Tuple::parse(text)
                .map_err(|e| load_error(path, format!("relationship line {line} `{text}`: {e}")))?;
            tuples.push(tuple);
        }
    }
    Ok((schema, tuples))
}

/// Writes the configs' schema and relationships into the caller's tenant
/// through the same SpiceDB service code a client would use.
async fn preload(
    state: &Arc<AppState>,
    principal: &Principal,
    configs: &[PathBuf],
) -> Result<(), Status> {
    if configs.is_empty() {
        return Ok(());
    }
    let (schema, tuples) = read_configs(configs)?;
    let context = Arc::new(RequestContext::new(
        "serve-testing-preload".into(),
        principal.clone(),
    ));
    let state = state.clone();
    request_context::scope(context, async move {
        if !schema.trim().is_empty() {
            SchemaApi::new(state.clone())
                .write_schema(Request::new(pb::WriteSchemaRequest { schema }))
                .await?;
        }
        let permissions = PermissionsApi::new(state);
        for chunk in tuples.chunks(PRELOAD_CHUNK) {
            let updates = chunk
                .iter()
                .map(|t| pb::RelationshipUpdate {
                    operation: pb::relationship_update::Operation::Touch as i32,
                    relationship: Some(relationship_to_pb(t)),
                })
                .collect();
            permissions
                .write_relationships(Request::new(pb::WriteRelationshipsRequest {
                    updates,
                    ..Default::default()
                }))
                .await?;
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_has_its_own_valid_tenant() {
        let a = tenant_for(Some("a"));
        let b = tenant_for(Some("b"));
        let none = tenant_for(None);
        assert_ne!(a, b);
        assert_ne!(a, none);
        assert_eq!(a, tenant_for(Some("a")));
        for t in [a, b, none] {
            assert!(verdict_storage::Tenant::new(&t).is_ok(), "{t}");
        }
    }
}
