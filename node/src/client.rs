//! `clearnode tx` and `clearnode query`: a gRPC client of a node.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use clearnode_proto::audit::v1 as audit;
use clearnode_proto::audit::v1::audit_service_client::AuditServiceClient;
use clearnode_proto::tx::v1 as tx;
use clearnode_proto::venue::v1 as venue;
use clearnode_proto::venue::v1::account_service_client::AccountServiceClient;
use clearnode_proto::venue::v1::custodian_service_client::CustodianServiceClient;
use clearnode_proto::venue::v1::venue_service_client::VenueServiceClient;
use clearnode_types::tx::sign_tx;
use clearnode_types::Address;
use ed25519_dalek::SigningKey;
use tonic::transport::Channel;

use crate::config::NodeConfig;
use crate::keys;

/// Where the node is.
#[derive(Args, Clone)]
pub struct Connection {
    /// Node home (for the gRPC address, chain id and keys).
    #[arg(long, default_value_os_t = crate::default_home())]
    pub home: PathBuf,
    /// gRPC URL (default: from the home's clearnode.toml).
    #[arg(long)]
    pub grpc: Option<String>,
    /// Chain id (default: from the home's clearnode.toml).
    #[arg(long)]
    pub chain_id: Option<String>,
}

impl Connection {
    pub(crate) async fn connect(&self) -> Result<NodeClient> {
        let (url, chain_id) = match (&self.grpc, &self.chain_id) {
            (Some(url), Some(chain_id)) => (url.clone(), chain_id.clone()),
            _ => {
                let config = NodeConfig::load(&self.home)?;
                (
                    self.grpc.clone().unwrap_or_else(|| config.grpc_url()),
                    self.chain_id.clone().unwrap_or(config.chain_id),
                )
            }
        };
        NodeClient::connect(&url, &chain_id).await
    }
}

/// Transaction commands.
#[derive(Subcommand)]
pub enum TxCommand {
    /// Credit collateral to an account (signed by the custodian).
    Deposit {
        #[command(flatten)]
        connection: Connection,
        /// Signing key name.
        #[arg(long, default_value = "custodian")]
        key: String,
        /// Account address (hex).
        #[arg(long)]
        account: String,
        /// Asset id.
        #[arg(long)]
        asset: String,
        /// Decimal amount.
        #[arg(long)]
        amount: String,
        /// The custodian's reference for the transfer.
        #[arg(long, default_value = "")]
        reference: String,
        /// Wait for the block.
        #[arg(long)]
        wait: bool,
    },
    /// Withdraw collateral (signed by the account).
    Withdraw {
        #[command(flatten)]
        connection: Connection,
        /// Signing key name.
        #[arg(long)]
        key: String,
        /// Asset id.
        #[arg(long)]
        asset: String,
        /// Decimal amount.
        #[arg(long)]
        amount: String,
        /// Wait for the block.
        #[arg(long)]
        wait: bool,
    },
    /// Move collateral into (or, with --out, back out of) the account's
    /// isolated sub-account for one market.
    MoveIsolated {
        #[command(flatten)]
        connection: Connection,
        /// Signing key name (the owner).
        #[arg(long)]
        key: String,
        /// The sub-account's market.
        #[arg(long)]
        market: String,
        /// Asset id.
        #[arg(long)]
        asset: String,
        /// Decimal amount.
        #[arg(long)]
        amount: String,
        /// From the sub-account back to the owner.
        #[arg(long)]
        out: bool,
        /// Wait for the block.
        #[arg(long)]
        wait: bool,
    },
    /// Trip a circuit breaker whose condition holds in state (anyone may).
    TripBreaker {
        #[command(flatten)]
        connection: Connection,
        /// Signing key name.
        #[arg(long)]
        key: String,
        /// Market id (default: the system breaker).
        #[arg(long, default_value = "")]
        market: String,
        /// Wait for the block.
        #[arg(long)]
        wait: bool,
    },
    /// Let a venue report for the account, or stop it.
    Authorize {
        #[command(flatten)]
        connection: Connection,
        /// Signing key name.
        #[arg(long)]
        key: String,
        /// Venue id.
        #[arg(long)]
        venue: String,
        /// Revoke instead of grant.
        #[arg(long)]
        revoke: bool,
        /// Wait for the block.
        #[arg(long)]
        wait: bool,
    },
    /// Report positions (signed by the venue).
    Report {
        #[command(flatten)]
        connection: Connection,
        /// Signing key name (default: the venue id).
        #[arg(long)]
        key: Option<String>,
        /// Venue id.
        #[arg(long)]
        venue: String,
        /// ACCOUNT:MARKET:SIZE:ENTRY_PRICE, repeatable (none: only acknowledge).
        #[arg(long = "entry", required_unless_present = "acknowledge")]
        entries: Vec<String>,
        /// Acknowledge the venue's instructions up to this committed height.
        #[arg(long, default_value_t = 0)]
        acknowledge: u64,
        /// Wait for the block.
        #[arg(long)]
        wait: bool,
    },
}

