//! `bench-idle`: the CPU an idle paused fetch takes (issue #13: "an idle paused fetch uses no
//! CPU (no tick): show its CPU seconds over 30 s").
//!
//! In this process, on 127.0.0.1: a seeding node capped at 1 MiB/s and a fetching node; the
//! fetch of a 32 MiB file starts, is paused once bytes arrive, and this process's CPU seconds
//! (all threads, both nodes, `/proc/self/stat`, 10 ms resolution) are read over `--secs`
//! (default 30) of the pause. Then the fetch resumes, finishes, and its bytes are checked.
//! For scale, the same span is measured once with the fetch running.
//!
//! ```text
//! cargo build --release -p swarm-benches
//! target/release/bench-idle [--secs 30]
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use swarm_benches::disk::cpu_secs;
use swarm_engine::node::{FetchOptions, FetchProgress, Node};

const SIZE: usize = 32 << 20;

fn main() -> Result<()> {
    let mut secs = 30u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => {
                secs = args
                    .next()
                    .context("--secs needs a number")?
                    .parse()
                    .context("--secs needs a number")?;
                ensure!(
                    (1..=600).contains(&secs),
                    "--secs must be between 1 and 600"
                );
            }
            "-h" | "--help" => {
                println!("usage: bench-idle [--secs N]   (N from 1 to 600, default 30)");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}; see --help"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(Duration::from_secs(secs)))
}

async fn run(span: Duration) -> Result<()> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("file.bin");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&file, &bytes)?;
    let seed = Node::builder()
        .listen(loopback)
        .no_dht()
        .upload_limit(Some(1 << 20))
        .spawn()
        .await?;
    let root = seed.add(&[file]).await?.root;
    let fetcher = Node::builder().listen(loopback).no_dht().spawn().await?;
    let opts = FetchOptions {
        peers: vec![seed.addr()?],
        ..Default::default()
    };
    let mut fetch = fetcher.fetch(root, opts);
    let mut events = fetch.events().context("events taken")?;
    while let Some(e) = events.next().await {
        if matches!(e, FetchProgress::Received(_)) {
            break;
        }
    }
    println!(
        "bench-idle: a {} MiB fetch from a seeder capped at 1 MiB/s, both in this process",
        SIZE >> 20
    );
    let running = cpu_over(span.min(Duration::from_secs(5))).await?;
    println!(
        "running: {:.2} CPU s over {:.0} s ({:.3} CPU s per s)",
        running.0,
        running.1,
        running.0 / running.1
    );
    fetch.pause();
    // Let what was in flight drain and the pause take hold.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let paused = cpu_over(span).await?;
    println!(
        "paused:  {:.2} CPU s over {:.0} s ({:.4} CPU s per s)",
        paused.0,
        paused.1,
        paused.0 / paused.1
    );
    fetch.resume();
    let done = tokio::time::timeout(Duration::from_secs(120), &mut fetch)
        .await
        .context("the resumed fetch did not finish in 120 s")??;
    ensure!(done.size == SIZE as u64, "fetched {} bytes", done.size);
    let m = fetcher.store().manifest(&root)?;
    let got = fetcher
        .store()
        .read_blob(&m.entries()[0].hash, SIZE as u64)?
        .context("not stored")?;
    ensure!(got == bytes, "the resumed fetch stored other bytes");
    println!("resumed and finished: bytes identical");
    fetcher.shutdown().await;
    seed.shutdown().await;
    Ok(())
}

/// This process's CPU seconds over `span`, and the seconds it took.
async fn cpu_over(span: Duration) -> Result<(f64, f64)> {
    let before = cpu_secs("self").context("no /proc/self/stat")?;
    let t = Instant::now();
    tokio::time::sleep(span).await;
    let after = cpu_secs("self").context("no /proc/self/stat")?;
    Ok((after - before, t.elapsed().as_secs_f64()))
}
