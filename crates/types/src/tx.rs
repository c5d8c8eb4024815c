//! Stateless transaction checks and signing.
//!
//! [`verify_tx`] turns untrusted bytes into a [`VerifiedTx`] in a fixed order
//! (size, envelope, key, signature, body, chain id, action, fields), so the
//! same bad transaction always gets the same code. What needs state (the
//! sequence, who may sign, what is listed) is checked by the engine.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use clearnode_num::{Price, Quantity};
use clearnode_proto::tx::v1 as pb;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;
use sha2::{Digest, Sha256};

pub use verify_cache::remember_verified_txs;

use crate::address::Address;
use crate::code::{TxCode, TxRejection};
use crate::ids::{AssetId, MarketId, VenueId};
use crate::limits::{
    DECIMAL_BYTES_MAX, DEPOSIT_REFERENCE_BYTES_MAX, PRICE_UNITS_MAX, QUANTITY_UNITS_MAX,
    REPORT_ENTRIES_MAX, TX_BYTES_MAX,
};

/// Domain separator prefixed to the body before signing.
pub const SIGN_DOMAIN: &[u8] = b"clearnode/tx/v1\n";

/// The bytes an ed25519 signature covers.
pub fn sign_bytes(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SIGN_DOMAIN.len() + body.len());
    bytes.extend_from_slice(SIGN_DOMAIN);
    bytes.extend_from_slice(body);
    bytes
}

/// The sha256 of the transaction bytes (CometBFT's tx hash).
pub fn tx_hash(tx_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(tx_bytes).into()
}

/// Encodes and signs a body: the client side of [`verify_tx`].
pub fn sign_tx(key: &SigningKey, body: &pb::TxBody) -> Vec<u8> {
    let body = body.encode_to_vec();
    let signature = key.sign(&sign_bytes(&body));
    pb::Tx {
        body,
        signer_public_key: key.verifying_key().to_bytes().to_vec(),
        signature: signature.to_bytes().to_vec(),
    }
    .encode_to_vec()
}

/// A transaction whose bytes, bounds and signature have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTx {
    /// The signer's ed25519 public key.
    pub signer: [u8; 32],
    /// The signer's address.
    pub signer_address: Address,
    /// The signer's sequence this tx consumes.
    pub sequence: u64,
    /// What it does.
    pub action: Action,
}

/// A checked action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Credit collateral (custodian).
    Deposit(Deposit),
    /// Release collateral (account).
    Withdraw(Withdraw),
    /// Let a venue report for the account, or stop it (account).
    AuthorizeVenue(AuthorizeVenue),
    /// A venue's batch of position snapshots (venue).
    PositionReport(PositionReport),
    /// The signer registers as a liquidator (account).
    RegisterLiquidator,
    /// A liquidator takes over part of a position in liquidation (liquidator).
    TakeOver(TakeOver),
    /// Collateral into or out of the signer's isolated sub-account (account).
    MoveIsolatedMargin(MoveIsolatedMargin),
    /// Trip a breaker whose condition holds (a market's, or the system's).
    TripBreaker(Option<MarketId>),
    /// A proposal to change risk parameters (validator).
    SubmitProposal(SubmitProposal),
    /// A vote on a proposal (validator).
    VoteProposal(VoteProposal),
}

impl Action {
    /// Short name for logs and events.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Deposit(_) => "deposit_collateral",
            Action::Withdraw(_) => "withdraw_collateral",
            Action::AuthorizeVenue(_) => "authorize_venue",
            Action::PositionReport(_) => "position_report",
            Action::RegisterLiquidator => "register_liquidator",
            Action::TakeOver(_) => "take_over_position",
            Action::MoveIsolatedMargin(_) => "move_isolated_margin",
            Action::TripBreaker(_) => "trip_breaker",
            Action::SubmitProposal(_) => "submit_proposal",
            Action::VoteProposal(_) => "vote_proposal",
        }
    }
}

