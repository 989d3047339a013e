//! Verdict's storage layer (placeholder until the storage issue lands).

/// Opens (creating if needed) a RocksDB database at `path`.
pub fn open_raw(path: &std::path::Path) -> Result<rocksdb::DB, rocksdb::Error> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    rocksdb::DB::open(&opts, path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn opens_and_round_trips_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::open_raw(dir.path()).unwrap();
        db.put(b"k", b"v").unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
