//! `mirror`: reading a static mirror (`wire-spec/mirror.md`) over HTTP(S),
//! one more source of verified 16 KiB groups beside QUIC peers.
//!
//! A mirror is untrusted. Its outboard nodes and data ranges are put
//! together into the Bao encoding of the groups asked for and go through
//! the same decoder and writer as a peer's response
//! ([`PartialBlob::receive`]), so a wrong byte or node is caught within
//! its group and nothing unverified is stored. HTTP is reqwest's, on
//! rustls: connections are pooled per host and reused, and several
//! requests run at once, each on its own connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};

use crate::content::{self, GROUP_SIZE, Hash};
use crate::net::Misbehaviour;
use crate::store::{
    GroupSet, MIRROR_INDEX_NAME, MIRROR_VERSION, PartialBlob, StoreError, mirror_blob_path,
    mirror_outboard_path,
};

/// How long a mirror may take to accept a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may go without a byte before it counts as stalled
/// (shorter in the engine's own tests, which stall servers on purpose).
const READ_TIMEOUT: Duration = if cfg!(test) {
    Duration::from_secs(2)
} else {
    Duration::from_secs(15)
};
/// Most bytes of the index a reader takes (`mirror.md` §2).
const MAX_INDEX: u64 = 4096;

/// An HTTP client for mirrors: one per fetch (or per node), shared by all
/// its mirrors so connections to one host are reused.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client that trusts the Mozilla roots built in, and also `extra`:
    /// certificates of private CAs (an internal one, say), each PEM (one
    /// or more certificates) or DER.
    pub fn new(extra: &[Vec<u8>]) -> Result<Self, MirrorError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("swarm/", env!("CARGO_PKG_VERSION")))
            // The layout is served as it is: a compressed body would make
            // ranges meaningless.
            .no_gzip()
            .redirect(reqwest::redirect::Policy::limited(8));
        for bytes in extra {
            let bad = |e: reqwest::Error| MirrorError {
                url: "(a CA certificate)".into(),
                fault: MirrorFault::Unreachable(crate::error_chain(&e)),
            };
            let certs = if bytes.starts_with(b"-----BEGIN") {
                reqwest::Certificate::from_pem_bundle(bytes).map_err(bad)?
            } else {
                vec![reqwest::Certificate::from_der(bytes).map_err(bad)?]
            };
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
        }
        let http = b.build().map_err(|e| MirrorError {
            url: "(client)".into(),
            fault: MirrorFault::Unreachable(crate::error_chain(&e)),
        })?;
        Ok(Self { http })
    }
}

/// A mirror's base URL, checked: `http` or `https`, no query or fragment.
/// Paths of the layout are joined to it (a `/` is added at the end).
///
/// ```
/// use swarm_engine::mirror::MirrorUrl;
///
/// let u: MirrorUrl = "https://cdn.example.com/myapp".parse()?;
/// assert_eq!(u.as_str(), "https://cdn.example.com/myapp/");
/// assert!("ftp://example.com/".parse::<MirrorUrl>().is_err());
/// assert!("not a url".parse::<MirrorUrl>().is_err());
/// # Ok::<(), swarm_engine::mirror::BadMirrorUrl>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MirrorUrl(reqwest::Url);

/// A string that is not a mirror URL.
#[derive(Debug, thiserror::Error)]
#[error("{url:?} is not a mirror URL: {why}")]
pub struct BadMirrorUrl {
    url: String,
    why: String,
}

impl std::str::FromStr for MirrorUrl {
    type Err = BadMirrorUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| BadMirrorUrl {
            url: s.to_owned(),
            why: why.to_owned(),
        };
        let mut url = reqwest::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("only http:// and https:// are supported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a mirror URL has no query or fragment"));
        }
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        Ok(Self(url))
    }
}

