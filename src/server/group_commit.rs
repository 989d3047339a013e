//! Group commit: concurrent writes share one Raft entry (and so one log
//! fsync and one store write).
//!
//! ```text
//!  propose(tenant, batch) ──▶ queue ──▶ batcher task ──▶ Command::WriteGroup ──▶ Raft
//!        ▲                                  │                 (one entry)
//!        └──── oneshot: this write's own ◀──┘ Response::Group: one result per write
//!              outcome, zookie or refusal
//! ```
//!
//! Policy: a write that arrives while nothing is in flight is proposed at
//! once (after `linger`, when one is set); writes that pile up while up to
//! `max_in_flight` entries are in flight are proposed together as the next
//! entry, at most `max_batch` of them. A group holds writes of one tenant
//! whose explicit tuples are disjoint, in arrival order; a write that
//! deletes by filter or stores a schema version, or names a tuple already
//! in the group, starts the next group. A group of one is proposed as a
//! plain `Command::Write`.
//!
//! Each write of a group keeps its own preconditions and outcome (see
//! `verdict_storage::RocksStore::apply_group`); every write kept shares the
//! entry's revision, so two writes of one group answer the same zookie.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use verdict_raft::{Command, GroupedWrite, Request, Response};
use verdict_storage::{ApplyOutcome, ApplyStatus, Op, Revision, Tenant, Tuple, WriteBatch};

use prometheus_client::encoding::DescriptorEncoder;

use super::error::{NodeError, PeerError};
use super::exposition::{self, Encoded, HistogramCounts};
use super::raft_commit::RaftCommitter;

/// How writes are grouped (`verdict serve --group-commit*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// Group concurrent writes at all. Default = on.
    pub enabled: bool,
    /// How long a write that finds nothing in flight waits for company
    /// before it is proposed. Default = 0 (proposed at once).
    pub linger: Duration,
    /// Most writes in one entry. Default = 256.
    pub max_batch: usize,
    /// Entries proposed before the first is answered. Default = 2.
    pub max_in_flight: usize,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        GroupCommitSettings {
            enabled: true,
            linger: Duration::ZERO,
            max_batch: 256,
            max_in_flight: 2,
        }
    }
}

/// One write waiting for its group.
struct Pending {
    tenant: Tenant,
    write: GroupedWrite,
    /// Its explicit tuples (resource, relation, subject), `None` when it
    /// may not share an entry (delete by filter, schema version).
    keys: Option<Vec<String>>,
    queued: Instant,
    reply: oneshot::Sender<Result<ApplyOutcome, NodeError>>,
}

fn tuple_key(t: &Tuple) -> String {
    format!("{}#{}@{}", t.resource, t.relation, t.subject)
}

/// The explicit tuples of `batch`, or `None` when it goes alone.
fn group_keys(batch: &WriteBatch) -> Option<Vec<String>> {
    batch
        .ops
        .iter()
        .map(|op| match op {
            Op::Create(t) | Op::Touch(t) | Op::Delete(t) => Some(tuple_key(t)),
            Op::DeleteByFilter { .. } | Op::PutSchema(_) => None,
        })
        .collect()
}

/// Upper bounds of the group size histogram.
const SIZE_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
/// Upper bounds (seconds) of the queue wait histogram.
const WAIT_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
];

/// Group commit metrics (written by [`GroupMetrics::encode`]).
#[derive(Debug, Default)]
pub struct GroupMetrics {
    sizes: [AtomicU64; SIZE_BUCKETS.len()],
    entries: AtomicU64,
    writes: AtomicU64,
    waits: [AtomicU64; WAIT_BUCKETS.len()],
    wait_micros: AtomicU64,
}

