//! The parts of the download policy that are not about which piece to ask
//! for: when a slow peer is given up on, which peers have been asked what
//! they hold, and when a download that cannot progress has waited long
//! enough. Drivers report what happened (`handle_*`, [`Swarm::piece_failed`])
//! and act on what this says (`poll_*`); they decide none of it.
//!
//! Calling order, each time the driver wakes: feed it every event that
//! arrived (answers, failures, asks answered, peers joined or gone), then
//! [`Swarm::handle_timeout`] with the time, then act on
//! [`Swarm::poll_dropped`], [`Swarm::poll_stalled`] and
//! [`Swarm::poll_requests`], and sleep until [`Swarm::poll_timeout`] or the
//! next event.

use std::time::Duration;

use super::Swarm;

/// A peer whose connection was lost, to be dialed again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Redial {
    /// When it was lost: dials stop a stall timeout later.
    lost: Duration,
    /// The wait before the next dial after a failed one.
    pause: Duration,
    /// When to dial next; `None` while a dial is on the way.
    next: Option<Duration>,
    /// Connected again, but nothing delivered since: lost again, it is
    /// dialed on the clock of its first loss, so a peer that comes back
    /// only to fail is not dialed for ever.
    pub(super) back: bool,
}

impl<P: Copy + Ord + std::fmt::Debug> Swarm<P> {
    /// One more request to `key` timed out or was refused for now. After
    /// [`super::Config::max_slow`] in a row (a delivered piece resets the
    /// count) the peer is removed and reported by [`Self::poll_dropped`].
    pub(super) fn strike(&mut self, key: &P) {
        if !self.index.contains_key(key) {
            return;
        }
        let n = self.slow.entry(*key).or_default();
        *n += 1;
        if *n >= self.config.max_slow {
            self.slow.remove(key);
            self.remove_peer(key);
            self.dropped.push(*key);
        }
    }

    /// Forget what is kept about `key` here: it is gone.
    pub(super) fn forget_policy(&mut self, key: &P) {
        self.slow.remove(key);
        // Asked again if it comes back: a new connection, a new subscription.
        let asked: Vec<_> = self
            .asked
            .range((*key, 0)..=(*key, usize::MAX))
            .copied()
            .collect();
        for k in asked {
            self.asked.remove(&k);
        }
        let pending: Vec<_> = self
            .asks_pending
            .range((*key, 0)..=(*key, usize::MAX))
            .copied()
            .collect();
        for k in pending {
            self.asks_pending.remove(&k);
        }
    }

    /// `key`'s connection was lost (closed, reset, or it stopped
    /// answering), and the driver knows how to dial it again: a peer the
    /// user named, which may be restarting. It is removed as by
    /// [`Self::remove_peer`]; [`Self::poll_redial`] then says when to dial
    /// it, after [`super::Config::redial_first`] and then twice as long
    /// after each failed dial (up to [`super::Config::redial_max`]), until
    /// it is back ([`Self::add_peer`]) or a stall timeout has passed since
    /// it was first lost (the clock restarts only once it has delivered a
    /// piece since). A banned peer is never dialed again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    ///
    /// let ms = Duration::from_millis;
    /// let blobs = [BlobSpec { size: 1 << 20, present: Default::default() }];
    /// let mut swarm = Swarm::new(&blobs, Config::default(), 1);
    /// swarm.add_peer("named");
    /// swarm.peer_lost(&"named", ms(0));
    /// assert!(swarm.is_redialing());
    /// assert_eq!(swarm.poll_redial(ms(100)), None);
    /// assert_eq!(swarm.poll_timeout(), Some(ms(250)));
    /// assert_eq!(swarm.poll_redial(ms(250)), Some("named"));
    /// // The dial fails: the next one is 500 ms later.
    /// swarm.redial_failed(&"named", ms(300));
    /// assert_eq!(swarm.poll_redial(ms(700)), None);
    /// assert_eq!(swarm.poll_redial(ms(800)), Some("named"));
    /// // It is back.
    /// assert!(swarm.add_peer("named"));
    /// assert!(!swarm.is_redialing());
    /// ```
    pub fn peer_lost(&mut self, key: &P, now: Duration) {
        self.remove_peer(key);
        if self.banned.contains(key) {
            return;
        }
        let (first, max) = (self.config.redial_first, self.config.redial_max);
        self.redial
            .entry(*key)
            .and_modify(|r| {
                r.back = false;
                r.pause = (r.pause * 2).min(max);
                r.next = Some(now + r.pause);
            })
            .or_insert(Redial {
                lost: now,
                pause: first,
                next: Some(now + first),
                back: false,
            });
    }

