//! The figures of a load run: rates, latency percentiles, the JSON written,
//! and the progress line.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::lane::{LaneShared, Tally};
use super::readers::{ReadCounts, ReadReport};
use super::{LoadgenArgs, Target};

/// The shape of the load that is not in the arguments.
pub(super) struct Shape {
    pub(super) lanes: usize,
    pub(super) nodes: usize,
    pub(super) tx_bytes: usize,
}

/// Submit-to-commit latency, milliseconds.
#[derive(Debug, Serialize)]
pub(super) struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// p99 in units of the mean block interval of the run.
    p99_blocks: f64,
}

/// What `loadgen` prints and writes.
#[derive(Debug, Serialize)]
pub(super) struct LoadReport {
    label: String,
    target: Target,
    nodes: usize,
    lanes: usize,
    accounts: u32,
    entries_per_report: u32,
    tx_bytes: usize,
    window_per_lane: u64,
    /// Offered tx/s (0 = as fast as accepted).
    rate_target: u64,
    duration_s: f64,
    submitted_txs: u64,
    /// Transactions whose commit was seen within the duration.
    committed_txs_in_window: u64,
    /// All commits seen, including the drain after the duration.
    committed_txs: u64,
    refused_txs: u64,
    unreachable_submissions: u64,
    unresolved_txs: u64,
    committed_tx_per_s: f64,
    committed_position_updates_per_s: f64,
    committed_bytes_per_s: f64,
    blocks: u64,
    mean_block_interval_ms: f64,
    latency: Latency,
    last_problem: String,
    /// `--audit-readers`: the proven reads made during the load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) audit_reads: Option<ReadReport>,
}

impl LoadReport {
    pub(super) fn new(
        args: &LoadgenArgs,
        shape: Shape,
        tallies: &[Tally],
        committed_in_window: u64,
        blocks: u64,
        duration: Duration,
    ) -> Self {
        let latencies = sorted_latencies(tallies.iter().map(|t| t.latencies_us.as_slice()));
        let seconds = duration.as_secs_f64();
        let tx_per_s = committed_in_window as f64 / seconds;
        let updates_per_tx = match args.target {
            Target::Clearnode => f64::from(args.entries_per_report),
            Target::Kvstore => 0.0,
        };
        let mean_block_interval_ms = if blocks > 0 {
            seconds * 1000.0 / blocks as f64
        } else {
            0.0
        };
        let p99_ms = percentile_ms(&latencies, 99);
        Self {
            label: args.label.clone(),
            target: args.target,
            nodes: shape.nodes,
            lanes: shape.lanes,
            accounts: args.accounts,
            entries_per_report: args.entries_per_report,
            tx_bytes: shape.tx_bytes,
            window_per_lane: args.window,
            rate_target: args.rate,
            duration_s: seconds,
            submitted_txs: tallies.iter().map(|t| t.submitted).sum(),
            committed_txs_in_window: committed_in_window,
            committed_txs: tallies.iter().map(|t| t.committed).sum(),
            refused_txs: tallies.iter().map(|t| t.refused).sum(),
            unreachable_submissions: tallies.iter().map(|t| t.unreachable).sum(),
            unresolved_txs: tallies.iter().map(|t| t.unresolved).sum(),
            committed_tx_per_s: round2(tx_per_s),
            committed_position_updates_per_s: round2(tx_per_s * updates_per_tx),
            committed_bytes_per_s: round2(tx_per_s * shape.tx_bytes as f64),
            blocks,
            mean_block_interval_ms: round2(mean_block_interval_ms),
            latency: Latency {
                p50_ms: percentile_ms(&latencies, 50),
                p99_ms,
                max_ms: latencies
                    .last()
                    .map_or(0.0, |us| round2(*us as f64 / 1000.0)),
                p99_blocks: if mean_block_interval_ms > 0.0 {
                    round2(p99_ms / mean_block_interval_ms)
                } else {
                    0.0
                },
            },
            last_problem: tallies
                .iter()
                .rev()
                .map(|t| t.last_problem.clone())
                .find(|p| !p.is_empty())
                .unwrap_or_default(),
            audit_reads: None,
        }
    }

