//! Signed releases: the record that binds a name, channel and version to a
//! root under a publisher's Ed25519 signature, its byte format, the
//! copy-pasteable token, and the trust and rollback policy (`policy`).
//!
//! Pure: no I/O. Normative format: `wire-spec/release.md`.

pub(crate) mod base32;
pub mod gossip;
mod policy;
pub mod rollout;
mod root;

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

pub use self::policy::{HighWater, Policy, PolicyError, Seen, Want, check_seq};
pub use self::root::{
    Chain, ChainFile, FINGERPRINT_PREFIX, KEY_ED25519, MAX_CHAIN, MAX_CHAIN_BYTES, MAX_KEYS,
    MAX_ROOT_BYTES, ROOT_CONTEXT, ROOT_FORMAT, ROOT_PREFIX, Root, RootError, SignedRoot,
    fingerprint_text, parse_fingerprint,
};
use crate::content::Hash;

/// Prefix of a signed-root token; the digit is the format version.
///
/// ```
/// use swarm_engine::release::{TOKEN_PREFIX, is_token};
///
/// assert_eq!(TOKEN_PREFIX, "swr1");
/// assert!(is_token(&format!("{TOKEN_PREFIX}aaaa")));
/// ```
pub const TOKEN_PREFIX: &str = "swr1";
/// Prefix of a threshold-signed release token (format 2, §8).
pub const TOKEN_PREFIX_THRESHOLD: &str = "swr2";
/// Format byte of a threshold-signed release record.
pub const FORMAT_THRESHOLD: u8 = 2;
/// Domain separation of format 2 signatures.
pub const CONTEXT_THRESHOLD: &[u8] = b"swarm-release-v2\0";
/// Largest format 2 release with the chain it carries.
pub const MAX_BUNDLE: usize = MAX_BINARY + 1 + MAX_CHAIN_BYTES;
/// Prefix of a publisher public key in text.
///
/// ```
/// use swarm_engine::release::{PUBLIC_PREFIX, SecretKey};
///
/// let public = SecretKey::from_seed(&[1; 32]).public();
/// assert!(public.to_string().starts_with(PUBLIC_PREFIX));
/// ```
pub const PUBLIC_PREFIX: &str = "swpk1";
/// Prefix of a publisher secret key in text.
///
/// ```
/// use swarm_engine::release::{SECRET_PREFIX, SecretKey};
///
/// assert!(SecretKey::from_seed(&[1; 32]).to_text().starts_with(SECRET_PREFIX));
/// ```
pub const SECRET_PREFIX: &str = "swsk1";
/// Format byte of the binary record.
///
/// ```
/// use swarm_engine::release::FORMAT;
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let signed = Release {
/// #     publisher: key.public(),
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     version: semver::Version::new(1, 0, 0),
/// #     seq: 1,
/// #     root: Hash::of(b"manifest bytes"),
/// #     size: 1234,
/// #     created: 1_800_000_000,
/// #     expires: None,
/// #     rollout: Default::default(),
/// # }
/// # .sign(&key)?;
/// assert_eq!(signed.to_bytes()[0], FORMAT);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const FORMAT: u8 = 1;
/// Domain separation: signatures are over these bytes, then the record.
///
/// ```
/// use ed25519_dalek::{Signature, VerifyingKey};
/// use swarm_engine::release::CONTEXT;
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let signed = Release {
/// #     publisher: key.public(),
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     version: semver::Version::new(1, 0, 0),
/// #     seq: 1,
/// #     root: Hash::of(b"manifest bytes"),
/// #     size: 1234,
/// #     created: 1_800_000_000,
/// #     expires: None,
/// #     rollout: Default::default(),
/// # }
/// # .sign(&key)?;
/// // The binary form is the record, then a signature over CONTEXT || record.
/// let bytes = signed.to_bytes();
/// let (record, signature) = bytes.split_at(bytes.len() - 64);
/// let verifier = VerifyingKey::from_bytes(key.public().as_bytes())?;
/// let message = [CONTEXT, record].concat();
/// verifier.verify_strict(&message, &Signature::from_slice(signature)?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const CONTEXT: &[u8] = b"swarm-release-v1\0";
/// Largest binary release accepted (a BEP 44 value holds 1000 bytes).
///
/// ```
/// use swarm_engine::release::{MAX_BINARY, ReleaseError, SignedRelease};
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let signed = Release {
/// #     publisher: key.public(),
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     version: semver::Version::new(1, 0, 0),
/// #     seq: 1,
/// #     root: Hash::of(b"manifest bytes"),
/// #     size: 1234,
/// #     created: 1_800_000_000,
/// #     expires: None,
/// #     rollout: Default::default(),
/// # }
/// # .sign(&key)?;
/// assert!(signed.to_bytes().len() <= MAX_BINARY);
/// let oversized = vec![0; MAX_BINARY + 1];
/// assert_eq!(
///     SignedRelease::from_bytes(&oversized),
///     Err(ReleaseError::TokenTooLong(MAX_BINARY + 1))
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_BINARY: usize = 1000;
/// Largest token text accepted, checked before decoding.
///
/// ```
/// use swarm_engine::release::{MAX_TOKEN, ReleaseError, SignedRelease};
///
/// let long = format!("swr1{}", "a".repeat(MAX_TOKEN));
/// assert!(matches!(
///     SignedRelease::from_token(&long),
///     Err(ReleaseError::TokenTooLong(_))
/// ));
/// ```
pub const MAX_TOKEN: usize = TOKEN_PREFIX.len() + MAX_BINARY * 8 / 5 + 1;
/// Largest threshold token (`swr2…`) text accepted, checked before decoding.
pub const MAX_TOKEN_THRESHOLD: usize = TOKEN_PREFIX_THRESHOLD.len() + MAX_BUNDLE * 8 / 5 + 1;
/// Longest name, in bytes.
///
/// ```
/// use swarm_engine::release::{MAX_NAME, ReleaseError};
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let mut release = Release {
/// #     publisher: key.public(),
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     version: semver::Version::new(1, 0, 0),
/// #     seq: 1,
/// #     root: Hash::of(b"manifest bytes"),
/// #     size: 1234,
/// #     created: 1_800_000_000,
/// #     expires: None,
/// #     rollout: Default::default(),
/// # };
/// release.name = "a".repeat(MAX_NAME + 1);
/// assert!(matches!(
///     release.validate(),
///     Err(ReleaseError::BadField { field: "name", .. })
/// ));
/// ```
pub const MAX_NAME: usize = 64;
/// Longest channel, in bytes.
///
/// ```
/// use swarm_engine::release::{MAX_CHANNEL, ReleaseError};
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let mut release = Release {
/// #     publisher: key.public(),
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     version: semver::Version::new(1, 0, 0),
/// #     seq: 1,
/// #     root: Hash::of(b"manifest bytes"),
/// #     size: 1234,
/// #     created: 1_800_000_000,
/// #     expires: None,
/// #     rollout: Default::default(),
/// # };
/// release.channel = "c".repeat(MAX_CHANNEL + 1);
/// assert!(matches!(
///     release.validate(),
///     Err(ReleaseError::BadField { field: "channel", .. })
/// ));
/// ```
pub const MAX_CHANNEL: usize = 32;
/// Longest version string, in bytes.
///
/// ```
/// use swarm_engine::release::{MAX_VERSION, ReleaseError};
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let mut release = Release {
/// #     publisher: key.public(),
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     version: semver::Version::new(1, 0, 0),
/// #     seq: 1,
/// #     root: Hash::of(b"manifest bytes"),
/// #     size: 1234,
/// #     created: 1_800_000_000,
/// #     expires: None,
/// #     rollout: Default::default(),
/// # };
/// release.version = format!("1.0.0-{}", "x".repeat(MAX_VERSION)).parse()?;
/// assert!(matches!(
///     release.validate(),
///     Err(ReleaseError::BadField { field: "version", .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_VERSION: usize = 64;
/// The channel when none is given.
///
/// ```
/// use swarm_engine::release::DEFAULT_CHANNEL;
/// use swarm_engine::store::PublishOptions;
///
/// let opts = PublishOptions::new("app", semver::Version::new(1, 0, 0));
/// assert_eq!(opts.channel, DEFAULT_CHANNEL);
/// ```
pub const DEFAULT_CHANNEL: &str = "stable";

/// A publisher's public key: 32 bytes, printed as `swpk1` + base32.
///
/// ```
/// use swarm_engine::release::{PublicKey, SecretKey};
///
/// let public = SecretKey::from_seed(&[1; 32]).public();
/// let text = public.to_string(); // swpk1…, what `swarm keygen` prints
/// assert_eq!(text.parse::<PublicKey>()?, public);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// From raw bytes, if they are a valid Ed25519 point.
    ///
    /// ```
    /// use swarm_engine::release::{PublicKey, SecretKey};
    ///
    /// let public = SecretKey::from_seed(&[1; 32]).public();
    /// assert_eq!(PublicKey::from_bytes(*public.as_bytes()), Some(public));
    /// // Not every 32 bytes are a point on the curve.
    /// let mut not_a_point = [0; 32];
    /// not_a_point[0] = 2;
    /// assert_eq!(PublicKey::from_bytes(not_a_point), None);
    /// ```
    pub fn from_bytes(b: [u8; 32]) -> Option<Self> {
        VerifyingKey::from_bytes(&b).ok().map(|_| Self(b))
    }

    /// The raw bytes.
    ///
    /// ```
    /// use swarm_engine::release::{PublicKey, SecretKey};
    ///
    /// let public = SecretKey::from_seed(&[1; 32]).public();
    /// let raw: [u8; 32] = *public.as_bytes();
    /// assert_eq!(PublicKey::from_bytes(raw), Some(public));
    /// ```
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", base32::encode(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// `s` without `prefix`, compared without regard to ASCII case.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Whether `s` is meant as a signed release, as opposed to a bare root: it
/// has the token prefix (`swr1`) or the ticket prefix (`swt1`), in any
/// case. A ticket may still name a bare root
/// ([`ReleaseError::RootTicket`]).
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::release::is_token;
///
/// assert!(is_token("swr1aebagbaf"));
/// assert!(is_token("  SWR1AEBAGBAF\n"));
/// assert!(is_token("swt1aebagbaf"));
/// assert!(!is_token(&Hash::of(b"a bare root").to_hex()));
/// ```
pub fn is_token(s: &str) -> bool {
    strip_prefix_ci(s.trim(), TOKEN_PREFIX).is_some()
        || strip_prefix_ci(s.trim(), TOKEN_PREFIX_THRESHOLD).is_some()
        || crate::ticket::is_ticket(s)
}

/// A publisher's latest release of a name on a channel, as text
/// `PUBKEY/NAME[@CHANNEL]` (the channel defaults to [`DEFAULT_CHANNEL`]):
/// what is looked up on the DHT.
///
/// ```
/// use swarm_engine::release::{Pointer, SecretKey};
///
/// let key = SecretKey::from_seed(&[1; 32]).public();
/// let p: Pointer = format!("{key}/app").parse()?;
/// assert_eq!((p.name.as_str(), p.channel.as_str()), ("app", "stable"));
/// assert!(format!("{key}/@beta").parse::<Pointer>().is_err());
/// assert!(Pointer::looks_like("swpk1…/app") && !Pointer::looks_like("swr1…"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// The publisher's key.
    pub publisher: PublicKey,
    /// The release name.
    pub name: String,
    /// The channel.
    pub channel: String,
}

impl Pointer {
    /// Whether `s` is meant as a pointer rather than a token or a root
    /// (it has a `/`); parse it to know whether it is a good one.
    pub fn looks_like(s: &str) -> bool {
        s.contains('/')
    }
}

impl FromStr for Pointer {
    type Err = ReleaseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || {
            ReleaseError::Pointer(format!(
                "expected PUBKEY/NAME or PUBKEY/NAME@CHANNEL, got {s:?}"
            ))
        };
        let (key, rest) = s.trim().split_once('/').ok_or_else(shape)?;
        let (name, channel) = rest.split_once('@').unwrap_or((rest, DEFAULT_CHANNEL));
        if name.is_empty() || channel.is_empty() {
            return Err(shape());
        }
        Ok(Self {
            publisher: key.parse()?,
            name: name.to_owned(),
            channel: channel.to_owned(),
        })
    }
}

impl FromStr for PublicKey {
    type Err = ReleaseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // Never echo a secret key back into an error message or a log.
        if strip_prefix_ci(s, SECRET_PREFIX).is_some() {
            return Err(ReleaseError::SecretGivenAsPublic);
        }
        let bad = || ReleaseError::BadKey(s.chars().take(80).collect());
        let body = strip_prefix_ci(s, PUBLIC_PREFIX).ok_or_else(bad)?;
        let raw = base32::decode(body).ok_or_else(bad)?;
        let b: [u8; 32] = raw.try_into().map_err(|_| bad())?;
        Self::from_bytes(b).ok_or_else(bad)
    }
}

/// A publisher's secret key.
///
/// ```
/// use swarm_engine::release::SecretKey;
///
/// let key = SecretKey::from_seed(&[7; 32]);
/// let file = key.to_text();
/// assert_eq!(SecretKey::from_text(&file)?.public(), key.public());
/// // Debug output shows the public half only.
/// assert!(!format!("{key:?}").contains(&file));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    ///
    /// let a = SecretKey::generate()?;
    /// let b = SecretKey::generate()?;
    /// assert_ne!(a.public(), b.public());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Self::from_seed(&seed))
    }

    /// From a 32-byte seed.
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    ///
    /// // The same seed, the same key.
    /// let a = SecretKey::from_seed(&[7; 32]);
    /// let b = SecretKey::from_seed(&[7; 32]);
    /// assert_eq!(a.public(), b.public());
    /// ```
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The Ed25519 key, for signing DHT items with the same identity.
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// Its public key.
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    ///
    /// let key = SecretKey::from_seed(&[7; 32]);
    /// assert!(key.public().to_string().starts_with("swpk1"));
    /// ```
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// The key file text: `swsk1` + base32 of the seed. Keep it secret.
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    ///
    /// let key = SecretKey::from_seed(&[7; 32]);
    /// let text = key.to_text();
    /// assert!(text.starts_with("swsk1"));
    /// assert_eq!(SecretKey::from_text(&text)?.public(), key.public());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", base32::encode(&self.0.to_bytes()))
    }

    /// Parse key file text (surrounding whitespace and `#` comment lines ignored).
    ///
    /// ```
    /// use swarm_engine::release::{ReleaseError, SecretKey};
    ///
    /// let key = SecretKey::from_seed(&[7; 32]);
    /// let file = format!("# publisher key of my-app\n\n{}\n", key.to_text());
    /// assert_eq!(SecretKey::from_text(&file)?.public(), key.public());
    /// assert!(matches!(
    ///     SecretKey::from_text("not a key"),
    ///     Err(ReleaseError::BadSecretKey)
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_text(s: &str) -> Result<Self, ReleaseError> {
        let line = s
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or_default();
        let bad = || ReleaseError::BadSecretKey;
        let body = strip_prefix_ci(line, SECRET_PREFIX).ok_or_else(bad)?;
        let raw = base32::decode(body).ok_or_else(bad)?;
        let seed: [u8; 32] = raw.try_into().map_err(|_| bad())?;
        Ok(Self::from_seed(&seed))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public())
    }
}

