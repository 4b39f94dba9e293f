//! Where a fetch's data comes from: the peers and mirrors in use, peer
//! exchange, and the manifest from whichever source has it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::info;

use super::{FetchError, PEX_WAIT, PeerFailure, blocking};
use crate::content::{Hash, Manifest, manifest};
use crate::mirror::{Mirror, MirrorError, MirrorUrl};
use crate::net::{Endpoint, NodeId, Peer, PeerAddr, RequestError};
use crate::store::{ReadError, Store};
use crate::wire::ErrorCode;

/// Addresses connected to or tried, shared with peer exchange.
pub(super) type Tried = Arc<Mutex<BTreeSet<SocketAddr>>>;

/// The peers still worth asking, and those that failed.
pub(super) struct Peers {
    pub(super) live: Vec<Peer>,
    pub(super) failures: Vec<PeerFailure>,
    pub(super) next: usize,
}

impl Peers {
    pub(super) fn pick(&mut self) -> Option<Peer> {
        if self.live.is_empty() {
            return None;
        }
        self.next = (self.next + 1) % self.live.len();
        Some(self.live[self.next].clone())
    }

    pub(super) fn get(&self, id: &NodeId) -> Option<&Peer> {
        self.live.iter().find(|p| p.id() == *id)
    }

    pub(super) fn fail(&mut self, id: &NodeId, error: RequestError) {
        let Some(pos) = self.live.iter().position(|p| p.id() == *id) else {
            return;
        };
        let peer = self.live.remove(pos);
        info!(peer = %peer.id(), "dropping peer: {error}");
        peer.close();
        self.failures.push(PeerFailure {
            id: peer.id(),
            addr: peer.addr(),
            error,
        });
    }
}

/// The mirrors of a fetch: those still in use, and those that failed.
pub(super) struct Mirrors {
    pub(super) urls: Vec<MirrorUrl>,
    /// By index into `urls`; `None` once dropped (or never opened).
    pub(super) live: Vec<Option<Arc<Mirror>>>,
    pub(super) failures: Vec<MirrorError>,
}

impl Mirrors {
    pub(super) fn none_live(&self) -> bool {
        self.live.iter().all(Option::is_none)
    }

    pub(super) fn get(&self, i: usize) -> Option<&Arc<Mirror>> {
        self.live.get(i).and_then(Option::as_ref)
    }

    pub(super) fn fail(&mut self, i: usize, error: MirrorError) {
        if let Some(slot) = self.live.get_mut(i)
            && slot.take().is_some()
        {
            info!("dropping mirror: {error}");
            self.failures.push(error);
        }
    }
}

