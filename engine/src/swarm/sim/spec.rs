//! What a simulation is given (nodes, configuration) and what it reports.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::swarm::{Config, SuperSeedConfig};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;

/// How a node answers requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
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
pub enum Leave {
    At(Duration),
    /// When the leechers' average progress reaches this fraction.
    AtProgress(f64),
    /// This long after it completed.
    AfterDone(Duration),
}

/// How nodes find and connect to each other.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Mesh {
    /// Every node connects to every node present when it joins (two seeds
    /// do not bother), with no limit.
    #[default]
    Full,
    /// Nodes find a few peers per lookup and through exchange, under
    /// connection limits.
    Partial(MeshConfig),
}

/// A partial mesh: a tracker or DHT whose lookup returns a few random
/// present nodes, peer exchange on every new connection, and limits on
/// connections as a real node has them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeshConfig {
    /// Connections a node dials at most (`--max-peers`).
    pub max_out: usize,
    /// Connections a node has at most, dialed and accepted.
    pub max_conns: usize,
    /// Peers one lookup returns.
    pub lookup_peers: usize,
    /// How long a lookup takes.
    pub lookup_time: Duration,
    /// Wait before the next lookup while there is room; doubles each time.
    pub lookup_backoff: Duration,
    pub max_backoff: Duration,
    /// Addresses of its peers a node passes on when a connection opens.
    pub pex_peers: usize,
    /// Addresses a node pushes to each connected fetcher at most, one as
    /// it meets each new peer (wire.md §3.7, version 2); 0: none.
    pub push: usize,
    /// Addresses a node remembers, not connected.
    pub book_size: usize,
    /// A node that completes closes its connections to complete peers,
    /// and two complete nodes do not connect.
    pub drop_done: bool,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            max_out: 8,
            max_conns: 50,
            lookup_peers: 6,
            lookup_time: Duration::from_millis(300),
            lookup_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            pex_peers: 8,
            push: crate::wire::MAX_PUSHED,
            book_size: 64,
            drop_done: true,
        }
    }
}

/// One simulated node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub seed: bool,
    /// Upload capacity, bytes per second.
    pub up: u64,
    /// Download capacity, bytes per second (None: unlimited).
    pub down: Option<u64>,
    /// This end's share of a link's one-way latency.
    pub latency: Duration,
    /// Probability that a message to or from it is lost (and resent).
    pub loss: f64,
    pub behaviour: Behaviour,
    pub join: Duration,
    pub leave: Option<Leave>,
}

impl NodeSpec {
    pub fn seed(up: u64) -> Self {
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

    pub fn leecher(up: u64) -> Self {
        Self {
            seed: false,
            ..Self::seed(up)
        }
    }

    pub fn latency_ms(mut self, ms: u64) -> Self {
        self.latency = Duration::from_millis(ms);
        self
    }

    pub fn down(mut self, rate: u64) -> Self {
        self.down = Some(rate);
        self
    }

    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    pub fn behaviour(mut self, b: Behaviour) -> Self {
        self.behaviour = b;
        self
    }

    pub fn join_at(mut self, t: Duration) -> Self {
        self.join = t;
        self
    }

    pub fn leave(mut self, l: Leave) -> Self {
        self.leave = Some(l);
        self
    }
}

/// The simulation as a whole.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Blob sizes.
    pub blobs: Vec<u64>,
    pub picker: Config,
    pub seed: u64,
    /// Idle time after which an unanswered request is `Lost`.
    pub request_timeout: Duration,
    /// Upload capacity of [`Behaviour::Slow`] nodes.
    pub slow_rate: u64,
    pub time_limit: Duration,
    pub max_events: u64,
    pub mesh: Mesh,
    /// Seeds super-seed ([`crate::swarm::SuperSeed`]) with this.
    pub super_seed: Option<SuperSeedConfig>,
    /// A response on its way counts as traffic for the idle timeout, as
    /// a stream's bytes do (rather than only whole responses).
    pub streaming: bool,
    /// A node sends to this many requesters at a time, each piece passing
    /// the turn on (as BitTorrent's unchoke), rather than to all at once.
    /// Not what the engine's serving does today: a model to measure.
    pub upload_slots: Option<usize>,
    /// With [`Self::upload_slots`], which requesters get the slots. Also a
    /// model to measure, not what the engine's serving does.
    pub serve_order: ServeOrder,
}

/// Who a node with upload slots serves next.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ServeOrder {
    /// In turn, each piece sent passing the turn on.
    #[default]
    InTurn,
    /// The requester furthest behind first: fewest pieces held (as its
    /// `Have`s tell), less `reciprocity` for each piece it sent this node;
    /// and of its requests, the piece most of this node's requesters wait
    /// for first.
    Neediest {
        /// Pieces of head start a requester earns per piece it sent here.
        reciprocity: f64,
    },
}

