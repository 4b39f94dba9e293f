//! `bench-mirror`: the HTTP mirror figures of issue #13, all from one run on this machine.
//!
//! A file of `--size-mib` (default 1 GiB) is added to a store and written out as a static
//! mirror (`swarm mirror`), then, on 127.0.0.1:
//!
//! - **nginx**: Debian's nginx serves the mirror; `curl -o` of the blob's file from it (the
//!   anchor) and `swarm fetch ROOT --mirror URL` into a fresh store, as `-o DIR` (the store
//!   hands the file over after checking every byte once more) and `--no-export`, alternating
//!   which goes first from rep to rep; bar: ours / curl at most 1.2x (medians of times), and
//!   the fetcher's peak RSS at most 64 MiB. A fetch commits what it verified (fsync) every
//!   16 MiB and at the end; `curl -o` leaves its file in the page cache. So curl's time plus a
//!   `sync FILE` after it is shown too, with the same bar against it;
//! - **capped**: swarm-testkit's hyper server serves the mirror capped at 20 MiB/s over all its
//!   connections together, and a `swarm node --upload-limit 20MiB` seeds the same file; one
//!   fetch from the mirror alone, one from the peer alone, one from both (`--capped-mib`,
//!   default the same size, 0 skips this part); bar: both at least 1.8x the faster of the two
//!   alone (rates).
//!
//! `--memory` allows `--dir` on tmpfs (e.g. `/dev/shm`): both sides then write to memory, which
//! takes this machine's disk (ext4 with `discard`, whose writeback after deleting a 1 GiB file
//! swings a write of the next one from 1 s to 5 s) out of the comparison.
//!
//! One untimed round of each goes first.
//!
//! Every fetched file is hashed and compared with the original. Without nginx or curl, their
//! rows say n/a and why; the run goes on.
//!
//! ```text
//! cargo build --release -p swarm-cli -p swarm-benches
//! target/release/bench-mirror [--size-mib 1024] [--reps 3] [--capped-mib N] [--dir DIR]
//!                             [--memory] [--swarm PATH]
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use swarm_benches::args::{Flags, Settings};
use swarm_benches::disk::{self, Scratch, settle};
use swarm_benches::proc::{self, Proc, swarm_cmd};
use swarm_benches::report::{Bar, Table, fmt_rate_mb, median, ratio_of_medians};
use swarm_benches::{MIB, parse_root};
use swarm_testkit::http::{Options, Server};
use swarm_testkit::servers;

const USAGE: &str = "\
usage: bench-mirror [--size-mib N] [--reps N] [--capped-mib N] [--dir DIR] [--memory] [--swarm PATH]";

/// The cap of the capped part, for the mirror and the peer each.
const CAP: u64 = 20 * MIB;

#[derive(Default)]
struct More {
    capped_mib: Option<u64>,
    /// `--dir` may be on tmpfs: takes the disk out of both sides.
    memory: bool,
}

struct Ctx {
    s: Settings<Option<u64>>,
    scratch: Scratch,
    file: PathBuf,
    hash: blake3::Hash,
    root: String,
    seed_store: PathBuf,
    www: PathBuf,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(flags) = Flags::<More>::parse(&args, USAGE, |m, name, value| {
        Ok(match name {
            "--capped-mib" => {
                m.capped_mib = Some(value()?.parse().context("--capped-mib wants a number")?);
                true
            }
            "--memory" => {
                m.memory = true;
                true
            }
            _ => false,
        })
    })?
    else {
        return Ok(());
    };
    let memory = flags.more.memory;
    let s = Settings::from_flags(flags, |m| m.capped_mib)?;
    if let Some(c) = s.more {
        ensure!(
            (0..=1 << 20).contains(&c),
            "--capped-mib must be between 0 (skip that part) and 1048576"
        );
    }
    s.print_header("bench-mirror");
    let need = 4 * s.size + s.size / 64;
    if memory {
        let fs = disk::filesystem_type(&s.parent)?;
        println!(
            "--memory: {} is on {fs}; curl and swarm both write there",
            s.parent.display()
        );
        if let Some(avail) = disk::available_bytes(&s.parent) {
            ensure!(
                avail >= need,
                "{} has {} MiB free, the run needs about {} MiB",
                s.parent.display(),
                avail / MIB,
                need / MIB
            );
        }
    } else {
        disk::check_parent(&s.parent, need)?;
    }
    let scratch = Scratch::create(&s.parent, "bench-mirror")?;
    let file = scratch.dir.join("file.bin");
    disk::write_test_file(&file, s.size)?;
    let hash = disk::blake3_file(&file)?;
    let seed_store = scratch.dir.join("seed-store");
    let root = {
        let mut add = swarm_cmd(&s.swarm, &seed_store);
        add.arg("add").arg(&file);
        parse_root(&proc::measure(&mut add, s.timeout, None, false)?.stdout)?
    };
    let www = scratch.dir.join("www");
    let mut mirror = swarm_cmd(&s.swarm, &seed_store);
    mirror.args(["mirror", &root]).arg(&www);
    proc::time(&mut mirror, s.timeout)?;
    let ctx = Ctx {
        s,
        scratch,
        file,
        hash,
        root,
        seed_store,
        www,
    };
    let mut table = Table::new(8, 34, fmt_rate_mb);
    nginx_part(&ctx, &mut table)?;
    capped_part(&ctx, &mut table)?;
    println!();
    table.print();
    Ok(())
}

