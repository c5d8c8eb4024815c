//! Governance of risk parameters (docs/governance.md).
//!
//! Validators propose and vote with their consensus keys; a proposal passes
//! when its yes voters hold more than 2/3 of the voting power. A proposal
//! whose every change raises safety takes effect in the block it passes; one
//! with any safety-lowering change waits `timelock_blocks`, and then only at
//! a block where no breaker one of its changes weakens is tripped (it waits
//! at most `queue_blocks_max` more blocks, then expires).
//!
//! Votes are counted as they arrive (a proposal passes, or is rejected once
//! passing is out of reach, in the transaction that decides it). Changes take
//! effect only at the start of end_block, before accounts' risk is
//! recomputed: proposals whose voting window closed are rejected, due ones
//! are enacted in id order (holders of a market or asset whose margin
//! parameters changed are touched, so their risk is recomputed in the same
//! block).
//!
//! Must never depend on: anything but the engine's state (the breaker state
//! it consults comes through `breaker_hooks`).

mod breaker_hooks;
mod changes;
pub(crate) mod codec;

use std::collections::{BTreeMap, BTreeSet};

use clearnode_types::tx::ParamChange;
use prost::Message;

use crate::block::{BlockContext, Engine, Event, Write};
use crate::{keys, EngineError};

pub(crate) use changes::classify;

/// Governance timing (genesis `params.governance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GovernanceParams {
    /// Blocks a proposal stays open for votes after the block it was submitted in.
    pub voting_blocks: u64,
    /// Blocks a passed safety-lowering proposal waits.
    pub timelock_blocks: u64,
    /// Blocks a due safety-lowering proposal may wait for a breaker to clear.
    pub queue_blocks_max: u64,
}

impl Default for GovernanceParams {
    fn default() -> Self {
        let genesis = clearnode_types::genesis::GenesisGovernance::default();
        Self {
            voting_blocks: genesis.voting_blocks,
            timelock_blocks: genesis.timelock_blocks,
            queue_blocks_max: genesis.queue_blocks_max,
        }
    }
}

/// Most proposals one validator may have open (voting or queued) at once:
/// each block looks at every open proposal, so their number is bounded, and
/// per proposer so that one validator cannot crowd out the others.
pub const OPEN_PROPOSALS_PER_PROPOSER_MAX: usize = 8;

/// Governance state besides the proposals (`proposal_state`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GovernanceState {
    /// The id the next proposal gets (ids start at 1).
    pub next_proposal_id: u64,
    /// Proposals voting or queued (derived from the proposals, not stored).
    pub open_proposals: BTreeSet<u64>,
}

/// Where a proposal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalStatus {
    /// Open for votes.
    Voting,
    /// Passed; waiting for its timelock or for a breaker to clear.
    Queued,
    /// Took effect.
    Enacted,
    /// Did not reach more than 2/3 of the power in its window.
    Rejected,
    /// Passed but could not take effect.
    Expired,
}

impl ProposalStatus {
    /// Voting or queued: the end of each block looks at it.
    pub fn is_open(self) -> bool {
        matches!(self, ProposalStatus::Voting | ProposalStatus::Queued)
    }
}

/// A proposal (`proposal/<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Id.
    pub id: u64,
    /// The proposing validator's consensus address.
    pub proposer: [u8; 20],
    /// The changes, applied in order.
    pub changes: Vec<ParamChange>,
    /// Why.
    pub description: String,
    /// Every change raises safety (as classified when submitted, and again
    /// when it passed).
    pub raises_safety: bool,
    /// Block it was submitted in.
    pub submitted_height: u64,
    /// Last block whose votes count.
    pub voting_end_height: u64,
    /// Validators that voted yes.
    pub yes_voters: BTreeSet<[u8; 20]>,
    /// Validators that voted no.
    pub no_voters: BTreeSet<[u8; 20]>,
    /// Status.
    pub status: ProposalStatus,
    /// Block it passed in (0: not passed).
    pub passed_height: u64,
    /// Earliest block it may take effect in.
    pub earliest_enact_height: u64,
    /// Block it took effect in (0: not yet).
    pub enacted_height: u64,
    /// Why it was rejected or expired.
    pub note: String,
}

/// What governance changed in a block, to be written at its end.
#[derive(Debug, Default)]
pub(crate) struct GovernanceDirty {
    pub(crate) proposals: BTreeSet<u64>,
    pub(crate) params: bool,
    pub(crate) state: bool,
}

