//! AuthorizeVenue: an account lets a venue report for it, or stops it.

use clearnode_types::tx::AuthorizeVenue;
use clearnode_types::{Address, TxCode, TxRejection};

use super::reject;
use crate::block::{Engine, Event};
use crate::state::State;

pub(super) fn validate(state: &State, authorize: &AuthorizeVenue) -> Result<(), TxRejection> {
    if !state.venues.contains_key(&authorize.venue) {
        return Err(reject(
            TxCode::UnknownVenue,
            format!("venue {} is not registered", authorize.venue),
        ));
    }
    Ok(())
}

impl Engine {
    pub(super) fn apply_authorize(
        &mut self,
        signer: Address,
        authorize: AuthorizeVenue,
    ) -> Result<Event, TxRejection> {
        let account = self.touch_account(signer)?;
        if authorize.authorized {
            account.authorized_venues.insert(authorize.venue.clone());
        } else {
            account.authorized_venues.remove(&authorize.venue);
        }
        Ok(Event::new("authorize_venue")
            .with("account", signer)
            .with("venue", &authorize.venue)
            .with("authorized", authorize.authorized))
    }
}