/// What a release says. Everything here is covered by the signature.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::release::{Release, SecretKey, SignedRelease};
///
/// let key = SecretKey::from_seed(&[1; 32]);
/// let release = Release {
///     publisher: key.public(),
///     name: "app".into(),
///     channel: "stable".into(),
///     version: semver::Version::new(1, 2, 3),
///     seq: 1,
///     root: Hash::of(b"manifest bytes"),
///     size: 1234,
///     created: 1_800_000_000,
///     expires: None,
///     rollout: Default::default(),
/// };
/// let token = release.clone().sign(&key)?.to_token();
/// assert_eq!(SignedRelease::from_token(&token)?.release(), &release);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Who signed it.
    pub publisher: PublicKey,
    /// The application or content name (`[a-z0-9][a-z0-9._-]*`, ≤ 64 bytes).
    pub name: String,
    /// The channel (same characters, ≤ 32 bytes), e.g. `stable`, `beta`.
    pub channel: String,
    /// Semantic version.
    pub version: semver::Version,
    /// Strictly increasing per (publisher, name, channel).
    pub seq: u64,
    /// The root: hash of the manifest.
    pub root: Hash,
    /// Total bytes of the files.
    pub size: u64,
    /// Seconds since the Unix epoch when it was signed.
    pub created: u64,
    /// Seconds since the Unix epoch after which it must be refused.
    pub expires: Option<u64>,
    /// Who is offered it when, and whether it is critical (§2.1); the
    /// default says nothing and adds no bytes to the record.
    pub rollout: rollout::Rollout,
}

