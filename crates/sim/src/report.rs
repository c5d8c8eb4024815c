//! What a simulation measured, per block and in sum, and how it is written:
//! `report.md` (the table), `metrics.csv`, and SVG charts.

use std::path::Path;

use clearnode_engine::margin::Health;
use clearnode_engine::state::State;
use clearnode_engine::PriceUpdate;
use clearnode_num::Money;

use crate::chart::{line_chart, Series};
use crate::run::SimConfig;

/// One block's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMetrics {
    /// Step of the scenario.
    pub step: u32,
    /// Mark prices (raw, 9 decimals), in market order.
    pub prices: Vec<i128>,
    /// Sum of all accounts' equity.
    pub total_equity: Money,
    /// Sum of negative equity still open: losses no collateral covers that
    /// the backstop has not resolved yet.
    pub bad_debt: Money,
    /// The insurance fund's balance.
    pub fund_balance: Money,
    /// Bad debt the fund paid, since the start.
    pub fund_payouts: Money,
    /// Bad debt collected by auto-deleveraging, since the start.
    pub adl_collected: Money,
    /// Bad debt neither the fund nor ADL covered, since the start.
    pub bad_debt_unresolved: Money,
    /// Liquidation orders open after the block.
    pub open_orders: usize,
    /// Takeovers this block.
    pub takeovers: usize,
    /// Notional taken over this block.
    pub taken_notional: Money,
    /// Accounts in margin call, liquidation, bankruptcy.
    pub margin_call: u64,
    /// Accounts under maintenance.
    pub liquidating: u64,
    /// Accounts with negative equity.
    pub bankrupt: u64,
    /// Collateral withdrawn by the scenario's protagonist this block.
    pub withdrawn: Money,
    /// Markets paused (or halted) after the block.
    pub markets_paused: usize,
    /// Markets in their limit state (reduce-only) after the block.
    pub markets_limited: usize,
    /// The system breaker holds after the block.
    pub system_tripped: bool,
}

impl BlockMetrics {
    pub(crate) fn observe(
        state: &State,
        step: u32,
        prices: &[PriceUpdate],
        takeovers: usize,
        taken_notional: Money,
        withdrawn: Money,
    ) -> Self {
        let mut total_equity = Money::ZERO;
        let mut bad_debt = Money::ZERO;
        let (mut margin_call, mut liquidating, mut bankrupt) = (0, 0, 0);
        // The backstop's book is the fund's, shown by the fund's figures.
        let accounts = state
            .accounts
            .iter()
            .filter(|(address, _)| **address != clearnode_engine::BACKSTOP)
            .map(|(_, account)| account);
        for account in accounts {
            let equity = account.risk.equity;
            total_equity = total_equity.checked_add(equity).unwrap_or(total_equity);
            if equity.is_negative() {
                bad_debt = bad_debt.checked_sub(equity).unwrap_or(bad_debt);
            }
            match account.risk.health {
                Health::Healthy => {}
                Health::MarginCall => margin_call += 1,
                Health::Liquidating => liquidating += 1,
                Health::Bankrupt => bankrupt += 1,
            }
        }
        Self {
            step,
            prices: prices.iter().map(|p| p.price.raw()).collect(),
            total_equity,
            bad_debt,
            fund_balance: state.insurance_fund.balance,
            fund_payouts: state.insurance_fund.payouts,
            adl_collected: state.insurance_fund.adl_collected,
            bad_debt_unresolved: state.insurance_fund.bad_debt_unresolved,
            open_orders: state.liquidation_orders.len(),
            takeovers,
            taken_notional,
            margin_call,
            liquidating,
            bankrupt,
            withdrawn,
            markets_paused: state
                .breakers
                .markets
                .values()
                .filter(|b| b.is_paused())
                .count(),
            markets_limited: state
                .breakers
                .markets
                .values()
                .filter(|b| b.status == clearnode_engine::breakers::MarketStatus::Limit)
                .count(),
            system_tripped: state.breakers.system.tripped,
        }
    }
}

/// The figures a risk officer reads first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The insurance fund at the start.
    pub fund_start: Money,
    /// Accounts with no position whose collateral or settled PnL changed: must be zero.
    pub bystanders_paid: usize,
}

impl Summary {
    pub(crate) fn new(fund_start: Money, bystanders_paid: usize) -> Self {
        Self {
            fund_start,
            bystanders_paid,
        }
    }
}

/// A finished simulation.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// What was run.
    pub config: SimConfig,
    /// Per block.
    pub blocks: Vec<BlockMetrics>,
    /// In sum.
    pub summary: Summary,
}

