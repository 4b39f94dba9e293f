//! Configuring and starting a [`Node`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Node, NodeError};
use crate::discovery::{Dht, DhtConfig};
use crate::net::{BindError, EndpointConfig, SecretKey};
use crate::store::Store;

/// How often a node re-announces what it pins on the DHT (announcements
/// there expire after about half an hour).
pub const REANNOUNCE: Duration = Duration::from_secs(15 * 60);

/// Where the node keeps its data.
#[derive(Debug, Clone)]
enum StoreChoice {
    Memory,
    Path(PathBuf),
    Open(Store),
}

/// Settings for a [`Node`], from [`Node::builder`]. The defaults: an
/// in-memory store, listening on every interface on a free UDP port, on
/// the public mainline DHT, no rate limits.
///
/// ```no_run
/// use swarm_engine::node::Node;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Node::builder()
///     .store_path("/var/lib/my-app/swarm") // created if missing
///     .listen(([0, 0, 0, 0], 4433).into())
///     .upload_limit(Some(20 << 20)) // 20 MiB/s to all peers together
///     .spawn()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    store: StoreChoice,
    endpoint: EndpointConfig,
    key: Option<SecretKey>,
    dht: Option<DhtConfig>,
    reannounce: Option<Duration>,
}

impl Default for NodeBuilder {
    fn default() -> Self {
        Self {
            store: StoreChoice::Memory,
            endpoint: EndpointConfig::default(),
            key: None,
            dht: Some(DhtConfig::default()),
            reannounce: Some(REANNOUNCE),
        }
    }
}

