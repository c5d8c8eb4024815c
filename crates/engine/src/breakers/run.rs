//! The breakers inside the block lifecycle: market steps at the start of a
//! block, invariants, caps and the system breaker at its end, and the
//! permissionless `TripBreaker` transaction.

use std::collections::{BTreeMap, BTreeSet};

use clearnode_num::{Money, NumError, Price, Quantity, Rounding};
use clearnode_types::price::{OracleRound, PriceTarget};
use clearnode_types::{Address, MarketId, TxCode, TxRejection};

use super::{MarketStatus, PauseCause, SystemCause, Transition};
use prost::Message;

use crate::block::{Engine, Event, Write};
use crate::instructions::Instruction;
use crate::keys;
use crate::state::MarketTotals;
use crate::{invariant, EngineError};

/// Instructions about a market or the system name no account.
const NO_ACCOUNT: Address = Address::from_bytes([0; 20]);

fn arithmetic(e: NumError) -> EngineError {
    invariant(format!("breaker arithmetic: {e}"))
}

/// What breaks a market's totals, if anything: every account's net size is
/// the sum of its venue sizes, so the long/short totals and the venues'
/// must agree with the net ones.
fn totals_broken(totals: &MarketTotals) -> Result<Option<String>, NumError> {
    let reported = totals.long.checked_sub(totals.short)?;
    let netted = totals.net_long.checked_sub(totals.net_short)?;
    if reported != netted {
        return Ok(Some(format!(
            "long - short ({reported}) differs from net long - net short ({netted})"
        )));
    }
    let mut long = Quantity::ZERO;
    let mut short = Quantity::ZERO;
    for interest in totals.venues.values() {
        long = long.checked_add(interest.long)?;
        short = short.checked_add(interest.short)?;
    }
    if long != totals.long || short != totals.short {
        return Ok(Some(format!(
            "venues' open interest ({long} long, {short} short) differs from the market's ({} long, {} short)",
            totals.long, totals.short
        )));
    }
    Ok(None)
}

impl Engine {
    /// The stored value of a market's breaker (`Some`) or the system's.
    pub(crate) fn breaker_write(&self, which: Option<&MarketId>) -> Result<Write, EngineError> {
        let height = self.state.chain.height;
        let failed = |e: crate::codec::DecodeError| invariant(e.to_string());
        Ok(match which {
            None => {
                let value = super::codec::system_breaker_to_pb(&self.state.breakers.system)
                    .map_err(failed)?;
                (keys::system_breaker(), Some(value.encode_to_vec()))
            }
            Some(id) => {
                let value = match self.state.breakers.markets.get(id) {
                    Some(breaker) => Some(
                        super::codec::market_breaker_to_pb(id, breaker, height)
                            .map_err(failed)?
                            .encode_to_vec(),
                    ),
                    None => None,
                };
                (keys::market_breaker(id), value)
            }
        })
    }

    fn tell_every_venue(&mut self, kind: &'static str, market: Option<&MarketId>) {
        let venues: Vec<_> = self.state.venues.keys().cloned().collect();
        if let Some(block) = self.block.as_mut() {
            for venue in venues {
                let mut instruction = Instruction::new(venue, kind, NO_ACCOUNT);
                instruction.market = market.cloned();
                block.instructions.push(instruction);
            }
        }
    }

    fn announce(&mut self, market: &MarketId, transition: &Transition, events: &mut Vec<Event>) {
        match transition {
            Transition::Status { from, to } => {
                let kind = match (from, to) {
                    (_, MarketStatus::Limit) => "market_limit",
                    (MarketStatus::Limit, MarketStatus::Open) => "market_limit_lifted",
                    (_, MarketStatus::Open) => "market_reopened",
                    (_, MarketStatus::Paused(PauseCause::Invariant)) => "market_halted",
                    (_, MarketStatus::Paused(_)) => "market_paused",
                    (_, MarketStatus::Reopening) => "market_reopening",
                };
                events.push(
                    Event::new("breaker")
                        .with("market", market)
                        .with("from", from.name())
                        .with("to", to.name()),
                );
                self.tell_every_venue(kind, Some(market));
            }
            Transition::Validity { from, to } => {
                events.push(
                    Event::new("oracle_validity")
                        .with("market", market)
                        .with("from", from.describe())
                        .with("to", to.describe()),
                );
                let kind = if to.is_valid() {
                    "oracle_valid"
                } else {
                    "oracle_invalid"
                };
                if from.is_valid() != to.is_valid() {
                    self.tell_every_venue(kind, Some(market));
                }
            }
        }
    }

