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
pub fn oracle_result(round: &clearnode_types::price::OracleRound) -> ExecTxResult {
    let attribute = |key: String, value: String| abci::EventAttribute {
        key,
        value,
        index: false,
    };
    let mut events = vec![abci::Event {
        r#type: "oracle_update".to_string(),
        attributes: round
            .prices
            .iter()
            .map(|p| attribute(p.target.to_string(), p.price.to_string()))
            .collect(),
    }];
    if !round.underquoted.is_empty() {
        events.push(abci::Event {
            r#type: "oracle_underquoted".to_string(),
            attributes: round
                .underquoted
                .iter()
                .map(|t| attribute(t.to_string(), "less than 2/3 of power".into()))
                .collect(),
        });
    }
    ExecTxResult {
        code: 0,
        info: "oracle_update".to_string(),
        log: format!(
            "{} prices, {} quoted by too few validators",
            round.prices.len(),
            round.underquoted.len()
        ),
        events,
        ..Default::default()
    }
}
