//! Cross-venue margin of one account and the margin regime of a market, as
//! docs/margin.md states them. Requirements round up, values and PnL round
//! down; where the documentation leaves the order of rounding steps open,
//! the comment says which order the engine's formula uses.

use std::collections::BTreeMap;

use super::fixed::{mul_div, notional, pnl, square_root_floor, times_ppm, Round, PPM};
use super::{AccountModel, AssetModel, MarketModel};

/// Health states, best first (the order matters: "margin call or worse").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Equity at or above the initial requirement.
    Healthy,
    /// Maintenance <= equity < initial: reduce-only.
    MarginCall,
    /// 0 <= equity < maintenance.
    Liquidating,
    /// Equity below zero.
    Bankrupt,
}

/// Which initial margin fraction a market's exposure pays.
#[derive(Debug, Clone, Copy)]
pub enum Fraction<'a> {
    /// Positions already held: the market's current (phased-in) fraction.
    Existing,
    /// New risk: the market's target at once, or the target at the open
    /// interest a report creates where the report moves it (whichever is higher).
    NewRisk(&'a BTreeMap<String, i128>),
}

/// One market of an account, netted across venues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    pub market: String,
    pub net_size: i128,
    pub gross_size: i128,
    pub net_notional: i128,
    pub unrealized_pnl: i128,
    pub initial: i128,
    pub maintenance: i128,
}

/// An account's risk, recomputed from nothing but its records and the prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Risk {
    pub collateral_value: i128,
    pub unrealized_pnl: i128,
    pub equity: i128,
    pub initial: i128,
    pub maintenance: i128,
    pub health: Health,
    pub net_notional: i128,
    pub leverage_ppm: i128,
    pub exposures: Vec<Exposure>,
}

impl Risk {
    /// Under maintenance: what puts an account on the liquidation ladder.
    /// Without positions there is no maintenance and nothing to liquidate.
    pub fn under_maintenance(&self) -> bool {
        self.maintenance > 0 && self.equity < self.maintenance
    }

    /// Equity / maintenance in ppm, floored: the ladder's ordering key.
    pub fn margin_ratio_ppm(&self) -> Option<i128> {
        (self.maintenance > 0).then(|| mul_div(self.equity, PPM, self.maintenance, Round::Down))
    }

    /// (maintenance - equity) / maintenance, clamped to [0, 1], rounded up
    /// (against the account: a wider band and a higher penalty).
    pub fn under_water_ppm(&self) -> i128 {
        if self.maintenance <= 0 {
            return 0;
        }
        let shortfall = self.maintenance - self.equity;
        mul_div(shortfall, PPM, self.maintenance, Round::Up).clamp(0, PPM)
    }
}

/// Collateral at oracle value less haircut. The engine floors the value
/// first and then floors the haircut share of it (two steps, both down).
pub fn collateral_value(
    collateral: &BTreeMap<String, i128>,
    assets: &BTreeMap<String, AssetModel>,
) -> i128 {
    collateral
        .iter()
        .map(|(asset, amount)| {
            let asset = &assets[asset];
            let value = notional(*amount, asset.price, Round::Down);
            times_ppm(value, PPM - asset.haircut_ppm, Round::Down)
        })
        .sum()
}

/// The account's risk at the current prices.
pub fn risk(
    account: &AccountModel,
    markets: &BTreeMap<String, MarketModel>,
    assets: &BTreeMap<String, AssetModel>,
    fraction: Fraction<'_>,
) -> Risk {
    let collateral_value = collateral_value(&account.collateral, assets);
    let exposures: Vec<Exposure> = markets
        .iter()
        .filter_map(|(id, market)| exposure(account, id, market, fraction))
        .collect();
    let unrealized_pnl: i128 = exposures.iter().map(|e| e.unrealized_pnl).sum();
    let initial: i128 = exposures.iter().map(|e| e.initial).sum();
    let maintenance: i128 = exposures.iter().map(|e| e.maintenance).sum();
    let net_notional: i128 = exposures.iter().map(|e| e.net_notional).sum();
    let equity = collateral_value + account.settled_pnl + unrealized_pnl;
    let health = if equity < 0 {
        Health::Bankrupt
    } else if equity < maintenance {
        Health::Liquidating
    } else if equity < initial {
        Health::MarginCall
    } else {
        Health::Healthy
    };
    let leverage_ppm = if equity > 0 {
        mul_div(net_notional, PPM, equity, Round::Up)
    } else {
        0
    };
    Risk {
        collateral_value,
        unrealized_pnl,
        equity,
        initial,
        maintenance,
        health,
        net_notional,
        leverage_ppm,
        exposures,
    }
}

