//! Loading the accounts, the bulk of a large state.
//!
//! An account is stored as up to three kinds of records, each kind under its
//! own prefix and keyed by the account's address: `acct/` (collateral and
//! authorizations), `pos/` (all its positions) and `risk/`. All three
//! arrive in address order, so one pass merges them into whole accounts,
//! which are added to the state in address order: the map grows at its right
//! edge, each account's contribution to the running totals is applied while
//! it is at hand, and no record is looked up twice.
//!
//! Two more threads read and decode (most of the work), each a half of the
//! address space, while this one applies the contributions. It takes their
//! accounts in address order, so the loaded state is the same whatever the
//! timing. The accounts map and the indexes are then built in bulk, which
//! packs their nodes full (growing a map one key at a time at its right edge
//! leaves every node about half empty).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{channel, Sender};

use clearnode_num::Ratio;
use clearnode_types::Address;

use super::{KeyRange, LoadError, PairCursor, StateSource};
use crate::aggregates::{apply_contribution, Contributions, Direction};
use crate::codec::{self, DecodeError};
use crate::keys;
use crate::state::{Account, State};

/// Accounts per hand-over from a decoding thread.
const ACCOUNTS_PER_CHUNK: usize = 1024;

/// The decoding threads' shares of the address space: every stored address
/// key is `<prefix><address in lowercase hex>...`, so these bounds of the
/// rest after the prefix split each prefix into consecutive ranges that
/// cover it whole, in address order.
const SHARES: [(&[u8], Option<&[u8]>); 2] = [(b"", Some(b"8")), (b"8", None)];

type Chunk = Vec<(Address, Account)>;

/// Adds every stored account to `state`, with its contribution to the
/// running totals and indexes. The markets and the system breaker must be
/// loaded already.
pub(super) fn load<S: StateSource + Sync>(source: &S, state: &mut State) -> Result<(), LoadError> {
    let stress_move = state.breakers.system.params.coverage_stress_move;
    let accounts = std::thread::scope(|scope| {
        let mut shares = Vec::with_capacity(SHARES.len());
        for (from, to) in SHARES {
            // Unbounded: a later share decodes ahead while an earlier one is
            // taken; what it holds is state that is kept anyway.
            let (sender, chunks) = channel();
            std::thread::Builder::new()
                .name("load-accounts".into())
                .spawn_scoped(scope, move || decode_accounts(source, from, to, &sender))
                .map_err(|e| LoadError::Source(format!("starting a decoding thread: {e}")))?;
            shares.push(chunks);
        }
        // Returning early drops the receivers: the decoding threads' next
        // sends fail and they stop.
        let mut accounts: Chunk = Vec::new();
        for chunks in shares {
            for chunk in chunks {
                for (address, account) in chunk? {
                    if accounts.last().is_some_and(|(last, _)| *last >= address) {
                        return Err(out_of_order("account", address).into());
                    }
                    contribute(state, address, &account, stress_move)?;
                    accounts.push((address, account));
                }
            }
        }
        Ok::<_, LoadError>(accounts)
    })?;
    // Packing first lets the map's nodes take the space the loose sets free.
    pack_indexes(state);
    // Sorted and unique already: this builds the map without comparing keys.
    state.accounts = BTreeMap::from_iter(accounts);
    Ok(())
}

fn contribute(
    state: &mut State,
    address: Address,
    account: &Account,
    stress_move: Ratio,
) -> Result<(), LoadError> {
    let into = Contributions {
        markets: &mut state.market_totals,
        system: &mut state.system,
        indexes: &mut state.indexes,
        stress_move,
    };
    apply_contribution(into, address, account, Direction::Add).map_err(|e| DecodeError {
        what: "totals",
        detail: e.to_string(),
    })?;
    Ok(())
}

/// Rebuilds the large address sets in bulk: the same content in full nodes.
fn pack_indexes(state: &mut State) {
    fn pack<T: Ord>(set: &mut BTreeSet<T>) {
        *set = std::mem::take(set).into_iter().collect();
    }
    let indexes = &mut state.indexes;
    indexes
        .market_holders
        .values_mut()
        .chain(indexes.asset_holders.values_mut())
        .for_each(pack);
    pack(&mut indexes.by_risk);
    pack(&mut indexes.by_stress_loss);
    for totals in state.market_totals.values_mut() {
        pack(&mut totals.holders.ranked);
    }
    pack(&mut state.system.holders.ranked);
}

