//! `verdict rel copy` (server-side backfill, batch by batch) and
//! `verdict migrate run FILE` (a migration file's steps with checkpoints).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::schema_change::file_text;
use crate::api::pb;
use crate::cli::client::{run_client, CliError, ClientArgs, Conn, Out};
use crate::cli::output::token;
use crate::migrate::{self, CopyProgress, MigrationState, Step};

/// Arguments of `verdict rel copy`.
#[derive(Debug, Args)]
pub struct RelCopyArgs {
    /// The source, `type#relation`.
    #[arg(long, value_name = "TYPE#RELATION")]
    pub from: String,
    /// The destination, `type#relation` (same type).
    #[arg(long, value_name = "TYPE#RELATION")]
    pub to: String,
    /// Delete each source tuple in the revision that copies it (a move).
    #[arg(long)]
    pub delete_source: bool,
    /// Rewrite the subject relation `OLD:NEW` (e.g. `member:admin`).
    #[arg(long, value_name = "OLD:NEW")]
    pub subject_relation: Option<String>,
    /// Tuples per batch (default 500, at most 5000).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict migrate ...`
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Run a migration file's steps (apply_schema, copy_relation,
    /// delete_relation), checkpointing each; re-running resumes.
    Run(MigrateRunArgs),
}

/// Arguments of `verdict migrate run`.
#[derive(Debug, Args)]
pub struct MigrateRunArgs {
    /// The migration file (YAML `steps:`).
    pub file: PathBuf,
    /// The checkpoint file. Default = FILE.state.json
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `verdict migrate ...`.
pub fn run(command: &MigrateCommand) -> ExitCode {
    match command {
        MigrateCommand::Run(args) => migrate_run(args),
    }
}

/// One copy job: the request fields that stay the same across batches.
struct CopyJob {
    resource_type: String,
    from: String,
    to: String,
    from_subject_relation: String,
    to_subject_relation: String,
    delete_source: bool,
    batch_size: u32,
}

impl CopyJob {
    fn new(
        from: &str,
        to: &str,
        delete_source: bool,
        batch_size: Option<u32>,
        subject_relation: Option<&str>,
    ) -> Result<CopyJob, CliError> {
        let (ft, fr) =
            migrate::split_relation(from).map_err(|e| CliError::Usage(format!("--from: {e}")))?;
        let (tt, tr) =
            migrate::split_relation(to).map_err(|e| CliError::Usage(format!("--to: {e}")))?;
        if ft != tt {
            return Err(CliError::Usage(format!(
                "--from and --to must be on the same type (`{ft}` vs `{tt}`)"
            )));
        }
        let (fs, ts) = match subject_relation {
            None => (String::new(), String::new()),
            Some(s) => match s.split_once(':') {
                Some((a, b)) if !a.is_empty() => (a.to_string(), b.to_string()),
                _ => {
                    return Err(CliError::Usage(format!(
                        "--subject-relation `{s}` is not OLD:NEW"
                    )))
                }
            },
        };
        Ok(CopyJob {
            resource_type: ft,
            from: fr,
            to: tr,
            from_subject_relation: fs,
            to_subject_relation: ts,
            delete_source,
            batch_size: batch_size.unwrap_or(0),
        })
    }

