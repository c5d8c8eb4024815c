//! The backstop at the liquidation deadline, bad debt paid by the insurance
//! fund up to its per-market cap, and auto-deleveraging of the rest.

use clearnode_num::{Money, Quantity};
use clearnode_proto::state::v1 as pb;
use clearnode_types::{Address, TxCode};
use prost::Message;

use super::{btc_price, trader_with as trader, Chain};
use crate::load::StateSource;
use crate::testkit::{genesis, venue_key, Signer};
use crate::BACKSTOP;

fn money(text: &str) -> Money {
    text.parse().expect("money")
}

fn size(chain: &Chain, account: Address, market: &str, venue: &str) -> Quantity {
    chain
        .engine
        .state()
        .accounts
        .get(&account)
        .and_then(|a| {
            a.positions
                .get(&(market.parse().expect("id"), venue.parse().expect("id")))
        })
        .map_or(Quantity::ZERO, |p| p.size)
}

fn settled(chain: &Chain, account: Address) -> Money {
    chain.engine.state().accounts[&account].settled_pnl
}

fn instructions(chain: &Chain, venue: &str, kind: &str) -> Vec<pb::Instruction> {
    chain
        .committed
        .scan_prefix(format!("instr/{venue}/").as_bytes())
        .expect("scans")
        .iter()
        .map(|(_, v)| pb::Instruction::decode(v.as_slice()).expect("decodes"))
        .filter(|i| i.kind == kind)
        .collect()
}

/// Runs empty blocks until the backstop has taken the account over.
fn until_backstopped(chain: &mut Chain, account: Address) {
    for _ in 0..12 {
        chain.block(&[]);
        if chain.engine.state().accounts[&account].positions.is_empty() {
            return;
        }
    }
    panic!("the backstop never took {account} over");
}

#[test]
fn an_order_no_liquidator_takes_goes_to_the_backstop_and_the_fund_pays_the_bad_debt() {
    let mut chain = Chain::new();
    let a = trader(&mut chain, 1, "10000").address();
    let mut venue_a = Signer::new(venue_key(0));
    chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]);
    // At 51,000 the account is under maintenance and offered; nobody takes it.
    chain.prices.push(btc_price(51_000));
    chain.block(&[]);
    assert!(!chain.engine.state().liquidation_orders.is_empty());
    // At 49,000 it is bankrupt: 10,000 of collateral, 11,000 of loss.
    chain.prices.push(btc_price(49_000));
    let fund_before = chain.engine.state().insurance_fund;
    until_backstopped(&mut chain, a);

    let state = chain.engine.state();
    assert_eq!(
        size(&chain, BACKSTOP, "BTC-PERP", "venue-a").to_string(),
        "1"
    );
    // The account ends at exactly zero equity: the fund paid its 1,000 of debt.
    assert_eq!(settled(&chain, a), money("-10000"));
    assert_eq!(state.accounts[&a].risk.equity, Money::ZERO);
    assert_eq!(state.insurance_fund.payouts, money("1000"));
    assert_eq!(
        state.insurance_fund.balance,
        fund_before
            .balance
            .checked_sub(money("1000"))
            .expect("fits")
    );
    assert_eq!(state.insurance_fund.adl_collected, Money::ZERO);
    // The venue was told, with the debt, and the backstop's book is offered
    // to liquidators without a deadline.
    let told = instructions(&chain, "venue-a", "backstop");
    assert_eq!(told.len(), 1);
    assert_eq!(
        (
            told[0].quantity.as_str(),
            told[0].price.as_str(),
            told[0].amount.as_str()
        ),
        ("1", "49000", "-1000")
    );
    assert_eq!(told[0].counterparty, BACKSTOP.as_bytes().to_vec());
    let book_key = (
        BACKSTOP,
        "BTC-PERP".parse().expect("id"),
        "venue-a".parse().expect("id"),
    );
    let offered = state.liquidation_orders[&book_key].clone();
    assert_eq!(
        (offered.quantity.to_string(), offered.deadline_height),
        ("1".into(), 0)
    );
    // The book is not an account: it is in no health count.
    assert_eq!(state.system.accounts, 1);

    // A liquidator takes the book at its limit, without a penalty; the
    // book's realized loss (the liquidator's discount) is the fund's.
    let mut liquidator = trader(&mut chain, 9, "100000");
    chain.block(&[liquidator.register_liquidator()]);
    let limit = chain.engine.state().liquidation_orders[&book_key]
        .limit_price
        .to_string();
    let balance_before = chain.engine.state().insurance_fund.balance;
    let take = liquidator.take_over(BACKSTOP, "BTC-PERP", "venue-a", "1", &limit);
    assert_eq!(chain.block(&[take]), vec![TxCode::Ok]);
    let state = chain.engine.state();
    assert!(state.accounts[&BACKSTOP].positions.is_empty());
    assert_eq!(state.accounts[&BACKSTOP].settled_pnl, Money::ZERO);
    assert_eq!(settled(&chain, liquidator.address()), Money::ZERO);
    let discount = Quantity::from_units(1)
        .notional(
            clearnode_num::Price::from_units(49_000).expect("price"),
            clearnode_num::Rounding::Floor,
        )
        .and_then(|n| n.checked_sub(limit.parse::<Money>().expect("money")))
        .expect("fits");
    assert_eq!(
        state.insurance_fund.balance,
        balance_before.checked_sub(discount).expect("fits")
    );
    assert!(!state.liquidation_orders.contains_key(&book_key));
}

