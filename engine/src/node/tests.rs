//! The embedding API on real components: nodes from the builder talking
//! QUIC on 127.0.0.1, a local DHT, redb stores.

use std::time::Duration;

use super::{FetchError, FetchEvents, FetchHandle, FetchOptions, FetchProgress, Node, NodeOpError};
use crate::discovery::LocalDht;
use crate::release::{PolicyError, SecretKey};
use crate::store::{AcceptError, PublishOptions, ReadError};
use crate::testutil::data;

fn loopback() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// A node on loopback without a DHT, uploading at most `limit` bytes/s.
async fn node(limit: Option<u64>) -> Node {
    Node::builder()
        .listen(loopback())
        .no_dht()
        .upload_limit(limit)
        .spawn()
        .await
        .unwrap()
}

/// A seeder holding one file of `n` bytes; returns it, the root, the
/// bytes and the directory (kept alive).
async fn seeder(n: usize, limit: Option<u64>) -> (Node, crate::Hash, Vec<u8>, tempfile::TempDir) {
    let node = node(limit).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(7, n);
    std::fs::write(dir.path().join("file.bin"), &bytes).unwrap();
    let root = node.add(&[dir.path().join("file.bin")]).await.unwrap().root;
    (node, root, bytes, dir)
}

fn stored(node: &Node, root: &crate::Hash) -> Vec<u8> {
    let m = node.store().manifest(root).unwrap();
    node.store()
        .read_blob(&m.entries()[0].hash, 1 << 30)
        .unwrap()
        .unwrap()
}

/// Read events until `pred` holds for one; false if the stream ends first.
async fn until(events: &mut FetchEvents, mut pred: impl FnMut(&FetchProgress) -> bool) -> bool {
    while let Some(e) = events.next().await {
        if pred(&e) {
            return true;
        }
    }
    false
}

