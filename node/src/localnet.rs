//! `clearnode localnet`: several validators of one chain as plain processes
//! on this machine, for people trying the chain and for the fault tests.
//!
//! `init` creates one ordinary node home per validator (the same layout as
//! `clearnode init`) sharing one CometBFT genesis, byte for byte: the same
//! genesis time and chain id, every validator with equal power, and an app
//! state rendered once from the template, so the venue and custodian keys
//! are generated once and copied into every home. Each CometBFT lists the
//! others as persistent peers on 127.0.0.1; node `i` listens on
//! `port_base + 10*i + {0 P2P, 1 RPC, 2 ABCI, 3 gRPC, 4 metrics, 5 dashboard}`.
//!
//! `start` runs `clearnode start --home <dir>/node<i>` for every home, each
//! in a process group of its own (so a terminal's Ctrl-C reaches only this
//! supervisor, which stops the nodes in order, and a test can SIGKILL one
//! validator with its CometBFT), and stops them all on SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use clearnode_grpc::cometbft::CometRpc;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::config::{NodeConfig, CONFIG_FILE};
use crate::init::{self, CometbftSettings, NodeSetup, Ports};
use crate::start;

/// Most validators a localnet may have: each takes ten ports and two
/// processes, and more than this is no longer "local".
const VALIDATORS_MAX: u16 = 32;
/// Ports reserved per node: five used, five spare so the layout is easy to read.
const PORTS_PER_NODE: u16 = 10;
/// Voting power of every validator; equal powers make "more than 2/3" mean
/// "more than 2/3 of the nodes".
const VALIDATOR_POWER: &str = "10";
/// How long CometBFT waits for a proposal before voting nil. CometBFT's
/// default is 3s; on one machine a proposal arrives in milliseconds, so a
/// dead proposer should cost one second per height, not three.
const TIMEOUT_PROPOSE: &str = "1s";
/// How long a node gets to stop after SIGTERM before its group is killed.
/// It covers the node's own grace for its CometBFT (10s) and a margin.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How often `start` looks at its children and prints the heights.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// Localnet commands.
#[derive(Subcommand)]
pub enum LocalnetCommand {
    /// Create one home per validator sharing one genesis.
    Init(LocalnetInitArgs),
    /// Run every node of the localnet until Ctrl-C or SIGTERM.
    Start(LocalnetStartArgs),
}

/// Arguments of `localnet init`.
#[derive(Args, Clone)]
pub struct LocalnetInitArgs {
    /// Directory to create the homes in (`<dir>/node0`, `<dir>/node1`, ...).
    #[arg(long)]
    pub dir: PathBuf,
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    pub validators: u16,
    /// First port: node i uses port_base + 10*i + {0 P2P, 1 RPC, 2 ABCI, 3 gRPC, 4 metrics, 5 dashboard}.
    #[arg(long, default_value_t = 26600)]
    pub port_base: u16,
    /// Target block interval (CometBFT's timeout_commit).
    #[arg(long, default_value = "300ms")]
    pub block_time: String,
    /// Chain id.
    #[arg(long, default_value = "clearnode-localnet")]
    pub chain_id: String,
    /// Genesis template (default: the built-in genesis/devnet.json).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// The cometbft binary (default: PATH, then ~/go/bin).
    #[arg(long, default_value = "")]
    pub cometbft_bin: String,
    /// Address P2P, CometBFT RPC, gRPC and metrics listen on (0.0.0.0 when each
    /// node runs in a container of its own); ABCI stays on 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen_address: String,
    /// Host name of node i in the others' persistent peers; `{i}` is replaced
    /// by the index (e.g. `validator{i}`, the containers' names).
    #[arg(long, default_value = "127.0.0.1")]
    pub peer_host: String,
    /// Succeed without change when the directory already holds a whole localnet
    /// (for a container that initializes a volume once).
    #[arg(long)]
    pub if_missing: bool,
}

/// Arguments of `localnet start`.
#[derive(Args, Clone)]
pub struct LocalnetStartArgs {
    /// The directory `localnet init` created.
    #[arg(long)]
    pub dir: PathBuf,
}

/// Runs a localnet command.
pub fn run(command: LocalnetCommand) -> Result<()> {
    match command {
        LocalnetCommand::Init(args) if args.if_missing && is_initialized(&args)? => {
            println!(
                "{} already holds a localnet; kept as it is",
                args.dir.display()
            );
            Ok(())
        }
        LocalnetCommand::Init(args) => {
            let created = !args.dir.exists();
            let homes = init(&args).inspect_err(|_| {
                // A half-made localnet would only refuse the next `init`.
                if created {
                    let _ = std::fs::remove_dir_all(&args.dir);
                }
            })?;
            print_initialized(&args, &homes);
            Ok(())
        }
        LocalnetCommand::Start(args) => start(&args),
    }
}

