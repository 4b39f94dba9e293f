//! A discrete-event simulation of many peers around the picker.
//!
//! One process, one virtual clock, one event queue. Every node is a handful
//! of fields; every leecher runs its own [`Swarm`] keyed by node index, and
//! the driver loop does what the network driver does: after each event it
//! polls the affected node's swarm for every connected peer and sends the
//! requests, reports deliveries and failures back, cancels the duplicates
//! `piece_done` names, and announces each completed piece. Nothing reads a
//! clock or an OS random source: the seed fixes the whole run.
//!
//! The model is kept simple where the picker cannot tell the difference:
//! - A node's upload capacity is shared equally by the requesters it has
//!   responses queued for (as congestion control shares a link between
//!   connections); each requester's responses go out one at a time, in
//!   order. A cancelled response stops consuming capacity at once.
//! - A download cap is a second FIFO stage at the receiver (store and
//!   forward): the right throughput, a little extra latency.
//! - A link's one-way latency is the sum of its two ends'. A lost message
//!   arrives one RTO (3 RTT) later, possibly several times over.
//! - A request with nothing received from its peer for
//!   [`SimConfig::request_timeout`] is reported
//!   [`Failure::Lost`](super::Failure::Lost) and the connection is dropped.
//! - Connections are a full mesh among present nodes (two seeds do not
//!   bother) under [`Mesh::Full`]; under [`Mesh::Partial`] a node finds a
//!   few peers per lookup of a tracker that knows every present node, and
//!   more through peer exchange, and keeps within its connection limits
//!   (see `mesh.rs`). The bitfield is exchanged when a connection opens,
//!   and `Have` messages follow. A seed configured to super-seed
//!   announces only what its [`SuperSeed`] says.
//!
//! After a `Have` only its sender is polled: no other peer can have gained
//! work from it, and polling all of them made a 1,024-piece, 9-node run
//! over twice as slow. Every other event polls all the node's peers, and
//! a node is also polled when its picker's `poll_timeout` says (late
//! requests become stealable with time alone), exactly as the real driver
//! wakes.

mod mesh;
mod spec;
mod transfer;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

pub use self::spec::{
    Behaviour, KIB, Leave, MIB, Mesh, MeshConfig, NodeReport, NodeSpec, Outcome, Report,
    ServeOrder, SimConfig,
};
use super::{BlobSpec, Config, PieceId, SuperSeed, Swarm};
use crate::content::{self, GROUP_SIZE};
use crate::store::GroupSet;

#[derive(Debug, Clone, Copy)]
struct PieceInfo {
    blob: usize,
    start: u64,
    end: u64,
    bytes: u64,
}