/// The blob's path in the mirror.
fn blob_url(base: &str, hash: &blake3::Hash) -> String {
    let hex = hash.to_hex();
    format!("{base}blobs/{}/{hex}", &hex[..2])
}

/// One timed `swarm fetch`; checks the bytes. Returns (seconds, peak KiB).
fn fetch(ctx: &Ctx, name: &str, sources: &[&str], export: bool) -> Result<(f64, Option<u64>)> {
    let store = ctx.scratch.dir.join(format!("store-{name}"));
    let out = ctx.scratch.dir.join(format!("out-{name}"));
    let mut cmd = swarm_cmd(&ctx.s.swarm, &store);
    cmd.args(["--json", "fetch", &ctx.root]).args(sources);
    if export {
        std::fs::create_dir_all(&out)?;
        cmd.arg("-o").arg(&out);
    } else {
        cmd.arg("--no-export");
    }
    let m = proc::measure(&mut cmd, ctx.s.timeout, None, false)?;
    let v: Value = m
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("swarm fetch printed no JSON")?;
    ensure!(
        v["size"].as_u64() == Some(ctx.s.size),
        "swarm fetch reported {v}"
    );
    let got = if export {
        out.join("file.bin")
    } else {
        // The store keeps the verified file under its hash.
        stored_file(&store, &ctx.hash)?
    };
    ensure!(
        disk::blake3_file(&got)? == ctx.hash,
        "{name}: the fetched file differs from the original"
    );
    let _ = std::fs::remove_dir_all(&store);
    let _ = std::fs::remove_dir_all(&out);
    settle();
    Ok((m.secs, m.peak_kib))
}

/// The data file of blob `hash` in a store directory (`blobs/<xx>/<hash>…`).
fn stored_file(store: &Path, hash: &blake3::Hash) -> Result<PathBuf> {
    let hex = hash.to_hex();
    let dir = store.join("blobs").join(&hex[..2]);
    std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n == hex.as_str()
                    || n.strip_prefix(hex.as_str())
                        .is_some_and(|r| r.starts_with('.') && !r.contains("obao"))
            })
        })
        .with_context(|| format!("blob {hex} is not in {}", dir.display()))
}

fn nginx_part(ctx: &Ctx, table: &mut Table) -> Result<()> {
    table.area("nginx");
    let size = ctx.s.size;
    let nginx = match servers::nginx(&ctx.www, None) {
        Ok(n) => n?,
        Err(missing) => {
            println!("nginx rows skipped: {missing}");
            table.info("swarm fetch --mirror (nginx)", "n/a".into());
            return Ok(());
        }
    };
    let url = nginx.url();
    let have_curl = Command::new("curl").arg("--version").output().is_ok();
    let (mut curl, mut ours, mut stored, mut rss) = (vec![], vec![], vec![], vec![]);
    let mut curl_sync = vec![];
    disk::warm(&ctx.file)?;
    // One untimed round of each first: on this VM the first writes into
    // memory a process has not used yet are several times slower.
    if have_curl {
        let out = ctx.scratch.dir.join("curl.out");
        let mut c = Command::new("curl");
        c.args(["-s", "-f", "-o"])
            .arg(&out)
            .arg(blob_url(&url, &ctx.hash));
        proc::time(&mut c, ctx.s.timeout)?;
        disk::remove_file(&out)?;
    }
    fetch(ctx, "warm-up", &["--mirror", &url], true)?;
    for rep in 0..ctx.s.reps {
        // curl -o, then `sync FILE` (fsync, timed apart): a fetch commits
        // what it verified as it goes and at the end, so the durable copy
        // is the like-for-like anchor.
        let mut curl_run = || -> Result<()> {
            if !have_curl {
                return Ok(());
            }
            let out = ctx.scratch.dir.join("curl.out");
            let mut c = Command::new("curl");
            c.args(["-s", "-f", "-o"])
                .arg(&out)
                .arg(blob_url(&url, &ctx.hash));
            let t = proc::time(&mut c, ctx.s.timeout)?;
            let mut sync = Command::new("sync");
            sync.arg(&out);
            let synced = proc::time(&mut sync, ctx.s.timeout)?;
            curl.push(t);
            curl_sync.push(t + synced);
            ensure!(disk::blake3_file(&out)? == ctx.hash, "curl's copy differs");
            disk::remove_file(&out)?;
            settle();
            Ok(())
        };
        if rep % 2 == 0 {
            curl_run()?;
        }
        let (secs, kib) = fetch(ctx, "nginx", &["--mirror", &url], true)?;
        ours.push(secs);
        rss.extend(kib);
        let (secs, kib) = fetch(ctx, "nginx-store", &["--mirror", &url], false)?;
        stored.push(secs);
        rss.extend(kib);
        if rep % 2 == 1 {
            curl_run()?;
        }
        println!(
            "rep {}: curl {curl:?} (+sync {curl_sync:?}) ours -o {ours:?} ours --no-export {stored:?}",
            rep + 1
        );
    }
    let why = if have_curl { "" } else { "no curl" };
    table.time("curl -o (anchor)", size, &curl, why);
    table.time("curl -o, then sync FILE (durable)", size, &curl_sync, why);
    table.time("swarm fetch --mirror -o DIR", size, &ours, "");
    table.time("swarm fetch --mirror --no-export", size, &stored, "");
    table.ratio(
        "-o DIR / curl",
        ratio_of_medians(&ours, &curl),
        Bar::AtMost(1.2),
    );
    table.ratio(
        "--no-export / curl",
        ratio_of_medians(&stored, &curl),
        Bar::AtMost(1.2),
    );
    table.ratio(
        "--no-export / curl + sync",
        ratio_of_medians(&stored, &curl_sync),
        Bar::AtMost(1.2),
    );
    table.ratio(
        "-o DIR / curl + sync",
        ratio_of_medians(&ours, &curl_sync),
        Bar::AtMost(1.2),
    );
    table.rss_bar("fetcher peak RSS", &rss, 64);
    Ok(())
}

