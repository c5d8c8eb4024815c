//! A consistent read view of the database, and jmt's [`TreeReader`]/[`HasPreimage`] over it.
//!
//! Every reader is built on one RocksDB snapshot, so a query that does several reads (a proof
//! walks many nodes) sees one state even while a commit lands concurrently.

use jmt::storage::{HasPreimage, LeafNode, Node, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Version};
use rocksdb::{ColumnFamily, IteratorMode, ReadOptions, Snapshot, DB};

use crate::keys::{self, CF_META, CF_NODES, CF_PREIMAGES, CF_VALUES, META_LATEST};
use crate::{Committed, StoreError};

/// Looks up a column family that `Store::open` guaranteed to exist.
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::Corrupt(format!("missing column family {name}")))
}

/// Reads the latest committed version and root from `meta`, through `get`.
pub(crate) fn decode_latest_meta(raw: Option<Vec<u8>>) -> Result<Option<Committed>, StoreError> {
    raw.map(|raw| {
        keys::decode_latest(&raw).map(|(version, root_hash)| Committed { version, root_hash })
    })
    .transpose()
}

/// A snapshot-consistent view of the store.
pub(crate) struct DbReader<'a> {
    db: &'a DB,
    snap: Snapshot<'a>,
    /// When set, the tree-facing methods behave as if the database were empty. Used to compute
    /// version 0 from scratch even when an older version 0 is on disk.
    empty_tree: bool,
}

impl<'a> DbReader<'a> {
    /// A view of everything committed now.
    pub(crate) fn new(db: &'a DB) -> Self {
        DbReader {
            db,
            snap: db.snapshot(),
            empty_tree: false,
        }
    }

    /// The same view, except that jmt sees an empty tree (for computing version 0).
    pub(crate) fn into_empty_tree(mut self) -> Self {
        self.empty_tree = true;
        self
    }

    /// The latest committed version and root, `None` on an empty store.
    pub(crate) fn latest(&self) -> Result<Option<Committed>, StoreError> {
        let raw = self.snap.get_cf(cf(self.db, CF_META)?, META_LATEST)?;
        decode_latest_meta(raw)
    }

    /// The root hash committed for `version`.
    pub(crate) fn root(&self, version: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let raw = self
            .snap
            .get_cf(cf(self.db, CF_META)?, keys::root_key(version))?;
        raw.map(|raw| keys::decode_hash(&raw)).transpose()
    }

    /// Errors with `UnknownVersion` unless `version` is committed (`<=` the latest).
    pub(crate) fn ensure_committed(&self, version: u64) -> Result<Committed, StoreError> {
        match self.latest()? {
            Some(latest) if version <= latest.version => Ok(latest),
            _ => Err(StoreError::UnknownVersion(version)),
        }
    }

    /// The node stored under `key`.
    pub(crate) fn node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
        if self.empty_tree {
            return Ok(None);
        }
        let raw = self
            .snap
            .get_cf(cf(self.db, CF_NODES)?, keys::node_key(key)?)?;
        raw.map(|raw| keys::decode_node(&raw)).transpose()
    }

    /// The value of `key_hash` as of `max_version`: the entry with the greatest version
    /// `<= max_version`, `None` if there is none or it is a deletion.
    pub(crate) fn value(
        &self,
        max_version: u64,
        key_hash: &KeyHash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if self.empty_tree {
            return Ok(None);
        }
        let mut opts = ReadOptions::default();
        // Bound the iterator to this key hash's entries so that seek_for_prev cannot land on
        // another key's history.
        opts.set_iterate_lower_bound(keys::value_key(key_hash, 0));
        let mut it = self.snap.raw_iterator_cf_opt(cf(self.db, CF_VALUES)?, opts);
        it.seek_for_prev(keys::value_key(key_hash, max_version));
        match it.item() {
            Some((k, v)) if k.starts_with(&key_hash.0) => {
                if keys::value_key_version(k)? > max_version {
                    return Err(StoreError::Corrupt("value iterator overshot".into()));
                }
                keys::decode_value(v)
            }
            Some(_) => Ok(None),
            None => {
                it.status()?;
                Ok(None)
            }
        }
    }

    /// The key whose hash is `key_hash`, if it was ever written.
    pub(crate) fn preimage(&self, key_hash: &KeyHash) -> Result<Option<Vec<u8>>, StoreError> {
        if self.empty_tree {
            return Ok(None);
        }
        Ok(self.snap.get_cf(cf(self.db, CF_PREIMAGES)?, key_hash.0)?)
    }

    /// The leaf with the greatest key hash among all stored nodes (a full scan; only used by
    /// jmt's restore, which this crate does not use).
    pub(crate) fn rightmost_leaf(&self) -> Result<Option<(NodeKey, LeafNode)>, StoreError> {
        if self.empty_tree {
            return Ok(None);
        }
        let mut best: Option<(NodeKey, LeafNode)> = None;
        let iter = self
            .snap
            .iterator_cf(cf(self.db, CF_NODES)?, IteratorMode::Start);
        for item in iter {
            let (k, v) = item?;
            if let Node::Leaf(leaf) = keys::decode_node(&v)? {
                let better = match &best {
                    None => true,
                    Some((_, b)) => leaf.key_hash() > b.key_hash(),
                };
                if better {
                    best = Some((keys::decode_node_key(&k)?, leaf));
                }
            }
        }
        Ok(best)
    }
}

impl TreeReader for DbReader<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.node(node_key)?)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.value(max_version, &key_hash)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(self.rightmost_leaf()?)
    }
}

impl HasPreimage for DbReader<'_> {
    fn preimage(&self, key_hash: KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(DbReader::preimage(self, &key_hash)?)
    }
}
