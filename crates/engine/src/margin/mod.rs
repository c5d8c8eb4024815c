//! Cross-venue margin of one account: pure functions of its positions,
//! collateral, the current prices and each market's margin regime.
//!
//! Per market, the positions on all venues are netted: the net size pays
//! the market's margin fraction, and the part of the gross size that nets
//! out pays the smaller basis charge (the risk that one of the venues holding
//! the hedge defaults). Collateral counts at oracle value less its haircut.
//! Every rounding goes against the account: requirements round up, value
//! and PnL round down.

use std::collections::BTreeMap;

use clearnode_num::{Money, NumError, Quantity, Ratio, Rounding};
use clearnode_types::{AssetId, MarketId};

use crate::small_map::SmallMap;
use crate::state::{Account, Asset, Market, Position};

pub mod passport;
pub mod regime;

/// Which initial margin fraction of a market applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarginMode<'a> {
    /// Existing positions: the market's current (phased-in) fraction.
    Existing,
    /// New risk: the market's target fraction at once, or the given one
    /// where the new risk itself moves the target (its open interest).
    NewRisk(&'a BTreeMap<MarketId, Ratio>),
}

/// Health of an account, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Health {
    /// Equity at or above the initial requirement.
    #[default]
    Healthy,
    /// Below initial, at or above maintenance: reduce-only.
    MarginCall,
    /// Below maintenance: to be liquidated.
    Liquidating,
    /// Negative equity.
    Bankrupt,
}

/// An account's exposure in one market, netted across venues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// Market.
    pub market: MarketId,
    /// Net size across venues.
    pub net_size: Quantity,
    /// Sum of |size| across venues.
    pub gross_size: Quantity,
    /// |net size| at the mark price.
    pub net_notional: Money,
    /// Unrealized PnL of all its positions in the market.
    pub unrealized_pnl: Money,
    /// Initial requirement.
    pub initial: Money,
    /// Maintenance requirement.
    pub maintenance: Money,
}

/// An account's cross-venue risk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Risk {
    /// Collateral at oracle value less haircuts.
    pub collateral_value: Money,
    /// Unrealized PnL over all positions.
    pub unrealized_pnl: Money,
    /// Collateral value plus settled and unrealized PnL.
    pub equity: Money,
    /// Initial requirement.
    pub initial: Money,
    /// Maintenance requirement.
    pub maintenance: Money,
    /// Health state.
    pub health: Health,
    /// Sum of |net notional| over markets.
    pub net_notional: Money,
    /// Net notional / equity; zero when equity is not positive.
    pub leverage: Ratio,
    /// Per market, in market order.
    pub exposures: Vec<Exposure>,
    /// Height at which it was computed.
    pub computed_height: u64,
}

impl Risk {
    /// Equity above the initial requirement (negative when below).
    pub fn free_collateral(&self) -> Result<Money, NumError> {
        self.equity.checked_sub(self.initial)
    }
}

/// Value of the account's collateral, haircut applied, rounded down.
pub fn collateral_value(
    collateral: &SmallMap<AssetId, Quantity>,
    assets: &BTreeMap<AssetId, Asset>,
) -> Result<Money, NumError> {
    let mut total = Money::ZERO;
    for (asset_id, amount) in collateral {
        // An unlisted asset cannot be deposited; counting it as zero is the safe side.
        let Some(asset) = assets.get(asset_id) else {
            continue;
        };
        let value = amount.notional(asset.oracle_price, Rounding::Floor)?;
        let counted = value.mul_ratio(asset.haircut.one_minus()?, Rounding::Floor)?;
        total = total.checked_add(counted)?;
    }
    Ok(total)
}

/// The account's risk at the current prices, existing positions' margin.
pub fn compute_risk(
    account: &Account,
    markets: &BTreeMap<MarketId, Market>,
    assets: &BTreeMap<AssetId, Asset>,
    height: u64,
) -> Result<Risk, NumError> {
    compute_risk_with(account, markets, assets, height, MarginMode::Existing)
}

/// The account's risk at the current prices, with the chosen margin.
pub fn compute_risk_with(
    account: &Account,
    markets: &BTreeMap<MarketId, Market>,
    assets: &BTreeMap<AssetId, Asset>,
    height: u64,
    mode: MarginMode<'_>,
) -> Result<Risk, NumError> {
    let mut risk = Risk::default();
    fill_risk(&mut risk, account, markets, assets, height, mode)?;
    Ok(risk)
}

