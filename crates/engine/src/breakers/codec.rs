//! Stored encodings of the breakers (`breaker/market/<id>`, `breaker/system`).

use clearnode_proto::state::v1 as pb;
use clearnode_types::MarketId;

use super::{
    MarketBreaker, MarketBreakerParams, MarketStatus, PauseCause, SystemBreaker,
    SystemBreakerParams, SystemCause, Validity,
};
use crate::codec::{bad, parse, ppm, ratio, DecodeError};

fn status_to_pb(status: MarketStatus) -> (pb::MarketStatus, pb::PauseCause) {
    match status {
        MarketStatus::Open => (pb::MarketStatus::Open, pb::PauseCause::Unspecified),
        MarketStatus::Limit => (pb::MarketStatus::Limit, pb::PauseCause::Unspecified),
        MarketStatus::Reopening => (pb::MarketStatus::Reopening, pb::PauseCause::Unspecified),
        MarketStatus::Paused(cause) => (
            pb::MarketStatus::Paused,
            match cause {
                PauseCause::PriceBand => pb::PauseCause::PriceBand,
                PauseCause::Governance => pb::PauseCause::Governance,
                PauseCause::Invariant => pb::PauseCause::Invariant,
            },
        ),
    }
}

fn status_from_pb(status: i32, cause: i32) -> Result<MarketStatus, DecodeError> {
    let what = "market breaker status";
    let status = pb::MarketStatus::try_from(status).map_err(|e| bad(what, e))?;
    let cause = pb::PauseCause::try_from(cause).map_err(|e| bad(what, e))?;
    Ok(match (status, cause) {
        (pb::MarketStatus::Open, _) => MarketStatus::Open,
        (pb::MarketStatus::Limit, _) => MarketStatus::Limit,
        (pb::MarketStatus::Reopening, _) => MarketStatus::Reopening,
        (pb::MarketStatus::Paused, pb::PauseCause::PriceBand) => {
            MarketStatus::Paused(PauseCause::PriceBand)
        }
        (pb::MarketStatus::Paused, pb::PauseCause::Governance) => {
            MarketStatus::Paused(PauseCause::Governance)
        }
        (pb::MarketStatus::Paused, pb::PauseCause::Invariant) => {
            MarketStatus::Paused(PauseCause::Invariant)
        }
        _ => return Err(bad(what, "unspecified status or pause cause")),
    })
}

/// Encodes a market's breaker parameters.
pub fn market_params_to_pb(
    params: &MarketBreakerParams,
) -> Result<pb::MarketBreakerParams, DecodeError> {
    let what = "market breaker params";
    Ok(pb::MarketBreakerParams {
        price_band_ppm: ppm(what, params.price_band)?,
        limit_blocks: params.limit_blocks,
        pause_blocks: params.pause_blocks,
        reopen_blocks: params.reopen_blocks,
        reopen_margin_multiplier_ppm: ppm(what, params.reopen_margin_multiplier)?,
        reference_window_blocks: params.reference_window_blocks,
        open_interest_cap: params.open_interest_cap.to_string(),
        venue_open_interest_cap: params.venue_open_interest_cap.to_string(),
        stale_after_blocks: params.stale_after_blocks,
        volatile_move_ppm: ppm(what, params.volatile_move)?,
    })
}

fn market_params_from_pb(
    value: pb::MarketBreakerParams,
) -> Result<MarketBreakerParams, DecodeError> {
    let what = "market breaker params";
    Ok(MarketBreakerParams {
        price_band: ratio(value.price_band_ppm),
        limit_blocks: value.limit_blocks,
        pause_blocks: value.pause_blocks,
        reopen_blocks: value.reopen_blocks,
        reopen_margin_multiplier: ratio(value.reopen_margin_multiplier_ppm),
        reference_window_blocks: value.reference_window_blocks,
        open_interest_cap: parse(what, &value.open_interest_cap)?,
        venue_open_interest_cap: parse(what, &value.venue_open_interest_cap)?,
        stale_after_blocks: value.stale_after_blocks,
        volatile_move: ratio(value.volatile_move_ppm),
    })
}

/// Encodes a market's breaker as of a height (its margin multiplier then).
pub fn market_breaker_to_pb(
    market: &MarketId,
    breaker: &MarketBreaker,
    height: u64,
) -> Result<pb::MarketBreaker, DecodeError> {
    let what = "market breaker";
    let (status, cause) = status_to_pb(breaker.status);
    let multiplier = breaker
        .margin_multiplier(height)
        .map_err(|e| bad(what, e))?;
    Ok(pb::MarketBreaker {
        market: market.to_string(),
        params: Some(market_params_to_pb(&breaker.params)?),
        status: status.into(),
        status_since: breaker.status_since,
        pause_cause: cause.into(),
        halt_reason: breaker.halt_reason.clone(),
        reference_price: breaker
            .reference_price
            .map(|p| p.to_string())
            .unwrap_or_default(),
        reference_height: breaker.reference_height,
        last_priced_height: breaker.last_priced_height,
        too_few_reporters: breaker.validity.too_few_reporters,
        last_move_ppm: ppm(what, breaker.last_move)?,
        stale: breaker.validity.stale,
        too_volatile: breaker.validity.too_volatile,
        open_interest_capped: breaker.open_interest_capped,
        venues_capped: breaker
            .venues_capped
            .iter()
            .map(|v| v.to_string())
            .collect(),
        margin_multiplier_ppm: ppm(what, multiplier)?,
    })
}

