//! Super-seeding: what a seed that is the only complete source tells each
//! peer it has, so that it sends little more than one copy (the idea of
//! BEP 16).
//!
//! An ordinary seed announces everything, and every peer connected to it
//! asks it for the pieces rarest around that peer. Peers that are not
//! connected to each other cannot see that they asked for the same piece,
//! so the seed sends many pieces several times: with 50 peers connected
//! to a fast seed among 1,000 it sent about a dozen copies in the
//! simulation. A [`SuperSeed`] announces to each peer only a few pieces
//! that nobody has been given yet; a peer that takes them is offered
//! more, and once a piece it took shows up at another peer (its `Have`)
//! the seed knows it was passed on. Every piece then leaves the seed about
//! once, and the rest of the swarm spreads it.
//!
//! Sans-IO like [`super::Swarm`]: the driver reports what happens
//! (`handle_*`, with the time) and sends what [`SuperSeed::poll_advertise`]
//! names. Calling order, each time the driver wakes: report every peer
//! that connected ([`SuperSeed::handle_connected`], with the holdings its
//! bitfield gave) or went away, every `Have` a peer sent, every piece
//! served; then [`SuperSeed::handle_timeout`]; then send a `Have` for each
//! `(peer, piece)` that [`SuperSeed::poll_advertise`] returns until it
//! returns `None`; sleep until [`SuperSeed::poll_timeout`] or the next
//! event. On connect, announce nothing but what `poll_advertise` says
//! (while [`SuperSeed::is_super`]); afterwards, an ordinary full bitfield.
//!
//! A request for a piece that was not announced to that peer is served all
//! the same: it costs a copy, but refusing would only stall a peer that
//! learned of the piece some other way (a restart, an old announcement).
//!
//! ```
//! use std::time::Duration;
//! use swarm_engine::swarm::{PieceId, SuperSeed, SuperSeedConfig};
//!
//! let config = SuperSeedConfig { offers_per_peer: 1, ..SuperSeedConfig::default() };
//! let mut seed = SuperSeed::new(4, config, 7);
//! let now = Duration::ZERO;
//! seed.handle_connected("a", [], now);
//! seed.handle_connected("b", [], now);
//! // One piece offered to each, and not the same one.
//! let (p, x) = seed.poll_advertise().expect("an offer");
//! let (q, y) = seed.poll_advertise().expect("an offer");
//! assert_ne!((p, x), (q, y));
//! assert_ne!(x, y);
//! assert_eq!(seed.poll_advertise(), None);
//! // `p` took its piece: it is offered another.
//! seed.handle_served(&p, x, now);
//! let (r, z) = seed.poll_advertise().expect("an offer");
//! assert_eq!(r, p);
//! assert!(z != x && z != y);
//! # let _ = PieceId(0);
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::{Bits, PieceId};

/// Tuning of a [`SuperSeed`].
#[derive(Debug, Clone)]
pub struct SuperSeedConfig {
    /// Pieces announced to a peer and not served to it yet, at most. Two
    /// keep a peer's requests to the seed back to back.
    pub offers_per_peer: usize,
    /// Pieces served to a peer that no other peer is known to hold yet,
    /// at most, before it is offered more: a peer that does not pass
    /// pieces on gets few.
    pub max_unshared: usize,
    /// A piece served this long ago counts as passed on even if no other
    /// connected peer said it has it (in a partial mesh its `Have`s go to
    /// peers this seed is not connected to).
    pub reveal_after: Duration,
    /// Most unshared pieces a peer earns on top of
    /// [`Self::max_unshared`], one for each piece it was seen to pass on:
    /// the seed's pieces go first to the peers that spread them.
    pub max_credit: usize,
    /// Once every piece is out, a piece that no connected peer has held
    /// for this long is offered again: its holders may all have left.
    pub rescue_after: Duration,
    /// A peer alone here this long is no longer held back: it is offered
    /// [`Self::alone_offers`] pieces at a time, however many it keeps.
    /// Nobody is there to pass pieces to, and fetchers that start together
    /// have arrived by then. Short, as a fetch from this one seed (or from
    /// several complete sources, each of which sees it alone) crawls until
    /// then.
    pub alone_after: Duration,
    /// Pieces announced ahead to a peer alone here: enough to keep a fetch
    /// from this seed at full speed, few enough that a fetcher that turns
    /// up late finds nearly every piece still to be given out once. It is
    /// not told everything: a piece still leaves the seed about once.
    pub alone_offers: usize,
    /// Stop super-seeding once every piece has been served or seen at a
    /// peer (the seed is no longer the only source of anything): from
    /// then on every peer is told everything.
    pub auto: bool,
}

