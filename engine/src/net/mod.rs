//! The network: a quinn endpoint with an Ed25519 identity, one task per
//! connection, requests served from and fetched into the store.
//!
//! Every connection is symmetric after the `Hello` exchange (wire.md §2):
//! both sides serve request streams the other opens, so a node that is
//! downloading also serves what it has verified.

mod book;
pub mod gossip;
mod haves;
mod identity;
mod limit;
mod misbehaviour;
mod request;
mod serve;
mod sessions;
mod stream;
mod superseed;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span};

pub use self::identity::{NodeId, ParseNodeIdError, SecretKey};
pub use self::misbehaviour::{LocalFault, Misbehaviour};
pub use self::request::{Peer, RequestError, Written};
pub use self::sessions::{ServedTotal, SessionEvent, SessionInfo};
use crate::store::Store;
use crate::wire::{self, ErrorCode, Hello, Message};

/// Timeouts of the protocol (wire.md §5). Tests shorten them; none may
/// be zero ([`EndpointConfig::validate`]).
///
/// ```
/// use std::time::Duration;
/// use swarm_engine::net::{EndpointConfig, Timeouts};
///
/// // Give up on unreachable peers sooner.
/// let config = EndpointConfig::default().timeouts(Timeouts {
///     connect: Duration::from_secs(3),
///     ..Timeouts::default()
/// });
/// assert_eq!(config.timeouts.connect, Duration::from_secs(3));
/// ```
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// For the `Hello` exchange after connecting.
    pub hello: Duration,
    /// For a request message after its stream opens.
    pub request: Duration,
    /// Longest a receiver waits for a response without a byte from the
    /// peer on any of its responses; longest a sender waits to write a
    /// piece.
    pub progress: Duration,
    /// QUIC idle timeout.
    pub idle: Duration,
    /// For establishing a connection.
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            hello: Duration::from_secs(10),
            request: Duration::from_secs(10),
            progress: Duration::from_secs(20),
            idle: Duration::from_secs(30),
            connect: Duration::from_secs(10),
        }
    }
}

/// How an [`Endpoint`] behaves.
///
/// ```
/// use swarm_engine::net::EndpointConfig;
///
/// let config = EndpointConfig {
///     max_connections: 32,
///     verify_served_data: true,
///     ..EndpointConfig::default()
/// }
/// .listen(([127, 0, 0, 1], 7411).into())
/// .upload_limit(Some(1 << 20));
/// assert_eq!(config.listen.port(), 7411);
/// assert!(config.agent.starts_with("swarm/"));
/// ```
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Most connections accepted at once, at least 1; more are closed
    /// with `Busy`.
    pub max_connections: u64,
    /// Protocol timeouts.
    pub timeouts: Timeouts,
    /// Re-hash stored data against its outboard every time it is served.
    /// Off by default, and a node still never sends a byte it has not
    /// verified: each group is checked the first time it is served after
    /// the store is opened (groups this process received or imported were
    /// checked then), and a group found damaged is no longer offered and is
    /// fetched again ([`crate::node::Node::repair`]). On, rot that sets in
    /// while the node runs is caught on the next request too, for about one
    /// more BLAKE3 pass over every byte sent.
    pub verify_served_data: bool,
    /// Agent string sent in `Hello`.
    pub agent: String,
    /// Most bytes per second sent to all peers together, at least 1;
    /// `None`: no limit.
    pub upload_limit: Option<u64>,
    /// Most bytes per second received from all peers together, at least
    /// 1; `None`: no limit.
    pub download_limit: Option<u64>,
    /// When to super-seed complete blobs (wire.md §7): tell each peer
    /// that asks only of pieces nobody has been given yet, so that a seed
    /// that is the only complete source sends little more than one copy
    /// and the fetchers finish from each other. [`SuperSeedMode::Auto`]
    /// by default: only where this node's upload is capped.
    pub super_seed: SuperSeedMode,
    /// Highest protocol version offered in `Hello` (wire.md §3.1), from
    /// [`wire::MIN_VERSION`] to [`wire::VERSION`] (the default). Lower it
    /// to talk as an older build does: at 1, this node neither pushes nor
    /// accepts pushed addresses.
    pub max_version: u16,
    /// The memory one connection's data in flight may take, the one
    /// setting for it ([`DEFAULT_WINDOW`] by default, at least
    /// [`MIN_WINDOW`]): the connection's receive window, and the most a
    /// download asks of one peer at once (responses are held until
    /// verified); a stream's receive window is half of it, the send window
    /// twice. A peer at full speed needs about two round trips of data at
    /// its rate: 4 MiB keeps 1 Gbit/s at a 15 ms round trip, 100 Mbit/s
    /// at 150 ms; raise it for a fast, distant peer.
    pub window: u64,
}

