//! Governance of risk parameters: who may propose and vote, the 2/3
//! threshold, raising changes at once, lowering changes after the timelock
//! and never while the breaker they weaken is tripped.

use clearnode_num::Ratio;
use clearnode_types::genesis::GenesisGovernance;
use clearnode_types::tx::ParamChange;
use clearnode_types::{MarketId, TxCode};

use super::{funded_trader, Chain};
use crate::governance::ProposalStatus;
use crate::testkit::{genesis, key, venue_key, Signer};
use crate::Engine;

const VOTING_BLOCKS: u64 = 10;
const TIMELOCK_BLOCKS: u64 = 5;
const QUEUE_BLOCKS_MAX: u64 = 20;

/// A chain whose validators have these powers; returns their signers.
fn chain_with_validators(powers: &[u64]) -> (Chain, Vec<Signer>) {
    chain_with(genesis(), powers)
}

/// `chain_with_validators` from another genesis.
fn chain_with(
    mut genesis: clearnode_types::genesis::Genesis,
    powers: &[u64],
) -> (Chain, Vec<Signer>) {
    genesis.params.governance = GenesisGovernance {
        voting_blocks: VOTING_BLOCKS,
        timelock_blocks: TIMELOCK_BLOCKS,
        queue_blocks_max: QUEUE_BLOCKS_MAX,
    };
    let mut chain = Chain::with_genesis(&genesis);
    let validators: Vec<Signer> = (0..powers.len())
        .map(|i| Signer::new(key(60 + u8::try_from(i).expect("few"))))
        .collect();
    let write = chain.engine.set_validators(
        validators
            .iter()
            .zip(powers)
            .map(|(v, power)| (v.key.verifying_key().to_bytes(), *power)),
    );
    chain.committed.apply(&[write]);
    (chain, validators)
}

fn btc() -> MarketId {
    "BTC-PERP".parse().expect("id")
}

fn initial_margin(ppm: i128) -> ParamChange {
    ParamChange::InitialMargin {
        market: btc(),
        value: Ratio::from_raw(ppm),
    }
}

fn btc_initial_margin(chain: &Chain) -> i128 {
    chain.engine.state().markets[&btc()].initial_margin.raw()
}

fn status(chain: &Chain, id: u64) -> ProposalStatus {
    chain.engine.state().proposals[&id].status
}

/// Proposal 1 (by validator 0) passes with validators 1 and 2 in one block.
fn pass(chain: &mut Chain, validators: &mut [Signer], changes: &[ParamChange]) -> u64 {
    let id = chain.engine.state().governance.next_proposal_id.max(1);
    let txs = [
        validators[0].propose(changes, "test"),
        validators[1].vote(id, true),
        validators[2].vote(id, true),
    ];
    assert_eq!(chain.block(&txs), vec![TxCode::Ok; 3]);
    id
}

#[test]
fn a_safety_raising_change_takes_effect_in_the_block_it_passes() {
    let (mut chain, mut validators) = chain_with_validators(&[10, 10, 10, 10]);
    let trader = funded_trader(&mut chain, 1);
    let a = trader.address();
    let mut venue_a = Signer::new(venue_key(0));
    chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]);
    assert_eq!(chain.risk(a).initial_requirement, "3000", "5% of 60,000");
    let id = pass(&mut chain, &mut validators, &[initial_margin(100_000)]);
    let proposal = &chain.engine.state().proposals[&id];
    assert!(proposal.raises_safety);
    assert_eq!(proposal.status, ProposalStatus::Enacted);
    assert_eq!(proposal.enacted_height, chain.engine.height());
    assert_eq!(btc_initial_margin(&chain), 100_000);
    // The holder's risk was recomputed in the same block.
    assert_eq!(chain.risk(a).initial_requirement, "6000");
    let reloaded = Engine::load(&chain.committed).expect("loads");
    assert_eq!(reloaded.state(), chain.engine.state());
}

