//! WithdrawCollateral: the account takes collateral out, if what stays
//! covers its initial margin across all venues.

use clearnode_types::tx::{VerifiedTx, Withdraw};
use clearnode_types::{TxCode, TxRejection};

use super::reject;
use crate::block::{Engine, Event};
use crate::margin::compute_risk;
use crate::state::State;

pub(super) fn validate(
    state: &State,
    tx: &VerifiedTx,
    withdraw: &Withdraw,
) -> Result<(), TxRejection> {
    if !state.assets.contains_key(&withdraw.asset) {
        return Err(reject(
            TxCode::UnknownAsset,
            format!("asset {} is not listed", withdraw.asset),
        ));
    }
    let account = state.accounts.get(&tx.signer_address);
    let balance = account
        .and_then(|a| a.collateral.get(&withdraw.asset))
        .copied()
        .unwrap_or_default();
    if balance < withdraw.amount {
        return Err(reject(
            TxCode::InsufficientCollateral,
            format!(
                "withdrawing {} {} from a balance of {balance}",
                withdraw.amount, withdraw.asset
            ),
        ));
    }
    let Some(account) = account else {
        return Err(reject(TxCode::InsufficientCollateral, "no such account"));
    };
    crate::breakers::check_withdrawal(state, account)?;
    let mut after = account.clone();
    let remaining = balance
        .checked_sub(withdraw.amount)
        .map_err(|e| reject(TxCode::InvalidAmount, e.to_string()))?;
    after.collateral.insert(withdraw.asset.clone(), remaining);
    let risk = compute_risk(&after, &state.markets, &state.assets, state.chain.height)
        .map_err(|e| reject(TxCode::InvalidAmount, format!("margin arithmetic: {e}")))?;
    if risk.equity < risk.initial {
        return Err(reject(
            TxCode::BelowInitialMargin,
            format!(
                "after withdrawing, equity {} would be below the initial requirement {}",
                risk.equity, risk.initial
            ),
        ));
    }
    Ok(())
}

impl Engine {
    pub(super) fn apply_withdraw(
        &mut self,
        signer: clearnode_types::Address,
        withdraw: Withdraw,
    ) -> Result<Event, TxRejection> {
        let arithmetic = |e: clearnode_num::NumError| reject(TxCode::InvalidAmount, e.to_string());
        self.touch_account(signer)?
            .debit_collateral(&withdraw.asset, withdraw.amount)
            .map_err(arithmetic)?;
        let ledger = self
            .state
            .ledgers
            .entry(withdraw.asset.clone())
            .or_default();
        ledger.withdrawn = ledger
            .withdrawn
            .checked_add(withdraw.amount)
            .map_err(arithmetic)?;
        let block = self.context()?;
        let flow = block.flows.entry(withdraw.asset.clone()).or_default();
        *flow = flow.checked_sub(withdraw.amount).map_err(arithmetic)?;
        block.dirty_ledgers.insert(withdraw.asset.clone());
        Ok(Event::new("withdraw_collateral")
            .with("account", signer)
            .with("asset", &withdraw.asset)
            .with("amount", withdraw.amount))
    }
}
