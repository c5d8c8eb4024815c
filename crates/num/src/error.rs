//! The single error type of the crate.

/// Error of a fixed-point operation. No operation of this crate panics; all
/// of them report failures through this type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumError {
    /// The exact result does not fit the 128-bit representation.
    #[error("arithmetic overflow")]
    Overflow,
    /// A division (or ratio) had a zero denominator.
    #[error("division by zero")]
    DivisionByZero,
    /// A value that must be strictly positive (a price) was zero or negative.
    #[error("value must be strictly positive")]
    NotPositive,
    /// A value that must not be negative was negative.
    #[error("value must not be negative")]
    Negative,
    /// A decimal string could not be parsed; the message says why.
    #[error("invalid decimal: {0}")]
    Parse(String),
}
