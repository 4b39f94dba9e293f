//! Super-seeding over real QUIC on 127.0.0.1 (wire.md §7).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::tests::{client, quick};
use super::*;
use crate::content::{self, Hash};
use crate::node::{FetchOptions, Node};
use crate::store::{GroupSet, Store};
use crate::testutil::data;

/// 8 MiB: 512 groups, 32 pieces of 16 groups under the default layout.
const SIZE: usize = 8 << 20;

async fn super_seeder(bytes: &[u8]) -> (Endpoint, Hash) {
    let ep = Endpoint::bind(
        Store::memory().unwrap(),
        SecretKey::generate().unwrap(),
        quick().super_seed(true),
    )
    .await
    .unwrap();
    let hash = ep.store().put_blob(bytes).unwrap();
    (ep, hash)
}

fn to(ep: &Endpoint) -> PeerAddr {
    PeerAddr {
        id: Some(ep.node_id()),
        addr: ep.local_addr().unwrap(),
    }
}

fn groups(have: &crate::wire::Have) -> GroupSet {
    have.groups.to_groups(have.size)
}

fn overlap(a: &GroupSet, b: &GroupSet) -> bool {
    a.ranges()
        .iter()
        .any(|&(x, y)| (x..y).any(|g| b.contains(g)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_asker_is_told_of_different_pieces_and_none_once_every_piece_is_out() {
    let bytes = data(3, SIZE);
    let (seed, hash) = super_seeder(&bytes).await;
    let all = content::group_count(SIZE as u64);
    let mut told = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let c = client().await;
        let peer = c.connect(&to(&seed)).await.unwrap();
        let have = peer.ask(hash).await.unwrap().expect("a Have");
        assert_eq!(have.size, SIZE as u64);
        let g = groups(&have);
        assert!(!g.is_empty(), "nothing offered");
        assert!(g.count() < all, "a super-seed announced the whole blob");
        // Whole pieces of 16 groups.
        assert!(
            g.ranges()
                .iter()
                .all(|&(a, b)| a % 16 == 0 && (b % 16 == 0 || b == all))
        );
        told.push(g);
        peers.push((c, peer));
    }
    for i in 0..told.len() {
        for j in i + 1..told.len() {
            assert!(
                !overlap(&told[i], &told[j]),
                "askers {i} and {j} were offered the same piece"
            );
        }
    }
    // One of them takes the whole blob anyway (a request for what was not
    // offered is served all the same): every piece has left the seed, so a
    // newcomer is offered nothing, to take it from those that hold it.
    let got = peers[0].1.get_bytes(hash, 1 << 30).await.unwrap();
    assert_eq!(got, bytes);
    // The seed counts a piece as served once its response is written.
    let ss = seed.inner.ctx.superseeds.clone().expect("super-seeding");
    for _ in 0..200 {
        if ss.pieces_out(&hash) == 32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ss.pieces_out(&hash), 32);
    let late = client().await;
    // `NotFound` (a `Have` lists at least one range), and the ask stands
    // as a subscription to later offers.
    let have = late
        .connect(&to(&seed))
        .await
        .unwrap()
        .ask(hash)
        .await
        .unwrap();
    assert_eq!(have, None, "offered pieces after every piece was out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_of_one_piece_is_announced_whole() {
    let bytes = data(4, 100_000);
    let (seed, hash) = super_seeder(&bytes).await;
    assert_eq!(
        told(&seed, hash).await.count(),
        content::group_count(100_000)
    );
}

async fn node(super_seed: bool, upload_limit: Option<u64>) -> Node {
    Node::builder()
        .listen(([127, 0, 0, 1], 0).into())
        .no_dht()
        .super_seed(super_seed)
        .upload_limit(upload_limit)
        .spawn()
        .await
        .unwrap()
}

/// A super-seeding node and a release of one 8 MiB file.
async fn seeding(upload_limit: Option<u64>) -> (Node, Hash, Vec<u8>, tempfile::TempDir) {
    let seed = node(true, upload_limit).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(5, SIZE);
    std::fs::write(dir.path().join("file.bin"), &bytes).unwrap();
    let root = seed.add(&[dir.path().join("file.bin")]).await.unwrap().root;
    (seed, root, bytes, dir)
}

fn stored(node: &Node, root: &Hash) -> Vec<u8> {
    let m = node.store().manifest(root).unwrap();
    node.store()
        .read_blob(&m.entries()[0].hash, 1 << 30)
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_fetcher_of_a_super_seed_is_not_held_back() {
    let (seed, root, bytes, _dir) = seeding(None).await;
    let fetcher = node(false, None).await;
    let opts = FetchOptions {
        peers: vec![seed.addr().unwrap()],
        ..Default::default()
    };
    // Held back for lack of a `Have` from a second peer, 32 pieces two at a
    // time would take 48 s (3 s each); this test's runner would notice.
    tokio::time::timeout(Duration::from_secs(30), fetcher.fetch(root, opts))
        .await
        .expect("a lone fetcher was held back")
        .unwrap();
    assert_eq!(stored(&fetcher, &root), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_fetchers_of_a_super_seed_complete_and_it_sends_about_one_copy() {
    // Slow enough that all three are fetching before it could send one
    // copy (8 MiB in 4 s), and that the fetchers pass pieces on faster
    // than it sends them even when the test runner loads both cores (at
    // 4 MiB/s it sent 1.70 copies once under a full `cargo test`).
    let (seed, root, bytes, _dir) = seeding(Some(2 << 20)).await;
    let fetchers = [
        node(false, None).await,
        node(false, None).await,
        node(false, None).await,
    ];
    let opts = FetchOptions {
        peers: vec![seed.addr().unwrap()],
        ..Default::default()
    };
    // Spawned on creation: the three run together.
    let runs: Vec<_> = fetchers
        .iter()
        .map(|f| f.fetch(root, opts.clone()))
        .collect();
    for r in runs {
        r.await.unwrap();
    }
    for f in &fetchers {
        assert_eq!(stored(f, &root), bytes);
    }
    let sent = seed.endpoint().stats().bytes_sent.load(Ordering::Relaxed) as f64;
    let copies = sent / SIZE as f64;
    // 1.005 copies here; an ordinary seed under the same cap sent 1.60.
    assert!(copies < 1.3, "the super-seed sent {copies:.2} copies");
}

/// What a fresh client is told when it asks `ep` about `hash`: the groups.
async fn told(ep: &Endpoint, hash: Hash) -> GroupSet {
    let c = client().await;
    let have = c.connect(&to(ep)).await.unwrap().ask(hash).await.unwrap();
    have.map(|h| groups(&h)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_node_super_seeds_only_what_it_did_not_fetch_and_only_when_capped() {
    let bytes = data(6, SIZE);
    let all = content::group_count(SIZE as u64);
    let bind = |config: EndpointConfig| async {
        let ep = Endpoint::bind(
            Store::memory().unwrap(),
            SecretKey::generate().unwrap(),
            config,
        )
        .await
        .unwrap();
        let hash = ep.store().put_blob(&bytes).unwrap();
        (ep, hash)
    };
    assert_eq!(quick().super_seed, SuperSeedMode::Auto);
    // Capped: its upload is what fetchers wait for, so it super-seeds.
    let (capped, hash) = bind(quick().upload_limit(Some(1 << 30))).await;
    let g = told(&capped, hash).await;
    assert!(
        !g.is_empty() && g.count() < all,
        "{} of {all} groups",
        g.count()
    );
    // Uncapped, or told not to: the whole blob.
    let (uncapped, hash) = bind(quick()).await;
    assert_eq!(told(&uncapped, hash).await.count(), all);
    let (off, hash) = bind(quick().upload_limit(Some(1 << 30)).super_seed(false)).await;
    assert_eq!(told(&off, hash).await.count(), all);

    // A capped node that fetched a release is not its first source: it
    // announces the blob whole.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.bin"), &bytes).unwrap();
    let origin = node(false, None).await;
    let root = origin
        .add(&[dir.path().join("file.bin")])
        .await
        .unwrap()
        .root;
    let follower = Node::builder()
        .listen(([127, 0, 0, 1], 0).into())
        .no_dht()
        .upload_limit(Some(1 << 30))
        .spawn()
        .await
        .unwrap();
    let opts = FetchOptions {
        peers: vec![origin.addr().unwrap()],
        ..Default::default()
    };
    follower.fetch(root, opts).await.unwrap();
    assert_eq!(stored(&follower, &root), bytes);
    let file = follower.store().manifest(&root).unwrap().entries()[0].hash;
    assert_eq!(told(follower.endpoint(), file).await.count(), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_asker_is_offered_more_pieces_at_a_time_after_a_moment() {
    let bytes = data(7, SIZE);
    let (seed, hash) = super_seeder(&bytes).await;
    let window = crate::swarm::SuperSeedConfig::default().alone_offers as u64 * 16;
    let c = client().await;
    let mut watch = c.watch_haves(vec![hash]);
    let first = c
        .connect(&to(&seed))
        .await
        .unwrap()
        .ask(hash)
        .await
        .unwrap()
        .expect("an offer");
    // Two pieces of 16 groups at first: another fetcher may turn up.
    let mut held = groups(&first);
    assert_eq!(held.count(), 32);
    // Alone for a moment, it is offered `alone_offers` pieces, as `Have`s
    // on its control stream, without taking any of them.
    let rest = async {
        while held.count() < window {
            let (from, have) = watch.rx.recv().await.expect("the watch ended");
            assert_eq!(from, seed.node_id());
            for &(a, b) in groups(&have).ranges() {
                held.insert(a, b);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), rest)
        .await
        .expect("a lone asker was held to two pieces");
    // And no more than that while it takes none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok((_, have)) = watch.rx.try_recv() {
        for &(a, b) in groups(&have).ranges() {
            held.insert(a, b);
        }
    }
    assert_eq!(held.count(), window);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asker_asking_again_is_told_again_of_what_it_was_offered() {
    let bytes = data(8, SIZE);
    let (seed, hash) = super_seeder(&bytes).await;
    let (a, b) = (client().await, client().await);
    let (pa, pb) = (
        a.connect(&to(&seed)).await.unwrap(),
        b.connect(&to(&seed)).await.unwrap(),
    );
    let first = groups(&pa.ask(hash).await.unwrap().expect("an offer"));
    pb.ask(hash).await.unwrap().expect("an offer");
    // A second fetch asks again: it hears of its offers again, not
    // `NotFound` for want of new ones.
    let again = groups(&pa.ask(hash).await.unwrap().expect("told again"));
    assert!(
        first
            .ranges()
            .iter()
            .all(|&(x, y)| again.covers_range(x, y)),
        "{first:?} then {again:?}"
    );
}
