//! `bench-net`: the loopback bars of issue #3, all figures from one run on this machine.
//!
//! One seeder, one fetcher, 127.0.0.1, a file of `--size-mib` on a real disk:
//!
//! - ours: `swarm node` seeding, timed `swarm fetch` into a fresh store, three ways, since the
//!   anchors differ in whether they keep a store and copy out of it: `-o DIR` (the store hands
//!   the file over), `--keep -o DIR` (keeps a pinned copy, exports another) and `--no-export`;
//! - anchors: `sendme` (iroh-blobs), `rqbit` (BitTorrent over TCP), and raw quinn memory to
//!   memory on one stream, with the engine's transport settings and socket buffers (the
//!   ceiling for our transport as configured) and with quinn's defaults;
//! - bars: ours / rqbit at most 1.5x, sendme / ours at least 2x (ratios of times);
//!   ours / raw quinn is informative;
//! - peak RSS of the seeding node and the fetcher;
//! - resume: a fetch SIGKILLed halfway, `swarm check`, then the fetch again: the share of what
//!   was verified before the kill that is fetched again (target: under 5 %);
//! - with `--baseline PATH` (the previous main), an A/B: each of ours runs with both binaries
//!   (seeder and fetcher the same binary, each seeding a store it made from the same file),
//!   A B, B A, … from rep to rep; the medians of each, new / baseline, the seeder's CPU
//!   seconds per GiB served and both sides' peak RSS; the resume check runs with both too.
//!
//! Every contender runs as two processes and every rep gets a fresh fetching side; the order
//! rotates from rep to rep and medians are reported. The networked children run in a network
//! namespace of their own that holds only loopback (`--host-network` to skip that).
//!
//! A contender that fails is reported and dropped, and the run goes on. The exit status is
//! non-zero only if one of ours (or the resume check) failed; a missed bar is not a failure:
//! it reports, it does not judge.
//!
//! ```text
//! cargo build --release -p swarm-cli -p swarm-benches
//! target/release/bench-net [--size-mib 1024] [--reps 3] [--dir DIR] [--swarm PATH]
//!                          [--baseline PATH]
//! ```

// A crate root looks for its modules beside itself; these live in net/.
#[path = "net/anchors.rs"]
mod anchors;
#[path = "net/ours.rs"]
mod ours;
#[path = "net/raw_quinn.rs"]
mod raw_quinn;

use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use swarm_benches::ab::{self, Side, copy_binary, describe_binary};
use swarm_benches::args::{self, Flags};
use swarm_benches::disk::{self, Scratch, settle};
use swarm_benches::netns::Net;
use swarm_benches::report::{Bar, Table, fmt_kib, fmt_mib, fmt_rate_mb, median, ratio_of_medians};
use swarm_benches::{MIB, parse_root, proc};

use self::anchors::{Found, Rqbit, Sendme};
use self::ours::Bin;

const USAGE: &str = "\
usage: bench-net [--size-mib N] [--reps N] [--dir DIR] [--swarm PATH] [--baseline PATH]
                 [--sendme PATH] [--rqbit PATH] [--timeout-secs N] [--host-network]

  --size-mib N       size of the test file in MiB [default: 1024]
  --reps N           repetitions of every transfer; the median is reported [default: 3]
  --dir DIR          where to create the scratch directory; must be on a real disk, not tmpfs
                     [default: $TMPDIR, else /var/tmp]
  --swarm PATH       the swarm binary [default: target/release/swarm in this workspace]
  --baseline PATH    a second swarm binary (the previous main) for an A/B: each of our fetches
                     (seeder and fetcher both the binary under test) runs with both, alternating
                     which goes first from rep to rep, and an A/B section reports the medians of
                     each, new / baseline, seeder CPU s/GiB and peak RSS; the resume check too
  --sendme PATH      the sendme binary [default: ~/.cargo/bin/sendme, else $PATH]; skipped if
                     missing
  --rqbit PATH       the rqbit binary [default: ~/.cargo/bin/rqbit, else $PATH]; skipped if
                     missing
  --timeout-secs N   give up on any single command after this long [default: 600]
  --host-network     run the transfers on the host's network instead of a loopback-only
                     network namespace (which needs root or user namespaces)

Build first: cargo build --release -p swarm-cli -p swarm-benches";