/// A release with its signature, exactly as decoded or signed.
///
/// ```
/// use swarm_engine::release::SignedRelease;
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let signed = Release {
/// #     publisher: key.public(),
/// #     name: "app".into(),
/// #     channel: "stable".into(),
/// #     version: semver::Version::new(1, 0, 0),
/// #     seq: 1,
/// #     root: Hash::of(b"manifest bytes"),
/// #     size: 1234,
/// #     created: 1_800_000_000,
/// #     expires: None,
/// #     rollout: Default::default(),
/// # }
/// # .sign(&key)?;
/// let token = signed.to_token();
/// let decoded = SignedRelease::from_token(&token)?;
/// assert_eq!(decoded, signed);
/// assert_eq!(decoded.release().publisher, key.public());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRelease {
    release: Release,
    /// The record bytes the signatures cover (after [`CONTEXT`] or
    /// [`CONTEXT_THRESHOLD`]).
    signed: Vec<u8>,
    sigs: Sigs,
}

/// How a release is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sigs {
    /// Format 1: by the publisher key alone.
    Single([u8; 64]),
    /// Format 2: by keys of the publisher's root `root_version`, each
    /// `(index in that root's keys, signature)`, ascending; with the roots
    /// it carries for a fetcher that knows an older one.
    Threshold {
        root_version: u64,
        sigs: Vec<(u8, [u8; 64])>,
        chain: Vec<SignedRoot>,
    },
}

