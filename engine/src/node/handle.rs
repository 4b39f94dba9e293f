//! A running fetch: its result, its progress as a stream, and control.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::fetch::Control;
use super::{FetchError, FetchProgress, Fetched};
use crate::content::Hash;

/// Progress events a [`FetchEvents`] holds before the oldest unread
/// `Peers` reports are dropped (byte counts are summed, never dropped).
const EVENT_QUEUE: usize = 256;

/// A fetch running in the background, from [`super::Node::fetch`].
///
/// Await it for the result. While it runs, [`Self::events`] streams its
/// progress, and it can be paused, resumed and cancelled. Dropping the
/// handle cancels the fetch; either way everything verified so far stays
/// stored, and fetching the same root again resumes from it.
///
/// ```no_run
/// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash,
/// #            peer: swarm_engine::net::PeerAddr) -> Result<(), Box<dyn std::error::Error>> {
/// use swarm_engine::node::{FetchOptions, FetchProgress};
///
/// let mut fetch = node.fetch(root, FetchOptions { peers: vec![peer], ..Default::default() });
/// let mut events = fetch.events().expect("first call");
/// tokio::spawn(async move {
///     while let Some(e) = events.next().await {
///         if let FetchProgress::Manifest { total, .. } = e {
///             println!("{total} bytes to fetch");
///         }
///     }
/// });
/// let fetched = fetch.await?;
/// println!("got {} files", fetched.files);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping a FetchHandle cancels the fetch"]
pub struct FetchHandle {
    root: Hash,
    id: u64,
    task: JoinHandle<Result<Fetched, FetchError>>,
    /// Shared with the node's list of running fetches, which an operator
    /// pauses through too.
    control: Arc<watch::Sender<Control>>,
    events: Option<FetchEvents>,
}

impl FetchHandle {
    /// Run fetch `id` of `root`, controlled through `control`.
    pub(super) fn spawn<F>(
        root: Hash,
        id: u64,
        control: Arc<watch::Sender<Control>>,
        run: impl FnOnce(EventSink) -> F,
    ) -> Self
    where
        F: Future<Output = Result<Fetched, FetchError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let unsent = Arc::new(AtomicU64::new(0));
        let sink = EventSink {
            tx,
            unsent: unsent.clone(),
        };
        let task = tokio::spawn(run(sink));
        Self {
            root,
            id,
            task,
            control,
            events: Some(FetchEvents { rx, unsent }),
        }
    }

    /// Its number on the node, as [`super::Node::fetches`] lists it, for
    /// [`super::Node::pause_fetch`] and the rest.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// assert!(node.fetches().iter().any(|f| f.id == fetch.id()));
    /// # }
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The root being fetched.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// assert_eq!(fetch.root(), root);
    /// # }
    /// ```
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The stream of progress events; `None` after the first call. It ends
    /// when the fetch does (await the handle for how it ended). Events are
    /// queued until read; if the reader falls far behind, periodic
    /// [`FetchProgress::Peers`] reports are dropped and
    /// [`FetchProgress::Received`] counts are summed, so no byte is lost.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let mut fetch = node.fetch(root, Default::default());
    /// let events = fetch.events();
    /// assert!(events.is_some());
    /// assert!(fetch.events().is_none());
    /// # }
    /// ```
    pub fn events(&mut self) -> Option<FetchEvents> {
        self.events.take()
    }

    /// Pause: stop requesting, and call back what is in flight (groups
    /// already verified are kept). Connections stay open. A paused fetch
    /// never gives up for lack of a source.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// fetch.pause();
    /// assert!(fetch.is_paused());
    /// fetch.resume();
    /// # }
    /// ```
    pub fn pause(&self) {
        steer(&self.control, Steer::Pause);
    }

    /// Resume a paused fetch.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// fetch.pause();
    /// fetch.resume();
    /// assert!(!fetch.is_paused());
    /// # }
    /// ```
    pub fn resume(&self) {
        steer(&self.control, Steer::Resume);
    }

    /// Whether it is paused.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// assert!(!fetch.is_paused());
    /// # }
    /// ```
    pub fn is_paused(&self) -> bool {
        *self.control.borrow() == Control::Pause
    }

    /// Cancel the fetch. Awaiting the handle then gives
    /// [`FetchError::Cancelled`] (or the result, if it had just finished)
    /// once everything verified is committed to the store, so fetching
    /// again right away resumes from all of it.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// use swarm_engine::node::FetchError;
    ///
    /// let fetch = node.fetch(root, Default::default());
    /// fetch.cancel();
    /// assert!(matches!(fetch.await, Err(FetchError::Cancelled) | Ok(_)));
    /// # }
    /// ```
    pub fn cancel(&self) {
        steer(&self.control, Steer::Cancel);
    }

    /// Whether the fetch has ended (awaiting it will not wait).
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// let fetch = node.fetch(root, Default::default());
    /// if !fetch.is_finished() {
    ///     println!("still fetching");
    /// }
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// What the owner of a fetch, or an operator, asks of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Steer {
    Pause,
    Resume,
    Cancel,
}

