//! Network partitions between localnet validators, with no privileges:
//! every P2P link runs through a TCP proxy in the test process that the
//! test can cut. Node `i` reaches node `j` only through the proxy of the
//! link `i -> j` (its `persistent_peers` name the proxy's port, and PEX is
//! off so no node learns another's real address), so cutting every link of
//! a node isolates it as a firewall rejecting its peer traffic would: its
//! open connections are reset and new ones are closed at once. Healing lets
//! connections through again; CometBFT redials its persistent peers.
//!
//! The proxies are tasks of the test's runtime: they end with the test,
//! whatever way it ends, so nothing outlives a failure.

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::localnet::Localnet;

/// One directed P2P link: dials from `from` to `to`'s listener.
struct Link {
    from: usize,
    to: usize,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The proxied links of a localnet.
pub struct Links {
    links: Vec<Link>,
}

impl Links {
    /// Puts a proxy on every link of `net` and points each node's
    /// `persistent_peers` at its proxies. Call it before the nodes start.
    pub async fn route(net: &Localnet) -> Self {
        let mut links = Vec::new();
        for from in 0..net.len() {
            let mut peers = Vec::new();
            for to in (0..net.len()).filter(|&to| to != from) {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                peers.push(format!("{}@127.0.0.1:{port}", net.node_id(to)));
                let (cut, cut_watch) = watch::channel(false);
                let task = tokio::spawn(forward(listener, net.p2p_port(to), cut_watch));
                links.push(Link {
                    from,
                    to,
                    cut,
                    task,
                });
            }
            let config = "cometbft/config/config.toml";
            net.edit_config(
                from,
                config,
                "p2p",
                "persistent_peers",
                &format!("\"{}\"", peers.join(",")),
            );
            net.edit_config(from, config, "p2p", "pex", "false");
        }
        Self { links }
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&self, node: usize) {
        for link in self.links.iter().filter(|l| l.from == node || l.to == node) {
            link.cut.send_replace(true);
        }
    }

    /// Lets every link through again.
    pub fn heal(&self) {
        for link in &self.links {
            link.cut.send_replace(false);
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        for link in &self.links {
            link.task.abort();
        }
    }
}

/// Accepts dials on `listener` and relays each to `target_port`, while the
/// link is not cut; cutting it drops every open relay.
async fn forward(listener: TcpListener, target_port: u16, cut: watch::Receiver<bool>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if *cut.borrow() {
            drop(inbound);
            continue;
        }
        tokio::spawn(relay(inbound, target_port, cut.clone()));
    }
}

async fn relay(mut inbound: TcpStream, target_port: u16, mut cut: watch::Receiver<bool>) {
    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target_port)).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.wait_for(|&is_cut| is_cut) => {}
    }
    // Both sockets drop here: the peers see their connection end.
}
