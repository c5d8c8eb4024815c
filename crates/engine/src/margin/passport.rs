//! The margin passport: what a venue may accept for an account before the
//! clearinghouse would refuse it. For each market, the largest additional
//! long and short the account may take on the asking venue: the same rules
//! as a report's check (reduce-only in margin call or worse; otherwise
//! equity must cover the initial requirement for new risk at the target
//! fraction of the open interest the addition creates).
//!
//! The answer must be exact and fast. Everything in the report check except
//! the asked market's own exposure is independent of the addition, so it is
//! computed once per passport; a [`Probe`] then evaluates the check's margin
//! surplus for a candidate addition from that market alone, with the check's
//! own arithmetic. The surplus is piecewise linear in the size (between size
//! tiers, and quadratic where OI scaling moves the fraction), so secant
//! steps reach the boundary's piece, a gallop crosses the boundary and
//! bisection pins the last unit: 5-15 probes instead of ~90 full checks.
//! The answer is then confirmed with the full report check on both sides of
//! the boundary (it passes there and fails one unit above; the check is not
//! monotone to the unit, since an addition moves an entry price, so this is
//! what "the boundary" means); should that ever fail, bisection over the
//! full check answers instead (a property test finds it never does).

use std::collections::BTreeMap;

use clearnode_num::{mul_div, Money, NumError, Quantity, Rounding};
use clearnode_types::{AssetId, MarketId, VenueId};

use super::regime::{self, TargetInputs};
use super::{compute_risk, compute_risk_with, market_exposure, Health, MarginMode, Risk};
use crate::liquidation::{NOTIONAL_DIVISOR, RATIO_ONE_PPM};
use crate::state::{Account, Asset, Market, Position};

/// Open interest (long, short sizes) per market.
pub type OpenInterest = BTreeMap<MarketId, (Quantity, Quantity)>;

/// What an account may still add in one market on one venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketAllowance {
    /// Market.
    pub market: MarketId,
    /// Largest additional long (positive size).
    pub long: Quantity,
    /// Largest additional short (positive size).
    pub short: Quantity,
}

/// Binary search steps: enough to pin a size below 10^15 units to 10^-9.
const SEARCH_STEPS_MAX: u32 = 90;

/// The account with `delta` more of `market` on `venue`, entered at the mark.
fn with_added(
    account: &Account,
    market: &Market,
    venue: &VenueId,
    delta: Quantity,
) -> Result<Account, NumError> {
    let mut after = account.clone();
    let key = (market.id.clone(), venue.clone());
    let (position, realized) =
        crate::liquidation::fill(after.positions.get(&key), delta, market.oracle_price, 0)?;
    match position {
        Some(position) => after.positions.insert(
            key,
            Position {
                updated_height: 0,
                ..position
            },
        ),
        None => after.positions.remove(&key),
    };
    after.settled_pnl = after.settled_pnl.checked_add(realized)?;
    Ok(after)
}

/// The target fraction for new risk once `delta` is added to the market's
/// open interest (on its side, whether or not it reduces the account).
fn target_after(
    market: &Market,
    open_interest: (Quantity, Quantity),
    delta: Quantity,
) -> Result<clearnode_num::Ratio, NumError> {
    let (long, short) = open_interest;
    let (long, short) = if delta.is_positive() {
        (long.checked_add(delta)?, short)
    } else {
        (long, short.checked_add(delta.abs()?)?)
    };
    regime::target_fraction(&TargetInputs {
        base: market.initial_margin,
        open_interest: long
            .max(short)
            .notional(market.oracle_price, Rounding::Ceil)?,
        open_interest_lower_cap: market.open_interest_lower_cap,
        open_interest_upper_cap: market.open_interest_upper_cap,
        volatility_ppm: regime::volatility_ppm(market.margin.volatility_variance),
        volatility_reference_ppm: market.volatility_reference_ppm,
    })
}

