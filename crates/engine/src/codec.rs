//! Conversions between engine records and their stored encodings
//! (`clearnode.state.v1`). Decimal values are stored as exact decimal
//! strings, so an auditor decodes a proven value without our code.

use clearnode_num::{Money, Quantity, Ratio};
use clearnode_proto::state::v1 as pb;
use clearnode_types::{Address, AssetId, MarketId, VenueId};

mod records;

pub use records::{account_from_bytes, positions_from_bytes, risk_from_bytes};
use records::{AccountView, PositionsView, RiskView};

use crate::margin::regime::{size_tiers, volatility_ppm, MarketMargin};
use crate::margin::{Health, Risk};
use crate::state::{
    Account, Asset, ChainInfo, ConsensusValidator, InsuranceFund, Ledger, LiquidationOrder,
    LiquidationParams, Market, MarketTotals, OrderKey, Params, Position, PositionKey, SystemTotals,
    Venue,
};

/// A stored value that does not decode: the database is corrupt or foreign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {what} is malformed: {detail}")]
pub struct DecodeError {
    /// What was being decoded.
    pub what: &'static str,
    /// Why it failed.
    pub detail: String,
}

mod record;
pub use record::RecordWriter;

pub(crate) fn bad(what: &'static str, detail: impl ToString) -> DecodeError {
    DecodeError {
        what,
        detail: detail.to_string(),
    }
}

pub(crate) fn parse<T: std::str::FromStr>(what: &'static str, text: &str) -> Result<T, DecodeError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| bad(what, format!("{text:?}: {e}")))
}

pub(crate) fn ratio(ppm: u64) -> Ratio {
    Ratio::from_raw(i128::from(ppm))
}

pub(crate) fn ppm(what: &'static str, ratio: Ratio) -> Result<u64, DecodeError> {
    u64::try_from(ratio.raw()).map_err(|_| bad(what, "ratio out of range"))
}

/// Encodes chain info.
pub fn chain_info_to_pb(chain: &ChainInfo) -> pb::ChainInfo {
    pb::ChainInfo {
        chain_id: chain.chain_id.clone(),
        height: chain.height,
        time_seconds: chain.time_seconds,
        time_nanos: chain.time_nanos,
    }
}

/// Decodes chain info.
pub fn chain_info_from_pb(value: pb::ChainInfo) -> ChainInfo {
    ChainInfo {
        chain_id: value.chain_id,
        height: value.height,
        time_seconds: value.time_seconds,
        time_nanos: value.time_nanos,
    }
}

/// Encodes params.
pub fn params_to_pb(params: &Params) -> Result<pb::RiskParams, DecodeError> {
    let l = &params.liquidation;
    Ok(pb::RiskParams {
        report_entries_max: params.report_entries_max,
        position_size_max: params.position_size_max.to_string(),
        liquidation: Some(pb::LiquidationParams {
            fraction_per_block_ppm: ppm("params", l.fraction_per_block)?,
            min_notional: l.min_notional.to_string(),
            accounts_per_block_max: l.accounts_per_block_max,
            deadline_blocks: l.deadline_blocks,
            spread_to_maintenance_ppm: ppm("params", l.spread_to_maintenance)?,
            fee_base_ppm: ppm("params", l.fee_base)?,
            fee_convex_ppm: ppm("params", l.fee_convex)?,
            fee_per_block_ppm: ppm("params", l.fee_per_block)?,
            fee_max_ppm: ppm("params", l.fee_max)?,
            liquidator_share_ppm: ppm("params", l.liquidator_share)?,
            adl_profit_share_max_ppm: ppm("params", l.adl_profit_share_max)?,
        }),
        insurance_fund_initial: params.insurance_fund_initial.to_string(),
        instruction_ack_blocks: params.instruction_ack_blocks,
        governance: Some(crate::governance::codec::params_to_pb(&params.governance)),
    })
}

