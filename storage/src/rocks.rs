// #[PerformanceCriticalPath]
//! [`RocksStore`]: the RocksDB-backed [`RelationStore`]. This is the only
//! module that names `rocksdb`; its types never appear in the public API.
//!
//! Durability: every `apply`, `mark_applied` and the end of `bulk_import` is
//! one RocksDB write batch written to the WAL with `fsync` when
//! [`RocksOptions::sync_writes`] is on (the default), so an acknowledged
//! batch survives `kill -9` and power loss. Turn it off only when another
//! log (Raft) is the durability source and replays entries after a crash
//! (`apply` of an already-applied revision is a no-op). Bulk imports write
//! with the WAL disabled, flush the memtables, and then commit the revision
//! marker synced; an import interrupted by a crash is removed on reopen.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, DBRawIteratorWithThreadMode, Options, ReadOptions,
    SliceTransform, SnapshotWithThreadMode, WriteOptions, DB,
};

use crate::batch::{
    ApplyOutcome, ApplyStatus, Change, ChangeBatch, ChangeKind, GcStats, StoredSchema, WriteBatch,
};
use crate::error::{Result, StorageError};
use crate::filter::{IdFilter, SubjectRelationFilter, TupleFilter};
use crate::keys::{self, REV_SUFFIX_LEN, SUB_FWD, SUB_LOG, SUB_REV, SUB_SCHEMA};
use crate::plan;
use crate::revision::{Revision, Timestamp};
use crate::store::{self, Cursor, RelationStore, ReverseQuery, ScanPage, TupleReader};
use crate::tenant::Tenant;
use crate::tuple::Tuple;
use crate::value::{self, RevisionStatus};

mod counters;
mod group;
pub use group::GroupOutcome;

/// Meta key names (under [`keys::META`]).
mod meta {
    /// Format version of the on-disk layout (be64).
    pub(super) const FORMAT: &[u8] = b"format";
    /// Highest applied revision (be64).
    pub(super) const APPLIED: &[u8] = b"applied";
    /// GC floor (be64).
    pub(super) const GC_FLOOR: &[u8] = b"gc_floor";
    /// An unfinished bulk import: be64 revision + tenant bytes.
    pub(super) const IMPORT_PENDING: &[u8] = b"import_pending";
}

const FORMAT_VERSION: u64 = 1;
/// Tuples per write batch (and changelog chunk) during bulk import.
const IMPORT_CHUNK: usize = 20_000;
/// Deletes per write batch during GC.
const GC_CHUNK: usize = 10_000;

/// Options for [`RocksStore::open`].
#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// fsync the WAL on every acknowledged write. Default = `true`.
    pub sync_writes: bool,
    /// Shared block cache size in bytes. Default = 256 MiB.
    pub block_cache_bytes: usize,
    /// Memtable size in bytes. Default = 64 MiB.
    pub write_buffer_bytes: usize,
    /// Background flush/compaction threads. Default = 2.
    pub background_jobs: i32,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            sync_writes: true,
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 64 << 20,
            background_jobs: 2,
        }
    }
}

fn engine(e: rocksdb::Error) -> StorageError {
    StorageError::Engine(Box::new(e))
}

/// Read options for iterators that may seek anywhere: with a prefix
/// extractor configured, RocksDB otherwise assumes prefix seeks.
fn total_order() -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_total_order_seek(true);
    ro
}

/// Receives the key/value pairs of [`RocksStore::export_raw`].
pub type RawSink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// The RocksDB tuple store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct RocksStore {
    db: DB,
    opts: RocksOptions,
    /// INVARIANT (applied-after-write): raised only after the batch of that
    /// revision is in RocksDB, so a reader that sees `applied >= R` after
    /// taking its RocksDB snapshot sees every write of R.
    applied: AtomicU64,
    /// INVARIANT (floor-before-delete): raised (and persisted) before GC
    /// deletes anything below it, so a reader that sees `floor <= R` after
    /// taking its RocksDB snapshot never misses a version it needs.
    floor: AtomicU64,
    poisoned: AtomicBool,
    /// Serializes writers (apply, mark_applied, bulk import). Readers and GC never take it.
    write_lock: Mutex<()>,
    /// One GC at a time.
    gc_lock: Mutex<()>,
    /// Per tenant, its newest schema record as of the applied revision:
    /// lets [`RocksStore::schema_at`] answer the common read (at or after
    /// that record) without a seek. INVARIANT (schema-cache-before-applied):
    /// changed under `write_lock` before `applied` is raised past a new
    /// record, and filled only under `write_lock`.
    schema_cache: RwLock<HashMap<String, LatestSchema>>,
    _cache: Cache,
}

/// A tenant's newest schema record (a tombstone included).
#[derive(Debug, Clone)]
struct LatestSchema {
    /// The record's revision (0: the tenant never had one).
    since: Revision,
    /// What a read at or after `since` sees (`None`: no schema).
    visible: Option<Arc<StoredSchema>>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .field("applied", &self.applied.load(Ordering::SeqCst))
            .field("floor", &self.floor.load(Ordering::SeqCst))
            .finish()
    }
}

impl RocksStore {
    /// Opens (creating if needed) a store in the directory `path`, and
    /// removes the remains of a bulk import a crash interrupted.
    ///
    /// # Errors
    /// [`StorageError::Engine`] when RocksDB cannot open the directory;
    /// [`StorageError::Corrupt`] for an unknown on-disk format.
    pub fn open(path: impl AsRef<Path>, opts: RocksOptions) -> Result<RocksStore> {
        let cache = Cache::new_lru_cache(opts.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        // Index and filter blocks live with each open table, outside the
        // block cache: a large file's filter (megabytes) is bigger than a
        // cache shard, so when cached it was evicted at once and re-read on
        // every seek (checks on 10M tuples took 26 ms). About 1.5 bytes of
        // memory per stored key.
        table.set_cache_index_and_filter_blocks(false);
        let mut o = Options::default();
        o.create_if_missing(true);
        o.set_block_based_table_factory(&table);
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_bottommost_compression_type(DBCompressionType::Zstd);
        // Bloom filters (in files and memtables) over each FWD key's
        // (tenant, type, id, relation): a check's point lookups and
        // one-resource scans skip every file without that relation.
        // Iterators that seek anything else use total-order seeks.
        o.set_prefix_extractor(SliceTransform::create(
            "verdict.relation_prefix.v1",
            keys::relation_prefix,
            Some(keys::has_relation_prefix),
        ));
        o.set_memtable_prefix_bloom_ratio(0.1);
        o.set_write_buffer_size(opts.write_buffer_bytes);
        o.set_max_background_jobs(opts.background_jobs);
        o.increase_parallelism(opts.background_jobs.max(1));
        let db = DB::open(&o, path.as_ref()).map_err(engine)?;

        let read_u64 = |name: &[u8], what: &'static str| -> Result<Option<u64>> {
            match db.get(keys::meta_key(name)).map_err(engine)? {
                Some(v) => value::decode_u64(&v, what).map(Some),
                None => Ok(None),
            }
        };
        match read_u64(meta::FORMAT, "format version")? {
            None => db
                .put(keys::meta_key(meta::FORMAT), FORMAT_VERSION.to_be_bytes())
                .map_err(engine)?,
            Some(FORMAT_VERSION) => {}
            Some(_) => {
                return Err(StorageError::Corrupt {
                    what: "format version",
                })
            }
        }
        let applied = read_u64(meta::APPLIED, "applied revision")?.unwrap_or(0);
        let floor = read_u64(meta::GC_FLOOR, "gc floor")?.unwrap_or(0);
        let store = RocksStore {
            db,
            opts,
            applied: AtomicU64::new(applied),
            floor: AtomicU64::new(floor),
            poisoned: AtomicBool::new(false),
            write_lock: Mutex::new(()),
            gc_lock: Mutex::new(()),
            schema_cache: RwLock::new(HashMap::new()),
            _cache: cache,
        };
        store.recover_import()?;
        tracing::debug!(applied, floor, "opened rocks store");
        Ok(store)
    }

