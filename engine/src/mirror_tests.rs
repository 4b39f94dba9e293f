//! Fetching from HTTP(S) mirrors on real servers: a hyper server on
//! 127.0.0.1 with real Range semantics (swarm-testkit), made to misbehave
//! one way per test, beside real QUIC peers and redb-free memory stores.
//! Every test checks the bytes that end up stored, not only the outcome.

use std::sync::Arc;
use std::time::Duration;

use swarm_testkit::http::{Asked, Fault, Options, Server};

use crate::Hash;
use crate::mirror::MirrorUrl;
use crate::node::{FetchError, FetchOptions, Fetched, Node};
use crate::store::{mirror_blob_path, mirror_outboard_path};
use crate::testutil::data;

/// A seed node holding `big.bin` (`n` bytes) and `small.txt`, and the
/// mirror of that root written into a directory.
struct Setup {
    seed: Node,
    root: Hash,
    big: Hash,
    bytes: Vec<u8>,
    www: tempfile::TempDir,
    _src: tempfile::TempDir,
}

impl Setup {
    async fn new(n: usize, upload: Option<u64>) -> Self {
        let seed = node(upload).await;
        let src = tempfile::tempdir().unwrap();
        let dir = src.path().join("rel");
        std::fs::create_dir(&dir).unwrap();
        let bytes = data(11, n);
        std::fs::write(dir.join("big.bin"), &bytes).unwrap();
        std::fs::write(dir.join("small.txt"), b"a small file\n").unwrap();
        let root = seed.add(&[dir]).await.unwrap().root;
        let www = tempfile::tempdir().unwrap();
        seed.store()
            .write_mirror(&root, www.path(), &Default::default())
            .unwrap();
        let m = seed.store().manifest(&root).unwrap();
        let big = m
            .entries()
            .iter()
            .find(|e| e.size == n as u64)
            .unwrap()
            .hash;
        Self {
            seed,
            root,
            big,
            bytes,
            www,
            _src: src,
        }
    }

    /// A server of the mirror that misbehaves as `fault` says.
    async fn serve(
        &self,
        fault: impl Fn(&Asked) -> Option<Fault> + Send + Sync + 'static,
    ) -> Server {
        self.serve_with(Options {
            fault: Some(Arc::new(fault)),
            ..Default::default()
        })
        .await
    }

    async fn serve_with(&self, opts: Options) -> Server {
        Server::start(self.www.path(), opts).await.unwrap()
    }

    /// A fault that serves the big file with one byte wrong in every group,
    /// so that whatever range a liar is asked for fails.
    fn lies(&self) -> impl Fn(&Asked) -> Option<Fault> + Send + Sync + 'static {
        let path = self.big_path();
        let mut wrong = self.bytes.clone();
        for i in (100..wrong.len()).step_by(16 << 10) {
            wrong[i] ^= 0x80;
        }
        move |a| (a.path == path).then(|| Fault::Replace(wrong.clone()))
    }

    fn big_path(&self) -> String {
        mirror_blob_path(&self.big)
    }

    fn outboard_path(&self) -> String {
        mirror_outboard_path(&self.big)
    }

    /// The big file as the fetcher stored it, if complete.
    fn stored(&self, fetcher: &Node) -> Option<Vec<u8>> {
        fetcher.store().read_blob(&self.big, 1 << 30).ok().flatten()
    }
}

fn loopback() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

async fn node(upload: Option<u64>) -> Node {
    Node::builder()
        .listen(loopback())
        .no_dht()
        .upload_limit(upload)
        .spawn()
        .await
        .unwrap()
}

fn urls(servers: &[&Server]) -> Vec<MirrorUrl> {
    servers.iter().map(|s| s.url().parse().unwrap()).collect()
}

async fn fetch_from(
    fetcher: &Node,
    root: Hash,
    mirrors: Vec<MirrorUrl>,
    peers: Vec<crate::net::PeerAddr>,
) -> Result<Fetched, FetchError> {
    fetcher
        .fetch(
            root,
            FetchOptions {
                mirrors,
                peers,
                stall_timeout: Duration::from_secs(3),
                ..Default::default()
            },
        )
        .await
}

