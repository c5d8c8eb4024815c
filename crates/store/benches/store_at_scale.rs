//! The store at scale: committed key updates per second through the
//! Jellyfish Merkle tree on RocksDB, proof generation and verification per
//! second, and how each grows with the number of keys.
//!
//! Run: `cargo bench -p clearnode-store --bench store_at_scale`.
//! Sizes: `CLEARNODE_BENCH_KEYS` (comma-separated key counts, default
//! `10000,100000,1000000`); `CLEARNODE_BENCH_KEYS_1E7=1` adds 10^7 (minutes
//! to fill, a few GB of disk). `CLEARNODE_BENCH_UPDATES` sets the updates
//! per committed version (default 10000). Never run by `cargo test`.

// A benchmark: unwrap on setup is fine, and the clock is criterion's.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use clearnode_store::{verify_membership, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Keys written per version while filling the store.
const FILL_BATCH: u64 = 100_000;

/// A seeded generator (xorshift64*) for reproducible key choices.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

/// A key shaped like the engine's account keys (`acct/` + 40 hex digits).
fn key(index: u64) -> Vec<u8> {
    format!("acct/{index:040x}").into_bytes()
}

/// A value of a typical account record's size, different per version.
fn value(index: u64, version: u64) -> Vec<u8> {
    let mut value = format!("{index}:{version}:").into_bytes();
    value.resize(120, b'v');
    value
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn sizes() -> Vec<u64> {
    let mut sizes = env_list("CLEARNODE_BENCH_KEYS", "10000,100000,1000000");
    if std::env::var("CLEARNODE_BENCH_KEYS_1E7").is_ok_and(|v| v == "1") {
        sizes.push(10_000_000);
    }
    sizes
}

/// A store holding `keys` keys, committed in batches; returns it with its latest version.
fn filled_store(dir: &std::path::Path, keys: u64) -> (Store, u64) {
    let store = Store::open(dir).unwrap();
    let mut version = 0;
    let mut start = 0;
    while start < keys {
        let end = (start + FILL_BATCH).min(keys);
        let writes = (start..end).map(|i| (key(i), Some(value(i, 0)))).collect();
        let prepared = store.prepare(version, writes).unwrap();
        store.commit(prepared).unwrap();
        version += 1;
        start = end;
    }
    (store, version - 1)
}

fn store_at_scale(c: &mut Criterion) {
    let updates = env_list("CLEARNODE_BENCH_UPDATES", "10000")
        .first()
        .copied()
        .unwrap_or(10_000);
    for keys in sizes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut version) = filled_store(dir.path(), keys);
        let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ keys);

        let mut group = c.benchmark_group("commit_updates");
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        group.throughput(Throughput::Elements(updates));
        group.bench_function(BenchmarkId::from_parameter(keys), |b| {
            b.iter(|| {
                version += 1;
                let writes = (0..updates)
                    .map(|_| {
                        let index = random.below(keys);
                        (key(index), Some(value(index, version)))
                    })
                    .collect();
                let prepared = store.prepare(version, writes).unwrap();
                black_box(store.commit(prepared).unwrap());
            });
        });
        group.finish();

        let mut group = c.benchmark_group("proof");
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("generate", keys), |b| {
            b.iter(|| {
                let index = random.below(keys);
                black_box(store.get_with_proof(&key(index), version).unwrap());
            });
        });
        let root = store.root_hash(version).unwrap().unwrap();
        let samples: Vec<_> = (0..256)
            .map(|_| {
                let k = key(random.below(keys));
                let (found, proof) = store.get_with_proof(&k, version).unwrap();
                (k, found.unwrap(), proof)
            })
            .collect();
        let mut next = 0;
        group.bench_function(BenchmarkId::new("verify", keys), |b| {
            b.iter(|| {
                let (k, v, proof) = &samples[next % samples.len()];
                next += 1;
                assert!(verify_membership(&root, proof, k, v));
            });
        });
        group.finish();
    }
}

criterion_group!(benches, store_at_scale);
criterion_main!(benches);
