//! What a simulation is given (nodes, configuration) and what it reports.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::swarm::Config;

pub(in crate::swarm) const KIB: u64 = 1024;
pub(in crate::swarm) const MIB: u64 = 1024 * KIB;

/// How a node answers requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::swarm) enum Behaviour {
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
pub(in crate::swarm) enum Leave {
    At(Duration),
    /// When the leechers' average progress reaches this fraction.
    AtProgress(f64),
}

/// One simulated node.
#[derive(Debug, Clone)]
pub(in crate::swarm) struct NodeSpec {
    pub(in crate::swarm) seed: bool,
    /// Upload capacity, bytes per second.
    pub(in crate::swarm) up: u64,
    /// Download capacity, bytes per second (None: unlimited).
    pub(in crate::swarm) down: Option<u64>,
    /// This end's share of a link's one-way latency.
    pub(in crate::swarm) latency: Duration,
    /// Probability that a message to or from it is lost (and resent).
    pub(in crate::swarm) loss: f64,
    pub(in crate::swarm) behaviour: Behaviour,
    pub(in crate::swarm) join: Duration,
    pub(in crate::swarm) leave: Option<Leave>,
}

impl NodeSpec {
    pub(in crate::swarm) fn seed(up: u64) -> Self {
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

    pub(in crate::swarm) fn leecher(up: u64) -> Self {
        Self {
            seed: false,
            ..Self::seed(up)
        }
    }

    pub(in crate::swarm) fn latency_ms(mut self, ms: u64) -> Self {
        self.latency = Duration::from_millis(ms);
        self
    }

    pub(in crate::swarm) fn down(mut self, rate: u64) -> Self {
        self.down = Some(rate);
        self
    }

    pub(in crate::swarm) fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    pub(in crate::swarm) fn behaviour(mut self, b: Behaviour) -> Self {
        self.behaviour = b;
        self
    }

    pub(in crate::swarm) fn join_at(mut self, t: Duration) -> Self {
        self.join = t;
        self
    }

    pub(in crate::swarm) fn leave(mut self, l: Leave) -> Self {
        self.leave = Some(l);
        self
    }
}

/// The simulation as a whole.
#[derive(Debug, Clone)]
pub(in crate::swarm) struct SimConfig {
    /// Blob sizes.
    pub(in crate::swarm) blobs: Vec<u64>,
    pub(in crate::swarm) picker: Config,
    pub(in crate::swarm) seed: u64,
    /// Idle time after which an unanswered request is `Lost`.
    pub(in crate::swarm) request_timeout: Duration,
    /// Upload capacity of [`Behaviour::Slow`] nodes.
    pub(in crate::swarm) slow_rate: u64,
    pub(in crate::swarm) time_limit: Duration,
    pub(in crate::swarm) max_events: u64,
}

impl SimConfig {
    pub(in crate::swarm) fn new(blobs: Vec<u64>, seed: u64) -> Self {
        Self {
            blobs,
            picker: Config::default(),
            seed,
            request_timeout: Duration::from_secs(10),
            slow_rate: 64 * KIB,
            time_limit: Duration::from_secs(3600),
            max_events: 5_000_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::swarm) enum Outcome {
    /// Every leecher still present completed.
    Complete,
    /// Nothing left to happen: no event queued.
    Stuck,
    /// The time or event limit was reached.
    Limit,
}

/// What happened at one node.
#[derive(Debug, Clone, Default)]
pub(in crate::swarm) struct NodeReport {
    pub(in crate::swarm) seed: bool,
    pub(in crate::swarm) behaviour: Option<Behaviour>,
    pub(in crate::swarm) joined: Option<Duration>,
    pub(in crate::swarm) left: Option<Duration>,
    pub(in crate::swarm) completed: Option<Duration>,
    /// Bytes of pieces accepted, per source.
    pub(in crate::swarm) received: BTreeMap<u32, u64>,
    /// Bytes of pieces received when already held.
    pub(in crate::swarm) duplicate_bytes: u64,
    /// Bytes this node finished sending.
    pub(in crate::swarm) uploaded: u64,
    pub(in crate::swarm) requests_to_banned: u64,
    /// Most requests in flight to one peer at once.
    pub(in crate::swarm) max_in_flight: usize,
    /// The first pieces requested.
    pub(in crate::swarm) first_requests: Vec<u32>,
    /// Pieces in the order they completed, and when.
    pub(in crate::swarm) order: Vec<u32>,
    pub(in crate::swarm) done_at: Vec<Duration>,
    /// Who delivered each piece.
    pub(in crate::swarm) delivered_by: BTreeMap<u32, u32>,
    /// (piece, peer it was in flight to, peer it was requested from too).
    pub(in crate::swarm) steals: Vec<(u32, u32, u32)>,
    /// Pieces received that failed verification.
    pub(in crate::swarm) bad_pieces: u64,
    /// Requests in flight to a peer when its connection went away.
    pub(in crate::swarm) orphaned: u64,
    /// Peers the swarm banned.
    pub(in crate::swarm) banned: Vec<u32>,
    /// Peers dropped for not answering in time.
    pub(in crate::swarm) timed_out: Vec<u32>,
    /// Requests that timed out (each a slow strike against its peer).
    pub(in crate::swarm) timeouts: u64,
    /// When the picker gave up waiting for a source of what is missing.
    pub(in crate::swarm) stalled: Option<Duration>,
    /// Pieces still missing at the end.
    pub(in crate::swarm) missing: Vec<u32>,
    /// `can_progress` at the end (leechers present at the end).
    pub(in crate::swarm) can_progress: Option<bool>,
    /// For a node that left at a progress mark: pieces nobody else present
    /// held at that moment.
    pub(in crate::swarm) missing_at_leave: Option<Vec<u32>>,
    /// Broken invariants of the picker, as seen by the driver.
    pub(in crate::swarm) violations: Vec<String>,
}

impl NodeReport {
    /// Bytes received in all, useful or not.
    pub(in crate::swarm) fn received_total(&self) -> u64 {
        self.received.values().sum::<u64>() + self.duplicate_bytes
    }
}

#[derive(Debug, Clone)]
pub(in crate::swarm) struct Report {
    pub(in crate::swarm) outcome: Outcome,
    pub(in crate::swarm) end: Duration,
    pub(in crate::swarm) events: u64,
    /// A hash of every event processed, in order.
    pub(in crate::swarm) digest: u64,
    pub(in crate::swarm) total_bytes: u64,
    pub(in crate::swarm) nodes: Vec<NodeReport>,
}

impl Report {
    /// (index, report) of every leecher.
    pub(in crate::swarm) fn leechers(&self) -> impl Iterator<Item = (u32, &NodeReport)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.seed)
            .map(|(i, n)| (i as u32, n))
    }

    /// The latest completion time, if every leecher completed.
    pub(in crate::swarm) fn all_completed(&self) -> Option<Duration> {
        let times: Option<Vec<Duration>> = self.leechers().map(|(_, n)| n.completed).collect();
        times?.into_iter().max()
    }

    pub(in crate::swarm) fn duplicate_bytes(&self) -> u64 {
        self.leechers().map(|(_, n)| n.duplicate_bytes).sum()
    }

    pub(in crate::swarm) fn received_bytes(&self) -> u64 {
        self.leechers().map(|(_, n)| n.received_total()).sum()
    }

    pub(in crate::swarm) fn violations(&self) -> Vec<String> {
        self.leechers()
            .flat_map(|(i, n)| n.violations.iter().map(move |v| format!("node {i}: {v}")))
            .collect()
    }
}
