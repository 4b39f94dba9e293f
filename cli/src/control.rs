//! The store commands (`add`, `ls`, `rm`, `gc`, `check`, `trust`) and
//! `status`. Each runs on the store itself when no node holds it, and
//! through the running node's API when one does; both give the same reply,
//! printed the same way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use swarm_engine::api::{self, Client, ops};
use swarm_engine::store::{Store, StoreConfig};

use crate::args::TrustCommand;
use crate::{DamageProbe, bar, bytes, plural, progress_fn};

/// Who carries a command out.
pub(crate) enum On {
    /// This process, on the store it opened; the probe notes on drop
    /// whether the store was found damaged.
    Store(Store, #[allow(dead_code)] DamageProbe),
    /// The node that holds the store, through its API.
    Node(Client),
}

impl On {
    /// Open the store at `dir`, or, when a running node holds it, reach
    /// that node.
    pub(crate) fn open(dir: &Path, read_only: bool) -> Result<Self> {
        // A node that answers is asked first: trying the store's lock
        // costs more than a connect. A socket nobody answers on was left
        // by a node that was killed.
        if let Ok(client) = Client::connect(api::socket_path(dir)) {
            return Ok(Self::Node(client));
        }
        match Store::open_with(dir, StoreConfig::default().read_only(read_only)) {
            Ok(s) => Ok(Self::Store(s.clone(), DamageProbe(s))),
            // Held, but not by a node with an API (or one just starting).
            Err(e) => Err(e.into()),
        }
    }
}

/// Run one API call to completion.
pub(crate) fn block<F: std::future::Future>(f: F) -> Result<F::Output> {
    // No signal driver: a call is short, and Ctrl-C ends the process.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}

fn print_json(v: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

pub(crate) fn add(on: &On, paths: &[PathBuf], name: Option<String>, json: bool) -> Result<()> {
    let req = api::AddRequest {
        paths: ops::absolute_paths(paths).context("cannot find the current directory")?,
        name,
    };
    let added = match on {
        On::Store(s, _) => {
            let bar = bar(json, "adding");
            let added = ops::add(s, &req, Some(progress_fn(&bar)));
            bar.finish_and_clear();
            added?
        }
        On::Node(c) => block(c.add(&req))??,
    };
    if json {
        return print_json(&added);
    }
    println!("{}", added.root);
    eprintln!(
        "added {} file{}, {} ({} new)",
        added.files,
        plural(added.files),
        bytes(added.size),
        bytes(added.new_bytes)
    );
    Ok(())
}

pub(crate) fn ls(on: &On, dir: &Path, json: bool) -> Result<()> {
    let pins = match on {
        On::Store(s, _) => ops::pins(s)?,
        On::Node(c) => block(c.pins())??,
    };
    if json {
        return print_json(&pins);
    }
    print_pins(&pins.pins)?;
    if pins.pins.is_empty() {
        eprintln!("no pins in {}", dir.display());
    }
    Ok(())
}

/// `swarm ls TARGET`: the files of a root or release. A manifest that is
/// not stored is fetched (nothing else), from the peers given or a
/// ticket's, else through the DHT.
pub(crate) fn ls_files(
    on: &On,
    target: String,
    peers: Vec<String>,
    json: bool,
    dht: Option<swarm_engine::discovery::DhtConfig>,
) -> Result<()> {
    // A publisher's latest release: its token, from the DHT.
    let target = if crate::dht::is_pointer(&target) {
        let p = crate::dht::parse_pointer(&target)?;
        let cfg = dht.clone().with_context(|| {
            format!(
                "listing PUBKEY/NAME needs the DHT; {}",
                crate::dht::how_to_enable()
            )
        })?;
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(crate::dht::lookup(&cfg, &p))?.to_token()
    } else {
        target
    };
    let req = api::FilesRequest { target, peers };
    let listed = match on {
        On::Node(c) => block(c.files(&req))??,
        On::Store(store, _) => {
            let (root, peers) = ops::files_target(store, &req)?;
            match ops::files(store, &root, false)? {
                Some(l) => l,
                None => fetch_manifest(store, &req, peers.is_empty().then_some(dht).flatten())?,
            }
        }
    };
    if json {
        return print_json(&listed);
    }
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for f in &listed.files {
        writeln!(out, "{:>4}  {:>10}  {}", f.mode, bytes(f.size), f.path)
            .map_err(crate::stdout_error)?;
    }
    out.flush().map_err(crate::stdout_error)?;
    let n = listed.files.len() as u64;
    eprintln!(
        "{n} file{}, {}, root {}{}",
        plural(n),
        bytes(listed.size),
        listed.root,
        if listed.fetched {
            " (its manifest was fetched; the files were not)"
        } else {
            ""
        }
    );
    Ok(())
}

/// A manifest not stored, fetched by a node of this process.
fn fetch_manifest(
    store: &swarm_engine::store::Store,
    req: &api::FilesRequest,
    dht: Option<swarm_engine::discovery::DhtConfig>,
) -> Result<api::FilesReply> {
    with_node(store, dht, async |node| {
        Ok(api::list_files(node, req).await?)
    })
}

/// `f` with a node of this process on `store` (on the DHT, if given),
/// shut down after: for a store command that fetches a little.
fn with_node<T>(
    store: &swarm_engine::store::Store,
    dht: Option<swarm_engine::discovery::DhtConfig>,
    f: impl AsyncFnOnce(&swarm_engine::node::Node) -> Result<T>,
) -> Result<T> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let config = crate::net::endpoint_config(&crate::args::Limits::default());
        let mut node = swarm_engine::node::Node::spawn(store.clone(), config).await?;
        if let Some(cfg) = &dht {
            match crate::dht::join(cfg).await {
                Ok(d) => node = node.with_dht(d),
                Err(e) => {
                    node.shutdown().await;
                    return Err(e);
                }
            }
        }
        let r = f(&node).await;
        node.shutdown().await;
        r
    })
}

