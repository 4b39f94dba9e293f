//! Fetching a root: its manifest, then every blob, from any of the peers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::task::JoinSet;
use tracing::{debug, info};

use super::ProgressFn;
use crate::content::{Hash, Manifest, manifest};
use crate::net::{ConnectError, Endpoint, NodeId, Peer, PeerAddr, RequestError};
use crate::store::{ReadError, Store, StoreError};

/// Blobs fetched at once.
const PARALLEL_BLOBS: usize = 4;
/// Most peers one fetch connects to (given, from the DHT, and by exchange).
const MAX_PEERS: usize = 8;
/// How long to wait for a peer's answer to a peer-exchange question.
const PEX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a fetch waits for peer exchange before it starts; peers that
/// connect later join while it runs. Addresses from exchange may be stale
/// (a fetcher that has gone), and must not hold a fetch up.
const PEX_HEAD_START: std::time::Duration = std::time::Duration::from_millis(300);

/// Options for [`super::Node::fetch`].
#[derive(Clone)]
pub struct FetchOptions {
    /// Peers to fetch from.
    pub peers: Vec<PeerAddr>,
    /// Called as work proceeds.
    pub progress: Option<ProgressFn>,
    /// Pin the root when it is complete (default), so it stays and is
    /// served. Without a pin the content is unreferenced: export it with
    /// [`crate::store::ExportOptions::release`] to hand it over.
    pub pin: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            progress: None,
            pin: true,
        }
    }
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// Progress of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchProgress {
    /// Connected to this many peers.
    Connected(usize),
    /// The manifest is known: total bytes, and bytes already stored.
    Manifest {
        /// Total bytes of the files.
        total: u64,
        /// Bytes already stored before this fetch.
        present: u64,
    },
    /// This many more bytes arrived from the network.
    Received(u64),
}

/// What a fetch did.
#[derive(Debug)]
pub struct Fetched {
    /// The root.
    pub root: Hash,
    /// Total bytes of the files.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// Bytes received from the network (Bao data, including tree nodes).
    pub received: u64,
    /// Peers data came from.
    pub peers: Vec<NodeId>,
    /// Peers connected to (including those learned by peer exchange).
    pub connected: Vec<NodeId>,
    /// Peers that failed or were dropped along the way (the fetch still
    /// succeeded from the others).
    pub failures: Vec<PeerFailure>,
}

/// A fetch that failed. Everything verified before the failure is kept, and
/// fetching again resumes from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No peers were given.
    #[error("no peers to fetch from: none given, and none found on the DHT; pass --peer HOST:PORT")]
    NoPeers,
    /// No peer could be reached.
    #[error("no peer could be reached: {}", list(.0))]
    Unreachable(Vec<ConnectError>),
    /// Every peer failed or misbehaved.
    #[error("every peer failed: {}", list(.0))]
    PeersFailed(Vec<PeerFailure>),
    /// The root's bytes verify but are not a manifest.
    #[error("{root} is not a manifest")]
    NotAManifest {
        /// The root.
        root: Hash,
        /// Why it does not decode.
        source: manifest::ManifestError,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One peer's failure, with who it was.
#[derive(Debug, thiserror::Error)]
#[error("peer {} at {addr}: {}", id.short(), chain(error))]
pub struct PeerFailure {
    /// The peer.
    pub id: NodeId,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// What went wrong.
    pub error: RequestError,
}

fn list<E: std::error::Error>(v: &[E]) -> String {
    v.iter().map(|e| chain(e)).collect::<Vec<_>>().join("; ")
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl From<ReadError> for FetchError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Store(s) => Self::Store(s),
            other => Self::Store(StoreError::Io(std::io::Error::other(other.to_string()))),
        }
    }
}

/// The peers still worth asking.
struct Peers {
    live: Vec<Peer>,
    failures: Vec<PeerFailure>,
    next: usize,
}

impl Peers {
    fn pick(&mut self) -> Option<Peer> {
        if self.live.is_empty() {
            return None;
        }
        self.next = (self.next + 1) % self.live.len();
        Some(self.live[self.next].clone())
    }

    fn fail(&mut self, peer: &Peer, error: RequestError) {
        info!(peer = %peer.id(), "dropping peer: {error}");
        self.live.retain(|p| p.id() != peer.id());
        peer.close();
        self.failures.push(PeerFailure {
            id: peer.id(),
            addr: peer.addr(),
            error,
        });
    }
}

