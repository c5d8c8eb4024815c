//! Auto-deleveraging over many candidates: one account goes bankrupt in
//! BTC-PERP with a debt beyond what the insurance fund may pay per block,
//! so the block that backstops it collects the rest from the profitable
//! holders on the other side, every holder of the market a candidate
//! re-priced in full (`backstop/adl.rs`).
//!
//! `adl_block`: that block, from begin_block to end_block's writes, over
//! `CLEARNODE_BENCH_HOLDERS` holders (default 100,000; the fixture's
//! accounts: 45% of them short BTC-PERP at a profit after the drop, all of
//! them re-priced as candidates; about 1,000 reduced). The ADL events of
//! the block are printed. Run:
//! `cargo bench -p clearnode-engine --features testkit --bench adl`
//! (`CLEARNODE_BENCH_CPU_TIME=1` for CPU time). Never run by `cargo test`.

// A benchmark: unwrap on setup is fine; the clock is for the timings.
#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod fixture;

use std::hint::black_box;
use std::time::Duration;

use clearnode_engine::state::{Account, Position};
use clearnode_engine::{codec, keys, Engine, PriceTarget, PriceUpdate};
use clearnode_num::{Price, Quantity};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use fixture::{header, prices, state, Source, Timer};
use prost::Message;

/// The whale: 15.625 BTC-PERP long (the size of 1,000 of the fixture's
/// shorts) on one venue, 6.7x levered: a 20% drop leaves it 50,000 USD
/// short. With the fund paying nothing per block in BTC-PERP, ADL takes
/// its position from about 1,000 holders: the block is the selection over
/// every holder plus those reductions.
fn with_whale(source: &mut Source) {
    let whale = fixture::address(u64::MAX);
    let usdc: clearnode_types::AssetId = "USDC".parse().unwrap();
    let venue: clearnode_types::VenueId = clearnode_engine::testkit::VENUES[0].parse().unwrap();
    let collateral = Quantity::from_units(150_000);
    let account = Account {
        collateral: clearnode_engine::small_map::SmallMap::from([(usdc.clone(), collateral)]),
        authorized_venues: [venue.clone()].into(),
        ..Account::default()
    };
    source.0.insert(
        keys::account(&whale),
        codec::account_to_pb(&whale, &account).encode_to_vec(),
    );
    let market: clearnode_types::MarketId = "BTC-PERP".parse().unwrap();
    let position = Position {
        size: "15.625".parse().unwrap(),
        entry_price: Price::from_units(64_000).unwrap(),
        updated_height: 0,
    };
    let positions = std::collections::BTreeMap::from([((market.clone(), venue), position)]);
    source.0.insert(
        keys::positions(&whale),
        codec::positions_to_pb(&whale, &positions).encode_to_vec(),
    );
    // The fund pays nothing per block in BTC-PERP: ADL covers all of it.
    let market_key = keys::market(&market);
    let mut listed = codec::market_from_pb(
        clearnode_proto::state::v1::Market::decode(source.0[&market_key].as_slice()).unwrap(),
    )
    .unwrap();
    listed.insurance_payout_per_block_max = clearnode_num::Money::ZERO;
    source.0.insert(
        market_key,
        codec::market_to_pb(&listed).unwrap().encode_to_vec(),
    );
    // The ledger counts the whale's deposit too.
    let ledger_key = keys::ledger(&usdc);
    let ledger = codec::ledger_from_pb(
        clearnode_proto::state::v1::CollateralLedger::decode(source.0[&ledger_key].as_slice())
            .unwrap(),
    )
    .unwrap()
    .1;
    let ledger = clearnode_engine::state::Ledger {
        deposited: ledger.deposited.checked_add(collateral).unwrap(),
        ..ledger
    };
    source.0.insert(
        ledger_key,
        codec::ledger_to_pb(&usdc, &ledger).unwrap().encode_to_vec(),
    );
}

/// Runs a block with `prices` and commits its writes into `source`.
fn commit_block(engine: &mut Engine, source: &mut Source, prices: &[PriceUpdate]) {
    engine
        .begin_block(header(engine.height() + 1), prices)
        .unwrap();
    for (key, value) in engine.end_block().unwrap().writes {
        match value {
            Some(value) => source.0.insert(key, value),
            None => source.0.remove(&key),
        };
    }
}

/// BTC-PERP at 80% of its genesis price: the whale is bankrupt, the 3x
/// accounts are not.
fn btc_drop() -> Vec<PriceUpdate> {
    let mut moved = prices(1001);
    for update in &mut moved {
        if update.target == PriceTarget::Market("BTC-PERP".parse().unwrap()) {
            update.price = Price::from_units(64_000 * 8 / 10).unwrap();
        }
    }
    moved
}

fn adl(c: &mut Criterion) {
    let holders = std::env::var("CLEARNODE_BENCH_HOLDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    eprintln!("adl: {holders} holders in 5 markets, one bankrupt whale in BTC-PERP");
    let mut source = state(holders);
    with_whale(&mut source);
    let mut engine = Engine::load(&source).unwrap();
    commit_block(&mut engine, &mut source, &prices(1001));
    commit_block(&mut engine, &mut source, &btc_drop());
    drop(engine);

    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(format!("adl_block/{holders}"), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let mut engine = Engine::load(&source).unwrap();
                let timer = Timer::start();
                engine
                    .begin_block(header(engine.height() + 1), &[])
                    .unwrap();
                let output = black_box(engine.end_block().unwrap());
                total += timer.elapsed();
                let reductions = output.events.iter().filter(|e| e.kind == "adl").count();
                let backstops = output
                    .events
                    .iter()
                    .filter(|e| e.kind == "backstop")
                    .count();
                eprintln!("adl_block: {backstops} backstop(s), {reductions} ADL reductions");
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, adl);
criterion_main!(benches);
