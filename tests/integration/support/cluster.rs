//! Real `verdict serve` processes forming a Raft cluster on free loopback
//! ports: three voters from `--initial-cluster`, or nodes started one by
//! one. Each node is killed on drop; its stderr goes to `<data dir>.log`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use verdict::api::pb;

/// The cluster key every node is started with.
pub const CLUSTER_KEY: &str = "test-cluster-key";

/// Ports handed out below Linux's ephemeral range (32768–60999 by
/// default): a port the kernel picked for `bind(:0)` and that we released
/// can be taken by any outgoing connection before the node binds it (CI
/// once lost a three-node cluster that way). Below the range only a
/// listener asking for that port by number can take it, and the counter
/// keeps this process from handing one out twice.
const PORT_BASE: u16 = 20_000;
const PORT_SPAN: u16 = 12_000;

/// A port free on 127.0.0.1 right now, outside the ephemeral range and
/// never handed out before by this process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Start where the process id says, so two test processes at once are
    // unlikely to walk the same ports.
    let start = (std::process::id() % u32::from(PORT_SPAN)) as u16;
    for _ in 0..PORT_SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % PORT_SPAN;
        let port = PORT_BASE + (start + step) % PORT_SPAN;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORT_BASE}..{}", PORT_BASE + PORT_SPAN)
}

/// The `verdict` binary nodes run: this build's, or `VERDICT_NODE_BIN`
/// (a build of another commit: a rolling upgrade, or checking that a
/// regression test fails on the code before the fix).
pub fn binary() -> PathBuf {
    std::env::var_os("VERDICT_NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_verdict")))
}

/// One node; killed on drop so a failing test never leaks it.
pub struct Node {
    /// Its Raft node id.
    pub id: u64,
    /// Its data directory.
    pub dir: PathBuf,
    /// gRPC port.
    pub grpc: u16,
    /// HTTP (metrics, health) port.
    pub http: u16,
    /// Internal Raft port.
    pub raft: u16,
    /// Extra environment variables of the process.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    /// Node `id` with fresh ports and its data in `parent/n<id>`, not
    /// started.
    pub fn new(id: u64, parent: &Path) -> Node {
        Node {
            id,
            dir: parent.join(format!("n{id}")),
            grpc: free_port(),
            http: free_port(),
            raft: free_port(),
            env: Vec::new(),
            child: None,
        }
    }

    /// `http://127.0.0.1:<grpc>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    /// `127.0.0.1:<raft>`.
    pub fn raft_addr(&self) -> String {
        format!("127.0.0.1:{}", self.raft)
    }

    /// Starts `verdict serve` as this node (its id and addresses, the
    /// cluster key, `--max-wait 5s --max-staleness 1s`) with `args` added
    /// (auth, membership, tuning), and waits up to 30 s for `ready`.
    pub fn start(&mut self, args: &[String]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("log file");
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--grpc-addr", &format!("127.0.0.1:{}", self.grpc)])
            .args(["--http-addr", &format!("127.0.0.1:{}", self.http)])
            .args(["--node-id", &self.id.to_string()])
            .args(["--raft-addr", &self.raft_addr()])
            .args(["--cluster-key", CLUSTER_KEY])
            .args(["--max-wait", "5s", "--max-staleness", "1s"])
            .args(args)
            .env_remove("VERDICT_ADMIN_KEY")
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("verdict serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => break,
                Ok(_) => {}
                Err(e) => {
                    let log =
                        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(20).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    panic!(
                        "node {} did not get ready: {e}; its log ends:\n{}",
                        self.id,
                        tail.join("\n")
                    )
                }
            }
        }
        self.child = Some(child);
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the running process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("node is running");
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} node {}", self.id);
    }

    /// Whether the process is running (started, not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A stopped process still dies of SIGKILL; SIGCONT first anyway so
        // a failed test never leaves one paused.
        if self.child.is_some() {
            self.signal("CONT");
        }
        self.kill9();
    }
}

/// Three nodes started together through `--initial-cluster`.
pub struct Cluster {
    /// Nodes 1, 2 and 3.
    pub nodes: Vec<Node>,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts nodes 1–3, each with `--initial-cluster` and `args`.
    pub fn start(args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes: Vec<Node> = (1..=3).map(|id| Node::new(id, dir.path())).collect();
        let initial = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.raft_addr()))
            .collect::<Vec<_>>()
            .join(",");
        let mut all = vec!["--initial-cluster".to_string(), initial];
        all.extend(args.iter().map(|a| a.to_string()));
        for n in &mut nodes {
            n.start(&all);
        }
        settle(&nodes[0]);
        Cluster {
            nodes,
            args: all,
            dir,
        }
    }

    /// The directory holding every node's data (room for more nodes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Node `id` (1–3).
    pub fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts node `id` again with the flags it first had.
    pub fn restart(&mut self, id: u64) {
        let args = self.args.clone();
        self.node(id).start(&args);
    }
}

/// `verdict cluster status --json` through node `via`.
pub fn status(via: &Node) -> Option<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["cluster", "status", "--json", "--raft-endpoint"])
        .arg(via.raft_addr())
        .args(["--cluster-key", CLUSTER_KEY])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits (bounded, 30 s) until the cluster seen through `via` has settled:
/// one leader, every member reachable and at the same applied index, and
/// the term unchanged for longer than an election timeout (1.5 s). The
/// last node to start can otherwise campaign once before the leader
/// reaches it, costing the first leader its term under a test's first
/// write.
fn settle(via: &Node) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut since: Option<(u64, Instant)> = None;
    loop {
        let settled_term = status(via).and_then(|s| {
            let members = s["members"].as_array().cloned().unwrap_or_default();
            let leaders = members.iter().filter(|m| m["state"] == "Leader").count();
            let applied: Vec<Option<u64>> = members
                .iter()
                .map(|m| m["applied_index"].as_u64())
                .collect();
            let settled = members.len() == 3
                && leaders == 1
                && members.iter().all(|m| m["reachable"] == true)
                && applied.iter().all(|a| a.is_some() && *a == applied[0]);
            settled.then(|| s["term"].as_u64()).flatten()
        });
        since = match (settled_term, since) {
            (Some(t), Some((held, from))) if t == held => {
                if from.elapsed() > Duration::from_millis(1_600) {
                    return;
                }
                Some((held, from))
            }
            (Some(t), _) => Some((t, Instant::now())),
            (None, _) => None,
        };
        assert!(
            Instant::now() < deadline,
            "the cluster did not settle within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) for a leader other than `not`, listed as reachable in
/// the status seen through `via`.
pub fn wait_leader(via: &Node, not: Option<u64>, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = status(via) {
            if let Some(l) = s["leader_id"].as_u64() {
                if Some(l) != not {
                    let leader_reachable = s["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["id"] == l && m["reachable"] == true));
                    if leader_reachable {
                        return l;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "no new leader within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `at_least_as_fresh` as `z`.
pub fn at_least(z: &pb::Zookie) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(z.clone())),
    })
}

/// The `/metrics` text of the node serving HTTP on loopback `port` (a
/// bare HTTP/1.0 GET, no client dependency).
pub async fn node_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("http connect");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("response");
    body
}

/// The value of the unlabelled metric `name` of the node serving HTTP on
/// `port` (a histogram's `_sum` is written as a float, e.g. `41.0`).
pub async fn node_metric(port: u16, name: &str) -> u64 {
    let body = node_metrics(port).await;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
}