    fn write_opts(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.opts.sync_writes);
        w
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, ()>> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(StorageError::Poisoned);
        }
        self.write_lock.lock().map_err(|_| StorageError::Poisoned)
    }

    /// Writes `wb`; a failure poisons the store (disk and memory may disagree).
    fn commit(&self, wb: rocksdb::WriteBatch, opts: &WriteOptions) -> Result<()> {
        self.db.write_opt(wb, opts).map_err(|e| {
            self.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "storage write failed; poisoning the store");
            engine(e)
        })
    }

    fn put_marker(
        &self,
        wb: &mut rocksdb::WriteBatch,
        revision: Revision,
        status: RevisionStatus,
        tenant: &str,
    ) {
        wb.put(
            keys::revinfo_key(revision),
            value::encode_revinfo(Timestamp::now(), status, tenant),
        );
        wb.put(keys::meta_key(meta::APPLIED), revision.0.to_be_bytes());
    }

    /// A reader with no floor/future checks (for the writer and GC).
    fn reader(&self, tenant: &Tenant, revision: Revision) -> RocksSnapshot<'_> {
        RocksSnapshot {
            relation_iter: RefCell::new(None),
            snap: self.db.snapshot(),
            db: &self.db,
            tenant: tenant.clone(),
            revision,
        }
    }

    fn check_readable(&self, revision: Revision) -> Result<()> {
        let applied = Revision(self.applied.load(Ordering::SeqCst));
        if revision > applied {
            return Err(StorageError::RevisionInFuture {
                requested: revision,
                applied,
            });
        }
        let floor = Revision(self.floor.load(Ordering::SeqCst));
        if revision < floor {
            return Err(StorageError::RevisionCompacted {
                requested: revision,
                floor,
            });
        }
        Ok(())
    }

    /// Time-based GC: removes history older than `retention` (e.g. 24 h): the
    /// new floor is the newest revision applied at least `retention` ago.
    ///
    /// # Errors
    /// Storage failures.
    pub fn gc_older_than(&self, retention: Duration) -> Result<GcStats> {
        let cutoff = Timestamp(Timestamp::now().0 - retention.as_secs() as i64);
        let floor = Revision(self.floor.load(Ordering::SeqCst));
        let applied = Revision(self.applied.load(Ordering::SeqCst));
        let mut it = self.db.raw_iterator_opt(total_order());
        it.seek(keys::revinfo_key(floor));
        let mut target = floor;
        while let Some((k, v)) = it.item() {
            let body = match k.split_first() {
                Some((&keys::REVINFO, body)) if body.len() == 8 => body,
                _ => break,
            };
            let rev = Revision(keys::KeyReader::new(body).be64()?);
            if rev > applied || value::decode_revinfo_time(v)? > cutoff {
                break;
            }
            target = rev;
            it.next();
        }
        it.status().map_err(engine)?;
        self.gc(target)
    }

    /// [`RelationStore::schema_at`] without copying the schema: a read at
    /// or after the tenant's newest schema record is answered from memory.
    ///
    /// # Errors
    /// As [`RelationStore::schema_at`].
    pub fn schema_at_shared(
        &self,
        tenant: &Tenant,
        revision: Revision,
    ) -> Result<Option<Arc<StoredSchema>>> {
        self.check_readable(revision)?;
        let cached = self
            .schema_cache
            .read()
            .map_err(|_| StorageError::Poisoned)?
            .get(tenant.as_str())
            .cloned();
        let latest = match cached {
            Some(latest) => latest,
            None => self.fill_schema_cache(tenant)?,
        };
        if revision >= latest.since {
            return Ok(latest.visible);
        }
        Ok(self.snapshot(tenant, revision)?.schema()?.map(Arc::new))
    }

    /// Reads `tenant`'s newest schema record into the cache (under the
    /// writer lock, so no apply can slip a newer one in between).
    fn fill_schema_cache(&self, tenant: &Tenant) -> Result<LatestSchema> {
        let _w = self.lock_writer()?;
        let applied = self.applied_revision();
        let latest = match self.reader(tenant, applied).latest_schema_record()? {
            None => LatestSchema {
                since: Revision(0),
                visible: None,
            },
            Some((since, record)) => LatestSchema {
                since,
                visible: (!record.is_tombstone()).then(|| {
                    Arc::new(StoredSchema {
                        revision: since,
                        record,
                    })
                }),
            },
        };
        self.schema_cache
            .write()
            .map_err(|_| StorageError::Poisoned)?
            .insert(tenant.as_str().to_string(), latest.clone());
        Ok(latest)
    }

    /// Compacts the whole key range (after GC, or to measure disk use).
    pub fn compact(&self) {
        self.db.compact_range::<&[u8], &[u8]>(None, None);
    }

    /// Writes the memtables to a new table file (tests use it to spread
    /// data over several files, as a long-running server has it).
    ///
    /// # Errors
    /// RocksDB cannot write the file.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(engine)
    }

    /// Approximate resident memory of RocksDB (memtables + block cache + readers), bytes.
    pub fn approximate_memory_bytes(&self) -> u64 {
        let p = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        p("rocksdb.cur-size-all-mem-tables")
            + p("rocksdb.block-cache-usage")
            + p("rocksdb.estimate-table-readers-mem")
    }

    /// Total size of the live SST files, bytes.
    pub fn live_sst_bytes(&self) -> u64 {
        self.db
            .property_int_value("rocksdb.live-sst-files-size")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Streams every stored key/value pair of a consistent point-in-time view
    /// into `f` (for a Raft snapshot) and returns that view's applied
    /// revision. The view is taken under the writer lock, so it never sees a
    /// half-written bulk import; writers continue while `f` runs.
    ///
    /// # Errors
    /// Storage failures, or the first error returned by `f`.
    pub fn export_raw(&self, f: &mut RawSink<'_>) -> Result<Revision> {
        let snap = {
            let _w = self.lock_writer()?;
            self.db.snapshot()
        };
        let applied = match snap.get(keys::meta_key(meta::APPLIED)).map_err(engine)? {
            Some(v) => Revision(value::decode_u64(&v, "applied revision")?),
            None => Revision(0),
        };
        let mut it = snap.raw_iterator_opt(total_order());
        it.seek_to_first();
        while it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                f(k, v)?;
            }
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(applied)
    }

    /// Replaces the whole store with `pairs` (the output of
    /// [`RocksStore::export_raw`]) in one synced write batch, so a crash
    /// leaves either the old or the new contents. Returns the new applied
    /// revision.
    ///
    /// # Errors
    /// Corrupt metadata in `pairs`, or storage failures.
    pub fn import_raw(
        &self,
        pairs: &mut dyn Iterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<Revision> {
        let _w = self.lock_writer()?;
        self.schema_cache
            .write()
            .map_err(|_| StorageError::Poisoned)?
            .clear();
        let mut wb = rocksdb::WriteBatch::default();
        let mut it = self.db.raw_iterator_opt(total_order());
        it.seek_to_first();
        while it.valid() {
            if let Some(k) = it.key() {
                wb.delete(k);
            }
            it.next();
        }
        it.status().map_err(engine)?;
        drop(it);
        let (mut applied, mut floor) = (0, 0);
        for (k, v) in pairs {
            if k == keys::meta_key(meta::APPLIED) {
                applied = value::decode_u64(&v, "applied revision")?;
            } else if k == keys::meta_key(meta::GC_FLOOR) {
                floor = value::decode_u64(&v, "gc floor")?;
            }
            wb.put(k, v);
        }
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.commit(wb, &w)?;
        self.applied.store(applied, Ordering::SeqCst);
        self.floor.store(floor, Ordering::SeqCst);
        Ok(Revision(applied))
    }

    /// Removes every version, changelog chunk and revision marker a crashed
    /// bulk import left behind.
    fn recover_import(&self) -> Result<()> {
        let Some(v) = self
            .db
            .get(keys::meta_key(meta::IMPORT_PENDING))
            .map_err(engine)?
        else {
            return Ok(());
        };
        let (rev_bytes, tenant_bytes) =
            v.split_first_chunk::<8>().ok_or(StorageError::Corrupt {
                what: "pending import",
            })?;
        let revision = Revision(u64::from_be_bytes(*rev_bytes));
        let tenant = std::str::from_utf8(tenant_bytes)
            .ok()
            .and_then(|t| Tenant::new(t).ok())
            .ok_or(StorageError::Corrupt {
                what: "pending import",
            })?;
        tracing::warn!(%tenant, %revision, "removing the remains of an interrupted bulk import");
        if revision > Revision(self.applied.load(Ordering::SeqCst)) {
            for sub in [SUB_FWD, SUB_REV] {
                let mut prefix = Vec::new();
                keys::tenant_sub_prefix(&mut prefix, &tenant, sub);
                self.delete_where(&prefix, |k| Ok(keys::split_version(k)?.1 == revision))?;
            }
            let mut prefix = Vec::new();
            keys::tenant_rev_key(&mut prefix, &tenant, SUB_LOG, revision);
            self.delete_where(&prefix, |_| Ok(true))?;
        }
        let mut wb = rocksdb::WriteBatch::default();
        wb.delete(keys::meta_key(meta::IMPORT_PENDING));
        self.commit(wb, &self.write_opts())?;
        self.db.flush().map_err(engine)?;
        Ok(())
    }

    /// Deletes every key under `prefix` for which `pred` holds, in chunks.
    fn delete_where(
        &self,
        prefix: &[u8],
        mut pred: impl FnMut(&[u8]) -> Result<bool>,
    ) -> Result<u64> {
        let mut it = self.db.raw_iterator_opt(total_order());
        it.seek(prefix);
        let mut wb = rocksdb::WriteBatch::default();
        let mut n = 0;
        while let Some(k) = it.key() {
            if !k.starts_with(prefix) {
                break;
            }
            if pred(k)? {
                wb.delete(k);
                n += 1;
                if wb.len() >= GC_CHUNK {
                    self.commit(std::mem::take(&mut wb), &WriteOptions::default())?;
                }
            }
            it.next();
        }
        it.status().map_err(engine)?;
        self.commit(wb, &WriteOptions::default())?;
        Ok(n)
    }

    fn apply_rejected(
        &self,
        tenant: &Tenant,
        revision: Revision,
        err: StorageError,
    ) -> Result<ApplyOutcome> {
        let mut wb = rocksdb::WriteBatch::default();
        self.put_marker(&mut wb, revision, RevisionStatus::Rejected, tenant.as_str());
        self.commit(wb, &self.write_opts())?;
        self.applied.store(revision.0, Ordering::SeqCst);
        Err(err)
    }
}