/// A token, key or record that cannot be used.
///
/// ```
/// use swarm_engine::release::{PublicKey, ReleaseError, SecretKey};
///
/// let secret = SecretKey::from_seed(&[1; 32]).to_text();
/// // A secret key pasted where a public key belongs is refused, and not echoed.
/// let err = secret.parse::<PublicKey>().unwrap_err();
/// assert_eq!(err, ReleaseError::SecretGivenAsPublic);
/// assert!(!err.to_string().contains(&secret));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// Not a token at all.
    #[error(
        "not a signed release: a token starts with {TOKEN_PREFIX} or {TOKEN_PREFIX_THRESHOLD}, a \
         ticket with {}",
        crate::ticket::TICKET_PREFIX
    )]
    NotAToken,
    /// Longer than any valid token.
    #[error("token of {0} characters is longer than any valid token ({MAX_TOKEN})")]
    TokenTooLong(usize),
    /// Longer than any valid threshold token.
    #[error(
        "threshold token of {0} characters is longer than any valid one ({MAX_TOKEN_THRESHOLD})"
    )]
    ThresholdTokenTooLong(usize),
    /// Characters outside the token alphabet, or a mangled ending.
    #[error("token is damaged (characters outside a-z, 2-7, or cut off); copy it again")]
    BadEncoding,
    /// A format this build does not know.
    #[error("token format {0} is not supported by this build (it reads format 1)")]
    UnsupportedFormat(u8),
    /// The record ends early or has bytes left over.
    #[error("token is truncated or has extra bytes; copy it again")]
    Truncated,
    /// A field that breaks its rules.
    #[error("token field {field} is invalid: {why}")]
    BadField {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The signature does not verify. A `swr1` token has no checksum, so
    /// this cannot tell a typo from an alteration; a ticket (`swt1`) can.
    #[error(
        "the signature does not match: this token was mistyped, cut short or altered (a swr1 \
         token has no checksum to tell which); copy it again, and if it still fails, it was \
         altered"
    )]
    BadSignature,
    /// A ticket where a signed release was wanted, that cannot be used.
    #[error("{0}")]
    Ticket(Box<crate::ticket::TicketError>),
    /// A ticket of a bare root where a signed release was wanted.
    #[error(
        "this ticket names a bare root ({0}), not a signed release; give it where a root is \
         taken (swarm fetch, export, verify)"
    )]
    RootTicket(crate::Hash),
    /// A public key that does not parse.
    #[error("not a publisher key: {0:?} (expected a public key, {PUBLIC_PREFIX}…)")]
    BadKey(String),
    /// A publisher pointer that is not `PUBKEY/NAME[@CHANNEL]`.
    #[error("{0}")]
    Pointer(String),
    /// A secret key where a public key belongs.
    #[error(
        "that is a SECRET key (swsk1…), not a publisher's public key (swpk1…); never share \
         it, and use the public key that goes with it"
    )]
    SecretGivenAsPublic,
    /// A secret key file that does not parse.
    #[error("not a swarm secret key file (expected a line {SECRET_PREFIX}…)")]
    BadSecretKey,
}

