//! Discovery on the BitTorrent mainline DHT: who has a root (BEP 5
//! announce_peer / get_peers on a derived info-hash), and what a
//! publisher's newest release is (a BEP 44 mutable item under the
//! publisher's own key).
//!
//! Tests run a local DHT (`mainline::Testnet` on 127.0.0.1) and never
//! touch the internet.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use mainline::{Id, MutableItem};

use crate::content::Hash;
use crate::metrics::{self, DhtOp};
use crate::release::{MAX_CHAIN, PublicKey, SecretKey, SignedRelease, SignedRoot};

/// The public mainline bootstrap routers (used unless configured otherwise).
///
/// ```
/// use swarm_engine::discovery::{DEFAULT_BOOTSTRAP, DhtConfig};
///
/// assert_eq!(DhtConfig::default().bootstrap, DEFAULT_BOOTSTRAP);
/// ```
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
    "relay.pkarr.org:6881",
];

/// BEP 44 limits the value of a mutable item to 1000 bytes.
///
/// ```
/// use swarm_engine::discovery::MAX_VALUE;
/// use swarm_engine::release::MAX_BINARY;
///
/// // Any valid release fits in one DHT item.
/// assert!(MAX_BINARY <= MAX_VALUE);
/// ```
pub const MAX_VALUE: usize = 1000;

/// The 20-byte DHT info-hash of a root: a domain-separated BLAKE3 key
/// derivation, so it is not a bare truncation of the root and cannot be
/// confused with another application's keys.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::discovery::info_hash;
///
/// let root = Hash::of(b"a root");
/// assert_ne!(&info_hash(&root)[..], &root.as_bytes()[..20]);
/// assert_eq!(info_hash(&root), info_hash(&Hash::of(b"a root")));
/// ```
pub fn info_hash(root: &Hash) -> [u8; 20] {
    let full = blake3::derive_key("swarm 2026-11 dht info-hash v1", root.as_bytes());
    let mut out = [0u8; 20];
    out.copy_from_slice(&full[..20]);
    out
}

/// The BEP 44 salt for a (name, channel) pointer: derived, so that any
/// name and channel fit the 64-byte salt limit.
///
/// ```
/// use swarm_engine::discovery::pointer_salt;
///
/// assert_ne!(pointer_salt("app", "stable"), pointer_salt("app", "beta"));
/// // The separator keeps name and channel apart.
/// assert_ne!(pointer_salt("ab", "c"), pointer_salt("a", "bc"));
/// ```
pub fn pointer_salt(name: &str, channel: &str) -> [u8; 16] {
    let mut input = Vec::with_capacity(name.len() + channel.len() + 1);
    input.extend_from_slice(name.as_bytes());
    input.push(0);
    input.extend_from_slice(channel.as_bytes());
    let full = blake3::derive_key("swarm 2026-11 release pointer salt v1", &input);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// How to join the DHT.
///
/// ```
/// use std::time::Duration;
/// use swarm_engine::discovery::DhtConfig;
///
/// // A long-running node that serves the DHT, on a fixed port.
/// let config = DhtConfig {
///     port: 6881,
///     server: true,
///     request_timeout: Some(Duration::from_secs(2)),
///     ..DhtConfig::default()
/// };
/// assert!(!config.bootstrap.is_empty()); // the public routers
/// ```
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// Bootstrap nodes, `HOST:PORT`. Empty: the public routers.
    pub bootstrap: Vec<String>,
    /// UDP port to bind; 0 picks one.
    pub port: u16,
    /// How long to wait for each DHT request.
    pub request_timeout: Option<Duration>,
    /// Act as a full DHT node (answer queries); off for short-lived clients.
    pub server: bool,
    /// The IPv4 address to bind; `None`: every interface.
    pub bind: Option<std::net::Ipv4Addr>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            bootstrap: DEFAULT_BOOTSTRAP.iter().map(|s| (*s).to_owned()).collect(),
            port: 0,
            request_timeout: None,
            server: false,
            bind: None,
        }
    }
}

