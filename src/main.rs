//! The `verdict` binary: parse the command line, run it.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    verdict::cli::run(verdict::cli::Cli::parse())
}
