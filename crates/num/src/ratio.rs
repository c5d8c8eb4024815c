//! [`Ratio`]: signed ratios in parts per million.

use crate::{mul_div, NumError, Rounding, RATIO_DECIMALS, RATIO_SCALE};

/// Signed ratio in parts per million (haircut, margin fraction, leverage;
/// may exceed 1.0).
///
/// The raw value is in parts per million (10^-[`RATIO_DECIMALS`]):
/// `1_000_000` is 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ratio(i128);

impl_signed_fixed!(Ratio, RATIO_DECIMALS, RATIO_SCALE, "ratio");

impl Ratio {
    /// 1.0 (`1_000_000` ppm).
    pub const ONE: Ratio = Ratio(RATIO_SCALE);

    /// A ratio of `ppm` parts per million.
    pub const fn from_ppm(ppm: i64) -> Ratio {
        // `as` widens i64 -> i128 losslessly.
        Ratio(ppm as i128)
    }

    /// The value in parts per million (same as [`Ratio::raw`]).
    pub const fn ppm(self) -> i128 {
        self.0
    }

    /// `self * other`, rounded as asked.
    pub fn checked_mul(self, other: Ratio, rounding: Rounding) -> Result<Ratio, NumError> {
        mul_div(self.0, other.0, RATIO_SCALE, rounding).map(Ratio)
    }

    /// `1 - self` (e.g. the kept fraction after a haircut);
    /// [`NumError::Overflow`] if out of range.
    pub fn one_minus(self) -> Result<Ratio, NumError> {
        Ratio::ONE.checked_sub(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Rounding::{Ceil, Floor};

    #[test]
    fn constants_and_constructors() {
        assert_eq!(Ratio::ONE.ppm(), 1_000_000);
        assert_eq!(Ratio::from_units(1), Ratio::ONE);
        assert_eq!(Ratio::from_units(-20).raw(), -20_000_000);
        assert_eq!(Ratio::from_ppm(250_000).to_string(), "0.25");
        assert_eq!(Ratio::ONE.to_string(), "1");
        assert_eq!("1.5".parse::<Ratio>(), Ok(Ratio::from_ppm(1_500_000)));
        assert!("0.0000001".parse::<Ratio>().is_err());
        assert_eq!(Ratio::from_ppm(i64::MIN).raw(), i128::from(i64::MIN));
    }

    #[test]
    fn mul_and_one_minus() {
        let half = Ratio::from_ppm(500_000);
        assert_eq!(half.checked_mul(half, Floor), Ok(Ratio::from_ppm(250_000)));
        let third = Ratio::from_ppm(333_333);
        assert_eq!(
            third.checked_mul(third, Floor),
            Ok(Ratio::from_ppm(111_110))
        );
        assert_eq!(third.checked_mul(third, Ceil), Ok(Ratio::from_ppm(111_111)));
        assert_eq!(
            third.checked_neg().unwrap().checked_mul(third, Floor),
            Ok(Ratio::from_ppm(-111_111))
        );
        assert_eq!(
            Ratio::from_ppm(200_000).one_minus(),
            Ok(Ratio::from_ppm(800_000))
        );
        assert_eq!(Ratio::from_units(3).one_minus(), Ok(Ratio::from_units(-2)));
        assert_eq!(Ratio::MIN.one_minus(), Err(NumError::Overflow));
        assert_eq!(
            Ratio::MAX.checked_mul(Ratio::from_units(2), Floor),
            Err(NumError::Overflow)
        );
        assert_eq!(
            Ratio::MAX.checked_add(Ratio::from_raw(1)),
            Err(NumError::Overflow)
        );
        assert_eq!(Ratio::MIN.abs(), Err(NumError::Overflow));
    }

    #[test]
    fn serde() {
        let r: Ratio = serde_json::from_str("\"0.05\"").unwrap();
        assert_eq!(r, Ratio::from_ppm(50_000));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"0.05\"");
        assert!(serde_json::from_str::<Ratio>("0.05").is_err());
    }

    proptest! {
        #[test]
        fn from_raw_preserves_order(a in any::<i128>(), b in any::<i128>()) {
            prop_assert_eq!(Ratio::from_raw(a).cmp(&Ratio::from_raw(b)), a.cmp(&b));
        }

        #[test]
        fn text_round_trip(raw in any::<i128>()) {
            let r = Ratio::from_raw(raw);
            prop_assert_eq!(r.to_string().parse::<Ratio>(), Ok(r));
            let json = serde_json::to_string(&r).unwrap();
            prop_assert_eq!(serde_json::from_str::<Ratio>(&json).unwrap(), r);
        }

        #[test]
        fn one_minus_is_involutive(raw in -(1i128 << 120)..(1i128 << 120)) {
            let r = Ratio::from_raw(raw);
            prop_assert_eq!(r.one_minus().unwrap().one_minus(), Ok(r));
        }

        #[test]
        fn mul_never_panics(a in any::<i128>(), b in any::<i128>()) {
            let (x, y) = (Ratio::from_raw(a), Ratio::from_raw(b));
            if let (Ok(f), Ok(c)) = (x.checked_mul(y, Floor), x.checked_mul(y, Ceil)) {
                prop_assert!(f <= c && c.raw() - f.raw() <= 1);
            }
            let _ = (x.one_minus(), x.checked_neg(), x.abs(), Ratio::checked_sum([x, y]));
        }
    }
}
