//! Counters the node exports for Prometheus.
//!
//! Outside consensus: nothing here feeds back into state. Durations are
//! measured with the monotonic clock and kept in whole microseconds (the
//! workspace has no floating point); they are rendered in seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clearnode_engine::state::State;
use clearnode_engine::Event;

/// Upper bounds of the latency buckets, in microseconds.
const LATENCY_BUCKETS_MICROS: [u64; 12] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000,
];

/// A Prometheus histogram of durations.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative; the last one is +Inf).
    buckets: [AtomicU64; LATENCY_BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BUCKETS_MICROS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let bound = LATENCY_BUCKETS_MICROS
                .get(index)
                .map_or_else(|| "+Inf".to_string(), |&micros| seconds(micros));
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = seconds(self.sum_micros.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", self.count());
    }
}

/// Microseconds as decimal seconds.
fn seconds(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Measures how long an ABCI call takes.
pub(crate) struct Timer(Instant);

impl Timer {
    // The monotonic clock, for latency metrics only; never part of state.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn start() -> Self {
        Self(Instant::now())
    }

    pub(crate) fn stop(self, histogram: &LatencyHistogram) {
        histogram.observe(self.0.elapsed());
    }
}

/// Figures of the last committed state.
#[derive(Debug, Default, Clone)]
struct StateGauges {
    fund_balance: String,
    fund_inflows: String,
    fund_payouts: String,
    fund_adl_collected: String,
    fund_bad_debt_unresolved: String,
    liquidation_orders: u64,
    accounts: u64,
    health: [(&'static str, u64); 4],
    /// Per market: (id, status name, price valid).
    markets: Vec<(String, &'static str, bool)>,
    system_breaker_tripped: bool,
    /// Fund / the two largest stress defaults (empty: no stress loss).
    fund_coverage: String,
}

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
    /// Engine events (block and transaction) per kind: liquidation orders,
    /// cancellations and takeovers, reports, deposits, ...
    pub events: Mutex<BTreeMap<String, u64>>,
    /// Durations of FinalizeBlock.
    pub finalize_block_latency: LatencyHistogram,
    /// Durations of Commit.
    pub commit_latency: LatencyHistogram,
    /// Durations of the Merkle update inside FinalizeBlock (the rest is the engine).
    pub store_prepare_latency: LatencyHistogram,
    /// Durations of CheckTx.
    pub check_tx_latency: LatencyHistogram,
    /// The last committed state's figures.
    state: Mutex<Option<StateGauges>>,
}

impl AppMetrics {
    pub(crate) fn count(map: &Mutex<BTreeMap<u32, u64>>, code: u32) {
        let mut map = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(code).or_default() += 1;
    }

    pub(crate) fn count_events(&self, events: &[Event]) {
        let mut map = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in events {
            *map.entry(event.kind.clone()).or_default() += 1;
        }
    }

    /// Takes the figures of the state just committed.
    pub(crate) fn observe_state(&self, state: &State) {
        let fund = &state.insurance_fund;
        let health = &state.system.health;
        let gauges = StateGauges {
            fund_balance: fund.balance.to_string(),
            fund_inflows: fund.inflows.to_string(),
            fund_payouts: fund.payouts.to_string(),
            fund_adl_collected: fund.adl_collected.to_string(),
            fund_bad_debt_unresolved: fund.bad_debt_unresolved.to_string(),
            liquidation_orders: u64::try_from(state.liquidation_orders.len()).unwrap_or(u64::MAX),
            accounts: state.system.accounts,
            health: [
                ("healthy", health.healthy),
                ("margin_call", health.margin_call),
                ("liquidating", health.liquidating),
                ("bankrupt", health.bankrupt),
            ],
            markets: state
                .breakers
                .markets
                .iter()
                .map(|(id, b)| (id.to_string(), b.status.name(), b.validity.is_valid()))
                .collect(),
            system_breaker_tripped: state.breakers.system.tripped,
            fund_coverage: state
                .breakers
                .system
                .coverage
                .map(|c| c.to_string())
                .unwrap_or_default(),
        };
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(gauges);
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
        self.render_events(&mut out);
        self.render_state(&mut out);
        self.finalize_block_latency.render(
            "clearnode_finalize_block_seconds",
            "Time FinalizeBlock took.",
            &mut out,
        );
        self.commit_latency
            .render("clearnode_commit_seconds", "Time Commit took.", &mut out);
        self.store_prepare_latency.render(
            "clearnode_store_prepare_seconds",
            "Time FinalizeBlock spent updating the Merkle tree.",
            &mut out,
        );
        self.check_tx_latency
            .render("clearnode_check_tx_seconds", "Time CheckTx took.", &mut out);
        out
    }

    fn render_events(&self, out: &mut String) {
        let name = "clearnode_engine_events_total";
        let _ = writeln!(
            out,
            "# HELP {name} Engine events by kind (liquidation_order, liquidation_cancelled, take_over_position, ...).\n# TYPE {name} counter"
        );
        let map = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (kind, count) in map.iter() {
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {count}");
        }
    }

    fn render_state(&self, out: &mut String) {
        let guard = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(state) = guard.as_ref() else {
            return;
        };
        for (name, help, value) in [
            (
                "clearnode_insurance_fund_balance_usd",
                "Insurance fund balance.",
                &state.fund_balance,
            ),
            (
                "clearnode_insurance_fund_inflows_usd",
                "Penalties, seized equity and the backstop book's net PnL the insurance fund received since genesis.",
                &state.fund_inflows,
            ),
            (
                "clearnode_insurance_fund_payouts_usd",
                "Bad debt the insurance fund paid since genesis.",
                &state.fund_payouts,
            ),
            (
                "clearnode_adl_collected_usd",
                "Bad debt collected by auto-deleveraging since genesis.",
                &state.fund_adl_collected,
            ),
            (
                "clearnode_bad_debt_unresolved_usd",
                "Bad debt neither the fund nor auto-deleveraging covered since genesis.",
                &state.fund_bad_debt_unresolved,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        for (name, help, value) in [
            (
                "clearnode_liquidation_orders_open",
                "Positions offered to liquidators.",
                state.liquidation_orders,
            ),
            ("clearnode_accounts", "Accounts in state.", state.accounts),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let name = "clearnode_accounts_by_health";
        let _ = writeln!(
            out,
            "# HELP {name} Accounts per health state.\n# TYPE {name} gauge"
        );
        for (health, count) in state.health {
            let _ = writeln!(out, "{name}{{health=\"{health}\"}} {count}");
        }
        self.render_breakers(state, out);
    }

    fn render_breakers(&self, state: &StateGauges, out: &mut String) {
        let name = "clearnode_market_breaker";
        let _ = writeln!(
            out,
            "# HELP {name} 1 for each market's current breaker status (open, limit, paused, halted, reopening).\n# TYPE {name} gauge"
        );
        for (market, status) in state.markets.iter().map(|(m, s, _)| (m, s)) {
            for candidate in ["open", "limit", "paused", "halted", "reopening"] {
                let on = u8::from(*status == candidate);
                let _ = writeln!(
                    out,
                    "{name}{{market=\"{market}\",status=\"{candidate}\"}} {on}"
                );
            }
        }
        let name = "clearnode_oracle_price_valid";
        let _ = writeln!(
            out,
            "# HELP {name} 1 when the market's oracle price is valid (not stale, not too volatile, quoted by >= 2/3 of power).\n# TYPE {name} gauge"
        );
        for (market, _, valid) in &state.markets {
            let _ = writeln!(out, "{name}{{market=\"{market}\"}} {}", u8::from(*valid));
        }
        let name = "clearnode_system_breaker_tripped";
        let _ = writeln!(
            out,
            "# HELP {name} 1 while the system breaker holds everything reduce-only.\n# TYPE {name} gauge\n{name} {}",
            u8::from(state.system_breaker_tripped)
        );
        if !state.fund_coverage.is_empty() {
            let name = "clearnode_insurance_fund_coverage_ratio";
            let _ = writeln!(
                out,
                "# HELP {name} Fund balance over what the two largest stress defaults would leave unpaid.\n# TYPE {name} gauge\n{name} {}",
                state.fund_coverage
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_in_seconds() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(700));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(9));
        let mut out = String::new();
        histogram.render("x_seconds", "X.", &mut out);
        assert!(
            out.contains("x_seconds_bucket{le=\"0.000500\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{le=\"0.001000\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{le=\"0.050000\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{le=\"2.500000\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(
            out.contains("x_seconds_sum 9.030700\nx_seconds_count 3\n"),
            "{out}"
        );
    }
}
