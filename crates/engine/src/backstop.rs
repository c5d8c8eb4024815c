//! The insurance fund's backstop, bad debt and auto-deleveraging (ADL).
//!
//! At the start of `end_block`, every account still under maintenance whose
//! liquidation deadline has passed (no liquidator took it all in time), and
//! every account that was bankrupt at the end of the last block and still
//! is (liquidators cannot take it over without creating bad debt), is
//! taken over whole by the backstop: its positions move to the backstop
//! account at the mark price and its remaining equity moves with them, so the
//! account ends at zero equity, as if closed at its bankruptcy price, exactly
//! to the unit. Positive equity goes to the fund. Negative equity is bad debt:
//! the fund pays it, at most `insurance_payout_per_block_max` per market and
//! block; the rest (the shortfall) is collected by ADL from the most
//! profitable, most levered accounts on the other side of the market, ranked
//! on their net exposure across venues, each paying at most a share of its
//! profit and losing the matching part of its position to the backstop.
//! The backstop's positions are then offered to liquidators every block (the
//! ladder), and its realized PnL is swept into the fund.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::ops::Bound::{Excluded, Unbounded};

use clearnode_num::{mul_div, Money, NumError, Quantity, Rounding};
use clearnode_types::{Address, MarketId, VenueId};

use crate::block::{Engine, Event};
use crate::instructions::Instruction;
use crate::liquidation::is_liquidatable;
use crate::margin::{compute_risk, Health, Risk};
use crate::{invariant, EngineError};

mod book;

/// The insurance fund's backstop account. No key hashes to it (addresses are
/// hash prefixes of keys; this one is readable text), so nobody can sign for
/// it: positions reach it only through the backstop and ADL, and leave only
/// through liquidator takeovers and the unwinding of a stale book.
pub const BACKSTOP: Address = Address::from_bytes(*b"clearnode//backstop/");

/// Whether an address is the backstop account.
pub(crate) fn is_backstop(address: &Address) -> bool {
    *address == BACKSTOP
}

fn arithmetic(e: NumError) -> EngineError {
    invariant(format!("backstop arithmetic: {e}"))
}

fn rejected(e: clearnode_types::TxRejection) -> EngineError {
    invariant(format!("backstop: {}", e.log))
}

/// Splits `total` over `weights` in proportion, floored, the remainder to the
/// last weight: the parts always sum to `total` exactly.
fn split(total: Money, weights: &[(MarketId, i128)]) -> Result<Vec<(MarketId, Money)>, NumError> {
    let sum = weights.iter().try_fold(0i128, |acc, (_, w)| {
        acc.checked_add(*w).ok_or(NumError::Overflow)
    })?;
    let mut parts = Vec::with_capacity(weights.len());
    let mut given = Money::ZERO;
    for (index, (market, weight)) in weights.iter().enumerate() {
        let part = if index + 1 == weights.len() {
            total.checked_sub(given)?
        } else {
            Money::from_raw(mul_div(total.raw(), *weight, sum, Rounding::Floor)?)
        };
        given = given.checked_add(part)?;
        parts.push((market.clone(), part));
    }
    Ok(parts)
}

/// Where an account's bad debt arose: per market in proportion to its loss
/// there, or to its net notional when no market shows a loss.
fn bad_debt_by_market(risk: &Risk, debt: Money) -> Result<Vec<(MarketId, Money)>, NumError> {
    let losses: Vec<(MarketId, i128)> = risk
        .exposures
        .iter()
        .filter(|e| e.unrealized_pnl.is_negative())
        .map(|e| (e.market.clone(), -e.unrealized_pnl.raw()))
        .collect();
    if !losses.is_empty() {
        return split(debt, &losses);
    }
    let notionals: Vec<(MarketId, i128)> = risk
        .exposures
        .iter()
        .filter(|e| e.net_notional.is_positive())
        .map(|e| (e.market.clone(), e.net_notional.raw()))
        .collect();
    if notionals.is_empty() {
        return Ok(Vec::new());
    }
    split(debt, &notionals)
}

/// An account ADL may reduce in one market.
struct Candidate {
    address: Address,
    /// Net size across venues (the side opposite the bankrupt account).
    net_size: Quantity,
    /// Unrealized profit in the market (positive).
    profit: Money,
}

