//! Isolated margin: an isolated market is held only by isolated
//! sub-accounts, backed by its own insurance fund; its collapse reaches no
//! other account, no owner's cross collateral and not the shared fund.

use clearnode_num::{Money, Price};
use clearnode_types::genesis::Genesis;
use clearnode_types::{Address, TxCode};

use super::{btc_price, trader_with, Chain};
use crate::testkit::{genesis, venue_key, Signer};
use crate::BACKSTOP;

fn money(text: &str) -> Money {
    text.parse().expect("money")
}

fn alt_price(units: i64) -> crate::PriceUpdate {
    crate::PriceUpdate {
        target: crate::PriceTarget::Market("ALT-PERP".parse().expect("id")),
        price: Price::from_units(units).expect("positive"),
    }
}

/// The test kit's markets plus ALT-PERP: isolated, 10% initial margin, its
/// own fund of 1,000 USD.
fn isolated_genesis() -> Genesis {
    let mut genesis = genesis();
    let mut alt = genesis.markets[0].clone();
    alt.id = "ALT-PERP".parse().expect("id");
    alt.oracle_price = Price::from_units(10).expect("price");
    alt.initial_margin_ppm = 100_000;
    alt.basis_ppm = 20_000;
    alt.isolated = true;
    alt.isolated_insurance_fund = money("1000");
    genesis.markets.push(alt);
    genesis
}

fn equity(chain: &Chain, address: Address) -> Money {
    crate::margin::compute_risk(
        &chain.engine.state().accounts[&address],
        &chain.engine.state().markets,
        &chain.engine.state().assets,
        chain.engine.height(),
    )
    .expect("risk")
    .equity
}

#[test]
fn only_isolated_sub_accounts_hold_an_isolated_market_and_moves_keep_both_sides_margined() {
    let mut chain = Chain::with_genesis(&isolated_genesis());
    let mut owner = trader_with(&mut chain, 1, "10000");
    let cross = owner.address();
    let sub = Address::isolated(&cross, "ALT-PERP");
    let mut venue_a = Signer::new(venue_key(0));
    // Nothing moved yet: unknown market, more than the balance.
    let refused = [
        ("DOGE-PERP", "1", true, TxCode::UnknownMarket),
        ("ALT-PERP", "10001", true, TxCode::InsufficientCollateral),
        ("ALT-PERP", "1", false, TxCode::InsufficientCollateral),
    ];
    for (market, amount, into, code) in refused {
        let tx = owner.move_isolated(market, "USDC", amount, into);
        assert_eq!(chain.block(&[tx]), vec![code]);
        owner.sequence -= 1;
    }
    let fund_in = owner.move_isolated("ALT-PERP", "USDC", "1000", true);
    assert_eq!(chain.block(&[fund_in]), vec![TxCode::Ok]);
    let state = chain.engine.state();
    assert_eq!(
        state.accounts[&sub].isolated,
        Some((cross, "ALT-PERP".parse().expect("id")))
    );
    assert_eq!(equity(&chain, cross), money("9000"));
    assert_eq!(equity(&chain, sub), money("1000"));

    // ALT only for the sub-account, the sub-account only ALT; it reports
    // under its owner's authorization.
    let mismatched = [
        (cross, "ALT-PERP", "10", "10"),
        (sub, "BTC-PERP", "0.01", "60000"),
    ];
    for entry in mismatched {
        let tx = venue_a.report("venue-a", &[entry]);
        assert_eq!(chain.block(&[tx]), vec![TxCode::IsolationMismatch]);
        venue_a.sequence -= 1;
    }
    // 800 ALT = 8,000 USD at 10%: 800 of the sub-account's 1,000.
    let open = venue_a.report("venue-a", &[(sub, "ALT-PERP", "800", "10")]);
    assert_eq!(chain.block(&[open]), vec![TxCode::Ok]);
    // Taking out more than the position leaves is refused, the rest is fine.
    let too_much = owner.move_isolated("ALT-PERP", "USDC", "300", false);
    assert_eq!(chain.block(&[too_much]), vec![TxCode::BelowInitialMargin]);
    owner.sequence -= 1;
    let back = owner.move_isolated("ALT-PERP", "USDC", "150", false);
    assert_eq!(chain.block(&[back]), vec![TxCode::Ok]);
    assert_eq!(equity(&chain, cross), money("9150"));
    assert_eq!(equity(&chain, sub), money("850"));
}

#[test]
fn a_collapse_of_an_isolated_market_leaves_every_other_account_and_the_shared_fund_untouched() {
    let mut chain = Chain::with_genesis(&isolated_genesis());
    let mut long_owner = trader_with(&mut chain, 1, "10000");
    let mut short_owner = trader_with(&mut chain, 2, "10000");
    let bystander = trader_with(&mut chain, 3, "10000").address();
    let long_sub = Address::isolated(&long_owner.address(), "ALT-PERP");
    let short_sub = Address::isolated(&short_owner.address(), "ALT-PERP");
    let moves = [
        long_owner.move_isolated("ALT-PERP", "USDC", "1000", true),
        short_owner.move_isolated("ALT-PERP", "USDC", "3000", true),
    ];
    assert_eq!(chain.block(&moves), vec![TxCode::Ok; 2]);
    let mut venue_a = Signer::new(venue_key(0));
    let mut venue_b = Signer::new(venue_key(1));
    let reports = [
        venue_a.report(
            "venue-a",
            &[
                (long_sub, "ALT-PERP", "800", "10"),
                (long_owner.address(), "BTC-PERP", "0.05", "60000"),
            ],
        ),
        venue_b.report(
            "venue-b",
            &[
                (short_sub, "ALT-PERP", "-800", "10"),
                (bystander, "BTC-PERP", "-0.1", "60000"),
            ],
        ),
    ];
    assert_eq!(chain.block(&reports), vec![TxCode::Ok; 2]);
    chain.prices.push(btc_price(60_000));
    chain.block(&[]);
    let outside = [long_owner.address(), short_owner.address(), bystander];
    let before: Vec<Money> = outside.iter().map(|a| equity(&chain, *a)).collect();
    let shared_before = chain.engine.state().insurance_fund;

    // ALT halves: the long sub-account loses 4,000 on 1,000 of collateral.
    chain.prices.push(alt_price(5));
    for _ in 0..3 {
        chain.block(&[]);
    }
    let state = chain.engine.state();
    let alt = "ALT-PERP".parse().expect("id");
    let own_fund = state.isolated_funds[&alt];
    // Its own fund paid all it had; ADL took the other 2,000 from the
    // profitable short sub-account; the sub-account ends at zero.
    assert_eq!(
        (own_fund.payouts, own_fund.balance),
        (money("1000"), Money::ZERO)
    );
    assert_eq!(own_fund.adl_collected, money("2000"));
    assert_eq!(equity(&chain, long_sub), Money::ZERO);
    assert!(state.accounts[&long_sub].positions.is_empty());
    // The isolated market's book holds what was taken, not the shared book.
    let isolated_book = Address::isolated(&BACKSTOP, "ALT-PERP");
    assert!(!state.accounts[&isolated_book].positions.is_empty());
    assert!(state
        .accounts
        .get(&BACKSTOP)
        .is_none_or(|book| book.positions.is_empty()));
    // Nothing else moved: the owners' cross accounts (one holds BTC), the
    // bystander, and the shared fund.
    let after: Vec<Money> = outside.iter().map(|a| equity(&chain, *a)).collect();
    assert_eq!(after, before);
    assert_eq!(state.insurance_fund, shared_before);
}
