use std::collections::BTreeMap;

use clearnode_proto::state::v1 as pb;
use clearnode_types::TxCode;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::load::StateSource;
use crate::testkit::{self, address_of, custodian_key, genesis, key, venue_key, Signer};
use crate::{BlockHeader, Engine, Write};

/// Committed state as a plain ordered map: what the store holds, minus the tree.
#[derive(Default)]
struct MemoryState(BTreeMap<Vec<u8>, Vec<u8>>);

impl MemoryState {
    fn apply(&mut self, writes: &[Write]) {
        for (key, value) in writes {
            match value {
                Some(value) => self.0.insert(key.clone(), value.clone()),
                None => self.0.remove(key),
            };
        }
    }
}

impl StateSource for MemoryState {
    type Error = std::convert::Infallible;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.0.get(key).cloned())
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<crate::KeyValue>, Self::Error> {
        Ok(self
            .0
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

struct Chain {
    engine: Engine,
    committed: MemoryState,
    /// Prices for the next block.
    prices: Vec<crate::PriceUpdate>,
    /// Targets quoted by too few validators in the next block.
    underquoted: Vec<crate::PriceTarget>,
}

impl Chain {
    fn new() -> Self {
        Self::with_genesis(&genesis())
    }

    fn with_genesis(genesis: &clearnode_types::genesis::Genesis) -> Self {
        let (engine, writes) =
            Engine::init_chain(testkit::CHAIN_ID, genesis, 1_700_000_000, 0).expect("genesis");
        let mut committed = MemoryState::default();
        committed.apply(&writes);
        Self {
            engine,
            committed,
            prices: Vec::new(),
            underquoted: Vec::new(),
        }
    }

    /// Runs one block; returns the codes.
    fn block(&mut self, txs: &[Vec<u8>]) -> Vec<TxCode> {
        let height = self.engine.height() + 1;
        let time_seconds = 1_700_000_000 + i64::try_from(height).expect("small");
        let oracle = crate::OracleRound {
            prices: std::mem::take(&mut self.prices),
            underquoted: std::mem::take(&mut self.underquoted),
        };
        let header = BlockHeader {
            height,
            time_seconds,
            time_nanos: 0,
        };
        self.engine
            .begin_block_with_oracle(header, &oracle)
            .expect("begin");
        let codes = txs
            .iter()
            .map(|tx| self.engine.deliver_tx(tx).expect("in block").code)
            .collect();
        let output = self.engine.end_block().expect("end");
        self.committed.apply(&output.writes);
        codes
    }

    fn risk(&self, account: clearnode_types::Address) -> pb::AccountRisk {
        let bytes = self
            .committed
            .0
            .get(&crate::keys::risk(&account))
            .expect("risk stored");
        pb::AccountRisk::decode(bytes.as_slice()).expect("decodes")
    }
}

/// An account with 10,000 USDC that authorized venues a and b.
fn funded_trader(chain: &mut Chain, seed: u8) -> Signer {
    trader_with(chain, seed, "10000")
}

/// An account with `usdc` of collateral that authorized venues a and b.
fn trader_with(chain: &mut Chain, seed: u8, usdc: &str) -> Signer {
    let mut custodian = Signer::new(custodian_key());
    custodian.sequence = chain
        .engine
        .state()
        .next_sequence(&address_of(&custodian.key));
    let mut trader = Signer::new(key(seed));
    let txs = [
        custodian.deposit(trader.address(), "USDC", usdc),
        trader.authorize("venue-a", true),
        trader.authorize("venue-b", true),
    ];
    assert_eq!(chain.block(&txs), vec![TxCode::Ok; 3]);
    trader
}

#[test]
fn cross_venue_margin_nets_positions_and_charges_basis() {
    let mut chain = Chain::new();
    let trader = funded_trader(&mut chain, 1);
    let mut venue_a = Signer::new(venue_key(0));
    let mut venue_b = Signer::new(venue_key(1));
    let a = trader.address();
    let txs = [
        venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")]),
        venue_b.report("venue-b", &[(a, "BTC-PERP", "-0.5", "60000")]),
    ];
    assert_eq!(chain.block(&txs), vec![TxCode::Ok; 2]);
    let risk = chain.risk(a);
    // Net 0.5 BTC = 30,000 USD at 5% = 1,500, plus 1.0 BTC netted out = 60,000
    // USD at the 1% basis charge = 600.
    assert_eq!(risk.initial_requirement, "2100");
    // Maintenance is 60% of initial.
    assert_eq!(risk.maintenance_requirement, "1260");
    assert_eq!(risk.equity, "10000");
    assert_eq!(risk.leverage, "3");
    assert_eq!(risk.health, pb::HealthState::Healthy as i32);
}

#[test]
fn a_hedge_across_venues_needs_far_less_than_either_leg() {
    let mut chain = Chain::new();
    let trader = funded_trader(&mut chain, 1);
    let a = trader.address();
    let mut venue_a = Signer::new(venue_key(0));
    let mut venue_b = Signer::new(venue_key(1));
    chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]);
    let one_leg = chain.risk(a).initial_requirement;
    chain.block(&[venue_b.report("venue-b", &[(a, "BTC-PERP", "-1", "60000")])]);
    let hedged = chain.risk(a).initial_requirement;
    assert_eq!(one_leg, "3000");
    assert_eq!(hedged, "1200", "two legs of 60,000 netted out at 1% each");
}

