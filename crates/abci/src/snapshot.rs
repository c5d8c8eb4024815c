//! State-sync snapshots: their format, and the restore of one from chunks.
//!
//! A snapshot of height `H` is the store's pairs at version `H` (`Store::export`), in key order,
//! cut into chunks of about [`CHUNK_BYTES`]. Each chunk is a run of entries
//! `u32 BE key length ++ key ++ u32 BE value length ++ value`.
//!
//! The snapshot's `metadata` is its manifest: the app hash of `H` (32 bytes), the number of
//! chunks (u32 BE), then the SHA-256 of every chunk (32 bytes each). The snapshot's `hash` is the
//! SHA-256 of the manifest. A restoring node accepts a snapshot only when its manifest hashes to
//! that hash and names the app hash CometBFT's light client verified for `H`; it then checks
//! every chunk against the manifest as it arrives (a chunk that does not match is refetched,
//! from another peer), and the restored store against the app hash, before anything is used.

use clearnode_store::KeyValue;
use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::abci::Snapshot;

/// The only snapshot format.
pub const SNAPSHOT_FORMAT: u32 = 1;
/// Target size of a chunk; a chunk holds at least one entry, so one larger entry makes a larger
/// chunk. CometBFT's limit on a chunk message is 16 MB.
pub const CHUNK_BYTES: usize = 4 << 20;

const HASH_BYTES: usize = 32;
const LENGTH_BYTES: usize = 4;

/// Why a snapshot or a chunk is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The manifest does not decode.
    #[error("malformed snapshot manifest: {0}")]
    Manifest(&'static str),
    /// A chunk does not decode.
    #[error("malformed snapshot chunk: {0}")]
    Chunk(&'static str),
    /// A key or value too long for the format.
    #[error("an entry of {0} bytes is too long for a snapshot")]
    TooLong(usize),
}

/// What a snapshot promises: the app hash of its height and the hash of every chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The app hash (store root) at the snapshot's height.
    pub app_hash: [u8; 32],
    /// SHA-256 of each chunk, in order.
    pub chunk_hashes: Vec<[u8; 32]>,
}

impl Manifest {
    /// The manifest's bytes (a snapshot's `metadata`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HASH_BYTES * (self.chunk_hashes.len() + 1) + 4);
        out.extend_from_slice(&self.app_hash);
        let count = u32::try_from(self.chunk_hashes.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for hash in &self.chunk_hashes {
            out.extend_from_slice(hash);
        }
        out
    }

    /// Decodes a manifest, refusing trailing or missing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let (app_hash, rest) = split_hash(bytes).ok_or(SnapshotError::Manifest("no app hash"))?;
        let (count, mut rest) = split_u32(rest).ok_or(SnapshotError::Manifest("no chunk count"))?;
        if rest.len()
            != usize::try_from(count)
                .unwrap_or(usize::MAX)
                .saturating_mul(HASH_BYTES)
        {
            return Err(SnapshotError::Manifest("chunk count and hashes disagree"));
        }
        let mut chunk_hashes = Vec::new();
        while let Some((hash, tail)) = split_hash(rest) {
            chunk_hashes.push(hash);
            rest = tail;
        }
        Ok(Self {
            app_hash,
            chunk_hashes,
        })
    }

    /// The ABCI description of a snapshot of `height` with this manifest.
    pub fn snapshot(&self, height: u64) -> Snapshot {
        let metadata = self.encode();
        Snapshot {
            height,
            format: SNAPSHOT_FORMAT,
            chunks: u32::try_from(self.chunk_hashes.len()).unwrap_or(u32::MAX),
            hash: Sha256::digest(&metadata).to_vec().into(),
            metadata: metadata.into(),
        }
    }
}

fn split_hash(bytes: &[u8]) -> Option<([u8; 32], &[u8])> {
    let (hash, rest) = bytes.split_at_checked(HASH_BYTES)?;
    Some((hash.try_into().ok()?, rest))
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (number, rest) = bytes.split_at_checked(LENGTH_BYTES)?;
    Some((u32::from_be_bytes(number.try_into().ok()?), rest))
}

/// SHA-256 of a chunk.
pub fn chunk_hash(chunk: &[u8]) -> [u8; 32] {
    Sha256::digest(chunk).into()
}

