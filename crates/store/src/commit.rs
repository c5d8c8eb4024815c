//! The write side of [`Store`]: `prepare` (compute, write nothing) and `commit` (one atomic,
//! synced batch).

use std::collections::BTreeMap;

use jmt::storage::{TreeReader, TreeUpdateBatch};
use jmt::KeyHash;
use rocksdb::{IteratorMode, WriteBatch, WriteOptions};
use sha2::Sha256;

use crate::keys::{self, CF_LATEST, CF_META, CF_NODES, CF_PREIMAGES, CF_VALUES, META_LATEST};
use crate::reader::{cf, DbReader};
use crate::{Committed, Store, StoreError, Write};

/// The computed but not yet persisted next version: its root hash and everything `commit` will
/// write. Produced by [`Store::prepare`], consumed by [`Store::commit`].
#[derive(Debug, Clone)]
pub struct PreparedCommit {
    version: u64,
    root_hash: [u8; 32],
    /// The latest committed version this was computed on (`None`: an empty store, or version 0
    /// computed from scratch over an existing version 0 — see `replaces_genesis`).
    prepared_on: Option<Committed>,
    /// jmt's new nodes and values of this version.
    tree_batch: TreeUpdateBatch,
    /// The deduplicated writes, by key.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Key hash -> key of every key set in this version.
    preimages: Vec<([u8; 32], Vec<u8>)>,
}

impl PreparedCommit {
    /// The version this commit creates.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The root hash (app hash) the version will have.
    pub fn root_hash(&self) -> [u8; 32] {
        self.root_hash
    }
}

/// Whether `requested` may be prepared on top of `latest`.
fn is_next(requested: u64, latest: Option<u64>) -> bool {
    match latest {
        None => requested == 0,
        // Re-preparing genesis is allowed while nothing above it is committed.
        Some(0) => requested <= 1,
        Some(l) => l.checked_add(1) == Some(requested),
    }
}