/// Decodes params.
pub fn params_from_pb(value: pb::RiskParams) -> Result<Params, DecodeError> {
    let l = value
        .liquidation
        .ok_or_else(|| bad("params", "no liquidation parameters"))?;
    Ok(Params {
        report_entries_max: value.report_entries_max,
        position_size_max: parse("params", &value.position_size_max)?,
        liquidation: LiquidationParams {
            fraction_per_block: ratio(l.fraction_per_block_ppm),
            min_notional: parse("params", &l.min_notional)?,
            accounts_per_block_max: l.accounts_per_block_max,
            deadline_blocks: l.deadline_blocks,
            spread_to_maintenance: ratio(l.spread_to_maintenance_ppm),
            fee_base: ratio(l.fee_base_ppm),
            fee_convex: ratio(l.fee_convex_ppm),
            fee_per_block: ratio(l.fee_per_block_ppm),
            fee_max: ratio(l.fee_max_ppm),
            liquidator_share: ratio(l.liquidator_share_ppm),
            adl_profit_share_max: ratio(l.adl_profit_share_max_ppm),
        },
        insurance_fund_initial: parse("params", &value.insurance_fund_initial)?,
        instruction_ack_blocks: value.instruction_ack_blocks,
        governance: crate::governance::codec::params_from_pb(value.governance),
    })
}

/// Encodes a liquidation order.
pub fn order_to_pb(key: &OrderKey, order: &LiquidationOrder) -> pb::LiquidationOrder {
    pb::LiquidationOrder {
        account: key.0.as_bytes().to_vec(),
        market: key.1.to_string(),
        venue: key.2.to_string(),
        quantity: order.quantity.to_string(),
        limit_price: order.limit_price.to_string(),
        side: order.side,
        posted_height: order.posted_height,
        deadline_height: order.deadline_height,
    }
}

/// Decodes a liquidation order.
pub fn order_from_pb(
    value: pb::LiquidationOrder,
) -> Result<(OrderKey, LiquidationOrder), DecodeError> {
    let account = Address::from_slice(&value.account).ok_or_else(|| bad("order", "address"))?;
    Ok((
        (
            account,
            parse("order", &value.market)?,
            parse("order", &value.venue)?,
        ),
        LiquidationOrder {
            quantity: parse("order", &value.quantity)?,
            limit_price: parse("order", &value.limit_price)?,
            side: value.side,
            posted_height: value.posted_height,
            deadline_height: value.deadline_height,
        },
    ))
}

/// Encodes a venue's settlement balance.
pub fn settlement_to_pb(venue: &VenueId, balance: Money) -> pb::VenueSettlement {
    pb::VenueSettlement {
        venue: venue.to_string(),
        balance: balance.to_string(),
    }
}

/// Decodes a venue's settlement balance.
pub fn settlement_from_pb(value: pb::VenueSettlement) -> Result<(VenueId, Money), DecodeError> {
    Ok((
        parse("settlement", &value.venue)?,
        parse("settlement", &value.balance)?,
    ))
}

/// Encodes the insurance fund.
pub fn fund_to_pb(fund: &InsuranceFund) -> pb::InsuranceFund {
    pb::InsuranceFund {
        balance: fund.balance.to_string(),
        inflows: fund.inflows.to_string(),
        payouts: fund.payouts.to_string(),
        adl_collected: fund.adl_collected.to_string(),
        bad_debt_unresolved: fund.bad_debt_unresolved.to_string(),
        market: String::new(),
    }
}

/// Encodes an isolated market's own insurance fund.
pub fn isolated_fund_to_pb(market: &MarketId, fund: &InsuranceFund) -> pb::InsuranceFund {
    pb::InsuranceFund {
        market: market.to_string(),
        ..fund_to_pb(fund)
    }
}

/// Decodes an isolated market's own insurance fund.
pub fn isolated_fund_from_pb(
    value: pb::InsuranceFund,
) -> Result<(MarketId, InsuranceFund), DecodeError> {
    let market = parse("isolated fund", &value.market)?;
    Ok((market, fund_from_pb(value)?))
}

