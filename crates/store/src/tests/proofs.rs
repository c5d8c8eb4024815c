//! ics23 membership and non-membership proofs.

use ics23::commitment_proof::Proof;

use super::{apply, del, fresh, set, some};
use crate::{proof_spec, verify_membership, verify_non_membership, EMPTY_ROOT_HASH};

#[test]
fn membership_proof_verifies_and_rejects_wrong_value_or_root() {
    let (_dir, store) = fresh();
    let c0 = apply(&store, vec![set("a", "1"), set("b", "2"), set("c", "3")]);
    let c1 = apply(&store, vec![set("b", "22")]);

    let (value, proof) = store.get_with_proof(b"b", 1).unwrap();
    assert_eq!(value, some("22"));
    assert!(matches!(proof.proof, Some(Proof::Exist(_))));
    assert!(verify_membership(&c1.root_hash, &proof, b"b", b"22"));
    assert!(!verify_membership(&c1.root_hash, &proof, b"b", b"2"));
    assert!(!verify_membership(&c1.root_hash, &proof, b"a", b"22"));
    assert!(!verify_membership(&c0.root_hash, &proof, b"b", b"22"));
    assert!(!verify_membership(&[0; 32], &proof, b"b", b"22"));
    assert!(!verify_non_membership(&c1.root_hash, &proof, b"b"));

    // Past versions prove against their own roots.
    let (value, proof) = store.get_with_proof(b"b", 0).unwrap();
    assert_eq!(value, some("2"));
    assert!(verify_membership(&c0.root_hash, &proof, b"b", b"2"));
    assert!(!verify_membership(&c1.root_hash, &proof, b"b", b"2"));
}

#[test]
fn non_membership_proofs_for_absent_and_deleted_keys() {
    let (_dir, store) = fresh();
    let keys: Vec<String> = (0..16).map(|i| format!("acct/{i:02}/risk")).collect();
    apply(&store, keys.iter().map(|k| set(k, "v")).collect());
    let c1 = apply(&store, vec![del("acct/07/risk")]);

    for absent in ["acct/07/risk", "nope", "acct/99/risk", "zzzz", "!"] {
        let (value, proof) = store.get_with_proof(absent.as_bytes(), 1).unwrap();
        assert_eq!(value, None, "{absent}");
        assert!(matches!(proof.proof, Some(Proof::Nonexist(_))));
        assert!(
            verify_non_membership(&c1.root_hash, &proof, absent.as_bytes()),
            "{absent}"
        );
        assert!(!verify_membership(
            &c1.root_hash,
            &proof,
            absent.as_bytes(),
            b"v"
        ));
        // The same proof says nothing about a present key.
        assert!(!verify_non_membership(
            &c1.root_hash,
            &proof,
            b"acct/03/risk"
        ));
    }

    // A present key has a membership proof, which is no non-membership proof.
    let (value, proof) = store.get_with_proof(b"acct/03/risk", 1).unwrap();
    assert_eq!(value, some("v"));
    assert!(!verify_non_membership(
        &c1.root_hash,
        &proof,
        b"acct/03/risk"
    ));

    // The deleted key was present at version 0.
    let (value, proof) = store.get_with_proof(b"acct/07/risk", 0).unwrap();
    assert_eq!(value, some("v"));
    assert!(verify_membership(
        &store.root_hash(0).unwrap().unwrap(),
        &proof,
        b"acct/07/risk",
        b"v"
    ));
}

#[test]
fn proofs_in_a_single_leaf_tree() {
    let (_dir, store) = fresh();
    let c0 = apply(&store, vec![set("only", "1")]);
    let (value, proof) = store.get_with_proof(b"only", 0).unwrap();
    assert_eq!(value, some("1"));
    assert!(verify_membership(&c0.root_hash, &proof, b"only", b"1"));
    // Absent keys hash to either side of the only leaf.
    for absent in ["a", "b", "c", "d", "e", "f"] {
        let (value, proof) = store.get_with_proof(absent.as_bytes(), 0).unwrap();
        assert_eq!(value, None);
        assert!(verify_non_membership(
            &c0.root_hash,
            &proof,
            absent.as_bytes()
        ));
    }
}

#[test]
fn non_membership_in_the_empty_tree() {
    let (_dir, store) = fresh();
    let c0 = apply(&store, vec![]);
    assert_eq!(c0.root_hash, EMPTY_ROOT_HASH);
    let (value, proof) = store.get_with_proof(b"k", 0).unwrap();
    assert_eq!(value, None);
    assert!(verify_non_membership(&c0.root_hash, &proof, b"k"));
    assert!(!verify_non_membership(&c0.root_hash, &proof, b"other"));
    let c1 = apply(&store, vec![set("k", "v")]);
    assert!(!verify_non_membership(&c1.root_hash, &proof, b"k"));
}

#[test]
fn spec_is_jmts() {
    assert_eq!(proof_spec(), jmt::ics23_spec());
}

#[test]
fn empty_values_are_provable() {
    let (_dir, store) = fresh();
    let c0 = apply(&store, vec![set("empty", ""), set("full", "x")]);
    let (value, proof) = store.get_with_proof(b"empty", 0).unwrap();
    assert_eq!(value, Some(Vec::new()));
    assert!(verify_membership(&c0.root_hash, &proof, b"empty", b""));
    assert!(!verify_membership(&c0.root_hash, &proof, b"empty", b"x"));
    // Absent keys next to the empty-valued leaf are provable too.
    for absent in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let (value, proof) = store.get_with_proof(absent.as_bytes(), 0).unwrap();
        assert_eq!(value, None);
        assert!(verify_non_membership(
            &c0.root_hash,
            &proof,
            absent.as_bytes()
        ));
    }
}