/// The bars of issue #3, as ratios of times.
const OURS_OVER_RQBIT: f64 = 1.5;
const SENDME_OVER_OURS: f64 = 2.0;
const REFETCHED_FRACTION: f64 = 0.05;
/// Issue #17's bar: `swarm fetch TICKET` from `swarm share` within 1.1x of `fetch --peer`.
const TICKET_OVER_PEER: f64 = 1.1;

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(raw_quinn::SERVER) => return raw_quinn::server(&args[1..]),
        Some(raw_quinn::CLIENT) => return raw_quinn::client(&args[1..]),
        _ => {}
    }
    let Some(flags) = Flags::parse(&args, USAGE, NetFlags::take)? else {
        return Ok(());
    };
    let baseline = flags.more.baseline.clone().map(ab::baseline).transpose()?;
    let settings = Settings::from_flags(flags, |f| Anchors {
        sendme: anchors::find("sendme", f.sendme),
        rqbit: anchors::find("rqbit", f.rqbit),
        host_network: f.host_network,
        baseline,
    })?;
    run(settings)
}

// ---------------------------------------------------------------------------------------------
// Arguments: what the flags say, then validated settings.

/// The flags of bench-net beyond the shared ones.
#[derive(Debug, Default)]
struct NetFlags {
    sendme: Option<PathBuf>,
    rqbit: Option<PathBuf>,
    host_network: bool,
    baseline: Option<PathBuf>,
}

