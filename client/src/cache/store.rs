//! The cache's data: entries by check, an index from footprint key to
//! entries, the recent changes seen on the watch feed, and the watch
//! position. Exact invalidation and the insert race are decided here;
//! no I/O, no clock (callers pass `Instant`s).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use verdict_footprint::ANY_KEY;

use crate::types::Permissionship;
use crate::zookie::Zookie;

/// Changes (revision, key) remembered to judge answers that arrive after
/// the watch has passed their revision.
const LOG_CAPACITY: usize = 65_536;
/// Rough bytes per entry beyond its key text and footprint (maps, index
/// slots).
const ENTRY_OVERHEAD: usize = 160;

/// One cached answer.
#[derive(Debug)]
struct Entry {
    key: String,
    answer: Permissionship,
    footprint: Box<[u64]>,
    bytes: usize,
}

/// Why an answer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The watch has not started: no position to judge against.
    NoPosition,
    /// A change the watch already applied touched its footprint (or the
    /// changes since its revision are no longer remembered).
    Outdated,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Answered locally.
    Hit(Permissionship),
    /// Nothing cached for this check.
    Miss,
    /// An entry exists but the watch position is not current enough (or
    /// the stream is down, or older than the caller's session).
    Stale,
}

/// The cache state behind one lock.
#[derive(Debug)]
pub struct Store {
    ids: HashMap<String, u64>,
    entries: HashMap<u64, Entry>,
    index: HashMap<u64, HashSet<u64>>,
    /// Insertion order, for eviction (ids of removed entries are skipped).
    order: VecDeque<u64>,
    next_id: u64,
    bytes: usize,
    max_bytes: usize,
    /// Recent changes, oldest first.
    log: VecDeque<(u64, u64)>,
    /// Changes at or below this revision may be forgotten.
    log_floor: u64,
    /// The revision the watch has applied everything through.
    position: Option<Zookie>,
    /// When a checkpoint last proved the position current; `None` while
    /// the stream is down.
    current_at: Option<Instant>,
}