fn btc_price(units: i64) -> crate::PriceUpdate {
    crate::PriceUpdate {
        target: crate::PriceTarget::Market("BTC-PERP".parse().expect("id")),
        price: clearnode_num::Price::from_units(units).expect("positive"),
    }
}

#[test]
fn price_moves_carry_an_account_through_every_health_state() {
    let mut chain = Chain::new();
    let trader = funded_trader(&mut chain, 1);
    let a = trader.address();
    let mut venue_a = Signer::new(venue_key(0));
    // 1 BTC long at 60,000: initial 3,000 out of 10,000 equity.
    assert_eq!(
        chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "1", "60000")])]),
        vec![TxCode::Ok]
    );
    assert_eq!(chain.risk(a).health, pb::HealthState::Healthy as i32);
    // At 52,000: equity 2,000; initial 2,600, maintenance 1,560.
    chain.prices.push(btc_price(52_000));
    chain.block(&[]);
    let risk = chain.risk(a);
    assert_eq!(risk.equity, "2000");
    assert_eq!(risk.health, pb::HealthState::MarginCall as i32);
    // In margin call the account is reduce-only; reducing is fine.
    let more = venue_a.report("venue-a", &[(a, "BTC-PERP", "1.1", "60000")]);
    assert_eq!(chain.block(&[more]), vec![TxCode::ReduceOnly]);
    venue_a.sequence -= 1;
    let flip = venue_a.report("venue-a", &[(a, "BTC-PERP", "-0.1", "52000")]);
    assert_eq!(
        chain.block(&[flip]),
        vec![TxCode::ReduceOnly],
        "a flip adds exposure"
    );
    venue_a.sequence -= 1;
    // At 51,000: equity 1,000 under maintenance 1,530.
    chain.prices.push(btc_price(51_000));
    chain.block(&[]);
    assert_eq!(chain.risk(a).health, pb::HealthState::Liquidating as i32);
    chain.prices.push(btc_price(49_000));
    chain.block(&[]);
    assert_eq!(chain.risk(a).health, pb::HealthState::Bankrupt as i32);
    let state = chain.engine.state();
    assert_eq!(
        state
            .indexes
            .by_risk
            .iter()
            .next()
            .map(|(_, address)| *address),
        Some(a)
    );
    // Closing is always allowed.
    assert_eq!(
        chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "0", "")])]),
        vec![TxCode::Ok]
    );
    let risk = chain.risk(a);
    assert_eq!(risk.health, pb::HealthState::Healthy as i32);
    assert!(risk.exposures.is_empty());
    assert!(chain.engine.state().indexes.by_risk.is_empty());
    assert!(!chain.committed.0.contains_key(&crate::keys::positions(&a)));
}

