//! Transactions as docs/transactions.md states them: checks in order, one
//! code for the first that fails, and a rejected transaction changes
//! nothing, not even the signer's sequence.

use std::collections::BTreeMap;

use clearnode_types::{Address, TxCode};

use super::fixed::{notional, Round, QUANTITY_ONE};
use super::margin::{self, Fraction, Health};
use super::{AccountModel, Model, Position};

/// Largest collateral balance of one asset, in whole units.
const BALANCE_UNITS_MAX: i128 = 10_000_000_000_000_000;

/// A transaction as its signer meant it (the generator encodes the same
/// intent into signed bytes for the engine).
#[derive(Debug, Clone)]
pub struct Tx {
    pub signer: [u8; 32],
    pub sequence: u64,
    pub action: Action,
}

/// One position snapshot in a report; the entry price is ignored at size 0.
#[derive(Debug, Clone)]
pub struct Entry {
    pub account: Address,
    pub market: String,
    pub size: i128,
    pub entry_price: i128,
}

#[derive(Debug, Clone)]
pub enum Action {
    Deposit {
        account: Address,
        asset: String,
        amount: i128,
    },
    Withdraw {
        asset: String,
        amount: i128,
    },
    Authorize {
        venue: String,
        authorized: bool,
    },
    Report {
        venue: String,
        entries: Vec<Entry>,
        /// Instructions acted on up to this height (0: none new).
        acknowledged: u64,
    },
    RegisterLiquidator,
    TakeOver {
        account: Address,
        market: String,
        venue: String,
        quantity: i128,
        price: i128,
    },
    /// Trips a market's breakers (`None`: the system's) when a condition
    /// holds that is not tripped yet.
    TripBreaker {
        market: Option<String>,
    },
    /// Bytes the stateless checks (the types crate, before any state is
    /// read) refuse with this code; the model only checks that nothing moves.
    Unverifiable(TxCode),
}

