//! Conversions between engine values and CometBFT's protobuf types.

use clearnode_engine::{Event, TxOutcome};
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{self, ExecTxResult};

/// Codespace of every clearnode result code.
pub const CODESPACE: &str = "clearnode";

/// (seconds, nanos) of a header time; the epoch when absent.
pub fn timestamp_parts(time: Option<&Timestamp>) -> (i64, i32) {
    time.map_or((0, 0), |t| (t.seconds, t.nanos))
}

/// An engine event as an ABCI event (indexed, so venues can search by venue or account).
pub fn event(event: Event) -> abci::Event {
    abci::Event {
        r#type: event.kind,
        attributes: event
            .attributes
            .into_iter()
            .map(|(key, value)| abci::EventAttribute {
                key,
                value,
                index: true,
            })
            .collect(),
    }
}

/// A transaction outcome as an ABCI result. Only code, data and gas are
/// hashed into the next header; the log is for people.
pub fn exec_result(outcome: TxOutcome) -> ExecTxResult {
    ExecTxResult {
        code: outcome.code.number(),
        data: Default::default(),
        log: outcome.log,
        info: outcome.code.name().to_string(),
        gas_wanted: 1,
        gas_used: 1,
        events: outcome.events.into_iter().map(event).collect(),
        codespace: if outcome.code.number() == 0 {
            String::new()
        } else {
            CODESPACE.to_string()
        },
    }
}

/// The result of the block's oracle update.
pub fn oracle_result(prices: &[clearnode_types::price::PriceUpdate]) -> ExecTxResult {
    ExecTxResult {
        code: 0,
        info: "oracle_update".to_string(),
        log: format!("{} prices", prices.len()),
        events: vec![abci::Event {
            r#type: "oracle_update".to_string(),
            attributes: prices
                .iter()
                .map(|p| abci::EventAttribute {
                    key: p.target.to_string(),
                    value: p.price.to_string(),
                    index: false,
                })
                .collect(),
        }],
        ..Default::default()
    }
}
