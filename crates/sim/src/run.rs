//! Plays a scenario: set-up blocks (funding, authorizations, positions),
//! then one block per step of the price path, with liquidator bots taking
//! over what the ladder offers, up to their capacity per block.

use std::collections::BTreeMap;

use clearnode_engine::{BlockHeader, Engine, PriceTarget, PriceUpdate};
use clearnode_num::{Money, Price, Quantity, Rounding};
use clearnode_types::signer::Signer;
use clearnode_types::{Address, TxCode};

use crate::report::{BlockMetrics, SimReport, Summary};
use crate::scenario::Scenario;
use crate::world::{self, CHAIN_ID, MARKETS, VENUES};
use crate::SimError;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The scenario.
    pub scenario: Scenario,
    /// Trader accounts (liquidators and the scenario's protagonist come on top).
    pub accounts: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// Run with the devnet's circuit breakers (price bands, validity
    /// guards, the system breaker).
    pub breakers: bool,
}

/// Liquidator bots.
const LIQUIDATORS: u32 = 5;
/// Notional the bots take over per block, all together (USD).
const BOT_CAPACITY_PER_BLOCK_USD: i64 = 3_000_000;
/// Share of traders with collateral and no position: they must never pay.
const BYSTANDER_PERCENT: u64 = 5;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

struct Sim {
    engine: Engine,
    custodian: Signer,
    venues: Vec<Signer>,
    traders: Vec<Signer>,
    liquidators: Vec<Signer>,
    protagonist: Option<Signer>,
    bystanders: Vec<Address>,
    random: XorShift,
    time: i64,
}

fn engine_error(e: impl std::fmt::Display) -> SimError {
    SimError::Engine(e.to_string())
}

fn decimal_milli(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let value = value.unsigned_abs();
    format!("{sign}{}.{:03}", value / 1000, value % 1000)
}

impl Sim {
    /// Runs one block; returns the result code of each transaction.
    fn block(&mut self, prices: &[PriceUpdate], txs: &[Vec<u8>]) -> Result<Vec<TxCode>, SimError> {
        let height = self.engine.height() + 1;
        self.time += 1;
        let header = BlockHeader {
            height,
            time_seconds: self.time,
            time_nanos: 0,
        };
        self.engine
            .begin_block(header, prices)
            .map_err(engine_error)?;
        let mut codes = Vec::with_capacity(txs.len());
        for tx in txs {
            codes.push(self.engine.deliver_tx(tx).map_err(engine_error)?.code);
        }
        self.engine.end_block().map_err(engine_error)?;
        Ok(codes)
    }

    /// Resynchronises signers after refusals (a refusal consumes no sequence).
    fn resync(&mut self) {
        let state = self.engine.state();
        let all = std::iter::once(&mut self.custodian)
            .chain(self.venues.iter_mut())
            .chain(self.traders.iter_mut())
            .chain(self.liquidators.iter_mut())
            .chain(self.protagonist.iter_mut());
        for signer in all {
            signer.sequence = state.next_sequence(&signer.address());
        }
    }
}

fn start_price(market: &str) -> i64 {
    MARKETS.iter().find(|m| m.0 == market).map_or(1, |m| m.1)
}

fn prices_at(scenario: Scenario, block: u32) -> Result<Vec<PriceUpdate>, SimError> {
    MARKETS
        .iter()
        .map(|&(market, start, ..)| {
            let permille = scenario.price_permille(market, block).max(1);
            let raw = i128::from(start) * i128::from(permille) * 1_000_000;
            Ok(PriceUpdate {
                target: PriceTarget::Market(market.parse().map_err(engine_error)?),
                price: Price::from_raw(raw).map_err(engine_error)?,
            })
        })
        .collect()
}

/// Runs a scenario; `progress(done, total)` is called after every block.
pub fn run(config: &SimConfig, progress: &mut dyn FnMut(u32, u32)) -> Result<SimReport, SimError> {
    let seed = config.seed;
    let genesis = world::genesis(seed, config.breakers).map_err(SimError::Engine)?;
    let (engine, _) = Engine::init_chain(CHAIN_ID, &genesis, 0, 0).map_err(engine_error)?;
    let signer = |role: &str, index: u32| Signer::new(world::key(seed, role, index), CHAIN_ID);
    let mut sim = Sim {
        engine,
        custodian: signer("custodian", 0),
        venues: (0..3).map(|i| signer("venue", i)).collect(),
        traders: (0..config.accounts).map(|i| signer("trader", i)).collect(),
        liquidators: (0..LIQUIDATORS).map(|i| signer("liquidator", i)).collect(),
        protagonist: matches!(config.scenario, Scenario::Whale | Scenario::ThinPump)
            .then(|| signer("protagonist", 0)),
        bystanders: Vec::new(),
        random: XorShift(seed | 1),
        time: 0,
    };
    set_up(&mut sim, config)?;
    let total = config.scenario.blocks();
    let mut blocks = Vec::new();
    let fund_start = sim.engine.state().insurance_fund.balance;
    let bystanders_before = bystander_holdings(&sim);
    for step in 0..total {
        let metrics = step_block(&mut sim, config.scenario, step)?;
        blocks.push(metrics);
        progress(step + 1, total);
    }
    let bystanders_after = bystander_holdings(&sim);
    let paid = bystanders_before
        .iter()
        .filter(|(address, before)| bystanders_after.get(address) != Some(before))
        .count();
    Ok(SimReport::new(
        config,
        blocks,
        Summary::new(fund_start, paid),
    ))
}

