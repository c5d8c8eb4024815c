//! DepositCollateral: the custodian credits an account.

use clearnode_num::Quantity;
use clearnode_types::limits::BALANCE_UNITS_MAX;
use clearnode_types::tx::{Deposit, VerifiedTx};
use clearnode_types::{TxCode, TxRejection};

use super::reject;
use crate::block::{Engine, Event};
use crate::state::State;

pub(super) fn validate(
    state: &State,
    tx: &VerifiedTx,
    deposit: &Deposit,
) -> Result<(), TxRejection> {
    if tx.signer != state.custodian {
        return Err(reject(
            TxCode::NotCustodian,
            format!(
                "deposits are signed by the custodian, not {}",
                tx.signer_address
            ),
        ));
    }
    if !state.assets.contains_key(&deposit.asset) {
        return Err(reject(
            TxCode::UnknownAsset,
            format!("asset {} is not listed", deposit.asset),
        ));
    }
    let balance = state
        .accounts
        .get(&deposit.account)
        .and_then(|a| a.collateral.get(&deposit.asset))
        .copied()
        .unwrap_or_default();
    let within = balance
        .checked_add(deposit.amount)
        .is_ok_and(|after| after <= Quantity::from_units(BALANCE_UNITS_MAX));
    if !within {
        return Err(reject(
            TxCode::BalanceTooLarge,
            format!(
                "balance of {} would exceed {BALANCE_UNITS_MAX}",
                deposit.asset
            ),
        ));
    }
    Ok(())
}

impl Engine {
    pub(super) fn apply_deposit(&mut self, deposit: Deposit) -> Result<Event, TxRejection> {
        let overflow = |e: clearnode_num::NumError| reject(TxCode::BalanceTooLarge, e.to_string());
        self.touch_account(deposit.account)?
            .credit_collateral(&deposit.asset, deposit.amount)
            .map_err(overflow)?;
        let ledger = self.state.ledgers.entry(deposit.asset.clone()).or_default();
        ledger.deposited = ledger
            .deposited
            .checked_add(deposit.amount)
            .map_err(overflow)?;
        let block = self.context()?;
        let flow = block.flows.entry(deposit.asset.clone()).or_default();
        *flow = flow.checked_add(deposit.amount).map_err(overflow)?;
        block.dirty_ledgers.insert(deposit.asset.clone());
        Ok(Event::new("deposit_collateral")
            .with("account", deposit.account)
            .with("asset", &deposit.asset)
            .with("amount", deposit.amount)
            .with("reference", &deposit.reference))
    }
}
