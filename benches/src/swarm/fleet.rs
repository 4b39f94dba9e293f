//! The processes of a scenario: `swarm add` into a store, a seed (`swarm node`), and fetchers
//! (`swarm fetch --seed --progress json`) watched line by line, all at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use swarm_benches::proc::{self, Proc, Stream};

use super::Ctx;

/// How often the fetchers' output and exits are looked at: the resolution of their times.
const POLL: Duration = Duration::from_millis(10);
/// How long a stopped process gets to exit on its own before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// `swarm` in the scenario's network, never using the DHT: peers know each other only from
/// `--peer` and from peer exchange.
fn swarm(ctx: &Ctx) -> Command {
    let mut cmd = ctx.net.command(&ctx.swarm);
    cmd.env("SWARM_NO_DHT", "1");
    cmd
}

/// `swarm add` of the test file into a new store at `store`. The first one sets the root that
/// every fetcher asks for; every other must give the same.
pub(crate) fn add(ctx: &mut Ctx, store: &Path) -> Result<()> {
    let mut cmd = swarm(ctx);
    cmd.arg("--store")
        .arg(store)
        .args(["--json", "add"])
        .arg(&ctx.input);
    let m = proc::measure(&mut cmd, ctx.s.timeout, None, false)?;
    let v = last_json(&m.stdout).context("swarm add")?;
    let root = v
        .get("root")
        .and_then(Value::as_str)
        .with_context(|| format!("swarm add printed no \"root\": {}", m.stdout))?;
    if ctx.root.is_empty() {
        ctx.root = root.to_owned();
    }
    ensure!(
        root == ctx.root,
        "swarm add gave root {root}, the first store got {}",
        ctx.root
    );
    Ok(())
}

/// A seeding `swarm node` on 127.0.0.1.
pub(crate) struct Seed {
    proc: Proc,
    pub(crate) id: String,
    pub(crate) addr: String,
}

impl Seed {
    /// Starts a node on `store` with `extra` flags (e.g. an upload limit) and waits for the
    /// line that says where it listens.
    pub(crate) fn start(ctx: &Ctx, store: &Path, extra: &[&str]) -> Result<Self> {
        let mut cmd = swarm(ctx);
        cmd.arg("--store")
            .arg(store)
            .args(["--json", "node", "--listen", "127.0.0.1:0"])
            .args(extra);
        let mut proc = Proc::spawn(&mut cmd, false)?;
        let (id, addr) = proc.wait_for(Duration::from_secs(30), |l| {
            let v: Value = serde_json::from_str(l).ok()?;
            let field = |k: &str| v.get(k)?.as_str().map(str::to_owned);
            Some((field("node_id")?, field("addr")?))
        })?;
        Ok(Seed { proc, id, addr })
    }

    /// SIGKILL: the seed leaves without a word.
    pub(crate) fn kill(&mut self) {
        self.proc.kill();
    }

    /// SIGTERM, then SIGKILL if it hangs.
    pub(crate) fn stop(mut self) {
        if !self.proc.stop("TERM") {
            eprintln!("warning: swarm node did not stop on SIGTERM; killed it");
        }
    }
}

/// One peer's bytes, as `sources` in the result and `peers` in the progress lines list them.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) id: String,
    pub(crate) bytes: u64,
}

impl Source {
    fn list(v: &Value, key: &str) -> Vec<Source> {
        let Some(items) = v.get(key).and_then(Value::as_array) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|s| {
                Some(Source {
                    id: s.get("id")?.as_str()?.to_owned(),
                    bytes: s.get("bytes")?.as_u64()?,
                })
            })
            .collect()
    }
}

/// Bytes from the peer `seed_id`, and from everyone else.
pub(crate) fn split(sources: &[Source], seed_id: &str) -> (u64, u64) {
    sources.iter().fold((0, 0), |(seed, others), s| {
        if s.id == seed_id {
            (seed + s.bytes, others)
        } else {
            (seed, others + s.bytes)
        }
    })
}

