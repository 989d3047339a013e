//! Where a check is evaluated: on the async worker that received it when
//! no other check is being evaluated there, otherwise on the blocking pool.
//!
//! Handing a ~100 µs evaluation to the blocking pool and back costs two
//! thread wake-ups, a large share of a lone check's latency (cold p50 at
//! concurrency 1: 206 → 125 µs inline). Under concurrency, evaluating
//! inline would hold up the workers that drive every connection's I/O
//! (cold conc. 8 fell from ~14k to ~8k checks/s), so only one evaluation
//! runs inline at a time and the rest go to the pool as before.

use std::sync::atomic::{AtomicBool, Ordering};

/// Admits at most one inline evaluation at a time.
#[derive(Debug, Default)]
pub struct InlineGate {
    busy: AtomicBool,
}

/// The right to evaluate inline; released on drop (even by a panic).
#[derive(Debug)]
pub struct InlinePass<'a>(&'a InlineGate);

impl Drop for InlinePass<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

impl InlineGate {
    /// A free gate.
    pub const fn new() -> Self {
        InlineGate {
            busy: AtomicBool::new(false),
        }
    }

    /// The pass when no other evaluation is inline, else `None`.
    pub fn try_pass(&self) -> Option<InlinePass<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then_some(InlinePass(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_at_a_time_released_on_drop() {
        let gate = InlineGate::new();
        let first = gate.try_pass();
        assert!(first.is_some());
        assert!(gate.try_pass().is_none(), "a second inline evaluation");
        drop(first);
        assert!(gate.try_pass().is_some(), "released on drop");
    }

    #[test]
    fn released_when_the_evaluation_panics() {
        let gate = InlineGate::new();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _pass = gate.try_pass();
            panic!("evaluation failed");
        }));
        assert!(caught.is_err());
        assert!(gate.try_pass().is_some());
    }
}
