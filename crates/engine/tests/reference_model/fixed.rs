//! Fixed-point arithmetic of the model: plain `i128` raw values and explicit
//! rounding, written without the `clearnode-num` crate so that a rounding
//! bug there cannot hide in both implementations at once.
//!
//! Raw units: quantities and prices have 9 decimals, USD 6, ratios are parts
//! per million. Every helper panics on overflow: at the sizes the generator
//! uses nothing comes near `i128::MAX`, so an overflow is a model bug.

/// One whole unit of a quantity (contracts or collateral), raw.
pub const QUANTITY_ONE: i128 = 1_000_000_000;
/// One USD per unit as a price, raw.
pub const PRICE_ONE: i128 = 1_000_000_000;
/// One USD, raw.
pub const USD_ONE: i128 = 1_000_000;
/// 1.0 as a ratio: parts per million.
pub const PPM: i128 = 1_000_000;
/// quantity raw x price raw is in 10^-18 USD; USD raw is 10^-6.
const NOTIONAL_DIVISOR: i128 = QUANTITY_ONE * PRICE_ONE / USD_ONE;

/// Which way an inexact result goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Toward negative infinity.
    Down,
    /// Toward positive infinity.
    Up,
}

/// `numerator / denominator` rounded as asked (any signs).
pub fn divide(numerator: i128, denominator: i128, round: Round) -> i128 {
    assert_ne!(denominator, 0, "model divides by zero");
    let truncated = numerator / denominator;
    let inexact = numerator % denominator != 0;
    let negative = (numerator < 0) != (denominator < 0);
    match (inexact, round, negative) {
        // Truncation already went toward -inf for a positive quotient and
        // toward +inf for a negative one.
        (true, Round::Down, true) => truncated - 1,
        (true, Round::Up, false) => truncated + 1,
        _ => truncated,
    }
}

/// `a x b / d`, rounded as asked.
pub fn mul_div(a: i128, b: i128, d: i128, round: Round) -> i128 {
    let product = a
        .checked_mul(b)
        .unwrap_or_else(|| panic!("model overflow: {a} x {b}"));
    divide(product, d, round)
}

/// USD value of a (signed) quantity at a price.
pub fn notional(quantity: i128, price: i128, round: Round) -> i128 {
    mul_div(quantity, price, NOTIONAL_DIVISOR, round)
}

/// `value x ratio`, for any raw value (USD, quantity, price or ratio).
pub fn times_ppm(value: i128, ratio_ppm: i128, round: Round) -> i128 {
    mul_div(value, ratio_ppm, PPM, round)
}

/// Profit of `size` bought at `entry` and valued at `mark`, in one exact
/// step (not a difference of two rounded notionals).
pub fn pnl(size: i128, entry: i128, mark: i128, round: Round) -> i128 {
    notional(size, mark - entry, round)
}

/// The quantity worth `usd` at `price`.
pub fn quantity_worth(usd: i128, price: i128, round: Round) -> i128 {
    mul_div(usd, NOTIONAL_DIVISOR, price, round)
}

/// The price at which `quantity` costs `usd`.
pub fn price_of(usd: i128, quantity: i128, round: Round) -> i128 {
    mul_div(usd, NOTIONAL_DIVISOR, quantity, round)
}

/// Largest integer whose square is at most `value` (by bisection: slow and obvious).
pub fn square_root_floor(value: i128) -> i128 {
    if value <= 0 {
        return 0;
    }
    let (mut low, mut high) = (0i128, 1i128 << 64);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if middle
            .checked_mul(middle)
            .is_some_and(|square| square <= value)
        {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

/// A raw value as the exact decimal text the transaction encoding expects.
pub fn decimal(raw: i128, decimals: u32) -> String {
    let scale = 10i128.pow(decimals);
    let sign = if raw < 0 { "-" } else { "" };
    let magnitude = raw.unsigned_abs();
    let whole = magnitude / scale.unsigned_abs();
    let fraction = magnitude % scale.unsigned_abs();
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let width = decimals as usize;
    let digits = format!("{fraction:0width$}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_goes_the_named_way_for_every_sign() {
        assert_eq!(divide(7, 2, Round::Down), 3);
        assert_eq!(divide(7, 2, Round::Up), 4);
        assert_eq!(divide(-7, 2, Round::Down), -4);
        assert_eq!(divide(-7, 2, Round::Up), -3);
        assert_eq!(divide(7, -2, Round::Down), -4);
        assert_eq!(divide(-7, -2, Round::Up), 4);
        assert_eq!(divide(-6, 2, Round::Down), -3);
        assert_eq!(square_root_floor(99), 9);
        assert_eq!(square_root_floor(100), 10);
        assert_eq!(decimal(-1_500_000, 6), "-1.5");
        assert_eq!(decimal(60_000 * PRICE_ONE, 9), "60000");
    }
}
