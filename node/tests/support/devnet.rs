//! `clearnode devnet` as a child process: a real single-validator chain
//! (clearnode + cometbft) with its demo venue reporting and its dashboard
//! serving, in a process group of its own that the test kills at the end.

// Outside consensus code: tests wait on wall-clock deadlines for real processes.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Devnet {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub grpc_url: String,
    pub rpc_url: String,
    /// `host:port` of the dashboard.
    pub dashboard_addr: String,
}

impl Devnet {
    /// Starts `clearnode devnet` with fast blocks and `accounts` demo accounts.
    pub fn start(accounts: u32) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("clearnode-devnet-")
            .tempdir()
            .unwrap();
        let port_base = super::free_port_base();
        let mut command = Command::new(env!("CARGO_BIN_EXE_clearnode"));
        command
            .args([
                "devnet",
                "--block-time",
                "200ms",
                "--report-interval-ms",
                "400",
            ])
            .args(["--accounts", &accounts.to_string()])
            .arg("--home")
            .arg(dir.path().join("home"))
            .args(["--port-base", &port_base.to_string()]);
        let child = super::spawn_in_group(&mut command, &dir.path().join("devnet.log"));
        Self {
            dir,
            child: Some(child),
            grpc_url: format!("http://127.0.0.1:{}", port_base + 3),
            rpc_url: format!("http://127.0.0.1:{}", port_base + 1),
            dashboard_addr: format!("127.0.0.1:{}", port_base + 5),
        }
    }

    /// The devnet's node home (keys, config, genesis).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A scratch directory that lives as long as the devnet.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until the demo venue's positions are committed: the dashboard
    /// answers a snapshot whose system net notional is not zero.
    pub fn wait_for_positions(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some((200, body)) = http_get(&self.dashboard_addr, "/api/snapshot") {
                let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
                let net = &snapshot["system"]["aggregate"]["net_notional"];
                if net.as_str().is_some_and(|n| n != "0") {
                    return snapshot;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the devnet has no positions after two minutes:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn logs(&self) -> String {
        let devnet =
            std::fs::read_to_string(self.dir.path().join("devnet.log")).unwrap_or_default();
        let lines: Vec<&str> = devnet.lines().collect();
        format!(
            "==== devnet.log (last 60 lines)\n{}\n{}",
            lines[lines.len().saturating_sub(60)..].join("\n"),
            super::log_tails(&self.home(), 30)
        )
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        if let Some(child) = self.child.take() {
            super::kill_group(child);
        }
    }
}

/// A plain HTTP/1.1 GET: the status code and body, or `None` when the
/// server is not answering.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Some((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

/// The payload of a chunked HTTP body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