/// A DHT operation that failed.
///
/// ```
/// use swarm_engine::discovery::{Dht, DhtConfig, DhtError};
///
/// // The UDP port asked for is taken.
/// let taken = std::net::UdpSocket::bind("0.0.0.0:0")?;
/// let config = DhtConfig { port: taken.local_addr()?.port(), ..DhtConfig::default() };
/// assert!(matches!(Dht::spawn(&config), Err(DhtError::Start(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// The DHT node could not start.
    #[error("cannot start the DHT node")]
    Start(#[source] std::io::Error),
    /// A store operation (announce, put) reached no node.
    #[error("the DHT did not accept the {what}: {detail}")]
    Put {
        /// What was being stored.
        what: &'static str,
        /// The DHT's reason.
        detail: String,
    },
    /// The signed release is too large for a BEP 44 item.
    #[error("the release is {0} bytes bencoded, more than the 1000 a DHT item holds")]
    TooLarge(usize),
    /// The DHT holds another release under the same sequence; nodes keep
    /// the first and ignore the second.
    #[error(
        "the DHT already holds another release under sequence {0}; nodes ignore a second put \
         of one sequence, so publish the next sequence"
    )]
    SameSeq(i64),
    /// Read back after the put, the pointer is not the one put.
    #[error(
        "the put was not taken: read back, the DHT pointer holds {}",
        match .0 { Some(s) => format!("sequence {s}"), None => "nothing".to_owned() }
    )]
    NotTaken(Option<i64>),
    /// A newer pointer already exists in the DHT.
    #[error(
        "the DHT already holds a newer release pointer (sequence {0}); publish a higher sequence"
    )]
    Stale(i64),
}

/// A small DHT of its own on 127.0.0.1, for demos and tests: a few nodes in
/// server mode, with nothing reaching the internet. Stops when dropped.
///
/// ```
/// use swarm_engine::discovery::{Dht, LocalDht};
///
/// let local = LocalDht::start(1)?;
/// // Any number of nodes can join it; it stops when `local` is dropped.
/// let a = Dht::spawn(&local.config())?;
/// let b = Dht::spawn(&local.config())?;
/// # drop((a, b));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LocalDht {
    testnet: mainline::Testnet,
}

impl LocalDht {
    /// Start `nodes` DHT nodes on 127.0.0.1.
    ///
    /// ```
    /// use swarm_engine::discovery::LocalDht;
    ///
    /// let local = LocalDht::start(3)?;
    /// assert_eq!(local.config().bootstrap.len(), 3); // one address per node
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(nodes: usize) -> std::io::Result<Self> {
        Ok(Self {
            // On 127.0.0.1 only (`Testnet::new` binds every interface).
            testnet: mainline::Testnet::builder(nodes).build()?,
        })
    }

    /// Settings that join this DHT and nothing else.
    ///
    /// ```
    /// use swarm_engine::discovery::LocalDht;
    /// use swarm_engine::node::Node;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let local = LocalDht::start(1)?;
    /// let node = Node::builder().memory().dht(local.config()).spawn().await?;
    /// assert!(node.dht().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(&self) -> DhtConfig {
        DhtConfig {
            bootstrap: self.testnet.bootstrap.clone(),
            port: 0,
            request_timeout: Some(Duration::from_millis(500)),
            server: false,
            bind: Some(std::net::Ipv4Addr::LOCALHOST),
        }
    }
}

/// A handle on the mainline DHT. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use swarm_engine::Hash;
/// use swarm_engine::discovery::{Dht, LocalDht};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let local = LocalDht::start(1)?;
/// let seeder = Dht::spawn(&local.config())?;
/// let finder = Dht::spawn(&local.config())?;
/// let root = Hash::of(b"a root");
/// seeder.announce(&root, 7411).await?;
/// let peers = finder.find_peers(&root, Duration::from_secs(2)).await;
/// assert!(peers.iter().any(|p| p.port() == 7411));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Dht {
    inner: mainline::async_dht::AsyncDht,
    /// When this node last announced a root, and how it went.
    last_announce: std::sync::Arc<std::sync::Mutex<Option<Announced>>>,
}

