//! `clearnode audit verify`: proves a figure the node answers against the
//! header the validators signed, without trusting the node.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use clearnode_audit::{verify, Evidence};
use clearnode_proto::audit::v1 as audit;
use prost::Message;
use tendermint::block::signed_header::SignedHeader;
use tendermint::validator::Info;

use crate::client::Connection;
use crate::config::NodeConfig;

/// Audit commands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify a figure against the header the validators signed.
    Verify(VerifyArgs),
}

/// What to verify, and against what.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(subcommand)]
    what: Figure,
    #[command(flatten)]
    connection: Connection,
    /// CometBFT RPC to fetch headers from (any node; default: this home's).
    #[arg(long)]
    rpc: Option<String>,
    /// JSON with the validators you trust: a CometBFT genesis.json, or an
    /// array of validators (default: this home's genesis validators).
    #[arg(long)]
    trusted: Option<PathBuf>,
    /// Height (0 = latest).
    #[arg(long, default_value_t = 0)]
    height: u64,
}

#[derive(Subcommand, Clone)]
enum Figure {
    /// The system aggregate.
    System,
    /// A market's aggregate.
    Market {
        /// Market id.
        market: String,
    },
    /// An account's risk.
    Account {
        /// Hex address.
        address: String,
    },
    /// The insurance fund.
    Fund,
    /// A circuit breaker: a market's (with its oracle validity), or the
    /// system's without --market.
    Breaker {
        /// Market id (default: the system breaker).
        #[arg(long)]
        market: Option<String>,
    },
    /// Any state value by its key, e.g. an instruction
    /// (`instr/venue-a/00000000000000000042/000000`) or a liquidation order
    /// (`liq/<address>/BTC-PERP/venue-a`).
    Key {
        /// The state key (docs/state-layout.md).
        key: String,
    },
}

/// The answer to verify: key, encoded value, proof, height, app hash.
struct Answer {
    key: Vec<u8>,
    value: Vec<u8>,
    proof: Vec<u8>,
    height: u64,
    app_hash: Vec<u8>,
    shown: String,
}

async fn fetch_answer(args: &VerifyArgs) -> Result<Answer> {
    let client = args.connection.connect().await?;
    let mut audit = client.audit();
    let height = args.height;
    let (context, value, shown) = match &args.what {
        Figure::System => {
            let r = audit
                .get_system_risk(audit::GetSystemRiskRequest {
                    height,
                    prove: true,
                })
                .await?
                .into_inner();
            proven(r.context, r.aggregate.context("no aggregate")?)?
        }
        Figure::Market { market } => {
            let r = audit
                .get_market_risk(audit::GetMarketRiskRequest {
                    market: market.clone(),
                    height,
                    prove: true,
                })
                .await?
                .into_inner();
            proven(r.context, r.aggregate.context("no aggregate")?)?
        }
        Figure::Account { address } => {
            let account = hex::decode(address).context("the address is hex")?;
            let r = audit
                .get_account_risk(audit::GetAccountRiskRequest {
                    account,
                    height,
                    prove: true,
                })
                .await?
                .into_inner();
            proven(r.context, r.risk.context("no risk")?)?
        }
        Figure::Fund => {
            let r = audit
                .get_insurance_fund(audit::GetInsuranceFundRequest {
                    height,
                    prove: true,
                    ..Default::default()
                })
                .await?
                .into_inner();
            proven(r.context, r.fund.context("no fund")?)?
        }
        Figure::Breaker { market } => {
            let r = audit
                .get_breakers(audit::GetBreakersRequest {
                    height,
                    prove: true,
                })
                .await?
                .into_inner();
            match market {
                None => proven(r.context, r.system.context("no system breaker")?)?,
                Some(market) => {
                    let entry = r
                        .markets
                        .into_iter()
                        .find(|m| m.breaker.as_ref().is_some_and(|b| &b.market == market))
                        .with_context(|| format!("no breaker for market {market}"))?;
                    proven(entry.context, entry.breaker.context("no breaker")?)?
                }
            }
        }
        Figure::Key { key } => {
            let r = audit
                .get_state_value(audit::GetStateValueRequest {
                    key: key.clone().into_bytes(),
                    height,
                    prove: true,
                })
                .await?
                .into_inner();
            if !r.found {
                bail!("no value under {key:?} at that height");
            }
            let shown = show_state_value(key, &r.value)?;
            (r.context, r.value, shown)
        }
    };
    let context = context.context("the answer has no context")?;
    Ok(Answer {
        key: context.key,
        value,
        proof: context.proof,
        height: context.height,
        app_hash: context.app_hash,
        shown,
    })
}

