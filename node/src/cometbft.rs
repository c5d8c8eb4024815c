//! The CometBFT process: finding the binary, initializing its home, and
//! supervising it (restart on crash, SIGTERM on shutdown).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// The pinned CometBFT version, from `scripts/versions.env`.
pub fn pinned_version() -> &'static str {
    include_str!("../../scripts/versions.env")
        .lines()
        .find_map(|line| line.strip_prefix("COMETBFT_VERSION="))
        .unwrap_or("unknown")
}

/// Finds the `cometbft` binary: the configured path, then PATH, then ~/go/bin.
pub fn locate(configured: &str) -> Result<PathBuf> {
    if !configured.is_empty() {
        let path = PathBuf::from(configured);
        if path.is_file() {
            return Ok(path);
        }
        bail!("cometbft binary {configured} does not exist");
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("cometbft"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(gopath) = std::env::var_os("GOPATH") {
        candidates.push(PathBuf::from(gopath).join("bin/cometbft"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join("go/bin/cometbft"));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        anyhow::anyhow!(
            "the cometbft binary was not found in PATH or ~/go/bin; install it with \
             `GOTOOLCHAIN=local go install github.com/cometbft/cometbft/cmd/cometbft@{}` \
             (or run scripts/setup.sh), or pass --cometbft-bin",
            pinned_version()
        )
    })
}

/// Warns when the binary is not the pinned version.
pub fn check_version(bin: &Path) -> Result<()> {
    let output = std::process::Command::new(bin)
        .arg("version")
        .output()
        .with_context(|| format!("running {} version", bin.display()))?;
    let found = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let pinned = pinned_version().trim_start_matches('v');
    if found != pinned {
        tracing::warn!(found, pinned, "cometbft is not the pinned version");
    }
    Ok(())
}

/// Runs `cometbft init` for a home.
pub fn init_home(bin: &Path, home: &Path) -> Result<()> {
    let output = std::process::Command::new(bin)
        .arg("init")
        .arg("--home")
        .arg(home)
        .output()
        .with_context(|| format!("running {} init", bin.display()))?;
    if !output.status.success() {
        bail!(
            "cometbft init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Restarts allowed before the supervisor gives up.
const RESTARTS_MAX: u32 = 5;
/// How long CometBFT gets to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

fn spawn(bin: &Path, home: &Path, log: &Path) -> Result<Child> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let stderr = log_file.try_clone()?;
    Command::new(bin)
        .arg("start")
        .arg("--home")
        .arg(home)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!("cometbft did not stop after SIGTERM; killing it");
        let _ = child.kill().await;
    }
}

/// Runs CometBFT until `shutdown` turns true, restarting it if it dies.
pub async fn supervise(
    bin: PathBuf,
    home: PathBuf,
    log: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut restarts = 0u32;
    loop {
        let mut child = spawn(&bin, &home, &log)?;
        tracing::info!(log = %log.display(), "cometbft started");
        tokio::select! {
            status = child.wait() => {
                let status = status.context("waiting for cometbft")?;
                restarts += 1;
                if restarts > RESTARTS_MAX {
                    bail!("cometbft exited ({status}) {restarts} times; see {}", log.display());
                }
                tracing::error!(%status, restarts, log = %log.display(), "cometbft exited; restarting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = shutdown.changed() => {
                stop(&mut child).await;
                tracing::info!("cometbft stopped");
                return Ok(());
            }
        }
    }
}
