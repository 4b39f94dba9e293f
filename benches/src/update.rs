//! `bench-update`: what self-update costs, on loopback with a DHT of its own.
//!
//! Runs the example application (`examples/selfupdate`, release build) as
//! a real process, as its end-to-end test does, and times:
//! - v1 starting, finding v2 on the DHT, fetching it, installing it and
//!   restarting as v2, until v2 has checked again and exits;
//! - a start that finds it is up to date (the cost of checking);
//! - a broken v2 rolled back to v1, over the three starts it takes;
//! - `Installer::apply` alone (stage, hash, keep the previous, swap),
//!   against the floor for a crash-safe swap: copying the file and syncing.
//!
//! Build first: `cargo build --release -p swarm-benches -p swarm-selfupdate-example`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use swarm_benches::disk::{Scratch, settle};
use swarm_benches::proc::{Measured, measure};
use swarm_engine::discovery::LocalDht;
use swarm_engine::node::Node;
use swarm_engine::release::SecretKey;
use swarm_engine::store::PublishOptions;
use swarm_engine::update::Installer;

const USAGE: &str = "usage: bench-update [--reps N] [--bin DIR]

  --reps N    repetitions of each figure (median printed), default 3
  --bin DIR   where app-v1, app-v2 and app-v2-broken are, default target/release";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-update: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut reps = 3usize;
    let mut bin = PathBuf::from("target/release");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => {
                reps = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .context("--reps needs a number above 0")?
            }
            "--bin" => bin = args.next().context("--bin needs a directory")?.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let exe = |name: &str| -> Result<PathBuf> {
        let p = bin.join(name);
        ensure!(
            p.is_file(),
            "{} is missing: cargo build --release -p swarm-selfupdate-example",
            p.display()
        );
        Ok(p)
    };
    let (v1, v2, broken) = (exe("app-v1")?, exe("app-v2")?, exe("app-v2-broken")?);
    let size = std::fs::metadata(&v2)?.len();
    let runtime = tokio::runtime::Runtime::new()?;

    let mut update = Vec::new();
    let mut check = Vec::new();
    let mut check_only = Vec::new();
    let mut peak_kib = 0;
    let mut rollback = Vec::new();
    for _ in 0..reps {
        let (u, c) = runtime.block_on(update_once(&v1, &v2))?;
        update.push(u.secs);
        check.push(c.secs);
        // The application prints how long `Updater::check` took.
        if let Some(ms) = c.stdout.lines().find_map(|l| {
            l.strip_prefix("checked in ")?
                .strip_suffix(" ms")?
                .parse::<f64>()
                .ok()
        }) {
            check_only.push(ms / 1000.0);
        }
        peak_kib = peak_kib.max(u.peak_kib.unwrap_or(0));
        rollback.push(runtime.block_on(rollback_once(&v1, &broken))?);
    }
    let mut apply = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..reps {
        let (a, f) = apply_once(&v1, &v2)?;
        apply.push(a);
        floor.push(f);
    }

    let mib = size as f64 / (1 << 20) as f64;
    println!(
        "self-update of a {mib:.1} MiB executable, loopback, local DHT of 5 nodes, {reps} reps (median, all)"
    );
    let row = |what: &str, runs: &[f64]| {
        let all: Vec<String> = runs.iter().map(|r| format!("{r:.3}")).collect();
        println!("  {what:<52} {:>8.3} s   [{}]", median(runs), all.join(" "));
    };
    row("v1 finds, fetches, installs v2 and runs as v2", &update);
    row("a start that checks and is up to date", &check);
    if check_only.len() == check.len() {
        row("  of which Updater::check (DHT join included)", &check_only);
        println!(
            "  {:<52} {:>8}",
            "  check within the 1 s bar (issue #20)",
            if median(&check_only) <= 1.0 {
                "PASS"
            } else {
                "MISS"
            }
        );
    } else {
        println!("  (this application does not print its check time)");
    }
    row(
        "update minus check (fetch, install, restart)",
        &diff(&update, &check),
    );
    row("broken v2 rolled back to v1 (3 starts)", &rollback);
    row(
        "Installer::apply (stage, hash, keep previous, swap)",
        &apply,
    );
    row("floor: copy the file and fsync it", &floor);
    println!(
        "  {:<52} {:>8.2}x",
        "apply / floor",
        median(&apply) / median(&floor).max(1e-9)
    );
    println!(
        "  {:<52} {:>8.1} MiB",
        "peak RSS of the application while updating",
        peak_kib as f64 / 1024.0
    );
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn diff(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// A local DHT and a publisher node on it.
struct World {
    dht: LocalDht,
    publisher: Node,
    key: SecretKey,
    dir: Scratch,
}

impl World {
    async fn new() -> Result<Self> {
        let dht = LocalDht::start(5)?;
        let publisher = Node::builder()
            .listen(([127, 0, 0, 1], 0).into())
            .dht(dht.config())
            .spawn()
            .await?;
        Ok(Self {
            dht,
            publisher,
            key: SecretKey::generate()?,
            dir: Scratch::create(&std::env::temp_dir(), "bench-update")?,
        })
    }

    async fn publish(&self, exe: &Path, version: &str) -> Result<()> {
        let opts = PublishOptions::new("selfupdate-demo", version.parse()?);
        self.publisher.publish(&self.key, &[exe], &opts).await?;
        Ok(())
    }

    fn install(&self, exe: &Path) -> Result<PathBuf> {
        let app = self.dir.dir.as_path().join("app");
        std::fs::copy(exe, &app)?;
        Ok(app)
    }

    /// Run the application to its end: seconds, peak RSS and what it
    /// printed on stdout.
    fn run(&self, app: &Path) -> Result<Measured> {
        let mut cmd = Command::new(app);
        cmd.arg("--data")
            .arg(self.dir.dir.join("data"))
            .args(["--publisher", &self.key.public().to_string()])
            .args(["--listen", "127.0.0.1:0", "--trial-starts", "2"])
            .env("SELFUPDATE_PRINT_CHECK_TIME", "1");
        for b in self.dht.config().bootstrap {
            cmd.args(["--bootstrap", &b]);
        }
        // The broken build exits non-zero on purpose: its output says.
        measure(&mut cmd, Duration::from_secs(300), None, true)
    }
}

async fn update_once(v1: &Path, v2: &Path) -> Result<(Measured, Measured)> {
    let w = World::new().await?;
    w.publish(v2, "2.0.0").await?;
    let app = w.install(v1)?;
    let update = tokio::task::block_in_place(|| w.run(&app))?;
    ensure!(
        update.stdout.contains("app 2.0.0 running"),
        "the update did not happen:\n{}",
        update.stdout
    );
    let check = tokio::task::block_in_place(|| w.run(&app))?;
    ensure!(
        check.stdout.contains("up to date"),
        "v2 did not start:\n{}",
        check.stdout
    );
    Ok((update, check))
}

async fn rollback_once(v1: &Path, broken: &Path) -> Result<f64> {
    let w = World::new().await?;
    w.publish(broken, "2.0.0").await?;
    let app = w.install(v1)?;
    // The first run installs the broken version, which then fails; it is
    // started again, as a supervisor would, until v1 runs again.
    let first = tokio::task::block_in_place(|| w.run(&app))?;
    ensure!(
        first.stdout.contains("updated to 2.0.0"),
        "the broken version was not installed:\n{}",
        first.stdout
    );
    let mut total = 0.0;
    for _ in 0..3 {
        let r = tokio::task::block_in_place(|| w.run(&app))?;
        total += r.secs;
        if r.stdout.contains("app 1.0.0 running") {
            return Ok(total);
        }
    }
    bail!("v1 did not come back after 3 starts")
}

/// `Installer::apply` of v2 over v1, and the floor: a copy and an fsync.
fn apply_once(v1: &Path, v2: &Path) -> Result<(f64, f64)> {
    let dir = Scratch::create(&std::env::temp_dir(), "bench-update")?;
    let app = dir.dir.as_path().join("app");
    std::fs::copy(v1, &app)?;
    let download = dir.dir.as_path().join("download");
    std::fs::copy(v2, &download)?;
    let hash = swarm_engine::Hash::from_bytes(*blake3::hash(&std::fs::read(v2)?).as_bytes());
    settle();
    let t = Instant::now();
    Installer::new(&app).apply(&download, hash, "2.0.0")?;
    let apply = t.elapsed().as_secs_f64();
    let copy = dir.dir.as_path().join("copy");
    settle();
    let t = Instant::now();
    std::fs::copy(&download, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    let floor = t.elapsed().as_secs_f64();
    Ok((apply, floor))
}