/// The line `swarm --json fetch` prints when the fetch is complete.
#[derive(Clone, Debug)]
pub(crate) struct Fetched {
    /// swarm's own figure, from its start.
    pub(crate) seconds: f64,
    pub(crate) size: u64,
    /// From the network, the Bao encoding included.
    pub(crate) received: u64,
    pub(crate) sources: Vec<Source>,
}

impl Fetched {
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(line).ok()?;
        Some(Fetched {
            seconds: v.get("seconds")?.as_f64()?,
            size: v.get("size")?.as_u64()?,
            received: v.get("received")?.as_u64()?,
            sources: Source::list(&v, "sources"),
        })
    }

    /// The result line among everything `stdout` holds.
    pub(crate) fn find(stdout: &str) -> Result<Self> {
        stdout
            .lines()
            .rev()
            .find_map(Fetched::parse)
            .with_context(|| format!("swarm fetch printed no result: {stdout:?}"))
    }
}

/// A `--progress json` line.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) have: u64,
    pub(crate) total: u64,
    pub(crate) peers: Vec<Source>,
}

impl Progress {
    fn parse(line: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(line).ok()?;
        Some(Progress {
            have: v.get("have")?.as_u64()?,
            total: v.get("total")?.as_u64()?,
            peers: Source::list(&v, "peers"),
        })
    }
}

/// A `swarm fetch --seed --progress json` and what it has said so far.
pub(crate) struct Fetcher {
    pub(crate) name: String,
    proc: Proc,
    /// The result line, and when it came (since the scenario's clock started).
    pub(crate) result: Option<(Fetched, Duration)>,
    pub(crate) progress: Option<Progress>,
    /// The most bytes any progress line gave each peer, by id: a peer that leaves drops out
    /// of the lines (and out of their `have`), but what it sent is still here.
    seen: BTreeMap<String, u64>,
    /// The most `have` any progress line said.
    most_have: u64,
    /// How it exited, and when; a fetcher that completes keeps running until stopped.
    pub(crate) exit: Option<(ExitStatus, Duration)>,
    /// Whatever it printed that is neither a result nor a progress line: errors, warnings.
    pub(crate) notes: Vec<String>,
}

impl Fetcher {
    /// Starts fetching the test file's root into `store` from `peers`, with `extra` flags.
    pub(crate) fn launch(
        ctx: &Ctx,
        name: String,
        store: &Path,
        peers: &[&str],
        extra: &[&str],
    ) -> Result<Self> {
        let mut cmd = swarm(ctx);
        cmd.arg("--store")
            .arg(store)
            .args(["--json", "fetch", &ctx.root]);
        for p in peers {
            cmd.args(["--peer", p]);
        }
        cmd.args(["--seed", "--progress", "json"]).args(extra);
        Ok(Fetcher {
            name,
            proc: Proc::spawn(&mut cmd, false)?,
            result: None,
            progress: None,
            seen: BTreeMap::new(),
            most_have: 0,
            exit: None,
            notes: Vec::new(),
        })
    }

    /// Reads what it has printed, and notices if it exited; `t0` is the scenario's clock.
    fn poll(&mut self, t0: Instant) {
        while let Some(line) = self.proc.next_line(Duration::ZERO) {
            self.take(line, t0);
        }
        if self.exit.is_some() {
            return;
        }
        match self.proc.try_wait() {
            Ok(Some(status)) => {
                let at = t0.elapsed();
                // Its last lines may still be in the pipes; they close within moments.
                while let Some(line) = self.proc.next_line(Duration::from_millis(500)) {
                    self.take(line, t0);
                }
                self.exit = Some((status, at));
            }
            Ok(None) => {}
            Err(e) => self
                .notes
                .push(format!("(bench: could not wait for it: {e:#})")),
        }
    }