/// Decodes the insurance fund.
pub fn fund_from_pb(value: pb::InsuranceFund) -> Result<InsuranceFund, DecodeError> {
    Ok(InsuranceFund {
        balance: parse("fund", &value.balance)?,
        inflows: parse("fund", &value.inflows)?,
        payouts: parse("fund", &value.payouts)?,
        adl_collected: parse("fund", &value.adl_collected)?,
        bad_debt_unresolved: parse("fund", &value.bad_debt_unresolved)?,
    })
}

/// Encodes a market's listing (parameters and price).
pub fn market_to_pb(market: &Market) -> Result<pb::Market, DecodeError> {
    Ok(pb::Market {
        id: market.id.to_string(),
        oracle_price: market.oracle_price.to_string(),
        initial_margin_ppm: ppm("market", market.initial_margin)?,
        maintenance_fraction_ppm: ppm("market", market.maintenance_fraction)?,
        basis_ppm: ppm("market", market.basis)?,
        open_interest_lower_cap: market.open_interest_lower_cap.to_string(),
        open_interest_upper_cap: market.open_interest_upper_cap.to_string(),
        size_tiers: market
            .size_tiers
            .iter()
            .map(|tier| {
                Ok(pb::SizeTier {
                    notional_floor: tier.notional_floor.to_string(),
                    initial_margin_ppm: ppm("market", tier.initial_margin)?,
                })
            })
            .collect::<Result<_, DecodeError>>()?,
        volatility_decay_ppm: ppm("market", market.volatility_decay)?,
        volatility_reference_ppm: u64::try_from(market.volatility_reference_ppm)
            .map_err(|_| bad("market", "volatility reference out of range"))?,
        margin_phase_in_blocks: market.margin_phase_in_blocks,
        margin_rise_per_block_max_ppm: ppm("market", market.margin_rise_per_block_max)?,
        insurance_payout_per_block_max: market.insurance_payout_per_block_max.to_string(),
        isolated: market.isolated,
    })
}

/// Decodes a market listing; its margin regime is stored apart and starts
/// at the base fraction until it is loaded.
pub fn market_from_pb(value: pb::Market) -> Result<Market, DecodeError> {
    let base = ratio(value.initial_margin_ppm);
    let mut tiers = Vec::with_capacity(value.size_tiers.len());
    for tier in &value.size_tiers {
        tiers.push((
            parse::<Money>("market", &tier.notional_floor)?,
            ratio(tier.initial_margin_ppm),
        ));
    }
    Ok(Market {
        id: parse("market", &value.id)?,
        oracle_price: parse("market", &value.oracle_price)?,
        initial_margin: base,
        maintenance_fraction: ratio(value.maintenance_fraction_ppm),
        basis: ratio(value.basis_ppm),
        open_interest_lower_cap: parse("market", &value.open_interest_lower_cap)?,
        open_interest_upper_cap: parse("market", &value.open_interest_upper_cap)?,
        size_tiers: size_tiers(base, &tiers).map_err(|e| bad("market", e))?,
        volatility_decay: ratio(value.volatility_decay_ppm),
        volatility_reference_ppm: i128::from(value.volatility_reference_ppm),
        margin_phase_in_blocks: value.margin_phase_in_blocks,
        margin_rise_per_block_max: ratio(value.margin_rise_per_block_max_ppm),
        insurance_payout_per_block_max: parse("market", &value.insurance_payout_per_block_max)?,
        isolated: value.isolated,
        margin: MarketMargin {
            target: base,
            current: base,
            phase_target: base,
            ..MarketMargin::default()
        },
    })
}

/// Encodes a market's margin regime.
pub fn market_margin_to_pb(market: &Market) -> Result<pb::MarketMargin, DecodeError> {
    let margin = &market.margin;
    Ok(pb::MarketMargin {
        market: market.id.to_string(),
        volatility_variance: margin.volatility_variance.to_string(),
        volatility_ppm: u64::try_from(volatility_ppm(margin.volatility_variance))
            .map_err(|_| bad("margin", "volatility out of range"))?,
        initial_margin_target_ppm: ppm("margin", margin.target)?,
        initial_margin_current_ppm: ppm("margin", margin.current)?,
        phase_step_ppm: ppm("margin", margin.phase_step)?,
        phase_target_ppm: ppm("margin", margin.phase_target)?,
        updated_height: margin.updated_height,
    })
}

