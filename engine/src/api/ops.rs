//! The store operations behind the API's routes. A program that holds the
//! store itself (the CLI on a stopped store) calls these directly, and the
//! server calls the same ones, so both give the same reply.

use std::path::Path;

use super::{
    AddReply, AddRequest, CheckProblem, CheckReply, ExportReply, ExportRequest, FilesReply,
    GcReply, GcRequest, MirrorReply, MirrorRequest, PartialEntry, PartialsReply, PinEntry,
    PinsReply, PublishReply, PublishRequest, RmReply, RmRequest, SignReply, SignRequest,
    TrustAddRequest, TrustRmReply, TrustRmRequest, TrustedKey, TrustedReply, VerifyReply,
    VerifyRequest,
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
    /// The version is not a semantic version.
    #[error("{0:?} is not a semantic version (like 1.2.3)")]
    BadVersion(String),
    /// A signature that cannot be added.
    #[error("{0}")]
    Sign(String),
    /// A chain of roots that does not parse or verify.
    #[error("the chain of roots is refused: {0}")]
    BadChain(String),
    /// A rollout schedule that does not parse.
    #[error("the rollout schedule is refused: {0}")]
    BadRollout(String),
    /// Publishing failed before anything was recorded.
    #[error(transparent)]
    Publish(#[from] crate::store::PublishError),
    /// The target is neither a root nor a signed-root token.
    #[error(transparent)]
    BadToken(ReleaseError),
    /// Trusted keys, a name or a channel were given for a bare root.
    #[error("trusted keys, a name and a channel apply to a signed-root token, not a bare root")]
    NotAToken,
    /// The release is refused by the trust and rollback policy.
    #[error(transparent)]
    Refused(#[from] crate::store::AcceptError),
    /// A peer or mirror address does not parse.
    #[error("{0}")]
    BadSource(String),
    /// The fetch failed; everything verified is kept.
    #[error(transparent)]
    Fetch(#[from] crate::node::FetchError),
    /// The signed release and its manifest disagree on the size.
    #[error(
        "release {name} {version} says {signed} bytes, but its manifest lists {listed}; the publisher signed inconsistent data"
    )]
    SizeMismatch {
        /// The release name.
        name: String,
        /// Its version.
        version: String,
        /// The size it signed.
        signed: u64,
        /// The size its manifest lists.
        listed: u64,
    },
    /// Exporting the files failed.
    #[error(transparent)]
    Export(#[from] crate::store::ExportError),
    /// A file of a root could not be written out.
    #[error(transparent)]
    Cat(#[from] crate::store::CatError),
    /// Writing a mirror failed; the files written stay, each complete.
    #[error(transparent)]
    Mirror(#[from] crate::store::MirrorError),
    /// A task of the node's stopped unexpectedly (a bug).
    #[error("internal error (a bug in swarm; please report it): {0}")]
    Internal(String),
    /// The root is not pinned.
    #[error("{0} is not pinned")]
    NotPinned(Hash),
    /// A short root or a name that no pinned root matches.
    #[error(
        "{0:?} is not a root hash (64 hex characters), and no pinned root is named so or starts with it (4 or more hex characters)"
    )]
    NoSuchRoot(String),
    /// A short root or a name that several pinned roots match.
    #[error("{given:?} matches {} pinned roots: {}; give more of the root", candidates.len(), candidates.join(", "))]
    AmbiguousRoot {
        /// What was given.
        given: String,
        /// The roots it matches, each with its pin's name.
        candidates: Vec<String>,
    },
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
            Self::BadRoot(_)
                | Self::BadKey(_)
                | Self::BadVersion(_)
                | Self::BadChain(_)
                | Self::Sign(_)
                | Self::BadToken(_)
                | Self::NotAToken
                | Self::BadSource(_)
                | Self::RelativePath(_)
        )
    }

    /// Whether the store failed, rather than refusing the request.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Store(_)
                | Self::Read(ReadError::Store(_))
                | Self::Mirror(crate::store::MirrorError::Read(ReadError::Store(_)))
                | Self::Cat(crate::store::CatError::Read(ReadError::Store(_)))
                | Self::Internal(_)
        )
    }
}

