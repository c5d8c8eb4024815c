//! Running market and system totals and the account indexes, maintained per
//! account: when a block first touches an account its contribution is
//! remembered, and at the end of the block it is replaced by the account's
//! new contribution, touching only the totals and index entries that differ.
//! Totals and indexes therefore never need a walk over all accounts. Inside
//! a block they still hold the touched accounts' contributions as of their
//! first touch: readers that need the block's current view add the touched
//! accounts themselves (they must anyway: their state moves in the block).

use std::collections::{BTreeMap, BTreeSet};

use clearnode_num::{mul_div, Money, NumError, Quantity, Rounding};
use clearnode_types::{Address, AssetId, MarketId, VenueId};

use crate::margin::{margin_ratio_ppm, Health};
use crate::small_map::SmallMap;
use crate::state::{Account, Indexes, MarketTotals, PositionKey, SystemTotals};

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

/// Market concentration counts net sizes in millionths of a unit (raw
/// quantities are billionths): fine enough for any holder that matters, and
/// the sum of squares stays far inside `i128`.
pub const MARKET_EXPOSURE_UNIT: i128 = 1_000;

/// System concentration counts net notionals in cents (raw money is
/// millionths of a dollar), for the same reason.
pub const SYSTEM_EXPOSURE_UNIT: i128 = 10_000;

/// Parts per million in 1.
const PPM: i128 = 1_000_000;

/// Holders ranked by their exposure, with the running sums concentration
/// needs: the largest holders' share and the Herfindahl-Hirschman index.
/// Maintained per account like the totals; never walked whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holdings {
    /// (exposure in counting units, account), smallest first; zero
    /// exposures are left out.
    pub ranked: BTreeSet<(i128, Address)>,
    /// Sum of the exposures.
    pub total: i128,
    /// Sum of their squares.
    pub squares: i128,
}

impl Holdings {
    /// Adds or removes one holder's exposure (in counting units).
    fn apply(
        &mut self,
        exposure: i128,
        address: Address,
        direction: Direction,
    ) -> Result<(), NumError> {
        if exposure == 0 {
            return Ok(());
        }
        let square = exposure.checked_mul(exposure).ok_or(NumError::Overflow)?;
        let (total, squares) = match direction {
            Direction::Add => {
                self.ranked.insert((exposure, address));
                (
                    self.total.checked_add(exposure),
                    self.squares.checked_add(square),
                )
            }
            Direction::Remove => {
                self.ranked.remove(&(exposure, address));
                (
                    self.total.checked_sub(exposure),
                    self.squares.checked_sub(square),
                )
            }
        };
        self.total = total.ok_or(NumError::Overflow)?;
        self.squares = squares.ok_or(NumError::Overflow)?;
        Ok(())
    }

    /// Share of the total held by the `count` largest holders (ppm,
    /// rounded up; zero without holders).
    pub fn top_share_ppm(&self, count: usize) -> Result<u64, NumError> {
        if self.total == 0 {
            return Ok(0);
        }
        let top = self
            .ranked
            .iter()
            .rev()
            .take(count)
            .try_fold(0i128, |sum, (exposure, _)| sum.checked_add(*exposure))
            .ok_or(NumError::Overflow)?;
        ppm(mul_div(top, PPM, self.total, Rounding::Ceil)?)
    }

    /// The Herfindahl-Hirschman index, sum of squared shares (ppm, rounded
    /// up; zero without holders): squares / total^2, as two divisions so
    /// that total^2 need not fit (ceil(ceil(a / b) / b) = ceil(a / b^2)).
    pub fn hhi_ppm(&self) -> Result<u64, NumError> {
        if self.total == 0 {
            return Ok(0);
        }
        let per_total = mul_div(self.squares, PPM, self.total, Rounding::Ceil)?;
        ppm(mul_div(per_total, 1, self.total, Rounding::Ceil)?)
    }
}

fn ppm(value: i128) -> Result<u64, NumError> {
    u64::try_from(value).map_err(|_| NumError::Overflow)
}