#[test]
fn a_safety_lowering_change_waits_exactly_its_timelock() {
    let (mut chain, mut validators) = chain_with_validators(&[10, 10, 10, 10]);
    let id = pass(&mut chain, &mut validators, &[initial_margin(40_000)]);
    let passed = chain.engine.height();
    let proposal = &chain.engine.state().proposals[&id];
    assert!(!proposal.raises_safety);
    assert_eq!(proposal.status, ProposalStatus::Queued);
    assert_eq!(proposal.earliest_enact_height, passed + TIMELOCK_BLOCKS);
    for _ in 1..TIMELOCK_BLOCKS {
        chain.block(&[]);
        assert_eq!(
            btc_initial_margin(&chain),
            50_000,
            "not before the timelock"
        );
        assert_eq!(status(&chain, id), ProposalStatus::Queued);
    }
    chain.block(&[]);
    assert_eq!(chain.engine.height(), passed + TIMELOCK_BLOCKS);
    assert_eq!(btc_initial_margin(&chain), 40_000);
    assert_eq!(status(&chain, id), ProposalStatus::Enacted);
    let reloaded = Engine::load(&chain.committed).expect("loads");
    assert_eq!(reloaded.state(), chain.engine.state());
}

#[test]
fn one_lowering_change_makes_the_whole_proposal_wait() {
    let (mut chain, mut validators) = chain_with_validators(&[10, 10, 10, 10]);
    let list = ParamChange::ListCollateralAsset {
        asset: "WBTC".parse().expect("id"),
        oracle_price: "60000".parse().expect("price"),
        haircut: Ratio::from_raw(200_000),
    };
    let id = pass(&mut chain, &mut validators, &[initial_margin(60_000), list]);
    assert_eq!(status(&chain, id), ProposalStatus::Queued);
    assert_eq!(btc_initial_margin(&chain), 50_000);
    for _ in 0..TIMELOCK_BLOCKS {
        chain.block(&[]);
    }
    assert_eq!(btc_initial_margin(&chain), 60_000);
    assert!(chain
        .engine
        .state()
        .assets
        .contains_key(&"WBTC".parse().expect("id")));
}

#[test]
fn exactly_two_thirds_of_the_power_does_not_pass_and_more_does() {
    let (mut chain, mut v) = chain_with_validators(&[10, 10, 10, 30]);
    // 30 of 60, then 40 of 60 (exactly 2/3): still voting.
    let txs = [
        v[3].propose(&[initial_margin(60_000)], "up"),
        v[0].vote(1, true),
    ];
    assert_eq!(chain.block(&txs), vec![TxCode::Ok; 2]);
    assert_eq!(status(&chain, 1), ProposalStatus::Voting);
    assert_eq!(btc_initial_margin(&chain), 50_000);
    // 50 of 60.
    assert_eq!(chain.block(&[v[1].vote(1, true)]), vec![TxCode::Ok]);
    assert_eq!(status(&chain, 1), ProposalStatus::Enacted);
    assert_eq!(btc_initial_margin(&chain), 60_000);
}

#[test]
fn only_validators_vote_and_only_once_while_voting_is_open() {
    let (mut chain, mut v) = chain_with_validators(&[10, 10, 10, 10]);
    let mut outsider = Signer::new(key(7));
    assert_eq!(
        chain.block(&[outsider.propose(&[initial_margin(60_000)], "")]),
        vec![TxCode::NotValidator]
    );
    assert_eq!(
        chain.block(&[v[0].vote(1, true)]),
        vec![TxCode::UnknownProposal]
    );
    v[0].sequence -= 1;
    chain.block(&[v[0].propose(&[initial_margin(60_000)], "")]);
    outsider.sequence = 0;
    let txs = [
        outsider.vote(1, true),
        v[0].vote(1, true),
        v[1].vote(1, false),
    ];
    assert_eq!(
        chain.block(&txs),
        vec![TxCode::NotValidator, TxCode::AlreadyVoted, TxCode::Ok]
    );
    assert_eq!(
        chain.block(&[v[1].vote(1, true)]),
        vec![TxCode::AlreadyVoted]
    );
    // A change that does not apply is refused when proposed.
    let unknown = ParamChange::PauseMarket("DOGE-PERP".parse().expect("id"));
    assert_eq!(
        chain.block(&[v[2].propose(&[unknown], "")]),
        vec![TxCode::InvalidChange]
    );
}

