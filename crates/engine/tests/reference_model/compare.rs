//! Everything the engine's state says, side by side with the model: each
//! engine record is turned into the model's plain form and compared.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use clearnode_engine::keys;
use clearnode_engine::margin::{Health as EngineHealth, Risk as EngineRisk};
use clearnode_engine::state::{Account, State};
use clearnode_proto::state::v1 as pb;
use clearnode_types::Address;
use prost::Message;

use super::fixed::{decimal, mul_div, notional, Round, PPM};

use super::breakers::{Band, Status, System};
use super::margin::{Exposure, Health, Risk};
use super::{
    Acknowledgements, Fund, Ledger, MarketTotals, Model, Order, Position, Regime, SystemTotals,
};

/// Differences found, as readable lines.
#[derive(Default)]
struct Differences(Vec<String>);

impl Differences {
    fn check<T: PartialEq + Debug>(&mut self, what: impl FnOnce() -> String, engine: T, model: T) {
        if engine != model {
            self.0.push(format!(
                "{}:\n    engine {engine:?}\n    model  {model:?}",
                what()
            ));
        }
    }
}

/// The differences between the engine's state and the model's, empty when
/// they agree on everything compared.
pub fn differences(engine: &State, model: &Model) -> Vec<String> {
    let mut found = Differences::default();
    found.check(|| "height".into(), engine.chain.height, model.height);
    compare_listings(&mut found, engine, model);
    let sequences: BTreeMap<Address, u64> = engine.sequences.clone();
    found.check(|| "sequences".into(), sequences, model.sequences.clone());
    let engine_accounts: BTreeSet<&Address> = engine.accounts.keys().collect();
    found.check(
        || "accounts".into(),
        engine_accounts,
        model.accounts.keys().collect(),
    );
    for (address, account) in &engine.accounts {
        if let Some(expected) = model.accounts.get(address) {
            compare_account(&mut found, address, account, expected, model);
        }
    }
    compare_aggregates(&mut found, engine, model);
    compare_liquidation(&mut found, engine, model);
    compare_breakers(&mut found, engine, model);
    found.0
}

/// Every market's breaker and the system breaker, in the model's form.
fn compare_breakers(found: &mut Differences, engine: &State, model: &Model) {
    use clearnode_engine::breakers::{MarketStatus, PauseCause, SystemCause};
    for (id, market) in &model.markets {
        let actual = &engine.breakers.markets[&id.parse().expect("id")];
        let status = match actual.status {
            MarketStatus::Open => Status::Open,
            MarketStatus::Limit => Status::Limit,
            MarketStatus::Paused(PauseCause::PriceBand) => Status::Paused,
            MarketStatus::Paused(_) => Status::Halted,
            MarketStatus::Reopening => Status::Reopening,
        };
        let band = Band {
            status,
            since: actual.status_since,
            reference: actual.reference_price.map_or(0, |p| p.raw()),
            reference_height: actual.reference_height,
            last_priced_height: actual.last_priced_height,
            last_move_ppm: actual.last_move.raw(),
            stale: actual.validity.stale,
            too_volatile: actual.validity.too_volatile,
            too_few_reporters: actual.validity.too_few_reporters,
            capped: actual.open_interest_capped,
            venues_capped: actual.venues_capped.iter().map(|v| v.to_string()).collect(),
        };
        found.check(
            || format!("market {id} breaker"),
            band,
            market.breaker.clone(),
        );
    }
    let actual = &engine.breakers.system;
    let system = System {
        tripped: actual.tripped,
        tripped_since: actual.tripped_since,
        causes: actual
            .causes
            .iter()
            .map(|cause| match cause {
                SystemCause::FundDrawdown => "drawdown",
                SystemCause::FundCoverage => "coverage",
            })
            .collect(),
        history: actual
            .fund_history
            .iter()
            .map(|(height, balance)| (*height, balance.raw()))
            .collect(),
        high: actual.fund_high.raw(),
        drawdown: actual.fund_drawdown.raw(),
        stress_top_two: actual.stress_loss_top_two.raw(),
        coverage: actual.coverage.map(|c| c.raw()),
    };
    found.check(|| "system breaker".into(), system, model.system.clone());
}