/// Cuts `pairs` into chunks of about `chunk_bytes`; a state with no pairs gives one empty chunk
/// (CometBFT needs at least one).
pub fn encode_chunks(
    pairs: &[KeyValue],
    chunk_bytes: usize,
) -> Result<Vec<Vec<u8>>, SnapshotError> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    for (key, value) in pairs {
        for part in [key, value] {
            let length =
                u32::try_from(part.len()).map_err(|_| SnapshotError::TooLong(part.len()))?;
            chunk.extend_from_slice(&length.to_be_bytes());
            chunk.extend_from_slice(part);
        }
        if chunk.len() >= chunk_bytes {
            chunks.push(std::mem::take(&mut chunk));
        }
    }
    if !chunk.is_empty() || chunks.is_empty() {
        chunks.push(chunk);
    }
    Ok(chunks)
}

/// The entries of one chunk.
pub fn decode_chunk(mut chunk: &[u8]) -> Result<Vec<KeyValue>, SnapshotError> {
    let mut pairs = Vec::new();
    while !chunk.is_empty() {
        let (key, rest) = split_part(chunk).ok_or(SnapshotError::Chunk("truncated key"))?;
        let (value, rest) = split_part(rest).ok_or(SnapshotError::Chunk("truncated value"))?;
        pairs.push((key.to_vec(), value.to_vec()));
        chunk = rest;
    }
    Ok(pairs)
}

fn split_part(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, rest) = split_u32(bytes)?;
    rest.split_at_checked(usize::try_from(length).ok()?)
}

/// A snapshot being restored: its manifest and the chunks verified so far.
#[derive(Debug)]
pub struct Restore {
    /// The snapshot's height.
    pub height: u64,
    /// What the chunks must hash to.
    pub manifest: Manifest,
    chunks: Vec<Option<Vec<u8>>>,
}

/// Why an offered snapshot is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Not this one (its manifest is wrong or not for the trusted app hash).
    Reject,
    /// Not this format.
    RejectFormat,
}

/// What a chunk did.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Verified and kept; more are needed.
    Kept,
    /// Verified and kept; all chunks are here (take them with [`Restore::into_pairs`]).
    Complete,
    /// It does not hash to the manifest's entry: fetch it again, from someone else.
    Refetch,
    /// Its index is outside the snapshot.
    Reject,
}

