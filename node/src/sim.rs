//! `clearnode sim`: plays stress scenarios through the engine and writes a
//! report (table, CSV, SVG charts) per scenario.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use clearnode_sim::{run as run_scenario, Scenario, SimConfig};

/// Arguments of `sim`.
#[derive(Args)]
pub struct SimArgs {
    /// Scenario: crash-40, flash-crash, whale, thin-pump, or all.
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Trader accounts.
    #[arg(long, default_value_t = 2_000)]
    pub accounts: u32,
    /// Seed of every random choice (a run is reproducible from it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run with the devnet's circuit breakers (bands, validity, system breaker).
    #[arg(long)]
    pub breakers: bool,
    /// Where the reports go (one directory per scenario).
    #[arg(long, default_value = "sim-report")]
    pub out: PathBuf,
}

/// Runs the chosen scenarios.
pub fn run(args: SimArgs) -> Result<()> {
    let scenarios: Vec<Scenario> = if args.scenario == "all" {
        Scenario::ALL.to_vec()
    } else {
        vec![args.scenario.parse().map_err(anyhow::Error::msg)?]
    };
    for scenario in scenarios {
        let config = SimConfig {
            scenario,
            accounts: args.accounts,
            seed: args.seed,
            breakers: args.breakers,
        };
        let mut progress = |done: u32, total: u32| {
            let width = 30;
            let filled = (done * width / total.max(1)) as usize;
            let bar = format!(
                "{}{}",
                "#".repeat(filled),
                "-".repeat(width as usize - filled)
            );
            eprint!("\r{scenario:<12} [{bar}] {done}/{total} blocks");
            let _ = std::io::stderr().flush();
        };
        let report =
            run_scenario(&config, &mut progress).with_context(|| format!("scenario {scenario}"))?;
        eprintln!();
        let dir = args.out.join(scenario.name());
        report
            .write_to(&dir)
            .with_context(|| format!("writing {}", dir.display()))?;
        println!(
            "{}\nreport: {}\n",
            report.summary_table(),
            dir.join("report.md").display()
        );
    }
    Ok(())
}
