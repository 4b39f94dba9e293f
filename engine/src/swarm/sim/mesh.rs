//! The partial mesh: lookups of a tracker that knows every present node,
//! peer exchange when a connection opens, addresses pushed to connected
//! fetchers as a node meets new peers, and a node's connection limits.
//!
//! A node that is not complete keeps [`MeshConfig::max_out`] dials
//! connected: it dials addresses from its book (learnt from lookups and
//! exchanges) and, while the book is empty and it has room, looks up more
//! with a doubling backoff. Any node accepts connections up to
//! [`MeshConfig::max_conns`] in all. A connection that closes (the peer
//! left, or was dropped) frees a slot that the node fills the same way.

use super::{Event, Mesh, MeshConfig, NONE, PEX_MAX, Presence, Sim};

impl Sim {
    fn mesh(&self) -> Option<MeshConfig> {
        match self.cfg.mesh {
            Mesh::Full => None,
            Mesh::Partial(m) => Some(m),
        }
    }

    /// Whether `b` turns down `a`'s dial: no room at either end, or both
    /// complete.
    pub(super) fn mesh_refuses(&self, a: u32, b: u32) -> bool {
        let Some(mesh) = self.mesh() else {
            return false;
        };
        let full = |n: u32| self.nodes[n as usize].peers.len() >= mesh.max_conns;
        full(a) || full(b) || (mesh.drop_done && self.done(a) && self.done(b))
    }

    /// Whether `n` still wants more connections.
    fn wants_peers(&self, n: u32) -> bool {
        let Some(mesh) = self.mesh() else {
            return false;
        };
        let node = &self.nodes[n as usize];
        node.presence == Presence::Present
            && !node.report.seed
            && !self.done(n)
            && node.report.stalled.is_none()
            && node.outbound.len() + node.dialing.len() < mesh.max_out
            && node.peers.len() < mesh.max_conns
    }

    /// A lookup starts now unless one is on the way.
    pub(super) fn start_lookup(&mut self, n: u32) {
        let Some(mesh) = self.mesh() else { return };
        let node = &mut self.nodes[n as usize];
        if node.lookup_pending {
            return;
        }
        node.lookup_pending = true;
        self.push(self.now + mesh.lookup_time, Event::Lookup(n));
    }

    /// `n`'s lookup answers: a few random present nodes.
    pub(super) fn lookup(&mut self, n: u32) -> [Option<u32>; 2] {
        let Some(mesh) = self.mesh() else {
            return [None, None];
        };
        self.nodes[n as usize].lookup_pending = false;
        if !self.wants_peers(n) {
            return [None, None];
        }
        self.nodes[n as usize].report.lookups += 1;
        let len = self.present_list.len() as u64;
        let want = mesh
            .lookup_peers
            .min(self.present_list.len().saturating_sub(1));
        let mut found = Vec::with_capacity(want);
        let mut tries = 0;
        while found.len() < want && tries < 4 * want {
            tries += 1;
            let r = self.random();
            let m = self.present_list[(r % len) as usize];
            if m != n && !found.contains(&m) {
                found.push(m);
            }
        }
        for m in found {
            self.learn(n, m, false);
        }
        self.dial_more(n);
        if self.wants_peers(n) {
            // Room left: look again later, less often each time.
            let node = &mut self.nodes[n as usize];
            let wait = node.backoff;
            node.backoff = (wait * 2).min(mesh.max_backoff);
            node.lookup_pending = true;
            self.push(self.now + wait, Event::Lookup(n));
        }
        [None, None]
    }

    /// Remember `m`'s address at `n`.
    fn learn(&mut self, n: u32, m: u32, from_pex: bool) {
        let Some(mesh) = self.mesh() else { return };
        let node = &self.nodes[n as usize];
        if m == n
            || node.peers.contains(&m)
            || node.dialing.contains_key(&m)
            || node.book.iter().any(|&(b, _)| b == m)
        {
            return;
        }
        let len = node.book.len();
        if len >= mesh.book_size.max(1) {
            let k = (self.random() % len as u64) as usize;
            self.nodes[n as usize].book[k] = (m, from_pex);
        } else {
            self.nodes[n as usize].book.push((m, from_pex));
        }
    }

