use clearnode_num::{Money, Price, Quantity};
use proptest::prelude::*;

use super::fill;
use crate::state::Position;

fn q(text: &str) -> Quantity {
    text.parse().expect("quantity")
}

fn p(text: &str) -> Price {
    text.parse().expect("price")
}

fn position(size: &str, entry: &str) -> Position {
    Position {
        size: q(size),
        entry_price: p(entry),
        updated_height: 1,
    }
}

#[test]
fn fills_open_add_reduce_close_and_flip() {
    let (opened, realized) = fill(None, q("2"), p("100"), 5).expect("fits");
    assert_eq!(
        opened,
        Some(Position {
            size: q("2"),
            entry_price: p("100"),
            updated_height: 5
        })
    );
    assert_eq!(realized, Money::ZERO);

    let (added, _) = fill(Some(&position("2", "100")), q("2"), p("110"), 5).expect("fits");
    assert_eq!(added.expect("open").entry_price, p("105"));

    let (reduced, realized) =
        fill(Some(&position("2", "100")), q("-0.5"), p("90"), 5).expect("fits");
    assert_eq!(reduced.expect("open").size, q("1.5"));
    assert_eq!(realized, "-5".parse().expect("money"));

    let (closed, realized) = fill(Some(&position("-3", "100")), q("3"), p("80"), 5).expect("fits");
    assert_eq!(closed, None);
    assert_eq!(realized, "60".parse().expect("money"));

    let (flipped, realized) =
        fill(Some(&position("1", "100")), q("-3"), p("120"), 5).expect("fits");
    let flipped = flipped.expect("open");
    assert_eq!((flipped.size, flipped.entry_price), (q("-2"), p("120")));
    assert_eq!(realized, "20".parse().expect("money"));
}

proptest! {
    /// Taking a position over and handing it back at the same price is free:
    /// the two legs realize opposite PnL and the position is restored.
    #[test]
    fn a_round_trip_at_one_price_realizes_only_the_closed_pnl(
        size in -1_000_000i64..1_000_000, entry in 1_000i64..100_000, delta in -1_000_000i64..1_000_000, price in 1_000i64..100_000,
    ) {
        prop_assume!(size != 0 && delta != 0);
        let start = Position {
            size: Quantity::from_raw(i128::from(size) * 1_000),
            entry_price: Price::from_units(entry).expect("positive"),
            updated_height: 1,
        };
        let delta = Quantity::from_raw(i128::from(delta) * 1_000);
        let price = Price::from_units(price).expect("positive");
        let (after, realized) = fill(Some(&start), delta, price, 2).expect("fits");
        let after_size = after.as_ref().map_or(Quantity::ZERO, |p| p.size);
        prop_assert_eq!(after_size, start.size.checked_add(delta).expect("fits"));
        if delta.signum() == start.size.signum() {
            prop_assert_eq!(realized, Money::ZERO);
        } else {
            let closed = if delta.abs().expect("fits") >= start.size.abs().expect("fits") {
                start.size
            } else {
                delta.checked_neg().expect("fits")
            };
            prop_assert_eq!(realized, closed.pnl(start.entry_price, price, clearnode_num::Rounding::Floor).expect("fits"));
        }
    }
}
