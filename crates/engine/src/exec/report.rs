//! PositionReport: a venue's batch of position snapshots for accounts that
//! authorized it. All entries apply, or none.

use std::collections::BTreeMap;

use clearnode_num::{NumError, Quantity, Ratio, Rounding};
use clearnode_types::tx::{PositionReport, ReportEntry, VerifiedTx};
use clearnode_types::{Address, MarketId, TxCode, TxRejection, VenueId};

use super::reject;
use crate::block::{Engine, Event};
use crate::margin::regime::{self, TargetInputs};
use crate::margin::{compute_risk, compute_risk_with, Health, MarginMode};
use crate::state::{Account, Position, State};

/// Open interest (long, short sizes) per market.
pub(crate) type OpenInterest = BTreeMap<MarketId, (Quantity, Quantity)>;

pub(super) fn validate(
    state: &State,
    open_interest: &OpenInterest,
    tx: &VerifiedTx,
    report: &PositionReport,
    last_committed: u64,
    venue_interest: crate::breakers::VenueInterestOf<'_>,
) -> Result<(), TxRejection> {
    // Who: the venue, its key, its status, then each account's authorization.
    let Some(venue) = state.venues.get(&report.venue) else {
        return Err(reject(
            TxCode::UnknownVenue,
            format!("venue {} is not registered", report.venue),
        ));
    };
    if venue.public_key != tx.signer {
        return Err(reject(
            TxCode::NotVenueSigner,
            format!("report for {} not signed by its registered key", venue.id),
        ));
    }
    if !venue.active {
        return Err(reject(
            TxCode::VenueInactive,
            format!("venue {} is not active", venue.id),
        ));
    }
    crate::acknowledgements::check(venue, report.acknowledged_height, last_committed)?;
    if report.entries.len() > state.params.report_entries_max as usize {
        return Err(reject(
            TxCode::TooManyEntries,
            format!(
                "{} entries, at most {} per report",
                report.entries.len(),
                state.params.report_entries_max
            ),
        ));
    }
    for (index, entry) in report.entries.iter().enumerate() {
        // An isolated sub-account reports under its owner's authorizations.
        let account = state.accounts.get(&entry.account);
        let authorizer = match account.and_then(|a| a.isolated.as_ref()) {
            Some((owner, _)) => state.accounts.get(owner),
            None => account,
        };
        let authorized = authorizer.is_some_and(|a| a.authorized_venues.contains(&report.venue));
        if !authorized {
            return Err(reject(
                TxCode::VenueNotAuthorized,
                format!(
                    "entry {index}: account {} has not authorized venue {}",
                    entry.account, report.venue
                ),
            ));
        }
    }
    // What: listed markets, bounded sizes, then each account's margin.
    for (index, entry) in report.entries.iter().enumerate() {
        let Some(market) = state.markets.get(&entry.market) else {
            return Err(reject(
                TxCode::UnknownMarket,
                format!("entry {index}: market {} is not listed", entry.market),
            ));
        };
        // An isolated market is held only by its isolated sub-accounts; a
        // sub-account holds only its own market.
        let isolated_in = state
            .accounts
            .get(&entry.account)
            .and_then(|a| a.isolated.as_ref())
            .map(|(_, m)| m);
        let mismatch = match isolated_in {
            Some(own) => *own != entry.market,
            None => market.isolated,
        };
        if mismatch {
            return Err(reject(
                TxCode::IsolationMismatch,
                format!(
                    "entry {index}: account {} cannot hold {} (isolated markets are held by isolated sub-accounts, each in its own market)",
                    entry.account, entry.market
                ),
            ));
        }
        let too_large = entry
            .size
            .abs()
            .map_or(true, |size| size > state.params.position_size_max);
        if too_large {
            return Err(reject(
                TxCode::PositionTooLarge,
                format!(
                    "entry {index}: size {} exceeds {}",
                    entry.size, state.params.position_size_max
                ),
            ));
        }
    }
    let changes = open_interest_changes(state, report)
        .map_err(|e| reject(TxCode::InvalidAmount, format!("open interest: {e}")))?;
    crate::breakers::check_report(state, report, open_interest, &changes, venue_interest)?;
    check_margin(state, open_interest, &changes, report)
}

