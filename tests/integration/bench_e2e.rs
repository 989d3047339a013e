//! End-to-end: `verdict bench load` + `verdict bench run` + `verdict bench
//! report` against the built `verdict serve` on loopback, on a small
//! generated workload whose answers this test computes independently (a
//! few lines of set logic, not the engine). Asserts the report's fields
//! and agreement, never timings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Server {
    child: Child,
    endpoint: String,
    _data: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--data-dir"])
            .arg(data.path())
            .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .arg("--insecure-no-auth")
            .env("VERDICT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("verdict serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child,
            endpoint: String::new(),
            _data: data,
        };
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("server prints `ready` within a minute");
            if let Some(addr) = line.strip_prefix("grpc listening on ") {
                server.endpoint = addr.to_string();
            }
            if line == "ready" {
                break;
            }
        }
        assert!(!server.endpoint.is_empty());
        server
    }

    fn verdict(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(args)
            .env("VERDICT_ENDPOINT", &self.endpoint)
            .env_remove("VERDICT_TENANT")
            .env_remove("VERDICT_TOKEN")
            .output()
            .expect("verdict runs");
        assert!(
            out.status.success(),
            "verdict {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SCHEMA: &str = "definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}
definition document {
    relation parent: folder
    relation viewer: user | user:* | group#member
    relation banned: user
    permission view = (viewer + parent->view) - banned
}
";

/// Groups g0 ⊂ g1 ⊂ … ⊂ g9 (nested usersets), folders f0 ← f1 ← … ← f9
/// (parents), 50 documents; every document × user is a check. Returns the
/// workload text and the answers, computed by set logic.
fn workload() -> (String, Vec<(String, bool)>) {
    let (users, groups, folders, docs) = (30usize, 10usize, 10usize, 50usize);
    let mut rels = Vec::new();
    // Users directly in group g(u % 10); g(k) members are members of g(k+1).
    for u in 0..users {
        rels.push(format!("group:g{}#member@user:u{u}", u % groups));
    }
    for k in 0..groups - 1 {
        rels.push(format!("group:g{}#member@group:g{k}#member", k + 1));
    }
    let group_has = |g: usize, u: usize| u % groups <= g;
    let mut folder_viewer: Vec<Box<dyn Fn(usize) -> bool>> = Vec::new();
    for f in 0..folders {
        if f > 0 {
            rels.push(format!("folder:f{f}#parent@folder:f{}", f - 1));
        }
        if f % 2 == 0 {
            rels.push(format!("folder:f{f}#viewer@group:g{}#member", f / 2));
            folder_viewer.push(Box::new(move |u| group_has(f / 2, u)));
        } else {
            rels.push(format!("folder:f{f}#viewer@user:u{f}"));
            folder_viewer.push(Box::new(move |u| u == f));
        }
    }
    // view on f = viewer of f or of any ancestor f' < f.
    let folder_view = |f: usize, u: usize| (0..=f).any(|a| folder_viewer[a](u));
    let mut answers = Vec::new();
    let mut doc_rules = Vec::new();
    for d in 0..docs {
        let parent = d % folders;
        let viewer = (d * 7) % users;
        let wildcard = d % 10 == 3;
        let banned = (d % 5 == 1).then_some(d % users);
        rels.push(format!("document:d{d}#parent@folder:f{parent}"));
        rels.push(format!("document:d{d}#viewer@user:u{viewer}"));
        if wildcard {
            rels.push(format!("document:d{d}#viewer@user:*"));
        }
        if let Some(b) = banned {
            rels.push(format!("document:d{d}#banned@user:u{b}"));
        }
        doc_rules.push((parent, viewer, wildcard, banned));
    }
    for (d, &(parent, viewer, wildcard, banned)) in doc_rules.iter().enumerate() {
        for u in 0..users {
            let allowed = (u == viewer || wildcard || folder_view(parent, u)) && banned != Some(u);
            answers.push((format!("document:d{d}#view@user:u{u}"), allowed));
        }
    }
    let mut text = String::from("%% zanzibar-workload v1\n%% meta {}\n%% schema\n");
    text.push_str(SCHEMA);
    text.push_str("%% relationships\n");
    for r in &rels {
        text.push_str(r);
        text.push('\n');
    }
    text.push_str("%% checks\n");
    for (c, _) in &answers {
        text.push_str(c);
        text.push('\n');
    }
    text.push_str("%% end\n");
    (text, answers)
}

/// The answers file; with `flip_d0` every answer about `document:d0` is
/// inverted.
fn answers_file(answers: &[(String, bool)], flip_d0: bool) -> String {
    answers
        .iter()
        .map(|(c, a)| {
            let a = *a != (flip_d0 && c.starts_with("document:d0#"));
            format!("{c}\t{}\n", if a { "allowed" } else { "denied" })
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written"))
        .expect("report is JSON")
}

#[test]
fn bench_load_run_and_report_agree_with_independent_answers() {
    let (text, answers) = workload();
    let allowed = answers.iter().filter(|(_, a)| *a).count();
    assert!(allowed > 0 && allowed < answers.len(), "both answers occur");
    let dir = tempfile::tempdir().unwrap();
    let wl = dir.path().join("small.txt");
    std::fs::write(&wl, &text).unwrap();
    let good = dir.path().join("answers.txt");
    std::fs::write(&good, answers_file(&answers, false)).unwrap();
    let flipped = dir.path().join("flipped.txt");
    std::fs::write(&flipped, answers_file(&answers, true)).unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let server = Server::start();

    let load = server.verdict(&["bench", "load", "--workload", &p(&wl)]);
    let rels = text.lines().filter(|l| l.contains('@')).count() - answers.len();
    let stdout = String::from_utf8_lossy(&load.stdout);
    assert!(
        stdout.contains(&format!("imported {rels} relationships")),
        "{stdout}"
    );

    // Cold, two concurrencies, with lookups and writes.
    let cold = dir.path().join("cold.json");
    server.verdict(&[
        "bench",
        "run",
        "--workload",
        &p(&wl),
        "--concurrency",
        "1,4",
        "--duration",
        "1",
        "--mode",
        "cold",
        "--answers",
        &p(&good),
        "--lookup-subjects",
        "3",
        "--write-batch",
        "2",
        "--json",
        &p(&cold),
    ]);
    let r = json(&cold);
    assert_eq!(r["mismatches"], 0, "{r}");
    assert!(r["answers_compared"].as_u64().unwrap() > 0, "{r}");
    assert!(r["checks_per_s"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["ceiling_per_s"].as_f64().unwrap() > 0.0, "{r}");
    let (p50, p99) = (r["p50_us"].as_u64().unwrap(), r["p99_us"].as_u64().unwrap());
    assert!(p50 > 0 && p99 >= p50, "{r}");
    assert_eq!(r["concurrency"], 4);
    assert_eq!(r["runs"].as_array().unwrap().len(), 2);
    assert_eq!(r["runs"][0]["checks"]["errors"], 0, "{r}");
    assert_eq!(r["relationships"].as_u64().unwrap() as usize, rels);
    let lookups = &r["lookups"];
    assert!(lookups["count"].as_u64().unwrap() > 0, "{r}");
    assert!(
        lookups["units"].as_u64().unwrap() > 0,
        "lookups return resources: {r}"
    );
    let writes = &r["writes"];
    assert_eq!(writes["errors"], 0, "{r}");
    assert_eq!(
        writes["units"].as_u64().unwrap(),
        2 * writes["count"].as_u64().unwrap()
    );

    // Mixed 90:10 against an answers file with document:d0's answers
    // flipped (its 30 checks come first; the first 10 operations of each
    // cycle are writes): those checks, and only they, disagree; writes
    // happened with their zookies.
    let mixed = dir.path().join("mixed.json");
    server.verdict(&[
        "bench",
        "run",
        "--workload",
        &p(&wl),
        "--concurrency",
        "2",
        "--duration",
        "1",
        "--mode",
        "mixed",
        "--mix",
        "90:10",
        "--answers",
        &p(&flipped),
        "--lookup-subjects",
        "0",
        "--write-batch",
        "0",
        "--json",
        &p(&mixed),
    ]);
    let m = json(&mixed);
    let n = m["mismatches"].as_u64().unwrap();
    assert!((1..=30).contains(&n), "{m}");
    let list = m["mismatch_list"].as_array().unwrap();
    assert_eq!(list.len() as u64, n);
    assert!(
        list.iter()
            .all(|l| l.as_str().unwrap().starts_with("document:d0#view@")),
        "{m}"
    );
    assert_eq!(m["mix"], "90:10");
    assert!(m["runs"][0]["writes"]["count"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["runs"][0]["writes"]["errors"], 0, "{m}");
    assert!(m.get("lookups").is_none() && m.get("writes").is_none());

    // Warm: the cache answers the same as the store.
    let warm = dir.path().join("warm.json");
    server.verdict(&[
        "bench",
        "run",
        "--workload",
        &p(&wl),
        "--concurrency",
        "2",
        "--duration",
        "1",
        "--mode",
        "warm",
        "--answers",
        &p(&good),
        "--lookup-subjects",
        "0",
        "--write-batch",
        "0",
        "--json",
        &p(&warm),
    ]);
    assert_eq!(json(&warm)["mismatches"], 0);

    let svg = dir.path().join("chart.svg");
    let out = server.verdict(&[
        "bench",
        "report",
        &p(&cold),
        &p(&mixed),
        &p(&warm),
        "--svg",
        &p(&svg),
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| small.txt | cold | 4 |"), "{table}");
    assert!(table.contains("| small.txt | mixed 90:10 | 2 |"), "{table}");
    assert!(table.contains("lookup-resources"), "{table}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("small.txt warm c2"));
}
