//! Nodes talking over real QUIC on 127.0.0.1, honest and hostile.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::content::{self, BaoContentItem, Hash};
use crate::node::{FetchError, FetchOptions, Node};
use crate::store::FileName;
use crate::store::{AddOptions, ExportOptions, MemBackend, Store, StoreConfig};
use crate::testutil::data;
use crate::wire::{ErrorCode, Found, Get, Message, WireRanges};

pub(super) fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub(super) fn quick() -> EndpointConfig {
    EndpointConfig::default()
        .listen(localhost())
        .timeouts(Timeouts {
            hello: Duration::from_secs(2),
            request: Duration::from_secs(2),
            progress: Duration::from_secs(2),
            idle: Duration::from_secs(10),
            connect: Duration::from_secs(3),
        })
}

struct Release {
    _dir: tempfile::TempDir,
    path: PathBuf,
    files: Vec<(String, Vec<u8>)>,
}

fn release() -> Release {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rel");
    let files = vec![
        ("rel/big.bin".to_owned(), data(1, 3_000_000)),
        ("rel/sub/mid.bin".to_owned(), data(2, 200_000)),
        ("rel/sub/small.txt".to_owned(), b"small".to_vec()),
        ("rel/empty".to_owned(), vec![]),
        ("rel/dup.bin".to_owned(), data(2, 200_000)),
    ];
    for (p, d) in &files {
        let full = dir.path().join(p);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, d).unwrap();
    }
    Release {
        _dir: dir,
        path,
        files,
    }
}

async fn seeder(rel: &Release) -> (Node, Hash) {
    let store = Store::memory().unwrap();
    let root = store
        .add_paths(std::slice::from_ref(&rel.path), &AddOptions::default())
        .unwrap()
        .root;
    (Node::spawn(store, quick()).await.unwrap(), root)
}

/// An endpoint on loopback with [`quick`] timeouts and an empty store.
pub(super) async fn client() -> Endpoint {
    Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        quick(),
    )
    .await
    .unwrap()
}

pub(super) fn addr_of(n: &Node) -> PeerAddr {
    PeerAddr {
        id: Some(n.endpoint().node_id()),
        addr: n.endpoint().local_addr().unwrap(),
    }
}