/// The default [`EndpointConfig::window`]: 4 MiB. Measured on a 1 GiB
/// fetch from one peer on loopback (benches/README.md, issue #15), the
/// fetcher's peak RSS was 39-42 MiB at 8 MiB, 28-30 MiB at 4 MiB and
/// 22 MiB at 2 MiB, for 6.3-6.8 s at 8 MiB, 6.9-7.5 s at 4 MiB and 7.4 s at
/// 2 MiB: memory taken over the last 8 % of one fast peer's speed, which a
/// node with room can buy back.
pub const DEFAULT_WINDOW: u64 = 4 << 20;
/// The smallest [`EndpointConfig::window`]: 256 KiB (a piece is up to 1 MiB;
/// a smaller window only slows it).
pub const MIN_WINDOW: u64 = 256 << 10;

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            max_connections: 256,
            timeouts: Timeouts::default(),
            verify_served_data: false,
            agent: format!("swarm/{}", env!("CARGO_PKG_VERSION")),
            upload_limit: None,
            download_limit: None,
            super_seed: SuperSeedMode::Auto,
            max_version: wire::VERSION,
            window: DEFAULT_WINDOW,
        }
    }
}

/// When a node super-seeds its complete blobs
/// ([`EndpointConfig::super_seed`]).
///
/// Super-seeding spends the fetchers' time (each is told of a couple of
/// pieces at a time, more as it passes them on) to save this node's
/// upload. That pays when the upload is what the fleet waits for, and
/// costs when it is not: in `bench-swarm`, a seed capped at 20 MiB/s
/// sent 8 fetchers 1.00 copies super-seeding (1.11–1.30x the ideal,
/// median 1.21x, in 8 runs) against 1.18–1.20 copies without (1.22–1.30x,
/// median 1.27x), while an uncapped seed, whose fetchers are limited by
/// their own downloads, sent them too little before it left.
///
/// ```
/// use swarm_engine::net::SuperSeedMode;
///
/// assert_eq!("auto".parse::<SuperSeedMode>(), Ok(SuperSeedMode::Auto));
/// assert!("sometimes".parse::<SuperSeedMode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuperSeedMode {
    /// Never: every peer that asks is told of every piece.
    Off,
    /// As [`Self::On`] where this node's upload is capped
    /// ([`EndpointConfig::upload_limit`]), for the blobs it did not fetch
    /// itself (it is their first source); otherwise as [`Self::Off`].
    #[default]
    Auto,
    /// For every complete blob. Once every piece has left, this node
    /// offers only pieces whose holders have all gone. A peer alone here
    /// for 0.1 s is offered 8 pieces at a time, however many it keeps.
    /// With fetchers that
    /// cannot reach each other it costs them time.
    On,
}

impl From<bool> for SuperSeedMode {
    fn from(on: bool) -> Self {
        if on { Self::On } else { Self::Off }
    }
}

impl std::str::FromStr for SuperSeedMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on" => Ok(Self::On),
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            _ => Err(format!("{s:?} is not one of on, auto, off")),
        }
    }
}

impl std::fmt::Display for SuperSeedMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::On => "on",
            Self::Auto => "auto",
            Self::Off => "off",
        })
    }
}

impl EndpointConfig {
    /// Check that every setting can work; [`Endpoint::bind`] refuses a
    /// config that fails this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Limits {
            upload_limit: self.upload_limit,
            download_limit: self.download_limit,
            max_connections: self.max_connections,
            window: self.window,
        }
        .validate()?;
        if !(wire::MIN_VERSION..=wire::VERSION).contains(&self.max_version) {
            return Err(ConfigError::Version(self.max_version));
        }
        let t = &self.timeouts;
        for (name, d) in [
            ("hello", t.hello),
            ("request", t.request),
            ("progress", t.progress),
            ("idle", t.idle),
            ("connect", t.connect),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        Ok(())
    }

    /// Hold at most `bytes` of one connection's data in flight
    /// ([`Self::window`]).
    ///
    /// ```
    /// use swarm_engine::net::{ConfigError, EndpointConfig};
    ///
    /// let lean = EndpointConfig::default().window(2 << 20);
    /// assert_eq!(lean.window, 2 << 20);
    /// assert!(lean.validate().is_ok());
    /// let tiny = EndpointConfig::default().window(4096);
    /// assert!(matches!(tiny.validate(), Err(ConfigError::Window(4096))));
    /// ```
    pub fn window(mut self, bytes: u64) -> Self {
        self.window = bytes;
        self
    }

    /// Bind to `addr`.
    ///
    /// ```
    /// use swarm_engine::net::EndpointConfig;
    ///
    /// // Loopback only, any free port.
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// assert!(config.listen.ip().is_loopback());
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Use these timeouts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use swarm_engine::net::{EndpointConfig, Timeouts};
    ///
    /// let patient = Timeouts { progress: Duration::from_secs(60), ..Timeouts::default() };
    /// let config = EndpointConfig::default().timeouts(patient);
    /// assert_eq!(config.timeouts.progress, Duration::from_secs(60));
    /// ```
    pub fn timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// Cap uploads at `bytes_per_sec` (`None`: no cap).
    ///
    /// ```
    /// use swarm_engine::net::EndpointConfig;
    ///
    /// let config = EndpointConfig::default().upload_limit(Some(2 << 20)); // 2 MiB/s
    /// assert_eq!(config.upload_limit, Some(2 << 20));
    /// ```
    pub fn upload_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.upload_limit = bytes_per_sec;
        self
    }

    /// When to super-seed complete blobs ([`Self::super_seed`]); `true`
    /// and `false` are [`SuperSeedMode::On`] and [`SuperSeedMode::Off`].
    ///
    /// ```
    /// use swarm_engine::net::{EndpointConfig, SuperSeedMode};
    ///
    /// assert_eq!(EndpointConfig::default().super_seed, SuperSeedMode::Auto);
    /// let config = EndpointConfig::default().super_seed(true);
    /// assert_eq!(config.super_seed, SuperSeedMode::On);
    /// ```
    pub fn super_seed(mut self, mode: impl Into<SuperSeedMode>) -> Self {
        self.super_seed = mode.into();
        self
    }

    /// Cap downloads at `bytes_per_sec` (`None`: no cap).
    ///
    /// ```
    /// use swarm_engine::net::EndpointConfig;
    ///
    /// let config = EndpointConfig::default().download_limit(Some(10 << 20));
    /// assert_eq!(config.download_limit, Some(10 << 20));
    /// assert_eq!(config.upload_limit, None); // unchanged: no cap
    /// ```
    pub fn download_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.download_limit = bytes_per_sec;
        self
    }
}

