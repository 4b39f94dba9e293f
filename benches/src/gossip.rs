//! `bench-gossip`: how fast a release spreads by gossip (issue #20).
//!
//! A fleet of in-process nodes (default 50), each with its own redb store
//! in a scratch directory, talking QUIC on 127.0.0.1, without a DHT. The
//! mesh is partial: each node keeps connections to the next node on a
//! ring and to `--links` others picked at random (seeded), and follows
//! the publisher's `PUBKEY/NAME` pointer. Node 0 publishes; gossip is
//! then the only way a node can hear of the release. For each of
//! `--reps` releases the bench prints the time until every node has
//! accepted it (checked under its trust policy and recorded), the median
//! node's time, and the time until every node has fetched and pinned its
//! files; the bar is every node accepting within 2 s, against the DHT
//! polling interval (15 min) that is the only way without gossip.
//!
//! ```text
//! cargo build --release -p swarm-benches
//! target/release/bench-gossip [--nodes 50] [--links 2] [--reps 5] [--size-kib 256]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use swarm_benches::report::median;
use swarm_engine::node::{Follow, Node, REANNOUNCE};
use swarm_engine::release::SecretKey;
use swarm_engine::store::PublishOptions;

const BAR: Duration = Duration::from_secs(2);

struct Args {
    nodes: usize,
    links: usize,
    reps: usize,
    size_kib: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        nodes: 50,
        links: 2,
        reps: 5,
        size_kib: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> Result<usize> {
            it.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} takes a number"))
        };
        match flag.as_str() {
            "--nodes" => a.nodes = value()?,
            "--links" => a.links = value()?,
            "--reps" => a.reps = value()?,
            "--size-kib" => a.size_kib = value()?,
            other => bail!("unknown flag {other}; use --nodes N --links N --reps N --size-kib N"),
        }
    }
    if a.nodes < 2 || a.reps == 0 {
        bail!("need at least 2 nodes and 1 rep");
    }
    Ok(a)
}

