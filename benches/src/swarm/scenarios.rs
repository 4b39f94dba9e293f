//! The scenarios of issues #6 and #14, each on fresh stores in a directory of its own, each
//! printing its figures as it goes and returning the headline ones.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use swarm_benches::disk::settle;
use swarm_benches::proc;
use swarm_benches::report::{fmt_mib, fmt_rate_mib};

use super::fleet::{self, Fetched, Fetcher, Seed, split};
use super::{
    AFTER_OVER_FRESH, AFTER_REPS, CAP, CAP_BYTES, Ctx, DIST_OVER_IDEAL, LEAVE_AT,
    MULTI_SOURCE_SPEEDUP, SEEDERS,
};

/// Headline figures of scenario 1.
pub(crate) struct Distribution {
    /// From launching the fetchers to the last result line; `None` if not all completed.
    pub(crate) all_secs: Option<f64>,
    pub(crate) incomplete: usize,
}

/// Headline figures of scenario 2: seconds from one seeder and from [`SEEDERS`].
pub(crate) struct MultiSource {
    pub(crate) one: f64,
    pub(crate) many: f64,
}

/// Headline figures of scenario 3.
pub(crate) struct SeedLeaves {
    /// When the seed was killed (seconds after the launch) and the fetchers' average then.
    pub(crate) left_at: f64,
    pub(crate) average: f64,
    pub(crate) completed: usize,
    /// From the seed leaving to the last result line, if all completed.
    pub(crate) after: Option<f64>,
}

/// Headline figures of scenario 4: median seconds of a fetch from a seed.
pub(crate) struct AfterExits {
    /// Into a fresh store, from a node started anew that has served nobody,
    /// in turns with `after`.
    pub(crate) fresh: f64,
    /// Into a fresh store, after the seed served fetchers that have since exited.
    pub(crate) after: f64,
    /// Again into a store that has everything already.
    pub(crate) nothing_left: f64,
}

/// Size over the upload cap: the least time in which a seed capped at [`CAP`] sends one copy.
fn ideal(ctx: &Ctx) -> f64 {
    ctx.s.size as f64 / CAP_BYTES as f64
}

