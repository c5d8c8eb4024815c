//! Audit readers: `--audit-readers N` auditors, each on its own gRPC
//! connection, asking `AuditService.GetSystemRisk` with a proof as fast as
//! the node answers (or together at `--audit-rate` queries/s, each reader
//! on a fixed schedule), for the load's duration. Every latency is recorded and
//! every answer checked for its shape (aggregate, proof, height, app hash);
//! one answer in `--audit-verify-every` has its ics23 proof verified against
//! its app hash, and after the run the app hash of each height seen is
//! compared with the one in the header CometBFT signed for it, so the
//! figures are for real, checkable proofs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clearnode_grpc::cometbft::CometRpc;
use clearnode_proto::audit::v1 as audit;
use clearnode_proto::audit::v1::audit_service_client::AuditServiceClient;
use prost::Message;
use serde::Serialize;
use tonic::transport::Channel;

use super::stats::{percentile_ms, round2, sorted_latencies};

/// How long to wait after the run for the header that commits the last height seen.
const HEADER_WAIT: Duration = Duration::from_secs(10);
/// At most this many heights are checked against CometBFT's headers.
const HEADERS_CHECKED_MAX: usize = 200;

/// Counts every reader adds to, for the progress line.
#[derive(Default)]
pub(super) struct ReadCounts {
    pub(super) answered: AtomicU64,
    pub(super) errors: AtomicU64,
}

impl ReadCounts {
    /// The readers' part of the progress line (empty without readers).
    pub(super) fn progress(&self, elapsed_s: f64) -> String {
        let answered = self.answered.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        if answered == 0 && errors == 0 {
            return String::new();
        }
        format!(
            "  reads {answered:>9} ({:>7.0} q/s) errors {errors}",
            answered as f64 / elapsed_s.max(0.001)
        )
    }
}

/// What one reader saw.
#[derive(Debug, Default)]
pub(super) struct ReadTally {
    latencies_us: Vec<u64>,
    answered: u64,
    errors: u64,
    malformed: u64,
    proofs_verified: u64,
    proofs_failed: u64,
    /// The app hash each height was answered with.
    app_hashes: BTreeMap<u64, Vec<u8>>,
    /// Heights answered with two different app hashes (must stay 0).
    inconsistent_heights: u64,
    last_problem: String,
}

/// What every reader does.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReaderPlan {
    /// Read until this long after the start.
    pub(super) until: Duration,
    /// Time between one reader's queries; `None` = as fast as answered.
    pub(super) interval: Option<Duration>,
    /// Verify the proof of one answer in this many (0 = none).
    pub(super) verify_every: u64,
}

impl ReaderPlan {
    /// The plan of `readers` readers offering `rate` queries/s together (0 = as fast as answered).
    pub(super) fn new(until: Duration, readers: usize, rate: u64, verify_every: u64) -> Self {
        let interval = (rate > 0).then(|| {
            let readers = u32::try_from(readers.max(1)).unwrap_or(u32::MAX);
            Duration::from_secs(1) * readers / u32::try_from(rate).unwrap_or(u32::MAX)
        });
        Self {
            until,
            interval,
            verify_every,
        }
    }
}

/// Asks `GetSystemRisk` with a proof until the plan's end. On a schedule, a
/// reader that falls behind asks at once until it catches up; latency is
/// measured from the moment a query is sent.
pub(super) async fn run_reader(
    channel: Channel,
    counts: Arc<ReadCounts>,
    started: Instant,
    plan: ReaderPlan,
) -> ReadTally {
    let mut client = AuditServiceClient::new(channel);
    let mut tally = ReadTally::default();
    let request = audit::GetSystemRiskRequest {
        height: 0,
        prove: true,
    };
    let mut due = started;
    while started.elapsed() < plan.until {
        if let Some(interval) = plan.interval {
            tokio::time::sleep_until(due.into()).await;
            due += interval;
        }
        let asked = Instant::now();
        let answer = client.get_system_risk(request).await;
        let latency = asked.elapsed();
        let answer = match answer {
            Ok(answer) => answer.into_inner(),
            Err(status) => {
                tally.errors += 1;
                counts.errors.fetch_add(1, Ordering::Relaxed);
                tally.last_problem = status.to_string();
                continue;
            }
        };
        tally
            .latencies_us
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        tally.answered += 1;
        counts.answered.fetch_add(1, Ordering::Relaxed);
        let (height, app_hash) = match check_shape(&answer) {
            Ok(seen) => seen,
            Err(problem) => {
                tally.malformed += 1;
                tally.last_problem = problem;
                continue;
            }
        };
        let known = tally
            .app_hashes
            .entry(height)
            .or_insert_with(|| app_hash.to_vec());
        if known.as_slice() != app_hash {
            tally.inconsistent_heights += 1;
            tally.last_problem = format!("height {height} answered with two app hashes");
        }
        let verify_every = plan.verify_every;
        if verify_every > 0 && tally.answered % verify_every == 1 % verify_every {
            match verify_proof(&answer) {
                Ok(()) => tally.proofs_verified += 1,
                Err(problem) => {
                    tally.proofs_failed += 1;
                    tally.last_problem = problem;
                }
            }
        }
    }
    tally
}

