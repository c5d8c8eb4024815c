//! The oracle path through the ABCI application: vote extensions in, a
//! stake-weighted median out, verified by every validator.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use clearnode_abci::{AppInfo, ClearnodeApp};
use clearnode_engine::testkit::{genesis, CHAIN_ID};
use clearnode_oracle::{encode_vote, extension_sign_bytes};
use clearnode_store::Store;
use clearnode_types::price::PriceUpdate;
use ed25519_dalek::{Signer as _, SigningKey};
use prost::Message;
use tendermint_abci::Application;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{
    response_process_proposal::ProposalStatus, response_verify_vote_extension::VerifyStatus,
    ExtendedCommitInfo, ExtendedVoteInfo, RequestExtendVote, RequestFinalizeBlock,
    RequestInitChain, RequestPrepareProposal, RequestProcessProposal, RequestQuery,
    RequestVerifyVoteExtension, Validator, ValidatorUpdate,
};
use tendermint_proto::v0_38::crypto::{public_key::Sum, PublicKey};

fn validator_keys() -> Vec<SigningKey> {
    (1u8..=4)
        .map(|i| SigningKey::from_bytes(&[40 + i; 32]))
        .collect()
}

fn btc(price: &str) -> Vec<PriceUpdate> {
    vec![PriceUpdate {
        target: "market:BTC-PERP".parse().unwrap(),
        price: price.parse().unwrap(),
    }]
}

fn app(dir: &std::path::Path, quotes: Vec<PriceUpdate>) -> ClearnodeApp {
    let store = Store::open(dir).unwrap();
    let app = ClearnodeApp::new(
        store,
        AppInfo {
            version: "test".into(),
        },
    )
    .unwrap()
    .with_quotes(Arc::new(move |_| quotes.clone()));
    app.init_chain(RequestInitChain {
        time: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        chain_id: CHAIN_ID.into(),
        app_state_bytes: serde_json::to_vec(&genesis()).unwrap().into(),
        validators: validator_keys()
            .iter()
            .map(|k| ValidatorUpdate {
                pub_key: Some(PublicKey {
                    sum: Some(Sum::Ed25519(k.verifying_key().to_bytes().to_vec())),
                }),
                power: 10,
            })
            .collect(),
        initial_height: 1,
        ..Default::default()
    });
    app
}

fn address(key: &SigningKey) -> Vec<u8> {
    clearnode_oracle::validator_address(&key.verifying_key().to_bytes()).to_vec()
}

/// The extended commit of `height`, each validator quoting one BTC price.
fn commit(height: i64, prices: &[&str]) -> ExtendedCommitInfo {
    ExtendedCommitInfo {
        round: 0,
        votes: validator_keys()
            .iter()
            .zip(prices)
            .map(|(key, price)| {
                let extension = encode_vote(&btc(price));
                let signature = key.sign(&extension_sign_bytes(&extension, height, 0, CHAIN_ID));
                ExtendedVoteInfo {
                    validator: Some(Validator {
                        address: address(key).into(),
                        power: 10,
                    }),
                    vote_extension: extension.into(),
                    extension_signature: signature.to_bytes().to_vec().into(),
                    block_id_flag: 2,
                }
            })
            .collect(),
    }
}

fn btc_price(app: &ClearnodeApp) -> String {
    let response = app.query(RequestQuery {
        data: b"market/BTC-PERP".to_vec().into(),
        path: "/store".into(),
        height: 0,
        prove: false,
    });
    clearnode_proto::state::v1::Market::decode(response.value.as_ref())
        .unwrap()
        .oracle_price
}

#[test]
fn a_validator_extends_its_vote_with_its_feed_and_checks_others() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), btc("64000"));
    let extension = app.extend_vote(RequestExtendVote::default()).vote_extension;
    assert_eq!(
        clearnode_oracle::decode_vote(&extension).unwrap(),
        btc("64000")
    );
    let verify = |bytes: Vec<u8>| {
        app.verify_vote_extension(RequestVerifyVoteExtension {
            vote_extension: bytes.into(),
            ..Default::default()
        })
        .status
    };
    assert_eq!(verify(extension.to_vec()), VerifyStatus::Accept as i32);
    assert_eq!(
        verify(Vec::new()),
        VerifyStatus::Accept as i32,
        "an empty extension is valid"
    );
    assert_eq!(verify(vec![0xff, 0x01]), VerifyStatus::Reject as i32);
}

#[test]
fn the_proposer_injects_the_median_and_every_node_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), Vec::new());
    let block = |height: i64, txs: Vec<bytes::Bytes>| {
        app.finalize_block(RequestFinalizeBlock {
            txs,
            height,
            time: Some(Timestamp {
                seconds: 1_700_000_000 + height,
                nanos: 0,
            }),
            ..Default::default()
        })
    };
    block(1, Vec::new());
    app.commit();
    // One validator quotes a wild price: the median ignores it.
    let proposal = app.prepare_proposal(RequestPrepareProposal {
        max_tx_bytes: 1 << 20,
        local_last_commit: Some(commit(1, &["61000", "61200", "61100", "1000000"])),
        height: 2,
        ..Default::default()
    });
    assert_eq!(proposal.txs.len(), 1);
    assert!(clearnode_oracle::is_oracle_tx(&proposal.txs[0]));
    let process = |txs: Vec<bytes::Bytes>| {
        app.process_proposal(RequestProcessProposal {
            txs,
            height: 2,
            ..Default::default()
        })
        .status
    };
    assert_eq!(process(proposal.txs.clone()), ProposalStatus::Accept as i32);
    // A proposer that forges one validator's quote is rejected.
    let mut forged = commit(1, &["61000", "61200", "61100", "1000000"]);
    forged.votes[0].vote_extension = encode_vote(&btc("1")).into();
    let forged = app.prepare_proposal(RequestPrepareProposal {
        max_tx_bytes: 1 << 20,
        local_last_commit: Some(forged),
        height: 2,
        ..Default::default()
    });
    assert_eq!(process(forged.txs), ProposalStatus::Reject as i32);

    let result = block(2, proposal.txs);
    assert_eq!(result.tx_results[0].code, 0);
    assert_eq!(result.tx_results[0].info, "oracle_update");
    app.commit();
    assert_eq!(btc_price(&app), "61100");
}
