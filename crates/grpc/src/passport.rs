//! `VenueService.GetMarginPassport`: the engine's passport over the latest
//! committed state, read at one version.
//!
//! Markets, assets, open interest, venues and the size limit are the same
//! for every passport at a version, so they are decoded once per committed
//! version and shared ([`PassportCache`]); a request reads and decodes only
//! its account and that account's positions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use clearnode_engine::codec;
use clearnode_engine::keys;
use clearnode_engine::margin::compute_risk;
use clearnode_engine::margin::passport::{passport, OpenInterest};
use clearnode_engine::state::{Asset, Market};
use clearnode_num::Quantity;
use clearnode_proto::state::v1 as state_pb;
use clearnode_proto::venue::v1 as pb;
use clearnode_store::Store;
use clearnode_types::{Address, AssetId, MarketId, VenueId};
use prost::Message;
use tonic::Status;

use crate::{decode, internal};

/// Reads retried while commits land.
const ATTEMPTS_MAX: usize = 3;

/// What every passport at one committed version reads besides the account.
#[derive(Debug)]
struct Shared {
    version: u64,
    app_hash: [u8; 32],
    /// Keys of the listed venues.
    venue_keys: BTreeSet<Vec<u8>>,
    markets: BTreeMap<MarketId, Market>,
    assets: BTreeMap<AssetId, Asset>,
    open_interest: OpenInterest,
    position_size_max: Quantity,
}

/// The decoded state shared by passports, for the latest version seen.
#[derive(Debug, Clone, Default)]
pub struct PassportCache(Arc<Mutex<Option<Arc<Shared>>>>);

impl PassportCache {
    /// The shared state at `version`, decoded unless already cached. Kept
    /// only if no commit landed while it was read (then it is all of one
    /// version).
    fn at(&self, store: &Store, version: u64) -> Result<Arc<Shared>, Status> {
        let poisoned = |_| internal("passport cache lock poisoned");
        if let Some(shared) = self.0.lock().map_err(poisoned)?.as_ref() {
            if shared.version == version {
                return Ok(Arc::clone(shared));
            }
        }
        let shared = Arc::new(read_shared(store, version)?);
        if latest(store)? == version {
            *self.0.lock().map_err(poisoned)? = Some(Arc::clone(&shared));
        }
        Ok(shared)
    }
}

fn latest(store: &Store) -> Result<u64, Status> {
    store
        .latest()
        .map_err(internal)?
        .filter(|c| c.version > 0)
        .map(|c| c.version)
        .ok_or_else(|| Status::unavailable("no block committed yet"))
}

/// Answers a passport request.
pub fn answer(
    store: &Store,
    cache: &PassportCache,
    request: pb::GetMarginPassportRequest,
) -> Result<pb::GetMarginPassportResponse, Status> {
    let address = Address::from_slice(&request.account)
        .ok_or_else(|| Status::invalid_argument("account must be a 20-byte address"))?;
    let venue: VenueId = request
        .venue_id
        .parse()
        .map_err(|e| Status::invalid_argument(format!("venue_id: {e}")))?;
    for _ in 0..ATTEMPTS_MAX {
        let version = latest(store)?;
        let shared = cache.at(store, version)?;
        let response = compute(store, &shared, address, &venue)?;
        if latest(store)? == version {
            return Ok(response);
        }
    }
    Err(Status::unavailable("state kept changing; retry"))
}

fn scan<M: Message + Default>(store: &Store, prefix: &[u8]) -> Result<Vec<M>, Status> {
    store
        .scan_prefix_latest(prefix)
        .map_err(internal)?
        .iter()
        .map(|(_, value)| decode(value))
        .collect()
}

fn malformed(error: codec::DecodeError) -> Status {
    Status::data_loss(error.to_string())
}

