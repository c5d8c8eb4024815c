//! The snapshots a node serves, as files: `<dir>/<height>/manifest` and `<dir>/<height>/<i>` for
//! chunk `i`. A snapshot is written under a temporary name and renamed into place when whole,
//! so a crash never leaves a partial one to be served; the oldest are removed beyond `keep`.
//!
//! Snapshots are taken off the consensus thread: after the Commit of every `interval`-th
//! height a background thread exports that version (the store keeps it, and reads see one
//! consistent view while later blocks commit). If the previous snapshot is still being written,
//! that height is skipped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clearnode_store::Store;
use tendermint_proto::v0_38::abci::Snapshot;

use crate::snapshot::{chunk_hash, encode_chunks, Manifest, CHUNK_BYTES, SNAPSHOT_FORMAT};

const MANIFEST_FILE: &str = "manifest";
const PARTIAL_PREFIX: &str = "partial-";

/// When to take snapshots and how many to keep.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    /// Where the snapshots are written.
    pub dir: PathBuf,
    /// A snapshot every this many heights; 0 takes none (the node still restores from others).
    pub interval: u64,
    /// How many of the newest snapshots are kept (at least one).
    pub keep: usize,
}

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// The file system failed.
    #[error("snapshot files: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed to export.
    #[error("snapshot export: {0}")]
    Store(#[from] clearnode_store::StoreError),
    /// The state does not fit the format.
    #[error(transparent)]
    Format(#[from] crate::snapshot::SnapshotError),
}

/// The node's snapshots on disk.
#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    config: SnapshotConfig,
    busy: Arc<AtomicBool>,
}

impl SnapshotFiles {
    /// Snapshots in `config.dir` (created on first write).
    pub fn new(config: SnapshotConfig) -> Self {
        Self {
            config,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// After the Commit of `height`: starts writing its snapshot in the background if one is
    /// due and none is being written.
    pub fn after_commit(&self, store: &Store, height: u64) {
        let interval = self.config.interval;
        if interval == 0 || height == 0 || !height.is_multiple_of(interval) {
            return;
        }
        if self.busy.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                height,
                "skipping a snapshot: the previous one is still being written"
            );
            return;
        }
        let files = self.clone();
        let store = store.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                match files.write(&store, height) {
                    Ok(chunks) => tracing::info!(height, chunks, "wrote a state-sync snapshot"),
                    Err(e) => tracing::error!(height, "writing a snapshot failed: {e}"),
                }
                files.busy.store(false, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the snapshot thread: {e}");
            self.busy.store(false, Ordering::SeqCst);
        }
    }

    /// Writes the snapshot of `height` now and prunes old ones; returns its chunk count.
    pub fn write(&self, store: &Store, height: u64) -> Result<usize, SnapshotFileError> {
        let app_hash = store
            .root_hash(height)?
            .ok_or(clearnode_store::StoreError::UnknownVersion(height))?;
        let chunks = encode_chunks(&store.export(height)?, CHUNK_BYTES)?;
        let manifest = Manifest {
            app_hash,
            chunk_hashes: chunks.iter().map(|c| chunk_hash(c)).collect(),
        };
        std::fs::create_dir_all(&self.config.dir)?;
        let partial = self.config.dir.join(format!("{PARTIAL_PREFIX}{height}"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial)?;
        }
        std::fs::create_dir(&partial)?;
        for (index, chunk) in chunks.iter().enumerate() {
            std::fs::write(partial.join(index.to_string()), chunk)?;
        }
        std::fs::write(partial.join(MANIFEST_FILE), manifest.encode())?;
        let done = self.height_dir(height);
        if done.exists() {
            std::fs::remove_dir_all(&done)?;
        }
        std::fs::rename(&partial, &done)?;
        self.prune()?;
        Ok(chunks.len())
    }

    /// The heights of the whole snapshots on disk, in increasing order.
    fn heights(&self) -> Vec<u64> {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return Vec::new();
        };
        let mut heights: Vec<u64> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        heights.sort_unstable();
        heights
    }

    fn height_dir(&self, height: u64) -> PathBuf {
        self.config.dir.join(height.to_string())
    }

    /// Removes the oldest snapshots beyond `keep`, and partial ones a crash left behind (only
    /// one snapshot is written at a time, and this one is whole by now).
    fn prune(&self) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.config.dir)?.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(PARTIAL_PREFIX)
            {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        let heights = self.heights();
        let keep = self.config.keep.max(1);
        for height in &heights[..heights.len().saturating_sub(keep)] {
            std::fs::remove_dir_all(self.height_dir(*height))?;
        }
        Ok(())
    }

    /// The snapshots this node offers (ListSnapshots).
    pub fn list(&self) -> Vec<Snapshot> {
        self.heights()
            .into_iter()
            .filter_map(|height| {
                let bytes = std::fs::read(self.height_dir(height).join(MANIFEST_FILE)).ok()?;
                Some(Manifest::decode(&bytes).ok()?.snapshot(height))
            })
            .collect()
    }

    /// Chunk `index` of the snapshot of `height` (LoadSnapshotChunk); empty when there is none.
    pub fn chunk(&self, height: u64, format: u32, index: u32) -> Vec<u8> {
        if format != SNAPSHOT_FORMAT {
            return Vec::new();
        }
        std::fs::read(self.height_dir(height).join(index.to_string())).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::snapshot::{Chunk, Restore};

    fn store_with_versions(dir: &std::path::Path, versions: u64) -> Store {
        let store = Store::open(dir).unwrap();
        for version in 0..=versions {
            let writes = vec![(format!("key-{version}").into_bytes(), Some(vec![1; 100]))];
            let prepared = store.prepare(version, writes).unwrap();
            store.commit(prepared).unwrap();
        }
        store
    }

    #[test]
    fn snapshots_are_listed_served_pruned_and_restore_the_same_app_hash() {
        let dbs = tempfile::tempdir().unwrap();
        let store = store_with_versions(&dbs.path().join("a"), 6);
        let files = SnapshotFiles::new(SnapshotConfig {
            dir: dbs.path().join("snapshots"),
            interval: 2,
            keep: 2,
        });
        // A crash mid-write left a partial snapshot behind.
        let partial = dbs
            .path()
            .join("snapshots")
            .join(format!("{PARTIAL_PREFIX}3"));
        std::fs::create_dir_all(&partial).unwrap();
        for height in [2, 4, 6] {
            files.write(&store, height).unwrap();
        }
        assert!(!partial.exists(), "the partial snapshot is cleaned up");
        let listed = files.list();
        assert_eq!(listed.iter().map(|s| s.height).collect::<Vec<_>>(), [4, 6]);

        let offered = &listed[0];
        let app_hash = store.root_hash(4).unwrap().unwrap();
        let mut restore = Restore::offer(offered, &app_hash).unwrap();
        for index in 0..offered.chunks {
            let chunk = files.chunk(4, SNAPSHOT_FORMAT, index);
            assert_ne!(restore.apply(index, &chunk), Chunk::Refetch);
        }
        let restored = Store::open(&dbs.path().join("b")).unwrap();
        let committed = restored
            .restore(4, restore.into_pairs().unwrap(), app_hash)
            .unwrap();
        assert_eq!(committed.root_hash, app_hash);
        assert!(files.chunk(4, SNAPSHOT_FORMAT, offered.chunks).is_empty());
        assert!(files.chunk(2, SNAPSHOT_FORMAT, 0).is_empty());
    }
}
