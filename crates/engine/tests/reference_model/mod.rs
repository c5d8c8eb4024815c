//! A reference model of the clearnode engine: simple, slow and written from
//! the documented semantics (docs/margin.md, docs/transactions.md,
//! docs/breakers.md, docs/oracle.md and the engine's doc comments), not from
//! the engine's code.
//!
//! The model keeps plain records in ordered maps and no running totals: after
//! every block it recomputes every account's risk from scratch, and open
//! interest, aggregates and health counts are walks over all accounts. Every
//! value is a raw `i128` (quantities and prices 9 decimals, USD 6, ratios
//! ppm) with the rounding named at each step (`fixed`). Where the engine
//! knowingly departs from the documentation, the departure is a named switch
//! in [`Deviations`], so the comparison stays exact and the departure stays
//! visible.
//!
//! Not modelled: isolated sub-accounts and isolated markets (the generator
//! lists none; `crates/engine/src/block/tests/isolated.rs` covers them), and
//! the breakers' invariant halt and governance pauses.
//!
//! Map: `fixed` (arithmetic and rounding), `margin` (an account's risk and a
//! market's regime), `transactions` (checks and effects), `liquidation` (the
//! ladder, takeovers, average-cost fills), `aggregates` (walks over all
//! accounts), `breakers` (price bands, price validity, open-interest caps,
//! the system breaker, the gates and TripBreaker), `genesis` (height 0), `compare` (the engine's state and
//! committed aggregates against the model), `generator` and `variants`
//! (seeded blocks), `tally` (what a run reached).

mod aggregates;
mod backstop;
pub mod breakers;
pub mod compare;
pub mod fixed;
pub mod generator;
mod genesis;
mod liquidation;
pub mod margin;
mod tally;
mod transactions;
pub mod variants;

use std::collections::{BTreeMap, BTreeSet};

use clearnode_types::Address;

use aggregates::open_interest_of;
pub use aggregates::{MarketTotals, SystemTotals};
pub use backstop::BACKSTOP;
use fixed::{notional, Round};
use margin::{Fraction, Risk};
pub use tally::Tally;
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
    pub adl_profit_share_max_ppm: i128,
    pub instruction_ack_blocks: u64,
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
    pub insurance_payout_per_block_max: i128,
    pub regime: Regime,
    pub breaker_params: breakers::BandParams,
    pub breaker: breakers::Band,
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
    pub acknowledgements: Acknowledgements,
}

/// A venue's acknowledgement of the instructions it must act on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Acknowledgements {
    pub acknowledged_height: u64,
    /// From when what is pending counts toward the deadline (0: nothing).
    pub unacknowledged_since: u64,
    pub last_instruction_height: u64,
    pub delinquent: bool,
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
    pub adl_collected: i128,
    pub bad_debt_unresolved: i128,
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
#[derive(Debug, Clone, Copy)]
pub struct Deviations {
    /// An account leaves liquidation (`liquidating_since` back to 0) only if
    /// it still has an order when it recovers; one whose last order was
    /// taken in full keeps its old height, and a later liquidation charges
    /// it `fee_per_block` for every block since the first one.
    /// Test: `an_account_whose_last_order_was_taken_leaves_liquidation_when_it_recovers`.
    pub liquidation_status_needs_an_order: bool,
    /// The regime's open interest leaves out every account the block's
    /// prices touched: holders of a repriced market or asset, and then the
    /// holders of each market (in id order) whose current fraction moved.
    /// The engine reads its running totals after taking those accounts'
    /// contributions out, so on a block that moves a market's price its
    /// OI-scaled fraction sees (almost) no open interest.
    /// Test: `a_price_move_does_not_hide_open_interest_from_the_margin_regime`.
    pub regime_misses_touched_open_interest: bool,
}

impl Deviations {
    /// The engine as it is today.
    pub const ENGINE: Deviations = Deviations {
        liquidation_status_needs_an_order: false,
        regime_misses_touched_open_interest: false,
    };
    /// The documented semantics.
    pub const NONE: Deviations = Deviations {
        liquidation_status_needs_an_order: false,
        regime_misses_touched_open_interest: false,
    };
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
    /// Venues given an instruction to acknowledge in this block.
    pub instructed: BTreeSet<String>,
    pub system_params: breakers::SystemParams,
    pub system: breakers::System,
    pub deviations: Deviations,
    pub tally: Tally,
}

impl Model {
    /// The signer's next sequence.
    pub fn next_sequence(&self, signer: &Address) -> u64 {
        self.sequences.get(signer).copied().unwrap_or(0)
    }

    /// An account's risk now, at the fractions of existing positions.
    pub fn risk_now(&self, account: &AccountModel) -> Risk {
        margin::risk(account, &self.markets, &self.assets, Fraction::Existing)
    }