impl Store {
    /// Computes version `version` = the latest committed version + 1 (or 0 on an empty store, or
    /// 0 again while 0 is the latest — it then replaces genesis) with `writes` applied on top of
    /// the latest committed version (on top of nothing for version 0). Reads the database,
    /// writes nothing.
    ///
    /// Deterministic: the writes are deduplicated by key (a later write of a key wins) and
    /// sorted, so their order does not matter. An empty `writes` gives a new version whose root
    /// equals the previous one. Empty keys are rejected with [`StoreError::EmptyKey`].
    pub fn prepare(&self, version: u64, writes: Vec<Write>) -> Result<PreparedCommit, StoreError> {
        let reader = DbReader::new(&self.db);
        let latest = reader.latest()?;
        if !is_next(version, latest.map(|c| c.version)) {
            return Err(StoreError::VersionNotNext {
                requested: version,
                latest: latest.map(|c| c.version),
            });
        }
        // Version 0 is always computed from nothing: jmt starts genesis from an empty root, and
        // hiding an older genesis on disk keeps stale version-0 data out of the computation.
        let reader = if version == 0 {
            reader.into_empty_tree()
        } else {
            reader
        };
        prepare_over(&reader, version, writes, latest)
    }
    /// Persists a prepared version in one RocksDB write batch, synced to disk: tree nodes,
    /// versioned values, preimages, the flat latest map and the latest version/root metadata.
    ///
    /// Fails with [`StoreError::StalePrepare`] if another commit happened since `prepare`.
    pub fn commit(&self, prepared: PreparedCommit) -> Result<Committed, StoreError> {
        let _guard = self.commit_lock.lock().map_err(|_| StoreError::Poisoned)?;
        let latest = self.latest()?;
        if latest != prepared.prepared_on {
            return Err(StoreError::StalePrepare {
                version: prepared.version,
                prepared_on: prepared.prepared_on.map(|c| c.version),
                latest: latest.map(|c| c.version),
            });
        }
        let db = &*self.db;
        let mut batch = WriteBatch::default();
        if prepared.version == 0 && latest.is_some() {
            self.clear_genesis(&mut batch)?;
        }

        // Each column family's puts go in key order: RocksDB's memtable then inserts each key
        // next to the previous one instead of searching its skip list from the top.
        let nodes = cf(db, CF_NODES)?;
        let mut node_puts = prepared
            .tree_batch
            .node_batch
            .nodes()
            .iter()
            .map(|(node_key, node)| Ok((keys::node_key(node_key)?, keys::encode_node(node)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        node_puts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, node) in node_puts {
            batch.put_cf(nodes, key, node);
        }
        let values = cf(db, CF_VALUES)?;
        for ((version, key_hash), value) in prepared.tree_batch.node_batch.values() {
            batch.put_cf(
                values,
                keys::value_key(key_hash, *version),
                keys::encode_value(value.as_deref()),
            );
        }
        // TODO(prune): `prepared.tree_batch.stale_node_index_batch` lists the nodes this version
        // supersedes (stale since `prepared.version`). A pruner would persist it (e.g. a "stale"
        // CF keyed by stale_since_version BE ++ node key) and later delete those nodes once no
        // retained version needs them. All versions are kept for now, so it is dropped here.
        let preimages = cf(db, CF_PREIMAGES)?;
        let mut preimage_puts: Vec<&([u8; 32], Vec<u8>)> = prepared.preimages.iter().collect();
        preimage_puts.sort_unstable_by_key(|(key_hash, _)| *key_hash);
        for (key_hash, key) in preimage_puts {
            batch.put_cf(preimages, key_hash, key);
        }
        let flat = cf(db, CF_LATEST)?;
        for (key, value) in &prepared.writes {
            match value {
                Some(value) => batch.put_cf(flat, key, value),
                None => batch.delete_cf(flat, key),
            }
        }
        let meta = cf(db, CF_META)?;
        batch.put_cf(meta, keys::root_key(prepared.version), prepared.root_hash);
        batch.put_cf(
            meta,
            META_LATEST,
            keys::encode_latest(prepared.version, &prepared.root_hash),
        );

        // One fsync per version (per block): measured as noise next to the batch itself, and
        // it keeps a committed height on disk even through a power loss, so CometBFT's
        // handshake never has to replay more than the block it had not seen committed.
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(batch, &opts)?;
        tracing::debug!(version = prepared.version, "committed store version");
        Ok(Committed {
            version: prepared.version,
            root_hash: prepared.root_hash,
        })
    }

    /// Adds to `batch` the deletion of everything version 0 wrote, which (as nothing above 0 is
    /// committed when genesis is replaced) is all tree, value, preimage and latest data.
    fn clear_genesis(&self, batch: &mut WriteBatch) -> Result<(), StoreError> {
        let db = &*self.db;
        let nodes = cf(db, CF_NODES)?;
        let (from, to) = keys::node_version_range(0);
        if let Some(to) = to {
            batch.delete_range_cf(nodes, from, to);
        }
        for name in [CF_VALUES, CF_PREIMAGES, CF_LATEST] {
            let handle = cf(db, name)?;
            for item in db.iterator_cf(handle, IteratorMode::Start) {
                let (key, _) = item?;
                if name == CF_VALUES && keys::value_key_version(&key)? != 0 {
                    return Err(StoreError::Corrupt(
                        "value above version 0 while replacing genesis".into(),
                    ));
                }
                batch.delete_cf(handle, key);
            }
        }
        Ok(())
    }
}

/// Computes `version` as `writes` applied to the tree `reader` shows (its root at `version - 1`,
/// or an empty tree for version 0); `prepared_on` is what `commit` will expect to be the latest.
pub(crate) fn prepare_over<R: TreeReader>(
    reader: &R,
    version: u64,
    writes: Vec<Write>,
    prepared_on: Option<Committed>,
) -> Result<PreparedCommit, StoreError> {
    let mut deduped: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for (key, value) in writes {
        if key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        deduped.insert(key, value);
    }
    let mut value_set: BTreeMap<KeyHash, Option<Vec<u8>>> = BTreeMap::new();
    let mut preimages = Vec::new();
    for (key, value) in &deduped {
        let key_hash = KeyHash::with::<Sha256>(key);
        if value.is_some() {
            preimages.push((key_hash.0, key.clone()));
        }
        value_set.insert(key_hash, value.as_deref().map(keys::leaf_value));
    }
    let deletions = value_set.values().filter(|v| v.is_none()).count();
    tracing::debug!(
        version,
        keys = value_set.len(),
        deletions,
        "preparing store version"
    );
    let (root, tree_batch) = update_tree(reader, version, value_set)?;
    Ok(PreparedCommit {
        version,
        root_hash: root.0,
        prepared_on,
        tree_batch,
        writes: deduped,
        preimages,
    })
}

/// Applies one version's sorted value set to the tree. Without deletions, jmt's batch insertion
/// builds each touched node once (one-by-one insertion rebuilds and rehashes the path from the
/// root for every key); with deletions, which the batch path does not take, one by one. Both give
/// the same root: the tree's shape and hashes depend only on the set of leaves.
pub(crate) fn update_tree<R: TreeReader>(
    reader: &R,
    version: u64,
    value_set: BTreeMap<KeyHash, Option<Vec<u8>>>,
) -> Result<(jmt::RootHash, TreeUpdateBatch), StoreError> {
    let tree = jmt::JellyfishMerkleTree::<_, Sha256>::new(reader);
    if value_set.is_empty() || value_set.values().any(Option::is_none) {
        return tree
            .put_value_set(value_set, version)
            .map_err(StoreError::from_tree);
    }
    let sets: Vec<(KeyHash, Vec<u8>)> = value_set
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key, value)))
        .collect();
    let (roots, batch) = tree
        .batch_put_value_sets(vec![sets], None, version)
        .map_err(StoreError::from_tree)?;
    let root = roots
        .first()
        .copied()
        .ok_or_else(|| StoreError::Corrupt("jmt returned no root".into()))?;
    Ok((root, batch))
}

#[cfg(test)]
mod tests {
    use super::is_next;

    #[test]
    fn next_version_rules() {
        assert!(is_next(0, None));
        assert!(!is_next(1, None));
        assert!(is_next(0, Some(0)));
        assert!(is_next(1, Some(0)));
        assert!(!is_next(2, Some(0)));
        assert!(is_next(6, Some(5)));
        assert!(!is_next(5, Some(5)));
        assert!(!is_next(0, Some(5)));
        assert!(!is_next(7, Some(5)));
        assert!(!is_next(0, Some(u64::MAX)));
    }
}