/// `secs`, but never longer than `--timeout-secs`.
fn bound(ctx: &Ctx, secs: f64) -> Duration {
    Duration::from_secs_f64(secs).min(ctx.s.timeout)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn pct(part: u64, whole: u64) -> f64 {
    part as f64 * 100.0 / whole.max(1) as f64
}

/// Launches `n` fetchers at once, into stores under `dir`.
fn launch(ctx: &Ctx, dir: &Path, n: usize, peers: &[&str], extra: &[&str]) -> Result<Vec<Fetcher>> {
    (1..=n)
        .map(|i| {
            let store = dir.join(format!("fetcher-{i}"));
            Fetcher::launch(ctx, format!("fetcher {i}"), &store, peers, extra)
        })
        .collect()
}

/// One seed and N fetchers, every upload capped: how long until all have the file.
pub(crate) fn distribution(ctx: &mut Ctx, dir: &Path) -> Result<Distribution> {
    let n = ctx.s.more.fetchers;
    let size = ctx.s.size;
    let ideal = ideal(ctx);
    println!(
        "== 1. distribution: 1 seed + {n} fetchers, every node's upload capped at {CAP}/s, {} ==",
        fmt_mib(size)
    );
    let seed_store = dir.join("seed");
    fleet::add(ctx, &seed_store)?;
    settle();
    let seed = Seed::start(ctx, &seed_store, &["--upload-limit", CAP])?;
    println!("seed {} on {}", short(&seed.id), seed.addr);

    let wait = bound(ctx, 2.0 * n as f64 * ideal + 60.0);
    let t0 = Instant::now();
    let mut fetchers = launch(ctx, dir, n, &[&seed.addr], &["--upload-limit", CAP])?;
    println!(
        "launched {n} fetchers (swarm fetch --seed --upload-limit {CAP}); waiting at most {} s",
        wait.as_secs()
    );
    let all = fleet::watch(&mut fetchers, t0, t0 + wait, |f| {
        f.iter().all(|f| f.result.is_some()) || f.iter().all(Fetcher::settled)
    });
    let all = all && fetchers.iter().all(|f| f.result.is_some());
    fleet::stop_all(&mut fetchers);
    let seed_id = seed.id.clone();
    seed.stop();

    let (mut from_seed, mut from_others) = (0, 0);
    let mut overheads = Vec::new();
    for f in &fetchers {
        let (s, o) = split(&f.sources(), &seed_id);
        from_seed += s;
        from_others += o;
        match &f.result {
            Some((r, at)) => {
                let over = (r.received as f64 / size as f64 - 1.0) * 100.0;
                overheads.push(over);
                println!(
                    "  {:<10} done after {:7.3} s (swarm: {:.3} s)  received {} ({over:+.2} %)  \
                     from the seed {}, from fetchers {} ({:.0} %)",
                    f.name,
                    at.as_secs_f64(),
                    r.seconds,
                    fmt_mib(r.received),
                    fmt_mib(s),
                    fmt_mib(o),
                    pct(o, s + o)
                );
                check_size(r, size)?;
            }
            None => println!(
                "  {:<10} DID NOT COMPLETE ({:.0} %): {}",
                f.name,
                f.fraction() * 100.0,
                f.why_not()
            ),
        }
    }
    let incomplete = fetchers.iter().filter(|f| f.result.is_none()).count();
    let all_secs = all.then(|| {
        fetchers
            .iter()
            .filter_map(|f| f.result.as_ref().map(|(_, at)| at.as_secs_f64()))
            .fold(0.0, f64::max)
    });
    match all_secs {
        Some(t) => {
            let r = t / ideal;
            println!("all {n} done after {t:.3} s");
            println!(
                "  / ideal ({} / {CAP}/s = {ideal:.2} s): {r:.2}x  (target ≤ {DIST_OVER_IDEAL}x: \
                 {})",
                fmt_mib(size),
                verdict(r <= DIST_OVER_IDEAL)
            );
            let serial = n as f64 * ideal;
            println!(
                "  / one after another ({n} × {ideal:.2} s = {serial:.2} s): {:.3}x ({:.1}x faster)",
                t / serial,
                serial / t
            );
        }
        None => println!(
            "{incomplete} of {n} fetchers did not complete within {} s: FAIL",
            wait.as_secs()
        ),
    }
    if let (Some(lo), Some(hi)) = (
        overheads.iter().copied().reduce(f64::min),
        overheads.iter().copied().reduce(f64::max),
    ) {
        println!(
            "  received / size − 1: {lo:+.2} % to {hi:+.2} % (counts the Bao encoding; scenario \
             2a shows it with a single source)"
        );
    }
    println!(
        "  the seed sent {:.2} copies ({} in the fetchers' sources under the seed's id)",
        from_seed as f64 / size as f64,
        fmt_mib(from_seed)
    );
    println!(
        "  fetchers got {:.1} % of their bytes from each other ({} of {})",
        pct(from_others, from_seed + from_others),
        fmt_mib(from_others),
        fmt_mib(from_seed + from_others)
    );
    Ok(Distribution {
        all_secs,
        incomplete,
    })
}

/// One fetcher from one capped seeder, then from [`SEEDERS`] of them.
pub(crate) fn multi_source(ctx: &mut Ctx, dir: &Path) -> Result<MultiSource> {
    let size = ctx.s.size;
    println!(
        "== 2. multi-source: 1 fetcher (download uncapped) from seeders each capped at \
         {CAP}/s, {} (the full size) ==",
        fmt_mib(size)
    );
    let stores: Vec<_> = (1..=SEEDERS)
        .map(|i| dir.join(format!("seeder-{i}")))
        .collect();
    for store in &stores {
        fleet::add(ctx, store)?;
    }
    settle();
    let mut secs = Vec::new();
    for (label, n) in [("(a) 1 seeder ", 1), ("(b) 4 seeders", SEEDERS)] {
        let seeds = stores[..n]
            .iter()
            .map(|s| Seed::start(ctx, s, &["--upload-limit", CAP]))
            .collect::<Result<Vec<_>>>()?;
        let store = dir.join(format!("fetcher-{n}"));
        let peers: Vec<&str> = seeds.iter().map(|s| s.addr.as_str()).collect();
        let fetched = fetch_once(ctx, &store, &peers);
        let ids: Vec<String> = seeds.iter().map(|s| s.id.clone()).collect();
        for seed in seeds {
            seed.stop();
        }
        let (wall, f) = fetched?;
        check_size(&f, size)?;
        let from: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| format!("seeder {} {}", i + 1, fmt_mib(split(&f.sources, id).0)))
            .collect();
        println!(
            "{label}: {wall:7.3} s {:>10} (swarm: {:.3} s)  received {} ({:+.2} %)  from {}",
            fmt_rate_mib(size, wall),
            f.seconds,
            fmt_mib(f.received),
            (f.received as f64 / size as f64 - 1.0) * 100.0,
            from.join(", ")
        );
        secs.push(wall);
        swarm_benches::disk::remove_dir(&store)?;
    }
    let (one, many) = (secs[0], secs[1]);
    let r = one / many;
    println!(
        "  rate with {SEEDERS} seeders / with 1: {r:.2}x  (target ≥ {MULTI_SOURCE_SPEEDUP}x: {})",
        verdict(r >= MULTI_SOURCE_SPEEDUP)
    );
    Ok(MultiSource { one, many })
}

