//! Circuit breakers and oracle validity, as state with explicit transitions.
//!
//! Per market: the validity of its oracle price (stale, too volatile, too
//! few reporters), a price band around a reference price (open -> limit:
//! reduce-only -> paused -> staged reopen with widened margin -> open), hard
//! open-interest caps per market and per venue, and a halt when a market
//! invariant breaks. System-wide: the shared insurance fund's drawdown over
//! a window and its coverage of the two largest stress defaults; tripped,
//! everything is reduce-only with a tightened margin until both recover.
//!
//! Market breakers step at the start of a block, after its prices and
//! before the margin regime (which applies their margin multipliers); the
//! system breaker and the market invariants are evaluated at the end of a
//! block, from the block's final aggregates. Each action declares which
//! validity states it tolerates ([`Gate`]), as Drift's oracle guards do.

pub mod codec;
mod gates;
mod run;
mod system;

use std::collections::{BTreeMap, BTreeSet};

use clearnode_num::{mul_div, Money, NumError, Price, Ratio, Rounding, RATIO_SCALE};
use clearnode_types::{MarketId, VenueId};

pub(crate) use gates::{
    account_liquidation_blocked, check_report, check_withdrawal, liquidation_blocked,
    VenueInterestOf,
};
pub use system::stress_default_loss;

/// A market's breaker parameters; a zero disables the check it configures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MarketBreakerParams {
    /// Band around the reference price.
    pub price_band: Ratio,
    /// Blocks in the limit state before the market pauses.
    pub limit_blocks: u32,
    /// Blocks a band pause lasts.
    pub pause_blocks: u32,
    /// Blocks of the staged reopen.
    pub reopen_blocks: u32,
    /// Initial margin multiplier at the start of the reopen (zero: 1).
    pub reopen_margin_multiplier: Ratio,
    /// While open, the reference resets to the price every so many blocks.
    pub reference_window_blocks: u32,
    /// Cap on open interest, USD notional of the larger side.
    pub open_interest_cap: Money,
    /// Cap on one venue's open interest in the market.
    pub venue_open_interest_cap: Money,
    /// Blocks without a price after which it is stale.
    pub stale_after_blocks: u32,
    /// A price update moving more than this is too volatile.
    pub volatile_move: Ratio,
}

/// Why a market is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PauseCause {
    /// Its price stayed outside the band for the whole limit state.
    PriceBand,
    /// Governance paused it.
    Governance,
    /// A market invariant broke: halted until governance resumes it.
    Invariant,
}

/// The trading state of a market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MarketStatus {
    /// Normal trading.
    #[default]
    Open,
    /// Outside the price band: only risk-reducing reports.
    Limit,
    /// Nothing changes in the market; no liquidations.
    Paused(PauseCause),
    /// Trading again with a widened margin.
    Reopening,
}

impl MarketStatus {
    /// A stable name for events, instructions and metrics.
    pub fn name(self) -> &'static str {
        match self {
            MarketStatus::Open => "open",
            MarketStatus::Limit => "limit",
            MarketStatus::Paused(PauseCause::Invariant) => "halted",
            MarketStatus::Paused(_) => "paused",
            MarketStatus::Reopening => "reopening",
        }
    }
}

/// Validity of a market's oracle price at a height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Validity {
    /// No price from >= 2/3 of power for more than `stale_after_blocks`.
    pub stale: bool,
    /// The last update moved the price by more than `volatile_move`.
    pub too_volatile: bool,
    /// The last oracle round quoted it with less than 2/3 of power.
    pub too_few_reporters: bool,
}

impl Validity {
    /// No flag raised.
    pub fn is_valid(self) -> bool {
        !(self.stale || self.too_volatile || self.too_few_reporters)
    }

    /// The raised flags, for logs.
    pub fn describe(self) -> String {
        let flags = [
            (self.stale, "stale"),
            (self.too_volatile, "too volatile"),
            (self.too_few_reporters, "quoted by too few validators"),
        ];
        let raised: Vec<&str> = flags.iter().filter(|(on, _)| *on).map(|f| f.1).collect();
        if raised.is_empty() {
            "valid".into()
        } else {
            raised.join(", ")
        }
    }
}

