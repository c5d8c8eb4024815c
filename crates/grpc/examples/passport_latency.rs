//! Measures `VenueService.GetMarginPassport` latency. A measurement run by
//! hand, not a test (timings are never asserted).
//!
//! On the node, without the network: the service's own handler over a
//! stopped node's database (every account, for one venue):
//!
//! ```sh
//! cargo run -p clearnode-grpc --example passport_latency -- --db .devnet/data/clearnode.db --rounds 20
//! ```
//!
//! Over gRPC on loopback, against a running `clearnode devnet` (its demo accounts):
//!
//! ```sh
//! cargo run -p clearnode-grpc --example passport_latency -- --grpc http://127.0.0.1:26659 --accounts 24
//! ```

// A measurement tool outside consensus code: it reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use clearnode_engine::keys;
use clearnode_grpc::{GrpcConfig, Submitter};
use clearnode_proto::state::v1 as state_pb;
use clearnode_proto::venue::v1 as pb;
use clearnode_proto::venue::v1::venue_service_client::VenueServiceClient;
use clearnode_proto::venue::v1::venue_service_server::VenueService;
use clearnode_store::Store;
use prost::Message;
use sha2::{Digest, Sha256};

type Error = Box<dyn std::error::Error>;

struct Options {
    db: Option<String>,
    grpc: Option<String>,
    venue: String,
    rounds: usize,
    accounts: u32,
}

fn options() -> Result<Options, Error> {
    let mut options = Options {
        db: None,
        grpc: None,
        venue: "venue-a".into(),
        rounds: 20,
        accounts: 24,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--db" => options.db = Some(value),
            "--grpc" => options.grpc = Some(value),
            "--venue" => options.venue = value,
            "--rounds" => options.rounds = value.parse()?,
            "--accounts" => options.accounts = value.parse()?,
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    Ok(options)
}

/// The devnet's demo account `index` (the seed `clearnode devnet` uses).
fn demo_address(index: u32) -> Vec<u8> {
    let seed: [u8; 32] = Sha256::digest(format!("clearnode-devnet-trader-{index}")).into();
    let public_key = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    Sha256::digest(public_key)[..20].to_vec()
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let count = samples.len();
    if count == 0 {
        println!("{what}: no samples");
        return;
    }
    let at = |per_mille: usize| samples[(count - 1) * per_mille / 1000].as_micros();
    let total: Duration = samples.iter().sum();
    let mean = total.as_micros() / count as u128;
    println!(
        "{what}: {count} calls  p50 {} µs  p90 {} µs  p99 {} µs  max {} µs  mean {mean} µs",
        at(500),
        at(900),
        at(990),
        at(1000)
    );
}

async fn in_process(db: &str, options: &Options) -> Result<(), Error> {
    let store = Store::open(std::path::Path::new(db))?;
    let accounts: Vec<Vec<u8>> = store
        .scan_prefix_latest(keys::ACCOUNT_PREFIX)?
        .iter()
        .map(|(_, value)| state_pb::Account::decode(value.as_slice()).map(|a| a.address))
        .collect::<Result<_, _>>()?;
    let height = store.latest()?.map_or(0, |c| c.version);
    let config = GrpcConfig {
        chain_id: String::new(),
        cometbft_rpc: "http://127.0.0.1:1".into(),
        commit_timeout: Duration::from_secs(1),
    };
    let service = Submitter::new(config, store);
    let mut samples = Vec::new();
    for _ in 0..options.rounds {
        for account in &accounts {
            let request = tonic::Request::new(pb::GetMarginPassportRequest {
                account: account.clone(),
                venue_id: options.venue.clone(),
            });
            let started = Instant::now();
            let answer = service.get_margin_passport(request).await?;
            samples.push(started.elapsed());
            std::hint::black_box(answer);
        }
    }
    println!("{db}: height {height}, {} accounts", accounts.len());
    report("GetMarginPassport in process (handler only)", samples);
    Ok(())
}

async fn over_grpc(url: &str, options: &Options) -> Result<(), Error> {
    let mut client = VenueServiceClient::connect(url.to_string()).await?;
    let accounts: Vec<Vec<u8>> = (0..options.accounts).map(demo_address).collect();
    let mut samples = Vec::new();
    for _ in 0..options.rounds {
        for account in &accounts {
            let request = pb::GetMarginPassportRequest {
                account: account.clone(),
                venue_id: options.venue.clone(),
            };
            let started = Instant::now();
            let answer = client.get_margin_passport(request).await?;
            samples.push(started.elapsed());
            std::hint::black_box(answer);
        }
    }
    report(
        &format!("GetMarginPassport over gRPC to {url} (round trip)"),
        samples,
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let options = options()?;
    match (&options.db, &options.grpc) {
        (Some(db), _) => in_process(db, &options).await,
        (None, Some(url)) => over_grpc(url, &options).await,
        (None, None) => Err("give --db PATH (a stopped node's database) or --grpc URL".into()),
    }
}
