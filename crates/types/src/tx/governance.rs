//! Governance transactions: stateless checks of proposals and votes, and the
//! encoding of a checked change back to its wire form (stored proposals,
//! clients). Whether a change raises or lowers safety needs the state: the
//! engine decides.

use clearnode_num::{Money, Quantity, Ratio};
use clearnode_proto::tx::v1 as pb;

use super::{bounded_price, bounded_quantity, decimal, id_field, reject};
use crate::code::{TxCode, TxRejection};
use crate::genesis::PPM_ONE;
use crate::ids::{AssetId, MarketId};
use crate::limits::QUANTITY_UNITS_MAX;

/// Most changes in one proposal.
pub const PROPOSAL_CHANGES_MAX: usize = 16;
/// Longest proposal description, bytes.
pub const PROPOSAL_DESCRIPTION_BYTES_MAX: usize = 256;

/// A checked proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitProposal {
    /// 1 to [`PROPOSAL_CHANGES_MAX`] changes, applied in order.
    pub changes: Vec<ParamChange>,
    /// Why.
    pub description: String,
}

/// A checked vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteProposal {
    /// The proposal.
    pub proposal_id: u64,
    /// Yes (true) or no.
    pub approve: bool,
}

/// One checked parameter change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamChange {
    /// A market's base initial margin fraction, in (0, 1]: higher is safer.
    InitialMargin {
        /// The market.
        market: MarketId,
        /// The new fraction.
        value: Ratio,
    },
    /// A market's maintenance fraction of initial, in (0, 1]: higher is safer.
    MaintenanceFraction {
        /// The market.
        market: MarketId,
        /// The new fraction.
        value: Ratio,
    },
    /// Open interest (USD) where margin scaling starts: lower is safer.
    OpenInterestLowerCap {
        /// The market.
        market: MarketId,
        /// The new cap.
        value: Money,
    },
    /// Open interest (USD) where the fraction reaches 100%: lower is safer,
    /// zero (scaling off) is the least safe.
    OpenInterestUpperCap {
        /// The market.
        market: MarketId,
        /// The new cap.
        value: Money,
    },
    /// A collateral asset's haircut, in [0, 1): higher is safer.
    AssetHaircut {
        /// The asset.
        asset: AssetId,
        /// The new haircut.
        haircut: Ratio,
    },
    /// A new collateral asset: always lowers safety.
    ListCollateralAsset {
        /// The asset.
        asset: AssetId,
        /// Its USD price until the oracle prices it.
        oracle_price: clearnode_num::Price,
        /// Its haircut.
        haircut: Ratio,
    },
    /// The largest position of one account on one venue: lower is safer.
    PositionSizeMax(Quantity),
    /// Stop a market taking position reports: raises safety.
    PauseMarket(MarketId),
    /// Lift a governance pause: lowers safety.
    ResumeMarket(MarketId),
    /// A market's price band, in [0, 1): narrower is safer, zero (no band)
    /// disables the breaker and is the least safe.
    PriceBand {
        /// The market.
        market: MarketId,
        /// The new band.
        value: Ratio,
    },
    /// A market's hard open-interest cap (USD): lower is safer, zero (no
    /// cap) the least safe.
    OpenInterestHardCap {
        /// The market.
        market: MarketId,
        /// The new cap.
        value: Money,
    },
    /// One venue's open-interest cap in a market (USD): as the market's.
    VenueOpenInterestCap {
        /// The market.
        market: MarketId,
        /// The new cap.
        value: Money,
    },
}

fn ratio_field(
    name: &str,
    ppm: u64,
    allow_zero: bool,
    allow_one: bool,
) -> Result<Ratio, TxRejection> {
    let in_range = (allow_zero || ppm > 0)
        && (if allow_one {
            ppm <= PPM_ONE
        } else {
            ppm < PPM_ONE
        });
    if !in_range {
        return Err(reject(
            TxCode::InvalidAmount,
            format!("{name} {ppm} ppm is out of range"),
        ));
    }
    Ok(Ratio::from_raw(i128::from(ppm)))
}

fn money_field(name: &str, text: &str) -> Result<Money, TxRejection> {
    let value: Money = decimal(name, text)?;
    let max = Money::from_units(QUANTITY_UNITS_MAX);
    if value.is_negative() || value > max {
        return Err(reject(
            TxCode::InvalidAmount,
            format!("{name} {text} must be in [0, {QUANTITY_UNITS_MAX}]"),
        ));
    }
    Ok(value)
}