#[test]
fn positive_equity_left_at_the_deadline_goes_to_the_fund() {
    let mut chain = Chain::new();
    let a = trader(&mut chain, 1, "10000").address();
    let mut venue_a = Signer::new(venue_key(0));
    chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]);
    // 51,000: equity 1,000 under maintenance 1,530, for good.
    chain.prices.push(btc_price(51_000));
    let inflows_before = chain.engine.state().insurance_fund.inflows;
    until_backstopped(&mut chain, a);
    let state = chain.engine.state();
    assert_eq!(state.accounts[&a].risk.equity, Money::ZERO);
    assert_eq!(
        state.insurance_fund.inflows,
        inflows_before.checked_add(money("1000")).expect("fits")
    );
    assert_eq!(state.insurance_fund.payouts, Money::ZERO);
}

/// A long that goes bankrupt by 1,000 in a market whose cap lets the fund
/// pay only 300, against two profitable shorts, a hedged account and an
/// account without a position.
struct AdlScene {
    chain: Chain,
    bankrupt: Address,
    modest: Address,
    levered: Address,
    hedged: Address,
    flat: Address,
}

fn adl_scene(profit_share_max_ppm: u64) -> AdlScene {
    let mut genesis = genesis();
    genesis.markets[0].insurance_payout_per_block_max = money("300");
    genesis.params.liquidation.adl_profit_share_max_ppm = profit_share_max_ppm;
    let mut chain = Chain::with_genesis(&genesis);
    let bankrupt = trader(&mut chain, 1, "10000").address();
    let modest = trader(&mut chain, 2, "50000").address();
    let levered = trader(&mut chain, 3, "5000").address();
    let hedged = trader(&mut chain, 4, "10000").address();
    let flat = trader(&mut chain, 5, "10000").address();
    let mut venue_a = Signer::new(venue_key(0));
    let mut venue_b = Signer::new(venue_key(1));
    let reports = [
        venue_a.report(
            "venue-a",
            &[
                (bankrupt, "BTC-PERP", "1", "60000"),
                (modest, "BTC-PERP", "-1", "60000"),
                (hedged, "BTC-PERP", "-1", "60000"),
            ],
        ),
        venue_b.report(
            "venue-b",
            &[
                (levered, "BTC-PERP", "-1", "60000"),
                (hedged, "BTC-PERP", "1", "60000"),
            ],
        ),
    ];
    assert_eq!(chain.block(&reports), vec![TxCode::Ok; 2]);
    chain.prices.push(btc_price(49_000));
    AdlScene {
        chain,
        bankrupt,
        modest,
        levered,
        hedged,
        flat,
    }
}

