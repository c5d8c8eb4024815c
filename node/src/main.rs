//! `clearnode`: the node binary. It wires the crates together (store, ABCI
//! app, gRPC, metrics, the CometBFT process) and holds no business logic.

mod audit;
mod client;
mod cometbft;
mod config;
mod devnet;
mod feed;
mod gov;
mod init;
mod keys;
mod loadgen;
mod localnet;
mod metrics;
mod sim;
mod start;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// A decentralized clearinghouse running as its own CometBFT chain.
#[derive(Parser)]
#[command(name = "clearnode", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node home: keys, CometBFT config, genesis from a template.
    Init(init::InitArgs),
    /// Run the node: ABCI + gRPC + metrics, supervising CometBFT.
    Start(start::StartArgs),
    /// Manage ed25519 keys in the home's keys/ directory.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Sign and submit a transaction over gRPC.
    #[command(subcommand)]
    Tx(client::TxCommand),
    /// Prove figures against the headers the validators signed.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Propose and vote on risk parameter changes (validators).
    #[command(subcommand)]
    Gov(gov::GovCommand),
    /// Query committed state over gRPC.
    #[command(subcommand)]
    Query(client::QueryCommand),
    /// One command: a single-validator chain with a demo venue feeding reports.
    Devnet(devnet::DevnetArgs),
    /// Play stress scenarios through the engine and write reports.
    Sim(sim::SimArgs),
    /// Several validators of one chain as processes on this machine.
    #[command(subcommand)]
    Localnet(localnet::LocalnetCommand),
    /// Load a chain with batched venue reports (or a CometBFT kvstore alike) and measure.
    Loadgen(loadgen::LoadgenArgs),
}

/// The default home directory.
fn default_home() -> PathBuf {
    std::env::var_os("CLEARNODE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".clearnode"))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLEARNODE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tendermint_abci=warn"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// A panic anywhere is a bug or a broken disk: stop the whole process (the
/// ABCI server runs a thread per connection, and a dead thread must not
/// leave a half-alive node that could diverge).
fn abort_on_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!(
            "clearnode: stopping after a fatal error; restart to recover from committed state"
        );
        std::process::abort();
    }));
}

fn main() -> Result<()> {
    abort_on_panic();
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Start(args) => start::run(args),
        Command::Keys(command) => keys::run(command),
        Command::Tx(command) => client::run_tx(command),
        Command::Gov(command) => gov::run(command),
        Command::Query(command) => client::run_query(command),
        Command::Audit(command) => audit::run(command),
        Command::Devnet(args) => devnet::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Localnet(command) => localnet::run(command),
        Command::Loadgen(args) => loadgen::run(args),
    }
}
