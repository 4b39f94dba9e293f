//! `bench-sim`: the real picker (`swarm::Swarm`) and super-seed (`swarm::SuperSeed`) in a
//! discrete-event simulation of one seed and N peers in a partial mesh, in virtual time.
//!
//! The model: each node dials 8 peers at most and accepts 50 connections in all; a tracker
//! lookup returns 6 random present nodes, repeated with a doubling backoff while a node has
//! room, and every new connection exchanges up to 8 addresses. Uploads are mostly 10-100
//! Mbit/s with 5 % at 1 Gbit/s; downloads 100-1000 Mbit/s (1 Gbit/s for the fast ones);
//! round trips 20-300 ms; loss 0-1 % a node; some peers join late and some leave before
//! they complete. It prints completion times (from each node's join) against the ideal, the
//! copies the seed sent, duplicate bytes, events and CPU time, with PASS/MISS against the
//! targets of issue 14. The same flags give the same figures (the event digest shows it).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use swarm_benches::disk::cpu_secs;
use swarm_engine::swarm::SuperSeedConfig;
use swarm_engine::swarm::sim::{
    Leave, MIB, Mesh, MeshConfig, NodeSpec, Outcome, ServeOrder, Sim, SimConfig, mix,
};

const USAGE: &str = "\
bench-sim: one seed and N peers in a simulated partial mesh

usage: bench-sim [--peers N] [--size MIB] [--seed S] [--super-seed on|off|until-out]
                 [--seed-mbit M] [--late F] [--churn F] [--linger SECS]
                 [--max-out N] [--max-conns N] [--ss-offers N] [--ss-unshared N]
                 [--ss-reveal-ms MS] [--ss-rescue-ms MS] [--ss-credit N]
                 [--upload-slots N] [--serve-order in-turn|neediest] [--reciprocity F]
                 [--min-pipeline N] [--initial-pipeline N] [--move-gain N] [--push N]

  --peers N           leechers (default 1000)
  --size MIB          blob size (default 256)
  --seed S            randomness of the whole run (default 1)
  --super-seed MODE   on (default), off, or until-out (until every piece has left the seed;
                      a node's `auto` is `on` for a capped first seed, which this seed is)
  --seed-mbit M       the seed's upload (default 1000)
  --late F            fraction of peers that join 5-15 s late (default 0.1)
  --churn F           fraction of peers that leave before they complete (default 0.05)
  --linger SECS       a peer leaves this long after it completes (default: stays)
  --max-out N         connections a node dials (default 8)
  --max-conns N       connections a node has in all (default 50)
  --upload-slots N    a node sends to N requesters at a time, in turn (a model;
                      not what the engine's serving does)
  --serve-order O     with --upload-slots: in-turn (default), or neediest: the
                      requester holding fewest pieces first, its most wanted
                      piece first (a model, as --upload-slots)
  --reciprocity F     with neediest: a head start of F pieces for each piece
                      the requester sent (default 0.5)
  --min-pipeline N, --initial-pipeline N   the picker's Config
  --push N            addresses a node pushes to each connected fetcher as it
                      meets new peers (default 50, as wire.md §3.7; 0: none)
  --move-gain N       the picker's Config::move_gain (default 2; 0: requests
                      never move to a faster fetcher)
  --ss-offers N, --ss-unshared N, --ss-reveal-ms MS, --ss-rescue-ms MS, --ss-credit N
                      the super-seed's tuning (SuperSeedConfig)";

const MBIT: u64 = 125_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum SuperMode {
    On,
    Off,
    UntilOut,
}

#[derive(Debug, Clone)]
struct Settings {
    peers: usize,
    size_mib: u64,
    seed: u64,
    super_seed: SuperMode,
    seed_mbit: u64,
    late: f64,
    churn: f64,
    linger: Option<f64>,
    max_out: usize,
    push: usize,
    max_conns: usize,
    super_config: SuperSeedConfig,
    min_pipeline: Option<usize>,
    initial_pipeline: Option<usize>,
    move_gain: Option<u32>,
    upload_slots: Option<usize>,
    neediest: bool,
    reciprocity: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            peers: 1000,
            size_mib: 256,
            seed: 1,
            super_seed: SuperMode::On,
            seed_mbit: 1000,
            late: 0.1,
            churn: 0.05,
            linger: None,
            max_out: 8,
            push: swarm_engine::wire::MAX_PUSHED,
            max_conns: 50,
            super_config: SuperSeedConfig::default(),
            min_pipeline: None,
            initial_pipeline: None,
            move_gain: None,
            upload_slots: None,
            neediest: false,
            reciprocity: 0.5,
        }
    }
}