fn out_of_order(what: &'static str, address: Address) -> DecodeError {
    DecodeError {
        what,
        detail: format!("{address} stored after a later address (records out of order)"),
    }
}

/// Sends the whole accounts of one share in address order, then an error if
/// one occurred.
fn decode_accounts<S: StateSource>(
    source: &S,
    from: &[u8],
    to: Option<&[u8]>,
    sender: &Sender<Result<Chunk, LoadError>>,
) {
    let delivered = merge_accounts(source, from, to, |chunk| sender.send(Ok(chunk)).is_ok());
    if let Err(e) = delivered {
        // The builder may have stopped already; then nobody needs the error.
        let _ = sender.send(Err(e));
    }
}

/// Merges the account, position and risk records of one share into whole
/// accounts and passes them to `deliver` in chunks, in address order, until
/// it returns false.
fn merge_accounts<S: StateSource>(
    source: &S,
    from: &[u8],
    to: Option<&[u8]>,
    mut deliver: impl FnMut(Chunk) -> bool,
) -> Result<(), LoadError> {
    let range = |prefix| KeyRange { prefix, from, to };
    let mut accounts = Records::open(source, range(keys::ACCOUNT_PREFIX), "account", |value| {
        Ok(codec::account_from_bytes(value)?)
    })?;
    let mut positions = Records::open(
        source,
        range(keys::POSITIONS_PREFIX),
        "positions",
        |value| Ok(codec::positions_from_bytes(value)?),
    )?;
    let mut risks = Records::open(source, range(keys::RISK_PREFIX), "risk", |value| {
        Ok(codec::risk_from_bytes(value)?)
    })?;
    let mut chunk = Vec::with_capacity(ACCOUNTS_PER_CHUNK);
    loop {
        let next = [
            accounts.next_address(),
            positions.next_address(),
            risks.next_address(),
        ];
        let Some(address) = next.into_iter().flatten().min() else {
            break;
        };
        let mut account = accounts.take(address)?.unwrap_or_default();
        if let Some(held) = positions.take(address)? {
            account.positions = held.into_iter().collect();
        }
        if let Some(risk) = risks.take(address)? {
            account.risk = risk;
        }
        chunk.push((address, account));
        if chunk.len() == ACCOUNTS_PER_CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(ACCOUNTS_PER_CHUNK));
            if !deliver(full) {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        deliver(chunk);
    }
    Ok(())
}

/// Decodes one stored record into its account's address and its content.
type DecodeRecord<T> = fn(&[u8]) -> Result<(Address, T), LoadError>;

/// The decoded records under one prefix, read one ahead.
struct Records<'a, T> {
    what: &'static str,
    cursor: Box<dyn PairCursor + 'a>,
    decode: DecodeRecord<T>,
    head: Option<(Address, T)>,
}

impl<'a, T> Records<'a, T> {
    fn open<S: StateSource>(
        source: &'a S,
        range: KeyRange<'_>,
        what: &'static str,
        decode: DecodeRecord<T>,
    ) -> Result<Self, LoadError> {
        let mut records = Records {
            what,
            cursor: source.cursor(range)?,
            decode,
            head: None,
        };
        records.head = records.read()?;
        Ok(records)
    }

    fn read(&mut self) -> Result<Option<(Address, T)>, LoadError> {
        match self.cursor.next_pair()? {
            Some((_, value)) => (self.decode)(value).map(Some),
            None => Ok(None),
        }
    }

    /// The address of the next record.
    fn next_address(&self) -> Option<Address> {
        self.head.as_ref().map(|(address, _)| *address)
    }

    /// The next record if it is `address`'s, reading the one after it.
    fn take(&mut self, address: Address) -> Result<Option<T>, LoadError> {
        if self.next_address() != Some(address) {
            return Ok(None);
        }
        let following = self.read()?;
        if let Some((after, _)) = &following {
            if *after <= address {
                return Err(out_of_order(self.what, *after).into());
            }
        }
        Ok(std::mem::replace(&mut self.head, following).map(|(_, record)| record))
    }
}
