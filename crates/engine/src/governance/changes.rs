//! Parameter changes: whether each raises or lowers safety, whether it still
//! applies, and applying it.
//!
//! A change is classified by comparing its new value to the current one
//! (with the proposal's earlier changes applied): higher margin fractions and
//! haircuts, lower caps and a pause raise safety; the opposite, a new
//! collateral asset and a resume lower it. An unchanged value raises nothing
//! and lowers nothing, so it counts as raising.

use std::collections::{BTreeMap, BTreeSet};

use clearnode_num::{Money, Quantity};
use clearnode_types::tx::ParamChange;
use clearnode_types::{AssetId, MarketId, TxCode, TxRejection};

use crate::block::{Engine, Event};
use crate::breakers::MarketBreakerParams;
use crate::margin::regime::size_tiers;
use crate::state::{Asset, Ledger, Market, State};
use crate::{invariant, EngineError};

/// The proposal's changes applied in order to copies of what they touch.
struct Draft<'a> {
    state: &'a State,
    markets: BTreeMap<MarketId, Market>,
    assets: BTreeMap<AssetId, Asset>,
    position_size_max: Quantity,
    paused: BTreeSet<MarketId>,
    breakers: BTreeMap<MarketId, MarketBreakerParams>,
}

impl Draft<'_> {
    fn market(&mut self, id: &MarketId) -> Result<&mut Market, String> {
        if !self.markets.contains_key(id) {
            let market = self
                .state
                .markets
                .get(id)
                .ok_or_else(|| format!("market {id} is not listed"))?;
            self.markets.insert(id.clone(), market.clone());
        }
        self.markets
            .get_mut(id)
            .ok_or_else(|| format!("market {id} is not listed"))
    }

    /// Applies one change; true when it lowers safety.
    fn apply(&mut self, change: &ParamChange) -> Result<bool, String> {
        match change {
            ParamChange::InitialMargin { market, .. }
            | ParamChange::MaintenanceFraction { market, .. }
            | ParamChange::OpenInterestLowerCap { market, .. }
            | ParamChange::OpenInterestUpperCap { market, .. } => {
                update_market(self.market(market)?, change)
            }
            ParamChange::AssetHaircut { asset, haircut } => {
                if !self.assets.contains_key(asset) {
                    let listed = self
                        .state
                        .assets
                        .get(asset)
                        .ok_or_else(|| format!("asset {asset} is not listed"))?;
                    self.assets.insert(asset.clone(), listed.clone());
                }
                let listed = self
                    .assets
                    .get_mut(asset)
                    .ok_or_else(|| format!("asset {asset} is not listed"))?;
                let lowers = *haircut < listed.haircut;
                listed.haircut = *haircut;
                Ok(lowers)
            }
            ParamChange::ListCollateralAsset {
                asset,
                oracle_price,
                haircut,
            } => {
                if self.state.assets.contains_key(asset) || self.assets.contains_key(asset) {
                    return Err(format!("asset {asset} is already listed"));
                }
                let listed = Asset {
                    id: asset.clone(),
                    oracle_price: *oracle_price,
                    haircut: *haircut,
                };
                self.assets.insert(asset.clone(), listed);
                Ok(true)
            }
            ParamChange::PositionSizeMax(size) => {
                let lowers = *size > self.position_size_max;
                self.position_size_max = *size;
                Ok(lowers)
            }
            ParamChange::PriceBand { market, .. }
            | ParamChange::OpenInterestHardCap { market, .. }
            | ParamChange::VenueOpenInterestCap { market, .. } => {
                if !self.breakers.contains_key(market) {
                    let params = self
                        .state
                        .breakers
                        .markets
                        .get(market)
                        .map(|b| b.params.clone())
                        .ok_or_else(|| format!("market {market} is not listed"))?;
                    self.breakers.insert(market.clone(), params);
                }
                let params = self
                    .breakers
                    .get_mut(market)
                    .ok_or_else(|| format!("market {market} is not listed"))?;
                Ok(update_breaker(params, change))
            }
            ParamChange::PauseMarket(market) => {
                self.market(market)?;
                if !self.paused.insert(market.clone()) {
                    return Err(format!("market {market} is already paused"));
                }
                Ok(false)
            }
            ParamChange::ResumeMarket(market) => {
                self.market(market)?;
                if !self.paused.remove(market) {
                    return Err(format!("market {market} is not paused"));
                }
                Ok(true)
            }
        }
    }
}

