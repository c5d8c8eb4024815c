//! `AuditService`: read-only answers from committed state, each naming the
//! height and app hash it was read from, with an ics23 proof on request.

use std::sync::Arc;

use clearnode_engine::keys;
use clearnode_proto::audit::v1 as pb;
use clearnode_proto::audit::v1::audit_service_server::AuditService;
use clearnode_proto::state::v1 as state_pb;
use clearnode_store::{Committed, Store};
use clearnode_types::{Address, MarketId};
use tonic::{Request, Response, Status};

use crate::proven::{ProvenCache, ProvenRead};
use crate::{decode, internal};

/// Scans retried while commits land.
const SCAN_ATTEMPTS_MAX: usize = 3;

/// Most liquidation orders one list returns.
const LIQUIDATION_ORDERS_MAX: usize = 1_000;

/// The audit service over the node's store.
#[derive(Debug, Clone)]
pub struct AuditApi {
    store: Store,
    /// Proofs of the latest height, made once per key and block.
    proven: ProvenCache,
}

/// One value read at one version.
struct Read {
    context: pb::QueryContext,
    value: Option<Vec<u8>>,
}

/// The version a read at `height` names, given the latest committed block.
fn version_at(latest: Committed, height: u64) -> Result<u64, Status> {
    match height {
        0 => Ok(latest.version),
        h if h <= latest.version => Ok(h),
        h => Err(Status::out_of_range(format!(
            "height {h} is not committed yet (latest {})",
            latest.version
        ))),
    }
}

