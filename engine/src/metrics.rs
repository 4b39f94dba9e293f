//! The engine's counters, in the Prometheus text format (OpenMetrics 1.0),
//! for a node's `GET /metrics` or an embedder's own endpoint.
//!
//! The counters are process-wide, as Prometheus scrapes processes: a
//! program running two nodes reports their sum. Each one is documented in
//! `docs/api.md` §Metrics. Counting costs one relaxed atomic add; the
//! labels are fixed sets of names, so a family never grows with input.
//!
//! ```
//! use swarm_engine::metrics;
//!
//! let text = metrics::render(&metrics::NodeGauges::default());
//! assert!(text.contains("# TYPE swarm_bytes_down counter"));
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::{encode, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The media type of [`render`]'s text, for a `Content-Type` header.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];
type Histograms = Family<Labels1, Histogram, fn() -> Histogram>;

/// Where fetched bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A QUIC peer.
    Peer,
    /// An HTTP(S) mirror.
    Mirror,
}

impl SourceKind {
    fn label(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Mirror => "mirror",
        }
    }
}

/// How a fetch ended, or that it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchEnd {
    Started,
    Completed,
    Failed,
    Cancelled,
}

/// A DHT operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DhtOp {
    Announce,
    FindPeers,
    PutRelease,
    Resolve,
}

impl DhtOp {
    fn label(self) -> &'static str {
        match self {
            Self::Announce => "announce",
            Self::FindPeers => "find_peers",
            Self::PutRelease => "put_release",
            Self::Resolve => "resolve",
        }
    }
}

/// A step of the self-updater.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateStep {
    Check,
    Install,
    Rollback,
}

struct Metrics {
    registry: Registry,
    bytes_down: Family<Labels1, Counter>,
    bytes_up: Counter,
    requests: Family<Labels1, Counter>,
    verify_failures: Family<Labels2, Counter>,
    bans: Family<Labels1, Counter>,
    fetches: Family<Labels1, Counter>,
    dht: Family<Labels2, Counter>,
    dht_seconds: Histograms,
    releases: Family<Labels2, Counter>,
    updates: Family<Labels2, Counter>,
    gossip: Family<Labels2, Counter>,
}

fn dht_histogram() -> Histogram {
    // 10 ms to about 40 s: a lookup on a real DHT takes seconds.
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("swarm");
    let m = Metrics {
        bytes_down: Family::default(),
        bytes_up: Counter::default(),
        requests: Family::default(),
        verify_failures: Family::default(),
        bans: Family::default(),
        fetches: Family::default(),
        dht: Family::default(),
        dht_seconds: Family::new_with_constructor(dht_histogram),
        releases: Family::default(),
        updates: Family::default(),
        gossip: Family::default(),
        registry: Registry::default(),
    };
    registry.register(
        "bytes_down",
        "Verified new bytes stored by fetches, by source kind (peer, mirror)",
        m.bytes_down.clone(),
    );
    registry.register(
        "bytes_up",
        "Bytes of Bao data sent to peers",
        m.bytes_up.clone(),
    );
    registry.register(
        "requests",
        "Requests from peers, by result (served, not_held, busy, violation)",
        m.requests.clone(),
    );
    registry.register(
        "verify_failures",
        "Sources that sent data or messages that do not verify, by source kind and failure kind",
        m.verify_failures.clone(),
    );
    registry.register(
        "bans",
        "Sources dropped for misbehaving, by source kind",
        m.bans.clone(),
    );
    registry.register(
        "fetches",
        "Fetches, by event (started, completed, failed, cancelled)",
        m.fetches.clone(),
    );
    registry.register(
        "dht_ops",
        "DHT operations, by operation and result (ok, failed, empty)",
        m.dht.clone(),
    );
    registry.register(
        "dht_op_seconds",
        "How long DHT operations took, by operation",
        m.dht_seconds.clone(),
    );
    registry.register(
        "releases",
        "Signed releases checked against the trust and rollback policy, by result and reason",
        m.releases.clone(),
    );
    registry.register(
        "gossip_records",
        "Gossiped release records, by event (sent, dropped) and, for dropped, why",
        m.gossip.clone(),
    );
    registry.register(
        "updates",
        "Self-updater steps (check, install, rollback), by result",
        m.updates.clone(),
    );
    Metrics { registry, ..m }
});

fn m() -> &'static Metrics {
    &METRICS
}

pub(crate) fn bytes_down(source: SourceKind, n: u64) {
    m().bytes_down
        .get_or_create(&[("source", source.label())])
        .inc_by(n);
}

pub(crate) fn bytes_up(n: u64) {
    m().bytes_up.inc_by(n);
}

/// A peer's request: `served`, or why it was refused.
pub(crate) fn request(result: &'static str) {
    m().requests.get_or_create(&[("result", result)]).inc();
}

pub(crate) fn verify_failure(source: SourceKind, kind: &'static str) {
    m().verify_failures
        .get_or_create(&[("source", source.label()), ("kind", kind)])
        .inc();
}

