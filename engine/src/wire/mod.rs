//! Protocol v1 messages, their encoding, limits and error codes.
//!
//! Pure: no I/O. `wire-spec/wire.md` is the normative description; section
//! numbers below refer to it. Every decoder bounds its input before it
//! allocates, and never panics on any byte string.

mod ranges;

use serde::{Deserialize, Serialize};

pub use self::ranges::{RangeError, WireRanges};
use crate::content::Hash;

/// The ALPN protocol identifier of v1 (§1).
///
/// ```
/// assert_eq!(swarm_engine::wire::ALPN, b"swarm/1");
/// ```
pub const ALPN: &[u8] = b"swarm/1";
/// The highest protocol version this build speaks (§3.1). Version 2 adds
/// pushed addresses: `AskPeers` subscribes, and `Peers` may follow on the
/// control stream (§3.7). Version 3 adds release gossip: `Follow` and
/// `Release` on the control stream (§3.9, §3.10).
///
/// ```
/// use swarm_engine::wire::{Hello, MIN_VERSION, Message, VERSION};
///
/// let hello = Message::Hello(Hello {
///     min_version: MIN_VERSION,
///     max_version: VERSION,
///     agent: "my-app/0.1".into(),
/// });
/// assert!(matches!(Message::decode_frame(&hello.encode())?, Some((Message::Hello(_), _))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const VERSION: u16 = 3;
/// The lowest protocol version this build still speaks (§3.1).
pub const MIN_VERSION: u16 = 1;
/// First version in which `Peers` may be pushed on the control stream.
pub const VERSION_PUSH: u16 = 2;
/// First version with release gossip, `Follow` and `Release` (§3.9, §3.10).
pub const VERSION_GOSSIP: u16 = 3;
/// Most subjects one `Follow` lists (§3.9).
pub const MAX_FOLLOWS: usize = 64;
/// Highest hop count a `Release` may carry (§3.10): a receiver forwards
/// with one less, and never past zero.
pub const MAX_HOPS: u8 = 12;
/// Longest name in a `Follow` subject (release.md's name limit).
pub const MAX_SUBJECT_NAME: usize = 64;
/// Longest channel in a `Follow` subject (release.md's channel limit).
pub const MAX_SUBJECT_CHANNEL: usize = 32;

/// The version two sides speak (§3.1): the lower of the two highest,
/// if both speak it; `None` when the ranges do not overlap.
///
/// ```
/// use swarm_engine::wire::{Hello, negotiate};
///
/// let hello = |min, max| Hello { min_version: min, max_version: max, agent: String::new() };
/// assert_eq!(negotiate(&hello(1, 2), &hello(1, 1)), Some(1));
/// assert_eq!(negotiate(&hello(1, 2), &hello(1, 5)), Some(2));
/// assert_eq!(negotiate(&hello(1, 2), &hello(3, 4)), None);
/// ```
pub fn negotiate(ours: &Hello, theirs: &Hello) -> Option<u16> {
    let v = ours.max_version.min(theirs.max_version);
    (v >= ours.min_version.max(theirs.min_version)).then_some(v)
}

