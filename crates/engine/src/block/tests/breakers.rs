//! Circuit breakers and oracle validity: each breaker trips and clears as
//! specified, each action is held back by exactly the states it does not
//! tolerate, and the stored breakers reload to the live state.

use clearnode_num::{Money, Price, Ratio};
use clearnode_proto::state::v1 as pb;
use clearnode_types::genesis::{Genesis, GenesisMarketBreaker, GenesisSystemBreaker};
use clearnode_types::{MarketId, TxCode};
use prost::Message;

use super::{btc_price, trader_with, Chain};
use crate::breakers::{MarketBreaker, MarketStatus, PauseCause};
use crate::load::StateSource;
use crate::testkit::{genesis, key, venue_key, Signer, VENUES};
use crate::{Engine, PriceTarget};

fn btc() -> MarketId {
    "BTC-PERP".parse().expect("id")
}

fn breaker(chain: &Chain) -> &MarketBreaker {
    &chain.engine.state().breakers.markets[&btc()]
}

fn with_btc_breaker(breaker: GenesisMarketBreaker, system: GenesisSystemBreaker) -> Genesis {
    let mut genesis = genesis();
    genesis.markets[0].breaker = breaker;
    genesis.params.system_breaker = system;
    genesis
}

/// Kinds of the committed instructions of a venue, with their heights.
fn instructions(chain: &Chain, venue: &str) -> Vec<(u64, String)> {
    chain
        .committed
        .scan_prefix(format!("instr/{venue}/").as_bytes())
        .expect("scans")
        .iter()
        .map(|(_, v)| pb::Instruction::decode(v.as_slice()).expect("decodes"))
        .map(|i| (i.height, i.kind))
        .collect()
}

fn stored_breaker(chain: &Chain) -> pb::MarketBreaker {
    let bytes = chain
        .committed
        .get(&crate::keys::market_breaker(&btc()))
        .expect("reads")
        .expect("stored");
    pb::MarketBreaker::decode(bytes.as_slice()).expect("decodes")
}

/// A transaction expected to be refused: refused ones consume no sequence,
/// so the signer's next one reuses it.
fn refused(signer: &mut Signer, sign: impl FnOnce(&mut Signer) -> Vec<u8>) -> Vec<u8> {
    let tx = sign(signer);
    signer.sequence -= 1;
    tx
}

fn assert_reloads(chain: &Chain) {
    let reloaded = Engine::load(&chain.committed).expect("loads");
    assert_eq!(reloaded.state(), chain.engine.state());
}

