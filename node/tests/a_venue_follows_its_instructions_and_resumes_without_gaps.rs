//! A venue follows its instruction stream over gRPC while the validator's
//! feed drives BTC down: the account it reported walks through margin call,
//! liquidation and bankruptcy, and the venue is told each step, in order.
//! Resuming from a height delivers exactly what came from there on.

// Outside consensus code: the test waits on wall-clock deadlines.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use clearnode_proto::state::v1::Instruction;
use clearnode_proto::venue::v1::venue_service_client::VenueServiceClient;
use clearnode_proto::venue::v1::StreamInstructionsRequest;
use ed25519_dalek::SigningKey;
use support::*;

async fn collect(
    url: &str,
    from_height: u64,
    until: impl Fn(&[Instruction]) -> bool,
) -> Vec<Instruction> {
    let mut client = VenueServiceClient::connect(url.to_string()).await.unwrap();
    let mut stream = client
        .stream_instructions(StreamInstructionsRequest {
            venue_id: "venue-a".into(),
            from_height,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !until(&seen) {
        assert!(Instant::now() < deadline, "instructions so far: {seen:?}");
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(Ok(Some(instruction))) => seen.push(instruction),
            Ok(other) => panic!("the stream ended: {other:?}"),
            Err(_) => {}
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_venue_follows_its_instructions_and_resumes_without_gaps() {
    let mut node = TestNode::init();
    // BTC holds until height 20, then falls 10% by height 40.
    node.quote_btc_along(serde_json::json!([[0, 1000], [20, 1000], [40, 900]]));
    node.start();
    let client = node.client().await;
    let custodian = node.key("custodian");
    let venue_a = node.key("venue-a");
    let trader = SigningKey::from_bytes(&[21; 32]);
    let t = address(&trader);
    // 5,000 USDC and 1 BTC long: margin call under 62,105, liquidation under
    // 60,825, bankruptcy under 59,000.
    client
        .commit(
            signed(&custodian, 0, deposit(t, "USDC", "5000")),
            "custodian",
        )
        .await;
    client
        .commit(signed(&trader, 0, authorize("venue-a")), "account")
        .await;
    let opened = client
        .commit(
            signed(
                &venue_a,
                0,
                report("venue-a", &[(t, "BTC-PERP", "1", "64000")]),
            ),
            "venue",
        )
        .await;
    assert!(
        opened.height < 20,
        "the position must be open before the fall (height {})",
        opened.height
    );

    let kinds = |seen: &[Instruction]| seen.iter().map(|i| i.kind.clone()).collect::<Vec<_>>();
    let all = collect(&node.grpc_url, 1, |seen| {
        kinds(seen).contains(&"bankrupt".to_string())
    })
    .await;
    let health: Vec<String> = kinds(&all)
        .into_iter()
        .filter(|k| !k.starts_with("liquidation"))
        .collect();
    assert_eq!(
        health,
        ["margin_call", "liquidating", "bankrupt"],
        "{all:?}"
    );
    assert!(kinds(&all).contains(&"liquidation_order".to_string()));
    assert!(all.iter().all(|i| i.account == t.as_bytes().to_vec()));
    assert!(
        all.windows(2)
            .all(|w| (w[0].height, w[0].index) < (w[1].height, w[1].index)),
        "in block order"
    );

    // A venue that saw up to the liquidation resumes from the next height.
    let liquidating = all.iter().find(|i| i.kind == "liquidating").unwrap().height;
    let expected: Vec<Instruction> = all
        .iter()
        .filter(|i| i.height > liquidating)
        .cloned()
        .collect();
    let resumed = collect(&node.grpc_url, liquidating + 1, |seen| {
        seen.len() >= expected.len()
    })
    .await;
    assert_eq!(
        resumed[..expected.len()],
        expected[..],
        "nothing missed, nothing twice"
    );
    node.stop();
}
