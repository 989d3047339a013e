//! `verdict check|bulk-check|expand|lookup-resources|lookup-subjects`
//! (PermissionService).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Source;
use crate::api::pb;
use crate::cli::client::{run_client, CliError, ClientArgs, Conn, Out};
use crate::cli::output;
use crate::cli::parse::{
    parse_check, parse_consistency, parse_context, parse_object, parse_object_relation,
    parse_subject, parse_subject_type,
};

/// Items per BulkCheck request.
pub const BULK_BATCH: usize = 1_000;

/// Arguments of `verdict check`.
#[derive(Debug, Args)]
pub struct PermCheckArgs {
    /// `resource:id#permission@subject:id[#relation]`
    pub tuple: String,
    /// full | minimize-latency | at-least:ZOOKIE | exact:ZOOKIE
    #[arg(long, value_parser = parse_consistency)]
    pub consistency: Option<pb::Consistency>,
    /// Caveat context, a JSON object.
    #[arg(long, value_parser = parse_context, value_name = "JSON")]
    pub context: Option<prost_types::Struct>,
    /// Print the evaluation trace after the result.
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict bulk-check`.
#[derive(Debug, Args)]
pub struct BulkCheckArgs {
    /// Check lines (`resource:id#permission@subject:id`); default stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// full | minimize-latency | at-least:ZOOKIE | exact:ZOOKIE
    #[arg(long, value_parser = parse_consistency)]
    pub consistency: Option<pb::Consistency>,
    /// Caveat context for every check, a JSON object.
    #[arg(long, value_parser = parse_context, value_name = "JSON")]
    pub context: Option<prost_types::Struct>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict expand`.
#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// `resource:id#permission`
    #[arg(value_name = "RESOURCE#PERMISSION")]
    pub target: String,
    /// full | minimize-latency | at-least:ZOOKIE | exact:ZOOKIE
    #[arg(long, value_parser = parse_consistency)]
    pub consistency: Option<pb::Consistency>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict lookup-resources`.
#[derive(Debug, Args)]
pub struct LookupResourcesArgs {
    /// The resource type.
    #[arg(value_name = "TYPE")]
    pub resource_type: String,
    /// The permission.
    pub permission: String,
    /// `type:id` or `type:id#relation`.
    pub subject: String,
    /// full | minimize-latency | at-least:ZOOKIE | exact:ZOOKIE
    #[arg(long, value_parser = parse_consistency)]
    pub consistency: Option<pb::Consistency>,
    /// Caveat context, a JSON object.
    #[arg(long, value_parser = parse_context, value_name = "JSON")]
    pub context: Option<prost_types::Struct>,
    /// At most this many results.
    #[arg(long)]
    pub limit: Option<u32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `verdict lookup-subjects`.
#[derive(Debug, Args)]
pub struct LookupSubjectsArgs {
    /// `type:id`
    pub resource: String,
    /// The permission.
    pub permission: String,
    /// `type` or `type#relation`.
    #[arg(value_name = "SUBJECT_TYPE[#REL]")]
    pub subject_type: String,
    /// full | minimize-latency | at-least:ZOOKIE | exact:ZOOKIE
    #[arg(long, value_parser = parse_consistency)]
    pub consistency: Option<pb::Consistency>,
    /// Caveat context, a JSON object.
    #[arg(long, value_parser = parse_context, value_name = "JSON")]
    pub context: Option<prost_types::Struct>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `verdict check TUPLE`: ALLOWED, DENIED or CONDITIONAL, exit 0 for all three.
pub fn check(args: &PermCheckArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let (resource, permission, subject) =
            parse_check(&args.tuple).map_err(CliError::Invalid)?;
        let response = conn
            .permissions()
            .check(pb::CheckRequest {
                tenant: conn.tenant.clone(),
                consistency: args.consistency.clone(),
                resource: Some(resource),
                permission,
                subject: Some(subject),
                context: args.context.clone(),
                with_trace: args.explain,
                with_footprint: false,
            })
            .await?
            .into_inner();
        let mut out = Out::new();
        if conn.json {
            out.json(&output::check_json(&response, args.explain))?;
        } else {
            out.line(output::check_line(
                response.permissionship,
                &response.missing_fields,
            ))?;
            if args.explain {
                out.line(response.trace.trim_end())?;
            }
        }
        out.flush()
    })
}

