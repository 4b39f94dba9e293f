//! The node's local control API: HTTP/JSON on a Unix socket in the store
//! directory, so that an operator (or the `swarm` CLI) can add, list,
//! remove, collect, check and trust while a node keeps serving.
//!
//! Every route, field and error is written down in `docs/api.md`. The
//! replies are the same JSON objects that the CLI's `--json` prints.
//!
//! ```
//! use swarm_engine::api::{self, AddRequest, Client};
//! use swarm_engine::node::Node;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = swarm_engine::store::Store::open(dir.path().join("store"))?;
//! let node = Node::builder().store(store).listen(([127, 0, 0, 1], 0).into()).no_dht().spawn().await?;
//! let socket = api::socket_path(&dir.path().join("store"));
//! let _server = api::serve(node, api::ApiConfig::new(&socket)).await?;
//!
//! // Another program (here the same one) talks to the running node.
//! std::fs::write(dir.path().join("hello.txt"), b"hello swarm")?;
//! let client = Client::new(&socket);
//! let added = client.add(&AddRequest { paths: vec![dir.path().join("hello.txt")], name: None }).await?;
//! assert_eq!(client.pins().await?.pins[0].root, added.root);
//! # Ok(())
//! # }
//! ```

mod client;
mod fetch;
pub mod ops;
mod server;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::client::{Client, ClientError};
pub use self::fetch::list_files;
pub use self::ops::OpError;
pub use self::server::{
    ApiConfig, ApiServer, Describe, MIN_TOKEN_LEN, Reload, SERVED_LOG_EVERY, ServeError, TcpApi,
    serve,
};

/// The socket's file name inside the store directory.
pub const SOCKET_NAME: &str = "api.sock";

/// The most bytes a request body may have.
pub const MAX_BODY: usize = 1 << 20;

/// Where a node serving the store at `store_dir` listens.
pub fn socket_path(store_dir: &Path) -> PathBuf {
    store_dir.join(SOCKET_NAME)
}

/// `POST /v1/add`: add files or directories, as the node's user sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// Absolute paths on the node's machine.
    pub paths: Vec<PathBuf>,
    /// The pin's name; by default the first path's file name.
    #[serde(default)]
    pub name: Option<String>,
}

/// What an add stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddReply {
    /// The root, in hex.
    pub root: String,
    /// Total bytes of the files.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// Bytes that were new to the store.
    pub new_bytes: u64,
}

/// One pinned root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinEntry {
    /// The root, in hex.
    pub root: String,
    /// Its name.
    pub name: String,
    /// Total bytes of its files.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// Seconds since the Unix epoch when it was pinned.
    pub created: u64,
}

/// `GET /v1/pins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinsReply {
    /// Every pin, in root order.
    pub pins: Vec<PinEntry>,
}

/// `POST /v1/export`: write a root's files out, verifying every byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The root, in hex.
    pub root: String,
    /// Where to, an absolute path on the node's machine.
    pub output: PathBuf,
    /// Replace what is there.
    #[serde(default)]
    pub force: bool,
    /// Remove what the root does not list from the directories it writes.
    #[serde(default)]
    pub delete: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportReply {
    /// The root, in hex.
    pub root: String,
    /// The file or directory written.
    pub target: PathBuf,
    /// Number of files.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// What the directories written hold that the root does not list
    /// (relative to `target`), removed if `deleted`.
    #[serde(default)]
    pub extra: Vec<PathBuf>,
    /// Whether `extra` was removed (`delete` in the request).
    #[serde(default)]
    pub deleted: bool,
}

/// `POST /v1/mirror`: write a root, or a signed release of one, as the
/// static layout of `wire-spec/mirror.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorRequest {
    /// A root in hex, or a signed-root token (checked against the trust
    /// and rollback policy first).
    pub target: String,
    /// The mirror's directory, an absolute path on the node's machine.
    pub dir: PathBuf,
    /// Publisher keys to trust for a token, besides the store's.
    #[serde(default)]
    pub trust: Vec<String>,
}

