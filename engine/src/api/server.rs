//! The API's HTTP/1.1 server (hyper) on a Unix socket: routing, bounds on
//! what a client may send, and error replies.

use std::convert::Infallible;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

use super::{
    AnnounceStatus, DhtStatus, ErrorReply, FetchControlRequest, LimitsStatus, MAX_BODY, OpError,
    PeerEntry, PeersReply, RATE_SAMPLES, RateSample, ServingStatus, StatusPin, StatusReply, Totals,
    ops,
};
use crate::Hash;
use crate::node::Node;

/// Most connections served at once; further clients wait to be accepted.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a connection stays open.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(600);

/// Turns an error into the message a client sees. The `swarm` CLI passes
/// one that adds its own hints; the default joins the error's chain.
pub type Describe = Arc<dyn Fn(&(dyn Error + 'static)) -> String + Send + Sync>;

/// The shortest bearer token the TCP listener takes.
pub const MIN_TOKEN_LEN: usize = 16;

/// Reloads the node's config for `POST /v1/reload`: what changed, or why
/// the config was refused (then nothing changed).
pub type Reload = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Where and how the API listens.
#[derive(Clone)]
pub struct ApiConfig {
    /// The Unix socket; see [`socket_path`](super::socket_path).
    pub socket: PathBuf,
    /// How errors are worded.
    pub describe: Describe,
    /// A TCP listener too, if any.
    pub tcp: Option<TcpApi>,
    /// The releases the node follows, for the status.
    pub follow: Option<crate::node::FollowStatus>,
    /// What `POST /v1/reload` does; without it the route says there is
    /// no config to reload.
    pub reload: Option<Reload>,
    /// How often to log, at info, what each pinned root served since the
    /// last such lines, with a summary line; `None` for never. Default
    /// [`SERVED_LOG_EVERY`].
    pub log_served: Option<Duration>,
}

/// How often a node logs what each root served, unless told otherwise.
pub const SERVED_LOG_EVERY: Duration = Duration::from_secs(60);

/// The API over TCP: every request but the dashboard page needs
/// `Authorization: Bearer TOKEN`.
#[derive(Clone)]
pub struct TcpApi {
    /// Where to listen; a loopback address unless `allow_remote`.
    pub addr: std::net::SocketAddr,
    /// The bearer token, at least [`MIN_TOKEN_LEN`] bytes.
    pub token: String,
    /// Listen on an address other machines can reach.
    pub allow_remote: bool,
}

impl std::fmt::Debug for TcpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in a log line.
        f.debug_struct("TcpApi")
            .field("addr", &self.addr)
            .field("allow_remote", &self.allow_remote)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("socket", &self.socket)
            .field("tcp", &self.tcp)
            .field("log_served", &self.log_served)
            .finish_non_exhaustive()
    }
}

impl ApiConfig {
    /// Listen on `socket`, with errors worded by their chain.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            describe: Arc::new(default_describe),
            tcp: None,
            follow: None,
            reload: None,
            log_served: Some(SERVED_LOG_EVERY),
        }
    }

    /// Log what each root served every `every`, or never for `None`.
    pub fn log_served(mut self, every: Option<Duration>) -> Self {
        self.log_served = every.filter(|d| !d.is_zero());
        self
    }

    /// Show what `follow` follows in the status.
    pub fn follow(mut self, follow: crate::node::FollowStatus) -> Self {
        self.follow = Some(follow);
        self
    }

    /// Let `POST /v1/reload` run `reload`.
    pub fn reload(mut self, reload: Reload) -> Self {
        self.reload = Some(reload);
        self
    }

    /// Word errors with `describe`.
    pub fn describe(mut self, describe: Describe) -> Self {
        self.describe = describe;
        self
    }

    /// Listen on TCP `addr` too, where requests need `token`.
    pub fn tcp(mut self, addr: std::net::SocketAddr, token: impl Into<String>) -> Self {
        self.tcp = Some(TcpApi {
            addr,
            token: token.into(),
            allow_remote: false,
        });
        self
    }

    /// Let the TCP listener take an address that is not loopback.
    pub fn allow_remote(mut self) -> Self {
        if let Some(t) = &mut self.tcp {
            t.allow_remote = true;
        }
        self
    }
}