/// Largest message body, in bytes (§2).
///
/// ```
/// use swarm_engine::wire::{MAX_MESSAGE, Message, WireError};
///
/// let body = vec![0; MAX_MESSAGE + 1];
/// assert_eq!(
///     Message::decode_body(&body),
///     Err(WireError::TooLarge(MAX_MESSAGE as u64 + 1))
/// );
/// ```
pub const MAX_MESSAGE: usize = 32 * 1024;
/// Most ranges in a `Get` (§3.3).
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::wire::{Get, MAX_GET_RANGES, Message, RangeError, WireError, WireRanges};
///
/// let boundaries = (0..2 * (MAX_GET_RANGES as u64 + 1)).collect();
/// let get = Message::Get(Get {
///     hash: Hash::of(b"blob"),
///     ranges: WireRanges::from_boundaries(boundaries),
/// });
/// let err = Message::decode_frame(&get.encode()).unwrap_err();
/// assert!(matches!(err, WireError::Ranges(RangeError::TooMany { max: MAX_GET_RANGES, .. })));
/// ```
pub const MAX_GET_RANGES: usize = 256;
/// Most ranges in a `Have` (§3.2).
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::wire::{Have, MAX_HAVE_RANGES, Message, WireRanges};
///
/// // Every other group, as many ranges as a `Have` may carry.
/// let boundaries = (0..2 * MAX_HAVE_RANGES as u64).map(|i| 2 * i - i % 2).collect();
/// let have = Message::Have(Have {
///     hash: Hash::of(b"blob"),
///     size: 1 << 30,
///     groups: WireRanges::from_boundaries(boundaries),
/// });
/// assert!(Message::decode_frame(&have.encode())?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_HAVE_RANGES: usize = 1024;
/// Longest agent string in a `Hello` (§3.1).
///
/// ```
/// use swarm_engine::wire::{Hello, MAX_AGENT, Message, WireError};
///
/// let hello = Message::Hello(Hello {
///     min_version: 1,
///     max_version: 1,
///     agent: "x".repeat(MAX_AGENT + 1),
/// });
/// assert!(matches!(
///     Message::decode_frame(&hello.encode()),
///     Err(WireError::TextTooLong { what: "agent", .. })
/// ));
/// ```
pub const MAX_AGENT: usize = 64;
/// Longest message text in an `Error` (§3.5).
///
/// ```
/// use swarm_engine::wire::{ErrorCode, ErrorMsg, MAX_ERROR_TEXT, Message, WireError};
///
/// let error = Message::Error(ErrorMsg {
///     code: ErrorCode::Internal,
///     text: "x".repeat(MAX_ERROR_TEXT + 1),
/// });
/// assert!(matches!(
///     Message::decode_frame(&error.encode()),
///     Err(WireError::TextTooLong { what: "error text", .. })
/// ));
/// ```
pub const MAX_ERROR_TEXT: usize = 256;
/// Most addresses in a `Peers` (§3.8).
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::wire::{MAX_PEERS, Message, Peers};
///
/// let addrs = (0..=MAX_PEERS as u16).map(|p| ([127, 0, 0, 1], 1000 + p).into()).collect();
/// let peers = Message::Peers(Peers { hash: Hash::of(b"root"), addrs });
/// assert!(Message::decode_frame(&peers.encode()).is_err());
/// ```
pub const MAX_PEERS: usize = 50;
/// Addresses pushed to one connection for one hash, at most (version 2,
/// §3.7): as many as one `Peers` answer holds. A fetcher needs a handful of
/// peers, not the fleet; past this it asks again if it wants more.
pub const MAX_PUSHED: usize = MAX_PEERS;
/// Hashes one connection is told new peers of, at most (§3.7); `AskPeers`
/// for more is answered without pushes.
pub const MAX_PEER_SUBS: usize = 16;
/// Hashes one connection is subscribed to by `Ask`, at most (§3.6): a
/// release of this many files at once. `Ask` for more is answered without
/// subscribing, so a peer cannot make a server keep an unbounded list.
pub const MAX_SUBS: usize = 4096;

/// Every message of protocol v1 (§3). The postcard enum tag is the
/// variant's index, so variants are only ever appended.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::wire::{Ask, Message};
///
/// let ask = Message::Ask(Ask { hash: Hash::of(b"blob") });
/// let frame = ask.encode();
/// assert_eq!(Message::decode_frame(&frame)?, Some((ask, frame.len())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message on the control stream, both ways (§3.1).
    Hello(Hello),
    /// What the sender holds of a blob (§3.2).
    Have(Have),
    /// Request for ranges of a blob (§3.3).
    Get(Get),
    /// Response header to `Get`: the blob's size; the Bao encoding follows (§3.4).
    Found(Found),
    /// A request or the connection failed (§3.5).
    Error(ErrorMsg),
    /// Ask what the peer holds of a blob; answered by `Have` or `Error` (§3.6).
    Ask(Ask),
    /// Ask for other peers of a blob or root (peer exchange, §3.7).
    AskPeers(Ask),
    /// Peers known to have or want a blob or root (§3.8).
    Peers(Peers),
    /// Version 3: the releases the sender wants to hear of (§3.9).
    Follow(Follow),
    /// Version 3: a signed release the sender accepted (§3.10).
    Release(ReleaseMsg),
}

