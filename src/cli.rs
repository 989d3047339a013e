//! The `verdict` command line: argument parsing and the offline schema
//! commands. Each subcommand returns an exit code; `main` stays thin.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::schema::{self, loader, SchemaLimits, SourceMap};

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
pub enum Command {
    /// Work with schemas offline: check, format.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

/// `verdict schema ...`
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Compile schema files (`.zed` or validation-file YAML) and report
    /// every error and warning; exits non-zero on any error.
    Check(CheckArgs),
    /// Print a schema in canonical form.
    Fmt(FmtArgs),
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
    }
}

fn schema_check(args: &CheckArgs) -> ExitCode {
    let limits = SchemaLimits::default();
    let mut failed = 0usize;
    let stderr = std::io::stderr();
    for path in &args.files {
        let loaded = match loader::load(path) {
            Ok(loaded) => loaded,
            Err(e) => {
                let _ = writeln!(stderr.lock(), "error: {e}");
                failed += 1;
                continue;
            }
        };
        let map = SourceMap::new(&loaded.name, &loaded.text);
        let result = if args.parse_only {
            schema::parse(&loaded.text, &limits).map(|_| Vec::new())
        } else {
            schema::compile(&loaded.text, &limits).map(|c| c.warnings)
        };
        match result {
            Ok(warnings) => {
                let _ = write!(stderr.lock(), "{}", map.render_all(&warnings));
                if args.deny_warnings && !warnings.is_empty() {
                    failed += 1;
                } else if !args.quiet {
                    let summary = if warnings.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} warning(s))", warnings.len())
                    };
                    println!("ok: {}{summary}", path.display());
                }
            }
            Err(e) => {
                let _ = write!(stderr.lock(), "{}", map.render_all(&e.diagnostics));
                let _ = writeln!(
                    stderr.lock(),
                    "error: {}: {} error(s)",
                    path.display(),
                    e.error_count()
                );
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
