//! `swarm node` and `swarm fetch`: the commands that run the network.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use swarm_engine::Hash;
use swarm_engine::api::{self, ApiConfig};
use swarm_engine::api::{FetchEvent, FetchReply};
use swarm_engine::discovery::DhtConfig;
use swarm_engine::net::{EndpointConfig, PeerAddr};
use swarm_engine::node::{FetchOptions, FetchProgress, Node};

use crate::args::{Limits, ProgressStyle};
use swarm_engine::store::{ExportOptions, Store};

use crate::{bar, bytes, plural};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

enum Signal {
    Stop,
    Reload,
}

/// Wait for SIGINT or SIGTERM (stop), or SIGHUP (reload).
async fn next_signal() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    static HUP: std::sync::OnceLock<std::sync::Mutex<Option<tokio::signal::unix::Signal>>> =
        std::sync::OnceLock::new();
    // One SIGHUP stream for the process, made once: a SIGHUP between two
    // waits is still seen.
    let hup = HUP.get_or_init(|| std::sync::Mutex::new(signal(SignalKind::hangup()).ok()));
    let mut taken = hup.lock().unwrap_or_else(|e| e.into_inner()).take();
    let got = match &mut taken {
        Some(h) => tokio::select! {
            () = stop_signal() => Signal::Stop,
            _ = h.recv() => Signal::Reload,
        },
        None => {
            stop_signal().await;
            Signal::Stop
        }
    };
    *hup.lock().unwrap_or_else(|e| e.into_inner()) = taken;
    got
}

/// What `POST /v1/reload` and SIGHUP do: read the config file again,
/// follow its seed list, peers, mirrors and trusted keys, and run under
/// its limits and window (the command line's still win), from now on. The
/// addresses are the ones the node started with.
#[derive(Clone)]
struct Reloader {
    path: std::path::PathBuf,
    following: Arc<swarm_engine::node::Following>,
    node: Node,
    /// The limits given on the command line.
    flags: Limits,
    super_seed: swarm_engine::net::SuperSeedMode,
}

impl Reloader {
    fn into_fn(self) -> api::Reload {
        Arc::new(move || self.reload())
    }

    fn reload(&self) -> std::result::Result<String, String> {
        let path = self.path.display();
        let refused = |e: anyhow::Error| format!("{e:#}; the config was not reloaded");
        let c = crate::config::NodeConfig::load(&self.path).map_err(refused)?;
        let mut seeding = Seeding::from_config(&c, Some(self.super_seed))
            .map_err(|e| refused(e.context(format!("{path}"))))?;
        let new = c.limits(&self.flags);
        seeding.max_peers = new.max_peers;
        let limits = swarm_engine::net::Limits {
            upload_limit: new.upload_limit,
            download_limit: new.download_limit,
            max_connections: new
                .max_connections
                .unwrap_or(EndpointConfig::default().max_connections),
            window: new.window.unwrap_or(EndpointConfig::default().window),
        };
        // The limits first: if they are refused, nothing has changed.
        self.node
            .endpoint()
            .set_limits(&limits)
            .map_err(|e| refused(e.into()))?;
        let before: Vec<String> = self
            .following
            .status()
            .into_iter()
            .map(|s| s.entry)
            .collect();
        let added = seeding.seed.iter().filter(|e| !before.contains(e)).count();
        let dropped = before.iter().filter(|e| !seeding.seed.contains(e)).count();
        let n = seeding.seed.len();
        self.following.reload(seeding.follow());
        let cap = |c: Option<u64>| c.map_or("none".to_owned(), |c| format!("{}/s", bytes(c)));
        let msg = format!(
            "reloaded {path}: following {n} seed{} ({added} new, {dropped} dropped); upload {}, \
             download {}, {} connections, window {}",
            plural(n as u64),
            cap(limits.upload_limit),
            cap(limits.download_limit),
            limits.max_connections,
            bytes(limits.window),
        );
        tracing::info!("{msg}");
        Ok(msg)
    }
}