/// A checked deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    /// Credited account.
    pub account: Address,
    /// Asset.
    pub asset: AssetId,
    /// Positive amount.
    pub amount: Quantity,
    /// Custodian's reference.
    pub reference: String,
}

/// A checked withdrawal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdraw {
    /// Asset.
    pub asset: AssetId,
    /// Positive amount.
    pub amount: Quantity,
}

/// A checked venue authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeVenue {
    /// Venue.
    pub venue: VenueId,
    /// Grant (true) or revoke (false).
    pub authorized: bool,
}

/// A checked move of collateral between an account and its isolated
/// sub-account for one market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveIsolatedMargin {
    /// The sub-account's market.
    pub market: MarketId,
    /// Asset.
    pub asset: AssetId,
    /// Positive amount.
    pub amount: Quantity,
    /// Owner to sub-account (true) or back (false).
    pub into_isolated: bool,
}

/// A checked position report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionReport {
    /// Reporting venue.
    pub venue: VenueId,
    /// Entries, at most one per (account, market); none when the report
    /// only acknowledges.
    pub entries: Vec<ReportEntry>,
    /// Instructions acted on up to and including this height (0: none new).
    pub acknowledged_height: u64,
}

/// A checked takeover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeOver {
    /// The account in liquidation.
    pub account: Address,
    /// Market.
    pub market: MarketId,
    /// Venue holding the position.
    pub venue: VenueId,
    /// Positive quantity taken over.
    pub quantity: Quantity,
    /// Price paid (long) or received (short) by the liquidator.
    pub price: Price,
}

/// One position snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEntry {
    /// Account.
    pub account: Address,
    /// Market.
    pub market: MarketId,
    /// Signed size; zero closes the position.
    pub size: Quantity,
    /// Average entry price; `None` exactly when the size is zero.
    pub entry_price: Option<Price>,
}

fn reject(code: TxCode, log: impl Into<String>) -> TxRejection {
    TxRejection::new(code, log)
}

/// Checks untrusted transaction bytes statelessly. A pure function of its arguments; once the
/// node enables [`remember_verified_txs`], repeats of bytes that verified skip the work.
pub fn verify_tx(bytes: &[u8], chain_id: &str) -> Result<VerifiedTx, TxRejection> {
    verify_tx_shared(bytes, chain_id).map(Arc::unwrap_or_clone)
}

/// [`verify_tx`] without copying a remembered result out of the memory.
pub fn verify_tx_shared(bytes: &[u8], chain_id: &str) -> Result<Arc<VerifiedTx>, TxRejection> {
    if bytes.len() > TX_BYTES_MAX {
        return verify_tx_once(bytes, chain_id).map(Arc::new);
    }
    verify_cache::verify_remembered(bytes, chain_id, || verify_tx_once(bytes, chain_id))
}

fn verify_tx_once(bytes: &[u8], chain_id: &str) -> Result<VerifiedTx, TxRejection> {
    if bytes.len() > TX_BYTES_MAX {
        return Err(reject(
            TxCode::TxTooLarge,
            format!("tx is {} bytes, at most {TX_BYTES_MAX}", bytes.len()),
        ));
    }
    let envelope = pb::Tx::decode(bytes)
        .map_err(|e| reject(TxCode::MalformedTx, format!("not a clearnode Tx: {e}")))?;
    let signer = <[u8; 32]>::try_from(envelope.signer_public_key.as_slice()).map_err(|_| {
        reject(
            TxCode::InvalidPublicKey,
            "signer public key is not 32 bytes",
        )
    })?;
    let verifying_key = VerifyingKey::from_bytes(&signer)
        .map_err(|_| reject(TxCode::InvalidPublicKey, "signer public key is not ed25519"))?;
    let signature = Signature::from_slice(&envelope.signature)
        .map_err(|_| reject(TxCode::InvalidSignature, "signature is not 64 bytes"))?;
    verifying_key
        .verify_strict(&sign_bytes(&envelope.body), &signature)
        .map_err(|_| reject(TxCode::InvalidSignature, "signature does not verify"))?;
    let body = pb::TxBody::decode(envelope.body.as_slice())
        .map_err(|e| reject(TxCode::MalformedBody, format!("not a TxBody: {e}")))?;
    if body.chain_id != chain_id {
        return Err(reject(
            TxCode::WrongChainId,
            format!("signed for chain {:?}, this is {chain_id:?}", body.chain_id),
        ));
    }
    let action = body
        .action
        .ok_or_else(|| reject(TxCode::MissingAction, "body has no action"))?;
    Ok(VerifiedTx {
        signer,
        signer_address: Address::of_public_key(&signer),
        sequence: body.sequence,
        action: check_action(action)?,
    })
}

