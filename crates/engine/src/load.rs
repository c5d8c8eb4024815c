//! Rebuilding the engine from committed state (node restart).

mod accounts;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use clearnode_proto::state::v1 as pb;
use prost::Message;

use crate::block::Engine;
use crate::codec::{self, DecodeError};
use crate::keys;
use crate::state::{State, SystemTotals};

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Read access to committed state, as the engine needs it to load.
pub trait StateSource {
    /// The source's error.
    type Error: std::fmt::Display;
    /// The value of a key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
    /// All pairs whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, Self::Error>;
    /// The pairs in `range`, in key order, pulled one at a time. The default
    /// goes through [`StateSource::scan_prefix`]; a large store overrides it
    /// so that loading never holds a whole prefix in memory.
    fn cursor<'a>(&'a self, range: KeyRange<'_>) -> Result<Box<dyn PairCursor + 'a>, LoadError> {
        let mut pairs = self
            .scan_prefix(range.prefix)
            .map_err(|e| LoadError::Source(e.to_string()))?;
        pairs.retain(|(key, _)| range.contains(key));
        Ok(Box::new(CollectedPairs {
            pairs: pairs.into_iter(),
            current: None,
        }))
    }
}

/// The keys that start with `prefix` and lie in `prefix ++ from <= key <
/// prefix ++ to` (no `to`: up to the end of the prefix).
#[derive(Debug, Clone, Copy)]
pub struct KeyRange<'k> {
    /// The common prefix.
    pub prefix: &'k [u8],
    /// The first key's rest after the prefix (inclusive).
    pub from: &'k [u8],
    /// The end's rest after the prefix (exclusive).
    pub to: Option<&'k [u8]>,
}

impl<'k> KeyRange<'k> {
    /// Every key under `prefix`.
    pub fn prefix(prefix: &'k [u8]) -> Self {
        KeyRange {
            prefix,
            from: b"",
            to: None,
        }
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key.strip_prefix(self.prefix)
            .is_some_and(|rest| rest >= self.from && self.to.is_none_or(|to| rest < to))
    }
}

/// A key and its value, borrowed from a cursor until its next step.
pub type PairRef<'a> = (&'a [u8], &'a [u8]);

/// Pairs under a key prefix, in key order, one at a time.
pub trait PairCursor {
    /// The next pair, `None` once the prefix is exhausted.
    fn next_pair(&mut self) -> Result<Option<PairRef<'_>>, LoadError>;
}

/// A cursor over pairs already collected.
struct CollectedPairs {
    pairs: std::vec::IntoIter<KeyValue>,
    current: Option<KeyValue>,
}

impl PairCursor for CollectedPairs {
    fn next_pair(&mut self) -> Result<Option<PairRef<'_>>, LoadError> {
        self.current = self.pairs.next();
        Ok(self
            .current
            .as_ref()
            .map(|(key, value)| (key.as_slice(), value.as_slice())))
    }
}

/// Why the state could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The source failed.
    #[error("reading state: {0}")]
    Source(String),
    /// A required key is missing: not a clearnode database, or an empty one.
    #[error("state key {0} is missing (empty or foreign database)")]
    Missing(String),
    /// A value does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

pub(crate) fn decode<M: Message + Default>(
    what: &'static str,
    bytes: &[u8],
) -> Result<M, DecodeError> {
    M::decode(bytes).map_err(|e| DecodeError {
        what,
        detail: e.to_string(),
    })
}

fn required<S: StateSource>(source: &S, key: Vec<u8>) -> Result<Vec<u8>, LoadError> {
    source
        .get(&key)
        .map_err(|e| LoadError::Source(e.to_string()))?
        .ok_or_else(|| LoadError::Missing(String::from_utf8_lossy(&key).into_owned()))
}

/// Calls `visit` on each pair under `prefix`, in key order.
fn for_each<S: StateSource>(
    source: &S,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let mut cursor = source.cursor(KeyRange::prefix(prefix))?;
    while let Some((key, value)) = cursor.next_pair()? {
        visit(key, value)?;
    }
    Ok(())
}

