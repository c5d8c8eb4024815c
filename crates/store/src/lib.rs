//! # clearnode-store
//!
//! Versioned application state of the clearnode chain on RocksDB, committed to by a SHA-256
//! [Jellyfish Merkle tree](jmt) whose root hash is the chain's app hash.
//!
//! ## Role
//!
//! The ABCI app calls [`Store::prepare`] in `FinalizeBlock` (computes the new root, writes
//! nothing) and [`Store::commit`] in `Commit` (persists the version in one synced RocksDB write
//! batch). Queries ([`Store::get`], [`Store::get_latest`], [`Store::scan_prefix_latest`],
//! [`Store::cursor_prefix_latest`], [`Store::get_with_proof`]) run from other threads, concurrently with prepare/commit, and only
//! ever see committed versions.
//!
//! ## Invariants
//!
//! * Version `H` is the state after block `H`; version 0 is genesis. The app hash of version `H`
//!   is the tree's root hash at `H` ([`Store::root_hash`]).
//! * Versions are committed strictly in order: `prepare(v)` requires `v` = latest + 1, or `v` = 0
//!   on an empty store. Version 0 may be prepared and committed again while it is the latest
//!   (CometBFT may re-run `InitChain` after a crash before block 1); it then replaces the old
//!   genesis entirely.
//! * A commit is one atomic `WriteBatch` written with `sync = true`; it contains the tree nodes,
//!   values, preimages, the flat latest map and the latest version/root metadata together, so a
//!   crash leaves either the whole version or none of it.
//! * Roots are deterministic: they depend only on the sequence of (deduplicated) write sets, not
//!   on the order of writes within a set, the machine, or timing — nor on whether a version
//!   went through jmt's batch insertion (versions without deletions) or one-by-one insertion.
//! * All versions are kept (no pruning yet). A store restored from a state-sync snapshot
//!   ([`Store::restore`]) starts at the snapshot's version: older versions are absent.
//! * Keys are non-empty byte strings (ics23 non-existence proofs need non-empty keys); values are
//!   arbitrary byte strings, possibly empty (see the committed value form below).
//!
//! ## Column families and key layout
//!
//! All integers are big-endian so that RocksDB's bytewise order is numeric order.
//!
//! | CF           | key                                   | value                                  |
//! |--------------|---------------------------------------|----------------------------------------|
//! | `jmt_nodes`  | version (u64) ++ borsh(jmt `NodeKey`) | borsh(jmt `Node`)                      |
//! | `jmt_values` | key hash (32) ++ version (u64)        | tag (1 byte: 0 deleted, 1 present) ++ `0x01 ++ value` |
//! | `preimages`  | key hash (32)                         | the key                                |
//! | `latest`     | the key                               | its value in the latest version (present keys only) |
//! | `meta`       | `b"format"`                           | `b"clearnode-store/v1"`                |
//! | `meta`       | `b"latest"`                           | version (u64) ++ root hash (32)        |
//! | `meta`       | `b"root/"` ++ version (u64)           | root hash (32) of that version         |
//!
//! The tree's leaves commit to `0x01 ++ value` rather than the bare value, so that empty values
//! are provable with ics23 (which rejects empty values); `jmt_values` stores that committed
//! form, [`Store::get`] strips the prefix and [`verify_membership`] adds it back.
//!
//! The key hash is SHA-256 of the key (`jmt::KeyHash::with::<sha2::Sha256>`). The value of a key
//! at version `v` is the `jmt_values` entry of its hash with the greatest version `<= v`. borsh is
//! the encoding jmt itself derives for its node types.
//!
//! ## Never depends on
//!
//! The matching engine, the network, consensus, wall-clock time or randomness: this crate knows
//! byte keys and byte values only. Other crates decide what they mean.
#![forbid(unsafe_code)]

mod commit;
mod error;
mod keys;
pub mod proof;
mod proof_bytes;
pub use proof_bytes::{decode_proof, encode_proof};
mod reader;
mod scan;
mod snapshot;
mod store;

#[cfg(test)]
mod tests;

pub use commit::PreparedCommit;
pub use error::StoreError;
pub use proof::{proof_spec, verify_membership, verify_non_membership};
pub use scan::{PairRef, PrefixCursor};
pub use store::Store;

/// One write of a block: `(key, Some(value))` sets the key, `(key, None)` deletes it.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A `(key, value)` pair, as returned by [`Store::scan_prefix_latest`].
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The root hash of the empty tree (jmt's sparse Merkle placeholder hash).
pub const EMPTY_ROOT_HASH: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// A committed version and its root hash (the app hash of that height).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Committed {
    /// The version (block height; 0 = genesis).
    pub version: u64,
    /// The Jellyfish Merkle root hash of the state at `version`.
    pub root_hash: [u8; 32],
}