#[test]
fn a_price_outside_the_band_limits_then_pauses_then_reopens_with_a_widened_margin() {
    let genesis = with_btc_breaker(
        GenesisMarketBreaker {
            price_band_ppm: 100_000,
            limit_blocks: 2,
            pause_blocks: 2,
            reopen_blocks: 4,
            reopen_margin_multiplier_ppm: 1_500_000,
            ..Default::default()
        },
        GenesisSystemBreaker {
            fresh_price_blocks: 1,
            ..Default::default()
        },
    );
    let mut chain = Chain::with_genesis(&genesis);
    let mut trader = trader_with(&mut chain, 1, "20000");
    let mut venue = Signer::new(venue_key(0));
    let a = trader.address();
    assert_eq!(
        chain.block(&[venue.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]),
        vec![TxCode::Ok]
    );
    // -13%: outside the 10% band. Reduce-only at once, in this very block.
    chain.prices.push(btc_price(52_000));
    let codes = chain.block(&[
        refused(&mut venue, |s| {
            s.report("venue-a", &[(a, "BTC-PERP", "2", "52000")])
        }),
        venue.report("venue-a", &[(a, "BTC-PERP", "0.5", "52000")]),
    ]);
    assert_eq!(codes, vec![TxCode::BreakerReduceOnly, TxCode::Ok]);
    let limited_at = chain.engine.height();
    assert_eq!(breaker(&chain).status, MarketStatus::Limit);
    for venue in VENUES {
        assert!(instructions(&chain, venue).contains(&(limited_at, "market_limit".into())));
    }
    chain.block(&[]);
    assert_eq!(breaker(&chain).status, MarketStatus::Limit);
    // Still outside after `limit_blocks`: the market pauses; nothing changes in it.
    chain.block(&[]);
    assert_eq!(
        breaker(&chain).status,
        MarketStatus::Paused(PauseCause::PriceBand)
    );
    let codes = chain.block(&[
        refused(&mut venue, |s| {
            s.report("venue-a", &[(a, "BTC-PERP", "0.1", "52000")])
        }),
        refused(&mut trader, |s| s.withdraw("USDC", "1")),
    ]);
    assert_eq!(codes, vec![TxCode::MarketPaused, TxCode::MarketPaused]);
    // After `pause_blocks`: a staged reopen around the price it reopens at,
    // margin widened by 1.5x and easing back to 1x over `reopen_blocks`.
    chain.block(&[]);
    assert_eq!(breaker(&chain).status, MarketStatus::Reopening);
    let reopened_at = chain.engine.height();
    assert_eq!(
        breaker(&chain).reference_price,
        Price::from_units(52_000).ok()
    );
    let base = chain.engine.state().markets[&btc()].initial_margin;
    let target = chain.engine.state().markets[&btc()].margin.target;
    assert_eq!(
        target,
        base.checked_mul(Ratio::from_ppm(1_500_000), clearnode_num::Rounding::Ceil)
            .expect("fits")
    );
    assert_eq!(stored_breaker(&chain).margin_multiplier_ppm, 1_500_000);
    // Liquidations wait for a price from 2/3 of power fresher than the pause.
    let state = chain.engine.state();
    let blocked = crate::breakers::liquidation_blocked(state, &btc(), reopened_at);
    assert_eq!(blocked.map(|r| r.code), Some(TxCode::OracleInvalid));
    chain.prices.push(btc_price(52_100));
    assert_eq!(
        chain.block(&[venue.report("venue-a", &[(a, "BTC-PERP", "1", "52100")])]),
        vec![TxCode::Ok]
    );
    let state = chain.engine.state();
    assert!(crate::breakers::liquidation_blocked(state, &btc(), chain.engine.height()).is_none());
    assert!(chain.engine.state().markets[&btc()].margin.target < target);
    for _ in 0..3 {
        chain.block(&[]);
    }
    assert_eq!(breaker(&chain).status, MarketStatus::Open);
    assert_eq!(chain.engine.height(), reopened_at + 4);
    assert_eq!(chain.engine.state().markets[&btc()].margin.target, base);
    let kinds: Vec<String> = instructions(&chain, "venue-b")
        .into_iter()
        .map(|i| i.1)
        .collect();
    let cycle = [
        "market_limit",
        "market_paused",
        "market_reopening",
        "market_reopened",
    ];
    assert_eq!(kinds, cycle.map(String::from).to_vec());
    assert_reloads(&chain);
}

#[test]
fn a_price_back_inside_the_band_lifts_the_limit() {
    let genesis = with_btc_breaker(
        GenesisMarketBreaker {
            price_band_ppm: 100_000,
            limit_blocks: 5,
            ..Default::default()
        },
        GenesisSystemBreaker::default(),
    );
    let mut chain = Chain::with_genesis(&genesis);
    chain.prices.push(btc_price(70_000));
    chain.block(&[]);
    assert_eq!(breaker(&chain).status, MarketStatus::Limit);
    chain.prices.push(btc_price(61_000));
    chain.block(&[]);
    assert_eq!(breaker(&chain).status, MarketStatus::Open);
    let kinds: Vec<String> = instructions(&chain, "venue-a")
        .into_iter()
        .map(|i| i.1)
        .collect();
    assert_eq!(kinds, vec!["market_limit", "market_limit_lifted"]);
}

