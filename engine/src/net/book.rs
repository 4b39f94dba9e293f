//! The peer book: for each recent blob or root, the addresses of peers
//! seen asking for it or serving it, answered to `AskPeers` (peer exchange,
//! wire.md §3.7). Bounded in roots and in addresses per root.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::content::Hash;

/// Hashes remembered; the least recently touched is forgotten first.
const MAX_HASHES: usize = 1024;
/// Addresses remembered per hash; the oldest is forgotten first.
const MAX_ADDRS: usize = 200;

#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Hash, VecDeque<SocketAddr>>,
    order: VecDeque<Hash>,
}

impl PeerBook {
    /// Remember that `addr` has or wants `hash`.
    pub(crate) fn add(&self, hash: Hash, addr: SocketAddr) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { map, order } = &mut *g;
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
        addrs.retain(|a| *a != addr);
        addrs.push_back(addr);
        if addrs.len() > MAX_ADDRS {
            addrs.pop_front();
        }
    }

    /// Up to `max` addresses for `hash`, newest first, leaving out `except`.
    pub(crate) fn get(&self, hash: &Hash, except: SocketAddr, max: usize) -> Vec<SocketAddr> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
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
}