/// A market's breakers and the validity of its price.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MarketBreaker {
    /// Parameters.
    pub params: MarketBreakerParams,
    /// Trading state.
    pub status: MarketStatus,
    /// Height the status was entered.
    pub status_since: u64,
    /// What a halt found.
    pub halt_reason: String,
    /// The band's reference price.
    pub reference_price: Option<Price>,
    /// Height the reference was set.
    pub reference_height: u64,
    /// Last height whose oracle update priced the market.
    pub last_priced_height: u64,
    /// |move| of the last price update as a share of the previous price.
    pub last_move: Ratio,
    /// Oracle validity as of the current block.
    pub validity: Validity,
    /// Open interest at its cap.
    pub open_interest_capped: bool,
    /// Venues at their cap in this market.
    pub venues_capped: BTreeSet<VenueId>,
}

/// What one market breaker step changed, for events and instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The trading state changed.
    Status {
        from: MarketStatus,
        to: MarketStatus,
    },
    /// The price's validity changed.
    Validity { from: Validity, to: Validity },
}

/// One block's oracle input for one market.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OracleInput {
    /// The price after this block's update (or the old one).
    pub(crate) price: Price,
    /// The price before it.
    pub(crate) previous: Price,
    /// Priced by >= 2/3 of power in this block.
    pub(crate) priced: bool,
    /// Quoted in this block, by less than 2/3 of power.
    pub(crate) underquoted: bool,
}

/// |a - b| / b, rounded up.
fn relative_move(price: Price, from: Price) -> Result<Ratio, NumError> {
    let diff = price
        .raw()
        .checked_sub(from.raw())
        .ok_or(NumError::Overflow)?;
    mul_div(diff.abs(), RATIO_SCALE, from.raw(), Rounding::Ceil).map(Ratio::from_raw)
}

impl MarketBreaker {
    /// A market's breaker at genesis: open, referenced at its genesis price.
    pub fn new(params: MarketBreakerParams, price: Price) -> Self {
        Self {
            params,
            reference_price: Some(price),
            ..Self::default()
        }
    }

    fn enter(&mut self, to: MarketStatus, height: u64, out: &mut Vec<Transition>) {
        if self.status != to {
            out.push(Transition::Status {
                from: self.status,
                to,
            });
        }
        self.status = to;
        self.status_since = height;
    }

    fn breached(&self, price: Price) -> Result<bool, NumError> {
        let band = self.params.price_band;
        match self.reference_price {
            Some(reference) if band.is_positive() => Ok(relative_move(price, reference)? > band),
            _ => Ok(false),
        }
    }

    fn rereference(&mut self, price: Price, height: u64) {
        self.reference_price = Some(price);
        self.reference_height = height;
    }

    /// The block's step: validity from the oracle input, then the band's
    /// state machine on the current price.
    pub(crate) fn step(
        &mut self,
        height: u64,
        oracle: OracleInput,
    ) -> Result<Vec<Transition>, NumError> {
        let mut out = Vec::new();
        let before = self.validity;
        if oracle.priced {
            self.last_move = relative_move(oracle.price, oracle.previous)?;
            self.last_priced_height = height;
            self.validity.too_few_reporters = false;
        } else if oracle.underquoted {
            self.validity.too_few_reporters = true;
        }
        let volatile = self.params.volatile_move;
        self.validity.too_volatile = volatile.is_positive() && self.last_move > volatile;
        let stale_after = u64::from(self.params.stale_after_blocks);
        self.validity.stale =
            stale_after > 0 && height.saturating_sub(self.last_priced_height) > stale_after;
        if self.validity != before {
            out.push(Transition::Validity {
                from: before,
                to: self.validity,
            });
        }
        let price = oracle.price;
        let since = self.status_since;
        let params = &self.params;
        match self.status {
            MarketStatus::Open => {
                if self.breached(price)? {
                    self.enter(MarketStatus::Limit, height, &mut out);
                } else {
                    let window = u64::from(params.reference_window_blocks);
                    if window > 0 && height >= self.reference_height.saturating_add(window) {
                        self.rereference(price, height);
                    }
                }
            }
            MarketStatus::Limit => {
                if !self.breached(price)? {
                    self.enter(MarketStatus::Open, height, &mut out);
                } else if height >= since.saturating_add(u64::from(params.limit_blocks)) {
                    let paused = MarketStatus::Paused(PauseCause::PriceBand);
                    self.enter(paused, height, &mut out);
                }
            }
            MarketStatus::Paused(PauseCause::PriceBand) => {
                if height >= since.saturating_add(u64::from(params.pause_blocks)) {
                    self.reopen(price, height, &mut out);
                }
            }
            MarketStatus::Paused(_) => {}
            MarketStatus::Reopening => {
                if self.breached(price)? {
                    self.enter(MarketStatus::Limit, height, &mut out);
                } else if height >= since.saturating_add(u64::from(params.reopen_blocks)) {
                    self.enter(MarketStatus::Open, height, &mut out);
                }
            }
        }
        Ok(out)
    }