/// What a mirror wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorReply {
    /// The root, in hex.
    pub root: String,
    /// The mirror's directory.
    pub dir: PathBuf,
    /// Files of the layout this root (and release) consists of, the index
    /// included.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files written this time: missing before, or replaced.
    pub written: u64,
    /// Bytes of those.
    pub written_bytes: u64,
    /// Of the files written, how many replaced one that was wrong.
    pub replaced: u64,
    /// The release token's path in `dir`, if a release was given.
    pub latest: Option<String>,
    /// The mirror carried a newer release (this sequence number) of the
    /// same publisher, name and channel, which was left in place.
    pub newer_kept: Option<u64>,
}

/// `POST /v1/rm`: unpin a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmRequest {
    /// The root, in hex.
    pub root: String,
}

/// `POST /v1/verify`: what the node's trust and rollback policy says of a
/// signed-root token (the signature is checked first). Nothing is
/// recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The token, `swr1…`.
    pub token: String,
    /// Publisher keys to trust for this check, besides the store's.
    #[serde(default)]
    pub trust: Vec<String>,
}

/// The policy's verdict on a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReply {
    /// The label its publisher is trusted under; `None` if not trusted.
    pub trusted_as: Option<String>,
    /// Why the policy refuses it; `None` if it accepts it.
    pub policy_error: Option<String>,
}

/// `POST /v1/seed`: pin a root that is stored completely, and announce it
/// on the DHT now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRequest {
    /// The root, in hex.
    pub root: String,
    /// The name to pin it under; the root's first 12 hex digits if none.
    #[serde(default)]
    pub name: Option<String>,
}

/// What a seed did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedReply {
    /// The root, in hex.
    pub root: String,
    /// The name it is pinned under.
    pub name: String,
    /// Whether it was announced on the DHT (false without one).
    pub announced: bool,
}

/// What an rm did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmReply {
    /// The root, in hex.
    pub root: String,
    /// Always true: a root that is not pinned is an error.
    pub removed: bool,
}

/// `POST /v1/gc`: what a collection freed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReply {
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes freed on disk.
    pub bytes: u64,
    /// Partial blobs (interrupted downloads) kept because they are recent.
    #[serde(default)]
    pub kept_partials: u64,
    /// The bytes those take on disk.
    #[serde(default)]
    pub kept_partial_bytes: u64,
}

/// `POST /v1/gc`: what to keep. An empty body is the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Collect partial blobs too, however recent.
    #[serde(default)]
    pub partial: bool,
    /// Keep partial blobs written to within this many seconds; default a
    /// week. Ignored with `partial`.
    #[serde(default)]
    pub keep_partial_secs: Option<u64>,
}

/// `POST /v1/cat`: one file of a stored root, streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatRequest {
    /// The root: hex, a prefix, or a pin's name.
    pub root: String,
    /// The file's path in the root; none for a root of one file.
    #[serde(default)]
    pub path: Option<String>,
}

/// `POST /v1/files`: the files of a root or release, its manifest fetched
/// if it is not stored (from `peers`, a ticket's peers, and the node's DHT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesRequest {
    /// A root (hex, a prefix, a pin's name), a token or a ticket.
    pub target: String,
    /// Peers to fetch the manifest from, `HOST:PORT` or `NODEID@HOST:PORT`.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// A file of a root, as `swarm ls TARGET` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRow {
    /// Its path in the root.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Permission bits, as octal text (`"644"`).
    pub mode: String,
    /// Its BLAKE3 hash, in hex.
    pub hash: String,
}

/// `POST /v1/files`'s reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesReply {
    /// The root, in hex.
    pub root: String,
    /// Bytes of all the files.
    pub size: u64,
    /// The files, by path.
    pub files: Vec<FileRow>,
    /// Whether the manifest was fetched for this (it was not stored).
    pub fetched: bool,
}