impl Action {
    /// The kind's name, for tallies.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Deposit { .. } => "deposit",
            Action::Withdraw { .. } => "withdraw",
            Action::Authorize { .. } => "authorize",
            Action::Report { .. } => "report",
            Action::RegisterLiquidator => "register",
            Action::TakeOver { .. } => "take_over",
            Action::TripBreaker { .. } => "trip_breaker",
            Action::Unverifiable(_) => "unverifiable",
        }
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
    /// Executes one transaction; returns its code.
    pub fn deliver(&mut self, tx: &Tx) -> TxCode {
        let code = match self.check_and_apply(tx) {
            Ok(()) => TxCode::Ok,
            Err(code) => code,
        };
        let kind = (tx.action.kind(), code as u32);
        *self.tally.codes.entry(kind).or_default() += 1;
        code
    }

    fn check_and_apply(&mut self, tx: &Tx) -> Checked {
        if let Action::Unverifiable(code) = tx.action {
            return Err(code);
        }
        let signer = Address::of_public_key(&tx.signer);
        require(
            tx.sequence == self.next_sequence(&signer),
            TxCode::WrongSequence,
        )?;
        self.validate(tx, signer)?;
        self.apply(tx, signer);
        *self.sequences.entry(signer).or_default() += 1;
        Ok(())
    }

    /// Every check of the action, in the documented order; reads only.
    fn validate(&self, tx: &Tx, signer: Address) -> Checked {
        match &tx.action {
            Action::Deposit {
                account,
                asset,
                amount,
            } => self.validate_deposit(tx, account, asset, *amount),
            Action::Withdraw { asset, amount } => self.validate_withdraw(signer, asset, *amount),
            Action::Authorize { venue, .. } => {
                require(self.venues.contains_key(venue), TxCode::UnknownVenue)
            }
            Action::Report {
                venue,
                entries,
                acknowledged,
            } => self.validate_report(tx, venue, entries, *acknowledged),
            Action::RegisterLiquidator => Ok(()),
            Action::TakeOver {
                account,
                market,
                venue,
                quantity,
                price,
            } => {
                let key = (*account, market.clone(), venue.clone());
                self.validate_take_over(signer, &key, *quantity, *price)
            }
            Action::TripBreaker { market } => self.validate_trip_breaker(market),
            Action::Unverifiable(code) => Err(*code),
        }
    }

    fn apply(&mut self, tx: &Tx, signer: Address) {
        let height = self.height;
        match &tx.action {
            Action::Deposit {
                account,
                asset,
                amount,
            } => {
                let account = self.accounts.entry(*account).or_default();
                *account.collateral.entry(asset.clone()).or_default() += amount;
                self.ledgers.entry(asset.clone()).or_default().deposited += amount;
            }
            Action::Withdraw { asset, amount } => {
                let account = self.accounts.get_mut(&signer).expect("validated");
                let balance = account.collateral.get_mut(asset).expect("validated");
                *balance -= amount;
                // Zero balances are not kept.
                if *balance == 0 {
                    account.collateral.remove(asset);
                }
                self.ledgers.entry(asset.clone()).or_default().withdrawn += amount;
            }
            Action::Authorize { venue, authorized } => {
                let account = self.accounts.entry(signer).or_default();
                if *authorized {
                    account.authorized_venues.insert(venue.clone());
                } else {
                    account.authorized_venues.remove(venue);
                }
            }
            Action::Report {
                venue,
                entries,
                acknowledged,
            } => {
                for entry in entries {
                    let account = self.accounts.get_mut(&entry.account).expect("validated");
                    apply_entry(account, venue, entry, height);
                }
                let acks = &mut self
                    .venues
                    .get_mut(venue)
                    .expect("validated")
                    .acknowledgements;
                if *acknowledged > acks.acknowledged_height {
                    acks.acknowledged_height = *acknowledged;
                    if *acknowledged >= acks.last_instruction_height {
                        acks.unacknowledged_since = 0;
                        acks.delinquent = false;
                    } else {
                        acks.unacknowledged_since = acks.unacknowledged_since.max(acknowledged + 1);
                    }
                }
            }
            Action::RegisterLiquidator => {
                self.accounts.entry(signer).or_default().liquidator = true
            }
            Action::TakeOver {
                account,
                market,
                venue,
                quantity,
                price,
            } => {
                let key = (*account, market.clone(), venue.clone());
                self.apply_take_over(signer, &key, *quantity, *price);
            }
            Action::TripBreaker { market } => self.apply_trip_breaker(market),
            Action::Unverifiable(_) => unreachable!("refused before validation"),
        }
    }

    fn validate_deposit(&self, tx: &Tx, account: &Address, asset: &str, amount: i128) -> Checked {
        require(tx.signer == self.custodian, TxCode::NotCustodian)?;
        require(self.assets.contains_key(asset), TxCode::UnknownAsset)?;
        let balance = self.balance(account, asset);
        require(
            balance + amount <= BALANCE_UNITS_MAX * QUANTITY_ONE,
            TxCode::BalanceTooLarge,
        )
    }

    fn balance(&self, account: &Address, asset: &str) -> i128 {
        self.accounts
            .get(account)
            .and_then(|a| a.collateral.get(asset))
            .copied()
            .unwrap_or(0)
    }

    /// Within the balance, and equity after it at or above the initial
    /// requirement of the positions held (unrealized PnL counts).
    fn validate_withdraw(&self, signer: Address, asset: &str, amount: i128) -> Checked {
        require(self.assets.contains_key(asset), TxCode::UnknownAsset)?;
        let balance = self.balance(&signer, asset);
        require(balance >= amount, TxCode::InsufficientCollateral)?;
        let account = self
            .accounts
            .get(&signer)
            .ok_or(TxCode::InsufficientCollateral)?;
        self.check_withdrawal_breakers(account)?;
        let mut after = account.clone();
        after.collateral.insert(asset.to_string(), balance - amount);
        let risk = self.risk_now(&after);
        require(risk.equity >= risk.initial, TxCode::BelowInitialMargin)
    }

    /// Who (venue, its key, active, entry count, authorizations), then what
    /// (markets, sizes), then margin.
    fn validate_report(
        &self,
        tx: &Tx,
        venue_id: &str,
        entries: &[Entry],
        acknowledged: u64,
    ) -> Checked {
        let venue = self.venues.get(venue_id).ok_or(TxCode::UnknownVenue)?;
        require(venue.public_key == tx.signer, TxCode::NotVenueSigner)?;
        require(venue.active, TxCode::VenueInactive)?;
        // Acknowledgements: never of a height not yet committed; a
        // delinquent venue must catch up with everything.
        require(acknowledged < self.height, TxCode::AcknowledgementAhead)?;
        let acks = &venue.acknowledgements;
        require(
            !acks.delinquent
                || acks.acknowledged_height.max(acknowledged) >= acks.last_instruction_height,
            TxCode::VenueDelinquent,
        )?;
        require(
            entries.len() <= self.params.report_entries_max,
            TxCode::TooManyEntries,
        )?;
        for entry in entries {
            let authorized = self
                .accounts
                .get(&entry.account)
                .is_some_and(|a| a.authorized_venues.contains(venue_id));
            require(authorized, TxCode::VenueNotAuthorized)?;
        }
        for entry in entries {
            require(
                self.markets.contains_key(&entry.market),
                TxCode::UnknownMarket,
            )?;
            require(
                entry.size.abs() <= self.params.position_size_max,
                TxCode::PositionTooLarge,
            )?;
        }
        self.check_report_breakers(venue_id, entries)?;
        self.validate_report_margin(venue_id, entries)
    }

    /// An account in margin call or worse may only reduce (308); new
    /// exposure must be covered at the fraction for new risk, the target at
    /// the open interest the report itself creates (309). Accounts are
    /// checked in address order; the first failure decides the code.
    fn validate_report_margin(&self, venue: &str, entries: &[Entry]) -> Checked {
        let mut by_account: BTreeMap<Address, Vec<&Entry>> = BTreeMap::new();
        for entry in entries {
            by_account.entry(entry.account).or_default().push(entry);
        }
        let mut after_report = self.accounts.clone();
        for (address, entries) in &by_account {
            let account = after_report.get_mut(address).expect("authorized");
            for entry in entries {
                apply_entry(account, venue, entry, self.height);
            }
        }
        let targets = self.projected_targets(&after_report, entries);
        for address in by_account.keys() {
            let before = &self.accounts[address];
            let after = &after_report[address];
            if !adds_exposure(before, after) {
                continue;
            }
            require(
                self.risk_now(before).health < Health::MarginCall,
                TxCode::ReduceOnly,
            )?;
            let fraction = Fraction::NewRisk(&targets);
            let next = margin::risk(after, &self.markets, &self.assets, fraction);
            require(
                next.equity >= next.initial,
                TxCode::InsufficientInitialMargin,
            )?;
        }
        Ok(())
    }

    /// The target fraction of each reported market at the open interest of
    /// all positions as they would be after the report.
    fn projected_targets(
        &self,
        after_report: &BTreeMap<Address, AccountModel>,
        entries: &[Entry],
    ) -> BTreeMap<String, i128> {
        let open_interest = super::open_interest_of(after_report.values());
        entries
            .iter()
            .map(|entry| {
                let market = &self.markets[&entry.market];
                let (long, short) = open_interest
                    .get(&entry.market)
                    .copied()
                    .unwrap_or_default();
                let usd = notional(long.max(short), market.price, Round::Up);
                let target = super::breakers::widen(
                    margin::target_fraction(market, usd),
                    self.margin_multiplier(&entry.market),
                );
                (entry.market.clone(), target)
            })
            .collect()
    }
}

/// A report entry replaces the position on that venue; size 0 closes it.
pub(super) fn apply_entry(account: &mut AccountModel, venue: &str, entry: &Entry, height: u64) {
    let key = (entry.market.clone(), venue.to_string());
    if entry.size == 0 {
        account.positions.remove(&key);
    } else {
        let position = Position {
            size: entry.size,
            entry_price: entry.entry_price,
            updated_height: height,
        };
        account.positions.insert(key, position);
    }
}

/// Net size per market across venues.
fn net_sizes(account: &AccountModel) -> BTreeMap<&str, i128> {
    let mut nets: BTreeMap<&str, i128> = BTreeMap::new();
    for ((market, _venue), position) in &account.positions {
        *nets.entry(market.as_str()).or_default() += position.size;
    }
    nets
}

/// More net exposure in some market: a larger net size, or a flip of side.
fn adds_exposure(before: &AccountModel, after: &AccountModel) -> bool {
    let before = net_sizes(before);
    net_sizes(after).into_iter().any(|(market, net_after)| {
        let net_before = before.get(market).copied().unwrap_or(0);
        let flipped = net_before.signum() * net_after.signum() < 0;
        flipped || net_after.abs() > net_before.abs()
    })
}
