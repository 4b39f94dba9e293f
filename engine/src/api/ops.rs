//! The store operations behind the API's routes. A program that holds the
//! store itself (the CLI on a stopped store) calls these directly, and the
//! server calls the same ones, so both give the same reply.

use std::path::Path;

use super::{
    AddReply, AddRequest, CheckProblem, CheckReply, GcReply, PinEntry, PinsReply, RmReply,
    RmRequest, TrustAddRequest, TrustRmReply, TrustRmRequest, TrustedKey, TrustedReply,
};
use crate::content::{Hash, ParseHashError};
use crate::release::{PublicKey, ReleaseError};
use crate::store::{AddError, AddOptions, Progress, ReadError, Store, StoreError};

/// An API operation that failed. Nothing stored before it is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// A root in the request is not a hash (the message quotes it).
    #[error(transparent)]
    BadRoot(ParseHashError),
    /// A key in the request is not a publisher key (the message quotes it).
    #[error(transparent)]
    BadKey(ReleaseError),
    /// A path to add is relative: the node's working directory is not the
    /// caller's.
    #[error("{0} is a relative path; the node needs absolute paths")]
    RelativePath(String),
    /// The root is not pinned.
    #[error("{0} is not pinned")]
    NotPinned(Hash),
    /// The key is not trusted.
    #[error("{0} is not trusted")]
    NotTrusted(PublicKey),
    /// Adding failed.
    #[error(transparent)]
    Add(#[from] AddError),
    /// Reading the store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpError {
    /// Whether the request itself is at fault (HTTP 400) rather than the
    /// state of the store (HTTP 422) or the store failing (HTTP 500).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Self::BadRoot(_) | Self::BadKey(_) | Self::RelativePath(_)
        )
    }

    /// Whether the store failed, rather than refusing the request.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Read(ReadError::Store(_)))
    }
}

fn root(text: &str) -> Result<Hash, OpError> {
    text.trim().parse().map_err(OpError::BadRoot)
}

fn key(text: &str) -> Result<PublicKey, OpError> {
    text.trim().parse().map_err(OpError::BadKey)
}

/// Add files: `POST /v1/add`. `progress`, if any, sees the bytes hashed.
/// Paths must be absolute, so that they mean the same to caller and node.
pub fn add(
    store: &Store,
    req: &AddRequest,
    progress: Option<std::sync::Arc<dyn Fn(Progress) + Send + Sync>>,
) -> Result<AddReply, OpError> {
    if let Some(p) = req.paths.iter().find(|p| !p.is_absolute()) {
        return Err(OpError::RelativePath(p.display().to_string()));
    }
    let opts = AddOptions {
        name: req.name.clone(),
        progress,
    };
    let added = store.add_paths(&req.paths, &opts)?;
    Ok(AddReply {
        root: added.root.to_hex(),
        size: added.size,
        files: added.files,
        new_bytes: added.new_bytes,
    })
}

/// Every pin: `GET /v1/pins`.
pub fn pins(store: &Store) -> Result<PinsReply, OpError> {
    let pins = store
        .pins()?
        .into_iter()
        .map(|p| PinEntry {
            root: p.root.to_hex(),
            name: p.name,
            size: p.size,
            files: p.files,
            created: p.created,
        })
        .collect();
    Ok(PinsReply { pins })
}

/// Unpin a root: `POST /v1/rm`. Its blobs stay until a gc.
pub fn rm(store: &Store, req: &RmRequest) -> Result<RmReply, OpError> {
    let r = root(&req.root)?;
    if !store.unpin(&r)? {
        return Err(OpError::NotPinned(r));
    }
    Ok(RmReply {
        root: r.to_hex(),
        removed: true,
    })
}

/// Delete what no pin needs: `POST /v1/gc`. Safe beside running fetches:
/// blobs being written are kept.
pub fn gc(store: &Store) -> Result<GcReply, OpError> {
    let stats = store.gc()?;
    Ok(GcReply {
        blobs: stats.blobs,
        bytes: stats.bytes,
    })
}

/// Re-verify every blob: `POST /v1/check`.
pub fn check(store: &Store) -> Result<CheckReply, OpError> {
    let report = store.check(|_| {})?;
    Ok(CheckReply {
        ok: report.problems.is_empty(),
        blobs: report.blobs,
        bytes: report.bytes,
        problems: report
            .problems
            .into_iter()
            .map(|p| CheckProblem {
                hash: p.hash.to_hex(),
                problem: p.what,
            })
            .collect(),
    })
}

/// Every trusted key: `GET /v1/trust`.
pub fn trusted(store: &Store) -> Result<TrustedReply, OpError> {
    let trusted = store
        .trusted()?
        .into_iter()
        .map(|(k, name)| TrustedKey {
            public_key: k.to_string(),
            name,
        })
        .collect();
    Ok(TrustedReply { trusted })
}

/// Trust a key: `POST /v1/trust/add`.
pub fn trust_add(store: &Store, req: &TrustAddRequest) -> Result<TrustedKey, OpError> {
    let k = key(&req.public_key)?;
    let name = req.name.clone().unwrap_or_default();
    store.trust(&k, &name)?;
    Ok(TrustedKey {
        public_key: k.to_string(),
        name,
    })
}

/// Stop trusting a key: `POST /v1/trust/rm`.
pub fn trust_rm(store: &Store, req: &TrustRmRequest) -> Result<TrustRmReply, OpError> {
    let k = key(&req.public_key)?;
    if !store.distrust(&k)? {
        return Err(OpError::NotTrusted(k));
    }
    Ok(TrustRmReply {
        public_key: k.to_string(),
        removed: true,
    })
}

/// `paths` made absolute against this process's working directory, for a
/// request to a node whose working directory is its own.
pub fn absolute_paths(paths: &[impl AsRef<Path>]) -> std::io::Result<Vec<std::path::PathBuf>> {
    paths.iter().map(std::path::absolute).collect()
}
