//! `verdict watch` (WatchService).

use std::process::ExitCode;

use clap::Args;
use tonic::Status;

use crate::api::pb;
use crate::cli::client::{run_client, ClientArgs, Conn, Out};
use crate::cli::output;

/// Arguments of `verdict watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Start after this zookie (default: from now).
    #[arg(long, value_name = "ZOOKIE")]
    pub from: Option<String>,
    /// Only changes to this resource type (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    pub resource_types: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict watch`: `<OPERATION> <tuple>` per change until interrupted;
/// with `--json` one object per change, and checkpoints.
pub fn watch(args: &WatchArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let mut stream = conn
            .watch()
            .watch(pb::WatchRequest {
                tenant: conn.tenant.clone(),
                optional_start: args.from.as_ref().map(|token| pb::Zookie {
                    token: token.clone(),
                }),
                optional_resource_types: args.resource_types.clone(),
            })
            .await?
            .into_inner();
        let mut out = Out::new();
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            let message = tokio::select! {
                _ = &mut interrupted => return out.flush(),
                message = stream.message() => message?,
            };
            let Some(response) = message else {
                return Err(Status::unavailable("the server ended the watch").into());
            };
            let zookie = output::token(response.changes_through.as_ref());
            for change in &response.changes {
                if conn.json {
                    out.json(&output::watch_json(change, zookie))?;
                } else {
                    out.line(output::watch_line(change))?;
                }
            }
            if conn.json && response.checkpoint {
                out.json(&output::checkpoint_json(zookie))?;
            }
            out.flush()?;
        }
    })
}