fn check_label(field: &'static str, s: &str, max: usize) -> Result<(), ReleaseError> {
    let bad = |why: &str| {
        Err(ReleaseError::BadField {
            field,
            why: why.to_owned(),
        })
    };
    if s.is_empty() || s.len() > max {
        return bad(&format!("must be 1 to {max} bytes"));
    }
    let b = s.as_bytes();
    if !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
        return bad("must start with a-z or 0-9");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
    {
        return bad("may only hold a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

impl Release {
    /// Check every field's rules.
    ///
    /// ```
    /// use swarm_engine::release::ReleaseError;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let mut release = Release {
    /// #     publisher: key.public(),
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     version: semver::Version::new(1, 0, 0),
    /// #     seq: 1,
    /// #     root: Hash::of(b"manifest bytes"),
    /// #     size: 1234,
    /// #     created: 1_800_000_000,
    /// #     expires: None,
    /// #     rollout: Default::default(),
    /// # };
    /// assert_eq!(release.validate(), Ok(()));
    /// release.name = "My App".into();
    /// assert!(matches!(
    ///     release.validate(),
    ///     Err(ReleaseError::BadField { field: "name", .. })
    /// ));
    /// ```
    pub fn validate(&self) -> Result<(), ReleaseError> {
        check_label("name", &self.name, MAX_NAME)?;
        check_label("channel", &self.channel, MAX_CHANNEL)?;
        if self.version.to_string().len() > MAX_VERSION {
            return Err(ReleaseError::BadField {
                field: "version",
                why: format!("longer than {MAX_VERSION} bytes"),
            });
        }
        if self.expires.is_some_and(|e| e <= self.created) {
            return Err(ReleaseError::BadField {
                field: "expires",
                why: "expires before it was created".into(),
            });
        }
        self.rollout.validate()
    }

    /// The record bytes (wire-spec/release.md §2, §8.1), without the
    /// signatures: format 2 when a root version is given.
    fn encode(&self, root_version: Option<u64>) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(if root_version.is_some() {
            FORMAT_THRESHOLD
        } else {
            FORMAT
        });
        out.extend_from_slice(self.publisher.as_bytes());
        if let Some(v) = root_version {
            put_varint(&mut out, v);
        }
        put_str(&mut out, &self.name);
        put_str(&mut out, &self.channel);
        put_str(&mut out, &self.version.to_string());
        put_varint(&mut out, self.seq);
        out.extend_from_slice(self.root.as_bytes());
        put_varint(&mut out, self.size);
        put_varint(&mut out, self.created);
        // Bit 0: an expiry follows; bit 1: then the extension area (§2.1).
        let extended = if self.rollout.is_empty() { 0 } else { 2 };
        match self.expires {
            None => out.push(extended),
            Some(e) => {
                out.push(1 | extended);
                put_varint(&mut out, e);
            }
        }
        if extended != 0 {
            self.rollout.encode(&mut out);
        }
        out
    }

    /// Sign with `key`, which must be the publisher's.
    ///
    /// ```
    /// use swarm_engine::release::ReleaseError;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let mut release = Release {
    /// #     publisher: key.public(),
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     version: semver::Version::new(1, 0, 0),
    /// #     seq: 1,
    /// #     root: Hash::of(b"manifest bytes"),
    /// #     size: 1234,
    /// #     created: 1_800_000_000,
    /// #     expires: None,
    /// #     rollout: Default::default(),
    /// # };
    /// let signed = release.clone().sign(&key)?;
    /// assert_eq!(signed.release(), &release);
    /// // Only the publisher's own key signs its releases.
    /// let other = SecretKey::from_seed(&[2; 32]);
    /// assert!(matches!(
    ///     release.sign(&other),
    ///     Err(ReleaseError::BadField { field: "publisher", .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sign(self, key: &SecretKey) -> Result<SignedRelease, ReleaseError> {
        if key.public() != self.publisher {
            return Err(ReleaseError::BadField {
                field: "publisher",
                why: "is not the signing key's public key".into(),
            });
        }
        self.validate()?;
        let signed = self.encode(None);
        let signature = key.0.sign(&message(&signed)).to_bytes();
        Ok(SignedRelease {
            release: self,
            signed,
            sigs: Sigs::Single(signature),
        })
    }

    /// Sign as a format 2 release under the newest root of `chain` with
    /// `key`, one of that root's keys; the publisher must be the chain's.
    /// More signatures are added with [`SignedRelease::cosign`]. The
    /// release carries the chain's roots.
    ///
    /// ```
    /// use swarm_engine::Hash;
    /// use swarm_engine::release::{Chain, Release, Root, SecretKey, SignedRelease};
    ///
    /// let [a, b, c] = [1u8, 2, 3].map(|s| SecretKey::from_seed(&[s; 32]));
    /// let pointer = SecretKey::from_seed(&[9; 32]);
    /// let mut v1 = Root::new(pointer.public(), vec![a.public(), b.public(), c.public()], 2)?
    ///     .unsigned()?;
    /// v1.sign(&a, None)?;
    /// v1.sign(&c, None)?;
    /// let chain = Chain::start(v1)?;
    /// let release = Release {
    ///     publisher: pointer.public(),
    ///     name: "app".into(),
    ///     channel: "stable".into(),
    ///     version: semver::Version::new(1, 0, 0),
    ///     seq: 1,
    ///     root: Hash::of(b"manifest bytes"),
    ///     size: 1234,
    ///     created: 1_800_000_000,
    ///     expires: None,
    ///     rollout: Default::default(),
    /// };
    /// let mut signed = release.sign_threshold(&a, &chain)?;
    /// assert_eq!(signed.signer_count(), 1);
    /// // On another machine: decode the token, add a signature.
    /// let mut there = SignedRelease::from_token(&signed.to_token())?;
    /// there.cosign(&b, chain.newest())?;
    /// let mut signers = there.signers(chain.newest())?; // in key order
    /// signers.sort();
    /// let mut want = vec![a.public(), b.public()];
    /// want.sort();
    /// assert_eq!(signers, want);
    /// assert!(there.to_token().starts_with("swr2"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sign_threshold(
        self,
        key: &SecretKey,
        chain: &Chain,
    ) -> Result<SignedRelease, ReleaseError> {
        if self.publisher != chain.pointer() {
            return Err(ReleaseError::BadField {
                field: "publisher",
                why: format!("is not the key the root names ({})", chain.pointer()),
            });
        }
        self.validate()?;
        let newest = chain.newest();
        let mut signed = SignedRelease {
            signed: self.encode(Some(newest.version)),
            release: self,
            sigs: Sigs::Threshold {
                root_version: newest.version,
                sigs: Vec::new(),
                chain: chain.roots().cloned().collect(),
            },
        };
        signed.cosign(key, newest)?;
        Ok(signed)
    }
}

impl Release {
    /// The fields after the format byte (§2; §8.1 adds the root version
    /// after the publisher), validated, and checked to be canonical.
    fn read_after_format(
        r: &mut Reader<'_>,
        root_version: Option<&mut u64>,
    ) -> Result<Self, ReleaseError> {
        let start = r.pos - 1;
        let mut pk = [0u8; 32];
        pk.copy_from_slice(r.take(32)?);
        let publisher = PublicKey::from_bytes(pk).ok_or(ReleaseError::BadField {
            field: "publisher",
            why: "not an Ed25519 public key".into(),
        })?;
        let version_of_root = match root_version {
            Some(v) => {
                *v = r.varint()?;
                if *v == 0 {
                    return Err(ReleaseError::BadField {
                        field: "root version",
                        why: "0: root versions start at 1".into(),
                    });
                }
                Some(*v)
            }
            None => None,
        };
        let name = r.string(MAX_NAME)?;
        let channel = r.string(MAX_CHANNEL)?;
        let version_text = r.string(MAX_VERSION)?;
        let version =
            version_text
                .parse::<semver::Version>()
                .map_err(|e| ReleaseError::BadField {
                    field: "version",
                    why: e.to_string(),
                })?;
        let seq = r.varint()?;
        let mut root = [0u8; 32];
        root.copy_from_slice(r.take(32)?);
        let size = r.varint()?;
        let created = r.varint()?;
        let flags = r.take(1)?[0];
        if flags > 3 {
            return Err(ReleaseError::BadField {
                field: "expires",
                why: "bad option tag".into(),
            });
        }
        let expires = if flags & 1 == 1 {
            Some(r.varint()?)
        } else {
            None
        };
        let rollout = if flags & 2 == 2 {
            rollout::Rollout::read(r)?
        } else {
            rollout::Rollout::default()
        };
        let release = Release {
            publisher,
            name,
            channel,
            version,
            seq,
            root: Hash::from_bytes(root),
            size,
            created,
            expires,
            rollout,
        };
        release.validate()?;
        // Canonical: the version must print as it was written, and the
        // record must re-encode to the same bytes, so one release has one token.
        if release.version.to_string() != version_text
            || release.encode(version_of_root) != r.b[start..r.pos]
        {
            return Err(ReleaseError::BadField {
                field: "record",
                why: "not in canonical form".into(),
            });
        }
        Ok(release)
    }
}

