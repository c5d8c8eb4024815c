//! The end of a block's writes: every record the block changed, encoded.

use std::collections::BTreeSet;

use clearnode_proto::state::v1 as pb;
use clearnode_types::{Address, MarketId};
use prost::Message;

use super::{BlockContext, Engine, Write};
use crate::{codec, invariant, keys, EngineError};

impl Engine {
    /// The writes of a finished block, in key order.
    pub(super) fn block_writes(
        &mut self,
        block: &mut BlockContext,
        status_changed: &BTreeSet<Address>,
        dirty_markets: &BTreeSet<MarketId>,
    ) -> Result<Vec<Write>, EngineError> {
        let height = block.header.height;
        let mut writes: Vec<Write> = Vec::new();
        for id in &block.dirty_venues {
            if let Some(venue) = self.state.venues.get(id) {
                writes.push((
                    keys::venue(id),
                    Some(codec::venue_to_pb(venue).encode_to_vec()),
                ));
            }
        }
        // Every touched account's risk was recomputed; its account record
        // (collateral, venues, settled PnL, liquidation status) changed only
        // if something other than a price move touched it or its
        // liquidation status changed: an unchanged record is not rewritten
        // (the committed bytes are the same either way).
        let mut writer = codec::RecordWriter::default();
        for (address, before) in &block.touched {
            let record = before.held.is_some() || status_changed.contains(address);
            self.account_writes(address, record, &mut writer, &mut writes)?;
        }
        for address in status_changed {
            if !block.touched.contains_key(address) {
                self.account_writes(address, true, &mut writer, &mut writes)?;
            }
        }
        for key in &block.dirty_orders {
            let value = self
                .state
                .liquidation_orders
                .get(key)
                .map(|order| codec::order_to_pb(key, order).encode_to_vec());
            writes.push((keys::liquidation_order(&key.0, &key.1, &key.2), value));
        }
        for venue in &block.dirty_settlements {
            let balance = self
                .state
                .venue_settlements
                .get(venue)
                .copied()
                .unwrap_or_default();
            let value = codec::settlement_to_pb(venue, balance).encode_to_vec();
            writes.push((keys::settlement(venue), Some(value)));
        }
        for fund in &block.dirty_funds {
            match fund {
                None => {
                    let value = codec::fund_to_pb(&self.state.insurance_fund).encode_to_vec();
                    writes.push((keys::insurance_fund(), Some(value)));
                }
                Some(market) => {
                    let own = self
                        .state
                        .isolated_funds
                        .get(market)
                        .copied()
                        .unwrap_or_default();
                    let value = codec::isolated_fund_to_pb(market, &own).encode_to_vec();
                    writes.push((keys::isolated_fund(market), Some(value)));
                }
            }
        }
        // One record per account holds all its positions (deleted when it
        // has none left).
        for address in &block.dirty_positions {
            let value = self
                .state
                .accounts
                .get(address)
                .filter(|account| !account.positions.is_empty())
                .map(|account| codec::positions_to_pb(address, &account.positions).encode_to_vec());
            writes.push((keys::positions(address), value));
        }
        for market_id in dirty_markets {
            let market = self
                .state
                .markets
                .get(market_id)
                .ok_or_else(|| invariant(format!("position in unlisted market {market_id}")))?;
            let totals = self
                .state
                .market_totals
                .entry(market_id.clone())
                .or_default();
            let aggregate = codec::market_aggregate_to_pb(market, totals).map_err(invariant)?;
            writes.push((
                keys::market_aggregate(market_id),
                Some(aggregate.encode_to_vec()),
            ));
        }
        for id in &block.dirty_listings {
            let market = self
                .state
                .markets
                .get(id)
                .ok_or_else(|| invariant(format!("repriced unlisted market {id}")))?;
            let value = codec::market_to_pb(market).map_err(invariant)?;
            writes.push((keys::market(id), Some(value.encode_to_vec())));
        }
        for id in &block.dirty_margins {
            let market = self
                .state
                .markets
                .get(id)
                .ok_or_else(|| invariant(format!("margin of unlisted market {id}")))?;
            let value = codec::market_margin_to_pb(market).map_err(invariant)?;
            writes.push((keys::market_margin(id), Some(value.encode_to_vec())));
        }
        for id in &block.dirty_assets {
            let asset = self
                .state
                .assets
                .get(id)
                .ok_or_else(|| invariant(format!("repriced unlisted asset {id}")))?;
            let value = codec::asset_to_pb(asset).map_err(invariant)?;
            writes.push((keys::asset(id), Some(value.encode_to_vec())));
        }
        for which in &block.dirty_breakers {
            writes.push(self.breaker_write(which.as_ref())?);
        }
        for signer in &block.dirty_sequences {
            let next = self.state.next_sequence(signer);
            writes.push((
                keys::sequence(signer),
                Some(pb::Sequence { next }.encode_to_vec()),
            ));
        }
        for asset in &block.dirty_ledgers {
            let ledger = self.state.ledgers.get(asset).copied().unwrap_or_default();
            let value = codec::ledger_to_pb(asset, &ledger).map_err(invariant)?;
            writes.push((keys::ledger(asset), Some(value.encode_to_vec())));
        }
        writes.extend(self.governance_writes(block)?);
        writes.push((keys::system_aggregate(), Some(self.system_aggregate()?)));
        writes.push((
            keys::chain_info(),
            Some(codec::chain_info_to_pb(&self.state.chain).encode_to_vec()),
        ));
        writes.extend(crate::instructions::writes(
            height,
            std::mem::take(&mut block.instructions),
        ));
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(writes)
    }

    /// An account's risk record and, if `record`, its account record.
    fn account_writes(
        &self,
        address: &Address,
        record: bool,
        writer: &mut codec::RecordWriter,
        writes: &mut Vec<Write>,
    ) -> Result<(), EngineError> {
        let account = self
            .state
            .accounts
            .get(address)
            .ok_or_else(|| invariant(format!("account {address} vanished")))?;
        if record {
            let value = codec::account_to_pb(address, account).encode_to_vec();
            writes.push((keys::account(address), Some(value)));
        }
        let risk = writer.risk(address, &account.risk).map_err(invariant)?;
        writes.push((keys::risk(address), Some(risk)));
        Ok(())
    }
}