/// Wait for SIGINT or SIGTERM.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// How often a node re-announces its pinned roots on the DHT (BEP 5 peers
/// expire after about 30 minutes).
const REANNOUNCE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Seeding {
    /// The seeding part of a config file; `super_seed` from the flag wins.
    pub(crate) fn from_config(
        c: &crate::config::NodeConfig,
        super_seed: Option<swarm_engine::net::SuperSeedMode>,
    ) -> Result<Self> {
        Ok(Self {
            seed: c.seed.clone(),
            peers: c
                .peers
                .iter()
                .map(|p| p.parse())
                .collect::<Result<_, _>>()?,
            mirrors: c
                .mirrors
                .iter()
                .map(|m| m.parse())
                .collect::<Result<_, _>>()?,
            trust: c
                .trust
                .iter()
                .map(|k| k.parse().with_context(|| format!("trust: {k:?}")))
                .collect::<Result<_, _>>()?,
            max_peers: None,
            super_seed: super_seed.or(c.super_seed).unwrap_or_default(),
            auto_update: c.auto_update.clone(),
        })
    }

    /// What the engine's follow loop takes.
    pub(crate) fn follow(&self) -> swarm_engine::node::Follow {
        let follow = swarm_engine::node::Follow {
            entries: self.seed.clone(),
            peers: self.peers.clone(),
            mirrors: self.mirrors.clone(),
            trust: self.trust.clone(),
            max_peers: self
                .max_peers
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            ..Default::default()
        };
        match &self.auto_update {
            Some(auto) => auto.follow(follow),
            None => follow,
        }
    }
}

/// What a node keeps fetching and serving, from its config file.
pub(crate) struct Seeding {
    /// Tokens or PUBKEY/NAME[@CHANNEL] pointers.
    pub(crate) seed: Vec<String>,
    /// Static peers to fetch them from (the DHT adds more).
    pub(crate) peers: Vec<PeerAddr>,
    /// HTTP(S) mirrors to fetch them from too.
    pub(crate) mirrors: Vec<swarm_engine::mirror::MirrorUrl>,
    /// Keys trusted for them, besides the store's.
    pub(crate) trust: Vec<swarm_engine::release::PublicKey>,
    /// Most peers per fetch.
    pub(crate) max_peers: Option<u64>,
    /// When to super-seed complete blobs (`--super-seed`).
    pub(crate) super_seed: swarm_engine::net::SuperSeedMode,
    /// The config file's `[auto_update]`, if it has one.
    pub(crate) auto_update: Option<swarm_engine::update::AutoUpdate>,
}

/// The endpoint settings the limits ask for.
pub(crate) fn endpoint_config(limits: &Limits) -> EndpointConfig {
    let mut c = EndpointConfig::default()
        .upload_limit(limits.upload_limit)
        .download_limit(limits.download_limit);
    if let Some(n) = limits.max_connections {
        c.max_connections = n;
    }
    if let Some(w) = limits.window {
        c = c.window(w);
    }
    c
}

/// The control API, as the flags and config ask.
pub(crate) struct ApiArgs {
    /// On TCP too.
    pub(crate) tcp: Option<TcpApiArgs>,
    /// Seconds between the lines of what each root served; 0 for never,
    /// `None` for the default.
    pub(crate) log_served: Option<u64>,
}

/// The control API on TCP, as the flags and config ask.
pub(crate) struct TcpApiArgs {
    addr: std::net::SocketAddr,
    token: String,
    allow_remote: bool,
}

