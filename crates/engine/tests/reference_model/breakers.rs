//! Circuit breakers and the validity of a price, as docs/breakers.md and
//! docs/oracle.md ("Validity of a price") state them: each market's band
//! (open, limit, paused, reopening), its validity flags and open-interest
//! caps, the system breaker (fund drawdown over a window, coverage of the
//! two largest stress defaults recomputed from every account), the gates
//! each action passes, and `TripBreaker`.
//!
//! Not modelled: the invariant halt (the model's totals are walks over
//! every account, so they never disagree) and governance pauses.

use std::collections::{BTreeMap, BTreeSet};

use clearnode_types::genesis::{GenesisMarketBreaker, GenesisSystemBreaker};
use clearnode_types::TxCode;

use super::fixed::{mul_div, notional, times_ppm, Round, PPM};
use super::margin::Risk;
use super::{AccountModel, Entry, Model, BACKSTOP};

/// Coverage is reported up to 1,000x.
const COVERAGE_MAX_PPM: i128 = 1_000 * PPM;

/// A market's breaker parameters (zero: off).
#[derive(Debug, Clone, Default)]
pub struct BandParams {
    pub band_ppm: i128,
    pub limit_blocks: u64,
    pub pause_blocks: u64,
    pub reopen_blocks: u64,
    pub reopen_multiplier_ppm: i128,
    pub reference_window_blocks: u64,
    pub open_interest_cap: i128,
    pub venue_open_interest_cap: i128,
    pub stale_after_blocks: u64,
    pub volatile_move_ppm: i128,
}

impl BandParams {
    pub fn from_genesis(g: &GenesisMarketBreaker) -> Self {
        Self {
            band_ppm: i128::from(g.price_band_ppm),
            limit_blocks: u64::from(g.limit_blocks),
            pause_blocks: u64::from(g.pause_blocks),
            reopen_blocks: u64::from(g.reopen_blocks),
            reopen_multiplier_ppm: i128::from(g.reopen_margin_multiplier_ppm),
            reference_window_blocks: u64::from(g.reference_window_blocks),
            open_interest_cap: g.open_interest_cap.raw(),
            venue_open_interest_cap: g.venue_open_interest_cap.raw(),
            stale_after_blocks: u64::from(g.stale_after_blocks),
            volatile_move_ppm: i128::from(g.volatile_move_ppm),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Open,
    Limit,
    Paused,
    Reopening,
    /// Paused for another cause than the band (never in the model).
    Halted,
}

/// A market's breaker state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Band {
    pub status: Status,
    pub since: u64,
    pub reference: i128,
    pub reference_height: u64,
    pub last_priced_height: u64,
    pub last_move_ppm: i128,
    pub stale: bool,
    pub too_volatile: bool,
    pub too_few_reporters: bool,
    pub capped: bool,
    pub venues_capped: BTreeSet<String>,
}

impl Band {
    pub fn at_genesis(price: i128) -> Self {
        Self {
            reference: price,
            ..Self::default()
        }
    }

    pub fn valid(&self) -> bool {
        !(self.stale || self.too_volatile || self.too_few_reporters)
    }

    fn trading(&self) -> bool {
        matches!(self.status, Status::Open | Status::Reopening)
    }
}

/// |price - from| / from in ppm, rounded up.
fn relative_move(price: i128, from: i128) -> i128 {
    mul_div((price - from).abs(), PPM, from, Round::Up)
}

fn breached(band: &Band, params: &BandParams, price: i128) -> bool {
    params.band_ppm > 0 && relative_move(price, band.reference) > params.band_ppm
}

/// The system breaker's parameters (zero: off).
#[derive(Debug, Clone, Default)]
pub struct SystemParams {
    pub drawdown_max_ppm: i128,
    pub window_blocks: u64,
    pub stress_move_ppm: i128,
    pub tightened_multiplier_ppm: i128,
    pub fresh_price_blocks: u64,
}

impl SystemParams {
    pub fn from_genesis(g: &GenesisSystemBreaker) -> Self {
        Self {
            drawdown_max_ppm: i128::from(g.fund_drawdown_max_ppm),
            window_blocks: u64::from(g.fund_drawdown_window_blocks),
            stress_move_ppm: i128::from(g.coverage_stress_move_ppm),
            tightened_multiplier_ppm: i128::from(g.tightened_margin_multiplier_ppm),
            fresh_price_blocks: u64::from(g.fresh_price_blocks),
        }
    }
}

/// The system breaker's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct System {
    pub tripped: bool,
    pub tripped_since: u64,
    pub causes: BTreeSet<&'static str>,
    /// The fund's balance changes in the window, oldest first; the first
    /// is the balance in effect when the window starts.
    pub history: Vec<(u64, i128)>,
    pub high: i128,
    pub drawdown: i128,
    pub stress_top_two: i128,
    pub coverage: Option<i128>,
}

