//! Prices through vote extensions: the ABCI side of `clearnode-oracle`.
//!
//! ExtendVote attaches the node's current quotes; VerifyVoteExtension checks
//! their form and bounds (an empty extension is always valid); the proposer
//! puts the previous height's signed extensions first in its block;
//! ProcessProposal and FinalizeBlock re-verify them against the validator
//! set in state and derive the same prices on every node.

use std::sync::Arc;

use bytes::Bytes;
use clearnode_engine::Engine;
use clearnode_oracle::{
    build_update, decode_vote, encode_vote, is_oracle_tx, verify_update, SignedVote, Validator,
    ValidatorSet,
};
use clearnode_types::price::{OracleRound, PriceTarget, PriceUpdate};
use tendermint_proto::v0_38::abci::{
    response_verify_vote_extension::VerifyStatus, ExtendedCommitInfo, RequestVerifyVoteExtension,
    ResponseExtendVote, ResponseVerifyVoteExtension,
};

/// Where a validator's quotes come from (its price feed), asked with the
/// height whose precommit the extension rides on.
pub type QuoteSource = Arc<dyn Fn(i64) -> Vec<PriceUpdate> + Send + Sync>;

/// CometBFT's flag for a precommit for the block.
const BLOCK_ID_FLAG_COMMIT: i32 = 2;

/// ExtendVote: the feed's quotes, at most the allowed number.
pub fn extend_vote(quotes: &QuoteSource, height: i64) -> ResponseExtendVote {
    let mut quotes = quotes(height);
    quotes.truncate(clearnode_oracle::QUOTES_PER_VOTE_MAX);
    ResponseExtendVote {
        vote_extension: encode_vote(&quotes).into(),
    }
}

/// VerifyVoteExtension: form and bounds only; deterministic.
pub fn verify_vote_extension(request: &RequestVerifyVoteExtension) -> ResponseVerifyVoteExtension {
    let status = match decode_vote(&request.vote_extension) {
        Ok(_) => VerifyStatus::Accept,
        Err(e) => {
            tracing::warn!(height = request.height, "refusing a vote extension: {e}");
            VerifyStatus::Reject
        }
    };
    ResponseVerifyVoteExtension {
        status: status.into(),
    }
}

/// The proposer's update from the previous height's extended commit, if any
/// validator extended its vote.
pub fn update_from_commit(commit: Option<&ExtendedCommitInfo>, height: i64) -> Option<Bytes> {
    let commit = commit?;
    let votes: Vec<SignedVote> = commit
        .votes
        .iter()
        .filter(|v| v.block_id_flag == BLOCK_ID_FLAG_COMMIT && !v.vote_extension.is_empty())
        .filter_map(|v| {
            let validator = v.validator.as_ref()?;
            Some(SignedVote {
                validator_address: validator.address.to_vec(),
                power: validator.power,
                extension: v.vote_extension.to_vec(),
                signature: v.extension_signature.to_vec(),
            })
        })
        .collect();
    if votes.is_empty() {
        return None;
    }
    Some(build_update(height - 1, i64::from(commit.round), votes).into())
}

fn validator_set(engine: &Engine) -> ValidatorSet {
    engine
        .state()
        .validators
        .iter()
        .map(|(address, v)| {
            let validator = Validator {
                public_key: v.public_key,
                power: v.power,
            };
            (*address, validator)
        })
        .collect()
}

/// A proposal may carry one oracle update, first, and it must verify.
pub fn proposal_oracle_is_valid(engine: &Engine, txs: &[Bytes], height: i64) -> bool {
    if txs.iter().skip(1).any(|tx| is_oracle_tx(tx)) {
        return false;
    }
    match txs.first() {
        Some(tx) if is_oracle_tx(tx) => {
            verify_update(tx, &validator_set(engine), engine.chain_id(), height).is_ok()
        }
        _ => true,
    }
}

/// The block's oracle round from its first transaction, when that is an
/// oracle update; only listed targets are kept (validators cannot list
/// markets).
pub fn block_oracle(engine: &Engine, txs: &[Bytes], height: i64) -> Option<OracleRound> {
    let tx = txs.first().filter(|tx| is_oracle_tx(tx))?;
    let round = match verify_update(tx, &validator_set(engine), engine.chain_id(), height) {
        Ok(round) => round,
        Err(e) => {
            // Deterministic: every node derives the same (empty) round.
            tracing::warn!(
                height,
                "ignoring an oracle update that does not verify: {e}"
            );
            OracleRound::default()
        }
    };
    let state = engine.state();
    let listed = |target: &PriceTarget| match target {
        PriceTarget::Market(id) => state.markets.contains_key(id),
        PriceTarget::Asset(id) => state.assets.contains_key(id),
    };
    Some(OracleRound {
        prices: round
            .prices
            .into_iter()
            .filter(|p| listed(&p.target))
            .collect(),
        underquoted: round.underquoted.into_iter().filter(listed).collect(),
    })
}