/// The last announcement a [`Dht`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// When it ended.
    pub at: std::time::SystemTime,
    /// The root announced.
    pub root: Hash,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl Dht {
    /// Join the DHT.
    ///
    /// ```
    /// use swarm_engine::discovery::{Dht, LocalDht};
    ///
    /// let local = LocalDht::start(1)?;
    /// // Returns at once; joining goes on in the background (see
    /// // `bootstrapped`).
    /// let dht = Dht::spawn(&local.config())?;
    /// # drop(dht);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn(config: &DhtConfig) -> Result<Self, DhtError> {
        let mut b = mainline::Dht::builder();
        b.bootstrap(&config.bootstrap);
        if config.port != 0 {
            b.port(config.port);
        }
        if let Some(t) = config.request_timeout {
            b.request_timeout(t);
        }
        if config.server {
            b.server_mode();
        }
        if let Some(ip) = config.bind {
            b.bind_address(ip);
        }
        // mainline's actor thread binds the socket; when that fails before
        // the builder has asked it anything, the builder panics (mainline
        // 8.0.1, dht.rs:143) instead of returning the error. A port that is
        // taken is the usual cause: find that out here first, and turn a
        // panic in the remaining window into the same error.
        if config.port != 0 {
            let ip = config.bind.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            drop(std::net::UdpSocket::bind((ip, config.port)).map_err(DhtError::Start)?);
        }
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.build()));
        let dht = built
            .unwrap_or_else(|_| {
                Err(std::io::Error::other(
                    "the DHT node stopped as it started (its UDP socket could not be bound)",
                ))
            })
            .map_err(DhtError::Start)?;
        Ok(Self {
            inner: dht.as_async(),
            last_announce: Default::default(),
        })
    }

    /// How many DHT nodes the routing table holds.
    pub async fn routing_table_size(&self) -> usize {
        self.inner.to_bootstrap().await.len()
    }

    /// The UDP address the DHT node listens on.
    pub async fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.inner.info().await.local_addr())
    }

    /// The last root this node announced, when, and how it went; `None`
    /// before the first.
    pub fn last_announce(&self) -> Option<Announced> {
        self.last_announce
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wait until the routing table holds some nodes; false if bootstrap failed.
    ///
    /// ```
    /// use swarm_engine::discovery::{Dht, DhtConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Nobody to bootstrap from: the routing table stays empty.
    /// let alone = Dht::spawn(&DhtConfig { bootstrap: vec![], ..DhtConfig::default() })?;
    /// assert!(!alone.bootstrapped().await);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bootstrapped(&self) -> bool {
        self.inner.bootstrapped().await
    }

    /// The addresses others can use to bootstrap from this node.
    ///
    /// ```
    /// use swarm_engine::discovery::{Dht, LocalDht};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let local = LocalDht::start(1)?;
    /// let dht = Dht::spawn(&local.config())?;
    /// assert!(dht.bootstrapped().await);
    /// // What to give another node's `DhtConfig::bootstrap`.
    /// assert!(!dht.bootstrap_addrs().await.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bootstrap_addrs(&self) -> Vec<String> {
        self.inner.to_bootstrap().await
    }

    /// Announce that this node serves `root` on UDP `port`. DHT nodes
    /// forget announcements after a while: repeat it while serving. See the
    /// example on [`Dht`], which announces a root and finds it.
    pub async fn announce(&self, root: &Hash, port: u16) -> Result<(), DhtError> {
        let began = Instant::now();
        let done = self
            .inner
            .announce_peer(Id::from(info_hash(root)), Some(port))
            .await
            .map(|_| ())
            .map_err(|e| DhtError::Put {
                what: "announcement",
                detail: e.to_string(),
            });
        metrics::dht(DhtOp::Announce, ok_or_failed(&done), began.elapsed());
        let last = Announced {
            at: std::time::SystemTime::now(),
            root: *root,
            error: done.as_ref().err().map(ToString::to_string),
        };
        *self.last_announce.lock().unwrap_or_else(|e| e.into_inner()) = Some(last);
        done
    }

    /// Peers that announced `root`, de-duplicated, gathered for at most
    /// `limit` time. Empty when nobody announced it. See the example on
    /// [`Dht`].
    pub async fn find_peers(&self, root: &Hash, limit: Duration) -> Vec<SocketAddr> {
        let mut seen = BTreeSet::new();
        self.find_peers_each(root, limit, |a| {
            seen.insert(a);
        })
        .await;
        seen.into_iter().collect()
    }

    /// As [`Self::find_peers`], handing each address to `found` as the
    /// DHT nodes answer (the same address may come more than once), so a
    /// fetch can connect to the first peers while the lookup goes on.
    pub async fn find_peers_each(
        &self,
        root: &Hash,
        limit: Duration,
        mut found: impl FnMut(SocketAddr),
    ) {
        let began = Instant::now();
        let mut stream = self.inner.get_peers(Id::from(info_hash(root)));
        let deadline = tokio::time::Instant::now() + limit;
        let mut any = false;
        while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, stream.next()).await {
            for a in batch {
                any = true;
                found(SocketAddr::V4(a));
            }
        }
        let result = if any { "ok" } else { "empty" };
        metrics::dht(DhtOp::FindPeers, result, began.elapsed());
    }

    /// Put `signed` as the publisher's latest release pointer for its
    /// (name, channel), signed with `key` (the publisher's). Refuses to
    /// replace a newer pointer.
    ///
    /// ```
    /// use swarm_engine::discovery::{Dht, LocalDht};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let release = |seq| {
    /// #     Release {
    /// #         publisher: key.public(),
    /// #         name: "app".into(),
    /// #         channel: "stable".into(),
    /// #         version: semver::Version::new(1, seq, 0),
    /// #         seq,
    /// #         root: Hash::of(&seq.to_le_bytes()),
    /// #         size: 1234,
    /// #         created: 1_800_000_000,
    /// #         expires: None,
    /// #         rollout: Default::default(),
    /// #     }
    /// #     .sign(&key)
    /// # };
    /// let local = LocalDht::start(1)?;
    /// let publisher = Dht::spawn(&local.config())?;
    /// publisher.put_release(&release(1)?, &key).await?;
    /// let reader = Dht::spawn(&local.config())?;
    /// let newest = reader.resolve(&key.public(), "app", "stable").await;
    /// assert_eq!(newest.map(|s| s.release().seq), Some(1));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_release(
        &self,
        signed: &SignedRelease,
        key: &SecretKey,
    ) -> Result<(), DhtError> {
        let began = Instant::now();
        let r = signed.release();
        if key.public() != r.publisher {
            return Err(DhtError::Put {
                what: "release pointer",
                detail: format!(
                    "it is signed with {}, not {}, the publisher key the release names",
                    key.public(),
                    r.publisher
                ),
            });
        }
        let value = signed.to_pointer_bytes();
        // mainline reports an oversized value only as a timeout: check
        // first, on the bencoded value as nodes count it.
        let bencoded = bencoded_len(&value);
        if bencoded > MAX_VALUE {
            return Err(DhtError::TooLarge(bencoded));
        }
        let seq = i64::try_from(r.seq).map_err(|_| DhtError::TooLarge(bencoded))?;
        let salt = pointer_salt(&r.name, &r.channel);
        let current = self
            .inner
            .get_mutable_most_recent(r.publisher.as_bytes(), Some(&salt))
            .await;
        let cas = match current {
            Some(c) if c.seq() > seq => return Err(DhtError::Stale(c.seq())),
            Some(c) if c.seq() == seq && c.value() != value.as_slice() => {
                return Err(DhtError::SameSeq(seq));
            }
            Some(c) => Some(c.seq()),
            None => None,
        };
        // The roots first, so that whoever resolves the new pointer finds
        // the chain it needs.
        if !signed.chain().is_empty() {
            self.put_roots(signed.chain(), key).await?;
        }
        let item = MutableItem::new(key.signing_key().clone(), &value, seq, Some(&salt));
        let done = self
            .inner
            .put_mutable(item, cas.filter(|&c| c < seq))
            .await
            .map(|_| ())
            .map_err(|e| DhtError::Put {
                what: "release pointer",
                detail: e.to_string(),
            });
        // Nodes answer a put they then ignore (an equal sequence, a value
        // they find too large) as if they took it: read it back.
        let done = match done {
            Ok(()) => match self
                .inner
                .get_mutable_most_recent(r.publisher.as_bytes(), Some(&salt))
                .await
            {
                Some(b) if b.seq() == seq && b.value() == value.as_slice() => Ok(()),
                back => Err(DhtError::NotTaken(back.map(|b| b.seq()))),
            },
            e => e,
        };
        metrics::dht(DhtOp::PutRelease, ok_or_failed(&done), began.elapsed());
        done
    }

    /// Put the roots of a threshold publisher's chain as DHT items under
    /// its pointer key (§8.4), each in as many parts as it needs, so that a
    /// fetcher that resolves a release under a newer root than it knows can
    /// fetch the roots between. Each item is read back.
    pub async fn put_roots(&self, roots: &[SignedRoot], key: &SecretKey) -> Result<(), DhtError> {
        let mut puts = Vec::new();
        for r in roots {
            let bytes = r.to_bytes();
            let parts: Vec<&[u8]> = bytes.chunks(ROOT_PART).collect();
            for (i, chunk) in parts.iter().enumerate() {
                let mut value = Vec::with_capacity(chunk.len() + 1);
                value.push(parts.len() as u8);
                value.extend_from_slice(chunk);
                let salt = root_salt(r.root().version, i as u8);
                let item = MutableItem::new(key.signing_key().clone(), &value, 1, Some(&salt));
                let dht = self.inner.clone();
                let public = *key.public().as_bytes();
                puts.push(tokio::spawn(async move {
                    let put = dht.put_mutable(item, None).await;
                    let back = dht.get_mutable_most_recent(&public, Some(&salt)).await;
                    match (put, back) {
                        (_, Some(b)) if b.value() == value.as_slice() => Ok(()),
                        (Err(e), _) => Err(DhtError::Put {
                            what: "root of trust",
                            detail: e.to_string(),
                        }),
                        (Ok(_), b) => Err(DhtError::NotTaken(b.map(|b| b.seq()))),
                    }
                }));
            }
        }
        for p in puts {
            p.await.map_err(|e| DhtError::Put {
                what: "root of trust",
                detail: e.to_string(),
            })??;
        }
        Ok(())
    }

    /// Root `version` of the publisher `pointer`, from the DHT (§8.4);
    /// `None` if it is not there whole. Decoded only: the chain check is
    /// the policy's.
    pub async fn get_root(&self, pointer: &PublicKey, version: u64) -> Option<SignedRoot> {
        // A root never changes: the first node's answer is as good as any
        // (and it is verified later in any case).
        let item = |part: u8| {
            let dht = self.inner.clone();
            let salt = root_salt(version, part);
            let key = *pointer.as_bytes();
            async move { dht.get_mutable(&key, Some(&salt), None).next().await }
        };
        let first = item(0).await?;
        let (&count, head) = first.value().split_first()?;
        let mut bytes = head.to_vec();
        for part in 1..count {
            let next = item(part).await?;
            let (&c, rest) = next.value().split_first()?;
            if c != count {
                return None;
            }
            bytes.extend_from_slice(rest);
        }
        SignedRoot::from_bytes(&bytes)
            .ok()
            .filter(|r| r.root().version == version && r.root().pointer == *pointer)
    }

    /// The newest release pointer the DHT holds for (publisher, name,
    /// channel), decoded and signature-checked; `None` if there is none or
    /// none that decodes as a release of that publisher, name and channel.
    /// A threshold release comes with the roots of its publisher from
    /// version 1 to its own that the DHT holds (§8.4), as a token carries
    /// them. The caller still applies the trust and rollback policy. See
    /// the example on [`Self::put_release`].
    ///
    /// It answers soon after the first node that holds the pointer does
    /// ([`RESOLVE_SETTLE`] later, with the highest sequence heard by then),
    /// rather than when the whole lookup ends: a check for updates need not
    /// wait for the slowest node, and a fetcher never takes an older release
    /// than one it has seen (the policy refuses a rollback). A publisher,
    /// which must not reuse a sequence, uses [`Self::resolve_newest`].
    pub async fn resolve(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
    ) -> Option<SignedRelease> {
        self.resolve_within(publisher, name, channel, Some(RESOLVE_SETTLE))
            .await
    }

    /// [`Self::resolve`], waiting for the whole lookup: the highest
    /// sequence any node reached holds. What a publisher reads before it
    /// picks the next sequence.
    pub async fn resolve_newest(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
    ) -> Option<SignedRelease> {
        self.resolve_within(publisher, name, channel, None).await
    }

    async fn resolve_within(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
        settle: Option<Duration>,
    ) -> Option<SignedRelease> {
        let began = Instant::now();
        let salt = pointer_salt(name, channel);
        let mut best: Option<SignedRelease> = None;
        let mut items = self
            .inner
            .get_mutable(publisher.as_bytes(), Some(&salt), None);
        let mut until: Option<tokio::time::Instant> = None;
        loop {
            let next = match until {
                None => items.next().await,
                Some(t) => match tokio::time::timeout_at(t, items.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            let Some(item) = next else { break };
            // The DHT checked the item's signature by the same key; ours
            // checks the release inside it, and that it is what was asked.
            let Ok(s) = SignedRelease::from_bytes(item.value()) else {
                continue;
            };
            let r = s.release();
            if r.publisher != *publisher || r.name != name || r.channel != channel {
                continue;
            }
            if best.as_ref().is_none_or(|b| b.release().seq < r.seq) {
                best = Some(s);
            }
            if let Some(d) = settle {
                until.get_or_insert_with(|| tokio::time::Instant::now() + d);
            }
        }
        if let Some(n) = best
            .as_ref()
            .and_then(SignedRelease::root_version)
            .filter(|&n| n <= MAX_CHAIN as u64 + 1)
        {
            let gets: Vec<_> = (1..=n)
                .map(|v| {
                    let me = self.clone();
                    let p = *publisher;
                    tokio::spawn(async move { me.get_root(&p, v).await })
                })
                .collect();
            let mut roots = Vec::new();
            for g in gets {
                // The roots up to the first missing one: the policy says
                // what is still needed.
                match g.await.ok().flatten() {
                    Some(r) => roots.push(r),
                    None => break,
                }
            }
            best = best.map(|b| b.with_roots(roots));
        }
        let result = if best.is_some() { "ok" } else { "empty" };
        metrics::dht(DhtOp::Resolve, result, began.elapsed());
        best
    }
}

/// The BEP 44 salt of part `part` of root `version` of a publisher
/// (`wire-spec/release.md` §8.4).
///
/// ```
/// use swarm_engine::discovery::{pointer_salt, root_salt};
///
/// assert_ne!(root_salt(1, 0), root_salt(2, 0));
/// assert_ne!(root_salt(1, 0), root_salt(1, 1));
/// assert_ne!(root_salt(1, 0), pointer_salt("app", "stable"));
/// ```
pub fn root_salt(version: u64, part: u8) -> [u8; 16] {
    let mut input = version.to_le_bytes().to_vec();
    input.push(part);
    let full = blake3::derive_key("swarm 2026-12 root item salt v1", &input);
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// How long [`Dht::resolve`] waits after the first answer for a higher
/// sequence from other nodes.
pub const RESOLVE_SETTLE: Duration = Duration::from_millis(300);

/// Bytes of a root in one DHT item, after the part-count byte: so that the
/// item is at most [`MAX_VALUE`] bytes bencoded.
const ROOT_PART: usize = MAX_VALUE - 5 - 1;

/// The length of `value` bencoded as a byte string (`LEN:` then the
/// bytes): what BEP 44's 1000-byte limit counts.
///
/// ```
/// # use swarm_engine::discovery::bencoded_len;
/// assert_eq!(bencoded_len(&[0; 5]), 7); // "5:" + 5 bytes
/// assert_eq!(bencoded_len(&[0; 995]), 999);
/// assert_eq!(bencoded_len(&[0; 997]), 1001);
/// ```
pub fn bencoded_len(value: &[u8]) -> usize {
    value.len() + value.len().to_string().len() + 1
}

fn ok_or_failed<T, E>(r: &Result<T, E>) -> &'static str {
    if r.is_ok() { "ok" } else { "failed" }
}

#[cfg(test)]
mod tests;
