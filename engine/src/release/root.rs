//! Roots of trust, after TUF's root metadata: a publisher's signing keys
//! and threshold, in numbered versions. Version 1 is signed by a threshold
//! of its own keys; version N+1 by a threshold of version N's keys **and**
//! a threshold of its own. A [`Chain`] is verified forward from a root the
//! user pinned. Pure: no I/O. Normative: `wire-spec/release.md` §7–§9.
//!
//! ```
//! use swarm_engine::release::{Chain, Root, SecretKey};
//!
//! let [a, b, c, d] = [1u8, 2, 3, 4].map(|s| SecretKey::from_seed(&[s; 32]));
//! let pointer = SecretKey::from_seed(&[9; 32]).public();
//! // 2 of {a, b, c}, signed by a and b.
//! let mut v1 = Root::new(pointer, vec![a.public(), b.public(), c.public()], 2)?.unsigned()?;
//! v1.sign(&a, None)?;
//! v1.sign(&b, None)?;
//! let mut chain = Chain::start(v1)?;
//! // Rotate c out for d: 2 of the old keys and 2 of the new sign it.
//! let mut v2 = chain.newest().next(vec![a.public(), b.public(), d.public()], 2)?.unsigned()?;
//! v2.sign(&a, Some(chain.newest()))?;
//! v2.sign(&b, Some(chain.newest()))?;
//! chain.extend(&[v2])?;
//! assert_eq!(chain.newest().version, 2);
//! assert!(!chain.newest().keys.contains(&c.public()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ed25519_dalek::{Signature, Signer, VerifyingKey};

use super::{PublicKey, Reader, ReleaseError, SecretKey, base32, put_varint, strip_prefix_ci};
use crate::content::Hash;

/// Prefix of a root in text.
pub const ROOT_PREFIX: &str = "swrt1";
/// Prefix of a root's fingerprint in text.
pub const FINGERPRINT_PREFIX: &str = "swrf1";
/// Format byte of a root record.
pub const ROOT_FORMAT: u8 = 1;
/// Domain separation: root signatures are over these bytes, then the record.
pub const ROOT_CONTEXT: &[u8] = b"swarm-root-v1\0";
/// The key type byte of an Ed25519 key, the only type this build knows.
pub const KEY_ED25519: u8 = 1;
/// Most keys in one root.
pub const MAX_KEYS: usize = 16;
/// Most roots in one chain.
pub const MAX_CHAIN: usize = 32;
/// Most bytes of the roots of one chain together.
pub const MAX_CHAIN_BYTES: usize = 32 * 1024;
/// Largest root record with its signatures: format, pointer, version,
/// expiry, threshold, key count, keys, signature count, and a signature by
/// every key of it and of the version before.
pub const MAX_ROOT_BYTES: usize = 1 + 32 + 10 + 11 + 1 + 1 + MAX_KEYS * 33 + 1 + 2 * MAX_KEYS * 65;

/// One version of a publisher's root of trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The publisher's name: the key its releases name and its DHT pointer
    /// is signed with. The same in every version of a chain.
    pub pointer: PublicKey,
    /// 1 for the first root, then one more for each rotation.
    pub version: u64,
    /// How many of `keys` must sign.
    pub threshold: u8,
    /// The signing keys, in ascending byte order, each once.
    pub keys: Vec<PublicKey>,
    /// Unix seconds after which this root is refused as the newest.
    pub expires: Option<u64>,
}

