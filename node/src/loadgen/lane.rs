//! One lane of load: a signer (or a kvstore key) submitting in order, with
//! at most `window` uncommitted transactions, and watching its own commits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use clearnode_grpc::cometbft::CometRpc;
use clearnode_proto::audit::v1 as audit;
use clearnode_proto::audit::v1::audit_service_client::AuditServiceClient;
use clearnode_proto::tx::v1 as tx;
use clearnode_proto::venue::v1 as venue;
use clearnode_proto::venue::v1::venue_service_client::VenueServiceClient;
use clearnode_types::signer::Signer;
use clearnode_types::Address;
use tonic::transport::Channel;

use super::LoadgenArgs;

/// A transaction at the head of a lane older than this is presumed dropped
/// from the mempool; the lane resynchronises from committed state.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// After the submission window, how long lanes wait for their last commits.
const DRAIN_MAX: Duration = Duration::from_secs(20);
/// Pause after a refusal or an unreachable node.
const BACKOFF: Duration = Duration::from_millis(50);

/// What every lane shares: the load's shape and running counts.
pub(super) struct LaneShared {
    pub(super) submit_for: Duration,
    window: u64,
    /// Transactions per second per lane, in thousandths; 0 = unlimited.
    rate_per_lane_milli: u64,
    poll: Duration,
    pub(super) submitted: AtomicU64,
    pub(super) committed: AtomicU64,
    /// Commits seen before the end of the submission window.
    pub(super) committed_in_window: AtomicU64,
    pub(super) refused: AtomicU64,
}

impl LaneShared {
    pub(super) fn new(args: &LoadgenArgs, lanes: usize) -> Self {
        let lanes = u64::try_from(lanes.max(1)).unwrap_or(1);
        Self {
            submit_for: Duration::from_secs_f64(args.duration),
            window: args.window,
            rate_per_lane_milli: args.rate.saturating_mul(1000) / lanes,
            poll: Duration::from_millis(args.poll_ms.max(1)),
            submitted: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            committed_in_window: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

/// The accounts and markets clearnode reports cover.
pub(super) struct Book {
    pub(super) accounts: Vec<Address>,
    /// Market id and its genesis price.
    pub(super) markets: Vec<(String, String)>,
    pub(super) entries_per_report: u32,
}

/// Where a lane's transactions go. (A handful per run: their size does not matter.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Endpoint {
    Clearnode {
        venue_id: String,
        signer: Signer,
        submit: VenueServiceClient<Channel>,
        audit: AuditServiceClient<Channel>,
        book: Arc<Book>,
        /// The last committed height seen: reports acknowledge up to it, as
        /// a venue acting on its instructions does.
        acknowledged: u64,
    },
    Kvstore {
        rpc: CometRpc,
        query_url: String,
        key: String,
        tx_bytes: usize,
    },
}

/// What a lane did.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) latencies_us: Vec<u64>,
    pub(super) submitted: u64,
    pub(super) committed: u64,
    pub(super) refused: u64,
    pub(super) unreachable: u64,
    /// Submitted but neither committed within the drain nor resubmitted.
    pub(super) unresolved: u64,
    pub(super) last_problem: String,
}

/// How one submission ended.
enum Submitted {
    Accepted,
    Refused(String),
}

/// One lane.
pub(super) struct Lane {
    index: usize,
    endpoint: Endpoint,
}

impl Lane {
    pub(super) fn new(index: usize, endpoint: Endpoint) -> Self {
        Self { index, endpoint }
    }