/// The account's exposure in one market, if it holds a position there.
fn exposure(
    account: &AccountModel,
    market_id: &str,
    market: &MarketModel,
    fraction: Fraction<'_>,
) -> Option<Exposure> {
    let positions: Vec<_> = account
        .positions
        .iter()
        .filter(|((market, _venue), _)| market == market_id)
        .map(|(_, position)| position)
        .collect();
    if positions.is_empty() {
        return None;
    }
    let net_size: i128 = positions.iter().map(|p| p.size).sum();
    let gross_size: i128 = positions.iter().map(|p| p.size.abs()).sum();
    // Each position's PnL is floored on its own, then summed.
    let unrealized_pnl = positions
        .iter()
        .map(|p| pnl(p.size, p.entry_price, market.price, Round::Down))
        .sum();
    let net_notional = notional(net_size.abs(), market.price, Round::Up);
    let netted_notional = notional(gross_size - net_size.abs(), market.price, Round::Up);
    let market_fraction = match fraction {
        Fraction::Existing => market.regime.current,
        Fraction::NewRisk(projected) => projected
            .get(market_id)
            .copied()
            .unwrap_or(market.regime.target)
            .max(market.regime.target),
    };
    let flat = times_ppm(
        net_notional,
        market_fraction.max(market.base_ppm),
        Round::Up,
    );
    let basis = times_ppm(netted_notional, market.basis_ppm, Round::Up);
    let initial = flat.max(tier_requirement(market, net_notional)) + basis;
    // Maintenance is a fraction of each market's initial, rounded up per market.
    let maintenance = times_ppm(initial, market.maintenance_fraction_ppm, Round::Up);
    Some(Exposure {
        market: market_id.to_string(),
        net_size,
        gross_size,
        net_notional,
        unrealized_pnl,
        initial,
        maintenance,
    })
}

/// The size-tier requirement: `N x f_k - d_k` on the highest tier whose
/// floor N reaches, `N x base` below the first tier.
fn tier_requirement(market: &MarketModel, net_notional: i128) -> i128 {
    match market
        .tiers
        .iter()
        .rev()
        .find(|tier| net_notional >= tier.notional_floor)
    {
        Some(tier) => times_ppm(net_notional, tier.fraction_ppm, Round::Up) - tier.deduction,
        None => times_ppm(net_notional, market.base_ppm, Round::Up),
    }
}

/// The EWMA of squared per-update returns after a price move. The return
/// is rounded up to whole ppm and capped at 100x; both EWMA terms round up.
pub fn variance_after(variance: i128, old_price: i128, new_price: i128, decay_ppm: i128) -> i128 {
    let return_ppm =
        mul_div(new_price - old_price, PPM, old_price, Round::Up).clamp(-100 * PPM, 100 * PPM);
    let kept = mul_div(variance, decay_ppm, PPM, Round::Up);
    let added = mul_div(return_ppm * return_ppm, PPM - decay_ppm, PPM, Round::Up);
    kept + added
}

/// The fraction for new risk at an open interest (USD, the larger side):
/// the largest of base, OI-scaled and volatility-scaled, at most 100%.
pub fn target_fraction(market: &MarketModel, open_interest: i128) -> i128 {
    let base = market.base_ppm;
    let (lower, upper) = (market.open_interest_lower, market.open_interest_upper);
    let open_interest_scaled = if upper == 0 || open_interest <= lower {
        base
    } else if open_interest >= upper {
        PPM
    } else {
        base + mul_div(PPM - base, open_interest - lower, upper - lower, Round::Up)
    };
    let volatility = square_root_floor(market.regime.variance);
    let reference = market.volatility_reference_ppm;
    let volatility_scaled = if volatility > reference {
        mul_div(base, volatility, reference, Round::Up)
    } else {
        base
    };
    base.max(open_interest_scaled)
        .max(volatility_scaled)
        .min(PPM)
}

/// The regime of the next block: the current fraction falls to the target
/// at once, or rises toward it in equal steps over the phase-in (a new step
/// whenever the target moves), never faster than the per-block cap.
pub fn phase_in(market: &MarketModel, target: i128) -> super::Regime {
    let regime = market.regime;
    if target <= regime.current {
        return super::Regime {
            target,
            current: target,
            phase_step: 0,
            phase_target: target,
            ..regime
        };
    }
    let (phase_step, phase_target) = if target == regime.phase_target {
        (regime.phase_step, regime.phase_target)
    } else {
        let blocks = i128::from(market.phase_in_blocks.max(1));
        (
            mul_div(target - regime.current, 1, blocks, Round::Up),
            target,
        )
    };
    let rise = phase_step.min(market.rise_per_block_max_ppm);
    super::Regime {
        target,
        current: (regime.current + rise).min(target),
        phase_step,
        phase_target,
        ..regime
    }
}