/// Yes and total voting power of a proposal under the current validator set.
pub(crate) fn tally(
    validators: &BTreeMap<[u8; 20], crate::state::ConsensusValidator>,
    voters: &BTreeSet<[u8; 20]>,
) -> (u128, u128) {
    let total = validators.values().map(|v| u128::from(v.power)).sum();
    let counted = voters
        .iter()
        .filter_map(|address| validators.get(address))
        .map(|v| u128::from(v.power))
        .sum();
    (counted, total)
}

/// More than 2/3 of the total power.
pub(crate) fn supermajority(power: u128, total: u128) -> bool {
    power * 3 > total * 2
}

impl Engine {
    /// End of block: closes voting windows and enacts due proposals.
    pub(crate) fn run_governance(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        let height = self.state.chain.height;
        let open: Vec<u64> = self
            .state
            .governance
            .open_proposals
            .iter()
            .copied()
            .collect();
        for id in open {
            let Some(proposal) = self.state.proposals.get(&id) else {
                continue;
            };
            match proposal.status {
                ProposalStatus::Voting if height >= proposal.voting_end_height => {
                    let (yes, total) = tally(&self.state.validators, &proposal.yes_voters);
                    let note = format!(
                        "voting closed at height {height} with {yes} of {total} power in favour"
                    );
                    self.close_proposal(id, ProposalStatus::Rejected, note, events)?;
                }
                ProposalStatus::Queued if height >= proposal.earliest_enact_height => {
                    self.try_enact(id, height, events)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn try_enact(
        &mut self,
        id: u64,
        height: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let Some(proposal) = self.state.proposals.get(&id) else {
            return Ok(());
        };
        let blocked = proposal
            .changes
            .iter()
            .find(|change| self.weakened_breaker_tripped(change))
            .map(ParamChange::kind);
        if let Some(kind) = blocked {
            let deadline = proposal
                .earliest_enact_height
                .saturating_add(self.state.params.governance.queue_blocks_max);
            if height >= deadline {
                let note = format!(
                    "expired at height {height}: the breaker its {kind} change weakens stayed tripped for {} blocks",
                    self.state.params.governance.queue_blocks_max
                );
                self.close_proposal(id, ProposalStatus::Expired, note, events)?;
            }
            return Ok(());
        }
        let changes = proposal.changes.clone();
        // Changes are checked again: an earlier proposal may have listed the
        // same asset or paused the same market meanwhile.
        if let Err(rejection) = classify(&self.state, &changes) {
            let note = format!("expired at height {height}: {}", rejection.log);
            return self.close_proposal(id, ProposalStatus::Expired, note, events);
        }
        for change in &changes {
            self.apply_change(change, events)?;
        }
        if let Some(proposal) = self.state.proposals.get_mut(&id) {
            proposal.status = ProposalStatus::Enacted;
            proposal.enacted_height = height;
        }
        self.state.governance.open_proposals.remove(&id);
        self.block_context()?.governance.proposals.insert(id);
        events.push(
            Event::new("proposal_enacted")
                .with("proposal_id", id)
                .with("changes", changes.len()),
        );
        Ok(())
    }

    pub(crate) fn close_proposal(
        &mut self,
        id: u64,
        status: ProposalStatus,
        note: String,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        if let Some(proposal) = self.state.proposals.get_mut(&id) {
            proposal.status = status;
            proposal.note.clone_from(&note);
        }
        self.state.governance.open_proposals.remove(&id);
        self.block_context()?.governance.proposals.insert(id);
        let kind = match status {
            ProposalStatus::Rejected => "proposal_rejected",
            _ => "proposal_expired",
        };
        events.push(Event::new(kind).with("proposal_id", id).with("note", note));
        Ok(())
    }

    /// The block's governance writes: changed proposals, params and state.
    pub(crate) fn governance_writes(
        &self,
        block: &BlockContext,
    ) -> Result<Vec<Write>, EngineError> {
        let dirty = &block.governance;
        let mut writes = Vec::new();
        for id in &dirty.proposals {
            let value = self
                .state
                .proposals
                .get(id)
                .map(|p| codec::proposal_to_pb(p).encode_to_vec());
            writes.push((keys::proposal(*id), value));
        }
        if dirty.params {
            let params =
                crate::codec::params_to_pb(&self.state.params).map_err(crate::invariant)?;
            writes.push((keys::params(), Some(params.encode_to_vec())));
        }
        if dirty.state {
            let value = codec::governance_state_to_pb(&self.state.governance).encode_to_vec();
            writes.push((keys::proposal_state(), Some(value)));
        }
        Ok(writes)
    }
}
