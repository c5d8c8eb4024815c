//! The records a large state is made of (accounts, positions, risks),
//! decoded straight from their stored bytes: each field is read as a slice
//! of the bytes, so a record costs no allocation besides what the engine
//! keeps. The generated messages go through the same views, so both paths
//! convert alike; for well-formed input the result is exactly prost's (the
//! last of a repeated singular field wins, repeated fields append, unknown
//! fields are skipped).

use clearnode_num::Money;
use clearnode_proto::state::v1 as pb;
use clearnode_types::{Address, AssetId, VenueId};
use prost::encoding::{decode_key, decode_varint, WireType};

use super::{bad, health_from_pb, parse, DecodeError};
use crate::margin::{Exposure, Risk};
use crate::state::{Account, Position, PositionKey};

/// A field's value on the wire.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-width value (read past: no field here has one).
    Fixed,
}

/// The fields of one encoded message, in order.
struct Fields<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Fields { what, rest: bytes }
    }

    fn malformed(&self, detail: &str) -> DecodeError {
        bad(self.what, format!("malformed protobuf: {detail}"))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        decode_varint(&mut self.rest).map_err(|_| self.malformed("invalid varint"))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(len).map_err(|_| self.malformed("length"))?;
        if len > self.rest.len() {
            return Err(self.malformed("truncated"));
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// The next field number and value, `None` at the end.
    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, DecodeError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (field, wire_type) =
            decode_key(&mut self.rest).map_err(|e| self.malformed(&e.to_string()))?;
        let value = match wire_type {
            WireType::Varint => Value::Varint(self.varint()?),
            WireType::SixtyFourBit => self.take(8).map(|_| Value::Fixed)?,
            WireType::LengthDelimited => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            WireType::ThirtyTwoBit => self.take(4).map(|_| Value::Fixed)?,
            WireType::StartGroup | WireType::EndGroup => return Err(self.malformed("wire type")),
        };
        Ok(Some((field, value)))
    }

    fn bytes(&self, value: Value<'a>) -> Result<&'a [u8], DecodeError> {
        match value {
            Value::Bytes(bytes) => Ok(bytes),
            _ => Err(self.malformed("expected a length-delimited field")),
        }
    }

    fn text(&self, value: Value<'a>) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(value)?).map_err(|_| self.malformed("invalid UTF-8"))
    }

    fn number(&self, value: Value<'a>) -> Result<u64, DecodeError> {
        match value {
            Value::Varint(number) => Ok(number),
            _ => Err(self.malformed("expected a varint")),
        }
    }
}

fn address(what: &'static str, bytes: &[u8]) -> Result<Address, DecodeError> {
    Address::from_slice(bytes).ok_or_else(|| bad(what, "address"))
}

/// A stored position's fields (inside its account's `Positions` record).
pub(super) struct PositionView<'a> {
    market: &'a str,
    venue: &'a str,
    size: &'a str,
    entry_price: &'a str,
    updated_height: u64,
}

impl<'a> PositionView<'a> {
    pub(super) fn of_pb(value: &'a pb::Position) -> Self {
        PositionView {
            market: &value.market,
            venue: &value.venue,
            size: &value.size,
            entry_price: &value.entry_price,
            updated_height: value.updated_height,
        }
    }

    fn of_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut view = PositionView {
            market: "",
            venue: "",
            size: "",
            entry_price: "",
            updated_height: 0,
        };
        let mut fields = Fields::new("position", bytes);
        while let Some((field, value)) = fields.next_field()? {
            match field {
                // The account is the enclosing record's.
                1 => _ = fields.bytes(value)?,
                2 => view.market = fields.text(value)?,
                3 => view.venue = fields.text(value)?,
                4 => view.size = fields.text(value)?,
                5 => view.entry_price = fields.text(value)?,
                6 => view.updated_height = fields.number(value)?,
                _ => {}
            }
        }
        Ok(view)
    }

    fn decode(self) -> Result<(PositionKey, Position), DecodeError> {
        Ok((
            (
                parse("position", self.market)?,
                parse("position", self.venue)?,
            ),
            Position {
                size: parse("position", self.size)?,
                entry_price: parse("position", self.entry_price)?,
                updated_height: self.updated_height,
            },
        ))
    }
}

/// A stored account's positions.
pub(super) struct PositionsView<'a> {
    account: &'a [u8],
    positions: Vec<PositionView<'a>>,
}

