//! The control stream's announcements. `Have` (wire.md §3.2): a peer that
//! asked about a blob (`Ask`) on a connection is told over that
//! connection's control stream about each group of it this node verifies
//! afterwards; `Have`s arriving from peers go to the local fetches watching
//! that blob. `Peers` (wire.md §3.8, version 2): a peer that asked for the
//! peers of a hash (`AskPeers`) is told of each new one this node meets,
//! up to [`wire::MAX_PUSHED`]; pushed addresses go to the local fetches watching
//! the hash.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{NodeId, Peer};
use crate::content::Hash;
use crate::wire::{self, Have, MAX_PEER_SUBS, MAX_PUSHED, MAX_SUBS, Message};

/// Control messages queued per connection before new ones are dropped
/// (`Have` is advice: a peer that does not read its control stream
/// misses some and asks again).
pub(crate) const CONTROL_QUEUE: usize = 1024;

type HaveSender = mpsc::UnboundedSender<(NodeId, Have)>;

/// Where a watcher hears of `Have`s, of peers that asked about a hash,
/// and of addresses pushed for it.
#[derive(Debug, Clone)]
struct Watcher {
    id: u64,
    haves: HaveSender,
    askers: mpsc::UnboundedSender<Peer>,
    addrs: mpsc::UnboundedSender<SocketAddr>,
}

/// A connection's control-stream writer.
#[derive(Debug)]
struct Conn {
    tx: mpsc::Sender<Message>,
    /// The address the peer connected from, which it serves on.
    remote: SocketAddr,
    /// It speaks a version with pushed `Peers`.
    push: bool,
    /// Hashes it is told new peers of.
    peer_subs: usize,
    /// Hashes it is subscribed to by `Ask`.
    subs: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Haves {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// Control-stream writers, by connection.
    conns: HashMap<usize, Conn>,
    /// Connections that asked about a hash.
    subs: HashMap<Hash, HashSet<usize>>,
    /// Connections that asked for peers of a hash, with the pushes left.
    peer_subs: HashMap<Hash, HashMap<usize, usize>>,
    /// Local watchers of a hash: fetches.
    watchers: HashMap<Hash, Vec<Watcher>>,
}

impl Haves {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection is up; `version` is the one negotiated in `Hello`.
    pub(crate) fn add_conn(
        &self,
        conn: usize,
        tx: mpsc::Sender<Message>,
        remote: SocketAddr,
        version: u16,
    ) {
        let c = Conn {
            tx,
            remote,
            push: version >= wire::VERSION_PUSH,
            peer_subs: 0,
            subs: 0,
        };
        self.lock().conns.insert(conn, c);
    }

    pub(crate) fn remove_conn(&self, conn: usize) {
        let mut g = self.lock();
        g.conns.remove(&conn);
        g.subs.retain(|_, s| {
            s.remove(&conn);
            !s.is_empty()
        });
        g.peer_subs.retain(|_, s| {
            s.remove(&conn);
            !s.is_empty()
        });
    }

    /// The peer on `conn` asked for the peers of `hash`: if it speaks
    /// version 2, tell it of new ones (wire.md §3.7).
    pub(crate) fn subscribe_peers(&self, hash: Hash, conn: usize) {
        let mut g = self.lock();
        let Inner {
            conns, peer_subs, ..
        } = &mut *g;
        let Some(c) = conns.get_mut(&conn).filter(|c| c.push) else {
            return;
        };
        let subs = peer_subs.entry(hash).or_default();
        if !subs.contains_key(&conn) && c.peer_subs < MAX_PEER_SUBS {
            c.peer_subs += 1;
            subs.insert(conn, MAX_PUSHED);
        }
        if subs.is_empty() {
            peer_subs.remove(&hash);
        }
    }

    /// This node met a new peer `addr` of `hash`: tell the connections
    /// that asked for peers of it, other than that peer's own.
    pub(crate) fn push_peer(&self, hash: Hash, addr: SocketAddr) {
        let mut g = self.lock();
        let Inner {
            conns, peer_subs, ..
        } = &mut *g;
        let Some(subs) = peer_subs.get_mut(&hash) else {
            return;
        };
        for (c, left) in subs.iter_mut() {
            let Some(conn) = conns.get(c).filter(|c| c.remote != addr) else {
                continue;
            };
            if *left == 0 {
                continue;
            }
            let msg = Message::Peers(wire::Peers {
                hash,
                addrs: vec![addr],
            });
            // Full: that peer is not reading; it misses this one.
            if conn.tx.try_send(msg).is_ok() {
                *left -= 1;
            }
        }
    }