/// Why a root or a chain of roots is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// It does not decode.
    #[error("the root does not decode: {0}")]
    Decode(ReleaseError),
    /// A root with no keys.
    #[error("a root needs at least one key")]
    NoKeys,
    /// More keys than allowed.
    #[error("a root of {0} keys has more than {MAX_KEYS}")]
    TooManyKeys(usize),
    /// A key listed twice.
    #[error("key {0} is listed twice in the root; list each key once")]
    DuplicateKey(PublicKey),
    /// A threshold of 0, or above the number of keys.
    #[error("threshold {threshold} with {keys} keys: it must be 1 to {keys}")]
    BadThreshold {
        /// The threshold.
        threshold: u8,
        /// How many keys.
        keys: usize,
    },
    /// A key type this build does not know.
    #[error("key type {0} is not supported (this build knows type 1, Ed25519)")]
    KeyType(u8),
    /// Version 0.
    #[error("root version 0: versions start at 1")]
    VersionZero,
    /// A signature listed twice.
    #[error("root version {version} carries two signatures by one key (index {index})")]
    DuplicateSignature {
        /// The root's version.
        version: u64,
        /// The signer's index.
        index: u8,
    },
    /// A signature by a key that is in neither this root nor the one before.
    #[error(
        "root version {version} carries a signature by key index {index}, which is not a key \
         of it or of the version before"
    )]
    UnknownSigner {
        /// The root's version.
        version: u64,
        /// The index.
        index: u8,
    },
    /// A signature that does not verify.
    #[error("the signature of {key} on root version {version} does not verify: it was altered")]
    BadSignature {
        /// The root's version.
        version: u64,
        /// The key it claims.
        key: PublicKey,
    },
    /// The key asked to sign is not one that may sign.
    #[error("{key} is not a key of root version {version} or of the version before")]
    NotASigner {
        /// The root's version.
        version: u64,
        /// The key.
        key: PublicKey,
    },
    /// This key has signed already.
    #[error("{key} has already signed root version {version}")]
    AlreadySigned {
        /// The root's version.
        version: u64,
        /// The key.
        key: PublicKey,
    },
    /// Not enough signatures by one of the two key sets.
    #[error(
        "root version {version} is signed by {have} of the {need} {which} keys it needs; still \
         to sign: {}",
        list(missing)
    )]
    Threshold {
        /// The root's version.
        version: u64,
        /// `"its own"` or `"previous root's"`.
        which: &'static str,
        /// Valid signatures by that set.
        have: usize,
        /// Its threshold.
        need: u8,
        /// Keys of that set that have not signed.
        missing: Vec<PublicKey>,
    },
    /// A chain that does not start at version 1.
    #[error("a chain starts at root version 1, not {0}")]
    NotFirst(u64),
    /// A version missing between two roots.
    #[error("the chain jumps from root version {have} to {got}: versions in between are missing")]
    Gap {
        /// The newest known.
        have: u64,
        /// The next given.
        got: u64,
    },
    /// Versions that do not increase one by one.
    #[error(
        "the chain lists root version {got} after version {after}: each version must follow the \
         one before (a repeat or a loop)"
    )]
    Order {
        /// The version before.
        after: u64,
        /// The one that follows.
        got: u64,
    },
    /// Two different roots with one version: someone holding a threshold of
    /// keys signed both, or the chain was mixed with another publisher's.
    #[error(
        "two different roots claim version {0} of this publisher: refusing both the new one and \
         anything signed under it; report it to the publisher"
    )]
    Fork(u64),
    /// The pointer key changed within a chain.
    #[error("root version {0} names another publisher key than the version before")]
    PointerChanged(u64),
    /// Too many roots.
    #[error("a chain of more than {MAX_CHAIN} roots is refused")]
    TooLong,
    /// Too many bytes of roots.
    #[error("a chain of more than {MAX_CHAIN_BYTES} bytes is refused")]
    TooLarge,
    /// A chain file or text that does not parse.
    #[error("{0}")]
    Text(String),
}

use super::root_list as list;

impl From<ReleaseError> for RootError {
    fn from(e: ReleaseError) -> Self {
        Self::Decode(e)
    }
}

impl Root {
    /// Version 1 with `keys` (sorted here) and `threshold`, never expiring.
    pub fn new(
        pointer: PublicKey,
        mut keys: Vec<PublicKey>,
        threshold: u8,
    ) -> Result<Self, RootError> {
        keys.sort();
        let root = Self {
            pointer,
            version: 1,
            threshold,
            keys,
            expires: None,
        };
        root.validate()?;
        Ok(root)
    }

    /// What a v1 single key means (`wire-spec/release.md` §7.4): version 1,
    /// that key alone, threshold 1, named by itself. Never encoded.
    pub fn implicit(key: PublicKey) -> Self {
        Self {
            pointer: key,
            version: 1,
            threshold: 1,
            keys: vec![key],
            expires: None,
        }
    }

