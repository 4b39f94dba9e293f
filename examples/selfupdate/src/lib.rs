//! An application that keeps itself up to date from the swarm.
//!
//! It is built three times from this code (`src/bin/`): `app-v1` (1.0.0),
//! `app-v2` (2.0.0) and `app-v2-broken` (2.0.0, failing at every start).
//! At each start it:
//!
//! 1. lets the [`Installer`] finish or undo the last update: a version on
//!    trial that used up its starts without being marked healthy is rolled
//!    back, and the previous version is started in its place;
//! 2. starts up (the broken build fails here) and marks itself healthy;
//! 3. looks for a newer release of `selfupdate-demo` on the DHT, signed by
//!    the publisher key it was given, and if there is one, fetches it
//!    through the swarm, installs it and restarts as the new version.
//!
//! ```text
//! app --data DIR --publisher KEY [--bootstrap HOST:PORT]... [--listen ADDR]
//!     [--channel NAME] [--trial-starts N]
//!     [--watch SECS [--delay SECS] [--peer HOST:PORT]...]
//! ```
//!
//! With `--watch` it runs like a long-lived application instead: for at
//! most SECS it takes updates as [`Updater::watch`] finds them, by gossip
//! from the `--peer`s it keeps connected and from the DHT, each only once
//! it is `--delay` seconds old (its verification delay; a critical release
//! does not wait).
//!
//! A real application compiles its publisher key in; this one takes it as
//! an argument so a test can make one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use swarm_engine::node::Node;
use swarm_engine::release::PublicKey;
use swarm_engine::update::{Installer, Startup, UpdateConfig, Updater};

/// The release name the example follows.
pub const NAME: &str = "selfupdate-demo";

/// What this build does at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Starts, and marks itself healthy.
    Healthy,
    /// Exits with status 3 before it marks itself healthy.
    FailsAtStart,
}

const USAGE: &str = "usage: app --data DIR --publisher KEY [--bootstrap HOST:PORT]... \
                     [--listen ADDR] [--channel NAME] [--trial-starts N] \
                     [--watch SECS [--delay SECS] [--peer HOST:PORT]...]";

#[derive(Debug)]
struct Args {
    data: PathBuf,
    publisher: PublicKey,
    bootstrap: Vec<String>,
    listen: SocketAddr,
    channel: String,
    trial_starts: u32,
    /// Watch for this long instead of checking once.
    watch: Option<u64>,
    /// The verification delay, in seconds.
    delay: u64,
    /// Peers to keep connected while watching, for gossip.
    peers: Vec<swarm_engine::net::PeerAddr>,
}