/// Whether adding `delta` would pass a report's margin check: the check
/// itself, on a copy of the account.
fn admissible(
    account: &Account,
    market: &Market,
    venue: &VenueId,
    delta: Quantity,
    context: &Context<'_>,
) -> Result<bool, NumError> {
    let after = with_added(account, market, venue, delta)?;
    let size = after
        .positions
        .get(&(market.id.clone(), venue.clone()))
        .map_or(Quantity::ZERO, |p| p.size);
    if size.abs()? > context.size_max {
        return Ok(false);
    }
    let open_interest = context
        .open_interest
        .get(&market.id)
        .copied()
        .unwrap_or_default();
    let target = target_after(market, open_interest, delta)?;
    let targets = BTreeMap::from([(market.id.clone(), target)]);
    let risk = compute_risk_with(
        &after,
        context.markets,
        context.assets,
        0,
        MarginMode::NewRisk(&targets),
    )?;
    Ok(risk.equity >= risk.initial)
}

struct Context<'a> {
    size_max: Quantity,
    markets: &'a BTreeMap<MarketId, Market>,
    assets: &'a BTreeMap<AssetId, Asset>,
    open_interest: &'a OpenInterest,
}

/// The report check's margin surplus for additions in one market on one
/// venue, from that market alone: the rest of the account is fixed.
struct Probe<'a> {
    market: &'a Market,
    /// The account's position on the asking venue.
    position: Option<&'a Position>,
    /// Its positions in the market on other venues: net, gross, PnL.
    others: Option<(Quantity, Quantity, Money)>,
    /// Collateral value, settled PnL and other markets' unrealized PnL.
    equity_elsewhere: Money,
    /// Other markets' initial requirement for new risk.
    initial_elsewhere: Money,
    open_interest: (Quantity, Quantity),
}

impl<'a> Probe<'a> {
    /// `new_risk`: the account's risk with new-risk margin everywhere.
    fn new(
        account: &'a Account,
        market: &'a Market,
        venue: &VenueId,
        new_risk: &Risk,
        open_interest: (Quantity, Quantity),
    ) -> Result<Self, NumError> {
        let mut position = None;
        let mut others: Option<(Quantity, Quantity, Money)> = None;
        for ((market_id, position_venue), held) in &account.positions {
            if *market_id != market.id {
                continue;
            }
            if position_venue == venue {
                position = Some(held);
                continue;
            }
            let pnl = held
                .size
                .pnl(held.entry_price, market.oracle_price, Rounding::Floor)?;
            let (net, gross, upnl) = others.unwrap_or_default();
            others = Some((
                net.checked_add(held.size)?,
                gross.checked_add(held.size.abs()?)?,
                upnl.checked_add(pnl)?,
            ));
        }
        let (mut equity_elsewhere, mut initial_elsewhere) = (new_risk.equity, new_risk.initial);
        if let Some(here) = new_risk.exposures.iter().find(|e| e.market == market.id) {
            equity_elsewhere = equity_elsewhere.checked_sub(here.unrealized_pnl)?;
            initial_elsewhere = initial_elsewhere.checked_sub(here.initial)?;
        }
        Ok(Probe {
            market,
            position,
            others,
            equity_elsewhere,
            initial_elsewhere,
            open_interest,
        })
    }

    /// Net size in the market across venues.
    fn net(&self) -> Result<Quantity, NumError> {
        let here = self.position.map_or(Quantity::ZERO, |p| p.size);
        here.checked_add(self.others.map_or(Quantity::ZERO, |o| o.0))
    }

    /// Equity less the initial requirement for new risk after adding
    /// `delta` (raw money units; negative: the check refuses it). The size
    /// limit is not part of it.
    fn surplus(&self, delta: Quantity) -> Result<i128, NumError> {
        let price = self.market.oracle_price;
        let (after, realized) = crate::liquidation::fill(self.position, delta, price, 0)?;
        let mut held = match &after {
            Some(p) => Some((
                p.size,
                p.size.abs()?,
                p.size.pnl(p.entry_price, price, Rounding::Floor)?,
            )),
            None => None,
        };
        if let Some((net, gross, upnl)) = self.others {
            let (size, abs, pnl) = held.unwrap_or_default();
            held = Some((
                net.checked_add(size)?,
                gross.checked_add(abs)?,
                upnl.checked_add(pnl)?,
            ));
        }
        let mut equity = self.equity_elsewhere.checked_add(realized)?;
        let mut initial = self.initial_elsewhere;
        // Without any position left the market has no exposure, as in the check.
        if let Some((net, gross, upnl)) = held {
            let target = target_after(self.market, self.open_interest, delta)?;
            let targets = BTreeMap::from([(self.market.id.clone(), target)]);
            let exposure = market_exposure(
                (self.market, net, gross, upnl),
                MarginMode::NewRisk(&targets),
            )?;
            equity = equity.checked_add(upnl)?;
            initial = initial.checked_add(exposure.initial)?;
        }
        Ok(equity.checked_sub(initial)?.raw())
    }
}