    /// The version after this one, with `keys` and `threshold`.
    pub fn next(&self, keys: Vec<PublicKey>, threshold: u8) -> Result<Self, RootError> {
        let mut r = Self::new(self.pointer, keys, threshold)?;
        r.version = self.version + 1;
        Ok(r)
    }

    /// Check the rules a root follows on its own.
    pub fn validate(&self) -> Result<(), RootError> {
        if self.version == 0 {
            return Err(RootError::VersionZero);
        }
        if self.keys.is_empty() {
            return Err(RootError::NoKeys);
        }
        if self.keys.len() > MAX_KEYS {
            return Err(RootError::TooManyKeys(self.keys.len()));
        }
        if let Some(w) = self.keys.windows(2).find(|w| w[0] >= w[1]) {
            return Err(if w[0] == w[1] {
                RootError::DuplicateKey(w[0])
            } else {
                RootError::Text("root keys are not in ascending order".into())
            });
        }
        if self.threshold == 0 || usize::from(self.threshold) > self.keys.len() {
            return Err(RootError::BadThreshold {
                threshold: self.threshold,
                keys: self.keys.len(),
            });
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 33 * self.keys.len());
        out.push(ROOT_FORMAT);
        out.extend_from_slice(self.pointer.as_bytes());
        put_varint(&mut out, self.version);
        match self.expires {
            None => out.push(0),
            Some(e) => {
                out.push(1);
                put_varint(&mut out, e);
            }
        }
        out.push(self.threshold);
        // validate() caps the count at MAX_KEYS.
        out.push(self.keys.len() as u8);
        for k in &self.keys {
            out.push(KEY_ED25519);
            out.extend_from_slice(k.as_bytes());
        }
        out
    }

    /// This root with no signatures yet, to collect them.
    pub fn unsigned(self) -> Result<SignedRoot, RootError> {
        self.validate()?;
        let signed = self.encode();
        Ok(SignedRoot {
            root: self,
            signed,
            sigs: Vec::new(),
        })
    }

    /// The index that `key` signs under: its place in these keys, else
    /// `keys.len()` plus its place in `prev`'s.
    fn index_of(&self, key: &PublicKey, prev: Option<&Root>) -> Option<u8> {
        if let Ok(i) = self.keys.binary_search(key) {
            return Some(i as u8);
        }
        let p = prev?.keys.binary_search(key).ok()?;
        Some((self.keys.len() + p) as u8)
    }

    fn key_at(&self, index: u8, prev: Option<&Root>) -> Option<PublicKey> {
        let i = usize::from(index);
        match self.keys.get(i) {
            Some(k) => Some(*k),
            None => {
                let k = prev?.keys.get(i - self.keys.len())?;
                // A key of both sets signs under its own index only.
                (!self.keys.contains(k)).then_some(*k)
            }
        }
    }
}

/// A root with the signatures it has so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoot {
    root: Root,
    signed: Vec<u8>,
    sigs: Vec<(u8, [u8; 64])>,
}

impl SignedRoot {
    /// What it says.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// BLAKE3 of the record without signatures: what pins the root, and
    /// the same however many have signed.
    pub fn fingerprint(&self) -> Hash {
        Hash::of(&self.signed)
    }

    /// The fingerprint as text, `swrf1` + base32.
    pub fn fingerprint_text(&self) -> String {
        fingerprint_text(&self.fingerprint())
    }

    /// How many signatures it carries (valid or not).
    pub fn signature_count(&self) -> usize {
        self.sigs.len()
    }

    /// Add `key`'s signature. `prev` is the version before (for a rotation
    /// signed by a key it drops); `None` for version 1.
    pub fn sign(&mut self, key: &SecretKey, prev: Option<&Root>) -> Result<(), RootError> {
        let public = key.public();
        let version = self.root.version;
        let index = self
            .root
            .index_of(&public, prev)
            .ok_or(RootError::NotASigner {
                version,
                key: public,
            })?;
        let at = match self.sigs.binary_search_by_key(&index, |s| s.0) {
            Ok(_) => {
                return Err(RootError::AlreadySigned {
                    version,
                    key: public,
                });
            }
            Err(at) => at,
        };
        let sig = key
            .signing_key()
            .sign(&root_message(&self.signed))
            .to_bytes();
        self.sigs.insert(at, (index, sig));
        Ok(())
    }

