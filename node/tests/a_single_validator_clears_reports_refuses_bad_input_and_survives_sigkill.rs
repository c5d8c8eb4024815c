//! End to end on real processes: `clearnode start` supervising a real
//! `cometbft` (v0.38), state on RocksDB, every call over gRPC sockets.
//!
//! A trader funded with USDC and ETH is reported long on one venue and
//! short on another; the node's cross-venue margin and the aggregates come
//! back exact and provable against the app hash CometBFT signed. Six kinds
//! of bad input are refused with their codes and change nothing. Then the
//! whole validator is SIGKILLed and restarted: height, app hash and state
//! survive, and nothing is applied twice.

#![allow(clippy::unwrap_used)]

mod support;

use clearnode_proto::audit::v1 as audit;
use clearnode_proto::state::v1 as state;
use clearnode_proto::tx::v1 as tx;
use ed25519_dalek::SigningKey;
use prost::Message;
use support::*;

fn code_metadata(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("clearnode-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// What must not change: the account's records and the system aggregate,
/// without the heights they were read at.
async fn observable_state(client: &Client, trader: clearnode_types::Address) -> (Vec<u8>, Vec<u8>) {
    let account = client.account(trader).await.unwrap();
    let mut system = client.system(0).await.unwrap().aggregate.unwrap();
    system.height = 0;
    let account = audit::GetAccountRiskResponse {
        context: None,
        ..account
    };
    (account.encode_to_vec(), system.encode_to_vec())
}

async fn assert_proven_against_signed_header(node: &TestNode, client: &Client) -> (u64, Vec<u8>) {
    let response = client.system(0).await.unwrap();
    let context = response.context.unwrap();
    let value = response.aggregate.unwrap().encode_to_vec();
    let root: [u8; 32] = context.app_hash.clone().try_into().unwrap();
    let proof = clearnode_store::decode_proof(&context.proof).unwrap();
    assert!(
        clearnode_store::verify_membership(&root, &proof, &context.key, &value),
        "the system aggregate's proof does not verify against the app hash"
    );
    let mut tampered = value.clone();
    tampered[0] ^= 1;
    assert!(!clearnode_store::verify_membership(
        &root,
        &proof,
        &context.key,
        &tampered
    ));
    // The app hash of state H is in the header of block H+1, which the validators signed.
    let rpc = node.rpc();
    let header_hash = loop {
        match rpc.header_app_hash(context.height + 1).await {
            Ok(hash) => break hash,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    assert_eq!(
        header_hash,
        hex::encode_upper(root),
        "app hash differs from the signed header"
    );
    (context.height, context.app_hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_validator_clears_reports_refuses_bad_input_and_survives_sigkill() {
    let mut node = TestNode::init();
    // Exact margin figures need the genesis marks: the feed quotes them flat.
    node.quote_genesis_prices();
    node.start();
    let client = node.client().await;
    let custodian = node.key("custodian");
    let venue_a = node.key("venue-a");
    let venue_b = node.key("venue-b");
    let venue_c = node.key("venue-c");
    let trader = SigningKey::from_bytes(&[7; 32]);
    let t = address(&trader);

    // Funding and authorizations, each waited for in its block.
    let first_deposit = signed(&custodian, 0, deposit(t, "USDC", "10000"));
    client.commit(first_deposit.clone(), "custodian").await;
    client
        .commit(signed(&custodian, 1, deposit(t, "ETH", "2")), "custodian")
        .await;
    client
        .commit(signed(&trader, 0, authorize("venue-a")), "account")
        .await;
    client
        .commit(signed(&trader, 1, authorize("venue-b")), "account")
        .await;

    // Long 4 BTC on venue-a at 63,000; short 0.5 BTC on venue-b at 64,000 (the mark).
    client
        .commit(
            signed(
                &venue_a,
                0,
                report("venue-a", &[(t, "BTC-PERP", "4", "63000")]),
            ),
            "venue",
        )
        .await;
    client
        .commit(
            signed(
                &venue_b,
                0,
                report("venue-b", &[(t, "BTC-PERP", "-0.5", "64000")]),
            ),
            "venue",
        )
        .await;

    let account = client.account(t).await.unwrap();
    let risk = account.risk.unwrap();
    // Collateral: 10,000 USDC + 2 ETH at 3,200 less a 15% haircut = 15,440.
    assert_eq!(risk.collateral_value, "15440");
    // PnL: 4 x (64,000 - 63,000) = 4,000.
    assert_eq!(risk.unrealized_pnl, "4000");
    assert_eq!(risk.equity, "19440");
    // Net 3.5 BTC = 224,000 at 5% = 11,200; 1 BTC netted out = 64,000 at 1% = 640.
    assert_eq!(risk.initial_requirement, "11840");
    // Maintenance is 60% of initial.
    assert_eq!(risk.maintenance_requirement, "7104");
    assert_eq!(risk.free_collateral, "7600");
    assert_eq!(risk.health, state::HealthState::Healthy as i32);
    assert!(
        risk.leverage.starts_with("11.5226"),
        "leverage {}",
        risk.leverage
    );
    assert_eq!(account.positions.len(), 2);

    let market = client
        .audit()
        .get_market_risk(audit::GetMarketRiskRequest {
            market: "BTC-PERP".into(),
            height: 0,
            prove: true,
        })
        .await
        .unwrap()
        .into_inner()
        .aggregate
        .unwrap();
    assert_eq!(market.long_open_interest, "4");
    assert_eq!(market.short_open_interest, "0.5");
    assert_eq!(market.net_long_open_interest, "3.5");
    assert_eq!(market.gross_notional, "288000");
    assert_eq!(market.net_notional, "224000");
    assert_eq!(market.venues.len(), 2);
    let system = client.system(0).await.unwrap().aggregate.unwrap();
    assert_eq!(system.net_notional, "224000");
    assert_eq!(system.accounts_total, 1);
    assert_proven_against_signed_header(&node, &client).await;
    let fund = client
        .audit()
        .get_insurance_fund(audit::GetInsuranceFundRequest {
            height: 0,
            prove: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fund.fund.unwrap().balance, "1000000");
    assert_eq!(fund.settlements.len(), 3);
    let orders = client
        .audit()
        .list_liquidation_orders(audit::ListLiquidationOrdersRequest {
            account: t.as_bytes().to_vec(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        orders.orders.is_empty(),
        "a healthy account has no liquidation orders"
    );

    // The margin passport venue-b would ask before accepting an order: 7,600
    // free. Buying on venue-b first unwinds its 0.5 short (and the basis
    // charge with it); then 19,440 of equity carries 3.5 + q BTC at 5% of
    // 64,000 with no hedge left: q = 2.575.
    let passport = clearnode_proto::venue::v1::venue_service_client::VenueServiceClient::connect(
        node.grpc_url.clone(),
    )
    .await
    .unwrap()
    .get_margin_passport(clearnode_proto::venue::v1::GetMarginPassportRequest {
        account: t.as_bytes().to_vec(),
        venue_id: "venue-b".into(),
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(passport.free_collateral, "7600");
    let btc_allowance = passport
        .markets
        .iter()
        .find(|m| m.market == "BTC-PERP")
        .unwrap();
    assert_eq!(btc_allowance.max_long, "2.575");

    // Bad input: each refused with its code, and nothing changes.
    let before = observable_state(&client, t).await;
    let impostor = SigningKey::from_bytes(&[66; 32]);
    let mut forged =
        tx::Tx::decode(signed(&impostor, 2, deposit(t, "USDC", "1000000")).as_slice()).unwrap();
    forged.signer_public_key = custodian.verifying_key().to_bytes().to_vec();
    let forged = forged.encode_to_vec();
    let status = client
        .submit(forged.clone(), "custodian", false)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(code_metadata(&status), "106", "{status:?}");
    assert_eq!(
        node.rpc().broadcast_tx_sync(&forged).await.unwrap().code,
        106,
        "CheckTx on forged bytes"
    );

    let malformed = vec![0xde, 0xad, 0xbe, 0xef];
    let status = client
        .submit(malformed.clone(), "venue", false)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(code_metadata(&status), "101");
    assert_eq!(
        node.rpc().broadcast_tx_sync(&malformed).await.unwrap().code,
        101,
        "CheckTx on garbage"
    );

    let unauthorized = signed(
        &venue_c,
        0,
        report("venue-c", &[(t, "BTC-PERP", "1", "64000")]),
    );
    assert_eq!(
        client
            .submit(unauthorized, "venue", false)
            .await
            .unwrap()
            .code,
        206
    );
    let status = client
        .submit(first_deposit.clone(), "custodian", false)
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::AlreadyExists,
        "exact replay: {status:?}"
    );
    let replayed_sequence = signed(&custodian, 0, deposit(t, "USDC", "5"));
    assert_eq!(
        client
            .submit(replayed_sequence, "custodian", false)
            .await
            .unwrap()
            .code,
        201,
        "replay"
    );
    let unknown_market = signed(
        &venue_a,
        1,
        report("venue-a", &[(t, "DOGE-PERP", "1", "1")]),
    );
    assert_eq!(
        client
            .submit(unknown_market, "venue", false)
            .await
            .unwrap()
            .code,
        301
    );
    // Withdrawing 9,000 would leave equity 10,440 under the 11,840 initial requirement.
    let beyond_margin = signed(&trader, 2, withdraw("USDC", "9000"));
    assert_eq!(
        client
            .submit(beyond_margin, "account", false)
            .await
            .unwrap()
            .code,
        304
    );
    let wrong_service = signed(
        &venue_a,
        1,
        report("venue-a", &[(t, "BTC-PERP", "1", "64000")]),
    );
    let status = client
        .submit(wrong_service, "custodian", false)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // Two more blocks, then the state is exactly as before.
    let height = client.system(0).await.unwrap().context.unwrap().height;
    while client.system(0).await.unwrap().context.unwrap().height < height + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        observable_state(&client, t).await,
        before,
        "a refused input changed the state"
    );
    for (key, expected) in [
        (&custodian, 2),
        (&trader, 2),
        (&venue_a, 1),
        (&venue_b, 1),
        (&venue_c, 0),
    ] {
        assert_eq!(client.sequence(key).await, expected);
    }

    // Crash: SIGKILL the validator (clearnode and cometbft) and restart it.
    let (height_before, app_hash_before) =
        assert_proven_against_signed_header(&node, &client).await;
    let state_before = observable_state(&client, t).await;
    node.kill9();
    node.start();
    let client = node.client().await;
    let at_same_height = client.system(height_before).await.unwrap().context.unwrap();
    assert_eq!(
        at_same_height.app_hash, app_hash_before,
        "app hash at {height_before} changed across the crash"
    );
    assert!(client.system(0).await.unwrap().context.unwrap().height >= height_before);
    assert_eq!(
        observable_state(&client, t).await,
        state_before,
        "state changed across the crash"
    );
    // After the restart the mempool cache is empty: the replay reaches CheckTx.
    assert_eq!(
        client
            .submit(first_deposit, "custodian", false)
            .await
            .unwrap()
            .code,
        201,
        "replay after restart"
    );
    assert_eq!(client.sequence(&custodian).await, 2);

    // The chain goes on: a withdrawal within margin commits once.
    client
        .commit(signed(&trader, 2, withdraw("USDC", "100")), "account")
        .await;
    let account = client.account(t).await.unwrap().account.unwrap();
    let usdc = account
        .collateral
        .iter()
        .find(|c| c.asset == "USDC")
        .unwrap();
    assert_eq!(usdc.amount, "9900");
    assert_proven_against_signed_header(&node, &client).await;
    node.stop();
}
