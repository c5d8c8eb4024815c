//! Prices from validators, through ABCI 2.0 vote extensions.
//!
//! - A validator's extension is an encoded `OracleVote`: at most
//!   [`QUOTES_PER_VOTE_MAX`] quotes, one per target, each a bounded price.
//!   An empty extension is valid (a validator whose feed is down must not
//!   halt the chain).
//! - The proposer of height H+1 puts one [`OracleUpdate`] first in its block:
//!   the signed extensions of height H's commit, prefixed by
//!   [`ORACLE_TX_PREFIX`] (which no clearnode `Tx` can start with).
//! - Every validator verifies each signature against CometBFT's
//!   `CanonicalVoteExtension` sign bytes and the validator set in state, and
//!   recomputes the stake-weighted median per target; a target is priced
//!   only when validators holding at least 2/3 of the voting power quoted it.
//!
//! Pure and deterministic: no clock, no I/O, no floats.
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]

mod aggregate;
mod update;
mod vote;

pub use aggregate::{aggregate, aggregate_round};
pub use update::{build_update, is_oracle_tx, verify_update, SignedVote, ORACLE_TX_PREFIX};
pub use vote::{decode_vote, encode_vote, extension_sign_bytes, QUOTES_PER_VOTE_MAX};

use std::collections::BTreeMap;

/// A CometBFT validator address: the first 20 bytes of sha256 of its key.
pub type ValidatorAddress = [u8; 20];

/// A member of the validator set, as the state holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validator {
    /// Its ed25519 consensus key.
    pub public_key: [u8; 32],
    /// Its voting power.
    pub power: u64,
}

/// The validator set by address.
pub type ValidatorSet = BTreeMap<ValidatorAddress, Validator>;

/// The address CometBFT gives an ed25519 key.
pub fn validator_address(public_key: &[u8; 32]) -> ValidatorAddress {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(public_key);
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest[..20]);
    address
}

/// Why an extension or an update is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OracleError {
    /// The bytes do not decode.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A quote is out of bounds, duplicated, or there are too many.
    #[error("invalid quote: {0}")]
    InvalidQuote(String),
    /// The update is for another height.
    #[error("update for height {found}, expected {expected}")]
    WrongHeight {
        /// In the update.
        found: i64,
        /// What the block needs.
        expected: i64,
    },
    /// A vote from outside the validator set, with the wrong power, or twice.
    #[error("vote: {0}")]
    InvalidVote(String),
    /// A signature does not verify.
    #[error("the extension signature of validator {0} does not verify")]
    BadSignature(String),
    /// The votes carry less than 2/3 of the voting power.
    #[error("the votes carry {signed} of {total} voting power, less than 2/3")]
    InsufficientPower {
        /// Power of the included votes.
        signed: u64,
        /// Total power.
        total: u64,
    },
}
