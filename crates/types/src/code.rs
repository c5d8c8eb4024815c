//! Stable, numbered rejection codes.
//!
//! A code is part of the consensus result (CometBFT hashes it into the next
//! header), so numbers are never reused or renumbered. Ranges: 1xx the bytes
//! themselves, 2xx who may do it, 3xx what the state allows, 4xx governance.
//! Checks run in that order, so a transaction that is wrong in several ways
//! always gets the same code.

use std::fmt;

/// Result code of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum TxCode {
    /// Accepted.
    Ok = 0,
    /// The bytes are not a `Tx`.
    MalformedTx = 101,
    /// The transaction is larger than `TX_BYTES_MAX`.
    TxTooLarge = 102,
    /// The body is not a `TxBody`.
    MalformedBody = 103,
    /// The body names another chain.
    WrongChainId = 104,
    /// The signer's public key is not a valid ed25519 key.
    InvalidPublicKey = 105,
    /// The signature does not verify.
    InvalidSignature = 106,
    /// The body carries no action.
    MissingAction = 107,
    /// A field is malformed (id, address, reference).
    InvalidField = 108,
    /// A decimal amount, size or price is malformed or out of range.
    InvalidAmount = 109,
    /// A report has no entries or more than allowed.
    TooManyEntries = 110,
    /// A report names the same account and market twice.
    DuplicateEntry = 111,
    /// The sequence is not the signer's next one (a replay, or a gap).
    WrongSequence = 201,
    /// A deposit not signed by the custodian.
    NotCustodian = 202,
    /// The venue is not registered.
    UnknownVenue = 203,
    /// A report not signed by the venue's registered key.
    NotVenueSigner = 204,
    /// The venue is registered but not active.
    VenueInactive = 205,
    /// The account has not authorized the reporting venue.
    VenueNotAuthorized = 206,
    /// The venue left instructions unacknowledged past their deadline; only
    /// a report acknowledging everything is accepted.
    VenueDelinquent = 207,
    /// An acknowledgement of a height not yet committed.
    AcknowledgementAhead = 208,
    /// The market is not listed.
    UnknownMarket = 301,
    /// The collateral asset is not listed.
    UnknownAsset = 302,
    /// A withdrawal larger than the balance.
    InsufficientCollateral = 303,
    /// A withdrawal that would leave the account below initial margin.
    BelowInitialMargin = 304,
    /// A position larger than the market allows.
    PositionTooLarge = 306,
    /// A deposit that would take a balance above `BALANCE_UNITS_MAX`.
    BalanceTooLarge = 307,
    /// A report that increases the net exposure of an account in margin
    /// call (or worse): such accounts are reduce-only.
    ReduceOnly = 308,
    /// A report that adds exposure the account's equity does not cover at
    /// the initial margin that applies to new risk.
    InsufficientInitialMargin = 309,
    /// A takeover by an account not registered as a liquidator.
    NotLiquidator = 310,
    /// A takeover of a position with no open liquidation order.
    NoLiquidationOrder = 311,
    /// A takeover price outside the order's band.
    OutsidePriceBand = 312,
    /// A takeover of more than the order offers.
    QuantityAboveOrder = 313,
    /// A position in an isolated market for an account that is not its
    /// isolated sub-account, or an isolated sub-account outside its market.
    IsolationMismatch = 314,
    /// A report that adds exposure in a market whose price left its band
    /// (limit state) or while the system breaker is tripped: reduce-only.
    BreakerReduceOnly = 315,
    /// A report, withdrawal or takeover touching a paused or halted market.
    MarketPaused = 316,
    /// The action needs a valid oracle price and the market's is stale, too
    /// volatile or quoted by too few validators.
    OracleInvalid = 317,
    /// A report that takes a market's or a venue's open interest above its cap.
    OpenInterestCap = 318,
    /// A TripBreaker whose condition does not hold (or is already tripped).
    BreakerConditionFalse = 319,
    /// A governance transaction not signed by a consensus validator's key.
    NotValidator = 401,
    /// A vote on a proposal that does not exist.
    UnknownProposal = 402,
    /// A vote on a proposal whose voting window has closed.
    ProposalClosed = 403,
    /// A second vote by the same validator on one proposal.
    AlreadyVoted = 404,
    /// A parameter change that does not apply to the state (unknown or
    /// already listed target, a value out of range).
    InvalidChange = 405,
    /// A proposal by a validator that already has the most open proposals
    /// one validator may have.
    TooManyOpenProposals = 407,
}

impl TxCode {
    /// Every code, for tables and docs.
    pub const ALL: [TxCode; 44] = [
        TxCode::Ok,
        TxCode::MalformedTx,
        TxCode::TxTooLarge,
        TxCode::MalformedBody,
        TxCode::WrongChainId,
        TxCode::InvalidPublicKey,
        TxCode::InvalidSignature,
        TxCode::MissingAction,
        TxCode::InvalidField,
        TxCode::InvalidAmount,
        TxCode::TooManyEntries,
        TxCode::DuplicateEntry,
        TxCode::WrongSequence,
        TxCode::NotCustodian,
        TxCode::UnknownVenue,
        TxCode::NotVenueSigner,
        TxCode::VenueInactive,
        TxCode::VenueNotAuthorized,
        TxCode::VenueDelinquent,
        TxCode::AcknowledgementAhead,
        TxCode::UnknownMarket,
        TxCode::UnknownAsset,
        TxCode::InsufficientCollateral,
        TxCode::BelowInitialMargin,
        TxCode::PositionTooLarge,
        TxCode::BalanceTooLarge,
        TxCode::ReduceOnly,
        TxCode::InsufficientInitialMargin,
        TxCode::NotLiquidator,
        TxCode::NoLiquidationOrder,
        TxCode::OutsidePriceBand,
        TxCode::QuantityAboveOrder,
        TxCode::IsolationMismatch,
        TxCode::BreakerReduceOnly,
        TxCode::MarketPaused,
        TxCode::OracleInvalid,
        TxCode::OpenInterestCap,
        TxCode::BreakerConditionFalse,
        TxCode::NotValidator,
        TxCode::UnknownProposal,
        TxCode::ProposalClosed,
        TxCode::AlreadyVoted,
        TxCode::InvalidChange,
        TxCode::TooManyOpenProposals,
    ];