#[test]
fn adl_collects_exactly_the_shortfall_from_the_most_levered_profitable_opposite_side() {
    let AdlScene {
        mut chain,
        bankrupt,
        modest,
        levered,
        hedged,
        flat,
    } = adl_scene(500_000);
    until_backstopped(&mut chain, bankrupt);
    let state = chain.engine.state();
    // The fund paid its cap, ADL the other 700, exactly.
    assert_eq!(state.insurance_fund.payouts, money("300"));
    assert_eq!(state.insurance_fund.adl_collected, money("700"));
    assert_eq!(state.insurance_fund.bad_debt_unresolved, Money::ZERO);
    assert_eq!(state.accounts[&bankrupt].risk.equity, Money::ZERO);
    // The more levered short (5,000 of collateral) went first and covered it
    // all: its whole short went to the backstop at 49,000, less 700.
    assert_eq!(size(&chain, levered, "BTC-PERP", "venue-b"), Quantity::ZERO);
    assert_eq!(settled(&chain, levered), money("10300"));
    // Nobody else paid: not the other short, not the hedged account (its net
    // exposure is flat), not the account without a position.
    for untouched in [modest, hedged, flat] {
        assert_eq!(settled(&chain, untouched), Money::ZERO, "{untouched}");
    }
    assert_eq!(
        size(&chain, modest, "BTC-PERP", "venue-a").to_string(),
        "-1"
    );
    assert_eq!(
        size(&chain, hedged, "BTC-PERP", "venue-a").to_string(),
        "-1"
    );
    // The backstop holds the bankrupt long and the short it took back.
    assert_eq!(
        size(&chain, BACKSTOP, "BTC-PERP", "venue-a").to_string(),
        "1"
    );
    assert_eq!(
        size(&chain, BACKSTOP, "BTC-PERP", "venue-b").to_string(),
        "-1"
    );
    let told = instructions(&chain, "venue-b", "adl");
    assert_eq!(told.len(), 1);
    assert_eq!(
        (
            told[0].account.clone(),
            told[0].quantity.as_str(),
            told[0].amount.as_str()
        ),
        (levered.as_bytes().to_vec(), "1", "700")
    );
}

#[test]
fn the_per_account_cap_spreads_adl_over_the_ranking_at_one_price_per_unit() {
    let mut scene = adl_scene(50_000);
    until_backstopped(&mut scene.chain, scene.bankrupt);
    let (chain, modest, levered) = (&scene.chain, scene.modest, scene.levered);
    let state = chain.engine.state();
    assert_eq!(state.insurance_fund.adl_collected, money("700"));
    // 5% of 11,000 of profit: the levered short pays 550 for 11/14 of a
    // unit (closed at the mark: 11,000 of profit per unit realized), the
    // modest one the remaining 150 for the rest.
    assert_eq!(settled(chain, levered), money("8092.857135"));
    assert_eq!(settled(chain, modest), money("2207.142865"));
    let modest_size = size(chain, modest, "BTC-PERP", "venue-a");
    let levered_size = size(chain, levered, "BTC-PERP", "venue-b");
    assert_eq!(levered_size.to_string(), "-0.214285715");
    assert_eq!(modest_size.to_string(), "-0.785714285");
    // Cut together: exactly the bankrupt long's one unit.
    assert_eq!(
        modest_size
            .checked_add(levered_size)
            .expect("fits")
            .to_string(),
        "-1"
    );
    for untouched in [scene.hedged, scene.flat] {
        assert_eq!(settled(chain, untouched), Money::ZERO);
    }
}

#[test]
fn a_takeover_that_would_leave_the_account_bankrupt_is_refused() {
    let mut chain = Chain::new();
    let a = trader(&mut chain, 1, "10000").address();
    let mut venue_a = Signer::new(venue_key(0));
    chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]);
    let mut liquidator = trader(&mut chain, 9, "100000");
    chain.block(&[liquidator.register_liquidator()]);
    // At 50,100: equity 100, far under maintenance: a wide band.
    chain.prices.push(btc_price(50_100));
    chain.block(&[]);
    let key = (
        a,
        "BTC-PERP".parse().expect("id"),
        "venue-a".parse().expect("id"),
    );
    let order = chain.engine.state().liquidation_orders[&key].clone();
    assert_eq!(order.quantity.to_string(), "0.2");
    // At the limit, 0.2 BTC would cost the account about 420: more than its 100.
    let at_limit = order.limit_price.to_string();
    let deep = liquidator.take_over(a, "BTC-PERP", "venue-a", "0.2", &at_limit);
    assert_eq!(chain.block(&[deep]), vec![TxCode::OutsidePriceBand]);
    liquidator.sequence -= 1;
    // 100 below the mark costs it 20: taken.
    let fair = liquidator.take_over(a, "BTC-PERP", "venue-a", "0.2", "50000");
    assert_eq!(chain.block(&[fair]), vec![TxCode::Ok]);
    // The penalty takes at most what is left: never below zero.
    assert!(!chain.engine.state().accounts[&a].risk.equity.is_negative());
}
