//! Auto-deleveraging: the shortfall the insurance fund leaves is collected
//! from the accounts on the other side of the market, ranked by profit x
//! effective leverage on their net exposure across venues.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};

use clearnode_num::{mul_div, Money, Quantity, Rounding};
use clearnode_types::{Address, MarketId, VenueId};

use super::{arithmetic, is_book, rejected, Covering};
use crate::block::{Engine, Event};
use crate::instructions::Instruction;
use crate::margin::compute_risk_into;
use crate::{invariant, EngineError};

/// An account ADL may reduce in one market.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(super) address: Address,
    /// Net size across venues (the side opposite the bankrupt account).
    pub(super) net_size: Quantity,
    /// Unrealized profit in the market (positive).
    pub(super) profit: Money,
    /// Profit x effective leverage: who gives first.
    pub(super) score: i128,
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
        let side = -bankrupt_net.signum();
        self.refresh_adl_ranking(market_id)?;
        let share_max = self.state.params.liquidation.adl_profit_share_max;
        let mut quantity_left = bankrupt_net.abs().map_err(arithmetic)?;
        let mut shortfall_left = shortfall;
        // The ranking as it stands now: the candidates this call reduces are
        // touched (scored again by the next call), not moved in this walk.
        let mut after: Option<RankKey> = None;
        while shortfall_left.is_positive() && quantity_left.is_positive() {
            let Some(candidate) = self.next_adl_candidate(market_id, side, bankrupt, after)? else {
                break;
            };
            after = Some((Reverse(candidate.score), candidate.address));
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

    /// Brings the market's ADL ranking up to date: built from the market's
    /// holders the first time this block needs it, then only the accounts
    /// touched since are scored again. A holder's score depends on nothing
    /// but its own account and the block's prices, which the backstop does
    /// not move, so the ranking equals one scored afresh.
    pub(super) fn refresh_adl_ranking(&mut self, market_id: &MarketId) -> Result<(), EngineError> {
        let block = self.block_context()?;
        let (fresh, stale): (bool, Vec<Address>) = match block.adl_rankings.get_mut(market_id) {
            Some(ranking) => (
                false,
                std::mem::take(&mut ranking.stale).into_iter().collect(),
            ),
            None => (true, self.adl_holders(market_id)),
        };
        let height = self.state.chain.height;
        // One risk, recomputed in place for each holder (no allocation per holder).
        let mut risk = crate::margin::Risk::default();
        let mut scored = Vec::with_capacity(stale.len());
        for address in stale {
            let score = match self.state.accounts.get(&address) {
                Some(account) if !is_book(&address, account) => {
                    let (markets, assets) = (&self.state.markets, &self.state.assets);
                    compute_risk_into(&mut risk, account, markets, assets, height)
                        .map_err(arithmetic)?;
                    candidate_in(&risk, market_id, address)
                }
                _ => None,
            };
            scored.push((address, score));
        }
        let rankings = &mut self.block_context()?.adl_rankings;
        if fresh {
            rankings.insert(market_id.clone(), AdlRanking::build(scored));
            return Ok(());
        }
        let ranking = rankings
            .get_mut(market_id)
            .ok_or_else(|| invariant("ADL ranking vanished"))?;
        for (address, candidate) in scored {
            ranking.set(address, candidate);
        }
        Ok(())
    }

    /// Holders of the market: its holders index (the accounts this block
    /// touched as they were at their first touch) and the touched accounts
    /// that hold it now.
    fn adl_holders(&self, market_id: &MarketId) -> Vec<Address> {
        let indexed = self.state.indexes.market_holders.get(market_id);
        let mut holders: Vec<Address> = indexed.into_iter().flatten().copied().collect();
        if let Some(block) = &self.block {
            holders.extend(block.touched.keys().copied().filter(|address| {
                !indexed.is_some_and(|set| set.contains(address))
                    && self
                        .state
                        .accounts
                        .get(address)
                        .is_some_and(|a| a.positions.keys().any(|(m, _)| m == market_id))
            }));
        }
        holders
    }

    /// The best-ranked candidate on `side` after `after`, other than the
    /// bankrupt account: most profit x leverage first, then address.
    pub(super) fn next_adl_candidate(
        &mut self,
        market_id: &MarketId,
        side: i128,
        bankrupt: Address,
        after: Option<RankKey>,
    ) -> Result<Option<Candidate>, EngineError> {
        let ranking = self
            .block_context()?
            .adl_rankings
            .get(market_id)
            .ok_or_else(|| invariant("ADL ranking missing"))?;
        let Some(order) = ranking.order.get(&side) else {
            return Ok(None);
        };
        let lower = after.map_or(Unbounded, Excluded);
        let next = order
            .range((lower, Unbounded))
            .map(|(_, address)| *address)
            .find(|address| *address != bankrupt);
        Ok(next.and_then(|address| ranking.scored.get(&address).cloned()))
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

/// Where a candidate sits in its side's order.
type RankKey = (Reverse<i128>, Address);

/// A market's ADL candidates within one block's backstop, per side.
#[derive(Debug, Default)]
pub(crate) struct AdlRanking {
    scored: BTreeMap<Address, Candidate>,
    order: BTreeMap<i128, BTreeSet<RankKey>>,
    /// Accounts touched since the ranking was last brought up to date.
    pub(crate) stale: BTreeSet<Address>,
}

impl AdlRanking {
    /// A ranking of scored holders, built in bulk (sorted input fills the
    /// trees' nodes at once).
    fn build(scored: Vec<(Address, Option<Candidate>)>) -> Self {
        let mut candidates: Vec<Candidate> = scored
            .into_iter()
            .filter_map(|(_, candidate)| candidate)
            .collect();
        candidates.sort_unstable_by_key(|c| (c.net_size.signum(), Reverse(c.score), c.address));
        let mut order: BTreeMap<i128, BTreeSet<RankKey>> = BTreeMap::new();
        for side in candidates.chunk_by(|a, b| a.net_size.signum() == b.net_size.signum()) {
            if let Some(first) = side.first() {
                let keys = side.iter().map(|c| (Reverse(c.score), c.address));
                order.insert(first.net_size.signum(), keys.collect());
            }
        }
        let scored = candidates.into_iter().map(|c| (c.address, c)).collect();
        Self {
            scored,
            order,
            stale: BTreeSet::new(),
        }
    }

    fn set(&mut self, address: Address, candidate: Option<Candidate>) {
        if let Some(old) = self.scored.remove(&address) {
            if let Some(side) = self.order.get_mut(&old.net_size.signum()) {
                side.remove(&(Reverse(old.score), address));
            }
        }
        if let Some(candidate) = candidate {
            self.order
                .entry(candidate.net_size.signum())
                .or_default()
                .insert((Reverse(candidate.score), address));
            self.scored.insert(address, candidate);
        }
    }
}

/// The account as an ADL candidate in the market, from its risk: a net
/// position with a profit there and positive equity, scored by profit x
/// effective leverage.
fn candidate_in(
    risk: &crate::margin::Risk,
    market_id: &MarketId,
    address: Address,
) -> Option<Candidate> {
    let exposure = risk.exposures.iter().find(|e| &e.market == market_id)?;
    if exposure.net_size.is_zero()
        || !exposure.unrealized_pnl.is_positive()
        || !risk.equity.is_positive()
    {
        return None;
    }
    let leverage = risk.leverage.raw().max(1);
    Some(Candidate {
        address,
        net_size: exposure.net_size,
        profit: exposure.unrealized_pnl,
        score: exposure.unrealized_pnl.raw().saturating_mul(leverage),
    })
}