/// Secant steps before galloping: a linear piece needs one, a kink or the
/// quadratic stretch of OI scaling a few.
const SECANT_STEPS_MAX: u32 = 8;

/// Surplus (money units) within which a probe is at the boundary as far as
/// rounding can tell: requirements and PnL each round by a unit.
const ROUNDING_REACH: i128 = 4;

/// Sizes known to pass (`low`) and to fail (`high`).
struct Bracket {
    low: i128,
    high: i128,
}

impl Bracket {
    /// Moves the end `size` replaces; true when it passed (the low end moved).
    fn narrow(&mut self, size: i128, surplus: i128) -> bool {
        if surplus >= 0 {
            self.low = size;
        } else {
            self.high = size;
        }
        surplus >= 0
    }
}

/// The largest addition in `[low, high]` with a non-negative surplus
/// (`low` is taken as admissible). Secant steps through the last two probes
/// find the boundary's linear piece and land on it up to rounding; the
/// surplus moves in whole money units there, so strides of the size that
/// moves it by [`ROUNDING_REACH`], doubling, then gallop across the
/// boundary, and bisection pins the last unit.
fn search_surplus(
    surplus: impl Fn(i128) -> Result<i128, NumError>,
    low: i128,
    high: i128,
) -> Result<i128, NumError> {
    let high_surplus = surplus(high)?;
    if high_surplus >= 0 {
        return Ok(high);
    }
    let low_surplus = surplus(low)?;
    if low_surplus < 0 {
        return Ok(low);
    }
    let mut bracket = Bracket { low, high };
    let (mut previous, mut last) = ((high, high_surplus), (low, low_surplus));
    for _ in 0..SECANT_STEPS_MAX {
        let ((x1, s1), (x2, s2)) = (previous, last);
        if bracket.high - bracket.low <= 1 || s1 == s2 {
            break;
        }
        let step = mul_div(x2 - x1, s2, s1 - s2, Rounding::Floor)?;
        let guess = x2
            .saturating_add(step)
            .clamp(bracket.low + 1, bracket.high - 1);
        let guess_surplus = surplus(guess)?;
        bracket.narrow(guess, guess_surplus);
        (previous, last) = (last, (guess, guess_surplus));
        if guess_surplus.abs() <= ROUNDING_REACH {
            break;
        }
    }
    let ((x1, s1), (x2, s2)) = (previous, last);
    let mut stride = if s1 == s2 {
        1
    } else {
        mul_div(
            (x2 - x1).abs(),
            ROUNDING_REACH,
            (s1 - s2).abs(),
            Rounding::Ceil,
        )?
        .max(1)
    };
    let upward = s2 >= 0;
    loop {
        let next = if upward {
            bracket.low.saturating_add(stride)
        } else {
            bracket.high.saturating_sub(stride)
        };
        if next <= bracket.low || next >= bracket.high {
            break;
        }
        if bracket.narrow(next, surplus(next)?) != upward {
            break;
        }
        stride = stride.saturating_mul(2);
    }
    while bracket.high - bracket.low > 1 {
        let middle = bracket.low + (bracket.high - bracket.low) / 2;
        bracket.narrow(middle, surplus(middle)?);
    }
    Ok(bracket.low)
}

