//! The node: a store plus a network endpoint and (usually) the DHT, and
//! everything an application does with them: add and publish content,
//! fetch it with progress and control, seed it, resolve releases and
//! choose whom to trust.
//!
//! ```
//! use swarm_engine::node::{FetchOptions, Node};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("hello.txt"), b"hello swarm")?;
//!
//! // Two nodes on loopback, without the DHT: one adds, the other fetches.
//! let seeder = Node::builder().memory().listen(([127, 0, 0, 1], 0).into()).no_dht().spawn().await?;
//! let added = seeder.add(&[dir.path().join("hello.txt")]).await?;
//! let fetcher = Node::builder().memory().listen(([127, 0, 0, 1], 0).into()).no_dht().spawn().await?;
//! let peers = vec![seeder.addr()?];
//! let fetched = fetcher.fetch(added.root, FetchOptions { peers, ..Default::default() }).await?;
//! assert_eq!(fetched.size, 11);
//! # Ok(())
//! # }
//! ```

mod builder;
mod fetch;
mod follow;
mod gossip;
pub use self::gossip::InterestGuard;
mod handle;
mod running;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use self::builder::{NodeBuilder, REANNOUNCE};
pub use self::fetch::{
    DEFAULT_MAX_PEERS, FetchError, FetchOptions, FetchProgress, FetchTimings, Fetched,
    MirrorProgress, MirrorSource, Patched, PeerFailure, PeerProgress, Source,
};
pub use self::follow::{
    FIRST_RETRY, Follow, FollowEvent, FollowStatus, Following, GOSSIP_RETRY, OnFollow, SeedStatus,
};
pub use self::handle::{FetchEvents, FetchHandle};
pub use self::running::RunningFetch;
use crate::content::Hash;
use crate::discovery::{Dht, DhtError};
use crate::metrics::{self, FetchEnd};
use crate::net::{BindError, Endpoint, EndpointConfig, PeerAddr, SecretKey};
use crate::release::{Policy, PolicyError, PublicKey, SignedRelease, Want};
use crate::store::{
    AcceptError, AddError, AddOptions, Added, OpenError, PublishOptions, Published, ReadError,
    Store, StoreError,
};

/// A running node: it serves its store to peers and fetches from them.
/// Cheap to clone; every clone is the same node.
#[derive(Debug, Clone)]
pub struct Node {
    endpoint: Endpoint,
    dht: Option<Dht>,
    /// The task that keeps the pinned roots announced, if any.
    announcer: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
    /// Every fetch running.
    running: Arc<running::Running>,
    /// Checking and passing on gossiped releases.
    gossip: Arc<gossip::NodeGossip>,
}

/// A node that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The node key could not be loaded or created.
    #[error("cannot load the node key")]
    Key(#[source] StoreError),
    /// The endpoint could not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The DHT could not start.
    #[error(transparent)]
    Dht(#[from] DhtError),
    /// The re-announce interval is zero; `None` announces only when asked.
    #[error(
        "the re-announce interval is zero; give a positive interval, or none to announce only when asked"
    )]
    ZeroReannounce,
}

