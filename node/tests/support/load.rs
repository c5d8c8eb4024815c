//! A steady load of venue reports for localnet tests, and the bookkeeping
//! that lets a test prove no acknowledged report was lost.
//!
//! One task per venue signs position reports with consecutive sequences and
//! submits each to a random running node, waiting for its block. A report is
//! never abandoned: when the node dies mid-call or the answer is ambiguous,
//! the same signed bytes are looked up by hash and resubmitted elsewhere
//! until they are committed (a sequence can commit only once, so resubmitting
//! is safe). Each task thus ends knowing exactly which of its reports
//! committed, at which height, and which of those `wait_for_commit`
//! acknowledged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clearnode_proto::tx::v1 as tx;
use clearnode_types::tx::tx_hash;
use clearnode_types::Address;
use ed25519_dalek::SigningKey;
use tokio::task::JoinHandle;

use super::localnet::{Localnet, Targets, POLL_INTERVAL};
use super::{address, authorize, deposit, signed};

/// The venues of the devnet template, each a lane of load.
pub const VENUES: [&str; 3] = ["venue-a", "venue-b", "venue-c"];
/// How long one report may take to be resolved as committed, across kills
/// and restarts, before the test fails.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a submission's hash is looked up after an ambiguous answer
/// before it is submitted again.
const LOOKUP_WINDOW: Duration = Duration::from_secs(4);
/// Collateral of each trader, in USDC: far more than the reported positions need.
const TRADER_DEPOSIT_USDC: &str = "1000000";

/// A seeded generator (SplitMix64) for reproducible random choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next_u64() % u64::try_from(bound).unwrap()).unwrap()
    }

    /// Uniform in `[low, high)` milliseconds.
    pub fn duration_ms(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next_u64() % (high - low))
    }
}

/// The seed of a randomized test: `CLEARNODE_SOAK_SEED` or the clock,
/// printed so a failing run can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("CLEARNODE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            u64::try_from(now.as_nanos() % u128::from(u64::MAX)).unwrap()
        });
    eprintln!("{test}: seed {seed} (replay with CLEARNODE_SOAK_SEED={seed})");
    seed
}

/// A count from the environment, or its default.
pub fn env_count(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a count")),
        Err(_) => default,
    }
}

