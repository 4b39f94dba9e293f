//! Fetching a root: its manifest, then every blob, from all its sources at
//! once as the picker directs. What a fetch takes and gives is in `types`;
//! the peers, mirrors and peer exchange in `sources`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info};

use super::ProgressFn;
use crate::content::{GROUP_SIZE, Hash};
use crate::metrics::{self, SourceKind};
use crate::mirror::{self, Mirror, MirrorError, MirrorFault, Verdict};
use crate::net::{Endpoint, Misbehaviour, NodeId, Peer, PeerAddr, RequestError};
use crate::store::{GroupSet, PartialBlob, StoreError};
use crate::swarm::{self, BlobSpec, Failure, PieceId, Request, Swarm};
use crate::wire::{ErrorCode, Have, WireRanges};

mod sources;
mod types;

use self::sources::{Mirrors, Peers, Tried, add_peer, fetch_manifest, spawn_found, spawn_pex};
pub use self::types::{
    FetchError, FetchOptions, FetchProgress, FetchTimings, Fetched, MirrorProgress, MirrorSource,
    Patched, PeerFailure, PeerProgress, Source,
};

/// Most peers one fetch uses by default (given, from the DHT, and by exchange).
pub const DEFAULT_MAX_PEERS: usize = 8;
/// How often a fetch asks its peers for more peers, while it has room:
/// first after [`PEX_FIRST`], the pause doubling up to this.
const PEX_EVERY: Duration = Duration::from_secs(2);
const PEX_FIRST: Duration = Duration::from_millis(250);
/// How often a fetch reports its peers' progress.
const REPORT_EVERY: Duration = Duration::from_millis(500);
/// How long to wait for a peer's answer to a peer-exchange question.
const PEX_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a fetch with nothing else to start from waits for the DHT to
/// find a peer that answers.
const DHT_WAIT: Duration = Duration::from_secs(5);
/// How long a fetch waits for peer exchange before it starts; peers that
/// connect later join while it runs. Addresses from exchange may be stale
/// (a fetcher that has gone), and must not hold a fetch up.
const PEX_HEAD_START: std::time::Duration = std::time::Duration::from_millis(100);

/// A source of a fetch, as the picker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Src {
    /// A QUIC peer.
    Peer(NodeId),
    /// The mirror of this index in [`FetchOptions::mirrors`].
    Mirror(usize),
}

/// Why a request to a source failed.
enum SrcError {
    Peer(RequestError),
    Mirror(MirrorError),
}

/// What a fetch hears while it runs.
enum Event {
    /// A request for a piece ended.
    Piece {
        src: Src,
        piece: PieceId,
        result: Result<u64, SrcError>,
    },
    /// A peer answered what it holds of a blob.
    Asked {
        peer: NodeId,
        blob: usize,
        result: Result<Option<Have>, RequestError>,
    },
}

