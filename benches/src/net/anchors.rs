//! The anchors: sendme (iroh-blobs), rqbit (BitTorrent over TCP) and raw quinn.
//!
//! The senders of sendme and rqbit are started once, on first use, and keep seeding across
//! reps (starting them imports and hashes the whole file); each receive goes into a fresh
//! directory. The raw quinn server serves one connection, so it is started per rep.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use swarm_benches::disk::remove_dir;
use swarm_benches::proc::{Proc, measure};

use super::raw_quinn;
use super::{Ctx, Run};

/// Where an anchor's binary is, or where it was looked for.
pub(crate) enum Found {
    At(PathBuf),
    Missing(String),
}

/// `flag` if given, else `$CARGO_HOME/bin/NAME` (default `~/.cargo/bin`), else `$PATH`.
pub(crate) fn find(name: &str, flag: Option<PathBuf>) -> Found {
    if let Some(p) = flag {
        return if p.is_file() {
            Found::At(p)
        } else {
            Found::Missing(p.display().to_string())
        };
    }
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let mut looked = Vec::new();
    if let Some(home) = cargo_home {
        let p = home.join("bin").join(name);
        if p.is_file() {
            return Found::At(p);
        }
        looked.push(p.display().to_string());
    }
    if let Some(path) = env::var_os("PATH") {
        for dir in env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Found::At(p);
            }
        }
        looked.push("$PATH".into());
    }
    Found::Missing(looked.join(", "))
}

// ---------------------------------------------------------------------------------------------
// sendme

pub(crate) struct Sendme {
    bin: PathBuf,
    sender: Option<(Proc, String)>,
}

impl Sendme {
    pub(crate) fn new(bin: PathBuf) -> Self {
        Sendme { bin, sender: None }
    }

    /// Starts `sendme send` (it imports the file into its own store in its working directory,
    /// then prints the ticket and serves until SIGINT) unless it runs already.
    fn ticket(&mut self, ctx: &mut Ctx) -> Result<String> {
        if let Some((_, ticket)) = &self.sender {
            return Ok(ticket.clone());
        }
        let cwd = ctx.fresh_dir("sendme-send")?;
        let mut cmd = ctx.net.command(&self.bin);
        cmd.current_dir(&cwd)
            .args(["send", "--relay", "disabled", "--ticket-type", "addresses"])
            .args(["--no-progress", "--magic-ipv4-addr", "127.0.0.1:0"])
            .arg(&ctx.input);
        let mut proc = Proc::spawn(&mut cmd, false)?;
        let ticket = proc.wait_for(ctx.s.timeout, |l| {
            l.trim()
                .strip_prefix("sendme receive ")
                .map(|t| t.trim().to_owned())
        })?;
        self.sender = Some((proc, ticket.clone()));
        Ok(ticket)
    }

    /// One timed `sendme receive TICKET` in a fresh directory (it writes the file there).
    pub(crate) fn receive(&mut self, ctx: &mut Ctx, rep: usize) -> Result<Run> {
        let ticket = self.ticket(ctx)?;
        let cwd = ctx.fresh_dir("sendme-recv")?;
        let mut cmd = ctx.net.command(&self.bin);
        cmd.current_dir(&cwd)
            .args(["receive", "--relay", "disabled", "--no-progress"])
            .args(["--magic-ipv4-addr", "127.0.0.1:0"])
            .arg(&ticket);
        let m = measure(&mut cmd, ctx.s.timeout, None, false)?;
        if rep == 0 {
            ctx.verify(&cwd.join(ctx.input_name()), "sendme receive")?;
        }
        remove_dir(&cwd)?;
        Ok(Run {
            secs: m.secs,
            fetch_kib: m.peak_kib,
            seed_kib: None,
            seed_cpu: None,
            received: None,
            detail: "into its own store, copies the file out, deletes the store".into(),
        })
    }

    /// Peak RSS of the sender over all reps; then stops it.
    pub(crate) fn stop(&mut self) -> Option<u64> {
        let (mut proc, _) = self.sender.take()?;
        let kib = proc.vm_hwm_kib();
        proc.stop("INT");
        kib
    }
}

// ---------------------------------------------------------------------------------------------
// rqbit

pub(crate) struct Rqbit {
    bin: PathBuf,
    sharer: Option<Sharer>,
}

struct Sharer {
    proc: Proc,
    magnet: String,
    port: u16,
}

impl Rqbit {
    pub(crate) fn new(bin: PathBuf) -> Self {
        Rqbit { bin, sharer: None }
    }

    /// `rqbit` with the options both sides share: BitTorrent over TCP on 127.0.0.1:`port`, and
    /// no DHT, trackers, local peer discovery (LAN multicast) or UPnP port forwarding.
    fn command(&self, ctx: &Ctx, port: u16) -> Command {
        let mut cmd = ctx.net.command(&self.bin);
        cmd.args(["--disable-dht", "--disable-trackers", "--disable-lsd"])
            .args(["--disable-upnp-port-forward", "--listen-ip", "127.0.0.1"])
            .args(["--listen-port", &port.to_string()]);
        cmd
    }

