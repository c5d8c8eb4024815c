//! The in-memory state: ordered maps of domain records.

use std::collections::{BTreeMap, BTreeSet};

use clearnode_num::{Money, Price, Quantity, Ratio};
use clearnode_types::{Address, AssetId, MarketId, VenueId};

use crate::margin::regime::{MarketMargin, SizeTier};
use crate::margin::Risk;
use crate::small_map::{SmallMap, SmallSet};

/// Chain identity and the last executed block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainInfo {
    /// CometBFT chain id.
    pub chain_id: String,
    /// Height of the last executed block (0 at genesis).
    pub height: u64,
    /// Its header time, seconds since the Unix epoch.
    pub time_seconds: i64,
    /// Its header time, nanoseconds part.
    pub time_nanos: i32,
}

/// Risk parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Most entries per report.
    pub report_entries_max: u32,
    /// Largest |size| of one position on one venue.
    pub position_size_max: Quantity,
    /// The liquidation ladder.
    pub liquidation: LiquidationParams,
    /// What the insurance fund started with: the settlement ledger's total.
    pub insurance_fund_initial: Money,
    /// Blocks a venue has to acknowledge an instruction that needs action.
    pub instruction_ack_blocks: u32,
    /// Governance timing.
    pub governance: crate::governance::GovernanceParams,
}

/// The liquidation ladder's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiquidationParams {
    /// Share of each position offered per block.
    pub fraction_per_block: Ratio,
    /// Smallest notional offered, unless the position is smaller.
    pub min_notional: Money,
    /// Most accounts put into liquidation per block.
    pub accounts_per_block_max: u32,
    /// Blocks an order waits for a liquidator.
    pub deadline_blocks: u32,
    /// Band as a multiple of the maintenance fraction.
    pub spread_to_maintenance: Ratio,
    /// Base penalty.
    pub fee_base: Ratio,
    /// Convex penalty factor on (shortfall / maintenance)^2.
    pub fee_convex: Ratio,
    /// Penalty added per block in liquidation.
    pub fee_per_block: Ratio,
    /// Highest penalty.
    pub fee_max: Ratio,
    /// The liquidator's share of the penalty.
    pub liquidator_share: Ratio,
    /// Most of an account's unrealized profit in a market one
    /// auto-deleveraging may take.
    pub adl_profit_share_max: Ratio,
}

/// A position offered to liquidators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiquidationOrder {
    /// Quantity still offered (positive).
    pub quantity: Quantity,
    /// The worst price for the account.
    pub limit_price: Price,
    /// +1: a long being sold; -1: a short being bought.
    pub side: i32,
    /// When it was first posted.
    pub posted_height: u64,
    /// When the backstop takes it if no liquidator has.
    pub deadline_height: u64,
}

/// Key of a liquidation order: the position's account, market and venue.
pub type OrderKey = (Address, MarketId, VenueId);

/// The insurance fund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsuranceFund {
    /// Balance (USD).
    pub balance: Money,
    /// Penalties received since genesis.
    pub inflows: Money,
    /// Bad debt paid since genesis.
    pub payouts: Money,
    /// Bad debt collected from auto-deleveraged accounts since genesis.
    pub adl_collected: Money,
    /// Bad debt neither the fund nor auto-deleveraging covered.
    pub bad_debt_unresolved: Money,
}

/// A listed market: parameters, mark price and margin regime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    /// Id.
    pub id: MarketId,
    /// Mark price.
    pub oracle_price: Price,
    /// Base initial margin fraction of net notional.
    pub initial_margin: Ratio,
    /// Maintenance requirement as a fraction of the initial one.
    pub maintenance_fraction: Ratio,
    /// Initial charge on the gross size that nets out across venues.
    pub basis: Ratio,
    /// Open interest (USD) where OI scaling starts.
    pub open_interest_lower_cap: Money,
    /// Open interest (USD) where the fraction reaches 100% (zero: off).
    pub open_interest_upper_cap: Money,
    /// Size tiers above the base.
    pub size_tiers: Vec<SizeTier>,
    /// EWMA decay per price update.
    pub volatility_decay: Ratio,
    /// Reference volatility per update, ppm.
    pub volatility_reference_ppm: i128,
    /// Blocks over which a higher fraction phases in.
    pub margin_phase_in_blocks: u32,
    /// Most the current fraction may rise per block.
    pub margin_rise_per_block_max: Ratio,
    /// Most the insurance fund pays per block for bad debt in this market.
    pub insurance_payout_per_block_max: Money,
    /// Held only by isolated sub-accounts, backed by its own fund.
    pub isolated: bool,
    /// The margin regime as of the current block.
    pub margin: MarketMargin,
}