fn check_action(action: pb::tx_body::Action) -> Result<Action, TxRejection> {
    use pb::tx_body::Action as A;
    Ok(match action {
        A::DepositCollateral(d) => {
            if d.reference.len() > DEPOSIT_REFERENCE_BYTES_MAX {
                return Err(reject(
                    TxCode::InvalidField,
                    format!("reference longer than {DEPOSIT_REFERENCE_BYTES_MAX} bytes"),
                ));
            }
            Action::Deposit(Deposit {
                account: address_field("account", &d.account)?,
                asset: id_field("asset", &d.asset)?,
                amount: positive_amount("amount", &d.amount)?,
                reference: d.reference,
            })
        }
        A::WithdrawCollateral(w) => Action::Withdraw(Withdraw {
            asset: id_field("asset", &w.asset)?,
            amount: positive_amount("amount", &w.amount)?,
        }),
        A::AuthorizeVenue(a) => Action::AuthorizeVenue(AuthorizeVenue {
            venue: id_field("venue_id", &a.venue_id)?,
            authorized: a.authorized,
        }),
        A::PositionReport(report) => Action::PositionReport(check_report(report)?),
        A::RegisterLiquidator(_) => Action::RegisterLiquidator,
        A::MoveIsolatedMargin(m) => Action::MoveIsolatedMargin(MoveIsolatedMargin {
            market: id_field("market", &m.market)?,
            asset: id_field("asset", &m.asset)?,
            amount: positive_amount("amount", &m.amount)?,
            into_isolated: m.into_isolated,
        }),
        A::TripBreaker(t) if t.market.is_empty() => Action::TripBreaker(None),
        A::TripBreaker(t) => Action::TripBreaker(Some(id_field("market", &t.market)?)),
        A::TakeOverPosition(t) => Action::TakeOver(TakeOver {
            account: address_field("account", &t.account)?,
            market: id_field("market", &t.market)?,
            venue: id_field("venue_id", &t.venue_id)?,
            quantity: positive_amount("quantity", &t.quantity)?,
            price: bounded_price("price", &t.price)?,
        }),
        A::SubmitProposal(p) => Action::SubmitProposal(governance::check_proposal(p)?),
        A::VoteProposal(v) => Action::VoteProposal(VoteProposal {
            proposal_id: v.proposal_id,
            approve: v.approve,
        }),
    })
}

