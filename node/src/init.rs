//! `clearnode init`: a node home with keys, a CometBFT home configured to
//! talk to this node, and a genesis rendered from a template.
//!
//! Layout: `<home>/clearnode.toml`, `<home>/keys/`, `<home>/cometbft/`
//! (CometBFT's own home), `<home>/data/` (RocksDB), `<home>/logs/`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use clearnode_types::genesis::Genesis;

use crate::config::{NodeConfig, CONFIG_FILE};
use crate::{cometbft, keys};

/// The devnet template, built in so `init` works outside the repository.
const DEVNET_TEMPLATE: &str = include_str!("../../genesis/devnet.json");

/// Arguments of `init`.
#[derive(Args, Clone)]
pub struct InitArgs {
    /// Node home to create.
    #[arg(long, default_value_os_t = crate::default_home())]
    pub home: PathBuf,
    /// Chain id.
    #[arg(long, default_value = "clearnode-devnet")]
    pub chain_id: String,
    /// Validator name.
    #[arg(long, default_value = "validator-0")]
    pub moniker: String,
    /// Genesis template (default: the built-in genesis/devnet.json).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Ports, block time and the cometbft binary.
    #[command(flatten)]
    pub setup: NodeSetup,
}

/// What `init` and `devnet` share: where the node listens, how fast it
/// makes blocks, and which cometbft it runs.
#[derive(Args, Clone)]
pub struct NodeSetup {
    /// First of six consecutive ports: P2P, RPC, ABCI, gRPC, metrics, dashboard.
    #[arg(long, default_value_t = 26656)]
    pub port_base: u16,
    /// Target block interval (CometBFT's timeout_commit), e.g. 1s or 300ms.
    #[arg(long, default_value = "1s")]
    pub block_time: String,
    /// The cometbft binary (default: PATH, then ~/go/bin).
    #[arg(long, default_value = "")]
    pub cometbft_bin: String,
}

/// Creates the home.
pub fn run(args: InitArgs) -> Result<()> {
    let config = init_home(&args)?;
    println!(
        "initialized {} for chain {}\n  start it: clearnode start --home {}\n  gRPC {}  CometBFT RPC {}",
        args.home.display(),
        config.chain_id,
        args.home.display(),
        config.grpc_addr,
        config.cometbft_rpc
    );
    Ok(())
}

/// Creates the home and returns its configuration.
pub fn init_home(args: &InitArgs) -> Result<NodeConfig> {
    let home = &args.home;
    ensure_uninitialized(home)?;
    let ports = Ports::from_base(args.setup.port_base)?;
    let bin = locate_cometbft(&args.setup)?;
    let cometbft_home = prepare_home(&bin, home)?;
    let template = load_template(args.template.as_deref())?;
    let app_state = render_template(home, &template)?;
    let genesis = genesis_document(&cometbft_home, &args.chain_id, app_state)?;
    write_genesis(&cometbft_home, &genesis)?;
    configure_cometbft(
        &cometbft_home,
        &CometbftSettings {
            moniker: &args.moniker,
            block_time: &args.setup.block_time,
            ports: &ports,
            extra: Vec::new(),
        },
    )?;
    let config = node_config(&args.chain_id, &ports, &args.setup.cometbft_bin);
    config.save(home)?;
    Ok(config)
}

/// Refuses to overwrite a home: its keys and state may be the only copy.
pub(crate) fn ensure_uninitialized(home: &Path) -> Result<()> {
    if home.join(CONFIG_FILE).exists() {
        bail!(
            "{} is already initialized; remove it to start over",
            home.display()
        );
    }
    Ok(())
}

/// Finds the cometbft binary and warns when it is not the pinned version.
pub(crate) fn locate_cometbft(setup: &NodeSetup) -> Result<PathBuf> {
    let bin = cometbft::locate(&setup.cometbft_bin)?;
    cometbft::check_version(&bin)?;
    Ok(bin)
}

/// Creates the home's directories and CometBFT's own home inside it
/// (keys, node key, default config and a genesis to be replaced); returns
/// CometBFT's home.
pub(crate) fn prepare_home(bin: &Path, home: &Path) -> Result<PathBuf> {
    for dir in ["keys", "data", "logs"] {
        std::fs::create_dir_all(home.join(dir))
            .with_context(|| format!("creating {}", home.join(dir).display()))?;
    }
    let cometbft_home = home.join(COMETBFT_DIR);
    cometbft::init_home(bin, &cometbft_home)?;
    Ok(cometbft_home)
}

