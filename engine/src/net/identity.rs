//! Node identity: an Ed25519 key pair whose public half is the node id.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};

/// A node's secret key. The public half, [`NodeId`], names the node.
///
/// ```
/// use swarm_engine::net::SecretKey;
///
/// let key = SecretKey::from_bytes(&[3; 32]);
/// assert_eq!(key.to_bytes(), [3; 32]);
/// // Debug output names the node, and never shows the secret.
/// assert_eq!(format!("{key:?}"), format!("SecretKey(node {})", key.node_id()));
/// ```
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    ///
    /// ```
    /// use swarm_engine::net::SecretKey;
    ///
    /// let a = SecretKey::generate()?;
    /// let b = SecretKey::generate()?;
    /// assert_ne!(a.node_id(), b.node_id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Self::from_bytes(&seed))
    }

    /// From the 32-byte seed.
    ///
    /// ```
    /// use swarm_engine::net::SecretKey;
    ///
    /// // The same seed, the same node id (keep the seed to keep the identity).
    /// let id = SecretKey::from_bytes(&[3; 32]).node_id();
    /// assert_eq!(SecretKey::from_bytes(&[3; 32]).node_id(), id);
    /// ```
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed. Keep it secret.
    ///
    /// ```
    /// use swarm_engine::net::SecretKey;
    ///
    /// let key = SecretKey::generate()?;
    /// let restored = SecretKey::from_bytes(&key.to_bytes());
    /// assert_eq!(restored.node_id(), key.node_id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The node id this key proves.
    ///
    /// ```
    /// use swarm_engine::net::SecretKey;
    ///
    /// let id = SecretKey::from_bytes(&[3; 32]).node_id();
    /// assert_eq!(id.to_string().len(), 64); // hex
    /// ```
    pub fn node_id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }
}

/// The key quinn signs stateless-reset tokens with, derived from the node
/// key, so that a node restarted with its key resets the connections of
/// its previous run at their first packet (RFC 9000 §10.3). Peers of a
/// node that restarts then know at once that the connection is gone, and
/// dial it again, instead of waiting out the idle timeout.
pub(crate) struct ResetKey([u8; 32]);

impl ResetKey {
    pub(crate) fn of(secret: &SecretKey) -> Self {
        Self(blake3::derive_key(
            "swarm 2026 QUIC stateless reset v1",
            &secret.to_bytes(),
        ))
    }

    /// The QUIC endpoint settings that go with it: connection ids made
    /// with a key of the node's too, so that the restarted node still
    /// recognises the ids it gave out (quinn drops packets to ids it did
    /// not make, where it would otherwise reset).
    pub(crate) fn endpoint_config(secret: &SecretKey) -> quinn::EndpointConfig {
        let key = Self::of(secret);
        let cid = blake3::keyed_hash(&key.0, b"connection ids");
        let mut k = [0u8; 8];
        k.copy_from_slice(&cid.as_bytes()[..8]);
        let cid_key = u64::from_le_bytes(k);
        let mut c = quinn::EndpointConfig::new(std::sync::Arc::new(key));
        c.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        c
    }
}

impl quinn::crypto::HmacKey for ResetKey {
    fn sign(&self, data: &[u8], out: &mut [u8]) {
        let mac = blake3::keyed_hash(&self.0, data);
        let n = out.len().min(32);
        out[..n].copy_from_slice(&mac.as_bytes()[..n]);
    }

    fn signature_len(&self) -> usize {
        32
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), quinn::crypto::CryptoError> {
        let mac = blake3::keyed_hash(&self.0, data);
        // blake3::Hash compares in constant time.
        match <[u8; 32]>::try_from(signature) {
            Ok(sig) if blake3::Hash::from_bytes(sig) == mac => Ok(()),
            _ => Err(quinn::crypto::CryptoError),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(node {})", self.node_id())
    }
}

/// A node id: a 32-byte Ed25519 public key, printed as 64 hex characters.
/// Authenticated by the TLS handshake (wire.md §1).
///
/// ```
/// use swarm_engine::net::{NodeId, SecretKey};
///
/// let id = SecretKey::from_bytes(&[3; 32]).node_id();
/// let text = id.to_string();
/// assert_eq!(text.parse::<NodeId>()?, id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// From raw bytes, checking they are a valid Ed25519 point.
    ///
    /// ```
    /// use swarm_engine::net::{NodeId, SecretKey};
    ///
    /// let id = SecretKey::from_bytes(&[3; 32]).node_id();
    /// assert_eq!(NodeId::from_bytes(*id.as_bytes()), Some(id));
    /// let mut not_a_key = [0; 32];
    /// not_a_key[0] = 2; // not a point on the curve
    /// assert_eq!(NodeId::from_bytes(not_a_key), None);
    /// ```
    pub fn from_bytes(b: [u8; 32]) -> Option<Self> {
        VerifyingKey::from_bytes(&b).ok().map(|_| Self(b))
    }

    /// The raw bytes.
    ///
    /// ```
    /// use swarm_engine::net::SecretKey;
    ///
    /// let id = SecretKey::from_bytes(&[3; 32]).node_id();
    /// assert_eq!(id.as_bytes().len(), 32);
    /// assert!(id.to_string().starts_with(&format!("{:02x}", id.as_bytes()[0])));
    /// ```
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short form for logs: the first 10 hex characters.
    ///
    /// ```
    /// use swarm_engine::net::SecretKey;
    ///
    /// let id = SecretKey::from_bytes(&[3; 32]).node_id();
    /// assert_eq!(id.short().len(), 10);
    /// assert!(id.to_string().starts_with(&id.short()));
    /// ```
    pub fn short(&self) -> String {
        self.to_string()[..10].to_owned()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::Hash::from_bytes(self.0), f)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

/// A string that is not a node id.
///
/// ```
/// use swarm_engine::net::{NodeId, ParseNodeIdError};
///
/// let err: ParseNodeIdError = "abc123".parse::<NodeId>().unwrap_err();
/// assert!(err.to_string().contains("64 hex characters"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseNodeIdError(String);

impl FromStr for NodeId {
    type Err = ParseNodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let h: crate::Hash = s.parse().map_err(|_| {
            ParseNodeIdError(format!(
                "not a node id: expected 64 hex characters of an Ed25519 public key, got {s:?}"
            ))
        })?;
        Self::from_bytes(*h.as_bytes()).ok_or_else(|| {
            ParseNodeIdError(format!(
                "the node id {s:?} is 64 hex characters but not an Ed25519 public key, so no \
                 node has it; check that it was copied whole"
            ))
        })
    }
}

/// DER SubjectPublicKeyInfo prefix of an Ed25519 key (wire.md §1).
pub(super) const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER PKCS#8 v1 prefix of an Ed25519 private key seed.
pub(super) const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl NodeId {
    pub(super) fn to_spki(self) -> Vec<u8> {
        let mut v = SPKI_PREFIX.to_vec();
        v.extend_from_slice(&self.0);
        v
    }

    pub(super) fn from_spki(der: &[u8]) -> Option<Self> {
        let key = der.strip_prefix(&SPKI_PREFIX[..])?;
        Self::from_bytes(key.try_into().ok()?)
    }
}

impl SecretKey {
    pub(super) fn to_pkcs8(&self) -> Vec<u8> {
        let mut v = PKCS8_PREFIX.to_vec();
        v.extend_from_slice(&self.0.to_bytes());
        v
    }
}
