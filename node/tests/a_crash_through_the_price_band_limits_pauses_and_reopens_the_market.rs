//! A price band on a real node: the validator's feed drops BTC 20% in one
//! block, past the devnet's 15% band. The market goes to its limit state
//! (new exposure refused with 315, reducing accepted), pauses (nothing
//! accepted: 316), reopens with a widened margin and opens again; a venue
//! following its instruction stream is told each step, in order, and every
//! state is in the proven breaker answer.

// Outside consensus code: the test waits on wall-clock deadlines.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use clearnode_proto::audit::v1 as audit;
use clearnode_proto::state::v1::{Instruction, MarketBreaker, MarketStatus};
use clearnode_proto::venue::v1::venue_service_client::VenueServiceClient;
use clearnode_proto::venue::v1::StreamInstructionsRequest;
use ed25519_dalek::SigningKey;
use support::*;

async fn btc_breaker(client: &Client) -> MarketBreaker {
    let response = client
        .audit()
        .get_breakers(audit::GetBreakersRequest {
            height: 0,
            prove: true,
        })
        .await
        .unwrap()
        .into_inner();
    let market = response
        .markets
        .into_iter()
        .find(|m| m.breaker.as_ref().unwrap().market == "BTC-PERP")
        .unwrap();
    assert!(!market.context.unwrap().proof.is_empty());
    market.breaker.unwrap()
}

async fn wait_for_status(client: &Client, status: MarketStatus) -> MarketBreaker {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let breaker = btc_breaker(client).await;
        if breaker.status == i32::from(status) {
            return breaker;
        }
        assert!(Instant::now() < deadline, "never {status:?}: {breaker:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The market instructions venue-a's stream delivers until the market reopens.
async fn market_instructions(url: &str) -> Vec<Instruction> {
    let mut client = VenueServiceClient::connect(url.to_string()).await.unwrap();
    let mut stream = client
        .stream_instructions(StreamInstructionsRequest {
            venue_id: "venue-a".into(),
            from_height: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen: Vec<Instruction> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !seen.iter().any(|i| i.kind == "market_reopened") {
        assert!(Instant::now() < deadline, "instructions so far: {seen:?}");
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(Ok(Some(instruction))) if instruction.kind.starts_with("market_") => {
                seen.push(instruction)
            }
            Ok(Ok(Some(_))) | Err(_) => {}
            Ok(other) => panic!("the stream ended: {other:?}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_through_the_price_band_limits_pauses_and_reopens_the_market() {
    // Long enough states for the test's transactions to land in each.
    let mut node = TestNode::init_with(|genesis| {
        let breaker = &mut genesis["markets"][0]["breaker"];
        breaker["limit_blocks"] = 25.into();
        breaker["pause_blocks"] = 25.into();
    });
    // 64,000 until height 15, then 51,200 (-20%) from height 16 on.
    node.quote_btc_along(serde_json::json!([[0, 1000], [15, 1000], [16, 800]]));
    node.start();
    let client = node.client().await;
    let custodian = node.key("custodian");
    let venue_a = node.key("venue-a");
    let trader = SigningKey::from_bytes(&[23; 32]);
    let t = address(&trader);
    let deposit = signed(&custodian, 0, deposit(t, "USDC", "20000"));
    client.commit(deposit, "custodian").await;
    client
        .commit(signed(&trader, 0, authorize("venue-a")), "account")
        .await;
    let entry = |size: &str| report("venue-a", &[(t, "BTC-PERP", size, "64000")]);
    let opened = client
        .commit(signed(&venue_a, 0, entry("1")), "venue")
        .await;
    assert!(
        opened.height < 15,
        "open before the fall ({})",
        opened.height
    );

    // Limit: more exposure refused, less accepted.
    let limit = wait_for_status(&client, MarketStatus::Limit).await;
    assert_eq!(limit.reference_price, "64000");
    let more = client
        .submit(signed(&venue_a, 1, entry("2")), "venue", true)
        .await
        .unwrap();
    assert_eq!(more.code, 315, "{}", more.log);
    let less = client
        .submit(signed(&venue_a, 1, entry("0.5")), "venue", true)
        .await
        .unwrap();
    assert_eq!(less.code, 0, "{}", less.log);

    // Paused: nothing changes in the market, not even a reduction.
    wait_for_status(&client, MarketStatus::Paused).await;
    let reduce = client
        .submit(signed(&venue_a, 2, entry("0.2")), "venue", true)
        .await
        .unwrap();
    assert_eq!(reduce.code, 316, "{}", reduce.log);

    // Reopening around the new price, with the margin widened.
    let reopening = wait_for_status(&client, MarketStatus::Reopening).await;
    assert_eq!(reopening.reference_price, "51200");
    assert!(reopening.margin_multiplier_ppm > 1_000_000, "{reopening:?}");
    let open = wait_for_status(&client, MarketStatus::Open).await;
    assert_eq!(open.margin_multiplier_ppm, 1_000_000);

    let seen = market_instructions(&node.grpc_url).await;
    let kinds: Vec<&str> = seen.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "market_limit",
            "market_paused",
            "market_reopening",
            "market_reopened"
        ]
    );
    assert!(seen.iter().all(|i| i.market == "BTC-PERP"));
    node.stop();
}
