//! Auto-deleveraging: the shortfall the insurance fund leaves is collected
//! from the accounts on the other side of the market, ranked by profit x
//! effective leverage on their net exposure across venues.

use std::cmp::Reverse;

use clearnode_num::{mul_div, Money, Quantity, Rounding};
use clearnode_types::{Address, MarketId, VenueId};

use super::{arithmetic, is_book, rejected, Covering};
use crate::block::{Engine, Event};
use crate::instructions::Instruction;
use crate::margin::compute_risk_into;
use crate::{invariant, EngineError};

/// An account ADL may reduce in one market.
pub(super) struct Candidate {
    pub(super) address: Address,
    /// Net size across venues (the side opposite the bankrupt account).
    pub(super) net_size: Quantity,
    /// Unrealized profit in the market (positive).
    pub(super) profit: Money,
}

impl Engine {
    /// Collects `shortfall` in one market from accounts whose net exposure is
    /// opposite the bankrupt account's, most profit x leverage first, as if
    /// they bought the bankrupt net position at its bankruptcy price: each
    /// loses part of its position to the backstop at the mark and pays the
    /// same shortfall per unit, at most `adl_profit_share_max` of its profit
    /// there. Returns what was collected (the shortfall unless candidates run
    /// out).
    pub(super) fn deleverage(
        &mut self,
        covering: &Covering,
        market_id: &MarketId,
        bankrupt_net: Quantity,
        shortfall: Money,
        events: &mut Vec<Event>,
    ) -> Result<Money, EngineError> {
        let bankrupt = covering.bankrupt;
        if bankrupt_net.is_zero() {
            return Ok(Money::ZERO);
        }
        let mut candidates = self.adl_candidates(market_id, -bankrupt_net.signum(), bankrupt)?;
        candidates.sort_by_key(|(score, candidate)| (Reverse(*score), candidate.address));
        let share_max = self.state.params.liquidation.adl_profit_share_max;
        let mut quantity_left = bankrupt_net.abs().map_err(arithmetic)?;
        let mut shortfall_left = shortfall;
        for (_, candidate) in candidates {
            if !shortfall_left.is_positive() || !quantity_left.is_positive() {
                break;
            }
            // Every unit goes at the same price (the shortfall left per unit
            // left); the cap on what one account pays limits its units.
            let cap = candidate
                .profit
                .mul_ratio(share_max, Rounding::Floor)
                .map_err(arithmetic)?;
            let affordable = Quantity::from_raw(
                mul_div(
                    cap.raw(),
                    quantity_left.raw(),
                    shortfall_left.raw(),
                    Rounding::Floor,
                )
                .map_err(arithmetic)?,
            );
            let held = candidate.net_size.abs().map_err(arithmetic)?;
            let reduce = held.min(quantity_left).min(affordable);
            if !reduce.is_positive() {
                continue;
            }
            let pay = if reduce == quantity_left {
                shortfall_left
            } else {
                Money::from_raw(
                    mul_div(
                        shortfall_left.raw(),
                        reduce.raw(),
                        quantity_left.raw(),
                        Rounding::Ceil,
                    )
                    .map_err(arithmetic)?,
                )
                .min(cap)
            };
            self.reduce_for_adl(covering.book, market_id, &candidate, reduce, pay)?;
            events.push(
                Event::new("adl")
                    .with("account", candidate.address)
                    .with("market", market_id)
                    .with("quantity", reduce)
                    .with("paid", pay)
                    .with("bankrupt", bankrupt),
            );
            quantity_left = quantity_left.checked_sub(reduce).map_err(arithmetic)?;
            shortfall_left = shortfall_left.checked_sub(pay).map_err(arithmetic)?;
        }
        shortfall.checked_sub(shortfall_left).map_err(arithmetic)
    }