/// The shortest root prefix taken for a root.
pub const MIN_PREFIX: usize = 4;

/// A root as a user names it: its 64 hex characters; the name of a pin; a
/// prefix of at least [`MIN_PREFIX`] hex characters of a pinned root; or
/// a pinned root shortened as `PREFIX…SUFFIX` (or `PREFIX...SUFFIX`), as
/// the docs print roots. A name or prefix that several pins match is an
/// error that lists them.
///
/// ```
/// use swarm_engine::api::ops::{OpError, find_root};
/// use swarm_engine::store::{AddOptions, Store};
///
/// let store = Store::memory()?;
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("site"), b"hello")?;
/// let opts = AddOptions { name: Some("my-site".into()), ..Default::default() };
/// let root = store.add_paths(&[dir.path().join("site")], &opts)?.root;
/// let hex = root.to_hex();
/// assert_eq!(find_root(&store, &hex)?, root);
/// assert_eq!(find_root(&store, "my-site")?, root);
/// assert_eq!(find_root(&store, &hex[..6])?, root);
/// assert_eq!(find_root(&store, &format!("{}…{}", &hex[..4], &hex[60..]))?, root);
/// assert!(matches!(find_root(&store, "other-site"), Err(OpError::NoSuchRoot(_))));
/// assert!(matches!(find_root(&store, &hex[..3]), Err(OpError::NoSuchRoot(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn find_root(store: &Store, text: &str) -> Result<Hash, OpError> {
    let t = text.trim();
    let parsed = t.parse::<Hash>();
    if let Ok(h) = parsed {
        return Ok(h);
    }
    let pins = store.pins()?;
    let listed = |m: Vec<&crate::store::Pin>| -> Vec<String> {
        m.iter()
            .map(|p| format!("{} ({})", p.root, p.name))
            .collect()
    };
    let named: Vec<&crate::store::Pin> = pins.iter().filter(|p| p.name == t).collect();
    match named.len() {
        1 => return Ok(named[0].root),
        0 => {}
        _ => {
            return Err(OpError::AmbiguousRoot {
                given: t.to_owned(),
                candidates: listed(named),
            });
        }
    }
    let lower = t.to_ascii_lowercase();
    let (head, tail) = match lower.split_once('…').or_else(|| lower.split_once("...")) {
        Some((h, t)) => (h.to_owned(), t.to_owned()),
        None => (lower.clone(), String::new()),
    };
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if head.len() < MIN_PREFIX || head.len() + tail.len() >= 64 || !is_hex(&head) || !is_hex(&tail)
    {
        // Neither a root nor something short for one: say what a root is.
        return Err(match parsed {
            Err(e) if !looks_short(t) => OpError::BadRoot(e),
            _ => OpError::NoSuchRoot(t.to_owned()),
        });
    }
    let matching: Vec<&crate::store::Pin> = pins
        .iter()
        .filter(|p| {
            let hex = p.root.to_hex();
            hex.starts_with(&head) && hex.ends_with(&tail)
        })
        .collect();
    match matching.len() {
        1 => Ok(matching[0].root),
        0 => Err(OpError::NoSuchRoot(t.to_owned())),
        _ => Err(OpError::AmbiguousRoot {
            given: t.to_owned(),
            candidates: listed(matching),
        }),
    }
}

