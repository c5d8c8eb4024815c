//! `AuditService.ListInstructions`: the history of what venues were told
//! (health changes, liquidation orders, cancellations, takeovers), paged
//! over the `instr/<venue>/<height>/<index>` index in (height, venue,
//! index) order. Instructions of committed heights never change, so pages
//! read from different commits fit together.

use clearnode_engine::keys;
use clearnode_proto::audit::v1 as pb;
use clearnode_proto::state::v1 as state_pb;
use clearnode_store::Store;
use clearnode_types::VenueId;
use tonic::Status;

use crate::{decode, internal};

/// Most instructions one page returns.
pub const PAGE_MAX: usize = 1_000;

/// Most index entries scanned per venue for one page (bounds the work of a
/// page whose kinds filter keeps few entries).
const SCAN_PER_VENUE_MAX: usize = 5_000;

/// Where an instruction sits in the listing order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    height: u64,
    venue: String,
    index: u32,
}

impl Position {
    fn token(&self) -> String {
        format!("{}/{}/{}", self.height, self.venue, self.index)
    }

    fn from_token(token: &str) -> Result<Self, Status> {
        let invalid = || Status::invalid_argument(format!("page_token {token:?} is not ours"));
        let mut parts = token.splitn(3, '/');
        let height = parts
            .next()
            .and_then(|h| h.parse().ok())
            .ok_or_else(invalid)?;
        let venue = parts.next().ok_or_else(invalid)?.to_string();
        let index = parts
            .next()
            .and_then(|i| i.parse().ok())
            .ok_or_else(invalid)?;
        Ok(Self {
            height,
            venue,
            index,
        })
    }

    /// The first index key of `venue` that comes after this position.
    fn next_key_for(&self, venue: &VenueId) -> Vec<u8> {
        let name = venue.to_string();
        if name < self.venue {
            keys::instruction(venue, self.height.saturating_add(1), 0)
        } else if name == self.venue {
            keys::instruction(venue, self.height, self.index.saturating_add(1))
        } else {
            keys::instruction(venue, self.height, 0)
        }
    }
}

/// One page of the history in `[from, to]` (heights, both committed) and
/// the token of the next page (empty at the end).
pub fn page(
    store: &Store,
    request: &pb::ListInstructionsRequest,
    committed: u64,
) -> Result<(Vec<state_pb::Instruction>, String), Status> {
    page_scanning(store, request, committed, SCAN_PER_VENUE_MAX)
}

fn page_scanning(
    store: &Store,
    request: &pb::ListInstructionsRequest,
    committed: u64,
    scan_per_venue_max: usize,
) -> Result<(Vec<state_pb::Instruction>, String), Status> {
    let from = request.from_height.max(1);
    let to = match request.to_height {
        0 => committed,
        h => h.min(committed),
    };
    let limit = match request.limit {
        0 => PAGE_MAX,
        n => usize::try_from(n).unwrap_or(PAGE_MAX).min(PAGE_MAX),
    };
    let after = match request.page_token.as_str() {
        "" => None,
        token => Some(Position::from_token(token)?),
    };
    let mut scanned = Vec::new();
    // The last position every venue's scan safely reached, when a scan was cut short.
    let mut safe_end: Option<Position> = None;
    for venue in venues(store, &request.venue_id)? {
        let start = match &after {
            Some(position) => position.next_key_for(&venue),
            None => keys::instruction(&venue, from, 0),
        };
        let end = keys::instruction(&venue, to.saturating_add(1), 0);
        if start >= end {
            continue;
        }
        let pairs = store
            .scan_range_latest(&start, &end, scan_per_venue_max)
            .map_err(internal)?;
        let full = pairs.len() == scan_per_venue_max;
        let mut last = None;
        for (_, value) in pairs {
            let instruction: state_pb::Instruction = decode(&value)?;
            let position = Position {
                height: instruction.height,
                venue: instruction.venue.clone(),
                index: instruction.index,
            };
            last = Some(position.clone());
            scanned.push((position, instruction));
        }
        // A scan cut short: nothing past its last entry may be listed yet.
        if let (true, Some(last)) = (full, last) {
            safe_end = Some(safe_end.map_or(last.clone(), |end| end.min(last)));
        }
    }
    scanned.sort_by(|a, b| a.0.cmp(&b.0));
    let mut kept = Vec::new();
    for (position, instruction) in scanned {
        if safe_end.as_ref().is_some_and(|end| position > *end) {
            break;
        }
        let wanted = request.kinds.is_empty() || request.kinds.contains(&instruction.kind);
        let cursor = position.token();
        if wanted {
            kept.push(instruction);
            if kept.len() == limit {
                return Ok((kept, cursor));
            }
        }
    }
    let next = safe_end.map(|end| end.token()).unwrap_or_default();
    Ok((kept, next))
}