    /// Starts a block: its prices (and the markets quoted by too few
    /// validators to be priced), every market's breakers, then every
    /// market's regime for the block, from the open interest the previous
    /// block left at the new prices, widened by the breakers.
    pub fn begin_block(&mut self, height: u64, prices: &[(Priced, i128)], underquoted: &[String]) {
        assert_eq!(height, self.height + 1, "blocks follow each other");
        self.height = height;
        let previous: BTreeMap<String, i128> = self
            .markets
            .iter()
            .map(|(id, market)| (id.clone(), market.price))
            .collect();
        // Whose positions the regime counts as open interest: everyone's.
        let mut counted: BTreeSet<Address> = self.accounts.keys().copied().collect();
        for (priced, price) in prices {
            if self.apply_price(priced, *price)
                && self.deviations.regime_misses_touched_open_interest
            {
                self.forget_holders(&mut counted, priced);
            }
        }
        let priced: BTreeSet<String> = prices
            .iter()
            .filter_map(|(priced, _)| match priced {
                Priced::Market(id) => Some(id.clone()),
                Priced::Asset(_) => None,
            })
            .collect();
        let underquoted: BTreeSet<String> = underquoted.iter().cloned().collect();
        self.step_breakers(&priced, &underquoted, &previous);
        let ids: Vec<String> = self.markets.keys().cloned().collect();
        for id in ids {
            let open_interest = open_interest_of(
                self.accounts
                    .iter()
                    .filter(|(address, _)| counted.contains(address))
                    .map(|(_, account)| account),
            );
            let (long, short) = open_interest.get(&id).copied().unwrap_or_default();
            let multiplier = self.margin_multiplier(&id);
            let market = self.markets.get_mut(&id).expect("listed");
            let open_interest_usd = notional(long.max(short), market.price, Round::Up);
            let target = breakers::widen(
                margin::target_fraction(market, open_interest_usd),
                multiplier,
            );
            let before = market.regime.current;
            market.regime = margin::phase_in(market, target);
            if market.regime.current != before
                && self.deviations.regime_misses_touched_open_interest
            {
                self.forget_holders(&mut counted, &Priced::Market(id));
            }
        }
    }

    /// Applies a price; true if it changed.
    fn apply_price(&mut self, priced: &Priced, price: i128) -> bool {
        match priced {
            Priced::Market(id) => {
                let market = self.markets.get_mut(id).expect("listed market");
                // An unchanged price is no update: no return enters the EWMA.
                if market.price == price {
                    return false;
                }
                market.regime.variance = margin::variance_after(
                    market.regime.variance,
                    market.price,
                    price,
                    market.volatility_decay_ppm,
                );
                market.price = price;
            }
            Priced::Asset(id) => {
                let asset = self.assets.get_mut(id).expect("listed asset");
                if asset.price == price {
                    return false;
                }
                asset.price = price;
            }
        }
        true
    }

    /// For [`Deviations::regime_misses_touched_open_interest`]: leaves the
    /// holders of a market (any position) or asset (any balance) out.
    fn forget_holders(&self, counted: &mut BTreeSet<Address>, priced: &Priced) {
        counted.retain(|address| {
            let account = &self.accounts[address];
            let holds = match priced {
                Priced::Market(id) => account.positions.keys().any(|(market, _)| market == id),
                Priced::Asset(id) => account.collateral.contains_key(id),
            };
            !holds
        });
    }

    /// Ends a block: the backstop, every account's risk, the breakers' caps
    /// and the system breaker, the liquidation ladder, and the two
    /// conservation laws.
    pub fn end_block(&mut self) {
        backstop::run(self);
        self.risks = self
            .accounts
            .iter()
            .map(|(address, account)| (*address, self.risk_now(account)))
            .collect();
        self.evaluate_breakers();
        liquidation::run_ladder(self);
        self.track_acknowledgements();
        let mut tally = std::mem::take(&mut self.tally);
        tally.count_block(self);
        self.tally = tally;
        self.assert_conservation();
    }

    /// Venues instructed in this block must acknowledge by
    /// `instruction_ack_blocks` blocks after the first unacknowledged one,
    /// or become delinquent.
    fn track_acknowledgements(&mut self) {
        let height = self.height;
        for venue in std::mem::take(&mut self.instructed) {
            let acks = &mut self
                .venues
                .get_mut(&venue)
                .expect("listed")
                .acknowledgements;
            acks.last_instruction_height = height;
            if acks.unacknowledged_since == 0 {
                acks.unacknowledged_since = height;
            }
        }
        for venue in self.venues.values_mut() {
            let acks = &mut venue.acknowledgements;
            if acks.unacknowledged_since != 0
                && height > acks.unacknowledged_since + self.params.instruction_ack_blocks
            {
                acks.delinquent = true;
            }
        }
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
}
