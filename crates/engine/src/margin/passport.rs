//! The margin passport: what a venue may accept for an account before the
//! clearinghouse would refuse it. For each market, the largest additional
//! long and short the account may take on the asking venue: the same rules
//! as a report's check (reduce-only in margin call or worse; otherwise
//! equity must cover the initial requirement for new risk at the target
//! fraction of the open interest the addition creates).

use std::collections::BTreeMap;

use clearnode_num::{NumError, Quantity, Rounding};
use clearnode_types::{AssetId, MarketId, VenueId};

use super::regime::{self, TargetInputs};
use super::{compute_risk, compute_risk_with, Health, MarginMode};
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

fn net(account: &Account, market: &MarketId) -> Result<Quantity, NumError> {
    Quantity::checked_sum(
        account
            .positions
            .iter()
            .filter(|((m, _), _)| m == market)
            .map(|(_, p)| p.size),
    )
}

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

/// Whether adding `delta` would pass a report's margin check.
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
    let (long, short) = context
        .open_interest
        .get(&market.id)
        .copied()
        .unwrap_or_default();
    let (long, short) = if delta.is_positive() {
        (long.checked_add(delta)?, short)
    } else {
        (long, short.checked_add(delta.abs()?)?)
    };
    let target = regime::target_fraction(&TargetInputs {
        base: market.initial_margin,
        open_interest: long
            .max(short)
            .notional(market.oracle_price, Rounding::Ceil)?,
        open_interest_lower_cap: market.open_interest_lower_cap,
        open_interest_upper_cap: market.open_interest_upper_cap,
        volatility_ppm: regime::volatility_ppm(market.margin.volatility_variance),
        volatility_reference_ppm: market.volatility_reference_ppm,
    })?;
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

/// The largest addition on one side (`sign` +1 long, -1 short).
fn largest(
    account: &Account,
    market: &Market,
    venue: &VenueId,
    sign: i128,
    reduce_only: bool,
    context: &Context<'_>,
) -> Result<Quantity, NumError> {
    let current = net(account, &market.id)?;
    // Reducing the net exposure is always allowed, up to flat.
    let reducing = if current.signum() == -sign {
        current.abs()?
    } else {
        Quantity::ZERO
    };
    if reduce_only {
        return Ok(reducing);
    }
    let signed = |q: Quantity| if sign > 0 { Ok(q) } else { q.checked_neg() };
    // Beyond `reducing`, every unit adds at least the base fraction of its
    // notional to the net requirement while equity stays (it enters at the
    // mark): nothing above reducing + equity / (mark x base) can pass, so
    // the search starts there instead of at twice the size limit.
    let equity = compute_risk(account, context.markets, context.assets, 0)?
        .equity
        .max(clearnode_num::Money::ZERO);
    let affordable = clearnode_num::mul_div(
        clearnode_num::mul_div(
            equity.raw(),
            NOTIONAL_DIVISOR,
            market.oracle_price.raw(),
            Rounding::Ceil,
        )?,
        RATIO_ONE_PPM,
        market.initial_margin.raw().max(1),
        Rounding::Ceil,
    )?;
    let bound = reducing.raw().saturating_add(affordable).saturating_add(1);
    let (mut low, mut high) = (
        reducing.raw(),
        context
            .size_max
            .raw()
            .saturating_mul(2)
            .min(bound)
            .max(reducing.raw()),
    );
    if admissible(
        account,
        market,
        venue,
        signed(Quantity::from_raw(high))?,
        context,
    )? {
        return Ok(Quantity::from_raw(high));
    }
    for _ in 0..SEARCH_STEPS_MAX {
        if high - low <= 1 {
            break;
        }
        let middle = low + (high - low) / 2;
        if admissible(
            account,
            market,
            venue,
            signed(Quantity::from_raw(middle))?,
            context,
        )? {
            low = middle;
        } else {
            high = middle;
        }
    }
    Ok(Quantity::from_raw(low))
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
    let now = compute_risk(account, markets, assets, 0)?;
    let reduce_only = now.health >= Health::MarginCall;
    let context = Context {
        size_max,
        markets,
        assets,
        open_interest,
    };
    markets
        .values()
        .map(|market| {
            Ok(MarketAllowance {
                market: market.id.clone(),
                long: largest(account, market, venue, 1, reduce_only, &context)?,
                short: largest(account, market, venue, -1, reduce_only, &context)?,
            })
        })
        .collect()
}