fn message(signed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + signed.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(signed);
    m
}

fn message_threshold(signed: &[u8]) -> Vec<u8> {
    [CONTEXT_THRESHOLD, signed].concat()
}

impl SignedRelease {
    /// What it says.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let signed = Release {
    /// #     publisher: key.public(),
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     version: semver::Version::new(1, 0, 0),
    /// #     seq: 1,
    /// #     root: Hash::of(b"manifest bytes"),
    /// #     size: 1234,
    /// #     created: 1_800_000_000,
    /// #     expires: None,
    /// #     rollout: Default::default(),
    /// # }
    /// # .sign(&key)?;
    /// let r = signed.release();
    /// assert_eq!((r.name.as_str(), r.channel.as_str(), r.seq), ("app", "stable", 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(&self) -> &Release {
        &self.release
    }

    /// The binary form: record then 64-byte signature.
    ///
    /// ```
    /// use swarm_engine::release::{MAX_BINARY, SignedRelease};
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let signed = Release {
    /// #     publisher: key.public(),
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     version: semver::Version::new(1, 0, 0),
    /// #     seq: 1,
    /// #     root: Hash::of(b"manifest bytes"),
    /// #     size: 1234,
    /// #     created: 1_800_000_000,
    /// #     expires: None,
    /// #     rollout: Default::default(),
    /// # }
    /// # .sign(&key)?;
    /// let bytes = signed.to_bytes();
    /// assert!(bytes.len() <= MAX_BINARY); // fits a BEP 44 DHT item
    /// assert_eq!(SignedRelease::from_bytes(&bytes)?, signed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.to_pointer_bytes();
        if let Sigs::Threshold { chain, .. } = &self.sigs
            && !chain.is_empty()
        {
            v.push(chain.len() as u8);
            for r in chain {
                v.extend_from_slice(&r.to_bytes());
            }
        }
        v
    }

    /// The binary form without the roots a format 2 release carries: what
    /// goes in a DHT pointer (at most [`MAX_BINARY`] bytes). The same as
    /// [`Self::to_bytes`] for format 1.
    pub fn to_pointer_bytes(&self) -> Vec<u8> {
        let mut v = self.signed.clone();
        match &self.sigs {
            Sigs::Single(s) => v.extend_from_slice(s),
            Sigs::Threshold { sigs, .. } => {
                v.push(sigs.len() as u8);
                for (i, s) in sigs {
                    v.push(*i);
                    v.extend_from_slice(s);
                }
            }
        }
        v
    }

    /// 1 for a release signed by its publisher key alone, 2 for one signed
    /// by a threshold of the keys of a root.
    pub fn format(&self) -> u8 {
        match self.sigs {
            Sigs::Single(_) => FORMAT,
            Sigs::Threshold { .. } => FORMAT_THRESHOLD,
        }
    }

    /// The root version a format 2 release is signed under.
    pub fn root_version(&self) -> Option<u64> {
        match &self.sigs {
            Sigs::Single(_) => None,
            Sigs::Threshold { root_version, .. } => Some(*root_version),
        }
    }

    /// The roots a format 2 release carries, oldest first.
    pub fn chain(&self) -> &[SignedRoot] {
        match &self.sigs {
            Sigs::Single(_) => &[],
            Sigs::Threshold { chain, .. } => chain,
        }
    }

    /// How many signatures it carries (valid or not).
    pub fn signer_count(&self) -> usize {
        match &self.sigs {
            Sigs::Single(_) => 1,
            Sigs::Threshold { sigs, .. } => sigs.len(),
        }
    }

    /// Carry `chain`'s roots instead of those it has: a release signed
    /// before a rotation is not re-signed by this, it only travels with
    /// more of the chain.
    pub fn with_chain(mut self, chain: &Chain) -> Self {
        if let Sigs::Threshold { chain: c, .. } = &mut self.sigs {
            *c = chain.roots().cloned().collect();
        }
        self
    }

    /// The chain the roots it carries make, verified: from its first root,
    /// or from the implicit root of its publisher key when they start at
    /// version 2; `None` for format 1, no roots, or roots that do not verify.
    pub fn carried_chain(&self) -> Option<Chain> {
        let carried = self.chain();
        let first = carried.first()?;
        let mut chain = if first.root().version == 1 {
            Chain::start(first.clone()).ok()?
        } else {
            Chain::from_key(self.release.publisher)
        };
        chain.extend(carried).ok()?;
        Some(chain)
    }

    /// Carry `roots` (oldest first), unless it carries more already: for
    /// a release from a DHT pointer, completed with roots from the DHT.
    pub fn with_roots(mut self, roots: Vec<SignedRoot>) -> Self {
        if let Sigs::Threshold { chain: c, .. } = &mut self.sigs
            && roots.len() > c.len()
        {
            *c = roots;
        }
        self
    }

    /// Carry exactly `roots` (oldest first): to send it with fewer when
    /// the whole would not fit a message.
    pub(crate) fn with_only_roots(mut self, roots: Vec<SignedRoot>) -> Self {
        if let Sigs::Threshold { chain: c, .. } = &mut self.sigs {
            *c = roots;
        }
        self
    }

    /// Add `key`'s signature to a format 2 release signed under `root`.
    pub fn cosign(&mut self, key: &SecretKey, root: &Root) -> Result<(), ReleaseError> {
        let public = key.public();
        let Sigs::Threshold {
            root_version, sigs, ..
        } = &mut self.sigs
        else {
            return Err(ReleaseError::BadField {
                field: "format",
                why: "a format 1 release has its one signature; it cannot take more".into(),
            });
        };
        if root.version != *root_version || root.pointer != self.release.publisher {
            return Err(ReleaseError::BadField {
                field: "root",
                why: format!(
                    "the release is signed under root version {root_version}, not this root                      (version {})",
                    root.version
                ),
            });
        }
        let index = root
            .keys
            .binary_search(&public)
            .map_err(|_| ReleaseError::BadField {
                field: "key",
                why: format!(
                    "{public} is not one of the keys of root version {}",
                    root.version
                ),
            })? as u8;
        let at = match sigs.binary_search_by_key(&index, |s| s.0) {
            Ok(_) => {
                return Err(ReleaseError::BadField {
                    field: "key",
                    why: format!("{public} has signed this release already"),
                });
            }
            Err(at) => at,
        };
        let sig = key.0.sign(&message_threshold(&self.signed)).to_bytes();
        sigs.insert(at, (index, sig));
        Ok(())
    }

    /// The keys of `root` whose signatures on this format 2 release
    /// verify, each once; a signature that does not verify, or names an
    /// index `root` does not have, is an error naming it.
    pub fn signers(&self, root: &Root) -> Result<Vec<PublicKey>, ReleaseError> {
        let Sigs::Threshold { sigs, .. } = &self.sigs else {
            return Ok(vec![self.release.publisher]);
        };
        let m = message_threshold(&self.signed);
        let mut out = Vec::with_capacity(sigs.len());
        for (i, s) in sigs {
            let key = root
                .keys
                .get(usize::from(*i))
                .ok_or(ReleaseError::BadField {
                    field: "signature",
                    why: format!(
                        "by key index {i}, which root version {} does not have",
                        root.version
                    ),
                })?;
            root::verify(key, &m, s).map_err(|()| ReleaseError::BadField {
                field: "signature",
                why: format!("the signature of {key} does not verify: the token was altered"),
            })?;
            out.push(*key);
        }
        Ok(out)
    }

    /// The token text.
    ///
    /// ```
    /// use swarm_engine::release::SignedRelease;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let signed = Release {
    /// #     publisher: key.public(),
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     version: semver::Version::new(1, 0, 0),
    /// #     seq: 1,
    /// #     root: Hash::of(b"manifest bytes"),
    /// #     size: 1234,
    /// #     created: 1_800_000_000,
    /// #     expires: None,
    /// #     rollout: Default::default(),
    /// # }
    /// # .sign(&key)?;
    /// let token = signed.to_token();
    /// assert!(token.starts_with("swr1"));
    /// assert_eq!(SignedRelease::from_token(&token)?, signed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_token(&self) -> String {
        let prefix = match self.sigs {
            Sigs::Single(_) => TOKEN_PREFIX,
            Sigs::Threshold { .. } => TOKEN_PREFIX_THRESHOLD,
        };
        format!("{prefix}{}", base32::encode(&self.to_bytes()))
    }

    /// A hash of the signed record, to tell two records with one sequence apart.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let signed = Release {
    /// #     publisher: key.public(),
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     version: semver::Version::new(1, 0, 0),
    /// #     seq: 1,
    /// #     root: Hash::of(b"manifest bytes"),
    /// #     size: 1234,
    /// #     created: 1_800_000_000,
    /// #     expires: None,
    /// #     rollout: Default::default(),
    /// # }
    /// # .sign(&key)?;
    /// // Another root under the same sequence: a different record.
    /// let mut other = signed.release().clone();
    /// other.root = Hash::of(b"other manifest");
    /// let other = other.sign(&key)?;
    /// assert_ne!(signed.record_hash(), other.record_hash());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_hash(&self) -> Hash {
        Hash::of(&self.signed)
    }

    /// Decode the binary form and check its signature (not trust: see [`Policy`]).
    ///
    /// ```
    /// use swarm_engine::release::{ReleaseError, SignedRelease};
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let signed = Release {
    /// #     publisher: key.public(),
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     version: semver::Version::new(1, 0, 0),
    /// #     seq: 1,
    /// #     root: Hash::of(b"manifest bytes"),
    /// #     size: 1234,
    /// #     created: 1_800_000_000,
    /// #     expires: None,
    /// #     rollout: Default::default(),
    /// # }
    /// # .sign(&key)?;
    /// let mut bytes = signed.to_bytes();
    /// assert_eq!(SignedRelease::from_bytes(&bytes)?, signed);
    /// // Flip one bit of the signature.
    /// let last = bytes.len() - 1;
    /// bytes[last] ^= 1;
    /// assert_eq!(
    ///     SignedRelease::from_bytes(&bytes),
    ///     Err(ReleaseError::BadSignature)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReleaseError> {
        match bytes.first() {
            Some(&FORMAT_THRESHOLD) => Self::from_bytes_threshold(bytes),
            _ => Self::from_bytes_single(bytes),
        }
    }

    fn from_bytes_single(bytes: &[u8]) -> Result<Self, ReleaseError> {
        if bytes.len() > MAX_BINARY {
            return Err(ReleaseError::TokenTooLong(bytes.len()));
        }
        if bytes.len() < 64 {
            return Err(ReleaseError::Truncated);
        }
        let (signed, sig) = bytes.split_at(bytes.len() - 64);
        let mut r = Reader { b: signed, pos: 0 };
        let format = r.take(1)?[0];
        if format != FORMAT {
            return Err(ReleaseError::UnsupportedFormat(format));
        }
        let release = Release::read_after_format(&mut r, None)?;
        if r.pos != signed.len() {
            return Err(ReleaseError::Truncated);
        }
        let signature: [u8; 64] = sig.try_into().map_err(|_| ReleaseError::Truncated)?;
        root::verify(&release.publisher, &message(signed), &signature)
            .map_err(|()| ReleaseError::BadSignature)?;
        Ok(Self {
            release,
            signed: signed.to_vec(),
            sigs: Sigs::Single(signature),
        })
    }

    /// Format 2 (§8): the signatures are checked by the policy, against
    /// the root they are made under; here only the structure.
    fn from_bytes_threshold(bytes: &[u8]) -> Result<Self, ReleaseError> {
        if bytes.len() > MAX_BUNDLE {
            return Err(ReleaseError::TokenTooLong(bytes.len()));
        }
        let mut r = Reader { b: bytes, pos: 0 };
        r.take(1)?;
        let mut root_version = 0;
        let release = Release::read_after_format(&mut r, Some(&mut root_version))?;
        let signed = bytes[..r.pos].to_vec();
        let count = usize::from(r.take(1)?[0]);
        if count > MAX_KEYS {
            return Err(ReleaseError::BadField {
                field: "signatures",
                why: format!("{count} signatures, more than a root has keys ({MAX_KEYS})"),
            });
        }
        let mut sigs: Vec<(u8, [u8; 64])> = Vec::with_capacity(count);
        for _ in 0..count {
            let index = r.take(1)?[0];
            if sigs.last().is_some_and(|l| l.0 >= index) {
                return Err(ReleaseError::BadField {
                    field: "signatures",
                    why: "two by one key, or not in ascending key order".into(),
                });
            }
            let mut s = [0u8; 64];
            s.copy_from_slice(r.take(64)?);
            sigs.push((index, s));
        }
        if r.pos > MAX_BINARY {
            return Err(ReleaseError::TokenTooLong(r.pos));
        }
        let mut chain = Vec::new();
        if r.pos < bytes.len() {
            let n = usize::from(r.take(1)?[0]);
            if n == 0 || n > MAX_CHAIN + 1 {
                return Err(ReleaseError::BadField {
                    field: "chain",
                    why: format!("{n} roots: a release carries 1 to {} roots", MAX_CHAIN + 1),
                });
            }
            for _ in 0..n {
                let root = SignedRoot::read(&mut r).map_err(|e| ReleaseError::BadField {
                    field: "chain",
                    why: e.to_string(),
                })?;
                chain.push(root);
            }
            if r.pos != bytes.len() {
                return Err(ReleaseError::Truncated);
            }
        }
        Ok(Self {
            release,
            signed,
            sigs: Sigs::Threshold {
                root_version,
                sigs,
                chain,
            },
        })
    }

    /// Decode a token and check its signature. The length is capped before
    /// anything is decoded. A ticket (`swt1…`, `wire-spec/ticket.md`) of a
    /// signed release is taken too, its peers left out: its checksum tells
    /// a typo ([`crate::ticket::TicketError::Typo`]) from an alteration.
    ///
    /// ```
    /// use swarm_engine::release::{ReleaseError, SignedRelease};
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let signed = Release {
    /// #     publisher: key.public(),
    /// #     name: "app".into(),
    /// #     channel: "stable".into(),
    /// #     version: semver::Version::new(1, 0, 0),
    /// #     seq: 1,
    /// #     root: Hash::of(b"manifest bytes"),
    /// #     size: 1234,
    /// #     created: 1_800_000_000,
    /// #     expires: None,
    /// #     rollout: Default::default(),
    /// # }
    /// # .sign(&key)?;
    /// // Surrounding whitespace and letter case do not matter.
    /// let pasted = format!("  {}\n", signed.to_token().to_uppercase());
    /// assert_eq!(SignedRelease::from_token(&pasted)?, signed);
    /// assert_eq!(
    ///     SignedRelease::from_token("hello"),
    ///     Err(ReleaseError::NotAToken)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_token(token: &str) -> Result<Self, ReleaseError> {
        let t = token.trim();
        if crate::ticket::is_ticket(t) {
            let ticket: crate::ticket::Ticket =
                t.parse().map_err(|e| ReleaseError::Ticket(Box::new(e)))?;
            return match ticket.target {
                crate::ticket::TicketTarget::Release(s) => Ok(*s),
                crate::ticket::TicketTarget::Root(r) => Err(ReleaseError::RootTicket(r)),
            };
        }
        // The length first, before anything is decoded.
        let threshold = strip_prefix_ci(t, TOKEN_PREFIX_THRESHOLD);
        match threshold {
            Some(_) if t.len() > MAX_TOKEN_THRESHOLD => {
                return Err(ReleaseError::ThresholdTokenTooLong(t.len()));
            }
            None if t.len() > MAX_TOKEN => return Err(ReleaseError::TokenTooLong(t.len())),
            _ => {}
        }
        let (body, format) = match threshold {
            Some(b) => (b, FORMAT_THRESHOLD),
            None => (
                strip_prefix_ci(t, TOKEN_PREFIX).ok_or(ReleaseError::NotAToken)?,
                FORMAT,
            ),
        };
        let bytes = base32::decode(body).ok_or(ReleaseError::BadEncoding)?;
        // The prefix names the format: a record of the other is refused.
        match bytes.first() {
            Some(&f) if f != format => Err(ReleaseError::UnsupportedFormat(f)),
            _ => Self::from_bytes(&bytes),
        }
    }
}

