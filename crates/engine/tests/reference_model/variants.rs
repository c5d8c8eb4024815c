//! The genesis documents the seeds run against: the test kit's static
//! margin, and dynamic margin (volatility scaling, size tiers, phase-in)
//! with a ladder that takes two accounts per block, an insurance fund that
//! may pay little (so auto-deleveraging runs) and a tight ADL profit share,
//! with and without open interest caps.

use clearnode_engine::testkit;
use clearnode_types::genesis::{
    Genesis, GenesisMarketBreaker, GenesisSizeTier, GenesisSystemBreaker,
};

/// A genesis to run against, chosen by the seed.
pub struct Variant {
    pub name: &'static str,
    pub genesis: Genesis,
}

/// Static margin; dynamic margin with a tight ladder; the same with open
/// interest caps; and dynamic margin with tight circuit breakers.
pub fn variant_for(seed: u64) -> Variant {
    match seed % 4 {
        0 => Variant {
            name: "static margin",
            genesis: testkit::genesis(),
        },
        1 => Variant {
            name: "dynamic margin, tiers and a tight ladder",
            genesis: dynamic_genesis(),
        },
        3 => Variant {
            name: "dynamic margin with tight circuit breakers",
            genesis: breakers_genesis(),
        },
        _ => {
            let mut genesis = dynamic_genesis();
            let caps = [("300000", "3000000"), ("100000", "1000000")];
            for (market, (lower, upper)) in genesis.markets.iter_mut().zip(caps) {
                market.open_interest_lower_cap = lower.parse().expect("money");
                market.open_interest_upper_cap = upper.parse().expect("money");
            }
            Variant {
                name: "dynamic margin with open interest caps",
                genesis,
            }
        }
    }
}

fn dynamic_genesis() -> Genesis {
    let mut genesis = testkit::genesis();
    let tiers = [
        // Floors off round numbers, so the deductions round.
        [("100000.123457", 70_001), ("400000.000003", 100_003)],
        [("50000.999999", 150_007), ("200000.5", 250_011)],
    ];
    // The fund pays a little of BTC's bad debt per block and none of ETH's.
    let payout_caps = ["2500.5", "0"];
    for ((market, tiers), cap) in genesis.markets.iter_mut().zip(tiers).zip(payout_caps) {
        market.insurance_payout_per_block_max = cap.parse().expect("money");
        market.volatility_reference_ppm = 15_000;
        market.margin_phase_in_blocks = 5;
        market.margin_rise_per_block_max_ppm = 15_000;
        market.size_tiers = tiers
            .iter()
            .map(|(floor, fraction)| GenesisSizeTier {
                notional_floor: floor.parse().expect("money"),
                initial_margin_ppm: *fraction,
            })
            .collect();
    }
    let ladder = &mut genesis.params.liquidation;
    ladder.accounts_per_block_max = 2;
    ladder.min_notional = "5000".parse().expect("money");
    ladder.deadline_blocks = 4;
    ladder.adl_profit_share_max_ppm = 300_000;
    genesis.params.report_entries_max = 2;
    genesis
}

/// Breakers tight enough to trip often in 100 blocks: 6% bands, two blocks
/// of limit, two of pause, a three-block reopen at 1.5x margin, the
/// reference reset every 4 blocks, stale after 3 blocks without a price,
/// too volatile above a 4% move, caps that bind; a small fund, so that its
/// drawdown (2% over 10 blocks) and its coverage of a 50% stress trip.
fn breakers_genesis() -> Genesis {
    let mut genesis = dynamic_genesis();
    let caps = [("1500000", "700000"), ("600000", "300000")];
    for (market, (cap, venue_cap)) in genesis.markets.iter_mut().zip(caps) {
        market.breaker = GenesisMarketBreaker {
            price_band_ppm: 60_000,
            limit_blocks: 2,
            pause_blocks: 2,
            reopen_blocks: 3,
            reopen_margin_multiplier_ppm: 1_500_000,
            reference_window_blocks: 4,
            open_interest_cap: cap.parse().expect("money"),
            venue_open_interest_cap: venue_cap.parse().expect("money"),
            stale_after_blocks: 3,
            volatile_move_ppm: 40_000,
        };
    }
    genesis.params.insurance_fund_initial = "300000".parse().expect("money");
    genesis.params.system_breaker = GenesisSystemBreaker {
        fund_drawdown_max_ppm: 20_000,
        fund_drawdown_window_blocks: 10,
        coverage_stress_move_ppm: 500_000,
        tightened_margin_multiplier_ppm: 1_250_000,
        fresh_price_blocks: 2,
    };
    genesis
}