fn default_describe(e: &(dyn Error + 'static)) -> String {
    crate::error_chain(e)
}

/// The API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Something answers on the socket already.
    #[error("another node answers on {0}; stop it first")]
    InUse(PathBuf),
    /// The socket could not be made.
    #[error("cannot listen on {path}")]
    Bind {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A TCP address other machines can reach, without `allow_remote`.
    #[error(
        "the API's TCP address {0} is not loopback; the API controls the node, so it listens \
         on 127.0.0.1 or ::1 unless remote access is allowed explicitly"
    )]
    NotLoopback(std::net::SocketAddr),
    /// The bearer token is too short to be a secret.
    #[error("the API token is {0} bytes; it must be at least {MIN_TOKEN_LEN}")]
    WeakToken(usize),
    /// The TCP port could not be bound.
    #[error("cannot listen on TCP {addr}")]
    TcpBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The running API. Dropping it stops the server and removes the socket.
#[derive(Debug)]
pub struct ApiServer {
    socket: PathBuf,
    tcp: Option<std::net::SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ApiServer {
    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TCP address it listens on too, if any (with the port the
    /// system chose for port 0).
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Serve `node`'s control API on `config.socket`, owner-only (mode 0600),
/// and on `config.tcp` if set. A socket file left there by a node that was
/// killed is replaced; one that a live process answers on is not.
pub async fn serve(node: Node, config: ApiConfig) -> Result<ApiServer, ServeError> {
    let tcp = match &config.tcp {
        Some(t) => {
            if !t.allow_remote && !t.addr.ip().is_loopback() {
                return Err(ServeError::NotLoopback(t.addr));
            }
            if t.token.len() < MIN_TOKEN_LEN {
                return Err(ServeError::WeakToken(t.token.len()));
            }
            let l = TcpListener::bind(t.addr)
                .await
                .map_err(|source| ServeError::TcpBind {
                    addr: t.addr,
                    source,
                })?;
            Some((l, Arc::<str>::from(t.token.as_str())))
        }
        None => None,
    };
    let listener = bind(&config.socket).await?;
    let state = Arc::new(State {
        node,
        started: Instant::now(),
        describe: config.describe,
        follow: config.follow,
        reload: config.reload,
        rates: Default::default(),
        manifests: Default::default(),
        pins_reply: Default::default(),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = vec![
        tokio::spawn(accept_unix(listener, state.clone(), slots.clone())),
        tokio::spawn(sample_rates(state.clone())),
        tokio::spawn(keep_pins_reply(state.clone())),
    ];
    if let Some(every) = config.log_served {
        tasks.push(tokio::spawn(log_served(state.clone(), every)));
    }
    let mut tcp_addr = None;
    if let Some((l, token)) = tcp {
        tcp_addr = l.local_addr().ok();
        tasks.push(tokio::spawn(accept_tcp(l, state, slots, token)));
    }
    Ok(ApiServer {
        socket: config.socket,
        tcp: tcp_addr,
        tasks,
    })
}

async fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let err = |source| ServeError::Bind {
        path: path.to_owned(),
        source,
    };
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(ServeError::InUse(path.to_owned()));
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "replaced a stale API socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    // Made in a directory only the owner can enter, made owner-only, and
    // only then moved into place: no other user can connect in between.
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".api{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(err)?;
    }
    let made = (|| {
        let at = tmp.join("s");
        let listener = UnixListener::bind(&at)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&at, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    made.map_err(err)
}

struct State {
    node: Node,
    started: Instant,
    describe: Describe,
    follow: Option<crate::node::FollowStatus>,
    reload: Option<Reload>,
    rates: std::sync::Mutex<Rates>,
    /// The blobs of each pinned root, as read once: a root's manifest
    /// never changes.
    manifests: std::sync::Mutex<std::collections::HashMap<Hash, Arc<[Hash]>>>,
    /// The last reply to `GET /v1/pins`, encoded, with the store's pins
    /// version it was read at: `swarm ls` of a node with many pins is
    /// then a copy, not a table read and a JSON encoding.
    pins_reply: std::sync::Mutex<Option<(u64, Bytes)>>,
}

/// How often each peer's rate is sampled for `GET /v1/peers`.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Each peer's rate, sampled every [`SAMPLE_EVERY`].
#[derive(Default)]
struct Rates {
    /// Bytes sent to each (peer, address) at the last sample.
    last: std::collections::HashMap<(String, String), u64>,
    /// (When, sample), oldest first.
    samples: std::collections::VecDeque<(Instant, RateSample)>,
}

async fn sample_rates(state: Arc<State>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sessions = state.node.endpoint().sessions();
        let mut down = std::collections::BTreeMap::new();
        for f in state.node.fetches() {
            for (id, rate) in f.peers {
                *down.entry(id.to_string()).or_insert(0) += rate;
            }
        }
        let mut rates = state.rates.lock().unwrap_or_else(|e| e.into_inner());
        let mut sample = RateSample {
            down,
            ..RateSample::default()
        };
        let mut now = std::collections::HashMap::new();
        for s in sessions {
            let id = s.peer.to_string();
            let key = (id.clone(), s.addr.to_string());
            let before = rates.last.get(&key).copied().unwrap_or(0);
            let moved = s.bytes.saturating_sub(before);
            if moved > 0 {
                *sample.up.entry(id).or_insert(0) += moved / SAMPLE_EVERY.as_secs();
            }
            now.insert(key, s.bytes);
        }
        rates.last = now;
        if rates.samples.len() == RATE_SAMPLES {
            rates.samples.pop_front();
        }
        rates.samples.push_back((Instant::now(), sample));
    }
}

/// What one pinned root served in an interval, for its log line.
#[derive(Debug, PartialEq)]
pub(super) struct RootServed {
    pub(super) name: String,
    pub(super) root: Hash,
    /// Bytes sent in the interval.
    pub(super) bytes: u64,
    /// Since the node started.
    pub(super) total: u64,
    pub(super) peers: u64,
}

/// The roots whose bytes served grew since `last` (bytes up by root), and
/// the totals to remember for the next interval.
pub(super) fn served_since(
    pins: &[StatusPin],
    last: &std::collections::HashMap<Hash, u64>,
) -> (Vec<RootServed>, std::collections::HashMap<Hash, u64>) {
    let mut grew = Vec::new();
    let mut now = std::collections::HashMap::new();
    for p in pins {
        let Ok(root) = p.pin.root.parse::<Hash>() else {
            continue;
        };
        let before = last.get(&root).copied().unwrap_or(0);
        if p.bytes_up > before {
            grew.push(RootServed {
                name: p.pin.name.clone(),
                root,
                bytes: p.bytes_up - before,
                total: p.bytes_up,
                peers: p.peers,
            });
        }
        if p.bytes_up > 0 {
            now.insert(root, p.bytes_up);
        }
    }
    grew.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.root.cmp(&b.root)));
    (grew, now)
}

/// Roots named in one interval's lines; the rest are counted in the
/// summary.
const SERVED_LINES: usize = 20;

/// Every `every`, an info line for each root that served anything since
/// the last, and one summing them up. Quiet while nothing is sent.
async fn log_served(state: Arc<State>, every: Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = std::collections::HashMap::new();
    let mut sent_before = state.node.endpoint().stats().bytes_sent.load(Relaxed);
    loop {
        tick.tick().await;
        let stats = state.node.endpoint().stats();
        let sent = stats.bytes_sent.load(Relaxed);
        if sent == sent_before {
            continue;
        }
        let st = state.clone();
        let pins = tokio::task::spawn_blocking(move || {
            let pins = st.node.store().pins().unwrap_or_default();
            served_pins(&st, pins)
        })
        .await
        .unwrap_or_default();
        let (grew, now) = served_since(&pins, &last);
        last = now;
        let secs = every.as_secs_f64();
        for r in grew.iter().take(SERVED_LINES) {
            let short = &r.root.to_hex()[..12];
            tracing::info!(
                root = %short,
                name = %r.name,
                bytes = r.bytes,
                total = r.total,
                peers = r.peers,
                "served root {short} ({}): {} in {secs:.0} s; {} to {} peer{} since start",
                r.name,
                crate::human_bytes(r.bytes),
                crate::human_bytes(r.total),
                r.peers,
                if r.peers == 1 { "" } else { "s" },
            );
        }
        let interval = sent - sent_before;
        sent_before = sent;
        let more = grew.len().saturating_sub(SERVED_LINES);
        tracing::info!(
            roots = grew.len(),
            bytes = interval,
            total = sent,
            connections = stats.connections.load(Relaxed),
            "served {} in {secs:.0} s from {} root{}{}; {} up since start, {} peer{} connected",
            crate::human_bytes(interval),
            grew.len(),
            if grew.len() == 1 { "" } else { "s" },
            if more > 0 {
                format!(" ({more} not named)")
            } else {
                String::new()
            },
            crate::human_bytes(sent),
            stats.connections.load(Relaxed),
            if stats.connections.load(Relaxed) == 1 {
                ""
            } else {
                "s"
            },
        );
    }
}

async fn accept_unix(
    listener: UnixListener,
    state: Arc<State>,
    slots: Arc<tokio::sync::Semaphore>,
) {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((s, _)) => connection(s, state.clone(), slot, None),
            Err(e) => accept_failed(e).await,
        }
    }
}

