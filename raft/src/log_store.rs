//! The Raft log in its own RocksDB: entries under `l` + be64 index (in
//! [`crate::codec`]'s encoding), the vote, the committed and the last
//! purged log id under `m/…` (JSON). Appends
//! and votes are written with fsync before openraft is told they are
//! durable.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use rocksdb::{Options, WriteBatch, WriteOptions, DB};
use serde::{de::DeserializeOwned, Serialize};

use crate::{codec, io_err, NodeId, StorageError, TypeConfig};

const VOTE: &[u8] = b"m/vote";
const COMMITTED: &[u8] = b"m/committed";
const PURGED: &[u8] = b"m/purged";

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'l';
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn index_of(key: &[u8]) -> Option<u64> {
    let (tag, rest) = key.split_first()?;
    if *tag != b'l' {
        return None;
    }
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// The RocksDB-backed Raft log. Cheap to clone (one shared DB).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    sync: bool,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.db.path())
            .finish()
    }
}

impl LogStore {
    /// Opens (creating if needed) the log in directory `path`; `sync` =
    /// fsync every append and vote (turn off only in tests).
    ///
    /// # Errors
    /// RocksDB cannot open the directory.
    pub fn open(path: impl AsRef<Path>, sync: bool) -> Result<LogStore, rocksdb::Error> {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.set_max_background_jobs(1);
        let db = DB::open(&o, path)?;
        Ok(LogStore {
            db: Arc::new(db),
            sync,
        })
    }

    fn synced(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync);
        w
    }

    fn get<T: DeserializeOwned>(
        &self,
        key: &[u8],
        make: fn(openraft::AnyError) -> StorageIOError<NodeId>,
    ) -> Result<Option<T>, StorageError> {
        match self.db.get(key).map_err(|e| io_err(make, &e))? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| io_err(make, &e)),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
        make: fn(openraft::AnyError) -> StorageIOError<NodeId>,
    ) -> Result<(), StorageError> {
        let v = serde_json::to_vec(value).map_err(|e| io_err(make, &e))?;
        let opts = if sync {
            self.synced()
        } else {
            WriteOptions::default()
        };
        self.db.put_opt(key, v, &opts).map_err(|e| io_err(make, &e))
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, StorageError> {
        let mut it = self.db.raw_iterator();
        it.seek_for_prev(entry_key(u64::MAX));
        match (it.key().and_then(index_of), it.value()) {
            (Some(_), Some(v)) => {
                let e: Entry<TypeConfig> =
                    codec::decode(v).map_err(|e| io_err(StorageIOError::read_logs, &e))?;
                Ok(Some(e.log_id))
            }
            _ => {
                it.status()
                    .map_err(|e| io_err(StorageIOError::read_logs, &e))?;
                Ok(None)
            }
        }
    }

    /// Number of entries currently stored (for tests and metrics).
    pub fn len(&self) -> usize {
        let mut it = self.db.raw_iterator();
        it.seek(entry_key(0));
        let mut n = 0;
        while it.valid() && it.key().and_then(index_of).is_some() {
            n += 1;
            it.next();
        }
        n
    }

    /// True when no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = range.end_bound().cloned();
        // Decoding a batch of large import entries takes milliseconds:
        // off the async workers, where openraft's core sends heartbeats.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || read_entries(&db, start, end))
            .await
            .map_err(|e| io_err(StorageIOError::read_logs, &e))?
    }
}

/// The entries from index `start` through `end`, decoded.
fn read_entries(
    db: &DB,
    start: u64,
    end: Bound<u64>,
) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
    let range = (Bound::Included(start), end);
    let mut out = Vec::new();
    let mut it = db.raw_iterator();
    it.seek(entry_key(start));
    while it.valid() {
        let Some(index) = it.key().and_then(index_of) else {
            break;
        };
        if !range.contains(&index) {
            break;
        }
        if let Some(v) = it.value() {
            let e: Entry<TypeConfig> =
                codec::decode(v).map_err(|e| io_err(StorageIOError::read_logs, &e))?;
            out.push(e);
        }
        it.next();
    }
    it.status()
        .map_err(|e| io_err(StorageIOError::read_logs, &e))?;
    Ok(out)
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId<NodeId>> =
            self.get(PURGED, StorageIOError::read_logs)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put(VOTE, vote, true, StorageIOError::write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get(VOTE, StorageIOError::read_vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError> {
        self.put(COMMITTED, &committed, false, StorageIOError::write_logs)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self
            .get::<Option<LogId<NodeId>>>(COMMITTED, StorageIOError::read_logs)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Encoding large import entries and the fsync take milliseconds:
        // both off the async workers, which keep serving reads and
        // openraft's heartbeats meanwhile. Awaited, so appends stay in order.
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let db = self.db.clone();
        let sync = self.sync;
        let result = tokio::task::spawn_blocking(move || {
            let mut wb = WriteBatch::default();
            for e in &entries {
                let v = codec::encode(e).map_err(|err| err.to_string())?;
                wb.put(entry_key(e.log_id.index), v);
            }
            let mut w = WriteOptions::default();
            w.set_sync(sync);
            db.write_opt(wb, &w).map_err(|err| err.to_string())
        })
        .await
        .map_err(|e| io_err(StorageIOError::write_logs, &e))?;
        let io = result.clone().map_err(std::io::Error::other);
        callback.log_io_completed(io);
        result.map_err(|e| io_err(StorageIOError::write_logs, &std::io::Error::other(e)))
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        let mut wb = WriteBatch::default();
        wb.delete_range(entry_key(log_id.index), entry_key(u64::MAX));
        wb.delete(entry_key(u64::MAX));
        self.db
            .write_opt(wb, &self.synced())
            .map_err(|e| io_err(StorageIOError::write_logs, &e))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.put(PURGED, &log_id, true, StorageIOError::write_logs)?;
        let mut wb = WriteBatch::default();
        wb.delete_range(entry_key(0), entry_key(log_id.index.saturating_add(1)));
        self.db
            .write_opt(wb, &WriteOptions::default())
            .map_err(|e| io_err(StorageIOError::write_logs, &e))
    }
}