/// §3.9: one (publisher, name, channel) a peer follows.
///
/// ```
/// use swarm_engine::wire::{Follow, Message, Subject};
///
/// let follow = Message::Follow(Follow {
///     subjects: vec![Subject { publisher: [7; 32], name: "app".into(), channel: "stable".into() }],
/// });
/// assert_eq!(Message::decode_frame(&follow.encode())?.map(|(m, _)| m), Some(follow));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    /// The publisher's key: the signing key of a format 1 release, the
    /// pointer key of a format 2 one (release.md).
    pub publisher: [u8; 32],
    /// The release name.
    pub name: String,
    /// The channel.
    pub channel: String,
}

/// §3.9: everything the sender follows; it replaces the previous list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follow {
    /// At most [`MAX_FOLLOWS`], no two the same.
    pub subjects: Vec<Subject>,
}

/// §3.10: a signed release, as its binary record (release.md §2, or §8
/// with the roots it carries), and how many more hops it may travel.
///
/// ```
/// use swarm_engine::wire::{MAX_HOPS, Message, ReleaseMsg};
///
/// let msg = Message::Release(ReleaseMsg { hops: MAX_HOPS + 1, record: vec![1; 100] });
/// // A hop count over the limit is malformed.
/// assert!(Message::decode_frame(&msg.encode()).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseMsg {
    /// Hops left: the receiver forwards it with one less, not at zero.
    pub hops: u8,
    /// The signed record, exactly as `SignedRelease::to_bytes` makes it.
    pub record: Vec<u8>,
}

/// §3.8
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::wire::{Message, Peers};
///
/// let peers = Message::Peers(Peers {
///     hash: Hash::of(b"root"),
///     addrs: vec!["192.0.2.7:7411".parse()?],
/// });
/// assert_eq!(Message::decode_frame(&peers.encode())?.map(|(m, _)| m), Some(peers));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peers {
    /// The blob or root.
    pub hash: Hash,
    /// Their QUIC addresses, at most [`MAX_PEERS`].
    pub addrs: Vec<std::net::SocketAddr>,
}

/// §3.1
///
/// ```
/// use swarm_engine::wire::{Hello, MIN_VERSION, Message, VERSION, negotiate};
///
/// let ours = Hello { min_version: MIN_VERSION, max_version: VERSION, agent: "a/1".into() };
/// let theirs = Hello { min_version: 1, max_version: 3, agent: "b/3".into() };
/// // A common version exists when the ranges overlap.
/// assert_eq!(negotiate(&ours, &theirs), Some(VERSION));
/// let frame = Message::Hello(ours.clone()).encode();
/// assert_eq!(Message::decode_frame(&frame)?.map(|(m, _)| m), Some(Message::Hello(ours)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Lowest protocol version the sender speaks.
    pub min_version: u16,
    /// Highest protocol version the sender speaks.
    pub max_version: u16,
    /// Free-form software name and version, at most 64 bytes.
    pub agent: String,
}

/// §3.2
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::wire::{Have, Message, WireRanges};
///
/// // Groups 0..4 and 10.. of a 1 MiB blob.
/// let have = Have {
///     hash: Hash::of(b"blob"),
///     size: 1 << 20,
///     groups: WireRanges::from_boundaries(vec![0, 4, 10]),
/// };
/// assert_eq!(have.groups.len(), 2);
/// let frame = Message::Have(have.clone()).encode();
/// assert_eq!(Message::decode_frame(&frame)?.map(|(m, _)| m), Some(Message::Have(have)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    /// The blob.
    pub hash: Hash,
    /// Its size in bytes.
    pub size: u64,
    /// The 16 KiB groups the sender holds verified.
    pub groups: WireRanges,
}

/// §3.3
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::group_ranges;
/// use swarm_engine::wire::{Get, Message, WireRanges};
///
/// // Groups 2..4 of a blob are chunks 32..64.
/// let get = Get {
///     hash: Hash::of(b"blob"),
///     ranges: WireRanges::from_chunk_ranges(&group_ranges(2, 4)),
/// };
/// assert_eq!(get.ranges.boundaries(), &[32, 64]);
/// let frame = Message::Get(get.clone()).encode();
/// assert_eq!(Message::decode_frame(&frame)?.map(|(m, _)| m), Some(Message::Get(get)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// The blob.
    pub hash: Hash,
    /// Chunk (1 KiB) ranges wanted; groups intersecting them are sent whole.
    pub ranges: WireRanges,
}

