//! Running market and system totals and the account indexes, maintained per
//! account: when a block first touches an account its old contribution is
//! taken out, and at the end of the block its new contribution is put back.
//! Totals and indexes therefore never need a walk over all accounts.

use std::collections::{BTreeMap, BTreeSet};

use clearnode_num::{Money, NumError, Quantity};
use clearnode_types::{Address, MarketId};

use crate::margin::{margin_ratio_ppm, Health};
use crate::state::{Account, Indexes, MarketTotals, SystemTotals};

/// Whether a contribution is added or taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Add,
    Remove,
}

fn adjust(total: &mut Quantity, amount: Quantity, direction: Direction) -> Result<(), NumError> {
    *total = match direction {
        Direction::Add => total.checked_add(amount)?,
        Direction::Remove => total.checked_sub(amount)?,
    };
    Ok(())
}

fn count(total: &mut u64, direction: Direction) -> Result<(), NumError> {
    *total = match direction {
        Direction::Add => total.checked_add(1).ok_or(NumError::Overflow)?,
        Direction::Remove => total.checked_sub(1).ok_or(NumError::Overflow)?,
    };
    Ok(())
}

/// The parts of the state an account contributes to.
pub(crate) struct Contributions<'a> {
    pub(crate) markets: &'a mut BTreeMap<MarketId, MarketTotals>,
    pub(crate) system: &'a mut SystemTotals,
    pub(crate) indexes: &'a mut Indexes,
    /// The coverage stress's adverse move (zero: no stress index).
    pub(crate) stress_move: clearnode_num::Ratio,
}

fn index<K: Ord + Clone>(
    sets: &mut BTreeMap<K, BTreeSet<Address>>,
    key: &K,
    address: Address,
    direction: Direction,
) {
    match direction {
        Direction::Add => {
            sets.entry(key.clone()).or_default().insert(address);
        }
        Direction::Remove => {
            if let Some(set) = sets.get_mut(key) {
                set.remove(&address);
                if set.is_empty() {
                    sets.remove(key);
                }
            }
        }
    }
}

/// Adds or removes an account's contribution; returns the markets it touches.
pub(crate) fn apply_contribution(
    into: Contributions<'_>,
    address: Address,
    account: &Account,
    direction: Direction,
) -> Result<BTreeSet<MarketId>, NumError> {
    let Contributions {
        markets,
        system,
        indexes,
        stress_move,
    } = into;
    for asset in account.collateral.keys() {
        index(&mut indexes.asset_holders, asset, address, direction);
    }
    // The backstop's book is the fund's, not an account's: it has open
    // interest but no health, no equity of its own and no place in the
    // liquidation queue.
    let backstop = crate::backstop::is_book(&address, account);
    if let Some(ratio) = margin_ratio_ppm(&account.risk).filter(|_| !backstop) {
        match direction {
            Direction::Add => indexes.by_risk.insert((ratio, address)),
            Direction::Remove => indexes.by_risk.remove(&(ratio, address)),
        };
    }
    let mut net_by_market: BTreeMap<&MarketId, Quantity> = BTreeMap::new();
    for ((market, venue), position) in &account.positions {
        let totals = markets.entry(market.clone()).or_default();
        let venue_interest = totals.venues.entry(venue.clone()).or_default();
        if position.size.is_positive() {
            adjust(&mut totals.long, position.size, direction)?;
            adjust(&mut venue_interest.long, position.size, direction)?;
        } else {
            let short = position.size.abs()?;
            adjust(&mut totals.short, short, direction)?;
            adjust(&mut venue_interest.short, short, direction)?;
        }
        if venue_interest.long.is_zero() && venue_interest.short.is_zero() {
            totals.venues.remove(venue);
        }
        let net = net_by_market.entry(market).or_default();
        *net = net.checked_add(position.size)?;
    }
    for (market, net) in &net_by_market {
        index(&mut indexes.market_holders, *market, address, direction);
        let totals = markets.entry((*market).clone()).or_default();
        if net.is_positive() {
            adjust(&mut totals.net_long, *net, direction)?;
        } else {
            adjust(&mut totals.net_short, net.abs()?, direction)?;
        }
        count(&mut totals.accounts_with_position, direction)?;
    }
    if backstop {
        return Ok(net_by_market.into_keys().cloned().collect());
    }
    // Isolated sub-accounts default on their own market's fund, not the
    // shared one whose coverage the system breaker watches.
    if account.isolated.is_none() {
        let loss = crate::breakers::stress_default_loss(&account.risk, stress_move)?;
        if loss.is_positive() {
            match direction {
                Direction::Add => indexes.by_stress_loss.insert((loss, address)),
                Direction::Remove => indexes.by_stress_loss.remove(&(loss, address)),
            };
        }
    }
    let equity = account.risk.equity.max(Money::ZERO);
    system.equity_positive = match direction {
        Direction::Add => system.equity_positive.checked_add(equity)?,
        Direction::Remove => system.equity_positive.checked_sub(equity)?,
    };
    let health = &mut system.health;
    let bucket = match account.risk.health {
        Health::Healthy => &mut health.healthy,
        Health::MarginCall => &mut health.margin_call,
        Health::Liquidating => &mut health.liquidating,
        Health::Bankrupt => &mut health.bankrupt,
    };
    count(bucket, direction)?;
    count(&mut system.accounts, direction)?;
    Ok(net_by_market.into_keys().cloned().collect())
}
