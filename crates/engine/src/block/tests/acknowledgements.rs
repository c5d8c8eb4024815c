//! Venues acknowledge the instructions they must act on; one that does not
//! within the deadline becomes delinquent until it catches up.

use clearnode_types::TxCode;

use super::{btc_price, funded_trader, Chain};
use crate::testkit::{genesis, venue_key, Signer};

fn venue_state(chain: &Chain, id: &str) -> crate::state::Venue {
    chain.engine.state().venues[&id.parse().expect("id")].clone()
}

#[test]
fn a_venue_that_leaves_an_instruction_unacknowledged_is_delinquent_until_it_catches_up() {
    let mut genesis = genesis();
    genesis.params.instruction_ack_blocks = 2;
    let mut chain = Chain::with_genesis(&genesis);
    let a = funded_trader(&mut chain, 1).address();
    let b = funded_trader(&mut chain, 2).address();
    let mut venue_a = Signer::new(venue_key(0));
    let open = venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")]);
    assert_eq!(chain.block(&[open]), vec![TxCode::Ok]);
    // At 51,000 the account is offered: venue-a must act on the order.
    chain.prices.push(btc_price(51_000));
    chain.block(&[]);
    let instructed_at = chain.engine.height();
    let venue = venue_state(&chain, "venue-a");
    assert_eq!(
        (venue.unacknowledged_since, venue.last_instruction_height),
        (instructed_at, instructed_at)
    );
    // Two blocks to acknowledge; after them the venue is delinquent.
    chain.block(&[]);
    chain.block(&[]);
    assert!(!venue_state(&chain, "venue-a").delinquent);
    chain.block(&[]);
    assert!(venue_state(&chain, "venue-a").delinquent);

    // Its reports are refused, even one that acknowledges only part.
    let partial = instructed_at - 1;
    let refused: [(&[crate::testkit::Entry<'_>], u64); 2] =
        [(&[(b, "BTC-PERP", "0.1", "51000")], 0), (&[], partial)];
    for (entries, acknowledged) in refused {
        let tx = venue_a.report_acknowledging("venue-a", entries, acknowledged);
        assert_eq!(chain.block(&[tx]), vec![TxCode::VenueDelinquent]);
        venue_a.sequence -= 1;
    }
    // A height not yet committed cannot be acknowledged.
    let ahead = chain.engine.height() + 1;
    let early = venue_a.report_acknowledging("venue-a", &[], ahead);
    assert_eq!(chain.block(&[early]), vec![TxCode::AcknowledgementAhead]);
    venue_a.sequence -= 1;
    // Acknowledging everything, with a report in the same transaction,
    // brings it back.
    let caught_up = chain.engine.height();
    let report =
        venue_a.report_acknowledging("venue-a", &[(b, "BTC-PERP", "0.1", "51000")], caught_up);
    assert_eq!(chain.block(&[report]), vec![TxCode::Ok]);
    let venue = venue_state(&chain, "venue-a");
    assert!(!venue.delinquent);
    assert_eq!(venue.acknowledged_height, caught_up);
    // Other venues were never instructed: never delinquent.
    assert!(!venue_state(&chain, "venue-b").delinquent);
}