/// A collateral asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Id.
    pub id: AssetId,
    /// Oracle price in USD per unit.
    pub oracle_price: Price,
    /// Share of the value not counted.
    pub haircut: Ratio,
}

/// A venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venue {
    /// Id.
    pub id: VenueId,
    /// Key that signs its reports.
    pub public_key: [u8; 32],
    /// May report.
    pub active: bool,
    /// Instructions acknowledged up to and including this height.
    pub acknowledged_height: u64,
    /// Height from which unacknowledged instructions count toward the
    /// deadline (0: none pending).
    pub unacknowledged_since: u64,
    /// Last height with an instruction that needs acknowledging.
    pub last_instruction_height: u64,
    /// Left instructions unacknowledged past the deadline.
    pub delinquent: bool,
}

/// One position of an account in one market on one venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Signed size (never zero in state: a zero report removes the position).
    pub size: Quantity,
    /// Average entry price.
    pub entry_price: Price,
    /// Height of the report that set it.
    pub updated_height: u64,
}

/// Positions keyed by (market, venue): an account's positions in one market
/// are adjacent, which is how margin nets them.
pub type PositionKey = (MarketId, VenueId);

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Account {
    /// Collateral balances; zero balances are removed.
    pub collateral: SmallMap<AssetId, Quantity>,
    /// Venues allowed to report for it.
    pub authorized_venues: SmallSet<VenueId>,
    /// Open positions (a few per account: a map that allocates no more
    /// than it holds).
    pub positions: SmallMap<PositionKey, Position>,
    /// Risk as last computed (at the end of the block that last touched it).
    pub risk: Risk,
    /// Realized PnL and fees settled by the clearinghouse (USD).
    pub settled_pnl: Money,
    /// Registered as a liquidator.
    pub liquidator: bool,
    /// Height since which it has been in liquidation (0: not).
    pub liquidating_since: u64,
    /// For an isolated sub-account: its owner and its one market.
    pub isolated: Option<(Address, MarketId)>,
}

impl Account {
    /// Its position in `market` on `venue`, if any.
    pub(crate) fn position(&self, market: &MarketId, venue: &VenueId) -> Option<&Position> {
        // Ids are inline, so the key is a copy, not an allocation.
        self.positions.get(&(market.clone(), venue.clone()))
    }

    /// Takes collateral out; a zero balance is removed.
    pub(crate) fn debit_collateral(
        &mut self,
        asset: &AssetId,
        amount: Quantity,
    ) -> Result<(), clearnode_num::NumError> {
        let balance = self.collateral.get(asset).copied().unwrap_or_default();
        let remaining = balance.checked_sub(amount)?;
        if remaining.is_zero() {
            self.collateral.remove(asset);
        } else {
            self.collateral.insert(asset.clone(), remaining);
        }
        Ok(())
    }

    /// Adds collateral.
    pub(crate) fn credit_collateral(
        &mut self,
        asset: &AssetId,
        amount: Quantity,
    ) -> Result<(), clearnode_num::NumError> {
        let balance = self.collateral.get_or_insert_default(asset.clone());
        *balance = balance.checked_add(amount)?;
        Ok(())
    }
}

/// Flows of one collateral asset since genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ledger {
    /// Total deposited.
    pub deposited: Quantity,
    /// Total withdrawn.
    pub withdrawn: Quantity,
}

/// Open interest of one venue in one market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VenueInterest {
    /// Sum of long sizes.
    pub long: Quantity,
    /// Sum of |short sizes|.
    pub short: Quantity,
}

