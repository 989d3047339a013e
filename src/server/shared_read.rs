//! The revision `minimize_latency` reads share (Zanzibar's quantized
//! snapshot): one revision for a short window so decision caches hit.
//!
//! Two promises hold whatever order requests arrive in:
//!
//! - **bounded staleness**: the shared revision is served only while the
//!   proof that made it current is younger than `--max-staleness`. A proof
//!   is an instant before which everything committed is applied here (a
//!   quorum acknowledgement on the leader, a leader's append on a follower,
//!   a read index). Only a path holding such a proof may *renew* the slot;
//!   a request that merely waited for a zookie (for example during a
//!   pause, after which the node is behind) may not.
//! - **monotonic reads**: every revision this node answers at raises the
//!   shared one, so a later `minimize_latency` read on the node never goes
//!   back behind an earlier answer.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use verdict_storage::Revision;

/// The shared read revision and how long it may be served.
#[derive(Debug)]
pub struct SharedRead {
    window: Duration,
    max_staleness: Duration,
    slot: Mutex<Slot>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    revision: Revision,
    servable_until: Option<Instant>,
}

impl SharedRead {
    /// Shares one revision for at most `window` at a time, never past
    /// `max_staleness` after its proof.
    pub fn new(window: Duration, max_staleness: Duration) -> SharedRead {
        SharedRead {
            window: window.min(max_staleness),
            max_staleness,
            slot: Mutex::new(Slot::default()),
        }
    }

    /// The shared revision, if it may still be served at `now`.
    pub fn current(&self, now: Instant) -> Option<Revision> {
        let slot = *self.slot.lock();
        slot.servable_until
            .filter(|until| now < *until)
            .map(|_| slot.revision)
    }

    /// Makes `applied` (this node's applied revision, read after the
    /// proof) the shared revision: everything committed before `proven_at`
    /// is in it. Returns the revision to answer at, which is never lower
    /// than one answered before.
    pub fn renew(&self, applied: Revision, proven_at: Instant, now: Instant) -> Revision {
        let until = (now + self.window).min(proven_at + self.max_staleness);
        let mut slot = self.slot.lock();
        slot.revision = slot.revision.max(applied);
        slot.servable_until = Some(slot.servable_until.map_or(until, |u| u.max(until)));
        slot.revision
    }

    /// Records that this node answered at `revision` on another path
    /// (a zookie, a fully consistent read): the shared revision rises to
    /// it, without being served any longer than its own proof allows.
    pub fn raise(&self, revision: Revision) {
        let mut slot = self.slot.lock();
        slot.revision = slot.revision.max(revision);
    }

    /// The newest revision shared or answered so far.
    pub fn revision(&self) -> Revision {
        self.slot.lock().revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(1);
    const BOUND: Duration = Duration::from_secs(2);

    #[test]
    fn nothing_is_served_before_a_proof() {
        let shared = SharedRead::new(WINDOW, BOUND);
        shared.raise(Revision(7));
        assert_eq!(shared.current(Instant::now()), None);
        assert_eq!(shared.revision(), Revision(7));
    }

    #[test]
    fn a_renewed_revision_is_served_for_the_window_only() {
        let shared = SharedRead::new(WINDOW, BOUND);
        let t0 = Instant::now();
        assert_eq!(shared.renew(Revision(5), t0, t0), Revision(5));
        assert_eq!(shared.current(t0 + WINDOW / 2), Some(Revision(5)));
        assert_eq!(shared.current(t0 + WINDOW), None);
    }

    #[test]
    fn an_old_proof_shortens_the_window_to_the_staleness_bound() {
        let shared = SharedRead::new(WINDOW, BOUND);
        let proven = Instant::now();
        let now = proven + BOUND - Duration::from_millis(300);
        shared.renew(Revision(5), proven, now);
        assert_eq!(
            shared.current(now + Duration::from_millis(200)),
            Some(Revision(5))
        );
        assert_eq!(shared.current(now + Duration::from_millis(300)), None);
    }

    #[test]
    fn the_window_is_never_longer_than_the_bound() {
        let shared = SharedRead::new(Duration::from_secs(10), BOUND);
        let t0 = Instant::now();
        shared.renew(Revision(1), t0, t0);
        assert_eq!(shared.current(t0 + BOUND), None);
    }

    #[test]
    fn answers_never_go_backwards() {
        let shared = SharedRead::new(WINDOW, BOUND);
        let t0 = Instant::now();
        shared.renew(Revision(10), t0, t0);
        // A zookie read answered at 12 while the slot held 10.
        shared.raise(Revision(12));
        assert_eq!(shared.current(t0), Some(Revision(12)));
        // A renewal with an applied revision read before the raise.
        assert_eq!(shared.renew(Revision(11), t0, t0), Revision(12));
    }

    #[test]
    fn raising_does_not_extend_how_long_a_revision_is_served() {
        let shared = SharedRead::new(WINDOW, BOUND);
        let t0 = Instant::now();
        shared.renew(Revision(1), t0, t0);
        shared.raise(Revision(3));
        assert_eq!(shared.current(t0 + WINDOW), None);
    }
}