impl Engine {
    /// Backstops every account whose liquidation deadline passed and sweeps
    /// the backstop's realized PnL into the fund. Runs inside the block.
    pub(crate) fn run_backstop(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        let height = self.state.chain.height;
        let deadline_blocks = u64::from(self.state.params.liquidation.deadline_blocks);
        // Who may be due: accounts with orders (their deadline), accounts
        // the risk index last saw bankrupt, and accounts this block touched
        // (the index leaves them out until the end of the block).
        let mut maybe: BTreeSet<Address> = self
            .state
            .liquidation_orders
            .keys()
            .map(|key| key.0)
            .collect();
        maybe.extend(
            self.state
                .indexes
                .by_risk
                .iter()
                .take_while(|(ratio, _)| *ratio < 0)
                .map(|(_, address)| *address),
        );
        if let Some(block) = &self.block {
            maybe.extend(block.touched.keys().copied());
        }
        // In address order; ADL may touch accounts further on, which then
        // join the walk.
        let mut cursor: Option<Address> = None;
        loop {
            let next = match cursor {
                None => maybe.iter().next(),
                Some(last) => maybe.range((Excluded(last), Unbounded)).next(),
            };
            let Some(address) = next.copied() else {
                break;
            };
            cursor = Some(address);
            if is_backstop(&address) {
                continue;
            }
            let Some(account) = self.state.accounts.get(&address) else {
                continue;
            };
            // Only an account in liquidation (its deadline) or bankrupt at
            // the end of the last block can be due: skip the rest unpriced.
            let candidate =
                account.liquidating_since != 0 || account.risk.health == Health::Bankrupt;
            if account.positions.is_empty() || !candidate {
                continue;
            }
            let risk = compute_risk(account, &self.state.markets, &self.state.assets, height)
                .map_err(arithmetic)?;
            // Bankrupt since the last block (its venues were told) and
            // still: no liquidator can help without the fund. Under
            // maintenance past the deadline: no liquidator came in time.
            let bankrupt = risk.equity.is_negative() && account.risk.health == Health::Bankrupt;
            let deadline_passed = account.liquidating_since != 0
                && height >= account.liquidating_since.saturating_add(deadline_blocks);
            if is_liquidatable(&risk) && (bankrupt || deadline_passed) {
                self.backstop_account(address, &risk, events)?;
                if let Some(block) = &self.block {
                    maybe.extend(block.touched.keys().copied());
                }
            }
        }
        self.unwind_stale_book(events)?;
        self.sweep_backstop_pnl()
    }

    /// Moves the backstop account's realized PnL into the fund's balance.
    fn sweep_backstop_pnl(&mut self) -> Result<(), EngineError> {
        let realized = self
            .state
            .accounts
            .get(&BACKSTOP)
            .map_or(Money::ZERO, |a| a.settled_pnl);
        if realized.is_zero() {
            return Ok(());
        }
        self.touch_account(BACKSTOP).map_err(rejected)?.settled_pnl = Money::ZERO;
        let fund = &mut self.state.insurance_fund;
        fund.balance = fund.balance.checked_add(realized).map_err(arithmetic)?;
        fund.inflows = fund.inflows.checked_add(realized).map_err(arithmetic)?;
        self.block_context()?.fund_dirty = true;
        Ok(())
    }

