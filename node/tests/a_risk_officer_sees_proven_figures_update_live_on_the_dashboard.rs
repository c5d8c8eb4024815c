//! The dashboard in a real headless browser (Debian's chromium) against a
//! real `clearnode devnet`: the page loads, shows exactly the figures the
//! AuditService answers at the height it displays (and `clearnode audit
//! verify` proves them against the signed header), and updates as new
//! blocks commit. A screenshot is kept under the target directory.

// Outside consensus code: the test drives real processes with wall-clock deadlines.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clearnode_proto::audit::v1 as audit;
use clearnode_proto::audit::v1::audit_service_client::AuditServiceClient;
use support::devnet::Devnet;

/// Virtual milliseconds the page runs in the browser: the page waits on the
/// server for each next block, so this spans several real blocks.
const BROWSER_VIRTUAL_TIME_MS: u32 = 3_000;

/// The browser: `$CLEARNODE_CHROMIUM`, or Debian's chromium on PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CLEARNODE_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-headless-shell"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!("chromium is not installed: run `bash scripts/setup.sh` (apt-get install chromium)");
}

/// Runs headless chromium on `url` with extra `args`; returns its stdout.
/// A browser that hangs (it happens rarely on a loaded machine) is killed
/// and started once more.
fn browse(profile: &Path, url: &str, args: &[String]) -> String {
    for attempt in 1..=2 {
        let stderr =
            std::fs::File::create(profile.with_extension(format!("stderr-{attempt}"))).unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1400,2300",
            ])
            .arg(format!("--user-data-dir={}-{attempt}", profile.display()))
            .arg(format!("--virtual-time-budget={BROWSER_VIRTUAL_TIME_MS}"))
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if child.try_wait().unwrap().is_none() {
            eprintln!("chromium attempt {attempt} did not finish within 90 s; killing it");
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "chromium failed: {}",
            output.status
        );
        return String::from_utf8(output.stdout).unwrap();
    }
    panic!(
        "chromium hung twice; its stderr is beside {}",
        profile.display()
    );
}

