//! The simulated world: a genesis with three venues and three markets (two
//! deep, one thin), deterministic keys, and the start prices.

use clearnode_num::{Money, Price, Quantity};
use clearnode_types::genesis::{
    Genesis, GenesisAsset, GenesisCustodian, GenesisLiquidation, GenesisMarket,
    GenesisMarketBreaker, GenesisParams, GenesisSystemBreaker, GenesisVenue,
};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

/// The simulated chain.
pub(crate) const CHAIN_ID: &str = "clearnode-sim";
/// Venues.
pub(crate) const VENUES: [&str; 3] = ["venue-a", "venue-b", "venue-c"];
/// Markets: id, start price (USD), base initial margin (ppm), OI caps (USD; 0 = off).
pub(crate) const MARKETS: [(&str, i64, u64, i64, i64); 3] = [
    ("BTC-PERP", 60_000, 50_000, 0, 0),
    ("ETH-PERP", 3_000, 50_000, 0, 0),
    // Thin: a higher base and open-interest scaling from 200k to 2M USD.
    ("THIN-PERP", 10, 100_000, 200_000, 2_000_000),
];

/// A deterministic key for a seed, a role and an index.
pub(crate) fn key(seed: u64, role: &str, index: u32) -> SigningKey {
    let digest: [u8; 32] = Sha256::digest(format!("clearnode-sim/{seed}/{role}/{index}")).into();
    SigningKey::from_bytes(&digest)
}

fn hex_key(key: &SigningKey) -> String {
    key.verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn id<T: std::str::FromStr>(text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| unreachable!("a constant id is valid: {text}"))
}

/// The devnet's market breakers (genesis/devnet.json), without its OI caps.
fn devnet_market_breaker() -> GenesisMarketBreaker {
    GenesisMarketBreaker {
        price_band_ppm: 150_000,
        limit_blocks: 5,
        pause_blocks: 5,
        reopen_blocks: 20,
        reopen_margin_multiplier_ppm: 1_500_000,
        reference_window_blocks: 100,
        stale_after_blocks: 10,
        volatile_move_ppm: 100_000,
        ..GenesisMarketBreaker::default()
    }
}

/// The devnet's system breaker.
fn devnet_system_breaker() -> GenesisSystemBreaker {
    GenesisSystemBreaker {
        fund_drawdown_max_ppm: 250_000,
        fund_drawdown_window_blocks: 200,
        coverage_stress_move_ppm: 300_000,
        tightened_margin_multiplier_ppm: 1_250_000,
        fresh_price_blocks: 2,
    }
}

/// The genesis of the simulated chain.
pub(crate) fn genesis(seed: u64, breakers: bool) -> Result<Genesis, String> {
    let markets = MARKETS
        .iter()
        .map(|&(market, price, initial, lower, upper)| {
            Ok(GenesisMarket {
                id: id(market),
                oracle_price: Price::from_units(price).map_err(|e| e.to_string())?,
                initial_margin_ppm: initial,
                maintenance_fraction_ppm: 600_000,
                basis_ppm: initial / 5,
                open_interest_lower_cap: Money::from_units(lower),
                open_interest_upper_cap: Money::from_units(upper),
                size_tiers: Vec::new(),
                volatility_decay_ppm: 940_000,
                volatility_reference_ppm: 20_000,
                margin_phase_in_blocks: 10,
                margin_rise_per_block_max_ppm: 20_000,
                insurance_payout_per_block_max: Money::from_units(250_000),
                isolated: false,
                isolated_insurance_fund: Money::ZERO,
                breaker: if breakers {
                    devnet_market_breaker()
                } else {
                    Default::default()
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Genesis {
        markets,
        assets: vec![GenesisAsset {
            id: id("USDC"),
            oracle_price: Price::from_units(1).map_err(|e| e.to_string())?,
            haircut_ppm: 0,
        }],
        venues: VENUES
            .iter()
            .zip(0u32..)
            .map(|(venue, index)| GenesisVenue {
                id: id(venue),
                public_key: hex_key(&key(seed, "venue", index)),
                active: true,
            })
            .collect(),
        custodian: GenesisCustodian {
            public_key: hex_key(&key(seed, "custodian", 0)),
        },
        params: GenesisParams {
            report_entries_max: 1_000,
            position_size_max: Quantity::from_units(100_000_000),
            insurance_fund_initial: Money::from_units(500_000),
            instruction_ack_blocks: 20,
            system_breaker: if breakers {
                devnet_system_breaker()
            } else {
                Default::default()
            },
            governance: Default::default(),
            liquidation: GenesisLiquidation {
                fraction_per_block_ppm: 200_000,
                min_notional: Money::from_units(1_000),
                accounts_per_block_max: 200,
                deadline_blocks: 10,
                spread_to_maintenance_ppm: 1_500_000,
                fee_base_ppm: 5_000,
                fee_convex_ppm: 10_000,
                fee_per_block_ppm: 500,
                fee_max_ppm: 15_000,
                liquidator_share_ppm: 500_000,
                adl_profit_share_max_ppm: 1_000_000,
            },
        },
    })
}