/// Do `what` through a fetch's `control`: whether it changed anything
/// (resuming a fetch that is not paused does not; a cancelled fetch stays
/// cancelled).
pub(super) fn steer(control: &watch::Sender<Control>, what: Steer) -> bool {
    match what {
        Steer::Pause => control.send_if_modified(|c| switch(c, Control::Run, Control::Pause)),
        Steer::Resume => control.send_if_modified(|c| switch(c, Control::Pause, Control::Run)),
        Steer::Cancel => control.send_if_modified(|c| {
            let change = *c != Control::Cancel;
            *c = Control::Cancel;
            change
        }),
    }
}

/// Set `c` to `to` if it is `from` (a cancelled fetch stays cancelled).
fn switch(c: &mut Control, from: Control, to: Control) -> bool {
    let change = *c == from;
    if change {
        *c = to;
    }
    change
}

impl Future for FetchHandle {
    type Output = Result<Fetched, FetchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task).poll(cx).map(|r| match r {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(FetchError::Cancelled),
            // A panic in the fetch is a bug; pass it on rather than hide it.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        })
    }
}

impl Drop for FetchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The progress of a fetch, from [`FetchHandle::events`]: a
/// [`futures_lite::Stream`] of [`FetchProgress`], or read it with
/// [`Self::next`].
#[derive(Debug)]
pub struct FetchEvents {
    rx: mpsc::Receiver<FetchProgress>,
    /// Bytes the fetch could not queue: reported before the end.
    unsent: Arc<AtomicU64>,
}

impl FetchEvents {
    /// The next event; `None` once the fetch has ended.
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node, root: swarm_engine::Hash) {
    /// use swarm_engine::node::FetchProgress;
    ///
    /// let mut fetch = node.fetch(root, Default::default());
    /// let mut events = fetch.events().expect("first call");
    /// let mut bytes = 0;
    /// while let Some(e) = events.next().await {
    ///     if let FetchProgress::Received(n) = e {
    ///         bytes += n;
    ///     }
    /// }
    /// println!("{bytes} bytes received");
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<FetchProgress> {
        futures_lite::StreamExt::next(self).await
    }
}

impl futures_lite::Stream for FetchEvents {
    type Item = FetchProgress;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FetchProgress>> {
        self.rx.poll_recv(cx).map(|e| {
            e.or_else(|| {
                let n = self.unsent.swap(0, Ordering::Relaxed);
                (n > 0).then_some(FetchProgress::Received(n))
            })
        })
    }
}

/// The sending side of [`FetchEvents`]; never blocks the fetch.
#[derive(Clone)]
pub(super) struct EventSink {
    tx: mpsc::Sender<FetchProgress>,
    /// Bytes received but not yet reported (the queue was full).
    unsent: Arc<AtomicU64>,
}

impl EventSink {
    pub(super) fn send(&self, p: FetchProgress) {
        match p {
            FetchProgress::Received(n) => {
                let n = n + self.unsent.swap(0, Ordering::Relaxed);
                if self.tx.try_send(FetchProgress::Received(n)).is_err() {
                    self.unsent.fetch_add(n, Ordering::Relaxed);
                }
            }
            other => {
                let n = self.unsent.swap(0, Ordering::Relaxed);
                if n > 0 && self.tx.try_send(FetchProgress::Received(n)).is_err() {
                    self.unsent.fetch_add(n, Ordering::Relaxed);
                }
                // Only periodic reports are lost to a full queue: the
                // one-off events come first, while it is nearly empty.
                let _ = self.tx.try_send(other);
            }
        }
    }
}
