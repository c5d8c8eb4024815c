//! gRPC services of a clearnode node (tonic).
//!
//! Submission services (`VenueService`, `AccountService`,
//! `CustodianService`) check a transaction statelessly and broadcast it to
//! the local CometBFT; they never write state themselves. `AuditService`
//! answers read-only queries from committed state, each with the height and
//! app hash it was read from and, on request, a Merkle proof. Health and
//! reflection services are served beside them.
//!
//! Must never depend on: the engine's mutable state or the ABCI connection.
#![forbid(unsafe_code)]

mod audit;
pub mod cometbft;
mod history;
mod instructions;
mod passport;
mod proven;
mod submit;

use std::net::SocketAddr;
use std::time::Duration;

use clearnode_proto::audit::v1::audit_service_server::AuditServiceServer;
use clearnode_proto::venue::v1::account_service_server::AccountServiceServer;
use clearnode_proto::venue::v1::custodian_service_server::CustodianServiceServer;
use clearnode_proto::venue::v1::venue_service_server::VenueServiceServer;
use clearnode_store::Store;

pub use audit::AuditApi;
pub use submit::Submitter;

/// What the services need to know.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// The chain id transactions must be signed for.
    pub chain_id: String,
    /// CometBFT RPC, e.g. `http://127.0.0.1:26657`.
    pub cometbft_rpc: String,
    /// How long `wait_for_commit` waits for the block.
    pub commit_timeout: Duration,
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed (e.g. the port is in use).
    #[error("gRPC server on {addr}: {source}")]
    Transport {
        /// Listen address.
        addr: SocketAddr,
        /// Cause.
        source: tonic::transport::Error,
    },
    /// Reflection could not be built.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves every clearnode gRPC service on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: GrpcConfig,
    store: Store,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let submitter = Submitter::new(config, store.clone());
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<VenueServiceServer<Submitter>>()
        .await;
    health_reporter
        .set_serving::<AuditServiceServer<AuditApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(clearnode_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    tracing::info!(%addr, "gRPC listening");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(VenueServiceServer::new(submitter.clone()))
        .add_service(AccountServiceServer::new(submitter.clone()))
        .add_service(CustodianServiceServer::new(submitter))
        .add_service(AuditServiceServer::new(AuditApi::new(store)))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
        .map_err(|source| ServeError::Transport { addr, source })
}

/// The accepted connections, with Nagle's algorithm off: tonic ignores its
/// own `tcp_nodelay` for a listener it did not bind, and with Nagle on a
/// small answer written in two pieces waits for the client's delayed ACK
/// (~40 ms per unary call).
fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A store failure as a gRPC status.
pub(crate) fn internal(error: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::internal(error.to_string())
}

/// Decodes a stored value; a value that does not decode is data loss.
pub(crate) fn decode<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, tonic::Status> {
    M::decode(bytes)
        .map_err(|e| tonic::Status::data_loss(format!("stored value does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut accepted = super::incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let stream = accepted
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(stream.nodelay().expect("socket option"));
    }
}