    /// The keys whose signatures verify, each once; any signature that
    /// does not verify, or by a key of neither set, is an error.
    pub fn signers(&self, prev: Option<&Root>) -> Result<Vec<PublicKey>, RootError> {
        let version = self.root.version;
        let message = root_message(&self.signed);
        let mut out = Vec::with_capacity(self.sigs.len());
        for (index, sig) in &self.sigs {
            let key = self
                .root
                .key_at(*index, prev)
                .ok_or(RootError::UnknownSigner {
                    version,
                    index: *index,
                })?;
            verify(&key, &message, sig).map_err(|()| RootError::BadSignature { version, key })?;
            out.push(key);
        }
        Ok(out)
    }

    /// Check that a threshold of `keys` is among `signers`.
    fn met(
        &self,
        signers: &[PublicKey],
        keys: &[PublicKey],
        threshold: u8,
        which: &'static str,
    ) -> Result<(), RootError> {
        let have = keys.iter().filter(|k| signers.contains(k)).count();
        if have >= usize::from(threshold) {
            return Ok(());
        }
        Err(RootError::Threshold {
            version: self.root.version,
            which,
            have,
            need: threshold,
            missing: keys
                .iter()
                .filter(|k| !signers.contains(k))
                .copied()
                .collect(),
        })
    }

    /// Verify it as the version after `prev` (`None`: as version 1).
    pub fn verify(&self, prev: Option<&Root>) -> Result<(), RootError> {
        self.verify_with(prev, || self.signers(prev))
    }

    /// [`Self::verify`], with the signers found by `signers` (computed
    /// ahead, perhaps on another thread).
    fn verify_with(
        &self,
        prev: Option<&Root>,
        signers: impl FnOnce() -> Result<Vec<PublicKey>, RootError>,
    ) -> Result<(), RootError> {
        match prev {
            None if self.root.version != 1 => return Err(RootError::NotFirst(self.root.version)),
            Some(p) if self.root.version <= p.version => {
                return Err(RootError::Order {
                    after: p.version,
                    got: self.root.version,
                });
            }
            Some(p) if self.root.version != p.version + 1 => {
                return Err(RootError::Gap {
                    have: p.version,
                    got: self.root.version,
                });
            }
            Some(p) if self.root.pointer != p.pointer => {
                return Err(RootError::PointerChanged(self.root.version));
            }
            _ => {}
        }
        let signers = signers()?;
        if let Some(p) = prev {
            self.met(&signers, &p.keys, p.threshold, "previous root's")?;
        }
        self.met(&signers, &self.root.keys, self.root.threshold, "its own")
    }