async fn accept_tcp(
    listener: TcpListener,
    state: Arc<State>,
    slots: Arc<tokio::sync::Semaphore>,
    token: Arc<str>,
) {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((s, _)) => connection(s, state.clone(), slot, Some(token.clone())),
            Err(e) => accept_failed(e).await,
        }
    }
}

async fn accept_failed(e: std::io::Error) {
    // Out of file descriptors, most likely: wait, then go on.
    tracing::warn!("API: accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Serve one connection; with `token`, every request but the dashboard
/// page must carry it.
fn connection<S>(
    stream: S,
    state: Arc<State>,
    slot: tokio::sync::OwnedSemaphorePermit,
    token: Option<Arc<str>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _slot = slot;
        let svc = service_fn(move |req| {
            let (state, token) = (state.clone(), token.clone());
            async move {
                let reply = match token {
                    Some(t) if !authorized(&req, &t) => unauthorized(),
                    _ => route(&state, req).await,
                };
                Ok::<_, Infallible>(reply)
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), svc);
        match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
            Ok(Err(e)) => tracing::debug!("API connection: {e}"),
            Ok(Ok(())) => {}
            Err(_) => tracing::debug!("API connection open too long; closed"),
        }
    });
}

/// Whether `req` may go on: the dashboard page itself holds no data and
/// is open; everything else needs the bearer token.
fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    if req.method() == Method::GET && DASHBOARD_PATHS.contains(&req.uri().path()) {
        return true;
    }
    let Some(given) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Compared in time that does not depend on where they differ.
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn unauthorized() -> Reply {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "this API needs `Authorization: Bearer TOKEN`, the token in the node's token file",
    );
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    r
}

