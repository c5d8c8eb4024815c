//! The application's genesis document: the `app_state` of CometBFT's
//! genesis.json. It lists markets, collateral assets (with haircuts), venues
//! (with their keys), the custodian and the risk parameters.

use std::collections::BTreeSet;

use clearnode_num::{Price, Quantity};
use serde::{Deserialize, Serialize};

use crate::ids::{AssetId, MarketId, VenueId};
use crate::limits::{GENESIS_ENTRIES_MAX, PRICE_UNITS_MAX, QUANTITY_UNITS_MAX, REPORT_ENTRIES_MAX};

/// Parts per million in 1.0.
pub const PPM_ONE: u64 = 1_000_000;

/// The application's genesis state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Perpetual markets.
    pub markets: Vec<GenesisMarket>,
    /// Collateral assets.
    pub assets: Vec<GenesisAsset>,
    /// Venues (clearing members).
    pub venues: Vec<GenesisVenue>,
    /// The custodian whose signature credits deposits.
    pub custodian: GenesisCustodian,
    /// Risk parameters.
    pub params: GenesisParams,
}

/// A market and its margin parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisMarket {
    /// Market id, e.g. `BTC-PERP`.
    pub id: MarketId,
    /// Oracle price to start from (USD per contract).
    pub oracle_price: Price,
    /// Initial margin fraction on net notional, ppm.
    pub initial_margin_ppm: u64,
    /// Maintenance margin fraction on net notional, ppm.
    pub maintenance_margin_ppm: u64,
    /// Initial charge on the gross size that nets out across venues, ppm.
    pub basis_initial_ppm: u64,
    /// Maintenance charge on the gross size that nets out across venues, ppm.
    pub basis_maintenance_ppm: u64,
}

/// A collateral asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAsset {
    /// Asset id, e.g. `USDC`.
    pub id: AssetId,
    /// Oracle price to start from (USD per unit).
    pub oracle_price: Price,
    /// Share of the value not counted as collateral, ppm.
    pub haircut_ppm: u64,
}

/// A venue and its report-signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisVenue {
    /// Venue id.
    pub id: VenueId,
    /// Hex ed25519 public key that signs its reports.
    pub public_key: String,
    /// Whether it may report.
    pub active: bool,
}

/// The custodian.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisCustodian {
    /// Hex ed25519 public key that signs deposits.
    pub public_key: String,
}

/// Risk parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisParams {
    /// Most entries in one report (at most `REPORT_ENTRIES_MAX`).
    pub report_entries_max: u32,
    /// Largest absolute size of one position on one venue.
    pub position_size_max: Quantity,
}

/// Why a genesis document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid genesis: {0}")]
pub struct GenesisError(pub String);

/// Decodes a hex ed25519 public key.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], GenesisError> {
    let bytes = hex::decode(text).map_err(|e| GenesisError(format!("public key {text:?}: {e}")))?;
    let key = <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| GenesisError(format!("public key {text:?} is not 32 bytes")))?;
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| GenesisError(format!("public key {text:?} is not an ed25519 point")))?;
    Ok(key)
}

fn unique<'a, T: Ord + std::fmt::Display + 'a>(
    what: &str,
    ids: impl Iterator<Item = &'a T>,
) -> Result<(), GenesisError> {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(GenesisError(format!("{what} {id} is listed twice")));
        }
    }
    if seen.len() > GENESIS_ENTRIES_MAX {
        return Err(GenesisError(format!(
            "more than {GENESIS_ENTRIES_MAX} {what}s"
        )));
    }
    Ok(())
}

