//! `bench-control`: the control API of a running `swarm node` (issue #16, "Speed and
//! memory"): a `status` call through the API (median of 100, bar < 5 ms), a `/metrics` scrape
//! (median of 100, bar < 10 ms), the peak RSS of an
//! idle node with 1,000 pins (bar ≤ 32 MiB), and CLI commands through a running node against
//! the same commands on the stopped store (bar ≤ 1.2x).
//!
//! A store of 1,000 pins (small distinct files) is made in-process; then the real `swarm node`
//! runs on it on 127.0.0.1 without the DHT, idles for `--idle` seconds (default 10), answers
//! 100 status calls and 100 scrapes from this process's `api::Client`, and `swarm ls`, `swarm add` + `swarm rm`
//! and `swarm gc` are timed `--reps` times each through it, each run alternating with the same
//! command on a copy of the store that no node holds.
//!
//! ```text
//! cargo build --release -p swarm-cli -p swarm-benches
//! target/release/bench-control [--swarm target/release/swarm] [--reps 30] [--idle 10]
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use swarm_benches::disk;
use swarm_benches::proc::{Proc, swarm_cmd};
use swarm_benches::report::{Bar, Table, fmt_rate_mib, median};
use swarm_engine::api;
use swarm_engine::store::{AddOptions, Store};

const PINS: usize = 1000;
const STATUS_CALLS: usize = 100;
const PATIENCE: Duration = Duration::from_secs(60);

struct Opts {
    swarm: PathBuf,
    reps: usize,
    idle: u64,
}

fn parse() -> Result<Option<Opts>> {
    let exe = std::env::current_exe()?;
    let mut o = Opts {
        swarm: exe.with_file_name("swarm"),
        reps: 30,
        idle: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--swarm" => o.swarm = value("--swarm")?.into(),
            "--reps" => {
                o.reps = value("--reps")?.parse().context("--reps needs a number")?;
                ensure!((1..=1000).contains(&o.reps), "--reps must be 1 to 1000");
            }
            "--idle" => {
                o.idle = value("--idle")?.parse().context("--idle needs seconds")?;
                ensure!((1..=600).contains(&o.idle), "--idle must be 1 to 600 s");
            }
            "-h" | "--help" => {
                println!("usage: bench-control [--swarm PATH] [--reps N] [--idle SECS]");
                return Ok(None);
            }
            other => bail!("unknown argument {other}; see --help"),
        }
    }
    ensure!(
        o.swarm.is_file(),
        "no swarm binary at {}; build it (cargo build --release -p swarm-cli) or pass --swarm",
        o.swarm.display()
    );
    Ok(Some(o))
}