/// The caps an endpoint runs under; see [`Endpoint::set_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes per second sent to all peers together; `None` for no cap.
    pub upload_limit: Option<u64>,
    /// Bytes per second received from all peers together.
    pub download_limit: Option<u64>,
    /// Most peer connections served at once.
    pub max_connections: u64,
    /// Each connection's data in flight ([`EndpointConfig::window`]).
    pub window: u64,
}

impl Limits {
    /// Check that they can work: at least one connection, no rate of 0
    /// (no cap is `None`), a window within [`MIN_WINDOW`]..=[`MAX_WINDOW`].
    ///
    /// ```
    /// use swarm_engine::net::{ConfigError, Limits, DEFAULT_WINDOW};
    ///
    /// let ok = Limits { upload_limit: None, download_limit: Some(1 << 20), max_connections: 8, window: DEFAULT_WINDOW };
    /// assert_eq!(ok.validate(), Ok(()));
    /// assert_eq!(Limits { upload_limit: Some(0), ..ok }.validate(), Err(ConfigError::ZeroRate("upload")));
    /// assert_eq!(Limits { max_connections: 0, ..ok }.validate(), Err(ConfigError::NoConnections));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        for (name, rate) in [
            ("upload", self.upload_limit),
            ("download", self.download_limit),
        ] {
            if rate == Some(0) {
                return Err(ConfigError::ZeroRate(name));
            }
        }
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&self.window) {
            return Err(ConfigError::Window(self.window));
        }
        Ok(())
    }
}

/// Counters of an endpoint, for operators and tests.
///
/// ```
/// use std::sync::atomic::Ordering;
///
/// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
/// # use swarm_engine::store::Store;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
/// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
/// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
/// # let data = vec![7u8; 100_000];
/// # let hash = seeder.store().put_blob(&data)?;
/// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
/// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
/// # let peer = client.connect(&to).await?;
/// peer.get_bytes(hash, 1 << 20).await?;
/// let stats = seeder.stats();
/// assert_eq!(stats.served_total.load(Ordering::Relaxed), 1);
/// assert_eq!(stats.violations.load(Ordering::Relaxed), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Requests being served now.
    pub serving: AtomicU64,
    /// Requests served since start.
    pub served_total: AtomicU64,
    /// Bytes of Bao data sent.
    pub bytes_sent: AtomicU64,
    /// Verified new bytes stored by this endpoint's fetches, from peers
    /// and mirrors.
    pub bytes_received: AtomicU64,
    /// Peers dropped for breaking the protocol.
    pub violations: AtomicU64,
}

/// A peer's address, optionally with the node id it must prove:
/// `HOST:PORT` or `NODEID@HOST:PORT`.
///
/// ```
/// use swarm_engine::net::{PeerAddr, SecretKey};
///
/// let id = SecretKey::from_bytes(&[1; 32]).node_id();
/// let text = format!("{id}@192.0.2.7:7411");
/// let addr: PeerAddr = text.parse()?;
/// assert_eq!(addr.id, Some(id));
/// assert_eq!(addr.addr.port(), 7411);
/// assert_eq!(addr.to_string(), text);
/// // Without an id, any node at the address is accepted.
/// assert_eq!("192.0.2.7:7411".parse::<PeerAddr>()?.id, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// The node id the peer must present, if known.
    pub id: Option<NodeId>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(f, "{id}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// A peer address that does not parse.
///
/// ```
/// use swarm_engine::net::{ParsePeerAddrError, PeerAddr};
///
/// let err: ParsePeerAddrError = "no port here".parse::<PeerAddr>().unwrap_err();
/// assert!(err.to_string().contains("HOST:PORT or NODEID@HOST:PORT"));
/// assert!("not-a-node-id@192.0.2.7:7411".parse::<PeerAddr>().is_err());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ParsePeerAddrError(String);

impl FromStr for PeerAddr {
    type Err = ParsePeerAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            ParsePeerAddrError(format!(
                "not a peer address: {s:?} (expected HOST:PORT or NODEID@HOST:PORT)"
            ))
        };
        let (id, host) = match s.split_once('@') {
            Some((id, host)) => {
                let id = id
                    .parse::<NodeId>()
                    .map_err(|e| ParsePeerAddrError(format!("in the peer address {s:?}, {e}")))?;
                (Some(id), host)
            }
            None => (None, s),
        };
        let addr = match host.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => std::net::ToSocketAddrs::to_socket_addrs(host)
                .map_err(|_| err())?
                .next()
                .ok_or_else(err)?,
        };
        Ok(Self { id, addr })
    }
}

