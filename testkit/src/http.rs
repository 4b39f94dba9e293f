//! A static file server on hyper, for mirrors in tests and benchmarks:
//! real HTTP/1.1 with real Range semantics (206 with Content-Range, 416
//! past the end, 404), optionally over TLS, optionally capped in rate for
//! all its connections together, and with faults injected per request.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};

/// A request as the fault hook sees it.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The path, without the leading `/`.
    pub path: String,
    /// The single byte range asked for, inclusive, if any.
    pub range: Option<(u64, u64)>,
    /// How many requests came before this one.
    pub seq: u64,
}

/// What to do wrong with one response.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer 200 with the whole file, as if Range were not understood.
    IgnoreRange,
    /// Answer 206 with a Content-Range one byte off.
    WrongContentRange,
    /// Flip the byte at this offset of the file.
    FlipByte(u64),
    /// Declare the full length, send only this many bytes, then close.
    Truncate(usize),
    /// Send this many bytes, then nothing more, ever (the connection stays).
    Stall(usize),
    /// Declare a Content-Length of 2^50 bytes.
    HugeLength,
    /// Redirect (302) to this path on the same server.
    Redirect(String),
    /// Serve these bytes as the file.
    Replace(Vec<u8>),
}

/// Decides, per request, whether to misbehave.
pub type FaultFn = Arc<dyn Fn(&Asked) -> Option<Fault> + Send + Sync>;

/// How to serve.
#[derive(Clone, Default)]
pub struct Options {
    /// Most bytes per second over all connections together.
    pub rate: Option<u64>,
    /// Serve HTTPS with a self-signed certificate for `localhost` and
    /// `127.0.0.1` ([`Server::ca_der`] is it).
    pub tls: bool,
    /// The fault hook.
    pub fault: Option<FaultFn>,
}

/// A running server; it stops when dropped.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    cert: Option<Vec<u8>>,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serve the files under `root` on 127.0.0.1, any port.
    pub async fn start(root: &Path, opts: Options) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (acceptor, cert) = if opts.tls {
            let (a, c) = tls_acceptor().map_err(std::io::Error::other)?;
            (Some(a), Some(c))
        } else {
            (None, None)
        };
        let state = Arc::new(State {
            root: root.to_path_buf(),
            fault: opts.fault,
            bucket: opts.rate.map(|r| Bucket {
                rate: r.max(1),
                next: Mutex::new(Instant::now()),
            }),
            seq: AtomicU64::new(0),
            bytes: Arc::default(),
        });
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), state.bytes.clone());
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (state, counted, acceptor) = (state.clone(), counted.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        counted.fetch_add(1, Ordering::Relaxed);
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(state.answer(req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            tls: opts.tls,
            cert,
            requests,
            bytes,
            task,
        })
    }

    /// The base URL, with a trailing `/`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The self-signed certificate of a TLS server (DER).
    pub fn ca_der(&self) -> Option<&[u8]> {
        self.cert.as_deref()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Body bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

struct State {
    root: PathBuf,
    fault: Option<FaultFn>,
    bucket: Option<Bucket>,
    seq: AtomicU64,
    bytes: Arc<AtomicU64>,
}

/// A shared rate cap: each chunk reserves its time slot.
struct Bucket {
    rate: u64,
    next: Mutex<Instant>,
}

impl Bucket {
    /// When `n` more bytes may go.
    fn reserve(&self, n: usize) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // No credit for idle time beyond a few milliseconds.
        if *next < now - Duration::from_millis(5) {
            *next = now - Duration::from_millis(5);
        }
        let at = *next;
        *next += Duration::from_secs_f64(n as f64 / self.rate as f64);
        at
    }
}

type Reply = Response<Paced>;

