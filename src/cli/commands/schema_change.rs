//! `verdict schema history|diff|plan|apply`: versioned schemas and safe
//! changes (structural diff, impact plan on the server, guarded apply).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use crate::api::pb;
use crate::cli::client::{run_client, CliError, ClientArgs, Conn, Out};
use crate::cli::output::token;
use crate::schema::{self, diff::SchemaDiff, SchemaLimits};

/// Arguments of `verdict schema history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict schema diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old side: a schema file, `v:N` (a stored version) or `live`.
    pub old: String,
    /// The new side: a schema file, `v:N` or `live`.
    pub new: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict schema plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The new schema file.
    pub file: PathBuf,
    /// Checks to simulate: a decision log (JSON lines with `resource`,
    /// `permission`, `subject`, optional `context`) or lines
    /// `resource#permission@subject`.
    #[arg(long, value_name = "FILE")]
    pub checks: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict schema apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The new schema file.
    pub file: PathBuf,
    /// Fail unless this is the current schema version.
    #[arg(long, value_name = "N")]
    pub expect_version: Option<u64>,
    /// Delete the relationships the new schema orphans, in the same
    /// revision as the schema.
    #[arg(long)]
    pub allow_orphan_delete: bool,
    /// Apply even if simulated decisions (`--checks`) change.
    #[arg(long)]
    pub accept_decision_changes: bool,
    /// Checks to simulate before applying (as for `schema plan`).
    #[arg(long, value_name = "FILE")]
    pub checks: Option<PathBuf>,
    /// A note stored with the version.
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict schema history`: one line per version.
pub fn history(args: &HistoryArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let versions = conn
            .schema()
            .list_schema_versions(pb::ListSchemaVersionsRequest {
                tenant: conn.tenant.clone(),
            })
            .await?
            .into_inner()
            .versions;
        let mut out = Out::new();
        for v in &versions {
            if conn.json {
                out.json(&json!({
                    "version": v.version,
                    "revision": v.revision,
                    "author": v.author,
                    "comment": v.comment,
                    "sha256": v.text_sha256,
                }))?;
            } else {
                let author = if v.author.is_empty() { "-" } else { &v.author };
                let hash = v.text_sha256.get(..12).unwrap_or(&v.text_sha256);
                out.line(format!(
                    "v{}\trevision {}\t{author}\tsha256:{hash}\t{}",
                    v.version, v.revision, v.comment
                ))?;
            }
        }
        out.flush()
    })
}

/// One side of a diff.
enum Side {
    File(PathBuf),
    Version(u64),
    Live,
}

fn side(s: &str) -> Result<Side, CliError> {
    if s == "live" {
        return Ok(Side::Live);
    }
    if let Some(n) = s.strip_prefix("v:") {
        return n.parse().map(Side::Version).map_err(|_| {
            CliError::Usage(format!("invalid version `{s}`: expected `v:N` (e.g. v:3)"))
        });
    }
    Ok(Side::File(PathBuf::from(s)))
}

/// Loads a schema file's text (a `.zed` file or a validation file).
pub fn file_text(file: &Path) -> Result<String, CliError> {
    let loaded = crate::schema::loader::load(file).map_err(|e| CliError::Invalid(e.to_string()))?;
    if loaded.text.trim().is_empty() {
        return Err(CliError::Invalid(format!(
            "`{}` holds no schema",
            file.display()
        )));
    }
    Ok(loaded.text)
}

async fn side_text(conn: Option<&Conn>, side: &Side) -> Result<String, CliError> {
    match (side, conn) {
        (Side::File(p), _) => file_text(p),
        (Side::Version(n), Some(conn)) => Ok(read(conn, *n).await?.schema_text),
        (Side::Live, Some(conn)) => Ok(read(conn, 0).await?.schema_text),
        (_, None) => Err(CliError::Usage("a server side needs a connection".into())),
    }
}

async fn read(conn: &Conn, version: u64) -> Result<pb::ReadSchemaResponse, CliError> {
    let consistency = pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    };
    Ok(conn
        .schema()
        .read_schema(pb::ReadSchemaRequest {
            tenant: conn.tenant.clone(),
            consistency: Some(consistency),
            version,
        })
        .await?
        .into_inner())
}

fn compile(name: &str, text: &str) -> Result<crate::schema::ir::Schema, CliError> {
    schema::compile(text, &SchemaLimits::default())
        .map(|c| c.schema)
        .map_err(|e| CliError::Invalid(e.render(name, text)))
}

fn print_diff(d: &SchemaDiff, json: bool) -> Result<(), CliError> {
    let mut out = Out::new();
    if json {
        let v = serde_json::to_value(d).map_err(|e| CliError::Invalid(e.to_string()))?;
        out.json(&v)?;
    } else {
        for line in d.render().lines() {
            out.line(line)?;
        }
    }
    out.flush()
}

/// `verdict schema diff OLD NEW`: the structural diff.
pub fn diff(args: &DiffArgs) -> ExitCode {
    let sides = match (side(&args.old), side(&args.new)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return e.report(),
    };
    if let (Side::File(a), Side::File(b)) = &sides {
        let outcome = (|| {
            let old = compile(&args.old, &file_text(a)?)?;
            let new = compile(&args.new, &file_text(b)?)?;
            print_diff(&schema::diff::diff(&old, &new), args.client.json)
        })();
        return match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.report(),
        };
    }
    run_client(&args.client, |conn: Conn| async move {
        let old = compile(&args.old, &side_text(Some(&conn), &sides.0).await?)?;
        let new = compile(&args.new, &side_text(Some(&conn), &sides.1).await?)?;
        print_diff(&schema::diff::diff(&old, &new), conn.json)
    })
}

/// Parses a checks file: JSON lines (a decision log) or
/// `resource#permission@subject` lines; `#`-comments and blank lines skipped.
///
/// # Errors
/// An unreadable file or a malformed line (named by line number).
pub fn load_checks(path: &Path) -> Result<Vec<pb::SimulatedCheck>, CliError> {
    let text = super::read_text(path)?;
    let mut checks = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") || line.starts_with('#') {
            continue;
        }
        let bad =
            |why: String| CliError::Invalid(format!("`{}` line {}: {why}", path.display(), i + 1));
        if line.starts_with('{') {
            let v: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let field = |name: &str| {
                v.get(name)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("missing string field `{name}`")))
            };
            let context = match v.get("context") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(crate::api::convert::json_to_struct(m)),
                Some(_) => return Err(bad("`context` must be an object".into())),
            };
            checks.push(pb::SimulatedCheck {
                resource: field("resource")?,
                permission: field("permission")?,
                subject: field("subject")?,
                context,
            });
        } else {
            let t = verdict_storage::Tuple::parse(line)
                .map_err(|e| bad(format!("`{line}` is not resource#permission@subject: {e}")))?;
            checks.push(pb::SimulatedCheck {
                resource: t.resource.to_string(),
                permission: t.relation,
                subject: t.subject.to_string(),
                context: None,
            });
        }
    }
    Ok(checks)
}

