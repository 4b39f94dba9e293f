//! Ours: `swarm node` seeding, `swarm fetch` into a fresh store, and the kill -9 resume check,
//! each with the binary under test or (for an A/B) the baseline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use swarm_benches::MIB;
use swarm_benches::ab::Side;
use swarm_benches::disk::remove_dir;
use swarm_benches::proc::{Proc, measure};

use super::{Ctx, Run};

/// One swarm binary and the seeder's store it made: the seeder and the fetcher of a run are
/// the same binary, since what is measured (serve-side checks included) lives in both.
pub(crate) struct Bin {
    /// A copy in the scratch directory, so a rebuild during the run changes nothing.
    pub(crate) swarm: PathBuf,
    /// The seeder's store, holding the test file under `Ctx::root`.
    pub(crate) seed_store: PathBuf,
}

/// A seeding `swarm node` on the prepared store, started fresh for each rep so that its peak
/// RSS and CPU time are that rep's seeding (and its store is opened afresh, as a restarted
/// seeder's is).
struct Node {
    proc: Proc,
    addr: String,
    /// CPU seconds once it listened: what starting up cost, taken out of the figure.
    cpu_at_start: Option<f64>,
}

/// What a seeding node used: peak RSS (KiB) and CPU seconds from listening to the stop.
struct NodeUse {
    kib: Option<u64>,
    cpu: Option<f64>,
}

impl Node {
    fn start(ctx: &Ctx, bin: &Bin) -> Result<Self> {
        let mut cmd = ctx.net.command(&bin.swarm);
        cmd.arg("--store")
            .arg(&bin.seed_store)
            .args(["node", "--listen", "127.0.0.1:0"]);
        let mut proc = Proc::spawn(&mut cmd, false)?;
        let addr = proc.wait_for(ctx.s.timeout, |l| {
            l.strip_prefix("listening on ").map(|a| a.trim().to_owned())
        })?;
        let cpu_at_start = proc.cpu_secs();
        Ok(Node {
            proc,
            addr,
            cpu_at_start,
        })
    }

    /// `swarm share INPUT` on the prepared store (the file is added again, which finds it
    /// stored, then served): `addr` is then the ticket it printed.
    fn share(ctx: &Ctx, bin: &Bin) -> Result<Self> {
        let mut cmd = ctx.net.command(&bin.swarm);
        cmd.arg("--store")
            .arg(&bin.seed_store)
            .arg("share")
            .arg(&ctx.input)
            .args(["--listen", "127.0.0.1:0"]);
        let mut proc = Proc::spawn(&mut cmd, false)?;
        let ticket = proc.wait_for(ctx.s.timeout, |l| {
            l.trim().starts_with("swt1").then(|| l.trim().to_owned())
        })?;
        let cpu_at_start = proc.cpu_secs();
        Ok(Node {
            proc,
            addr: ticket,
            cpu_at_start,
        })
    }

    /// Reads the node's peak RSS and CPU time, then stops it (SIGTERM; SIGKILL if it hangs).
    fn stop(mut self) -> NodeUse {
        let kib = self.proc.vm_hwm_kib();
        let cpu = self
            .proc
            .cpu_secs()
            .zip(self.cpu_at_start)
            .map(|(now, start)| now - start);
        if !self.proc.stop("TERM") {
            eprintln!("warning: swarm node did not stop on SIGTERM; killed it");
        }
        NodeUse { kib, cpu }
    }
}

/// How `swarm fetch` leaves the file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `-o DIR`: the store hands the file over to DIR (a hard link where it can).
    HandOver,
    /// `--keep -o DIR`: a pinned copy stays in the store, DIR gets a copy.
    Keep,
    /// `--no-export`: into the store only.
    Store,
    /// `-o DIR` from `swarm share`, given only its ticket.
    Ticket,
}

fn fetch_cmd(
    ctx: &Ctx,
    swarm: &Path,
    store: &Path,
    peer: &str,
    mode: Mode,
    out: Option<&Path>,
) -> Command {
    let mut cmd = ctx.net.command(swarm);
    cmd.arg("--store").arg(store).args(["--json", "fetch"]);
    match mode {
        // `peer` is the ticket: all it takes.
        Mode::Ticket => cmd.arg(peer),
        _ => cmd.args([ctx.root.as_str(), "--peer", peer]),
    };
    if mode == Mode::Keep {
        cmd.arg("--keep");
    }
    match out {
        Some(out) => cmd.arg("-o").arg(out),
        None => cmd.arg("--no-export"),
    };
    cmd
}

/// The fields of `swarm --json fetch` used here.
struct Fetched {
    size: u64,
    received: u64,
    seconds: f64,
    /// `timings`: seconds to the first source, the manifest and the first
    /// verified data (absent from builds before it).
    timings: Option<(f64, f64, f64)>,
}

impl Fetched {
    fn parse(stdout: &str) -> Result<Self> {
        let v: Value = last_json(stdout)?;
        let field = |name: &str| {
            v.get(name)
                .with_context(|| format!("swarm fetch printed no {name:?}: {stdout}"))
        };
        Ok(Fetched {
            size: field("size")?.as_u64().context("size")?,
            received: field("received")?.as_u64().context("received")?,
            seconds: field("seconds")?.as_f64().context("seconds")?,
            timings: v.get("timings").and_then(|t| {
                let at = |k: &str| t.get(k).and_then(Value::as_f64);
                Some((at("source")?, at("manifest")?, at("first_data")?))
            }),
        })
    }
}