pub(crate) fn ban(source: SourceKind) {
    m().bans.get_or_create(&[("source", source.label())]).inc();
}

pub(crate) fn fetch(event: FetchEnd) {
    let e = match event {
        FetchEnd::Started => "started",
        FetchEnd::Completed => "completed",
        FetchEnd::Failed => "failed",
        FetchEnd::Cancelled => "cancelled",
    };
    m().fetches.get_or_create(&[("event", e)]).inc();
}

/// Counts a fetch as started, then as it ends: as [`Self::end`] says, or
/// as cancelled if dropped first (its task aborted).
pub(crate) struct FetchCount(Option<FetchEnd>);

impl FetchCount {
    pub(crate) fn start() -> Self {
        fetch(FetchEnd::Started);
        Self(None)
    }

    pub(crate) fn end(&mut self, how: FetchEnd) {
        self.0 = Some(how);
    }
}

impl Drop for FetchCount {
    fn drop(&mut self) {
        fetch(self.0.unwrap_or(FetchEnd::Cancelled));
    }
}

/// A DHT operation that took `took`, with its result (`ok`, `failed`, or
/// `empty` for a lookup that found nothing).
pub(crate) fn dht(op: DhtOp, result: &'static str, took: Duration) {
    m().dht
        .get_or_create(&[("op", op.label()), ("result", result)])
        .inc();
    m().dht_seconds
        .get_or_create(&[("op", op.label())])
        .observe(took.as_secs_f64());
}

/// A release the policy accepted (`reason` "ok") or refused, and why.
pub(crate) fn release(accepted: bool, reason: &'static str) {
    let result = if accepted { "accepted" } else { "refused" };
    m().releases
        .get_or_create(&[("result", result), ("reason", reason)])
        .inc();
}

/// A gossiped record dropped, and why.
pub(crate) fn gossip_dropped(why: crate::release::gossip::Dropped) {
    m().gossip
        .get_or_create(&[("event", "dropped"), ("reason", why.name())])
        .inc();
}

/// A gossiped record sent on (to one or more peers).
pub(crate) fn gossip_sent() {
    m().gossip
        .get_or_create(&[("event", "sent"), ("reason", "")])
        .inc();
}

pub(crate) fn update(step: UpdateStep, ok: bool) {
    let s = match step {
        UpdateStep::Check => "check",
        UpdateStep::Install => "install",
        UpdateStep::Rollback => "rollback",
    };
    let result = if ok { "ok" } else { "failed" };
    m().updates
        .get_or_create(&[("step", s), ("result", result)])
        .inc();
}

/// What one node has now, reported beside the counters.
#[derive(Debug, Clone, Default)]
pub struct NodeGauges {
    /// QUIC connections open, both ways.
    pub peers_connected: u64,
    /// Requests being served now.
    pub serving: u64,
    /// Pinned roots.
    pub pins: u64,
    /// Fetches the node runs: through its API, for its seeds, or an embedder's.
    pub fetches_running: u64,
    /// Seconds since the node started.
    pub uptime_secs: u64,
}

/// The counters and `node`'s gauges in the OpenMetrics text format,
/// ending in `# EOF`.
pub fn render(node: &NodeGauges) -> String {
    let mut gauges = Registry::with_prefix("swarm");
    let gauge = |v: u64| {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        g
    };
    gauges.register(
        "peers_connected",
        "QUIC connections open, both ways",
        gauge(node.peers_connected),
    );
    gauges.register(
        "serving_requests",
        "Requests from peers being served now",
        gauge(node.serving),
    );
    gauges.register("pins", "Pinned roots", gauge(node.pins));
    gauges.register(
        "fetches_running",
        "Fetches the node runs (API, seeds, embedder)",
        gauge(node.fetches_running),
    );
    gauges.register(
        "uptime_seconds",
        "Seconds since the node started",
        gauge(node.uptime_secs),
    );
    let mut out = String::with_capacity(8 << 10);
    // Writing to a String cannot fail.
    let _ = encode_registry(&mut out, &m().registry);
    let _ = encode(&mut out, &gauges);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_with_their_labels() {
        bytes_down(SourceKind::Mirror, 5);
        request("not_held");
        dht(DhtOp::Announce, "ok", Duration::from_millis(30));
        release(false, "untrusted");
        let text = render(&NodeGauges {
            pins: 1000,
            ..Default::default()
        });
        assert!(
            text.contains("swarm_bytes_down_total{source=\"mirror\"}"),
            "{text}"
        );
        assert!(text.contains("swarm_requests_total{result=\"not_held\"}"));
        assert!(text.contains("swarm_releases_total{result=\"refused\",reason=\"untrusted\"}"));
        assert!(
            text.contains("swarm_dht_op_seconds_bucket{le=\"0.04\",op=\"announce\"}"),
            "{text}"
        );
        assert!(text.contains("swarm_pins 1000\n"));
        // One EOF, at the end: the gauges follow the counters.
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }
}