/// Why an endpoint could not start.
///
/// ```
/// use swarm_engine::net::{BindError, Endpoint, EndpointConfig, SecretKey};
/// use swarm_engine::store::Store;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The port is taken.
/// let taken = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// let config = EndpointConfig::default().listen(taken.local_addr()?);
/// let err = Endpoint::bind(Store::memory()?, SecretKey::generate()?, config)
///     .await
///     .unwrap_err();
/// assert!(matches!(err, BindError::Bind { .. }));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS setup failed (a bug, or an unusable key).
    #[error("TLS setup failed")]
    Tls(#[from] rustls::Error),
    /// A setting of the [`EndpointConfig`] is meaningless.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A meaningless [`EndpointConfig`]: zero where zero cannot work, or a
/// protocol version this build does not speak.
///
/// ```
/// use std::time::Duration;
/// use swarm_engine::net::{ConfigError, EndpointConfig, Timeouts};
///
/// let none = EndpointConfig { max_connections: 0, ..EndpointConfig::default() };
/// assert_eq!(none.validate(), Err(ConfigError::NoConnections));
/// let rushed = EndpointConfig::default().timeouts(Timeouts {
///     progress: Duration::ZERO,
///     ..Timeouts::default()
/// });
/// assert_eq!(rushed.validate(), Err(ConfigError::ZeroTimeout("progress")));
/// let future = EndpointConfig { max_version: 9, ..EndpointConfig::default() };
/// assert_eq!(future.validate(), Err(ConfigError::Version(9)));
/// let old = EndpointConfig { max_version: 1, ..EndpointConfig::default() };
/// assert_eq!(old.validate(), Ok(()));
/// assert_eq!(EndpointConfig::default().upload_limit(Some(0)).validate(), Err(ConfigError::ZeroRate("upload")));
/// assert_eq!(EndpointConfig::default().validate(), Ok(()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_connections` is 0: the node could accept nobody.
    #[error("the connection limit is 0: a node must accept at least one connection")]
    NoConnections,
    /// A timeout is zero: every wait would fail at once.
    #[error("the {0} timeout is zero; it must be at least a millisecond")]
    ZeroTimeout(&'static str),
    /// A rate limit of 0 bytes per second: nothing could move (no limit is `None`).
    #[error("the {0} limit is 0 bytes per second; give a positive rate, or none for no limit")]
    ZeroRate(&'static str),
    /// `max_version` is outside what this build speaks.
    #[error(
        "protocol version {0} is not spoken by this build ({min}..={max})",
        min = wire::MIN_VERSION,
        max = wire::VERSION
    )]
    Version(u16),
    /// The window is outside [`MIN_WINDOW`]..=[`MAX_WINDOW`].
    #[error("a window of {0} bytes is outside 256 KiB to 1 GiB")]
    Window(u64),
    /// The QUIC server settings could not be made again for a new window.
    #[error("cannot rebuild the QUIC server settings: {0}")]
    Tls(String),
}

/// The largest [`EndpointConfig::window`]: 1 GiB.
pub const MAX_WINDOW: u64 = 1 << 30;

/// Why connecting to a peer failed.
///
/// ```
/// use swarm_engine::net::{ConnectError, Endpoint, EndpointConfig, PeerAddr, SecretKey};
/// use swarm_engine::store::Store;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
/// let server = Endpoint::bind(Store::memory()?, SecretKey::generate()?, config.clone()).await?;
/// let client = Endpoint::bind(Store::memory()?, SecretKey::generate()?, config).await?;
/// // Expecting another node at that address: the TLS handshake refuses it.
/// let impostor = PeerAddr {
///     id: Some(SecretKey::generate()?.node_id()),
///     addr: server.local_addr()?,
/// };
/// let err = client.connect(&impostor).await.unwrap_err();
/// assert!(matches!(err, ConnectError::WrongNode { actual, .. } if actual == server.node_id()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No QUIC connection could be made (unreachable, refused, wrong key).
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address.
        addr: PeerAddr,
        /// Why.
        source: quinn::ConnectionError,
    },
    /// The peer at the address is another node than the one asked for.
    #[error("the node at {addr} is {actual}, not {expected}; check the node id given")]
    WrongNode {
        /// The address.
        addr: SocketAddr,
        /// The node id asked for.
        expected: NodeId,
        /// The node id it proved.
        actual: NodeId,
    },
    /// The peer did not answer in time.
    #[error("{addr} did not answer within {secs} s")]
    Timeout {
        /// The address.
        addr: PeerAddr,
        /// The timeout.
        secs: u64,
    },
    /// The peer refused the connection because it has as many as it
    /// accepts (wire.md §5): not a fault; try it again later.
    #[error("{addr} is busy: it has as many connections as it accepts; try again later")]
    Busy {
        /// The address.
        addr: PeerAddr,
    },
    /// The peer broke the protocol during the `Hello` exchange.
    #[error("{addr} broke the protocol during the handshake: {what}")]
    Handshake {
        /// The address.
        addr: PeerAddr,
        /// What happened.
        what: String,
    },
    /// Local setup failed.
    #[error("cannot start connecting")]
    Setup(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A bound QUIC endpoint serving `store` and able to connect to peers.
///
/// ```
/// use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
/// use swarm_engine::store::Store;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
/// let server = Endpoint::bind(Store::memory()?, SecretKey::generate()?, config.clone()).await?;
/// let hash = server.store().put_blob(b"served bytes")?;
///
/// let client = Endpoint::bind(Store::memory()?, SecretKey::generate()?, config).await?;
/// let to = PeerAddr { id: Some(server.node_id()), addr: server.local_addr()? };
/// let peer = client.connect(&to).await?;
/// assert_eq!(peer.get_bytes(hash, 1024).await?, b"served bytes");
/// client.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint {
    inner: Arc<EndpointInner>,
}

