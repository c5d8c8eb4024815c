//! MoveIsolatedMargin: an account moves collateral into, or back out of, its
//! isolated sub-account for one market (`Address::isolated(owner, market)`).
//! The sub-account is an account of its own: venues report its positions,
//! its margin counts only its own collateral, and its liquidation, backstop
//! and bad debt never reach the owner (nor, in an isolated market, the
//! shared insurance fund). Whichever side gives collateral must still meet
//! its initial margin.

use clearnode_num::NumError;
use clearnode_types::tx::{MoveIsolatedMargin, VerifiedTx};
use clearnode_types::{Address, TxCode, TxRejection};

use super::reject;
use crate::block::{Engine, Event};
use crate::margin::compute_risk;
use crate::state::State;

fn arithmetic(e: NumError) -> TxRejection {
    reject(TxCode::InvalidAmount, format!("arithmetic: {e}"))
}

/// (from, to) of a move.
fn sides(owner: Address, sub_account: Address, into_isolated: bool) -> (Address, Address) {
    if into_isolated {
        (owner, sub_account)
    } else {
        (sub_account, owner)
    }
}

pub(super) fn validate(
    state: &State,
    tx: &VerifiedTx,
    move_: &MoveIsolatedMargin,
) -> Result<(), TxRejection> {
    if !state.markets.contains_key(&move_.market) {
        return Err(reject(
            TxCode::UnknownMarket,
            format!("market {} is not listed", move_.market),
        ));
    }
    if !state.assets.contains_key(&move_.asset) {
        return Err(reject(
            TxCode::UnknownAsset,
            format!("asset {} is not listed", move_.asset),
        ));
    }
    let owner = tx.signer_address;
    let sub_account = Address::isolated(&owner, move_.market.as_str());
    let (from, _) = sides(owner, sub_account, move_.into_isolated);
    let giver = state.accounts.get(&from);
    let balance = giver
        .and_then(|a| a.collateral.get(&move_.asset))
        .copied()
        .unwrap_or_default();
    let Some(giver) = giver.filter(|_| balance >= move_.amount) else {
        return Err(reject(
            TxCode::InsufficientCollateral,
            format!(
                "moving {} {} from a balance of {balance}",
                move_.amount, move_.asset
            ),
        ));
    };
    let mut after = giver.clone();
    after.collateral.insert(
        move_.asset.clone(),
        balance.checked_sub(move_.amount).map_err(arithmetic)?,
    );
    let risk = compute_risk(&after, &state.markets, &state.assets, state.chain.height)
        .map_err(arithmetic)?;
    if risk.equity < risk.initial {
        return Err(reject(
            TxCode::BelowInitialMargin,
            format!(
                "after the move, equity {} of {from} would be below its initial requirement {}",
                risk.equity, risk.initial
            ),
        ));
    }
    Ok(())
}

impl Engine {
    pub(super) fn apply_move_isolated(
        &mut self,
        owner: Address,
        move_: MoveIsolatedMargin,
    ) -> Result<Event, TxRejection> {
        let sub_account = Address::isolated(&owner, move_.market.as_str());
        let (from, to) = sides(owner, sub_account, move_.into_isolated);
        self.touch_account(from)?
            .debit_collateral(&move_.asset, move_.amount)
            .map_err(arithmetic)?;
        self.touch_account(to)?
            .credit_collateral(&move_.asset, move_.amount)
            .map_err(arithmetic)?;
        self.touch_account(sub_account)?.isolated = Some((owner, move_.market.clone()));
        Ok(Event::new("move_isolated_margin")
            .with("account", owner)
            .with("sub_account", sub_account)
            .with("market", &move_.market)
            .with("asset", &move_.asset)
            .with("amount", move_.amount)
            .with("into_isolated", move_.into_isolated))
    }
}
