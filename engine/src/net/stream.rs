//! Moving messages and Bao bytes over quinn streams, with limits and
//! timeouts, and the bridges between async streams and the sync store.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::wire::{self, ErrorCode, Message, WireError};

/// Size of the pieces moved between the network and the store threads.
/// Large, because every handoff between an async task and a store thread
/// is a wakeup: at packet granularity those cost more than the data work.
pub(super) const PIECE: usize = 256 * 1024;
/// Pieces in flight from a store thread to a stream (bounds memory to
/// about 4 MiB per request served).
pub(super) const PIECES_IN_FLIGHT: usize = 16;
/// Batches in flight from a stream to a store thread. Each received chunk
/// keeps its whole datagram buffer alive, so fewer and fuller is better.
pub(super) const BATCHES_IN_FLIGHT: usize = 4;

/// Reading a message failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadMsgError {
    #[error("the stream ended")]
    Closed,
    #[error("timed out waiting for a message")]
    Timeout,
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Read(#[from] quinn::ReadExactError),
}

impl ReadMsgError {
    pub(super) fn code(&self) -> ErrorCode {
        match self {
            Self::Wire(w) => w.code(),
            Self::Timeout => ErrorCode::Timeout,
            _ => ErrorCode::ProtocolViolation,
        }
    }
}

/// Read one length-prefixed message (wire.md §2), refusing an oversized
/// length before reading the body.
pub(super) async fn read_message(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
) -> Result<Message, ReadMsgError> {
    tokio::time::timeout(timeout, read_message_inner(recv))
        .await
        .map_err(|_| ReadMsgError::Timeout)?
}

/// [`read_message`] without a deadline, for the long-lived control stream.
pub(super) async fn read_message_untimed(
    recv: &mut quinn::RecvStream,
) -> Result<Message, ReadMsgError> {
    read_message_inner(recv).await
}

async fn read_message_inner(recv: &mut quinn::RecvStream) -> Result<Message, ReadMsgError> {
    let mut prefix = [0u8; 4];
    let mut n = 0;
    let len = loop {
        match recv.read_exact(&mut prefix[n..n + 1]).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(ReadMsgError::Closed),
            Err(e) => return Err(e.into()),
        }
        n += 1;
        if let Some((len, _)) = wire::frame_len(&prefix[..n])? {
            break len;
        }
    };
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(Message::decode_body(&body)?)
}

/// Write one message.
pub(super) async fn write_message(
    send: &mut quinn::SendStream,
    msg: &Message,
) -> Result<(), quinn::WriteError> {
    send.write_all(&msg.encode()).await
}

/// A `Write` for a store thread that hands 64 KiB pieces to an async task.
pub(super) struct ChanWriter {
    tx: mpsc::Sender<Bytes>,
    buf: BytesMut,
}

impl ChanWriter {
    pub(super) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Self {
            tx,
            buf: BytesMut::new(),
        }
    }
}

impl io::Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // Reserved when needed, not after each flush: a response's last
        // flush would otherwise allocate a buffer nobody uses, once per
        // request (a piece is one request).
        if self.buf.capacity() == 0 {
            self.buf.reserve(PIECE);
        }
        let n = data.len().min(PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = self.buf.split().freeze();
        self.tx
            .blocking_send(piece)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the stream closed"))
    }
}

/// A batch of received chunks, handed to a store thread in one wakeup.
pub(super) type Batch = Vec<Bytes>;

/// A `Read` for a store thread fed with batches by an async task; EOF when
/// the task drops its sender.
pub(super) struct ChanReader {
    rx: mpsc::Receiver<Batch>,
    batch: std::vec::IntoIter<Bytes>,
    cur: Bytes,
}

impl ChanReader {
    pub(super) fn new(rx: mpsc::Receiver<Batch>) -> Self {
        Self {
            rx,
            batch: Vec::new().into_iter(),
            cur: Bytes::new(),
        }
    }
}

impl io::Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if let Some(b) = self.batch.next() {
                self.cur = b;
                continue;
            }
            match self.rx.blocking_recv() {
                Some(b) => self.batch = b.into_iter(),
                None => return Ok(0),
            }
        }
        let n = self.cur.len().min(out.len());
        out[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}