/// A small deterministic generator (xorshift), for the mesh.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let scratch = tempfile::tempdir()?;
    let key = SecretKey::from_seed(&[42; 32]);
    let pointer = format!("{}/app", key.public());
    let mut nodes = Vec::with_capacity(a.nodes);
    for i in 0..a.nodes {
        let node = Node::builder()
            .store_path(scratch.path().join(format!("node{i}")))
            .listen(([127, 0, 0, 1], 0).into())
            .no_dht()
            .spawn()
            .await
            .with_context(|| format!("starting node {i}"))?;
        nodes.push(node);
    }
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr()).collect::<Result<_, _>>()?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut followings = Vec::new();
    let mut edges = 0;
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let mut peers = vec![addrs[(i + 1) % a.nodes].clone()];
        while peers.len() < 1 + a.links.min(a.nodes - 2) {
            let j = rng.below(a.nodes);
            if j != i && !peers.contains(&addrs[j]) {
                peers.push(addrs[j].clone());
            }
        }
        edges += peers.len();
        followings.push(node.follow(
            Follow {
                entries: vec![pointer.clone()],
                peers,
                trust: vec![key.public()],
                ..Follow::default()
            },
            Arc::new(|_| {}),
        ));
    }
    // Let every kept connection come up (and say what it follows).
    let up = Instant::now();
    while nodes
        .iter()
        .map(|n| n.endpoint().open_connections())
        .sum::<usize>()
        < 2 * edges
    {
        if up.elapsed() > Duration::from_secs(30) {
            bail!("the mesh did not come up in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = up.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "bench-gossip: {} nodes, {} kept links ({:.1} per node on average, both ways), no DHT; mesh up in {}",
        a.nodes,
        edges,
        2.0 * edges as f64 / a.nodes as f64,
        secs(connected)
    );
    println!(
        "each rep: node 0 publishes a release of one {} KiB file; the others hear of it only by gossip",
        a.size_kib
    );
    println!();
    println!(
        "{:>4}  {:>12}  {:>12}  {:>14}  {:>10}",
        "rep", "all accepted", "median node", "all fetched", "accepted"
    );
    let (mut all, mut mid, mut fetched) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 1..=a.reps {
        let mut heard = Vec::new();
        for n in &nodes[1..] {
            heard.push(n.gossiped());
        }
        let file = scratch.path().join(format!("app-{rep}.bin"));
        let bytes: Vec<u8> = (0..a.size_kib * 1024)
            .map(|i| (i as u64 * 31 + rep as u64 * 7) as u8)
            .collect();
        std::fs::write(&file, &bytes)?;
        let opts = PublishOptions::new("app", semver::Version::new(1, rep as u64, 0));
        let t0 = Instant::now();
        let published = nodes[0].publish(&key, &[&file], &opts).await?;
        let root = published.release.release().root;
        let seq = published.release.release().seq;
        let mut waits = Vec::new();
        for mut rx in heard {
            waits.push(tokio::spawn(async move {
                loop {
                    match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                        Ok(Ok(r)) if r.release().seq == seq => return Some(t0.elapsed()),
                        Ok(Ok(_)) => {}
                        Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                        _ => return None,
                    }
                }
            }));
        }
        let mut times = Vec::new();
        for w in waits {
            if let Some(t) = w.await? {
                times.push(t);
            }
        }
        let accepted = times.len();
        times.sort();
        // Then the files: every node fetches from its neighbours.
        let fetch_start = Instant::now();
        let all_fetched = loop {
            let done = nodes[1..]
                .iter()
                .filter(|n| {
                    n.store()
                        .pins()
                        .map(|p| p.iter().any(|p| p.root == root))
                        .unwrap_or(false)
                })
                .count();
            if done == a.nodes - 1 {
                break Some(t0.elapsed());
            }
            if fetch_start.elapsed() > Duration::from_secs(120) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let last = times.last().copied();
        let median_node = times.get(times.len() / 2).copied();
        println!(
            "{:>4}  {:>12}  {:>12}  {:>14}  {:>6}/{}",
            rep,
            last.map_or("-".into(), secs),
            median_node.map_or("-".into(), secs),
            all_fetched.map_or("not in 120 s".into(), secs),
            accepted,
            a.nodes - 1
        );
        if accepted == a.nodes - 1 {
            all.extend(last.map(|d| d.as_secs_f64()));
        }
        mid.extend(median_node.map(|d| d.as_secs_f64()));
        fetched.extend(all_fetched.map(|d| d.as_secs_f64()));
    }
    println!();
    let m_all = median(&all);
    let m_mid = median(&mid);
    let m_fetch = median(&fetched);
    println!(
        "median over reps: every node accepted in {:.3} s (median node {:.3} s); every node fetched in {:.3} s",
        m_all, m_mid, m_fetch
    );
    println!(
        "against the DHT polling interval without gossip ({} s): {:.0}x sooner",
        REANNOUNCE.as_secs(),
        REANNOUNCE.as_secs_f64() / m_all.max(1e-9)
    );
    let pass = all.len() == a.reps && m_all < BAR.as_secs_f64();
    println!(
        "bar: every node accepts within {} s, in every rep: {}",
        BAR.as_secs(),
        if pass { "PASS" } else { "MISS" }
    );
    let mut gstats = (0, 0, 0);
    for n in &nodes {
        let s = n.endpoint().gossip_stats();
        gstats.0 += s.received;
        gstats.1 += s.sent;
        gstats.2 += s.banned;
    }
    println!(
        "gossip over the run: {} records sent, {} received ({:.1} per node per release), {} peers banned",
        gstats.1,
        gstats.0,
        gstats.0 as f64 / (a.nodes * a.reps) as f64,
        gstats.2
    );
    drop(followings);
    for n in &nodes {
        n.shutdown().await;
    }
    println!();
    rollout(&key);
    Ok(())
}

/// Staged rollout over 1,000 simulated clients (random install ids, the
/// engine's own cohort rule): the share that takes each of 20 releases in
/// their first window of 10 %, and that a critical release reaches all.
fn rollout(key: &SecretKey) {
    use swarm_engine::release::rollout::{Offer, Rollout, Step, offer};
    const CLIENTS: usize = 1000;
    const RELEASES: u64 = 20;
    let ids: Vec<[u8; 32]> = (0..CLIENTS)
        .map(|_| {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).expect("random install ids");
            b
        })
        .collect();
    let release = |seq: u64, critical: bool| swarm_engine::release::Release {
        publisher: key.public(),
        name: "app".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, seq, 0),
        seq,
        root: swarm_engine::Hash::of(&seq.to_le_bytes()),
        size: 1,
        created: 1_800_000_000,
        expires: None,
        rollout: Rollout {
            steps: vec![
                Step {
                    after: 0,
                    permille: 100,
                },
                Step {
                    after: 86_400,
                    permille: 1000,
                },
            ],
            critical,
            other: Vec::new(),
        },
    };
    let mut shares = Vec::new();
    let mut always_early = vec![true; CLIENTS];
    for seq in 1..=RELEASES {
        let r = release(seq, false);
        let mut took = 0;
        for (i, id) in ids.iter().enumerate() {
            let now = offer(&r, id, r.created + 60, None) == Offer::Now;
            took += usize::from(now);
            always_early[i] &= now;
        }
        shares.push(100.0 * took as f64 / CLIENTS as f64);
    }
    let (lo, hi) = shares
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let critical = release(RELEASES + 1, true);
    let all = ids
        .iter()
        .filter(|id| offer(&critical, id, critical.created, None) == Offer::Now)
        .count();
    let in_band = shares
        .iter()
        .filter(|&&s| (8.0..=12.0).contains(&s))
        .count();
    println!(
        "staged rollout, {CLIENTS} simulated clients, schedule 10%@0,100%@1d, {RELEASES} releases:"
    );
    println!(
        "  first window: {:.1} % median, {lo:.1}–{hi:.1} % over the releases; {in_band} of {RELEASES} in the bar's 8–12 %",
        median(&shares),
    );
    println!(
        "  (each client is its own draw: at {CLIENTS} clients one share has a standard deviation of {:.2} points, so about 1 release in 30 falls outside 8–12 % by chance)",
        100.0 * (0.1f64 * 0.9 / CLIENTS as f64).sqrt()
    );
    println!(
        "  clients early for every one of the {RELEASES}: {} (cohorts change from release to release)",
        always_early.iter().filter(|&&e| e).count()
    );
    println!(
        "  a critical release under the same schedule: {all} of {CLIENTS} at once ({})",
        if all == CLIENTS { "PASS" } else { "MISS" }
    );
}
