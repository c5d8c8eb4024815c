//! [`Price`]: strictly positive USD prices.

use std::str::FromStr;

use crate::decimal::parse_fixed;
use crate::{mul_div, NumError, Ratio, Rounding, PRICE_DECIMALS, PRICE_SCALE, RATIO_SCALE};

/// Strictly positive price in USD per whole unit.
///
/// The raw value is in nano-USD per whole unit (10^-[`PRICE_DECIMALS`]).
/// Invariant: the raw value is always `> 0`; every constructor checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(i128);

impl Price {
    /// The smallest price: one nano-USD per unit.
    pub const MIN_POSITIVE: Price = Price(1);
    /// The largest representable price (raw `i128::MAX`).
    pub const MAX: Price = Price(i128::MAX);

    /// A price from its raw value in nano-USD per unit;
    /// [`NumError::NotPositive`] if `raw <= 0`.
    pub fn from_raw(raw: i128) -> Result<Price, NumError> {
        if raw > 0 {
            Ok(Price(raw))
        } else {
            Err(NumError::NotPositive)
        }
    }

    /// The raw value in nano-USD per unit (always `> 0`).
    pub const fn raw(self) -> i128 {
        self.0
    }

    /// A price of `units` whole USD per unit; [`NumError::NotPositive`] if
    /// `units <= 0`.
    pub fn from_units(units: i64) -> Result<Price, NumError> {
        // |i64| * 10^9 < 2^94: the product cannot overflow.
        Price::from_raw(i128::from(units) * PRICE_SCALE)
    }

    /// `self * r`, rounded as asked (e.g. a price band of ±x%).
    ///
    /// [`NumError::NotPositive`] if the rounded result is not strictly
    /// positive (a non-positive ratio, or a product that rounds to zero).
    pub fn checked_mul_ratio(self, r: Ratio, rounding: Rounding) -> Result<Price, NumError> {
        Price::from_raw(mul_div(self.0, r.raw(), RATIO_SCALE, rounding)?)
    }

    /// `self + other`; [`NumError::Overflow`] if out of range.
    pub fn checked_add(self, other: Price) -> Result<Price, NumError> {
        self.0
            .checked_add(other.0)
            .map(Price)
            .ok_or(NumError::Overflow)
    }

    /// `self - other`; [`NumError::NotPositive`] unless `self > other`.
    pub fn checked_sub(self, other: Price) -> Result<Price, NumError> {
        // Both are positive, so the difference cannot overflow.
        Price::from_raw(self.0.checked_sub(other.0).ok_or(NumError::Overflow)?)
    }
}

impl FromStr for Price {
    type Err = NumError;

    /// Strict decimal with at most [`PRICE_DECIMALS`] fractional digits
    /// ([`NumError::Parse`] otherwise); [`NumError::NotPositive`] for a
    /// well-formed value `<= 0`.
    fn from_str(s: &str) -> Result<Price, NumError> {
        Price::from_raw(parse_fixed(s, PRICE_DECIMALS, "price")?)
    }
}

