//! CheckTx and proposal filtering.
//!
//! The mempool keeps each signer's next expected sequence, so a signer may
//! queue several transactions in one block; Commit clears it and CometBFT's
//! recheck rebuilds it against the new state (sequences only: see [`recheck`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use clearnode_engine::Engine;
use clearnode_types::tx::{verify_tx_shared, VerifiedTx};
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
            accepted()
        }
        Err(rejection) => refused(rejection.code, rejection.log),
    }
}

/// CheckTx of a transaction already in the mempool (`verified`: its stateless checks, from
/// memory), after a block: it passed every check
/// before, its bytes (so its stateless checks) cannot have changed, and a block may only have
/// used its sequence. So only the sequence is checked again; a stateful check it would now
/// fail makes it fail in FinalizeBlock with a code instead, never applied twice (FinalizeBlock
/// checks everything).
pub fn recheck(
    engine: &Engine,
    pending: &mut BTreeMap<Address, u64>,
    verified: &VerifiedTx,
) -> ResponseCheckTx {
    let signer = verified.signer_address;
    let expected = pending
        .get(&signer)
        .copied()
        .unwrap_or_else(|| engine.state().next_sequence(&signer));
    if verified.sequence != expected {
        return refused(
            TxCode::WrongSequence,
            format!(
                "sequence {} of signer {signer} is not the expected {expected}",
                verified.sequence
            ),
        );
    }
    pending.insert(signer, expected.saturating_add(1));
    accepted()
}

fn accepted() -> ResponseCheckTx {
    ResponseCheckTx {
        code: 0,
        gas_wanted: 1,
        ..Default::default()
    }
}

/// The proposer keeps well-formed transactions in mempool order, up to the
/// byte limit.
pub fn select_for_proposal(chain_id: &str, txs: Vec<Bytes>, max_bytes: usize) -> Vec<Bytes> {
    let mut total = 0usize;
    let mut selected = Vec::with_capacity(txs.len());
    for tx in txs {
        if verify_tx_shared(&tx, chain_id).is_err() {
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
    txs.iter().all(|tx| verify_tx_shared(tx, chain_id).is_ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test fixtures

    use clearnode_engine::testkit::{genesis, key, Signer, CHAIN_ID};

    use clearnode_types::tx::verify_tx;

    use super::*;

    fn recheck(
        engine: &Engine,
        pending: &mut BTreeMap<Address, u64>,
        tx: &[u8],
    ) -> ResponseCheckTx {
        match verify_tx(tx, engine.chain_id()) {
            Ok(verified) => super::recheck(engine, pending, &verified),
            Err(rejection) => refused(rejection.code, rejection.log),
        }
    }

    #[test]
    fn a_recheck_checks_the_sequence_only() {
        let (engine, _) = Engine::init_chain(CHAIN_ID, &genesis(), 0, 0).unwrap();
        let mut trader = Signer::new(key(1));
        // Withdrawing what was never deposited fails the stateful check...
        let first = trader.withdraw("USDC", "5");
        let second = trader.withdraw("USDC", "5");
        let mut pending = BTreeMap::new();
        assert_eq!(
            check(&engine, &mut pending, &first).code,
            TxCode::InsufficientCollateral.number()
        );
        // ...which a recheck (after a block, with the mempool's view rebuilt) does not repeat:
        // it may still fail in FinalizeBlock, with its code.
        assert_eq!(recheck(&engine, &mut pending, &first).code, 0);
        assert_eq!(pending.get(&trader.address()), Some(&1));
        assert_eq!(recheck(&engine, &mut pending, &second).code, 0);
        assert_eq!(
            recheck(&engine, &mut pending, &second).code,
            TxCode::WrongSequence.number()
        );
        let mut fresh = BTreeMap::new();
        assert_eq!(
            recheck(&engine, &mut fresh, &second).code,
            TxCode::WrongSequence.number()
        );
        assert_eq!(
            recheck(&engine, &mut fresh, b"not a tx").code,
            TxCode::MalformedTx.number()
        );
    }
}
