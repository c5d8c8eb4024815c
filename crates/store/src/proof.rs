//! ics23 proofs against the store's root hashes.
//!
//! Proofs are produced by jmt's ics23 bridge (`get_with_ics23_proof`) and verified with the
//! `ics23` crate against [`proof_spec`], which is jmt's own spec for a SHA-256 tree.
//!
//! The tree commits to each value `v` as `0x01 ++ v`, because ics23 cannot prove an empty value
//! (nor, therefore, the absence of a key whose neighbour leaf has an empty value). So the
//! `value` inside an ics23 `ExistenceProof` from this store is `0x01 ++ v`; [`verify_membership`]
//! takes the plain `v` and adds the prefix. A third-party ics23 verifier must do the same.
//!
//! One case ics23 cannot express: a non-existence proof in an **empty** tree (there is no
//! neighbour leaf to show). For it the store returns a `NonExistenceProof` with the key and no
//! neighbours; [`verify_non_membership`] accepts exactly that proof, and only against
//! [`EMPTY_ROOT_HASH`], which is not the hash of any tree content.

use ics23::commitment_proof::Proof;
use ics23::{CommitmentProof, HostFunctionsManager, NonExistenceProof};

use crate::keys::leaf_value;
use crate::EMPTY_ROOT_HASH;

/// The ics23 proof spec of the store's tree (jmt's SHA-256 spec, `jmt::ics23_spec()`).
pub fn proof_spec() -> ics23::ProofSpec {
    jmt::ics23_spec()
}

/// Whether `proof` shows that `key` maps to `value` (the plain value, as `Store::get` returns
/// it) in the tree whose root is `root`.
pub fn verify_membership(
    root: &[u8; 32],
    proof: &CommitmentProof,
    key: &[u8],
    value: &[u8],
) -> bool {
    ics23::verify_membership::<HostFunctionsManager>(
        proof,
        &proof_spec(),
        &root.to_vec(),
        key,
        &leaf_value(value),
    )
}

/// Whether `proof` shows that `key` is absent from the tree whose root is `root`.
pub fn verify_non_membership(root: &[u8; 32], proof: &CommitmentProof, key: &[u8]) -> bool {
    if *root == EMPTY_ROOT_HASH {
        // The empty tree contains nothing; accept only the explicit empty-tree proof of this key.
        return matches!(
            &proof.proof,
            Some(Proof::Nonexist(NonExistenceProof { key: k, left: None, right: None }))
                if k.as_slice() == key
        );
    }
    ics23::verify_non_membership::<HostFunctionsManager>(proof, &proof_spec(), &root.to_vec(), key)
}

/// The proof of absence of `key` in the empty tree (see the module docs).
pub(crate) fn empty_tree_proof(key: &[u8]) -> CommitmentProof {
    CommitmentProof {
        proof: Some(Proof::Nonexist(NonExistenceProof {
            key: key.to_vec(),
            left: None,
            right: None,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_matches_jmt() {
        let jmt_empty =
            jmt::JellyfishMerkleTree::<crate::reader::DbReader<'static>, sha2::Sha256>::EMPTY_ROOT;
        assert_eq!(jmt_empty.0, EMPTY_ROOT_HASH);
    }

    #[test]
    fn empty_tree_proof_only_for_empty_root_and_same_key() {
        let proof = empty_tree_proof(b"k");
        assert!(verify_non_membership(&EMPTY_ROOT_HASH, &proof, b"k"));
        assert!(!verify_non_membership(&EMPTY_ROOT_HASH, &proof, b"other"));
        assert!(!verify_non_membership(&[1; 32], &proof, b"k"));
        assert!(!verify_membership(&EMPTY_ROOT_HASH, &proof, b"k", b"v"));
        let nothing = CommitmentProof { proof: None };
        assert!(!verify_non_membership(&EMPTY_ROOT_HASH, &nothing, b"k"));
    }
}