/// An operation of [`Node`] that failed. Nothing stored before it is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeOpError {
    /// Adding files failed.
    #[error(transparent)]
    Add(#[from] AddError),
    /// Publishing failed before anything was recorded.
    #[error(transparent)]
    Publish(#[from] crate::store::PublishError),
    /// The release is signed and recorded locally, but putting its pointer
    /// on the DHT failed. Hand out the token, or retry with
    /// [`Node::put_release`].
    #[error("published {} locally as {}, but the DHT refused the pointer", .release.release().name, .release.to_token())]
    PointerNotPut {
        /// The published release.
        release: Box<SignedRelease>,
        /// Why the DHT refused it.
        source: DhtError,
    },
    /// The content is not stored (or not completely).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The release is refused by the trust and rollback policy.
    #[error(transparent)]
    Refused(#[from] AcceptError),
    /// Looking something up needs the DHT, and this node has none.
    #[error("this node has no DHT (built with no_dht); resolving a release pointer needs one")]
    NoDht,
    /// The DHT could not be joined.
    #[error("could not join the DHT; check the bootstrap nodes and the network")]
    NotBootstrapped,
    /// The DHT failed.
    #[error(transparent)]
    Dht(#[from] DhtError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PolicyError> for NodeOpError {
    fn from(e: PolicyError) -> Self {
        Self::Refused(AcceptError::Policy(e))
    }
}

impl Node {
    /// Configure a node: store, listen address, DHT, limits.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder()
    ///     .memory()
    ///     .listen(([127, 0, 0, 1], 0).into())
    ///     .no_dht()
    ///     .upload_limit(Some(10 << 20))
    ///     .spawn()
    ///     .await?;
    /// assert!(node.addr()?.addr.ip().is_loopback());
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> NodeBuilder {
        NodeBuilder::default()
    }

    /// Start a node on `store`, with the key kept in the store (created on
    /// first start, so the node id survives restarts). No DHT: add one with
    /// [`Self::with_dht`], or use [`Self::builder`].
    ///
    /// ```
    /// use swarm_engine::net::EndpointConfig;
    /// use swarm_engine::node::Node;
    /// use swarm_engine::store::Store;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Store::memory()?;
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let a = Node::spawn(store.clone(), config.clone()).await?;
    /// let id = a.id();
    /// a.shutdown().await;
    /// // The same store, the same identity.
    /// let b = Node::spawn(store, config).await?;
    /// assert_eq!(b.id(), id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn spawn(store: Store, config: EndpointConfig) -> Result<Self, NodeError> {
        let seed = store
            .secret("node-key", || {
                SecretKey::generate()
                    .map(|k| k.to_bytes())
                    .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))
            })
            .map_err(NodeError::Key)?;
        Self::spawn_with_key(store, SecretKey::from_bytes(&seed), config).await
    }

    /// Start a node with an explicit key.
    ///
    /// ```
    /// use swarm_engine::net::{EndpointConfig, SecretKey};
    /// use swarm_engine::node::Node;
    /// use swarm_engine::store::Store;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = SecretKey::from_bytes(&[9; 32]);
    /// let id = key.node_id();
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let node = Node::spawn_with_key(Store::memory()?, key, config).await?;
    /// assert_eq!(node.id(), id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn spawn_with_key(
        store: Store,
        key: SecretKey,
        config: EndpointConfig,
    ) -> Result<Self, NodeError> {
        let endpoint = Endpoint::bind(store, key, config).await?;
        let gossip = gossip::NodeGossip::start(&endpoint);
        Ok(Self {
            endpoint,
            dht: None,
            announcer: Arc::default(),
            running: Arc::default(),
            gossip,
        })
    }

    /// Use the DHT: fetches look peers up there, and [`Self::announce`]
    /// tells it what this node serves.
    ///
    /// ```
    /// use swarm_engine::discovery::{Dht, LocalDht};
    /// use swarm_engine::net::EndpointConfig;
    /// use swarm_engine::node::Node;
    /// use swarm_engine::store::Store;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let local = LocalDht::start(3)?; // a DHT of its own on 127.0.0.1
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let node = Node::spawn(Store::memory()?, config).await?.with_dht(Dht::spawn(&local.config())?);
    /// assert!(node.dht().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_dht(mut self, dht: Dht) -> Self {
        self.dht = Some(dht);
        self
    }

    /// The DHT, if this node uses one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// assert!(node.dht().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn dht(&self) -> Option<&Dht> {
        self.dht.as_ref()
    }

    /// This node's identity (its public key).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// println!("node {}", node.id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn id(&self) -> crate::net::NodeId {
        self.endpoint.node_id()
    }

    /// The address peers reach this node at, with its id (what to give to
    /// [`FetchOptions::peers`] of another node). With an unspecified listen
    /// address (`0.0.0.0`) it says 127.0.0.1, which only this machine can
    /// use.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder()
    ///     .memory()
    ///     .listen(([127, 0, 0, 1], 0).into())
    ///     .no_dht()
    ///     .spawn()
    ///     .await?;
    /// let addr = node.addr()?;
    /// assert_eq!(addr.id, Some(node.id()));
    /// assert_ne!(addr.addr.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn addr(&self) -> std::io::Result<PeerAddr> {
        let mut addr = self.endpoint.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Ok(PeerAddr {
            id: Some(self.id()),
            addr,
        })
    }

    /// The addresses other machines may reach this node at, best first:
    /// the listen address itself when it names one; with an unspecified
    /// one (`0.0.0.0`, `::`), each interface address of that family,
    /// global before private before link-local, and loopback last (it
    /// still serves a fetch on this machine). At most
    /// [`crate::ticket::MAX_ADDRS`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder()
    ///     .memory()
    ///     .listen(([0, 0, 0, 0], 0).into())
    ///     .no_dht()
    ///     .spawn()
    ///     .await?;
    /// let addrs = node.reachable_addrs()?;
    /// let port = node.addr()?.addr.port();
    /// assert!(addrs.iter().all(|a| a.port() == port && a.is_ipv4()));
    /// assert!(addrs.last().is_some_and(|a| a.ip().is_loopback()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn reachable_addrs(&self) -> std::io::Result<Vec<std::net::SocketAddr>> {
        let local = self.endpoint.local_addr()?;
        if !local.ip().is_unspecified() {
            return Ok(vec![local]);
        }
        let mut ips: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| ip.is_ipv4() == local.is_ipv4() && !ip.is_unspecified())
            .collect();
        ips.sort_by_key(|ip| (reach_rank(ip), *ip));
        ips.dedup();
        if !ips.iter().any(|ip| ip.is_loopback()) {
            ips.push(match local {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        // Keep loopback even when there are many interfaces.
        if ips.len() > crate::ticket::MAX_ADDRS {
            let lo = ips.iter().position(|ip| ip.is_loopback());
            let lo = lo.map(|i| ips.remove(i));
            ips.truncate(crate::ticket::MAX_ADDRS - usize::from(lo.is_some()));
            ips.extend(lo);
        }
        Ok(ips
            .into_iter()
            .map(|ip| std::net::SocketAddr::new(ip, local.port()))
            .collect())
    }

    /// A ticket for `target` that names this node at
    /// [`Self::reachable_addrs`]: what `swarm share` prints.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use swarm_engine::ticket::{Ticket, TicketTarget};
    ///
    /// let node = swarm_engine::node::Node::builder()
    ///     .memory()
    ///     .listen(([127, 0, 0, 1], 0).into())
    ///     .no_dht()
    ///     .spawn()
    ///     .await?;
    /// let root = swarm_engine::Hash::of(b"a root");
    /// let ticket: Ticket = node.ticket(TicketTarget::Root(root))?.to_string().parse()?;
    /// assert_eq!(ticket.root(), root);
    /// assert_eq!(ticket.peer_addrs(), vec![node.addr()?]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ticket(
        &self,
        target: crate::ticket::TicketTarget,
    ) -> std::io::Result<crate::ticket::Ticket> {
        Ok(crate::ticket::Ticket {
            target,
            peers: vec![crate::ticket::TicketPeer {
                id: self.id(),
                addrs: self.reachable_addrs()?,
            }],
        })
    }

    /// Announce every pinned root on the DHT now. Returns how many were
    /// announced; the first error stops it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // Without a DHT there is nothing to announce to.
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// assert_eq!(node.announce().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn announce(&self) -> Result<usize, AnnounceError> {
        let Some(dht) = &self.dht else {
            return Ok(0);
        };
        let port = self
            .endpoint
            .local_addr()
            .map_err(AnnounceError::Addr)?
            .port();
        let store = self.store().clone();
        let pins = tokio::task::spawn_blocking(move || store.pins())
            .await
            .map_err(|e| AnnounceError::Addr(std::io::Error::other(e.to_string())))?
            .map_err(AnnounceError::Store)?;
        for p in &pins {
            dht.announce(&p.root, port).await?;
        }
        Ok(pins.len())
    }

    /// Re-announce every pinned root every `every` (the first time after
    /// one interval; call [`Self::announce`] for now), replacing any
    /// earlier such task, until [`Self::shutdown`] or the returned task is
    /// aborted. Failures are logged and retried next round. Nodes from
    /// [`Self::builder`] with a DHT do this already.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// let task = node.keep_announcing(std::time::Duration::from_secs(15 * 60));
    /// task.abort();
    /// # Ok(())
    /// # }
    /// ```
    pub fn keep_announcing(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        // Not a busy loop, whatever is asked.
        self.announce_every(every.max(Duration::from_secs(1)), false)
    }

    /// [`Self::keep_announcing`]; with `now`, first once the DHT is joined.
    pub(super) fn announce_every(&self, every: Duration, now: bool) -> tokio::task::JoinHandle<()> {
        let node = self.clone();
        let task = tokio::spawn(async move {
            if now
                && let Some(dht) = node.dht()
                && dht.bootstrapped().await
                && let Err(e) = node.announce().await
            {
                tracing::warn!("announcing on the DHT failed: {e}");
            }
            loop {
                tokio::time::sleep(every).await;
                node.repair().await;
                match node.announce().await {
                    Ok(n) => tracing::debug!("announced {n} roots on the DHT"),
                    Err(e) => tracing::warn!("announcing on the DHT failed: {e}"),
                }
            }
        });
        let old = self
            .announcer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task.abort_handle());
        if let Some(old) = old {
            old.abort();
        }
        task
    }

    /// Fetch again every pinned root that lost stored data to damage
    /// since the last call (found while serving it, resuming or exporting:
    /// see [`Store::take_damaged`]), from the peers that announce it on
    /// the DHT. Returns the roots repaired; failures are logged, and the
    /// root stays incomplete (and `check` reports it) until a later fetch.
    /// Nodes with a DHT do this at every re-announcement.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// assert!(node.repair().await.is_empty()); // nothing damaged
    /// # Ok(())
    /// # }
    /// ```
    pub async fn repair(&self) -> Vec<Hash> {
        let store = self.store().clone();
        let damaged = match tokio::task::spawn_blocking(move || store.take_damaged()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::warn!("cannot list damaged roots: {e}");
                return Vec::new();
            }
            Err(_) => return Vec::new(),
        };
        let mut repaired = Vec::new();
        for root in damaged {
            tracing::info!(%root, "fetching the damaged part of a pinned root again");
            match self.fetch(root, FetchOptions::default()).await {
                Ok(f) => {
                    tracing::info!(%root, received = f.received, "repaired");
                    repaired.push(root);
                }
                Err(e) => tracing::warn!(%root, "could not repair: {}", crate::error_chain(&e)),
            }
        }
        repaired
    }

    /// The network endpoint.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// assert_eq!(node.endpoint().node_id(), node.id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The store.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// assert!(node.store().pins()?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn store(&self) -> &Store {
        self.endpoint.store()
    }

    /// Import files and directories into the store, pinned under the first
    /// path's file name, so this node serves them. Content is found by its
    /// root; [`Self::seed`] also announces it on the DHT now (otherwise
    /// the node's periodic announcement does, within
    /// [`REANNOUNCE`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a.txt"), b"abc")?;
    /// let added = node.add(&[dir.path()]).await?;
    /// assert_eq!((added.files, added.size), (1, 3));
    /// assert_eq!(node.store().pins()?[0].root, added.root);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn add(&self, paths: &[impl AsRef<Path>]) -> Result<Added, NodeOpError> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let store = self.store().clone();
        Ok(blocking(move || store.add_paths(&paths, &AddOptions::default())).await?)
    }

    /// Publish `paths` as a signed release (see [`Store::publish`]): add
    /// them, sign the release with `key` at the next sequence, record it,
    /// and, with a DHT, put it as the publisher's latest release pointer
    /// for (name, channel) and announce its root. Hand out
    /// [`Published::release`]'s token, or let others find it with
    /// [`Self::resolve`].
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    /// use swarm_engine::store::PublishOptions;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("app"), b"#!/bin/sh\necho v1\n")?;
    /// let key = SecretKey::from_seed(&[1; 32]);
    /// let opts = PublishOptions::new("app", semver::Version::new(1, 0, 0));
    /// let published = node.publish(&key, &[dir.path().join("app")], &opts).await?;
    /// let token = published.release.to_token();
    /// assert!(token.starts_with("swr1"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish(
        &self,
        key: &crate::release::SecretKey,
        paths: &[impl AsRef<Path>],
        opts: &PublishOptions,
    ) -> Result<Published, NodeOpError> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let (store, k, mut o) = (self.store().clone(), key.clone(), opts.clone());
        // The newest on the DHT, so that a second publishing machine takes
        // the sequence after it.
        if let (None, Some(dht)) = (&o.after, &self.dht) {
            let publisher = o.chain.as_ref().map_or(key.public(), |c| c.pointer());
            o.after = dht.resolve_newest(&publisher, &o.name, &o.channel).await;
        }
        let published = blocking(move || store.publish(&k, &paths, &o)).await?;
        // A threshold release still collecting signatures, or one whose
        // pointer key is not this key, is put later with `put_release`.
        let complete = opts
            .chain
            .as_ref()
            .is_none_or(|c| published.release.signer_count() >= usize::from(c.newest().threshold));
        if complete {
            self.gossip_accepted(&published.release);
        }
        if self.dht.is_some() && complete && key.public() == published.release.release().publisher {
            let put = async {
                self.put_release(&published.release, key).await?;
                self.announce_root(&published.release.release().root).await
            };
            if let Err(e) = put.await {
                let source = match e {
                    NodeOpError::Dht(d) => d,
                    other => DhtError::Put {
                        what: "release pointer",
                        detail: other.to_string(),
                    },
                };
                return Err(NodeOpError::PointerNotPut {
                    release: Box::new(published.release),
                    source,
                });
            }
        }
        Ok(published)
    }

    /// Put `release` on the DHT as its publisher's latest pointer for its
    /// (name, channel), signed with `key`, the publisher's.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, release: swarm_engine::release::SignedRelease,
    /// #            key: swarm_engine::release::SecretKey) -> Result<(), Box<dyn std::error::Error>> {
    /// node.put_release(&release, &key).await?;
    /// # Ok(()) }
    /// ```
    pub async fn put_release(
        &self,
        release: &SignedRelease,
        key: &crate::release::SecretKey,
    ) -> Result<(), NodeOpError> {
        self.gossip_accepted(release);
        let dht = self.joined_dht().await?;
        Ok(dht.put_release(release, key).await?)
    }

    async fn joined_dht(&self) -> Result<&Dht, NodeOpError> {
        let dht = self.dht.as_ref().ok_or(NodeOpError::NoDht)?;
        if !dht.bootstrapped().await {
            return Err(NodeOpError::NotBootstrapped);
        }
        Ok(dht)
    }

    pub(crate) async fn announce_root(&self, root: &Hash) -> Result<(), NodeOpError> {
        let Some(dht) = &self.dht else {
            return Ok(());
        };
        let port = self.endpoint.local_addr().map_err(StoreError::Io)?.port();
        Ok(dht.announce(root, port).await?)
    }

    /// Seed `root`: pin it under `name` (it stays, and is served) and
    /// announce it on the DHT now and periodically. It must be stored
    /// completely.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a"), b"abc")?;
    /// let root = node.add(&[dir.path().join("a")]).await?.root;
    /// node.stop_seeding(&root).await?;
    /// assert!(node.store().pins()?.is_empty());
    /// node.seed(&root, "a").await?;
    /// assert_eq!(node.store().pins()?[0].name, "a");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn seed(&self, root: &Hash, name: &str) -> Result<(), NodeOpError> {
        let (store, r, n) = (self.store().clone(), *root, name.to_owned());
        blocking(move || -> Result<(), ReadError> {
            let manifest = store.manifest(&r)?;
            for e in manifest.entries() {
                match store.blob_info(&e.hash)? {
                    Some(info) if info.partial.is_none() => {}
                    Some(_) => return Err(ReadError::Incomplete(e.hash)),
                    None => return Err(ReadError::Unknown(e.hash)),
                }
            }
            store.pin(&r, &n)
        })
        .await?;
        self.announce_root(root).await
    }

    /// Stop seeding `root`: unpin it, so it is no longer announced and the
    /// next [`Store::gc`] frees what nothing else uses (until then peers
    /// that ask still get it). Returns whether it was pinned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a"), b"abc")?;
    /// let root = node.add(&[dir.path().join("a")]).await?.root;
    /// assert!(node.stop_seeding(&root).await?);
    /// assert!(!node.stop_seeding(&root).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stop_seeding(&self, root: &Hash) -> Result<bool, NodeOpError> {
        let (store, r) = (self.store().clone(), *root);
        Ok(blocking(move || store.unpin(&r)).await?)
    }

    /// The newest release of (`publisher`, `name`, `channel`) on the DHT,
    /// checked against this store's trusted keys and its rollback record:
    /// `Ok(None)` if the DHT has none, an error saying why if it is
    /// refused (an untrusted publisher, expired, older than one seen). It
    /// is not recorded as seen until it is fetched with
    /// [`Self::fetch_release`].
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, publisher: swarm_engine::release::PublicKey)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// node.trust(&publisher, "my publisher")?;
    /// if let Some(release) = node.resolve(&publisher, "app", "stable").await? {
    ///     println!("newest: {}", release.release().version);
    ///     let fetched = node.fetch_release(&release, Default::default())?.await?;
    ///     println!("{} bytes", fetched.size);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn resolve(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
    ) -> Result<Option<SignedRelease>, NodeOpError> {
        let dht = self.dht.as_ref().ok_or(NodeOpError::NoDht)?;
        // Asked at once: a lookup starts from the bootstrap nodes, without
        // waiting for the DHT's own bootstrap lookup to end.
        let Some(mut found) = dht.resolve(publisher, name, channel).await else {
            if !dht.bootstrapped().await {
                return Err(NodeOpError::NotBootstrapped);
            }
            return Ok(None);
        };
        let want = Want {
            name: Some(name.to_owned()),
            channel: Some(channel.to_owned()),
        };
        let policy = self.policy()?;
        // The first nodes to answer may hold an older pointer than one
        // seen here: then the whole lookup decides.
        if let Err(AcceptError::Policy(PolicyError::Rollback { .. })) =
            self.store().check_release(&policy, &found, &want)
            && let Some(newest) = dht.resolve_newest(publisher, name, channel).await
        {
            found = newest;
        }
        self.store().check_release(&policy, &found, &want)?;
        Ok(Some(found))
    }

    /// The trust and rollback policy of this node: its store's trusted
    /// keys, at the current time.
    fn policy(&self) -> Result<Policy, StoreError> {
        self.store().policy(Policy {
            now: unix_now(),
            ..Default::default()
        })
    }

    /// Fetch a signed release: check it against this store's trusted keys
    /// and rollback record, record it as the newest seen (so an older one
    /// is refused from now on), and fetch its root. Refusals are errors
    /// that say why, before anything is fetched.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, token: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// let release = swarm_engine::release::SignedRelease::from_token(token)?;
    /// let fetched = node.fetch_release(&release, Default::default())?.await?;
    /// assert_eq!(fetched.root, release.release().root);
    /// # Ok(()) }
    /// ```
    pub fn fetch_release(
        &self,
        release: &SignedRelease,
        opts: FetchOptions,
    ) -> Result<FetchHandle, NodeOpError> {
        self.store()
            .accept_release(&self.policy()?, release, &Want::default())?;
        self.gossip_accepted(release);
        Ok(self.fetch(release.release().root, opts))
    }

    /// Trust `key` as a publisher, under `label`, in this node's store.
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// let publisher = SecretKey::from_seed(&[3; 32]).public();
    /// node.trust(&publisher, "release team")?;
    /// assert_eq!(node.trusted()?, vec![(publisher, "release team".to_owned())]);
    /// assert!(node.distrust(&publisher)?);
    /// assert!(node.trusted()?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn trust(&self, key: &PublicKey, label: &str) -> Result<(), StoreError> {
        self.store().trust(key, label)
    }

    /// Stop trusting `key`. Returns whether it was trusted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// let key = swarm_engine::release::SecretKey::from_seed(&[4; 32]).public();
    /// assert!(!node.distrust(&key)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn distrust(&self, key: &PublicKey) -> Result<bool, StoreError> {
        self.store().distrust(key)
    }

    /// The trusted publisher keys, with their labels.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// assert!(node.trusted()?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn trusted(&self) -> Result<Vec<(PublicKey, String)>, StoreError> {
        self.store().trusted()
    }

    /// Fetch `root` and everything it lists from peers (those in `opts`,
    /// and those the DHT and peer exchange find), verifying every 16 KiB,
    /// then pin it (unless `opts.pin` is off). Resumes from whatever is
    /// already stored. The fetch runs in the background: await the handle
    /// for the result; it also streams progress and can be paused,
    /// resumed and cancelled. Must be called within a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash,
    /// #            peer: swarm_engine::net::PeerAddr) -> Result<(), Box<dyn std::error::Error>> {
    /// use swarm_engine::node::FetchOptions;
    ///
    /// let fetched = node.fetch(root, FetchOptions { peers: vec![peer], ..Default::default() }).await?;
    /// for s in &fetched.sources {
    ///     println!("{} bytes from {}", s.bytes, s.addr);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn fetch(&self, root: Hash, mut opts: FetchOptions) -> FetchHandle {
        let node = self.clone();
        let (control, control_rx) = tokio::sync::watch::channel(fetch::Control::Run);
        let control = Arc::new(control);
        // Listed from now until the task ends, however it ends.
        let listed = self
            .running
            .begin(root, opts.label.clone(), control.clone());
        let id = listed.id();
        FetchHandle::spawn(root, id, control, move |sink| async move {
            let listed = listed;
            let listing = listed.progress();
            let user = opts.progress.take();
            opts.progress = Some(Arc::new(move |p: FetchProgress| {
                listing.update(&p);
                if let Some(f) = &user {
                    f(p.clone());
                }
                sink.send(p);
            }));
            let control = control_rx;
            // Static peers always count; so do the peers this node fetched
            // the root from or served it to before, while they run; the DHT
            // adds whoever announced the root, as they are found, for as
            // long as the fetch runs.
            let mut found = None;
            tracing::debug!(%root, "fetch begins");
            let known = node.endpoint.known_peers(&root, REMEMBERED_PEERS);
            if node.dht.is_some() || !known.is_empty() {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                for a in known {
                    let _ = tx.send(a);
                }
                if let Some(dht) = &node.dht {
                    let own = node.endpoint.local_addr().ok();
                    tokio::spawn(discover(dht.clone(), root, own, tx));
                }
                found = Some(rx);
            }
            // Counted as it ends, however it ends: a dropped handle aborts
            // this task, and the guard counts it as cancelled.
            let mut ends = metrics::FetchCount::start();
            let fetched = fetch::fetch(&node.endpoint, root, opts, control, found).await;
            ends.end(match &fetched {
                Ok(_) => FetchEnd::Completed,
                Err(FetchError::Cancelled) => FetchEnd::Cancelled,
                Err(_) => FetchEnd::Failed,
            });
            drop(listed);
            fetched
        })
    }

    /// Every fetch this node runs now, oldest first, whoever started it:
    /// [`Self::fetch`] and what calls it (the follow loop, the control
    /// API, [`Self::fetch_release`]).
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// for f in node.fetches() {
    ///     println!("{} {}: {} of {} bytes", f.id, f.root, f.have, f.total);
    /// }
    /// # }
    /// ```
    pub fn fetches(&self) -> Vec<RunningFetch> {
        self.running.list()
    }

    /// Pause fetch `id` (see [`FetchHandle::pause`]): how it is now, or
    /// `None` if no fetch runs by that number.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// assert!(node.pause_fetch(fetch.id()).is_some_and(|f| f.paused));
    /// assert!(fetch.is_paused());
    /// # }
    /// ```
    pub fn pause_fetch(&self, id: u64) -> Option<RunningFetch> {
        self.running.steer(id, running::Steer::Pause)
    }

    /// Resume fetch `id` if it is paused.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// node.pause_fetch(fetch.id());
    /// assert!(node.resume_fetch(fetch.id()).is_some_and(|f| !f.paused));
    /// # }
    /// ```
    pub fn resume_fetch(&self, id: u64) -> Option<RunningFetch> {
        self.running.steer(id, running::Steer::Resume)
    }

    /// Cancel fetch `id`: it ends with [`FetchError::Cancelled`], keeping
    /// what it verified.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// node.cancel_fetch(fetch.id());
    /// assert!(fetch.await.is_err());
    /// # }
    /// ```
    pub fn cancel_fetch(&self, id: u64) -> Option<RunningFetch> {
        self.running.steer(id, running::Steer::Cancel)
    }

    /// Stop announcing, close all connections and stop serving.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// node.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        if let Some(t) = self
            .announcer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
        self.gossip.stop();
        self.endpoint.close().await;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Peers a fetch starts from that this node already knows to hold the
