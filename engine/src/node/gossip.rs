//! The node's side of release gossip (wire.md §3.9, §3.10): every record
//! a peer gossips for a followed (publisher, name, channel) goes through
//! the full trust and rollback policy here, and is recorded before it is
//! passed on; what is accepted reaches [`Node::gossiped`] subscribers
//! (the follow loop, updaters). Peers given to follow are kept connected,
//! so that gossip has somewhere to go.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::{Node, blocking, unix_now};
use crate::net::gossip::subject_of;
use crate::net::{Endpoint, PeerAddr};
use crate::release::gossip::Checked;
use crate::release::{Policy, PolicyError, PublicKey, SignedRelease, Want};
use crate::store::{AcceptError, Store};
use crate::wire::Subject;

/// Accepted releases buffered for a slow subscriber before it lags.
const RELEASES: usize = 64;
/// The longest wait before dialling a kept peer again.
const REDIAL_MAX: Duration = Duration::from_secs(30);

/// What one owner follows by gossip, and the keys it trusts for it.
type Interest = (Vec<Subject>, Vec<PublicKey>);

#[derive(Debug)]
pub(crate) struct NodeGossip {
    releases: broadcast::Sender<SignedRelease>,
    /// What each part of the node follows by gossip (the follow loop, an
    /// updater), with the keys it trusts besides the store's.
    interest: Mutex<std::collections::BTreeMap<String, Interest>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl NodeGossip {
    /// Start checking what `endpoint`'s peers gossip.
    pub(crate) fn start(endpoint: &Endpoint) -> Arc<Self> {
        let (releases, _) = broadcast::channel(RELEASES);
        let me = Arc::new(Self {
            releases,
            interest: Mutex::default(),
            tasks: Mutex::default(),
        });
        let task = tokio::spawn(run(endpoint.clone(), me.clone()));
        me.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task.abort_handle());
        me
    }

    pub(crate) fn stop(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

async fn run(endpoint: Endpoint, shared: Arc<NodeGossip>) {
    let mut inbox = endpoint.gossip_inbox();
    while let Some(inbound) = inbox.recv().await {
        let store = endpoint.store().clone();
        let trust: Vec<PublicKey> = shared
            .interest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flat_map(|(_, t)| t.iter().copied())
            .collect();
        let release = inbound.release.clone();
        let (outcome, onward) = blocking(move || check(&store, &trust, release)).await;
        endpoint.gossip_checked(&inbound, &onward, outcome);
        let r = onward.release();
        match outcome {
            Checked::Newer => {
                tracing::info!(
                    "gossip: accepted {} {} (seq {}) from {}",
                    r.name,
                    r.version,
                    r.seq,
                    inbound.peer.short()
                );
                let _ = shared.releases.send(onward);
            }
            Checked::Known => {}
            Checked::Refused => tracing::debug!(
                "gossip: refused {} {} from {}",
                r.name,
                r.version,
                inbound.peer.short()
            ),
        }
    }
}

/// The trust check of a gossiped record, and the release to pass on: the
/// record with the roots this store knows for its publisher.
fn check(store: &Store, trust: &[PublicKey], signed: SignedRelease) -> (Checked, SignedRelease) {
    let r = signed.release().clone();
    let before = match store.release_seen(&r.publisher, &r.name, &r.channel) {
        Ok(s) => s.map(|s| s.seq),
        Err(e) => {
            tracing::warn!("gossip: the store failed: {e}");
            return (Checked::Known, signed);
        }
    };
    let mut policy = Policy {
        now: unix_now(),
        ..Policy::default()
    };
    for k in trust {
        policy.trust(*k, "follow");
    }
    let policy = match store.policy(policy) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("gossip: the store failed: {e}");
            return (Checked::Known, signed);
        }
    };
    let want = Want {
        name: Some(r.name.clone()),
        channel: Some(r.channel.clone()),
    };
    let outcome = match store.accept_release(&policy, &signed, &want) {
        Ok(()) if before.is_none_or(|b| r.seq > b) => Checked::Newer,
        Ok(()) => Checked::Known,
        // An honest peer may be behind this node, or trust a publisher this
        // one does not: not its fault, and not passed on.
        Err(AcceptError::Policy(PolicyError::Rollback { .. } | PolicyError::Untrusted { .. })) => {
            Checked::Known
        }
        Err(AcceptError::Policy(_)) => Checked::Refused,
        Err(AcceptError::Store(e)) => {
            tracing::warn!("gossip: the store failed: {e}");
            Checked::Known
        }
    };
    (outcome, with_known_roots(store, signed))
}

