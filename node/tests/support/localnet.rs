//! A real multi-validator localnet for fault tests: `clearnode localnet
//! init` into a temporary directory, then every validator as a child
//! `clearnode start` (which supervises its own `cometbft`) in a process group
//! of its own, so a test can SIGKILL one validator whole, as a power cut
//! would. Everything runs on loopback.
//!
//! On failure the directory is kept and the tail of every node's logs is
//! printed; on every exit, failing or not, every process is stopped.

use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clearnode_grpc::cometbft::CometRpc;
use ed25519_dalek::SigningKey;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use super::{kill_group, log_tails, Client, CHAIN_ID};

/// Block interval of test localnets: fast, but slow enough that four
/// validators and their CometBFTs keep up on two cores.
pub const BLOCK_TIME: &str = "300ms";
/// Ports per node, as `clearnode localnet init` lays them out.
const PORTS_PER_NODE: u16 = 10;
/// Where test localnets look for free ports: below Linux's ephemeral range
/// (32768 and up), so an outgoing connection never takes a node's port
/// while it is down, and apart from `TestNode`'s 21000-25000.
const PORT_SEARCH_FIRST: u16 = 27_000;
const PORT_SEARCH_SLOTS: u16 = 100;
const PORT_SEARCH_STRIDE: u16 = 50;
/// How long a validator gets to stop after SIGTERM before its group is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long an audit or RPC call is retried before the test fails.
const CALL_PATIENCE: Duration = Duration::from_secs(20);
/// Pause between polls of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// One validator: its home and, while running, its `clearnode start`.
struct Node {
    home: PathBuf,
    child: Option<Child>,
    port_base: u16,
}

impl Node {
    fn port(&self, offset: u16) -> u16 {
        self.port_base + offset
    }
}

/// A localnet of validators on loopback.
pub struct Localnet {
    dir: Option<tempfile::TempDir>,
    nodes: Vec<Node>,
    targets: Targets,
}

/// What a background task needs to talk to the nodes: a gRPC client and a
/// CometBFT RPC per node, and which nodes are meant to be running.
#[derive(Clone)]
pub struct Targets {
    clients: Vec<Client>,
    rpcs: Vec<CometRpc>,
    up: Arc<Vec<AtomicBool>>,
}

impl Targets {
    /// The nodes meant to be running now.
    pub fn up_nodes(&self) -> Vec<usize> {
        (0..self.up.len())
            .filter(|&i| self.up[i].load(Ordering::SeqCst))
            .collect()
    }

    /// Node `i`'s gRPC client.
    pub fn client(&self, i: usize) -> &Client {
        &self.clients[i]
    }

    /// Node `i`'s CometBFT RPC.
    pub fn rpc(&self, i: usize) -> &CometRpc {
        &self.rpcs[i]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.clients.len()
    }
}

/// A run of `count` consecutive free ports on 127.0.0.1.
pub fn free_port_range(count: u16) -> u16 {
    let seed = u16::try_from(std::process::id() % u32::from(PORT_SEARCH_SLOTS)).unwrap();
    for attempt in 0..PORT_SEARCH_SLOTS {
        let slot = (seed + attempt * 7) % PORT_SEARCH_SLOTS;
        let base = PORT_SEARCH_FIRST + slot * PORT_SEARCH_STRIDE;
        if (0..count).all(|offset| TcpListener::bind(("127.0.0.1", base + offset)).is_ok()) {
            return base;
        }
    }
    panic!("no {count} consecutive free ports from {PORT_SEARCH_FIRST}");
}