/// A typed answer: its context, its encoding (what the proof commits to)
/// and its JSON.
fn proven<M: Message + serde::Serialize>(
    context: Option<audit::QueryContext>,
    value: M,
) -> Result<(Option<audit::QueryContext>, Vec<u8>, String)> {
    let shown = serde_json::to_string_pretty(&value)?;
    Ok((context, value.encode_to_vec(), shown))
}

/// A state value as JSON when its key names its type, else as hex.
fn show_state_value(key: &str, value: &[u8]) -> Result<String> {
    use clearnode_proto::state::v1 as state;
    Ok(if key.starts_with("instr/") {
        serde_json::to_string_pretty(&state::Instruction::decode(value)?)?
    } else if key.starts_with("liq/") {
        serde_json::to_string_pretty(&state::LiquidationOrder::decode(value)?)?
    } else if key == "breaker/system" {
        serde_json::to_string_pretty(&state::SystemBreaker::decode(value)?)?
    } else if key.starts_with("breaker/market/") {
        serde_json::to_string_pretty(&state::MarketBreaker::decode(value)?)?
    } else {
        format!("{key} = {}", hex::encode(value))
    })
}

async fn rpc_result(http: &reqwest::Client, url: String) -> Result<serde_json::Value> {
    let body: serde_json::Value = http.get(&url).send().await?.json().await?;
    if let Some(error) = body.get("error") {
        bail!("{url}: {error}");
    }
    Ok(body["result"].clone())
}

/// Reads trusted validators from a genesis.json or a plain array.
fn trusted_validators(path: &PathBuf) -> Result<Vec<Info>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let list = json.get("validators").cloned().unwrap_or(json);
    serde_json::from_value(list)
        .with_context(|| format!("{}: not a list of validators", path.display()))
}

/// Runs an audit command.
pub fn run(command: AuditCommand) -> Result<()> {
    let AuditCommand::Verify(args) = command;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let config = NodeConfig::load(&args.connection.home).ok();
        let rpc = match (&args.rpc, &config) {
            (Some(rpc), _) => rpc.clone(),
            (None, Some(config)) => config.cometbft_rpc.clone(),
            (None, None) => bail!("give --rpc, or --home of a node"),
        };
        let trusted_path = match (&args.trusted, &config) {
            (Some(path), _) => path.clone(),
            (None, Some(config)) => args
                .connection
                .home
                .join(&config.cometbft_home)
                .join("config/genesis.json"),
            (None, None) => bail!("give --trusted with the validators you trust"),
        };
        let answer = fetch_answer(&args).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let next = answer.height + 1;
        // The header that commits state H is block H+1's: wait for it.
        let mut commit = None;
        for _ in 0..100 {
            match rpc_result(&http, format!("{rpc}/commit?height={next}")).await {
                Ok(result) if result["canonical"] == serde_json::Value::Bool(true) => {
                    commit = Some(result);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let commit = commit.with_context(|| format!("block {next} is not committed yet"))?;
        let signed_header: SignedHeader =
            serde_json::from_value(commit["signed_header"].clone())
                .context("the commit is not for its header, or does not parse")?;
        let validators_json = rpc_result(
            &http,
            format!("{rpc}/validators?height={next}&per_page=100"),
        )
        .await?;
        let validators: Vec<Info> = serde_json::from_value(validators_json["validators"].clone())?;
        let evidence = Evidence {
            key: &answer.key,
            value: &answer.value,
            proof: &answer.proof,
            height: answer.height,
            app_hash: &answer.app_hash,
            signed_header: &signed_header,
            validators,
            trusted: trusted_validators(&trusted_path)?,
        };
        match verify(&evidence) {
            Ok(statement) => {
                println!("{}\n{statement}", answer.shown);
                Ok(())
            }
            Err(reason) => bail!("NOT PROVEN: {reason}"),
        }
    })
}
