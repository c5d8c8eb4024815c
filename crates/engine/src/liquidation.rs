//! The liquidation ladder.
//!
//! At the end of every block, after risk is recomputed, up to
//! `accounts_per_block_max` accounts under maintenance (most under water
//! first, from the risk index) get a liquidation order per position: a
//! fraction of it (at least `min_notional`), at a limit price that leaves
//! the oracle by up to `spread_to_maintenance` x the market's maintenance
//! fraction, scaled by how far under water the account is (dYdX's fillable
//! price). Registered liquidators take orders over with `TakeOverPosition`;
//! orders are refreshed every block, so at most the offered fraction goes per
//! block. Accounts that recover lose their orders. Orders carry the
//! account's deadline (`liquidating_since + deadline_blocks`), when the
//! insurance fund's backstop takes over what is left (`backstop`); a
//! bankrupt account goes to the backstop at once.

use std::collections::BTreeSet;

use clearnode_num::{mul_div, Money, NumError, Price, Quantity, Ratio, Rounding};
use clearnode_types::Address;

use crate::block::{BlockContext, Engine, Event};
use crate::instructions::Instruction;
use crate::margin::{margin_ratio_ppm, Risk};
use crate::state::{LiquidationOrder, Market, OrderKey, Position};
use crate::{invariant, EngineError};

/// A ratio of 1.0 (margin ratio equity / maintenance, or a fraction), in ppm.
pub(crate) const RATIO_ONE_PPM: i128 = 1_000_000;
/// Raw quantity x raw price / this = raw money (10^(9+9-6)).
pub(crate) const NOTIONAL_DIVISOR: i128 = 1_000_000_000_000;

/// Whether risk puts an account under maintenance.
pub(crate) fn is_liquidatable(risk: &Risk) -> bool {
    margin_ratio_ppm(risk).is_some_and(|ratio| ratio < RATIO_ONE_PPM)
}

/// How far under water, in [0, 1]: (maintenance - equity) / maintenance.
pub(crate) fn under_water(risk: &Risk) -> Result<Ratio, NumError> {
    if !risk.maintenance.is_positive() {
        return Ok(Ratio::ZERO);
    }
    let shortfall = risk.maintenance.checked_sub(risk.equity)?;
    let ratio = mul_div(
        shortfall.raw(),
        RATIO_ONE_PPM,
        risk.maintenance.raw(),
        Rounding::Ceil,
    )?;
    Ok(Ratio::from_raw(ratio.clamp(0, RATIO_ONE_PPM)))
}

/// Applies a fill of `delta` at `price` to a position (average cost):
/// the new position and the PnL realized by the part that closed.
pub(crate) fn fill(
    position: Option<&Position>,
    delta: Quantity,
    price: Price,
    height: u64,
) -> Result<(Option<Position>, Money), NumError> {
    let Some(position) = position else {
        let opened = (!delta.is_zero()).then_some(Position {
            size: delta,
            entry_price: price,
            updated_height: height,
        });
        return Ok((opened, Money::ZERO));
    };
    let size = position.size;
    let new_size = size.checked_add(delta)?;
    if size.signum() == delta.signum() {
        // Adding: the entry moves to the weighted average, rounded against
        // the holder (up for a long, down for a short).
        let rounding = if size.is_positive() {
            Rounding::Ceil
        } else {
            Rounding::Floor
        };
        let cost = size.notional(position.entry_price, rounding)?;
        let added = delta.notional(price, rounding)?;
        let total = cost.checked_add(added)?;
        let entry = mul_div(total.raw(), NOTIONAL_DIVISOR, new_size.raw(), rounding)?;
        let position = Position {
            size: new_size,
            entry_price: Price::from_raw(entry)?,
            updated_height: height,
        };
        return Ok((Some(position), Money::ZERO));
    }
    // Reducing, closing or flipping: the closed part realizes its PnL.
    let closed = if delta.abs()? >= size.abs()? {
        size
    } else {
        delta.checked_neg()?
    };
    let realized = closed.pnl(position.entry_price, price, Rounding::Floor)?;
    let remaining = if new_size.is_zero() {
        None
    } else if new_size.signum() == size.signum() {
        Some(Position {
            size: new_size,
            entry_price: position.entry_price,
            updated_height: height,
        })
    } else {
        Some(Position {
            size: new_size,
            entry_price: price,
            updated_height: height,
        })
    };
    Ok((remaining, realized))
}

