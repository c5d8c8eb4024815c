//! The application's genesis document: the `app_state` of CometBFT's
//! genesis.json. It lists markets, collateral assets (with haircuts), venues
//! (with their keys), the custodian and the risk parameters.

use std::collections::BTreeSet;

use clearnode_num::{Money, Price, Quantity};
use serde::{Deserialize, Serialize};

use crate::ids::{AssetId, MarketId, VenueId};
mod breakers;
pub use breakers::{GenesisMarketBreaker, GenesisSystemBreaker};

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
///
/// The initial margin fraction (IMF) of a position is the largest of: the
/// base fraction; the open-interest-scaled fraction (linear from the base at
/// the lower cap to 100% at the upper cap, as dYdX); the volatility-scaled
/// fraction (base x realized volatility / reference volatility); and the
/// account's size tier (continuous in size, as Hyperliquid's tiers with a
/// deduction). Maintenance is a fixed fraction of initial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisMarket {
    /// Market id, e.g. `BTC-PERP`.
    pub id: MarketId,
    /// Oracle price to start from (USD per contract).
    pub oracle_price: Price,
    /// Base initial margin fraction of net notional, ppm.
    pub initial_margin_ppm: u64,
    /// Maintenance requirement as a fraction of the initial one, ppm.
    pub maintenance_fraction_ppm: u64,
    /// Initial charge on the gross size that nets out across venues, ppm
    /// (its maintenance charge is the same maintenance fraction of it).
    pub basis_ppm: u64,
    /// Open interest (USD, larger side) where OI scaling starts; with the
    /// upper cap "0", OI scaling is off.
    pub open_interest_lower_cap: Money,
    /// Open interest (USD) at which the fraction reaches 100%.
    pub open_interest_upper_cap: Money,
    /// Size tiers above the base, in increasing order.
    #[serde(default)]
    pub size_tiers: Vec<GenesisSizeTier>,
    /// Decay of the EWMA of squared oracle returns per update, ppm (e.g. 940000).
    pub volatility_decay_ppm: u64,
    /// Per-update return volatility (standard deviation, ppm) at which the
    /// volatility-scaled fraction equals the base; above it, it scales up.
    pub volatility_reference_ppm: u64,
    /// Blocks over which a higher fraction phases in for existing positions.
    pub margin_phase_in_blocks: u32,
    /// Most the fraction applied to existing positions may rise per block, ppm.
    pub margin_rise_per_block_max_ppm: u64,
    /// Most the insurance fund pays per block for bad debt arising in this
    /// market (USD); the rest goes to auto-deleveraging.
    pub insurance_payout_per_block_max: Money,
    /// An isolated market: only isolated sub-accounts hold it, and its own
    /// insurance fund (starting at `isolated_insurance_fund`) backs it.
    #[serde(default)]
    pub isolated: bool,
    /// The isolated market's own insurance fund at genesis (USD).
    #[serde(default)]
    pub isolated_insurance_fund: Money,
    /// Circuit breakers and oracle validity (absent: none).
    #[serde(default)]
    pub breaker: GenesisMarketBreaker,
}

/// One size tier: from this net notional on, the marginal fraction is higher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSizeTier {
    /// Net notional (USD) where the tier starts.
    pub notional_floor: Money,
    /// Initial margin fraction from here on, ppm.
    pub initial_margin_ppm: u64,
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
    /// The liquidation ladder.
    pub liquidation: GenesisLiquidation,
    /// What the insurance fund starts with (USD).
    pub insurance_fund_initial: Money,
    /// Blocks a venue has to acknowledge a liquidation, takeover, backstop
    /// or ADL instruction before it becomes delinquent.
    pub instruction_ack_blocks: u32,
    /// The system-wide breaker (absent: none).
    #[serde(default)]
    pub system_breaker: GenesisSystemBreaker,
    /// Governance of risk parameters (absent: the defaults).
    #[serde(default)]
    pub governance: GenesisGovernance,
}

/// Governance of risk parameters (docs/governance.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisGovernance {
    /// Blocks a proposal stays open for votes.
    #[serde(default = "GenesisGovernance::default_voting_blocks")]
    pub voting_blocks: u64,
    /// Blocks a passed safety-lowering proposal waits before it may take effect.
    #[serde(default = "GenesisGovernance::default_timelock_blocks")]
    pub timelock_blocks: u64,
    /// Blocks a due safety-lowering proposal may wait for the breaker it
    /// weakens to clear before it expires.
    #[serde(default = "GenesisGovernance::default_queue_blocks_max")]
    pub queue_blocks_max: u64,
}

