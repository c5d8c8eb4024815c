use clearnode_num::{Money, Quantity, Ratio};
use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::margin::{Exposure, Health};

fn money() -> impl Strategy<Value = Money> {
    prop_oneof![
        Just(Money::ZERO),
        (-1_000_000_000_000i128..1_000_000_000_000).prop_map(Money::from_raw),
        any::<i64>().prop_map(|raw| Money::from_raw(i128::from(raw))),
    ]
}

fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![
        Just(Quantity::ZERO),
        (-1_000_000_000_000_000i128..1_000_000_000_000_000).prop_map(Quantity::from_raw),
    ]
}

fn exposure() -> impl Strategy<Value = Exposure> {
    (
        prop_oneof![Just("BTC-PERP"), Just("ETH-PERP"), Just("A")],
        (quantity(), quantity()),
        (money(), money(), money(), money()),
    )
        .prop_map(
            |(
                market,
                (net_size, gross_size),
                (net_notional, unrealized_pnl, initial, maintenance),
            )| {
                Exposure {
                    market: market.parse().expect("id"),
                    net_size,
                    gross_size,
                    net_notional,
                    unrealized_pnl,
                    initial,
                    maintenance,
                }
            },
        )
}

fn risk() -> impl Strategy<Value = Risk> {
    (
        (money(), money(), money(), money(), money()),
        0usize..4,
        (money(), 0i128..100_000_000),
        proptest::collection::vec(exposure(), 0..6),
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(
            |(
                (collateral_value, unrealized_pnl, equity, initial, maintenance),
                health,
                (net_notional, leverage),
                exposures,
                computed_height,
            )| Risk {
                collateral_value,
                unrealized_pnl,
                equity,
                initial,
                maintenance,
                health: [
                    Health::Healthy,
                    Health::MarginCall,
                    Health::Liquidating,
                    Health::Bankrupt,
                ][health],
                net_notional,
                leverage: Ratio::from_raw(leverage),
                exposures,
                computed_height,
            },
        )
}

proptest! {
    /// The direct encoding is byte for byte prost's encoding of the
    /// message `risk_to_pb` builds, for any risk (one writer reused).
    #[test]
    fn the_risk_record_encodes_like_the_message(risks in proptest::collection::vec(risk(), 1..4), byte: u8) {
        let address = Address::from_slice(&[byte; 20]).expect("20 bytes");
        let mut writer = RecordWriter::default();
        for risk in &risks {
            let expected = super::super::risk_to_pb(&address, risk).map(|m| m.encode_to_vec());
            prop_assert_eq!(writer.risk(&address, risk), expected);
        }
    }
}
