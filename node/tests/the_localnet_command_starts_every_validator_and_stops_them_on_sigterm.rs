//! `clearnode localnet init` and `start` as a user runs them: four homes
//! that share one genesis byte for byte and the venue and custodian keys,
//! each peering with the other three on its own ports; `start` runs all four
//! into a committing chain and, on SIGTERM, stops every process and exits
//! cleanly. A second `init` into the same directory is refused.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clearnode_grpc::cometbft::CometRpc;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use support::localnet::{free_port_range, POLL_INTERVAL};

const VALIDATORS: u16 = 4;

/// `clearnode localnet start` and the nodes it printed; every process is
/// stopped on drop, even when the test fails.
struct Supervisor {
    child: Child,
    stdout: std::path::PathBuf,
}

impl Supervisor {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The node pids (= process groups) from the table `start` printed.
    fn node_groups(&self) -> Vec<i32> {
        self.output()
            .lines()
            .filter(|line| line.trim_start().starts_with("node"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
            .collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("localnet start printed:\n{}", self.output());
        }
        for group in self.node_groups() {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn localnet_init(dir: &Path, port_base: u16) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(["localnet", "init", "--block-time", "300ms"])
        .arg("--validators")
        .arg(VALIDATORS.to_string())
        .arg("--port-base")
        .arg(port_base.to_string())
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_localnet_command_starts_every_validator_and_stops_them_on_sigterm() {
    let temp = tempfile::Builder::new()
        .prefix("clearnode-localnet-cli-")
        .tempdir()
        .unwrap();
    let dir = temp.path().join("net");
    let port_base = free_port_range(VALIDATORS * 10);
    let init = localnet_init(&dir, port_base);
    assert!(
        init.status.success(),
        "localnet init failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );

    let home = |i: u16| dir.join(format!("node{i}"));
    let genesis = file(&home(0).join("cometbft/config/genesis.json"));
    let document: serde_json::Value = serde_json::from_slice(&genesis).unwrap();
    assert_eq!(document["chain_id"], "clearnode-localnet");
    let validators = document["validators"].as_array().unwrap();
    assert_eq!(validators.len(), usize::from(VALIDATORS));
    assert!(validators
        .iter()
        .all(|v| v["power"] == validators[0]["power"]));
    for i in 1..VALIDATORS {
        assert_eq!(
            file(&home(i).join("cometbft/config/genesis.json")),
            genesis,
            "node{i}'s genesis"
        );
        for key in ["custodian", "venue-a", "venue-b", "venue-c"] {
            let path = format!("keys/{key}.json");
            assert_eq!(
                file(&home(i).join(&path)),
                file(&home(0).join(&path)),
                "node{i}'s {key} key"
            );
        }
        let config = String::from_utf8(file(&home(i).join("cometbft/config/config.toml"))).unwrap();
        let peers = config
            .lines()
            .find_map(|line| line.strip_prefix("persistent_peers = "))
            .unwrap()
            .trim_matches('"');
        let ports: Vec<String> = peers
            .split(',')
            .map(|peer| peer.rsplit(':').next().unwrap().to_string())
            .collect();
        let expected: Vec<String> = (0..VALIDATORS)
            .filter(|&other| other != i)
            .map(|other| (port_base + other * 10).to_string())
            .collect();
        assert_eq!(ports, expected, "node{i}'s peers");
        assert!(config.contains(&format!(
            "laddr = \"tcp://127.0.0.1:{}\"",
            port_base + i * 10 + 1
        )));
    }
    let again = localnet_init(&dir, port_base);
    assert!(
        !again.status.success(),
        "a second init overwrote the localnet"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a localnet"));

    let stdout = temp.path().join("start.out");
    let output = std::fs::File::create(&stdout).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(["localnet", "start", "--dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output.try_clone().unwrap()))
        .stderr(Stdio::from(output))
        .process_group(0)
        .spawn()
        .unwrap();
    let mut supervisor = Supervisor { child, stdout };

    let deadline = Instant::now() + Duration::from_secs(90);
    for i in 0..VALIDATORS {
        let rpc = CometRpc::new(&format!("http://127.0.0.1:{}", port_base + i * 10 + 1));
        loop {
            if rpc.status().await.is_ok_and(|s| s.latest_block_height >= 3) {
                break;
            }
            assert!(Instant::now() < deadline, "node{i} did not reach height 3");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    assert_eq!(
        supervisor.node_groups().len(),
        usize::from(VALIDATORS),
        "{}",
        supervisor.output()
    );

    let pid = Pid::from_raw(i32::try_from(supervisor.child.id()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = supervisor.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "localnet start did not exit after SIGTERM"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    assert!(status.success(), "localnet start exited with {status}");
    assert!(supervisor.output().contains("localnet stopped"));
    for i in 0..VALIDATORS {
        for offset in 0..5 {
            let port = port_base + i * 10 + offset;
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} of node{i} is still in use after the localnet stopped"
            );
        }
    }
}
