//! The accepting side and the per-connection task: Hello, the control
//! stream, and serving request streams (wire.md §2, §3).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span, warn};

use super::sessions::Session;
use super::stream::{self, ChanWriter, PIECES_IN_FLIGHT, ReadMsgError};
use super::{Ctx, NodeId, Peer, count, tls};
use crate::content::{self, ChunkRanges};
use crate::store::ReadError;
use crate::wire::{self, ErrorCode, ErrorMsg, Found, Have, Message, WireRanges};

/// Accept connections until the endpoint closes.
pub(super) async fn accept_loop(quic: quinn::Endpoint, ctx: Ctx) {
    while let Some(incoming) = quic.accept().await {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match tokio::time::timeout(ctx.config.timeouts.connect, incoming).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return debug!(%remote, "handshake failed: {e}"),
                Err(_) => return debug!(%remote, "handshake timed out"),
            };
            let Some(peer) = tls::peer_id(&conn) else {
                return conn.close(ErrorCode::ProtocolViolation.to_u16().into(), b"no key");
            };
            if ctx.stats.connections.load(Ordering::Relaxed)
                >= ctx.max_connections.load(Ordering::Relaxed)
            {
                crate::metrics::request("busy");
                return conn.close(ErrorCode::Busy.to_u16().into(), b"too many connections");
            }
            let span = info_span!("peer", id = %peer.short(), addr = %remote);
            accept_hello(conn, ctx, peer).instrument(span).await;
        });
    }
}

/// Server side of the Hello exchange, then the connection's life.
async fn accept_hello(conn: quinn::Connection, ctx: Ctx, peer: NodeId) {
    let t = &ctx.config.timeouts;
    let first = tokio::time::timeout(t.hello, conn.accept_bi()).await;
    let Ok(Ok((mut send, mut recv))) = first else {
        return conn.close(ErrorCode::Timeout.to_u16().into(), b"no hello");
    };
    let theirs = match stream::read_message(&mut recv, t.hello).await {
        Ok(Message::Hello(h)) => h,
        Ok(_) => return violation(&conn, &ctx, "first message was not Hello"),
        Err(e) => return close_for(&conn, &ctx, &e),
    };
    let Some(version) = super::hello_version(&ctx.config, &theirs) else {
        let text = format!(
            "this node speaks versions {}..={}",
            wire::MIN_VERSION,
            ctx.config.max_version
        );
        let e = error_msg(ErrorCode::UnsupportedVersion, &text);
        let _ = stream::write_message(&mut send, &e).await;
        let _ = send.finish();
        let _ = tokio::time::timeout(t.hello, send.stopped()).await;
        return conn.close(ErrorCode::UnsupportedVersion.to_u16().into(), b"version");
    };
    if stream::write_message(&mut send, &super::hello(&ctx.config))
        .await
        .is_err()
    {
        return;
    }
    run_connection(conn, ctx, (send, recv), peer, version).await;
}