/// The header that carries the size of the file `POST /v1/cat` streams.
pub const SIZE_HEADER: &str = "x-swarm-size";

/// `GET /v1/partials`: every blob stored incompletely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialsReply {
    /// Largest first.
    pub partials: Vec<PartialEntry>,
}

/// One partial blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialEntry {
    /// The blob, in hex.
    pub hash: String,
    /// Its full size.
    pub size: u64,
    /// Bytes verified and stored.
    pub present: u64,
    /// Bytes its files take on disk, if known.
    pub disk_bytes: Option<u64>,
    /// Seconds since its data was last written, if known.
    pub idle_secs: Option<u64>,
    /// Whether a download has it open now.
    pub writing: bool,
    /// Whether a pin needs it.
    pub referenced: bool,
}

/// One problem a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckProblem {
    /// The blob or root, in hex.
    pub hash: String,
    /// What is wrong.
    pub problem: String,
}

/// `POST /v1/check`: every stored blob re-verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReply {
    /// True when nothing is wrong.
    pub ok: bool,
    /// Blobs re-verified.
    pub blobs: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Everything wrong.
    pub problems: Vec<CheckProblem>,
}

/// `POST /v1/trust/add`: trust a publisher key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustAddRequest {
    /// The key, `swpk1…`.
    pub public_key: String,
    /// A label for it.
    #[serde(default)]
    pub name: Option<String>,
}

/// A trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    /// The key, `swpk1…` (for a pinned fingerprint, the `swrf1…` text).
    pub public_key: String,
    /// Its label (may be empty).
    pub name: String,
    /// For a publisher with a chain of roots: its newest root version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_version: Option<u64>,
    /// ... and that root's threshold and key count, as `T of N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
}

/// `POST /v1/trust/rm`: stop trusting a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRmRequest {
    /// The key, `swpk1…`.
    pub public_key: String,
}

/// What a trust rm did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRmReply {
    /// The key.
    pub public_key: String,
    /// Always true: a key that is not trusted is an error.
    pub removed: bool,
}

/// `GET /v1/trust`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedReply {
    /// Every trusted key.
    pub trusted: Vec<TrustedKey>,
}

/// `POST /v1/publish`: add files and sign a release of them.
///
/// The secret key travels in the request (the socket is owner-only) so
/// that the node need not be able to read the publisher's key file; it is
/// never logged, stored or sent back. `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Absolute paths on the node's machine.
    pub paths: Vec<PathBuf>,
    /// The publisher's secret key, as a key file holds it (`swsk1…`).
    pub key: String,
    /// The release name.
    pub name: String,
    /// Its semantic version.
    pub version: String,
    /// Its channel.
    pub channel: String,
    /// When it was made, Unix seconds.
    pub created: u64,
    /// When it expires, Unix seconds.
    #[serde(default)]
    pub expires: Option<u64>,
    /// Earlier releases to make patches from (roots, prefixes or pin
    /// names of releases stored complete).
    #[serde(default)]
    pub delta_from: Vec<String>,
    /// The publisher's chain of roots (chain file text, `wire-spec/
    /// release.md` §8.3): sign a threshold release under its newest root.
    #[serde(default)]
    pub chain: Option<String>,
    /// The key that signs the DHT pointer of a threshold publisher
    /// (`swsk1…`), when it is not `key`.
    #[serde(default)]
    pub pointer_key: Option<String>,
    /// The sequence to use (refused unless past the newest known).
    #[serde(default)]
    pub seq: Option<u64>,
    /// The newest release of this name and channel known from elsewhere
    /// (a token), e.g. read from the DHT; the node looks it up on its DHT
    /// itself when this is empty.
    #[serde(default)]
    pub after: Option<String>,
    /// Publish a version not above the newest published.
    #[serde(default)]
    pub allow_downgrade: bool,
    /// A staged rollout, `SHARE@AFTER,…` (`10%@0,100%@1d`;
    /// `wire-spec/release.md` §2.1).
    #[serde(default)]
    pub rollout: Option<String>,
    /// Mark it critical: everyone at once, no verification delay.
    #[serde(default)]
    pub critical: bool,
}