fn sum(values: impl Iterator<Item = Money>) -> Money {
    values.fold(Money::ZERO, |total, v| {
        total.checked_add(v).unwrap_or(total)
    })
}

impl SimReport {
    pub(crate) fn new(config: &SimConfig, blocks: Vec<BlockMetrics>, summary: Summary) -> Self {
        Self {
            config: config.clone(),
            blocks,
            summary,
        }
    }

    /// Largest bad debt seen in any block.
    pub fn bad_debt_max(&self) -> Money {
        self.blocks
            .iter()
            .map(|b| b.bad_debt)
            .max()
            .unwrap_or_default()
    }

    /// Bad debt left open at the end.
    pub fn bad_debt_final(&self) -> Money {
        self.blocks.last().map(|b| b.bad_debt).unwrap_or_default()
    }

    fn last(&self, f: fn(&BlockMetrics) -> Money) -> Money {
        self.blocks.last().map(f).unwrap_or_default()
    }

    /// Bad debt the fund paid over the run.
    pub fn fund_payouts(&self) -> Money {
        self.last(|b| b.fund_payouts)
    }

    /// Bad debt ADL collected over the run.
    pub fn adl_collected(&self) -> Money {
        self.last(|b| b.adl_collected)
    }

    /// The exact shortfall: bad debt the fund did not pay.
    pub fn shortfall(&self) -> Money {
        self.adl_collected()
            .checked_add(self.last(|b| b.bad_debt_unresolved))
            .unwrap_or_default()
    }

    /// Bad debt realized at the backstop over the run (fund + ADL + unresolved).
    pub fn bad_debt_realized(&self) -> Money {
        self.fund_payouts()
            .checked_add(self.shortfall())
            .unwrap_or_default()
    }

    /// How far the fund fell below its start, at worst.
    pub fn fund_drawdown(&self) -> Money {
        let lowest = self
            .blocks
            .iter()
            .map(|b| b.fund_balance)
            .min()
            .unwrap_or(self.summary.fund_start);
        self.summary
            .fund_start
            .checked_sub(lowest)
            .unwrap_or_default()
            .max(Money::ZERO)
    }

    /// Takeovers over the run.
    pub fn takeovers(&self) -> usize {
        self.blocks.iter().map(|b| b.takeovers).sum()
    }

    /// Notional taken over by liquidators over the run.
    pub fn taken_notional(&self) -> Money {
        sum(self.blocks.iter().map(|b| b.taken_notional))
    }

    /// The headline table (markdown).
    pub fn summary_table(&self) -> String {
        let fund_end = self
            .blocks
            .last()
            .map_or(self.summary.fund_start, |b| b.fund_balance);
        let rows = [
            (
                "scenario",
                format!(
                    "{} ({})",
                    self.config.scenario,
                    self.config.scenario.description()
                ),
            ),
            (
                "seed, traders, blocks",
                format!(
                    "{}, {}, {}",
                    self.config.seed,
                    self.config.accounts,
                    self.blocks.len()
                ),
            ),
            (
                "bad debt realized at the backstop (USD)",
                self.bad_debt_realized().to_string(),
            ),
            (
                "bad debt paid by the insurance fund (USD)",
                self.fund_payouts().to_string(),
            ),
            (
                "open bad debt, worst block -> end (USD)",
                format!("{} -> {}", self.bad_debt_max(), self.bad_debt_final()),
            ),
            (
                "insurance fund start -> end (USD)",
                format!("{} -> {}", self.summary.fund_start, fund_end),
            ),
            (
                "insurance fund drawdown (USD)",
                self.fund_drawdown().to_string(),
            ),
            ("takeovers by liquidators", self.takeovers().to_string()),
            (
                "blocks with a market limited / paused / system breaker tripped",
                format!(
                    "{} / {} / {}",
                    self.blocks.iter().filter(|b| b.markets_limited > 0).count(),
                    self.blocks.iter().filter(|b| b.markets_paused > 0).count(),
                    self.blocks.iter().filter(|b| b.system_tripped).count()
                ),
            ),
            (
                "notional taken over (USD)",
                self.taken_notional().to_string(),
            ),
            (
                "ADL volume vs exact shortfall (USD)",
                format!("{} vs {}", self.adl_collected(), self.shortfall()),
            ),
            (
                "unresolved: no profitable opposite position left (USD)",
                self.shortfall()
                    .checked_sub(self.adl_collected())
                    .unwrap_or_default()
                    .to_string(),
            ),
            (
                "accounts with no position that paid",
                self.summary.bystanders_paid.to_string(),
            ),
        ];
        let mut table = String::from("| figure | value |\n|---|---|\n");
        for (figure, value) in rows {
            table.push_str(&format!("| {figure} | {value} |\n"));
        }
        table
    }