/// Recomputes the account's risk (existing positions' margin) in place,
/// reusing its exposures' allocations: the same value as
/// [`compute_risk`]. On an error the risk is left partly updated.
pub fn refresh_risk(
    account: &mut Account,
    markets: &BTreeMap<MarketId, Market>,
    assets: &BTreeMap<AssetId, Asset>,
    height: u64,
) -> Result<(), NumError> {
    let mut risk = std::mem::take(&mut account.risk);
    let filled = compute_risk_into(&mut risk, account, markets, assets, height);
    account.risk = risk;
    filled
}

/// [`compute_risk`] into `risk`, reusing its allocations (a scratch risk
/// for many accounts). On an error the risk is left partly updated.
pub fn compute_risk_into(
    risk: &mut Risk,
    account: &Account,
    markets: &BTreeMap<MarketId, Market>,
    assets: &BTreeMap<AssetId, Asset>,
    height: u64,
) -> Result<(), NumError> {
    fill_risk(risk, account, markets, assets, height, MarginMode::Existing)
}

fn fill_risk(
    risk: &mut Risk,
    account: &Account,
    markets: &BTreeMap<MarketId, Market>,
    assets: &BTreeMap<AssetId, Asset>,
    height: u64,
    mode: MarginMode<'_>,
) -> Result<(), NumError> {
    let positions = account
        .positions
        .iter()
        .map(|((market, _venue), position)| (market, position));
    fill_risk_over(risk, account, positions, markets, assets, height, mode)
}

/// Fills `risk` with the risk of the account's collateral and settled PnL
/// with `positions` (in position-key order) in place of its own: what-if
/// margin without building a copy of the account.
pub(crate) fn fill_risk_over<'p>(
    risk: &mut Risk,
    account: &Account,
    positions: impl Iterator<Item = (&'p MarketId, &'p Position)>,
    markets: &BTreeMap<MarketId, Market>,
    assets: &BTreeMap<AssetId, Asset>,
    height: u64,
    mode: MarginMode<'_>,
) -> Result<(), NumError> {
    let collateral_value = collateral_value(&account.collateral, assets)?;
    let mut exposures = std::mem::take(&mut risk.exposures);
    fill_exposures(&mut exposures, positions, markets, mode)?;
    *risk = Risk {
        collateral_value,
        computed_height: height,
        ..Risk::default()
    };
    for exposure in &exposures {
        risk.unrealized_pnl = risk.unrealized_pnl.checked_add(exposure.unrealized_pnl)?;
        risk.initial = risk.initial.checked_add(exposure.initial)?;
        risk.maintenance = risk.maintenance.checked_add(exposure.maintenance)?;
        risk.net_notional = risk.net_notional.checked_add(exposure.net_notional)?;
    }
    risk.equity = collateral_value
        .checked_add(account.settled_pnl)?
        .checked_add(risk.unrealized_pnl)?;
    risk.health = health(risk.equity, risk.initial, risk.maintenance);
    risk.leverage = if risk.equity.is_positive() {
        risk.net_notional.ratio_to(risk.equity, Rounding::Ceil)?
    } else {
        Ratio::ZERO
    };
    risk.exposures = exposures;
    Ok(())
}

/// The health state for an equity and its requirements.
pub fn health(equity: Money, initial: Money, maintenance: Money) -> Health {
    if equity.is_negative() {
        Health::Bankrupt
    } else if equity < maintenance {
        Health::Liquidating
    } else if equity < initial {
        Health::MarginCall
    } else {
        Health::Healthy
    }
}

/// Sets `exposures` to the exposures per market of `positions` (in
/// position-key order, so a market's positions are adjacent), in market
/// order, reusing the entries already there.
fn fill_exposures<'p>(
    exposures: &mut Vec<Exposure>,
    positions: impl Iterator<Item = (&'p MarketId, &'p Position)>,
    markets: &BTreeMap<MarketId, Market>,
    mode: MarginMode<'_>,
) -> Result<(), NumError> {
    let mut filled = 0;
    let mut current: Option<(&Market, Quantity, Quantity, Money)> = None;
    for (market_id, position) in positions {
        // A market's positions are adjacent: look it up once per market.
        let known = match &current {
            Some((market, ..)) if market.id == *market_id => Some(*market),
            _ => markets.get(market_id),
        };
        let Some(market) = known else {
            continue; // unreachable: reports are checked against listed markets
        };
        let pnl = position
            .size
            .pnl(position.entry_price, market.oracle_price, Rounding::Floor)?;
        match &mut current {
            Some((m, net, gross, upnl)) if m.id == *market_id => {
                *net = net.checked_add(position.size)?;
                *gross = gross.checked_add(position.size.abs()?)?;
                *upnl = upnl.checked_add(pnl)?;
            }
            _ => {
                if let Some(done) = current.take() {
                    set_exposure(exposures, filled, done, mode)?;
                    filled += 1;
                }
                current = Some((market, position.size, position.size.abs()?, pnl));
            }
        }
    }
    if let Some(done) = current {
        set_exposure(exposures, filled, done, mode)?;
        filled += 1;
    }
    exposures.truncate(filled);
    Ok(())
}