    /// Submits for the shared duration, then waits for the last commits.
    pub(super) async fn run(mut self, shared: Arc<LaneShared>, started: Instant) -> Result<Tally> {
        let mut tally = Tally::default();
        let first = self.committed_next().await?;
        let mut next = first;
        let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut last_poll = Instant::now();
        loop {
            let elapsed = started.elapsed();
            let submitting = elapsed < shared.submit_for;
            if !submitting && (pending.is_empty() || elapsed > shared.submit_for + DRAIN_MAX) {
                tally.unresolved += u64::try_from(pending.len()).unwrap_or(0);
                return Ok(tally);
            }
            let may_submit = submitting
                && u64::try_from(pending.len()).unwrap_or(u64::MAX) < shared.window
                && rate_allows(shared.rate_per_lane_milli, next - first, elapsed);
            if may_submit {
                match self.submit(next).await {
                    Ok(Submitted::Accepted) => {
                        pending.push_back((next, Instant::now()));
                        next += 1;
                        tally.submitted += 1;
                        shared.submitted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Submitted::Refused(log)) => {
                        tally.refused += 1;
                        shared.refused.fetch_add(1, Ordering::Relaxed);
                        tally.last_problem = log;
                        tokio::time::sleep(BACKOFF).await;
                    }
                    Err(e) => {
                        tally.unreachable += 1;
                        tally.last_problem = format!("{e:#}");
                        tokio::time::sleep(BACKOFF).await;
                    }
                }
                if last_poll.elapsed() < shared.poll {
                    continue;
                }
            } else if let Some(wait) = shared.poll.checked_sub(last_poll.elapsed()) {
                tokio::time::sleep(
                    wait.min(Duration::from_millis(5))
                        .max(Duration::from_millis(1)),
                )
                .await;
                continue;
            }
            last_poll = Instant::now();
            let committed = match self.committed_next().await {
                Ok(committed) => committed,
                Err(e) => {
                    tally.last_problem = format!("{e:#}");
                    continue;
                }
            };
            let seen = Instant::now();
            let in_window = seen.duration_since(started) <= shared.submit_for;
            while pending
                .front()
                .is_some_and(|(sequence, _)| *sequence < committed)
            {
                let Some((_, submitted_at)) = pending.pop_front() else {
                    break;
                };
                let latency = seen.duration_since(submitted_at);
                tally
                    .latencies_us
                    .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
                tally.committed += 1;
                shared.committed.fetch_add(1, Ordering::Relaxed);
                if in_window {
                    shared.committed_in_window.fetch_add(1, Ordering::Relaxed);
                }
            }
            let stalled = pending
                .front()
                .is_some_and(|(_, at)| at.elapsed() > STALL_TIMEOUT);
            if stalled || committed > next {
                tally.unresolved += u64::try_from(pending.len()).unwrap_or(0);
                pending.clear();
                next = committed;
            }
        }
    }

    async fn submit(&mut self, sequence: u64) -> Result<Submitted> {
        let index = self.index;
        match &mut self.endpoint {
            Endpoint::Clearnode {
                venue_id,
                signer,
                submit,
                book,
                acknowledged,
                ..
            } => {
                signer.sequence = sequence;
                let entries = report_entries(book, index, sequence);
                let bytes = signer.sign(tx::tx_body::Action::PositionReport(tx::PositionReport {
                    venue_id: venue_id.clone(),
                    entries,
                    acknowledged_height: *acknowledged,
                }));
                let response = submit
                    .submit_report(venue::SubmitTxRequest {
                        tx: bytes,
                        wait_for_commit: false,
                    })
                    .await;
                match response {
                    Ok(response) if response.get_ref().code == 0 => Ok(Submitted::Accepted),
                    Ok(response) => {
                        let response = response.into_inner();
                        Ok(Submitted::Refused(format!(
                            "CheckTx code {}: {}",
                            response.code, response.log
                        )))
                    }
                    Err(status) if status.code() == tonic::Code::AlreadyExists => {
                        Ok(Submitted::Accepted)
                    }
                    Err(status) => Err(anyhow::anyhow!("{status}")),
                }
            }
            Endpoint::Kvstore {
                rpc, key, tx_bytes, ..
            } => {
                let bytes = kvstore_tx(key, sequence, *tx_bytes);
                let checked = rpc.broadcast_tx_sync(&bytes).await?;
                if checked.code == 0 {
                    Ok(Submitted::Accepted)
                } else {
                    Ok(Submitted::Refused(format!(
                        "CheckTx code {}: {}",
                        checked.code, checked.log
                    )))
                }
            }
        }
    }

