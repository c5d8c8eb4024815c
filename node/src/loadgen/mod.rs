//! `clearnode loadgen`: a load generator. Many signing venues (lanes)
//! submit batched position reports over gRPC, at a set rate or as fast as
//! the mempool accepts, for a set duration; it prints committed tx/s,
//! committed position updates/s and submit-to-commit latency, and writes
//! them as JSON.
//!
//! With `--target kvstore` the same load shape (lanes, window, rate,
//! duration, transaction size) goes to a CometBFT running its built-in
//! `kvstore` app through `broadcast_tx_sync`, so the two can be compared.
//!
//! A lane's transactions commit in order (clearnode: one signer's
//! sequences; kvstore: one key per lane whose value carries the lane's
//! counter), so one cheap query per lane tells how far it has committed;
//! latency is measured from the submission to the poll that first saw it
//! committed (resolution: `--poll-ms`).

// A measuring tool outside consensus: it reads the clock and computes rates.
#![allow(clippy::disallowed_methods, clippy::float_arithmetic)]

mod lane;
mod readers;
mod setup;
mod stats;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use clearnode_grpc::cometbft::CometRpc;

use crate::config::NodeConfig;
use lane::{Endpoint, Lane, LaneShared};
use stats::{LoadReport, Progress};

/// What the load goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// clearnode nodes: signed position reports through VenueService.
    Clearnode,
    /// CometBFT with its built-in kvstore app: `key=value` txs of equal size.
    Kvstore,
}

/// Arguments of `loadgen`.
#[derive(Args, Clone)]
pub struct LoadgenArgs {
    /// What to load.
    #[arg(long, value_enum, default_value = "clearnode")]
    pub target: Target,
    /// A node home (keys, chain id, genesis); repeat it for every node of a
    /// localnet to spread the lanes over them. Clearnode target only.
    #[arg(long = "home")]
    pub homes: Vec<PathBuf>,
    /// CometBFT RPC URLs (kvstore target; default for clearnode: the homes').
    #[arg(long = "rpc")]
    pub rpcs: Vec<String>,
    /// Lanes: one signing venue each (clearnode: at most the genesis' venues;
    /// default: all of them).
    #[arg(long)]
    pub lanes: Option<usize>,
    /// Trader accounts the reports cover (funded and authorized first).
    #[arg(long, default_value_t = 1000)]
    pub accounts: u32,
    /// Position entries per report.
    #[arg(long, default_value_t = 500)]
    pub entries_per_report: u32,
    /// Transaction size for kvstore (default: the size of a clearnode
    /// report with `--entries-per-report` entries).
    #[arg(long)]
    pub tx_bytes: Option<usize>,
    /// Target committed tx/s over all lanes; 0 = as fast as accepted.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Submitted but uncommitted transactions each lane may have.
    #[arg(long, default_value_t = 64)]
    pub window: u64,
    /// Seconds of load (fractions allowed, e.g. 2.5).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Milliseconds between polls of how far each lane has committed.
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    /// Write the results here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A free-form label copied into the JSON (e.g. "single-validator").
    #[arg(long, default_value = "")]
    pub label: String,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Auditors reading during the load: each its own gRPC connection asking
    /// `GetSystemRisk` with a proof as fast as answered (clearnode target;
    /// with `--lanes 0` they read a chain under no report load).
    #[arg(long, default_value_t = 0)]
    pub audit_readers: usize,
    /// Audit queries/s the readers offer together; 0 = each as fast as answered.
    #[arg(long, default_value_t = 0)]
    pub audit_rate: u64,
    /// Verify the proof of one audit answer in this many (0 = none).
    #[arg(long, default_value_t = 100)]
    pub audit_verify_every: u64,
}

