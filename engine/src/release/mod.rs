//! Signed releases: the record that binds a name, channel and version to a
//! root under a publisher's Ed25519 signature, its byte format, the
//! copy-pasteable token, and the trust and rollback policy (`policy`).
//!
//! Pure: no I/O. Normative format: `wire-spec/release.md`.

pub(crate) mod base32;
mod policy;

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

pub use self::policy::{HighWater, Policy, PolicyError, Seen, Want};
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
    strip_prefix_ci(s.trim(), TOKEN_PREFIX).is_some() || crate::ticket::is_ticket(s)
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
    /// The record bytes the signature covers (after [`CONTEXT`]).
    signed: Vec<u8>,
    signature: [u8; 64],
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
        "not a signed release: a token starts with {TOKEN_PREFIX}, a ticket with {}",
        crate::ticket::TICKET_PREFIX
    )]
    NotAToken,
    /// Longer than any valid token.
    #[error("token of {0} characters is longer than any valid token ({MAX_TOKEN})")]
    TokenTooLong(usize),
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
        Ok(())
    }

    /// The record bytes (wire-spec/release.md §2), without the signature.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(FORMAT);
        out.extend_from_slice(self.publisher.as_bytes());
        put_str(&mut out, &self.name);
        put_str(&mut out, &self.channel);
        put_str(&mut out, &self.version.to_string());
        put_varint(&mut out, self.seq);
        out.extend_from_slice(self.root.as_bytes());
        put_varint(&mut out, self.size);
        put_varint(&mut out, self.created);
        match self.expires {
            None => out.push(0),
            Some(e) => {
                out.push(1);
                put_varint(&mut out, e);
            }
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
        let signed = self.encode();
        let signature = key.0.sign(&message(&signed)).to_bytes();
        Ok(SignedRelease {
            release: self,
            signed,
            signature,
        })
    }
}

fn message(signed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + signed.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(signed);
    m
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
    /// # }
    /// # .sign(&key)?;
    /// let bytes = signed.to_bytes();
    /// assert!(bytes.len() <= MAX_BINARY); // fits a BEP 44 DHT item
    /// assert_eq!(SignedRelease::from_bytes(&bytes)?, signed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.signed.clone();
        v.extend_from_slice(&self.signature);
        v
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
    /// # }
    /// # .sign(&key)?;
    /// let token = signed.to_token();
    /// assert!(token.starts_with("swr1"));
    /// assert_eq!(SignedRelease::from_token(&token)?, signed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_token(&self) -> String {
        format!("{TOKEN_PREFIX}{}", base32::encode(&self.to_bytes()))
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
        let mut pk = [0u8; 32];
        pk.copy_from_slice(r.take(32)?);
        let publisher = PublicKey::from_bytes(pk).ok_or(ReleaseError::BadField {
            field: "publisher",
            why: "not an Ed25519 public key".into(),
        })?;
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
        let expires = match r.take(1)?[0] {
            0 => None,
            1 => Some(r.varint()?),
            _ => {
                return Err(ReleaseError::BadField {
                    field: "expires",
                    why: "bad option tag".into(),
                });
            }
        };
        if r.pos != signed.len() {
            return Err(ReleaseError::Truncated);
        }
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
        };
        release.validate()?;
        // Canonical: the version must print as it was written, and the
        // record must re-encode to the same bytes, so one release has one token.
        if release.version.to_string() != version_text || release.encode() != signed {
            return Err(ReleaseError::BadField {
                field: "record",
                why: "not in canonical form".into(),
            });
        }
        let signature: [u8; 64] = sig.try_into().map_err(|_| ReleaseError::Truncated)?;
        let vk = VerifyingKey::from_bytes(publisher.as_bytes())
            .map_err(|_| ReleaseError::BadSignature)?;
        vk.verify_strict(
            &message(signed),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .map_err(|_| ReleaseError::BadSignature)?;
        Ok(Self {
            release,
            signed: signed.to_vec(),
            signature,
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
        if t.len() > MAX_TOKEN {
            return Err(ReleaseError::TokenTooLong(t.len()));
        }
        let body = strip_prefix_ci(t, TOKEN_PREFIX).ok_or(ReleaseError::NotAToken)?;
        let bytes = base32::decode(body).ok_or(ReleaseError::BadEncoding)?;
        Self::from_bytes(&bytes)
    }
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
mod tests;