pub(super) async fn fetch(
    endpoint: &Endpoint,
    root: Hash,
    opts: FetchOptions,
    mut control: watch::Receiver<Control>,
    found: Option<mpsc::UnboundedReceiver<SocketAddr>>,
) -> Result<Fetched, FetchError> {
    let progress = |p| {
        if let Some(f) = &opts.progress {
            f(p)
        }
    };
    let began = tokio::time::Instant::now();
    let mut timings = FetchTimings::default();
    let mut mirror_urls = opts.mirrors.clone();
    mirror_urls.dedup();
    let mut found = found;
    if opts.pin && (!opts.paths.is_all() || opts.manifest_only) {
        return Err(FetchError::PinSubset);
    }
    // Everything stored already: nothing to fetch, and no source needed.
    let (store, pin) = (endpoint.store().clone(), opts.pin);
    let chosen = if opts.manifest_only {
        None
    } else {
        Some(opts.paths.clone())
    };
    if let Some(done) = blocking(move || already_stored(&store, root, pin, chosen.as_ref())).await?
    {
        progress(FetchProgress::Manifest {
            total: done.chosen_size,
            present: done.chosen_size,
        });
        return Ok(Fetched {
            timings: FetchTimings {
                manifest: Some(began.elapsed()),
                ..timings
            },
            ..done
        });
    }
    if opts.peers.is_empty() && mirror_urls.is_empty() && found.is_none() {
        return Err(FetchError::NoPeers);
    }
    let max_peers = opts.max_peers.max(1);
    let own = endpoint.local_addr().ok();
    let own = own.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut connects = JoinSet::new();
    for addr in opts.peers.clone() {
        let ep = endpoint.clone();
        connects.spawn(async move { ep.connect(&addr).await });
    }
    // Each mirror's index is read while the peers connect.
    let mut mirrors = Mirrors {
        urls: mirror_urls.clone(),
        live: vec![None; mirror_urls.len()],
        failures: Vec::new(),
    };
    let mut opens = JoinSet::new();
    if !mirror_urls.is_empty() {
        let client =
            mirror::Client::new(&opts.mirror_roots).map_err(|e| FetchError::SourcesFailed {
                unreachable: Vec::new(),
                peers: Vec::new(),
                mirrors: vec![e],
            })?;
        for (i, url) in mirror_urls.into_iter().enumerate() {
            let c = client.clone();
            opens.spawn(async move { (i, Mirror::open(&c, url).await) });
        }
    }
    let mut live = Vec::new();
    let mut unreachable = Vec::new();
    // Start once every source answered, or a moment after the first one
    // did: a peer or mirror that is down (a connect timing out takes
    // seconds) joins later if it comes up, and does not hold the rest up.
    // Until a source answers, addresses the DHT finds are tried as they
    // come in (the first may be stale), for at most DHT_WAIT.
    let mut started: BTreeSet<SocketAddr> = opts.peers.iter().map(|p| p.addr).collect();
    let dht_deadline = tokio::time::Instant::now() + DHT_WAIT;
    let mut first: Option<tokio::time::Instant> = None;
    let mut dht_first: Option<tokio::time::Instant> = None;
    unless_cancelled(&mut control, async {
        loop {
            let waiting = !connects.is_empty() || !opens.is_empty();
            let grace = first.map(|t| t + PEX_HEAD_START);
            let listening = found.is_some() && first.is_none();
            let next_found = async {
                match &mut found {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                addr = next_found, if listening => match addr {
                    Some(addr) => {
                        dht_first.get_or_insert_with(tokio::time::Instant::now);
                        if addr != own && started.insert(addr) {
                            let ep = endpoint.clone();
                            connects.spawn(async move {
                                ep.connect(&crate::net::PeerAddr { id: None, addr }).await
                            });
                        }
                    }
                    None => found = None,
                },
                () = tokio::time::sleep_until(dht_deadline), if listening && !waiting => break,
                Some(r) = connects.join_next(), if !connects.is_empty() => match r {
                    Ok(Ok(p)) => {
                        live.push(p);
                        first.get_or_insert_with(tokio::time::Instant::now);
                    }
                    Ok(Err(e)) => unreachable.push(e),
                    Err(_) => {}
                },
                Some(r) = opens.join_next(), if !opens.is_empty() => match r {
                    Ok((i, Ok(m))) => {
                        mirrors.live[i] = Some(Arc::new(m));
                        first.get_or_insert_with(tokio::time::Instant::now);
                    }
                    Ok((_, Err(e))) => {
                        info!("not using a mirror: {e}");
                        mirrors.failures.push(e);
                    }
                    Err(_) => {}
                },
                () = tokio::time::sleep_until(grace.unwrap_or_else(tokio::time::Instant::now)),
                    if waiting && grace.is_some() => break,
                else => break,
            }
        }
        Ok(())
    })
    .await?;
    let since = |t: tokio::time::Instant| t.saturating_duration_since(began);
    timings.dht_peer = dht_first.map(since);
    timings.source = first.map(since);
    if live.is_empty() && mirrors.none_live() {
        if mirrors.urls.is_empty() {
            if unreachable.is_empty() {
                // The DHT found nobody (and nothing else was given).
                return Err(FetchError::NoneFound);
            }
            return Err(FetchError::Unreachable(unreachable));
        }
        return Err(FetchError::SourcesFailed {
            unreachable,
            peers: Vec::new(),
            mirrors: mirrors.failures,
        });
    }
    // Peer exchange: the DHT returns few peers per node, so ask each peer
    // whom else it has seen with this root, and connect to some of them in
    // the background; again every few seconds while the fetch runs, so
    // fetchers that started together find each other.
    let tried: Tried = Arc::new(Mutex::new(
        live.iter()
            .map(Peer::addr)
            .chain(started)
            .chain(endpoint.local_addr().ok())
            .collect(),
    ));
    let (pex_tx, mut pex_rx) = mpsc::unbounded_channel();
    // Sources still connecting join the run when they are up.
    let pending = Arc::new(AtomicUsize::new(connects.len() + opens.len()));
    let (late_tx, mut late_rx) = mpsc::unbounded_channel();
    if !connects.is_empty() {
        let (tx, pending) = (pex_tx.clone(), pending.clone());
        tokio::spawn(async move {
            while let Some(r) = connects.join_next().await {
                if let Ok(Ok(p)) = r {
                    let _ = tx.send(p);
                }
                pending.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    if !opens.is_empty() {
        let (tx, pending) = (late_tx.clone(), pending.clone());
        tokio::spawn(async move {
            while let Some(r) = opens.join_next().await {
                if let Ok(late) = r {
                    let _ = tx.send(late);
                }
                pending.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    drop(late_tx);
    let mut first_pex = spawn_pex(endpoint, root, live.clone(), max_peers, &tried, &pex_tx);
    if let Some(found) = found {
        spawn_found(endpoint, found, &tried, &pex_tx);
    }
    let mut connected: Vec<NodeId> = Vec::new();
    let mut peers = Peers {
        live: Vec::new(),
        failures: Vec::new(),
        next: 0,
    };
    for p in live {
        add_peer(&mut peers, &mut connected, p, max_peers);
    }
    // With no peer, there is nobody to ask: no head start (a fetch from
    // mirrors alone starts at once). It ends early once the first exchange
    // is over (every peer answered, and those named connected or failed).
    let head_start = tokio::time::Instant::now() + PEX_HEAD_START;
    let mut exchanging = !peers.live.is_empty();
    while exchanging {
        tokio::select! {
            Some(p) = pex_rx.recv() => {
                add_peer(&mut peers, &mut connected, p, max_peers);
            }
            _ = &mut first_pex => exchanging = false,
            () = tokio::time::sleep_until(head_start) => exchanging = false,
        }
    }
    while let Ok(p) = pex_rx.try_recv() {
        add_peer(&mut peers, &mut connected, p, max_peers);
    }
    progress(FetchProgress::Connected(peers.live.len()));
    debug!(peers = peers.live.len(), "starting");
    let store = endpoint.store().clone();
    let received = Arc::new(AtomicU64::new(0));
    let manifest = unless_cancelled(
        &mut control,
        fetch_manifest(&store, root, &mut peers, &mut mirrors, &received),
    )
    .await?;
    timings.manifest = Some(began.elapsed());

    // Distinct blobs of the files chosen, and their sizes (the manifest is
    // verified, so its sizes are the truth).
    let chosen = match opts.manifest_only {
        true => Vec::new(),
        false => opts.paths.entries(&manifest)?,
    };
    let (chosen_files, chosen_size) = (
        chosen.len() as u64,
        chosen.iter().map(|e| e.size).sum::<u64>(),
    );
    let chosen: Vec<crate::content::Entry> = chosen.into_iter().cloned().collect();
    // Files a patch makes from a base stored here: their patches first (a
    // tenth of the bytes, typically), made into the files and checked
    // whole; whatever that does not make is fetched as usual below.
    let patchable = {
        let (store, chosen) = (store.clone(), chosen.clone());
        blocking(move || patchable(&store, &chosen)).await?
    };
    let patch_blobs: Vec<(Hash, u64)> = patchable
        .iter()
        .map(|(_, p)| (p.patch, p.size))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let parts = make_parts(&store, patch_blobs).await?;

    let mut run = Run {
        endpoint: endpoint.clone(),
        root,
        parts,
        peers,
        connected,
        received,
        report: match &opts.progress {
            Some(f) => f.clone(),
            None => Arc::new(|_| {}),
        },
        max_peers,
        stall: opts.stall_timeout,
        credit: Arc::default(),
        mirror_credit: Arc::new(Mutex::new(vec![0; mirrors.urls.len()])),
        mirrors,
        control,
        began,
        first_data: None,
        named: opts.peers.clone(),
        lost: BTreeMap::new(),
        t0: tokio::time::Instant::now(),
    };
    let mut patched = Patched::default();
    if !patchable.is_empty() {
        // Patches not to be had fall back to whole files soon.
        run.stall = PATCH_STALL.min(opts.stall_timeout);
        match run
            .swarm(&mut pex_rx, &pex_tx, &mut late_rx, &pending, &tried)
            .await
        {
            Ok(_) => {}
            Err(e @ (FetchError::Cancelled | FetchError::Store(_))) => return Err(e),
            Err(e) => info!("patches not fetched, fetching whole files: {e}"),
        }
        run.stall = opts.stall_timeout;
        for (e, p) in patchable {
            let store = store.clone();
            let (entry, pr) = (e.clone(), p);
            let done = blocking(move || store.apply_patch(&entry, &pr)).await?;
            match done {
                crate::store::Applied::Stored => {
                    patched.files += 1;
                    patched.file_bytes += e.size;
                    patched.patch_bytes += p.size;
                }
                other => {
                    info!(path = %e.path, "not made by its patch, fetching it whole: {other:?}")
                }
            }
        }
        if patched.files > 0 {
            progress(FetchProgress::Patched {
                files: patched.files,
                file_bytes: patched.file_bytes,
                patch_bytes: patched.patch_bytes,
            });
        }
    }
    let mut sizes: BTreeMap<Hash, u64> = BTreeMap::new();
    for e in &chosen {
        sizes.insert(e.hash, e.size);
    }
    run.parts = make_parts(&store, sizes.into_iter().collect()).await?;
    let present: u64 = run
        .parts
        .iter()
        .map(|p| (p.present.count() * GROUP_SIZE).min(p.size))
        .sum();
    progress(FetchProgress::Manifest {
        total: chosen_size,
        present,
    });
    let sources = run
        .swarm(&mut pex_rx, &pex_tx, &mut late_rx, &pending, &tried)
        .await?;

    let name = manifest
        .entries()
        .first()
        .map(|e| e.path.split('/').next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    if opts.pin {
        let store = store.clone();
        blocking(move || store.pin(&root, &name)).await?;
    }
    // Closed in a moment, unless the node shuts down first (and then says
    // so): see `Peer::retire`.
    for p in &run.peers.live {
        p.retire();
    }
    let mirror_sources = {
        let credit = run.mirror_credit.lock().unwrap_or_else(|e| e.into_inner());
        run.mirrors
            .urls
            .iter()
            .zip(credit.iter())
            .filter(|(_, b)| **b > 0)
            .map(|(url, &bytes)| MirrorSource {
                url: url.clone(),
                bytes,
            })
            .collect()
    };
    Ok(Fetched {
        root,
        size: manifest.total_size(),
        files: manifest.entries().len() as u64,
        chosen_files,
        chosen_size,
        patched,
        received: run.received.load(Ordering::Relaxed),
        peers: sources.iter().map(|s| s.id).collect(),
        sources,
        connected: run.connected,
        failures: run.peers.failures,
        mirrors: mirror_sources,
        mirror_failures: run.mirrors.failures,
        timings: FetchTimings {
            first_data: run.first_data,
            ..timings
        },
    })
}

/// How long a fetch waits for a patch nobody has before it fetches the
/// whole file instead.
const PATCH_STALL: Duration = Duration::from_secs(5);

/// The chosen files not stored here that a patch in the manifest makes
/// from a base stored here complete, each with that patch.
fn patchable(
    store: &crate::store::Store,
    chosen: &[crate::content::Entry],
) -> Result<Vec<(crate::content::Entry, crate::content::delta::PatchRef)>, StoreError> {
    let complete = |h: &Hash| -> Result<bool, StoreError> {
        Ok(store.blob_info(h)?.is_some_and(|i| i.partial.is_none()))
    };
    let mut out = Vec::new();
    for e in chosen {
        if complete(&e.hash)? {
            continue;
        }
        for p in crate::content::delta::patches_of(e) {
            if complete(&p.base)? {
                out.push((e.clone(), p));
                break;
            }
        }
    }
    Ok(out)
}

/// The parts of a fetch of `blobs`, each opened as a partial blob.
async fn make_parts(
    store: &crate::store::Store,
    blobs: Vec<(Hash, u64)>,
) -> Result<Vec<Part>, FetchError> {
    let store = store.clone();
    Ok(blocking(move || -> Result<Vec<Part>, StoreError> {
        blobs
            .iter()
            .map(|&(hash, size)| {
                if size == 0 {
                    store.put_blob(&[])?;
                }
                let p = store.partial(hash, size)?;
                Ok(Part {
                    hash,
                    size,
                    present: p.present(),
                    blob: (!p.is_complete()).then(|| Arc::new(Mutex::new(p))),
                })
            })
            .collect()
    })
    .await?)
}

/// The fetch of `root` when the store holds its manifest and every blob
/// of the files chosen complete (pinned, if `pin`); `None` when anything
/// is missing. `chosen`: `None` for the manifest only.
fn already_stored(
    store: &crate::store::Store,
    root: Hash,
    pin: bool,
    chosen: Option<&crate::content::Selection>,
) -> Result<Option<Fetched>, FetchError> {
    // A manifest that cannot be read is fetched again, like a missing one.
    let Ok(manifest) = store.manifest(&root) else {
        return Ok(None);
    };
    let entries = match chosen {
        Some(sel) => sel.entries(&manifest)?,
        None => Vec::new(),
    };
    for e in &entries {
        match store.blob_info(&e.hash)? {
            Some(info) if info.partial.is_none() => {}
            _ => return Ok(None),
        }
    }
    // Complete by the records: the bytes on disk must agree (what this
    // process verified already is not read again). Damage found here is
    // dropped from the record, and the usual fetch gets it again.
    for e in &entries {
        if !store.reverify(&e.hash, false)?.dropped.is_empty() {
            return Ok(None);
        }
    }
    if pin {
        let name = manifest
            .entries()
            .first()
            .map(|e| e.path.split('/').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        if let Err(e) = store.pin(&root, &name) {
            debug!("stored, but not pinned ({e}); fetching as usual");
            return Ok(None);
        }
    }
    Ok(Some(Fetched {
        root,
        size: manifest.total_size(),
        files: manifest.entries().len() as u64,
        chosen_files: entries.len() as u64,
        chosen_size: entries.iter().map(|e| e.size).sum(),
        patched: Patched::default(),
        received: 0,
        peers: Vec::new(),
        sources: Vec::new(),
        connected: Vec::new(),
        failures: Vec::new(),
        mirrors: Vec::new(),
        mirror_failures: Vec::new(),
        timings: FetchTimings::default(),
    }))
}

/// What the owner of a fetch wants of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    /// Go on.
    Run,
    /// Request nothing until told to run.
    Pause,
    /// Save what is verified and stop.
    Cancel,
}

/// `f`, or [`FetchError::Cancelled`] as soon as the owner cancels.
pub(super) async fn unless_cancelled<T>(
    control: &mut watch::Receiver<Control>,
    f: impl std::future::Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    let cancelled = async {
        if control.wait_for(|c| *c == Control::Cancel).await.is_err() {
            // The owner is gone without cancelling: go on.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = f => r,
        () = cancelled => Err(FetchError::Cancelled),
    }
}

/// One blob of the fetch.
struct Part {
    hash: Hash,
    size: u64,
    present: GroupSet,
    /// `None` once complete.
    blob: Option<Arc<Mutex<PartialBlob>>>,
}

struct Run {
    endpoint: Endpoint,
    root: Hash,
    parts: Vec<Part>,
    peers: Peers,
    connected: Vec<NodeId>,
    received: Arc<AtomicU64>,
    report: ProgressFn,
    max_peers: usize,
    stall: Duration,
    /// Verified new bytes stored from each peer, counted where they are
    /// written (a request aborted after writing still counts).
    credit: Arc<Mutex<BTreeMap<NodeId, Source>>>,
    /// The same for each mirror, by index.
    mirror_credit: Arc<Mutex<Vec<u64>>>,
    mirrors: Mirrors,
    /// Paused: nothing is requested, and what was in flight is called
    /// back. Cancelled: the same, then every part is saved and it ends.
    control: watch::Receiver<Control>,
    /// When the fetch began, and when its first piece of data was stored.
    began: tokio::time::Instant,
    first_data: Option<Duration>,
    /// The peers the caller named: dialed again when their connection is
    /// lost (a restart), as the picker says ([`Swarm::peer_lost`]).
    named: Vec<PeerAddr>,
    /// Named peers lost, by the id they had, with where to dial them.
    lost: BTreeMap<NodeId, PeerAddr>,
    /// The picker's clock: zero when the swarm began.
    t0: tokio::time::Instant,
}

impl Run {
    /// Download every blob from all sources at once, piece by piece, as
    /// the picker directs. Returns the peers the data came from.
    async fn swarm(
        &mut self,
        pex_rx: &mut mpsc::UnboundedReceiver<Peer>,
        pex_tx: &mpsc::UnboundedSender<Peer>,
        late_mirrors: &mut mpsc::UnboundedReceiver<(usize, Result<Mirror, MirrorError>)>,
        pending: &AtomicUsize,
        tried: &Tried,
    ) -> Result<Vec<Source>, FetchError> {
        let specs: Vec<BlobSpec> = self
            .parts
            .iter()
            .map(|p| BlobSpec {
                size: p.size,
                present: if p.blob.is_none() {
                    let mut all = GroupSet::new();
                    all.insert(0, u64::MAX);
                    all
                } else {
                    p.present.clone()
                },
            })
            .collect();
        let mut seed = [0u8; 8];
        // Any seed will do; a fixed one only makes fetchers that start
        // together pick alike.
        let _ = getrandom::fill(&mut seed);
        let mut swarm: Swarm<Src> = Swarm::new(
            &specs,
            swarm::Config {
                stall_timeout: self.stall,
                // Responses are held until verified: the connection's
                // window bounds them.
                max_pipeline_bytes: self.endpoint.window(),
                ..swarm::Config::default()
            },
            u64::from_le_bytes(seed),
        );
        // Fetchers that see each other split what only one source has.
        swarm.set_me(Src::Peer(self.endpoint.node_id()));
        let index: BTreeMap<Hash, usize> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| (p.hash, i))
            .collect();
        // The blobs' `Have`s, and the root's pushed peers (wire.md §3.8).
        // Dials to pushed addresses still on the way.
        let dialing_pushed = Arc::new(AtomicUsize::new(0));
        let mut watch = self.endpoint.watch_haves(
            self.parts
                .iter()
                .map(|p| p.hash)
                .chain([self.root])
                .collect(),
        );
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let mut flights: Flights = BTreeMap::new();
        let mut tasks = JoinSet::new();
        let start = tokio::time::Instant::now();
        self.t0 = start;
        // Dials of lost named peers, and how they went.
        type Redialed = (NodeId, Result<Peer, crate::net::ConnectError>);
        let (redial_tx, mut redial_rx) = mpsc::unbounded_channel::<Redialed>();
        let mut pex_pause = PEX_FIRST;
        let mut next_pex = start + pex_pause;
        let mut next_report = start;
        let peers: Vec<Peer> = self.peers.live.clone();
        for p in peers {
            self.join(&mut swarm, &p, &tx);
        }
        // A mirror has everything (what it lacks, it answers 404 for).
        for i in 0..self.mirrors.live.len() {
            if self.mirrors.get(i).is_some() && swarm.add_peer(Src::Mirror(i)) {
                swarm.peer_has_all(&Src::Mirror(i));
            }
        }
        while !swarm.is_complete() {
            let now = start.elapsed();
            let control = *self.control.borrow_and_update();
            if control == Control::Cancel {
                tasks.shutdown().await;
                self.save().await?;
                return Err(FetchError::Cancelled);
            }
            let paused = control == Control::Pause;
            swarm.handle_pause(paused);
            if paused {
                // Call everything back; verified groups stay stored, and
                // the pieces go back to the pool for when it resumes.
                for ((src, piece), h) in std::mem::take(&mut flights) {
                    h.abort();
                    swarm.piece_failed(&src, piece, Failure::Cancelled);
                }
            }
            // Fill every source's pipeline.
            let ids: Vec<Src> = if paused {
                Vec::new()
            } else {
                swarm.peers().collect()
            };
            for src in ids {
                match src {
                    Src::Peer(id) => {
                        let Some(peer) = self.peers.get(&id).cloned() else {
                            swarm.remove_peer(&src);
                            continue;
                        };
                        swarm.set_rtt(&src, peer.rtt());
                        for r in swarm.poll_requests(&src, now) {
                            let (piece, h) = self.spawn_request(&mut tasks, &tx, &peer, r);
                            flights.insert((src, piece), h);
                        }
                    }
                    Src::Mirror(i) => {
                        let Some(m) = self.mirrors.get(i).cloned() else {
                            swarm.remove_peer(&src);
                            continue;
                        };
                        for r in swarm.poll_requests(&src, now) {
                            let (piece, h) = self.spawn_mirror_request(&mut tasks, &tx, i, &m, r);
                            flights.insert((src, piece), h);
                        }
                    }
                }
            }
            // Named peers lost, due to be dialed again.
            while let Some(src) = swarm.poll_redial(now) {
                let Src::Peer(id) = src else {
                    swarm.redial_done(&src);
                    continue;
                };
                let Some(addr) = self.lost.get(&id).cloned() else {
                    swarm.redial_done(&src);
                    continue;
                };
                let (ep, tx) = (self.endpoint.clone(), redial_tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send((id, ep.connect(&addr).await));
                });
            }
            // Every source failed, none is still connecting (one that just
            // connected may be waiting in a channel), and no lost peer is
            // being dialed again.
            if self.peers.live.is_empty()
                && self.mirrors.none_live()
                && pending.load(Ordering::Relaxed) == 0
                && dialing_pushed.load(Ordering::Relaxed) == 0
                && !swarm.is_redialing()
            {
                if let Ok(p) = pex_rx.try_recv() {
                    self.joined(&mut swarm, p, &tx);
                    continue;
                }
                if let Ok((i, opened)) = late_mirrors.try_recv() {
                    self.opened(&mut swarm, i, opened);
                    continue;
                }
                return Err(self.all_failed());
            }
            // The picker decides when waiting has gone on long enough.
            swarm.handle_timeout(now);
            if swarm.poll_stalled(now) {
                return Err(FetchError::NoSource {
                    missing: swarm.missing_bytes(),
                    peers: self.peers.live.len(),
                    mirrors: self.mirrors.live.iter().flatten().count(),
                });
            }
            let wake = swarm.poll_timeout().map(|t| start + t);
            tokio::select! {
                Some(ev) = rx.recv() => match ev {
                    Event::Piece { src, piece, result } => {
                        flights.remove(&(src, piece));
                        self.on_piece(&mut swarm, &mut flights, src, piece, result, start, &tx)
                            .await?;
                    }
                    Event::Asked { peer, blob, result } => {
                        let src = Src::Peer(peer);
                        swarm.handle_ask_answered(&src, blob);
                        match result {
                            Ok(Some(have)) if have.size == self.parts[blob].size => {
                                swarm.peer_has(&src, blob, &group_set(&have.groups, have.size));
                                if have.groups.len() >= crate::wire::MAX_HAVE_RANGES {
                                    // Only its first ranges (wire.md §3.2).
                                    swarm.peer_may_have_more(&src, blob);
                                }
                            }
                            Ok(Some(have)) => {
                                let e = RequestError::Misbehaved(Misbehaviour::WrongSize {
                                    hash: have.hash,
                                    claimed: have.size,
                                    actual: self.parts[blob].size,
                                });
                                self.drop_peer(&mut swarm, &mut flights, &peer, e, true);
                            }
                            Ok(None) => swarm.peer_lacks(&src, blob),
                            Err(e) if e.is_misbehaviour() => {
                                self.drop_peer(&mut swarm, &mut flights, &peer, e, true);
                            }
                            Err(e @ (RequestError::Connection(_) | RequestError::Timeout(_))) => {
                                self.drop_peer(&mut swarm, &mut flights, &peer, e, false);
                            }
                            // It may still serve pieces; the picker learns as it asks.
                            Err(_) => swarm.peer_may_have_more(&src, blob),
                        }
                    }
                },
                Some((peer, have)) = watch.rx.recv() => {
                    if let Some(&blob) = index.get(&have.hash)
                        && have.size == self.parts[blob].size
                    {
                        swarm.peer_has(&Src::Peer(peer), blob, &group_set(&have.groups, have.size));
                    }
                }
                Some((i, opened)) = late_mirrors.recv() => self.opened(&mut swarm, i, opened),
                Some((id, dialed)) = redial_rx.recv() => match dialed {
                    Ok(p) => {
                        let back = p.id();
                        if back != id {
                            // Restarted as another node: that one is new.
                            swarm.redial_done(&Src::Peer(id));
                        }
                        self.lost.remove(&id);
                        if self.joined(&mut swarm, p, &tx) {
                            info!(peer = %back, "reconnected to a named peer");
                            self.peers.failures.retain(|f| f.id != id);
                        } else {
                            swarm.redial_done(&Src::Peer(back));
                        }
                    }
                    Err(e) => {
                        debug!(peer = %id, "dialing a lost peer again failed: {e}");
                        swarm.redial_failed(&Src::Peer(id), start.elapsed());
                    }
                },
                Some(p) = pex_rx.recv() => {
                    self.joined(&mut swarm, p, &tx);
                }
                // A peer that connected here to fetch the same blobs: it
                // serves what it has verified, over its own connection.
                Some(p) = watch.askers.recv() => {
                    tried.lock().unwrap_or_else(|e| e.into_inner()).insert(p.addr());
                    self.joined(&mut swarm, p, &tx);
                }
                // A peer told of another fetcher or seed of the root as it
                // met it: connect while there is room, as to an exchanged
                // address.
                // Dials on the way count against the room: a peer pushing
                // addresses as fast as it can gets no more dials out of
                // this node than there are free slots.
                Some(addr) = watch.addrs.recv() => {
                    let busy = self.peers.live.len() + dialing_pushed.load(Ordering::Relaxed);
                    if busy < self.max_peers
                        && tried.lock().unwrap_or_else(|e| e.into_inner()).insert(addr)
                    {
                        let (ep, tx) = (self.endpoint.clone(), pex_tx.clone());
                        let dialing = dialing_pushed.clone();
                        dialing.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            match ep.connect(&PeerAddr { id: None, addr }).await {
                                // This node, under another address.
                                Ok(p) if p.id() == ep.node_id() => p.close(),
                                Ok(p) => drop(tx.send(p)),
                                Err(_) => {}
                            }
                            // After the send: at zero, a peer it made is
                            // in the channel already.
                            dialing.fetch_sub(1, Ordering::Relaxed);
                        });
                    }
                }
                // Exchange and reports, while running. Paused, nothing is
                // due: an idle paused fetch takes no CPU; a resume wakes it
                // below.
                () = tokio::time::sleep_until(next_pex.min(next_report)), if !paused => {}
                // The picker's own deadline: a request turning late (to be
                // stolen), the end of a stall wait. There is no other tick.
                () = tokio::time::sleep_until(wake.unwrap_or(start)), if wake.is_some() => {}
                // Paused or resumed: act on it at once.
                Ok(()) = self.control.changed() => {}
            }
            let t = tokio::time::Instant::now();
            if t >= next_pex {
                // Fetchers that start together are asking the same peers
                // who else came: ask again soon at first, then less often.
                pex_pause = (pex_pause * 2).min(PEX_EVERY);
                next_pex = t + pex_pause;
                if self.peers.live.len() < self.max_peers {
                    let known = self.peers.live.clone();
                    // Detached: its peers arrive on the channel.
                    drop(spawn_pex(
                        &self.endpoint,
                        self.root,
                        known,
                        self.max_peers,
                        tried,
                        pex_tx,
                    ));
                }
            }
            if t >= next_report {
                next_report = t + REPORT_EVERY;
                self.report_sources(&swarm);
            }
        }
        tasks.abort_all();
        // Make everything durable, and complete in the store.
        self.save().await?;
        self.report_sources(&swarm);
        let credit = self.credit.lock().unwrap_or_else(|e| e.into_inner());
        Ok(credit.values().filter(|s| s.bytes > 0).cloned().collect())
    }

    /// A peer connected while the fetch runs (by exchange, a given one
    /// that was slow to answer, or a lost one back). Whether it is used.
    fn joined(
        &mut self,
        swarm: &mut Swarm<Src>,
        p: Peer,
        tx: &mpsc::UnboundedSender<Event>,
    ) -> bool {
        if add_peer(
            &mut self.peers,
            &mut self.connected,
            p.clone(),
            self.max_peers,
        ) {
            self.join(swarm, &p, tx);
            (self.report)(FetchProgress::Connected(self.peers.live.len()));
            true
        } else {
            false
        }
    }

    /// A mirror's index was read while the fetch runs: use it, or note why not.
    fn opened(&mut self, swarm: &mut Swarm<Src>, i: usize, opened: Result<Mirror, MirrorError>) {
        match opened {
            Ok(m) => {
                if let Some(slot) = self.mirrors.live.get_mut(i) {
                    *slot = Some(Arc::new(m));
                    if swarm.add_peer(Src::Mirror(i)) {
                        swarm.peer_has_all(&Src::Mirror(i));
                    }
                }
            }
            Err(e) => {
                info!("not using a mirror: {e}");
                self.mirrors.failures.push(e);
            }
        }
    }

    /// The error when no source is left.
    fn all_failed(&mut self) -> FetchError {
        let peers = std::mem::take(&mut self.peers.failures);
        if self.mirrors.urls.is_empty() {
            return FetchError::PeersFailed(peers);
        }
        FetchError::SourcesFailed {
            unreachable: Vec::new(),
            peers,
            mirrors: std::mem::take(&mut self.mirrors.failures),
        }
    }

    /// Commit what is verified of every part. A store thread still writing
    /// a piece of an aborted request holds its part; wait for it, so that
    /// when this returns everything verified is committed.
    async fn save(&mut self) -> Result<(), FetchError> {
        for part in &mut self.parts {
            let Some(b) = part.blob.take() else {
                continue;
            };
            // A piece takes milliseconds to verify and write.
            for _ in 0..200 {
                if Arc::strong_count(&b) == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            blocking(move || b.lock().unwrap_or_else(|e| e.into_inner()).flush()).await?;
        }
        Ok(())
    }

    /// Start using `peer`: ask it what it holds of every blob of more than
    /// one piece (single pieces are simply asked for).
    fn join(&mut self, swarm: &mut Swarm<Src>, peer: &Peer, tx: &mpsc::UnboundedSender<Event>) {
        if !swarm.add_peer(Src::Peer(peer.id())) {
            return;
        }
        for blob in 0..self.parts.len() {
            if self.parts[blob].blob.is_none() || swarm.pieces_of(blob).len() < 2 {
                continue;
            }
            self.ask(swarm, peer, blob, tx);
        }
    }

    /// Ask `peer` what it holds of `blob`, which also subscribes to what
    /// it gets later (wire.md §3.6). Until the answer, nothing of the blob
    /// is asked of it. The picker keeps track of what was asked.
    fn ask(
        &mut self,
        swarm: &mut Swarm<Src>,
        peer: &Peer,
        blob: usize,
        tx: &mpsc::UnboundedSender<Event>,
    ) {
        if !swarm.handle_ask_sent(&Src::Peer(peer.id()), blob) {
            return;
        }
        let (peer, tx, hash) = (peer.clone(), tx.clone(), self.parts[blob].hash);
        tokio::spawn(async move {
            let result = peer.ask(hash).await;
            let _ = tx.send(Event::Asked {
                peer: peer.id(),
                blob,
                result,
            });
        });
    }

    /// What a request needs: the part, the groups of the piece not stored
    /// already, and the counter of bytes arriving.
    fn request_of(&self, r: &Request) -> (Hash, u64, Option<Wanted>) {
        let part = &self.parts[r.blob];
        let blob = part.blob.clone().map(|blob| {
            let want = {
                let b = blob.lock().unwrap_or_else(|e| e.into_inner());
                let have = b.present();
                let mut want = GroupSet::new();
                for g in r.groups.clone() {
                    if !have.contains(g) {
                        want.insert(g, g + 1);
                    }
                }
                want
            };
            (blob, want)
        });
        (part.hash, part.size, blob)
    }

    fn on_bytes(&self) -> impl Fn(u64) + Send + Sync + 'static {
        let (received, report) = (self.received.clone(), self.report.clone());
        move |n: u64| {
            received.fetch_add(n, Ordering::Relaxed);
            report(FetchProgress::Received(n));
        }
    }

    fn spawn_request(
        &self,
        tasks: &mut JoinSet<()>,
        tx: &mpsc::UnboundedSender<Event>,
        peer: &Peer,
        r: Request,
    ) -> (PieceId, AbortHandle) {
        let (hash, size, blob) = self.request_of(&r);
        let (peer, tx) = (peer.clone(), tx.clone());
        let on_bytes = self.on_bytes();
        let piece = r.piece;
        let on_written: crate::net::Written = {
            let (credit, id, addr) = (self.credit.clone(), peer.id(), peer.addr());
            let stats = self.endpoint.clone();
            Arc::new(move |n| {
                metrics::bytes_down(SourceKind::Peer, n);
                stats.stats().bytes_received.fetch_add(n, Ordering::Relaxed);
                let mut c = credit.lock().unwrap_or_else(|e| e.into_inner());
                c.entry(id).or_insert(Source { id, addr, bytes: 0 }).bytes += n;
            })
        };
        let h = tasks.spawn(async move {
            let result = match blob {
                None => Ok(0),
                Some((blob, want)) => {
                    peer.get_groups(&blob, hash, size, &want, &on_bytes, on_written)
                        .await
                }
            };
            let _ = tx.send(Event::Piece {
                src: Src::Peer(peer.id()),
                piece,
                result: result.map_err(SrcError::Peer),
            });
        });
        (piece, h)
    }

    fn spawn_mirror_request(
        &self,
        tasks: &mut JoinSet<()>,
        tx: &mpsc::UnboundedSender<Event>,
        i: usize,
        mirror: &Arc<Mirror>,
        r: Request,
    ) -> (PieceId, AbortHandle) {
        let (hash, size, blob) = self.request_of(&r);
        let (mirror, tx) = (mirror.clone(), tx.clone());
        let on_bytes = self.on_bytes();
        let piece = r.piece;
        let credit = self.mirror_credit.clone();
        let stats = self.endpoint.clone();
        let on_written: crate::net::Written = Arc::new(move |n: u64| {
            metrics::bytes_down(SourceKind::Mirror, n);
            stats.stats().bytes_received.fetch_add(n, Ordering::Relaxed);
            let mut c = credit.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(b) = c.get_mut(i) {
                *b += n;
            }
        });
        let h = tasks.spawn(async move {
            let result = match blob {
                None => Ok(0),
                Some((blob, want)) => {
                    mirror
                        .get_groups(&blob, hash, size, &want, &on_bytes, on_written)
                        .await
                }
            };
            let _ = tx.send(Event::Piece {
                src: Src::Mirror(i),
                piece,
                result: result.map_err(SrcError::Mirror),
            });
        });
        (piece, h)
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_piece(
        &mut self,
        swarm: &mut Swarm<Src>,
        flights: &mut Flights,
        src: Src,
        piece: PieceId,
        result: Result<u64, SrcError>,
        start: tokio::time::Instant,
        tx: &mpsc::UnboundedSender<Event>,
    ) -> Result<(), FetchError> {
        match result {
            Ok(n) => {
                if n > 0 && self.first_data.is_none() {
                    self.first_data = Some(self.began.elapsed());
                }
                if let Src::Peer(id) = src
                    && let Some(p) = self.peers.get(&id).filter(|_| n > 0)
                {
                    // Others may ask us about it: this peer has the root.
                    p.note_has(self.root);
                }
                for other in swarm.piece_done(&src, piece, start.elapsed()) {
                    if let Some(h) = flights.remove(&(other, piece)) {
                        h.abort();
                    }
                }
                let Some((blob, range)) = swarm.piece(piece) else {
                    return Ok(());
                };
                let part = &self.parts[blob];
                // Tell peers that asked about this blob that we hold the piece now.
                let mut groups = GroupSet::new();
                groups.insert(range.start, range.end);
                self.endpoint.announce_have(part.hash, part.size, &groups);
                if swarm.blob_complete(blob)
                    && let Some(b) = self.parts[blob].blob.take()
                {
                    blocking(move || b.lock().unwrap_or_else(|e| e.into_inner()).flush()).await?;
                }
            }
            Err(SrcError::Mirror(e)) => {
                let Src::Mirror(i) = src else {
                    return Ok(());
                };
                match e.fault.verdict() {
                    Verdict::Local => {
                        if let MirrorFault::Store(s) = e.fault {
                            return Err(s.into());
                        }
                        // Only a store fault is ours alone; anything else
                        // goes back to the pool.
                        swarm.piece_failed(&src, piece, Failure::Slow);
                    }
                    Verdict::Ban => self.drop_mirror(swarm, flights, i, e, true),
                    Verdict::Drop => self.drop_mirror(swarm, flights, i, e, false),
                    Verdict::Lacks => {
                        debug!("mirror lacks a blob: {e}");
                        swarm.piece_failed(&src, piece, Failure::NotHeld);
                        if let Some((blob, _)) = swarm.piece(piece) {
                            swarm.peer_lacks(&src, blob);
                        }
                    }
                    Verdict::Retry => {
                        debug!("mirror request failed: {e}");
                        swarm.piece_failed(&src, piece, Failure::Slow);
                        if let Some(Src::Mirror(gone)) = swarm.poll_dropped() {
                            self.drop_mirror(swarm, flights, gone, e, false);
                        }
                    }
                }
            }
            Err(SrcError::Peer(e)) => {
                let Src::Peer(peer) = src else {
                    return Ok(());
                };
                self.on_peer_failed(swarm, flights, peer, piece, e, tx)?;
            }
        }
        Ok(())
    }

    fn on_peer_failed(
        &mut self,
        swarm: &mut Swarm<Src>,
        flights: &mut Flights,
        peer: NodeId,
        piece: PieceId,
        error: RequestError,
        tx: &mpsc::UnboundedSender<Event>,
    ) -> Result<(), FetchError> {
        let src = Src::Peer(peer);
        match error {
            RequestError::Store(e) => return Err(e.into()),
            // Banned: its other requests go back to the pool too.
            e if e.is_misbehaviour() => self.drop_peer(swarm, flights, &peer, e, true),
            RequestError::Remote {
                code: ErrorCode::NotFound | ErrorCode::Incomplete,
                ..
            } => {
                swarm.piece_failed(&src, piece, Failure::NotHeld);
                // Asked on the chance: subscribe, to hear when it has it.
                if let (Some((blob, _)), Some(p)) =
                    (swarm.piece(piece), self.peers.get(&peer).cloned())
                {
                    self.ask(swarm, &p, blob, tx);
                }
            }
            e @ (RequestError::Timeout(_)
            | RequestError::Reset(_)
            | RequestError::Remote { .. }
            // Our own fault: never a ban; strikes keep a repeating bug
            // from asking the same peer forever.
            | RequestError::Local(_)) => {
                // Slow or busy, not gone: a capped peer queues requests.
                // Gone after all if its connection closed; the picker gives
                // up on one that never answers (strikes in a row).
                debug!(%peer, "request failed: {e}");
                if self.peers.get(&peer).is_some_and(Peer::is_closed) {
                    swarm.piece_failed(&src, piece, Failure::Lost);
                    self.drop_peer(swarm, flights, &peer, e, false);
                } else {
                    swarm.piece_failed(&src, piece, Failure::Slow);
                    if let Some(gone) = swarm.poll_dropped() {
                        // Only this peer's strike can have dropped one.
                        debug_assert_eq!(gone, src);
                        self.drop_peer(swarm, flights, &peer, e, false);
                    }
                }
            }
            e => {
                debug!(%peer, "request failed: {e}");
                swarm.piece_failed(&src, piece, Failure::Lost);
                self.drop_peer(swarm, flights, &peer, e, false);
            }
        }
        Ok(())
    }

    /// Stop using a peer: everything in flight to it returns to the pool.
    fn drop_peer(
        &mut self,
        swarm: &mut Swarm<Src>,
        flights: &mut Flights,
        peer: &NodeId,
        error: RequestError,
        bad: bool,
    ) {
        if bad {
            metrics::ban(SourceKind::Peer);
            if let RequestError::Misbehaved(m) = &error {
                metrics::verify_failure(SourceKind::Peer, m.kind());
            }
        }
        // Its connection gone (a restart, say), not stalled or lying.
        let closed = self
            .peers
            .get(peer)
            .filter(|p| p.is_closed())
            .map(Peer::addr);
        forget(swarm, flights, Src::Peer(*peer), bad);
        // A named peer whose connection closed, and that sent no bad
        // data: the picker says when to dial it again.
        if !bad && let Some(named) = self.named.iter().find(|n| Some(n.addr) == closed) {
            self.lost.insert(*peer, named.clone());
            swarm.peer_lost(&Src::Peer(*peer), self.t0.elapsed());
        }
        self.peers.fail(peer, error);
    }

    /// Stop using a mirror, the same way.
    fn drop_mirror(
        &mut self,
        swarm: &mut Swarm<Src>,
        flights: &mut Flights,
        i: usize,
        error: MirrorError,
        bad: bool,
    ) {
        if bad {
            metrics::ban(SourceKind::Mirror);
            metrics::verify_failure(SourceKind::Mirror, error.fault.kind());
        }
        forget(swarm, flights, Src::Mirror(i), bad);
        self.mirrors.fail(i, error);
    }

    /// Report what each peer and mirror is doing.
    fn report_sources(&self, swarm: &Swarm<Src>) {
        (self.report)(FetchProgress::Peers(self.peer_progress(swarm)));
        if !self.mirrors.urls.is_empty() {
            (self.report)(FetchProgress::Mirrors(self.mirror_progress(swarm)));
        }
    }

    fn peer_progress(&self, swarm: &Swarm<Src>) -> Vec<PeerProgress> {
        let sources = self.credit.lock().unwrap_or_else(|e| e.into_inner());
        self.peers
            .live
            .iter()
            .map(|p| {
                let stats = swarm.peer_stats(&Src::Peer(p.id())).unwrap_or_default();
                PeerProgress {
                    id: p.id(),
                    addr: p.addr(),
                    rate: stats.rate as u64,
                    bytes: sources.get(&p.id()).map_or(0, |s| s.bytes),
                    in_flight: stats.in_flight,
                }
            })
            .collect()
    }

    fn mirror_progress(&self, swarm: &Swarm<Src>) -> Vec<MirrorProgress> {
        let credit = self.mirror_credit.lock().unwrap_or_else(|e| e.into_inner());
        (0..self.mirrors.urls.len())
            .filter(|&i| self.mirrors.get(i).is_some())
            .map(|i| {
                let stats = swarm.peer_stats(&Src::Mirror(i)).unwrap_or_default();
                MirrorProgress {
                    url: self.mirrors.urls[i].clone(),
                    rate: stats.rate as u64,
                    bytes: credit.get(i).copied().unwrap_or(0),
                    in_flight: stats.in_flight,
                }
            })
            .collect()
    }
}

/// A part still being fetched, and the groups of a piece it lacks.
type Wanted = (Arc<Mutex<PartialBlob>>, GroupSet);

/// Requests in flight, by source and piece.
type Flights = BTreeMap<(Src, PieceId), AbortHandle>;

/// Take a source out of the picker (banned if `bad`) and call back what is
/// in flight to it: those pieces return to the pool.
fn forget(swarm: &mut Swarm<Src>, flights: &mut Flights, src: Src, bad: bool) {
    if bad {
        swarm.ban(&src);
    } else {
        swarm.remove_peer(&src);
    }
    let gone: Vec<_> = flights
        .range((src, PieceId(0))..=(src, PieceId(u32::MAX)))
        .map(|(k, _)| *k)
        .collect();
    for k in gone {
        if let Some(h) = flights.remove(&k) {
            h.abort();
        }
    }
}

/// A `Have`'s group ranges as a set, closed at the blob's last group.
fn group_set(w: &WireRanges, size: u64) -> GroupSet {
    w.to_groups(size)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