/// The height and app hash of a well-formed answer: an aggregate, and a
/// context naming a committed height, a 32-byte app hash, the system
/// aggregate's key and a proof.
pub(super) fn check_shape(answer: &audit::GetSystemRiskResponse) -> Result<(u64, &[u8]), String> {
    let context = answer.context.as_ref().ok_or("no context")?;
    if answer.aggregate.is_none() {
        return Err("no aggregate".into());
    }
    if context.height == 0 {
        return Err("height 0".into());
    }
    if context.app_hash.len() != 32 {
        return Err(format!("app hash of {} bytes", context.app_hash.len()));
    }
    if context.key != clearnode_engine::keys::system_aggregate() {
        return Err(format!(
            "key {:?} is not the system aggregate's",
            String::from_utf8_lossy(&context.key)
        ));
    }
    if context.proof.is_empty() {
        return Err("no proof".into());
    }
    Ok((context.height, &context.app_hash))
}

/// Whether the answer's proof shows its aggregate under its key in the
/// state whose root is its app hash (as `clearnode audit verify` checks,
/// minus the signed header, which [`check_headers`] covers per height).
pub(super) fn verify_proof(answer: &audit::GetSystemRiskResponse) -> Result<(), String> {
    let context = answer.context.as_ref().ok_or("no context")?;
    let aggregate = answer.aggregate.as_ref().ok_or("no aggregate")?;
    let root: [u8; 32] = context
        .app_hash
        .as_slice()
        .try_into()
        .map_err(|_| "app hash is not 32 bytes".to_string())?;
    let proof = clearnode_store::decode_proof(&context.proof)
        .map_err(|e| format!("proof does not decode: {e}"))?;
    if clearnode_store::verify_membership(&root, &proof, &context.key, &aggregate.encode_to_vec()) {
        Ok(())
    } else {
        Err(format!(
            "the proof at height {} does not verify",
            context.height
        ))
    }
}

/// The audit reads of a run, as printed and written.
#[derive(Debug, Serialize)]
pub(super) struct ReadReport {
    readers: usize,
    /// Offered queries/s (0 = as fast as answered).
    rate_target: u64,
    queries_per_s: f64,
    answered: u64,
    errors: u64,
    malformed: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    proofs_verified: u64,
    proofs_failed: u64,
    heights_seen: usize,
    /// Heights whose app hash was compared with the header of the next block.
    heights_checked_against_headers: usize,
    /// Heights whose answered app hash differs from the signed header's (must stay 0).
    heights_not_matching_headers: usize,
    inconsistent_heights: u64,
    last_problem: String,
}

impl ReadReport {
    pub(super) fn new(
        tallies: &[ReadTally],
        rate_target: u64,
        duration: Duration,
        headers: HeaderCheck,
    ) -> Self {
        let latencies = sorted_latencies(tallies.iter().map(|t| t.latencies_us.as_slice()));
        let answered: u64 = tallies.iter().map(|t| t.answered).sum();
        let heights: std::collections::BTreeSet<u64> = tallies
            .iter()
            .flat_map(|t| t.app_hashes.keys().copied())
            .collect();
        Self {
            readers: tallies.len(),
            rate_target,
            queries_per_s: round2(answered as f64 / duration.as_secs_f64().max(0.001)),
            answered,
            errors: tallies.iter().map(|t| t.errors).sum(),
            malformed: tallies.iter().map(|t| t.malformed).sum(),
            p50_ms: percentile_ms(&latencies, 50),
            p99_ms: percentile_ms(&latencies, 99),
            max_ms: latencies
                .last()
                .map_or(0.0, |us| round2(*us as f64 / 1000.0)),
            proofs_verified: tallies.iter().map(|t| t.proofs_verified).sum(),
            proofs_failed: tallies.iter().map(|t| t.proofs_failed).sum(),
            heights_seen: heights.len(),
            heights_checked_against_headers: headers.checked,
            heights_not_matching_headers: headers.mismatched,
            inconsistent_heights: tallies.iter().map(|t| t.inconsistent_heights).sum(),
            last_problem: if headers.problem.is_empty() {
                tallies
                    .iter()
                    .rev()
                    .map(|t| t.last_problem.clone())
                    .find(|p| !p.is_empty())
                    .unwrap_or_default()
            } else {
                headers.problem
            },
        }
    }

    /// The human summary line.
    pub(super) fn summary(&self) -> String {
        format!(
            "\x20 audit reads     {readers} readers{offered}: {qps:.0} GetSystemRisk+proof/s, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms\n\
             \x20                 answered {answered}, errors {errors}, malformed {malformed}, proofs verified {verified} (failed {failed}), \
             {checked}/{seen} heights checked against signed headers ({mismatched} mismatched){problem}",
            readers = self.readers,
            offered = if self.rate_target > 0 {
                format!(" offering {} q/s", self.rate_target)
            } else {
                String::new()
            },
            qps = self.queries_per_s,
            p50 = self.p50_ms,
            p99 = self.p99_ms,
            max = self.max_ms,
            answered = self.answered,
            errors = self.errors,
            malformed = self.malformed,
            verified = self.proofs_verified,
            failed = self.proofs_failed,
            checked = self.heights_checked_against_headers,
            seen = self.heights_seen,
            mismatched = self.heights_not_matching_headers,
            problem = if self.last_problem.is_empty() {
                String::new()
            } else {
                format!("\n  last problem: {}", self.last_problem)
            },
        )
    }
}