#[test]
fn stale_underquoted_and_volatile_prices_hold_back_what_cannot_tolerate_them() {
    let genesis = with_btc_breaker(
        GenesisMarketBreaker {
            stale_after_blocks: 3,
            volatile_move_ppm: 50_000,
            ..Default::default()
        },
        GenesisSystemBreaker::default(),
    );
    let mut chain = Chain::with_genesis(&genesis);
    let mut trader = trader_with(&mut chain, 1, "20000");
    let mut venue = Signer::new(venue_key(0));
    let a = trader.address();
    chain.prices.push(btc_price(60_000));
    assert_eq!(
        chain.block(&[venue.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]),
        vec![TxCode::Ok]
    );
    for _ in 0..4 {
        chain.block(&[]);
    }
    assert!(breaker(&chain).validity.stale);
    let height = chain.engine.height();
    let blocked = crate::breakers::liquidation_blocked(chain.engine.state(), &btc(), height);
    assert_eq!(blocked.map(|r| r.code), Some(TxCode::OracleInvalid));
    // Stale: no new exposure, no withdrawal; reducing is always allowed,
    // and another market is not affected.
    let codes = chain.block(&[
        refused(&mut venue, |s| {
            s.report("venue-a", &[(a, "BTC-PERP", "2", "60000")])
        }),
        refused(&mut trader, |s| s.withdraw("USDC", "1")),
        venue.report("venue-a", &[(a, "BTC-PERP", "0.5", "60000")]),
        venue.report("venue-a", &[(a, "ETH-PERP", "1", "3000")]),
    ]);
    let expected = [
        TxCode::OracleInvalid,
        TxCode::OracleInvalid,
        TxCode::Ok,
        TxCode::Ok,
    ];
    assert_eq!(codes, expected.to_vec());
    let kinds: Vec<String> = instructions(&chain, "venue-c")
        .into_iter()
        .map(|i| i.1)
        .collect();
    assert_eq!(kinds, vec!["oracle_invalid"]);
    // A price from 2/3 of power makes it valid again.
    chain.prices.push(btc_price(60_500));
    let codes = chain.block(&[venue.report("venue-a", &[(a, "BTC-PERP", "1", "60500")])]);
    assert_eq!(codes, vec![TxCode::Ok]);
    assert!(breaker(&chain).validity.is_valid());
    // Quoted by too few validators: not priced, not trusted.
    chain.underquoted.push(PriceTarget::Market(btc()));
    let codes = chain.block(&[refused(&mut venue, |s| {
        s.report("venue-a", &[(a, "BTC-PERP", "1.5", "60500")])
    })]);
    assert_eq!(codes, vec![TxCode::OracleInvalid]);
    assert!(breaker(&chain).validity.too_few_reporters);
    let height = chain.engine.height();
    assert!(crate::breakers::liquidation_blocked(chain.engine.state(), &btc(), height).is_some());
    // A 7% jump: too volatile for new exposure; liquidations go on.
    chain.prices.push(btc_price(64_800));
    let codes = chain.block(&[refused(&mut venue, |s| {
        s.report("venue-a", &[(a, "BTC-PERP", "1.5", "64800")])
    })]);
    assert_eq!(codes, vec![TxCode::OracleInvalid]);
    let state = chain.engine.state();
    assert!(state.breakers.markets[&btc()].validity.too_volatile);
    assert!(crate::breakers::liquidation_blocked(state, &btc(), chain.engine.height()).is_none());
    chain.prices.push(btc_price(65_000));
    let codes = chain.block(&[venue.report("venue-a", &[(a, "BTC-PERP", "1.5", "65000")])]);
    assert_eq!(codes, vec![TxCode::Ok]);
    assert_reloads(&chain);
}

#[test]
fn open_interest_caps_hold_per_market_and_per_venue() {
    let genesis = with_btc_breaker(
        GenesisMarketBreaker {
            open_interest_cap: Money::from_units(150_000),
            venue_open_interest_cap: Money::from_units(130_000),
            ..Default::default()
        },
        GenesisSystemBreaker::default(),
    );
    let mut chain = Chain::with_genesis(&genesis);
    let t1 = trader_with(&mut chain, 1, "50000").address();
    let t2 = trader_with(&mut chain, 2, "50000").address();
    let t3 = trader_with(&mut chain, 3, "50000").address();
    let mut venue_a = Signer::new(venue_key(0));
    let mut venue_b = Signer::new(venue_key(1));
    let codes = chain.block(&[
        venue_a.report("venue-a", &[(t1, "BTC-PERP", "1", "60000")]),
        venue_b.report("venue-b", &[(t2, "BTC-PERP", "1", "60000")]),
        // venue-a would hold 120k (under its 130k) but the market 180k.
        refused(&mut venue_a, |s| {
            s.report("venue-a", &[(t3, "BTC-PERP", "1", "60000")])
        }),
        // venue-a alone at 150k.
        refused(&mut venue_a, |s| {
            s.report("venue-a", &[(t1, "BTC-PERP", "2.5", "60000")])
        }),
        // Shorts grow the smaller side: the larger stays 120k.
        venue_a.report("venue-a", &[(t3, "BTC-PERP", "-1", "60000")]),
    ]);
    let expected = [
        TxCode::Ok,
        TxCode::Ok,
        TxCode::OpenInterestCap,
        TxCode::OpenInterestCap,
        TxCode::Ok,
    ];
    assert_eq!(codes, expected.to_vec());
    assert!(!breaker(&chain).open_interest_capped);
    // A report that reduces is never capped.
    let codes = chain.block(&[venue_a.report("venue-a", &[(t1, "BTC-PERP", "0.5", "60000")])]);
    assert_eq!(codes, vec![TxCode::Ok]);
}

