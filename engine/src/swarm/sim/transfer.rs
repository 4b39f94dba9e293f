//! Moving pieces: a server's upload queues, a fetcher's replies, cancels
//! and timeouts, and the driver's poll step that turns the swarm's
//! requests into messages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::{Behaviour, Event, Leave, Mesh, Out, Presence, Reply, Serve, ServeOrder, Sim};
use crate::swarm::{Failure, PieceId, Request};

impl Sim {
    pub(super) fn request(&mut self, s: u32, from: u32, id: u64, piece: u32) {
        if !self.linked(s, from) || self.specs[s as usize].behaviour == Behaviour::Blackhole {
            return;
        }
        if !self.nodes[s as usize].have[piece as usize] {
            let reply = Event::Reply {
                to: from,
                from: s,
                id,
                piece,
                reply: Reply::NotHeld,
                downloaded: false,
            };
            self.send(s, from, reply);
            return;
        }
        self.advance(s);
        let left = self.layout[piece as usize].bytes as f64;
        let serve = Serve {
            id,
            to: from,
            piece,
            left,
        };
        let node = &mut self.nodes[s as usize];
        let q = node.conns.entry(from).or_default();
        if q.is_empty() && self.cfg.upload_slots.is_some() {
            node.order.push_back(from);
        }
        q.push_back(serve);
        self.reschedule(s);
    }

    /// The requesters whose responses are being sent: all of them, or
    /// the first [`super::SimConfig::upload_slots`] in turn.
    fn active(&self, s: u32) -> Vec<u32> {
        let node = &self.nodes[s as usize];
        match self.cfg.upload_slots {
            Some(k) => node.order.iter().take(k.max(1)).copied().collect(),
            None => node.conns.keys().copied().collect(),
        }
    }

    fn upload_rate(&self, s: u32) -> f64 {
        let spec = &self.specs[s as usize];
        let rate = if spec.behaviour == Behaviour::Slow {
            self.cfg.slow_rate
        } else {
            spec.up
        };
        rate.max(1) as f64
    }

    /// Bring the bytes left of the responses being sent up to now.
    fn advance(&mut self, s: u32) {
        let rate = self.upload_rate(s);
        let active = self.active(s);
        let node = &mut self.nodes[s as usize];
        let elapsed = (self.now - node.served_at).as_secs_f64();
        let share = rate * elapsed / active.len().max(1) as f64;
        if !active.is_empty() {
            node.report.upload_busy += self.now - node.served_at;
        }
        for r in active {
            if let Some(head) = node.conns.get_mut(&r).and_then(VecDeque::front_mut) {
                head.left -= share;
            }
        }
        node.served_at = self.now;
    }

    /// With [`ServeOrder::Neediest`]: put the requesters furthest behind
    /// first, and each one's most wanted piece first. Called after
    /// [`Self::advance`], so the responses in progress keep what they sent.
    fn reorder(&mut self, s: u32) {
        let ServeOrder::Neediest { reciprocity } = self.cfg.serve_order else {
            return;
        };
        if self.cfg.upload_slots.is_none() {
            return;
        }
        let piece = self.layout.first().map_or(1.0, |p| p.bytes.max(1) as f64);
        let me = &self.nodes[s as usize];
        let key: BTreeMap<u32, i64> = me
            .order
            .iter()
            .map(|&r| {
                let back = me.report.received.get(&r).copied().unwrap_or(0) as f64 / piece;
                let held = self.nodes[r as usize].held as f64;
                (r, (held - reciprocity * back) as i64)
            })
            .collect();
        let node = &mut self.nodes[s as usize];
        let mut demand: BTreeMap<u32, usize> = BTreeMap::new();
        for v in node.conns.values().flatten() {
            *demand.entry(v.piece).or_default() += 1;
        }
        for q in node.conns.values_mut() {
            q.make_contiguous()
                .sort_by_key(|v| std::cmp::Reverse(demand[&v.piece]));
        }
        node.order.make_contiguous().sort_by_key(|r| key[r]);
    }

