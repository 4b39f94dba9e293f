//! `swarm demo`: the README's first command. On generated data, in a
//! scratch directory, loopback only: add into one node's store, export and
//! compare, serve it over QUIC, fetch it into a second node, compare again,
//! check, collect. It grows into the DHT demo as discovery lands.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use swarm_engine::net::{EndpointConfig, PeerAddr};
use swarm_engine::node::{FetchOptions, Node};
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

    // Over the network: a second node fetches the root from this one.
    let rt = tokio::runtime::Runtime::new()?;
    let fetched_store = Store::open(scratch.join("store-b"))?;
    let (fetched, fetch_time) = rt.block_on(async {
        let loopback = EndpointConfig::default().listen(([127, 0, 0, 1], 0).into());
        let seed = Node::spawn(store.clone(), loopback.clone()).await?;
        let fetcher = Node::spawn(fetched_store.clone(), loopback).await?;
        let peer = PeerAddr {
            id: Some(seed.endpoint().node_id()),
            addr: seed.endpoint().local_addr()?,
        };
        say(format!(
            "node A {} serving on {}",
            seed.endpoint().node_id().short(),
            peer.addr
        ));
        let t = Instant::now();
        let opts = FetchOptions {
            peers: vec![peer],
            ..Default::default()
        };
        let got = fetcher.fetch(added.root, opts).await;
        let elapsed = t.elapsed();
        fetcher.shutdown().await;
        seed.shutdown().await;
        anyhow::Ok((got?, elapsed))
    })?;
    say(format!(
        "node B fetched {} files ({:.1} MiB received) over QUIC in {:.2?} ({:.0} MB/s), every 16 KiB verified",
        fetched.files,
        fetched.received as f64 / 1048576.0,
        fetch_time,
        total as f64 / 1e6 / fetch_time.as_secs_f64()
    ));
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
                "fetch_seconds": fetch_time.as_secs_f64(),
                "received": fetched.received,
                "gc_freed": freed.bytes,
            })
        );
    } else {
        println!(
            "demo ok: {} round-tripped byte-identical, locally and over QUIC",
            added.root
        );
    }
    Ok(())
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
