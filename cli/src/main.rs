//! The `swarm` binary: parses arguments, calls `swarm_engine`, prints.

mod args;
mod config;
mod demo;
mod dht;
mod files;
mod net;
mod release;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use swarm_engine::Hash;
use swarm_engine::store::{AddOptions, ExportOptions, Progress, Store};

use crate::args::{Cli, Command, TrustCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // Logs go to stderr, filtered by RUST_LOG (default: warnings).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    quiet_panics();
    let result = std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|_| {
        let what = PANIC.lock().map(|p| p.clone()).unwrap_or_default();
        Err(anyhow::anyhow!(
            "internal error (a bug in swarm; please report it): {what}"
        ))
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            if json {
                println!("{}", json!({ "error": msg }));
            }
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The message of the last panic, printed as one error line instead of a
/// multi-line panic report. The engine turns some panics inside its
/// dependencies (a damaged database page) into errors; those must not print
/// anything. With `RUST_BACKTRACE` set, the backtrace is kept in the message.
static PANIC: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let bt = std::backtrace::Backtrace::capture();
        if let Ok(mut p) = PANIC.lock() {
            *p = match bt.status() {
                std::backtrace::BacktraceStatus::Captured => format!("{info}\n{bt}"),
                _ => info.to_string(),
            };
        }
    }));
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo => {
            demo::run(cli.json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Keygen { output } => return release::keygen(output, cli.json),
        _ => {}
    }
    // A node's config file is read first: it may name the store. Flags
    // (and their environment variables) override it.
    let node_config = match &cli.command {
        Command::Node {
            config: Some(path), ..
        } => config::NodeConfig::load(path)?,
        _ => config::NodeConfig::default(),
    };
    let bootstrap = if cli.bootstrap.is_empty() {
        node_config.bootstrap.clone()
    } else {
        cli.bootstrap.clone()
    };
    let no_dht = cli.no_dht || node_config.no_dht;
    let dht_config = |server| dht::config(&bootstrap, no_dht, server);
    let dir = store_dir(cli.store.or_else(|| node_config.store.clone()))?;
    let store = Store::open(&dir)?;
    let json = cli.json;
    match cli.command {
        Command::Add { paths, name } => {
            let bar = bar(json, "adding");
            let opts = AddOptions {
                name,
                progress: Some(progress_fn(&bar)),
            };
            let added = store.add_paths(&paths, &opts);
            bar.finish_and_clear();
            let added = added?;
            if json {
                println!(
                    "{}",
                    json!({
                        "root": added.root.to_hex(),
                        "size": added.size,
                        "files": added.files,
                        "new_bytes": added.new_bytes,
                    })
                );
            } else {
                println!("{}", added.root);
                eprintln!(
                    "added {} file{}, {} ({} new)",
                    added.files,
                    plural(added.files),
                    bytes(added.size),
                    bytes(added.new_bytes)
                );
            }
        }
        Command::Ls => {
            let pins = store.pins()?;
            if json {
                let list: Vec<_> = pins
                    .iter()
                    .map(|p| {
                        json!({
                            "root": p.root.to_hex(),
                            "name": p.name,
                            "size": p.size,
                            "files": p.files,
                            "created": p.created,
                        })
                    })
                    .collect();
                println!("{}", json!({ "pins": list }));
            } else {
                for p in &pins {
                    println!(
                        "{}  {:>10}  {:>6} file{}  {}",
                        p.root,
                        bytes(p.size),
                        p.files,
                        plural(p.files),
                        p.name
                    );
                }
                if pins.is_empty() {
                    eprintln!("no pins in {}", dir.display());
                }
            }
        }
        Command::Export {
            root,
            output,
            force,
        } => {
            let root = parse_root(&root)?;
            files::check_output(&output, &dir, force)?;
            let bar = bar(json, "exporting");
            let opts = ExportOptions {
                force,
                progress: Some(progress_fn(&bar)),
                release: false,
            };
            let done = store.export(&root, &output, &opts);
            bar.finish_and_clear();
            let done = done?;
            if json {
                println!(
                    "{}",
                    json!({
                        "root": root.to_hex(),
                        "target": done.target,
                        "files": done.files,
                        "bytes": done.bytes,
                    })
                );
            } else {
                eprintln!(
                    "exported {} file{}, {} to {}",
                    done.files,
                    plural(done.files),
                    bytes(done.bytes),
                    done.target.display()
                );
            }
        }
        Command::Rm { root } => {
            let root = parse_root(&root)?;
            if !store.unpin(&root)? {
                bail!("{root} is not pinned (see `swarm ls`)");
            }
            if json {
                println!("{}", json!({ "root": root.to_hex(), "removed": true }));
            } else {
                eprintln!("unpinned {root}; run `swarm gc` to free its space");
            }
        }
        Command::Gc => {
            let stats = store.gc()?;
            if json {
                println!("{}", json!({ "blobs": stats.blobs, "bytes": stats.bytes }));
            } else {
                println!(
                    "freed {} in {} blob{}",
                    bytes(stats.bytes),
                    stats.blobs,
                    plural(stats.blobs)
                );
            }
        }
        Command::Check => {
            let report = store.check(|_| {})?;
            let ok = report.problems.is_empty();
            if json {
                let problems: Vec<_> = report
                    .problems
                    .iter()
                    .map(|p| json!({ "hash": p.hash.to_hex(), "problem": p.what }))
                    .collect();
                println!(
                    "{}",
                    json!({
                        "ok": ok,
                        "blobs": report.blobs,
                        "bytes": report.bytes,
                        "problems": problems,
                    })
                );
            } else {
                for p in &report.problems {
                    println!("corrupt: {}: {}", p.hash, p.what);
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
        }
        Command::Node {
            listen, ref limits, ..
        } => {
            let limits = node_config.limits(limits);
            let listen = listen
                .or(node_config.listen)
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 7411)));
            let seeding = net::Seeding {
                seed: node_config.seed.clone(),
                peers: node_config
                    .peers
                    .iter()
                    .map(|p| p.parse())
                    .collect::<Result<_, _>>()?,
                trust: node_config.trust.clone(),
                max_peers: None,
            };
            return net::node(store, listen, json, dht_config(true), seeding, &limits);
        }
        Command::Resolve { pointer } => return dht::resolve(dht_config(false), &pointer, json),
        Command::Fetch {
            root,
            trust,
            name,
            channel,
            peers,
            output,
            force,
            keep,
            no_export,
            seed,
            listen,
            progress,
            limits,
        } => {
            // Before anything is looked up, connected to or downloaded.
            let export = !no_export && !seed;
            if export {
                files::check_output(&output, &dir, force)?;
            }
            let mut want = swarm_engine::release::Want { name, channel };
            // PUBKEY/NAME[@CHANNEL]: the DHT says which token; the policy
            // then treats it like any token, for that name and channel.
            let target = if dht::is_pointer(&root) {
                let p = dht::parse_pointer(&root)?;
                let cfg = dht_config(false)
                    .context("fetching PUBKEY/NAME needs the DHT; remove --no-dht")?;
                let rt = tokio::runtime::Runtime::new()?;
                let signed = rt.block_on(dht::lookup(&cfg, &p))?;
                want.name.get_or_insert(p.name);
                want.channel.get_or_insert(p.channel);
                signed.to_token()
            } else {
                root
            };
            let (root, signed) = release::resolve_target(&store, &target, &trust, want)?;
            let args = net::FetchArgs {
                root,
                release: signed,
                peers: &peers,
                output: export.then_some(output.as_path()),
                force,
                keep: keep || no_export || seed,
                seed,
                listen,
                progress,
                limits: node_config.limits(&limits),
            };
            return net::fetch(store, args, json, dht_config(false));
        }
        Command::Publish {
            paths,
            key,
            name,
            version,
            channel,
            expires,
        } => {
            let a = release::PublishArgs {
                paths,
                key,
                name,
                version,
                channel,
                expires,
            };
            return release::publish(&store, a, json, dht_config(false));
        }
        Command::Verify { token, path, trust } => {
            let a = release::VerifyArgs { token, path, trust };
            return release::verify(&store, a, json);
        }
        Command::Trust { command } => {
            return match command {
                TrustCommand::Add { key, name } => release::trust_add(&store, &key, name, json),
                TrustCommand::Rm { key } => release::trust_rm(&store, &key, json),
                TrustCommand::Ls => release::trust_ls(&store, json),
            };
        }
        Command::Demo | Command::Keygen { .. } => unreachable!("handled before the store opens"),
    }
    Ok(ExitCode::SUCCESS)
}

fn store_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d);
    }
    let dirs = directories::ProjectDirs::from("", "", "swarm")
        .context("cannot find a home directory for the store; pass --store DIR")?;
    Ok(dirs.data_dir().to_owned())
}

fn parse_root(s: &str) -> Result<Hash> {
    Ok(s.trim().parse()?)
}

pub(crate) fn bar(json: bool, what: &'static str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

fn progress_fn(bar: &ProgressBar) -> Arc<dyn Fn(Progress) + Send + Sync> {
    let bar = bar.clone();
    Arc::new(move |p| match p {
        Progress::Total(n) => bar.set_length(n),
        Progress::Advance(n) => bar.inc(n),
    })
}

pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
