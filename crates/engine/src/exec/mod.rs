//! Transaction execution, one file per kind. Each kind validates in phases
//! (who may do it, then what the state allows) and mutates only after every
//! check passed, so a rejection changes nothing.

mod authorize;
mod deposit;
mod governance;
mod isolated;
mod liquidator;
mod report;
mod withdraw;

pub(crate) use report::{moving_adds_exposure, OpenInterest};

use clearnode_types::tx::{Action, VerifiedTx};
use clearnode_types::{TxCode, TxRejection};

use crate::block::{Engine, Event};

pub(crate) fn reject(code: TxCode, log: impl Into<String>) -> TxRejection {
    TxRejection::new(code, log)
}

impl Engine {
    /// Stateful checks, in precedence order: sequence, then the kind's own.
    pub(crate) fn validate(&self, tx: &VerifiedTx, expected: u64) -> Result<(), TxRejection> {
        if tx.sequence != expected {
            return Err(reject(
                TxCode::WrongSequence,
                format!(
                    "sequence {} of signer {} is not the expected {expected}",
                    tx.sequence, tx.signer_address
                ),
            ));
        }
        match &tx.action {
            Action::Deposit(deposit) => deposit::validate(&self.state, tx, deposit),
            Action::Withdraw(withdraw) => withdraw::validate(&self.state, tx, withdraw),
            Action::AuthorizeVenue(authorize) => authorize::validate(&self.state, authorize),
            Action::PositionReport(report) => {
                // Inside a block the state's height is the block's own.
                let last_committed = self.state.chain.height - u64::from(self.block.is_some());
                report::validate(
                    &self.state,
                    &self.open_interest(),
                    tx,
                    report,
                    last_committed,
                    &|market, venue| self.venue_open_interest(market, venue),
                )
            }
            Action::RegisterLiquidator => Ok(()),
            Action::TakeOver(take) => liquidator::validate(&self.state, tx, take),
            Action::MoveIsolatedMargin(move_) => isolated::validate(&self.state, tx, move_),
            Action::TripBreaker(market) => self.trip_condition_holds(market.as_ref()),
            Action::SubmitProposal(proposal) => {
                governance::validate_submit(&self.state, tx, proposal)
            }
            Action::VoteProposal(vote) => {
                // Outside a block (CheckTx) the vote lands in the next one.
                let height = self.state.chain.height + u64::from(self.block.is_none());
                governance::validate_vote(&self.state, tx, vote, height)
            }
        }
    }

    /// Validates against the current state, then applies.
    pub(crate) fn execute(&mut self, tx: VerifiedTx) -> Result<Vec<Event>, TxRejection> {
        let signer = tx.signer_address;
        let expected = self.state.next_sequence(&signer);
        self.validate(&tx, expected)?;
        let event = match tx.action {
            Action::Deposit(deposit) => self.apply_deposit(deposit)?,
            Action::Withdraw(withdraw) => self.apply_withdraw(signer, withdraw)?,
            Action::AuthorizeVenue(authorize) => self.apply_authorize(signer, authorize)?,
            Action::PositionReport(report) => self.apply_report(report)?,
            Action::RegisterLiquidator => self.apply_register_liquidator(signer)?,
            Action::TakeOver(take) => self.apply_take_over(signer, take)?,
            Action::MoveIsolatedMargin(move_) => self.apply_move_isolated(signer, move_)?,
            Action::TripBreaker(market) => self.apply_trip_breaker(market)?,
            Action::SubmitProposal(proposal) => {
                self.apply_submit_proposal(*signer.as_bytes(), proposal)?
            }
            Action::VoteProposal(vote) => self.apply_vote(*signer.as_bytes(), vote)?,
        };
        let next = expected
            .checked_add(1)
            .ok_or_else(|| reject(TxCode::WrongSequence, "sequence exhausted"))?;
        self.state.sequences.insert(signer, next);
        self.context()?.dirty_sequences.insert(signer);
        Ok(vec![event
            .with("signer", signer)
            .with("sequence", tx.sequence)])
    }
}
