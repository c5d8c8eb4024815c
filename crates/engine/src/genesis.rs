//! InitChain: the state of version 0, from the genesis document.

use std::collections::BTreeMap;

use clearnode_num::{Money, Ratio};
use clearnode_proto::state::v1 as pb;
use clearnode_types::genesis::{
    parse_public_key, Genesis, GenesisError, GenesisLiquidation, GenesisMarketBreaker,
    GenesisSystemBreaker,
};
use prost::Message;

use crate::block::{Engine, Write};
use crate::breakers::{MarketBreaker, MarketBreakerParams, SystemBreakerParams};
use crate::margin::regime::{size_tiers, MarketMargin};
use sha2::Digest;

use crate::state::{
    Asset, ChainInfo, ConsensusValidator, InsuranceFund, Ledger, LiquidationParams, Market, Params,
    State, SystemTotals, Venue,
};
use crate::{codec, keys};

fn ppm(value: u64) -> Ratio {
    Ratio::from_raw(i128::from(value))
}

fn liquidation_params(l: &GenesisLiquidation) -> LiquidationParams {
    LiquidationParams {
        fraction_per_block: ppm(l.fraction_per_block_ppm),
        min_notional: l.min_notional,
        accounts_per_block_max: l.accounts_per_block_max,
        deadline_blocks: l.deadline_blocks,
        spread_to_maintenance: ppm(l.spread_to_maintenance_ppm),
        fee_base: ppm(l.fee_base_ppm),
        fee_convex: ppm(l.fee_convex_ppm),
        fee_per_block: ppm(l.fee_per_block_ppm),
        fee_max: ppm(l.fee_max_ppm),
        liquidator_share: ppm(l.liquidator_share_ppm),
        adl_profit_share_max: ppm(l.adl_profit_share_max_ppm),
    }
}

fn market_breaker_params(b: &GenesisMarketBreaker) -> MarketBreakerParams {
    MarketBreakerParams {
        price_band: ppm(b.price_band_ppm),
        limit_blocks: b.limit_blocks,
        pause_blocks: b.pause_blocks,
        reopen_blocks: b.reopen_blocks,
        reopen_margin_multiplier: ppm(b.reopen_margin_multiplier_ppm),
        reference_window_blocks: b.reference_window_blocks,
        open_interest_cap: b.open_interest_cap,
        venue_open_interest_cap: b.venue_open_interest_cap,
        stale_after_blocks: b.stale_after_blocks,
        volatile_move: ppm(b.volatile_move_ppm),
    }
}

fn system_breaker_params(b: &GenesisSystemBreaker) -> SystemBreakerParams {
    SystemBreakerParams {
        fund_drawdown_max: ppm(b.fund_drawdown_max_ppm),
        fund_drawdown_window_blocks: b.fund_drawdown_window_blocks,
        coverage_stress_move: ppm(b.coverage_stress_move_ppm),
        tightened_margin_multiplier: ppm(b.tightened_margin_multiplier_ppm),
        fresh_price_blocks: b.fresh_price_blocks,
    }
}

impl Engine {
    /// The engine at genesis and the writes of version 0.
    pub fn init_chain(
        chain_id: &str,
        genesis: &Genesis,
        time_seconds: i64,
        time_nanos: i32,
    ) -> Result<(Engine, Vec<Write>), GenesisError> {
        genesis.validate()?;
        let mut state = State {
            chain: ChainInfo {
                chain_id: chain_id.to_string(),
                height: 0,
                time_seconds,
                time_nanos,
            },
            params: Params {
                report_entries_max: genesis.params.report_entries_max,
                position_size_max: genesis.params.position_size_max,
                liquidation: liquidation_params(&genesis.params.liquidation),
                insurance_fund_initial: genesis.params.insurance_fund_initial,
                instruction_ack_blocks: genesis.params.instruction_ack_blocks,
                governance: crate::governance::GovernanceParams {
                    voting_blocks: genesis.params.governance.voting_blocks,
                    timelock_blocks: genesis.params.governance.timelock_blocks,
                    queue_blocks_max: genesis.params.governance.queue_blocks_max,
                },
            },
            custodian: parse_public_key(&genesis.custodian.public_key)?,
            markets: BTreeMap::new(),
            assets: BTreeMap::new(),
            venues: BTreeMap::new(),
            sequences: BTreeMap::new(),
            accounts: BTreeMap::new(),
            ledgers: BTreeMap::new(),
            market_totals: BTreeMap::new(),
            system: SystemTotals::default(),
            indexes: Default::default(),
            liquidation_orders: BTreeMap::new(),
            insurance_fund: InsuranceFund {
                balance: genesis.params.insurance_fund_initial,
                ..InsuranceFund::default()
            },
            isolated_funds: BTreeMap::new(),
            venue_settlements: BTreeMap::new(),
            validators: BTreeMap::new(),
            breakers: Default::default(),
            proposals: BTreeMap::new(),
            governance: Default::default(),
        };
        for m in &genesis.markets {
            let base = ppm(m.initial_margin_ppm);
            let tiers: Vec<(Money, Ratio)> = m
                .size_tiers
                .iter()
                .map(|t| (t.notional_floor, ppm(t.initial_margin_ppm)))
                .collect();
            let market = Market {
                id: m.id.clone(),
                oracle_price: m.oracle_price,
                initial_margin: base,
                maintenance_fraction: ppm(m.maintenance_fraction_ppm),
                basis: ppm(m.basis_ppm),
                open_interest_lower_cap: m.open_interest_lower_cap,
                open_interest_upper_cap: m.open_interest_upper_cap,
                size_tiers: size_tiers(base, &tiers).map_err(|e| GenesisError(e.to_string()))?,
                volatility_decay: ppm(m.volatility_decay_ppm),
                volatility_reference_ppm: i128::from(m.volatility_reference_ppm),
                margin_phase_in_blocks: m.margin_phase_in_blocks,
                margin_rise_per_block_max: ppm(m.margin_rise_per_block_max_ppm),
                insurance_payout_per_block_max: m.insurance_payout_per_block_max,
                isolated: m.isolated,
                margin: MarketMargin {
                    target: base,
                    current: base,
                    phase_target: base,
                    ..MarketMargin::default()
                },
            };
            state.markets.insert(m.id.clone(), market);
            if m.isolated {
                let fund = InsuranceFund {
                    balance: m.isolated_insurance_fund,
                    ..InsuranceFund::default()
                };
                state.isolated_funds.insert(m.id.clone(), fund);
            }
            state.market_totals.insert(m.id.clone(), Default::default());
            let breaker = MarketBreaker::new(market_breaker_params(&m.breaker), m.oracle_price);
            state.breakers.markets.insert(m.id.clone(), breaker);
        }
        state.breakers.system.params = system_breaker_params(&genesis.params.system_breaker);
        for a in &genesis.assets {
            let asset = Asset {
                id: a.id.clone(),
                oracle_price: a.oracle_price,
                haircut: ppm(a.haircut_ppm),
            };
            state.assets.insert(a.id.clone(), asset);
            state.ledgers.insert(a.id.clone(), Ledger::default());
        }
        for v in &genesis.venues {
            let venue = Venue {
                id: v.id.clone(),
                public_key: parse_public_key(&v.public_key)?,
                active: v.active,
                acknowledged_height: 0,
                unacknowledged_since: 0,
                last_instruction_height: 0,
                delinquent: false,
            };
            state.venues.insert(v.id.clone(), venue);
            state.venue_settlements.insert(v.id.clone(), Money::ZERO);
        }
        let engine = Engine { state, block: None };
        let writes = engine
            .genesis_writes()
            .map_err(|e| GenesisError(e.to_string()))?;
        Ok((engine, writes))
    }

