//! Fixed-point numbers for the clearnode deterministic state machine.
//!
//! # Role
//!
//! Every amount that enters consensus state — position sizes, collateral,
//! prices, equity, PnL, margin requirements, haircuts, leverage — is one of
//! the four fixed-point types defined here:
//!
//! | type         | raw unit                         | decimals            |
//! |--------------|----------------------------------|---------------------|
//! | [`Quantity`] | nano-units of an asset/contract  | [`QUANTITY_DECIMALS`] (9) |
//! | [`Price`]    | nano-USD per whole unit          | [`PRICE_DECIMALS`] (9)    |
//! | [`Money`]    | micro-USD                        | [`MONEY_DECIMALS`] (6)    |
//! | [`Ratio`]    | parts per million (1.0 = 10^6)   | [`RATIO_DECIMALS`] (6)    |
//!
//! All of them wrap an `i128` "raw" integer. Arithmetic between them goes
//! through [`mul_div`], which computes `a * b / d` with an exact 256-bit
//! intermediate and rounds in an explicitly named [`Rounding`] direction.
//!
//! ```
//! use clearnode_num::{Money, Price, Quantity, Ratio, Rounding};
//!
//! # fn main() -> Result<(), clearnode_num::NumError> {
//! let size: Quantity = "-1.5".parse()?; // short 1.5 units
//! let entry: Price = "64250.5".parse()?;
//! let mark = Price::from_units(64_000)?;
//! let notional = size.notional(mark, Rounding::Floor)?;
//! assert_eq!(notional.to_string(), "-96000");
//! let pnl = size.pnl(entry, mark, Rounding::Floor)?;
//! assert_eq!(pnl.to_string(), "375.75");
//! let margin = notional.abs()?.mul_ratio(Ratio::from_ppm(50_000), Rounding::Ceil)?;
//! assert_eq!(margin, Money::from_units(4_800));
//! # Ok(())
//! # }
//! ```
//!
//! # Invariants
//!
//! * Every operation is a pure function of its inputs: identical inputs give
//!   bit-identical outputs on every machine, so all validators agree.
//! * No operation panics on any input. Every fallible operation (overflow,
//!   division by zero, a non-positive price, malformed text) returns
//!   `Err(`[`NumError`]`)`.
//! * Every inexact result is rounded in a direction chosen by the caller
//!   ([`Rounding::Floor`] or [`Rounding::Ceil`]); nothing rounds implicitly.
//! * A [`Price`] is always strictly positive; the constructors enforce it.
//! * The textual form (`Display`, `FromStr`, serde) is exact decimal with no
//!   exponent and no trailing zeros, and round-trips for every raw value.
//!
//! # Never
//!
//! This crate must never depend on clocks, I/O, randomness, hash-map
//! iteration order or binary floating point. Any of those would make
//! the state machine non-deterministic.

#![forbid(unsafe_code)]
#![deny(
    clippy::float_arithmetic,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

#[macro_use]
mod macros;

mod decimal;
mod error;
mod money;
mod price;
mod quantity;
mod ratio;
mod rounding;
mod wide;

#[cfg(test)]
mod test_support;

pub use error::NumError;
pub use money::Money;
pub use price::Price;
pub use quantity::Quantity;
pub use ratio::Ratio;
pub use rounding::{mul_div, Rounding};

/// Number of decimals of a [`Quantity`]: its raw value is in nano-units of
/// the base asset or contract.
pub const QUANTITY_DECIMALS: u32 = 9;
/// Number of decimals of a [`Price`]: its raw value is in nano-USD per whole
/// unit of the base asset or contract.
pub const PRICE_DECIMALS: u32 = 9;
/// Number of decimals of [`Money`]: its raw value is in micro-USD.
pub const MONEY_DECIMALS: u32 = 6;
/// Number of decimals of a [`Ratio`]: its raw value is in parts per million
/// (`1_000_000` = 1.0).
pub const RATIO_DECIMALS: u32 = 6;

/// Raw value of one whole unit of a [`Quantity`] (10^9).
pub const QUANTITY_SCALE: i128 = 10i128.pow(QUANTITY_DECIMALS);
/// Raw value of one USD per unit as a [`Price`] (10^9).
pub const PRICE_SCALE: i128 = 10i128.pow(PRICE_DECIMALS);
/// Raw value of one USD as [`Money`] (10^6).
pub const MONEY_SCALE: i128 = 10i128.pow(MONEY_DECIMALS);
/// Raw value of 1.0 as a [`Ratio`] (10^6).
pub const RATIO_SCALE: i128 = 10i128.pow(RATIO_DECIMALS);
