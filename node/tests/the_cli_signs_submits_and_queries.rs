//! `clearnode tx` and `clearnode query` against a running node: keys from
//! the home, sequences from the node, JSON out.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::TestNode;

fn cli(node: &TestNode, args: &[&str]) -> serde_json::Value {
    support::cli_json(node.home(), args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_signs_submits_and_queries() {
    let mut node = TestNode::init();
    // Exact margin figures need the genesis marks: the feed quotes them flat.
    node.quote_genesis_prices();
    node.start();
    node.client().await;
    let keygen = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(["keys", "generate", "alice", "--home"])
        .arg(node.home())
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let listing = String::from_utf8_lossy(&keygen.stdout).to_string();
    let address = listing.split("address=").nth(1).unwrap().trim().to_string();

    let deposit = cli(
        &node,
        &[
            "tx",
            "deposit",
            "--account",
            &address,
            "--asset",
            "USDC",
            "--amount",
            "2500",
            "--wait",
        ],
    );
    assert_eq!(deposit["committed"], true);
    cli(
        &node,
        &[
            "tx",
            "authorize",
            "--key",
            "alice",
            "--venue",
            "venue-b",
            "--wait",
        ],
    );
    let entry = format!("{address}:ETH-PERP:-10:3300");
    cli(
        &node,
        &[
            "tx", "report", "--venue", "venue-b", "--entry", &entry, "--wait",
        ],
    );

    let account = cli(&node, &["query", "account", "alice", "--key", "--prove"]);
    // 2,500 USDC; short 10 ETH at 3,300 marked at 3,200: +1,000.
    assert_eq!(account["risk"]["equity"], "3500");
    assert_eq!(account["risk"]["initial_requirement"], "1600");
    assert_eq!(account["positions"][0]["venue"], "venue-b");
    assert!(!account["context"]["proof"].as_str().unwrap().is_empty());
    let market = cli(&node, &["query", "market", "ETH-PERP"]);
    assert_eq!(market["aggregate"]["short_open_interest"], "10");

    // A refusal exits non-zero with the code.
    let refused = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args([
            "tx", "withdraw", "--key", "alice", "--asset", "USDC", "--amount", "2000", "--wait",
            "--home",
        ])
        .arg(node.home())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("code 304"));

    // 500 USDC into alice's isolated BTC sub-account, 200 back out.
    for direction in [None, Some("--out")] {
        let amount = if direction.is_some() { "200" } else { "500" };
        let mut args = vec![
            "tx",
            "move-isolated",
            "--key",
            "alice",
            "--market",
            "BTC-PERP",
            "--asset",
            "USDC",
            "--amount",
            amount,
            "--wait",
        ];
        args.extend(direction);
        cli(&node, &args);
    }
    let sub = clearnode_types::Address::isolated(&address.parse().unwrap(), "BTC-PERP");
    let isolated = cli(&node, &["query", "account", &sub.to_string()]);
    assert_eq!(isolated["risk"]["equity"], "300");
    let account = cli(&node, &["query", "account", "alice", "--key"]);
    assert_eq!(account["risk"]["equity"], "3200");

    // The breakers, proven: every devnet market open and validly priced.
    let breakers = cli(&node, &["query", "breakers", "--prove"]);
    assert_eq!(breakers["system"]["tripped"], false);
    let markets = breakers["markets"].as_array().unwrap();
    assert_eq!(markets.len(), 3);
    for market in markets {
        assert_eq!(
            market["breaker"]["status"], "MARKET_STATUS_OPEN",
            "open: {market}"
        );
        assert_eq!(market["breaker"]["stale"], false);
        assert!(!market["context"]["proof"].as_str().unwrap().is_empty());
    }
    // Anyone may trip a breaker, but only when its condition holds.
    let refused = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args([
            "tx",
            "trip-breaker",
            "--key",
            "alice",
            "--market",
            "BTC-PERP",
            "--wait",
            "--home",
        ])
        .arg(node.home())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("code 319"), "{stderr}");
    node.stop();
}