    /// Records CometBFT's validator set (InitChain's validators, by address);
    /// returns its write.
    pub fn set_validators(
        &mut self,
        validators: impl IntoIterator<Item = ([u8; 32], u64)>,
    ) -> Write {
        self.state.validators = validators
            .into_iter()
            .map(|(public_key, power)| {
                let digest = sha2::Sha256::digest(public_key);
                let mut address = [0u8; 20];
                address.copy_from_slice(&digest[..20]);
                (address, ConsensusValidator { public_key, power })
            })
            .collect();
        let value = codec::validators_to_pb(&self.state.validators).encode_to_vec();
        (keys::validators(), Some(value))
    }

    fn genesis_writes(&self) -> Result<Vec<Write>, crate::EngineError> {
        let state = &self.state;
        let invariant = |e: codec::DecodeError| crate::EngineError::Invariant(e.to_string());
        let mut writes: Vec<Write> = vec![
            (
                keys::chain_info(),
                Some(codec::chain_info_to_pb(&state.chain).encode_to_vec()),
            ),
            (
                keys::params(),
                Some(
                    codec::params_to_pb(&state.params)
                        .map_err(invariant)?
                        .encode_to_vec(),
                ),
            ),
            (
                keys::insurance_fund(),
                Some(codec::fund_to_pb(&state.insurance_fund).encode_to_vec()),
            ),
            (
                keys::custodian(),
                Some(
                    pb::Custodian {
                        public_key: state.custodian.to_vec(),
                    }
                    .encode_to_vec(),
                ),
            ),
        ];
        for (id, market) in &state.markets {
            let value = codec::market_to_pb(market).map_err(invariant)?;
            writes.push((keys::market(id), Some(value.encode_to_vec())));
            let margin = codec::market_margin_to_pb(market).map_err(invariant)?;
            writes.push((keys::market_margin(id), Some(margin.encode_to_vec())));
            let totals = state.market_totals.get(id).cloned().unwrap_or_default();
            let aggregate = codec::market_aggregate_to_pb(market, &totals)
                .map_err(|e| crate::EngineError::Invariant(e.to_string()))?;
            writes.push((keys::market_aggregate(id), Some(aggregate.encode_to_vec())));
        }
        for (id, fund) in &state.isolated_funds {
            let value = codec::isolated_fund_to_pb(id, fund).encode_to_vec();
            writes.push((keys::isolated_fund(id), Some(value)));
        }
        for (id, asset) in &state.assets {
            let value = codec::asset_to_pb(asset).map_err(invariant)?;
            writes.push((keys::asset(id), Some(value.encode_to_vec())));
            let ledger = codec::ledger_to_pb(id, &Ledger::default()).map_err(invariant)?;
            writes.push((keys::ledger(id), Some(ledger.encode_to_vec())));
        }
        for (id, venue) in &state.venues {
            writes.push((
                keys::venue(id),
                Some(codec::venue_to_pb(venue).encode_to_vec()),
            ));
            let settlement = codec::settlement_to_pb(id, Money::ZERO);
            writes.push((keys::settlement(id), Some(settlement.encode_to_vec())));
        }
        writes.push((keys::system_aggregate(), Some(self.system_aggregate()?)));
        writes.push(self.breaker_write(None)?);
        for id in state.breakers.markets.keys() {
            writes.push(self.breaker_write(Some(id))?);
        }
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(writes)
    }
}
