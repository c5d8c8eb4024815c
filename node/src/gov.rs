//! `clearnode gov`: validators propose and vote on risk parameter changes
//! (docs/governance.md), signing with their CometBFT consensus key; anyone
//! lists proposals (`clearnode query proposals`). Proposals are read from the state
//! (`proposal_state`, `proposal/<id>`) through AuditService.GetStateValue;
//! `clearnode audit verify key proposal/<id>` proves one.

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::Subcommand;
use clearnode_proto::audit::v1 as audit;
use clearnode_proto::state::v1 as state;
use clearnode_proto::tx::v1 as tx;
use ed25519_dalek::SigningKey;
use prost::Message;

use crate::client::{Connection, NodeClient};
use crate::config::NodeConfig;

/// Governance commands.
#[derive(Subcommand)]
pub enum GovCommand {
    /// Propose parameter changes, signed by the home's validator key.
    Propose {
        #[command(flatten)]
        connection: Connection,
        /// A change, repeatable: initial_margin:MARKET:PPM,
        /// maintenance_fraction:MARKET:PPM, oi_lower_cap:MARKET:USD,
        /// oi_upper_cap:MARKET:USD, haircut:ASSET:PPM,
        /// list_asset:ASSET:PRICE:HAIRCUT_PPM, position_size_max:SIZE,
        /// pause:MARKET, resume:MARKET, price_band:MARKET:PPM,
        /// oi_cap:MARKET:USD, venue_oi_cap:MARKET:USD.
        #[arg(long = "change", required = true)]
        changes: Vec<String>,
        /// Why (at most 256 bytes).
        #[arg(long, default_value = "")]
        description: String,
        /// Wait for the block and report its result.
        #[arg(long)]
        wait: bool,
    },
    /// Vote on an open proposal, signed by the home's validator key.
    Vote {
        #[command(flatten)]
        connection: Connection,
        /// Proposal id.
        proposal: u64,
        /// Vote no (default: yes).
        #[arg(long)]
        no: bool,
        /// Wait for the block and report its result.
        #[arg(long)]
        wait: bool,
    },
}