    /// The lane's next sequence in committed state: everything before it committed.
    async fn committed_next(&mut self) -> Result<u64> {
        match &mut self.endpoint {
            Endpoint::Clearnode {
                signer,
                audit,
                acknowledged,
                ..
            } => {
                let response = audit
                    .get_sequence(audit::GetSequenceRequest {
                        public_key: signer.key.verifying_key().to_bytes().to_vec(),
                    })
                    .await?
                    .into_inner();
                if let Some(context) = &response.context {
                    *acknowledged = context.height;
                }
                Ok(response.next)
            }
            Endpoint::Kvstore { query_url, key, .. } => {
                kvstore_committed_next(query_url, key).await
            }
        }
    }
}

/// Whether a lane limited to `rate_milli` thousandths of a tx/s may send
/// its `sent`-th transaction at `elapsed`.
fn rate_allows(rate_milli: u64, sent: u64, elapsed: Duration) -> bool {
    if rate_milli == 0 {
        return true;
    }
    let due = u128::from(rate_milli) * elapsed.as_millis() / 1_000_000;
    u128::from(sent) <= due
}

/// Report `sequence` of lane `lane`: distinct (account, market) pairs
/// walking through the book, small sizes, shorts on odd lanes (so accounts
/// hedge across venues and stay far from their margin limits).
pub(super) fn report_entries(book: &Book, lane: usize, sequence: u64) -> Vec<tx::PositionEntry> {
    let markets = book.markets.len().max(1);
    let pairs = u64::try_from(book.accounts.len() * markets)
        .unwrap_or(1)
        .max(1);
    let per_report = u64::from(book.entries_per_report);
    let lane = u64::try_from(lane).unwrap_or(0);
    (0..per_report.min(pairs))
        .map(|k| {
            let pair = (sequence * per_report + k + lane * 7919) % pairs;
            let pair = usize::try_from(pair).unwrap_or(0);
            let (market, price) = &book.markets[pair % markets];
            let milli = 1 + (sequence * 37 + k * 101 + lane * 211) % 499;
            let sign = if lane % 2 == 1 { "-" } else { "" };
            tx::PositionEntry {
                account: book.accounts[pair / markets].as_bytes().to_vec(),
                market: market.clone(),
                size: format!("{sign}0.{milli:03}"),
                entry_price: price.clone(),
            }
        })
        .collect()
}

/// A kvstore transaction `key=<sequence, 20 digits>xxx...` of `size` bytes.
fn kvstore_tx(key: &str, sequence: u64, size: usize) -> Vec<u8> {
    let mut text = format!("{key}={sequence:020}");
    if text.len() < size {
        text.push_str(&"x".repeat(size - text.len()));
    }
    text.into_bytes()
}

/// The kvstore lane's committed counter plus one (0 before its first commit).
async fn kvstore_committed_next(url: &str, key: &str) -> Result<u64> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        result: QueryResult,
    }
    #[derive(serde::Deserialize)]
    struct QueryResult {
        response: QueryResponse,
    }
    #[derive(serde::Deserialize)]
    struct QueryResponse {
        #[serde(default)]
        value: Option<String>,
    }
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    let http = HTTP.get_or_init(reqwest::Client::new);
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "abci_query",
        "params": {"path": "", "data": hex::encode(key), "prove": false}
    });
    let envelope: Envelope = http
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("abci_query at {url}"))?
        .json()
        .await
        .context("abci_query answer")?;
    let Some(value) = envelope.result.response.value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let value = base64::engine::general_purpose::STANDARD.decode(value)?;
    let digits = value
        .get(..20)
        .context("kvstore value shorter than its counter")?;
    let counter: u64 = std::str::from_utf8(digits)?.parse()?;
    Ok(counter + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kvstore_tx_has_the_asked_size_and_carries_its_counter() {
        let bytes = kvstore_tx("lane-3", 42, 200);
        assert_eq!(bytes.len(), 200);
        assert!(bytes.starts_with(b"lane-3=00000000000000000042x"));
    }

    #[test]
    fn the_rate_limit_spreads_sends_over_time() {
        // 2 tx/s: the first at once, the third not before one second.
        assert!(rate_allows(2000, 0, Duration::ZERO));
        assert!(!rate_allows(2000, 2, Duration::from_millis(999)));
        assert!(rate_allows(2000, 2, Duration::from_millis(1000)));
        assert!(rate_allows(0, 1_000_000, Duration::ZERO));
    }

    #[test]
    fn a_report_covers_distinct_pairs() {
        let book = Book {
            accounts: (0u8..10)
                .map(|i| Address::of_public_key(&[i; 32]))
                .collect(),
            markets: vec![
                ("BTC-PERP".into(), "64000".into()),
                ("ETH-PERP".into(), "3200".into()),
            ],
            entries_per_report: 20,
        };
        let entries = report_entries(&book, 1, 7);
        let pairs: std::collections::BTreeSet<_> = entries
            .iter()
            .map(|e| (e.account.clone(), e.market.clone()))
            .collect();
        assert_eq!(pairs.len(), 20);
        assert!(entries.iter().all(|e| e.size.starts_with('-')));
    }
}