impl<'a> PositionsView<'a> {
    pub(super) fn of_pb(value: &'a pb::Positions) -> Self {
        PositionsView {
            account: &value.account,
            positions: value.positions.iter().map(PositionView::of_pb).collect(),
        }
    }

    fn of_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut view = PositionsView {
            account: &[],
            positions: Vec::new(),
        };
        let mut fields = Fields::new("positions", bytes);
        while let Some((field, value)) = fields.next_field()? {
            match field {
                1 => view.account = fields.bytes(value)?,
                2 => view
                    .positions
                    .push(PositionView::of_bytes(fields.bytes(value)?)?),
                _ => {}
            }
        }
        Ok(view)
    }

    pub(super) fn decode(self) -> Result<(Address, Vec<(PositionKey, Position)>), DecodeError> {
        let address = address("positions", self.account)?;
        let positions = self
            .positions
            .into_iter()
            .map(PositionView::decode)
            .collect::<Result<_, _>>()?;
        Ok((address, positions))
    }
}

/// Decodes a stored account's positions.
pub fn positions_from_bytes(
    bytes: &[u8],
) -> Result<(Address, Vec<(PositionKey, Position)>), DecodeError> {
    PositionsView::of_bytes(bytes)?.decode()
}

/// A stored account's fields.
pub(super) struct AccountView<'a> {
    address: &'a [u8],
    collateral: Vec<(&'a str, &'a str)>,
    authorized_venues: Vec<&'a str>,
    settled_pnl: &'a str,
    liquidator: bool,
    liquidating_since: u64,
    isolated_owner: &'a [u8],
    isolated_market: &'a str,
}

impl<'a> AccountView<'a> {
    pub(super) fn of_pb(value: &'a pb::Account) -> Self {
        AccountView {
            address: &value.address,
            collateral: value
                .collateral
                .iter()
                .map(|entry| (entry.asset.as_str(), entry.amount.as_str()))
                .collect(),
            authorized_venues: value.authorized_venues.iter().map(String::as_str).collect(),
            settled_pnl: &value.settled_pnl,
            liquidator: value.liquidator,
            liquidating_since: value.liquidating_since,
            isolated_owner: &value.isolated_owner,
            isolated_market: &value.isolated_market,
        }
    }

    fn of_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut view = AccountView {
            address: &[],
            collateral: Vec::new(),
            authorized_venues: Vec::new(),
            settled_pnl: "",
            liquidator: false,
            liquidating_since: 0,
            isolated_owner: &[],
            isolated_market: "",
        };
        let mut fields = Fields::new("account", bytes);
        while let Some((field, value)) = fields.next_field()? {
            match field {
                1 => view.address = fields.bytes(value)?,
                2 => {
                    let mut entry = Fields::new("account", fields.bytes(value)?);
                    let (mut asset, mut amount) = ("", "");
                    while let Some((field, value)) = entry.next_field()? {
                        match field {
                            1 => asset = entry.text(value)?,
                            2 => amount = entry.text(value)?,
                            _ => {}
                        }
                    }
                    view.collateral.push((asset, amount));
                }
                3 => view.authorized_venues.push(fields.text(value)?),
                4 => view.settled_pnl = fields.text(value)?,
                5 => view.liquidator = fields.number(value)? != 0,
                6 => view.liquidating_since = fields.number(value)?,
                7 => view.isolated_owner = fields.bytes(value)?,
                8 => view.isolated_market = fields.text(value)?,
                _ => {}
            }
        }
        Ok(view)
    }

    pub(super) fn decode(self) -> Result<(Address, Account), DecodeError> {
        let address = address("account", self.address)?;
        let mut account = Account {
            settled_pnl: parse("account", self.settled_pnl)?,
            liquidator: self.liquidator,
            liquidating_since: self.liquidating_since,
            ..Account::default()
        };
        if !self.isolated_owner.is_empty() {
            let owner = Address::from_slice(self.isolated_owner)
                .ok_or_else(|| bad("account", "isolated owner"))?;
            account.isolated = Some((owner, parse("account", self.isolated_market)?));
        }
        for (asset, amount) in self.collateral {
            let asset: AssetId = parse("account", asset)?;
            account.collateral.insert(asset, parse("account", amount)?);
        }
        for venue in self.authorized_venues {
            account
                .authorized_venues
                .insert(parse::<VenueId>("account", venue)?);
        }
        Ok((address, account))
    }
}

/// Decodes a stored account record (positions and risk are stored apart).
pub fn account_from_bytes(bytes: &[u8]) -> Result<(Address, Account), DecodeError> {
    AccountView::of_bytes(bytes)?.decode()
}