impl NodeBuilder {
    /// Keep the store in directory `dir` (created if missing), so content,
    /// trust and the node's identity survive restarts.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let node = swarm_engine::node::Node::builder()
    ///     .store_path(dir.path().join("store"))
    ///     .no_dht()
    ///     .spawn()
    ///     .await?;
    /// let id = node.id();
    /// node.shutdown().await;
    /// drop(node);
    /// let again = swarm_engine::node::Node::builder()
    ///     .store_path(dir.path().join("store"))
    ///     .no_dht()
    ///     .spawn()
    ///     .await?;
    /// assert_eq!(again.id(), id);
    /// # Ok(())
    /// # }
    /// ```
    pub fn store_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::Path(dir.into());
        self
    }

    /// Keep everything in memory (the default): gone when the node is.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn memory(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// Use a store already open.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = swarm_engine::store::Store::memory()?;
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("a"), b"abc")?;
    /// let added = store.add_paths(&[dir.path().join("a")], &Default::default())?;
    /// let node = swarm_engine::node::Node::builder().store(store).no_dht().spawn().await?;
    /// assert_eq!(node.store().pins()?[0].root, added.root);
    /// # Ok(())
    /// # }
    /// ```
    pub fn store(mut self, store: Store) -> Self {
        self.store = StoreChoice::Open(store);
        self
    }

    /// The UDP address to serve peers on; port 0 picks a free one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder()
    ///     .listen(([127, 0, 0, 1], 0).into())
    ///     .no_dht()
    ///     .spawn()
    ///     .await?;
    /// assert!(node.addr()?.addr.ip().is_loopback());
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.endpoint.listen = addr;
        self
    }

    /// Join the DHT through these nodes (`HOST:PORT`) instead of the public
    /// routers.
    ///
    /// ```
    /// use swarm_engine::discovery::LocalDht;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let local = LocalDht::start(3)?;
    /// let node = swarm_engine::node::Node::builder()
    ///     .bootstrap(local.config().bootstrap)
    ///     .spawn()
    ///     .await?;
    /// assert!(node.dht().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn bootstrap(mut self, nodes: Vec<String>) -> Self {
        self.dht.get_or_insert_with(DhtConfig::default).bootstrap = nodes;
        self
    }

    /// All DHT settings at once.
    ///
    /// ```
    /// use swarm_engine::discovery::LocalDht;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let local = LocalDht::start(3)?;
    /// let node = swarm_engine::node::Node::builder().dht(local.config()).spawn().await?;
    /// assert!(node.dht().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn dht(mut self, config: DhtConfig) -> Self {
        self.dht = Some(config);
        self
    }

    /// No DHT: peers are given to each fetch, and releases come as tokens.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().no_dht().spawn().await?;
    /// assert!(node.dht().is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn no_dht(mut self) -> Self {
        self.dht = None;
        self
    }

    /// How often to re-announce pinned roots on the DHT ([`REANNOUNCE`] by
    /// default); `None`: only when asked ([`Node::announce`],
    /// [`Node::seed`], [`Node::publish`]). Zero is refused by
    /// [`Self::spawn`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().no_dht().reannounce(None).spawn().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn reannounce(mut self, every: Option<Duration>) -> Self {
        self.reannounce = every;
        self
    }

    /// Most bytes per second sent to all peers together; `None`: no limit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().no_dht().upload_limit(Some(1 << 20)).spawn().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn upload_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.endpoint.upload_limit = bytes_per_sec;
        self
    }

    /// When to super-seed complete blobs: tell each fetcher only of pieces
    /// nobody has been given yet, so this node sends about one copy and
    /// the fetchers pass pieces among themselves. By default
    /// ([`SuperSeedMode::Auto`]) a node does so when its upload is capped,
    /// for the blobs it did not fetch, until every piece has left; `true`
    /// is [`SuperSeedMode::On`]. See
    /// [`crate::net::EndpointConfig::super_seed`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().no_dht().super_seed(true).spawn().await?;
    /// # node.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`SuperSeedMode::Auto`]: crate::net::SuperSeedMode::Auto
    /// [`SuperSeedMode::On`]: crate::net::SuperSeedMode::On
    pub fn super_seed(mut self, mode: impl Into<crate::net::SuperSeedMode>) -> Self {
        self.endpoint.super_seed = mode.into();
        self
    }

    /// Most bytes per second received from all peers together; `None`: no
    /// limit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().no_dht().download_limit(Some(1 << 20)).spawn().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn download_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.endpoint.download_limit = bytes_per_sec;
        self
    }

    /// Most connections accepted at once; more are refused as busy. At
    /// least 1: [`Self::spawn`] refuses 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().no_dht().max_connections(32).spawn().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn max_connections(mut self, n: u64) -> Self {
        self.endpoint.max_connections = n;
        self
    }

    /// The memory one connection's data in flight may take
    /// ([`crate::net::EndpointConfig::window`], 4 MiB by default): what
    /// bounds a fetch's memory, and what a fast, distant peer needs more of.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().no_dht().window(2 << 20).spawn().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn window(mut self, bytes: u64) -> Self {
        self.endpoint.window = bytes;
        self
    }

    /// All endpoint settings at once (timeouts, agent string, …); replaces
    /// what [`Self::listen`] and the limits set.
    ///
    /// ```
    /// use swarm_engine::net::EndpointConfig;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = EndpointConfig { agent: "my-app/1.0".into(), ..Default::default() };
    /// let node = swarm_engine::node::Node::builder().no_dht().endpoint(config).spawn().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn endpoint(mut self, config: EndpointConfig) -> Self {
        self.endpoint = config;
        self
    }

    /// The node's identity key. By default it is created on first start
    /// and kept in the store.
    ///
    /// ```
    /// use swarm_engine::net::SecretKey;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = SecretKey::from_bytes(&[5; 32]);
    /// let id = key.node_id();
    /// let node = swarm_engine::node::Node::builder().no_dht().secret_key(key).spawn().await?;
    /// assert_eq!(node.id(), id);
    /// # Ok(())
    /// # }
    /// ```
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Open the store, bind the endpoint, join the DHT (without waiting
    /// for it: operations that need it wait), and start announcing what
    /// the store pins. Must be called within a Tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let node = swarm_engine::node::Node::builder().no_dht().spawn().await?;
    /// node.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn spawn(self) -> Result<Node, NodeError> {
        // Refused before anything is opened or bound.
        if self.reannounce.is_some_and(|d| d.is_zero()) {
            return Err(NodeError::ZeroReannounce);
        }
        self.endpoint.validate().map_err(BindError::from)?;
        let store = match self.store {
            StoreChoice::Memory => Store::memory()?,
            StoreChoice::Open(s) => s,
            StoreChoice::Path(dir) => super::blocking(move || Store::open(dir)).await?,
        };
        let node = match self.key {
            Some(k) => Node::spawn_with_key(store, k, self.endpoint).await?,
            None => Node::spawn(store, self.endpoint).await?,
        };
        let Some(config) = self.dht else {
            return Ok(node);
        };
        let node = node.with_dht(Dht::spawn(&config)?);
        if let Some(every) = self.reannounce {
            // Once joined, then every interval; stopped by shutdown.
            node.announce_every(every, true);
        }
        Ok(node)
    }
}