impl Default for SuperSeedConfig {
    fn default() -> Self {
        Self {
            offers_per_peer: 2,
            max_unshared: 2,
            reveal_after: Duration::from_secs(3),
            rescue_after: Duration::from_secs(10),
            max_credit: 4,
            alone_after: Duration::from_millis(100),
            alone_offers: 8,
            auto: false,
        }
    }
}

#[derive(Debug, Clone)]
struct PeerState {
    /// Pieces it holds (bitfield, then `Have`s).
    has: Bits,
    /// Pieces it was told of.
    told: Bits,
    /// Told, not yet served.
    offered: Vec<u32>,
    /// Served, not yet seen at another peer: (piece, when).
    unshared: Vec<(u32, Duration)>,
    /// Pieces it was served that another peer was seen to hold later:
    /// each adds one to what it may hold unshared.
    shared: usize,
}

/// Which pieces a seed announces to which peer: to each only a few that
/// nobody has been given yet, more as they turn up elsewhere (BEP 16's
/// idea; the `swarm::seed` module's documentation has the whole design).
#[derive(Debug, Clone)]
pub struct SuperSeed<P> {
    config: SuperSeedConfig,
    pieces: usize,
    peers: BTreeMap<P, PeerState>,
    /// Pieces never served and not seen at any peer, in a random order;
    /// offers are taken from the front.
    fresh: VecDeque<u32>,
    /// Per piece: times served.
    given: Vec<u32>,
    /// Per piece: connected peers that hold it.
    seen: Vec<u32>,
    /// Per piece: served or seen at least once.
    out: Bits,
    out_count: usize,
    /// Per piece: offered to a peer, not served yet.
    offered: Vec<u32>,
    /// Announcements to send, in order.
    outbox: VecDeque<(P, u32)>,
    /// Peers whose offers may be topped up.
    dirty: Vec<P>,
    super_mode: bool,
    served: u64,
    /// Per piece: when a connected peer last held it or it was served.
    last_seen: Vec<Duration>,
    /// The latest time given to a `handle_*`.
    now: Duration,
    /// Since when exactly one peer has been connected.
    alone_since: Option<Duration>,
    /// Pieces in `fresh` that were served without being offered (asked of
    /// this seed all the same): out, to be dropped from `fresh`.
    served_unoffered: Bits,
}

impl<P: Copy + Ord> SuperSeed<P> {
    /// A seed of `pieces` pieces (numbered as [`super::Swarm`] numbers
    /// them for the same blobs and [`super::Config`]); the order in which
    /// pieces are given out comes from `seed`.
    pub fn new(pieces: usize, config: SuperSeedConfig, seed: u64) -> Self {
        let mut fresh: Vec<u32> = (0..pieces as u32).collect();
        let mut rng = seed;
        // Fisher-Yates with splitmix64.
        for i in (1..fresh.len()).rev() {
            rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let j = (mix(rng) % (i as u64 + 1)) as usize;
            fresh.swap(i, j);
        }
        Self {
            config,
            pieces,
            peers: BTreeMap::new(),
            fresh: fresh.into(),
            given: vec![0; pieces],
            seen: vec![0; pieces],
            out: Bits::new(pieces),
            out_count: 0,
            offered: vec![0; pieces],
            outbox: VecDeque::new(),
            dirty: Vec::new(),
            super_mode: true,
            served: 0,
            last_seen: vec![Duration::ZERO; pieces],
            now: Duration::ZERO,
            alone_since: None,
            served_unoffered: Bits::new(pieces),
        }
    }

