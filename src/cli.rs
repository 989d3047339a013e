//! The `verdict` command line: argument parsing, the offline schema
//! commands, and the client verbs that talk to a server over gRPC
//! (`cli/`). Each subcommand returns an exit code; `main` stays thin.
//!
//! Exit codes: 0 success, 1 a request error (`error: <CODE>: <message>` on
//! stderr), 2 a usage error.

#[cfg(feature = "server")]
pub mod client;
#[cfg(feature = "server")]
pub mod commands;
#[cfg(feature = "server")]
pub mod output;
#[cfg(feature = "server")]
pub mod parse;
#[cfg(feature = "server")]
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::schema::imports::{self, SchemaSources};
use crate::schema::{self, loader, Diagnostic, SchemaLimits};

/// Verdict: a Zanzibar-style authorization database.
#[derive(Debug, Parser)]
#[command(name = "verdict", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
#[cfg_attr(
    feature = "server",
    expect(
        clippy::large_enum_variant,
        reason = "parsed once per process: the size of the `serve` variant does not matter"
    )
)]
pub enum Command {
    /// Schemas: check and format offline; write and read on a server.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Write, delete, read, import and export relationships.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Rel(commands::rel::RelCommand),
    /// Ask whether a subject has a permission: prints ALLOWED, DENIED or
    /// CONDITIONAL (missing: ...) and exits 0 for each.
    #[cfg(feature = "server")]
    Check(commands::perm::PermCheckArgs),
    /// Check many `resource#permission@subject` lines (file or stdin); one
    /// result per line, in order.
    #[cfg(feature = "server")]
    BulkCheck(commands::perm::BulkCheckArgs),
    /// Print the userset tree of `resource#permission`.
    #[cfg(feature = "server")]
    Expand(commands::perm::ExpandArgs),
    /// The ids of the resources of a type a subject has a permission on.
    #[cfg(feature = "server")]
    LookupResources(commands::perm::LookupResourcesArgs),
    /// The ids of the subjects of a type that have a permission on a resource.
    #[cfg(feature = "server")]
    LookupSubjects(commands::perm::LookupSubjectsArgs),
    /// Stream relationship changes until interrupted.
    #[cfg(feature = "server")]
    Watch(commands::watch::WatchArgs),
    /// Administer tenants.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Tenant(commands::tenant::TenantCommand),
    /// Administer tenant API keys (admin key only).
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Key(commands::key::KeyCommand),
    /// Run migration files (schema applies, relation copies, deletes) with
    /// checkpoints; a re-run resumes where the last one stopped.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Migrate(commands::migrate::MigrateCommand),
    /// Raft cluster status and membership (over a node's raft address).
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Cluster(commands::cluster::ClusterCommand),
    /// Load a workload into a server and measure it over gRPC.
    #[cfg(feature = "server")]
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// Run a node on an embedded data directory (gRPC + HTTP; Raft).
    #[cfg(feature = "server")]
    Serve(crate::server::config::ServeArgs),
    /// SpiceDB's `serve-testing`: a throwaway single node (temporary data
    /// directory, removed on exit) where any bearer token is accepted and
    /// each distinct token gets its own empty tenant; no auth config.
    #[cfg(feature = "server")]
    ServeTesting(ServeTestingArgs),
    /// Run SpiceDB validation files (schema, relationships, assertions,
    /// expected relations) against a real store; exits non-zero on any
    /// failure and explains each one.
    #[cfg(feature = "server")]
    Validate(ValidateArgs),
}

/// Arguments of `verdict serve-testing`.
#[cfg(feature = "server")]
#[derive(Debug, Args)]
pub struct ServeTestingArgs {
    /// gRPC listen address. Default = 127.0.0.1:50051
    #[arg(long, env = "VERDICT_GRPC_ADDR")]
    pub grpc_addr: Option<std::net::SocketAddr>,
    /// HTTP listen address (SpiceDB's HTTP/JSON API, /healthz). Default = 127.0.0.1:8080
    #[arg(long, env = "VERDICT_HTTP_ADDR")]
    pub http_addr: Option<std::net::SocketAddr>,
    /// SpiceDB validation files (schema + relationships) loaded into every
    /// token's tenant on its first use (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub load_configs: Vec<PathBuf>,
}

