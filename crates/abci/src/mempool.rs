//! CheckTx and proposal filtering.
//!
//! The mempool keeps each signer's next expected sequence, so a signer may
//! queue several transactions in one block; Commit clears it and CometBFT's
//! recheck rebuilds it against the new state.

use std::collections::BTreeMap;

use bytes::Bytes;
use clearnode_engine::Engine;
use clearnode_types::tx::verify_tx;
use clearnode_types::{Address, TxCode};
use tendermint_proto::v0_38::abci::ResponseCheckTx;

use crate::convert::CODESPACE;

/// A CheckTx refusal.
pub fn refused(code: TxCode, log: impl Into<String>) -> ResponseCheckTx {
    ResponseCheckTx {
        code: code.number(),
        log: log.into(),
        info: code.name().to_string(),
        codespace: CODESPACE.to_string(),
        ..Default::default()
    }
}

/// CheckTx: stateless and stateful checks; on success the signer's mempool
/// sequence advances.
pub fn check(engine: &Engine, pending: &mut BTreeMap<Address, u64>, tx: &[u8]) -> ResponseCheckTx {
    match engine.check_tx(tx, pending) {
        Ok(verified) => {
            pending.insert(verified.signer_address, verified.sequence.saturating_add(1));
            ResponseCheckTx {
                code: 0,
                gas_wanted: 1,
                ..Default::default()
            }
        }
        Err(rejection) => refused(rejection.code, rejection.log),
    }
}

/// The proposer keeps well-formed transactions in mempool order, up to the
/// byte limit.
pub fn select_for_proposal(chain_id: &str, txs: Vec<Bytes>, max_bytes: usize) -> Vec<Bytes> {
    let mut total = 0usize;
    let mut selected = Vec::with_capacity(txs.len());
    for tx in txs {
        if verify_tx(&tx, chain_id).is_err() {
            continue;
        }
        let Some(next_total) = total.checked_add(tx.len()).filter(|t| *t <= max_bytes) else {
            break;
        };
        total = next_total;
        selected.push(tx);
    }
    selected
}

/// A proposal is rejected only for transactions no honest proposer would
/// include: ones that fail the stateless checks. Stateful failures are
/// results of FinalizeBlock, like on every node.
pub fn proposal_is_well_formed(chain_id: &str, txs: &[Bytes]) -> bool {
    txs.iter().all(|tx| verify_tx(tx, chain_id).is_ok())
}
