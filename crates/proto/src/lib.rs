//! Generated protobuf types and gRPC services of clearnode.
//!
//! The `.proto` files under `proto/clearnode/` are the wire contract with
//! venues, accounts, custodians and auditors; this crate only compiles them.
//! Domain rules (bounds, decimal parsing, signatures) live in `clearnode-types`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Transactions.
pub mod tx {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/clearnode.tx.v1.rs"));
    }
}

/// Stored values (the canonical encoding of each Merkle leaf).
pub mod state {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/clearnode.state.v1.rs"));
    }
}

/// Submission services.
pub mod venue {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/clearnode.venue.v1.rs"));
    }
}

/// Read-only audit services.
pub mod audit {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/clearnode.audit.v1.rs"));
    }
}

/// Prices from validators (vote extensions).
pub mod oracle {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/clearnode.oracle.v1.rs"));
    }
}

/// Encoded `FileDescriptorSet` of all clearnode protos, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/clearnode_descriptor.bin"));

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Serializes bytes as lowercase hex (used by the generated `Serialize` impls).
pub fn hex_bytes<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&to_hex(bytes))
}

/// Serializes a list of byte strings as lowercase hex strings.
pub fn hex_bytes_list<S: serde::Serializer>(
    list: &[Vec<u8>],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(list.iter().map(|bytes| to_hex(bytes)))
}

/// A generated protobuf enum whose values have proto names.
pub trait ProtoEnum {
    /// The proto name of `value` (`MARKET_STATUS_OPEN`), if it is a known value.
    fn name_of(value: i32) -> Option<&'static str>;
}

include!(concat!(env!("OUT_DIR"), "/enum_names.rs"));

/// Serializes an enum field as its proto name, as the proto3 JSON mapping does; a value this
/// build does not know stays a number.
pub fn enum_name<E: ProtoEnum, S: serde::Serializer>(
    value: &i32,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match E::name_of(*value) {
        Some(name) => serializer.serialize_str(name),
        None => serializer.serialize_i32(*value),
    }
}

/// Serializes a repeated enum field as a list of proto names (see [`enum_name`]).
pub fn enum_names<E: ProtoEnum, S: serde::Serializer>(
    values: &[i32],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut list = serializer.serialize_seq(Some(values.len()))?;
    for value in values {
        match E::name_of(*value) {
            Some(name) => list.serialize_element(name)?,
            None => list.serialize_element(value)?,
        }
    }
    list.end()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test fixtures

    use super::state::v1 as state;

    #[test]
    fn enum_fields_serialize_as_proto_names_and_unknown_values_as_numbers() {
        let breaker = state::MarketBreaker {
            status: state::MarketStatus::Paused as i32,
            pause_cause: 99,
            ..Default::default()
        };
        let json = serde_json::to_value(&breaker).unwrap();
        assert_eq!(json["status"], "MARKET_STATUS_PAUSED");
        assert_eq!(json["pause_cause"], 99);
        let system = state::SystemBreaker {
            causes: vec![state::SystemCause::FundDrawdown as i32],
            ..Default::default()
        };
        let json = serde_json::to_value(&system).unwrap();
        assert_eq!(json["causes"][0], "SYSTEM_CAUSE_FUND_DRAWDOWN");
    }
}
