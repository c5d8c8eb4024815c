//! `VenueService.StreamInstructions`: a venue's instructions from durable
//! state, in block order, then new blocks as they commit.

use std::time::Duration;

use clearnode_engine::keys;
use clearnode_proto::state::v1 as state_pb;
use clearnode_store::Store;
use clearnode_types::VenueId;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Instructions read per scan.
const BATCH_MAX: usize = 1_000;
/// How often a caught-up stream looks for new blocks.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Instructions buffered per stream before the sender waits for the venue.
const BUFFER: usize = 256;

/// The stream of a venue's instructions from `from_height` on.
pub type InstructionStream = ReceiverStream<Result<state_pb::Instruction, Status>>;

/// Starts streaming.
pub fn stream(store: Store, venue: VenueId, from_height: u64) -> Result<InstructionStream, Status> {
    if store
        .get_latest(&keys::venue(&venue))
        .map_err(|e| Status::internal(e.to_string()))?
        .is_none()
    {
        return Err(Status::not_found(format!("no venue {venue}")));
    }
    let (sender, receiver) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        if let Err(status) = follow(&store, &venue, from_height, &sender).await {
            let _ = sender.send(Err(status)).await;
        }
    });
    Ok(ReceiverStream::new(receiver))
}

async fn follow(
    store: &Store,
    venue: &VenueId,
    from_height: u64,
    sender: &mpsc::Sender<Result<state_pb::Instruction, Status>>,
) -> Result<(), Status> {
    let internal = |e: clearnode_store::StoreError| Status::internal(e.to_string());
    let mut start = keys::instruction(venue, from_height, 0);
    loop {
        let committed = store.latest().map_err(internal)?.map_or(0, |c| c.version);
        // Only whole committed blocks: stop before the next height's keys.
        let end = keys::instruction(venue, committed + 1, 0);
        let batch = if start < end {
            store
                .scan_range_latest(&start, &end, BATCH_MAX)
                .map_err(internal)?
        } else {
            Vec::new()
        };
        let full = batch.len() == BATCH_MAX;
        for (key, value) in batch {
            let instruction = state_pb::Instruction::decode(value.as_slice()).map_err(|e| {
                Status::data_loss(format!("stored instruction does not decode: {e}"))
            })?;
            if sender.send(Ok(instruction)).await.is_err() {
                return Ok(()); // The venue went away.
            }
            // The next key after this one.
            start = key;
            start.push(0);
        }
        if !full {
            if sender.is_closed() {
                return Ok(());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}
