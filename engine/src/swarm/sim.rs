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
//!   [`SimConfig::request_timeout`] is reported [`Failure::Lost`] and the
//!   connection is dropped.
//! - Connections are a full mesh among present nodes (two seeds do not
//!   bother); the bitfield is exchanged when a connection opens, and `Have`
//!   messages follow.
//!
//! After a `Have` only its sender is polled: no other peer can have gained
//! work from it, and polling all of them made a 1,024-piece, 9-node run
//! over twice as slow. Every other event polls all the node's peers, and
//! a node with requests in flight is polled every [`SimConfig::tick`] (late
//! requests become stealable with time alone).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use super::{BlobSpec, Config, Failure, PieceId, Request, Swarm};
use crate::content::{self, GROUP_SIZE};
use crate::store::GroupSet;

pub(super) const KIB: u64 = 1024;
pub(super) const MIB: u64 = 1024 * KIB;

/// How a node answers requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Behaviour {
    Honest,
    /// Its data fails verification.
    Corrupt,
    /// Accepts requests and never answers.
    Blackhole,
    /// Uploads at [`SimConfig::slow_rate`] whatever its capacity.
    Slow,
}

/// When a node leaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Leave {
    At(Duration),
    /// When the leechers' average progress reaches this fraction.
    AtProgress(f64),
}

/// One simulated node.
#[derive(Debug, Clone)]
pub(super) struct NodeSpec {
    pub(super) seed: bool,
    /// Upload capacity, bytes per second.
    pub(super) up: u64,
    /// Download capacity, bytes per second (None: unlimited).
    pub(super) down: Option<u64>,
    /// This end's share of a link's one-way latency.
    pub(super) latency: Duration,
    /// Probability that a message to or from it is lost (and resent).
    pub(super) loss: f64,
    pub(super) behaviour: Behaviour,
    pub(super) join: Duration,
    pub(super) leave: Option<Leave>,
}

impl NodeSpec {
    pub(super) fn seed(up: u64) -> Self {
        Self {
            seed: true,
            up,
            down: None,
            latency: Duration::from_millis(5),
            loss: 0.0,
            behaviour: Behaviour::Honest,
            join: Duration::ZERO,
            leave: None,
        }
    }

    pub(super) fn leecher(up: u64) -> Self {
        Self {
            seed: false,
            ..Self::seed(up)
        }
    }

    pub(super) fn latency_ms(mut self, ms: u64) -> Self {
        self.latency = Duration::from_millis(ms);
        self
    }

    pub(super) fn down(mut self, rate: u64) -> Self {
        self.down = Some(rate);
        self
    }

    pub(super) fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    pub(super) fn behaviour(mut self, b: Behaviour) -> Self {
        self.behaviour = b;
        self
    }

    pub(super) fn join_at(mut self, t: Duration) -> Self {
        self.join = t;
        self
    }

    pub(super) fn leave(mut self, l: Leave) -> Self {
        self.leave = Some(l);
        self
    }
}

/// The simulation as a whole.
#[derive(Debug, Clone)]
pub(super) struct SimConfig {
    /// Blob sizes.
    pub(super) blobs: Vec<u64>,
    pub(super) picker: Config,
    pub(super) seed: u64,
    /// Idle time after which an unanswered request is `Lost`.
    pub(super) request_timeout: Duration,
    /// How often a leecher with requests in flight polls anyway (stealing
    /// depends on time alone).
    pub(super) tick: Duration,
    /// Upload capacity of [`Behaviour::Slow`] nodes.
    pub(super) slow_rate: u64,
    pub(super) time_limit: Duration,
    pub(super) max_events: u64,
}