/// Encodes the index entries of one tuple version into `wb`.
fn put_version(
    wb: &mut rocksdb::WriteBatch,
    buf: &mut Vec<u8>,
    tenant: &Tenant,
    revision: Revision,
    t: &Tuple,
    live: bool,
) {
    let mut v = Vec::with_capacity(32);
    value::encode_version(&mut v, live.then_some(t));
    buf.clear();
    keys::fwd_chain_key(buf, tenant, t);
    keys::push_inv_rev(buf, revision);
    wb.put(&buf[..], &v);
    buf.clear();
    keys::rev_chain_key(buf, tenant, t);
    keys::push_inv_rev(buf, revision);
    wb.put(&buf[..], &v);
}

/// [`put_version`] (live) for many tuples, with the keys put in sorted
/// order: RocksDB's memtable then inserts each next to the previous one
/// instead of searching its skip list from the top (imports are not in
/// key order; FWD and REV keys interleave).
fn put_versions_sorted<'t>(
    wb: &mut rocksdb::WriteBatch,
    tenant: &Tenant,
    revision: Revision,
    tuples: impl Iterator<Item = &'t Tuple>,
) {
    let tuples: Vec<&Tuple> = tuples.collect();
    let values: Vec<Vec<u8>> = tuples
        .iter()
        .map(|t| {
            let mut v = Vec::with_capacity(32);
            value::encode_version(&mut v, Some(t));
            v
        })
        .collect();
    let mut keyed: Vec<(Vec<u8>, &[u8])> = Vec::with_capacity(2 * tuples.len());
    for (t, v) in tuples.iter().zip(&values) {
        let mut fwd = Vec::with_capacity(96);
        keys::fwd_chain_key(&mut fwd, tenant, t);
        keys::push_inv_rev(&mut fwd, revision);
        let mut rev = Vec::with_capacity(96);
        keys::rev_chain_key(&mut rev, tenant, t);
        keys::push_inv_rev(&mut rev, revision);
        keyed.push((fwd, v));
        keyed.push((rev, v));
    }
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in &keyed {
        wb.put(key, value);
    }
}

