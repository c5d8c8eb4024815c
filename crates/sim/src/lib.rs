//! A seeded simulator that plays stress scenarios through the real engine:
//! thousands of accounts on several venues, oracle price paths, liquidator
//! bots with finite capacity, and a report of what the defenses did.
//!
//! Everything is deterministic for a seed: the engine is driven in memory
//! exactly as the chain drives it (signed transactions, `begin_block` with
//! the block's prices, `end_block`), so a scenario's figures are what a
//! chain fed the same blocks would compute.

#![forbid(unsafe_code)]

mod chart;
mod report;
mod run;
mod scenario;
mod world;

pub use report::{BlockMetrics, SimReport};
pub use run::{run, SimConfig};
pub use scenario::Scenario;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The engine refused the set-up or broke an invariant.
    #[error("engine: {0}")]
    Engine(String),
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
}
