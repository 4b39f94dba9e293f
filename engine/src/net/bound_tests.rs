//! Limits at the edges of the network: a full node says Busy, a capped
//! one is not taken for stalled, nonsense settings and declared sizes are
//! refused before anything is set up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use super::tests::{addr_of, client, fetch_opts, honest, hostile, one_file, quick, read_get};
use super::*;
use crate::Hash;
use crate::content::{self, MAX_BLOB_SIZE, ManifestError};
use crate::node::{FetchError, Node, NodeError};
use crate::wire::Found;

fn with_progress(config: EndpointConfig, progress: Duration) -> EndpointConfig {
    let timeouts = Timeouts {
        progress,
        ..config.timeouts.clone()
    };
    config.timeouts(timeouts)
}

/// Regression: a node at its connection limit closes new connections with
/// `Busy`, and the connecting side reported "broke the protocol during the
/// handshake". Busy is no misbehaviour: nothing is counted against anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_is_reported_busy_not_as_breaking_the_protocol() {
    let (store, _, _, root, _d) = one_file(100_000);
    let full = EndpointConfig {
        max_connections: 1,
        ..quick()
    };
    let seed = Node::spawn(store, full).await.unwrap();
    let first = client().await;
    let _kept = first.connect(&addr_of(&seed)).await.unwrap();
    let stats = seed.endpoint().stats();
    for _ in 0..500 {
        if stats.connections.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.connections.load(Ordering::Relaxed), 1);

    let err = client().await.connect(&addr_of(&seed)).await.unwrap_err();
    assert!(matches!(err, ConnectError::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("busy"), "{err}");

    let fetcher = Node::spawn(Store::memory().unwrap(), quick())
        .await
        .unwrap();
    let err = fetcher
        .fetch(root, fetch_opts(vec![addr_of(&seed)]))
        .await
        .unwrap_err();
    match &err {
        FetchError::Unreachable(why) => {
            assert!(matches!(why[..], [ConnectError::Busy { .. }]), "{why:?}")
        }
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(!err.to_string().contains("broke the protocol"), "{err}");
    assert_eq!(stats.violations.load(Ordering::Relaxed), 0);
}

/// Regression: under an upload cap the seeder sent each 256 KiB piece in
/// one write after waiting for its tokens, so a lone fetcher saw no byte
/// for longer than its progress timeout and gave up ("stalled") while the
/// cap was being used to the full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_seeder_is_not_taken_for_stalled() {
    let (store, _, _, root, _d) = one_file(512 * 1024);
    // A 256 KiB piece takes 1.5 s of tokens beyond the burst, longer than
    // the fetcher's progress timeout; a 16 KiB group takes 0.125 s.
    let seed = Node::spawn(store, quick().upload_limit(Some(128 << 10)))
        .await
        .unwrap();
    let fetcher = Node::spawn(
        Store::memory().unwrap(),
        with_progress(quick(), Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let got = fetcher
        .fetch(root, fetch_opts(vec![addr_of(&seed)]))
        .await
        .unwrap();
    assert!(got.failures.is_empty(), "{:?}", got.failures);
    assert_eq!(got.size, 512 * 1024);
}

/// Regression: the progress timeout ran per response, so a response a
/// peer answers after another (as a capped peer does) timed out while the
/// first one's bytes were arriving. wire.md §5: a receiver gives up after
/// the timeout without a byte from the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_waiting_its_turn_does_not_time_out_while_bytes_flow() {
    let (slow_enc, slow, _, slow_size) = honest(100_000);
    let (fast_enc, fast, _, fast_size) = honest(100_001);
    let (done_tx, done_rx) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let peer = hostile(move |mut send, mut recv| {
        let (slow_enc, fast_enc) = (slow_enc.clone(), fast_enc.clone());
        let (done_tx, mut done_rx) = (done_tx.clone(), done_rx.clone());
        async move {
            let Some(get) = read_get(&mut send, &mut recv, 0).await else {
                return;
            };
            if get.hash == slow {
                // 7 groups, one every 300 ms: 2.1 s in all, never a second
                // without a byte.
                let found = Message::Found(Found { size: slow_size });
                let _ = stream::write_message(&mut send, &found).await;
                for part in slow_enc.chunks(content::GROUP_SIZE as usize) {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let _ = send.write_all(part).await;
                }
                let _ = send.finish();
                let _ = done_tx.send(true);
            } else {
                // Answered only once the slow one is done.
                let _ = done_rx.wait_for(|d| *d).await;
                let found = Message::Found(Found { size: fast_size });
                let _ = stream::write_message(&mut send, &found).await;
                let _ = send.write_all(&fast_enc).await;
                let _ = send.finish();
            }
            let _ = send.stopped().await;
        }
    })
    .await;
    let client = Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        with_progress(quick(), Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let p = client.connect(&peer).await.unwrap();
    let (a, b) = tokio::join!(p.get_bytes(slow, 1 << 20), p.get_bytes(fast, 1 << 20));
    assert_eq!(a.unwrap().len() as u64, slow_size);
    assert_eq!(b.unwrap().len() as u64, fast_size);
}

/// A peer that goes silent still times out, with the new clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_still_times_out() {
    let peer = hostile(|mut send, mut recv| async move {
        read_get(&mut send, &mut recv, 0).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(send);
    })
    .await;
    let client = Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        with_progress(quick(), Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let p = client.connect(&peer).await.unwrap();
    let err = p.get_bytes(Hash::of(b"x"), 1 << 20).await.unwrap_err();
    assert!(matches!(err, RequestError::Timeout(_)), "{err:?}");
}

/// Regression: a manifest entry declaring 2^62 bytes made the fetcher set
/// up a 4 EiB sparse file, and `u64::MAX` failed with "out of range
/// integral type conversion". Now the manifest is refused, and nothing is
/// created for the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_declaring_a_huge_file_is_refused_before_anything_is_created() {
    let blob = Hash::of(b"never sent");
    for (size, varint) in [
        (
            1u64 << 62,
            vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40],
        ),
        (
            u64::MAX,
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
    ] {
        let mut bytes = b"SWMF\x01\x01\x03big".to_vec();
        bytes.extend(varint);
        bytes.extend([0xa4, 0x03]);
        bytes.extend(blob.as_bytes());
        bytes.push(0);
        let store = Store::memory().unwrap();
        let root = store.put_blob(&bytes).unwrap();
        let seed = Node::spawn(store, quick()).await.unwrap();
        let fetcher = Node::spawn(Store::memory().unwrap(), quick())
            .await
            .unwrap();
        let err = fetcher
            .fetch(root, fetch_opts(vec![addr_of(&seed)]))
            .await
            .unwrap_err();
        match &err {
            FetchError::NotAManifest {
                source: ManifestError::EntryTooLarge { size: s, .. },
                ..
            } => assert_eq!(*s, size),
            other => panic!("expected a refused size, got {other:?}"),
        }
        assert!(size > MAX_BLOB_SIZE);
        assert_eq!(fetcher.store().blob_info(&blob).unwrap(), None);
    }
}

/// Zero where zero cannot work is refused when the endpoint starts, with
/// an error, not a panic or a node that serves nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meaningless_settings_are_refused_at_bind() {
    let key = || SecretKey::generate().unwrap();
    let none = EndpointConfig {
        max_connections: 0,
        ..quick()
    };
    let err = Endpoint::bind(Store::memory().unwrap(), key(), none)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BindError::Config(ConfigError::NoConnections)),
        "{err:?}"
    );
    let zero = with_progress(quick(), Duration::ZERO);
    let err = Endpoint::bind(Store::memory().unwrap(), key(), zero)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BindError::Config(ConfigError::ZeroTimeout("progress"))),
        "{err:?}"
    );
    let stuck = quick().download_limit(Some(0));
    let err = Endpoint::bind(Store::memory().unwrap(), key(), stuck)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BindError::Config(ConfigError::ZeroRate("download"))),
        "{err:?}"
    );

    let err = Node::builder()
        .no_dht()
        .listen(super::tests::localhost())
        .max_connections(0)
        .spawn()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::Bind(BindError::Config(ConfigError::NoConnections))
        ),
        "{err:?}"
    );
    let err = Node::builder()
        .no_dht()
        .reannounce(Some(Duration::ZERO))
        .spawn()
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::ZeroReannounce), "{err:?}");
}