/// The TOUCH an import makes of `tuple`, the `index`-th of the import, or
/// why the tuple is refused.
fn import_touch(tuple: Tuple, index: usize) -> Result<Change> {
    match tuple.validate() {
        Ok(()) => Ok(Change {
            kind: ChangeKind::Touch,
            tuple,
        }),
        Err(source) => Err(StorageError::InvalidOperation { index, source }),
    }
}

/// One chunk of an import at `revision`: its tuples' versions and its
/// changelog entry (`chunk_no`).
fn import_chunk(
    tenant: &Tenant,
    revision: Revision,
    chunk_no: u32,
    changes: &[Change],
) -> rocksdb::WriteBatch {
    let mut wb = rocksdb::WriteBatch::default();
    put_versions_sorted(&mut wb, tenant, revision, changes.iter().map(|c| &c.tuple));
    let mut key = Vec::with_capacity(64);
    keys::tenant_rev_key(&mut key, tenant, SUB_LOG, revision);
    key.extend_from_slice(&chunk_no.to_be_bytes());
    wb.put(&key[..], value::encode_change_chunk(None, changes));
    wb
}

impl RelationStore for RocksStore {
    type Snapshot<'a> = RocksSnapshot<'a>;

    fn applied_revision(&self) -> Revision {
        Revision(self.applied.load(Ordering::SeqCst))
    }

    fn gc_floor(&self) -> Revision {
        Revision(self.floor.load(Ordering::SeqCst))
    }

    fn apply(
        &self,
        tenant: &Tenant,
        revision: Revision,
        batch: &WriteBatch,
    ) -> Result<ApplyOutcome> {
        let _w = self.lock_writer()?;
        let applied = self.applied_revision();
        if revision <= applied {
            return Ok(ApplyOutcome {
                revision,
                status: ApplyStatus::AlreadyApplied,
                changes: 0,
                delete_truncated: false,
            });
        }
        let planned =
            plan::validate(batch).and_then(|()| plan::plan(&self.reader(tenant, applied), batch));
        let p = match planned {
            Ok(p) => p,
            Err(e) if e.is_rejection() => return self.apply_rejected(tenant, revision, e),
            Err(e) => return Err(e),
        };
        let mut wb = rocksdb::WriteBatch::default();
        let mut buf = Vec::with_capacity(128);
        for (t, live) in p.writes.values() {
            put_version(&mut wb, &mut buf, tenant, revision, t, *live);
        }
        let schema_version = p.schema.as_ref().map(|s| s.version);
        if !p.changes.is_empty() || schema_version.is_some() {
            buf.clear();
            keys::tenant_rev_key(&mut buf, tenant, SUB_LOG, revision);
            buf.extend_from_slice(&0u32.to_be_bytes());
            wb.put(
                &buf[..],
                value::encode_change_chunk(schema_version, &p.changes),
            );
        }
        if let Some(s) = &p.schema {
            buf.clear();
            keys::tenant_rev_key(&mut buf, tenant, SUB_SCHEMA, revision);
            wb.put(&buf[..], value::encode_schema(s));
        }
        self.put_marker(&mut wb, revision, RevisionStatus::Applied, tenant.as_str());
        self.commit(wb, &self.write_opts())?;
        if let Some(record) = p.schema {
            let latest = LatestSchema {
                since: revision,
                visible: (!record.is_tombstone())
                    .then(|| Arc::new(StoredSchema { revision, record })),
            };
            self.schema_cache
                .write()
                .map_err(|_| StorageError::Poisoned)?
                .insert(tenant.as_str().to_string(), latest);
        }
        self.applied.store(revision.0, Ordering::SeqCst);
        Ok(ApplyOutcome {
            revision,
            status: ApplyStatus::Applied,
            changes: p.changes.len(),
            delete_truncated: p.delete_truncated,
        })
    }

    fn mark_applied(&self, revision: Revision) -> Result<()> {
        let _w = self.lock_writer()?;
        if revision <= self.applied_revision() {
            return Ok(());
        }
        let mut wb = rocksdb::WriteBatch::default();
        self.put_marker(&mut wb, revision, RevisionStatus::Empty, "");
        self.commit(wb, &self.write_opts())?;
        self.applied.store(revision.0, Ordering::SeqCst);
        Ok(())
    }