/// How a position's change from `old` to `new` moves (long, short) open interest.
pub(crate) fn open_interest_change(
    old: Quantity,
    new: Quantity,
) -> Result<(Quantity, Quantity), NumError> {
    Ok((
        long_part(new).checked_sub(long_part(old))?,
        short_part(new)?.checked_sub(short_part(old)?)?,
    ))
}

fn long_part(size: Quantity) -> Quantity {
    size.max(Quantity::ZERO)
}

fn short_part(size: Quantity) -> Result<Quantity, NumError> {
    size.min(Quantity::ZERO).checked_neg()
}

/// How the report moves each market's (long, short) open interest.
pub(crate) fn open_interest_changes(
    state: &State,
    report: &PositionReport,
) -> Result<OpenInterest, NumError> {
    let mut changes = OpenInterest::new();
    for entry in &report.entries {
        let old = state
            .accounts
            .get(&entry.account)
            .and_then(|a| a.position(&entry.market, &report.venue))
            .map_or(Quantity::ZERO, |p| p.size);
        let (long_change, short_change) = open_interest_change(old, entry.size)?;
        let (long, short) = changes.entry(entry.market.clone()).or_default();
        *long = long.checked_add(long_change)?;
        *short = short.checked_add(short_change)?;
    }
    Ok(changes)
}

/// The target fraction of each market the report touches, at the open
/// interest the report itself creates (dYdX applies a trade's OI before
/// computing the fraction, so a whale cannot open at the base rate).
fn projected_targets(
    state: &State,
    open_interest: &OpenInterest,
    changes: &OpenInterest,
) -> Result<BTreeMap<MarketId, Ratio>, NumError> {
    let mut targets = BTreeMap::new();
    for (id, &(long_change, short_change)) in changes {
        let Some(market) = state.markets.get(id) else {
            continue;
        };
        let (long, short) = open_interest.get(id).copied().unwrap_or_default();
        let larger = long
            .checked_add(long_change)?
            .max(short.checked_add(short_change)?);
        let target = regime::target_fraction(&TargetInputs {
            base: market.initial_margin,
            open_interest: larger.notional(market.oracle_price, Rounding::Ceil)?,
            open_interest_lower_cap: market.open_interest_lower_cap,
            open_interest_upper_cap: market.open_interest_upper_cap,
            volatility_ppm: regime::volatility_ppm(market.margin.volatility_variance),
            volatility_reference_ppm: market.volatility_reference_ppm,
        })?;
        let target = state.breakers.widen(id, state.chain.height, target)?;
        targets.insert(id.clone(), target);
    }
    Ok(targets)
}

/// Sets (or, at size zero, removes) the reported position.
fn apply_entry(account: &mut Account, venue: &VenueId, entry: &ReportEntry, height: u64) {
    let key = (entry.market.clone(), venue.clone());
    match entry.entry_price {
        Some(entry_price) if !entry.size.is_zero() => {
            let position = Position {
                size: entry.size,
                entry_price,
                updated_height: height,
            };
            account.positions.insert(key, position);
        }
        _ => {
            account.positions.remove(&key);
        }
    }
}

/// The report applied to a copy of what margin reads of one account
/// (collateral, settled PnL, positions).
fn reported(account: &Account, venue: &VenueId, entries: &[&ReportEntry], height: u64) -> Account {
    let mut after = Account {
        collateral: account.collateral.clone(),
        positions: account.positions.clone(),
        settled_pnl: account.settled_pnl,
        ..Account::default()
    };
    for entry in entries {
        apply_entry(&mut after, venue, entry, height);
    }
    after
}

/// Net size per market.
fn net_sizes(account: &Account) -> Result<BTreeMap<&MarketId, Quantity>, NumError> {
    let mut nets: BTreeMap<&MarketId, Quantity> = BTreeMap::new();
    for ((market, _), position) in &account.positions {
        let net = nets.entry(market).or_default();
        *net = net.checked_add(position.size)?;
    }
    Ok(nets)
}