    /// Record, then the signature count and `(index, signature)` pairs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.signed.clone();
        v.push(self.sigs.len() as u8);
        for (i, s) in &self.sigs {
            v.push(*i);
            v.extend_from_slice(s);
        }
        v
    }

    /// `swrt1` + base32 of [`Self::to_bytes`].
    pub fn to_token(&self) -> String {
        format!("{ROOT_PREFIX}{}", base32::encode(&self.to_bytes()))
    }

    /// Decode `swrt1…` text.
    pub fn from_token(s: &str) -> Result<Self, RootError> {
        let s = s.trim();
        if s.len() > ROOT_PREFIX.len() + MAX_ROOT_BYTES * 8 / 5 + 1 {
            return Err(ReleaseError::TokenTooLong(s.len()).into());
        }
        let body = strip_prefix_ci(s, ROOT_PREFIX).ok_or_else(|| {
            RootError::Text(format!("not a root: a root starts with {ROOT_PREFIX}"))
        })?;
        let bytes = base32::decode(body).ok_or(ReleaseError::BadEncoding)?;
        Self::from_bytes(&bytes)
    }

    /// Decode the binary form (structure only: [`Self::verify`] checks
    /// the signatures).
    pub fn from_bytes(b: &[u8]) -> Result<Self, RootError> {
        if b.len() > MAX_ROOT_BYTES {
            return Err(RootError::TooLarge);
        }
        let mut r = Reader { b, pos: 0 };
        let root = Self::read(&mut r)?;
        if r.pos != b.len() {
            return Err(ReleaseError::Truncated.into());
        }
        Ok(root)
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, RootError> {
        let start = r.pos;
        let format = r.take(1)?[0];
        if format != ROOT_FORMAT {
            return Err(ReleaseError::UnsupportedFormat(format).into());
        }
        let pointer = read_key(r)?;
        let version = r.varint()?;
        let expires = r.option_varint("expires")?;
        let threshold = r.take(1)?[0];
        let n = usize::from(r.take(1)?[0]);
        if n > MAX_KEYS {
            return Err(RootError::TooManyKeys(n));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let t = r.take(1)?[0];
            if t != KEY_ED25519 {
                return Err(RootError::KeyType(t));
            }
            keys.push(read_key(r)?);
        }
        let root = Root {
            pointer,
            version,
            threshold,
            keys,
            expires,
        };
        root.validate()?;
        let signed = r.b[start..r.pos].to_vec();
        if root.encode() != signed {
            return Err(ReleaseError::BadField {
                field: "root",
                why: "not in canonical form".into(),
            }
            .into());
        }
        let count = usize::from(r.take(1)?[0]);
        if count > 2 * MAX_KEYS {
            return Err(RootError::TooManyKeys(count));
        }
        let mut sigs: Vec<(u8, [u8; 64])> = Vec::with_capacity(count);
        for _ in 0..count {
            let index = r.take(1)?[0];
            if usize::from(index) >= root.keys.len() + MAX_KEYS {
                return Err(RootError::UnknownSigner { version, index });
            }
            if let Some(last) = sigs.last().filter(|l| l.0 >= index) {
                return Err(if last.0 == index {
                    RootError::DuplicateSignature { version, index }
                } else {
                    RootError::Text(format!(
                        "root version {version}: signatures are not in ascending key order"
                    ))
                });
            }
            let mut s = [0u8; 64];
            s.copy_from_slice(r.take(64)?);
            sigs.push((index, s));
        }
        Ok(Self { root, signed, sigs })
    }
}

/// A root fingerprint as text: `swrf1` + base32 of its 32 bytes.
pub fn fingerprint_text(f: &Hash) -> String {
    format!("{FINGERPRINT_PREFIX}{}", base32::encode(f.as_bytes()))
}

/// Parse [`fingerprint_text`]; `None` if `s` does not start with `swrf1`,
/// `Some(Err)` if it does but is damaged.
pub fn parse_fingerprint(s: &str) -> Option<Result<Hash, RootError>> {
    let body = strip_prefix_ci(s.trim(), FINGERPRINT_PREFIX)?;
    Some(
        base32::decode(body)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Hash::from_bytes)
            .ok_or_else(|| RootError::Text(format!("not a root fingerprint: {:?}", s.trim()))),
    )
}

fn read_key(r: &mut Reader<'_>) -> Result<PublicKey, ReleaseError> {
    let mut k = [0u8; 32];
    k.copy_from_slice(r.take(32)?);
    PublicKey::from_bytes(k).ok_or(ReleaseError::BadField {
        field: "key",
        why: "not an Ed25519 public key".into(),
    })
}

fn root_message(signed: &[u8]) -> Vec<u8> {
    [ROOT_CONTEXT, signed].concat()
}

/// Strict Ed25519 verification (no small-order keys, canonical `S`).
pub(super) fn verify(key: &PublicKey, message: &[u8], sig: &[u8; 64]) -> Result<(), ()> {
    let vk = VerifyingKey::from_bytes(key.as_bytes()).map_err(|_| ())?;
    vk.verify_strict(message, &Signature::from_bytes(sig))
        .map_err(|_| ())
}

/// A verified chain of roots, from the one the user pinned (or the
/// implicit root of a v1 key) to the newest known.
///
/// Expiry is not checked here: an expired root in the middle of a chain is
/// still a valid step; only the newest must be current, which the policy
/// checks with the time it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// `None`: the chain starts at the implicit root of `base`'s key.
    first: Option<SignedRoot>,
    base: Root,
    later: Vec<SignedRoot>,
}

