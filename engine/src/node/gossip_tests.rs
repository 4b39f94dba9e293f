//! Release gossip between real nodes over QUIC on 127.0.0.1, without a
//! DHT: gossip is the only way a release can reach them.

use std::sync::Arc;
use std::time::Duration;

use crate::net::{Endpoint, EndpointConfig, Peer, PeerAddr};
use crate::node::{Follow, Node};
use crate::release::gossip::Dropped;
use crate::release::{Release, SecretKey, SignedRelease};
use crate::store::{PublishOptions, Store};
use crate::testutil::data;
use crate::wire::{ErrorCode, MAX_HOPS, Message, ReleaseMsg};

fn loopback() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

async fn node() -> Node {
    Node::builder()
        .listen(loopback())
        .no_dht()
        .spawn()
        .await
        .unwrap()
}

/// Wait up to 20 s for `done`.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen");
}

fn pointer(key: &SecretKey, name: &str) -> String {
    format!("{}/{name}", key.public())
}

/// `node` following `entry` with `peers`, trusting `key`.
fn follow(
    node: &Node,
    key: &SecretKey,
    entry: String,
    peers: Vec<PeerAddr>,
) -> super::super::Following {
    node.follow(
        Follow {
            entries: vec![entry],
            peers,
            trust: vec![key.public()],
            ..Follow::default()
        },
        Arc::new(|_| {}),
    )
}

fn seen_seq(node: &Node, key: &SecretKey, name: &str) -> Option<u64> {
    node.store()
        .release_seen(&key.public(), name, "stable")
        .unwrap()
        .map(|s| s.seq)
}

fn pinned(node: &Node, root: &crate::Hash) -> bool {
    node.store().pins().unwrap().iter().any(|p| p.root == *root)
}

fn file_bytes(node: &Node, root: &crate::Hash) -> Vec<u8> {
    let m = node.store().manifest(root).unwrap();
    node.store()
        .read_blob(&m.entries()[0].hash, 1 << 30)
        .unwrap()
        .unwrap()
}

async fn publish(
    node: &Node,
    key: &SecretKey,
    name: &str,
    version: &str,
    dir: &std::path::Path,
) -> SignedRelease {
    let path = dir.join(format!("{name}-{version}.bin"));
    std::fs::write(&path, data(version.len() as u64 + 3, 300_000)).unwrap();
    let opts = PublishOptions::new(name, version.parse().unwrap());
    node.publish(key, &[path], &opts).await.unwrap().release
}

/// A signed release of `name` by `key`, never published anywhere.
fn record(key: &SecretKey, name: &str, seq: u64) -> SignedRelease {
    Release {
        publisher: key.public(),
        name: name.into(),
        channel: "stable".into(),
        version: semver::Version::new(1, seq, 0),
        seq,
        root: crate::Hash::of(&seq.to_le_bytes()),
        size: 10,
        created: super::unix_now() - 10,
        expires: None,
        rollout: Default::default(),
    }
    .sign(key)
    .unwrap()
}

/// A bare endpoint connected to `to`, to play a peer by hand.
async fn raw_peer(to: &Node) -> (Endpoint, Peer) {
    let config = EndpointConfig::default().listen(loopback());
    let e = Endpoint::bind(
        Store::memory().unwrap(),
        crate::net::SecretKey::generate().unwrap(),
        config,
    )
    .await
    .unwrap();
    let peer = e.connect(&to.addr().unwrap()).await.unwrap();
    eventually("the control stream up", || peer.control_ready()).await;
    (e, peer)
}

fn gossip(release: &SignedRelease, hops: u8) -> Message {
    Message::Release(ReleaseMsg {
        hops,
        record: release.to_bytes(),
    })
}