/// Funds `count` traders through the custodian and has each authorize every
/// venue, through node 0; returns their addresses once all is committed.
pub async fn fund_and_authorize(net: &Localnet, count: u8) -> Vec<Address> {
    let client = net.client(0);
    let custodian = net.key("custodian");
    let first = client.sequence(&custodian).await;
    let traders: Vec<SigningKey> = (0..count)
        .map(|k| SigningKey::from_bytes(&[100 + k; 32]))
        .collect();
    let mut sequence = first;
    for trader in &traders {
        let bytes = signed(
            &custodian,
            sequence,
            deposit(address(trader), "USDC", TRADER_DEPOSIT_USDC),
        );
        let response = client.submit(bytes, "custodian", false).await.unwrap();
        assert_eq!(response.code, 0, "deposit refused: {}", response.log);
        sequence += 1;
        for (venue_sequence, venue) in (0u64..).zip(VENUES) {
            let bytes = signed(trader, venue_sequence, authorize(venue));
            let response = client.submit(bytes, "account", false).await.unwrap();
            assert_eq!(response.code, 0, "authorization refused: {}", response.log);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = client.sequence(&custodian).await == sequence;
        for trader in &traders {
            done &= client.sequence(trader).await == 3;
        }
        if done {
            // CheckTx of a load target that has not yet committed the
            // authorizations would refuse the first reports (206).
            let height = client.latest_height().await.unwrap();
            let targets = net.targets().up_nodes();
            net.wait_for_all(&targets, height, Duration::from_secs(60))
                .await;
            return traders.iter().map(address).collect();
        }
        assert!(
            Instant::now() < deadline,
            "deposits and authorizations not committed within 60s"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One committed report.
#[derive(Debug, Clone)]
pub struct Committed {
    pub sequence: u64,
    pub hash: [u8; 32],
    pub height: u64,
    /// `wait_for_commit` answered "committed" (rather than the report being
    /// found by hash after an ambiguous answer).
    pub acknowledged: bool,
}

/// What one venue's lane did.
#[derive(Debug)]
pub struct Tally {
    pub venue: String,
    pub signer: SigningKey,
    /// The signer's first sequence in this load.
    pub first_sequence: u64,
    /// Every report signed, in sequence order; all committed.
    pub committed: Vec<Committed>,
    /// The entries of the last committed report.
    pub last_entries: Vec<tx::PositionEntry>,
    /// Submissions that failed or were ambiguous and were retried.
    pub retries: u64,
}

impl Tally {
    /// The signer's next sequence after this load.
    pub fn next_sequence(&self) -> u64 {
        self.first_sequence + u64::try_from(self.committed.len()).unwrap()
    }
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    lanes: Vec<JoinHandle<Tally>>,
}

impl Load {
    /// Starts one lane per venue reporting positions of `accounts`.
    pub async fn start(net: &Localnet, accounts: Vec<Address>, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let mut lanes = Vec::new();
        for (index, venue) in (0u64..).zip(VENUES) {
            let signer = net.key(venue);
            let first_sequence = net.client(0).sequence(&signer).await;
            let lane = Lane {
                index,
                venue: venue.to_string(),
                targets: net.targets(),
                accounts: accounts.clone(),
                rng: Rng::new(seed ^ index.wrapping_mul(0x5851_f42d_4c95_7f2d)),
                stop: Arc::clone(&stop),
                committed: Arc::clone(&committed),
                tally: Tally {
                    venue: venue.to_string(),
                    signer,
                    first_sequence,
                    committed: Vec::new(),
                    last_entries: Vec::new(),
                    retries: 0,
                },
            };
            lanes.push(tokio::spawn(lane.run()));
        }
        Self {
            stop,
            committed,
            lanes,
        }
    }

    /// Reports committed so far, by all lanes.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// Waits until `more` reports beyond the current count have committed.
    pub async fn wait_for_progress(&self, more: u64, timeout: Duration) {
        let target = self.committed() + more;
        let deadline = Instant::now() + timeout;
        while self.committed() < target {
            assert!(
                Instant::now() < deadline,
                "the load committed {} of {more} more reports within {timeout:?}",
                more + self.committed() - target
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Stops signing new reports, resolves the ones in flight, and returns
    /// each lane's tally. A lane's failure fails the test here.
    pub async fn stop(self) -> Vec<Tally> {
        self.stop.store(true, Ordering::SeqCst);
        let mut tallies = Vec::new();
        for lane in self.lanes {
            tallies.push(
                lane.await
                    .unwrap_or_else(|e| panic!("a load lane failed: {e}")),
            );
        }
        tallies
    }
}

struct Lane {
    index: u64,
    venue: String,
    targets: Targets,
    accounts: Vec<Address>,
    rng: Rng,
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    tally: Tally,
}

/// How one submission attempt ended.
enum Attempt {
    Committed {
        height: u64,
    },
    /// Maybe committed, maybe in a mempool, maybe lost with a dead node.
    Unknown(String),
}

impl Lane {
    async fn run(mut self) -> Tally {
        while !self.stop.load(Ordering::SeqCst) {
            let sequence = self.tally.next_sequence();
            let entries = self.entries(sequence);
            // A venue acknowledges its instructions up to what it saw committed.
            let acknowledged_height = self.tally.committed.last().map_or(0, |c| c.height);
            let action = tx::tx_body::Action::PositionReport(tx::PositionReport {
                venue_id: self.venue.clone(),
                entries: entries.clone(),
                acknowledged_height,
            });
            let bytes = signed(&self.tally.signer, sequence, action);
            let committed = self.resolve(sequence, &bytes).await;
            self.tally.committed.push(committed);
            self.tally.last_entries = entries;
            self.committed.fetch_add(1, Ordering::SeqCst);
        }
        self.tally
    }

    /// BTC-PERP positions of every account, a different size each report;
    /// venue-b reports shorts, so accounts hedge across venues.
    fn entries(&self, sequence: u64) -> Vec<tx::PositionEntry> {
        (0u64..)
            .zip(&self.accounts)
            .map(|(k, account)| {
                let milli = 1 + (sequence * 37 + k * 101 + self.index * 211) % 2999;
                let sign = if self.index == 1 { "-" } else { "" };
                tx::PositionEntry {
                    account: account.as_bytes().to_vec(),
                    market: "BTC-PERP".into(),
                    size: format!("{sign}{}.{:03}", milli / 1000, milli % 1000),
                    entry_price: "64000".into(),
                }
            })
            .collect()
    }

    /// Submits the same bytes until they are known to be committed.
    async fn resolve(&mut self, sequence: u64, bytes: &[u8]) -> Committed {
        let hash = tx_hash(bytes);
        let deadline = Instant::now() + RESOLVE_TIMEOUT;
        let mut last_problem = String::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "{} report {sequence} (tx {}) not committed within {RESOLVE_TIMEOUT:?}; last problem: {last_problem}",
                self.venue,
                hex::encode_upper(hash)
            );
            let Some(node) = self.pick_node() else {
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            };
            match self.attempt(node, bytes).await {
                Attempt::Committed { height } => {
                    return Committed {
                        sequence,
                        hash,
                        height,
                        acknowledged: true,
                    };
                }
                Attempt::Unknown(problem) => {
                    self.tally.retries += 1;
                    last_problem = format!("node{node}: {problem}");
                }
            }
            if let Some(height) = self.look_up(&hash).await {
                return Committed {
                    sequence,
                    hash,
                    height,
                    acknowledged: false,
                };
            }
        }
    }

    fn pick_node(&mut self) -> Option<usize> {
        let up = self.targets.up_nodes();
        (!up.is_empty()).then(|| up[self.rng.below(up.len())])
    }

    async fn attempt(&self, node: usize, bytes: &[u8]) -> Attempt {
        let client = self.targets.client(node);
        match client.submit(bytes.to_vec(), "venue", true).await {
            Ok(response) if response.committed => Attempt::Committed {
                height: response.height,
            },
            Ok(response) if response.height > 0 => panic!(
                "{} report committed at height {} with code {}: {}",
                self.venue, response.height, response.code, response.log
            ),
            Ok(response) if response.code == 0 => {
                Attempt::Unknown("accepted, but not reported committed".into())
            }
            // CheckTx of a node whose state is behind (just restarted) or
            // ahead (the report already committed) sees another sequence;
            // one behind has not committed the acknowledged height yet (208).
            Ok(response) if response.code == 201 || response.code == 208 => {
                Attempt::Unknown(format!("CheckTx: {}", response.log))
            }
            Ok(response) => panic!(
                "{} report refused by CheckTx with code {}: {}",
                self.venue, response.code, response.log
            ),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                panic!("{} report is malformed: {status}", self.venue)
            }
            Err(status) => Attempt::Unknown(status.to_string()),
        }
    }

    /// Looks the hash up in the running nodes' blocks for a few seconds.
    async fn look_up(&self, hash: &[u8; 32]) -> Option<u64> {
        let deadline = Instant::now() + LOOKUP_WINDOW;
        while Instant::now() < deadline {
            for node in self.targets.up_nodes() {
                if let Ok(Some(found)) = self.targets.rpc(node).committed_tx(hash).await {
                    assert_eq!(
                        found.code, 0,
                        "{} report committed at {} with code {}: {}",
                        self.venue, found.height, found.code, found.log
                    );
                    return Some(found.height);
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        None
    }
}

/// A decimal without insignificant zeros: "0.010" and "0.01" are one size.
fn canonical_decimal(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    match fraction {
        "" if whole == "0" => "0".to_string(),
        "" => format!("{sign}{whole}"),
        _ => format!("{sign}{whole}.{fraction}"),
    }
}

/// Every report a lane saw committed is in the chain and in the state of
/// every node: each signer's sequence on every node equals the number of
/// its committed reports (a sequence advances only when the one report
/// signed with it executes), each report is in a block at the height it was
/// acknowledged at, and each venue's last report is the position every node
/// holds. Call it with every node running.
pub async fn assert_nothing_lost(net: &Localnet, tallies: &[Tally]) {
    let all: Vec<usize> = (0..net.len()).collect();
    let highest = tallies
        .iter()
        .flat_map(|t| t.committed.iter().map(|c| c.height))
        .max()
        .unwrap_or(1);
    net.wait_for_all(&all, highest, Duration::from_secs(90))
        .await;
    for tally in tallies {
        let mut previous_height = 0;
        for committed in &tally.committed {
            assert!(
                committed.height >= previous_height,
                "{} report {} committed at {} before report {} at {previous_height}",
                tally.venue,
                committed.sequence,
                committed.height,
                committed.sequence - 1
            );
            previous_height = committed.height;
            assert_in_a_block(net, &tally.venue, committed).await;
        }
        for &i in &all {
            let sequence = net.client(i).sequence(&tally.signer).await;
            assert_eq!(
                sequence,
                tally.next_sequence(),
                "node{i}: {} has committed sequence {sequence}, but {} of its reports from {} were committed",
                tally.venue,
                tally.committed.len(),
                tally.first_sequence
            );
            assert_last_report_held(net, i, tally).await;
        }
    }
}

/// The report is in the block it was acknowledged in, according to every
/// node that indexed it (a node SIGKILLed between committing a block and
/// indexing it never indexes that block, so one node's index may miss it).
async fn assert_in_a_block(net: &Localnet, venue: &str, committed: &Committed) {
    let mut found = 0;
    for i in 0..net.len() {
        if let Ok(Some(indexed)) = net.rpc(i).committed_tx(&committed.hash).await {
            assert_eq!(
                (indexed.height, indexed.code),
                (committed.height, 0),
                "node{i} has {venue} report {} at height {} with code {}, acknowledged at {}",
                committed.sequence,
                indexed.height,
                indexed.code,
                committed.height
            );
            found += 1;
        }
    }
    assert!(
        found > 0,
        "no node has {venue} report {} (tx {}, acknowledged at height {}) in a block",
        committed.sequence,
        hex::encode_upper(committed.hash),
        committed.height
    );
}

async fn assert_last_report_held(net: &Localnet, i: usize, tally: &Tally) {
    for entry in &tally.last_entries {
        let account = Address::from_slice(&entry.account).unwrap();
        let held = net.client(i).account(account).await.unwrap();
        let position = held
            .positions
            .iter()
            .find(|p| p.venue == tally.venue && p.market == entry.market)
            .unwrap_or_else(|| {
                panic!(
                    "node{i}: account {account} has no {} position on {}",
                    entry.market, tally.venue
                )
            });
        assert_eq!(
            canonical_decimal(&position.size),
            canonical_decimal(&entry.size),
            "node{i}: account {account}'s {} position on {} is not the last report's",
            entry.market,
            tally.venue
        );
    }
}

#[test]
fn canonical_decimal_drops_insignificant_zeros() {
    assert_eq!(canonical_decimal("0.010"), "0.01");
    assert_eq!(canonical_decimal("-2.500"), "-2.5");
    assert_eq!(canonical_decimal("3.000"), "3");
    assert_eq!(canonical_decimal("007"), "7");
    assert_eq!(canonical_decimal("-0.000"), "0");
}