/// Whether every home of the localnet `args` describes exists; an error when
/// only some do.
fn is_initialized(args: &LocalnetInitArgs) -> Result<bool> {
    let present = (0..args.validators)
        .filter(|&i| node_home(&args.dir, i).join(CONFIG_FILE).exists())
        .count();
    match present {
        0 => Ok(false),
        n if n == usize::from(args.validators) => Ok(true),
        n => bail!(
            "{} holds {n} of {} homes: a half-made localnet; remove it to start over",
            args.dir.display(),
            args.validators
        ),
    }
}

/// The home of node `index`.
fn node_home(dir: &Path, index: u16) -> PathBuf {
    dir.join(format!("node{index}"))
}

/// Node `index`'s ports, or an error when they do not fit under 65536.
fn node_ports(port_base: u16, index: u16) -> Result<Ports> {
    let base = index
        .checked_mul(PORTS_PER_NODE)
        .and_then(|offset| port_base.checked_add(offset))
        .with_context(|| format!("--port-base {port_base} leaves no room for node {index}"))?;
    Ports::from_base(base)
}

/// One validator's identity, read from its CometBFT home.
struct Validator {
    /// CometBFT's validator address (hex).
    address: serde_json::Value,
    /// `{type, value}` as CometBFT writes it.
    pub_key: serde_json::Value,
    /// The P2P node id, for the others' `persistent_peers`.
    node_id: String,
}

/// Creates the homes; returns them in node order.
pub fn init(args: &LocalnetInitArgs) -> Result<Vec<PathBuf>> {
    if !(1..=VALIDATORS_MAX).contains(&args.validators) {
        bail!(
            "--validators {}: a localnet has 1 to {VALIDATORS_MAX} validators",
            args.validators
        );
    }
    let indexes = 0..args.validators;
    let homes: Vec<PathBuf> = indexes.clone().map(|i| node_home(&args.dir, i)).collect();
    let ports = indexes
        .map(|i| node_ports(args.port_base, i))
        .collect::<Result<Vec<_>>>()?;
    for home in &homes {
        init::ensure_uninitialized(home).with_context(|| {
            format!(
                "{} already holds a localnet; remove it to start over",
                args.dir.display()
            )
        })?;
    }
    let bin = init::locate_cometbft(&NodeSetup {
        port_base: args.port_base,
        block_time: args.block_time.clone(),
        cometbft_bin: args.cometbft_bin.clone(),
    })?;
    let mut cometbft_homes = Vec::new();
    let mut validators = Vec::new();
    for home in &homes {
        let cometbft_home = init::prepare_home(&bin, home)?;
        validators.push(read_validator(&bin, &cometbft_home)?);
        cometbft_homes.push(cometbft_home);
    }
    let genesis = shared_genesis(args, &homes, &cometbft_homes[0], &validators)?;
    for (index, home) in homes.iter().enumerate() {
        init::write_genesis(&cometbft_homes[index], &genesis)?;
        let peers: Vec<String> = validators
            .iter()
            .zip(&ports)
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(other, (validator, ports))| {
                let host = args.peer_host.replace("{i}", &other.to_string());
                format!("{}@{host}:{}", validator.node_id, ports.p2p)
            })
            .collect();
        configure_node(args, index, home, &ports[index], &peers)?;
    }
    Ok(homes)
}

/// The one genesis of the localnet: node0's CometBFT genesis (its genesis
/// time and consensus parameters) with every validator at equal power and
/// the app state rendered once. node0 generates the venue and custodian
/// keys; the other homes get copies, so every node can sign for them.
fn shared_genesis(
    args: &LocalnetInitArgs,
    homes: &[PathBuf],
    first_cometbft_home: &Path,
    validators: &[Validator],
) -> Result<serde_json::Value> {
    let (first, others) = homes
        .split_first()
        .context("a localnet has at least one validator")?;
    let template = init::load_template(args.template.as_deref())?;
    let app_state = init::render_template(first, &template)?;
    for home in others {
        copy_keys(first, home)?;
    }
    let mut genesis = init::genesis_document(first_cometbft_home, &args.chain_id, app_state)?;
    genesis["validators"] = validators
        .iter()
        .enumerate()
        .map(|(index, v)| {
            serde_json::json!({
                "address": v.address,
                "pub_key": v.pub_key,
                "power": VALIDATOR_POWER,
                "name": format!("node{index}"),
            })
        })
        .collect();
    Ok(genesis)
}

