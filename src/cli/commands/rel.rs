//! `verdict rel write|delete|read|import|export` (RelationshipService).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{gather_lines, interactive, Source};
use crate::api::pb;
use crate::cli::client::{run_client, CliError, ClientArgs, Conn, Out};
use crate::cli::output::token;
use crate::cli::parse::{parse_consistency, parse_filter, parse_relationship, relationship_text};

/// Relationships per message of `rel import`.
pub const IMPORT_BATCH: usize = 1_000;

/// `verdict rel ...`
#[derive(Debug, Subcommand)]
pub enum RelCommand {
    /// Write relationships atomically (TOUCH; `--create` to fail on
    /// existing ones); prints the zookie.
    Write(RelWriteArgs),
    /// Delete relationships (listed, or by `--filter`); prints the zookie.
    Delete(RelDeleteArgs),
    /// Print the relationships a filter matches, one per line.
    Read(RelReadArgs),
    /// Load a file of relationships (TOUCH) at one revision, streamed in
    /// batches; prints the zookie.
    Import(RelImportArgs),
    /// Print every relationship, one per line.
    Export(RelExportArgs),
    /// Copy (or with `--delete-source` move) every tuple of one relation to
    /// another on the server, batched at one snapshot; prints the zookie.
    Copy(super::migrate::RelCopyArgs),
}

