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

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};

use clearnode_num::{mul_div, Money, NumError, Quantity, Rounding};
use clearnode_types::{Address, MarketId, VenueId};

use crate::block::{Engine, Event};
use crate::instructions::Instruction;
use crate::liquidation::is_liquidatable;
use crate::margin::{compute_risk, Health, Risk};
use crate::state::{Account, InsuranceFund, Market, State};
use crate::{invariant, EngineError};

mod adl;

pub(crate) use adl::AdlRanking;
mod book;

/// The insurance fund's backstop account. No key hashes to it (addresses are
/// hash prefixes of keys; this one is readable text), so nobody can sign for
/// it: positions reach it only through the backstop and ADL, and leave only
/// through liquidator takeovers and the unwinding of a stale book.
pub const BACKSTOP: Address = Address::from_bytes(*b"clearnode//backstop/");

/// Which insurance fund backs an account: its isolated market's own fund
/// (`Some(market)`: an isolated sub-account in an isolated market), or the
/// shared one (`None`).
pub(crate) fn fund_of(markets: &BTreeMap<MarketId, Market>, account: &Account) -> Option<MarketId> {
    account
        .isolated
        .as_ref()
        .map(|(_, market)| market)
        .filter(|market| markets.get(*market).is_some_and(|m| m.isolated))
        .cloned()
}

/// The backstop book of a fund: `BACKSTOP` for the shared fund, its
/// isolated sub-account for an isolated market's fund.
pub(crate) fn book_of(fund: Option<&MarketId>) -> Address {
    match fund {
        None => BACKSTOP,
        Some(market) => Address::isolated(&BACKSTOP, market.as_str()),
    }
}

/// Whether an account is a backstop book (the shared one or an isolated
/// market's).
pub(crate) fn is_book(address: &Address, account: &Account) -> bool {
    *address == BACKSTOP
        || account
            .isolated
            .as_ref()
            .is_some_and(|(owner, _)| *owner == BACKSTOP)
}

/// Every fund: the shared one, then each isolated market's.
pub(crate) fn funds(markets: &BTreeMap<MarketId, Market>) -> Vec<Option<MarketId>> {
    std::iter::once(None)
        .chain(
            markets
                .values()
                .filter(|m| m.isolated)
                .map(|m| Some(m.id.clone())),
        )
        .collect()
}

/// A fund, mutably.
pub(crate) fn fund_mut<'a>(state: &'a mut State, fund: Option<&MarketId>) -> &'a mut InsuranceFund {
    match fund {
        None => &mut state.insurance_fund,
        Some(market) => state.isolated_funds.entry(market.clone()).or_default(),
    }
}

