//! Every scenario, small: the engine's conservation checks hold every block
//! (a breach is an error), accounts without positions never pay, the crash
//! reaches the liquidation ladder, and the report is written.

#![allow(clippy::unwrap_used)]

use clearnode_sim::{run, Scenario, SimConfig};

#[test]
fn every_scenario_runs_and_no_bystander_pays() {
    let runs = Scenario::ALL
        .into_iter()
        .flat_map(|scenario| [(scenario, false), (scenario, true)]);
    for (scenario, breakers) in runs {
        let config = SimConfig {
            scenario,
            accounts: 150,
            seed: 7,
            breakers,
        };
        let mut steps = 0;
        let report =
            run(&config, &mut |done, _| steps = done).unwrap_or_else(|e| panic!("{scenario}: {e}"));
        assert_eq!(steps, scenario.blocks());
        assert_eq!(
            report.summary.bystanders_paid, 0,
            "{scenario}: a bystander paid"
        );
        if scenario == Scenario::Crash40 && breakers {
            // -40% in ten blocks crosses the 15% band: limit, then pause.
            let limited = report.blocks.iter().any(|b| b.markets_limited > 0);
            let paused = report.blocks.iter().any(|b| b.markets_paused > 0);
            assert!(limited && paused, "{}", report.summary_table());
        }
        if scenario == Scenario::Crash40 {
            assert!(
                report.takeovers() > 0,
                "the crash reached no liquidation: {}",
                report.summary_table()
            );
            assert!(
                report.bad_debt_realized().is_positive(),
                "the crash reached no backstop: {}",
                report.summary_table()
            );
        }
        // ADL never collects more than the shortfall the fund left.
        assert!(
            report.adl_collected() <= report.shortfall(),
            "{scenario}: {}",
            report.summary_table()
        );
        let dir = tempfile::tempdir().unwrap();
        report.write_to(dir.path()).unwrap();
        for file in [
            "report.md",
            "metrics.csv",
            "prices.svg",
            "equity.svg",
            "fund.svg",
            "liquidations.svg",
        ] {
            assert!(dir.path().join(file).exists(), "{file} missing");
        }
    }
}

#[test]
fn a_seed_reproduces_its_run() {
    let config = SimConfig {
        scenario: Scenario::FlashCrash,
        accounts: 80,
        seed: 11,
        breakers: true,
    };
    let first = run(&config, &mut |_, _| {}).unwrap();
    let second = run(&config, &mut |_, _| {}).unwrap();
    assert_eq!(first.blocks, second.blocks);
}