    /// Schedule the next response to finish.
    fn reschedule(&mut self, s: u32) {
        self.reorder(s);
        let rate = self.upload_rate(s);
        let active = self.active(s);
        let node = &mut self.nodes[s as usize];
        node.wake += 1;
        let generation = node.wake;
        let n = active.len() as f64;
        let heads = active
            .iter()
            .filter_map(|r| node.conns.get(r).and_then(VecDeque::front));
        let Some(least) = heads.map(|h| h.left).min_by(f64::total_cmp) else {
            return;
        };
        let secs = least.max(0.0) * n / rate;
        let at = self.now + Duration::from_nanos((secs * 1e9).ceil() as u64);
        self.push(
            at,
            Event::Wake {
                server: s,
                generation,
            },
        );
    }

    /// The response(s) due now are sent.
    pub(super) fn wake(&mut self, s: u32, generation: u64) {
        if !self.present(s) || self.nodes[s as usize].wake != generation {
            return;
        }
        self.advance(s);
        let active = self.active(s);
        let slots = self.cfg.upload_slots.is_some();
        let node = &mut self.nodes[s as usize];
        let heads = active
            .iter()
            .filter_map(|r| node.conns.get(r).and_then(VecDeque::front));
        // The least is done, whatever rounding left of it.
        let least = heads.map(|h| h.left).min_by(f64::total_cmp).unwrap_or(0.0);
        let mut done = Vec::new();
        for r in active {
            let Some(q) = node.conns.get_mut(&r) else {
                continue;
            };
            if q.front().is_some_and(|h| h.left <= least + 1.0) {
                done.extend(q.pop_front());
                // With upload slots, each piece sent passes the turn on.
                if slots && let Some(k) = node.order.iter().position(|&o| o == r) {
                    node.order.remove(k);
                    node.order.push_back(r);
                }
            }
        }
        node.conns.retain(|_, q| !q.is_empty());
        let conns = &node.conns;
        node.order.retain(|r| conns.contains_key(r));
        let now = self.now;
        for d in done {
            self.nodes[s as usize].report.uploaded += self.layout[d.piece as usize].bytes;
            if let Some(ss) = &mut self.nodes[s as usize].super_seed {
                ss.handle_served(&d.to, PieceId(d.piece), now);
            }
            let good = self.specs[s as usize].behaviour != Behaviour::Corrupt;
            let reply = Event::Reply {
                to: d.to,
                from: s,
                id: d.id,
                piece: d.piece,
                reply: Reply::Data { good },
                downloaded: false,
            };
            self.send(s, d.to, reply);
        }
        self.flush_seed(s);
        self.reschedule(s);
    }

    /// Drop the queued responses that match, sent in part or not at all.
    pub(super) fn unserve(&mut self, s: u32, matches: impl Fn(&Serve) -> bool) {
        self.advance(s);
        let node = &mut self.nodes[s as usize];
        for q in node.conns.values_mut() {
            q.retain(|v| !matches(v));
        }
        node.conns.retain(|_, q| !q.is_empty());
        let conns = &node.conns;
        node.order.retain(|r| conns.contains_key(r));
        self.reschedule(s);
    }

