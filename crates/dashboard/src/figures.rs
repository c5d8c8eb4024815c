//! The dashboard's figures: answers of the `AuditService`, called in
//! process, all read at one height, so each can be re-fetched and proven
//! with `clearnode audit verify --height H ...`.

use std::collections::BTreeMap;
use std::time::Duration;

use clearnode_engine::keys;
use clearnode_grpc::AuditApi;
use clearnode_proto::audit::v1 as pb;
use clearnode_proto::audit::v1::audit_service_server::AuditService;
use clearnode_proto::state::v1 as state_pb;
use clearnode_store::Store;
use clearnode_types::{Address, MarketId, VenueId};
use serde::Serialize;
use tonic::{Code, Request, Status};

/// Most heights one series answer covers.
pub const SERIES_BLOCKS_MAX: u64 = 240;

/// Most pages of instructions counted for one height.
const INSTRUCTION_PAGES_MAX: usize = 20;

/// Single instructions and orders a snapshot names a proving command for.
const KEYS_SHOWN_MAX: usize = 3;

/// How often a waiting request looks for a new block.
const NEW_BLOCK_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How many looks a waiting request takes before answering with what there
/// is (5 s: a page never waits long on a halted chain).
const NEW_BLOCK_POLLS_MAX: u32 = 50;

/// Every figure the dashboard shows for one height.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// The state version all figures were read at.
    pub height: u64,
    /// Its app hash (signed in the header of block `height + 1`), hex.
    pub app_hash: String,
    /// `AuditService.GetSystemRisk` at `height`.
    pub system: pb::GetSystemRiskResponse,
    /// `AuditService.GetInsuranceFund` at `height`.
    pub fund: pb::GetInsuranceFundResponse,
    /// `AuditService.GetMarketRisk` of every listed market at `height`.
    pub markets: Vec<pb::GetMarketRiskResponse>,
    /// `AuditService.ListLiquidationOrders` (latest state only, so absent
    /// from snapshots of past heights).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liquidation_orders: Option<pb::ListLiquidationOrdersResponse>,
    /// Instructions issued to venues in block `height`, counted by kind
    /// (`AuditService.ListInstructions` over `[height, height]`).
    pub instructions: BTreeMap<String, u64>,
    /// `AuditService.GetBreakers` at `height`: every market's breaker and
    /// price validity, and the system breaker with the fund's coverage.
    pub breakers: pb::GetBreakersResponse,
    /// Commands that prove these figures against the signed header.
    pub verify: Vec<String>,
}

/// Reads figures through the audit service.
#[derive(Debug, Clone)]
pub struct Figures {
    api: AuditApi,
    store: Store,
    /// `clearnode audit verify` with the options that reach this node.
    verify_command: String,
}

impl Figures {
    /// Figures of `store`; `verify_command` is how an auditor on this
    /// machine calls `clearnode audit verify` for this node (e.g. with `--home`).
    pub fn new(store: Store, verify_command: String) -> Self {
        Self {
            api: AuditApi::new(store.clone()),
            store,
            verify_command,
        }
    }

    /// The latest committed height (0 before the first block).
    pub fn latest_height(&self) -> Result<u64, Status> {
        Ok(self
            .store
            .latest()
            .map_err(|e| Status::internal(e.to_string()))?
            .map_or(0, |c| c.version))
    }

