//! What an oracle prices, and one price of a block.

use std::fmt;
use std::str::FromStr;

use clearnode_num::Price;

use crate::ids::{AssetId, MarketId};

/// What an oracle price is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PriceTarget {
    /// A market's mark price.
    Market(MarketId),
    /// A collateral asset's price.
    Asset(AssetId),
}

impl fmt::Display for PriceTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceTarget::Market(id) => write!(f, "market:{id}"),
            PriceTarget::Asset(id) => write!(f, "asset:{id}"),
        }
    }
}

/// Why a target does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a price target is market:<id> or asset:<id>, got {0:?}")]
pub struct TargetParseError(pub String);

impl FromStr for PriceTarget {
    type Err = TargetParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || TargetParseError(text.chars().take(48).collect());
        match text.split_once(':') {
            Some(("market", id)) => id.parse().map(PriceTarget::Market).map_err(|_| error()),
            Some(("asset", id)) => id.parse().map(PriceTarget::Asset).map_err(|_| error()),
            _ => Err(error()),
        }
    }
}

/// One price of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceUpdate {
    /// What is priced.
    pub target: PriceTarget,
    /// The new price.
    pub price: Price,
}

/// One block's oracle round: the prices validators agreed on (>= 2/3 of
/// power), and the targets some quoted but too few to price.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OracleRound {
    /// Prices quoted by >= 2/3 of voting power (the stake-weighted median).
    pub prices: Vec<PriceUpdate>,
    /// Targets quoted by less than 2/3 of voting power (not priced).
    pub underquoted: Vec<PriceTarget>,
}

impl From<Vec<PriceUpdate>> for OracleRound {
    fn from(prices: Vec<PriceUpdate>) -> Self {
        Self {
            prices,
            underquoted: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_text() {
        for text in ["market:BTC-PERP", "asset:USDC"] {
            assert_eq!(
                text.parse::<PriceTarget>().expect("valid").to_string(),
                text
            );
        }
        for bad in ["BTC-PERP", "market:", "venue:x", "market:a b"] {
            assert!(bad.parse::<PriceTarget>().is_err(), "{bad}");
        }
    }
}