/// Query commands.
#[derive(Subcommand)]
pub enum QueryCommand {
    /// An account's cross-venue risk, collateral and positions.
    Account {
        #[command(flatten)]
        connection: Connection,
        /// Account address (hex), or a key name with --key.
        address: String,
        /// Treat ADDRESS as a key name in the home.
        #[arg(long)]
        key: bool,
        /// Height (0 = latest).
        #[arg(long, default_value_t = 0)]
        height: u64,
        /// Include a Merkle proof.
        #[arg(long)]
        prove: bool,
    },
    /// A market's aggregates.
    Market {
        #[command(flatten)]
        connection: Connection,
        /// Market id.
        market: String,
        /// Height (0 = latest).
        #[arg(long, default_value_t = 0)]
        height: u64,
        /// Include a Merkle proof.
        #[arg(long)]
        prove: bool,
    },
    /// Circuit breakers and oracle validity: the system's and every market's.
    Breakers {
        #[command(flatten)]
        connection: Connection,
        /// Height (0 = latest).
        #[arg(long, default_value_t = 0)]
        height: u64,
        /// Include Merkle proofs.
        #[arg(long)]
        prove: bool,
    },
    /// The insurance fund and the venues' settlement balances.
    Fund {
        #[command(flatten)]
        connection: Connection,
        /// An isolated market's own fund (default: the shared fund).
        #[arg(long, default_value = "")]
        market: String,
        /// Height (0 = latest).
        #[arg(long, default_value_t = 0)]
        height: u64,
        /// Include a Merkle proof.
        #[arg(long)]
        prove: bool,
    },
    /// Governance proposals, as stored (docs/governance.md).
    Proposals {
        #[command(flatten)]
        connection: Connection,
        /// Only this proposal.
        #[arg(long)]
        id: Option<u64>,
        /// Height (0 = latest).
        #[arg(long, default_value_t = 0)]
        height: u64,
    },
    /// Positions offered to liquidators now.
    Liquidations {
        #[command(flatten)]
        connection: Connection,
        /// Only this account's (hex address).
        #[arg(long)]
        account: Option<String>,
    },
    /// History of the instructions issued to venues (health changes,
    /// liquidation orders, cancellations, takeovers), one page at a time.
    History {
        #[command(flatten)]
        connection: Connection,
        /// Only this venue's (default: every venue's).
        #[arg(long, default_value = "")]
        venue: String,
        /// Only these kinds, comma-separated (e.g. liquidation_order,take_over).
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<String>,
        /// First height (default: the first block).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Last height (default: the latest committed).
        #[arg(long, default_value_t = 0)]
        to: u64,
        /// Instructions per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The `next_page_token` of the previous page.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// System-wide aggregates.
    System {
        #[command(flatten)]
        connection: Connection,
        /// Height (0 = latest).
        #[arg(long, default_value_t = 0)]
        height: u64,
        /// Include a Merkle proof.
        #[arg(long)]
        prove: bool,
    },
}

/// A connected client.
pub struct NodeClient {
    channel: Channel,
    chain_id: String,
}

impl NodeClient {
    /// Connects to a node's gRPC endpoint.
    pub async fn connect(url: &str, chain_id: &str) -> Result<Self> {
        let channel = Channel::from_shared(url.to_string())
            .with_context(|| format!("gRPC URL {url}"))?
            .connect()
            .await
            .with_context(|| format!("connecting to {url}: is the node running?"))?;
        Ok(Self {
            channel,
            chain_id: chain_id.to_string(),
        })
    }

