//! Release gossip, the driver (wire.md §3.9, §3.10): `Follow` and
//! `Release` on the control streams of version 3 connections. The policy
//! is `release::gossip`; the trust check is the node's, which takes the
//! records from [`GossipHub::inbox`] and reports back with
//! [`GossipHub::checked`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::mpsc;

use super::NodeId;
use super::haves::Haves;
use crate::release::SignedRelease;
use crate::release::gossip::{Checked, Dropped, Forward, Gossip, GossipStats, Verdict};
use crate::wire::{self, ErrorCode, Follow, Message, ReleaseMsg, Subject};

/// Records waiting for the node's trust check; more are dropped.
const INBOX: usize = 256;

/// A gossiped record waiting for the trust check.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The connection it came on.
    pub conn: usize,
    /// The peer that sent it.
    pub peer: NodeId,
    /// The hops it has left.
    pub hops: u8,
    /// The record, decoded (its signatures are not checked against any
    /// trust yet).
    pub release: SignedRelease,
}

/// The subject a release is about.
pub fn subject_of(release: &SignedRelease) -> Subject {
    let r = release.release();
    Subject {
        publisher: *r.publisher.as_bytes(),
        name: r.name.clone(),
        channel: r.channel.clone(),
    }
}

#[derive(Debug, Default)]
pub(crate) struct GossipHub {
    core: Mutex<Gossip>,
    inbox: Mutex<Option<mpsc::Sender<Inbound>>>,
    /// Gossip connections, to close one for abuse.
    conns: Mutex<HashMap<usize, quinn::Connection>>,
    /// The newest release accepted here of each subject, offered to a
    /// peer when it begins to follow the subject.
    latest: Mutex<HashMap<Subject, SignedRelease>>,
}