/// What bystanders hold: collateral and settled PnL; it must never change.
fn bystander_holdings(sim: &Sim) -> BTreeMap<Address, (Vec<(String, Quantity)>, Money)> {
    sim.bystanders
        .iter()
        .filter_map(|address| {
            let account = sim.engine.state().accounts.get(address)?;
            let collateral = account
                .collateral
                .iter()
                .map(|(a, q)| (a.to_string(), *q))
                .collect();
            Some((*address, (collateral, account.settled_pnl)))
        })
        .collect()
}

fn set_up(sim: &mut Sim, config: &SimConfig) -> Result<(), SimError> {
    // Funding, authorizations, liquidator registrations.
    let mut txs = Vec::new();
    for index in 0..sim.traders.len() {
        let deposit = 10_000 + sim.random.below(90_000);
        let address = sim.traders[index].address();
        txs.push(sim.custodian.deposit(address, "USDC", &deposit.to_string()));
        for venue in VENUES {
            txs.push(sim.traders[index].authorize(venue, true));
        }
    }
    for liquidator in &mut sim.liquidators {
        let address = liquidator.address();
        txs.push(sim.custodian.deposit(address, "USDC", "20000000"));
        for venue in VENUES {
            txs.push(liquidator.authorize(venue, true));
        }
        txs.push(liquidator.register_liquidator());
    }
    if let Some(protagonist) = sim.protagonist.as_mut() {
        let deposit = match config.scenario {
            Scenario::ThinPump => "600000",
            _ => "20000000",
        };
        txs.push(
            sim.custodian
                .deposit(protagonist.address(), "USDC", deposit),
        );
        for venue in VENUES {
            txs.push(protagonist.authorize(venue, true));
        }
    }
    let codes = sim.block(&[], &txs)?;
    if let Some(bad) = codes.iter().find(|c| **c != TxCode::Ok) {
        return Err(SimError::Engine(format!("set-up refused: {bad}")));
    }
    open_positions(sim, config)
}

/// One report per venue per batch of entries.
type Book = BTreeMap<usize, Vec<(Address, String, String, String)>>;

fn open_positions(sim: &mut Sim, config: &SimConfig) -> Result<(), SimError> {
    let mut book: Book = BTreeMap::new();
    let mut crowd_notional: i64 = 0;
    for index in 0..sim.traders.len() {
        let address = sim.traders[index].address();
        let roll = sim.random.below(100);
        if roll < BYSTANDER_PERCENT {
            sim.bystanders.push(address);
            continue;
        }
        let deposit = sim.engine.state().accounts[&address]
            .collateral
            .values()
            .next()
            .map_or(0, |q| q.raw() / 1_000_000_000);
        let deposit = i64::try_from(deposit).unwrap_or(0);
        let leverage = 1 + i64::try_from(sim.random.below(12)).unwrap_or(0);
        let market = if sim.random.below(2) == 0 {
            "BTC-PERP"
        } else {
            "ETH-PERP"
        };
        let price = start_price(market);
        let notional = deposit * leverage;
        crowd_notional += notional;
        let size_milli = notional * 1000 / price;
        if roll < 25 {
            // Cross-venue hedger: long on one venue, most of it short on another.
            book.entry(0).or_default().push((
                address,
                market.into(),
                decimal_milli(size_milli),
                price.to_string(),
            ));
            book.entry(1).or_default().push((
                address,
                market.into(),
                decimal_milli(-size_milli * 4 / 5),
                price.to_string(),
            ));
        } else {
            // The crowd is split evenly long and short, as a venue's book is
            // (the whale and the thin-market holder are the imbalance), so
            // ADL finds the other side of every bankrupt position in it.
            let direction = if sim.random.below(10) < 5 { 1 } else { -1 };
            let venues = 1 + sim.random.below(3) as usize;
            for venue in 0..venues {
                let part = direction * size_milli / i64::try_from(venues).unwrap_or(1);
                book.entry(venue).or_default().push((
                    address,
                    market.into(),
                    decimal_milli(part),
                    price.to_string(),
                ));
            }
        }
    }
    if let Some(protagonist) = sim.protagonist.as_ref() {
        let address = protagonist.address();
        match config.scenario {
            Scenario::Whale => {
                // A third of the crowd's notional, long BTC, split evenly over the venues.
                let size_milli = crowd_notional / 3 * 1000 / start_price("BTC-PERP") / 3;
                for venue in 0..3 {
                    book.entry(venue).or_default().push((
                        address,
                        "BTC-PERP".into(),
                        decimal_milli(size_milli),
                        "60000".into(),
                    ));
                }
            }
            Scenario::ThinPump => {
                // 1,000,000 USD of the thin market, on two venues.
                for venue in 0..2 {
                    book.entry(venue).or_default().push((
                        address,
                        "THIN-PERP".into(),
                        "50000".into(),
                        "10".into(),
                    ));
                }
            }
            _ => {}
        }
    }
    let mut txs = Vec::new();
    for (venue, entries) in book {
        for chunk in entries.chunks(1_000) {
            let entries: Vec<_> = chunk
                .iter()
                .map(|(a, m, s, p)| (*a, m.as_str(), s.as_str(), p.as_str()))
                .collect();
            txs.push(sim.venues[venue].report(VENUES[venue], &entries));
        }
    }
    let codes = sim.block(&[], &txs)?;
    if let Some(bad) = codes.iter().find(|c| **c != TxCode::Ok) {
        return Err(SimError::Engine(format!(
            "opening positions refused: {bad}"
        )));
    }
    Ok(())
}