/// Node `index`'s CometBFT config (its ports, its peers) and clearnode.toml.
fn configure_node(
    args: &LocalnetInitArgs,
    index: usize,
    home: &Path,
    ports: &Ports,
    peers: &[String],
) -> Result<()> {
    let listen = &args.listen_address;
    init::configure_cometbft(
        &home.join(init::COMETBFT_DIR),
        &CometbftSettings {
            moniker: &format!("node{index}"),
            block_time: &args.block_time,
            ports,
            extra: vec![
                (
                    "p2p",
                    "persistent_peers",
                    format!("\"{}\"", peers.join(",")),
                ),
                (
                    "consensus",
                    "timeout_propose",
                    format!("\"{TIMEOUT_PROPOSE}\""),
                ),
                ("rpc", "laddr", format!("\"tcp://{listen}:{}\"", ports.rpc)),
                ("p2p", "laddr", format!("\"tcp://{listen}:{}\"", ports.p2p)),
            ],
        },
    )?;
    let mut config = init::node_config(&args.chain_id, ports, &args.cometbft_bin);
    config.grpc_addr = format!("{listen}:{}", ports.grpc);
    config.metrics_addr = format!("{listen}:{}", ports.metrics);
    config.dashboard_addr = format!("{listen}:{}", ports.dashboard);
    config.save(home)
}

/// Reads a CometBFT home's validator key and node id.
fn read_validator(bin: &Path, cometbft_home: &Path) -> Result<Validator> {
    let path = cometbft_home.join("config/priv_validator_key.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let key: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let (Some(address), Some(pub_key)) = (key.get("address"), key.get("pub_key")) else {
        bail!("{} has no address or pub_key", path.display());
    };
    let output = std::process::Command::new(bin)
        .arg("show-node-id")
        .arg("--home")
        .arg(cometbft_home)
        .output()
        .with_context(|| format!("running {} show-node-id", bin.display()))?;
    let node_id = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || node_id.is_empty() {
        bail!(
            "cometbft show-node-id --home {} failed: {}",
            cometbft_home.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(Validator {
        address: address.clone(),
        pub_key: pub_key.clone(),
        node_id,
    })
}

/// Copies every key file of `from/keys` into `to/keys` (permissions included).
fn copy_keys(from: &Path, to: &Path) -> Result<()> {
    let source = from.join("keys");
    let entries =
        std::fs::read_dir(&source).with_context(|| format!("listing {}", source.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", source.display()))?;
        let target = to.join("keys").join(entry.file_name());
        std::fs::copy(entry.path(), &target).with_context(|| {
            format!("copying {} to {}", entry.path().display(), target.display())
        })?;
    }
    Ok(())
}

fn print_initialized(args: &LocalnetInitArgs, homes: &[PathBuf]) {
    println!(
        "initialized a localnet of {} validators for chain {} in {}",
        homes.len(),
        args.chain_id,
        args.dir.display()
    );
    for (index, home) in homes.iter().enumerate() {
        println!("  node{index}  {}", home.display());
    }
    println!(
        "start it: clearnode localnet start --dir {}",
        args.dir.display()
    );
}

/// The homes of a localnet directory, in node order: `node0`, `node1`, ...
/// up to the first index without a home.
fn discover(dir: &Path) -> Result<Vec<PathBuf>> {
    let homes: Vec<PathBuf> = (0..VALIDATORS_MAX)
        .map(|i| node_home(dir, i))
        .take_while(|home| home.join(CONFIG_FILE).exists())
        .collect();
    if homes.is_empty() {
        bail!(
            "{} holds no localnet (no node0/{CONFIG_FILE}); create one with \
             `clearnode localnet init --dir {}`",
            dir.display(),
            dir.display()
        );
    }
    Ok(homes)
}

/// A running node of the localnet.
struct RunningNode {
    name: String,
    home: PathBuf,
    config: NodeConfig,
    child: Child,
    /// Set once the node has exited (and was reported).
    exited: bool,
}

/// Starts every node and supervises them until SIGINT or SIGTERM.
fn start(args: &LocalnetStartArgs) -> Result<()> {
    let homes = discover(&args.dir)?;
    let exe = std::env::current_exe().context("locating the clearnode binary")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut nodes = Vec::new();
        for (index, home) in homes.iter().enumerate() {
            match spawn_node(&exe, index, home) {
                Ok(node) => nodes.push(node),
                Err(e) => {
                    stop_all(&mut nodes).await;
                    return Err(e);
                }
            }
        }
        print_where_to_look(&args.dir, &nodes);
        let outcome = watch(&mut nodes).await;
        stop_all(&mut nodes).await;
        outcome
    })
}

fn spawn_node(exe: &Path, index: usize, home: &Path) -> Result<RunningNode> {
    let config = NodeConfig::load(home)?;
    let log_path = home.join("logs/node.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let child = Command::new(exe)
        .arg("start")
        .arg("--home")
        .arg(home)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} start --home {}", exe.display(), home.display()))?;
    Ok(RunningNode {
        name: format!("node{index}"),
        home: home.to_path_buf(),
        config,
        child,
        exited: false,
    })
}

fn print_where_to_look(dir: &Path, nodes: &[RunningNode]) {
    println!(
        "\nclearnode localnet: {} validators of chain {} in {}",
        nodes.len(),
        nodes.first().map_or("", |n| n.config.chain_id.as_str()),
        dir.display()
    );
    println!("  node   pid      gRPC                     CometBFT RPC             log");
    for node in nodes {
        let pid = node.child.id().map_or("-".to_string(), |id| id.to_string());
        println!(
            "  {:<6} {pid:<8} {:<24} {:<24} {}",
            node.name,
            node.config.grpc_url(),
            node.config.cometbft_rpc,
            node.home.join("logs/node.log").display()
        );
    }
    if let Some(first) = nodes.first() {
        println!(
            "try, in another terminal:\n\
             \x20 clearnode query system --home {home}\n\
             \x20 curl -s {rpc}/status\n\
             \x20 tail -f {home}/logs/cometbft.log\n\
             each node is a process group: `kill -KILL -- -<pid>` cuts one like a power cut.\n\
             Ctrl-C stops every node.\n",
            home = first.home.display(),
            rpc = first.config.cometbft_rpc,
        );
    }
}

/// Waits for SIGINT/SIGTERM, reporting nodes that exit on their own and the
/// heights every few seconds. Returns an error if every node has exited.
async fn watch(nodes: &mut [RunningNode]) -> Result<()> {
    let signal = start::shutdown_signal();
    tokio::pin!(signal);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + WATCH_INTERVAL, WATCH_INTERVAL);
    loop {
        tokio::select! {
            _ = &mut signal => return Ok(()),
            _ = ticker.tick() => {}
        }
        for node in nodes.iter_mut().filter(|n| !n.exited) {
            if let Ok(Some(status)) = node.child.try_wait() {
                node.exited = true;
                eprintln!(
                    "{} exited ({status}); see {}",
                    node.name,
                    node.home.join("logs/node.log").display()
                );
            }
        }
        if nodes.iter().all(|n| n.exited) {
            bail!("every node of the localnet has exited; see their logs/node.log");
        }
        println!("{}", heights_line(nodes).await);
    }
}

