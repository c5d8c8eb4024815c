//! What an auditor checks, without trusting the node it asked.
//!
//! A clearnode answer carries `{height H, app_hash, key, proof}`. The app
//! hash of state H is in the header of block H+1, which the validators
//! signed. [`verify`] checks, with the tendermint-rs light-client verifier:
//!
//! 1. the header is for H+1, and hashes to the block id the commit signed
//!    (the signatures cover the block id, not the header itself);
//! 2. the header's validator set hash matches the validators it was given;
//! 3. validators holding at least 2/3 of that set's power signed it, and
//!    more than 1/3 of the power of the set the auditor *trusts* (e.g. the
//!    genesis validators) is among the signers — the light client's rule;
//! 4. the header's app hash is the answer's app hash;
//! 5. the ics23 proof of key = value verifies against that app hash.
//!
//! Any failure says which step failed.
#![forbid(unsafe_code)]

use std::fmt;

use tendermint::block::signed_header::SignedHeader;
use tendermint::validator::{Info, Set};
use tendermint_light_client_verifier::operations::voting_power::{
    ProdVotingPowerCalculator, VotingPowerCalculator, VotingPowerTally,
};
use tendermint_light_client_verifier::types::TrustThreshold;

/// What the node answered and what the chain says about it.
pub struct Evidence<'a> {
    /// The state key.
    pub key: &'a [u8],
    /// The encoded value.
    pub value: &'a [u8],
    /// The encoded ics23 proof.
    pub proof: &'a [u8],
    /// State version (block height) the value was read at.
    pub height: u64,
    /// App hash the node claims for that version.
    pub app_hash: &'a [u8],
    /// Block H+1's signed header.
    pub signed_header: &'a SignedHeader,
    /// Block H+1's validator set.
    pub validators: Vec<Info>,
    /// The validator set the auditor trusts.
    pub trusted: Vec<Info>,
}

/// Why the evidence does not prove the value.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The header is for another height.
    #[error("the header is for height {found}, but state {height} is committed in the header of {expected}")]
    HeaderHeight {
        /// State version.
        height: u64,
        /// Height whose header commits it.
        expected: u64,
        /// Height of the header given.
        found: u64,
    },
    /// The commit is for another block than the header shown.
    #[error("the header does not hash to the block the commit signed")]
    HeaderNotCommitted,
    /// The validators given are not the ones the header names.
    #[error("the validator set does not hash to the header's validators_hash")]
    ValidatorSet,
    /// The commit's signatures do not carry enough power.
    #[error("the header is not signed by enough voting power: {0}")]
    Signatures(String),
    /// The trusted validators are not among the signers.
    #[error("less than 1/3 of the trusted validators' power signed the header: {0}")]
    Trust(String),
    /// The header's app hash is not the claimed one.
    #[error("the signed header's app hash is {header}, the answer claims {claimed}")]
    AppHash {
        /// In the header.
        header: String,
        /// In the answer.
        claimed: String,
    },
    /// The proof does not decode.
    #[error("the proof does not decode: {0}")]
    ProofEncoding(String),
    /// The proof does not prove key = value against the app hash.
    #[error("the proof does not show this value under this key in the signed state")]
    Proof,
}

/// What was proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Chain id of the header.
    pub chain_id: String,
    /// State version.
    pub height: u64,
    /// App hash (uppercase hex).
    pub app_hash: String,
    /// The key (as text where it is text).
    pub key: String,
    /// Power that signed the header.
    pub signed_power: u64,
    /// Total power of the header's validator set.
    pub total_power: u64,
    /// Trusted power among the signers.
    pub trusted_signed_power: u64,
    /// Total trusted power.
    pub trusted_total_power: u64,
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PROVEN: on chain {chain}, `{key}` holds the value shown in the state of height {h}, \
             whose app hash {hash} is in the header of block {next}, signed by validators holding \
             {signed} of {total} voting power ({percent}%); {tsigned} of the {ttotal} trusted power signed it.",
            chain = self.chain_id,
            key = self.key,
            h = self.height,
            hash = self.app_hash,
            next = self.height + 1,
            signed = self.signed_power,
            total = self.total_power,
            percent = self.signed_power * 100 / self.total_power.max(1),
            tsigned = self.trusted_signed_power,
            ttotal = self.trusted_total_power,
        )
    }
}

fn tally_error(tally: &VotingPowerTally) -> String {
    format!(
        "{} of {} (threshold {})",
        tally.tallied, tally.total, tally.trust_threshold
    )
}

/// Checks the evidence; see the crate docs for the steps.
pub fn verify(evidence: &Evidence<'_>) -> Result<Statement, AuditError> {
    let header = evidence.signed_header.header();
    let expected = evidence.height + 1;
    if header.height.value() != expected {
        return Err(AuditError::HeaderHeight {
            height: evidence.height,
            expected,
            found: header.height.value(),
        });
    }
    // The signatures cover the commit's block id: the header must be that block.
    if header.hash() != evidence.signed_header.commit().block_id.hash {
        return Err(AuditError::HeaderNotCommitted);
    }
    let validators = Set::without_proposer(evidence.validators.clone());
    if validators.hash() != header.validators_hash {
        return Err(AuditError::ValidatorSet);
    }
    let calculator = ProdVotingPowerCalculator::default();
    let signed = calculator
        .voting_power_in(
            evidence.signed_header,
            &validators,
            TrustThreshold::TWO_THIRDS,
        )
        .map_err(|e| AuditError::Signatures(e.to_string()))?;
    calculator
        .check_signers_overlap(evidence.signed_header, &validators)
        .map_err(|_| AuditError::Signatures(tally_error(&signed)))?;
    let trusted = Set::without_proposer(evidence.trusted.clone());
    let trusted_tally = calculator
        .voting_power_in(evidence.signed_header, &trusted, TrustThreshold::ONE_THIRD)
        .map_err(|e| AuditError::Trust(e.to_string()))?;
    calculator
        .check_enough_trust_and_signers(
            evidence.signed_header,
            &trusted,
            TrustThreshold::ONE_THIRD,
            &validators,
        )
        .map_err(|_| AuditError::Trust(tally_error(&trusted_tally)))?;
    if header.app_hash.as_bytes() != evidence.app_hash {
        return Err(AuditError::AppHash {
            header: hex::encode_upper(header.app_hash.as_bytes()),
            claimed: hex::encode_upper(evidence.app_hash),
        });
    }
    let root: [u8; 32] = evidence
        .app_hash
        .try_into()
        .map_err(|_| AuditError::Proof)?;
    let proof = clearnode_store::decode_proof(evidence.proof)
        .map_err(|e| AuditError::ProofEncoding(e.to_string()))?;
    if !clearnode_store::verify_membership(&root, &proof, evidence.key, evidence.value) {
        return Err(AuditError::Proof);
    }
    Ok(Statement {
        chain_id: header.chain_id.to_string(),
        height: evidence.height,
        app_hash: hex::encode_upper(evidence.app_hash),
        key: String::from_utf8_lossy(evidence.key).into_owned(),
        signed_power: signed.tallied,
        total_power: signed.total,
        trusted_signed_power: trusted_tally.tallied,
        trusted_total_power: trusted_tally.total,
    })
}
