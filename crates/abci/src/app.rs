//! The `Application` implementation and the consensus-side state it guards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use clearnode_engine::{BlockHeader, Engine, KeyRange, LoadError, PairCursor, StateSource};
use clearnode_store::{PrefixCursor, PreparedCommit, Store, StoreError};
use clearnode_types::genesis::Genesis;
use clearnode_types::tx::verify_tx_shared;
use clearnode_types::{Address, TxCode};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    response_process_proposal::ProposalStatus, CheckTxType, RequestCheckTx, RequestExtendVote,
    RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, RequestVerifyVoteExtension, ResponseCheckTx,
    ResponseCommit, ResponseExtendVote, ResponseFinalizeBlock, ResponseInfo, ResponseInitChain,
    ResponsePrepareProposal, ResponseProcessProposal, ResponseQuery, ResponseVerifyVoteExtension,
};
use tendermint_proto::v0_38::abci::{
    RequestApplySnapshotChunk, RequestLoadSnapshotChunk, RequestOfferSnapshot,
    ResponseApplySnapshotChunk, ResponseListSnapshots, ResponseLoadSnapshotChunk,
    ResponseOfferSnapshot,
};

use crate::convert::{self, exec_result, timestamp_parts};
use crate::mempool;
use crate::metrics::{AppMetrics, Timer};
use crate::oracle::{self, QuoteSource};
use crate::snapshot::Restore;
use crate::snapshot_files::{SnapshotConfig, SnapshotFiles};
use crate::state_sync;

/// How many verified transactions the process remembers, in report entries (~100 bytes
/// each): a deep mempool backlog of 500-entry reports, from CheckTx to FinalizeBlock.
const VERIFIED_TXS_WEIGHT_MAX: usize = 1_000_000;

/// Name and version reported in Info.
#[derive(Debug, Clone)]
pub struct AppInfo {
    /// Software version.
    pub version: String,
}

/// The consensus-side state: the engine and the block staged for Commit.
#[derive(Default)]
pub(crate) struct Consensus {
    /// `None` until InitChain (or a load of committed state).
    pub(crate) engine: Option<Engine>,
    /// The block FinalizeBlock staged, persisted by Commit.
    pending: Option<PreparedCommit>,
}

struct Shared {
    store: Store,
    quotes: QuoteSource,
    metrics: Arc<AppMetrics>,
    info: AppInfo,
    consensus: Mutex<Consensus>,
    /// The mempool's next sequence per signer (lock after `consensus`).
    mempool: Mutex<BTreeMap<Address, u64>>,
    /// The snapshots this node takes and serves, if any.
    snapshots: Option<SnapshotFiles>,
    /// The snapshot being restored by state sync (lock before `consensus`).
    restoring: Mutex<Option<Restore>>,
    /// The chain id, once known.
    chain_id: OnceLock<String>,
}

/// The ABCI application. Clones share one state (CometBFT opens four
/// connections, each served by its own thread with its own clone).
#[derive(Clone)]
pub struct ClearnodeApp {
    shared: Arc<Shared>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock aborts the process (see the crate
    // docs), so a poisoned lock is never observed in practice.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fatal: the node must stop rather than diverge.
pub(crate) fn fatal(what: impl std::fmt::Display) -> ! {
    tracing::error!("fatal: {what}");
    panic!("fatal: {what}")
}

/// The latest committed state of a store, as the engine loads it.
pub struct StoreSource<'a>(pub &'a Store);

impl StateSource for StoreSource<'_> {
    type Error = StoreError;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get_latest(key)
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<clearnode_engine::KeyValue>, StoreError> {
        self.0.scan_prefix_latest(prefix)
    }
    fn cursor<'a>(&'a self, range: KeyRange<'_>) -> Result<Box<dyn PairCursor + 'a>, LoadError> {
        let cursor = self
            .0
            .cursor_latest(range.prefix, range.from, range.to)
            .map_err(source_error)?;
        Ok(Box::new(StoreCursor(cursor)))
    }
}

/// Streams a prefix from RocksDB, so loading never holds a whole prefix.
struct StoreCursor<'a>(PrefixCursor<'a>);

impl PairCursor for StoreCursor<'_> {
    fn next_pair(&mut self) -> Result<Option<clearnode_engine::PairRef<'_>>, LoadError> {
        self.0.next_pair().map_err(source_error)
    }
}

