//! The liquidation ladder (docs/margin.md, "The liquidation ladder") and
//! takeovers by registered liquidators.

use std::collections::BTreeMap;

use clearnode_types::{Address, TxCode};

use super::fixed::{notional, pnl, price_of, quantity_worth, times_ppm, Round, PPM};
use super::margin::{self, Fraction};
use super::{AccountModel, MarketModel, Model, Order, OrderKey, Params, Position, BACKSTOP};

/// The end of a block, after every risk is recomputed: accounts back above
/// maintenance lose their orders and leave liquidation; then up to
/// `accounts_per_block_max` accounts under maintenance, most under water
/// first, get a fresh order per position.
pub(super) fn run_ladder(model: &mut Model) {
    let recovered: Vec<Address> = model
        .accounts
        .keys()
        .filter(|address| **address != BACKSTOP)
        .filter(|address| !model.risks[*address].under_maintenance())
        .copied()
        .collect();
    for address in recovered {
        leave_liquidation(model, address);
    }
    // Ordered by the floored margin ratio, then by address (the engine's
    // risk index): "most under water first", made total.
    let mut candidates: Vec<(i128, Address)> = model
        .risks
        .iter()
        .filter(|(address, risk)| **address != BACKSTOP && risk.under_maintenance())
        .map(|(address, risk)| (risk.margin_ratio_ppm().expect("has maintenance"), *address))
        .collect();
    candidates.sort();
    candidates.truncate(model.params.accounts_per_block_max);
    for (_, address) in candidates {
        // A paused market or a price not to be trusted holds it back (it
        // keeps its place among the candidates).
        if model.account_liquidation_blocked(&model.accounts[&address]) {
            continue;
        }
        post_orders(model, address);
    }
    offer_backstop_book(model);
}

/// The backstop's whole positions, every block, at the widest band (as if
/// fully under water), with no deadline.
fn offer_backstop_book(model: &mut Model) {
    let height = model.height;
    let Some(book) = model.accounts.get(&BACKSTOP) else {
        return;
    };
    let wanted: BTreeMap<OrderKey, Order> = book
        .positions
        .iter()
        .map(|((market, venue), position)| {
            let (_, limit_price, side) =
                order_for(&model.markets[market], position, PPM, &model.params);
            let key = (BACKSTOP, market.clone(), venue.clone());
            let posted_height = model
                .orders
                .get(&key)
                .map_or(height, |order| order.posted_height);
            let order = Order {
                quantity: position.size.abs(),
                limit_price,
                side,
                posted_height,
                deadline_height: 0,
            };
            (key, order)
        })
        .collect();
    for (key, order) in &wanted {
        if model.orders.get(key) != Some(order) {
            model.instructed.insert(key.2.clone());
        }
    }
    model.orders.retain(|key, _| key.0 != BACKSTOP);
    model.orders.extend(wanted);
}

fn leave_liquidation(model: &mut Model, address: Address) {
    let before = model.orders.len();
    model.orders.retain(|key, _| key.0 != address);
    let cancelled = (before - model.orders.len()) as u64;
    model.tally.orders_cancelled += cancelled;
    if cancelled == 0 && model.deviations.liquidation_status_needs_an_order {
        return;
    }
    model
        .accounts
        .get_mut(&address)
        .expect("listed")
        .liquidating_since = 0;
}

/// One order per position of an account under maintenance; an order that
/// already exists keeps its posting height; all carry the account's deadline.
fn post_orders(model: &mut Model, address: Address) {
    let height = model.height;
    let under_water = model.risks[&address].under_water_ppm();
    let account = model.accounts.get_mut(&address).expect("listed");
    if account.liquidating_since == 0 {
        account.liquidating_since = height;
    }
    let wanted: BTreeMap<OrderKey, (i128, i128, i32)> = account
        .positions
        .iter()
        .map(|((market, venue), position)| {
            let key = (address, market.clone(), venue.clone());
            let order = order_for(&model.markets[market], position, under_water, &model.params);
            (key, order)
        })
        .collect();
    // Orders for positions that are gone go.
    model
        .orders
        .retain(|key, _| key.0 != address || wanted.contains_key(key));
    // The account's deadline: when the backstop takes over what is left.
    let deadline_height = model.accounts[&address].liquidating_since + model.params.deadline_blocks;
    for (key, (quantity, limit_price, side)) in wanted {
        let posted_height = match model.orders.get(&key) {
            Some(order) => order.posted_height,
            None => {
                model.tally.orders_posted += 1;
                height
            }
        };
        let order = Order {
            quantity,
            limit_price,
            side,
            posted_height,
            deadline_height,
        };
        if model.orders.get(&key) != Some(&order) {
            model.instructed.insert(key.2.clone());
        }
        model.orders.insert(key, order);
    }
}