impl AuditApi {
    /// The service over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            proven: ProvenCache::default(),
        }
    }

    /// The latest committed block (genesis alone is not served).
    fn latest(&self) -> Result<Committed, Status> {
        self.store
            .latest()
            .map_err(internal)?
            .filter(|c| c.version > 0)
            .ok_or_else(|| Status::unavailable("no block committed yet"))
    }

    /// The version to read: the latest committed block for 0, else `height`.
    fn version(&self, height: u64) -> Result<u64, Status> {
        version_at(self.latest()?, height)
    }

    /// The version to read (as [`Self::version`]) and its app hash.
    fn committed_at(&self, height: u64) -> Result<Committed, Status> {
        let latest = self.latest()?;
        if height == 0 || height == latest.version {
            return Ok(latest);
        }
        let version = version_at(latest, height)?;
        let root_hash = self
            .store
            .root_hash(version)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("height {version} is not retained")))?;
        Ok(Committed { version, root_hash })
    }

    /// The value of `key` at `at` and its encoded proof, proven once per
    /// key and version.
    fn proven_read(&self, at: Committed, key: &[u8]) -> Result<Arc<ProvenRead>, Status> {
        if let Some(kept) = self.proven.get(at, key) {
            return Ok(kept);
        }
        let (value, proof) = self
            .store
            .get_with_proof(key, at.version)
            .map_err(internal)?;
        let read = Arc::new(ProvenRead {
            value,
            proof: clearnode_store::encode_proof(&proof),
        });
        self.proven.put(at, key.to_vec(), Arc::clone(&read));
        Ok(read)
    }

    /// A scan of the latest state and the version it belongs to: retried
    /// when a commit lands during the scan.
    fn scan_latest(&self, prefix: &[u8]) -> Result<(u64, Vec<clearnode_engine::KeyValue>), Status> {
        for _ in 0..SCAN_ATTEMPTS_MAX {
            let before = self.version(0)?;
            let pairs = self.store.scan_prefix_latest(prefix).map_err(internal)?;
            if self.version(0)? == before {
                return Ok((before, pairs));
            }
        }
        Err(Status::unavailable(
            "state kept changing during the scan; retry",
        ))
    }

    /// The context of a listing read at `version` under `prefix` (no proof).
    fn unproven_context(&self, version: u64, prefix: Vec<u8>) -> Result<pb::QueryContext, Status> {
        let app_hash = self
            .store
            .root_hash(version)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("height {version} is not retained")))?;
        Ok(pb::QueryContext {
            height: version,
            app_hash: app_hash.to_vec(),
            key: prefix,
            proof: Vec::new(),
        })
    }

    fn read(&self, key: Vec<u8>, height: u64, prove: bool) -> Result<Read, Status> {
        let at = self.committed_at(height)?;
        let (value, proof) = if prove {
            let proven = self.proven_read(at, &key)?;
            (proven.value.clone(), proven.proof.clone())
        } else {
            (
                self.store.get(&key, at.version).map_err(internal)?,
                Vec::new(),
            )
        };
        Ok(Read {
            context: pb::QueryContext {
                height: at.version,
                app_hash: at.root_hash.to_vec(),
                key,
                proof,
            },
            value,
        })
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn get_account_risk(
        &self,
        request: Request<pb::GetAccountRiskRequest>,
    ) -> Result<Response<pb::GetAccountRiskResponse>, Status> {
        let request = request.into_inner();
        let address = Address::from_slice(&request.account)
            .ok_or_else(|| Status::invalid_argument("account must be a 20-byte address"))?;
        let read = self.read(keys::risk(&address), request.height, request.prove)?;
        let risk_bytes = read
            .value
            .ok_or_else(|| Status::not_found(format!("no account {address}")))?;
        // The account and its positions as of the same version as the
        // (proven) risk record.
        let version = read.context.height;
        let account = self
            .store
            .get(&keys::account(&address), version)
            .map_err(internal)?
            .map(|bytes| decode::<state_pb::Account>(&bytes))
            .transpose()?;
        let mut positions = self
            .store
            .get(&keys::positions(&address), version)
            .map_err(internal)?
            .map(|bytes| decode::<state_pb::Positions>(&bytes))
            .transpose()?
            .map(|record| record.positions)
            .unwrap_or_default();
        for position in &mut positions {
            position.account = address.as_bytes().to_vec();
        }
        Ok(Response::new(pb::GetAccountRiskResponse {
            context: Some(read.context),
            risk: Some(decode(&risk_bytes)?),
            account,
            positions,
        }))
    }

    async fn get_market_risk(
        &self,
        request: Request<pb::GetMarketRiskRequest>,
    ) -> Result<Response<pb::GetMarketRiskResponse>, Status> {
        let request = request.into_inner();
        let market: MarketId = request
            .market
            .parse()
            .map_err(|e| Status::invalid_argument(format!("market: {e}")))?;
        let read = self.read(
            keys::market_aggregate(&market),
            request.height,
            request.prove,
        )?;
        let aggregate = read
            .value
            .ok_or_else(|| Status::not_found(format!("no market {market}")))?;
        let listing = self
            .store
            .get(&keys::market(&market), read.context.height)
            .map_err(internal)?
            .map(|bytes| decode::<state_pb::Market>(&bytes))
            .transpose()?;
        let margin = self
            .store
            .get(&keys::market_margin(&market), read.context.height)
            .map_err(internal)?
            .map(|bytes| decode::<state_pb::MarketMargin>(&bytes))
            .transpose()?;
        Ok(Response::new(pb::GetMarketRiskResponse {
            context: Some(read.context),
            aggregate: Some(decode(&aggregate)?),
            market: listing,
            margin,
        }))
    }

    async fn get_system_risk(
        &self,
        request: Request<pb::GetSystemRiskRequest>,
    ) -> Result<Response<pb::GetSystemRiskResponse>, Status> {
        let request = request.into_inner();
        let read = self.read(keys::system_aggregate(), request.height, request.prove)?;
        let aggregate = read
            .value
            .ok_or_else(|| Status::data_loss("system aggregate missing from state"))?;
        Ok(Response::new(pb::GetSystemRiskResponse {
            context: Some(read.context),
            aggregate: Some(decode(&aggregate)?),
        }))
    }

    async fn get_insurance_fund(
        &self,
        request: Request<pb::GetInsuranceFundRequest>,
    ) -> Result<Response<pb::GetInsuranceFundResponse>, Status> {
        let request = request.into_inner();
        let key = if request.market.is_empty() {
            keys::insurance_fund()
        } else {
            let market = request
                .market
                .parse()
                .map_err(|e| Status::invalid_argument(format!("market: {e}")))?;
            keys::isolated_fund(&market)
        };
        let read = self.read(key, request.height, request.prove)?;
        let fund = read.value.ok_or_else(|| {
            if request.market.is_empty() {
                Status::data_loss("insurance fund missing from state")
            } else {
                Status::not_found(format!("{} is not an isolated market", request.market))
            }
        })?;
        let version = read.context.height;
        let mut settlements = Vec::new();
        let latest = self
            .store
            .scan_prefix_latest(keys::SETTLEMENT_PREFIX)
            .map_err(internal)?;
        for (key, _) in latest {
            // Read each venue's balance at the same height as the fund.
            if let Some(bytes) = self.store.get(&key, version).map_err(internal)? {
                settlements.push(decode::<state_pb::VenueSettlement>(&bytes)?);
            }
        }
        Ok(Response::new(pb::GetInsuranceFundResponse {
            context: Some(read.context),
            fund: Some(decode(&fund)?),
            settlements,
        }))
    }

    async fn list_liquidation_orders(
        &self,
        request: Request<pb::ListLiquidationOrdersRequest>,
    ) -> Result<Response<pb::ListLiquidationOrdersResponse>, Status> {
        let request = request.into_inner();
        let prefix = if request.account.is_empty() {
            keys::LIQUIDATION_PREFIX.to_vec()
        } else {
            let address = Address::from_slice(&request.account)
                .ok_or_else(|| Status::invalid_argument("account must be a 20-byte address"))?;
            format!("liq/{}/", address.to_hex()).into_bytes()
        };
        let limit = match request.limit {
            0 => LIQUIDATION_ORDERS_MAX,
            n => (n as usize).min(LIQUIDATION_ORDERS_MAX),
        };
        let (version, pairs) = self.scan_latest(&prefix)?;
        let orders = pairs
            .iter()
            .take(limit)
            .map(|(_, value)| decode::<state_pb::LiquidationOrder>(value))
            .collect::<Result<Vec<_>, _>>()?;
        let context = self.unproven_context(version, prefix)?;
        Ok(Response::new(pb::ListLiquidationOrdersResponse {
            context: Some(context),
            orders,
        }))
    }

    async fn list_instructions(
        &self,
        request: Request<pb::ListInstructionsRequest>,
    ) -> Result<Response<pb::ListInstructionsResponse>, Status> {
        let request = request.into_inner();
        let version = self.version(0)?;
        let (instructions, next_page_token) = crate::history::page(&self.store, &request, version)?;
        let context = self.unproven_context(version, b"instr/".to_vec())?;
        Ok(Response::new(pb::ListInstructionsResponse {
            context: Some(context),
            instructions,
            next_page_token,
        }))
    }

    async fn get_breakers(
        &self,
        request: Request<pb::GetBreakersRequest>,
    ) -> Result<Response<pb::GetBreakersResponse>, Status> {
        let request = request.into_inner();
        let read = self.read(keys::system_breaker(), request.height, request.prove)?;
        let system = read
            .value
            .ok_or_else(|| Status::data_loss("system breaker missing from state"))?;
        let version = read.context.height;
        let mut markets = Vec::new();
        let listed = self
            .store
            .scan_prefix_latest(keys::MARKET_BREAKER_PREFIX)
            .map_err(internal)?;
        for (key, _) in listed {
            // Each market's breaker at the same height as the system's.
            let market = self.read(key, version, request.prove)?;
            if let Some(bytes) = market.value {
                markets.push(pb::ProvenMarketBreaker {
                    context: Some(market.context),
                    breaker: Some(decode(&bytes)?),
                });
            }
        }
        Ok(Response::new(pb::GetBreakersResponse {
            context: Some(read.context),
            system: Some(decode(&system)?),
            markets,
        }))
    }

    async fn get_state_value(
        &self,
        request: Request<pb::GetStateValueRequest>,
    ) -> Result<Response<pb::GetStateValueResponse>, Status> {
        let request = request.into_inner();
        if request.key.is_empty() {
            return Err(Status::invalid_argument("key is empty"));
        }
        let read = self.read(request.key, request.height, request.prove)?;
        Ok(Response::new(pb::GetStateValueResponse {
            context: Some(read.context),
            found: read.value.is_some(),
            value: read.value.unwrap_or_default(),
        }))
    }

    async fn get_sequence(
        &self,
        request: Request<pb::GetSequenceRequest>,
    ) -> Result<Response<pb::GetSequenceResponse>, Status> {
        let request = request.into_inner();
        let key = <[u8; 32]>::try_from(request.public_key.as_slice())
            .map_err(|_| Status::invalid_argument("public_key must be 32 bytes"))?;
        let address = Address::of_public_key(&key);
        let read = self.read(keys::sequence(&address), 0, false)?;
        let next = match read.value {
            Some(bytes) => decode::<state_pb::Sequence>(&bytes)?.next,
            None => 0,
        };
        Ok(Response::new(pb::GetSequenceResponse {
            context: Some(read.context),
            next,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A store whose system aggregate counts `accounts` at each height after genesis.
    fn store_with_heights(accounts: &[u64]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store");
        store
            .commit(store.prepare(0, Vec::new()).expect("prepare"))
            .expect("commit genesis");
        for (index, count) in accounts.iter().enumerate() {
            commit_aggregate(&store, index as u64 + 1, *count);
        }
        (dir, store)
    }

    fn commit_aggregate(store: &Store, height: u64, accounts: u64) {
        let aggregate = state_pb::SystemAggregate {
            accounts_total: accounts,
            height,
            ..Default::default()
        };
        let writes = vec![(keys::system_aggregate(), Some(aggregate.encode_to_vec()))];
        let prepared = store.prepare(height, writes).expect("prepare");
        store.commit(prepared).expect("commit");
    }

    /// The answer as read straight from the store, without the service's cache.
    fn fresh_answer(store: &Store, height: u64) -> pb::GetSystemRiskResponse {
        let key = keys::system_aggregate();
        let (value, proof) = store.get_with_proof(&key, height).expect("proof");
        let app_hash = store.root_hash(height).expect("root").expect("retained");
        pb::GetSystemRiskResponse {
            context: Some(pb::QueryContext {
                height,
                app_hash: app_hash.to_vec(),
                key,
                proof: clearnode_store::encode_proof(&proof),
            }),
            aggregate: Some(decode(&value.expect("aggregate")).expect("decodes")),
        }
    }

    async fn system_risk(api: &AuditApi, height: u64) -> pb::GetSystemRiskResponse {
        api.get_system_risk(Request::new(pb::GetSystemRiskRequest {
            height,
            prove: true,
        }))
        .await
        .expect("answer")
        .into_inner()
    }

    #[tokio::test]
    async fn a_kept_proof_equals_a_fresh_one_and_changes_with_the_next_block() {
        let (_dir, store) = store_with_heights(&[1, 2]);
        let api = AuditApi::new(store.clone());
        let first = system_risk(&api, 0).await;
        let again = system_risk(&api, 0).await;
        assert_eq!(first, fresh_answer(&store, 2));
        assert_eq!(again, first);

        commit_aggregate(&store, 3, 7);
        let next = system_risk(&api, 0).await;
        assert_eq!(next, fresh_answer(&store, 3));
        assert_ne!(next.context, first.context);
        assert_eq!(next.aggregate.map(|a| a.accounts_total), Some(7));

        // A past height is still answered from its own tree.
        assert_eq!(system_risk(&api, 2).await, fresh_answer(&store, 2));
        assert_eq!(system_risk(&api, 1).await, fresh_answer(&store, 1));
        assert_eq!(system_risk(&api, 0).await, fresh_answer(&store, 3));
    }

    #[tokio::test]
    async fn clones_of_the_service_share_the_kept_proofs() {
        let (_dir, store) = store_with_heights(&[4]);
        let api = AuditApi::new(store.clone());
        let clone = api.clone();
        let answer = system_risk(&api, 0).await;
        let at = store.latest().expect("latest").expect("committed");
        assert!(clone.proven.get(at, &keys::system_aggregate()).is_some());
        assert_eq!(system_risk(&clone, 0).await, answer);
    }
}
