//! The model at height 0, read from the same genesis document the engine
//! starts from (raw values, its own tier deductions).

use std::collections::BTreeMap;

use clearnode_types::genesis::{Genesis, GenesisMarket};

use super::breakers::{Band, BandParams, SystemParams};
use super::fixed::{times_ppm, Round, PPM};
use super::{
    AssetModel, Deviations, Fund, Ledger, MarketModel, Model, Params, Regime, Tally, Tier,
    VenueModel,
};

fn public_key(hex_text: &str) -> [u8; 32] {
    let bytes = hex::decode(hex_text).expect("genesis key is hex");
    bytes.try_into().expect("genesis key is 32 bytes")
}

fn ppm(value: u64) -> i128 {
    i128::from(value)
}

impl Model {
    /// The model at height 0.
    pub fn from_genesis(genesis: &Genesis, deviations: Deviations) -> Self {
        let liquidation = &genesis.params.liquidation;
        let params = Params {
            report_entries_max: genesis.params.report_entries_max as usize,
            position_size_max: genesis.params.position_size_max.raw(),
            insurance_fund_initial: genesis.params.insurance_fund_initial.raw(),
            fraction_per_block_ppm: ppm(liquidation.fraction_per_block_ppm),
            min_notional: liquidation.min_notional.raw(),
            accounts_per_block_max: liquidation.accounts_per_block_max as usize,
            deadline_blocks: u64::from(liquidation.deadline_blocks),
            spread_to_maintenance_ppm: ppm(liquidation.spread_to_maintenance_ppm),
            fee_base_ppm: ppm(liquidation.fee_base_ppm),
            fee_convex_ppm: ppm(liquidation.fee_convex_ppm),
            fee_per_block_ppm: ppm(liquidation.fee_per_block_ppm),
            fee_max_ppm: ppm(liquidation.fee_max_ppm),
            liquidator_share_ppm: ppm(liquidation.liquidator_share_ppm),
            adl_profit_share_max_ppm: ppm(liquidation.adl_profit_share_max_ppm),
            instruction_ack_blocks: u64::from(genesis.params.instruction_ack_blocks),
        };
        let markets = genesis
            .markets
            .iter()
            .map(|m| (m.id.to_string(), market_from_genesis(m)))
            .collect();
        let assets = genesis
            .assets
            .iter()
            .map(|a| {
                let asset = AssetModel {
                    price: a.oracle_price.raw(),
                    haircut_ppm: ppm(a.haircut_ppm),
                };
                (a.id.to_string(), asset)
            })
            .collect();
        let venues: BTreeMap<String, VenueModel> = genesis
            .venues
            .iter()
            .map(|v| {
                let venue = VenueModel {
                    public_key: public_key(&v.public_key),
                    active: v.active,
                    acknowledgements: Default::default(),
                };
                (v.id.to_string(), venue)
            })
            .collect();
        Self {
            height: 0,
            custodian: public_key(&genesis.custodian.public_key),
            markets,
            assets,
            ledgers: genesis
                .assets
                .iter()
                .map(|a| (a.id.to_string(), Ledger::default()))
                .collect(),
            settlements: venues.keys().map(|id| (id.clone(), 0)).collect(),
            venues,
            sequences: BTreeMap::new(),
            accounts: BTreeMap::new(),
            orders: BTreeMap::new(),
            fund: Fund {
                balance: params.insurance_fund_initial,
                ..Fund::default()
            },
            params,
            risks: BTreeMap::new(),
            system_params: SystemParams::from_genesis(&genesis.params.system_breaker),
            system: Default::default(),
            instructed: Default::default(),
            deviations,
            tally: Tally::default(),
        }
    }
}

fn market_from_genesis(m: &GenesisMarket) -> MarketModel {
    let base = ppm(m.initial_margin_ppm);
    let mut tiers = Vec::new();
    let (mut previous_fraction, mut deduction) = (base, 0);
    for tier in &m.size_tiers {
        let fraction = ppm(tier.initial_margin_ppm);
        // d_k = d_(k-1) + floor_k x (f_k - f_(k-1)), rounded down so that
        // rounding never lowers the requirement.
        deduction += times_ppm(
            tier.notional_floor.raw(),
            fraction - previous_fraction,
            Round::Down,
        );
        tiers.push(Tier {
            notional_floor: tier.notional_floor.raw(),
            fraction_ppm: fraction,
            deduction,
        });
        previous_fraction = fraction;
    }
    assert!(base <= PPM);
    MarketModel {
        price: m.oracle_price.raw(),
        base_ppm: base,
        maintenance_fraction_ppm: ppm(m.maintenance_fraction_ppm),
        basis_ppm: ppm(m.basis_ppm),
        open_interest_lower: m.open_interest_lower_cap.raw(),
        open_interest_upper: m.open_interest_upper_cap.raw(),
        tiers,
        volatility_decay_ppm: ppm(m.volatility_decay_ppm),
        volatility_reference_ppm: ppm(m.volatility_reference_ppm),
        phase_in_blocks: m.margin_phase_in_blocks,
        rise_per_block_max_ppm: ppm(m.margin_rise_per_block_max_ppm),
        insurance_payout_per_block_max: m.insurance_payout_per_block_max.raw(),
        breaker_params: BandParams::from_genesis(&m.breaker),
        breaker: Band::at_genesis(m.oracle_price.raw()),
        regime: Regime {
            variance: 0,
            target: base,
            current: base,
            phase_step: 0,
            phase_target: base,
        },
    }
}