impl Chain {
    /// The chain of a v1 key: its implicit root (version 1, that key,
    /// threshold 1), to be rotated from.
    pub fn from_key(key: PublicKey) -> Self {
        Self {
            first: None,
            base: Root::implicit(key),
            later: Vec::new(),
        }
    }

    /// A chain that starts at `first`, a version 1 signed by a threshold of
    /// its own keys.
    pub fn start(first: SignedRoot) -> Result<Self, RootError> {
        first.verify(None)?;
        if first.to_bytes().len() > MAX_CHAIN_BYTES {
            return Err(RootError::TooLarge);
        }
        Ok(Self {
            base: first.root.clone(),
            first: Some(first),
            later: Vec::new(),
        })
    }

    /// The newest root.
    pub fn newest(&self) -> &Root {
        self.later.last().map_or(&self.base, |r| &r.root)
    }

    /// The publisher key the chain names.
    pub fn pointer(&self) -> PublicKey {
        self.base.pointer
    }

    /// The fingerprint of the first root; `None` for a v1 key's chain.
    pub fn anchor(&self) -> Option<Hash> {
        self.first.as_ref().map(SignedRoot::fingerprint)
    }

    /// The roots to hand on, oldest first: all but an implicit first one.
    pub fn roots(&self) -> impl Iterator<Item = &SignedRoot> {
        self.first.iter().chain(&self.later)
    }

    fn root_at(&self, version: u64) -> Option<&SignedRoot> {
        self.roots().find(|r| r.root.version == version)
    }

    fn bytes(&self) -> usize {
        self.roots().map(|r| r.to_bytes().len()).sum()
    }

    /// Verify `more` forward from the newest known and add them. Roots
    /// already known are skipped if identical; they must be in order,
    /// without gaps. Returns how many were added. On error nothing is added.
    pub fn extend(&mut self, more: &[SignedRoot]) -> Result<usize, RootError> {
        // More than a whole chain is never needed; the roots known already
        // in it are skipped below, so only the new ones count towards the
        // cap there.
        if more.len() > MAX_CHAIN + 1 {
            return Err(RootError::TooLong);
        }
        for w in more.windows(2) {
            let (a, b) = (w[0].root.version, w[1].root.version);
            if b != a + 1 {
                return Err(if b > a + 1 {
                    RootError::Gap { have: a, got: b }
                } else {
                    RootError::Order { after: a, got: b }
                });
            }
        }
        let mut grown = self.clone();
        let mut bytes = grown.bytes();
        let mut added = 0;
        let mut signers = parallel_signers(grown.newest(), more).into_iter();
        for r in more {
            let newest = grown.newest().version;
            if r.root.version <= newest {
                let same = match grown.root_at(r.root.version) {
                    Some(known) => known.fingerprint() == r.fingerprint(),
                    // The implicit root of a v1 key is never encoded.
                    None => false,
                };
                if !same {
                    return Err(RootError::Fork(r.root.version));
                }
                continue;
            }
            if r.root.version > newest + 1 {
                return Err(RootError::Gap {
                    have: newest,
                    got: r.root.version,
                });
            }
            bytes += r.to_bytes().len();
            if bytes > MAX_CHAIN_BYTES {
                return Err(RootError::TooLarge);
            }
            if grown.later.len() >= MAX_CHAIN {
                return Err(RootError::TooLong);
            }
            let found = signers.next();
            r.verify_with(Some(grown.newest()), || {
                found.unwrap_or_else(|| r.signers(Some(grown.newest())))
            })?;
            grown.later.push(r.clone());
            added += 1;
        }
        *self = grown;
        Ok(added)
    }

    /// Add `r` without verifying it: to build forged chains in tests.
    #[cfg(test)]
    pub(crate) fn push_unverified(&mut self, r: SignedRoot) {
        self.later.push(r);
    }