impl std::fmt::Display for MirrorUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl MirrorUrl {
    /// The URL as a string, with its trailing `/`.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    fn join(&self, rel: &str) -> reqwest::Url {
        // Relative paths of the layout are plain ASCII: joining cannot fail.
        self.0.join(rel).unwrap_or_else(|_| self.0.clone())
    }
}

/// A mirror failed; `url` names the file.
#[derive(Debug, thiserror::Error)]
#[error("mirror {url}: {fault}")]
pub struct MirrorError {
    /// The URL of the request that failed.
    pub url: String,
    /// What went wrong.
    pub fault: MirrorFault,
}

/// The ways reading a mirror fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorFault {
    /// No connection, TLS refused, a redirect loop, or the response
    /// stalled: reqwest's error, with its causes.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered with this status.
    #[error("the server answered {0}")]
    Status(u16),
    /// The index is missing or is not a mirror's.
    #[error("not a swarm mirror (no `swarm-mirror` index at its top)")]
    NotAMirror,
    /// The index names a layout this build does not read.
    #[error("a mirror of layout version {0}; this build reads version {MIRROR_VERSION}")]
    Version(String),
    /// The server answered a Range request with the whole file (200).
    #[error("the server ignores Range requests (200 where 206 was asked for)")]
    IgnoresRange,
    /// A 206 whose Content-Range is not the range asked for, or not the
    /// blob's size.
    #[error("answered bytes {asked} with Content-Range {got:?}")]
    WrongRange {
        /// The range asked for, `first-last/size`.
        asked: String,
        /// The header that came back.
        got: String,
    },
    /// The response is longer than what was asked for.
    #[error("sent more than the {limit} bytes asked for")]
    TooLong {
        /// The most that was asked for.
        limit: u64,
    },
    /// The body ended before the bytes asked for.
    #[error("the body ended after {got} of {want} bytes")]
    Truncated {
        /// Bytes that came.
        got: u64,
        /// Bytes asked for.
        want: u64,
    },
    /// A Content-Length that is not the length asked for.
    #[error("declared {declared} bytes where {want} were asked for")]
    WrongLength {
        /// The Content-Length.
        declared: u64,
        /// The bytes asked for.
        want: u64,
    },
    /// The file is not the blob's length (the Content-Range total).
    #[error("the file is {total} bytes, but the blob is {size}")]
    ShortFile {
        /// The file's length, as the server gave it.
        total: String,
        /// The blob's size.
        size: u64,
    },
    /// An outboard of the wrong length (`mirror.md` §4.1).
    #[error("the outboard of {hash} is not the {want} bytes a blob of {size} bytes has")]
    OutboardLength {
        /// The blob.
        hash: Hash,
        /// Its size.
        size: u64,
        /// The length it must have.
        want: u64,
    },
    /// Our own fault (a bug here), never the mirror's.
    #[error("{0} (a bug here)")]
    Local(String),
    /// Bytes that do not verify against the root, or a blob that does not
    /// hash to its name.
    #[error(transparent)]
    Misbehaved(Misbehaviour),
    /// The local store failed.
    #[error(transparent)]
    Store(StoreError),
}

/// What the picker makes of a mirror's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It lied or broke the layout: banned, like a peer that sent bad data.
    Ban,
    /// It cannot serve this fetch (not a mirror, another layout, no ranges):
    /// dropped, not banned.
    Drop,
    /// It does not have this blob (404, 410, or 416: shorter than the size).
    Lacks,
    /// It may work again (5xx, no connection, a stall, a cut body): a
    /// strike; the picker drops it after several in a row.
    Retry,
    /// Our own store failed: the fetch fails.
    Local,
}

