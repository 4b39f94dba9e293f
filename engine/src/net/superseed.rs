//! Super-seeding on a node (wire.md §7): for each complete blob that
//! peers ask about, a [`SuperSeed`] decides which pieces each asker is
//! told of, so that the pieces leave this node about once and the
//! fetchers spread them among themselves.
//!
//! The driver, all I/O: an `Ask` registers the asker and is answered with
//! the pieces offered to it so far; later offers go out as `Have`s on the
//! asker's control stream. This node asks each asker back about the blob,
//! which subscribes it to the asker's `Have`s: that is how it sees a piece
//! it served turn up at another peer. A blob's timer task calls the
//! policy's `handle_timeout` when it asks to be woken.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::NodeId;
use super::SuperSeedMode;
use super::haves::Haves;
use crate::content::{self, ChunkRanges, Hash};
use crate::store::GroupSet;
use crate::swarm::{Config, PieceId, SuperSeed, SuperSeedConfig};
use crate::wire::{Have, Message, WireRanges};

/// How often a blob's timer with nothing due checks that its endpoint
/// still exists.
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// The super-seeds of one endpoint, by blob.
#[derive(Debug)]
pub(crate) struct SuperSeeds {
    start: Instant,
    config: SuperSeedConfig,
    inner: Mutex<HashMap<Hash, Blob>>,
    /// Blobs this node fetched are announced whole ([`SuperSeedMode::Auto`]).
    first_source_only: bool,
    /// Blobs this node fetched (it announced pieces of them as they came).
    fetched: Mutex<HashSet<Hash>>,
    /// Mixed into each blob's order of offers, so that two super-seeds of
    /// one blob offer a fetcher different pieces.
    salt: u64,
}

#[derive(Debug)]
struct Blob {
    size: u64,
    /// Groups per piece: the layout a fetcher's picker uses by default
    /// (`swarm::Config`), so an offer is one of its pieces.
    per: u64,
    pieces: u64,
    seed: SuperSeed<NodeId>,
    /// The connection each peer asked on: where its offers go.
    conns: HashMap<NodeId, usize>,
    wake: Arc<Notify>,
}

impl Blob {
    fn groups_of(&self, piece: u32) -> (u64, u64) {
        let groups = content::group_count(self.size);
        let start = u64::from(piece) * self.per;
        (start, (start + self.per).min(groups))
    }

    /// The pieces `groups` covers whole.
    /// Only the pieces that start inside a range are looked at: a `Get` or
    /// a `Have` of one piece costs one piece, not the blob.
    fn pieces_in(&self, groups: &GroupSet) -> Vec<PieceId> {
        let per = self.per.max(1);
        let mut out = Vec::new();
        for &(start, end) in groups.ranges() {
            let first = start.div_ceil(per);
            let last = end.div_ceil(per).min(self.pieces);
            for p in first..last {
                let (a, b) = self.groups_of(p as u32);
                if groups.covers_range(a, b) {
                    out.push(PieceId(p as u32));
                }
            }
        }
        out
    }

    fn have(&self, hash: Hash, pieces: &[u32]) -> Have {
        let mut groups = GroupSet::new();
        for &p in pieces {
            let (a, b) = self.groups_of(p);
            groups.insert(a, b);
        }
        Have {
            hash,
            size: self.size,
            groups: WireRanges::from_groups(&groups, crate::wire::MAX_HAVE_RANGES),
        }
    }
}

/// What an `Ask` of a super-seeded blob is answered with.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The pieces offered to the asker so far (maybe none yet), and
    /// whether this node should ask it back.
    Offer { have: Have, ask_back: bool },
    /// Super-seeding of this blob is over: announce it whole.
    Whole,
}

impl SuperSeeds {
    pub(crate) fn new(config: SuperSeedConfig) -> Self {
        Self {
            start: Instant::now(),
            config,
            inner: Mutex::default(),
            first_source_only: false,
            fetched: Mutex::default(),
            salt: 0,
        }
    }