/// The message of a fetch that failed.
fn failed(r: Result<Fetched, FetchError>) -> String {
    match r {
        Ok(_) => panic!("the fetch should have failed"),
        Err(e) => crate::error_chain(&e),
    }
}

fn no_fault(_: &Asked) -> Option<Fault> {
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_alone_delivers_identical_bytes_with_range_requests() {
    let s = Setup::new(3_000_000, None).await;
    let server = s.serve(no_fault).await;
    let fetcher = node(None).await;
    let got = fetch_from(&fetcher, s.root, urls(&[&server]), vec![])
        .await
        .unwrap();
    assert_eq!(s.stored(&fetcher).as_deref(), Some(&s.bytes[..]));
    assert!(got.peers.is_empty());
    assert_eq!(got.mirrors.len(), 1);
    assert_eq!(got.mirrors[0].url.as_str(), server.url());
    // Every new byte of the files came from it.
    assert_eq!(got.mirrors[0].bytes, 3_000_000 + 13);
    // The index, the manifest, the outboard, the small file and ranges of
    // the big one: several of them.
    assert!(server.requests() > 5, "{} requests", server.requests());
    // Nothing more than the data, its outboard and the small files.
    let outboard = crate::content::outboard_size(3_000_000);
    assert!(server.bytes_sent() <= 3_000_000 + outboard + 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_mirror_works_with_its_ca_and_is_refused_without() {
    let s = Setup::new(500_000, None).await;
    let server = s
        .serve_with(Options {
            tls: true,
            ..Default::default()
        })
        .await;
    assert!(server.url().starts_with("https://"));
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&server]), vec![]).await);
    assert!(err.contains(&server.url()), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(s.stored(&fetcher).is_none());

    let got = fetcher
        .fetch(
            s.root,
            FetchOptions {
                mirrors: urls(&[&server]),
                mirror_roots: vec![server.ca_der().unwrap().to_vec()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got.mirrors.len(), 1);
    assert_eq!(s.stored(&fetcher).as_deref(), Some(&s.bytes[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_mirror_is_caught_dropped_and_the_others_finish() {
    let s = Setup::new(3_000_000, None).await;
    let liar = s.serve(s.lies()).await;
    let honest = s.serve(no_fault).await;
    let fetcher = node(None).await;
    let got = fetch_from(&fetcher, s.root, urls(&[&liar, &honest]), vec![])
        .await
        .unwrap();
    assert_eq!(s.stored(&fetcher).as_deref(), Some(&s.bytes[..]));
    assert_eq!(got.mirror_failures.len(), 1, "{:?}", got.mirror_failures);
    let msg = got.mirror_failures[0].to_string();
    assert!(msg.contains(&liar.url()), "{msg}");
    assert!(msg.contains("does not verify"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_mirror_alone_stores_nothing_unverified() {
    let s = Setup::new(3_000_000, None).await;
    let path = s.big_path();
    let liar = s
        .serve(move |a| (a.path == path).then_some(Fault::FlipByte(2_500_000)))
        .await;
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&liar]), vec![]).await);
    assert!(
        err.contains("does not verify") && err.contains(&liar.url()),
        "{err}"
    );
    // What it stored is only what verified: a fetch from an honest mirror
    // completes it, and the bytes are the original ones.
    let honest = s.serve(no_fault).await;
    fetch_from(&fetcher, s.root, urls(&[&honest]), vec![])
        .await
        .unwrap();
    assert_eq!(s.stored(&fetcher).as_deref(), Some(&s.bytes[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_outboard_is_caught_by_the_nodes_it_fails() {
    let s = Setup::new(2_000_000, None).await;
    let mut ob = std::fs::read(s.www.path().join(s.outboard_path())).unwrap();
    // The last node is the root's.
    let last = ob.len() - 10;
    ob[last] ^= 1;
    let path = s.outboard_path();
    let bad = s
        .serve(move |a| (a.path == path).then(|| Fault::Replace(ob.clone())))
        .await;
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&bad]), vec![]).await);
    assert!(
        err.contains("does not verify") && err.contains(&bad.url()),
        "{err}"
    );
    assert!(s.stored(&fetcher).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outboard_of_the_wrong_length_drops_the_mirror() {
    let s = Setup::new(2_000_000, None).await;
    let ob = std::fs::read(s.www.path().join(s.outboard_path())).unwrap();
    let path = s.outboard_path();
    let short = ob[..ob.len() - 64].to_vec();
    let bad = s
        .serve(move |a| (a.path == path).then(|| Fault::Replace(short.clone())))
        .await;
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&bad]), vec![]).await);
    assert!(
        err.contains("the outboard of") && err.contains(&bad.url()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_refused_before_reading() {
    let s = Setup::new(1_000_000, None).await;
    let path = s.big_path();
    let bad = s
        .serve(move |a| (a.path == path).then_some(Fault::HugeLength))
        .await;
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&bad]), vec![]).await);
    assert!(err.contains("declared 1125899906842624 bytes"), "{err}");
    assert!(err.contains(&bad.url()), "{err}");
    assert!(s.stored(&fetcher).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_range_is_dropped_with_a_clear_message() {
    let s = Setup::new(3_000_000, None).await;
    let path = s.big_path();
    let whole = s
        .serve(move |a| (a.path == path).then_some(Fault::IgnoreRange))
        .await;
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&whole]), vec![]).await);
    assert!(err.contains("ignores Range requests"), "{err}");
    assert!(err.contains(&whole.url()), "{err}");
    // With an honest mirror beside it, the fetch completes.
    let honest = s.serve(no_fault).await;
    let got = fetch_from(&fetcher, s.root, urls(&[&whole, &honest]), vec![])
        .await
        .unwrap();
    assert_eq!(s.stored(&fetcher).as_deref(), Some(&s.bytes[..]));
    assert!(
        got.mirror_failures
            .iter()
            .any(|f| f.url.starts_with(&whole.url()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_content_range_is_refused() {
    let s = Setup::new(1_000_000, None).await;
    let path = s.big_path();
    let bad = s
        .serve(move |a| (a.path == path).then_some(Fault::WrongContentRange))
        .await;
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&bad]), vec![]).await);
    assert!(err.contains("with Content-Range"), "{err}");
    assert!(err.contains(&bad.url()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_is_refused_naming_the_url() {
    let s = Setup::new(1_000_000, None).await;
    let path = s.big_path();
    let bad = s
        .serve(move |a| (a.path == path).then(|| Fault::Redirect(a.path.clone())))
        .await;
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&bad]), vec![]).await);
    assert!(err.contains("too many redirects"), "{err}");
    assert!(err.contains(&bad.url()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_truncated_bodies_are_strikes_and_the_others_finish() {
    let s = Setup::new(3_000_000, None).await;
    let path = s.big_path();
    let stalls = s
        .serve(move |a| (a.path == path).then_some(Fault::Stall(20_000)))
        .await;
    let path = s.big_path();
    let cuts = s
        .serve(move |a| (a.path == path).then_some(Fault::Truncate(20_000)))
        .await;
    let honest = s.serve(no_fault).await;
    let fetcher = node(None).await;
    let got = fetch_from(&fetcher, s.root, urls(&[&stalls, &cuts, &honest]), vec![])
        .await
        .unwrap();
    assert_eq!(s.stored(&fetcher).as_deref(), Some(&s.bytes[..]));
    // The big file came from the honest one (the others may have sent
    // the small one).
    let big: Vec<_> = got
        .mirrors
        .iter()
        .filter(|m| m.bytes >= 3_000_000)
        .collect();
    assert_eq!(big.len(), 1, "{:?}", got.mirrors);
    assert_eq!(big[0].url.as_str(), honest.url());

    // Alone, each fails and says why.
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&stalls]), vec![]).await);
    assert!(
        err.contains(&stalls.url()) && err.contains("timed out"),
        "{err}"
    );
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&cuts]), vec![]).await);
    assert!(err.contains(&cuts.url()) && err.contains("body"), "{err}");
    assert!(s.stored(&fetcher).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_short_files_and_server_errors() {
    let s = Setup::new(2_000_000, None).await;
    let path = s.big_path();
    let lacks = s
        .serve(move |a| (a.path == path).then_some(Fault::Status(404)))
        .await;
    let path = s.big_path();
    let short = s.bytes[..1_000_000].to_vec();
    let shorter = s
        .serve(move |a| (a.path == path).then(|| Fault::Replace(short.clone())))
        .await;
    let path = s.big_path();
    let broken = s
        .serve(move |a| (a.path == path).then_some(Fault::Status(500)))
        .await;
    let fetcher = node(None).await;
    // None of them has the big file: the fetch waits for a source, then
    // gives up, keeping what it has (the small file).
    let err =
        failed(fetch_from(&fetcher, s.root, urls(&[&lacks, &shorter, &broken]), vec![]).await);
    assert!(
        err.contains("none of the") || err.contains("every source failed"),
        "{err}"
    );
    assert!(s.stored(&fetcher).is_none());
    // The server that fails was dropped and named.
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&broken]), vec![]).await);
    assert!(
        err.contains("answered 500") && err.contains(&broken.url()),
        "{err}"
    );
    // With an honest mirror the fetch completes; lacking a file is not a
    // failure.
    let honest = s.serve(no_fault).await;
    let got = fetch_from(&fetcher, s.root, urls(&[&lacks, &shorter, &honest]), vec![])
        .await
        .unwrap();
    assert_eq!(s.stored(&fetcher).as_deref(), Some(&s.bytes[..]));
    assert!(got.mirror_failures.is_empty(), "{:?}", got.mirror_failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_a_mirror_and_another_layout_are_refused() {
    let s = Setup::new(100_000, None).await;
    let none = s
        .serve(|a| (a.path == "swarm-mirror").then_some(Fault::Status(404)))
        .await;
    let v2 = s
        .serve(|a| (a.path == "swarm-mirror").then(|| Fault::Replace(b"swarm-mirror 2\n".to_vec())))
        .await;
    let fetcher = node(None).await;
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&none]), vec![]).await);
    assert!(
        err.contains("not a swarm mirror") && err.contains(&none.url()),
        "{err}"
    );
    let err = failed(fetch_from(&fetcher, s.root, urls(&[&v2]), vec![]).await);
    assert!(
        err.contains("layout version 2") && err.contains("version 1"),
        "{err}"
    );
    assert!(err.contains(&v2.url()), "{err}");
    // Only the index was read.
    assert_eq!(v2.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_and_peers_add_up_and_a_liar_among_them_is_dropped() {
    // Both capped, so that each delivers part of it.
    let rate = 3 << 20;
    let s = Setup::new(6_000_000, Some(rate)).await;
    let mirror = s
        .serve_with(Options {
            rate: Some(rate),
            ..Default::default()
        })
        .await;
    let liar = s.serve(s.lies()).await;
    let fetcher = node(None).await;
    let got = fetch_from(
        &fetcher,
        s.root,
        urls(&[&mirror, &liar]),
        vec![s.seed.addr().unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(s.stored(&fetcher).as_deref(), Some(&s.bytes[..]));
    let from_peer: u64 = got.sources.iter().map(|p| p.bytes).sum();
    let from_mirrors: u64 = got.mirrors.iter().map(|m| m.bytes).sum();
    assert!(from_peer > 0 && from_mirrors > 0, "{got:?}");
    // Each new byte is credited once, to whoever delivered it first.
    assert_eq!(from_peer + from_mirrors, 6_000_000 + 13);
    assert_eq!(got.peers, vec![s.seed.id()]);
    // The liar is caught and dropped, and delivered nothing.
    assert_eq!(got.mirror_failures.len(), 1, "{:?}", got.mirror_failures);
    let msg = got.mirror_failures[0].to_string();
    assert!(
        msg.contains(&liar.url()) && msg.contains("does not verify"),
        "{msg}"
    );
    assert!(
        got.mirrors.iter().all(|m| m.url.as_str() != liar.url()),
        "{got:?}"
    );
}