    fn backstop_account(
        &mut self,
        address: Address,
        risk: &Risk,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let positions: Vec<((MarketId, VenueId), Quantity)> = self
            .state
            .accounts
            .get(&address)
            .map(|a| {
                a.positions
                    .iter()
                    .map(|(key, p)| (key.clone(), p.size))
                    .collect()
            })
            .unwrap_or_default();
        let mut transfers = Vec::with_capacity(positions.len());
        for (key, size) in &positions {
            self.transfer_at_mark(address, BACKSTOP, key, *size)?;
            transfers.push((key.clone(), *size));
        }
        self.drop_orders(address)?;

        // With every position closed at the mark, equity is collateral value
        // plus settled PnL; it moves to (or is owed by) the fund.
        let collateral = self
            .state
            .accounts
            .get(&address)
            .map(|a| crate::margin::collateral_value(&a.collateral, &self.state.assets))
            .transpose()
            .map_err(arithmetic)?
            .unwrap_or_default();
        let account = self.touch_account(address).map_err(rejected)?;
        let equity = collateral
            .checked_add(account.settled_pnl)
            .map_err(arithmetic)?;
        let mut event = Event::new("backstop")
            .with("account", address)
            .with("equity", equity);
        if !equity.is_negative() {
            account.settled_pnl = account
                .settled_pnl
                .checked_sub(equity)
                .map_err(arithmetic)?;
            let fund = &mut self.state.insurance_fund;
            fund.balance = fund.balance.checked_add(equity).map_err(arithmetic)?;
            fund.inflows = fund.inflows.checked_add(equity).map_err(arithmetic)?;
        } else {
            let debt = equity.checked_neg().map_err(arithmetic)?;
            let (paid, collected, unresolved) = self.cover_bad_debt(address, risk, debt, events)?;
            event = event
                .with("fund_paid", paid)
                .with("adl_collected", collected)
                .with("unresolved", unresolved);
        }
        let block = self.block_context()?;
        block.fund_dirty = true;
        for ((market, venue), size) in transfers {
            let mut instruction = Instruction::new(venue, "backstop", address);
            instruction.quantity = Some(size.abs().map_err(arithmetic)?);
            instruction.side = if size.is_positive() { 1 } else { -1 };
            instruction.price = self.state.markets.get(&market).map(|m| m.oracle_price);
            instruction.market = Some(market);
            instruction.counterparty = Some(BACKSTOP);
            instruction.amount = Some(equity);
            self.block_context()?.instructions.push(instruction);
        }
        events.push(event);
        Ok(())
    }

    /// The fund pays what its per-market caps and balance allow; ADL collects
    /// the rest. Returns (paid by the fund, collected by ADL, unresolved).
    fn cover_bad_debt(
        &mut self,
        address: Address,
        risk: &Risk,
        debt: Money,
        events: &mut Vec<Event>,
    ) -> Result<(Money, Money, Money), EngineError> {
        let mut paid_total = Money::ZERO;
        let mut collected_total = Money::ZERO;
        let mut unresolved_total = Money::ZERO;
        let shares = bad_debt_by_market(risk, debt).map_err(arithmetic)?;
        let attributed =
            Money::checked_sum(shares.iter().map(|(_, part)| *part)).map_err(arithmetic)?;
        // Debt no market explains (collateral fell with no position at a
        // loss) stays unresolved.
        unresolved_total = unresolved_total
            .checked_add(debt.checked_sub(attributed).map_err(arithmetic)?)
            .map_err(arithmetic)?;
        for (market_id, share) in shares {
            let cap = self
                .state
                .markets
                .get(&market_id)
                .map_or(Money::ZERO, |m| m.insurance_payout_per_block_max);
            let block = self.block_context()?;
            let already = block
                .fund_paid_by_market
                .get(&market_id)
                .copied()
                .unwrap_or_default();
            let room = cap
                .checked_sub(already)
                .map_err(arithmetic)?
                .max(Money::ZERO);
            let balance = self.state.insurance_fund.balance.max(Money::ZERO);
            let paid = share.min(room).min(balance);
            let block = self.block_context()?;
            let entry = block
                .fund_paid_by_market
                .entry(market_id.clone())
                .or_default();
            *entry = entry.checked_add(paid).map_err(arithmetic)?;
            let fund = &mut self.state.insurance_fund;
            fund.balance = fund.balance.checked_sub(paid).map_err(arithmetic)?;
            fund.payouts = fund.payouts.checked_add(paid).map_err(arithmetic)?;
            let shortfall = share.checked_sub(paid).map_err(arithmetic)?;
            let bankrupt_net = risk
                .exposures
                .iter()
                .find(|e| e.market == market_id)
                .map_or(Quantity::ZERO, |e| e.net_size);
            let collected = if shortfall.is_positive() {
                self.deleverage(&market_id, bankrupt_net, shortfall, address, events)?
            } else {
                Money::ZERO
            };
            let account = self.touch_account(address).map_err(rejected)?;
            account.settled_pnl = account
                .settled_pnl
                .checked_add(paid)
                .and_then(|v| v.checked_add(collected))
                .map_err(arithmetic)?;
            paid_total = paid_total.checked_add(paid).map_err(arithmetic)?;
            collected_total = collected_total.checked_add(collected).map_err(arithmetic)?;
            unresolved_total = unresolved_total
                .checked_add(shortfall.checked_sub(collected).map_err(arithmetic)?)
                .map_err(arithmetic)?;
        }
        let fund = &mut self.state.insurance_fund;
        fund.adl_collected = fund
            .adl_collected
            .checked_add(collected_total)
            .map_err(arithmetic)?;
        fund.bad_debt_unresolved = fund
            .bad_debt_unresolved
            .checked_add(unresolved_total)
            .map_err(arithmetic)?;
        Ok((paid_total, collected_total, unresolved_total))
    }