    /// The audit client.
    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    /// The signer's next committed sequence.
    pub async fn next_sequence(&self, key: &SigningKey) -> Result<u64> {
        let response = self
            .audit()
            .get_sequence(audit::GetSequenceRequest {
                public_key: key.verifying_key().to_bytes().to_vec(),
            })
            .await?;
        Ok(response.into_inner().next)
    }

    /// Signs and submits an action through the service that takes it.
    pub async fn submit(
        &self,
        key: &SigningKey,
        sequence: u64,
        action: tx::tx_body::Action,
        wait_for_commit: bool,
    ) -> Result<venue::SubmitTxResponse> {
        let body = tx::TxBody {
            chain_id: self.chain_id.clone(),
            sequence,
            action: Some(action.clone()),
        };
        let request = venue::SubmitTxRequest {
            tx: sign_tx(key, &body),
            wait_for_commit,
        };
        let channel = self.channel.clone();
        let response = match action {
            tx::tx_body::Action::PositionReport(_) => {
                VenueServiceClient::new(channel)
                    .submit_report(request)
                    .await
            }
            tx::tx_body::Action::DepositCollateral(_) => {
                CustodianServiceClient::new(channel)
                    .submit_deposit(request)
                    .await
            }
            _ => {
                AccountServiceClient::new(channel)
                    .submit_account_tx(request)
                    .await
            }
        };
        Ok(response?.into_inner())
    }
}

fn parse_address(text: &str) -> Result<Address> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("account address")
}

fn parse_entry(text: &str) -> Result<tx::PositionEntry> {
    let parts: Vec<&str> = text.split(':').collect();
    let [account, market, size, price] = parts.as_slice() else {
        bail!("entry {text:?} is not ACCOUNT:MARKET:SIZE:ENTRY_PRICE");
    };
    Ok(tx::PositionEntry {
        account: parse_address(account)?.as_bytes().to_vec(),
        market: (*market).to_string(),
        size: (*size).to_string(),
        entry_price: (*price).to_string(),
    })
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a tx command.
pub fn run_tx(command: TxCommand) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (connection, key_name, action, wait) = match command {
            TxCommand::Deposit {
                connection,
                key,
                account,
                asset,
                amount,
                reference,
                wait,
            } => {
                let action = tx::tx_body::Action::DepositCollateral(tx::DepositCollateral {
                    account: parse_address(&account)?.as_bytes().to_vec(),
                    asset,
                    amount,
                    reference,
                });
                (connection, key, action, wait)
            }
            TxCommand::Withdraw {
                connection,
                key,
                asset,
                amount,
                wait,
            } => {
                let action = tx::tx_body::Action::WithdrawCollateral(tx::WithdrawCollateral {
                    asset,
                    amount,
                });
                (connection, key, action, wait)
            }
            TxCommand::TripBreaker {
                connection,
                key,
                market,
                wait,
            } => {
                let action = tx::tx_body::Action::TripBreaker(tx::TripBreaker { market });
                (connection, key, action, wait)
            }
            TxCommand::MoveIsolated {
                connection,
                key,
                market,
                asset,
                amount,
                out,
                wait,
            } => {
                let action = tx::tx_body::Action::MoveIsolatedMargin(tx::MoveIsolatedMargin {
                    market,
                    asset,
                    amount,
                    into_isolated: !out,
                });
                (connection, key, action, wait)
            }
            TxCommand::Authorize {
                connection,
                key,
                venue,
                revoke,
                wait,
            } => {
                let action = tx::tx_body::Action::AuthorizeVenue(tx::AuthorizeVenue {
                    venue_id: venue,
                    authorized: !revoke,
                });
                (connection, key, action, wait)
            }
            TxCommand::Report {
                connection,
                key,
                venue,
                entries,
                acknowledge,
                wait,
            } => {
                let entries = entries
                    .iter()
                    .map(|e| parse_entry(e))
                    .collect::<Result<Vec<_>>>()?;
                let key = key.unwrap_or_else(|| venue.clone());
                let action = tx::tx_body::Action::PositionReport(tx::PositionReport {
                    venue_id: venue,
                    entries,
                    acknowledged_height: acknowledge,
                });
                (connection, key, action, wait)
            }
        };
        let key = keys::load(&connection.home, &key_name)?;
        let client = connection.connect().await?;
        let sequence = client.next_sequence(&key).await?;
        let response = client.submit(&key, sequence, action, wait).await?;
        print_json(&response)?;
        if response.code != 0 {
            bail!("rejected with code {}: {}", response.code, response.log);
        }
        Ok(())
    })
}