/// Decodes a market's margin regime.
pub fn market_margin_from_pb(
    value: pb::MarketMargin,
) -> Result<(MarketId, MarketMargin), DecodeError> {
    Ok((
        parse("margin", &value.market)?,
        MarketMargin {
            volatility_variance: parse("margin", &value.volatility_variance)?,
            target: ratio(value.initial_margin_target_ppm),
            current: ratio(value.initial_margin_current_ppm),
            phase_step: ratio(value.phase_step_ppm),
            phase_target: ratio(value.phase_target_ppm),
            updated_height: value.updated_height,
        },
    ))
}

/// Encodes an asset.
pub fn asset_to_pb(asset: &Asset) -> Result<pb::CollateralAsset, DecodeError> {
    Ok(pb::CollateralAsset {
        id: asset.id.to_string(),
        oracle_price: asset.oracle_price.to_string(),
        haircut_ppm: ppm("asset", asset.haircut)?,
    })
}

/// Decodes an asset.
pub fn asset_from_pb(value: pb::CollateralAsset) -> Result<Asset, DecodeError> {
    Ok(Asset {
        id: parse("asset", &value.id)?,
        oracle_price: parse("asset", &value.oracle_price)?,
        haircut: ratio(value.haircut_ppm),
    })
}

/// Encodes a venue.
pub fn venue_to_pb(venue: &Venue) -> pb::Venue {
    pb::Venue {
        id: venue.id.to_string(),
        public_key: venue.public_key.to_vec(),
        active: venue.active,
        acknowledged_height: venue.acknowledged_height,
        unacknowledged_since: venue.unacknowledged_since,
        last_instruction_height: venue.last_instruction_height,
        delinquent: venue.delinquent,
    }
}

/// Decodes a venue.
pub fn venue_from_pb(value: pb::Venue) -> Result<Venue, DecodeError> {
    Ok(Venue {
        id: parse("venue", &value.id)?,
        public_key: key32("venue", &value.public_key)?,
        active: value.active,
        acknowledged_height: value.acknowledged_height,
        unacknowledged_since: value.unacknowledged_since,
        last_instruction_height: value.last_instruction_height,
        delinquent: value.delinquent,
    })
}

/// Decodes a 32-byte public key.
pub fn key32(what: &'static str, bytes: &[u8]) -> Result<[u8; 32], DecodeError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| bad(what, "public key is not 32 bytes"))
}

/// Encodes an account's collateral and authorizations.
pub fn account_to_pb(address: &Address, account: &Account) -> pb::Account {
    pb::Account {
        address: address.as_bytes().to_vec(),
        collateral: account
            .collateral
            .iter()
            .map(|(asset, amount)| pb::AssetAmount {
                asset: asset.to_string(),
                amount: amount.to_string(),
            })
            .collect(),
        authorized_venues: account
            .authorized_venues
            .iter()
            .map(ToString::to_string)
            .collect(),
        settled_pnl: account.settled_pnl.to_string(),
        liquidator: account.liquidator,
        liquidating_since: account.liquidating_since,
        isolated_owner: account
            .isolated
            .as_ref()
            .map(|(owner, _)| owner.as_bytes().to_vec())
            .unwrap_or_default(),
        isolated_market: account
            .isolated
            .as_ref()
            .map(|(_, market)| market.to_string())
            .unwrap_or_default(),
    }
}

/// Decodes an account record (positions and risk are stored apart).
pub fn account_from_pb(value: pb::Account) -> Result<(Address, Account), DecodeError> {
    AccountView::of_pb(&value).decode()
}

/// Encodes one position, as it stands inside its account's `Positions`
/// (no account of its own).
pub fn position_to_pb(market: &MarketId, venue: &VenueId, position: &Position) -> pb::Position {
    pb::Position {
        account: Vec::new(),
        market: market.to_string(),
        venue: venue.to_string(),
        size: position.size.to_string(),
        entry_price: position.entry_price.to_string(),
        updated_height: position.updated_height,
    }
}