#[derive(Debug)]
struct EndpointInner {
    quic: quinn::Endpoint,
    secret: SecretKey,
    ctx: Ctx,
    accept: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// What every connection task needs.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) store: Store,
    pub(crate) config: Arc<EndpointConfig>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) me: NodeId,
    pub(crate) book: Arc<book::PeerBook>,
    pub(crate) haves: Arc<haves::Haves>,
    pub(crate) gossip: Arc<gossip::GossipHub>,
    /// Present when the endpoint super-seeds (wire.md §7).
    pub(crate) superseeds: Option<Arc<superseed::SuperSeeds>>,
    pub(crate) sessions: Arc<sessions::Sessions>,
    pub(crate) up: Arc<limit::Bucket>,
    pub(crate) down: Arc<limit::Bucket>,
    /// The connection limit now (a reloaded config may change it).
    pub(crate) max_connections: Arc<std::sync::atomic::AtomicU64>,
    /// The window now, for the connections made from now on.
    pub(crate) window: Arc<std::sync::atomic::AtomicU64>,
}

impl Ctx {
    /// `addr` has or wants `hash`: remember it for peer exchange, and
    /// push it to the peers that asked for peers of `hash` if it is new.
    pub(crate) fn met(&self, hash: crate::Hash, addr: SocketAddr) {
        if self.book.add(hash, addr) {
            self.haves.push_peer(hash, addr);
        }
    }
}

/// The QUIC server side: this node's certificate, and the transport with
/// `window`.
fn server_config(
    secret: &SecretKey,
    t: &Timeouts,
    window: u64,
) -> Result<quinn::ServerConfig, rustls::Error> {
    let tls = tls::server_config(secret)?;
    let quic_tls = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic_tls));
    server.transport_config(Arc::new(transport(t, window, false)));
    Ok(server)
}

fn transport(t: &Timeouts, window: u64, keep_alive: bool) -> quinn::TransportConfig {
    let mut c = quinn::TransportConfig::default();
    // One control stream plus 64 concurrent requests (wire.md §5).
    c.max_concurrent_bidi_streams(65u32.into());
    c.max_concurrent_uni_streams(0u32.into());
    c.max_idle_timeout(t.idle.try_into().ok());
    // Windows large enough to fill a fast link, small enough to bound
    // memory: unread data waits here while the store thread catches up (a
    // commit's fsync stalls it). All from one setting (`window`).
    let window = window.clamp(MIN_WINDOW, MAX_WINDOW);
    let varint = |n: u64| quinn::VarInt::from_u64(n).unwrap_or(quinn::VarInt::MAX);
    c.stream_receive_window(varint(window / 2));
    c.receive_window(varint(window));
    c.send_window(2 * window);
    if keep_alive {
        c.keep_alive_interval(Some(t.idle / 3));
    }
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    // Probe up to jumbo frames; paths that cannot carry them just lose the probes.
    mtu.upper_bound(8952);
    c.mtu_discovery_config(Some(mtu));
    c
}

