//! The risk record encoded directly: the same bytes as
//! `risk_to_pb(..).encode_to_vec()` (proto3: fields in tag order, default
//! values left out), without building the message and its dozens of
//! `String`s. Every account a price move touches writes one.

use clearnode_num::{Money, Quantity, Ratio};
use clearnode_types::Address;
use prost::encoding::{encode_key, encode_varint, WireType};

use super::{bad, health_to_pb, DecodeError};
use crate::margin::Risk;

/// A protobuf writer with a reusable text buffer.
#[derive(Debug, Default)]
pub struct RecordWriter {
    out: Vec<u8>,
    nested: Vec<u8>,
    text: String,
}

fn bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    if !value.is_empty() {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(value.len() as u64, out);
        out.extend_from_slice(value);
    }
}

fn uint64(tag: u32, value: u64, out: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(value, out);
    }
}

/// A fixed-point value that appends its decimal text.
trait Decimal: Copy {
    fn push_to(self, out: &mut String);
}

macro_rules! decimal {
    ($($t:ty),*) => {$(
        impl Decimal for $t {
            fn push_to(self, out: &mut String) {
                self.push_decimal(out);
            }
        }
    )*};
}

decimal!(Money, Quantity, Ratio);

/// A decimal field, its text built in `text`.
fn text(tag: u32, value: impl Decimal, text: &mut String, out: &mut Vec<u8>) {
    text.clear();
    value.push_to(text);
    bytes(tag, text.as_bytes(), out);
}

impl RecordWriter {
    /// The encoded risk record of an account.
    pub fn risk(&mut self, address: &Address, risk: &Risk) -> Result<Vec<u8>, DecodeError> {
        let free = risk
            .free_collateral()
            .map_err(|e| bad("risk", e.to_string()))?;
        let Self {
            out,
            nested,
            text: t,
        } = self;
        out.clear();
        bytes(1, address.as_bytes(), out);
        text(2, risk.collateral_value, t, out);
        text(3, risk.unrealized_pnl, t, out);
        text(4, risk.equity, t, out);
        text(5, risk.initial, t, out);
        text(6, risk.maintenance, t, out);
        text(7, free, t, out);
        let health = i32::from(health_to_pb(risk.health));
        uint64(8, u64::try_from(health).map_err(|e| bad("risk", e))?, out);
        text(9, risk.leverage, t, out);
        for exposure in &risk.exposures {
            nested.clear();
            bytes(1, exposure.market.as_str().as_bytes(), nested);
            text(2, exposure.net_size, t, nested);
            text(3, exposure.gross_size, t, nested);
            text(4, exposure.net_notional, t, nested);
            text(5, exposure.unrealized_pnl, t, nested);
            text(6, exposure.initial, t, nested);
            text(7, exposure.maintenance, t, nested);
            // A repeated message is written even when empty.
            encode_key(10, WireType::LengthDelimited, out);
            encode_varint(nested.len() as u64, out);
            out.extend_from_slice(nested);
        }
        uint64(11, risk.computed_height, out);
        Ok(out.clone())
    }
}

#[cfg(test)]
mod tests;
