//! PositionReport: a venue's batch of position snapshots for accounts that
//! authorized it. All entries apply, or none.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use clearnode_num::{NumError, Quantity, Ratio, Rounding};
use clearnode_types::tx::{PositionReport, ReportEntry, VerifiedTx};
use clearnode_types::{MarketId, TxCode, TxRejection, VenueId};

use super::reject;
use crate::block::{Engine, Event};
use crate::margin::regime::{self, TargetInputs};
use crate::margin::{compute_risk, fill_risk_over, Health, MarginMode, Risk};
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

/// The position an entry leaves on its venue: `None` when it closes it.
fn reported_position(entry: &ReportEntry, height: u64) -> Option<Position> {
    match entry.entry_price {
        Some(entry_price) if !entry.size.is_zero() => Some(Position {
            size: entry.size,
            entry_price,
            updated_height: height,
        }),
        _ => None,
    }
}

/// Sets (or, at size zero, removes) the reported position.
fn apply_entry(account: &mut Account, venue: &VenueId, entry: &ReportEntry, height: u64) {
    let key = (entry.market.clone(), venue.clone());
    match reported_position(entry, height) {
        Some(position) => {
            account.positions.insert(key, position);
        }
        None => {
            account.positions.remove(&key);
        }
    }
}

/// What one account's entries (in report order) leave on the report's
/// venue: per market, in market order, the last entry's position.
fn reported_changes<'r>(
    entries: &[&'r ReportEntry],
    height: u64,
) -> Vec<(&'r MarketId, Option<Position>)> {
    let mut by_market: Vec<&ReportEntry> = entries.to_vec();
    // Stable: a market's entries stay in report order, and the last wins.
    by_market.sort_by(|a, b| a.market.cmp(&b.market));
    let mut changes: Vec<(&MarketId, Option<Position>)> = Vec::with_capacity(by_market.len());
    for entry in by_market {
        let position = reported_position(entry, height);
        match changes.last_mut() {
            Some((market, last)) if *market == &entry.market => *last = position,
            _ => changes.push((&entry.market, position)),
        }
    }
    changes
}

/// The account's positions with `changes` (on `venue`, in market order)
/// laid over them, in position-key order: the account as the report
/// leaves it, without copying it.
fn positions_after<'a>(
    account: &'a Account,
    venue: &'a VenueId,
    changes: &'a [(&'a MarketId, Option<Position>)],
) -> impl Iterator<Item = (&'a MarketId, &'a Position)> + 'a {
    let mut held = account.positions.iter().peekable();
    let mut changed = changes.iter().peekable();
    std::iter::from_fn(move || loop {
        let order = match (held.peek(), changed.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(((market, held_venue), _)), Some((changed_market, _))) => {
                (market, held_venue).cmp(&(changed_market, venue))
            }
        };
        if order != Ordering::Greater {
            let ((market, _), position) = held.next()?;
            if order == Ordering::Less {
                return Some((market, position));
            }
        }
        let (market, after) = changed.next()?;
        if let Some(position) = after {
            return Some((*market, position));
        }
    })
}

