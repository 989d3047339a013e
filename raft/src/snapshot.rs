//! The snapshot format and the current snapshot on disk.
//!
//! ```text
//! "VSNAP2\n" | u32 len | tenant names (JSON) | u32 len | tenant keys (JSON) | pairs
//! "VSNAP1\n" | u32 len | tenant names (JSON) | pairs          (read only)
//! pairs = { u32 klen | key | u32 vlen | value }*
//! ```
//! The keys are [`KeyRecord`]s (hashes only, never a token).
//! The pairs are a raw, consistent dump of the tuple store (MVCC history,
//! changelog, schema versions and the applied marker included), so an
//! installed replica answers exactly like the one that built it.
//! On disk: `snapshot.data` then `snapshot.meta` (JSON `SnapshotMeta`), each
//! written to a temporary file, fsynced and renamed.

use std::path::{Path, PathBuf};

use verdict_storage::{Revision, RocksStore};

use crate::keys::KeyRecord;

const MAGIC: &[u8] = b"VSNAP2\n";
/// Snapshots built before keys were replicated (no keys section).
const MAGIC_V1: &[u8] = b"VSNAP1\n";

/// Why a snapshot could not be built, read or installed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("snapshot data is malformed: {0}")]
    Malformed(&'static str),
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("storage: {0}")]
    Storage(#[from] verdict_storage::StorageError),
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Dumps `store`, `tenants` and `keys`; returns the bytes and the dump's
/// revision.
pub(crate) fn encode(
    store: &RocksStore,
    tenants: &[String],
    keys: &[KeyRecord],
) -> Result<(Vec<u8>, Revision), SnapshotError> {
    let mut out = MAGIC.to_vec();
    put_bytes(&mut out, &serde_json::to_vec(tenants)?);
    put_bytes(&mut out, &serde_json::to_vec(keys)?);
    let revision = store.export_raw(&mut |k, v| {
        put_bytes(&mut out, k);
        put_bytes(&mut out, v);
        Ok(())
    })?;
    Ok((out, revision))
}

/// A parsed snapshot.
pub(crate) struct Decoded<'a> {
    pub(crate) tenants: Vec<String>,
    /// The tenant keys; `None` for a VSNAP1 snapshot, which predates
    /// replicated keys and so says nothing about them.
    pub(crate) keys: Option<Vec<KeyRecord>>,
    rest: &'a [u8],
}

impl Decoded<'_> {
    /// The key/value pairs (already validated by [`decode`]).
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let mut rest = self.rest;
        std::iter::from_fn(move || {
            let k = take(&mut rest).ok()?;
            let v = take(&mut rest).ok()?;
            Some((k.to_vec(), v.to_vec()))
        })
    }
}

fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], SnapshotError> {
    let (len, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(SnapshotError::Malformed("truncated length"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if tail.len() < len {
        return Err(SnapshotError::Malformed("truncated field"));
    }
    let (b, tail) = tail.split_at(len);
    *rest = tail;
    Ok(b)
}

/// Parses and validates `data` completely before anything is installed.
pub(crate) fn decode(data: &[u8]) -> Result<Decoded<'_>, SnapshotError> {
    let (mut rest, with_keys) = match (data.strip_prefix(MAGIC), data.strip_prefix(MAGIC_V1)) {
        (Some(rest), _) => (rest, true),
        (None, Some(rest)) => (rest, false),
        (None, None) => return Err(SnapshotError::Malformed("bad magic")),
    };
    let tenants: Vec<String> = serde_json::from_slice(take(&mut rest)?)?;
    let keys = if with_keys {
        Some(serde_json::from_slice(take(&mut rest)?)?)
    } else {
        None
    };
    let body = rest;
    while !rest.is_empty() {
        take(&mut rest)?;
        take(&mut rest)?;
    }
    Ok(Decoded {
        tenants,
        keys,
        rest: body,
    })
}

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    Ok(verdict_storage::durable_file::write_atomic(path, bytes)?)
}

/// Paths of the current snapshot in `dir`.
pub(crate) fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("snapshot.data"), dir.join("snapshot.meta"))
}
