//! `swarm share`: add, print a ticket, serve until stopped. And the other
//! half: what `swarm fetch TICKET` takes out of a ticket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use swarm_engine::Hash;
use swarm_engine::api::{self, ops};
use swarm_engine::net::{NodeId, SessionEvent};
use swarm_engine::node::Node;
use swarm_engine::ticket::{Ticket, TicketPeer, TicketTarget, is_ticket};

use crate::args::Limits;
use crate::control::{On, block};
use crate::{bytes, plural};

/// What `swarm share` was given.
pub(crate) struct ShareArgs {
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) name: Option<String>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) limits: Limits,
}

pub(crate) fn run(
    on: On,
    a: ShareArgs,
    json: bool,
    dht: Option<swarm_engine::discovery::DhtConfig>,
) -> Result<ExitCode> {
    let req = api::AddRequest {
        paths: ops::absolute_paths(&a.paths).context("cannot find the current directory")?,
        name: a.name,
    };
    let store = match on {
        On::Node(client) => {
            // The node on this store serves it: print its ticket and leave.
            let added = block(client.add(&req))??;
            let status = block(client.status())??;
            let root: Hash = added.root.parse()?;
            let id: NodeId = status.node_id.parse()?;
            let addrs = status
                .reachable
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            let ticket = Ticket {
                target: TicketTarget::Root(root),
                peers: vec![TicketPeer { id, addrs }],
            };
            print_ticket(&ticket, &added, json);
            if !json {
                eprintln!("the node running on this store serves it");
            }
            return Ok(ExitCode::SUCCESS);
        }
        On::Store(store, _probe) => store,
    };
    let added = ops::add(&store, &req, None)?;
    let root: Hash = added.root.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let listen = a
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let config = crate::net::endpoint_config(&a.limits).listen(listen);
        let mut node = Node::spawn(store.clone(), config).await?;
        let ticket = node.ticket(TicketTarget::Root(root))?;
        print_ticket(&ticket, &added, json);
        if !json {
            eprintln!(
                "serving on {}; fetch it elsewhere with `swarm fetch TICKET`; stop with Ctrl-C",
                list(&ticket.peers[0].addrs)
            );
        }
        if let Some(cfg) = &dht {
            match crate::dht::join(cfg).await {
                Ok(d) => {
                    node = node.with_dht(d);
                    match node.announce().await {
                        Ok(_) => eprintln!("announced on the DHT too"),
                        Err(e) => eprintln!("warning: announcing on the DHT failed: {e}"),
                    }
                }
                Err(e) => eprintln!("note: {e:#}; the ticket's addresses still work"),
            }
        }
        let mut tally = Tally::default();
        let events = node.endpoint().session_events();
        tokio::select! {
            () = watch(events, json, &mut tally) => {}
            () = crate::net::stop_signal() => {}
        }
        if !json {
            let sent = tally.sent
                + node
                    .endpoint()
                    .sessions()
                    .iter()
                    .map(|s| s.bytes)
                    .sum::<u64>();
            let peers = tally.peers.len() as u64;
            eprintln!(
                "stopping: sent {} to {peers} peer{}",
                bytes(sent),
                plural(peers)
            );
        }
        node.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

fn list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_ticket(ticket: &Ticket, added: &api::AddReply, json: bool) {
    if json {
        let line = json!({
            "ticket": ticket.to_string(),
            "root": added.root,
            "files": added.files,
            "size": added.size,
            "node_id": ticket.peers.first().map(|p| p.id.to_string()),
            "addrs": ticket.peers.first().map(|p| list(&p.addrs)),
        });
        println!("{line}");
    } else {
        println!("{ticket}");
        eprintln!(
            "sharing {} file{}, {} (root {})",
            added.files,
            plural(added.files),
            bytes(added.size),
            added.root
        );
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// Who has connected, and what they took.
#[derive(Default)]
struct Tally {
    /// Bytes sent to peers that left.
    sent: u64,
    /// Every peer that connected.
    peers: std::collections::BTreeSet<NodeId>,
}

/// Say who connects and, when they leave, what they took. Runs until the
/// process is stopped.
async fn watch(
    mut events: tokio::sync::broadcast::Receiver<SessionEvent>,
    json: bool,
    t: &mut Tally,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(SessionEvent::Opened { peer, addr }) => {
                t.peers.insert(peer);
                if json {
                    eprintln!(
                        "{}",
                        json!({"connected": peer.to_string(), "addr": addr.to_string()})
                    );
                } else {
                    eprintln!("peer {} connected from {addr}", peer.short());
                }
            }
            Ok(SessionEvent::Closed(s)) => {
                t.sent += s.bytes;
                if json {
                    eprintln!(
                        "{}",
                        json!({"left": s.peer.to_string(), "bytes": s.bytes, "secs": s.secs})
                    );
                } else {
                    eprintln!(
                        "peer {} left after {:.1} s; sent it {}",
                        s.peer.short(),
                        s.secs,
                        bytes(s.bytes)
                    );
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => eprintln!("({n} connection events not shown)"),
            Err(RecvError::Closed) => std::future::pending().await,
        }
    }
}

/// A ticket given to `swarm fetch`: what to fetch as the rest of the
/// command understands it (a root in hex, or a token), and the peers it
/// names after those given with `--peer`. Anything else is returned as it
/// is.
pub(crate) fn expand(target: String, mut peers: Vec<String>) -> Result<(String, Vec<String>)> {
    if !is_ticket(&target) {
        return Ok((target, peers));
    }
    let ticket: Ticket = target.parse()?;
    peers.extend(ticket.peer_addrs().iter().map(|p| p.to_string()));
    let target = match ticket.target {
        TicketTarget::Root(r) => r.to_hex(),
        TicketTarget::Release(s) => s.to_token(),
    };
    Ok((target, peers))
}