/// Running totals of one market, maintained per touched account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MarketTotals {
    /// Sum of long sizes as venues report them.
    pub long: Quantity,
    /// Sum of |short sizes| as venues report them.
    pub short: Quantity,
    /// Sum over accounts of the positive net size across venues.
    pub net_long: Quantity,
    /// Sum over accounts of |negative net size| across venues.
    pub net_short: Quantity,
    /// Per venue.
    pub venues: BTreeMap<VenueId, VenueInterest>,
    /// Accounts with a non-zero position on some venue.
    pub accounts_with_position: u64,
    /// Accounts by |net size| across venues: concentration.
    pub holders: crate::aggregates::Holdings,
}

/// Accounts per health state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthCounts {
    /// Equity at or above initial margin.
    pub healthy: u64,
    /// Between maintenance and initial.
    pub margin_call: u64,
    /// Below maintenance, not below zero.
    pub liquidating: u64,
    /// Negative equity.
    pub bankrupt: u64,
}

/// Running system-wide totals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemTotals {
    /// Sum of positive account equity.
    pub equity_positive: clearnode_num::Money,
    /// Accounts per health state.
    pub health: HealthCounts,
    /// Accounts in state.
    pub accounts: u64,
    /// Accounts (the backstop's book too) by net notional across markets:
    /// concentration.
    pub holders: crate::aggregates::Holdings,
}

/// The whole application state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Chain identity and last block.
    pub chain: ChainInfo,
    /// Risk parameters.
    pub params: Params,
    /// The custodian's deposit-signing key.
    pub custodian: [u8; 32],
    /// Listed markets.
    pub markets: BTreeMap<MarketId, Market>,
    /// Collateral assets.
    pub assets: BTreeMap<AssetId, Asset>,
    /// Venues.
    pub venues: BTreeMap<VenueId, Venue>,
    /// Next sequence per signer.
    pub sequences: BTreeMap<Address, u64>,
    /// Accounts.
    pub accounts: BTreeMap<Address, Account>,
    /// Collateral flows per asset.
    pub ledgers: BTreeMap<AssetId, Ledger>,
    /// Market running totals.
    pub market_totals: BTreeMap<MarketId, MarketTotals>,
    /// System running totals.
    pub system: SystemTotals,
    /// Derived indexes, rebuilt on load.
    pub indexes: Indexes,
    /// Positions offered to liquidators.
    pub liquidation_orders: BTreeMap<OrderKey, LiquidationOrder>,
    /// The insurance fund.
    pub insurance_fund: InsuranceFund,
    /// Each isolated market's own insurance fund.
    pub isolated_funds: BTreeMap<MarketId, InsuranceFund>,
    /// What the clearinghouse owes each venue from its accounts' realized PnL.
    pub venue_settlements: BTreeMap<VenueId, Money>,
    /// CometBFT's validator set (it signs the oracle's vote extensions).
    pub validators: BTreeMap<[u8; 20], ConsensusValidator>,
    /// Circuit breakers and oracle validity.
    pub breakers: crate::breakers::Breakers,
    /// Governance proposals by id.
    pub proposals: BTreeMap<u64, crate::governance::Proposal>,
    /// Governance state besides the proposals.
    pub governance: crate::governance::GovernanceState,
}

/// A consensus validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusValidator {
    /// Its ed25519 consensus key.
    pub public_key: [u8; 32],
    /// Its voting power.
    pub power: u64,
}

/// Where to find accounts without walking them all. Derived from the
/// accounts and maintained with the running totals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Indexes {
    /// Accounts with a position in each market (a price move touches these).
    pub market_holders: BTreeMap<MarketId, BTreeSet<Address>>,
    /// Accounts holding each collateral asset.
    pub asset_holders: BTreeMap<AssetId, BTreeSet<Address>>,
    /// Accounts with positions by margin ratio (equity / maintenance, ppm),
    /// most under water first: the liquidation ladder's queue.
    pub by_risk: BTreeSet<(i128, Address)>,
    /// Accounts by what they would leave unpaid in the coverage stress
    /// (only positive losses): the system breaker's two largest defaults.
    pub by_stress_loss: BTreeSet<(Money, Address)>,
}

impl State {
    /// The signer's next sequence.
    pub fn next_sequence(&self, signer: &Address) -> u64 {
        self.sequences.get(signer).copied().unwrap_or(0)
    }
}