    /// A peer pushed addresses for a hash: pass them to whoever watches it.
    pub(crate) fn dispatch_peers(&self, peers: wire::Peers) {
        let g = self.lock();
        if let Some(ws) = g.watchers.get(&peers.hash) {
            for w in ws {
                for a in &peers.addrs {
                    let _ = w.addrs.send(*a);
                }
            }
        }
    }

    /// The peer on `conn` asked about `hash`: tell it what verifies later.
    pub(crate) fn subscribe(&self, hash: Hash, conn: usize) {
        let mut g = self.lock();
        let Inner { conns, subs, .. } = &mut *g;
        let Some(c) = conns.get_mut(&conn) else {
            return;
        };
        if c.subs >= MAX_SUBS {
            return;
        }
        if subs.entry(hash).or_default().insert(conn) {
            c.subs += 1;
        }
    }

    /// Queue `msg` on connection `conn`'s control stream (dropped when the
    /// peer is not reading, like every announcement).
    #[cfg(test)]
    pub(crate) fn has_conn(&self, conn: usize) -> bool {
        self.lock().conns.contains_key(&conn)
    }

    pub(crate) fn send_to(&self, conn: usize, msg: Message) {
        if let Some(c) = self.lock().conns.get(&conn) {
            let _ = c.tx.try_send(msg);
        }
    }

    /// Send `have` to every connection subscribed to its hash.
    pub(crate) fn announce(&self, have: Have) {
        let g = self.lock();
        let Some(subs) = g.subs.get(&have.hash) else {
            return;
        };
        for c in subs {
            if let Some(c) = g.conns.get(c) {
                // Full: that peer is not reading; it misses this one.
                let _ = c.tx.try_send(Message::Have(have.clone()));
            }
        }
    }

    /// A peer announced `have`: pass it to whoever watches the hash.
    pub(crate) fn dispatch(&self, from: NodeId, have: Have) {
        let g = self.lock();
        if let Some(ws) = g.watchers.get(&have.hash) {
            for w in ws {
                let _ = w.haves.send((from, have.clone()));
            }
        }
    }

    /// A peer asked about `hash`: a fetch of it may use the peer too
    /// (`peer` builds its handle, only if some fetch watches the hash).
    pub(crate) fn asked(&self, hash: &Hash, peer: impl FnOnce() -> Peer) {
        let g = self.lock();
        if let Some(ws) = g.watchers.get(hash)
            && !ws.is_empty()
        {
            let p = peer();
            for w in ws {
                let _ = w.askers.send(p.clone());
            }
        }
    }

    /// Watch `hashes` until the returned guard is dropped.
    pub(crate) fn watch(self: &Arc<Self>, hashes: Vec<Hash>) -> HaveWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        let (askers_tx, askers) = mpsc::unbounded_channel();
        let (addrs_tx, addrs) = mpsc::unbounded_channel();
        let id = {
            let mut g = self.lock();
            g.next += 1;
            let w = Watcher {
                id: g.next,
                haves: tx,
                askers: askers_tx,
                addrs: addrs_tx,
            };
            for h in &hashes {
                g.watchers.entry(*h).or_default().push(w.clone());
            }
            w.id
        };
        HaveWatch {
            haves: self.clone(),
            id,
            hashes,
            rx,
            askers,
            addrs,
        }
    }
}

/// `Have`s from peers about some hashes, and peers that asked about them;
/// stops watching when dropped.
#[derive(Debug)]
pub(crate) struct HaveWatch {
    haves: Arc<Haves>,
    id: u64,
    hashes: Vec<Hash>,
    pub(crate) rx: mpsc::UnboundedReceiver<(NodeId, Have)>,
    /// Peers that connected here and asked about one of the hashes.
    pub(crate) askers: mpsc::UnboundedReceiver<Peer>,
    /// Addresses peers pushed for one of the hashes (wire.md §3.8).
    pub(crate) addrs: mpsc::UnboundedReceiver<SocketAddr>,
}