/// The parts of the state an account contributes to.
pub(crate) struct Contributions<'a> {
    pub(crate) markets: &'a mut BTreeMap<MarketId, MarketTotals>,
    pub(crate) system: &'a mut SystemTotals,
    pub(crate) indexes: &'a mut Indexes,
    /// The coverage stress's adverse move (zero: no stress index).
    pub(crate) stress_move: clearnode_num::Ratio,
}

/// The value of `key` in `map`, inserted as the default if absent (the key
/// is cloned only then).
fn slot<'m, K: Ord + Clone, V: Default>(
    map: &'m mut BTreeMap<K, V>,
    key: &K,
) -> Result<&'m mut V, NumError> {
    if !map.contains_key(key) {
        map.insert(key.clone(), V::default());
    }
    // Present: inserted just above if it was not.
    map.get_mut(key).ok_or(NumError::Overflow)
}

fn index<K: Ord + Clone>(
    sets: &mut BTreeMap<K, BTreeSet<Address>>,
    key: &K,
    address: Address,
    direction: Direction,
) -> Result<(), NumError> {
    match direction {
        Direction::Add => {
            slot(sets, key)?.insert(address);
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
    Ok(())
}

/// Where an account's risk sits in the indexes and the system totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RiskKeys {
    /// Its key in the liquidation queue (none for a backstop book or
    /// without positions).
    ratio: Option<i128>,
    /// Its system exposure (counting units; zero: not a holder).
    system_exposure: i128,
    /// Its positive stress loss (none for books and isolated sub-accounts).
    stress_loss: Option<Money>,
    /// Its non-negative equity and health, counted unless it is a book.
    counted: Option<(Money, Health)>,
}

impl RiskKeys {
    pub(crate) fn of(
        address: Address,
        account: &Account,
        stress_move: clearnode_num::Ratio,
    ) -> Result<Self, NumError> {
        // The backstop's book is the fund's, not an account's: it has open
        // interest but no health, no equity of its own and no place in the
        // liquidation queue.
        let backstop = crate::backstop::is_book(&address, account);
        let ratio = margin_ratio_ppm(&account.risk).filter(|_| !backstop);
        // Net notional at the marks of the block that last computed the
        // risk: a price move recomputes every holder of the market, so these
        // are the current marks.
        let system_exposure = account.risk.net_notional.raw() / SYSTEM_EXPOSURE_UNIT;
        if backstop {
            return Ok(Self {
                ratio,
                system_exposure,
                stress_loss: None,
                counted: None,
            });
        }
        // Isolated sub-accounts default on their own market's fund, not the
        // shared one whose coverage the system breaker watches.
        let stress_loss = match account.isolated {
            Some(_) => None,
            None => Some(crate::breakers::stress_default_loss(
                &account.risk,
                stress_move,
            )?),
        };
        let equity = account.risk.equity.max(Money::ZERO);
        Ok(Self {
            ratio,
            system_exposure,
            stress_loss: stress_loss.filter(|loss| loss.is_positive()),
            counted: Some((equity, account.risk.health)),
        })
    }

    /// Adds or removes these keys.
    fn apply(
        &self,
        system: &mut SystemTotals,
        indexes: &mut Indexes,
        address: Address,
        direction: Direction,
    ) -> Result<(), NumError> {
        if let Some(ratio) = self.ratio {
            match direction {
                Direction::Add => indexes.by_risk.insert((ratio, address)),
                Direction::Remove => indexes.by_risk.remove(&(ratio, address)),
            };
        }
        system
            .holders
            .apply(self.system_exposure, address, direction)?;
        if let Some(loss) = self.stress_loss {
            match direction {
                Direction::Add => indexes.by_stress_loss.insert((loss, address)),
                Direction::Remove => indexes.by_stress_loss.remove(&(loss, address)),
            };
        }
        let Some((equity, health)) = self.counted else {
            return Ok(());
        };
        system.equity_positive = match direction {
            Direction::Add => system.equity_positive.checked_add(equity)?,
            Direction::Remove => system.equity_positive.checked_sub(equity)?,
        };
        let counts = &mut system.health;
        let bucket = match health {
            Health::Healthy => &mut counts.healthy,
            Health::MarginCall => &mut counts.margin_call,
            Health::Liquidating => &mut counts.liquidating,
            Health::Bankrupt => &mut counts.bankrupt,
        };
        count(bucket, direction)?;
        count(&mut system.accounts, direction)
    }

    /// Replaces `old` with `new`, touching only the indexes and totals
    /// whose key changed (removing and re-adding an unchanged key is the
    /// identity).
    fn replace(
        old: &Self,
        new: &Self,
        system: &mut SystemTotals,
        indexes: &mut Indexes,
        address: Address,
    ) -> Result<(), NumError> {
        let none = Self::default();
        let parts = [
            [old.ratio, new.ratio].map(|ratio| Self { ratio, ..none }),
            [old.system_exposure, new.system_exposure].map(|system_exposure| Self {
                system_exposure,
                ..none
            }),
            [old.stress_loss, new.stress_loss].map(|stress_loss| Self {
                stress_loss,
                ..none
            }),
            [old.counted, new.counted].map(|counted| Self { counted, ..none }),
        ];
        for [old_part, new_part] in parts {
            if old_part != new_part {
                old_part.apply(system, indexes, address, Direction::Remove)?;
                new_part.apply(system, indexes, address, Direction::Add)?;
            }
        }
        Ok(())
    }
}

/// Adds or removes the contribution of an account's collateral and
/// positions (given as (market, venue, size), in position order: an
/// account's markets are adjacent).
fn apply_holdings<'a>(
    markets: &mut BTreeMap<MarketId, MarketTotals>,
    indexes: &mut Indexes,
    address: Address,
    assets: impl Iterator<Item = &'a AssetId>,
    positions: impl Iterator<Item = (&'a MarketId, &'a VenueId, Quantity)>,
    direction: Direction,
) -> Result<(), NumError> {
    for asset in assets {
        index(&mut indexes.asset_holders, asset, address, direction)?;
    }
    let mut net_of: Option<(&MarketId, Quantity)> = None;
    for (market, venue, size) in positions {
        let totals = slot(markets, market)?;
        let venue_interest = slot(&mut totals.venues, venue)?;
        if size.is_positive() {
            adjust(&mut totals.long, size, direction)?;
            adjust(&mut venue_interest.long, size, direction)?;
        } else {
            let short = size.abs()?;
            adjust(&mut totals.short, short, direction)?;
            adjust(&mut venue_interest.short, short, direction)?;
        }
        if venue_interest.long.is_zero() && venue_interest.short.is_zero() {
            totals.venues.remove(venue);
        }
        match &mut net_of {
            Some((current, net)) if *current == market => *net = net.checked_add(size)?,
            _ => {
                if let Some((done, net)) = net_of.take() {
                    apply_net(markets, indexes, address, done, net, direction)?;
                }
                net_of = Some((market, size));
            }
        }
    }
    if let Some((done, net)) = net_of {
        apply_net(markets, indexes, address, done, net, direction)?;
    }
    Ok(())
}