impl_decimal_text!(Price, PRICE_DECIMALS, "price");

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Rounding::{Ceil, Floor};

    #[test]
    fn constructors_enforce_positivity() {
        assert_eq!(Price::from_raw(0), Err(NumError::NotPositive));
        assert_eq!(Price::from_raw(-1), Err(NumError::NotPositive));
        assert_eq!(Price::from_raw(i128::MIN), Err(NumError::NotPositive));
        assert_eq!(Price::from_raw(1).unwrap().raw(), 1);
        assert_eq!(Price::from_units(64_250).unwrap().raw(), 64_250_000_000_000);
        assert_eq!(Price::from_units(0), Err(NumError::NotPositive));
        assert_eq!(Price::from_units(-3), Err(NumError::NotPositive));
        assert!(Price::from_units(i64::MAX).is_ok());
    }

    #[test]
    fn text() {
        let p: Price = "64250.5".parse().unwrap();
        assert_eq!(p.raw(), 64_250_500_000_000);
        assert_eq!(p.to_string(), "64250.5");
        assert_eq!("0.000000001".parse::<Price>().unwrap().raw(), 1);
        assert_eq!("0".parse::<Price>(), Err(NumError::NotPositive));
        assert_eq!("-0".parse::<Price>(), Err(NumError::NotPositive));
        assert_eq!("-1.5".parse::<Price>(), Err(NumError::NotPositive));
        assert!(matches!(
            "0.0000000001".parse::<Price>(),
            Err(NumError::Parse(_))
        ));
        assert!(matches!("1e5".parse::<Price>(), Err(NumError::Parse(_))));
        assert!(matches!("".parse::<Price>(), Err(NumError::Parse(_))));
    }

    #[test]
    fn serde_as_string() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Genesis {
            price: Price,
        }
        let g: Genesis = serde_json::from_str(r#"{"price": "64250.5"}"#).unwrap();
        assert_eq!(g.price, Price::from_raw(64_250_500_000_000).unwrap());
        assert_eq!(serde_json::to_string(&g).unwrap(), r#"{"price":"64250.5"}"#);
        assert!(serde_json::from_str::<Genesis>(r#"{"price": "0"}"#).is_err());
        assert!(serde_json::from_str::<Genesis>(r#"{"price": "-1"}"#).is_err());
        assert!(serde_json::from_str::<Genesis>(r#"{"price": 64250.5}"#).is_err());
    }

    #[test]
    fn mul_ratio() {
        let p = Price::from_units(100).unwrap();
        let r = Ratio::from_ppm(1_050_000);
        assert_eq!(
            p.checked_mul_ratio(r, Floor),
            Ok(Price::from_units(105).unwrap())
        );
        assert_eq!(
            p.checked_mul_ratio(Ratio::ZERO, Floor),
            Err(NumError::NotPositive)
        );
        assert_eq!(
            p.checked_mul_ratio(Ratio::from_ppm(-1), Ceil),
            Err(NumError::NotPositive)
        );
        let tiny = Price::MIN_POSITIVE;
        let half = Ratio::from_ppm(500_000);
        assert_eq!(
            tiny.checked_mul_ratio(half, Floor),
            Err(NumError::NotPositive)
        );
        assert_eq!(tiny.checked_mul_ratio(half, Ceil), Ok(tiny));
        assert_eq!(
            Price::MAX.checked_mul_ratio(Ratio::from_ppm(2_000_000), Floor),
            Err(NumError::Overflow)
        );
    }

    #[test]
    fn add_sub() {
        let (a, b) = (Price::from_units(3).unwrap(), Price::from_units(2).unwrap());
        assert_eq!(a.checked_sub(b), Ok(Price::from_units(1).unwrap()));
        assert_eq!(b.checked_sub(a), Err(NumError::NotPositive));
        assert_eq!(a.checked_sub(a), Err(NumError::NotPositive));
        assert_eq!(a.checked_add(b), Ok(Price::from_units(5).unwrap()));
        assert_eq!(Price::MAX.checked_add(b), Err(NumError::Overflow));
    }

    proptest! {
        #[test]
        fn from_raw_preserves_order(a in 1i128..=i128::MAX, b in 1i128..=i128::MAX) {
            let (pa, pb) = (Price::from_raw(a).unwrap(), Price::from_raw(b).unwrap());
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
        }

        #[test]
        fn text_round_trip(raw in 1i128..=i128::MAX) {
            let p = Price::from_raw(raw).unwrap();
            prop_assert_eq!(p.to_string().parse::<Price>(), Ok(p));
            let json = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<Price>(&json).unwrap(), p);
        }

        #[test]
        fn mul_ratio_never_panics_and_stays_positive(raw in any::<i128>(), r in any::<i128>()) {
            if let Ok(p) = Price::from_raw(raw) {
                for rounding in [Floor, Ceil] {
                    if let Ok(q) = p.checked_mul_ratio(Ratio::from_raw(r), rounding) {
                        prop_assert!(q.raw() > 0);
                    }
                }
            } else {
                prop_assert!(raw <= 0);
            }
        }
    }
}