#[test]
fn fund_coverage_below_one_makes_everything_reduce_only_until_it_recovers() {
    let genesis = with_btc_breaker(
        GenesisMarketBreaker::default(),
        GenesisSystemBreaker {
            coverage_stress_move_ppm: 500_000,
            tightened_margin_multiplier_ppm: 1_200_000,
            ..Default::default()
        },
    );
    let mut chain = Chain::with_genesis(&genesis);
    let t1 = trader_with(&mut chain, 1, "100000").address();
    let t2 = trader_with(&mut chain, 2, "100000").address();
    let t3 = trader_with(&mut chain, 3, "100000").address();
    let mut venue = Signer::new(venue_key(0));
    // Each would leave 0.5 x 1.8M - 100k = 800k unpaid: 1.6M > the 1M fund.
    let codes = chain.block(&[
        venue.report("venue-a", &[(t1, "BTC-PERP", "30", "60000")]),
        venue.report("venue-a", &[(t2, "BTC-PERP", "-30", "60000")]),
    ]);
    assert_eq!(codes, vec![TxCode::Ok, TxCode::Ok]);
    let system = &chain.engine.state().breakers.system;
    assert!(system.tripped);
    assert_eq!(system.stress_loss_top_two, Money::from_units(1_600_000));
    assert_eq!(system.coverage, Some(Ratio::from_ppm(625_000)));
    let kinds: Vec<String> = instructions(&chain, "venue-b")
        .into_iter()
        .map(|i| i.1)
        .collect();
    assert_eq!(kinds, vec!["system_reduce_only"]);
    // Already tripped: nothing for TripBreaker to do.
    let mut anyone = Signer::new(key(99));
    let codes = chain.block(&[
        refused(&mut venue, |s| {
            s.report("venue-a", &[(t3, "ETH-PERP", "1", "3000")])
        }),
        venue.report("venue-a", &[(t1, "BTC-PERP", "10", "60000")]),
        refused(&mut anyone, |s| s.trip_breaker(None)),
    ]);
    let expected = [
        TxCode::BreakerReduceOnly,
        TxCode::Ok,
        TxCode::BreakerConditionFalse,
    ];
    assert_eq!(codes, expected.to_vec());
    // The tightened margin applies from the next block on.
    let eth: MarketId = "ETH-PERP".parse().expect("id");
    let market = &chain.engine.state().markets[&eth];
    let tightened = Ratio::from_ppm(120_000);
    assert_eq!(market.margin.target, tightened);
    // 800k + 200k of stress loss is exactly the fund: covered, recovered.
    let codes = chain.block(&[venue.report("venue-a", &[(t2, "BTC-PERP", "-10", "60000")])]);
    assert_eq!(codes, vec![TxCode::Ok]);
    assert!(!chain.engine.state().breakers.system.tripped);
    let kinds: Vec<String> = instructions(&chain, "venue-b")
        .into_iter()
        .map(|i| i.1)
        .collect();
    assert_eq!(kinds, vec!["system_reduce_only", "system_recovered"]);
    chain.block(&[]);
    let market = &chain.engine.state().markets[&eth];
    assert_eq!(market.margin.target, market.initial_margin);
    assert_reloads(&chain);
}

#[test]
fn a_fund_drawdown_trips_the_system_breaker_for_the_window() {
    let genesis = with_btc_breaker(
        GenesisMarketBreaker::default(),
        GenesisSystemBreaker {
            fund_drawdown_max_ppm: 1_000,
            fund_drawdown_window_blocks: 5,
            ..Default::default()
        },
    );
    let mut chain = Chain::with_genesis(&genesis);
    let a = trader_with(&mut chain, 1, "10000").address();
    let mut venue = Signer::new(venue_key(0));
    chain.block(&[venue.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]);
    // -25%: a loss of 15,000 on 10,000 of equity; the backstop's bad debt
    // comes out of the fund: more than 0.1% of it.
    chain.prices.push(btc_price(45_000));
    let mut tripped_at = None;
    for _ in 0..4 {
        chain.block(&[]);
        if chain.engine.state().breakers.system.tripped {
            tripped_at = Some(chain.engine.height());
            break;
        }
    }
    let tripped_at = tripped_at.expect("the drawdown trips the system breaker");
    let system = &chain.engine.state().breakers.system;
    assert!(system.fund_drawdown > Money::from_units(1_000));
    assert_eq!(system.fund_high, Money::from_units(1_000_000));
    // The high leaves the window: the breaker clears.
    let mut cleared_at = None;
    for _ in 0..8 {
        chain.block(&[]);
        if !chain.engine.state().breakers.system.tripped {
            cleared_at = Some(chain.engine.height());
            break;
        }
    }
    assert_eq!(cleared_at, Some(tripped_at + 5));
    assert_reloads(&chain);
}

