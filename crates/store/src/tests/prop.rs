//! Random write-batch sequences against an in-memory model.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{apply, fresh};
use crate::{verify_membership, verify_non_membership, Write};

const KEYS: u8 = 10;

fn key(i: u8) -> Vec<u8> {
    format!("k/{i}").into_bytes()
}

fn write_strategy() -> impl Strategy<Value = Write> {
    (
        0..KEYS,
        prop_oneof![
            3 => Just(None),
            7 => prop::collection::vec(any::<u8>(), 0..4).prop_map(Some),
        ],
    )
        .prop_map(|(k, v)| (key(k), v))
}

fn batches_strategy() -> impl Strategy<Value = Vec<Vec<Write>>> {
    prop::collection::vec(prop::collection::vec(write_strategy(), 0..8), 1..7)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model_and_roots_are_reproducible(batches in batches_strategy()) {
        let (_da, a) = fresh();
        let (_db, b) = fresh();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut history: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = Vec::new();
        let mut last_root = [0u8; 32];

        for batch in &batches {
            let ca = apply(&a, batch.clone());
            let cb = apply(&b, batch.clone());
            prop_assert_eq!(ca, cb);
            last_root = ca.root_hash;
            for (k, v) in batch {
                match v {
                    Some(v) => model.insert(k.clone(), v.clone()),
                    None => model.remove(k),
                };
            }
            history.push(model.clone());
            for (version, state) in history.iter().enumerate() {
                for i in 0..KEYS {
                    let got = a.get(&key(i), version as u64).unwrap();
                    prop_assert_eq!(got.as_ref(), state.get(&key(i)), "v{} k{}", version, i);
                }
            }
        }

        let flat: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
        prop_assert_eq!(a.scan_prefix_latest(b"").unwrap(), flat.clone());
        for i in 0..KEYS {
            let got = a.get_latest(&key(i)).unwrap();
            prop_assert_eq!(got.as_ref(), model.get(&key(i)));
        }

        // The root commits to the state only: building the final state in one batch on a fresh
        // store gives the same root as the incremental history (deletes collapse correctly).
        let (_dc, c) = fresh();
        let genesis: Vec<Write> = flat.into_iter().map(|(k, v)| (k, Some(v))).collect();
        prop_assert_eq!(apply(&c, genesis).root_hash, last_root);

        // Every key has a verifying proof at the last version.
        let last = a.latest().unwrap().unwrap();
        for i in 0..KEYS {
            let (value, proof) = a.get_with_proof(&key(i), last.version).unwrap();
            prop_assert_eq!(value.as_ref(), model.get(&key(i)));
            match value {
                Some(v) => prop_assert!(verify_membership(&last.root_hash, &proof, &key(i), &v)),
                None => prop_assert!(verify_non_membership(&last.root_hash, &proof, &key(i))),
            }
        }
    }
}

fn set_heavy_batches() -> impl Strategy<Value = Vec<Vec<Write>>> {
    let write = (
        0..300u16,
        prop_oneof![1 => Just(None), 9 => prop::collection::vec(any::<u8>(), 0..6).prop_map(Some)],
    )
        .prop_map(|(k, v)| (format!("key/{k}").into_bytes(), v));
    prop::collection::vec(prop::collection::vec(write, 1..120), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// jmt's batch insertion (used for versions without deletions) gives exactly the root that
    /// one-by-one insertion gives, on top of any history.
    #[test]
    fn batch_insertion_gives_the_one_by_one_root(batches in set_heavy_batches()) {
        let (_dir, store) = fresh();
        apply(&store, vec![(b"genesis".to_vec(), Some(b"g".to_vec()))]);
        for (index, batch) in batches.into_iter().enumerate() {
            let version = index as u64 + 1;
            for only_sets in [true, false] {
                let value_set: BTreeMap<jmt::KeyHash, Option<Vec<u8>>> = batch
                    .iter()
                    .filter(|(_, v)| !only_sets || v.is_some())
                    .map(|(k, v)| (jmt::KeyHash::with::<sha2::Sha256>(k), v.clone()))
                    .collect();
                if value_set.is_empty() {
                    continue;
                }
                let reader = crate::reader::DbReader::new(&store.db);
                let tree = jmt::JellyfishMerkleTree::<_, sha2::Sha256>::new(&reader);
                let (one_by_one, _) = tree.put_value_set(value_set.clone(), version).unwrap();
                let (batched, _) = crate::commit::update_tree(&reader, version, value_set).unwrap();
                prop_assert_eq!(batched, one_by_one);
            }
            let sets: Vec<Write> = batch.into_iter().filter(|(_, v)| v.is_some()).collect();
            apply(&store, sets);
        }
    }
}
