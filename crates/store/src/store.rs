//! Opening the database and the read side of [`Store`].

use std::path::Path;
use std::sync::{Arc, Mutex};

use ics23::CommitmentProof;
use jmt::KeyHash;
use rocksdb::{ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, DB};
use sha2::Sha256;

use crate::keys::{self, ALL_CFS, CF_LATEST, CF_META, FORMAT_V1, META_FORMAT, META_LATEST};
use crate::reader::{cf, decode_latest_meta, DbReader};
use crate::{proof, Committed, KeyValue, StoreError, EMPTY_ROOT_HASH};

/// RocksDB's limit on open table files (the OS limit is typically 1024).
const MAX_OPEN_FILES: i32 = 512;

/// Most write-ahead log kept alive. `meta` takes a few bytes every commit and so never fills
/// its memtable: without a bound, it pins every log since its last flush (gigabytes on a
/// large state) and a restart replays them all before it can serve. Past this, RocksDB flushes
/// the column families that hold the oldest log.
const MAX_TOTAL_WAL_BYTES: u64 = 128 * 1024 * 1024;

/// Versioned key-value state under a Jellyfish Merkle tree commitment, on RocksDB.
///
/// Cheap to clone (all clones share one database); safe to use from many threads: reads see
/// committed versions only, and commits are serialized internally.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Arc<DB>,
    /// Serializes `commit` so that its "is this still based on the latest version" check and its
    /// write are one step.
    pub(crate) commit_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.set_max_open_files(MAX_OPEN_FILES);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    opts
}

impl Store {
    /// Opens the store at `path`, creating it if missing.
    ///
    /// Fails with [`StoreError::Corrupt`] if `path` holds a RocksDB database that is not a store
    /// of this format (missing column families, unknown format marker, undecodable metadata).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut opts = db_options();
        let cf_names: Vec<String> = if path.join("CURRENT").exists() {
            let existing = DB::list_cf(&opts, path)?;
            if let Some(missing) = ALL_CFS
                .iter()
                .find(|name| !existing.iter().any(|e| e == *name))
            {
                return Err(StoreError::Corrupt(format!(
                    "missing column family {missing} (not a clearnode store?)"
                )));
            }
            existing
        } else {
            opts.create_missing_column_families(true);
            ALL_CFS.iter().map(|s| (*s).to_string()).collect()
        };
        let descriptors = cf_names
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, db_options()));
        let db = DB::open_cf_descriptors(&opts, path, descriptors)?;
        check_format(&db)?;
        let store = Store {
            db: Arc::new(db),
            commit_lock: Arc::new(Mutex::new(())),
        };
        // Fail early on undecodable metadata.
        if let Some(latest) = store.latest()? {
            if store.root_hash(latest.version)? != Some(latest.root_hash) {
                return Err(StoreError::Corrupt(format!(
                    "root of latest version {} disagrees with its metadata",
                    latest.version
                )));
            }
        }
        Ok(store)
    }

    /// The latest committed version and its root hash; `None` on an empty store.
    pub fn latest(&self) -> Result<Option<Committed>, StoreError> {
        let raw = self.db.get_cf(cf(&self.db, CF_META)?, META_LATEST)?;
        decode_latest_meta(raw)
    }

    /// The root hash (app hash) of a committed version; `None` if it was never committed.
    pub fn root_hash(&self, version: u64) -> Result<Option<[u8; 32]>, StoreError> {
        DbReader::new(&self.db).root(version)
    }

    /// The value of `key` as of the committed `version`.
    ///
    /// Errors with [`StoreError::UnknownVersion`] if `version` is above the latest committed one.
    pub fn get(&self, key: &[u8], version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let reader = DbReader::new(&self.db);
        reader.ensure_committed(version)?;
        reader
            .value(version, &KeyHash::with::<Sha256>(key))?
            .map(keys::strip_leaf_value)
            .transpose()
    }

    /// The value of `key` in the latest committed version (from the flat `latest` map).
    pub fn get_latest(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(cf(&self.db, CF_LATEST)?, key)?)
    }

    /// Writes every memtable to table files, so that the next open has no write-ahead log to
    /// replay (on a large state, a commit's batch alone is hundreds of megabytes). For a clean
    /// shutdown; committed state is durable without it.
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in ALL_CFS {
            self.db.flush_cf(cf(&self.db, name)?)?;
        }
        Ok(())
    }

    /// The bytes of each column family's table files on disk (what flushed so far), by name:
    /// where a store's disk goes (the tree's nodes and values of every version, the flat latest
    /// map, the key preimages).
    pub fn table_bytes_by_column_family(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        ALL_CFS
            .iter()
            .map(|name| {
                let bytes = self
                    .db
                    .property_int_value_cf(cf(&self.db, name)?, "rocksdb.total-sst-files-size")?;
                Ok((*name, bytes.unwrap_or(0)))
            })
            .collect()
    }

    /// Pairs of the latest committed version with `start <= key < end`, in
    /// key order, at most `limit` of them.
    pub fn scan_range_latest(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(end.to_vec());
        let iter = self.db.iterator_cf_opt(
            cf(&self.db, CF_LATEST)?,
            opts,
            IteratorMode::From(start, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    /// The value of `key` at the committed `version` and an ics23 proof of its existence (value
    /// present) or non-existence (value absent) against that version's root hash.
    ///
    /// The proof's `ExistenceProof.value` is the committed form `0x01 ++ value`; verify with
    /// [`crate::verify_membership`], which takes the plain value. In an empty tree the
    /// non-existence proof has no neighbours. See [`crate::proof`].
    pub fn get_with_proof(
        &self,
        key: &[u8],
        version: u64,
    ) -> Result<(Option<Vec<u8>>, CommitmentProof), StoreError> {
        let reader = DbReader::new(&self.db);
        reader.ensure_committed(version)?;
        let root = reader
            .root(version)?
            .ok_or_else(|| StoreError::Corrupt(format!("no root for version {version}")))?;
        if root == EMPTY_ROOT_HASH {
            return Ok((None, proof::empty_tree_proof(key)));
        }
        let tree = jmt::JellyfishMerkleTree::<_, Sha256>::new(&reader);
        let (leaf, proof) = tree
            .get_with_ics23_proof(key.to_vec(), version)
            .map_err(StoreError::from_tree)?;
        Ok((leaf.map(keys::strip_leaf_value).transpose()?, proof))
    }
}

/// Checks (or, on a fresh database, writes) the format marker.
fn check_format(db: &DB) -> Result<(), StoreError> {
    let meta = cf(db, CF_META)?;
    match db.get_cf(meta, META_FORMAT)? {
        Some(found) if found == FORMAT_V1 => Ok(()),
        Some(found) => Err(StoreError::Corrupt(format!(
            "unknown format marker {:?}",
            String::from_utf8_lossy(&found)
        ))),
        None if db.get_cf(meta, META_LATEST)?.is_some() => {
            Err(StoreError::Corrupt("format marker missing".into()))
        }
        None => {
            let mut wo = rocksdb::WriteOptions::default();
            wo.set_sync(true);
            db.put_cf_opt(meta, META_FORMAT, FORMAT_V1, &wo)?;
            Ok(())
        }
    }
}