fn capped_part(ctx: &Ctx, table: &mut Table) -> Result<()> {
    table.area("capped");
    let size = ctx.s.more.map_or(ctx.s.size, |m| m * MIB);
    if size == 0 {
        return Ok(());
    }
    // A smaller file for this part gets its own store and mirror.
    let (root, www, seed_store, file);
    let ctx_capped;
    let ctx = if size == ctx.s.size {
        ctx
    } else {
        file = ctx.scratch.dir.join("capped.bin");
        disk::write_test_file(&file, size)?;
        seed_store = ctx.scratch.dir.join("capped-store");
        let mut add = swarm_cmd(&ctx.s.swarm, &seed_store);
        add.arg("add").arg(&file);
        root = parse_root(&proc::measure(&mut add, ctx.s.timeout, None, false)?.stdout)?;
        www = ctx.scratch.dir.join("capped-www");
        let mut m = swarm_cmd(&ctx.s.swarm, &seed_store);
        m.args(["mirror", &root]).arg(&www);
        proc::time(&mut m, ctx.s.timeout)?;
        ctx_capped = Ctx {
            s: Settings {
                size,
                reps: ctx.s.reps,
                parent: ctx.s.parent.clone(),
                swarm: ctx.s.swarm.clone(),
                timeout: ctx.s.timeout,
                more: None,
            },
            scratch: Scratch::create(&ctx.scratch.dir, "capped")?,
            hash: disk::blake3_file(&file)?,
            file: file.clone(),
            root: root.clone(),
            seed_store: seed_store.clone(),
            www: www.clone(),
        };
        &ctx_capped
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let server = rt.block_on(Server::start(
        &ctx.www,
        Options {
            rate: Some(CAP),
            ..Default::default()
        },
    ))?;
    let url = server.url();
    let mut node = swarm_cmd(&ctx.s.swarm, &ctx.seed_store);
    node.args(["node", "--listen", "127.0.0.1:0", "--upload-limit", "20MiB"]);
    let mut node = Proc::spawn(&mut node, false)?;
    let peer = node.wait_for(Duration::from_secs(30), |l| {
        l.strip_prefix("listening on ").map(|a| a.trim().to_owned())
    })?;
    let (m, _) = fetch(ctx, "capped-mirror", &["--mirror", &url], false)?;
    let (p, _) = fetch(ctx, "capped-peer", &["--peer", &peer], false)?;
    let (b, _) = fetch(
        ctx,
        "capped-both",
        &["--mirror", &url, "--peer", &peer],
        false,
    )?;
    node.stop("TERM");
    drop(server);
    println!(
        "capped ({} MiB): mirror {m:.2} s, peer {p:.2} s, both {b:.2} s",
        size / MIB
    );
    table.time("mirror alone, 20 MiB/s", size, &[m], "");
    table.time("peer alone, 20 MiB/s", size, &[p], "");
    table.time("mirror + peer", size, &[b], "");
    // Rates: the faster alone is the shorter time.
    let ratio = median(&[m]).min(median(&[p])) / b;
    table.ratio("both / faster alone (rate)", Some(ratio), Bar::AtLeast(1.8));
    Ok(())
}