/// A new limit where zero means none (a band, a cap): true when it loosens.
fn loosens<T: Ord + Default + Copy>(current: T, new: T) -> bool {
    let none = T::default();
    if new == none {
        current != none
    } else {
        current != none && new > current
    }
}

/// Sets one of a market's breaker parameters; true when it lowers safety.
fn update_breaker(params: &mut MarketBreakerParams, change: &ParamChange) -> bool {
    match change {
        ParamChange::PriceBand { value, .. } => {
            let lowers = loosens(params.price_band, *value);
            params.price_band = *value;
            lowers
        }
        ParamChange::OpenInterestHardCap { value, .. } => {
            let lowers = loosens(params.open_interest_cap, *value);
            params.open_interest_cap = *value;
            lowers
        }
        ParamChange::VenueOpenInterestCap { value, .. } => {
            let lowers = loosens(params.venue_open_interest_cap, *value);
            params.venue_open_interest_cap = *value;
            lowers
        }
        _ => false,
    }
}

/// Sets one of a market's margin parameters; true when it lowers safety.
/// Refuses values the margin regime cannot use.
fn update_market(market: &mut Market, change: &ParamChange) -> Result<bool, String> {
    let lowers = match change {
        ParamChange::InitialMargin { value, .. } => {
            if *value < market.basis {
                return Err(format!(
                    "initial margin {value} below the basis charge {} of {}",
                    market.basis, market.id
                ));
            }
            let tiers: Vec<(Money, clearnode_num::Ratio)> = market
                .size_tiers
                .iter()
                .map(|t| (t.notional_floor, t.initial_margin))
                .collect();
            market.size_tiers = size_tiers(*value, &tiers).map_err(|e| e.to_string())?;
            let lowers = *value < market.initial_margin;
            market.initial_margin = *value;
            lowers
        }
        ParamChange::MaintenanceFraction { value, .. } => {
            let lowers = *value < market.maintenance_fraction;
            market.maintenance_fraction = *value;
            lowers
        }
        ParamChange::OpenInterestLowerCap { value, .. } => {
            let lowers = *value > market.open_interest_lower_cap;
            market.open_interest_lower_cap = *value;
            lowers
        }
        ParamChange::OpenInterestUpperCap { value, .. } => {
            let current = market.open_interest_upper_cap;
            // Zero turns scaling off: the least safe setting.
            let lowers = if value.is_zero() {
                !current.is_zero()
            } else {
                !current.is_zero() && *value > current
            };
            market.open_interest_upper_cap = *value;
            lowers
        }
        _ => return Err(format!("{} is not a market parameter", change.kind())),
    };
    let upper = market.open_interest_upper_cap;
    if !upper.is_zero() && upper <= market.open_interest_lower_cap {
        return Err(format!(
            "open interest caps of {}: the upper cap must be above the lower one, or 0",
            market.id
        ));
    }
    Ok(lowers)
}

/// The change lowers safety against the current state (false if it no
/// longer applies).
pub(crate) fn lowers_safety(state: &State, change: &ParamChange) -> bool {
    classify(state, std::slice::from_ref(change)) == Ok(false)
}

