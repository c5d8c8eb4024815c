//! What a run reached: counts that let the test insist the generator keeps
//! producing liquidations, takeovers and every rejection it aims at.

use std::collections::BTreeMap;

use super::breakers::{Band, Status};
use super::margin::{Health, Risk};
use super::Model;

/// What the model saw happen, so a run can show it reached the interesting parts.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub orders_posted: u64,
    pub orders_cancelled: u64,
    pub takeovers: u64,
    /// Accounts the backstop took over at their deadline.
    pub backstops: u64,
    /// Positions cut by auto-deleveraging.
    pub adl_reductions: u64,
    /// Legs closed against the backstop's stale book.
    pub book_unwinds: u64,
    /// Takeovers of more than the account held on that venue (a report in
    /// the same block shrank, closed or flipped the position).
    pub takeovers_beyond_position: u64,
    /// Blocks with more accounts under maintenance than the ladder takes.
    pub ladder_full_blocks: u64,
    /// Market-blocks with the current fraction still phasing in.
    pub phase_in_market_blocks: u64,
    /// Account-blocks with an exposure on a size tier.
    pub size_tier_account_blocks: u64,
    pub bankrupt_account_blocks: u64,
    /// Results per (transaction kind, code).
    pub codes: BTreeMap<(&'static str, u32), u64>,
    /// Band transitions per (from, to) status name.
    pub transitions: BTreeMap<(&'static str, &'static str), u64>,
    pub stale_market_blocks: u64,
    pub underquoted_market_blocks: u64,
    pub volatile_market_blocks: u64,
    /// Market-blocks with the market or one of its venues at a cap.
    pub capped_market_blocks: u64,
    pub system_trips: u64,
    /// System trips with the fund's drawdown among the causes.
    pub drawdown_trips: u64,
    pub coverage_trips: u64,
    /// System trips by TripBreaker inside a block.
    pub trips_by_transaction: u64,
    pub system_clears: u64,
}

impl Tally {
    /// Adds another run's tally to this one.
    pub fn add(&mut self, other: &Tally) {
        self.orders_posted += other.orders_posted;
        self.orders_cancelled += other.orders_cancelled;
        self.takeovers += other.takeovers;
        self.backstops += other.backstops;
        self.adl_reductions += other.adl_reductions;
        self.book_unwinds += other.book_unwinds;
        self.takeovers_beyond_position += other.takeovers_beyond_position;
        self.ladder_full_blocks += other.ladder_full_blocks;
        self.phase_in_market_blocks += other.phase_in_market_blocks;
        self.size_tier_account_blocks += other.size_tier_account_blocks;
        self.bankrupt_account_blocks += other.bankrupt_account_blocks;
        for (code, count) in &other.codes {
            *self.codes.entry(*code).or_default() += count;
        }
        for (transition, count) in &other.transitions {
            *self.transitions.entry(*transition).or_default() += count;
        }
        self.stale_market_blocks += other.stale_market_blocks;
        self.underquoted_market_blocks += other.underquoted_market_blocks;
        self.volatile_market_blocks += other.volatile_market_blocks;
        self.capped_market_blocks += other.capped_market_blocks;
        self.system_trips += other.system_trips;
        self.system_clears += other.system_clears;
        self.drawdown_trips += other.drawdown_trips;
        self.coverage_trips += other.coverage_trips;
        self.trips_by_transaction += other.trips_by_transaction;
    }

    pub(super) fn count_transition(&mut self, from: Status, to: Status) {
        *self
            .transitions
            .entry((from.name(), to.name()))
            .or_default() += 1;
    }

    pub(super) fn count_validity(&mut self, band: &Band) {
        self.stale_market_blocks += u64::from(band.stale);
        self.underquoted_market_blocks += u64::from(band.too_few_reporters);
        self.volatile_market_blocks += u64::from(band.too_volatile);
    }

    /// Counts what the end of a block shows.
    pub(super) fn count_block(&mut self, model: &Model) {
        self.phase_in_market_blocks += model
            .markets
            .values()
            .filter(|m| m.regime.current < m.regime.target)
            .count() as u64;
        let on_a_tier = |risk: &Risk| {
            risk.exposures.iter().any(|e| {
                let tiers = &model.markets[&e.market].tiers;
                tiers
                    .first()
                    .is_some_and(|t| e.net_notional >= t.notional_floor)
            })
        };
        self.size_tier_account_blocks +=
            model.risks.values().filter(|r| on_a_tier(r)).count() as u64;
        self.bankrupt_account_blocks += model
            .risks
            .values()
            .filter(|r| r.health == Health::Bankrupt)
            .count() as u64;
        let under = model
            .risks
            .values()
            .filter(|r| r.under_maintenance())
            .count();
        if under > model.params.accounts_per_block_max {
            self.ladder_full_blocks += 1;
        }
    }
}