pub(super) async fn fetch(
    endpoint: &Endpoint,
    root: Hash,
    opts: FetchOptions,
) -> Result<Fetched, FetchError> {
    let progress = |p| {
        if let Some(f) = &opts.progress {
            f(p)
        }
    };
    if opts.peers.is_empty() {
        return Err(FetchError::NoPeers);
    }
    let mut connects = JoinSet::new();
    for addr in opts.peers.clone() {
        let ep = endpoint.clone();
        connects.spawn(async move { ep.connect(&addr).await });
    }
    let mut live = Vec::new();
    let mut unreachable = Vec::new();
    while let Some(r) = connects.join_next().await {
        match r {
            Ok(Ok(p)) => live.push(p),
            Ok(Err(e)) => unreachable.push(e),
            Err(_) => {}
        }
    }
    if live.is_empty() {
        return Err(FetchError::Unreachable(unreachable));
    }
    // Peer exchange: the DHT returns few peers per node, so ask each peer
    // whom else it has seen with this root, and connect to some of them in
    // the background.
    let mut pex = spawn_pex(endpoint, root, live.clone());
    let mut connected: Vec<NodeId> = live.iter().map(Peer::id).collect();
    let head_start = tokio::time::Instant::now() + PEX_HEAD_START;
    while let Ok(Some(p)) = tokio::time::timeout_at(head_start, pex.recv()).await {
        add_peer(&mut live, &mut connected, p);
    }
    progress(FetchProgress::Connected(live.len()));
    let mut peers = Peers {
        live,
        failures: Vec::new(),
        next: 0,
    };
    let mut take_late_peers = |peers: &mut Peers, connected: &mut Vec<NodeId>| {
        while let Ok(p) = pex.try_recv() {
            add_peer(&mut peers.live, connected, p);
        }
    };
    let store = endpoint.store().clone();
    let received = Arc::new(AtomicU64::new(0));
    let manifest = fetch_manifest(&store, root, &mut peers, &received).await?;

    // Distinct blobs and their sizes (the manifest is verified, so its sizes are the truth).
    let mut blobs: BTreeMap<Hash, u64> = BTreeMap::new();
    for e in manifest.entries() {
        blobs.insert(e.hash, e.size);
    }
    let present = {
        let store = store.clone();
        let blobs = blobs.clone();
        blocking(move || -> Result<u64, StoreError> {
            let mut n = 0;
            for (h, size) in &blobs {
                n += match store.blob_info(h)? {
                    Some(i) if i.partial.is_none() => *size,
                    Some(i) => i
                        .partial
                        .map_or(0, |p| p.count() * crate::content::GROUP_SIZE)
                        .min(*size),
                    None => 0,
                };
            }
            Ok(n)
        })
        .await?
    };
    progress(FetchProgress::Manifest {
        total: manifest.total_size(),
        present,
    });

    let report: ProgressFn = match &opts.progress {
        Some(f) => f.clone(),
        None => Arc::new(|_| {}),
    };
    let mut queue: Vec<(Hash, u64)> = blobs.into_iter().collect();
    queue.reverse();
    let mut running = JoinSet::new();
    let mut used = std::collections::BTreeSet::new();
    loop {
        take_late_peers(&mut peers, &mut connected);
        while running.len() < PARALLEL_BLOBS {
            let Some((hash, size)) = queue.pop() else {
                break;
            };
            let Some(peer) = peers.pick() else { break };
            let store = store.clone();
            let received = received.clone();
            let report = report.clone();
            running.spawn(async move {
                let r = fetch_blob(&store, &peer, hash, size, &received, &report).await;
                (hash, size, peer, r)
            });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let Ok((hash, size, peer, r)) = done else {
            continue;
        };
        match r {
            Ok(()) => {
                used.insert(peer.id());
                // Others may ask us about it: this peer has the root.
                peer.note_has(root);
            }
            Err(BlobError::Store(e)) => return Err(e.into()),
            Err(BlobError::Peer(e)) => {
                debug!(%hash, "peer {} failed: {e}", peer.id());
                let drop_it = e.is_misbehaviour()
                    || matches!(e, RequestError::Connection(_) | RequestError::Timeout(_));
                if drop_it {
                    peers.fail(&peer, e);
                } else {
                    peers.failures.push(PeerFailure {
                        id: peer.id(),
                        addr: peer.addr(),
                        error: e,
                    });
                }
                // Try the blob again elsewhere, unless every peer already failed it.
                if peers.live.is_empty() || peers.failures.len() > 8 * peers.live.len() + 8 {
                    return Err(FetchError::PeersFailed(std::mem::take(&mut peers.failures)));
                }
                queue.push((hash, size));
            }
        }
    }
    if !queue.is_empty() {
        return Err(FetchError::PeersFailed(std::mem::take(&mut peers.failures)));
    }
    let name = manifest
        .entries()
        .first()
        .map(|e| e.path.split('/').next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    if opts.pin {
        let store = store.clone();
        blocking(move || store.pin(&root, &name)).await?;
    }
    for p in &peers.live {
        p.close();
    }
    Ok(Fetched {
        root,
        size: manifest.total_size(),
        files: manifest.entries().len() as u64,
        received: received.load(Ordering::Relaxed),
        peers: used.into_iter().collect(),
        connected,
        failures: peers.failures,
    })
}

/// Ask `known` for more peers of `root` and connect to them; each new peer
/// arrives on the returned channel, which closes when all attempts are done.
fn spawn_pex(
    endpoint: &Endpoint,
    root: Hash,
    known: Vec<Peer>,
) -> tokio::sync::mpsc::UnboundedReceiver<Peer> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let endpoint = endpoint.clone();
    tokio::spawn(async move {
        let me = endpoint.local_addr().ok();
        let mut seen: std::collections::BTreeSet<std::net::SocketAddr> =
            known.iter().map(Peer::addr).chain(me).collect();
        let mut more = Vec::new();
        for p in &known {
            if let Ok(Ok(addrs)) = tokio::time::timeout(PEX_WAIT, p.ask_peers(root)).await {
                more.extend(addrs.into_iter().filter(|a| seen.insert(*a)));
            }
        }
        let mut connects = JoinSet::new();
        for addr in more.into_iter().take(MAX_PEERS.saturating_sub(known.len())) {
            let ep = endpoint.clone();
            connects.spawn(async move { ep.connect(&PeerAddr { id: None, addr }).await });
        }
        while let Some(r) = connects.join_next().await {
            if let Ok(Ok(p)) = r
                && tx.send(p).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Use `p` unless it is a node already connected (under another address).
fn add_peer(live: &mut Vec<Peer>, connected: &mut Vec<NodeId>, p: Peer) {
    if live.iter().all(|l| l.id() != p.id()) && live.len() < MAX_PEERS {
        connected.push(p.id());
        live.push(p);
    } else {
        p.close();
    }
}

async fn fetch_manifest(
    store: &Store,
    root: Hash,
    peers: &mut Peers,
    received: &AtomicU64,
) -> Result<Manifest, FetchError> {
    let s = store.clone();
    match blocking(move || s.manifest(&root)).await {
        Ok(m) => return Ok(m),
        Err(ReadError::Unknown(_) | ReadError::Incomplete(_)) => {}
        Err(ReadError::NotManifest(_, source)) => {
            return Err(FetchError::NotAManifest { root, source });
        }
        Err(e) => return Err(e.into()),
    }
    while let Some(peer) = peers.pick() {
        match peer.get_bytes(root, manifest::MAX_ENCODED_SIZE).await {
            Ok(bytes) => {
                received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let m = Manifest::decode(&bytes)
                    .map_err(|source| FetchError::NotAManifest { root, source })?;
                let s = store.clone();
                blocking(move || s.put_blob(&bytes)).await?;
                return Ok(m);
            }
            Err(e) => peers.fail(&peer, e),
        }
    }
    Err(FetchError::PeersFailed(std::mem::take(&mut peers.failures)))
}

enum BlobError {
    Peer(RequestError),
    Store(StoreError),
}

/// Fetch one blob from one peer until it is complete.
async fn fetch_blob(
    store: &Store,
    peer: &Peer,
    hash: Hash,
    size: u64,
    received: &AtomicU64,
    report: &ProgressFn,
) -> Result<(), BlobError> {
    if size == 0 {
        let s = store.clone();
        return blocking(move || s.put_blob(&[]).map(|_| ()))
            .await
            .map_err(BlobError::Store);
    }
    let s = store.clone();
    let mut partial = blocking(move || s.partial(hash, size))
        .await
        .map_err(BlobError::Store)?;
    // Each round asks for everything missing (at most 256 ranges at a
    // time); a round that adds nothing means the peer cannot help.
    while !partial.is_complete() {
        let missing = partial.missing();
        let on_bytes = |n: u64| {
            received.fetch_add(n, Ordering::Relaxed);
            report(FetchProgress::Received(n));
        };
        let (p, r) = peer.get(partial, missing, &on_bytes).await;
        partial = p;
        match r {
            Ok(0) => {
                return Err(BlobError::Peer(RequestError::Misbehaved(format!(
                    "answered for {hash} without any new data"
                ))));
            }
            Ok(_) => {}
            Err(RequestError::Store(e)) => return Err(BlobError::Store(e)),
            Err(e) => return Err(BlobError::Peer(e)),
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
