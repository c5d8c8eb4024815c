//! Where governance meets the circuit breakers (docs/breakers.md).
//!
//! A governance pause is the market breaker's `paused` state with cause
//! `governance`; a resume (of such a pause, or of a market an invariant
//! breach halted) is the breaker's staged reopen. A change that lowers
//! safety never takes effect while the breaker it weakens is tripped: a
//! market's own parameters wait for that market to trade normally again
//! (open), and system-wide ones (collateral, position size) for the system
//! breaker to clear.

use std::collections::BTreeSet;

use clearnode_types::tx::ParamChange;
use clearnode_types::MarketId;

use crate::block::{Engine, Event};
use crate::breakers::{MarketStatus, PauseCause};
use crate::state::State;
use crate::{invariant, EngineError};

/// Markets only governance can resume: paused by it, or halted by a breach.
pub(crate) fn resumable_markets(state: &State) -> BTreeSet<MarketId> {
    state
        .breakers
        .markets
        .iter()
        .filter(|(_, b)| {
            matches!(
                b.status,
                MarketStatus::Paused(PauseCause::Governance | PauseCause::Invariant)
            )
        })
        .map(|(id, _)| id.clone())
        .collect()
}

impl Engine {
    /// Pauses a market (its breaker, cause governance); every venue is told.
    pub(crate) fn governance_pause(
        &mut self,
        market: &MarketId,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        if !self.state.markets.contains_key(market) {
            return Err(invariant(format!("pause of unlisted market {market}")));
        }
        let paused = MarketStatus::Paused(PauseCause::Governance);
        self.set_market_status(market, paused, "paused by governance".into(), events)
    }

    /// Resumes a market through the breaker's staged reopen (widened margin,
    /// liquidations once the price is fresh); every venue is told.
    pub(crate) fn governance_resume(
        &mut self,
        market: &MarketId,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        if !self.state.markets.contains_key(market) {
            return Err(invariant(format!("resume of unlisted market {market}")));
        }
        self.set_market_status(market, MarketStatus::Reopening, String::new(), events)
    }

    /// A breaker that `change` weakens is tripped now, so the change must
    /// wait. Resuming is the way out of a pause and is never blocked.
    pub(crate) fn weakened_breaker_tripped(&self, change: &ParamChange) -> bool {
        if !super::changes::lowers_safety(&self.state, change) {
            return false;
        }
        let market = match change {
            ParamChange::ResumeMarket(_) => return false,
            ParamChange::InitialMargin { market, .. }
            | ParamChange::MaintenanceFraction { market, .. }
            | ParamChange::OpenInterestLowerCap { market, .. }
            | ParamChange::OpenInterestUpperCap { market, .. }
            | ParamChange::PriceBand { market, .. }
            | ParamChange::OpenInterestHardCap { market, .. }
            | ParamChange::VenueOpenInterestCap { market, .. } => market,
            // Collateral and position size weaken the whole system.
            _ => return self.state.breakers.system.tripped,
        };
        let trading_normally = self
            .state
            .breakers
            .markets
            .get(market)
            .is_none_or(|b| b.status == MarketStatus::Open);
        !trading_normally || self.state.breakers.system.tripped
    }
}