fn parse(args: &[String]) -> Result<Option<Settings>> {
    let mut s = Settings::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        if matches!(name, "-h" | "--help") {
            return Ok(None);
        }
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value")),
            }
        };
        let bad = |v: &str| format!("{name}: cannot read {v:?}");
        match name {
            "--peers" => {
                let v = value()?;
                s.peers = v.parse().with_context(|| bad(&v))?;
            }
            "--size" => {
                let v = value()?;
                s.size_mib = v.parse().with_context(|| bad(&v))?;
            }
            "--seed" => {
                let v = value()?;
                s.seed = v.parse().with_context(|| bad(&v))?;
            }
            "--super-seed" => {
                s.super_seed = match value()?.as_str() {
                    "on" => SuperMode::On,
                    "off" => SuperMode::Off,
                    "until-out" => SuperMode::UntilOut,
                    v => bail!("--super-seed: on, off or until-out, not {v:?}"),
                }
            }
            "--seed-mbit" => {
                let v = value()?;
                s.seed_mbit = v.parse().with_context(|| bad(&v))?;
            }
            "--late" => {
                let v = value()?;
                s.late = v.parse().with_context(|| bad(&v))?;
            }
            "--churn" => {
                let v = value()?;
                s.churn = v.parse().with_context(|| bad(&v))?;
            }
            "--linger" => {
                let v = value()?;
                s.linger = Some(v.parse().with_context(|| bad(&v))?);
            }
            "--max-out" => {
                let v = value()?;
                s.max_out = v.parse().with_context(|| bad(&v))?;
            }
            "--push" => {
                let v = value()?;
                s.push = v.parse().with_context(|| bad(&v))?;
            }
            "--max-conns" => {
                let v = value()?;
                s.max_conns = v.parse().with_context(|| bad(&v))?;
            }
            "--ss-offers" => {
                let v = value()?;
                s.super_config.offers_per_peer = v.parse().with_context(|| bad(&v))?;
            }
            "--ss-unshared" => {
                let v = value()?;
                s.super_config.max_unshared = v.parse().with_context(|| bad(&v))?;
            }
            "--ss-reveal-ms" => {
                let v = value()?;
                s.super_config.reveal_after =
                    Duration::from_millis(v.parse().with_context(|| bad(&v))?);
            }
            "--min-pipeline" => {
                let v = value()?;
                s.min_pipeline = Some(v.parse().with_context(|| bad(&v))?);
            }
            "--initial-pipeline" => {
                let v = value()?;
                s.initial_pipeline = Some(v.parse().with_context(|| bad(&v))?);
            }
            "--ss-credit" => {
                let v = value()?;
                s.super_config.max_credit = v.parse().with_context(|| bad(&v))?;
            }
            "--serve-order" => {
                s.neediest = match value()?.as_str() {
                    "in-turn" => false,
                    "neediest" => true,
                    v => bail!("--serve-order: in-turn or neediest, not {v:?}"),
                }
            }
            "--reciprocity" => {
                let v = value()?;
                s.reciprocity = v.parse().with_context(|| bad(&v))?;
            }
            "--move-gain" => {
                let v = value()?;
                s.move_gain = Some(v.parse().with_context(|| bad(&v))?);
            }
            "--upload-slots" => {
                let v = value()?;
                s.upload_slots = Some(v.parse().with_context(|| bad(&v))?);
            }
            "--ss-rescue-ms" => {
                let v = value()?;
                s.super_config.rescue_after =
                    Duration::from_millis(v.parse().with_context(|| bad(&v))?);
            }
            _ => bail!("unknown flag {arg:?}"),
        }
    }
    if s.peers == 0 || s.size_mib == 0 || s.seed_mbit == 0 || s.max_out == 0 {
        bail!("--peers, --size, --seed-mbit and --max-out must be above 0");
    }
    if !(0.0..=1.0).contains(&s.late) || !(0.0..1.0).contains(&s.churn) {
        bail!("--late is a fraction in 0..=1, --churn in 0..1");
    }
    Ok(Some(s))
}

