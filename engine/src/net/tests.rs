//! Nodes talking over real QUIC on 127.0.0.1, honest and hostile.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::content::{self, Hash};
use crate::node::{FetchError, FetchOptions, Node};
use crate::store::{AddOptions, ExportOptions, MemBackend, Store, StoreConfig};

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn quick() -> EndpointConfig {
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

pub(crate) fn data(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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
        .add_paths(&[rel.path.clone()], &AddOptions::default())
        .unwrap()
        .root;
    (Node::spawn(store, quick()).await.unwrap(), root)
}

fn addr_of(n: &Node) -> PeerAddr {
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
                progress: None,
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
                progress: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(again.received, 0);
}