/// A connection after Hello, on either side: read the control stream and
/// serve the request streams the peer opens, until it closes.
pub(super) async fn run_connection(
    conn: quinn::Connection,
    ctx: Ctx,
    (mut control_send, mut control_recv): (quinn::SendStream, quinn::RecvStream),
    peer: NodeId,
    version: u16,
) {
    count(&ctx.stats.connections, 1);
    debug!("connection up");
    let conn_id = conn.stable_id();
    let remote = conn.remote_address();
    let session = ctx.sessions.open(conn_id, peer, remote);
    let up = std::time::Instant::now();
    ctx.book.connected(remote);
    let (control_tx, mut control_rx) = mpsc::channel(super::haves::CONTROL_QUEUE);
    ctx.haves.add_conn(conn_id, control_tx, remote, version);
    if version >= wire::VERSION_GOSSIP {
        ctx.gossip.peer_up(&conn, peer, &ctx.haves);
    }
    let control_out = async {
        while let Some(msg) = control_rx.recv().await {
            if stream::write_message(&mut control_send, &msg)
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let control = async {
        loop {
            match stream::read_message_untimed(&mut control_recv).await {
                Ok(Message::Have(h)) => {
                    if let Some(ss) = &ctx.superseeds {
                        ss.peer_has(&ctx.haves, peer, &h);
                    }
                    ctx.haves.dispatch(peer, h);
                }
                // Version 2: addresses pushed for a hash asked about (§3.8).
                Ok(Message::Peers(p)) if version >= wire::VERSION_PUSH => {
                    ctx.haves.dispatch_peers(p);
                }
                // Version 3: release gossip (§3.9, §3.10).
                Ok(Message::Follow(f)) if version >= wire::VERSION_GOSSIP => {
                    if let Err(why) = ctx.gossip.follow(conn_id, f, &ctx.haves) {
                        return violation(&conn, &ctx, why);
                    }
                }
                Ok(Message::Release(r)) if version >= wire::VERSION_GOSSIP => {
                    if let Err(why) = ctx.gossip.release(conn_id, peer, r) {
                        return violation(&conn, &ctx, &why);
                    }
                }
                Ok(_) => return violation(&conn, &ctx, "unexpected message on the control stream"),
                Err(ReadMsgError::Closed) | Err(ReadMsgError::Read(_)) => return,
                Err(e) => return close_for(&conn, &ctx, &e),
            }
        }
    };
    let requests = async {
        let mut order: u32 = 0;
        loop {
            match conn.accept_bi().await {
                Ok((send, recv)) => {
                    // Earlier requests first: streams of equal priority
                    // share the link round-robin, so a pipeline of pieces
                    // would all finish together and leave the link idle
                    // while the next ones are asked for.
                    order = order.wrapping_add(1);
                    let _ = send.set_priority(-((order & 0x3fff_ffff) as i32));
                    let ctx = ctx.clone();
                    // One QUIC socket serves and connects, so the address a
                    // peer connects from is the one it serves on.
                    let from = Asker {
                        conn: conn.clone(),
                        id: peer,
                        addr: conn.remote_address(),
                        conn_id,
                        session: session.clone(),
                    };
                    tokio::spawn(
                        async move { serve_request(ctx, send, recv, from).await }.in_current_span(),
                    );
                }
                Err(_) => return,
            }
        }
    };
    let uni = async {
        // wire.md §2: unidirectional streams are not used.
        while let Ok(mut s) = conn.accept_uni().await {
            let _ = s.stop(ErrorCode::ProtocolViolation.to_u16().into());
        }
    };
    tokio::select! {
        _ = control => {}
        _ = requests => {}
        _ = uni => {}
        // Stops only if the control stream fails; the reader notices too.
        _ = async { control_out.await; std::future::pending::<()>().await } => {}
    }
    if let Some(ss) = &ctx.superseeds {
        ss.disconnected(&ctx.haves, peer, conn_id);
    }
    ctx.haves.remove_conn(conn_id);
    ctx.gossip.peer_down(conn_id);
    ctx.book
        .disconnected(remote, super::peer_runs_on(conn.close_reason().as_ref()));
    count(&ctx.stats.connections, -1);
    debug!(%peer, reason = ?conn.close_reason(), "connection down");
    ctx.sessions.close(conn_id);
    session.log(peer, remote, up.elapsed().as_secs_f64());
}

fn error_msg(code: ErrorCode, text: &str) -> Message {
    let mut text = text.to_owned();
    while text.len() > wire::MAX_ERROR_TEXT {
        text.pop();
    }
    Message::Error(ErrorMsg { code, text })
}

fn violation(conn: &quinn::Connection, ctx: &Ctx, what: &str) {
    count(&ctx.stats.violations, 1);
    crate::metrics::request("violation");
    warn!("closing: {what}");
    conn.close(
        ErrorCode::ProtocolViolation.to_u16().into(),
        what.as_bytes(),
    );
}

fn close_for(conn: &quinn::Connection, ctx: &Ctx, e: &ReadMsgError) {
    count(&ctx.stats.violations, 1);
    crate::metrics::request("violation");
    warn!("closing: {e}");
    conn.close(e.code().to_u16().into(), e.to_string().as_bytes());
}

/// The peer a request stream came from.
struct Asker {
    conn: quinn::Connection,
    id: NodeId,
    addr: std::net::SocketAddr,
    conn_id: usize,
    session: Arc<Session>,
}

/// Serve one request stream (wire.md §3.3, §3.6).
async fn serve_request(
    ctx: Ctx,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    from: Asker,
) {
    let (remote, conn_id) = (from.addr, from.conn_id);
    count(&ctx.stats.serving, 1);
    count(&ctx.stats.served_total, 1);
    let req = stream::read_message(&mut recv, ctx.config.timeouts.request).await;
    // A bad request is answered with an Error message and a finished
    // stream; a reset is kept for failures in the middle of a response,
    // where a message can no longer be framed.
    let result = match req {
        Ok(Message::Get(get)) => {
            ctx.met(get.hash, remote);
            from.session.gets.fetch_add(1, Ordering::Relaxed);
            from.session.asked_for(get.hash);
            serve_get(&ctx, &mut send, get, from.id, &from.session).await
        }
        Ok(Message::Ask(ask)) => {
            // Asking subscribes the connection to later Haves (wire.md §3.6).
            ctx.haves.subscribe(ask.hash, conn_id);
            // A fetch of the same blob here may take from the asker too:
            // fetchers that start together need only one of each pair to
            // find the other.
            ctx.haves.asked(&ask.hash, || {
                Peer::inbound(from.conn.clone(), from.id, remote, ctx.clone())
            });
            serve_ask(&ctx, &mut send, ask.hash, &from).await
        }
        Ok(Message::AskPeers(ask)) => {
            // Version 2: asking subscribes to new peers (wire.md §3.7).
            ctx.haves.subscribe_peers(ask.hash, conn_id);
            let addrs = ctx.book.get(&ask.hash, remote, wire::MAX_PEERS);
            let msg = Message::Peers(wire::Peers {
                hash: ask.hash,
                addrs,
            });
            write_then_ok(&mut send, msg).await
        }
        Ok(other) => {
            count(&ctx.stats.violations, 1);
            crate::metrics::request("violation");
            let text = format!("expected Get or Ask, got {other:?}");
            let msg = error_msg(ErrorCode::ProtocolViolation, &text);
            write_then_ok(&mut send, msg).await
        }
        Err(e) => {
            count(&ctx.stats.violations, 1);
            crate::metrics::request("violation");
            let code = e.code();
            let _ = recv.stop(code.to_u16().into());
            write_then_ok(&mut send, error_msg(code, &e.to_string())).await
        }
    };
    match result {
        Ok(()) => {
            let _ = send.finish();
        }
        Err(code) => {
            let _ = send.reset(code.to_u16().into());
        }
    }
    count(&ctx.stats.serving, -1);
}

async fn serve_ask(
    ctx: &Ctx,
    send: &mut quinn::SendStream,
    hash: crate::Hash,
    from: &Asker,
) -> Result<(), ErrorCode> {
    let store = ctx.store.clone();
    let info = tokio::task::spawn_blocking(move || store.blob_info(&hash))
        .await
        .map_err(|_| ErrorCode::Internal)?
        .map_err(|_| ErrorCode::Internal)?;
    let msg = match info {
        None => {
            crate::metrics::request("not_held");
            error_msg(ErrorCode::NotFound, "not held")
        }
        Some(info) => {
            let n = content::group_count(info.size).max(1);
            let ranges = match info.partial {
                None => match super_seed(ctx, hash, info.size, from) {
                    Some(msg) => return write_then_ok(send, msg).await,
                    None => WireRanges::from_boundaries(vec![0, n]),
                },
                Some(p) if p.is_empty() => {
                    return write_then_ok(
                        send,
                        error_msg(ErrorCode::NotFound, "nothing verified yet"),
                    )
                    .await;
                }
                // Too fragmented to announce whole: the first ranges.
                Some(p) => WireRanges::from_groups(&p, wire::MAX_HAVE_RANGES),
            };
            Message::Have(Have {
                hash,
                size: info.size,
                groups: ranges,
            })
        }
    };
    write_then_ok(send, msg).await
}

/// The answer of a super-seeding node to an `Ask` of a complete blob: the
/// pieces offered to the asker (wire.md §7), after which this node asks
/// it back to hear of what it gets; `NotFound` while there is nothing to
/// offer it (a `Have` lists at least one range). `None`: announce the blob
/// whole.
fn super_seed(ctx: &Ctx, hash: crate::Hash, size: u64, from: &Asker) -> Option<Message> {
    let ss = ctx.superseeds.as_ref()?;
    match ss.asked(&ctx.haves, hash, size, from.id, from.conn_id)? {
        super::superseed::Answer::Whole => None,
        super::superseed::Answer::Offer { have, ask_back } => {
            if ask_back {
                let peer = Peer::inbound(from.conn.clone(), from.id, from.addr, ctx.clone());
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    // Nothing verified there yet is `None`; the
                    // subscription stands all the same.
                    if let Ok(Some(have)) = peer.ask(hash).await
                        && let Some(ss) = &ctx.superseeds
                    {
                        ss.peer_has(&ctx.haves, peer.id(), &have);
                    }
                });
            }
            Some(if have.groups.is_empty() {
                error_msg(ErrorCode::NotFound, "no piece to offer yet")
            } else {
                Message::Have(have)
            })
        }
    }
}