/// The human lines of a plan.
pub fn plan_lines(p: &pb::PlanSchemaChangeResponse) -> Vec<String> {
    let mut lines = vec![format!(
        "plan against schema v{} at {}",
        p.current_version,
        token(p.computed_at.as_ref())
    )];
    lines.push("diff:".into());
    lines.extend(p.diff_text.lines().map(|l| format!("  {l}")));
    if p.orphans.is_empty() {
        lines.push("orphaned relationships: none".into());
    } else {
        let total: u64 = p.orphans.iter().map(|o| o.count).sum();
        lines.push(format!("orphaned relationships: {total}"));
        for o in &p.orphans {
            lines.push(format!(
                "  {}#{}: {} ({})",
                o.resource_type, o.relation, o.count, o.reason
            ));
            lines.extend(o.examples.iter().map(|e| format!("    e.g. {e}")));
        }
    }
    let flips: u64 = p.flip_counts.iter().map(|c| c.count).sum();
    lines.push(format!(
        "decisions: {} simulated, {flips} flipped",
        p.checks_simulated
    ));
    for c in &p.flip_counts {
        lines.push(format!("  {}→{}: {}", c.before, c.after, c.count));
    }
    for f in &p.flips {
        lines.push(format!("    e.g. {} {}→{}", f.check, f.before, f.after));
    }
    lines
}