    /// A lost peer due to be dialed now, if any: the driver dials it, and
    /// reports [`Self::add_peer`] or [`Self::redial_failed`]. Peers lost a
    /// stall timeout ago or more are given up on here.
    pub fn poll_redial(&mut self, now: Duration) -> Option<P> {
        let stall = self.config.stall_timeout;
        self.redial
            .retain(|_, r| r.back || r.next.is_none() || now.saturating_sub(r.lost) < stall);
        let (key, r) = self
            .redial
            .iter_mut()
            .find(|(_, r)| !r.back && r.next.is_some_and(|t| t <= now))?;
        r.next = None;
        Some(*key)
    }

    /// A dial of a lost peer failed at `now`: the next waits twice as
    /// long, and none is due after a stall timeout since it was lost.
    pub fn redial_failed(&mut self, key: &P, now: Duration) {
        let (max, stall) = (self.config.redial_max, self.config.stall_timeout);
        if let Some(r) = self.redial.get_mut(key).filter(|r| !r.back) {
            r.pause = (r.pause * 2).min(max);
            r.next = Some((now + r.pause).min(r.lost + stall));
        }
    }

    /// Stop dialing `key` (it came back under another id, or there is no
    /// room for it).
    pub fn redial_done(&mut self, key: &P) {
        self.redial.remove(key);
    }

    /// Whether a lost peer is still being dialed: a download with no peer
    /// left is not over while one may come back.
    pub fn is_redialing(&self) -> bool {
        self.redial.values().any(|r| !r.back)
    }

    fn next_redial(&self) -> Option<Duration> {
        self.redial
            .values()
            .filter(|r| !r.back)
            .filter_map(|r| r.next)
            .min()
    }

    /// The peers this download gave up on since the last call (too many
    /// slow requests in a row): close them. They are removed already, and
    /// not banned: they may be used again if they come back.
    ///
    /// ```
    /// use swarm_engine::swarm::{BlobSpec, Config, Failure, Swarm};
    /// use std::time::Duration;
    ///
    /// let blobs = [BlobSpec { size: 4 << 20, present: Default::default() }];
    /// let mut swarm = Swarm::new(&blobs, Config { max_slow: 2, ..Config::default() }, 1);
    /// swarm.add_peer("slow");
    /// let r = swarm.poll_requests(&"slow", Duration::ZERO);
    /// swarm.piece_failed(&"slow", r[0].piece, Failure::Slow);
    /// assert_eq!(swarm.poll_dropped(), None);
    /// swarm.piece_failed(&"slow", r[1].piece, Failure::Slow);
    /// assert_eq!(swarm.poll_dropped(), Some("slow"));
    /// assert!(!swarm.is_banned(&"slow"));
    /// ```
    pub fn poll_dropped(&mut self) -> Option<P> {
        if self.dropped.is_empty() {
            None
        } else {
            Some(self.dropped.remove(0))
        }
    }

    /// Record that `key` is being asked what it holds of `blob`. Returns
    /// false if it was asked before (ask once: the answer also subscribes
    /// to what it gets later, wire.md §3.6). Until the answer, nothing of
    /// the blob is asked of it on the chance.
    ///
    /// ```
    /// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    ///
    /// let blobs = [BlobSpec { size: 4 << 20, present: Default::default() }];
    /// let mut swarm = Swarm::new(&blobs, Config::default(), 1);
    /// swarm.add_peer("p");
    /// assert!(swarm.handle_ask_sent(&"p", 0));
    /// assert!(!swarm.handle_ask_sent(&"p", 0)); // asked already
    /// assert_eq!(swarm.asks_pending(), 1);
    /// swarm.handle_ask_answered(&"p", 0);
    /// assert_eq!(swarm.asks_pending(), 0);
    /// ```
    pub fn handle_ask_sent(&mut self, key: &P, blob: usize) -> bool {
        if !self.index.contains_key(key) || !self.asked.insert((*key, blob)) {
            return false;
        }
        self.peer_lacks(key, blob);
        self.asks_pending.insert((*key, blob));
        true
    }