/// The last line of `stdout` that parses as a JSON object.
fn last_json(stdout: &str) -> Result<Value> {
    stdout
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
        })
        .with_context(|| format!("no JSON object in {stdout:?}"))
}

/// One timed `swarm fetch` from a freshly started node into a fresh store, both run by the
/// `side` binary.
pub(crate) fn fetch(ctx: &mut Ctx, rep: usize, mode: Mode, side: Side) -> Result<Run> {
    let bin = ctx.bin(side)?;
    let node = match mode {
        Mode::Ticket => Node::share(ctx, bin)?,
        _ => Node::start(ctx, bin)?,
    };
    let swarm = bin.swarm.clone();
    let store = ctx.fresh_path("ours-store");
    let out = match mode {
        Mode::HandOver | Mode::Keep | Mode::Ticket => Some(ctx.fresh_dir("ours-out")?),
        Mode::Store => None,
    };
    let mut cmd = fetch_cmd(ctx, &swarm, &store, &node.addr, mode, out.as_deref());
    let measured = measure(&mut cmd, ctx.s.timeout, None, false);
    // Stop the node before looking at the result, so an error leaves nothing running.
    let seed = node.stop();
    let m = measured?;
    let f = Fetched::parse(&m.stdout)?;
    ensure!(
        f.size == ctx.s.size,
        "swarm fetch reports {} bytes, the file has {}",
        f.size,
        ctx.s.size
    );
    if let Some(out) = &out {
        if rep == 0 {
            ctx.verify(&out.join(ctx.input_name()), "swarm fetch -o")?;
        }
        remove_dir(out)?;
    }
    remove_dir(&store)?;
    Ok(Run {
        secs: m.secs,
        fetch_kib: m.peak_kib,
        seed_kib: seed.kib,
        seed_cpu: seed.cpu,
        received: Some(f.received),
        detail: format!(
            "swarm's own figure {:.3} s{}, received {:.1} MiB{}",
            f.seconds,
            if out.is_some() {
                " (before the export)"
            } else {
                ""
            },
            f.received as f64 / MIB as f64,
            f.timings
                .map(|(src, man, first)| format!(
                    "; first verified data after {:.1} ms (connected {:.1} ms, manifest {:.1} ms)",
                    first * 1e3,
                    src * 1e3,
                    man * 1e3
                ))
                .unwrap_or_default()
        ),
    })
}

/// What the kill -9 resume check saw.
pub(crate) struct Resume {
    /// When the first fetch was killed, seconds after it started.
    pub(crate) kill_at: f64,
    /// The first fetch finished before it could be killed: the check says nothing.
    pub(crate) finished_early: bool,
    /// `swarm check` after the kill: bytes present and verified, and its problems.
    pub(crate) verified: u64,
    pub(crate) problems: usize,
    /// The second fetch: what it received, of how much, and how long it took.
    pub(crate) size: u64,
    pub(crate) received: u64,
    pub(crate) secs: f64,
}

impl Resume {
    /// (re-received − (size − verified)) / verified: the share of what was verified before
    /// the kill that was fetched again.
    pub(crate) fn refetched_fraction(&self) -> f64 {
        let missing = self.size.saturating_sub(self.verified);
        (self.received as f64 - missing as f64) / self.verified.max(1) as f64
    }
}

/// Fetch, SIGKILL at `full / 2`, `swarm check`, fetch again (the `side` binary throughout;
/// the second fetch re-verifies what the first left, where the binary does that).
pub(crate) fn resume(ctx: &mut Ctx, full: f64, side: Side) -> Result<Resume> {
    let bin = ctx.bin(side)?;
    let node = Node::start(ctx, bin)?;
    let swarm = bin.swarm.clone();
    let result = resume_with(ctx, &swarm, &node.addr, full);
    node.stop();
    result
}

fn resume_with(ctx: &mut Ctx, swarm: &Path, peer: &str, full: f64) -> Result<Resume> {
    let store = ctx.fresh_path("resume-store");
    let kill_at = Duration::from_secs_f64(full / 2.0);
    let first = measure(
        &mut fetch_cmd(ctx, swarm, &store, peer, Mode::Store, None),
        ctx.s.timeout,
        Some(kill_at),
        false,
    )?;

    let mut check = Command::new(swarm);
    check.arg("--store").arg(&store).args(["--json", "check"]);
    // `check` exits non-zero when it finds problems; the JSON says which.
    let checked = measure(&mut check, ctx.s.timeout, None, true)?;
    let v = last_json(&checked.stdout)?;
    let verified = v
        .get("bytes")
        .and_then(Value::as_u64)
        .with_context(|| format!("swarm check printed no \"bytes\": {}", checked.stdout))?;
    let problems = v
        .get("problems")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if problems > 0 {
        eprintln!("warning: swarm check after kill -9: {}", checked.stdout);
    }

    let second = measure(
        &mut fetch_cmd(ctx, swarm, &store, peer, Mode::Store, None),
        ctx.s.timeout,
        None,
        false,
    )?;
    let f = Fetched::parse(&second.stdout)?;
    remove_dir(&store)?;
    Ok(Resume {
        kill_at: first.secs,
        finished_early: !first.killed,
        verified,
        problems,
        size: f.size,
        received: f.received,
        secs: second.secs,
    })
}