    fn snapshot(&self, tenant: &Tenant, revision: Revision) -> Result<RocksSnapshot<'_>> {
        // Snapshot first, then check (see the INVARIANTs on `applied` and `floor`).
        let snap = self.reader(tenant, revision);
        self.check_readable(revision)?;
        Ok(snap)
    }

    fn changes_since(
        &self,
        tenant: &Tenant,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<ChangeBatch>> {
        // Applied before the iterator (its implicit snapshot then holds every
        // entry up to `applied`), floor after it (INVARIANT floor-before-delete:
        // GC cannot remove an entry this iterator needs without raising the
        // floor first).
        let applied = self.applied_revision();
        let mut prefix = Vec::new();
        keys::tenant_sub_prefix(&mut prefix, tenant, SUB_LOG);
        let mut start = prefix.clone();
        start.extend_from_slice(&after.0.saturating_add(1).to_be_bytes());
        let mut ro = total_order();
        if let Some(end) = keys::prefix_end(&prefix) {
            ro.set_iterate_upper_bound(end);
        }
        let mut it = self.db.raw_iterator_opt(ro);
        let floor = self.gc_floor();
        if after < floor {
            return Err(StorageError::ChangelogCompacted { after, floor });
        }
        it.seek(&start);
        let mut out: Vec<ChangeBatch> = Vec::new();
        while let Some((k, v)) = it.item() {
            let mut r = keys::KeyReader::new(
                k.get(prefix.len()..)
                    .ok_or(StorageError::Corrupt { what: "key" })?,
            );
            let rev = Revision(r.be64()?);
            if rev > applied || rev <= after {
                break;
            }
            if out.last().map(|b| b.revision) != Some(rev) {
                if out.len() >= limit {
                    break;
                }
                out.push(ChangeBatch {
                    revision: rev,
                    changes: Vec::new(),
                    schema_version: None,
                });
            }
            if let Some(last) = out.last_mut() {
                let sv = value::decode_change_chunk(v, &mut last.changes)?;
                last.schema_version = last.schema_version.or(sv);
            }
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(out)
    }

    fn schema_at(&self, tenant: &Tenant, revision: Revision) -> Result<Option<StoredSchema>> {
        Ok(self
            .schema_at_shared(tenant, revision)?
            .map(|s| StoredSchema::clone(&s)))
    }

    fn schema_history(&self, tenant: &Tenant) -> Result<Vec<StoredSchema>> {
        let mut prefix = Vec::new();
        keys::tenant_sub_prefix(&mut prefix, tenant, SUB_SCHEMA);
        let applied = self.applied_revision();
        let mut it = self.db.raw_iterator_opt(total_order());
        it.seek(&prefix);
        let mut out = Vec::new();
        while let Some((k, v)) = it.item() {
            let Some(rest) = k.strip_prefix(&prefix[..]) else {
                break;
            };
            let revision = Revision(keys::KeyReader::new(rest).be64()?);
            if revision > applied {
                break;
            }
            out.push(StoredSchema {
                revision,
                record: value::decode_schema(v)?,
            });
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(crate::batch::current_generation(out))
    }

    fn gc(&self, floor: Revision) -> Result<GcStats> {
        let _g = self.gc_lock.lock().map_err(|_| StorageError::Poisoned)?;
        let floor = floor.min(self.applied_revision()).max(self.gc_floor());
        // INVARIANT (floor-before-delete): persist and publish the floor first.
        if floor > self.gc_floor() {
            let mut wb = rocksdb::WriteBatch::default();
            wb.put(keys::meta_key(meta::GC_FLOOR), floor.0.to_be_bytes());
            self.commit(wb, &self.write_opts())?;
            self.floor.store(floor.0, Ordering::SeqCst);
        }
        let mut stats = GcStats {
            floor,
            ..Default::default()
        };
        let mut wb = rocksdb::WriteBatch::default();
        let flush = |wb: &mut rocksdb::WriteBatch, force: bool| -> Result<()> {
            if force || wb.len() >= GC_CHUNK {
                self.commit(std::mem::take(wb), &WriteOptions::default())?;
            }
            Ok(())
        };

        // Tuple versions: per chain keep every version above the floor and the
        // newest at or below it, unless that one is a tombstone.
        let mut it = self.db.raw_iterator_opt(total_order());
        it.seek([keys::TENANT]);
        let mut chain: Vec<u8> = Vec::new();
        let mut decided = false; // the newest version <= floor of `chain` was seen
                                 // Schema: the newest schema <= floor per tenant is kept.
        let mut schema_tenant: Vec<u8> = Vec::new();
        while let Some((k, v)) = it.item() {
            let Some((&keys::TENANT, body)) = k.split_first() else {
                break;
            };
            let mut r = keys::KeyReader::new(body);
            r.esc()?;
            let tenant_len = k.len() - r.rest().len();
            let sub = r.rest().first().copied();
            match sub {
                Some(SUB_FWD) | Some(SUB_REV) => {
                    let (c, rev) = keys::split_version(k)?;
                    if c != chain.as_slice() {
                        chain.clear();
                        chain.extend_from_slice(c);
                        decided = false;
                    }
                    if rev <= floor {
                        if decided || !value::version_is_live(v)? {
                            wb.delete(k);
                            stats.versions_removed += 1;
                        }
                        decided = true;
                    }
                }
                Some(SUB_LOG) => {
                    let log_rev = r.rest().get(1..).unwrap_or_default();
                    let rev = Revision(keys::KeyReader::new(log_rev).be64()?);
                    if rev <= floor {
                        wb.delete(k);
                        stats.changelog_removed += 1;
                    }
                }
                Some(SUB_SCHEMA) => {
                    // Keys are ascending; the newest <= floor is found by a
                    // seek_for_prev below, per tenant, once.
                    let tenant_key = k
                        .get(..tenant_len)
                        .ok_or(StorageError::Corrupt { what: "key" })?;
                    if schema_tenant.as_slice() != tenant_key {
                        schema_tenant.clear();
                        schema_tenant.extend_from_slice(tenant_key);
                        let mut prefix = schema_tenant.clone();
                        prefix.push(SUB_SCHEMA);
                        let mut target = prefix.clone();
                        target.extend_from_slice(&floor.0.to_be_bytes());
                        let mut it2 = self.db.raw_iterator_opt(total_order());
                        it2.seek_for_prev(&target);
                        let keep = it2
                            .key()
                            .filter(|k2| k2.starts_with(&prefix))
                            .map(<[u8]>::to_vec);
                        it2.status().map_err(engine)?;
                        // Delete all schema keys of this tenant strictly below `keep`.
                        if let Some(keep) = keep {
                            let mut it3 = self.db.raw_iterator_opt(total_order());
                            it3.seek(&prefix);
                            while let Some(k3) = it3.key() {
                                if k3 >= keep.as_slice() || !k3.starts_with(&prefix) {
                                    break;
                                }
                                wb.delete(k3);
                                stats.schemas_removed += 1;
                                it3.next();
                            }
                            it3.status().map_err(engine)?;
                        }
                    }
                }
                _ => return Err(StorageError::Corrupt { what: "key" }),
            }
            flush(&mut wb, false)?;
            it.next();
        }
        it.status().map_err(engine)?;
        // Revision markers below the floor (the floor's own stays for time-based GC).
        let mut it = self.db.raw_iterator_opt(total_order());
        it.seek([keys::REVINFO]);
        while let Some(k) = it.key() {
            if k.first() != Some(&keys::REVINFO) || k >= keys::revinfo_key(floor).as_slice() {
                break;
            }
            wb.delete(k);
            flush(&mut wb, false)?;
            it.next();
        }
        it.status().map_err(engine)?;
        flush(&mut wb, true)?;
        tracing::debug!(?stats, "gc finished");
        Ok(stats)
    }

    fn gc_expired(&self, now: Timestamp, grace_secs: i64) -> Result<u64> {
        let _g = self.gc_lock.lock().map_err(|_| StorageError::Poisoned)?;
        // INVARIANT (applied-after-write): read before the iterator (and its
        // implicit snapshot) exists, so it holds every version up to
        // `examined`. Writers only add versions above the applied revision,
        // and only versions at or below `examined` are deleted here, so no
        // concurrent write is lost and no writer lock is needed.
        let examined = self.applied_revision();
        let mut wb = rocksdb::WriteBatch::default();
        let mut removed = 0u64;
        let mut it = self.db.raw_iterator_opt(total_order());
        it.seek([keys::TENANT]);
        let mut chain: Vec<u8> = Vec::new();
        let mut versions: Vec<(Revision, Option<Option<Timestamp>>)> = Vec::new();
        let mut key = Vec::with_capacity(128);
        while let Some(k) = it.key() {
            let Some((&keys::TENANT, body)) = k.split_first() else {
                break;
            };
            let mut r = keys::KeyReader::new(body);
            r.esc()?;
            let tenant_len = k.len() - r.rest().len();
            if r.rest().first() != Some(&SUB_FWD) {
                // Skip this tenant's other sections in one seek.
                let section = k
                    .get(..tenant_len + 1)
                    .ok_or(StorageError::Corrupt { what: "key" })?;
                match keys::prefix_end(section) {
                    Some(end) => it.seek(end),
                    None => break,
                }
                continue;
            }
            // Collect one chain's versions at or below `examined`, newest first.
            chain.clear();
            chain.extend_from_slice(keys::split_version(k)?.0);
            versions.clear();
            while let Some((k, v)) = it.item() {
                let (c, rev) = keys::split_version(k)?;
                if c != chain.as_slice() {
                    break;
                }
                if rev <= examined {
                    versions.push((rev, value::version_expiration(v)?));
                }
                it.next();
            }
            it.status().map_err(engine)?;
            if !store::chain_expired(versions.iter().map(|(_, v)| *v), now, grace_secs) {
                continue;
            }
            let body = chain
                .get(tenant_len + 1..)
                .ok_or(StorageError::Corrupt { what: "key" })?;
            let t = keys::decode_fwd_body(body)?;
            let mut rev_chain = Vec::with_capacity(chain.len());
            rev_chain.extend_from_slice(
                chain
                    .get(..tenant_len)
                    .ok_or(StorageError::Corrupt { what: "key" })?,
            );
            rev_chain.push(SUB_REV);
            keys::push_rev_body(&mut rev_chain, &t);
            for (rev, _) in &versions {
                for c in [&chain, &rev_chain] {
                    key.clear();
                    key.extend_from_slice(c);
                    keys::push_inv_rev(&mut key, *rev);
                    wb.delete(&key);
                }
            }
            removed += 1;
            // A partly removed chain is still all gone-for-good versions, so
            // any batch boundary leaves answers unchanged.
            if wb.len() >= GC_CHUNK {
                self.commit(std::mem::take(&mut wb), &WriteOptions::default())?;
            }
        }
        it.status().map_err(engine)?;
        self.commit(wb, &WriteOptions::default())?;
        tracing::debug!(removed, %examined, "expired tuples removed");
        Ok(removed)
    }

    fn bulk_import(
        &self,
        tenant: &Tenant,
        revision: Revision,
        tuples: &mut dyn Iterator<Item = Tuple>,
    ) -> Result<ApplyOutcome> {
        let _w = self.lock_writer()?;
        if revision <= self.applied_revision() {
            return Ok(ApplyOutcome {
                revision,
                status: ApplyStatus::AlreadyApplied,
                changes: 0,
                delete_truncated: false,
            });
        }
        // Validate and gather the first chunk before writing anything.
        let mut tuples = tuples.peekable();
        let mut changes: Vec<Change> = Vec::with_capacity(IMPORT_CHUNK.min(4096));
        let mut total = 0usize;
        while changes.len() < IMPORT_CHUNK {
            let Some(t) = tuples.next() else { break };
            match import_touch(t, total) {
                Ok(change) => changes.push(change),
                Err(e) => return self.apply_rejected(tenant, revision, e),
            }
            total += 1;
        }
        if tuples.peek().is_none() {
            // One chunk (as a Raft import entry is): a single atomic write
            // through the WAL, like any batch — no memtable flush.
            let mut wb = import_chunk(tenant, revision, 0, &changes);
            self.put_marker(&mut wb, revision, RevisionStatus::Applied, tenant.as_str());
            self.commit(wb, &self.write_opts())?;
            self.applied.store(revision.0, Ordering::SeqCst);
            return Ok(ApplyOutcome {
                revision,
                status: ApplyStatus::Applied,
                changes: total,
                delete_truncated: false,
            });
        }

        // Larger: chunks written without the WAL, then one flush, bracketed
        // by a pending marker that recovery uses to undo a partial import.
        let mut pending = revision.0.to_be_bytes().to_vec();
        pending.extend_from_slice(tenant.as_str().as_bytes());
        let mut wb = rocksdb::WriteBatch::default();
        wb.put(keys::meta_key(meta::IMPORT_PENDING), pending);
        self.commit(wb, &self.write_opts())?;

        let mut no_wal = WriteOptions::default();
        no_wal.disable_wal(true);
        let mut chunk_no = 0u32;
        let write_chunk = |changes: &mut Vec<Change>, chunk_no: &mut u32| -> Result<()> {
            self.commit(import_chunk(tenant, revision, *chunk_no, changes), &no_wal)?;
            *chunk_no += 1;
            changes.clear();
            Ok(())
        };
        write_chunk(&mut changes, &mut chunk_no)?;
        for t in tuples {
            match import_touch(t, total) {
                Ok(change) => changes.push(change),
                Err(e) => {
                    self.recover_import()?;
                    return self.apply_rejected(tenant, revision, e);
                }
            }
            total += 1;
            if changes.len() >= IMPORT_CHUNK {
                write_chunk(&mut changes, &mut chunk_no)?;
            }
        }
        if !changes.is_empty() {
            write_chunk(&mut changes, &mut chunk_no)?;
        }
        // Everything written without the WAL must be on disk before the marker.
        self.db.flush().map_err(|e| {
            self.poisoned.store(true, Ordering::SeqCst);
            engine(e)
        })?;
        let mut wb = rocksdb::WriteBatch::default();
        self.put_marker(&mut wb, revision, RevisionStatus::Applied, tenant.as_str());
        wb.delete(keys::meta_key(meta::IMPORT_PENDING));
        self.commit(wb, &self.write_opts())?;
        self.applied.store(revision.0, Ordering::SeqCst);
        Ok(ApplyOutcome {
            revision,
            status: ApplyStatus::Applied,
            changes: total,
            delete_truncated: false,
        })
    }
}

/// A consistent reader of one tenant at one revision, backed by a RocksDB
/// snapshot (so GC running meanwhile cannot change what it sees).
pub struct RocksSnapshot<'a> {
    /// One relation-prefix iterator reused by every point lookup and
    /// relation read of this snapshot (creating a RocksDB iterator costs
    /// about as much as a seek). Declared before `snap`: dropped first.
    relation_iter: RefCell<Option<DBRawIteratorWithThreadMode<'a, DB>>>,
    snap: SnapshotWithThreadMode<'a, DB>,
    db: &'a DB,
    tenant: Tenant,
    revision: Revision,
}

impl std::fmt::Debug for RocksSnapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksSnapshot")
            .field("tenant", &self.tenant)
            .field("revision", &self.revision)
            .finish()
    }
}

