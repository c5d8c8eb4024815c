//! The state layout: one function per key. Keys are ASCII paths; addresses
//! are lowercase hex. The layout is a public API (auditors prove values by
//! key), so a change here is a deliberate, visible decision: the snapshot
//! test in `block::tests` pins it.

use clearnode_types::{Address, AssetId, MarketId, VenueId};

/// `chain/info`: [`clearnode_proto::state::v1::ChainInfo`].
pub fn chain_info() -> Vec<u8> {
    b"chain/info".to_vec()
}

/// `params`: `RiskParams`.
pub fn params() -> Vec<u8> {
    b"params".to_vec()
}

/// `custodian`: `Custodian`.
pub fn custodian() -> Vec<u8> {
    b"custodian".to_vec()
}

/// Prefix of all markets.
pub const MARKET_PREFIX: &[u8] = b"market/";
/// `market/BTC-PERP`: `Market`.
pub fn market(id: &MarketId) -> Vec<u8> {
    [MARKET_PREFIX, id.as_str().as_bytes()].concat()
}

/// Prefix of all market margin regimes.
pub const MARKET_MARGIN_PREFIX: &[u8] = b"market_margin/";
/// `market_margin/BTC-PERP`: `MarketMargin` (volatility, target and current fractions).
pub fn market_margin(id: &MarketId) -> Vec<u8> {
    [MARKET_MARGIN_PREFIX, id.as_str().as_bytes()].concat()
}

/// Prefix of all collateral assets.
pub const ASSET_PREFIX: &[u8] = b"asset/";
/// `asset/USDC`: `CollateralAsset`.
pub fn asset(id: &AssetId) -> Vec<u8> {
    [ASSET_PREFIX, id.as_str().as_bytes()].concat()
}

/// Prefix of all venues.
pub const VENUE_PREFIX: &[u8] = b"venue/";
/// `venue/venue-a`: `Venue`.
pub fn venue(id: &VenueId) -> Vec<u8> {
    [VENUE_PREFIX, id.as_str().as_bytes()].concat()
}

/// Prefix of all sequences.
pub const SEQUENCE_PREFIX: &[u8] = b"seq/";
/// `seq/<address>`: `Sequence` (the signer's next sequence).
pub fn sequence(signer: &Address) -> Vec<u8> {
    with_address(SEQUENCE_PREFIX, signer)
}

/// `prefix` then the address in lowercase hex (`Address::to_hex`), written
/// straight into the key.
fn with_address(prefix: &[u8], address: &Address) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 40);
    key.extend_from_slice(prefix);
    let mut text = [0u8; 40];
    match hex::encode_to_slice(address.as_bytes(), &mut text) {
        Ok(()) => key.extend_from_slice(&text),
        // Not reached: an address is 20 bytes.
        Err(_) => key.extend_from_slice(address.to_hex().as_bytes()),
    }
    key
}

/// Prefix of all accounts.
pub const ACCOUNT_PREFIX: &[u8] = b"acct/";
/// `acct/<address>`: `Account` (collateral and authorized venues).
pub fn account(address: &Address) -> Vec<u8> {
    with_address(ACCOUNT_PREFIX, address)
}

/// Prefix of all accounts' positions.
pub const POSITIONS_PREFIX: &[u8] = b"pos/";
/// `pos/<address>`: `Positions`, all of the account's open positions.
pub fn positions(address: &Address) -> Vec<u8> {
    with_address(POSITIONS_PREFIX, address)
}

/// Prefix of all account risks.
pub const RISK_PREFIX: &[u8] = b"risk/";
/// `risk/<address>`: `AccountRisk`.
pub fn risk(address: &Address) -> Vec<u8> {
    with_address(RISK_PREFIX, address)
}

/// Prefix of all market aggregates.
pub const MARKET_AGGREGATE_PREFIX: &[u8] = b"agg/market/";
/// `agg/market/BTC-PERP`: `MarketAggregate`.
pub fn market_aggregate(id: &MarketId) -> Vec<u8> {
    [MARKET_AGGREGATE_PREFIX, id.as_str().as_bytes()].concat()
}

