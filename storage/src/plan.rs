// #[PerformanceCriticalPath]
//! Turns a [`WriteBatch`] into the exact changes to write, against the state
//! before the batch (read through any [`TupleReader`]). Shared by every
//! store so they agree on batch semantics; pure apart from the reads.

use std::collections::{BTreeMap, HashMap};

use crate::batch::{Change, ChangeKind, Op, Precondition, SchemaVersionRecord, WriteBatch};
use crate::error::{Result, StorageError};
use crate::keys;
use crate::store::TupleReader;
use crate::tuple::Tuple;

/// The effect of a batch.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Final state per touched tuple, keyed by forward body (forward order):
    /// `Some` = live with this payload, `None` = deleted.
    pub(crate) writes: BTreeMap<Vec<u8>, (Tuple, bool)>,
    /// Changelog entries, in operation order.
    pub(crate) changes: Vec<Change>,
    /// Schema version to store, if any.
    pub(crate) schema: Option<SchemaVersionRecord>,
    /// A delete-by-filter stopped at its limit with matches left.
    pub(crate) delete_truncated: bool,
}

fn fwd_body(t: &Tuple) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    keys::push_fwd_body(&mut b, t);
    b
}

/// Validates the batch without reading anything.
pub(crate) fn validate(batch: &WriteBatch) -> Result<()> {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut schema_seen = false;
    for (index, op) in batch.ops.iter().enumerate() {
        let tuple = match op {
            Op::Create(t) | Op::Touch(t) | Op::Delete(t) => t,
            Op::DeleteByFilter { filter, .. } => {
                filter
                    .validate()
                    .map_err(|source| StorageError::InvalidOperation { index, source })?;
                continue;
            }
            Op::PutSchema(_) => {
                if schema_seen {
                    return Err(StorageError::OperationNotAllowed {
                        index,
                        reason: "a batch may store at most one schema version",
                    });
                }
                schema_seen = true;
                continue;
            }
        };
        tuple
            .validate()
            .map_err(|source| StorageError::InvalidOperation { index, source })?;
        if let Some(&first_index) = seen.get(&fwd_body(tuple)) {
            return Err(StorageError::DuplicateTuple {
                index,
                first_index,
                tuple: tuple.to_string(),
            });
        }
        seen.insert(fwd_body(tuple), index);
    }
    for (index, p) in batch.preconditions.iter().enumerate() {
        let f = match p {
            Precondition::MustMatch(f) | Precondition::MustNotMatch(f) => f,
        };
        f.validate()
            .map_err(|source| StorageError::InvalidOperation {
                index: batch.ops.len() + index,
                source,
            })?;
    }
    Ok(())
}

/// The final state of the tuples earlier batches of a group wrote, keyed
/// like [`Plan::writes`] (`true` = live).
pub(crate) type Overlay = BTreeMap<Vec<u8>, (Tuple, bool)>;

/// Plans `batch` against `base` (the state before it). `validate` must have passed.
pub(crate) fn plan<R: TupleReader + ?Sized>(base: &R, batch: &WriteBatch) -> Result<Plan> {
    plan_over(base, &Overlay::new(), batch)
}

/// Whether a live tuple of `base` overlaid with `earlier` matches `f`.
fn any_match<R: TupleReader + ?Sized>(
    base: &R,
    earlier: &Overlay,
    f: &crate::filter::TupleFilter,
) -> Result<bool> {
    if earlier.values().any(|(t, live)| *live && f.matches(t)) {
        return Ok(true);
    }
    if earlier.is_empty() {
        return Ok(!base.scan(f, None, 1)?.tuples.is_empty());
    }
    // Base matches the overlay deleted (or rewrote, already looked at
    // above) do not count: page on until one it did not touch.
    let mut cursor = None;
    loop {
        let page = base.scan(f, cursor.as_ref(), 256)?;
        if page
            .tuples
            .iter()
            .any(|t| !earlier.contains_key(&fwd_body(t)))
        {
            return Ok(true);
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(false),
        }
    }
}

