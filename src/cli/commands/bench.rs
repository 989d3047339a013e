//! `verdict bench load|run|report`: load a workload into a running server,
//! measure it over gRPC, render the reports (see [`crate::bench`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::bench::answers::Answers;
use crate::bench::propagation;
use crate::bench::report::{self, RunReport};
use crate::bench::runner::{self, Api, Mode, RunOptions};
use crate::cli::client::{run_client, CliError, ClientArgs, Conn};
use crate::workload::{parse_workload, Workload};

/// `verdict bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Write a workload's schema and bulk-import its relationships; prints
    /// the import rate.
    Load(LoadArgs),
    /// Run a workload's checks (and lookups, writes) at each concurrency,
    /// beside the ceiling (grpc health Check); writes a JSON report.
    Run(RunArgs),
    /// Render JSON reports as a Markdown table (stdout) and an SVG chart.
    Report(ReportArgs),
}

/// The client flags of the other verbs, without `--json` (here it names
/// the report file).
#[derive(Debug, Clone, Args)]
pub struct BenchClientArgs {
    /// The server's gRPC address. Default = 127.0.0.1:50051
    #[arg(long, env = "VERDICT_ENDPOINT", value_name = "HOST:PORT")]
    pub endpoint: Option<String>,
    /// API key, sent as `authorization: Bearer KEY`.
    #[arg(
        long,
        env = "VERDICT_TOKEN",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub token: Option<String>,
    /// The tenant to address. Default = default
    #[arg(long, env = "VERDICT_TENANT", value_name = "NAME")]
    pub tenant: Option<String>,
    /// A profile from the profiles file (see `verdict check --help`).
    #[arg(long, env = "VERDICT_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// CA certificate to trust (PEM) when the server uses TLS.
    #[arg(long, env = "VERDICT_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

impl BenchClientArgs {
    fn client(&self) -> ClientArgs {
        ClientArgs {
            endpoint: self.endpoint.clone(),
            token: self.token.clone(),
            tenant: self.tenant.clone(),
            profile: self.profile.clone(),
            json: false,
            tls_ca: self.tls_ca.clone(),
        }
    }
}

/// Arguments of `verdict bench load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// A `%% zanzibar-workload v1` file (`gen_workload.py` output).
    #[arg(long, value_name = "FILE")]
    pub workload: PathBuf,
    /// Relationships per import message.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub client: BenchClientArgs,
}

/// Arguments of `verdict bench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A `%% zanzibar-workload v1` file, already loaded (`bench load`).
    #[arg(long, value_name = "FILE")]
    pub workload: PathBuf,
    /// Concurrent requests, comma-separated; each is measured in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub concurrency: Vec<usize>,
    /// Seconds per measured phase (ceiling, checks, lookups, writes).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// cold: bypass the decision cache; warm: run the checks once first;
    /// mixed: warm up likewise, then interleave writes (`--mix`) and read
    /// at their zookies; write: only writes, one new relationship per
    /// WriteRelationships request (JSON: `writes_per_s`, `p50_us`, `p99_us`);
    /// propagation: `--concurrency` client-library caches under a Zipf
    /// load while a writer revokes (bench::propagation).
    #[arg(long, value_enum, default_value = "warm")]
    pub mode: Mode,
    /// Mixed mode: READS:WRITES per cycle.
    #[arg(long, default_value = "99:1", value_parser = parse_mix)]
    pub mix: (u32, u32),
    /// The API the checks go through: verdict (`verdict.v1` Check) or
    /// authzed (SpiceDB's `authzed.api.v1` CheckPermission; the bearer
    /// token selects the tenant, the admin key the default one).
    #[arg(long, value_enum, default_value = "verdict")]
    pub api: Api,
    /// Expected answers (`CHECK<TAB>allowed|denied|conditional`, e.g.
    /// SpiceDB's `--answers` output); every disagreement is counted and
    /// listed.
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,
    /// Distinct check subjects to run lookup-resources for (0 = skip).
    #[arg(long, default_value_t = 20)]
    pub lookup_subjects: usize,
    /// Tuples per TOUCH request in the writes phase (0 = skip).
    #[arg(long, default_value_t = 1)]
    pub write_batch: usize,
    /// Concurrency of the writes phase.
    #[arg(long, default_value_t = 8)]
    pub write_concurrency: usize,
    /// Write the JSON report here.
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub client: BenchClientArgs,
}

/// Arguments of `verdict bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// JSON reports written by `bench run --json`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write an SVG chart here.
    #[arg(long, value_name = "OUT")]
    pub svg: Option<PathBuf>,
}

/// `READS:WRITES`, both numbers, writes at least 1.
fn parse_mix(s: &str) -> Result<(u32, u32), String> {
    let (r, w) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not READS:WRITES (e.g. 99:1)"))?;
    let r: u32 = r
        .trim()
        .parse()
        .map_err(|_| format!("reads `{r}` is not a number"))?;
    let w: u32 = w
        .trim()
        .parse()
        .map_err(|_| format!("writes `{w}` is not a number"))?;
    if w == 0 || r.checked_add(w).is_none() {
        return Err("writes must be at least 1 (use --mode warm for pure reads)".into());
    }
    Ok((r, w))
}

