//! Release gossip, the policy half (wire.md §3.9, §3.10): which received
//! records are worth a policy check, which peers an accepted one goes to,
//! and the bounds that keep a peer from making this node work for it:
//! dedup by record hash, a hop limit, a rate per peer and per publisher,
//! and strikes that end in a ban.
//!
//! Pure: the caller passes `now`, decodes the record, runs the trust
//! policy, and does the sending. `net::gossip` is the driver.
//!
//! ```
//! use std::time::Instant;
//! use swarm_engine::Hash;
//! use swarm_engine::release::gossip::{Checked, Gossip, Verdict};
//! use swarm_engine::wire::{MAX_HOPS, Subject};
//!
//! let app = Subject { publisher: [1; 32], name: "app".into(), channel: "stable".into() };
//! let mut g = Gossip::default();
//! g.follow_local(vec![app.clone()]);
//! let now = Instant::now();
//! let (a, b) = (1, 2);
//! g.peer_up(a, [1; 32], now); // connection a, to node [1; 32]
//! g.peer_up(b, [2; 32], now);
//! g.peer_follows(b, vec![app.clone()], now);
//! // A record from peer a about something followed here is worth checking...
//! let record = Hash::of(b"record");
//! assert_eq!(g.received(a, now, record, &app), Verdict::Check);
//! // ...and once the policy accepted it as newer, it goes on to b, one hop less.
//! let fwd = g.checked(Some(a), &app, record, Checked::Newer, MAX_HOPS);
//! assert_eq!(fwd.to, vec![b]);
//! assert_eq!(fwd.hops, MAX_HOPS - 1);
//! // The same record again is a duplicate, checked once only.
//! assert!(matches!(g.received(b, now, record, &app), Verdict::Drop(_)));
//! ```

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::content::Hash;
use crate::wire::{MAX_HOPS, Subject};

/// A connection, as the driver numbers them.
pub type ConnId = usize;

/// The bounds of gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Messages (`Follow` or `Release`) a peer may send in a burst.
    pub peer_burst: u32,
    /// After the burst, one more each this long.
    pub peer_every: Duration,
    /// Records of one publisher checked in a burst, from all peers.
    pub publisher_burst: u32,
    /// After the burst, one more each this long.
    pub publisher_every: Duration,
    /// Record hashes remembered as seen (the oldest are forgotten first).
    pub remember: usize,
    /// Record hashes remembered per peer, as known to it.
    pub remember_per_peer: usize,
    /// Strikes after which a peer is banned: each message over its rate,
    /// each record it sent twice, each record the policy refused.
    pub strikes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            peer_burst: 32,
            peer_every: Duration::from_millis(500),
            publisher_burst: 8,
            publisher_every: Duration::from_secs(2),
            remember: 4096,
            remember_per_peer: 256,
            strikes: 16,
        }
    }
}

/// What to do with a received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run the trust policy on it, then report with [`Gossip::checked`].
    Check,
    /// Drop it, counted under this reason.
    Drop(Dropped),
    /// Drop it and close the connection: the peer abuses the protocol.
    Ban(Dropped),
}

/// Why a gossiped record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Dropped {
    /// Seen before.
    Duplicate,
    /// Not for a (publisher, name, channel) followed here.
    Unwanted,
    /// The peer sent more than its rate.
    PeerRate,
    /// More records of this publisher than its rate.
    PublisherRate,
    /// Not a signed release at all.
    Invalid,
    /// The trust policy refused it (untrusted, forged, expired, a rollback).
    Refused,
    /// The node's queue of records waiting for the trust check was full.
    Busy,
}

impl Dropped {
    /// Every reason, for counters.
    pub const ALL: [Dropped; 7] = [
        Self::Duplicate,
        Self::Unwanted,
        Self::PeerRate,
        Self::PublisherRate,
        Self::Invalid,
        Self::Refused,
        Self::Busy,
    ];

