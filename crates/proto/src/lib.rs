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