impl State {
    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().trim_start_matches('/').to_owned();
        let range = req
            .headers()
            .get(hyper::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_range);
        let asked = Asked {
            path: path.clone(),
            range,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        let fault = self.fault.as_ref().and_then(|f| f(&asked));
        // Drain a request body, if any.
        let _ = req.into_body().collect().await;
        let file = if path.split('/').any(|c| c == ".." || c.is_empty()) {
            None
        } else {
            std::fs::File::open(self.root.join(&path))
                .ok()
                .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
        };
        // The bytes to serve: a replacement, or the file (read by range,
        // not whole: files may be large).
        enum Source {
            Bytes(Vec<u8>),
            File(std::fs::File, u64),
        }
        let source = match (&fault, file) {
            (Some(Fault::Status(s)), _) => return self.empty(*s),
            (Some(Fault::Redirect(to)), _) => {
                let mut r = self.empty(302);
                if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("/{to}")) {
                    r.headers_mut().insert(hyper::header::LOCATION, v);
                }
                return r;
            }
            (Some(Fault::Replace(b)), _) => Source::Bytes(b.clone()),
            (_, Some(f)) => {
                let len = f.metadata().map_or(0, |m| m.len());
                Source::File(f, len)
            }
            (_, None) => return self.empty(404),
        };
        let len = match &source {
            Source::Bytes(b) => b.len() as u64,
            Source::File(_, len) => *len,
        };
        let (status, first, end, content_range) = match (range, &fault) {
            (Some(_), Some(Fault::IgnoreRange)) | (None, _) => (200, 0, len, None),
            (Some((a, _)), _) if a >= len => {
                let mut r = self.empty(416);
                if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(hyper::header::CONTENT_RANGE, v);
                }
                return r;
            }
            (Some((a, b)), _) => {
                let b = b.min(len - 1);
                let shown = match fault {
                    Some(Fault::WrongContentRange) => format!("bytes {}-{}/{len}", a + 1, b + 1),
                    _ => format!("bytes {a}-{b}/{len}"),
                };
                (206, a, b + 1, Some(shown))
            }
        };
        let mut data = match source {
            Source::Bytes(b) => b[first as usize..end as usize].to_vec(),
            Source::File(f, _) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; (end - first) as usize];
                if f.read_exact_at(&mut buf, first).is_err() {
                    return self.empty(500);
                }
                buf
            }
        };
        if let Some(Fault::FlipByte(at)) = &fault
            && (first..end).contains(at)
        {
            data[(at - first) as usize] ^= 0x55;
        }
        let body = Bytes::from(data);
        let declared = match fault {
            Some(Fault::HugeLength) => 1u64 << 50,
            _ => body.len() as u64,
        };
        let limit = match fault {
            Some(Fault::Truncate(n)) => Some((n, false)),
            Some(Fault::Stall(n)) => Some((n, true)),
            // Headers and what there is, then nothing (so the headers go out).
            Some(Fault::HugeLength) => Some((body.len(), true)),
            _ => None,
        };
        let mut r = Response::new(Paced {
            data: body,
            pos: 0,
            limit,
            state: self.clone(),
            sleep: None,
            cut: false,
        });
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let h = r.headers_mut();
        h.insert(hyper::header::CONTENT_LENGTH, declared.into());
        h.insert(
            hyper::header::ACCEPT_RANGES,
            hyper::header::HeaderValue::from_static("bytes"),
        );
        if let Some(cr) = content_range
            && let Ok(v) = hyper::header::HeaderValue::from_str(&cr)
        {
            h.insert(hyper::header::CONTENT_RANGE, v);
        }
        r
    }

    fn empty(self: &Arc<Self>, status: u16) -> Reply {
        let mut r = Response::new(Paced {
            data: Bytes::new(),
            pos: 0,
            limit: None,
            state: self.clone(),
            sleep: None,
            cut: false,
        });
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r
    }
}

/// `bytes=a-b` or `bytes=a-`; other forms are ignored (answered whole).
fn parse_range(v: &str) -> Option<(u64, u64)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    if a.contains(',') || b.contains(',') {
        return None;
    }
    let a = a.trim().parse().ok()?;
    let b = match b.trim() {
        "" => u64::MAX,
        b => b.parse().ok()?,
    };
    (a <= b).then_some((a, b))
}

/// A body sent in 64 KiB frames under the shared rate cap; cut after
/// `limit.0` bytes (closing if `!limit.1`, stalling for ever if `limit.1`).
pub struct Paced {
    data: Bytes,
    pos: usize,
    limit: Option<(usize, bool)>,
    state: Arc<State>,
    sleep: Option<Pin<Box<Sleep>>>,
    cut: bool,
}

const FRAME: usize = 64 << 10;

impl Body for Paced {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let end = match this.limit {
            Some((n, _)) => n.min(this.data.len()),
            None => this.data.len(),
        };
        if this.pos >= end {
            return match this.limit {
                Some((_, true)) => Poll::Pending,
                Some((_, false)) => {
                    // Let the connection flush what was sent, then cut it.
                    if !this.cut {
                        this.cut = true;
                        this.sleep = Some(Box::pin(tokio::time::sleep(Duration::from_millis(30))));
                    }
                    if let Some(s) = &mut this.sleep
                        && s.as_mut().poll(cx).is_pending()
                    {
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(Err(std::io::Error::other("cut short on purpose"))))
                }
                None => Poll::Ready(None),
            };
        }
        let n = FRAME.min(end - this.pos);
        if let Some(bucket) = &this.state.bucket {
            if this.sleep.is_none() {
                let at = bucket.reserve(n);
                this.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
            }
            if let Some(s) = &mut this.sleep {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
        }
        let chunk = this.data.slice(this.pos..this.pos + n);
        this.pos += n;
        this.state.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.limit.is_none() && self.pos >= self.data.len()
    }
}

/// A TLS acceptor with a fresh self-signed certificate, and the certificate.
fn tls_acceptor()
-> Result<(tokio_rustls::TlsAcceptor, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let der = cert.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone().into()], key)?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), der))
}
