use std::collections::BTreeMap;

use clearnode_num::{Money, Price, Quantity, Ratio};
use clearnode_types::{AssetId, MarketId, VenueId};
use proptest::prelude::*;

use super::*;
use crate::state::{Account, Asset, Market, Position};

pub(crate) fn market(price: i64) -> Market {
    let base = Ratio::from_ppm(50_000);
    Market {
        id: "BTC-PERP".parse().expect("id"),
        oracle_price: Price::from_units(price).expect("positive"),
        initial_margin: base,
        maintenance_fraction: Ratio::from_ppm(600_000),
        basis: Ratio::from_ppm(10_000),
        open_interest_lower_cap: Money::ZERO,
        open_interest_upper_cap: Money::ZERO,
        size_tiers: regime::size_tiers(
            base,
            &[(Money::from_units(5_000_000), Ratio::from_ppm(100_000))],
        )
        .expect("tiers"),
        volatility_decay: Ratio::from_ppm(940_000),
        volatility_reference_ppm: 10_000,
        margin_phase_in_blocks: 10,
        margin_rise_per_block_max: Ratio::from_ppm(10_000),
        insurance_payout_per_block_max: Money::from_units(100_000),
        isolated: false,
        margin: regime::MarketMargin {
            target: base,
            current: base,
            phase_target: base,
            ..Default::default()
        },
    }
}

fn markets(price: i64) -> BTreeMap<MarketId, Market> {
    let m = market(price);
    BTreeMap::from([(m.id.clone(), m)])
}

fn assets() -> BTreeMap<AssetId, Asset> {
    let usdc = Asset {
        id: "USDC".parse().expect("id"),
        oracle_price: Price::from_units(1).expect("positive"),
        haircut: Ratio::ZERO,
    };
    let eth = Asset {
        id: "ETH".parse().expect("id"),
        oracle_price: Price::from_units(3000).expect("positive"),
        haircut: Ratio::from_ppm(100_000),
    };
    BTreeMap::from([(usdc.id.clone(), usdc), (eth.id.clone(), eth)])
}

fn account(collateral_usdc: i64, positions: &[(usize, i64, i64)]) -> Account {
    let venues = ["venue-a", "venue-b", "venue-c"];
    let mut account = Account::default();
    account.collateral.insert(
        "USDC".parse().expect("id"),
        Quantity::from_units(collateral_usdc),
    );
    for &(venue, size_milli, entry) in positions {
        let key = (
            "BTC-PERP".parse::<MarketId>().expect("id"),
            venues[venue].parse::<VenueId>().expect("id"),
        );
        account.positions.insert(
            key,
            Position {
                size: Quantity::from_raw(i128::from(size_milli) * 1_000_000),
                entry_price: Price::from_units(entry).expect("positive"),
                updated_height: 1,
            },
        );
    }
    account
}

#[test]
fn collateral_counts_after_haircut() {
    let mut a = account(1000, &[]);
    a.collateral
        .insert("ETH".parse().expect("id"), Quantity::from_units(2));
    let value = collateral_value(&a.collateral, &assets()).expect("value");
    assert_eq!(value, Money::from_units(1000 + 5400));
}

#[test]
fn health_boundaries() {
    let m = |u: i64| Money::from_units(u);
    assert_eq!(health(m(10), m(10), m(5)), Health::Healthy);
    assert_eq!(health(m(9), m(10), m(5)), Health::MarginCall);
    assert_eq!(health(m(5), m(10), m(5)), Health::MarginCall);
    assert_eq!(health(m(4), m(10), m(5)), Health::Liquidating);
    assert_eq!(health(m(0), m(10), m(5)), Health::Liquidating);
    assert_eq!(health(m(-1), m(10), m(5)), Health::Bankrupt);
    assert_eq!(health(m(0), m(0), m(0)), Health::Healthy);
}

fn positions_strategy() -> impl Strategy<Value = Vec<(usize, i64, i64)>> {
    proptest::collection::vec((0usize..3, -5_000i64..5_000, 40_000i64..80_000), 0..3).prop_map(
        |mut p| {
            p.sort_by_key(|x| x.0);
            p.dedup_by_key(|x| x.0);
            p
        },
    )
}

/// Positions on up to three venues, all on one side.
fn one_sided_strategy() -> impl Strategy<Value = Vec<(usize, i64, i64)>> {
    (positions_strategy(), any::<bool>()).prop_map(|(positions, short)| {
        positions
            .into_iter()
            .map(|(venue, size, entry)| {
                let size = size.abs().max(1);
                (venue, if short { -size } else { size }, entry)
            })
            .collect()
    })
}