impl Endpoint {
    /// Bind and start accepting connections.
    ///
    /// ```
    /// use swarm_engine::net::{Endpoint, EndpointConfig, SecretKey};
    /// use swarm_engine::store::Store;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let key = SecretKey::from_bytes(&[5; 32]);
    /// let endpoint = Endpoint::bind(Store::memory()?, key.clone(), config).await?;
    /// assert_eq!(endpoint.node_id(), key.node_id());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind(
        store: Store,
        secret: SecretKey,
        config: EndpointConfig,
    ) -> Result<Self, BindError> {
        config.validate()?;
        let server = server_config(&secret, &config.timeouts, config.window)?;
        let bind_err = |source| BindError::Bind {
            addr: config.listen,
            source,
        };
        let socket = udp_socket(config.listen).map_err(bind_err)?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| bind_err(std::io::Error::other("no async runtime")))?;
        let quic = quinn::Endpoint::new(
            identity::ResetKey::endpoint_config(&secret),
            Some(server),
            socket,
            runtime,
        )
        .map_err(bind_err)?;
        let superseeds = superseed::SuperSeeds::for_mode(
            config.super_seed,
            config.upload_limit,
            secret.node_id(),
        );
        let ctx = Ctx {
            store,
            me: secret.node_id(),
            up: Arc::new(limit::Bucket::new(config.upload_limit)),
            down: Arc::new(limit::Bucket::new(config.download_limit)),
            max_connections: Arc::new(config.max_connections.into()),
            window: Arc::new(config.window.into()),
            config: Arc::new(config),
            stats: Arc::default(),
            book: Arc::default(),
            haves: Arc::default(),
            gossip: Arc::default(),
            superseeds: superseeds.map(Arc::new),
            sessions: Arc::default(),
        };
        let accept = tokio::spawn(serve::accept_loop(quic.clone(), ctx.clone()));
        Ok(Self {
            inner: Arc::new(EndpointInner {
                quic,
                secret,
                ctx,
                accept: std::sync::Mutex::new(Some(accept)),
            }),
        })
    }

    /// This node's id.
    ///
    /// ```
    /// use swarm_engine::net::{Endpoint, EndpointConfig, SecretKey};
    /// use swarm_engine::store::Store;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = SecretKey::from_bytes(&[5; 32]);
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let endpoint = Endpoint::bind(Store::memory()?, key.clone(), config).await?;
    /// // What peers put before the address: NODEID@HOST:PORT.
    /// println!("{}@{}", endpoint.node_id(), endpoint.local_addr()?);
    /// assert_eq!(endpoint.node_id(), key.node_id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn node_id(&self) -> NodeId {
        self.inner.ctx.me
    }

    /// Its [`EndpointConfig::window`] now: what a download keeps
    /// requested from one peer at most.
    pub(crate) fn window(&self) -> u64 {
        self.inner.ctx.window.load(Ordering::Relaxed)
    }

    /// The bound address.
    ///
    /// ```
    /// use swarm_engine::net::{Endpoint, EndpointConfig, SecretKey};
    /// use swarm_engine::store::Store;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let endpoint = Endpoint::bind(Store::memory()?, SecretKey::generate()?, config).await?;
    /// assert_ne!(endpoint.local_addr()?.port(), 0); // the port picked
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.quic.local_addr()
    }

    /// The store being served.
    ///
    /// ```
    /// use swarm_engine::net::{Endpoint, EndpointConfig, SecretKey};
    /// use swarm_engine::store::Store;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Store::memory()?;
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let endpoint = Endpoint::bind(store.clone(), SecretKey::generate()?, config).await?;
    /// // The same store: what is added to it is served at once.
    /// let hash = store.put_blob(b"new")?;
    /// assert!(endpoint.store().blob_info(&hash)?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn store(&self) -> &Store {
        &self.inner.ctx.store
    }

    /// Live counters.
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    ///
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// peer.ask(hash).await?;
    /// assert!(seeder.stats().served_total.load(Ordering::Relaxed) >= 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> &Stats {
        &self.inner.ctx.stats
    }

    /// The settings it was bound with (the limits as they were then; see
    /// [`Self::limits`]).
    pub fn config(&self) -> &EndpointConfig {
        &self.inner.ctx.config
    }

    /// The limits it runs under now.
    pub fn limits(&self) -> Limits {
        let ctx = &self.inner.ctx;
        Limits {
            upload_limit: ctx.up.rate(),
            download_limit: ctx.down.rate(),
            max_connections: ctx.max_connections.load(Ordering::Relaxed),
            window: ctx.window.load(Ordering::Relaxed),
        }
    }

    /// Run under `limits` from now on, without touching a connection: the
    /// caps apply to the next bytes, the connection limit to the next
    /// peer (those over it stay), the window to the connections made and
    /// the fetches started from now on. A connection limit of 0, a rate
    /// of 0 or a window out of range is refused, and nothing changes.
    /// Super-seeding's `auto` mode keeps what it chose at bind.
    pub fn set_limits(&self, limits: &Limits) -> Result<(), ConfigError> {
        limits.validate()?;
        let ctx = &self.inner.ctx;
        if limits.window != ctx.window.load(Ordering::Relaxed) {
            // Connections peers open from now on; those open keep theirs.
            let server = server_config(&self.inner.secret, &ctx.config.timeouts, limits.window)
                .map_err(|e| ConfigError::Tls(e.to_string()))?;
            self.inner.quic.set_server_config(Some(server));
            ctx.window.store(limits.window, Ordering::Relaxed);
        }
        ctx.up.set_rate(limits.upload_limit);
        ctx.down.set_rate(limits.download_limit);
        ctx.max_connections
            .store(limits.max_connections, Ordering::Relaxed);
        Ok(())
    }

    /// The peers connected to this node now and what each connection has
    /// been served, most bytes first.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.inner.ctx.sessions.list()
    }

    /// Each peer connection opening, and closing with what it was served,
    /// from now on. A receiver that lags more than 256 events behind is
    /// told so and misses them.
    pub fn session_events(&self) -> tokio::sync::broadcast::Receiver<SessionEvent> {
        self.inner.ctx.sessions.subscribe()
    }

    /// What `blobs` together have been served since the endpoint started:
    /// bytes, and how many distinct peers.
    pub fn served(&self, blobs: &[crate::Hash]) -> ServedTotal {
        self.inner.ctx.sessions.served_of(blobs)
    }

    /// QUIC connections open now, both the ones peers opened and the ones
    /// this node dialled.
    pub fn open_connections(&self) -> usize {
        self.inner.quic.open_connections()
    }

    /// Tell every peer that asked about `hash` on a connection that these
    /// groups of it are now verified here (a `Have` on the control stream).
    ///
    /// ```
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::store::GroupSet;
    ///
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// // The client receives groups 0..3 and tells every peer that asked about
    /// // the blob on a connection, so they can fetch those groups from it.
    /// let blob = client.store().partial(hash, 100_000)?;
    /// let (blob, got) = peer.get(blob, group_ranges(0, 3), &|_| {}).await;
    /// got?;
    /// let mut held = GroupSet::new();
    /// held.insert(0, 3);
    /// assert_eq!(blob.present(), held);
    /// client.announce_have(hash, 100_000, &held);
    /// # Ok(())
    /// # }
    /// ```
    pub fn announce_have(&self, hash: crate::Hash, size: u64, groups: &crate::store::GroupSet) {
        let groups = wire::WireRanges::from_groups(groups, wire::MAX_HAVE_RANGES);
        if groups.is_empty() {
            return;
        }
        if let Some(ss) = &self.inner.ctx.superseeds {
            // Fetched, not first served here: not to super-seed by itself.
            ss.fetched(hash);
        }
        self.inner
            .ctx
            .haves
            .announce(wire::Have { hash, size, groups });
    }

    /// Up to `max` peers this node knows to have `hash`, newest first: ones
    /// it fetched it from, and ones that fetched it from here, while they
    /// run (wire.md §3.8).
    /// Follow these (publisher, name, channel) here: gossip peers are told
    /// (wire.md §3.9), and send their accepted releases of them.
    pub fn gossip_follow(&self, subjects: Vec<wire::Subject>) {
        let ctx = &self.inner.ctx;
        ctx.gossip.follow_local(subjects, &ctx.haves);
    }

    /// Where gossiped records for followed subjects arrive, to be checked
    /// against the trust policy and reported with [`Self::gossip_checked`].
    /// One receiver per endpoint: a second call replaces the first.
    pub fn gossip_inbox(&self) -> tokio::sync::mpsc::Receiver<gossip::Inbound> {
        self.inner.ctx.gossip.inbox()
    }

    /// What the trust check made of a gossiped record: a newer release goes
    /// on, as `release` (the node's view of it, with the roots it knows),
    /// to the peers that follow it; a refused one strikes its sender.
    pub fn gossip_checked(
        &self,
        from: &gossip::Inbound,
        release: &crate::release::SignedRelease,
        outcome: crate::release::gossip::Checked,
    ) {
        let ctx = &self.inner.ctx;
        ctx.gossip.checked(from, release, outcome, &ctx.haves);
    }

    /// A release accepted here other than by gossip (published, fetched,
    /// resolved): tell the peers that follow it.
    pub fn gossip_release(&self, release: &crate::release::SignedRelease) {
        let ctx = &self.inner.ctx;
        ctx.gossip.originate(release, &ctx.haves);
    }

    /// Gossip counters since the start.
    pub fn gossip_stats(&self) -> crate::release::gossip::GossipStats {
        self.inner.ctx.gossip.stats()
    }

    pub(crate) fn known_peers(&self, hash: &crate::Hash, max: usize) -> Vec<SocketAddr> {
        let own = self
            .local_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        self.inner.ctx.book.get(hash, own, max)
    }

    /// `Have`s peers send about `hashes`, until the watch is dropped.
    pub(crate) fn watch_haves(&self, hashes: Vec<crate::Hash>) -> haves::HaveWatch {
        self.inner.ctx.haves.watch(hashes)
    }

    /// Connect to a peer and exchange `Hello`.
    ///
    /// ```
    /// use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// use swarm_engine::store::Store;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let key = SecretKey::generate()?;
    /// let server = Endpoint::bind(Store::memory()?, key, config.clone()).await?;
    /// let client = Endpoint::bind(Store::memory()?, SecretKey::generate()?, config).await?;
    /// // Without an id any node at the address will do; with one, only that node.
    /// let peer = client.connect(&PeerAddr { id: None, addr: server.local_addr()? }).await?;
    /// assert_eq!(peer.id(), server.node_id());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(&self, addr: &PeerAddr) -> Result<Peer, ConnectError> {
        let ctx = &self.inner.ctx;
        let t = &ctx.config.timeouts;
        let seen = Arc::new(std::sync::Mutex::new(None));
        let tls = tls::client_config(&self.inner.secret, addr.id, seen.clone())
            .map_err(|e| ConnectError::Setup(Box::new(e)))?;
        let quic_tls = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| ConnectError::Setup(Box::new(e)))?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic_tls));
        let window = ctx.window.load(Ordering::Relaxed);
        client.transport_config(Arc::new(transport(t, window, true)));
        let connecting = self
            .inner
            .quic
            .connect_with(client, addr.addr, tls::SERVER_NAME)
            .map_err(|e| ConnectError::Setup(Box::new(e)))?;
        let timeout = |secs| ConnectError::Timeout {
            addr: addr.clone(),
            secs,
        };
        let conn = tokio::time::timeout(t.connect, connecting)
            .await
            .map_err(|_| timeout(t.connect.as_secs()))?
            .map_err(|source| {
                let actual = seen.lock().ok().and_then(|s| *s);
                match (addr.id, actual) {
                    (Some(expected), Some(actual)) if expected != actual => {
                        ConnectError::WrongNode {
                            addr: addr.addr,
                            expected,
                            actual,
                        }
                    }
                    _ => ConnectError::Connect {
                        addr: addr.clone(),
                        source,
                    },
                }
            })?;
        // A peer that is full closes the connection with `Busy` as soon as
        // it is up; whatever step of the exchange notices, say so.
        let handshake = |what: String| {
            if closed_busy(&conn) {
                ConnectError::Busy { addr: addr.clone() }
            } else {
                ConnectError::Handshake {
                    addr: addr.clone(),
                    what,
                }
            }
        };
        let peer_id = tls::peer_id(&conn).ok_or_else(|| handshake("no peer key".into()))?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| handshake(e.to_string()))?;
        stream::write_message(&mut send, &hello(&ctx.config))
            .await
            .map_err(|e| handshake(e.to_string()))?;
        let reply = stream::read_message(&mut recv, t.hello)
            .await
            .map_err(|e| {
                let err = handshake(format!("no valid Hello: {e}"));
                conn.close(e.code().to_u16().into(), b"bad hello");
                err
            })?;
        let version = match reply {
            Message::Hello(h) => match hello_version(&ctx.config, &h) {
                Some(v) => v,
                None => {
                    conn.close(ErrorCode::UnsupportedVersion.to_u16().into(), b"version");
                    return Err(handshake(format!(
                        "speaks versions {}..={}, we speak {}..={}",
                        h.min_version,
                        h.max_version,
                        wire::MIN_VERSION,
                        ctx.config.max_version
                    )));
                }
            },
            Message::Error(e) => return Err(handshake(format!("{}: {}", e.code, e.text))),
            other => {
                conn.close(
                    ErrorCode::ProtocolViolation.to_u16().into(),
                    b"expected hello",
                );
                return Err(handshake(format!("sent {other:?} instead of Hello")));
            }
        };
        let span = info_span!("peer", id = %peer_id.short(), addr = %addr.addr);
        tokio::spawn(
            serve::run_connection(conn.clone(), ctx.clone(), (send, recv), peer_id, version)
                .instrument(span),
        );
        debug!(peer = %peer_id, "connected");
        Ok(Peer::new(conn, peer_id, addr.addr, ctx.clone()))
    }

    /// Stop accepting, close every connection, and wait briefly for peers
    /// to be told.
    ///
    /// ```
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// client.close().await;
    /// assert!(peer.is_closed());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(&self) {
        let accept = self.inner.accept.lock().ok().and_then(|mut a| a.take());
        if let Some(h) = accept {
            h.abort();
            // Until it is dropped it holds the store (and its lock).
            let _ = h.await;
        }
        self.inner
            .quic
            .close(ErrorCode::Ok.to_u16().into(), CLOSE_SHUTDOWN);
        // Long enough for the close to go out on every connection. Not the
        // draining of them all: a connection attempt to a peer that has
        // gone drains for seconds (it never measured a round trip), and
        // made every `swarm fetch` that had tried one exit 2 s late.
        let _ = tokio::time::timeout(CLOSE_WAIT, self.inner.quic.wait_idle()).await;
    }
}

