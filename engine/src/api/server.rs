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
use tokio::net::UnixListener;

use super::{DhtStatus, ErrorReply, MAX_BODY, OpError, ServingStatus, StatusReply, ops};
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

/// Where and how the API listens.
#[derive(Clone)]
pub struct ApiConfig {
    /// The Unix socket; see [`socket_path`](super::socket_path).
    pub socket: PathBuf,
    /// How errors are worded.
    pub describe: Describe,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl ApiConfig {
    /// Listen on `socket`, with errors worded by their chain.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            describe: Arc::new(default_describe),
        }
    }

    /// Word errors with `describe`.
    pub fn describe(mut self, describe: Describe) -> Self {
        self.describe = describe;
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
}

/// The running API. Dropping it stops the server and removes the socket.
#[derive(Debug)]
pub struct ApiServer {
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Serve `node`'s control API on `config.socket`, owner-only (mode 0600).
/// A socket file left there by a node that was killed is replaced; one that
/// a live process answers on is not.
pub async fn serve(node: Node, config: ApiConfig) -> Result<ApiServer, ServeError> {
    let listener = bind(&config.socket).await?;
    let state = Arc::new(State {
        node,
        started: Instant::now(),
        describe: config.describe,
        fetches: Arc::default(),
    });
    let task = tokio::spawn(accept(listener, state));
    Ok(ApiServer {
        socket: config.socket,
        task,
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
    fetches: Arc<super::fetch::Fetches>,
}

async fn accept(listener: UnixListener, state: Arc<State>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, most likely: wait, then go on.
                tracing::warn!("API: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
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
}

pub(super) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;
pub(super) type Reply = Response<Body>;

pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
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
    (Method::POST, "/v1/publish"),
    (Method::POST, "/v1/fetch"),
    (Method::POST, "/v1/gc"),
    (Method::POST, "/v1/check"),
    (Method::GET, "/v1/trust"),
    (Method::POST, "/v1/trust/add"),
    (Method::POST, "/v1/trust/rm"),
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
        "/v1/pins" => blocking(state, move || ops::pins(&store)).await,
        "/v1/gc" => blocking(state, move || ops::gc(&store)).await,
        "/v1/check" => blocking(state, move || ops::check(&store)).await,
        "/v1/trust" => blocking(state, move || ops::trusted(&store)).await,
        "/v1/add" => with(state, &body, move |r| ops::add(&store, &r, None)).await,
        "/v1/rm" => with(state, &body, move |r| ops::rm(&store, &r)).await,
        "/v1/export" => with(state, &body, move |r| ops::export(&store, &r, None)).await,
        "/v1/publish" => publish(state, &body).await,
        "/v1/fetch" => match parse(&body) {
            Ok(req) => {
                let (node, describe) = (state.node.clone(), state.describe.clone());
                super::fetch::start(node, describe, state.fetches.clone(), req).await
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
    let done = match parse(body).map(|req: super::PublishRequest| {
        tokio::task::spawn_blocking(move || ops::publish(&store, &req))
    }) {
        Ok(task) => task.await,
        Err(r) => return *r,
    };
    let done = match done {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return op_error(state, &e),
        Err(e) => return panicked(e),
    };
    let mut reply = done.reply;
    if state.node.dht().is_some() {
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

async fn status(state: &State) -> StatusReply {
    use std::sync::atomic::Ordering::Relaxed;
    let node = &state.node;
    let stats = node.endpoint().stats();
    let store = node.store().clone();
    let pins = tokio::task::spawn_blocking(move || ops::pins(&store))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|p| p.pins)
        .unwrap_or_default();
    let dht = match node.dht() {
        // Waits while the first bootstrap runs; a status must not.
        Some(d) => Some(DhtStatus {
            bootstrapped: tokio::time::timeout(Duration::from_millis(200), d.bootstrapped())
                .await
                .unwrap_or(false),
        }),
        None => None,
    };
    StatusReply {
        node_id: node.id().to_string(),
        addr: node
            .endpoint()
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: state.started.elapsed().as_secs(),
        pins,
        fetches: state.fetches.list(),
        serving: ServingStatus {
            connections: stats.connections.load(Relaxed),
            requests_now: stats.serving.load(Relaxed),
            requests_total: stats.served_total.load(Relaxed),
            bytes_sent: stats.bytes_sent.load(Relaxed),
            violations: stats.violations.load(Relaxed),
        },
        dht,
    }
}
