//! The streamed, merged load against the straightforward one it replaced.

// Tests: unwrap on fixtures.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use clearnode_num::{Price, Quantity};
use clearnode_proto::state::v1 as pb;
use clearnode_types::{Address, AssetId, MarketId, VenueId};
use prost::Message;

use super::{KeyRange, KeyValue, LoadError, PairCursor, StateSource};
use crate::aggregates::{apply_contribution, Contributions, Direction};
use crate::small_map::SmallMap;
use crate::state::{Account, Position, State};
use crate::{codec, keys, testkit, BlockHeader, Engine, PriceTarget, PriceUpdate};

type Pairs = BTreeMap<Vec<u8>, Vec<u8>>;

/// Through the default cursor: each prefix collected first.
struct Collected(Pairs);

/// Through a cursor that walks the map lazily, as the store's does.
struct Streamed(Pairs);

fn scan(pairs: &Pairs, prefix: &[u8]) -> Vec<KeyValue> {
    pairs
        .range(prefix.to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl StateSource for Collected {
    type Error = std::convert::Infallible;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.0.get(key).cloned())
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, Self::Error> {
        Ok(scan(&self.0, prefix))
    }
}

struct Walk<'a, I: Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>>(I);

impl<'a, I: Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>> PairCursor for Walk<'a, I> {
    fn next_pair(&mut self) -> Result<Option<super::PairRef<'_>>, LoadError> {
        Ok(self.0.next().map(|(k, v)| (k.as_slice(), v.as_slice())))
    }
}

impl StateSource for Streamed {
    type Error = std::convert::Infallible;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.0.get(key).cloned())
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, Self::Error> {
        Ok(scan(&self.0, prefix))
    }
    fn cursor<'a>(&'a self, range: KeyRange<'_>) -> Result<Box<dyn PairCursor + 'a>, LoadError> {
        let start = [range.prefix, range.from].concat();
        let range = (
            range.prefix.to_vec(),
            range.from.to_vec(),
            range.to.map(<[u8]>::to_vec),
        );
        Ok(Box::new(Walk(self.0.range(start..).take_while(
            move |(k, _)| {
                let (prefix, from, to) = &range;
                KeyRange {
                    prefix,
                    from,
                    to: to.as_deref(),
                }
                .contains(k)
            },
        ))))
    }
}

fn address(index: u64) -> Address {
    let mut bytes = [3u8; 32];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    Address::of_public_key(&bytes)
}

fn id<T: std::str::FromStr>(text: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    text.parse().unwrap()
}

/// Genesis, `count` accounts with collateral and positions on both testkit
/// markets, and the risk a priced block wrote for every one of them; then
/// some accounts lose their account record (positions only), some their
/// risk and some their positions, so the merge meets every combination.
fn state(count: u64) -> Pairs {
    let genesis = testkit::genesis();
    let (_, writes) = Engine::init_chain(testkit::CHAIN_ID, &genesis, 1_700_000_000, 0).unwrap();
    let mut pairs: Pairs = writes
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let usdc: AssetId = id("USDC");
    let venues: Vec<VenueId> = testkit::VENUES[..3].iter().map(|v| id(v)).collect();
    let markets: Vec<(MarketId, i64)> = vec![(id("BTC-PERP"), 60_000), (id("ETH-PERP"), 3_000)];
    for index in 0..count {
        let address = address(index);
        let account = Account {
            collateral: SmallMap::from([(usdc.clone(), Quantity::from_units(10_000))]),
            authorized_venues: venues
                .iter()
                .take(1 + usize::try_from(index % 3).unwrap())
                .cloned()
                .collect(),
            ..Account::default()
        };
        pairs.insert(
            keys::account(&address),
            codec::account_to_pb(&address, &account).encode_to_vec(),
        );
        let mut positions = BTreeMap::new();
        for (m, (market, price)) in (0u64..).zip(&markets) {
            for venue in venues
                .iter()
                .skip(usize::try_from((index + m) % 3).unwrap())
            {
                let sign = if (index + m).is_multiple_of(2) { 1 } else { -1 };
                let position = Position {
                    size: Quantity::from_units(sign * i64::try_from(1 + index % 4).unwrap()),
                    entry_price: Price::from_units(*price).unwrap(),
                    updated_height: index,
                };
                positions.insert((market.clone(), venue.clone()), position);
            }
        }
        pairs.insert(
            keys::positions(&address),
            codec::positions_to_pb(&address, &positions).encode_to_vec(),
        );
    }
    let mut engine = Engine::load(&Collected(pairs.clone())).unwrap();
    let prices: Vec<PriceUpdate> = markets
        .iter()
        .map(|(market, price)| PriceUpdate {
            target: PriceTarget::Market(market.clone()),
            price: Price::from_units(price * 97 / 100).unwrap(),
        })
        .collect();
    let header = BlockHeader {
        height: 1,
        time_seconds: 1_700_000_001,
        time_nanos: 0,
    };
    engine.begin_block(header, &prices).unwrap();
    for (key, value) in engine.end_block().unwrap().writes {
        match value {
            Some(value) => pairs.insert(key, value),
            None => pairs.remove(&key),
        };
    }
    for index in 0..count {
        let address = address(index);
        if index.is_multiple_of(7) {
            pairs.remove(&keys::account(&address));
        }
        if index.is_multiple_of(5) {
            pairs.remove(&keys::risk(&address));
        }
        if index % 6 == 1 {
            pairs.remove(&keys::positions(&address));
        }
    }
    pairs
}

