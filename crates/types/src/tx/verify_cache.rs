//! A bounded, process-wide memory of transactions that passed [`verify_tx`].
//!
//! A transaction is verified up to five times on a proposer (gRPC submit, CheckTx,
//! PrepareProposal, ProcessProposal, FinalizeBlock), each time decoding, checking the ed25519
//! signature over its whole body and parsing every report entry (~0.8 ms for 500 entries). With
//! the memory enabled ([`remember_verified_txs`], done by the node), a repeat costs one SHA-256
//! of the bytes and a clone of the result.
//!
//! Deterministic by construction: [`verify_tx`] is a pure function of (bytes, chain id), the
//! memory is keyed by a hash of exactly those, and only successes are kept, so a hit returns
//! what verifying again would return. What is remembered, and when it is forgotten, changes
//! the time a check takes, never its outcome.
//!
//! [`verify_tx`]: super::verify_tx

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sha2::{Digest, Sha256};

use super::{Action, VerifiedTx};

/// The memory, once enabled.
static MEMORY: OnceLock<Mutex<Memory>> = OnceLock::new();

/// Remembers verified transactions from now on, up to `max_weight` (a transaction weighs one
/// plus its report entries, ~100 bytes of memory each); the oldest are forgotten first. A later
/// call changes the bound.
pub fn remember_verified_txs(max_weight: usize) {
    let memory = MEMORY.get_or_init(|| Mutex::new(Memory::default()));
    let mut memory = memory.lock().unwrap_or_else(PoisonError::into_inner);
    memory.max_weight = max_weight;
    memory.evict();
}

/// The key of `(bytes, chain_id)`: SHA-256 over the chain id's length, the chain id and the
/// bytes (the length keeps two different splits from colliding).
fn key(bytes: &[u8], chain_id: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((chain_id.len() as u64).to_be_bytes());
    hasher.update(chain_id.as_bytes());
    hasher.update(bytes);
    hasher.finalize().into()
}

fn weight(tx: &VerifiedTx) -> usize {
    match &tx.action {
        Action::PositionReport(report) => report.entries.len().saturating_add(1),
        _ => 1,
    }
}

/// `verify` through the memory, when it is enabled.
pub(super) fn verify_remembered(
    bytes: &[u8],
    chain_id: &str,
    verify: impl FnOnce() -> Result<VerifiedTx, crate::code::TxRejection>,
) -> Result<Arc<VerifiedTx>, crate::code::TxRejection> {
    let Some(memory) = MEMORY.get() else {
        return verify().map(Arc::new);
    };
    let key = key(bytes, chain_id);
    let hit = memory
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key);
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let verified = Arc::new(verify()?);
    memory
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, Arc::clone(&verified));
    Ok(verified)
}

/// Insertion-ordered entries under a total weight.
#[derive(Default)]
struct Memory {
    max_weight: usize,
    weight: usize,
    entries: BTreeMap<[u8; 32], Arc<VerifiedTx>>,
    order: VecDeque<[u8; 32]>,
}

impl Memory {
    fn get(&self, key: &[u8; 32]) -> Option<Arc<VerifiedTx>> {
        self.entries.get(key).cloned()
    }

    fn insert(&mut self, key: [u8; 32], tx: Arc<VerifiedTx>) {
        let weight = weight(&tx);
        if weight > self.max_weight || self.entries.contains_key(&key) {
            return;
        }
        self.weight = self.weight.saturating_add(weight);
        self.entries.insert(key, tx);
        self.order.push_back(key);
        self.evict();
    }

    fn evict(&mut self) {
        while self.weight > self.max_weight {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(tx) = self.entries.remove(&oldest) {
                self.weight = self.weight.saturating_sub(weight(&tx));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::Withdraw;
    use crate::Address;

    fn tx(sequence: u64) -> Arc<VerifiedTx> {
        Arc::new(VerifiedTx {
            signer: [1; 32],
            signer_address: Address::of_public_key(&[1; 32]),
            sequence,
            action: Action::Withdraw(Withdraw {
                asset: "USDC".parse().unwrap_or_else(|_| unreachable!()),
                amount: clearnode_num::Quantity::from_units(1),
            }),
        })
    }

    #[test]
    fn keys_bind_the_chain_id() {
        assert_ne!(key(b"ab", "c"), key(b"b", "ca"));
        assert_ne!(key(b"tx", "a"), key(b"tx", "b"));
        assert_eq!(key(b"tx", "a"), key(b"tx", "a"));
    }

    #[test]
    fn the_oldest_are_forgotten_first_under_the_weight() {
        let mut memory = Memory {
            max_weight: 2,
            ..Memory::default()
        };
        memory.insert([1; 32], tx(1));
        memory.insert([2; 32], tx(2));
        memory.insert([2; 32], tx(2));
        assert_eq!(memory.weight, 2);
        memory.insert([3; 32], tx(3));
        assert!(memory.get(&[1; 32]).is_none());
        assert_eq!(memory.get(&[3; 32]).map(|t| t.sequence), Some(3));
        assert_eq!(memory.weight, 2);
        memory.max_weight = 0;
        memory.evict();
        assert!(memory.entries.is_empty() && memory.order.is_empty());
    }
}
