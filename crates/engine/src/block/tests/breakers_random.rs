//! Random blocks against tight breakers: prices jumping across the band,
//! rounds quoted by too few validators, gaps that go stale, reports that
//! add or reduce exposure, withdrawals and trips. Whatever happens, no
//! accepted report adds exposure where the breakers forbid it, nothing
//! touches a paused market, two engines fed the same blocks write the same
//! bytes, and the stored state reloads to the live one.

use clearnode_num::Quantity;
use clearnode_types::genesis::{Genesis, GenesisMarketBreaker, GenesisSystemBreaker};
use clearnode_types::{Address, MarketId, TxCode};

use super::{btc_price, trader_with, Chain};
use crate::breakers::MarketStatus;
use crate::testkit::{genesis, key, venue_key, Signer};
use crate::{Engine, PriceTarget};

fn tight_genesis() -> Genesis {
    let mut genesis = genesis();
    genesis.markets[0].breaker = GenesisMarketBreaker {
        price_band_ppm: 50_000,
        limit_blocks: 2,
        pause_blocks: 2,
        reopen_blocks: 3,
        reopen_margin_multiplier_ppm: 1_500_000,
        reference_window_blocks: 6,
        open_interest_cap: clearnode_num::Money::from_units(2_000_000),
        venue_open_interest_cap: clearnode_num::Money::from_units(1_500_000),
        stale_after_blocks: 3,
        volatile_move_ppm: 40_000,
    };
    genesis.params.system_breaker = GenesisSystemBreaker {
        fund_drawdown_max_ppm: 5_000,
        fund_drawdown_window_blocks: 5,
        coverage_stress_move_ppm: 200_000,
        tightened_margin_multiplier_ppm: 1_300_000,
        fresh_price_blocks: 1,
    };
    genesis
}

fn btc() -> MarketId {
    "BTC-PERP".parse().expect("id")
}

fn net_btc(chain: &Chain, account: Address) -> Quantity {
    let Some(account) = chain.engine.state().accounts.get(&account) else {
        return Quantity::ZERO;
    };
    account
        .positions
        .iter()
        .filter(|((market, _), _)| *market == btc())
        .try_fold(Quantity::ZERO, |net, (_, p)| net.checked_add(p.size))
        .expect("fits")
}

/// A small deterministic generator (xorshift64*), so the reach of the
/// run can be asserted over a fixed set of seeds.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn signed(&mut self, bound: i64) -> i64 {
        i64::try_from(self.below(u64::try_from(2 * bound + 1).expect("small"))).expect("small")
            - bound
    }
}

/// Codes the breakers returned in a run: 315, 316, 317, 318, 319.
type Reach = [u32; 5];

fn run(seed: u64, blocks: usize) -> Reach {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let genesis = tight_genesis();
    let mut live = Chain::with_genesis(&genesis);
    let mut twin = Chain::with_genesis(&genesis);
    let mut traders = Vec::new();
    for seed in 1..=4u8 {
        let trader = trader_with(&mut live, seed, "300000");
        trader_with(&mut twin, seed, "300000");
        traders.push(trader);
    }
    let mut venues = [Signer::new(venue_key(0)), Signer::new(venue_key(1))];
    let mut anyone = Signer::new(key(99));
    let mut level = 60_000i64;
    let mut reach: Reach = [0; 5];
    for _ in 0..blocks {
        match rng.below(6) {
            0..=2 => {
                level = (level + level * rng.signed(90) / 1000).clamp(20_000, 200_000);
                live.prices.push(btc_price(level));
                twin.prices.push(btc_price(level));
            }
            3 => {
                live.underquoted.push(PriceTarget::Market(btc()));
                twin.underquoted.push(PriceTarget::Market(btc()));
            }
            _ => {} // no quote at all: the price ages
        }
        let t = usize::try_from(rng.below(4)).expect("small");
        let account = traders[t].address();
        let before = net_btc(&live, account);
        let system_tripped = live.engine.state().breakers.system.tripped;
        let kind = rng.below(10);
        let tx = match kind {
            0..=7 => {
                let v = usize::try_from(kind % 2).expect("small");
                let venue = ["venue-a", "venue-b"][v];
                let size = format!("{}.5", rng.signed(15));
                venues[v].report(venue, &[(account, "BTC-PERP", &size, "60000")])
            }
            8 => traders[t].withdraw("USDC", "1000"),
            _ => anyone.trip_breaker((rng.below(2) == 0).then_some("BTC-PERP")),
        };
        let codes = live.block(std::slice::from_ref(&tx));
        assert_eq!(codes, twin.block(std::slice::from_ref(&tx)), "seed {seed}");
        let breaker = &live.engine.state().breakers.markets[&btc()];
        let after = net_btc(&live, account);
        if codes[0] == TxCode::Ok && kind <= 7 {
            let added = before.signum() * after.signum() < 0
                || after.abs().expect("fits") > before.abs().expect("fits");
            assert!(
                !breaker.is_paused(),
                "seed {seed}: a report landed in a paused market"
            );
            if added {
                assert!(
                    breaker.status != MarketStatus::Limit,
                    "seed {seed}: exposure added in limit"
                );
                assert!(
                    !system_tripped,
                    "seed {seed}: exposure added while the system breaker held"
                );
                assert!(
                    breaker.validity.is_valid(),
                    "seed {seed}: exposure added on {:?}",
                    breaker.validity
                );
            }
        }
        if let Some(slot) = codes[0].number().checked_sub(315).filter(|n| *n < 5) {
            reach[usize::try_from(slot).expect("small")] += 1;
        }
        // Refused transactions consume no sequence.
        let signers = traders.iter_mut().chain(venues.iter_mut());
        for signer in signers.chain(std::iter::once(&mut anyone)) {
            signer.sequence = live.engine.state().next_sequence(&signer.address());
        }
    }
    let reloaded = Engine::load(&live.committed).expect("loads");
    assert_eq!(reloaded.state(), live.engine.state(), "seed {seed}");
    assert_eq!(live.committed.0, twin.committed.0, "seed {seed}");
    reach
}

#[test]
fn no_accepted_transaction_slips_past_a_breaker() {
    let mut total: Reach = [0; 5];
    for seed in 0..24 {
        for (sum, n) in total.iter_mut().zip(run(seed, 60)) {
            *sum += n;
        }
    }
    eprintln!("codes 315..319 reached: {total:?}");
    // Every breaker refusal is exercised, or the run proves nothing.
    assert!(total.iter().all(|n| *n >= 3), "reach {total:?}");
}
