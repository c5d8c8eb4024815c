//! The ABCI application driven as CometBFT drives it, on a real RocksDB
//! store: InitChain, FinalizeBlock, Commit, Info, Query, and a crash between
//! FinalizeBlock and Commit followed by the handshake's replay.

#![allow(clippy::unwrap_used)]

mod common;

use clearnode_abci::{PROOF_OP_TYPE, QUERY_PATH_STORE};
use common::{block_one, block_two, finalize, info, init, open};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    response_process_proposal::ProposalStatus, RequestCheckTx, RequestProcessProposal, RequestQuery,
};

#[test]
fn a_crash_before_commit_replays_to_the_same_app_hash() {
    let dir = tempfile::tempdir().unwrap();
    let reference_hash;
    {
        let app = open(dir.path());
        assert_eq!(
            info(&app),
            (0, Vec::new()),
            "an empty node asks for InitChain"
        );
        init(&app);
        let (codes, _) = finalize(&app, 1, &block_one());
        assert_eq!(codes, vec![0, 0]);
        app.commit();
        assert_eq!(info(&app).0, 1);
        let (codes, hash) = finalize(&app, 2, &block_two());
        assert_eq!(codes, vec![0]);
        reference_hash = hash;
        // Crash: block 2 finalized, never committed.
    }
    let app = open(dir.path());
    let (height, _) = info(&app);
    assert_eq!(
        height, 1,
        "Info reports the last committed block, so CometBFT replays block 2"
    );
    let (codes, replayed_hash) = finalize(&app, 2, &block_two());
    assert_eq!(codes, vec![0], "the replayed report is applied once");
    assert_eq!(replayed_hash, reference_hash);
    app.commit();
    assert_eq!(info(&app), (2, reference_hash));
}

#[test]
fn init_chain_after_a_crash_before_the_first_block_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let app = open(dir.path());
        init(&app)
    };
    let app = open(dir.path());
    assert_eq!(info(&app).0, 0);
    assert_eq!(init(&app), first);
}

#[test]
fn two_nodes_fed_the_same_blocks_agree() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (app_a, app_b) = (open(a.path()), open(b.path()));
    assert_eq!(init(&app_a), init(&app_b));
    for (height, txs) in [(1, block_one()), (2, block_two())] {
        assert_eq!(
            finalize(&app_a, height, &txs),
            finalize(&app_b, height, &txs)
        );
        app_a.commit();
        app_b.commit();
    }
}

#[test]
fn check_tx_queues_sequences_and_commit_resets_the_mempool() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    init(&app);
    let txs = block_one();
    let check = |tx: &Vec<u8>| {
        app.check_tx(RequestCheckTx {
            tx: tx.clone().into(),
            r#type: 0,
        })
        .code
    };
    assert_eq!(check(&txs[0]), 0);
    assert_eq!(check(&txs[0]), 201, "the same sequence again is a replay");
    assert_eq!(check(&vec![1, 2, 3]), 101);
    finalize(&app, 1, &txs);
    app.commit();
    assert_eq!(check(&txs[0]), 201, "committed: a replay for good");
}

#[test]
fn process_proposal_rejects_forged_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    init(&app);
    let status = |txs: Vec<Vec<u8>>| {
        app.process_proposal(RequestProcessProposal {
            txs: txs.into_iter().map(Into::into).collect(),
            height: 1,
            ..Default::default()
        })
        .status
    };
    assert_eq!(status(block_one()), ProposalStatus::Accept as i32);
    assert_eq!(status(vec![vec![0xff; 8]]), ProposalStatus::Reject as i32);
}

#[test]
fn queries_prove_values_and_absences_at_past_heights() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    init(&app);
    finalize(&app, 1, &block_one());
    app.commit();
    let (_, hash_two) = finalize(&app, 2, &block_two());
    app.commit();
    let query = |key: &[u8], height: i64| {
        app.query(RequestQuery {
            data: key.to_vec().into(),
            path: QUERY_PATH_STORE.into(),
            height,
            prove: true,
        })
    };
    let response = query(b"agg/system", 0);
    assert_eq!(response.code, 0);
    assert_eq!(response.height, 2);
    let op = &response.proof_ops.as_ref().unwrap().ops[0];
    assert_eq!(op.r#type, PROOF_OP_TYPE);
    let proof = clearnode_store::decode_proof(&op.data).unwrap();
    let root: [u8; 32] = hash_two.try_into().unwrap();
    assert!(clearnode_store::verify_membership(
        &root,
        &proof,
        b"agg/system",
        &response.value
    ));

    let absent = query(b"acct/ffffffffffffffffffffffffffffffffffffffff", 2);
    assert!(absent.value.is_empty());
    let proof = clearnode_store::decode_proof(&absent.proof_ops.unwrap().ops[0].data).unwrap();
    assert!(clearnode_store::verify_non_membership(
        &root,
        &proof,
        b"acct/ffffffffffffffffffffffffffffffffffffffff"
    ));

    assert_eq!(query(b"agg/system", 1).height, 1, "reads at a past height");
    assert_ne!(
        query(b"agg/system", 9).code,
        0,
        "a future height is refused"
    );
}