    /// Runs batches from `snapshot`/`cursor` to the end, calling
    /// `checkpoint(snapshot, cursor, copied)` after each committed batch.
    /// Returns (copied, last write zookie).
    async fn run(
        &self,
        conn: &Conn,
        mut snapshot: Option<pb::Zookie>,
        mut cursor: String,
        mut copied: u64,
        mut checkpoint: impl FnMut(&str, &str, u64) -> Result<(), CliError>,
    ) -> Result<(u64, String), CliError> {
        let mut last = String::new();
        loop {
            let r = conn
                .schema()
                .copy_relation(pb::CopyRelationRequest {
                    tenant: conn.tenant.clone(),
                    resource_type: self.resource_type.clone(),
                    from_relation: self.from.clone(),
                    to_relation: self.to.clone(),
                    from_subject_relation: self.from_subject_relation.clone(),
                    to_subject_relation: self.to_subject_relation.clone(),
                    delete_source: self.delete_source,
                    snapshot: snapshot.clone(),
                    cursor: cursor.clone(),
                    batch_size: self.batch_size,
                })
                .await?
                .into_inner();
            copied += r.copied;
            if let Some(z) = &r.written_at {
                last = z.token.clone();
            }
            snapshot = r.snapshot.clone();
            cursor = r.cursor.clone();
            checkpoint(token(snapshot.as_ref()), &cursor, copied)?;
            if cursor.is_empty() {
                return Ok((copied, last));
            }
        }
    }
}

/// `verdict rel copy --from T#A --to T#B`: the zookie of the last batch.
pub fn rel_copy(args: &RelCopyArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let job = CopyJob::new(
            &args.from,
            &args.to,
            args.delete_source,
            args.batch_size,
            args.subject_relation.as_deref(),
        )?;
        let (copied, zookie) = job
            .run(&conn, None, String::new(), 0, |_, _, _| Ok(()))
            .await?;
        let mut out = Out::new();
        if conn.json {
            out.json(&json!({"copied": copied, "zookie": zookie}))?;
        } else {
            eprintln!("copied {copied} relationship(s)");
            out.line(zookie)?;
        }
        out.flush()
    })
}

fn state_error(e: migrate::MigrateError) -> CliError {
    CliError::Invalid(e.to_string())
}

/// Whether a status is apply's orphan refusal (retried after a catch-up copy).
fn is_orphan_refusal(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::FailedPrecondition && s.message().contains("would orphan")
}

/// How many times an apply refused for orphans is retried after re-running
/// the completed copy steps (writers that still used the old relation).
const CATCH_UP_ATTEMPTS: usize = 5;

/// `verdict migrate run FILE`.
pub fn migrate_run(args: &MigrateRunArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let text = super::read_text(&args.file)?;
        let migration = migrate::parse(&args.file, &text).map_err(state_error)?;
        let hash = crate::api::schema_plan::text_sha256(&text);
        let state_path = args
            .state
            .clone()
            .unwrap_or_else(|| migrate::default_state_path(&args.file));
        let mut state = MigrationState::load(&state_path, &hash).map_err(state_error)?;
        let base = args.file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let total = migration.steps.len();
        if state.completed >= total {
            eprintln!("migration already complete ({total} steps)");
        }
        for (i, step) in migration.steps.iter().enumerate().skip(state.completed) {
            eprintln!("step {}/{total}: {}", i + 1, step.describe());
            match step {
                Step::ApplySchema {
                    file,
                    allow_orphan_delete,
                } => {
                    let copies: Vec<&Step> = migration
                        .steps
                        .iter()
                        .take(i)
                        .filter(|s| matches!(s, Step::CopyRelation { .. }))
                        .collect();
                    apply_step(
                        &conn,
                        &base.join(file),
                        *allow_orphan_delete,
                        &args.file,
                        i,
                        &copies,
                    )
                    .await?;
                }
                Step::CopyRelation {
                    from,
                    to,
                    delete_source,
                    batch_size,
                } => {
                    let job = CopyJob::new(from, to, *delete_source, *batch_size, None)?;
                    let (snapshot, cursor, copied) = match &state.copy {
                        Some(p) if p.step == i => {
                            eprintln!("  resuming at cursor after {} copied", p.copied);
                            (
                                Some(pb::Zookie {
                                    token: p.snapshot.clone(),
                                }),
                                p.cursor.clone(),
                                p.copied,
                            )
                        }
                        _ => (None, String::new(), 0),
                    };
                    let (copied, _) = job
                        .run(
                            &conn,
                            snapshot,
                            cursor,
                            copied,
                            |snapshot, cursor, copied| {
                                state.copy = Some(CopyProgress {
                                    step: i,
                                    snapshot: snapshot.to_string(),
                                    cursor: cursor.to_string(),
                                    copied,
                                });
                                state.save(&state_path).map_err(state_error)
                            },
                        )
                        .await?;
                    eprintln!("  copied {copied}");
                }
                Step::DeleteRelation { rel } => {
                    let (t, r) = migrate::split_relation(rel).map_err(CliError::Invalid)?;
                    let deleted = conn
                        .relationships()
                        .delete_relationships(pb::DeleteRelationshipsRequest {
                            tenant: conn.tenant.clone(),
                            filter: Some(pb::RelationshipFilter {
                                resource_type: t,
                                optional_relation: r,
                                ..Default::default()
                            }),
                            preconditions: vec![],
                            limit: 0,
                            dry_run: false,
                        })
                        .await?
                        .into_inner()
                        .deleted;
                    eprintln!("  deleted {deleted}");
                }
            }
            state.completed = i + 1;
            state.copy = None;
            state.save(&state_path).map_err(state_error)?;
        }
        let live = read_live(&conn).await?;
        let mut out = Out::new();
        out.line(format!(
            "migration complete: schema version {}",
            live.map_or(0, |l| l.version)
        ))?;
        out.flush()
    })
}