fn compare_listings(found: &mut Differences, engine: &State, model: &Model) {
    for (id, market) in &model.markets {
        let actual = &engine.markets[&id.parse().expect("id")];
        found.check(
            || format!("market {id} price"),
            actual.oracle_price.raw(),
            market.price,
        );
        let regime = Regime {
            variance: actual.margin.volatility_variance,
            target: actual.margin.target.raw(),
            current: actual.margin.current.raw(),
            phase_step: actual.margin.phase_step.raw(),
            phase_target: actual.margin.phase_target.raw(),
        };
        found.check(|| format!("market {id} regime"), regime, market.regime);
    }
    for (id, asset) in &model.assets {
        let actual = &engine.assets[&id.parse().expect("id")];
        found.check(
            || format!("asset {id} price"),
            actual.oracle_price.raw(),
            asset.price,
        );
    }
    for (id, venue) in &model.venues {
        let actual = &engine.venues[&id.parse().expect("id")];
        let acknowledgements = Acknowledgements {
            acknowledged_height: actual.acknowledged_height,
            unacknowledged_since: actual.unacknowledged_since,
            last_instruction_height: actual.last_instruction_height,
            delinquent: actual.delinquent,
        };
        found.check(
            || format!("venue {id} acknowledgements"),
            acknowledgements,
            venue.acknowledgements,
        );
    }
    let ledgers: BTreeMap<String, Ledger> = engine
        .ledgers
        .iter()
        .map(|(id, l)| {
            let ledger = Ledger {
                deposited: l.deposited.raw(),
                withdrawn: l.withdrawn.raw(),
            };
            (id.to_string(), ledger)
        })
        .collect();
    found.check(|| "ledgers".into(), ledgers, model.ledgers.clone());
}

fn compare_account(
    found: &mut Differences,
    address: &Address,
    account: &Account,
    expected: &super::AccountModel,
    model: &Model,
) {
    let who = address.to_string();
    let short = &who[..8];
    let collateral: BTreeMap<String, i128> = account
        .collateral
        .iter()
        .map(|(asset, amount)| (asset.to_string(), amount.raw()))
        .collect();
    found.check(
        || format!("account {short} collateral"),
        collateral,
        expected.collateral.clone(),
    );
    let venues: BTreeSet<String> = account
        .authorized_venues
        .iter()
        .map(ToString::to_string)
        .collect();
    found.check(
        || format!("account {short} authorized venues"),
        venues,
        expected.authorized_venues.clone(),
    );
    let positions: BTreeMap<(String, String), Position> = account
        .positions
        .iter()
        .map(|((market, venue), p)| {
            let position = Position {
                size: p.size.raw(),
                entry_price: p.entry_price.raw(),
                updated_height: p.updated_height,
            };
            ((market.to_string(), venue.to_string()), position)
        })
        .collect();
    found.check(
        || format!("account {short} positions"),
        positions,
        expected.positions.clone(),
    );
    found.check(
        || format!("account {short} settled PnL"),
        account.settled_pnl.raw(),
        expected.settled_pnl,
    );
    found.check(
        || format!("account {short} liquidator"),
        account.liquidator,
        expected.liquidator,
    );
    found.check(
        || format!("account {short} liquidating since"),
        account.liquidating_since,
        expected.liquidating_since,
    );
    found.check(
        || format!("account {short} risk"),
        Some(risk_of(&account.risk)),
        model.risks.get(address).cloned(),
    );
}

fn health_of(health: EngineHealth) -> Health {
    match health {
        EngineHealth::Healthy => Health::Healthy,
        EngineHealth::MarginCall => Health::MarginCall,
        EngineHealth::Liquidating => Health::Liquidating,
        EngineHealth::Bankrupt => Health::Bankrupt,
    }
}

fn risk_of(risk: &EngineRisk) -> Risk {
    Risk {
        collateral_value: risk.collateral_value.raw(),
        unrealized_pnl: risk.unrealized_pnl.raw(),
        equity: risk.equity.raw(),
        initial: risk.initial.raw(),
        maintenance: risk.maintenance.raw(),
        health: health_of(risk.health),
        net_notional: risk.net_notional.raw(),
        leverage_ppm: risk.leverage.raw(),
        exposures: risk
            .exposures
            .iter()
            .map(|e| Exposure {
                market: e.market.to_string(),
                net_size: e.net_size.raw(),
                gross_size: e.gross_size.raw(),
                net_notional: e.net_notional.raw(),
                unrealized_pnl: e.unrealized_pnl.raw(),
                initial: e.initial.raw(),
                maintenance: e.maintenance.raw(),
            })
            .collect(),
    }
}