/// Checks every change still applies, in order; `Ok(true)` when all of them
/// raise safety.
pub(crate) fn classify(state: &State, changes: &[ParamChange]) -> Result<bool, TxRejection> {
    let mut draft = Draft {
        state,
        markets: BTreeMap::new(),
        assets: BTreeMap::new(),
        position_size_max: state.params.position_size_max,
        paused: super::breaker_hooks::resumable_markets(state),
        breakers: BTreeMap::new(),
    };
    let mut raises = true;
    for (index, change) in changes.iter().enumerate() {
        let lowers = draft.apply(change).map_err(|why| {
            TxRejection::new(TxCode::InvalidChange, format!("change {index}: {why}"))
        })?;
        raises &= !lowers;
    }
    Ok(raises)
}

impl Engine {
    /// Applies one change (already classified) and records what to write.
    pub(crate) fn apply_change(
        &mut self,
        change: &ParamChange,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let mut event = Event::new("param_changed").with("change", change.kind());
        match change {
            ParamChange::InitialMargin { market: id, value }
            | ParamChange::MaintenanceFraction { market: id, value } => {
                self.update_listed_market(id, change)?;
                // The requirement of every holder moves now.
                self.touch_market_holders(id)?;
                event = event.with("market", id).with("value", value);
            }
            ParamChange::OpenInterestLowerCap { market: id, value }
            | ParamChange::OpenInterestUpperCap { market: id, value } => {
                // The caps feed the next block's margin regime.
                self.update_listed_market(id, change)?;
                event = event.with("market", id).with("value", value);
            }
            ParamChange::AssetHaircut { asset, haircut } => {
                let listed = self
                    .state
                    .assets
                    .get_mut(asset)
                    .ok_or_else(|| invariant(format!("haircut of unlisted asset {asset}")))?;
                listed.haircut = *haircut;
                self.touch_asset_holders(asset)?;
                self.block_context()?.dirty_assets.insert(asset.clone());
                event = event.with("asset", asset).with("value", haircut);
            }
            ParamChange::ListCollateralAsset {
                asset,
                oracle_price,
                haircut,
            } => {
                let listed = Asset {
                    id: asset.clone(),
                    oracle_price: *oracle_price,
                    haircut: *haircut,
                };
                self.state.assets.insert(asset.clone(), listed);
                self.state.ledgers.insert(asset.clone(), Ledger::default());
                let block = self.block_context()?;
                block.dirty_assets.insert(asset.clone());
                block.dirty_ledgers.insert(asset.clone());
                event = event.with("asset", asset).with("value", haircut);
            }
            ParamChange::PositionSizeMax(size) => {
                self.state.params.position_size_max = *size;
                self.block_context()?.governance.params = true;
                event = event.with("value", size);
            }
            ParamChange::PriceBand { market: id, .. }
            | ParamChange::OpenInterestHardCap { market: id, .. }
            | ParamChange::VenueOpenInterestCap { market: id, .. } => {
                let breaker = self
                    .state
                    .breakers
                    .markets
                    .get_mut(id)
                    .ok_or_else(|| invariant(format!("breaker of unlisted market {id}")))?;
                update_breaker(&mut breaker.params, change);
                self.block_context()?
                    .dirty_breakers
                    .insert(Some(id.clone()));
                event = event.with("market", id);
            }
            ParamChange::PauseMarket(market) => {
                self.governance_pause(market, events)?;
                event = event.with("market", market);
            }
            ParamChange::ResumeMarket(market) => {
                self.governance_resume(market, events)?;
                event = event.with("market", market);
            }
        }
        events.push(event);
        Ok(())
    }

    fn update_listed_market(
        &mut self,
        id: &MarketId,
        change: &ParamChange,
    ) -> Result<(), EngineError> {
        let market = self
            .state
            .markets
            .get_mut(id)
            .ok_or_else(|| invariant(format!("change to unlisted market {id}")))?;
        update_market(market, change).map_err(invariant)?;
        let block = self.block_context()?;
        block.dirty_listings.insert(id.clone());
        block.dirty_markets.insert(id.clone());
        Ok(())
    }
}
