//! The liquidation ladder and the margin passport, on the engine.

use clearnode_proto::state::v1 as pb;
use clearnode_types::TxCode;
use prost::Message;

use super::{btc_price, funded_trader, Chain};
use crate::load::StateSource;
use crate::testkit::{key, venue_key, Signer};

#[test]
fn an_account_under_water_is_offered_and_taken_over_for_a_penalty() {
    let mut chain = Chain::new();
    let trader = funded_trader(&mut chain, 1);
    let a = trader.address();
    let mut venue_a = Signer::new(venue_key(0));
    chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]);
    // A liquidator with 100,000 on venue-a.
    let mut liquidator = funded_trader(&mut chain, 9);
    assert_eq!(
        chain.block(&[liquidator.register_liquidator()]),
        vec![TxCode::Ok]
    );
    // At 51,000: equity 1,000 under maintenance 1,530.
    chain.prices.push(btc_price(51_000));
    chain.block(&[]);
    let order_key = (
        a,
        "BTC-PERP".parse().expect("id"),
        "venue-a".parse().expect("id"),
    );
    let order = chain
        .engine
        .state()
        .liquidation_orders
        .get(&order_key)
        .cloned()
        .expect("posted");
    // 20% of the position; the band: 34.6% under water x 1.5 x 3% maintenance.
    assert_eq!(order.quantity.to_string(), "0.2");
    assert_eq!(order.side, 1);
    assert_eq!(order.limit_price.to_string(), "50204.961");
    assert_eq!(order.deadline_height, order.posted_height + 10);

    let mut outsider = Signer::new(key(8));
    let mut tries = vec![
        (
            outsider.take_over(a, "BTC-PERP", "venue-a", "0.1", "51000"),
            TxCode::NotLiquidator,
        ),
        (
            liquidator.take_over(a, "BTC-PERP", "venue-a", "0.1", "50000"),
            TxCode::OutsidePriceBand,
        ),
    ];
    liquidator.sequence -= 1;
    tries.push((
        liquidator.take_over(a, "BTC-PERP", "venue-a", "0.3", "51000"),
        TxCode::QuantityAboveOrder,
    ));
    liquidator.sequence -= 1;
    tries.push((
        liquidator.take_over(a, "ETH-PERP", "venue-a", "0.1", "3000"),
        TxCode::NoLiquidationOrder,
    ));
    liquidator.sequence -= 1;
    for (tx, code) in tries {
        assert_eq!(chain.block(&[tx]), vec![code]);
    }

    let fund_before = chain.engine.state().insurance_fund.balance;
    let take = liquidator.take_over(a, "BTC-PERP", "venue-a", "0.2", "50500");
    assert_eq!(chain.block(&[take]), vec![TxCode::Ok]);
    let state = chain.engine.state();
    let account = &state.accounts[&a];
    let btc_a = (
        "BTC-PERP".parse().expect("id"),
        "venue-a".parse().expect("id"),
    );
    assert_eq!(
        account.positions.get(&btc_a).unwrap().size.to_string(),
        "0.8"
    );
    let taken = &state.accounts[&liquidator.address()]
        .positions
        .get(&btc_a)
        .unwrap();
    assert_eq!(
        (taken.size.to_string(), taken.entry_price.to_string()),
        ("0.2".into(), "50500".into())
    );
    // 0.2 x (50,500 - 60,000) realized, settled against the venue.
    assert_eq!(state.venue_settlements[&btc_a.1].to_string(), "1900");
    let penalty = account
        .settled_pnl
        .checked_add("1900".parse().expect("money"))
        .expect("fits")
        .checked_neg()
        .expect("fits");
    assert!(penalty.is_positive(), "a penalty was paid: {penalty}");
    let fund_gain = state
        .insurance_fund
        .balance
        .checked_sub(fund_before)
        .expect("fits");
    assert_eq!(
        fund_gain
            .checked_add(state.accounts[&liquidator.address()].settled_pnl)
            .expect("fits"),
        penalty
    );
    // The ladder offers the next slice: 20% of what is left.
    assert_eq!(
        state.liquidation_orders[&order_key].quantity.to_string(),
        "0.16"
    );

    // The venue was told, in order: the account went under water, its
    // position was offered, and taken over.
    let kinds: Vec<String> = chain
        .committed
        .scan_prefix(b"instr/venue-a/")
        .expect("scans")
        .iter()
        .map(|(_, v)| pb::Instruction::decode(v.as_slice()).expect("decodes").kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "liquidating",
            "liquidation_order",
            "take_over",
            "liquidation_order"
        ]
    );

    // The price recovers: the orders are cancelled and the account leaves liquidation.
    chain.prices.push(btc_price(60_000));
    chain.block(&[]);
    let state = chain.engine.state();
    assert!(state.liquidation_orders.is_empty());
    assert_eq!(state.accounts[&a].liquidating_since, 0);
}

#[test]
fn the_margin_passport_agrees_with_the_report_check_to_the_last_unit() {
    let mut chain = Chain::new();
    let trader = funded_trader(&mut chain, 1);
    let a = trader.address();
    let mut venue_a = Signer::new(venue_key(0));
    chain.block(&[venue_a.report("venue-a", &[(a, "ETH-PERP", "-10", "3000")])]);
    let allowance = |chain: &Chain| {
        let state = chain.engine.state();
        let open_interest = state
            .market_totals
            .iter()
            .map(|(id, t)| (id.clone(), (t.long, t.short)))
            .collect();
        crate::margin::passport::passport(
            &state.accounts[&a],
            &"venue-a".parse().expect("id"),
            &state.markets,
            &state.assets,
            &open_interest,
            state.params.position_size_max,
        )
        .expect("computes")
    };
    let btc = allowance(&chain)
        .into_iter()
        .find(|m| m.market.as_str() == "BTC-PERP")
        .expect("listed");
    // 10,000 of equity; 30,000 of ETH short needs 3,000 at 10%: 7,000 left,
    // which carries 140,000 of BTC at 5%: 2.333333333 BTC.
    assert_eq!(btc.long.to_string(), "2.333333333");
    let one_more = clearnode_num::Quantity::from_raw(btc.long.raw() + 1).to_string();
    let more = venue_a.report("venue-a", &[(a, "BTC-PERP", &one_more, "60000")]);
    assert_eq!(
        chain.block(&[more]),
        vec![TxCode::InsufficientInitialMargin]
    );
    venue_a.sequence -= 1;
    let exactly = venue_a.report(
        "venue-a",
        &[(a, "BTC-PERP", &btc.long.to_string(), "60000")],
    );
    assert_eq!(chain.block(&[exactly]), vec![TxCode::Ok]);
    // The ETH short can be bought back, and the same 3,000 of margin then
    // carries 10 ETH long: 20, plus the rounding slack the BTC leg left.
    let eth = allowance(&chain)
        .into_iter()
        .find(|m| m.market.as_str() == "ETH-PERP")
        .expect("listed");
    assert_eq!(eth.long.to_string(), "20.000000003");
}