impl<'a> RocksSnapshot<'a> {
    /// The newest schema record at or before this revision (a tombstone
    /// included), with its revision.
    fn latest_schema_record(&self) -> Result<Option<(Revision, crate::SchemaVersionRecord)>> {
        let prefix = self.prefix(SUB_SCHEMA);
        let mut target = prefix.clone();
        target.extend_from_slice(&self.revision.0.to_be_bytes());
        let mut it = self.iter(None);
        it.seek_for_prev(&target);
        let found = it
            .item()
            .and_then(|(k, v)| Some((k.strip_prefix(prefix.as_slice())?, v)));
        match found {
            Some((rev, v)) => {
                let revision = Revision(keys::KeyReader::new(rev).be64()?);
                Ok(Some((revision, value::decode_schema(v)?)))
            }
            _ => {
                it.status().map_err(engine)?;
                Ok(None)
            }
        }
    }

    fn iter(&self, upper: Option<Vec<u8>>) -> DBRawIteratorWithThreadMode<'_, DB> {
        let mut ro = total_order();
        if let Some(u) = upper {
            ro.set_iterate_upper_bound(u);
        }
        self.snap.raw_iterator_opt(ro)
    }

    /// Runs `f` with this snapshot's reusable relation-prefix iterator: it
    /// stays within the relation prefix ([`keys::relation_prefix_len`]) of
    /// each seek's target — which must start with a whole one — and skips,
    /// by bloom filter, the files without it. It has no upper bound:
    /// callers check the keys they get.
    fn with_relation_iter<T>(
        &self,
        f: impl FnOnce(&mut DBRawIteratorWithThreadMode<'a, DB>) -> Result<T>,
    ) -> Result<T> {
        let mut slot = self
            .relation_iter
            .try_borrow_mut()
            .map_err(|_| StorageError::Poisoned)?;
        let it = slot.get_or_insert_with(|| {
            let mut ro = ReadOptions::default();
            ro.set_prefix_same_as_start(true);
            ro.set_snapshot(&self.snap);
            self.db.raw_iterator_opt(ro)
        });
        f(it)
    }

    /// From an iterator positioned at the first version of a chain (or at a
    /// version newer than the snapshot), finds the version visible at the
    /// snapshot revision, decodes the tuple with `decode(chain_body)` when it
    /// is live, and leaves the iterator on the first key of the next chain.
    /// Returns `None` at the end of `prefix`, else (with the chain key left
    /// in `chain`) the visible tuple (`None` when deleted or not yet created at the revision).
    fn next_chain(
        &self,
        it: &mut DBRawIteratorWithThreadMode<'_, DB>,
        prefix: &[u8],
        body_offset: usize,
        decode: fn(&[u8]) -> Result<Tuple>,
        chain: &mut Vec<u8>,
    ) -> Result<Option<Option<Tuple>>> {
        let Some(k) = it.key() else {
            it.status().map_err(engine)?;
            return Ok(None);
        };
        if !k.starts_with(prefix) {
            return Ok(None);
        }
        chain.clear();
        chain.extend_from_slice(keys::split_version(k)?.0);
        let mut step = None;
        let mut found = false;
        // Walk the chain's versions, newest first.
        while let Some((k, v)) = it.item() {
            let (c, rev) = keys::split_version(k)?;
            if c != chain.as_slice() {
                break;
            }
            if !found && rev <= self.revision {
                found = true;
                if value::version_is_live(v)? {
                    let body = chain
                        .get(body_offset..)
                        .ok_or(StorageError::Corrupt { what: "key" })?;
                    let mut t = decode(body)?;
                    value::decode_version_payload(v, &mut t)?;
                    step = Some(t);
                }
            }
            it.next();
        }
        it.status().map_err(engine)?;
        Ok(Some(step))
    }

    fn prefix(&self, sub: u8) -> Vec<u8> {
        let mut p = Vec::with_capacity(64);
        keys::tenant_sub_prefix(&mut p, &self.tenant, sub);
        p
    }
}