    /// Waits until a block above `height` is committed (or a while has
    /// passed), so a page polling with its last height updates once per block.
    pub async fn wait_for_block_after(&self, height: u64) -> Result<(), Status> {
        for _ in 0..NEW_BLOCK_POLLS_MAX {
            if self.latest_height()? > height {
                return Ok(());
            }
            tokio::time::sleep(NEW_BLOCK_POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// The snapshot at `height`, or at the latest height for `None`.
    pub async fn snapshot(&self, height: Option<u64>, prove: bool) -> Result<Snapshot, Status> {
        let (height, liquidation_orders) = match height {
            Some(height) => (height, None),
            None => {
                // The order list is read from the latest state only: its
                // height is the one every other figure is read at.
                let orders = self
                    .api
                    .list_liquidation_orders(Request::new(pb::ListLiquidationOrdersRequest {
                        account: Vec::new(),
                        limit: 0,
                    }))
                    .await?
                    .into_inner();
                let height = orders.context.as_ref().map_or(0, |c| c.height);
                (height, Some(orders))
            }
        };
        let mut snapshot = self.figures_at(height, prove).await?;
        if let Some(list) = &liquidation_orders {
            let order_keys: Vec<String> = list
                .orders
                .iter()
                .filter_map(order_key)
                .take(KEYS_SHOWN_MAX)
                .collect();
            let commands = key_commands(&self.verify_command, height, &order_keys);
            snapshot.verify.extend(commands);
        }
        snapshot.liquidation_orders = liquidation_orders;
        Ok(snapshot)
    }

    /// Snapshots (without liquidation orders) of up to `blocks` heights
    /// ending at the latest, oldest first.
    pub async fn series(&self, blocks: u64) -> Result<Vec<Snapshot>, Status> {
        let latest = self.latest_height()?;
        let blocks = blocks.clamp(1, SERIES_BLOCKS_MAX);
        let first = latest.saturating_sub(blocks - 1).max(1);
        let mut points = Vec::new();
        for height in first..=latest {
            points.push(self.figures_at(height, false).await?);
        }
        Ok(points)
    }

    async fn figures_at(&self, height: u64, prove: bool) -> Result<Snapshot, Status> {
        if height == 0 {
            return Err(Status::unavailable("no block committed yet"));
        }
        let system = self
            .api
            .get_system_risk(Request::new(pb::GetSystemRiskRequest { height, prove }))
            .await?
            .into_inner();
        let fund = self
            .api
            .get_insurance_fund(Request::new(pb::GetInsuranceFundRequest {
                height,
                prove,
                ..Default::default()
            }))
            .await?
            .into_inner();
        let mut markets = Vec::new();
        for market in self.market_ids()? {
            let request = pb::GetMarketRiskRequest {
                market,
                height,
                prove,
            };
            match self.api.get_market_risk(Request::new(request)).await {
                Ok(response) => markets.push(response.into_inner()),
                // Listed after `height`.
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => return Err(status),
            }
        }
        let breakers = self
            .api
            .get_breakers(Request::new(pb::GetBreakersRequest { height, prove }))
            .await?
            .into_inner();
        let (instructions, instruction_keys) = self.instruction_counts(height).await?;
        let app_hash = system
            .context
            .as_ref()
            .map(|c| hex_lower(&c.app_hash))
            .unwrap_or_default();
        let mut verify = verify_commands(&self.verify_command, height, &markets);
        verify.extend(key_commands(
            &self.verify_command,
            height,
            &instruction_keys,
        ));
        Ok(Snapshot {
            height,
            app_hash,
            system,
            fund,
            markets,
            liquidation_orders: None,
            instructions,
            breakers,
            verify,
        })
    }

    /// The instructions of block `height`, counted by kind.
    async fn instruction_counts(
        &self,
        height: u64,
    ) -> Result<(BTreeMap<String, u64>, Vec<String>), Status> {
        let mut counts = BTreeMap::new();
        let mut keys = Vec::new();
        let mut request = pb::ListInstructionsRequest {
            from_height: height,
            to_height: height,
            ..Default::default()
        };
        for _ in 0..INSTRUCTION_PAGES_MAX {
            let page = self
                .api
                .list_instructions(Request::new(request.clone()))
                .await?
                .into_inner();
            for instruction in page.instructions {
                if keys.len() < KEYS_SHOWN_MAX {
                    keys.extend(instruction_key(&instruction));
                }
                *counts.entry(instruction.kind).or_insert(0) += 1;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            request.page_token = page.next_page_token;
        }
        Ok((counts, keys))
    }

    /// Ids of the markets that have an aggregate in the latest state.
    fn market_ids(&self) -> Result<Vec<String>, Status> {
        let pairs = self
            .store
            .scan_prefix_latest(keys::MARKET_AGGREGATE_PREFIX)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(pairs
            .iter()
            .filter_map(|(key, _)| key.strip_prefix(keys::MARKET_AGGREGATE_PREFIX))
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .collect())
    }
}

/// The `clearnode audit verify` commands proving a snapshot's figures.
fn verify_commands(
    verify_command: &str,
    height: u64,
    markets: &[pb::GetMarketRiskResponse],
) -> Vec<String> {
    let command = |figure: &str| format!("{verify_command} --height {height} {figure}");
    let mut commands = vec![command("system"), command("fund"), command("breaker")];
    for market in markets {
        if let Some(aggregate) = &market.aggregate {
            commands.push(command(&format!("market {}", aggregate.market)));
            commands.push(command(&format!("breaker --market {}", aggregate.market)));
        }
    }
    commands
}

/// Commands proving single state values (instructions, orders) by key.
fn key_commands(verify_command: &str, height: u64, keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|key| format!("{verify_command} --height {height} key {key}"))
        .collect()
}

/// The state key of an instruction (`None` for an id that does not parse).
fn instruction_key(instruction: &state_pb::Instruction) -> Option<String> {
    let venue: VenueId = instruction.venue.parse().ok()?;
    let key = keys::instruction(&venue, instruction.height, instruction.index);
    String::from_utf8(key).ok()
}

/// The state key of a liquidation order.
fn order_key(order: &state_pb::LiquidationOrder) -> Option<String> {
    let account = Address::from_slice(&order.account)?;
    let market: MarketId = order.market.parse().ok()?;
    let venue: VenueId = order.venue.parse().ok()?;
    String::from_utf8(keys::liquidation_order(&account, &market, &venue)).ok()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_commands_name_the_height_and_every_market() {
        let market = pb::GetMarketRiskResponse {
            aggregate: Some(clearnode_proto::state::v1::MarketAggregate {
                market: "BTC-PERP".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            verify_commands("clearnode audit verify", 7, &[market]),
            vec![
                "clearnode audit verify --height 7 system",
                "clearnode audit verify --height 7 fund",
                "clearnode audit verify --height 7 breaker",
                "clearnode audit verify --height 7 market BTC-PERP",
                "clearnode audit verify --height 7 breaker --market BTC-PERP",
            ]
        );
    }

    #[test]
    fn instructions_and_orders_are_proven_by_their_state_keys() {
        let instruction = state_pb::Instruction {
            height: 42,
            index: 3,
            venue: "venue-a".into(),
            ..Default::default()
        };
        let key = instruction_key(&instruction).expect("key");
        assert_eq!(key, "instr/venue-a/00000000000000000042/000003");
        let order = state_pb::LiquidationOrder {
            account: vec![0xab; 20],
            market: "BTC-PERP".into(),
            venue: "venue-b".into(),
            ..Default::default()
        };
        let key = order_key(&order).expect("key");
        assert_eq!(key, format!("liq/{}/BTC-PERP/venue-b", "ab".repeat(20)));
        assert_eq!(
            key_commands("clearnode audit verify", 9, std::slice::from_ref(&key)),
            vec![format!("clearnode audit verify --height 9 key {key}")]
        );
    }

    #[test]
    fn hashes_print_as_lowercase_hex_like_the_audit_answers() {
        assert_eq!(hex_lower(&[0xab, 0x01]), "ab01");
    }
}