/// How long [`Endpoint::close`] waits for its connections to wind down.
const CLOSE_WAIT: Duration = Duration::from_millis(100);
/// How long a connection a fetch is done with stays open (see
/// [`Peer::retire`]).
pub(crate) const RETIRE_AFTER: Duration = Duration::from_secs(5);

/// The reason of a clean close by a side that runs on (wire.md §2).
pub(crate) const CLOSE_DONE: &[u8] = b"done";
/// The reason of a clean close by a node going away (wire.md §2).
pub(crate) const CLOSE_SHUTDOWN: &[u8] = b"shutting down";

/// Whether the peer still runs after its connection ended this way: it
/// closed saying so, or this side closed it (the peer did not go away).
/// Timed out, reset, shut down or closed for an error: it may be gone.
pub(crate) fn peer_runs_on(reason: Option<&quinn::ConnectionError>) -> bool {
    match reason {
        Some(quinn::ConnectionError::ApplicationClosed(c)) => {
            c.error_code == ErrorCode::Ok.to_u16().into() && c.reason.as_ref() == CLOSE_DONE
        }
        Some(quinn::ConnectionError::LocallyClosed) => true,
        _ => false,
    }
}

/// Socket buffer size asked for. The kernel default (about 200 KiB) drops
/// datagrams at a few hundred MB/s, and every drop halves the congestion
/// window; Linux caps the request at `net.core.rmem_max`/`wmem_max`.
const SOCKET_BUFFER: usize = 8 << 20;

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Accept IPv4 too when bound to [::].
        let _ = socket.set_only_v6(false);
    }
    // Best effort: a smaller buffer still works, only slower.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Whether the peer closed `conn` with `Busy`.
fn closed_busy(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(c))
            if c.error_code == ErrorCode::Busy.to_u16().into()
    )
}

pub(crate) fn hello(config: &EndpointConfig) -> Message {
    Message::Hello(Hello {
        min_version: wire::MIN_VERSION,
        max_version: config.max_version,
        agent: config.agent.chars().take(wire::MAX_AGENT).collect(),
    })
}

/// The version spoken with a peer that sent `theirs` (wire.md §3.1).
pub(crate) fn hello_version(config: &EndpointConfig, theirs: &Hello) -> Option<u16> {
    let ours = Hello {
        min_version: wire::MIN_VERSION,
        max_version: config.max_version,
        agent: String::new(),
    };
    wire::negotiate(&ours, theirs)
}

pub(crate) fn count(c: &AtomicU64, delta: i64) {
    if delta >= 0 {
        c.fetch_add(delta as u64, Ordering::Relaxed);
    } else {
        c.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod bound_tests;
#[cfg(test)]
mod misbehaviour_tests;
#[cfg(test)]
mod superseed_tests;
#[cfg(test)]
mod swarm_tests;
#[cfg(test)]
mod tests;
