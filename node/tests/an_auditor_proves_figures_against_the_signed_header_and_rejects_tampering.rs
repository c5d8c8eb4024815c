//! An auditor proves a figure without trusting the node: the value's proof
//! against the app hash in the header of the next block, signed by more
//! than 2/3 of the validators, a third of whom it trusts. Every kind of
//! tampering fails at its own step.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use base64::Engine as _;
use clearnode_audit::{verify, AuditError, Evidence};
use clearnode_proto::audit::v1 as audit;
use ed25519_dalek::SigningKey;
use prost::Message;
use support::*;
use tendermint::block::signed_header::SignedHeader;
use tendermint::validator::Info;

async fn rpc(node: &TestNode, path: &str) -> serde_json::Value {
    let body: serde_json::Value = reqwest::get(format!("{}/{path}", node.rpc_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_proves_figures_against_the_signed_header_and_rejects_tampering() {
    let mut node = TestNode::init();
    node.quote_genesis_prices();
    node.start();
    let client = node.client().await;
    let custodian = node.key("custodian");
    let trader = SigningKey::from_bytes(&[33; 32]);
    client
        .commit(
            signed(&custodian, 0, deposit(address(&trader), "USDC", "1234")),
            "custodian",
        )
        .await;

    // The command an auditor runs.
    let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(["audit", "verify", "--home"])
        .arg(node.home())
        .arg("system")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("PROVEN: on chain clearnode-e2e, `agg/system`"),
        "{stdout}"
    );
    assert!(stdout.contains("10 of 10 voting power (100%)"), "{stdout}");

    // The same checks by hand, then tampered one at a time.
    let answer = client
        .audit()
        .get_system_risk(audit::GetSystemRiskRequest {
            height: 0,
            prove: true,
        })
        .await
        .unwrap()
        .into_inner();
    let context = answer.context.unwrap();
    let value = answer.aggregate.unwrap().encode_to_vec();
    let next = context.height + 1;
    while rpc(&node, &format!("commit?height={next}")).await["canonical"]
        != serde_json::Value::Bool(true)
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let commit = rpc(&node, &format!("commit?height={next}")).await;
    let header: SignedHeader = serde_json::from_value(commit["signed_header"].clone()).unwrap();
    let validators: Vec<Info> = serde_json::from_value(
        rpc(&node, &format!("validators?height={next}")).await["validators"].clone(),
    )
    .unwrap();
    let genesis: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(node.home().join("cometbft/config/genesis.json")).unwrap(),
    )
    .unwrap();
    let trusted: Vec<Info> = serde_json::from_value(genesis["validators"].clone()).unwrap();
    let evidence = || Evidence {
        key: &context.key,
        value: &value,
        proof: &context.proof,
        height: context.height,
        app_hash: &context.app_hash,
        signed_header: &header,
        validators: validators.clone(),
        trusted: trusted.clone(),
    };
    let statement = verify(&evidence()).unwrap();
    assert_eq!((statement.signed_power, statement.total_power), (10, 10));

    let mut tampered_value = value.clone();
    tampered_value[2] ^= 1;
    assert!(matches!(
        verify(&Evidence {
            value: &tampered_value,
            ..evidence()
        }),
        Err(AuditError::Proof)
    ));
    let mut tampered_hash = context.app_hash.clone();
    tampered_hash[0] ^= 1;
    assert!(matches!(
        verify(&Evidence {
            app_hash: &tampered_hash,
            ..evidence()
        }),
        Err(AuditError::AppHash { .. })
    ));
    assert!(matches!(
        verify(&Evidence {
            height: context.height + 1,
            ..evidence()
        }),
        Err(AuditError::HeaderHeight { .. })
    ));
    let stranger_key = SigningKey::from_bytes(&[99; 32]).verifying_key().to_bytes();
    let stranger: Vec<Info> = serde_json::from_value(serde_json::json!([{
        "address": hex::encode_upper(clearnode_oracle::validator_address(&stranger_key)),
        "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64::engine::general_purpose::STANDARD.encode(stranger_key)},
        "power": "10"
    }]))
    .unwrap();
    assert!(matches!(
        verify(&Evidence {
            trusted: stranger.clone(),
            ..evidence()
        }),
        Err(AuditError::Trust(_))
    ));
    assert!(matches!(
        verify(&Evidence {
            validators: stranger,
            ..evidence()
        }),
        Err(AuditError::ValidatorSet)
    ));
    // A header whose app hash was rewritten (to match a forged answer) no
    // longer hashes to the block the validators signed.
    let mut forged = commit["signed_header"].clone();
    forged["header"]["app_hash"] = serde_json::Value::String(hex::encode_upper(&tampered_hash));
    let forged: SignedHeader = serde_json::from_value(forged).unwrap();
    let forged_evidence = Evidence {
        app_hash: &tampered_hash,
        signed_header: &forged,
        ..evidence()
    };
    assert!(matches!(
        verify(&forged_evidence),
        Err(AuditError::HeaderNotCommitted)
    ));
    node.stop();
}
