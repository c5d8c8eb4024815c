//! The oracle on real processes: the validator's simulated feed follows a
//! scenario file, its quotes ride on vote extensions, the next proposer
//! puts the update first in its block, and the market's mark follows.

// Outside consensus code: the test waits on a wall-clock deadline.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use base64::Engine as _;
use clearnode_proto::audit::v1 as audit;
use support::TestNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_prices_move_the_markets_through_vote_extensions() {
    let mut node = TestNode::init();
    let scenario = serde_json::json!({
        "start": {"market:BTC-PERP": "64000", "market:ETH-PERP": "3200"},
        "paths": {"market:BTC-PERP": [[0, 1000], [15, 900]], "market:ETH-PERP": [[0, 1000]]},
        "step_ppm": 0,
        "noise_ppm": 0,
        "seed": 1
    });
    let scenario_path = node.home().join("feed-scenario.json");
    std::fs::write(&scenario_path, scenario.to_string()).unwrap();
    std::fs::write(
        node.home().join("oracle.toml"),
        format!(
            "feed = \"simulated\"\nscenario = \"{}\"\n",
            scenario_path.display()
        ),
    )
    .unwrap();
    node.start();
    let client = node.client().await;
    let market = |height| {
        let mut audit = client.audit();
        async move {
            audit
                .get_market_risk(audit::GetMarketRiskRequest {
                    market: "BTC-PERP".into(),
                    height,
                    prove: false,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while market(0).await.context.unwrap().height < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the chain did not reach height 20:\n{}",
            node.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Past the end of the path: 90% of 64,000, exactly (no noise).
    assert_eq!(market(0).await.market.unwrap().oracle_price, "57600");
    let margin = market(0).await.margin.unwrap();
    assert!(margin.volatility_ppm > 0, "the moves are measured");
    // The update is the first transaction of the blocks that carry it.
    let block: serde_json::Value = reqwest::get(format!("{}/block?height=10", node.rpc_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = block["result"]["block"]["data"]["txs"][0].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(first)
        .unwrap();
    assert!(
        clearnode_oracle::is_oracle_tx(&bytes),
        "block 10 does not start with an oracle update"
    );
    node.stop();
}