/// `agg/system`: `SystemAggregate`.
pub fn system_aggregate() -> Vec<u8> {
    b"agg/system".to_vec()
}

/// Prefix of all collateral ledgers.
pub const LEDGER_PREFIX: &[u8] = b"ledger/";
/// `ledger/USDC`: `CollateralLedger`.
pub fn ledger(asset: &AssetId) -> Vec<u8> {
    [LEDGER_PREFIX, asset.as_str().as_bytes()].concat()
}

/// `insurance_fund`: `InsuranceFund`.
pub fn insurance_fund() -> Vec<u8> {
    b"insurance_fund".to_vec()
}

/// Prefix of the isolated markets' own insurance funds.
pub const ISOLATED_FUND_PREFIX: &[u8] = b"isolated_fund/";
/// `isolated_fund/ALT-PERP`: `InsuranceFund` of an isolated market.
pub fn isolated_fund(market: &MarketId) -> Vec<u8> {
    [ISOLATED_FUND_PREFIX, market.as_str().as_bytes()].concat()
}

/// Prefix of all venue settlements.
pub const SETTLEMENT_PREFIX: &[u8] = b"settlement/";
/// `settlement/venue-a`: `VenueSettlement`.
pub fn settlement(venue: &VenueId) -> Vec<u8> {
    [SETTLEMENT_PREFIX, venue.as_str().as_bytes()].concat()
}

/// Prefix of all liquidation orders.
pub const LIQUIDATION_PREFIX: &[u8] = b"liq/";
/// `liq/<address>/<market>/<venue>`: `LiquidationOrder`.
pub fn liquidation_order(address: &Address, market: &MarketId, venue: &VenueId) -> Vec<u8> {
    format!("liq/{}/{}/{}", address.to_hex(), market, venue).into_bytes()
}

/// `validators`: `ValidatorSet` (CometBFT's validators, by address).
pub fn validators() -> Vec<u8> {
    b"validators".to_vec()
}

/// Prefix of all governance proposals.
pub const PROPOSAL_PREFIX: &[u8] = b"proposal/";
/// `proposal/<id>`: `Proposal` (governance.proto).
pub fn proposal(id: u64) -> Vec<u8> {
    format!("proposal/{id}").into_bytes()
}

/// `proposal_state`: `GovernanceState` (next proposal id, paused markets).
pub fn proposal_state() -> Vec<u8> {
    b"proposal_state".to_vec()
}

/// Prefix of a venue's instructions: `instr/<venue>/`.
pub fn instructions_prefix(venue: &VenueId) -> Vec<u8> {
    format!("instr/{venue}/").into_bytes()
}

/// `instr/<venue>/<height, 20 digits>/<index, 6 digits>`: `Instruction`.
/// Zero-padded so key order is block order.
pub fn instruction(venue: &VenueId, height: u64, index: u32) -> Vec<u8> {
    format!("instr/{venue}/{height:020}/{index:06}").into_bytes()
}

/// Prefix of all market breakers.
pub const MARKET_BREAKER_PREFIX: &[u8] = b"breaker/market/";
/// `breaker/market/BTC-PERP`: `MarketBreaker` (status, band, price validity, caps).
pub fn market_breaker(id: &MarketId) -> Vec<u8> {
    [MARKET_BREAKER_PREFIX, id.as_str().as_bytes()].concat()
}

/// `breaker/system`: `SystemBreaker` (fund drawdown, coverage, reduce-only).
pub fn system_breaker() -> Vec<u8> {
    b"breaker/system".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keys_are_the_prefix_and_the_lowercase_hex() {
        for byte in [0u8, 0x0a, 0xab, 0xff] {
            let mut bytes = [byte; 20];
            bytes[0] = 0x1f;
            let address = Address::from_bytes(bytes);
            let hex = address.to_hex();
            assert_eq!(account(&address), format!("acct/{hex}").into_bytes());
            assert_eq!(risk(&address), format!("risk/{hex}").into_bytes());
            assert_eq!(sequence(&address), format!("seq/{hex}").into_bytes());
            assert_eq!(positions(&address), format!("pos/{hex}").into_bytes());
        }
    }
}
