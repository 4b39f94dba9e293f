//! Discovery against a real DHT on 127.0.0.1 (`mainline::Testnet`).

use std::time::Duration;

use super::*;
use crate::release::Release;

fn local_dht() -> (LocalDht, DhtConfig) {
    let testnet = LocalDht::start(10).expect("local testnet");
    let config = testnet.config();
    (testnet, config)
}

#[test]
fn derived_keys_are_domain_separated_not_truncations() {
    let root = Hash::of(b"some root");
    assert_ne!(&info_hash(&root)[..], &root.as_bytes()[..20]);
    assert_ne!(info_hash(&root), info_hash(&Hash::of(b"another")));
    assert_ne!(pointer_salt("app", "stable"), pointer_salt("app", "beta"));
    assert_ne!(pointer_salt("ab", "c"), pointer_salt("a", "bc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_seeder_is_found() {
    let (_testnet, config) = local_dht();
    let seeder = Dht::spawn(&config).unwrap();
    let finder = Dht::spawn(&config).unwrap();
    assert!(seeder.bootstrapped().await && finder.bootstrapped().await);
    let root = Hash::of(b"release root");
    seeder.announce(&root, 7411).await.unwrap();
    let peers = finder.find_peers(&root, Duration::from_secs(5)).await;
    assert!(
        peers
            .iter()
            .any(|p| p.port() == 7411 && p.ip().is_loopback()),
        "{peers:?}"
    );
    // Nobody announced this one.
    let none = finder
        .find_peers(&Hash::of(b"nobody has it"), Duration::from_secs(2))
        .await;
    assert!(none.is_empty(), "{none:?}");
}

fn signed(key: &SecretKey, seq: u64, root: &[u8]) -> SignedRelease {
    Release {
        publisher: key.public(),
        name: "app".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, seq, 0),
        seq,
        root: Hash::of(root),
        size: 10,
        created: 1_800_000_000,
        expires: None,
        rollout: Default::default(),
    }
    .sign(key)
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_release_pointer_is_resolved() {
    let (_testnet, config) = local_dht();
    let publisher = Dht::spawn(&config).unwrap();
    let reader = Dht::spawn(&config).unwrap();
    let key = SecretKey::from_seed(&[4; 32]);
    publisher
        .put_release(&signed(&key, 1, b"v1"), &key)
        .await
        .unwrap();
    let got = reader
        .resolve(&key.public(), "app", "stable")
        .await
        .unwrap();
    assert_eq!(got.release().seq, 1);
    publisher
        .put_release(&signed(&key, 2, b"v2"), &key)
        .await
        .unwrap();
    let got = reader
        .resolve(&key.public(), "app", "stable")
        .await
        .unwrap();
    assert_eq!(got.release().seq, 2);
    assert_eq!(got.release().root, Hash::of(b"v2"));
    // Replaying an older pointer is refused by the put, and resolve still
    // returns the newest.
    assert!(matches!(
        publisher.put_release(&signed(&key, 1, b"v1"), &key).await,
        Err(DhtError::Stale(2))
    ));
    assert_eq!(
        reader
            .resolve(&key.public(), "app", "stable")
            .await
            .unwrap()
            .release()
            .seq,
        2
    );
    // Other channels and names are separate pointers.
    assert!(reader.resolve(&key.public(), "app", "beta").await.is_none());
    assert!(
        reader
            .resolve(&key.public(), "other", "stable")
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_with_no_peers_finds_the_seeder_through_the_dht() {
    use crate::net::EndpointConfig;
    use crate::node::{FetchOptions, Node};
    use crate::store::{AddOptions, Store};

    let (_testnet, config) = local_dht();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, crate::testutil::data(3, 300_000)).unwrap();
    let seed_store = Store::memory().unwrap();
    let root = seed_store
        .add_paths(&[file], &AddOptions::default())
        .unwrap()
        .root;
    let loopback = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
    let seeder = Node::spawn(seed_store, loopback.clone())
        .await
        .unwrap()
        .with_dht(Dht::spawn(&config).unwrap());
    assert_eq!(seeder.announce().await.unwrap(), 1);

    let fetcher = Node::spawn(Store::memory().unwrap(), loopback)
        .await
        .unwrap()
        .with_dht(Dht::spawn(&config).unwrap());
    let got = fetcher.fetch(root, FetchOptions::default()).await.unwrap();
    assert_eq!(got.peers, vec![seeder.endpoint().node_id()]);
    assert!(fetcher.store().check(|_| {}).unwrap().problems.is_empty());

    // Without the DHT and without peers there is nobody to ask.
    let alone = Node::spawn(Store::memory().unwrap(), EndpointConfig::default())
        .await
        .unwrap();
    let err = alone
        .fetch(root, FetchOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DHT is not in use"), "{err}");
    // With the DHT, a root nobody announced: it says the DHT found nobody.
    let err = fetcher
        .fetch(
            crate::Hash::of(b"announced by nobody"),
            FetchOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, crate::node::FetchError::NoneFound), "{err}");
    assert!(
        err.to_string().contains("none was found on the DHT"),
        "{err}"
    );
}