fn main() -> Result<()> {
    let Some(o) = parse()? else {
        return Ok(());
    };
    println!(
        "bench-control: {PINS} pins, {} rep(s) per command, {} s idle; {} cpu(s)",
        o.reps,
        o.idle,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("store");
    let made = Instant::now();
    let files = disk::write_small_files(&dir.path().join("files"), PINS, 2000)?;
    add_each(&store, &files)?;
    println!("made {PINS} pins in {:.1} s", made.elapsed().as_secs_f64());
    let extra = dir.path().join("extra.bin");
    disk::write_test_file(&extra, 1 << 20)?;

    let mut table = Table::new(8, 40, fmt_rate_mib);
    let mut node = start_node(&o.swarm, &store)?;
    std::thread::sleep(Duration::from_secs(o.idle));
    let idle_kib = node.vm_hwm_kib().context("no VmHWM for the node")?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = api::Client::new(api::socket_path(&store));
    let mut status_ms = Vec::with_capacity(STATUS_CALLS);
    for _ in 0..STATUS_CALLS {
        let t = Instant::now();
        let s = rt.block_on(client.status())?;
        status_ms.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(s.pins.len() == PINS, "status lists {} pins", s.pins.len());
    }
    let mut scrape_ms = Vec::with_capacity(STATUS_CALLS);
    for _ in 0..STATUS_CALLS {
        let t = Instant::now();
        let text = rt.block_on(client.metrics())?;
        scrape_ms.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(
            text.contains(&format!("\nswarm_pins {PINS}\n")),
            "the scrape does not count {PINS} pins"
        );
    }
    let after_kib = node.vm_hwm_kib().context("no VmHWM for the node")?;

    let copy = dir.path().join("copy");
    add_each(&copy, &files)?;
    let (through, stopped) = time_commands(&o, &store, &copy, &extra)?;
    node.stop("TERM");

    table.area("api");
    table.millis_bar(
        &format!("status with {PINS} pins, {STATUS_CALLS} calls"),
        &status_ms,
        5.0,
    );
    table.millis_bar(
        &format!("/metrics with {PINS} pins, {STATUS_CALLS} scrapes"),
        &scrape_ms,
        10.0,
    );
    table.area("memory");
    table.rss_bar(&format!("idle node, {PINS} pins"), &[idle_kib], 32);
    table.rss("after the status calls and scrapes", &[after_kib]);
    table.area("cli");
    for ((name, via), (_, direct)) in through.iter().zip(&stopped) {
        table.time(&format!("{name}, through the node"), 0, via, "n/a");
        table.time(&format!("{name}, stopped store"), 0, direct, "n/a");
        table.ratio(
            &format!("{name}: through / stopped"),
            Some(median(via) / median(direct)),
            Bar::AtMost(1.2),
        );
    }
    println!();
    table.print();
    Ok(())
}

/// A pin for each of `files`.
fn add_each(store: &Path, files: &[PathBuf]) -> Result<()> {
    let s = Store::open(store)?;
    for f in files {
        s.add_paths(std::slice::from_ref(f), &AddOptions::default())?;
    }
    Ok(())
}

fn start_node(bin: &Path, store: &Path) -> Result<Proc> {
    let mut cmd = swarm_cmd(bin, store);
    cmd.args(["node", "--listen", "127.0.0.1:0"]);
    let mut p = Proc::spawn(&mut cmd, false)?;
    p.wait_for(PATIENCE, |l| l.starts_with("control API on").then_some(()))?;
    Ok(p)
}

/// Seconds per run of each command, `reps` times, on `live` (through its node) and on `copy`
/// (no node), alternating.
type Runs = Vec<(&'static str, Vec<f64>)>;

fn time_commands(o: &Opts, live: &Path, copy: &Path, extra: &Path) -> Result<(Runs, Runs)> {
    let mut runs = [Vec::new(), Vec::new()];
    for _ in 0..o.reps {
        for (i, store) in [live, copy].into_iter().enumerate() {
            runs[i].push(once(o, store, extra)?);
        }
    }
    let [a, b] = runs;
    Ok((by_command(a), by_command(b)))
}

/// One round on `store`: seconds for ls, add + rm, gc.
fn once(o: &Opts, store: &Path, extra: &Path) -> Result<[f64; 3]> {
    let ls = timed(swarm_cmd(&o.swarm, store).arg("ls"))?;
    let t = Instant::now();
    let out = swarm_cmd(&o.swarm, store).arg("add").arg(extra).output()?;
    ensure!(out.status.success(), "swarm add failed: {out:?}");
    let root = swarm_benches::parse_root(&String::from_utf8_lossy(&out.stdout))?;
    let rm = swarm_cmd(&o.swarm, store).args(["rm", &root]).output()?;
    ensure!(rm.status.success(), "swarm rm failed: {rm:?}");
    let add_rm = t.elapsed().as_secs_f64();
    let gc = timed(swarm_cmd(&o.swarm, store).arg("gc"))?;
    Ok([ls, add_rm, gc])
}

/// Seconds `cmd` took to run to its exit, waited on directly: a polling
/// wait's step would be most of a command that takes 10 ms.
fn timed(cmd: &mut Command) -> Result<f64> {
    let t = Instant::now();
    let out = cmd.output()?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(out.status.success(), "{cmd:?} failed: {out:?}");
    Ok(secs)
}

fn by_command(rounds: Vec<[f64; 3]>) -> Runs {
    let names = ["ls (1,000 pins)", "add 1 MiB + rm", "gc"];
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, rounds.iter().map(|r| r[i]).collect()))
        .collect()
}