impl MirrorFault {
    /// A short name for a fault that bans the mirror, as the metrics label
    /// it (`bad_data`, `wrong_range`, …); `other` for the rest.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Misbehaved(m) => m.kind(),
            Self::WrongRange { .. } => "wrong_range",
            Self::TooLong { .. } => "too_long",
            Self::WrongLength { .. } => "wrong_length",
            Self::OutboardLength { .. } => "outboard_length",
            _ => "other",
        }
    }

    /// The one mapping from a mirror's fault to what the picker does.
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Misbehaved(_)
            | Self::WrongRange { .. }
            | Self::TooLong { .. }
            | Self::WrongLength { .. }
            | Self::OutboardLength { .. } => Verdict::Ban,
            Self::NotAMirror | Self::Version(_) | Self::IgnoresRange => Verdict::Drop,
            Self::Status(404 | 410 | 416) | Self::ShortFile { .. } => Verdict::Lacks,
            Self::Status(_) | Self::Unreachable(_) | Self::Truncated { .. } | Self::Local(_) => {
                Verdict::Retry
            }
            Self::Store(_) => Verdict::Local,
        }
    }
}

/// One mirror, opened: its index was read and is version 1.
#[derive(Debug)]
pub struct Mirror {
    url: MirrorUrl,
    http: reqwest::Client,
    /// Outboards read so far, by blob (each read once, by the first request
    /// that needs it; they are 1/256 of their blob).
    outboards: Mutex<HashMap<Hash, Arc<tokio::sync::OnceCell<Bytes>>>>,
}

impl Mirror {
    /// Read the index at `url` and check its version (`mirror.md` §2).
    pub async fn open(client: &Client, url: MirrorUrl) -> Result<Self, MirrorError> {
        let m = Self {
            url,
            http: client.http.clone(),
            outboards: Mutex::default(),
        };
        let index = m.url.join(MIRROR_INDEX_NAME);
        let resp = m.send(&index, None).await?;
        let body = match resp.status() {
            StatusCode::OK => read_body(&index, resp, MAX_INDEX, Take::Head).await?,
            StatusCode::NOT_FOUND => return Err(m.fail(&index, MirrorFault::NotAMirror)),
            s => return Err(m.fail(&index, MirrorFault::Status(s.as_u16()))),
        };
        let first = body.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = String::from_utf8_lossy(first);
        match first.trim_end_matches('\r').strip_prefix("swarm-mirror ") {
            Some(v) if v == MIRROR_VERSION.to_string() => Ok(m),
            Some(v) => Err(m.fail(&index, MirrorFault::Version(v.chars().take(32).collect()))),
            None => Err(m.fail(&index, MirrorFault::NotAMirror)),
        }
    }

    /// Its base URL.
    pub fn url(&self) -> &MirrorUrl {
        &self.url
    }