    /// Whether it still announces pieces one by one. False once `auto`
    /// ended it: a new peer then gets a full bitfield, and
    /// [`Self::poll_advertise`] names the rest of the pieces to the peers
    /// already connected.
    pub fn is_super(&self) -> bool {
        self.super_mode
    }

    /// Pieces served, counting repeats.
    pub fn pieces_served(&self) -> u64 {
        self.served
    }

    /// The pieces `peer` has been told of so far (by
    /// [`Self::poll_advertise`]), lowest first: what to answer it when it
    /// asks again (a new fetch, a new connection).
    pub fn told(&self, peer: &P) -> Vec<PieceId> {
        self.peers.get(peer).map_or_else(Vec::new, |s| {
            s.told.ones().map(|i| PieceId(i as u32)).collect()
        })
    }

    /// Pieces that have left the seed or are known elsewhere.
    pub fn pieces_out(&self) -> usize {
        self.out_count
    }

    /// A peer connected; `has` is what its bitfield says it holds.
    pub fn handle_connected(
        &mut self,
        peer: P,
        has: impl IntoIterator<Item = PieceId>,
        now: Duration,
    ) {
        self.now = self.now.max(now);
        if self.peers.contains_key(&peer) {
            return;
        }
        let mut state = PeerState {
            has: Bits::new(self.pieces),
            told: Bits::new(self.pieces),
            offered: Vec::new(),
            unshared: Vec::new(),
            shared: 0,
        };
        for PieceId(i) in has {
            if (i as usize) < self.pieces && !state.has.get(i as usize) {
                state.has.set(i as usize);
                self.seen[i as usize] += 1;
                self.mark_out(i);
            }
        }
        self.peers.insert(peer, state);
        self.dirty.push(peer);
        self.count_changed();
    }

    fn count_changed(&mut self) {
        self.alone_since = match (self.peers.len(), self.alone_since) {
            (1, Some(t)) => Some(t),
            (1, None) => Some(self.now),
            _ => None,
        };
    }

    /// Whether the one peer connected has been alone long enough
    /// ([`SuperSeedConfig::alone_after`]) not to be held back: there is
    /// nobody to pass pieces to, and (after that long) nobody coming soon
    /// to hold them back for.
    fn alone(&self) -> bool {
        self.alone_since
            .is_some_and(|t| self.now >= t + self.config.alone_after)
    }

    /// A peer went away: what it was offered goes back to be offered to
    /// others, and so does what it was served that nobody else is known
    /// to hold.
    pub fn handle_disconnected(&mut self, peer: &P, now: Duration) {
        self.now = self.now.max(now);
        let Some(state) = self.peers.remove(peer) else {
            return;
        };
        for i in state.has.ones() {
            self.seen[i] -= 1;
            self.last_seen[i] = self.now;
        }
        for &i in &state.offered {
            self.offered[i as usize] -= 1;
            if self.offered[i as usize] == 0 && self.seen[i as usize] == 0 {
                self.served_unoffered.clear(i as usize);
                self.fresh.push_front(i);
            }
        }
        for &(i, _) in &state.unshared {
            // Lost with it, as far as this seed can tell: give it again.
            if self.seen[i as usize] == 0 && self.offered[i as usize] == 0 {
                self.served_unoffered.clear(i as usize);
                self.fresh.push_front(i);
            }
        }
        // Its pieces that others had counted on are credited elsewhere.
        let keys: Vec<P> = self.peers.keys().copied().collect();
        self.dirty.extend(keys);
        self.count_changed();
    }