/// `signed` with the roots this store knows for its publisher, when they
/// are more than it carries (a format 2 release from a DHT pointer).
pub(crate) fn with_known_roots(store: &Store, signed: SignedRelease) -> SignedRelease {
    if signed.format() == 1 {
        return signed;
    }
    let publisher = signed.release().publisher;
    match store.roots() {
        Ok(roots) => match roots.into_iter().find(|(k, _)| *k == publisher) {
            Some((_, chain)) => signed.with_roots(chain.roots().cloned().collect()),
            None => signed,
        },
        Err(_) => signed,
    }
}

impl Node {
    /// Releases accepted from gossip from now on, each after the full trust
    /// and rollback policy and recorded as seen (wire.md §3.10).
    ///
    /// ```no_run
    /// # async fn f(node: swarm_engine::node::Node) {
    /// let mut gossiped = node.gossiped();
    /// while let Ok(release) = gossiped.recv().await {
    ///     println!("{} {} is out", release.release().name, release.release().version);
    /// }
    /// # }
    /// ```
    pub fn gossiped(&self) -> broadcast::Receiver<SignedRelease> {
        self.gossip.releases.subscribe()
    }

    /// Hear gossip of these (publisher, name, channel), on behalf of
    /// `owner` (each part of a program that follows releases names itself;
    /// the node follows what all of them do): peers are told, and pass on
    /// the releases of them they accept. Records of them are checked
    /// against the store's trusted keys and `trust`. Empty lists stop
    /// `owner`'s interest.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use swarm_engine::release::SecretKey;
    /// use swarm_engine::wire::Subject;
    ///
    /// let node = swarm_engine::node::Node::builder().memory().no_dht().spawn().await?;
    /// let publisher = SecretKey::from_seed(&[7; 32]).public();
    /// let app = Subject { publisher: *publisher.as_bytes(), name: "app".into(), channel: "stable".into() };
    /// node.follow_gossip("my updater", vec![app], vec![publisher]);
    /// let mut gossiped = node.gossiped(); // releases of it, as peers tell of them
    /// # Ok(())
    /// # }
    /// ```
    pub fn follow_gossip(&self, owner: &str, subjects: Vec<Subject>, trust: Vec<PublicKey>) {
        let all: Vec<Subject> = {
            let mut interest = self
                .gossip
                .interest
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if subjects.is_empty() && trust.is_empty() {
                interest.remove(owner);
            } else {
                interest.insert(owner.to_owned(), (subjects, trust));
            }
            let mut all: Vec<Subject> = interest.values().flat_map(|(s, _)| s.clone()).collect();
            all.sort();
            all.dedup();
            all
        };
        self.endpoint.gossip_follow(all);
    }

    /// Tell the peers that follow it of a release accepted here other than
    /// by gossip, with the roots known for its publisher.
    pub(crate) fn gossip_accepted(&self, signed: &SignedRelease) {
        let onward = with_known_roots(self.store(), signed.clone());
        self.endpoint.gossip_release(&onward);
    }

    /// Keep a connection to each of `peers` until the returned task is
    /// aborted, dialling again with backoff when one drops: gossip travels
    /// over connections that are up.
    pub(crate) fn keep_connected(&self, peers: Vec<PeerAddr>) -> tokio::task::JoinHandle<()> {
        let endpoint = self.endpoint.clone();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for addr in peers {
                let endpoint = endpoint.clone();
                set.spawn(async move {
                    let mut wait = Duration::from_millis(250);
                    loop {
                        match endpoint.connect(&addr).await {
                            Ok(peer) => {
                                wait = Duration::from_millis(250);
                                peer.closed().await;
                            }
                            Err(e) => tracing::debug!("keeping {addr} connected: {e}"),
                        }
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(REDIAL_MAX);
                    }
                });
            }
            while set.join_next().await.is_some() {}
        })
    }
}

/// Drops `owner`'s gossip interest ([`Node::follow_gossip`]) when
/// dropped: its follower stopped.
#[derive(Debug)]
pub struct InterestGuard {
    node: Node,
    owner: String,
}

impl InterestGuard {
    /// Guard `owner`'s interest on `node`.
    pub fn new(node: Node, owner: String) -> Self {
        Self { node, owner }
    }
}

impl Drop for InterestGuard {
    fn drop(&mut self) {
        self.node.follow_gossip(&self.owner, Vec::new(), Vec::new());
    }
}

/// The subject a pointer entry names.
pub(crate) fn subject(publisher: &PublicKey, name: &str, channel: &str) -> Subject {
    Subject {
        publisher: *publisher.as_bytes(),
        name: name.to_owned(),
        channel: channel.to_owned(),
    }
}

/// Whether `release` is about `subject`.
pub(crate) fn is_about(release: &SignedRelease, s: &Subject) -> bool {
    subject_of(release) == *s
}

#[cfg(test)]
#[path = "gossip_tests.rs"]
mod tests;