    /// Steps every market's breaker with this block's oracle round; runs
    /// after the prices are applied, before the margin regime.
    pub(crate) fn step_market_breakers(
        &mut self,
        round: &OracleRound,
        previous: &BTreeMap<MarketId, Price>,
    ) -> Result<Vec<Event>, EngineError> {
        let height = self.state.chain.height;
        let priced: BTreeSet<&MarketId> = round
            .prices
            .iter()
            .filter_map(|p| match &p.target {
                PriceTarget::Market(id) => Some(id),
                PriceTarget::Asset(_) => None,
            })
            .collect();
        let underquoted: BTreeSet<&MarketId> = round
            .underquoted
            .iter()
            .filter_map(|t| match t {
                PriceTarget::Market(id) => Some(id),
                PriceTarget::Asset(_) => None,
            })
            .collect();
        let mut events = Vec::new();
        let ids: Vec<MarketId> = self.state.breakers.markets.keys().cloned().collect();
        for id in ids {
            let Some(price) = self.state.markets.get(&id).map(|m| m.oracle_price) else {
                continue;
            };
            let input = super::OracleInput {
                price,
                previous: previous.get(&id).copied().unwrap_or(price),
                priced: priced.contains(&id),
                underquoted: underquoted.contains(&id),
            };
            let Some(breaker) = self.state.breakers.markets.get_mut(&id) else {
                continue;
            };
            let before = breaker.clone();
            let transitions = breaker.step(height, input).map_err(arithmetic)?;
            let changed = *breaker != before;
            for transition in &transitions {
                self.announce(&id, transition, &mut events);
            }
            if changed {
                self.block_context()?.dirty_breakers.insert(Some(id));
            }
        }
        Ok(events)
    }

    /// Puts a market in a status (governance pause/resume, invariant halt).
    pub(crate) fn set_market_status(
        &mut self,
        market: &MarketId,
        to: MarketStatus,
        reason: String,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        let height = self.state.chain.height;
        let price = self.state.markets.get(market).map(|m| m.oracle_price);
        let Some(breaker) = self.state.breakers.markets.get_mut(market) else {
            return Ok(());
        };
        let mut transitions = Vec::new();
        match (to, price) {
            (MarketStatus::Reopening, Some(price)) => {
                breaker.reopen(price, height, &mut transitions)
            }
            _ => {
                breaker.enter(to, height, &mut transitions);
                breaker.halt_reason = reason;
            }
        }
        for transition in &transitions {
            self.announce(market, transition, events);
        }
        self.block_context()?
            .dirty_breakers
            .insert(Some(market.clone()));
        Ok(())
    }

    /// End of block: market invariants and caps of the markets the block
    /// changed, then the system breaker.
    pub(crate) fn evaluate_breakers(
        &mut self,
        dirty_markets: &BTreeSet<MarketId>,
        events: &mut Vec<Event>,
    ) -> Result<(), EngineError> {
        for id in dirty_markets {
            self.evaluate_market(id, events)?;
        }
        self.evaluate_system(events, false).map(|_| ())
    }