proptest! {
    /// An adverse move never improves free collateral of a one-sided book:
    /// for longs a price drop, for shorts a price rise. (A cross-venue hedge
    /// with a small net can gain free collateral on an adverse move: the
    /// basis charge on its netted notional falls with the price faster than
    /// the small net loses. That is the nature of notional-based charges.)
    #[test]
    fn free_collateral_is_monotone_in_adverse_shocks(
        positions in one_sided_strategy(),
        collateral in 0i64..1_000_000,
        price in 40_000i64..80_000,
        shock in 0i64..20_000,
    ) {
        let a = account(collateral, &positions);
        let base = compute_risk(&a, &markets(price), &assets(), 1).expect("risk");
        let net_long = base.exposures.first().is_some_and(|e| e.net_size.is_positive());
        let shocked_price = if net_long { price - shock } else { price + shock };
        let shocked = compute_risk(&a, &markets(shocked_price.max(1)), &assets(), 1).expect("risk");
        let free = |r: &Risk| r.free_collateral().expect("fits");
        prop_assert!(free(&shocked) <= free(&base), "{:?} -> {:?}", free(&base), free(&shocked));
        prop_assert!(shocked.maintenance <= shocked.initial);
    }

    /// Netting across venues never asks more than the venues would alone.
    #[test]
    fn netting_never_costs_more_than_separate_venues(positions in positions_strategy(), price in 40_000i64..80_000) {
        let together = compute_risk(&account(0, &positions), &markets(price), &assets(), 1).expect("risk");
        let mut apart = Money::ZERO;
        for position in &positions {
            let alone = compute_risk(&account(0, &[*position]), &markets(price), &assets(), 1).expect("risk");
            apart = apart.checked_add(alone.initial).expect("fits");
        }
        prop_assert!(together.initial <= apart);
    }

    /// PnL and requirement of a position are symmetric in its sign.
    #[test]
    fn requirement_is_symmetric_in_direction(size in 1i64..10_000, price in 40_000i64..80_000) {
        let long = compute_risk(&account(0, &[(0, size, price)]), &markets(price), &assets(), 1).expect("risk");
        let short = compute_risk(&account(0, &[(0, -size, price)]), &markets(price), &assets(), 1).expect("risk");
        prop_assert_eq!(long.initial, short.initial);
        prop_assert_eq!(long.maintenance, short.maintenance);
    }
}

/// Two markets, BTC-PERP and ETH-PERP, at one price.
fn two_markets(price: i64) -> BTreeMap<MarketId, Market> {
    let mut eth = market(price / 20 + 1);
    eth.id = "ETH-PERP".parse().expect("id");
    let mut all = markets(price);
    all.insert(eth.id.clone(), eth);
    all
}

/// Positions in either market, on any venue.
fn account_in_two(collateral_usdc: i64, positions: &[(bool, usize, i64, i64)]) -> Account {
    let mut account = account(collateral_usdc, &[]);
    for &(eth, venue, size_milli, entry) in positions {
        let market = if eth { "ETH-PERP" } else { "BTC-PERP" };
        let venue = ["venue-a", "venue-b", "venue-c"][venue];
        let key = (market.parse().expect("id"), venue.parse().expect("id"));
        let position = Position {
            size: Quantity::from_raw(i128::from(size_milli.max(1)) * 1_000_000),
            entry_price: Price::from_units(entry).expect("positive"),
            updated_height: 1,
        };
        account.positions.insert(key, position);
    }
    account
}

proptest! {
    /// Recomputing in place over whatever risk the account had (other
    /// markets, more or fewer exposures) gives exactly the fresh risk.
    #[test]
    fn refreshing_in_place_equals_computing_afresh(
        accounts in proptest::collection::vec(
            (0i64..100_000, proptest::collection::vec((any::<bool>(), 0usize..3, -5_000i64..5_000, 2_000i64..80_000), 0..5)),
            1..5,
        ),
        price in 40_000i64..80_000,
    ) {
        let markets = two_markets(price);
        let mut risk = Risk::default();
        for (height, (collateral, positions)) in (1u64..).zip(&accounts) {
            let mut account = account_in_two(*collateral, positions);
            let fresh = compute_risk(&account, &markets, &assets(), height).expect("risk");
            account.risk = risk;
            refresh_risk(&mut account, &markets, &assets(), height).expect("risk");
            prop_assert_eq!(&account.risk, &fresh);
            risk = account.risk;
        }
    }
}

/// Finding a position by scan (few positions) or by key (many) agrees
/// with the map's own lookup.
#[test]
fn positions_are_found_by_scan_and_by_key() {
    for count in [3usize, 40] {
        let mut account = Account::default();
        for index in 0..count {
            let key = (
                format!("M{index}-PERP").parse::<MarketId>().expect("id"),
                "venue-a".parse::<VenueId>().expect("id"),
            );
            let position = Position {
                size: Quantity::from_units(i64::try_from(index).expect("small") + 1),
                entry_price: Price::from_units(1).expect("positive"),
                updated_height: 1,
            };
            account.positions.insert(key, position);
        }
        let venue: VenueId = "venue-a".parse().expect("id");
        let other: VenueId = "venue-b".parse().expect("id");
        for index in 0..=count {
            let market: MarketId = format!("M{index}-PERP").parse().expect("id");
            let expected = account.positions.get(&(market.clone(), venue.clone()));
            assert_eq!(account.position(&market, &venue), expected);
            assert_eq!(account.position(&market, &other), None);
        }
    }
}
