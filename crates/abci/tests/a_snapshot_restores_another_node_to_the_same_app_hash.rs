//! State sync through the four ABCI calls, as CometBFT makes them: one app
//! takes snapshots as it commits and serves them (ListSnapshots,
//! LoadSnapshotChunk); an empty app restores one (OfferSnapshot,
//! ApplySnapshotChunk), asks again for a tampered chunk, refuses a
//! snapshot for another app hash, and ends at the same height and app hash,
//! from which both execute the next block alike. The metrics of the serving
//! app show its events, state figures and latencies.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use clearnode_abci::{ClearnodeApp, SnapshotConfig};
use common::{block_one, block_two, finalize, info, init, open};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    response_apply_snapshot_chunk::Result as ApplyResult,
    response_offer_snapshot::Result as OfferResult, RequestApplySnapshotChunk,
    RequestLoadSnapshotChunk, RequestOfferSnapshot, Snapshot,
};

/// Runs blocks `heights` (the demo blocks, then empty ones) and commits each.
fn run_blocks(app: &ClearnodeApp, heights: std::ops::RangeInclusive<i64>) {
    for height in heights {
        let txs = match height {
            1 => block_one(),
            2 => block_two(),
            _ => Vec::new(),
        };
        finalize(app, height, &txs);
        app.commit();
    }
}

/// Waits for the background writer to list a snapshot of `height`.
fn wait_for_snapshot(app: &ClearnodeApp, height: u64) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(snapshot) = app
            .list_snapshots()
            .snapshots
            .into_iter()
            .find(|s| s.height == height)
        {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "no snapshot of {height} listed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn apply(app: &ClearnodeApp, index: u32, chunk: Vec<u8>, sender: &str) -> (i32, Vec<u32>) {
    let response = app.apply_snapshot_chunk(RequestApplySnapshotChunk {
        index,
        chunk: chunk.into(),
        sender: sender.into(),
    });
    assert!(
        response.result != ApplyResult::Retry as i32
            || response.reject_senders == vec![sender.to_string()],
        "a bad chunk's sender is rejected"
    );
    (response.result, response.refetch_chunks)
}

#[test]
fn a_snapshot_restores_another_node_to_the_same_app_hash() {
    let dirs = tempfile::tempdir().unwrap();
    let source = open(&dirs.path().join("source")).with_snapshots(SnapshotConfig {
        dir: dirs.path().join("snapshots"),
        interval: 2,
        keep: 2,
    });
    init(&source);
    run_blocks(&source, 1..=2);
    // A snapshot due while the previous one is still being written is skipped.
    wait_for_snapshot(&source, 2);
    run_blocks(&source, 3..=4);
    let snapshot = wait_for_snapshot(&source, 4);
    let (_, app_hash) = info(&source);

    let target = open(&dirs.path().join("target"));
    let offer = |app_hash: &[u8]| {
        target
            .offer_snapshot(RequestOfferSnapshot {
                snapshot: Some(snapshot.clone()),
                app_hash: app_hash.to_vec().into(),
            })
            .result
    };
    assert_eq!(offer(&[0; 32]), OfferResult::Reject as i32);
    assert_eq!(offer(&app_hash), OfferResult::Accept as i32);

    let chunk = |index: u32| {
        source
            .load_snapshot_chunk(RequestLoadSnapshotChunk {
                height: snapshot.height,
                format: snapshot.format,
                chunk: index,
            })
            .chunk
            .to_vec()
    };
    let mut tampered = chunk(0);
    tampered[10] ^= 0x01;
    assert_eq!(
        apply(&target, 0, tampered, "mallory"),
        (ApplyResult::Retry as i32, vec![0]),
        "a tampered chunk is fetched again"
    );
    for index in 0..snapshot.chunks {
        let (result, refetch) = apply(&target, index, chunk(index), "alice");
        assert_eq!((result, refetch), (ApplyResult::Accept as i32, Vec::new()));
    }
    assert_eq!(info(&target), (4, app_hash.clone()));

    // Both go on from the snapshot alike.
    let txs = block_two();
    assert_eq!(finalize(&source, 5, &txs), finalize(&target, 5, &txs));
    source.commit();
    target.commit();
    assert_eq!(info(&source), info(&target));
}

#[test]
fn metrics_show_events_state_figures_and_latencies() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(dir.path());
    init(&app);
    run_blocks(&app, 1..=3);
    let metrics = app.metrics();
    let text = metrics.render();
    for line in [
        "clearnode_committed_height 3\n",
        "clearnode_engine_events_total{kind=\"deposit_collateral\"} 1\n",
        "clearnode_engine_events_total{kind=\"position_report\"} 1\n",
        "clearnode_accounts 1\n",
        "clearnode_accounts_by_health{health=\"healthy\"} 1\n",
        "clearnode_liquidation_orders_open 0\n",
        "clearnode_finalize_block_seconds_count 3\n",
        "clearnode_commit_seconds_count 3\n",
        "clearnode_commit_seconds_bucket{le=\"+Inf\"} 3\n",
    ] {
        assert!(text.contains(line), "metrics lack {line:?}:\n{text}");
    }
    assert!(
        text.contains("\nclearnode_insurance_fund_balance_usd "),
        "{text}"
    );
}