    /// The human summary.
    pub(super) fn summary(&self) -> String {
        let mut text = self.load_summary();
        if let Some(reads) = &self.audit_reads {
            text.push('\n');
            text.push_str(&reads.summary());
        }
        text
    }

    fn load_summary(&self) -> String {
        format!(
            "loadgen {target:?} {label}: {lanes} lanes on {nodes} node(s), {tx_bytes} B/tx, {entries} entries/report, {duration:.1}s\n\
             \x20 committed       {tx_per_s:.1} tx/s, {updates:.0} position updates/s ({committed} txs in the window, {blocks} blocks, {interval:.0} ms/block)\n\
             \x20 latency         p50 {p50:.0} ms, p99 {p99:.0} ms ({p99_blocks:.2} blocks), max {max:.0} ms\n\
             \x20 submitted {submitted}, refused {refused}, unreachable {unreachable}, unresolved {unresolved}",
            target = self.target,
            label = self.label,
            lanes = self.lanes,
            nodes = self.nodes,
            tx_bytes = self.tx_bytes,
            entries = self.entries_per_report,
            duration = self.duration_s,
            tx_per_s = self.committed_tx_per_s,
            updates = self.committed_position_updates_per_s,
            committed = self.committed_txs_in_window,
            blocks = self.blocks,
            interval = self.mean_block_interval_ms,
            p50 = self.latency.p50_ms,
            p99 = self.latency.p99_ms,
            p99_blocks = self.latency.p99_blocks,
            max = self.latency.max_ms,
            submitted = self.submitted_txs,
            refused = self.refused_txs,
            unreachable = self.unreachable_submissions,
            unresolved = self.unresolved_txs,
        )
    }
}

pub(super) fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Every lane's (or reader's) latencies in microseconds, merged and sorted.
pub(super) fn sorted_latencies<'a>(lists: impl Iterator<Item = &'a [u64]>) -> Vec<u64> {
    let mut latencies: Vec<u64> = lists.flatten().copied().collect();
    latencies.sort_unstable();
    latencies
}

/// The `percent`-th percentile (nearest rank) of sorted microseconds, in ms.
pub(super) fn percentile_ms(sorted_us: &[u64], percent: usize) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = (sorted_us.len() * percent).div_ceil(100).max(1) - 1;
    round2(sorted_us[rank.min(sorted_us.len() - 1)] as f64 / 1000.0)
}

/// A one-line progress display on stderr.
/// On a terminal the line redraws itself; in a log it is repeated every few seconds.
pub(super) struct Progress {
    quiet: bool,
    terminal: bool,
    duration_s: f64,
    shown: std::cell::Cell<Option<Instant>>,
}

/// How often the progress line is repeated when stderr is not a terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

impl Progress {
    pub(super) fn new(quiet: bool, duration_s: f64) -> Self {
        use std::io::IsTerminal;
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            duration_s,
            shown: std::cell::Cell::new(None),
        }
    }

    pub(super) fn show(&self, shared: &LaneShared, reads: &ReadCounts, started: Instant) {
        if self.quiet {
            return;
        }
        if !self.terminal {
            if self
                .shown
                .get()
                .is_some_and(|at| at.elapsed() < LOG_INTERVAL)
            {
                return;
            }
            self.shown.set(Some(Instant::now()));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let committed = shared.committed.load(Ordering::Relaxed);
        let width = 30usize;
        let done = ((elapsed / self.duration_s).min(1.0) * width as f64) as usize;
        eprint!(
            "{}[{}{}] {elapsed:5.1}/{:.0}s  submitted {:>8}  committed {committed:>8} ({:>8.1} tx/s)  refused {:>6}{}",
            if self.terminal { "\r" } else { "" },
            "#".repeat(done),
            " ".repeat(width - done),
            self.duration_s,
            shared.submitted.load(Ordering::Relaxed),
            committed as f64 / elapsed.max(0.001),
            shared.refused.load(Ordering::Relaxed),
            reads.progress(elapsed),
        );
        if !self.terminal {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }

    pub(super) fn finish(&self) {
        if !self.quiet && self.terminal {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let us: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&us, 50), 50.0);
        assert_eq!(percentile_ms(&us, 99), 99.0);
        assert_eq!(percentile_ms(&[7000], 99), 7.0);
        assert_eq!(percentile_ms(&[], 50), 0.0);
    }
}
