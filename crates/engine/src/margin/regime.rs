//! The margin regime of a market: how its initial margin fraction (IMF)
//! moves with open interest, volatility and position size.
//!
//! - Open interest: linear from the base fraction at the lower cap to 100% at
//!   the upper cap (dYdX's OIMF).
//! - Volatility: base x (realized volatility / reference volatility) when
//!   above the reference; realized volatility is the square root of an
//!   integer EWMA of squared per-update oracle returns.
//! - Size: Hyperliquid-style tiers with a deduction, so the requirement is
//!   continuous in size: `IM(N) = N x f_k - d_k` on tier k, with
//!   `d_k = d_(k-1) + floor_k x (f_k - f_(k-1))`.
//!
//! The market fraction for new risk (the target) applies at once; the
//! fraction for existing positions (the current) rises toward it in equal
//! steps over `margin_phase_in_blocks`, never faster than
//! `margin_rise_per_block_max` per block, and falls at once.

use clearnode_num::{mul_div, Money, NumError, Ratio, Rounding};

/// Parts per million in 1.0.
const PPM: i128 = 1_000_000;

/// One size tier, with its deduction precomputed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeTier {
    /// Net notional where the tier starts.
    pub notional_floor: Money,
    /// Marginal fraction from there on.
    pub initial_margin: Ratio,
    /// What keeps the requirement continuous at the floor.
    pub deduction: Money,
}

/// Builds tiers with their deductions from (floor, fraction) pairs above the base.
pub fn size_tiers(base: Ratio, tiers: &[(Money, Ratio)]) -> Result<Vec<SizeTier>, NumError> {
    let mut result = Vec::with_capacity(tiers.len());
    let mut previous_fraction = base;
    let mut deduction = Money::ZERO;
    for &(notional_floor, initial_margin) in tiers {
        let step = initial_margin.checked_sub(previous_fraction)?;
        // Rounded down, so the requirement is never lowered by rounding.
        deduction = deduction.checked_add(notional_floor.mul_ratio(step, Rounding::Floor)?)?;
        result.push(SizeTier {
            notional_floor,
            initial_margin,
            deduction,
        });
        previous_fraction = initial_margin;
    }
    Ok(result)
}

/// The size-tier requirement of a net notional (the base tier is `N x base`).
pub fn tiered_requirement(
    net_notional: Money,
    base: Ratio,
    tiers: &[SizeTier],
) -> Result<Money, NumError> {
    match tiers
        .iter()
        .rev()
        .find(|t| net_notional >= t.notional_floor)
    {
        Some(tier) => net_notional
            .mul_ratio(tier.initial_margin, Rounding::Ceil)?
            .checked_sub(tier.deduction),
        None => net_notional.mul_ratio(base, Rounding::Ceil),
    }
}

/// The dynamic part of a market's margin, as of its last update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MarketMargin {
    /// EWMA of squared per-update returns, ppm^2.
    pub volatility_variance: i128,
    /// Fraction for new risk.
    pub target: Ratio,
    /// Fraction for existing positions.
    pub current: Ratio,
    /// Rise per block while phasing in.
    pub phase_step: Ratio,
    /// The target the step was computed for.
    pub phase_target: Ratio,
    /// Height of the last update.
    pub updated_height: u64,
}

/// Integer square root (floor).
pub fn isqrt(value: u128) -> u128 {
    if value < 2 {
        return value;
    }
    // Newton's method from an upper bound; converges in a few dozen steps.
    let mut x = 1u128 << (value.ilog2() / 2 + 1);
    loop {
        let y = (x + value / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// The EWMA variance after a price update from `old` to `new` (raw prices).
pub fn variance_after(
    variance: i128,
    old_price: i128,
    new_price: i128,
    decay: Ratio,
) -> Result<i128, NumError> {
    let change = new_price.checked_sub(old_price).ok_or(NumError::Overflow)?;
    let return_ppm = mul_div(change, PPM, old_price, Rounding::Ceil)?;
    // A single update's return is capped at 100x, so its square fits easily.
    let return_ppm = return_ppm.clamp(-100 * PPM, 100 * PPM);
    let squared = return_ppm * return_ppm;
    let kept = mul_div(variance, decay.raw(), PPM, Rounding::Ceil)?;
    let added = mul_div(squared, PPM - decay.raw(), PPM, Rounding::Ceil)?;
    kept.checked_add(added).ok_or(NumError::Overflow)
}

/// Realized volatility (ppm) of a variance.
pub fn volatility_ppm(variance: i128) -> i128 {
    let root = isqrt(u128::try_from(variance.max(0)).unwrap_or(0));
    i128::try_from(root).unwrap_or(i128::MAX)
}

/// What the target fraction is computed from.
#[derive(Debug, Clone, Copy)]
pub struct TargetInputs {
    /// Base fraction.
    pub base: Ratio,
    /// Open interest notional (larger side).
    pub open_interest: Money,
    /// Lower OI cap.
    pub open_interest_lower_cap: Money,
    /// Upper OI cap (zero: OI scaling off).
    pub open_interest_upper_cap: Money,
    /// Realized volatility, ppm.
    pub volatility_ppm: i128,
    /// Reference volatility, ppm.
    pub volatility_reference_ppm: i128,
}

/// The fraction for new risk: the largest of base, OI-scaled and volatility-scaled, at most 100%.
pub fn target_fraction(inputs: &TargetInputs) -> Result<Ratio, NumError> {
    let base = inputs.base;
    let upper = inputs.open_interest_upper_cap;
    let lower = inputs.open_interest_lower_cap;
    let oi_scaled = if upper.is_zero() || inputs.open_interest <= lower {
        base
    } else if inputs.open_interest >= upper {
        Ratio::ONE
    } else {
        let over = inputs.open_interest.checked_sub(lower)?.raw();
        let span = upper.checked_sub(lower)?.raw();
        let headroom = Ratio::ONE.checked_sub(base)?.raw();
        Ratio::from_raw(base.raw() + mul_div(headroom, over, span, Rounding::Ceil)?)
    };
    let volatility_scaled = if inputs.volatility_ppm > inputs.volatility_reference_ppm {
        Ratio::from_raw(mul_div(
            base.raw(),
            inputs.volatility_ppm,
            inputs.volatility_reference_ppm,
            Rounding::Ceil,
        )?)
    } else {
        base
    };
    Ok(base.max(oi_scaled).max(volatility_scaled).min(Ratio::ONE))
}

/// Moves the current fraction one block toward the target.
pub fn phase_in(
    margin: &MarketMargin,
    target: Ratio,
    phase_in_blocks: u32,
    rise_per_block_max: Ratio,
) -> Result<MarketMargin, NumError> {
    let mut next = MarketMargin { target, ..*margin };
    if target <= margin.current {
        // Lower requirements apply at once; nothing is phasing in.
        next.current = target;
        next.phase_step = Ratio::ZERO;
        next.phase_target = target;
        return Ok(next);
    }
    if target != margin.phase_target {
        let gap = target.checked_sub(margin.current)?.raw();
        let step = mul_div(gap, 1, i128::from(phase_in_blocks.max(1)), Rounding::Ceil)?;
        next.phase_step = Ratio::from_raw(step);
        next.phase_target = target;
    }
    let rise = next.phase_step.min(rise_per_block_max);
    next.current = margin.current.checked_add(rise)?.min(target);
    Ok(next)
}

#[cfg(test)]
mod tests;