impl GroupMetrics {
    fn record_entry(&self, size: usize) {
        let size = size as u64;
        if let Some((_, b)) = SIZE_BUCKETS
            .iter()
            .zip(&self.sizes)
            .find(|(bound, _)| size <= **bound)
        {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(size, Ordering::Relaxed);
    }

    fn record_wait(&self, waited: Duration) {
        let secs = waited.as_secs_f64();
        if let Some((_, b)) = WAIT_BUCKETS
            .iter()
            .zip(&self.waits)
            .find(|(bound, _)| secs <= **bound)
        {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.wait_micros.fetch_add(
            u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Appends `verdict_group_commit_writes_per_entry` (histogram of the
    /// writes each proposed entry carried) and
    /// `verdict_group_commit_wait_seconds` (how long each write was queued
    /// before its entry was proposed: linger plus waiting for a slot).
    pub fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Encoded {
        let entries = self.entries.load(Ordering::Relaxed);
        let writes = self.writes.load(Ordering::Relaxed);
        exposition::histogram(
            encoder,
            "verdict_group_commit_writes_per_entry",
            "Writes carried by each Raft entry the group committer proposed.",
            &HistogramCounts {
                buckets: SIZE_BUCKETS
                    .iter()
                    .zip(&self.sizes)
                    .map(|(bound, n)| (*bound as f64, n.load(Ordering::Relaxed)))
                    .collect(),
                count: entries,
                sum: writes as f64,
            },
        )?;
        exposition::histogram(
            encoder,
            "verdict_group_commit_wait_seconds",
            "Time each write was queued before its entry was proposed.",
            &HistogramCounts {
                buckets: WAIT_BUCKETS
                    .iter()
                    .zip(&self.waits)
                    .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
                    .collect(),
                count: writes,
                sum: self.wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
            },
        )
    }
}

/// The queue in front of the committer; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::UnboundedSender<Pending>,
    metrics: Arc<GroupMetrics>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the batcher task, proposing through `committer` (which must
    /// not itself route through a group committer).
    pub fn start(committer: RaftCommitter, settings: GroupCommitSettings) -> GroupCommit {
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(GroupMetrics::default());
        tokio::spawn(batcher(committer, settings, rx, metrics.clone()));
        GroupCommit { tx, metrics }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<GroupMetrics> {
        &self.metrics
    }

    /// Queues `batch` and waits for its own outcome.
    ///
    /// # Errors
    /// The write's refusal (nothing of it applied), UNAVAILABLE without a
    /// leader or when the batcher is gone.
    pub async fn write(
        &self,
        tenant: &Tenant,
        batch: WriteBatch,
        expected_schema_since: Option<Revision>,
    ) -> Result<ApplyOutcome, NodeError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            tenant: tenant.clone(),
            keys: group_keys(&batch),
            write: GroupedWrite {
                batch,
                expected_schema_since,
            },
            queued: Instant::now(),
            reply,
        };
        let gone = || NodeError::Unavailable("the group committer stopped; retry".into());
        self.tx.send(pending).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Takes the next group off the front of `queue` (see the module doc).
fn take_group(queue: &mut VecDeque<Pending>, max_batch: usize) -> Vec<Pending> {
    let Some(first) = queue.pop_front() else {
        return Vec::new();
    };
    let Some(first_keys) = first.keys.clone() else {
        return vec![first];
    };
    let tenant = first.tenant.clone();
    let mut seen: HashSet<String> = first_keys.into_iter().collect();
    let mut group = vec![first];
    while group.len() < max_batch {
        let fits = queue.front().is_some_and(|next| {
            next.tenant == tenant
                && next
                    .keys
                    .as_ref()
                    .is_some_and(|keys| keys.iter().all(|k| !seen.contains(k)))
        });
        if !fits {
            break;
        }
        let Some(next) = queue.pop_front() else {
            break;
        };
        seen.extend(next.keys.iter().flatten().cloned());
        group.push(next);
    }
    group
}

async fn batcher(
    committer: RaftCommitter,
    settings: GroupCommitSettings,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    metrics: Arc<GroupMetrics>,
) {
    let max_batch = settings.max_batch.max(1);
    let max_in_flight = settings.max_in_flight.max(1);
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut open = true;
    loop {
        if queue.is_empty() && in_flight.is_empty() {
            if !open {
                return;
            }
            match rx.recv().await {
                Some(p) => queue.push_back(p),
                None => return,
            }
            // Nothing in flight: wait up to `linger` for company.
            if !settings.linger.is_zero() {
                let until = tokio::time::Instant::now() + settings.linger;
                while queue.len() < max_batch {
                    match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(p)) => queue.push_back(p),
                        Ok(None) => {
                            open = false;
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        while let Ok(p) = rx.try_recv() {
            queue.push_back(p);
        }
        while !queue.is_empty() && in_flight.len() < max_in_flight {
            let group = take_group(&mut queue, max_batch);
            metrics.record_entry(group.len());
            for p in &group {
                metrics.record_wait(p.queued.elapsed());
            }
            in_flight.spawn(commit_group(committer.clone(), group));
        }
        tokio::select! {
            p = rx.recv(), if open => match p {
                Some(p) => queue.push_back(p),
                None => open = false,
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            // Closed and idle: the loop's top returns.
            else => {}
        }
    }
}

/// Proposes one group and answers each of its writers.
async fn commit_group(committer: RaftCommitter, group: Vec<Pending>) {
    let Some(tenant) = group.first().map(|p| p.tenant.clone()) else {
        return;
    };
    if group.len() == 1 {
        for p in group {
            let result = committer
                .propose_alone(&tenant, p.write.batch, p.write.expected_schema_since)
                .await;
            let _ = p.reply.send(result);
        }
        return;
    }
    let (writes, replies): (Vec<GroupedWrite>, Vec<_>) =
        group.into_iter().map(|p| (p.write, p.reply)).unzip();
    let n = writes.len();
    let response = committer
        .submit(Request::now(Command::WriteGroup { tenant, writes }))
        .await;
    let results: Vec<Result<ApplyOutcome, NodeError>> = match response {
        Ok(Response::Group { results, .. }) => results
            .into_iter()
            .map(|r| r.map_err(NodeError::from))
            .collect(),
        Ok(Response::Rejected { rejection, .. }) => (0..n)
            .map(|_| Err(NodeError::from(rejection.clone())))
            .collect(),
        Ok(Response::Applied(o)) => (0..n).map(|_| Ok(o)).collect(),
        Ok(Response::Done { revision }) => (0..n)
            .map(|_| {
                Ok(ApplyOutcome {
                    revision,
                    status: ApplyStatus::Applied,
                    changes: 0,
                    delete_truncated: false,
                })
            })
            .collect(),
        Err(e) => {
            let copy = PeerError::from(&e);
            std::iter::once(Err(e))
                .chain((1..n).map(|_| {
                    Err(NodeError::Peer {
                        source: copy.clone(),
                    })
                }))
                .collect()
        }
    };
    let mut results = results.into_iter();
    for reply in replies {
        let result = results.next().unwrap_or_else(|| {
            Err(NodeError::Internal(
                "the group's answer has fewer results than writes".into(),
            ))
        });
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(tenant: &str, batch: WriteBatch) -> Pending {
        let (reply, _) = oneshot::channel();
        Pending {
            tenant: Tenant::new(tenant).unwrap_or_else(|e| panic!("{e}")),
            keys: group_keys(&batch),
            write: GroupedWrite {
                batch,
                expected_schema_since: None,
            },
            queued: Instant::now(),
            reply,
        }
    }

    fn touch(s: &str) -> WriteBatch {
        WriteBatch::new().touch(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn groups_stop_at_a_repeated_tuple_another_tenant_or_a_filter_delete() {
        let mut q: VecDeque<Pending> = VecDeque::from(vec![
            pending("acme", touch("doc:a#viewer@user:1")),
            pending("acme", touch("doc:b#viewer@user:1")),
            pending("acme", touch("doc:a#viewer@user:1")),
            pending("acme", touch("doc:c#viewer@user:1")),
            pending("other", touch("doc:c#viewer@user:1")),
            pending(
                "other",
                WriteBatch::new().delete_by_filter(verdict_storage::TupleFilter::default(), None),
            ),
            pending("other", touch("doc:d#viewer@user:1")),
        ]);
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let g = take_group(&mut q, 256);
            (!g.is_empty()).then_some(g.len())
        })
        .collect();
        assert_eq!(sizes, vec![2, 2, 1, 1, 1]);
    }

    #[test]
    fn groups_stop_at_max_batch() {
        let mut q: VecDeque<Pending> = (0..10)
            .map(|i| pending("acme", touch(&format!("doc:d{i}#viewer@user:1"))))
            .collect();
        assert_eq!(take_group(&mut q, 4).len(), 4);
        assert_eq!(take_group(&mut q, 4).len(), 4);
        assert_eq!(take_group(&mut q, 4).len(), 2);
        assert!(take_group(&mut q, 4).is_empty());
    }

    #[derive(Debug)]
    struct Only(GroupMetrics);

    impl prometheus_client::collector::Collector for Only {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Encoded {
            self.0.encode(&mut encoder)
        }
    }

    #[test]
    fn metrics_render_sizes_and_waits() {
        let m = GroupMetrics::default();
        m.record_entry(1);
        m.record_entry(40);
        m.record_wait(Duration::from_micros(50));
        let out = exposition::render(Only(m));
        assert!(out.contains("verdict_group_commit_writes_per_entry_bucket{le=\"1.0\"} 1"));
        assert!(out.contains("verdict_group_commit_writes_per_entry_bucket{le=\"32.0\"} 1"));
        assert!(out.contains("verdict_group_commit_writes_per_entry_bucket{le=\"64.0\"} 2"));
        assert!(
            out.contains("verdict_group_commit_writes_per_entry_sum 41.0"),
            "{out}"
        );
        assert!(out.contains("verdict_group_commit_wait_seconds_bucket{le=\"0.0001\"} 1"));
    }
}
