//! The nemesis harness: real `verdict serve` processes on loopback whose
//! Raft links each pass through a fault-injecting proxy (`proxy`), the
//! faults it injects (`faults`), the operation history a workload records
//! (`history`) and the checker that reads it (`checker`).

pub mod checker;
pub mod faults;
pub mod history;
pub mod proxy;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::cluster::{status, Node};

/// A small seeded generator (SplitMix64): the fault schedule and each
/// client's choices follow from `VERDICT_NEMESIS_SEED`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

/// A stand-in naming `n`'s Raft port, to ask its status from a blocking
/// task.
fn probe(n: &Node) -> Node {
    let mut p = Node::new(n.id, std::path::Path::new("/nonexistent"));
    p.raft = n.raft;
    p
}

/// `n` nodes started together, every Raft link `i → j` through its own
/// proxy (node i reaches node j's Raft port only through `links[(i, j)]`).
pub struct NemesisCluster {
    /// Nodes 1..=n.
    pub nodes: Vec<Node>,
    /// The proxy of each directed link (from, to).
    pub links: BTreeMap<(u64, u64), proxy::Link>,
    /// Nodes currently paused (SIGSTOP).
    pub paused: Vec<u64>,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl NemesisCluster {
    /// Starts nodes 1..=n with `--initial-cluster` and `args`, each with
    /// routes through its proxies, and waits until they settle.
    pub async fn start(n: u64, args: &[&str]) -> NemesisCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes: Vec<Node> = (1..=n).map(|id| Node::new(id, dir.path())).collect();
        let mut links = BTreeMap::new();
        for from in 1..=n {
            for to in 1..=n {
                if from != to {
                    let target = nodes[(to - 1) as usize].raft_addr();
                    let taken: Vec<u16> = nodes
                        .iter()
                        .flat_map(|n| [n.grpc, n.http, n.raft])
                        .collect();
                    links.insert((from, to), proxy::Link::start(target, &taken).await);
                }
            }
        }
        let addrs: Vec<String> = nodes.iter().map(Node::raft_addr).collect();
        for node in &mut nodes {
            let routes = (1..=n)
                .filter(|to| *to != node.id)
                .map(|to| {
                    format!(
                        "{}={}",
                        addrs[(to - 1) as usize],
                        links[&(node.id, to)].addr
                    )
                })
                .collect::<Vec<_>>();
            node.env = vec![("VERDICT_TEST_PEER_ROUTES".into(), routes.join(","))];
        }
        let initial = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.raft_addr()))
            .collect::<Vec<_>>()
            .join(",");
        let mut all = vec!["--initial-cluster".to_string(), initial];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut started = Vec::new();
        for mut node in nodes {
            let a = all.clone();
            node = tokio::task::spawn_blocking(move || {
                node.start(&a);
                node
            })
            .await
            .expect("start");
            started.push(node);
        }
        let cluster = NemesisCluster {
            nodes: started,
            links,
            paused: Vec::new(),
            args: all,
            dir,
        };
        cluster.settle(Duration::from_secs(60)).await;
        cluster
    }

    /// The directory holding the nodes' data and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    /// gRPC endpoints by node id.
    pub fn endpoints(&self) -> Vec<(u64, String)> {
        self.nodes.iter().map(|n| (n.id, n.endpoint())).collect()
    }

    /// A running, unpaused node's status (`cluster status --json`).
    pub async fn status(&self) -> Option<serde_json::Value> {
        for n in &self.nodes {
            if n.is_running() && !self.paused.contains(&n.id) {
                let probe = probe(n);
                let s = tokio::task::spawn_blocking(move || status(&probe))
                    .await
                    .ok()
                    .flatten();
                if s.is_some() {
                    return s;
                }
            }
        }
        None
    }

    /// The status as the leader itself answers it (a node removed from
    /// the membership, or cut off, may hold an old view): of the running
    /// nodes that say they lead, the one with the highest term.
    pub async fn leader_status(&self) -> Option<serde_json::Value> {
        let mut best: Option<serde_json::Value> = None;
        for n in &self.nodes {
            if n.is_running() && !self.paused.contains(&n.id) {
                let probe = probe(n);
                let s = tokio::task::spawn_blocking(move || status(&probe))
                    .await
                    .ok()
                    .flatten();
                if let Some(s) = s {
                    let leads =
                        s["leader_id"].as_u64().is_some() && s["leader_id"] == s["queried_node"];
                    let newer = best
                        .as_ref()
                        .is_none_or(|b| s["term"].as_u64() > b["term"].as_u64());
                    if leads && newer {
                        best = Some(s);
                    }
                }
            }
        }
        best
    }

    /// The leader, as the leader itself says.
    pub async fn leader(&self) -> Option<u64> {
        self.leader_status()
            .await
            .and_then(|s| s["leader_id"].as_u64())
    }

    /// The highest term any running node reports.
    pub async fn max_term(&self) -> u64 {
        let mut max = 0;
        for n in &self.nodes {
            if n.is_running() && !self.paused.contains(&n.id) {
                let probe = probe(n);
                if let Some(s) = tokio::task::spawn_blocking(move || status(&probe))
                    .await
                    .ok()
                    .flatten()
                {
                    max = max.max(s["term"].as_u64().unwrap_or(0));
                }
            }
        }
        max
    }

    /// Cuts (or heals) every link between a node of `a` and one of `b`,
    /// both ways.
    pub fn cut_between(&self, a: &[u64], b: &[u64], cut: bool) {
        for x in a {
            for y in b {
                if x != y {
                    self.links[&(*x, *y)].set_cut(cut);
                    self.links[&(*y, *x)].set_cut(cut);
                }
            }
        }
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        for l in self.links.values() {
            l.set_cut(false);
        }
    }

    /// SIGSTOP node `id`.
    pub fn pause(&mut self, id: u64) {
        self.nodes[(id - 1) as usize].signal("STOP");
        self.paused.push(id);
    }

    /// SIGCONT every paused node.
    pub fn resume_all(&mut self) {
        for id in std::mem::take(&mut self.paused) {
            self.nodes[(id - 1) as usize].signal("CONT");
        }
    }

    /// kill -9 node `id`.
    pub fn kill(&mut self, id: u64) {
        self.paused.retain(|p| *p != id);
        self.nodes[(id - 1) as usize].kill9();
    }

    /// Restarts every killed node on its data directory.
    pub async fn restart_killed(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() {
                let args = self.args.clone();
                let placeholder = Node::new(0, std::path::Path::new("/nonexistent"));
                let mut node = std::mem::replace(&mut self.nodes[i], placeholder);
                node = tokio::task::spawn_blocking(move || {
                    node.start(&args);
                    node
                })
                .await
                .expect("restart");
                self.nodes[i] = node;
            }
        }
    }

    /// Waits (bounded) until one leader is known, every member is
    /// reachable at the same applied index, and the term holds for 2 s.
    pub async fn settle(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut since: Option<(u64, u64, Instant)> = None;
        let n = self.nodes.len();
        while Instant::now() < deadline {
            let settled = self.leader_status().await.and_then(|s| {
                let members = s["members"].as_array().cloned().unwrap_or_default();
                let leaders = members.iter().filter(|m| m["state"] == "Leader").count();
                let applied: Vec<Option<u64>> = members
                    .iter()
                    .map(|m| m["applied_index"].as_u64())
                    .collect();
                let ok = members.len() == n
                    && leaders == 1
                    && members.iter().all(|m| m["reachable"] == true)
                    && applied.iter().all(|a| a.is_some() && *a == applied[0]);
                ok.then(|| (s["term"].as_u64().unwrap_or(0), applied[0].unwrap_or(0)))
            });
            since = match (settled, since) {
                (Some((t, a)), Some((held, at, from))) if t == held && a == at => {
                    if from.elapsed() > Duration::from_secs(2) {
                        return true;
                    }
                    Some((held, at, from))
                }
                (Some((t, a)), _) => Some((t, a, Instant::now())),
                (None, _) => None,
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// `verdict cluster ARGS --json` through a running, unpaused node's
    /// Raft port; whether it succeeded.
    pub async fn cluster_cli(&self, args: &[&str]) -> bool {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        for n in &self.nodes {
            if n.is_running() && !self.paused.contains(&n.id) {
                let raft = n.raft_addr();
                let args = args.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
                        .arg("cluster")
                        .args(&args)
                        .args(["--json", "--raft-endpoint", &raft])
                        .args(["--cluster-key", super::cluster::CLUSTER_KEY])
                        .output()
                        .is_ok_and(|o| o.status.success())
                })
                .await
                .unwrap_or(false);
                if ok {
                    return true;
                }
            }
        }
        false
    }

    /// Voter ids as a running node sees them.
    pub async fn voters(&self) -> Vec<u64> {
        self.leader_status()
            .await
            .and_then(|s| {
                s["members"].as_array().map(|m| {
                    m.iter()
                        .filter(|m| m["role"] == "voter")
                        .filter_map(|m| m["id"].as_u64())
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// Makes every node a voter again (add-learner, promote), retrying
    /// for up to `within`.
    pub async fn restore_membership(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let voters = self.voters().await;
            let missing: Vec<u64> = self
                .ids()
                .into_iter()
                .filter(|i| !voters.contains(i))
                .collect();
            if !voters.is_empty() && missing.is_empty() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            for id in missing {
                let addr = self.node(id).raft_addr();
                let id = id.to_string();
                let _ = self
                    .cluster_cli(&["add-learner", "--id", &id, "--addr", &addr])
                    .await;
                let _ = self.cluster_cli(&["promote", "--id", &id]).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Lines of every node's log mentioning a panic.
    pub fn panics(&self) -> Vec<String> {
        let mut found = Vec::new();
        for n in &self.nodes {
            let text = std::fs::read_to_string(n.dir.with_extension("log")).unwrap_or_default();
            found.extend(
                text.lines()
                    .filter(|l| l.contains("panicked"))
                    .map(|l| format!("node {}: {l}", n.id)),
            );
        }
        found
    }
}