impl SimConfig {
    pub(super) fn new(blobs: Vec<u64>, seed: u64) -> Self {
        Self {
            blobs,
            picker: Config::default(),
            seed,
            request_timeout: Duration::from_secs(10),
            tick: Duration::from_millis(100),
            slow_rate: 64 * KIB,
            time_limit: Duration::from_secs(3600),
            max_events: 5_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Every leecher still present completed.
    Complete,
    /// Nothing left to happen: no event queued.
    Stuck,
    /// The time or event limit was reached.
    Limit,
}

/// What happened at one node.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeReport {
    pub(super) seed: bool,
    pub(super) behaviour: Option<Behaviour>,
    pub(super) joined: Option<Duration>,
    pub(super) left: Option<Duration>,
    pub(super) completed: Option<Duration>,
    /// Bytes of pieces accepted, per source.
    pub(super) received: BTreeMap<u32, u64>,
    /// Bytes of pieces received when already held.
    pub(super) duplicate_bytes: u64,
    /// Bytes this node finished sending.
    pub(super) uploaded: u64,
    pub(super) requests_to_banned: u64,
    /// Most requests in flight to one peer at once.
    pub(super) max_in_flight: usize,
    /// The first pieces requested.
    pub(super) first_requests: Vec<u32>,
    /// Pieces in the order they completed, and when.
    pub(super) order: Vec<u32>,
    pub(super) done_at: Vec<Duration>,
    /// Who delivered each piece.
    pub(super) delivered_by: BTreeMap<u32, u32>,
    /// (piece, peer it was in flight to, peer it was requested from too).
    pub(super) steals: Vec<(u32, u32, u32)>,
    /// Pieces received that failed verification.
    pub(super) bad_pieces: u64,
    /// Requests in flight to a peer when its connection went away.
    pub(super) orphaned: u64,
    /// Peers the swarm banned.
    pub(super) banned: Vec<u32>,
    /// Peers dropped for not answering in time.
    pub(super) timed_out: Vec<u32>,
    /// Pieces still missing at the end.
    pub(super) missing: Vec<u32>,
    /// `can_progress` at the end (leechers present at the end).
    pub(super) can_progress: Option<bool>,
    /// For a node that left at a progress mark: pieces nobody else present
    /// held at that moment.
    pub(super) missing_at_leave: Option<Vec<u32>>,
    /// Broken invariants of the picker, as seen by the driver.
    pub(super) violations: Vec<String>,
}

impl NodeReport {
    /// Bytes received in all, useful or not.
    pub(super) fn received_total(&self) -> u64 {
        self.received.values().sum::<u64>() + self.duplicate_bytes
    }
}

#[derive(Debug, Clone)]
pub(super) struct Report {
    pub(super) outcome: Outcome,
    pub(super) end: Duration,
    pub(super) events: u64,
    /// A hash of every event processed, in order.
    pub(super) digest: u64,
    pub(super) total_bytes: u64,
    pub(super) nodes: Vec<NodeReport>,
}

impl Report {
    /// (index, report) of every leecher.
    pub(super) fn leechers(&self) -> impl Iterator<Item = (u32, &NodeReport)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.seed)
            .map(|(i, n)| (i as u32, n))
    }

    /// The latest completion time, if every leecher completed.
    pub(super) fn all_completed(&self) -> Option<Duration> {
        let times: Option<Vec<Duration>> = self.leechers().map(|(_, n)| n.completed).collect();
        times?.into_iter().max()
    }

    pub(super) fn duplicate_bytes(&self) -> u64 {
        self.leechers().map(|(_, n)| n.duplicate_bytes).sum()
    }

    pub(super) fn received_bytes(&self) -> u64 {
        self.leechers().map(|(_, n)| n.received_total()).sum()
    }

    pub(super) fn violations(&self) -> Vec<String> {
        self.leechers()
            .flat_map(|(i, n)| n.violations.iter().map(move |v| format!("node {i}: {v}")))
            .collect()
    }
}

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
}

struct Queued {
    at: Duration,
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
    tick: bool,
    leave_fired: bool,
    report: NodeReport,
}

/// The simulation. Build with [`Sim::new`], then [`Sim::run`].
pub(super) struct Sim {
    cfg: SimConfig,
    specs: Vec<NodeSpec>,
    blob_specs: Vec<BlobSpec>,
    layout: Vec<PieceInfo>,
    nodes: Vec<Node>,
    queue: BinaryHeap<Queued>,
    seq: u64,
    now: Duration,
    rng: u64,
    next_id: u64,
    events: u64,
    /// Fixed keys: the same events hash the same in every run.
    digest: DefaultHasher,
    pending_joins: usize,
}