    /// The super-seeds of an endpoint in `mode` whose upload is capped at
    /// `upload_limit`; `None` if it does not super-seed.
    pub(crate) fn for_mode(
        mode: SuperSeedMode,
        upload_limit: Option<u64>,
        me: NodeId,
    ) -> Option<Self> {
        let salt = u64::from_le_bytes(me.as_bytes()[..8].try_into().unwrap_or([0; 8]));
        let this = match mode {
            SuperSeedMode::Off => None,
            // Not `auto`: once every piece has left, a newcomer is to take
            // them from the peers that hold them, not get a second copy
            // here; a piece whose holders all went away is offered again.
            SuperSeedMode::On => Some(Self::new(SuperSeedConfig::default())),
            SuperSeedMode::Auto => upload_limit.map(|_| Self {
                first_source_only: true,
                ..Self::new(SuperSeedConfig::default())
            }),
        };
        this.map(|s| Self { salt, ..s })
    }

    /// This node fetched (part of) `hash`: it was not its first source.
    pub(crate) fn fetched(&self, hash: Hash) {
        if self.first_source_only {
            self.fetched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(hash);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Hash, Blob>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// `peer` asked on connection `conn` about `hash`, a complete blob of
    /// `size` bytes here. Blobs of one piece are not super-seeded (there is
    /// nothing to spread): `None`, announce it whole. Starts the blob's
    /// timer when it is new.
    pub(crate) fn asked(
        self: &Arc<Self>,
        haves: &Arc<Haves>,
        hash: Hash,
        size: u64,
        peer: NodeId,
        conn: usize,
    ) -> Option<Answer> {
        let groups = content::group_count(size).max(1);
        let per = Config::default().groups_per_piece(groups);
        let pieces = groups.div_ceil(per);
        if pieces < 2 {
            return None;
        }
        if self.first_source_only
            && self
                .fetched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&hash)
        {
            return None;
        }
        let now = self.now();
        let mut g = self.lock();
        let fresh = !g.contains_key(&hash);
        let blob = g.entry(hash).or_insert_with(|| Blob {
            size,
            per,
            pieces,
            seed: SuperSeed::new(
                pieces as usize,
                self.config.clone(),
                u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or([0; 8])) ^ self.salt,
            ),
            conns: HashMap::new(),
            wake: Arc::new(Notify::new()),
        });
        if !blob.seed.is_super() {
            return Some(Answer::Whole);
        }
        let ask_back = blob.conns.insert(peer, conn) != Some(conn);
        // What it holds arrives with the answer to this node's own Ask.
        blob.seed.handle_connected(peer, [], now);
        // Send the others' offers; the asker's new ones are in `told`,
        // and this answer lists everything it was told: it may be asking
        // again (a new fetch).
        flush(hash, blob, haves, Some(peer));
        let mine: Vec<u32> = blob.seed.told(&peer).iter().map(|p| p.0).collect();
        let have = blob.have(hash, &mine);
        let wake = blob.wake.clone();
        drop(g);
        wake.notify_one();
        if fresh {
            self.spawn_timer(haves.clone(), hash);
        }
        Some(Answer::Offer { have, ask_back })
    }

    /// This node served `ranges` (chunks) of `hash` to `peer`.
    pub(crate) fn served(&self, haves: &Haves, hash: &Hash, peer: NodeId, ranges: &ChunkRanges) {
        let now = self.now();
        let mut g = self.lock();
        let Some(blob) = g.get_mut(hash) else {
            return;
        };
        let groups = GroupSet::of_chunks(&content::truncate_ranges(ranges, blob.size));
        for p in blob.pieces_in(&groups) {
            blob.seed.handle_served(&peer, p, now);
        }
        flush(*hash, blob, haves, None);
        blob.wake.notify_one();
    }

    /// `peer` holds these groups of a blob (its answer to this node's
    /// `Ask`, or a `Have` on its control stream).
    pub(crate) fn peer_has(&self, haves: &Haves, peer: NodeId, have: &Have) {
        let now = self.now();
        let mut g = self.lock();
        let Some(blob) = g.get_mut(&have.hash) else {
            return;
        };
        if have.size != blob.size || !blob.conns.contains_key(&peer) {
            return;
        }
        let groups = have.groups.to_groups(blob.size);
        for p in blob.pieces_in(&groups) {
            blob.seed.handle_have(&peer, p, now);
        }
        flush(have.hash, blob, haves, None);
        blob.wake.notify_one();
    }

