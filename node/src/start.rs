//! `clearnode start`: the node's processes and their lifecycle.
//!
//! Order matters: the store opens first (one process per home), then the
//! ABCI server binds, gRPC, metrics and the dashboard bind, and only then is CometBFT
//! started, so it finds the app listening. On SIGINT/SIGTERM, gRPC stops
//! taking requests and CometBFT gets SIGTERM; committed state is always
//! whole, because every block is one atomic RocksDB write. Once CometBFT has
//! stopped, the store is flushed so that the next start replays no log.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use clearnode_abci::{AppInfo, ClearnodeApp, SnapshotConfig};
use clearnode_grpc::GrpcConfig;
use clearnode_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::NodeConfig;
use crate::{cometbft, metrics};

/// Read buffer of the ABCI server: large enough for a full block of reports.
const ABCI_READ_BUFFER_BYTES: usize = 32 * 1024 * 1024;

/// Arguments of `start`.
#[derive(Args, Clone)]
pub struct StartArgs {
    /// Node home.
    #[arg(long, default_value_os_t = crate::default_home())]
    pub home: PathBuf,
    /// Do not start CometBFT; connect to one started separately.
    #[arg(long)]
    pub external_cometbft: bool,
}

/// Runs the node until SIGINT or SIGTERM.
pub fn run(args: StartArgs) -> Result<()> {
    let config = NodeConfig::load(&args.home)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run_node(
        &args.home,
        &config,
        !args.external_cometbft,
        shutdown_signal(),
    ))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

async fn bind(what: &str, addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("{what} cannot listen on {addr}: is the port in use (another node running)?")
    })
}

/// Opens the store and serves ABCI, gRPC and metrics; supervises CometBFT
/// when asked; returns when `stop` resolves or CometBFT cannot be kept up.
pub async fn run_node(
    home: &Path,
    config: &NodeConfig,
    supervise_cometbft: bool,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let db_path = home.join(&config.db_dir);
    let store = Store::open(&db_path).with_context(|| {
        format!(
            "opening the state database {} (is another clearnode using this home, or is it not a clearnode database?)",
            db_path.display()
        )
    })?;
    let shutdown_store = store.clone();
    let app = ClearnodeApp::new(
        store.clone(),
        AppInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    )
    .context("loading committed state")?;
    let oracle = crate::feed::OracleConfig::load(home)?;
    let quotes = crate::feed::quote_source(
        &oracle,
        &home.join(&config.cometbft_home),
        &tokio::runtime::Handle::current(),
    )?;
    let app = app.with_quotes(quotes).with_snapshots(SnapshotConfig {
        dir: home.join(crate::config::SNAPSHOT_DIR),
        interval: config.snapshot_interval,
        keep: config.snapshot_keep,
    });
    let app_metrics = app.metrics();

    let abci = tendermint_abci::ServerBuilder::new(ABCI_READ_BUFFER_BYTES)
        .bind(config.abci_addr.as_str(), app)
        .map_err(|e| {
            anyhow!(
                "ABCI server cannot listen on {}: {e} (is the port in use?)",
                config.abci_addr
            )
        })?;
    std::thread::Builder::new()
        .name("abci".into())
        .spawn(move || {
            if let Err(e) = abci.listen() {
                tracing::error!("ABCI server stopped: {e}");
                std::process::exit(1);
            }
        })?;

    let grpc_listener = bind("gRPC", &config.grpc_addr).await?;
    let metrics_listener = bind("metrics", &config.metrics_addr).await?;
    let dashboard_listener = match config.dashboard_addr.as_str() {
        "" => None,
        addr => Some(bind("dashboard", addr).await?),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let grpc_config = GrpcConfig {
        chain_id: config.chain_id.clone(),
        cometbft_rpc: config.cometbft_rpc.clone(),
        commit_timeout: Duration::from_secs(config.commit_timeout_seconds),
    };
    let mut grpc_shutdown = shutdown_rx.clone();
    if let Some(listener) = dashboard_listener {
        let mut dashboard_shutdown = shutdown_rx.clone();
        let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
        let verify_command = format!("clearnode audit verify --home {}", home.display());
        let dashboard =
            clearnode_dashboard::serve(listener, store.clone(), verify_command, async move {
                let _ = dashboard_shutdown.changed().await;
            });
        tokio::spawn(async move {
            if let Err(e) = dashboard.await {
                tracing::error!("{e}");
            }
        });
    }
    let grpc = tokio::spawn(clearnode_grpc::serve(
        grpc_listener,
        grpc_config,
        store,
        async move {
            let _ = grpc_shutdown.changed().await;
        },
    ));
    tokio::spawn(metrics::serve(metrics_listener, app_metrics));

    let mut cometbft_task = if supervise_cometbft {
        let bin = cometbft::locate(&config.cometbft_bin)?;
        cometbft::check_version(&bin)?;
        let log = home.join("logs/cometbft.log");
        std::fs::create_dir_all(home.join("logs"))?;
        Some(tokio::spawn(cometbft::supervise(
            bin,
            home.join(&config.cometbft_home),
            log,
            shutdown_rx.clone(),
        )))
    } else {
        None
    };
    tracing::info!(
        chain_id = config.chain_id,
        abci = config.abci_addr,
        grpc = config.grpc_addr,
        metrics = config.metrics_addr,
        dashboard = config.dashboard_addr,
        cometbft_rpc = config.cometbft_rpc,
        "clearnode running"
    );

    let outcome = tokio::select! {
        _ = stop => Ok(()),
        result = async {
            match cometbft_task.as_mut() {
                Some(task) => task.await,
                None => std::future::pending().await,
            }
        } => match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow!("cometbft supervisor: {e}")),
        },
    };
    let _ = shutdown_tx.send(true);
    if let Some(task) = cometbft_task {
        if !task.is_finished() {
            let _ = task.await;
        }
    }
    if let Ok(Err(e)) = grpc.await {
        tracing::error!("{e}");
    }
    // CometBFT is stopped: nothing commits any more. Flushing now spares the next start
    // replaying the write-ahead log (seconds on a large state).
    if let Err(e) = shutdown_store.flush() {
        tracing::warn!("flushing the state database at shutdown: {e}");
    }
    outcome
}