fn compare_aggregates(found: &mut Differences, engine: &State, model: &Model) {
    for (id, expected) in model.market_totals() {
        let actual = engine
            .market_totals
            .get(&id.parse().expect("id"))
            .cloned()
            .unwrap_or_default();
        let totals = MarketTotals {
            long: actual.long.raw(),
            short: actual.short.raw(),
            net_long: actual.net_long.raw(),
            net_short: actual.net_short.raw(),
            venues: actual
                .venues
                .iter()
                .map(|(venue, i)| (venue.to_string(), (i.long.raw(), i.short.raw())))
                .collect(),
            accounts_with_position: actual.accounts_with_position,
        };
        found.check(|| format!("market {id} totals"), totals, expected);
    }
    // Concentration's ranked holders, against a walk over every account.
    for (id, expected) in model.market_holders() {
        let actual = engine
            .market_totals
            .get(&id.parse().expect("id"))
            .map(|t| t.holders.ranked.clone())
            .unwrap_or_default();
        found.check(|| format!("market {id} holders"), actual, expected);
    }
    found.check(
        || "system holders".into(),
        engine.system.holders.ranked.clone(),
        model.system_holders(),
    );
    let health = &engine.system.health;
    let system = SystemTotals {
        equity_positive: engine.system.equity_positive.raw(),
        health: [
            health.healthy,
            health.margin_call,
            health.liquidating,
            health.bankrupt,
        ],
        accounts: engine.system.accounts,
    };
    found.check(|| "system totals".into(), system, model.system_totals());
    compare_indexes(found, engine, model);
}

/// The engine's derived indexes are what a walk over the accounts gives.
fn compare_indexes(found: &mut Differences, engine: &State, model: &Model) {
    let mut market_holders: BTreeMap<String, BTreeSet<Address>> = BTreeMap::new();
    let mut asset_holders: BTreeMap<String, BTreeSet<Address>> = BTreeMap::new();
    for (address, account) in &model.accounts {
        for (market, _venue) in account.positions.keys() {
            market_holders
                .entry(market.clone())
                .or_default()
                .insert(*address);
        }
        for asset in account.collateral.keys() {
            asset_holders
                .entry(asset.clone())
                .or_default()
                .insert(*address);
        }
    }
    let by_risk: BTreeSet<(i128, Address)> = model
        .risks
        .iter()
        .filter(|(address, _)| **address != super::BACKSTOP)
        .filter_map(|(address, risk)| risk.margin_ratio_ppm().map(|ratio| (ratio, *address)))
        .collect();
    let indexes = &engine.indexes;
    let engine_markets: BTreeMap<String, BTreeSet<Address>> = indexes
        .market_holders
        .iter()
        .map(|(id, set)| (id.to_string(), set.clone()))
        .collect();
    let engine_assets: BTreeMap<String, BTreeSet<Address>> = indexes
        .asset_holders
        .iter()
        .map(|(id, set)| (id.to_string(), set.clone()))
        .collect();
    found.check(|| "market holders".into(), engine_markets, market_holders);
    found.check(|| "asset holders".into(), engine_assets, asset_holders);
    found.check(|| "risk index".into(), indexes.by_risk.clone(), by_risk);
}

fn compare_liquidation(found: &mut Differences, engine: &State, model: &Model) {
    let orders: BTreeMap<(Address, String, String), Order> = engine
        .liquidation_orders
        .iter()
        .map(|((address, market, venue), o)| {
            let order = Order {
                quantity: o.quantity.raw(),
                limit_price: o.limit_price.raw(),
                side: o.side,
                posted_height: o.posted_height,
                deadline_height: o.deadline_height,
            };
            ((*address, market.to_string(), venue.to_string()), order)
        })
        .collect();
    found.check(|| "liquidation orders".into(), orders, model.orders.clone());
    let fund = Fund {
        balance: engine.insurance_fund.balance.raw(),
        inflows: engine.insurance_fund.inflows.raw(),
        payouts: engine.insurance_fund.payouts.raw(),
        adl_collected: engine.insurance_fund.adl_collected.raw(),
        bad_debt_unresolved: engine.insurance_fund.bad_debt_unresolved.raw(),
    };
    found.check(|| "insurance fund".into(), fund, model.fund);
    let settlements: BTreeMap<String, i128> = engine
        .venue_settlements
        .iter()
        .map(|(venue, balance)| (venue.to_string(), balance.raw()))
        .collect();
    found.check(
        || "venue settlements".into(),
        settlements,
        model.settlements.clone(),
    );
}