/// `verdict bulk-check`: one result line per input line, in order. A
/// malformed line or a failed item prints `ERROR <CODE>: <message>` in its
/// place, and the command exits 1 after printing everything.
pub fn bulk_check(args: &BulkCheckArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let source = match &args.file {
            Some(path) => Source::from_path(path)?,
            None => Source::Stdin,
        };
        // Each line: its text and either a request item or a local error.
        let mut lines: Vec<(String, Result<pb::BulkCheckItem, String>)> = Vec::new();
        let name = source.name();
        source.for_each_line(|number, line| {
            let item = parse_check(line)
                .map(|(resource, permission, subject)| pb::BulkCheckItem {
                    resource: Some(resource),
                    permission,
                    subject: Some(subject),
                    context: args.context.clone(),
                })
                .map_err(|e| format!("{name}:{number}: {e}"));
            lines.push((line.to_string(), item));
            Ok(())
        })?;
        let mut out = Out::new();
        let mut failed = false;
        let mut consistency = args.consistency.clone();
        let mut client = conn.permissions();
        for chunk in lines.chunks(BULK_BATCH) {
            let items: Vec<_> = chunk
                .iter()
                .filter_map(|(_, item)| item.as_ref().ok().cloned())
                .collect();
            let mut results = Vec::new();
            let mut zookie = String::new();
            if !items.is_empty() {
                let response = client
                    .bulk_check(pb::BulkCheckRequest {
                        tenant: conn.tenant.clone(),
                        consistency: consistency.clone(),
                        items,
                    })
                    .await?
                    .into_inner();
                zookie = output::token(response.checked_at.as_ref()).to_string();
                // Later chunks read the same snapshot as the first.
                if !zookie.is_empty() {
                    consistency = Some(pb::Consistency {
                        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(
                            pb::Zookie {
                                token: zookie.clone(),
                            },
                        )),
                    });
                }
                results = response.results;
            }
            let mut results = results.into_iter();
            for (text, item) in chunk {
                let result = match item {
                    Ok(_) => results.next().unwrap_or(pb::BulkCheckResult {
                        response: Some(pb::bulk_check_result::Response::Error(
                            pb::BulkCheckError {
                                code: tonic::Code::Internal as i32,
                                message: "the server returned fewer results than checks".into(),
                            },
                        )),
                    }),
                    Err(e) => pb::BulkCheckResult {
                        response: Some(pb::bulk_check_result::Response::Error(
                            pb::BulkCheckError {
                                code: tonic::Code::InvalidArgument as i32,
                                message: e.clone(),
                            },
                        )),
                    },
                };
                failed |= matches!(
                    result.response,
                    Some(pb::bulk_check_result::Response::Error(_)) | None
                );
                if conn.json {
                    out.json(&output::bulk_json(text, &result, &zookie))?;
                } else {
                    out.line(output::bulk_line(&result))?;
                }
            }
        }
        out.flush()?;
        if failed {
            return Err(CliError::Status(tonic::Status::invalid_argument(
                "some checks failed; see the ERROR lines",
            )));
        }
        Ok(())
    })
}

/// `verdict expand RESOURCE#PERMISSION`: the userset tree, indented.
pub fn expand(args: &ExpandArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let (resource, permission) =
            parse_object_relation(&args.target).map_err(CliError::Invalid)?;
        let response = conn
            .permissions()
            .expand(pb::ExpandRequest {
                tenant: conn.tenant.clone(),
                consistency: args.consistency.clone(),
                resource: Some(resource),
                permission,
            })
            .await?
            .into_inner();
        let mut out = Out::new();
        let tree = response.tree.unwrap_or_default();
        if conn.json {
            out.json(&json!({
                "tree": output::expand_json(&tree),
                "zookie": output::token(response.expanded_at.as_ref()),
            }))?;
        } else {
            for line in output::expand_lines(&tree) {
                out.line(line)?;
            }
        }
        out.flush()
    })
}

/// `verdict lookup-resources TYPE PERMISSION SUBJECT`: one id per line.
pub fn lookup_resources(args: &LookupResourcesArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let subject = parse_subject(&args.subject).map_err(CliError::Invalid)?;
        let mut stream = conn
            .permissions()
            .lookup_resources(pb::LookupResourcesRequest {
                tenant: conn.tenant.clone(),
                consistency: args.consistency.clone(),
                resource_type: args.resource_type.clone(),
                permission: args.permission.clone(),
                subject: Some(subject),
                context: args.context.clone(),
                limit: args.limit.unwrap_or(0),
                cursor: String::new(),
            })
            .await?
            .into_inner();
        let mut out = Out::new();
        while let Some(r) = stream.message().await? {
            if conn.json {
                out.json(&output::lookup_resource_json(&r))?;
            } else {
                out.line(output::lookup_resource_line(&r))?;
            }
        }
        out.flush()
    })
}

/// `verdict lookup-subjects RESOURCE PERMISSION SUBJECT_TYPE[#REL]`: one id
/// per line (`*` followed by `  excluding: ...` when it excludes some).
pub fn lookup_subjects(args: &LookupSubjectsArgs) -> ExitCode {
    run_client(&args.client, |conn: Conn| async move {
        let resource = parse_object(&args.resource).map_err(CliError::Invalid)?;
        let (subject_type, subject_relation) =
            parse_subject_type(&args.subject_type).map_err(CliError::Invalid)?;
        let mut stream = conn
            .permissions()
            .lookup_subjects(pb::LookupSubjectsRequest {
                tenant: conn.tenant.clone(),
                consistency: args.consistency.clone(),
                resource: Some(resource),
                permission: args.permission.clone(),
                subject_type,
                optional_subject_relation: subject_relation,
                context: args.context.clone(),
            })
            .await?
            .into_inner();
        let mut out = Out::new();
        while let Some(r) = stream.message().await? {
            if conn.json {
                out.json(&output::lookup_subject_json(&r))?;
            } else {
                for line in output::lookup_subject_lines(&r) {
                    out.line(line)?;
                }
            }
        }
        out.flush()
    })
}
