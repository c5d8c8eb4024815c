//! 256-bit helpers for [`crate::mul_div`]: an exact `u128 x u128` product and
//! the division of that product by a `u128`.
//!
//! Only shifts, masks, comparisons and non-overflowing additions are used;
//! no casts, so nothing here can truncate or panic.

use crate::NumError;

/// Mask of the low 64 bits of a `u128`.
const LOW64: u128 = u64::MAX as u128;

/// Exact product of two `u128`s as a 256-bit `(hi, lo)` pair, so that
/// `a * b == hi * 2^128 + lo`.
pub(crate) fn mul_u128(a: u128, b: u128) -> (u128, u128) {
    let (a1, a0) = (a >> 64, a & LOW64);
    let (b1, b0) = (b >> 64, b & LOW64);
    // Each partial product is below 2^128.
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // Three terms below 2^64 each: fits easily.
    let mid = (p00 >> 64) + (p01 & LOW64) + (p10 & LOW64);
    let lo = (p00 & LOW64) | ((mid & LOW64) << 64);
    // The full product is below 2^256, so the high word cannot overflow.
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// Divides the 256-bit value `hi * 2^128 + lo` by `d`, returning the
/// truncated quotient and the remainder.
///
/// Errors with [`NumError::DivisionByZero`] if `d == 0` and with
/// [`NumError::Overflow`] if the quotient does not fit a `u128`.
pub(crate) fn div_rem_u256(hi: u128, lo: u128, d: u128) -> Result<(u128, u128), NumError> {
    if d == 0 {
        return Err(NumError::DivisionByZero);
    }
    if hi == 0 {
        return Ok((lo / d, lo % d));
    }
    if hi >= d {
        // The quotient would be at least 2^128.
        return Err(NumError::Overflow);
    }
    // Restoring binary long division over the 128 bits of `lo`, with the
    // running remainder `r < d` (initially `hi < d`).
    let mut r = hi;
    let mut q: u128 = 0;
    for i in (0..128u32).rev() {
        let carry = r >> 127;
        r = (r << 1) | ((lo >> i) & 1);
        // The true value is `carry * 2^128 + r`, which is below `2 * d`.
        // If it is at least `d`, subtract once; the wrapping subtraction is
        // exact because the true difference is below `d < 2^128`.
        if carry == 1 || r >= d {
            r = r.wrapping_sub(d);
            q |= 1u128 << i;
        }
    }
    Ok((q, r))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::Big;
    use proptest::prelude::*;

    /// Values of every magnitude, not only huge ones.
    fn any_u128() -> impl Strategy<Value = u128> {
        (any::<u128>(), 0u32..128).prop_map(|(x, s)| x >> s)
    }

    #[test]
    fn mul_edges() {
        assert_eq!(mul_u128(0, u128::MAX), (0, 0));
        assert_eq!(mul_u128(1, u128::MAX), (0, u128::MAX));
        assert_eq!(mul_u128(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
        assert_eq!(mul_u128(1 << 64, 1 << 64), (1, 0));
        assert_eq!(mul_u128(1 << 127, 2), (1, 0));
    }

    #[test]
    fn div_edges() {
        assert_eq!(div_rem_u256(0, 7, 0), Err(NumError::DivisionByZero));
        assert_eq!(div_rem_u256(1, 0, 1), Err(NumError::Overflow));
        assert_eq!(div_rem_u256(1, 0, 2), Ok((1 << 127, 0)));
        assert_eq!(
            div_rem_u256(u128::MAX - 1, u128::MAX, u128::MAX),
            Ok((u128::MAX, u128::MAX - 1))
        );
        // (2^128 - 1)^2 / (2^128 - 1) = 2^128 - 1 exactly.
        let (hi, lo) = mul_u128(u128::MAX, u128::MAX);
        assert_eq!(div_rem_u256(hi, lo, u128::MAX), Ok((u128::MAX, 0)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn mul_matches_reference(a in any_u128(), b in any_u128()) {
            let (hi, lo) = mul_u128(a, b);
            prop_assert_eq!(Big::from_hi_lo(hi, lo), Big::from_u128(a).mul(&Big::from_u128(b)));
        }

        #[test]
        fn div_matches_reference(hi in any_u128(), lo in any::<u128>(), d in any_u128()) {
            let n = Big::from_hi_lo(hi, lo);
            match div_rem_u256(hi, lo, d) {
                Ok((q, r)) => {
                    let (rq, rr) = n.div_rem(&Big::from_u128(d));
                    prop_assert_eq!(Big::from_u128(q), rq);
                    prop_assert_eq!(Big::from_u128(r), rr);
                }
                Err(NumError::DivisionByZero) => prop_assert_eq!(d, 0),
                Err(NumError::Overflow) => {
                    prop_assert!(d != 0);
                    let (rq, _) = n.div_rem(&Big::from_u128(d));
                    prop_assert!(rq.to_u128().is_none());
                }
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }
    }
}
