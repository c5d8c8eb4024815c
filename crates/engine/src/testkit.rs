//! Fixtures for tests: deterministic keys, a sample genesis and builders of
//! signed transactions. Compiled for tests and with the `testkit` feature.

use clearnode_num::Money;
use clearnode_proto::tx::v1 as pb;
use clearnode_types::genesis::{
    Genesis, GenesisAsset, GenesisCustodian, GenesisLiquidation, GenesisMarket, GenesisParams,
    GenesisVenue,
};
use clearnode_types::tx::sign_tx;
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
            },
        },
    }
}

/// A signer that numbers its transactions.
pub struct Signer {
    /// Its key.
    pub key: SigningKey,
    /// The sequence of its next transaction.
    pub sequence: u64,
}

/// One report entry: (account, market, size, entry price).
pub type Entry<'a> = (Address, &'a str, &'a str, &'a str);

impl Signer {
    /// A signer starting at sequence 0.
    pub fn new(key: SigningKey) -> Self {
        Self { key, sequence: 0 }
    }

    /// Its address.
    pub fn address(&self) -> Address {
        address_of(&self.key)
    }

    /// Signs an action with the next sequence.
    pub fn sign(&mut self, action: pb::tx_body::Action) -> Vec<u8> {
        let body = pb::TxBody {
            chain_id: CHAIN_ID.to_string(),
            sequence: self.sequence,
            action: Some(action),
        };
        self.sequence += 1;
        sign_tx(&self.key, &body)
    }

    /// A deposit (the signer must be the custodian to succeed).
    pub fn deposit(&mut self, account: Address, asset: &str, amount: &str) -> Vec<u8> {
        self.sign(pb::tx_body::Action::DepositCollateral(
            pb::DepositCollateral {
                account: account.as_bytes().to_vec(),
                asset: asset.into(),
                amount: amount.into(),
                reference: format!("wire-{}", self.sequence),
            },
        ))
    }

    /// A withdrawal by the signer's account.
    pub fn withdraw(&mut self, asset: &str, amount: &str) -> Vec<u8> {
        self.sign(pb::tx_body::Action::WithdrawCollateral(
            pb::WithdrawCollateral {
                asset: asset.into(),
                amount: amount.into(),
            },
        ))
    }

    /// Authorizes (or revokes) a venue for the signer's account.
    pub fn authorize(&mut self, venue: &str, authorized: bool) -> Vec<u8> {
        self.sign(pb::tx_body::Action::AuthorizeVenue(pb::AuthorizeVenue {
            venue_id: venue.into(),
            authorized,
        }))
    }

    /// Registers the signer as a liquidator.
    pub fn register_liquidator(&mut self) -> Vec<u8> {
        self.sign(pb::tx_body::Action::RegisterLiquidator(
            pb::RegisterLiquidator {},
        ))
    }

    /// Takes over part of a position in liquidation.
    pub fn take_over(
        &mut self,
        account: Address,
        market: &str,
        venue: &str,
        quantity: &str,
        price: &str,
    ) -> Vec<u8> {
        self.sign(pb::tx_body::Action::TakeOverPosition(
            pb::TakeOverPosition {
                account: account.as_bytes().to_vec(),
                market: market.into(),
                venue_id: venue.into(),
                quantity: quantity.into(),
                price: price.into(),
            },
        ))
    }

    /// A position report (the signer must be the venue's key to succeed).
    pub fn report(&mut self, venue: &str, entries: &[Entry<'_>]) -> Vec<u8> {
        self.sign(pb::tx_body::Action::PositionReport(pb::PositionReport {
            venue_id: venue.into(),
            entries: entries
                .iter()
                .map(|(account, market, size, price)| pb::PositionEntry {
                    account: account.as_bytes().to_vec(),
                    market: (*market).into(),
                    size: (*size).into(),
                    entry_price: (*price).into(),
                })
                .collect(),
        }))
    }
}