/// Whether `t` could be meant as a pin's name (names are what `add`
/// takes: no whitespace, not empty).
fn looks_short(t: &str) -> bool {
    !t.is_empty() && t.len() < 64 && !t.contains(char::is_whitespace)
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

/// A release [`publish`] signed, with the key that signed it, for putting
/// its pointer on the DHT.
#[derive(Debug)]
pub struct PublishDone {
    /// The reply, with `dht` false until the pointer is put.
    pub reply: PublishReply,
    /// The signed release.
    pub release: crate::release::SignedRelease,
    /// The key that signs its DHT pointer: the publisher's key, or for a
    /// threshold release the pointer key given.
    pub key: crate::release::SecretKey,
}

/// Add files and sign a release of them: the store's half of
/// `POST /v1/publish`. The DHT half is the caller's.
pub fn publish(store: &Store, req: &PublishRequest) -> Result<PublishDone, OpError> {
    if let Some(p) = req.paths.iter().find(|p| !p.is_absolute()) {
        return Err(OpError::RelativePath(p.display().to_string()));
    }
    let key = crate::release::SecretKey::from_text(&req.key).map_err(OpError::BadKey)?;
    let version: semver::Version = req
        .version
        .trim()
        .parse()
        .map_err(|_| OpError::BadVersion(req.version.clone()))?;
    let chain = match &req.chain {
        Some(text) => Some(
            crate::release::Chain::from_text(text).map_err(|e| OpError::BadChain(e.to_string()))?,
        ),
        None => None,
    };
    let after = match &req.after {
        Some(t) => Some(crate::release::SignedRelease::from_token(t).map_err(OpError::BadToken)?),
        None => None,
    };
    let pointer_key = match &req.pointer_key {
        Some(k) => crate::release::SecretKey::from_text(k).map_err(OpError::BadKey)?,
        None => key.clone(),
    };
    let threshold = chain
        .as_ref()
        .map_or(1, |c| usize::from(c.newest().threshold));
    let mut opts = crate::store::PublishOptions::new(req.name.clone(), version);
    opts.channel = req.channel.clone();
    opts.created = req.created;
    opts.expires = req.expires;
    opts.delta_from = req
        .delta_from
        .iter()
        .map(|t| find_root(store, t))
        .collect::<Result<_, _>>()?;
    opts.chain = chain;
    opts.seq = req.seq;
    opts.after = after;
    opts.allow_downgrade = req.allow_downgrade;
    if let Some(text) = &req.rollout {
        opts.rollout.steps =
            crate::release::rollout::parse_schedule(text).map_err(OpError::BadRollout)?;
    }
    opts.rollout.critical = req.critical;
    let published = store.publish(&key, &req.paths, &opts)?;
    let r = published.release.release();
    let reply = PublishReply {
        root: r.root.to_hex(),
        token: published.release.to_token(),
        ticket: crate::ticket::Ticket::new(crate::ticket::TicketTarget::Release(Box::new(
            published.release.clone(),
        )))
        .to_string(),
        seq: r.seq,
        publisher: r.publisher.to_string(),
        name: r.name.clone(),
        channel: r.channel.clone(),
        version: r.version.to_string(),
        size: r.size,
        files: published.added.files,
        expires: r.expires,
        dht: false,
        dht_error: None,
        patches: published
            .patches
            .iter()
            .map(|p| super::PatchMade {
                path: p.path.clone(),
                from: p.from.to_hex(),
                patch: p.patch.to_hex(),
                bytes: p.size,
                file_bytes: p.file_size,
            })
            .collect(),
        signatures: published.release.signer_count(),
        threshold,
    };
    Ok(PublishDone {
        reply,
        release: published.release,
        key: pointer_key,
    })
}

/// A release [`sign`] signed, for putting its pointer on the DHT.
#[derive(Debug)]
pub struct SignDone {
    /// The reply, with `dht` false until the pointer is put.
    pub reply: SignReply,
    /// The release with the new signature and the chain.
    pub release: crate::release::SignedRelease,
    /// The key for its DHT pointer, when the release is complete and one
    /// was given (or the signer's key is the pointer key).
    pub pointer_key: Option<crate::release::SecretKey>,
}

/// Add the request's key's signature to a threshold release and record
/// its sequence as signed here: the store's half of `POST /v1/sign`.
pub fn sign(store: &Store, req: &SignRequest) -> Result<SignDone, OpError> {
    use crate::release::{Chain, SecretKey, SignedRelease};
    let key = SecretKey::from_text(&req.key).map_err(OpError::BadKey)?;
    let mut signed = SignedRelease::from_token(&req.token).map_err(OpError::BadToken)?;
    let Some(root_version) = signed.root_version() else {
        return Err(OpError::Sign(
            "this is a single-key release (swr1…): it is signed by its publisher key alone and \
             takes no more signatures"
                .into(),
        ));
    };
    let publisher = signed.release().publisher;
    let bad_chain = |e: crate::release::RootError| OpError::BadChain(e.to_string());
    // The root it is signed under: from the chain given, the roots it
    // carries, or the chain this store knows.
    let chain = match &req.chain {
        Some(text) => Chain::from_text(text).map_err(bad_chain)?,
        None => match (
            signed.carried_chain(),
            store.roots()?.into_iter().find(|(k, _)| *k == publisher),
        ) {
            (Some(c), _) => c,
            (None, Some((_, mut known))) => {
                known.extend(signed.chain()).map_err(bad_chain)?;
                known
            }
            (None, None) => {
                return Err(OpError::Sign(format!(
                    "the token carries no roots and this store knows no chain for {publisher}: \
                     pass the publisher's chain file with --root"
                )));
            }
        },
    };
    let newest = chain.newest();
    if chain.pointer() != publisher || newest.version != root_version {
        return Err(OpError::Sign(format!(
            "the release is signed under root version {root_version} of {publisher}; the chain \
             given is at version {} of {}",
            newest.version,
            chain.pointer()
        )));
    }
    signed.cosign(&key, newest).map_err(OpError::BadToken)?;
    let signers = signed.signers(newest).map_err(OpError::BadToken)?;
    let signed = signed.with_chain(&chain);
    let need = usize::from(newest.threshold);
    let complete = signers.len() >= need;
    // This machine signed this sequence: it never signs another under it.
    store.record_signed(&signed, Some(&chain))?;
    let pointer_key = match &req.pointer_key {
        Some(k) => Some(SecretKey::from_text(k).map_err(OpError::BadKey)?),
        None => (key.public() == publisher).then_some(key),
    }
    .filter(|_| complete);
    let token = signed.to_token();
    Ok(SignDone {
        reply: SignReply {
            token_length: token.len(),
            token,
            signatures: signers.len(),
            threshold: need,
            complete,
            signed_by: signers.iter().map(ToString::to_string).collect(),
            dht: false,
            dht_error: None,
        },
        release: signed,
        pointer_key,
    })
}

/// The publisher a publish request signs for: the chain's, else the key's.
pub fn publisher_of(req: &PublishRequest) -> Result<crate::release::PublicKey, OpError> {
    match &req.chain {
        Some(text) => Ok(crate::release::Chain::from_text(text)
            .map_err(|e| OpError::BadChain(e.to_string()))?
            .pointer()),
        None => Ok(crate::release::SecretKey::from_text(&req.key)
            .map_err(OpError::BadKey)?
            .public()),
    }
}

/// Why a just-published release does not go on the DHT yet: it lacks
/// signatures, so fetchers would refuse it.
pub fn not_for_dht(reply: &PublishReply) -> Option<String> {
    (reply.signatures < reply.threshold).then(|| {
        format!(
            "not put on the DHT yet: signed by {} of the {} keys it needs; the signer who \
             completes it puts it (`swarm sign TOKEN --key FILE --pointer-key FILE`)",
            reply.signatures, reply.threshold
        )
    })
}

/// The policy for a check at `now`: the store's trusted keys plus `extra`.
pub fn policy(
    store: &Store,
    extra: &[String],
    now: u64,
) -> Result<crate::release::Policy, OpError> {
    let mut p = crate::release::Policy {
        now,
        ..Default::default()
    };
    let mut chains = Vec::new();
    for k in extra {
        if let Some(f) = crate::release::parse_fingerprint(k) {
            let f = f.map_err(|e| OpError::BadChain(e.to_string()))?;
            p.pins.insert(f, "--trust".into());
        } else if k.trim().lines().count() > 1 || k.trim().starts_with(crate::release::ROOT_PREFIX)
        {
            let chain = crate::release::Chain::from_text(k)
                .map_err(|e| OpError::BadChain(e.to_string()))?;
            p.trust(chain.pointer(), "--trust");
            chains.push(chain);
        } else {
            p.trust(key(k)?, "--trust");
        }
    }
    let mut p = store.policy(p)?;
    // A chain given here adds to the one the store knows, never replaces
    // a newer one (that would roll a rotation back).
    for given in chains {
        let merged = match p.roots.get(&given.pointer()) {
            Some(known) if known.anchor() == given.anchor() => {
                let mut m = known.clone();
                let roots: Vec<_> = given.roots().cloned().collect();
                m.extend(&roots)
                    .map_err(|e| OpError::BadChain(e.to_string()))?;
                m
            }
            _ => given,
        };
        p.roots.insert(merged.pointer(), merged);
    }
    Ok(p)
}

/// What `swarm ls TARGET` lists of: the root, and peers a ticket names.
pub fn files_target(
    store: &Store,
    req: &super::FilesRequest,
) -> Result<(Hash, Vec<crate::net::PeerAddr>), OpError> {
    let mut peers = req
        .peers
        .iter()
        .map(|p| {
            p.parse::<crate::net::PeerAddr>()
                .map_err(|e| OpError::BadSource(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let t = req.target.trim();
    // A listing is not a fetch: a release's signature is checked (by
    // decoding it), its trust is not; every byte of the manifest is still
    // verified against the root.
    let root = if crate::ticket::is_ticket(t) {
        let ticket: crate::ticket::Ticket = t
            .parse()
            .map_err(|e| OpError::BadToken(ReleaseError::Ticket(Box::new(e))))?;
        peers.extend(ticket.peer_addrs());
        ticket.root()
    } else {
        match root_or_release(store, t)? {
            RootOr::Root(r) => r,
            RootOr::Release(s) => s.release().root,
        }
    };
    Ok((root, peers))
}

/// The files of `root` if its manifest is stored; `None` if it is not.
pub fn files(store: &Store, root: &Hash, fetched: bool) -> Result<Option<FilesReply>, OpError> {
    let manifest = match store.manifest(root) {
        Ok(m) => m,
        Err(ReadError::Unknown(_) | ReadError::Incomplete(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(FilesReply {
        root: root.to_hex(),
        size: manifest.total_size(),
        files: manifest
            .entries()
            .iter()
            .map(|e| super::FileRow {
                path: e.path.clone(),
                size: e.size,
                mode: format!("{:o}", e.mode),
                hash: e.hash.to_hex(),
            })
            .collect(),
        fetched,
    }))
}

/// What a target names: a root, or a signed release still to be checked.
enum RootOr {
    Root(Hash),
    Release(Box<crate::release::SignedRelease>),
}

/// A target as a root (hex, prefix, pin name, or a ticket of a bare root)
/// or a signed release (a token, or a ticket of a release).
fn root_or_release(store: &Store, target: &str) -> Result<RootOr, OpError> {
    let t = target.trim();
    if !crate::release::is_token(t) {
        return Ok(RootOr::Root(find_root(store, t)?));
    }
    match crate::release::SignedRelease::from_token(t) {
        Ok(signed) => Ok(RootOr::Release(Box::new(signed))),
        Err(crate::release::ReleaseError::RootTicket(root)) => Ok(RootOr::Root(root)),
        Err(e) => Err(OpError::BadToken(e)),
    }
}

/// What a fetch of `target` fetches: a bare root, or a token's root once
/// the policy accepts the token (which is then recorded as the newest seen
/// of its name and channel).
pub fn resolve_target(
    store: &Store,
    target: &str,
    trust: &[String],
    want: &crate::release::Want,
    now: u64,
) -> Result<(Hash, Option<crate::release::SignedRelease>), OpError> {
    let signed = match root_or_release(store, target)? {
        RootOr::Root(root) => {
            if !trust.is_empty() || *want != crate::release::Want::default() {
                return Err(OpError::NotAToken);
            }
            return Ok((root, None));
        }
        RootOr::Release(signed) => signed,
    };
    let policy = policy(store, trust, now)?;
    store.accept_release(&policy, &signed, want)?;
    Ok((signed.release().root, Some(*signed)))
}

/// A fetch's result checked against the release it was for: a signed size
/// that disagrees with the manifest is refused before anything is exported.
pub fn check_fetched_size(
    release: Option<&crate::release::SignedRelease>,
    fetched_size: u64,
) -> Result<(), OpError> {
    match release.map(|s| s.release()) {
        Some(r) if r.size != fetched_size => Err(OpError::SizeMismatch {
            name: r.name.clone(),
            version: r.version.to_string(),
            signed: r.size,
            listed: fetched_size,
        }),
        _ => Ok(()),
    }
}

/// Every pin: `GET /v1/pins`.
pub fn pins(store: &Store) -> Result<PinsReply, OpError> {
    let pins = store.pins()?.into_iter().map(pin_entry).collect();
    Ok(PinsReply { pins })
}

/// A pin as the API shows it.
pub fn pin_entry(p: crate::store::Pin) -> PinEntry {
    PinEntry {
        root: p.root.to_hex(),
        name: p.name,
        size: p.size,
        files: p.files,
        created: p.created,
    }
}

/// Write a root's files out: `POST /v1/export`. `progress`, if any, sees
/// the bytes written.
pub fn export(
    store: &Store,
    req: &ExportRequest,
    progress: Option<std::sync::Arc<dyn Fn(Progress) + Send + Sync>>,
) -> Result<ExportReply, OpError> {
    let r = find_root(store, &req.root)?;
    if !req.output.is_absolute() {
        return Err(OpError::RelativePath(req.output.display().to_string()));
    }
    store.check_export_target(&req.output, req.force)?;
    let opts = crate::store::ExportOptions {
        force: req.force,
        progress,
        release: false,
        delete: req.delete,
        paths: Default::default(),
    };
    let done = store.export(&r, &req.output, &opts)?;
    Ok(ExportReply {
        root: r.to_hex(),
        target: done.target,
        files: done.files,
        bytes: done.bytes,
        extra: done.extra,
        deleted: done.deleted,
    })
}

/// Unpin a root: `POST /v1/rm`. Its blobs stay until a gc.
pub fn rm(store: &Store, req: &RmRequest) -> Result<RmReply, OpError> {
    let r = find_root(store, &req.root)?;
    if !store.unpin(&r)? {
        return Err(OpError::NotPinned(r));
    }
    Ok(RmReply {
        root: r.to_hex(),
        removed: true,
    })
}

/// The policy's verdict on a token: `POST /v1/verify`. A token that does
/// not decode, or whose signature does not verify, is an error; a policy
/// refusal is a verdict, worded by `describe`.
pub fn verify(
    store: &Store,
    req: &VerifyRequest,
    now: u64,
    describe: &dyn Fn(&(dyn std::error::Error + 'static)) -> String,
) -> Result<VerifyReply, OpError> {
    let signed =
        crate::release::SignedRelease::from_token(&req.token).map_err(OpError::BadToken)?;
    let policy = policy(store, &req.trust, now)?;
    let verdict = store.check_release(&policy, &signed, &crate::release::Want::default());
    Ok(VerifyReply {
        trusted_as: policy.trusted.get(&signed.release().publisher).cloned(),
        policy_error: match verdict {
            Ok(()) => None,
            Err(crate::store::AcceptError::Policy(e)) => Some(describe(&e)),
            Err(e) => return Err(e.into()),
        },
    })
}

/// Write a root, or a signed release of one, as a mirror's static layout:
/// `POST /v1/mirror`. A token is checked against the policy at `now`
/// first, as `verify` checks it: a mirror carries only releases this
/// store would accept. `progress`, if any, sees the bytes written.
pub fn mirror(
    store: &Store,
    req: &MirrorRequest,
    now: u64,
    progress: Option<std::sync::Arc<dyn Fn(Progress) + Send + Sync>>,
) -> Result<MirrorReply, OpError> {
    if !req.dir.is_absolute() {
        return Err(OpError::RelativePath(req.dir.display().to_string()));
    }
    let (root, release) = match root_or_release(store, &req.target)? {
        RootOr::Release(signed) => {
            let policy = policy(store, &req.trust, now)?;
            store.check_release(&policy, &signed, &crate::release::Want::default())?;
            (signed.release().root, Some(*signed))
        }
        RootOr::Root(root) => {
            if !req.trust.is_empty() {
                return Err(OpError::NotAToken);
            }
            (root, None)
        }
    };
    let opts = crate::store::MirrorOptions { release, progress };
    let done = store.write_mirror(&root, &req.dir, &opts)?;
    Ok(MirrorReply {
        root: done.root.to_hex(),
        dir: done.dir,
        files: done.files,
        bytes: done.bytes,
        written: done.written,
        written_bytes: done.written_bytes,
        replaced: done.replaced,
        latest: done.latest,
        newer_kept: done.newer_kept,
    })
}

/// Delete what no pin needs: `POST /v1/gc`. Safe beside running fetches:
/// blobs being written are kept.
pub fn gc(store: &Store, req: &GcRequest) -> Result<GcReply, OpError> {
    let keep = match (req.partial, req.keep_partial_secs) {
        (true, _) => None,
        (false, Some(s)) => Some(std::time::Duration::from_secs(s)),
        (false, None) => Some(crate::store::GcOptions::KEEP_PARTIAL_FOR),
    };
    let stats = store.gc_with(&crate::store::GcOptions {
        keep_partial_for: keep,
    })?;
    Ok(GcReply {
        blobs: stats.blobs,
        bytes: stats.bytes,
        kept_partials: stats.kept_partials,
        kept_partial_bytes: stats.kept_partial_bytes,
    })
}

/// Every blob stored incompletely: `GET /v1/partials`.
pub fn partials(store: &Store) -> Result<PartialsReply, OpError> {
    let now = std::time::SystemTime::now();
    let partials = store
        .partials()?
        .into_iter()
        .map(|p| PartialEntry {
            hash: p.hash.to_hex(),
            size: p.size,
            present: p.present,
            disk_bytes: p.disk_bytes,
            idle_secs: p
                .modified
                .map(|m| now.duration_since(m).unwrap_or_default().as_secs()),
            writing: p.writing,
            referenced: p.referenced,
        })
        .collect();
    Ok(PartialsReply { partials })
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
    let roots = store.roots()?;
    let mut trusted: Vec<TrustedKey> = store
        .trusted()?
        .into_iter()
        .map(|(k, name)| {
            let newest = roots.iter().find(|(p, _)| *p == k).map(|(_, c)| c.newest());
            TrustedKey {
                public_key: k.to_string(),
                name,
                root_version: newest.map(|n| n.version),
                threshold: newest.map(|n| format!("{} of {}", n.threshold, n.keys.len())),
            }
        })
        .collect();
    trusted.extend(
        store
            .pins_trusted()?
            .into_iter()
            .map(|(f, name)| TrustedKey {
                public_key: crate::release::fingerprint_text(&f),
                name,
                root_version: None,
                threshold: None,
            }),
    );
    Ok(TrustedReply { trusted })
}

/// Trust a publisher: `POST /v1/trust/add`. `public_key` is a key
/// (`swpk1…`), a first root's fingerprint (`swrf1…`), a root (`swrt1…`) or
/// a chain file's text (`wire-spec/release.md` §8.3).
pub fn trust_add(store: &Store, req: &TrustAddRequest) -> Result<TrustedKey, OpError> {
    let name = req.name.clone().unwrap_or_default();
    let text = req.public_key.trim();
    if let Some(f) = crate::release::parse_fingerprint(text) {
        let f = f.map_err(|e| OpError::BadChain(e.to_string()))?;
        store.trust_fingerprint(&f, &name)?;
        return Ok(TrustedKey {
            public_key: crate::release::fingerprint_text(&f),
            name,
            root_version: None,
            threshold: None,
        });
    }
    let is_chain = text.lines().count() > 1
        || text
            .get(..crate::release::ROOT_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(crate::release::ROOT_PREFIX));
    if is_chain {
        let chain =
            crate::release::Chain::from_text(text).map_err(|e| OpError::BadChain(e.to_string()))?;
        store.trust_chain(&chain, &name).map_err(|e| match e {
            crate::store::TrustError::Store(s) => OpError::Store(s),
            crate::store::TrustError::Root(r) => OpError::BadChain(r.to_string()),
        })?;
        let n = chain.newest();
        return Ok(TrustedKey {
            public_key: chain.pointer().to_string(),
            name,
            root_version: Some(n.version),
            threshold: Some(format!("{} of {}", n.threshold, n.keys.len())),
        });
    }
    let k = key(&req.public_key)?;
    store.trust(&k, &name)?;
    Ok(TrustedKey {
        public_key: k.to_string(),
        name,
        root_version: None,
        threshold: None,
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
