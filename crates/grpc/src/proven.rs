//! Proven reads of the latest committed height, kept until the next commit.
//!
//! A value and its ics23 proof at a committed version never change, so
//! auditors polling the same figure (the system aggregate, a market, the
//! fund) need one Merkle proof per block, not one per query. Entries are
//! keyed by the version *and* its root hash, so a replaced version (genesis
//! may be re-committed) never answers from the old tree; reading a newer
//! version drops the older entries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use clearnode_store::Committed;

/// Most keys kept for one height (enough for every aggregate, breaker and
/// fund; per-account reads beyond it are proven afresh, never evicting).
const KEYS_PER_HEIGHT_MAX: usize = 1_024;

/// A value (or its absence) and the encoded proof of it at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProvenRead {
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) proof: Vec<u8>,
}

/// The proven reads of one committed version.
#[derive(Debug, Default)]
struct Height {
    at: Option<Committed>,
    reads: BTreeMap<Vec<u8>, Arc<ProvenRead>>,
}

/// Proven reads of the newest version read so far, shared by every clone
/// of the audit service.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProvenCache {
    height: Arc<Mutex<Height>>,
}

impl ProvenCache {
    /// The read of `key` at `at`, if it was proven at that very version and root.
    pub(crate) fn get(&self, at: Committed, key: &[u8]) -> Option<Arc<ProvenRead>> {
        let height = self.height.lock().unwrap_or_else(PoisonError::into_inner);
        if height.at != Some(at) {
            return None;
        }
        height.reads.get(key).cloned()
    }

    /// Keeps the read of `key` at `at`, unless a newer version is already
    /// kept (a slow reader of an older height does not evict it).
    pub(crate) fn put(&self, at: Committed, key: Vec<u8>, read: Arc<ProvenRead>) {
        let mut height = self.height.lock().unwrap_or_else(PoisonError::into_inner);
        match height.at {
            Some(kept) if kept == at => {}
            Some(kept) if kept.version > at.version => return,
            _ => {
                height.at = Some(at);
                height.reads.clear();
            }
        }
        if height.reads.len() < KEYS_PER_HEIGHT_MAX {
            height.reads.insert(key, read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: u64, root: u8) -> Committed {
        Committed {
            version,
            root_hash: [root; 32],
        }
    }

    fn read(value: u8) -> Arc<ProvenRead> {
        Arc::new(ProvenRead {
            value: Some(vec![value]),
            proof: vec![value, value],
        })
    }

    #[test]
    fn a_read_is_answered_only_at_its_version_and_root() {
        let cache = ProvenCache::default();
        cache.put(at(5, 1), b"k".to_vec(), read(1));
        assert_eq!(cache.get(at(5, 1), b"k"), Some(read(1)));
        assert_eq!(cache.get(at(5, 1), b"other"), None);
        assert_eq!(cache.get(at(5, 2), b"k"), None, "same version, other root");
        assert_eq!(cache.get(at(6, 1), b"k"), None);
    }

    #[test]
    fn a_newer_version_replaces_the_kept_one_and_an_older_does_not() {
        let cache = ProvenCache::default();
        cache.put(at(5, 1), b"k".to_vec(), read(1));
        cache.put(at(6, 2), b"k".to_vec(), read(2));
        assert_eq!(cache.get(at(5, 1), b"k"), None);
        assert_eq!(cache.get(at(6, 2), b"k"), Some(read(2)));
        cache.put(at(5, 1), b"j".to_vec(), read(3));
        assert_eq!(cache.get(at(5, 1), b"j"), None);
        assert_eq!(cache.get(at(6, 2), b"k"), Some(read(2)));
        // A version replaced with another root (re-committed genesis) is replaced.
        cache.put(at(6, 9), b"k".to_vec(), read(4));
        assert_eq!(cache.get(at(6, 2), b"k"), None);
        assert_eq!(cache.get(at(6, 9), b"k"), Some(read(4)));
    }

    #[test]
    fn one_height_keeps_a_bounded_number_of_keys() {
        let cache = ProvenCache::default();
        for index in 0..KEYS_PER_HEIGHT_MAX + 10 {
            cache.put(at(1, 1), index.to_be_bytes().to_vec(), read(0));
        }
        assert!(cache.get(at(1, 1), &0usize.to_be_bytes()).is_some());
        assert!(cache
            .get(at(1, 1), &(KEYS_PER_HEIGHT_MAX + 1).to_be_bytes())
            .is_none());
    }
}
