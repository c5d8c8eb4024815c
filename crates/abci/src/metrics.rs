//! Counters the node exports for Prometheus.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters updated by the ABCI application.
#[derive(Debug, Default)]
pub struct AppMetrics {
    /// Last committed height.
    pub committed_height: AtomicU64,
    /// Blocks committed since start.
    pub blocks_committed: AtomicU64,
    /// FinalizeBlock results per code.
    pub block_results: Mutex<BTreeMap<u32, u64>>,
    /// CheckTx results per code.
    pub check_results: Mutex<BTreeMap<u32, u64>>,
}

impl AppMetrics {
    pub(crate) fn count(map: &Mutex<BTreeMap<u32, u64>>, code: u32) {
        let mut map = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(code).or_default() += 1;
    }

    pub(crate) fn committed(&self, height: u64) {
        self.committed_height.store(height, Ordering::Relaxed);
        self.blocks_committed.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP clearnode_committed_height Last committed block height.\n");
        out.push_str("# TYPE clearnode_committed_height gauge\n");
        out.push_str(&format!(
            "clearnode_committed_height {}\n",
            self.committed_height.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP clearnode_blocks_committed_total Blocks committed since start.\n");
        out.push_str("# TYPE clearnode_blocks_committed_total counter\n");
        out.push_str(&format!(
            "clearnode_blocks_committed_total {}\n",
            self.blocks_committed.load(Ordering::Relaxed)
        ));
        for (name, help, map) in [
            (
                "clearnode_block_tx_results_total",
                "Transaction results in blocks, by code.",
                &self.block_results,
            ),
            (
                "clearnode_checktx_results_total",
                "CheckTx results, by code.",
                &self.check_results,
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            let map = map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (code, count) in map.iter() {
                let code_name =
                    clearnode_types::TxCode::from_number(*code).map_or("unknown", |c| c.name());
                out.push_str(&format!(
                    "{name}{{code=\"{code}\",name=\"{code_name}\"}} {count}\n"
                ));
            }
        }
        out
    }
}
