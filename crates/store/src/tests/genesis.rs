//! Version 0: InitChain may run again after a crash before block 1 is committed.

use super::{apply, fresh, set, some};
use crate::{verify_membership, verify_non_membership, Store, StoreError};

#[test]
fn recommitting_genesis_replaces_it() {
    let (_dir, store) = fresh();
    let old = apply(
        &store,
        vec![set("old/a", "1"), set("shared", "old"), set("old/b", "2")],
    );
    assert_eq!(old.version, 0);

    let prepared = store
        .prepare(0, vec![set("shared", "new"), set("new/c", "3")])
        .unwrap();
    // Still the old genesis until commit.
    assert_eq!(store.latest().unwrap(), Some(old));
    assert_eq!(store.get_latest(b"old/a").unwrap(), some("1"));
    let new = store.commit(prepared).unwrap();
    assert_eq!(new.version, 0);
    assert_ne!(new.root_hash, old.root_hash);

    // Identical to a store that only ever saw the new genesis.
    let (_d2, reference) = fresh();
    assert_eq!(
        apply(&reference, vec![set("shared", "new"), set("new/c", "3")]),
        new
    );

    assert_eq!(store.latest().unwrap(), Some(new));
    assert_eq!(store.root_hash(0).unwrap(), Some(new.root_hash));
    assert_eq!(store.get(b"old/a", 0).unwrap(), None);
    assert_eq!(store.get(b"shared", 0).unwrap(), some("new"));
    assert_eq!(store.get_latest(b"old/b").unwrap(), None);
    let all = store.scan_prefix_latest(b"").unwrap();
    assert_eq!(
        all,
        vec![
            (b"new/c".to_vec(), b"3".to_vec()),
            (b"shared".to_vec(), b"new".to_vec())
        ]
    );

    // Proofs against the new genesis work, including absence of an old key.
    let (v, proof) = store.get_with_proof(b"shared", 0).unwrap();
    assert_eq!(v, some("new"));
    assert!(verify_membership(&new.root_hash, &proof, b"shared", b"new"));
    let (v, proof) = store.get_with_proof(b"old/a", 0).unwrap();
    assert_eq!(v, None);
    assert!(verify_non_membership(&new.root_hash, &proof, b"old/a"));

    // The chain continues identically to the reference.
    let b1 = vec![set("shared", "b1"), set("old/a", "again")];
    assert_eq!(apply(&store, b1.clone()), apply(&reference, b1));
}

#[test]
fn recommitting_genesis_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        apply(&store, vec![set("a", "1"), set("b", "1")]);
    }
    let new = {
        // After a crash before block 1: InitChain runs again on the reopened store.
        let store = Store::open(dir.path()).unwrap();
        let p = store.prepare(0, vec![set("b", "2")]).unwrap();
        store.commit(p).unwrap()
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.latest().unwrap(), Some(new));
    assert_eq!(store.get(b"a", 0).unwrap(), None);
    assert_eq!(store.get(b"b", 0).unwrap(), some("2"));
    assert_eq!(store.get_latest(b"a").unwrap(), None);
    apply(&store, vec![set("c", "3")]);
    assert!(matches!(
        store.prepare(0, vec![]),
        Err(StoreError::VersionNotNext { .. })
    ));
}

#[test]
fn genesis_can_be_replaced_by_an_empty_one_and_back() {
    let (_dir, store) = fresh();
    apply(&store, vec![set("a", "1")]);
    let p = store.prepare(0, vec![]).unwrap();
    let empty = store.commit(p).unwrap();
    assert_eq!(empty.root_hash, crate::EMPTY_ROOT_HASH);
    assert_eq!(store.get(b"a", 0).unwrap(), None);
    assert!(store.scan_prefix_latest(b"").unwrap().is_empty());
    let p = store.prepare(0, vec![set("a", "1")]).unwrap();
    let again = store.commit(p).unwrap();
    let (_d2, reference) = fresh();
    assert_eq!(apply(&reference, vec![set("a", "1")]), again);
}

#[test]
fn a_genesis_prepared_before_another_genesis_commit_is_stale() {
    let (_dir, store) = fresh();
    let first = store.prepare(0, vec![set("a", "1")]).unwrap();
    let second = store.prepare(0, vec![set("a", "2")]).unwrap();
    store.commit(first).unwrap();
    assert!(matches!(
        store.commit(second),
        Err(StoreError::StalePrepare { .. })
    ));
}
