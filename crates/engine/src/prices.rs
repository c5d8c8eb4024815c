//! The start of a block: oracle prices and each market's margin regime.
//!
//! The regime for block H is set once, before its transactions, from the
//! open interest at the end of block H-1 and the prices of block H. Accounts
//! whose requirements moved (holders of a repriced market or asset, or of a
//! market whose current fraction changed) are touched, so the end of the
//! block recomputes exactly them.

use clearnode_num::{Money, Rounding};
use clearnode_types::{AssetId, MarketId, TxRejection};

use crate::block::Engine;
use crate::margin::regime::{self, TargetInputs};
use crate::{invariant, EngineError};

pub use clearnode_types::price::{OracleRound, PriceTarget, PriceUpdate};

fn touch_failed(rejection: TxRejection) -> EngineError {
    invariant(format!("touching an account: {}", rejection.log))
}

impl Engine {
    /// Applies the block's prices (unknown targets are a caller bug).
    pub(crate) fn apply_prices(&mut self, updates: &[PriceUpdate]) -> Result<(), EngineError> {
        for update in updates {
            match &update.target {
                PriceTarget::Market(id) => {
                    let market = self
                        .state
                        .markets
                        .get_mut(id)
                        .ok_or_else(|| invariant(format!("price for unlisted market {id}")))?;
                    if market.oracle_price == update.price {
                        continue;
                    }
                    market.margin.volatility_variance = regime::variance_after(
                        market.margin.volatility_variance,
                        market.oracle_price.raw(),
                        update.price.raw(),
                        market.volatility_decay,
                    )
                    .map_err(invariant)?;
                    market.oracle_price = update.price;
                    self.touch_market_holders(id)?;
                    let block = self.block_context()?;
                    block.dirty_listings.insert(id.clone());
                    block.dirty_markets.insert(id.clone());
                }
                PriceTarget::Asset(id) => {
                    let asset = self
                        .state
                        .assets
                        .get_mut(id)
                        .ok_or_else(|| invariant(format!("price for unlisted asset {id}")))?;
                    if asset.oracle_price == update.price {
                        continue;
                    }
                    asset.oracle_price = update.price;
                    self.touch_asset_holders(id)?;
                    self.block_context()?.dirty_assets.insert(id.clone());
                }
            }
        }
        Ok(())
    }

    /// Sets every market's margin regime for this block.
    pub(crate) fn refresh_margin_regimes(&mut self, height: u64) -> Result<(), EngineError> {
        let ids: Vec<MarketId> = self.state.markets.keys().cloned().collect();
        for id in ids {
            // The snapshot taken before this block's prices touched any
            // holder.
            let (long, short) = self
                .block
                .as_ref()
                .and_then(|block| block.open_interest.get(&id).copied())
                .unwrap_or_default();
            let market = self
                .state
                .markets
                .get(&id)
                .ok_or_else(|| invariant(format!("market {id} vanished")))?;
            let larger_side = long.max(short);
            let open_interest: Money = larger_side
                .notional(market.oracle_price, Rounding::Ceil)
                .map_err(invariant)?;
            let target = regime::target_fraction(&TargetInputs {
                base: market.initial_margin,
                open_interest,
                open_interest_lower_cap: market.open_interest_lower_cap,
                open_interest_upper_cap: market.open_interest_upper_cap,
                volatility_ppm: regime::volatility_ppm(market.margin.volatility_variance),
                volatility_reference_ppm: market.volatility_reference_ppm,
            })
            .map_err(invariant)?;
            // Breakers widen it (a staged reopen, the system breaker).
            let target = self
                .state
                .breakers
                .widen(&id, height, target)
                .map_err(invariant)?;
            let market = self
                .state
                .markets
                .get(&id)
                .ok_or_else(|| invariant(format!("market {id} vanished")))?;
            let mut next = regime::phase_in(
                &market.margin,
                target,
                market.margin_phase_in_blocks,
                market.margin_rise_per_block_max,
            )
            .map_err(invariant)?;
            let current_changed = next.current != market.margin.current;
            let changed = current_changed
                || next.target != market.margin.target
                || next.phase_step != market.margin.phase_step
                || self.block_context()?.dirty_listings.contains(&id);
            if !changed {
                continue;
            }
            next.updated_height = height;
            if let Some(market) = self.state.markets.get_mut(&id) {
                market.margin = next;
            }
            if current_changed {
                self.touch_market_holders(&id)?;
            }
            self.block_context()?.dirty_margins.insert(id);
        }
        Ok(())
    }

    /// Touches every account holding the asset (its collateral value moved).
    pub(crate) fn touch_asset_holders(&mut self, id: &AssetId) -> Result<(), EngineError> {
        let holders = self.state.indexes.asset_holders.get(id);
        self.touch_each(holders.map(|set| set.iter().copied().collect()))
    }

    /// Touches every account holding a position in the market.
    pub(crate) fn touch_market_holders(&mut self, id: &MarketId) -> Result<(), EngineError> {
        let holders = self.state.indexes.market_holders.get(id);
        self.touch_each(holders.map(|set| set.iter().copied().collect()))
    }

    fn touch_each(
        &mut self,
        holders: Option<Vec<clearnode_types::Address>>,
    ) -> Result<(), EngineError> {
        for address in holders.unwrap_or_default() {
            self.reprice_account(address).map_err(touch_failed)?;
        }
        Ok(())
    }
}