/// The validator's consensus key from `<home>/<cometbft>/config/priv_validator_key.json`.
pub fn validator_key(home: &Path) -> Result<SigningKey> {
    let config = NodeConfig::load(home)?;
    let path = home
        .join(&config.cometbft_home)
        .join("config/priv_validator_key.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(encoded) = file["priv_key"]["value"].as_str() else {
        bail!("{} has no priv_key.value", path.display());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .with_context(|| format!("priv_key.value of {}", path.display()))?;
    // CometBFT stores the 32-byte seed followed by the public key.
    let Some(seed) = bytes.get(..32).and_then(|s| <[u8; 32]>::try_from(s).ok()) else {
        bail!("{}: priv_key.value is not an ed25519 key", path.display());
    };
    Ok(SigningKey::from_bytes(&seed))
}

/// Parses `KIND:TARGET:VALUE` into a change (the node checks the values).
pub fn parse_change(text: &str) -> Result<tx::ParamChange> {
    use tx::param_change::Change as C;
    let parts: Vec<&str> = text.split(':').collect();
    let ppm = |value: &str| -> Result<u64> {
        value
            .parse()
            .with_context(|| format!("{value:?} in {text:?} is not a ppm integer"))
    };
    let ratio = |market: &str, value: &str| -> Result<tx::MarketRatioChange> {
        Ok(tx::MarketRatioChange {
            market: market.into(),
            value_ppm: ppm(value)?,
        })
    };
    let amount = |market: &str, value: &str| tx::MarketAmountChange {
        market: market.into(),
        value: value.into(),
    };
    let change = match parts.as_slice() {
        ["initial_margin", market, value] => C::MarketInitialMargin(ratio(market, value)?),
        ["maintenance_fraction", market, value] => {
            C::MarketMaintenanceFraction(ratio(market, value)?)
        }
        ["oi_lower_cap", market, value] => C::MarketOpenInterestLowerCap(amount(market, value)),
        ["oi_upper_cap", market, value] => C::MarketOpenInterestUpperCap(amount(market, value)),
        ["price_band", market, value] => C::MarketPriceBand(ratio(market, value)?),
        ["oi_cap", market, value] => C::MarketOpenInterestHardCap(amount(market, value)),
        ["venue_oi_cap", market, value] => C::VenueOpenInterestCap(amount(market, value)),
        ["haircut", asset, value] => C::AssetHaircut(tx::AssetHaircutChange {
            asset: (*asset).into(),
            haircut_ppm: ppm(value)?,
        }),
        ["list_asset", asset, price, haircut] => C::ListCollateralAsset(tx::ListCollateralAsset {
            asset: (*asset).into(),
            oracle_price: (*price).into(),
            haircut_ppm: ppm(haircut)?,
        }),
        ["position_size_max", size] => C::PositionSizeMax((*size).into()),
        ["pause", market] => C::PauseMarket((*market).into()),
        ["resume", market] => C::ResumeMarket((*market).into()),
        _ => bail!("change {text:?} is not one of the forms in `clearnode gov propose --help`"),
    };
    Ok(tx::ParamChange {
        change: Some(change),
    })
}

/// The stored value of a key at a height (`None`: no value).
async fn state_value(client: &NodeClient, key: &str, height: u64) -> Result<Option<Vec<u8>>> {
    let response = client
        .audit()
        .get_state_value(audit::GetStateValueRequest {
            key: key.as_bytes().to_vec(),
            height,
            prove: false,
        })
        .await?
        .into_inner();
    Ok(response.found.then_some(response.value))
}

/// Every stored proposal at a height, by id.
pub async fn list_proposals(
    client: &NodeClient,
    id: Option<u64>,
    height: u64,
) -> Result<Vec<state::Proposal>> {
    let ids = match id {
        Some(id) => id..id + 1,
        None => {
            let next = match state_value(client, "proposal_state", height).await? {
                Some(bytes) => state::GovernanceState::decode(bytes.as_slice())?.next_proposal_id,
                None => 1,
            };
            1..next.max(1)
        }
    };
    let mut proposals = Vec::new();
    for id in ids {
        if let Some(bytes) = state_value(client, &format!("proposal/{id}"), height).await? {
            proposals.push(state::Proposal::decode(bytes.as_slice())?);
        }
    }
    Ok(proposals)
}

/// Runs a governance command.
pub fn run(command: GovCommand) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (connection, action, wait) = match command {
            GovCommand::Propose {
                connection,
                changes,
                description,
                wait,
            } => {
                let changes = changes
                    .iter()
                    .map(|c| parse_change(c))
                    .collect::<Result<Vec<_>>>()?;
                let action = tx::tx_body::Action::SubmitProposal(tx::SubmitProposal {
                    changes,
                    description,
                });
                (connection, action, wait)
            }
            GovCommand::Vote {
                connection,
                proposal,
                no,
                wait,
            } => {
                let action = tx::tx_body::Action::VoteProposal(tx::VoteProposal {
                    proposal_id: proposal,
                    approve: !no,
                });
                (connection, action, wait)
            }
        };
        let key = validator_key(&connection.home)?;
        let client = connection.connect().await?;
        let sequence = client.next_sequence(&key).await?;
        let response = client.submit(&key, sequence, action, wait).await?;
        println!("{}", serde_json::to_string_pretty(&response)?);
        if response.code != 0 {
            bail!("rejected with code {}: {}", response.code, response.log);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // reason: test fixtures

    use super::*;

    #[test]
    fn every_change_form_parses_and_a_wrong_one_says_so() {
        let forms = [
            "initial_margin:BTC-PERP:100000",
            "maintenance_fraction:BTC-PERP:700000",
            "oi_lower_cap:BTC-PERP:1000000",
            "oi_upper_cap:BTC-PERP:0",
            "price_band:BTC-PERP:100000",
            "oi_cap:BTC-PERP:1000000",
            "venue_oi_cap:BTC-PERP:500000",
            "haircut:ETH:200000",
            "list_asset:WBTC:64000:150000",
            "position_size_max:500",
            "pause:BTC-PERP",
            "resume:BTC-PERP",
        ];
        for form in forms {
            let change = parse_change(form).unwrap();
            clearnode_types::tx::ParamChange::from_pb(change).unwrap();
        }
        assert!(parse_change("initial_margin:BTC-PERP:ten").is_err());
        assert!(parse_change("leverage:BTC-PERP:20").is_err());
    }
}
