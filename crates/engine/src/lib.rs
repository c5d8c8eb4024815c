//! The deterministic state machine of clearnode.
//!
//! The engine is a pure function of (state, block): it holds the whole
//! state in ordered in-memory maps, executes verified transactions, and at
//! the end of a block returns the writes (state key, canonical value) that
//! the store commits under the Merkle root. It computes cross-venue margin
//! per account and aggregates per market and system-wide, and checks that
//! collateral is conserved every block.
//!
//! Invariants: integer fixed-point arithmetic only; ordered collections only;
//! time only from the block header; a rejected transaction changes nothing;
//! a broken invariant is an [`EngineError::Invariant`], which the node treats
//! as fatal rather than diverge.
//!
//! Must never depend on: tokio, RocksDB, tonic, the clock, randomness, floats.
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]

mod acknowledgements;
pub mod aggregates;
mod backstop;
mod block;
pub mod breakers;
pub mod codec;
mod exec;
mod genesis;
pub mod governance;
mod instructions;
pub mod keys;
mod liquidation;
mod load;
pub mod margin;
mod prices;
pub mod small_map;
pub mod state;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use backstop::BACKSTOP;
pub use block::{BlockHeader, BlockOutput, Engine, Event, TxOutcome, Write};
pub use load::{KeyRange, KeyValue, LoadError, PairCursor, PairRef, StateSource};
pub use prices::{OracleRound, PriceTarget, PriceUpdate};

/// Fatal engine errors. A rejected transaction is not an error: it is a
/// [`TxOutcome`] with a code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An internal invariant does not hold (a bug): stop rather than diverge.
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// A block call arrived out of order (e.g. end_block without begin_block).
    #[error("block lifecycle: {0}")]
    Lifecycle(String),
}

/// An invariant breach: the node stops rather than diverge.
pub(crate) fn invariant(what: impl std::fmt::Display) -> EngineError {
    EngineError::Invariant(what.to_string())
}
