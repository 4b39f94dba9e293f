//! The piece picker: which piece to ask which peer for, and when.
//!
//! Sans-IO: a [`Swarm`] is fed events (a peer joined, announced what it
//! has, delivered a piece, failed) with the current time, and answers with
//! the requests to send. It never reads a clock, a socket or a random
//! source of its own: time is passed in as the [`Duration`] since the
//! download began, and randomness comes from a seed given at construction.
//! The network driver (`node::fetch`) and the simulation tests drive the
//! same code.
//!
//! # Model
//!
//! Each blob is cut into **pieces**: aligned runs of [`Config::piece_groups`]
//! 16 KiB groups (the last piece of a blob may be shorter). A piece is
//! missing, requested from one or more peers, or done. For every peer the
//! swarm tracks which pieces it has (from `Have`; a peer that has not said
//! anything about a blob may be asked for any of its pieces), what is in
//! flight to it, and its measured throughput.
//!
//! - **Rarest first, random start**: a peer with room in its pipeline gets
//!   the missing, unrequested pieces it has that the fewest peers have; ties
//!   are broken from a random point, so fetchers that start together ask
//!   the seed for different pieces. Rarity counts what peers announced
//!   (bitfield on connect, then `Have`s), never a peer that said nothing;
//!   a piece the asked peer alone is known to hold comes first of all.
//! - **Super-seeding** is the seed's side: [`SuperSeed`] decides which
//!   pieces a seed that is the only complete source announces to whom.
//! - **Pipelining**: a peer gets as many requests as cover its measured
//!   throughput over two round trips plus a margin, within
//!   [`Config::min_pipeline`]..=[`Config::max_pipeline`].
//! - **Stealing**: a piece whose peer is well behind its own measured pace
//!   may be requested again from a peer with room; the first answer wins
//!   and the other request is cancelled.
//! - **Moving to a faster fetcher**: a fetcher with room whose pieces are
//!   all asked of others takes over a request queued (not the one on its
//!   way) at another fetcher that would answer it [`Config::move_gain`]
//!   times later. In a large mesh a fast uploader is otherwise left idle
//!   while its neighbours wait on slow ones. Never to or from a seed.
//! - **Endgame**: once every missing piece is in flight, idle peers
//!   duplicate the oldest requests (at most [`Config::max_duplicates`] per
//!   piece), so the last pieces do not wait on the slowest peer.
//! - **Scoring**: a peer that sends bad data is banned and everything in
//!   flight to it returns to the pool; a peer that vanishes is removed the
//!   same way; a peer that turns out not to have a piece loses it from its
//!   availability.

#[cfg(test)]
mod mesh_tests;
mod policy;
mod seed;
/// The discrete-event simulation of a swarm, for the tests and `bench-sim`
/// (feature `sim`); not part of the library's API.
#[cfg(any(test, feature = "sim"))]
#[doc(hidden)]
pub mod sim;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

pub use self::seed::{SuperSeed, SuperSeedConfig};
use crate::content::{self, GROUP_SIZE};
use crate::store::GroupSet;

/// Shortest time a throughput sample covers.
const RATE_WINDOW: Duration = Duration::from_millis(300);

/// Tuning of the picker.
///
/// ```
/// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
///
/// // Smaller pieces and a shorter pipeline, e.g. for a slow link.
/// let config = Config { piece_groups: 4, max_pipeline: 8, ..Config::default() };
/// let blob = BlobSpec { size: 1 << 20, present: Default::default() };
/// let swarm: Swarm<u32> = Swarm::new(&[blob], config, 1);
/// assert_eq!(swarm.piece_count(), 16); // 64 groups of 16 KiB, 4 per piece
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Groups per piece at least (16 = 256 KiB). See [`Self::groups_per_piece`].
    pub piece_groups: u64,
    /// A blob with more pieces than this gets larger pieces, doubling up to
    /// [`Self::large_piece_groups`]: fewer requests where there are plenty
    /// of pieces to spread anyway.
    pub target_pieces_per_blob: u64,
    /// Groups per piece that [`Self::target_pieces_per_blob`] grows to at
    /// most (64 = 1 MiB).
    pub large_piece_groups: u64,
    /// Upper bound on the number of pieces of one blob, whatever the piece
    /// size it takes.
    pub max_pieces_per_blob: u64,
    /// Fewest requests kept in flight to a peer with room.
    pub min_pipeline: usize,
    /// Most requests in flight to one peer.
    pub max_pipeline: usize,
    /// Most bytes requested from one peer at once: responses are held in
    /// memory until verified, and more than the connection's receive
    /// window cannot be on the way anyway (a download sets it to
    /// `net::EndpointConfig::window`, 4 MiB by default).
    pub max_pipeline_bytes: u64,
    /// Requests in flight to a peer whose throughput is not known yet.
    pub initial_pipeline: usize,
    /// Data kept in flight to a peer beyond two round trips, as time at its
    /// measured rate.
    pub pipeline_margin: Duration,
    /// A request is late (and may be stolen) once it is this many times
    /// older than its peer's pace says it should be.
    pub late_factor: u32,
    /// Never steal a request younger than this.
    pub min_steal_age: Duration,
    /// A request to a peer whose pace is unknown is late after this long.
    pub initial_late: Duration,
    /// Most peers one piece is requested from at once (stealing, endgame);
    /// one more when a fetcher far faster than all of them takes it over.
    pub max_duplicates: usize,
    /// A fetcher with room and nothing fresh to give takes over a request
    /// in flight elsewhere when it would answer it this many times sooner
    /// (0: never). A seed is not used so: its upload is for what only it
    /// has.
    pub move_gain: u32,
    /// Slow requests in a row (timed out, or refused for now) after which
    /// a peer is given up on ([`Swarm::poll_dropped`]).
    pub max_slow: u32,
    /// How long a download waits, when no peer has what is missing, for
    /// one that does ([`Swarm::poll_stalled`]).
    pub stall_timeout: Duration,
    /// The first wait before a lost peer is dialed again
    /// ([`Swarm::peer_lost`]); it doubles after each failed dial.
    pub redial_first: Duration,
    /// The longest wait between two dials of a lost peer.
    pub redial_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            piece_groups: 16,
            target_pieces_per_blob: 512,
            large_piece_groups: 64,
            max_pieces_per_blob: 16_384,
            min_pipeline: 2,
            max_pipeline: 32,
            max_pipeline_bytes: 8 << 20,
            initial_pipeline: 4,
            pipeline_margin: Duration::from_millis(100),
            late_factor: 3,
            min_steal_age: Duration::from_millis(500),
            initial_late: Duration::from_secs(4),
            max_duplicates: 2,
            move_gain: 2,
            max_slow: 3,
            stall_timeout: Duration::from_secs(30),
            redial_first: Duration::from_millis(250),
            redial_max: Duration::from_secs(4),
        }
    }
}

impl Config {
    /// Groups per piece for a blob of `groups` groups: [`Self::piece_groups`],
    /// doubled while the blob would have more than
    /// [`Self::target_pieces_per_blob`] pieces and pieces are under
    /// [`Self::large_piece_groups`], then while it would have more than
    /// [`Self::max_pieces_per_blob`]. (256 KiB pieces up to 128 MiB, 512 KiB
    /// at 256 MiB, 1 MiB from 512 MiB: a request costs about the same at any
    /// size. With 8 fetchers of 256 MiB, 1 MiB pieces made the seed send
    /// 1.25 copies and 256 KiB ones left more pieces that only the seed
    /// had when it left; 512 KiB did best on both.)
    ///
    /// ```
    /// use swarm_engine::swarm::Config;
    ///
    /// let c = Config::default();
    /// let groups = |mib: u64| mib * 64; // 64 groups of 16 KiB per MiB
    /// assert_eq!(c.groups_per_piece(groups(1)), 16); // 256 KiB pieces
    /// assert_eq!(c.groups_per_piece(groups(256)), 32); // 512 KiB
    /// assert_eq!(c.groups_per_piece(groups(4096)), 64); // 1 MiB
    /// ```
    pub fn groups_per_piece(&self, groups: u64) -> u64 {
        let mut per = self.piece_groups.max(1);
        while groups.div_ceil(per) > self.target_pieces_per_blob.max(1)
            && per < self.large_piece_groups
        {
            per *= 2;
        }
        while groups.div_ceil(per) > self.max_pieces_per_blob.max(1) {
            per *= 2;
        }
        per
    }
}

