//! A real single-validator node for end-to-end tests: `clearnode init` and
//! `clearnode start` as child processes (which run a real `cometbft`), in a
//! process group of their own so a test can SIGKILL the whole validator.
//! Logs are printed when a test fails. `Localnet` (in `localnet.rs`) does
//! the same for several validators of one chain, and `load.rs` keeps venue
//! reports flowing into it; `Devnet` (in `devnet.rs`) runs `clearnode
//! devnet` with its demo venue and dashboard.

// Outside consensus code: tests wait on wall-clock deadlines for real processes.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clearnode_grpc::cometbft::CometRpc;
use clearnode_proto::audit::v1 as audit;
use clearnode_proto::audit::v1::audit_service_client::AuditServiceClient;
use clearnode_proto::tx::v1 as tx;
use clearnode_proto::venue::v1 as venue;
use clearnode_proto::venue::v1::account_service_client::AccountServiceClient;
use clearnode_proto::venue::v1::custodian_service_client::CustodianServiceClient;
use clearnode_proto::venue::v1::venue_service_client::VenueServiceClient;
use clearnode_types::tx::sign_tx;
use clearnode_types::Address;
use ed25519_dalek::SigningKey;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tonic::transport::{Channel, Endpoint};

pub mod devnet;
pub mod load;
pub mod localnet;
pub mod partition;

pub const CHAIN_ID: &str = "clearnode-e2e";

/// Six consecutive free ports (P2P, RPC, ABCI, gRPC, metrics, dashboard).
pub fn free_port_base() -> u16 {
    let seed = u16::try_from(std::process::id() % 400).unwrap();
    for attempt in 0..200u16 {
        let base = 21_000 + ((seed + attempt * 7) % 400) * 10;
        if (0..6).all(|offset| TcpListener::bind(("127.0.0.1", base + offset)).is_ok()) {
            return base;
        }
    }
    panic!("no six consecutive free ports");
}

pub struct TestNode {
    home: tempfile::TempDir,
    child: Option<Child>,
    pub grpc_url: String,
    pub rpc_url: String,
    /// `host:port` of the node's dashboard.
    pub dashboard_addr: String,
}

impl TestNode {
    /// `clearnode init` into a fresh home with fast blocks.
    pub fn init() -> Self {
        Self::init_with(|_| {})
    }