/// Where the dashboard page is served.
const DASHBOARD_PATHS: &[&str] = &["/", "/dashboard"];

pub(super) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;
pub(super) type Reply = Response<Body>;

pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    json_bytes(status, Bytes::from(body))
}

/// A reply of JSON encoded already.
fn json_bytes(status: StatusCode, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    json(
        status,
        &ErrorReply {
            error: message.into(),
        },
    )
}

/// The routes: (method, path). A known path with another method is a 405.
const ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/v1/status"),
    (Method::GET, "/v1/pins"),
    (Method::POST, "/v1/add"),
    (Method::POST, "/v1/rm"),
    (Method::POST, "/v1/export"),
    (Method::POST, "/v1/mirror"),
    (Method::POST, "/v1/publish"),
    (Method::POST, "/v1/sign"),
    (Method::POST, "/v1/fetch"),
    (Method::POST, "/v1/gc"),
    (Method::GET, "/v1/partials"),
    (Method::POST, "/v1/cat"),
    (Method::POST, "/v1/files"),
    (Method::POST, "/v1/check"),
    (Method::GET, "/v1/trust"),
    (Method::POST, "/v1/trust/add"),
    (Method::POST, "/v1/trust/rm"),
    (Method::GET, "/metrics"),
    (Method::GET, "/v1/peers"),
    (Method::POST, "/v1/fetch/pause"),
    (Method::POST, "/v1/fetch/resume"),
    (Method::POST, "/v1/fetch/cancel"),
    (Method::POST, "/v1/reload"),
    (Method::POST, "/v1/seed"),
    (Method::POST, "/v1/verify"),
    (Method::POST, "/v1/seed/stop"),
    (Method::GET, "/"),
    (Method::GET, "/dashboard"),
];

