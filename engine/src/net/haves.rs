//! `Have` on the control stream (wire.md §3.2): a peer that asked about a
//! blob (`Ask`) on a connection is told over that connection's control
//! stream about each group of it this node verifies afterwards; `Have`s
//! arriving from peers go to the local fetches watching that blob.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{NodeId, Peer};
use crate::content::Hash;
use crate::wire::{Have, Message};

/// Control messages queued per connection before new ones are dropped
/// (`Have` is advice: a peer that does not read its control stream
/// misses some and asks again).
pub(crate) const CONTROL_QUEUE: usize = 1024;

type HaveSender = mpsc::UnboundedSender<(NodeId, Have)>;

/// Where a watcher hears of `Have`s, and of peers that asked about a hash.
#[derive(Debug, Clone)]
struct Watcher {
    id: u64,
    haves: HaveSender,
    askers: mpsc::UnboundedSender<Peer>,
}

#[derive(Debug, Default)]
pub(crate) struct Haves {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// Control-stream writers, by connection.
    conns: HashMap<usize, mpsc::Sender<Message>>,
    /// Connections that asked about a hash.
    subs: HashMap<Hash, HashSet<usize>>,
    /// Local watchers of a hash: fetches.
    watchers: HashMap<Hash, Vec<Watcher>>,
}

impl Haves {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add_conn(&self, conn: usize, tx: mpsc::Sender<Message>) {
        self.lock().conns.insert(conn, tx);
    }

    pub(crate) fn remove_conn(&self, conn: usize) {
        let mut g = self.lock();
        g.conns.remove(&conn);
        g.subs.retain(|_, s| {
            s.remove(&conn);
            !s.is_empty()
        });
    }

    /// The peer on `conn` asked about `hash`: tell it what verifies later.
    pub(crate) fn subscribe(&self, hash: Hash, conn: usize) {
        let mut g = self.lock();
        if g.conns.contains_key(&conn) {
            g.subs.entry(hash).or_default().insert(conn);
        }
    }

    /// Queue `msg` on connection `conn`'s control stream (dropped when the
    /// peer is not reading, like every announcement).
    pub(crate) fn send_to(&self, conn: usize, msg: Message) {
        if let Some(tx) = self.lock().conns.get(&conn) {
            let _ = tx.try_send(msg);
        }
    }

    /// Send `have` to every connection subscribed to its hash.
    pub(crate) fn announce(&self, have: Have) {
        let g = self.lock();
        let Some(subs) = g.subs.get(&have.hash) else {
            return;
        };
        for c in subs {
            if let Some(tx) = g.conns.get(c) {
                // Full: that peer is not reading; it misses this one.
                let _ = tx.try_send(Message::Have(have.clone()));
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
        let id = {
            let mut g = self.lock();
            g.next += 1;
            let w = Watcher {
                id: g.next,
                haves: tx,
                askers: askers_tx,
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