impl SimConfig {
    pub fn new(blobs: Vec<u64>, seed: u64) -> Self {
        Self {
            blobs,
            picker: Config::default(),
            seed,
            request_timeout: Duration::from_secs(10),
            slow_rate: 64 * KIB,
            time_limit: Duration::from_secs(3600),
            max_events: 5_000_000,
            mesh: Mesh::Full,
            super_seed: None,
            streaming: false,
            upload_slots: None,
            serve_order: ServeOrder::InTurn,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every leecher still present completed.
    Complete,
    /// Nothing left to happen: no event queued.
    Stuck,
    /// The time or event limit was reached.
    Limit,
}

/// What happened at one node.
#[derive(Debug, Clone, Default)]
pub struct NodeReport {
    pub seed: bool,
    pub behaviour: Option<Behaviour>,
    pub joined: Option<Duration>,
    pub left: Option<Duration>,
    pub completed: Option<Duration>,
    /// Bytes of pieces accepted, per source.
    pub received: BTreeMap<u32, u64>,
    /// Bytes of pieces received when already held.
    pub duplicate_bytes: u64,
    /// Bytes this node finished sending.
    pub uploaded: u64,
    /// Time its upload had something to send.
    pub upload_busy: Duration,
    pub requests_to_banned: u64,
    /// Most requests in flight to one peer at once.
    pub max_in_flight: usize,
    /// The first pieces requested.
    pub first_requests: Vec<u32>,
    /// Pieces in the order they completed, and when.
    pub order: Vec<u32>,
    pub done_at: Vec<Duration>,
    /// Who delivered each piece.
    pub delivered_by: BTreeMap<u32, u32>,
    /// (piece, peer it was in flight to, peer it was requested from too).
    pub steals: Vec<(u32, u32, u32)>,
    /// Pieces received that failed verification.
    pub bad_pieces: u64,
    /// Requests in flight to a peer when its connection went away.
    pub orphaned: u64,
    /// Peers the swarm banned.
    pub banned: Vec<u32>,
    /// Peers dropped for not answering in time.
    pub timed_out: Vec<u32>,
    /// Requests that timed out (each a slow strike against its peer).
    pub timeouts: u64,
    /// When the picker gave up waiting for a source of what is missing.
    pub stalled: Option<Duration>,
    /// Pieces still missing at the end.
    pub missing: Vec<u32>,
    /// `can_progress` at the end (leechers present at the end).
    pub can_progress: Option<bool>,
    /// For a node that left at a progress mark: pieces nobody else present
    /// held at that moment.
    pub missing_at_leave: Option<Vec<u32>>,
    /// Broken invariants of the picker, as seen by the driver.
    pub violations: Vec<String>,
    /// Most connections at once, and most of them dialed by this node.
    pub max_peers: usize,
    pub max_out: usize,
    /// Lookups done; connections opened to peers first learnt from a
    /// lookup, and from peer exchange; dials refused or failed.
    pub lookups: u32,
    pub by_lookup: u32,
    pub by_pex: u32,
    pub refused: u32,
}

impl NodeReport {
    /// Bytes received in all, useful or not.
    pub fn received_total(&self) -> u64 {
        self.received.values().sum::<u64>() + self.duplicate_bytes
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    pub end: Duration,
    pub events: u64,
    /// A hash of every event processed, in order.
    pub digest: u64,
    pub total_bytes: u64,
    pub nodes: Vec<NodeReport>,
}

impl Report {
    /// (index, report) of every leecher.
    pub fn leechers(&self) -> impl Iterator<Item = (u32, &NodeReport)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.seed)
            .map(|(i, n)| (i as u32, n))
    }

    /// The latest completion time, if every leecher completed.
    pub fn all_completed(&self) -> Option<Duration> {
        let times: Option<Vec<Duration>> = self.leechers().map(|(_, n)| n.completed).collect();
        times?.into_iter().max()
    }

    pub fn duplicate_bytes(&self) -> u64 {
        self.leechers().map(|(_, n)| n.duplicate_bytes).sum()
    }

    /// Bytes the seeds sent.
    pub fn seed_uploaded(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.seed)
            .map(|n| n.uploaded)
            .sum()
    }

    pub fn received_bytes(&self) -> u64 {
        self.leechers().map(|(_, n)| n.received_total()).sum()
    }

    pub fn violations(&self) -> Vec<String> {
        self.leechers()
            .flat_map(|(i, n)| n.violations.iter().map(move |v| format!("node {i}: {v}")))
            .collect()
    }
}