impl Genesis {
    /// Parses and validates a genesis document from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Genesis, GenesisError> {
        let genesis: Genesis =
            serde_json::from_slice(bytes).map_err(|e| GenesisError(e.to_string()))?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Checks every rule a genesis must satisfy.
    pub fn validate(&self) -> Result<(), GenesisError> {
        unique("market", self.markets.iter().map(|m| &m.id))?;
        unique("asset", self.assets.iter().map(|a| &a.id))?;
        unique("venue", self.venues.iter().map(|v| &v.id))?;
        if self.markets.is_empty() || self.assets.is_empty() {
            return Err(GenesisError("at least one market and one asset".into()));
        }
        for market in &self.markets {
            let m = market;
            let in_range = 0 < m.maintenance_margin_ppm
                && m.maintenance_margin_ppm <= m.initial_margin_ppm
                && m.initial_margin_ppm <= PPM_ONE
                && m.basis_maintenance_ppm <= m.basis_initial_ppm
                && m.basis_initial_ppm <= m.initial_margin_ppm
                && m.basis_maintenance_ppm <= m.maintenance_margin_ppm;
            if !in_range {
                return Err(GenesisError(format!(
                    "market {}: need 0 < maintenance <= initial <= 1e6, basis maintenance <= basis initial, and each basis charge at most its margin fraction (a hedge never costs more than a naked position)",
                    m.id
                )));
            }
        }
        let prices = self.markets.iter().map(|m| (m.id.as_str(), m.oracle_price));
        let prices = prices.chain(self.assets.iter().map(|a| (a.id.as_str(), a.oracle_price)));
        for (id, price) in prices {
            if price > crate::tx::price_max() {
                return Err(GenesisError(format!(
                    "{id}: price above {PRICE_UNITS_MAX} USD"
                )));
            }
        }
        for asset in &self.assets {
            if asset.haircut_ppm >= PPM_ONE {
                return Err(GenesisError(format!(
                    "asset {}: haircut must be below 1e6 ppm",
                    asset.id
                )));
            }
        }
        let mut keys = BTreeSet::new();
        for venue in &self.venues {
            if !keys.insert(parse_public_key(&venue.public_key)?) {
                return Err(GenesisError(format!("venue {} reuses a key", venue.id)));
            }
        }
        parse_public_key(&self.custodian.public_key)?;
        let entries = self.params.report_entries_max as usize;
        if entries == 0 || entries > REPORT_ENTRIES_MAX {
            return Err(GenesisError(format!(
                "report_entries_max must be 1..={REPORT_ENTRIES_MAX}"
            )));
        }
        let size_max = self.params.position_size_max;
        if !size_max.is_positive() || size_max > Quantity::from_units(QUANTITY_UNITS_MAX) {
            return Err(GenesisError(format!(
                "position_size_max must be in (0, {QUANTITY_UNITS_MAX}]"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Genesis {
        let key = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[1u8; 32])
                .verifying_key()
                .to_bytes(),
        );
        let json = serde_json::json!({
            "markets": [{"id": "BTC-PERP", "oracle_price": "60000", "initial_margin_ppm": 50000,
                         "maintenance_margin_ppm": 30000, "basis_initial_ppm": 10000,
                         "basis_maintenance_ppm": 5000}],
            "assets": [{"id": "USDC", "oracle_price": "1", "haircut_ppm": 0}],
            "venues": [{"id": "venue-a", "public_key": key, "active": true}],
            "custodian": {"public_key": key},
            "params": {"report_entries_max": 100, "position_size_max": "1000"}
        });
        Genesis::from_json(json.to_string().as_bytes()).expect("valid sample")
    }

    #[test]
    fn sample_is_valid() {
        let genesis = sample();
        assert_eq!(genesis.markets[0].oracle_price.to_string(), "60000");
    }

    #[test]
    fn rejects_bad_documents() {
        let mut g = sample();
        g.markets.push(g.markets[0].clone());
        assert!(g.validate().is_err(), "duplicate market");
        let mut g = sample();
        g.markets[0].maintenance_margin_ppm = 60_000;
        assert!(g.validate().is_err(), "maintenance above initial");
        let mut g = sample();
        g.assets[0].haircut_ppm = PPM_ONE;
        assert!(g.validate().is_err(), "full haircut");
        let mut g = sample();
        g.custodian.public_key = "00".into();
        assert!(g.validate().is_err(), "short key");
        assert!(Genesis::from_json(b"{}").is_err());
    }
}