/// Encodes an account's positions, in key order.
pub fn positions_to_pb<'a>(
    address: &Address,
    positions: impl IntoIterator<Item = (&'a PositionKey, &'a Position)>,
) -> pb::Positions {
    pb::Positions {
        account: address.as_bytes().to_vec(),
        positions: positions
            .into_iter()
            .map(|((market, venue), position)| position_to_pb(market, venue, position))
            .collect(),
    }
}

/// Decodes an account's positions.
pub fn positions_from_pb(
    value: pb::Positions,
) -> Result<(Address, Vec<(PositionKey, Position)>), DecodeError> {
    PositionsView::of_pb(&value).decode()
}

/// The stored health enum.
pub fn health_to_pb(health: Health) -> pb::HealthState {
    match health {
        Health::Healthy => pb::HealthState::Healthy,
        Health::MarginCall => pb::HealthState::MarginCall,
        Health::Liquidating => pb::HealthState::Liquidating,
        Health::Bankrupt => pb::HealthState::Bankrupt,
    }
}

fn health_from_pb(value: i32) -> Result<Health, DecodeError> {
    match pb::HealthState::try_from(value) {
        Ok(pb::HealthState::Healthy) => Ok(Health::Healthy),
        Ok(pb::HealthState::MarginCall) => Ok(Health::MarginCall),
        Ok(pb::HealthState::Liquidating) => Ok(Health::Liquidating),
        Ok(pb::HealthState::Bankrupt) => Ok(Health::Bankrupt),
        _ => Err(bad("risk", format!("health state {value}"))),
    }
}

/// Encodes an account's risk.
pub fn risk_to_pb(address: &Address, risk: &Risk) -> Result<pb::AccountRisk, DecodeError> {
    let free = risk
        .free_collateral()
        .map_err(|e| bad("risk", e.to_string()))?;
    Ok(pb::AccountRisk {
        account: address.as_bytes().to_vec(),
        collateral_value: risk.collateral_value.to_string(),
        unrealized_pnl: risk.unrealized_pnl.to_string(),
        equity: risk.equity.to_string(),
        initial_requirement: risk.initial.to_string(),
        maintenance_requirement: risk.maintenance.to_string(),
        free_collateral: free.to_string(),
        health: health_to_pb(risk.health).into(),
        leverage: risk.leverage.to_string(),
        exposures: risk
            .exposures
            .iter()
            .map(|e| pb::MarketExposure {
                market: e.market.to_string(),
                net_size: e.net_size.to_string(),
                gross_size: e.gross_size.to_string(),
                net_notional: e.net_notional.to_string(),
                unrealized_pnl: e.unrealized_pnl.to_string(),
                initial_requirement: e.initial.to_string(),
                maintenance_requirement: e.maintenance.to_string(),
            })
            .collect(),
        computed_height: risk.computed_height,
    })
}

/// Decodes an account's risk.
pub fn risk_from_pb(value: pb::AccountRisk) -> Result<(Address, Risk), DecodeError> {
    RiskView::of_pb(&value).decode()
}

/// Encodes a market's aggregate at its current price.
pub fn market_aggregate_to_pb(
    market: &Market,
    totals: &MarketTotals,
) -> Result<pb::MarketAggregate, clearnode_num::NumError> {
    let price = market.oracle_price;
    let gross = totals.long.checked_add(totals.short)?;
    let net = totals.net_long.checked_add(totals.net_short)?;
    Ok(pb::MarketAggregate {
        market: market.id.to_string(),
        long_open_interest: totals.long.to_string(),
        short_open_interest: totals.short.to_string(),
        net_long_open_interest: totals.net_long.to_string(),
        net_short_open_interest: totals.net_short.to_string(),
        gross_notional: gross
            .notional(price, clearnode_num::Rounding::Ceil)?
            .to_string(),
        net_notional: net
            .notional(price, clearnode_num::Rounding::Ceil)?
            .to_string(),
        venues: totals
            .venues
            .iter()
            .map(|(venue, interest)| pb::VenueOpenInterest {
                venue: venue.to_string(),
                long_size: interest.long.to_string(),
                short_size: interest.short.to_string(),
            })
            .collect(),
        accounts_with_position: totals.accounts_with_position,
        oracle_price: price.to_string(),
        concentration: Some(concentration_to_pb(&totals.holders)?),
    })
}