impl Engine {
    /// Loads the engine from the latest committed state. Running totals are
    /// rebuilt from the accounts, so they never drift from what is stored.
    pub fn load<S: StateSource + Sync>(source: &S) -> Result<Engine, LoadError> {
        let chain = codec::chain_info_from_pb(decode(
            "chain info",
            &required(source, keys::chain_info())?,
        )?);
        let params = codec::params_from_pb(decode("params", &required(source, keys::params())?)?)?;
        let custodian: pb::Custodian = decode("custodian", &required(source, keys::custodian())?)?;
        let mut state = State {
            chain,
            params,
            custodian: codec::key32("custodian", &custodian.public_key)?,
            markets: BTreeMap::new(),
            assets: BTreeMap::new(),
            venues: BTreeMap::new(),
            sequences: BTreeMap::new(),
            accounts: BTreeMap::new(),
            ledgers: BTreeMap::new(),
            market_totals: BTreeMap::new(),
            system: SystemTotals::default(),
            indexes: Default::default(),
            liquidation_orders: BTreeMap::new(),
            insurance_fund: codec::fund_from_pb(decode(
                "insurance fund",
                &required(source, keys::insurance_fund())?,
            )?)?,
            isolated_funds: BTreeMap::new(),
            venue_settlements: BTreeMap::new(),
            validators: BTreeMap::new(),
            breakers: Default::default(),
            proposals: BTreeMap::new(),
            governance: Default::default(),
        };
        crate::governance::codec::load(source, &mut state)?;
        for_each(source, keys::ISOLATED_FUND_PREFIX, |_, value| {
            let (market, fund) = codec::isolated_fund_from_pb(decode("isolated fund", value)?)?;
            state.isolated_funds.insert(market, fund);
            Ok(())
        })?;
        let stored = source
            .get(&keys::validators())
            .map_err(|e| LoadError::Source(e.to_string()))?;
        if let Some(bytes) = stored {
            state.validators = codec::validators_from_pb(decode("validators", &bytes)?)?;
        }
        for_each(source, keys::SETTLEMENT_PREFIX, |_, value| {
            let (venue, balance) = codec::settlement_from_pb(decode("settlement", value)?)?;
            state.venue_settlements.insert(venue, balance);
            Ok(())
        })?;
        for_each(source, keys::LIQUIDATION_PREFIX, |_, value| {
            let (key, order) = codec::order_from_pb(decode("liquidation order", value)?)?;
            state.liquidation_orders.insert(key, order);
            Ok(())
        })?;
        for_each(source, keys::MARKET_PREFIX, |_, value| {
            let market = codec::market_from_pb(decode("market", value)?)?;
            state
                .market_totals
                .insert(market.id.clone(), Default::default());
            state.markets.insert(market.id.clone(), market);
            Ok(())
        })?;
        for_each(source, keys::MARKET_MARGIN_PREFIX, |_, value| {
            let (id, margin) = codec::market_margin_from_pb(decode("market margin", value)?)?;
            let market = state.markets.get_mut(&id).ok_or_else(|| DecodeError {
                what: "market margin",
                detail: format!("margin for unlisted market {id}"),
            })?;
            market.margin = margin;
            Ok(())
        })?;
        for_each(source, keys::ASSET_PREFIX, |_, value| {
            let asset = codec::asset_from_pb(decode("asset", value)?)?;
            state.assets.insert(asset.id.clone(), asset);
            Ok(())
        })?;
        for_each(source, keys::VENUE_PREFIX, |_, value| {
            let venue = codec::venue_from_pb(decode("venue", value)?)?;
            state.venues.insert(venue.id.clone(), venue);
            Ok(())
        })?;
        for_each(source, keys::SEQUENCE_PREFIX, |key, value| {
            let hex = &key[keys::SEQUENCE_PREFIX.len()..];
            let address = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| DecodeError {
                    what: "sequence key",
                    detail: String::from_utf8_lossy(key).into_owned(),
                })?;
            let sequence: pb::Sequence = decode("sequence", value)?;
            state.sequences.insert(address, sequence.next);
            Ok(())
        })?;
        for_each(source, keys::LEDGER_PREFIX, |_, value| {
            let (asset, ledger) = codec::ledger_from_pb(decode("ledger", value)?)?;
            state.ledgers.insert(asset, ledger);
            Ok(())
        })?;
        for_each(source, keys::MARKET_BREAKER_PREFIX, |_, value| {
            let (market, breaker) =
                crate::breakers::codec::market_breaker_from_pb(decode("market breaker", value)?)?;
            state.breakers.markets.insert(market, breaker);
            Ok(())
        })?;
        state.breakers.system = crate::breakers::codec::system_breaker_from_pb(decode(
            "system breaker",
            &required(source, keys::system_breaker())?,
        )?)?;
        accounts::load(source, &mut state)?;
        Ok(Engine { state, block: None })
    }
}