fn assert_release(store: &Store, root: &Hash, rel: &Release) {
    let out = tempfile::tempdir().unwrap();
    store
        .export(root, out.path(), &ExportOptions::default())
        .unwrap();
    for (p, d) in &rel.files {
        assert_eq!(&fs::read(out.path().join(p)).unwrap(), d, "{p}");
    }
    let r = store.check(|_| {}).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_crosses_two_nodes_byte_identical() {
    let rel = release();
    let (seed, root) = seeder(&rel).await;
    let fetcher = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let got = fetcher
        .fetch(
            root,
            FetchOptions {
                peers: vec![addr_of(&seed)],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got.files, 5);
    assert_eq!(got.peers, vec![seed.endpoint().node_id()]);
    assert!(
        fetcher
            .store()
            .pins()
            .unwrap()
            .iter()
            .any(|p| p.root == root)
    );
    assert_release(fetcher.store(), &root, &rel);
    // Fetching again moves nothing.
    let again = fetcher
        .fetch(
            root,
            FetchOptions {
                peers: vec![addr_of(&seed)],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.received, 0);
}

// ---------------------------------------------------------------------------
// Hostile peers.

/// A blob of `n` bytes in a memory store; returns the store, its backend
/// (to corrupt), the file's blob hash and the root.
pub(super) fn one_file(n: usize) -> (Store, MemBackend, Hash, Hash, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("file.bin");
    fs::write(&p, data(7, n)).unwrap();
    let backend = MemBackend::new();
    let store = Store::with_backend(backend.clone(), StoreConfig::default()).unwrap();
    let root = store.add_paths(&[p], &AddOptions::default()).unwrap().root;
    let blob = store.manifest(&root).unwrap().entries()[0].hash;
    (store, backend, blob, root, dir)
}

pub(super) fn fetch_opts(peers: Vec<PeerAddr>) -> FetchOptions {
    FetchOptions {
        peers,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_data_is_caught_the_peer_named_and_nothing_bad_stored() {
    let n = 2_000_000;
    let (store, backend, blob, root, _d) = one_file(n);
    // Flip a byte in group 40 of the stored file.
    backend
        .corrupt(
            FileName::Blob(blob, crate::store::FileKind::Data),
            40 * 16384 + 5,
        )
        .unwrap();
    let seed = Node::spawn(store, quick()).await.unwrap();
    let fetcher = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let err = fetcher
        .fetch(root, fetch_opts(vec![addr_of(&seed)]))
        .await
        .unwrap_err();
    let msg = format!("{err}");
    assert!(matches!(err, FetchError::PeersFailed(_)), "{msg}");
    assert!(msg.contains(&seed.endpoint().node_id().short()), "{msg}");
    assert!(
        msg.contains("does not verify") && msg.contains("655360"),
        "{msg}"
    );
    // The groups before the bad one (in its piece, 32..48) were verified
    // and kept; the bad one was not stored.
    let info = fetcher.store().blob_info(&blob).unwrap().unwrap();
    let present = info.partial.unwrap();
    assert!(present.contains(39) && !present.contains(40), "{present:?}");
    let r = fetcher.store().check(|_| {}).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_peer_is_dropped_and_a_good_one_finishes_the_job() {
    let n = 4_000_000;
    let (bad_store, backend, blob, root, _d) = one_file(n);
    // A bad group in every 256 KiB piece: whatever it is asked for fails.
    for piece in 0..(n as u64).div_ceil(1 << 18) {
        backend
            .corrupt(
                FileName::Blob(blob, crate::store::FileKind::Data),
                piece * (1 << 18) + 3 * 16384,
            )
            .unwrap();
    }
    let (good_store, _, _, root2, _d2) = one_file(n);
    assert_eq!(root, root2);
    let bad = Node::spawn(bad_store, quick()).await.unwrap();
    let good = Node::spawn(good_store, quick()).await.unwrap();
    let fetcher = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let got = fetcher
        .fetch(root, fetch_opts(vec![addr_of(&bad), addr_of(&good)]))
        .await
        .unwrap();
    // The bad peer was dropped (if it was asked for anything before the
    // good one finished), having contributed at most the verified groups
    // before the bad one in each piece it answered (0..3 of 16); the good
    // peer did the rest, and every byte is counted once.
    for f in &got.failures {
        assert_eq!(f.id, bad.endpoint().node_id(), "{got:?}");
        assert!(f.error.is_misbehaviour(), "{got:?}");
    }
    let from = |id| -> u64 {
        got.sources
            .iter()
            .filter(|s| s.id == id)
            .map(|s| s.bytes)
            .sum()
    };
    let (from_bad, from_good) = (
        from(bad.endpoint().node_id()),
        from(good.endpoint().node_id()),
    );
    let pieces = (n as u64).div_ceil(1 << 18);
    assert!(
        from_bad % 16384 == 0 && from_bad <= pieces * 3 * 16384,
        "{got:?}"
    );
    assert_eq!(from_bad + from_good, n as u64, "{got:?}");
    assert!(got.peers.contains(&good.endpoint().node_id()), "{got:?}");
    let r = fetcher.store().check(|_| {}).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

/// A server that does the Hello exchange properly, then answers every
/// request stream with `behave`.
pub(super) async fn hostile<F, Fut>(behave: F) -> PeerAddr
where
    F: Fn(quinn::SendStream, quinn::RecvStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let key = SecretKey::generate().unwrap();
    let id = key.node_id();
    let tls = tls::server_config(&key).unwrap();
    let cfg = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap(),
    ));
    let ep = quinn::Endpoint::server(cfg, localhost()).unwrap();
    let addr = ep.local_addr().unwrap();
    let behave = Arc::new(behave);
    tokio::spawn(async move {
        while let Some(inc) = ep.accept().await {
            let behave = behave.clone();
            tokio::spawn(async move {
                let Ok(conn) = inc.await else { return };
                let Ok((mut s, mut r)) = conn.accept_bi().await else {
                    return;
                };
                let _ = stream::read_message(&mut r, Duration::from_secs(5)).await;
                let _ = stream::write_message(&mut s, &hello(&EndpointConfig::default())).await;
                while let Ok((send, recv)) = conn.accept_bi().await {
                    tokio::spawn(behave(send, recv));
                }
                drop((s, r));
            });
        }
    });
    PeerAddr { id: Some(id), addr }
}

/// The honest encoding of a whole blob of `n` bytes, its root and blob hash.
pub(super) fn honest(n: usize) -> (Vec<u8>, Hash, Hash, u64) {
    let (store, _, blob, root, _d) = one_file(n);
    let mut enc = Vec::new();
    store
        .encode_ranges(&blob, &content::all(), &mut enc)
        .unwrap();
    (enc, blob, root, n as u64)
}

/// Read a request: a `Get` is returned for the caller to answer; an `Ask`
/// is answered here, claiming the whole blob of `size` bytes.
pub(super) async fn read_get(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    size: u64,
) -> Option<Get> {
    match stream::read_message(recv, Duration::from_secs(5)).await {
        Ok(Message::Get(g)) => Some(g),
        Ok(Message::Ask(a)) => {
            let have = Message::Have(crate::wire::Have {
                hash: a.hash,
                size,
                groups: WireRanges::from_boundaries(vec![0]),
            });
            let _ = stream::write_message(send, &have).await;
            let _ = send.finish();
            None
        }
        _ => None,
    }
}

/// A fetcher whose store already holds the manifest (so only the blob is
/// requested from the hostile peer), the blob hash, and its size.
async fn fetcher_with_manifest(n: usize) -> (Node, Hash, Hash) {
    let (src, _, blob, root, _d) = one_file(n);
    let store = Store::memory().unwrap();
    let m = src.read_blob(&root, 1 << 20).unwrap().unwrap();
    store.put_blob(&m).unwrap();
    (Node::spawn(store, quick()).await.unwrap(), blob, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_response_keeps_what_verified_and_blames_the_peer() {
    let n = 1_500_000;
    let (src, _, blob, _, _d) = one_file(n);
    let size = n as u64;
    // Answers each Get honestly, but only the first half of it.
    let peer = hostile(move |mut send, mut recv| {
        let src = src.clone();
        async move {
            let Some(get) = read_get(&mut send, &mut recv, size).await else {
                return;
            };
            let mut enc = Vec::new();
            src.encode_ranges(&get.hash, &get.ranges.to_chunk_ranges(), &mut enc)
                .unwrap();
            let _ = stream::write_message(&mut send, &Message::Found(Found { size })).await;
            let _ = send.write_all(&enc[..enc.len() / 2]).await;
            let _ = send.finish();
        }
    })
    .await;
    let (fetcher, blob2, root) = fetcher_with_manifest(n).await;
    assert_eq!(blob, blob2);
    let err = fetcher
        .fetch(root, fetch_opts(vec![peer]))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ended the response") && msg.contains("early"),
        "{msg}"
    );
    let present = fetcher
        .store()
        .blob_info(&blob)
        .unwrap()
        .unwrap()
        .partial
        .unwrap();
    // Each piece is 16 groups; the verified first half of one is kept.
    assert!(
        present.count() >= 4,
        "the verified half should be kept: {present:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_peer_times_out() {
    let n = 100_000;
    let (_, _, _, size) = honest(n);
    let peer = hostile(move |mut send, mut recv| async move {
        if read_get(&mut send, &mut recv, size).await.is_none() {
            return;
        }
        let _ = stream::write_message(&mut send, &Message::Found(Found { size })).await;
        // ...and then nothing, while keeping the stream open.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(send);
    })
    .await;
    let (fetcher, _, root) = fetcher_with_manifest(n).await;
    let err = fetcher
        .fetch(root, fetch_opts(vec![peer]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stalled"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_a_wrong_size_is_refused() {
    let n = 100_000;
    let (enc, _, _, size) = honest(n);
    let enc = Arc::new(enc);
    let peer = hostile(move |mut send, mut recv| {
        let enc = enc.clone();
        async move {
            if read_get(&mut send, &mut recv, size).await.is_none() {
                return;
            }
            let lie = Message::Found(Found { size: size * 2 });
            let _ = stream::write_message(&mut send, &lie).await;
            let _ = send.write_all(&enc).await;
            let _ = send.finish();
        }
    })
    .await;
    let (fetcher, _, root) = fetcher_with_manifest(n).await;
    let err = fetcher
        .fetch(root, fetch_opts(vec![peer]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("claims"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_root_size_fails_verification_without_a_huge_allocation() {
    // The root's size is not known in advance: a peer claiming a bigger
    // size than the limit is refused from the header; a plausible lie fails
    // verification.
    let peer = hostile(move |mut send, mut recv| async move {
        read_get(&mut send, &mut recv, 0).await;
        let lie = Message::Found(Found { size: 1 << 40 });
        let _ = stream::write_message(&mut send, &lie).await;
        let _ = send.finish();
    })
    .await;
    let fetcher = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let err = fetcher
        .fetch(Hash::of(b"whatever"), fetch_opts(vec![peer]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than the"), "{err}");
}

/// A raw client: connects with our TLS identity, does Hello, and returns
/// the connection (the control stream is kept open by the returned pair).
async fn raw_client(
    to: &PeerAddr,
) -> (
    quinn::Connection,
    (quinn::SendStream, quinn::RecvStream),
    quinn::Endpoint,
) {
    raw_client_with(to, &EndpointConfig::default()).await
}

/// [`raw_client`], sending the `Hello` of `config`.
async fn raw_client_with(
    to: &PeerAddr,
    config: &EndpointConfig,
) -> (
    quinn::Connection,
    (quinn::SendStream, quinn::RecvStream),
    quinn::Endpoint,
) {
    let key = SecretKey::generate().unwrap();
    let tls = tls::client_config(&key, to.id, Arc::default()).unwrap();
    let cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    let ep = quinn::Endpoint::client(localhost()).unwrap();
    let conn = ep
        .connect_with(cfg, to.addr, tls::SERVER_NAME)
        .unwrap()
        .await
        .unwrap();
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    stream::write_message(&mut s, &hello(config)).await.unwrap();
    let reply = stream::read_message(&mut r, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(reply, Message::Hello(_)));
    (conn, (s, r), ep)
}

async fn send_raw(
    conn: &quinn::Connection,
    bytes: &[u8],
) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut s, r) = conn.open_bi().await.unwrap();
    s.write_all(bytes).await.unwrap();
    let _ = s.finish();
    (s, r)
}

async fn expect_error(recv: &mut quinn::RecvStream, code: ErrorCode) {
    match stream::read_message(recv, Duration::from_secs(5)).await {
        Ok(Message::Error(e)) => assert_eq!(e.code, code, "{}", e.text),
        other => panic!("expected Error {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_codes_and_the_node_keeps_serving() {
    let (store, _, blob, _, _d) = one_file(300_000);
    let node = Node::spawn(store, quick()).await.unwrap();
    let to = addr_of(&node);
    let (conn, _control, _ep) = raw_client(&to).await;

    // A length prefix over 32 KiB: refused from the prefix.
    let (_s, mut r) = send_raw(&conn, &[0x81, 0x80, 0x04]).await;
    expect_error(&mut r, ErrorCode::TooLarge).await;
    // An unknown message type.
    let (_s, mut r) = send_raw(&conn, &[0x01, 0x09]).await;
    expect_error(&mut r, ErrorCode::ProtocolViolation).await;
    // A message that is not a request.
    let (_s, mut r) = send_raw(&conn, &Message::Found(Found { size: 1 }).encode()).await;
    let _ = stream::read_message(&mut r, Duration::from_secs(5)).await;
    // Too many ranges.
    let many = Message::Get(Get {
        hash: blob,
        ranges: WireRanges::from_boundaries((0..600).collect()),
    });
    let (_s, mut r) = send_raw(&conn, &many.encode()).await;
    expect_error(&mut r, ErrorCode::TooManyRanges).await;
    // A truncated request (stream finished mid-message).
    let get = Message::Get(Get {
        hash: blob,
        ranges: WireRanges::from_boundaries(vec![0]),
    })
    .encode();
    let (_s, mut r) = send_raw(&conn, &get[..10]).await;
    let _ = stream::read_message(&mut r, Duration::from_secs(5)).await;
    // An unknown blob.
    let unknown = Message::Get(Get {
        hash: Hash::of(b"nope"),
        ranges: WireRanges::from_boundaries(vec![0]),
    });
    let (_s, mut r) = send_raw(&conn, &unknown.encode()).await;
    expect_error(&mut r, ErrorCode::NotFound).await;
    assert!(node.endpoint().stats().violations.load(Ordering::Relaxed) >= 3);

    // Ranges beyond the end select the last chunk (wire.md §3.3), which
    // proves the size.
    let past = WireRanges::from_boundaries(vec![1_000_000]);
    let ranges = past.to_chunk_ranges();
    let (_s, mut r) = send_raw(
        &conn,
        &Message::Get(Get {
            hash: blob,
            ranges: past,
        })
        .encode(),
    )
    .await;
    let Ok(Message::Found(Found { size })) =
        stream::read_message(&mut r, Duration::from_secs(5)).await
    else {
        panic!("no Found")
    };
    assert_eq!(size, 300_000);
    let body = r.read_to_end(1 << 20).await.unwrap();
    let leaves: Vec<u64> = content::decode_ranges(blob, size, &ranges, &body[..])
        .filter_map(|i| match i.unwrap() {
            BaoContentItem::Leaf(l) => Some(l.offset),
            _ => None,
        })
        .collect();
    // Only the last chunk is sent: bao descends into a partly requested group.
    assert_eq!(leaves, vec![292 * 1024]);

    // After all that, the same connection still gets honest answers.
    let peer = Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        quick(),
    )
    .await
    .unwrap()
    .connect(&to)
    .await
    .unwrap();
    assert_eq!(peer.ask(blob).await.unwrap().unwrap().size, 300_000);
    assert_eq!(
        conn.close_reason(),
        None,
        "a bad request must not kill the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_bounded_by_the_stream_limit() {
    let (store, _, blob, _, _d) = one_file(8_000_000);
    let node = Node::spawn(store, quick()).await.unwrap();
    let (conn, _control, _ep) = raw_client(&addr_of(&node)).await;
    let get = Message::Get(Get {
        hash: blob,
        ranges: WireRanges::from_boundaries(vec![0]),
    })
    .encode();
    // Open as many request streams as the peer lets us, never reading the answers.
    let mut held = Vec::new();
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_millis(300), conn.open_bi()).await {
            Ok(Ok((mut s, r))) => {
                s.write_all(&get).await.unwrap();
                let _ = s.finish();
                held.push((s, r));
            }
            _ => break,
        }
    }
    assert_eq!(held.len(), 64, "the control stream plus 64 requests");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let serving = node.endpoint().stats().serving.load(Ordering::Relaxed);
    assert!(serving <= 64, "{serving} requests served at once");
    // Dropping the connection releases everything on the server.
    conn.close(0u32.into(), b"bye");
    drop(held);
    for _ in 0..100 {
        if node.endpoint().stats().serving.load(Ordering::Relaxed) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(node.endpoint().stats().serving.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_violations_close_the_connection_with_a_code() {
    let node = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let to = addr_of(&node);
    let key = SecretKey::generate().unwrap();
    let cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(
            tls::client_config(&key, to.id, Arc::default()).unwrap(),
        )
        .unwrap(),
    ));
    let ep = quinn::Endpoint::client(localhost()).unwrap();
    for (first, code) in [
        (
            Message::Found(Found { size: 0 }),
            ErrorCode::ProtocolViolation,
        ),
        (
            Message::Hello(crate::wire::Hello {
                min_version: crate::wire::VERSION + 1,
                max_version: crate::wire::VERSION + 2,
                agent: "future".into(),
            }),
            ErrorCode::UnsupportedVersion,
        ),
    ] {
        let conn = ep
            .connect_with(cfg.clone(), to.addr, tls::SERVER_NAME)
            .unwrap()
            .await
            .unwrap();
        let (mut s, _r) = conn.open_bi().await.unwrap();
        stream::write_message(&mut s, &first).await.unwrap();
        let reason = conn.closed().await;
        match reason {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(c.error_code, quinn::VarInt::from(code.to_u16()), "{c:?}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_node_id_is_refused_by_the_handshake() {
    let node = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let other = SecretKey::generate().unwrap().node_id();
    let client = Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        quick(),
    )
    .await
    .unwrap();
    let to = PeerAddr {
        id: Some(other),
        addr: node.endpoint().local_addr().unwrap(),
    };
    let err = client.connect(&to).await.unwrap_err();
    assert!(
        matches!(err, ConnectError::WrongNode { expected, actual, .. }
            if expected == other && actual == node.endpoint().node_id()),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_blob_serves_the_groups_it_has_and_refuses_the_rest() {
    let n = 1_000_000;
    let (full, _, blob, _, _d) = one_file(n);
    // A leecher that has verified groups 0..20 of the blob.
    let leecher_store = Store::memory().unwrap();
    let first = content::group_ranges(0, 20);
    let mut enc = Vec::new();
    full.encode_ranges(&blob, &first, &mut enc).unwrap();
    let mut pb = leecher_store.partial(blob, n as u64).unwrap();
    pb.write_response(&first, &enc[..]).unwrap();
    drop(pb);
    let leecher = Node::spawn(leecher_store, quick()).await.unwrap();

    let client = Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        quick(),
    )
    .await
    .unwrap();
    let peer = client.connect(&addr_of(&leecher)).await.unwrap();
    let have = peer.ask(blob).await.unwrap().unwrap();
    assert_eq!(have.size, n as u64);
    assert_eq!(have.groups.boundaries(), &[0, 20]);

    // The groups it has arrive verified...
    let target = Store::memory().unwrap();
    let part = target.partial(blob, n as u64).unwrap();
    let (part, got) = peer.get(part, content::group_ranges(5, 10), &|_| {}).await;
    assert_eq!(got.unwrap(), 5 * 16384);
    assert_eq!(part.present().ranges(), &[(5, 10)]);
    // ...and the rest is refused with a code, not sent.
    let (_, got) = peer.get(part, content::group_ranges(15, 25), &|_| {}).await;
    assert!(
        matches!(
            got,
            Err(RequestError::Remote {
                code: ErrorCode::Incomplete,
                ..
            })
        ),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_exchange_introduces_a_fetcher_to_earlier_fetchers() {
    let rel = release();
    let (seed, root) = seeder(&rel).await;
    // F1 fetches from the seed, which remembers it as a peer of the root.
    let f1 = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    f1.fetch(root, fetch_opts(vec![addr_of(&seed)]))
        .await
        .unwrap();
    let probe = Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        quick(),
    )
    .await
    .unwrap();
    let told = probe
        .connect(&addr_of(&seed))
        .await
        .unwrap()
        .ask_peers(root)
        .await
        .unwrap();
    assert_eq!(told, vec![f1.endpoint().local_addr().unwrap()]);

    // F2 is told only about the seed, and connects to F1 too.
    let f2 = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let got = f2
        .fetch(root, fetch_opts(vec![addr_of(&seed)]))
        .await
        .unwrap();
    assert!(got.connected.contains(&f1.endpoint().node_id()), "{got:?}");
    assert_eq!(got.connected.len(), 2, "{got:?}");
    assert_release(f2.store(), &root, &rel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_asked_for_peers_is_told_of_each_new_one_in_version_2() {
    let bind = |seed: u8, config: EndpointConfig| {
        Endpoint::bind(
            Store::memory().unwrap(),
            SecretKey::from_bytes(&[seed; 32]),
            config,
        )
    };
    let seed = bind(1, quick()).await.unwrap();
    let hash = seed.store().put_blob(&data(3, 100_000)).unwrap();
    let to = PeerAddr {
        id: Some(seed.node_id()),
        addr: seed.local_addr().unwrap(),
    };
    // Two nodes ask the seed for peers of the blob before anyone else came:
    // one speaking version 2, one as a version-1 build does.
    let v1 = EndpointConfig {
        max_version: 1,
        ..quick()
    };
    let (new, old) = (bind(2, quick()).await.unwrap(), bind(3, v1).await.unwrap());
    let (mut new_watch, mut old_watch) = (new.watch_haves(vec![hash]), old.watch_haves(vec![hash]));
    let mut asked = Vec::new();
    for ep in [&new, &old] {
        let p = ep.connect(&to).await.unwrap();
        assert!(p.ask_peers(hash).await.unwrap().is_empty());
        asked.push(p);
    }
    // Two fetchers come, one after the other (the first twice).
    let mut fetchers = Vec::new();
    for s in [4, 5] {
        let f = bind(s, quick()).await.unwrap();
        let p = f.connect(&to).await.unwrap();
        for _ in 0..2 {
            p.get_bytes(hash, 1 << 20).await.unwrap();
        }
        fetchers.push((f, p));
    }
    let wait = Duration::from_secs(10);
    for (f, _) in &fetchers {
        let got = tokio::time::timeout(wait, new_watch.addrs.recv()).await;
        assert_eq!(got.ok().flatten(), Some(f.local_addr().unwrap()));
    }
    // The version-1 node was told nothing on its control stream (which a
    // push would have broken: the connection would be closed) and still
    // learns them by asking.
    assert!(new_watch.addrs.try_recv().is_err(), "each fetcher once");
    assert!(old_watch.addrs.try_recv().is_err());
    let told = asked[1].ask_peers(hash).await.unwrap();
    let addrs: Vec<SocketAddr> = fetchers
        .iter()
        .map(|(f, _)| f.local_addr().unwrap())
        .collect();
    assert_eq!(told, [addrs[1], addrs[0]]);
    assert!(!asked[1].is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_peers_on_a_version_1_connection_are_a_violation() {
    let node = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let to = addr_of(&node);
    for (version, closed) in [(2, false), (1, true)] {
        let config = EndpointConfig {
            max_version: version,
            ..quick()
        };
        let (conn, (mut s, _r), _ep) = raw_client_with(&to, &config).await;
        let push = Message::Peers(crate::wire::Peers {
            hash: Hash::of(b"root"),
            addrs: vec![localhost()],
        });
        stream::write_message(&mut s, &push).await.unwrap();
        if closed {
            match conn.closed().await {
                quinn::ConnectionError::ApplicationClosed(c) => assert_eq!(
                    c.error_code,
                    quinn::VarInt::from(ErrorCode::ProtocolViolation.to_u16())
                ),
                other => panic!("{other:?}"),
            }
            continue;
        }
        // Version 2: the connection goes on, and answers a request after it.
        let (_s, mut r) = send_raw(
            &conn,
            &Message::AskPeers(crate::wire::Ask {
                hash: Hash::of(b"root"),
            })
            .encode(),
        )
        .await;
        let answer = stream::read_message(&mut r, Duration::from_secs(5)).await;
        assert!(matches!(answer, Ok(Message::Peers(_))), "{answer:?}");
        assert!(conn.close_reason().is_none());
    }
}

/// Regression: peer exchange can hand out a fetcher that has since gone;
/// a fetch must not wait for a connection to it to time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_exchanged_address_does_not_hold_up_a_fetch() {
    let rel = release();
    let (seed, root) = seeder(&rel).await;
    let gone = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    gone.fetch(root, fetch_opts(vec![addr_of(&seed)]))
        .await
        .unwrap();
    let probe = Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        quick(),
    )
    .await
    .unwrap()
    .connect(&addr_of(&seed))
    .await
    .unwrap();
    assert_eq!(
        probe.ask_peers(root).await.unwrap(),
        vec![gone.endpoint().local_addr().unwrap()],
        "a fetcher that is done but runs on is handed out"
    );
    // Its fetch keeps the connection a few seconds (Peer::retire), so its
    // shutdown closes it saying so, and the seed forgets it (wire.md §3.8),
    // as it does a peer that shuts down while connected.
    let leaving = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let to_seed = leaving.endpoint().connect(&addr_of(&seed)).await.unwrap();
    to_seed.get_bytes(root, 1 << 20).await.unwrap();
    let leaving_addr = leaving.endpoint().local_addr().unwrap();
    let gone_addr = gone.endpoint().local_addr().unwrap();
    assert!(probe.ask_peers(root).await.unwrap().contains(&leaving_addr));
    gone.shutdown().await;
    leaving.shutdown().await;
    let mut forgotten = false;
    for _ in 0..100 {
        let told = probe.ask_peers(root).await.unwrap();
        if !told.contains(&leaving_addr) && !told.contains(&gone_addr) {
            forgotten = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(forgotten, "a peer that shut down is still handed out");
    // A fetcher whose connection attempts would wait a minute.
    let mut slow = quick();
    slow.timeouts.connect = Duration::from_secs(60);
    let f = Node::spawn(Store::memory().unwrap(), slow).await.unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        f.fetch(root, fetch_opts(vec![addr_of(&seed)])),
    )
    .await
    .expect("the fetch waited for a dead exchanged address")
    .unwrap();
    assert_eq!(got.connected, vec![seed.endpoint().node_id()]);
    assert_release(f.store(), &root, &rel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_the_window_change_while_running_and_bad_ones_change_nothing() {
    let rel = release();
    let (seed, root) = seeder(&rel).await;
    let fetcher = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let before = seed.endpoint().limits();
    assert_eq!(before.window, DEFAULT_WINDOW);
    for bad in [
        Limits {
            max_connections: 0,
            ..before
        },
        Limits {
            upload_limit: Some(0),
            ..before
        },
        Limits {
            window: MIN_WINDOW - 1,
            ..before
        },
        Limits {
            window: MAX_WINDOW + 1,
            ..before
        },
    ] {
        assert!(seed.endpoint().set_limits(&bad).is_err(), "{bad:?}");
        assert_eq!(seed.endpoint().limits(), before, "refused, nothing changed");
    }
    // The smallest window on both sides, and a cap: the connections made
    // from now on (the fetcher dials, the seed accepts under its new
    // server settings) carry a release byte-identical.
    let lean = Limits {
        window: MIN_WINDOW,
        upload_limit: Some(16 << 20),
        ..before
    };
    seed.endpoint().set_limits(&lean).unwrap();
    assert_eq!(seed.endpoint().limits(), lean);
    let mine = Limits {
        window: MIN_WINDOW,
        ..fetcher.endpoint().limits()
    };
    fetcher.endpoint().set_limits(&mine).unwrap();
    assert_eq!(fetcher.endpoint().window(), MIN_WINDOW);
    fetcher
        .fetch(root, fetch_opts(vec![addr_of(&seed)]))
        .await
        .unwrap();
    assert_release(fetcher.store(), &root, &rel);
}