impl std::fmt::Debug for PublishRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishRequest")
            .field("paths", &self.paths)
            .field("key", &"(secret)")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("channel", &self.channel)
            .field("created", &self.created)
            .field("expires", &self.expires)
            .field("chain", &self.chain.is_some())
            .field(
                "pointer_key",
                &self.pointer_key.as_ref().map(|_| "(secret)"),
            )
            .field("seq", &self.seq)
            .field("allow_downgrade", &self.allow_downgrade)
            .finish()
    }
}

/// `POST /v1/sign`: add a signature to a threshold release.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// The release token (`swr2…`) or ticket.
    pub token: String,
    /// The signer's secret key (`swsk1…`).
    pub key: String,
    /// The publisher's chain file text; else the roots the token carries,
    /// else the chain the store knows.
    #[serde(default)]
    pub chain: Option<String>,
    /// The pointer key (`swsk1…`): with it, a complete release goes on the
    /// node's DHT.
    #[serde(default)]
    pub pointer_key: Option<String>,
}

impl std::fmt::Debug for SignRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignRequest")
            .field("token", &self.token)
            .field("key", &"(secret)")
            .field("chain", &self.chain.is_some())
            .field(
                "pointer_key",
                &self.pointer_key.as_ref().map(|_| "(secret)"),
            )
            .finish()
    }
}

/// What `POST /v1/sign` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignReply {
    /// The token with the new signature.
    pub token: String,
    /// Its length in characters.
    pub token_length: usize,
    /// Valid signatures it carries.
    pub signatures: usize,
    /// Signatures it needs.
    pub threshold: usize,
    /// Whether it has enough.
    pub complete: bool,
    /// The keys that signed.
    pub signed_by: Vec<String>,
    /// Whether its pointer was put on the DHT.
    pub dht: bool,
    /// Why not, when it was complete and a DHT was there.
    pub dht_error: Option<String>,
}

/// What a publish made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishReply {
    /// The root, in hex.
    pub root: String,
    /// The signed-root token (`swr1…`).
    pub token: String,
    /// The same release as a ticket (`swt1…`, `wire-spec/ticket.md`): a
    /// checksum, so a typo is told from an alteration, and the addresses of
    /// the node that published it, when one runs on the store. What to
    /// hand out.
    #[serde(default)]
    pub ticket: String,
    /// Its sequence number for (publisher, name, channel).
    pub seq: u64,
    /// The publisher's public key.
    pub publisher: String,
    /// The release name.
    pub name: String,
    /// Its channel.
    pub channel: String,
    /// Its version.
    pub version: String,
    /// Total bytes of its files.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// When it expires, Unix seconds.
    pub expires: Option<u64>,
    /// Whether its pointer was put on the DHT.
    pub dht: bool,
    /// Why it was not, when a DHT was there to put it on.
    pub dht_error: Option<String>,
    /// The patches made from earlier releases (`delta_from`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PatchMade>,
    /// Signatures the release carries (1 for a single-key release).
    #[serde(default = "one")]
    pub signatures: usize,
    /// Signatures it needs: the root's threshold (1 for a single key).
    #[serde(default = "one")]
    pub threshold: usize,
}

fn one() -> usize {
    1
}

/// A patch made for a published release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchMade {
    /// The file it makes.
    pub path: String,
    /// The root of the release it patches from, in hex.
    pub from: String,
    /// The patch blob's hash, in hex.
    pub patch: String,
    /// Bytes of the patch.
    pub bytes: u64,
    /// Bytes of the file it makes.
    pub file_bytes: u64,
}

