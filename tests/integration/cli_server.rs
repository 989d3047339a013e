//! End-to-end: the built `verdict serve` on free loopback ports, driven by
//! the client verbs of the same binary, the way a shell script would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running server; killed on drop so a failing test never leaks it.
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
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--insecure-no-auth",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("verdict serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Keep draining stdout after `ready` so the server never blocks on it.
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
        assert!(
            !server.endpoint.is_empty(),
            "server never printed its address"
        );
        server
    }

    /// Runs `verdict ARGS` against this server (endpoint from the
    /// environment, like a script would set it).
    fn cli(&self, args: &[&str]) -> Run {
        self.cli_stdin(args, None)
    }

    fn cli_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        run(args, stdin, &[("VERDICT_ENDPOINT", self.endpoint.as_str())])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop (for `verdict watch`).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success; returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        &self.stdout
    }

    fn last_line(&self) -> &str {
        self.ok().lines().last().unwrap_or("")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok().trim()).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    fn lines(&self) -> Vec<&str> {
        self.ok().lines().collect()
    }
}

fn run(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("VERDICT_ENDPOINT")
        .env_remove("VERDICT_TOKEN")
        .env_remove("VERDICT_TENANT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("verdict runs");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const SCHEMA_FILE: &str = "schema-examples/document-sharing.yaml";

const TUPLES: [&str; 6] = [
    "folder:root#viewer@group:eng#member",
    "group:eng#member@user:bob",
    "document:plan#folder@folder:root",
    "document:readme#viewer@user:alice",
    "document:public#viewer@user:*",
    "document:public#banned@user:mallory",
];

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

/// Writes the schema and [`TUPLES`]; returns the write's zookie.
fn seed(server: &Server) -> String {
    let schema = server.cli(&["schema", "write", SCHEMA_FILE]);
    assert!(!schema.last_line().is_empty(), "{schema:?}");
    let mut args = vec!["rel", "write"];
    args.extend(TUPLES);
    let zookie = server.cli(&args).last_line().to_string();
    assert!(!zookie.is_empty());
    zookie
}

#[test]
fn schema_writes_checks_reads_and_lookups() {
    let server = Server::start();

    // schema write: zookie on the last line; --json has zookie and version.
    let first = server.cli(&["schema", "write", SCHEMA_FILE]);
    assert!(!first.last_line().is_empty(), "{first:?}");
    let again = server
        .cli(&["schema", "write", "--json", SCHEMA_FILE])
        .json();
    assert!(again["zookie"].as_str().is_some_and(|z| !z.is_empty()));
    assert_eq!(again["version"], 2);
    let text = server.cli(&["schema", "read"]);
    assert!(text.ok().contains("definition document"), "{text:?}");

    // rel write: zookie on the last line.
    let mut args = vec!["rel", "write"];
    args.extend(TUPLES);
    let zookie = server.cli(&args).last_line().to_string();
    let fresh = format!("at-least:{zookie}");

    // check: the three answers, each exit 0.
    for (tuple, expected) in [
        ("document:readme#view@user:alice", "ALLOWED"),
        ("document:readme#view@user:bob", "DENIED"),
        ("document:plan#view@user:bob", "ALLOWED"),
        ("document:public#view@user:zed", "ALLOWED"),
        ("document:public#view@user:mallory", "DENIED"),
    ] {
        let r = server.cli(&["check", tuple, "--consistency", &fresh]);
        assert_eq!(r.ok().trim(), expected, "{tuple}: {r:?}");
    }
    let exact = server.cli(&[
        "check",
        "document:plan#view@user:bob",
        "--consistency",
        &format!("exact:{zookie}"),
    ]);
    assert_eq!(exact.ok().trim(), "ALLOWED");
    let full = server.cli(&[
        "check",
        "document:plan#view@user:bob",
        "--consistency",
        "full",
    ]);
    assert_eq!(full.ok().trim(), "ALLOWED");

    // --json and --explain.
    let j = server
        .cli(&[
            "check",
            "--json",
            "document:readme#view@user:alice",
            "--consistency",
            &fresh,
        ])
        .json();
    assert_eq!(j["result"], "ALLOWED");
    assert!(j["zookie"].as_str().is_some_and(|z| !z.is_empty()));
    assert_eq!(j["missing"], serde_json::json!([]));
    let explained = server.cli(&[
        "check",
        "--explain",
        "document:plan#view@user:bob",
        "--consistency",
        &fresh,
    ]);
    let lines = explained.lines();
    assert_eq!(lines[0], "ALLOWED");
    assert!(
        lines.len() > 1,
        "the trace follows the result: {explained:?}"
    );

    // bulk-check: one line per input line, in order.
    let bulk = server.cli_stdin(
        &["bulk-check", "--consistency", &fresh],
        Some(
            "document:readme#view@user:alice\n// a comment\n\ndocument:readme#view@user:bob\n\
             document:public#view@user:mallory\n",
        ),
    );
    assert_eq!(bulk.lines(), vec!["ALLOWED", "DENIED", "DENIED"]);

    // rel read with filters, in the text form.
    let read = server.cli(&["rel", "read", "document:readme", "--consistency", &fresh]);
    assert_eq!(read.lines(), vec!["document:readme#viewer@user:alice"]);
    let read = server.cli(&["rel", "read", "document#viewer", "--consistency", &fresh]);
    assert_eq!(
        sorted(read.lines()),
        vec![
            "document:public#viewer@user:*",
            "document:readme#viewer@user:alice"
        ]
    );
    let read = server.cli(&[
        "rel",
        "read",
        "folder@group:eng#member",
        "--consistency",
        &fresh,
    ]);
    assert_eq!(read.lines(), vec!["folder:root#viewer@group:eng#member"]);
    let read = server.cli(&["rel", "read", "--json", "group", "--consistency", &fresh]);
    let objects: Vec<serde_json::Value> = read
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0]["tuple"], "group:eng#member@user:bob");

    // lookups: one id per line.
    let resources = server.cli(&[
        "lookup-resources",
        "document",
        "view",
        "user:bob",
        "--consistency",
        &fresh,
    ]);
    assert_eq!(sorted(resources.lines()), vec!["plan", "public"]);
    let resources = server.cli(&[
        "lookup-resources",
        "--json",
        "document",
        "view",
        "user:alice",
        "--consistency",
        &fresh,
    ]);
    let mut ids: Vec<String> = resources
        .lines()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["result"], "ALLOWED");
            v["resource_id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["public", "readme"]);
    let subjects = server.cli(&[
        "lookup-subjects",
        "document:plan",
        "view",
        "user",
        "--consistency",
        &fresh,
    ]);
    assert_eq!(subjects.lines(), vec!["bob"]);
    let subjects = server.cli(&[
        "lookup-subjects",
        "document:public",
        "view",
        "user",
        "--consistency",
        &fresh,
    ]);
    // The wildcard, then what it excludes (concrete subjects may be listed too).
    let lines = subjects.lines();
    let star = lines.iter().position(|l| *l == "*").expect("the wildcard");
    assert_eq!(
        lines.get(star + 1),
        Some(&"  excluding: mallory"),
        "{lines:?}"
    );
    assert!(!lines.contains(&"mallory"), "{lines:?}");

    // expand: an indented tree that reaches alice.
    let tree = server.cli(&["expand", "document:readme#view", "--consistency", &fresh]);
    assert!(tree.ok().contains("user:alice"), "{tree:?}");
    assert!(tree.lines().iter().any(|l| l.starts_with("  ")), "{tree:?}");

    // rel delete: the zookie of the delete makes the next check fresh.
    let deleted = server
        .cli(&[
            "rel",
            "delete",
            "--json",
            "document:readme#viewer@user:alice",
        ])
        .json();
    let after = format!("at-least:{}", deleted["zookie"].as_str().unwrap());
    let r = server.cli(&[
        "check",
        "document:readme#view@user:alice",
        "--consistency",
        &after,
    ]);
    assert_eq!(r.ok().trim(), "DENIED");
}

