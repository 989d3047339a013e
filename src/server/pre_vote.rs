//! Pre-vote (Raft thesis §9.6), built around openraft 0.9, which has none.
//!
//! openraft 0.9 rejects a vote while the voter's leader lease is alive,
//! but a node cut off from the leader still raises its own term on every
//! election timeout; when it returns, the leader's next append meets that
//! higher term and the healthy leader steps down (the nemesis saw terms
//! reach 124 in 15 minutes). Here openraft's election timer is disabled
//! (`enable_elect: false`) and a gate re-enables it only while a quorum of
//! voters would vote for this node: each was not hearing from a live
//! leader and holds no newer log. The question travels as
//! [`AdminRequest::PreVote`](super::raft_commit::AdminRequest) and changes
//! nothing on the asked node, so an isolated or lagging node never bumps
//! its term and never disturbs the leader it cannot reach.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict_raft::openraft::{LogId, ServerState};
use verdict_raft::{NodeId, Raft};

use super::error::{PeerError, Reason};
use super::leader_contact::LeaderContact;
use super::raft_commit::AdminRequest;
use super::raft_net::{PeerClient, Rpc};

/// The environment variable that turns the pre-vote off (`off`): for
/// measuring what it changes, or as an escape hatch.
pub const PRE_VOTE_ENV: &str = "VERDICT_PRE_VOTE";

/// Whether the pre-vote gate runs (unless `VERDICT_PRE_VOTE=off`).
pub fn enabled() -> bool {
    std::env::var(PRE_VOTE_ENV).map_or(true, |v| v != "off")
}

/// A leader heard from (or, on the leader, a quorum acknowledgement) this
/// recently is alive: heartbeats go every 250 ms, elections time out after
/// 750–1500 ms.
pub const LEADER_ALIVE: Duration = Duration::from_millis(1_000);
/// How often the gate decides.
const TICK: Duration = Duration::from_millis(150);
/// How long a pre-vote question waits for each peer.
const ASK_TIMEOUT: Duration = Duration::from_millis(400);

/// Whether a voter grants a pre-vote: it knows no live leader and the
/// candidate's log is at least as up to date as its own (Raft §5.4.1).
pub fn grants(
    leader_alive: bool,
    mine: Option<&LogId<NodeId>>,
    candidate: Option<&LogId<NodeId>>,
) -> bool {
    !leader_alive && candidate >= mine
}

/// Whether `granted` holds a majority of every configuration of a (joint)
/// membership.
pub fn quorum(configs: &[BTreeSet<NodeId>], granted: &BTreeSet<NodeId>) -> bool {
    !configs.is_empty()
        && configs
            .iter()
            .all(|c| c.intersection(granted).count() * 2 > c.len())
}

/// Whether this node currently knows a live leader (itself included).
pub fn leader_alive(raft: &Raft, contact: &LeaderContact, now: Instant) -> bool {
    let m = raft.metrics().borrow().clone();
    if m.state == ServerState::Leader {
        let alone = m.membership_config.membership().voter_ids().eq([m.id]);
        return alone
            || m.millis_since_quorum_ack
                .is_some_and(|ms| Duration::from_millis(ms) < LEADER_ALIVE);
    }
    contact
        .newest()
        .is_some_and(|sent| now.saturating_duration_since(sent) < LEADER_ALIVE)
}

/// This node's answer to a pre-vote for `candidate_last_log`.
pub fn answer(
    raft: &Raft,
    contact: &LeaderContact,
    candidate_last_log: Option<&LogId<NodeId>>,
) -> bool {
    let mine = raft.data_metrics().borrow().last_log;
    grants(
        leader_alive(raft, contact, Instant::now()),
        mine.as_ref(),
        candidate_last_log,
    )
}

