//! Decoding from the stored bytes agrees with prost's decoding followed by
//! the message conversions, on any message prost writes, on concatenations
//! (protobuf's merge: the last singular value wins, repeated ones append)
//! and with unknown fields; truncated input fails on both paths.

// Tests: unwrap on fixtures.
#![allow(clippy::unwrap_used)]

use clearnode_proto::state::v1 as pb;
use proptest::prelude::*;
use prost::Message;

use super::{account_from_bytes, positions_from_bytes, risk_from_bytes};
use crate::codec::{account_from_pb, positions_from_pb, risk_from_pb};

/// Mostly values that convert, sometimes ones that do not.
fn text(valid: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(valid).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
    ]
}

const DECIMALS: &[&str] = &["0", "1.5", "-2.25", "12345.000000001", "0.000001", "-0.5"];
const IDS: &[&str] = &["BTC-PERP", "ETH-PERP", "venue-a", "USDC", "x"];

fn address() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 20),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

fn position() -> impl Strategy<Value = pb::Position> {
    (
        address(),
        text(IDS),
        text(IDS),
        text(DECIMALS),
        text(DECIMALS),
        any::<u64>(),
    )
        .prop_map(
            |(account, market, venue, size, entry_price, updated_height)| pb::Position {
                account,
                market,
                venue,
                size,
                entry_price,
                updated_height,
            },
        )
}

fn positions() -> impl Strategy<Value = pb::Positions> {
    (address(), proptest::collection::vec(position(), 0..4))
        .prop_map(|(account, positions)| pb::Positions { account, positions })
}

fn account() -> impl Strategy<Value = pb::Account> {
    (
        address(),
        proptest::collection::vec((text(IDS), text(DECIMALS)), 0..3),
        proptest::collection::vec(text(IDS), 0..4),
        text(DECIMALS),
        any::<bool>(),
        any::<u64>(),
        prop_oneof![Just(Vec::new()), address()],
        text(IDS),
    )
        .prop_map(
            |(address, collateral, venues, settled_pnl, liquidator, since, owner, market)| {
                pb::Account {
                    address,
                    collateral: collateral
                        .into_iter()
                        .map(|(asset, amount)| pb::AssetAmount { asset, amount })
                        .collect(),
                    authorized_venues: venues,
                    settled_pnl,
                    liquidator,
                    liquidating_since: since,
                    isolated_owner: owner,
                    isolated_market: market,
                }
            },
        )
}

fn exposure() -> impl Strategy<Value = pb::MarketExposure> {
    (text(IDS), proptest::collection::vec(text(DECIMALS), 6)).prop_map(|(market, d)| {
        pb::MarketExposure {
            market,
            net_size: d[0].clone(),
            gross_size: d[1].clone(),
            net_notional: d[2].clone(),
            unrealized_pnl: d[3].clone(),
            initial_requirement: d[4].clone(),
            maintenance_requirement: d[5].clone(),
        }
    })
}

fn risk() -> impl Strategy<Value = pb::AccountRisk> {
    (
        address(),
        proptest::collection::vec(text(DECIMALS), 7),
        prop_oneof![8 => 0i32..5, 1 => any::<i32>()],
        proptest::collection::vec(exposure(), 0..6),
        any::<u64>(),
    )
        .prop_map(
            |(account, d, health, exposures, computed_height)| pb::AccountRisk {
                account,
                collateral_value: d[0].clone(),
                unrealized_pnl: d[1].clone(),
                equity: d[2].clone(),
                initial_requirement: d[3].clone(),
                maintenance_requirement: d[4].clone(),
                free_collateral: d[5].clone(),
                health,
                leverage: d[6].clone(),
                exposures,
                computed_height,
            },
        )
}

/// Fields no record has: a varint, a fixed64, a string and a fixed32.
const UNKNOWN: &[u8] = &[
    0xb8, 0x06, 0x2a, // field 103, varint 42
    0xc1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, // field 104, fixed64
    0xca, 0x06, 2, b'h', b'i', // field 105, "hi"
    0xd5, 0x06, 1, 2, 3, 4, // field 106, fixed32
];

/// Both paths on `bytes`: the same value, or both an error.
fn agree<M: Message + Default, T: PartialEq + std::fmt::Debug>(
    bytes: &[u8],
    from_pb: impl Fn(M) -> Result<T, crate::codec::DecodeError>,
    from_bytes: impl Fn(&[u8]) -> Result<T, crate::codec::DecodeError>,
) -> Result<(), TestCaseError> {
    let via_prost = M::decode(bytes).ok().and_then(|m| from_pb(m).ok());
    prop_assert_eq!(via_prost, from_bytes(bytes).ok());
    Ok(())
}

fn variants(first: Vec<u8>, second: Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = vec![first.clone(), [first.clone(), second].concat()];
    out.push([UNKNOWN, &first, UNKNOWN].concat());
    if !first.is_empty() {
        out.push(first[..first.len() - 1].to_vec());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn positions_decode_alike(a in positions(), b in positions()) {
        for bytes in variants(a.encode_to_vec(), b.encode_to_vec()) {
            agree(&bytes, positions_from_pb, positions_from_bytes)?;
        }
    }

    #[test]
    fn accounts_decode_alike(a in account(), b in account()) {
        for bytes in variants(a.encode_to_vec(), b.encode_to_vec()) {
            agree(&bytes, account_from_pb, account_from_bytes)?;
        }
    }

    #[test]
    fn risks_decode_alike(a in risk(), b in risk()) {
        for bytes in variants(a.encode_to_vec(), b.encode_to_vec()) {
            agree(&bytes, risk_from_pb, risk_from_bytes)?;
        }
    }
}

#[test]
fn a_record_decodes_to_what_was_encoded() {
    let position = pb::Position {
        account: Vec::new(),
        market: "BTC-PERP".into(),
        venue: "venue-a".into(),
        size: "-1.5".into(),
        entry_price: "60000".into(),
        updated_height: 9,
    };
    let second = pb::Position {
        venue: "venue-b".into(),
        ..position.clone()
    };
    let record = pb::Positions {
        account: vec![7; 20],
        positions: vec![position, second],
    };
    let (address, decoded) = positions_from_bytes(&record.encode_to_vec()).unwrap();
    assert_eq!(address.as_bytes(), &[7; 20]);
    let keys: Vec<(&str, &str)> = decoded
        .iter()
        .map(|((market, venue), _)| (market.as_str(), venue.as_str()))
        .collect();
    assert_eq!(keys, [("BTC-PERP", "venue-a"), ("BTC-PERP", "venue-b")]);
    assert_eq!(decoded[0].1.size.to_string(), "-1.5");
    assert_eq!(decoded[1].1.updated_height, 9);
}