fn source_error(e: StoreError) -> LoadError {
    LoadError::Source(e.to_string())
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The committed state does not load.
    #[error("loading committed state: {0}")]
    Load(#[from] LoadError),
}

impl ClearnodeApp {
    /// Opens the application over a store, loading the engine from the last
    /// committed block if there is one.
    pub fn new(store: Store, info: AppInfo) -> Result<Self, StartError> {
        clearnode_types::tx::remember_verified_txs(VERIFIED_TXS_WEIGHT_MAX);
        let mut consensus = Consensus::default();
        let metrics = Arc::new(AppMetrics::default());
        if let Some(committed) = store.latest()? {
            if committed.version > 0 {
                let engine = Engine::load(&StoreSource(&store))?;
                tracing::info!(
                    height = committed.version,
                    app_hash = hex::encode_upper(committed.root_hash),
                    "loaded committed state"
                );
                metrics.observe_state(engine.state());
                consensus.engine = Some(engine);
            }
        }
        Ok(Self {
            shared: Arc::new(Shared {
                metrics,
                quotes: Arc::new(|_| Vec::new()),
                store,
                info,
                consensus: Mutex::new(consensus),
                mempool: Mutex::new(BTreeMap::new()),
                snapshots: None,
                restoring: Mutex::new(None),
                chain_id: OnceLock::new(),
            }),
        })
    }

    /// Sets where this validator's oracle quotes come from (its price feed);
    /// without one, its vote extensions are empty.
    pub fn with_quotes(self, quotes: QuoteSource) -> Self {
        let shared =
            Arc::try_unwrap(self.shared).unwrap_or_else(|_| fatal("with_quotes on a shared app"));
        Self {
            shared: Arc::new(Shared { quotes, ..shared }),
        }
    }

    /// Takes a state-sync snapshot every `config.interval` heights and serves them to peers.
    pub fn with_snapshots(self, config: SnapshotConfig) -> Self {
        let shared = Arc::try_unwrap(self.shared)
            .unwrap_or_else(|_| fatal("with_snapshots on a shared app"));
        Self {
            shared: Arc::new(Shared {
                snapshots: Some(SnapshotFiles::new(config)),
                ..shared
            }),
        }
    }

    /// Counters for the metrics endpoint.
    pub fn metrics(&self) -> Arc<AppMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The store (read-only use: queries).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// CheckTx: stateless checks off the lock, then the engine's (or, for a recheck, the
    /// sequence only).
    fn check_tx_timed(&self, request: &RequestCheckTx) -> ResponseCheckTx {
        let Some(chain_id) = self.chain_id() else {
            return mempool::refused(TxCode::MalformedTx, "the chain is not initialized");
        };
        // The stateless checks (signature, decoding) run off the lock; the engine's own
        // check below repeats them from memory.
        let verified = match verify_tx_shared(&request.tx, &chain_id) {
            Ok(verified) => verified,
            Err(rejection) => {
                AppMetrics::count(&self.shared.metrics.check_results, rejection.code.number());
                return mempool::refused(rejection.code, rejection.log);
            }
        };
        let consensus = lock(&self.shared.consensus);
        let Some(engine) = consensus.engine.as_ref() else {
            return mempool::refused(TxCode::MalformedTx, "the chain is not initialized");
        };
        let mut pending = lock(&self.shared.mempool);
        let response = if request.r#type == CheckTxType::Recheck as i32 {
            mempool::recheck(engine, &mut pending, &verified)
        } else {
            mempool::check(engine, &mut pending, &request.tx)
        };
        AppMetrics::count(&self.shared.metrics.check_results, response.code);
        response
    }

    /// The chain id, read from the engine once (it never changes), so that CheckTx does not
    /// wait for the engine's lock for it.
    fn chain_id(&self) -> Option<String> {
        if let Some(id) = self.shared.chain_id.get() {
            return Some(id.clone());
        }
        let consensus = lock(&self.shared.consensus);
        let id = consensus.engine.as_ref()?.chain_id().to_string();
        Some(self.shared.chain_id.get_or_init(|| id).clone())
    }
}

impl Application for ClearnodeApp {
    fn info(&self, _request: RequestInfo) -> ResponseInfo {
        let latest = self.shared.store.latest().unwrap_or_else(|e| fatal(e));
        let (height, app_hash) = match latest {
            Some(c) if c.version > 0 => (c.version, c.root_hash.to_vec()),
            _ => (0, Vec::new()),
        };
        ResponseInfo {
            data: "clearnode".into(),
            version: self.shared.info.version.clone(),
            app_version: 1,
            last_block_height: i64::try_from(height).unwrap_or_else(|e| fatal(e)),
            last_block_app_hash: app_hash.into(),
        }
    }