    /// The chain as text: one line per root, oldest first; the first line
    /// is the `swpk1…` key for a v1 key's chain (§8.3).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.first.is_none() {
            out.push_str(&self.base.pointer.to_string());
            out.push('\n');
        }
        for r in self.roots() {
            out.push_str(&r.to_token());
            out.push('\n');
        }
        out
    }

    /// Parse and verify [`Self::to_text`]. Lines starting with `#` are
    /// comments. A newest root that has not collected its signatures yet is
    /// returned apart, as `pending` ([`ChainFile`]).
    pub fn from_text(s: &str) -> Result<Self, RootError> {
        let file = ChainFile::parse(s)?;
        if let Some(p) = file.pending {
            return Err(file
                .chain
                .as_ref()
                .map_or_else(|| p.verify(None), |c| p.verify(Some(c.newest())))
                .err()
                .unwrap_or(RootError::Text("the newest root is not signed yet".into())));
        }
        file.chain
            .ok_or_else(|| RootError::Text("no root: the chain is empty".into()))
    }
}

/// The signers of each root in `more` newer than `newest`, in order, each
/// against the one before it: the signature checks, which are most of the
/// cost of a long chain, spread over the cores. Threshold and order checks
/// stay with the caller, in order.
fn parallel_signers(newest: &Root, more: &[SignedRoot]) -> Vec<Result<Vec<PublicKey>, RootError>> {
    let fresh: Vec<&SignedRoot> = more
        .iter()
        .filter(|r| r.root.version > newest.version)
        .collect();
    let prevs: Vec<&Root> = std::iter::once(newest)
        .chain(fresh.iter().map(|r| &r.root))
        .collect();
    let work: Vec<(&SignedRoot, &Root)> = fresh.iter().copied().zip(prevs).collect();
    let signatures: usize = work.iter().map(|(r, _)| r.sigs.len()).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(work.len());
    // A thread costs about what two signature checks do.
    if threads < 2 || signatures < 8 {
        return work.iter().map(|(r, p)| r.signers(Some(p))).collect();
    }
    let chunk = work.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(r, p)| r.signers(Some(p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(RootError::Text(
                        "a signature check failed to run".into(),
                    ))]
                })
            })
            .collect()
    })
}

/// A publisher's chain file as it is being built: the verified chain, and
/// a newest root still collecting signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFile {
    /// The verified part; `None` while version 1 collects its signatures.
    pub chain: Option<Chain>,
    /// The next version, not yet signed by enough keys.
    pub pending: Option<SignedRoot>,
}

impl ChainFile {
    /// Parse a chain file: every root but the newest must verify; the
    /// newest is `pending` if only signatures are missing.
    pub fn parse(s: &str) -> Result<Self, RootError> {
        let lines: Vec<&str> = s
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if lines.len() > MAX_CHAIN + 1 {
            return Err(RootError::TooLong);
        }
        if s.len() > 2 * MAX_CHAIN_BYTES {
            return Err(RootError::TooLarge);
        }
        let mut rest = lines.as_slice();
        let mut chain = match rest.first() {
            Some(l) if strip_prefix_ci(l, super::PUBLIC_PREFIX).is_some() => {
                let key: PublicKey = l.parse()?;
                rest = &rest[1..];
                Some(Chain::from_key(key))
            }
            _ => None,
        };
        let roots = rest
            .iter()
            .map(|l| SignedRoot::from_token(l))
            .collect::<Result<Vec<_>, _>>()?;
        let Some((last, before)) = roots.split_last() else {
            return Ok(Self {
                chain,
                pending: None,
            });
        };
        for r in before {
            match &mut chain {
                None => chain = Some(Chain::start(r.clone())?),
                Some(c) => {
                    c.extend(std::slice::from_ref(r))?;
                }
            }
        }
        let prev = chain.as_ref().map(Chain::newest);
        match last.verify(prev) {
            Ok(()) => {
                match &mut chain {
                    None => chain = Some(Chain::start(last.clone())?),
                    Some(c) => {
                        c.extend(std::slice::from_ref(last))?;
                    }
                }
                Ok(Self {
                    chain,
                    pending: None,
                })
            }
            Err(RootError::Threshold { .. }) => Ok(Self {
                chain,
                pending: Some(last.clone()),
            }),
            Err(e) => Err(e),
        }
    }

    /// The file text: the chain, then the pending root.
    pub fn to_text(&self) -> String {
        let mut out = self.chain.as_ref().map(Chain::to_text).unwrap_or_default();
        if let Some(p) = &self.pending {
            out.push_str(&p.to_token());
            out.push('\n');
        }
        out
    }
}
