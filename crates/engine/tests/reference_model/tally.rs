//! What a run reached: counts that let the test insist the generator keeps
//! producing liquidations, takeovers and every rejection it aims at.

use std::collections::BTreeMap;

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