/// The tightest forward-key prefix (after the tenant/sub prefix) a filter allows.
fn filter_prefix(buf: &mut Vec<u8>, f: &TupleFilter) {
    let Some(rt) = &f.resource_type else { return };
    keys::push_esc(buf, rt.as_bytes());
    match &f.resource_id {
        Some(IdFilter::Exact(id)) => keys::push_esc(buf, id.as_bytes()),
        Some(IdFilter::Prefix(p)) => return keys::push_esc_prefix(buf, p.as_bytes()),
        None => return,
    }
    let Some(rel) = &f.relation else { return };
    keys::push_esc(buf, rel.as_bytes());
    let Some(st) = &f.subject_type else { return };
    keys::push_esc(buf, st.as_bytes());
    let Some(sid) = &f.subject_id else { return };
    keys::push_esc(buf, sid.as_bytes());
    match &f.subject_relation {
        Some(SubjectRelationFilter::Direct) => keys::push_opt(buf, None),
        Some(SubjectRelationFilter::Relation(r)) => keys::push_opt(buf, Some(r.as_bytes())),
        None => {}
    }
}

impl TupleReader for RocksSnapshot<'_> {
    fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    fn revision(&self) -> Revision {
        self.revision
    }

    fn tuple(&self, key: &Tuple) -> Result<Option<Tuple>> {
        let mut chain = Vec::with_capacity(96);
        keys::fwd_chain_key(&mut chain, &self.tenant, key);
        let body_offset = self.prefix(SUB_FWD).len();
        let chain_len = chain.len();
        keys::push_inv_rev(&mut chain, self.revision);
        self.with_relation_iter(|it| {
            it.seek(&chain);
            // `chain` without the revision suffix pushed above.
            let chain = chain
                .get(..chain_len)
                .ok_or(StorageError::Corrupt { what: "key" })?;
            match it.item() {
                Some((k, v)) if k.len() == chain_len + REV_SUFFIX_LEN && k.starts_with(chain) => {
                    if !value::version_is_live(v)? {
                        return Ok(None);
                    }
                    let body = chain
                        .get(body_offset..)
                        .ok_or(StorageError::Corrupt { what: "key" })?;
                    let mut t = keys::decode_fwd_body(body)?;
                    value::decode_version_payload(v, &mut t)?;
                    Ok(Some(t))
                }
                _ => {
                    it.status().map_err(engine)?;
                    Ok(None)
                }
            }
        })
    }

    fn subjects(
        &self,
        resource_type: &str,
        resource_ids: &[&str],
        relation: &str,
    ) -> Result<Vec<Tuple>> {
        let mut ids: Vec<&str> = resource_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let base = self.prefix(SUB_FWD);
        let body_offset = base.len();
        let mut type_prefix = base;
        keys::push_esc(&mut type_prefix, resource_type.as_bytes());
        let mut out = Vec::new();
        let mut chain = Vec::with_capacity(128);
        let mut prefix = Vec::with_capacity(type_prefix.len() + 64);
        // Every seek below is to a whole relation prefix.
        self.with_relation_iter(|it| {
            for id in ids {
                prefix.clear();
                prefix.extend_from_slice(&type_prefix);
                keys::push_esc(&mut prefix, id.as_bytes());
                keys::push_esc(&mut prefix, relation.as_bytes());
                it.seek(&prefix);
                while let Some(step) =
                    self.next_chain(it, &prefix, body_offset, keys::decode_fwd_body, &mut chain)?
                {
                    if let Some(t) = step {
                        out.push(t);
                    }
                }
            }
            Ok(out)
        })
    }

    fn resources_for_subjects(&self, q: &ReverseQuery<'_>) -> Result<Vec<Tuple>> {
        let mut ids: Vec<&str> = q.subject_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let base = self.prefix(SUB_REV);
        let body_offset = base.len();
        let mut type_prefix = base;
        keys::push_esc(&mut type_prefix, q.subject_type.as_bytes());
        let mut it = self.iter(keys::prefix_end(&type_prefix));
        let mut out = Vec::new();
        let mut chain = Vec::with_capacity(128);
        let mut prefix = Vec::with_capacity(type_prefix.len() + 64);
        for id in ids {
            prefix.clear();
            prefix.extend_from_slice(&type_prefix);
            keys::push_esc(&mut prefix, id.as_bytes());
            if let Some(sr) = &q.subject_relation {
                match sr {
                    SubjectRelationFilter::Direct => keys::push_opt(&mut prefix, None),
                    SubjectRelationFilter::Relation(r) => {
                        keys::push_opt(&mut prefix, Some(r.as_bytes()))
                    }
                }
                if let Some(rt) = q.resource_type {
                    keys::push_esc(&mut prefix, rt.as_bytes());
                    if let Some(rel) = q.relation {
                        keys::push_esc(&mut prefix, rel.as_bytes());
                    }
                }
            }
            it.seek(&prefix);
            while let Some(step) = self.next_chain(
                &mut it,
                &prefix,
                body_offset,
                keys::decode_rev_body,
                &mut chain,
            )? {
                if let Some(t) = step {
                    if q.resource_type
                        .is_none_or(|rt| rt == t.resource.object_type)
                        && q.relation.is_none_or(|r| r == t.relation)
                    {
                        out.push(t);
                    }
                }
            }
        }
        Ok(out)
    }

    fn scan(
        &self,
        filter: &TupleFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<ScanPage> {
        let limit = limit.max(1);
        let base = self.prefix(SUB_FWD);
        let body_offset = base.len();
        let mut prefix = base.clone();
        filter_prefix(&mut prefix, filter);
        let mut start = None;
        if let Some(c) = cursor {
            keys::decode_fwd_body(&c.0).map_err(|_| StorageError::InvalidCursor)?;
            let mut key = Vec::with_capacity(body_offset + c.0.len() + 9);
            key.extend_from_slice(&base);
            key.extend_from_slice(&c.0);
            key.extend_from_slice(&[0xFF; REV_SUFFIX_LEN + 1]);
            start = Some(key).filter(|k| k.as_slice() > prefix.as_slice());
        }
        let run = |it: &mut DBRawIteratorWithThreadMode<'_, DB>| -> Result<ScanPage> {
            it.seek(start.as_deref().unwrap_or(&prefix));
            let mut tuples = Vec::new();
            let mut last: Option<Vec<u8>> = None;
            let mut chain = Vec::with_capacity(128);
            while let Some(step) =
                self.next_chain(it, &prefix, body_offset, keys::decode_fwd_body, &mut chain)?
            {
                if let Some(t) = step {
                    if filter.matches(&t) {
                        tuples.push(t);
                        if tuples.len() >= limit {
                            last = chain.get(body_offset..).map(<[u8]>::to_vec);
                            break;
                        }
                    }
                }
            }
            Ok(ScanPage {
                tuples,
                cursor: last.map(Cursor),
            })
        };
        // One resource's relation (a cursor resumes inside it too): the
        // bloom filters apply; anything wider needs total-order seeks.
        if keys::has_relation_prefix(&prefix) {
            self.with_relation_iter(|it| run(it))
        } else {
            run(&mut self.iter(keys::prefix_end(&prefix)))
        }
    }

    fn schema(&self) -> Result<Option<StoredSchema>> {
        Ok(self
            .latest_schema_record()?
            .filter(|(_, record)| !record.is_tombstone())
            .map(|(revision, record)| StoredSchema { revision, record }))
    }
}