    /// Dial from the book while `n` has room; look up more if it runs dry.
    pub(super) fn dial_more(&mut self, n: u32) {
        while self.wants_peers(n) {
            let len = self.nodes[n as usize].book.len();
            if len == 0 {
                self.start_lookup(n);
                return;
            }
            let k = (self.random() % len as u64) as usize;
            let (m, from_pex) = self.nodes[n as usize].book.swap_remove(k);
            let node = &self.nodes[n as usize];
            let banned = node.swarm.as_ref().is_some_and(|s| s.is_banned(&m));
            if m == n || node.peers.contains(&m) || node.dialing.contains_key(&m) || banned {
                continue;
            }
            self.nodes[n as usize].dialing.insert(m, from_pex);
            self.send(n, m, Event::Connect(n, m));
        }
    }

    /// `a`'s dial to `b` succeeded: count it, and exchange peers.
    pub(super) fn opened(&mut self, a: u32, b: u32, from_pex: bool) {
        let Some(mesh) = self.mesh() else { return };
        let node = &mut self.nodes[a as usize];
        node.outbound.insert(b);
        node.report.max_out = node.report.max_out.max(node.outbound.len());
        if from_pex {
            node.report.by_pex += 1;
        } else {
            node.report.by_lookup += 1;
        }
        for (x, y) in [(a, b), (b, a)] {
            let peers: Vec<u32> = self.nodes[x as usize]
                .peers
                .iter()
                .copied()
                .filter(|&p| p != y)
                .collect();
            if peers.is_empty() {
                continue;
            }
            let mut addrs = [NONE; PEX_MAX];
            let count = mesh.pex_peers.min(PEX_MAX).min(peers.len());
            let mut k = 0;
            let mut tries = 0;
            while k < count && tries < 4 * count {
                tries += 1;
                let p = peers[(self.random() % peers.len() as u64) as usize];
                if !addrs[..k].contains(&p) {
                    addrs[k] = p;
                    k += 1;
                }
            }
            self.send_addrs(x, y, addrs);
        }
        self.push_met(a, b);
        self.push_met(b, a);
    }

    /// `x` met `y`: tell `x`'s other peers that are fetching, each up to
    /// [`MeshConfig::push`] addresses in all.
    fn push_met(&mut self, x: u32, y: u32) {
        let Some(mesh) = self.mesh() else { return };
        if mesh.push == 0 {
            return;
        }
        let to: Vec<u32> = self.nodes[x as usize]
            .peers
            .iter()
            .copied()
            .filter(|&p| p != y && !self.specs[p as usize].seed && !self.done(p))
            .collect();
        for p in to {
            let sent = self.nodes[x as usize].pushed.entry(p).or_default();
            if *sent >= mesh.push {
                continue;
            }
            *sent += 1;
            let mut addrs = [NONE; PEX_MAX];
            addrs[0] = y;
            self.send_addrs(x, p, addrs);
        }
    }

    /// `from` tells `to` of `addrs` (`NONE` pads), exchanged or pushed.
    fn send_addrs(&mut self, from: u32, to: u32, addrs: [u32; PEX_MAX]) {
        let msg = self.pex_msgs.len() as u32;
        self.pex_msgs.push(addrs);
        self.send(from, to, Event::Pex { to, from, msg });
    }

    /// Addresses from a peer.
    pub(super) fn pex(&mut self, to: u32, from: u32, addrs: [u32; PEX_MAX]) -> [Option<u32>; 2] {
        if !self.linked(to, from) {
            return [None, None];
        }
        for m in addrs.into_iter().filter(|&m| m != NONE) {
            self.learn(to, m, true);
        }
        self.dial_more(to);
        [None, None]
    }

    /// `n` completed: under `drop_done`, close its connections to complete
    /// peers, which frees their slots for nodes that still need them.
    pub(super) fn completed(&mut self, n: u32) {
        let Some(mesh) = self.mesh() else { return };
        if !mesh.drop_done {
            return;
        }
        let done: Vec<u32> = self.nodes[n as usize]
            .peers
            .iter()
            .copied()
            .filter(|&p| self.done(p))
            .collect();
        for p in done {
            self.disconnect(n, p);
        }
    }

    /// `n` lost its connection to `peer`: fill the slot.
    pub(super) fn lost(&mut self, n: u32, peer: u32) {
        let Some(mesh) = self.mesh() else { return };
        let node = &mut self.nodes[n as usize];
        node.outbound.remove(&peer);
        // A replacement is wanted now, not at the end of a long backoff.
        node.backoff = mesh.lookup_backoff;
        self.dial_more(n);
    }
}
