//! What this node serves, by connection and by blob: for the line logged
//! when a peer leaves, `swarm status` and the dashboard.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::info;

use super::NodeId;
use crate::content::Hash;

/// Distinct peers remembered per blob; past this, the count stops growing
/// (a status shows "at least").
const PEERS_PER_BLOB: usize = 4096;

/// What one connection was served.
#[derive(Default)]
pub(super) struct Session {
    pub(super) gets: AtomicU64,
    pub(super) bytes: AtomicU64,
    /// The blobs it asked for, the first few; and how many in all.
    blobs: Mutex<(Vec<Hash>, u64)>,
}

impl Session {
    /// The blobs named in the log line.
    const NAMED: usize = 3;

    pub(super) fn asked_for(&self, hash: Hash) {
        let mut b = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        if b.0.contains(&hash) {
            return;
        }
        if b.0.len() < Self::NAMED {
            b.0.push(hash);
        }
        b.1 += 1;
    }

    /// One info line for a session that was served anything.
    pub(super) fn log(&self, peer: NodeId, remote: SocketAddr, secs: f64) {
        let gets = self.gets.load(Ordering::Relaxed);
        if gets == 0 {
            return;
        }
        let bytes = self.bytes.load(Ordering::Relaxed);
        let b = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        let named: Vec<String> = b.0.iter().map(|h| h.to_hex()[..12].to_owned()).collect();
        let more = b.1.saturating_sub(b.0.len() as u64);
        info!(
            peer = %peer.short(),
            %remote,
            gets,
            bytes,
            blobs = b.1,
            "served a peer for {secs:.1} s: {bytes} bytes of {} blob{} ({}{})",
            b.1,
            if b.1 == 1 { "" } else { "s" },
            named.join(", "),
            if more > 0 { format!(", {more} more") } else { String::new() },
        );
    }
}

struct Open {
    peer: NodeId,
    addr: SocketAddr,
    since: Instant,
    session: Arc<Session>,
}

impl Open {
    fn info(&self) -> SessionInfo {
        SessionInfo {
            peer: self.peer,
            addr: self.addr,
            secs: self.since.elapsed().as_secs_f64(),
            gets: self.session.gets.load(Ordering::Relaxed),
            bytes: self.session.bytes.load(Ordering::Relaxed),
        }
    }
}

#[derive(Default)]
struct Served {
    bytes: u64,
    peers: HashSet<NodeId>,
}

/// The open sessions and what each blob has been served, since start.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<usize, Open>>,
    served: Mutex<HashMap<Hash, Served>>,
    events: Events,
}

/// Sessions opening and closing, for whoever listens.
struct Events(tokio::sync::broadcast::Sender<SessionEvent>);

impl Default for Events {
    fn default() -> Self {
        // A listener that falls this far behind misses events (and is told).
        Self(tokio::sync::broadcast::Sender::new(256))
    }
}

/// A peer's connection opening or closing.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A peer connected.
    Opened {
        /// Its node id.
        peer: NodeId,
        /// The address it connected from.
        addr: SocketAddr,
    },
    /// A connection closed: what it was served, in all.
    Closed(SessionInfo),
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.open.lock().map(|o| o.len()).unwrap_or(0);
        f.debug_struct("Sessions")
            .field("open", &open)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    pub(super) fn open(&self, conn: usize, peer: NodeId, addr: SocketAddr) -> Arc<Session> {
        let session = Arc::new(Session::default());
        // No listener is the usual case, not an error.
        let _ = self.events.0.send(SessionEvent::Opened { peer, addr });
        let open = Open {
            peer,
            addr,
            since: Instant::now(),
            session: session.clone(),
        };
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn, open);
        session
    }

    pub(super) fn close(&self, conn: usize) {
        let closed = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
        if let Some(o) = closed {
            let _ = self.events.0.send(SessionEvent::Closed(o.info()));
        }
    }

    pub(super) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<SessionEvent> {
        self.events.0.subscribe()
    }

    pub(super) fn served(&self, hash: Hash, to: NodeId, bytes: u64) {
        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        let s = served.entry(hash).or_default();
        s.bytes += bytes;
        if s.peers.len() < PEERS_PER_BLOB {
            s.peers.insert(to);
        }
    }

    pub(super) fn list(&self) -> Vec<SessionInfo> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<SessionInfo> = open.values().map(Open::info).collect();
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.addr.cmp(&b.addr)));
        out
    }

    pub(super) fn served_of(&self, blobs: &[Hash]) -> ServedTotal {
        let served = self.served.lock().unwrap_or_else(|e| e.into_inner());
        if served.is_empty() {
            return ServedTotal::default();
        }
        let mut peers = HashSet::new();
        let mut bytes = 0;
        for s in blobs.iter().filter_map(|h| served.get(h)) {
            bytes += s.bytes;
            peers.extend(s.peers.iter().copied());
        }
        ServedTotal {
            bytes,
            peers: peers.len() as u64,
        }
    }
}

/// A peer connected to this node, and what it has been served on this
/// connection.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// Its node id.
    pub peer: NodeId,
    /// The address it connected from.
    pub addr: SocketAddr,
    /// Seconds since it connected.
    pub secs: f64,
    /// Get requests it made.
    pub gets: u64,
    /// Bytes of Bao data sent to it.
    pub bytes: u64,
}

/// What a set of blobs has been served since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServedTotal {
    /// Bytes of Bao data sent.
    pub bytes: u64,
    /// Distinct peers sent any of it.
    pub peers: u64,
}