/// Encodes how concentrated some holdings are.
pub fn concentration_to_pb(
    holdings: &crate::aggregates::Holdings,
) -> Result<pb::Concentration, clearnode_num::NumError> {
    Ok(pb::Concentration {
        top1_share_ppm: holdings.top_share_ppm(1)?,
        top5_share_ppm: holdings.top_share_ppm(5)?,
        top10_share_ppm: holdings.top_share_ppm(10)?,
        hhi_ppm: holdings.hhi_ppm()?,
        holders: u64::try_from(holdings.ranked.len())
            .map_err(|_| clearnode_num::NumError::Overflow)?,
    })
}

/// Encodes the system aggregate from the market aggregates' notionals.
pub fn system_aggregate_to_pb(
    system: &SystemTotals,
    gross_notional: Money,
    net_notional: Money,
    collateral_totals: Vec<pb::AssetAmount>,
    height: u64,
) -> Result<pb::SystemAggregate, clearnode_num::NumError> {
    let leverage = if system.equity_positive.is_positive() {
        net_notional.ratio_to(system.equity_positive, clearnode_num::Rounding::Ceil)?
    } else {
        Ratio::ZERO
    };
    Ok(pb::SystemAggregate {
        gross_notional: gross_notional.to_string(),
        net_notional: net_notional.to_string(),
        total_equity: system.equity_positive.to_string(),
        aggregate_leverage: leverage.to_string(),
        accounts: Some(pb::HealthCounts {
            healthy: system.health.healthy,
            margin_call: system.health.margin_call,
            liquidating: system.health.liquidating,
            bankrupt: system.health.bankrupt,
        }),
        accounts_total: system.accounts,
        collateral_totals,
        height,
        concentration: Some(concentration_to_pb(&system.holders)?),
    })
}

/// Encodes a ledger.
pub fn ledger_to_pb(asset: &AssetId, ledger: &Ledger) -> Result<pb::CollateralLedger, DecodeError> {
    let balance = ledger
        .deposited
        .checked_sub(ledger.withdrawn)
        .map_err(|e| bad("ledger", e))?;
    Ok(pb::CollateralLedger {
        asset: asset.to_string(),
        deposited: ledger.deposited.to_string(),
        withdrawn: ledger.withdrawn.to_string(),
        balance: balance.to_string(),
    })
}

/// Decodes a ledger.
pub fn ledger_from_pb(value: pb::CollateralLedger) -> Result<(AssetId, Ledger), DecodeError> {
    Ok((
        parse("ledger", &value.asset)?,
        Ledger {
            deposited: parse::<Quantity>("ledger", &value.deposited)?,
            withdrawn: parse::<Quantity>("ledger", &value.withdrawn)?,
        },
    ))
}

/// Encodes the validator set.
pub fn validators_to_pb(
    validators: &std::collections::BTreeMap<[u8; 20], ConsensusValidator>,
) -> pb::ValidatorSet {
    pb::ValidatorSet {
        validators: validators
            .iter()
            .map(|(address, v)| pb::ConsensusValidator {
                address: address.to_vec(),
                public_key: v.public_key.to_vec(),
                power: v.power,
            })
            .collect(),
    }
}

/// Decodes the validator set.
pub fn validators_from_pb(
    value: pb::ValidatorSet,
) -> Result<std::collections::BTreeMap<[u8; 20], ConsensusValidator>, DecodeError> {
    let mut validators = std::collections::BTreeMap::new();
    for v in value.validators {
        let address: [u8; 20] = v
            .address
            .as_slice()
            .try_into()
            .map_err(|_| bad("validators", "an address is 20 bytes"))?;
        validators.insert(
            address,
            ConsensusValidator {
                public_key: key32("validators", &v.public_key)?,
                power: v.power,
            },
        );
    }
    Ok(validators)
}