/// Adds or removes an account's net size in one market.
fn apply_net(
    markets: &mut BTreeMap<MarketId, MarketTotals>,
    indexes: &mut Indexes,
    address: Address,
    market: &MarketId,
    net: Quantity,
    direction: Direction,
) -> Result<(), NumError> {
    index(&mut indexes.market_holders, market, address, direction)?;
    let totals = slot(markets, market)?;
    if net.is_positive() {
        adjust(&mut totals.net_long, net, direction)?;
    } else {
        adjust(&mut totals.net_short, net.abs()?, direction)?;
    }
    count(&mut totals.accounts_with_position, direction)?;
    let exposure = net.abs()?.raw() / MARKET_EXPOSURE_UNIT;
    totals.holders.apply(exposure, address, direction)
}

/// An account's positions as (market, venue, size).
fn positions_of(account: &Account) -> impl Iterator<Item = (&MarketId, &VenueId, Quantity)> {
    account
        .positions
        .iter()
        .map(|((market, venue), position)| (market, venue, position.size))
}

/// Adds or removes an account's contribution (loading the state).
pub(crate) fn apply_contribution(
    into: Contributions<'_>,
    address: Address,
    account: &Account,
    direction: Direction,
) -> Result<(), NumError> {
    let keys = RiskKeys::of(address, account, into.stress_move)?;
    let (assets, positions) = (account.collateral.keys(), positions_of(account));
    apply_holdings(
        into.markets,
        into.indexes,
        address,
        assets,
        positions,
        direction,
    )?;
    keys.apply(into.system, into.indexes, address, direction)
}

