//! The engine and its block lifecycle: `begin_block`, `deliver_tx` for each
//! transaction, `end_block` (risk of touched accounts, aggregates,
//! conservation check, writes).

use std::collections::{BTreeMap, BTreeSet};

use clearnode_num::{Money, Quantity};
use clearnode_proto::state::v1 as pb;
use clearnode_types::tx::{verify_tx, VerifiedTx};
use clearnode_types::{Address, AssetId, MarketId, TxCode, TxRejection, VenueId};
use prost::Message;

use crate::aggregates::{
    replace_contribution, Contributions, PositionKeys, PositionsHeld, RiskKeys,
};
use crate::prices::{OracleRound, PriceUpdate};
use crate::small_map::SmallMap;
use crate::state::{Account, State};
use crate::{codec, invariant, margin, EngineError};

/// A state write: key, and `Some(value)` to set or `None` to delete.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// What the engine takes from a block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHeader {
    /// Height.
    pub height: u64,
    /// Header time, seconds since the Unix epoch.
    pub time_seconds: i64,
    /// Header time, nanoseconds part.
    pub time_nanos: i32,
}

/// An event for indexers and venues (not part of consensus hashing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event type, e.g. `position_report`.
    pub kind: String,
    /// Attributes in a fixed order.
    pub attributes: Vec<(String, String)>,
}

impl Event {
    pub(crate) fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_string(),
            attributes: Vec::new(),
        }
    }

    pub(crate) fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.attributes.push((key.to_string(), value.to_string()));
        self
    }
}

/// The result of one transaction in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// Result code (0 = applied).
    pub code: TxCode,
    /// Human explanation.
    pub log: String,
    /// Events of an applied transaction.
    pub events: Vec<Event>,
}

/// What a block produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutput {
    /// Writes to commit, in key order.
    pub writes: Vec<Write>,
    /// Block-level events.
    pub events: Vec<Event>,
}

/// Per-block bookkeeping: what changed, so only that is recomputed and written.
#[derive(Debug, Default)]
pub(crate) struct BlockContext {
    pub(crate) header: BlockHeader,
    /// Touched accounts with what they held before the block (conservation
    /// checks, their contribution to the totals).
    pub(crate) touched: BTreeMap<Address, Before>,
    /// The positions the touched accounts held, numbered.
    pub(crate) position_keys: PositionKeys,
    /// The insurance fund and the venues' settlement total before the block.
    pub(crate) settlement_before: Money,
    /// Liquidation orders posted, changed or removed.
    pub(crate) dirty_orders: BTreeSet<crate::state::OrderKey>,
    /// Venues whose settlement balance changed.
    pub(crate) dirty_settlements: BTreeSet<VenueId>,
    /// Insurance funds that changed (`None`: the shared one).
    pub(crate) dirty_funds: BTreeSet<Option<MarketId>>,
    /// Instructions for venues, in the order they arose.
    pub(crate) instructions: Vec<crate::instructions::Instruction>,
    /// Accounts whose positions changed (their `pos/` record is rewritten).
    pub(crate) dirty_positions: BTreeSet<Address>,
    pub(crate) dirty_markets: BTreeSet<MarketId>,
    pub(crate) dirty_sequences: BTreeSet<Address>,
    pub(crate) dirty_ledgers: BTreeSet<AssetId>,
    /// Markets whose listing (price) changed.
    pub(crate) dirty_listings: BTreeSet<MarketId>,
    /// Markets whose margin regime changed.
    pub(crate) dirty_margins: BTreeSet<MarketId>,
    /// Assets whose price changed.
    pub(crate) dirty_assets: BTreeSet<AssetId>,
    /// Open interest (long, short sizes) per market as this block's reports
    /// move it; the running totals leave touched accounts out until the end.
    pub(crate) open_interest: BTreeMap<MarketId, (Quantity, Quantity)>,
    /// Deposits less withdrawals in this block, per asset.
    pub(crate) flows: BTreeMap<AssetId, Quantity>,
    /// Venues whose acknowledgement state changed.
    pub(crate) dirty_venues: BTreeSet<VenueId>,
    /// Bad debt the insurance fund paid in this block, per market (its cap).
    pub(crate) fund_paid_by_market: BTreeMap<MarketId, Money>,
    /// Breakers that changed (`None`: the system's).
    pub(crate) dirty_breakers: BTreeSet<Option<MarketId>>,
    /// Open interest (long, short) per market and venue as this block's
    /// reports move it (the venues' caps).
    pub(crate) venue_open_interest: BTreeMap<(MarketId, VenueId), (Quantity, Quantity)>,
    /// Events of the block's start (breaker transitions), emitted at its end.
    pub(crate) begin_events: Vec<Event>,
    /// Proposals, params and governance state changed by governance.
    pub(crate) governance: crate::governance::GovernanceDirty,
    /// ADL candidates per market while the backstop runs (scored once, then
    /// only the accounts touched since).
    pub(crate) adl_rankings: BTreeMap<MarketId, crate::backstop::AdlRanking>,
}

