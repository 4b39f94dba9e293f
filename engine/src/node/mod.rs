//! The node: a store plus a network endpoint, and the operations that use
//! both (fetching a root from peers).

mod fetch;

use std::sync::Arc;

pub use self::fetch::{FetchError, FetchOptions, FetchProgress, Fetched, PeerFailure};
use crate::net::{BindError, Endpoint, EndpointConfig, SecretKey};
use crate::store::{Store, StoreError};

/// A running node: it serves its store to peers and fetches from them.
#[derive(Debug, Clone)]
pub struct Node {
    endpoint: Endpoint,
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
        Ok(Self { endpoint })
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
        opts: FetchOptions,
    ) -> Result<Fetched, FetchError> {
        fetch::fetch(&self.endpoint, root, opts).await
    }

    /// Close all connections and stop serving.
    pub async fn shutdown(&self) {
        self.endpoint.close().await;
    }
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(FetchProgress) + Send + Sync>;