/// Starts the gate: every tick, a voter that knows no live leader asks
/// the other voters for a pre-vote and lets openraft campaign only while a
/// quorum grants it. Ends when Raft stops.
pub fn spawn_gate(raft: Raft, node_id: NodeId, key: Option<String>, contact: Arc<LeaderContact>) {
    tokio::spawn(async move {
        let mut peers: BTreeMap<NodeId, (String, PeerClient)> = BTreeMap::new();
        let mut enabled = None;
        loop {
            tokio::time::sleep(TICK).await;
            let m = raft.metrics().borrow().clone();
            if m.running_state.is_err() {
                return;
            }
            let allow = match m.state {
                ServerState::Leader => true,
                _ if leader_alive(&raft, &contact, Instant::now()) => false,
                _ => {
                    let membership = m.membership_config.membership().clone();
                    let configs = membership.get_joint_config().clone();
                    if !configs.iter().any(|c| c.contains(&node_id)) {
                        false
                    } else {
                        let last_log = raft.data_metrics().borrow().last_log;
                        let mut asks = tokio::task::JoinSet::new();
                        for id in membership.voter_ids().filter(|id| *id != node_id) {
                            let Some(node) = membership.get_node(&id) else {
                                continue;
                            };
                            let stale = peers.get(&id).is_none_or(|(addr, _)| *addr != node.addr);
                            if stale {
                                match PeerClient::new(&node.addr, key.as_deref()) {
                                    Ok(c) => {
                                        peers.insert(id, (node.addr.clone(), c));
                                    }
                                    Err(_) => continue,
                                }
                            }
                            if let Some((_, client)) = peers.get(&id) {
                                asks.spawn(ask(id, client.clone(), node_id, last_log));
                            }
                        }
                        let mut granted: BTreeSet<NodeId> =
                            asks.join_all().await.into_iter().flatten().collect();
                        granted.insert(node_id);
                        quorum(&configs, &granted)
                    }
                }
            };
            if enabled != Some(allow) {
                tracing::debug!(node = node_id, allow, "pre-vote gate");
                raft.runtime_config().elect(allow);
                enabled = Some(allow);
            }
        }
    });
}

/// Asks `peer` for a pre-vote; `Some(peer)` when granted. A peer that
/// does not know the question (an older release during a rolling upgrade)
/// counts as granting, as it would have before pre-vote existed.
async fn ask(
    peer: NodeId,
    client: PeerClient,
    candidate: NodeId,
    last_log: Option<LogId<NodeId>>,
) -> Option<NodeId> {
    let req = AdminRequest::PreVote {
        candidate,
        last_log,
    };
    let data = serde_json::to_vec(&req).ok()?;
    let reply = client.call(Rpc::Admin, data, ASK_TIMEOUT).await.ok()?;
    let answer: Result<serde_json::Value, PeerError> = serde_json::from_slice(&reply).ok()?;
    let granted = match answer {
        Ok(v) => v
            .get("granted")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        Err(e) => {
            e.reason == Reason::InvalidArgument && e.message.starts_with("malformed admin request")
        }
    };
    granted.then_some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_raft::openraft::CommittedLeaderId;

    fn log(term: u64, node: NodeId, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    #[test]
    fn a_live_leader_means_no_vote() {
        let l = log(3, 1, 10);
        assert!(!grants(true, Some(&l), Some(&log(9, 2, 99))));
        assert!(grants(false, Some(&l), Some(&l)));
    }

    #[test]
    fn a_candidate_with_an_older_log_gets_no_vote() {
        let mine = log(3, 1, 10);
        assert!(!grants(false, Some(&mine), Some(&log(3, 1, 9))));
        assert!(!grants(false, Some(&mine), None));
        // A later term wins over a longer log of an older term.
        assert!(grants(false, Some(&mine), Some(&log(4, 2, 5))));
        assert!(!grants(false, Some(&log(4, 2, 5)), Some(&mine)));
        assert!(grants(false, None, None));
    }

    #[test]
    fn a_quorum_is_a_majority_of_every_joint_configuration() {
        let c = |ids: &[NodeId]| ids.iter().copied().collect::<BTreeSet<_>>();
        assert!(quorum(&[c(&[1, 2, 3])], &c(&[1, 2])));
        assert!(!quorum(&[c(&[1, 2, 3])], &c(&[1])));
        assert!(!quorum(&[c(&[1, 2, 3, 4])], &c(&[1, 2])));
        assert!(quorum(&[c(&[1])], &c(&[1])));
        // Joint: {1,2,3} → {3,4,5}: 1,2 alone hold only the old half.
        assert!(!quorum(&[c(&[1, 2, 3]), c(&[3, 4, 5])], &c(&[1, 2])));
        assert!(quorum(&[c(&[1, 2, 3]), c(&[3, 4, 5])], &c(&[2, 3, 4])));
        assert!(!quorum(&[], &c(&[1])));
    }
}