    /// A short name, for metrics and logs.
    ///
    /// ```
    /// use swarm_engine::release::gossip::Dropped;
    ///
    /// assert_eq!(Dropped::PeerRate.name(), "peer_rate");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Unwanted => "unwanted",
            Self::PeerRate => "peer_rate",
            Self::PublisherRate => "publisher_rate",
            Self::Invalid => "invalid",
            Self::Refused => "refused",
            Self::Busy => "busy",
        }
    }
}

/// What the trust policy made of a record that was to be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Accepted, and newer than any seen here: recorded, and to be passed on.
    Newer,
    /// Accepted, but not newer (the one seen already, or seen as newer).
    Known,
    /// Refused.
    Refused,
}

/// Where an accepted record goes next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forward {
    /// The connections to send it to.
    pub to: Vec<ConnId>,
    /// The hop count to send.
    pub hops: u8,
    /// A connection to close for abuse.
    pub ban: Option<ConnId>,
}

/// Counters, since the start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GossipStats {
    /// Records received.
    pub received: u64,
    /// Records accepted as newer.
    pub accepted: u64,
    /// Records sent (one per connection).
    pub sent: u64,
    /// Peers banned.
    pub banned: u64,
    /// Records dropped, by reason.
    pub dropped: HashMap<Dropped, u64>,
}

impl GossipStats {
    /// Records dropped for `why`.
    pub fn dropped(&self, why: Dropped) -> u64 {
        self.dropped.get(&why).copied().unwrap_or(0)
    }
}

