//! The `swarm` binary: parses arguments, calls `swarm_engine`, prints.

mod args;
mod config;
mod control;
mod demo;
mod dht;
mod files;
mod hints;
mod mirror;
mod net;
mod release;
mod roots;
mod share;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use swarm_engine::store::{Progress, Store};

use crate::args::{Cli, Command, TrustCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    // Logs go to stderr, filtered by RUST_LOG (default: warnings, but none
    // from mainline).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // mainline logs its failures as errors of its own; the
                // commands report them in their words (`could not join the
                // DHT through ...`), once.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mainline=off")),
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
        // The reader of stdout went away (`swarm ls | head -1`): nothing
        // is wrong, and nobody is left to tell.
        Err(e) if stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = hints::message(&e);
            if is_damage(&e) {
                msg.push_str(
                    "; run `swarm check --repair` to rebuild the database from the blob files",
                );
            }
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

/// Set when a print panicked because stdout's reader closed it.
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the command failed because its stdout's reader went away.
fn stdout_closed(_: &anyhow::Error) -> bool {
    STDOUT_GONE.load(std::sync::atomic::Ordering::SeqCst)
}

/// An error writing to stdout, noting whether its reader went away (not
/// a socket's or a file's: those are failures to report).
pub(crate) fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT_GONE.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    anyhow::Error::new(e).context("cannot write to stdout")
}

fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        // `println!` panics when stdout's pipe is closed; that is the
        // reader leaving, not a bug.
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.starts_with("failed printing to stdout") && payload.contains("Broken pipe") {
            STDOUT_GONE.store(true, std::sync::atomic::Ordering::SeqCst);
        }
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
        Command::Key {
            command: args::KeyCommand::Show { file },
        } => return release::show_key(file, cli.json),
        // Chain files only: no store.
        Command::Root { command } => return roots::root(command, cli.json),
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
    let flags = match &cli.command {
        Command::Node { dht, .. }
        | Command::Ls { dht, .. }
        | Command::Share { dht, .. }
        | Command::Fetch { dht, .. }
        | Command::Publish { dht, .. }
        | Command::Sign { dht, .. }
        | Command::Resolve { dht, .. } => dht.clone(),
        _ => args::DhtArgs::default(),
    };
    let bootstrap = if flags.bootstrap.is_empty() {
        node_config.bootstrap.clone()
    } else {
        flags.bootstrap.clone()
    };
    let no_dht = flags.no_dht || node_config.no_dht;
    let dht_bind = match (flags.dht_bind, &node_config.dht_bind) {
        (Some(b), _) => Some(b),
        (None, Some(b)) => {
            Some(args::parse_dht_bind(b).map_err(|e| anyhow::anyhow!("dht_bind: {e}"))?)
        }
        (None, None) => None,
    };
    let dht_config = |server, listen| dht::config(&bootstrap, no_dht, server, dht_bind, listen);
    let dir = store_dir(cli.store.or_else(|| node_config.store.clone()))?;
    // `check --repair` rebuilds the database before anything opens it.
    let repaired = match cli.command {
        Command::Check { repair: true } => Some(repair(&dir, cli.json)?),
        _ => None,
    };
    let json = cli.json;
    // The store commands go through a running node when one holds the
    // store. Commands that only read open the database read-only, so that
    // they leave the file exactly as they found it.
    use control::On;
    let command = match cli.command {
        Command::Add { paths, name } => {
            control::add(&On::open(&dir, false)?, &paths, name, json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Ls {
            target: Some(target),
            peers,
            ..
        } => {
            // Writable: a manifest not stored is fetched into it.
            let on = On::open(&dir, false)?;
            control::ls_files(&on, target, peers, json, dht_config(false, None))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Ls { partial, .. } => {
            let on = On::open(&dir, true)?;
            if partial {
                control::ls_partial(&on, json)?;
            } else {
                control::ls(&on, &dir, json)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Rm { root } => {
            control::rm(&On::open(&dir, false)?, root, json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Gc {
            partial,
            keep_partial_for,
        } => {
            let req = swarm_engine::api::GcRequest {
                partial,
                keep_partial_secs: keep_partial_for
                    .as_deref()
                    .map(release::parse_duration)
                    .transpose()?,
            };
            control::gc(&On::open(&dir, false)?, &req, json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Check { repair } => {
            return control::check(&On::open(&dir, !repair)?, repaired, json);
        }
        Command::Trust { command } => {
            let read_only = matches!(command, TrustCommand::Ls);
            control::trust(&On::open(&dir, read_only)?, command, json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Cat { target } => {
            // A ticket's file may be fetched into the store first.
            let read_only = !swarm_engine::ticket::is_ticket(&target);
            control::cat(&On::open(&dir, read_only)?, &target)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Status => {
            control::status(&dir, json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Export {
            root,
            output,
            force,
            delete,
        } => {
            control::export(&On::open(&dir, true)?, root, &output, (force, delete), json)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Mirror {
            target,
            dir: out,
            trust,
        } => {
            let trust = roots::trust_args(trust)?;
            let a = mirror::MirrorArgs {
                target: &target,
                dir: &out,
                trust: &trust,
            };
            return mirror::run(&On::open(&dir, true)?, a, json);
        }
        Command::Publish {
            paths,
            key,
            name,
            version,
            channel,
            expires,
            delta_from,
            root,
            pointer_key,
            seq,
            allow_downgrade,
            rollout,
            critical,
            dht: _,
        } => {
            let a = release::PublishArgs {
                paths,
                key,
                name,
                version,
                channel,
                expires,
                delta_from,
                root,
                pointer_key,
                seq,
                allow_downgrade,
                rollout,
                critical,
            };
            return release::publish(&On::open(&dir, false)?, a, json, dht_config(false, None));
        }
        Command::Sign {
            token,
            key,
            root,
            pointer_key,
            dht: _,
        } => {
            let a = roots::SignArgs {
                token,
                key,
                root,
                pointer_key,
            };
            return roots::sign(&On::open(&dir, false)?, a, json, dht_config(false, None));
        }
        Command::Verify { token, path, trust } => {
            let trust = roots::trust_args(trust)?;
            let a = release::VerifyArgs { token, path, trust };
            return release::verify(&On::open(&dir, true)?, a, json);
        }
        Command::Share {
            paths,
            name,
            listen,
            limits,
            dht: _,
        } => {
            let a = share::ShareArgs {
                paths,
                name,
                listen,
                limits: node_config.limits(&limits),
            };
            return share::run(On::open(&dir, false)?, a, json, dht_config(true, listen));
        }
        Command::Fetch {
            root,
            trust,
            name,
            channel,
            peers,
            mirrors,
            mirror_ca,
            output,
            force,
            delete,
            keep,
            paths,
            no_export,
            seed,
            listen,
            progress,
            limits,
            dht: _,
        } => {
            let trust = roots::trust_args(trust)?;
            // Before anything is looked up, connected to or downloaded.
            let (root, peers) = share::expand(root, peers)?;
            let chosen = swarm_engine::content::Selection::new(&paths)?;
            let mirrors = mirrors
                .iter()
                .map(|m| m.parse::<swarm_engine::mirror::MirrorUrl>())
                .collect::<Result<Vec<_>, _>>()?;
            let mirror_ca = mirror_ca
                .iter()
                .map(|p| {
                    files::read_bounded(p, files::MAX_CONFIG_FILE, "CA certificate")
                        .map(String::into_bytes)
                })
                .collect::<Result<Vec<_>>>()?;
            let export = !no_export && !seed;
            let mut want = swarm_engine::release::Want { name, channel };
            if !swarm_engine::release::is_token(root.trim())
                && !dht::is_pointer(&root)
                && (!trust.is_empty() || want != swarm_engine::release::Want::default())
            {
                anyhow::bail!(
                    "--trust, --name and --channel apply to a signed-root token, not a bare root"
                );
            }
            let on = On::open(&dir, false)?;
            if export && let On::Store(store, _) = &on {
                files::check_output(&output, store, force)?;
            }
            // PUBKEY/NAME[@CHANNEL]: the DHT says which token; the policy
            // then treats it like any token, for that name and channel.
            let target = if dht::is_pointer(&root) {
                let p = dht::parse_pointer(&root)?;
                let cfg = dht_config(false, None).with_context(|| {
                    format!(
                        "fetching PUBKEY/NAME needs the DHT; {}",
                        dht::how_to_enable()
                    )
                })?;
                let rt = tokio::runtime::Runtime::new()?;
                let signed = rt.block_on(dht::lookup(&cfg, &p))?;
                want.name.get_or_insert(p.name);
                want.channel.get_or_insert(p.channel);
                signed.to_token()
            } else {
                root
            };
            let limits = node_config.limits(&limits);
            let keep = keep || no_export || seed;
            let (store, probe) = match on {
                On::Store(store, probe) => (store, probe),
                On::Node(client) => {
                    let output = if export {
                        Some(
                            std::path::absolute(&output)
                                .context("cannot find the current directory")?,
                        )
                    } else {
                        None
                    };
                    let req = swarm_engine::api::FetchRequest {
                        target,
                        trust,
                        name: want.name,
                        channel: want.channel,
                        peers,
                        mirrors: mirrors.iter().map(|m| m.to_string()).collect(),
                        mirror_ca: mirror_ca
                            .into_iter()
                            .map(|c| String::from_utf8_lossy(&c).into_owned())
                            .collect(),
                        output,
                        force,
                        delete,
                        keep,
                        max_peers: limits.max_peers,
                        paths,
                    };
                    return net::fetch_through(&client, req, progress, seed, json);
                }
            };
            let _probe = probe;
            let (root, signed) = release::resolve_target(&store, &target, &trust, want)?;
            let args = net::FetchArgs {
                root,
                release: signed,
                peers: &peers,
                mirrors,
                mirror_ca,
                output: export.then_some(output.as_path()),
                force,
                delete,
                keep,
                seed,
                listen,
                progress,
                limits,
                chosen,
            };
            let dht = dht_config(false, listen);
            return net::fetch(store, args, json, dht);
        }
        other => other,
    };
    let store = Store::open(&dir)?;
    // Remembers, when this returns, whether the store was found damaged.
    let _probe = DamageProbe(store.clone());
    match command {
        Command::Node {
            listen,
            limits: ref flag_limits,
            super_seed,
            api,
            ref api_token_file,
            api_allow_remote,
            log_served,
            config: ref config_path,
            dht: _,
        } => {
            let tcp = net::TcpApiArgs::from_flags(
                api.or(node_config.api),
                api_token_file
                    .clone()
                    .or_else(|| node_config.api_token_file.clone()),
                api_allow_remote || node_config.api_allow_remote,
            )?;
            let api_args = net::ApiArgs {
                tcp,
                log_served: log_served.or(node_config.log_served),
            };
            let limits = node_config.limits(flag_limits);
            let listen = listen
                .or(node_config.listen)
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 7411)));
            let seeding = net::Seeding::from_config(&node_config, super_seed)?;
            net::node(
                store,
                &dir,
                listen,
                json,
                dht_config(true, Some(listen)),
                seeding,
                &limits,
                api_args,
                config_path.clone(),
                flag_limits,
            )
        }
        Command::Resolve { pointer, .. } => dht::resolve(dht_config(false, None), &pointer, json),
        Command::Demo
        | Command::Keygen { .. }
        | Command::Key { .. }
        | Command::Add { .. }
        | Command::Ls { .. }
        | Command::Rm { .. }
        | Command::Gc { .. }
        | Command::Check { .. }
        | Command::Trust { .. }
        | Command::Status
        | Command::Cat { .. }
        | Command::Publish { .. }
        | Command::Sign { .. }
        | Command::Root { .. }
        | Command::Fetch { .. }
        | Command::Share { .. }
        | Command::Export { .. }
        | Command::Mirror { .. }
        | Command::Verify { .. } => unreachable!("handled before the store opens"),
    }
}

/// Set when a command ends with its store found damaged.
static STORE_DAMAGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes, when dropped, whether its store was found damaged: the error a
/// command returns may not say so itself.
pub(crate) struct DamageProbe(pub(crate) Store);

impl Drop for DamageProbe {
    fn drop(&mut self) {
        if self.0.is_damaged() {
            STORE_DAMAGED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Whether `e` comes from a damaged store database, which
/// `swarm check --repair` can rebuild.
fn is_damage(e: &anyhow::Error) -> bool {
    use swarm_engine::store::{OpenError, ReadError, StoreError};
    STORE_DAMAGED.load(std::sync::atomic::Ordering::SeqCst)
        || e.chain().any(|c| {
            matches!(c.downcast_ref(), Some(OpenError::Corrupt { .. }))
                || matches!(c.downcast_ref(), Some(StoreError::Damaged { .. }))
                || matches!(
                    c.downcast_ref(),
                    Some(ReadError::Store(StoreError::Damaged { .. }))
                )
        })
}

/// `swarm check --repair`: salvage the store, print what it did, and
/// return it as JSON for the check's own output.
fn repair(dir: &std::path::Path, json: bool) -> Result<serde_json::Value> {
    use swarm_engine::store::PinSource;
    let report = Store::salvage(dir, |_| {})?;
    let old = &report.old;
    let source = |s: PinSource| match s {
        PinSource::OldPin => "old pin",
        PinSource::OldPage => "old database page",
        _ => "first path",
    };
    let value = json!({
        "moved_to": report.moved_to.as_ref().map(|p| p.display().to_string()),
        "old_database": {
            "open_error": old.open_error,
            "inline_blobs": old.inline,
            "pins": old.pins,
            "secrets": old.secrets,
            "trusted": old.trusted,
            "trust_not_restored": old.trust_on_pages.iter()
                .map(|(k, l)| json!({ "key": k.to_string(), "label": l }))
                .collect::<Vec<_>>(),
            "releases_seen": old.releases_seen,
            "problems": old.problems,
        },
        "complete": report.complete.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        "partial": report.partial.iter().map(|p| json!({
            "hash": p.hash.to_hex(),
            "size": p.size,
            "groups": p.groups.count(),
            "of": swarm_engine::content::group_count(p.size),
        })).collect::<Vec<_>>(),
        "lost": report.lost.iter()
            .map(|l| json!({ "hash": l.hash.to_hex(), "why": l.why }))
            .collect::<Vec<_>>(),
        "pins": report.pins.iter().map(|p| json!({
            "root": p.root.to_hex(),
            "name": p.name,
            "named_from": source(p.source),
        })).collect::<Vec<_>>(),
        "pins_lost": report.pins_lost.iter().map(|p| json!({
            "root": p.root.to_hex(),
            "name": p.name,
            "why": p.why,
        })).collect::<Vec<_>>(),
        "bytes": report.bytes,
        "unpinned": report.unpinned.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
    });
    if json {
        return Ok(value);
    }
    match &report.moved_to {
        Some(p) => eprintln!("repair: the old database is kept at {}", p.display()),
        None => eprintln!("repair: there was no database; rebuilding from the blob files"),
    }
    match &old.open_error {
        Some(e) if report.moved_to.is_some() => {
            eprintln!("repair: redb could not open it ({e}); its pages were scanned instead")
        }
        _ => {}
    }
    let mut read = vec![format!("{} inline blob{}", old.inline, plural(old.inline))];
    if let Some(n) = old.pins {
        read.push(format!("{n} pin{}", plural(n)));
    }
    if !old.secrets.is_empty() {
        read.push(format!("secrets ({})", old.secrets.join(", ")));
    }
    if let Some(n) = old.trusted {
        read.push(format!("{n} trusted key{}", plural(n)));
    }
    read.push(format!(
        "{} release high-water mark{}",
        old.releases_seen,
        plural(old.releases_seen)
    ));
    eprintln!("repair: read from the old database: {}", read.join(", "));
    for p in &old.problems {
        eprintln!("repair: note: {p}");
    }
    for (k, l) in &old.trust_on_pages {
        eprintln!(
            "repair: found trust for {k} ({l}) but did not restore it; `swarm trust add` it again if still wanted"
        );
    }
    if !report.unpinned.is_empty() {
        eprintln!(
            "repair: warning: {} recovered blob{} belong to no restored pin; `swarm gc` would delete them, so fetch or add their roots first",
            report.unpinned.len(),
            plural(report.unpinned.len() as u64)
        );
    }
    eprintln!(
        "repair: {} blob{} recovered complete ({} re-hashed)",
        report.complete.len(),
        plural(report.complete.len() as u64),
        bytes(report.bytes)
    );
    for p in &report.partial {
        println!(
            "partial: {}: {} of {} groups verify",
            p.hash,
            p.groups.count(),
            swarm_engine::content::group_count(p.size)
        );
    }
    for l in &report.lost {
        println!("lost: {}: {}", l.hash, l.why);
    }
    for p in &report.pins {
        println!(
            "pinned: {}  {} (name from {})",
            p.root,
            p.name,
            source(p.source)
        );
    }
    for p in &report.pins_lost {
        let name = p.name.as_deref().unwrap_or("(name unknown)");
        println!("not pinned: {}  {}: {}", p.root, name, p.why);
    }
    eprintln!(
        "repair: {} pin{} restored, {} not, {} blob{} lost",
        report.pins.len(),
        plural(report.pins.len() as u64),
        report.pins_lost.len(),
        report.lost.len(),
        plural(report.lost.len() as u64)
    );
    Ok(value)
}

fn store_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d);
    }
    let dirs = directories::ProjectDirs::from("", "", "swarm")
        .context("cannot find a home directory for the store; pass --store DIR")?;
    Ok(dirs.data_dir().to_owned())
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

pub(crate) fn progress_fn(bar: &ProgressBar) -> Arc<dyn Fn(Progress) + Send + Sync> {
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
    swarm_engine::human_bytes(n)
}
