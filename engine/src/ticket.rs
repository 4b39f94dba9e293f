//! Tickets: one string that says what to fetch and where to find it.
//!
//! A ticket carries a bare root or a signed release, plus the node ids and
//! addresses of peers that serve it (hints: outside anything signed, and
//! only ever a place to ask, since every byte is verified against the
//! root). A checksum covers the whole ticket, so a mistyped or truncated
//! ticket is reported as that, and never taken for a forgery. The format
//! is byte-exact in `wire-spec/ticket.md`.
//!
//! ```
//! use swarm_engine::Hash;
//! use swarm_engine::net::{PeerAddr, SecretKey};
//! use swarm_engine::ticket::{Ticket, TicketError, TicketPeer, TicketTarget};
//!
//! let id = SecretKey::from_bytes(&[3; 32]).node_id();
//! let ticket = Ticket {
//!     target: TicketTarget::Root(Hash::of(b"a manifest")),
//!     peers: vec![TicketPeer { id, addrs: vec!["192.0.2.7:7411".parse()?] }],
//! };
//! let text = ticket.to_string();
//! assert!(text.starts_with("swt1"));
//! assert_eq!(text.parse::<Ticket>()?, ticket);
//! // One character changed: a typo, not a forgery.
//! let mut typo = text.clone().into_bytes();
//! typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
//! let err = String::from_utf8(typo)?.parse::<Ticket>().unwrap_err();
//! assert_eq!(err, TicketError::Typo);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::Hash;
use crate::net::{NodeId, PeerAddr};
use crate::release::{MAX_BUNDLE, ReleaseError, SignedRelease, base32};

/// What every ticket starts with: `swt` and the format version.
pub const TICKET_PREFIX: &str = "swt1";
/// The most peers a ticket names.
pub const MAX_PEERS: usize = 8;
/// The most addresses of one peer.
pub const MAX_ADDRS: usize = 8;
/// Domain separation for the checksum.
const CHECKSUM_CONTEXT: &[u8] = b"swarm-ticket-v1\0";
/// Bytes of checksum at the end.
const CHECKSUM_LEN: usize = 4;
/// The longest body: a release of the largest size and every peer with
/// every address as IPv6.
const MAX_BODY: usize =
    1 + 2 + MAX_BUNDLE + 1 + MAX_PEERS * (32 + 1 + MAX_ADDRS * 19) + CHECKSUM_LEN;
/// The longest ticket text.
pub const MAX_TICKET: usize = TICKET_PREFIX.len() + MAX_BODY * 8 / 5 + 1;

const KIND_ROOT: u8 = 0;
const KIND_RELEASE: u8 = 1;

/// What a ticket fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketTarget {
    /// A bare root: whatever it hashes to.
    Root(Hash),
    /// A signed release, checked against the trust policy like a token.
    Release(Box<SignedRelease>),
}

/// A peer a ticket names: its id, and the addresses to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPeer {
    /// The node id the peer must present.
    pub id: NodeId,
    /// Where it listens, best first.
    pub addrs: Vec<SocketAddr>,
}

/// A root or release, and peers that serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// What to fetch.
    pub target: TicketTarget,
    /// Where to ask first (the DHT and peer exchange may add more).
    pub peers: Vec<TicketPeer>,
}

/// Whether `s` is meant as a ticket (it has the ticket prefix, in any
/// case); parse it to know whether it is a good one.
///
/// ```
/// assert!(swarm_engine::ticket::is_ticket(" SWT1abc"));
/// assert!(!swarm_engine::ticket::is_ticket("swr1abc"));
/// ```
pub fn is_ticket(s: &str) -> bool {
    s.trim()
        .get(..TICKET_PREFIX.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(TICKET_PREFIX))
}

/// A ticket that cannot be used. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// Not a ticket at all.
    #[error("not a ticket: it must start with {TICKET_PREFIX}")]
    NotATicket,
    /// Longer than any ticket.
    #[error("a ticket of {0} characters is longer than any ticket ({MAX_TICKET}); copy it again")]
    TooLong(usize),
    /// A character no ticket has.
    #[error(
        "the ticket has a character that no ticket has (only a-z and 2-7 follow swt1); copy it \
         again"
    )]
    BadCharacter,
    /// The checksum does not match: a character was changed, lost or added.
    #[error(
        "the ticket has a typo: its checksum does not match (a character was changed, lost or \
         added); copy it again"
    )]
    Typo,
    /// The checksum matches, yet the contents do not parse.
    #[error("the ticket is malformed ({0}): the program that made it is broken")]
    Malformed(&'static str),
    /// A kind of ticket this build does not know.
    #[error("a ticket of kind {0}, which this build does not know; a newer swarm may read it")]
    UnknownKind(u8),
    /// The release's signature does not verify, though the checksum
    /// matches: not a typo, an alteration.
    #[error(
        "the ticket's checksum matches but its release's signature does not: the release was \
         altered or forged; do not use it"
    )]
    Forged,
    /// The release inside does not parse, though the checksum matches.
    #[error("the ticket's release is not valid: {0}")]
    Release(ReleaseError),
}

impl Ticket {
    /// A ticket for `target` with no peers.
    pub fn new(target: TicketTarget) -> Self {
        Self {
            target,
            peers: Vec::new(),
        }
    }