/// A timed `swarm fetch --no-export` from `peers` into a fresh `store`: wall seconds and result.
fn fetch_once(ctx: &Ctx, store: &Path, peers: &[&str]) -> Result<(f64, Fetched)> {
    let mut cmd: Command = ctx.net.command(&ctx.swarm);
    cmd.env("SWARM_NO_DHT", "1")
        .arg("--store")
        .arg(store)
        .args([
            "--json",
            "fetch",
            &ctx.root,
            "--no-export",
            "--progress",
            "none",
        ]);
    for p in peers {
        cmd.args(["--peer", p]);
    }
    let wait = bound(ctx, 3.0 * ideal(ctx) + 60.0);
    let m = proc::measure(&mut cmd, wait, None, false)?;
    Ok((m.secs, Fetched::find(&m.stdout)?))
}

/// One uncapped seed, N fetchers capped both ways; the seed is SIGKILLed when the fetchers'
/// average reaches [`LEAVE_AT`].
pub(crate) fn seed_leaves(ctx: &mut Ctx, dir: &Path) -> Result<SeedLeaves> {
    let n = ctx.s.more.fetchers;
    let size = ctx.s.size;
    let ideal = ideal(ctx);
    let at = LEAVE_AT * 100.0;
    println!(
        "== 3. the seed leaves at {at:.0} %: 1 seed (uncapped) + {n} fetchers, each capped at \
         {CAP}/s down and up, {} ==",
        fmt_mib(size)
    );
    let seed_store = dir.join("seed");
    fleet::add(ctx, &seed_store)?;
    settle();
    let mut seed = Seed::start(ctx, &seed_store, &[])?;
    println!("seed {} on {}", short(&seed.id), seed.addr);

    let t0 = Instant::now();
    let caps = ["--upload-limit", CAP, "--download-limit", CAP];
    let mut fetchers = launch(ctx, dir, n, &[&seed.addr], &caps)?;
    let average = |f: &[Fetcher]| f.iter().map(Fetcher::fraction).sum::<f64>() / n as f64;
    let wait = bound(ctx, 4.0 * ideal + 60.0);
    let reached = fleet::watch(&mut fetchers, t0, t0 + wait, |f| {
        average(f) >= LEAVE_AT || f.iter().all(Fetcher::settled)
    });
    seed.kill();
    let left = Instant::now();
    let left_at = (left - t0).as_secs_f64();
    let avg = average(&fetchers);
    let each: Vec<String> = fetchers
        .iter()
        .map(|f| format!("{:.0}", f.fraction() * 100.0))
        .collect();
    // Whom each could turn to once the seed is gone.
    let peers: Vec<String> = fetchers
        .iter()
        .map(|f| f.progress.as_ref().map_or(0, |p| p.peers.len()).to_string())
        .collect();
    if !reached {
        println!(
            "the fetchers' average did not reach {at:.0} % within {} s",
            wait.as_secs()
        );
    }
    println!(
        "seed SIGKILLed {left_at:.3} s after the launch, the fetchers' average at {:.1} % \
         (each, %: {}; peers each listed then, the seed included: {})",
        avg * 100.0,
        each.join(" "),
        peers.join(" ")
    );
    let before: Vec<bool> = fetchers.iter().map(|f| f.result.is_some()).collect();

    let wait = bound(ctx, (4.0 * ideal).max(120.0));
    println!("waiting at most {} s for the fetchers", wait.as_secs());
    fleet::watch(&mut fetchers, t0, left + wait, |f| {
        f.iter().all(Fetcher::settled)
    });
    fleet::stop_all(&mut fetchers);

    let mut last = 0.0f64;
    for (f, done_before) in fetchers.iter().zip(before) {
        let (s, o) = split(&f.sources(), &seed.id);
        let from = format!(
            "from the seed {}, from fetchers {} ({:.0} %)",
            fmt_mib(s),
            fmt_mib(o),
            pct(o, s + o)
        );
        match &f.result {
            Some((r, done)) => {
                let after = done.as_secs_f64() - left_at;
                last = last.max(after);
                let when = if done_before {
                    format!(
                        "done {:.3} s after the launch, before the seed left",
                        done.as_secs_f64()
                    )
                } else {
                    format!("done {after:7.3} s after the seed left")
                };
                println!("  {:<10} {when}  {from}", f.name);
                check_size(r, size)?;
            }
            None => println!(
                "  {:<10} DID NOT COMPLETE, had about {:.1} %: {}  ({from}, from its progress \
                 lines)",
                f.name,
                f.fraction() * 100.0,
                f.why_not()
            ),
        }
    }
    let completed = fetchers.iter().filter(|f| f.result.is_some()).count();
    let after = (completed == n).then_some(last);
    match after {
        Some(t) => println!("all {n} completed, {t:.3} s after the seed left: PASS"),
        None => println!("{completed} of {n} completed after the seed left: FAIL"),
    }
    Ok(SeedLeaves {
        left_at,
        average: avg,
        completed,
        after,
    })
}

