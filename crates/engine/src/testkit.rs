//! Fixtures for tests: deterministic keys, a sample genesis and builders of
//! signed transactions. Compiled for tests and with the `testkit` feature.

use clearnode_num::Money;
use clearnode_types::genesis::{
    Genesis, GenesisAsset, GenesisCustodian, GenesisLiquidation, GenesisMarket, GenesisParams,
    GenesisVenue,
};
use clearnode_types::Address;
use ed25519_dalek::SigningKey;

/// The chain id used by fixtures.
pub const CHAIN_ID: &str = "clearnode-test";

/// A deterministic key.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The custodian's key in [`genesis`].
pub fn custodian_key() -> SigningKey {
    key(200)
}

/// The key of venue `venue-a` (0), `venue-b` (1), `venue-c` (2), `venue-x` (3, inactive).
pub fn venue_key(index: u8) -> SigningKey {
    key(100 + index)
}

/// Venue ids in [`genesis`], by index.
pub const VENUES: [&str; 4] = ["venue-a", "venue-b", "venue-c", "venue-x"];

/// The address of a key.
pub fn address_of(key: &SigningKey) -> Address {
    Address::of_public_key(&key.verifying_key().to_bytes())
}

fn price(text: &str) -> clearnode_num::Price {
    text.parse()
        .unwrap_or_else(|_| unreachable!("fixture price"))
}

/// Two markets, two collateral assets, three active venues and an inactive one.
pub fn genesis() -> Genesis {
    let market = |id: &str, p: &str, im: u64| GenesisMarket {
        id: id.parse().unwrap_or_else(|_| unreachable!("fixture id")),
        oracle_price: price(p),
        initial_margin_ppm: im,
        maintenance_fraction_ppm: 600_000,
        basis_ppm: im / 5,
        // Static margin unless a test turns the dynamic parts on.
        open_interest_lower_cap: Money::ZERO,
        open_interest_upper_cap: Money::ZERO,
        size_tiers: Vec::new(),
        volatility_decay_ppm: 940_000,
        volatility_reference_ppm: 1_000_000,
        margin_phase_in_blocks: 10,
        margin_rise_per_block_max_ppm: 20_000,
        insurance_payout_per_block_max: Money::from_units(500_000),
        isolated: false,
        isolated_insurance_fund: Money::ZERO,
        breaker: Default::default(),
    };
    Genesis {
        markets: vec![
            market("BTC-PERP", "60000", 50_000),
            market("ETH-PERP", "3000", 100_000),
        ],
        assets: vec![
            GenesisAsset {
                id: "USDC"
                    .parse()
                    .unwrap_or_else(|_| unreachable!("fixture id")),
                oracle_price: price("1"),
                haircut_ppm: 0,
            },
            GenesisAsset {
                id: "ETH".parse().unwrap_or_else(|_| unreachable!("fixture id")),
                oracle_price: price("3000"),
                haircut_ppm: 100_000,
            },
        ],
        venues: (0u8..4)
            .map(|i| GenesisVenue {
                id: VENUES[usize::from(i)]
                    .parse()
                    .unwrap_or_else(|_| unreachable!("fixture id")),
                public_key: hex::encode(venue_key(i).verifying_key().to_bytes()),
                active: i < 3,
            })
            .collect(),
        custodian: GenesisCustodian {
            public_key: hex::encode(custodian_key().verifying_key().to_bytes()),
        },
        params: GenesisParams {
            report_entries_max: 500,
            position_size_max: "100000".parse().unwrap_or_else(|_| unreachable!("fixture")),
            insurance_fund_initial: Money::from_units(1_000_000),
            instruction_ack_blocks: 20,
            system_breaker: Default::default(),
            governance: Default::default(),
            liquidation: GenesisLiquidation {
                fraction_per_block_ppm: 200_000,
                min_notional: Money::from_units(1_000),
                accounts_per_block_max: 50,
                deadline_blocks: 10,
                spread_to_maintenance_ppm: 1_500_000,
                fee_base_ppm: 5_000,
                fee_convex_ppm: 10_000,
                fee_per_block_ppm: 500,
                fee_max_ppm: 15_000,
                liquidator_share_ppm: 500_000,
                adl_profit_share_max_ppm: 500_000,
            },
        },
    }
}

/// A signer for the fixture chain: `clearnode_types::signer::Signer` with
/// the chain id filled in.
pub struct Signer(clearnode_types::signer::Signer);

/// One report entry: (account, market, size, entry price).
pub type Entry<'a> = clearnode_types::signer::Entry<'a>;

impl Signer {
    /// A signer starting at sequence 0.
    pub fn new(key: SigningKey) -> Self {
        Self(clearnode_types::signer::Signer::new(key, CHAIN_ID))
    }
}

impl std::ops::Deref for Signer {
    type Target = clearnode_types::signer::Signer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Signer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