impl GossipHub {
    fn core(&self) -> std::sync::MutexGuard<'_, Gossip> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A version 3 connection is up: tell it what is followed here.
    pub(crate) fn peer_up(&self, conn: &quinn::Connection, peer: NodeId, haves: &Haves) {
        let id = conn.stable_id();
        let local = {
            let mut core = self.core();
            core.peer_up(id, *peer.as_bytes(), Instant::now());
            core.local()
        };
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn.clone());
        if !local.is_empty() {
            haves.send_to(id, Message::Follow(Follow { subjects: local }));
        }
    }

    pub(crate) fn peer_down(&self, conn: usize) {
        self.core().peer_down(conn);
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
    }

    /// A `Follow` arrived; `Err` with the reason to close for. A subject
    /// it follows now whose newest release is known here is sent to it.
    pub(crate) fn follow(&self, conn: usize, f: Follow, haves: &Haves) -> Result<(), &'static str> {
        let (ban, added) = self.core().peer_follows(conn, f.subjects, Instant::now());
        if ban {
            crate::metrics::gossip_dropped(Dropped::PeerRate);
            return Err("gossip: too many messages");
        }
        let offers: Vec<SignedRelease> = {
            let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            added
                .iter()
                .filter_map(|s| latest.get(s).cloned())
                .collect()
        };
        for release in offers {
            if self.core().offer(conn, release.record_hash())
                && let Some(record) = fitting(&release)
            {
                let hops = wire::MAX_HOPS;
                haves.send_to(conn, Message::Release(ReleaseMsg { hops, record }));
            }
        }
        Ok(())
    }

    /// Remember `release` as the newest of its subject, if it is.
    fn newest(&self, release: &SignedRelease) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let s = subject_of(release);
        if latest
            .get(&s)
            .is_none_or(|r| r.release().seq < release.release().seq)
        {
            latest.insert(s, release.clone());
        }
    }

    /// A `Release` arrived; `Err` with the reason to close for.
    pub(crate) fn release(&self, conn: usize, peer: NodeId, r: ReleaseMsg) -> Result<(), String> {
        let Ok(release) = SignedRelease::from_bytes(&r.record) else {
            self.core().invalid(conn);
            crate::metrics::gossip_dropped(Dropped::Invalid);
            return Err("gossip: not a signed release".into());
        };
        let subject = subject_of(&release);
        let verdict = self
            .core()
            .received(conn, Instant::now(), release.record_hash(), &subject);
        match verdict {
            Verdict::Check => {
                let record = release.record_hash();
                let inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
                let sent = inbox.as_ref().is_some_and(|tx| {
                    tx.try_send(Inbound {
                        conn,
                        peer,
                        hops: r.hops,
                        release,
                    })
                    .is_ok()
                });
                drop(inbox);
                if !sent {
                    self.core().unchecked(record);
                    crate::metrics::gossip_dropped(Dropped::Busy);
                }
                Ok(())
            }
            Verdict::Drop(why) => {
                crate::metrics::gossip_dropped(why);
                Ok(())
            }
            Verdict::Ban(why) => {
                crate::metrics::gossip_dropped(why);
                Err(format!("gossip: banned ({})", why.name()))
            }
        }
    }

    /// Where gossiped records go for the trust check; a second call
    /// replaces the first receiver.
    pub(crate) fn inbox(&self) -> mpsc::Receiver<Inbound> {
        let (tx, rx) = mpsc::channel(INBOX);
        *self.inbox.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Follow `subjects` here, and tell the gossip peers if that changed.
    pub(crate) fn follow_local(&self, subjects: Vec<Subject>, haves: &Haves) {
        let (changed, local, peers) = {
            let mut core = self.core();
            let changed = core.follow_local(subjects);
            let peers: Vec<usize> = self
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .copied()
                .filter(|c| core.is_peer(*c))
                .collect();
            (changed, core.local(), peers)
        };
        if changed {
            for c in peers {
                haves.send_to(
                    c,
                    Message::Follow(Follow {
                        subjects: local.clone(),
                    }),
                );
            }
        }
    }

    /// The trust check of an inbound record is done: pass it on, or
    /// strike its sender. `release` is what to pass on (with the chain the
    /// node knows).
    pub(crate) fn checked(
        &self,
        from: &Inbound,
        release: &SignedRelease,
        outcome: Checked,
        haves: &Haves,
    ) {
        let subject = subject_of(release);
        let fwd = self.core().checked(
            Some(from.conn),
            &subject,
            release.record_hash(),
            outcome,
            from.hops,
        );
        match outcome {
            Checked::Refused => crate::metrics::gossip_dropped(Dropped::Refused),
            Checked::Newer => self.newest(release),
            Checked::Known => {}
        }
        self.send(release, fwd, haves);
    }

    /// A release accepted here by other means: tell the followers.
    pub(crate) fn originate(&self, release: &SignedRelease, haves: &Haves) {
        self.newest(release);
        let fwd = self
            .core()
            .originate(&subject_of(release), release.record_hash());
        if let Some(fwd) = fwd {
            self.send(release, fwd, haves);
        }
    }

    fn send(&self, release: &SignedRelease, fwd: Forward, haves: &Haves) {
        if let Some(c) = fwd.ban {
            let conn = self
                .conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&c);
            if let Some(conn) = conn {
                conn.close(
                    ErrorCode::ProtocolViolation.to_u16().into(),
                    b"gossip: too many refused records",
                );
            }
        }
        if fwd.to.is_empty() {
            return;
        }
        let Some(record) = fitting(release) else {
            tracing::warn!("a release too large to gossip, even without its roots");
            return;
        };
        let msg = Message::Release(ReleaseMsg {
            hops: fwd.hops,
            record,
        });
        for c in fwd.to {
            haves.send_to(c, msg.clone());
        }
        crate::metrics::gossip_sent();
    }

    pub(crate) fn stats(&self) -> GossipStats {
        self.core().stats().clone()
    }
}

/// The record bytes of `release`, without its oldest roots if the whole
/// would not fit a message (wire.md §3.10).
fn fitting(release: &SignedRelease) -> Option<Vec<u8>> {
    // The message: tag, hops, the record's length varint (3 bytes here).
    let room = wire::MAX_MESSAGE - 5;
    let mut roots: Vec<_> = release.chain().to_vec();
    loop {
        let bytes = release.clone().with_only_roots(roots.clone()).to_bytes();
        if bytes.len() <= room {
            return Some(bytes);
        }
        if roots.is_empty() {
            return None;
        }
        roots.remove(0);
    }
}
