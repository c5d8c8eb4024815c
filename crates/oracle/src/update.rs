//! The proposer's oracle update: the previous height's signed extensions,
//! first in the block, re-verified by every validator.

use std::collections::BTreeSet;

use clearnode_proto::oracle::v1 as pb;
use clearnode_types::price::OracleRound;
use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;

use crate::aggregate::aggregate_round;
use crate::vote::{decode_vote, extension_sign_bytes};
use crate::{OracleError, ValidatorAddress, ValidatorSet};

/// Marks an oracle update. A clearnode `Tx` can never start with it: a
/// protobuf field key of 0 does not decode.
pub const ORACLE_TX_PREFIX: &[u8] = b"\x00clearnode/oracle/v1\x00";

/// One validator's signed extension, as CometBFT hands it to the proposer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVote {
    /// Validator address.
    pub validator_address: Vec<u8>,
    /// Its power.
    pub power: i64,
    /// The extension.
    pub extension: Vec<u8>,
    /// Its signature.
    pub signature: Vec<u8>,
}

/// Whether a block transaction is an oracle update.
pub fn is_oracle_tx(tx: &[u8]) -> bool {
    tx.starts_with(ORACLE_TX_PREFIX)
}

/// The update transaction for the votes of `height` (the previous block).
pub fn build_update(height: i64, round: i64, votes: Vec<SignedVote>) -> Vec<u8> {
    let update = pb::OracleUpdate {
        height,
        round,
        votes: votes
            .into_iter()
            .filter(|v| !v.extension.is_empty())
            .map(|v| pb::SignedExtension {
                validator_address: v.validator_address,
                power: v.power,
                extension: v.extension,
                signature: v.signature,
            })
            .collect(),
    };
    [ORACLE_TX_PREFIX, update.encode_to_vec().as_slice()].concat()
}

/// Verifies an update for a block at `block_height` (its votes are from
/// `block_height - 1`) and returns the prices it sets.
pub fn verify_update(
    tx: &[u8],
    validators: &ValidatorSet,
    chain_id: &str,
    block_height: i64,
) -> Result<OracleRound, OracleError> {
    let body = tx
        .strip_prefix(ORACLE_TX_PREFIX)
        .ok_or_else(|| OracleError::Malformed("not an oracle update".into()))?;
    let update =
        pb::OracleUpdate::decode(body).map_err(|e| OracleError::Malformed(e.to_string()))?;
    let expected = block_height - 1;
    if update.height != expected {
        return Err(OracleError::WrongHeight {
            found: update.height,
            expected,
        });
    }
    let total: u64 = validators.values().map(|v| v.power).sum();
    let mut seen: BTreeSet<ValidatorAddress> = BTreeSet::new();
    let mut votes = Vec::with_capacity(update.votes.len());
    for vote in &update.votes {
        let address: ValidatorAddress = vote
            .validator_address
            .as_slice()
            .try_into()
            .map_err(|_| OracleError::InvalidVote("an address is 20 bytes".into()))?;
        let hex = address
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>();
        let validator = validators
            .get(&address)
            .ok_or_else(|| OracleError::InvalidVote(format!("{hex} is not a validator")))?;
        if u64::try_from(vote.power).ok() != Some(validator.power) {
            return Err(OracleError::InvalidVote(format!(
                "{hex} has power {}, not {}",
                validator.power, vote.power
            )));
        }
        if !seen.insert(address) {
            return Err(OracleError::InvalidVote(format!("{hex} voted twice")));
        }
        let key = VerifyingKey::from_bytes(&validator.public_key)
            .map_err(|_| OracleError::BadSignature(hex.clone()))?;
        let signature = Signature::from_slice(&vote.signature)
            .map_err(|_| OracleError::BadSignature(hex.clone()))?;
        let sign_bytes =
            extension_sign_bytes(&vote.extension, update.height, update.round, chain_id);
        key.verify_strict(&sign_bytes, &signature)
            .map_err(|_| OracleError::BadSignature(hex.clone()))?;
        // VerifyVoteExtension refused malformed extensions before they were
        // signed into a commit; a proposer cannot forge one, so decode strictly.
        votes.push((validator.power, decode_vote(&vote.extension)?));
    }
    Ok(aggregate_round(&votes, total))
}

#[cfg(test)]
mod tests;
