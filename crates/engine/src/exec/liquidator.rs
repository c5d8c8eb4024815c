//! RegisterLiquidator and TakeOverPosition: registered liquidators take
//! over positions offered by the liquidation ladder, inside the band, for a
//! penalty paid by the liquidated account.

use std::collections::BTreeMap;

use clearnode_num::{Money, NumError, Quantity, Ratio, Rounding};
use clearnode_types::tx::{TakeOver, VerifiedTx};
use clearnode_types::{Address, TxCode, TxRejection};

use super::reject;
use crate::block::{Engine, Event};
use crate::liquidation::{fill, under_water};
use crate::margin::{compute_risk, compute_risk_with, MarginMode};
use crate::state::{LiquidationParams, State};

fn arithmetic(e: NumError) -> TxRejection {
    reject(TxCode::InvalidAmount, format!("arithmetic: {e}"))
}

/// The penalty rate: convex in how far under water, rising with the blocks
/// spent in liquidation, capped.
pub(crate) fn penalty_rate(
    params: &LiquidationParams,
    under_water: Ratio,
    blocks_in_liquidation: u64,
) -> Result<Ratio, NumError> {
    let convex = under_water
        .checked_mul(under_water, Rounding::Ceil)?
        .checked_mul(params.fee_convex, Rounding::Ceil)?;
    let blocks = i128::from(blocks_in_liquidation.min(1_000_000));
    let waiting = Ratio::from_raw(params.fee_per_block.raw().saturating_mul(blocks));
    let rate = params.fee_base.checked_add(convex)?.checked_add(waiting)?;
    Ok(rate.min(params.fee_max))
}

pub(super) fn validate(state: &State, tx: &VerifiedTx, take: &TakeOver) -> Result<(), TxRejection> {
    let liquidator = state
        .accounts
        .get(&tx.signer_address)
        .filter(|a| a.liquidator)
        .ok_or_else(|| {
            reject(
                TxCode::NotLiquidator,
                format!("{} is not a registered liquidator", tx.signer_address),
            )
        })?;
    if tx.signer_address == take.account {
        return Err(reject(
            TxCode::NotLiquidator,
            "an account cannot take over its own position",
        ));
    }
    if !liquidator.authorized_venues.contains(&take.venue) {
        return Err(reject(
            TxCode::VenueNotAuthorized,
            format!("the liquidator has not authorized venue {}", take.venue),
        ));
    }
    let key = (take.account, take.market.clone(), take.venue.clone());
    let order = state.liquidation_orders.get(&key).ok_or_else(|| {
        reject(
            TxCode::NoLiquidationOrder,
            format!(
                "no liquidation order for {} {} on {}",
                take.account, take.market, take.venue
            ),
        )
    })?;
    if let Some(rejection) =
        crate::breakers::liquidation_blocked(state, &take.market, state.chain.height)
    {
        return Err(rejection);
    }
    if take.quantity > order.quantity {
        return Err(reject(
            TxCode::QuantityAboveOrder,
            format!("{} offered, {} asked", order.quantity, take.quantity),
        ));
    }
    // A report earlier in the block may have shrunk the position: never take
    // more than the account holds, nor hand it the other side.
    let held = state
        .accounts
        .get(&take.account)
        .and_then(|a| a.positions.get(&(take.market.clone(), take.venue.clone())))
        .map_or(Quantity::ZERO, |p| p.size);
    if held.signum() != i128::from(order.side) || held.abs().map_err(arithmetic)? < take.quantity {
        return Err(reject(
            TxCode::QuantityAboveOrder,
            format!(
                "the account now holds {held} of the position, {} asked",
                take.quantity
            ),
        ));
    }
    let inside = if order.side > 0 {
        take.price >= order.limit_price
    } else {
        take.price <= order.limit_price
    };
    if !inside {
        return Err(reject(
            TxCode::OutsidePriceBand,
            format!(
                "price {} is outside the band (limit {})",
                take.price, order.limit_price
            ),
        ));
    }
    // A takeover never creates bad debt: the price may not cost the account
    // more than its equity (the backstop resolves a bankrupt account).
    let is_book = state
        .accounts
        .get(&take.account)
        .is_some_and(|a| crate::backstop::is_book(&take.account, a));
    if !is_book {
        let account = state
            .accounts
            .get(&take.account)
            .ok_or_else(|| reject(TxCode::NoLiquidationOrder, "no such account"))?;
        let mark = state
            .markets
            .get(&take.market)
            .map(|m| m.oracle_price)
            .ok_or_else(|| reject(TxCode::UnknownMarket, "unlisted market"))?;
        let risk = compute_risk(account, &state.markets, &state.assets, state.chain.height)
            .map_err(arithmetic)?;
        let slippage = signed(take.quantity, order.side)
            .map_err(arithmetic)?
            .pnl(mark, take.price, Rounding::Floor)
            .map_err(arithmetic)?;
        if risk
            .equity
            .checked_add(slippage)
            .map_err(arithmetic)?
            .is_negative()
        {
            return Err(reject(
                TxCode::OutsidePriceBand,
                format!(
                    "price {} would leave the account bankrupt (equity {})",
                    take.price, risk.equity
                ),
            ));
        }
    }
    let mut after = liquidator.clone();
    let position_key = (take.market.clone(), take.venue.clone());
    let delta = signed(take.quantity, order.side).map_err(arithmetic)?;
    let (position, realized) = fill(
        after.positions.get(&position_key),
        delta,
        take.price,
        state.chain.height,
    )
    .map_err(arithmetic)?;
    match position {
        Some(position) => after.positions.insert(position_key, position),
        None => after.positions.remove(&position_key),
    };
    after.settled_pnl = after
        .settled_pnl
        .checked_add(realized)
        .map_err(arithmetic)?;
    let targets = BTreeMap::new();
    let risk = compute_risk_with(
        &after,
        &state.markets,
        &state.assets,
        state.chain.height,
        MarginMode::NewRisk(&targets),
    )
    .map_err(arithmetic)?;
    if risk.equity < risk.initial {
        return Err(reject(
            TxCode::InsufficientInitialMargin,
            format!(
                "the liquidator's equity {} would not cover {} of initial margin",
                risk.equity, risk.initial
            ),
        ));
    }
    Ok(())
}