/// Runs a query command.
pub fn run_query(command: QueryCommand) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match command {
            QueryCommand::Account {
                connection,
                address,
                key,
                height,
                prove,
            } => {
                let account = if key {
                    keys::address(&keys::load(&connection.home, &address)?)
                } else {
                    parse_address(&address)?
                };
                let client = connection.connect().await?;
                let response = client
                    .audit()
                    .get_account_risk(audit::GetAccountRiskRequest {
                        account: account.as_bytes().to_vec(),
                        height,
                        prove,
                    })
                    .await?;
                print_json(&response.into_inner())
            }
            QueryCommand::Market {
                connection,
                market,
                height,
                prove,
            } => {
                let client = connection.connect().await?;
                let response = client
                    .audit()
                    .get_market_risk(audit::GetMarketRiskRequest {
                        market,
                        height,
                        prove,
                    })
                    .await?;
                print_json(&response.into_inner())
            }
            QueryCommand::Breakers {
                connection,
                height,
                prove,
            } => {
                let client = connection.connect().await?;
                let request = audit::GetBreakersRequest { height, prove };
                let response = client.audit().get_breakers(request).await?;
                print_json(&response.into_inner())
            }
            QueryCommand::Fund {
                connection,
                market,
                height,
                prove,
            } => {
                let client = connection.connect().await?;
                let request = audit::GetInsuranceFundRequest {
                    height,
                    prove,
                    market,
                };
                let response = client.audit().get_insurance_fund(request).await?;
                print_json(&response.into_inner())
            }
            QueryCommand::Proposals {
                connection,
                id,
                height,
            } => {
                let client = connection.connect().await?;
                print_json(&crate::gov::list_proposals(&client, id, height).await?)
            }
            QueryCommand::Liquidations {
                connection,
                account,
            } => {
                let account = match account {
                    Some(text) => parse_address(&text)?.as_bytes().to_vec(),
                    None => Vec::new(),
                };
                let client = connection.connect().await?;
                let response = client
                    .audit()
                    .list_liquidation_orders(audit::ListLiquidationOrdersRequest {
                        account,
                        limit: 0,
                    })
                    .await?;
                print_json(&response.into_inner())
            }
            QueryCommand::History {
                connection,
                venue,
                kinds,
                from,
                to,
                limit,
                page_token,
            } => {
                let client = connection.connect().await?;
                let request = audit::ListInstructionsRequest {
                    venue_id: venue,
                    from_height: from,
                    to_height: to,
                    kinds,
                    limit,
                    page_token,
                };
                let response = client.audit().list_instructions(request).await?;
                print_json(&response.into_inner())
            }
            QueryCommand::System {
                connection,
                height,
                prove,
            } => {
                let client = connection.connect().await?;
                let response = client
                    .audit()
                    .get_system_risk(audit::GetSystemRiskRequest { height, prove })
                    .await?;
                print_json(&response.into_inner())
            }
        }
    })
}
