//! Getting a clearnode chain ready for load: one lane per venue of the
//! genesis (their keys are in the home), trader accounts funded by the
//! custodian and authorizing every venue, as the devnet's demo venue does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clearnode_proto::audit::v1 as audit;
use clearnode_proto::audit::v1::audit_service_client::AuditServiceClient;
use clearnode_proto::venue::v1 as venue;
use clearnode_proto::venue::v1::account_service_client::AccountServiceClient;
use clearnode_proto::venue::v1::custodian_service_client::CustodianServiceClient;
use clearnode_proto::venue::v1::venue_service_client::VenueServiceClient;
use clearnode_types::signer::Signer;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use super::lane::{report_entries, Book, Endpoint, Lane};
use super::{load_config, LoadgenArgs};
use crate::keys;

/// Collateral of each trader, in USDC: far more than its reports need.
const TRADER_DEPOSIT_USDC: &str = "1000000";
/// Accounts set up concurrently.
const SETUP_CONCURRENCY: usize = 32;
/// How long a starting node may take to serve its first committed block.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long deposits and authorizations may take to commit.
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);

/// The lanes of a clearnode load, the CometBFT RPC of each node, and the size of one report.
pub(super) async fn clearnode_lanes(args: &LoadgenArgs) -> Result<(Vec<Lane>, Vec<String>, usize)> {
    let Some(home) = args.homes.first() else {
        bail!("--target clearnode needs --home (repeat it for every node)");
    };
    let config = load_config(home)?;
    let genesis = crate::feed::read_app_state(&home.join(&config.cometbft_home))?;
    let venues: Vec<String> = genesis
        .venues
        .iter()
        .filter(|v| v.active)
        .map(|v| v.id.to_string())
        .collect();
    let lane_count = args.lanes.unwrap_or(venues.len()).min(venues.len());
    let venues = &venues[..lane_count];
    let (grpc_urls, rpcs) = node_urls(args)?;
    let tx_bytes = sample_report_bytes(args.entries_per_report)?;
    if lane_count == 0 {
        // Audit readers only: no accounts to set up.
        return Ok((Vec::new(), rpcs, tx_bytes));
    }
    let first = connect(&grpc_urls[0]).await?;
    let traders: Vec<SigningKey> = (0..args.accounts).map(trader_key).collect();
    let custodian = keys::load(home, "custodian")?;
    fund_and_authorize(&first, &config.chain_id, custodian, &traders, venues).await?;

    let book = Arc::new(Book {
        accounts: traders.iter().map(keys::address).collect(),
        markets: genesis
            .markets
            .iter()
            .map(|m| (m.id.to_string(), m.oracle_price.to_string()))
            .collect(),
        entries_per_report: args.entries_per_report,
    });
    let mut lanes = Vec::new();
    for (index, venue_id) in venues.iter().enumerate() {
        let channel = connect(&grpc_urls[index % grpc_urls.len()]).await?;
        lanes.push(Lane::new(
            index,
            Endpoint::Clearnode {
                venue_id: venue_id.clone(),
                signer: Signer::new(keys::load(home, venue_id)?, &config.chain_id),
                submit: VenueServiceClient::new(channel.clone()),
                audit: AuditServiceClient::new(channel),
                book: Arc::clone(&book),
                acknowledged: 0,
            },
        ));
    }
    Ok((lanes, rpcs, tx_bytes))
}

/// The gRPC URL and CometBFT RPC of every `--home` (`--rpc` overrides the latter).
fn node_urls(args: &LoadgenArgs) -> Result<(Vec<String>, Vec<String>)> {
    let mut grpc_urls = Vec::new();
    let mut rpcs = Vec::new();
    for home in &args.homes {
        let node = load_config(home)?;
        grpc_urls.push(node.grpc_url());
        rpcs.push(node.cometbft_rpc);
    }
    if !args.rpcs.is_empty() {
        rpcs = args.rpcs.clone();
    }
    Ok((grpc_urls, rpcs))
}

/// One connection per audit reader, spread over the nodes.
pub(super) async fn reader_channels(args: &LoadgenArgs, count: usize) -> Result<Vec<Channel>> {
    let (grpc_urls, _) = node_urls(args)?;
    let mut channels = Vec::with_capacity(count);
    for index in 0..count {
        channels.push(connect(&grpc_urls[index % grpc_urls.len()]).await?);
    }
    Ok(channels)
}

/// The size of a signed report of `entries` entries as the lanes build them.
pub(super) fn sample_report_bytes(entries: u32) -> Result<usize> {
    let book = Book {
        accounts: (0..entries)
            .map(|i| keys::address(&trader_key(i)))
            .collect(),
        markets: vec![("BTC-PERP".into(), "64000".into())],
        entries_per_report: entries,
    };
    let mut signer = Signer::new(trader_key(u32::MAX), "clearnode-devnet");
    signer.sequence = 1_000;
    let bytes = signer.sign(clearnode_proto::tx::v1::tx_body::Action::PositionReport(
        clearnode_proto::tx::v1::PositionReport {
            venue_id: "venue-a".into(),
            entries: report_entries(&book, 1, 1_000),
            acknowledged_height: 0,
        },
    ));
    Ok(bytes.len())
}