fn print_pins(pins: &[api::PinEntry]) -> Result<()> {
    use std::io::Write;
    // One write for the lot, not one per line: stdout flushes each line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for p in pins {
        writeln!(
            out,
            "{}  {:>10}  {:>6} file{}  {}",
            p.root,
            bytes(p.size),
            p.files,
            plural(p.files),
            p.name
        )
        .map_err(crate::stdout_error)?;
    }
    out.flush().map_err(crate::stdout_error)
}

pub(crate) fn export(
    on: &On,
    root: String,
    output: &Path,
    (force, delete): (bool, bool),
    json: bool,
) -> Result<()> {
    let req = api::ExportRequest {
        root,
        output: std::path::absolute(output).context("cannot find the current directory")?,
        force,
        delete,
    };
    let done = match on {
        On::Store(s, _) => {
            let bar = bar(json, "exporting");
            let done = ops::export(s, &req, Some(progress_fn(&bar)));
            bar.finish_and_clear();
            done?
        }
        On::Node(c) => block(c.export(&req))??,
    };
    if json {
        return print_json(&done);
    }
    eprintln!(
        "exported {} file{}, {} to {}",
        done.files,
        plural(done.files),
        bytes(done.bytes),
        done.target.display()
    );
    report_extra(&done.target, &done.extra, done.deleted);
    Ok(())
}

/// Say what an export found in its directories that the root does not
/// list, and whether it removed it.
pub(crate) fn report_extra(target: &Path, extra: &[PathBuf], deleted: bool) {
    if extra.is_empty() {
        return;
    }
    const SHOWN: usize = 5;
    let mut names: Vec<String> = extra
        .iter()
        .take(SHOWN)
        .map(|p| p.display().to_string())
        .collect();
    if extra.len() > SHOWN {
        names.push(format!("and {} more", extra.len() - SHOWN));
    }
    let n = extra.len() as u64;
    if deleted {
        eprintln!(
            "removed {n} path{} in {} that the root does not list: {}",
            plural(n),
            target.display(),
            names.join(", ")
        );
    } else {
        eprintln!(
            "note: {n} path{} in {} that the root does not list {} left in place (--delete \
             removes them): {}",
            plural(n),
            target.display(),
            if n == 1 { "was" } else { "were" },
            names.join(", ")
        );
    }
}

pub(crate) fn rm(on: &On, root: String, json: bool) -> Result<()> {
    let req = api::RmRequest { root };
    let done = match on {
        On::Store(s, _) => ops::rm(s, &req)?,
        On::Node(c) => block(c.rm(&req))??,
    };
    if json {
        return print_json(&done);
    }
    eprintln!("unpinned {}; run `swarm gc` to free its space", done.root);
    Ok(())
}

