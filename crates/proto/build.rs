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
    // Enum fields print as their proto names (the proto3 JSON mapping), not numbers.
    let mut enum_impls = String::new();
    for file in &descriptors.file {
        let package = file.package.clone().unwrap_or_default();
        for message in &file.message_type {
            let message_name = message.name.clone().unwrap_or_default();
            for field in &message.field {
                if field.r#type != Some(TYPE_ENUM) {
                    continue;
                }
                let field_name = field.name.clone().unwrap_or_default();
                let enum_type = rust_path(field.type_name.as_deref().unwrap_or_default())?;
                let serializer = if field.label == Some(LABEL_REPEATED) {
                    "enum_names"
                } else {
                    "enum_name"
                };
                builder = builder.field_attribute(
                    format!("{package}.{message_name}.{field_name}"),
                    format!("#[serde(serialize_with = \"crate::{serializer}::<{enum_type}, _>\")]"),
                );
            }
        }
        for enumeration in &file.enum_type {
            let name = enumeration.name.clone().unwrap_or_default();
            let enum_type = rust_path(&format!(".{package}.{name}"))?;
            enum_impls.push_str(&format!(
                "impl crate::ProtoEnum for {enum_type} {{\n    fn name_of(value: i32) -> Option<&'static str> {{\n        Self::try_from(value).ok().map(|known| known.as_str_name())\n    }}\n}}\n"
            ));
        }
    }
    std::fs::write(out_dir.join("enum_names.rs"), enum_impls)?;
    builder
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}

/// `FieldDescriptorProto.type` of an enum field, and the label of a repeated one.
const TYPE_ENUM: i32 = 14;
const LABEL_REPEATED: i32 = 3;

/// The generated Rust path of a top-level enum, from its proto name
/// (`.clearnode.state.v1.MarketStatus` -> `crate::state::v1::MarketStatus`).
fn rust_path(proto_name: &str) -> Result<String, String> {
    let Some(rest) = proto_name.strip_prefix(".clearnode.") else {
        return Err(format!(
            "enum {proto_name} is outside the clearnode package"
        ));
    };
    let segments: Vec<&str> = rest.split('.').collect();
    // package segments are lowercase; a nested enum would have a message name before it.
    if segments.len() != 3 {
        return Err(format!(
            "enum {proto_name}: only top-level enums are supported"
        ));
    }
    Ok(format!("crate::{}", segments.join("::")))
}
