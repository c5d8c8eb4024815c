//! Footprint of a large state: builds N accounts (the engine benchmark's
//! fixture: 3 venues, 5 markets, a position per market) into a real store,
//! then, in a fresh process, opens the store and loads the engine as
//! `clearnode start` does on restart, printing the time and memory it took.
//!
//! `cargo run --release --example footprint -- build <dir> <accounts>`
//! `cargo run --release --example footprint -- load <dir>`
//! `cargo run --release --example footprint -- latest-only <dir> <into>`
//! (bench/footprint.sh runs both and writes bench/results/footprint.json.)

// A measuring tool outside consensus: it reads the clock and unwraps on setup.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "../../crates/engine/benches/fixture/mod.rs"]
mod fixture;

use std::path::Path;
use std::time::Instant;

use clearnode_abci::StoreSource;
use clearnode_engine::Engine;
use clearnode_store::Store;

/// Keys committed per version while building (bounds the tree batch in memory).
const KEYS_PER_VERSION: usize = 500_000;

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Disk bytes of the store at `dir` once reopened: recovery moves what the write-ahead log
/// still held into table files and deletes the log, as any restart does.
fn settled_bytes(dir: &Path) -> u64 {
    drop(Store::open(dir).unwrap());
    dir_bytes(dir)
}

/// `VmHWM` and `VmRSS` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn build(dir: &Path, accounts: u64) {
    let started = Instant::now();
    let source = fixture::state(accounts);
    let pairs: Vec<_> = source.0.into_iter().collect();
    let store = Store::open(dir).unwrap();
    let mut version = 0;
    for chunk in pairs.chunks(KEYS_PER_VERSION) {
        let writes = chunk
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        store
            .commit(store.prepare(version, writes).unwrap())
            .unwrap();
        version += 1;
    }
    // One block that prices every market computes and stores every account's risk, as a
    // running chain would have.
    let mut engine = Engine::load(&StoreSource(&store)).unwrap();
    engine
        .begin_block(fixture::header(engine.height() + 1), &fixture::prices(1001))
        .unwrap();
    let output = engine.end_block().unwrap();
    store
        .commit(store.prepare(version, output.writes).unwrap())
        .unwrap();
    let build_seconds = started.elapsed().as_secs();
    let with_log = dir_bytes(dir);
    // As `clearnode start` does when it stops: the next open has no log to replay.
    store.flush().unwrap();
    drop(store);
    // What a restart after `clearnode start` stopped cleanly costs to open.
    let reopening = Instant::now();
    let bytes = settled_bytes(dir);
    let open_after_shutdown_ms = reopening.elapsed().as_millis();
    println!(
        "{{\"accounts\": {accounts}, \"keys\": {}, \"disk_bytes_with_write_ahead_log\": {with_log}, \"open_after_shutdown_ms\": {open_after_shutdown_ms}, \"disk_bytes\": {bytes}, \"disk_bytes_per_account\": {}, \"build_seconds\": {build_seconds}}}",
        pairs.len(),
        bytes / accounts.max(1),
    );
}

fn load(dir: &Path) {
    let started = Instant::now();
    let store = Store::open(dir).unwrap();
    // The store alone: reads of committed state need no more (gRPC could serve them from
    // here; `clearnode start` serves after the load, when it can take submissions too).
    let open_ms = started.elapsed().as_millis();
    let engine = Engine::load(&StoreSource(&store)).unwrap();
    // `clearnode start` serves gRPC and starts CometBFT from here on.
    let load_ms = started.elapsed().as_millis();
    let (peak_kib, rss_kib) = memory_kib();
    let tables: Vec<String> = store
        .table_bytes_by_column_family()
        .unwrap()
        .iter()
        .map(|(name, bytes)| format!("\"{name}\": {bytes}"))
        .collect();
    println!(
        "{{\"accounts\": {}, \"open_ms\": {open_ms}, \"open_and_load_ms\": {load_ms}, \"rss_bytes\": {}, \"peak_rss_bytes\": {}, \"table_bytes\": {{{}}}}}",
        engine.state().accounts.len(),
        rss_kib * 1024,
        peak_kib * 1024,
        tables.join(", ")
    );
}

/// The latest version alone, as a store restored from a snapshot holds it (what pruning every
/// older version would leave): its disk bytes. Builds the whole tree in one batch, so it needs
/// several GB of memory per million accounts.
fn latest_only(dir: &Path, into: &Path) {
    let store = Store::open(dir).unwrap();
    let latest = store.latest().unwrap().unwrap();
    let pairs = store.export(latest.version).unwrap();
    let keys = pairs.len();
    drop(store);
    let restored = Store::open(into).unwrap();
    restored
        .restore(latest.version, pairs, latest.root_hash)
        .unwrap();
    drop(restored);
    println!(
        "{{\"keys\": {keys}, \"latest_only_disk_bytes\": {}}}",
        settled_bytes(into)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("build"), Some(dir), Some(accounts)) => {
            build(Path::new(dir), accounts.parse().unwrap())
        }
        (Some("load"), Some(dir), None) => load(Path::new(dir)),
        (Some("latest-only"), Some(dir), Some(into)) => {
            latest_only(Path::new(dir), Path::new(into))
        }
        _ => {
            eprintln!(
                "usage: footprint build <dir> <accounts> | footprint load <dir> | footprint latest-only <dir> <into>"
            );
            std::process::exit(2);
        }
    }
}