/// Arguments of `verdict rel write`.
#[derive(Debug, Args)]
pub struct RelWriteArgs {
    /// Tuples (`document:readme#viewer@user:alice`); `-` reads lines from stdin.
    #[arg(required_unless_present = "file", value_name = "TUPLE")]
    pub tuples: Vec<String>,
    /// Read tuples from a file (one per line, `//` comments; `-` = stdin).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// CREATE instead of TOUCH: fail if any relationship already exists.
    #[arg(long)]
    pub create: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict rel delete`.
#[derive(Debug, Args)]
pub struct RelDeleteArgs {
    /// Tuples to delete; `-` reads lines from stdin.
    #[arg(
        required_unless_present_any = ["file", "filter"],
        conflicts_with = "filter",
        value_name = "TUPLE"
    )]
    pub tuples: Vec<String>,
    /// Read tuples from a file (`-` = stdin).
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "filter")]
    pub file: Option<PathBuf>,
    /// Delete everything a filter matches:
    /// TYPE[:ID][#RELATION][@SUBJECT_TYPE[:SUBJECT_ID][#SUBJECT_RELATION]].
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// With --filter: delete at most this many.
    #[arg(long, requires = "filter")]
    pub limit: Option<u32>,
    /// With --filter: only count what would be deleted.
    #[arg(long, requires = "filter")]
    pub dry_run: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict rel read`.
#[derive(Debug, Args)]
pub struct RelReadArgs {
    /// TYPE[:ID][#RELATION][@SUBJECT_TYPE[:SUBJECT_ID][#SUBJECT_RELATION]];
    /// an ID ending in `*` is a prefix.
    pub filter: String,
    /// full | minimize-latency | at-least:ZOOKIE | exact:ZOOKIE
    #[arg(long, value_parser = parse_consistency)]
    pub consistency: Option<pb::Consistency>,
    /// At most this many relationships.
    #[arg(long)]
    pub limit: Option<u32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict rel import`.
#[derive(Debug, Args)]
pub struct RelImportArgs {
    /// Tuple lines, a validation file (its `relationships:`), or `-` for stdin.
    pub file: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict rel export`.
#[derive(Debug, Args)]
pub struct RelExportArgs {
    /// Only what this filter matches (same form as `rel read`).
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// full | minimize-latency | at-least:ZOOKIE | exact:ZOOKIE
    #[arg(long, value_parser = parse_consistency)]
    pub consistency: Option<pb::Consistency>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `verdict rel ...`.
pub fn run(command: &RelCommand) -> ExitCode {
    match command {
        RelCommand::Write(args) => write(args),
        RelCommand::Delete(args) => delete(args),
        RelCommand::Read(args) => read(args),
        RelCommand::Import(args) => import(args),
        RelCommand::Export(args) => export(args),
        RelCommand::Copy(args) => super::migrate::rel_copy(args),
    }
}

/// Parses `(where, text)` tuple lines into updates.
fn updates(
    lines: &[(String, String)],
    operation: pb::relationship_update::Operation,
) -> Result<Vec<pb::RelationshipUpdate>, CliError> {
    lines
        .iter()
        .map(|(place, text)| {
            parse_relationship(text)
                .map(|r| pb::RelationshipUpdate {
                    operation: operation as i32,
                    relationship: Some(r),
                })
                .map_err(|e| CliError::Invalid(format!("{place}: {e}")))
        })
        .collect()
}

fn print_zookie(conn: &Conn, zookie: &str, extra: serde_json::Value) -> Result<(), CliError> {
    let mut out = Out::new();
    if conn.json {
        let mut v = json!({ "zookie": zookie });
        if let (Some(obj), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
            obj.extend(more);
        }
        out.json(&v)?;
    } else {
        out.line(zookie)?;
    }
    out.flush()
}

async fn write_updates(conn: &Conn, updates: Vec<pb::RelationshipUpdate>) -> Result<(), CliError> {
    if updates.is_empty() {
        return Err(CliError::Invalid("no relationships given".into()));
    }
    let response = conn
        .relationships()
        .write_relationships(pb::WriteRelationshipsRequest {
            tenant: conn.tenant.clone(),
            updates,
            preconditions: vec![],
        })
        .await?
        .into_inner();
    print_zookie(conn, token(response.written_at.as_ref()), json!({}))
}

/// `verdict rel write`.
pub fn write(args: &RelWriteArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let lines = gather_lines(&args.tuples, args.file.as_deref())?;
        let operation = if args.create {
            pb::relationship_update::Operation::Create
        } else {
            pb::relationship_update::Operation::Touch
        };
        write_updates(&conn, updates(&lines, operation)?).await
    })
}

/// `verdict rel delete`.
pub fn delete(args: &RelDeleteArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let Some(filter) = &args.filter else {
            let lines = gather_lines(&args.tuples, args.file.as_deref())?;
            let updates = updates(&lines, pb::relationship_update::Operation::Delete)?;
            return write_updates(&conn, updates).await;
        };
        let filter = parse_filter(filter).map_err(CliError::Invalid)?;
        let response = conn
            .relationships()
            .delete_relationships(pb::DeleteRelationshipsRequest {
                tenant: conn.tenant.clone(),
                filter: Some(filter),
                preconditions: vec![],
                limit: args.limit.unwrap_or(0),
                dry_run: args.dry_run,
            })
            .await?
            .into_inner();
        if !conn.json {
            if args.dry_run {
                eprintln!("would delete {} relationship(s)", response.deleted);
            } else {
                eprintln!("deleted {} relationship(s)", response.deleted);
            }
        }
        print_zookie(
            &conn,
            token(response.deleted_at.as_ref()),
            json!({ "deleted": response.deleted, "dry_run": args.dry_run }),
        )
    })
}

/// `verdict rel read FILTER`.
pub fn read(args: &RelReadArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let filter = parse_filter(&args.filter).map_err(CliError::Invalid)?;
        let mut stream = conn
            .relationships()
            .read_relationships(pb::ReadRelationshipsRequest {
                tenant: conn.tenant.clone(),
                consistency: args.consistency.clone(),
                filter: Some(filter),
                limit: args.limit.unwrap_or(0),
                cursor: String::new(),
            })
            .await?
            .into_inner();
        let mut out = Out::new();
        while let Some(item) = stream.message().await? {
            let Some(r) = &item.relationship else {
                continue;
            };
            if conn.json {
                out.json(&json!({
                    "tuple": relationship_text(r),
                    "zookie": token(item.read_at.as_ref()),
                }))?;
            } else {
                out.line(relationship_text(r))?;
            }
        }
        out.flush()
    })
}