    /// Connection `conn` to `peer` closed.
    pub(crate) fn disconnected(&self, haves: &Haves, peer: NodeId, conn: usize) {
        let now = self.now();
        let mut g = self.lock();
        for (hash, blob) in g.iter_mut() {
            if blob.conns.get(&peer) == Some(&conn) {
                blob.conns.remove(&peer);
                blob.seed.handle_disconnected(&peer, now);
                flush(*hash, blob, haves, None);
                blob.wake.notify_one();
            }
        }
    }

    /// Pieces of `hash` that have left this node or are seen elsewhere.
    #[cfg(test)]
    pub(crate) fn pieces_out(&self, hash: &Hash) -> usize {
        self.lock().get(hash).map_or(0, |b| b.seed.pieces_out())
    }

    /// The blob's timer: `handle_timeout` when the policy asks for it. Ends
    /// with super-seeding of the blob, or when no peer is left.
    fn spawn_timer(self: &Arc<Self>, haves: Arc<Haves>, hash: Hash) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let (wake, deadline) = {
                    let Some(me) = me.upgrade() else { return };
                    let now = me.now();
                    let mut g = me.lock();
                    let Some(blob) = g.get_mut(&hash) else { return };
                    blob.seed.handle_timeout(now);
                    flush(hash, blob, &haves, None);
                    if !blob.seed.is_super() || blob.conns.is_empty() {
                        // Over, or nobody left to offer to: a later asker
                        // starts afresh.
                        if blob.conns.is_empty() {
                            g.remove(&hash);
                        }
                        return;
                    }
                    let deadline = blob.seed.poll_timeout().map(|t| me.start + t);
                    (blob.wake.clone(), deadline)
                };
                match deadline {
                    Some(at) => {
                        let at = tokio::time::Instant::from_std(at);
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {}
                            () = wake.notified() => {}
                        }
                    }
                    // Nothing due: wait for news, and look now and then
                    // whether the endpoint is gone (its `Ctx` holds the
                    // only strong reference).
                    None => {
                        tokio::select! {
                            () = tokio::time::sleep(IDLE_CHECK) => {}
                            () = wake.notified() => {}
                        }
                    }
                }
            }
        });
    }
}

/// Send what the policy says to announce; the pieces for `keep` (an asker
/// whose answer is being written) are returned instead of sent.
fn flush(hash: Hash, blob: &mut Blob, haves: &Haves, keep: Option<NodeId>) -> Vec<u32> {
    let mut by_peer: HashMap<NodeId, Vec<u32>> = HashMap::new();
    while let Some((peer, PieceId(p))) = blob.seed.poll_advertise() {
        by_peer.entry(peer).or_default().push(p);
    }
    let mut kept = Vec::new();
    for (peer, pieces) in by_peer {
        if Some(peer) == keep {
            kept = pieces;
            continue;
        }
        if let Some(&conn) = blob.conns.get(&peer) {
            haves.send_to(conn, Message::Have(blob.have(hash, &pieces)));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_in_counts_whole_pieces_only_the_last_one_short() {
        // 40 groups and a short last group: pieces of 16 groups are 0..16,
        // 16..32 and 32..40.
        let size = 39 * content::GROUP_SIZE + 100;
        let blob = Blob {
            size,
            per: 16,
            pieces: 3,
            seed: SuperSeed::new(3, SuperSeedConfig::default(), 1),
            conns: HashMap::new(),
            wake: Arc::new(Notify::new()),
        };
        let set = |r: &[(u64, u64)]| {
            let mut g = GroupSet::new();
            r.iter().for_each(|&(a, b)| g.insert(a, b));
            g
        };
        let ids = |g: GroupSet| blob.pieces_in(&g).iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(ids(set(&[(0, 40)])), vec![0, 1, 2]);
        assert_eq!(ids(set(&[(16, 40)])), vec![1, 2]);
        // Part of a piece is not the piece.
        assert_eq!(ids(set(&[(1, 31)])), Vec::<u32>::new());
        assert_eq!(ids(set(&[(0, 16), (33, 40)])), vec![0]);
        assert_eq!(ids(set(&[(32, 40)])), vec![2]);
    }
}