/// How the app hashes answered compare with CometBFT's headers.
#[derive(Debug, Default)]
pub(super) struct HeaderCheck {
    checked: usize,
    mismatched: usize,
    problem: String,
}

/// Compares the app hash answered for each height (up to
/// [`HEADERS_CHECKED_MAX`], spread over the run) with the app hash in the
/// header of the next block, which the validators signed.
pub(super) async fn check_headers(rpc: &CometRpc, tallies: &[ReadTally]) -> HeaderCheck {
    let mut answered: BTreeMap<u64, &[u8]> = BTreeMap::new();
    for tally in tallies {
        for (height, hash) in &tally.app_hashes {
            answered.entry(*height).or_insert(hash);
        }
    }
    let mut check = HeaderCheck::default();
    let Some(last) = answered.keys().next_back().copied() else {
        return check;
    };
    let deadline = Instant::now() + HEADER_WAIT;
    while Instant::now() < deadline {
        match rpc.status().await {
            Ok(status) if status.latest_block_height > last => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => {
                check.problem = format!("CometBFT status: {e}");
                return check;
            }
        }
    }
    let step = answered.len().div_ceil(HEADERS_CHECKED_MAX).max(1);
    for (height, hash) in answered.iter().step_by(step) {
        match rpc.header_app_hash(height + 1).await {
            Ok(header_hash) => {
                check.checked += 1;
                if !header_hash.eq_ignore_ascii_case(&hex::encode(hash)) {
                    check.mismatched += 1;
                    check.problem = format!(
                        "height {height}: answered app hash {} but the header of {} has {header_hash}",
                        hex::encode_upper(hash),
                        height + 1
                    );
                }
            }
            // The header of the very last height may not exist yet: not a mismatch.
            Err(_) if *height == last => {}
            Err(e) => check.problem = format!("header of {}: {e}", height + 1),
        }
    }
    check
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Reason: test setup on a fresh temporary store.

    use super::*;
    use clearnode_proto::state::v1 as state_pb;

    /// A proven answer read from a real store holding `aggregate` at height 1.
    fn proven_answer(aggregate: &state_pb::SystemAggregate) -> audit::GetSystemRiskResponse {
        let dir = tempfile::tempdir().unwrap();
        let store = clearnode_store::Store::open(dir.path()).unwrap();
        let key = clearnode_engine::keys::system_aggregate();
        store.commit(store.prepare(0, Vec::new()).unwrap()).unwrap();
        let write = (key.clone(), Some(aggregate.encode_to_vec()));
        let committed = store
            .commit(store.prepare(1, vec![write]).unwrap())
            .unwrap();
        let (_, proof) = store.get_with_proof(&key, 1).unwrap();
        audit::GetSystemRiskResponse {
            context: Some(audit::QueryContext {
                height: 1,
                app_hash: committed.root_hash.to_vec(),
                key,
                proof: clearnode_store::encode_proof(&proof),
            }),
            aggregate: Some(aggregate.clone()),
        }
    }

    fn sample_aggregate() -> state_pb::SystemAggregate {
        state_pb::SystemAggregate {
            accounts_total: 3,
            ..Default::default()
        }
    }

    #[test]
    fn readers_share_the_offered_rate() {
        let plan = ReaderPlan::new(Duration::from_secs(1), 16, 5_000, 0);
        assert_eq!(plan.interval, Some(Duration::from_micros(3_200)));
        assert_eq!(ReaderPlan::new(Duration::ZERO, 4, 0, 0).interval, None);
    }

    #[test]
    fn a_real_proof_is_well_formed_and_verifies() {
        let answer = proven_answer(&sample_aggregate());
        assert_eq!(check_shape(&answer).unwrap().0, 1);
        verify_proof(&answer).unwrap();
    }

    #[test]
    fn a_changed_figure_or_app_hash_fails_the_proof() {
        let mut answer = proven_answer(&sample_aggregate());
        answer.aggregate = Some(state_pb::SystemAggregate {
            accounts_total: 4,
            ..Default::default()
        });
        assert!(verify_proof(&answer).is_err());

        let mut answer = proven_answer(&sample_aggregate());
        if let Some(context) = answer.context.as_mut() {
            context.app_hash[0] ^= 1;
        }
        assert!(check_shape(&answer).is_ok());
        assert!(verify_proof(&answer).is_err());
    }

    #[test]
    fn answers_without_proof_or_context_are_malformed() {
        let mut answer = proven_answer(&sample_aggregate());
        if let Some(context) = answer.context.as_mut() {
            context.proof.clear();
        }
        assert_eq!(check_shape(&answer).unwrap_err(), "no proof");
        answer.context = None;
        assert_eq!(check_shape(&answer).unwrap_err(), "no context");
    }
}
