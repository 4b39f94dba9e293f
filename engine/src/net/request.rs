//! The requesting side: `Get` into the store, `Get` into memory, `Ask`
//! (wire.md §3.3–3.6). Every failure says which peer and what happened.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::misbehaviour::{LocalFault, Misbehaviour};
use super::stream::{self, BATCHES_IN_FLIGHT, Batch, ChanReader, PIECE, ReadMsgError};
use super::{Ctx, NodeId};
use crate::content::{self, BaoContentItem, ChunkRanges, DecodeError, Hash};
use crate::store::{GroupSet, PartialBlob, StoreError, WriteError};
use crate::wire::{self, Ask, ErrorCode, Get, Have, Message, WireRanges};

/// A connected peer, after the `Hello` exchange. Cheap to clone.
///
/// ```
/// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
/// # use swarm_engine::store::Store;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
/// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
/// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
/// # let data = vec![7u8; 100_000];
/// # let hash = seeder.store().put_blob(&data)?;
/// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
/// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
/// # let peer = client.connect(&to).await?;
/// assert_eq!(peer.id(), seeder.node_id());
/// let have = peer.ask(hash).await?.expect("the seeder has it");
/// assert_eq!(have.size, 100_000);
/// let bytes = peer.get_bytes(hash, 1 << 20).await?;
/// assert_eq!(bytes, data);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Peer {
    conn: quinn::Connection,
    id: NodeId,
    addr: SocketAddr,
    ctx: Ctx,
    heard: Arc<Heard>,
    /// This side opened the connection (rather than the peer, which then
    /// asked about a blob this node is fetching).
    dialled: bool,
}

/// When a byte last arrived from the peer on any response. A response
/// times out after the progress timeout without a byte from the peer
/// (wire.md §5), not from its own stream: a peer under an upload cap
/// serves its requests in turn, and those waiting are not stalled while
/// the others receive.
#[derive(Debug)]
struct Heard {
    base: Instant,
    /// Nanoseconds after `base`.
    at: AtomicU64,
}

impl Heard {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            at: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.at.fetch_max(nanos, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + std::time::Duration::from_nanos(self.at.load(Ordering::Relaxed))
    }
}

/// A request to a peer failed.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::net::RequestError;
/// use swarm_engine::wire::ErrorCode;
///
/// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
/// # use swarm_engine::store::Store;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
/// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
/// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
/// # let data = vec![7u8; 100_000];
/// # let hash = seeder.store().put_blob(&data)?;
/// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
/// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
/// # let peer = client.connect(&to).await?;
/// let err = peer.get_bytes(Hash::of(b"not there"), 1024).await.unwrap_err();
/// assert!(matches!(err, RequestError::Remote { code: ErrorCode::NotFound, .. }));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The connection is gone.
    #[error("connection lost")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer answered with an error.
    #[error("peer answered {code}: {text}")]
    Remote {
        /// Its code.
        code: ErrorCode,
        /// Its text.
        text: String,
    },
    /// The peer reset the stream.
    #[error("peer aborted the response ({0})")]
    Reset(ErrorCode),
    /// The peer sent data that does not verify, or broke the protocol. It
    /// should not be asked again.
    #[error("peer misbehaved: {0}")]
    Misbehaved(#[from] Misbehaviour),
    /// The request failed on our side; the peer is not to blame.
    #[error(transparent)]
    Local(#[from] LocalFault),
    /// The peer sent no byte for this many seconds (the progress timeout)
    /// while a response was due.
    #[error("peer stalled: no byte for {0} s")]
    Timeout(u64),
    /// Our store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RequestError {
    /// Whether the peer broke the protocol or sent bad data.
    ///
    /// ```
    /// use swarm_engine::Hash;
    ///
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// // Not having a blob is no misbehaviour: the peer may be asked again.
    /// let err = peer.get_bytes(Hash::of(b"not there"), 1024).await.unwrap_err();
    /// assert!(!err.is_misbehaviour());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_misbehaviour(&self) -> bool {
        matches!(self, Self::Misbehaved(_))
    }
}

impl Peer {
    pub(super) fn new(conn: quinn::Connection, id: NodeId, addr: SocketAddr, ctx: Ctx) -> Self {
        Self {
            conn,
            id,
            addr,
            ctx,
            heard: Arc::new(Heard::new()),
            dialled: true,
        }
    }

    /// A peer that connected to this node: requests go the other way on
    /// its connection, which stays the peer's to close.
    pub(super) fn inbound(conn: quinn::Connection, id: NodeId, addr: SocketAddr, ctx: Ctx) -> Self {
        Self {
            dialled: false,
            ..Self::new(conn, id, addr, ctx)
        }
    }

