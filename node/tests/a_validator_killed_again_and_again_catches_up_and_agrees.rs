//! Under a load of venue reports, one random validator at a time is
//! SIGKILLed (clearnode and its cometbft) at a random moment and restarted,
//! again and again (`CLEARNODE_SOAK_KILLS` times, default 20). Three of four
//! equal validators hold more than 2/3 of the power, so the chain keeps
//! committing while one is down; after each restart the victim catches up
//! and reports, height by height, the app hashes the others signed. A run is
//! replayed from its printed seed with `CLEARNODE_SOAK_SEED`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::load::Load;
use support::load::{env_count, fund_and_authorize, seed, Rng};
use support::localnet::Localnet;

/// Blocks the three survivors must commit while the fourth is down.
const BLOCKS_WHILE_DOWN: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_killed_again_and_again_catches_up_and_agrees() {
    let kills = env_count("CLEARNODE_SOAK_KILLS", 20);
    let seed = seed("a_validator_killed_again_and_again_catches_up_and_agrees");
    let mut rng = Rng::new(seed);
    let mut net = Localnet::init(4);
    net.start_all();
    let all = [0, 1, 2, 3];
    net.wait_for_all(&all, 1, Duration::from_secs(90)).await;
    let accounts = fund_and_authorize(&net, 4).await;
    let load = Load::start(&net, accounts, seed).await;

    let mut checked_through = 0;
    for round in 1..=kills {
        // A random moment under load: mid-proposal, mid-commit, mid-write.
        tokio::time::sleep(rng.duration_ms(300, 3000)).await;
        let victim = rng.below(all.len());
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
        let started = Instant::now();
        net.kill9(victim).await;
        let at_kill = net.max_height(&others).await;
        eprintln!("round {round}/{kills}: SIGKILLed node{victim} at height {at_kill}");

        net.wait_for_all(
            &others,
            at_kill + BLOCKS_WHILE_DOWN,
            Duration::from_secs(60),
        )
        .await;
        load.wait_for_progress(1, Duration::from_secs(60)).await;

        net.start(victim);
        let target = net.max_height(&others).await;
        let caught_up = net
            .wait_for_height(victim, target, Duration::from_secs(120))
            .await;
        eprintln!(
            "round {round}/{kills}: node{victim} restarted and caught up to {caught_up} ({:.1?} after the kill)",
            started.elapsed()
        );
        // Every node, on the heights not yet checked; the victim on all of them.
        let common = net
            .wait_for_all(&all, caught_up, Duration::from_secs(30))
            .await;
        net.assert_app_hashes_agree(&all, checked_through + 1..=common - 1)
            .await;
        net.assert_app_hashes_agree(&[victim], 1..=common - 1).await;
        checked_through = common - 1;
    }

    let tallies = load.stop().await;
    let reports: usize = tallies.iter().map(|t| t.committed.len()).sum();
    let retries: u64 = tallies.iter().map(|t| t.retries).sum();
    eprintln!("{reports} reports committed, {retries} submissions retried after kills");
    let last = net
        .wait_for_all(&all, checked_through + 2, Duration::from_secs(30))
        .await;
    net.assert_app_hashes_agree(&all, checked_through + 1..=last - 1)
        .await;
}
