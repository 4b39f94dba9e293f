//! `swarm demo`: the README's first command. On generated data, in a
//! scratch directory, loopback only: add into one node's store, export and
//! compare, serve it over QUIC, fetch it into a second node, compare again,
//! check, collect. It grows into the DHT demo as discovery lands.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use swarm_engine::Hash;
use swarm_engine::discovery::{Dht, LocalDht};
use swarm_engine::net::EndpointConfig;
use swarm_engine::node::{FetchOptions, FetchProgress, Node};
use swarm_engine::release::{Policy, Release, SecretKey, Want};
use swarm_engine::store::{AddOptions, ExportOptions, Store};

/// Files of the generated release: (path, size in bytes, mode).
const FILES: &[(&str, u64, u32)] = &[
    ("app/bin/app", 24 << 20, 0o755),
    ("app/lib/data.pak", 40 << 20, 0o644),
    ("app/README", 1_500, 0o644),
    ("app/share/small/a.txt", 10, 0o644),
    ("app/share/small/empty", 0, 0o644),
];

pub(crate) fn run(json: bool) -> Result<()> {
    let scratch = tempfile_dir()?;
    let result = run_in(&scratch, json);
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn run_in(scratch: &Path, json: bool) -> Result<()> {
    let say = |s: String| {
        if !json {
            eprintln!("{s}");
        }
    };
    let src = scratch.join("src");
    let mut total = 0;
    for (i, (path, size, mode)) in FILES.iter().enumerate() {
        let p = src.join(path);
        fs::create_dir_all(p.parent().context("generated path has a parent")?)?;
        fs::write(&p, pattern(i as u64, *size))?;
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(*mode))?;
        total += size;
    }
    say(format!(
        "generated {} files, {:.1} MiB in {}",
        FILES.len(),
        total as f64 / 1048576.0,
        src.display()
    ));

    let store = Store::open(scratch.join("store"))?;
    let t = Instant::now();
    let added = store.add_paths(&[src.join("app")], &AddOptions::default())?;
    let add_time = t.elapsed();
    say(format!(
        "added   root {} in {:.2?} ({:.0} MB/s)",
        added.root,
        add_time,
        total as f64 / 1e6 / add_time.as_secs_f64()
    ));

    let out = scratch.join("out");
    let t = Instant::now();
    store.export(&added.root, &out, &ExportOptions::default())?;
    let export_time = t.elapsed();
    say(format!(
        "exported {} files in {:.2?}, every byte verified",
        added.files, export_time
    ));
    for (path, _, mode) in FILES {
        let a = fs::read(src.join(path))?;
        let b = fs::read(out.join(path))?;
        ensure!(a == b, "{path}: exported bytes differ from the source");
        let m =
            std::os::unix::fs::PermissionsExt::mode(&fs::metadata(out.join(path))?.permissions());
        ensure!(m & 0o777 == *mode, "{path}: mode {m:o}, expected {mode:o}");
    }
    say("compared every file with its source: identical bytes and modes".into());

    // Over the network, found through a DHT of our own on 127.0.0.1: node A
    // publishes a signed release and announces it; fetchers B, C, D resolve
    // the publisher's pointer and fetch with no peer address given.
    let rt = tokio::runtime::Runtime::new()?;
    let fetched_store = Store::open(scratch.join("store-b"))?;
    let net = rt.block_on(over_the_dht(
        scratch,
        &store,
        &fetched_store,
        added.root,
        total,
        &say,
    ))?;
    let out_b = scratch.join("out-b");
    fetched_store.export(&added.root, &out_b, &ExportOptions::default())?;
    for (path, _, _) in FILES {
        ensure!(
            fs::read(src.join(path))? == fs::read(out_b.join(path))?,
            "{path}: bytes fetched by node B differ from the source"
        );
    }
    say("node B's copy is identical to the source".into());

    let report = store.check(|_| {})?;
    ensure!(
        report.problems.is_empty(),
        "check found problems: {:?}",
        report.problems
    );
    let report_b = fetched_store.check(|_| {})?;
    ensure!(
        report_b.problems.is_empty(),
        "check found problems: {:?}",
        report_b.problems
    );
    store.unpin(&added.root)?;
    let freed = store.gc()?;
    say(format!(
        "check ok on both nodes ({} blobs each); unpinned on A and gc freed {:.1} MiB",
        report.blobs,
        freed.bytes as f64 / 1048576.0
    ));
    if json {
        println!(
            "{}",
            json!({
                "ok": true,
                "root": added.root.to_hex(),
                "bytes": total,
                "files": added.files,
                "add_seconds": add_time.as_secs_f64(),
                "export_seconds": export_time.as_secs_f64(),
                "fetch_seconds": net.fetch_seconds,
                "first_byte_seconds": net.first_byte_seconds,
                "received": net.received,
                "fetchers": net.fetchers,
                "swarm_seconds": net.swarm_seconds,
                "seed_copies": net.seed_copies,
                "gc_freed": freed.bytes,
            })
        );
    } else {
        println!(
            "demo ok: {} round-tripped byte-identical, locally and to {} nodes that found it through the DHT",
            added.root, net.fetchers
        );
    }
    Ok(())
}