    /// Whether this node opened the connection (false: the peer connected
    /// here and asked about a blob being fetched, and the fetch uses its
    /// connection too).
    pub fn is_dialled(&self) -> bool {
        self.dialled
    }

    /// The peer's authenticated node id.
    ///
    /// ```
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// // Proved by the TLS handshake, not taken on trust.
    /// assert_eq!(peer.id(), seeder.node_id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The peer's address.
    ///
    /// ```
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// assert_eq!(peer.addr(), seeder.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The connection's current round-trip time estimate.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// assert!(peer.rtt() < Duration::from_secs(1)); // loopback
    /// # Ok(())
    /// # }
    /// ```
    pub fn rtt(&self) -> std::time::Duration {
        self.conn.rtt()
    }

    /// Whether the connection has closed.
    ///
    /// ```
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// assert!(!peer.is_closed());
    /// peer.close();
    /// assert!(peer.is_closed());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// Send `msg` on the connection's control stream, whatever it is: for
    /// tests that play a misbehaving peer.
    #[cfg(test)]
    pub(crate) fn send_control(&self, msg: crate::wire::Message) {
        self.ctx.haves.send_to(self.conn.stable_id(), msg);
    }

    /// Whether the connection's control stream is up on this side.
    #[cfg(test)]
    pub(crate) fn control_ready(&self) -> bool {
        self.ctx.haves.has_conn(self.conn.stable_id())
    }

    /// How the connection was closed, if it is.
    #[cfg(test)]
    pub(crate) fn close_reason(&self) -> Option<quinn::ConnectionError> {
        self.conn.close_reason()
    }

    /// Wait until the connection is closed, by either side.
    pub async fn closed(&self) {
        self.conn.closed().await;
    }