    /// Collects `shortfall` in one market from accounts whose net exposure is
    /// opposite the bankrupt account's, most profit x leverage first, as if
    /// they bought the bankrupt net position at its bankruptcy price: each
    /// loses part of its position to the backstop at the mark and pays the
    /// same shortfall per unit, at most `adl_profit_share_max` of its profit
    /// there. Returns what was collected (the shortfall unless candidates run
    /// out).
    fn deleverage(
        &mut self,
        market_id: &MarketId,
        bankrupt_net: Quantity,
        shortfall: Money,
        bankrupt: Address,
        events: &mut Vec<Event>,
    ) -> Result<Money, EngineError> {
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
            self.reduce_for_adl(market_id, &candidate, reduce, pay)?;
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
    fn adl_candidates(
        &self,
        market_id: &MarketId,
        side: i128,
        bankrupt: Address,
    ) -> Result<Vec<(i128, Candidate)>, EngineError> {
        // The holders index leaves out accounts this block touched (their
        // contributions return at the end of the block): add those back.
        let mut holders: BTreeSet<Address> = self
            .state
            .indexes
            .market_holders
            .get(market_id)
            .cloned()
            .unwrap_or_default();
        if let Some(block) = &self.block {
            holders.extend(block.touched.keys().copied().filter(|address| {
                self.state
                    .accounts
                    .get(address)
                    .is_some_and(|a| a.positions.keys().any(|(m, _)| m == market_id))
            }));
        }
        let height = self.state.chain.height;
        let mut candidates = Vec::new();
        for address in &holders {
            if *address == bankrupt || is_backstop(address) {
                continue;
            }
            let Some(account) = self.state.accounts.get(address) else {
                continue;
            };
            let risk = compute_risk(account, &self.state.markets, &self.state.assets, height)
                .map_err(arithmetic)?;
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
                BACKSTOP,
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
            instruction.counterparty = Some(BACKSTOP);
            instruction.amount = Some(leg_pay);
            self.block_context()?.instructions.push(instruction);
        }
        let account = self.touch_account(candidate.address).map_err(rejected)?;
        account.settled_pnl = account.settled_pnl.checked_sub(pay).map_err(arithmetic)?;
        Ok(())
    }

    /// Moves `size` of a position from one account to another at the mark
    /// price, realizing PnL on both sides against the venue's settlement.
    fn transfer_at_mark(
        &mut self,
        from: Address,
        to: Address,
        key: &(MarketId, VenueId),
        size: Quantity,
    ) -> Result<(), EngineError> {
        let mark = self
            .state
            .markets
            .get(&key.0)
            .map(|m| m.oracle_price)
            .ok_or_else(|| invariant(format!("transfer in unlisted market {}", key.0)))?;
        let negated = size.checked_neg().map_err(arithmetic)?;
        let realized_from = self
            .move_position(from, key, negated, mark)
            .map_err(rejected)?;
        let realized_to = self.move_position(to, key, size, mark).map_err(rejected)?;
        let realized = realized_from.checked_add(realized_to).map_err(arithmetic)?;
        let venue_balance = self
            .state
            .venue_settlements
            .entry(key.1.clone())
            .or_default();
        *venue_balance = venue_balance.checked_sub(realized).map_err(arithmetic)?;
        let block = self.block_context()?;
        block.dirty_settlements.insert(key.1.clone());
        block.dirty_markets.insert(key.0.clone());
        block
            .dirty_positions
            .insert((from, key.0.clone(), key.1.clone()));
        block
            .dirty_positions
            .insert((to, key.0.clone(), key.1.clone()));
        Ok(())
    }

    /// Removes an account's liquidation orders (the backstop replaced them).
    fn drop_orders(&mut self, address: Address) -> Result<(), EngineError> {
        let keys: Vec<_> = self
            .state
            .liquidation_orders
            .keys()
            .filter(|key| key.0 == address)
            .cloned()
            .collect();
        for key in keys {
            self.state.liquidation_orders.remove(&key);
            self.block_context()?.dirty_orders.insert(key);
        }
        if let Some(account) = self.state.accounts.get_mut(&address) {
            account.liquidating_since = 0;
        }
        Ok(())
    }
}