fn check_change(change: pb::ParamChange) -> Result<ParamChange, TxRejection> {
    use pb::param_change::Change as C;
    let change = change
        .change
        .ok_or_else(|| reject(TxCode::InvalidField, "a parameter change with no change"))?;
    Ok(match change {
        C::MarketInitialMargin(m) => ParamChange::InitialMargin {
            market: id_field("market", &m.market)?,
            value: ratio_field("initial margin", m.value_ppm, false, true)?,
        },
        C::MarketMaintenanceFraction(m) => ParamChange::MaintenanceFraction {
            market: id_field("market", &m.market)?,
            value: ratio_field("maintenance fraction", m.value_ppm, false, true)?,
        },
        C::MarketOpenInterestLowerCap(m) => ParamChange::OpenInterestLowerCap {
            market: id_field("market", &m.market)?,
            value: money_field("open interest lower cap", &m.value)?,
        },
        C::MarketOpenInterestUpperCap(m) => ParamChange::OpenInterestUpperCap {
            market: id_field("market", &m.market)?,
            value: money_field("open interest upper cap", &m.value)?,
        },
        C::AssetHaircut(a) => ParamChange::AssetHaircut {
            asset: id_field("asset", &a.asset)?,
            haircut: ratio_field("haircut", a.haircut_ppm, true, false)?,
        },
        C::ListCollateralAsset(a) => ParamChange::ListCollateralAsset {
            asset: id_field("asset", &a.asset)?,
            oracle_price: bounded_price("oracle_price", &a.oracle_price)?,
            haircut: ratio_field("haircut", a.haircut_ppm, true, false)?,
        },
        C::PositionSizeMax(size) => {
            let size = bounded_quantity("position_size_max", &size)?;
            if !size.is_positive() {
                return Err(reject(
                    TxCode::InvalidAmount,
                    "position_size_max must be positive",
                ));
            }
            ParamChange::PositionSizeMax(size)
        }
        C::MarketPriceBand(m) => ParamChange::PriceBand {
            market: id_field("market", &m.market)?,
            value: ratio_field("price band", m.value_ppm, true, false)?,
        },
        C::MarketOpenInterestHardCap(m) => ParamChange::OpenInterestHardCap {
            market: id_field("market", &m.market)?,
            value: money_field("open interest cap", &m.value)?,
        },
        C::VenueOpenInterestCap(m) => ParamChange::VenueOpenInterestCap {
            market: id_field("market", &m.market)?,
            value: money_field("venue open interest cap", &m.value)?,
        },
        C::PauseMarket(market) => ParamChange::PauseMarket(id_field("pause_market", &market)?),
        C::ResumeMarket(market) => ParamChange::ResumeMarket(id_field("resume_market", &market)?),
    })
}