#[test]
fn errors_exit_1_with_the_status_and_usage_errors_exit_2() {
    let server = Server::start();
    let zookie = seed(&server);

    // A malformed tuple: exit 1, INVALID_ARGUMENT on stderr.
    let bad = server.cli(&["rel", "write", "document:readme#viewer"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.starts_with("error: INVALID_ARGUMENT: "),
        "{bad:?}"
    );
    let bad = server.cli(&["check", "not a tuple"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("INVALID_ARGUMENT"), "{bad:?}");

    // The server's refusals: unknown relation, unknown type.
    let bad = server.cli(&["rel", "write", "document:readme#nope@user:alice"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("error: INVALID_ARGUMENT: "), "{bad:?}");
    let bad = server.cli(&["check", "widget:x#view@user:alice", "--consistency", "full"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.starts_with("error: "), "{bad:?}");
    assert!(bad.stdout.is_empty(), "{bad:?}");

    // A corrupt zookie is the server's INVALID_ARGUMENT.
    let bad = server.cli(&[
        "check",
        "document:plan#view@user:bob",
        "--consistency",
        "at-least:garbage",
    ]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("INVALID_ARGUMENT"), "{bad:?}");

    // CREATE of an existing relationship.
    let dup = server.cli(&["rel", "write", "--create", "group:eng#member@user:bob"]);
    assert_eq!(dup.code, 1, "{dup:?}");
    assert!(dup.stderr.starts_with("error: "), "{dup:?}");

    // A bad filter.
    let bad = server.cli(&["rel", "read", "Document:x"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("INVALID_ARGUMENT"), "{bad:?}");

    // Usage errors are clap's exit 2.
    let usage = server.cli(&[
        "check",
        "document:plan#view@user:bob",
        "--consistency",
        "latest",
    ]);
    assert_eq!(usage.code, 2, "{usage:?}");
    let usage = server.cli(&["check", "document:plan#view@user:bob", "--context", "[1]"]);
    assert_eq!(usage.code, 2, "{usage:?}");
    let usage = server.cli(&["tenant", "delete", "acme", "--confirm", "other"]);
    assert_eq!(usage.code, 2, "{usage:?}");

    // Bulk check: a bad line answers in its place, and the exit says so.
    let bulk = server.cli_stdin(
        &["bulk-check", "--consistency", &format!("at-least:{zookie}")],
        Some("document:plan#view@user:bob\nbroken\ndocument:readme#view@user:bob\n"),
    );
    assert_eq!(bulk.code, 1, "{bulk:?}");
    let lines: Vec<&str> = bulk.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{bulk:?}");
    assert_eq!(lines[0], "ALLOWED");
    assert!(lines[1].starts_with("ERROR INVALID_ARGUMENT: "), "{bulk:?}");
    assert_eq!(lines[2], "DENIED");

    // Nothing listening: UNAVAILABLE, exit 1.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let down = run(&["schema", "read", "--endpoint", &closed], None, &[]);
    assert_eq!(down.code, 1, "{down:?}");
    assert!(
        down.stderr
            .starts_with(&format!("error: UNAVAILABLE: cannot connect to {closed}: ")),
        "{down:?}"
    );
}

#[test]
fn import_export_and_watch() {
    let server = Server::start();
    server.cli(&["schema", "write", SCHEMA_FILE]).ok();
    let start = server.cli(&["rel", "write", "group:eng#member@user:zoe"]);
    let start = start.last_line().to_string();

    // Watch from the first write's zookie, in the background.
    let mut watcher = Guard(
        Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args([
                "watch",
                "--json",
                "--from",
                &start,
                "--endpoint",
                &server.endpoint,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = watcher.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });

    // Import the example's relationships (a validation file) and check them.
    let imported = server.cli(&["rel", "import", "--json", SCHEMA_FILE]).json();
    let count = imported["imported"].as_u64().unwrap();
    assert!(count > 20, "{imported}");
    let fresh = format!("at-least:{}", imported["zookie"].as_str().unwrap());
    let r = server.cli(&[
        "check",
        "document:rfc_storage#view@user:carol",
        "--consistency",
        &fresh,
    ]);
    assert_eq!(r.ok().trim(), "ALLOWED");
    let r = server.cli(&[
        "check",
        "document:rfc_storage#view@user:bob",
        "--consistency",
        &fresh,
    ]);
    assert_eq!(r.ok().trim(), "DENIED");

    // Export prints every relationship in the text form; it imports back.
    let export = server.cli(&["rel", "export", "--consistency", &fresh]);
    let exported = export.lines();
    assert_eq!(exported.len() as u64, count + 1, "{export:?}");
    assert!(exported.contains(&"group:eng#member@user:zoe"));
    let tenant = server.cli(&["tenant", "create", "copy"]);
    tenant.ok();
    let listed = server.cli(&["tenant", "list"]);
    assert!(listed.lines().contains(&"copy"), "{listed:?}");
    let env = [
        ("VERDICT_ENDPOINT", server.endpoint.as_str()),
        ("VERDICT_TENANT", "copy"),
    ];
    run(&["schema", "write", SCHEMA_FILE], None, &env).ok();
    let reimported = run(&["rel", "import", "-"], Some(&export.stdout), &env);
    let z = reimported.last_line().to_string();
    let copy = run(
        &["rel", "export", "--consistency", &format!("at-least:{z}")],
        None,
        &env,
    );
    assert_eq!(sorted(copy.lines()), sorted(exported.clone()));
    // A bad line aborts the whole import.
    let partial = run(
        &["rel", "import", "-"],
        Some("document:new1#viewer@user:amy\nbroken line\n"),
        &env,
    );
    assert_eq!(partial.code, 1, "{partial:?}");
    assert!(partial.stderr.contains("<stdin>:2"), "{partial:?}");
    let none = run(
        &["rel", "read", "document:new1", "--consistency", "full"],
        None,
        &env,
    );
    assert!(none.ok().is_empty(), "{none:?}");
    let gone = server.cli(&["tenant", "delete", "copy", "--confirm", "copy"]);
    gone.ok();

    // The watcher saw the import's changes, each a JSON line.
    let last = "document:press_release#banned@user:mallory";
    let mut tuples = Vec::new();
    while !tuples.iter().any(|t| t == last) {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("watch stalled after {tuples:?}"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(v["zookie"].as_str().is_some_and(|z| !z.is_empty()), "{v}");
        if v["checkpoint"] == true {
            continue;
        }
        assert!(
            v["operation"] == "TOUCH" || v["operation"] == "CREATE",
            "{v}"
        );
        assert!(v["event_id"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        tuples.push(v["tuple"].as_str().unwrap().to_string());
    }
    assert!(
        tuples
            .iter()
            .any(|t| t == "document:rfc_storage#banned@user:bob"),
        "{tuples:?}"
    );
    assert!(
        !tuples.iter().any(|t| t == "group:eng#member@user:zoe"),
        "the change at --from itself is not repeated: {tuples:?}"
    );
    drop(watcher);
}

#[test]
fn watch_text_lines_and_tokens() {
    let server = Server::start();
    server.cli(&["schema", "write", SCHEMA_FILE]).ok();
    // A token is sent as a bearer header; --insecure-no-auth ignores it.
    server.cli(&["schema", "read", "--token", "k3y"]).ok();

    let mut watcher = Guard(
        Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["watch", "--endpoint", &server.endpoint])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = watcher.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    // Watch starts "from now": keep writing until the watcher reports one.
    let mut seen = None;
    for i in 0..50 {
        let tuple = format!("group:eng#member@user:u{i}");
        server.cli(&["rel", "write", &tuple]).ok();
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = Some(line);
            break;
        }
    }
    let line = seen.expect("watch printed a change");
    assert!(
        line.starts_with("TOUCH group:eng#member@user:u") || line.starts_with("CREATE group:eng"),
        "{line}"
    );
    let delete = server.cli(&["rel", "delete", "group:eng#member@user:u0"]);
    delete.ok();
    let mut next = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        let done = line == "DELETE group:eng#member@user:u0";
        next.push(line);
        if done {
            break;
        }
    }
    assert_eq!(
        next.last().map(String::as_str),
        Some("DELETE group:eng#member@user:u0"),
        "{next:?}"
    );
    drop(watcher);
}
