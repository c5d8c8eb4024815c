//! Store-level tests on a real RocksDB in temporary directories.

mod basic;
mod genesis;
mod proofs;
mod prop;

use tempfile::TempDir;

use crate::{Committed, Store, Write};

/// A fresh store in its own temporary directory (kept alive by the returned guard).
pub(super) fn fresh() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// `(key, Some(value))`.
pub(super) fn set(key: &str, value: &str) -> Write {
    (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
}

/// `(key, None)`.
pub(super) fn del(key: &str) -> Write {
    (key.as_bytes().to_vec(), None)
}

/// Prepares and commits the next version.
pub(super) fn apply(store: &Store, writes: Vec<Write>) -> Committed {
    let next = store.latest().unwrap().map_or(0, |c| c.version + 1);
    let prepared = store.prepare(next, writes).unwrap();
    let root = prepared.root_hash();
    let committed = store.commit(prepared).unwrap();
    assert_eq!(committed.version, next);
    assert_eq!(committed.root_hash, root);
    committed
}

/// `Some(bytes of s)`.
pub(super) fn some(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}
