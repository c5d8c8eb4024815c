//! Column family names and the byte layout of every key and value this crate writes.
//!
//! All integers are big-endian so that RocksDB's bytewise order equals numeric order. The layout
//! is documented at the crate root; this module is its single implementation.

use jmt::storage::{Node, NodeKey};
use jmt::KeyHash;

use crate::StoreError;

/// Column family of the Jellyfish Merkle tree nodes.
pub(crate) const CF_NODES: &str = "jmt_nodes";
/// Column family of the versioned values (the tree's leaves' payloads).
pub(crate) const CF_VALUES: &str = "jmt_values";
/// Column family mapping a key hash back to its key.
pub(crate) const CF_PREIMAGES: &str = "preimages";
/// Column family holding the flat key -> value map of the latest committed version.
pub(crate) const CF_LATEST: &str = "latest";
/// Column family of store metadata.
pub(crate) const CF_META: &str = "meta";

/// Every column family the store needs, in creation order.
pub(crate) const ALL_CFS: [&str; 5] = [CF_NODES, CF_VALUES, CF_PREIMAGES, CF_LATEST, CF_META];

/// Meta key of the on-disk format marker.
pub(crate) const META_FORMAT: &[u8] = b"format";
/// The value of [`META_FORMAT`] this code reads and writes.
pub(crate) const FORMAT_V1: &[u8] = b"clearnode-store/v1";
/// Meta key of the latest committed version and root.
pub(crate) const META_LATEST: &[u8] = b"latest";
/// Prefix of the meta keys holding the root hash of each committed version.
pub(crate) const META_ROOT_PREFIX: &[u8] = b"root/";

/// Value tag of a deletion (tombstone) in [`CF_VALUES`].
const TAG_DELETED: u8 = 0;
/// Value tag of a present value in [`CF_VALUES`].
const TAG_PRESENT: u8 = 1;

/// First byte of every value as committed in the tree (see [`leaf_value`]).
pub(crate) const LEAF_VALUE_PREFIX: u8 = 0x01;

/// Length of a key hash.
pub(crate) const HASH_LEN: usize = 32;
/// Length of an encoded version.
const VERSION_LEN: usize = 8;

/// `jmt_nodes` key: version (8, BE) ++ borsh(NodeKey).
///
/// The leading version makes all nodes of one version a contiguous range (useful for pruning and
/// for replacing version 0); the borsh suffix is decodable back into the `NodeKey`.
pub(crate) fn node_key(key: &NodeKey) -> Result<Vec<u8>, StoreError> {
    let mut out = key.version().to_be_bytes().to_vec();
    borsh::to_writer(&mut out, key).map_err(|e| StoreError::Corrupt(format!("node key: {e}")))?;
    Ok(out)
}

/// Decodes a `jmt_nodes` key back into its `NodeKey`.
pub(crate) fn decode_node_key(raw: &[u8]) -> Result<NodeKey, StoreError> {
    let suffix = raw
        .get(VERSION_LEN..)
        .ok_or_else(|| StoreError::Corrupt("node key too short".into()))?;
    borsh::from_slice(suffix).map_err(|e| StoreError::Corrupt(format!("node key: {e}")))
}

/// The `[from, to)` range of `jmt_nodes` keys of one version.
pub(crate) fn node_version_range(version: u64) -> (Vec<u8>, Option<Vec<u8>>) {
    let from = version.to_be_bytes().to_vec();
    let to = version.checked_add(1).map(|v| v.to_be_bytes().to_vec());
    (from, to)
}

/// `jmt_nodes` value: borsh(Node).
pub(crate) fn encode_node(node: &Node) -> Result<Vec<u8>, StoreError> {
    borsh::to_vec(node).map_err(|e| StoreError::Corrupt(format!("node: {e}")))
}

/// Decodes a `jmt_nodes` value.
pub(crate) fn decode_node(raw: &[u8]) -> Result<Node, StoreError> {
    borsh::from_slice(raw).map_err(|e| StoreError::Corrupt(format!("node: {e}")))
}

/// `jmt_values` key: key hash (32) ++ version (8, BE).
pub(crate) fn value_key(key_hash: &KeyHash, version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HASH_LEN + VERSION_LEN);
    out.extend_from_slice(&key_hash.0);
    out.extend_from_slice(&version.to_be_bytes());
    out
}

/// The version part of a `jmt_values` key.
pub(crate) fn value_key_version(raw: &[u8]) -> Result<u64, StoreError> {
    if raw.len() != HASH_LEN + VERSION_LEN {
        return Err(StoreError::Corrupt("value key has a bad length".into()));
    }
    decode_u64(&raw[HASH_LEN..])
}

/// `jmt_values` value: tag (1 byte: 0 deleted, 1 present) ++ value bytes.
pub(crate) fn encode_value(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        None => vec![TAG_DELETED],
        Some(v) => {
            let mut out = Vec::with_capacity(1 + v.len());
            out.push(TAG_PRESENT);
            out.extend_from_slice(v);
            out
        }
    }
}

