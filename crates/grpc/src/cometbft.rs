//! A small client of CometBFT's JSON-RPC: broadcast, transaction lookup
//! and status. Only what the node needs, with typed errors.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

/// CometBFT RPC failures.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// CometBFT could not be reached.
    #[error("CometBFT RPC at {url} is unreachable: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// CometBFT answered with an error.
    #[error("CometBFT RPC error: {0}")]
    Rpc(String),
    /// The answer did not have the expected shape.
    #[error("unexpected CometBFT answer: {0}")]
    Decode(String),
}

/// A CometBFT RPC endpoint.
#[derive(Debug, Clone)]
pub struct CometRpc {
    base: String,
    http: reqwest::Client,
}

/// CheckTx's answer to `broadcast_tx_sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastResult {
    /// Uppercase hex hash.
    pub hash: String,
    /// CheckTx code.
    pub code: u32,
    /// CheckTx log.
    pub log: String,
}

/// A committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedTx {
    /// Block height.
    pub height: u64,
    /// FinalizeBlock result code.
    pub code: u32,
    /// Result log.
    pub log: String,
}

/// The node's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Latest block height.
    pub latest_block_height: u64,
    /// Latest app hash (uppercase hex).
    pub latest_app_hash: String,
    /// Whether the node is still catching up.
    pub catching_up: bool,
    /// Chain id.
    pub network: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    result: Option<T>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawBroadcast {
    code: u32,
    #[serde(default)]
    log: String,
    hash: String,
}

#[derive(Deserialize)]
struct RawTx {
    height: String,
    tx_result: RawTxResult,
}

#[derive(Deserialize)]
struct RawTxResult {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    log: String,
}

#[derive(Deserialize)]
struct RawStatus {
    node_info: RawNodeInfo,
    sync_info: RawSyncInfo,
}

#[derive(Deserialize)]
struct RawNodeInfo {
    network: String,
}

#[derive(Deserialize)]
struct RawSyncInfo {
    latest_block_height: String,
    latest_app_hash: String,
    catching_up: bool,
}

fn parse_height(text: &str) -> Result<u64, RpcError> {
    text.parse()
        .map_err(|_| RpcError::Decode(format!("height {text:?}")))
}

impl CometRpc {
    /// A client of the RPC at `base` (e.g. `http://127.0.0.1:26657`).
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<T, RpcError> {
        let url = self.base.clone();
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|source| RpcError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let envelope: Envelope<T> = response
            .json()
            .await
            .map_err(|e| RpcError::Decode(e.to_string()))?;
        match (envelope.result, envelope.error) {
            (Some(result), None) => Ok(result),
            (_, Some(error)) => Err(RpcError::Rpc(error.to_string())),
            (None, None) => Err(RpcError::Decode("neither result nor error".into())),
        }
    }

    /// Broadcasts a transaction and returns CheckTx's answer.
    pub async fn broadcast_tx_sync(&self, tx: &[u8]) -> Result<BroadcastResult, RpcError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tx);
        let raw: RawBroadcast = self
            .call("broadcast_tx_sync", serde_json::json!({"tx": encoded}))
            .await?;
        Ok(BroadcastResult {
            hash: raw.hash,
            code: raw.code,
            log: raw.log,
        })
    }

    /// The committed transaction with this hash, if it is in a block yet.
    pub async fn committed_tx(&self, hash: &[u8; 32]) -> Result<Option<CommittedTx>, RpcError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(hash);
        let result: Result<RawTx, RpcError> = self
            .call("tx", serde_json::json!({"hash": encoded, "prove": false}))
            .await;
        match result {
            Ok(raw) => Ok(Some(CommittedTx {
                height: parse_height(&raw.height)?,
                code: raw.tx_result.code,
                log: raw.tx_result.log,
            })),
            Err(RpcError::Rpc(message)) if message.contains("not found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The node's status.
    pub async fn status(&self) -> Result<Status, RpcError> {
        let raw: RawStatus = self.call("status", serde_json::json!({})).await?;
        Ok(Status {
            latest_block_height: parse_height(&raw.sync_info.latest_block_height)?,
            latest_app_hash: raw.sync_info.latest_app_hash,
            catching_up: raw.sync_info.catching_up,
            network: raw.node_info.network,
        })
    }

    /// The app hash in the header of block `height` (uppercase hex).
    pub async fn header_app_hash(&self, height: u64) -> Result<String, RpcError> {
        #[derive(Deserialize)]
        struct RawHeaderResult {
            header: RawHeader,
        }
        #[derive(Deserialize)]
        struct RawHeader {
            app_hash: String,
        }
        let raw: RawHeaderResult = self
            .call("header", serde_json::json!({"height": height.to_string()}))
            .await?;
        Ok(raw.header.app_hash)
    }
}
