//! Open interest and the market and system aggregates: walks over every
//! account, never running totals.

use std::collections::{BTreeMap, BTreeSet};

use clearnode_proto::state::v1 as pb;
use clearnode_types::Address;

use super::fixed::{divide, Round, PPM};
use super::{AccountModel, Model};

/// Holders by exposure, smallest first (zero exposures left out).
pub type Ranked = BTreeSet<(i128, Address)>;

impl Model {
    /// Per market totals: a walk over every account.
    pub fn market_totals(&self) -> BTreeMap<String, MarketTotals> {
        let mut totals: BTreeMap<String, MarketTotals> = self
            .markets
            .keys()
            .map(|id| (id.clone(), MarketTotals::default()))
            .collect();
        for account in self.accounts.values() {
            let mut net: BTreeMap<&String, i128> = BTreeMap::new();
            for ((market, venue), position) in &account.positions {
                let market_totals = totals.get_mut(market).expect("listed market");
                let venue_totals = market_totals.venues.entry(venue.clone()).or_default();
                if position.size > 0 {
                    market_totals.long += position.size;
                    venue_totals.0 += position.size;
                } else {
                    market_totals.short -= position.size;
                    venue_totals.1 -= position.size;
                }
                *net.entry(market).or_default() += position.size;
            }
            for (market, net) in net {
                let market_totals = totals.get_mut(market).expect("listed market");
                market_totals.accounts_with_position += 1;
                if net > 0 {
                    market_totals.net_long += net;
                } else {
                    market_totals.net_short -= net;
                }
            }
        }
        totals
    }

    /// System totals from the end-of-block risks.
    pub fn system_totals(&self) -> SystemTotals {
        // The backstop's book is the fund's: no account, no health.
        let risks = || {
            self.risks
                .iter()
                .filter(|(address, _)| **address != super::BACKSTOP)
                .map(|(_, risk)| risk)
        };
        let mut system = SystemTotals {
            accounts: risks().count() as u64,
            ..SystemTotals::default()
        };
        for risk in risks() {
            system.equity_positive += risk.equity.max(0);
            system.health[risk.health as usize] += 1;
        }
        system
    }
}

impl Model {
    /// Per market, every account's |net size across venues| in millionths
    /// of a unit (the backstop's book too): a walk over every account.
    pub fn market_holders(&self) -> BTreeMap<String, Ranked> {
        let mut holders: BTreeMap<String, Ranked> = self
            .markets
            .keys()
            .map(|id| (id.clone(), Ranked::new()))
            .collect();
        for (address, account) in &self.accounts {
            let mut net: BTreeMap<&String, i128> = BTreeMap::new();
            for ((market, _venue), position) in &account.positions {
                *net.entry(market).or_default() += position.size;
            }
            for (market, net) in net {
                let exposure = net.abs() / 1_000;
                if exposure > 0 {
                    let ranked = holders.get_mut(market).expect("listed market");
                    ranked.insert((exposure, *address));
                }
            }
        }
        holders
    }

    /// Every account's net notional across markets in cents (the book too).
    pub fn system_holders(&self) -> Ranked {
        self.risks
            .iter()
            .map(|(address, risk)| (risk.net_notional / 10_000, *address))
            .filter(|(exposure, _)| *exposure > 0)
            .collect()
    }
}

/// Top 1/5/10 shares and the HHI of some holders, straight from the
/// definition (ppm, rounded up).
pub fn concentration(ranked: &Ranked) -> pb::Concentration {
    let total: i128 = ranked.iter().map(|(exposure, _)| exposure).sum();
    let share = |count: usize| {
        let top: i128 = ranked.iter().rev().take(count).map(|(e, _)| e).sum();
        if total == 0 {
            0
        } else {
            divide(top * PPM, total, Round::Up)
        }
    };
    let squares: i128 = ranked.iter().map(|(e, _)| e * e).sum();
    let hhi = if total == 0 {
        0
    } else {
        divide(squares * PPM, total * total, Round::Up)
    };
    let ppm = |value: i128| u64::try_from(value).expect("a share");
    pb::Concentration {
        top1_share_ppm: ppm(share(1)),
        top5_share_ppm: ppm(share(5)),
        top10_share_ppm: ppm(share(10)),
        hhi_ppm: ppm(hhi),
        holders: ranked.len() as u64,
    }
}

/// Long and short open interest (sizes) per market of some accounts.
pub(super) fn open_interest_of<'a>(
    accounts: impl Iterator<Item = &'a AccountModel>,
) -> BTreeMap<String, (i128, i128)> {
    let mut open_interest: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for account in accounts {
        for ((market, _venue), position) in &account.positions {
            let (long, short) = open_interest.entry(market.clone()).or_default();
            if position.size > 0 {
                *long += position.size;
            } else {
                *short -= position.size;
            }
        }
    }
    open_interest
}

/// Totals of one market.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarketTotals {
    pub long: i128,
    pub short: i128,
    pub net_long: i128,
    pub net_short: i128,
    /// (long, short) per venue with a position.
    pub venues: BTreeMap<String, (i128, i128)>,
    pub accounts_with_position: u64,
}

/// System-wide totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemTotals {
    pub equity_positive: i128,
    /// Accounts per health state, in [`super::margin::Health`] order.
    pub health: [u64; 4],
    pub accounts: u64,
}