impl Drop for HaveWatch {
    fn drop(&mut self) {
        let mut g = self.haves.lock();
        for h in &self.hashes {
            if let Some(ws) = g.watchers.get_mut(h) {
                ws.retain(|w| w.id != self.id);
                if ws.is_empty() {
                    g.watchers.remove(h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut mpsc::Receiver<Message>) -> Vec<(Hash, Vec<SocketAddr>)> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            match m {
                Message::Peers(p) => out.push((p.hash, p.addrs)),
                other => panic!("pushed {other:?}"),
            }
        }
        out
    }

    #[test]
    fn new_peers_go_to_version_2_subscribers_within_their_budget() {
        let haves = Haves::default();
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (h, g) = (Hash::of(b"root"), Hash::of(b"other"));
        let (tx2, mut rx2) = mpsc::channel(CONTROL_QUEUE);
        let (tx1, mut rx1) = mpsc::channel(CONTROL_QUEUE);
        haves.add_conn(2, tx2, a(2), 2);
        haves.add_conn(1, tx1, a(1), 1);
        // Nobody asked yet: nothing is pushed.
        haves.push_peer(h, a(10));
        haves.subscribe_peers(h, 2);
        haves.subscribe_peers(h, 1);
        // Asking again keeps the budget where it is.
        haves.push_peer(h, a(11));
        haves.subscribe_peers(h, 2);
        // Not its own address, and not another hash's peers.
        haves.push_peer(h, a(2));
        haves.push_peer(g, a(12));
        assert_eq!(drain(&mut rx2), [(h, vec![a(11)])]);
        assert!(drain(&mut rx1).is_empty(), "version 1 is never pushed to");
        for p in 100..200 {
            haves.push_peer(h, a(p));
        }
        assert_eq!(drain(&mut rx2).len(), MAX_PUSHED - 1, "the budget");
        // At most MAX_PEER_SUBS hashes per connection.
        for i in 0..MAX_PEER_SUBS as u32 + 4 {
            haves.subscribe_peers(Hash::of(&i.to_le_bytes()), 2);
        }
        let last = Hash::of(&(MAX_PEER_SUBS as u32 + 3).to_le_bytes());
        haves.push_peer(last, a(300));
        haves.push_peer(Hash::of(&0u32.to_le_bytes()), a(301));
        let got = drain(&mut rx2);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, [a(301)]);
        // A closed connection leaves nothing behind.
        haves.remove_conn(2);
        haves.remove_conn(1);
        assert!(haves.lock().peer_subs.is_empty());
    }

    #[test]
    fn a_connection_subscribes_to_at_most_max_subs_hashes() {
        let haves = Haves::default();
        let (tx, mut rx) = mpsc::channel(CONTROL_QUEUE);
        haves.add_conn(1, tx, SocketAddr::from(([127, 0, 0, 1], 1)), 2);
        let hash = |i: u32| Hash::of(&i.to_le_bytes());
        // Asking twice about one hash counts once.
        haves.subscribe(hash(0), 1);
        for i in 0..MAX_SUBS as u32 + 10 {
            haves.subscribe(hash(i), 1);
        }
        assert_eq!(haves.lock().subs.len(), MAX_SUBS);
        let have = |i: u32| Have {
            hash: hash(i),
            size: 1,
            groups: wire::WireRanges::from_boundaries(vec![0, 1]),
        };
        haves.announce(have(MAX_SUBS as u32 - 1));
        haves.announce(have(MAX_SUBS as u32));
        let got: Vec<Hash> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| match m {
                Message::Have(h) => h.hash,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, [hash(MAX_SUBS as u32 - 1)], "past the limit, no Haves");
        haves.remove_conn(1);
        assert!(haves.lock().subs.is_empty());
    }

    #[test]
    fn pushed_addresses_reach_the_watchers_of_their_hash() {
        let haves = Arc::new(Haves::default());
        let (h, g) = (Hash::of(b"root"), Hash::of(b"other"));
        let a: SocketAddr = "127.0.0.1:7411".parse().unwrap();
        let mut watch = haves.watch(vec![h]);
        haves.dispatch_peers(wire::Peers {
            hash: g,
            addrs: vec![a],
        });
        haves.dispatch_peers(wire::Peers {
            hash: h,
            addrs: vec![a],
        });
        assert_eq!(watch.addrs.try_recv().ok(), Some(a));
        assert!(watch.addrs.try_recv().is_err());
        drop(watch);
        assert!(haves.lock().watchers.is_empty());
    }
}