impl GenesisGovernance {
    fn default_voting_blocks() -> u64 {
        600
    }
    fn default_timelock_blocks() -> u64 {
        3_600
    }
    fn default_queue_blocks_max() -> u64 {
        14_400
    }
}

impl Default for GenesisGovernance {
    fn default() -> Self {
        Self {
            voting_blocks: Self::default_voting_blocks(),
            timelock_blocks: Self::default_timelock_blocks(),
            queue_blocks_max: Self::default_queue_blocks_max(),
        }
    }
}

/// The liquidation ladder's parameters (see `LiquidationParams` in state.proto).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisLiquidation {
    /// Share of each position offered per block, ppm.
    pub fraction_per_block_ppm: u64,
    /// Smallest notional offered (USD), unless the position is smaller.
    pub min_notional: Money,
    /// Most accounts put into liquidation per block.
    pub accounts_per_block_max: u32,
    /// Blocks an order waits for a liquidator.
    pub deadline_blocks: u32,
    /// Band around the oracle as a multiple of the maintenance fraction, ppm.
    pub spread_to_maintenance_ppm: u64,
    /// Base penalty on the taken-over notional, ppm.
    pub fee_base_ppm: u64,
    /// Convex penalty x (shortfall / maintenance)^2, ppm.
    pub fee_convex_ppm: u64,
    /// Penalty added per block in liquidation, ppm.
    pub fee_per_block_ppm: u64,
    /// Highest penalty, ppm.
    pub fee_max_ppm: u64,
    /// The liquidator's share of the penalty, ppm.
    pub liquidator_share_ppm: u64,
    /// Most of an account's unrealized profit in a market that one
    /// auto-deleveraging may take, ppm.
    pub adl_profit_share_max_ppm: u64,
}

/// Why a genesis document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid genesis: {0}")]
pub struct GenesisError(pub String);

fn validate_market(m: &GenesisMarket) -> Result<(), GenesisError> {
    let fail = |why: &str| Err(GenesisError(format!("market {}: {why}", m.id)));
    if m.initial_margin_ppm == 0 || m.initial_margin_ppm > PPM_ONE {
        return fail("initial_margin_ppm must be in (0, 1e6]");
    }
    if m.maintenance_fraction_ppm == 0 || m.maintenance_fraction_ppm > PPM_ONE {
        return fail("maintenance_fraction_ppm must be in (0, 1e6]");
    }
    if m.basis_ppm > m.initial_margin_ppm {
        return fail(
            "basis_ppm above initial_margin_ppm would make a hedge cost more than a naked position",
        );
    }
    let upper = m.open_interest_upper_cap;
    if upper.is_negative()
        || m.open_interest_lower_cap.is_negative()
        || (!upper.is_zero() && upper <= m.open_interest_lower_cap)
    {
        return fail("open interest caps: 0 <= lower < upper, or upper 0 to disable");
    }
    let mut floor = Money::ZERO;
    let mut fraction = m.initial_margin_ppm;
    for tier in &m.size_tiers {
        if tier.notional_floor <= floor
            || tier.initial_margin_ppm <= fraction
            || tier.initial_margin_ppm > PPM_ONE
        {
            return fail(
                "size tiers need increasing floors above 0 and increasing fractions up to 1e6",
            );
        }
        floor = tier.notional_floor;
        fraction = tier.initial_margin_ppm;
    }
    if m.size_tiers.len() > SIZE_TIERS_MAX {
        return fail("too many size tiers");
    }
    if m.volatility_decay_ppm >= PPM_ONE || m.volatility_reference_ppm == 0 {
        return fail(
            "volatility_decay_ppm must be below 1e6 and volatility_reference_ppm positive",
        );
    }
    if m.margin_phase_in_blocks == 0 || m.margin_rise_per_block_max_ppm == 0 {
        return fail("margin_phase_in_blocks and margin_rise_per_block_max_ppm must be positive");
    }
    if m.insurance_payout_per_block_max.is_negative() {
        return fail("insurance_payout_per_block_max must not be negative");
    }
    if m.isolated_insurance_fund.is_negative()
        || (!m.isolated && !m.isolated_insurance_fund.is_zero())
    {
        return fail("isolated_insurance_fund must be >= 0, and only for an isolated market");
    }
    Ok(())
}

/// Hard cap on accounts the ladder handles per block.
pub const LIQUIDATIONS_PER_BLOCK_MAX: u32 = 1_000;