/// Checks a proposal statelessly.
pub(super) fn check_proposal(proposal: pb::SubmitProposal) -> Result<SubmitProposal, TxRejection> {
    let count = proposal.changes.len();
    if count == 0 || count > PROPOSAL_CHANGES_MAX {
        return Err(reject(
            TxCode::TooManyEntries,
            format!("a proposal has 1 to {PROPOSAL_CHANGES_MAX} changes, got {count}"),
        ));
    }
    if proposal.description.len() > PROPOSAL_DESCRIPTION_BYTES_MAX {
        return Err(reject(
            TxCode::InvalidField,
            format!("description longer than {PROPOSAL_DESCRIPTION_BYTES_MAX} bytes"),
        ));
    }
    let changes = proposal
        .changes
        .into_iter()
        .enumerate()
        .map(|(index, change)| {
            check_change(change).map_err(|e| TxRejection {
                log: format!("change {index}: {}", e.log),
                ..e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SubmitProposal {
        changes,
        description: proposal.description,
    })
}

fn ppm(ratio: Ratio) -> u64 {
    // Checked changes hold ratios in [0, 1e6] ppm.
    u64::try_from(ratio.raw()).unwrap_or(0)
}

impl ParamChange {
    /// The wire form (what a client signs, and what a stored proposal holds).
    pub fn to_pb(&self) -> pb::ParamChange {
        use pb::param_change::Change as C;
        let market_ratio = |market: &MarketId, value: Ratio| pb::MarketRatioChange {
            market: market.to_string(),
            value_ppm: ppm(value),
        };
        let market_amount = |market: &MarketId, value: Money| pb::MarketAmountChange {
            market: market.to_string(),
            value: value.to_string(),
        };
        let change = match self {
            ParamChange::InitialMargin { market, value } => {
                C::MarketInitialMargin(market_ratio(market, *value))
            }
            ParamChange::MaintenanceFraction { market, value } => {
                C::MarketMaintenanceFraction(market_ratio(market, *value))
            }
            ParamChange::OpenInterestLowerCap { market, value } => {
                C::MarketOpenInterestLowerCap(market_amount(market, *value))
            }
            ParamChange::OpenInterestUpperCap { market, value } => {
                C::MarketOpenInterestUpperCap(market_amount(market, *value))
            }
            ParamChange::AssetHaircut { asset, haircut } => {
                C::AssetHaircut(pb::AssetHaircutChange {
                    asset: asset.to_string(),
                    haircut_ppm: ppm(*haircut),
                })
            }
            ParamChange::ListCollateralAsset {
                asset,
                oracle_price,
                haircut,
            } => C::ListCollateralAsset(pb::ListCollateralAsset {
                asset: asset.to_string(),
                oracle_price: oracle_price.to_string(),
                haircut_ppm: ppm(*haircut),
            }),
            ParamChange::PositionSizeMax(size) => C::PositionSizeMax(size.to_string()),
            ParamChange::PauseMarket(market) => C::PauseMarket(market.to_string()),
            ParamChange::ResumeMarket(market) => C::ResumeMarket(market.to_string()),
            ParamChange::PriceBand { market, value } => {
                C::MarketPriceBand(market_ratio(market, *value))
            }
            ParamChange::OpenInterestHardCap { market, value } => {
                C::MarketOpenInterestHardCap(market_amount(market, *value))
            }
            ParamChange::VenueOpenInterestCap { market, value } => {
                C::VenueOpenInterestCap(market_amount(market, *value))
            }
        };
        pb::ParamChange {
            change: Some(change),
        }
    }

    /// Decodes a stored change (it was checked when submitted).
    pub fn from_pb(change: pb::ParamChange) -> Result<ParamChange, TxRejection> {
        check_change(change)
    }

    /// Short name for events and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ParamChange::InitialMargin { .. } => "initial_margin",
            ParamChange::MaintenanceFraction { .. } => "maintenance_fraction",
            ParamChange::OpenInterestLowerCap { .. } => "open_interest_lower_cap",
            ParamChange::OpenInterestUpperCap { .. } => "open_interest_upper_cap",
            ParamChange::AssetHaircut { .. } => "asset_haircut",
            ParamChange::ListCollateralAsset { .. } => "list_collateral_asset",
            ParamChange::PositionSizeMax(_) => "position_size_max",
            ParamChange::PauseMarket(_) => "pause_market",
            ParamChange::ResumeMarket(_) => "resume_market",
            ParamChange::PriceBand { .. } => "price_band",
            ParamChange::OpenInterestHardCap { .. } => "open_interest_cap",
            ParamChange::VenueOpenInterestCap { .. } => "venue_open_interest_cap",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // reason: test fixtures

    use super::*;

    fn initial_margin(ppm: u64) -> pb::ParamChange {
        ParamChange::InitialMargin {
            market: MarketId::new("BTC-PERP").unwrap(),
            value: Ratio::from_raw(i128::from(ppm)),
        }
        .to_pb()
    }

    #[test]
    fn a_checked_change_round_trips_through_its_wire_form() {
        let changes = vec![
            ParamChange::ListCollateralAsset {
                asset: AssetId::new("WBTC").unwrap(),
                oracle_price: "64000.5".parse().unwrap(),
                haircut: Ratio::from_raw(150_000),
            },
            ParamChange::OpenInterestUpperCap {
                market: MarketId::new("ETH-PERP").unwrap(),
                value: "1000000.25".parse().unwrap(),
            },
            ParamChange::PositionSizeMax("500".parse().unwrap()),
            ParamChange::PauseMarket(MarketId::new("SOL-PERP").unwrap()),
        ];
        for change in changes {
            assert_eq!(ParamChange::from_pb(change.to_pb()).unwrap(), change);
        }
    }

    #[test]
    fn out_of_range_values_and_empty_proposals_are_refused() {
        let refused = |changes: Vec<pb::ParamChange>| {
            check_proposal(pb::SubmitProposal {
                changes,
                description: String::new(),
            })
            .unwrap_err()
            .code
        };
        assert_eq!(refused(vec![]), TxCode::TooManyEntries);
        assert_eq!(refused(vec![initial_margin(0)]), TxCode::InvalidAmount);
        assert_eq!(
            refused(vec![initial_margin(1_000_001)]),
            TxCode::InvalidAmount
        );
        assert_eq!(
            refused(vec![pb::ParamChange { change: None }]),
            TxCode::InvalidField
        );
        assert!(check_proposal(pb::SubmitProposal {
            changes: vec![initial_margin(1_000_000)],
            description: "max".into(),
        })
        .is_ok());
    }
}