fn read_workload(path: &Path) -> Result<Workload, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Invalid(format!("cannot read `{}`: {e}", path.display())))?;
    parse_workload(&text).map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Invalid(format!("cannot encode the report: {e}")))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| CliError::Invalid(format!("cannot write `{}`: {e}", path.display())))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Runs `verdict bench ...`.
pub fn run(command: &BenchCommand) -> ExitCode {
    match command {
        BenchCommand::Load(args) => load(args),
        BenchCommand::Run(args) => bench_run(args),
        BenchCommand::Report(args) => report_cmd(args).unwrap_or_else(|e| e.report()),
    }
}

fn load(args: &LoadArgs) -> ExitCode {
    let workload = match read_workload(&args.workload) {
        Ok(w) => w,
        Err(e) => return e.report(),
    };
    run_client(&args.client.client(), |conn: Conn| async move {
        let loaded = runner::load(&conn, &workload, args.batch).await?;
        println!(
            "{}: imported {} relationships in {:.2} s = {:.0}/s",
            file_name(&args.workload),
            loaded.relationships,
            loaded.seconds,
            loaded.per_s
        );
        if let Some(out) = &args.json {
            write_json(out, &loaded)?;
        }
        Ok(())
    })
}

fn bench_run(args: &RunArgs) -> ExitCode {
    let prepared = (|| {
        if args.duration.is_nan() || args.duration <= 0.0 || args.duration > 86_400.0 {
            return Err(CliError::Usage(
                "--duration must be between 0 and 86400 seconds".into(),
            ));
        }
        if args.concurrency.is_empty() || args.concurrency.iter().any(|&c| c == 0 || c > 4096) {
            return Err(CliError::Usage(
                "--concurrency values must be 1..=4096".into(),
            ));
        }
        let workload = read_workload(&args.workload)?;
        let answers = match &args.answers {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::Invalid(format!("cannot read `{}`: {e}", path.display()))
                })?;
                Some(
                    Answers::parse(&text)
                        .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?,
                )
            }
        };
        Ok((workload, answers))
    })();
    let (workload, answers) = match prepared {
        Ok(p) => p,
        Err(e) => return e.report(),
    };
    let options = RunOptions {
        concurrency: args.concurrency.clone(),
        duration: Duration::from_secs_f64(args.duration),
        mode: args.mode,
        mix: args.mix,
        lookup_subjects: args.lookup_subjects,
        write_batch: args.write_batch,
        write_concurrency: args.write_concurrency.max(1),
        workload_name: file_name(&args.workload),
        api: args.api,
    };
    let workload = Arc::new(workload);
    if args.mode == Mode::Propagation {
        return propagation_run(args, workload);
    }
    run_client(&args.client.client(), |conn: Conn| async move {
        let report = runner::run(&conn, workload, answers, &options).await?;
        print!("{}", report::markdown(std::slice::from_ref(&report)));
        if report.mismatches > 0 {
            eprintln!(
                "{} check(s) disagree with the answers file:",
                report.mismatches
            );
            for m in &report.mismatch_list {
                eprintln!("  {m}");
            }
        }
        if let Some(out) = &args.json {
            write_json(out, &report)?;
        }
        Ok(())
    })
}

/// `--mode propagation`: client caches under load (bench::propagation);
/// `--concurrency` is the number of caches (the first value).
fn propagation_run(args: &RunArgs, workload: Arc<Workload>) -> ExitCode {
    let client = args.client.client();
    let resolved = match client.resolve() {
        Ok(r) => r,
        Err(e) => return e.report(),
    };
    let options = propagation::PropagationOptions {
        caches: args.concurrency.first().copied().unwrap_or(1),
        duration: Duration::from_secs_f64(args.duration),
        workload_name: file_name(&args.workload),
    };
    run_client(&client, |_conn: Conn| async move {
        let report = propagation::run(&resolved, workload, &options).await?;
        print!("{}", propagation::markdown(&report));
        if let Some(out) = &args.json {
            write_json(out, &report)?;
        }
        Ok(())
    })
}

fn report_cmd(args: &ReportArgs) -> Result<ExitCode, CliError> {
    let mut reports = Vec::new();
    for path in &args.files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Invalid(format!("cannot read `{}`: {e}", path.display())))?;
        let r: RunReport = serde_json::from_str(&text).map_err(|e| {
            CliError::Invalid(format!(
                "`{}` is not a bench run report: {e}",
                path.display()
            ))
        })?;
        reports.push(r);
    }
    print!("{}", report::markdown(&reports));
    if let Some(out) = &args.svg {
        std::fs::write(out, report::svg(&reports))
            .map_err(|e| CliError::Invalid(format!("cannot write `{}`: {e}", out.display())))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_refuses_no_writes() {
        assert_eq!(parse_mix("99:1"), Ok((99, 1)));
        assert_eq!(parse_mix("90:10"), Ok((90, 10)));
        assert!(parse_mix("100:0").is_err());
        assert!(parse_mix("99").is_err());
        assert!(parse_mix("a:1").unwrap_err().contains("reads"));
    }
}
