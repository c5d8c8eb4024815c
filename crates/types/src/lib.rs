//! Domain types of clearnode: identifiers, addresses, limits, stable
//! rejection codes, the genesis document, and the stateless half of
//! transaction checking (decoding, bounds, decimal parsing, signatures).
//!
//! Everything here is pure and deterministic. A `VerifiedTx` can only be
//! built by [`tx::verify_tx`], so code holding one knows the bytes decoded,
//! every field is in bounds and the signature is valid for the chain id.
//! This crate must never depend on storage, the network or a clock.
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]

pub mod address;
pub mod code;
pub mod genesis;
pub mod ids;
pub mod limits;
pub mod price;
pub mod signer;
pub mod tx;

pub use address::Address;
pub use code::{TxCode, TxRejection};
pub use ids::{AssetId, MarketId, VenueId};
