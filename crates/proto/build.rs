//! Compiles proto/clearnode/**/*.proto with protox (a pure-Rust protobuf
//! compiler), so no system `protoc` is needed.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not compile time: a build script binary cached in a
    // shared target dir may have been compiled for a checkout elsewhere.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "clearnode/tx/v1/tx.proto",
        "clearnode/state/v1/state.proto",
        "clearnode/state/v1/breakers.proto",
        "clearnode/state/v1/governance.proto",
        "clearnode/venue/v1/venue.proto",
        "clearnode/audit/v1/audit.proto",
        "clearnode/oracle/v1/oracle.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("clearnode_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    // Bytes fields print as hex in JSON (addresses, keys, hashes, proofs).
    let hex_fields = [
        "clearnode.tx.v1.Tx.body",
        "clearnode.tx.v1.Tx.signer_public_key",
        "clearnode.tx.v1.Tx.signature",
        "clearnode.tx.v1.DepositCollateral.account",
        "clearnode.tx.v1.PositionEntry.account",
        "clearnode.state.v1.Venue.public_key",
        "clearnode.state.v1.Custodian.public_key",
        "clearnode.state.v1.Account.address",
        "clearnode.state.v1.Position.account",
        "clearnode.state.v1.AccountRisk.account",
        "clearnode.venue.v1.SubmitTxRequest.tx",
        "clearnode.venue.v1.GetMarginPassportRequest.account",
        "clearnode.venue.v1.GetMarginPassportResponse.app_hash",
        "clearnode.audit.v1.QueryContext.app_hash",
        "clearnode.audit.v1.QueryContext.key",
        "clearnode.audit.v1.QueryContext.proof",
        "clearnode.audit.v1.GetAccountRiskRequest.account",
        "clearnode.audit.v1.GetSequenceRequest.public_key",
        "clearnode.audit.v1.ListLiquidationOrdersRequest.account",
        "clearnode.audit.v1.GetStateValueRequest.key",
        "clearnode.audit.v1.GetStateValueResponse.value",
        "clearnode.state.v1.LiquidationOrder.account",
        "clearnode.state.v1.Instruction.account",
        "clearnode.state.v1.Instruction.counterparty",
        "clearnode.state.v1.Proposal.proposer",
    ];
    let mut builder =
        tonic_prost_build::configure().type_attribute(".clearnode", "#[derive(serde::Serialize)]");
    for field in hex_fields {
        builder = builder.field_attribute(field, "#[serde(serialize_with = \"crate::hex_bytes\")]");
    }
    for field in [
        "clearnode.state.v1.Proposal.yes_voters",
        "clearnode.state.v1.Proposal.no_voters",
    ] {
        builder = builder.field_attribute(
            field,
            "#[serde(serialize_with = \"crate::hex_bytes_list\")]",
        );
    }
    builder
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
