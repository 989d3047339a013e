//! How fresh a follower knows it is: the recent appends it accepted from
//! the leader, each with the leader's commit index and the time the leader
//! *sent* it.
//!
//! The send time matters after a pause or a partition: appends the leader
//! sent seconds ago may still sit in the socket and arrive all at once.
//! Stamped with their arrival time they would make a node that is seconds
//! behind look current; stamped with their send time they prove only what
//! was true then. The leader's wall-clock send time travels in
//! [`SENT_AT_HEADER`]; a follower whose clock is behind the leader's sees a
//! negative age and falls back to the arrival time (never fresher than
//! before), one whose clock is ahead only under-claims freshness and takes
//! the read-index path.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// The metadata key carrying the sender's wall-clock time of a call, in
/// microseconds since the Unix epoch.
pub const SENT_AT_HEADER: &str = "x-verdict-sent-at-micros";

/// Contacts remembered (heartbeats every 250 ms: about sixteen seconds).
const CONTACTS: usize = 64;

/// Now, as [`SENT_AT_HEADER`] carries it.
pub fn wall_clock_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// When a message that arrives now was sent, from the sender's wall-clock
/// stamp (`None`: an older peer that sends none — the arrival time).
pub fn sent_instant(sent_at_micros: Option<u64>) -> Instant {
    let now = Instant::now();
    let Some(sent) = sent_at_micros else {
        return now;
    };
    let age = Duration::from_micros(wall_clock_micros().saturating_sub(sent));
    now.checked_sub(age).unwrap_or(now)
}

/// The recent successful appends from a leader.
#[derive(Debug, Default)]
pub struct LeaderContact {
    recent: Mutex<VecDeque<(Instant, u64)>>,
}

impl LeaderContact {
    /// Records a successful append the leader sent at `sent` with its
    /// commit index.
    pub fn record(&self, leader_commit: u64, sent: Instant) {
        let mut recent = self.recent.lock();
        if recent.len() == CONTACTS {
            recent.pop_front();
        }
        recent.push_back((sent, leader_commit));
    }

    /// The send time of the newest append accepted from a leader.
    pub fn newest(&self) -> Option<Instant> {
        self.recent.lock().iter().map(|(sent, _)| *sent).max()
    }

    /// The newest instant before which everything the leader had committed
    /// is applied on a node that applied `applied`: the send time of the
    /// newest contact whose commit index it has applied.
    pub fn proven_since(&self, applied: u64) -> Option<Instant> {
        self.recent
            .lock()
            .iter()
            .filter(|(_, commit)| *commit <= applied)
            .map(|(sent, _)| *sent)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proof_is_the_newest_contact_already_applied() {
        let c = LeaderContact::default();
        assert_eq!(c.proven_since(10), None, "never heard from a leader");
        let t0 = Instant::now();
        c.record(5, t0);
        c.record(9, t0 + Duration::from_millis(30));
        assert_eq!(c.proven_since(7), Some(t0));
        assert_eq!(c.proven_since(9), Some(t0 + Duration::from_millis(30)));
        assert_eq!(c.proven_since(4), None, "nothing committed is applied");
    }

    #[test]
    fn late_arrivals_prove_only_their_send_time() {
        let c = LeaderContact::default();
        let t0 = Instant::now();
        c.record(9, t0 + Duration::from_millis(50));
        // An append sent earlier arrives after a pause.
        c.record(5, t0);
        assert_eq!(c.proven_since(9), Some(t0 + Duration::from_millis(50)));
        assert_eq!(c.proven_since(6), Some(t0));
    }

    #[test]
    fn a_message_stamped_seconds_ago_is_seconds_old() {
        let sent = wall_clock_micros() - 4_000_000;
        let age = sent_instant(Some(sent)).elapsed();
        assert!(age >= Duration::from_secs(4), "{age:?}");
        assert!(age < Duration::from_secs(5), "{age:?}");
    }

    #[test]
    fn a_stamp_from_the_future_counts_as_now() {
        let age = sent_instant(Some(wall_clock_micros() + 60_000_000)).elapsed();
        assert!(age < Duration::from_secs(1), "{age:?}");
        assert!(sent_instant(None).elapsed() < Duration::from_secs(1));
    }
}