/// Start fetching `root` from `seed` on `fetcher`; returns once bytes
/// arrive.
async fn fetching(fetcher: &Node, seed: &Node, root: crate::Hash) -> (FetchHandle, FetchEvents) {
    let mut fetch = fetcher.fetch(
        root,
        FetchOptions {
            peers: vec![seed.addr().unwrap()],
            ..Default::default()
        },
    );
    let mut events = fetch.events().unwrap();
    assert!(until(&mut events, |e| matches!(e, FetchProgress::Received(_))).await);
    (fetch, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_the_fetch_and_end_with_it() {
    let (seed, root, bytes, _d) = seeder(3_000_000, None).await;
    let fetcher = node(None).await;
    let peers = vec![seed.addr().unwrap()];
    let mut fetch = fetcher.fetch(
        root,
        FetchOptions {
            peers,
            ..Default::default()
        },
    );
    assert_eq!(fetch.root(), root);
    let mut events = fetch.events().unwrap();
    assert!(fetch.events().is_none(), "the stream is handed out once");
    let collect = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(e) = events.next().await {
            all.push(e);
        }
        all
    });
    let fetched = fetch.await.unwrap();
    let all = collect.await.unwrap();
    assert_eq!(stored(&fetcher, &root), bytes);
    assert!(all.contains(&FetchProgress::Manifest {
        total: bytes.len() as u64,
        present: 0
    }));
    let received: u64 = all
        .iter()
        .map(|e| match e {
            FetchProgress::Received(n) => *n,
            _ => 0,
        })
        .sum();
    // Every byte counted by the fetch is in the stream (the manifest's
    // bytes are counted in `received` but not reported as progress).
    assert!(received > bytes.len() as u64, "{received}");
    assert!(
        received <= fetched.received,
        "{received} > {}",
        fetched.received
    );
    assert!(
        all.iter()
            .any(|e| matches!(e, FetchProgress::Peers(p) if p.iter().any(|p| p.bytes > 0)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_fetch_takes_nothing_and_finishes_after_resume() {
    // 6 MB at 2 MiB/s: about 3 s, time to pause in the middle.
    let (seed, root, bytes, _d) = seeder(6_000_000, Some(2 << 20)).await;
    let fetcher = node(None).await;
    let (fetch, mut events) = fetching(&fetcher, &seed, root).await;
    fetch.pause();
    assert!(fetch.is_paused());
    // What was in flight is called back; then nothing more arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, events.next()).await {}
    let mut during = 0;
    let quiet = tokio::time::timeout(Duration::from_millis(1500), async {
        while let Some(e) = events.next().await {
            if let FetchProgress::Received(n) = e {
                during += n;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "the fetch ended while paused");
    assert_eq!(during, 0, "bytes arrived while paused");
    assert!(!fetch.is_finished());
    fetch.resume();
    let fetched = fetch.await.unwrap();
    assert_eq!(fetched.size, bytes.len() as u64);
    assert_eq!(stored(&fetcher, &root), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_fetch_keeps_what_it_verified_and_resumes() {
    let (seed, root, bytes, _d) = seeder(6_000_000, Some(2 << 20)).await;
    let fetcher = node(None).await;
    let opts = FetchOptions {
        peers: vec![seed.addr().unwrap()],
        ..Default::default()
    };
    let mut fetch = fetcher.fetch(root, opts.clone());
    let mut events = fetch.events().unwrap();
    // Cancel once the peer has delivered 1 MB verified.
    let mut verified = 0;
    assert!(
        until(&mut events, |e| {
            if let FetchProgress::Peers(p) = e {
                verified = p.iter().map(|p| p.bytes).sum();
            }
            verified >= 1_000_000
        })
        .await
    );
    fetch.cancel();
    assert!(matches!(fetch.await, Err(FetchError::Cancelled)));
    // The second fetch takes only what is missing.
    let mut again = fetcher.fetch(root, opts);
    let mut events = again.events().unwrap();
    let present = tokio::spawn(async move {
        let mut present = None;
        until(&mut events, |e| {
            if let FetchProgress::Manifest { present: p, .. } = e {
                present = Some(*p);
            }
            present.is_some()
        })
        .await;
        present
    });
    let fetched = again.await.unwrap();
    let present = present.await.unwrap().unwrap();
    // Everything verified before the cancel is kept (and committed by the
    // time the cancelled fetch returned).
    assert!(
        present >= verified,
        "{present} bytes kept of {verified} verified"
    );
    assert!(
        fetched.received < bytes.len() as u64 - present / 2,
        "refetched {} of {}",
        fetched.received,
        bytes.len()
    );
    assert_eq!(stored(&fetcher, &root), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_cancels_the_fetch() {
    let (seed, root, _bytes, _d) = seeder(6_000_000, Some(2 << 20)).await;
    let fetcher = node(None).await;
    let (fetch, mut events) = fetching(&fetcher, &seed, root).await;
    drop(fetch);
    // The stream ends because the fetch did, well before the 3 s it needs.
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        while events.next().await.is_some() {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the fetch went on after its handle was dropped"
    );
    assert!(fetcher.store().pins().unwrap().is_empty(), "nothing pinned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_the_dht_then_resolve_and_fetch_it_elsewhere() {
    let dht = LocalDht::start(5).unwrap();
    let build = || Node::builder().listen(loopback()).dht(dht.config()).spawn();
    let publisher = build().await.unwrap();
    let key = SecretKey::from_seed(&[11; 32]);
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3, 1_500_000);
    std::fs::write(dir.path().join("app"), &bytes).unwrap();
    let mut opts = PublishOptions::new("app", semver::Version::new(1, 4, 0));
    opts.channel = "beta".into();
    let published = publisher
        .publish(&key, &[dir.path().join("app")], &opts)
        .await
        .unwrap();

    let user = build().await.unwrap();
    // Not trusted yet: found, and refused with the reason.
    let err = user
        .resolve(&key.public(), "app", "beta")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NodeOpError::Refused(AcceptError::Policy(PolicyError::Untrusted { .. }))
        ),
        "{err}"
    );
    user.trust(&key.public(), "app publisher").unwrap();
    assert!(
        user.resolve(&key.public(), "app", "stable")
            .await
            .unwrap()
            .is_none()
    );
    let found = user
        .resolve(&key.public(), "app", "beta")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, published.release);
    // No peers given: the DHT finds the publisher, which announced it.
    let fetched = user
        .fetch_release(&found, FetchOptions::default())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(fetched.root, published.added.root);
    assert_eq!(stored(&user, &fetched.root), bytes);
    assert_eq!(fetched.peers, vec![publisher.id()]);
    // Recorded as seen: the same sequence is still fine, a forged older
    // one would not be (the rollback rule is tested with releases).
    assert_eq!(
        user.store()
            .release_seen(&key.public(), "app", "beta")
            .unwrap()
            .unwrap()
            .seq,
        1
    );
    // A node without a DHT says what it lacks.
    let lone = node(None).await;
    assert!(matches!(
        lone.resolve(&key.public(), "app", "beta").await,
        Err(NodeOpError::NoDht)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_needs_the_whole_content_and_stop_seeding_unpins() {
    let (seed, root, _bytes, _d) = seeder(2_000_000, Some(1 << 20)).await;
    let fetcher = node(None).await;
    // A partial copy: cancelled after the first bytes.
    let (fetch, _events) = fetching(&fetcher, &seed, root).await;
    fetch.cancel();
    let _ = fetch.await;
    let err = fetcher.seed(&root, "partial").await.unwrap_err();
    assert!(
        matches!(
            err,
            NodeOpError::Read(ReadError::Incomplete(_) | ReadError::Unknown(_))
        ),
        "{err}"
    );
    assert!(fetcher.store().pins().unwrap().is_empty());
    // The seeder stops and starts seeding.
    assert!(seed.stop_seeding(&root).await.unwrap());
    assert!(seed.store().pins().unwrap().is_empty());
    seed.seed(&root, "again").await.unwrap();
    assert_eq!(seed.store().pins().unwrap()[0].name, "again");
    let unknown = crate::Hash::of(b"nothing");
    assert!(matches!(
        seed.seed(&unknown, "x").await,
        Err(NodeOpError::Read(ReadError::Unknown(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_path_keeps_content_and_identity_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("a"), b"kept").unwrap();
    let build = || {
        Node::builder()
            .store_path(dir.path().join("s"))
            .no_dht()
            .spawn()
    };
    let first = build().await.unwrap();
    let root = first.add(&[files.path().join("a")]).await.unwrap().root;
    let id = first.id();
    first.shutdown().await;
    drop(first);
    let second = build().await.unwrap();
    assert_eq!(second.id(), id);
    assert_eq!(second.store().pins().unwrap()[0].root, root);
    // The store is locked while open: a second node on it fails clearly.
    let err = build().await.unwrap_err();
    assert!(matches!(err, super::NodeError::Open(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_finds_rot_in_what_it_serves_fetches_it_again() {
    let dht = LocalDht::start(5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let build = |store: Option<std::path::PathBuf>| {
        let b = Node::builder().listen(loopback()).dht(dht.config());
        match store {
            Some(p) => b.store_path(p).spawn(),
            None => b.spawn(),
        }
    };
    let origin = build(None).await.unwrap();
    let bytes = data(9, 2_000_000);
    std::fs::write(dir.path().join("app.bin"), &bytes).unwrap();
    let root = origin
        .add(&[dir.path().join("app.bin")])
        .await
        .unwrap()
        .root;
    origin.seed(&root, "app").await.unwrap();

    // A second seeder gets a copy, then its blob file rots while it is down.
    let store = dir.path().join("mirror");
    let mirror = build(Some(store.clone())).await.unwrap();
    let fetch = FetchOptions {
        peers: vec![origin.addr().unwrap()],
        ..Default::default()
    };
    mirror.fetch(root, fetch).await.unwrap();
    let blob = mirror.store().manifest(&root).unwrap().entries()[0].hash;
    mirror.shutdown().await;
    drop(mirror);
    let hex = blob.to_hex();
    let file = store
        .join("blobs")
        .join(&hex[..2])
        .join(format!("{hex}.data"));
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 16], 1_000_000).unwrap();
    drop(f);

    let mirror = build(Some(store)).await.unwrap();
    // Serving finds the damage the first time the group goes out.
    let err = mirror
        .store()
        .encode_ranges_with(&blob, &crate::content::all(), std::io::sink(), false)
        .unwrap_err();
    assert!(matches!(err, ReadError::Corrupt(_)), "{err}");
    assert!(
        mirror
            .store()
            .blob_info(&blob)
            .unwrap()
            .unwrap()
            .partial
            .is_some()
    );
    // The node fetches what it lost from whoever announces the root.
    assert_eq!(mirror.repair().await, vec![root]);
    assert_eq!(stored(&mirror, &root), bytes);
    assert!(mirror.store().check(|_| {}).unwrap().problems.is_empty());
    assert!(mirror.repair().await.is_empty(), "repaired twice");
}

/// Fetchers of one root that start together, told of no peer, find the
/// seed and each other through the DHT (each announces its fetch and looks
/// again with backoff) and through one another's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetchers_that_start_together_find_each_other_through_the_dht() {
    let dht = LocalDht::start(5).unwrap();
    let build = |limit| {
        Node::builder()
            .listen(loopback())
            .dht(dht.config())
            .upload_limit(limit)
            .spawn()
    };
    // A slow seed: 3 MB at 1 MiB/s, so the fetch lasts long enough to
    // look again.
    let seed = build(Some(1 << 20)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(12, 3_000_000);
    std::fs::write(dir.path().join("app.bin"), &bytes).unwrap();
    let root = seed.add(&[dir.path().join("app.bin")]).await.unwrap().root;
    seed.seed(&root, "app").await.unwrap();
    let (a, b) = (build(None).await.unwrap(), build(None).await.unwrap());
    let (fa, fb) = tokio::join!(
        a.fetch(root, FetchOptions::default()),
        b.fetch(root, FetchOptions::default())
    );
    let (fa, fb) = (fa.unwrap(), fb.unwrap());
    assert_eq!(stored(&a, &root), bytes);
    assert_eq!(stored(&b, &root), bytes);
    for (f, other) in [(&fa, &b), (&fb, &a)] {
        assert!(f.connected.contains(&seed.id()), "{f:?}");
        assert!(f.connected.contains(&other.id()), "{f:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_fetches_a_root_again_from_the_peer_it_had_it_from() {
    let (seed, root, bytes, _d) = seeder(3_000_000, None).await;
    let fetcher = node(None).await;
    let opts = FetchOptions {
        peers: vec![seed.addr().unwrap()],
        ..Default::default()
    };
    fetcher.fetch(root, opts).await.unwrap();
    // Gone from its store.
    assert!(fetcher.stop_seeding(&root).await.unwrap());
    fetcher.store().gc().unwrap();
    assert!(fetcher.store().blob_info(&root).unwrap().is_none());
    // No peer given and no DHT: it remembers where the root came from.
    let again = fetcher.fetch(root, FetchOptions::default()).await.unwrap();
    assert_eq!(again.peers, vec![seed.endpoint().node_id()]);
    assert_eq!(stored(&fetcher, &root), bytes);
    // A node that never had it knows nobody.
    let stranger = node(None).await;
    let e = stranger
        .fetch(root, FetchOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::NoPeers), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_reports_when_it_connected_had_the_manifest_and_stored_data() {
    let (seed, root, bytes, _d) = seeder(1_000_000, None).await;
    let fetcher = node(None).await;
    let opts = || FetchOptions {
        peers: vec![seed.addr().unwrap()],
        ..Default::default()
    };
    let got = fetcher.fetch(root, opts()).await.unwrap();
    assert_eq!(stored(&fetcher, &root), bytes);
    let t = got.timings;
    // No DHT here; each stage after the one before it.
    assert_eq!(t.dht_peer, None);
    let (source, manifest, first) = (
        t.source.unwrap(),
        t.manifest.unwrap(),
        t.first_data.unwrap(),
    );
    assert!(source <= manifest && manifest <= first, "{t:?}");
    // Everything stored already: no data to wait for.
    let again = fetcher.fetch(root, opts()).await.unwrap();
    assert!(again.timings.manifest.is_some());
    assert_eq!(again.timings.first_data, None, "{:?}", again.timings);
}

/// A release of one file published by `key` in `publisher`'s store.
fn published(
    publisher: &Node,
    key: &SecretKey,
    version: &str,
    seed: u64,
    dir: &std::path::Path,
) -> crate::release::SignedRelease {
    let path = dir.join(format!("app-{version}.bin"));
    std::fs::write(&path, data(seed, 200_000)).unwrap();
    let opts = PublishOptions::new("app", version.parse().unwrap());
    publisher
        .store()
        .publish(key, &[path], &opts)
        .unwrap()
        .release
}

#[tokio::test]
async fn following_fetches_each_entry_retries_what_fails_and_takes_a_reloaded_list() {
    use super::{Follow, FollowEvent};
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&[4; 32]);
    let publisher = node(None).await;
    let v1 = published(&publisher, &key, "1.0.0", 1, dir.path());
    let v2 = published(&publisher, &key, "1.1.0", 2, dir.path());
    let follower = node(None).await;
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<FollowEvent>::new()));
    let seen = events.clone();
    let follow = Follow {
        entries: vec![v1.to_token(), "swr1not-a-token".into()],
        peers: vec![publisher.addr().unwrap()],
        trust: vec![key.public()],
        ..Follow::default()
    };
    let following = follower.follow(
        follow.clone(),
        std::sync::Arc::new(move |e| seen.lock().unwrap().push(e.clone())),
    );
    let pinned = |n: &Node, r: &crate::Hash| n.store().pins().unwrap().iter().any(|p| p.root == *r);
    let until = |what: &str, done: &dyn Fn() -> bool| {
        assert!(
            (0..500).any(|_| done() || {
                std::thread::sleep(Duration::from_millis(10));
                false
            }),
            "{what} did not happen"
        );
    };
    // Polled from a blocking thread: the loop runs on the runtime.
    let (f2, r1) = (follower.clone(), v1.release().root);
    tokio::task::spawn_blocking(move || until("the first fetch", &|| pinned(&f2, &r1)))
        .await
        .unwrap();
    assert_eq!(stored(&follower, &r1), stored(&publisher, &r1));
    let status = following.status();
    assert_eq!(status.len(), 2);
    assert!(status[0].serving && status[0].error.is_none(), "{status:?}");
    assert_eq!(status[0].root, Some(r1));
    // The bad entry: refused, and tried again in 30 s, not at once.
    let bad = &status[1];
    assert!(!bad.serving && bad.failures == 1, "{bad:?}");
    assert!(
        bad.error.as_deref().is_some_and(|e| !e.is_empty()),
        "{bad:?}"
    );
    let wait = bad
        .next_attempt
        .unwrap()
        .duration_since(std::time::SystemTime::now());
    assert!(wait.is_ok_and(|w| w > Duration::from_secs(20)), "{bad:?}");
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        FollowEvent::Failed { retry_in, .. } if *retry_in == super::FIRST_RETRY
    )));

    // Reloaded with v2 instead: fetched at once, v1 stays pinned.
    following.reload(Follow {
        entries: vec![v2.to_token()],
        ..follow
    });
    let (f2, r2) = (follower.clone(), v2.release().root);
    tokio::task::spawn_blocking(move || until("the reloaded fetch", &|| pinned(&f2, &r2)))
        .await
        .unwrap();
    let status = following.status();
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(status[0].serving);
    assert!(pinned(&follower, &r1));
    // Back to v1, which is stored already: served as it is, not fetched
    // again (and not checked against v2 as a rollback: it is not new).
    following.reload(Follow {
        entries: vec![v1.to_token()],
        ..Follow {
            peers: vec![publisher.addr().unwrap()],
            trust: vec![key.public()],
            ..Follow::default()
        }
    });
    let f = std::sync::Arc::new(following);
    let f2 = f.clone();
    tokio::task::spawn_blocking(move || {
        until("v1 looked at again", &|| {
            f2.status().first().is_some_and(|s| s.root.is_some())
        })
    })
    .await
    .unwrap();
    assert!(f.status()[0].serving, "{:?}", f.status());
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, FollowEvent::Stored { .. }))
    );
}

#[tokio::test]
async fn a_seed_being_fetched_shows_its_progress_in_the_follow_status() {
    use super::Follow;
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(&[5; 32]);
    // Capped: 2 MB at 256 KiB/s takes about 8 s.
    let publisher = node(Some(256 << 10)).await;
    let path = dir.path().join("big.bin");
    std::fs::write(&path, data(9, 2_000_000)).unwrap();
    let opts = PublishOptions::new("app", "2.0.0".parse().unwrap());
    let release = publisher
        .store()
        .publish(&key, &[path], &opts)
        .unwrap()
        .release;
    let follower = node(None).await;
    let following = follower.follow(
        Follow {
            entries: vec![release.to_token()],
            peers: vec![publisher.addr().unwrap()],
            trust: vec![key.public()],
            ..Follow::default()
        },
        std::sync::Arc::new(|_| {}),
    );
    let mut seen = None;
    for _ in 0..300 {
        if let Some(f) = following.status()[0]
            .fetching
            .clone()
            .filter(|f| f.total > 0 && f.have > 0)
        {
            seen = Some(f);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let f = seen.expect("the fetch shows in the status while it runs");
    assert_eq!(f.total, 2_000_000, "{f:?}");
    assert!(f.have < f.total, "{f:?}");
    let s = &following.status()[0];
    assert_eq!(s.root, Some(release.release().root));
    assert!(s.next_attempt.is_none() && !s.serving, "{s:?}");
    // It is one of the node's fetches, labelled with its entry, and an
    // operator pauses, resumes and cancels it by its number.
    let listed = follower.fetches();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, f.id);
    assert_eq!(
        listed[0].label.as_deref(),
        Some(release.to_token().as_str())
    );
    assert!(follower.pause_fetch(f.id).is_some_and(|f| f.paused));
    let paused = following.status()[0]
        .fetching
        .clone()
        .expect("still running");
    assert!(paused.paused, "{paused:?}");
    assert!(follower.resume_fetch(f.id).is_some_and(|f| !f.paused));
    assert!(follower.pause_fetch(f.id + 1).is_none());
    assert!(follower.cancel_fetch(f.id).is_some_and(|f| f.cancelled));
    // Cancelled, the entry failed: tried again after the first backoff.
    let mut failed = None;
    for _ in 0..500 {
        let s = following.status()[0].clone();
        if s.failures > 0 {
            failed = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = failed.expect("the cancelled fetch ends the attempt");
    assert!(s.fetching.is_none() && !s.serving, "{s:?}");
    assert!(
        s.error.as_deref().is_some_and(|e| e.contains("cancel")),
        "{s:?}"
    );
    let next = s.next_attempt.expect("a next attempt");
    let wait = next
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait > Duration::from_secs(20) && wait <= super::FIRST_RETRY,
        "{wait:?}"
    );
    assert!(follower.fetches().is_empty());
}
