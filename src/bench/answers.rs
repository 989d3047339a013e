//! Expected answers (`resource#permission@subject<TAB>allowed|denied|
//! conditional`, as SpiceDB's benchmark driver writes them) and the
//! mismatches a run found.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Expected answers by check line.
#[derive(Debug, Default)]
pub struct Answers {
    by_check: HashMap<String, String>,
}

/// Why an answers file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("answers file line {line}: {reason}")]
pub struct AnswersError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl Answers {
    /// Parses answers text (blank lines skipped).
    ///
    /// # Errors
    /// A line without a tab or with an unknown answer.
    pub fn parse(text: &str) -> Result<Answers, AnswersError> {
        let mut by_check = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (check, answer) = line.split_once('\t').ok_or_else(|| AnswersError {
                line: i + 1,
                reason: "expected `CHECK<TAB>ANSWER`".into(),
            })?;
            let answer = answer.trim();
            if !matches!(answer, "allowed" | "denied" | "conditional") {
                return Err(AnswersError {
                    line: i + 1,
                    reason: format!("answer `{answer}` is not allowed, denied or conditional"),
                });
            }
            by_check.insert(check.trim().to_string(), answer.to_string());
        }
        Ok(Answers { by_check })
    }

    /// The expected answer to `check`, if listed.
    pub fn expected(&self, check: &str) -> Option<&str> {
        self.by_check.get(check).map(String::as_str)
    }

    /// How many answers are listed.
    pub fn len(&self) -> usize {
        self.by_check.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.by_check.is_empty()
    }
}

/// Disagreements seen during a run, by check (each counted once).
#[derive(Debug, Default)]
pub struct Mismatches {
    seen: Mutex<BTreeMap<String, (String, String)>>,
}

impl Mismatches {
    /// Records that `check` answered `got` where `expected` was listed.
    pub fn record(&self, check: &str, expected: &str, got: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.entry(check.to_string())
                .or_insert_with(|| (expected.to_string(), got.to_string()));
        }
    }

    /// Distinct checks that disagreed.
    pub fn count(&self) -> u64 {
        self.seen.lock().map_or(0, |s| s.len() as u64)
    }

    /// `check: expected X, got Y` lines, sorted, at most `limit`.
    pub fn list(&self, limit: usize) -> Vec<String> {
        self.seen.lock().map_or_else(
            |_| Vec::new(),
            |s| {
                s.iter()
                    .take(limit)
                    .map(|(c, (e, g))| format!("{c}: expected {e}, got {g}"))
                    .collect()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_bad_lines() {
        let a =
            Answers::parse("doc:1#view@user:a\tallowed\n\ndoc:2#view@user:a\tdenied\n").unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a.expected("doc:1#view@user:a"), Some("allowed"));
        assert_eq!(a.expected("doc:3#view@user:a"), None);
        let e = Answers::parse("doc:1#view@user:a\tmaybe\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(Answers::parse("no tab here\n").is_err());
    }

    #[test]
    fn mismatches_count_each_check_once() {
        let m = Mismatches::default();
        m.record("b", "allowed", "denied");
        m.record("a", "denied", "allowed");
        m.record("b", "allowed", "denied");
        assert_eq!(m.count(), 2);
        assert_eq!(
            m.list(1),
            vec!["a: expected denied, got allowed".to_string()]
        );
    }
}
