//! Following releases: what a seeding node does with its `seed` list.
//! Each entry (a signed-root token, or a publisher's latest release on the
//! DHT) is resolved, checked against the trust and rollback policy,
//! fetched, pinned and announced; a failure is retried with backoff, and
//! every entry is looked at again every [`Follow::every`] so that a
//! pointer's new releases are picked up.
//!
//! ```no_run
//! use std::sync::Arc;
//! use swarm_engine::node::{Follow, Node};
//!
//! # async fn f(node: Node) {
//! let follow = Follow {
//!     entries: vec!["swpk1…/app@stable".into()],
//!     ..Follow::default()
//! };
//! let following = node.follow(follow, Arc::new(|e| eprintln!("{e}")));
//! for s in following.status() {
//!     println!("{}: {:?}", s.entry, s.error);
//! }
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::{FetchOptions, Node};
use crate::content::Hash;
use crate::mirror::MirrorUrl;
use crate::net::PeerAddr;
use crate::release::{Pointer, Policy, PublicKey, SignedRelease, Want};

/// The first retry after a failure; each failure in a row doubles it, up
/// to [`Follow::every`].
pub const FIRST_RETRY: Duration = Duration::from_secs(30);

/// The first retry of a release gossip brought, when the peers that told
/// of it do not hold it yet; it doubles up to [`FIRST_RETRY`].
pub const GOSSIP_RETRY: Duration = Duration::from_millis(250);

/// What to follow, and from where.
#[derive(Debug, Clone)]
pub struct Follow {
    /// Tokens (`swr1…`) or pointers (`PUBKEY/NAME[@CHANNEL]`).
    pub entries: Vec<String>,
    /// Static peers to fetch from (the DHT adds more).
    pub peers: Vec<PeerAddr>,
    /// HTTP(S) mirrors to fetch from too.
    pub mirrors: Vec<MirrorUrl>,
    /// Publishers trusted for these entries, besides the store's.
    pub trust: Vec<PublicKey>,
    /// Most peers one fetch uses; `None` for the default.
    pub max_peers: Option<usize>,
    /// How often every entry is looked at again, and the pinned roots
    /// announced (BEP 5 announcements expire after about 30 minutes).
    pub every: Duration,
    /// Take a pointer's release only once it is this old (from its signed
    /// creation time), unless it is critical: a verification period.
    pub delay: Option<Duration>,
    /// Take only releases marked critical from pointers (security fixes).
    pub critical_only: bool,
    /// Follow pointer entries at all; off, only tokens are seeded.
    pub pointers: bool,
}

impl Default for Follow {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            peers: Vec::new(),
            mirrors: Vec::new(),
            trust: Vec::new(),
            max_peers: None,
            every: super::REANNOUNCE,
            delay: None,
            critical_only: false,
            pointers: true,
        }
    }
}

/// What happened to one entry, or to the node, as it follows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FollowEvent {
    /// The entry's release was fetched and is served now.
    Fetched {
        /// The entry.
        entry: String,
        /// The release's name and version.
        name: String,
        /// Its version.
        version: String,
        /// Its files.
        files: u64,
        /// Bytes of its files.
        size: u64,
    },
    /// The entry's release was stored already; it is served.
    Stored {
        /// The entry.
        entry: String,
    },
    /// The entry's newest release is not taken (yet): it is younger than
    /// the verification delay, or not critical when only critical ones
    /// are taken.
    Held {
        /// The entry.
        entry: String,
        /// Its version.
        version: String,
        /// Why.
        why: String,
        /// When it is looked at again.
        retry_in: Duration,
    },
    /// The entry failed; it is tried again after `retry_in`.
    Failed {
        /// The entry.
        entry: String,
        /// Why.
        error: String,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// Damaged blobs were fetched again.
    Repaired {
        /// The pinned root they belong to.
        root: Hash,
    },
    /// Announcing the pinned roots failed.
    AnnounceFailed {
        /// Why.
        error: String,
    },
}