/// The aggregates auditors read, as committed (decoded from the engine's
/// writes), against the model's: open interest, gross and net notional,
/// total equity, aggregate leverage, health counts and collateral totals.
/// A record the engine forgot to rewrite shows up here.
pub fn committed_differences(
    committed: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    model: &Model,
) -> Vec<String> {
    let mut found = Differences::default();
    let mut gross_total = 0;
    let mut net_total = 0;
    for (id, totals) in model.market_totals() {
        let expected = market_aggregate(model, &id, &totals);
        gross_total += notional(
            totals.long + totals.short,
            model.markets[&id].price,
            Round::Up,
        );
        net_total += notional(
            totals.net_long + totals.net_short,
            model.markets[&id].price,
            Round::Up,
        );
        let key = keys::market_aggregate(&id.parse().expect("id"));
        let stored = committed(&key).map(|bytes| {
            pb::MarketAggregate::decode(bytes.as_slice()).expect("a market aggregate")
        });
        found.check(
            || format!("committed aggregate of {id}"),
            stored,
            Some(expected),
        );
    }
    let expected = system_aggregate(model, gross_total, net_total);
    let stored = committed(&keys::system_aggregate())
        .map(|bytes| pb::SystemAggregate::decode(bytes.as_slice()).expect("a system aggregate"));
    found.check(
        || "committed system aggregate".into(),
        stored,
        Some(expected),
    );
    found.0
}

fn market_aggregate(model: &Model, id: &str, totals: &MarketTotals) -> pb::MarketAggregate {
    let price = model.markets[id].price;
    let size = |raw: i128| decimal(raw, 9);
    pb::MarketAggregate {
        market: id.to_string(),
        long_open_interest: size(totals.long),
        short_open_interest: size(totals.short),
        net_long_open_interest: size(totals.net_long),
        net_short_open_interest: size(totals.net_short),
        gross_notional: decimal(notional(totals.long + totals.short, price, Round::Up), 6),
        net_notional: decimal(
            notional(totals.net_long + totals.net_short, price, Round::Up),
            6,
        ),
        venues: totals
            .venues
            .iter()
            .map(|(venue, (long, short))| pb::VenueOpenInterest {
                venue: venue.clone(),
                long_size: size(*long),
                short_size: size(*short),
            })
            .collect(),
        accounts_with_position: totals.accounts_with_position,
        oracle_price: decimal(price, 9),
        concentration: Some(super::aggregates::concentration(
            &model.market_holders()[id],
        )),
    }
}

/// The system aggregate; its notionals are the sums of the markets'
/// (each rounded up on its own).
fn system_aggregate(model: &Model, gross: i128, net: i128) -> pb::SystemAggregate {
    let system = model.system_totals();
    let leverage = if system.equity_positive > 0 {
        mul_div(net, PPM, system.equity_positive, Round::Up)
    } else {
        0
    };
    let [healthy, margin_call, liquidating, bankrupt] = system.health;
    pb::SystemAggregate {
        gross_notional: decimal(gross, 6),
        net_notional: decimal(net, 6),
        total_equity: decimal(system.equity_positive, 6),
        aggregate_leverage: decimal(leverage, 6),
        accounts: Some(pb::HealthCounts {
            healthy,
            margin_call,
            liquidating,
            bankrupt,
        }),
        accounts_total: system.accounts,
        collateral_totals: model
            .ledgers
            .iter()
            .map(|(asset, ledger)| pb::AssetAmount {
                asset: asset.clone(),
                amount: decimal(ledger.deposited - ledger.withdrawn, 9),
            })
            .collect(),
        height: model.height,
        concentration: Some(super::aggregates::concentration(&model.system_holders())),
    }
}
