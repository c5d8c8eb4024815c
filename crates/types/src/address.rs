//! Account addresses: the first 20 bytes of sha256 of an ed25519 public key.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Bytes in an address.
pub const ADDRESS_BYTES: usize = 20;

/// An account (or any signer) address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address([u8; ADDRESS_BYTES]);

impl Address {
    /// The address of an ed25519 public key.
    pub fn of_public_key(public_key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(public_key);
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

    #[test]
    fn hex_round_trips() {
        let address = Address::of_public_key(&[7u8; 32]);
        assert_eq!(address.to_hex().parse::<Address>(), Ok(address));
        assert!("zz".parse::<Address>().is_err());
        assert!("00".parse::<Address>().is_err());
    }
}
