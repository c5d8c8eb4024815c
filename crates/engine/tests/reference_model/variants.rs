//! The genesis documents the seeds run against: the test kit's static
//! margin, and dynamic margin (volatility scaling, size tiers, phase-in)
//! with a ladder that takes two accounts per block, an insurance fund that
//! may pay little (so auto-deleveraging runs) and a tight ADL profit share,
//! with and without open interest caps.

use clearnode_engine::testkit;
use clearnode_types::genesis::{Genesis, GenesisSizeTier};

/// A genesis to run against, chosen by the seed.
pub struct Variant {
    pub name: &'static str,
    pub genesis: Genesis,
}

/// Static margin; dynamic margin with a tight ladder; and the same with
/// open interest caps.
pub fn variant_for(seed: u64) -> Variant {
    match seed % 3 {
        0 => Variant {
            name: "static margin",
            genesis: testkit::genesis(),
        },
        1 => Variant {
            name: "dynamic margin, tiers and a tight ladder",
            genesis: dynamic_genesis(),
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
