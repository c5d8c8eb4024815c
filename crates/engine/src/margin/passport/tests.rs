//! The passport's fast search against the full report check.

use std::collections::BTreeMap;

use clearnode_num::{Money, Price, Quantity, Ratio};
use clearnode_types::{Address, AssetId, MarketId, VenueId};
use proptest::prelude::*;

use super::*;
use crate::margin::regime;

const VENUES: [&str; 3] = ["venue-a", "venue-b", "venue-c"];

/// A market with size tiers and OI scaling, so the surplus has kinks and a
/// quadratic stretch.
fn market(id: &str, price: i64, base_ppm: i64, upper_cap: i64, volatility: i128) -> Market {
    let base = Ratio::from_ppm(base_ppm);
    Market {
        id: id.parse().expect("id"),
        initial_margin: base,
        basis: Ratio::from_ppm(base_ppm / 5),
        open_interest_lower_cap: Money::from_units(upper_cap / 4),
        open_interest_upper_cap: Money::from_units(upper_cap),
        size_tiers: regime::size_tiers(
            base,
            &[
                (Money::from_units(200_000), Ratio::from_ppm(base_ppm * 2)),
                (Money::from_units(1_000_000), Ratio::from_ppm(base_ppm * 4)),
            ],
        )
        .expect("tiers"),
        margin: regime::MarketMargin {
            volatility_variance: volatility,
            target: base,
            current: base,
            phase_target: base,
            ..Default::default()
        },
        ..crate::margin::tests::market(price)
    }
}

fn assets() -> BTreeMap<AssetId, Asset> {
    let usdc = Asset {
        id: "USDC".parse().expect("id"),
        oracle_price: Price::from_units(1).expect("positive"),
        haircut: Ratio::ZERO,
    };
    BTreeMap::from([(usdc.id.clone(), usdc)])
}

/// (market index, venue index, size in thousandths, entry price)
type Held = (usize, usize, i64, i64);

struct World {
    markets: BTreeMap<MarketId, Market>,
    account: Account,
    open_interest: OpenInterest,
}

fn world(
    prices: [i64; 2],
    volatility: i128,
    collateral: i64,
    held: &[Held],
    oi: [i64; 2],
) -> World {
    let list = [
        market("BTC-PERP", prices[0], 50_000, 40_000_000, volatility),
        market("SOL-PERP", prices[1], 100_000, 2_000_000, 0),
    ];
    let mut account = Account::default();
    account.collateral.insert(
        "USDC".parse().expect("id"),
        Quantity::from_units(collateral),
    );
    for &(m, venue, size_milli, entry) in held {
        if size_milli == 0 {
            continue;
        }
        account.positions.insert(
            (list[m].id.clone(), VENUES[venue].parse().expect("id")),
            Position {
                size: Quantity::from_raw(i128::from(size_milli) * 1_000_000),
                entry_price: Price::from_units(entry).expect("positive"),
                updated_height: 1,
            },
        );
    }
    let open_interest = list
        .iter()
        .zip(oi)
        .map(|(m, units)| {
            (
                m.id.clone(),
                (Quantity::from_units(units), Quantity::from_units(units / 2)),
            )
        })
        .collect();
    World {
        markets: list.into_iter().map(|m| (m.id.clone(), m)).collect(),
        account,
        open_interest,
    }
}