/// §3.4
///
/// ```
/// use swarm_engine::wire::{Found, Message};
///
/// let frame = Message::Found(Found { size: 100_000 }).encode();
/// let (msg, used) = Message::decode_frame(&frame)?.expect("a whole frame");
/// assert_eq!(msg, Message::Found(Found { size: 100_000 }));
/// // The Bao encoding of the ranges follows the frame on the stream.
/// assert_eq!(used, frame.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// The blob's size in bytes, as the sender claims it. Verified by the
    /// receiver through the Bao encoding of the last chunk.
    pub size: u64,
}

/// §3.5
///
/// ```
/// use swarm_engine::wire::{ErrorCode, ErrorMsg, Message};
///
/// let msg = Message::Error(ErrorMsg { code: ErrorCode::NotFound, text: "not held".into() });
/// let frame = msg.encode();
/// assert_eq!(Message::decode_frame(&frame)?.map(|(m, _)| m), Some(msg));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMsg {
    /// What went wrong.
    pub code: ErrorCode,
    /// Human-readable detail, at most 256 bytes.
    pub text: String,
}

/// §3.6
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::wire::{Ask, Message};
///
/// let hash = Hash::of(b"blob");
/// // `Ask` asks what a peer holds; `AskPeers` whom it knows.
/// for msg in [Message::Ask(Ask { hash }), Message::AskPeers(Ask { hash })] {
///     let frame = msg.encode();
///     assert_eq!(Message::decode_frame(&frame)?.map(|(m, _)| m), Some(msg));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// The blob.
    pub hash: Hash,
}

/// Error codes, used in `Error` messages, stream resets and connection
/// closes (§4). Unknown codes decode as [`ErrorCode::Unknown`].
///
/// ```
/// use swarm_engine::wire::ErrorCode;
///
/// assert_eq!(ErrorCode::NotFound.to_u16(), 3);
/// assert_eq!(ErrorCode::NotFound.to_string(), "not found");
/// // A code from a newer peer survives the round trip.
/// assert_eq!(ErrorCode::from_u16(999), ErrorCode::Unknown(999));
/// assert_eq!(ErrorCode::Unknown(999).to_u16(), 999);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Clean close, nothing wrong.
    Ok,
    /// A malformed or unexpected message.
    ProtocolViolation,
    /// No common protocol version.
    UnsupportedVersion,
    /// The blob is not held.
    NotFound,
    /// Part of the requested ranges is not held.
    Incomplete,
    /// A message over [`MAX_MESSAGE`].
    TooLarge,
    /// Too many ranges in one request.
    TooManyRanges,
    /// The sender failed internally (e.g. its stored data is corrupt).
    Internal,
    /// A peer took too long.
    Timeout,
    /// Too many concurrent requests or connections.
    Busy,
    /// The receiver found the data does not verify.
    BadData,
    /// A code this build does not know.
    Unknown(u16),
}

impl ErrorCode {
    /// The numeric code (§4).
    ///
    /// ```
    /// use swarm_engine::wire::ErrorCode;
    ///
    /// assert_eq!(ErrorCode::Ok.to_u16(), 0);
    /// assert_eq!(ErrorCode::Busy.to_u16(), 9);
    /// ```
    pub fn to_u16(self) -> u16 {
        match self {
            Self::Ok => 0,
            Self::ProtocolViolation => 1,
            Self::UnsupportedVersion => 2,
            Self::NotFound => 3,
            Self::Incomplete => 4,
            Self::TooLarge => 5,
            Self::TooManyRanges => 6,
            Self::Internal => 7,
            Self::Timeout => 8,
            Self::Busy => 9,
            Self::BadData => 10,
            Self::Unknown(c) => c,
        }
    }