/// The order for one position of an account under water.
fn order_for(
    market: &Market,
    position: &Position,
    under_water: Ratio,
    params: &crate::state::LiquidationParams,
) -> Result<(Quantity, Price, i32), NumError> {
    let size = position.size.abs()?;
    let fraction = size.mul_ratio(params.fraction_per_block, Rounding::Ceil)?;
    let minimum = Quantity::from_raw(mul_div(
        params.min_notional.raw(),
        NOTIONAL_DIVISOR,
        market.oracle_price.raw(),
        Rounding::Ceil,
    )?);
    let quantity = fraction.max(minimum).min(size);
    let maintenance_fraction = market
        .margin
        .current
        .max(market.initial_margin)
        .checked_mul(market.maintenance_fraction, Rounding::Ceil)?;
    let band = under_water
        .checked_mul(params.spread_to_maintenance, Rounding::Ceil)?
        .checked_mul(maintenance_fraction, Rounding::Ceil)?
        .min(Ratio::ONE);
    // Rounded against the account: a long may be sold lower, a short bought higher.
    let (limit, side) = if position.size.is_positive() {
        let factor = band.one_minus()?;
        let raw = mul_div(
            market.oracle_price.raw(),
            factor.raw(),
            RATIO_ONE_PPM,
            Rounding::Floor,
        )?;
        (Price::from_raw(raw.max(1))?, 1)
    } else {
        let factor = Ratio::ONE.checked_add(band)?;
        (
            market
                .oracle_price
                .checked_mul_ratio(factor, Rounding::Ceil)?,
            -1,
        )
    };
    Ok((quantity, limit, side))
}

impl Engine {
    /// Posts, refreshes and cancels liquidation orders; returns the accounts
    /// whose liquidation status changed (their records must be written).
    pub(crate) fn run_ladder(
        &mut self,
        block: &mut BlockContext,
        events: &mut Vec<Event>,
    ) -> Result<BTreeSet<Address>, EngineError> {
        let height = block.header.height;
        let params = self.state.params.liquidation.clone();
        let mut changed = BTreeSet::new();

        // Recovered accounts (or ones whose positions are gone) lose their orders.
        let with_orders: BTreeSet<Address> = self
            .state
            .liquidation_orders
            .keys()
            .map(|key| key.0)
            .filter(|address| {
                !self
                    .state
                    .accounts
                    .get(address)
                    .is_some_and(|a| crate::backstop::is_book(address, a))
            })
            .collect();
        for address in with_orders {
            let still = self
                .state
                .accounts
                .get(&address)
                .is_some_and(|a| is_liquidatable(&a.risk));
            if !still {
                self.cancel_orders(address, block, events);
                if let Some(account) = self.state.accounts.get_mut(&address) {
                    account.liquidating_since = 0;
                }
                changed.insert(address);
            }
        }

        // Touched accounts that are no longer under water leave liquidation,
        // even when a liquidator took their last order.
        for address in block.touched.keys() {
            if let Some(account) = self.state.accounts.get_mut(address) {
                if account.liquidating_since != 0 && !is_liquidatable(&account.risk) {
                    account.liquidating_since = 0;
                    changed.insert(*address);
                }
            }
        }

        // The most under water first, a bounded number per block.
        let candidates: Vec<Address> = self
            .state
            .indexes
            .by_risk
            .iter()
            .take_while(|(ratio, _)| *ratio < RATIO_ONE_PPM)
            .take(params.accounts_per_block_max as usize)
            .map(|(_, address)| *address)
            .collect();
        for address in candidates {
            let account = self
                .state
                .accounts
                .get(&address)
                .ok_or_else(|| invariant(format!("indexed account {address} vanished")))?;
            // A paused market or a price not to be trusted holds it back.
            if crate::breakers::account_liquidation_blocked(&self.state, account, height) {
                continue;
            }
            let account = self
                .state
                .accounts
                .get_mut(&address)
                .ok_or_else(|| invariant(format!("indexed account {address} vanished")))?;
            if account.liquidating_since == 0 {
                account.liquidating_since = height;
                changed.insert(address);
            }
            let under_water = under_water(&account.risk).map_err(invariant)?;
            let mut wanted = Vec::new();
            for ((market_id, venue), position) in &account.positions {
                let market =
                    self.state.markets.get(market_id).ok_or_else(|| {
                        invariant(format!("position in unlisted market {market_id}"))
                    })?;
                let (quantity, limit_price, side) =
                    order_for(market, position, under_water, &params).map_err(invariant)?;
                wanted.push((
                    (address, market_id.clone(), venue.clone()),
                    quantity,
                    limit_price,
                    side,
                ));
            }
            self.post_orders(address, wanted, block, events);
        }
        for fund in crate::backstop::funds(&self.state.markets) {
            let book = crate::backstop::book_of(fund.as_ref());
            self.offer_backstop_book(book, block, events)?;
        }
        Ok(changed)
    }