#[test]
fn new_risk_needs_initial_margin_at_the_target_fraction() {
    let mut genesis = genesis();
    // Open interest scaling from 50,000 to 150,000 USD of BTC.
    genesis.markets[0].open_interest_lower_cap = "50000".parse().expect("money");
    genesis.markets[0].open_interest_upper_cap = "150000".parse().expect("money");
    let mut chain = Chain::with_genesis(&genesis);
    let whale = funded_trader(&mut chain, 1);
    let small = funded_trader(&mut chain, 2);
    let mut venue_a = Signer::new(venue_key(0));
    // 2 BTC = 120,000 of open interest: the target becomes 5% + 95% x 0.7 =
    // 71.5%, which 10,000 of equity cannot carry for 120,000 of notional.
    let whale_report = venue_a.report("venue-a", &[(whale.address(), "BTC-PERP", "0.16", "60000")]);
    assert_eq!(chain.block(&[whale_report]), vec![TxCode::Ok]);
    let whale_report = venue_a.report("venue-a", &[(whale.address(), "BTC-PERP", "2", "60000")]);
    assert_eq!(
        chain.block(&[whale_report]),
        vec![TxCode::InsufficientInitialMargin]
    );
    venue_a.sequence -= 1;
    let mut custodian = Signer::new(custodian_key());
    custodian.sequence = chain.engine.state().next_sequence(&custodian.address());
    chain.block(&[custodian.deposit(whale.address(), "USDC", "200000")]);
    let whale_report = venue_a.report("venue-a", &[(whale.address(), "BTC-PERP", "2", "60000")]);
    assert_eq!(chain.block(&[whale_report]), vec![TxCode::Ok]);
    chain.block(&[]);
    let btc: clearnode_types::MarketId = "BTC-PERP".parse().expect("id");
    let margin = chain.engine.state().markets[&btc].margin;
    assert_eq!(margin.target.ppm(), 715_000);
    assert!(
        margin.current.ppm() < 200_000,
        "existing positions phase in: {}",
        margin.current
    );
    // New risk pays the target at the open interest it creates, at once:
    // 0.2 BTC more makes 132,000 of OI, a target of 82.9%, so 12,000 needs
    // 9,948 and fits in 10,000; 0.3 BTC (138,000, 88.6%) needs 15,948.
    let fits = venue_a.report("venue-a", &[(small.address(), "BTC-PERP", "0.2", "60000")]);
    assert_eq!(chain.block(&[fits]), vec![TxCode::Ok]);
    let too_much = venue_a.report("venue-a", &[(small.address(), "BTC-PERP", "0.3", "60000")]);
    assert_eq!(
        chain.block(&[too_much]),
        vec![TxCode::InsufficientInitialMargin]
    );
    // After the phase-in the existing positions pay it too.
    for _ in 0..40 {
        chain.block(&[]);
    }
    let margin = chain.engine.state().markets[&btc].margin;
    assert_eq!(margin.current, margin.target);
    assert_eq!(margin.target.ppm(), 829_000);
    assert_eq!(chain.risk(small.address()).initial_requirement, "9948");
}

#[test]
fn every_stateful_rejection_has_its_code_and_changes_nothing() {
    let mut chain = Chain::new();
    let mut trader = funded_trader(&mut chain, 1);
    let a = trader.address();
    let stranger = address_of(&key(9));
    let mut venue_a = Signer::new(venue_key(0));
    let mut venue_c = Signer::new(venue_key(2));
    let mut venue_x = Signer::new(venue_key(3));
    chain.block(&[venue_a.report("venue-a", &[(a, "BTC-PERP", "2", "60000")])]);

    let mut impostor = Signer::new(key(50));
    let mut replayed = Signer::new(key(1));
    // Rejections consume no sequence, so every case signs with the signer's
    // current next sequence.
    let state = chain.engine.state().clone();
    fn at<'s>(state: &crate::state::State, signer: &'s mut Signer) -> &'s mut Signer {
        signer.sequence = state.next_sequence(&signer.address());
        signer
    }
    let cases: Vec<(&str, Vec<u8>, TxCode)> = vec![
        (
            "replayed sequence",
            replayed.authorize("venue-c", true),
            TxCode::WrongSequence,
        ),
        (
            "deposit by a stranger",
            at(&state, &mut impostor).deposit(a, "USDC", "1"),
            TxCode::NotCustodian,
        ),
        (
            "unknown venue",
            at(&state, &mut trader).authorize("venue-zz", true),
            TxCode::UnknownVenue,
        ),
        (
            "report signed by another key",
            at(&state, &mut impostor).report("venue-a", &[(a, "BTC-PERP", "1", "60000")]),
            TxCode::NotVenueSigner,
        ),
        (
            "inactive venue",
            at(&state, &mut venue_x).report("venue-x", &[(a, "BTC-PERP", "1", "60000")]),
            TxCode::VenueInactive,
        ),
        (
            "venue the account never authorized",
            at(&state, &mut venue_c).report("venue-c", &[(a, "BTC-PERP", "1", "60000")]),
            TxCode::VenueNotAuthorized,
        ),
        (
            "account that does not exist",
            at(&state, &mut venue_a).report("venue-a", &[(stranger, "BTC-PERP", "1", "60000")]),
            TxCode::VenueNotAuthorized,
        ),
        (
            "unknown market",
            at(&state, &mut venue_a).report("venue-a", &[(a, "DOGE-PERP", "1", "1")]),
            TxCode::UnknownMarket,
        ),
        (
            "position above the limit",
            at(&state, &mut venue_a).report("venue-a", &[(a, "BTC-PERP", "100001", "60000")]),
            TxCode::PositionTooLarge,
        ),
        (
            "unknown asset",
            at(&state, &mut trader).withdraw("DOGE", "1"),
            TxCode::UnknownAsset,
        ),
        (
            "more than the balance",
            at(&state, &mut trader).withdraw("USDC", "10000.01"),
            TxCode::InsufficientCollateral,
        ),
        // 2 BTC at 60,000 needs 6,000 initial margin out of 10,000.
        (
            "withdrawal beyond margin",
            at(&state, &mut trader).withdraw("USDC", "4000.01"),
            TxCode::BelowInitialMargin,
        ),
    ];
    for (name, tx, expected) in cases {
        let before = chain.engine.state().clone();
        let codes = chain.block(&[tx]);
        assert_eq!(codes, vec![expected], "{name}");
        let mut after = chain.engine.state().clone();
        after.chain = before.chain.clone();
        assert_eq!(after, before, "{name} changed the state");
    }
    at(&state, &mut trader);
    assert_eq!(
        chain.block(&[trader.withdraw("USDC", "4000")]),
        vec![TxCode::Ok]
    );
}

