//! Price feeds: where a validator's oracle quotes come from. Outside
//! consensus: each validator quotes what its feed says, and consensus takes
//! the stake-weighted median.
//!
//! - `simulated`: deterministic for a height, driven by a scenario file (or
//!   a built-in gentle random walk), with noise of its own per validator —
//!   for devnet, localnet and tests.
//! - `http`: polls a JSON object `{"market:BTC-PERP": "64000.5", ...}`; a
//!   quote older than `stale_after_seconds` is dropped, so a validator whose
//!   feed is down abstains rather than quoting a stale price.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clearnode_abci::QuoteSource;
use clearnode_num::Price;
use clearnode_types::price::{PriceTarget, PriceUpdate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `<home>/oracle.toml`: the validator's price feed (absent: simulated).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleConfig {
    /// "simulated" (default), "http", or "none".
    #[serde(default)]
    pub feed: String,
    /// Scenario file of the simulated feed (default: the built-in walk).
    #[serde(default)]
    pub scenario: String,
    /// URL the http feed polls.
    #[serde(default)]
    pub url: String,
    /// Seconds after which an http quote is stale.
    #[serde(default)]
    pub stale_after_seconds: u64,
}

impl OracleConfig {
    /// Reads `<home>/oracle.toml`, or the default when there is none.
    pub fn load(home: &Path) -> Result<Self> {
        let path = home.join("oracle.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

/// A scenario for the simulated feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedScenario {
    /// Start prices by target (`market:BTC-PERP`), as decimals.
    pub start: BTreeMap<String, String>,
    /// Per target, points `(height, per-mille of start)`, linear in between;
    /// without points a target walks at random, at most `step_ppm` a block.
    #[serde(default)]
    pub paths: BTreeMap<String, Vec<(i64, i64)>>,
    /// Largest random step per block, ppm (for targets without a path).
    pub step_ppm: i64,
    /// Each validator's own noise around the path, ppm.
    pub noise_ppm: i64,
    /// Seed of the walk (shared by all validators).
    pub seed: u64,
}

fn hash_int(parts: &[&[u8]], modulus: i64) -> i64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let value = u64::from_be_bytes(bytes) % u64::try_from(modulus.max(1)).unwrap_or(1);
    i64::try_from(value).unwrap_or(0)
}

/// Per-mille of start on a path at a height (linear between points).
fn on_path(points: &[(i64, i64)], height: i64) -> i64 {
    let Some(first) = points.first() else {
        return 1000;
    };
    if height <= first.0 {
        return first.1;
    }
    for pair in points.windows(2) {
        let ((h0, p0), (h1, p1)) = (pair[0], pair[1]);
        if height <= h1 {
            return p0 + (p1 - p0) * (height - h0) / (h1 - h0).max(1);
        }
    }
    points.last().map_or(1000, |p| p.1)
}

/// The simulated feed of one validator.
pub struct SimulatedFeed {
    scenario: FeedScenario,
    starts: Vec<(PriceTarget, Price)>,
    validator: Vec<u8>,
    /// Random-walk level (ppm of start) per target at the last height asked.
    walk: Mutex<(i64, BTreeMap<PriceTarget, i64>)>,
}

impl SimulatedFeed {
    /// A feed for the validator with this identity (its node key).
    pub fn new(scenario: FeedScenario, validator: Vec<u8>) -> Result<Self> {
        let mut starts = Vec::new();
        for (target, price) in &scenario.start {
            let target: PriceTarget = target.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let price: Price = price
                .parse()
                .map_err(|e| anyhow::anyhow!("start price of {target}: {e}"))?;
            starts.push((target, price));
        }
        Ok(Self {
            scenario,
            starts,
            validator,
            walk: Mutex::new((0, BTreeMap::new())),
        })
    }

    /// The walk level (ppm of start) of a target at a height, shared by all validators.
    fn walk_level(&self, target: &PriceTarget, height: i64) -> i64 {
        let mut walk = self.walk.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, levels) = &mut *walk;
        if height < *last {
            *last = 0;
            levels.clear();
        }
        let step_max = self.scenario.step_ppm.max(0);
        let seed = self.scenario.seed.to_be_bytes();
        let name = target.to_string();
        let mut level = levels.get(target).copied().unwrap_or(1_000_000);
        for h in (*last + 1)..=height {
            let step = hash_int(
                &[&seed, name.as_bytes(), &h.to_be_bytes()],
                2 * step_max + 1,
            ) - step_max;
            level = (level + level * step / 1_000_000).clamp(200_000, 5_000_000);
        }
        levels.insert(target.clone(), level);
        *last = height;
        level
    }

    /// Quotes for a height.
    pub fn quotes(&self, height: i64) -> Vec<PriceUpdate> {
        let noise_max = self.scenario.noise_ppm.max(0);
        self.starts
            .iter()
            .filter_map(|(target, start)| {
                let name = target.to_string();
                let level_ppm = match self.scenario.paths.get(&name) {
                    Some(points) => on_path(points, height) * 1000,
                    None => self.walk_level(target, height),
                };
                let noise = hash_int(
                    &[&self.validator, name.as_bytes(), &height.to_be_bytes()],
                    2 * noise_max + 1,
                ) - noise_max;
                let factor = i128::from(level_ppm) * i128::from(1_000_000 + noise) / 1_000_000;
                let raw = start.raw() * factor / 1_000_000;
                Price::from_raw(raw.max(1)).ok().map(|price| PriceUpdate {
                    target: target.clone(),
                    price,
                })
            })
            .collect()
    }
}

