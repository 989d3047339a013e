//! The nemesis: a seeded schedule of faults over a real cluster (3 nodes,
//! or `VERDICT_NEMESIS_NODES`) while concurrent clients write and read
//! through random nodes; a checker then reads the whole history.
//!
//! Faults (support/nemesis/faults.rs): partitions of Raft traffic through
//! a proxy per link (isolated leader, isolated follower, majority/minority,
//! bridge), kill -9 with a restart on the same data directory, SIGSTOP
//! pauses, membership changes (a follower removed, sometimes with another
//! node killed meanwhile, then added back and promoted). Workload: CREATE/TOUCH/DELETE on per-client keys; after each
//! acknowledged write a check on another node at `at_least_as_fresh` of
//! its zookie or `fully_consistent` (read-your-writes); minimize_latency
//! checks recording their revision; new-enemy pairs (revoke on one node,
//! add content on another, check at the second zookie on a third: must
//! deny). Checked: no minimize_latency answer older than `--max-staleness`
//! and no backwards one per client and node; after healing, no
//! acknowledged write lost, no acknowledged delete resurrected, every
//! replica identical, no panic in any log.
//!
//! `VERDICT_NEMESIS_SEED` (default 1), `VERDICT_NEMESIS_CYCLES` (default
//! 10, about two minutes), `VERDICT_NEMESIS_NODES` (3 or 5); long runs:
//! `scripts/nemesis.sh --cycles 1000 --seed N`. The fault schedule follows
//! from the seed; timings on a loaded machine do not.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::nemesis::checker::{self, Report};
use support::nemesis::faults::{self, Tally};
use support::nemesis::history::{History, Outcome, Read, Write, WriteKind};
use support::nemesis::{NemesisCluster, Rng};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use verdict::api::pb;
use verdict::api::pb::permission_service_client::PermissionServiceClient;
use verdict::api::pb::relationship_service_client::RelationshipServiceClient;
use verdict::api::pb::schema_service_client::SchemaServiceClient;

const SCHEMA: &str = "definition user {}
definition doc {
    relation viewer: user
    permission view = viewer
}";

/// `--max-staleness` the nodes run with (support/cluster.rs).
const BOUND: Duration = Duration::from_secs(1);
/// Scheduling slack on a loaded machine.
const SLACK: Duration = Duration::from_millis(100);
/// Keys per client.
const KEYS: u64 = 12;
const CLIENTS: u64 = 6;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn consistency(r: pb::consistency::Requirement) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(r),
    })
}

/// The shared context of the clients.
struct Ctx {
    channels: Vec<(u64, Channel)>,
    history: History,
    codec: verdict::zookie::ZookieCodec,
    stop: AtomicBool,
}

impl Ctx {
    fn revision(&self, z: Option<&pb::Zookie>) -> u64 {
        z.and_then(|z| self.codec.decode(&z.token).ok())
            .map_or(0, |r| r.0)
    }
}

/// Definitely not applied: the request was refused for what it says.
fn definite(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::AlreadyExists
            | tonic::Code::FailedPrecondition
            | tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
    )
}

/// The connection could not be opened (the node is down): the request
/// never left the client.
fn never_sent(s: &tonic::Status) -> bool {
    let text = format!("{s:?}");
    s.code() == tonic::Code::Unavailable
        && (text.contains("ConnectError") || text.contains("Connection refused"))
}

async fn write(
    ctx: &Ctx,
    client: u64,
    node: usize,
    key: &str,
    kind: WriteKind,
) -> (Outcome, Option<pb::Zookie>) {
    let (id, channel) = ctx.channels[node].clone();
    let t = verdict_storage::Tuple::parse(key).expect("tuple");
    let operation = match kind {
        WriteKind::Create => pb::relationship_update::Operation::Create,
        WriteKind::Touch => pb::relationship_update::Operation::Touch,
        WriteKind::Delete => pb::relationship_update::Operation::Delete,
    };
    let mut request = tonic::Request::new(pb::WriteRelationshipsRequest {
        tenant: String::new(),
        updates: vec![pb::RelationshipUpdate {
            operation: operation as i32,
            relationship: Some(verdict::api::convert::tuple_to_pb(&t)),
        }],
        preconditions: Vec::new(),
    });
    request.set_timeout(Duration::from_secs(8));
    let invoked = Instant::now();
    let reply = RelationshipServiceClient::new(channel)
        .write_relationships(request)
        .await;
    let (outcome, zookie) = match reply {
        Ok(r) => {
            let z = r.into_inner().written_at;
            (Outcome::Ok(ctx.revision(z.as_ref())), z)
        }
        Err(s) if definite(s.code()) || never_sent(&s) => (Outcome::Fail, None),
        Err(_) => (Outcome::Unknown, None),
    };
    if !matches!(outcome, Outcome::Ok(_)) {
        // A node that is down refuses at once: do not spin on it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctx.history.write(Write {
        client,
        key: key.to_string(),
        kind,
        node: id,
        invoked,
        done: Instant::now(),
        outcome,
    });
    (outcome, zookie)
}

