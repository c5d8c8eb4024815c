//! The submission services: stateless check, broadcast, optionally wait.

use std::time::Duration;

use clearnode_proto::venue::v1 as pb;
use clearnode_proto::venue::v1::account_service_server::AccountService;
use clearnode_proto::venue::v1::custodian_service_server::CustodianService;
use clearnode_proto::venue::v1::venue_service_server::VenueService;
use clearnode_types::tx::{tx_hash, verify_tx, Action};
use tonic::{Request, Response, Status};

use crate::cometbft::{CometRpc, RpcError};
use crate::GrpcConfig;

/// How often a committing transaction is looked up.
const COMMIT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The kinds of transaction each service accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Venue,
    Account,
    Custodian,
}

impl Service {
    fn accepts(self, action: &Action) -> bool {
        matches!(
            (self, action),
            (Service::Venue, Action::PositionReport(_))
                | (
                    Service::Account,
                    Action::Withdraw(_)
                        | Action::AuthorizeVenue(_)
                        | Action::RegisterLiquidator
                        | Action::TakeOver(_)
                        | Action::MoveIsolatedMargin(_)
                        | Action::TripBreaker(_)
                        | Action::SubmitProposal(_)
                        | Action::VoteProposal(_)
                )
                | (Service::Custodian, Action::Deposit(_))
        )
    }

    fn name(self) -> &'static str {
        match self {
            Service::Venue => "VenueService.SubmitReport takes position reports",
            Service::Account => {
                "AccountService.SubmitAccountTx takes withdrawals, venue authorizations, liquidator registrations, takeovers, isolated-margin moves, breaker trips, and governance proposals and votes"
            }
            Service::Custodian => "CustodianService.SubmitDeposit takes deposits",
        }
    }
}

/// Checks and broadcasts transactions; shared by the three services.
#[derive(Debug, Clone)]
pub struct Submitter {
    config: GrpcConfig,
    rpc: CometRpc,
    /// Read-only: the margin passport reads committed state.
    store: clearnode_store::Store,
    /// What passports at the latest version share, decoded once.
    passport: crate::passport::PassportCache,
}

fn unavailable(error: RpcError) -> Status {
    match &error {
        // CometBFT's mempool cache refuses bytes it has seen: the same signed
        // transaction can never be applied twice.
        RpcError::Rpc(message) if message.contains("tx already exists in cache") => {
            Status::already_exists("this exact transaction was already submitted")
        }
        _ => Status::unavailable(error.to_string()),
    }
}

impl Submitter {
    /// A submitter broadcasting to the configured CometBFT.
    pub fn new(config: GrpcConfig, store: clearnode_store::Store) -> Self {
        let rpc = CometRpc::new(&config.cometbft_rpc);
        Self {
            config,
            rpc,
            store,
            passport: crate::passport::PassportCache::default(),
        }
    }

    async fn submit(
        &self,
        service: Service,
        request: pb::SubmitTxRequest,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        // Stateless checks here, so malformed or forged bytes never reach the mempool.
        let verified = verify_tx(&request.tx, &self.config.chain_id).map_err(|rejection| {
            let mut status = Status::invalid_argument(format!(
                "rejected with code {}: {}",
                rejection.code, rejection.log
            ));
            if let Ok(value) = rejection.code.number().to_string().parse() {
                status.metadata_mut().insert("clearnode-code", value);
            }
            status
        })?;
        if !service.accepts(&verified.action) {
            return Err(Status::invalid_argument(format!(
                "{}; got a {}",
                service.name(),
                verified.action.kind()
            )));
        }
        let hash = tx_hash(&request.tx);
        let checked = self
            .rpc
            .broadcast_tx_sync(&request.tx)
            .await
            .map_err(unavailable)?;
        let mut response = pb::SubmitTxResponse {
            tx_hash: checked.hash,
            code: checked.code,
            log: checked.log,
            height: 0,
            committed: false,
        };
        if checked.code != 0 || !request.wait_for_commit {
            return Ok(Response::new(response));
        }
        let committed = self.wait_for_commit(&hash).await?;
        response.code = committed.code;
        response.log = committed.log;
        response.height = committed.height;
        response.committed = committed.code == 0;
        Ok(Response::new(response))
    }

    async fn wait_for_commit(
        &self,
        hash: &[u8; 32],
    ) -> Result<crate::cometbft::CommittedTx, Status> {
        let deadline = tokio::time::Instant::now() + self.config.commit_timeout;
        loop {
            if let Some(committed) = self.rpc.committed_tx(hash).await.map_err(unavailable)? {
                return Ok(committed);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Status::deadline_exceeded(format!(
                    "tx {} accepted by CheckTx but not committed within {:?}",
                    hex::encode_upper(hash),
                    self.config.commit_timeout
                )));
            }
            tokio::time::sleep(COMMIT_POLL_INTERVAL).await;
        }
    }
}

#[tonic::async_trait]
impl VenueService for Submitter {
    async fn submit_report(
        &self,
        request: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(Service::Venue, request.into_inner()).await
    }

    type StreamInstructionsStream = crate::instructions::InstructionStream;

    async fn stream_instructions(
        &self,
        request: Request<pb::StreamInstructionsRequest>,
    ) -> Result<Response<Self::StreamInstructionsStream>, Status> {
        let request = request.into_inner();
        let venue = request
            .venue_id
            .parse()
            .map_err(|e| Status::invalid_argument(format!("venue_id: {e}")))?;
        crate::instructions::stream(self.store.clone(), venue, request.from_height)
            .map(Response::new)
    }

    async fn get_margin_passport(
        &self,
        request: Request<pb::GetMarginPassportRequest>,
    ) -> Result<Response<pb::GetMarginPassportResponse>, Status> {
        crate::passport::answer(&self.store, &self.passport, request.into_inner())
            .map(Response::new)
    }
}

#[tonic::async_trait]
impl AccountService for Submitter {
    async fn submit_account_tx(
        &self,
        request: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(Service::Account, request.into_inner()).await
    }
}

#[tonic::async_trait]
impl CustodianService for Submitter {
    async fn submit_deposit(
        &self,
        request: Request<pb::SubmitTxRequest>,
    ) -> Result<Response<pb::SubmitTxResponse>, Status> {
        self.submit(Service::Custodian, request.into_inner()).await
    }
}