/// The passport as it was before the probe: bisection over the full check
/// below what equity can afford and the size limit allows.
fn reference(world: &World, venue: &VenueId, size_max: Quantity) -> Vec<(MarketId, i128, i128)> {
    let context = Context {
        size_max,
        markets: &world.markets,
        assets: &assets(),
        open_interest: &world.open_interest,
    };
    let assets = assets();
    let context = Context {
        assets: &assets,
        ..context
    };
    let now = compute_risk(&world.account, context.markets, context.assets, 0).expect("risk");
    let reduce_only = now.health >= Health::MarginCall;
    let mut result = Vec::new();
    for market in world.markets.values() {
        let net = Quantity::checked_sum(
            world
                .account
                .positions
                .iter()
                .filter(|((m, _), _)| *m == market.id)
                .map(|(_, p)| p.size),
        )
        .expect("fits");
        let side = |sign: i128| {
            let reducing = if net.signum() == -sign {
                net.abs().expect("fits").raw()
            } else {
                0
            };
            if reduce_only {
                return reducing;
            }
            let affordable = mul_div(
                mul_div(
                    now.equity.max(Money::ZERO).raw(),
                    NOTIONAL_DIVISOR,
                    market.oracle_price.raw(),
                    Rounding::Ceil,
                )
                .expect("fits"),
                RATIO_ONE_PPM,
                market.initial_margin.raw(),
                Rounding::Ceil,
            )
            .expect("fits");
            let venue_size = world
                .account
                .positions
                .get(&(market.id.clone(), venue.clone()))
                .map_or(0, |p| p.size.raw());
            let high = (size_max.raw() - sign * venue_size)
                .min(reducing + affordable + 1)
                .max(reducing);
            let check = |x: i128| {
                let q = Quantity::from_raw(x);
                let delta = if sign > 0 {
                    q
                } else {
                    q.checked_neg().expect("fits")
                };
                admissible(&world.account, market, venue, delta, &context)
            };
            bisect_exact(check, reducing, high).expect("searches")
        };
        result.push((market.id.clone(), side(1), side(-1)));
    }
    result
}

