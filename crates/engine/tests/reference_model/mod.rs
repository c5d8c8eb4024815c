//! A reference model of the clearnode engine: simple, slow and written from
//! the documented semantics (docs/margin.md, docs/transactions.md and the
//! engine's doc comments), not from the engine's code.
//!
//! The model keeps plain records in ordered maps and no running totals: after
//! every block it recomputes every account's risk from scratch, and open
//! interest, aggregates and health counts are walks over all accounts. Every
//! value is a raw `i128` (quantities and prices 9 decimals, USD 6, ratios
//! ppm) with the rounding named at each step (`fixed`). Where the engine
//! knowingly departs from the documentation, the departure is a named switch
//! in [`Deviations`], so the comparison stays exact and the departure stays
//! visible.

pub mod compare;
pub mod fixed;
pub mod generator;
mod liquidation;
pub mod margin;
mod transactions;

use std::collections::{BTreeMap, BTreeSet};

use clearnode_types::genesis::Genesis;
use clearnode_types::Address;

use fixed::{notional, times_ppm, Round, PPM};
use margin::{Fraction, Health, Risk};
pub use transactions::{Action, Entry, Tx};

/// Parameters that never change after genesis.
#[derive(Debug, Clone)]
pub struct Params {
    pub report_entries_max: usize,
    pub position_size_max: i128,
    pub insurance_fund_initial: i128,
    pub fraction_per_block_ppm: i128,
    pub min_notional: i128,
    pub accounts_per_block_max: usize,
    pub deadline_blocks: u64,
    pub spread_to_maintenance_ppm: i128,
    pub fee_base_ppm: i128,
    pub fee_convex_ppm: i128,
    pub fee_per_block_ppm: i128,
    pub fee_max_ppm: i128,
    pub liquidator_share_ppm: i128,
}

/// A size tier with the deduction that keeps the requirement continuous.
#[derive(Debug, Clone)]
pub struct Tier {
    pub notional_floor: i128,
    pub fraction_ppm: i128,
    pub deduction: i128,
}

/// The dynamic part of a market's margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regime {
    /// EWMA of squared per-update returns, ppm^2.
    pub variance: i128,
    /// Fraction for new risk.
    pub target: i128,
    /// Fraction for positions already held.
    pub current: i128,
    /// Rise per block while phasing in toward `phase_target`.
    pub phase_step: i128,
    pub phase_target: i128,
}

#[derive(Debug, Clone)]
pub struct MarketModel {
    pub price: i128,
    pub base_ppm: i128,
    pub maintenance_fraction_ppm: i128,
    pub basis_ppm: i128,
    pub open_interest_lower: i128,
    pub open_interest_upper: i128,
    pub tiers: Vec<Tier>,
    pub volatility_decay_ppm: i128,
    pub volatility_reference_ppm: i128,
    pub phase_in_blocks: u32,
    pub rise_per_block_max_ppm: i128,
    pub regime: Regime,
}

#[derive(Debug, Clone)]
pub struct AssetModel {
    pub price: i128,
    pub haircut_ppm: i128,
}

#[derive(Debug, Clone)]
pub struct VenueModel {
    pub public_key: [u8; 32],
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub size: i128,
    pub entry_price: i128,
    pub updated_height: u64,
}

/// An account. Positions are keyed by (market, venue).
#[derive(Debug, Clone, Default)]
pub struct AccountModel {
    pub collateral: BTreeMap<String, i128>,
    pub authorized_venues: BTreeSet<String>,
    pub positions: BTreeMap<(String, String), Position>,
    pub settled_pnl: i128,
    pub liquidator: bool,
    pub liquidating_since: u64,
}

/// A position offered to liquidators, keyed by (account, market, venue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub quantity: i128,
    pub limit_price: i128,
    /// +1: a long being sold; -1: a short being bought.
    pub side: i32,
    pub posted_height: u64,
    pub deadline_height: u64,
}

pub type OrderKey = (Address, String, String);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fund {
    pub balance: i128,
    pub inflows: i128,
    pub payouts: i128,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ledger {
    pub deposited: i128,
    pub withdrawn: i128,
}

/// What a block's oracle prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Priced {
    Market(String),
    Asset(String),
}

/// Known departures of the engine from the documented semantics. Each is
/// `true` while the engine behaves that way (the model then follows it),
/// and names the ignored test that shows it; fixing the engine means
/// deleting the switch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deviations {}

/// What the model saw happen, so a run can show it reached the interesting parts.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub orders_posted: u64,
    pub orders_cancelled: u64,
    pub takeovers: u64,
    pub bankrupt_account_blocks: u64,
    pub codes: BTreeMap<u32, u64>,
}