fn check_size(f: &Fetched, size: u64) -> Result<()> {
    ensure!(
        f.size == size,
        "swarm fetch reports {} bytes, the file has {size}",
        f.size
    );
    Ok(())
}

/// The start of a node id, as swarm prints it short.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Fetches from a seed after it served N fetchers that exited (half stopped, half
/// SIGKILLed), in turns with fetches from a node started anew on a store of its own (it has
/// served nobody), each [`AFTER_REPS`] times into fresh stores; and once more into a store
/// that has it all. Medians. Taken in turns, the two meet the same disk; before this the
/// fresh runs came before the fleet, on a quiet disk.
pub(crate) fn after_exits(ctx: &mut Ctx, dir: &Path) -> Result<AfterExits> {
    let n = ctx.s.more.fetchers;
    println!(
        "== 4. a fetch after the seed served {n} fetchers that exited: 1 seed (uncapped), {}, \
         median of {AFTER_REPS} ==",
        fmt_mib(ctx.s.size)
    );
    let seed_store = dir.join("seed");
    fleet::add(ctx, &seed_store)?;
    // The fresh node: the same release in a store of its own, served by a
    // node started anew for each fetch, so it has served nobody.
    let fresh_store = dir.join("fresh-seed");
    fleet::add(ctx, &fresh_store)?;
    settle();
    let seed = Seed::start(ctx, &seed_store, &[])?;
    let served = seed.addr.clone();
    let timed = |label: &str, store: &Path, keep: bool, from: &str| -> Result<f64> {
        let (wall, f) = fetch_once(ctx, store, &[from])?;
        check_size(&f, ctx.s.size)?;
        println!(
            "  {label:<28} {wall:7.3} s  (swarm: {:.3} s, peers {})",
            f.seconds,
            f.sources.len()
        );
        if !keep {
            swarm_benches::disk::remove_dir(store)?;
        }
        Ok(wall)
    };
    let fresh_fetch = |label: &str, into: &Path| -> Result<f64> {
        let node = Seed::start(ctx, &fresh_store, &[])?;
        let wall = timed(label, into, false, &node.addr);
        node.stop();
        wall
    };
    // Before the fleet: both seeds serve once, so both stores are read
    // into the page cache alike (not counted).
    timed(
        "seed, before the fleet",
        &dir.join("warm-0"),
        false,
        &served,
    )?;
    fresh_fetch("fresh node, before the fleet", &dir.join("warm-1"))?;
    // The fetchers: each fetches, then stays as a seed until told to go.
    let t0 = Instant::now();
    let mut fleet = launch(ctx, dir, n, &[served.as_str()], &[])?;
    let wait = bound(ctx, 60.0 + 3.0 * n as f64);
    fleet::watch(&mut fleet, t0, t0 + wait, |f| {
        f.iter().all(Fetcher::settled)
    });
    let (kill, term) = fleet.split_at_mut(n / 2);
    for f in kill.iter_mut() {
        f.kill();
    }
    fleet::stop_all(term);
    fleet::stop_all(&mut fleet);
    let done = fleet.iter().filter(|f| f.result.is_some()).count();
    println!(
        "  {done} of {n} fetchers done, then {} SIGKILLed and {} stopped",
        n / 2,
        n - n / 2
    );
    // What they wrote is not the next fetch's to flush.
    settle();
    // Taken in turns, so that both meet the same disk: the fleet's writes
    // are still being flushed.
    let mut after = Vec::new();
    let mut fresh = Vec::new();
    for i in 0..AFTER_REPS {
        let keep = i + 1 == AFTER_REPS;
        after.push(timed(
            "after they exited",
            &dir.join(format!("after-{i}")),
            keep,
            &served,
        )?);
        fresh.push(fresh_fetch(
            "a fresh node",
            &dir.join(format!("fresh-{i}")),
        )?);
    }
    let last = dir.join(format!("after-{}", AFTER_REPS - 1));
    let nothing_left = timed("again, nothing left to fetch", &last, true, &served)?;
    seed.stop();
    let (fresh, after) = (median(&mut fresh), median(&mut after));
    let r = after / fresh;
    println!(
        "  after / fresh: {r:.3}x  (target ≤ {AFTER_OVER_FRESH}x: {}); nothing left: {nothing_left:.3} s",
        verdict(r <= AFTER_OVER_FRESH)
    );
    Ok(AfterExits {
        fresh,
        after,
        nothing_left,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