/// A check on `node`; `Some((allowed, revision))` when answered.
async fn check(
    ctx: &Ctx,
    node: usize,
    key: &str,
    consistency: Option<pb::Consistency>,
    timeout: Duration,
) -> Option<(bool, u64)> {
    let (_, channel) = ctx.channels[node].clone();
    let t = verdict_storage::Tuple::parse(key).expect("tuple");
    let mut request = tonic::Request::new(pb::CheckRequest {
        tenant: String::new(),
        consistency,
        resource: Some(verdict::api::convert::object_to_pb(&t.resource)),
        permission: "view".into(),
        subject: Some(verdict::api::convert::subject_to_pb(&t.subject)),
        context: None,
        with_trace: false,
        with_footprint: false,
    });
    request.set_timeout(timeout);
    let r = PermissionServiceClient::new(channel)
        .check(request)
        .await
        .ok()?
        .into_inner();
    Some((
        r.permissionship == pb::Permissionship::Allowed as i32,
        ctx.revision(r.checked_at.as_ref()),
    ))
}

async fn client(ctx: Arc<Ctx>, id: u64, seed: u64) {
    let mut rng = Rng::new(seed ^ (id.wrapping_mul(0x9E37_79B9)));
    let n = ctx.channels.len() as u64;
    // Keys whose last write is unknown: read-your-writes is not owed there.
    let mut unsure: BTreeSet<u64> = BTreeSet::new();
    let mut step = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        step += 1;
        let node = rng.below(n) as usize;
        if step.is_multiple_of(25) {
            new_enemy(&ctx, id, step, &mut rng).await;
            continue;
        }
        if rng.below(3) == 0 {
            // minimize_latency: bounded staleness, monotonic per node.
            let asked = Instant::now();
            let key = format!("doc:c{id}k0#viewer@user:u");
            if let Some((_, revision)) = check(&ctx, node, &key, None, Duration::from_secs(2)).await
            {
                ctx.history.read(Read {
                    client: id,
                    node: ctx.channels[node].0,
                    asked,
                    revision,
                });
            }
            continue;
        }
        let k = rng.below(KEYS);
        let key = format!("doc:c{id}k{k}#viewer@user:u");
        let kind = match rng.below(3) {
            0 => WriteKind::Create,
            1 => WriteKind::Touch,
            _ => WriteKind::Delete,
        };
        let (outcome, zookie) = write(&ctx, id, node, &key, kind).await;
        match outcome {
            Outcome::Unknown => {
                unsure.insert(k);
            }
            Outcome::Fail => {}
            Outcome::Ok(revision) => {
                unsure.remove(&k);
                let other = ((node as u64 + 1 + rng.below(n - 1)) % n) as usize;
                let c = if rng.below(2) == 0 {
                    consistency(pb::consistency::Requirement::FullyConsistent(true))
                } else {
                    consistency(pb::consistency::Requirement::AtLeastAsFresh(
                        zookie.clone().expect("zookie"),
                    ))
                };
                if let Some((allowed, at)) =
                    check(&ctx, other, &key, c, Duration::from_secs(6)).await
                {
                    *ctx.history.checks.lock().unwrap() += 1;
                    let want = kind != WriteKind::Delete;
                    if at < revision || (allowed != want && !unsure.contains(&k)) {
                        ctx.history.violation(
                            "read_your_writes",
                            format!(
                                "client {id}: {kind:?} {key} acknowledged at {revision} by node {}; node {} answered {allowed} at {at}",
                                ctx.channels[node].0, ctx.channels[other].0
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Revoke on one node, add content on another, check at the second
/// zookie on a third: the revoked user must be denied.
async fn new_enemy(ctx: &Ctx, id: u64, step: u64, rng: &mut Rng) {
    let n = ctx.channels.len() as u64;
    let a = rng.below(n) as usize;
    let b = ((a as u64 + 1) % n) as usize;
    let c = ((a as u64 + 2) % n) as usize;
    let acl = format!("doc:ne{id}s{step}#viewer@user:alice");
    let content = format!("doc:ne{id}s{step}c#viewer@user:bob");
    let (granted, _) = write(ctx, id, a, &acl, WriteKind::Touch).await;
    if !matches!(granted, Outcome::Ok(_)) {
        return;
    }
    let (revoked, _) = write(ctx, id, a, &acl, WriteKind::Delete).await;
    if !matches!(revoked, Outcome::Ok(_)) {
        return;
    }
    let (added, z2) = write(ctx, id, b, &content, WriteKind::Touch).await;
    let (Outcome::Ok(_), Some(z2)) = (added, z2) else {
        return;
    };
    let at = consistency(pb::consistency::Requirement::AtLeastAsFresh(z2));
    if let Some((allowed, revision)) = check(ctx, c, &acl, at, Duration::from_secs(6)).await {
        *ctx.history.new_enemy_pairs.lock().unwrap() += 1;
        if allowed {
            ctx.history.violation(
                "new_enemy",
                format!(
                    "{acl} revoked on node {}, content added on node {}; node {} allowed at {revision}",
                    ctx.channels[a].0, ctx.channels[b].0, ctx.channels[c].0
                ),
            );
        }
    }
}

async fn write_schema(endpoint: &str) {
    let mut c = SchemaServiceClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .write_schema(pb::WriteSchemaRequest {
                tenant: String::new(),
                schema: SCHEMA.into(),
                expected_version: 0,
                comment: String::new(),
            })
            .await;
        match r {
            Ok(_) => return,
            Err(s) if Instant::now() < deadline => {
                eprintln!("schema write: {s}; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(s) => panic!("schema write: {s}"),
        }
    }
}

/// Every `doc` relationship one node holds (fully consistent: its own
/// store at the leader's read index).
async fn export(endpoint: &str) -> Option<BTreeSet<String>> {
    let mut c = RelationshipServiceClient::connect(endpoint.to_string())
        .await
        .ok()?;
    let mut stream = c
        .read_relationships(pb::ReadRelationshipsRequest {
            tenant: String::new(),
            consistency: consistency(pb::consistency::Requirement::FullyConsistent(true)),
            filter: Some(pb::RelationshipFilter {
                resource_type: "doc".into(),
                ..Default::default()
            }),
            limit: 0,
            cursor: String::new(),
        })
        .await
        .ok()?
        .into_inner();
    let mut out = BTreeSet::new();
    while let Some(item) = stream.next().await {
        let r = item.ok()?.relationship?;
        let t = verdict::api::convert::tuple_from_pb(&r, "relationship").ok()?;
        out.insert(t.to_string());
    }
    Some(out)
}

/// The summary of one run.
struct Summary {
    report: Report,
    tally: Tally,
    elections: u64,
    elapsed: Duration,
}

async fn run(seed: u64, cycles: u64, nodes: u64) -> Summary {
    let mut cluster =
        NemesisCluster::start(nodes, &["--insecure-no-auth", "--snapshot-logs", "2000"]).await;
    let leader = cluster.leader().await.expect("a leader");
    write_schema(&cluster.node(leader).endpoint()).await;
    let cluster_id: u64 = cluster
        .status()
        .await
        .and_then(|s| s["cluster_id"].as_str().and_then(|id| id.parse().ok()))
        .expect("cluster id");
    let channels = cluster
        .endpoints()
        .into_iter()
        .map(|(id, e)| {
            let ch = Endpoint::from_shared(e)
                .expect("endpoint")
                .connect_timeout(Duration::from_secs(1))
                .connect_lazy();
            (id, ch)
        })
        .collect();
    let ctx = Arc::new(Ctx {
        channels,
        history: History::default(),
        codec: verdict::zookie::ZookieCodec::new(cluster_id),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|id| tokio::spawn(client(ctx.clone(), id, seed)))
        .collect();

    let started = Instant::now();
    let term_before = cluster.max_term().await;
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for cycle in 1..=cycles {
        let fault = faults::ALL[rng.below(faults::ALL.len() as u64) as usize];
        let hold = rng.millis(2_000, 5_000);
        let what = faults::run_cycle(&mut cluster, &mut rng, fault, hold).await;
        *tally.0.entry(fault).or_default() += 1;
        let quiet = rng.millis(2_000, 4_000);
        tokio::time::sleep(quiet).await;
        println!(
            "nemesis cycle {cycle}/{cycles}: {what} for {hold:?}, then {quiet:?} healed; {} acknowledged, term {}",
            ctx.history.acknowledged(),
            cluster.max_term().await
        );
    }
    // Heal everything and let the cluster settle before the final reads.
    cluster.heal_all();
    cluster.resume_all();
    cluster.restart_killed().await;
    let restored = cluster.restore_membership(Duration::from_secs(60)).await;
    // Elections the fault mix caused: the term is one per election.
    let elections = cluster.max_term().await.saturating_sub(term_before);
    let elapsed = started.elapsed();
    ctx.stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let settled = restored && cluster.settle(Duration::from_secs(60)).await;
    assert!(
        settled,
        "the cluster did not settle after healing (membership restored: {restored}); logs in {}",
        cluster.dir().display()
    );

    let mut report = Report::new();
    checker::check_reads(&ctx.history, BOUND, SLACK, &mut report);
    for (kind, what) in ctx.history.seen.lock().unwrap().iter() {
        report.add(kind, what.clone());
    }
    let mut replicas = BTreeMap::new();
    for (id, endpoint) in cluster.endpoints() {
        let mut contents = None;
        for _ in 0..30 {
            contents = export(&endpoint).await;
            if contents.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        replicas.insert(
            id,
            contents.unwrap_or_else(|| panic!("export from node {id}")),
        );
    }
    let (determinate, indeterminate) = checker::check_final(&ctx.history, &replicas, &mut report);
    for p in cluster.panics() {
        report.add("panic", p);
    }
    let writes = ctx.history.writes.lock().unwrap().clone();
    let count = |f: fn(&Outcome) -> bool| writes.iter().filter(|w| f(&w.outcome)).count();
    println!(
        "nemesis summary: seed {seed}, {nodes} nodes, {cycles} cycles in {:.0} s ({})\n  \
         writes: {} acknowledged, {} failed, {} unknown; {} minimize_latency reads; {} read-your-writes checks; {} new-enemy pairs\n  \
         final keys: {determinate} determinate, {indeterminate} indeterminate; elections (term rise) {elections}, {:.1} per 10 min\n  \
         violations: {}",
        elapsed.as_secs_f64(),
        tally.line(),
        count(|o| matches!(o, Outcome::Ok(_))),
        count(|o| matches!(o, Outcome::Fail)),
        count(|o| matches!(o, Outcome::Unknown)),
        ctx.history.reads.lock().unwrap().len(),
        ctx.history.checks.lock().unwrap(),
        ctx.history.new_enemy_pairs.lock().unwrap(),
        elections as f64 * 600.0 / elapsed.as_secs_f64(),
        report.counts(),
    );
    if report.total() > 0 {
        println!("{}", report.details());
        println!("node logs kept in {}", cluster.dir().display());
        // Keep the logs of a failing run.
        std::mem::forget(cluster);
    }
    Summary {
        report,
        tally,
        elections,
        elapsed,
    }
}

#[test]
fn nemesis_run_finds_no_violation() {
    let seed = env_u64("VERDICT_NEMESIS_SEED", 1);
    let cycles = env_u64("VERDICT_NEMESIS_CYCLES", 10);
    let nodes = env_u64("VERDICT_NEMESIS_NODES", 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let summary = runtime.block_on(run(seed, cycles, nodes));
    assert!(summary.tally.0.values().sum::<u64>() == cycles);
    assert!(summary.elapsed > Duration::ZERO);
    let _ = summary.elections;
    assert_eq!(
        summary.report.total(),
        0,
        "nemesis violations (seed {seed}): {}\n{}",
        summary.report.counts(),
        summary.report.details()
    );
}

/// A follower cut off from both other nodes for 5 s (several election
/// timeouts) comes back without deposing the leader: the pre-vote keeps it
/// from raising its term while it cannot win. (Found by the nemesis:
/// terms reached 124 in 15 minutes; with `VERDICT_PRE_VOTE=off` this test
/// fails.)
#[test]
fn a_returning_follower_does_not_depose_a_healthy_leader() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cluster = NemesisCluster::start(3, &["--insecure-no-auth"]).await;
        let leader = cluster.leader().await.expect("a leader");
        let term = cluster.max_term().await;
        let follower = cluster
            .ids()
            .into_iter()
            .find(|i| *i != leader)
            .expect("a follower");
        let rest: Vec<u64> = cluster
            .ids()
            .into_iter()
            .filter(|i| *i != follower)
            .collect();
        cluster.cut_between(&[follower], &rest, true);
        tokio::time::sleep(Duration::from_secs(5)).await;
        cluster.cut_between(&[follower], &rest, false);
        assert!(
            cluster.settle(Duration::from_secs(30)).await,
            "the cluster settles after the follower returns"
        );
        let after = cluster.status().await.expect("status");
        assert_eq!(
            after["leader_id"].as_u64(),
            Some(leader),
            "the leader stays: {after}"
        );
        assert_eq!(
            cluster.max_term().await,
            term,
            "no election: the returning follower did not raise the term"
        );
    });
}
