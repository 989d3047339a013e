//! CopyRelation: the backfill step of a schema migration. Copies (or
//! moves) the tuples of `type#from` to `type#to` batch by batch, reading
//! every batch at one fixed snapshot and resuming from a cursor, so a
//! crashed run continues where it stopped.
//!
//! Each batch is built under the commit lock against the latest state: a
//! source tuple deleted since the snapshot is skipped (a revocation during
//! the migration is never undone), a destination that already exists is
//! left as written, and the copy plus the source delete land in one
//! revision (no check sees a tuple under neither name).

use std::sync::Arc;

use base64::Engine as _;
use verdict_storage::{
    Cursor, RelationStore, Revision, RocksStore, Tuple, TupleFilter, TupleReader, WriteBatch,
};

use super::convert::zookie_to_pb;
use super::error::ApiError;
use super::pb;
use crate::relationships::validate_against_schema;
use crate::server::state::AppState;

/// Tuples per batch when the request names none.
pub const DEFAULT_BATCH: u32 = 500;
/// The largest batch a request may ask for.
pub const MAX_BATCH: u32 = 5000;

fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// The source tuple rewritten to the destination relation.
fn rewrite(t: &Tuple, req: &pb::CopyRelationRequest) -> Tuple {
    let mut out = t.clone();
    out.relation = req.to_relation.clone();
    if !req.from_subject_relation.is_empty()
        && out.subject.relation.as_deref() == Some(req.from_subject_relation.as_str())
    {
        out.subject.relation = if req.to_subject_relation.is_empty() {
            None
        } else {
            Some(req.to_subject_relation.clone())
        };
    }
    out
}

/// Counts of one batch.
struct BatchStats {
    copied: u64,
    deleted: u64,
    skipped: u64,
    next: Option<Cursor>,
}

/// Copies one batch.
///
/// # Errors
/// INVALID_ARGUMENT for bad fields, snapshot or cursor; FAILED_PRECONDITION
/// when the destination does not accept a tuple under the current schema
/// or the snapshot was garbage-collected.
pub async fn copy_relation(
    state: &Arc<AppState>,
    req: pb::CopyRelationRequest,
) -> Result<pb::CopyRelationResponse, ApiError> {
    let tenant = state.tenant(&req.tenant)?;
    for (field, value) in [
        ("resource_type", &req.resource_type),
        ("from_relation", &req.from_relation),
        ("to_relation", &req.to_relation),
    ] {
        if value.is_empty() {
            return Err(invalid(field, "is required"));
        }
    }
    if req.from_relation == req.to_relation && req.from_subject_relation.is_empty() {
        return Err(invalid(
            "to_relation",
            "is the same as `from_relation` and no subject relation is rewritten",
        ));
    }
    let batch_size = match req.batch_size {
        0 => DEFAULT_BATCH,
        n if n > MAX_BATCH => {
            return Err(invalid(
                "batch_size",
                format!("{n} is over the limit of {MAX_BATCH}"),
            ))
        }
        n => n,
    } as usize;
    let snapshot = match &req.snapshot {
        Some(z) => {
            let r = state
                .zookies
                .decode(&z.token)
                .map_err(|source| ApiError::Zookie {
                    field: "snapshot".into(),
                    source,
                })?;
            if r > state.store.applied_revision() {
                return Err(invalid(
                    "snapshot",
                    "names a revision this node has not applied",
                ));
            }
            let floor = state.store.gc_floor();
            if r < floor {
                return Err(ApiError::FailedPrecondition(format!(
                    "`snapshot` names revision {}, which was garbage-collected (oldest readable: {}); restart the copy",
                    r.0, floor.0
                )));
            }
            r
        }
        None => state.store.applied_revision(),
    };
    let cursor = if req.cursor.is_empty() {
        None
    } else {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&req.cursor)
            .map_err(|_| invalid("cursor", "is not a cursor returned by CopyRelation"))?;
        Some(Cursor::from_bytes(bytes))
    };
    let st = state.clone();
    let t = tenant.clone();
    let (outcome, stats) = state
        .committer
        .propose_planned(&tenant, move |store: &RocksStore, applied: Revision| {
            let filter = TupleFilter {
                relation: Some(req.from_relation.clone()),
                ..TupleFilter::resource_type(req.resource_type.clone())
            };
            let page = store
                .snapshot(&t, snapshot)?
                .scan(&filter, cursor.as_ref(), batch_size)
                .map_err(|e| match e {
                    verdict_storage::StorageError::InvalidCursor => {
                        invalid("cursor", "is malformed or belongs to another copy")
                    }
                    other => other.into(),
                })?;
            let now = store.snapshot(&t, applied)?;
            let schema = st.engine_at(&t, applied)?;
            let mut batch = WriteBatch::new();
            let mut stats = BatchStats {
                copied: 0,
                deleted: 0,
                skipped: 0,
                next: page.cursor,
            };
            for source in page.tuples {
                // The tuple as it is now; gone = revoked since the snapshot.
                let Some(current) = now.tuple(&source)? else {
                    stats.skipped += 1;
                    continue;
                };
                let target = rewrite(&current, &req);
                if now.tuple(&target)?.is_none() {
                    validate_against_schema(schema.engine.schema(), &target).map_err(|e| {
                        ApiError::FailedPrecondition(format!(
                            "cannot copy `{current}` to `{target}`: {e}; add the destination to the schema first"
                        ))
                    })?;
                    batch = batch.touch(target);
                    stats.copied += 1;
                }
                if req.delete_source {
                    batch = batch.delete(current);
                    stats.deleted += 1;
                }
            }
            Ok((batch, stats))
        })
        .await?;
    let wrote = stats.copied + stats.deleted > 0;
    Ok(pb::CopyRelationResponse {
        snapshot: Some(zookie_to_pb(snapshot, &state.zookies)),
        written_at: wrote.then(|| zookie_to_pb(outcome.revision, &state.zookies)),
        copied: stats.copied,
        deleted: stats.deleted,
        skipped: stats.skipped,
        cursor: stats
            .next
            .map(|c| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.as_bytes()))
            .unwrap_or_default(),
    })
}