/// CometBFT's home inside a node home.
pub(crate) const COMETBFT_DIR: &str = "cometbft";

/// The template's text: a file, or the built-in devnet template.
pub(crate) fn load_template(path: Option<&Path>) -> Result<String> {
    match path {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading template {}", path.display())),
        None => Ok(DEVNET_TEMPLATE.to_string()),
    }
}

/// The node's configuration for a home initialized with these ports.
pub(crate) fn node_config(chain_id: &str, ports: &Ports, cometbft_bin: &str) -> NodeConfig {
    NodeConfig {
        chain_id: chain_id.to_string(),
        abci_addr: format!("127.0.0.1:{}", ports.abci),
        grpc_addr: format!("127.0.0.1:{}", ports.grpc),
        metrics_addr: format!("127.0.0.1:{}", ports.metrics),
        dashboard_addr: format!("127.0.0.1:{}", ports.dashboard),
        cometbft_rpc: format!("http://127.0.0.1:{}", ports.rpc),
        cometbft_home: PathBuf::from(COMETBFT_DIR),
        cometbft_bin: cometbft_bin.to_string(),
        db_dir: PathBuf::from("data/clearnode.db"),
        commit_timeout_seconds: 30,
        snapshot_interval: crate::config::default_snapshot_interval(),
        snapshot_keep: crate::config::default_snapshot_keep(),
    }
}

/// The node's ports: six consecutive ones from a base.
pub(crate) struct Ports {
    pub(crate) p2p: u16,
    pub(crate) rpc: u16,
    pub(crate) abci: u16,
    pub(crate) grpc: u16,
    pub(crate) metrics: u16,
    pub(crate) dashboard: u16,
}

impl Ports {
    /// P2P, RPC, ABCI, gRPC, metrics and dashboard at `base` to `base + 5`.
    pub(crate) fn from_base(base: u16) -> Result<Self> {
        let port = |offset: u16| {
            base.checked_add(offset)
                .ok_or_else(|| anyhow::anyhow!("port base {base} leaves no room for 6 ports"))
        };
        Ok(Self {
            p2p: port(0)?,
            rpc: port(1)?,
            abci: port(2)?,
            grpc: port(3)?,
            metrics: port(4)?,
            dashboard: port(5)?,
        })
    }
}

/// Fills `"generate"` keys with new keys stored in the home; validates.
pub(crate) fn render_template(home: &Path, template: &str) -> Result<serde_json::Value> {
    let mut app_state: serde_json::Value =
        serde_json::from_str(template).context("the genesis template is not JSON")?;
    if let Some(venues) = app_state.get_mut("venues").and_then(|v| v.as_array_mut()) {
        for venue in venues {
            let id = venue
                .get("id")
                .and_then(|id| id.as_str())
                .unwrap_or_default()
                .to_string();
            if venue.get("public_key").and_then(|k| k.as_str()) == Some("generate") {
                let key = keys::generate(home, &id)?;
                venue["public_key"] = hex::encode(key.verifying_key().to_bytes()).into();
            }
        }
    }
    if let Some(custodian) = app_state.get_mut("custodian") {
        if custodian.get("public_key").and_then(|k| k.as_str()) == Some("generate") {
            let key = keys::generate(home, "custodian")?;
            custodian["public_key"] = hex::encode(key.verifying_key().to_bytes()).into();
        }
    }
    Genesis::from_json(app_state.to_string().as_bytes())?;
    Ok(app_state)
}