/// Node 0 is the seed; then the peers.
fn nodes(s: &Settings) -> Vec<NodeSpec> {
    let mut rng = s.seed ^ 0xb5e0_c0de;
    let mut next = move || {
        rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(rng)
    };
    let mut unit = move || (next() >> 11) as f64 / (1u64 << 53) as f64;
    let ms = |x: f64| Duration::from_secs_f64(x / 1000.0);
    let mut out = vec![NodeSpec::seed(s.seed_mbit * MBIT).latency_ms(10)];
    for _ in 0..s.peers {
        let (up, down) = if unit() < 0.05 {
            (1000 * MBIT, 1000 * MBIT)
        } else {
            let up = 10.0 + 90.0 * unit();
            let down = 100.0 + 900.0 * unit();
            ((up * MBIT as f64) as u64, (down * MBIT as f64) as u64)
        };
        // Each end's share of the one-way latency: round trips of 20-300 ms.
        let latency = ms(5.0 + 70.0 * unit());
        let loss = 0.01 * unit();
        let join = if unit() < s.late {
            5000.0 + 10_000.0 * unit()
        } else {
            2000.0 * unit()
        };
        let mut spec = NodeSpec::leecher(up)
            .down(down)
            .loss(loss)
            .join_at(ms(join));
        spec.latency = latency;
        if unit() < s.churn {
            // Leaves somewhere in the first 30 s, mostly before it completes.
            spec = spec.leave(Leave::At(ms(join + 30_000.0 * unit())));
        } else if let Some(linger) = s.linger {
            spec = spec.leave(Leave::AfterDone(Duration::from_secs_f64(linger)));
        }
        out.push(spec);
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let s = match parse(&args) {
        Ok(Some(s)) => s,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(e) => bail!("{e:#}\n\n{USAGE}"),
    };
    let size = s.size_mib * MIB;
    let specs = nodes(&s);
    let mut cfg = SimConfig::new(vec![size], s.seed);
    cfg.mesh = Mesh::Partial(MeshConfig {
        max_out: s.max_out,
        max_conns: s.max_conns,
        push: s.push,
        ..MeshConfig::default()
    });
    cfg.super_seed = match s.super_seed {
        SuperMode::Off => None,
        SuperMode::On => Some(s.super_config.clone()),
        SuperMode::UntilOut => Some(SuperSeedConfig {
            auto: true,
            ..s.super_config.clone()
        }),
    };
    cfg.streaming = true;
    cfg.upload_slots = s.upload_slots;
    if s.neediest {
        cfg.serve_order = ServeOrder::Neediest {
            reciprocity: s.reciprocity,
        };
    }
    if let Some(n) = s.min_pipeline {
        cfg.picker.min_pipeline = n;
    }
    if let Some(n) = s.initial_pipeline {
        cfg.picker.initial_pipeline = n;
    }
    if let Some(n) = s.move_gain {
        cfg.picker.move_gain = n;
    }
    cfg.max_events = u64::MAX;
    cfg.time_limit = Duration::from_secs(4 * 3600);

    let stays: Vec<bool> = specs
        .iter()
        .map(|n| !n.seed && !matches!(n.leave, Some(Leave::At(_))))
        .collect();
    let seed_up = specs[0].up as f64;
    let total_up: f64 = specs.iter().map(|n| n.up as f64).sum();
    let slowest_down = specs
        .iter()
        .zip(&stays)
        .filter(|(_, s)| **s)
        .filter_map(|(n, _)| n.down)
        .min()
        .unwrap_or(u64::MAX) as f64;
    let fetchers = stays.iter().filter(|s| **s).count();
    let by_seed = size as f64 / seed_up;
    let by_down = size as f64 / slowest_down;
    let by_total = fetchers as f64 * size as f64 / total_up;
    let ideal = by_seed.max(by_down).max(by_total);

    println!(
        "bench-sim: 1 seed ({} Mbit/s up, super-seed {:?}) and {} peers, {} MiB ({} pieces), seed {}",
        s.seed_mbit,
        s.super_seed,
        s.peers,
        s.size_mib,
        swarm_engine::swarm::Swarm::<u32>::new(
            &[swarm_engine::swarm::BlobSpec {
                size,
                present: Default::default()
            }],
            cfg.picker.clone(),
            0
        )
        .piece_count(),
        s.seed
    );
    println!(
        "  mesh: dial {} and {} in all a node; lookups of 6 peers with backoff; exchange of 8 \
         on connect; up to {} addresses pushed to each peer as they are met",
        s.max_out, s.max_conns, s.push
    );
    println!(
        "  peers: up 10-100 Mbit/s (5 % at 1 Gbit/s), down 100-1000 Mbit/s, RTT 20-300 ms, \
         loss 0-1 %; {:.0} % join 5-15 s late, {:.0} % leave early{}",
        100.0 * s.late,
        100.0 * s.churn,
        s.linger.map_or(String::new(), |l| format!(
            ", the rest {l} s after they complete"
        ))
    );

    let cpu0 = cpu_secs("self").unwrap_or(0.0);
    let report = Sim::new(cfg, specs.clone()).run();
    let cpu = cpu_secs("self").unwrap_or(0.0) - cpu0;

    let violations = report.violations();
    let mut times = Vec::new();
    let mut incomplete = 0;
    for (i, n) in report.leechers() {
        if !stays[i as usize] {
            continue;
        }
        match (n.completed, n.joined) {
            (Some(done), Some(joined)) => times.push((done - joined).as_secs_f64()),
            _ => incomplete += 1,
        }
    }
    times.sort_by(f64::total_cmp);
    let left_early = report
        .leechers()
        .filter(|(i, n)| !stays[*i as usize] && n.completed.is_none())
        .count();
    let received = report.received_bytes();
    let copies = report.seed_uploaded() as f64 / size as f64;
    let leechers: Vec<_> = report.leechers().map(|(_, n)| n).collect();
    let avg = |f: &dyn Fn(&swarm_engine::swarm::sim::NodeReport) -> f64| {
        leechers.iter().map(|n| f(n)).sum::<f64>() / leechers.len().max(1) as f64
    };

    println!();
    println!(
        "  outcome {:?} at {:.2} s virtual; {} events; digest {:016x}",
        report.outcome,
        report.end.as_secs_f64(),
        report.events,
        report.digest
    );
    println!(
        "  ideal {ideal:.2} s = max(size / seed upload {by_seed:.2} s, size / slowest download \
         {by_down:.2} s, {fetchers} x size / total upload {by_total:.2} s)"
    );
    println!(
        "  completed {} of {fetchers} that stay ({incomplete} did not); {left_early} left early",
        times.len()
    );
    let p = |q: f64| percentile(&times, q);
    for (name, q) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p100", 100.0)] {
        println!("  {name:>4}  {:7.2} s  {:5.2}x ideal", p(q), p(q) / ideal);
    }
    let ratio = p(99.0) / p(50.0);
    let all_done = incomplete == 0 && report.outcome == Outcome::Complete;
    println!(
        "  p100 / ideal {:.2} (target <= 1.3) {}",
        p(100.0) / ideal,
        verdict(all_done && p(100.0) <= 1.3 * ideal)
    );
    println!(
        "  p99 / p50 {ratio:.2} (target <= 1.5) {}",
        verdict(all_done && ratio <= 1.5)
    );
    println!(
        "  seed sent {copies:.3} copies (target <= 1.1) {}",
        verdict(copies <= 1.1)
    );
    println!(
        "  duplicate bytes {:.2} % of {:.1} GiB received",
        100.0 * report.duplicate_bytes() as f64 / received.max(1) as f64,
        received as f64 / (1u64 << 30) as f64
    );
    println!(
        "  per peer: {:.1} connections at most, {:.1} dialed; {:.1} lookups; {:.1} connections \
         from lookups, {:.1} from exchange; {:.1} dials refused",
        avg(&|n| n.max_peers as f64),
        avg(&|n| n.max_out as f64),
        avg(&|n| f64::from(n.lookups)),
        avg(&|n| f64::from(n.by_lookup)),
        avg(&|n| f64::from(n.by_pex)),
        avg(&|n| f64::from(n.refused)),
    );
    println!(
        "  the seed: {} connections at most",
        report.nodes[0].max_peers
    );
    // The CPU target is for 1,000 peers; larger runs only report it.
    let cpu_verdict = if s.peers <= 1000 {
        verdict(cpu < 60.0)
    } else {
        "(no target above 1,000 peers)"
    };
    println!("  CPU {cpu:.1} s (target < 60 s at 1,000 peers) {cpu_verdict}");
    if std::env::var_os("BENCH_SIM_DEBUG").is_some() {
        // How much of each class's upload was used while it was present.
        for (name, fast) in [("1 Gbit/s", true), ("10-100 Mbit/s", false)] {
            let (mut sent, mut could, mut busy) = (0.0, 0.0, 0.0);
            for (i, n) in report.leechers() {
                let spec = &specs[i as usize];
                let Some(joined) = n.joined else { continue };
                if (spec.up >= 1000 * MBIT) == fast {
                    let end = n.left.unwrap_or(report.end);
                    sent += n.uploaded as f64;
                    could += spec.up as f64 * end.saturating_sub(joined).as_secs_f64();
                    busy += spec.up as f64 * n.upload_busy.as_secs_f64();
                }
            }
            println!(
                "  peers at {name}: {:.1} % of their upload used while present, busy {:.1} %",
                100.0 * sent / could.max(1.0),
                100.0 * busy / could.max(1.0)
            );
        }
        // When each piece first arrived anywhere, and at half the peers.
        let pieces = report.nodes[1]
            .order
            .len()
            .max(report.nodes[1].missing.len());
        let mut arrivals: Vec<Vec<f64>> = vec![Vec::new(); pieces.max(1)];
        for (_, n) in report.leechers() {
            for (&p, t) in n.order.iter().zip(&n.done_at) {
                if let Some(a) = arrivals.get_mut(p as usize) {
                    a.push(t.as_secs_f64());
                }
            }
        }
        let mut rows: Vec<(f64, f64, usize)> = arrivals
            .iter_mut()
            .enumerate()
            .map(|(i, a)| {
                a.sort_by(f64::total_cmp);
                (
                    percentile(a, 50.0),
                    a.first().copied().unwrap_or(f64::NAN),
                    i,
                )
            })
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (half, first, i) in rows.iter().take(8) {
            println!("  piece {i}: first {first:.2} s, at half the peers {half:.2} s");
        }
        // The last to complete, and what they are.
        let mut tail: Vec<(f64, u32)> = report
            .leechers()
            .filter_map(|(i, n)| Some(((n.completed? - n.joined?).as_secs_f64(), i)))
            .collect();
        tail.sort_by(|a, b| b.0.total_cmp(&a.0));
        for &(t, i) in tail.iter().take(6) {
            let spec = &specs[i as usize];
            println!(
                "  slowest: peer {i} took {t:.2} s; joined {:.1} s, up {} Mbit/s, down {} Mbit/s, latency {} ms",
                spec.join.as_secs_f64(),
                spec.up / MBIT,
                spec.down.unwrap_or(0) / MBIT,
                spec.latency.as_millis()
            );
        }
        let firsts: Vec<f64> = {
            let mut f: Vec<f64> = rows.iter().map(|r| r.1).collect();
            f.sort_by(f64::total_cmp);
            f
        };
        println!(
            "  first arrivals: p50 {:.2} p90 {:.2} p100 {:.2} s",
            percentile(&firsts, 50.0),
            percentile(&firsts, 90.0),
            percentile(&firsts, 100.0)
        );
    }
    if !violations.is_empty() {
        println!(
            "  {} picker invariant violations, e.g. {}",
            violations.len(),
            violations[0]
        );
    }
    if !all_done {
        println!(
            "  not every peer that stayed completed: {:?}",
            report.outcome
        );
    }
    Ok(())
}
