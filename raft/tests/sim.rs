//! Deterministic-fault cluster simulation: three openraft nodes in one
//! process (real RocksDB log and tuple stores in temp dirs) over an
//! in-memory network that drops, delays and reorders messages from a
//! seeded RNG, with partitions. Checks: every acknowledged write is present
//! on every node after healing, all nodes hold identical state, applied
//! revisions only move forward, and a cut-off minority neither commits
//! writes nor confirms linearizable reads.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, SnapshotPolicy};
use verdict_raft::{
    Command, LogStore, MemTenantSet, Node, NodeId, Raft, Request, Response, StateMachine,
    TenantSet, TypeConfig,
};
use verdict_storage::{
    RelationStore, RocksOptions, RocksStore, Tenant, TupleFilter, TupleReaderExt, WriteBatch,
};

/// A xorshift64* generator: tiny, seeded, reproducible.
#[derive(Debug)]
struct Rng(AtomicU64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(AtomicU64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }
    fn next(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The in-memory network: who is reachable, and the fault dice.
#[derive(Default)]
struct Router {
    nodes: RwLock<HashMap<NodeId, Raft>>,
    /// Nodes cut off from everyone.
    isolated: RwLock<BTreeSet<NodeId>>,
    rng: Option<Rng>,
    drop_percent: u64,
    max_delay_ms: u64,
}

impl Router {
    async fn deliver(&self, from: NodeId, to: NodeId) -> Result<Raft, Unreachable> {
        let unreachable = || Unreachable::new(&std::io::Error::other(format!("{from}->{to} cut")));
        let cut = {
            let iso = self.isolated.read().unwrap();
            iso.contains(&from) || iso.contains(&to)
        };
        if cut {
            return Err(unreachable());
        }
        if let Some(rng) = &self.rng {
            if rng.below(100) < self.drop_percent {
                return Err(unreachable());
            }
            let delay = rng.below(self.max_delay_ms + 1);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.nodes
            .read()
            .unwrap()
            .get(&to)
            .cloned()
            .ok_or_else(unreachable)
    }
}

#[derive(Clone)]
struct Net {
    from: NodeId,
    router: Arc<Router>,
}

struct Conn {
    from: NodeId,
    to: NodeId,
    router: Arc<Router>,
}

impl RaftNetworkFactory<TypeConfig> for Net {
    type Network = Conn;
    async fn new_client(&mut self, target: NodeId, _node: &Node) -> Conn {
        Conn {
            from: self.from,
            to: target,
            router: self.router.clone(),
        }
    }
}

fn remote<E: std::error::Error>(
    e: RaftError<NodeId, E>,
) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(e.to_string())))
}

impl RaftNetwork<TypeConfig> for Conn {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(10)))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _o: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let raft = self.router.deliver(self.from, self.to).await?;
        let r = raft.append_entries(rpc).await.map_err(remote)?;
        // The reply can be lost too.
        self.router.deliver(self.to, self.from).await?;
        Ok(r)
    }
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _o: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let raft = self.router.deliver(self.from, self.to).await?;
        let r = raft.install_snapshot(rpc).await.map_err(remote)?;
        self.router.deliver(self.to, self.from).await?;
        Ok(r)
    }
    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _o: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let raft = self.router.deliver(self.from, self.to).await?;
        let r = raft.vote(rpc).await.map_err(remote)?;
        self.router.deliver(self.to, self.from).await?;
        Ok(r)
    }
}

struct SimNode {
    raft: Raft,
    store: Arc<RocksStore>,
    /// Every applied revision this node announced, in order.
    seen: Arc<Mutex<Vec<u64>>>,
}

struct Sim {
    nodes: BTreeMap<NodeId, SimNode>,
    router: Arc<Router>,
    _dir: tempfile::TempDir,
}

