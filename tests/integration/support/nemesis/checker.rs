//! Reads a nemesis history: stale or backwards minimize_latency reads
//! (during the run), then, against every replica's final contents, lost
//! acknowledged writes, resurrected deletes and replicas that differ.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::history::{History, Outcome, WriteKind};

/// Violations by kind (every kind listed, most with none).
#[derive(Debug, Default)]
pub struct Report(pub BTreeMap<&'static str, Vec<String>>);

/// Every kind the checker counts.
pub const KINDS: [&str; 8] = [
    "stale_read",
    "backwards_read",
    "read_your_writes",
    "new_enemy",
    "lost_write",
    "resurrected_delete",
    "replicas_differ",
    "panic",
];

impl Report {
    /// An empty report listing every kind.
    pub fn new() -> Report {
        Report(KINDS.iter().map(|k| (*k, Vec::new())).collect())
    }

    /// Adds a violation.
    pub fn add(&mut self, kind: &'static str, what: String) {
        self.0.entry(kind).or_default().push(what);
    }

    /// Total violations.
    pub fn total(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// `kind: count` pairs on one line.
    pub fn counts(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k} {}", v.len()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The first few violations of each kind.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.0 {
            for what in v.iter().take(5) {
                out.push_str(&format!("  {k}: {what}\n"));
            }
        }
        out
    }
}

/// No minimize_latency answer older than `bound` (plus `slack` for
/// scheduling) when it was asked: every write acknowledged more than that
/// before the question must be in the answer. And one client's answers
/// from one node never go backwards.
pub fn check_reads(history: &History, bound: Duration, slack: Duration, report: &mut Report) {
    let mut acked: Vec<(std::time::Instant, u64)> = history
        .writes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|w| match w.outcome {
            Outcome::Ok(r) => Some((w.done, r)),
            _ => None,
        })
        .collect();
    acked.sort();
    // Highest revision acknowledged at or before each point.
    let mut high = 0;
    let prefix: Vec<(std::time::Instant, u64)> = acked
        .iter()
        .map(|(t, r)| {
            high = high.max(*r);
            (*t, high)
        })
        .collect();
    let reads = history.reads.lock().unwrap().clone();
    let mut last: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for r in &reads {
        if let Some(cutoff) = r.asked.checked_sub(bound + slack) {
            let owed = match prefix.partition_point(|(t, _)| *t < cutoff) {
                0 => 0,
                i => prefix[i - 1].1,
            };
            if r.revision < owed {
                report.add(
                    "stale_read",
                    format!(
                        "client {} on node {}: answered at revision {}, but {owed} was acknowledged more than {bound:?} before it asked",
                        r.client, r.node, r.revision
                    ),
                );
            }
        }
    }
    let mut ordered = reads;
    ordered.sort_by_key(|r| (r.client, r.asked));
    for r in &ordered {
        if let Some(prev) = last.insert((r.client, r.node), r.revision) {
            if r.revision < prev {
                report.add(
                    "backwards_read",
                    format!(
                        "client {} on node {}: revision {prev} then {}",
                        r.client, r.node, r.revision
                    ),
                );
            }
        }
    }
}

/// What each key must hold at the end: `Some(present)` when every write
/// to it ended definitely (its last acknowledged write decides), `None`
/// when one is unknown (either state, as long as replicas agree).
pub fn expected(history: &History) -> BTreeMap<String, Option<bool>> {
    let mut writes = history.writes.lock().unwrap().clone();
    writes.sort_by_key(|w| w.invoked);
    let mut out: BTreeMap<String, Option<bool>> = BTreeMap::new();
    for w in &writes {
        let entry = out.entry(w.key.clone()).or_insert(Some(false));
        match (w.outcome, *entry) {
            (_, None) => {}
            (Outcome::Unknown, _) => *entry = None,
            (Outcome::Fail, _) => {}
            (Outcome::Ok(_), Some(_)) => *entry = Some(w.kind != WriteKind::Delete),
        }
    }
    out
}

/// Every replica holds the same relationships; no acknowledged write is
/// missing; no acknowledged delete came back.
pub fn check_final(
    history: &History,
    replicas: &BTreeMap<u64, BTreeSet<String>>,
    report: &mut Report,
) -> (usize, usize) {
    let mut first: Option<(u64, &BTreeSet<String>)> = None;
    for (id, contents) in replicas {
        match first {
            None => first = Some((*id, contents)),
            Some((fid, f)) if f != contents => {
                let only_first: Vec<_> = f.difference(contents).take(3).collect();
                let only_this: Vec<_> = contents.difference(f).take(3).collect();
                report.add(
                    "replicas_differ",
                    format!("node {fid} vs node {id}: only on {fid} {only_first:?}, only on {id} {only_this:?}"),
                );
            }
            Some(_) => {}
        }
    }
    let expected = expected(history);
    let (mut determinate, mut indeterminate) = (0, 0);
    for (key, want) in &expected {
        let Some(present) = want else {
            indeterminate += 1;
            continue;
        };
        determinate += 1;
        for (id, contents) in replicas {
            let has = contents.contains(key);
            if *present && !has {
                report.add(
                    "lost_write",
                    format!("{key} acknowledged, missing on node {id}"),
                );
            }
            if !*present && has {
                report.add(
                    "resurrected_delete",
                    format!("{key} deleted (acknowledged), present on node {id}"),
                );
            }
        }
    }
    (determinate, indeterminate)
}

#[cfg(test)]
mod tests {
    use super::super::history::Write;
    use super::*;
    use std::time::Instant;

    fn write(key: &str, kind: WriteKind, outcome: Outcome, at: Instant) -> Write {
        Write {
            client: 1,
            key: key.into(),
            kind,
            node: 1,
            invoked: at,
            done: at,
            outcome,
        }
    }

    #[test]
    fn the_checker_finds_what_it_looks_for() {
        let h = History::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        h.write(write("a", WriteKind::Touch, Outcome::Ok(5), ms(0)));
        h.write(write("b", WriteKind::Touch, Outcome::Ok(6), ms(1)));
        h.write(write("b", WriteKind::Delete, Outcome::Ok(7), ms(2)));
        h.write(write("c", WriteKind::Touch, Outcome::Unknown, ms(3)));
        h.write(write("d", WriteKind::Create, Outcome::Fail, ms(4)));
        let mut replicas = BTreeMap::new();
        replicas.insert(1, BTreeSet::from(["a".to_string(), "c".to_string()]));
        replicas.insert(2, BTreeSet::from(["b".to_string()]));
        let mut r = Report::new();
        let (det, indet) = check_final(&h, &replicas, &mut r);
        assert_eq!((det, indet), (3, 1));
        assert_eq!(r.0["replicas_differ"].len(), 1);
        assert_eq!(r.0["lost_write"].len(), 1, "a missing on node 2");
        assert_eq!(r.0["resurrected_delete"].len(), 1, "b present on node 2");

        // A read 2 s after revision 7 was acknowledged, answered at 5.
        h.read(super::super::history::Read {
            client: 1,
            node: 2,
            asked: ms(2_000),
            revision: 5,
        });
        h.read(super::super::history::Read {
            client: 1,
            node: 2,
            asked: ms(2_100),
            revision: 4,
        });
        let mut r = Report::new();
        check_reads(
            &h,
            Duration::from_secs(1),
            Duration::from_millis(100),
            &mut r,
        );
        assert_eq!(r.0["stale_read"].len(), 2);
        assert_eq!(r.0["backwards_read"].len(), 1);
    }
}