/// A fund's balance.
pub(crate) fn fund_balance(state: &State, fund: Option<&MarketId>) -> Money {
    match fund {
        None => state.insurance_fund.balance,
        Some(market) => state
            .isolated_funds
            .get(market)
            .map_or(Money::ZERO, |f| f.balance),
    }
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

/// Whose bad debt is being covered, by which fund, into which book.
struct Covering {
    bankrupt: Address,
    fund: Option<MarketId>,
    book: Address,
}

impl Engine {
    /// Backstops every account whose liquidation deadline passed and sweeps
    /// the backstop's realized PnL into the fund. Runs inside the block.
    pub(crate) fn run_backstop(&mut self, events: &mut Vec<Event>) -> Result<(), EngineError> {
        let height = self.state.chain.height;
        let deadline_blocks = u64::from(self.state.params.liquidation.deadline_blocks);
        // Who may be due: accounts with orders (their deadline), accounts
        // the risk index last saw bankrupt, and accounts this block touched
        // (the index has them as of their first touch until the end of the
        // block), walked from the touched map itself rather than copied.
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
        // In address order; ADL may touch accounts further on, which then
        // join the walk.
        let mut cursor: Option<Address> = None;
        loop {
            let after = (cursor.map_or(Unbounded, Excluded), Unbounded::<Address>);
            let listed = maybe.range(after).next().copied();
            let touched = self
                .block
                .as_ref()
                .and_then(|block| block.touched.range(after).next())
                .map(|(address, _)| *address);
            let next = match (listed, touched) {
                (Some(listed), Some(touched)) => Some(listed.min(touched)),
                (listed, touched) => listed.or(touched),
            };
            let Some(address) = next else {
                break;
            };
            cursor = Some(address);
            let Some(account) = self.state.accounts.get(&address) else {
                continue;
            };
            if is_book(&address, account) {
                continue;
            }
            // Only an account in liquidation (its deadline) or bankrupt at
            // the end of the last block can be due: skip the rest unpriced.
            let candidate =
                account.liquidating_since != 0 || account.risk.health == Health::Bankrupt;
            if account.positions.is_empty()
                || !candidate
                || crate::breakers::account_liquidation_blocked(&self.state, account, height)
            {
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
            }
        }
        for fund in funds(&self.state.markets) {
            self.unwind_stale_book(fund.as_ref(), events)?;
            self.sweep_book_pnl(fund.as_ref())?;
        }
        // Rankings hold for the backstop only: later stages may move what they score.
        self.block_context()?.adl_rankings.clear();
        Ok(())
    }

    /// Moves a book's realized PnL into its fund's balance.
    fn sweep_book_pnl(&mut self, fund: Option<&MarketId>) -> Result<(), EngineError> {
        let book = book_of(fund);
        let realized = self
            .state
            .accounts
            .get(&book)
            .map_or(Money::ZERO, |a| a.settled_pnl);
        if realized.is_zero() {
            return Ok(());
        }
        self.touch_account(book).map_err(rejected)?.settled_pnl = Money::ZERO;
        let target = fund_mut(&mut self.state, fund);
        target.balance = target.balance.checked_add(realized).map_err(arithmetic)?;
        target.inflows = target.inflows.checked_add(realized).map_err(arithmetic)?;
        self.block_context()?.dirty_funds.insert(fund.cloned());
        Ok(())
    }

    fn backstop_account(
        &mut self,
        address: Address,
        risk: &Risk,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let account = self
            .state
            .accounts
            .get(&address)
            .ok_or_else(|| invariant(format!("backstop of unknown account {address}")))?;
        let positions: Vec<((MarketId, VenueId), Quantity)> = account
            .positions
            .iter()
            .map(|(key, p)| (key.clone(), p.size))
            .collect();
        // An isolated market's sub-account goes to that market's own book
        // and fund; everyone else to the shared ones.
        let fund = fund_of(&self.state.markets, account);
        let book = book_of(fund.as_ref());
        if let Some(market) = &fund {
            self.touch_account(book).map_err(rejected)?.isolated = Some((BACKSTOP, market.clone()));
        }
        for (key, size) in &positions {
            self.transfer_at_mark(address, book, key, *size)?;
        }
        self.drop_orders(address)?;

        // With every position closed at the mark, equity is collateral value
        // (unchanged, as priced in `risk`) plus settled PnL; it moves to (or
        // is owed by) the fund.
        let account = self.touch_account(address).map_err(rejected)?;
        let equity = risk
            .collateral_value
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
            let target = fund_mut(&mut self.state, fund.as_ref());
            target.balance = target.balance.checked_add(equity).map_err(arithmetic)?;
            target.inflows = target.inflows.checked_add(equity).map_err(arithmetic)?;
        } else {
            let debt = equity.checked_neg().map_err(arithmetic)?;
            let covering = Covering {
                bankrupt: address,
                fund: fund.clone(),
                book,
            };
            let (paid, collected, unresolved) =
                self.cover_bad_debt(&covering, risk, debt, events)?;
            event = event
                .with("fund_paid", paid)
                .with("adl_collected", collected)
                .with("unresolved", unresolved);
        }
        self.block_context()?.dirty_funds.insert(fund);
        for ((market, venue), size) in positions {
            let mut instruction = Instruction::new(venue, "backstop", address);
            instruction.quantity = Some(size.abs().map_err(arithmetic)?);
            instruction.side = if size.is_positive() { 1 } else { -1 };
            instruction.price = self.state.markets.get(&market).map(|m| m.oracle_price);
            instruction.market = Some(market);
            instruction.counterparty = Some(book);
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
        covering: &Covering,
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
            let balance = fund_balance(&self.state, covering.fund.as_ref()).max(Money::ZERO);
            let paid = share.min(room).min(balance);
            let block = self.block_context()?;
            let entry = block
                .fund_paid_by_market
                .entry(market_id.clone())
                .or_default();
            *entry = entry.checked_add(paid).map_err(arithmetic)?;
            let fund = fund_mut(&mut self.state, covering.fund.as_ref());
            fund.balance = fund.balance.checked_sub(paid).map_err(arithmetic)?;
            fund.payouts = fund.payouts.checked_add(paid).map_err(arithmetic)?;
            let shortfall = share.checked_sub(paid).map_err(arithmetic)?;
            let bankrupt_net = risk
                .exposures
                .iter()
                .find(|e| e.market == market_id)
                .map_or(Quantity::ZERO, |e| e.net_size);
            let collected = if shortfall.is_positive() {
                self.deleverage(covering, &market_id, bankrupt_net, shortfall, events)?
            } else {
                Money::ZERO
            };
            let account = self.touch_account(covering.bankrupt).map_err(rejected)?;
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
        let fund = fund_mut(&mut self.state, covering.fund.as_ref());
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
        block.dirty_positions.insert(from);
        block.dirty_positions.insert(to);
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