    /// Writes report.md, metrics.csv and the charts into `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut md = format!(
            "# Simulation: {}\n\n{}\n",
            self.config.scenario,
            self.summary_table()
        );
        md.push_str("\n![prices](prices.svg)\n![equity and bad debt](equity.svg)\n![insurance fund](fund.svg)\n![liquidations](liquidations.svg)\n\n");
        md.push_str("| step | total equity | open bad debt | fund | fund paid | ADL collected | open orders | takeovers | taken notional | margin call | liquidating | bankrupt |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let mut csv = String::from("step,total_equity,bad_debt,fund_balance,fund_payouts,adl_collected,bad_debt_unresolved,open_orders,takeovers,taken_notional,margin_call,liquidating,bankrupt,withdrawn\n");
        for b in &self.blocks {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                b.step,
                b.total_equity,
                b.bad_debt,
                b.fund_balance,
                b.fund_payouts,
                b.adl_collected,
                b.open_orders,
                b.takeovers,
                b.taken_notional,
                b.margin_call,
                b.liquidating,
                b.bankrupt
            ));
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                b.step,
                b.total_equity,
                b.bad_debt,
                b.fund_balance,
                b.fund_payouts,
                b.adl_collected,
                b.bad_debt_unresolved,
                b.open_orders,
                b.takeovers,
                b.taken_notional,
                b.margin_call,
                b.liquidating,
                b.bankrupt,
                b.withdrawn
            ));
        }
        std::fs::write(dir.join("report.md"), md)?;
        std::fs::write(dir.join("metrics.csv"), csv)?;
        let money = |f: fn(&BlockMetrics) -> Money| {
            self.blocks.iter().map(|b| f(b).raw()).collect::<Vec<_>>()
        };
        let count = |f: fn(&BlockMetrics) -> i128| self.blocks.iter().map(f).collect::<Vec<_>>();
        let markets: Vec<Series> = crate::world::MARKETS
            .iter()
            .enumerate()
            .map(|(i, (name, ..))| Series {
                name: format!("{name} (% of start)"),
                values: self
                    .blocks
                    .iter()
                    .map(|b| {
                        b.prices.get(i).copied().unwrap_or(0) * 100
                            / self.blocks[0].prices.get(i).copied().unwrap_or(1).max(1)
                    })
                    .collect(),
            })
            .collect();
        std::fs::write(
            dir.join("prices.svg"),
            line_chart("Mark prices, % of start", &markets),
        )?;
        let equity = [
            Series {
                name: "total equity (USD)".into(),
                values: scale(money(|b| b.total_equity)),
            },
            Series {
                name: "bad debt (USD)".into(),
                values: scale(money(|b| b.bad_debt)),
            },
        ];
        std::fs::write(
            dir.join("equity.svg"),
            line_chart("Equity and bad debt (USD)", &equity),
        )?;
        let fund = [
            Series {
                name: "insurance fund (USD)".into(),
                values: scale(money(|b| b.fund_balance)),
            },
            Series {
                name: "bad debt paid by the fund, cumulative (USD)".into(),
                values: scale(money(|b| b.fund_payouts)),
            },
            Series {
                name: "ADL volume, cumulative (USD)".into(),
                values: scale(money(|b| b.adl_collected)),
            },
        ];
        std::fs::write(
            dir.join("fund.svg"),
            line_chart("Insurance fund, bad debt paid and ADL volume (USD)", &fund),
        )?;
        let liquidations = [
            Series {
                name: "takeovers".into(),
                values: count(|b| b.takeovers as i128),
            },
            Series {
                name: "open liquidation orders".into(),
                values: count(|b| b.open_orders as i128),
            },
            Series {
                name: "accounts under maintenance".into(),
                values: count(|b| i128::from(b.liquidating + b.bankrupt)),
            },
        ];
        std::fs::write(
            dir.join("liquidations.svg"),
            line_chart("Liquidations per block", &liquidations),
        )
    }
}

/// Raw micro-USD to whole USD for charts.
fn scale(values: Vec<i128>) -> Vec<i128> {
    values.into_iter().map(|v| v / 1_000_000).collect()
}