/// Quantity, limit price and side of the order for one position:
/// `min(|size|, max(fraction x |size|, min_notional / mark))`, at a band of
/// `under water x spread_to_maintenance x (f_m x maintenance_fraction)`
/// around the mark, rounded against the account at every step.
fn order_for(
    market: &MarketModel,
    position: &Position,
    under_water_ppm: i128,
    params: &Params,
) -> (i128, i128, i32) {
    let size = position.size.abs();
    let fraction = times_ppm(size, params.fraction_per_block_ppm, Round::Up);
    let minimum = quantity_worth(params.min_notional, market.price, Round::Up);
    let quantity = fraction.max(minimum).min(size);
    let initial_fraction = market.regime.current.max(market.base_ppm);
    let maintenance_fraction =
        times_ppm(initial_fraction, market.maintenance_fraction_ppm, Round::Up);
    let spread = times_ppm(under_water_ppm, params.spread_to_maintenance_ppm, Round::Up);
    let band = times_ppm(spread, maintenance_fraction, Round::Up).min(PPM);
    if position.size > 0 {
        // A long is sold: the lowest acceptable price, at least one raw unit.
        let limit = times_ppm(market.price, PPM - band, Round::Down).max(1);
        (quantity, limit, 1)
    } else {
        let limit = times_ppm(market.price, PPM + band, Round::Up);
        (quantity, limit, -1)
    }
}

/// `min(fee_max, fee_base + fee_convex x (under water)^2 + fee_per_block x blocks)`.
fn penalty_rate(params: &Params, under_water_ppm: i128, blocks_in_liquidation: u64) -> i128 {
    let squared = times_ppm(under_water_ppm, under_water_ppm, Round::Up);
    let convex = times_ppm(squared, params.fee_convex_ppm, Round::Up);
    let waiting = params.fee_per_block_ppm * i128::from(blocks_in_liquidation.min(1_000_000));
    (params.fee_base_ppm + convex + waiting).min(params.fee_max_ppm)
}

/// The signed size the liquidator takes: a long being sold is bought.
fn taken(quantity: i128, side: i32) -> i128 {
    if side > 0 {
        quantity
    } else {
        -quantity
    }
}

impl Model {
    /// The liquidator (registered, not the account itself, authorized on
    /// the venue), the order (exists, quantity, band), then the liquidator's
    /// initial margin, at the targets of new risk, with the position taken.
    /// docs/transactions.md lists 312 before 313 and does not mention 206
    /// for takeovers; this order is the engine's (who, then how much, then
    /// at what price), which the table does not contradict as a precedence.
    ///
    /// Both the order and the position the account still holds bound the
    /// quantity: a report earlier in the block may have shrunk it.
    pub(super) fn validate_take_over(
        &self,
        signer: Address,
        key: &OrderKey,
        quantity: i128,
        price: i128,
    ) -> Result<(), TxCode> {
        let liquidator = self
            .accounts
            .get(&signer)
            .filter(|a| a.liquidator)
            .ok_or(TxCode::NotLiquidator)?;
        if signer == key.0 {
            return Err(TxCode::NotLiquidator);
        }
        if !liquidator.authorized_venues.contains(&key.2) {
            return Err(TxCode::VenueNotAuthorized);
        }
        let order = self.orders.get(key).ok_or(TxCode::NoLiquidationOrder)?;
        if let Some(code) = self.liquidation_blocked(&key.1) {
            return Err(code);
        }
        if quantity > order.quantity {
            return Err(TxCode::QuantityAboveOrder);
        }
        // Never more than the account still holds, nor the other side.
        let held = self
            .accounts
            .get(&key.0)
            .and_then(|a| a.positions.get(&(key.1.clone(), key.2.clone())))
            .map_or(0, |p| p.size);
        if held.signum() != i128::from(order.side) || held.abs() < quantity {
            return Err(TxCode::QuantityAboveOrder);
        }
        let inside = if order.side > 0 {
            price >= order.limit_price
        } else {
            price <= order.limit_price
        };
        if !inside {
            return Err(TxCode::OutsidePriceBand);
        }
        // Nor a price that costs the account more than its equity: a
        // takeover never creates bad debt (the backstop resolves that).
        if key.0 != BACKSTOP {
            let risk = self.risk_now(&self.accounts[&key.0]);
            let mark = self.markets[&key.1].price;
            let slippage = pnl(taken(quantity, order.side), mark, price, Round::Down);
            if risk.equity + slippage < 0 {
                return Err(TxCode::OutsidePriceBand);
            }
        }
        let mut after = liquidator.clone();
        let position_key = (key.1.clone(), key.2.clone());
        let delta = taken(quantity, order.side);
        after.settled_pnl += fill(&mut after, &position_key, delta, price, self.height);
        let no_projection = BTreeMap::new();
        let fraction = Fraction::NewRisk(&no_projection);
        let risk = margin::risk(&after, &self.markets, &self.assets, fraction);
        if risk.equity < risk.initial {
            return Err(TxCode::InsufficientInitialMargin);
        }
        Ok(())
    }