/// `GET /v1/status`: what the node is and does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The node id.
    pub node_id: String,
    /// The QUIC address it listens on.
    pub addr: String,
    /// The addresses other machines may reach it at, best first
    /// ([`crate::node::Node::reachable_addrs`]): what a ticket carries.
    #[serde(default)]
    pub reachable: Vec<String>,
    /// This build's version.
    pub version: String,
    /// Seconds since the API started with the node.
    pub uptime_secs: u64,
    /// Every pin the node serves, with what it has served.
    pub pins: Vec<StatusPin>,
    /// Every fetch the node runs, oldest first: through the API, for a
    /// seed, or an embedder's.
    #[serde(default)]
    pub fetches: Vec<FetchStatus>,
    /// What the endpoint has done since it started.
    pub serving: ServingStatus,
    /// Bytes up and down since the node started.
    pub totals: Totals,
    /// The limits it runs under.
    pub limits: LimitsStatus,
    /// The releases it follows (its config's `seed`), in order.
    #[serde(default)]
    pub seeds: Vec<SeedEntry>,
    /// The DHT, or `None` when the node runs without it.
    pub dht: Option<DhtStatus>,
}

/// A pin in a status: the pin, and what its files have been served since
/// the node started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPin {
    /// The pin.
    #[serde(flatten)]
    pub pin: PinEntry,
    /// Bytes of its blobs sent to peers.
    pub bytes_up: u64,
    /// Distinct peers sent any of it.
    pub peers: u64,
}

/// A followed release: what it resolved to and whether it is served, or
/// why not and when it is tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedEntry {
    /// The entry as configured: a token or `PUBKEY/NAME[@CHANNEL]`.
    pub entry: String,
    /// The root it resolved to last, in hex.
    pub root: Option<String>,
    /// Whether that root is stored and served.
    pub serving: bool,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Failures in a row.
    pub failures: u32,
    /// Seconds until it is looked at again; `null` while it is fetched.
    pub next_attempt_secs: Option<u64>,
    /// The fetch running for it now, if one is; it is in
    /// [`StatusReply::fetches`] too, labelled with the entry.
    #[serde(default)]
    pub fetching: Option<FetchStatus>,
}

/// `POST /v1/reload`: what reloading the config did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// What changed, in words.
    pub message: String,
}

/// Bytes moved since the node started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Bytes of verified data sent to peers.
    pub bytes_up: u64,
    /// Verified new bytes stored by fetches, from peers and mirrors.
    pub bytes_down: u64,
}

/// The node's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsStatus {
    /// Upload cap in bytes per second; `None` for none.
    pub upload_limit: Option<u64>,
    /// Download cap in bytes per second; `None` for none.
    pub download_limit: Option<u64>,
    /// Most peer connections served at once.
    pub max_connections: u64,
    /// Each connection's data in flight, in bytes, for connections made
    /// from now on.
    #[serde(default)]
    pub window: u64,
}

/// A fetch running on the node: through the API, for a seed, or started
/// by the program that embeds the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchStatus {
    /// Its number, for `POST /v1/fetch/pause`, `resume` and `cancel`.
    pub id: u64,
    /// Whether it is paused.
    pub paused: bool,
    /// The root, in hex.
    pub root: String,
    /// What it is for: the seed entry it fetches, or `null` (a fetch
    /// through the API).
    #[serde(default)]
    pub label: Option<String>,
    /// Seconds since it started.
    pub seconds: u64,
    /// Bytes of all its files, once the manifest is known.
    pub total: u64,
    /// Bytes stored so far.
    pub have: u64,
    /// Bytes per second from all its sources, lately.
    pub rate: u64,
    /// Peers it draws from.
    pub peers: u64,
    /// Seconds left at that rate, when there is one.
    pub eta_secs: Option<u64>,
}

/// The endpoint's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingStatus {
    /// Connections open now.
    pub connections: u64,
    /// Requests being served now.
    pub requests_now: u64,
    /// Requests served since start.
    pub requests_total: u64,
    /// Bytes of verified data sent since start.
    pub bytes_sent: u64,
    /// Peers dropped for breaking the protocol.
    pub violations: u64,
}

