//! `verdict tenant create|list|delete` (TenantService).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::api::pb;
use crate::cli::client::{run_client, CliError, ClientArgs, Conn, Out};

/// `verdict tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create(TenantNameArgs),
    /// List tenants, one per line.
    List(TenantListArgs),
    /// Delete a tenant and all of its data (`--confirm NAME`).
    Delete(TenantDeleteArgs),
}

/// Arguments of `verdict tenant create`.
#[derive(Debug, Args)]
pub struct TenantNameArgs {
    /// The tenant's name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict tenant list`.
#[derive(Debug, Args)]
pub struct TenantListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict tenant delete`.
#[derive(Debug, Args)]
pub struct TenantDeleteArgs {
    /// The tenant's name.
    pub name: String,
    /// Repeat the name: deleting a tenant removes all of its data.
    #[arg(long, required = true, value_name = "NAME")]
    pub confirm: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `verdict tenant ...`.
pub fn run(command: &TenantCommand) -> ExitCode {
    match command {
        TenantCommand::Create(args) => run_client(&args.client, |conn: Conn| async move {
            conn.tenants()
                .create_tenant(pb::CreateTenantRequest {
                    name: args.name.clone(),
                })
                .await?;
            let mut out = Out::new();
            if conn.json {
                out.json(&json!({ "tenant": args.name, "created": true }))?;
            } else {
                out.line(format!("created tenant {}", args.name))?;
            }
            out.flush()
        }),
        TenantCommand::List(args) => run_client(&args.client, |conn: Conn| async move {
            let response = conn
                .tenants()
                .list_tenants(pb::ListTenantsRequest {})
                .await?
                .into_inner();
            let mut out = Out::new();
            if conn.json {
                out.json(&json!({ "tenants": response.names }))?;
            } else {
                for name in &response.names {
                    out.line(name)?;
                }
            }
            out.flush()
        }),
        TenantCommand::Delete(args) => {
            if args.confirm != args.name {
                return CliError::Usage(format!(
                    "--confirm must repeat the tenant name `{}` (deleting it removes all of its data)",
                    args.name
                ))
                .report();
            }
            run_client(&args.client, |conn: Conn| async move {
                let response = conn
                    .tenants()
                    .delete_tenant(pb::DeleteTenantRequest {
                        name: args.name.clone(),
                        confirm: args.confirm.clone(),
                    })
                    .await?
                    .into_inner();
                let mut out = Out::new();
                if conn.json {
                    out.json(&json!({
                        "tenant": args.name,
                        "deleted_relationships": response.deleted_relationships,
                    }))?;
                } else {
                    out.line(format!(
                        "deleted tenant {} ({} relationship(s))",
                        args.name, response.deleted_relationships
                    ))?;
                }
                out.flush()
            })
        }
    }
}