    /// The staged reopen: the band re-centres on the price it reopens at.
    pub(crate) fn reopen(&mut self, price: Price, height: u64, out: &mut Vec<Transition>) {
        self.rereference(price, height);
        self.halt_reason.clear();
        self.enter(MarketStatus::Reopening, height, out);
    }

    /// Initial margin multiplier at a height: during the reopen it falls
    /// linearly from `reopen_margin_multiplier` to 1.
    pub fn margin_multiplier(&self, height: u64) -> Result<Ratio, NumError> {
        let widened = self.params.reopen_margin_multiplier;
        let blocks = i128::from(self.params.reopen_blocks);
        if self.status != MarketStatus::Reopening || widened <= Ratio::ONE || blocks == 0 {
            return Ok(Ratio::ONE);
        }
        let elapsed = i128::from(height.saturating_sub(self.status_since)).min(blocks);
        let extra = widened.checked_sub(Ratio::ONE)?;
        let remaining = mul_div(extra.raw(), blocks - elapsed, blocks, Rounding::Ceil)?;
        Ratio::ONE.checked_add(Ratio::from_raw(remaining))
    }

    /// Nothing may change in the market.
    pub fn is_paused(&self) -> bool {
        matches!(self.status, MarketStatus::Paused(_))
    }
}

/// System-wide breaker parameters; a zero disables the check it configures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemBreakerParams {
    /// Trip when the fund falls this share below its high over the window.
    pub fund_drawdown_max: Ratio,
    /// The drawdown window, blocks.
    pub fund_drawdown_window_blocks: u32,
    /// Adverse move of every market in the coverage stress.
    pub coverage_stress_move: Ratio,
    /// Initial margin multiplier while tripped (zero: 1).
    pub tightened_margin_multiplier: Ratio,
    /// After a pause, liquidations need a price at most this many blocks old.
    pub fresh_price_blocks: u32,
}

/// Why the system breaker tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SystemCause {
    /// The fund fell too far below its high over the window.
    FundDrawdown,
    /// The fund would not cover the two largest stress defaults.
    FundCoverage,
}

/// The system-wide breaker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemBreaker {
    /// Parameters.
    pub params: SystemBreakerParams,
    /// Reduce-only everywhere, tightened margin.
    pub tripped: bool,
    /// Height it tripped.
    pub tripped_since: u64,
    /// What holds (while tripped, or what tripped it).
    pub causes: BTreeSet<SystemCause>,
    /// The fund's balance changes within the window, oldest first (the first
    /// may be older: the balance in effect when the window starts).
    pub fund_history: Vec<(u64, Money)>,
    /// The fund's high over the window.
    pub fund_high: Money,
    /// The fund's drawdown from that high.
    pub fund_drawdown: Money,
    /// Loss if the two accounts with the largest stress loss default.
    pub stress_loss_top_two: Money,
    /// Fund balance / that loss (None: no stress loss).
    pub coverage: Option<Ratio>,
}

impl SystemBreaker {
    /// Initial margin multiplier in effect.
    pub fn margin_multiplier(&self) -> Ratio {
        let tightened = self.params.tightened_margin_multiplier;
        if self.tripped && tightened > Ratio::ONE {
            tightened
        } else {
            Ratio::ONE
        }
    }
}

/// Every breaker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Breakers {
    /// Per market.
    pub markets: BTreeMap<MarketId, MarketBreaker>,
    /// System-wide.
    pub system: SystemBreaker,
}

impl Breakers {
    /// The initial margin multiplier of a market at a height: its reopen
    /// widening times the system's tightening.
    pub fn margin_multiplier(&self, market: &MarketId, height: u64) -> Result<Ratio, NumError> {
        let own = match self.markets.get(market) {
            Some(breaker) => breaker.margin_multiplier(height)?,
            None => Ratio::ONE,
        };
        let system = self.system.margin_multiplier();
        if system == Ratio::ONE {
            return Ok(own);
        }
        own.checked_mul(system, Rounding::Ceil)
    }

    /// A market's initial margin fraction widened by its multiplier at a
    /// height, capped at 100%, exact when the multiplier is 1.
    pub(crate) fn widen(
        &self,
        market: &MarketId,
        height: u64,
        fraction: Ratio,
    ) -> Result<Ratio, NumError> {
        let multiplier = self.margin_multiplier(market, height)?;
        if multiplier == Ratio::ONE {
            return Ok(fraction);
        }
        Ok(fraction
            .checked_mul(multiplier, Rounding::Ceil)?
            .min(Ratio::ONE))
    }
}
