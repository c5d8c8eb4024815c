//! Where governance meets the circuit breakers.
//!
//! PLACEHOLDER until the breakers land (issue 4 item 3): the lead replaces
//! this file with the real breaker state at merge. Until then the only
//! "breaker" is the governance pause itself: a paused market takes no
//! position reports (code 406), and a change that loosens a paused market's
//! margin (lower fractions, higher caps) counts as weakening a tripped
//! breaker, so it waits until the market is resumed. The resume itself is
//! the way out of the pause, so it is never blocked by it.

use clearnode_types::tx::ParamChange;
use clearnode_types::MarketId;

use crate::block::Engine;
use crate::instructions::Instruction;
use crate::state::State;
use crate::{invariant, EngineError};

/// The market is paused by governance: reports for it are refused.
pub(crate) fn market_paused(state: &State, market: &MarketId) -> bool {
    state.governance.paused_markets.contains(market)
}

/// No account: market-wide instructions name the zero address.
const NO_ACCOUNT: clearnode_types::Address = clearnode_types::Address::from_bytes([0; 20]);

impl Engine {
    /// Pauses a market and tells every venue.
    pub(crate) fn governance_pause(&mut self, market: &MarketId) -> Result<(), EngineError> {
        self.set_paused(market, true, "market_paused")
    }

    /// Lifts a governance pause and tells every venue.
    pub(crate) fn governance_resume(&mut self, market: &MarketId) -> Result<(), EngineError> {
        self.set_paused(market, false, "market_resumed")
    }

    fn set_paused(
        &mut self,
        market: &MarketId,
        paused: bool,
        kind: &'static str,
    ) -> Result<(), EngineError> {
        if !self.state.markets.contains_key(market) {
            return Err(invariant(format!("{kind} for unlisted market {market}")));
        }
        let paused_markets = &mut self.state.governance.paused_markets;
        if paused {
            paused_markets.insert(market.clone());
        } else {
            paused_markets.remove(market);
        }
        let venues: Vec<_> = self.state.venues.keys().cloned().collect();
        let block = self.block_context()?;
        block.governance.state = true;
        for venue in venues {
            let mut instruction = Instruction::new(venue, kind, NO_ACCOUNT);
            instruction.market = Some(market.clone());
            block.instructions.push(instruction);
        }
        Ok(())
    }

    /// A breaker that `change` weakens is tripped now, so the change must
    /// wait. Placeholder rule: loosening a governance-paused market's margin.
    pub(crate) fn weakened_breaker_tripped(&self, change: &ParamChange) -> bool {
        let market = match change {
            ParamChange::InitialMargin { market, .. }
            | ParamChange::MaintenanceFraction { market, .. }
            | ParamChange::OpenInterestLowerCap { market, .. }
            | ParamChange::OpenInterestUpperCap { market, .. } => market,
            // Extension point: breaker parameters (price band, open interest
            // hard caps, disabling a breaker) are blocked by their breaker.
            _ => return false,
        };
        market_paused(&self.state, market) && super::changes::lowers_safety(&self.state, change)
    }
}