async fn route(state: &Arc<State>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    tracing::debug!(%method, %path, "API request");
    if !ROUTES.iter().any(|(m, p)| *m == method && *p == path) {
        let allowed: Vec<&str> = ROUTES
            .iter()
            .filter(|(_, p)| *p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        if allowed.is_empty() {
            return error(
                StatusCode::NOT_FOUND,
                format!("no route {path}; see docs/api.md for the routes"),
            );
        }
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} takes {}, not {method}", allowed.join(", ")),
        );
        if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
            r.headers_mut().insert(ALLOW, v);
        }
        return r;
    }
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let store = state.node.store().clone();
    match path.as_str() {
        "/v1/status" => json(StatusCode::OK, &status(state).await),
        "/metrics" => metrics(state).await,
        "/v1/peers" => json(StatusCode::OK, &peers(state)),
        "/v1/fetch/pause" => fetch_control(state, &body, Node::pause_fetch),
        "/v1/fetch/resume" => fetch_control(state, &body, Node::resume_fetch),
        "/v1/fetch/cancel" => fetch_control(state, &body, Node::cancel_fetch),
        "/" | "/dashboard" => dashboard(),
        "/v1/reload" => reload(state).await,
        "/v1/pins" => pins(state).await,
        // An empty body is the defaults.
        "/v1/gc" if body.iter().all(u8::is_ascii_whitespace) => {
            blocking(state, move || ops::gc(&store, &Default::default())).await
        }
        "/v1/gc" => with(state, &body, move |r| ops::gc(&store, &r)).await,
        "/v1/partials" => blocking(state, move || ops::partials(&store)).await,
        "/v1/cat" => match parse(&body) {
            Ok(req) => cat(state, store, req).await,
            Err(r) => *r,
        },
        "/v1/files" => match parse::<super::FilesRequest>(&body) {
            Ok(req) => match super::list_files(&state.node, &req).await {
                Ok(r) => json(StatusCode::OK, &r),
                Err(e) => op_error(state, &e),
            },
            Err(r) => *r,
        },
        "/v1/check" => blocking(state, move || ops::check(&store)).await,
        "/v1/trust" => blocking(state, move || ops::trusted(&store)).await,
        "/v1/add" => with(state, &body, move |r| ops::add(&store, &r, None)).await,
        // Stopping seeding is unpinning: the same operation as rm.
        "/v1/rm" | "/v1/seed/stop" => with(state, &body, move |r| ops::rm(&store, &r)).await,
        "/v1/seed" => seed(state, &body).await,
        "/v1/verify" => {
            let describe = state.describe.clone();
            with(state, &body, move |r| {
                ops::verify(&store, &r, unix_now(), &|e| describe(e))
            })
            .await
        }
        "/v1/export" => with(state, &body, move |r| ops::export(&store, &r, None)).await,
        "/v1/mirror" => {
            with(state, &body, move |r| {
                ops::mirror(&store, &r, unix_now(), None)
            })
            .await
        }
        "/v1/publish" => publish(state, &body).await,
        "/v1/sign" => sign(state, &body).await,
        "/v1/fetch" => match parse(&body) {
            Ok(req) => {
                let (node, describe) = (state.node.clone(), state.describe.clone());
                super::fetch::start(node, describe, req).await
            }
            Err(r) => *r,
        },
        "/v1/trust/add" => with(state, &body, move |r| ops::trust_add(&store, &r)).await,
        "/v1/trust/rm" => with(state, &body, move |r| ops::trust_rm(&store, &r)).await,
        _ => error(StatusCode::NOT_FOUND, format!("no route {path}")),
    }
}

/// The request's body, bounded in size and in time.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Reply> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {MAX_BODY} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), MAX_BODY);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body took over {} s to arrive",
                BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Publish, then put the pointer on the node's DHT, if it has one.
async fn publish(state: &State, body: &[u8]) -> Reply {
    let store = state.node.store().clone();
    let mut req: super::PublishRequest = match parse(body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    // The newest this name and channel has on the DHT, so that a second
    // publishing machine takes the sequence after it.
    if let (None, Some(dht)) = (&req.after, state.node.dht())
        && let Ok(publisher) = ops::publisher_of(&req)
    {
        req.after = dht
            .resolve_newest(&publisher, &req.name, &req.channel)
            .await
            .map(|s| s.to_token());
    }
    let done = tokio::task::spawn_blocking(move || ops::publish(&store, &req)).await;
    let done = match done {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return op_error(state, &e),
        Err(e) => return panicked(e),
    };
    let mut reply = done.reply;
    // The node serves it: its addresses go in the ticket.
    let target = crate::ticket::TicketTarget::Release(Box::new(done.release.clone()));
    match state.node.ticket(target) {
        Ok(t) => reply.ticket = t.to_string(),
        Err(e) => tracing::warn!("the published release's ticket carries no address: {e}"),
    }
    if let Some(why) = ops::not_for_dht(&reply) {
        reply.dht_error = Some(why);
    } else {
        // Peers that follow it hear of it now, DHT or not.
        state.node.gossip_accepted(&done.release);
    }
    if reply.dht_error.is_none() && state.node.dht().is_some() {
        match state.node.put_release(&done.release, &done.key).await {
            Ok(()) => reply.dht = true,
            Err(e) => reply.dht_error = Some((state.describe)(&e)),
        }
        let root = done.release.release().root;
        if let Err(e) = state.node.announce_root(&root).await {
            tracing::warn!("announcing the published {root} failed: {e}");
        }
    }
    json(StatusCode::OK, &reply)
}

/// Add a signature, then put the pointer on the node's DHT if the release
/// is complete and a pointer key is at hand.
async fn sign(state: &State, body: &[u8]) -> Reply {
    let store = state.node.store().clone();
    let req: super::SignRequest = match parse(body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let done = match tokio::task::spawn_blocking(move || ops::sign(&store, &req)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return op_error(state, &e),
        Err(e) => return panicked(e),
    };
    let mut reply = done.reply;
    if let (Some(key), Some(_)) = (&done.pointer_key, state.node.dht()) {
        match state.node.put_release(&done.release, key).await {
            Ok(()) => reply.dht = true,
            Err(e) => reply.dht_error = Some((state.describe)(&e)),
        }
    } else if reply.complete && state.node.dht().is_some() {
        reply.dht_error =
            Some("no pointer key: pass --pointer-key FILE to put it on the DHT".into());
    }
    json(StatusCode::OK, &reply)
}

/// The body as `Req`, or the reply refusing it.
fn parse<Req: DeserializeOwned>(body: &[u8]) -> Result<Req, Box<Reply>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("the request body is not the JSON this route takes: {e}"),
        ))
    })
}