fn read_shared(store: &Store, version: u64) -> Result<Shared, Status> {
    let venue_keys = store
        .scan_prefix_latest(keys::VENUE_PREFIX)
        .map_err(internal)?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let mut markets: BTreeMap<MarketId, Market> = BTreeMap::new();
    for market in scan::<state_pb::Market>(store, keys::MARKET_PREFIX)? {
        let market = codec::market_from_pb(market).map_err(malformed)?;
        markets.insert(market.id.clone(), market);
    }
    for margin in scan::<state_pb::MarketMargin>(store, keys::MARKET_MARGIN_PREFIX)? {
        let (id, margin) = codec::market_margin_from_pb(margin).map_err(malformed)?;
        if let Some(market) = markets.get_mut(&id) {
            market.margin = margin;
        }
    }
    let mut assets = BTreeMap::new();
    for asset in scan::<state_pb::CollateralAsset>(store, keys::ASSET_PREFIX)? {
        let asset = codec::asset_from_pb(asset).map_err(malformed)?;
        assets.insert(asset.id.clone(), asset);
    }
    let mut open_interest = BTreeMap::new();
    for aggregate in scan::<state_pb::MarketAggregate>(store, keys::MARKET_AGGREGATE_PREFIX)? {
        let parse = |text: &str| {
            text.parse()
                .map_err(|e| Status::data_loss(format!("open interest {text:?}: {e}")))
        };
        let id: MarketId = aggregate
            .market
            .parse()
            .map_err(|e| Status::data_loss(format!("{e}")))?;
        open_interest.insert(
            id,
            (
                parse(&aggregate.long_open_interest)?,
                parse(&aggregate.short_open_interest)?,
            ),
        );
    }
    let params_bytes = store
        .get_latest(&keys::params())
        .map_err(internal)?
        .ok_or_else(|| Status::data_loss("params missing from state"))?;
    let params = codec::params_from_pb(decode(&params_bytes)?).map_err(malformed)?;
    let app_hash = store
        .root_hash(version)
        .map_err(internal)?
        .ok_or_else(|| Status::not_found(format!("height {version} is not retained")))?;
    Ok(Shared {
        version,
        app_hash,
        venue_keys,
        markets,
        assets,
        open_interest,
        position_size_max: params.position_size_max,
    })
}

fn compute(
    store: &Store,
    shared: &Shared,
    address: Address,
    venue: &VenueId,
) -> Result<pb::GetMarginPassportResponse, Status> {
    if !shared.venue_keys.contains(&keys::venue(venue)) {
        return Err(Status::not_found(format!("no venue {venue}")));
    }
    let account_bytes = store
        .get_latest(&keys::account(&address))
        .map_err(internal)?
        .ok_or_else(|| Status::not_found(format!("no account {address}")))?;
    let (_, mut account) = codec::account_from_pb(decode(&account_bytes)?).map_err(malformed)?;
    if let Some(bytes) = store
        .get_latest(&keys::positions(&address))
        .map_err(internal)?
    {
        let (_, positions) = codec::positions_from_bytes(&bytes).map_err(malformed)?;
        account.positions = positions.into_iter().collect();
    }
    let (markets, assets) = (&shared.markets, &shared.assets);
    let version = shared.version;
    let arithmetic = |e: clearnode_num::NumError| internal(format!("margin arithmetic: {e}"));
    let risk = compute_risk(&account, markets, assets, version).map_err(arithmetic)?;
    let allowances = passport(
        &account,
        venue,
        markets,
        assets,
        &shared.open_interest,
        shared.position_size_max,
    )
    .map_err(arithmetic)?;
    Ok(pb::GetMarginPassportResponse {
        height: version,
        app_hash: shared.app_hash.to_vec(),
        free_collateral: risk.free_collateral().map_err(arithmetic)?.to_string(),
        equity: risk.equity.to_string(),
        health: codec::health_to_pb(risk.health).into(),
        markets: allowances
            .into_iter()
            .map(|a| pb::MarketAllowance {
                market: a.market.to_string(),
                max_long: a.long.to_string(),
                max_short: a.short.to_string(),
            })
            .collect(),
    })
}
