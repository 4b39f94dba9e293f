//! `POST /v1/fetch`: a fetch into the node's store, its progress streamed
//! back as JSON lines. A client that goes away cancels it; what was
//! verified stays, and fetching again resumes.

use std::convert::Infallible;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::server::{Describe, Reply, op_error_with, panicked};
use super::{FetchEvent, FetchReply, FetchRequest, FilesReply, FilesRequest, OpError, ops};
use crate::mirror::MirrorUrl;
use crate::net::PeerAddr;
use crate::node::{FetchOptions, Node};
use crate::release::{SignedRelease, Want};
use crate::store::ExportOptions;

/// The files of a root or release (`POST /v1/files`, `swarm ls TARGET`):
/// from its manifest in the store, or else the manifest is fetched, and
/// nothing more, from the peers given, a ticket's peers and the node's DHT.
/// It stays in the store unpinned (gc removes it).
pub async fn list_files(node: &Node, req: &FilesRequest) -> Result<FilesReply, OpError> {
    let (store, r) = (node.store().clone(), req.clone());
    let looked = tokio::task::spawn_blocking(move || {
        let (root, peers) = ops::files_target(&store, &r)?;
        let stored = ops::files(&store, &root, false)?;
        Ok::<_, OpError>((root, peers, stored))
    })
    .await
    .map_err(|e| OpError::Internal(format!("listing stopped: {e}")))??;
    let (root, peers) = match looked {
        (_, _, Some(listed)) => return Ok(listed),
        (root, peers, None) => (root, peers),
    };
    let opts = FetchOptions {
        peers,
        pin: false,
        manifest_only: true,
        label: Some(format!("ls {root}")),
        ..Default::default()
    };
    node.fetch(root, opts).await.map_err(OpError::Fetch)?;
    let store = node.store().clone();
    tokio::task::spawn_blocking(move || ops::files(&store, &root, true))
        .await
        .map_err(|e| OpError::Internal(format!("listing stopped: {e}")))??
        .ok_or_else(|| OpError::Internal("the manifest fetched is not in the store".into()))
}

/// Lines queued for a slow client before the fetch waits for it.
const LINES: usize = 64;

/// Check the request, then start the fetch and stream its events. What
/// can be refused before anything is fetched gets an error status.
pub(super) async fn start(node: Node, describe: Describe, req: FetchRequest) -> Reply {
    let store = node.store().clone();
    let checked = tokio::task::spawn_blocking(move || prepare(&store, req)).await;
    let (req, root, release, opts) = match checked {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return op_error_with(&describe, &e),
        Err(e) => return panicked(e),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(LINES);
    let fetch = Fetch {
        root,
        release,
        opts,
    };
    tokio::spawn(run(node, describe, fetch, req, tx));
    let lines = futures_lite::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(line)), rx))
    });
    let mut r = Response::new(StreamBody::new(lines).boxed_unsync());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

type Prepared = (
    FetchRequest,
    crate::Hash,
    Option<SignedRelease>,
    FetchOptions,
);