#[test]
fn stateless_rejections_reach_the_block_as_codes() {
    let mut chain = Chain::new();
    let codes = chain.block(&[vec![1, 2, 3], Vec::new()]);
    assert_eq!(codes, vec![TxCode::MalformedTx, TxCode::InvalidPublicKey]);
}

#[test]
fn check_tx_follows_the_mempool_sequence() {
    let chain = Chain::new();
    let mut trader = Signer::new(key(1));
    let first = trader.authorize("venue-a", true);
    let second = trader.authorize("venue-b", true);
    let mut pending = BTreeMap::new();
    assert!(chain.engine.check_tx(&first, &pending).is_ok());
    let rejection = chain.engine.check_tx(&second, &pending).expect_err("gap");
    assert_eq!(rejection.code, TxCode::WrongSequence);
    pending.insert(trader.address(), 1);
    assert!(chain.engine.check_tx(&second, &pending).is_ok());
}

#[test]
fn aggregates_follow_reports() {
    let mut chain = Chain::new();
    let t1 = funded_trader(&mut chain, 1).address();
    let t2 = funded_trader(&mut chain, 2).address();
    let mut venue_a = Signer::new(venue_key(0));
    let mut venue_b = Signer::new(venue_key(1));
    chain.block(&[
        venue_a.report(
            "venue-a",
            &[
                (t1, "BTC-PERP", "1", "60000"),
                (t2, "BTC-PERP", "-1", "60000"),
            ],
        ),
        venue_b.report("venue-b", &[(t1, "BTC-PERP", "-0.25", "60000")]),
    ]);
    let bytes =
        &chain.committed.0[&crate::keys::market_aggregate(&"BTC-PERP".parse().expect("id"))];
    let market = pb::MarketAggregate::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(market.long_open_interest, "1");
    assert_eq!(market.short_open_interest, "1.25");
    assert_eq!(market.net_long_open_interest, "0.75");
    assert_eq!(market.net_short_open_interest, "1");
    assert_eq!(market.gross_notional, "135000");
    assert_eq!(market.net_notional, "105000");
    assert_eq!(market.accounts_with_position, 2);
    assert_eq!(market.venues.len(), 2);
    // Net sizes 0.75 and 1: the larger holds 1 / 1.75 of the net open
    // interest; HHI (0.75^2 + 1^2) / 1.75^2; both rounded up.
    let concentration = market.concentration.expect("concentration");
    assert_eq!(
        (concentration.top1_share_ppm, concentration.top5_share_ppm),
        (571_429, 1_000_000)
    );
    assert_eq!((concentration.hhi_ppm, concentration.holders), (510_205, 2));
    let system =
        pb::SystemAggregate::decode(chain.committed.0[&crate::keys::system_aggregate()].as_slice())
            .expect("decodes");
    assert_eq!(system.total_equity, "20000");
    assert_eq!(system.net_notional, "105000");
    assert_eq!(system.aggregate_leverage, "5.25");
    assert_eq!(system.accounts_total, 2);
    assert_eq!(system.collateral_totals[1].amount, "20000");
    // Net notionals 45,000 and 60,000: the same shares system-wide.
    assert_eq!(system.concentration, Some(concentration));
}

