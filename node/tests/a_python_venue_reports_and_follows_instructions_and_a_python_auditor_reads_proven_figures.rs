//! The Python client (clients/python) against a real node: the example
//! venue onboards its traders, checks margin passports, reports positions
//! in signed batches and follows its instruction stream while the
//! validator's feed drives BTC down; restarted, it resumes exactly after the
//! last instruction it handled. The example auditor's figures are the audit
//! API's at the height it names, and match the signed header's app hash.

// Outside consensus code: the test drives real processes with wall-clock deadlines.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clearnode_proto::venue::v1::venue_service_client::VenueServiceClient;
use clearnode_proto::venue::v1::StreamInstructionsRequest;
use prost::Message;
use support::*;

const TRADERS: usize = 4;
const ROUNDS: usize = 3;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python")
}

/// Debian's python3 (with python3-grpcio, -grpc-tools, -protobuf, -nacl), or `$CLEARNODE_PYTHON`.
fn python() -> PathBuf {
    let python = std::env::var_os("CLEARNODE_PYTHON")
        .map_or_else(|| PathBuf::from("/usr/bin/python3"), PathBuf::from);
    let check = Command::new(&python)
        .args(["-c", "import grpc, grpc_tools, nacl, google.protobuf"])
        .output();
    assert!(
        check.is_ok_and(|output| output.status.success()),
        "{} lacks grpc, grpc_tools, nacl or protobuf: run `bash scripts/setup.sh`",
        python.display()
    );
    python
}