    /// Close the connection, if this node opened it; one the peer opened
    /// ([`Self::is_dialled`] false) is left for the peer to close.
    ///
    /// ```
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// peer.close();
    /// // Requests on a closed connection fail at once.
    /// assert!(peer.ask(hash).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(&self) {
        // The peer may still be fetching over a connection it opened: it
        // closes it when it is done.
        if self.dialled {
            self.conn
                .close(ErrorCode::Ok.to_u16().into(), super::CLOSE_DONE);
        }
    }

    /// The fetch is done with this peer: close the connection with `done`
    /// a few seconds from now (`RETIRE_AFTER`), unless the
    /// endpoint closes first. A process that exits right after its fetch
    /// then closes it with `shutting down`, which tells the peer not to
    /// hand out this node's address any more (wire.md §3.8); one that runs
    /// on says `done`. Needs a Tokio runtime; a connection the peer opened
    /// is left to the peer, as with [`Self::close`].
    pub fn retire(&self) {
        if !self.dialled {
            return;
        }
        let conn = self.conn.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(super::RETIRE_AFTER) => {
                    conn.close(ErrorCode::Ok.to_u16().into(), super::CLOSE_DONE);
                }
                _ = conn.closed() => {}
            }
        });
    }

    fn progress_secs(&self) -> u64 {
        self.ctx.config.timeouts.progress.as_secs()
    }

    /// `fut`'s output, or `None` once the progress timeout has passed
    /// since the call without a byte arriving from this peer on any of its
    /// responses (wire.md §5).
    async fn until_silent<F: Future>(&self, fut: F) -> Option<F::Output> {
        let progress = self.ctx.config.timeouts.progress;
        let since = Instant::now();
        let mut fut = std::pin::pin!(fut);
        loop {
            let deadline = self.heard.last().max(since) + progress;
            match tokio::time::timeout_at(deadline, fut.as_mut()).await {
                Ok(out) => return Some(out),
                // Another response heard from the peer meanwhile: wait on.
                Err(_) if self.heard.last().max(since) + progress > Instant::now() => {}
                Err(_) => return None,
            }
        }
    }

    /// The next chunks of a response (see `quinn::RecvStream::read_chunks`),
    /// `None` when the peer fell silent for the progress timeout.
    async fn read_chunks(
        &self,
        recv: &mut quinn::RecvStream,
        slots: &mut [Bytes],
    ) -> Option<Result<Option<usize>, quinn::ReadError>> {
        let r = self.until_silent(recv.read_chunks(slots)).await;
        if let Some(Ok(Some(_))) = r {
            self.heard.touch();
        }
        r
    }

    /// Send a request; return the stream at the start of the answer.
    async fn request(
        &self,
        msg: &Message,
    ) -> Result<(quinn::SendStream, quinn::RecvStream, Message), RequestError> {
        let (mut send, mut recv) = self.conn.open_bi().await?;
        stream::write_message(&mut send, msg)
            .await
            .map_err(write_error)?;
        let _ = send.finish();
        let header = self
            .until_silent(stream::read_message_untimed(&mut recv))
            .await
            .unwrap_or(Err(ReadMsgError::Timeout))
            .map_err(|e| self.read_error(e, &mut recv))?;
        self.heard.touch();
        if let Message::Error(e) = header {
            return Err(RequestError::Remote {
                code: e.code,
                text: e.text,
            });
        }
        Ok((send, recv, header))
    }

    fn read_error(&self, e: ReadMsgError, recv: &mut quinn::RecvStream) -> RequestError {
        match e {
            ReadMsgError::Timeout => {
                let _ = recv.stop(ErrorCode::Timeout.to_u16().into());
                RequestError::Timeout(self.progress_secs())
            }
            ReadMsgError::Read(quinn::ReadExactError::ReadError(r)) => read_failed(r),
            ReadMsgError::Closed | ReadMsgError::Read(_) => Misbehaviour::NoAnswer.into(),
            ReadMsgError::Wire(w) => {
                let _ = recv.stop(w.code().to_u16().into());
                Misbehaviour::Malformed(w).into()
            }
        }
    }

    /// Ask what the peer holds of `hash` (wire.md §3.6). `None`: nothing.
    ///
    /// ```
    /// use swarm_engine::Hash;
    ///
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// let have = peer.ask(hash).await?.expect("held");
    /// assert_eq!(have.size, 100_000);
    /// assert_eq!(have.groups.boundaries(), &[0, 7]); // all 7 groups
    /// assert_eq!(peer.ask(Hash::of(b"not there")).await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ask(&self, hash: Hash) -> Result<Option<Have>, RequestError> {
        match self.request(&Message::Ask(Ask { hash })).await {
            Ok((_, _, Message::Have(h))) if h.hash == hash => Ok(Some(h)),
            Ok((_, _, other)) => Err(unexpected("Ask", &other)),
            Err(RequestError::Remote {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Other peers this one knows to have or want `hash` (peer exchange).
    ///
    /// ```
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// // The client fetched from the seeder, which now knows it as a peer of
    /// // the blob; a third node asks the seeder who else has it.
    /// peer.get_bytes(hash, 1 << 20).await?;
    /// let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// let third = Endpoint::bind(Store::memory()?, SecretKey::generate()?, config).await?;
    /// let told = third.connect(&to).await?.ask_peers(hash).await?;
    /// assert_eq!(told, vec![client.local_addr()?]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ask_peers(&self, hash: Hash) -> Result<Vec<SocketAddr>, RequestError> {
        match self.request(&Message::AskPeers(Ask { hash })).await? {
            (_, _, Message::Peers(p)) if p.hash == hash => Ok(p.addrs),
            (_, _, other) => Err(unexpected("AskPeers", &other)),
        }
    }

    /// Remember that this peer has `hash`, for peer exchange.
    pub(crate) fn note_has(&self, hash: Hash) {
        self.ctx.met(hash, self.addr);
    }

    /// Fetch the missing `ranges` of `partial` from this peer, verifying
    /// every group before it is stored. Returns the blob back with the
    /// number of new verified bytes, or the error; verified data received
    /// before an error is kept.
    /// `on_bytes` is told of every piece that arrives, before verification.
    ///
    /// ```
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// let blob = client.store().partial(hash, 100_000)?;
    /// let missing = blob.missing();
    /// let (blob, got) = peer.get(blob, missing, &|bytes| println!("{bytes} bytes arrived")).await;
    /// assert_eq!(got?, 100_000);
    /// assert!(blob.is_complete());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(
        &self,
        partial: PartialBlob,
        ranges: ChunkRanges,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> (PartialBlob, Result<u64, RequestError>) {
        let hash = partial.hash();
        let wire = WireRanges::from_chunk_ranges(&ranges);
        if wire.is_empty() {
            return (partial, Ok(0));
        }
        if wire.len() > wire::MAX_GET_RANGES {
            // Ask for a prefix now; the caller asks again for the rest.
            let b = wire.boundaries()[..2 * wire::MAX_GET_RANGES].to_vec();
            let prefix = WireRanges::from_boundaries(b).to_chunk_ranges();
            return Box::pin(self.get(partial, prefix, on_bytes)).await;
        }
        let (_send, mut recv, header) = match self
            .request(&Message::Get(Get { hash, ranges: wire }))
            .await
        {
            Ok(x) => x,
            Err(e) => return (partial, Err(e)),
        };
        let size = match header {
            Message::Found(f) => f.size,
            other => {
                let _ = recv.stop(ErrorCode::ProtocolViolation.to_u16().into());
                return (partial, Err(unexpected("Get", &other)));
            }
        };
        if size != partial.size() {
            let _ = recv.stop(ErrorCode::BadData.to_u16().into());
            let err = Misbehaviour::WrongSize {
                hash,
                claimed: size,
                actual: partial.size(),
            };
            return (partial, Err(err.into()));
        }
        // A store thread verifies and writes; this task feeds it.
        let (tx, rx) = mpsc::channel::<Batch>(BATCHES_IN_FLIGHT);
        let mut partial = partial;
        let writer = tokio::task::spawn_blocking(move || {
            let r = partial.write_response(&ranges, ChanReader::new(rx));
            (partial, r)
        });
        let pumped = self.pump(&mut recv, tx, on_bytes).await;
        let (partial, written) = match writer.await {
            Ok(x) => x,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let result = match (pumped, written) {
            (_, Ok(n)) => Ok(n),
            (_, Err(WriteError::Verify { source, .. }))
                if !matches!(source, DecodeError::Truncated { .. } | DecodeError::Io(_)) =>
            {
                let _ = recv.stop(ErrorCode::BadData.to_u16().into());
                Err(Misbehaviour::BadData { hash, source }.into())
            }
            (Err(e), Err(_)) => Err(e),
            (Ok(()), Err(WriteError::Verify { source, .. })) => {
                Err(Misbehaviour::of_decode(hash, source).into())
            }
            (Ok(()), Err(WriteError::Store(e))) => Err(e.into()),
        };
        (partial, result)
    }

    /// Fetch `groups` of the blob `partial` receives, which other requests
    /// may be filling at the same time: the response is read whole (it is
    /// one piece, a few hundred KiB), verified on a store thread without
    /// holding the blob, then written under its lock. Returns the bytes of
    /// new verified data. `on_bytes` is told of data as it arrives;
    /// `on_written` is told the bytes of new verified data once they are
    /// stored, even if this future is dropped after the response arrived.
    /// Written groups become durable at the blob's next commit
    /// ([`PartialBlob::flush`]).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::{Arc, Mutex};
    /// use swarm_engine::net::Written;
    /// use swarm_engine::store::GroupSet;
    ///
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// let blob = Arc::new(Mutex::new(client.store().partial(hash, 100_000)?));
    /// let stored = Arc::new(AtomicU64::new(0));
    /// let counter = stored.clone();
    /// let on_written: Written = Arc::new(move |n| {
    ///     counter.fetch_add(n, Ordering::Relaxed);
    /// });
    /// // Two requests fill one blob at the same time.
    /// let (mut first, mut second) = (GroupSet::new(), GroupSet::new());
    /// first.insert(0, 4);
    /// second.insert(4, 7);
    /// let (a, b) = tokio::join!(
    ///     peer.get_groups(&blob, hash, 100_000, &first, &|_| {}, on_written.clone()),
    ///     peer.get_groups(&blob, hash, 100_000, &second, &|_| {}, on_written),
    /// );
    /// assert_eq!(a? + b?, 100_000);
    /// assert_eq!(stored.load(Ordering::Relaxed), 100_000);
    /// let mut blob = blob.lock().expect("not poisoned");
    /// blob.flush()?;
    /// assert!(blob.is_complete());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_groups(
        &self,
        partial: &Arc<Mutex<PartialBlob>>,
        hash: Hash,
        size: u64,
        groups: &GroupSet,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        on_written: Written,
    ) -> Result<u64, RequestError> {
        let ranges = groups.to_chunk_ranges();
        let wire = WireRanges::from_chunk_ranges(&ranges);
        if wire.is_empty() {
            return Ok(0);
        }
        if wire.len() > wire::MAX_GET_RANGES {
            return Err(LocalFault::TooFragmented.into());
        }
        let (_send, mut recv, header) = self
            .request(&Message::Get(Get { hash, ranges: wire }))
            .await?;
        match header {
            Message::Found(f) if f.size == size => {}
            Message::Found(f) => {
                let _ = recv.stop(ErrorCode::BadData.to_u16().into());
                let wrong = Misbehaviour::WrongSize {
                    hash,
                    claimed: f.size,
                    actual: size,
                };
                return Err(wrong.into());
            }
            other => {
                let _ = recv.stop(ErrorCode::ProtocolViolation.to_u16().into());
                return Err(unexpected("Get", &other));
            }
        }
        // The encoding of whole groups: their bytes, two hashes per parent
        // inside the ranges, and at most 64 ancestors on the way down.
        let data: u64 = groups
            .ranges()
            .iter()
            .map(|&(a, b)| {
                (b * content::GROUP_SIZE).min(size) - (a * content::GROUP_SIZE).min(size)
            })
            .sum();
        let limit = data + 64 * (2 * groups.count() + 128);
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut got = 0u64;
        let mut slots: [Bytes; 32] = Default::default();
        loop {
            // Every chunk that is ready at once, under one timer.
            match self.read_chunks(&mut recv, &mut slots).await {
                Some(Ok(Some(n))) => {
                    let mut batch = 0u64;
                    for b in slots.iter_mut().take(n) {
                        batch += b.len() as u64;
                        chunks.push(std::mem::take(b));
                    }
                    got += batch;
                    if got > limit {
                        let _ = recv.stop(ErrorCode::BadData.to_u16().into());
                        let too_much = Misbehaviour::TooMuch {
                            hash,
                            limit,
                            groups: groups.count(),
                        };
                        return Err(too_much.into());
                    }
                    on_bytes(batch);
                    super::limit::take(&self.ctx.down, batch).await;
                }
                Some(Ok(None)) => break,
                Some(Err(e)) => return Err(read_failed(e)),
                None => {
                    let _ = recv.stop(ErrorCode::Timeout.to_u16().into());
                    return Err(RequestError::Timeout(self.progress_secs()));
                }
            }
        }
        let partial = partial.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let got = PartialBlob::receive_chunks(&partial, &ranges, chunks)
                .map_err(RequestError::Store)?;
            // Told here, where it is written: the caller may abort the
            // request (a duplicate answered first) while this runs.
            on_written(got.written);
            match got.failed {
                None => Ok(got.written),
                Some(e) => Err(Misbehaviour::of_decode(hash, e).into()),
            }
        })
        .await;
        match decoded {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Move pieces from the stream to the store thread until the stream
    /// ends, fails, stalls, or the store thread stops listening.
    async fn pump(
        &self,
        recv: &mut quinn::RecvStream,
        tx: mpsc::Sender<Batch>,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RequestError> {
        let mut slots: [Bytes; 32] = Default::default();
        let mut batch = Batch::new();
        let mut batched = 0;
        loop {
            // Take every chunk that is ready, and hand the store thread a
            // batch once it is big enough or nothing more is ready.
            match self.read_chunks(recv, &mut slots).await {
                Some(Ok(Some(n))) => {
                    let before = batched;
                    for b in slots.iter_mut().take(n) {
                        batched += b.len();
                        batch.push(std::mem::take(b));
                    }
                    super::limit::take(&self.ctx.down, (batched - before) as u64).await;
                    if batched >= PIECE || n < slots.len() {
                        on_bytes(batched as u64);
                        batched = 0;
                        if tx.send(std::mem::take(&mut batch)).await.is_err() {
                            // The decoder failed; its error is the one to report.
                            return Ok(());
                        }
                    }
                }
                Some(Ok(None)) => {
                    on_bytes(batched as u64);
                    let _ = tx.send(batch).await;
                    return Ok(());
                }
                Some(Err(e)) => return Err(read_failed(e)),
                None => {
                    let _ = recv.stop(ErrorCode::Timeout.to_u16().into());
                    return Err(RequestError::Timeout(self.progress_secs()));
                }
            }
        }
    }

    /// Fetch a whole blob of unknown size into memory, verified: for
    /// manifests. Refuses blobs over `limit` bytes before reading them.
    ///
    /// ```
    /// # use swarm_engine::net::{Endpoint, EndpointConfig, PeerAddr, SecretKey};
    /// # use swarm_engine::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let config = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    /// # let key = |seed| SecretKey::from_bytes(&[seed; 32]);
    /// # let seeder = Endpoint::bind(Store::memory()?, key(1), config.clone()).await?;
    /// # let data = vec![7u8; 100_000];
    /// # let hash = seeder.store().put_blob(&data)?;
    /// # let client = Endpoint::bind(Store::memory()?, key(2), config).await?;
    /// # let to = PeerAddr { id: Some(seeder.node_id()), addr: seeder.local_addr()? };
    /// # let peer = client.connect(&to).await?;
    /// let bytes = peer.get_bytes(hash, 1 << 20).await?;
    /// assert_eq!(bytes, data);
    /// // More than the limit is refused before it is read.
    /// assert!(peer.get_bytes(hash, 1000).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_bytes(&self, hash: Hash, limit: u64) -> Result<Vec<u8>, RequestError> {
        let all = WireRanges::from_boundaries(vec![0]);
        let (_send, mut recv, header) = self
            .request(&Message::Get(Get { hash, ranges: all }))
            .await?;
        let size = match header {
            Message::Found(f) => f.size,
            other => {
                let _ = recv.stop(ErrorCode::ProtocolViolation.to_u16().into());
                return Err(unexpected("Get", &other));
            }
        };
        if size > limit {
            let _ = recv.stop(ErrorCode::TooLarge.to_u16().into());
            return Err(Misbehaviour::TooLarge { hash, size, limit }.into());
        }
        let (tx, rx) = mpsc::channel::<Batch>(BATCHES_IN_FLIGHT);
        let decoder = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, DecodeError> {
            let mut out = Vec::new();
            let ranges = content::all();
            for item in content::decode_ranges(hash, size, &ranges, ChanReader::new(rx)) {
                if let BaoContentItem::Leaf(leaf) = item? {
                    // Leaves arrive in order, so verified bytes grow at the end.
                    if leaf.offset != out.len() as u64 {
                        return Err(DecodeError::Truncated {
                            offset: out.len() as u64,
                        });
                    }
                    out.extend_from_slice(&leaf.data);
                }
            }
            if out.len() as u64 != size {
                return Err(DecodeError::Truncated {
                    offset: out.len() as u64,
                });
            }
            Ok(out)
        });
        let pumped = self.pump(&mut recv, tx, &|_| {}).await;
        let decoded = match decoder.await {
            Ok(x) => x,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match (pumped, decoded) {
            (_, Ok(bytes)) => Ok(bytes),
            (Err(e), Err(DecodeError::Truncated { .. } | DecodeError::Io(_))) => Err(e),
            (_, Err(e)) => {
                let _ = recv.stop(ErrorCode::BadData.to_u16().into());
                Err(Misbehaviour::of_decode(hash, e).into())
            }
        }
    }
}

/// Told the bytes of new verified data a response stored.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use swarm_engine::net::Written;
///
/// let total = Arc::new(AtomicU64::new(0));
/// let seen = total.clone();
/// let written: Written = Arc::new(move |n| {
///     seen.fetch_add(n, Ordering::Relaxed);
/// });
/// written(16384);
/// assert_eq!(total.load(Ordering::Relaxed), 16384);
/// ```
pub type Written = Arc<dyn Fn(u64) + Send + Sync>;

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "Hello",
        Message::Have(_) => "Have",
        Message::Get(_) => "Get",
        Message::Found(_) => "Found",
        Message::Error(_) => "Error",
        Message::Ask(_) => "Ask",
        Message::AskPeers(_) => "AskPeers",
        Message::Peers(_) => "Peers",
        Message::Follow(_) => "Follow",
        Message::Release(_) => "Release",
    }
}

fn read_failed(e: quinn::ReadError) -> RequestError {
    match e {
        quinn::ReadError::Reset(code) => RequestError::Reset(ErrorCode::from_u16(
            u16::try_from(code.into_inner()).unwrap_or(u16::MAX),
        )),
        quinn::ReadError::ConnectionLost(c) => RequestError::Connection(c),
        // Closed or misused on our side (ClosedStream, IllegalOrderedRead,
        // ZeroRttRejected): not the peer's doing.
        other => LocalFault::Stream(other.to_string()).into(),
    }
}

fn write_error(e: quinn::WriteError) -> RequestError {
    match e {
        quinn::WriteError::ConnectionLost(c) => RequestError::Connection(c),
        quinn::WriteError::Stopped(code) => RequestError::Reset(ErrorCode::from_u16(
            u16::try_from(code.into_inner()).unwrap_or(u16::MAX),
        )),
        other => LocalFault::Stream(other.to_string()).into(),
    }
}

/// `other` came back where `request`'s answer was due.
fn unexpected(request: &'static str, other: &Message) -> RequestError {
    Misbehaviour::Unexpected {
        request,
        got: kind(other),
    }
    .into()
}