    /// Holders of the market with a net position on `side` and a profit in
    /// it, scored by profit x effective leverage (both on net exposure).
    pub(super) fn adl_candidates(
        &self,
        market_id: &MarketId,
        side: i128,
        bankrupt: Address,
    ) -> Result<Vec<(i128, Candidate)>, EngineError> {
        // The holders index has the accounts this block touched as they
        // were at their first touch (their contributions are replaced at the
        // end of the block): add those that hold the market now (one that
        // no longer does has no exposure in it below).
        let indexed = self.state.indexes.market_holders.get(market_id);
        let mut unindexed = Vec::new();
        if let Some(block) = &self.block {
            unindexed.extend(block.touched.keys().copied().filter(|address| {
                !indexed.is_some_and(|set| set.contains(address))
                    && self
                        .state
                        .accounts
                        .get(address)
                        .is_some_and(|a| a.positions.keys().any(|(m, _)| m == market_id))
            }));
        }
        let height = self.state.chain.height;
        let mut candidates = Vec::new();
        // One risk, recomputed in place for each holder (no allocation per
        // holder); the candidates' order does not depend on the walk's:
        // they are sorted by (score, address).
        let mut risk = crate::margin::Risk::default();
        for address in indexed.into_iter().flatten().chain(&unindexed) {
            let Some(account) = self.state.accounts.get(address) else {
                continue;
            };
            if *address == bankrupt || is_book(address, account) {
                continue;
            }
            let (markets, assets) = (&self.state.markets, &self.state.assets);
            compute_risk_into(&mut risk, account, markets, assets, height).map_err(arithmetic)?;
            let Some(exposure) = risk.exposures.iter().find(|e| &e.market == market_id) else {
                continue;
            };
            if exposure.net_size.signum() != side
                || !exposure.unrealized_pnl.is_positive()
                || !risk.equity.is_positive()
            {
                continue;
            }
            let leverage = risk.leverage.raw().max(1);
            let score = exposure.unrealized_pnl.raw().saturating_mul(leverage);
            candidates.push((
                score,
                Candidate {
                    address: *address,
                    net_size: exposure.net_size,
                    profit: exposure.unrealized_pnl,
                },
            ));
        }
        Ok(candidates)
    }

    /// Reduces a candidate's net position by `quantity` (its legs on the net
    /// side, in venue order, so a hedge is never cut alone) against the
    /// backstop at the mark, and debits what it pays toward the shortfall.
    fn reduce_for_adl(
        &mut self,
        book: Address,
        market_id: &MarketId,
        candidate: &Candidate,
        quantity: Quantity,
        pay: Money,
    ) -> Result<(), EngineError> {
        let side = candidate.net_size.signum();
        let legs: Vec<(VenueId, Quantity)> = self
            .state
            .accounts
            .get(&candidate.address)
            .map(|a| {
                a.positions
                    .iter()
                    .filter(|((m, _), p)| m == market_id && p.size.signum() == side)
                    .map(|((_, v), p)| (v.clone(), p.size))
                    .collect()
            })
            .unwrap_or_default();
        let mut left = quantity;
        let mut paid_so_far = Money::ZERO;
        let mut cuts = Vec::new();
        for (venue, size) in legs {
            if !left.is_positive() {
                break;
            }
            let cut = size.abs().map_err(arithmetic)?.min(left);
            left = left.checked_sub(cut).map_err(arithmetic)?;
            cuts.push((venue, cut));
        }
        let mark = self
            .state
            .markets
            .get(market_id)
            .map(|m| m.oracle_price)
            .ok_or_else(|| invariant(format!("ADL in unlisted market {market_id}")))?;
        let count = cuts.len();
        for (index, (venue, cut)) in cuts.into_iter().enumerate() {
            let signed = if side > 0 {
                cut
            } else {
                cut.checked_neg().map_err(arithmetic)?
            };
            self.transfer_at_mark(
                candidate.address,
                book,
                &(market_id.clone(), venue.clone()),
                signed,
            )?;
            let leg_pay = if index + 1 == count {
                pay.checked_sub(paid_so_far).map_err(arithmetic)?
            } else {
                Money::from_raw(
                    mul_div(pay.raw(), cut.raw(), quantity.raw(), Rounding::Floor)
                        .map_err(arithmetic)?,
                )
            };
            paid_so_far = paid_so_far.checked_add(leg_pay).map_err(arithmetic)?;
            let mut instruction = Instruction::new(venue, "adl", candidate.address);
            instruction.market = Some(market_id.clone());
            instruction.quantity = Some(cut);
            instruction.price = Some(mark);
            instruction.side = if side > 0 { 1 } else { -1 };
            instruction.counterparty = Some(book);
            instruction.amount = Some(leg_pay);
            self.block_context()?.instructions.push(instruction);
        }
        let account = self.touch_account(candidate.address).map_err(rejected)?;
        account.settled_pnl = account.settled_pnl.checked_sub(pay).map_err(arithmetic)?;
        Ok(())
    }
}
