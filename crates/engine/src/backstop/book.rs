//! The backstop's book is offered to liquidators every block; a position no
//! liquidator has filled for `deadline_blocks` is closed at the mark against
//! the opposite legs that accounts hold on the same venue, ranked as ADL
//! ranks them (profit x leverage on net exposure, only up to each account's
//! net size so a hedge is never cut alone). Nobody pays anything but the
//! position: the fund's market risk is bounded by the deadline. The fund
//! holds the book only while it can pay for it: when its balance plus the
//! book's equity is no longer positive, the whole book is unwound at once.

use clearnode_num::Quantity;
use clearnode_types::{Address, MarketId, VenueId};

use super::{arithmetic, book_of, fund_balance};
use crate::block::{Engine, Event};
use crate::instructions::Instruction;
use crate::EngineError;

impl Engine {
    /// Closes the book's positions that waited too long.
    pub(super) fn unwind_stale_book(
        &mut self,
        fund: Option<&MarketId>,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let height = self.state.chain.height;
        let deadline_blocks = u64::from(self.state.params.liquidation.deadline_blocks);
        let book_address = book_of(fund);
        let Some(book) = self
            .state
            .accounts
            .get(&book_address)
            .filter(|book| !book.positions.is_empty())
        else {
            return Ok(());
        };
        let book_equity =
            crate::margin::compute_risk(book, &self.state.markets, &self.state.assets, height)
                .map_err(arithmetic)?
                .equity;
        let fund_worth = fund_balance(&self.state, fund)
            .checked_add(book_equity)
            .map_err(arithmetic)?;
        let insolvent = !fund_worth.is_positive();
        let stale: Vec<((MarketId, VenueId), Quantity)> = book
            .positions
            .iter()
            .filter(|((market, _), p)| {
                let due = insolvent || height >= p.updated_height.saturating_add(deadline_blocks);
                due && crate::breakers::liquidation_blocked(&self.state, market, height).is_none()
            })
            .map(|(key, p)| (key.clone(), p.size))
            .collect();
        for ((market_id, venue), size) in stale {
            self.unwind_book_position(book_address, &market_id, &venue, size, events)?;
        }
        Ok(())
    }

    fn unwind_book_position(
        &mut self,
        book: Address,
        market_id: &MarketId,
        venue: &VenueId,
        book_size: Quantity,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let side = -book_size.signum();
        self.refresh_adl_ranking(market_id)?;
        let mut left = book_size.abs().map_err(arithmetic)?;
        let mut after = None;
        while left.is_positive() {
            let Some(candidate) = self.next_adl_candidate(market_id, side, book, after)? else {
                break;
            };
            after = Some((std::cmp::Reverse(candidate.score), candidate.address));
            let leg = self.leg(candidate.address, market_id, venue);
            if leg.signum() != side {
                continue;
            }
            let cut = leg
                .abs()
                .map_err(arithmetic)?
                .min(candidate.net_size.abs().map_err(arithmetic)?)
                .min(left);
            let signed = if side > 0 {
                cut
            } else {
                cut.checked_neg().map_err(arithmetic)?
            };
            let key = (market_id.clone(), venue.clone());
            self.transfer_at_mark(candidate.address, book, &key, signed)?;
            left = left.checked_sub(cut).map_err(arithmetic)?;
            let mark = self.state.markets.get(market_id).map(|m| m.oracle_price);
            let mut instruction = Instruction::new(venue.clone(), "adl", candidate.address);
            instruction.market = Some(market_id.clone());
            instruction.quantity = Some(cut);
            instruction.price = mark;
            instruction.side = if side > 0 { 1 } else { -1 };
            instruction.counterparty = Some(book);
            instruction.amount = Some(clearnode_num::Money::ZERO);
            self.block_context()?.instructions.push(instruction);
            events.push(
                Event::new("backstop_unwind")
                    .with("account", candidate.address)
                    .with("market", market_id)
                    .with("venue", venue)
                    .with("quantity", cut),
            );
        }
        Ok(())
    }

    /// An account's position on one venue (zero if none).
    fn leg(&self, address: Address, market_id: &MarketId, venue: &VenueId) -> Quantity {
        self.state
            .accounts
            .get(&address)
            .and_then(|a| a.positions.get(&(market_id.clone(), venue.clone())))
            .map_or(Quantity::ZERO, |p| p.size)
    }
}