/// The largest addition by bisection over the full check: the fallback.
fn bisect_exact(
    check: impl Fn(i128) -> Result<bool, NumError>,
    low: i128,
    high: i128,
) -> Result<i128, NumError> {
    if check(high)? {
        return Ok(high);
    }
    let (mut low, mut high) = (low, high);
    for _ in 0..SEARCH_STEPS_MAX {
        if high - low <= 1 {
            break;
        }
        let middle = low + (high - low) / 2;
        if check(middle)? {
            low = middle;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

/// How one side's answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// By the probe, confirmed by the full check on both sides.
    Confirmed(i128),
    /// By bisection over the full check (the probe's answer did not hold).
    Bisected(i128),
}

/// The largest addition on one side (`sign` +1 long, -1 short).
fn largest(
    account: &Account,
    probe: &Probe<'_>,
    venue: &VenueId,
    sign: i128,
    equity: Money,
    context: &Context<'_>,
) -> Result<Found, NumError> {
    let market = probe.market;
    let current = probe.net()?;
    // Reducing the net exposure is always allowed, up to flat.
    let reducing = if current.signum() == -sign {
        current.abs()?.raw()
    } else {
        0
    };
    // Beyond `reducing`, every unit adds at least the base fraction of its
    // notional to the net requirement while equity stays (it enters at the
    // mark): nothing above reducing + equity / (mark x base) can pass.
    let affordable = mul_div(
        mul_div(
            equity.max(Money::ZERO).raw(),
            NOTIONAL_DIVISOR,
            market.oracle_price.raw(),
            Rounding::Ceil,
        )?,
        RATIO_ONE_PPM,
        market.initial_margin.raw().max(1),
        Rounding::Ceil,
    )?;
    // Nor anything that takes the venue's position past the size limit.
    let venue_size = probe.position.map_or(0, |p| p.size.raw());
    let size_room = context.size_max.raw().saturating_sub(sign * venue_size);
    let high = reducing
        .saturating_add(affordable)
        .saturating_add(1)
        .min(size_room)
        .max(reducing);
    let delta = |x: i128| -> Result<Quantity, NumError> {
        let q = Quantity::from_raw(x);
        if sign > 0 {
            Ok(q)
        } else {
            q.checked_neg()
        }
    };
    let check = |x: i128| admissible(account, market, venue, delta(x)?, context);
    let found = search_surplus(|x| probe.surplus(delta(x)?), reducing, high)?;
    let holds = (found == reducing || check(found)?) && (found == high || !check(found + 1)?);
    if holds {
        return Ok(Found::Confirmed(found));
    }
    Ok(Found::Bisected(bisect_exact(check, reducing, high)?))
}

/// Per market, each side's answer and how it was found.
fn allowances(
    account: &Account,
    venue: &VenueId,
    context: &Context<'_>,
) -> Result<Vec<(MarketId, Found, Found)>, NumError> {
    let (markets, assets) = (context.markets, context.assets);
    let now = compute_risk(account, markets, assets, 0)?;
    let reduce_only = now.health >= Health::MarginCall;
    // Other markets pay their target for new risk whatever is added here.
    let no_projection = BTreeMap::new();
    let new_risk = compute_risk_with(
        account,
        markets,
        assets,
        0,
        MarginMode::NewRisk(&no_projection),
    )?;
    markets
        .values()
        .map(|market| {
            let open_interest = context
                .open_interest
                .get(&market.id)
                .copied()
                .unwrap_or_default();
            let probe = Probe::new(account, market, venue, &new_risk, open_interest)?;
            // As the report check: an isolated market is held only by its
            // isolated sub-accounts, and a sub-account holds only its own.
            let holdable = match &account.isolated {
                Some((_, own)) => *own == market.id,
                None => !market.isolated,
            };
            let side = |sign: i128| {
                if !holdable {
                    return Ok(Found::Confirmed(0));
                }
                if reduce_only {
                    // Only reducing the net exposure, up to flat.
                    let net = probe.net()?;
                    let reducing = if net.signum() == -sign {
                        net.abs()?
                    } else {
                        Quantity::ZERO
                    };
                    return Ok(Found::Confirmed(reducing.raw()));
                }
                largest(account, &probe, venue, sign, now.equity, context)
            };
            Ok((market.id.clone(), side(1)?, side(-1)?))
        })
        .collect()
}

/// The account's allowance in every market, on `venue`.
pub fn passport(
    account: &Account,
    venue: &VenueId,
    markets: &BTreeMap<MarketId, Market>,
    assets: &BTreeMap<AssetId, Asset>,
    open_interest: &OpenInterest,
    size_max: Quantity,
) -> Result<Vec<MarketAllowance>, NumError> {
    let context = Context {
        size_max,
        markets,
        assets,
        open_interest,
    };
    let size = |found: Found| match found {
        Found::Confirmed(raw) | Found::Bisected(raw) => Quantity::from_raw(raw),
    };
    Ok(allowances(account, venue, &context)?
        .into_iter()
        .map(|(market, long, short)| MarketAllowance {
            market,
            long: size(long),
            short: size(short),
        })
        .collect())
}

#[cfg(test)]
mod tests;
