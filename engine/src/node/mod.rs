//! The node: a store plus a network endpoint, and the operations that use
//! both (fetching a root from peers).

mod fetch;

use std::sync::Arc;

pub use self::fetch::{
    DEFAULT_MAX_PEERS, FetchError, FetchOptions, FetchProgress, Fetched, PeerFailure, PeerProgress,
    Source,
};
use crate::discovery::{Dht, DhtError};
use crate::net::{BindError, Endpoint, EndpointConfig, SecretKey};
use crate::store::{Store, StoreError};

/// A running node: it serves its store to peers and fetches from them.
#[derive(Debug, Clone)]
pub struct Node {
    endpoint: Endpoint,
    dht: Option<Dht>,
}

/// A node that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node key could not be loaded or created.
    #[error("cannot load the node key")]
    Key(#[source] StoreError),
    /// The endpoint could not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
}

impl Node {
    /// Start a node on `store`, with the key kept in the store (created on
    /// first start, so the node id survives restarts).
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
    pub async fn spawn_with_key(
        store: Store,
        key: SecretKey,
        config: EndpointConfig,
    ) -> Result<Self, NodeError> {
        let endpoint = Endpoint::bind(store, key, config).await?;
        Ok(Self {
            endpoint,
            dht: None,
        })
    }

    /// Use the DHT: fetches look peers up there, and [`Self::announce`]
    /// tells it what this node serves.
    pub fn with_dht(mut self, dht: Dht) -> Self {
        self.dht = Some(dht);
        self
    }

    /// The DHT, if this node uses one.
    pub fn dht(&self) -> Option<&Dht> {
        self.dht.as_ref()
    }

    /// Announce every pinned root on the DHT now. Returns how many were
    /// announced; the first error stops it.
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
    /// one interval; call [`Self::announce`] for now) until the returned
    /// task is aborted. Failures are logged and retried next round.
    pub fn keep_announcing(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let node = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match node.announce().await {
                    Ok(n) => tracing::debug!("announced {n} roots on the DHT"),
                    Err(e) => tracing::warn!("announcing on the DHT failed: {e}"),
                }
            }
        })
    }

    /// The network endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.endpoint.store()
    }

    /// Fetch `root` and everything it lists from the given peers, verifying
    /// every 16 KiB, then pin it. Resumes from whatever is already stored.
    pub async fn fetch(
        &self,
        root: crate::Hash,
        mut opts: FetchOptions,
    ) -> Result<Fetched, FetchError> {
        // Static peers always count; the DHT adds whoever announced the root.
        if let Some(dht) = &self.dht {
            for addr in dht.find_peers(&root, DHT_LOOKUP).await {
                if !opts.peers.iter().any(|p| p.addr == addr) {
                    opts.peers.push(crate::net::PeerAddr { id: None, addr });
                }
            }
        }
        fetch::fetch(&self.endpoint, root, opts).await
    }

    /// Close all connections and stop serving.
    pub async fn shutdown(&self) {
        self.endpoint.close().await;
    }
}

/// How long a fetch gathers peers from the DHT.
const DHT_LOOKUP: std::time::Duration = std::time::Duration::from_secs(5);

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