/// The devnet scenario: every listed market and asset from its genesis
/// price, walking at most 0.3% a block, 0.05% noise per validator.
pub fn default_scenario(app_state: &clearnode_types::genesis::Genesis) -> FeedScenario {
    let mut start = BTreeMap::new();
    for market in &app_state.markets {
        start.insert(
            format!("market:{}", market.id),
            market.oracle_price.to_string(),
        );
    }
    for asset in &app_state.assets {
        if asset.id.as_str() != "USDC" {
            start.insert(
                format!("asset:{}", asset.id),
                asset.oracle_price.to_string(),
            );
        }
    }
    FeedScenario {
        start,
        paths: BTreeMap::new(),
        step_ppm: 3_000,
        noise_ppm: 500,
        seed: 1,
    }
}

/// The node's quote source for its configuration.
pub fn quote_source(
    config: &OracleConfig,
    cometbft_home: &Path,
    runtime: &tokio::runtime::Handle,
) -> Result<QuoteSource> {
    match config.feed.as_str() {
        "" | "simulated" => {
            let scenario = if config.scenario.is_empty() {
                let genesis = read_app_state(cometbft_home)?;
                default_scenario(&genesis)
            } else {
                let text = std::fs::read_to_string(&config.scenario)
                    .with_context(|| format!("reading the feed scenario {}", config.scenario))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", config.scenario))?
            };
            let identity =
                std::fs::read(cometbft_home.join("config/node_key.json")).unwrap_or_default();
            let feed = Arc::new(SimulatedFeed::new(scenario, identity)?);
            Ok(Arc::new(move |height| feed.quotes(height)))
        }
        "http" => Ok(http_feed(config, runtime)?),
        "none" => Ok(Arc::new(|_| Vec::new())),
        other => bail!("unknown oracle feed {other:?}: use simulated, http or none"),
    }
}

pub(crate) fn read_app_state(cometbft_home: &Path) -> Result<clearnode_types::genesis::Genesis> {
    let path = cometbft_home.join("config/genesis.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let genesis: serde_json::Value = serde_json::from_str(&text)?;
    Ok(clearnode_types::genesis::Genesis::from_json(
        genesis["app_state"].to_string().as_bytes(),
    )?)
}

/// Quotes and when they were fetched.
type Fetched = (tokio::time::Instant, Vec<PriceUpdate>);

/// Polls the URL every second; quotes only what is fresh.
fn http_feed(config: &OracleConfig, runtime: &tokio::runtime::Handle) -> Result<QuoteSource> {
    if config.url.is_empty() {
        bail!("the http oracle feed needs [oracle] url");
    }
    let stale_after = Duration::from_secs(config.stale_after_seconds.max(1));
    let latest: Arc<Mutex<Option<Fetched>>> = Arc::new(Mutex::new(None));
    let writer = Arc::clone(&latest);
    let url = config.url.clone();
    runtime.spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let fetched = async {
                let quotes: BTreeMap<String, String> =
                    client.get(&url).send().await?.json().await?;
                Ok::<_, reqwest::Error>(quotes)
            }
            .await;
            match fetched {
                Ok(quotes) => {
                    let quotes = quotes
                        .iter()
                        .filter_map(|(target, price)| {
                            Some(PriceUpdate {
                                target: target.parse().ok()?,
                                price: price.parse().ok()?,
                            })
                        })
                        .collect();
                    *writer.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some((tokio::time::Instant::now(), quotes));
                }
                Err(e) => tracing::warn!("oracle feed {url}: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(Arc::new(move |_| {
        let latest = latest.lock().unwrap_or_else(PoisonError::into_inner);
        match &*latest {
            Some((at, quotes)) if at.elapsed() <= stale_after => quotes.clone(),
            _ => Vec::new(),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> FeedScenario {
        FeedScenario {
            start: BTreeMap::from([
                ("market:BTC-PERP".into(), "64000".into()),
                ("market:ETH-PERP".into(), "3200".into()),
            ]),
            paths: BTreeMap::from([("market:ETH-PERP".into(), vec![(0, 1000), (10, 800)])]),
            step_ppm: 3_000,
            noise_ppm: 500,
            seed: 7,
        }
    }

    #[test]
    fn the_simulated_feed_is_deterministic_per_validator_and_height() {
        let a = SimulatedFeed::new(scenario(), b"validator-a".to_vec()).expect("feed");
        let b = SimulatedFeed::new(scenario(), b"validator-b".to_vec()).expect("feed");
        let again = SimulatedFeed::new(scenario(), b"validator-a".to_vec()).expect("feed");
        assert_eq!(a.quotes(25), again.quotes(25));
        assert_ne!(a.quotes(25), b.quotes(25), "validators add their own noise");
        // Asked out of order, the walk recomputes to the same value.
        let later = a.quotes(40);
        assert_eq!(a.quotes(25), again.quotes(25));
        assert_eq!(a.quotes(40), later);
    }

    #[test]
    fn a_path_is_followed_within_the_noise() {
        let feed = SimulatedFeed::new(scenario(), b"v".to_vec()).expect("feed");
        let eth = |h| {
            feed.quotes(h)
                .into_iter()
                .find(|q| q.target.to_string() == "market:ETH-PERP")
                .expect("quoted")
                .price
        };
        let at_five = eth(5).raw();
        let expected = Price::from_units(2880).expect("positive").raw();
        assert!(
            (at_five - expected).abs() <= expected / 1000,
            "{at_five} vs {expected}"
        );
        assert_eq!(on_path(&[(0, 1000), (10, 800)], 20), 800);
    }
}