/// Ask `known` for more peers of `root` and connect to some not tried yet;
/// each new peer arrives on `tx`. The task ends when all have answered
/// (or timed out) and every connection attempt is over.
pub(super) fn spawn_pex(
    endpoint: &Endpoint,
    root: Hash,
    known: Vec<Peer>,
    max_peers: usize,
    tried: &Tried,
    tx: &mpsc::UnboundedSender<Peer>,
) -> tokio::task::JoinHandle<()> {
    let endpoint = endpoint.clone();
    let (tried, tx) = (tried.clone(), tx.clone());
    tokio::spawn(async move {
        let mut more = Vec::new();
        for p in &known {
            if let Ok(Ok(addrs)) = tokio::time::timeout(PEX_WAIT, p.ask_peers(root)).await {
                let mut t = tried.lock().unwrap_or_else(|e| e.into_inner());
                more.extend(addrs.into_iter().filter(|a| t.insert(*a)));
            }
        }
        let mut connects = JoinSet::new();
        for addr in more.into_iter().take(max_peers.saturating_sub(known.len())) {
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
    })
}

/// Connect to each address `found` (by the DHT) that is not tried yet; each
/// new peer arrives on `tx`. Ends when the fetch does.
pub(super) fn spawn_found(
    endpoint: &Endpoint,
    mut found: mpsc::UnboundedReceiver<SocketAddr>,
    tried: &Tried,
    tx: &mpsc::UnboundedSender<Peer>,
) {
    let endpoint = endpoint.clone();
    let (tried, tx) = (tried.clone(), tx.clone());
    tokio::spawn(async move {
        let mut connects = JoinSet::new();
        loop {
            tokio::select! {
                addr = found.recv() => {
                    let Some(addr) = addr else { break };
                    if !tried.lock().unwrap_or_else(|e| e.into_inner()).insert(addr) {
                        continue;
                    }
                    let ep = endpoint.clone();
                    connects.spawn(async move { ep.connect(&PeerAddr { id: None, addr }).await });
                }
                Some(r) = connects.join_next(), if !connects.is_empty() => {
                    if let Ok(Ok(p)) = r {
                        if p.id() == endpoint.node_id() {
                            p.close();
                        } else if tx.send(p).is_err() {
                            return;
                        }
                    }
                }
                () = tx.closed() => return,
            }
        }
    });
}

/// Use `p` unless it is a node already connected (under another address)
/// or there are enough. Returns whether it was added.
pub(super) fn add_peer(
    peers: &mut Peers,
    connected: &mut Vec<NodeId>,
    p: Peer,
    max: usize,
) -> bool {
    if peers.live.iter().all(|l| l.id() != p.id()) && peers.live.len() < max {
        connected.push(p.id());
        peers.live.push(p);
        true
    } else {
        p.close();
        false
    }
}

pub(super) async fn fetch_manifest(
    store: &Store,
    root: Hash,
    peers: &mut Peers,
    mirrors: &mut Mirrors,
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
    // A peer that does not have it yet is another fetcher that has just
    // started: keep it for the pieces it will have, and ask the next.
    let mut lacking: Vec<(NodeId, RequestError)> = Vec::new();
    let order: Vec<Peer> = (0..peers.live.len()).filter_map(|_| peers.pick()).collect();
    for peer in order {
        match peer.get_bytes(root, manifest::MAX_ENCODED_SIZE).await {
            Ok(bytes) => return keep_manifest(store, root, bytes.into(), received).await,
            Err(
                e @ RequestError::Remote {
                    code: ErrorCode::NotFound | ErrorCode::Incomplete,
                    ..
                },
            ) => lacking.push((peer.id(), e)),
            Err(e) => peers.fail(&peer.id(), e),
        }
    }
    // Nobody had it: those that lacked it failed too.
    for (id, e) in lacking {
        peers.fail(&id, e);
    }
    // Then the mirrors, in the order given.
    for i in 0..mirrors.live.len() {
        let Some(m) = mirrors.get(i).cloned() else {
            continue;
        };
        match m.get_blob(root, manifest::MAX_ENCODED_SIZE).await {
            Ok(bytes) => return keep_manifest(store, root, bytes, received).await,
            Err(e) => mirrors.fail(i, e),
        }
    }
    if mirrors.urls.is_empty() {
        return Err(FetchError::PeersFailed(std::mem::take(&mut peers.failures)));
    }
    Err(FetchError::SourcesFailed {
        unreachable: Vec::new(),
        peers: std::mem::take(&mut peers.failures),
        mirrors: std::mem::take(&mut mirrors.failures),
    })
}

/// The verified bytes of the root, from any source: decode them as the
/// manifest, and store them.
async fn keep_manifest(
    store: &Store,
    root: Hash,
    bytes: bytes::Bytes,
    received: &AtomicU64,
) -> Result<Manifest, FetchError> {
    received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let m = Manifest::decode(&bytes).map_err(|source| FetchError::NotAManifest { root, source })?;
    let s = store.clone();
    blocking(move || s.put_blob(&bytes)).await?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{EndpointConfig, SecretKey};

    async fn endpoint(store: Store) -> Endpoint {
        let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
        Endpoint::bind(store, SecretKey::generate().unwrap(), config)
            .await
            .unwrap()
    }

    /// Regression: fetchers that start together connect to each other
    /// before any has the manifest; the one asked first answered
    /// `NotFound` and was dropped, so the demo's fetchers often took
    /// everything from the seed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_without_the_manifest_is_kept_and_the_next_one_asked() {
        let seed_store = Store::memory().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"some bytes").unwrap();
        let root = seed_store
            .add_paths(&[dir.path().join("f")], &Default::default())
            .unwrap()
            .root;
        let seed = endpoint(seed_store).await;
        let other_fetcher = endpoint(Store::memory().unwrap()).await;
        let me = endpoint(Store::memory().unwrap()).await;
        let to = |e: &Endpoint| PeerAddr {
            id: Some(e.node_id()),
            addr: e.local_addr().unwrap(),
        };
        let lacking = me.connect(&to(&other_fetcher)).await.unwrap();
        let has = me.connect(&to(&seed)).await.unwrap();
        // pick() takes the one after `next`: the fetcher without it first.
        let mut peers = Peers {
            live: vec![has, lacking],
            failures: Vec::new(),
            next: 0,
        };
        let mut mirrors = Mirrors {
            urls: Vec::new(),
            live: Vec::new(),
            failures: Vec::new(),
        };
        let got = fetch_manifest(
            me.store(),
            root,
            &mut peers,
            &mut mirrors,
            &AtomicU64::new(0),
        )
        .await
        .unwrap();
        assert_eq!(got.entries().len(), 1);
        assert_eq!(peers.live.len(), 2, "{:?}", peers.failures);
        assert!(peers.failures.is_empty());

        // When nobody has it, those that lack it count as failed.
        let nobody = Hash::of(b"nobody has this");
        let err = fetch_manifest(
            me.store(),
            nobody,
            &mut peers,
            &mut mirrors,
            &AtomicU64::new(0),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, FetchError::PeersFailed(ref f) if f.len() == 2),
            "{err}"
        );
        assert!(peers.live.is_empty());
    }
}