/// A blob to download: its size and the groups already stored.
///
/// ```
/// use swarm_engine::store::GroupSet;
/// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
///
/// // A resumed download: the first 32 groups (512 KiB) are already stored.
/// let mut present = GroupSet::new();
/// present.insert(0, 32);
/// let blob = BlobSpec { size: 1 << 20, present };
/// let swarm: Swarm<u32> = Swarm::new(&[blob], Config::default(), 1);
/// assert_eq!(swarm.missing_bytes(), 512 << 10);
/// ```
#[derive(Debug, Clone)]
pub struct BlobSpec {
    /// Size in bytes.
    pub size: u64,
    /// Groups already verified and stored.
    pub present: GroupSet,
}

/// A piece: its index in the whole download.
///
/// ```
/// use swarm_engine::swarm::PieceId;
///
/// # use std::time::Duration;
/// # use swarm_engine::store::GroupSet;
/// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
/// # let blobs = [
/// #     BlobSpec { size: 1 << 20, present: GroupSet::new() },
/// #     BlobSpec { size: 5_000, present: GroupSet::new() },
/// # ];
/// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
/// // Pieces are numbered across all blobs: blob 1's piece follows blob 0's four.
/// assert_eq!(swarm.piece(PieceId(0)), Some((0, 0..16)));
/// assert_eq!(swarm.piece(PieceId(4)), Some((1, 0..1)));
/// assert_eq!(swarm.piece(PieceId(5)), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PieceId(pub u32);

/// A request the driver should send.
///
/// ```
/// # use std::time::Duration;
/// # use swarm_engine::store::GroupSet;
/// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
/// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
/// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
/// swarm.add_peer("seed");
/// let requests = swarm.poll_requests(&"seed", Duration::ZERO);
/// for r in &requests {
///     // Ask the peer for these groups of blob `r.blob`.
///     assert_eq!(r.blob, 0);
///     assert_eq!(r.groups.end - r.groups.start, 16);
///     assert_eq!(swarm.piece(r.piece), Some((r.blob, r.groups.clone())));
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Which piece.
    pub piece: PieceId,
    /// Index of its blob in the list given to [`Swarm::new`].
    pub blob: usize,
    /// Its groups, `start..end`.
    pub groups: std::ops::Range<u64>,
}

/// Why a request did not deliver its piece.
///
/// ```
/// use swarm_engine::swarm::Failure;
///
/// # use std::time::Duration;
/// # use swarm_engine::store::GroupSet;
/// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
/// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
/// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
/// swarm.add_peer("liar");
/// let requests = swarm.poll_requests(&"liar", Duration::ZERO);
/// // Its data did not verify: banned, and its requests return to the pool.
/// swarm.piece_failed(&"liar", requests[0].piece, Failure::BadData);
/// assert!(swarm.is_banned(&"liar"));
/// assert!(!swarm.add_peer("liar"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The peer sent data that does not verify, or broke the protocol: it
    /// is banned.
    BadData,
    /// The peer says it does not have the piece.
    NotHeld,
    /// The connection is gone or stalled: the peer is removed.
    Lost,
    /// The driver cancelled it (another peer delivered the piece first).
    Cancelled,
    /// The request timed out or the peer refused it for now (busy): the
    /// piece goes back to the pool and counts against the peer, which is
    /// kept (a capped peer with a long queue is slow, not gone).
    Slow,
}

/// What the swarm knows of one peer.
///
/// ```
/// # use std::time::Duration;
/// # use swarm_engine::store::GroupSet;
/// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
/// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
/// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
/// swarm.add_peer("seed");
/// swarm.peer_has_all(&"seed");
/// let first = swarm.poll_requests(&"seed", Duration::ZERO)[0].clone();
/// swarm.piece_done(&"seed", first.piece, Duration::from_millis(20));
/// let stats = swarm.peer_stats(&"seed").expect("present");
/// assert_eq!((stats.pieces, stats.bytes), (1, 256 << 10));
/// assert_eq!(stats.useful, 3); // it has 3 more pieces missing here
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStats {
    /// Measured throughput in bytes per second (0 until a piece arrives).
    pub rate: f64,
    /// Bytes of pieces it delivered.
    pub bytes: u64,
    /// Pieces it delivered.
    pub pieces: u64,
    /// Requests in flight to it.
    pub in_flight: usize,
    /// Requests it failed (not counting cancellations).
    pub failures: u64,
    /// Pieces it is known to have that are still missing here.
    pub useful: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    Requested,
    Done,
}

#[derive(Debug, Clone)]
struct Piece {
    blob: u32,
    start: u64,
    end: u64,
    bytes: u64,
    state: State,
    /// Peers known to have it.
    avail: u32,
    /// Peers it is requested from (more than one when stolen or in endgame).
    owners: Vec<u32>,
}

#[derive(Debug, Clone)]
struct Flight {
    piece: u32,
    sent: Duration,
    /// Bytes queued at this peer ahead of this request when it was sent.
    ahead: u64,
    /// The peer had announced the piece when it was requested (rather than
    /// being asked on the chance that it has it).
    announced: bool,
}

#[derive(Debug, Clone)]
struct PeerState<P> {
    key: P,
    /// Bit per piece: the peer is known to have it.
    has: Bits,
    /// Bit per blob: the peer said what it has of this blob (so `has` is
    /// the whole truth for it). Pieces of other blobs may be asked for.
    known: Bits,
    flights: Vec<Flight>,
    rate: f64,
    rtt: Duration,
    last_done: Option<Duration>,
    /// Bytes delivered and time spent with requests in flight, since the
    /// last rate sample.
    win_bytes: u64,
    win_busy: Duration,
    /// Pipeline floor while the rate is still climbing (slow start).
    floor: usize,
    bytes: u64,
    pieces: u64,
    failures: u64,
    /// A stable hash of the key: who claims which piece (see `claims`).
    tag: u64,
    /// It was seen holding some of the pieces but not all: a fetcher (that
    /// may since have completed), not a seed.
    fetcher: bool,
}