fn prepare(store: &crate::store::Store, req: FetchRequest) -> Result<Prepared, OpError> {
    let peers = req
        .peers
        .iter()
        .map(|p| {
            p.parse::<PeerAddr>()
                .map_err(|e| OpError::BadSource(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mirrors = req
        .mirrors
        .iter()
        .map(|m| {
            m.parse::<MirrorUrl>()
                .map_err(|e| OpError::BadSource(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(out) = &req.output {
        if !out.is_absolute() {
            return Err(OpError::RelativePath(out.display().to_string()));
        }
        store.check_export_target(out, req.force)?;
    }
    let want = Want {
        name: req.name.clone(),
        channel: req.channel.clone(),
    };
    let paths = crate::content::Selection::new(&req.paths)
        .map_err(|e| OpError::Fetch(crate::node::FetchError::Select(e)))?;
    if !paths.is_all() {
        if req.keep || req.output.is_none() {
            return Err(OpError::Fetch(crate::node::FetchError::PinSubset));
        }
        if req.delete {
            return Err(OpError::Export(crate::store::ExportError::DeleteSubset));
        }
    }
    let (root, release) = ops::resolve_target(store, &req.target, &req.trust, &want, unix_now())?;
    let mut opts = FetchOptions {
        peers,
        mirrors,
        mirror_roots: req
            .mirror_ca
            .iter()
            .map(|c| c.clone().into_bytes())
            .collect(),
        pin: req.keep || req.output.is_none(),
        paths,
        ..Default::default()
    };
    if let Some(n) = req.max_peers {
        opts.max_peers = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok((req, root, release, opts))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn line(e: &FetchEvent) -> Bytes {
    let mut v = serde_json::to_vec(e).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    Bytes::from(v)
}

/// A fetch about to start.
struct Fetch {
    root: crate::Hash,
    release: Option<SignedRelease>,
    opts: FetchOptions,
}

async fn run(node: Node, describe: Describe, f: Fetch, req: FetchRequest, tx: mpsc::Sender<Bytes>) {
    let Fetch {
        root,
        release,
        opts,
    } = f;
    let start = Instant::now();
    let mut fetch = node.fetch(root, opts);
    let mut events = fetch.events();
    tracing::info!(id = fetch.id(), %root, "API: fetch started");
    // Events until the stream ends with the fetch; a client that leaves
    // drops the fetch, which cancels it.
    let result = loop {
        tokio::select! {
            e = async { events.as_mut()?.next().await }, if events.is_some() => match e {
                Some(e) => {
                    let Some(ev) = FetchEvent::from_progress(&e) else {
                        continue;
                    };
                    if tx.send(line(&ev)).await.is_err() {
                        tracing::info!(%root, "API: the client left; fetch cancelled");
                        return;
                    }
                }
                None => events = None,
            },
            r = &mut fetch => break r,
            () = tx.closed() => {
                tracing::info!(%root, "API: the client left; fetch cancelled");
                return;
            }
        }
    };
    let done = match result {
        Ok(f) => finish(&node, &req, root, release.as_ref(), f, start).await,
        Err(e) => Err(OpError::Fetch(e)),
    };
    let last = match done {
        Ok(fetched) => FetchEvent::Done {
            fetched: Box::new(fetched),
        },
        Err(e) => FetchEvent::Error {
            error: describe(&e),
        },
    };
    let _ = tx.send(line(&last)).await;
}

async fn finish(
    node: &Node,
    req: &FetchRequest,
    root: crate::Hash,
    release: Option<&SignedRelease>,
    fetched: crate::node::Fetched,
    start: Instant,
) -> Result<FetchReply, OpError> {
    ops::check_fetched_size(release, fetched.size)?;
    let secs = start.elapsed().as_secs_f64();
    let mut extra = (Vec::new(), false);
    let target = match req.output.clone() {
        Some(out) => {
            let (store, force, keep) = (node.store().clone(), req.force, req.keep);
            let opts_paths = crate::content::Selection::new(&req.paths)
                .map_err(|e| OpError::Export(crate::store::ExportError::Select(e)))?;
            let opts = ExportOptions {
                force,
                progress: None,
                release: !keep,
                delete: req.delete,
                paths: opts_paths,
            };
            let done = tokio::task::spawn_blocking(move || store.export(&root, &out, &opts))
                .await
                .map_err(|e| OpError::Internal(format!("the export stopped: {e}")))??;
            extra = (done.extra, done.deleted);
            Some(done.target)
        }
        None => None,
    };
    tracing::info!(%root, bytes = fetched.received, "API: fetch done");
    let mut reply = FetchReply::new(&fetched, secs, target).with_release(release);
    (reply.extra, reply.deleted) = extra;
    Ok(reply)
}