/// The text of the element tagged `data-figure="name"` in a DOM dump.
fn figure(dom: &str, name: &str) -> String {
    let tag = format!("data-figure=\"{name}\"");
    let at = dom
        .find(&tag)
        .unwrap_or_else(|| panic!("the page shows no {name}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].to_string()
}

/// The text of the element with `id="name"`.
fn element(dom: &str, id: &str) -> String {
    figure(
        &dom.replace(&format!("id=\"{id}\""), &format!("data-figure=\"#{id}\"")),
        &format!("#{id}"),
    )
}

/// The heights the page rendered, in order (from `data-heights`).
fn heights_shown(dom: &str) -> Vec<u64> {
    let at = dom.find("data-heights=\"").unwrap() + "data-heights=\"".len();
    let end = dom[at..].find('"').unwrap();
    dom[at..at + end]
        .split_whitespace()
        .map(|h| h.parse().unwrap())
        .collect()
}

/// Checks every figure on the page against the AuditService's answers at `height`.
/// The breaker panel shows `GetBreakers` at the page's height.
async fn assert_breakers_shown(
    dom: &str,
    audit: &mut AuditServiceClient<tonic::transport::Channel>,
    height: u64,
) {
    let breakers = audit
        .get_breakers(audit::GetBreakersRequest {
            height,
            prove: false,
        })
        .await
        .unwrap()
        .into_inner();
    let system = breakers.system.unwrap();
    let mut summary = Vec::new();
    for market in breakers.markets {
        let breaker = market.breaker.unwrap();
        assert_eq!(breaker.status, 1, "the devnet's markets trade: {breaker:?}");
        let name = &breaker.market;
        summary.push(format!("{name} open"));
        assert_eq!(figure(dom, &format!("breaker.{name}.status")), "open");
        assert_eq!(figure(dom, &format!("breaker.{name}.price")), "valid");
        assert_eq!(
            figure(dom, &format!("breaker.{name}.last_priced_height")),
            breaker.last_priced_height.to_string()
        );
    }
    summary.push(format!(
        "system {}",
        if system.tripped {
            "reduce-only"
        } else {
            "normal"
        }
    ));
    assert_eq!(element(dom, "breakers"), summary.join(" · "));
    assert_eq!(
        figure(dom, "breaker.system.stress_loss_top_two"),
        system.stress_loss_top_two
    );
    if system.coverage_defined {
        let ppm = system.coverage_ppm;
        let expected = format!("{}.{:06}", ppm / 1_000_000, ppm % 1_000_000);
        assert_eq!(figure(dom, "fund.coverage"), expected);
    }
}

async fn assert_figures_match_the_audit_service(dom: &str, grpc_url: &str, height: u64) {
    let mut audit = AuditServiceClient::connect(grpc_url.to_string())
        .await
        .unwrap();
    let system = audit
        .get_system_risk(audit::GetSystemRiskRequest {
            height,
            prove: false,
        })
        .await
        .unwrap()
        .into_inner();
    let context = system.context.unwrap();
    assert_eq!(context.height, height);
    assert_eq!(
        element(dom, "app-hash"),
        hex::encode_upper(&context.app_hash)
    );
    let aggregate = system.aggregate.unwrap();
    let health = aggregate.accounts.unwrap_or_default();
    let concentration = aggregate.concentration.unwrap();
    assert!(
        concentration.holders > 1 && concentration.hhi_ppm > 0,
        "no concentration to show: {concentration:?}"
    );
    assert_concentration_shown(dom, "system", &concentration, height);
    assert_breakers_shown(dom, &mut audit, height).await;
    for (name, value) in [
        ("system.aggregate_leverage", aggregate.aggregate_leverage),
        ("system.net_notional", aggregate.net_notional),
        ("system.gross_notional", aggregate.gross_notional),
        ("system.total_equity", aggregate.total_equity),
        (
            "system.accounts_total",
            aggregate.accounts_total.to_string(),
        ),
        ("system.healthy", health.healthy.to_string()),
        ("system.margin_call", health.margin_call.to_string()),
        ("system.liquidating", health.liquidating.to_string()),
        ("system.bankrupt", health.bankrupt.to_string()),
    ] {
        assert_eq!(figure(dom, name), value, "{name} at height {height}");
    }
    let fund = support::Client::lazy(grpc_url).fund(height).await;
    let history = audit
        .list_instructions(audit::ListInstructionsRequest {
            from_height: height,
            to_height: height,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(history.next_page_token.is_empty());
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for instruction in history.instructions {
        *counts.entry(instruction.kind).or_default() += 1;
    }
    if counts.is_empty() {
        assert_eq!(element(dom, "events"), "none");
    }
    for (kind, count) in counts {
        assert_eq!(figure(dom, &format!("events.{kind}")), count.to_string());
    }
    assert_eq!(figure(dom, "fund.balance"), fund.balance);
    assert_eq!(figure(dom, "fund.inflows"), fund.inflows);
    assert_eq!(figure(dom, "fund.payouts"), fund.payouts);
    assert_eq!(figure(dom, "fund.adl_collected"), fund.adl_collected);
    assert_eq!(
        figure(dom, "fund.bad_debt_unresolved"),
        fund.bad_debt_unresolved
    );
    for market in ["BTC-PERP", "ETH-PERP", "SOL-PERP"] {
        let aggregate = audit
            .get_market_risk(audit::GetMarketRiskRequest {
                market: market.into(),
                height,
                prove: false,
            })
            .await
            .unwrap()
            .into_inner()
            .aggregate
            .unwrap();
        for (name, value) in [
            ("oracle_price", &aggregate.oracle_price),
            ("long_open_interest", &aggregate.long_open_interest),
            ("short_open_interest", &aggregate.short_open_interest),
            ("net_long_open_interest", &aggregate.net_long_open_interest),
            (
                "net_short_open_interest",
                &aggregate.net_short_open_interest,
            ),
            ("gross_notional", &aggregate.gross_notional),
            ("net_notional", &aggregate.net_notional),
        ] {
            assert_eq!(&figure(dom, &format!("market.{market}.{name}")), value);
        }
        assert!(
            !aggregate.venues.is_empty(),
            "{market} has no venue open interest"
        );
        let concentration = aggregate.concentration.unwrap();
        assert_concentration_shown(dom, &format!("market.{market}"), &concentration, height);
        for venue in &aggregate.venues {
            let prefix = format!("venue.{market}.{}", venue.venue);
            assert_eq!(figure(dom, &format!("{prefix}.long_size")), venue.long_size);
            assert_eq!(
                figure(dom, &format!("{prefix}.short_size")),
                venue.short_size
            );
        }
    }
}

/// The page shows `concentration` under `prefix` (`system` or `market.ID`).
fn assert_concentration_shown(
    dom: &str,
    prefix: &str,
    concentration: &clearnode_proto::state::v1::Concentration,
    height: u64,
) {
    for (name, value) in [
        ("top1_share_ppm", concentration.top1_share_ppm),
        ("top5_share_ppm", concentration.top5_share_ppm),
        ("top10_share_ppm", concentration.top10_share_ppm),
        ("hhi_ppm", concentration.hhi_ppm),
        ("holders", concentration.holders),
    ] {
        let name = format!("{prefix}.concentration.{name}");
        assert_eq!(figure(dom, &name), value.to_string(), "{name} at {height}");
    }
}

/// `clearnode audit verify` proves the figure the page showed at `height`
/// (a string field: it prints quoted).
fn assert_proven(home: &Path, height: u64, what: &[&str], shown: &str) {
    assert_proven_text(home, height, what, &format!("\"{shown}\""));
}

/// `clearnode audit verify` proves a value whose printed form contains `needle`.
fn assert_proven_text(home: &Path, height: u64, what: &[&str], needle: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_clearnode"))
        .args(["audit", "verify", "--height", &height.to_string()])
        .arg("--home")
        .arg(home)
        .args(what)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "audit verify {what:?} at {height} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(needle),
        "the proven value does not contain the shown {needle}: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_risk_officer_sees_proven_figures_update_live_on_the_dashboard() {
    let devnet = Devnet::start(9);
    let first = devnet.wait_for_positions();
    let first_height = first["height"].as_u64().unwrap();
    let url = format!("http://{}/", devnet.dashboard_addr);

    let dom = browse(&devnet.dir().join("browser"), &url, &["--dump-dom".into()]);
    assert!(dom.contains("clearnode risk dashboard"), "{dom}");
    assert!(
        element(&dom, "status").starts_with("live"),
        "{}",
        element(&dom, "status")
    );
    let shown = heights_shown(&dom);
    let height: u64 = element(&dom, "height").parse().unwrap();
    assert!(
        shown.len() >= 3 && shown.windows(2).all(|w| w[0] < w[1]),
        "the page did not update block by block: {shown:?}"
    );
    assert_eq!(shown.last(), Some(&height));
    assert!(
        shown[0] >= first_height,
        "{shown:?} starts before {first_height}"
    );
    let home = std::fs::canonicalize(devnet.home()).unwrap();
    let command = format!(
        "clearnode audit verify --home {} --height {height} system",
        home.display()
    );
    assert!(
        dom.contains(&command),
        "the page does not say how to prove it: {command}"
    );

    assert_figures_match_the_audit_service(&dom, &devnet.grpc_url, height).await;
    let leverage = figure(&dom, "system.aggregate_leverage");
    assert_proven(&devnet.home(), height, &["system"], &leverage);
    assert_proven(
        &devnet.home(),
        height,
        &["fund"],
        &figure(&dom, "fund.balance"),
    );
    let btc = figure(&dom, "market.BTC-PERP.long_open_interest");
    assert_proven(&devnet.home(), height, &["market", "BTC-PERP"], &btc);
    // The breakers: the shown last priced height and the two largest stress
    // defaults are in the proven breaker values.
    let priced = figure(&dom, "breaker.BTC-PERP.last_priced_height");
    let needle = format!("\"last_priced_height\": {priced}");
    assert_proven_text(
        &devnet.home(),
        height,
        &["breaker", "--market", "BTC-PERP"],
        &needle,
    );
    let stress = figure(&dom, "breaker.system.stress_loss_top_two");
    let needle = format!("\"stress_loss_top_two\": \"{stress}\"");
    assert_proven_text(&devnet.home(), height, &["breaker"], &needle);
    // Concentration: numbers in the proven aggregates.
    for (what, name) in [
        (&["system"][..], "system.concentration.top5_share_ppm"),
        (&["system"][..], "system.concentration.hhi_ppm"),
        (
            &["market", "BTC-PERP"][..],
            "market.BTC-PERP.concentration.hhi_ppm",
        ),
        (
            &["market", "SOL-PERP"][..],
            "market.SOL-PERP.concentration.top1_share_ppm",
        ),
    ] {
        let field = name.rsplit('.').next().unwrap();
        let needle = format!("\"{field}\": {}", figure(&dom, name));
        assert_proven_text(&devnet.home(), height, what, &needle);
    }

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    browse(
        &devnet.dir().join("browser"),
        &url,
        &[format!("--screenshot={}", screenshot.display())],
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "not a page screenshot"
    );
    println!("dashboard screenshot: {}", screenshot.display());
}
