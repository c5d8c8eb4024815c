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

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(text: &str) -> Result<Self, IdError> {
                validate(text)?;
                Ok(Self(text.to_string()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
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
                serializer.serialize_str(&self.0)
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
}