impl System {
    fn record_fund(&mut self, height: u64, balance: i128, window: u64) {
        if self.history.last().map(|(_, b)| *b) != Some(balance) {
            self.history.push((height, balance));
        }
        let start = height.saturating_sub(window);
        let keep_from = self
            .history
            .iter()
            .rposition(|(at, _)| *at <= start)
            .unwrap_or(0);
        self.history.drain(..keep_from);
    }

    /// Recomputes the figures; returns the causes that hold.
    fn conditions(
        &mut self,
        params: &SystemParams,
        balance: i128,
        top_two: i128,
    ) -> BTreeSet<&'static str> {
        let mut causes = BTreeSet::new();
        self.high = self
            .history
            .iter()
            .map(|(_, b)| *b)
            .fold(balance, i128::max);
        self.drawdown = self.high - balance;
        if params.drawdown_max_ppm > 0
            && self.high > 0
            && self.drawdown > times_ppm(self.high, params.drawdown_max_ppm, Round::Down)
        {
            causes.insert("drawdown");
        }
        self.stress_top_two = top_two;
        self.coverage = (top_two > 0).then(|| {
            if balance >= times_ppm(top_two, COVERAGE_MAX_PPM, Round::Up) {
                COVERAGE_MAX_PPM
            } else {
                mul_div(balance, PPM, top_two, Round::Down)
            }
        });
        if params.stress_move_ppm > 0 && self.coverage.is_some_and(|c| c < PPM) {
            causes.insert("coverage");
        }
        causes
    }
}

/// What an account would leave unpaid if every market moved against it.
fn stress_loss(risk: &Risk, stress_move_ppm: i128) -> i128 {
    if stress_move_ppm <= 0 {
        return 0;
    }
    (times_ppm(risk.net_notional, stress_move_ppm, Round::Up) - risk.equity).max(0)
}

/// `fraction x multiplier`, at most 100%, exact at 1x.
pub fn widen(fraction: i128, multiplier: i128) -> i128 {
    if multiplier == PPM {
        fraction
    } else {
        mul_div(fraction, multiplier, PPM, Round::Up).min(PPM)
    }
}

type Checked = Result<(), TxCode>;

fn require(condition: bool, code: TxCode) -> Checked {
    if condition {
        Ok(())
    } else {
        Err(code)
    }
}

impl Model {
    /// Steps every market's breaker after the block's prices: validity
    /// first, then the band on the current price.
    pub(super) fn step_breakers(
        &mut self,
        priced: &BTreeSet<String>,
        underquoted: &BTreeSet<String>,
        previous: &BTreeMap<String, i128>,
    ) {
        let height = self.height;
        for (id, market) in self.markets.iter_mut() {
            let (params, band, price) = (&market.breaker_params, &mut market.breaker, market.price);
            if priced.contains(id) {
                band.last_move_ppm = relative_move(price, previous[id]);
                band.last_priced_height = height;
                band.too_few_reporters = false;
            } else if underquoted.contains(id) {
                band.too_few_reporters = true;
            }
            band.too_volatile =
                params.volatile_move_ppm > 0 && band.last_move_ppm > params.volatile_move_ppm;
            band.stale = params.stale_after_blocks > 0
                && height - band.last_priced_height > params.stale_after_blocks;
            let outside = breached(band, params, price);
            let next = match band.status {
                Status::Open if outside => Some(Status::Limit),
                Status::Open => {
                    let window = params.reference_window_blocks;
                    if window > 0 && height >= band.reference_height + window {
                        band.reference = price;
                        band.reference_height = height;
                    }
                    None
                }
                Status::Limit if !outside => Some(Status::Open),
                Status::Limit => {
                    (height >= band.since + params.limit_blocks).then_some(Status::Paused)
                }
                Status::Paused if height >= band.since + params.pause_blocks => {
                    band.reference = price;
                    band.reference_height = height;
                    Some(Status::Reopening)
                }
                Status::Reopening if outside => Some(Status::Limit),
                Status::Reopening => {
                    (height >= band.since + params.reopen_blocks).then_some(Status::Open)
                }
                Status::Paused | Status::Halted => None,
            };
            if let Some(next) = next {
                self.tally.count_transition(band.status, next);
                band.status = next;
                band.since = height;
            }
            self.tally.count_validity(band);
        }
    }