/// A stored exposure's fields, in proto order.
#[derive(Default)]
pub(super) struct ExposureView<'a>([&'a str; 7]);

impl ExposureView<'_> {
    fn decode(&self) -> Result<Exposure, DecodeError> {
        let [market, net_size, gross_size, net_notional, unrealized_pnl, initial, maintenance] =
            self.0;
        Ok(Exposure {
            market: parse("risk", market)?,
            net_size: parse("risk", net_size)?,
            gross_size: parse("risk", gross_size)?,
            net_notional: parse("risk", net_notional)?,
            unrealized_pnl: parse("risk", unrealized_pnl)?,
            initial: parse("risk", initial)?,
            maintenance: parse("risk", maintenance)?,
        })
    }
}

/// A stored risk's fields (free collateral is derived, not read).
pub(super) struct RiskView<'a> {
    account: &'a [u8],
    /// Collateral value, unrealized PnL, equity, initial and maintenance.
    amounts: [&'a str; 5],
    health: i32,
    leverage: &'a str,
    exposures: Vec<ExposureView<'a>>,
    computed_height: u64,
}

impl<'a> RiskView<'a> {
    pub(super) fn of_pb(value: &'a pb::AccountRisk) -> Self {
        RiskView {
            account: &value.account,
            amounts: [
                &value.collateral_value,
                &value.unrealized_pnl,
                &value.equity,
                &value.initial_requirement,
                &value.maintenance_requirement,
            ],
            health: value.health,
            leverage: &value.leverage,
            exposures: value
                .exposures
                .iter()
                .map(|e| {
                    ExposureView([
                        &e.market,
                        &e.net_size,
                        &e.gross_size,
                        &e.net_notional,
                        &e.unrealized_pnl,
                        &e.initial_requirement,
                        &e.maintenance_requirement,
                    ])
                })
                .collect(),
            computed_height: value.computed_height,
        }
    }

    fn of_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut view = RiskView {
            account: &[],
            amounts: [""; 5],
            health: 0,
            leverage: "",
            exposures: Vec::new(),
            computed_height: 0,
        };
        let mut fields = Fields::new("risk", bytes);
        while let Some((field, value)) = fields.next_field()? {
            match field {
                1 => view.account = fields.bytes(value)?,
                2..=6 => {
                    let slot = usize::try_from(field - 2).map_err(|_| bad("risk", "field"))?;
                    view.amounts[slot] = fields.text(value)?;
                }
                // Truncated to 32 bits, as prost reads an enum.
                8 => view.health = fields.number(value)? as i32,
                9 => view.leverage = fields.text(value)?,
                10 => {
                    let mut exposure = ExposureView::default();
                    let mut entry = Fields::new("risk", fields.bytes(value)?);
                    while let Some((field, value)) = entry.next_field()? {
                        if let Some(slot) = field
                            .checked_sub(1)
                            .and_then(|i| exposure.0.get_mut(usize::try_from(i).ok()?))
                        {
                            *slot = entry.text(value)?;
                        }
                    }
                    view.exposures.push(exposure);
                }
                11 => view.computed_height = fields.number(value)?,
                // 7: free collateral, derived from the rest.
                _ => {}
            }
        }
        Ok(view)
    }

    pub(super) fn decode(self) -> Result<(Address, Risk), DecodeError> {
        let address = address("risk", self.account)?;
        // Exactly as long as it is: the engine keeps it.
        let mut exposures = Vec::with_capacity(self.exposures.len());
        for exposure in &self.exposures {
            exposures.push(exposure.decode()?);
        }
        let net_notional = Money::checked_sum(exposures.iter().map(|e| e.net_notional))
            .map_err(|e| bad("risk", e))?;
        let [collateral_value, unrealized_pnl, equity, initial, maintenance] = self.amounts;
        Ok((
            address,
            Risk {
                collateral_value: parse("risk", collateral_value)?,
                unrealized_pnl: parse("risk", unrealized_pnl)?,
                equity: parse("risk", equity)?,
                initial: parse("risk", initial)?,
                maintenance: parse("risk", maintenance)?,
                health: health_from_pb(self.health)?,
                net_notional,
                leverage: parse("risk", self.leverage)?,
                exposures,
                computed_height: self.computed_height,
            },
        ))
    }
}

/// Decodes a stored account risk.
pub fn risk_from_bytes(bytes: &[u8]) -> Result<(Address, Risk), DecodeError> {
    RiskView::of_bytes(bytes)?.decode()
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