    /// `peer` now holds `piece` (its `Have`).
    pub fn handle_have(&mut self, peer: &P, piece: PieceId, now: Duration) {
        self.now = self.now.max(now);
        let i = piece.0;
        if i as usize >= self.pieces {
            return;
        }
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        if state.has.get(i as usize) {
            return;
        }
        state.has.set(i as usize);
        self.seen[i as usize] += 1;
        self.last_seen[i as usize] = self.now;
        // It got an offered piece elsewhere: the offer is void.
        if let Some(k) = state.offered.iter().position(|&o| o == i) {
            state.offered.swap_remove(k);
            self.offered[i as usize] -= 1;
        }
        let own = state.unshared.iter().any(|&(o, _)| o == i);
        self.mark_out(i);
        self.dirty.push(*peer);
        if own {
            return;
        }
        // Whoever was served it passed it on (or it came another way):
        // either way it is no longer only there.
        for (k, other) in self.peers.iter_mut() {
            if k == peer {
                continue;
            }
            if let Some(pos) = other.unshared.iter().position(|&(o, _)| o == i) {
                other.unshared.swap_remove(pos);
                other.shared += 1;
                self.dirty.push(*k);
            }
        }
    }

    /// The seed served `piece` to `peer` (it sent the response).
    pub fn handle_served(&mut self, peer: &P, piece: PieceId, now: Duration) {
        let i = piece.0;
        if i as usize >= self.pieces {
            return;
        }
        self.now = self.now.max(now);
        self.last_seen[i as usize] = now;
        self.served += 1;
        self.given[i as usize] += 1;
        self.mark_out(i);
        let Some(state) = self.peers.get_mut(peer) else {
            return;
        };
        if let Some(k) = state.offered.iter().position(|&o| o == i) {
            state.offered.swap_remove(k);
            self.offered[i as usize] -= 1;
        } else if self.offered[i as usize] == 0 {
            // Asked for without an offer: out all the same, not to be
            // offered again while someone holds it.
            self.served_unoffered.set(i as usize);
        }
        if self.seen[i as usize] == 0 && !state.has.get(i as usize) {
            state.unshared.push((i, now));
        }
        self.dirty.push(*peer);
    }

