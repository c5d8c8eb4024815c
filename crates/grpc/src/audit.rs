//! `AuditService`: read-only answers from committed state, each naming the
//! height and app hash it was read from, with an ics23 proof on request.

use clearnode_engine::keys;
use clearnode_proto::audit::v1 as pb;
use clearnode_proto::audit::v1::audit_service_server::AuditService;
use clearnode_proto::state::v1 as state_pb;
use clearnode_store::Store;
use clearnode_types::{Address, MarketId};
use prost::Message;
use tonic::{Request, Response, Status};

/// The audit service over the node's store.
#[derive(Debug, Clone)]
pub struct AuditApi {
    store: Store,
}

fn internal(error: impl std::fmt::Display) -> Status {
    Status::internal(error.to_string())
}

/// One value read at one version.
struct Read {
    context: pb::QueryContext,
    value: Option<Vec<u8>>,
}

impl AuditApi {
    /// The service over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The version to read: the latest committed block for 0, else `height`.
    fn version(&self, height: u64) -> Result<u64, Status> {
        let latest = self
            .store
            .latest()
            .map_err(internal)?
            .filter(|c| c.version > 0)
            .ok_or_else(|| Status::unavailable("no block committed yet"))?;
        match height {
            0 => Ok(latest.version),
            h if h <= latest.version => Ok(h),
            h => Err(Status::out_of_range(format!(
                "height {h} is not committed yet (latest {})",
                latest.version
            ))),
        }
    }

    fn read(&self, key: Vec<u8>, height: u64, prove: bool) -> Result<Read, Status> {
        let version = self.version(height)?;
        let app_hash = self
            .store
            .root_hash(version)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("height {version} is not retained")))?;
        let (value, proof) = if prove {
            let (value, proof) = self.store.get_with_proof(&key, version).map_err(internal)?;
            (value, clearnode_store::encode_proof(&proof))
        } else {
            (self.store.get(&key, version).map_err(internal)?, Vec::new())
        };
        Ok(Read {
            context: pb::QueryContext {
                height: version,
                app_hash: app_hash.to_vec(),
                key,
                proof,
            },
            value,
        })
    }
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Status> {
    M::decode(bytes).map_err(|e| Status::data_loss(format!("stored value does not decode: {e}")))
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
        let version = read.context.height;
        let account = self
            .store
            .get(&keys::account(&address), version)
            .map_err(internal)?
            .map(|bytes| decode::<state_pb::Account>(&bytes))
            .transpose()?;
        // Positions are listed from the latest state; at a past height the
        // proven risk record carries the per-market exposures.
        let latest = self.version(0)?;
        let positions = if version == latest {
            let prefix = format!("pos/{}/", address.to_hex());
            self.store
                .scan_prefix_latest(prefix.as_bytes())
                .map_err(internal)?
                .iter()
                .map(|(_, value)| decode::<state_pb::Position>(value))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
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
        Ok(Response::new(pb::GetMarketRiskResponse {
            context: Some(read.context),
            aggregate: Some(decode(&aggregate)?),
            market: listing,
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