impl Store {
    /// An empty store holding about `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Store {
            ids: HashMap::new(),
            entries: HashMap::new(),
            index: HashMap::new(),
            order: VecDeque::new(),
            next_id: 0,
            bytes: 0,
            max_bytes,
            log: VecDeque::new(),
            log_floor: 0,
            position: None,
            current_at: None,
        }
    }

    /// The answer for `key` if the position was proved current within
    /// `bound` before `now` and is at least `min_revision`.
    pub fn lookup(&self, key: &str, bound: Duration, min_revision: u64, now: Instant) -> Lookup {
        let Some(entry) = self.ids.get(key).and_then(|id| self.entries.get(id)) else {
            return Lookup::Miss;
        };
        let fresh = self
            .current_at
            .is_some_and(|at| now.saturating_duration_since(at) <= bound)
            && self
                .position
                .as_ref()
                .is_some_and(|p| p.revision() >= min_revision);
        if fresh {
            Lookup::Hit(entry.answer)
        } else {
            Lookup::Stale
        }
    }

    /// Stores an answer computed at `revision` that read `footprint`
    /// (sorted), unless a change already applied makes it stale. Returns
    /// how many entries were evicted to make room.
    pub fn insert(
        &mut self,
        key: String,
        answer: Permissionship,
        revision: u64,
        footprint: Vec<u64>,
    ) -> Result<u64, Refused> {
        let position = self
            .position
            .as_ref()
            .ok_or(Refused::NoPosition)?
            .revision();
        if revision < position {
            if revision < self.log_floor {
                return Err(Refused::Outdated);
            }
            let touched = self
                .log
                .iter()
                .rev()
                .take_while(|(r, _)| *r > revision)
                .any(|(_, k)| *k == ANY_KEY || footprint.binary_search(k).is_ok());
            if touched {
                return Err(Refused::Outdated);
            }
        }
        self.remove_key(&key);
        let id = self.next_id;
        self.next_id += 1;
        for k in &footprint {
            self.index.entry(*k).or_default().insert(id);
        }
        let bytes = ENTRY_OVERHEAD + key.len() + footprint.len() * 8 * 3;
        self.bytes += bytes;
        self.ids.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                answer,
                footprint: footprint.into_boxed_slice(),
                bytes,
            },
        );
        self.order.push_back(id);
        let mut evicted = 0;
        while self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            evicted += u64::from(self.remove(oldest));
        }
        Ok(evicted)
    }

    fn remove_key(&mut self, key: &str) {
        if let Some(id) = self.ids.get(key).copied() {
            self.remove(id);
        }
    }

    /// Removes entry `id`; whether it existed.
    fn remove(&mut self, id: u64) -> bool {
        let Some(entry) = self.entries.remove(&id) else {
            return false;
        };
        self.ids.remove(&entry.key);
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        for k in entry.footprint.iter() {
            if let Some(set) = self.index.get_mut(k) {
                set.remove(&id);
                if set.is_empty() {
                    self.index.remove(k);
                }
            }
        }
        true
    }

    /// Applies the changes of one watch response at `revision` (their
    /// keys; [`ANY_KEY`] voids everything); how many entries it dropped.
    pub fn apply_changes(&mut self, revision: u64, keys: &[u64]) -> u64 {
        for &k in keys {
            self.log.push_back((revision, k));
        }
        while self.log.len() > LOG_CAPACITY {
            if let Some((r, _)) = self.log.pop_front() {
                self.log_floor = self.log_floor.max(r);
            }
        }
        if keys.contains(&ANY_KEY) {
            return self.clear();
        }
        let mut doomed: Vec<u64> = Vec::new();
        for k in keys {
            if let Some(set) = self.index.get(k) {
                doomed.extend(set.iter().copied());
            }
        }
        doomed.sort_unstable();
        doomed.dedup();
        doomed
            .into_iter()
            .map(|id| u64::from(self.remove(id)))
            .sum()
    }

    /// Moves the position to `zookie` (everything through it applied);
    /// `checkpoint` proves it current as of `now`. The first position a
    /// watch reports (after a start without one) also starts the log.
    pub fn advance(&mut self, zookie: Zookie, checkpoint: bool, now: Instant) {
        if self.position.is_none() {
            self.log_floor = self.log_floor.max(zookie.revision());
        }
        if self
            .position
            .as_ref()
            .is_none_or(|p| p.revision() <= zookie.revision())
        {
            self.position = Some(zookie);
        }
        if checkpoint {
            self.current_at = Some(now);
        }
    }

    /// The stream broke: nothing answers until a checkpoint arrives on
    /// the resumed stream.
    pub fn disconnected(&mut self) {
        self.current_at = None;
    }

    /// Forgets every entry, the position and the log (the feed cannot be
    /// resumed: history compacted, tenant gone); how many entries it dropped.
    pub fn reset(&mut self) -> u64 {
        let dropped = self.clear();
        self.position = None;
        self.current_at = None;
        self.log.clear();
        dropped
    }

    /// Drops every entry; how many there were.
    pub fn clear(&mut self) -> u64 {
        let n = self.entries.len() as u64;
        self.ids.clear();
        self.entries.clear();
        self.index.clear();
        self.order.clear();
        self.bytes = 0;
        n
    }

    /// The position to resume the watch from.
    pub fn position(&self) -> Option<&Zookie> {
        self.position.as_ref()
    }

    /// How long ago the position was proved current (`None`: the stream is
    /// down or has not caught up).
    pub fn staleness(&self, now: Instant) -> Option<Duration> {
        self.current_at.map(|at| now.saturating_duration_since(at))
    }

    /// Entries held and their approximate bytes.
    pub fn size(&self) -> (u64, u64) {
        (self.entries.len() as u64, self.bytes as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn z(revision: u64) -> Zookie {
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(&1u64.to_be_bytes());
        bytes.extend_from_slice(&revision.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        Zookie::parse(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)).unwrap()
    }

    const BOUND: Duration = Duration::from_secs(5);

    fn ready(store: &mut Store, revision: u64, now: Instant) {
        store.advance(z(revision), true, now);
    }

    #[test]
    fn answers_only_while_current_and_drops_exactly_what_a_change_touches() {
        let now = Instant::now();
        let mut s = Store::new(1 << 20);
        assert_eq!(
            s.insert("a".into(), Permissionship::Allowed, 5, vec![10, 20]),
            Err(Refused::NoPosition)
        );
        ready(&mut s, 5, now);
        s.insert("a".into(), Permissionship::Allowed, 5, vec![10, 20])
            .unwrap();
        s.insert("b".into(), Permissionship::Denied, 5, vec![30])
            .unwrap();
        assert_eq!(
            s.lookup("a", BOUND, 0, now),
            Lookup::Hit(Permissionship::Allowed)
        );
        assert_eq!(s.lookup("zz", BOUND, 0, now), Lookup::Miss);
        // Past the bound, or older than the session's write: stale.
        assert_eq!(s.lookup("a", BOUND, 0, now + BOUND * 2), Lookup::Stale);
        assert_eq!(s.lookup("a", BOUND, 6, now), Lookup::Stale);
        // A change to key 20 drops `a`, not `b`.
        assert_eq!(s.apply_changes(6, &[20, 99]), 1);
        assert_eq!(s.lookup("a", BOUND, 0, now), Lookup::Miss);
        assert_eq!(
            s.lookup("b", BOUND, 0, now),
            Lookup::Hit(Permissionship::Denied)
        );
        // Disconnected: nothing answers until a checkpoint.
        s.disconnected();
        assert_eq!(s.lookup("b", BOUND, 0, now), Lookup::Stale);
        s.advance(z(7), false, now);
        assert_eq!(s.lookup("b", BOUND, 0, now), Lookup::Stale);
        s.advance(z(7), true, now);
        assert_eq!(
            s.lookup("b", BOUND, 0, now),
            Lookup::Hit(Permissionship::Denied)
        );
        // A schema change drops everything.
        assert_eq!(s.apply_changes(8, &[ANY_KEY]), 1);
        assert_eq!(s.size(), (0, 0));
    }

    #[test]
    fn an_answer_older_than_a_change_already_applied_is_refused() {
        let now = Instant::now();
        let mut s = Store::new(1 << 20);
        ready(&mut s, 10, now);
        s.apply_changes(12, &[7]);
        s.advance(z(12), true, now);
        // Computed at 11, before the change at 12 to what it read.
        assert_eq!(
            s.insert("a".into(), Permissionship::Allowed, 11, vec![7]),
            Err(Refused::Outdated)
        );
        // Unrelated to the change: kept.
        s.insert("b".into(), Permissionship::Allowed, 11, vec![8])
            .unwrap();
        // Older than what the log covers (the watch started at 10).
        assert_eq!(
            s.insert("c".into(), Permissionship::Allowed, 9, vec![8]),
            Err(Refused::Outdated)
        );
        // Newer than the position: kept.
        s.insert("d".into(), Permissionship::Allowed, 15, vec![7])
            .unwrap();
    }

    #[test]
    fn stays_within_its_byte_budget_by_evicting_the_oldest() {
        let now = Instant::now();
        let mut s = Store::new(10_000);
        ready(&mut s, 1, now);
        let mut evicted = 0;
        for i in 0..1_000u64 {
            evicted += s
                .insert(
                    format!("check-{i}"),
                    Permissionship::Allowed,
                    1,
                    vec![i + 1, 5_000],
                )
                .unwrap();
        }
        let (entries, bytes) = s.size();
        assert!(bytes <= 10_000, "{bytes}");
        assert_eq!(entries + evicted, 1_000);
        assert_eq!(
            s.lookup("check-999", BOUND, 0, now),
            Lookup::Hit(Permissionship::Allowed)
        );
        assert_eq!(s.lookup("check-0", BOUND, 0, now), Lookup::Miss);
        // The shared key's index holds only live entries.
        assert_eq!(s.apply_changes(2, &[5_000]), entries);
    }
}
