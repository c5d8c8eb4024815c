//! The stake-weighted median.

use std::collections::BTreeMap;

use clearnode_num::Price;
use clearnode_types::price::{OracleRound, PriceTarget, PriceUpdate};

/// Per target, the stake-weighted median of the quotes, for targets quoted
/// by validators holding at least 2/3 of `total_power`. The median is the
/// lowest price at which the quoting power at or below it reaches half of
/// the quoting power: a validator quoting a wild price moves it only by
/// its rank, never by its size.
pub fn aggregate(votes: &[(u64, Vec<PriceUpdate>)], total_power: u64) -> Vec<PriceUpdate> {
    aggregate_round(votes, total_power).prices
}

/// The round: [`aggregate`]'s prices, and the targets quoted by less than
/// 2/3 of the power (too few reporters: not priced, flagged by the engine).
pub fn aggregate_round(votes: &[(u64, Vec<PriceUpdate>)], total_power: u64) -> OracleRound {
    let mut by_target: BTreeMap<&PriceTarget, Vec<(Price, u64)>> = BTreeMap::new();
    for (power, quotes) in votes {
        for quote in quotes {
            by_target
                .entry(&quote.target)
                .or_default()
                .push((quote.price, *power));
        }
    }
    let total = u128::from(total_power);
    let mut round = OracleRound::default();
    for (target, mut quotes) in by_target {
        let quoting: u128 = quotes.iter().map(|(_, power)| u128::from(*power)).sum();
        if total == 0 || 3 * quoting < 2 * total {
            round.underquoted.push(target.clone());
            continue;
        }
        quotes.sort();
        let mut cumulative = 0u128;
        for (price, power) in quotes {
            cumulative += u128::from(power);
            if 2 * cumulative >= quoting {
                round.prices.push(PriceUpdate {
                    target: target.clone(),
                    price,
                });
                break;
            }
        }
    }
    round
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn btc(price: i64) -> Vec<PriceUpdate> {
        vec![PriceUpdate {
            target: "market:BTC-PERP".parse().expect("target"),
            price: Price::from_units(price).expect("positive"),
        }]
    }

    #[test]
    fn a_wild_quote_does_not_move_the_median() {
        let votes = vec![
            (10, btc(100)),
            (10, btc(101)),
            (10, btc(102)),
            (10, btc(1_000_000)),
        ];
        let prices = aggregate(&votes, 40);
        assert_eq!(prices[0].price, Price::from_units(101).expect("positive"));
    }

    #[test]
    fn a_target_needs_two_thirds_of_the_power() {
        let votes = vec![
            (10, btc(100)),
            (10, btc(101)),
            (10, Vec::new()),
            (10, Vec::new()),
        ];
        assert!(
            aggregate(&votes, 40).is_empty(),
            "half the power is not enough"
        );
        let votes = vec![(20, btc(100)), (10, btc(101)), (10, Vec::new())];
        assert_eq!(aggregate(&votes, 40).len(), 1, "3/4 of the power is");
        let round = aggregate_round(&votes[..1], 40);
        assert!(round.prices.is_empty());
        assert_eq!(round.underquoted.len(), 1, "half the power is too few");
    }

    proptest! {
        /// The median always lies between the lowest and highest quote, and
        /// any coalition of less than half the quoting power cannot push it
        /// outside the range the rest quoted.
        #[test]
        fn the_median_is_bounded_by_the_honest_majority(
            honest in proptest::collection::vec((1u64..100, 1_000i64..2_000), 3..10),
            wild_price in 1i64..10_000_000,
        ) {
            let honest_power: u64 = honest.iter().map(|(p, _)| p).sum();
            let wild_power = honest_power / 2 - 1;
            let mut votes: Vec<(u64, Vec<PriceUpdate>)> = honest.iter().map(|(p, price)| (*p, btc(*price))).collect();
            if wild_power > 0 {
                votes.push((wild_power, btc(wild_price)));
            }
            let prices = aggregate(&votes, honest_power + wild_power);
            prop_assert_eq!(prices.len(), 1);
            let low = honest.iter().map(|(_, p)| *p).min().expect("some");
            let high = honest.iter().map(|(_, p)| *p).max().expect("some");
            let median = prices[0].price;
            prop_assert!(median >= Price::from_units(low).expect("positive"));
            prop_assert!(median <= Price::from_units(high).expect("positive"));
        }
    }
}
