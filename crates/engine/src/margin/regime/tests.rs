use proptest::prelude::*;

use super::*;

fn money(units: i64) -> Money {
    Money::from_units(units)
}

fn tiers() -> Vec<SizeTier> {
    size_tiers(
        Ratio::from_ppm(50_000),
        &[
            (money(1_000_000), Ratio::from_ppm(100_000)),
            (money(5_000_000), Ratio::from_ppm(200_000)),
        ],
    )
    .expect("tiers")
}

#[test]
fn the_tiered_requirement_is_continuous_at_every_floor() {
    let base = Ratio::from_ppm(50_000);
    let tiers = tiers();
    for floor in [1_000_000, 5_000_000] {
        let below = tiered_requirement(Money::from_raw(money(floor).raw() - 1), base, &tiers)
            .expect("fits");
        let at = tiered_requirement(money(floor), base, &tiers).expect("fits");
        let step = at.checked_sub(below).expect("fits");
        assert!(step.raw() <= 1, "jump of {step} at {floor}");
    }
    // 2,000,000: 1,000,000 at 5% + 1,000,000 at 10%.
    assert_eq!(
        tiered_requirement(money(2_000_000), base, &tiers).expect("fits"),
        money(150_000)
    );
}

#[test]
fn isqrt_is_exact_on_squares_and_floors_between() {
    for n in [0u128, 1, 2, 3, 4, 15, 16, 17, 1 << 40, u128::MAX] {
        let r = isqrt(n);
        assert!(r * r <= n);
        assert!((r + 1).checked_mul(r + 1).is_none_or(|s| s > n));
    }
}

#[test]
fn open_interest_scales_linearly_between_the_caps() {
    let inputs = |oi: i64| TargetInputs {
        base: Ratio::from_ppm(50_000),
        open_interest: money(oi),
        open_interest_lower_cap: money(1_000),
        open_interest_upper_cap: money(2_000),
        volatility_ppm: 0,
        volatility_reference_ppm: 5_000,
    };
    let target = |oi| target_fraction(&inputs(oi)).expect("fits");
    assert_eq!(target(500), Ratio::from_ppm(50_000));
    assert_eq!(target(1_500), Ratio::from_ppm(525_000));
    assert_eq!(target(2_500), Ratio::ONE);
}

#[test]
fn volatility_above_the_reference_scales_the_fraction() {
    let mut variance = 0;
    for _ in 0..200 {
        // Alternating 2% moves: realized volatility converges to 20,000 ppm.
        variance =
            variance_after(variance, 100_000, 102_000, Ratio::from_ppm(940_000)).expect("fits");
    }
    let volatility = volatility_ppm(variance);
    assert!((19_900..=20_100).contains(&volatility), "{volatility}");
    let target = target_fraction(&TargetInputs {
        base: Ratio::from_ppm(50_000),
        open_interest: Money::ZERO,
        open_interest_lower_cap: Money::ZERO,
        open_interest_upper_cap: Money::ZERO,
        volatility_ppm: volatility,
        volatility_reference_ppm: 5_000,
    })
    .expect("fits");
    assert!(
        target >= Ratio::from_ppm(199_000) && target <= Ratio::from_ppm(201_000),
        "{target}"
    );
}

#[test]
fn a_rise_phases_in_over_the_configured_blocks_and_a_fall_is_immediate() {
    let start = MarketMargin {
        target: Ratio::from_ppm(50_000),
        current: Ratio::from_ppm(50_000),
        phase_target: Ratio::from_ppm(50_000),
        ..MarketMargin::default()
    };
    let target = Ratio::from_ppm(150_000);
    let mut margin = start;
    let mut path = Vec::new();
    for _ in 0..12 {
        margin = phase_in(&margin, target, 10, Ratio::from_ppm(1_000_000)).expect("fits");
        path.push(margin.current.ppm());
    }
    assert_eq!(path[0], 60_000, "one tenth of the gap per block");
    assert_eq!(path[9], 150_000, "reached after ten blocks");
    assert_eq!(path[11], 150_000);
    let capped = phase_in(&start, target, 10, Ratio::from_ppm(2_000)).expect("fits");
    assert_eq!(
        capped.current.ppm(),
        52_000,
        "never faster than the per-block cap"
    );
    let fallen =
        phase_in(&margin, Ratio::from_ppm(50_000), 10, Ratio::from_ppm(2_000)).expect("fits");
    assert_eq!(fallen.current.ppm(), 50_000);
}

proptest! {
    /// The requirement never decreases with size and is at least the base.
    #[test]
    fn the_tiered_requirement_is_monotone(a in 0i64..10_000_000, b in 0i64..10_000_000) {
        let base = Ratio::from_ppm(50_000);
        let tiers = tiers();
        let (small, large) = (a.min(b), a.max(b));
        let r_small = tiered_requirement(money(small), base, &tiers).expect("fits");
        let r_large = tiered_requirement(money(large), base, &tiers).expect("fits");
        prop_assert!(r_small <= r_large);
        prop_assert!(r_large >= money(large).mul_ratio(base, Rounding::Ceil).expect("fits"));
    }

    /// Phasing in never overshoots, never moves faster than the cap, and
    /// always ends at the target.
    #[test]
    fn phase_in_is_bounded(current in 10_000i64..1_000_000, target in 10_000i64..1_000_000, blocks in 1u32..50, cap in 1_000i64..100_000) {
        let mut margin = MarketMargin {
            target: Ratio::from_ppm(current),
            current: Ratio::from_ppm(current),
            phase_target: Ratio::from_ppm(current),
            ..MarketMargin::default()
        };
        let target = Ratio::from_ppm(target);
        // At least 1,000 ppm a block: any gap below 100% closes within 1,000 blocks.
        for _ in 0..1_100 {
            let next = phase_in(&margin, target, blocks, Ratio::from_ppm(cap)).expect("fits");
            prop_assert!(next.current <= target.max(margin.current));
            if next.current > margin.current {
                prop_assert!(next.current.ppm() - margin.current.ppm() <= i128::from(cap));
            }
            margin = next;
        }
        prop_assert_eq!(margin.current, target);
    }
}
