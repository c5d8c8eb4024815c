//! Venues as clearing members: a venue must acknowledge the instructions
//! that need it to act (liquidation orders, takeovers, backstop transfers,
//! ADL) in a later report (`acknowledged_height`). One left unacknowledged
//! for `instruction_ack_blocks` makes the venue delinquent: its reports are
//! refused (207) until one acknowledges everything. Notices of health
//! changes need no acknowledgement.

use std::collections::BTreeSet;

use clearnode_types::{TxCode, TxRejection, VenueId};

use crate::block::{BlockContext, Engine, Event};
use crate::exec::reject;
use crate::state::Venue;

/// Instruction kinds a venue must acknowledge.
pub(crate) fn needs_acknowledgement(kind: &str) -> bool {
    matches!(kind, "liquidation_order" | "take_over" | "backstop" | "adl")
}

/// The acknowledgement checks of a report, before anything else about it:
/// not beyond the last committed height, and a delinquent venue must catch
/// up completely.
pub(crate) fn check(
    venue: &Venue,
    acknowledged_height: u64,
    last_committed: u64,
) -> Result<(), TxRejection> {
    if acknowledged_height > last_committed {
        return Err(reject(
            TxCode::AcknowledgementAhead,
            format!(
                "acknowledged height {acknowledged_height} is beyond the last committed height {last_committed}"
            ),
        ));
    }
    let acknowledged = venue.acknowledged_height.max(acknowledged_height);
    if venue.delinquent && acknowledged < venue.last_instruction_height {
        return Err(reject(
            TxCode::VenueDelinquent,
            format!(
                "venue {} is delinquent: acknowledge its instructions up to height {} (acknowledged {})",
                venue.id, venue.last_instruction_height, acknowledged
            ),
        ));
    }
    Ok(())
}

/// Records an acknowledgement; returns whether the venue changed.
pub(crate) fn acknowledge(venue: &mut Venue, acknowledged_height: u64) -> bool {
    if acknowledged_height <= venue.acknowledged_height {
        return false;
    }
    venue.acknowledged_height = acknowledged_height;
    if acknowledged_height >= venue.last_instruction_height {
        venue.unacknowledged_since = 0;
        venue.delinquent = false;
    } else {
        // What is left counts from the height after the acknowledged one
        // (never later than the oldest instruction still pending).
        venue.unacknowledged_since = venue.unacknowledged_since.max(acknowledged_height + 1);
    }
    true
}

impl Engine {
    /// After the block's instructions are known: starts the clock for
    /// venues with new instructions to acknowledge, and makes delinquent
    /// those past the deadline.
    pub(crate) fn track_acknowledgements(
        &mut self,
        block: &mut BlockContext,
        events: &mut Vec<Event>,
    ) {
        let height = block.header.height;
        let deadline_blocks = u64::from(self.state.params.instruction_ack_blocks);
        let instructed: BTreeSet<&VenueId> = block
            .instructions
            .iter()
            .filter(|i| needs_acknowledgement(i.kind))
            .map(|i| &i.venue)
            .collect();
        for id in instructed {
            if let Some(venue) = self.state.venues.get_mut(id) {
                venue.last_instruction_height = height;
                if venue.unacknowledged_since == 0 {
                    venue.unacknowledged_since = height;
                }
                block.dirty_venues.insert(id.clone());
            }
        }
        for (id, venue) in &mut self.state.venues {
            let overdue = venue.unacknowledged_since != 0
                && height > venue.unacknowledged_since.saturating_add(deadline_blocks);
            if overdue && !venue.delinquent {
                venue.delinquent = true;
                block.dirty_venues.insert(id.clone());
                events.push(
                    Event::new("venue_delinquent")
                        .with("venue", id)
                        .with("unacknowledged_since", venue.unacknowledged_since),
                );
            }
        }
    }
}
