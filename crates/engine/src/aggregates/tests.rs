use std::collections::BTreeMap;

use clearnode_num::{Money, Quantity};
use clearnode_types::{AssetId, MarketId};

use super::*;
use crate::margin::Health;
use crate::small_map::SmallMap;
use crate::state::{Account, Indexes, MarketTotals, SystemTotals};

fn address(byte: u8) -> Address {
    Address::from_slice(&[byte; 20]).expect("20 bytes")
}

#[test]
fn concentration_follows_holders_in_and_out() {
    let mut holdings = Holdings::default();
    for (byte, exposure) in [(1, 40), (2, 30), (3, 20), (4, 10)] {
        holdings
            .apply(exposure, address(byte), Direction::Add)
            .expect("fits");
    }
    assert_eq!(holdings.top_share_ppm(1), Ok(400_000));
    assert_eq!(holdings.top_share_ppm(5), Ok(1_000_000));
    // 0.4^2 + 0.3^2 + 0.2^2 + 0.1^2
    assert_eq!(holdings.hhi_ppm(), Ok(300_000));
    let before = holdings.clone();
    holdings
        .apply(70, address(5), Direction::Add)
        .expect("fits");
    assert_eq!(holdings.top_share_ppm(1), Ok(411_765)); // 70 / 170, rounded up
    holdings
        .apply(70, address(5), Direction::Remove)
        .expect("fits");
    assert_eq!(holdings, before);
    for (byte, exposure) in [(1, 40), (2, 30), (3, 20), (4, 10)] {
        holdings
            .apply(exposure, address(byte), Direction::Remove)
            .expect("fits");
    }
    assert_eq!(holdings, Holdings::default());
    assert_eq!(
        (holdings.top_share_ppm(1), holdings.hhi_ppm()),
        (Ok(0), Ok(0))
    );
}

#[test]
fn shares_round_up_and_zero_exposures_are_not_holders() {
    let mut holdings = Holdings::default();
    for byte in 1..=3 {
        holdings
            .apply(7, address(byte), Direction::Add)
            .expect("fits");
    }
    holdings.apply(0, address(9), Direction::Add).expect("fits");
    assert_eq!(holdings.ranked.len(), 3);
    assert_eq!(holdings.top_share_ppm(1), Ok(333_334));
    assert_eq!(holdings.hhi_ppm(), Ok(333_334));
}

#[test]
fn the_hhi_needs_no_room_for_the_total_squared() {
    // A total of 1.5 x 10^19: its square does not fit in i128.
    let mut holdings = Holdings::default();
    let big = 10_000_000_000_000_000_000i128;
    holdings
        .apply(big, address(1), Direction::Add)
        .expect("fits");
    holdings
        .apply(big / 2, address(2), Direction::Add)
        .expect("fits");
    // (1 + 0.25) / 1.5^2 = 0.5555...
    assert_eq!(holdings.hhi_ppm(), Ok(555_556));
}

/// The parts of the state the aggregates maintain.
#[derive(Debug, Default, PartialEq, Eq)]
struct Aggregates {
    markets: BTreeMap<MarketId, MarketTotals>,
    system: SystemTotals,
    indexes: Indexes,
}

impl Aggregates {
    /// Every market listed (as genesis lists them), nothing held.
    fn listed() -> Self {
        let mut aggregates = Self::default();
        for market in ["BTC-PERP", "ETH-PERP"] {
            let id: MarketId = market.parse().expect("id");
            aggregates.markets.insert(id, MarketTotals::default());
        }
        aggregates
    }

    fn contributions(&mut self) -> Contributions<'_> {
        Contributions {
            markets: &mut self.markets,
            system: &mut self.system,
            indexes: &mut self.indexes,
            stress_move: clearnode_num::Ratio::from_ppm(250_000),
        }
    }

    /// From scratch: every account's contribution added.
    fn of(accounts: &BTreeMap<Address, Account>) -> Self {
        let mut aggregates = Self::listed();
        for (address, account) in accounts {
            apply_contribution(
                aggregates.contributions(),
                *address,
                account,
                Direction::Add,
            )
            .expect("fits");
        }
        aggregates
    }
}