    /// The answer to an ask arrived (or the ask failed). Report what it
    /// said with [`Self::peer_has`] and its kin.
    pub fn handle_ask_answered(&mut self, key: &P, blob: usize) {
        self.asks_pending.remove(&(*key, blob));
    }

    /// Asks sent and not answered yet.
    pub fn asks_pending(&self) -> usize {
        self.asks_pending.len()
    }

    /// While paused nothing is requested and nothing counts towards a stall.
    pub fn handle_pause(&mut self, paused: bool) {
        self.generation += 1;
        self.paused = paused;
        if paused {
            self.stalled_since = None;
        }
    }

    /// Time passes: `now` since the download began. A download with nothing
    /// in flight, nothing asked and no peer that has what is missing starts
    /// (or keeps) waiting; anything else ends the wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    ///
    /// let blobs = [BlobSpec { size: 4 << 20, present: Default::default() }];
    /// let config = Config { stall_timeout: Duration::from_secs(10), ..Config::default() };
    /// let mut swarm: Swarm<&str> = Swarm::new(&blobs, config, 1);
    /// // No peer has any of it.
    /// swarm.handle_timeout(Duration::from_secs(1));
    /// assert_eq!(swarm.poll_timeout(), Some(Duration::from_secs(11)));
    /// assert!(!swarm.poll_stalled(Duration::from_secs(5)));
    /// swarm.handle_timeout(Duration::from_secs(11));
    /// assert!(swarm.poll_stalled(Duration::from_secs(11)));
    /// ```
    pub fn handle_timeout(&mut self, now: Duration) {
        self.now = now;
        // What `poll_timeout` will say, kept while nothing it depends on
        // changes and the time it names has not passed.
        let fresh = self
            .steal_at
            .is_some_and(|(g, _, at)| g == self.generation && at.is_none_or(|t| t > now));
        if !fresh {
            self.steal_at = Some((self.generation, now, self.next_steal()));
        }
        let waiting = !self.paused
            && !self.is_complete()
            && self.asks_pending.is_empty()
            && self.in_flight() == 0
            && !self.can_progress();
        self.stalled_since = match (waiting, self.stalled_since) {
            (true, Some(t)) => Some(t),
            (true, None) => Some(now),
            (false, _) => None,
        };
    }

    /// Whether the download has waited [`super::Config::stall_timeout`]
    /// with nobody able to help: the driver gives up (what is verified is
    /// kept).
    pub fn poll_stalled(&self, now: Duration) -> bool {
        self.stalled_since
            .is_some_and(|t| now.saturating_sub(t) >= self.config.stall_timeout)
    }

    /// When the driver must call [`Self::handle_timeout`] and poll again
    /// at the latest, if no event comes first: the end of a stall wait, or
    /// the next moment a request in flight becomes late (or, in the
    /// endgame, old enough) for another peer to take over, the next dial
    /// of a lost peer ([`Self::poll_redial`]). `None`: only
    /// events matter now. The driver needs no tick of its own.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let stall = self.stalled_since.map(|t| t + self.config.stall_timeout);
        let steal = match self.steal_at {
            Some((g, _, at)) if g == self.generation && at.is_none_or(|t| t > self.now) => at,
            _ => self.next_steal(),
        };
        [stall, steal, self.next_redial()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The earliest time after the last [`Self::handle_timeout`] at which a
    /// request may be stolen: with fewer than two peers, never.
    fn next_steal(&self) -> Option<Duration> {
        if self.paused || self.peers.iter().flatten().nth(1).is_none() {
            return None;
        }
        let endgame = self.unrequested == 0;
        let mut next: Option<Duration> = None;
        for other in self.peers.iter().flatten() {
            for f in &other.flights {
                if self.pieces[f.piece as usize].owners.len() >= self.config.max_duplicates {
                    continue;
                }
                let mut at = self.due(other, f);
                if endgame {
                    at = at.min(f.sent + self.config.min_steal_age);
                }
                if at > self.now {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        next
    }

    fn in_flight(&self) -> usize {
        self.peers.iter().flatten().map(|p| p.flights.len()).sum()
    }
}
