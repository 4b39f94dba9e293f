//! A client of a running node's API, over its Unix socket (hyper).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AddReply, AddRequest, CatRequest, CheckReply, ErrorReply, ExportReply, ExportRequest,
    FetchControlReply, FetchControlRequest, FetchEvent, FetchReply, FetchRequest, GcReply,
    GcRequest, MirrorReply, MirrorRequest, PartialsReply, PeersReply, PinsReply, PublishReply,
    PublishRequest, RmReply, RmRequest, SeedReply, SeedRequest, StatusReply, TrustAddRequest,
    TrustRmReply, TrustRmRequest, TrustedKey, TrustedReply, VerifyReply, VerifyRequest,
};

/// The most bytes of a reply read (a status of many thousands of pins fits).
const MAX_REPLY: usize = 256 << 20;
/// The longest line of a fetch's event stream.
const MAX_LINE: usize = 1 << 20;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection made by [`Client::connect`] waits for the first
/// call; well inside the server's wait for a request's headers.
const READY_FOR: Duration = Duration::from_secs(2);

/// A call to a node's API that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No node answers on the socket.
    #[error("no node answers on {path}")]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// The connection failed mid-call.
    #[error("the node's API connection failed")]
    Http(#[from] hyper::Error),
    /// The node refused or failed the call; `message` says why.
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The node's words.
        message: String,
    },
    /// The operation started and then failed; `message` says why.
    #[error("{message}")]
    Failed {
        /// The node's words.
        message: String,
    },
    /// The reply is not what the route returns.
    #[error("the node's reply is not the JSON expected ({0}); is it another version of swarm?")]
    BadReply(String),
}

/// Calls a running node's API.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    /// A connection made already, and when, for the first call.
    ready: std::sync::Arc<
        std::sync::Mutex<Option<(std::time::Instant, std::os::unix::net::UnixStream)>>,
    >,
}

