//! Account addresses: the first 20 bytes of sha256 of an ed25519 public key.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Bytes in an address.
pub const ADDRESS_BYTES: usize = 20;

/// An account (or any signer) address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Address([u8; ADDRESS_BYTES]);

impl Address {
    /// The bytes as big-endian words, whose order is the bytes' order.
    fn words(&self) -> (u64, u64, u32) {
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7, c0, c1, c2, c3] =
            self.0;
        (
            u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
            u32::from_be_bytes([c0, c1, c2, c3]),
        )
    }
}

/// Byte order, as the derived order of the array, but in three word
/// compares rather than a `memcmp` call: accounts are the engine's most
/// searched map.
impl Ord for Address {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Address {
    /// The address of an ed25519 public key.
    pub fn of_public_key(public_key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(public_key);
        let mut bytes = [0u8; ADDRESS_BYTES];
        bytes.copy_from_slice(&digest[..ADDRESS_BYTES]);
        Self(bytes)
    }

    /// The isolated sub-account of `owner` for one market:
    /// `sha256("clearnode/isolated/v1\n" || owner || market)[..20]`.
    pub fn isolated(owner: &Address, market: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"clearnode/isolated/v1\n");
        hasher.update(owner.0);
        hasher.update(market.as_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; ADDRESS_BYTES];
        bytes.copy_from_slice(&digest[..ADDRESS_BYTES]);
        Self(bytes)
    }

    /// Wraps 20 raw bytes (reserved addresses are constants).
    pub const fn from_bytes(bytes: [u8; ADDRESS_BYTES]) -> Self {
        Self(bytes)
    }

    /// Wraps raw bytes; `None` unless exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ADDRESS_BYTES]>::try_from(bytes).ok().map(Self)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; ADDRESS_BYTES] {
        &self.0
    }

    /// Lowercase hex, as used in state keys and on the command line.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_hex())
    }
}

/// Error parsing an address from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an address is 40 hex characters, got {0:?}")]
pub struct AddressParseError(pub String);

impl FromStr for Address {
    type Err = AddressParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(text).map_err(|_| AddressParseError(text.to_string()))?;
        Self::from_slice(&bytes).ok_or_else(|| AddressParseError(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Maps keyed by addresses iterate in byte order, as they did with
        /// the derived order: the committed state depends on it.
        #[test]
        fn addresses_order_as_their_bytes(
            a in proptest::array::uniform20(proptest::num::u8::ANY),
            b in proptest::array::uniform20(proptest::num::u8::ANY),
            shared in 0..=ADDRESS_BYTES,
        ) {
            // Long shared prefixes, so later words get compared too.
            let mut b = b;
            b[..shared].copy_from_slice(&a[..shared]);
            let (x, y) = (Address::from_bytes(a), Address::from_bytes(b));
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            proptest::prop_assert_eq!(x == y, a == b);
        }
    }

    #[test]
    fn hex_round_trips() {
        let address = Address::of_public_key(&[7u8; 32]);
        assert_eq!(address.to_hex().parse::<Address>(), Ok(address));
        assert!("zz".parse::<Address>().is_err());
        assert!("00".parse::<Address>().is_err());
    }

    #[test]
    fn isolated_sub_accounts_are_per_owner_and_market_and_pinned() {
        let owner = Address::of_public_key(&[7u8; 32]);
        let other = Address::of_public_key(&[8u8; 32]);
        let btc = Address::isolated(&owner, "BTC-PERP");
        assert_ne!(btc, Address::isolated(&owner, "ETH-PERP"));
        assert_ne!(btc, Address::isolated(&other, "BTC-PERP"));
        assert_ne!(btc, owner);
        // Venues outside Rust derive it too: sha256("clearnode/isolated/v1\n" || owner || market)[..20].
        let mut preimage = b"clearnode/isolated/v1\n".to_vec();
        preimage.extend_from_slice(owner.as_bytes());
        preimage.extend_from_slice(b"BTC-PERP");
        assert_eq!(
            btc.as_bytes()[..],
            Sha256::digest(&preimage)[..ADDRESS_BYTES]
        );
    }
}