fn check_report(report: pb::PositionReport) -> Result<PositionReport, TxRejection> {
    let venue = id_field("venue_id", &report.venue_id)?;
    let count = report.entries.len();
    let acknowledges = report.acknowledged_height > 0;
    if (count == 0 && !acknowledges) || count > REPORT_ENTRIES_MAX {
        return Err(reject(
            TxCode::TooManyEntries,
            format!(
                "a report has 1 to {REPORT_ENTRIES_MAX} entries (0 if it acknowledges), got {count}"
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut entries = Vec::with_capacity(count);
    for (index, entry) in report.entries.into_iter().enumerate() {
        let checked = check_entry(entry).map_err(|e| TxRejection {
            log: format!("entry {index}: {}", e.log),
            ..e
        })?;
        if !seen.insert((checked.account, checked.market.clone())) {
            return Err(reject(
                TxCode::DuplicateEntry,
                format!(
                    "entry {index}: account {} market {} reported twice",
                    checked.account, checked.market
                ),
            ));
        }
        entries.push(checked);
    }
    Ok(PositionReport {
        venue,
        entries,
        acknowledged_height: report.acknowledged_height,
    })
}

fn check_entry(entry: pb::PositionEntry) -> Result<ReportEntry, TxRejection> {
    let account = address_field("account", &entry.account)?;
    let market = id_field("market", &entry.market)?;
    let size = bounded_quantity("size", &entry.size)?;
    let entry_price = if size.is_zero() {
        None
    } else {
        Some(bounded_price("entry_price", &entry.entry_price)?)
    };
    Ok(ReportEntry {
        account,
        market,
        size,
        entry_price,
    })
}

fn address_field(name: &str, bytes: &[u8]) -> Result<Address, TxRejection> {
    Address::from_slice(bytes).ok_or_else(|| {
        reject(
            TxCode::InvalidField,
            format!(
                "{name} must be a 20-byte address, got {} bytes",
                bytes.len()
            ),
        )
    })
}

fn id_field<T: FromStr<Err = crate::ids::IdError>>(
    name: &str,
    text: &str,
) -> Result<T, TxRejection> {
    T::from_str(text).map_err(|e| reject(TxCode::InvalidField, format!("{name}: {e}")))
}

fn decimal<T: FromStr>(name: &str, text: &str) -> Result<T, TxRejection>
where
    T::Err: std::fmt::Display,
{
    if text.len() > DECIMAL_BYTES_MAX {
        return Err(reject(
            TxCode::InvalidAmount,
            format!("{name} is longer than {DECIMAL_BYTES_MAX} characters"),
        ));
    }
    T::from_str(text).map_err(|e| reject(TxCode::InvalidAmount, format!("{name} {text:?}: {e}")))
}

/// A quantity within +-`QUANTITY_UNITS_MAX`.
pub fn bounded_quantity(name: &str, text: &str) -> Result<Quantity, TxRejection> {
    let quantity: Quantity = decimal(name, text)?;
    if quantity
        .abs()
        .map_or(true, |q| q > Quantity::from_units(QUANTITY_UNITS_MAX))
    {
        return Err(reject(
            TxCode::InvalidAmount,
            format!("{name} {text} exceeds {QUANTITY_UNITS_MAX} units"),
        ));
    }
    Ok(quantity)
}

/// A price within (0, `PRICE_UNITS_MAX`].
pub fn bounded_price(name: &str, text: &str) -> Result<Price, TxRejection> {
    let price: Price = decimal(name, text)?;
    if price > price_max() {
        return Err(reject(
            TxCode::InvalidAmount,
            format!("{name} {text} exceeds {PRICE_UNITS_MAX} USD"),
        ));
    }
    Ok(price)
}

/// `PRICE_UNITS_MAX` as a price.
pub fn price_max() -> Price {
    let raw = i128::from(PRICE_UNITS_MAX) * 10i128.pow(clearnode_num::PRICE_DECIMALS);
    Price::from_raw(raw).unwrap_or_else(|_| unreachable!("a positive constant"))
}

fn positive_amount(name: &str, text: &str) -> Result<Quantity, TxRejection> {
    let amount = bounded_quantity(name, text)?;
    if !amount.is_positive() {
        return Err(reject(
            TxCode::InvalidAmount,
            format!("{name} must be positive, got {text}"),
        ));
    }
    Ok(amount)
}

mod governance;
pub use governance::{
    ParamChange, SubmitProposal, VoteProposal, PROPOSAL_CHANGES_MAX, PROPOSAL_DESCRIPTION_BYTES_MAX,
};

#[cfg(test)]
mod tests;
mod verify_cache;
