//! [`Quantity`]: signed amounts of an asset or contract.

use crate::{mul_div, Money, NumError, Price, Ratio, Rounding};
use crate::{MONEY_DECIMALS, PRICE_DECIMALS, QUANTITY_DECIMALS, QUANTITY_SCALE, RATIO_SCALE};

/// Divisor turning `quantity raw * price raw` (10^-18 USD) into Money raw
/// (10^-6 USD): 10^(9 + 9 - 6).
const NOTIONAL_DIVISOR: i128 = 10i128.pow(QUANTITY_DECIMALS + PRICE_DECIMALS - MONEY_DECIMALS);

/// Signed amount of an asset or contract (position size: + long, - short;
/// collateral amounts >= 0 by convention).
///
/// The raw value is in nano-units (10^-[`QUANTITY_DECIMALS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(i128);

impl_signed_fixed!(Quantity, QUANTITY_DECIMALS, QUANTITY_SCALE, "quantity");

impl Quantity {
    /// Notional value `self * price` in [`Money`], rounded as asked.
    ///
    /// Signed: a short's (negative quantity's) notional is negative.
    pub fn notional(self, price: Price, rounding: Rounding) -> Result<Money, NumError> {
        mul_div(self.0, price.raw(), NOTIONAL_DIVISOR, rounding).map(Money::from_raw)
    }

    /// Profit and loss `self * (mark - entry)` in [`Money`], computed in one
    /// exact multiply-divide (not as a difference of two rounded notionals)
    /// and rounded as asked. Positive for a long when the mark is above the
    /// entry, positive for a short when it is below.
    pub fn pnl(self, entry: Price, mark: Price, rounding: Rounding) -> Result<Money, NumError> {
        // Both prices are positive, so the difference cannot overflow.
        let delta = mark
            .raw()
            .checked_sub(entry.raw())
            .ok_or(NumError::Overflow)?;
        mul_div(self.0, delta, NOTIONAL_DIVISOR, rounding).map(Money::from_raw)
    }