    /// A reply arrives; returns whether the swarm heard of it.
    pub(super) fn reply(
        &mut self,
        l: u32,
        s: u32,
        id: u64,
        piece: u32,
        reply: Reply,
        downloaded: bool,
    ) -> bool {
        if !self.linked(l, s) {
            return false;
        }
        let bytes = self.layout[piece as usize].bytes;
        if let (Reply::Data { .. }, false, Some(down)) =
            (reply, downloaded, self.specs[l as usize].down)
        {
            let node = &mut self.nodes[l as usize];
            let at = self.now.max(node.down_free)
                + Duration::from_secs_f64(bytes as f64 / down.max(1) as f64);
            node.down_free = at;
            let event = Event::Reply {
                to: l,
                from: s,
                id,
                piece,
                reply,
                downloaded: true,
            };
            self.push(at, event);
            return false;
        }
        self.nodes[l as usize].last_rx.insert(s, self.now);
        if self.forget(l, id).is_none() {
            // Cancelled after it was sent.
            if matches!(reply, Reply::Data { .. }) {
                self.nodes[l as usize].report.duplicate_bytes += bytes;
            }
            return false;
        }
        let now = self.now;
        let node = &mut self.nodes[l as usize];
        let have = node.have[piece as usize];
        let Some(swarm) = &mut node.swarm else {
            return false;
        };
        match reply {
            Reply::NotHeld => swarm.piece_failed(&s, PieceId(piece), Failure::NotHeld),
            Reply::Data { good: false } => {
                node.report.bad_pieces += 1;
                swarm.piece_failed(&s, PieceId(piece), Failure::BadData);
                self.disconnect(l, s);
            }
            Reply::Data { good: true } if have => {
                node.report.duplicate_bytes += bytes;
                node.report
                    .violations
                    .push(format!("piece {piece} from {s} after done, not cancelled"));
                swarm.piece_done(&s, PieceId(piece), now);
            }
            Reply::Data { good: true } => self.accept(l, s, piece),
        }
        true
    }

    fn accept(&mut self, l: u32, s: u32, piece: u32) {
        let info = self.layout[piece as usize];
        let now = self.now;
        let node = &mut self.nodes[l as usize];
        let Some(swarm) = &mut node.swarm else {
            return;
        };
        node.have[piece as usize] = true;
        node.held += 1;
        node.groups[info.blob].insert(info.start, info.end);
        *node.report.received.entry(s).or_default() += info.bytes;
        node.report.order.push(piece);
        node.report.done_at.push(now);
        node.report.delivered_by.insert(piece, s);
        let expected: BTreeSet<u32> = node
            .by_piece
            .get(&piece)
            .into_iter()
            .flatten()
            .map(|&(p, _)| p)
            .collect();
        let cancel = swarm.piece_done(&s, PieceId(piece), now);
        let complete = swarm.is_complete();
        if cancel.iter().copied().collect::<BTreeSet<u32>>() != expected || cancel.contains(&s) {
            node.report.violations.push(format!(
                "piece_done({piece}) cancels {cancel:?}, in flight to {expected:?}"
            ));
        }
        // Cancel whatever is still in flight for it, listed or not.
        let flights = node.by_piece.get(&piece).cloned().unwrap_or_default();
        for (peer, id) in flights {
            self.forget(l, id);
            self.send(
                l,
                peer,
                Event::Cancel {
                    to: peer,
                    from: l,
                    id,
                },
            );
        }
        // In a partial mesh a complete peer that does not super-seed has no
        // use for a `Have` (the real one ignores it): not sent, to keep the
        // event count down.
        let partial = matches!(self.cfg.mesh, Mesh::Partial(_));
        let peers: Vec<u32> = self.nodes[l as usize]
            .peers
            .iter()
            .copied()
            .filter(|&p| !partial || !self.done(p) || self.nodes[p as usize].super_seed.is_some())
            .collect();
        for p in peers {
            self.send(
                l,
                p,
                Event::Have {
                    to: p,
                    from: l,
                    piece,
                },
            );
        }
        let node = &mut self.nodes[l as usize];
        if complete {
            node.report.completed = Some(now);
            if node.held != node.have.len() {
                node.report.violations.push("complete too early".into());
            }
            self.unfinished -= 1;
            if let Some(Leave::AfterDone(d)) = self.specs[l as usize].leave {
                self.push(now + d, Event::Leave(l));
            }
            self.completed(l);
        }
        if self.progress_leaves {
            self.progress_leaves();
        }
    }