    /// Starts `rqbit share FILE` unless it runs already; returns its magnet link and port.
    fn sharer(&mut self, ctx: &mut Ctx) -> Result<(String, u16)> {
        if let Some(s) = &self.sharer {
            return Ok((s.magnet.clone(), s.port));
        }
        let port = ctx.net.free_port()?;
        let api = ctx.net.free_port()?;
        let cwd = ctx.fresh_dir("rqbit-share")?;
        let mut cmd = self.command(ctx, port);
        // `share` always serves its HTTP API (on [::]:0 unless told); keep it on loopback.
        cmd.current_dir(&cwd)
            .args(["--http-api-listen-addr", &format!("127.0.0.1:{api}")])
            .arg("share")
            .arg(&ctx.input);
        let mut proc = Proc::spawn(&mut cmd, false)?;
        let magnet = proc.wait_for(ctx.s.timeout, |l| {
            l.find("magnet:?").map(|i| {
                l[i..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
        })?;
        self.sharer = Some(Sharer {
            proc,
            magnet: magnet.clone(),
            port,
        });
        Ok((magnet, port))
    }

    /// One timed `rqbit download` from the sharer into a fresh directory.
    pub(crate) fn download(&mut self, ctx: &mut Ctx, rep: usize) -> Result<Run> {
        let (magnet, seed_port) = self.sharer(ctx)?;
        let port = ctx.net.free_port()?;
        let out = ctx.fresh_dir("rqbit-out")?;
        let mut cmd = self.command(ctx, port);
        cmd.current_dir(&out)
            .args(["download", "--disable-http-api"])
            .args(["--initial-peers", &format!("127.0.0.1:{seed_port}")])
            .arg("-e")
            .arg("-o")
            .arg(&out)
            .arg(&magnet);
        let m = measure(&mut cmd, ctx.s.timeout, None, false)?;
        if rep == 0 {
            ctx.verify(&out.join(ctx.input_name()), "rqbit download")?;
        }
        remove_dir(&out)?;
        Ok(Run {
            secs: m.secs,
            fetch_kib: m.peak_kib,
            seed_kib: None,
            seed_cpu: None,
            received: None,
            detail: "straight into the output file".into(),
        })
    }

    /// Peak RSS of the sharer over all reps; then stops it.
    pub(crate) fn stop(&mut self) -> Option<u64> {
        let mut s = self.sharer.take()?;
        let kib = s.proc.vm_hwm_kib();
        s.proc.stop("INT");
        kib
    }
}

// ---------------------------------------------------------------------------------------------
// raw quinn

/// One timed memory-to-memory transfer between two processes of this binary.
pub(crate) fn raw_quinn(ctx: &mut Ctx, defaults: bool) -> Result<Run> {
    let exe = env::current_exe().context("cannot find this binary")?;
    let common = [
        "--size".to_owned(),
        ctx.s.size.to_string(),
        "--timeout-secs".to_owned(),
        ctx.s.timeout.as_secs().to_string(),
    ];
    let mut cmd = ctx.net.command(&exe);
    cmd.arg(raw_quinn::SERVER).args(&common);
    if defaults {
        cmd.arg("--quinn-defaults");
    }
    let mut server = Proc::spawn(&mut cmd, false)?;
    let cert = server.wait_for(ctx.s.timeout, |l| {
        l.strip_prefix("cert ").map(str::to_owned)
    })?;
    let addr = server.wait_for(ctx.s.timeout, |l| {
        l.strip_prefix("listening on ").map(str::to_owned)
    })?;

    let mut cmd = ctx.net.command(&exe);
    cmd.arg(raw_quinn::CLIENT)
        .args(&common)
        .args(["--addr", &addr, "--cert", &cert]);
    if defaults {
        cmd.arg("--quinn-defaults");
    }
    let measured = measure(&mut cmd, ctx.s.timeout, None, false);
    let status = server.wait(ctx.s.timeout);
    let m = measured?;
    let status = status?;
    ensure!(
        status.success(),
        "the raw quinn server failed ({status}):\n{}",
        server.tail()
    );
    server.drain(Duration::from_secs(2));
    let seed_kib = server
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("peak_kib "))
        .and_then(|k| k.trim().parse().ok());
    let inner = m
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("received "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|s| s.parse::<f64>().ok())
        .with_context(|| format!("the raw quinn client printed {:?}", m.stdout))?;
    Ok(Run {
        secs: m.secs,
        fetch_kib: m.peak_kib,
        seed_kib,
        seed_cpu: None,
        received: None,
        detail: format!("transfer alone {inner:.3} s"),
    })
}