/// root (its peer book).
const REMEMBERED_PEERS: usize = 8;

/// How long one DHT lookup gathers peers.
const DHT_LOOKUP: Duration = Duration::from_secs(5);
/// The pause after a fetch's first DHT lookup; it doubles after each
/// lookup, up to [`DHT_LOOKUP_MAX`].
const DHT_LOOKUP_FIRST: Duration = Duration::from_millis(250);
const DHT_LOOKUP_MAX: Duration = Duration::from_secs(30);

/// A fetch's DHT side: announce the root at once (a fetcher serves what it
/// has verified, so fetchers that start together can find each other), and
/// look it up again and again with backoff, sending every address found to
/// `found` until the fetch drops the receiver.
async fn discover(
    dht: Dht,
    root: Hash,
    own: Option<std::net::SocketAddr>,
    found: tokio::sync::mpsc::UnboundedSender<std::net::SocketAddr>,
) {
    // Our own announcement comes back: skip it (a node bound to a wildcard
    // address sees itself under some address with its port; the fetch
    // also drops a connection that turns out to be to itself).
    let is_own = |a: std::net::SocketAddr| {
        own.is_some_and(|o| o == a || (o.ip().is_unspecified() && o.port() == a.port()))
    };
    let announce = async {
        if let Some(port) = own.map(|a| a.port())
            && let Err(e) = dht.announce(&root, port).await
        {
            tracing::debug!("announcing a fetch on the DHT failed: {e}");
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut pause = DHT_LOOKUP_FIRST;
    let lookups = async {
        loop {
            dht.find_peers_each(&root, DHT_LOOKUP, |a| {
                if !is_own(a) && seen.insert(a) {
                    let _ = found.send(a);
                }
            })
            .await;
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = found.closed() => return,
            }
            pause = (pause * 2).min(DHT_LOOKUP_MAX);
        }
    };
    tokio::join!(announce, lookups);
}

/// Announcing on the DHT failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnnounceError {
    /// The node's own address is unknown.
    #[error("cannot read the node's address")]
    Addr(#[source] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The DHT failed.
    #[error(transparent)]
    Dht(#[from] DhtError),
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(FetchProgress) + Send + Sync>;

#[cfg(test)]
mod tests;

/// How far an address reaches, lower first: global, private (RFC 1918,
/// unique local), link-local, loopback.
fn reach_rank(ip: &std::net::IpAddr) -> u8 {
    match ip {
        _ if ip.is_loopback() => 3,
        std::net::IpAddr::V4(v4) if v4.is_link_local() => 2,
        std::net::IpAddr::V4(v4) if v4.is_private() => 1,
        std::net::IpAddr::V6(v6) if v6.is_unicast_link_local() => 2,
        std::net::IpAddr::V6(v6) if v6.is_unique_local() => 1,
        _ => 0,
    }
}