/// The DHT's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhtStatus {
    /// Whether it joined the network.
    pub bootstrapped: bool,
    /// The UDP address its node listens on.
    pub addr: String,
    /// DHT nodes in its routing table.
    pub routing_table: u64,
    /// The last announcement of a root, if there was one.
    pub last_announce: Option<AnnounceStatus>,
}

/// The last announcement on the DHT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceStatus {
    /// The root, in hex.
    pub root: String,
    /// Seconds since it ended.
    pub secs_ago: u64,
    /// Why it failed; `None` when it succeeded.
    pub error: Option<String>,
}

/// `GET /v1/peers`: the peers connected to the node now, and each peer's
/// rate over the last minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeersReply {
    /// Peers connected now, most bytes served first.
    pub peers: Vec<PeerEntry>,
    /// Seconds between samples.
    pub every_secs: u64,
    /// Samples, oldest first, the newest ending now; at most
    /// [`RATE_SAMPLES`].
    pub history: Vec<RateSample>,
}

/// How many samples [`PeersReply::history`] keeps (ten minutes).
pub const RATE_SAMPLES: usize = 120;

/// A peer connected to the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// Its node id.
    pub id: String,
    /// The address it connected from.
    pub addr: String,
    /// Seconds connected.
    pub connected_secs: u64,
    /// Bytes sent to it on this connection.
    pub bytes_up: u64,
    /// Get requests it made on this connection.
    pub gets: u64,
}

/// Each peer's rate over one sample period, bytes per second, by node id.
/// Peers with nothing moving are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSample {
    /// Seconds before the reply that the period ended.
    pub secs_ago: u64,
    /// Sent to each peer.
    pub up: std::collections::BTreeMap<String, u64>,
    /// Received from each peer by the node's fetches.
    pub down: std::collections::BTreeMap<String, u64>,
}

/// `POST /v1/fetch/pause`, `/v1/fetch/resume`, `/v1/fetch/cancel`: which
/// fetch (its `id` in the status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchControlRequest {
    /// The fetch's number.
    pub id: u64,
}

/// The reply to a fetch control: the fetch as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchControlReply {
    /// The fetch's number.
    pub id: u64,
    /// Whether it is paused now.
    pub paused: bool,
    /// Whether it was cancelled.
    pub cancelled: bool,
}

/// The body of every error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong and what to do, in words.
    pub error: String,
}

/// `POST /v1/fetch`: fetch a root or a signed-root token into the node's
/// store, and optionally export it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequest {
    /// A root in hex, or a signed-root token (`swr1…`), checked against
    /// the store's trusted keys plus `trust`.
    pub target: String,
    /// Keys trusted for this fetch only.
    #[serde(default)]
    pub trust: Vec<String>,
    /// The release name a token must carry.
    #[serde(default)]
    pub name: Option<String>,
    /// The channel a token must carry.
    #[serde(default)]
    pub channel: Option<String>,
    /// Peers, `HOST:PORT` or `NODEID@HOST:PORT`; the node's DHT adds more.
    #[serde(default)]
    pub peers: Vec<String>,
    /// HTTP(S) mirror URLs.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Extra CA certificates (PEM text) for HTTPS mirrors.
    #[serde(default)]
    pub mirror_ca: Vec<String>,
    /// Where to export the files, an absolute path; none keeps them only
    /// in the store.
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// Replace what is at `output`.
    #[serde(default)]
    pub force: bool,
    /// Pin the root and keep a copy; otherwise the export takes the files
    /// out of the store.
    #[serde(default)]
    pub keep: bool,
    /// With `output`: remove what the root does not list from the
    /// directories it writes.
    #[serde(default)]
    pub delete: bool,
    /// Most peers at once.
    #[serde(default)]
    pub max_peers: Option<u64>,
    /// Only the files these glob patterns select
    /// ([`crate::content::Selection`]); none: all. Needs `output`, and
    /// neither `keep` nor `delete`.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// One line of a fetch's reply stream (`application/x-ndjson`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FetchEvent {
    /// The manifest is known: the bytes in all, and already stored.
    Manifest {
        /// Bytes of all the files.
        total: u64,
        /// Bytes already stored before this fetch.
        present: u64,
    },
    /// Verified bytes stored since the last event.
    Received {
        /// How many.
        bytes: u64,
    },
    /// Each peer's rate, twice a second.
    Peers {
        /// The peers.
        peers: Vec<PeerRate>,
    },
    /// Each mirror's rate, twice a second.
    Mirrors {
        /// The mirrors.
        mirrors: Vec<MirrorRate>,
    },
    /// The last line of a fetch that succeeded.
    Done {
        /// What it fetched.
        fetched: Box<FetchReply>,
    },
    /// The last line of a fetch that failed; everything verified is kept.
    Error {
        /// Why, in words.
        error: String,
    },
}