impl Localnet {
    /// `clearnode localnet init` for `validators` nodes with fast blocks.
    pub fn init(validators: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("clearnode-localnet-")
            .tempdir()
            .unwrap();
        let port_base = free_port_range(validators * PORTS_PER_NODE);
        let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
            .args(["localnet", "init", "--chain-id", CHAIN_ID])
            .args(["--block-time", BLOCK_TIME])
            .arg("--validators")
            .arg(validators.to_string())
            .arg("--port-base")
            .arg(port_base.to_string())
            .arg("--dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "clearnode localnet init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let nodes: Vec<Node> = (0..validators)
            .map(|i| Node {
                home: dir.path().join(format!("node{i}")),
                child: None,
                port_base: port_base + i * PORTS_PER_NODE,
            })
            .collect();
        let targets = Targets {
            clients: nodes
                .iter()
                .map(|n| Client::lazy(&format!("http://127.0.0.1:{}", n.port(3))))
                .collect(),
            rpcs: nodes
                .iter()
                .map(|n| CometRpc::new(&format!("http://127.0.0.1:{}", n.port(1))))
                .collect(),
            up: Arc::new(nodes.iter().map(|_| AtomicBool::new(false)).collect()),
        };
        Self {
            dir: Some(dir),
            nodes,
            targets,
        }
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The localnet directory.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// Node `i`'s home.
    pub fn home(&self, i: usize) -> &Path {
        &self.nodes[i].home
    }

    /// Node `i`'s CometBFT P2P port.
    pub fn p2p_port(&self, i: usize) -> u16 {
        self.nodes[i].port(0)
    }

    /// Node `i`'s CometBFT node id: the first 20 bytes of the SHA-256 of
    /// its P2P public key, in hex.
    pub fn node_id(&self, i: usize) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let bytes = std::fs::read(self.home(i).join("cometbft/config/node_key.json")).unwrap();
        let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(file["priv_key"]["value"].as_str().unwrap())
            .unwrap();
        // An ed25519 private key as CometBFT stores it: seed, then public key.
        let public = &key[32..];
        hex::encode(&sha2::Sha256::digest(public)[..20])
    }

    /// Whether the load may send reports to node `i` (a running node the
    /// test has cut off should not hold up the load).
    pub fn set_load_target(&self, i: usize, serving: bool) {
        self.targets.up[i].store(serving, Ordering::SeqCst);
    }

    /// Sets `key = value` (`value` as TOML source) in `[section]` ("" for the top level) of
    /// the file at `relative_path` in node `i`'s home; the key must already be there.
    pub fn edit_config(
        &self,
        i: usize,
        relative_path: &str,
        section: &str,
        key: &str,
        value: &str,
    ) {
        let path = self.home(i).join(relative_path);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut current = String::new();
        let mut edited = 0;
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    current = name.to_owned();
                }
                if current == section && line.starts_with(&format!("{key} = ")) {
                    edited += 1;
                    format!("{key} = {value}")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        assert_eq!(edited, 1, "{} has no {key} in [{section}]", path.display());
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }

    /// The `result` of node `i`'s CometBFT RPC `GET /<path>`.
    pub async fn rpc_get(&self, i: usize, path: &str) -> serde_json::Value {
        let url = format!("http://127.0.0.1:{}/{path}", self.nodes[i].port(1));
        let body: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        body["result"].clone()
    }

    /// Node `i`'s Prometheus metrics, as text.
    pub async fn metrics(&self, i: usize) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.nodes[i].port(4));
        reqwest::get(&url).await.unwrap().text().await.unwrap()
    }

    /// Node `i`'s CometBFT RPC address, as `[statesync] rpc_servers` lists it.
    pub fn rpc_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port(1))
    }

    /// Clients and RPCs for background tasks.
    pub fn targets(&self) -> Targets {
        self.targets.clone()
    }

    /// Node `i`'s gRPC client (it connects on first use and reconnects after restarts).
    pub fn client(&self, i: usize) -> Client {
        self.targets.clients[i].clone()
    }

    /// Node `i`'s CometBFT RPC.
    pub fn rpc(&self, i: usize) -> CometRpc {
        self.targets.rpcs[i].clone()
    }

    /// A key from node0's keys/ (the venue and custodian keys are in every home).
    pub fn key(&self, name: &str) -> SigningKey {
        let bytes = std::fs::read(self.home(0).join(format!("keys/{name}.json"))).unwrap();
        let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let secret = hex::decode(file["secret_key"].as_str().unwrap()).unwrap();
        SigningKey::from_bytes(&secret.try_into().unwrap())
    }

    /// Whether node `i` is meant to be running.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// `clearnode start --home <node i>` in its own process group, logging
    /// to the home's logs/node.log; the load may send to it from now on.
    pub fn start(&mut self, i: usize) {
        self.start_without_load(i);
        self.targets.up[i].store(true, Ordering::SeqCst);
    }

    /// Starts node `i` like `start`, but the load leaves it alone until
    /// `set_load_target(i, true)` (a node still syncing refuses what it
    /// cannot check yet).
    pub fn start_without_load(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node{i} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.home.join("logs/node.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_clearnode"))
            .arg("start")
            .arg("--home")
            .arg(&node.home)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) {
        for i in 0..self.len() {
            if !self.is_running(i) {
                self.start(i);
            }
        }
    }

    /// SIGKILL node `i`'s process group (clearnode and its cometbft) and
    /// wait until its ports are free again.
    pub async fn kill9(&mut self, i: usize) {
        self.targets.up[i].store(false, Ordering::SeqCst);
        kill_group(self.nodes[i].child.take().expect("node is running"));
        self.wait_for_ports_released(i).await;
    }

    /// SIGTERM node `i` (it stops its cometbft) and wait for it to exit;
    /// SIGKILL its group if it does not within the grace period.
    pub async fn stop(&mut self, i: usize) {
        self.targets.up[i].store(false, Ordering::SeqCst);
        let Some(mut child) = self.nodes[i].child.take() else {
            return;
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "node{i} exited with {status} on SIGTERM");
                break;
            }
            if Instant::now() >= deadline {
                let _ = killpg(pid, Signal::SIGKILL);
                let _ = child.wait();
                panic!("node{i} did not stop within {STOP_GRACE:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_for_ports_released(i).await;
    }

    /// A killed node's cometbft may outlive clearnode by a moment (it is a
    /// grandchild); the node is gone when all its ports can be bound again.
    async fn wait_for_ports_released(&self, i: usize) {
        let node = &self.nodes[i];
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(0..5).all(|offset| TcpListener::bind(("127.0.0.1", node.port(offset))).is_ok()) {
            assert!(
                Instant::now() < deadline,
                "node{i}'s ports are still in use 20s after it stopped"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Node `i`'s latest block height from its CometBFT, if it answers.
    pub async fn height(&self, i: usize) -> Option<u64> {
        self.targets.rpcs[i]
            .status()
            .await
            .ok()
            .map(|s| s.latest_block_height)
    }

    /// The highest height among the given nodes that answer.
    pub async fn max_height(&self, nodes: &[usize]) -> u64 {
        let mut max = 0;
        for &i in nodes {
            max = max.max(self.height(i).await.unwrap_or(0));
        }
        max
    }

    /// Waits until node `i` has committed `height` and its gRPC reads it;
    /// returns the node's height then.
    pub async fn wait_for_height(&self, i: usize, height: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(latest) = self.client(i).latest_height().await {
                if latest >= height {
                    return latest;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node{i} did not reach height {height} within {timeout:?} (it is at {:?})",
                self.height(i).await
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until every listed node has committed `height`; returns the
    /// lowest height among them then.
    pub async fn wait_for_all(&self, nodes: &[usize], height: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut lowest = u64::MAX;
        for &i in nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            lowest = lowest.min(self.wait_for_height(i, height, left).await);
        }
        lowest
    }

    /// The CometBFT e2e check: for every height `h` in `heights`, each
    /// listed node's AuditService reports for state `h` the app hash that
    /// block `h+1`'s header carries on every listed node. The heights must be
    /// committed (with their next block) on every listed node.
    pub async fn assert_app_hashes_agree(&self, nodes: &[usize], heights: RangeInclusive<u64>) {
        for height in heights {
            let mut signed: Option<(usize, String)> = None;
            for &i in nodes {
                let header = self.header_app_hash(i, height + 1).await;
                match &signed {
                    None => signed = Some((i, header)),
                    Some((first, expected)) => assert_eq!(
                        &header,
                        expected,
                        "the header of block {} differs: node{i} has app hash {header}, node{first} has {expected}",
                        height + 1
                    ),
                }
            }
            let Some((_, expected)) = signed else {
                return;
            };
            for &i in nodes {
                let reported = self.audit_app_hash(i, height).await;
                assert_eq!(
                    reported,
                    expected,
                    "node{i}'s AuditService reports app hash {reported} for state {height}, \
                     but block {} carries {expected}",
                    height + 1
                );
            }
        }
    }

    async fn header_app_hash(&self, i: usize, height: u64) -> String {
        let deadline = Instant::now() + CALL_PATIENCE;
        loop {
            match self.targets.rpcs[i].header_app_hash(height).await {
                Ok(hash) => return hash,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "node{i}'s CometBFT gave no header for block {height}: {e}"
                ),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn audit_app_hash(&self, i: usize, height: u64) -> String {
        let deadline = Instant::now() + CALL_PATIENCE;
        loop {
            match self.targets.clients[i].app_hash_at(height).await {
                Ok(hash) => return hex::encode_upper(hash),
                Err(status) => assert!(
                    Instant::now() < deadline,
                    "node{i}'s AuditService gave no app hash for state {height}: {status}"
                ),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The last lines of every node's logs.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| log_tails(&node.home, LOG_TAIL_LINES))
            .collect()
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.take() {
                kill_group(child);
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
            if let Some(dir) = self.dir.take() {
                eprintln!("localnet kept for inspection in {}", dir.keep().display());
            }
        }
    }
}
