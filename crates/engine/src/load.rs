//! Rebuilding the engine from committed state (node restart).

use std::collections::BTreeMap;

use clearnode_proto::state::v1 as pb;
use prost::Message;

use crate::aggregates::{apply_contribution, Contributions, Direction};
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

fn decode<M: Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, DecodeError> {
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

fn scan<S: StateSource>(source: &S, prefix: &[u8]) -> Result<Vec<KeyValue>, LoadError> {
    source
        .scan_prefix(prefix)
        .map_err(|e| LoadError::Source(e.to_string()))
}

impl Engine {
    /// Loads the engine from the latest committed state. Running totals are
    /// rebuilt from the accounts, so they never drift from what is stored.
    pub fn load<S: StateSource>(source: &S) -> Result<Engine, LoadError> {
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
        for (_, value) in scan(source, keys::ISOLATED_FUND_PREFIX)? {
            let (market, fund) = codec::isolated_fund_from_pb(decode("isolated fund", &value)?)?;
            state.isolated_funds.insert(market, fund);
        }
        let stored = source
            .get(&keys::validators())
            .map_err(|e| LoadError::Source(e.to_string()))?;
        if let Some(bytes) = stored {
            state.validators = codec::validators_from_pb(decode("validators", &bytes)?)?;
        }
        for (_, value) in scan(source, keys::SETTLEMENT_PREFIX)? {
            let (venue, balance) = codec::settlement_from_pb(decode("settlement", &value)?)?;
            state.venue_settlements.insert(venue, balance);
        }
        for (_, value) in scan(source, keys::LIQUIDATION_PREFIX)? {
            let (key, order) = codec::order_from_pb(decode("liquidation order", &value)?)?;
            state.liquidation_orders.insert(key, order);
        }
        for (_, value) in scan(source, keys::MARKET_PREFIX)? {
            let market = codec::market_from_pb(decode("market", &value)?)?;
            state
                .market_totals
                .insert(market.id.clone(), Default::default());
            state.markets.insert(market.id.clone(), market);
        }
        for (_, value) in scan(source, keys::MARKET_MARGIN_PREFIX)? {
            let (id, margin) = codec::market_margin_from_pb(decode("market margin", &value)?)?;
            let market = state.markets.get_mut(&id).ok_or_else(|| DecodeError {
                what: "market margin",
                detail: format!("margin for unlisted market {id}"),
            })?;
            market.margin = margin;
        }
        for (_, value) in scan(source, keys::ASSET_PREFIX)? {
            let asset = codec::asset_from_pb(decode("asset", &value)?)?;
            state.assets.insert(asset.id.clone(), asset);
        }
        for (_, value) in scan(source, keys::VENUE_PREFIX)? {
            let venue = codec::venue_from_pb(decode("venue", &value)?)?;
            state.venues.insert(venue.id.clone(), venue);
        }
        for (key, value) in scan(source, keys::SEQUENCE_PREFIX)? {
            let hex = &key[keys::SEQUENCE_PREFIX.len()..];
            let address = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| DecodeError {
                    what: "sequence key",
                    detail: String::from_utf8_lossy(&key).into_owned(),
                })?;
            let sequence: pb::Sequence = decode("sequence", &value)?;
            state.sequences.insert(address, sequence.next);
        }
        for (_, value) in scan(source, keys::LEDGER_PREFIX)? {
            let (asset, ledger) = codec::ledger_from_pb(decode("ledger", &value)?)?;
            state.ledgers.insert(asset, ledger);
        }
        for (_, value) in scan(source, keys::ACCOUNT_PREFIX)? {
            let (address, account) = codec::account_from_pb(decode("account", &value)?)?;
            state.accounts.insert(address, account);
        }
        for (_, value) in scan(source, keys::MARKET_BREAKER_PREFIX)? {
            let (market, breaker) =
                crate::breakers::codec::market_breaker_from_pb(decode("market breaker", &value)?)?;
            state.breakers.markets.insert(market, breaker);
        }
        state.breakers.system = crate::breakers::codec::system_breaker_from_pb(decode(
            "system breaker",
            &required(source, keys::system_breaker())?,
        )?)?;
        for (_, value) in scan(source, keys::POSITION_PREFIX)? {
            let (address, market, venue, position) =
                codec::position_from_pb(decode("position", &value)?)?;
            let account = state.accounts.entry(address).or_default();
            account.positions.insert((market, venue), position);
        }
        for (_, value) in scan(source, keys::RISK_PREFIX)? {
            let (address, risk) = codec::risk_from_pb(decode("risk", &value)?)?;
            state.accounts.entry(address).or_default().risk = risk;
        }
        for (address, account) in &state.accounts {
            let into = Contributions {
                markets: &mut state.market_totals,
                system: &mut state.system,
                indexes: &mut state.indexes,
                stress_move: state.breakers.system.params.coverage_stress_move,
            };
            apply_contribution(into, *address, account, Direction::Add).map_err(|e| {
                DecodeError {
                    what: "totals",
                    detail: e.to_string(),
                }
            })?;
        }
        Ok(Engine { state, block: None })
    }
}