    /// The whole of blob `hash`, at most `limit` bytes, checked against its
    /// hash (for a manifest, whose size is not known yet).
    pub async fn get_blob(&self, hash: Hash, limit: u64) -> Result<Bytes, MirrorError> {
        let url = self.url.join(&mirror_blob_path(&hash));
        let resp = self.send(&url, None).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.fail(&url, MirrorFault::Status(resp.status().as_u16())));
        }
        let body = read_body(&url, resp, limit, Take::AtMost).await?;
        if Hash::of(&body) != hash {
            let bad = Misbehaviour::BadData {
                hash,
                source: content::DecodeError::LeafMismatch { offset: 0 },
            };
            return Err(self.fail(&url, MirrorFault::Misbehaved(bad)));
        }
        Ok(body)
    }

    /// Fetch `groups` of blob `hash` (of `size` bytes) into `partial`,
    /// verified: the outboard (read once), then one Range request per run
    /// of groups. `on_bytes` hears of bytes as they arrive, `on_written` of
    /// verified new bytes as they are stored. Returns the bytes written.
    pub async fn get_groups(
        &self,
        partial: &Arc<Mutex<PartialBlob>>,
        hash: Hash,
        size: u64,
        groups: &GroupSet,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
        on_written: crate::net::Written,
    ) -> Result<u64, MirrorError> {
        let outboard = self.outboard(hash, size).await?;
        let mut total = 0;
        for &(a, b) in groups.ranges() {
            let (first, end) = ((a * GROUP_SIZE).min(size), (b * GROUP_SIZE).min(size));
            if first >= end {
                continue;
            }
            let url = self.url.join(&mirror_blob_path(&hash));
            let data = self.get_range(&url, first, end, size, on_bytes).await?;
            let (partial, outboard, told) = (partial.clone(), outboard.clone(), on_written.clone());
            let got = tokio::task::spawn_blocking(move || {
                let got = receive_range(&partial, hash, size, a, b, &data, &outboard)?;
                // Told here, where it is written: the caller may abort the
                // request (a duplicate answered first) while this runs.
                told(got.0);
                Ok(got)
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            .map_err(|f| self.fail(&url, f))?;
            total += got.0;
            if let Some(f) = got.1 {
                return Err(self.fail(&url, f));
            }
        }
        Ok(total)
    }

    /// The outboard of `hash`, read once and checked for length (its nodes
    /// are checked as groups are decoded).
    async fn outboard(&self, hash: Hash, size: u64) -> Result<Bytes, MirrorError> {
        let want = content::outboard_size(size);
        if want == 0 {
            return Ok(Bytes::new());
        }
        let cell = {
            let mut o = self.outboards.lock().unwrap_or_else(|e| e.into_inner());
            o.entry(hash).or_default().clone()
        };
        let url = self.url.join(&mirror_outboard_path(&hash));
        cell.get_or_try_init(|| async {
            let resp = self.send(&url, None).await?;
            if resp.status() != StatusCode::OK {
                return Err(self.fail(&url, MirrorFault::Status(resp.status().as_u16())));
            }
            read_body(&url, resp, want, Take::Exact)
                .await
                .map_err(|e| match e.fault {
                    MirrorFault::TooLong { .. } | MirrorFault::WrongLength { .. } => {
                        self.fail(&url, MirrorFault::OutboardLength { hash, size, want })
                    }
                    _ => e,
                })
        })
        .await
        .cloned()
    }

    /// Bytes `[first, end)` of a blob of `size` bytes at `url`, exactly.
    async fn get_range(
        &self,
        url: &reqwest::Url,
        first: u64,
        end: u64,
        size: u64,
        on_bytes: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<Rope, MirrorError> {
        let last = end - 1;
        let resp = self
            .send(url, Some(format!("bytes={first}-{last}")))
            .await?;
        let want = end - first;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let asked = format!("{first}-{last}/{size}");
                let got = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let (range, total) = got
                    .strip_prefix("bytes ")
                    .and_then(|r| r.trim().split_once('/'))
                    .unwrap_or_default();
                // A file of another length first: it lacks the blob
                // (`mirror.md` §6), whatever range it sent of it.
                if total != size.to_string() {
                    let total = total.chars().take(24).collect();
                    return Err(self.fail(url, MirrorFault::ShortFile { total, size }));
                }
                if range != format!("{first}-{last}") {
                    return Err(self.fail(url, MirrorFault::WrongRange { asked, got }));
                }
                read_counted(url, resp, want, Take::Exact, on_bytes).await
            }
            // The whole file: usable only from its start.
            StatusCode::OK if first == 0 => {
                read_counted(url, resp, want, Take::Prefix, on_bytes).await
            }
            StatusCode::OK => Err(self.fail(url, MirrorFault::IgnoresRange)),
            s => Err(self.fail(url, MirrorFault::Status(s.as_u16()))),
        }
    }

    async fn send(
        &self,
        url: &reqwest::Url,
        range: Option<String>,
    ) -> Result<reqwest::Response, MirrorError> {
        let mut req = self.http.get(url.clone());
        if let Some(r) = range {
            req = req.header(RANGE, r);
        }
        req.send()
            .await
            .map_err(|e| self.fail(url, MirrorFault::Unreachable(transport(&e))))
    }

    fn fail(&self, url: &reqwest::Url, fault: MirrorFault) -> MirrorError {
        MirrorError {
            url: url.to_string(),
            fault,
        }
    }
}

