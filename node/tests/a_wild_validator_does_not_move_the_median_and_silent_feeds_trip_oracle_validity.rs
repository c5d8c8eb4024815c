//! The oracle on four real validators (CometBFT processes, RocksDB, gRPC):
//! prices move through vote extensions while one validator quotes ten
//! times the market, and the committed price is the honest one on every
//! node. Then two validators' feeds go silent: the market is quoted by too
//! few validators, then stale — flags in the proven breaker state and
//! `oracle_invalid` in the venues' instruction stream — until a feed comes
//! back and the price is valid again. All four agree on every app hash.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use clearnode_proto::audit::v1 as audit;
use clearnode_proto::state::v1 as state;
use support::localnet::{Localnet, POLL_INTERVAL};

const ALL: [usize; 4] = [0, 1, 2, 3];

/// Every devnet target flat at its genesis price, BTC down 5% over ten
/// blocks; `btc_per_mille` scales BTC's whole path (the wild validator).
fn scenario(btc_per_mille: i64) -> serde_json::Value {
    let flat = serde_json::json!([[0, 1000]]);
    serde_json::json!({
        "start": {
            "market:BTC-PERP": "64000", "market:ETH-PERP": "3200", "market:SOL-PERP": "150",
            "asset:USDC": "1", "asset:ETH": "3200", "asset:BTC": "64000"
        },
        "paths": {
            "market:BTC-PERP": [[0, btc_per_mille], [10, btc_per_mille * 95 / 100]],
            "market:ETH-PERP": flat, "market:SOL-PERP": flat,
            "asset:USDC": flat, "asset:ETH": flat, "asset:BTC": flat
        },
        "step_ppm": 0,
        "noise_ppm": 0,
        "seed": 7
    })
}

fn set_feed(net: &Localnet, i: usize, scenario: Option<serde_json::Value>) {
    let home = net.home(i);
    let config = match scenario {
        Some(scenario) => {
            let path = home.join("feed-scenario.json");
            std::fs::write(&path, scenario.to_string()).unwrap();
            format!("feed = \"simulated\"\nscenario = \"{}\"\n", path.display())
        }
        None => "feed = \"none\"\n".to_string(),
    };
    std::fs::write(home.join("oracle.toml"), config).unwrap();
}

async fn btc_price(net: &Localnet, i: usize) -> (u64, String) {
    let response = net
        .client(i)
        .audit()
        .get_market_risk(audit::GetMarketRiskRequest {
            market: "BTC-PERP".into(),
            height: 0,
            prove: false,
        })
        .await
        .unwrap()
        .into_inner();
    (
        response.context.unwrap().height,
        response.market.unwrap().oracle_price,
    )
}

async fn btc_breaker(net: &Localnet, i: usize) -> state::MarketBreaker {
    let response = net
        .client(i)
        .audit()
        .get_breakers(audit::GetBreakersRequest {
            height: 0,
            prove: false,
        })
        .await
        .unwrap()
        .into_inner();
    response
        .markets
        .into_iter()
        .filter_map(|m| m.breaker)
        .find(|b| b.market == "BTC-PERP")
        .unwrap()
}

/// Waits until node 0's BTC breaker satisfies `condition`.
async fn wait_for_breaker(
    net: &Localnet,
    what: &str,
    condition: impl Fn(&state::MarketBreaker) -> bool,
) -> state::MarketBreaker {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let breaker = btc_breaker(net, 0).await;
        if condition(&breaker) {
            return breaker;
        }
        assert!(
            Instant::now() < deadline,
            "BTC-PERP never became {what}: {breaker:?}\n{}",
            net.logs()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn instruction_kinds(net: &Localnet, venue: &str) -> Vec<(u64, String)> {
    let response = net
        .client(0)
        .audit()
        .list_instructions(audit::ListInstructionsRequest {
            venue_id: venue.into(),
            kinds: vec!["oracle_invalid".into(), "oracle_valid".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    response
        .instructions
        .into_iter()
        .filter(|i| i.market == "BTC-PERP")
        .map(|i| (i.height, i.kind))
        .collect()
}

async fn restart_with_feed(net: &mut Localnet, i: usize, scenario: Option<serde_json::Value>) {
    net.stop(i).await;
    set_feed(net, i, scenario);
    net.start(i);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wild_validator_does_not_move_the_median_and_silent_feeds_trip_oracle_validity() {
    let mut net = Localnet::init(4);
    for i in 0..3 {
        set_feed(&net, i, Some(scenario(1000)));
    }
    set_feed(&net, 3, Some(scenario(10_000)));
    net.start_all();
    net.wait_for_all(&ALL, 20, Duration::from_secs(120)).await;

    // The honest path's end, exactly: 95% of 64,000. The wild quotes (ten
    // times that) are a quarter of the power and move nothing.
    for i in ALL {
        let (height, price) = btc_price(&net, i).await;
        assert!(height >= 20);
        assert_eq!(price, "60800", "node{i} at height {height}");
    }
    let breaker = btc_breaker(&net, 0).await;
    assert!(!breaker.stale && !breaker.too_few_reporters && !breaker.too_volatile);

    // Two feeds silent (node3 then node2, one at a time so 3/4 stay up):
    // half the power quotes, less than 2/3: too few reporters, then stale.
    restart_with_feed(&mut net, 3, None).await;
    restart_with_feed(&mut net, 2, None).await;
    let underquoted = wait_for_breaker(&net, "underquoted", |b| b.too_few_reporters).await;
    let stale = wait_for_breaker(&net, "stale", |b| b.stale).await;
    let stale_after = u64::from(stale.params.unwrap().stale_after_blocks);
    assert!(stale_after > 0);
    assert!(stale.last_priced_height <= underquoted.last_priced_height);
    let metrics = net.metrics(0).await;
    for line in [
        "clearnode_oracle_price_valid{market=\"BTC-PERP\"} 0",
        "clearnode_market_breaker{market=\"BTC-PERP\",status=\"open\"} 1",
        "clearnode_system_breaker_tripped 0",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    let kinds = instruction_kinds(&net, "venue-a").await;
    assert!(
        kinds.iter().any(|(_, kind)| kind == "oracle_invalid"),
        "venues are told: {kinds:?}"
    );

    // A feed comes back: 3/4 of the power quotes, the price is valid again.
    restart_with_feed(&mut net, 3, Some(scenario(1000))).await;
    let valid = wait_for_breaker(&net, "valid", |b| {
        !b.stale && !b.too_few_reporters && b.last_priced_height > stale.last_priced_height
    })
    .await;
    assert!(valid.last_priced_height > stale.last_priced_height);
    let kinds = instruction_kinds(&net, "venue-b").await;
    let last = kinds.last().map(|(_, kind)| kind.as_str());
    assert_eq!(last, Some("oracle_valid"), "{kinds:?}");

    let last = net
        .wait_for_all(&ALL, valid.last_priced_height + 2, Duration::from_secs(60))
        .await;
    net.assert_app_hashes_agree(&ALL, 1..=last - 1).await;
    for i in ALL {
        net.stop(i).await;
    }
}
