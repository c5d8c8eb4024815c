//! Upper bounds on everything a peer or a venue controls.

/// Largest transaction CheckTx accepts.
pub const TX_BYTES_MAX: usize = 512 * 1024;
/// Hard cap on entries in one position report (genesis may set a lower one).
pub const REPORT_ENTRIES_MAX: usize = 2_000;
/// Longest id of a market, asset or venue.
pub const ID_BYTES_MAX: usize = 32;
/// Longest custodian deposit reference.
pub const DEPOSIT_REFERENCE_BYTES_MAX: usize = 64;
/// Longest decimal string in a transaction.
pub const DECIMAL_BYTES_MAX: usize = 48;
/// Most markets, assets and venues a genesis may list.
pub const GENESIS_ENTRIES_MAX: usize = 256;

const _: () = assert!(REPORT_ENTRIES_MAX * 128 < TX_BYTES_MAX * 2);

/// Largest price of anything, in whole USD per unit (entry prices, oracle prices).
pub const PRICE_UNITS_MAX: i64 = 10_000_000_000;
/// Largest position size or transferred amount, in whole units.
pub const QUANTITY_UNITS_MAX: i64 = 1_000_000_000_000_000;
/// Largest collateral balance of one asset in one account, in whole units.
pub const BALANCE_UNITS_MAX: i64 = 10_000_000_000_000_000;
/// Most positions one account can hold: one per (market, venue).
pub const POSITIONS_PER_ACCOUNT_MAX: u128 = (GENESIS_ENTRIES_MAX * GENESIS_ENTRIES_MAX) as u128;

// With these bounds no margin sum can overflow i128 micro-USD, so an
// arithmetic error while computing margin is a bug, never a venue's doing:
// per position |pnl| <= QUANTITY * PRICE * 2 USD, times every position.
const MICRO_USD_PER_USD: u128 = 1_000_000;
const _: () = assert!(
    (QUANTITY_UNITS_MAX as u128) * (PRICE_UNITS_MAX as u128) * 2 * MICRO_USD_PER_USD
        < (i128::MAX as u128) / POSITIONS_PER_ACCOUNT_MAX / 4
);
const _: () = assert!(
    (BALANCE_UNITS_MAX as u128)
        * (PRICE_UNITS_MAX as u128)
        * MICRO_USD_PER_USD
        * (GENESIS_ENTRIES_MAX as u128)
        < (i128::MAX as u128) / 4
);
