//! A seeded generator of blocks: price paths with crashes and squeezes, and
//! transactions of every kind, valid and not, chosen from the model's state
//! so that they land near the interesting edges (margin limits, liquidation
//! bands, order quantities). Every transaction comes twice: as the signed
//! bytes the engine decodes and as the model's [`Tx`].

use std::collections::VecDeque;

use clearnode_engine::testkit::{self, Signer};
use clearnode_types::{Address, TxCode};
use ed25519_dalek::SigningKey;

use super::fixed::{
    decimal, quantity_worth, times_ppm, Round, PPM, PRICE_ONE, QUANTITY_ONE, USD_ONE,
};
use super::{Action, Entry, Model, Priced, Tx};

pub const MARKETS: [&str; 2] = ["BTC-PERP", "ETH-PERP"];
const TRADERS: u8 = 6;
const LIQUIDATORS: u8 = 2;

/// SplitMix64: tiny, seedable, good enough to pick test cases.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with the given chance in percent.
    pub fn percent(&mut self, chance: u64) -> bool {
        self.below(100) < chance
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: i128, high: i128) -> i128 {
        if high <= low {
            return low;
        }
        let span = u64::try_from(high - low + 1).unwrap_or(u64::MAX);
        low + i128::from(self.below(span))
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Who signs: the custodian, the venues (index 3 is inactive), traders,
/// liquidators, and a stranger who signs what it may not.
pub struct Generator {
    rng: Rng,
    custodian: SigningKey,
    venues: Vec<SigningKey>,
    traders: Vec<SigningKey>,
    liquidators: Vec<SigningKey>,
    stranger: SigningKey,
    genesis_prices: Vec<i128>,
    setup: VecDeque<(SigningKey, Action)>,
    /// The genesis has breakers: oracle rounds leave markets unpriced and
    /// underquoted, and TripBreaker comes up.
    breakers: bool,
}

fn address(key: &SigningKey) -> Address {
    testkit::address_of(key)
}

impl Generator {
    pub fn new(seed: u64, model: &Model) -> Self {
        let custodian = testkit::custodian_key();
        let traders: Vec<SigningKey> = (0..TRADERS).map(|i| testkit::key(10 + i)).collect();
        let liquidators: Vec<SigningKey> = (0..LIQUIDATORS).map(|i| testkit::key(30 + i)).collect();
        let mut generator = Self {
            rng: Rng::new(seed),
            venues: (0..4).map(testkit::venue_key).collect(),
            stranger: testkit::key(50),
            genesis_prices: MARKETS.iter().map(|m| model.markets[*m].price).collect(),
            setup: VecDeque::new(),
            breakers: model
                .markets
                .values()
                .any(|m| m.breaker_params.band_ppm > 0),
            custodian,
            traders,
            liquidators,
        };
        generator.plan_setup();
        generator
    }

    /// The first block funds everyone and authorizes venues; liquidators
    /// register and get deep pockets.
    fn plan_setup(&mut self) {
        let usdc = |units: i128| units * QUANTITY_ONE;
        for trader in self.traders.clone() {
            let amount = usdc(self.rng.between(3_000, 30_000)) + self.rng.between(0, 999_999);
            self.plan_deposit(&trader, "USDC", amount);
            for venue in ["venue-a", "venue-b", "venue-c"] {
                if venue == "venue-a" || self.rng.percent(70) {
                    self.plan(&trader, authorize(venue));
                }
            }
        }
        // One deep-pocketed liquidator, and one whose own margin binds.
        let pockets = [usdc(5_000_000), usdc(self.rng.between(20_000, 80_000))];
        for (liquidator, pocket) in self.liquidators.clone().into_iter().zip(pockets) {
            self.plan_deposit(&liquidator, "USDC", pocket);
            for venue in ["venue-a", "venue-b", "venue-c"] {
                self.plan(&liquidator, authorize(venue));
            }
            self.plan(&liquidator, Action::RegisterLiquidator);
        }
    }

    fn plan(&mut self, key: &SigningKey, action: Action) {
        self.setup.push_back((key.clone(), action));
    }

    fn plan_deposit(&mut self, to: &SigningKey, asset: &str, amount: i128) {
        let action = Action::Deposit {
            account: address(to),
            asset: asset.into(),
            amount,
        };
        self.setup.push_back((self.custodian.clone(), action));
    }

    /// How many transactions the next block carries.
    pub fn transactions_in_block(&mut self) -> usize {
        if self.setup.is_empty() {
            self.rng.below(9) as usize
        } else {
            self.setup.len()
        }
    }

    /// The next transaction, chosen against the state as it is now.
    pub fn transaction(&mut self, model: &Model) -> (Vec<u8>, Tx) {
        if let Some((key, action)) = self.setup.pop_front() {
            let sequence = model.next_sequence(&address(&key));
            return (encode(&key, sequence, &action), tx(&key, sequence, action));
        }
        let roll = self.rng.below(100);
        let (key, action) = match roll {
            _ if self.breakers && self.rng.percent(6) => self.trip_breaker(),
            // A system condition that arose inside the block: someone notices.
            _ if self.breakers
                && model.validate_trip_breaker(&None).is_ok()
                && self.rng.percent(30) =>
            {
                (self.anyone(), Action::TripBreaker { market: None })
            }
            0..=1 => return self.unverifiable(model),
            2..=11 => self.deposit(),
            12..=20 => self.withdraw(model),
            21..=26 => self.authorize(),
            27..=29 => self.register(),
            30..=54 if !model.orders.is_empty() => self.take_over(model),
            _ => self.report(model),
        };
        let expected = model.next_sequence(&address(&key));
        // A replay or a gap now and then.
        let sequence = match self.rng.below(100) {
            0 if expected > 0 => expected - 1,
            1 => expected + 1,
            _ => expected,
        };
        (encode(&key, sequence, &action), tx(&key, sequence, action))
    }

    /// Bytes refused before any state is read.
    fn unverifiable(&mut self, model: &Model) -> (Vec<u8>, Tx) {
        let trader = self.rng.pick(&self.traders).clone();
        let sequence = model.next_sequence(&address(&trader));
        let (bytes, code) = if self.rng.percent(50) {
            (vec![1, 2, 3], TxCode::MalformedTx)
        } else {
            let mut signer = Signer::new(trader.clone());
            signer.sequence = sequence;
            (signer.withdraw("USDC", "0"), TxCode::InvalidAmount)
        };
        (bytes, tx(&trader, sequence, Action::Unverifiable(code)))
    }

    fn anyone(&mut self) -> SigningKey {
        if self.rng.percent(85) {
            self.rng.pick(&self.traders).clone()
        } else {
            self.rng.pick(&self.liquidators).clone()
        }
    }

    fn deposit(&mut self) -> (SigningKey, Action) {
        let to = if self.rng.percent(95) {
            self.anyone()
        } else {
            self.stranger.clone()
        };
        let (asset, amount) = match self.rng.below(100) {
            0..=64 => ("USDC", self.rng.between(200, 20_000) * QUANTITY_ONE),
            65..=94 => ("ETH", self.rng.between(QUANTITY_ONE / 10, 8 * QUANTITY_ONE)),
            _ => ("DOGE", QUANTITY_ONE),
        };
        let signer = if self.rng.percent(94) {
            self.custodian.clone()
        } else {
            self.anyone()
        };
        let action = Action::Deposit {
            account: address(&to),
            asset: asset.into(),
            amount: amount + self.rng.between(0, 999),
        };
        (signer, action)
    }

    fn withdraw(&mut self, model: &Model) -> (SigningKey, Action) {
        let key = self.anyone();
        let account = model
            .accounts
            .get(&address(&key))
            .cloned()
            .unwrap_or_default();
        let asset = match self.rng.below(100) {
            0..=3 => "DOGE".to_string(),
            4..=30 => "ETH".to_string(),
            _ => "USDC".to_string(),
        };
        let balance = account.collateral.get(&asset).copied().unwrap_or(0);
        let amount = match self.rng.below(100) {
            // Around the free collateral: both sides of the margin check.
            0..=39 => {
                let risk = model.risk_now(&account);
                let free = (risk.equity - risk.initial).max(0);
                let price = model.assets.get(&asset).map_or(PRICE_ONE, |a| a.price);
                let units = quantity_worth(free, price, Round::Down);
                times_ppm(units, self.rng.between(500_000, 1_200_000), Round::Down)
            }
            40..=74 => times_ppm(balance, self.rng.between(10_000, PPM), Round::Down),
            75..=89 => balance + self.rng.between(1, QUANTITY_ONE),
            _ => balance,
        };
        (
            key,
            Action::Withdraw {
                asset,
                amount: amount.max(1),
            },
        )
    }

    fn authorize(&mut self) -> (SigningKey, Action) {
        let key = self.anyone();
        let venue = match self.rng.below(100) {
            0..=79 => *self.rng.pick(&["venue-a", "venue-b", "venue-c"]),
            80..=89 => "venue-x",
            _ => "venue-zz",
        };
        let authorized = self.rng.percent(85);
        (
            key,
            Action::Authorize {
                venue: venue.into(),
                authorized,
            },
        )
    }

    fn register(&mut self) -> (SigningKey, Action) {
        let key = if self.rng.percent(30) {
            self.rng.pick(&self.traders).clone()
        } else {
            self.rng.pick(&self.liquidators).clone()
        };
        (key, Action::RegisterLiquidator)
    }

    /// A venue's report: usually signed by the venue, for accounts that
    /// authorized it, at sizes around what their equity can carry.
    fn report(&mut self, model: &Model) -> (SigningKey, Action) {
        let (signer, venue) = match self.rng.below(100) {
            0..=3 => (self.venues[3].clone(), "venue-x".to_string()),
            4..=6 => (self.stranger.clone(), "venue-a".to_string()),
            7..=8 => (self.stranger.clone(), "venue-zz".to_string()),
            _ => {
                let index = self.rng.below(3) as usize;
                (
                    self.venues[index].clone(),
                    testkit::VENUES[index].to_string(),
                )
            }
        };
        let count = match self.rng.below(10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => 3,
        };
        let mut entries: Vec<Entry> = Vec::new();
        for _ in 0..count {
            let entry = self.entry(model, &venue);
            let duplicate = entries
                .iter()
                .any(|e| e.account == entry.account && e.market == entry.market);
            if !duplicate {
                entries.push(entry);
            }
        }
        // Venues acknowledge what they saw, mostly: some never catch up
        // (and turn delinquent), a few claim a height not yet committed.
        let last_committed = model.height - 1;
        let acknowledged = match self.rng.below(100) {
            0..=79 => last_committed,
            80..=81 => last_committed + 1 + self.rng.below(3),
            _ => 0,
        };
        if self.rng.percent(5) && acknowledged > 0 {
            entries.clear();
        }
        let action = Action::Report {
            venue,
            entries,
            acknowledged,
        };
        (signer, action)
    }

    /// One entry: who, which market, what size, at an entry price within
    /// 3% of the mark.
    fn entry(&mut self, model: &Model, venue: &str) -> Entry {
        let (account, trading) = self.reported_account(model, venue);
        let market = if self.rng.percent(98) {
            self.rng.pick(&MARKETS).to_string()
        } else {
            "DOGE-PERP".to_string()
        };
        let Some(listed) = model.markets.get(&market) else {
            return entry(account, market, QUANTITY_ONE, PRICE_ONE);
        };
        let price = listed.price;
        let size = self.reported_size(model, account, &market, venue, trading);
        let offset_ppm = self.rng.between(-30_000, 30_000);
        let entry_price =
            times_ppm(price, PPM + offset_ppm, Round::Down) + self.rng.between(0, 999);
        entry(account, market, size, entry_price)
    }

    /// Mostly a trader the venue may report for; sometimes any trader, a
    /// liquidator (whose positions only shrink) or the stranger.
    fn reported_account(&mut self, model: &Model, venue: &str) -> (Address, bool) {
        let authorized: Vec<SigningKey> = self
            .traders
            .iter()
            .filter(|t| {
                let account = model.accounts.get(&address(t));
                account.is_some_and(|a| a.authorized_venues.contains(venue))
            })
            .cloned()
            .collect();
        let (key, trading) = match self.rng.below(100) {
            0..=69 if !authorized.is_empty() => (self.rng.pick(&authorized).clone(), true),
            0..=84 => (self.rng.pick(&self.traders).clone(), true),
            85..=95 => (self.rng.pick(&self.liquidators).clone(), false),
            _ => (self.stranger.clone(), true),
        };
        (address(&key), trading)
    }

    /// Close, shrink, hedge another venue, too large, or a new size at up
    /// to 30x the account's equity (both sides of the margin checks).
    fn reported_size(
        &mut self,
        model: &Model,
        address: Address,
        market: &str,
        venue: &str,
        trading: bool,
    ) -> i128 {
        let account = model.accounts.get(&address).cloned().unwrap_or_default();
        // The account's size in this market on this venue, and on the others.
        let (mut here, mut elsewhere) = (0, 0);
        for ((position_market, position_venue), position) in &account.positions {
            if position_market == market && position_venue == venue {
                here += position.size;
            } else if position_market == market {
                elsewhere += position.size;
            }
        }
        match self.rng.below(100) {
            0..=17 => 0,
            18..=34 => times_ppm(here, self.rng.between(100_000, 900_000), Round::Down),
            _ if !trading => 0,
            35..=44 => -times_ppm(elsewhere, self.rng.between(500_000, PPM), Round::Down),
            45..=47 => model.params.position_size_max + self.rng.between(1, QUANTITY_ONE),
            _ => {
                let equity = model.risk_now(&account).equity.max(1_000 * USD_ONE);
                let leverage_ppm = self.rng.between(PPM / 2, 30 * PPM);
                let usd = times_ppm(equity, leverage_ppm, Round::Down);
                let size = quantity_worth(usd, model.markets[market].price, Round::Down);
                if self.rng.percent(50) {
                    size
                } else {
                    -size
                }
            }
        }
    }

    /// A takeover of an open order, mostly inside its band and quantity.
    fn take_over(&mut self, model: &Model) -> (SigningKey, Action) {
        let index = self.rng.below(model.orders.len() as u64) as usize;
        let ((account, market, venue), order) = model.orders.iter().nth(index).expect("some");
        let key = match self.rng.below(100) {
            0..=87 => self.rng.pick(&self.liquidators).clone(),
            88..=93 => self.rng.pick(&self.traders).clone(),
            _ => self
                .traders
                .iter()
                .find(|t| address(t) == *account)
                .unwrap_or(&self.stranger)
                .clone(),
        };
        let quantity = match self.rng.below(100) {
            0..=54 => self.rng.between(1, order.quantity),
            55..=84 => order.quantity,
            85..=94 => order.quantity.min(self.rng.between(1, QUANTITY_ONE / 100)),
            _ => order.quantity + self.rng.between(1, QUANTITY_ONE),
        };
        let mark = model.markets[market].price;
        let limit = order.limit_price;
        let price = if self.rng.percent(92) {
            // Between the limit and the mark: inside the band.
            self.rng.between(limit.min(mark), limit.max(mark))
        } else {
            let outside = self.rng.between(1, mark / 50);
            if order.side > 0 {
                (limit - outside).max(1)
            } else {
                limit + outside
            }
        };
        let (market, venue) = if self.rng.percent(4) {
            (market.clone(), "venue-c".to_string())
        } else {
            (market.clone(), venue.clone())
        };
        let action = Action::TakeOver {
            account: *account,
            market,
            venue,
            quantity,
            price,
        };
        (key, action)
    }

    /// TripBreaker from anyone: the system's, a market's, or an unlisted one.
    fn trip_breaker(&mut self) -> (SigningKey, Action) {
        let market = match self.rng.below(100) {
            0..=59 => None,
            60..=94 => Some(self.rng.pick(&MARKETS).to_string()),
            _ => Some("DOGE-PERP".to_string()),
        };
        (self.anyone(), Action::TripBreaker { market })
    }

    /// Oracle prices for the next block: quiet blocks, small moves, and now
    /// and then a crash or a squeeze of 20-40%; the ETH collateral asset
    /// mostly follows the ETH market, USDC wobbles rarely. With breakers,
    /// also the markets quoted by too few validators to be priced.
    pub fn prices(&mut self, model: &Model) -> (Vec<(Priced, i128)>, Vec<String>) {
        let mut prices = Vec::new();
        let mut underquoted = Vec::new();
        if self.rng.percent(45) {
            return (prices, underquoted);
        }
        for (index, market) in MARKETS.iter().enumerate() {
            if self.rng.percent(30) {
                if self.breakers && self.rng.percent(50) {
                    underquoted.push(market.to_string());
                }
                continue;
            }
            let price = model.markets[*market].price;
            let next = self.next_price(price, self.genesis_prices[index]);
            prices.push((Priced::Market(market.to_string()), next));
        }
        let eth_market = prices
            .iter()
            .find(|(priced, _)| *priced == Priced::Market("ETH-PERP".into()))
            .map(|(_, price)| *price);
        let eth_asset = model.assets["ETH"].price;
        match eth_market {
            Some(price) if self.rng.percent(70) => {
                prices.push((Priced::Asset("ETH".into()), price))
            }
            _ if self.rng.percent(30) => {
                let moved = times_ppm(
                    eth_asset,
                    PPM + self.rng.between(-20_000, 20_000),
                    Round::Down,
                );
                prices.push((Priced::Asset("ETH".into()), moved));
            }
            _ => {}
        }
        if self.rng.percent(5) {
            let usdc = times_ppm(PRICE_ONE, self.rng.between(970_000, 1_020_000), Round::Down);
            prices.push((Priced::Asset("USDC".into()), usdc));
        } else if self.rng.percent(5) {
            prices.push((Priced::Asset("USDC".into()), PRICE_ONE));
        }
        (prices, underquoted)
    }

    fn next_price(&mut self, price: i128, genesis_price: i128) -> i128 {
        let crash = -self.rng.between(200_000, 400_000);
        let squeeze = self.rng.between(200_000, 400_000);
        let move_ppm = if price < genesis_price / 3 {
            squeeze
        } else if price > genesis_price * 3 {
            crash
        } else {
            match self.rng.below(100) {
                0..=6 => crash,
                7..=10 => squeeze,
                11..=12 => 0,
                _ => self.rng.between(-40_000, 40_000),
            }
        };
        let noise = if move_ppm == 0 {
            0
        } else {
            self.rng.between(0, 999)
        };
        times_ppm(price, PPM + move_ppm, Round::Down) + noise
    }
}

fn entry(account: Address, market: String, size: i128, entry_price: i128) -> Entry {
    Entry {
        account,
        market,
        size,
        entry_price,
    }
}

fn authorize(venue: &str) -> Action {
    Action::Authorize {
        venue: venue.into(),
        authorized: true,
    }
}

fn tx(key: &SigningKey, sequence: u64, action: Action) -> Tx {
    Tx {
        signer: key.verifying_key().to_bytes(),
        sequence,
        action,
    }
}

/// The signed bytes of an action, through the test kit's builders.
fn encode(key: &SigningKey, sequence: u64, action: &Action) -> Vec<u8> {
    let mut signer = Signer::new(key.clone());
    signer.sequence = sequence;
    let quantity = |raw: i128| decimal(raw, 9);
    match action {
        Action::Deposit {
            account,
            asset,
            amount,
        } => signer.deposit(*account, asset, &quantity(*amount)),
        Action::Withdraw { asset, amount } => signer.withdraw(asset, &quantity(*amount)),
        Action::Authorize { venue, authorized } => signer.authorize(venue, *authorized),
        Action::Report {
            venue,
            entries,
            acknowledged,
        } => {
            let texts: Vec<(Address, &str, String, String)> = entries
                .iter()
                .map(|e| {
                    let price = if e.size == 0 {
                        String::new()
                    } else {
                        decimal(e.entry_price, 9)
                    };
                    (e.account, e.market.as_str(), quantity(e.size), price)
                })
                .collect();
            let entries: Vec<testkit::Entry<'_>> = texts
                .iter()
                .map(|(account, market, size, price)| {
                    (*account, *market, size.as_str(), price.as_str())
                })
                .collect();
            signer.report_acknowledging(venue, &entries, *acknowledged)
        }
        Action::RegisterLiquidator => signer.register_liquidator(),
        Action::TakeOver {
            account,
            market,
            venue,
            quantity: taken,
            price,
        } => signer.take_over(
            *account,
            market,
            venue,
            &quantity(*taken),
            &decimal(*price, 9),
        ),
        Action::TripBreaker { market } => signer.trip_breaker(market.as_deref()),
        Action::Unverifiable(_) => unreachable!("encoded where it is made"),
    }
}
