//! A client of a running node's API, over its Unix socket (hyper).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AddReply, AddRequest, CheckReply, ErrorReply, GcReply, PinsReply, RmReply, RmRequest,
    StatusReply, TrustAddRequest, TrustRmReply, TrustRmRequest, TrustedKey, TrustedReply,
};

/// The most bytes of a reply read (a status of many thousands of pins fits).
const MAX_REPLY: usize = 256 << 20;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The reply is not what the route returns.
    #[error("the node's reply is not the JSON expected ({0}); is it another version of swarm?")]
    BadReply(String),
}

/// Calls a running node's API.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client of the node listening on `socket`. Nothing connects until
    /// a call.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Self {
            socket: socket.as_ref().to_owned(),
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

    /// `POST /v1/gc`.
    pub async fn gc(&self) -> Result<GcReply, ClientError> {
        self.call(Method::POST, "/v1/gc", None::<&()>).await
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

    /// One request on a connection of its own.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let not_running = |source| ClientError::NotRunning {
            path: self.socket.clone(),
            source,
        };
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::UnixStream::connect(&self.socket),
        )
        .await
        .map_err(|_| not_running(std::io::ErrorKind::TimedOut.into()))?
        .map_err(not_running)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(conn);
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
        let status = reply.status();
        let bytes = Limited::new(reply.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| ClientError::BadReply(e.to_string()))?
            .to_bytes();
        driver.abort();
        if status != StatusCode::OK {
            let message = serde_json::from_slice::<ErrorReply>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadReply(e.to_string()))
    }
}
