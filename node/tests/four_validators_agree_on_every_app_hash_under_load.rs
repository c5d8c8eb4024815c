//! Four validators under a steady load of venue reports agree, height by
//! height, on the state they commit: for every height `h` of the run, each
//! node's AuditService reports for state `h` the app hash that block
//! `h+1`'s header carries on every node (the CometBFT e2e check, through
//! our APIs). The run lasts `CLEARNODE_SOAK_BLOCKS` blocks (default 60).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use support::load::Load;
use support::load::{assert_nothing_lost, env_count, fund_and_authorize, seed};
use support::localnet::Localnet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_on_every_app_hash_under_load() {
    let blocks = env_count("CLEARNODE_SOAK_BLOCKS", 60);
    let seed = seed("four_validators_agree_on_every_app_hash_under_load");
    let mut net = Localnet::init(4);
    net.start_all();
    let all = [0, 1, 2, 3];
    net.wait_for_all(&all, 1, Duration::from_secs(90)).await;
    let accounts = fund_and_authorize(&net, 4).await;

    let load = Load::start(&net, accounts, seed).await;
    let first = net.max_height(&all).await;
    // About half a second a block on two cores; twice that, and a margin.
    let patience = Duration::from_secs(60 + blocks);
    net.wait_for_all(&all, first + blocks, patience).await;
    let tallies = load.stop().await;

    let reports: usize = tallies.iter().map(|t| t.committed.len()).sum();
    let retries: u64 = tallies.iter().map(|t| t.retries).sum();
    eprintln!("{reports} reports committed over {blocks} blocks from height {first}, {retries} retried submissions");
    let expected_reports = usize::try_from(blocks / 2).unwrap();
    assert!(
        reports >= expected_reports,
        "the load was not steady: {reports} reports in {blocks} blocks"
    );
    assert_nothing_lost(&net, &tallies).await;
    let last = net.wait_for_all(&all, first + blocks, patience).await;
    net.assert_app_hashes_agree(&all, 1..=last - 1).await;
}