/// The piece layout [`Swarm::new`] makes, computed independently so the
/// driver can check every request against it.
fn layout(blobs: &[u64], config: &Config) -> Vec<PieceInfo> {
    let mut out = Vec::new();
    for (blob, &size) in blobs.iter().enumerate() {
        let groups = content::group_count(size).max(1);
        let per = config.groups_per_piece(groups);
        let mut start = 0;
        while start < groups {
            let end = (start + per).min(groups);
            let bytes = (end * GROUP_SIZE).min(size) - (start * GROUP_SIZE).min(size);
            out.push(PieceInfo {
                blob,
                start,
                end,
                bytes,
            });
            start = end;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Reply {
    Data { good: bool },
    NotHeld,
}

#[derive(Debug, Clone, Copy, Hash)]
enum Event {
    Join(u32),
    Leave(u32),
    Connect(u32, u32),
    /// A request arrives at the server `to`.
    Request {
        to: u32,
        from: u32,
        id: u64,
        piece: u32,
    },
    /// The server's next response is sent (if `generation` is still current).
    Wake {
        server: u32,
        generation: u64,
    },
    /// A reply arrives at the fetcher `to` (through its download stage once
    /// `downloaded`).
    Reply {
        to: u32,
        from: u32,
        id: u64,
        piece: u32,
        reply: Reply,
        downloaded: bool,
    },
    Have {
        to: u32,
        from: u32,
        piece: u32,
    },
    Cancel {
        to: u32,
        from: u32,
        id: u64,
    },
    /// `from` closed its connection to `to`.
    Close {
        to: u32,
        from: u32,
    },
    Timeout {
        node: u32,
        peer: u32,
        id: u64,
    },
    Tick(u32),
    /// A node's lookup answers.
    Lookup(u32),
    /// Addresses of `from`'s peers: `Sim::pex_msgs[msg]` (`NONE` pads;
    /// kept aside so that every event stays small).
    Pex {
        to: u32,
        from: u32,
        msg: u32,
    },
    /// A super-seed's timer.
    SeedTick(u32),
}

/// Most addresses in one peer exchange message.
const PEX_MAX: usize = 8;
const NONE: u32 = u32::MAX;

struct Queued {
    /// Nanoseconds of virtual time (a `Duration` takes twice the room, and
    /// the queue's size is much of the simulation's time).
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    // Reversed: the heap pops the earliest, then the first queued.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Waiting,
    Present,
    Gone,
}

#[derive(Debug, Clone, Copy)]
struct Serve {
    id: u64,
    to: u32,
    piece: u32,
    /// Bytes still to send.
    left: f64,
}

#[derive(Debug, Clone, Copy)]
struct Out {
    peer: u32,
    piece: u32,
    sent: Duration,
}

struct Node {
    presence: Presence,
    have: Vec<bool>,
    held: usize,
    groups: Vec<GroupSet>,
    swarm: Option<Swarm<u32>>,
    /// Nodes connected to this one.
    peers: BTreeSet<u32>,
    // Serving: a queue per requester (none empty), the heads sent at once.
    conns: BTreeMap<u32, VecDeque<Serve>>,
    /// Requesters with responses queued, in turn (with upload slots).
    order: VecDeque<u32>,
    /// When the heads' `left` was brought up to date.
    served_at: Duration,
    /// Generation of the pending `Wake`.
    wake: u64,
    down_free: Duration,
    // Fetching.
    out: BTreeMap<u64, Out>,
    by_piece: BTreeMap<u32, Vec<(u32, u64)>>,
    per_peer: BTreeMap<u32, usize>,
    last_rx: BTreeMap<u32, Duration>,
    /// The wake-up the picker asked for, pending.
    picker_wake: Option<Duration>,
    leave_fired: bool,
    report: NodeReport,
    // The partial mesh.
    /// Connected peers it dialed.
    outbound: BTreeSet<u32>,
    /// Dials on the way, and whether the address came from an exchange.
    dialing: BTreeMap<u32, bool>,
    /// Addresses known and not connected, and whether from an exchange.
    book: Vec<(u32, bool)>,
    /// Addresses pushed to each connected peer so far.
    pushed: BTreeMap<u32, usize>,
    backoff: Duration,
    lookup_pending: bool,
    /// A seed's announcements when it super-seeds.
    super_seed: Option<SuperSeed<u32>>,
    seed_wake: Option<Duration>,
}

/// The simulation. Build with [`Sim::new`], then [`Sim::run`].
pub struct Sim {
    cfg: SimConfig,
    specs: Vec<NodeSpec>,
    blob_specs: Vec<BlobSpec>,
    layout: Vec<PieceInfo>,
    nodes: Vec<Node>,
    queue: BinaryHeap<Queued>,
    /// Request timeouts, apart: most are for requests long answered, and
    /// they would be most of `queue` (one per request, 10 s ahead), making
    /// every other event's way through it longer. Events leave the two in
    /// one order, by time and then by when they were queued.
    timers: BinaryHeap<Queued>,
    seq: u64,
    now: Duration,
    rng: u64,
    next_id: u64,
    events: u64,
    /// Fixed keys: the same events hash the same in every run.
    digest: DefaultHasher,
    pending_joins: usize,
    /// Leechers neither complete nor gone.
    unfinished: usize,
    /// Some node leaves at a progress mark (the average is then kept).
    progress_leaves: bool,
    /// The tracker: nodes present, and each one's place in that list.
    present_list: Vec<u32>,
    present_pos: Vec<u32>,
    /// The addresses of every peer exchange message.
    pex_msgs: Vec<[u32; PEX_MAX]>,
}

impl Sim {
    /// A simulation of `specs` under `cfg`.
    pub fn new(cfg: SimConfig, specs: Vec<NodeSpec>) -> Self {
        let blob_specs: Vec<BlobSpec> = cfg
            .blobs
            .iter()
            .map(|&size| BlobSpec {
                size,
                present: GroupSet::new(),
            })
            .collect();
        let layout = layout(&cfg.blobs, &cfg.picker);
        let check = Swarm::<u32>::new(&blob_specs, cfg.picker.clone(), 0);
        assert_eq!(check.piece_count(), layout.len(), "piece layout");
        let nodes = specs
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let mut groups = vec![GroupSet::new(); cfg.blobs.len()];
                if s.seed {
                    for (g, &size) in groups.iter_mut().zip(&cfg.blobs) {
                        g.insert(0, content::group_count(size).max(1));
                    }
                }
                Node {
                    presence: Presence::Waiting,
                    have: vec![s.seed; layout.len()],
                    held: if s.seed { layout.len() } else { 0 },
                    groups,
                    swarm: None,
                    peers: BTreeSet::new(),
                    conns: BTreeMap::new(),
                    order: VecDeque::new(),
                    served_at: Duration::ZERO,
                    wake: 0,
                    down_free: Duration::ZERO,
                    out: BTreeMap::new(),
                    by_piece: BTreeMap::new(),
                    per_peer: BTreeMap::new(),
                    last_rx: BTreeMap::new(),
                    picker_wake: None,
                    leave_fired: false,
                    report: NodeReport {
                        seed: s.seed,
                        behaviour: Some(s.behaviour),
                        ..NodeReport::default()
                    },
                    outbound: BTreeSet::new(),
                    dialing: BTreeMap::new(),
                    book: Vec::new(),
                    pushed: BTreeMap::new(),
                    backoff: Duration::ZERO,
                    lookup_pending: false,
                    super_seed: cfg.super_seed.clone().filter(|_| s.seed).map(|c| {
                        SuperSeed::new(layout.len(), c, mix(cfg.seed ^ mix(n as u64 + 7)))
                    }),
                    seed_wake: None,
                }
            })
            .collect();
        let rng = cfg.seed ^ 0x5eed_f00d_5111;
        let unfinished = specs.iter().filter(|s| !s.seed).count();
        let progress_leaves = specs
            .iter()
            .any(|s| matches!(s.leave, Some(Leave::AtProgress(_))));
        let count = specs.len();
        Self {
            cfg,
            specs,
            blob_specs,
            layout,
            nodes,
            queue: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
            rng,
            next_id: 0,
            events: 0,
            digest: DefaultHasher::new(),
            pending_joins: 0,
            unfinished,
            progress_leaves,
            present_list: Vec::new(),
            present_pos: vec![NONE; count],
            pex_msgs: Vec::new(),
        }
    }

    /// Run to the end: every leecher complete, nothing left to happen, or
    /// a limit.
    pub fn run(mut self) -> Report {
        for n in 0..self.nodes.len() as u32 {
            let spec = &self.specs[n as usize];
            let (join, leave) = (spec.join, spec.leave);
            if !spec.seed {
                self.pending_joins += 1;
            }
            self.push(join, Event::Join(n));
            if let Some(Leave::At(t)) = leave {
                self.push(t, Event::Leave(n));
            }
        }
        let outcome = loop {
            if self.pending_joins == 0 && self.leechers_done() {
                break Outcome::Complete;
            }
            // The heaps order in reverse: the greater is the earlier.
            let timer_first = match (self.queue.peek(), self.timers.peek()) {
                (Some(q), Some(t)) => t > q,
                (None, t) => t.is_some(),
                (Some(_), None) => false,
            };
            let next = if timer_first {
                self.timers.pop()
            } else {
                self.queue.pop()
            };
            let Some(q) = next else {
                break Outcome::Stuck;
            };
            let at = Duration::from_nanos(q.at);
            if at > self.cfg.time_limit || self.events >= self.cfg.max_events {
                break Outcome::Limit;
            }
            self.now = at;
            self.events += 1;
            (at, q.event).hash(&mut self.digest);
            for n in self.handle(q.event).into_iter().flatten() {
                self.poll(n);
            }
        };
        self.report(outcome)
    }

    fn leechers_done(&self) -> bool {
        self.unfinished == 0
    }

    fn report(self, outcome: Outcome) -> Report {
        let count = self.nodes.len() as u32;
        let nodes = self
            .nodes
            .into_iter()
            .map(|mut n| {
                if let Some(swarm) = &n.swarm {
                    n.report.banned = (0..count).filter(|k| swarm.is_banned(k)).collect();
                    if n.presence == Presence::Present {
                        n.report.can_progress = Some(swarm.can_progress());
                    }
                    if swarm.is_complete() != (n.held == n.have.len()) {
                        n.report.violations.push("is_complete disagrees".into());
                    }
                }
                n.report.missing = (0..n.have.len() as u32)
                    .filter(|&i| !n.have[i as usize])
                    .collect();
                n.report
            })
            .collect();
        Report {
            outcome,
            end: self.now,
            events: self.events,
            digest: self.digest.finish(),
            total_bytes: self.cfg.blobs.iter().sum(),
            nodes,
        }
    }

    fn push(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        let heap = if matches!(event, Event::Timeout { .. }) {
            &mut self.timers
        } else {
            &mut self.queue
        };
        heap.push(Queued {
            at: u64::try_from(at.as_nanos()).unwrap_or(u64::MAX),
            seq: self.seq,
            event,
        });
    }

    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.rng)
    }

    /// One-way delay of a message from `a` to `b`, resends included.
    fn delay(&mut self, a: u32, b: u32) -> Duration {
        let (sa, sb) = (&self.specs[a as usize], &self.specs[b as usize]);
        let base = sa.latency + sb.latency;
        let loss = (1.0 - (1.0 - sa.loss) * (1.0 - sb.loss)).clamp(0.0, 0.9);
        let rto = (base * 6).max(Duration::from_millis(1));
        let mut d = base;
        while loss > 0.0 && ((self.random() >> 11) as f64 / (1u64 << 53) as f64) < loss {
            d += rto;
        }
        d
    }

    fn send(&mut self, from: u32, to: u32, event: Event) {
        let at = self.now + self.delay(from, to);
        self.push(at, event);
    }

    fn present(&self, n: u32) -> bool {
        self.nodes[n as usize].presence == Presence::Present
    }

    /// Whether `n` is present and connected to `peer`.
    fn linked(&self, n: u32, peer: u32) -> bool {
        self.present(n) && self.nodes[n as usize].peers.contains(&peer)
    }

    /// Apply one event; returns the nodes whose swarms may want to send.
    fn handle(&mut self, event: Event) -> [Option<u32>; 2] {
        match event {
            Event::Join(n) => self.join(n),
            Event::Leave(n) => self.leave(n),
            Event::Connect(a, b) => return self.connect(a, b),
            Event::Request {
                to,
                from,
                id,
                piece,
            } => self.request(to, from, id, piece),
            Event::Wake { server, generation } => self.wake(server, generation),
            Event::Reply {
                to,
                from,
                id,
                piece,
                reply,
                downloaded,
            } => {
                if self.reply(to, from, id, piece, reply, downloaded) {
                    return [Some(to), None];
                }
            }
            Event::Have { to, from, piece } => {
                if self.linked(to, from) && self.nodes[to as usize].super_seed.is_some() {
                    if let Some(ss) = &mut self.nodes[to as usize].super_seed {
                        ss.handle_have(&from, PieceId(piece), self.now);
                    }
                    self.flush_seed(to);
                } else if self.linked(to, from) {
                    let p = self.layout[piece as usize];
                    let mut groups = GroupSet::new();
                    groups.insert(p.start, p.end);
                    if let Some(swarm) = &mut self.nodes[to as usize].swarm {
                        swarm.peer_has(&from, p.blob, &groups);
                        // Only the sender can have gained work: every other
                        // peer was polled after the last event that could
                        // give it some (and ticks cover time passing).
                        self.poll_peers(to, &[from]);
                    }
                }
            }
            Event::Cancel { to, from, id } => {
                if self.linked(to, from) {
                    self.unserve(to, |s| s.id == id);
                }
            }
            Event::Close { to, from } => {
                if self.linked(to, from) {
                    self.drop_peer(to, from);
                    return [Some(to), None];
                }
            }
            Event::Timeout { node, peer, id } => {
                if self.timeout(node, peer, id) {
                    return [Some(node), None];
                }
            }
            Event::Tick(n) => {
                // A wake-up that a later, earlier one replaced still polls
                // (harmlessly); the pending one is cleared once due.
                let node = &mut self.nodes[n as usize];
                if node.picker_wake.is_some_and(|w| w <= self.now) {
                    node.picker_wake = None;
                }
                return [Some(n), None];
            }
            Event::Lookup(n) => return self.lookup(n),
            Event::Pex { to, from, msg } => {
                let addrs = self.pex_msgs[msg as usize];
                return self.pex(to, from, addrs);
            }
            Event::SeedTick(n) => {
                let now = self.now;
                let node = &mut self.nodes[n as usize];
                if node.seed_wake.is_some_and(|w| w <= now) {
                    node.seed_wake = None;
                }
                if let Some(ss) = &mut node.super_seed {
                    ss.handle_timeout(now);
                }
                self.flush_seed(n);
            }
        }
        [None, None]
    }

    fn join(&mut self, n: u32) {
        let seed = self.specs[n as usize].seed;
        if !seed {
            self.pending_joins -= 1;
        }
        if self.nodes[n as usize].presence != Presence::Waiting {
            return;
        }
        let node = &mut self.nodes[n as usize];
        node.presence = Presence::Present;
        node.report.joined = Some(self.now);
        if !seed {
            let swarm_seed = mix(self.cfg.seed ^ mix(u64::from(n) + 1));
            let mut swarm = Swarm::new(&self.blob_specs, self.cfg.picker.clone(), swarm_seed);
            // As the network driver does: its key as its peers know it.
            swarm.set_me(n);
            node.swarm = Some(swarm);
        }
        self.present_pos[n as usize] = self.present_list.len() as u32;
        self.present_list.push(n);
        if let Mesh::Partial(mesh) = self.cfg.mesh {
            if !seed {
                self.nodes[n as usize].backoff = mesh.lookup_backoff;
                self.start_lookup(n);
            }
            return;
        }
        for m in 0..self.nodes.len() as u32 {
            if m != n && self.present(m) && !(seed && self.specs[m as usize].seed) {
                self.send(n, m, Event::Connect(n, m));
            }
        }
    }

    fn leave(&mut self, n: u32) {
        let node = &mut self.nodes[n as usize];
        if node.presence != Presence::Gone && !node.report.seed && node.report.completed.is_none() {
            self.unfinished -= 1;
        }
        if node.presence == Presence::Present {
            // Out of the tracker.
            let at = self.present_pos[n as usize] as usize;
            self.present_list.swap_remove(at);
            if let Some(&moved) = self.present_list.get(at) {
                self.present_pos[moved as usize] = at as u32;
            }
            self.present_pos[n as usize] = NONE;
        }
        let node = &mut self.nodes[n as usize];
        match node.presence {
            Presence::Waiting => node.presence = Presence::Gone,
            Presence::Gone => {}
            Presence::Present => {
                node.presence = Presence::Gone;
                node.report.left = Some(self.now);
                let peers = std::mem::take(&mut node.peers);
                node.conns.clear();
                node.order.clear();
                node.wake += 1;
                node.out.clear();
                node.by_piece.clear();
                node.per_peer.clear();
                for p in peers {
                    self.send(n, p, Event::Close { to: p, from: n });
                }
            }
        }
    }

    fn connect(&mut self, a: u32, b: u32) -> [Option<u32>; 2] {
        let from_pex = self.nodes[a as usize].dialing.remove(&b);
        let banned = |x: u32, y: u32| {
            self.nodes[x as usize]
                .swarm
                .as_ref()
                .is_some_and(|s| s.is_banned(&y))
        };
        let refused = !self.present(a)
            || !self.present(b)
            || self.nodes[a as usize].peers.contains(&b)
            || banned(a, b)
            || banned(b, a)
            || self.mesh_refuses(a, b);
        if refused {
            if from_pex.is_some() {
                self.nodes[a as usize].report.refused += 1;
                self.dial_more(a);
            }
            return [None, None];
        }
        let rtt = 2 * (self.specs[a as usize].latency + self.specs[b as usize].latency);
        let now = self.now;
        for (x, y) in [(a, b), (b, a)] {
            let y_seed = self.specs[y as usize].seed;
            // A super-seed's bitfield is empty: it announces piece by piece.
            let y_super = self.nodes[y as usize]
                .super_seed
                .as_ref()
                .is_some_and(SuperSeed::is_super);
            let y_groups = self.nodes[y as usize].groups.clone();
            let y_has: Vec<PieceId> = (0..self.layout.len() as u32)
                .filter(|&i| self.nodes[y as usize].have[i as usize])
                .map(PieceId)
                .collect();
            let node = &mut self.nodes[x as usize];
            node.peers.insert(y);
            node.report.max_peers = node.report.max_peers.max(node.peers.len());
            if let Some(ss) = &mut node.super_seed {
                ss.handle_connected(y, y_has, now);
            }
            let Some(swarm) = &mut node.swarm else {
                continue;
            };
            if !swarm.add_peer(y) {
                node.report
                    .violations
                    .push(format!("add_peer({y}) refused"));
                continue;
            }
            swarm.set_rtt(&y, rtt);
            if y_super {
                for blob in 0..y_groups.len() {
                    swarm.peer_has(&y, blob, &GroupSet::new());
                }
            } else if y_seed {
                swarm.peer_has_all(&y);
            } else {
                for (blob, groups) in y_groups.iter().enumerate() {
                    swarm.peer_has(&y, blob, groups);
                }
            }
        }
        if let Some(from_pex) = from_pex {
            self.opened(a, b, from_pex);
        }
        self.flush_seed(a);
        self.flush_seed(b);
        [Some(a), Some(b)]
    }

    /// Whether `n` holds everything (a seed, or a leecher that completed).
    fn done(&self, n: u32) -> bool {
        let node = &self.nodes[n as usize];
        node.held == node.have.len()
    }

    /// Send what `n`'s super-seed says to announce, and wake it when it asks.
    fn flush_seed(&mut self, n: u32) {
        let Some(ss) = &mut self.nodes[n as usize].super_seed else {
            return;
        };
        let mut out = Vec::new();
        while let Some(a) = ss.poll_advertise() {
            out.push(a);
        }
        let wake = ss.poll_timeout();
        for (peer, PieceId(piece)) in out {
            if self.linked(n, peer) {
                self.send(
                    n,
                    peer,
                    Event::Have {
                        to: peer,
                        from: n,
                        piece,
                    },
                );
            }
        }
        let node = &mut self.nodes[n as usize];
        if let Some(at) = wake.map(|at| at.max(self.now))
            && node.seed_wake.is_none_or(|w| at < w)
        {
            node.seed_wake = Some(at);
            self.push(at, Event::SeedTick(n));
        }
    }
}

/// splitmix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
