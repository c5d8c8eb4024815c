//! [`Money`]: signed USD values.

use crate::{mul_div, NumError, Ratio, Rounding, MONEY_DECIMALS, MONEY_SCALE, RATIO_SCALE};

/// Signed USD value (equity, PnL, notional, margin requirement).
///
/// The raw value is in micro-USD (10^-[`MONEY_DECIMALS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i128);

impl_signed_fixed!(Money, MONEY_DECIMALS, MONEY_SCALE, "money amount");

impl Money {
    /// `self * r`, rounded as asked (e.g. a margin requirement from a
    /// notional and a margin fraction).
    pub fn mul_ratio(self, r: Ratio, rounding: Rounding) -> Result<Money, NumError> {
        mul_div(self.0, r.raw(), RATIO_SCALE, rounding).map(Money)
    }

    /// `self / denominator` as a [`Ratio`], rounded as asked (e.g. leverage =
    /// notional / equity). [`NumError::DivisionByZero`] if `denominator` is
    /// zero.
    pub fn ratio_to(self, denominator: Money, rounding: Rounding) -> Result<Ratio, NumError> {
        mul_div(self.0, RATIO_SCALE, denominator.0, rounding).map(Ratio::from_raw)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Rounding::{Ceil, Floor};

    fn m(s: &str) -> Money {
        s.parse().unwrap()
    }

    #[test]
    fn display_examples() {
        assert_eq!(Money::from_raw(1_500_000).to_string(), "1.5");
        assert_eq!(Money::from_raw(-1).to_string(), "-0.000001");
        assert_eq!(Money::from_raw(0).to_string(), "0");
        assert_eq!(Money::from_units(-42).to_string(), "-42");
        assert_eq!(Money::from_units(7).raw(), 7_000_000);
    }

    #[test]
    fn parse_examples() {
        assert_eq!(m("12"), Money::from_units(12));
        assert_eq!(m("-12.5").raw(), -12_500_000);
        assert_eq!(m("0.000001").raw(), 1);
        for bad in ["", "+", "1e5", " 1", "1 ", "0.0000001", "1.", ".1", "--1"] {
            assert!(
                matches!(bad.parse::<Money>(), Err(NumError::Parse(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mul_ratio_and_ratio_to() {
        let notional = m("10000");
        let im = Ratio::from_ppm(50_000); // 5%
        assert_eq!(notional.mul_ratio(im, Ceil), Ok(m("500")));
        assert_eq!(m("-0.000001").mul_ratio(im, Floor), Ok(m("-0.000001")));
        assert_eq!(m("-0.000001").mul_ratio(im, Ceil), Ok(Money::ZERO));
        // leverage = notional / equity
        assert_eq!(
            notional.ratio_to(m("2000"), Floor),
            Ok(Ratio::from_units(5))
        );
        assert_eq!(m("1").ratio_to(m("3"), Floor), Ok(Ratio::from_ppm(333_333)));
        assert_eq!(m("1").ratio_to(m("3"), Ceil), Ok(Ratio::from_ppm(333_334)));
        assert_eq!(
            m("1").ratio_to(m("-3"), Floor),
            Ok(Ratio::from_ppm(-333_334))
        );
        assert_eq!(
            notional.ratio_to(Money::ZERO, Floor),
            Err(NumError::DivisionByZero)
        );
        assert_eq!(
            Money::MAX.ratio_to(Money::from_raw(1), Floor),
            Err(NumError::Overflow)
        );
        assert_eq!(
            Money::MIN.mul_ratio(Ratio::from_ppm(-1_000_000), Floor),
            Err(NumError::Overflow)
        );
    }

    #[test]
    fn overflow_at_the_edges() {
        let one = Money::from_raw(1);
        assert_eq!(Money::MAX.checked_add(one), Err(NumError::Overflow));
        assert_eq!(Money::MIN.checked_sub(one), Err(NumError::Overflow));
        assert_eq!(Money::MIN.checked_neg(), Err(NumError::Overflow));
        assert_eq!(Money::MIN.abs(), Err(NumError::Overflow));
        assert_eq!(Money::MAX.abs(), Ok(Money::MAX));
        assert_eq!(
            Money::checked_sum([Money::MAX, Money::MAX]),
            Err(NumError::Overflow)
        );
        assert_eq!(
            Money::checked_sum(vec![m("1.5"), m("-0.25"), m("2")]),
            Ok(m("3.25"))
        );
    }

    proptest! {
        #[test]
        fn from_raw_preserves_order(a in any::<i128>(), b in any::<i128>()) {
            prop_assert_eq!(Money::from_raw(a).cmp(&Money::from_raw(b)), a.cmp(&b));
        }

        #[test]
        fn text_round_trip(raw in any::<i128>()) {
            let x = Money::from_raw(raw);
            prop_assert_eq!(x.to_string().parse::<Money>(), Ok(x));
            let json = serde_json::to_string(&x).unwrap();
            prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), x);
        }

        #[test]
        fn rounding_brackets(a in -(1i128 << 100)..(1i128 << 100), r in -(1i128 << 24)..(1i128 << 24)) {
            let x = Money::from_raw(a);
            let ratio = Ratio::from_raw(r);
            let f = x.mul_ratio(ratio, Floor).unwrap();
            let c = x.mul_ratio(ratio, Ceil).unwrap();
            prop_assert!(f <= c && c.raw() - f.raw() <= 1);
            if r != 0 {
                let den = Money::from_raw(r);
                let f = x.ratio_to(den, Floor).unwrap();
                let c = x.ratio_to(den, Ceil).unwrap();
                prop_assert!(f <= c && c.raw() - f.raw() <= 1);
            }
        }

        #[test]
        fn never_panics(a in any::<i128>(), b in any::<i128>()) {
            let (x, y) = (Money::from_raw(a), Money::from_raw(b));
            for rounding in [Floor, Ceil] {
                let _ = x.mul_ratio(Ratio::from_raw(b), rounding);
                let r = x.ratio_to(y, rounding);
                if b == 0 {
                    prop_assert_eq!(r, Err(NumError::DivisionByZero));
                }
            }
            let _ = (x.checked_add(y), x.checked_sub(y), x.checked_neg(), x.abs());
            let _ = Money::checked_sum([x, y]);
        }
    }
}
