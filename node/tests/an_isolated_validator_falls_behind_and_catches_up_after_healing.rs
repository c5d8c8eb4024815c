//! A network partition under load: every P2P link of one validator is cut
//! (its peers' connections reset, new ones refused; see
//! `support/partition.rs`) while it keeps running. The other three hold
//! more than 2/3 of the power and keep committing; the isolated node,
//! alone, commits nothing. When the links heal it reconnects, catches up,
//! and reports at every height the app hash the others signed; no
//! acknowledged report is lost.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use support::load::{assert_nothing_lost, fund_and_authorize, seed, Load};
use support::localnet::Localnet;
use support::partition::Links;

/// Blocks the majority commits while one node is cut off.
const BLOCKS_WHILE_ISOLATED: u64 = 15;
/// The isolated node.
const ISOLATED: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_validator_falls_behind_and_catches_up_after_healing() {
    let seed = seed("an_isolated_validator_falls_behind_and_catches_up_after_healing");
    let mut net = Localnet::init(4);
    let links = Links::route(&net).await;
    net.start_all();
    let all = [0, 1, 2, 3];
    let majority = [0, 1, 2];
    net.wait_for_all(&all, 1, Duration::from_secs(90)).await;
    let accounts = fund_and_authorize(&net, 4).await;
    let load = Load::start(&net, accounts, seed).await;
    load.wait_for_progress(3, Duration::from_secs(60)).await;

    net.set_load_target(ISOLATED, false);
    links.isolate(ISOLATED);
    let isolated_at = net.height(ISOLATED).await.unwrap();
    let majority_at = net.max_height(&majority).await;
    eprintln!("node{ISOLATED} cut off at height {isolated_at} (the majority is at {majority_at})");

    net.wait_for_all(
        &majority,
        majority_at + BLOCKS_WHILE_ISOLATED,
        Duration::from_secs(60),
    )
    .await;
    load.wait_for_progress(3, Duration::from_secs(60)).await;
    let isolated_now = net.height(ISOLATED).await.unwrap();
    // It may finish the block whose votes it already had, never more.
    assert!(
        isolated_now <= isolated_at + 1,
        "node{ISOLATED} committed blocks {isolated_at}..={isolated_now} while cut off from every peer"
    );
    net.assert_app_hashes_agree(&majority, 1..=majority_at + BLOCKS_WHILE_ISOLATED - 1)
        .await;

    links.heal();
    net.set_load_target(ISOLATED, true);
    let target = net.max_height(&majority).await;
    let caught_up = net
        .wait_for_height(ISOLATED, target, Duration::from_secs(90))
        .await;
    eprintln!("healed: node{ISOLATED} caught up from {isolated_now} to {caught_up}");
    // It follows the chain again, not just the blocks it missed.
    net.wait_for_all(&all, caught_up + 3, Duration::from_secs(60))
        .await;

    let tallies = load.stop().await;
    assert_nothing_lost(&net, &tallies).await;
    let last = net
        .wait_for_all(&all, caught_up + 4, Duration::from_secs(30))
        .await;
    net.assert_app_hashes_agree(&all, 1..=last - 1).await;
}
