//! ABCI Query: raw state reads at any retained height, with ics23 proofs.
//!
//! The answer's height is the state version H; the app hash that commits to
//! it is in the header of block H+1 (CometBFT's light-client convention).

use clearnode_store::Store;
use tendermint_proto::v0_38::abci::{RequestQuery, ResponseQuery};
use tendermint_proto::v0_38::crypto::{ProofOp, ProofOps};

use crate::convert::CODESPACE;

/// Path of raw state reads: `data` is the key.
pub const QUERY_PATH_STORE: &str = "/store";
/// Path of the app hash at a height.
pub const QUERY_PATH_APP_HASH: &str = "/app_hash";
/// Type of the proof op carrying an encoded `ics23.CommitmentProof`.
pub const PROOF_OP_TYPE: &str = "ics23:jmt-sha256";

/// Query code: unknown path.
const CODE_UNKNOWN_PATH: u32 = 1;
/// Query code: no such height or nothing committed yet.
const CODE_NO_STATE: u32 = 2;
/// Query code: the store failed.
const CODE_STORE: u32 = 3;

fn error(code: u32, log: impl Into<String>) -> ResponseQuery {
    ResponseQuery {
        code,
        log: log.into(),
        codespace: CODESPACE.to_string(),
        ..Default::default()
    }
}

/// Answers a query.
pub fn answer(store: &Store, request: RequestQuery) -> ResponseQuery {
    let version = match resolve_version(store, request.height) {
        Ok(version) => version,
        Err(response) => return *response,
    };
    match request.path.as_str() {
        QUERY_PATH_STORE | "store" => read(store, &request.data, version, request.prove),
        QUERY_PATH_APP_HASH => match store.root_hash(version) {
            Ok(Some(root)) => ResponseQuery {
                value: root.to_vec().into(),
                height: i64::try_from(version).unwrap_or(i64::MAX),
                ..Default::default()
            },
            Ok(None) => error(CODE_NO_STATE, format!("no state at height {version}")),
            Err(e) => error(CODE_STORE, e.to_string()),
        },
        other => error(
            CODE_UNKNOWN_PATH,
            format!("unknown path {other:?}; use {QUERY_PATH_STORE} or {QUERY_PATH_APP_HASH}"),
        ),
    }
}

fn resolve_version(store: &Store, height: i64) -> Result<u64, Box<ResponseQuery>> {
    let latest = match store.latest() {
        Ok(Some(committed)) => committed.version,
        Ok(None) => return Err(Box::new(error(CODE_NO_STATE, "nothing committed yet"))),
        Err(e) => return Err(Box::new(error(CODE_STORE, e.to_string()))),
    };
    match u64::try_from(height) {
        Ok(0) => Ok(latest),
        Ok(h) if h <= latest => Ok(h),
        _ => Err(Box::new(error(
            CODE_NO_STATE,
            format!("height {height} is not committed (latest {latest})"),
        ))),
    }
}

fn read(store: &Store, key: &[u8], version: u64, prove: bool) -> ResponseQuery {
    let height = i64::try_from(version).unwrap_or(i64::MAX);
    if !prove {
        return match store.get(key, version) {
            Ok(value) => ResponseQuery {
                key: key.to_vec().into(),
                value: value.unwrap_or_default().into(),
                height,
                ..Default::default()
            },
            Err(e) => error(CODE_STORE, e.to_string()),
        };
    }
    match store.get_with_proof(key, version) {
        Ok((value, proof)) => ResponseQuery {
            key: key.to_vec().into(),
            value: value.unwrap_or_default().into(),
            proof_ops: Some(ProofOps {
                ops: vec![ProofOp {
                    r#type: PROOF_OP_TYPE.to_string(),
                    key: key.to_vec(),
                    data: clearnode_store::encode_proof(&proof),
                }],
            }),
            height,
            ..Default::default()
        },
        Err(e) => error(CODE_STORE, e.to_string()),
    }
}
