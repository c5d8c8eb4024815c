use clearnode_types::price::PriceUpdate;
use ed25519_dalek::{Signer as _, SigningKey};

use super::*;
use crate::{encode_vote, validator_address, Validator};

const CHAIN: &str = "clearnode-test";

fn btc(price: &str) -> Vec<PriceUpdate> {
    vec![PriceUpdate {
        target: "market:BTC-PERP".parse().expect("target"),
        price: price.parse().expect("price"),
    }]
}

fn set(keys: &[SigningKey]) -> ValidatorSet {
    keys.iter()
        .map(|k| {
            let public_key = k.verifying_key().to_bytes();
            (
                validator_address(&public_key),
                Validator {
                    public_key,
                    power: 10,
                },
            )
        })
        .collect()
}

fn vote(key: &SigningKey, height: i64, quotes: &[PriceUpdate]) -> SignedVote {
    let extension = encode_vote(quotes);
    let signature = key.sign(&extension_sign_bytes(&extension, height, 0, CHAIN));
    SignedVote {
        validator_address: validator_address(&key.verifying_key().to_bytes()).to_vec(),
        power: 10,
        extension,
        signature: signature.to_bytes().to_vec(),
    }
}

fn keys() -> Vec<SigningKey> {
    (1u8..=4)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect()
}

#[test]
fn an_honest_update_yields_the_median() {
    let keys = keys();
    let votes = vec![
        vote(&keys[0], 7, &btc("100")),
        vote(&keys[1], 7, &btc("102")),
        vote(&keys[2], 7, &btc("101")),
        vote(&keys[3], 7, &btc("999999")),
    ];
    let tx = build_update(7, 0, votes);
    assert!(is_oracle_tx(&tx));
    let prices = verify_update(&tx, &set(&keys), CHAIN, 8)
        .expect("valid")
        .prices;
    assert_eq!(prices, btc("101"));
}

#[test]
fn forged_or_misplaced_updates_are_refused() {
    let keys = keys();
    let validators = set(&keys);
    let honest = || {
        vec![
            vote(&keys[0], 7, &btc("100")),
            vote(&keys[1], 7, &btc("100")),
            vote(&keys[2], 7, &btc("100")),
        ]
    };
    assert!(matches!(
        verify_update(&build_update(7, 0, honest()), &validators, CHAIN, 9),
        Err(OracleError::WrongHeight { .. })
    ));
    let mut forged = honest();
    forged[0].extension = encode_vote(&btc("1"));
    assert!(matches!(
        verify_update(&build_update(7, 0, forged), &validators, CHAIN, 8),
        Err(OracleError::BadSignature(_))
    ));
    let mut twice = honest();
    twice.push(twice[0].clone());
    assert!(matches!(
        verify_update(&build_update(7, 0, twice), &validators, CHAIN, 8),
        Err(OracleError::InvalidVote(_))
    ));
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let outsider = vec![vote(&stranger, 7, &btc("1"))];
    assert!(matches!(
        verify_update(&build_update(7, 0, outsider), &validators, CHAIN, 8),
        Err(OracleError::InvalidVote(_))
    ));
    let mut inflated = honest();
    inflated[0].power = 1_000;
    assert!(matches!(
        verify_update(&build_update(7, 0, inflated), &validators, CHAIN, 8),
        Err(OracleError::InvalidVote(_))
    ));
    assert!(verify_update(b"not an update", &validators, CHAIN, 8).is_err());
}

#[test]
fn a_clearnode_tx_is_never_an_oracle_update() {
    let tx = clearnode_types::tx::sign_tx(&SigningKey::from_bytes(&[1; 32]), &Default::default());
    assert!(!is_oracle_tx(&tx));
    assert!(clearnode_types::tx::verify_tx(ORACLE_TX_PREFIX, CHAIN).is_err());
}