impl std::fmt::Display for FollowEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fetched {
                entry,
                name,
                version,
                files,
                size,
            } => write!(
                f,
                "seed {entry}: fetched {name} {version} ({files} file{}, {size} bytes) and serving it",
                if *files == 1 { "" } else { "s" }
            ),
            Self::Stored { entry } => write!(f, "seed {entry}: already stored; serving it"),
            Self::Held {
                entry,
                version,
                why,
                retry_in,
            } => write!(
                f,
                "seed {entry}: release {version} held back ({why}); looked at again in {} s",
                retry_in.as_secs()
            ),
            Self::Failed {
                entry,
                error,
                retry_in,
            } => write!(
                f,
                "warning: seed {entry}: {error}; next attempt in {} s",
                retry_in.as_secs()
            ),
            Self::Repaired { root } => {
                write!(f, "repaired {root}: fetched again what had rotted on disk")
            }
            Self::AnnounceFailed { error } => {
                write!(f, "warning: announcing on the DHT failed: {error}")
            }
        }
    }
}

/// Sees each [`FollowEvent`] as it happens (the CLI prints them).
pub type OnFollow = Arc<dyn Fn(&FollowEvent) + Send + Sync>;

/// One entry's state, for a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedStatus {
    /// The entry, as configured.
    pub entry: String,
    /// The root it resolved to last, if it did.
    pub root: Option<Hash>,
    /// Whether that root is stored and served.
    pub serving: bool,
    /// Why the last attempt failed; `None` if it did not.
    pub error: Option<String>,
    /// Failures in a row.
    pub failures: u32,
    /// When it is looked at next; `None` while it is being fetched.
    pub next_attempt: Option<SystemTime>,
    /// The fetch running for it now, if one is: also in
    /// [`Node::fetches`], labelled with the entry, where it can be paused
    /// by its id.
    pub fetching: Option<super::RunningFetch>,
}

impl SeedStatus {
    fn new(entry: String) -> Self {
        Self {
            entry,
            root: None,
            serving: false,
            error: None,
            failures: 0,
            next_attempt: None,
            fetching: None,
        }
    }
}

/// The running follow loop. Dropping it stops following (what was
/// fetched stays pinned and served).
#[derive(Debug)]
pub struct Following {
    state: Arc<Mutex<HashMap<String, SeedStatus>>>,
    config: watch::Sender<Follow>,
    running: Arc<super::running::Running>,
    task: tokio::task::JoinHandle<()>,
}

/// Each of `entries`' state, with the fetch running for it if any.
fn statuses(
    entries: Vec<String>,
    state: &Mutex<HashMap<String, SeedStatus>>,
    running: &super::running::Running,
) -> Vec<SeedStatus> {
    let mut fetching: HashMap<String, super::RunningFetch> = running
        .list()
        .into_iter()
        .filter_map(|f| Some((f.label.clone()?, f)))
        .collect();
    let state = state.lock().unwrap_or_else(|e| e.into_inner());
    entries
        .into_iter()
        .map(|e| {
            let mut s = state
                .get(&e)
                .cloned()
                .unwrap_or_else(|| SeedStatus::new(e.clone()));
            s.fetching = fetching.remove(&e);
            if let Some(f) = &s.fetching {
                s.root = Some(f.root);
                s.next_attempt = None;
            }
            s
        })
        .collect()
}

impl Following {
    /// Every entry's state, in the configured order.
    pub fn status(&self) -> Vec<SeedStatus> {
        let entries = self.config.borrow().entries.clone();
        statuses(entries, &self.state, &self.running)
    }

    /// Follow `config` from now on: new entries are looked at at once,
    /// entries gone are dropped (what they fetched stays pinned), the
    /// others keep their schedule. Connections are not touched.
    pub fn reload(&self, config: Follow) {
        self.config.send_replace(config);
    }