/// Whether the changes leave more net exposure than the account has in
/// some market (a larger net size, or a flip to the other side).
fn adds_exposure(
    account: &Account,
    venue: &VenueId,
    changes: &[(&MarketId, Option<Position>)],
) -> Result<bool, NumError> {
    for (market, after) in changes {
        let size_after = after.as_ref().map_or(Quantity::ZERO, |p| p.size);
        if moving_adds_exposure(Some(account), market, venue, size_after)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether moving the account's position in `market` on `venue` to `size`
/// adds net exposure there.
pub(crate) fn moving_adds_exposure(
    account: Option<&Account>,
    market: &MarketId,
    venue: &VenueId,
    size: Quantity,
) -> Result<bool, NumError> {
    let Some(account) = account else {
        return net_exposure_grows(Quantity::ZERO, size);
    };
    let mut net_before = Quantity::ZERO;
    for ((held_market, _), position) in &account.positions {
        if held_market == market {
            net_before = net_before.checked_add(position.size)?;
        }
    }
    let size_before = account
        .position(market, venue)
        .map_or(Quantity::ZERO, |p| p.size);
    let net_after = net_before.checked_sub(size_before)?.checked_add(size)?;
    net_exposure_grows(net_before, net_after)
}

/// A net size that grows or flips to the other side adds exposure; the
/// one rule behind reduce-only margin calls and the breakers' reduce-only.
fn net_exposure_grows(before: Quantity, after: Quantity) -> Result<bool, NumError> {
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
    // Entries grouped by account; stable, so each keeps the report's order.
    let mut by_account: Vec<&ReportEntry> = report.entries.iter().collect();
    by_account.sort_by_key(|entry| entry.account);
    let height = state.chain.height;
    for entries in by_account.chunk_by(|a, b| a.account == b.account) {
        let Some(address) = entries.first().map(|entry| entry.account) else {
            continue;
        };
        let Some(account) = state.accounts.get(&address) else {
            continue; // unreachable: authorization was checked
        };
        let reported = reported_changes(entries, height);
        if !adds_exposure(account, &report.venue, &reported).map_err(arithmetic)? {
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
        let after = positions_after(account, &report.venue, &reported);
        let mut next = Risk::default();
        fill_risk_over(
            &mut next,
            account,
            after,
            &state.markets,
            &state.assets,
            height,
            mode,
        )
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
            block.dirty_markets.insert(entry.market);
            block.dirty_positions.insert(entry.account);
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

#[cfg(test)]
mod tests {
    use clearnode_num::Price;
    use clearnode_types::Address;
    use proptest::prelude::*;

    use super::*;

    const MARKETS: [&str; 3] = ["BTC-PERP", "ETH-PERP", "SOL-PERP"];
    const VENUES: [&str; 3] = ["venue-a", "venue-b", "venue-c"];

    fn market(i: usize) -> MarketId {
        MARKETS[i % MARKETS.len()].parse().unwrap()
    }

    fn venue(i: usize) -> VenueId {
        VENUES[i % VENUES.len()].parse().unwrap()
    }

    fn account(held: &[(usize, usize, i128)]) -> Account {
        let mut account = Account::default();
        for &(m, v, size) in held {
            if size != 0 {
                let position = Position {
                    size: Quantity::from_raw(size),
                    entry_price: Price::from_units(100).unwrap(),
                    updated_height: 1,
                };
                account.positions.insert((market(m), venue(v)), position);
            }
        }
        account
    }

    fn entry((m, size, priced): (usize, i128, bool)) -> ReportEntry {
        ReportEntry {
            account: Address::default(),
            market: market(m),
            size: Quantity::from_raw(size),
            entry_price: priced.then(|| Price::from_units(101).unwrap()),
        }
    }

    /// The net size per market, the way the margin check once derived
    /// exposure: from a whole copy of the account.
    fn net_sizes(account: &Account) -> BTreeMap<MarketId, Quantity> {
        let mut nets: BTreeMap<MarketId, Quantity> = BTreeMap::new();
        for ((market, _), position) in &account.positions {
            let net = nets.entry(market.clone()).or_default();
            *net = net.checked_add(position.size).unwrap();
        }
        nets
    }

    proptest! {
        /// Laying a report's changes over an account gives exactly the
        /// positions of a copy with the entries applied one by one (the last
        /// entry for a market winning, a zero size or a missing price
        /// closing), and the same answer to whether exposure grows.
        #[test]
        fn the_overlay_is_the_account_as_the_report_leaves_it(
            held in prop::collection::vec((0..3usize, 0..3usize, -5..5i128), 0..9),
            entries in prop::collection::vec((0..3usize, -5..5i128, any::<bool>()), 1..6),
            reporter in 0..3usize,
        ) {
            let before = account(&held);
            let venue = venue(reporter);
            let entries: Vec<ReportEntry> = entries.into_iter().map(entry).collect();
            let refs: Vec<&ReportEntry> = entries.iter().collect();

            let mut copy = before.clone();
            for entry in &refs {
                apply_entry(&mut copy, &venue, entry, 7);
            }
            let changes = reported_changes(&refs, 7);
            let overlaid: Vec<(MarketId, Position)> = positions_after(&before, &venue, &changes)
                .map(|(market, position)| (market.clone(), position.clone()))
                .collect();
            let copied: Vec<(MarketId, Position)> = copy
                .positions
                .iter()
                .map(|((market, _), position)| (market.clone(), position.clone()))
                .collect();
            prop_assert_eq!(overlaid, copied);

            let (nets_before, nets_after) = (net_sizes(&before), net_sizes(&copy));
            let grows = nets_after.iter().any(|(market, after)| {
                let before = nets_before.get(market).copied().unwrap_or_default();
                net_exposure_grows(before, *after).unwrap()
            });
            prop_assert_eq!(adds_exposure(&before, &venue, &changes).unwrap(), grows);
        }
    }
}
