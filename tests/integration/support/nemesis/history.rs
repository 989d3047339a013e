//! Every operation the workload ran: writes (invoked, then ok at a
//! revision, failed — definitely not applied — or unknown), the
//! minimize_latency reads (when asked, on which node, at which revision)
//! and the violations clients saw while running (read-your-writes,
//! new-enemy).

use std::time::Instant;

use std::sync::Mutex;

/// A write's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// CREATE (fails if present).
    Create,
    /// TOUCH (present afterwards).
    Touch,
    /// DELETE (absent afterwards).
    Delete,
}

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged at this revision.
    Ok(u64),
    /// Refused: definitely not applied.
    Fail,
    /// Timed out or unavailable: may or may not be applied.
    Unknown,
}

/// One write.
#[derive(Debug, Clone)]
pub struct Write {
    /// The client (its writes are sequential).
    pub client: u64,
    /// The relationship, as text.
    pub key: String,
    /// What it did.
    pub kind: WriteKind,
    /// The node it was sent to.
    pub node: u64,
    /// When it was sent.
    pub invoked: Instant,
    /// When it ended.
    pub done: Instant,
    /// How it ended.
    pub outcome: Outcome,
}

/// One answered minimize_latency read.
#[derive(Debug, Clone, Copy)]
pub struct Read {
    /// The client (its reads are sequential).
    pub client: u64,
    /// The node that answered.
    pub node: u64,
    /// When it was sent.
    pub asked: Instant,
    /// The revision it was answered at.
    pub revision: u64,
}

/// The whole history, shared by the clients.
#[derive(Debug, Default)]
pub struct History {
    /// Every write, in completion order.
    pub writes: Mutex<Vec<Write>>,
    /// Every answered minimize_latency read.
    pub reads: Mutex<Vec<Read>>,
    /// Violations seen while running: (kind, description).
    pub seen: Mutex<Vec<(&'static str, String)>>,
    /// Checks answered (read-your-writes, fully consistent, new-enemy).
    pub checks: Mutex<u64>,
    /// New-enemy pairs completed.
    pub new_enemy_pairs: Mutex<u64>,
}

impl History {
    /// Records a finished write.
    pub fn write(&self, w: Write) {
        self.writes.lock().unwrap().push(w);
    }

    /// Records an answered minimize_latency read.
    pub fn read(&self, r: Read) {
        self.reads.lock().unwrap().push(r);
    }

    /// Records a violation a client saw.
    pub fn violation(&self, kind: &'static str, what: String) {
        self.seen.lock().unwrap().push((kind, what));
    }

    /// Acknowledged writes.
    pub fn acknowledged(&self) -> usize {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| matches!(w.outcome, Outcome::Ok(_)))
            .count()
    }
}
