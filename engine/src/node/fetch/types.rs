//! What a fetch takes and gives: its options, progress, result and errors.

use std::net::SocketAddr;
use std::time::Duration;

use super::DEFAULT_MAX_PEERS;
use crate::content::{Hash, SelectError, Selection, manifest};
use crate::mirror::{MirrorError, MirrorUrl};
use crate::net::{ConnectError, NodeId, PeerAddr, RequestError};
use crate::node::ProgressFn;
use crate::store::{ReadError, StoreError};

/// Options for [`crate::node::Node::fetch`].
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
    /// Most peers to use at once.
    pub max_peers: usize,
    /// How long to wait, when no connected peer has what is still
    /// missing, for one that does (by exchange, or announcing it) before
    /// giving up with [`FetchError::NoSource`].
    pub stall_timeout: Duration,
    /// HTTP(S) mirrors of the content (`wire-spec/mirror.md`): sources that
    /// have everything, drawn from at once with the peers, and verified
    /// byte for byte like them.
    pub mirrors: Vec<MirrorUrl>,
    /// CA certificates (PEM or DER) to trust for HTTPS mirrors besides the
    /// Mozilla roots built in: a private CA, say.
    pub mirror_roots: Vec<Vec<u8>>,
    /// What the fetch is for, shown where [`crate::node::Node::fetches`]
    /// lists it (the follow loop gives its seed entry).
    pub label: Option<String>,
    /// Only these files of the root ([`Selection`]); the default takes
    /// all. A subset is never pinned: with anything but all, `pin` must be
    /// false.
    pub paths: Selection,
    /// Fetch the manifest and nothing else: to see what a root holds.
    pub manifest_only: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            progress: None,
            pin: true,
            max_peers: DEFAULT_MAX_PEERS,
            stall_timeout: Duration::from_secs(30),
            mirrors: Vec::new(),
            mirror_roots: Vec::new(),
            label: None,
            paths: Selection::all(),
            manifest_only: false,
        }
    }
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("peers", &self.peers)
            .field("mirrors", &self.mirrors)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Files a fetch made from earlier versions by patches (issue 18).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Patched {
    /// How many.
    pub files: u64,
    /// Their bytes.
    pub file_bytes: u64,
    /// Bytes of the patches that made them (fetched, or stored already).
    pub patch_bytes: u64,
}

/// Progress of a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchProgress {
    /// Connected to this many peers.
    Connected(usize),
    /// Files were made by patches from earlier versions stored here.
    Patched {
        /// How many.
        files: u64,
        /// Their bytes.
        file_bytes: u64,
        /// Bytes of the patches.
        patch_bytes: u64,
    },
    /// The manifest is known: total bytes, and bytes already stored.
    Manifest {
        /// Total bytes of the files.
        total: u64,
        /// Bytes already stored before this fetch.
        present: u64,
    },
    /// This many more bytes arrived from the network.
    Received(u64),
    /// The peers in use and what each is doing (twice a second, and at
    /// the end).
    Peers(Vec<PeerProgress>),
    /// The mirrors in use and what each is doing (with `Peers`).
    Mirrors(Vec<MirrorProgress>),
}

/// One mirror of a running fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorProgress {
    /// Its base URL.
    pub url: MirrorUrl,
    /// Its measured rate, in bytes per second.
    pub rate: u64,
    /// Verified bytes it delivered.
    pub bytes: u64,
    /// Requests in flight to it.
    pub in_flight: usize,
}

/// A mirror that delivered data, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSource {
    /// Its base URL.
    pub url: MirrorUrl,
    /// Verified new bytes it delivered.
    pub bytes: u64,
}

/// One peer of a running fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProgress {
    /// The peer.
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// Its measured rate, in bytes per second.
    pub rate: u64,
    /// Verified bytes it delivered.
    pub bytes: u64,
    /// Requests in flight to it.
    pub in_flight: usize,
}

/// A peer that delivered data, and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The peer.
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// Verified new bytes it delivered.
    pub bytes: u64,
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
    /// Files fetched: all of them, unless [`FetchOptions::paths`] chose
    /// some (none for [`FetchOptions::manifest_only`]).
    pub chosen_files: u64,
    /// Bytes of the files fetched.
    pub chosen_size: u64,
    /// Files made here by a patch from an earlier version stored here.
    pub patched: Patched,
    /// Bytes received from the network (Bao data, including tree nodes).
    pub received: u64,
    /// Peers data came from.
    pub peers: Vec<NodeId>,
    /// How much each of them delivered.
    pub sources: Vec<Source>,
    /// Peers connected to (including those learned by peer exchange).
    pub connected: Vec<NodeId>,
    /// Peers that failed or were dropped along the way (the fetch still
    /// succeeded from the others).
    pub failures: Vec<PeerFailure>,
    /// Mirrors data came from, and how much each delivered.
    pub mirrors: Vec<MirrorSource>,
    /// Mirrors that failed or were dropped along the way.
    pub mirror_failures: Vec<MirrorError>,
    /// When it reached each stage.
    pub timings: FetchTimings,
}

