//! Wire encoding of ics23 proofs, as carried in ABCI query answers and
//! gRPC audit answers (an encoded `cosmos.ics23.v1.CommitmentProof`).

use prost_013::Message;

/// Encodes a proof.
pub fn encode_proof(proof: &ics23::CommitmentProof) -> Vec<u8> {
    proof.encode_to_vec()
}

/// Decodes a proof received from a node.
pub fn decode_proof(bytes: &[u8]) -> Result<ics23::CommitmentProof, prost_013::DecodeError> {
    ics23::CommitmentProof::decode(bytes)
}
