//! With two of four equal validators stopped, the other two hold half the
//! power, less than the 2/3 a block needs: the chain halts rather than
//! diverge. The two survivors stay up, answer queries at the halted height,
//! agree on every app hash, and accept a report into their mempool; when
//! the two come back, the chain resumes, commits that report, and all four
//! agree on every height.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::load::fund_and_authorize;
use support::localnet::Localnet;
use support::localnet::POLL_INTERVAL;
use support::{report, signed};

/// How long a halted height must hold to count as a halt: many block times.
const HALT_OBSERVED: Duration = Duration::from_secs(6);
/// Votes cast before the second validator stopped may still complete one
/// block; the survivors must settle on a height within this.
const HALT_SETTLES_WITHIN: Duration = Duration::from_secs(10);
/// How long the settled height must hold before the observation starts.
const SETTLED_FOR: Duration = Duration::from_secs(2);

/// The survivors' heights, all of which must answer.
async fn heights(net: &Localnet, nodes: &[usize]) -> Vec<u64> {
    let mut heights = Vec::new();
    for &i in nodes {
        let height = net.height(i).await;
        heights.push(height.unwrap_or_else(|| panic!("node{i} stopped answering while halted")));
    }
    heights
}

/// Waits until every survivor reports the same height and keeps it for
/// `SETTLED_FOR`; returns it.
async fn settled_height(net: &Localnet, nodes: &[usize]) -> u64 {
    let deadline = Instant::now() + HALT_SETTLES_WITHIN;
    let mut candidate: Option<(u64, Instant)> = None;
    loop {
        let now = heights(net, nodes).await;
        let same = now.iter().all(|&h| h == now[0]);
        candidate = match candidate {
            Some((height, since)) if same && height == now[0] => {
                if since.elapsed() >= SETTLED_FOR {
                    return height;
                }
                Some((height, since))
            }
            _ if same => Some((now[0], Instant::now())),
            _ => None,
        };
        assert!(
            Instant::now() < deadline,
            "the survivors did not settle on one height within {HALT_SETTLES_WITHIN:?}: {now:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_four_down_halts_without_divergence_and_resumes() {
    let mut net = Localnet::init(4);
    net.start_all();
    let all = [0, 1, 2, 3];
    net.wait_for_all(&all, 1, Duration::from_secs(90)).await;
    let accounts = fund_and_authorize(&net, 2).await;
    let venue = net.key("venue-a");
    let client = net.client(0);
    let sequence = client.sequence(&venue).await;
    let entries = [(accounts[0], "BTC-PERP", "1.5", "64000")];
    client
        .commit(
            signed(&venue, sequence, report("venue-a", &entries)),
            "venue",
        )
        .await;

    net.stop(2).await;
    net.stop(3).await;
    let survivors = [0, 1];
    let halted = settled_height(&net, &survivors).await;
    eprintln!("halted at height {halted} with node2 and node3 stopped");

    // Queued while halted: CheckTx runs against the last committed state.
    let entries = [(accounts[1], "ETH-PERP", "-4", "3200")];
    let queued = signed(&venue, sequence + 1, report("venue-a", &entries));
    let response = client.submit(queued, "venue", false).await.unwrap();
    assert_eq!(
        response.code, 0,
        "the queued report was refused: {}",
        response.log
    );

    let observed = Instant::now();
    while observed.elapsed() < HALT_OBSERVED {
        let now = heights(&net, &survivors).await;
        assert!(
            now.iter().all(|&h| h == halted),
            "a block was committed by half the voting power: heights {now:?}, halted at {halted}"
        );
        for &i in &survivors {
            let latest = net.client(i).latest_height().await.unwrap();
            assert_eq!(latest, halted, "node{i}'s state moved while halted");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    net.assert_app_hashes_agree(&survivors, 1..=halted - 1)
        .await;
    // The state after the last block is in no header yet (it goes into the
    // next one); the survivors hold the same.
    let mut held = Vec::new();
    for &i in &survivors {
        held.push(hex::encode_upper(
            net.client(i).app_hash_at(halted).await.unwrap(),
        ));
    }
    assert!(
        held.iter().all(|h| *h == held[0]),
        "the survivors differ on state {halted}: {held:?}"
    );

    net.start(2);
    net.start(3);
    let resumed = net
        .wait_for_all(&all, halted + 3, Duration::from_secs(90))
        .await;
    eprintln!("resumed: all four at height {resumed} or above");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.sequence(&venue).await < sequence + 2 {
        assert!(
            Instant::now() < deadline,
            "the report queued during the halt was not committed after the chain resumed"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let last = net
        .wait_for_all(&all, resumed + 1, Duration::from_secs(30))
        .await;
    net.assert_app_hashes_agree(&all, 1..=last - 1).await;
    let position = net.client(3).account(accounts[1]).await.unwrap().positions;
    assert!(
        position
            .iter()
            .any(|p| p.market == "ETH-PERP" && p.venue == "venue-a"),
        "node3 does not hold the report committed after the halt: {position:?}"
    );
}