/// Decodes a `jmt_values` value.
pub(crate) fn decode_value(raw: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    match raw.split_first() {
        Some((&TAG_DELETED, [])) => Ok(None),
        Some((&TAG_PRESENT, rest)) => Ok(Some(rest.to_vec())),
        _ => Err(StoreError::Corrupt("bad value tag".into())),
    }
}

/// The form in which the tree commits to a value: `0x01 ++ value`.
///
/// ics23 refuses existence proofs of empty values (and so also non-existence proofs whose
/// neighbour leaf has an empty value); the prefix makes every byte string provable.
pub(crate) fn leaf_value(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + value.len());
    out.push(LEAF_VALUE_PREFIX);
    out.extend_from_slice(value);
    out
}

/// The value back from its committed form (see [`leaf_value`]).
pub(crate) fn strip_leaf_value(leaf: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    match leaf.split_first() {
        Some((&LEAF_VALUE_PREFIX, rest)) => Ok(rest.to_vec()),
        _ => Err(StoreError::Corrupt(
            "committed value lacks its prefix".into(),
        )),
    }
}

/// Meta key of the root hash of `version`: `b"root/"` ++ version (8, BE).
pub(crate) fn root_key(version: u64) -> Vec<u8> {
    let mut out = META_ROOT_PREFIX.to_vec();
    out.extend_from_slice(&version.to_be_bytes());
    out
}

/// Meta value of [`META_LATEST`]: version (8, BE) ++ root hash (32).
pub(crate) fn encode_latest(version: u64, root: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_LEN + HASH_LEN);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(root);
    out
}

/// Decodes the value of [`META_LATEST`].
pub(crate) fn decode_latest(raw: &[u8]) -> Result<(u64, [u8; 32]), StoreError> {
    if raw.len() != VERSION_LEN + HASH_LEN {
        return Err(StoreError::Corrupt(
            "latest metadata has a bad length".into(),
        ));
    }
    let version = decode_u64(&raw[..VERSION_LEN])?;
    let root = decode_hash(&raw[VERSION_LEN..])?;
    Ok((version, root))
}

/// Decodes a 32-byte hash.
pub(crate) fn decode_hash(raw: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(raw).map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

/// Decodes a big-endian u64.
fn decode_u64(raw: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(raw)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("version is not 8 bytes".into()))
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` if there
/// is none (empty prefix or all 0xff).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < u8::MAX {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node key built through borsh (jmt's `NibblePath::new` is crate-private).
    fn nk(version: u64, path: &[u8]) -> NodeKey {
        let mut raw = version.to_le_bytes().to_vec();
        raw.extend_from_slice(&(path.len() as u64 * 2).to_le_bytes());
        raw.extend_from_slice(&(path.len() as u32).to_le_bytes());
        raw.extend_from_slice(path);
        borsh::from_slice(&raw).unwrap()
    }

    #[test]
    fn node_key_round_trips_and_sorts_by_version() {
        let a = nk(1, &[0xab, 0xcd]);
        let b = nk(256, &[0x00]);
        assert_eq!(a.version(), 1);
        assert_eq!(a.nibble_path().num_nibbles(), 4);
        let ea = node_key(&a).unwrap();
        let eb = node_key(&b).unwrap();
        assert!(ea < eb);
        assert_eq!(decode_node_key(&ea).unwrap(), a);
        assert_eq!(decode_node_key(&eb).unwrap(), b);
        let (from, to) = node_version_range(1);
        assert!(ea >= from && ea < to.unwrap());
    }

    #[test]
    fn value_encoding_round_trips() {
        assert_eq!(decode_value(&encode_value(None)).unwrap(), None);
        assert_eq!(
            decode_value(&encode_value(Some(b""))).unwrap(),
            Some(Vec::new())
        );
        assert_eq!(
            decode_value(&encode_value(Some(b"xyz"))).unwrap(),
            Some(b"xyz".to_vec())
        );
        assert!(decode_value(&[]).is_err());
        assert!(decode_value(&[7, 1]).is_err());
        assert!(decode_value(&[0, 1]).is_err());
    }

    #[test]
    fn leaf_values_round_trip() {
        assert_eq!(leaf_value(b""), vec![LEAF_VALUE_PREFIX]);
        assert_eq!(strip_leaf_value(leaf_value(b"")).unwrap(), b"".to_vec());
        assert_eq!(strip_leaf_value(leaf_value(b"ab")).unwrap(), b"ab".to_vec());
        assert!(strip_leaf_value(Vec::new()).is_err());
        assert!(strip_leaf_value(vec![9, 1]).is_err());
    }

    #[test]
    fn value_keys_sort_by_hash_then_version() {
        let h = KeyHash([7; 32]);
        assert!(value_key(&h, 1) < value_key(&h, 2));
        assert!(value_key(&h, 255) < value_key(&h, 256));
        assert_eq!(value_key_version(&value_key(&h, 42)).unwrap(), 42);
    }

    #[test]
    fn latest_round_trips() {
        let raw = encode_latest(9, &[3; 32]);
        assert_eq!(decode_latest(&raw).unwrap(), (9, [3; 32]));
        assert!(decode_latest(&raw[1..]).is_err());
    }

    #[test]
    fn prefix_successor_cases() {
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
    }
}