/// Whether `after` has more net exposure than `before` in some market (a
/// larger net size, or a flip to the other side).
fn adds_exposure(before: &Account, after: &Account) -> Result<bool, NumError> {
    let before = net_sizes(before)?;
    for (market, net_after) in net_sizes(after)? {
        let net_before = before.get(market).copied().unwrap_or_default();
        if net_exposure_grows(net_before, net_after)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A net size that grows or flips to the other side adds exposure; the
/// one rule behind reduce-only margin calls and the breakers' reduce-only.
pub(crate) fn net_exposure_grows(before: Quantity, after: Quantity) -> Result<bool, NumError> {
    let flipped = before.signum() * after.signum() < 0;
    Ok(flipped || after.abs()? > before.abs()?)
}

/// Accounts in margin call or worse are reduce-only, and new exposure must
/// be covered at the fraction that applies to new risk.
fn check_margin(
    state: &State,
    open_interest: &OpenInterest,
    changes: &OpenInterest,
    report: &PositionReport,
) -> Result<(), TxRejection> {
    let arithmetic = |e: NumError| reject(TxCode::InvalidAmount, format!("margin arithmetic: {e}"));
    let targets = projected_targets(state, open_interest, changes).map_err(arithmetic)?;
    let mut by_account: BTreeMap<Address, Vec<&ReportEntry>> = BTreeMap::new();
    for entry in &report.entries {
        by_account.entry(entry.account).or_default().push(entry);
    }
    let height = state.chain.height;
    for (address, entries) in by_account {
        let Some(account) = state.accounts.get(&address) else {
            continue; // unreachable: authorization was checked
        };
        let after = reported(account, &report.venue, &entries, height);
        if !adds_exposure(account, &after).map_err(arithmetic)? {
            continue;
        }
        let now =
            compute_risk(account, &state.markets, &state.assets, height).map_err(arithmetic)?;
        if now.health >= Health::MarginCall {
            return Err(reject(
                TxCode::ReduceOnly,
                format!(
                    "account {address} is in {:?} (equity {} < initial {}): reduce-only",
                    now.health, now.equity, now.initial
                ),
            ));
        }
        let mode = MarginMode::NewRisk(&targets);
        let next = compute_risk_with(&after, &state.markets, &state.assets, height, mode)
            .map_err(arithmetic)?;
        if next.equity < next.initial {
            return Err(reject(
                TxCode::InsufficientInitialMargin,
                format!(
                    "account {address}: equity {} would not cover the initial requirement {} of the new exposure",
                    next.equity, next.initial
                ),
            ));
        }
    }
    Ok(())
}

impl Engine {
    /// Moves this block's open interest of a market by (long, short).
    pub(crate) fn move_open_interest(
        &mut self,
        market: MarketId,
        venue: &VenueId,
        (long_change, short_change): (Quantity, Quantity),
    ) -> Result<(), TxRejection> {
        let overflow = |e: NumError| reject(TxCode::InvalidAmount, e.to_string());
        let block = self.context()?;
        let key = (market.clone(), venue.clone());
        let (long, short) = block.venue_open_interest.entry(key).or_default();
        *long = long.checked_add(long_change).map_err(overflow)?;
        *short = short.checked_add(short_change).map_err(overflow)?;
        let (long, short) = block.open_interest.entry(market).or_default();
        *long = long.checked_add(long_change).map_err(overflow)?;
        *short = short.checked_add(short_change).map_err(overflow)?;
        Ok(())
    }

    pub(super) fn apply_report(&mut self, report: PositionReport) -> Result<Event, TxRejection> {
        let height = self.state.chain.height;
        let entries = report.entries.len();
        let changes = open_interest_changes(&self.state, &report)
            .map_err(|e| reject(TxCode::InvalidAmount, e.to_string()))?;
        for (market, change) in changes {
            self.move_open_interest(market, &report.venue, change)?;
        }
        for entry in report.entries {
            let account = self.touch_account(entry.account)?;
            apply_entry(account, &report.venue, &entry, height);
            let block = self.context()?;
            block.dirty_markets.insert(entry.market.clone());
            block
                .dirty_positions
                .insert((entry.account, entry.market, report.venue.clone()));
        }
        if let Some(venue) = self.state.venues.get_mut(&report.venue) {
            if crate::acknowledgements::acknowledge(venue, report.acknowledged_height) {
                self.context()?.dirty_venues.insert(report.venue.clone());
            }
        }
        Ok(Event::new("position_report")
            .with("venue", &report.venue)
            .with("entries", entries)
            .with("acknowledged_height", report.acknowledged_height))
    }
}
