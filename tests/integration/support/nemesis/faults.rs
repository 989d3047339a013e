//! The faults the nemesis injects, one per cycle, chosen by the seeded
//! generator: partitions through the link proxies (an isolated leader, an
//! isolated follower, majority/minority, a bridge), kill -9 with a restart
//! on the same data directory, and SIGSTOP/SIGCONT pauses.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{NemesisCluster, Rng};

/// One fault kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The leader cut off from every other node.
    IsolateLeader,
    /// One follower cut off from every other node.
    IsolateFollower,
    /// A minority (⌊n/2⌋ nodes, the leader among them or not) cut off
    /// from the majority.
    MajorityMinority,
    /// Two halves that only one node (the bridge) reaches both of.
    Bridge,
    /// kill -9 of the leader, restarted on its data directory.
    KillLeader,
    /// kill -9 of a random node, restarted on its data directory.
    KillAny,
    /// SIGSTOP of the leader, then SIGCONT.
    PauseLeader,
    /// SIGSTOP of a random node, then SIGCONT.
    PauseAny,
    /// A follower removed from the membership (and, half the time, another
    /// node killed meanwhile), then added back as a learner and promoted.
    Membership,
}

/// Every kind, in schedule order.
pub const ALL: [Fault; 9] = [
    Fault::IsolateLeader,
    Fault::IsolateFollower,
    Fault::MajorityMinority,
    Fault::Bridge,
    Fault::KillLeader,
    Fault::KillAny,
    Fault::PauseLeader,
    Fault::PauseAny,
    Fault::Membership,
];

/// Cycles run so far, by kind.
#[derive(Debug, Default)]
pub struct Tally(pub BTreeMap<Fault, u64>);

impl Tally {
    /// `kind: count` pairs on one line.
    pub fn line(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k:?} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs one fault cycle: inject `fault`, hold it for `hold`, heal
/// (resume, restart, reconnect). Returns what it did, for the log.
pub async fn run_cycle(
    cluster: &mut NemesisCluster,
    rng: &mut Rng,
    fault: Fault,
    hold: Duration,
) -> String {
    let ids = cluster.ids();
    let n = ids.len() as u64;
    let leader = cluster.leader().await.unwrap_or(ids[0]);
    let random = ids[rng.below(n) as usize];
    let follower = {
        let others: Vec<u64> = ids.iter().copied().filter(|i| *i != leader).collect();
        others[rng.below(others.len() as u64) as usize]
    };
    let others =
        |x: &[u64]| -> Vec<u64> { ids.iter().copied().filter(|i| !x.contains(i)).collect() };
    let what = match fault {
        Fault::IsolateLeader => {
            cluster.cut_between(&[leader], &others(&[leader]), true);
            format!("isolate leader {leader}")
        }
        Fault::IsolateFollower => {
            cluster.cut_between(&[follower], &others(&[follower]), true);
            format!("isolate follower {follower}")
        }
        Fault::MajorityMinority => {
            let mut shuffled = ids.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let minority: Vec<u64> = shuffled[..(ids.len() / 2)].to_vec();
            cluster.cut_between(&minority, &others(&minority), true);
            format!("minority {minority:?} | majority {:?}", others(&minority))
        }
        Fault::Bridge => {
            // The bridge reaches everyone; the rest split in two halves
            // that do not reach each other.
            let bridge = random;
            let rest = others(&[bridge]);
            let (a, b) = rest.split_at(rest.len() / 2);
            cluster.cut_between(a, b, true);
            format!("bridge {bridge}: {a:?} x {b:?}")
        }
        Fault::KillLeader => {
            cluster.kill(leader);
            format!("kill -9 leader {leader}")
        }
        Fault::KillAny => {
            cluster.kill(random);
            format!("kill -9 node {random}")
        }
        Fault::PauseLeader => {
            cluster.pause(leader);
            format!("pause leader {leader}")
        }
        Fault::PauseAny => {
            cluster.pause(random);
            format!("pause node {random}")
        }
        Fault::Membership => {
            let removed = cluster
                .cluster_cli(&["remove", "--id", &follower.to_string()])
                .await;
            let mut what = format!(
                "remove follower {follower} ({})",
                if removed { "done" } else { "refused" }
            );
            if rng.below(2) == 0 {
                let victim = others(&[follower])[rng.below(n - 1) as usize];
                cluster.kill(victim);
                what.push_str(&format!(", kill -9 node {victim}"));
            }
            what
        }
    };
    tokio::time::sleep(hold).await;
    cluster.heal_all();
    cluster.resume_all();
    cluster.restart_killed().await;
    if fault == Fault::Membership {
        let restored = cluster.restore_membership(Duration::from_secs(60)).await;
        return format!("{what}; re-added: {restored}");
    }
    what
}
