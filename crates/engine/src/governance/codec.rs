//! Stored forms of governance state (proto/clearnode/state/v1/governance.proto).

use std::collections::BTreeSet;

use clearnode_proto::state::v1 as pb;
use clearnode_types::tx::ParamChange;

use super::{GovernanceParams, GovernanceState, Proposal, ProposalStatus};
use crate::codec::DecodeError;

fn bad(detail: impl ToString) -> DecodeError {
    DecodeError {
        what: "governance",
        detail: detail.to_string(),
    }
}

/// Encodes governance timing.
pub(crate) fn params_to_pb(params: &GovernanceParams) -> pb::GovernanceParams {
    pb::GovernanceParams {
        voting_blocks: params.voting_blocks,
        timelock_blocks: params.timelock_blocks,
        queue_blocks_max: params.queue_blocks_max,
    }
}

/// Decodes governance timing; absent (a state from before governance): the defaults.
pub(crate) fn params_from_pb(value: Option<pb::GovernanceParams>) -> GovernanceParams {
    value.map_or_else(GovernanceParams::default, |p| GovernanceParams {
        voting_blocks: p.voting_blocks,
        timelock_blocks: p.timelock_blocks,
        queue_blocks_max: p.queue_blocks_max,
    })
}

/// Encodes the governance state.
pub(crate) fn governance_state_to_pb(state: &GovernanceState) -> pb::GovernanceState {
    pb::GovernanceState {
        next_proposal_id: state.next_proposal_id,
    }
}

/// Decodes the governance state.
pub(crate) fn governance_state_from_pb(
    value: pb::GovernanceState,
) -> Result<GovernanceState, DecodeError> {
    Ok(GovernanceState {
        next_proposal_id: value.next_proposal_id,
        open_proposals: BTreeSet::new(),
    })
}

fn status_to_pb(status: ProposalStatus) -> pb::ProposalStatus {
    match status {
        ProposalStatus::Voting => pb::ProposalStatus::Voting,
        ProposalStatus::Queued => pb::ProposalStatus::Queued,
        ProposalStatus::Enacted => pb::ProposalStatus::Enacted,
        ProposalStatus::Rejected => pb::ProposalStatus::Rejected,
        ProposalStatus::Expired => pb::ProposalStatus::Expired,
    }
}

fn address(bytes: &[u8]) -> Result<[u8; 20], DecodeError> {
    <[u8; 20]>::try_from(bytes).map_err(|_| bad("validator address is not 20 bytes"))
}

/// Encodes a proposal.
pub(crate) fn proposal_to_pb(proposal: &Proposal) -> pb::Proposal {
    pb::Proposal {
        id: proposal.id,
        proposer: proposal.proposer.to_vec(),
        changes: proposal.changes.iter().map(ParamChange::to_pb).collect(),
        description: proposal.description.clone(),
        raises_safety: proposal.raises_safety,
        submitted_height: proposal.submitted_height,
        voting_end_height: proposal.voting_end_height,
        yes_voters: proposal.yes_voters.iter().map(|a| a.to_vec()).collect(),
        no_voters: proposal.no_voters.iter().map(|a| a.to_vec()).collect(),
        status: status_to_pb(proposal.status).into(),
        passed_height: proposal.passed_height,
        earliest_enact_height: proposal.earliest_enact_height,
        enacted_height: proposal.enacted_height,
        note: proposal.note.clone(),
    }
}

/// Decodes a proposal.
pub(crate) fn proposal_from_pb(value: pb::Proposal) -> Result<Proposal, DecodeError> {
    let status = match pb::ProposalStatus::try_from(value.status) {
        Ok(pb::ProposalStatus::Voting) => ProposalStatus::Voting,
        Ok(pb::ProposalStatus::Queued) => ProposalStatus::Queued,
        Ok(pb::ProposalStatus::Enacted) => ProposalStatus::Enacted,
        Ok(pb::ProposalStatus::Rejected) => ProposalStatus::Rejected,
        Ok(pb::ProposalStatus::Expired) => ProposalStatus::Expired,
        _ => return Err(bad(format!("proposal status {}", value.status))),
    };
    let changes = value
        .changes
        .into_iter()
        .map(|c| ParamChange::from_pb(c).map_err(|e| bad(e.log)))
        .collect::<Result<Vec<_>, _>>()?;
    let voters = |list: &[Vec<u8>]| {
        list.iter()
            .map(|a| address(a))
            .collect::<Result<BTreeSet<_>, _>>()
    };
    Ok(Proposal {
        id: value.id,
        proposer: address(&value.proposer)?,
        changes,
        description: value.description,
        raises_safety: value.raises_safety,
        submitted_height: value.submitted_height,
        voting_end_height: value.voting_end_height,
        yes_voters: voters(&value.yes_voters)?,
        no_voters: voters(&value.no_voters)?,
        status,
        passed_height: value.passed_height,
        earliest_enact_height: value.earliest_enact_height,
        enacted_height: value.enacted_height,
        note: value.note,
    })
}

/// Loads the proposals and the governance state (absent: none yet).
pub(crate) fn load<S: crate::StateSource>(
    source: &S,
    state: &mut crate::state::State,
) -> Result<(), crate::LoadError> {
    use prost::Message;
    let source_error = |e: S::Error| crate::LoadError::Source(e.to_string());
    let decode_error = |e: prost::DecodeError| bad(e);
    let stored = source
        .get(&crate::keys::proposal_state())
        .map_err(source_error)?;
    if let Some(bytes) = stored {
        let value = pb::GovernanceState::decode(bytes.as_slice()).map_err(decode_error)?;
        state.governance = governance_state_from_pb(value)?;
    }
    for (_, bytes) in source
        .scan_prefix(crate::keys::PROPOSAL_PREFIX)
        .map_err(source_error)?
    {
        let value = pb::Proposal::decode(bytes.as_slice()).map_err(decode_error)?;
        let proposal = proposal_from_pb(value)?;
        if proposal.status.is_open() {
            state.governance.open_proposals.insert(proposal.id);
        }
        state.proposals.insert(proposal.id, proposal);
    }
    Ok(())
}
