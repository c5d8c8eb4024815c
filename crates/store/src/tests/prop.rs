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
