use super::*;

const CHAIN: &str = "clearnode-test";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn body(action: pb::tx_body::Action) -> pb::TxBody {
    pb::TxBody {
        chain_id: CHAIN.into(),
        sequence: 3,
        action: Some(action),
    }
}

fn report(entries: Vec<pb::PositionEntry>) -> pb::tx_body::Action {
    pb::tx_body::Action::PositionReport(pb::PositionReport {
        venue_id: "venue-a".into(),
        entries,
        acknowledged_height: 0,
    })
}

fn entry(account: u8, market: &str, size: &str, price: &str) -> pb::PositionEntry {
    pb::PositionEntry {
        account: vec![account; 20],
        market: market.into(),
        size: size.into(),
        entry_price: price.into(),
    }
}

fn code_of(bytes: &[u8]) -> TxCode {
    match verify_tx(bytes, CHAIN) {
        Ok(_) => TxCode::Ok,
        Err(rejection) => rejection.code,
    }
}

#[test]
fn a_signed_report_verifies() {
    let tx = sign_tx(
        &key(1),
        &body(report(vec![entry(9, "BTC-PERP", "-1.5", "60000")])),
    );
    let verified = verify_tx(&tx, CHAIN).expect("valid");
    assert_eq!(verified.sequence, 3);
    assert_eq!(verified.signer, key(1).verifying_key().to_bytes());
    let Action::PositionReport(report) = verified.action else {
        panic!("wrong kind")
    };
    assert_eq!(report.entries[0].size.to_string(), "-1.5");
}

#[test]
fn each_stateless_rejection_has_its_code() {
    let good = body(report(vec![entry(9, "BTC-PERP", "1", "60000")]));
    let signed = sign_tx(&key(1), &good);

    assert_eq!(code_of(&vec![0u8; TX_BYTES_MAX + 1]), TxCode::TxTooLarge);
    assert_eq!(code_of(&[0xff, 0xff, 0xff]), TxCode::MalformedTx);

    let mut envelope = pb::Tx::decode(signed.as_slice()).expect("decodes");
    envelope.signer_public_key = vec![1, 2, 3];
    assert_eq!(code_of(&envelope.encode_to_vec()), TxCode::InvalidPublicKey);

    let mut forged = pb::Tx::decode(signed.as_slice()).expect("decodes");
    forged.signer_public_key = key(2).verifying_key().to_bytes().to_vec();
    assert_eq!(code_of(&forged.encode_to_vec()), TxCode::InvalidSignature);

    let mut tampered = pb::Tx::decode(signed.as_slice()).expect("decodes");
    let last = tampered.body.len() - 1;
    tampered.body[last] ^= 1;
    assert_eq!(code_of(&tampered.encode_to_vec()), TxCode::InvalidSignature);

    let garbage_body = pb::Tx {
        body: vec![0xff; 4],
        signer_public_key: key(1).verifying_key().to_bytes().to_vec(),
        signature: key(1).sign(&sign_bytes(&[0xff; 4])).to_bytes().to_vec(),
    };
    assert_eq!(
        code_of(&garbage_body.encode_to_vec()),
        TxCode::MalformedBody
    );

    let mut other_chain = good.clone();
    other_chain.chain_id = "other".into();
    assert_eq!(
        code_of(&sign_tx(&key(1), &other_chain)),
        TxCode::WrongChainId
    );

    let mut empty = good.clone();
    empty.action = None;
    assert_eq!(code_of(&sign_tx(&key(1), &empty)), TxCode::MissingAction);

    let cases = [
        (
            report(vec![entry(9, "bad market", "1", "1")]),
            TxCode::InvalidField,
        ),
        (
            report(vec![entry(9, "BTC-PERP", "1.2.3", "1")]),
            TxCode::InvalidAmount,
        ),
        (
            report(vec![entry(9, "BTC-PERP", "1", "0")]),
            TxCode::InvalidAmount,
        ),
        (
            report(vec![entry(9, "BTC-PERP", "1", "-5")]),
            TxCode::InvalidAmount,
        ),
        (report(vec![]), TxCode::TooManyEntries),
        (
            report(vec![
                entry(9, "BTC-PERP", "1", "1"),
                entry(9, "BTC-PERP", "2", "1"),
            ]),
            TxCode::DuplicateEntry,
        ),
        (
            pb::tx_body::Action::WithdrawCollateral(pb::WithdrawCollateral {
                asset: "USDC".into(),
                amount: "0".into(),
            }),
            TxCode::InvalidAmount,
        ),
        (
            pb::tx_body::Action::DepositCollateral(pb::DepositCollateral {
                account: vec![1; 19],
                asset: "USDC".into(),
                amount: "1".into(),
                reference: String::new(),
            }),
            TxCode::InvalidField,
        ),
    ];
    for (action, expected) in cases {
        assert_eq!(
            code_of(&sign_tx(&key(1), &body(action.clone()))),
            expected,
            "{action:?}"
        );
    }
}

#[test]
fn closing_a_position_needs_no_price() {
    let tx = sign_tx(&key(1), &body(report(vec![entry(9, "BTC-PERP", "0", "")])));
    let Action::PositionReport(report) = verify_tx(&tx, CHAIN).expect("valid").action else {
        panic!("wrong kind")
    };
    assert_eq!(report.entries[0].entry_price, None);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = verify_tx(&bytes, CHAIN);
    }
}

#[test]
fn remembered_verifications_give_the_same_outcomes() {
    let good = sign_tx(
        &key(1),
        &body(report(vec![entry(9, "BTC-PERP", "-1.5", "60000")])),
    );
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let fresh = (verify_tx_once(&good, CHAIN), verify_tx_once(&bad, CHAIN));
    remember_verified_txs(1_000);
    for _ in 0..2 {
        assert_eq!(verify_tx(&good, CHAIN), fresh.0);
        assert_eq!(verify_tx(&bad, CHAIN), fresh.1);
        assert_eq!(code_of(&bad), TxCode::InvalidSignature);
        assert_eq!(
            verify_tx(&good, "another-chain").map_err(|r| r.code),
            Err(TxCode::WrongChainId)
        );
    }
}