async fn read_live(conn: &Conn) -> Result<Option<pb::ReadSchemaResponse>, CliError> {
    let r = conn
        .schema()
        .read_schema(pb::ReadSchemaRequest {
            tenant: conn.tenant.clone(),
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
            }),
            version: 0,
        })
        .await;
    match r {
        Ok(r) => Ok(Some(r.into_inner())),
        Err(s)
            if s.code() == tonic::Code::FailedPrecondition && s.message().contains("no schema") =>
        {
            Ok(None)
        }
        Err(s) => Err(s.into()),
    }
}

/// Applies one schema step: skipped when the live schema already is that
/// text (a resumed run); on an orphan refusal, re-runs the earlier copy
/// steps at a fresh snapshot (catching writes made to the old relation
/// after the first copy) and retries.
async fn apply_step(
    conn: &Conn,
    file: &Path,
    allow_orphan_delete: bool,
    migration: &Path,
    index: usize,
    copies: &[&Step],
) -> Result<(), CliError> {
    let text = file_text(file)?;
    for attempt in 0..=CATCH_UP_ATTEMPTS {
        let live = read_live(conn).await?;
        if live.as_ref().is_some_and(|l| l.schema_text == text) {
            eprintln!("  already active");
            return Ok(());
        }
        let r = conn
            .schema()
            .apply_schema(pb::ApplySchemaRequest {
                tenant: conn.tenant.clone(),
                schema: text.clone(),
                expected_version: live.as_ref().map_or(0, |l| l.version),
                comment: format!("migrate {} step {}", migration.display(), index + 1),
                allow_orphan_delete,
                accept_decision_changes: false,
                checks: Vec::new(),
            })
            .await;
        match r {
            Ok(r) => {
                let r = r.into_inner();
                eprintln!(
                    "  schema version {} at {}",
                    r.version,
                    token(r.written_at.as_ref())
                );
                return Ok(());
            }
            Err(s)
                if is_orphan_refusal(&s) && !copies.is_empty() && attempt < CATCH_UP_ATTEMPTS =>
            {
                eprintln!("  refused ({}); catching up the copy steps", s.message());
                for step in copies {
                    if let Step::CopyRelation {
                        from,
                        to,
                        delete_source,
                        batch_size,
                    } = step
                    {
                        let job = CopyJob::new(from, to, *delete_source, *batch_size, None)?;
                        let (n, _) = job
                            .run(conn, None, String::new(), 0, |_, _, _| Ok(()))
                            .await?;
                        eprintln!("  caught up {n} from {from}");
                    }
                }
            }
            Err(s) => return Err(s.into()),
        }
    }
    Err(CliError::Invalid(format!(
        "`{}` still orphans relationships after {CATCH_UP_ATTEMPTS} catch-up copies; stop the writers of the old relation and re-run",
        file.display()
    )))
}
