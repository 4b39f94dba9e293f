//! The node's local control API: HTTP/JSON on a Unix socket in the store
//! directory, so that an operator (or the `swarm` CLI) can add, list,
//! remove, collect, check and trust while a node keeps serving.
//!
//! Every route, field and error is written down in `docs/api.md`. The
//! replies are the same JSON objects that the CLI's `--json` prints.
//!
//! ```
//! use swarm_engine::api::{self, AddRequest, Client};
//! use swarm_engine::node::Node;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = swarm_engine::store::Store::open(dir.path().join("store"))?;
//! let node = Node::builder().store(store).listen(([127, 0, 0, 1], 0).into()).no_dht().spawn().await?;
//! let socket = api::socket_path(&dir.path().join("store"));
//! let _server = api::serve(node, api::ApiConfig::new(&socket)).await?;
//!
//! // Another program (here the same one) talks to the running node.
//! std::fs::write(dir.path().join("hello.txt"), b"hello swarm")?;
//! let client = Client::new(&socket);
//! let added = client.add(&AddRequest { paths: vec![dir.path().join("hello.txt")], name: None }).await?;
//! assert_eq!(client.pins().await?.pins[0].root, added.root);
//! # Ok(())
//! # }
//! ```

mod client;
pub mod ops;
mod server;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::client::{Client, ClientError};
pub use self::ops::OpError;
pub use self::server::{ApiConfig, ApiServer, Describe, ServeError, serve};

/// The socket's file name inside the store directory.
pub const SOCKET_NAME: &str = "api.sock";

/// The most bytes a request body may have.
pub const MAX_BODY: usize = 1 << 20;

/// Where a node serving the store at `store_dir` listens.
pub fn socket_path(store_dir: &Path) -> PathBuf {
    store_dir.join(SOCKET_NAME)
}

/// `POST /v1/add`: add files or directories, as the node's user sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// Absolute paths on the node's machine.
    pub paths: Vec<PathBuf>,
    /// The pin's name; by default the first path's file name.
    #[serde(default)]
    pub name: Option<String>,
}

/// What an add stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddReply {
    /// The root, in hex.
    pub root: String,
    /// Total bytes of the files.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// Bytes that were new to the store.
    pub new_bytes: u64,
}

/// One pinned root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinEntry {
    /// The root, in hex.
    pub root: String,
    /// Its name.
    pub name: String,
    /// Total bytes of its files.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// Seconds since the Unix epoch when it was pinned.
    pub created: u64,
}

/// `GET /v1/pins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinsReply {
    /// Every pin, in root order.
    pub pins: Vec<PinEntry>,
}

/// `POST /v1/rm`: unpin a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmRequest {
    /// The root, in hex.
    pub root: String,
}

/// What an rm did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmReply {
    /// The root, in hex.
    pub root: String,
    /// Always true: a root that is not pinned is an error.
    pub removed: bool,
}

/// `POST /v1/gc`: what a collection freed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReply {
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// One problem a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckProblem {
    /// The blob or root, in hex.
    pub hash: String,
    /// What is wrong.
    pub problem: String,
}

/// `POST /v1/check`: every stored blob re-verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReply {
    /// True when nothing is wrong.
    pub ok: bool,
    /// Blobs re-verified.
    pub blobs: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Everything wrong.
    pub problems: Vec<CheckProblem>,
}

/// `POST /v1/trust/add`: trust a publisher key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustAddRequest {
    /// The key, `swpk1…`.
    pub public_key: String,
    /// A label for it.
    #[serde(default)]
    pub name: Option<String>,
}

/// A trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    /// The key, `swpk1…`.
    pub public_key: String,
    /// Its label (may be empty).
    pub name: String,
}

/// `POST /v1/trust/rm`: stop trusting a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRmRequest {
    /// The key, `swpk1…`.
    pub public_key: String,
}

/// What a trust rm did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRmReply {
    /// The key.
    pub public_key: String,
    /// Always true: a key that is not trusted is an error.
    pub removed: bool,
}

/// `GET /v1/trust`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedReply {
    /// Every trusted key.
    pub trusted: Vec<TrustedKey>,
}

/// `GET /v1/status`: what the node is and does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The node id.
    pub node_id: String,
    /// The QUIC address it listens on.
    pub addr: String,
    /// This build's version.
    pub version: String,
    /// Seconds since the API started with the node.
    pub uptime_secs: u64,
    /// Every pin the node serves.
    pub pins: Vec<PinEntry>,
    /// What the endpoint has done since it started.
    pub serving: ServingStatus,
    /// The DHT, or `None` when the node runs without it.
    pub dht: Option<DhtStatus>,
}

/// The endpoint's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingStatus {
    /// Connections open now.
    pub connections: u64,
    /// Requests being served now.
    pub requests_now: u64,
    /// Requests served since start.
    pub requests_total: u64,
    /// Bytes of verified data sent since start.
    pub bytes_sent: u64,
    /// Peers dropped for breaking the protocol.
    pub violations: u64,
}

/// The DHT's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhtStatus {
    /// Whether it joined the network.
    pub bootstrapped: bool,
}

/// The body of every error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong and what to do, in words.
    pub error: String,
}