/// A deterministic trader key, so reruns against one chain reuse the accounts.
fn trader_key(index: u32) -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(format!("clearnode-loadgen-trader-{index}")).into();
    SigningKey::from_bytes(&seed)
}

/// Connects, waiting (up to two minutes) for a node that is starting to
/// serve committed state.
async fn connect(url: &str) -> Result<Channel> {
    let endpoint =
        Channel::from_shared(url.to_string()).with_context(|| format!("gRPC URL {url}"))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let problem = match endpoint.connect().await {
            Ok(channel) => {
                let ready = AuditServiceClient::new(channel.clone())
                    .get_system_risk(audit::GetSystemRiskRequest::default())
                    .await;
                match ready {
                    Ok(_) => return Ok(channel),
                    Err(status) => status.to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("{url} did not serve committed state within {READY_TIMEOUT:?}: {problem}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn next_sequence(channel: &Channel, key: &SigningKey) -> Result<u64> {
    let response = AuditServiceClient::new(channel.clone())
        .get_sequence(audit::GetSequenceRequest {
            public_key: key.verifying_key().to_bytes().to_vec(),
        })
        .await?;
    Ok(response.into_inner().next)
}

/// Which service takes a transaction.
#[derive(Clone, Copy)]
enum Service {
    Custodian,
    Account,
}

/// Submits until CheckTx accepts (a full mempool is waited out).
async fn submit_until_accepted(channel: &Channel, service: Service, tx: Vec<u8>) -> Result<()> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let request = venue::SubmitTxRequest {
            tx: tx.clone(),
            wait_for_commit: false,
        };
        let response = match service {
            Service::Custodian => {
                CustodianServiceClient::new(channel.clone())
                    .submit_deposit(request)
                    .await
            }
            Service::Account => {
                AccountServiceClient::new(channel.clone())
                    .submit_account_tx(request)
                    .await
            }
        };
        let problem = match response {
            Ok(response) if response.get_ref().code == 0 => return Ok(()),
            Ok(response) => {
                let response = response.into_inner();
                bail!(
                    "setup tx refused with code {}: {}",
                    response.code,
                    response.log
                )
            }
            Err(status) if status.code() == tonic::Code::AlreadyExists => return Ok(()),
            Err(status) if status.code() == tonic::Code::Unavailable => status.to_string(),
            Err(status) => bail!("setup tx refused: {status}"),
        };
        if Instant::now() > deadline {
            bail!("setup tx not accepted within {SETUP_TIMEOUT:?}: {problem}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deposits for traders that have never signed, authorizations of every
/// lane's venue for traders that have not given them all; waits until all
/// of it is committed.
async fn fund_and_authorize(
    channel: &Channel,
    chain_id: &str,
    custodian: SigningKey,
    traders: &[SigningKey],
    venues: &[String],
) -> Result<()> {
    let authorizations = u64::try_from(venues.len())?;
    let mut custodian = Signer::new(custodian, chain_id);
    custodian.sequence = next_sequence(channel, &custodian.key).await?;
    let mut to_authorize = Vec::new();
    for trader in traders {
        let sequence = next_sequence(channel, trader).await?;
        if sequence == 0 {
            let deposit = custodian.deposit(keys::address(trader), "USDC", TRADER_DEPOSIT_USDC);
            submit_until_accepted(channel, Service::Custodian, deposit).await?;
        }
        if sequence < authorizations {
            to_authorize.push((trader.clone(), sequence));
        }
    }
    if !to_authorize.is_empty() {
        eprintln!(
            "loadgen: authorizing {} venues for {} accounts",
            venues.len(),
            to_authorize.len()
        );
    }
    for chunk in to_authorize.chunks(SETUP_CONCURRENCY) {
        let mut tasks = tokio::task::JoinSet::new();
        for (trader, sequence) in chunk {
            let mut signer = Signer::new(trader.clone(), chain_id);
            signer.sequence = *sequence;
            let venues = venues.to_vec();
            let channel = channel.clone();
            tasks.spawn(async move {
                let first = usize::try_from(signer.sequence).unwrap_or(usize::MAX);
                for venue in venues.iter().skip(first) {
                    let tx = signer.authorize(venue, true);
                    submit_until_accepted(&channel, Service::Account, tx).await?;
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
    }
    wait_until_committed(channel, &custodian, traders, authorizations).await
}

async fn wait_until_committed(
    channel: &Channel,
    custodian: &Signer,
    traders: &[SigningKey],
    authorizations: u64,
) -> Result<()> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut waiting: Vec<&SigningKey> = traders.iter().collect();
    while next_sequence(channel, &custodian.key).await? < custodian.sequence {
        if Instant::now() > deadline {
            bail!("deposits not committed within {SETUP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for trader in waiting {
            if next_sequence(channel, trader).await? < authorizations {
                still.push(trader);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} accounts' authorizations not committed within {SETUP_TIMEOUT:?}",
                waiting.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
