//! Governance transactions: a validator submits a proposal or votes on one
//! (docs/governance.md). The signer must be the consensus key of a validator
//! in CometBFT's set; its voting power is its vote's weight.

use std::collections::BTreeSet;

use clearnode_types::tx::{SubmitProposal, VerifiedTx, VoteProposal};
use clearnode_types::{TxCode, TxRejection};

use super::reject;
use crate::block::{Engine, Event};
use crate::governance::{
    classify, supermajority, tally, Proposal, ProposalStatus, OPEN_PROPOSALS_PER_PROPOSER_MAX,
};
use crate::state::State;

/// The signer's consensus address, if it is a validator with power.
fn validator(state: &State, tx: &VerifiedTx) -> Result<[u8; 20], TxRejection> {
    let address = *tx.signer_address.as_bytes();
    match state.validators.get(&address) {
        Some(v) if v.public_key == tx.signer && v.power > 0 => Ok(address),
        _ => Err(reject(
            TxCode::NotValidator,
            format!("signer {} is not a consensus validator", tx.signer_address),
        )),
    }
}

pub(crate) fn validate_submit(
    state: &State,
    tx: &VerifiedTx,
    proposal: &SubmitProposal,
) -> Result<(), TxRejection> {
    let proposer = validator(state, tx)?;
    let open = state
        .governance
        .open_proposals
        .iter()
        .filter_map(|id| state.proposals.get(id))
        .filter(|p| p.proposer == proposer)
        .count();
    if open >= OPEN_PROPOSALS_PER_PROPOSER_MAX {
        return Err(reject(
            TxCode::TooManyOpenProposals,
            format!(
                "{} has {open} open proposals, at most {OPEN_PROPOSALS_PER_PROPOSER_MAX}",
                tx.signer_address
            ),
        ));
    }
    classify(state, &proposal.changes).map(|_| ())
}

pub(crate) fn validate_vote(
    state: &State,
    tx: &VerifiedTx,
    vote: &VoteProposal,
    height: u64,
) -> Result<(), TxRejection> {
    let voter = validator(state, tx)?;
    let id = vote.proposal_id;
    let proposal = state
        .proposals
        .get(&id)
        .ok_or_else(|| reject(TxCode::UnknownProposal, format!("no proposal {id}")))?;
    if proposal.status != ProposalStatus::Voting || height > proposal.voting_end_height {
        return Err(reject(
            TxCode::ProposalClosed,
            format!("proposal {id} is not open for votes"),
        ));
    }
    if proposal.yes_voters.contains(&voter) || proposal.no_voters.contains(&voter) {
        return Err(reject(
            TxCode::AlreadyVoted,
            format!(
                "validator {} already voted on proposal {id}",
                tx.signer_address
            ),
        ));
    }
    Ok(())
}

impl Engine {
    pub(crate) fn apply_submit_proposal(
        &mut self,
        tx_signer: [u8; 20],
        submit: SubmitProposal,
    ) -> Result<Event, TxRejection> {
        let raises_safety = classify(&self.state, &submit.changes)?;
        let height = self.state.chain.height;
        let id = self.state.governance.next_proposal_id.max(1);
        let proposal = Proposal {
            id,
            proposer: tx_signer,
            changes: submit.changes,
            description: submit.description,
            raises_safety,
            submitted_height: height,
            voting_end_height: height.saturating_add(self.state.params.governance.voting_blocks),
            yes_voters: BTreeSet::from([tx_signer]),
            no_voters: BTreeSet::new(),
            status: ProposalStatus::Voting,
            passed_height: 0,
            earliest_enact_height: 0,
            enacted_height: 0,
            note: String::new(),
        };
        self.state.proposals.insert(id, proposal);
        self.state.governance.next_proposal_id = id + 1;
        self.state.governance.open_proposals.insert(id);
        self.context()?.governance.state = true;
        let status = self.count_votes(id)?;
        Ok(Event::new("submit_proposal")
            .with("proposal_id", id)
            .with("raises_safety", raises_safety)
            .with("status", status))
    }

    pub(crate) fn apply_vote(
        &mut self,
        voter: [u8; 20],
        vote: VoteProposal,
    ) -> Result<Event, TxRejection> {
        let id = vote.proposal_id;
        let proposal = self
            .state
            .proposals
            .get_mut(&id)
            .ok_or_else(|| reject(TxCode::UnknownProposal, format!("no proposal {id}")))?;
        if vote.approve {
            proposal.yes_voters.insert(voter);
        } else {
            proposal.no_voters.insert(voter);
        }
        let status = self.count_votes(id)?;
        Ok(Event::new("vote_proposal")
            .with("proposal_id", id)
            .with("approve", vote.approve)
            .with("status", status))
    }

    /// Passes the proposal once more than 2/3 of the power voted yes, or
    /// rejects it once that can no longer happen; returns its status.
    fn count_votes(&mut self, id: u64) -> Result<&'static str, TxRejection> {
        let height = self.state.chain.height;
        let timelock = self.state.params.governance.timelock_blocks;
        let unknown = || reject(TxCode::UnknownProposal, format!("no proposal {id}"));
        let proposal = self.state.proposals.get(&id).ok_or_else(unknown)?;
        let (yes, total) = tally(&self.state.validators, &proposal.yes_voters);
        let (no, _) = tally(&self.state.validators, &proposal.no_voters);
        let (status, raises, note) = if supermajority(yes, total) {
            // Classified again: another proposal may have moved the values
            // it compares against since it was submitted.
            match classify(&self.state, &proposal.changes) {
                Ok(raises) => (ProposalStatus::Queued, raises, String::new()),
                Err(why) => (
                    ProposalStatus::Expired,
                    proposal.raises_safety,
                    format!(
                        "passed at height {height} but no longer applies: {}",
                        why.log
                    ),
                ),
            }
        } else if !supermajority(total.saturating_sub(no), total) {
            let note = format!("rejected at height {height}: {no} of {total} power voted no");
            (ProposalStatus::Rejected, proposal.raises_safety, note)
        } else {
            (
                ProposalStatus::Voting,
                proposal.raises_safety,
                String::new(),
            )
        };
        let proposal = self.state.proposals.get_mut(&id).ok_or_else(unknown)?;
        proposal.status = status;
        proposal.raises_safety = raises;
        if !status.is_open() {
            self.state.governance.open_proposals.remove(&id);
        }
        proposal.note = note;
        if status == ProposalStatus::Queued {
            proposal.passed_height = height;
            proposal.earliest_enact_height = if raises {
                height
            } else {
                height.saturating_add(timelock)
            };
        }
        self.context()?.governance.proposals.insert(id);
        Ok(match status {
            ProposalStatus::Voting => "voting",
            ProposalStatus::Queued => "queued",
            ProposalStatus::Rejected => "rejected",
            _ => "expired",
        })
    }
}