#[test]
fn state_layout_and_genesis_are_pinned() {
    // The state layout is a public API: this digest changes only when keys,
    // encodings or genesis change, and such a change must be deliberate.
    let mut chain = Chain::new();
    let trader = funded_trader(&mut chain, 1);
    let mut venue_a = Signer::new(venue_key(0));
    chain.block(&[venue_a.report("venue-a", &[(trader.address(), "ETH-PERP", "-3", "3100")])]);
    let mut hasher = Sha256::new();
    for (key, value) in &chain.committed.0 {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key);
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
    let keys: Vec<String> = chain
        .committed
        .0
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    insta_like_pin(&keys, &hex::encode(hasher.finalize()));
}

/// Compares with `state_layout.keys` (first line the digest, then the keys);
/// `UPDATE_SNAPSHOTS=1 cargo test` rewrites it after a deliberate change.
fn insta_like_pin(keys: &[String], digest: &str) {
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/block/state_layout.keys");
        let text = std::iter::once(digest.to_string()).chain(keys.iter().cloned());
        std::fs::write(path, text.collect::<Vec<_>>().join("\n") + "\n").expect("writes");
        return;
    }
    let expected_keys = include_str!("state_layout.keys");
    let listed: Vec<&str> = expected_keys.lines().collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(keys, listed[1..].to_vec(), "state keys changed");
    assert_eq!(listed[0], digest, "stored values changed");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Random blocks of deposits, authorizations, reports and withdrawals:
    /// reloading from the committed writes gives exactly the live state
    /// (running totals included), and a second engine fed the same blocks
    /// writes the same bytes.
    #[test]
    fn reload_and_replay_reproduce_the_state(ops in proptest::collection::vec((0u8..6, 0u8..4, 0u8..3, -40i32..40, 1u32..5000), 1..60)) {
        let mut live = Chain::new();
        let mut twin = Chain::new();
        let mut custodian = Signer::new(custodian_key());
        let mut traders: Vec<Signer> = (0u8..4).map(|i| Signer::new(key(10 + i))).collect();
        let mut venues: Vec<Signer> = (0u8..3).map(|i| Signer::new(venue_key(i))).collect();
        for block in ops.chunks(5) {
            let mut txs = Vec::new();
            for &(kind, trader, venue, size, amount) in block {
                if kind == 5 {
                    // A price move of up to +-20% from 60,000.
                    let price = 60_000 + i64::from(size) * 300;
                    live.prices.push(btc_price(price));
                    twin.prices.push(btc_price(price));
                    continue;
                }
                let t = usize::from(trader);
                let v = usize::from(venue);
                let address = traders[t].address();
                let tx = match kind {
                    0 => custodian.deposit(address, "USDC", &amount.to_string()),
                    1 => traders[t].authorize(testkit::VENUES[v], true),
                    2 => traders[t].withdraw("USDC", &(amount / 7).to_string()),
                    _ => {
                        let market = if size % 2 == 0 { "BTC-PERP" } else { "ETH-PERP" };
                        let size = format!("{}.5", size / 4);
                        venues[v].report(testkit::VENUES[v], &[(address, market, &size, "2999.5")])
                    }
                };
                txs.push(tx);
            }
            let codes = live.block(&txs);
            proptest::prop_assert_eq!(codes, twin.block(&txs));
            // Rejected txs do not consume sequences: resynchronise the builders.
            for signer in traders.iter_mut().chain(venues.iter_mut()).chain(std::iter::once(&mut custodian)) {
                signer.sequence = live.engine.state().next_sequence(&signer.address());
            }
            let reloaded = Engine::load(&live.committed).expect("loads");
            proptest::prop_assert_eq!(reloaded.state(), live.engine.state());
        }
        proptest::prop_assert_eq!(&live.committed.0, &twin.committed.0);
    }
}

mod acknowledgements;
mod backstop;
mod breakers;
mod breakers_random;
mod governance;
mod isolated;
mod ladder;