fn closed_for_violation(peer: &Peer) -> bool {
    matches!(
        peer.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(c))
            if c.error_code == ErrorCode::ProtocolViolation.to_u16().into()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_published_on_one_node_crosses_a_line_of_followers_and_is_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&[21; 32]);
    let publisher = node().await;
    // P <- B <- C <- D: each knows only the node before it.
    let (b, c, d) = (node().await, node().await, node().await);
    let _fb = follow(
        &b,
        &key,
        pointer(&key, "app"),
        vec![publisher.addr().unwrap()],
    );
    let _fc = follow(&c, &key, pointer(&key, "app"), vec![b.addr().unwrap()]);
    let _fd = follow(&d, &key, pointer(&key, "app"), vec![c.addr().unwrap()]);

    let v1 = publish(&publisher, &key, "app", "1.0.0", dir.path()).await;
    let r1 = v1.release().root;
    eventually("v1 at the end of the line", || pinned(&d, &r1)).await;
    assert_eq!(file_bytes(&d, &r1), file_bytes(&publisher, &r1));
    assert_eq!(seen_seq(&d, &key, "app"), Some(1));

    // Once every link is up, the next release goes the same way.
    let v2 = publish(&publisher, &key, "app", "1.1.0", dir.path()).await;
    let r2 = v2.release().root;
    eventually("v2 at the end of the line", || pinned(&d, &r2)).await;
    assert_eq!(file_bytes(&d, &r2), file_bytes(&publisher, &r2));
    assert_eq!(seen_seq(&d, &key, "app"), Some(2));
    for n in [&b, &c, &d] {
        let s = n.endpoint().gossip_stats();
        assert_eq!(s.accepted, 2, "{s:?}");
        assert_eq!(s.dropped(Dropped::Refused), 0, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_goes_only_where_it_is_followed_and_is_checked_before_it_is_recorded() {
    let key = SecretKey::from_seed(&[22; 32]);
    let stranger = SecretKey::from_seed(&[23; 32]);
    let b = node().await;
    let _fb = follow(&b, &key, pointer(&key, "app"), Vec::new());
    let (_e, raw) = raw_peer(&b).await;
    // Not followed here: dropped unchecked.
    raw.send_control(gossip(&record(&key, "other", 1), MAX_HOPS));
    eventually("the unwanted record dropped", || {
        b.endpoint().gossip_stats().dropped(Dropped::Unwanted) == 1
    })
    .await;
    assert_eq!(seen_seq(&b, &key, "other"), None);
    // Followed, but signed by a key nobody here trusts (as the publisher
    // key of the subject): not recorded, not passed on.
    let mut forged = record(&stranger, "app", 9);
    forged = SignedRelease::from_bytes(&forged.to_bytes()).unwrap();
    raw.send_control(gossip(&forged, MAX_HOPS));
    // Followed and trusted: recorded.
    raw.send_control(gossip(&record(&key, "app", 2), MAX_HOPS));
    eventually("the good record accepted", || {
        seen_seq(&b, &key, "app") == Some(2)
    })
    .await;
    // An older one afterwards (a replay): refused as a rollback, and the
    // newest stays.
    raw.send_control(gossip(&record(&key, "app", 1), MAX_HOPS));
    eventually("the replay looked at", || {
        b.endpoint().gossip_stats().received >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen_seq(&b, &key, "app"), Some(2));
    assert_eq!(seen_seq(&b, &stranger, "app"), None);
    let s = b.endpoint().gossip_stats();
    assert_eq!(s.accepted, 1, "{s:?}");
    assert!(
        !raw.is_closed(),
        "an honest peer can be behind or trust others"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_bans_its_sender() {
    let key = SecretKey::from_seed(&[24; 32]);
    let b = node().await;
    let _fb = follow(&b, &key, pointer(&key, "app"), Vec::new());
    let (_e, raw) = raw_peer(&b).await;
    let mut bytes = record(&key, "app", 3).to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1; // the signature no longer verifies
    raw.send_control(Message::Release(ReleaseMsg {
        hops: MAX_HOPS,
        record: bytes,
    }));
    tokio::time::timeout(Duration::from_secs(10), raw.closed())
        .await
        .expect("closed");
    assert!(closed_for_violation(&raw), "{:?}", raw.close_reason());
    assert_eq!(seen_seq(&b, &key, "app"), None);
    let s = b.endpoint().gossip_stats();
    assert_eq!((s.dropped(Dropped::Invalid), s.banned), (1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_or_broken_threshold_bundle_bans_its_sender() {
    let key = SecretKey::from_seed(&[27; 32]);
    let b = node().await;
    let _fb = follow(&b, &key, pointer(&key, "app"), Vec::new());
    // A format 2 bundle as large as a message holds, of nonsense.
    let (_e, raw) = raw_peer(&b).await;
    let mut record = vec![crate::release::FORMAT_THRESHOLD];
    record.extend(std::iter::repeat_n(0xab, crate::wire::MAX_MESSAGE - 16));
    raw.send_control(Message::Release(ReleaseMsg { hops: 1, record }));
    tokio::time::timeout(Duration::from_secs(10), raw.closed())
        .await
        .expect("closed");
    assert!(closed_for_violation(&raw), "{:?}", raw.close_reason());
    // One past the message limit: refused from its length prefix.
    let (_e2, raw2) = raw_peer(&b).await;
    let record = vec![0xcd; crate::wire::MAX_MESSAGE];
    raw2.send_control(Message::Release(ReleaseMsg { hops: 1, record }));
    tokio::time::timeout(Duration::from_secs(10), raw2.closed())
        .await
        .expect("closed");
    assert_eq!(seen_seq(&b, &key, "app"), None);
    assert_eq!(b.endpoint().gossip_stats().accepted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_gossips_one_record_forever_is_banned_and_transfers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&[25; 32]);
    let b = node().await;
    let _fb = follow(&b, &key, pointer(&key, "app"), Vec::new());
    std::fs::write(dir.path().join("f"), data(5, 2_000_000)).unwrap();
    let root = b.add(&[dir.path().join("f")]).await.unwrap().root;
    let (_e, raw) = raw_peer(&b).await;
    let fetcher = node().await;
    let fetch = fetcher.fetch(
        root,
        crate::node::FetchOptions {
            peers: vec![b.addr().unwrap()],
            ..Default::default()
        },
    );
    let same = gossip(&record(&key, "app", 1), MAX_HOPS);
    for _ in 0..1000 {
        raw.send_control(same.clone());
        if raw.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), raw.closed())
        .await
        .expect("banned");
    assert!(closed_for_violation(&raw), "{:?}", raw.close_reason());
    let s = b.endpoint().gossip_stats();
    assert_eq!(s.banned, 1, "{s:?}");
    assert_eq!(s.accepted, 1, "checked once: {s:?}");
    // The fetch from the same node was not disturbed.
    let got = fetch.await.unwrap();
    assert_eq!(got.root, root);
    assert_eq!(file_bytes(&fetcher, &root), data(5, 2_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeding_node_holds_back_a_young_release_but_takes_a_critical_one() {
    use crate::node::FollowEvent;
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&[26; 32]);
    let publisher = node().await;
    let b = node().await;
    let events = Arc::new(std::sync::Mutex::new(Vec::<FollowEvent>::new()));
    let seen = events.clone();
    let _fb = b.follow(
        Follow {
            entries: vec![pointer(&key, "app")],
            peers: vec![publisher.addr().unwrap()],
            trust: vec![key.public()],
            delay: Some(Duration::from_secs(86_400)),
            ..Follow::default()
        },
        Arc::new(move |e| seen.lock().unwrap().push(e.clone())),
    );
    let young = publish(&publisher, &key, "app", "1.0.0", dir.path()).await;
    eventually("the young release held", || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, FollowEvent::Held { version, .. } if version == "1.0.0"))
    })
    .await;
    assert!(!pinned(&b, &young.release().root));
    // Gossip brought it and it was checked and recorded all the same.
    assert_eq!(seen_seq(&b, &key, "app"), Some(1));
    let path = dir.path().join("fix.bin");
    std::fs::write(&path, data(99, 100_000)).unwrap();
    let mut opts = PublishOptions::new("app", "1.0.1".parse().unwrap());
    opts.rollout.critical = true;
    let fix = publisher
        .publish(&key, &[path], &opts)
        .await
        .unwrap()
        .release;
    eventually("the critical release fetched", || {
        pinned(&b, &fix.release().root)
    })
    .await;
    assert!(!pinned(&b, &young.release().root));
}