    /// From the numeric code.
    ///
    /// ```
    /// use swarm_engine::wire::ErrorCode;
    ///
    /// for code in [ErrorCode::Ok, ErrorCode::Timeout, ErrorCode::BadData] {
    ///     assert_eq!(ErrorCode::from_u16(code.to_u16()), code);
    /// }
    /// assert_eq!(ErrorCode::from_u16(40_000), ErrorCode::Unknown(40_000));
    /// ```
    pub fn from_u16(c: u16) -> Self {
        match c {
            0 => Self::Ok,
            1 => Self::ProtocolViolation,
            2 => Self::UnsupportedVersion,
            3 => Self::NotFound,
            4 => Self::Incomplete,
            5 => Self::TooLarge,
            6 => Self::TooManyRanges,
            7 => Self::Internal,
            8 => Self::Timeout,
            9 => Self::Busy,
            10 => Self::BadData,
            c => Self::Unknown(c),
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_u16().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u16::deserialize(d).map(Self::from_u16)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Ok => "ok",
            Self::ProtocolViolation => "protocol violation",
            Self::UnsupportedVersion => "no common protocol version",
            Self::NotFound => "not found",
            Self::Incomplete => "ranges not held",
            Self::TooLarge => "message too large",
            Self::TooManyRanges => "too many ranges",
            Self::Internal => "internal error",
            Self::Timeout => "timed out",
            Self::Busy => "busy",
            Self::BadData => "data did not verify",
            Self::Unknown(c) => return write!(f, "unknown error code {c}"),
        };
        f.write_str(s)
    }
}

/// A message that cannot be decoded or breaks a limit (§2, §3).
///
/// ```
/// use swarm_engine::wire::{ErrorCode, Message, WireError};
///
/// // A frame whose body is not a message: tag 100 is no variant.
/// let err = Message::decode_frame(&[1, 100]).unwrap_err();
/// assert!(matches!(err, WireError::Malformed(_)));
/// assert_eq!(err.code(), ErrorCode::ProtocolViolation);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length prefix is over [`MAX_MESSAGE`].
    #[error("message of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLarge(u64),
    /// The length prefix is not a valid varint.
    #[error("malformed length prefix")]
    BadLength,
    /// The body does not decode as a v1 message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Bytes left over after the message inside its frame.
    #[error("{0} trailing bytes inside a message frame")]
    Trailing(usize),
    /// A range list that is not sorted, empty, or too long.
    #[error("bad ranges")]
    Ranges(#[from] RangeError),
    /// A list or count over its limit.
    #[error("{count} {what} is over the limit of {max}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A string over its limit.
    #[error("{what} of {len} bytes is over the {max}-byte limit")]
    TextTooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl WireError {
    /// The code to send the peer for this error.
    ///
    /// ```
    /// use swarm_engine::wire::{ErrorCode, Message};
    ///
    /// // A length prefix over the limit: answered with TooLarge, not read.
    /// let frame = [0xff, 0xff, 0x03];
    /// let err = Message::decode_frame(&frame).unwrap_err();
    /// assert_eq!(err.code(), ErrorCode::TooLarge);
    /// ```
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::Ranges(RangeError::TooMany { .. }) => ErrorCode::TooManyRanges,
            _ => ErrorCode::ProtocolViolation,
        }
    }
}

impl Message {
    /// Encode with its length prefix (§2).
    ///
    /// ```
    /// use swarm_engine::wire::{Found, Message, frame_len};
    ///
    /// let frame = Message::Found(Found { size: 5 }).encode();
    /// // A varint length prefix, then the body.
    /// let (len, prefix) = frame_len(&frame)?.expect("complete prefix");
    /// assert_eq!(prefix + len, frame.len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these plain types into a Vec cannot fail.
        let body = postcard::to_allocvec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(body.len() + 3);
        put_varint(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        out
    }