async fn write_then_ok(send: &mut quinn::SendStream, msg: Message) -> Result<(), ErrorCode> {
    stream::write_message(send, &msg)
        .await
        .map_err(|_| ErrorCode::Ok)
}

async fn serve_get(
    ctx: &Ctx,
    send: &mut quinn::SendStream,
    get: wire::Get,
    to: NodeId,
    session: &Session,
) -> Result<(), ErrorCode> {
    let hash = get.hash;
    let ranges: ChunkRanges = get.ranges.to_chunk_ranges();
    // A super-seed counts what it served (a copy only then).
    let asked = ctx.superseeds.is_some().then(|| ranges.clone());
    // One store thread looks the blob up, writes `Found` once it knows the
    // size and holds the ranges, then encodes; this task moves its pieces
    // to the stream. (A lookup and a thread hand-off per request matter:
    // a download is one request per piece.)
    let (tx, mut rx) = mpsc::channel::<Bytes>(PIECES_IN_FLIGHT);
    let store = ctx.store.clone();
    let verify = ctx.config.verify_served_data;
    let encoder = tokio::task::spawn_blocking(move || {
        let mut w = ChanWriter::new(tx);
        let r = store.encode_ranges_after(&hash, &ranges, &mut w, verify, |size, w| {
            std::io::Write::write_all(w, &Message::Found(Found { size }).encode())
        });
        r.and_then(|()| {
            std::io::Write::flush(&mut w)
                .map_err(|e| ReadError::Store(crate::store::StoreError::Io(e)))
        })
    });
    let progress = ctx.config.timeouts.progress;
    // Under a low upload cap a piece goes out in slices of a quarter of a
    // second's worth (a group at least), so bytes flow steadily rather than
    // a piece after each long wait: receivers give up after the progress
    // timeout without a byte (wire.md §5). Under a cap of MiB/s a slice
    // holds the whole piece: pieces then go out one after another, each
    // done (and servable by its receiver) as early as it can be, rather
    // than all of them interleaved and done together at the end.
    let slice = match ctx.up.rate() {
        Some(r) => ((r / 4) as usize).max(content::GROUP_SIZE as usize),
        None => usize::MAX,
    };
    let mut sent = 0u64;
    while let Some(mut piece) = rx.recv().await {
        while !piece.is_empty() {
            let part = piece.split_to(piece.len().min(slice));
            let n = part.len() as u64;
            super::limit::take(&ctx.up, n).await;
            match tokio::time::timeout(progress, send.write_chunk(part)).await {
                Ok(Ok(())) => sent += n,
                // The peer stopped reading or went away: drop the encoder's channel.
                Ok(Err(_)) => return Err(ErrorCode::Ok),
                Err(_) => return Err(ErrorCode::Timeout),
            }
        }
    }
    count(&ctx.stats.bytes_sent, sent as i64);
    crate::metrics::bytes_up(sent);
    session.bytes.fetch_add(sent, Ordering::Relaxed);
    if sent > 0 {
        ctx.sessions.served(hash, to, sent);
    }
    match encoder.await {
        Ok(Ok(())) => {
            crate::metrics::request("served");
            if let (Some(ss), Some(ranges)) = (&ctx.superseeds, &asked) {
                ss.served(&ctx.haves, &hash, to, ranges);
            }
            Ok(())
        }
        // Refused before anything was written: answer with a message.
        Ok(Err(ReadError::Unknown(_))) if sent == 0 => {
            crate::metrics::request("not_held");
            write_then_ok(send, error_msg(ErrorCode::NotFound, "not held")).await
        }
        Ok(Err(ReadError::Incomplete(_))) if sent == 0 => {
            crate::metrics::request("not_held");
            write_then_ok(send, error_msg(ErrorCode::Incomplete, "ranges not held")).await
        }
        Ok(Err(e)) => {
            warn!(%hash, "cannot serve: {e}");
            Err(ErrorCode::Internal)
        }
        Err(_) => Err(ErrorCode::Internal),
    }
}
