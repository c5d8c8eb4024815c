//! `clearnode devnet`: one command for a single-validator chain and a demo
//! venue feeding it. The demo venue is an ordinary gRPC client: it funds
//! demo accounts through the custodian, has them authorize the three
//! venues, and then reports drifting positions from all three venues, so
//! cross-venue netting, health states and aggregates move block by block.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use clearnode_proto::audit::v1 as audit;
use clearnode_proto::tx::v1 as tx;
use clearnode_types::Address;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::client::NodeClient;
use crate::config::{NodeConfig, CONFIG_FILE};
use crate::init::{init_home, InitArgs, NodeSetup};
use crate::{keys, start};

/// Arguments of `devnet`.
#[derive(Args, Clone)]
pub struct DevnetArgs {
    /// Home of the devnet node (created on first run).
    #[arg(long, default_value = ".devnet")]
    pub home: PathBuf,
    /// Delete the home first and start from genesis.
    #[arg(long)]
    pub reset: bool,
    /// Demo trader accounts.
    #[arg(long, default_value_t = 24)]
    pub accounts: u32,
    /// Milliseconds between rounds of venue reports.
    #[arg(long, default_value_t = 1000)]
    pub report_interval_ms: u64,
    /// Stop after this many rounds of reports (default: run until Ctrl-C).
    #[arg(long)]
    pub rounds: Option<u64>,
    /// Run only the demo venue, against the node of `--home` that is already
    /// running (e.g. a localnet validator); create nothing.
    #[arg(long)]
    pub venue_only: bool,
    /// Ports, block time and the cometbft binary.
    #[command(flatten)]
    pub setup: NodeSetup,
}

/// Markets the demo trades, with a position scale (contracts per unit of leverage step).
const DEMO_MARKETS: [(&str, i64); 3] =
    [("BTC-PERP", 64_000), ("ETH-PERP", 3_200), ("SOL-PERP", 150)];
const DEMO_VENUES: [&str; 3] = ["venue-a", "venue-b", "venue-c"];
/// Collateral each demo account starts with, in USDC.
const DEMO_DEPOSIT_USDC: i64 = 50_000;

/// Runs the devnet until Ctrl-C (or `--rounds`).
pub fn run(args: DevnetArgs) -> Result<()> {
    if args.venue_only {
        return run_venue_only(&args);
    }
    if args.reset && args.home.exists() {
        std::fs::remove_dir_all(&args.home)
            .with_context(|| format!("removing {}", args.home.display()))?;
    }
    if !args.home.join(CONFIG_FILE).exists() {
        init_home(&InitArgs {
            home: args.home.clone(),
            chain_id: "clearnode-devnet".into(),
            moniker: "devnet-validator".into(),
            template: None,
            setup: args.setup.clone(),
        })?;
    }
    let config = NodeConfig::load(&args.home)?;
    print_where_to_look(&args, &config);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (done_tx, done_rx) = oneshot::channel::<Result<()>>();
        let venue_args = args.clone();
        let venue_config = config.clone();
        tokio::spawn(async move {
            let result = demo_venue(&venue_args, &venue_config).await;
            if let Err(e) = &result {
                tracing::error!("demo venue stopped: {e:#}");
            }
            let _ = done_tx.send(result);
        });
        let mut venue_result = Ok(());
        let stop = async {
            tokio::select! {
                _ = start::shutdown_signal() => {}
                result = done_rx => { venue_result = result.unwrap_or(Ok(())); }
            }
        };
        let node = start::run_node(&args.home, &config, true, stop).await;
        node.and(venue_result)
    })
}

/// The demo venue alone, until Ctrl-C, SIGTERM or `--rounds`.
fn run_venue_only(args: &DevnetArgs) -> Result<()> {
    let config = NodeConfig::load(&args.home)?;
    println!(
        "clearnode demo venue: reporting to {} (chain {})",
        config.grpc_url(),
        config.chain_id
    );
    tokio::runtime::Runtime::new()?.block_on(async {
        tokio::select! {
            _ = start::shutdown_signal() => Ok(()),
            result = demo_venue(args, &config) => result,
        }
    })
}

fn print_where_to_look(args: &DevnetArgs, config: &NodeConfig) {
    let home = args.home.display();
    println!(
        "\nclearnode devnet: chain {chain} in {home}\n\
         \x20 gRPC            {grpc}   (venue submit, audit queries, health, reflection)\n\
         \x20 CometBFT RPC    {rpc}\n\
         \x20 metrics         http://{metrics}/metrics\n\
         \x20 risk dashboard  {dashboard}   (live charts; every figure provable)\n\
         \x20 logs            {home}/logs/cometbft.log\n\
         try, in another terminal:\n\
         \x20 clearnode query system --home {home}\n\
         \x20 clearnode query market BTC-PERP --home {home} --prove\n\
         \x20 curl -s {rpc}/status\n",
        chain = config.chain_id,
        grpc = config.grpc_url(),
        rpc = config.cometbft_rpc,
        metrics = config.metrics_addr,
        dashboard = match config.dashboard_addr.as_str() {
            "" => "off (set dashboard_addr in clearnode.toml)".to_string(),
            addr => format!("http://{addr}/"),
        },
    );
}