    fn take(&mut self, (stream, line): (Stream, String), t0: Instant) {
        match stream {
            Stream::Out => match Fetched::parse(&line) {
                Some(f) if self.result.is_none() => self.result = Some((f, t0.elapsed())),
                Some(_) => {}
                // `--json` repeats an error as {"error": …} on stdout; stderr has it too.
                None if line.contains("\"error\"") => {}
                None if !line.trim().is_empty() => self.notes.push(line),
                None => {}
            },
            Stream::Err => match Progress::parse(&line) {
                Some(p) => {
                    for peer in &p.peers {
                        let most = self.seen.entry(peer.id.clone()).or_default();
                        *most = (*most).max(peer.bytes);
                    }
                    self.most_have = self.most_have.max(p.have);
                    self.progress = Some(p);
                }
                None if !line.trim().is_empty() => self.notes.push(line),
                None => {}
            },
        }
    }

    /// SIGKILL: it leaves without a word (its peers notice only at the idle timeout).
    pub(crate) fn kill(&mut self) {
        if self.exit.is_none() {
            self.proc.kill();
        }
    }

    /// Complete, or gone.
    pub(crate) fn settled(&self) -> bool {
        self.result.is_some() || self.exit.is_some()
    }

    /// How much of the file it has, from 0 to 1: 1 once complete; before that the progress
    /// lines' `have`, or, where more, the sum of what they gave each peer (the store starts
    /// empty, and `have` forgets a peer that left).
    pub(crate) fn fraction(&self) -> f64 {
        if self.result.is_some() {
            return 1.0;
        }
        let Some(p) = &self.progress else {
            return 0.0;
        };
        let have = self.most_have.max(self.seen.values().sum());
        (have as f64 / p.total.max(1) as f64).min(1.0)
    }

    /// The bytes it got from each peer: the result's once complete, else the most each
    /// progress line gave.
    pub(crate) fn sources(&self) -> Vec<Source> {
        match &self.result {
            Some((f, _)) => f.sources.clone(),
            None => self
                .seen
                .iter()
                .map(|(id, &bytes)| Source {
                    id: id.clone(),
                    bytes,
                })
                .collect(),
        }
    }

    /// Why it did not complete: how it exited (or that it is still running) and what it said.
    pub(crate) fn why_not(&self) -> String {
        let how = match &self.exit {
            Some((status, at)) => format!("exited ({status}) at {:.1} s", at.as_secs_f64()),
            None => "still running at the deadline".into(),
        };
        if self.notes.is_empty() {
            format!("{how}, printing no error")
        } else {
            let skip = self.notes.len().saturating_sub(5);
            format!("{how}: {}", self.notes[skip..].join(" | "))
        }
    }
}

/// Polls every fetcher until `done` holds for them all or `deadline` passes; says whether
/// `done` held.
pub(crate) fn watch(
    fleet: &mut [Fetcher],
    t0: Instant,
    deadline: Instant,
    mut done: impl FnMut(&[Fetcher]) -> bool,
) -> bool {
    loop {
        for f in fleet.iter_mut() {
            f.poll(t0);
        }
        if done(fleet) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// SIGTERM to every fetcher still running, all at once; then each gets a few seconds to exit
/// before SIGKILL.
pub(crate) fn stop_all(fleet: &mut [Fetcher]) {
    let mut running = Vec::new();
    for f in fleet.iter_mut() {
        if matches!(f.proc.try_wait(), Ok(None)) {
            // Not reaped yet, so the pid is still this child's.
            running.push(f.proc.pid().to_string());
        }
    }
    if !running.is_empty() {
        let sent = Command::new("kill")
            .args(["-s", "TERM"])
            .args(&running)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(e) = sent {
            eprintln!("warning: could not run kill: {e}");
        }
    }
    for f in fleet.iter_mut() {
        if f.proc.wait(GRACE).is_err() {
            eprintln!("warning: {} did not stop on SIGTERM; killed it", f.name);
        }
    }
}

/// The last line of `stdout` that parses as a JSON object.
fn last_json(stdout: &str) -> Result<Value> {
    let v = stdout.lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(Value::is_object)
    });
    v.with_context(|| format!("no JSON object in {stdout:?}"))
}
