//! An ABCI application on a real RocksDB store, driven as CometBFT drives it.

#![allow(dead_code, clippy::unwrap_used)]

use clearnode_abci::{AppInfo, ClearnodeApp};
use clearnode_engine::testkit::{custodian_key, genesis, key, venue_key, Signer, CHAIN_ID};
use clearnode_store::Store;
use tendermint_abci::Application;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{RequestFinalizeBlock, RequestInfo, RequestInitChain};

pub fn open(dir: &std::path::Path) -> ClearnodeApp {
    let store = Store::open(dir).unwrap();
    ClearnodeApp::new(
        store,
        AppInfo {
            version: "test".into(),
        },
    )
    .unwrap()
}

pub fn init(app: &ClearnodeApp) -> Vec<u8> {
    let response = app.init_chain(RequestInitChain {
        time: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        chain_id: CHAIN_ID.into(),
        app_state_bytes: serde_json::to_vec(&genesis()).unwrap().into(),
        initial_height: 1,
        ..Default::default()
    });
    response.app_hash.to_vec()
}

pub fn finalize(app: &ClearnodeApp, height: i64, txs: &[Vec<u8>]) -> (Vec<u32>, Vec<u8>) {
    let response = app.finalize_block(RequestFinalizeBlock {
        txs: txs.iter().map(|tx| tx.clone().into()).collect(),
        height,
        time: Some(Timestamp {
            seconds: 1_700_000_000 + height,
            nanos: 0,
        }),
        ..Default::default()
    });
    let codes = response.tx_results.iter().map(|r| r.code).collect();
    (codes, response.app_hash.to_vec())
}

pub fn info(app: &ClearnodeApp) -> (i64, Vec<u8>) {
    let response = app.info(RequestInfo::default());
    (
        response.last_block_height,
        response.last_block_app_hash.to_vec(),
    )
}

pub fn block_one() -> Vec<Vec<u8>> {
    let mut custodian = Signer::new(custodian_key());
    let mut trader = Signer::new(key(1));
    vec![
        custodian.deposit(trader.address(), "USDC", "1000"),
        trader.authorize("venue-a", true),
    ]
}

pub fn block_two() -> Vec<Vec<u8>> {
    let trader = Signer::new(key(1));
    let mut venue = Signer::new(venue_key(0));
    vec![venue.report("venue-a", &[(trader.address(), "BTC-PERP", "0.1", "60000")])]
}