/// An account from generated parts: collateral assets, positions
/// ((market, venue) number, size in units) and risk figures.
fn account(
    owner: Option<Address>,
    assets: &[bool],
    positions: &BTreeMap<u8, i64>,
    (equity, maintenance, notional, health): (i64, i64, i64, u8),
) -> Account {
    let mut account = Account::default();
    for (asset, held) in ["USDC", "ETH"].iter().zip(assets) {
        if *held {
            let id: AssetId = asset.parse().expect("id");
            account.collateral.insert(id, Quantity::from_units(7));
        }
    }
    for (number, size) in positions {
        let market = if number % 2 == 0 {
            "BTC-PERP"
        } else {
            "ETH-PERP"
        };
        let venue = ["venue-a", "venue-b", "venue-c"][usize::from(number / 2 % 3)];
        let key = (market.parse().expect("id"), venue.parse().expect("id"));
        let position = crate::state::Position {
            size: Quantity::from_units(*size),
            entry_price: clearnode_num::Price::from_units(100).expect("positive"),
            updated_height: 1,
        };
        account.positions.insert(key, position);
    }
    account.risk.equity = Money::from_units(equity);
    account.risk.maintenance = Money::from_units(maintenance);
    account.risk.net_notional = Money::from_units(notional);
    account.risk.health = [
        Health::Healthy,
        Health::MarginCall,
        Health::Liquidating,
        Health::Bankrupt,
    ][usize::from(health % 4)];
    // The backstop's isolated book, or an isolated sub-account.
    account.isolated = owner.map(|owner| (owner, "BTC-PERP".parse().expect("id")));
    account
}

type Parts = (Vec<bool>, BTreeMap<u8, i64>, (i64, i64, i64, u8));

fn parts() -> impl proptest::strategy::Strategy<Value = Parts> {
    use proptest::prelude::*;
    let size = prop_oneof![-5i64..=-1, 1i64..=5];
    (
        proptest::collection::vec(any::<bool>(), 2),
        proptest::collection::btree_map(0u8..6, size, 0..5),
        (-500i64..2_000, 0i64..600, 0i64..20_000, any::<u8>()),
    )
}

/// Who an account is: a plain one, the shared backstop, the isolated
/// backstop book or an isolated sub-account.
fn who(kind: u8) -> (Address, Option<Address>) {
    match kind % 8 {
        0 => (crate::backstop::BACKSTOP, None),
        1 => (address(200), Some(crate::backstop::BACKSTOP)),
        2 => (address(201), Some(address(1))),
        n => (address(n), None),
    }
}

proptest::proptest! {
    /// Replacing first-touch contributions with the end-of-block ones,
    /// touching only what differs, gives exactly the aggregates recomputed
    /// from scratch (as removing every old and adding every new one did).
    #[test]
    fn replacing_contributions_matches_a_recompute(
        start in proptest::collection::btree_map(0u8..8, parts(), 0..8),
        changes in proptest::collection::btree_map(0u8..8, (0u8..4, parts()), 0..8),
    ) {
        let mut accounts = BTreeMap::new();
        for (kind, (assets, positions, risk)) in &start {
            let (address, owner) = who(*kind);
            accounts.insert(address, account(owner, assets, positions, *risk));
        }
        let mut aggregates = Aggregates::of(&accounts);
        let stress_move = aggregates.contributions().stress_move;
        // The block: touched accounts (new ones too) change what they hold
        // entirely (their holdings snapshotted), or only their risk (a price
        // move), or nothing (either way, without a snapshot of their
        // holdings, or with one).
        let mut numbers = PositionKeys::default();
        let mut touched = BTreeMap::new();
        for (kind, (how, (assets, positions, risk))) in &changes {
            let (address, owner) = who(*kind);
            let old = accounts.get(&address).cloned();
            let risk_keys = match &old {
                Some(old) => RiskKeys::of(address, old, stress_move).expect("fits"),
                None => RiskKeys::default(),
            };
            let held = |numbers: &mut PositionKeys| match &old {
                Some(old) => (numbers.held(old), old.collateral.clone()),
                None => (PositionsHeld::default(), SmallMap::new()),
            };
            let (held, new) = match (how, &old) {
                (0, Some(old)) => (None, old.clone()),
                (1, Some(old)) => {
                    let mut new = old.clone();
                    new.risk = account(owner, assets, positions, *risk).risk;
                    (None, new)
                }
                (2, Some(old)) => (Some(held(&mut numbers)), old.clone()),
                _ => (Some(held(&mut numbers)), account(owner, assets, positions, *risk)),
            };
            touched.insert(address, (risk_keys, held));
            accounts.insert(address, new);
        }
        for (address, (risk_keys, held)) in &touched {
            let account = accounts.get(address).expect("touched");
            let held = held.as_ref().map(|(positions, collateral)| (positions, collateral));
            let into = aggregates.contributions();
            replace_contribution(into, &numbers, *address, risk_keys, held, account)
                .expect("fits");
        }
        proptest::prop_assert_eq!(aggregates, Aggregates::of(&accounts));
    }
}
