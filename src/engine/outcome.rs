//! Three-valued answers and how rewrite operators combine them.

use std::collections::BTreeSet;

/// The answer to "does the subject have this permission?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Yes.
    Allowed,
    /// No.
    Denied,
    /// Yes if caveats hold, which the context given cannot decide; names
    /// the caveat parameters that were missing.
    Conditional {
        /// Missing caveat parameters (sorted, de-duplicated).
        missing: BTreeSet<String>,
    },
}

impl Outcome {
    /// A conditional outcome missing `params`.
    pub fn conditional(params: impl IntoIterator<Item = String>) -> Outcome {
        Outcome::Conditional {
            missing: params.into_iter().collect(),
        }
    }

    /// Whether this is [`Outcome::Allowed`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Outcome::Allowed)
    }

    /// Whether this is [`Outcome::Denied`].
    pub fn is_denied(&self) -> bool {
        matches!(self, Outcome::Denied)
    }

    /// Union: allowed if either is, denied if both are, else conditional.
    pub fn or(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Allowed, _) | (_, Outcome::Allowed) => Outcome::Allowed,
            (Outcome::Denied, o) | (o, Outcome::Denied) => o,
            (Outcome::Conditional { missing: mut a }, Outcome::Conditional { missing: b }) => {
                a.extend(b);
                Outcome::Conditional { missing: a }
            }
        }
    }

    /// Intersection: denied if either is, allowed if both are, else
    /// conditional.
    pub fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Denied, _) | (_, Outcome::Denied) => Outcome::Denied,
            (Outcome::Allowed, o) | (o, Outcome::Allowed) => o,
            (Outcome::Conditional { missing: mut a }, Outcome::Conditional { missing: b }) => {
                a.extend(b);
                Outcome::Conditional { missing: a }
            }
        }
    }

    /// Exclusion `self - other`: denied if `self` is denied or `other` is
    /// allowed; allowed if `self` is allowed and `other` denied; else
    /// conditional.
    pub fn minus(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Denied, _) | (_, Outcome::Allowed) => Outcome::Denied,
            (Outcome::Allowed, Outcome::Denied) => Outcome::Allowed,
            (Outcome::Conditional { missing }, Outcome::Denied)
            | (Outcome::Allowed, Outcome::Conditional { missing }) => {
                Outcome::Conditional { missing }
            }
            (Outcome::Conditional { missing: mut a }, Outcome::Conditional { missing: b }) => {
                a.extend(b);
                Outcome::Conditional { missing: a }
            }
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Allowed => f.write_str("ALLOWED"),
            Outcome::Denied => f.write_str("DENIED"),
            Outcome::Conditional { missing } => {
                let names: Vec<&str> = missing.iter().map(String::as_str).collect();
                write!(f, "CONDITIONAL (missing: {})", names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str) -> Outcome {
        Outcome::conditional([p.to_string()])
    }

    #[test]
    fn truth_tables() {
        use Outcome::{Allowed as A, Denied as D};
        assert_eq!(A.or(c("x")), A);
        assert_eq!(D.or(c("x")), c("x"));
        assert_eq!(D.or(D), D);
        assert_eq!(c("x").and(D), D);
        assert_eq!(c("x").and(A), c("x"));
        assert_eq!(A.and(A), A);
        assert_eq!(A.minus(A), D);
        assert_eq!(A.minus(D), A);
        assert_eq!(A.minus(c("x")), c("x"));
        assert_eq!(D.minus(c("x")), D);
        assert_eq!(c("x").minus(D), c("x"));
        assert_eq!(
            c("x").or(c("y")),
            Outcome::conditional(["x".into(), "y".into()])
        );
    }
}