    fn init_chain(&self, request: RequestInitChain) -> ResponseInitChain {
        let genesis = Genesis::from_json(&request.app_state_bytes)
            .unwrap_or_else(|e| fatal(format!("genesis app_state: {e}")));
        let (seconds, nanos) = timestamp_parts(request.time.as_ref());
        let (mut engine, mut writes) =
            Engine::init_chain(&request.chain_id, &genesis, seconds, nanos)
                .unwrap_or_else(|e| fatal(e));
        let validators = request.validators.iter().map(|update| {
            let key = match update.pub_key.as_ref().and_then(|k| k.sum.as_ref()) {
                Some(tendermint_proto::v0_38::crypto::public_key::Sum::Ed25519(bytes)) => {
                    <[u8; 32]>::try_from(bytes.as_slice())
                        .unwrap_or_else(|_| fatal("a validator key is not 32 bytes"))
                }
                _ => fatal("validators must have ed25519 keys"),
            };
            (
                key,
                u64::try_from(update.power).unwrap_or_else(|_| fatal("negative validator power")),
            )
        });
        writes.push(engine.set_validators(validators));
        let store = &self.shared.store;
        let prepared = store.prepare(0, writes).unwrap_or_else(|e| fatal(e));
        let committed = store.commit(prepared).unwrap_or_else(|e| fatal(e));
        tracing::info!(
            chain_id = request.chain_id,
            app_hash = hex::encode_upper(committed.root_hash),
            "initialized chain from genesis"
        );
        lock(&self.shared.consensus).engine = Some(engine);
        ResponseInitChain {
            consensus_params: None,
            validators: Vec::new(),
            app_hash: committed.root_hash.to_vec().into(),
        }
    }

    fn check_tx(&self, request: RequestCheckTx) -> ResponseCheckTx {
        let timer = Timer::start();
        let response = self.check_tx_timed(&request);
        timer.stop(&self.shared.metrics.check_tx_latency);
        response
    }

    fn prepare_proposal(&self, request: RequestPrepareProposal) -> ResponsePrepareProposal {
        let Some(chain_id) = self.chain_id() else {
            return ResponsePrepareProposal { txs: Vec::new() };
        };
        let mut limit = usize::try_from(request.max_tx_bytes).unwrap_or(0);
        let update = oracle::update_from_commit(request.local_last_commit.as_ref(), request.height)
            .filter(|update| update.len() <= limit);
        if let Some(update) = &update {
            limit -= update.len();
        }
        let selected = mempool::select_for_proposal(&chain_id, request.txs, limit);
        ResponsePrepareProposal {
            txs: update.into_iter().chain(selected).collect(),
        }
    }

    fn process_proposal(&self, request: RequestProcessProposal) -> ResponseProcessProposal {
        let consensus = lock(&self.shared.consensus);
        let well_formed = consensus.engine.as_ref().is_some_and(|engine| {
            let oracle_ok = oracle::proposal_oracle_is_valid(engine, &request.txs, request.height);
            let rest = match request.txs.first() {
                Some(tx) if clearnode_oracle::is_oracle_tx(tx) => &request.txs[1..],
                _ => &request.txs[..],
            };
            oracle_ok && mempool::proposal_is_well_formed(engine.chain_id(), rest)
        });
        let status = if well_formed {
            ProposalStatus::Accept
        } else {
            ProposalStatus::Reject
        };
        ResponseProcessProposal {
            status: status.into(),
        }
    }

