//! The system breaker's conditions: the shared fund's drawdown over a
//! window, and its coverage of the two largest stress defaults.

use std::collections::BTreeSet;

use clearnode_num::{Money, NumError, Ratio, Rounding};

use super::{SystemBreaker, SystemCause};

/// Coverage is reported up to 1,000x.
const COVERAGE_MAX_PPM: i64 = 1_000_000_000;
use crate::margin::Risk;

/// What an account would leave unpaid if every market moved against its net
/// position by `stress_move`: `max(0, stress_move x net notional - equity)`.
/// Zero when the stress is off.
pub fn stress_default_loss(risk: &Risk, stress_move: Ratio) -> Result<Money, NumError> {
    if !stress_move.is_positive() {
        return Ok(Money::ZERO);
    }
    let loss = risk.net_notional.mul_ratio(stress_move, Rounding::Ceil)?;
    Ok(loss.checked_sub(risk.equity)?.max(Money::ZERO))
}

impl SystemBreaker {
    /// Records the fund's balance at a height (a sample only when it
    /// changed) and forgets samples older than the window, keeping the one
    /// in effect when the window starts.
    pub(crate) fn record_fund(&mut self, height: u64, balance: Money) {
        if self.fund_history.last().map(|(_, b)| *b) != Some(balance) {
            self.fund_history.push((height, balance));
        }
        let window = u64::from(self.params.fund_drawdown_window_blocks);
        let start = height.saturating_sub(window);
        // The newest sample at or before the window's start is the balance in
        // effect then; everything older is forgotten.
        let in_effect = self
            .fund_history
            .iter()
            .rposition(|(at, _)| *at <= start)
            .unwrap_or(0);
        self.fund_history.drain(..in_effect);
    }

    /// Recomputes the high, the drawdown and the coverage from the fund's
    /// balance and the two largest stress losses; returns the causes that hold.
    pub(crate) fn conditions(
        &mut self,
        balance: Money,
        stress_loss_top_two: Money,
    ) -> Result<BTreeSet<SystemCause>, NumError> {
        let mut causes = BTreeSet::new();
        let high = self
            .fund_history
            .iter()
            .map(|(_, b)| *b)
            .fold(balance, Money::max);
        self.fund_high = high;
        self.fund_drawdown = high.checked_sub(balance)?;
        let drawdown_max = self.params.fund_drawdown_max;
        if drawdown_max.is_positive() && high.is_positive() {
            let allowed = high.mul_ratio(drawdown_max, Rounding::Floor)?;
            if self.fund_drawdown > allowed {
                causes.insert(SystemCause::FundDrawdown);
            }
        }
        self.stress_loss_top_two = stress_loss_top_two;
        self.coverage = if stress_loss_top_two.is_positive() {
            // Capped, so a tiny loss cannot overflow the ratio.
            let cap = Ratio::from_ppm(COVERAGE_MAX_PPM);
            let capped_at = stress_loss_top_two.mul_ratio(cap, Rounding::Ceil)?;
            Some(if balance >= capped_at {
                cap
            } else {
                balance.ratio_to(stress_loss_top_two, Rounding::Floor)?
            })
        } else {
            None
        };
        if self.params.coverage_stress_move.is_positive()
            && self.coverage.is_some_and(|c| c < Ratio::ONE)
        {
            causes.insert(SystemCause::FundCoverage);
        }
        Ok(causes)
    }
}