pub(crate) fn gc(on: &On, req: &api::GcRequest, json: bool) -> Result<()> {
    let stats = match on {
        On::Store(s, _) => ops::gc(s, req)?,
        On::Node(c) => block(c.gc_with(req))??,
    };
    if json {
        return print_json(&stats);
    }
    println!(
        "freed {} in {} blob{}",
        bytes(stats.bytes),
        stats.blobs,
        plural(stats.blobs)
    );
    if stats.kept_partials > 0 {
        eprintln!(
            "kept {} interrupted download{} ({} on disk) to resume; `swarm ls --partial` lists \
             them, `swarm gc --partial` deletes them",
            stats.kept_partials,
            plural(stats.kept_partials),
            bytes(stats.kept_partial_bytes)
        );
    }
    Ok(())
}

/// `swarm ls --partial`.
pub(crate) fn ls_partial(on: &On, json: bool) -> Result<()> {
    use std::io::Write;
    let reply = match on {
        On::Store(s, _) => ops::partials(s)?,
        On::Node(c) => block(c.partials())??,
    };
    if json {
        return print_json(&reply);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for p in &reply.partials {
        let pct = if p.size == 0 {
            100.0
        } else {
            p.present as f64 * 100.0 / p.size as f64
        };
        let state = match (p.writing, p.idle_secs) {
            (true, _) => "downloading now".to_owned(),
            (false, Some(s)) => format!("idle {}", idle(s)),
            (false, None) => "idle".to_owned(),
        };
        writeln!(
            out,
            "{}  {:>10} of {:>10}  {:>5.1}%  {}{}",
            p.hash,
            bytes(p.present),
            bytes(p.size),
            pct,
            state,
            if p.referenced { ", pinned" } else { "" }
        )
        .map_err(crate::stdout_error)?;
    }
    out.flush().map_err(crate::stdout_error)?;
    if reply.partials.is_empty() {
        eprintln!("no partial downloads");
    }
    Ok(())
}

/// Seconds as the largest whole unit: 45 s, 12 min, 3 h, 2 d.
fn idle(s: u64) -> String {
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// `repaired` is what `check --repair` did first, for the JSON output.
pub(crate) fn check(on: &On, repaired: Option<serde_json::Value>, json: bool) -> Result<ExitCode> {
    let report = match on {
        On::Store(s, _) => ops::check(s)?,
        On::Node(c) => block(c.check())??,
    };
    let ok = report.ok;
    if json {
        let mut out = serde_json::to_value(&report)?;
        if let Some(r) = repaired {
            out["repair"] = r;
        }
        println!("{out}");
    } else {
        for p in &report.problems {
            println!("corrupt: {}: {}", p.hash, p.problem);
        }
        eprintln!(
            "checked {} blob{}, {}: {}",
            report.blobs,
            plural(report.blobs),
            bytes(report.bytes),
            if ok {
                "all good".to_owned()
            } else {
                format!(
                    "{} problem{}",
                    report.problems.len(),
                    plural(report.problems.len() as u64)
                )
            }
        );
    }
    if !ok {
        if !json {
            eprintln!("error: the store has corrupt data; see the lines above");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn trust(on: &On, command: TrustCommand, json: bool) -> Result<()> {
    match command {
        TrustCommand::Add { key, name } => {
            // A chain file is sent as its text.
            let path = std::path::Path::new(&key);
            let public_key =
                if !key.starts_with("swp") && !key.starts_with("swrf") && path.is_file() {
                    crate::roots::read_chain_file(path)?
                } else {
                    key
                };
            let req = api::TrustAddRequest { public_key, name };
            let k = match on {
                On::Store(s, _) => ops::trust_add(s, &req)?,
                On::Node(c) => block(c.trust_add(&req))??,
            };
            if json {
                return print_json(&k);
            }
            eprintln!(
                "trusting {}{}{}",
                k.public_key,
                if k.name.is_empty() {
                    String::new()
                } else {
                    format!(" as {}", k.name)
                },
                match (&k.root_version, &k.threshold) {
                    (Some(v), Some(t)) => format!(", root version {v}: {t} keys must sign"),
                    _ if k
                        .public_key
                        .starts_with(swarm_engine::release::FINGERPRINT_PREFIX) =>
                        ": the publisher whose first root this is, once a release carries it"
                            .to_owned(),
                    _ => String::new(),
                }
            );
        }
        TrustCommand::Rm { key } => {
            let req = api::TrustRmRequest { public_key: key };
            let done = match on {
                On::Store(s, _) => ops::trust_rm(s, &req)?,
                On::Node(c) => block(c.trust_rm(&req))??,
            };
            if json {
                return print_json(&done);
            }
            eprintln!("no longer trusting {}", done.public_key);
        }
        TrustCommand::Ls => {
            let list = match on {
                On::Store(s, _) => ops::trusted(s)?,
                On::Node(c) => block(c.trusted())??,
            };
            if json {
                return print_json(&list);
            }
            for k in &list.trusted {
                match (&k.root_version, &k.threshold) {
                    (Some(v), Some(t)) => {
                        println!("{}  {}  (root version {v}, {t})", k.public_key, k.name);
                    }
                    _ => println!("{}  {}", k.public_key, k.name),
                }
            }
            if list.trusted.is_empty() {
                eprintln!("no trusted publishers; add one with `swarm trust add KEY`");
            }
        }
    }
    Ok(())
}

/// `swarm status`: what the node running on the store at `dir` does.
pub(crate) fn status(dir: &Path, json: bool) -> Result<()> {
    let client = Client::new(api::socket_path(dir));
    let s = block(client.status())?
        .with_context(|| format!("no node is running on the store at {}", dir.display()))?;
    if json {
        return print_json(&s);
    }
    println!("node      {}", s.node_id);
    println!("listening {}", s.addr);
    println!("version   {}, up {}", s.version, uptime(s.uptime_secs));
    match &s.dht {
        None => println!("dht       off"),
        Some(d) => {
            let joined = if d.bootstrapped {
                "joined"
            } else {
                "not joined (yet)"
            };
            let last = match &d.last_announce {
                None => "nothing announced yet".to_owned(),
                Some(a) => format!(
                    "last announce {} ago ({}): {}",
                    uptime(a.secs_ago),
                    &a.root[..12.min(a.root.len())],
                    a.error.as_deref().unwrap_or("ok")
                ),
            };
            println!(
                "dht       {joined} on {}, {} node{} in the routing table, {last}",
                d.addr,
                d.routing_table,
                plural(d.routing_table)
            );
        }
    }
    let cap = |c: Option<u64>| c.map_or("none".to_owned(), |c| format!("{}/s", bytes(c)));
    println!(
        "limits    upload {}, download {}, {} connections, window {}",
        cap(s.limits.upload_limit),
        cap(s.limits.download_limit),
        s.limits.max_connections,
        bytes(s.limits.window)
    );
    println!(
        "totals    {} up, {} down",
        bytes(s.totals.bytes_up),
        bytes(s.totals.bytes_down)
    );
    let v = &s.serving;
    println!(
        "serving   {} connection{}, {} request{} now, {} served, {} sent, {} peer{} dropped for violations",
        v.connections,
        plural(v.connections),
        v.requests_now,
        plural(v.requests_now),
        v.requests_total,
        bytes(v.bytes_sent),
        v.violations,
        plural(v.violations),
    );
    println!("fetches   {} running", s.fetches.len());
    for f in &s.fetches {
        println!(
            "#{} {}{}  {}{}",
            f.id,
            if f.paused { "(paused) " } else { "" },
            f.root,
            fetch_progress(f),
            if f.label.is_some() { "  (a seed)" } else { "" },
        );
    }
    if !s.seeds.is_empty() {
        println!("seeds     {} followed", s.seeds.len());
    }
    for seed in &s.seeds {
        let entry: String = if seed.entry.chars().count() > 40 {
            seed.entry.chars().take(39).chain(['…']).collect()
        } else {
            seed.entry.clone()
        };
        let next = seed.next_attempt_secs.map_or(String::new(), |n| {
            format!("; next attempt in {}", uptime(n))
        });
        if let Some(f) = &seed.fetching {
            println!(
                "{entry}  fetching (#{}{}): {}",
                f.id,
                if f.paused { ", paused" } else { "" },
                fetch_progress(f)
            );
            continue;
        }
        match (&seed.error, &seed.root) {
            (Some(e), _) => println!(
                "{entry}  failed {} time{}: {e}{next}",
                seed.failures,
                plural(u64::from(seed.failures))
            ),
            (None, Some(root)) if seed.serving => println!("{entry}  serving {root}{next}"),
            _ => println!("{entry}  not looked at yet"),
        }
    }
    println!(
        "pins      {} root{}",
        s.pins.len(),
        plural(s.pins.len() as u64)
    );
    for p in &s.pins {
        println!(
            "{}  {:>10}  {:>6} file{}  {}  served {} to {} peer{}",
            p.pin.root,
            bytes(p.pin.size),
            p.pin.files,
            plural(p.pin.files),
            p.pin.name,
            bytes(p.bytes_up),
            p.peers,
            plural(p.peers)
        );
    }
    Ok(())
}

/// `HAVE of TOTAL, RATE/s from N peers, eta T`: a running fetch, in the
/// fetches and in its seed's line.
fn fetch_progress(f: &api::FetchStatus) -> String {
    format!(
        "{} of {}, {}/s from {} peer{}, {}",
        bytes(f.have),
        bytes(f.total),
        bytes(f.rate),
        f.peers,
        plural(f.peers),
        f.eta_secs
            .map_or("eta unknown".to_owned(), |e| format!("eta {}", uptime(e)))
    )
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `swarm cat ROOT[/PATH]`: the file's bytes on stdout.
pub(crate) fn cat(on: &On, target: &str) -> Result<()> {
    use std::io::Write;
    let (root, path, peers) = split_target(target)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match on {
        On::Store(s, _) => {
            let r = ops::find_root(s, &root)?;
            if !file_stored(s, &r, path.as_deref())? {
                // A ticket says where it is: fetch that file, and no other.
                if peers.is_empty() {
                    anyhow::bail!(
                        "{} is not stored here; fetch it first (`swarm fetch {root} --no-export`), \
                         or give its ticket",
                        path.as_deref()
                            .map_or(format!("root {r}"), |p| format!("{p:?}"))
                    );
                }
                fetch_file(s, r, path.as_deref(), peers)?;
            }
            match s.cat(&r, path.as_deref(), &mut out) {
                Err(swarm_engine::store::CatError::Write(e)) => {
                    return Err(crate::stdout_error(e));
                }
                other => other?,
            };
        }
        On::Node(c) => {
            let req = api::CatRequest { root, path };
            block(c.cat(&req, |b| out.write_all(b)))?.map_err(|e| match e {
                api::ClientError::Failed { message } if message.contains("Broken pipe") => {
                    crate::stdout_error(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
                }
                e => e.into(),
            })?;
        }
    }
    out.flush().map_err(crate::stdout_error)
}

/// Whether the file `cat` would write is stored completely. A path the
/// root does not have is an error here, once the manifest is stored.
fn file_stored(
    s: &swarm_engine::store::Store,
    root: &swarm_engine::Hash,
    path: Option<&str>,
) -> Result<bool> {
    use swarm_engine::store::{CatError, ReadError};
    match s.file_entry(root, path) {
        Ok(e) => Ok(s.blob_info(&e.hash)?.is_some_and(|i| i.partial.is_none())),
        Err(CatError::Read(ReadError::Unknown(_) | ReadError::Incomplete(_))) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Fetch the manifest of `root` if needed, then the one file `cat` writes,
/// unpinned, from `peers`.
fn fetch_file(
    s: &swarm_engine::store::Store,
    root: swarm_engine::Hash,
    path: Option<&str>,
    peers: Vec<swarm_engine::net::PeerAddr>,
) -> Result<()> {
    use swarm_engine::node::FetchOptions;
    with_node(s, None, async |node| {
        let manifest = FetchOptions {
            peers: peers.clone(),
            pin: false,
            manifest_only: true,
            ..Default::default()
        };
        node.fetch(root, manifest).await?;
        // The path is checked against the manifest before any data.
        let entry = s.file_entry(&root, path)?;
        let file = FetchOptions {
            peers,
            pin: false,
            paths: swarm_engine::content::Selection::exact(&entry.path),
            ..Default::default()
        };
        node.fetch(root, file).await?;
        Ok(())
    })
}

/// ROOT[/PATH] as (root, path, peers): a token or ticket stands for its
/// root, and a ticket's peers are where to fetch what is not stored.
fn split_target(
    target: &str,
) -> Result<(String, Option<String>, Vec<swarm_engine::net::PeerAddr>)> {
    let t = target.trim();
    let (head, path) = match t.split_once('/') {
        Some((h, p)) if !p.is_empty() => (h, Some(p.to_owned())),
        Some((h, _)) => (h, None),
        None => (t, None),
    };
    let mut peers = Vec::new();
    let root = if swarm_engine::ticket::is_ticket(head) {
        let t = head.parse::<swarm_engine::ticket::Ticket>()?;
        peers = t.peer_addrs();
        t.root().to_hex()
    } else if swarm_engine::release::is_token(head) {
        swarm_engine::release::SignedRelease::from_token(head)?
            .release()
            .root
            .to_hex()
    } else {
        head.to_owned()
    };
    Ok((root, path, peers))
}
