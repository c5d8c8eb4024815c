//! A node joins a running localnet by state sync. Four of five genesis
//! validators run under a load of venue reports, taking a snapshot every
//! few heights; the fifth, never started, is then started with CometBFT's
//! `[statesync]` on: a trusted height and header hash from a running node,
//! that node's RPC for the light client. It restores the newest snapshot
//! (every chunk checked against the manifest, the restored store against
//! the app hash the light client verified) instead of replaying from
//! genesis, catches up, keeps following, and reports at every height it
//! holds the app hash the others signed.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use support::load::{assert_nothing_lost, fund_and_authorize, seed, Load};
use support::localnet::Localnet;

/// Heights between snapshots on the running nodes.
const SNAPSHOT_INTERVAL: &str = "5";
/// The joining node.
const JOINER: usize = 4;
/// Blocks the chain commits under load before the joiner starts: several
/// snapshots hold the funded accounts by then.
const BLOCKS_BEFORE_JOINING: u64 = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_by_state_sync_and_agrees() {
    let seed = seed("a_node_joins_by_state_sync_and_agrees");
    let mut net = Localnet::init(5);
    let running = [0, 1, 2, 3];
    let all = [0, 1, 2, 3, 4];
    for i in running {
        net.edit_config(
            i,
            "clearnode.toml",
            "",
            "snapshot_interval",
            SNAPSHOT_INTERVAL,
        );
        net.start(i);
    }
    // Four of five equal validators hold 80% of the power: the chain runs.
    net.wait_for_all(&running, 1, Duration::from_secs(90)).await;
    let accounts = fund_and_authorize(&net, 4).await;
    let load = Load::start(&net, accounts, seed).await;
    let funded = net.max_height(&running).await;
    net.wait_for_all(
        &running,
        funded + BLOCKS_BEFORE_JOINING,
        Duration::from_secs(90),
    )
    .await;

    let trust_height = net.height(0).await.unwrap();
    let block = net
        .rpc_get(0, &format!("block?height={trust_height}"))
        .await;
    let trust_hash = block["block_id"]["hash"].as_str().unwrap().to_owned();
    let config = "cometbft/config/config.toml";
    let servers = format!("\"{},{}\"", net.rpc_addr(0), net.rpc_addr(1));
    net.edit_config(JOINER, config, "statesync", "enable", "true");
    net.edit_config(JOINER, config, "statesync", "rpc_servers", &servers);
    let height = trust_height.to_string();
    net.edit_config(JOINER, config, "statesync", "trust_height", &height);
    let hash = format!("\"{trust_hash}\"");
    net.edit_config(JOINER, config, "statesync", "trust_hash", &hash);
    net.edit_config(JOINER, config, "statesync", "discovery_time", "\"5s\"");
    eprintln!("node{JOINER} joins by state sync, trusting block {trust_height} ({trust_hash})");

    net.start_without_load(JOINER);
    // Beyond any snapshot it may restore: it must also have synced blocks.
    let target = net.max_height(&running).await + 3;
    let caught_up = net
        .wait_for_height(JOINER, target, Duration::from_secs(120))
        .await;
    let status = net.rpc_get(JOINER, "status").await;
    let earliest: u64 = status["sync_info"]["earliest_block_height"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("node{JOINER} caught up to {caught_up}; its first block is {earliest}");
    assert!(
        earliest > 1,
        "node{JOINER} replayed from genesis instead of restoring a snapshot"
    );
    let log = std::fs::read_to_string(net.home(JOINER).join("logs/node.log")).unwrap();
    let restored = log
        .lines()
        .find(|line| line.contains("restored state from a snapshot"))
        .unwrap_or_else(|| panic!("node{JOINER}'s log does not show a restore"));
    eprintln!("node{JOINER}: {restored}");

    // Its metrics start from the restored state, not from genesis.
    let metrics = net.metrics(JOINER).await;
    let metric = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("node{JOINER}'s metrics lack {name}:\n{metrics}"));
        line[name.len() + 1..].parse().unwrap()
    };
    assert!(metric("clearnode_committed_height") >= earliest);
    assert!(metric("clearnode_blocks_committed_total") <= caught_up - earliest + 2);
    assert!(metric("clearnode_accounts") >= 4, "{metrics}");
    assert!(metric("clearnode_finalize_block_seconds_count") > 0);

    // It follows the chain and serves the load like any other node.
    net.set_load_target(JOINER, true);
    net.wait_for_all(&all, caught_up + 5, Duration::from_secs(60))
        .await;
    let tallies = load.stop().await;
    assert_nothing_lost(&net, &tallies).await;
    let last = net
        .wait_for_all(&all, caught_up + 6, Duration::from_secs(30))
        .await;
    net.assert_app_hashes_agree(&running, 1..=last - 1).await;
    net.assert_app_hashes_agree(&all, earliest..=last - 1).await;
}
