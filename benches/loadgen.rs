//! Load generator wrapper: starts the built `verdict serve` on a temporary
//! data directory (or uses `VERDICT_ENDPOINT`), then runs `verdict bench
//! load` and `verdict bench run` (the logic lives in `src/bench/`) on the
//! shared workload (`gen_workload.py --seed 42 --relationships 100000
//! --checks 20000`, or `VERDICT_WORKLOAD=path`).
//!
//! Env: `VERDICT_LOADGEN_SECONDS` (per phase, default 10),
//! `VERDICT_LOADGEN_MODE` (cold|warm|mixed, default warm),
//! `VERDICT_ANSWERS` (answers file). Run: `cargo bench --bench loadgen`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed setup step aborts it loudly"
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const EXE: &str = env!("CARGO_BIN_EXE_verdict");

fn start_server(data_dir: &std::path::Path) -> (ServerProcess, String) {
    let mut child = Command::new(EXE)
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--insecure-no-auth")
        .env("VERDICT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("verdict serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut endpoint = String::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(addr) = line.strip_prefix("grpc listening on ") {
            endpoint = addr.to_string();
        }
        if line == "ready" {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (ServerProcess(child), endpoint)
}

fn main() {
    let seconds = std::env::var("VERDICT_LOADGEN_SECONDS").unwrap_or_else(|_| "10".into());
    let mode = std::env::var("VERDICT_LOADGEN_MODE").unwrap_or_else(|_| "warm".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let workload = match std::env::var_os("VERDICT_WORKLOAD") {
        Some(p) => PathBuf::from(p),
        None => {
            let peers = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers");
            let out = dir.path().join("workload-s42-r100000.txt");
            let ok = Command::new("python3")
                .arg(peers.join("gen_workload.py"))
                .args([
                    "--seed",
                    "42",
                    "--relationships",
                    "100000",
                    "--checks",
                    "20000",
                    "-o",
                ])
                .arg(&out)
                .status()
                .expect("python3 runs")
                .success();
            assert!(ok, "gen_workload.py failed");
            out
        }
    };
    let (_server, endpoint) = match std::env::var("VERDICT_ENDPOINT") {
        Ok(e) => (None, e),
        Err(_) => {
            let (p, e) = start_server(&dir.path().join("data"));
            (Some(p), e)
        }
    };
    let verdict = |args: &[&str]| {
        let ok = Command::new(EXE)
            .args(args)
            .env("VERDICT_ENDPOINT", &endpoint)
            .status()
            .expect("verdict runs")
            .success();
        assert!(ok, "verdict {args:?} failed");
    };
    let w = workload.to_str().expect("utf-8 path");
    verdict(&["bench", "load", "--workload", w]);
    let mut run = vec![
        "bench",
        "run",
        "--workload",
        w,
        "--duration",
        &seconds,
        "--mode",
        &mode,
    ];
    let answers = std::env::var("VERDICT_ANSWERS").unwrap_or_default();
    if !answers.is_empty() {
        run.extend(["--answers", &answers]);
    }
    verdict(&run);
}