    /// The number on the wire.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The code with that number, if any.
    pub fn from_number(number: u32) -> Option<TxCode> {
        Self::ALL.into_iter().find(|code| code.number() == number)
    }

    /// A stable snake_case name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            TxCode::Ok => "ok",
            TxCode::MalformedTx => "malformed_tx",
            TxCode::TxTooLarge => "tx_too_large",
            TxCode::MalformedBody => "malformed_body",
            TxCode::WrongChainId => "wrong_chain_id",
            TxCode::InvalidPublicKey => "invalid_public_key",
            TxCode::InvalidSignature => "invalid_signature",
            TxCode::MissingAction => "missing_action",
            TxCode::InvalidField => "invalid_field",
            TxCode::InvalidAmount => "invalid_amount",
            TxCode::TooManyEntries => "too_many_entries",
            TxCode::DuplicateEntry => "duplicate_entry",
            TxCode::WrongSequence => "wrong_sequence",
            TxCode::NotCustodian => "not_custodian",
            TxCode::UnknownVenue => "unknown_venue",
            TxCode::NotVenueSigner => "not_venue_signer",
            TxCode::VenueInactive => "venue_inactive",
            TxCode::VenueNotAuthorized => "venue_not_authorized",
            TxCode::VenueDelinquent => "venue_delinquent",
            TxCode::AcknowledgementAhead => "acknowledgement_ahead",
            TxCode::UnknownMarket => "unknown_market",
            TxCode::UnknownAsset => "unknown_asset",
            TxCode::InsufficientCollateral => "insufficient_collateral",
            TxCode::BelowInitialMargin => "below_initial_margin",
            TxCode::PositionTooLarge => "position_too_large",
            TxCode::BalanceTooLarge => "balance_too_large",
            TxCode::ReduceOnly => "reduce_only",
            TxCode::InsufficientInitialMargin => "insufficient_initial_margin",
            TxCode::NotLiquidator => "not_liquidator",
            TxCode::NoLiquidationOrder => "no_liquidation_order",
            TxCode::OutsidePriceBand => "outside_price_band",
            TxCode::QuantityAboveOrder => "quantity_above_order",
            TxCode::IsolationMismatch => "isolation_mismatch",
            TxCode::BreakerReduceOnly => "breaker_reduce_only",
            TxCode::MarketPaused => "market_paused",
            TxCode::OracleInvalid => "oracle_invalid",
            TxCode::OpenInterestCap => "open_interest_cap",
            TxCode::BreakerConditionFalse => "breaker_condition_false",
            TxCode::NotValidator => "not_validator",
            TxCode::UnknownProposal => "unknown_proposal",
            TxCode::ProposalClosed => "proposal_closed",
            TxCode::AlreadyVoted => "already_voted",
            TxCode::InvalidChange => "invalid_change",
            TxCode::TooManyOpenProposals => "too_many_open_proposals",
        }
    }
}

impl fmt::Display for TxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.number(), self.name())
    }
}

/// A refused transaction: a stable code and a human explanation. The
/// explanation goes to the log, which consensus does not hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("code {code}: {log}")]
pub struct TxRejection {
    /// The stable code.
    pub code: TxCode,
    /// What was wrong, for the submitter.
    pub log: String,
}

impl TxRejection {
    /// A rejection with a message.
    pub fn new(code: TxCode, log: impl Into<String>) -> Self {
        Self {
            code,
            log: log.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_round_trip() {
        let mut numbers: Vec<u32> = TxCode::ALL.iter().map(|c| c.number()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), TxCode::ALL.len());
        for code in TxCode::ALL {
            assert_eq!(TxCode::from_number(code.number()), Some(code));
        }
    }

    #[test]
    fn numbers_are_pinned() {
        // Codes are consensus-visible: changing one is a breaking change.
        assert_eq!(TxCode::MalformedTx.number(), 101);
        assert_eq!(TxCode::InvalidSignature.number(), 106);
        assert_eq!(TxCode::WrongSequence.number(), 201);
        assert_eq!(TxCode::VenueNotAuthorized.number(), 206);
        assert_eq!(TxCode::VenueDelinquent.number(), 207);
        assert_eq!(TxCode::AcknowledgementAhead.number(), 208);
        assert_eq!(TxCode::UnknownMarket.number(), 301);
        assert_eq!(TxCode::BelowInitialMargin.number(), 304);
        assert_eq!(TxCode::NotValidator.number(), 401);
        assert_eq!(TxCode::MarketPaused.number(), 316);
    }
}
