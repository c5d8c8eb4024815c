//! OfferSnapshot and ApplySnapshotChunk: restoring an empty node from a peer's snapshot.

use std::sync::Mutex;

use clearnode_engine::Engine;
use clearnode_store::Store;
use tendermint_proto::v0_38::abci::{
    response_apply_snapshot_chunk::Result as ApplyResult,
    response_offer_snapshot::Result as OfferResult, RequestApplySnapshotChunk,
    RequestOfferSnapshot, ResponseApplySnapshotChunk, ResponseOfferSnapshot,
};

use crate::app::{fatal, lock, StoreSource};
use crate::snapshot::{Chunk, Offer, Restore};

/// Accepts a snapshot whose manifest is whole and names the app hash CometBFT's light client
/// verified for its height, on a node with no state yet.
pub(crate) fn offer(
    store: &Store,
    restoring: &Mutex<Option<Restore>>,
    request: &RequestOfferSnapshot,
) -> ResponseOfferSnapshot {
    let result = if store.latest().unwrap_or_else(|e| fatal(e)).is_some() {
        // Only an empty node restores; CometBFT does not offer otherwise.
        OfferResult::Abort
    } else {
        match request
            .snapshot
            .as_ref()
            .map(|snapshot| Restore::offer(snapshot, &request.app_hash))
        {
            Some(Ok(restore)) => {
                tracing::info!(
                    height = restore.height,
                    chunks = restore.manifest.chunk_hashes.len(),
                    "restoring a state-sync snapshot"
                );
                *lock(restoring) = Some(restore);
                OfferResult::Accept
            }
            Some(Err(Offer::RejectFormat)) => OfferResult::RejectFormat,
            Some(Err(Offer::Reject)) | None => OfferResult::Reject,
        }
    };
    ResponseOfferSnapshot {
        result: result.into(),
    }
}

/// What applying a chunk did: the answer for CometBFT and, when it completed the restore, the
/// engine loaded from the restored state.
pub(crate) struct Applied {
    pub(crate) response: ResponseApplySnapshotChunk,
    pub(crate) engine: Option<Engine>,
    pub(crate) height: u64,
}

/// Takes a chunk that hashes to the manifest's entry; asks for a mismatching one again from
/// another peer; restores the store once every chunk is here.
pub(crate) fn apply(
    store: &Store,
    restoring: &Mutex<Option<Restore>>,
    request: RequestApplySnapshotChunk,
) -> Applied {
    let answer = |result: ApplyResult| Applied {
        response: ResponseApplySnapshotChunk {
            result: result.into(),
            ..Default::default()
        },
        engine: None,
        height: 0,
    };
    let mut guard = lock(restoring);
    let Some(restore) = guard.as_mut() else {
        return answer(ApplyResult::Abort);
    };
    match restore.apply(request.index, &request.chunk) {
        Chunk::Kept => answer(ApplyResult::Accept),
        Chunk::Refetch => {
            tracing::warn!(
                index = request.index,
                sender = request.sender,
                "a snapshot chunk does not match its manifest: refetching it from another peer"
            );
            Applied {
                response: ResponseApplySnapshotChunk {
                    result: ApplyResult::Retry.into(),
                    refetch_chunks: vec![request.index],
                    reject_senders: vec![request.sender],
                },
                engine: None,
                height: 0,
            }
        }
        Chunk::Reject => {
            *guard = None;
            answer(ApplyResult::RejectSnapshot)
        }
        Chunk::Complete => {
            let Some(restore) = guard.take() else {
                return answer(ApplyResult::Abort);
            };
            let height = restore.height;
            let app_hash = restore.manifest.app_hash;
            let restored = restore
                .into_pairs()
                .map_err(|e| e.to_string())
                .and_then(|pairs| {
                    store
                        .restore(height, pairs, app_hash)
                        .map_err(|e| e.to_string())
                });
            match restored {
                Ok(_) => {
                    let engine = Engine::load(&StoreSource(store)).unwrap_or_else(|e| {
                        fatal(format!("the restored state at {height} does not load: {e}"))
                    });
                    tracing::info!(
                        height,
                        app_hash = hex::encode_upper(app_hash),
                        "restored state from a snapshot"
                    );
                    Applied {
                        engine: Some(engine),
                        height,
                        ..answer(ApplyResult::Accept)
                    }
                }
                Err(e) => {
                    tracing::warn!(height, "rejecting a snapshot: {e}");
                    answer(ApplyResult::RejectSnapshot)
                }
            }
        }
    }
}
