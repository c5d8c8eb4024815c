//! Every report that `wait_for_commit` acknowledged, and every report found
//! committed after an ambiguous answer, is in the chain and in the state of
//! all four validators at the end, although validators were SIGKILLed at
//! random moments while reports were in flight to them. Each venue's
//! sequence on every node equals the number of its reports committed, each
//! report is in the block it was acknowledged in, and the last report of
//! each venue is the position every node holds.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use support::load::Load;
use support::load::{assert_nothing_lost, fund_and_authorize, seed, Rng};
use support::localnet::Localnet;

/// Validators SIGKILLed during the run, one at a time.
const KILLS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_report_is_lost() {
    let seed = seed("no_acknowledged_report_is_lost");
    let mut rng = Rng::new(seed);
    let mut net = Localnet::init(4);
    net.start_all();
    let all = [0, 1, 2, 3];
    net.wait_for_all(&all, 1, Duration::from_secs(90)).await;
    let accounts = fund_and_authorize(&net, 4).await;
    let load = Load::start(&net, accounts, seed).await;

    for round in 1..=KILLS {
        // Reports are in flight to every node, the victim included.
        load.wait_for_progress(3, Duration::from_secs(60)).await;
        tokio::time::sleep(rng.duration_ms(0, 1500)).await;
        let victim = rng.below(all.len());
        eprintln!(
            "round {round}/{KILLS}: SIGKILL node{victim} with {} reports committed",
            load.committed()
        );
        net.kill9(victim).await;
        load.wait_for_progress(3, Duration::from_secs(60)).await;
        net.start(victim);
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
        let target = net.max_height(&others).await;
        net.wait_for_height(victim, target, Duration::from_secs(120))
            .await;
    }
    load.wait_for_progress(3, Duration::from_secs(60)).await;
    let tallies = load.stop().await;

    let committed: usize = tallies.iter().map(|t| t.committed.len()).sum();
    let acknowledged = tallies
        .iter()
        .flat_map(|t| &t.committed)
        .filter(|c| c.acknowledged)
        .count();
    let retries: u64 = tallies.iter().map(|t| t.retries).sum();
    eprintln!("{committed} reports committed, {acknowledged} acknowledged by wait_for_commit, {retries} submissions retried");
    assert!(acknowledged > 0, "no report was acknowledged");
    assert_nothing_lost(&net, &tallies).await;
}