/// The load this module replaced: each kind of record into the map in turn,
/// then every account's contribution, in address order.
fn reference(pairs: &Pairs, loaded: &State) -> State {
    let mut state = loaded.clone();
    state.accounts.clear();
    state.indexes = Default::default();
    state.system = Default::default();
    state.market_totals = state
        .markets
        .keys()
        .map(|market| (market.clone(), Default::default()))
        .collect();
    for (_, value) in scan(pairs, keys::ACCOUNT_PREFIX) {
        let (address, account) =
            codec::account_from_pb(pb::Account::decode(value.as_slice()).unwrap()).unwrap();
        state.accounts.insert(address, account);
    }
    for (_, value) in scan(pairs, keys::POSITIONS_PREFIX) {
        let (address, positions) =
            codec::positions_from_pb(pb::Positions::decode(value.as_slice()).unwrap()).unwrap();
        let account = state.accounts.entry(address).or_default();
        account.positions.extend(positions);
    }
    for (_, value) in scan(pairs, keys::RISK_PREFIX) {
        let (address, risk) =
            codec::risk_from_pb(pb::AccountRisk::decode(value.as_slice()).unwrap()).unwrap();
        state.accounts.entry(address).or_default().risk = risk;
    }
    for (address, account) in &state.accounts {
        let into = Contributions {
            markets: &mut state.market_totals,
            system: &mut state.system,
            indexes: &mut state.indexes,
            stress_move: state.breakers.system.params.coverage_stress_move,
        };
        apply_contribution(into, *address, account, Direction::Add).unwrap();
    }
    state
}

#[test]
fn a_streamed_load_equals_the_collected_one_and_the_one_it_replaced() {
    let pairs = state(400);
    let collected = Engine::load(&Collected(pairs.clone())).unwrap();
    let streamed = Engine::load(&Streamed(pairs.clone())).unwrap();
    assert_eq!(streamed.state(), collected.state());
    let want = reference(&pairs, collected.state());
    assert_eq!(collected.state(), &want);
    // Every combination of records is there, on both sides of the split.
    let accounts = &want.accounts;
    let left_records = |i: &u64| !(i.is_multiple_of(7) && i.is_multiple_of(5) && i % 6 == 1);
    let expected = (0..400).filter(left_records).count();
    assert_eq!(accounts.len(), expected);
    assert!(accounts
        .values()
        .any(|a| a.collateral.is_empty() && !a.positions.is_empty()));
    assert!(accounts
        .values()
        .any(|a| a.positions.is_empty() && a.risk.exposures.is_empty()));
    assert!(accounts.keys().any(|a| a.as_bytes()[0] < 0x80));
    assert!(accounts.keys().any(|a| a.as_bytes()[0] >= 0x80));
}

#[test]
fn records_out_of_address_order_are_refused_not_merged_wrongly() {
    let pairs = state(40);
    let first_risk = scan(&pairs, keys::RISK_PREFIX).remove(0);
    // A risk stored under the last key but naming the first account.
    let mut late = pairs.clone();
    late.insert(
        [keys::RISK_PREFIX, "f".repeat(40).as_bytes()].concat(),
        first_risk.1.clone(),
    );
    // The same account's risk under two keys.
    let mut twice = pairs.clone();
    let mut next_key = first_risk.0.clone();
    next_key.push(b'0');
    twice.insert(next_key, first_risk.1);
    for broken in [late, twice] {
        for loaded in [
            Engine::load(&Collected(broken.clone())),
            Engine::load(&Streamed(broken)),
        ] {
            match loaded {
                Err(LoadError::Decode(e)) => assert!(e.detail.contains("out of order"), "{e}"),
                other => panic!("loaded: {:?}", other.map(|_| ())),
            }
        }
    }
}

#[test]
fn key_ranges_split_a_prefix() {
    let low = KeyRange {
        prefix: b"pos/",
        from: b"",
        to: Some(b"8"),
    };
    let high = KeyRange {
        prefix: b"pos/",
        from: b"8",
        to: None,
    };
    for (key, in_low, in_high) in [
        (&b"pos/"[..], true, false),
        (b"pos/7f", true, false),
        (b"pos/8", false, true),
        (b"pos/ff", false, true),
        (b"pos0", false, false),
        (b"acct/1", false, false),
    ] {
        assert_eq!(low.contains(key), in_low, "{key:?}");
        assert_eq!(high.contains(key), in_high, "{key:?}");
        assert_eq!(KeyRange::prefix(b"pos/").contains(key), in_low || in_high);
    }
}