/// reqwest's error without the URL it repeats (the caller names it).
fn transport(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_redirect() {
        "too many redirects".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "the body failed".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// How much of a body to take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Any length up to the limit; more is [`MirrorFault::TooLong`].
    AtMost,
    /// Exactly the limit: a declared length that differs is
    /// [`MirrorFault::WrongLength`], a body that ends early
    /// [`MirrorFault::Truncated`].
    Exact,
    /// The first `limit` bytes of a longer body (a whole file sent for a
    /// range that starts at 0); the rest is left unread.
    Prefix,
    /// Up to `limit` bytes, the rest ignored (the index).
    Head,
}

/// A small body, in one piece.
async fn read_body(
    url: &reqwest::Url,
    resp: reqwest::Response,
    limit: u64,
    take: Take,
) -> Result<Bytes, MirrorError> {
    let rope = read_counted(url, resp, limit, take, &|_| {}).await?;
    if let [one] = &rope.chunks[..] {
        return Ok(one.clone());
    }
    let mut all = BytesMut::with_capacity(usize::try_from(rope.len).unwrap_or(0));
    for c in &rope.chunks {
        all.extend_from_slice(c);
    }
    Ok(all.freeze())
}

/// A body as the chunks it arrived in (not copied together).
#[derive(Default)]
struct Rope {
    chunks: Vec<Bytes>,
    len: u64,
}

impl Rope {
    fn push(&mut self, b: Bytes) {
        self.len += b.len() as u64;
        self.chunks.push(b);
    }
}

/// Reads bytes `[start, end)` of a rope as slices of its chunks, moving
/// forward only (the groups of an encoding come in order).
struct Cursor<'a> {
    rope: &'a Rope,
    /// The chunk holding the next byte, and that chunk's offset.
    at: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn new(rope: &'a Rope) -> Self {
        Self {
            rope,
            at: 0,
            base: 0,
        }
    }

    /// Append the slices of `[start, end)` to `out`; false if the rope does
    /// not hold them (or they are behind the cursor).
    fn take(&mut self, start: usize, end: usize, out: &mut Vec<Bytes>) -> bool {
        if start < self.base || end as u64 > self.rope.len {
            return false;
        }
        let mut pos = start;
        while pos < end {
            let Some(chunk) = self.rope.chunks.get(self.at) else {
                return false;
            };
            let chunk_end = self.base + chunk.len();
            if pos >= chunk_end {
                self.base = chunk_end;
                self.at += 1;
                continue;
            }
            let upto = end.min(chunk_end);
            out.push(chunk.slice(pos - self.base..upto - self.base));
            pos = upto;
        }
        true
    }
}

async fn read_counted(
    url: &reqwest::Url,
    mut resp: reqwest::Response,
    limit: u64,
    take: Take,
    on_bytes: &(dyn Fn(u64) + Send + Sync),
) -> Result<Rope, MirrorError> {
    let fail = |fault| MirrorError {
        url: url.to_string(),
        fault,
    };
    // A declared length is checked before a byte is read: a huge
    // Content-Length must not make us wait for it, or allocate it.
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match (take, declared) {
        (Take::AtMost, Some(n)) if n > limit => return Err(fail(MirrorFault::TooLong { limit })),
        (Take::Exact, Some(n)) if n != limit => {
            return Err(fail(MirrorFault::WrongLength {
                declared: n,
                want: limit,
            }));
        }
        (Take::Prefix, Some(n)) if n < limit => {
            return Err(fail(MirrorFault::WrongLength {
                declared: n,
                want: limit,
            }));
        }
        _ => {}
    }
    let mut buf = Rope::default();
    while buf.len < limit || take == Take::AtMost || take == Take::Exact {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| fail(MirrorFault::Unreachable(transport(&e))))?;
        let Some(chunk) = chunk else { break };
        let room = limit - buf.len;
        if chunk.len() as u64 > room {
            if matches!(take, Take::AtMost | Take::Exact) {
                return Err(fail(MirrorFault::TooLong { limit }));
            }
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            buf.push(chunk.slice(..room));
            on_bytes(room as u64);
            break;
        }
        on_bytes(chunk.len() as u64);
        buf.push(chunk);
    }
    let got = buf.len;
    if matches!(take, Take::Exact | Take::Prefix) && got < limit {
        return Err(fail(MirrorFault::Truncated { got, want: limit }));
    }
    Ok(buf)
}

