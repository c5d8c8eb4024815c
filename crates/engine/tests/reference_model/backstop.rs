//! The backstop, bad debt and auto-deleveraging (docs/margin.md, "The
//! backstop, the insurance fund and ADL"), from the documented semantics.
//!
//! At the start of a block's end, every account under maintenance whose
//! deadline (liquidating since + deadline blocks) has come, or that was
//! bankrupt at the end of the last block and still is, is taken over whole
//! by the backstop at the mark; its equity then goes to the fund (if positive) or is
//! bad debt, which the fund pays up to each market's per-block cap and ADL
//! collects the rest of. The backstop's realized PnL is then swept into the
//! fund.

use std::collections::BTreeMap;

use clearnode_types::Address;

use super::fixed::{mul_div, times_ppm, Round};
use super::liquidation::fill;
use super::margin::{collateral_value, Health, Risk};
use super::Model;

/// The backstop account (readable text as an address: no key hashes to it).
pub const BACKSTOP: Address = Address::from_bytes(*b"clearnode//backstop/");

pub(super) fn run(model: &mut Model) {
    let height = model.height;
    // Bankrupt accounts at once; accounts under maintenance once their
    // deadline (liquidating since + deadline blocks) has come.
    let addresses: Vec<Address> = model.accounts.keys().copied().collect();
    let mut paid_by_market: BTreeMap<String, i128> = BTreeMap::new();
    for address in addresses {
        let account = &model.accounts[&address];
        if address == BACKSTOP
            || account.positions.is_empty()
            || model.account_liquidation_blocked(account)
        {
            continue;
        }
        let risk = model.risk_now(account);
        let deadline_passed = account.liquidating_since != 0
            && height >= account.liquidating_since + model.params.deadline_blocks;
        let was_bankrupt = model
            .risks
            .get(&address)
            .is_some_and(|last| last.health == Health::Bankrupt);
        if risk.under_maintenance() && ((risk.equity < 0 && was_bankrupt) || deadline_passed) {
            take_over(model, address, &risk, &mut paid_by_market);
        }
    }
    unwind_stale_book(model);
    if let Some(book) = model.accounts.get_mut(&BACKSTOP) {
        let realized = std::mem::take(&mut book.settled_pnl);
        model.fund.balance += realized;
        model.fund.inflows += realized;
    }
}

/// Moves `size` of a position to the backstop at the mark; both realize.
fn to_backstop(model: &mut Model, from: Address, key: &(String, String), size: i128) {
    let height = model.height;
    // The venue is instructed (backstop or ADL) and must acknowledge it.
    model.instructed.insert(key.1.clone());
    let mark = model.markets[&key.0].price;
    let account = model.accounts.get_mut(&from).expect("exists");
    let realized_from = fill(account, key, -size, mark, height);
    account.settled_pnl += realized_from;
    let book = model.accounts.entry(BACKSTOP).or_default();
    let realized_book = fill(book, key, size, mark, height);
    book.settled_pnl += realized_book;
    *model.settlements.entry(key.1.clone()).or_default() -= realized_from + realized_book;
}

fn take_over(
    model: &mut Model,
    address: Address,
    risk: &Risk,
    paid_by_market: &mut BTreeMap<String, i128>,
) {
    let positions: Vec<((String, String), i128)> = model.accounts[&address]
        .positions
        .iter()
        .map(|(key, p)| (key.clone(), p.size))
        .collect();
    for (key, size) in &positions {
        to_backstop(model, address, key, *size);
    }
    model.orders.retain(|key, _| key.0 != address);
    model.tally.backstops += 1;
    let account = model.accounts.get_mut(&address).expect("exists");
    account.liquidating_since = 0;
    let equity = collateral_value(&account.collateral, &model.assets) + account.settled_pnl;
    if equity >= 0 {
        account.settled_pnl -= equity;
        model.fund.balance += equity;
        model.fund.inflows += equity;
        return;
    }
    let debt = -equity;
    // Where the debt arose: markets at a loss, by their loss; else by net
    // notional; the last market takes the rounding remainder.
    let mut weights: Vec<(String, i128)> = risk
        .exposures
        .iter()
        .filter(|e| e.unrealized_pnl < 0)
        .map(|e| (e.market.clone(), -e.unrealized_pnl))
        .collect();
    if weights.is_empty() {
        weights = risk
            .exposures
            .iter()
            .filter(|e| e.net_notional > 0)
            .map(|e| (e.market.clone(), e.net_notional))
            .collect();
    }
    if weights.is_empty() {
        model.fund.bad_debt_unresolved += debt;
        return;
    }
    let total: i128 = weights.iter().map(|(_, w)| w).sum();
    let mut given = 0;
    for (index, (market, weight)) in weights.iter().enumerate() {
        let share = if index + 1 == weights.len() {
            debt - given
        } else {
            mul_div(debt, *weight, total, Round::Down)
        };
        given += share;
        let cap = model.markets[market].insurance_payout_per_block_max;
        let paid_already = paid_by_market.entry(market.clone()).or_default();
        let paid = share
            .min((cap - *paid_already).max(0))
            .min(model.fund.balance.max(0));
        *paid_already += paid;
        model.fund.balance -= paid;
        model.fund.payouts += paid;
        let shortfall = share - paid;
        let bankrupt_net = risk
            .exposures
            .iter()
            .find(|e| &e.market == market)
            .map_or(0, |e| e.net_size);
        let collected = if shortfall > 0 {
            deleverage(model, market, bankrupt_net, shortfall, address)
        } else {
            0
        };
        model
            .accounts
            .get_mut(&address)
            .expect("exists")
            .settled_pnl += paid + collected;
        model.fund.adl_collected += collected;
        model.fund.bad_debt_unresolved += shortfall - collected;
    }
}