impl FetchEvent {
    /// The event for a fetch's progress report, if it has one.
    pub fn from_progress(p: &crate::node::FetchProgress) -> Option<Self> {
        use crate::node::FetchProgress as P;
        Some(match p {
            P::Manifest { total, present } => Self::Manifest {
                total: *total,
                present: *present,
            },
            P::Received(n) => Self::Received { bytes: *n },
            P::Peers(peers) => Self::Peers {
                peers: peers
                    .iter()
                    .map(|p| PeerRate {
                        id: p.id.to_string(),
                        addr: p.addr.to_string(),
                        rate: p.rate,
                        bytes: p.bytes,
                        in_flight: p.in_flight as u64,
                    })
                    .collect(),
            },
            P::Mirrors(mirrors) => Self::Mirrors {
                mirrors: mirrors
                    .iter()
                    .map(|m| MirrorRate {
                        url: m.url.to_string(),
                        rate: m.rate,
                        bytes: m.bytes,
                        in_flight: m.in_flight as u64,
                    })
                    .collect(),
            },
            _ => return None,
        })
    }
}

/// One peer of a running fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRate {
    /// Its node id.
    pub id: String,
    /// Its address.
    pub addr: String,
    /// Bytes per second over the last seconds.
    pub rate: u64,
    /// Verified bytes from it so far.
    pub bytes: u64,
    /// Bytes asked of it and not yet received.
    pub in_flight: u64,
}

/// One mirror of a running fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRate {
    /// Its URL.
    pub url: String,
    /// Bytes per second over the last seconds.
    pub rate: u64,
    /// Verified bytes from it so far.
    pub bytes: u64,
    /// Bytes asked of it and not yet received.
    pub in_flight: u64,
}

/// Bytes from one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceBytes {
    /// Its node id.
    pub id: String,
    /// Its address.
    pub addr: String,
    /// Verified bytes from it.
    pub bytes: u64,
}

/// Bytes from one mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorBytes {
    /// Its URL.
    pub url: String,
    /// Verified bytes from it.
    pub bytes: u64,
}

/// When a fetch reached its milestones, seconds from its start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// The first peer found on the DHT.
    pub dht_peer: Option<f64>,
    /// The first source connected.
    pub source: Option<f64>,
    /// The manifest held.
    pub manifest: Option<f64>,
    /// The first verified data stored.
    pub first_data: Option<f64>,
}

/// Files a fetch made by patches ([`FetchReply::patched`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchedFiles {
    /// Number of files.
    pub files: u64,
    /// Their bytes.
    pub file_bytes: u64,
    /// Bytes of the patches that made them.
    pub patch_bytes: u64,
}

/// The part of a root a fetch took ([`FetchRequest::paths`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chosen {
    /// Number of files.
    pub files: u64,
    /// Their bytes.
    pub size: u64,
}

