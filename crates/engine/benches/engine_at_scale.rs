//! The engine at scale: N accounts on 3 venues and 5 markets, every account
//! holding a position in every market.
//!
//! - `apply_position_updates`: one block of venue reports (10,000 entries:
//!   5 reports of 2,000), from begin_block to end_block's writes.
//! - `margin_sweep_20pct`: a block in which every market moves 20% (up,
//!   then back), so every account's risk is recomputed.
//! - `crash_40pct`: the block in which every market falls 40% and the
//!   liquidation ladder starts; the slowest of the next ladder blocks is
//!   printed too.
//!
//! Run: `CLEARNODE_BENCH_ACCOUNTS=1000000 cargo bench -p clearnode-engine
//! --features testkit --bench engine_at_scale` (default 10,000 accounts,
//! so an accidental run is short). Never run by `cargo test`. With
//! `CLEARNODE_BENCH_CPU_TIME=1` blocks are timed in the thread's CPU time
//! instead of the wall clock (A/B comparisons on a shared machine).

// A benchmark: unwrap on setup is fine; the clock is for the printed ladder times.
#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

mod fixture;

use std::hint::black_box;
use std::time::Duration;

use clearnode_engine::testkit::{self, Signer};
use clearnode_engine::{Engine, PriceUpdate};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixture::{
    accounts, address, header, nanos, prices, size_nanos, state, Source, Timer, DEPOSIT_USD,
    ENTRIES_PER_REPORT, MARKETS, REPORTS_PER_BLOCK,
};

/// Ladder blocks timed after the crash (`CLEARNODE_BENCH_LADDER_BLOCKS`,
/// default 10; 0 times the crash block alone: at 50,000 accounts the
/// ladder blocks that backstop the bankrupt accounts take minutes).
fn ladder_blocks() -> u64 {
    std::env::var("CLEARNODE_BENCH_LADDER_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// One block: prices, transactions, end; returns the engine time.
fn block(engine: &mut Engine, prices: &[PriceUpdate], txs: &[Vec<u8>]) -> Duration {
    let height = engine.height() + 1;
    let timer = Timer::start();
    engine.begin_block(header(height), prices).unwrap();
    for tx in txs {
        let outcome = engine.deliver_tx(tx).unwrap();
        assert_eq!(outcome.code, clearnode_types::TxCode::Ok, "{}", outcome.log);
    }
    black_box(engine.end_block().unwrap());
    timer.elapsed()
}

/// The engine loaded from `source`, with every account's risk computed
/// (a first block nudges every price, which touches every holder).
fn loaded(source: &Source) -> Engine {
    let mut engine = Engine::load(source).unwrap();
    block(&mut engine, &prices(1001), &[]);
    engine
}

/// Reports for one block: entries walk through (account, market) pairs;
/// each entry's venue is the one that holds that position.
fn reports(signers: &mut [Signer], count: u64, block_index: u64) -> Vec<Vec<u8>> {
    let pairs = count * 5;
    let mut reports = Vec::new();
    for r in 0..REPORTS_PER_BLOCK {
        let first = (block_index * (REPORTS_PER_BLOCK * ENTRIES_PER_REPORT) as u64
            + (r * ENTRIES_PER_REPORT) as u64)
            % pairs;
        // One venue per report: take pairs whose position sits on it.
        let venue = r % 3;
        let mut entries = Vec::new();
        let mut pair = first;
        while entries.len() < ENTRIES_PER_REPORT {
            let (index, m) = (pair / 5, pair % 5);
            if usize::try_from((index + m) % 3).unwrap() == venue {
                let (market, price) = MARKETS[usize::try_from(m).unwrap()];
                let step = i128::from(block_index % 7 + 1);
                let size = nanos(size_nanos(i128::from(DEPOSIT_USD / 20) * step / 4, price));
                entries.push((address(index), market, size, price.to_string()));
            }
            pair = (pair + 1) % pairs;
        }
        let borrowed: Vec<_> = entries
            .iter()
            .map(|(a, m, s, p)| (*a, *m, s.as_str(), p.as_str()))
            .collect();
        reports.push(signers[venue].report(testkit::VENUES[venue], &borrowed));
    }
    reports
}

fn engine_at_scale(c: &mut Criterion) {
    let count = accounts();
    eprintln!("engine_at_scale: {count} accounts, 3 venues, 5 markets");
    let source = state(count);
    let mut engine = loaded(&source);

    let mut signers: Vec<Signer> = (0u8..3)
        .map(|i| Signer::new(testkit::venue_key(i)))
        .collect();
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (REPORTS_PER_BLOCK * ENTRIES_PER_REPORT) as u64,
    ));
    let mut block_index = 0;
    group.bench_function(format!("apply_position_updates/{count}"), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let txs = reports(&mut signers, count, block_index);
                block_index += 1;
                total += block(&mut engine, &[], &txs);
            }
            total
        });
    });

    group.throughput(Throughput::Elements(count));
    let mut up = true;
    group.bench_function(format!("margin_sweep_20pct/{count}"), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let moved = if up { prices(1200) } else { prices(1000) };
                up = !up;
                total += block(&mut engine, &moved, &[]);
            }
            total
        });
    });
    drop(engine);

    group.bench_function(format!("crash_40pct_first_block/{count}"), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let mut engine = loaded(&source);
                total += block(&mut engine, &prices(600), &[]);
                let ladder = ladder_blocks();
                let slowest = (0..ladder)
                    .map(|_| block(&mut engine, &[], &[]))
                    .max()
                    .unwrap_or_default();
                let orders = engine.state().liquidation_orders.len();
                eprintln!(
                    "crash_40pct: slowest of the next {ladder} ladder blocks {slowest:?}; {orders} liquidation orders open; health {:?}",
                    engine.state().system.health
                );
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, engine_at_scale);
criterion_main!(benches);
