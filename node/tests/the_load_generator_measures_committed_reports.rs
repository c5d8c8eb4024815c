//! `clearnode loadgen` against a real single validator: it funds and
//! authorizes its traders, submits batched reports from every venue for a
//! moment while two auditors read proven figures, and writes well-formed
//! figures. Only that it ran is asserted,
//! never how fast (performance is measured by bench/, not by tests).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::TestNode;

#[test]
fn the_load_generator_measures_committed_reports() {
    let mut node = TestNode::init();
    node.start();
    let json = node.home().join("loadgen.json");
    let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(["loadgen", "--accounts", "12", "--entries-per-report", "10"])
        .args(["--duration", "3", "--window", "4", "--quiet"])
        .args(["--audit-readers", "2", "--audit-verify-every", "10"])
        .arg("--home")
        .arg(node.home())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadgen failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nnode:\n{}",
        node.logs()
    );
    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(figures["target"], "clearnode", "{figures}");
    assert_eq!(figures["lanes"], 3, "one lane per venue of the genesis");
    for count in ["submitted_txs", "committed_txs", "blocks"] {
        assert!(
            figures[count].as_u64().unwrap() > 0,
            "{count} is zero: {figures}"
        );
    }
    for rate in ["committed_tx_per_s", "committed_position_updates_per_s"] {
        assert!(figures[rate].as_f64().unwrap() > 0.0, "{rate}: {figures}");
    }
    assert!(figures["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    let reads = &figures["audit_reads"];
    assert_eq!(reads["readers"], 2, "{figures}");
    for count in [
        "answered",
        "proofs_verified",
        "heights_checked_against_headers",
    ] {
        assert!(reads[count].as_u64().unwrap() > 0, "{count}: {figures}");
    }
    for problem in [
        "errors",
        "malformed",
        "proofs_failed",
        "heights_not_matching_headers",
        "inconsistent_heights",
    ] {
        assert_eq!(reads[problem], 0, "{problem}: {figures}");
    }
    node.stop();
}
