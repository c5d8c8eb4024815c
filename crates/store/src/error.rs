//! The store's error type.

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error (I/O, corruption detected by RocksDB, lock held by another
    /// process, ...).
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),

    /// The Jellyfish Merkle tree reported an error (e.g. a missing node).
    #[error("merkle tree: {0:#}")]
    Tree(anyhow::Error),

    /// `prepare` was called with a version that is not the next one: it must be the latest
    /// committed version + 1, or 0 on an empty store, or 0 again while 0 is the latest.
    #[error("version {requested} is not the next version (latest committed: {latest:?})")]
    VersionNotNext {
        /// The version asked for.
        requested: u64,
        /// The latest committed version, `None` on an empty store.
        latest: Option<u64>,
    },

    /// A prepared commit was computed on a state that is no longer the latest committed one
    /// (another commit happened in between).
    #[error("prepared commit of version {version} is stale: prepared on {prepared_on:?}, latest is {latest:?}")]
    StalePrepare {
        /// The version of the prepared commit.
        version: u64,
        /// The latest committed version when it was prepared.
        prepared_on: Option<u64>,
        /// The latest committed version now.
        latest: Option<u64>,
    },

    /// A version that has not been committed (or is above the latest) was asked for.
    #[error("unknown version {0}")]
    UnknownVersion(u64),

    /// Writes may not use the empty key (ics23 non-existence proofs need non-empty keys).
    #[error("empty keys are not allowed")]
    EmptyKey,

    /// The database is not one of ours or its contents do not decode (missing column family,
    /// bad metadata, undecodable node or value).
    #[error("corrupt or foreign store: {0}")]
    Corrupt(String),

    /// A state can only be restored into an empty store.
    #[error("cannot restore version {version}: the store already holds version {latest}")]
    NotEmpty {
        /// The version being restored.
        version: u64,
        /// The latest version the store holds.
        latest: u64,
    },

    /// Restored state does not hash to the root it was exported with.
    #[error("restored version {version} has root {actual}, expected {expected}")]
    RootMismatch {
        /// The version being restored.
        version: u64,
        /// The root the state should have (hex).
        expected: String,
        /// The root the restored state has (hex).
        actual: String,
    },

    /// An internal lock was poisoned by a panicking thread.
    #[error("store lock poisoned")]
    Poisoned,
}

impl StoreError {
    /// Converts an error coming back out of jmt, recovering our own error if jmt merely passed
    /// along what our reader returned.
    pub(crate) fn from_tree(err: anyhow::Error) -> Self {
        match err.downcast::<StoreError>() {
            Ok(own) => own,
            Err(other) => StoreError::Tree(other),
        }
    }
}