/// The venues to list: one, or every registered venue.
fn venues(store: &Store, venue_id: &str) -> Result<Vec<VenueId>, Status> {
    if !venue_id.is_empty() {
        let venue: VenueId = venue_id
            .parse()
            .map_err(|e| Status::invalid_argument(format!("venue_id: {e}")))?;
        return Ok(vec![venue]);
    }
    store
        .scan_prefix_latest(keys::VENUE_PREFIX)
        .map_err(internal)?
        .iter()
        .map(|(_, value)| {
            let venue: state_pb::Venue = decode(value)?;
            venue
                .id
                .parse()
                .map_err(|e| Status::data_loss(format!("stored venue id: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(height: u64, venue: &str, index: u32) -> Position {
        Position {
            height,
            venue: venue.into(),
            index,
        }
    }

    use prost::Message;

    /// A store with venues a and b; at heights 1..=4, venue a gets two
    /// instructions per height and venue b one at even heights.
    fn history() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store");
        let venue = |id: &str| state_pb::Venue {
            id: id.into(),
            public_key: vec![1; 32],
            active: true,
            ..Default::default()
        };
        let genesis = ["venue-a", "venue-b"].map(|id| {
            (
                keys::venue(&id.parse().expect("id")),
                Some(venue(id).encode_to_vec()),
            )
        });
        let prepared = store.prepare(0, genesis.to_vec()).expect("prepare");
        store.commit(prepared).expect("commit");
        for height in 1..=4u64 {
            let mut writes = Vec::new();
            let mut add = |id: &str, index: u32, kind: &str| {
                let instruction = state_pb::Instruction {
                    height,
                    index,
                    venue: id.into(),
                    kind: kind.into(),
                    ..Default::default()
                };
                let key = keys::instruction(&id.parse().expect("id"), height, index);
                writes.push((key, Some(instruction.encode_to_vec())));
            };
            add("venue-a", 0, "margin_call");
            add("venue-a", 1, "liquidation_order");
            if height % 2 == 0 {
                add("venue-b", 0, "take_over");
            }
            let prepared = store.prepare(height, writes).expect("prepare");
            store.commit(prepared).expect("commit");
        }
        (dir, store)
    }

    fn all_pages(
        store: &Store,
        mut request: pb::ListInstructionsRequest,
        scan_max: usize,
    ) -> Vec<(u64, String, u32)> {
        let mut listed = Vec::new();
        for _ in 0..100 {
            let (page, next) = page_scanning(store, &request, 4, scan_max).expect("page");
            listed.extend(page.into_iter().map(|i| (i.height, i.venue, i.index)));
            if next.is_empty() {
                return listed;
            }
            request.page_token = next;
        }
        panic!("the pages never ended");
    }

    #[test]
    fn pages_of_any_size_list_every_instruction_once_in_order() {
        let (_dir, store) = history();
        let everything = all_pages(&store, pb::ListInstructionsRequest::default(), 1_000);
        assert_eq!(everything.len(), 10);
        assert_eq!(everything[0], (1, "venue-a".into(), 0));
        assert_eq!(everything[4], (2, "venue-b".into(), 0));
        assert!(everything.windows(2).all(|w| w[0] < w[1]));
        for (limit, scan_max) in [(1, 1_000), (3, 1_000), (2, 1), (5, 2), (1_000, 1)] {
            let request = pb::ListInstructionsRequest {
                limit,
                ..Default::default()
            };
            assert_eq!(
                all_pages(&store, request, scan_max),
                everything,
                "limit {limit}, scan {scan_max}"
            );
        }
    }

    #[test]
    fn venue_kind_and_height_filters_narrow_the_history() {
        let (_dir, store) = history();
        let request = pb::ListInstructionsRequest {
            kinds: vec!["liquidation_order".into(), "take_over".into()],
            from_height: 2,
            to_height: 3,
            limit: 1,
            ..Default::default()
        };
        assert_eq!(
            all_pages(&store, request, 1),
            vec![
                (2, "venue-a".into(), 1),
                (2, "venue-b".into(), 0),
                (3, "venue-a".into(), 1)
            ]
        );
        let only_b = pb::ListInstructionsRequest {
            venue_id: "venue-b".into(),
            ..Default::default()
        };
        assert_eq!(
            all_pages(&store, only_b, 1_000),
            vec![(2, "venue-b".into(), 0), (4, "venue-b".into(), 0)]
        );
    }

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_refused() {
        let position = at(42, "venue-b", 7);
        assert_eq!(Position::from_token(&position.token()).ok(), Some(position));
        assert!(Position::from_token("42/venue-b").is_err());
        assert!(Position::from_token("x/venue-b/1").is_err());
    }

    #[test]
    fn a_page_resumes_in_height_then_venue_then_index_order() {
        let after = at(10, "venue-b", 3);
        let key = |venue: &str| {
            String::from_utf8(after.next_key_for(&venue.parse().expect("venue id"))).expect("utf-8")
        };
        assert_eq!(key("venue-a"), "instr/venue-a/00000000000000000011/000000");
        assert_eq!(key("venue-b"), "instr/venue-b/00000000000000000010/000004");
        assert_eq!(key("venue-c"), "instr/venue-c/00000000000000000010/000000");
    }
}