/// The whole model state.
#[derive(Debug, Clone)]
pub struct Model {
    pub height: u64,
    pub params: Params,
    pub custodian: [u8; 32],
    pub markets: BTreeMap<String, MarketModel>,
    pub assets: BTreeMap<String, AssetModel>,
    pub venues: BTreeMap<String, VenueModel>,
    pub sequences: BTreeMap<Address, u64>,
    pub accounts: BTreeMap<Address, AccountModel>,
    pub ledgers: BTreeMap<String, Ledger>,
    pub orders: BTreeMap<OrderKey, Order>,
    pub fund: Fund,
    pub settlements: BTreeMap<String, i128>,
    /// Every account's risk as of the end of the last block.
    pub risks: BTreeMap<Address, Risk>,
    pub deviations: Deviations,
    pub tally: Tally,
}

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
            deviations,
            tally: Tally::default(),
        }
    }

    /// The signer's next sequence.
    pub fn next_sequence(&self, signer: &Address) -> u64 {
        self.sequences.get(signer).copied().unwrap_or(0)
    }

    /// An account's risk now, at the fractions of existing positions.
    pub fn risk_now(&self, account: &AccountModel) -> Risk {
        margin::risk(account, &self.markets, &self.assets, Fraction::Existing)
    }

    /// Long and short open interest (sizes) per market: a walk over every position.
    pub fn open_interest(&self) -> BTreeMap<String, (i128, i128)> {
        open_interest_of(self.accounts.values())
    }

    /// Starts a block: its prices, then every market's regime for the block,
    /// from the open interest the previous block left at the new prices.
    pub fn begin_block(&mut self, height: u64, prices: &[(Priced, i128)]) {
        assert_eq!(height, self.height + 1, "blocks follow each other");
        self.height = height;
        let open_interest = self.open_interest();
        for (priced, price) in prices {
            self.apply_price(priced, *price);
        }
        for (id, market) in &mut self.markets {
            let (long, short) = open_interest.get(id).copied().unwrap_or_default();
            let open_interest_usd = notional(long.max(short), market.price, Round::Up);
            let target = margin::target_fraction(market, open_interest_usd);
            market.regime = margin::phase_in(market, target);
        }
    }

    fn apply_price(&mut self, priced: &Priced, price: i128) {
        match priced {
            Priced::Market(id) => {
                let market = self.markets.get_mut(id).expect("listed market");
                // An unchanged price is no update: no return enters the EWMA.
                if market.price != price {
                    market.regime.variance = margin::variance_after(
                        market.regime.variance,
                        market.price,
                        price,
                        market.volatility_decay_ppm,
                    );
                    market.price = price;
                }
            }
            Priced::Asset(id) => self.assets.get_mut(id).expect("listed asset").price = price,
        }
    }

    /// Ends a block: every account's risk, the liquidation ladder, and the
    /// two conservation laws.
    pub fn end_block(&mut self) {
        self.risks = self
            .accounts
            .iter()
            .map(|(address, account)| (*address, self.risk_now(account)))
            .collect();
        liquidation::run_ladder(self);
        self.tally.bankrupt_account_blocks += self
            .risks
            .values()
            .filter(|r| r.health == Health::Bankrupt)
            .count() as u64;
        self.assert_conservation();
    }

    /// Collateral changes only by deposits and withdrawals; settled PnL, the
    /// venues' settlement balances and the insurance fund only move value
    /// between each other.
    fn assert_conservation(&self) {
        for (asset, ledger) in &self.ledgers {
            let held: i128 = self
                .accounts
                .values()
                .filter_map(|a| a.collateral.get(asset))
                .sum();
            assert_eq!(
                held,
                ledger.deposited - ledger.withdrawn,
                "model: collateral of {asset} not conserved"
            );
        }
        let settled: i128 = self.accounts.values().map(|a| a.settled_pnl).sum();
        let venues: i128 = self.settlements.values().sum();
        assert_eq!(
            settled + venues + self.fund.balance,
            self.params.insurance_fund_initial,
            "model: settled value not conserved"
        );
    }

    /// Per market totals: a walk over every account.
    pub fn market_totals(&self) -> BTreeMap<String, MarketTotals> {
        let mut totals: BTreeMap<String, MarketTotals> = self
            .markets
            .keys()
            .map(|id| (id.clone(), MarketTotals::default()))
            .collect();
        for account in self.accounts.values() {
            let mut net: BTreeMap<&String, i128> = BTreeMap::new();
            for ((market, venue), position) in &account.positions {
                let market_totals = totals.get_mut(market).expect("listed market");
                let venue_totals = market_totals.venues.entry(venue.clone()).or_default();
                if position.size > 0 {
                    market_totals.long += position.size;
                    venue_totals.0 += position.size;
                } else {
                    market_totals.short -= position.size;
                    venue_totals.1 -= position.size;
                }
                *net.entry(market).or_default() += position.size;
            }
            for (market, net) in net {
                let market_totals = totals.get_mut(market).expect("listed market");
                market_totals.accounts_with_position += 1;
                if net > 0 {
                    market_totals.net_long += net;
                } else {
                    market_totals.net_short -= net;
                }
            }
        }
        totals
    }

    /// System totals from the end-of-block risks.
    pub fn system_totals(&self) -> SystemTotals {
        let mut system = SystemTotals {
            accounts: self.risks.len() as u64,
            ..SystemTotals::default()
        };
        for risk in self.risks.values() {
            system.equity_positive += risk.equity.max(0);
            system.health[risk.health as usize] += 1;
        }
        system
    }
}

fn market_from_genesis(m: &clearnode_types::genesis::GenesisMarket) -> MarketModel {
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
        regime: Regime {
            variance: 0,
            target: base,
            current: base,
            phase_step: 0,
            phase_target: base,
        },
    }
}

/// Long and short open interest (sizes) per market of some accounts.
fn open_interest_of<'a>(
    accounts: impl Iterator<Item = &'a AccountModel>,
) -> BTreeMap<String, (i128, i128)> {
    let mut open_interest: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for account in accounts {
        for ((market, _venue), position) in &account.positions {
            let (long, short) = open_interest.entry(market.clone()).or_default();
            if position.size > 0 {
                *long += position.size;
            } else {
                *short -= position.size;
            }
        }
    }
    open_interest
}

/// Totals of one market.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketTotals {
    pub long: i128,
    pub short: i128,
    pub net_long: i128,
    pub net_short: i128,
    /// (long, short) per venue with a position.
    pub venues: BTreeMap<String, (i128, i128)>,
    pub accounts_with_position: u64,
}

/// System-wide totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemTotals {
    pub equity_positive: i128,
    /// Accounts per health state, in [`Health`] order.
    pub health: [u64; 4],
    pub accounts: u64,
}
