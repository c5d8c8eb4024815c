//! One validator's extension: encoding, bounds, and the bytes it signs.

use std::collections::BTreeSet;

use clearnode_proto::oracle::v1 as pb;
use clearnode_types::price::{PriceTarget, PriceUpdate};
use clearnode_types::tx::bounded_price;
use prost::Message;

use crate::OracleError;

/// Most quotes one extension may carry (extensions stay small: CometBFT's QA
/// saw 2 KB extensions double latency).
pub const QUOTES_PER_VOTE_MAX: usize = 64;

/// Encodes quotes as an extension.
pub fn encode_vote(quotes: &[PriceUpdate]) -> Vec<u8> {
    pb::OracleVote {
        quotes: quotes
            .iter()
            .map(|q| pb::PriceQuote {
                target: q.target.to_string(),
                price: q.price.to_string(),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// Decodes and bounds-checks an extension (VerifyVoteExtension's rule).
pub fn decode_vote(bytes: &[u8]) -> Result<Vec<PriceUpdate>, OracleError> {
    let vote = pb::OracleVote::decode(bytes).map_err(|e| OracleError::Malformed(e.to_string()))?;
    if vote.quotes.len() > QUOTES_PER_VOTE_MAX {
        return Err(OracleError::InvalidQuote(format!(
            "{} quotes, at most {QUOTES_PER_VOTE_MAX}",
            vote.quotes.len()
        )));
    }
    let mut seen = BTreeSet::new();
    let mut quotes = Vec::with_capacity(vote.quotes.len());
    for quote in vote.quotes {
        let target: PriceTarget =
            quote
                .target
                .parse()
                .map_err(|e: clearnode_types::price::TargetParseError| {
                    OracleError::InvalidQuote(e.to_string())
                })?;
        let price =
            bounded_price("price", &quote.price).map_err(|e| OracleError::InvalidQuote(e.log))?;
        if !seen.insert(target.clone()) {
            return Err(OracleError::InvalidQuote(format!("{target} quoted twice")));
        }
        quotes.push(PriceUpdate { target, price });
    }
    Ok(quotes)
}

/// The bytes a validator signs for its extension: CometBFT's
/// length-delimited `CanonicalVoteExtension`.
pub fn extension_sign_bytes(extension: &[u8], height: i64, round: i64, chain_id: &str) -> Vec<u8> {
    tendermint_proto::v0_38::types::CanonicalVoteExtension {
        extension: extension.to_vec(),
        height,
        round,
        chain_id: chain_id.to_string(),
    }
    .encode_length_delimited_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(target: &str, price: &str) -> PriceUpdate {
        PriceUpdate {
            target: target.parse().expect("target"),
            price: price.parse().expect("price"),
        }
    }

    #[test]
    fn votes_round_trip_and_are_bounded() {
        let quotes = vec![
            quote("market:BTC-PERP", "64000.5"),
            quote("asset:ETH", "3200"),
        ];
        assert_eq!(decode_vote(&encode_vote(&quotes)), Ok(quotes));
        assert_eq!(
            decode_vote(&[]),
            Ok(Vec::new()),
            "an empty extension is valid"
        );
        let twice = vec![quote("market:BTC-PERP", "1"), quote("market:BTC-PERP", "2")];
        assert!(decode_vote(&encode_vote(&twice)).is_err());
        let many: Vec<_> = (0..=QUOTES_PER_VOTE_MAX)
            .map(|i| quote(&format!("market:M{i}"), "1"))
            .collect();
        assert!(decode_vote(&encode_vote(&many)).is_err());
        let bad = pb::OracleVote {
            quotes: vec![pb::PriceQuote {
                target: "market:BTC-PERP".into(),
                price: "-1".into(),
            }],
        };
        assert!(decode_vote(&bad.encode_to_vec()).is_err());
        assert!(decode_vote(&[0xff, 0xff]).is_err());
    }
}