    /// Time passes: served pieces older than
    /// [`SuperSeedConfig::reveal_after`] stop holding their peer back, and
    /// so does being alone for [`SuperSeedConfig::alone_after`].
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = self.now.max(now);
        if self.fresh.is_empty() {
            // A rescue may be due.
            let keys: Vec<P> = self.peers.keys().copied().collect();
            self.dirty.extend(keys);
        }
        let wait = self.config.reveal_after;
        if self.alone() {
            let keys: Vec<P> = self.peers.keys().copied().collect();
            self.dirty.extend(keys);
        }
        for (k, state) in self.peers.iter_mut() {
            let before = state.unshared.len();
            state.unshared.retain(|&(_, at)| at + wait > now);
            if state.unshared.len() != before {
                self.dirty.push(*k);
            }
        }
    }

    /// When to call [`Self::handle_timeout`] at the latest.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let reveal = self
            .peers
            .values()
            .flat_map(|s| s.unshared.iter().map(|&(_, at)| at))
            .min()
            .map(|at| at + self.config.reveal_after);
        // The next rescue, once offers come from rescues only.
        let rescue = (self.super_mode && self.fresh.is_empty() && !self.peers.is_empty())
            .then(|| {
                (0..self.pieces)
                    .filter(|&i| self.seen[i] == 0 && self.offered[i] == 0)
                    .map(|i| self.last_seen[i] + self.config.rescue_after)
                    .filter(|&t| t > self.now)
                    .min()
            })
            .flatten();
        let alone = self
            .alone_since
            .map(|t| t + self.config.alone_after)
            .filter(|&t| t > self.now);
        reveal.into_iter().chain(rescue).chain(alone).min()
    }

    /// The next announcement to send: tell `peer` that this seed has
    /// `piece` (a `Have`). Call until `None` after every input.
    pub fn poll_advertise(&mut self) -> Option<(P, PieceId)> {
        loop {
            if let Some((p, i)) = self.outbox.pop_front() {
                return Some((p, PieceId(i)));
            }
            if self.super_mode && self.config.auto && self.out_count == self.pieces {
                self.end_super();
                continue;
            }
            let peer = self.dirty.pop()?;
            if self.super_mode {
                self.top_up(peer);
            }
        }
    }

    fn mark_out(&mut self, i: u32) {
        if !self.out.get(i as usize) {
            self.out.set(i as usize);
            self.out_count += 1;
        }
    }

    /// Offer `peer` fresh pieces while it has room.
    fn top_up(&mut self, peer: P) {
        // A peer alone here (for a while) has nobody to pass pieces on to:
        // it is not kept waiting for a `Have` that cannot come, and is
        // offered more at a time (a fetch from several complete sources
        // would crawl at two pieces each).
        let alone = self.alone();
        let window = if alone {
            self.config.alone_offers.max(self.config.offers_per_peer)
        } else {
            self.config.offers_per_peer
        };
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        while state.offered.len() < window
            && (alone
                || state.unshared.len()
                    < self.config.max_unshared + state.shared.min(self.config.max_credit))
        {
            // The first fresh piece it lacks; pieces seen somewhere since
            // they were queued are no longer fresh.
            let mut pick = None;
            let mut k = 0;
            while k < self.fresh.len() {
                let i = self.fresh[k];
                if self.seen[i as usize] > 0
                    || self.offered[i as usize] > 0
                    || self.served_unoffered.get(i as usize)
                {
                    self.served_unoffered.clear(i as usize);
                    self.fresh.remove(k);
                    continue;
                }
                if !state.has.get(i as usize) && !state.told.get(i as usize) {
                    pick = self.fresh.remove(k);
                    break;
                }
                k += 1;
            }
            // Every piece is out: one that no connected peer has held for
            // `rescue_after` may be missing around here (its holders left,
            // or it never spread this way).
            if pick.is_none() {
                let since = self.now.saturating_sub(self.config.rescue_after);
                pick = (0..self.pieces as u32).find(|&i| {
                    let i = i as usize;
                    self.seen[i] == 0
                        && self.offered[i] == 0
                        && self.last_seen[i] <= since
                        && self.now >= self.config.rescue_after
                        && !state.has.get(i)
                        && !state.told.get(i)
                });
            }
            let Some(i) = pick else { break };
            state.offered.push(i);
            state.told.set(i as usize);
            self.offered[i as usize] += 1;
            self.outbox.push_back((peer, i));
        }
    }

    /// Super-seeding is over: tell every peer everything it was not told.
    fn end_super(&mut self) {
        self.super_mode = false;
        for (k, state) in self.peers.iter_mut() {
            for i in 0..self.pieces {
                if !state.told.get(i) && !state.has.get(i) {
                    state.told.set(i);
                    self.outbox.push_back((*k, i as u32));
                }
            }
            state.offered.clear();
        }
        self.offered.iter_mut().for_each(|o| *o = 0);
    }
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const T0: Duration = Duration::ZERO;

    fn drain(s: &mut SuperSeed<u32>) -> Vec<(u32, u32)> {
        std::iter::from_fn(|| s.poll_advertise())
            .map(|(p, i)| (p, i.0))
            .collect()
    }

    #[test]
    fn offers_are_distinct_across_peers() {
        let mut s = SuperSeed::new(64, SuperSeedConfig::default(), 1);
        for p in 0..8 {
            s.handle_connected(p, [], T0);
        }
        let offers = drain(&mut s);
        assert_eq!(offers.len(), 16, "two each: {offers:?}");
        let pieces: BTreeSet<u32> = offers.iter().map(|o| o.1).collect();
        assert_eq!(pieces.len(), 16, "a piece offered twice");
    }

    #[test]
    fn a_peer_alone_for_alone_after_is_no_longer_held_back() {
        let config = SuperSeedConfig {
            offers_per_peer: 1,
            max_unshared: 1,
            reveal_after: Duration::from_secs(30),
            alone_after: Duration::from_secs(3),
            alone_offers: 4,
            max_credit: 0,
            ..SuperSeedConfig::default()
        };
        let mut s = SuperSeed::new(16, config, 3);
        s.handle_connected(1, [], T0);
        let [(1, x)] = drain(&mut s)[..] else {
            panic!("one offer")
        };
        s.handle_served(&1, PieceId(x), T0);
        // Held back at first: another peer may come to pass pieces to.
        assert_eq!(drain(&mut s), vec![]);
        let t = Duration::from_secs(3);
        assert_eq!(s.poll_timeout(), Some(t));
        s.handle_timeout(t);
        // Then it is offered `alone_offers` at a time, each served piece
        // freeing the next at once, however many it keeps.
        let offers = drain(&mut s);
        assert_eq!(offers.len(), 4, "{offers:?}");
        assert!(offers.iter().all(|o| o.0 == 1 && o.1 != x));
        for &(_, y) in &offers {
            s.handle_served(&1, PieceId(y), t);
        }
        let more = drain(&mut s);
        assert_eq!(more.len(), 4, "{more:?}");
        // A second peer ends it: one at a time again, for both.
        s.handle_connected(2, [], t);
        let offers = drain(&mut s);
        assert_eq!(offers.len(), 1, "{offers:?}");
        assert_eq!(offers[0].0, 2);
        for &(_, y) in &more {
            s.handle_served(&1, PieceId(y), t);
        }
        assert!(
            drain(&mut s).iter().all(|o| o.0 != 1),
            "peer 1 held back again"
        );
    }

    #[test]
    fn a_piece_served_without_an_offer_is_not_offered_again_while_held() {
        let mut s = SuperSeed::new(4, SuperSeedConfig::default(), 4);
        s.handle_connected(1, [], T0);
        s.handle_connected(2, [], T0);
        let offered: BTreeSet<u32> = drain(&mut s).iter().map(|o| o.1).collect();
        assert_eq!(offered.len(), 4);
        // Peer 1 takes everything, offered to it or not.
        for p in 0..4 {
            s.handle_served(&1, PieceId(p), T0);
        }
        s.handle_connected(3, [], T0);
        assert_eq!(drain(&mut s), vec![], "a served piece offered again");
        // Peer 1 leaves with them, nobody else holding them: given again.
        s.handle_disconnected(&1, T0);
        let again: BTreeSet<u32> = drain(&mut s).iter().map(|o| o.1).collect();
        assert!(!again.is_empty());
    }

    #[test]
    fn a_hoarder_gets_no_more_until_it_shares_or_time_passes() {
        let config = SuperSeedConfig {
            offers_per_peer: 1,
            max_unshared: 1,
            reveal_after: Duration::from_secs(5),
            max_credit: 0,
            ..SuperSeedConfig::default()
        };
        let mut s = SuperSeed::new(16, config, 2);
        s.handle_connected(1, [], T0);
        s.handle_connected(2, [], T0);
        let first = drain(&mut s);
        let (_, x) = *first.iter().find(|o| o.0 == 1).expect("offer to 1");
        s.handle_served(&1, PieceId(x), T0);
        s.handle_have(&1, PieceId(x), T0);
        // Its own Have is not sharing.
        assert_eq!(drain(&mut s), vec![]);
        assert_eq!(s.poll_timeout(), Some(Duration::from_secs(5)));
        // Peer 2 got it (from 1): 1 shared, so it gets another.
        s.handle_have(&2, PieceId(x), T0);
        let next = drain(&mut s);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].0, 1);
        // And with time alone, too.
        let y = next[0].1;
        s.handle_served(&1, PieceId(y), Duration::from_secs(1));
        assert_eq!(drain(&mut s), vec![]);
        s.handle_timeout(Duration::from_secs(6));
        assert_eq!(drain(&mut s).len(), 1);
    }

    #[test]
    fn a_peer_seen_passing_pieces_on_earns_room() {
        let config = SuperSeedConfig {
            offers_per_peer: 1,
            max_unshared: 1,
            max_credit: 4,
            ..SuperSeedConfig::default()
        };
        let mut s = SuperSeed::new(16, config, 6);
        s.handle_connected(1, [], T0);
        s.handle_connected(2, [], T0);
        let mut held = 0;
        // Each piece 1 takes shows up at 2 next: 1 may hold one more
        // unshared piece each time, up to the credit.
        for round in 0..10 {
            let offers = drain(&mut s);
            let Some(&(_, x)) = offers.iter().find(|o| o.0 == 1) else {
                break;
            };
            s.handle_served(&1, PieceId(x), T0);
            held += 1;
            if round < 3 {
                s.handle_have(&2, PieceId(x), T0);
                held -= 1;
            }
        }
        // Three seen elsewhere: room for 1 + 3 unshared, all taken.
        assert_eq!(held, 4);
        assert_eq!(drain(&mut s).iter().filter(|o| o.0 == 1).count(), 0);
    }

    #[test]
    fn a_piece_lost_with_its_peer_is_given_again() {
        let config = SuperSeedConfig {
            offers_per_peer: 1,
            ..SuperSeedConfig::default()
        };
        let mut s = SuperSeed::new(2, config, 3);
        s.handle_connected(1, [], T0);
        let [(_, x)] = drain(&mut s)[..] else {
            panic!("one offer")
        };
        s.handle_served(&1, PieceId(x), T0);
        let [(_, y)] = drain(&mut s)[..] else {
            panic!("one offer")
        };
        assert_ne!(x, y);
        // 1 leaves with both pieces, neither seen elsewhere.
        s.handle_disconnected(&1, T0);
        s.handle_connected(2, [], T0);
        let again: BTreeSet<u32> = drain(&mut s).iter().map(|o| o.1).collect();
        assert_eq!(again.len(), 1);
        assert!(again.is_subset(&BTreeSet::from([x, y])));
    }

    #[test]
    fn pieces_a_peer_holds_are_not_offered_to_it() {
        let mut s = SuperSeed::new(4, SuperSeedConfig::default(), 4);
        s.handle_connected(1, [PieceId(0), PieceId(1), PieceId(2)], T0);
        // Pieces a peer holds are out already: only piece 3 is fresh.
        assert_eq!(drain(&mut s), vec![(1, 3)]);
        assert_eq!(s.pieces_out(), 3);
    }

    #[test]
    fn auto_ends_once_every_piece_is_out() {
        let config = SuperSeedConfig {
            auto: true,
            offers_per_peer: 4,
            ..SuperSeedConfig::default()
        };
        let mut s = SuperSeed::new(4, config, 5);
        s.handle_connected(1, [], T0);
        s.handle_connected(2, [], T0);
        let offers = drain(&mut s);
        assert_eq!(offers.len(), 4);
        assert!(s.is_super());
        for &(p, i) in &offers {
            s.handle_served(&p, PieceId(i), T0);
        }
        // Everything is out: each peer is told the rest.
        let rest = drain(&mut s);
        assert!(!s.is_super());
        for p in [1, 2] {
            let told: BTreeSet<u32> = offers
                .iter()
                .chain(&rest)
                .filter(|o| o.0 == p)
                .map(|o| o.1)
                .collect();
            assert_eq!(told.len(), 4, "peer {p}: {told:?}");
        }
        assert_eq!(s.pieces_served(), 4);
    }
}