/// The state of one download across all its peers.
///
/// ```
/// use std::time::Duration;
/// use swarm_engine::store::GroupSet;
/// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
///
/// // One 1 MiB blob, nothing stored yet, and one peer that has all of it.
/// let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
/// let mut swarm = Swarm::new(&blobs, Config::default(), 42);
/// swarm.add_peer("seed");
/// swarm.peer_has_all(&"seed");
/// let mut now = Duration::ZERO;
/// while !swarm.is_complete() {
///     for request in swarm.poll_requests(&"seed", now) {
///         // A driver sends the request; when the groups arrive verified:
///         now += Duration::from_millis(5);
///         swarm.piece_done(&"seed", request.piece, now);
///     }
/// }
/// assert_eq!(swarm.missing_bytes(), 0);
/// ```
pub struct Swarm<P> {
    config: Config,
    blobs: Vec<(u32, u32)>,
    /// Groups per piece of each blob (all its pieces but the last).
    per_piece: Vec<u64>,
    pieces: Vec<Piece>,
    peers: Vec<Option<PeerState<P>>>,
    index: BTreeMap<P, u32>,
    banned: Vec<P>,
    missing_bytes: u64,
    unrequested: usize,
    done: usize,
    rng: u64,
    /// Average bytes per piece, to turn a pipeline in bytes into requests.
    piece_bytes: u64,
    /// Where a single peer's pieces are taken from, in order.
    start: usize,
    /// Slow requests in a row, per peer (see `policy`).
    slow: BTreeMap<P, u32>,
    /// Peers given up on, not yet reported to the driver.
    dropped: Vec<P>,
    /// (peer, blob) asked what it holds; and those not answered yet.
    asked: BTreeSet<(P, usize)>,
    asks_pending: BTreeSet<(P, usize)>,
    /// Since when nobody can help, if so.
    stalled_since: Option<Duration>,
    /// Peers lost that the driver dials again (see `policy`).
    redial: BTreeMap<P, policy::Redial>,
    /// The time of the last [`Self::handle_timeout`].
    now: Duration,
    paused: bool,
    /// Bit per piece: missing and not requested (`State::Missing`).
    pool: Bits,
    /// Bit per piece: not done.
    undone: Bits,
    /// Bumped by every change to what is in flight, to a rate or round
    /// trip, to the peers or to the pause: what the caches below depend on.
    generation: u64,
    /// (generation, the earliest time any request in flight turns late).
    late_floor: Option<(u64, Option<Duration>)>,
    /// (generation, the time it was computed for, [`Self::next_steal`]).
    steal_at: Option<(u64, Duration, Option<Duration>)>,
    /// Reused by [`Self::pick_rarest`].
    scratch: Vec<(u64, u32)>,
    /// This download's own key as its peers know it, and its tag
    /// ([`Self::set_me`]).
    me: Option<(P, u64)>,
}