/// A deterministic demo key.
fn demo_key(index: u32) -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(format!("clearnode-devnet-trader-{index}")).into();
    SigningKey::from_bytes(&seed)
}

/// A small deterministic generator for the demo's price and size drift.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-range, range].
    fn signed(&mut self, range: i64) -> i64 {
        let span = u64::try_from(range).unwrap_or(0) * 2 + 1;
        i64::try_from(self.next() % span).unwrap_or(0) - range
    }
}

struct Signer {
    key: SigningKey,
    sequence: u64,
}

impl Signer {
    /// Submits; returns the CheckTx code.
    async fn submit(&mut self, client: &NodeClient, action: tx::tx_body::Action) -> Result<u32> {
        let response = client
            .submit(&self.key, self.sequence, action, false)
            .await?;
        if response.code == 0 {
            self.sequence += 1;
        } else {
            tracing::debug!(code = response.code, log = response.log, "demo tx refused");
        }
        Ok(response.code)
    }
}

/// Codes with which the clearinghouse refuses new risk of one account.
const NEW_RISK_REFUSED: [u32; 2] = [
    clearnode_types::TxCode::ReduceOnly as u32,
    clearnode_types::TxCode::InsufficientInitialMargin as u32,
];

/// Reports a venue's batch; when the clearinghouse refuses new risk for
/// some account, reports account by account, as a venue unwinding only
/// that account's new trades would.
async fn report(
    client: &NodeClient,
    venue_id: &str,
    venue: &mut Signer,
    entries: Vec<tx::PositionEntry>,
    acknowledged_height: u64,
) -> Result<()> {
    // The demo venue regenerates its book every round, so it has nothing
    // to change for an instruction: it acknowledges what is committed.
    let batch = |entries: Vec<tx::PositionEntry>| {
        tx::tx_body::Action::PositionReport(tx::PositionReport {
            venue_id: venue_id.to_string(),
            entries,
            acknowledged_height,
        })
    };
    let code = venue.submit(client, batch(entries.clone())).await?;
    if !NEW_RISK_REFUSED.contains(&code) {
        return Ok(());
    }
    let mut by_account: std::collections::BTreeMap<Vec<u8>, Vec<tx::PositionEntry>> =
        std::collections::BTreeMap::new();
    for entry in entries {
        by_account
            .entry(entry.account.clone())
            .or_default()
            .push(entry);
    }
    let mut refused = 0;
    for (_, entries) in by_account {
        if venue.submit(client, batch(entries)).await? != 0 {
            refused += 1;
        }
    }
    tracing::info!(
        venue = venue_id,
        refused,
        "new risk refused for some accounts"
    );
    Ok(())
}