/// The CometBFT genesis `cometbft init` wrote into `cometbft_home`, with
/// our chain id and app state. Its validator (this home's key) and its
/// genesis time are kept.
pub(crate) fn genesis_document(
    cometbft_home: &Path,
    chain_id: &str,
    app_state: serde_json::Value,
) -> Result<serde_json::Value> {
    let path = cometbft_home.join(GENESIS_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut genesis: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    genesis["chain_id"] = chain_id.into();
    genesis["initial_height"] = "1".into();
    // Validators' prices ride on vote extensions from the first block on.
    genesis["consensus_params"]["abci"]["vote_extensions_enable_height"] = "1".into();
    genesis["app_state"] = app_state;
    Ok(genesis)
}

/// CometBFT's genesis inside its home.
pub(crate) const GENESIS_FILE: &str = "config/genesis.json";

/// Writes a genesis document into a CometBFT home.
pub(crate) fn write_genesis(cometbft_home: &Path, genesis: &serde_json::Value) -> Result<()> {
    let path = cometbft_home.join(GENESIS_FILE);
    std::fs::write(&path, serde_json::to_vec_pretty(genesis)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// What a node's CometBFT config.toml is given.
pub(crate) struct CometbftSettings<'a> {
    /// The validator's name.
    pub(crate) moniker: &'a str,
    /// CometBFT's `timeout_commit`.
    pub(crate) block_time: &'a str,
    /// Where it listens and where the app is.
    pub(crate) ports: &'a Ports,
    /// More `(section, key, TOML value)` settings, e.g. peers.
    pub(crate) extra: Vec<(&'static str, &'static str, String)>,
}

/// Edits CometBFT's generated config.toml in place.
pub(crate) fn configure_cometbft(cometbft_home: &Path, settings: &CometbftSettings) -> Result<()> {
    let path = cometbft_home.join("config/config.toml");
    let mut text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let ports = settings.ports;
    let common = [
        (
            "",
            "proxy_app",
            format!("\"tcp://127.0.0.1:{}\"", ports.abci),
        ),
        ("", "moniker", format!("\"{}\"", settings.moniker)),
        ("rpc", "laddr", format!("\"tcp://127.0.0.1:{}\"", ports.rpc)),
        ("p2p", "laddr", format!("\"tcp://127.0.0.1:{}\"", ports.p2p)),
        // Every node of a local chain is on 127.0.0.1.
        ("p2p", "addr_book_strict", "false".to_string()),
        ("p2p", "allow_duplicate_ip", "true".to_string()),
        (
            "consensus",
            "timeout_commit",
            format!("\"{}\"", settings.block_time),
        ),
        ("tx_index", "indexer", "\"kv\"".to_string()),
        ("instrumentation", "prometheus", "false".to_string()),
    ];
    for (section, key, value) in common.iter().chain(settings.extra.iter()) {
        text = set_toml_value(&text, section, key, value)
            .with_context(|| format!("{}: no [{section}] {key}", path.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Replaces `key = ...` inside `[section]` ("" = before any section),
/// keeping every comment of CometBFT's generated file.
pub fn set_toml_value(text: &str, section: &str, key: &str, value: &str) -> Option<String> {
    let mut current = String::new();
    let mut replaced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            current = trimmed.trim_matches(|c| c == '[' || c == ']').to_string();
        }
        let is_key = trimmed
            .split_once('=')
            .is_some_and(|(k, _)| k.trim() == key);
        if !replaced && current == section && is_key {
            lines.push(format!("{key} = {value}"));
            replaced = true;
        } else {
            lines.push(line.to_string());
        }
    }
    replaced.then(|| lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_toml_value_edits_only_the_named_section() {
        let text = "a = 1\n[rpc]\nladdr = \"x\"\n# laddr = comment\n[p2p]\nladdr = \"y\"\n";
        let edited = set_toml_value(text, "p2p", "laddr", "\"z\"").expect("present");
        assert_eq!(
            edited,
            "a = 1\n[rpc]\nladdr = \"x\"\n# laddr = comment\n[p2p]\nladdr = \"z\"\n"
        );
        assert!(set_toml_value(text, "p2p", "missing", "1").is_none());
        assert_eq!(
            set_toml_value(text, "", "a", "2")
                .expect("top")
                .lines()
                .next(),
            Some("a = 2")
        );
    }

    #[test]
    fn the_builtin_template_renders() {
        let home = tempfile::tempdir().expect("tempdir");
        let app_state = render_template(home.path(), DEVNET_TEMPLATE).expect("renders");
        let genesis = Genesis::from_json(app_state.to_string().as_bytes()).expect("valid");
        assert_eq!(genesis.venues.len(), 3);
        assert!(home.path().join("keys/custodian.json").exists());
        assert!(home.path().join("keys/venue-a.json").exists());
    }
}