impl TcpApiArgs {
    /// `None` without `--api`; an error for a token file that is missing,
    /// or an `--api-token-file` without `--api`.
    pub(crate) fn from_flags(
        addr: Option<std::net::SocketAddr>,
        token_file: Option<std::path::PathBuf>,
        allow_remote: bool,
    ) -> Result<Option<Self>> {
        let hint = "make one with `head -c 32 /dev/urandom | base64 > FILE && chmod 600 FILE`";
        let (addr, file) = match (addr, token_file) {
            (None, None) => return Ok(None),
            (None, Some(_)) => anyhow::bail!("--api-token-file needs --api HOST:PORT"),
            (Some(a), None) => {
                anyhow::bail!("--api {a} needs --api-token-file FILE, the bearer token; {hint}")
            }
            (Some(a), Some(f)) => (a, f),
        };
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!("cannot read the API token file {}; {hint}", file.display())
        })?;
        let token = text.trim().to_owned();
        if token.len() < api::MIN_TOKEN_LEN || token.contains(char::is_whitespace) {
            anyhow::bail!(
                "the API token in {} must be one word of at least {} characters; {hint}",
                file.display(),
                api::MIN_TOKEN_LEN
            );
        }
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(&file)
            && m.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: {} can be read by other users; `chmod 600` it",
                file.display()
            );
        }
        Ok(Some(Self {
            addr,
            token,
            allow_remote,
        }))
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn node(
    store: Store,
    dir: &Path,
    listen: std::net::SocketAddr,
    json: bool,
    dht: Option<DhtConfig>,
    mut seeding: Seeding,
    limits: &Limits,
    api_args: ApiArgs,
    reload_from: Option<std::path::PathBuf>,
    flag_limits: &Limits,
) -> Result<ExitCode> {
    let rt = runtime()?;
    seeding.max_peers = limits.max_peers;
    rt.block_on(async {
        let pins = store.pins()?.len();
        let config = endpoint_config(limits)
            .listen(listen)
            .super_seed(seeding.super_seed);
        let mut node = Node::spawn(store, config).await?;
        let id = node.endpoint().node_id();
        let addr = node.endpoint().local_addr()?;
        // The DHT node starts now, so that the API's node has it; joining
        // (bootstrap) is waited for below, once the API is up.
        if let Some(cfg) = &dht {
            match swarm_engine::discovery::Dht::spawn(cfg) {
                Ok(d) => node = node.with_dht(d),
                Err(e) => eprintln!("warning: {e:#}; serving peers that know this address only"),
            }
        }
        // Follows the config's seed list from the moment it starts; the
        // CLI only prints what happens.
        let following = Arc::new(node.follow(
            seeding.follow(),
            Arc::new(|e: &swarm_engine::node::FollowEvent| eprintln!("{e}")),
        ));
        let mut api = ApiConfig::new(api::socket_path(dir))
            .describe(Arc::new(crate::hints::describe_chain))
            .follow(following.status_handle());
        let reload = reload_from.as_ref().map(|path| Reloader {
            path: path.clone(),
            following: following.clone(),
            node: node.clone(),
            flags: flag_limits.clone(),
            super_seed: seeding.super_seed,
        });
        if let Some(r) = &reload {
            api = api.reload(r.clone().into_fn());
        }
        if let Some(secs) = api_args.log_served {
            api = api.log_served(Some(std::time::Duration::from_secs(secs)));
        }
        if let Some(t) = api_args.tcp {
            api = api.tcp(t.addr, t.token);
            if t.allow_remote {
                api = api.allow_remote();
            }
        }
        let api = api::serve(node.clone(), api)
            .await
            .context("cannot start the control API")?;
        if json {
            println!(
                "{}",
                json!({
                    "node_id": id.to_string(),
                    "addr": addr.to_string(),
                    "pins": pins,
                    "api": api.socket(),
                    "api_tcp": api.tcp_addr().map(|a| a.to_string()),
                })
            );
        } else {
            println!("node {id}");
            println!("listening on {addr}");
            println!("serving {pins} pinned root{}", plural(pins as u64));
            eprintln!(
                "control API on {}: `swarm status`, and every store command, go through this node",
                api.socket().display()
            );
            if let Some(a) = api.tcp_addr() {
                eprintln!("control API and dashboard on http://{a}/ (bearer token required)");
            }
        }
        std::io::Write::flush(&mut std::io::stdout())?;
        if let (Some(d), Some(cfg)) = (node.dht(), &dht) {
            if d.bootstrapped().await {
                // With a seed list, the follow loop announces after each round.
                if seeding.seed.is_empty() {
                    match node.announce().await {
                        Ok(n) => eprintln!(
                            "announced {n} pinned root{} on the DHT; again every 15 minutes",
                            plural(n as u64)
                        ),
                        Err(e) => eprintln!("warning: announcing on the DHT failed: {e:#}"),
                    }
                }
            } else {
                eprintln!(
                    "warning: could not join the DHT through {} (use --bootstrap HOST:PORT, or \
                     --no-dht with --peer); serving peers that know this address only, and \
                     trying again",
                    cfg.bootstrap.join(", ")
                );
            }
        }
        let announcer = (node.dht().is_some() && seeding.seed.is_empty())
            .then(|| node.keep_announcing(REANNOUNCE));
        // SIGHUP reloads the config file; SIGINT and SIGTERM stop.
        loop {
            match next_signal().await {
                Signal::Stop => break,
                Signal::Reload => match &reload {
                    Some(r) => match r.reload() {
                        Ok(m) => eprintln!("{m}"),
                        Err(e) => eprintln!("warning: {e}"),
                    },
                    None => eprintln!("SIGHUP: started without --config; nothing to reload"),
                },
            }
        }
        if let Some(a) = announcer {
            a.abort();
        }
        drop(following);
        if !json {
            eprintln!("stopping");
        }
        drop(api);
        node.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

pub(crate) struct FetchArgs<'a> {
    pub(crate) root: Hash,
    /// The signed release the root came from, if any: its size is checked.
    pub(crate) release: Option<swarm_engine::release::SignedRelease>,
    pub(crate) peers: &'a [String],
    pub(crate) mirrors: Vec<swarm_engine::mirror::MirrorUrl>,
    /// CA certificates (PEM) to trust for HTTPS mirrors.
    pub(crate) mirror_ca: Vec<Vec<u8>>,
    pub(crate) output: Option<&'a Path>,
    pub(crate) force: bool,
    pub(crate) delete: bool,
    /// Pin and keep a copy; otherwise the files are handed over to the
    /// destination and the store keeps nothing.
    pub(crate) keep: bool,
    /// Keep serving after the fetch, until stopped.
    pub(crate) seed: bool,
    pub(crate) listen: Option<std::net::SocketAddr>,
    pub(crate) progress: ProgressStyle,
    pub(crate) limits: Limits,
    /// Only these files of the root.
    pub(crate) chosen: swarm_engine::content::Selection,
}

/// Shows a fetch's progress: a bar, or JSON lines on stderr
/// (`--progress json`). Fed the same events whether this process fetches
/// or a node does.
struct Shown {
    bar: indicatif::ProgressBar,
    json_lines: bool,
    /// Bytes present at the start, and in all.
    present: u64,
    total: u64,
    /// Verified bytes per peer and per mirror ever seen.
    peers: std::collections::BTreeMap<String, u64>,
    mirrors: std::collections::BTreeMap<String, u64>,
}

impl Shown {
    fn new(style: ProgressStyle, json: bool) -> Self {
        let bar = match style {
            ProgressStyle::Auto => bar(json, "fetching"),
            ProgressStyle::Json | ProgressStyle::None => indicatif::ProgressBar::hidden(),
        };
        Self {
            bar,
            json_lines: style == ProgressStyle::Json,
            present: 0,
            total: 0,
            peers: Default::default(),
            mirrors: Default::default(),
        }
    }

    fn show(&mut self, e: &FetchEvent) {
        match e {
            FetchEvent::Manifest { total, present } => {
                (self.present, self.total) = (*present, *total);
                self.bar.set_length(*total);
                self.bar.set_position(*present);
            }
            FetchEvent::Received { bytes } => self.bar.inc(*bytes),
            FetchEvent::Peers { peers } => {
                // Peers that left keep counting for what they delivered.
                for p in peers {
                    self.peers.insert(p.id.clone(), p.bytes);
                }
                let have = self.present
                    + self.peers.values().sum::<u64>()
                    + self.mirrors.values().sum::<u64>();
                let rate: u64 = peers.iter().map(|p| p.rate).sum();
                self.bar.set_message(format!(
                    "{} peer{}, {}/s: {}",
                    peers.len(),
                    plural(peers.len() as u64),
                    bytes(rate),
                    peers
                        .iter()
                        .filter(|p| p.in_flight > 0 || p.rate > 0)
                        .map(|p| format!("{} {}/s", short(&p.id), bytes(p.rate)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                if self.json_lines {
                    let line = json!({
                        "have": have.min(self.total),
                        "total": self.total,
                        "peers": peers,
                    });
                    eprintln!("{line}");
                }
            }
            FetchEvent::Mirrors { mirrors } => {
                for m in mirrors {
                    self.mirrors.insert(m.url.clone(), m.bytes);
                }
                if self.json_lines {
                    eprintln!("{}", json!({ "mirrors": mirrors }));
                }
            }
            _ => {}
        }
    }
}

/// A node id as messages name peers: its first 10 hex characters.
fn short(id: &str) -> &str {
    id.get(..10).unwrap_or(id)
}

pub(crate) fn fetch(
    store: Store,
    args: FetchArgs<'_>,
    json: bool,
    dht: Option<DhtConfig>,
) -> Result<ExitCode> {
    let peers = args
        .peers
        .iter()
        .map(|p| p.parse::<PeerAddr>())
        .collect::<Result<Vec<_>, _>>()?;
    let rt = runtime()?;
    let shown = Arc::new(std::sync::Mutex::new(Shown::new(args.progress, json)));
    let bar = shown.lock().unwrap_or_else(|e| e.into_inner()).bar.clone();
    let progress = {
        let shown = shown.clone();
        Arc::new(move |p: FetchProgress| {
            if let Some(e) = FetchEvent::from_progress(&p) {
                shown.lock().unwrap_or_else(|e| e.into_inner()).show(&e);
            }
        })
    };
    let start = Instant::now();
    let seed_after = args.seed;
    let result = rt.block_on(async {
        let mut config = endpoint_config(&args.limits);
        if let Some(l) = args.listen {
            config = config.listen(l);
        }
        let mut node = Node::spawn(store.clone(), config).await?;
        if let Some(cfg) = &dht {
            match crate::dht::join(cfg).await {
                Ok(d) => node = node.with_dht(d),
                // Static peers still work without the DHT.
                Err(e) if !peers.is_empty() => eprintln!("warning: {e:#}"),
                Err(e) => return Err(e),
            }
        }
        let mut opts = FetchOptions {
            peers,
            progress: Some(progress),
            pin: args.keep,
            mirrors: args.mirrors.clone(),
            mirror_roots: args.mirror_ca.clone(),
            paths: args.chosen.clone(),
            ..Default::default()
        };
        if let Some(n) = args.limits.max_peers {
            opts.max_peers = n as usize;
        }
        let r = tokio::select! {
            r = node.fetch(args.root, opts) => Some(r),
            _ = stop_signal() => None,
        };
        if seed_after && let Some(Ok(f)) = &r {
            // Report now, then serve until stopped.
            let addr = node.endpoint().local_addr()?;
            let mut reply = FetchReply::new(f, start.elapsed().as_secs_f64(), None)
                .with_release(args.release.as_ref());
            reply.serving = Some(addr.to_string());
            report(&reply, json);
            if !json {
                eprintln!("seeding on {addr}; stop with Ctrl-C");
            }
            if node.dht().is_some()
                && let Err(e) = node.announce().await
            {
                eprintln!("warning: {e}");
            }
            stop_signal().await;
        }
        node.shutdown().await;
        Ok::<_, anyhow::Error>(r)
    });
    // Let store threads finish and save what they verified.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    bar.finish_and_clear();
    let Some(fetched) = result? else {
        anyhow::bail!(
            "interrupted; everything verified so far is kept, and fetching again resumes"
        );
    };
    let fetched = fetched?;
    // The root is signed, so a size that disagrees means the publisher
    // signed inconsistent data: refuse it before exporting anything.
    swarm_engine::api::ops::check_fetched_size(args.release.as_ref(), fetched.size)?;
    let secs = start.elapsed().as_secs_f64();
    let mut extra = (Vec::new(), false);
    let target = match args.output {
        Some(out) => {
            let opts = ExportOptions {
                force: args.force,
                progress: None,
                release: !args.keep,
                delete: args.delete,
                paths: args.chosen.clone(),
            };
            let done = store.export(&args.root, out, &opts)?;
            extra = (done.extra, done.deleted);
            Some(done.target)
        }
        None => None,
    };
    if !seed_after {
        let mut reply = FetchReply::new(&fetched, secs, target).with_release(args.release.as_ref());
        (reply.extra, reply.deleted) = extra;
        report(&reply, json);
    }
    Ok(ExitCode::SUCCESS)
}

/// `swarm fetch` into a store a running node holds: the node fetches (and
/// exports), this process shows its progress and report. Ctrl-C leaves,
/// which cancels the fetch in the node.
pub(crate) fn fetch_through(
    client: &swarm_engine::api::Client,
    req: swarm_engine::api::FetchRequest,
    style: ProgressStyle,
    seed: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut shown = Shown::new(style, json);
    let bar = shown.bar.clone();
    let rt = runtime()?;
    let result = rt.block_on(async {
        tokio::select! {
            r = client.fetch(&req, |e| shown.show(e)) => Some(r),
            _ = stop_signal() => None,
        }
    });
    bar.finish_and_clear();
    let Some(fetched) = result else {
        anyhow::bail!(
            "interrupted; everything verified so far is kept, and fetching again resumes"
        );
    };
    let fetched = fetched?;
    report(&fetched, json);
    if seed && !json {
        eprintln!("the node on this store serves it");
    }
    Ok(ExitCode::SUCCESS)
}

/// Print what a fetch did.
fn report(fetched: &FetchReply, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(fetched) {
            println!("{line}");
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        return;
    }
    for f in &fetched.failed_peers {
        eprintln!("note: {f}");
    }
    for f in &fetched.failed_mirrors {
        eprintln!("note: {f}");
    }
    let (peers, mirrors) = (fetched.peers.len(), fetched.mirrors.len());
    let from = match (peers, mirrors) {
        (0, 0) if fetched.received == 0 => "this store (all of it was stored already)".into(),
        (p, 0) => format!("{p} peer{}", plural(p as u64)),
        (0, m) => format!("{m} mirror{}", plural(m as u64)),
        (p, m) => format!(
            "{p} peer{} and {m} mirror{}",
            plural(p as u64),
            plural(m as u64)
        ),
    };
    if let Some(p) = &fetched.patched {
        eprintln!(
            "{} file{} made by patches from the version stored here: {} moved instead of {}",
            p.files,
            plural(p.files),
            bytes(p.patch_bytes),
            bytes(p.file_bytes)
        );
    }
    if let Some(r) = &fetched.release {
        eprintln!(
            "release {} {} on {} (seq {}) by {}",
            r.name, r.version, r.channel, r.seq, r.publisher
        );
    }
    let (files, size, of) = match &fetched.chosen {
        Some(c) => (c.files, c.size, format!(" of {}", fetched.files)),
        None => (fetched.files, fetched.size, String::new()),
    };
    eprintln!(
        "fetched {files}{of} file{}, {} ({} received in {:.2} s) from {from}{}",
        plural(if of.is_empty() { files } else { fetched.files }),
        bytes(size),
        bytes(fetched.received),
        fetched.seconds,
        fetched
            .target
            .as_ref()
            .map(|t| format!(", exported to {}", t.display()))
            .unwrap_or_default()
    );
    if let Some(t) = &fetched.target {
        crate::control::report_extra(t, &fetched.extra, fetched.deleted);
    }
    if fetched.sources.len() + fetched.mirrors.len() > 1 {
        for s in &fetched.sources {
            eprintln!("  {} from {} at {}", bytes(s.bytes), short(&s.id), s.addr);
        }
        for m in &fetched.mirrors {
            eprintln!("  {} from mirror {}", bytes(m.bytes), m.url);
        }
    }
}
