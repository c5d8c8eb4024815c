//! What each action needs from the breakers and the oracle: the gates that
//! report validation, withdrawals, takeovers and the ladder consult.
//!
//! | action                         | paused | limit / system tripped | price validity needed            |
//! |--------------------------------|--------|------------------------|----------------------------------|
//! | report entry adding exposure   | no     | no (reduce-only)       | valid                            |
//! | report entry reducing exposure | no     | yes                    | any                              |
//! | withdrawal (markets it holds)  | no     | yes (tightened margin) | valid                            |
//! | liquidation (ladder, takeover, backstop) | no | yes            | not stale, not too few reporters; fresh after a pause |

use clearnode_num::{Money, NumError, Quantity, Rounding};
use clearnode_types::tx::PositionReport;
use clearnode_types::{MarketId, TxCode, TxRejection, VenueId};

use super::{MarketBreaker, MarketStatus, Validity};
use crate::exec::OpenInterest;
use crate::state::{Account, State};

/// An action whose price-validity needs are declared here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// New or larger net exposure.
    NewExposure,
    /// Collateral out of an account with positions.
    Withdrawal,
    /// Posting orders, takeovers, the backstop and its book.
    Liquidation,
}

impl Gate {
    /// Whether the action tolerates the price's validity. Liquidations go on
    /// through volatility (a crash is volatile; stopping them is how losses
    /// become bad debt — the price band pauses a market instead), but not on
    /// a price that is stale or that too few validators vouched for.
    pub(crate) fn tolerates(self, validity: Validity) -> bool {
        match self {
            Gate::NewExposure | Gate::Withdrawal => validity.is_valid(),
            Gate::Liquidation => !validity.stale && !validity.too_few_reporters,
        }
    }
}

fn paused(market: &MarketId, breaker: &MarketBreaker) -> TxRejection {
    TxRejection::new(
        TxCode::MarketPaused,
        format!(
            "market {market} is {} since height {}: nothing changes in it",
            breaker.status.name(),
            breaker.status_since
        ),
    )
}

fn invalid(market: &MarketId, validity: Validity) -> TxRejection {
    TxRejection::new(
        TxCode::OracleInvalid,
        format!(
            "market {market}: its oracle price is {}",
            validity.describe()
        ),
    )
}

fn larger_side(
    (long, short): (Quantity, Quantity),
    price: clearnode_num::Price,
) -> Result<Money, NumError> {
    long.max(short).notional(price, Rounding::Ceil)
}

/// Open interest (long, short) of a venue in a market, now.
pub(crate) type VenueInterestOf<'a> = &'a dyn Fn(&MarketId, &VenueId) -> (Quantity, Quantity);

/// A report against the breakers: paused markets, reduce-only states,
/// price validity for new exposure, and the open-interest caps.
pub(crate) fn check_report(
    state: &State,
    report: &PositionReport,
    open_interest: &OpenInterest,
    changes: &OpenInterest,
    venue_interest: VenueInterestOf<'_>,
) -> Result<(), TxRejection> {
    let arithmetic = |e: NumError| TxRejection::new(TxCode::InvalidAmount, e.to_string());
    let system = &state.breakers.system;
    for (index, entry) in report.entries.iter().enumerate() {
        let Some(breaker) = state.breakers.markets.get(&entry.market) else {
            continue;
        };
        if breaker.is_paused() {
            return Err(paused(&entry.market, breaker));
        }
        let reduce_only = breaker.status == MarketStatus::Limit || system.tripped;
        let price_valid = Gate::NewExposure.tolerates(breaker.validity);
        if !reduce_only && price_valid {
            continue; // nothing here refuses new exposure, so no need to ask
        }
        let account = state.accounts.get(&entry.account);
        if !crate::exec::moving_adds_exposure(account, &entry.market, &report.venue, entry.size)
            .map_err(arithmetic)?
        {
            continue;
        }
        if reduce_only {
            let why = if breaker.status == MarketStatus::Limit {
                format!(
                    "market {} is outside its price band since height {}",
                    entry.market, breaker.status_since
                )
            } else {
                format!(
                    "the system breaker is tripped since height {}",
                    system.tripped_since
                )
            };
            return Err(TxRejection::new(
                TxCode::BreakerReduceOnly,
                format!(
                    "entry {index}: {why}: reduce-only, and account {} would add exposure",
                    entry.account
                ),
            ));
        }
        return Err(invalid(&entry.market, breaker.validity));
    }
    for (market, (long_change, short_change)) in changes {
        let (Some(breaker), Some(listing)) = (
            state.breakers.markets.get(market),
            state.markets.get(market),
        ) else {
            continue;
        };
        let price = listing.oracle_price;
        let caps = [
            (
                breaker.params.open_interest_cap,
                open_interest.get(market).copied().unwrap_or_default(),
                "the market's",
            ),
            (
                breaker.params.venue_open_interest_cap,
                venue_interest(market, &report.venue),
                "the venue's",
            ),
        ];
        for (cap, (long, short), whose) in caps {
            if !cap.is_positive() {
                continue;
            }
            let before = larger_side((long, short), price).map_err(arithmetic)?;
            let after = (
                long.checked_add(*long_change).map_err(arithmetic)?,
                short.checked_add(*short_change).map_err(arithmetic)?,
            );
            let after = larger_side(after, price).map_err(arithmetic)?;
            if after > cap && after > before {
                return Err(TxRejection::new(
                    TxCode::OpenInterestCap,
                    format!(
                        "market {market}: {whose} open interest would reach {after} USD, above its cap of {cap}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A withdrawal needs every market the account holds open and validly priced.
pub(crate) fn check_withdrawal(state: &State, account: &Account) -> Result<(), TxRejection> {
    for (market, _) in account.positions.keys() {
        if let Some(breaker) = state.breakers.markets.get(market) {
            if breaker.is_paused() {
                return Err(paused(market, breaker));
            }
            if !Gate::Withdrawal.tolerates(breaker.validity) {
                return Err(invalid(market, breaker.validity));
            }
        }
    }
    Ok(())
}

/// Why liquidating a position in this market must wait, if it must.
pub(crate) fn liquidation_blocked(
    state: &State,
    market: &MarketId,
    height: u64,
) -> Option<TxRejection> {
    let breaker = state.breakers.markets.get(market)?;
    if breaker.is_paused() {
        return Some(paused(market, breaker));
    }
    if !Gate::Liquidation.tolerates(breaker.validity) {
        return Some(invalid(market, breaker.validity));
    }
    let fresh = u64::from(state.breakers.system.params.fresh_price_blocks);
    let age = height.saturating_sub(breaker.last_priced_height);
    if breaker.status == MarketStatus::Reopening && fresh > 0 && age > fresh {
        return Some(TxRejection::new(
            TxCode::OracleInvalid,
            format!(
                "market {market} is reopening and its last price from 2/3 of power is {age} blocks old: liquidations wait for a fresh one"
            ),
        ));
    }
    None
}

/// Whether any of the account's markets holds its liquidation back.
pub(crate) fn account_liquidation_blocked(state: &State, account: &Account, height: u64) -> bool {
    account
        .positions
        .keys()
        .any(|(market, _)| liquidation_blocked(state, market, height).is_some())
}