/// What the network part measured.
struct NetSummary {
    fetchers: usize,
    /// Node B's fetch, from its start to the last verified byte.
    fetch_seconds: f64,
    /// Node B's fetch, from its start to the first verified data arriving.
    first_byte_seconds: f64,
    /// Bytes node B received.
    received: u64,
    /// From the start of the fetchers to the last one complete.
    swarm_seconds: f64,
    /// Copies of the release node A uploaded.
    seed_copies: f64,
}

/// Fetchers in the demo besides node B.
const MORE_FETCHERS: usize = 2;
/// Node A's upload cap, so that the fetchers must swarm.
const SEED_UPLOAD: u64 = 40 << 20;

async fn over_the_dht(
    scratch: &Path,
    store: &Store,
    store_b: &Store,
    root: Hash,
    total: u64,
    say: &dyn Fn(String),
) -> Result<NetSummary> {
    let dht = LocalDht::start(8).context("cannot start a local DHT on 127.0.0.1")?;
    let cfg = dht.config();
    say("started a DHT of 8 nodes on 127.0.0.1".into());
    let loopback = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());

    // Node A: sign a release of the root and put its pointer on the DHT.
    let key = SecretKey::generate()?;
    let manifest = store.manifest(&root)?;
    let signed = Release {
        publisher: key.public(),
        name: "demo".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, 0, 0),
        seq: 1,
        root,
        size: manifest.total_size(),
        created: crate::release::now(),
        expires: None,
        rollout: Default::default(),
    }
    .sign(&key)?;
    // A super-seeds (`swarm node --super-seed`): it tells each fetcher of
    // pieces nobody else was given, so about one copy leaves it.
    let seed = Node::spawn(
        store.clone(),
        loopback
            .clone()
            .upload_limit(Some(SEED_UPLOAD))
            .super_seed(swarm_engine::net::SuperSeedMode::On),
    )
    .await?
    .with_dht(Dht::spawn(&cfg)?);
    seed.dht()
        .context("dht attached")?
        .put_release(&signed, &key)
        .await?;
    let announced = seed.announce().await?;
    say(format!(
        "node A {} published demo 1.0.0 as {}… and announced {announced} root",
        seed.endpoint().node_id().short(),
        &signed.to_token()[..24]
    ));

    // Fetchers: trust A's key, resolve its pointer, and fetch through the
    // DHT alone, all at once. A's upload is capped, so they must swarm.
    let mut stores = vec![store_b.clone()];
    for i in 0..MORE_FETCHERS {
        stores.push(Store::open(
            scratch.join(format!("store-{}", (b'c' + i as u8) as char)),
        )?);
    }
    let mut names = std::collections::BTreeMap::new();
    names.insert(seed.endpoint().node_id(), 'A');
    let mut nodes = Vec::new();
    for (i, st) in stores.iter().enumerate() {
        let node = Node::spawn(st.clone(), loopback.clone())
            .await?
            .with_dht(Dht::spawn(&cfg)?);
        names.insert(node.endpoint().node_id(), (b'B' + i as u8) as char);
        nodes.push(node);
    }
    let alone = stores.len() as f64 * total as f64 / SEED_UPLOAD as f64;
    say(format!(
        "nodes B, C, D fetch at once; A's upload is capped at {} MiB/s, so A alone would need {alone:.1} s",
        SEED_UPLOAD >> 20
    ));
    let began = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let (node, st, public) = (node.clone(), stores[i].clone(), key.public());
        runs.spawn(async move {
            let dhtc = node.dht().context("dht attached")?;
            let found = dhtc
                .resolve(&public, "demo", "stable")
                .await
                .context("the release pointer was not found on the DHT")?;
            let mut policy = Policy {
                now: crate::release::now(),
                ..Default::default()
            };
            policy.trust(public, "demo publisher");
            st.accept_release(&policy, &found, &Want::default())?;
            let root = found.release().root;
            // The fetch announces itself on the DHT and looks the root up
            // again as it runs: fetchers that start together find each other.
            let start = Instant::now();
            let first = std::sync::Arc::new(std::sync::OnceLock::new());
            let first_seen = first.clone();
            let opts = FetchOptions {
                progress: Some(std::sync::Arc::new(move |p| {
                    if let FetchProgress::Received(_) = p {
                        let _ = first_seen.set(start.elapsed());
                    }
                })),
                ..Default::default()
            };
            let got = node.fetch(root, opts).await?;
            let took = start.elapsed();
            let first_byte = first.get().copied().unwrap_or(took);
            anyhow::Ok((i, got, took, first_byte))
        });
    }
    let mut results = Vec::new();
    while let Some(r) = runs.join_next().await {
        results.push(r??);
    }
    // From the first fetch's start to the last one's end (resolving the
    // pointer on the DHT before each fetch is not counted).
    let all = results
        .iter()
        .map(|r| r.2)
        .max()
        .unwrap_or_default()
        .min(began.elapsed());
    results.sort_by_key(|r| r.0);
    let mut summary = None;
    let mut from_seed = 0;
    for (i, got, took, first_byte) in &results {
        let label = (b'B' + *i as u8) as char;
        ensure!(
            got.size == total,
            "node {label} got {} bytes, expected {total}",
            got.size
        );
        let sources: Vec<String> = got
            .sources
            .iter()
            .map(|s| {
                format!(
                    "{:.1} MiB from {}",
                    s.bytes as f64 / 1048576.0,
                    names.get(&s.id).copied().unwrap_or('?')
                )
            })
            .collect();
        from_seed += got
            .sources
            .iter()
            .filter(|s| s.id == seed.endpoint().node_id())
            .map(|s| s.bytes)
            .sum::<u64>();
        say(format!(
            "node {label} resolved the pointer and fetched {:.1} MiB in {took:.2?} (first verified data after {first_byte:.0?}): {}",
            got.received as f64 / 1048576.0,
            sources.join(", ")
        ));
        if summary.is_none() {
            summary = Some(NetSummary {
                fetchers: stores.len(),
                fetch_seconds: took.as_secs_f64(),
                first_byte_seconds: first_byte.as_secs_f64(),
                received: got.received,
                swarm_seconds: 0.0,
                seed_copies: 0.0,
            });
        }
    }
    let seed_copies = from_seed as f64 / total as f64;
    say(format!(
        "all {} fetched in {:.2} s, {:.1}x faster than A alone; A uploaded {seed_copies:.2} copies, the fetchers the rest to each other",
        results.len(),
        all.as_secs_f64(),
        alone / all.as_secs_f64()
    ));
    if let Some(s) = &mut summary {
        s.swarm_seconds = all.as_secs_f64();
        s.seed_copies = seed_copies;
    }
    for n in &nodes {
        n.shutdown().await;
    }
    seed.shutdown().await;
    summary.context("no fetcher ran")
}

/// Deterministic, incompressible-looking bytes (xorshift), seeded per file.
fn pattern(seed: u64, size: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(size as usize);
    while (v.len() as u64) < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size as usize);
    v
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let base = std::env::temp_dir();
    for i in 0..1000u32 {
        let p = base.join(format!("swarm-demo-{}-{i}", std::process::id()));
        if fs::create_dir(&p).is_ok() {
            return Ok(p);
        }
    }
    anyhow::bail!("cannot create a scratch directory in {}", base.display())
}