#[test]
fn a_proposal_without_enough_votes_is_rejected_when_voting_closes() {
    let (mut chain, mut v) = chain_with_validators(&[10, 10, 10, 10]);
    chain.block(&[v[0].propose(&[initial_margin(60_000)], "")]);
    let end = chain.engine.state().proposals[&1].voting_end_height;
    while chain.engine.height() < end {
        assert_eq!(status(&chain, 1), ProposalStatus::Voting);
        chain.block(&[]);
    }
    assert_eq!(status(&chain, 1), ProposalStatus::Rejected);
    assert_eq!(
        chain.block(&[v[1].vote(1, true)]),
        vec![TxCode::ProposalClosed]
    );
    v[1].sequence -= 1;
    // Two no votes of four: more than 2/3 can no longer be reached.
    chain.block(&[v[0].propose(&[initial_margin(60_000)], "")]);
    chain.block(&[v[1].vote(2, false), v[2].vote(2, false)]);
    assert_eq!(status(&chain, 2), ProposalStatus::Rejected);
}

#[test]
fn a_lowering_change_never_takes_effect_while_the_breaker_it_weakens_is_tripped() {
    let (mut chain, mut v) = chain_with_validators(&[10, 10, 10, 10]);
    let trader = funded_trader(&mut chain, 1);
    let a = trader.address();
    // A pause raises safety: at once. Reports for the market are refused.
    let pause = pass(&mut chain, &mut v, &[ParamChange::PauseMarket(btc())]);
    assert_eq!(status(&chain, pause), ProposalStatus::Enacted);
    let mut venue_a = Signer::new(venue_key(0));
    let report = venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")]);
    assert_eq!(chain.block(&[report]), vec![TxCode::MarketPaused]);
    // Lowering the paused market's margin passes, but waits past its timelock.
    let lower = pass(&mut chain, &mut v, &[initial_margin(40_000)]);
    for _ in 0..TIMELOCK_BLOCKS + 3 {
        chain.block(&[]);
        assert_eq!(status(&chain, lower), ProposalStatus::Queued);
        assert_eq!(btc_initial_margin(&chain), 50_000);
    }
    // Resuming lowers safety too: it waits its own timelock, then the
    // margin change follows in the next block.
    let resume = pass(&mut chain, &mut v, &[ParamChange::ResumeMarket(btc())]);
    for _ in 0..TIMELOCK_BLOCKS {
        chain.block(&[]);
    }
    assert_eq!(status(&chain, resume), ProposalStatus::Enacted);
    assert_eq!(status(&chain, lower), ProposalStatus::Queued);
    chain.block(&[]);
    assert_eq!(status(&chain, lower), ProposalStatus::Enacted);
    assert_eq!(btc_initial_margin(&chain), 40_000);
    venue_a.sequence -= 1;
    let report = venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")]);
    assert_eq!(chain.block(&[report]), vec![TxCode::Ok]);
    let reloaded = Engine::load(&chain.committed).expect("loads");
    assert_eq!(reloaded.state(), chain.engine.state());
}

#[test]
fn a_queued_change_blocked_by_a_tripped_breaker_expires_after_the_bounded_wait() {
    let (mut chain, mut v) = chain_with_validators(&[10, 10, 10, 10]);
    pass(&mut chain, &mut v, &[ParamChange::PauseMarket(btc())]);
    let lower = pass(&mut chain, &mut v, &[initial_margin(40_000)]);
    let due = chain.engine.state().proposals[&lower].earliest_enact_height;
    while chain.engine.height() < due + QUEUE_BLOCKS_MAX - 1 {
        chain.block(&[]);
        assert_eq!(status(&chain, lower), ProposalStatus::Queued);
    }
    chain.block(&[]);
    let proposal = &chain.engine.state().proposals[&lower];
    assert_eq!(proposal.status, ProposalStatus::Expired);
    assert!(
        proposal.note.contains("stayed tripped"),
        "{}",
        proposal.note
    );
    assert_eq!(btc_initial_margin(&chain), 50_000);
}