/// Runs a Python script of the client; returns its stdout (asserting success).
fn run_python(generated: &Path, args: &[&str]) -> String {
    let output = Command::new(python())
        .args(args)
        .current_dir(client_dir())
        .env("CLEARNODE_PY_GENERATED", generated)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python3 {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The JSON after `what: ` on each line that starts so.
fn lines_of(stdout: &str, what: &str) -> Vec<serde_json::Value> {
    let prefix = format!("{what}: ");
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect()
}

fn positions(instructions: &[serde_json::Value]) -> Vec<(u64, u64)> {
    instructions
        .iter()
        .map(|i| (i["height"].as_u64().unwrap(), i["index"].as_u64().unwrap()))
        .collect()
}

/// The venue's instructions as the Rust client streams them, up to `last`.
async fn streamed_until(url: &str, last: (u64, u64)) -> Vec<(u64, u64)> {
    let mut client = VenueServiceClient::connect(url.to_string()).await.unwrap();
    let mut stream = client
        .stream_instructions(StreamInstructionsRequest {
            venue_id: "venue-a".into(),
            from_height: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.last() != Some(&last) {
        assert!(Instant::now() < deadline, "streamed so far: {seen:?}");
        let instruction = stream.message().await.unwrap().unwrap();
        seen.push((instruction.height, u64::from(instruction.index)));
    }
    seen
}

/// `AuditService.ListInstructions` for venue-a up to `height`, in small pages.
async fn history_until(client: &Client, height: u64) -> Vec<(u64, u64)> {
    let mut request = clearnode_proto::audit::v1::ListInstructionsRequest {
        venue_id: "venue-a".into(),
        to_height: height,
        limit: 7,
        ..Default::default()
    };
    let mut listed = Vec::new();
    loop {
        let page = client
            .audit()
            .list_instructions(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(page.instructions.len() <= 7);
        listed.extend(
            page.instructions
                .iter()
                .map(|i| (i.height, u64::from(i.index))),
        );
        if page.next_page_token.is_empty() {
            return listed;
        }
        request.page_token = page.next_page_token;
    }
}

fn start_node_with_a_falling_btc() -> TestNode {
    let mut node = TestNode::init();
    // BTC holds while the venue onboards and reports, then falls 12%.
    node.quote_btc_along(serde_json::json!([[0, 1000], [60, 1000], [80, 880]]));
    node.start();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_venue_reports_and_follows_instructions_and_a_python_auditor_reads_proven_figures()
{
    let node = start_node_with_a_falling_btc();
    let generated = node.home().join("python-generated");
    run_python(&generated, &["-m", "unittest", "discover", "-s", "tests"]);
    let client = node.client().await;
    let grpc = node.grpc_url.clone();
    let keys = node.home().join("keys");
    let state = node.home().join("venue-state.json");
    let venue = |rounds: usize, custodian: bool, follow: &str| {
        let (rounds, traders) = (rounds.to_string(), TRADERS.to_string());
        let mut args: Vec<String> = ["examples/venue.py", "--grpc", &grpc, "--chain-id", CHAIN_ID]
            .into_iter()
            .map(String::from)
            .collect();
        args.extend(["--venue-id".into(), "venue-a".into(), "--venue-key".into()]);
        args.push(keys.join("venue-a.json").display().to_string());
        if custodian {
            args.push("--custodian-key".into());
            args.push(keys.join("custodian.json").display().to_string());
        }
        args.extend(["--traders".into(), traders, "--rounds".into(), rounds]);
        args.extend(["--state-file".into(), state.display().to_string()]);
        args.extend(follow.split_whitespace().map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python(&generated, &args)
    };

    // The venue's first run: onboard, three rounds of passport-checked
    // reports, then follow until one of its traders is being liquidated.
    let first = venue(
        ROUNDS,
        true,
        "--follow-seconds 120 --until-kind liquidating",
    );
    let summary = &lines_of(&first, "summary")[0];
    assert_eq!(summary["reports_committed"], ROUNDS, "{first}");
    assert_eq!(lines_of(&first, "passport").len(), ROUNDS * TRADERS);
    let first_instructions = lines_of(&first, "instruction");
    let kinds: Vec<&str> = first_instructions
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"liquidating"), "{first}");
    let traders: Vec<&str> = summary["traders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(first_instructions
        .iter()
        .all(|i| traders.contains(&i["account"].as_str().unwrap())));

    // Restarted, it resumes after the last instruction it handled: nothing
    // twice, and with the first run exactly what the node streams.
    let second = venue(0, false, "--follow-seconds 8");
    let second_instructions = lines_of(&second, "instruction");
    assert!(!second_instructions.is_empty(), "{second}");
    let mut handled = positions(&first_instructions);
    handled.extend(positions(&second_instructions));
    let last = *handled.last().unwrap();
    assert_eq!(streamed_until(&node.grpc_url, last).await, handled);
    // It acknowledged what it acted on, so it is not delinquent.
    let acknowledged = lines_of(&second, "acknowledged");
    assert!(acknowledged.iter().all(|a| a["code"] == 0), "{second}");
    let venue_state = client
        .audit()
        .get_state_value(clearnode_proto::audit::v1::GetStateValueRequest {
            key: b"venue/venue-a".to_vec(),
            height: 0,
            prove: false,
        })
        .await
        .unwrap()
        .into_inner();
    let venue_state =
        clearnode_proto::state::v1::Venue::decode(venue_state.value.as_slice()).unwrap();
    assert!(!venue_state.delinquent, "{venue_state:?}");
    assert!(
        venue_state.acknowledged_height >= last.0,
        "{venue_state:?}\n{second}"
    );

    // The audit history lists the same, page by page.
    let mut history = history_until(&client, last.0).await;
    history.retain(|position| *position <= last);
    assert_eq!(history, handled);

    // The dashboard counts the instructions of a block and names the
    // command proving one of them, which `clearnode audit verify` proves.
    let (height, _) = handled[0];
    let path = format!("/api/snapshot?height={height}");
    let (status, body) = support::devnet::http_get(&node.dashboard_addr, &path).unwrap();
    assert_eq!(status, 200, "{body}");
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    let at_height = handled.iter().filter(|(h, _)| *h == height).count();
    let counted: u64 = snapshot["instructions"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, u64::try_from(at_height).unwrap(), "{body}");
    let command = snapshot["verify"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .find(|c| c.contains(" key instr/"))
        .unwrap_or_else(|| panic!("no instruction to prove: {body}"));
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(&args)
        .output()
        .unwrap();
    let proven = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{command}: {proven}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let kind = first_instructions[0]["kind"].as_str().unwrap();
    assert!(
        proven.contains(&format!("\"kind\": \"{kind}\"")),
        "{proven}"
    );

    // The auditor's figures are the audit API's at the height it names.
    let rpc = node.rpc_url.clone();
    let auditor = run_python(
        &generated,
        &[
            "examples/auditor.py",
            "--grpc",
            &grpc,
            "--rpc",
            &rpc,
            "--history-blocks",
            "400",
        ],
    );
    let line = auditor
        .lines()
        .find_map(|l| l.strip_prefix("JSON: "))
        .unwrap();
    let shown: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(shown["header_app_hash_matches"], true, "{auditor}");
    let height = shown["height"].as_u64().unwrap();
    let system = client.system(height).await.unwrap();
    let context = system.context.unwrap();
    assert_eq!(shown["app_hash"], hex::encode_upper(&context.app_hash));
    let aggregate = system.aggregate.unwrap();
    assert_eq!(
        shown["system"]["aggregate_leverage"],
        aggregate.aggregate_leverage
    );
    assert_eq!(shown["system"]["net_notional"], aggregate.net_notional);
    assert_eq!(shown["system"]["accounts_total"], TRADERS.to_string());
    // The fall liquidated someone within the blocks the auditor looked back on.
    assert!(
        shown["instructions"]["by_kind"]["liquidating"].as_u64() >= Some(1),
        "{auditor}"
    );
    let fund = client.fund(height).await;
    assert_eq!(shown["fund"]["balance"], fund.balance);
    assert_eq!(shown["fund"]["payouts"], fund.payouts);
    assert!(shown["proof_bytes"]["system"].as_u64().unwrap() > 0);
    // Its count of recent instructions is the audit history's.
    let from = shown["instructions"]["from_height"].as_u64().unwrap();
    let mut by_kind = serde_json::Map::new();
    let history = client
        .audit()
        .list_instructions(clearnode_proto::audit::v1::ListInstructionsRequest {
            from_height: from,
            to_height: height,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(history.next_page_token.is_empty(), "more than one page");
    for instruction in history.instructions {
        let count = by_kind.entry(instruction.kind).or_insert(0.into());
        *count = (count.as_u64().unwrap() + 1).into();
    }
    assert_eq!(
        shown["instructions"]["by_kind"],
        serde_json::Value::Object(by_kind)
    );
    assert!(auditor.contains(&format!("clearnode audit verify --height {height} system")));
}