/// Decodes a market's breaker.
pub fn market_breaker_from_pb(
    value: pb::MarketBreaker,
) -> Result<(MarketId, MarketBreaker), DecodeError> {
    let what = "market breaker";
    let market = parse(what, &value.market)?;
    let reference_price = if value.reference_price.is_empty() {
        None
    } else {
        Some(parse(what, &value.reference_price)?)
    };
    let venues_capped = value
        .venues_capped
        .iter()
        .map(|v| parse(what, v))
        .collect::<Result<_, _>>()?;
    let breaker = MarketBreaker {
        params: market_params_from_pb(value.params.unwrap_or_default())?,
        status: status_from_pb(value.status, value.pause_cause)?,
        status_since: value.status_since,
        halt_reason: value.halt_reason,
        reference_price,
        reference_height: value.reference_height,
        last_priced_height: value.last_priced_height,
        last_move: ratio(value.last_move_ppm),
        validity: Validity {
            stale: value.stale,
            too_volatile: value.too_volatile,
            too_few_reporters: value.too_few_reporters,
        },
        open_interest_capped: value.open_interest_capped,
        venues_capped,
    };
    Ok((market, breaker))
}

fn cause_to_pb(cause: SystemCause) -> pb::SystemCause {
    match cause {
        SystemCause::FundDrawdown => pb::SystemCause::FundDrawdown,
        SystemCause::FundCoverage => pb::SystemCause::FundCoverage,
    }
}

/// Encodes the system breaker.
pub fn system_breaker_to_pb(system: &SystemBreaker) -> Result<pb::SystemBreaker, DecodeError> {
    let what = "system breaker";
    let params = &system.params;
    Ok(pb::SystemBreaker {
        params: Some(pb::SystemBreakerParams {
            fund_drawdown_max_ppm: ppm(what, params.fund_drawdown_max)?,
            fund_drawdown_window_blocks: params.fund_drawdown_window_blocks,
            coverage_stress_move_ppm: ppm(what, params.coverage_stress_move)?,
            tightened_margin_multiplier_ppm: ppm(what, params.tightened_margin_multiplier)?,
            fresh_price_blocks: params.fresh_price_blocks,
        }),
        tripped: system.tripped,
        tripped_since: system.tripped_since,
        causes: system
            .causes
            .iter()
            .map(|c| i32::from(cause_to_pb(*c)))
            .collect(),
        fund_history: system
            .fund_history
            .iter()
            .map(|(height, balance)| pb::FundSample {
                height: *height,
                balance: balance.to_string(),
            })
            .collect(),
        fund_high: system.fund_high.to_string(),
        fund_drawdown: system.fund_drawdown.to_string(),
        stress_loss_top_two: system.stress_loss_top_two.to_string(),
        coverage_ppm: system
            .coverage
            .map(|c| ppm(what, c.max(clearnode_num::Ratio::ZERO)))
            .transpose()?
            .unwrap_or(0),
        coverage_defined: system.coverage.is_some(),
    })
}

/// Decodes the system breaker.
pub fn system_breaker_from_pb(value: pb::SystemBreaker) -> Result<SystemBreaker, DecodeError> {
    let what = "system breaker";
    let params = value.params.unwrap_or_default();
    let mut causes = std::collections::BTreeSet::new();
    for cause in value.causes {
        causes.insert(
            match pb::SystemCause::try_from(cause).map_err(|e| bad(what, e))? {
                pb::SystemCause::FundDrawdown => SystemCause::FundDrawdown,
                pb::SystemCause::FundCoverage => SystemCause::FundCoverage,
                pb::SystemCause::Unspecified => return Err(bad(what, "unspecified cause")),
            },
        );
    }
    let fund_history = value
        .fund_history
        .iter()
        .map(|s| Ok((s.height, parse(what, &s.balance)?)))
        .collect::<Result<_, DecodeError>>()?;
    Ok(SystemBreaker {
        params: SystemBreakerParams {
            fund_drawdown_max: ratio(params.fund_drawdown_max_ppm),
            fund_drawdown_window_blocks: params.fund_drawdown_window_blocks,
            coverage_stress_move: ratio(params.coverage_stress_move_ppm),
            tightened_margin_multiplier: ratio(params.tightened_margin_multiplier_ppm),
            fresh_price_blocks: params.fresh_price_blocks,
        },
        tripped: value.tripped,
        tripped_since: value.tripped_since,
        causes,
        fund_history,
        fund_high: parse(what, &value.fund_high)?,
        fund_drawdown: parse(what, &value.fund_drawdown)?,
        stress_loss_top_two: parse(what, &value.stress_loss_top_two)?,
        coverage: value.coverage_defined.then(|| ratio(value.coverage_ppm)),
    })
}