/// Arguments of `verdict validate`.
#[cfg(feature = "server")]
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Validation files (YAML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print only failures and the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `verdict schema ...`
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Compile schema files (`.zed` or validation-file YAML) and report
    /// every error and warning; exits non-zero on any error.
    Check(CheckArgs),
    /// Print a schema in canonical form.
    Fmt(FmtArgs),
    /// Store a new schema version on the server; prints the zookie.
    #[cfg(feature = "server")]
    Write(commands::schema::SchemaWriteArgs),
    /// Print the server's current schema.
    #[cfg(feature = "server")]
    Read(commands::schema::SchemaReadArgs),
    /// List the stored schema versions (author, revision, hash, comment).
    #[cfg(feature = "server")]
    History(commands::schema_change::HistoryArgs),
    /// Structural diff of two schemas (files, `v:N` or `live`).
    #[cfg(feature = "server")]
    Diff(commands::schema_change::DiffArgs),
    /// The impact of a new schema on the live data: diff, orphaned
    /// relationships, decision flips.
    #[cfg(feature = "server")]
    Plan(commands::schema_change::PlanArgs),
    /// Replace the schema safely (refuses orphans and decision flips
    /// unless allowed).
    #[cfg(feature = "server")]
    Apply(commands::schema_change::ApplyArgs),
}

/// Arguments of `verdict schema check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files to check: schema text, or validation files (`schema:` / `schemaFile:`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Stop after syntax (for files that are fragments of a schema).
    #[arg(long)]
    pub parse_only: bool,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print nothing for files without diagnostics.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Arguments of `verdict schema fmt`.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// The schema file (`.zed` or validation-file YAML).
    pub file: PathBuf,
    /// Rewrite a `.zed` file in place instead of printing.
    #[arg(long, conflicts_with = "check")]
    pub write: bool,
    /// Exit non-zero if the file is not already formatted.
    #[arg(long)]
    pub check: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Schema(SchemaCommand::Check(args)) => schema_check(&args),
        Command::Schema(SchemaCommand::Fmt(args)) => schema_fmt(&args),
        #[cfg(feature = "server")]
        Command::Schema(SchemaCommand::Write(args)) => commands::schema::write(&args),
        #[cfg(feature = "server")]
        Command::Schema(SchemaCommand::Read(args)) => commands::schema::read(&args),
        #[cfg(feature = "server")]
        Command::Schema(SchemaCommand::History(args)) => commands::schema_change::history(&args),
        #[cfg(feature = "server")]
        Command::Schema(SchemaCommand::Diff(args)) => commands::schema_change::diff(&args),
        #[cfg(feature = "server")]
        Command::Schema(SchemaCommand::Plan(args)) => commands::schema_change::plan(&args),
        #[cfg(feature = "server")]
        Command::Schema(SchemaCommand::Apply(args)) => commands::schema_change::apply(&args),
        #[cfg(feature = "server")]
        Command::Rel(command) => commands::rel::run(&command),
        #[cfg(feature = "server")]
        Command::Migrate(command) => commands::migrate::run(&command),
        #[cfg(feature = "server")]
        Command::Check(args) => commands::perm::check(&args),
        #[cfg(feature = "server")]
        Command::BulkCheck(args) => commands::perm::bulk_check(&args),
        #[cfg(feature = "server")]
        Command::Expand(args) => commands::perm::expand(&args),
        #[cfg(feature = "server")]
        Command::LookupResources(args) => commands::perm::lookup_resources(&args),
        #[cfg(feature = "server")]
        Command::LookupSubjects(args) => commands::perm::lookup_subjects(&args),
        #[cfg(feature = "server")]
        Command::Watch(args) => commands::watch::watch(&args),
        #[cfg(feature = "server")]
        Command::Tenant(command) => commands::tenant::run(&command),
        #[cfg(feature = "server")]
        Command::Key(command) => commands::key::run(&command),
        #[cfg(feature = "server")]
        Command::Validate(args) => validate(&args),
        #[cfg(feature = "server")]
        Command::Bench(command) => commands::bench::run(&command),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve(&args),
        #[cfg(feature = "server")]
        Command::ServeTesting(args) => serve_testing(&args),
        #[cfg(feature = "server")]
        Command::Cluster(command) => commands::cluster::run(&command),
    }
}

#[cfg(feature = "server")]
fn serve(args: &crate::server::config::ServeArgs) -> ExitCode {
    let settings = match args.resolve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    run_server(settings)
}

/// `verdict serve-testing`: `serve` on a temporary data directory (a real
/// RocksDB store, as `serve` runs, rather than a second in-memory storage
/// path; removed on exit), without fsync, in serve-testing mode.
#[cfg(feature = "server")]
fn serve_testing(args: &ServeTestingArgs) -> ExitCode {
    // Fail at start-up, not on the first request, on a bad config file.
    if let Err(e) = crate::api::spicedb::testing::read_configs(&args.load_configs) {
        eprintln!("error: {}", e.message());
        return ExitCode::FAILURE;
    }
    let dir = match tempfile::Builder::new()
        .prefix("verdict-serve-testing-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot create a temporary data directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serve_args = crate::server::config::ServeArgs {
        data_dir: Some(dir.path().to_path_buf()),
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        insecure_no_auth: true,
        sync_writes: Some(false),
        ..Default::default()
    };
    let mut settings = match serve_args.resolve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    settings.ops.serve_testing = Some(args.load_configs.clone());
    let code = run_server(settings);
    drop(dir);
    code
}