/// Put groups `[a, b)`'s bytes and the outboard's nodes together into their
/// Bao encoding, and decode and write that like a peer's response. Returns
/// the bytes written, and the fault that stopped it, if one did.
fn receive_range(
    partial: &Mutex<PartialBlob>,
    hash: Hash,
    size: u64,
    a: u64,
    b: u64,
    data: &Rope,
    outboard: &[u8],
) -> Result<(u64, Option<MirrorFault>), MirrorFault> {
    let ranges = content::group_ranges(a, b);
    let encoded = encoding(hash, size, a, data, outboard, &ranges)?;
    let got = PartialBlob::receive_chunks(partial, &ranges, encoded).map_err(MirrorFault::Store)?;
    let fault = got
        .failed
        .map(|e| MirrorFault::Misbehaved(Misbehaviour::of_decode(hash, e)));
    Ok((got.written, fault))
}

/// The Bao pre-order encoding of `ranges` (groups from `a` on, whose bytes
/// are `data`) as pieces: each parent node from the outboard, each group a
/// slice of `data`, nothing copied. Not validated here: the decoder checks
/// every node and group against the root, whatever the mirror sent.
fn encoding(
    hash: Hash,
    size: u64,
    a: u64,
    data: &Rope,
    outboard: &[u8],
    ranges: &content::ChunkRanges,
) -> Result<Vec<Bytes>, MirrorFault> {
    use bao_tree::io::sync::Outboard as _;
    let ob = content::outboard(hash, size, outboard);
    let tree = content::tree(size);
    let ranges = content::truncate_ranges(ranges, size);
    let offset = a * GROUP_SIZE;
    let local = |e: String| MirrorFault::Local(format!("encoding what the mirror sent: {e}"));
    let mut parents = BytesMut::new();
    // (from parents, start, end): parents are gathered into one buffer.
    let mut parts: Vec<(bool, usize, usize)> = Vec::new();
    for item in tree.ranges_pre_order_chunks_iter_ref(&ranges, 0) {
        match item {
            bao_tree::iter::BaoChunk::Parent { node, .. } => {
                let (l, r) = ob
                    .load(node)
                    .map_err(|e| local(e.to_string()))?
                    .ok_or_else(|| local(format!("no node {node:?} in the outboard")))?;
                let start = parents.len();
                parents.extend_from_slice(l.as_bytes());
                parents.extend_from_slice(r.as_bytes());
                parts.push((true, start, parents.len()));
            }
            bao_tree::iter::BaoChunk::Leaf {
                start_chunk,
                size: n,
                ..
            } => {
                let start = start_chunk
                    .to_bytes()
                    .checked_sub(offset)
                    .and_then(|s| usize::try_from(s).ok())
                    .filter(|&s| (s + n) as u64 <= data.len)
                    .ok_or_else(|| local(format!("group at {start_chunk:?} outside the range")))?;
                parts.push((false, start, start + n));
            }
        }
    }
    let parents = parents.freeze();
    let mut cursor = Cursor::new(data);
    let mut out = Vec::with_capacity(parts.len() * 2);
    for (p, s, e) in parts {
        if p {
            out.push(parents.slice(s..e));
        } else if !cursor.take(s, e, &mut out) {
            return Err(local(format!("bytes {s}..{e} outside the range")));
        }
    }
    Ok(out)
}