fn held_strategy() -> impl Strategy<Value = Vec<Held>> {
    proptest::collection::vec((0usize..2, 0usize..3, -400_000i64..400_000, 1i64..3), 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The probe's answer is a boundary of the full check to the last unit
    /// (the check passes at it and fails one unit above), confirmed by the
    /// passport itself and never left to the fallback; and it is where
    /// bisecting over the full check lands, up to the check's own rounding
    /// (the check is not monotone to the unit: an addition moves an entry
    /// price, rounded to 10^-9, over the whole size held).
    #[test]
    fn the_fast_passport_is_the_full_checks_boundary(
        btc in 20_000i64..90_000,
        sol in 20i64..300,
        volatility in prop_oneof![Just(0i128), 0i128..1_000_000_000],
        collateral in 0i64..3_000_000,
        held in held_strategy(),
        oi in (0i64..2_000, 0i64..40_000),
        venue in 0usize..3,
        size_max_units in prop_oneof![Just(1_000_000i64), 1i64..500],
    ) {
        // Entries near the mark: index 1 or 2 means 90% or 110% of it.
        let held: Vec<Held> = held
            .into_iter()
            .map(|(m, v, size, e)| {
                let mark = if m == 0 { btc } else { sol };
                // Reports keep every position within the size limit.
                let size = if m == 0 { size / 20 } else { size };
                let limit = size_max_units * 1_000;
                (m, v, size.clamp(-limit, limit), mark * (8 + 2 * e) / 10)
            })
            .collect();
        let world = world([btc, sol], volatility, collateral, &held, [oi.0, oi.1]);
        let venue: VenueId = VENUES[venue].parse().expect("id");
        let size_max = Quantity::from_units(size_max_units);
        let assets = assets();
        let context = Context {
            size_max,
            markets: &world.markets,
            assets: &assets,
            open_interest: &world.open_interest,
        };
        let now = compute_risk(&world.account, &world.markets, &assets, 0).expect("risk");
        // Reduce-only answers are the reducing size, which the margin check alone may exceed.
        let reduce_only = now.health >= Health::MarginCall;
        let fast = allowances(&world.account, &venue, &context).expect("computes");
        let expected = reference(&world, &venue, size_max);
        for ((market_id, long, short), (_, expected_long, expected_short)) in fast.iter().zip(&expected) {
            let market = &world.markets[market_id];
            for (sign, found, bisected) in [(1, long, expected_long), (-1, short, expected_short)] {
                let Found::Confirmed(found) = *found else {
                    return Err(TestCaseError::fail(format!("{market_id} {sign}: fell back: {found:?}")));
                };
                let passes = |x: i128| {
                    let q = Quantity::from_raw(x);
                    let delta = if sign > 0 { q } else { q.checked_neg().expect("fits") };
                    admissible(&world.account, market, &venue, delta, &context).expect("checks")
                };
                if reduce_only {
                    prop_assert_eq!(found, *bisected);
                    continue;
                }
                prop_assert!(!passes(found + 1), "{} {}: {} + 1 passes", market_id, sign, found);
                if found != *bisected {
                    prop_assert!(passes(found), "{} {}: {} fails", market_id, sign, found);
                    let apart = Quantity::from_raw((found - bisected).abs())
                        .notional(market.oracle_price, Rounding::Ceil)
                        .expect("fits");
                    // An entry price moves in units of 10^-9: over the size held, that is the noise.
                    let gross = Quantity::checked_sum(world.account.positions.values().map(|p| p.size.abs().expect("fits")))
                        .expect("fits");
                    let noise = Quantity::from_raw(gross.raw() + found)
                        .notional(Price::from_raw(2).expect("positive"), Rounding::Ceil)
                        .expect("fits")
                        .checked_add(Money::from_raw(10))
                        .expect("fits");
                    prop_assert!(apart <= noise, "{} {}: {} vs {}", market_id, sign, found, bisected);
                }
            }
        }
    }
}

#[test]
fn the_secant_search_finds_the_last_unit_of_a_step_function() {
    // A surplus that falls one unit every 60 units of size, as a cheap
    // market's does: the answer is the last size with a surplus >= 0.
    let surplus = |x: i128| Ok(1_000 - x / 60);
    assert_eq!(
        search_surplus(surplus, 0, 1_000_000).expect("searches"),
        60_059
    );
    // A kink: steep after 500.
    let kinked = |x: i128| {
        Ok(if x < 500 {
            10_000 - x
        } else {
            9_500 - 40 * (x - 500)
        })
    };
    assert_eq!(search_surplus(kinked, 0, 1 << 40).expect("searches"), 737);
    // Nothing passes beyond the low end, or everything up to the high end.
    assert_eq!(
        search_surplus(|x: i128| Ok(-x), 0, 1_000).expect("searches"),
        0
    );
    assert_eq!(
        search_surplus(|x: i128| Ok(2_000 - x), 0, 1_000).expect("searches"),
        1_000
    );
}

#[test]
fn markets_the_account_cannot_hold_allow_nothing() {
    let mut world = world([60_000, 150], 0, 100_000, &[], [0, 0]);
    let venue: VenueId = VENUES[0].parse().expect("id");
    let assets = assets();
    let sol: MarketId = "SOL-PERP".parse().expect("id");
    if let Some(market) = world.markets.get_mut(&sol) {
        market.isolated = true;
    }
    let allowances = |world: &World| {
        let context = Context {
            size_max: Quantity::from_units(1_000_000),
            markets: &world.markets,
            assets: &assets,
            open_interest: &world.open_interest,
        };
        allowances(&world.account, &venue, &context).expect("computes")
    };
    // A cross account: BTC yes, the isolated SOL market no.
    let cross = allowances(&world);
    assert!(matches!(cross[0].1, Found::Confirmed(long) if long > 0));
    assert_eq!(
        (cross[1].1, cross[1].2),
        (Found::Confirmed(0), Found::Confirmed(0))
    );
    // SOL's isolated sub-account: SOL only.
    let owner = Address::from_slice(&[7; 20]).expect("20 bytes");
    world.account.isolated = Some((owner, sol));
    let isolated = allowances(&world);
    assert_eq!(
        (isolated[0].1, isolated[0].2),
        (Found::Confirmed(0), Found::Confirmed(0))
    );
    assert!(matches!(isolated[1].1, Found::Confirmed(long) if long > 0));
}
