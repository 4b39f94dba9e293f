//! `bench-swarm`: the swarming figures of issue #6, from the real `swarm` binary on loopback.
//!
//! Four scenarios, in this order, each on fresh stores, every process stopped at its end:
//!
//! 1. distribution: one seed and N fetchers (default 8), every node's upload capped at
//!    20 MiB/s, the fetchers started at once. The time until all have the file, against the
//!    ideal (size / cap: the seed has to send one copy; bar 1.5x in issue #6) and against serving them one
//!    after another; each fetcher's time; bytes received beyond the size; the copies the seed
//!    sent; the share of bytes the fetchers got from each other. Bar 1.2x (issue #14).
//! 2. multi-source: one fetcher (download uncapped) from one seeder capped at 20 MiB/s, then
//!    from four such seeders, each with its own store; bar: four at least 3x the rate of one.
//! 3. the seed leaves at 30 %: one uncapped seed and N fetchers capped at 20 MiB/s down and up;
//!    when the fetchers' average progress reaches 30 % the seed is SIGKILLed. Whether all
//!    complete (the bar), how long after, and what each got from the seed and from the others;
//!    a fetcher that gives up is shown with its error.
//! 4. after exits (issue #14): fetches of the release from an uncapped seed into fresh stores,
//!    before and after the seed served N fetchers that then exited (half SIGKILLed, half
//!    stopped), median of five each; bar: after at most 1.1x before. Then one fetch into a
//!    store that already has it all.
//!
//! No DHT (`SWARM_NO_DHT=1`): the fetchers are given the seed only and find each other by peer
//! exchange. Every process runs in a network namespace that holds only loopback (as bench-net
//! does; `--host-network` to skip that), and every wait has a deadline. The swarm binary is
//! copied into the scratch directory first, so a rebuild during the run changes nothing.
//!
//! The exit status is non-zero only if a scenario could not be measured (a process failed, or
//! a fetch in scenario 1 or 2 did not complete); a missed target, and fetchers that do not
//! complete after the seed leaves (that is scenario 3's figure), are reported, not judged.
//!
//! ```text
//! cargo build --release -p swarm-cli -p swarm-benches
//! target/release/bench-swarm [--quick] [--size-mib 256] [--fetchers 8] [--dir DIR]
//! ```

// A crate root looks for its modules beside itself; these live in swarm/.
#[path = "swarm/fleet.rs"]
mod fleet;
#[path = "swarm/scenarios.rs"]
mod scenarios;

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use swarm_benches::MIB;
use swarm_benches::ab::describe_binary;
use swarm_benches::args::{self, Flags};
use swarm_benches::disk::{self, Scratch, settle};
use swarm_benches::netns::Net;
use swarm_benches::report::fmt_mib;

use self::scenarios::{AfterExits, Distribution, MultiSource, SeedLeaves};

const USAGE: &str = "\
usage: bench-swarm [--quick] [--size-mib N] [--fetchers N] [--dir DIR] [--swarm PATH]
                   [--timeout-secs N] [--host-network] [--only LIST] [--leave-runs N]

  --quick            a smoke run: 64 MiB and 4 fetchers (unless given)
  --size-mib N       size of the release in MiB [default: 256]
  --fetchers N       fetchers in scenarios 1 and 3 [default: 8]
  --dir DIR          where to create the scratch directory; must be on a real disk, not tmpfs
                     [default: $TMPDIR, else /var/tmp]
  --swarm PATH       the swarm binary [default: target/release/swarm in this workspace]
  --timeout-secs N   the longest any single wait may last [default: 600]
  --host-network     run on the host's network instead of a loopback-only network namespace
                     (which needs root or user namespaces)
  --only LIST        the scenarios to run, e.g. 3,4 [default: all]
  --leave-runs N     run scenario 3 (the seed leaves) N times and count the runs in which
                     every fetcher completed [default: 1]

Build first: cargo build --release -p swarm-cli -p swarm-benches";

/// Every capped upload or download, as the swarm flags take it and in bytes per second.
const CAP: &str = "20MiB";
const CAP_BYTES: u64 = 20 * MIB;
/// Issue #14 (was 1.5 in #6): all fetchers done within this multiple of size / cap.
const DIST_OVER_IDEAL: f64 = 1.2;
/// Issue #6: [`SEEDERS`] seeders at least this multiple of one seeder's rate.
const MULTI_SOURCE_SPEEDUP: f64 = 3.0;
const SEEDERS: usize = 4;
/// The fetchers' average progress at which the seed leaves.
const LEAVE_AT: f64 = 0.30;
/// Issue #14: a fetch after the seed served fetchers that exited, against one from a fresh
/// seed; and how many of each the median is taken from.
const AFTER_OVER_FRESH: f64 = 1.1;
const AFTER_REPS: usize = 5;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(mut flags) = Flags::parse(&args, USAGE, SwarmFlags::take)? else {
        return Ok(());
    };
    ensure!(
        flags.reps.is_none(),
        "bench-swarm runs every scenario once; --reps does not apply\n\n{USAGE}"
    );
    let quick = flags.more.quick;
    flags.size_mib = flags.size_mib.or(Some(if quick { 64 } else { 256 }));
    let settings = Settings::from_flags(flags, |f| Plan {
        fetchers: f.fetchers.unwrap_or(if quick { 4 } else { 8 }),
        quick,
        host_network: f.host_network,
        only: f.only.clone().unwrap_or_default(),
        leave_runs: f.leave_runs.unwrap_or(1),
    })?;
    ensure!(
        (1..=32).contains(&settings.more.fetchers),
        "--fetchers must be between 1 and 32"
    );
    run(settings)
}