pub(super) fn op_error_with(describe: &Describe, e: &OpError) -> Reply {
    let status = if e.is_bad_request() {
        StatusCode::BAD_REQUEST
    } else if e.is_internal() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    error(status, describe(e))
}

fn op_error(state: &State, e: &OpError) -> Reply {
    op_error_with(&state.describe, e)
}

pub(super) fn panicked(e: tokio::task::JoinError) -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error (a bug in swarm; please report it): {e}"),
    )
}

/// Parse the body as `Req`, then run `op` on it.
async fn with<Req, T, F>(state: &State, body: &[u8], op: F) -> Reply
where
    Req: DeserializeOwned + Send + 'static,
    T: Serialize + Send + 'static,
    F: FnOnce(Req) -> Result<T, OpError> + Send + 'static,
{
    match parse(body) {
        Ok(req) => blocking(state, move || op(req)).await,
        Err(r) => *r,
    }
}

/// Run a store operation off the async threads and reply with its result.
async fn blocking<T, F>(state: &State, op: F) -> Reply
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T, OpError> + Send + 'static,
{
    match tokio::task::spawn_blocking(op).await {
        Ok(Ok(v)) => json(StatusCode::OK, &v),
        Ok(Err(e)) => op_error(state, &e),
        Err(e) => panicked(e),
    }
}

/// `POST /v1/cat`: refuse at once what cannot be written (an unknown
/// root or path), then stream the file as it is verified. Should the
/// stored data turn out damaged partway, the stream stops short of the
/// size in [`super::SIZE_HEADER`] and the content length, so the client
/// knows (nothing unverified is ever sent).
async fn cat(state: &State, store: crate::store::Store, req: super::CatRequest) -> Reply {
    let found = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let root = ops::find_root(&store, &req.root)?;
            Ok::<_, OpError>(store.file_entry(&root, req.path.as_deref())?)
        })
        .await
    };
    let entry = match found {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return op_error(state, &e),
        Err(e) => return panicked(e),
    };
    let size = entry.size;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    tokio::task::spawn_blocking(move || {
        let mut w = ChanWriter(tx);
        if let Err(e) = store.cat_file(&entry, &mut w) {
            tracing::warn!(path = %entry.path, "API: cat stopped: {e}");
        }
    });
    let chunks = futures_lite::stream::unfold(rx, |mut rx| async move {
        let b = rx.recv().await?;
        Some((Ok::<_, Infallible>(hyper::body::Frame::data(b)), rx))
    });
    let mut r = Response::new(http_body_util::StreamBody::new(chunks).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(super::SIZE_HEADER, HeaderValue::from(size));
    r
}