/// The default grace period of [`GcWorker`] before an expired tuple is
/// physically removed (60 s): covers readers whose clock (request time) is
/// somewhat behind the GC thread's.
pub const DEFAULT_EXPIRY_GRACE: Duration = Duration::from_secs(60);

/// Runs GC periodically on a background thread until dropped. Each tick it
/// runs time-based history GC ([`RocksStore::gc_older_than`]) and then
/// removes expired tuples ([`RelationStore::gc_expired`] at
/// [`Timestamp::now`] with the configured grace period).
#[derive(Debug)]
pub struct GcWorker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl GcWorker {
    /// Every `every`, removes history older than `retention` from `store`
    /// and tuples expired for longer than [`DEFAULT_EXPIRY_GRACE`].
    /// Errors are logged and retried at the next tick.
    pub fn spawn(store: Arc<RocksStore>, every: Duration, retention: Duration) -> GcWorker {
        GcWorker::spawn_with_expiry_grace(store, every, retention, DEFAULT_EXPIRY_GRACE)
    }

    /// As [`GcWorker::spawn`], removing tuples expired for longer than
    /// `expiry_grace` (whole seconds; saturates at `i64::MAX`).
    pub fn spawn_with_expiry_grace(
        store: Arc<RocksStore>,
        every: Duration,
        retention: Duration,
        expiry_grace: Duration,
    ) -> GcWorker {
        let grace = i64::try_from(expiry_grace.as_secs()).unwrap_or(i64::MAX);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("verdict-gc".into())
            .spawn(move || loop {
                match rx.recv_timeout(every) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(e) = store.gc_older_than(retention) {
                            tracing::warn!(error = %e, "background gc failed");
                        }
                        if let Err(e) = store.gc_expired(Timestamp::now(), grace) {
                            tracing::warn!(error = %e, "background expired-tuple gc failed");
                        }
                    }
                    _ => return,
                }
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start the gc thread"))
            .ok();
        GcWorker {
            stop: Some(tx),
            handle,
        }
    }
}

impl Drop for GcWorker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