    /// The backstop's positions, offered whole to liquidators every block at
    /// the widest band and without a deadline.
    fn offer_backstop_book(
        &mut self,
        book_address: Address,
        block: &mut BlockContext,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let params = self.state.params.liquidation.clone();
        let Some(book) = self.state.accounts.get(&book_address) else {
            return Ok(());
        };
        let mut wanted = Vec::with_capacity(book.positions.len());
        for ((market_id, venue), position) in &book.positions {
            let market = self
                .state
                .markets
                .get(market_id)
                .ok_or_else(|| invariant(format!("backstop holds unlisted {market_id}")))?;
            let (_, limit_price, side) =
                order_for(market, position, Ratio::ONE, &params).map_err(invariant)?;
            let quantity = position.size.abs().map_err(invariant)?;
            wanted.push((
                (book_address, market_id.clone(), venue.clone()),
                quantity,
                limit_price,
                side,
            ));
        }
        self.post_orders(book_address, wanted, block, events);
        Ok(())
    }

    /// Posts or refreshes orders; an existing order keeps its posting
    /// height and deadline (none for the backstop's book).
    fn post_orders(
        &mut self,
        address: Address,
        wanted: Vec<(OrderKey, Quantity, Price, i32)>,
        block: &mut BlockContext,
        events: &mut Vec<Event>,
    ) {
        let height = block.header.height;
        // The account's deadline: the backstop takes it over then.
        let deadline = match self.state.accounts.get(&address) {
            Some(account) if !crate::backstop::is_book(&address, account) => account
                .liquidating_since
                .saturating_add(u64::from(self.state.params.liquidation.deadline_blocks)),
            _ => 0,
        };
        // Orders for positions that no longer exist go.
        let stale: Vec<OrderKey> = self
            .state
            .liquidation_orders
            .range((address, min_market(), min_venue())..)
            .take_while(|(key, _)| key.0 == address)
            .map(|(key, _)| key.clone())
            .filter(|key| !wanted.iter().any(|(k, ..)| k == key))
            .collect();
        for key in stale {
            self.state.liquidation_orders.remove(&key);
            block.dirty_orders.insert(key);
        }
        for (key, quantity, limit_price, side) in wanted {
            let previous = self.state.liquidation_orders.get(&key);
            let order = LiquidationOrder {
                quantity,
                limit_price,
                side,
                posted_height: previous.map_or(height, |o| o.posted_height),
                deadline_height: deadline,
            };
            if previous != Some(&order) {
                let mut instruction = Instruction::new(key.2.clone(), "liquidation_order", key.0);
                instruction.market = Some(key.1.clone());
                instruction.quantity = Some(quantity);
                instruction.price = Some(limit_price);
                instruction.side = side;
                instruction.deadline_height = deadline;
                block.instructions.push(instruction);
                events.push(
                    Event::new("liquidation_order")
                        .with("venue", &key.2)
                        .with("account", key.0)
                        .with("market", &key.1)
                        .with("quantity", quantity)
                        .with("limit_price", limit_price)
                        .with("side", side)
                        .with("deadline_height", deadline),
                );
                block.dirty_orders.insert(key.clone());
                self.state.liquidation_orders.insert(key, order);
            }
        }
    }

    fn cancel_orders(
        &mut self,
        address: Address,
        block: &mut BlockContext,
        events: &mut Vec<Event>,
    ) {
        let keys: Vec<OrderKey> = self
            .state
            .liquidation_orders
            .range((address, min_market(), min_venue())..)
            .take_while(|(key, _)| key.0 == address)
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            self.state.liquidation_orders.remove(&key);
            let mut instruction = Instruction::new(key.2.clone(), "liquidation_cancelled", key.0);
            instruction.market = Some(key.1.clone());
            block.instructions.push(instruction);
            events.push(
                Event::new("liquidation_cancelled")
                    .with("venue", &key.2)
                    .with("account", key.0)
                    .with("market", &key.1),
            );
            block.dirty_orders.insert(key);
        }
    }
}

/// The smallest market id ("-" sorts before every other id character), for
/// range scans by account.
fn min_market() -> clearnode_types::MarketId {
    "-".parse().unwrap_or_else(|_| unreachable!("a valid id"))
}

/// The smallest venue id, for range scans by account.
fn min_venue() -> clearnode_types::VenueId {
    "-".parse().unwrap_or_else(|_| unreachable!("a valid id"))
}

#[cfg(test)]
mod tests;