/// Sets the `index`th exposure (appended if there are fewer) to a market's
/// (net size, gross size, unrealized PnL).
fn set_exposure(
    exposures: &mut Vec<Exposure>,
    index: usize,
    figures: (&Market, Quantity, Quantity, Money),
    mode: MarginMode<'_>,
) -> Result<(), NumError> {
    match exposures.get_mut(index) {
        Some(slot) => fill_exposure(slot, figures, mode),
        None => {
            exposures.push(market_exposure(figures, mode)?);
            Ok(())
        }
    }
}

/// Sets an exposure to a market's (net size, gross size, unrealized PnL).
fn fill_exposure(
    slot: &mut Exposure,
    (market, net_size, gross_size, unrealized_pnl): (&Market, Quantity, Quantity, Money),
    mode: MarginMode<'_>,
) -> Result<(), NumError> {
    let (net_notional, initial, maintenance) =
        market_requirements(market, net_size, gross_size, mode)?;
    // The id is cloned only when it differs from the one there.
    if slot.market != market.id {
        slot.market = market.id.clone();
    }
    slot.net_size = net_size;
    slot.gross_size = gross_size;
    slot.net_notional = net_notional;
    slot.unrealized_pnl = unrealized_pnl;
    slot.initial = initial;
    slot.maintenance = maintenance;
    Ok(())
}

/// An account's exposure in one market from its (net size, gross size,
/// unrealized PnL) there.
pub(super) fn market_exposure(
    figures: (&Market, Quantity, Quantity, Money),
    mode: MarginMode<'_>,
) -> Result<Exposure, NumError> {
    let mut exposure = Exposure {
        market: figures.0.id.clone(),
        net_size: Quantity::ZERO,
        gross_size: Quantity::ZERO,
        net_notional: Money::ZERO,
        unrealized_pnl: Money::ZERO,
        initial: Money::ZERO,
        maintenance: Money::ZERO,
    };
    fill_exposure(&mut exposure, figures, mode)?;
    Ok(exposure)
}

/// A market's (net notional, initial, maintenance) for a net and gross size.
fn market_requirements(
    market: &Market,
    net_size: Quantity,
    gross_size: Quantity,
    mode: MarginMode<'_>,
) -> Result<(Money, Money, Money), NumError> {
    let price = market.oracle_price;
    let net_notional = net_size.abs()?.notional(price, Rounding::Ceil)?;
    let netted_notional = gross_size
        .checked_sub(net_size.abs()?)?
        .notional(price, Rounding::Ceil)?;
    let market_fraction = match mode {
        MarginMode::Existing => market.margin.current,
        MarginMode::NewRisk(projected) => projected
            .get(&market.id)
            .copied()
            .unwrap_or(market.margin.target)
            .max(market.margin.target),
    };
    let flat =
        net_notional.mul_ratio(market_fraction.max(market.initial_margin), Rounding::Ceil)?;
    let tiered =
        regime::tiered_requirement(net_notional, market.initial_margin, &market.size_tiers)?;
    let basis = netted_notional.mul_ratio(market.basis, Rounding::Ceil)?;
    let initial = flat.max(tiered).checked_add(basis)?;
    let maintenance = initial.mul_ratio(market.maintenance_fraction, Rounding::Ceil)?;
    Ok((net_notional, initial, maintenance))
}

/// Margin ratio (equity / maintenance, ppm, floored) for the risk index;
/// `None` without positions.
pub fn margin_ratio_ppm(risk: &Risk) -> Option<i128> {
    if risk.maintenance.is_positive() {
        clearnode_num::mul_div(
            risk.equity.raw(),
            1_000_000,
            risk.maintenance.raw(),
            Rounding::Floor,
        )
        .ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