/// Plans `batch` against `base` overlaid with `earlier` (what the earlier
/// batches of the same group left): its preconditions and operations see
/// them. The plan's `writes` and `changes` are this batch's alone; the
/// caller merges them into the overlay when it keeps the batch.
/// `validate` must have passed.
pub(crate) fn plan_over<R: TupleReader + ?Sized>(
    base: &R,
    earlier: &Overlay,
    batch: &WriteBatch,
) -> Result<Plan> {
    for (index, p) in batch.preconditions.iter().enumerate() {
        let (f, must, kind) = match p {
            Precondition::MustMatch(f) => (f, true, "must match"),
            Precondition::MustNotMatch(f) => (f, false, "must not match"),
        };
        if any_match(base, earlier, f)? != must {
            return Err(StorageError::PreconditionFailed { index, kind });
        }
    }

    let mut plan = Plan::default();
    // The tuple at `key` as the view has it: this batch's writes, then
    // the earlier batches', then the base.
    let current = |plan: &Plan, key: &[u8], t: &Tuple| -> Result<Option<Tuple>> {
        match plan.writes.get(key).or_else(|| earlier.get(key)) {
            Some((cur, live)) => Ok(live.then(|| cur.clone())),
            None => base.tuple(t),
        }
    };
    // Current view = base overlaid with earlier, then with plan.writes.
    for (index, op) in batch.ops.iter().enumerate() {
        match op {
            Op::Create(t) | Op::Touch(t) => {
                let key = fwd_body(t);
                let exists = match plan.writes.get(&key).or_else(|| earlier.get(&key)) {
                    Some((_, live)) => *live,
                    None => base.tuple(t)?.is_some(),
                };
                let kind = if matches!(op, Op::Create(_)) {
                    if exists {
                        return Err(StorageError::TupleAlreadyExists {
                            index,
                            tuple: t.to_string(),
                        });
                    }
                    ChangeKind::Create
                } else {
                    ChangeKind::Touch
                };
                plan.writes.insert(key, (t.clone(), true));
                plan.changes.push(Change {
                    kind,
                    tuple: t.clone(),
                });
            }
            Op::Delete(t) => {
                let key = fwd_body(t);
                if let Some(cur) = current(&plan, &key, t)? {
                    plan.writes.insert(key, (cur.clone(), false));
                    plan.changes.push(Change {
                        kind: ChangeKind::Delete,
                        tuple: cur,
                    });
                }
            }
            Op::DeleteByFilter { filter, limit } => {
                // Base matches may be hidden by earlier deletes (of this
                // batch or of earlier ones), so fetch enough to still fill
                // `limit` (+1 to detect truncation).
                let hidden = plan.writes.len().saturating_add(earlier.len());
                let want = limit.map(|l| l.saturating_add(hidden).saturating_add(1));
                let mut candidates: BTreeMap<Vec<u8>, Tuple> = BTreeMap::new();
                let mut cursor = None;
                loop {
                    let page =
                        base.scan(filter, cursor.as_ref(), want.unwrap_or(1024).min(1024))?;
                    for t in page.tuples {
                        candidates.insert(fwd_body(&t), t);
                    }
                    cursor = page.cursor;
                    if cursor.is_none() || want.is_some_and(|w| candidates.len() >= w) {
                        break;
                    }
                }
                // Apply the overlays (earlier batches', then this one's):
                // hide deleted, update payloads, add created.
                for (key, (t, live)) in earlier.iter().chain(plan.writes.iter()) {
                    if *live && filter.matches(t) {
                        candidates.insert(key.clone(), t.clone());
                    } else {
                        candidates.remove(key);
                    }
                }
                // INVARIANT (limited-delete): when the base scan stopped early it
                // returned at least `limit + hidden + 1` tuples up to some key H; the
                // overlays hide at most `hidden` of them, so the first `limit + 1`
                // candidates are all at or below H, where the view is fully known.
                let max = limit.unwrap_or(usize::MAX);
                if candidates.len() > max {
                    plan.delete_truncated = true;
                }
                for (key, t) in candidates.into_iter().take(max) {
                    plan.writes.insert(key, (t.clone(), false));
                    plan.changes.push(Change {
                        kind: ChangeKind::Delete,
                        tuple: t,
                    });
                }
            }
            Op::PutSchema(record) => {
                plan.schema = Some(record.clone());
            }
        }
    }
    Ok(plan)
}
