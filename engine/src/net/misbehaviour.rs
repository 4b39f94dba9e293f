//! The ways a peer can break the protocol, one variant each, and the faults
//! that are ours. A peer is banned by variant, never for our own bug.

use crate::content::{DecodeError, Hash};
use crate::wire::WireError;

/// How a peer broke the protocol or sent bad data. Each is the peer's own
/// fault: the peer is dropped and not asked again.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::net::Misbehaviour;
///
/// let m = Misbehaviour::WrongSize { hash: Hash::of(b"x"), claimed: 10, actual: 12 };
/// assert!(m.to_string().contains("claims"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Misbehaviour {
    /// It gave a size for a blob that is not the blob's size.
    #[error("claims {hash} is {claimed} bytes, but it is {actual} bytes")]
    WrongSize {
        /// The blob.
        hash: Hash,
        /// The size it gave.
        claimed: u64,
        /// The size the manifest (verified) says.
        actual: u64,
    },
    /// It offered a blob larger than the request allowed.
    #[error("claims {hash} is {size} bytes, more than the {limit} allowed here")]
    TooLarge {
        /// The blob.
        hash: Hash,
        /// The size it gave.
        size: u64,
        /// The most the request allowed.
        limit: u64,
    },
    /// It answered a request with a message that does not answer it.
    #[error("answered {request} with {got}")]
    Unexpected {
        /// What was asked.
        request: &'static str,
        /// What came back.
        got: &'static str,
    },
    /// It sent bytes or tree nodes that do not verify against the root.
    #[error("sent data for {hash} that does not verify: {source}")]
    BadData {
        /// The blob.
        hash: Hash,
        /// Where and how.
        source: DecodeError,
    },
    /// It ended a response before the data asked for was complete.
    #[error("ended the response for {hash} early, at byte {offset}")]
    Truncated {
        /// The blob.
        hash: Hash,
        /// Where the data stopped.
        offset: u64,
    },
    /// It sent more bytes than the data asked for can take.
    #[error("sent more than the {limit} bytes {groups} groups of {hash} take")]
    TooMuch {
        /// The blob.
        hash: Hash,
        /// The most the groups take, encoded.
        limit: u64,
        /// Groups asked for.
        groups: u64,
    },
    /// It ended a stream without answering.
    #[error("ended the stream without an answer")]
    NoAnswer,
    /// It sent a message that does not decode.
    #[error("sent a malformed message: {0}")]
    Malformed(WireError),
}

impl Misbehaviour {
    /// A short name for the kind, as the metrics label it (`bad_data`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WrongSize { .. } => "wrong_size",
            Self::TooLarge { .. } => "too_large",
            Self::Unexpected { .. } => "unexpected",
            Self::BadData { .. } => "bad_data",
            Self::Truncated { .. } => "truncated",
            Self::TooMuch { .. } => "too_much",
            Self::NoAnswer => "no_answer",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// A request that failed on our side: a bug or a local condition, never
/// the peer's fault, so the peer is not banned for it.
///
/// ```
/// use swarm_engine::net::LocalFault;
///
/// assert!(LocalFault::TooFragmented.to_string().contains("bug"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalFault {
    /// A request over the wire's range limit was built here.
    #[error("a request was built with more ranges than the wire allows (a bug here)")]
    TooFragmented,
    /// Our side of a stream was used after it was closed, or another
    /// local stream error.
    #[error("local stream error: {0}")]
    Stream(String),
}

impl Misbehaviour {
    /// The misbehaviour a failed decode of a response shows, for blob
    /// `hash`: a response cut short, or data that does not verify.
    pub(crate) fn of_decode(hash: Hash, e: DecodeError) -> Self {
        match e {
            DecodeError::Truncated { offset } => Self::Truncated { hash, offset },
            DecodeError::Io(_) => Self::Truncated { hash, offset: 0 },
            other => Self::BadData {
                hash,
                source: other,
            },
        }
    }
}
