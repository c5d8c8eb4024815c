//! Slow, obviously-correct reference arithmetic for the tests: unsigned big
//! integers as little-endian `u32` limbs with schoolbook multiplication and
//! bit-by-bit long division. Deliberately shares no code with `wide.rs`.

use std::cmp::Ordering;

/// Unsigned big integer, little-endian base-2^32 limbs, no trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Big(Vec<u32>);

impl Big {
    fn normalized(mut limbs: Vec<u32>) -> Big {
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        Big(limbs)
    }

    pub(crate) fn from_u128(x: u128) -> Big {
        let limbs = (0..4)
            .map(|i| u32::try_from((x >> (32 * i)) & 0xFFFF_FFFF).unwrap())
            .collect();
        Big::normalized(limbs)
    }

    pub(crate) fn from_hi_lo(hi: u128, lo: u128) -> Big {
        let mut limbs = Big::from_u128(lo).0;
        limbs.resize(4, 0);
        limbs.extend(Big::from_u128(hi).0);
        Big::normalized(limbs)
    }

    pub(crate) fn to_u128(&self) -> Option<u128> {
        if self.0.len() > 4 {
            return None;
        }
        Some(
            self.0
                .iter()
                .enumerate()
                .fold(0u128, |acc, (i, &l)| acc | (u128::from(l) << (32 * i))),
        )
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn mul(&self, other: &Big) -> Big {
        let mut out = vec![0u64; self.0.len() + other.0.len() + 1];
        for (i, &x) in self.0.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &y) in other.0.iter().enumerate() {
                let t = out[i + j] + u64::from(x) * u64::from(y) + carry;
                out[i + j] = t & 0xFFFF_FFFF;
                carry = t >> 32;
            }
            let mut k = i + other.0.len();
            while carry != 0 {
                let t = out[k] + carry;
                out[k] = t & 0xFFFF_FFFF;
                carry = t >> 32;
                k += 1;
            }
        }
        Big::normalized(out.into_iter().map(|l| u32::try_from(l).unwrap()).collect())
    }

    fn bits(&self) -> usize {
        match self.0.last() {
            None => 0,
            Some(&top) => 32 * self.0.len() - top.leading_zeros() as usize,
        }
    }

    fn bit(&self, i: usize) -> u32 {
        self.0.get(i / 32).map_or(0, |l| (l >> (i % 32)) & 1)
    }

    fn shl1_or(&self, bit: u32) -> Big {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut carry = bit;
        for &l in &self.0 {
            out.push((l << 1) | carry);
            carry = l >> 31;
        }
        out.push(carry);
        Big::normalized(out)
    }

    /// `self - other`, requires `self >= other`.
    fn sub(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for (i, &l) in self.0.iter().enumerate() {
            let mut t = i64::from(l) - i64::from(*other.0.get(i).unwrap_or(&0)) - borrow;
            borrow = 0;
            if t < 0 {
                t += 1 << 32;
                borrow = 1;
            }
            out.push(u32::try_from(t).unwrap());
        }
        assert_eq!(borrow, 0);
        Big::normalized(out)
    }

    /// Truncated quotient and remainder; `d` must be non-zero.
    pub(crate) fn div_rem(&self, d: &Big) -> (Big, Big) {
        assert!(!d.is_zero());
        let n = self.bits();
        let mut q_bits = vec![0u32; n];
        let mut r = Big(Vec::new());
        for i in (0..n).rev() {
            r = r.shl1_or(self.bit(i));
            if r.cmp(d) != Ordering::Less {
                r = r.sub(d);
                q_bits[i] = 1;
            }
        }
        let mut q = vec![0u32; n / 32 + 1];
        for (i, b) in q_bits.into_iter().enumerate() {
            q[i / 32] |= b << (i % 32);
        }
        (Big::normalized(q), r)
    }
}

impl PartialOrd for Big {
    fn partial_cmp(&self, other: &Big) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Big {
    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}