impl Client {
    /// A client of the node listening on `socket`. Nothing connects until
    /// a call.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Self {
            socket: socket.as_ref().to_owned(),
            ready: Default::default(),
        }
    }

    /// Connect to `socket` now: a client if a node answers there, or why
    /// not. The first call uses this connection (a CLI that asks "is a
    /// node running?" pays for one connect, not two).
    ///
    /// ```no_run
    /// # fn f(dir: &std::path::Path) {
    /// use swarm_engine::api::{Client, socket_path};
    ///
    /// match Client::connect(socket_path(dir)) {
    ///     Ok(_client) => println!("a node holds {}", dir.display()),
    ///     Err(e) => println!("{e}"),
    /// }
    /// # }
    /// ```
    pub fn connect(socket: impl AsRef<Path>) -> Result<Self, ClientError> {
        let socket = socket.as_ref().to_owned();
        match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(s) => Ok(Self {
                socket,
                ready: std::sync::Arc::new(std::sync::Mutex::new(Some((
                    std::time::Instant::now(),
                    s,
                )))),
            }),
            Err(source) => Err(ClientError::NotRunning {
                path: socket,
                source,
            }),
        }
    }

    /// The socket it calls.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusReply, ClientError> {
        self.call(Method::GET, "/v1/status", None::<&()>).await
    }

    /// `GET /v1/pins`.
    pub async fn pins(&self) -> Result<PinsReply, ClientError> {
        self.call(Method::GET, "/v1/pins", None::<&()>).await
    }

    /// `POST /v1/add`. Make relative paths absolute first
    /// ([`absolute_paths`](super::ops::absolute_paths)).
    pub async fn add(&self, req: &AddRequest) -> Result<AddReply, ClientError> {
        self.call(Method::POST, "/v1/add", Some(req)).await
    }

    /// `POST /v1/rm`.
    pub async fn rm(&self, req: &RmRequest) -> Result<RmReply, ClientError> {
        self.call(Method::POST, "/v1/rm", Some(req)).await
    }

    /// `POST /v1/publish`.
    pub async fn publish(&self, req: &PublishRequest) -> Result<PublishReply, ClientError> {
        self.call(Method::POST, "/v1/publish", Some(req)).await
    }

    /// `POST /v1/export`.
    pub async fn export(&self, req: &ExportRequest) -> Result<ExportReply, ClientError> {
        self.call(Method::POST, "/v1/export", Some(req)).await
    }

    /// `POST /v1/mirror`. The directory must be absolute.
    pub async fn mirror(&self, req: &MirrorRequest) -> Result<MirrorReply, ClientError> {
        self.call(Method::POST, "/v1/mirror", Some(req)).await
    }

    /// `POST /v1/gc`.
    pub async fn gc(&self) -> Result<GcReply, ClientError> {
        self.call(Method::POST, "/v1/gc", None::<&()>).await
    }

    /// `POST /v1/gc` with what to keep.
    pub async fn gc_with(&self, req: &GcRequest) -> Result<GcReply, ClientError> {
        self.call(Method::POST, "/v1/gc", Some(req)).await
    }

    /// `POST /v1/cat`: `out` sees the file's bytes in order, each piece
    /// verified by the node before it was sent. Returns the bytes; a
    /// stream that stops short is an error.
    pub async fn cat(
        &self,
        req: &CatRequest,
        mut out: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<u64, ClientError> {
        let (status, mut body, driver) = self.send(Method::POST, "/v1/cat", Some(req)).await?;
        let _driver = AbortOnDrop(driver);
        if status != StatusCode::OK {
            return Err(refused(status, &collect(body).await?));
        }
        // The reply has a content length: a stream that ends short of it
        // is an error of the body, caught below.
        let mut got = 0u64;
        let short = |got: u64| ClientError::Failed {
            message: format!(
                "the node stopped sending after {got} bytes: its stored data may be damaged (its \
                 log says; a check finds it)"
            ),
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| short(got))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            got += data.len() as u64;
            out(&data).map_err(|e| ClientError::Failed {
                message: format!("cannot write the output: {e}"),
            })?;
        }
        Ok(got)
    }

    /// `POST /v1/files`: a root's files, its manifest fetched if needed.
    pub async fn files(&self, req: &super::FilesRequest) -> Result<super::FilesReply, ClientError> {
        self.call(Method::POST, "/v1/files", Some(req)).await
    }

    /// `GET /v1/partials`.
    pub async fn partials(&self) -> Result<PartialsReply, ClientError> {
        self.call(Method::GET, "/v1/partials", None::<&()>).await
    }

    /// `POST /v1/check`.
    pub async fn check(&self) -> Result<CheckReply, ClientError> {
        self.call(Method::POST, "/v1/check", None::<&()>).await
    }

    /// `GET /v1/trust`.
    pub async fn trusted(&self) -> Result<TrustedReply, ClientError> {
        self.call(Method::GET, "/v1/trust", None::<&()>).await
    }

    /// `POST /v1/trust/add`.
    pub async fn trust_add(&self, req: &TrustAddRequest) -> Result<TrustedKey, ClientError> {
        self.call(Method::POST, "/v1/trust/add", Some(req)).await
    }

    /// `POST /v1/trust/rm`.
    pub async fn trust_rm(&self, req: &TrustRmRequest) -> Result<TrustRmReply, ClientError> {
        self.call(Method::POST, "/v1/trust/rm", Some(req)).await
    }

    /// `POST /v1/sign`.
    pub async fn sign(&self, req: &super::SignRequest) -> Result<super::SignReply, ClientError> {
        self.call(Method::POST, "/v1/sign", Some(req)).await
    }

    /// `POST /v1/verify`.
    pub async fn verify(&self, req: &VerifyRequest) -> Result<VerifyReply, ClientError> {
        self.call(Method::POST, "/v1/verify", Some(req)).await
    }

    /// `POST /v1/seed`.
    pub async fn seed(&self, req: &SeedRequest) -> Result<SeedReply, ClientError> {
        self.call(Method::POST, "/v1/seed", Some(req)).await
    }

    /// `POST /v1/seed/stop` (the same as [`Self::rm`]).
    pub async fn stop_seeding(&self, req: &RmRequest) -> Result<RmReply, ClientError> {
        self.call(Method::POST, "/v1/seed/stop", Some(req)).await
    }

    /// `GET /v1/peers`.
    pub async fn peers(&self) -> Result<PeersReply, ClientError> {
        self.call(Method::GET, "/v1/peers", None::<&()>).await
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (status, body, driver) = self.send(Method::GET, "/metrics", None::<&()>).await?;
        let _driver = AbortOnDrop(driver);
        let bytes = collect(body).await?;
        if status != StatusCode::OK {
            return Err(refused(status, &bytes));
        }
        String::from_utf8(bytes.to_vec()).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    /// `POST /v1/fetch/pause`.
    pub async fn fetch_pause(&self, id: u64) -> Result<FetchControlReply, ClientError> {
        let req = FetchControlRequest { id };
        self.call(Method::POST, "/v1/fetch/pause", Some(&req)).await
    }

    /// `POST /v1/fetch/resume`.
    pub async fn fetch_resume(&self, id: u64) -> Result<FetchControlReply, ClientError> {
        let req = FetchControlRequest { id };
        self.call(Method::POST, "/v1/fetch/resume", Some(&req))
            .await
    }

    /// `POST /v1/fetch/cancel`.
    pub async fn fetch_cancel(&self, id: u64) -> Result<FetchControlReply, ClientError> {
        let req = FetchControlRequest { id };
        self.call(Method::POST, "/v1/fetch/cancel", Some(&req))
            .await
    }

    /// `POST /v1/fetch`: `progress` sees each event as it comes; the
    /// result is the last. Dropping the future leaves, which cancels the
    /// fetch in the node (what it verified stays).
    pub async fn fetch(
        &self,
        req: &FetchRequest,
        mut progress: impl FnMut(&FetchEvent),
    ) -> Result<FetchReply, ClientError> {
        let (status, mut body, driver) = self.send(Method::POST, "/v1/fetch", Some(req)).await?;
        let _driver = AbortOnDrop(driver);
        if status != StatusCode::OK {
            return Err(refused(status, &collect(body).await?));
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(at) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=at).collect();
                let event: FetchEvent = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::BadReply(e.to_string()))?;
                match event {
                    FetchEvent::Done { fetched } => return Ok(*fetched),
                    FetchEvent::Error { error } => {
                        return Err(ClientError::Failed { message: error });
                    }
                    e => progress(&e),
                }
            }
            if pending.len() > MAX_LINE {
                return Err(ClientError::BadReply(format!(
                    "a line of the reply is over {MAX_LINE} bytes"
                )));
            }
        }
        Err(ClientError::Failed {
            message: "the node stopped before the fetch ended; what was verified is kept, fetch again to resume".into(),
        })
    }

    /// One request on a connection of its own.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (status, body, driver) = self.send(method, path, body).await?;
        let _driver = AbortOnDrop(driver);
        let bytes = collect(body).await?;
        if status != StatusCode::OK {
            return Err(refused(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    /// Connect, send one request, and return the reply's head and body.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, Incoming, tokio::task::JoinHandle<()>), ClientError> {
        let not_running = |source| ClientError::NotRunning {
            path: self.socket.clone(),
            source,
        };
        let ready = self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            // The node closes a connection that sends nothing for a while;
            // an older one is not worth the risk.
            .filter(|(at, _)| at.elapsed() < READY_FOR)
            .and_then(|(_, s)| {
                s.set_nonblocking(true).ok()?;
                tokio::net::UnixStream::from_std(s).ok()
            });
        let stream = match ready {
            Some(s) => s,
            None => tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::UnixStream::connect(&self.socket),
            )
            .await
            .map_err(|_| not_running(std::io::ErrorKind::TimedOut.into()))?
            .map_err(not_running)?,
        };
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let body = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::BadReply(e.to_string()))?,
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "swarm")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::BadReply(e.to_string()))?;
        let reply = send.send_request(req).await?;
        Ok((reply.status(), reply.into_body(), driver))
    }
}

/// Stops the connection's task when the call ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn collect(body: Incoming) -> Result<Bytes, ClientError> {
    Ok(Limited::new(body, MAX_REPLY)
        .collect()
        .await
        .map_err(|e| ClientError::BadReply(e.to_string()))?
        .to_bytes())
}

fn refused(status: StatusCode, bytes: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<ErrorReply>(bytes)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned());
    ClientError::Refused {
        status: status.as_u16(),
        message,
    }
}