#[test]
fn an_invariant_breach_halts_its_market_and_the_chain_goes_on() {
    let mut chain = Chain::new();
    let a = trader_with(&mut chain, 1, "20000").address();
    let mut venue = Signer::new(venue_key(0));
    let mut anyone = Signer::new(key(99));
    // Nothing holds: TripBreaker is refused and changes nothing.
    let codes = chain.block(&[
        refused(&mut anyone, |s| s.trip_breaker(Some("BTC-PERP"))),
        refused(&mut anyone, |s| s.trip_breaker(None)),
    ]);
    assert_eq!(codes, vec![TxCode::BreakerConditionFalse; 2]);
    // A bug (injected here) breaks BTC's totals: anyone may prove it.
    let totals = chain
        .engine
        .state
        .market_totals
        .get_mut(&btc())
        .expect("listed");
    totals.net_long = totals
        .net_long
        .checked_add("1".parse().expect("qty"))
        .expect("fits");
    let codes = chain.block(&[
        anyone.trip_breaker(Some("BTC-PERP")),
        refused(&mut venue, |s| {
            s.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])
        }),
        venue.report("venue-a", &[(a, "ETH-PERP", "1", "3000")]),
        refused(&mut anyone, |s| s.trip_breaker(Some("BTC-PERP"))),
    ]);
    let expected = [
        TxCode::Ok,
        TxCode::MarketPaused,
        TxCode::Ok,
        TxCode::BreakerConditionFalse,
    ];
    assert_eq!(codes, expected.to_vec());
    assert_eq!(
        breaker(&chain).status,
        MarketStatus::Paused(PauseCause::Invariant)
    );
    assert!(breaker(&chain).halt_reason.contains("net long"));
    let kinds: Vec<String> = instructions(&chain, "venue-a")
        .into_iter()
        .map(|i| i.1)
        .collect();
    assert_eq!(kinds, vec!["market_halted"]);
    // A breach the block itself reaches is found at its end.
    let eth: MarketId = "ETH-PERP".parse().expect("id");
    let totals = chain
        .engine
        .state
        .market_totals
        .get_mut(&eth)
        .expect("listed");
    totals.net_short = totals
        .net_short
        .checked_add("1".parse().expect("qty"))
        .expect("fits");
    let codes = chain.block(&[venue.report("venue-a", &[(a, "ETH-PERP", "2", "3000")])]);
    assert_eq!(codes, vec![TxCode::Ok]);
    let status = chain.engine.state().breakers.markets[&eth].status;
    assert_eq!(status, MarketStatus::Paused(PauseCause::Invariant));
    chain.block(&[]);
}

#[test]
fn trip_breaker_sees_the_coverage_of_positions_opened_earlier_in_the_block() {
    let genesis = with_btc_breaker(
        GenesisMarketBreaker::default(),
        GenesisSystemBreaker {
            coverage_stress_move_ppm: 500_000,
            ..Default::default()
        },
    );
    let mut chain = Chain::with_genesis(&genesis);
    let t1 = trader_with(&mut chain, 1, "100000").address();
    let t2 = trader_with(&mut chain, 2, "100000").address();
    let mut venue = Signer::new(venue_key(0));
    let mut anyone = Signer::new(key(99));
    // The two positions leave 1.6M unpaid under the stress, more than the
    // 1M fund: the condition holds inside the block, before its end sees it
    // (the running index leaves out the accounts the block touched).
    let codes = chain.block(&[
        venue.report("venue-a", &[(t1, "BTC-PERP", "30", "60000")]),
        venue.report("venue-a", &[(t2, "BTC-PERP", "-30", "60000")]),
        anyone.trip_breaker(None),
    ]);
    assert_eq!(codes, vec![TxCode::Ok, TxCode::Ok, TxCode::Ok]);
    let system = &chain.engine.state().breakers.system;
    assert!(system.tripped);
    assert_eq!(system.tripped_since, chain.engine.height());
    assert_eq!(system.stress_loss_top_two, Money::from_units(1_600_000));
    assert_reloads(&chain);
}