fn parse_args() -> Result<Args, String> {
    let mut data = None;
    let mut publisher = None;
    let mut bootstrap = Vec::new();
    let mut listen: SocketAddr = ([0, 0, 0, 0], 0).into();
    let mut channel = "stable".to_owned();
    let mut trial_starts = swarm_engine::update::DEFAULT_TRIAL_STARTS;
    let (mut watch, mut delay, mut peers) = (None, 0, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => data = Some(PathBuf::from(value()?)),
            "--publisher" => {
                let v = value()?;
                publisher = Some(v.parse().map_err(|e| format!("--publisher {v}: {e}"))?);
            }
            "--bootstrap" => bootstrap.push(value()?),
            "--listen" => {
                let v = value()?;
                listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--channel" => channel = value()?,
            "--trial-starts" => {
                let v = value()?;
                trial_starts = v.parse().ok().filter(|&n| n > 0).ok_or(format!(
                    "--trial-starts {v}: expected a number of starts above 0"
                ))?;
            }
            "--watch" | "--delay" => {
                let v = value()?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("{flag} {v}: expected a number of seconds"))?;
                if flag == "--watch" {
                    watch = Some(n);
                } else {
                    delay = n;
                }
            }
            "--peer" => {
                let v = value()?;
                peers.push(v.parse().map_err(|e| format!("--peer {v}: {e}"))?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        data: data.ok_or("--data is required")?,
        publisher: publisher.ok_or("--publisher is required")?,
        bootstrap,
        listen,
        channel,
        trial_starts,
        watch,
        delay,
        peers,
    })
}

/// Run the application as `version`, built as `build`.
pub fn main(version: &str, build: Build) -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let installer = match Installer::current() {
        Ok(i) => i.trial_starts(args.trial_starts),
        Err(e) => {
            eprintln!("cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    // First thing at every start: finish or undo the last update.
    match installer.startup() {
        Ok(Startup::RolledBack { failed }) => {
            eprintln!(
                "version {failed} did not start; rolled back, restarting the previous version"
            );
            return restart(&installer);
        }
        Ok(Startup::Trial { version, start, of }) => {
            println!("on trial: start {start} of {of} of {version}");
        }
        Ok(Startup::Normal) => {}
        // The update state is only bookkeeping: run regardless.
        Err(e) => eprintln!("warning: {e}"),
    }
    if build == Build::FailsAtStart {
        eprintln!("app {version}: cannot start (a fault in this build)");
        return ExitCode::from(3);
    }
    println!("app {version} running");
    if let Err(e) = installer.mark_healthy() {
        eprintln!("warning: {e}");
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let updated = runtime.block_on(update(&args, version, installer.clone()));
    // The node and its store are closed; the next version opens them.
    drop(runtime);
    match updated {
        Ok(true) => restart(&installer),
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "update failed: {}; still running {version}",
                swarm_engine::error_chain(&*e)
            );
            ExitCode::SUCCESS
        }
    }
}

/// Look for an update and install it. Returns whether one was installed.
async fn update(
    args: &Args,
    version: &str,
    installer: Installer,
) -> Result<bool, Box<dyn std::error::Error>> {
    let mut builder = Node::builder()
        .store_path(&args.data)
        .listen(args.listen)
        .reannounce(None);
    if !args.bootstrap.is_empty() {
        builder = builder.bootstrap(args.bootstrap.clone());
    }
    let node = builder.spawn().await?;
    let updater = Updater::new(
        node.clone(),
        UpdateConfig {
            publishers: vec![args.publisher],
            name: NAME.to_owned(),
            channel: args.channel.clone(),
            current: version.parse()?,
            artifact: None,
            pin: None,
            allow_downgrade: false,
        },
        installer,
    )
    .verification_delay((args.delay > 0).then(|| std::time::Duration::from_secs(args.delay)));
    if let Some(secs) = args.watch {
        let outcome = watch(&node, &updater, args, secs).await;
        node.shutdown().await;
        return outcome;
    }
    let outcome = async {
        // Joining the DHT included: what a start pays to know. Printed for
        // bench-update, which asks for it.
        let began = std::time::Instant::now();
        let checked = updater.check().await;
        if std::env::var_os("SELFUPDATE_PRINT_CHECK_TIME").is_some() {
            println!("checked in {} ms", began.elapsed().as_millis());
        }
        let Some(update) = checked? else {
            println!("up to date");
            return Ok(false);
        };
        println!("found {}", update.version());
        let downloaded = updater.download(&update, Vec::new()).await?;
        // On stderr: what moved, and whether a patch from this version
        // made the new one.
        let patched = downloaded.patched();
        eprintln!(
            "downloaded {} bytes for {} bytes{}",
            downloaded.received(),
            update.release.release().size,
            if patched.files > 0 {
                " (a patch from the installed version)"
            } else {
                ""
            }
        );
        updater.apply(&downloaded)?;
        println!("updated to {}; restarting", update.version());
        Ok(true)
    }
    .await;
    node.shutdown().await;
    outcome
}

/// Take updates as they come, for at most `secs`. Returns whether one was
/// installed.
async fn watch(
    node: &Node,
    updater: &Updater,
    args: &Args,
    secs: u64,
) -> Result<bool, Box<dyn std::error::Error>> {
    // What peers tell of, as they tell it (the watch below decides when
    // it may be taken).
    let mut heard = node.gossiped();
    tokio::spawn(async move {
        while let Ok(r) = heard.recv().await {
            println!("heard of {} by gossip", r.release().version);
        }
    });
    let mut updates = updater.watch(std::time::Duration::from_secs(3600), args.peers.clone());
    let deadline = std::time::Duration::from_secs(secs);
    let Ok(Some(update)) = tokio::time::timeout(deadline, updates.next()).await else {
        println!("watched {secs} s; no update");
        return Ok(false);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    eprintln!(
        "taking {}: {} s old, verification delay {} s",
        update.version(),
        now.saturating_sub(update.release.release().created),
        args.delay
    );
    println!("found {}", update.version());
    let downloaded = updater.download(&update, args.peers.clone()).await?;
    updater.apply(&downloaded)?;
    println!("updated to {}; restarting", update.version());
    Ok(true)
}

/// Run the executable now in place (after an update or a rollback), with
/// the same arguments, and exit as it does.
fn restart(installer: &Installer) -> ExitCode {
    let mut cmd = std::process::Command::new(installer.exe());
    cmd.args(std::env::args_os().skip(1));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        eprintln!("cannot restart {}: {e}", installer.exe().display());
        ExitCode::FAILURE
    }
    #[cfg(not(unix))]
    match cmd.status() {
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("cannot restart {}: {e}", installer.exe().display());
            ExitCode::FAILURE
        }
    }
}
