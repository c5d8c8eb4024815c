//! The node's own configuration file, `<home>/clearnode.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// File name of the node configuration inside the home.
pub const CONFIG_FILE: &str = "clearnode.toml";

/// Node configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Chain id (also in CometBFT's genesis).
    pub chain_id: String,
    /// Where the ABCI server listens (CometBFT's `proxy_app`).
    pub abci_addr: String,
    /// Where gRPC listens.
    pub grpc_addr: String,
    /// Where the Prometheus metrics endpoint listens.
    pub metrics_addr: String,
    /// Where the risk dashboard (HTTP) listens; empty = no dashboard.
    #[serde(default)]
    pub dashboard_addr: String,
    /// CometBFT's RPC URL.
    pub cometbft_rpc: String,
    /// CometBFT's home, relative to the node home.
    pub cometbft_home: PathBuf,
    /// The `cometbft` binary; empty means search PATH and ~/go/bin.
    #[serde(default)]
    pub cometbft_bin: String,
    /// RocksDB directory, relative to the node home.
    pub db_dir: PathBuf,
    /// Seconds `wait_for_commit` waits.
    pub commit_timeout_seconds: u64,
    /// A state-sync snapshot every this many heights, served to nodes that join by state sync
    /// (0: none). Written under `<home>/data/snapshots`.
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval: u64,
    /// How many of the newest snapshots are kept.
    #[serde(default = "default_snapshot_keep")]
    pub snapshot_keep: usize,
}

/// Directory of the state-sync snapshots, relative to the node home.
pub const SNAPSHOT_DIR: &str = "data/snapshots";

/// Default snapshot interval: a few minutes of blocks, so a joining node replays little.
pub fn default_snapshot_interval() -> u64 {
    100
}

/// Default number of snapshots kept: the newest and one more, in case a peer is still
/// fetching the older one.
pub fn default_snapshot_keep() -> usize {
    2
}

impl NodeConfig {
    /// Reads `<home>/clearnode.toml`.
    pub fn load(home: &Path) -> Result<Self> {
        let path = home.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {}: is {} a clearnode home? create one with `clearnode init --home {}`",
                path.display(),
                home.display(),
                home.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes `<home>/clearnode.toml`.
    pub fn save(&self, home: &Path) -> Result<()> {
        let path = home.join(CONFIG_FILE);
        std::fs::write(&path, toml::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The gRPC endpoint as a URL clients dial.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr.replace("0.0.0.0", "127.0.0.1"))
    }
}