    /// `self * r`, rounded as asked (e.g. a haircut applied to a balance).
    pub fn mul_ratio(self, r: Ratio, rounding: Rounding) -> Result<Quantity, NumError> {
        mul_div(self.0, r.raw(), RATIO_SCALE, rounding).map(Quantity)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Rounding::{Ceil, Floor};

    fn price(s: &str) -> Price {
        s.parse().unwrap()
    }

    #[test]
    fn constructors_and_sign() {
        assert_eq!(Quantity::from_units(3).raw(), 3_000_000_000);
        assert_eq!(Quantity::from_units(-2).raw(), -2_000_000_000);
        assert_eq!(
            Quantity::from_units(i64::MIN).raw(),
            i128::from(i64::MIN) * 1_000_000_000
        );
        assert_eq!(Quantity::ZERO, Quantity::default());
        assert!(Quantity::ZERO.is_zero());
        let q = Quantity::from_raw(-5);
        assert!(q.is_negative() && !q.is_positive() && !q.is_zero());
        assert_eq!(q.signum(), -1);
        assert_eq!(q.abs(), Ok(Quantity::from_raw(5)));
        assert_eq!(q.checked_neg(), Ok(Quantity::from_raw(5)));
        assert_eq!(q.non_negative(), Err(NumError::Negative));
        assert_eq!(Quantity::ZERO.non_negative(), Ok(Quantity::ZERO));
    }

    #[test]
    fn overflow_at_the_edges() {
        let (min, max, one) = (Quantity::MIN, Quantity::MAX, Quantity::from_raw(1));
        assert_eq!(max.checked_add(one), Err(NumError::Overflow));
        assert_eq!(min.checked_sub(one), Err(NumError::Overflow));
        assert_eq!(min.checked_neg(), Err(NumError::Overflow));
        assert_eq!(min.abs(), Err(NumError::Overflow));
        assert_eq!(max.checked_neg(), Ok(Quantity::from_raw(-i128::MAX)));
        assert_eq!(
            Quantity::checked_sum([max, one, min]),
            Err(NumError::Overflow)
        );
        assert_eq!(Quantity::checked_sum([max, min, one]), Ok(Quantity::ZERO));
        assert_eq!(Quantity::checked_sum([]), Ok(Quantity::ZERO));
        let p = Price::from_raw(i128::MAX).unwrap();
        assert_eq!(max.notional(p, Floor), Err(NumError::Overflow));
        assert_eq!(min.notional(p, Ceil), Err(NumError::Overflow));
        assert_eq!(
            max.pnl(Price::from_raw(1).unwrap(), p, Floor),
            Err(NumError::Overflow)
        );
        assert_eq!(max.mul_ratio(Ratio::MAX, Floor), Err(NumError::Overflow));
    }

    #[test]
    fn notional_and_pnl_examples() {
        let q: Quantity = "1.5".parse().unwrap();
        let p = price("64250.5");
        assert_eq!(q.notional(p, Floor).unwrap().to_string(), "96375.75");
        let short = q.checked_neg().unwrap();
        assert_eq!(short.notional(p, Floor).unwrap().to_string(), "-96375.75");
        // 1 nano-unit at 1 nano-USD: 10^-18 USD, floors to 0 and ceils to 1 micro.
        let tiny = Quantity::from_raw(1);
        let cheap = Price::from_raw(1).unwrap();
        assert_eq!(tiny.notional(cheap, Floor), Ok(Money::ZERO));
        assert_eq!(tiny.notional(cheap, Ceil), Ok(Money::from_raw(1)));
        assert_eq!(
            tiny.checked_neg().unwrap().notional(cheap, Floor),
            Ok(Money::from_raw(-1))
        );
        // Long 2 at 100, mark 90: -20. Short 2: +20.
        let two = Quantity::from_units(2);
        let (entry, mark) = (price("100"), price("90"));
        assert_eq!(two.pnl(entry, mark, Floor), Ok(Money::from_units(-20)));
        assert_eq!(
            two.checked_neg().unwrap().pnl(entry, mark, Floor),
            Ok(Money::from_units(20))
        );
        // mul_ratio: 10 * 0.25
        let quarter = Ratio::from_ppm(250_000);
        assert_eq!(
            Quantity::from_units(10).mul_ratio(quarter, Floor),
            Ok("2.5".parse().unwrap())
        );
        assert_eq!(
            Quantity::from_raw(-1).mul_ratio(quarter, Floor),
            Ok(Quantity::from_raw(-1))
        );
        assert_eq!(
            Quantity::from_raw(-1).mul_ratio(quarter, Ceil),
            Ok(Quantity::ZERO)
        );
    }

    #[test]
    fn pnl_is_one_exact_mul_div() {
        // 1 nano-unit, entry 1.000000001, mark 1.000000002: exact pnl 1e-18 USD.
        // Difference of floored notionals would be 0 - 0 = 0 with Floor and
        // 2 - 2 = 0 with Ceil; the single mul_div gives 0 / 1 (floor / ceil).
        let q = Quantity::from_raw(1);
        let entry = Price::from_raw(1_000_000_001).unwrap();
        let mark = Price::from_raw(1_000_000_002).unwrap();
        assert_eq!(q.pnl(entry, mark, Floor), Ok(Money::ZERO));
        assert_eq!(q.pnl(entry, mark, Ceil), Ok(Money::from_raw(1)));
    }

    #[test]
    fn text_and_serde() {
        let q: Quantity = "-0.000000001".parse().unwrap();
        assert_eq!(q.raw(), -1);
        assert_eq!(q.to_string(), "-0.000000001");
        assert!("0.0000000001".parse::<Quantity>().is_err());
        let json = serde_json::to_string(&Quantity::from_units(12)).unwrap();
        assert_eq!(json, "\"12\"");
        let back: Quantity = serde_json::from_str("\"-3.25\"").unwrap();
        assert_eq!(back, Quantity::from_raw(-3_250_000_000));
        assert!(serde_json::from_str::<Quantity>("3").is_err());
        assert!(serde_json::from_str::<Quantity>("\"1e3\"").is_err());
    }

    fn price_strategy() -> impl Strategy<Value = Price> {
        (1i128..(1i128 << 70)).prop_map(|raw| Price::from_raw(raw).unwrap())
    }

    fn qty_strategy() -> impl Strategy<Value = Quantity> {
        (-(1i128 << 90)..(1i128 << 90)).prop_map(Quantity::from_raw)
    }

    proptest! {
        #[test]
        fn from_raw_preserves_order(a in any::<i128>(), b in any::<i128>()) {
            prop_assert_eq!(Quantity::from_raw(a).cmp(&Quantity::from_raw(b)), a.cmp(&b));
        }

        #[test]
        fn text_round_trip(raw in any::<i128>()) {
            let q = Quantity::from_raw(raw);
            let s = q.to_string();
            prop_assert_eq!(s.parse::<Quantity>(), Ok(q));
            let json = serde_json::to_string(&q).unwrap();
            prop_assert_eq!(serde_json::from_str::<Quantity>(&json).unwrap(), q);
        }

        #[test]
        fn notional_rounding(q in qty_strategy(), p in price_strategy()) {
            let f = q.notional(p, Floor).unwrap();
            let c = q.notional(p, Ceil).unwrap();
            prop_assert!(f <= c);
            prop_assert!(c.raw() - f.raw() <= 1);
            prop_assert_eq!(f.signum() * c.signum() >= 0, true);
        }

        #[test]
        fn notional_monotone_in_price(
            q in (1i128..(1i128 << 90)).prop_map(Quantity::from_raw),
            p1 in price_strategy(),
            p2 in price_strategy(),
        ) {
            let (lo, hi) = if p1 <= p2 { (p1, p2) } else { (p2, p1) };
            for r in [Floor, Ceil] {
                prop_assert!(q.notional(lo, r).unwrap() <= q.notional(hi, r).unwrap());
            }
        }

        #[test]
        fn pnl_properties(q in qty_strategy(), entry in price_strategy(), mark in price_strategy()) {
            prop_assert_eq!(q.pnl(entry, entry, Floor), Ok(Money::ZERO));
            prop_assert_eq!(q.pnl(entry, entry, Ceil), Ok(Money::ZERO));
            let f = q.pnl(entry, mark, Floor).unwrap();
            let c = q.pnl(entry, mark, Ceil).unwrap();
            prop_assert!(f <= c && c.raw() - f.raw() <= 1);
            let expected_sign = q.signum() * (mark.raw() - entry.raw()).signum();
            // Floor can only be pushed down to -1 raw and Ceil up to +1 raw, so
            // the sign of Floor (for a loss) and Ceil (for a gain) is exact.
            match expected_sign {
                1 => prop_assert!(c.is_positive() && !f.is_negative()),
                -1 => prop_assert!(f.is_negative() && !c.is_positive()),
                _ => prop_assert!(f.is_zero() && c.is_zero()),
            }
            // pnl agrees with the exact difference of notionals up to rounding.
            let nm = q.notional(mark, Floor).unwrap().raw();
            let ne = q.notional(entry, Ceil).unwrap().raw();
            prop_assert!(f.raw() >= nm - ne - 1);
        }

        #[test]
        fn arithmetic_never_panics(a in any::<i128>(), b in any::<i128>(), p in 1i128..=i128::MAX) {
            let (x, y) = (Quantity::from_raw(a), Quantity::from_raw(b));
            let price = Price::from_raw(p).unwrap();
            let _ = x.checked_add(y);
            let _ = x.checked_sub(y);
            let _ = x.checked_neg();
            let _ = x.abs();
            let _ = x.notional(price, Floor);
            let _ = x.pnl(price, Price::from_raw(1).unwrap(), Ceil);
            let _ = x.mul_ratio(Ratio::from_raw(b), Floor);
            let _ = Quantity::checked_sum([x, y, x]);
        }
    }
}