/// Runs a node with `settings` until SIGINT/SIGTERM.
#[cfg(feature = "server")]
fn run_server(settings: crate::server::config::ServerSettings) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VERDICT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .json()
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::serve::run(settings, crate::serve::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "server")]
fn validate(args: &ValidateArgs) -> ExitCode {
    let now = verdict_storage::Timestamp::now();
    let (mut files_failed, mut passed, mut failed) = (0usize, 0usize, 0usize);
    for path in &args.files {
        let report = crate::validate::validate_file(path, now);
        passed += report.passed;
        failed += report.failures.len();
        if let Some(fatal) = &report.fatal {
            eprintln!("FAIL {}: {fatal}", path.display());
            files_failed += 1;
            continue;
        }
        for failure in &report.failures {
            eprintln!("FAIL {}: {failure}", path.display());
        }
        if report.ok() {
            if !args.quiet {
                println!(
                    "ok: {} ({} assertion(s), {} expected relation(s))",
                    path.display(),
                    report.passed,
                    report.expected_relations_checked
                );
            }
        } else {
            files_failed += 1;
        }
    }
    println!(
        "{} file(s): {} passed, {} failed; assertions: {passed} passed, {failed} failed",
        args.files.len(),
        args.files.len() - files_failed,
        files_failed
    );
    if files_failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn schema_check(args: &CheckArgs) -> ExitCode {
    let limits = SchemaLimits::default();
    let mut failed = 0usize;
    for path in &args.files {
        match check_one(path, args, &limits) {
            Ok(warnings) if args.deny_warnings && warnings > 0 => failed += 1,
            Ok(warnings) => {
                if !args.quiet {
                    let summary = if warnings == 0 {
                        String::new()
                    } else {
                        format!(" ({warnings} warning(s))")
                    };
                    println!("ok: {}{summary}", path.display());
                }
            }
            Err(errors) => {
                eprintln!("error: {}: {errors} error(s)", path.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Checks one file, printing its diagnostics; returns the warning count, or
/// the error count.
fn check_one(path: &Path, args: &CheckArgs, limits: &SchemaLimits) -> Result<usize, usize> {
    // An OpenFGA model (DSL, JSON, fga.mod, or a store file's model).
    if let Some(loaded) = schema::openfga::load_model(path) {
        let (name, text) = loaded.map_err(|e| {
            eprintln!("error: {e}");
            1usize
        })?;
        return schema::compile(&text, limits).map(|_| 0).map_err(|e| {
            eprint!("{}", e.render(&name, &text));
            e.error_count().max(1)
        });
    }
    // A `.zed` file may import others: resolve them relative to it, unless
    // only its syntax is asked about (`--parse-only` never needs the
    // imported files, as SpiceDB's parser tests expect).
    let (parsed, sources) = if is_yaml(path) || args.parse_only {
        let loaded = loader::load(path).map_err(|e| {
            eprintln!("error: {e}");
            1usize
        })?;
        let mut sources = SchemaSources::default();
        let base = sources.add(loaded.name, loaded.text.clone());
        let (file, errors) = schema::parser::parse_at(&loaded.text, base, limits);
        (
            if errors.is_empty() {
                Ok(file)
            } else {
                Err(errors)
            },
            sources,
        )
    } else {
        imports::load_with_imports(path, limits)
    };
    let report = |diagnostics: &[Diagnostic]| eprint!("{}", sources.render_all(diagnostics));
    let file = parsed.map_err(|errors| {
        report(&errors);
        errors.len()
    })?;
    if args.parse_only {
        return Ok(0);
    }
    match schema::compile_parsed(file, limits) {
        Ok(compiled) => {
            report(&compiled.warnings);
            Ok(compiled.warnings.len())
        }
        Err(e) => {
            report(&e.diagnostics);
            Err(e.error_count())
        }
    }
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn schema_fmt(args: &FmtArgs) -> ExitCode {
    let limits = SchemaLimits::default();
    let loaded = match loader::load(&args.file) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let formatted = match schema::format(&loaded.text, &limits) {
        Ok(text) => text,
        Err(e) => {
            eprint!("{}", e.render(&loaded.name, &loaded.text));
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        if formatted != loaded.text {
            eprintln!("{} is not formatted", loaded.name);
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    if args.write {
        if loaded.validation.is_some() && loaded.name == args.file.display().to_string() {
            eprintln!("error: --write only rewrites schema files, not validation files");
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::write(&loaded.name, formatted) {
            eprintln!("error: cannot write `{}`: {e}", loaded.name);
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    print!("{formatted}");
    ExitCode::SUCCESS
}
