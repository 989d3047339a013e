//! `verdict key create|list|revoke` (KeyService, admin key only).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::api::pb;
use crate::cli::client::{run_client, CliError, ClientArgs, Conn, Out};

/// `verdict key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key for `--tenant NAME`; prints the token once (only its
    /// hash is stored).
    Create(KeyTenantArgs),
    /// List keys (of `--tenant NAME`, else of every tenant): id, tenant,
    /// created.
    List(KeyTenantArgs),
    /// Revoke a key by id.
    Revoke(KeyRevokeArgs),
}

/// Arguments of `verdict key create|list`.
#[derive(Debug, Args)]
pub struct KeyTenantArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict key revoke`.
#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The key id (`vk_<id>_...`, as `verdict key list` shows it).
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn key_json(key: &pb::ApiKey) -> serde_json::Value {
    json!({ "id": key.id, "tenant": key.tenant, "created": key.created })
}

/// Runs `verdict key ...`.
pub fn run(command: &KeyCommand) -> ExitCode {
    match command {
        KeyCommand::Create(args) => {
            let Some(tenant) = args.client.tenant.clone() else {
                return CliError::Usage("`verdict key create` needs --tenant NAME".into()).report();
            };
            run_client(&args.client, |conn: Conn| async move {
                let response = conn
                    .keys()
                    .create_key(pb::CreateKeyRequest { tenant })
                    .await?
                    .into_inner();
                let key = response.key.unwrap_or_default();
                let mut out = Out::new();
                if conn.json {
                    let mut value = key_json(&key);
                    if let Some(object) = value.as_object_mut() {
                        object.insert("token".into(), json!(response.token));
                    }
                    out.json(&value)?;
                } else {
                    out.line(&response.token)?;
                    eprintln!(
                        "created key {} for tenant {}; the token above is shown only once",
                        key.id, key.tenant
                    );
                }
                out.flush()
            })
        }
        KeyCommand::List(args) => {
            let tenant = args.client.tenant.clone().unwrap_or_default();
            run_client(&args.client, |conn: Conn| async move {
                let response = conn
                    .keys()
                    .list_keys(pb::ListKeysRequest { tenant })
                    .await?
                    .into_inner();
                let mut out = Out::new();
                for key in &response.keys {
                    if conn.json {
                        out.json(&key_json(key))?;
                    } else {
                        out.line(format!("{}\t{}\t{}", key.id, key.tenant, key.created))?;
                    }
                }
                out.flush()
            })
        }
        KeyCommand::Revoke(args) => run_client(&args.client, |conn: Conn| async move {
            let response = conn
                .keys()
                .revoke_key(pb::RevokeKeyRequest {
                    id: args.id.clone(),
                })
                .await?
                .into_inner();
            let key = response.key.unwrap_or_default();
            let mut out = Out::new();
            if conn.json {
                out.json(&json!({ "revoked": key_json(&key) }))?;
            } else {
                out.line(format!("revoked key {} of tenant {}", key.id, key.tenant))?;
            }
            out.flush()
        }),
    }
}