/// What a touched account held before the block.
#[derive(Debug, Default)]
pub(crate) struct Before {
    pub(crate) health: crate::margin::Health,
    /// Where its risk sat in the indexes and totals (it still does).
    pub(crate) risk_keys: RiskKeys,
    /// Its holdings, snapshotted when something other than a price move
    /// first touches it (`None`: only repriced, so its collateral, settled
    /// PnL, positions and account record are as they were).
    pub(crate) held: Option<Held>,
}

/// A touched account's holdings before the block.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(crate) collateral: SmallMap<AssetId, Quantity>,
    pub(crate) settled_pnl: Money,
    pub(crate) positions: PositionsHeld,
}

/// The deterministic state machine.
#[derive(Debug)]
pub struct Engine {
    pub(crate) state: State,
    pub(crate) block: Option<BlockContext>,
}

impl Engine {
    /// The state (read-only).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.state.chain.chain_id
    }

    /// Height of the last executed block.
    pub fn height(&self) -> u64 {
        self.state.chain.height
    }

    /// CheckTx: stateless checks, then stateful checks against the current
    /// state, with the signer's expected sequence taken from `pending` (the
    /// mempool's view) when present.
    pub fn check_tx(
        &self,
        tx_bytes: &[u8],
        pending: &BTreeMap<Address, u64>,
    ) -> Result<VerifiedTx, TxRejection> {
        let tx = verify_tx(tx_bytes, self.chain_id())?;
        let expected = pending
            .get(&tx.signer_address)
            .copied()
            .unwrap_or_else(|| self.state.next_sequence(&tx.signer_address));
        self.validate(&tx, expected)?;
        Ok(tx)
    }

    /// Starts a block with prices only (every other target unquoted).
    pub fn begin_block(
        &mut self,
        header: BlockHeader,
        prices: &[PriceUpdate],
    ) -> Result<(), EngineError> {
        self.begin_block_with_oracle(header, &OracleRound::from(prices.to_vec()))
    }

    /// Starts a block: applies its oracle prices, steps the market breakers
    /// and sets every market's margin regime before any transaction runs.
    pub fn begin_block_with_oracle(
        &mut self,
        header: BlockHeader,
        oracle: &OracleRound,
    ) -> Result<(), EngineError> {
        if self.block.is_some() {
            return Err(EngineError::Lifecycle("begin_block inside a block".into()));
        }
        let last = self.state.chain.height;
        if header.height <= last || (last > 0 && header.height != last + 1) {
            return Err(EngineError::Lifecycle(format!(
                "block {} after block {last}",
                header.height
            )));
        }
        self.state.chain.height = header.height;
        self.state.chain.time_seconds = header.time_seconds;
        self.state.chain.time_nanos = header.time_nanos;
        self.block = Some(BlockContext {
            header,
            ..BlockContext::default()
        });
        let settlement_before = self.settlement_total().map_err(invariant)?;
        self.block_context()?.settlement_before = settlement_before;
        let open_interest = self
            .state
            .market_totals
            .iter()
            .map(|(id, totals)| (id.clone(), (totals.long, totals.short)))
            .collect();
        self.block_context()?.open_interest = open_interest;
        let venue_open_interest = self
            .state
            .market_totals
            .iter()
            .flat_map(|(market, totals)| {
                totals.venues.iter().map(|(venue, interest)| {
                    (
                        (market.clone(), venue.clone()),
                        (interest.long, interest.short),
                    )
                })
            })
            .collect();
        self.block_context()?.venue_open_interest = venue_open_interest;
        let previous = self
            .state
            .markets
            .iter()
            .map(|(id, market)| (id.clone(), market.oracle_price))
            .collect();
        self.apply_prices(&oracle.prices)?;
        let events = self.step_market_breakers(oracle, &previous)?;
        self.block_context()?.begin_events = events;
        self.refresh_margin_regimes(header.height)
    }

    /// The insurance fund plus what the clearinghouse owes the venues.
    fn settlement_total(&self) -> Result<Money, clearnode_num::NumError> {
        let venues = Money::checked_sum(self.state.venue_settlements.values().copied())?;
        let isolated = Money::checked_sum(self.state.isolated_funds.values().map(|f| f.balance))?;
        venues
            .checked_add(self.state.insurance_fund.balance)?
            .checked_add(isolated)
    }

    /// A venue's open interest (long, short) in a market now.
    pub(crate) fn venue_open_interest(
        &self,
        market: &MarketId,
        venue: &VenueId,
    ) -> (Quantity, Quantity) {
        match &self.block {
            Some(block) => block
                .venue_open_interest
                .get(&(market.clone(), venue.clone()))
                .copied()
                .unwrap_or_default(),
            None => self
                .state
                .market_totals
                .get(market)
                .and_then(|totals| totals.venues.get(venue))
                .map(|interest| (interest.long, interest.short))
                .unwrap_or_default(),
        }
    }

    /// Open interest (long, short) per market now: as of the last block,
    /// moved by this block's reports so far.
    pub(crate) fn open_interest(&self) -> BTreeMap<MarketId, (Quantity, Quantity)> {
        match &self.block {
            Some(block) => block.open_interest.clone(),
            None => self
                .state
                .market_totals
                .iter()
                .map(|(id, totals)| (id.clone(), (totals.long, totals.short)))
                .collect(),
        }
    }

    /// Executes one transaction of the block. A rejection changes nothing.
    pub fn deliver_tx(&mut self, tx_bytes: &[u8]) -> Result<TxOutcome, EngineError> {
        if self.block.is_none() {
            return Err(EngineError::Lifecycle("deliver_tx outside a block".into()));
        }
        let outcome = match verify_tx(tx_bytes, self.chain_id()) {
            Err(rejection) => Err(rejection),
            Ok(tx) => self.execute(tx),
        };
        Ok(match outcome {
            Ok(events) => TxOutcome {
                code: TxCode::Ok,
                log: String::new(),
                events,
            },
            Err(rejection) => TxOutcome {
                code: rejection.code,
                log: rejection.log,
                events: Vec::new(),
            },
        })
    }

    /// The block context, for code that runs only inside a block.
    pub(crate) fn block_context(&mut self) -> Result<&mut BlockContext, EngineError> {
        self.block
            .as_mut()
            .ok_or_else(|| EngineError::Lifecycle("no block in progress".into()))
    }

    /// The block context; only called inside a block.
    pub(crate) fn context(&mut self) -> Result<&mut BlockContext, TxRejection> {
        self.block
            .as_mut()
            .ok_or_else(|| TxRejection::new(TxCode::MalformedTx, "no block in progress"))
    }

    /// The account, created if new, to change: the first touch in a block
    /// remembers its contribution to the running totals (replaced at the
    /// block's end) and its holdings.
    pub(crate) fn touch_account(&mut self, address: Address) -> Result<&mut Account, TxRejection> {
        let state = &mut self.state;
        let block = self
            .block
            .as_mut()
            .ok_or_else(|| TxRejection::new(TxCode::MalformedTx, "no block in progress"))?;
        for ranking in block.adl_rankings.values_mut() {
            ranking.stale.insert(address);
        }
        let account = state.accounts.get(&address);
        let before = match block.touched.entry(address) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let before = match account {
                    Some(account) => {
                        first_touch(state, &mut block.dirty_markets, address, account)?
                    }
                    None => Before::default(),
                };
                entry.insert(before)
            }
        };
        // Only repriced so far (or new): nothing has changed it yet.
        if before.held.is_none() {
            before.held = Some(match account {
                Some(account) => Held {
                    collateral: account.collateral.clone(),
                    settled_pnl: account.settled_pnl,
                    positions: block.position_keys.held(account),
                },
                None => Held::default(),
            });
        }
        Ok(state.accounts.entry(address).or_default())
    }

    /// Touches an account whose requirements moved (a price, a haircut, a
    /// margin fraction): its risk is recomputed at the end of the block,
    /// and its holdings are snapshotted only if something changes them.
    pub(crate) fn reprice_account(&mut self, address: Address) -> Result<(), TxRejection> {
        let state = &self.state;
        let block = self
            .block
            .as_mut()
            .ok_or_else(|| TxRejection::new(TxCode::MalformedTx, "no block in progress"))?;
        let std::collections::btree_map::Entry::Vacant(entry) = block.touched.entry(address) else {
            return Ok(());
        };
        let Some(account) = state.accounts.get(&address) else {
            // Not reached (indexes hold existing accounts): created as before.
            return self.touch_account(address).map(|_| ());
        };
        entry.insert(first_touch(
            state,
            &mut block.dirty_markets,
            address,
            account,
        )?);
        Ok(())
    }

    /// Ends the block: recomputes touched accounts, aggregates, checks
    /// conservation and returns the writes.
    pub fn end_block(&mut self) -> Result<BlockOutput, EngineError> {
        let mut events = std::mem::take(&mut self.block_context()?.begin_events);
        self.run_governance(&mut events)?;
        self.run_backstop(&mut events)?;
        let block = self
            .block
            .take()
            .ok_or_else(|| EngineError::Lifecycle("end_block outside a block".into()))?;
        let height = block.header.height;
        let mut dirty_markets = block.dirty_markets.clone();
        self.check_conservation(&block)?;
        for (address, before) in &block.touched {
            let state = &mut self.state;
            let account = state
                .accounts
                .get_mut(address)
                .ok_or_else(|| invariant(format!("touched account {address} vanished")))?;
            margin::refresh_risk(account, &state.markets, &state.assets, height)
                .map_err(|e| invariant(format!("risk of {address}: {e}")))?;
            let into = Contributions {
                markets: &mut state.market_totals,
                system: &mut state.system,
                indexes: &mut state.indexes,
                stress_move: state.breakers.system.params.coverage_stress_move,
            };
            let held = before
                .held
                .as_ref()
                .map(|held| (&held.positions, &held.collateral));
            let numbers = &block.position_keys;
            replace_contribution(into, numbers, *address, &before.risk_keys, held, account)
                .map_err(|e| invariant(format!("aggregates for {address}: {e}")))?;
            mark_markets(&mut dirty_markets, account);
        }
        // The breakers see the block's final aggregates.
        self.block = Some(block);
        self.evaluate_breakers(&dirty_markets, &mut events)?;
        let mut block = self
            .block
            .take()
            .ok_or_else(|| EngineError::Lifecycle("block vanished".into()))?;
        self.health_instructions(&mut block);
        let status_changed = self.run_ladder(&mut block, &mut events)?;
        self.track_acknowledgements(&mut block, &mut events);
        let writes = self.block_writes(&mut block, &status_changed, &dirty_markets)?;
        Ok(BlockOutput { writes, events })
    }

    /// Tells the venues holding an account's positions that its health changed.
    fn health_instructions(&self, block: &mut BlockContext) {
        use crate::margin::Health;
        for (address, before) in &block.touched {
            let Some(account) = self.state.accounts.get(address) else {
                continue;
            };
            let now = account.risk.health;
            if now == before.health
                || account.positions.is_empty()
                || crate::backstop::is_book(address, account)
            {
                continue;
            }
            let kind = match now {
                Health::Healthy => "healthy",
                Health::MarginCall => "margin_call",
                Health::Liquidating => "liquidating",
                Health::Bankrupt => "bankrupt",
            };
            let venues: BTreeSet<&VenueId> =
                account.positions.keys().map(|(_, venue)| venue).collect();
            for venue in venues {
                let instruction =
                    crate::instructions::Instruction::new(venue.clone(), kind, *address);
                block.instructions.push(instruction);
            }
        }
    }

    /// The encoded system aggregate at the current prices.
    pub(crate) fn system_aggregate(&self) -> Result<Vec<u8>, EngineError> {
        let state = &self.state;
        let mut gross = Money::ZERO;
        let mut net = Money::ZERO;
        for (market_id, totals) in &state.market_totals {
            let Some(market) = state.markets.get(market_id) else {
                return Err(invariant(format!("totals for unlisted market {market_id}")));
            };
            let aggregate = codec::market_aggregate_to_pb(market, totals).map_err(invariant)?;
            let parse = |text: &str| text.parse::<Money>().map_err(invariant);
            gross = gross
                .checked_add(parse(&aggregate.gross_notional)?)
                .map_err(invariant)?;
            net = net
                .checked_add(parse(&aggregate.net_notional)?)
                .map_err(invariant)?;
        }
        let mut collateral_totals = Vec::new();
        for (asset, ledger) in &state.ledgers {
            let balance = ledger
                .deposited
                .checked_sub(ledger.withdrawn)
                .map_err(invariant)?;
            collateral_totals.push(pb::AssetAmount {
                asset: asset.to_string(),
                amount: balance.to_string(),
            });
        }
        let aggregate = codec::system_aggregate_to_pb(
            &state.system,
            gross,
            net,
            collateral_totals,
            state.chain.height,
        )
        .map_err(invariant)?;
        Ok(aggregate.encode_to_vec())
    }

    /// Value is conserved: the collateral of touched accounts changed by
    /// exactly the block's deposits less withdrawals, and every ledger
    /// balance is non-negative.
    fn check_conservation(&self, block: &BlockContext) -> Result<(), EngineError> {
        let mut change: BTreeMap<&AssetId, Quantity> = BTreeMap::new();
        let mut settled_change = Money::ZERO;
        for (address, before) in &block.touched {
            let account = self
                .state
                .accounts
                .get(address)
                .ok_or_else(|| invariant(format!("touched account {address} vanished")))?;
            // Only repriced: its collateral and settled PnL did not move.
            let Some(before) = &before.held else {
                continue;
            };
            settled_change = settled_change
                .checked_add(
                    account
                        .settled_pnl
                        .checked_sub(before.settled_pnl)
                        .map_err(invariant)?,
                )
                .map_err(invariant)?;
            for (asset, amount) in &account.collateral {
                let total = change.entry(asset).or_default();
                *total = total.checked_add(*amount).map_err(invariant)?;
            }
            for (asset, amount) in &before.collateral {
                let total = change.entry(asset).or_default();
                *total = total.checked_sub(*amount).map_err(invariant)?;
            }
        }
        change.retain(|_, amount| !amount.is_zero());
        let flows: BTreeMap<&AssetId, Quantity> = block
            .flows
            .iter()
            .filter(|(_, amount)| !amount.is_zero())
            .map(|(asset, amount)| (asset, *amount))
            .collect();
        if change != flows {
            return Err(invariant(format!(
                "collateral not conserved at height {}: accounts changed by {change:?}, flows were {flows:?}",
                block.header.height
            )));
        }
        for (asset, ledger) in &self.state.ledgers {
            if ledger.withdrawn > ledger.deposited {
                return Err(invariant(format!("ledger {asset} is negative")));
            }
        }
        // Realized PnL and penalties move between accounts, venues and the
        // insurance fund, and never appear from nowhere.
        let settlement_change = self
            .settlement_total()
            .and_then(|now| now.checked_sub(block.settlement_before))
            .map_err(invariant)?;
        if !settled_change
            .checked_add(settlement_change)
            .map_err(invariant)?
            .is_zero()
        {
            return Err(invariant(format!(
                "settlement not conserved at height {}: accounts changed by {settled_change}, venues and fund by {settlement_change}",
                block.header.height
            )));
        }
        Ok(())
    }
}

/// What an existing account's first touch in a block remembers: its health
/// and where its risk sits in the indexes and totals (its holdings only
/// once something changes them); its markets' aggregates become dirty.
fn first_touch(
    state: &State,
    dirty_markets: &mut BTreeSet<MarketId>,
    address: Address,
    account: &Account,
) -> Result<Before, TxRejection> {
    mark_markets(dirty_markets, account);
    let stress_move = state.breakers.system.params.coverage_stress_move;
    Ok(Before {
        health: account.risk.health,
        risk_keys: RiskKeys::of(address, account, stress_move)
            .map_err(|e| TxRejection::new(TxCode::InvalidAmount, e.to_string()))?,
        held: None,
    })
}

/// Adds the markets an account holds to `markets`.
fn mark_markets(markets: &mut BTreeSet<MarketId>, account: &Account) {
    for (market, _) in account.positions.keys() {
        if !markets.contains(market) {
            markets.insert(market.clone());
        }
    }
}

#[cfg(test)]
mod tests;
mod writes;