/// When a fetch reached each stage, counted from its start; `None` for a
/// stage it did not go through.
///
/// The time to the first verified byte from a known peer is `first_data`
/// when `dht_peer` is `None`: connecting, the manifest, and one piece.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchTimings {
    /// The first address the DHT lookup gave (a lookup runs beside the
    /// peers given, when the node has a DHT).
    pub dht_peer: Option<Duration>,
    /// The first source answered: a peer connected (TLS and `Hello`
    /// done) or a mirror's index read.
    pub source: Option<Duration>,
    /// The manifest was verified (at once, when it was stored already).
    pub manifest: Option<Duration>,
    /// The first piece of file data was verified and stored; `None` when
    /// everything was stored already.
    pub first_data: Option<Duration>,
}

/// A fetch that failed. Everything verified before the failure is kept, and
/// fetching again resumes from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No peers or mirrors were given, and there is no DHT to find any.
    #[error(
        "no sources to fetch from: no peers or mirrors were given, and the DHT is not in use to find any"
    )]
    NoPeers,
    /// No peers or mirrors were given, and the DHT found nobody with the
    /// root.
    #[error(
        "no sources to fetch from: no peers or mirrors were given, and none was found on the DHT"
    )]
    NoneFound,
    /// The files chosen cannot be: a pattern that is not one, none that
    /// matches, or a subset asked to be pinned.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// A subset of a root to be pinned.
    #[error(
        "only part of the root was asked for, and a part is not pinned (a pin keeps a whole root); \
         fetch it all to keep it"
    )]
    PinSubset,
    /// No peer could be reached.
    #[error("no peer could be reached: {}", list(.0))]
    Unreachable(Vec<ConnectError>),
    /// Every peer failed or misbehaved.
    #[error("every peer failed: {}", list(.0))]
    PeersFailed(Vec<PeerFailure>),
    /// Mirrors were given, and every mirror and peer failed.
    #[error("every source failed: {}", sources_failed(unreachable, peers, mirrors))]
    SourcesFailed {
        /// Peers that could not be reached.
        unreachable: Vec<ConnectError>,
        /// Peers that failed.
        peers: Vec<PeerFailure>,
        /// Mirrors that failed.
        mirrors: Vec<MirrorError>,
    },
    /// The peers connected (and mirrors in use) have none of what is still
    /// missing, and no other peer turned up in time.
    #[error(
        "none of the {peers} peers{} has the {missing} bytes still missing; the verified part is kept, fetch again when a peer that has the rest is up",
        match mirrors { 0 => String::new(), 1 => " and 1 mirror".into(), n => format!(" and {n} mirrors") }
    )]
    NoSource {
        /// Bytes still missing.
        missing: u64,
        /// Peers connected.
        peers: usize,
        /// Mirrors in use (those that lack the files did not fail).
        mirrors: usize,
    },
    /// The root's bytes verify but are not a manifest.
    #[error("{root} is not a manifest")]
    NotAManifest {
        /// The root.
        root: Hash,
        /// Why it does not decode.
        source: manifest::ManifestError,
    },
    /// The fetch was cancelled ([`crate::node::FetchHandle::cancel`]); what was
    /// verified is kept.
    #[error("the fetch was cancelled; the verified part is kept, fetch again to resume")]
    Cancelled,
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One peer's failure, with who it was.
#[derive(Debug, thiserror::Error)]
#[error("peer {} at {addr}: {}", id.short(), crate::error_chain(error))]
pub struct PeerFailure {
    /// The peer.
    pub id: NodeId,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// What went wrong.
    pub error: RequestError,
}

fn list<E: std::error::Error>(v: &[E]) -> String {
    v.iter()
        .map(|e| crate::error_chain(e))
        .collect::<Vec<_>>()
        .join("; ")
}

fn sources_failed(u: &[ConnectError], p: &[PeerFailure], m: &[MirrorError]) -> String {
    [list(m), list(p), list(u)]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<ReadError> for FetchError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Store(s) => Self::Store(s),
            other => Self::Store(StoreError::Io(std::io::Error::other(other.to_string()))),
        }
    }
}