fn step_block(sim: &mut Sim, scenario: Scenario, step: u32) -> Result<BlockMetrics, SimError> {
    let prices = prices_at(scenario, step)?;
    let mut txs = Vec::new();
    // Liquidator bots take over what the ladder offered, within capacity.
    let mut capacity = Money::from_units(BOT_CAPACITY_PER_BLOCK_USD);
    let mut taken = Money::ZERO;
    let orders: Vec<_> = sim
        .engine
        .state()
        .liquidation_orders
        .iter()
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    let mut offered = Vec::new();
    for ((account, market, venue), order) in orders {
        let notional = order
            .quantity
            .notional(order.limit_price, Rounding::Ceil)
            .map_err(engine_error)?;
        if notional > capacity {
            continue;
        }
        capacity = capacity.checked_sub(notional).map_err(engine_error)?;
        let liquidator = &mut sim.liquidators[offered.len() % LIQUIDATORS as usize];
        offered.push(notional);
        txs.push(liquidator.take_over(
            account,
            market.as_str(),
            venue.as_str(),
            &order.quantity.to_string(),
            &order.limit_price.to_string(),
        ));
    }
    // Venues report the bots' positions closed: they sell what they took on
    // the venue. Every block they also acknowledge what they were told.
    let acknowledged = sim.engine.height();
    for (venue_index, venue) in VENUES.iter().enumerate() {
        let closes: Vec<(Address, String)> = sim
            .liquidators
            .iter()
            .filter_map(|l| {
                sim.engine
                    .state()
                    .accounts
                    .get(&l.address())
                    .map(|a| (l.address(), a))
            })
            .flat_map(|(address, account)| {
                account
                    .positions
                    .keys()
                    .filter(|(_, v)| v.as_str() == *venue)
                    .map(move |(m, _)| (address, m.to_string()))
            })
            .collect();
        let entries: Vec<_> = closes
            .iter()
            .map(|(a, m)| (*a, m.as_str(), "0", ""))
            .collect();
        if !entries.is_empty() || acknowledged > 0 {
            txs.push(sim.venues[venue_index].report_acknowledging(venue, &entries, acknowledged));
        }
    }
    // The thin-market holder withdraws against paper profit at the top.
    let mut withdrawn = Money::ZERO;
    if scenario == Scenario::ThinPump && step == 8 {
        if let Some(protagonist) = sim.protagonist.as_mut() {
            txs.push(protagonist.withdraw("USDC", "600000"));
            withdrawn = Money::from_units(600_000);
        }
    }
    let codes = sim.block(&prices, &txs)?;
    if scenario == Scenario::ThinPump && step == 8 && codes.last() != Some(&TxCode::Ok) {
        withdrawn = Money::ZERO;
    }
    let mut takeovers = 0;
    for (code, notional) in codes.iter().zip(&offered) {
        if *code == TxCode::Ok {
            takeovers += 1;
            taken = taken.checked_add(*notional).map_err(engine_error)?;
        }
    }
    sim.resync();
    Ok(BlockMetrics::observe(
        sim.engine.state(),
        step,
        &prices,
        takeovers,
        taken,
        withdrawn,
    ))
}