    /// Schedule the leaves due at the leechers' current average progress.
    fn progress_leaves(&mut self) {
        let (mut sum, mut count) = (0.0, 0);
        for n in &self.nodes {
            if !n.report.seed && n.presence != Presence::Waiting {
                sum += n.held as f64 / n.have.len() as f64;
                count += 1;
            }
        }
        let avg = if count == 0 { 0.0 } else { sum / count as f64 };
        for m in 0..self.nodes.len() {
            let Some(Leave::AtProgress(f)) = self.specs[m].leave else {
                continue;
            };
            if self.nodes[m].leave_fired || avg < f || self.nodes[m].presence != Presence::Present {
                continue;
            }
            self.nodes[m].leave_fired = true;
            let missing = (0..self.layout.len())
                .filter(|&i| {
                    !self
                        .nodes
                        .iter()
                        .enumerate()
                        .any(|(k, n)| k != m && n.presence == Presence::Present && n.have[i])
                })
                .map(|i| i as u32)
                .collect();
            self.nodes[m].report.missing_at_leave = Some(missing);
            self.push(self.now, Event::Leave(m as u32));
        }
    }

    /// Forget request `id` of `l`; returns it if it was outstanding.
    fn forget(&mut self, l: u32, id: u64) -> Option<Out> {
        let node = &mut self.nodes[l as usize];
        let out = node.out.remove(&id)?;
        if let Some(v) = node.by_piece.get_mut(&out.piece) {
            v.retain(|&(_, i)| i != id);
            if v.is_empty() {
                node.by_piece.remove(&out.piece);
            }
        }
        if let Some(c) = node.per_peer.get_mut(&out.peer) {
            *c -= 1;
        }
        Some(out)
    }

    /// `n` forgets `peer`: the connection is gone.
    pub(super) fn drop_peer(&mut self, n: u32, peer: u32) {
        let now = self.now;
        let node = &mut self.nodes[n as usize];
        node.peers.remove(&peer);
        node.pushed.remove(&peer);
        if let Some(swarm) = &mut node.swarm {
            swarm.remove_peer(&peer);
        }
        let ids: Vec<u64> = node
            .out
            .iter()
            .filter(|(_, o)| o.peer == peer)
            .map(|(&id, _)| id)
            .collect();
        node.report.orphaned += ids.len() as u64;
        if let Some(ss) = &mut node.super_seed {
            ss.handle_disconnected(&peer, now);
        }
        for id in ids {
            self.forget(n, id);
        }
        self.unserve(n, |s| s.to == peer);
        self.flush_seed(n);
        self.lost(n, peer);
    }

    /// `n` closes its connection to `peer`.
    pub(super) fn disconnect(&mut self, n: u32, peer: u32) {
        self.drop_peer(n, peer);
        self.send(n, peer, Event::Close { to: peer, from: n });
    }

    /// The idle timer of request `id`; returns whether it fired.
    pub(super) fn timeout(&mut self, n: u32, peer: u32, id: u64) -> bool {
        let limit = self.cfg.request_timeout;
        let node = &mut self.nodes[n as usize];
        let Some(out) = node.out.get(&id).copied() else {
            return false;
        };
        let mut last = node
            .last_rx
            .get(&peer)
            .map_or(out.sent, |&t| t.max(out.sent));
        // Bytes of a response to `n` are on the way from `peer`.
        if self.cfg.streaming && self.nodes[peer as usize].conns.contains_key(&n) {
            last = self.now;
        }
        let node = &mut self.nodes[n as usize];
        if self.now < last + limit {
            self.push(last + limit, Event::Timeout { node: n, peer, id });
            return false;
        }
        // As the real driver does: a timeout is a slow request, and the
        // picker decides when a peer has had enough of them.
        let mut dropped = false;
        if let Some(swarm) = &mut node.swarm {
            swarm.piece_failed(&peer, PieceId(out.piece), Failure::Slow);
            while let Some(gone) = swarm.poll_dropped() {
                dropped |= gone == peer;
            }
        }
        self.forget(n, id);
        node_report_timeout(&mut self.nodes[n as usize].report, peer, dropped);
        if dropped {
            self.disconnect(n, peer);
        }
        true
    }