// ---------------------------------------------------------------------------------------------
// Arguments: what the flags say, then validated settings.

/// The flags of bench-swarm beyond the shared ones.
#[derive(Debug, Default)]
struct SwarmFlags {
    quick: bool,
    fetchers: Option<usize>,
    host_network: bool,
    only: Option<Vec<u32>>,
    leave_runs: Option<usize>,
}

impl SwarmFlags {
    /// Takes `name` if it is one of bench-swarm's own flags.
    fn take(&mut self, name: &str, value: &mut args::Value<'_>) -> Result<bool> {
        match name {
            "--quick" => self.quick = true,
            "--fetchers" => {
                let v = value()?;
                let n = v
                    .parse()
                    .ok()
                    .with_context(|| format!("--fetchers wants a whole number, got {v:?}"))?;
                self.fetchers = Some(n);
            }
            "--host-network" => self.host_network = true,
            "--only" => {
                let v = value()?;
                let list: Option<Vec<u32>> = v
                    .split(',')
                    .map(|x| x.trim().parse().ok().filter(|n| (1..=4).contains(n)))
                    .collect();
                let list = list.with_context(|| {
                    format!("--only wants scenario numbers 1 to 4, e.g. 1,3; got {v:?}")
                })?;
                self.only = Some(list);
            }
            "--leave-runs" => {
                let v = value()?;
                let n =
                    v.parse().ok().filter(|&n| n >= 1).with_context(|| {
                        format!("--leave-runs wants a whole number ≥ 1, got {v:?}")
                    })?;
                self.leave_runs = Some(n);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// What bench-swarm settles beyond the shared settings.
struct Plan {
    fetchers: usize,
    quick: bool,
    host_network: bool,
    /// The scenarios to run (all when empty).
    only: Vec<u32>,
    /// How many times scenario 3 runs.
    leave_runs: usize,
}

impl Plan {
    fn runs(&self, scenario: u32) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }
}

type Settings = args::Settings<Plan>;

// ---------------------------------------------------------------------------------------------
// The benchmark.

/// What every scenario shares.
struct Ctx {
    s: Settings,
    net: Net,
    /// The scratch directory.
    dir: PathBuf,
    /// The copy of the swarm binary that every process runs.
    swarm: PathBuf,
    input: PathBuf,
    /// Set by the first `swarm add`; the same in every store.
    root: String,
}

fn run(s: Settings) -> Result<()> {
    let n = s.more.fetchers;
    // At most: the input, a seed's store and N fetchers' stores (the data and its Bao
    // encoding), and the swarm binary.
    let need = (n as u64 + 2) * (s.size + s.size / 64) + 256 * MIB;
    let fs_type = disk::check_parent(&s.parent, need)?;
    let net = if s.more.host_network {
        Net::Host
    } else {
        Net::namespace()?
    };
    let scratch = Scratch::create(&s.parent, "swarm-bench-swarm")?;
    let dir = scratch.dir.clone();

    println!(
        "bench-swarm{}: {} release, {n} fetchers, caps {CAP}/s; {} cpu(s), {} MiB RAM",
        if s.more.quick { " (--quick)" } else { "" },
        fmt_mib(s.size),
        thread::available_parallelism().map_or(0, |n| n.get()),
        disk::mem_total_kib().map_or(0, |k| k >> 10),
    );
    // Other work on this machine skews every figure; say how busy it was.
    println!("load:    {} (/proc/loadavg, before)", load_average());
    println!("scratch: {} ({fs_type})", dir.display());
    println!("network: {}", net.describe());
    let swarm = dir.join("swarm");
    fs::copy(&s.swarm, &swarm).with_context(|| format!("could not copy {}", s.swarm.display()))?;
    println!(
        "swarm:   {} ({}), run from a copy",
        s.swarm.display(),
        describe_binary(&s.swarm)
    );

    let input = dir.join("release.bin");
    let t = Instant::now();
    disk::write_test_file(&input, s.size)?;
    settle();
    println!(
        "release: {} written in {:.2} s (xorshift64, synced)\n",
        fmt_mib(s.size),
        t.elapsed().as_secs_f64()
    );

    let mut ctx = Ctx {
        s,
        net,
        dir,
        swarm,
        input,
        root: String::new(),
    };
    let mut failed = Vec::new();
    let plan = &ctx.s.more;
    let (one, two, three, four) = (plan.runs(1), plan.runs(2), plan.runs(3), plan.runs(4));
    let leave_runs = plan.leave_runs;
    let dist = one
        .then(|| {
            scenario(
                &mut ctx,
                "1-distribution",
                scenarios::distribution,
                &mut failed,
            )
        })
        .flatten();
    if let Some(d) = &dist
        && d.incomplete > 0
    {
        failed.push("distribution: not every fetcher completed".to_owned());
    }
    let multi = two
        .then(|| {
            scenario(
                &mut ctx,
                "2-multi-source",
                scenarios::multi_source,
                &mut failed,
            )
        })
        .flatten();
    let mut leaves = Vec::new();
    for _ in 0..if three { leave_runs } else { 0 } {
        if let Some(l) = scenario(
            &mut ctx,
            "3-seed-leaves",
            scenarios::seed_leaves,
            &mut failed,
        ) {
            leaves.push(l);
        }
    }
    let after = four
        .then(|| {
            scenario(
                &mut ctx,
                "4-after-exits",
                scenarios::after_exits,
                &mut failed,
            )
        })
        .flatten();

    summary(&ctx, dist.as_ref(), multi.as_ref(), &leaves, after.as_ref());
    drop(ctx);
    drop(scratch);
    if !failed.is_empty() {
        bail!("not measured: {}", failed.join("; "));
    }
    Ok(())
}

/// Runs one scenario in a fresh directory, removed afterwards; a failure is printed and noted
/// in `failed`, and the run goes on.
fn scenario<T>(
    ctx: &mut Ctx,
    name: &str,
    f: fn(&mut Ctx, &Path) -> Result<T>,
    failed: &mut Vec<String>,
) -> Option<T> {
    let r = disk::fresh_dir(ctx.dir.join(name)).and_then(|dir| {
        let r = f(ctx, &dir);
        if let Err(e) = disk::remove_dir(&dir) {
            eprintln!("warning: {e:#}");
        }
        r
    });
    // Flush what the scenario wrote, so the next one does not pay for it.
    settle();
    println!();
    match r {
        Ok(t) => Some(t),
        Err(e) => {
            println!("{name}: FAILED: {e:#}\n");
            failed.push(format!("{name}: {e:#}"));
            None
        }
    }
}

/// The three headline figures, and how to run this again.
fn summary(
    ctx: &Ctx,
    dist: Option<&Distribution>,
    multi: Option<&MultiSource>,
    leaves: &[SeedLeaves],
    after: Option<&AfterExits>,
) {
    let n = ctx.s.more.fetchers;
    let ideal = ctx.s.size as f64 / CAP_BYTES as f64;
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    println!("== summary ==");
    match dist {
        Some(Distribution {
            all_secs: Some(t), ..
        }) => println!(
            "distribution, 1 seed + {n} fetchers:  all done in {t:.3} s = {:.2}x the ideal \
             {ideal:.2} s (target ≤ {DIST_OVER_IDEAL}x: {}); {:.1}x faster than one after another",
            t / ideal,
            verdict(t / ideal <= DIST_OVER_IDEAL),
            n as f64 * ideal / t
        ),
        Some(d) => println!(
            "distribution, 1 seed + {n} fetchers:  {} of {n} did not complete: FAIL",
            d.incomplete
        ),
        None if ctx.s.more.runs(1) => println!("distribution:  not measured (see FAILED above)"),
        None => {}
    }
    let size = ctx.s.size;
    match multi {
        Some(m) => println!(
            "multi-source, {SEEDERS} seeders / 1:  {:.2}x ({:.1} vs {:.1} MiB/s; target ≥ \
             {MULTI_SOURCE_SPEEDUP}x: {})",
            m.one / m.many,
            size as f64 / MIB as f64 / m.many,
            size as f64 / MIB as f64 / m.one,
            verdict(m.one / m.many >= MULTI_SOURCE_SPEEDUP)
        ),
        None if ctx.s.more.runs(2) => println!("multi-source:  not measured (see FAILED above)"),
        None => {}
    }
    for l in leaves {
        let outcome = match l.after {
            Some(t) => format!("all {n} completed, {t:.3} s after it left"),
            None => format!("{} of {n} completed", l.completed),
        };
        println!(
            "seed leaves at {:.1} % ({:.3} s):  {outcome} ({})",
            l.average * 100.0,
            l.left_at,
            verdict(l.after.is_some())
        );
    }
    if leaves.len() > 1 {
        let all = leaves.iter().filter(|l| l.after.is_some()).count();
        println!(
            "seed leaves:  all {n} completed in {all} of {} runs ({})",
            leaves.len(),
            verdict(all == leaves.len())
        );
    }
    match after {
        Some(a) => println!(
            "after {n} fetchers exited:  {:.3} s against {:.3} s from a fresh seed = {:.3}x \
             (target ≤ {AFTER_OVER_FRESH}x: {}); with nothing left to fetch {:.3} s",
            a.after,
            a.fresh,
            a.after / a.fresh,
            verdict(a.after / a.fresh <= AFTER_OVER_FRESH),
            a.nothing_left
        ),
        None if ctx.s.more.runs(4) => println!("after exits:  not measured (see FAILED above)"),
        None => {}
    }
    println!("load:    {} (/proc/loadavg, after)", load_average());
    println!("command: {}", command_line());
}

/// This program's command line, quoted for a shell where needed.
fn command_line() -> String {
    env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}