/// The profitable accounts whose net exposure is opposite the bankrupt one,
/// by profit x leverage (highest first, then address), each paying the same
/// shortfall per unit for the units it gives up, at most its profit share.
fn deleverage(
    model: &mut Model,
    market: &str,
    bankrupt_net: i128,
    shortfall: i128,
    bankrupt: Address,
) -> i128 {
    if bankrupt_net == 0 {
        return 0;
    }
    let side = -bankrupt_net.signum();
    let ranked = ranking(model, market, side, bankrupt);
    let share_max = model.params.adl_profit_share_max_ppm;
    let mut quantity_left = bankrupt_net.abs();
    let mut shortfall_left = shortfall;
    for (_, address, net_size, profit) in ranked {
        if shortfall_left <= 0 || quantity_left <= 0 {
            break;
        }
        let cap = times_ppm(profit, share_max, Round::Down);
        let affordable = mul_div(cap, quantity_left, shortfall_left, Round::Down);
        let reduce = net_size.abs().min(quantity_left).min(affordable);
        if reduce <= 0 {
            continue;
        }
        let pay = if reduce == quantity_left {
            shortfall_left
        } else {
            mul_div(shortfall_left, reduce, quantity_left, Round::Up).min(cap)
        };
        let legs: Vec<((String, String), i128)> = model.accounts[&address]
            .positions
            .iter()
            .filter(|((m, _), p)| m == market && p.size.signum() == side)
            .map(|(key, p)| (key.clone(), p.size))
            .collect();
        let mut left = reduce;
        for (key, size) in legs {
            if left <= 0 {
                break;
            }
            let cut = size.abs().min(left);
            left -= cut;
            to_backstop(model, address, &key, cut * side);
        }
        model
            .accounts
            .get_mut(&address)
            .expect("exists")
            .settled_pnl -= pay;
        model.tally.adl_reductions += 1;
        quantity_left -= reduce;
        shortfall_left -= pay;
    }
    shortfall - shortfall_left
}

/// Accounts with a profitable net position on `side` of the market (and
/// positive equity), highest profit x leverage first, then by address:
/// (negated score, address, net size, profit).
fn ranking(
    model: &Model,
    market: &str,
    side: i128,
    excluded: Address,
) -> Vec<(i128, Address, i128, i128)> {
    let mut ranked = Vec::new();
    for (address, account) in &model.accounts {
        if *address == excluded || *address == BACKSTOP {
            continue;
        }
        let risk = model.risk_now(account);
        let Some(exposure) = risk.exposures.iter().find(|e| e.market == market) else {
            continue;
        };
        if exposure.net_size.signum() != side || exposure.unrealized_pnl <= 0 || risk.equity <= 0 {
            continue;
        }
        let score = exposure
            .unrealized_pnl
            .saturating_mul(risk.leverage_ppm.max(1));
        ranked.push((-score, *address, exposure.net_size, exposure.unrealized_pnl));
    }
    ranked.sort();
    ranked
}

/// Book positions without a fill for `deadline_blocks` close at the mark
/// against same-venue legs of the ranked opposite side, each only up to its
/// net size; nobody pays.
fn unwind_stale_book(model: &mut Model) {
    let height = model.height;
    let deadline = model.params.deadline_blocks;
    let Some(book) = model.accounts.get(&BACKSTOP) else {
        return;
    };
    // The fund holds the book only while it can pay for it.
    let insolvent = model.fund.balance + model.risk_now(book).equity <= 0;
    let stale: Vec<((String, String), i128)> = book
        .positions
        .iter()
        .filter(|((market, _), p)| {
            let due = insolvent || height >= p.updated_height + deadline;
            due && model.liquidation_blocked(market).is_none()
        })
        .map(|(key, p)| (key.clone(), p.size))
        .collect();
    for (key, size) in stale {
        let side = -size.signum();
        let mut left = size.abs();
        for (_, address, net_size, _) in ranking(model, &key.0, side, BACKSTOP) {
            if left <= 0 {
                break;
            }
            let leg = model.accounts[&address]
                .positions
                .get(&key)
                .map_or(0, |p| p.size);
            if leg.signum() != side {
                continue;
            }
            let cut = leg.abs().min(net_size.abs()).min(left);
            to_backstop(model, address, &key, cut * side);
            model.tally.book_unwinds += 1;
            left -= cut;
        }
    }
}