/// Runs the load and prints (and writes) the figures.
pub fn run(args: LoadgenArgs) -> Result<()> {
    if !(args.duration > 0.0 && args.duration < 86_400.0) {
        bail!("--duration must be between 0 and 86400 seconds");
    }
    if args.entries_per_report == 0 || args.window == 0 {
        bail!("--entries-per-report and --window must be positive");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(run_load(&args))?;
    println!("{}", report.summary());
    if let Some(path) = &args.json {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = serde_json::to_vec_pretty(&report)?;
        text.push(b'\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn run_load(args: &LoadgenArgs) -> Result<LoadReport> {
    let (lanes, rpcs, tx_bytes) = match args.target {
        Target::Clearnode => setup::clearnode_lanes(args).await?,
        Target::Kvstore => kvstore_lanes(args)?,
    };
    if lanes.is_empty() && args.audit_readers == 0 {
        bail!("no lanes to run");
    }
    let reader_channels = match (args.audit_readers, args.target) {
        (0, _) => Vec::new(),
        (_, Target::Kvstore) => bail!("--audit-readers needs --target clearnode"),
        (count, Target::Clearnode) => setup::reader_channels(args, count).await?,
    };
    let lane_count = lanes.len();
    let height_rpc = CometRpc::new(&rpcs[0]);
    let height_start = height_rpc.status().await?.latest_block_height;

    let shared = Arc::new(LaneShared::new(args, lane_count));
    let read_counts = Arc::new(readers::ReadCounts::default());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in lanes {
        tasks.spawn(lane.run(Arc::clone(&shared), started));
    }
    let plan = readers::ReaderPlan::new(
        shared.submit_for,
        args.audit_readers,
        args.audit_rate,
        args.audit_verify_every,
    );
    let mut reader_tasks = tokio::task::JoinSet::new();
    for channel in reader_channels {
        reader_tasks.spawn(readers::run_reader(
            channel,
            Arc::clone(&read_counts),
            started,
            plan,
        ));
    }
    let progress = Progress::new(args.quiet, args.duration);
    while started.elapsed() < shared.submit_for {
        tokio::time::sleep(Duration::from_millis(250)).await;
        progress.show(&shared, &read_counts, started);
    }
    let height_end = height_rpc.status().await?.latest_block_height;
    let mut read_tallies = Vec::new();
    while let Some(joined) = reader_tasks.join_next().await {
        read_tallies.push(joined.context("an audit reader panicked")?);
    }
    let mut tallies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        tallies.push(joined.context("a lane panicked")??);
    }
    progress.finish();
    let committed_in_window = shared.committed_in_window.load(Ordering::SeqCst);
    let audit_reads = if read_tallies.is_empty() {
        None
    } else {
        let headers = readers::check_headers(&height_rpc, &read_tallies).await;
        Some(readers::ReadReport::new(
            &read_tallies,
            args.audit_rate,
            shared.submit_for,
            headers,
        ))
    };
    let mut report = LoadReport::new(
        args,
        stats::Shape {
            lanes: lane_count,
            nodes: rpcs.len(),
            tx_bytes,
        },
        &tallies,
        committed_in_window,
        height_end.saturating_sub(height_start),
        shared.submit_for,
    );
    report.audit_reads = audit_reads;
    Ok(report)
}

/// kvstore lanes: one key per lane, spread over the RPC endpoints.
fn kvstore_lanes(args: &LoadgenArgs) -> Result<(Vec<Lane>, Vec<String>, usize)> {
    if args.rpcs.is_empty() {
        bail!("--target kvstore needs --rpc URL");
    }
    let tx_bytes = match args.tx_bytes {
        Some(bytes) => bytes,
        None => setup::sample_report_bytes(args.entries_per_report)?,
    };
    let lane_count = args.lanes.unwrap_or(8);
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let lanes = (0..lane_count)
        .map(|index| {
            let rpc = CometRpc::new(&args.rpcs[index % args.rpcs.len()]);
            let query_url = args.rpcs[index % args.rpcs.len()].clone();
            Lane::new(
                index,
                Endpoint::Kvstore {
                    rpc,
                    query_url,
                    key: format!("loadgen-{run_id}-lane-{index}"),
                    tx_bytes,
                },
            )
        })
        .collect();
    Ok((lanes, args.rpcs.clone(), tx_bytes))
}

/// The node configuration of a home, with a check that it exists.
fn load_config(home: &std::path::Path) -> Result<NodeConfig> {
    NodeConfig::load(home).with_context(|| format!("{} is not a node home", home.display()))
}
