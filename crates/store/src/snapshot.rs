//! Export of the state at a version and its restore into an empty store, for state sync.
//!
//! A Jellyfish Merkle root depends only on the set of (key, value) pairs, not on the history
//! that produced it. So a version is exported as its pairs, and restored by building a fresh tree
//! of exactly those pairs *at that version*: the restored root equals the original one, which
//! [`Store::restore`] checks before writing anything.

use std::fmt::Write as _;

use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Version};
use rocksdb::IteratorMode;

use crate::commit::prepare_over;
use crate::keys::{self, CF_PREIMAGES};
use crate::reader::{cf, DbReader};
use crate::{Committed, KeyValue, Store, StoreError};

impl Store {
    /// Every (key, value) pair present at the committed `version`, in key order.
    ///
    /// Reads one consistent view, so commits may land meanwhile.
    pub fn export(&self, version: u64) -> Result<Vec<KeyValue>, StoreError> {
        let reader = DbReader::new(&self.db);
        reader.ensure_committed(version)?;
        if reader.root(version)?.is_none() {
            return Err(StoreError::UnknownVersion(version));
        }
        let mut pairs = Vec::new();
        // Every key ever set has a preimage; its value at `version` decides whether it is in.
        let iter = self
            .db
            .iterator_cf(cf(&self.db, CF_PREIMAGES)?, IteratorMode::Start);
        for item in iter {
            let (hash, key) = item?;
            let hash: [u8; 32] = hash
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("preimage key is not a 32-byte hash".into()))?;
            if let Some(leaf) = reader.value(version, &KeyHash(hash))? {
                pairs.push((key.into_vec(), keys::strip_leaf_value(leaf)?));
            }
        }
        pairs.sort();
        Ok(pairs)
    }

    /// Writes `pairs` as version `version` of an empty store, provided they hash to
    /// `expected_root`; otherwise writes nothing and fails with [`StoreError::RootMismatch`].
    ///
    /// The store then continues from `version` like any other: the next `prepare` is
    /// `version + 1`. Older versions are absent.
    pub fn restore(
        &self,
        version: u64,
        pairs: Vec<KeyValue>,
        expected_root: [u8; 32],
    ) -> Result<Committed, StoreError> {
        if let Some(latest) = self.latest()? {
            return Err(StoreError::NotEmpty {
                version,
                latest: latest.version,
            });
        }
        let writes = pairs.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let prepared = prepare_over(&EmptyBefore { version }, version, writes, None)?;
        if prepared.root_hash() != expected_root {
            return Err(StoreError::RootMismatch {
                version,
                expected: hex(&expected_root),
                actual: hex(&prepared.root_hash()),
            });
        }
        self.commit(prepared)
    }
}

/// A tree with nothing in it as of `version - 1`: its root there is the null node, so jmt builds
/// `version` from scratch. (Version 0 needs no help: jmt starts genesis from nothing.)
struct EmptyBefore {
    version: u64,
}

impl TreeReader for EmptyBefore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let is_root_before = self.version.checked_sub(1) == Some(node_key.version())
            && node_key.nibble_path().num_nibbles() == 0;
        Ok(is_root_before.then_some(Node::Null))
    }

    fn get_value_option(&self, _: Version, _: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        Ok(None)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(None)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02X}");
        out
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::tests::{apply, del, fresh, set};
    use crate::StoreError;

    #[test]
    fn a_restored_version_has_the_original_root_values_and_proofs_and_continues() {
        let (_a, original) = fresh();
        apply(&original, vec![set("a", "1"), set("b", "2"), set("c", "")]);
        apply(&original, vec![set("a", "10"), del("b"), set("d", "4")]);
        let snapshot = apply(&original, vec![set("e", "5"), del("d")]);
        // A later version must not leak into the export of an earlier one.
        apply(&original, vec![set("f", "6"), del("a")]);

        let pairs = original.export(snapshot.version).unwrap();
        let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"a"[..], b"c", b"e"]);

        let (_b, restored) = fresh();
        let committed = restored
            .restore(snapshot.version, pairs, snapshot.root_hash)
            .unwrap();
        assert_eq!(committed, snapshot);
        assert_eq!(restored.get_latest(b"a").unwrap(), Some(b"10".to_vec()));
        assert_eq!(
            restored.get(b"c", snapshot.version).unwrap(),
            Some(Vec::new())
        );
        assert_eq!(restored.get_latest(b"d").unwrap(), None);
        let (value, proof) = restored.get_with_proof(b"e", snapshot.version).unwrap();
        assert_eq!(value, Some(b"5".to_vec()));
        assert!(crate::verify_membership(
            &snapshot.root_hash,
            &proof,
            b"e",
            b"5"
        ));

        // A restored store and one restored from a fresh export take the same next block to
        // the same root: the restore is a function of the exported pairs alone.
        let next = vec![set("g", "7"), del("e")];
        let (_c, replay) = fresh();
        replay
            .restore(
                snapshot.version,
                original.export(snapshot.version).unwrap(),
                snapshot.root_hash,
            )
            .unwrap();
        let a = apply(&restored, next.clone());
        let b = apply(&replay, next);
        assert_eq!(a, b);
        assert_eq!(a.version, snapshot.version + 1);
    }

    #[test]
    fn a_restore_that_does_not_hash_to_the_expected_root_writes_nothing() {
        let (_a, original) = fresh();
        apply(&original, vec![set("a", "1")]);
        let snapshot = apply(&original, vec![set("b", "2")]);
        let mut pairs = original.export(snapshot.version).unwrap();
        pairs[0].1 = b"tampered".to_vec();

        let (_b, restored) = fresh();
        let err = restored
            .restore(snapshot.version, pairs, snapshot.root_hash)
            .unwrap_err();
        assert!(matches!(err, StoreError::RootMismatch { .. }), "{err}");
        assert_eq!(restored.latest().unwrap(), None);
    }

    #[test]
    fn only_an_empty_store_can_be_restored() {
        let (_a, original) = fresh();
        apply(&original, vec![set("a", "1")]);
        let snapshot = apply(&original, vec![set("b", "2")]);
        let pairs = original.export(snapshot.version).unwrap();
        let err = original
            .restore(snapshot.version, pairs, snapshot.root_hash)
            .unwrap_err();
        assert!(matches!(err, StoreError::NotEmpty { .. }), "{err}");
    }
}