    /// The initial margin multiplier of a market now: the reopen's widening
    /// easing linearly to 1x, times the system's tightening.
    pub(super) fn margin_multiplier(&self, market: &str) -> i128 {
        let market = &self.markets[market];
        let (params, band) = (&market.breaker_params, &market.breaker);
        let blocks = i128::from(u32::try_from(params.reopen_blocks).expect("small"));
        let own =
            if band.status == Status::Reopening && params.reopen_multiplier_ppm > PPM && blocks > 0
            {
                let elapsed = i128::from(u32::try_from(self.height - band.since).expect("small"));
                let left = blocks - elapsed.min(blocks);
                PPM + mul_div(params.reopen_multiplier_ppm - PPM, left, blocks, Round::Up)
            } else {
                PPM
            };
        let tightened = self.system_params.tightened_multiplier_ppm;
        if self.system.tripped && tightened > PPM {
            mul_div(own, tightened, PPM, Round::Up)
        } else {
            own
        }
    }

    /// End of block: every market's cap flags, then the system breaker.
    pub(super) fn evaluate_breakers(&mut self) {
        let totals = self.market_totals();
        for (id, market) in self.markets.iter_mut() {
            let at_cap = |cap: i128, (long, short): (i128, i128)| {
                cap > 0 && notional(long.max(short), market.price, Round::Up) >= cap
            };
            let total = &totals[id];
            let params = &market.breaker_params;
            market.breaker.capped = at_cap(params.open_interest_cap, (total.long, total.short));
            market.breaker.venues_capped = total
                .venues
                .iter()
                .filter(|(_, interest)| at_cap(params.venue_open_interest_cap, **interest))
                .map(|(venue, _)| venue.clone())
                .collect();
            if market.breaker.capped || !market.breaker.venues_capped.is_empty() {
                self.tally.capped_market_blocks += 1;
            }
        }
        let risks: Vec<Risk> = self
            .risks
            .iter()
            .filter(|(address, _)| **address != BACKSTOP)
            .map(|(_, risk)| risk.clone())
            .collect();
        self.evaluate_system(&risks, false);
    }

    /// The two largest stress losses of these risks, summed.
    fn stress_top_two(&self, risks: &[Risk]) -> i128 {
        let mut losses: Vec<i128> = risks
            .iter()
            .map(|risk| stress_loss(risk, self.system_params.stress_move_ppm))
            .collect();
        losses.sort_unstable_by(|a, b| b.cmp(a));
        losses.iter().take(2).sum()
    }

    /// Every account's risk now but the backstop's book.
    fn risks_now(&self) -> Vec<Risk> {
        self.accounts
            .iter()
            .filter(|(address, _)| **address != BACKSTOP)
            .map(|(_, account)| self.risk_now(account))
            .collect()
    }

    /// Trips the system breaker when a cause holds, clears it when none
    /// does (unless only tripping); returns whether it tripped.
    fn evaluate_system(&mut self, risks: &[Risk], trip_only: bool) -> bool {
        let top_two = self.stress_top_two(risks);
        let (height, balance) = (self.height, self.fund.balance);
        let params = self.system_params.clone();
        let system = &mut self.system;
        system.record_fund(height, balance, params.window_blocks);
        let causes = system.conditions(&params, balance, top_two);
        if !system.tripped && !causes.is_empty() {
            system.tripped = true;
            system.tripped_since = height;
            self.tally.system_trips += 1;
            self.tally.drawdown_trips += u64::from(causes.contains("drawdown"));
            self.tally.coverage_trips += u64::from(causes.contains("coverage"));
            self.tally.trips_by_transaction += u64::from(trip_only);
            system.causes = causes;
            return true;
        }
        if system.tripped && causes.is_empty() && !trip_only {
            system.tripped = false;
            system.causes.clear();
            self.tally.system_clears += 1;
        } else if system.tripped {
            system.causes.extend(causes);
        }
        false
    }

    /// TripBreaker's check: a condition of the breaker holds now that is
    /// not tripped yet.
    pub(super) fn validate_trip_breaker(&self, market: &Option<String>) -> Checked {
        let holds = match market {
            Some(id) => {
                let market = self.markets.get(id).ok_or(TxCode::UnknownMarket)?;
                market.breaker.trading()
                    && breached(&market.breaker, &market.breaker_params, market.price)
            }
            None => {
                let mut system = self.system.clone();
                let top_two = self.stress_top_two(&self.risks_now());
                system.record_fund(
                    self.height,
                    self.fund.balance,
                    self.system_params.window_blocks,
                );
                !system.tripped
                    && !system
                        .conditions(&self.system_params, self.fund.balance, top_two)
                        .is_empty()
            }
        };
        require(holds, TxCode::BreakerConditionFalse)
    }

