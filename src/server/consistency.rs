//! The freshness a read asks for, in the node's own terms. Each front door
//! (verdict.v1, SpiceDB's `authzed.api.v1`, OpenFGA) converts its wire
//! message to this and decodes its tokens before the node sees them.

use verdict_storage::Revision;

/// How fresh the snapshot a read evaluates at must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Any revision proven no older than `--max-staleness` (the default).
    #[default]
    MinimizeLatency,
    /// The newest committed revision (a leader round trip).
    FullyConsistent,
    /// This revision or any newer one.
    AtLeastAsFresh(Revision),
    /// Exactly this revision (refused once garbage-collected).
    AtExactSnapshot(Revision),
}

impl Consistency {
    /// The request field this mode came from, for error messages
    /// (the same path in every front door's consistency message).
    pub fn field(&self) -> &'static str {
        match self {
            Consistency::MinimizeLatency => "consistency.minimize_latency",
            Consistency::FullyConsistent => "consistency.fully_consistent",
            Consistency::AtLeastAsFresh(_) => "consistency.at_least_as_fresh",
            Consistency::AtExactSnapshot(_) => "consistency.at_exact_snapshot",
        }
    }
}