/// `verdict schema plan FILE [--checks FILE]`.
pub fn plan(args: &PlanArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let schema = file_text(&args.file)?;
        let checks = match &args.checks {
            Some(p) => load_checks(p)?,
            None => Vec::new(),
        };
        let p = conn
            .schema()
            .plan_schema_change(pb::PlanSchemaChangeRequest {
                tenant: conn.tenant.clone(),
                schema,
                consistency: None,
                checks,
            })
            .await?
            .into_inner();
        let mut out = Out::new();
        if conn.json {
            let diff: Value = serde_json::from_str(&p.diff_json).unwrap_or(Value::Null);
            out.json(&json!({
                "zookie": token(p.computed_at.as_ref()),
                "current_version": p.current_version,
                "diff": diff,
                "orphans": p.orphans.iter().map(|o| json!({
                    "resource_type": o.resource_type,
                    "relation": o.relation,
                    "count": o.count,
                    "reason": o.reason,
                    "examples": o.examples,
                })).collect::<Vec<_>>(),
                "checks_simulated": p.checks_simulated,
                "flip_counts": p.flip_counts.iter().map(|c| json!({
                    "before": c.before, "after": c.after, "count": c.count,
                })).collect::<Vec<_>>(),
                "flips": p.flips.iter().map(|f| json!({
                    "check": f.check, "before": f.before, "after": f.after,
                })).collect::<Vec<_>>(),
            }))?;
        } else {
            for line in plan_lines(&p) {
                out.line(line)?;
            }
        }
        out.flush()
    })
}

/// `verdict schema apply FILE ...`: the zookie on the last line.
pub fn apply(args: &ApplyArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let schema = file_text(&args.file)?;
        let checks = match &args.checks {
            Some(p) => load_checks(p)?,
            None => Vec::new(),
        };
        let r = conn
            .schema()
            .apply_schema(pb::ApplySchemaRequest {
                tenant: conn.tenant.clone(),
                schema,
                expected_version: args.expect_version.unwrap_or(0),
                comment: args.comment.clone().unwrap_or_default(),
                allow_orphan_delete: args.allow_orphan_delete,
                accept_decision_changes: args.accept_decision_changes,
                checks,
            })
            .await?
            .into_inner();
        for w in &r.warnings {
            eprintln!("warning: {}", w.trim_end());
        }
        let zookie = token(r.written_at.as_ref());
        let mut out = Out::new();
        if conn.json {
            out.json(&json!({
                "zookie": zookie,
                "version": r.version,
                "orphans_deleted": r.orphans_deleted,
            }))?;
        } else {
            eprintln!(
                "schema version {} ({} orphaned relationships deleted)",
                r.version, r.orphans_deleted
            );
            out.line(zookie)?;
        }
        out.flush()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_come_from_decision_logs_or_plain_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checks");
        std::fs::write(
            &path,
            "// recorded\n\
             {\"resource\":\"document:a\",\"permission\":\"view\",\"subject\":\"group:eng#member\",\"context\":{\"ip\":\"10.0.0.1\"},\"decision\":\"ALLOWED\"}\n\
             \n\
             document:b#edit@user:bob\n",
        )
        .unwrap();
        let checks = load_checks(&path).unwrap();
        assert_eq!(checks.len(), 2);
        assert_eq!(
            (
                checks[0].resource.as_str(),
                checks[0].permission.as_str(),
                checks[0].subject.as_str()
            ),
            ("document:a", "view", "group:eng#member")
        );
        let context = crate::api::convert::struct_to_json(checks[0].context.as_ref().unwrap());
        assert_eq!(context["ip"], "10.0.0.1");
        assert_eq!(
            (checks[1].resource.as_str(), checks[1].subject.as_str()),
            ("document:b", "user:bob")
        );
        assert!(checks[1].context.is_none());

        std::fs::write(
            &path,
            "{\"resource\":\"document:a\",\"permission\":\"view\"}\n",
        )
        .unwrap();
        let Err(CliError::Invalid(m)) = load_checks(&path) else {
            panic!("a log line without subject is refused");
        };
        assert!(m.ends_with("line 1: missing string field `subject`"), "{m}");
        std::fs::write(&path, "not a check\n").unwrap();
        let Err(CliError::Invalid(m)) = load_checks(&path) else {
            panic!("a malformed line is refused");
        };
        assert!(
            m.contains("line 1: `not a check` is not resource#permission@subject"),
            "{m}"
        );
    }
}
