//! PositionReport: a venue's batch of position snapshots for accounts that
//! authorized it. All entries apply, or none.

use clearnode_types::tx::{PositionReport, VerifiedTx};
use clearnode_types::{TxCode, TxRejection};

use super::reject;
use crate::block::{Engine, Event};
use crate::state::{Position, State};

pub(super) fn validate(
    state: &State,
    tx: &VerifiedTx,
    report: &PositionReport,
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
        let authorized = state
            .accounts
            .get(&entry.account)
            .is_some_and(|a| a.authorized_venues.contains(&report.venue));
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
    // What: listed markets, bounded sizes.
    for (index, entry) in report.entries.iter().enumerate() {
        if !state.markets.contains_key(&entry.market) {
            return Err(reject(
                TxCode::UnknownMarket,
                format!("entry {index}: market {} is not listed", entry.market),
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
    Ok(())
}

impl Engine {
    pub(super) fn apply_report(&mut self, report: PositionReport) -> Result<Event, TxRejection> {
        let height = self.state.chain.height;
        let entries = report.entries.len();
        for entry in report.entries {
            let key = (entry.market.clone(), report.venue.clone());
            let account = self.touch_account(entry.account)?;
            match entry.entry_price {
                Some(entry_price) if !entry.size.is_zero() => {
                    account.positions.insert(
                        key,
                        Position {
                            size: entry.size,
                            entry_price,
                            updated_height: height,
                        },
                    );
                }
                _ => {
                    account.positions.remove(&key);
                }
            }
            let block = self.context()?;
            block.dirty_markets.insert(entry.market.clone());
            block
                .dirty_positions
                .insert((entry.account, entry.market, report.venue.clone()));
        }
        Ok(Event::new("position_report")
            .with("venue", &report.venue)
            .with("entries", entries))
    }
}
