//! Validated identifiers of markets, collateral assets and venues.

use std::fmt;

use crate::limits::ID_BYTES_MAX;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an id is 1 to {ID_BYTES_MAX} characters of A-Z a-z 0-9 - _ . ; got {0:?}")]
pub struct IdError(pub String);

fn validate(text: &str) -> Result<(), IdError> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if text.is_empty() || text.len() > ID_BYTES_MAX || !text.chars().all(valid_char) {
        return Err(IdError(text.chars().take(ID_BYTES_MAX + 8).collect()));
    }
    Ok(())
}

/// An id's bytes inline: ids are short ASCII, so keeping them in place
/// makes a clone a copy and a comparison four word compares instead of a
/// heap allocation and a `memcmp` (the engine's maps are keyed by them).
/// Unused bytes are zero, a byte no valid id contains, so comparing the
/// zero-padded words orders ids exactly as their text orders.
#[derive(Clone, PartialEq, Eq, Hash)]
struct InlineId {
    bytes: [u8; ID_BYTES_MAX],
    len: u8,
}

const ID_WORDS: usize = ID_BYTES_MAX / 8;
const _: () = assert!(ID_BYTES_MAX.is_multiple_of(8) && ID_BYTES_MAX <= u8::MAX as usize);

impl InlineId {
    /// `text` must already be valid (1 to `ID_BYTES_MAX` bytes).
    fn from_valid(text: &str) -> Self {
        let mut bytes = [0u8; ID_BYTES_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Self {
            bytes,
            len: text.len() as u8,
        }
    }

    fn as_str(&self) -> &str {
        // Only valid ASCII is ever stored, so this never falls back.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The `index`th eight bytes as a big-endian word: words order as the
    /// bytes they hold.
    fn word(&self, index: usize) -> u64 {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&self.bytes[index * 8..index * 8 + 8]);
        u64::from_be_bytes(eight)
    }
}

impl Ord for InlineId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Most ids differ in their first word, so stop at the first that differs.
        (0..ID_WORDS)
            .map(|index| self.word(index).cmp(&other.word(index)))
            .find(|order| order.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

impl PartialOrd for InlineId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(InlineId);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(text: &str) -> Result<Self, IdError> {
                validate(text)?;
                Ok(Self(InlineId::from_valid(text)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::new(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A market, e.g. `BTC-PERP`.
    MarketId
);
id_type!(
    /// A collateral asset, e.g. `USDC`.
    AssetId
);
id_type!(
    /// A venue (clearing member), e.g. `venue-a`.
    VenueId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(MarketId::new("BTC-PERP").is_ok());
        assert!(MarketId::new("").is_err());
        assert!(MarketId::new("has space").is_err());
        assert!(MarketId::new("ü").is_err());
        assert!(VenueId::new(&"a".repeat(ID_BYTES_MAX)).is_ok());
        assert!(VenueId::new(&"a".repeat(ID_BYTES_MAX + 1)).is_err());
    }

    const ID_CHARS: &str = "[A-Za-z0-9_.-]{1,32}";

    proptest::proptest! {
        /// Maps keyed by ids iterate in the same order as they did when ids
        /// were `String`s: the committed state depends on it.
        #[test]
        fn ids_order_and_compare_as_their_text(a in ID_CHARS, b in ID_CHARS) {
            let (x, y) = (MarketId::new(&a).unwrap(), MarketId::new(&b).unwrap());
            proptest::prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            proptest::prop_assert_eq!(x == y, a == b);
            proptest::prop_assert_eq!(x.as_str(), a.as_str());
            proptest::prop_assert_eq!(y.to_string(), b);
        }
    }
}
