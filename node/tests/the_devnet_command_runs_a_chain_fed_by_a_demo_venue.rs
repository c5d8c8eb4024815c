//! The main job from the README, shortened: `clearnode devnet` initializes a
//! home, runs the chain and the demo venue for a few rounds of reports and
//! exits cleanly, having printed the system figures.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

#[test]
fn the_devnet_command_runs_a_chain_fed_by_a_demo_venue() {
    let home = tempfile::Builder::new()
        .prefix("clearnode-devnet-")
        .tempdir()
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args([
            "devnet",
            "--rounds",
            "6",
            "--report-interval-ms",
            "300",
            "--block-time",
            "200ms",
        ])
        .args(["--accounts", "12"])
        .arg("--home")
        .arg(home.path().join("devnet"))
        .arg("--port-base")
        .arg(support::free_port_base().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "devnet failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("clearnode devnet: chain clearnode-devnet"),
        "{stdout}"
    );
    let last_status = stdout
        .lines()
        .rfind(|l| l.starts_with("height"))
        .unwrap_or_default();
    assert!(
        last_status.contains("accounts 12"),
        "the demo accounts are not all funded: {stdout}"
    );
    assert!(
        !last_status.contains("net notional 0 "),
        "no positions were reported: {stdout}"
    );
}
