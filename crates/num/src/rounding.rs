//! Rounding direction and the exact multiply-divide every cross-type
//! operation is built on.

use crate::wide::{div_rem_u256, mul_u128};
use crate::NumError;

/// Direction in which an inexact result is rounded. Named at every call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Round toward negative infinity.
    Floor,
    /// Round toward positive infinity.
    Ceil,
}

/// Computes `a * b / d` with an exact 256-bit intermediate product, rounding
/// the (possibly inexact) quotient in the given direction.
///
/// Works for every `i128` input: the product is never truncated.
///
/// # Errors
///
/// * [`NumError::DivisionByZero`] if `d == 0`;
/// * [`NumError::Overflow`] if the rounded result does not fit an `i128`.
pub fn mul_div(a: i128, b: i128, d: i128, rounding: Rounding) -> Result<i128, NumError> {
    if d == 0 {
        return Err(NumError::DivisionByZero);
    }
    // Sign of the exact quotient (irrelevant when the product is zero: the
    // magnitude is then zero and so is the result).
    let negative = (a < 0) ^ (b < 0) ^ (d < 0);
    let (hi, lo) = mul_u128(a.unsigned_abs(), b.unsigned_abs());
    let (q, r) = div_rem_u256(hi, lo, d.unsigned_abs())?;
    // `q` is the magnitude truncated toward zero. Away from zero is toward
    // -inf for a negative result and toward +inf for a positive one.
    let away_from_zero = r != 0
        && match rounding {
            Rounding::Floor => negative,
            Rounding::Ceil => !negative,
        };
    let magnitude = if away_from_zero {
        q.checked_add(1).ok_or(NumError::Overflow)?
    } else {
        q
    };
    if negative {
        0i128
            .checked_sub_unsigned(magnitude)
            .ok_or(NumError::Overflow)
    } else {
        i128::try_from(magnitude).map_err(|_| NumError::Overflow)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::Big;
    use proptest::prelude::*;
    use Rounding::{Ceil, Floor};

    /// Signed values of every magnitude (log-uniform-ish), including 0, MIN, MAX.
    fn any_i128() -> impl Strategy<Value = i128> {
        prop_oneof![
            8 => (any::<i128>(), 0u32..128).prop_map(|(x, s)| x >> s),
            1 => Just(0i128),
            1 => Just(i128::MIN),
            1 => Just(i128::MAX),
            1 => -3i128..=3,
        ]
    }

    /// Reference: floor and ceil of `a * b / d` computed with the slow big
    /// integers; `None` if the quotient is beyond ±2^129 (certainly overflow).
    fn reference(a: i128, b: i128, d: i128) -> (Option<i128>, Option<i128>) {
        let negative = (a < 0) ^ (b < 0) ^ (d < 0);
        let n = Big::from_u128(a.unsigned_abs()).mul(&Big::from_u128(b.unsigned_abs()));
        let (q, r) = n.div_rem(&Big::from_u128(d.unsigned_abs()));
        let Some(q) = q.to_u128() else {
            return (None, None);
        };
        let exact = r.is_zero();
        let to_signed = |mag: Option<u128>| -> Option<i128> {
            let mag = mag?;
            if negative {
                0i128.checked_sub_unsigned(mag)
            } else {
                i128::try_from(mag).ok()
            }
        };
        let bumped = if exact { Some(q) } else { q.checked_add(1) };
        if negative {
            (to_signed(bumped), to_signed(Some(q)))
        } else {
            (to_signed(Some(q)), to_signed(bumped))
        }
    }

    #[test]
    fn small_examples() {
        assert_eq!(mul_div(7, 1, 2, Floor), Ok(3));
        assert_eq!(mul_div(7, 1, 2, Ceil), Ok(4));
        assert_eq!(mul_div(-7, 1, 2, Floor), Ok(-4));
        assert_eq!(mul_div(-7, 1, 2, Ceil), Ok(-3));
        assert_eq!(mul_div(7, -1, 2, Floor), Ok(-4));
        assert_eq!(mul_div(7, 1, -2, Floor), Ok(-4));
        assert_eq!(mul_div(-7, -1, 2, Floor), Ok(3));
        assert_eq!(mul_div(-7, 1, -2, Ceil), Ok(4));
        assert_eq!(mul_div(-7, -1, -2, Ceil), Ok(-3));
        assert_eq!(mul_div(6, 1, 3, Floor), Ok(2));
        assert_eq!(mul_div(6, 1, 3, Ceil), Ok(2));
        assert_eq!(mul_div(0, -5, -3, Ceil), Ok(0));
        assert_eq!(mul_div(0, 5, 3, Floor), Ok(0));
    }

    #[test]
    fn errors() {
        assert_eq!(mul_div(1, 1, 0, Floor), Err(NumError::DivisionByZero));
        assert_eq!(mul_div(0, 0, 0, Ceil), Err(NumError::DivisionByZero));
        assert_eq!(mul_div(i128::MAX, 2, 1, Floor), Err(NumError::Overflow));
        assert_eq!(mul_div(i128::MIN, -1, 1, Floor), Err(NumError::Overflow));
        assert_eq!(mul_div(i128::MIN, 1, -1, Ceil), Err(NumError::Overflow));
        assert_eq!(
            mul_div(i128::MIN, i128::MIN, 1, Ceil),
            Err(NumError::Overflow)
        );
        assert_eq!(
            mul_div(i128::MAX, i128::MAX, 1, Floor),
            Err(NumError::Overflow)
        );
        assert_eq!(mul_div(i128::MAX, 2, 2, Ceil), Ok(i128::MAX));
        assert_eq!(
            mul_div(i128::MAX, 3, 3, Floor),
            Ok(i128::MAX),
            "exact result at the boundary"
        );
        assert_eq!(mul_div(i128::MIN, 1, 1, Floor), Ok(i128::MIN));
        assert_eq!(mul_div(i128::MIN, -1, -1, Floor), Ok(i128::MIN));
        assert_eq!(mul_div(i128::MIN, 2, 2, Ceil), Ok(i128::MIN));
    }

    #[test]
    fn rounding_crosses_the_boundary() {
        // (2^64 - 1) * (2^64 + 1) = 2^128 - 1 = 2 * i128::MAX + 1, so the
        // exact quotient by 2 is i128::MAX + 0.5.
        let a: i128 = (1 << 64) - 1;
        let b: i128 = (1 << 64) + 1;
        assert_eq!(mul_div(a, b, 2, Floor), Ok(i128::MAX));
        assert_eq!(mul_div(a, b, 2, Ceil), Err(NumError::Overflow));
        assert_eq!(mul_div(-a, b, 2, Ceil), Ok(-i128::MAX));
        assert_eq!(mul_div(-a, b, 2, Floor), Ok(i128::MIN));
        assert_eq!(mul_div(a, b, -2, Floor), Ok(i128::MIN));
    }

    #[test]
    fn wide_path_with_realistic_scales() {
        // |a|, |b| < 2^100 and d >= 1e6: the product is far beyond i128.
        let a: i128 = (1 << 100) - 1;
        let b: i128 = (1 << 99) + 12_345;
        let d: i128 = 1 << 90;
        let (lo, hi) = reference(a, b, d);
        assert_eq!(mul_div(a, b, d, Floor).ok(), lo);
        assert_eq!(mul_div(a, b, d, Ceil).ok(), hi);
        assert!(lo.is_some());
        assert_eq!(mul_div(a, -b, d, Floor).ok(), hi.map(|x| -x));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn never_panics_and_matches_reference(a in any_i128(), b in any_i128(), d in any_i128()) {
            let floor = mul_div(a, b, d, Floor);
            let ceil = mul_div(a, b, d, Ceil);
            if d == 0 {
                prop_assert_eq!(floor, Err(NumError::DivisionByZero));
                prop_assert_eq!(ceil, Err(NumError::DivisionByZero));
            } else {
                let (rf, rc) = reference(a, b, d);
                prop_assert_eq!(floor.clone().ok(), rf);
                prop_assert_eq!(ceil.clone().ok(), rc);
                if let Err(e) = &floor { prop_assert_eq!(e, &NumError::Overflow); }
                if let Err(e) = &ceil { prop_assert_eq!(e, &NumError::Overflow); }
            }
        }

        #[test]
        fn floor_le_ceil_within_one(a in any_i128(), b in any_i128(), d in any_i128()) {
            if let (Ok(f), Ok(c)) = (mul_div(a, b, d, Floor), mul_div(a, b, d, Ceil)) {
                prop_assert!(f <= c);
                let exact = a.checked_mul(b).map(|p| p % d == 0);
                let diff = c - f;
                prop_assert!(diff == 0 || diff == 1);
                if let Some(exact) = exact {
                    prop_assert_eq!(diff == 0, exact);
                }
            }
        }

        #[test]
        fn agrees_with_i128_when_product_fits(
            a in -(1i128 << 63)..(1i128 << 63),
            b in -(1i128 << 63)..(1i128 << 63),
            d in (any::<i128>(), 63u32..128).prop_map(|(x, s)| x >> s),
        ) {
            prop_assume!(d != 0);
            let p = a * b;
            // Floor and ceil via Euclidean division (d may be negative).
            let (n, m) = if d < 0 { (-p, -d) } else { (p, d) };
            let floor = n.div_euclid(m);
            let ceil = if n.rem_euclid(m) == 0 { floor } else { floor + 1 };
            prop_assert_eq!(mul_div(a, b, d, Floor), Ok(floor));
            prop_assert_eq!(mul_div(a, b, d, Ceil), Ok(ceil));
            // floor <= exact <= ceil, checked without division
            // (|n| < 2^126 and m <= 2^64, so nothing overflows).
            prop_assert!(floor * m <= n && n <= ceil * m);
        }

        #[test]
        fn wide_path_up_to_2_pow_100(
            a in -(1i128 << 100)..(1i128 << 100),
            b in -(1i128 << 100)..(1i128 << 100),
            d in 1_000_000i128..(1i128 << 100),
            neg_d in any::<bool>(),
        ) {
            let d = if neg_d { -d } else { d };
            let (rf, rc) = reference(a, b, d);
            prop_assert_eq!(mul_div(a, b, d, Floor).ok(), rf);
            prop_assert_eq!(mul_div(a, b, d, Ceil).ok(), rc);
        }

        #[test]
        fn wide_path_scaled_division_always_fits(
            a in -(1i128 << 100)..(1i128 << 100),
            b in -(1i128 << 100)..(1i128 << 100),
        ) {
            // With d = 2^80 >= 1e6 scale the result always fits: must be Ok.
            let d = 1i128 << 80;
            let f = mul_div(a, b, d, Floor);
            let c = mul_div(a, b, d, Ceil);
            prop_assert!(f.is_ok() && c.is_ok());
            prop_assert_eq!((f.clone().ok(), c.clone().ok()), reference(a, b, d));
        }
    }
}
