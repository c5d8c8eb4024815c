//! Governance on four real validators: they propose and vote through the
//! CLI with their consensus keys; a safety-raising change (a higher initial
//! margin) takes effect in the block it passes on every node; a
//! safety-lowering one waits exactly its timelock (20 blocks in the devnet
//! template), observed height by height through every node's AuditService;
//! an auditor proves the stored proposal; all validators agree on every app
//! hash.

// Outside consensus code: the test runs the CLI and waits on deadlines.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clearnode_proto::audit::v1 as audit;
use clearnode_proto::state::v1 as state;
use prost::Message;
use support::localnet::Localnet;
use support::{cli_json as cli, Client};

/// `timelock_blocks` in genesis/devnet.json, which localnet uses.
const TIMELOCK_BLOCKS: u64 = 20;

/// Submits through the CLI and waits for the block; returns its height.
fn committed(home: &Path, args: &[&str]) -> u64 {
    let response = cli(home, args);
    assert_eq!(response["committed"], true, "{response}");
    response["height"].as_u64().unwrap()
}

async fn stored<M: Message + Default>(client: &Client, key: &str, height: u64) -> M {
    let response = client
        .audit()
        .get_state_value(audit::GetStateValueRequest {
            key: key.as_bytes().to_vec(),
            height,
            prove: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.found, "{key} at height {height}");
    M::decode(response.value.as_slice()).unwrap()
}

/// BTC-PERP's base initial margin (ppm) in state `height` of node `i`.
async fn initial_margin(net: &Localnet, i: usize, height: u64) -> u64 {
    let market: state::Market = stored(&net.client(i), "market/BTC-PERP", height).await;
    market.initial_margin_ppm
}

async fn assert_initial_margin_everywhere(net: &Localnet, height: u64, expected: u64) {
    for i in 0..net.len() {
        assert_eq!(
            initial_margin(net, i, height).await,
            expected,
            "node{i} at height {height}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_govern_risk_parameters_raising_at_once_lowering_after_the_timelock() {
    let mut net = Localnet::init(4);
    net.start_all();
    let all = [0, 1, 2, 3];
    net.wait_for_all(&all, 2, Duration::from_secs(90)).await;
    let home = |i: usize| net.home(i).to_path_buf();

    // Raising: 5% -> 10%. The proposer's power (10 of 40) counts as yes;
    // with two more votes 30 of 40 is more than 2/3.
    let proposed = committed(
        &home(0),
        &[
            "gov",
            "propose",
            "--change",
            "initial_margin:BTC-PERP:100000",
            "--description",
            "raise BTC margin",
            "--wait",
        ],
    );
    committed(&home(1), &["gov", "vote", "1", "--wait"]);
    let passed = committed(&home(2), &["gov", "vote", "1", "--wait"]);
    assert!(passed > proposed);
    net.wait_for_all(&all, passed + 1, Duration::from_secs(60))
        .await;
    let proposal: state::Proposal = stored(&net.client(3), "proposal/1", passed).await;
    assert_eq!(proposal.status, state::ProposalStatus::Enacted as i32);
    assert!(proposal.raises_safety);
    assert_eq!(proposal.enacted_height, passed, "in the block it passed");
    assert_initial_margin_everywhere(&net, passed - 1, 50_000).await;
    assert_initial_margin_everywhere(&net, passed, 100_000).await;

    // A validator votes twice: refused with 404 (already_voted).
    let refused = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(["gov", "vote", "1", "--wait", "--home"])
        .arg(home(1))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("code 40"), "{stderr}");

    // Lowering: 10% -> 4%. It passes, then waits its timelock.
    committed(
        &home(3),
        &[
            "gov",
            "propose",
            "--change",
            "initial_margin:BTC-PERP:40000",
            "--wait",
        ],
    );
    committed(&home(0), &["gov", "vote", "2", "--wait"]);
    let passed = committed(&home(1), &["gov", "vote", "2", "--wait"]);
    let due = passed + TIMELOCK_BLOCKS;
    let proposal: state::Proposal = stored(&net.client(0), "proposal/2", passed).await;
    assert_eq!(proposal.status, state::ProposalStatus::Queued as i32);
    assert!(!proposal.raises_safety);
    assert_eq!(proposal.earliest_enact_height, due);
    let patience = Duration::from_secs(60 + TIMELOCK_BLOCKS);
    let last = net.wait_for_all(&all, due + 1, patience).await;
    for height in [passed, passed + 1, due - 1] {
        assert_initial_margin_everywhere(&net, height, 100_000).await;
    }
    assert_initial_margin_everywhere(&net, due, 40_000).await;
    let proposal: state::Proposal = stored(&net.client(2), "proposal/2", due).await;
    assert_eq!(proposal.status, state::ProposalStatus::Enacted as i32);
    assert_eq!(proposal.enacted_height, due);

    // Anyone lists the proposals; an auditor proves one against the header.
    let listed = cli(&home(2), &["query", "proposals"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let voters = listed[0]["yes_voters"].as_array().unwrap();
    assert_eq!(voters.len(), 3, "{listed}");
    assert!(voters.iter().all(|v| v.as_str().unwrap().len() == 40));
    let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(["audit", "verify", "--home"])
        .arg(home(3))
        .args(["key", "proposal/2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("PROVEN"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    net.assert_app_hashes_agree(&all, 1..=last - 1).await;
}