/// The (market, venue) pairs of the positions snapshotted in a block,
/// numbered, so that the snapshots hold numbers, not cloned ids.
#[derive(Debug, Default)]
pub(crate) struct PositionKeys {
    numbers: BTreeMap<PositionKey, usize>,
    keys: Vec<PositionKey>,
}

impl PositionKeys {
    fn number(&mut self, key: &PositionKey) -> usize {
        if let Some(number) = self.numbers.get(key) {
            return *number;
        }
        let number = self.keys.len();
        self.keys.push(key.clone());
        self.numbers.insert(key.clone(), number);
        number
    }

    /// The account's positions now.
    pub(crate) fn held(&mut self, account: &Account) -> PositionsHeld {
        PositionsHeld(
            account
                .positions
                .iter()
                .map(|(key, position)| (self.number(key), position.size))
                .collect(),
        )
    }
}

/// An account's positions as (numbered (market, venue), size), in position
/// order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PositionsHeld(Vec<(usize, Quantity)>);

impl PositionsHeld {
    /// Whether `account` holds exactly these positions.
    fn same_as(&self, numbers: &PositionKeys, account: &Account) -> bool {
        self.0.len() == account.positions.len()
            && self
                .0
                .iter()
                .zip(&account.positions)
                .all(|((number, size), (key, position))| {
                    numbers.keys.get(*number) == Some(key) && *size == position.size
                })
    }
}

/// What an account held when its holdings were snapshotted in a block.
pub(crate) type HoldingsBefore<'a> = (&'a PositionsHeld, &'a SmallMap<AssetId, Quantity>);

/// Replaces the contribution an account made when the block first touched
/// it by its contribution now: `risk_before` are its risk keys then, and
/// `held_before` its positions and collateral then (`None`: they have not
/// changed, only prices moved). The end state equals removing the old and
/// adding the new; only the indexes and totals whose keys differ are
/// touched.
pub(crate) fn replace_contribution(
    into: Contributions<'_>,
    numbers: &PositionKeys,
    address: Address,
    risk_before: &RiskKeys,
    held_before: Option<HoldingsBefore<'_>>,
    account: &Account,
) -> Result<(), NumError> {
    let Contributions {
        markets,
        system,
        indexes,
        stress_move,
    } = into;
    if let Some((positions_before, collateral_before)) = held_before {
        if !collateral_before.keys().eq(account.collateral.keys()) {
            let (old, new) = (collateral_before.keys(), account.collateral.keys());
            let none = || std::iter::empty();
            apply_holdings(markets, indexes, address, old, none(), Direction::Remove)?;
            apply_holdings(markets, indexes, address, new, none(), Direction::Add)?;
        }
        if !positions_before.same_as(numbers, account) {
            let mut old = Vec::with_capacity(positions_before.0.len());
            for (number, size) in &positions_before.0 {
                let (market, venue) = numbers.keys.get(*number).ok_or(NumError::Overflow)?;
                old.push((market, venue, *size));
            }
            let (old, new) = (old.into_iter(), positions_of(account));
            let none = || std::iter::empty();
            apply_holdings(markets, indexes, address, none(), old, Direction::Remove)?;
            apply_holdings(markets, indexes, address, none(), new, Direction::Add)?;
        }
    }
    let now = RiskKeys::of(address, account, stress_move)?;
    RiskKeys::replace(risk_before, &now, system, indexes, address)
}

#[cfg(test)]
mod tests;