/// The quantity with the order's side.
fn signed(quantity: Quantity, side: i32) -> Result<Quantity, NumError> {
    if side > 0 {
        Ok(quantity)
    } else {
        quantity.checked_neg()
    }
}

impl Engine {
    pub(super) fn apply_register_liquidator(
        &mut self,
        signer: Address,
    ) -> Result<Event, TxRejection> {
        self.touch_account(signer)?.liquidator = true;
        Ok(Event::new("register_liquidator").with("account", signer))
    }

    pub(super) fn apply_take_over(
        &mut self,
        liquidator: Address,
        take: TakeOver,
    ) -> Result<Event, TxRejection> {
        let height = self.state.chain.height;
        let key = (take.account, take.market.clone(), take.venue.clone());
        let order = self
            .state
            .liquidation_orders
            .get(&key)
            .cloned()
            .ok_or_else(|| reject(TxCode::NoLiquidationOrder, "the order vanished"))?;
        let market = self
            .state
            .markets
            .get(&take.market)
            .ok_or_else(|| reject(TxCode::UnknownMarket, "unlisted market"))?;
        let mark = market.oracle_price;
        let account = self
            .state
            .accounts
            .get(&take.account)
            .ok_or_else(|| reject(TxCode::NoLiquidationOrder, "no such account"))?;
        let risk = compute_risk(account, &self.state.markets, &self.state.assets, height)
            .map_err(arithmetic)?;
        let blocks = height.saturating_sub(account.liquidating_since);
        // The backstop's book is offered without a penalty: the band is the
        // liquidator's incentive.
        let rate = if crate::backstop::is_book(&take.account, account) {
            Ratio::ZERO
        } else {
            penalty_rate(
                &self.state.params.liquidation,
                under_water(&risk).map_err(arithmetic)?,
                blocks,
            )
            .map_err(arithmetic)?
        };
        let sold = signed(take.quantity, order.side).map_err(arithmetic)?;
        // The penalty never pushes the account below zero by itself.
        let slippage = sold
            .pnl(mark, take.price, Rounding::Floor)
            .map_err(arithmetic)?;
        let equity_after = risk.equity.checked_add(slippage).map_err(arithmetic)?;
        let notional = take
            .quantity
            .notional(take.price, Rounding::Floor)
            .map_err(arithmetic)?;
        let penalty = notional
            .mul_ratio(rate, Rounding::Floor)
            .map_err(arithmetic)?
            .min(equity_after.max(Money::ZERO));
        let liquidator_share = penalty
            .mul_ratio(
                self.state.params.liquidation.liquidator_share,
                Rounding::Floor,
            )
            .map_err(arithmetic)?;
        let fund_share = penalty.checked_sub(liquidator_share).map_err(arithmetic)?;

        let position_key = (take.market.clone(), take.venue.clone());
        let realized_account = self.move_position(
            take.account,
            &position_key,
            sold.checked_neg().map_err(arithmetic)?,
            take.price,
        )?;
        let realized_liquidator =
            self.move_position(liquidator, &position_key, sold, take.price)?;
        let debit = |account: &mut crate::state::Account, amount: Money| {
            account.settled_pnl = account
                .settled_pnl
                .checked_add(amount)
                .map_err(arithmetic)?;
            Ok::<(), TxRejection>(())
        };
        debit(
            self.touch_account(take.account)?,
            penalty.checked_neg().map_err(arithmetic)?,
        )?;
        debit(self.touch_account(liquidator)?, liquidator_share)?;
        // The liquidated account's fund: an isolated market's own, or the shared one.
        let fund_id = self
            .state
            .accounts
            .get(&take.account)
            .and_then(|a| crate::backstop::fund_of(&self.state.markets, a));
        let fund = crate::backstop::fund_mut(&mut self.state, fund_id.as_ref());
        fund.balance = fund.balance.checked_add(fund_share).map_err(arithmetic)?;
        fund.inflows = fund.inflows.checked_add(fund_share).map_err(arithmetic)?;
        // Realized PnL is settled against the venue that holds the positions.
        let realized = realized_account
            .checked_add(realized_liquidator)
            .map_err(arithmetic)?;
        let venue_balance = self
            .state
            .venue_settlements
            .entry(take.venue.clone())
            .or_default();
        *venue_balance = venue_balance.checked_sub(realized).map_err(arithmetic)?;

        let remaining = order
            .quantity
            .checked_sub(take.quantity)
            .map_err(arithmetic)?;
        if remaining.is_zero() {
            self.state.liquidation_orders.remove(&key);
        } else if let Some(order) = self.state.liquidation_orders.get_mut(&key) {
            order.quantity = remaining;
        }
        let block = self.context()?;
        let mut instruction =
            crate::instructions::Instruction::new(take.venue.clone(), "take_over", take.account);
        instruction.market = Some(take.market.clone());
        instruction.quantity = Some(take.quantity);
        instruction.price = Some(take.price);
        instruction.side = order.side;
        instruction.counterparty = Some(liquidator);
        block.instructions.push(instruction);
        block.dirty_orders.insert(key);
        block.dirty_settlements.insert(take.venue.clone());
        block.dirty_funds.insert(fund_id);
        block.dirty_markets.insert(take.market.clone());
        block.dirty_positions.insert(take.account);
        block.dirty_positions.insert(liquidator);
        Ok(Event::new("take_over_position")
            .with("venue", &take.venue)
            .with("account", take.account)
            .with("liquidator", liquidator)
            .with("market", &take.market)
            .with("quantity", take.quantity)
            .with("price", take.price)
            .with("penalty", penalty)
            .with("penalty_rate_ppm", rate.ppm()))
    }

    /// Fills `delta` at `price` into an account's position; returns the realized PnL.
    pub(crate) fn move_position(
        &mut self,
        address: Address,
        key: &crate::state::PositionKey,
        delta: Quantity,
        price: clearnode_num::Price,
    ) -> Result<Money, TxRejection> {
        let height = self.state.chain.height;
        let account = self.touch_account(address)?;
        let old = account
            .positions
            .get(key)
            .map_or(Quantity::ZERO, |p| p.size);
        let (position, realized) =
            fill(account.positions.get(key), delta, price, height).map_err(arithmetic)?;
        let new = position.as_ref().map_or(Quantity::ZERO, |p| p.size);
        match position {
            Some(position) => account.positions.insert(key.clone(), position),
            None => account.positions.remove(key),
        };
        account.settled_pnl = account
            .settled_pnl
            .checked_add(realized)
            .map_err(arithmetic)?;
        let change = super::report::open_interest_change(old, new).map_err(arithmetic)?;
        self.move_open_interest(key.0.clone(), &key.1, change)?;
        Ok(realized)
    }
}