/// A writer into a channel of chunks, from a blocking thread: a client
/// that left closes it, and the write fails as a broken pipe.
struct ChanWriter(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /v1/pins`, from the cached reply while the pins are unchanged.
async fn pins(state: &State) -> Reply {
    let version = state.node.store().pins_version();
    let cached = state
        .pins_reply
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some((v, body)) = cached
        && v == version
    {
        return json_bytes(StatusCode::OK, body);
    }
    match encode_pins(state, version).await {
        Ok(body) => json_bytes(StatusCode::OK, body),
        Err(r) => *r,
    }
}

/// Read and encode the pins, and keep the reply as that of `version`
/// (read before the pins: a change in between leaves the cache one
/// version behind, so the next call reads again).
async fn encode_pins(state: &State, version: u64) -> Result<Bytes, Box<Reply>> {
    let store = state.node.store().clone();
    match tokio::task::spawn_blocking(move || ops::pins(&store)).await {
        Ok(Ok(v)) => {
            let body = Bytes::from(serde_json::to_vec(&v).unwrap_or_else(|_| b"{}".to_vec()));
            let mut cached = state.pins_reply.lock().unwrap_or_else(|e| e.into_inner());
            // Two encodings may race: the later version is kept.
            if cached.as_ref().is_none_or(|(v, _)| *v <= version) {
                *cached = Some((version, body.clone()));
            }
            Ok(body)
        }
        Ok(Err(e)) => Err(Box::new(op_error(state, &e))),
        Err(e) => Err(Box::new(panicked(e))),
    }
}

/// Once someone has listed the pins, encode the list again after each
/// change, off the path of the next `GET /v1/pins`: `swarm add` then
/// `swarm ls` finds it ready. Changes that come faster than an encoding
/// are folded into one.
async fn keep_pins_reply(state: Arc<State>) {
    let mut changes = state.node.store().watch_pins();
    while changes.changed().await.is_ok() {
        let version = *changes.borrow_and_update();
        let asked = state
            .pins_reply
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if asked {
            // A failure is the next call's to report.
            let _ = encode_pins(&state, version).await;
        }
    }
}

async fn metrics(state: &State) -> Reply {
    let node = &state.node;
    let store = node.store().clone();
    let pins = tokio::task::spawn_blocking(move || store.pins().map(|p| p.len()))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let gauges = crate::metrics::NodeGauges {
        peers_connected: node.endpoint().open_connections() as u64,
        serving: node
            .endpoint()
            .stats()
            .serving
            .load(std::sync::atomic::Ordering::Relaxed),
        pins: pins as u64,
        fetches_running: node.fetches().len() as u64,
        uptime_secs: state.started.elapsed().as_secs(),
    };
    let text = crate::metrics::render(&gauges);
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed_unsync());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}

/// The dashboard: one page, no external assets, that reads the API.
fn dashboard() -> Reply {
    const PAGE: &str = include_str!("dashboard.html");
    let mut r = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Nothing from elsewhere, and no framing by another page.
    h.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        hyper::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    r
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn seed(state: &State, body: &[u8]) -> Reply {
    let req: super::SeedRequest = match parse(body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let root = match ops::find_root(state.node.store(), &req.root) {
        Ok(r) => r,
        Err(e) => return op_error(state, &e),
    };
    let name = req.name.unwrap_or_else(|| root.to_hex()[..12].to_owned());
    match state.node.seed(&root, &name).await {
        Ok(()) => json(
            StatusCode::OK,
            &super::SeedReply {
                root: root.to_hex(),
                name,
                announced: state.node.dht().is_some(),
            },
        ),
        Err(e @ crate::node::NodeOpError::Store(_)) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, (state.describe)(&e))
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, (state.describe)(&e)),
    }
}

async fn reload(state: &State) -> Reply {
    let Some(reload) = state.reload.clone() else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this node was started without a config file; there is nothing to reload",
        );
    };
    match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(message)) => json(StatusCode::OK, &super::ReloadReply { message }),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(e) => panicked(e),
    }
}

fn fetch_control(
    state: &State,
    body: &[u8],
    ctl: fn(&Node, u64) -> Option<crate::node::RunningFetch>,
) -> Reply {
    let req: FetchControlRequest = match parse(body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match ctl(&state.node, req.id) {
        Some(f) => json(
            StatusCode::OK,
            &super::FetchControlReply {
                id: f.id,
                paused: f.paused,
                cancelled: f.cancelled,
            },
        ),
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "no fetch {} runs on this node; `swarm status` lists them",
                req.id
            ),
        ),
    }
}

/// A running fetch as the status shows it.
fn fetch_status(f: crate::node::RunningFetch) -> super::FetchStatus {
    super::FetchStatus {
        id: f.id,
        paused: f.paused,
        root: f.root.to_hex(),
        label: f.label.clone(),
        seconds: f.elapsed.as_secs(),
        total: f.total,
        have: f.have,
        rate: f.rate,
        peers: f.peers.len() as u64,
        eta_secs: f.eta().map(|d| d.as_secs()),
    }
}

fn peers(state: &State) -> PeersReply {
    let peers = state
        .node
        .endpoint()
        .sessions()
        .into_iter()
        .map(|s| PeerEntry {
            id: s.peer.to_string(),
            addr: s.addr.to_string(),
            connected_secs: s.secs as u64,
            bytes_up: s.bytes,
            gets: s.gets,
        })
        .collect();
    let rates = state.rates.lock().unwrap_or_else(|e| e.into_inner());
    let history = rates
        .samples
        .iter()
        .map(|(at, s)| RateSample {
            secs_ago: at.elapsed().as_secs(),
            ..s.clone()
        })
        .collect();
    PeersReply {
        peers,
        every_secs: SAMPLE_EVERY.as_secs(),
        history,
    }
}

/// Each pin with what its blobs (and its manifest) have served.
fn served_pins(state: &State, pins: Vec<crate::store::Pin>) -> Vec<StatusPin> {
    let store = state.node.store();
    let endpoint = state.node.endpoint();
    let mut cache = state.manifests.lock().unwrap_or_else(|e| e.into_inner());
    // Roots no longer pinned leave the cache.
    if cache.len() > pins.len() {
        let pinned: std::collections::HashSet<Hash> = pins.iter().map(|p| p.root).collect();
        cache.retain(|h, _| pinned.contains(h));
    }
    pins.into_iter()
        .map(|p| {
            let blobs = cache.entry(p.root).or_insert_with(|| {
                let mut b = vec![p.root];
                if let Ok(m) = store.manifest(&p.root) {
                    b.extend(m.entries().iter().map(|e| e.hash));
                }
                b.into()
            });
            let served = endpoint.served(blobs);
            StatusPin {
                pin: ops::pin_entry(p),
                bytes_up: served.bytes,
                peers: served.peers,
            }
        })
        .collect()
}

async fn status(state: &Arc<State>) -> StatusReply {
    use std::sync::atomic::Ordering::Relaxed;
    let node = &state.node;
    let stats = node.endpoint().stats();
    let limits = node.endpoint().limits();
    let store = node.store().clone();
    let st = state.clone();
    let pins = tokio::task::spawn_blocking(move || {
        let pins = store.pins().unwrap_or_default();
        served_pins(&st, pins)
    })
    .await
    .unwrap_or_default();
    let dht = match node.dht() {
        // Waits while the first bootstrap runs; a status must not.
        Some(d) => {
            let quick = Duration::from_millis(200);
            Some(DhtStatus {
                bootstrapped: tokio::time::timeout(quick, d.bootstrapped())
                    .await
                    .unwrap_or(false),
                addr: tokio::time::timeout(quick, d.local_addr())
                    .await
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                routing_table: tokio::time::timeout(quick, d.routing_table_size())
                    .await
                    .unwrap_or(0) as u64,
                last_announce: d.last_announce().map(|a| AnnounceStatus {
                    root: a.root.to_hex(),
                    secs_ago: a.at.elapsed().map_or(0, |e| e.as_secs()),
                    error: a.error,
                }),
            })
        }
        None => None,
    };
    StatusReply {
        node_id: node.id().to_string(),
        addr: node
            .endpoint()
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        reachable: node
            .reachable_addrs()
            .unwrap_or_default()
            .iter()
            .map(|a| a.to_string())
            .collect(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: state.started.elapsed().as_secs(),
        pins,
        fetches: node.fetches().into_iter().map(fetch_status).collect(),
        serving: ServingStatus {
            connections: stats.connections.load(Relaxed),
            requests_now: stats.serving.load(Relaxed),
            requests_total: stats.served_total.load(Relaxed),
            bytes_sent: stats.bytes_sent.load(Relaxed),
            violations: stats.violations.load(Relaxed),
        },
        totals: Totals {
            bytes_up: stats.bytes_sent.load(Relaxed),
            bytes_down: stats.bytes_received.load(Relaxed),
        },
        limits: LimitsStatus {
            upload_limit: limits.upload_limit,
            download_limit: limits.download_limit,
            max_connections: limits.max_connections,
            window: limits.window,
        },
        seeds: state
            .follow
            .as_ref()
            .map(|f| {
                f.status()
                    .into_iter()
                    .map(|s| super::SeedEntry {
                        entry: s.entry,
                        root: s.root.map(|r| r.to_hex()),
                        serving: s.serving,
                        error: s.error,
                        failures: s.failures,
                        next_attempt_secs: s.next_attempt.map(|t| {
                            t.duration_since(std::time::SystemTime::now())
                                .map_or(0, |d| d.as_secs())
                        }),
                        fetching: s.fetching.map(fetch_status),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        dht,
    }
}