    /// Decode one message body (without its length prefix) and check its limits.
    ///
    /// ```
    /// use swarm_engine::wire::{Found, Message, WireError};
    ///
    /// let frame = Message::Found(Found { size: 5 }).encode();
    /// let body = &frame[1..]; // a one-byte length prefix here
    /// assert_eq!(Message::decode_body(body)?, Message::Found(Found { size: 5 }));
    /// // One byte too many inside the frame.
    /// let mut padded = body.to_vec();
    /// padded.push(0);
    /// assert_eq!(Message::decode_body(&padded), Err(WireError::Trailing(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode_body(body: &[u8]) -> Result<Self, WireError> {
        if body.len() > MAX_MESSAGE {
            return Err(WireError::TooLarge(body.len() as u64));
        }
        let (msg, rest) = postcard::take_from_bytes::<Message>(body)
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::Trailing(rest.len()));
        }
        msg.validate()?;
        Ok(msg)
    }

    /// Decode one length-prefixed message from the front of `buf`. Returns
    /// `Ok(None)` if `buf` does not yet hold a whole message, else the
    /// message and the bytes it took.
    ///
    /// ```
    /// use swarm_engine::wire::{Found, Message};
    ///
    /// let a = Message::Found(Found { size: 1 }).encode();
    /// let b = Message::Found(Found { size: 2 }).encode();
    /// let stream = [a.clone(), b].concat();
    /// // Not yet a whole message: wait for more bytes.
    /// assert_eq!(Message::decode_frame(&stream[..a.len() - 1])?, None);
    /// let (first, used) = Message::decode_frame(&stream)?.expect("whole");
    /// assert_eq!(first, Message::Found(Found { size: 1 }));
    /// let (second, _) = Message::decode_frame(&stream[used..])?.expect("whole");
    /// assert_eq!(second, Message::Found(Found { size: 2 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode_frame(buf: &[u8]) -> Result<Option<(Self, usize)>, WireError> {
        let Some((len, n)) = frame_len(buf)? else {
            return Ok(None);
        };
        let Some(body) = buf.get(n..n + len) else {
            return Ok(None);
        };
        Ok(Some((Self::decode_body(body)?, n + len)))
    }

    fn validate(&self) -> Result<(), WireError> {
        let text = |what, s: &str, max| {
            if s.len() > max {
                Err(WireError::TextTooLong {
                    what,
                    len: s.len(),
                    max,
                })
            } else {
                Ok(())
            }
        };
        match self {
            Self::Hello(h) => text("agent", &h.agent, MAX_AGENT),
            Self::Have(h) => Ok(h.groups.validate(MAX_HAVE_RANGES)?),
            Self::Get(g) => Ok(g.ranges.validate(MAX_GET_RANGES)?),
            Self::Error(e) => text("error text", &e.text, MAX_ERROR_TEXT),
            Self::Peers(p) if p.addrs.len() > MAX_PEERS => {
                Err(WireError::Ranges(RangeError::TooMany {
                    count: p.addrs.len(),
                    max: MAX_PEERS,
                }))
            }
            Self::Follow(f) => {
                if f.subjects.len() > MAX_FOLLOWS {
                    return Err(WireError::TooMany {
                        what: "follow subjects",
                        count: f.subjects.len(),
                        max: MAX_FOLLOWS,
                    });
                }
                for s in &f.subjects {
                    text("subject name", &s.name, MAX_SUBJECT_NAME)?;
                    text("subject channel", &s.channel, MAX_SUBJECT_CHANNEL)?;
                }
                let mut sorted: Vec<&Subject> = f.subjects.iter().collect();
                sorted.sort();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    return Err(WireError::Malformed("a subject listed twice".into()));
                }
                Ok(())
            }
            Self::Release(r) if r.hops > MAX_HOPS => Err(WireError::TooMany {
                what: "hops",
                count: usize::from(r.hops),
                max: usize::from(MAX_HOPS),
            }),
            Self::Release(r) if r.record.is_empty() => {
                Err(WireError::Malformed("an empty release record".into()))
            }
            Self::Found(_)
            | Self::Ask(_)
            | Self::AskPeers(_)
            | Self::Peers(_)
            | Self::Release(_) => Ok(()),
        }
    }
}

/// Parse a length prefix: `Ok(None)` if incomplete, else (length, prefix bytes).
///
/// ```
/// use swarm_engine::wire::{WireError, frame_len};
///
/// assert_eq!(frame_len(&[5])?, Some((5, 1)));
/// assert_eq!(frame_len(&[0x80, 0x01])?, Some((128, 2)));
/// assert_eq!(frame_len(&[0x80])?, None); // incomplete
/// assert_eq!(frame_len(&[0x80, 0x00]), Err(WireError::BadLength)); // not canonical
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn frame_len(buf: &[u8]) -> Result<Option<(usize, usize)>, WireError> {
    let mut v: u64 = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(WireError::BadLength);
            }
            if v > MAX_MESSAGE as u64 {
                return Err(WireError::TooLarge(v));
            }
            return Ok(Some((v as usize, i + 1)));
        }
    }
    // Four continuation bytes already exceed MAX_MESSAGE.
    Err(WireError::TooLarge(v))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests;