/// Reads `source` on a blocking thread, sending batches of
/// [`IMPORT_BATCH`]; returns the count sent, and hands back the sender so
/// the caller decides when the stream ends (ending it commits the import).
fn read_batches(
    source: &Source,
    tenant: &str,
    tx: &tokio::sync::mpsc::Sender<pb::ImportRelationshipsRequest>,
) -> Result<u64, CliError> {
    let progress = interactive();
    let name = source.name();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut sent = 0u64;
    let flush = |batch: &mut Vec<pb::Relationship>, sent: &mut u64| -> bool {
        let n = batch.len() as u64;
        let request = pb::ImportRelationshipsRequest {
            tenant: tenant.to_string(),
            relationships: std::mem::take(batch),
        };
        if tx.blocking_send(request).is_err() {
            // The server answered early (an error); the caller reports it.
            return false;
        }
        *sent += n;
        if progress {
            eprint!("\rsent {sent} relationship(s)");
        } else if sent.is_multiple_of(100_000) {
            eprintln!("sent {sent} relationship(s)");
        }
        true
    };
    let mut open = true;
    source.for_each_line(|number, line| {
        if !open {
            return Ok(());
        }
        let r = parse_relationship(line)
            .map_err(|e| CliError::Invalid(format!("{name}:{number}: {e}")))?;
        batch.push(r);
        if batch.len() >= IMPORT_BATCH {
            open = flush(&mut batch, &mut sent);
        }
        Ok(())
    })?;
    if open && !batch.is_empty() {
        flush(&mut batch, &mut sent);
    }
    if progress {
        eprintln!();
    }
    Ok(sent)
}

/// `verdict rel import FILE|-`.
pub fn import(args: &RelImportArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let source = Source::from_path(&args.file)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let tenant = conn.tenant.clone();
        let mut reader = tokio::task::spawn_blocking(move || {
            let result = read_batches(&source, &tenant, &tx);
            (result, tx)
        });
        let mut client = conn.relationships();
        let call = client.import_relationships(ReceiverStream::new(rx));
        tokio::pin!(call);
        let mut read_done = false;
        let response = loop {
            tokio::select! {
                joined = &mut reader, if !read_done => {
                    let (result, tx) = joined
                        .map_err(|e| Status::internal(format!("the reader failed: {e}")))?;
                    if let Err(e) = result {
                        // Never end the request stream cleanly: a clean end
                        // commits what was sent. The connection is torn down
                        // with the process instead, which aborts the import.
                        std::mem::forget(tx);
                        return Err(e);
                    }
                    // Ending the stream asks the server to commit.
                    drop(tx);
                    read_done = true;
                }
                response = &mut call => break response?.into_inner(),
            }
        };
        if !conn.json {
            eprintln!("imported {} relationship(s)", response.imported);
        }
        print_zookie(
            &conn,
            token(response.written_at.as_ref()),
            json!({ "imported": response.imported }),
        )
    })
}

/// `verdict rel export`.
pub fn export(args: &RelExportArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let filter = args
            .filter
            .as_deref()
            .map(parse_filter)
            .transpose()
            .map_err(CliError::Invalid)?;
        let mut stream = conn
            .relationships()
            .export_relationships(pb::ExportRelationshipsRequest {
                tenant: conn.tenant.clone(),
                consistency: args.consistency.clone(),
                optional_filter: filter,
            })
            .await?
            .into_inner();
        let progress = interactive();
        let mut out = Out::new();
        let mut count = 0u64;
        while let Some(page) = stream.message().await? {
            for r in &page.relationships {
                if conn.json {
                    out.json(&json!({
                        "tuple": relationship_text(r),
                        "zookie": token(page.read_at.as_ref()),
                    }))?;
                } else {
                    out.line(relationship_text(r))?;
                }
            }
            count += page.relationships.len() as u64;
            if progress {
                eprint!("\rexported {count} relationship(s)");
            }
        }
        if progress {
            eprintln!();
        }
        out.flush()
    })
}
