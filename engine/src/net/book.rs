//! The peer book: for each recent blob or root, the addresses of peers
//! seen asking for it or serving it, answered to `AskPeers` (peer exchange,
//! wire.md §3.7). Bounded in roots and in addresses per root. A peer is
//! forgotten when its last connection goes, unless it closed saying it
//! runs on (wire.md §3.8), and then [`KEEP_AFTER_DONE`] later: nothing
//! tells this node when such a peer exits, and an address handed out should
//! be a peer that was up a moment ago, not a fetcher that has long gone.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::content::Hash;

/// Hashes remembered; the least recently touched is forgotten first.
const MAX_HASHES: usize = 1024;
/// Addresses remembered per hash; the oldest is forgotten first.
const MAX_ADDRS: usize = 200;
/// How long a peer that closed its last connection saying it runs on is
/// still handed out.
const KEEP_AFTER_DONE: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Hash, VecDeque<SocketAddr>>,
    order: VecDeque<Hash>,
    /// Open connections per peer address.
    open: HashMap<SocketAddr, usize>,
    /// Peers with no connection left that said they run on, and since when.
    idle: HashMap<SocketAddr, Instant>,
}

impl PeerBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection with `addr` is up.
    pub(crate) fn connected(&self, addr: SocketAddr) {
        let mut g = self.lock();
        g.idle.remove(&addr);
        *g.open.entry(addr).or_default() += 1;
    }

    /// A connection with `addr` closed; with its last one, forget it
    /// unless the peer runs on (`alive`).
    pub(crate) fn disconnected(&self, addr: SocketAddr, alive: bool) {
        let mut g = self.lock();
        let Some(n) = g.open.get_mut(&addr) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        g.open.remove(&addr);
        if alive {
            g.idle.insert(addr, Instant::now());
            return;
        }
        g.forget(&[addr]);
    }

    /// Remember that `addr` has or wants `hash`. Returns whether it is new
    /// for `hash` (not remembered with it just before).
    pub(crate) fn add(&self, hash: Hash, addr: SocketAddr) -> bool {
        let mut g = self.lock();
        let Inner { map, order, .. } = &mut *g;
        if !map.contains_key(&hash) {
            if let Some(old) = (map.len() >= MAX_HASHES)
                .then(|| order.pop_front())
                .flatten()
            {
                map.remove(&old);
            }
            order.push_back(hash);
        }
        let addrs = map.entry(hash).or_default();
        let before = addrs.len();
        addrs.retain(|a| *a != addr);
        let new = addrs.len() == before;
        addrs.push_back(addr);
        if addrs.len() > MAX_ADDRS {
            addrs.pop_front();
        }
        new
    }

    /// Up to `max` addresses for `hash`, newest first, leaving out `except`.
    pub(crate) fn get(&self, hash: &Hash, except: SocketAddr, max: usize) -> Vec<SocketAddr> {
        self.get_at(hash, except, max, Instant::now())
    }

    fn get_at(&self, hash: &Hash, except: SocketAddr, max: usize, now: Instant) -> Vec<SocketAddr> {
        let mut g = self.lock();
        let stale: Vec<SocketAddr> = g
            .idle
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= KEEP_AFTER_DONE)
            .map(|(a, _)| *a)
            .collect();
        if !stale.is_empty() {
            for a in &stale {
                g.idle.remove(a);
            }
            g.forget(&stale);
        }
        g.map
            .get(hash)
            .map(|a| {
                a.iter()
                    .rev()
                    .filter(|x| **x != except)
                    .take(max)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Inner {
    fn forget(&mut self, gone: &[SocketAddr]) {
        let Inner { map, order, .. } = self;
        map.retain(|_, addrs| {
            addrs.retain(|a| !gone.contains(a));
            !addrs.is_empty()
        });
        order.retain(|h| map.contains_key(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_newest_first_and_never_the_asker() {
        let b = PeerBook::default();
        let h = Hash::of(b"r");
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        for p in 1..=300 {
            b.add(h, a(p));
        }
        let got = b.get(&h, a(300), 50);
        assert_eq!(got.len(), 50);
        assert_eq!(got[0], a(299));
        assert!(!got.contains(&a(300)));
        assert_eq!(b.get(&h, a(1), 1000).len(), MAX_ADDRS);
        for i in 0..(MAX_HASHES as u32 + 10) {
            b.add(Hash::of(&i.to_le_bytes()), a(1));
        }
        assert!(
            b.get(&h, a(9), 10).is_empty(),
            "the oldest hash is forgotten"
        );
    }

    #[test]
    fn a_peer_is_forgotten_with_its_last_connection() {
        let b = PeerBook::default();
        let (h, g) = (Hash::of(b"r"), Hash::of(b"s"));
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        b.connected(a(1));
        b.connected(a(1));
        b.connected(a(2));
        b.add(h, a(1));
        b.add(g, a(1));
        b.add(h, a(2));
        b.disconnected(a(1), false);
        assert_eq!(b.get(&h, a(9), 10), [a(2), a(1)], "one connection is left");
        b.disconnected(a(1), false);
        assert_eq!(b.get(&h, a(9), 10), [a(2)]);
        assert!(b.get(&g, a(9), 10).is_empty());
        // A close with no open count (never counted) changes nothing.
        b.disconnected(a(7), false);
        assert_eq!(b.get(&h, a(9), 10), [a(2)]);
        // A peer that closed saying it runs on is kept.
        b.connected(a(3));
        b.add(h, a(3));
        b.disconnected(a(3), true);
        assert_eq!(b.get(&h, a(9), 10), [a(3), a(2)]);
        // ... for a while.
        let later = Instant::now() + KEEP_AFTER_DONE;
        assert_eq!(b.get_at(&h, a(9), 10, later), [a(2)]);
        b.disconnected(a(2), false);
        b.connected(a(3));
        b.disconnected(a(3), false);
        assert!(b.get(&h, a(9), 10).is_empty());
        assert!(b.lock().order.is_empty() && b.lock().map.is_empty());
    }
}