async fn connect_when_ready(config: &NodeConfig) -> Result<NodeClient> {
    for _ in 0..600 {
        if let Ok(client) = NodeClient::connect(&config.grpc_url(), &config.chain_id).await {
            let ready = client
                .audit()
                .get_system_risk(audit::GetSystemRiskRequest::default())
                .await
                .is_ok();
            if ready {
                return Ok(client);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the node did not commit a first block within two minutes")
}

async fn demo_venue(args: &DevnetArgs, config: &NodeConfig) -> Result<()> {
    let client = connect_when_ready(config).await?;
    let mut custodian = Signer {
        key: keys::load(&args.home, "custodian")?,
        sequence: 0,
    };
    custodian.sequence = client.next_sequence(&custodian.key).await?;
    let mut venues = Vec::new();
    for id in DEMO_VENUES {
        let key = keys::load(&args.home, id)?;
        let sequence = client.next_sequence(&key).await?;
        venues.push((id, Signer { key, sequence }));
    }
    let mut traders = Vec::new();
    for index in 0..args.accounts {
        let key = demo_key(index);
        let sequence = client.next_sequence(&key).await?;
        traders.push(Signer { key, sequence });
    }
    fund_and_authorize(&client, &mut custodian, &mut traders).await?;

    let addresses: Vec<Address> = traders.iter().map(|t| keys::address(&t.key)).collect();
    let mut random = XorShift(0x2545_f491_4f6c_dd1d);
    let mut round = 0u64;
    loop {
        round += 1;
        let committed = committed_height(&client).await?;
        for (venue_index, (venue_id, venue)) in venues.iter_mut().enumerate() {
            let entries = demo_entries(&addresses, venue_index, round, &mut random);
            report(&client, venue_id, venue, entries, committed).await?;
        }
        if round % 5 == 1 {
            print_status(&client).await;
        }
        if args.rounds.is_some_and(|rounds| round >= rounds) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            print_status(&client).await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(args.report_interval_ms)).await;
    }
}

async fn fund_and_authorize(
    client: &NodeClient,
    custodian: &mut Signer,
    traders: &mut [Signer],
) -> Result<()> {
    for trader in traders.iter_mut() {
        let address = keys::address(&trader.key);
        trader.sequence = client.next_sequence(&trader.key).await?;
        let funded = client
            .audit()
            .get_account_risk(audit::GetAccountRiskRequest {
                account: address.as_bytes().to_vec(),
                height: 0,
                prove: false,
            })
            .await
            .is_ok();
        if funded {
            continue;
        }
        let deposit = tx::tx_body::Action::DepositCollateral(tx::DepositCollateral {
            account: address.as_bytes().to_vec(),
            asset: "USDC".into(),
            amount: DEMO_DEPOSIT_USDC.to_string(),
            reference: format!("devnet-faucet-{address}"),
        });
        custodian.submit(client, deposit).await?;
        for venue in DEMO_VENUES {
            let authorize = tx::tx_body::Action::AuthorizeVenue(tx::AuthorizeVenue {
                venue_id: venue.into(),
                authorized: true,
            });
            trader.submit(client, authorize).await?;
        }
    }
    // Reports for accounts whose authorizations are not committed yet would be refused.
    let start_height = committed_height(client).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if committed_height(client).await? >= start_height + 2 {
            return Ok(());
        }
    }
}

/// The last committed height, as the audit API answers it.
async fn committed_height(client: &NodeClient) -> Result<u64> {
    let answer = client
        .audit()
        .get_system_risk(audit::GetSystemRiskRequest::default())
        .await?;
    Ok(answer.into_inner().context.map_or(0, |c| c.height))
}

/// Each trader holds positions on every venue; some hedge across venues.
fn demo_entries(
    addresses: &[Address],
    venue_index: usize,
    round: u64,
    random: &mut XorShift,
) -> Vec<tx::PositionEntry> {
    let mut entries = Vec::new();
    for (trader_index, address) in addresses.iter().enumerate() {
        // A third of the traders are hedgers: long on venue-a, short elsewhere.
        let hedger = trader_index % 3 == 0;
        for (market, price) in DEMO_MARKETS {
            // From 2x to about 13x of the deposit: the riskiest sit near the
            // initial requirement, so drift moves them between states and the
            // clearinghouse refuses some of their new risk.
            let leverage_tenths =
                20 + i64::try_from(trader_index % 9).unwrap_or(0) * 14 + random.signed(10);
            let notional = notional_per_leg(leverage_tenths);
            let direction: i64 = if hedger {
                if venue_index == 0 {
                    2
                } else {
                    -1
                }
            } else if trader_index % 2 == 0 {
                1
            } else {
                -1
            };
            // size = notional / price, in thousandths of a contract
            let size_milli = direction * notional * 1000 / price;
            let drift = random.signed(150) + i64::try_from(round % 40).unwrap_or(0) * 10 - 200;
            let entry_price_milli = price * 1000 + price * drift / 10;
            entries.push(tx::PositionEntry {
                account: address.as_bytes().to_vec(),
                market: market.into(),
                size: milli(size_milli),
                entry_price: milli(entry_price_milli.max(1)),
            });
        }
    }
    entries
}

/// USD notional per venue and market for a leverage in tenths (of the deposit, spread over 9 legs).
fn notional_per_leg(leverage_tenths: i64) -> i64 {
    DEMO_DEPOSIT_USDC * leverage_tenths / 10 / 9
}

fn milli(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let value = value.unsigned_abs();
    format!("{sign}{}.{:03}", value / 1000, value % 1000)
}

async fn print_status(client: &NodeClient) {
    match client
        .audit()
        .get_system_risk(audit::GetSystemRiskRequest::default())
        .await
    {
        Ok(response) => {
            let response = response.into_inner();
            let height = response.context.as_ref().map_or(0, |c| c.height);
            let app_hash = response
                .context
                .as_ref()
                .map(|c| hex::encode_upper(&c.app_hash))
                .unwrap_or_default();
            if let Some(system) = response.aggregate {
                let health = system.accounts.unwrap_or_default();
                println!(
                    "height {height:>6}  app_hash {}..  accounts {}  net notional {}  equity {}  leverage {}x  healthy/margin-call/liquidating/bankrupt {}/{}/{}/{}",
                    app_hash.get(..12).unwrap_or_default(),
                    system.accounts_total,
                    system.net_notional,
                    system.total_equity,
                    system.aggregate_leverage,
                    health.healthy,
                    health.margin_call,
                    health.liquidating,
                    health.bankrupt
                );
            }
        }
        Err(status) => tracing::warn!("status query failed: {status}"),
    }
}