    /// A market's invariant (a breach halts it) and its cap flags; returns
    /// whether a breaker tripped.
    fn evaluate_market(
        &mut self,
        id: &MarketId,
        events: &mut Vec<Event>,
    ) -> Result<bool, EngineError> {
        let (Some(totals), Some(market)) =
            (self.state.market_totals.get(id), self.state.markets.get(id))
        else {
            return Ok(false);
        };
        let broken = totals_broken(totals).map_err(arithmetic)?;
        let price = market.oracle_price;
        let Some(breaker) = self.state.breakers.markets.get(id) else {
            return Ok(false);
        };
        let halted = breaker.status == MarketStatus::Paused(PauseCause::Invariant);
        let mut tripped = false;
        if let (Some(reason), false) = (broken, halted) {
            events.push(
                Event::new("invariant_breach")
                    .with("market", id)
                    .with("reason", &reason),
            );
            let halt = MarketStatus::Paused(PauseCause::Invariant);
            self.set_market_status(id, halt, reason, events)?;
            tripped = true;
        }
        let (Some(totals), Some(breaker)) = (
            self.state.market_totals.get(id),
            self.state.breakers.markets.get(id),
        ) else {
            return Ok(tripped);
        };
        let at_cap = |cap: Money, long: Quantity, short: Quantity| -> Result<bool, NumError> {
            Ok(cap.is_positive() && long.max(short).notional(price, Rounding::Ceil)? >= cap)
        };
        let params = &breaker.params;
        let capped =
            at_cap(params.open_interest_cap, totals.long, totals.short).map_err(arithmetic)?;
        let mut venues_capped = BTreeSet::new();
        for (venue, interest) in &totals.venues {
            if at_cap(
                params.venue_open_interest_cap,
                interest.long,
                interest.short,
            )
            .map_err(arithmetic)?
            {
                venues_capped.insert(venue.clone());
            }
        }
        if capped != breaker.open_interest_capped || venues_capped != breaker.venues_capped {
            if let Some(breaker) = self.state.breakers.markets.get_mut(id) {
                breaker.open_interest_capped = capped;
                breaker.venues_capped = venues_capped;
            }
            events.push(
                Event::new("open_interest_cap")
                    .with("market", id)
                    .with("market_capped", capped),
            );
            self.block_context()?
                .dirty_breakers
                .insert(Some(id.clone()));
        }
        Ok(tripped)
    }

    /// The two largest stress losses, summed, from the index (complete at
    /// a block's end).
    fn stress_loss_top_two(&self) -> Result<Money, NumError> {
        let largest = self.state.indexes.by_stress_loss.iter().rev().take(2);
        Money::checked_sum(largest.map(|(loss, _)| *loss))
    }

    /// The same now, inside a block (TripBreaker): the index holds the
    /// accounts the block touched as they were at their first touch until
    /// its end, so those entries are skipped and theirs are computed from
    /// their state now (the backstop's book and isolated sub-accounts stay
    /// out, as in the index).
    fn stress_loss_top_two_now(&self) -> Result<Money, NumError> {
        let touched = self.block.as_ref().map(|block| &block.touched);
        let mut losses: Vec<Money> = self
            .state
            .indexes
            .by_stress_loss
            .iter()
            .rev()
            .filter(|(_, address)| !touched.is_some_and(|t| t.contains_key(address)))
            .take(2)
            .map(|(loss, _)| *loss)
            .collect();
        if let Some(block) = &self.block {
            let stress_move = self.state.breakers.system.params.coverage_stress_move;
            let height = self.state.chain.height;
            for address in block.touched.keys() {
                let Some(account) = self.state.accounts.get(address) else {
                    continue;
                };
                if account.isolated.is_some() || crate::backstop::is_book(address, account) {
                    continue;
                }
                let risk = crate::margin::compute_risk(
                    account,
                    &self.state.markets,
                    &self.state.assets,
                    height,
                )?;
                losses.push(super::stress_default_loss(&risk, stress_move)?);
            }
        }
        losses.sort_unstable_by(|a, b| b.cmp(a));
        Money::checked_sum(losses.into_iter().take(2))
    }

    /// Re-evaluates the system breaker: trips it when a cause holds, clears
    /// it when none does (unless `trip_only`); returns whether it tripped.
    fn evaluate_system(
        &mut self,
        events: &mut Vec<Event>,
        trip_only: bool,
    ) -> Result<bool, EngineError> {
        let height = self.state.chain.height;
        let balance = self.state.insurance_fund.balance;
        // From TripBreaker (trip_only) the block is still open.
        let top_two = if trip_only {
            self.stress_loss_top_two_now()
        } else {
            self.stress_loss_top_two()
        }
        .map_err(arithmetic)?;
        let before = self.state.breakers.system.clone();
        let system = &mut self.state.breakers.system;
        system.record_fund(height, balance);
        let causes = system.conditions(balance, top_two).map_err(arithmetic)?;
        let mut kind = None;
        let tripped = !system.tripped && !causes.is_empty();
        if tripped {
            system.tripped = true;
            system.tripped_since = height;
            system.causes = causes;
            kind = Some("system_reduce_only");
        } else if system.tripped && causes.is_empty() && !trip_only {
            system.tripped = false;
            system.causes.clear();
            kind = Some("system_recovered");
        } else if system.tripped {
            system.causes.extend(causes);
        }
        let changed = *system != before;
        if let Some(kind) = kind {
            let causes: Vec<&str> = system
                .causes
                .iter()
                .map(|c| match c {
                    SystemCause::FundDrawdown => "fund_drawdown",
                    SystemCause::FundCoverage => "fund_coverage",
                })
                .collect();
            events.push(Event::new(kind).with("causes", causes.join(",")));
            self.tell_every_venue(kind, None);
        }
        if changed {
            self.block_context()?.dirty_breakers.insert(None);
        }
        Ok(tripped)
    }