/// A token bucket.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            last: now,
        }
    }

    fn take(&mut self, burst: u32, every: Duration, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let per_sec = 1.0 / every.as_secs_f64().max(1e-9);
        self.tokens = (self.tokens + elapsed * per_sec).min(f64::from(burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Hashes remembered in a bounded set, the oldest forgotten first.
#[derive(Debug, Clone, Default)]
struct Recent {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl Recent {
    fn contains(&self, h: &Hash) -> bool {
        self.set.contains(h)
    }

    fn remove(&mut self, h: &Hash) {
        self.set.remove(h);
    }

    /// Remember `h`; whether it is new.
    fn insert(&mut self, h: Hash, cap: usize) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        while self.order.len() > cap.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

#[derive(Debug, Clone)]
struct PeerState {
    follows: BTreeSet<Subject>,
    bucket: Bucket,
    strikes: u32,
    /// Records this connection sent here.
    sent_us: Recent,
    /// The node at the other end (one node may have several connections).
    who: [u8; 32],
}

/// The gossip state of one node.
#[derive(Debug, Clone, Default)]
pub struct Gossip {
    limits: Limits,
    local: BTreeSet<Subject>,
    peers: HashMap<ConnId, PeerState>,
    /// Records each peer node sent, or was sent, on any of its
    /// connections: it has them.
    knows: HashMap<[u8; 32], Recent>,
    publishers: HashMap<[u8; 32], Bucket>,
    seen: Recent,
    stats: GossipStats,
}

impl Gossip {
    /// Gossip under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Follow these subjects here (replacing the list); whether it changed,
    /// so that the driver tells its peers.
    pub fn follow_local(&mut self, subjects: Vec<Subject>) -> bool {
        let new: BTreeSet<Subject> = subjects.into_iter().collect();
        let changed = new != self.local;
        self.local = new;
        changed
    }

    /// What this node follows, at most [`crate::wire::MAX_FOLLOWS`] of it
    /// (the first in order), as a `Follow` lists it.
    pub fn local(&self) -> Vec<Subject> {
        self.local
            .iter()
            .take(crate::wire::MAX_FOLLOWS)
            .cloned()
            .collect()
    }

    /// Whether `subject` is followed here.
    pub fn follows(&self, subject: &Subject) -> bool {
        self.local.contains(subject)
    }

    /// A connection that speaks gossip came up, to the node `who`.
    pub fn peer_up(&mut self, conn: ConnId, who: [u8; 32], now: Instant) {
        self.peers.insert(
            conn,
            PeerState {
                follows: BTreeSet::new(),
                bucket: Bucket::full(self.limits.peer_burst, now),
                strikes: 0,
                sent_us: Recent::default(),
                who,
            },
        );
        self.knows.entry(who).or_default();
    }

    /// A connection went down.
    pub fn peer_down(&mut self, conn: ConnId) {
        if let Some(p) = self.peers.remove(&conn)
            && !self.peers.values().any(|q| q.who == p.who)
        {
            self.knows.remove(&p.who);
        }
    }

    fn knows(&mut self, who: [u8; 32]) -> &mut Recent {
        self.knows.entry(who).or_default()
    }

    /// A peer's `Follow`: whether to ban it (it sent them too fast), and
    /// the subjects it follows now and did not before, for the caller to
    /// offer the newest release of each it has ([`Self::offer`]).
    pub fn peer_follows(
        &mut self,
        conn: ConnId,
        subjects: Vec<Subject>,
        now: Instant,
    ) -> (bool, Vec<Subject>) {
        let limits = self.limits.clone();
        let Some(p) = self.peers.get_mut(&conn) else {
            return (false, Vec::new());
        };
        if !p.bucket.take(limits.peer_burst, limits.peer_every, now) {
            p.strikes += 1;
            return (self.over_strikes(conn), Vec::new());
        }
        let new: BTreeSet<Subject> = subjects.into_iter().collect();
        let added = new.difference(&p.follows).cloned().collect();
        p.follows = new;
        (false, added)
    }

    /// Whether to send `record` to `conn`, which just began to follow its
    /// subject: not if it has it. It is remembered as having it.
    pub fn offer(&mut self, conn: ConnId, record: Hash) -> bool {
        let cap = self.limits.remember_per_peer;
        let Some(p) = self.peers.get_mut(&conn) else {
            return false;
        };
        let who = p.who;
        let fresh = self.knows(who).insert(record, cap);
        if fresh {
            self.stats.sent += 1;
        }
        fresh
    }

    /// A `Release` from `conn` whose record decoded, with its hash and
    /// subject: whether to check it. The caller decodes first; a record
    /// that does not decode is reported with [`Self::invalid`].
    pub fn received(
        &mut self,
        conn: ConnId,
        now: Instant,
        record: Hash,
        subject: &Subject,
    ) -> Verdict {
        self.stats.received += 1;
        let limits = self.limits.clone();
        let Some(p) = self.peers.get_mut(&conn) else {
            return self.drop(Dropped::Unwanted);
        };
        if !p.bucket.take(limits.peer_burst, limits.peer_every, now) {
            p.strikes += 1;
            return self.drop_or_ban(conn, Dropped::PeerRate);
        }
        let who = p.who;
        if !p.sent_us.insert(record, limits.remember_per_peer) {
            // An honest peer sends a record once per connection (two
            // peers that accept one at the same time may cross, once).
            p.strikes += 1;
            return self.drop_or_ban(conn, Dropped::Duplicate);
        }
        self.knows(who).insert(record, limits.remember_per_peer);
        if self.seen.contains(&record) {
            return self.drop(Dropped::Duplicate);
        }
        if !self.local.contains(subject) {
            return self.drop(Dropped::Unwanted);
        }
        let bucket = self
            .publishers
            .entry(subject.publisher)
            .or_insert_with(|| Bucket::full(limits.publisher_burst, now));
        if !bucket.take(limits.publisher_burst, limits.publisher_every, now) {
            // Not remembered as seen: a later copy may still get through.
            return self.drop(Dropped::PublisherRate);
        }
        self.seen.insert(record, limits.remember);
        Verdict::Check
    }

    /// A record [`Self::received`] said to check could not be checked
    /// (the checker was busy): forget it was seen, so that a later copy is.
    pub fn unchecked(&mut self, record: Hash) {
        self.seen.remove(&record);
        *self.stats.dropped.entry(Dropped::Busy).or_default() += 1;
    }

    /// A `Release` from `conn` whose record is not a signed release: a
    /// peer that checked what it forwards never sends one.
    pub fn invalid(&mut self, conn: ConnId) -> Verdict {
        self.stats.received += 1;
        *self.stats.dropped.entry(Dropped::Invalid).or_default() += 1;
        self.stats.banned += 1;
        self.peers.remove(&conn);
        Verdict::Ban(Dropped::Invalid)
    }

    /// What the policy made of a record [`Self::received`] said to check
    /// (`from` is its connection), sent with `hops` left: where it goes
    /// next, and whether `from` is now banned.
    pub fn checked(
        &mut self,
        from: Option<ConnId>,
        subject: &Subject,
        record: Hash,
        outcome: Checked,
        hops: u8,
    ) -> Forward {
        match outcome {
            Checked::Newer => {
                self.stats.accepted += 1;
                if hops == 0 {
                    return Forward::default();
                }
                let hops = hops.min(MAX_HOPS) - 1;
                let to = self.targets(subject, record);
                Forward {
                    to,
                    hops,
                    ban: None,
                }
            }
            Checked::Known => Forward::default(),
            Checked::Refused => {
                *self.stats.dropped.entry(Dropped::Refused).or_default() += 1;
                let Some(conn) = from else {
                    return Forward::default();
                };
                if let Some(p) = self.peers.get_mut(&conn) {
                    p.strikes += 1;
                }
                Forward {
                    ban: self.over_strikes(conn).then_some(conn),
                    ..Forward::default()
                }
            }
        }
    }

    /// A release this node accepted by itself (published, fetched, or
    /// resolved on the DHT) and newer than any seen: where it goes, with
    /// the full hop count. `None` when it went out already.
    pub fn originate(&mut self, subject: &Subject, record: Hash) -> Option<Forward> {
        if !self.seen.insert(record, self.limits.remember) {
            return None;
        }
        let to = self.targets(subject, record);
        Some(Forward {
            to,
            hops: MAX_HOPS,
            ban: None,
        })
    }

    /// Whether `conn` is a gossip peer (it came up and is not banned).
    pub fn is_peer(&self, conn: ConnId) -> bool {
        self.peers.contains_key(&conn)
    }

    /// Peers following `subject` that do not know `record` yet; they are
    /// remembered as knowing it.
    fn targets(&mut self, subject: &Subject, record: Hash) -> Vec<ConnId> {
        let cap = self.limits.remember_per_peer;
        let mut conns: Vec<(ConnId, [u8; 32])> = self
            .peers
            .iter()
            .filter(|(_, p)| p.follows.contains(subject))
            .map(|(c, p)| (*c, p.who))
            .collect();
        conns.sort_unstable();
        let mut to = Vec::new();
        for (c, who) in conns {
            // One connection per node: the first that follows it.
            if self.knows(who).insert(record, cap) {
                to.push(c);
            }
        }
        self.stats.sent += to.len() as u64;
        to
    }

    /// Counters.
    pub fn stats(&self) -> &GossipStats {
        &self.stats
    }

    fn drop(&mut self, why: Dropped) -> Verdict {
        *self.stats.dropped.entry(why).or_default() += 1;
        Verdict::Drop(why)
    }

    fn drop_or_ban(&mut self, conn: ConnId, why: Dropped) -> Verdict {
        *self.stats.dropped.entry(why).or_default() += 1;
        if self.over_strikes(conn) {
            Verdict::Ban(why)
        } else {
            Verdict::Drop(why)
        }
    }

    /// Whether `conn` has struck out; if so it is forgotten (and counted).
    fn over_strikes(&mut self, conn: ConnId) -> bool {
        let out = self
            .peers
            .get(&conn)
            .is_some_and(|p| p.strikes >= self.limits.strikes);
        if out {
            self.peers.remove(&conn);
            self.stats.banned += 1;
        }
        out
    }
}

#[cfg(test)]
#[path = "gossip_tests.rs"]
mod tests;
