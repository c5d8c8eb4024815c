//! Running market and system totals and the account indexes, maintained per
//! account: when a block first touches an account its old contribution is
//! taken out, and at the end of the block its new contribution is put back.
//! Totals and indexes therefore never need a walk over all accounts.

use std::collections::{BTreeMap, BTreeSet};

use clearnode_num::{mul_div, Money, NumError, Quantity, Rounding};
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
        let exposure = net.abs()?.raw() / MARKET_EXPOSURE_UNIT;
        totals.holders.apply(exposure, address, direction)?;
    }
    // Net notional at the marks of the block that last computed the risk:
    // a price move recomputes every holder of the market, so these are the
    // current marks.
    let exposure = account.risk.net_notional.raw() / SYSTEM_EXPOSURE_UNIT;
    system.holders.apply(exposure, address, direction)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn address(byte: u8) -> Address {
        Address::from_slice(&[byte; 20]).expect("20 bytes")
    }

    #[test]
    fn concentration_follows_holders_in_and_out() {
        let mut holdings = Holdings::default();
        for (byte, exposure) in [(1, 40), (2, 30), (3, 20), (4, 10)] {
            holdings
                .apply(exposure, address(byte), Direction::Add)
                .expect("fits");
        }
        assert_eq!(holdings.top_share_ppm(1), Ok(400_000));
        assert_eq!(holdings.top_share_ppm(5), Ok(1_000_000));
        // 0.4^2 + 0.3^2 + 0.2^2 + 0.1^2
        assert_eq!(holdings.hhi_ppm(), Ok(300_000));
        let before = holdings.clone();
        holdings
            .apply(70, address(5), Direction::Add)
            .expect("fits");
        assert_eq!(holdings.top_share_ppm(1), Ok(411_765)); // 70 / 170, rounded up
        holdings
            .apply(70, address(5), Direction::Remove)
            .expect("fits");
        assert_eq!(holdings, before);
        for (byte, exposure) in [(1, 40), (2, 30), (3, 20), (4, 10)] {
            holdings
                .apply(exposure, address(byte), Direction::Remove)
                .expect("fits");
        }
        assert_eq!(holdings, Holdings::default());
        assert_eq!(
            (holdings.top_share_ppm(1), holdings.hhi_ppm()),
            (Ok(0), Ok(0))
        );
    }

    #[test]
    fn shares_round_up_and_zero_exposures_are_not_holders() {
        let mut holdings = Holdings::default();
        for byte in 1..=3 {
            holdings
                .apply(7, address(byte), Direction::Add)
                .expect("fits");
        }
        holdings.apply(0, address(9), Direction::Add).expect("fits");
        assert_eq!(holdings.ranked.len(), 3);
        assert_eq!(holdings.top_share_ppm(1), Ok(333_334));
        assert_eq!(holdings.hhi_ppm(), Ok(333_334));
    }

    #[test]
    fn the_hhi_needs_no_room_for_the_total_squared() {
        // A total of 1.5 x 10^19: its square does not fit in i128.
        let mut holdings = Holdings::default();
        let big = 10_000_000_000_000_000_000i128;
        holdings
            .apply(big, address(1), Direction::Add)
            .expect("fits");
        holdings
            .apply(big / 2, address(2), Direction::Add)
            .expect("fits");
        // (1 + 0.25) / 1.5^2 = 0.5555...
        assert_eq!(holdings.hhi_ppm(), Ok(555_556));
    }
}