    /// Whether a market's price is outside its band while it trades.
    fn band_breached_while_trading(&self, id: &MarketId) -> Result<bool, NumError> {
        let (Some(breaker), Some(market)) = (
            self.state.breakers.markets.get(id),
            self.state.markets.get(id),
        ) else {
            return Ok(false);
        };
        let trading = matches!(breaker.status, MarketStatus::Open | MarketStatus::Reopening);
        Ok(trading && breaker.breached(market.oracle_price)?)
    }

    /// TripBreaker's check (no change): some condition of the named breaker
    /// holds now and is not yet tripped.
    pub(crate) fn trip_condition_holds(
        &self,
        market: Option<&MarketId>,
    ) -> Result<(), TxRejection> {
        let arithmetic = |e: NumError| TxRejection::new(TxCode::InvalidAmount, e.to_string());
        let holds = match market {
            None => {
                let mut system = self.state.breakers.system.clone();
                let top_two = self.stress_loss_top_two_now().map_err(arithmetic)?;
                let balance = self.state.insurance_fund.balance;
                system.record_fund(self.state.chain.height, balance);
                !system.tripped
                    && !system
                        .conditions(balance, top_two)
                        .map_err(arithmetic)?
                        .is_empty()
            }
            Some(id) => {
                let breaker = self.state.breakers.markets.get(id).ok_or_else(|| {
                    TxRejection::new(TxCode::UnknownMarket, format!("market {id} is not listed"))
                })?;
                let halted = breaker.status == MarketStatus::Paused(PauseCause::Invariant);
                let broken = match self.state.market_totals.get(id) {
                    Some(totals) => totals_broken(totals).map_err(arithmetic)?.is_some(),
                    None => false,
                };
                (broken && !halted) || self.band_breached_while_trading(id).map_err(arithmetic)?
            }
        };
        if holds {
            return Ok(());
        }
        let scope = market.map_or("the system".to_string(), |m| format!("market {m}"));
        Err(TxRejection::new(
            TxCode::BreakerConditionFalse,
            format!("no breaker condition of {scope} holds that is not already tripped"),
        ))
    }

    /// TripBreaker, once its check passed: trips what holds.
    pub(crate) fn apply_trip_breaker(
        &mut self,
        market: Option<MarketId>,
    ) -> Result<Event, TxRejection> {
        let failed = |e: EngineError| TxRejection::new(TxCode::InvalidAmount, e.to_string());
        let arithmetic = |e: NumError| TxRejection::new(TxCode::InvalidAmount, e.to_string());
        let mut events = Vec::new();
        match &market {
            None => {
                self.evaluate_system(&mut events, true).map_err(failed)?;
            }
            Some(id) => {
                let halted = self.evaluate_market(id, &mut events).map_err(failed)?;
                if !halted && self.band_breached_while_trading(id).map_err(arithmetic)? {
                    self.set_market_status(id, MarketStatus::Limit, String::new(), &mut events)
                        .map_err(failed)?;
                }
            }
        }
        let tripped: Vec<String> = events
            .iter()
            .map(|e| {
                let attributes: Vec<String> = e
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!("{}({})", e.kind, attributes.join(" "))
            })
            .collect();
        Ok(Event::new("trip_breaker")
            .with(
                "breaker",
                market
                    .as_ref()
                    .map_or("system".to_string(), |m| m.to_string()),
            )
            .with("tripped", tripped.join("; ")))
    }
}