/// Most size tiers a market may have.
pub const SIZE_TIERS_MAX: usize = 8;

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
        let governance = &self.params.governance;
        if governance.voting_blocks == 0 || governance.queue_blocks_max == 0 {
            return Err(GenesisError(
                "governance voting_blocks and queue_blocks_max must be positive".into(),
            ));
        }
        if self.markets.is_empty() || self.assets.is_empty() {
            return Err(GenesisError("at least one market and one asset".into()));
        }
        for market in &self.markets {
            validate_market(market)?;
            market.breaker.validate(market.id.as_str())?;
        }
        self.params.system_breaker.validate()?;
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
        let l = &self.params.liquidation;
        let liquidation_ok = (1..=PPM_ONE).contains(&l.fraction_per_block_ppm)
            && !l.min_notional.is_negative()
            && (1..=LIQUIDATIONS_PER_BLOCK_MAX).contains(&l.accounts_per_block_max)
            && l.deadline_blocks > 0
            && l.fee_base_ppm <= l.fee_max_ppm
            && l.fee_max_ppm <= PPM_ONE
            && l.liquidator_share_ppm <= PPM_ONE
            && (1..=PPM_ONE).contains(&l.adl_profit_share_max_ppm)
            && l.spread_to_maintenance_ppm <= 10 * PPM_ONE;
        if !liquidation_ok {
            return Err(GenesisError(format!(
                "liquidation: fraction in (0, 1e6], min_notional >= 0, accounts per block 1..={LIQUIDATIONS_PER_BLOCK_MAX}, deadline > 0, base <= max <= 1e6, share <= 1e6, spread <= 1e7, ADL profit share in (0, 1e6]"
            )));
        }
        if self.params.instruction_ack_blocks == 0 {
            return Err(GenesisError(
                "instruction_ack_blocks must be positive".into(),
            ));
        }
        if self.params.insurance_fund_initial.is_negative() {
            return Err(GenesisError(
                "insurance_fund_initial must not be negative".into(),
            ));
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
                         "maintenance_fraction_ppm": 600000, "basis_ppm": 10000,
                         "open_interest_lower_cap": "0", "open_interest_upper_cap": "0",
                         "size_tiers": [{"notional_floor": "1000000", "initial_margin_ppm": 100000}],
                         "volatility_decay_ppm": 940000, "volatility_reference_ppm": 5000,
                         "margin_phase_in_blocks": 10, "margin_rise_per_block_max_ppm": 10000,
                         "insurance_payout_per_block_max": "100000"}],
            "assets": [{"id": "USDC", "oracle_price": "1", "haircut_ppm": 0}],
            "venues": [{"id": "venue-a", "public_key": key, "active": true}],
            "custodian": {"public_key": key},
            "params": {"report_entries_max": 100, "position_size_max": "1000",
                       "insurance_fund_initial": "1000000", "instruction_ack_blocks": 20,
                       "liquidation": {"fraction_per_block_ppm": 200000, "min_notional": "1000",
                                       "accounts_per_block_max": 50, "deadline_blocks": 10,
                                       "spread_to_maintenance_ppm": 1500000, "fee_base_ppm": 5000,
                                       "fee_convex_ppm": 10000, "fee_per_block_ppm": 500,
                                       "fee_max_ppm": 15000, "liquidator_share_ppm": 500000,
                                       "adl_profit_share_max_ppm": 500000}}
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
        g.markets[0].maintenance_fraction_ppm = PPM_ONE + 1;
        assert!(g.validate().is_err(), "maintenance above initial");
        let mut g = sample();
        g.markets[0].basis_ppm = 60_000;
        assert!(g.validate().is_err(), "basis above initial");
        let mut g = sample();
        g.markets[0].size_tiers[0].initial_margin_ppm = 40_000;
        assert!(g.validate().is_err(), "a tier below the base");
        let mut g = sample();
        g.markets[0].open_interest_upper_cap = "10".parse().expect("money");
        g.markets[0].open_interest_lower_cap = "20".parse().expect("money");
        assert!(g.validate().is_err(), "caps out of order");
        let mut g = sample();
        g.assets[0].haircut_ppm = PPM_ONE;
        assert!(g.validate().is_err(), "full haircut");
        let mut g = sample();
        g.custodian.public_key = "00".into();
        assert!(g.validate().is_err(), "short key");
        assert!(Genesis::from_json(b"{}").is_err());
    }
}