    /// Like `init`, with the devnet genesis template edited first.
    pub fn init_with(edit_genesis: impl FnOnce(&mut serde_json::Value)) -> Self {
        let home = tempfile::Builder::new()
            .prefix("clearnode-e2e-")
            .tempdir()
            .unwrap();
        let port_base = free_port_base();
        let mut genesis: serde_json::Value =
            serde_json::from_str(include_str!("../../../genesis/devnet.json")).unwrap();
        edit_genesis(&mut genesis);
        let template = home.path().join("genesis-template.json");
        std::fs::write(&template, genesis.to_string()).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
            .args(["init", "--chain-id", CHAIN_ID, "--block-time", "200ms"])
            .arg("--template")
            .arg(&template)
            .arg("--home")
            .arg(home.path())
            .arg("--port-base")
            .arg(port_base.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "clearnode init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self {
            home,
            child: None,
            grpc_url: format!("http://127.0.0.1:{}", port_base + 3),
            rpc_url: format!("http://127.0.0.1:{}", port_base + 1),
            dashboard_addr: format!("127.0.0.1:{}", port_base + 5),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Makes the validator quote BTC-PERP along `path` ([height, per-mille
    /// of 64,000] points) through its simulated feed, and every other devnet
    /// target flat at its genesis price (so none goes stale). Call before
    /// `start`.
    pub fn quote_btc_along(&self, path: serde_json::Value) {
        let flat = serde_json::json!([[0, 1000]]);
        let scenario = serde_json::json!({
            "start": {
                "market:BTC-PERP": "64000", "market:ETH-PERP": "3200", "market:SOL-PERP": "150",
                "asset:USDC": "1", "asset:ETH": "3200", "asset:BTC": "64000"
            },
            "paths": {
                "market:BTC-PERP": path, "market:ETH-PERP": flat, "market:SOL-PERP": flat,
                "asset:USDC": flat, "asset:ETH": flat, "asset:BTC": flat
            },
            "step_ppm": 0, "noise_ppm": 0, "seed": 1
        });
        let scenario_path = self.home().join("feed-scenario.json");
        std::fs::write(&scenario_path, scenario.to_string()).unwrap();
        let oracle = format!(
            "feed = \"simulated\"\nscenario = \"{}\"\n",
            scenario_path.display()
        );
        std::fs::write(self.home().join("oracle.toml"), oracle).unwrap();
    }

    /// Every price stays at its genesis value, quoted fresh every block
    /// (a silent feed would leave the prices stale, which the breakers
    /// refuse new exposure on).
    pub fn quote_genesis_prices(&self) {
        self.quote_btc_along(serde_json::json!([[0, 1000]]));
    }

    /// `clearnode start` in its own process group.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new(env!("CARGO_BIN_EXE_clearnode"));
        command.arg("start").arg("--home").arg(self.home());
        self.child = Some(spawn_in_group(
            &mut command,
            &self.home().join("logs/node.log"),
        ));
    }

    /// SIGKILL the whole validator (clearnode and its cometbft), as a power cut would.
    pub fn kill9(&mut self) {
        kill_group(self.child.take().expect("running"));
        // cometbft is in the same group; give the kernel a moment to release its ports.
        wait_until(
            "the validator's ports are released",
            Duration::from_secs(20),
            || TcpListener::bind(self.rpc_url.trim_start_matches("http://")).is_ok(),
        );
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    pub fn key(&self, name: &str) -> SigningKey {
        let bytes = std::fs::read(self.home().join(format!("keys/{name}.json"))).unwrap();
        let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let secret = hex::decode(file["secret_key"].as_str().unwrap()).unwrap();
        SigningKey::from_bytes(&secret.try_into().unwrap())
    }

    pub fn rpc(&self) -> CometRpc {
        CometRpc::new(&self.rpc_url)
    }

    /// Connects once gRPC answers and a block is committed.
    pub async fn client(&self) -> Client {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(channel) = Channel::from_shared(self.grpc_url.clone())
                .unwrap()
                .connect()
                .await
            {
                let client = Client { channel };
                if client.system(0).await.is_ok() {
                    return client;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node did not come up; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn logs(&self) -> String {
        log_tails(self.home(), 60)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if let Some(child) = self.child.take() {
            kill_group(child);
        }
    }
}

/// Spawns `command` in a process group of its own, appending its output to `log`.
pub fn spawn_in_group(command: &mut Command, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .unwrap()
}

/// SIGKILLs a validator's process group (clearnode and its cometbft) and reaps it.
pub fn kill_group(mut child: Child) {
    let group = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// The last `lines` lines of a home's node and cometbft logs.
pub fn log_tails(home: &Path, lines: usize) -> String {
    let mut text = String::new();
    for name in ["node.log", "cometbft.log"] {
        let path = home.join("logs").join(name);
        let content = std::fs::read_to_string(&path).unwrap_or_default();
        let all: Vec<&str> = content.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        text.push_str(&format!(
            "==== {} (last {lines} lines)\n{tail}\n",
            path.display()
        ));
    }
    text
}

pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `clearnode ARGS --home HOME`, asserts it succeeded, and parses its
/// JSON output.
pub fn cli_json(home: &Path, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(args)
        .arg("--home")
        .arg(home)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "clearnode {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

pub fn address(key: &SigningKey) -> Address {
    Address::of_public_key(&key.verifying_key().to_bytes())
}

/// A gRPC client of the node.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
}

pub fn signed(key: &SigningKey, sequence: u64, action: tx::tx_body::Action) -> Vec<u8> {
    let body = tx::TxBody {
        chain_id: CHAIN_ID.into(),
        sequence,
        action: Some(action),
    };
    sign_tx(key, &body)
}

/// How long a gRPC call may take: longer than the node's own wait for a
/// commit (30s), so that wait ends first and says why.
const CALL_TIMEOUT: Duration = Duration::from_secs(45);

impl Client {
    /// A client that connects on first use and reconnects after the node
    /// restarts; calls fail fast while the node is down.
    pub fn lazy(url: &str) -> Self {
        let channel = Endpoint::from_shared(url.to_string())
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .timeout(CALL_TIMEOUT)
            .connect_lazy();
        Self { channel }
    }

    /// The latest committed height the node's AuditService reads.
    pub async fn latest_height(&self) -> Result<u64, tonic::Status> {
        let response = self.system_risk(0, false).await?;
        Ok(response.context.map_or(0, |c| c.height))
    }

    /// The app hash the node's AuditService reports for state `height`.
    pub async fn app_hash_at(&self, height: u64) -> Result<Vec<u8>, tonic::Status> {
        let response = self.system_risk(height, false).await?;
        let context = response
            .context
            .ok_or_else(|| tonic::Status::internal("GetSystemRisk answered without a context"))?;
        assert_eq!(context.height, height, "asked for state {height}");
        Ok(context.app_hash)
    }

    async fn system_risk(
        &self,
        height: u64,
        prove: bool,
    ) -> Result<audit::GetSystemRiskResponse, tonic::Status> {
        self.audit()
            .get_system_risk(audit::GetSystemRiskRequest { height, prove })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The insurance fund at state `height`.
    pub async fn fund(&self, height: u64) -> clearnode_proto::state::v1::InsuranceFund {
        self.audit()
            .get_insurance_fund(audit::GetInsuranceFundRequest {
                height,
                prove: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .fund
            .unwrap()
    }

    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    pub async fn system(&self, height: u64) -> Result<audit::GetSystemRiskResponse, tonic::Status> {
        self.system_risk(height, true).await
    }

    pub async fn account(
        &self,
        account: Address,
    ) -> Result<audit::GetAccountRiskResponse, tonic::Status> {
        self.audit()
            .get_account_risk(audit::GetAccountRiskRequest {
                account: account.as_bytes().to_vec(),
                height: 0,
                prove: true,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn sequence(&self, key: &SigningKey) -> u64 {
        self.audit()
            .get_sequence(audit::GetSequenceRequest {
                public_key: key.verifying_key().to_bytes().to_vec(),
            })
            .await
            .unwrap()
            .into_inner()
            .next
    }

    /// Submits raw bytes through the service that takes this kind.
    pub async fn submit(
        &self,
        tx_bytes: Vec<u8>,
        service: &str,
        wait_for_commit: bool,
    ) -> Result<venue::SubmitTxResponse, tonic::Status> {
        let request = venue::SubmitTxRequest {
            tx: tx_bytes,
            wait_for_commit,
        };
        let channel = self.channel.clone();
        let response = match service {
            "venue" => {
                VenueServiceClient::new(channel)
                    .submit_report(request)
                    .await
            }
            "custodian" => {
                CustodianServiceClient::new(channel)
                    .submit_deposit(request)
                    .await
            }
            _ => {
                AccountServiceClient::new(channel)
                    .submit_account_tx(request)
                    .await
            }
        };
        response.map(tonic::Response::into_inner)
    }

    /// Submits and waits for the block; asserts it committed.
    pub async fn commit(&self, tx_bytes: Vec<u8>, service: &str) -> venue::SubmitTxResponse {
        let response = self.submit(tx_bytes, service, true).await.unwrap();
        assert!(
            response.committed,
            "not committed: code {} {}",
            response.code, response.log
        );
        response
    }
}

pub fn deposit(account: Address, asset: &str, amount: &str) -> tx::tx_body::Action {
    tx::tx_body::Action::DepositCollateral(tx::DepositCollateral {
        account: account.as_bytes().to_vec(),
        asset: asset.into(),
        amount: amount.into(),
        reference: "wire-1".into(),
    })
}

pub fn authorize(venue: &str) -> tx::tx_body::Action {
    tx::tx_body::Action::AuthorizeVenue(tx::AuthorizeVenue {
        venue_id: venue.into(),
        authorized: true,
    })
}

pub fn withdraw(asset: &str, amount: &str) -> tx::tx_body::Action {
    tx::tx_body::Action::WithdrawCollateral(tx::WithdrawCollateral {
        asset: asset.into(),
        amount: amount.into(),
    })
}

pub fn report(venue: &str, entries: &[(Address, &str, &str, &str)]) -> tx::tx_body::Action {
    tx::tx_body::Action::PositionReport(tx::PositionReport {
        venue_id: venue.into(),
        acknowledged_height: 0,
        entries: entries
            .iter()
            .map(|(account, market, size, price)| tx::PositionEntry {
                account: account.as_bytes().to_vec(),
                market: (*market).into(),
                size: (*size).into(),
                entry_price: (*price).into(),
            })
            .collect(),
    })
}

pub fn home_path(node: &TestNode) -> PathBuf {
    node.home().to_path_buf()
}