    /// The root it fetches.
    pub fn root(&self) -> Hash {
        match &self.target {
            TicketTarget::Root(r) => *r,
            TicketTarget::Release(s) => s.release().root,
        }
    }

    /// Every (peer, address) as a [`PeerAddr`], for
    /// [`crate::node::FetchOptions::peers`].
    pub fn peer_addrs(&self) -> Vec<PeerAddr> {
        self.peers
            .iter()
            .flat_map(|p| {
                p.addrs.iter().map(|a| PeerAddr {
                    id: Some(p.id),
                    addr: *a,
                })
            })
            .collect()
    }

    /// The binary form (`wire-spec/ticket.md` §2), checksum included.
    /// Peers and addresses beyond the limits are left out.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        match &self.target {
            TicketTarget::Root(r) => {
                out.push(KIND_ROOT);
                out.extend_from_slice(r.as_bytes());
            }
            TicketTarget::Release(s) => {
                out.push(KIND_RELEASE);
                let b = s.to_bytes();
                out.extend_from_slice(&(b.len() as u16).to_be_bytes());
                out.extend_from_slice(&b);
            }
        }
        let peers: Vec<&TicketPeer> = self
            .peers
            .iter()
            .filter(|p| !p.addrs.is_empty())
            .take(MAX_PEERS)
            .collect();
        out.push(peers.len() as u8);
        for p in peers {
            out.extend_from_slice(p.id.as_bytes());
            let addrs = &p.addrs[..p.addrs.len().min(MAX_ADDRS)];
            out.push(addrs.len() as u8);
            for a in addrs {
                match a.ip() {
                    IpAddr::V4(ip) => {
                        out.push(4);
                        out.extend_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        out.push(6);
                        out.extend_from_slice(&ip.octets());
                    }
                }
                out.extend_from_slice(&a.port().to_be_bytes());
            }
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// From the binary form: the checksum first, then the fields.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TicketError> {
        if bytes.len() > MAX_BODY {
            return Err(TicketError::TooLong(bytes.len()));
        }
        if bytes.len() < CHECKSUM_LEN + 2 {
            return Err(TicketError::Typo);
        }
        let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if checksum(body) != sum {
            return Err(TicketError::Typo);
        }
        let mut r = Reader(body);
        let target = match r.u8()? {
            KIND_ROOT => TicketTarget::Root(Hash::from_bytes(r.array()?)),
            KIND_RELEASE => {
                let len = u16::from_be_bytes(r.array()?) as usize;
                let signed = SignedRelease::from_bytes(r.take(len)?).map_err(|e| match e {
                    ReleaseError::BadSignature => TicketError::Forged,
                    e => TicketError::Release(e),
                })?;
                TicketTarget::Release(Box::new(signed))
            }
            k => return Err(TicketError::UnknownKind(k)),
        };
        let n = r.u8()? as usize;
        if n > MAX_PEERS {
            return Err(TicketError::Malformed("more than 8 peers"));
        }
        let mut peers = Vec::with_capacity(n);
        for _ in 0..n {
            let id = NodeId::from_bytes(r.array()?)
                .ok_or(TicketError::Malformed("a node id that is not a public key"))?;
            let m = r.u8()? as usize;
            if m == 0 || m > MAX_ADDRS {
                return Err(TicketError::Malformed(
                    "a peer with 0 or more than 8 addresses",
                ));
            }
            let mut addrs = Vec::with_capacity(m);
            for _ in 0..m {
                let ip = match r.u8()? {
                    4 => IpAddr::from(r.array::<4>()?),
                    6 => IpAddr::from(r.array::<16>()?),
                    _ => {
                        return Err(TicketError::Malformed(
                            "an address family other than 4 or 6",
                        ));
                    }
                };
                let port = u16::from_be_bytes(r.array()?);
                if port == 0 {
                    return Err(TicketError::Malformed("port 0"));
                }
                addrs.push(SocketAddr::new(ip, port));
            }
            peers.push(TicketPeer { id, addrs });
        }
        if !r.0.is_empty() {
            return Err(TicketError::Malformed("bytes left over"));
        }
        Ok(Self { target, peers })
    }
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = blake3::Hasher::new();
    h.update(CHECKSUM_CONTEXT);
    h.update(body);
    let mut out = [0; CHECKSUM_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..CHECKSUM_LEN]);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TicketError> {
        if self.0.len() < n {
            return Err(TicketError::Malformed("it ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, TicketError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TicketError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TICKET_PREFIX}{}", base32::encode(&self.to_bytes()))
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if !is_ticket(t) {
            return Err(TicketError::NotATicket);
        }
        if t.len() > MAX_TICKET {
            return Err(TicketError::TooLong(t.len()));
        }
        let body = &t[TICKET_PREFIX.len()..];
        // Within the alphabet, a lost or added character leaves padding
        // bits set: that is a typo too.
        let in_alphabet = body
            .bytes()
            .all(|c| c.is_ascii_alphabetic() || (b'2'..=b'7').contains(&c));
        let bytes = base32::decode(body).ok_or(if in_alphabet {
            TicketError::Typo
        } else {
            TicketError::BadCharacter
        })?;
        Self::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests;
