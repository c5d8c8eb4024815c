//! Client-side transaction building: a key, the chain it signs for, and its
//! next sequence. Used by tools that submit many transactions (the
//! simulator, demo venues, tests); a rejected transaction consumes no
//! sequence, so callers resynchronise from the node after a refusal.

use clearnode_proto::tx::v1 as pb;
use ed25519_dalek::SigningKey;

use crate::address::Address;
use crate::tx::sign_tx;

/// One report entry: (account, market, size, entry price), as decimals.
pub type Entry<'a> = (Address, &'a str, &'a str, &'a str);

/// A signer that numbers its transactions.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Its key.
    pub key: SigningKey,
    /// The chain it signs for.
    pub chain_id: String,
    /// The sequence of its next transaction.
    pub sequence: u64,
}

impl Signer {
    /// A signer starting at sequence 0.
    pub fn new(key: SigningKey, chain_id: &str) -> Self {
        Self {
            key,
            chain_id: chain_id.to_string(),
            sequence: 0,
        }
    }

    /// Its address.
    pub fn address(&self) -> Address {
        Address::of_public_key(&self.key.verifying_key().to_bytes())
    }

    /// Signs an action with the next sequence.
    pub fn sign(&mut self, action: pb::tx_body::Action) -> Vec<u8> {
        let body = pb::TxBody {
            chain_id: self.chain_id.clone(),
            sequence: self.sequence,
            action: Some(action),
        };
        self.sequence += 1;
        sign_tx(&self.key, &body)
    }

    /// A deposit (the signer must be the custodian to succeed).
    pub fn deposit(&mut self, account: Address, asset: &str, amount: &str) -> Vec<u8> {
        let reference = format!("wire-{}", self.sequence);
        self.sign(pb::tx_body::Action::DepositCollateral(
            pb::DepositCollateral {
                account: account.as_bytes().to_vec(),
                asset: asset.into(),
                amount: amount.into(),
                reference,
            },
        ))
    }

    /// A withdrawal by the signer's account.
    pub fn withdraw(&mut self, asset: &str, amount: &str) -> Vec<u8> {
        self.sign(pb::tx_body::Action::WithdrawCollateral(
            pb::WithdrawCollateral {
                asset: asset.into(),
                amount: amount.into(),
            },
        ))
    }

    /// Authorizes (or revokes) a venue for the signer's account.
    pub fn authorize(&mut self, venue: &str, authorized: bool) -> Vec<u8> {
        self.sign(pb::tx_body::Action::AuthorizeVenue(pb::AuthorizeVenue {
            venue_id: venue.into(),
            authorized,
        }))
    }

    /// A governance proposal (the signer must be a consensus validator).
    pub fn propose(&mut self, changes: &[crate::tx::ParamChange], description: &str) -> Vec<u8> {
        self.sign(pb::tx_body::Action::SubmitProposal(pb::SubmitProposal {
            changes: changes.iter().map(crate::tx::ParamChange::to_pb).collect(),
            description: description.into(),
        }))
    }

    /// A vote on a governance proposal.
    pub fn vote(&mut self, proposal_id: u64, approve: bool) -> Vec<u8> {
        self.sign(pb::tx_body::Action::VoteProposal(pb::VoteProposal {
            proposal_id,
            approve,
        }))
    }

    /// Registers the signer as a liquidator.
    pub fn register_liquidator(&mut self) -> Vec<u8> {
        self.sign(pb::tx_body::Action::RegisterLiquidator(
            pb::RegisterLiquidator {},
        ))
    }

    /// Takes over part of a position in liquidation.
    pub fn take_over(
        &mut self,
        account: Address,
        market: &str,
        venue: &str,
        quantity: &str,
        price: &str,
    ) -> Vec<u8> {
        self.sign(pb::tx_body::Action::TakeOverPosition(
            pb::TakeOverPosition {
                account: account.as_bytes().to_vec(),
                market: market.into(),
                venue_id: venue.into(),
                quantity: quantity.into(),
                price: price.into(),
            },
        ))
    }

    /// Moves collateral into (or out of) the signer's isolated sub-account.
    pub fn move_isolated(
        &mut self,
        market: &str,
        asset: &str,
        amount: &str,
        into_isolated: bool,
    ) -> Vec<u8> {
        self.sign(pb::tx_body::Action::MoveIsolatedMargin(
            pb::MoveIsolatedMargin {
                market: market.into(),
                asset: asset.into(),
                amount: amount.into(),
                into_isolated,
            },
        ))
    }

    /// Trips a market's breakers (`Some`) or the system's, if a condition holds.
    pub fn trip_breaker(&mut self, market: Option<&str>) -> Vec<u8> {
        self.sign(pb::tx_body::Action::TripBreaker(pb::TripBreaker {
            market: market.unwrap_or_default().into(),
        }))
    }

    /// A position report (the signer must be the venue's key to succeed).
    pub fn report(&mut self, venue: &str, entries: &[Entry<'_>]) -> Vec<u8> {
        self.report_acknowledging(venue, entries, 0)
    }

    /// A position report that also acknowledges the venue's instructions up
    /// to `acknowledged_height` (no entries: it only acknowledges).
    pub fn report_acknowledging(
        &mut self,
        venue: &str,
        entries: &[Entry<'_>],
        acknowledged_height: u64,
    ) -> Vec<u8> {
        self.sign(pb::tx_body::Action::PositionReport(pb::PositionReport {
            venue_id: venue.into(),
            acknowledged_height,
            entries: entries
                .iter()
                .map(|(account, market, size, price)| pb::PositionEntry {
                    account: account.as_bytes().to_vec(),
                    market: (*market).into(),
                    size: (*size).into(),
                    entry_price: (*price).into(),
                })
                .collect(),
        }))
    }
}