/// Keys as a comma-separated list, for messages.
fn root_list(keys: &[PublicKey]) -> String {
    let all: Vec<String> = keys.iter().map(ToString::to_string).collect();
    all.join(", ")
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReleaseError> {
        let end = self.pos.checked_add(n).ok_or(ReleaseError::Truncated)?;
        let s = self.b.get(self.pos..end).ok_or(ReleaseError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, ReleaseError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.take(1)?[0];
            if i == 9 && b > 1 {
                return Err(ReleaseError::Truncated);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(ReleaseError::BadField {
                        field: "number",
                        why: "not in canonical form".into(),
                    });
                }
                return Ok(v);
            }
        }
        Err(ReleaseError::Truncated)
    }

    /// `00`, or `01` then a varint.
    fn option_varint(&mut self, field: &'static str) -> Result<Option<u64>, ReleaseError> {
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(self.varint()?)),
            _ => Err(ReleaseError::BadField {
                field,
                why: "bad option tag".into(),
            }),
        }
    }

    fn string(&mut self, max: usize) -> Result<String, ReleaseError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(ReleaseError::BadField {
                field: "string",
                why: format!("{len} bytes, at most {max}"),
            });
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec()).map_err(|_| ReleaseError::BadField {
            field: "string",
            why: "not UTF-8".into(),
        })
    }
}

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod tests;
