//! Instructions for venues: what each venue must act on, written to state
//! per block in order (`instr/<venue>/<height>/<index>`), so a venue that
//! reconnects from its last seen height misses nothing and gets nothing
//! twice.

use std::collections::BTreeMap;

use clearnode_num::{Money, Price, Quantity};
use clearnode_proto::state::v1 as pb;
use clearnode_types::{Address, MarketId, VenueId};
use prost::Message;

use crate::block::Write;
use crate::keys;

/// One instruction, before it is numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instruction {
    pub(crate) venue: VenueId,
    pub(crate) kind: &'static str,
    pub(crate) account: Address,
    pub(crate) market: Option<MarketId>,
    pub(crate) quantity: Option<Quantity>,
    pub(crate) price: Option<Price>,
    pub(crate) side: i32,
    pub(crate) deadline_height: u64,
    pub(crate) counterparty: Option<Address>,
    pub(crate) amount: Option<Money>,
}

impl Instruction {
    pub(crate) fn new(venue: VenueId, kind: &'static str, account: Address) -> Self {
        Self {
            venue,
            kind,
            account,
            market: None,
            quantity: None,
            price: None,
            side: 0,
            deadline_height: 0,
            counterparty: None,
            amount: None,
        }
    }
}

/// Numbers the block's instructions per venue, in order, and encodes them.
pub(crate) fn writes(height: u64, instructions: Vec<Instruction>) -> Vec<Write> {
    let mut next_index: BTreeMap<VenueId, u32> = BTreeMap::new();
    instructions
        .into_iter()
        .map(|i| {
            let index = next_index.entry(i.venue.clone()).or_default();
            let value = pb::Instruction {
                height,
                index: *index,
                venue: i.venue.to_string(),
                kind: i.kind.to_string(),
                account: i.account.as_bytes().to_vec(),
                market: i.market.map(|m| m.to_string()).unwrap_or_default(),
                quantity: i.quantity.map(|q| q.to_string()).unwrap_or_default(),
                price: i.price.map(|p| p.to_string()).unwrap_or_default(),
                side: i.side,
                deadline_height: i.deadline_height,
                counterparty: i
                    .counterparty
                    .map(|c| c.as_bytes().to_vec())
                    .unwrap_or_default(),
                amount: i.amount.map(|a| a.to_string()).unwrap_or_default(),
            };
            let key = keys::instruction(&i.venue, height, *index);
            *index += 1;
            (key, Some(value.encode_to_vec()))
        })
        .collect()
}