impl Restore {
    /// Checks an offered snapshot against the app hash CometBFT verified for its height.
    pub fn offer(snapshot: &Snapshot, trusted_app_hash: &[u8]) -> Result<Self, Offer> {
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(Offer::RejectFormat);
        }
        let manifest = Manifest::decode(&snapshot.metadata).map_err(|_| Offer::Reject)?;
        let consistent = Sha256::digest(&snapshot.metadata).as_slice() == snapshot.hash.as_ref()
            && usize::try_from(snapshot.chunks).ok() == Some(manifest.chunk_hashes.len())
            && manifest.app_hash.as_slice() == trusted_app_hash
            && !manifest.chunk_hashes.is_empty();
        if !consistent {
            return Err(Offer::Reject);
        }
        Ok(Self {
            height: snapshot.height,
            chunks: vec![None; manifest.chunk_hashes.len()],
            manifest,
        })
    }

    /// Takes chunk `index` if it hashes to the manifest's entry.
    pub fn apply(&mut self, index: u32, chunk: &[u8]) -> Chunk {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        let (Some(expected), Some(slot)) = (
            self.manifest.chunk_hashes.get(index),
            self.chunks.get_mut(index),
        ) else {
            return Chunk::Reject;
        };
        if chunk_hash(chunk) != *expected {
            return Chunk::Refetch;
        }
        *slot = Some(chunk.to_vec());
        if self.chunks.iter().all(Option::is_some) {
            Chunk::Complete
        } else {
            Chunk::Kept
        }
    }

    /// Every pair of a complete snapshot, in order.
    pub fn into_pairs(self) -> Result<Vec<KeyValue>, SnapshotError> {
        let mut pairs = Vec::new();
        for chunk in self.chunks {
            pairs.extend(decode_chunk(
                &chunk.ok_or(SnapshotError::Chunk("missing"))?,
            )?);
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pairs(count: u8) -> Vec<KeyValue> {
        (0..count)
            .map(|i| (vec![b'k', i], vec![i; usize::from(i)]))
            .collect()
    }

    fn snapshot_of(pairs: &[KeyValue], chunk_bytes: usize) -> (Snapshot, Vec<Vec<u8>>) {
        let chunks = encode_chunks(pairs, chunk_bytes).unwrap();
        let manifest = Manifest {
            app_hash: [7; 32],
            chunk_hashes: chunks.iter().map(|c| chunk_hash(c)).collect(),
        };
        (manifest.snapshot(12), chunks)
    }

    #[test]
    fn chunks_round_trip_in_order() {
        let original = pairs(40);
        let chunks = encode_chunks(&original, 64).unwrap();
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        let decoded: Vec<KeyValue> = chunks
            .iter()
            .flat_map(|c| decode_chunk(c).unwrap())
            .collect();
        assert_eq!(decoded, original);
        assert_eq!(encode_chunks(&[], 64).unwrap(), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn a_truncated_chunk_does_not_decode() {
        let chunk = encode_chunks(&pairs(3), 1 << 20).unwrap().remove(0);
        for cut in 1..chunk.len() {
            let decoded = decode_chunk(&chunk[..cut]);
            // Entries end at 10 and 21 bytes.
            assert!(
                decoded.is_err() || [10, 21].contains(&cut),
                "cut at {cut}: {decoded:?}"
            );
        }
    }

    #[test]
    fn a_restore_takes_verified_chunks_in_any_order_and_yields_the_pairs() {
        let original = pairs(30);
        let (snapshot, chunks) = snapshot_of(&original, 50);
        let mut restore = Restore::offer(&snapshot, &[7; 32]).unwrap();
        let last = chunks.len() - 1;
        for (index, chunk) in chunks.iter().enumerate().rev() {
            let expected = if index == 0 {
                Chunk::Complete
            } else {
                Chunk::Kept
            };
            assert_eq!(
                restore.apply(u32::try_from(index).unwrap(), chunk),
                expected
            );
        }
        assert_eq!(restore.height, 12);
        assert!(last > 0);
        assert_eq!(restore.into_pairs().unwrap(), original);
    }

    #[test]
    fn a_tampered_chunk_is_refetched_and_the_genuine_one_then_accepted() {
        let (snapshot, chunks) = snapshot_of(&pairs(30), 50);
        let mut restore = Restore::offer(&snapshot, &[7; 32]).unwrap();
        let mut tampered = chunks[1].clone();
        tampered[6] ^= 1;
        assert_eq!(restore.apply(1, &tampered), Chunk::Refetch);
        assert_eq!(
            restore.apply(1, &chunks[1][..chunks[1].len() - 1]),
            Chunk::Refetch
        );
        assert_eq!(restore.apply(1, &chunks[1]), Chunk::Kept);
        let beyond = u32::try_from(chunks.len()).unwrap();
        assert_eq!(restore.apply(beyond, &chunks[0]), Chunk::Reject);
    }

    #[test]
    fn a_snapshot_is_refused_unless_its_manifest_is_whole_and_names_the_trusted_app_hash() {
        let (snapshot, _) = snapshot_of(&pairs(10), 20);
        assert!(Restore::offer(&snapshot, &[7; 32]).is_ok());
        assert_eq!(
            Restore::offer(&snapshot, &[8; 32]).unwrap_err(),
            Offer::Reject
        );

        let mut other_format = snapshot.clone();
        other_format.format = 2;
        assert_eq!(
            Restore::offer(&other_format, &[7; 32]).unwrap_err(),
            Offer::RejectFormat
        );

        let mut wrong_count = snapshot.clone();
        wrong_count.chunks += 1;
        assert_eq!(
            Restore::offer(&wrong_count, &[7; 32]).unwrap_err(),
            Offer::Reject
        );

        // A manifest swapped for another (say, with forged chunk hashes) no longer matches the
        // snapshot's hash.
        let mut forged = snapshot.clone();
        let mut manifest = Manifest::decode(&snapshot.metadata).unwrap();
        manifest.chunk_hashes[0] = [0; 32];
        forged.metadata = manifest.encode().into();
        assert_eq!(
            Restore::offer(&forged, &[7; 32]).unwrap_err(),
            Offer::Reject
        );

        let mut truncated = snapshot;
        truncated.metadata = truncated.metadata.slice(..40);
        assert_eq!(
            Restore::offer(&truncated, &[7; 32]).unwrap_err(),
            Offer::Reject
        );
    }
}