    /// A handle that reads the same state, for an API that shows it.
    pub fn status_handle(&self) -> FollowStatus {
        FollowStatus {
            state: self.state.clone(),
            config: self.config.subscribe(),
            running: self.running.clone(),
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a [`Following`]'s state from elsewhere (cheap to clone).
#[derive(Debug, Clone)]
pub struct FollowStatus {
    state: Arc<Mutex<HashMap<String, SeedStatus>>>,
    config: watch::Receiver<Follow>,
    running: Arc<super::running::Running>,
}

impl FollowStatus {
    /// As [`Following::status`].
    pub fn status(&self) -> Vec<SeedStatus> {
        let entries = self.config.borrow().entries.clone();
        statuses(entries, &self.state, &self.running)
    }
}

impl Node {
    /// Follow `config`'s entries until the returned handle is dropped:
    /// fetch, pin and serve each, retry failures with backoff (30 s,
    /// doubling, up to `config.every`), look at every entry again each
    /// `config.every`, repair what rotted, and announce the pinned roots
    /// after each round. `on_event` sees what happens; every event is also
    /// logged (info, or warn for failures).
    pub fn follow(&self, config: Follow, on_event: OnFollow) -> Following {
        let (tx, rx) = watch::channel(config);
        let state: Arc<Mutex<HashMap<String, SeedStatus>>> = Arc::default();
        let task = tokio::spawn(run(self.clone(), rx, state.clone(), on_event));
        Following {
            state,
            config: tx,
            running: self.running.clone(),
            task,
        }
    }
}

fn emit(on_event: &OnFollow, e: FollowEvent) {
    match &e {
        FollowEvent::Failed { .. } | FollowEvent::AnnounceFailed { .. } => {
            tracing::warn!("{e}");
        }
        _ => tracing::info!("{e}"),
    }
    on_event(&e);
}

async fn run(
    node: Node,
    mut config: watch::Receiver<Follow>,
    state: Arc<Mutex<HashMap<String, SeedStatus>>>,
    on_event: OnFollow,
) {
    // When each entry is due; a new entry is due at once.
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut next_announce = Instant::now();
    // Releases gossip brought for pointer entries, not looked at yet.
    let mut gossiped: HashMap<String, SignedRelease> = HashMap::new();
    // Failures in a row of entries retried soon because gossip brought them.
    let mut quick: HashMap<String, u32> = HashMap::new();
    let mut heard = node.gossiped();
    let mut kept: Option<Kept> = None;
    let _interest = super::gossip::InterestGuard::new(node.clone(), "follow".into());
    loop {
        let follow = config.borrow_and_update().clone();
        // Gossip: tell peers what is followed here, and keep the static
        // peers connected so that releases have a way in.
        let followed = if follow.pointers {
            subjects(&follow.entries)
        } else {
            Vec::new()
        };
        node.follow_gossip("follow", followed, follow.trust.clone());
        if kept.as_ref().is_none_or(|k| k.peers != follow.peers) {
            kept = (!follow.peers.is_empty()).then(|| Kept {
                peers: follow.peers.clone(),
                task: node.keep_connected(follow.peers.clone()).abort_handle(),
            });
        }
        due.retain(|e, _| follow.entries.contains(e));
        gossiped.retain(|e, _| follow.entries.contains(e));
        quick.retain(|e, _| follow.entries.contains(e));
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|e, _| follow.entries.contains(e));
        let now = Instant::now();
        let mut worked = false;
        for entry in &follow.entries {
            if due.get(entry).is_some_and(|&at| at > now) {
                continue;
            }
            worked = true;
            let failures = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(entry)
                .map_or(0, |s| s.failures);
            let heard_of = gossiped.remove(entry);
            let (root, outcome) = once(&node, entry, &follow, heard_of.clone()).await;
            let (wait, status) = match outcome {
                Ok(event) => {
                    let wait = match &event {
                        FollowEvent::Held { retry_in, .. } => {
                            // Gossip brought it: look at the same one again.
                            if let Some(release) = heard_of.clone() {
                                gossiped.entry(entry.clone()).or_insert(release);
                            }
                            (*retry_in).min(follow.every)
                        }
                        _ => follow.every,
                    };
                    emit(&on_event, event);
                    quick.remove(entry);
                    (wait, (true, None, 0))
                }
                Err(error) => {
                    let failures = failures + 1;
                    let mut wait = backoff(failures, follow.every);
                    // A release gossip brought is usually still on its way
                    // to the peers that told of it: try again soon.
                    if let Some(release) = heard_of {
                        let n = quick.entry(entry.clone()).or_insert(0);
                        wait = wait.min(GOSSIP_RETRY.saturating_mul(1 << (*n).min(16)));
                        *n += 1;
                        gossiped.insert(entry.clone(), release);
                    }
                    emit(
                        &on_event,
                        FollowEvent::Failed {
                            entry: entry.clone(),
                            error: error.clone(),
                            retry_in: wait,
                        },
                    );
                    (wait, (false, Some(error), failures))
                }
            };
            due.insert(entry.clone(), Instant::now() + wait);
            let (serving, error, failures) = status;
            state.lock().unwrap_or_else(|e| e.into_inner()).insert(
                entry.clone(),
                SeedStatus {
                    entry: entry.clone(),
                    root,
                    serving,
                    error,
                    failures,
                    next_attempt: Some(SystemTime::now() + wait),
                    fetching: None,
                },
            );
        }
        if worked || Instant::now() >= next_announce {
            for root in node.repair().await {
                emit(&on_event, FollowEvent::Repaired { root });
            }
            if node.dht().is_some()
                && let Err(e) = node.announce().await
            {
                emit(
                    &on_event,
                    FollowEvent::AnnounceFailed {
                        error: crate::error_chain(&e),
                    },
                );
            }
            next_announce = Instant::now() + follow.every;
        }
        let wake = due
            .values()
            .copied()
            .chain([next_announce])
            .min()
            .unwrap_or(next_announce);
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            release = heard.recv() => match release {
                Ok(release) => {
                    for entry in follow.entries.iter().filter(|e| names(e, &release)) {
                        gossiped.insert(entry.clone(), release.clone());
                        due.insert(entry.clone(), Instant::now());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Some were missed: look at every pointer entry now.
                    for entry in follow.entries.iter().filter(|e| Pointer::looks_like(e)) {
                        due.insert(entry.clone(), Instant::now());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    heard = node.gossiped();
                }
            },
        }
    }
}

/// The task keeping a follow config's peers connected; it stops when this
/// is dropped (the config changed, or following stopped).
struct Kept {
    peers: Vec<PeerAddr>,
    task: tokio::task::AbortHandle,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The (publisher, name, channel) of the pointer entries.
fn subjects(entries: &[String]) -> Vec<crate::wire::Subject> {
    let mut out: Vec<_> = entries
        .iter()
        .filter(|e| Pointer::looks_like(e.trim()))
        .filter_map(|e| e.trim().parse::<Pointer>().ok())
        .map(|p| super::gossip::subject(&p.publisher, &p.name, &p.channel))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether pointer `entry` names `release`'s (publisher, name, channel).
fn names(entry: &str, release: &SignedRelease) -> bool {
    let entry = entry.trim();
    Pointer::looks_like(entry)
        && entry.parse::<Pointer>().is_ok_and(|p| {
            super::gossip::is_about(
                release,
                &super::gossip::subject(&p.publisher, &p.name, &p.channel),
            )
        })
}

/// The wait after `failures` failures in a row.
fn backoff(failures: u32, most: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    FIRST_RETRY
        .saturating_mul(1u32 << doublings)
        .min(most.max(FIRST_RETRY))
}

/// Look at one entry: the root it names, and what came of it.
async fn once(
    node: &Node,
    entry: &str,
    follow: &Follow,
    gossiped: Option<SignedRelease>,
) -> (Option<Hash>, Result<FollowEvent, String>) {
    let resolved = match gossiped {
        // Gossip brought it, checked: no DHT lookup.
        Some(signed) => {
            let r = signed.release();
            let want = Want {
                name: Some(r.name.clone()),
                channel: Some(r.channel.clone()),
            };
            Ok((signed, want))
        }
        None => resolve(node, entry, follow.pointers).await,
    };
    let (signed, want) = match resolved {
        Ok(s) => s,
        Err(e) => return (None, Err(e)),
    };
    if Pointer::looks_like(entry.trim())
        && let Some(held) = held(entry, &signed, follow)
    {
        return (None, Ok(held));
    }
    let root = signed.release().root;
    (Some(root), fetch(node, entry, &signed, &want, follow).await)
}

/// Whether a pointer's release waits, under `follow`'s delay and
/// critical-only settings.
fn held(entry: &str, signed: &SignedRelease, follow: &Follow) -> Option<FollowEvent> {
    let r = signed.release();
    let hold = |why: String, retry_in: Duration| FollowEvent::Held {
        entry: entry.to_owned(),
        version: r.version.to_string(),
        why,
        retry_in,
    };
    if r.rollout.critical {
        return None;
    }
    if follow.critical_only {
        return Some(hold(
            "not critical, and only critical releases are taken".into(),
            follow.every,
        ));
    }
    let delay = follow.delay?;
    let now = super::unix_now();
    let until = r.created.saturating_add(delay.as_secs());
    (now < until).then(|| {
        hold(
            format!(
                "younger than the verification delay; taken from {}",
                crate::update::utc(until)
            ),
            Duration::from_secs(until - now),
        )
    })
}

/// The release `entry` names: a token as it is, a pointer resolved on
/// the DHT now.
async fn resolve(
    node: &Node,
    entry: &str,
    follow_pointers: bool,
) -> Result<(SignedRelease, Want), String> {
    let entry = entry.trim();
    if !Pointer::looks_like(entry) {
        let s = SignedRelease::from_token(entry).map_err(|e| e.to_string())?;
        return Ok((s, Want::default()));
    }
    if !follow_pointers {
        return Err("auto-update is off: pointers are not followed".into());
    }
    let Pointer {
        publisher,
        name,
        channel,
    } = entry.parse::<Pointer>().map_err(|e| e.to_string())?;
    let Some(dht) = node.dht() else {
        return Err("a PUBKEY/NAME seed needs the DHT".into());
    };
    let found = dht
        .resolve_newest(&publisher, &name, &channel)
        .await
        .ok_or("no release found on the DHT yet")?;
    let want = Want {
        name: Some(name),
        channel: Some(channel),
    };
    Ok((found, want))
}

async fn fetch(
    node: &Node,
    entry: &str,
    signed: &SignedRelease,
    want: &Want,
    follow: &Follow,
) -> Result<FollowEvent, String> {
    let r = signed.release();
    let root = r.root;
    let store = node.store().clone();
    let pinned = super::blocking(move || store.pins())
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .any(|p| p.root == root);
    if pinned {
        return Ok(FollowEvent::Stored {
            entry: entry.to_owned(),
        });
    }
    let store = node.store();
    let mut policy = Policy {
        now: super::unix_now(),
        ..Default::default()
    };
    for k in &follow.trust {
        policy.trust(*k, "follow");
    }
    let policy = store.policy(policy).map_err(|e| e.to_string())?;
    store
        .accept_release(&policy, signed, want)
        .map_err(|e| e.to_string())?;
    node.gossip_accepted(signed);
    let mut opts = FetchOptions {
        peers: follow.peers.clone(),
        mirrors: follow.mirrors.clone(),
        label: Some(entry.to_owned()),
        ..Default::default()
    };
    if let Some(n) = follow.max_peers {
        opts.max_peers = n;
    }
    let got = node
        .fetch(root, opts)
        .await
        .map_err(|e| crate::error_chain(&e))?;
    Ok(FollowEvent::Fetched {
        entry: entry.to_owned(),
        name: r.name.clone(),
        version: r.version.to_string(),
        files: got.files,
        size: got.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_up_to_the_period() {
        let every = Duration::from_secs(900);
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n, every).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(backoff(1000, every), every);
        // A period under the first retry: the first retry still holds.
        assert_eq!(backoff(1, Duration::from_secs(1)), FIRST_RETRY);
    }
}
