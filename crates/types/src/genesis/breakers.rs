//! Genesis parameters of the circuit breakers and oracle validity. Every
//! field defaults to zero, which disables the check it configures, so a
//! genesis without them runs with no breakers.

use clearnode_num::Money;
use serde::{Deserialize, Serialize};

use super::{GenesisError, PPM_ONE};

/// A market's breakers (see `MarketBreakerParams` in breakers.proto).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesisMarketBreaker {
    /// Band around the reference price, ppm (0: no band).
    pub price_band_ppm: u64,
    /// Blocks in the limit state before a pause.
    pub limit_blocks: u32,
    /// Blocks a band pause lasts.
    pub pause_blocks: u32,
    /// Blocks of the staged reopen.
    pub reopen_blocks: u32,
    /// Initial margin multiplier at the start of the reopen, ppm (>= 1e6; 0 = 1e6).
    pub reopen_margin_multiplier_ppm: u64,
    /// While open, the reference resets to the price every so many blocks (0: never).
    pub reference_window_blocks: u32,
    /// Open interest cap, USD notional of the larger side (0: none).
    pub open_interest_cap: Money,
    /// One venue's open interest cap in the market (0: none).
    pub venue_open_interest_cap: Money,
    /// Blocks without a price after which it is stale (0: never).
    pub stale_after_blocks: u32,
    /// A price update moving more than this is too volatile, ppm (0: never).
    pub volatile_move_ppm: u64,
}

/// The system-wide breaker (see `SystemBreakerParams` in breakers.proto).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesisSystemBreaker {
    /// Trip when the fund falls this share below its high over the window, ppm (0: off).
    pub fund_drawdown_max_ppm: u64,
    /// The drawdown window, blocks.
    pub fund_drawdown_window_blocks: u32,
    /// Adverse move of every market in the coverage stress, ppm (0: off).
    pub coverage_stress_move_ppm: u64,
    /// Initial margin multiplier while tripped, ppm (>= 1e6; 0 = 1e6).
    pub tightened_margin_multiplier_ppm: u64,
    /// After a pause, liquidations need a price at most this many blocks old (0: off).
    pub fresh_price_blocks: u32,
}

fn multiplier_ok(ppm: u64) -> bool {
    ppm == 0 || (PPM_ONE..=10 * PPM_ONE).contains(&ppm)
}

impl GenesisMarketBreaker {
    /// Bounds: ratios below 1 (bands up to 100%), multipliers in [1, 10], caps >= 0.
    pub fn validate(&self, market: &str) -> Result<(), GenesisError> {
        let ok = self.price_band_ppm < PPM_ONE
            && self.volatile_move_ppm < PPM_ONE
            && multiplier_ok(self.reopen_margin_multiplier_ppm)
            && !self.open_interest_cap.is_negative()
            && !self.venue_open_interest_cap.is_negative()
            && (self.price_band_ppm == 0 || self.limit_blocks > 0);
        if ok {
            Ok(())
        } else {
            Err(GenesisError(format!(
                "market {market}: breaker bands and volatile move below 1e6 ppm, a band needs limit_blocks > 0, reopen multiplier 0 or in [1e6, 1e7], caps >= 0"
            )))
        }
    }
}

impl GenesisSystemBreaker {
    /// Bounds: ratios below 1, multiplier in [1, 10], a drawdown needs a window.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let ok = self.fund_drawdown_max_ppm < PPM_ONE
            && self.coverage_stress_move_ppm < PPM_ONE
            && multiplier_ok(self.tightened_margin_multiplier_ppm)
            && (self.fund_drawdown_max_ppm == 0 || self.fund_drawdown_window_blocks > 0);
        if ok {
            Ok(())
        } else {
            Err(GenesisError(
                "system_breaker: drawdown and stress move below 1e6 ppm, a drawdown needs a window, multiplier 0 or in [1e6, 1e7]".into(),
            ))
        }
    }
}