impl Sim {
    async fn start(router: Router, snapshot_logs: u64) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let router = Arc::new(router);
        let config = Arc::new(
            Config {
                heartbeat_interval: 50,
                election_timeout_min: 200,
                election_timeout_max: 400,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_logs),
                max_in_snapshot_log_to_keep: 2,
                ..Config::default()
            }
            .validate()
            .unwrap(),
        );
        let mut nodes = BTreeMap::new();
        for id in 1..=3u64 {
            let base = dir.path().join(format!("n{id}"));
            let store = Arc::new(
                RocksStore::open(
                    base.join("store"),
                    RocksOptions {
                        sync_writes: false,
                        block_cache_bytes: 1 << 20,
                        write_buffer_bytes: 1 << 20,
                        background_jobs: 1,
                    },
                )
                .unwrap(),
            );
            let tenants = Arc::new(MemTenantSet::default());
            tenants.insert("default").unwrap();
            let log = LogStore::open(base.join("log"), false).unwrap();
            let sm = StateMachine::open(store.clone(), tenants, base.join("snap")).unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let mut rx = sm.subscribe();
            let record = seen.clone();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let v = rx.borrow_and_update().0;
                    record.lock().unwrap().push(v);
                }
            });
            let net = Net {
                from: id,
                router: router.clone(),
            };
            let raft = Raft::new(id, config.clone(), net, log, sm).await.unwrap();
            router.nodes.write().unwrap().insert(id, raft.clone());
            nodes.insert(id, SimNode { raft, store, seen });
        }
        let members: BTreeMap<NodeId, BasicNode> = (1..=3)
            .map(|id| (id, BasicNode::new(format!("n{id}"))))
            .collect();
        nodes[&1].raft.initialize(members).await.unwrap();
        Sim {
            nodes,
            router,
            _dir: dir,
        }
    }

    async fn leader(&self, excluding: &BTreeSet<NodeId>) -> NodeId {
        for _ in 0..400 {
            for (id, n) in &self.nodes {
                if excluding.contains(id) {
                    continue;
                }
                let m = n.raft.metrics().borrow().clone();
                if m.current_leader == Some(*id) {
                    return *id;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no leader elected");
    }

    /// Proposes through `via`, following one redirect; `None` if not acked in time.
    async fn write(&self, via: NodeId, tuple: &str) -> Option<u64> {
        let req = Request::now(Command::Write {
            tenant: Tenant::default_tenant(),
            batch: WriteBatch::new().touch(verdict_storage::Tuple::parse(tuple).unwrap()),
            expected_schema_since: None,
            unchanged_since: None,
        });
        let attempt = async {
            match self.nodes[&via].raft.client_write(req.clone()).await {
                Ok(r) => Some(r),
                Err(e) => {
                    let to = e.forward_to_leader::<Node>().and_then(|f| f.leader_id)?;
                    if self.router.isolated.read().unwrap().contains(&via) {
                        return None;
                    }
                    self.nodes[&to].raft.client_write(req).await.ok()
                }
            }
        };
        let r = tokio::time::timeout(Duration::from_millis(800), attempt)
            .await
            .ok()??;
        match r.data {
            Response::Applied(o) => Some(o.revision.0),
            other => panic!("unexpected response {other:?}"),
        }
    }

    fn tuples(&self, id: NodeId) -> Vec<String> {
        let store = &self.nodes[&id].store;
        let snap = store
            .snapshot(&Tenant::default_tenant(), store.applied_revision())
            .unwrap();
        let mut out = Vec::new();
        snap.for_each_tuple(&TupleFilter::default(), 100, |t| {
            out.push(t.to_string());
            Ok(())
        })
        .unwrap();
        out
    }

    async fn converge(&self, index: u64) {
        for n in self.nodes.values() {
            n.raft
                .wait(Some(Duration::from_secs(20)))
                .applied_index_at_least(Some(index), "converge")
                .await
                .expect("node converges after heal");
        }
    }

    fn check_invariants(&self, acked: &[(String, u64)]) {
        let reference = self.tuples(1);
        for id in [2, 3] {
            assert_eq!(self.tuples(id), reference, "node {id} differs from node 1");
        }
        let set: BTreeSet<&String> = reference.iter().collect();
        for (t, _) in acked {
            assert!(set.contains(t), "acknowledged {t} missing");
        }
        for (id, n) in &self.nodes {
            let seen = n.seen.lock().unwrap();
            assert!(
                seen.windows(2).all(|w| w[0] <= w[1]),
                "node {id} applied revision went backwards: {seen:?}"
            );
        }
    }

    async fn shutdown(self) {
        for n in self.nodes.values() {
            let _ = n.raft.shutdown().await;
        }
    }
}

async fn run_seed(seed: u64) {
    let router = Router {
        rng: Some(Rng::new(seed)),
        drop_percent: 10,
        max_delay_ms: 15,
        ..Router::default()
    };
    let sim = Sim::start(router, 15).await;
    sim.leader(&BTreeSet::new()).await;
    let rng = Rng::new(seed ^ 0xABCD);
    let mut acked = Vec::new();
    let mut max_index = 0;
    for i in 0..40 {
        if i == 15 {
            // Cut one node off for a while.
            let victim = 1 + rng.below(3);
            sim.router.isolated.write().unwrap().insert(victim);
        }
        if i == 30 {
            sim.router.isolated.write().unwrap().clear();
        }
        let via = 1 + rng.below(3);
        let tuple = format!("doc:s{seed}i{i}#viewer@user:u{}", rng.below(5));
        let t0 = std::time::Instant::now();
        let written = sim.write(via, &tuple).await;
        if std::env::var("SIM_DEBUG").is_ok() && t0.elapsed() > Duration::from_millis(300) {
            println!(
                "seed {seed} write {i} via {via}: {:?} -> {written:?}",
                t0.elapsed()
            );
        }
        match written {
            Some(index) => {
                max_index = max_index.max(index);
                acked.push((tuple, index));
            }
            None => {
                if std::env::var("SIM_DEBUG").is_ok() {
                    println!("seed {seed} write {i} via {via} not acked");
                }
                tokio::time::sleep(Duration::from_millis(50)).await
            }
        }
    }
    assert!(
        acked.len() >= 10,
        "seed {seed}: only {} writes acked",
        acked.len()
    );
    let t = std::time::Instant::now();
    sim.converge(max_index).await;
    if t.elapsed() > Duration::from_secs(2) {
        println!("seed {seed}: converging took {:?}", t.elapsed());
    }
    // Let the last heartbeats settle any trailing blank entries.
    let last = sim
        .nodes
        .values()
        .map(|n| {
            n.raft
                .metrics()
                .borrow()
                .last_applied
                .map_or(0, |l| l.index)
        })
        .max()
        .unwrap_or(0);
    sim.converge(last).await;
    sim.check_invariants(&acked);
    let t = std::time::Instant::now();
    sim.shutdown().await;
    if t.elapsed() > Duration::from_secs(2) {
        println!("seed {seed}: shutdown took {:?}", t.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_seeds_with_drops_delays_and_a_partition() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in 1..=seeds {
        let started = std::time::Instant::now();
        run_seed(seed).await;
        println!("seed {seed}: {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_minority_refuses_writes_and_linearizable_reads() {
    let sim = Sim::start(Router::default(), 1000).await;
    let leader = sim.leader(&BTreeSet::new()).await;
    let before = sim
        .write(leader, "doc:a#viewer@user:before")
        .await
        .expect("healthy write");

    // Isolate the leader: it is now the minority.
    sim.router.isolated.write().unwrap().insert(leader);
    let minority = &sim.nodes[&leader].raft;
    let write = tokio::time::timeout(
        Duration::from_secs(2),
        minority.client_write(Request::now(Command::Write {
            tenant: Tenant::default_tenant(),
            batch: WriteBatch::new()
                .touch(verdict_storage::Tuple::parse("doc:a#viewer@user:minority").unwrap()),
            expected_schema_since: None,
            unchanged_since: None,
        })),
    )
    .await;
    assert!(
        !matches!(write, Ok(Ok(_))),
        "the minority must not acknowledge a write"
    );
    let read = tokio::time::timeout(Duration::from_secs(2), minority.ensure_linearizable()).await;
    assert!(
        !matches!(read, Ok(Ok(_))),
        "the minority must not confirm a linearizable read"
    );

    // The majority elects a new leader and keeps writing.
    let new_leader = sim.leader(&BTreeSet::from([leader])).await;
    assert_ne!(new_leader, leader);
    let after = sim
        .write(new_leader, "doc:a#viewer@user:majority")
        .await
        .expect("majority write");
    assert!(after > before);
    let read = sim.nodes[&new_leader].raft.ensure_linearizable().await;
    assert!(
        read.is_ok(),
        "the majority serves linearizable reads: {read:?}"
    );

    // Heal: the old leader converges and its uncommitted write is gone.
    sim.router.isolated.write().unwrap().clear();
    sim.converge(after).await;
    let acked = vec![
        ("doc:a#viewer@user:before".to_string(), before),
        ("doc:a#viewer@user:majority".to_string(), after),
    ];
    sim.check_invariants(&acked);
    assert!(
        !sim.tuples(leader).iter().any(|t| t.contains("minority")),
        "an unacknowledged minority write survived the heal"
    );
    sim.shutdown().await;
}