    /// The driver's step: ask the swarm what to send to every connected
    /// peer, and send it.
    pub(super) fn poll(&mut self, n: u32) {
        let node = &mut self.nodes[n as usize];
        if node.presence != Presence::Present {
            return;
        }
        let peers: Vec<u32> = node.peers.iter().copied().collect();
        self.poll_peers(n, &peers);
    }

    /// [`Self::poll`] for some peers only.
    pub(super) fn poll_peers(&mut self, n: u32, peers: &[u32]) {
        let now = self.now;
        let node = &mut self.nodes[n as usize];
        if node.presence != Presence::Present {
            return;
        }
        let Some(swarm) = &mut node.swarm else {
            return;
        };
        if swarm.is_complete() {
            return;
        }
        let mut sends = Vec::new();
        for &peer in peers {
            if !node.peers.contains(&peer) {
                continue;
            }
            for r in swarm.poll_requests(&peer, now) {
                sends.push((peer, r));
            }
        }
        for (peer, r) in sends {
            self.send_request(n, peer, r);
        }
        let node = &mut self.nodes[n as usize];
        // As the real driver does: the picker says when waiting has gone
        // on too long, and when to wake to find out.
        let mut wake = None;
        if let Some(swarm) = &mut node.swarm {
            swarm.handle_timeout(now);
            if swarm.poll_stalled(now) {
                node.report.stalled.get_or_insert(now);
                return;
            }
            wake = swarm.poll_timeout();
        }
        // No tick of its own: a wake-up when the picker asks for one,
        // unless an earlier one is pending already.
        if let Some(at) = wake.map(|at| at.max(now))
            && node.picker_wake.is_none_or(|w| at < w)
        {
            node.picker_wake = Some(at);
            self.push(at, Event::Tick(n));
        }
    }

    fn send_request(&mut self, n: u32, peer: u32, r: Request) {
        let piece = r.piece.0;
        let max_pipeline = self.cfg.picker.max_pipeline;
        let info = self.layout.get(piece as usize).copied();
        let node = &mut self.nodes[n as usize];
        let mut violations = Vec::new();
        match info {
            Some(p) if p.blob == r.blob && (p.start..p.end) == r.groups => {}
            _ => violations.push(format!("request {r:?} does not match the layout")),
        }
        if node.swarm.as_ref().is_some_and(|s| s.is_banned(&peer)) {
            node.report.requests_to_banned += 1;
        }
        if node.have.get(piece as usize).copied().unwrap_or(true) {
            violations.push(format!("requested piece {piece}, already held"));
        }
        let flying = node.by_piece.entry(piece).or_default();
        if flying.iter().any(|&(p, _)| p == peer) {
            violations.push(format!("requested piece {piece} from {peer} twice"));
        }
        if let Some(&(other, _)) = flying.first() {
            node.report.steals.push((piece, other, peer));
        }
        let id = self.next_id;
        self.next_id += 1;
        flying.push((peer, id));
        node.out.insert(
            id,
            Out {
                peer,
                piece,
                sent: self.now,
            },
        );
        let count = node.per_peer.entry(peer).or_default();
        *count += 1;
        if *count > max_pipeline {
            violations.push(format!("{count} requests in flight to {peer}"));
        }
        node.report.max_in_flight = node.report.max_in_flight.max(*count);
        if node.report.first_requests.len() < 8 {
            node.report.first_requests.push(piece);
        }
        node.report.violations.extend(violations);
        self.send(
            n,
            peer,
            Event::Request {
                to: peer,
                from: n,
                id,
                piece,
            },
        );
        let at = self.now + self.cfg.request_timeout;
        self.push(at, Event::Timeout { node: n, peer, id });
    }
}

/// A timed-out request counts once; the peer is listed once, when dropped.
fn node_report_timeout(report: &mut super::NodeReport, peer: u32, dropped: bool) {
    report.timeouts += 1;
    if dropped && !report.timed_out.contains(&peer) {
        report.timed_out.push(peer);
    }
}
