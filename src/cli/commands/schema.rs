//! `verdict schema write|read` (SchemaService).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::api::pb;
use crate::cli::client::{run_client, CliError, ClientArgs, Conn, Out};
use crate::cli::output::token;
use crate::cli::parse::parse_consistency;

/// Arguments of `verdict schema write`.
#[derive(Debug, Args)]
pub struct SchemaWriteArgs {
    /// The schema: a `.zed` file, a validation file (its `schema:`), or `-`
    /// for stdin.
    pub file: PathBuf,
    /// Fail unless this is the current schema version (optimistic locking).
    #[arg(long, value_name = "VERSION", alias = "expect-version")]
    pub expected_version: Option<u64>,
    /// A note stored with the version.
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict schema read`.
#[derive(Debug, Args)]
pub struct SchemaReadArgs {
    /// full | minimize-latency | at-least:ZOOKIE | exact:ZOOKIE
    #[arg(long, value_parser = parse_consistency)]
    pub consistency: Option<pb::Consistency>,
    /// Read this stored version.
    #[arg(long, value_name = "N", conflicts_with_all = ["consistency", "at"])]
    pub version: Option<u64>,
    /// Read the schema active at this zookie (same as `--consistency exact:ZOOKIE`).
    #[arg(long, value_name = "ZOOKIE", conflicts_with = "consistency")]
    pub at: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Loads the schema text `schema write` sends.
fn schema_text(file: &std::path::Path) -> Result<String, CliError> {
    if file.as_os_str() == "-" {
        return super::read_text(file);
    }
    let loaded = crate::schema::loader::load(file).map_err(|e| CliError::Invalid(e.to_string()))?;
    if loaded.text.trim().is_empty() {
        return Err(CliError::Invalid(format!(
            "`{}` holds no schema",
            file.display()
        )));
    }
    Ok(loaded.text)
}

/// `verdict schema write FILE`: warnings on stderr, the zookie on the last
/// line.
pub fn write(args: &SchemaWriteArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let text = schema_text(&args.file)?;
        let response = conn
            .schema()
            .write_schema(pb::WriteSchemaRequest {
                tenant: conn.tenant.clone(),
                schema: text,
                expected_version: args.expected_version.unwrap_or(0),
                comment: args.comment.clone().unwrap_or_default(),
            })
            .await?
            .into_inner();
        for warning in &response.warnings {
            eprintln!("warning: {}", warning.trim_end());
        }
        let zookie = token(response.written_at.as_ref());
        let mut out = Out::new();
        if conn.json {
            out.json(&json!({
                "zookie": zookie,
                "version": response.version,
                "warnings": response.warnings,
            }))?;
        } else {
            eprintln!("schema version {}", response.version);
            out.line(zookie)?;
        }
        out.flush()
    })
}

/// `verdict schema read`: the schema text.
pub fn read(args: &SchemaReadArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let response = conn
            .schema()
            .read_schema(pb::ReadSchemaRequest {
                tenant: conn.tenant.clone(),
                consistency: match &args.at {
                    Some(z) => Some(pb::Consistency {
                        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(
                            pb::Zookie { token: z.clone() },
                        )),
                    }),
                    None => args.consistency.clone(),
                },
                version: args.version.unwrap_or(0),
            })
            .await?
            .into_inner();
        let mut out = Out::new();
        if conn.json {
            out.json(&json!({
                "schema": response.schema_text,
                "version": response.version,
                "zookie": token(response.read_at.as_ref()),
                "active_since_revision": response.active_since_revision,
            }))?;
        } else {
            out.line(response.schema_text.trim_end())?;
        }
        out.flush()
    })
}