/// `heights  node0 12  node1 12  node2 -  node3 11`, from each CometBFT's RPC.
async fn heights_line(nodes: &[RunningNode]) -> String {
    let mut line = String::from("heights");
    for node in nodes {
        let height = match CometRpc::new(&node.config.cometbft_rpc).status().await {
            Ok(status) => status.latest_block_height.to_string(),
            Err(_) => "-".to_string(),
        };
        line.push_str(&format!("  {} {height}", node.name));
    }
    line
}

/// SIGTERM to every node (each stops its CometBFT), then SIGKILL to the
/// process group of any node still running after the grace period.
async fn stop_all(nodes: &mut [RunningNode]) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for node in nodes.iter_mut() {
        let group = node.child.id().and_then(|id| i32::try_from(id).ok());
        match tokio::time::timeout_at(deadline, node.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!(
                    "{} did not stop within {STOP_GRACE:?}; killing it",
                    node.name
                );
                if let Some(group) = group {
                    let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
                }
                let _ = node.child.wait().await;
            }
        }
    }
    println!("localnet stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ports_are_ten_apart_and_bounded() {
        let ports = node_ports(26600, 3).expect("fits");
        assert_eq!(
            (ports.p2p, ports.rpc, ports.abci, ports.grpc, ports.metrics),
            (26630, 26631, 26632, 26633, 26634)
        );
        assert!(node_ports(65_533, 0).is_err());
        assert!(node_ports(65_000, 60).is_err());
    }

    #[test]
    fn discover_needs_node0() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = discover(dir.path()).expect_err("empty");
        assert!(error.to_string().contains("holds no localnet"), "{error}");
    }
}