impl Sim {
    pub(super) fn new(cfg: SimConfig, specs: Vec<NodeSpec>) -> Self {
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
            .map(|s| {
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
                    served_at: Duration::ZERO,
                    wake: 0,
                    down_free: Duration::ZERO,
                    out: BTreeMap::new(),
                    by_piece: BTreeMap::new(),
                    per_peer: BTreeMap::new(),
                    last_rx: BTreeMap::new(),
                    tick: false,
                    leave_fired: false,
                    report: NodeReport {
                        seed: s.seed,
                        behaviour: Some(s.behaviour),
                        ..NodeReport::default()
                    },
                }
            })
            .collect();
        let rng = cfg.seed ^ 0x5eed_f00d_5111;
        Self {
            cfg,
            specs,
            blob_specs,
            layout,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
            rng,
            next_id: 0,
            events: 0,
            digest: DefaultHasher::new(),
            pending_joins: 0,
        }
    }

    /// Run to the end: every leecher complete, nothing left to happen, or
    /// a limit.
    pub(super) fn run(mut self) -> Report {
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
            let Some(q) = self.queue.pop() else {
                break Outcome::Stuck;
            };
            if q.at > self.cfg.time_limit || self.events >= self.cfg.max_events {
                break Outcome::Limit;
            }
            self.now = q.at;
            self.events += 1;
            (q.at, q.event).hash(&mut self.digest);
            for n in self.handle(q.event).into_iter().flatten() {
                self.poll(n);
            }
        };
        self.report(outcome)
    }

    fn leechers_done(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.report.seed || n.presence == Presence::Gone || n.report.completed.is_some())
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
        self.queue.push(Queued {
            at,
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
                if self.linked(to, from) {
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
                self.nodes[n as usize].tick = false;
                return [Some(n), None];
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
            node.swarm = Some(Swarm::new(
                &self.blob_specs,
                self.cfg.picker.clone(),
                swarm_seed,
            ));
        }
        for m in 0..self.nodes.len() as u32 {
            if m != n && self.present(m) && !(seed && self.specs[m as usize].seed) {
                self.send(n, m, Event::Connect(n, m));
            }
        }
    }

    fn leave(&mut self, n: u32) {
        let node = &mut self.nodes[n as usize];
        match node.presence {
            Presence::Waiting => node.presence = Presence::Gone,
            Presence::Gone => {}
            Presence::Present => {
                node.presence = Presence::Gone;
                node.report.left = Some(self.now);
                let peers = std::mem::take(&mut node.peers);
                node.conns.clear();
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
        if !self.present(a) || !self.present(b) || self.nodes[a as usize].peers.contains(&b) {
            return [None, None];
        }
        let banned = |x: u32, y: u32| {
            self.nodes[x as usize]
                .swarm
                .as_ref()
                .is_some_and(|s| s.is_banned(&y))
        };
        if banned(a, b) || banned(b, a) {
            return [None, None];
        }
        let rtt = 2 * (self.specs[a as usize].latency + self.specs[b as usize].latency);
        for (x, y) in [(a, b), (b, a)] {
            let y_seed = self.specs[y as usize].seed;
            let y_groups = self.nodes[y as usize].groups.clone();
            let node = &mut self.nodes[x as usize];
            node.peers.insert(y);
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
            if y_seed {
                swarm.peer_has_all(&y);
            } else {
                for (blob, groups) in y_groups.iter().enumerate() {
                    swarm.peer_has(&y, blob, groups);
                }
            }
        }
        [Some(a), Some(b)]
    }

    fn request(&mut self, s: u32, from: u32, id: u64, piece: u32) {
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
        self.nodes[s as usize]
            .conns
            .entry(from)
            .or_default()
            .push_back(serve);
        self.reschedule(s);
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
        let node = &mut self.nodes[s as usize];
        let elapsed = (self.now - node.served_at).as_secs_f64();
        let share = rate * elapsed / node.conns.len().max(1) as f64;
        for q in node.conns.values_mut() {
            if let Some(head) = q.front_mut() {
                head.left -= share;
            }
        }
        node.served_at = self.now;
    }

    /// Schedule the next response to finish.
    fn reschedule(&mut self, s: u32) {
        let rate = self.upload_rate(s);
        let node = &mut self.nodes[s as usize];
        node.wake += 1;
        let generation = node.wake;
        let n = node.conns.len() as f64;
        let heads = node.conns.values().filter_map(VecDeque::front);
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
    fn wake(&mut self, s: u32, generation: u64) {
        if !self.present(s) || self.nodes[s as usize].wake != generation {
            return;
        }
        self.advance(s);
        let node = &mut self.nodes[s as usize];
        let heads = node.conns.values().filter_map(VecDeque::front);
        // The least is done, whatever rounding left of it.
        let least = heads.map(|h| h.left).min_by(f64::total_cmp).unwrap_or(0.0);
        let mut done = Vec::new();
        for q in node.conns.values_mut() {
            if q.front().is_some_and(|h| h.left <= least + 1.0) {
                done.extend(q.pop_front());
            }
        }
        node.conns.retain(|_, q| !q.is_empty());
        for d in done {
            self.nodes[s as usize].report.uploaded += self.layout[d.piece as usize].bytes;
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
        self.reschedule(s);
    }

    /// Drop the queued responses that match, sent in part or not at all.
    fn unserve(&mut self, s: u32, matches: impl Fn(&Serve) -> bool) {
        self.advance(s);
        let node = &mut self.nodes[s as usize];
        for q in node.conns.values_mut() {
            q.retain(|v| !matches(v));
        }
        node.conns.retain(|_, q| !q.is_empty());
        self.reschedule(s);
    }

    /// A reply arrives; returns whether the swarm heard of it.
    fn reply(
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
        let peers: Vec<u32> = self.nodes[l as usize].peers.iter().copied().collect();
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
        }
        self.progress_leaves();
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
    fn drop_peer(&mut self, n: u32, peer: u32) {
        let node = &mut self.nodes[n as usize];
        node.peers.remove(&peer);
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
        for id in ids {
            self.forget(n, id);
        }
        self.unserve(n, |s| s.to == peer);
    }

    /// `n` closes its connection to `peer`.
    fn disconnect(&mut self, n: u32, peer: u32) {
        self.drop_peer(n, peer);
        self.send(n, peer, Event::Close { to: peer, from: n });
    }

    /// The idle timer of request `id`; returns whether it fired.
    fn timeout(&mut self, n: u32, peer: u32, id: u64) -> bool {
        let limit = self.cfg.request_timeout;
        let node = &mut self.nodes[n as usize];
        let Some(out) = node.out.get(&id).copied() else {
            return false;
        };
        let last = node
            .last_rx
            .get(&peer)
            .map_or(out.sent, |&t| t.max(out.sent));
        if self.now < last + limit {
            self.push(last + limit, Event::Timeout { node: n, peer, id });
            return false;
        }
        if let Some(swarm) = &mut node.swarm {
            swarm.piece_failed(&peer, PieceId(out.piece), Failure::Lost);
        }
        node.report.timed_out.push(peer);
        self.disconnect(n, peer);
        true
    }

    /// The driver's step: ask the swarm what to send to every connected
    /// peer, and send it.
    fn poll(&mut self, n: u32) {
        let node = &mut self.nodes[n as usize];
        if node.presence != Presence::Present {
            return;
        }
        let peers: Vec<u32> = node.peers.iter().copied().collect();
        self.poll_peers(n, &peers);
    }

    /// [`Self::poll`] for some peers only.
    fn poll_peers(&mut self, n: u32, peers: &[u32]) {
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
        if !node.out.is_empty() && !node.tick {
            node.tick = true;
            let at = now + self.cfg.tick;
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

/// splitmix64's finaliser.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