    fn finalize_block(&self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        let timer = Timer::start();
        let mut consensus = lock(&self.shared.consensus);
        let height = u64::try_from(request.height).unwrap_or_else(|e| fatal(e));
        let (time_seconds, time_nanos) = timestamp_parts(request.time.as_ref());
        let engine = consensus
            .engine
            .as_mut()
            .unwrap_or_else(|| fatal("FinalizeBlock before InitChain"));
        let oracle_round = oracle::block_oracle(engine, &request.txs, request.height);
        let header = BlockHeader {
            height,
            time_seconds,
            time_nanos,
        };
        engine
            .begin_block_with_oracle(header, &oracle_round.clone().unwrap_or_default())
            .unwrap_or_else(|e| fatal(e));
        let mut tx_results = Vec::with_capacity(request.txs.len());
        let mut txs = request.txs.iter();
        if let Some(round) = &oracle_round {
            txs.next();
            tx_results.push(convert::oracle_result(round));
        }
        for tx in txs {
            let outcome = engine.deliver_tx(tx).unwrap_or_else(|e| fatal(e));
            AppMetrics::count(&self.shared.metrics.block_results, outcome.code.number());
            self.shared.metrics.count_events(&outcome.events);
            tx_results.push(exec_result(outcome));
        }
        let clearnode_engine::BlockOutput { writes, events } =
            engine.end_block().unwrap_or_else(|e| fatal(e));
        // The Merkle update needs only the writes: CheckTx may use the engine meanwhile (it
        // sees this block's state, which is decided and will be committed or replayed).
        drop(consensus);
        self.shared.metrics.count_events(&events);
        let prepare_timer = Timer::start();
        let prepared = self
            .shared
            .store
            .prepare(height, writes)
            .unwrap_or_else(|e| fatal(e));
        prepare_timer.stop(&self.shared.metrics.store_prepare_latency);
        let app_hash = prepared.root_hash();
        lock(&self.shared.consensus).pending = Some(prepared);
        tracing::debug!(height, txs = request.txs.len(), "finalized block");
        timer.stop(&self.shared.metrics.finalize_block_latency);
        ResponseFinalizeBlock {
            events: events.into_iter().map(crate::convert::event).collect(),
            tx_results,
            validator_updates: Vec::new(),
            consensus_param_updates: None,
            app_hash: app_hash.to_vec().into(),
        }
    }

    fn commit(&self) -> ResponseCommit {
        let timer = Timer::start();
        let prepared = lock(&self.shared.consensus)
            .pending
            .take()
            .unwrap_or_else(|| fatal("Commit without a finalized block"));
        // Written without the engine's lock, so CheckTx keeps running.
        let committed = self
            .shared
            .store
            .commit(prepared)
            .unwrap_or_else(|e| fatal(e));
        // The mempool is rechecked against the new state from scratch.
        lock(&self.shared.mempool).clear();
        self.shared.metrics.committed(committed.version);
        if let Some(engine) = &lock(&self.shared.consensus).engine {
            self.shared.metrics.observe_state(engine.state());
        }
        timer.stop(&self.shared.metrics.commit_latency);
        if let Some(snapshots) = &self.shared.snapshots {
            snapshots.after_commit(&self.shared.store, committed.version);
        }
        tracing::info!(
            height = committed.version,
            app_hash = hex::encode_upper(committed.root_hash),
            "committed"
        );
        ResponseCommit { retain_height: 0 }
    }

    fn extend_vote(&self, request: RequestExtendVote) -> ResponseExtendVote {
        oracle::extend_vote(&self.shared.quotes, request.height)
    }

    fn verify_vote_extension(
        &self,
        request: RequestVerifyVoteExtension,
    ) -> ResponseVerifyVoteExtension {
        oracle::verify_vote_extension(&request)
    }

    fn query(&self, request: RequestQuery) -> ResponseQuery {
        crate::query::answer(&self.shared.store, request)
    }

    fn list_snapshots(&self) -> ResponseListSnapshots {
        ResponseListSnapshots {
            snapshots: self
                .shared
                .snapshots
                .as_ref()
                .map(SnapshotFiles::list)
                .unwrap_or_default(),
        }
    }

    fn load_snapshot_chunk(&self, request: RequestLoadSnapshotChunk) -> ResponseLoadSnapshotChunk {
        let chunk = self
            .shared
            .snapshots
            .as_ref()
            .map(|files| files.chunk(request.height, request.format, request.chunk));
        ResponseLoadSnapshotChunk {
            chunk: chunk.unwrap_or_default().into(),
        }
    }

    fn offer_snapshot(&self, request: RequestOfferSnapshot) -> ResponseOfferSnapshot {
        state_sync::offer(&self.shared.store, &self.shared.restoring, &request)
    }

    fn apply_snapshot_chunk(
        &self,
        request: RequestApplySnapshotChunk,
    ) -> ResponseApplySnapshotChunk {
        let outcome = state_sync::apply(&self.shared.store, &self.shared.restoring, request);
        if let Some(engine) = outcome.engine {
            self.shared.metrics.observe_state(engine.state());
            lock(&self.shared.consensus).engine = Some(engine);
            self.shared.metrics.committed(outcome.height);
        }
        outcome.response
    }
}