    /// The position moves at the takeover price; both sides realize the PnL
    /// of what closes, settled against the venue; the account pays the
    /// penalty, split between the liquidator and the insurance fund.
    pub(super) fn apply_take_over(
        &mut self,
        liquidator: Address,
        key: &OrderKey,
        quantity: i128,
        price: i128,
    ) {
        let height = self.height;
        let (address, market, venue) = key;
        let order = self.orders[key].clone();
        let mark = self.markets[market].price;
        let account = &self.accounts[address];
        let risk = self.risk_now(account);
        let blocks = height.saturating_sub(account.liquidating_since);
        // The backstop's book pays no penalty: the band is the incentive.
        let rate = if *address == BACKSTOP {
            0
        } else {
            penalty_rate(&self.params, risk.under_water_ppm(), blocks)
        };
        let delta = taken(quantity, order.side);
        // The penalty never takes the account below zero by itself: it is
        // capped by the equity left once the taken part leaves at `price`
        // instead of the mark.
        let equity_after = risk.equity + pnl(delta, mark, price, Round::Down);
        let charged = times_ppm(notional(quantity, price, Round::Down), rate, Round::Down);
        let penalty = charged.min(equity_after.max(0));
        let liquidator_share = times_ppm(penalty, self.params.liquidator_share_ppm, Round::Down);
        let fund_share = penalty - liquidator_share;

        let position_key = (market.clone(), venue.clone());
        let account = self.accounts.get_mut(address).expect("has an order");
        let held = account.positions.get(&position_key).map_or(0, |p| p.size);
        if held.signum() != i128::from(order.side) || held.abs() < quantity {
            self.tally.takeovers_beyond_position += 1;
        }
        let realized_account = fill(account, &position_key, -delta, price, height);
        account.settled_pnl += realized_account - penalty;
        let taker = self.accounts.get_mut(&liquidator).expect("validated");
        let realized_liquidator = fill(taker, &position_key, delta, price, height);
        taker.settled_pnl += realized_liquidator + liquidator_share;
        self.fund.balance += fund_share;
        self.fund.inflows += fund_share;
        *self.settlements.entry(venue.clone()).or_default() -=
            realized_account + realized_liquidator;

        let remaining = order.quantity - quantity;
        if remaining == 0 {
            self.orders.remove(key);
        } else {
            self.orders.get_mut(key).expect("exists").quantity = remaining;
        }
        self.tally.takeovers += 1;
        self.instructed.insert(venue.clone());
    }
}

/// Fills `delta` at `price` into a position with average cost; returns the
/// PnL realized by the part that closed (rounded down).
pub(super) fn fill(
    account: &mut AccountModel,
    key: &(String, String),
    delta: i128,
    price: i128,
    height: u64,
) -> i128 {
    let Some(position) = account.positions.get(key).cloned() else {
        let opened = Position {
            size: delta,
            entry_price: price,
            updated_height: height,
        };
        account.positions.insert(key.clone(), opened);
        return 0;
    };
    let size = position.size;
    let new_size = size + delta;
    if size.signum() == delta.signum() {
        // Adding: the entry is total cost / total size. The engine prices
        // both legs in USD and divides back, each step rounded up for a
        // long and down for a short.
        let round = if size > 0 { Round::Up } else { Round::Down };
        let cost = notional(size, position.entry_price, round) + notional(delta, price, round);
        let added = Position {
            size: new_size,
            entry_price: price_of(cost, new_size, round),
            updated_height: height,
        };
        account.positions.insert(key.clone(), added);
        return 0;
    }
    let closed = if delta.abs() >= size.abs() {
        size
    } else {
        -delta
    };
    let realized = pnl(closed, position.entry_price, price, Round::Down);
    if new_size == 0 {
        account.positions.remove(key);
    } else {
        // What remains keeps its entry; a flip opens at the fill price.
        let entry_price = if new_size.signum() == size.signum() {
            position.entry_price
        } else {
            price
        };
        let remaining = Position {
            size: new_size,
            entry_price,
            updated_height: height,
        };
        account.positions.insert(key.clone(), remaining);
    }
    realized
}