impl<P: fmt::Debug> fmt::Debug for Swarm<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Swarm")
            .field("pieces", &self.pieces.len())
            .field("done", &self.done)
            .field("missing_bytes", &self.missing_bytes)
            .field("peers", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl<P: Copy + Ord + fmt::Debug> Swarm<P> {
    /// A download of `blobs`, with randomness from `seed`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    ///
    /// let blob = BlobSpec { size: 64 << 20, present: Default::default() };
    /// let first = |seed| {
    ///     let mut swarm = Swarm::new(&[blob.clone()], Config::default(), seed);
    ///     swarm.add_peer(1u32);
    ///     swarm.poll_requests(&1, Duration::ZERO)[0].piece
    /// };
    /// // The same seed, the same choices: simulations replay exactly.
    /// assert_eq!(first(5), first(5));
    /// ```
    pub fn new(blobs: &[BlobSpec], config: Config, seed: u64) -> Self {
        let mut pieces = Vec::new();
        let mut ranges = Vec::with_capacity(blobs.len());
        let mut per_piece = Vec::with_capacity(blobs.len());
        for (b, spec) in blobs.iter().enumerate() {
            let groups = content::group_count(spec.size).max(1);
            let per = config.groups_per_piece(groups);
            let first = pieces.len() as u32;
            let mut start = 0;
            while start < groups {
                let end = (start + per).min(groups);
                let bytes = (end * GROUP_SIZE).min(spec.size) - (start * GROUP_SIZE).min(spec.size);
                let state = if spec.present.covers_range(start, end) {
                    State::Done
                } else {
                    State::Missing
                };
                pieces.push(Piece {
                    blob: b as u32,
                    start,
                    end,
                    bytes,
                    state,
                    avail: 0,
                    owners: Vec::new(),
                });
                start = end;
            }
            ranges.push((first, pieces.len() as u32));
            per_piece.push(per);
        }
        let missing: Vec<&Piece> = pieces.iter().filter(|p| p.state != State::Done).collect();
        let missing_bytes = missing.iter().map(|p| p.bytes).sum();
        let unrequested = missing.len();
        let done = pieces.len() - unrequested;
        let total: u64 = pieces.iter().map(|p| p.bytes).sum();
        let piece_bytes = (total / pieces.len().max(1) as u64).max(GROUP_SIZE);
        let mut pool = Bits::new(pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            if p.state == State::Missing {
                pool.set(i);
            }
        }
        let undone = pool.clone();
        let mut swarm = Self {
            config,
            blobs: ranges,
            per_piece,
            pieces,
            peers: Vec::new(),
            index: BTreeMap::new(),
            banned: Vec::new(),
            missing_bytes,
            unrequested,
            done,
            // splitmix64 never sticks at zero, whatever the seed.
            rng: seed,
            piece_bytes,
            start: 0,
            slow: BTreeMap::new(),
            dropped: Vec::new(),
            asked: BTreeSet::new(),
            asks_pending: BTreeSet::new(),
            stalled_since: None,
            redial: BTreeMap::new(),
            now: Duration::ZERO,
            paused: false,
            pool,
            undone,
            generation: 0,
            late_floor: None,
            steal_at: None,
            scratch: Vec::new(),
            me: None,
        };
        swarm.start = swarm.next_random() as usize % swarm.pieces.len().max(1);
        swarm
    }

    /// Whether every piece is done.
    ///
    /// ```
    /// use swarm_engine::store::GroupSet;
    /// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    ///
    /// let mut all = GroupSet::new();
    /// all.insert(0, 7);
    /// // Everything already stored: nothing to do.
    /// let blob = BlobSpec { size: 100_000, present: all };
    /// let swarm: Swarm<u32> = Swarm::new(&[blob], Config::default(), 1);
    /// assert!(swarm.is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.done == self.pieces.len()
    }

    /// Bytes still missing.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// assert_eq!(swarm.missing_bytes(), 1 << 20);
    /// swarm.add_peer("seed");
    /// let r = swarm.poll_requests(&"seed", Duration::ZERO);
    /// swarm.piece_done(&"seed", r[0].piece, Duration::from_millis(10));
    /// assert_eq!(swarm.missing_bytes(), 3 << 18); // 3 pieces of 256 KiB left
    /// ```
    pub fn missing_bytes(&self) -> u64 {
        self.missing_bytes
    }

    /// Number of pieces.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [
    /// #     BlobSpec { size: 1 << 20, present: GroupSet::new() },
    /// #     BlobSpec { size: 5_000, present: GroupSet::new() },
    /// # ];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// assert_eq!(swarm.piece_count(), 4 + 1);
    /// ```
    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// The pieces of blob `blob`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [
    /// #     BlobSpec { size: 1 << 20, present: GroupSet::new() },
    /// #     BlobSpec { size: 5_000, present: GroupSet::new() },
    /// # ];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// assert_eq!(swarm.pieces_of(0), 0..4);
    /// assert_eq!(swarm.pieces_of(1), 4..5);
    /// ```
    pub fn pieces_of(&self, blob: usize) -> std::ops::Range<u32> {
        let (a, b) = self.blobs[blob];
        a..b
    }

    /// The blob `piece` belongs to, and its groups.
    ///
    /// ```
    /// use swarm_engine::swarm::PieceId;
    ///
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// // Piece 2 of a 1 MiB blob: groups 32..48 of blob 0.
    /// assert_eq!(swarm.piece(PieceId(2)), Some((0, 32..48)));
    /// ```
    pub fn piece(&self, piece: PieceId) -> Option<(usize, std::ops::Range<u64>)> {
        let p = self.pieces.get(piece.0 as usize)?;
        Some((p.blob as usize, p.start..p.end))
    }

    /// Whether `piece` is done.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("seed");
    /// let piece = swarm.poll_requests(&"seed", Duration::ZERO)[0].piece;
    /// assert!(!swarm.is_done(piece));
    /// swarm.piece_done(&"seed", piece, Duration::from_millis(10));
    /// assert!(swarm.is_done(piece));
    /// ```
    pub fn is_done(&self, piece: PieceId) -> bool {
        self.pieces
            .get(piece.0 as usize)
            .is_some_and(|p| p.state == State::Done)
    }

    /// Whether `blob`'s pieces are all done.
    ///
    /// ```
    /// use swarm_engine::swarm::PieceId;
    ///
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [
    /// #     BlobSpec { size: 1 << 20, present: GroupSet::new() },
    /// #     BlobSpec { size: 5_000, present: GroupSet::new() },
    /// # ];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("seed");
    /// swarm.piece_done(&"seed", PieceId(4), Duration::ZERO); // blob 1's only piece
    /// assert!(swarm.blob_complete(1));
    /// assert!(!swarm.blob_complete(0));
    /// ```
    pub fn blob_complete(&self, blob: usize) -> bool {
        let (a, b) = self.blobs[blob];
        self.pieces[a as usize..b as usize]
            .iter()
            .all(|p| p.state == State::Done)
    }

    /// This download's own key as its peers know it (a node id). With it,
    /// fetchers that see each other split what only one source holds: each
    /// such piece is claimed by one of the fetchers in sight (itself and
    /// the peers that are not complete), by rendezvous hashing of the piece
    /// with their keys, and each asks first for what it claims, then for
    /// what it is second in line for, from the end the claimant reaches
    /// last. Fetchers that start together then rarely ask a seed for the
    /// same piece, and one that does not yet see all the others disagrees
    /// with them only about the pieces the unseen ones claim.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// let blob = BlobSpec { size: 16 << 20, present: GroupSet::new() }; // 64 pieces
    /// let first_asks = |me: u32| {
    ///     let mut swarm = Swarm::new(&[blob.clone()], Config::default(), 5);
    ///     swarm.set_me(me);
    ///     swarm.add_peer(0); // the seed
    ///     swarm.peer_has_all(&0);
    ///     let other = 3 - me; // the other fetcher, empty so far
    ///     swarm.add_peer(other);
    ///     swarm.peer_lacks(&other, 0);
    ///     swarm.poll_requests(&0, Duration::ZERO)
    /// };
    /// // Fetchers 1 and 2 each ask the seed for pieces of their own.
    /// let (a, b) = (first_asks(1), first_asks(2));
    /// assert!(!a.is_empty() && !b.is_empty());
    /// assert!(a.iter().all(|x| b.iter().all(|y| x.piece != y.piece)));
    /// ```
    pub fn set_me(&mut self, key: P) {
        self.me = Some((key, tag_of(&key)));
    }

    /// The tags of the fetchers in sight: this one first, then the peers
    /// that are not complete. Empty without a key of its own or with no
    /// other fetcher in sight.
    fn fellows(&self) -> Vec<u64> {
        let Some((me, tag)) = self.me else {
            return Vec::new();
        };
        let total = self.pieces.len();
        let mut out = vec![tag];
        out.extend(
            self.peers
                .iter()
                .flatten()
                .filter(|p| p.key != me && p.has.count() < total)
                .map(|p| p.tag),
        );
        if out.len() < 2 {
            out.clear();
        }
        out
    }

    /// Add a peer. A banned peer is refused (returns false), as is one
    /// already present.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// assert!(swarm.add_peer("a"));
    /// assert!(!swarm.add_peer("a")); // already present
    /// swarm.ban(&"b");
    /// assert!(!swarm.add_peer("b")); // banned
    /// ```
    pub fn add_peer(&mut self, key: P) -> bool {
        if self.banned.contains(&key) || self.index.contains_key(&key) {
            return false;
        }
        // Back: no more dials, until it delivers or is lost again.
        if let Some(r) = self.redial.get_mut(&key) {
            r.back = true;
        }
        let state = PeerState {
            key,
            has: Bits::new(self.pieces.len()),
            known: Bits::new(self.blobs.len()),
            flights: Vec::new(),
            rate: 0.0,
            rtt: Duration::ZERO,
            last_done: None,
            win_bytes: 0,
            win_busy: Duration::ZERO,
            floor: 0,
            bytes: 0,
            pieces: 0,
            failures: 0,
            tag: tag_of(&key),
            fetcher: false,
        };
        let slot = match self.peers.iter().position(Option::is_none) {
            Some(i) => {
                self.peers[i] = Some(state);
                i
            }
            None => {
                self.peers.push(Some(state));
                self.peers.len() - 1
            }
        };
        self.index.insert(key, slot as u32);
        self.generation += 1;
        true
    }

    /// Ban `key` for good (bad data, a broken protocol): it is removed,
    /// its requests return to the pool, and it is never added again.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("bad");
    /// let requested = swarm.poll_requests(&"bad", Duration::ZERO);
    /// swarm.ban(&"bad");
    /// // Its requests went back to the pool: a good peer gets them.
    /// swarm.add_peer("good");
    /// assert_eq!(swarm.poll_requests(&"good", Duration::ZERO).len(), requested.len());
    /// ```
    pub fn ban(&mut self, key: &P) {
        if !self.banned.contains(key) {
            self.banned.push(*key);
        }
        self.remove_peer(key);
    }

    /// Whether `key` was banned for bad data.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("bad");
    /// assert!(!swarm.is_banned(&"bad"));
    /// swarm.ban(&"bad");
    /// assert!(swarm.is_banned(&"bad"));
    /// assert_eq!(swarm.peers().count(), 0);
    /// ```
    pub fn is_banned(&self, key: &P) -> bool {
        self.banned.contains(key)
    }

    /// The peers present.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("b");
    /// swarm.add_peer("a");
    /// assert_eq!(swarm.peers().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn peers(&self) -> impl Iterator<Item = P> + '_ {
        self.index.keys().copied()
    }

    /// Record the peer's round-trip time, which sizes its pipeline.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("far");
    /// // From the connection's estimate (e.g. `Peer::rtt`): once its rate is
    /// // measured, a peer far away gets more requests in flight.
    /// swarm.set_rtt(&"far", Duration::from_millis(150));
    /// assert!(!swarm.poll_requests(&"far", Duration::ZERO).is_empty());
    /// ```
    pub fn set_rtt(&mut self, key: &P, rtt: Duration) {
        self.generation += 1;
        if let Some(p) = self.peer_mut(key) {
            p.rtt = rtt;
        }
    }

    /// The peer has these groups of `blob` (from a `Have`). Adds to what
    /// is known; also marks the blob as known for this peer.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("leecher");
    /// // Its `Have` says it holds the second piece (groups 16..32) only.
    /// let mut held = GroupSet::new();
    /// held.insert(16, 32);
    /// swarm.peer_has(&"leecher", 0, &held);
    /// let requests = swarm.poll_requests(&"leecher", Duration::ZERO);
    /// assert_eq!(requests.len(), 1);
    /// assert_eq!(requests[0].groups, 16..32);
    /// ```
    pub fn peer_has(&mut self, key: &P, blob: usize, groups: &GroupSet) {
        let Some(&slot) = self.index.get(key) else {
            return;
        };
        let Some(&(a, b)) = self.blobs.get(blob) else {
            return;
        };
        let Some(peer) = self.peers[slot as usize].as_mut() else {
            return;
        };
        peer.known.set(blob);
        // Only the pieces that start inside one of the ranges can be
        // covered: a `Have` of one piece costs one piece, not the blob.
        let of_blob = &mut self.pieces[a as usize..b as usize];
        let per = self.per_piece[blob].max(1);
        for &(start, end) in groups.ranges() {
            // Piece k starts at group k * per: the first to start at or
            // after `start`, found without a search.
            let from = start.div_ceil(per).min(of_blob.len() as u64) as usize;
            for (k, piece) in of_blob[from..].iter_mut().enumerate() {
                if piece.start >= end {
                    break;
                }
                let i = a as usize + from + k;
                if !peer.has.get(i) && groups.covers_range(piece.start, piece.end) {
                    peer.has.set(i);
                    piece.avail += 1;
                }
            }
        }
        // Once it said what it has of every blob: a seed that lists its
        // blobs one at a time is not taken for a fetcher on the way.
        if !peer.fetcher
            && (0..self.blobs.len()).all(|b| peer.known.get(b))
            && peer.has.count() < self.pieces.len()
        {
            peer.fetcher = true;
        }
    }

    /// The peer has all of `blob`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [
    /// #     BlobSpec { size: 1 << 20, present: GroupSet::new() },
    /// #     BlobSpec { size: 5_000, present: GroupSet::new() },
    /// # ];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("peer");
    /// swarm.peer_has_blob(&"peer", 1);
    /// swarm.peer_lacks(&"peer", 0);
    /// let requests = swarm.poll_requests(&"peer", Duration::ZERO);
    /// assert!(requests.iter().all(|r| r.blob == 1));
    /// ```
    pub fn peer_has_blob(&mut self, key: &P, blob: usize) {
        let mut all = GroupSet::new();
        all.insert(0, u64::MAX);
        self.peer_has(key, blob, &all);
    }

    /// The peer has everything.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [
    /// #     BlobSpec { size: 1 << 20, present: GroupSet::new() },
    /// #     BlobSpec { size: 5_000, present: GroupSet::new() },
    /// # ];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("seed");
    /// swarm.peer_has_all(&"seed");
    /// assert_eq!(swarm.peer_stats(&"seed").map(|s| s.useful), Some(5));
    /// ```
    pub fn peer_has_all(&mut self, key: &P) {
        for b in 0..self.blobs.len() {
            self.peer_has_blob(key, b);
        }
    }

    /// What the peer said of `blob` may be incomplete (a `Have` listing
    /// only its first ranges): pieces not known to be there may still be
    /// asked for.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("peer");
    /// let mut first = GroupSet::new();
    /// first.insert(0, 16);
    /// swarm.peer_has(&"peer", 0, &first); // a `Have` cut short at its range limit
    /// swarm.peer_may_have_more(&"peer", 0);
    /// // Pieces beyond what it listed may be asked for too.
    /// assert_eq!(swarm.poll_requests(&"peer", Duration::ZERO).len(), 4);
    /// ```
    pub fn peer_may_have_more(&mut self, key: &P, blob: usize) {
        if let Some(p) = self.peer_mut(key) {
            p.known.clear(blob);
        }
    }

    /// The peer said it has nothing of `blob` (so do not ask it).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("empty");
    /// assert!(swarm.can_progress()); // it might have something
    /// swarm.peer_lacks(&"empty", 0);
    /// assert!(!swarm.can_progress());
    /// assert!(swarm.poll_requests(&"empty", Duration::ZERO).is_empty());
    /// ```
    pub fn peer_lacks(&mut self, key: &P, blob: usize) {
        if let Some(p) = self.peer_mut(key)
            && blob < p.known.len
        {
            p.known.set(blob);
        }
    }

    /// Remove a peer (it disconnected, or the driver dropped it). Its
    /// requests return to the pool.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("gone");
    /// let lost = swarm.poll_requests(&"gone", Duration::ZERO);
    /// swarm.remove_peer(&"gone");
    /// assert_eq!(swarm.peers().count(), 0);
    /// // Not banned: it may come back, and its pieces are up for grabs.
    /// assert!(swarm.add_peer("other"));
    /// assert_eq!(swarm.poll_requests(&"other", Duration::ZERO).len(), lost.len());
    /// ```
    pub fn remove_peer(&mut self, key: &P) {
        self.generation += 1;
        self.forget_policy(key);
        let Some(slot) = self.index.remove(key) else {
            return;
        };
        let Some(peer) = self.peers[slot as usize].take() else {
            return;
        };
        for i in peer.has.ones() {
            self.pieces[i].avail = self.pieces[i].avail.saturating_sub(1);
        }
        for f in peer.flights {
            self.unown(f.piece, slot);
        }
    }

    fn peer_mut(&mut self, key: &P) -> Option<&mut PeerState<P>> {
        let slot = *self.index.get(key)?;
        self.peers[slot as usize].as_mut()
    }

    /// Drop `slot` from the owners of `piece`; back to the pool if it was
    /// the last.
    fn unown(&mut self, piece: u32, slot: u32) {
        let p = &mut self.pieces[piece as usize];
        p.owners.retain(|&o| o != slot);
        if p.owners.is_empty() && p.state == State::Requested {
            p.state = State::Missing;
            self.unrequested += 1;
            self.pool.set(piece as usize);
        }
        self.generation += 1;
    }

    /// What this peer knows and did.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("seed");
    /// let requests = swarm.poll_requests(&"seed", Duration::ZERO);
    /// let stats = swarm.peer_stats(&"seed").expect("present");
    /// assert_eq!(stats.in_flight, requests.len());
    /// assert_eq!(swarm.peer_stats(&"stranger"), None);
    /// ```
    pub fn peer_stats(&self, key: &P) -> Option<PeerStats> {
        let slot = *self.index.get(key)?;
        let p = self.peers[slot as usize].as_ref()?;
        let useful = p
            .has
            .ones()
            .filter(|&i| self.pieces[i].state != State::Done)
            .count() as u64;
        Some(PeerStats {
            rate: p.rate,
            bytes: p.bytes,
            pieces: p.pieces,
            in_flight: p.flights.len(),
            failures: p.failures,
            useful,
        })
    }

    /// Whether some present peer has, or may have, a piece still missing
    /// here. False means the download cannot proceed until a peer joins
    /// or announces more.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// assert!(!swarm.can_progress()); // nobody to ask
    /// swarm.add_peer("seed");
    /// assert!(swarm.can_progress());
    /// ```
    pub fn can_progress(&self) -> bool {
        if self.is_complete() {
            return true;
        }
        self.peers.iter().flatten().any(|peer| {
            !peer.flights.is_empty()
                || peer
                    .has
                    .words
                    .iter()
                    .zip(&self.undone.words)
                    .any(|(h, u)| h & u != 0)
                || self.blobs.iter().enumerate().any(|(b, &(x, y))| {
                    !peer.known.get(b) && (x..y).any(|i| self.undone.get(i as usize))
                })
        })
    }

    fn may_have(&self, peer: &PeerState<P>, i: usize) -> bool {
        peer.has.get(i) || !peer.known.get(self.pieces[i].blob as usize)
    }

    /// How many requests this peer should have in flight.
    fn pipeline(&self, peer: &PeerState<P>) -> usize {
        let c = &self.config;
        // Not `clamp`: it panics when min > max. The maximum wins, and a
        // peer always gets at least one request.
        let by_bytes = (c.max_pipeline_bytes / self.piece_bytes.max(1)) as usize;
        let bound = |n: usize| {
            n.max(c.min_pipeline)
                .min(c.max_pipeline)
                .min(by_bytes)
                .max(1)
        };
        // A complete source that is the only holder of something missing
        // here (a seed) gets at least as many requests as all other peers
        // together: where this download's own link is the bottleneck, it
        // shares out by requests in flight, and what only the seed has must
        // get through before it leaves. At most a second of its measured
        // pace, though: a seed that is its own bottleneck would only queue
        // them. (Not for a partial holder: in a 1,000-peer mesh every peer
        // briefly holds pieces its neighbours lack, and the extra requests
        // made the last one finish at 2.54x the ideal instead of 2.07x.)
        let sole = if peer.has.count() == self.pieces.len() && self.holds_alone(peer) {
            let others: usize = self
                .peers
                .iter()
                .flatten()
                .filter(|p| p.key != peer.key)
                .map(|p| p.flights.len())
                .sum();
            let pace = if peer.rate > 0.0 {
                (peer.rate / self.piece_bytes.max(1) as f64).ceil() as usize
            } else {
                c.initial_pipeline
            };
            (others + 1).min(pace.max(c.initial_pipeline))
        } else {
            0
        };
        if peer.rate <= 0.0 {
            return bound(c.initial_pipeline.max(sole));
        }
        let window = (2 * peer.rtt + c.pipeline_margin).as_secs_f64() * peer.rate;
        let piece = self.piece_bytes as f64;
        bound(((window / piece).ceil() as usize).max(peer.floor).max(sole))
    }

    /// Whether `peer` is the only known holder of a piece still to request.
    fn holds_alone(&self, peer: &PeerState<P>) -> bool {
        self.pool
            .words
            .iter()
            .zip(&peer.has.words)
            .enumerate()
            .any(|(w, (&pool, &has))| {
                let mut word = pool & has;
                while word != 0 {
                    let i = w * 64 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    if self.pieces[i].avail == 1 {
                        return true;
                    }
                }
                false
            })
    }

    /// When a request to `peer` should have been answered.
    fn due(&self, peer: &PeerState<P>, f: &Flight) -> Duration {
        if peer.rate <= 0.0 {
            return f.sent + self.config.initial_late;
        }
        let bytes = f.ahead + self.pieces[f.piece as usize].bytes;
        let pace = Duration::from_secs_f64(bytes as f64 / peer.rate);
        let late = (pace + peer.rtt) * self.config.late_factor;
        f.sent + late.max(self.config.min_steal_age)
    }

    /// The requests to send to `key` now: fills its pipeline with the
    /// rarest pieces it has, then steals late requests from slower peers,
    /// and in the endgame duplicates the oldest ones.
    ///
    /// ```
    /// use std::time::Duration;
    /// use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    ///
    /// let blob = BlobSpec { size: 16 << 20, present: Default::default() }; // 64 pieces
    /// let mut swarm = Swarm::new(&[blob], Config::default(), 7);
    /// swarm.add_peer("seed");
    /// let first = swarm.poll_requests(&"seed", Duration::ZERO);
    /// assert!(!first.is_empty());
    /// // The pipeline is full until something is answered.
    /// assert!(swarm.poll_requests(&"seed", Duration::ZERO).is_empty());
    /// swarm.piece_done(&"seed", first[0].piece, Duration::from_millis(10));
    /// assert!(!swarm.poll_requests(&"seed", Duration::from_millis(10)).is_empty());
    /// ```
    pub fn poll_requests(&mut self, key: &P, now: Duration) -> Vec<Request> {
        let Some(&slot) = self.index.get(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let Some(peer) = self.peers[slot as usize].as_ref() else {
            return out;
        };
        let want = self.pipeline(peer).saturating_sub(peer.flights.len());
        if want == 0 || self.is_complete() {
            return out;
        }
        let fresh = self.pick_rarest(slot, want);
        for i in fresh {
            self.assign(slot, i, now);
            out.push(self.request(i));
        }
        let room = want - out.len();
        // Before the endgame, a request is taken over only when it is late,
        // or when this peer would deliver it well before its peer will: a
        // peer with room and nothing fresh to give (everything it has is
        // asked of others) is then put to use. Skip the scan of every
        // request in flight while neither can be.
        let none_late = self.unrequested > 0
            && !self.may_move_here(slot)
            && self.late_floor().is_none_or(|t| now < t);
        if room > 0 && !none_late {
            for i in self.pick_stolen(slot, room, now) {
                self.assign(slot, i, now);
                out.push(self.request(i));
            }
        }
        out
    }

    fn request(&self, i: u32) -> Request {
        let p = &self.pieces[i as usize];
        Request {
            piece: PieceId(i),
            blob: p.blob as usize,
            groups: p.start..p.end,
        }
    }

    fn assign(&mut self, slot: u32, i: u32, now: Duration) {
        self.generation += 1;
        let piece = &mut self.pieces[i as usize];
        if piece.state == State::Missing {
            self.unrequested -= 1;
            self.pool.clear(i as usize);
        }
        piece.state = State::Requested;
        piece.owners.push(slot);
        let ahead = self.peers[slot as usize]
            .as_ref()
            .map_or(0, |p| self.queued_bytes(p));
        if let Some(peer) = self.peers[slot as usize].as_mut() {
            let announced = peer.has.get(i as usize);
            peer.flights.push(Flight {
                piece: i,
                sent: now,
                ahead,
                announced,
            });
        }
    }

    /// Up to `n` missing, unrequested pieces this peer has, rarest first,
    /// ties broken from a random starting point. A piece this peer is the
    /// only known holder of ranks first, ahead even of pieces nobody has
    /// announced (asked of a peer that said nothing, on the chance).
    fn pick_rarest(&mut self, slot: u32, n: usize) -> Vec<u32> {
        if self.unrequested == 0 {
            return Vec::new();
        }
        let Some(peer) = self.peers[slot as usize].as_ref() else {
            return Vec::new();
        };
        // Candidates as (rank << 32 | order, piece), from the pool's words:
        // a scan of a bit set, not of every piece.
        // Only where something is held by this peer alone (rarely, in a
        // large swarm), the fetchers in sight to split it with.
        let fellows = if self.holds_alone(peer) {
            self.fellows()
        } else {
            Vec::new()
        };
        let mut cands = std::mem::take(&mut self.scratch);
        cands.clear();
        let unknown = (0..self.blobs.len()).any(|b| !peer.known.get(b)).then(|| {
            let mut bits = Bits::new(self.pieces.len());
            for (b, &(x, y)) in self.blobs.iter().enumerate() {
                if !peer.known.get(b) {
                    (x..y).for_each(|i| bits.set(i as usize));
                }
            }
            bits
        });
        for (w, &pool) in self.pool.words.iter().enumerate() {
            let mine = peer.has.words[w] | unknown.as_ref().map_or(0, |u| u.words[w]);
            let mut word = pool & mine;
            while word != 0 {
                let i = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let avail = u64::from(self.pieces[i].avail);
                let sole = avail == 1 && peer.has.get(i);
                let (rank, order) = match (sole, fellows.is_empty()) {
                    // Its only holder: first of all.
                    (true, true) => (0, 0),
                    // ... and fetchers in sight to split it with: what
                    // this one claims, then what it is second in line for,
                    // then the rest.
                    (true, false) => claims(&fellows, i),
                    (false, true) => (avail + 1, 0),
                    (false, false) => (avail + 3, 0),
                };
                cands.push((rank << 32 | order, i as u32));
            }
        }
        cands.sort_unstable();
        // Within a level, a uniformly random choice: fetchers that start
        // together then rarely ask a seed for the same piece (a contiguous
        // run from a random point collides at the other runs' frontiers).
        // Claimed pieces are taken in their order instead.
        let mut out = Vec::with_capacity(n);
        // With a single peer there is no one here to differ from: take the
        // pieces in order from this download's random start, so the file
        // is written sequentially (random writes cost the file system and
        // the page cache) while fetchers that all see just the seed so far
        // still start at different places.
        let single = self.index.len() == 1;
        let start = self.start;
        let mut level: Vec<u32> = Vec::new();
        let mut rest = &cands[..];
        while let Some(&(first, _)) = rest.first() {
            let rank = first >> 32;
            let len = rest.partition_point(|&(c, _)| c >> 32 == rank);
            let (this, more) = rest.split_at(len);
            rest = more;
            if !fellows.is_empty() && rank < 2 {
                out.extend(this.iter().take(n - out.len()).map(|&(_, i)| i));
                if out.len() == n {
                    break;
                }
                continue;
            }
            level.clear();
            level.extend(this.iter().map(|&(_, i)| i));
            if single {
                let from = level.partition_point(|&i| (i as usize) < start);
                level.rotate_left(from);
                level.truncate(n - out.len());
                level.reverse();
            }
            while out.len() < n && !level.is_empty() {
                let k = if single {
                    level.len() - 1
                } else {
                    self.next_random() as usize % level.len()
                };
                out.push(level.swap_remove(k));
            }
            if out.len() == n {
                break;
            }
        }
        self.scratch = cands;
        out
    }

    /// The earliest time any request in flight turns late, cached until
    /// what it depends on changes.
    fn late_floor(&mut self) -> Option<Duration> {
        if let Some((g, t)) = self.late_floor
            && g == self.generation
        {
            return t;
        }
        let this = &*self;
        let t = this
            .peers
            .iter()
            .flatten()
            .flat_map(|p| p.flights.iter().map(move |f| this.due(p, f)))
            .min();
        self.late_floor = Some((self.generation, t));
        t
    }

    /// Whether requests in flight elsewhere may move to this peer for being
    /// far sooner here: its pace is known, and it is not a seed (a seed's
    /// upload goes to what only it has, not to copies others hold).
    fn may_move_here(&self, slot: u32) -> bool {
        self.peers[slot as usize]
            .as_ref()
            .is_some_and(|p| self.config.move_gain > 0 && p.rate > 0.0 && p.fetcher)
    }

    /// Bytes of the requests in flight to `peer`.
    fn queued_bytes(&self, peer: &PeerState<P>) -> u64 {
        peer.flights
            .iter()
            .map(|f| self.pieces[f.piece as usize].bytes)
            .sum()
    }

    /// When a request in flight to `peer` is expected to be answered: the
    /// bytes queued there ahead of it and its own, at its pace, plus a
    /// round trip.
    fn expected(&self, peer: &PeerState<P>, sent: Duration, bytes: u64) -> Duration {
        if peer.rate <= 0.0 {
            return Duration::MAX;
        }
        let pace = Duration::try_from_secs_f64(bytes as f64 / peer.rate).unwrap_or(Duration::MAX);
        sent.saturating_add(pace).saturating_add(peer.rtt)
    }

    /// Up to `n` pieces in flight elsewhere that this peer may take over:
    /// late ones always, and in the endgame (nothing left unrequested) the
    /// oldest. Only from peers that are slower, or late. Then, for a
    /// fetcher, those it would deliver [`Config::move_gain`] times sooner
    /// than any peer they are asked of (as a third owner even), the latest
    /// first.
    fn pick_stolen(&self, slot: u32, n: usize, now: Duration) -> Vec<u32> {
        let Some(me) = self.peers[slot as usize].as_ref() else {
            return Vec::new();
        };
        let endgame = self.unrequested == 0;
        let movable = self.may_move_here(slot);
        // (sent, piece) of every request that may be duplicated, and
        // (piece, expected answer) of every request a faster peer may take
        // over, one more than `max_duplicates` at most.
        let mut candidates: Vec<(Duration, u32)> = Vec::new();
        let mut expect: Vec<(u32, Duration)> = Vec::new();
        for (s, other) in self.peers.iter().enumerate() {
            let Some(other) = other else { continue };
            if s == slot as usize {
                continue;
            }
            // Worked out only where it is needed: this loop is most of the
            // picker's time in a 1,000-peer simulation.
            let oldest = movable
                .then(|| other.flights.iter().map(|f| f.sent).min())
                .flatten();
            for f in &other.flights {
                let piece = &self.pieces[f.piece as usize];
                if piece.state != State::Requested
                    || piece.owners.len() > self.config.max_duplicates
                    || piece.owners.contains(&slot)
                    || !self.may_have(me, f.piece as usize)
                {
                    continue;
                }
                if piece.owners.len() < self.config.max_duplicates {
                    // Late, and at a peer clearly slower than this one:
                    // when all peers slow down together (a shared download
                    // cap), re-asking only spends a seed's upload on
                    // pieces that exist elsewhere.
                    let late = now >= self.due(other, f)
                        && (other.rate <= 0.0 || me.rate > 2.0 * other.rate);
                    // In the endgame, help a peer that is no faster than
                    // us, or one whose request is old enough to be worth
                    // racing.
                    let helps = endgame
                        && (other.rate <= me.rate || now >= f.sent + self.config.min_steal_age);
                    if late || helps {
                        candidates.push((f.sent, f.piece));
                        continue;
                    }
                }
                // Not from a peer whose pace is not measured yet (that is
                // left to `initial_late`), nor its oldest request: that one
                // is on the way, and most of it may be here soon. Nor from
                // a seed: its upload is what the whole swarm waits on, and
                // a response cancelled part-sent wastes it. Each counts as
                // an answer expected now, so the piece stays.
                if movable {
                    let there = if other.rate > 0.0 && other.fetcher && Some(f.sent) != oldest {
                        self.expected(other, f.sent, f.ahead + piece.bytes)
                    } else {
                        now
                    };
                    expect.push((f.piece, there));
                }
            }
        }
        // A piece already requested from two peers is listed twice: keep
        // its oldest request only (dedup removes adjacent duplicates
        // only), then take the oldest first.
        candidates.sort_unstable_by_key(|&(sent, piece)| (piece, sent));
        candidates.dedup_by_key(|c| c.1);
        candidates.sort_unstable();
        let mut out: Vec<u32> = candidates.into_iter().take(n).map(|(_, i)| i).collect();
        if out.len() == n || expect.is_empty() {
            return out;
        }
        // Each piece by its soonest expected answer; those this peer would
        // answer `move_gain` times sooner, the latest first.
        let queued = self.queued_bytes(me);
        expect.sort_unstable();
        expect.dedup_by_key(|e| e.0);
        let mut moves: Vec<(Duration, u32)> = expect
            .into_iter()
            .filter(|&(i, there)| {
                let here = self.expected(me, now, queued + self.pieces[i as usize].bytes);
                !out.contains(&i)
                    && there.saturating_sub(now)
                        > (here
                            .saturating_sub(now)
                            .saturating_mul(self.config.move_gain))
                        .max(self.config.min_steal_age)
            })
            .map(|(i, there)| (there, i))
            .collect();
        moves.sort_unstable_by(|a, b| b.cmp(a));
        out.extend(moves.into_iter().take(n - out.len()).map(|(_, i)| i));
        out
    }

    /// `key` delivered `piece` verified. Returns the other peers it was
    /// also requested from, whose requests the driver should cancel (and
    /// report back as [`Failure::Cancelled`], or not at all).
    ///
    /// ```
    /// use swarm_engine::swarm::PieceId;
    ///
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// // A blob of one piece, requested from A; in the endgame, B asks too.
    /// let blob = BlobSpec { size: 100_000, present: GroupSet::new() };
    /// let mut swarm = Swarm::new(&[blob], Config::default(), 7);
    /// swarm.add_peer("a");
    /// swarm.add_peer("b");
    /// assert_eq!(swarm.poll_requests(&"a", Duration::ZERO).len(), 1);
    /// assert_eq!(swarm.poll_requests(&"b", Duration::ZERO).len(), 1);
    /// // A answers first: cancel the request to B.
    /// let cancel = swarm.piece_done(&"a", PieceId(0), Duration::from_millis(30));
    /// assert_eq!(cancel, ["b"]);
    /// assert!(swarm.is_complete());
    /// ```
    pub fn piece_done(&mut self, key: &P, piece: PieceId, now: Duration) -> Vec<P> {
        self.generation += 1;
        // Delivering ends a run of slow requests, and a lost peer's clock.
        self.slow.remove(key);
        self.redial.remove(key);
        let Some(&slot) = self.index.get(key) else {
            // Delivered by a peer since removed: still a good piece.
            return self.complete(piece, None);
        };
        let bytes = self.pieces.get(piece.0 as usize).map_or(0, |p| p.bytes);
        if let Some(peer) = self.peers[slot as usize].as_mut()
            && let Some(pos) = peer.flights.iter().position(|f| f.piece == piece.0)
        {
            // Throughput is bytes over the time the peer had requests in
            // flight: since the previous completion, or since the oldest
            // request now in flight if it was idle in between. Requests
            // run in parallel and often finish together, so a per-piece
            // interval would be noise; samples cover RATE_WINDOW at least.
            let earliest = peer.flights.iter().map(|f| f.sent).min().unwrap_or(now);
            peer.flights.remove(pos);
            let began = peer.last_done.map_or(earliest, |d| d.max(earliest));
            peer.win_busy += now.saturating_sub(began);
            peer.win_bytes += bytes;
            // No estimate from less: a capped peer's first piece comes
            // out of its token bucket's burst at link speed.
            if peer.win_busy >= RATE_WINDOW {
                let secs = peer.win_busy.as_secs_f64().max(1e-3);
                let sample = peer.win_bytes as f64 / secs;
                // While each sample is well above the last, the pipeline
                // is what limits the rate: double it (slow start) rather
                // than wait for the average to catch up.
                let climbing = peer.rate > 0.0 && sample > 1.5 * peer.rate;
                peer.floor = if climbing {
                    2 * (peer.flights.len() + 1)
                } else {
                    0
                };
                peer.rate = if peer.rate <= 0.0 || climbing {
                    sample
                } else {
                    0.5 * peer.rate + 0.5 * sample
                };
                peer.win_bytes = 0;
                peer.win_busy = Duration::ZERO;
            }
            peer.last_done = Some(now);
            peer.bytes += bytes;
            peer.pieces += 1;
        }
        self.complete(piece, Some(slot))
    }

    fn complete(&mut self, piece: PieceId, by: Option<u32>) -> Vec<P> {
        let Some(p) = self.pieces.get_mut(piece.0 as usize) else {
            return Vec::new();
        };
        match p.state {
            State::Done => return Vec::new(),
            State::Missing => {
                self.unrequested -= 1;
                self.pool.clear(piece.0 as usize);
            }
            State::Requested => {}
        }
        self.generation += 1;
        p.state = State::Done;
        self.undone.clear(piece.0 as usize);
        self.done += 1;
        self.missing_bytes -= p.bytes;
        let others: Vec<u32> = p.owners.drain(..).filter(|&o| Some(o) != by).collect();
        let mut cancel = Vec::new();
        for o in others {
            if let Some(peer) = self.peers[o as usize].as_mut() {
                peer.flights.retain(|f| f.piece != piece.0);
                cancel.push(peer.key);
            }
        }
        cancel
    }

    /// A request for `piece` to `key` failed.
    ///
    /// ```
    /// use swarm_engine::swarm::Failure;
    ///
    /// # use std::time::Duration;
    /// # use swarm_engine::store::GroupSet;
    /// # use swarm_engine::swarm::{BlobSpec, Config, Swarm};
    /// # let blobs = [BlobSpec { size: 1 << 20, present: GroupSet::new() }];
    /// # let mut swarm: Swarm<&str> = Swarm::new(&blobs, Config::default(), 7);
    /// swarm.add_peer("a");
    /// let r = swarm.poll_requests(&"a", Duration::ZERO);
    /// // A says it does not have it after all: the piece goes back to the pool,
    /// // A stays, and counts one failure.
    /// swarm.piece_failed(&"a", r[0].piece, Failure::NotHeld);
    /// assert_eq!(swarm.peer_stats(&"a").map(|s| s.failures), Some(1));
    /// swarm.add_peer("b");
    /// assert!(swarm.poll_requests(&"b", Duration::ZERO).iter().any(|x| x.piece == r[0].piece));
    /// ```
    pub fn piece_failed(&mut self, key: &P, piece: PieceId, why: Failure) {
        self.generation += 1;
        let Some(&slot) = self.index.get(key) else {
            return;
        };
        match why {
            Failure::BadData => self.ban(key),
            Failure::Lost => self.remove_peer(key),
            Failure::NotHeld | Failure::Cancelled | Failure::Slow => {
                let Some(peer) = self.peers[slot as usize].as_mut() else {
                    return;
                };
                let flight = peer.flights.iter().find(|f| f.piece == piece.0).cloned();
                peer.flights.retain(|f| f.piece != piece.0);
                let was_flying = flight.is_some();
                let i = piece.0 as usize;
                if why == Failure::Slow {
                    peer.failures += 1;
                }
                if why == Failure::NotHeld && i < self.pieces.len() {
                    peer.failures += 1;
                    // Do not ask it on the chance it has this blob again:
                    // wait for it to say so.
                    let blob = self.pieces[i].blob as usize;
                    peer.known.set(blob);
                    // It said it had the piece and then did not (restarted,
                    // collected it): forget it. A piece asked for on the
                    // chance keeps any announcement that arrived since: the
                    // refusal may predate it.
                    if flight.is_some_and(|f| f.announced) && peer.has.get(i) {
                        peer.has.clear(i);
                        self.pieces[i].avail = self.pieces[i].avail.saturating_sub(1);
                    }
                }
                if was_flying {
                    self.unown(piece.0, slot);
                }
                if why == Failure::Slow {
                    self.strike(key);
                }
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A fixed-size bit set.
/// splitmix64's finaliser.
fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a key, from its `Debug` text (a node id prints
/// as its hex): the same in every process that sees the key.
fn tag_of<P: fmt::Debug>(key: &P) -> u64 {
    let text = format!("{key:?}");
    // FNV-1a, then splitmix's finaliser.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(h)
}

/// The score of `piece` for the fetcher tagged `tag` (rendezvous hashing):
/// 32 bits, so that it fits beside a rank in a sort key.
fn score(tag: u64, piece: usize) -> u64 {
    splitmix(tag ^ (piece as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 32
}

/// Where `piece`, held by one source only, ranks for the first of
/// `fellows` (this fetcher), as (rank, order within the rank): rank 0 if
/// it claims it (the highest score), ordered best score first; rank 1 if
/// it is second in line, ordered by the claimant's score, lowest first
/// (the end the claimant reaches last); else rank 2, by index. Orders of
/// ranks 0 and 1 are scores, not indices: a candidate keeps its index
/// beside them (see `Swarm::pick_rarest`).
fn claims(fellows: &[u64], piece: usize) -> (u64, u64) {
    let mut best = (0u64, usize::MAX);
    let mut second = (0u64, usize::MAX);
    for (j, &t) in fellows.iter().enumerate() {
        let sc = score(t, piece);
        if best.1 == usize::MAX || sc > best.0 {
            second = best;
            best = (sc, j);
        } else if second.1 == usize::MAX || sc > second.0 {
            second = (sc, j);
        }
    }
    match (best.1, second.1) {
        (0, _) => (0, u64::from(u32::MAX) - best.0),
        (_, 0) => (1, best.0),
        _ => (2, piece as u64),
    }
}

#[derive(Debug, Clone)]
struct Bits {
    words: Vec<u64>,
    len: usize,
    /// Bits set (the picker asks often, for every peer).
    ones: usize,
}

impl Bits {
    fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            len,
            ones: 0,
        }
    }

    fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize) {
        if i < self.len && !self.get(i) {
            self.words[i / 64] |= 1 << (i % 64);
            self.ones += 1;
        }
    }

    fn clear(&mut self, i: usize) {
        if self.get(i) {
            self.words[i / 64] &= !(1 << (i % 64));
            self.ones -= 1;
        }
    }

    fn count(&self) -> usize {
        self.ones
    }

    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut word = word;
            std::iter::from_fn(move || {
                if word == 0 {
                    return None;
                }
                let b = word.trailing_zeros() as usize;
                word &= word - 1;
                Some(w * 64 + b)
            })
        })
    }
}