/// What a fetch did: the object `swarm fetch --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchReply {
    /// The root, in hex.
    pub root: String,
    /// Peers that failed, in words.
    pub failed_peers: Vec<String>,
    /// Number of files.
    pub files: u64,
    /// Bytes of all the files.
    pub size: u64,
    /// Bytes received in this fetch.
    pub received: u64,
    /// Files fetched and their bytes, when only some were chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Chosen>,
    /// Files made here by patches from earlier versions (issue 18): how
    /// many, their bytes, and the patches' bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patched: Option<PatchedFiles>,
    /// Seconds the fetch took.
    pub seconds: f64,
    /// Node ids of the peers that sent data.
    pub peers: Vec<String>,
    /// Bytes from each peer.
    pub sources: Vec<SourceBytes>,
    /// Bytes from each mirror.
    pub mirrors: Vec<MirrorBytes>,
    /// Mirrors that failed, in words.
    pub failed_mirrors: Vec<String>,
    /// Where the files were exported, if they were.
    pub target: Option<PathBuf>,
    /// Its milestones.
    pub timings: Timings,
    /// Where the fetcher serves it afterwards (`swarm fetch --seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<String>,
    /// What the directories exported to hold that the root does not list
    /// (relative to `target`), removed if `deleted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<PathBuf>,
    /// Whether `extra` was removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The signed release fetched, when the target was a token or a
    /// ticket carrying one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<FetchedRelease>,
}

/// Which release a fetch got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedRelease {
    /// The release name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its channel.
    pub channel: String,
    /// Its sequence number.
    pub seq: u64,
    /// The publisher's key (swpk1…).
    pub publisher: String,
}

impl FetchedRelease {
    /// What `signed` says.
    pub fn of(signed: &crate::release::SignedRelease) -> Self {
        let r = signed.release();
        Self {
            name: r.name.clone(),
            version: r.version.to_string(),
            channel: r.channel.clone(),
            seq: r.seq,
            publisher: r.publisher.to_string(),
        }
    }
}

impl FetchReply {
    /// The reply for `fetched`, which took `seconds` and was exported to
    /// `target`.
    pub fn new(fetched: &crate::node::Fetched, seconds: f64, target: Option<PathBuf>) -> Self {
        let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
        let t = &fetched.timings;
        Self {
            root: fetched.root.to_hex(),
            failed_peers: fetched.failures.iter().map(|f| f.to_string()).collect(),
            files: fetched.files,
            size: fetched.size,
            received: fetched.received,
            patched: (fetched.patched.files > 0).then_some(PatchedFiles {
                files: fetched.patched.files,
                file_bytes: fetched.patched.file_bytes,
                patch_bytes: fetched.patched.patch_bytes,
            }),
            chosen: (fetched.chosen_files != fetched.files).then_some(Chosen {
                files: fetched.chosen_files,
                size: fetched.chosen_size,
            }),
            seconds,
            peers: fetched.peers.iter().map(|p| p.to_string()).collect(),
            sources: fetched
                .sources
                .iter()
                .map(|s| SourceBytes {
                    id: s.id.to_string(),
                    addr: s.addr.to_string(),
                    bytes: s.bytes,
                })
                .collect(),
            mirrors: fetched
                .mirrors
                .iter()
                .map(|m| MirrorBytes {
                    url: m.url.to_string(),
                    bytes: m.bytes,
                })
                .collect(),
            failed_mirrors: fetched
                .mirror_failures
                .iter()
                .map(|f| f.to_string())
                .collect(),
            target,
            timings: Timings {
                dht_peer: secs(t.dht_peer),
                source: secs(t.source),
                manifest: secs(t.manifest),
                first_data: secs(t.first_data),
            },
            serving: None,
            extra: Vec::new(),
            deleted: false,
            release: None,
        }
    }

    /// The same, naming the release it was for, if any.
    pub fn with_release(mut self, release: Option<&crate::release::SignedRelease>) -> Self {
        self.release = release.map(FetchedRelease::of);
        self
    }
}