#[test]
fn a_pause_and_a_resume_instruct_every_venue() {
    let (mut chain, mut v) = chain_with_validators(&[10, 10, 10, 10]);
    pass(&mut chain, &mut v, &[ParamChange::PauseMarket(btc())]);
    let height = chain.engine.height();
    let instructions: Vec<String> = chain
        .committed
        .0
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .filter(|k| k.starts_with("instr/") && k.contains(&format!("/{height:020}/")))
        .collect();
    assert_eq!(instructions.len(), 4, "one per venue: {instructions:?}");
}

#[test]
fn each_validator_has_a_bounded_number_of_open_proposals() {
    let (mut chain, mut v) = chain_with_validators(&[10, 10, 10, 10]);
    let max = crate::governance::OPEN_PROPOSALS_PER_PROPOSER_MAX;
    let txs: Vec<Vec<u8>> = (0..=max)
        .map(|_| v[0].propose(&[initial_margin(60_000)], ""))
        .collect();
    let codes = chain.block(&txs);
    assert_eq!(codes[..max], vec![TxCode::Ok; max]);
    assert_eq!(codes[max], TxCode::TooManyOpenProposals);
    // Another validator may still propose.
    assert_eq!(
        chain.block(&[v[3].propose(&[initial_margin(60_000)], "")]),
        vec![TxCode::Ok]
    );
    // Closing one makes room.
    v[0].sequence -= 1;
    chain.block(&[v[1].vote(1, false), v[2].vote(1, false)]);
    assert_eq!(status(&chain, 1), ProposalStatus::Rejected);
    assert_eq!(
        chain.block(&[v[0].propose(&[initial_margin(60_000)], "")]),
        vec![TxCode::Ok]
    );
    let reloaded = Engine::load(&chain.committed).expect("loads");
    assert_eq!(reloaded.state(), chain.engine.state());
}

#[test]
fn a_wider_price_band_waits_for_the_market_to_leave_its_limit_and_a_narrower_one_applies_at_once() {
    let mut genesis = genesis();
    genesis.markets[0].breaker.price_band_ppm = 100_000;
    genesis.markets[0].breaker.limit_blocks = 1_000;
    let (mut chain, mut v) = chain_with(genesis, &[10, 10, 10, 10]);
    let band = |chain: &Chain| {
        chain.engine.state().breakers.markets[&btc()]
            .params
            .price_band
    };
    let set_band = |ppm: i128| ParamChange::PriceBand {
        market: btc(),
        value: Ratio::from_raw(ppm),
    };
    // Narrower: safer, at once.
    let narrower = pass(&mut chain, &mut v, &[set_band(80_000)]);
    assert_eq!(status(&chain, narrower), ProposalStatus::Enacted);
    assert_eq!(band(&chain), Ratio::from_raw(80_000));
    // BTC leaves its band: the market is in its limit state.
    chain.prices.push(super::btc_price(50_000));
    chain.block(&[]);
    let limited = crate::breakers::MarketStatus::Limit;
    assert_eq!(
        chain.engine.state().breakers.markets[&btc()].status,
        limited
    );
    // Wider (and disabling it, 0, is the widest): waits its timelock, then
    // as long as the market is not trading normally.
    let wider = pass(&mut chain, &mut v, &[set_band(0)]);
    for _ in 0..TIMELOCK_BLOCKS + 3 {
        chain.block(&[]);
        assert_eq!(status(&chain, wider), ProposalStatus::Queued);
        assert_eq!(band(&chain), Ratio::from_raw(80_000));
    }
    // Back inside the band: open again, and the change follows.
    chain.prices.push(super::btc_price(59_000));
    chain.block(&[]);
    chain.block(&[]);
    assert_eq!(status(&chain, wider), ProposalStatus::Enacted);
    assert_eq!(band(&chain), Ratio::ZERO);
    let reloaded = Engine::load(&chain.committed).expect("loads");
    assert_eq!(reloaded.state(), chain.engine.state());
}