impl NetFlags {
    /// Takes `name` if it is one of bench-net's own flags.
    fn take(&mut self, name: &str, value: &mut args::Value<'_>) -> Result<bool> {
        match name {
            "--sendme" => self.sendme = Some(value()?.into()),
            "--rqbit" => self.rqbit = Some(value()?.into()),
            "--host-network" => self.host_network = true,
            "--baseline" => self.baseline = Some(value()?.into()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// What bench-net settles beyond the shared settings.
struct Anchors {
    sendme: Found,
    rqbit: Found,
    host_network: bool,
    /// The previous main, canonical, if an A/B was asked for.
    baseline: Option<PathBuf>,
}

type Settings = args::Settings<Anchors>;

// ---------------------------------------------------------------------------------------------
// The benchmark.

/// What every contender shares.
struct Ctx {
    s: Settings,
    net: Net,
    dir: PathBuf,
    input: PathBuf,
    input_hash: blake3::Hash,
    /// The binary under test and the baseline, each with the seeder's store it made.
    ours: Bin,
    base: Option<Bin>,
    /// The test file's root: the same in both seeders' stores.
    root: String,
    /// Numbers the fresh directories.
    made: usize,
}

impl Ctx {
    /// A path in the scratch directory that nothing uses yet.
    fn fresh_path(&mut self, prefix: &str) -> PathBuf {
        self.made += 1;
        self.dir.join(format!("{prefix}-{}", self.made))
    }

    /// The binary (and seeder's store) of `side`.
    fn bin(&self, side: Side) -> Result<&Bin> {
        match side {
            Side::New => Ok(&self.ours),
            Side::Base => self.base.as_ref().context("no --baseline given"),
        }
    }

    fn fresh_dir(&mut self, prefix: &str) -> Result<PathBuf> {
        let p = self.fresh_path(prefix);
        disk::fresh_dir(p)
    }

    /// The name every receiver gives the file.
    fn input_name(&self) -> &Path {
        Path::new(self.input.file_name().unwrap_or_default())
    }

    /// Checks (untimed) that a transfer wrote the test file's bytes to `path`.
    fn verify(&self, path: &Path, who: &str) -> Result<()> {
        let got = disk::blake3_file(path).with_context(|| format!("{who} wrote no file"))?;
        ensure!(
            got == self.input_hash,
            "{who} wrote different bytes to {}",
            path.display()
        );
        Ok(())
    }
}

/// One timed transfer.
struct Run {
    /// Wall clock of the fetching process, start to exit.
    secs: f64,
    /// Peak RSS of the fetching process and (if known) of the seeding one, KiB.
    fetch_kib: Option<u64>,
    seed_kib: Option<u64>,
    /// CPU seconds of the seeding process while it served (ours only).
    seed_cpu: Option<f64>,
    /// Bytes received, as ours reports them (Bao encoding included).
    received: Option<u64>,
    /// Whatever else the contender reported.
    detail: String,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    OursExport,
    OursTicket,
    OursKeep,
    OursStore,
    Sendme,
    Rqbit,
    QuinnEngine,
    QuinnDefaults,
}

impl Who {
    /// Ours: the three ways of `swarm fetch`, each measured with both binaries in an A/B.
    fn is_ours(self) -> bool {
        matches!(
            self,
            Who::OursExport | Who::OursTicket | Who::OursKeep | Who::OursStore
        )
    }

    /// The short name the A/B section uses.
    fn short(self) -> &'static str {
        match self {
            Who::OursExport => "fetch -o DIR",
            Who::OursTicket => "fetch TICKET -o DIR",
            Who::OursKeep => "fetch --keep -o DIR",
            Who::OursStore => "fetch --no-export",
            _ => self.label(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Who::OursExport => "ours: swarm fetch -o DIR (hands the file over)",
            Who::OursTicket => "ours: swarm share, then swarm fetch TICKET -o DIR",
            Who::OursKeep => "ours: swarm fetch --keep -o DIR (keeps, copies)",
            Who::OursStore => "ours: swarm fetch --no-export (store only)",
            Who::Sendme => "sendme receive (store + export)",
            Who::Rqbit => "rqbit download (into the file)",
            Who::QuinnEngine => "raw quinn, engine transport settings",
            Who::QuinnDefaults => "raw quinn, quinn default settings",
        }
    }
}

fn run(s: Settings) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: bench-net is a debug build; the raw quinn figures will be low");
    }
    // At most: input, the seeder's store, sendme's sender store, and a fetch with export.
    let fs_type = disk::check_parent(&s.parent, 5 * s.size + 256 * MIB)?;
    let net = if s.more.host_network {
        Net::Host
    } else {
        Net::namespace()?
    };
    let scratch = Scratch::create(&s.parent, "swarm-bench-net")?;
    let dir = scratch.dir.clone();

    s.print_header("bench-net");
    println!("scratch: {} ({fs_type})", dir.display());
    println!("network: {}", net.describe());
    // quinn asks for large UDP socket buffers; these caps decide what it gets.
    let sysctl = |k: &str| net.sysctl(k).unwrap_or_else(|| "?".into());
    println!(
        "         net.core.rmem_max {}, net.core.wmem_max {}",
        sysctl("core/rmem_max"),
        sysctl("core/wmem_max")
    );
    let ours_swarm = copy_binary(&s.swarm, &dir, "swarm-new")?;
    println!(
        "swarm:   {} ({}), run from a copy",
        s.swarm.display(),
        describe_binary(&s.swarm)
    );
    let base_swarm = match &s.more.baseline {
        Some(b) => {
            println!(
                "baseline: {} ({}), run from a copy; A/B alternating from rep to rep",
                b.display(),
                describe_binary(b)
            );
            Some(copy_binary(b, &dir, "swarm-base")?)
        }
        None => None,
    };
    for (name, found) in [("sendme", &s.more.sendme), ("rqbit", &s.more.rqbit)] {
        match found {
            Found::At(p) => println!("{name:<8} {}", p.display()),
            Found::Missing(looked) => {
                println!("{name:<8} not installed (looked in {looked}): skipped");
            }
        }
    }

    let input = dir.join("input.bin");
    let t = Instant::now();
    disk::write_test_file(&input, s.size)?;
    let input_hash = disk::blake3_file(&input)?;
    settle();
    println!(
        "test file written in {:.2} s (xorshift64, synced)",
        t.elapsed().as_secs_f64()
    );

    // The seeder's store, once and untimed; with a baseline, one made by each binary, since
    // neither need read a store the other wrote.
    let seed_add = |swarm: &Path, store: &Path| -> Result<String> {
        let mut add = std::process::Command::new(swarm);
        add.arg("--store").arg(store).arg("add").arg(&input);
        let added = proc::measure(&mut add, s.timeout, None, false)?;
        let root = parse_root(&added.stdout)?;
        settle();
        println!("seeder:  swarm add in {:.2} s, root {root}", added.secs);
        Ok(root)
    };
    let ours = Bin {
        seed_store: dir.join("seed-store"),
        swarm: ours_swarm,
    };
    let root = seed_add(&ours.swarm, &ours.seed_store)?;
    let base = match base_swarm {
        Some(swarm) => {
            let seed_store = dir.join("seed-store-base");
            let base_root = seed_add(&swarm, &seed_store)?;
            ensure!(
                base_root == root,
                "the baseline's swarm add gave root {base_root}, the new one {root}"
            );
            Some(Bin { swarm, seed_store })
        }
        None => None,
    };
    println!();

    let mut ctx = Ctx {
        s,
        net,
        dir,
        input,
        input_hash,
        ours,
        base,
        root,
        made: 0,
    };
    let mut sendme = match &ctx.s.more.sendme {
        Found::At(p) => Some(Sendme::new(p.clone())),
        Found::Missing(_) => None,
    };
    let mut rqbit = match &ctx.s.more.rqbit {
        Found::At(p) => Some(Rqbit::new(p.clone())),
        Found::Missing(_) => None,
    };
    let result = measure_all(&mut ctx, &mut sendme, &mut rqbit);
    // Stop the long-running senders whatever happened (their Drop would SIGKILL them).
    let sendme_seed = sendme.as_mut().and_then(Sendme::stop);
    let rqbit_seed = rqbit.as_mut().and_then(Rqbit::stop);
    let m = result?;

    println!();
    let mut table = report(
        &ctx,
        &m.runs,
        &m.failed,
        m.resume.as_ref(),
        sendme_seed,
        rqbit_seed,
    );
    if ctx.base.is_some() {
        report_ab(&mut table, &ctx, &m);
    }
    table.print();
    drop(ctx);
    drop(scratch);
    let resume_failed =
        |r: &Option<Resumed>, what| r.as_ref().and_then(|r| r.as_ref().err()).map(|_| what);
    let ours_failed: Vec<_> = m
        .failed
        .keys()
        .filter(|w| w.is_ours())
        .map(|w| w.label())
        .chain(m.base_failed.keys().map(|_| "the baseline's fetches"))
        .chain(resume_failed(&m.resume, "resume check"))
        .chain(resume_failed(&m.base_resume, "the baseline's resume check"))
        .collect();
    ensure!(
        ours_failed.is_empty(),
        "failed: {} (see FAILED above)",
        ours_failed.join("; ")
    );
    Ok(())
}

type Runs = BTreeMap<Who, Vec<Run>>;
type Failed = BTreeMap<Who, String>;
type Resumed = Result<ours::Resume, String>;

/// Everything measured: the binary under test and the anchors, and (with a baseline) the
/// baseline's runs of ours.
struct Measurements {
    runs: Runs,
    failed: Failed,
    resume: Option<Resumed>,
    base_runs: Runs,
    base_failed: Failed,
    base_resume: Option<Resumed>,
}

/// The transfers, `reps` times each in rotating order (ours with each binary, A B, B A, …),
/// then the resume check (with each binary).
fn measure_all(
    ctx: &mut Ctx,
    sendme: &mut Option<Sendme>,
    rqbit: &mut Option<Rqbit>,
) -> Result<Measurements> {
    let mut who = vec![
        Who::OursExport,
        Who::OursTicket,
        Who::OursKeep,
        Who::OursStore,
    ];
    if sendme.is_some() {
        who.push(Who::Sendme);
    }
    if rqbit.is_some() {
        who.push(Who::Rqbit);
    }
    who.extend([Who::QuinnEngine, Who::QuinnDefaults]);

    let mut runs = Runs::new();
    let mut failed = Failed::new();
    let mut base_runs = Runs::new();
    let mut base_failed = Failed::new();
    let reps = ctx.s.reps;
    for rep in 0..reps {
        for step in 0..who.len() {
            // Rotate so that none of them always runs first, or always right after another.
            let w = who[(rep + step) % who.len()];
            if w.is_ours() {
                for &side in Side::order(rep, ctx.base.is_some()) {
                    let (runs, failed) = match side {
                        Side::New => (&mut runs, &mut failed),
                        Side::Base => (&mut base_runs, &mut base_failed),
                    };
                    if failed.contains_key(&w) {
                        continue;
                    }
                    let mode = match w {
                        Who::OursExport => ours::Mode::HandOver,
                        Who::OursKeep => ours::Mode::Keep,
                        Who::OursTicket => ours::Mode::Ticket,
                        _ => ours::Mode::Store,
                    };
                    let r = ours::fetch(ctx, rep, mode, side);
                    let label = match side {
                        Side::New => w.label().to_owned(),
                        Side::Base => format!("baseline: {}", w.short()),
                    };
                    record(rep, reps, &label, ctx.s.size, w, r, runs, failed);
                    settle();
                }
                continue;
            }
            if failed.contains_key(&w) {
                continue;
            }
            let r = match w {
                Who::OursExport | Who::OursTicket | Who::OursKeep | Who::OursStore => continue,
                Who::Sendme => match sendme.as_mut() {
                    Some(a) => a.receive(ctx, rep),
                    None => continue,
                },
                Who::Rqbit => match rqbit.as_mut() {
                    Some(a) => a.download(ctx, rep),
                    None => continue,
                },
                Who::QuinnEngine => anchors::raw_quinn(ctx, false),
                Who::QuinnDefaults => anchors::raw_quinn(ctx, true),
            };
            record(
                rep,
                reps,
                w.label(),
                ctx.s.size,
                w,
                r,
                &mut runs,
                &mut failed,
            );
            settle();
        }
    }

    // Both binaries are killed at the same point: half the new one's median.
    let full = runs.get(&Who::OursStore).map(|r| median_secs(r));
    let mut resume = None;
    let mut base_resume = None;
    for &side in Side::order(0, ctx.base.is_some()) {
        let Some(full) = full else { break };
        let r = ours::resume(ctx, full, side);
        let who = match side {
            Side::New => "resume",
            Side::Base => "resume (baseline)",
        };
        let r = match r {
            Ok(r) => {
                println!(
                    "{who}: killed after {:.3} s; check: {} verified ({} problems); \
                     fetch again: {} received in {:.3} s",
                    r.kill_at,
                    fmt_mib(r.verified),
                    r.problems,
                    fmt_mib(r.received),
                    r.secs
                );
                Ok(r)
            }
            Err(e) => {
                println!("{who}: FAILED: {e:#}");
                Err(format!("{e:#}"))
            }
        };
        match side {
            Side::New => resume = Some(r),
            Side::Base => base_resume = Some(r),
        }
        settle();
    }
    Ok(Measurements {
        runs,
        failed,
        resume,
        base_runs,
        base_failed,
        base_resume,
    })
}

/// Prints a run and keeps it, or reports a failure and drops the contender: one failure must
/// not cost the other figures of a long run; the exit status says so at the end.
#[allow(clippy::too_many_arguments)]
fn record(
    rep: usize,
    reps: usize,
    label: &str,
    size: u64,
    w: Who,
    r: Result<Run>,
    runs: &mut Runs,
    failed: &mut Failed,
) {
    match r {
        Ok(run) => {
            print_run(rep + 1, reps, label, size, &run);
            runs.entry(w).or_default().push(run);
        }
        Err(e) => {
            println!("rep {}/{reps}  {label}: FAILED, dropped: {e:#}", rep + 1);
            failed.insert(w, format!("{e:#}"));
        }
    }
}

fn print_run(rep: usize, reps: usize, label: &str, size: u64, run: &Run) {
    let kib = |k: Option<u64>| k.map_or_else(|| "n/a".into(), |k| fmt_kib(k).trim().to_owned());
    let mut seed = match run.seed_kib {
        Some(_) => format!(", seeder {}", kib(run.seed_kib)),
        None => String::new(),
    };
    if let Some(cpu) = run.seed_cpu {
        seed.push_str(&format!(" {cpu:.2} s CPU"));
    }
    println!(
        "rep {rep}/{reps}  {label:<48} {:8.3} s {:>10}  fetcher {}{seed}  ({})",
        run.secs,
        fmt_rate_mb(size, run.secs),
        kib(run.fetch_kib),
        run.detail
    );
}

fn median_secs(runs: &[Run]) -> f64 {
    median(&runs.iter().map(|r| r.secs).collect::<Vec<_>>())
}

fn report(
    ctx: &Ctx,
    runs: &Runs,
    failed: &Failed,
    resume: Option<&Resumed>,
    sendme_seed: Option<u64>,
    rqbit_seed: Option<u64>,
) -> Table {
    let size = ctx.s.size;
    let secs = |w: Who| -> Vec<f64> {
        runs.get(&w)
            .map(|r| r.iter().map(|r| r.secs).collect())
            .unwrap_or_default()
    };
    let med = |w: Who| runs.get(&w).map(|r| median_secs(r));
    let why = |w: Who, found: Option<&Found>| -> String {
        if failed.contains_key(&w) {
            "failed".into()
        } else if let Some(Found::Missing(_)) = found {
            "not installed".into()
        } else {
            "n/a".into()
        }
    };
    let mut t = Table::new(8, 50, fmt_rate_mb);

    t.area("transfer");
    for (w, found) in [
        (Who::OursExport, None),
        (Who::OursTicket, None),
        (Who::OursKeep, None),
        (Who::OursStore, None),
        (Who::Sendme, Some(&ctx.s.more.sendme)),
        (Who::Rqbit, Some(&ctx.s.more.rqbit)),
        (Who::QuinnEngine, None),
        (Who::QuinnDefaults, None),
    ] {
        t.time(w.label(), size, &secs(w), &why(w, found));
    }

    t.area("ratios");
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let (export, store) = (med(Who::OursExport), med(Who::OursStore));
    let (sendme, rqbit) = (med(Who::Sendme), med(Who::Rqbit));
    let quinn = med(Who::QuinnEngine);
    let at_most = Bar::AtMost(OURS_OVER_RQBIT);
    let at_least = Bar::AtLeast(SENDME_OVER_OURS);
    t.ratio("ours (-o DIR) / rqbit", ratio(export, rqbit), at_most);
    // Issue #17: the ticket alone, from `swarm share`, against `--peer` to a node.
    t.ratio(
        "fetch TICKET (swarm share) / fetch --peer (swarm node)",
        ratio(med(Who::OursTicket), export),
        Bar::AtMost(TICKET_OVER_PEER),
    );
    t.ratio("ours (--no-export) / rqbit", ratio(store, rqbit), at_most);
    t.ratio("sendme / ours (-o DIR)", ratio(sendme, export), at_least);
    t.ratio(
        "sendme / ours (--no-export)",
        ratio(sendme, store),
        at_least,
    );
    let info = |r: Option<f64>| r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}x"));
    t.info(
        "sendme / ours (--keep -o DIR: both keep a store)",
        info(ratio(sendme, med(Who::OursKeep))),
    );
    t.info(
        "ours (--no-export) / raw quinn (engine settings)",
        info(ratio(store, quinn)),
    );
    t.info(
        "ours (-o DIR) / raw quinn (engine settings)",
        info(ratio(export, quinn)),
    );
    t.info(
        "raw quinn: engine settings / quinn defaults",
        info(ratio(quinn, med(Who::QuinnDefaults))),
    );

    t.area("memory");
    let kibs = |w: Who, seed: bool| -> Vec<u64> {
        runs.get(&w)
            .map(|r| {
                r.iter()
                    .filter_map(|r| if seed { r.seed_kib } else { r.fetch_kib })
                    .collect()
            })
            .unwrap_or_default()
    };
    // Issue #3: peak RSS of each side at most 64 MiB for the transfer.
    t.rss_bar(
        "peak RSS swarm fetch -o DIR",
        &kibs(Who::OursExport, false),
        64,
    );
    t.rss_bar(
        "peak RSS swarm fetch --keep -o DIR",
        &kibs(Who::OursKeep, false),
        64,
    );
    t.rss_bar(
        "peak RSS swarm fetch --no-export",
        &kibs(Who::OursStore, false),
        64,
    );
    let mut node = kibs(Who::OursExport, true);
    node.extend(kibs(Who::OursKeep, true));
    node.extend(kibs(Who::OursStore, true));
    t.rss_bar("peak RSS swarm node, seeding one fetch", &node, 64);
    t.rss("peak RSS sendme receive", &kibs(Who::Sendme, false));
    t.rss("peak RSS sendme send, all reps", sendme_seed.as_slice());
    t.rss("peak RSS rqbit download", &kibs(Who::Rqbit, false));
    t.rss("peak RSS rqbit share, all reps", rqbit_seed.as_slice());
    t.rss(
        "peak RSS raw quinn client (engine settings)",
        &kibs(Who::QuinnEngine, false),
    );
    t.rss(
        "peak RSS raw quinn server (engine settings)",
        &kibs(Who::QuinnEngine, true),
    );

    t.area("resume");
    match resume {
        // Nothing verified before the kill: the fraction would divide by zero.
        Some(Ok(r)) if !r.finished_early && r.verified == 0 => t.info(
            "nothing was verified before the kill at",
            format!("{:.3} s", r.kill_at),
        ),
        Some(Ok(r)) if !r.finished_early => {
            t.info(
                "SIGKILL of swarm fetch --no-export after",
                format!("{:.3} s", r.kill_at),
            );
            let share = r.verified as f64 / r.size.max(1) as f64 * 100.0;
            t.info(
                "verified before the kill (swarm check)",
                format!("{} ({share:.0} %)", fmt_mib(r.verified)),
            );
            t.info("received by the fetch after it", fmt_mib(r.received));
            t.percent(
                "refetched fraction of what was verified",
                Some(r.refetched_fraction()),
                Bar::AtMost(REFETCHED_FRACTION),
            );
            // `received` counts the Bao encoding, so even a perfect resume shows its share.
            let full = runs
                .get(&Who::OursStore)
                .and_then(|r| r.iter().find_map(|r| r.received));
            if let Some(full) = full {
                let overhead = full as f64 / size as f64;
                let missing = r.size.saturating_sub(r.verified) as f64 * overhead;
                let refetched = (r.received as f64 - missing) / r.verified.max(1) as f64;
                t.info(
                    &format!("   the same, the Bao encoding ({overhead:.4}x) taken out"),
                    format!("{:.2} %", refetched * 100.0),
                );
            }
        }
        Some(Err(_)) => t.info("failed (see FAILED above)", String::new()),
        Some(Ok(r)) => t.info(
            "the fetch finished before the kill",
            format!("{:.3} s", r.kill_at),
        ),
        None => t.info("not run", String::new()),
    }
    t
}

/// The A/B section: each of ours with both binaries, new / baseline, what the seeder used.
fn report_ab(t: &mut Table, ctx: &Ctx, m: &Measurements) {
    let size = ctx.s.size;
    let gib = size as f64 / (1u64 << 30) as f64;
    let secs = |runs: &Runs, w: Who| -> Vec<f64> {
        runs.get(&w)
            .map(|r| r.iter().map(|r| r.secs).collect())
            .unwrap_or_default()
    };
    // Seeder CPU seconds per GiB served, median over the runs.
    let cpu = |runs: &Runs, w: Who| -> String {
        let per_gib: Vec<f64> = runs
            .get(&w)
            .map(|r| {
                r.iter()
                    .filter_map(|r| r.seed_cpu)
                    .map(|c| c / gib)
                    .collect()
            })
            .unwrap_or_default();
        match per_gib.is_empty() {
            true => "n/a".into(),
            false => format!("{:.3} s", median(&per_gib)),
        }
    };
    let rss = |runs: &Runs, w: Who, seed: bool| -> String {
        runs.get(&w)
            .and_then(|r| {
                r.iter()
                    .filter_map(|r| if seed { r.seed_kib } else { r.fetch_kib })
                    .max()
            })
            .map_or("n/a".into(), |k| fmt_kib(k).trim().to_owned())
    };
    let why = |failed: &Failed, w: Who| {
        if failed.contains_key(&w) {
            "failed"
        } else {
            "n/a"
        }
    };
    t.area("A/B");
    for w in [
        Who::OursExport,
        Who::OursTicket,
        Who::OursKeep,
        Who::OursStore,
    ] {
        let (new, base) = (secs(&m.runs, w), secs(&m.base_runs, w));
        t.time(
            &format!("{}, new", w.short()),
            size,
            &new,
            why(&m.failed, w),
        );
        let label = format!("{}, baseline", w.short());
        t.time(&label, size, &base, why(&m.base_failed, w));
        t.info(
            "   new / baseline",
            ratio_of_medians(&new, &base).map_or("n/a".into(), |r| format!("{r:.3}x")),
        );
        t.info(
            "   seeder CPU per GiB served: new, baseline",
            format!("{}, {}", cpu(&m.runs, w), cpu(&m.base_runs, w)),
        );
        t.info(
            "   peak RSS seeder: new, baseline",
            format!("{}, {}", rss(&m.runs, w, true), rss(&m.base_runs, w, true)),
        );
        t.info(
            "   peak RSS fetcher: new, baseline",
            format!(
                "{}, {}",
                rss(&m.runs, w, false),
                rss(&m.base_runs, w, false)
            ),
        );
    }
    // The second fetch of the resume check re-verifies what the first left (new binary).
    let resumed = |r: &Option<Resumed>| match r {
        Some(Ok(r)) if !r.finished_early => {
            format!("{:.3} s ({} verified before)", r.secs, fmt_mib(r.verified))
        }
        Some(Ok(_)) => "finished before the kill".into(),
        Some(Err(_)) => "failed".into(),
        None => "not run".into(),
    };
    t.info("resume: fetch again, new", resumed(&m.resume));
    t.info("resume: fetch again, baseline", resumed(&m.base_resume));
}
