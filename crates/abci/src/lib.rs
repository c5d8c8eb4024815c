//! The ABCI 2.0 application: CometBFT v0.38 talks to clearnode through it.
//!
//! It is glue and reads like a table of contents: decode the request, call
//! the engine, stage writes in the store, answer. FinalizeBlock executes the
//! block and stages its writes under the Merkle root it returns as the app
//! hash; Commit persists them in one atomic write; Info reports the last
//! committed height and app hash so CometBFT's handshake replays the rest
//! after a crash. ListSnapshots/LoadSnapshotChunk serve state-sync snapshots taken every few
//! heights, and OfferSnapshot/ApplySnapshotChunk restore one into an empty node, every chunk
//! checked against the snapshot's manifest and the result against the trusted app hash.
//!
//! A broken invariant, an unreadable store or a call out of order is a bug
//! or a broken disk: the app panics with the reason, and the node's panic
//! hook stops the process rather than let it diverge.
//!
//! Must never depend on: the gRPC layer, the clock, or any state but the
//! store and the engine.
#![forbid(unsafe_code)]

mod app;
mod convert;
mod mempool;
mod metrics;
mod oracle;
mod query;
mod snapshot;
mod snapshot_files;
mod state_sync;

pub use app::{AppInfo, ClearnodeApp, StartError, StoreSource};
pub use metrics::AppMetrics;
pub use oracle::QuoteSource;
pub use query::{PROOF_OP_TYPE, QUERY_PATH_APP_HASH, QUERY_PATH_STORE};
pub use snapshot::{Manifest, SnapshotError, SNAPSHOT_FORMAT};
pub use snapshot_files::{SnapshotConfig, SnapshotFileError, SnapshotFiles};
