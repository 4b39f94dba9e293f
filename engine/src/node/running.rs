//! Every fetch a node runs, whoever started it (the API, the follow loop,
//! an embedding program): its progress for a status, and pause, resume
//! and cancel by its number, for an operator.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::FetchProgress;
use super::fetch::Control;
pub(super) use super::handle::Steer;
use crate::content::Hash;
use crate::net::NodeId;

/// A fetch running on a node, as [`super::Node::fetches`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningFetch {
    /// Its number on this node, from 1; [`super::FetchHandle::id`].
    pub id: u64,
    /// The root being fetched.
    pub root: Hash,
    /// What it is for, from [`super::FetchOptions::label`]: the follow
    /// loop gives the seed entry.
    pub label: Option<String>,
    /// How long it has run.
    pub elapsed: Duration,
    /// Bytes of all its files, once the manifest is known.
    pub total: u64,
    /// Bytes stored so far (at most `total`).
    pub have: u64,
    /// Bytes per second from all its sources, lately.
    pub rate: u64,
    /// Each peer it draws from, with that peer's rate lately.
    pub peers: Vec<(NodeId, u64)>,
    /// Whether it is paused.
    pub paused: bool,
    /// Whether it was cancelled (it ends soon).
    pub cancelled: bool,
}

impl RunningFetch {
    /// Seconds left at the current rate, when there is one.
    pub fn eta(&self) -> Option<Duration> {
        (self.rate > 0 && self.total > 0)
            .then(|| Duration::from_secs(self.total.saturating_sub(self.have).div_ceil(self.rate)))
    }
}

struct Entry {
    root: Hash,
    label: Option<String>,
    started: Instant,
    progress: Arc<Progress>,
    control: Arc<watch::Sender<Control>>,
}

/// A fetch's progress as its events tell it; the bytes are counted
/// without a lock, on the fetch's receive path.
#[derive(Default)]
pub(super) struct Progress {
    total: AtomicU64,
    have: AtomicU64,
    rate: AtomicU64,
    peers: Mutex<Vec<(NodeId, u64)>>,
}

impl Progress {
    /// The fetch moved on.
    pub(super) fn update(&self, p: &FetchProgress) {
        match p {
            FetchProgress::Manifest { total, present } => {
                self.total.store(*total, Ordering::Relaxed);
                self.have.store(*present, Ordering::Relaxed);
            }
            FetchProgress::Received(n) => {
                self.have.fetch_add(*n, Ordering::Relaxed);
            }
            FetchProgress::Peers(peers) => {
                self.rate
                    .store(peers.iter().map(|p| p.rate).sum(), Ordering::Relaxed);
                *self.peers.lock().unwrap_or_else(|e| e.into_inner()) =
                    peers.iter().map(|p| (p.id, p.rate)).collect();
            }
            _ => {}
        }
    }
}

/// The registry; one per node.
#[derive(Default)]
pub(super) struct Running {
    next: AtomicU64,
    all: Mutex<BTreeMap<u64, Entry>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("fetches", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Running {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// List a fetch until the returned guard is dropped.
    pub(super) fn begin(
        self: &Arc<Self>,
        root: Hash,
        label: Option<String>,
        control: Arc<watch::Sender<Control>>,
    ) -> Listed {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let progress = Arc::new(Progress::default());
        let entry = Entry {
            root,
            label,
            started: Instant::now(),
            progress: progress.clone(),
            control,
        };
        self.lock().insert(id, entry);
        Listed {
            running: self.clone(),
            id,
            progress,
        }
    }

    /// Every running fetch, oldest first.
    pub(super) fn list(&self) -> Vec<RunningFetch> {
        self.lock().iter().map(|(&id, e)| view(id, e)).collect()
    }

    /// Do `what` to fetch `id`: the fetch as it is then, or `None` if no
    /// fetch runs by that number. Resuming a fetch that is not paused,
    /// or pausing a cancelled one, changes nothing.
    pub(super) fn steer(&self, id: u64, what: Steer) -> Option<RunningFetch> {
        let all = self.lock();
        let e = all.get(&id)?;
        if super::handle::steer(&e.control, what) {
            let done = match what {
                Steer::Pause => "paused",
                Steer::Resume => "resumed",
                Steer::Cancel => "cancelled",
            };
            let label = e.label.as_deref().unwrap_or("");
            tracing::info!(id, root = %e.root, label, "fetch {done}");
        }
        Some(view(id, e))
    }
}

fn view(id: u64, e: &Entry) -> RunningFetch {
    let control = *e.control.borrow();
    let p = &e.progress;
    let total = p.total.load(Ordering::Relaxed);
    RunningFetch {
        id,
        root: e.root,
        label: e.label.clone(),
        elapsed: e.started.elapsed(),
        total,
        have: p.have.load(Ordering::Relaxed).min(total),
        rate: p.rate.load(Ordering::Relaxed),
        peers: p.peers.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        paused: control == Control::Pause,
        cancelled: control == Control::Cancel,
    }
}

/// A fetch's line in the registry, removed when dropped: when the fetch
/// ends, however it ends.
pub(super) struct Listed {
    running: Arc<Running>,
    id: u64,
    progress: Arc<Progress>,
}

impl Listed {
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Where the fetch's events are counted.
    pub(super) fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.running.lock().remove(&self.id);
    }
}