    /// TripBreaker, once its check passed.
    pub(super) fn apply_trip_breaker(&mut self, market: &Option<String>) {
        match market {
            Some(id) => {
                let height = self.height;
                let band = &mut self.markets.get_mut(id).expect("validated").breaker;
                self.tally.count_transition(band.status, Status::Limit);
                band.status = Status::Limit;
                band.since = height;
            }
            None => {
                let risks = self.risks_now();
                self.evaluate_system(&risks, true);
            }
        }
    }

    /// A report against the breakers, per entry in order (316, then for
    /// an entry adding net exposure 315 and 317), then the caps per market
    /// in id order, the market's before the venue's (318).
    pub(super) fn check_report_breakers(&self, venue: &str, entries: &[Entry]) -> Checked {
        for entry in entries {
            let band = &self.markets[&entry.market].breaker;
            require(
                !matches!(band.status, Status::Paused | Status::Halted),
                TxCode::MarketPaused,
            )?;
            if !entry_adds_exposure(self.accounts.get(&entry.account), venue, entry) {
                continue;
            }
            require(
                band.status != Status::Limit && !self.system.tripped,
                TxCode::BreakerReduceOnly,
            )?;
            require(band.valid(), TxCode::OracleInvalid)?;
        }
        let mut changes: BTreeMap<&str, (i128, i128)> = BTreeMap::new();
        for entry in entries {
            let old = self
                .accounts
                .get(&entry.account)
                .and_then(|a| a.positions.get(&(entry.market.clone(), venue.to_string())))
                .map_or(0, |p| p.size);
            let change = changes.entry(&entry.market).or_default();
            change.0 += entry.size.max(0) - old.max(0);
            change.1 += (-entry.size).max(0) - (-old).max(0);
        }
        let totals = self.market_totals();
        for (id, (long_change, short_change)) in changes {
            let market = &self.markets[id];
            let total = &totals[id];
            let venue_interest = total.venues.get(venue).copied().unwrap_or_default();
            let caps = [
                (
                    market.breaker_params.open_interest_cap,
                    (total.long, total.short),
                ),
                (
                    market.breaker_params.venue_open_interest_cap,
                    venue_interest,
                ),
            ];
            for (cap, (long, short)) in caps {
                let usd =
                    |long: i128, short: i128| notional(long.max(short), market.price, Round::Up);
                let before = usd(long, short);
                let after = usd(long + long_change, short + short_change);
                require(
                    cap <= 0 || after <= cap || after <= before,
                    TxCode::OpenInterestCap,
                )?;
            }
        }
        Ok(())
    }

    /// A withdrawal needs every market the account holds trading on a valid
    /// price.
    pub(super) fn check_withdrawal_breakers(&self, account: &AccountModel) -> Checked {
        for (market, _) in account.positions.keys() {
            let band = &self.markets[market].breaker;
            require(
                !matches!(band.status, Status::Paused | Status::Halted),
                TxCode::MarketPaused,
            )?;
            require(band.valid(), TxCode::OracleInvalid)?;
        }
        Ok(())
    }

    /// Why liquidating in this market must wait: paused (316); stale or
    /// underquoted, or reopening on a price older than the fresh-price
    /// window (317). Volatility does not hold liquidations back.
    pub(super) fn liquidation_blocked(&self, market: &str) -> Option<TxCode> {
        let band = &self.markets[market].breaker;
        if matches!(band.status, Status::Paused | Status::Halted) {
            return Some(TxCode::MarketPaused);
        }
        if band.stale || band.too_few_reporters {
            return Some(TxCode::OracleInvalid);
        }
        let fresh = self.system_params.fresh_price_blocks;
        let age = self.height - band.last_priced_height;
        (band.status == Status::Reopening && fresh > 0 && age > fresh)
            .then_some(TxCode::OracleInvalid)
    }

    /// Whether any market the account holds holds its liquidation back.
    pub(super) fn account_liquidation_blocked(&self, account: &AccountModel) -> bool {
        account
            .positions
            .keys()
            .any(|(market, _)| self.liquidation_blocked(market).is_some())
    }
}

/// Whether an entry, against the account as it is, adds net exposure in
/// its market: a larger net size, or a flip of side.
fn entry_adds_exposure(account: Option<&AccountModel>, venue: &str, entry: &Entry) -> bool {
    let (mut before, mut here) = (0, 0);
    for ((market, position_venue), position) in account.iter().flat_map(|a| &a.positions) {
        if *market == entry.market {
            before += position.size;
            if position_venue == venue {
                here = position.size;
            }
        }
    }
    let after = before - here + entry.size;
    before.signum() * after.signum() < 0 || after.abs() > before.abs()
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Limit => "limit",
            Status::Paused => "paused",
            Status::Reopening => "reopening",
            Status::Halted => "halted",
        }
    }
}
