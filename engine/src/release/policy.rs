//! The trust and freshness policy, after TUF: a release is used only if it
//! is signed by a trusted key, not expired, for the name and channel asked
//! for, and not older than (or conflicting with) one already seen.

use std::collections::BTreeMap;

use super::{Chain, PublicKey, SignedRelease};
use crate::content::Hash;

/// What the user asked for; `None` accepts whatever the release says.
///
/// ```
/// use std::collections::BTreeMap;
/// use swarm_engine::release::{Policy, PolicyError, Want};
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
/// let mut policy = Policy::default();
/// policy.trust(key.public(), "app publisher");
/// let none = BTreeMap::new();
/// let want = Want { name: Some("app".into()), channel: Some("beta".into()) };
/// assert!(matches!(
///     policy.check(&signed, &want, &none),
///     Err(PolicyError::WrongChannel { .. })
/// ));
/// // `Want::default()` takes any name and channel.
/// assert_eq!(policy.check(&signed, &Want::default(), &none), Ok(()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Want {
    /// The name the release must carry.
    pub name: Option<String>,
    /// The channel the release must carry.
    pub channel: Option<String>,
}

/// The newest release seen for one (publisher, name, channel).
///
/// ```
/// use std::collections::BTreeMap;
/// use swarm_engine::release::{HighWater, Seen};
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
/// let r = signed.release();
/// let mut seen = BTreeMap::new();
/// seen.insert(
///     (r.publisher, r.name.clone(), r.channel.clone()),
///     Seen { seq: r.seq, record: signed.record_hash() },
/// );
/// assert_eq!(seen.seen(&r.publisher, "app", "stable").map(|s| s.seq), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its sequence number.
    pub seq: u64,
    /// [`SignedRelease::record_hash`] of it.
    pub record: Hash,
}

/// Where the newest seen releases are kept (the store persists them).
///
/// ```
/// use swarm_engine::release::{HighWater, Policy, PublicKey, Seen, Want};
///
/// /// Remembers nothing: no rollback protection across runs.
/// struct Forgetful;
///
/// impl HighWater for Forgetful {
///     fn seen(&self, _: &PublicKey, _: &str, _: &str) -> Option<Seen> {
///         None
///     }
/// }
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
/// let mut policy = Policy::default();
/// policy.trust(key.public(), "app publisher");
/// assert_eq!(policy.check(&signed, &Want::default(), &Forgetful), Ok(()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait HighWater {
    /// The newest release seen for this (publisher, name, channel).
    fn seen(&self, publisher: &PublicKey, name: &str, channel: &str) -> Option<Seen>;
}

/// The keys trusted and the current time.
///
/// ```
/// use std::collections::BTreeMap;
/// use swarm_engine::release::{Policy, PolicyError, Want};
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
/// let mut policy = Policy { now: 1_800_000_100, ..Default::default() };
/// let seen = BTreeMap::new();
/// assert!(matches!(
///     policy.check(&signed, &Want::default(), &seen),
///     Err(PolicyError::Untrusted { .. })
/// ));
/// policy.trust(key.public(), "app publisher");
/// assert_eq!(policy.check(&signed, &Want::default(), &seen), Ok(()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Trusted publishers, with a label each.
    pub trusted: BTreeMap<PublicKey, String>,
    /// The newest known chain of roots of trusted publishers that have one
    /// (a trusted key without one is its own implicit root).
    pub roots: BTreeMap<PublicKey, Chain>,
    /// Fingerprints of first roots (`swrf1…`) trusted, with a label each:
    /// a format 2 release whose carried chain starts at one is trusted.
    pub pins: BTreeMap<Hash, String>,
    /// Now, in seconds since the Unix epoch.
    pub now: u64,
}

/// Why a release is refused. Every message says what to do.
///
/// ```
/// use std::collections::BTreeMap;
/// use swarm_engine::release::{Policy, PolicyError, Want};
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
/// let mut expiring = signed.release().clone();
/// expiring.expires = Some(1_800_000_060);
/// let expiring = expiring.sign(&key)?;
/// let mut policy = Policy { now: 1_800_000_100, ..Default::default() };
/// policy.trust(key.public(), "app publisher");
/// let err = policy.check(&expiring, &Want::default(), &BTreeMap::new()).unwrap_err();
/// assert!(matches!(err, PolicyError::Expired { ago: 40, .. }));
/// // Every message says what to do.
/// assert!(err.to_string().contains("ask the publisher for a newer release"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Signed by a key nobody trusted.
    #[error(
        "release {name} is signed by {publisher}, which is not a trusted publisher; \
         if you trust it, add that key to the trusted publishers"
    )]
    Untrusted {
        /// The signer.
        publisher: PublicKey,
        /// The release name.
        name: String,
    },
    /// Past its expiry.
    #[error(
        "release {name} {version} expired {ago} seconds ago (at unix time {at}); \
         ask the publisher for a newer release"
    )]
    Expired {
        /// The release name.
        name: String,
        /// Its version.
        version: String,
        /// When it expired.
        at: u64,
        /// How long ago.
        ago: u64,
    },
    /// Another name than asked for.
    #[error("this release is for {got:?}, not {want:?}")]
    WrongName {
        /// Asked for.
        want: String,
        /// In the release.
        got: String,
    },
    /// Another channel than asked for.
    #[error("this release is on channel {got:?}, not {want:?}")]
    WrongChannel {
        /// Asked for.
        want: String,
        /// In the release.
        got: String,
    },
    /// Older than one already seen.
    #[error(
        "refusing a rollback: release {name} sequence {got} is older than sequence {seen} \
         already seen from this publisher on channel {channel}"
    )]
    Rollback {
        /// The release name.
        name: String,
        /// The channel.
        channel: String,
        /// This release's sequence.
        got: u64,
        /// The newest seen.
        seen: u64,
    },
    /// A format 2 release without enough valid signatures.
    #[error(
        "release {name} is signed by {have} of the {need} keys it needs (root version \
         {root_version}); still to sign, {more} more of: {}. Each signer runs \
         `swarm sign TOKEN --key FILE` and passes the token on",
        super::root_list(missing),
        more = usize::from(*need).saturating_sub(*have)
    )]
    Threshold {
        /// The release name.
        name: String,
        /// The root version it is signed under.
        root_version: u64,
        /// Valid signatures by keys of that root.
        have: usize,
        /// The root's threshold.
        need: u8,
        /// Keys of the root that have not signed.
        missing: Vec<PublicKey>,
    },
    /// A signature that does not verify, or by a key the root lacks.
    #[error("release {name}: {why}")]
    BadSignature {
        /// The release name.
        name: String,
        /// Which signature, and what is wrong.
        why: String,
    },
    /// Signed under a root that a newer one replaced.
    #[error(
        "release {name} is signed under root version {signed_under} of its publisher, which \
         root version {current} replaced: keys rotated out may have signed it, so it is \
         refused; ask the publisher to sign it under the current root"
    )]
    Superseded {
        /// The release name.
        name: String,
        /// The root version it names.
        signed_under: u64,
        /// The newest root version known.
        current: u64,
    },
    /// Signed under a root newer than any known, without the roots between.
    #[error(
        "release {name} is signed under root version {signed_under}, but this machine knows \
         the publisher's roots only up to version {known} and the token carries no roots \
         up to it; use a token that carries them, or `swarm trust add CHAINFILE`"
    )]
    ChainMissing {
        /// The release name.
        name: String,
        /// The root version it names.
        signed_under: u64,
        /// The newest known.
        known: u64,
    },
    /// The roots it carries do not extend the known chain.
    #[error("the publisher's chain of roots carried by release {name} is refused: {error}")]
    Chain {
        /// The release name.
        name: String,
        /// Why.
        error: super::RootError,
    },
    /// The newest root is past its expiry.
    #[error(
        "the publisher's root version {version} expired {ago} seconds ago (at unix time {at}); \
         the publisher must sign a new root"
    )]
    RootExpired {
        /// The root's version.
        version: u64,
        /// When it expired.
        at: u64,
        /// How long ago.
        ago: u64,
    },
    /// A single-key (format 1) release from a publisher that moved to a
    /// root with more keys.
    #[error(
        "release {name} is signed by the publisher key alone, but that publisher moved to root \
         version {version} ({threshold} of {keys} keys): a single-key release is refused"
    )]
    SingleKey {
        /// The release name.
        name: String,
        /// The newest root version.
        version: u64,
        /// Its threshold.
        threshold: u8,
        /// How many keys it has.
        keys: usize,
    },
    /// A different release with a sequence already used.
    #[error(
        "equivocation: the publisher signed two different releases of {name} with sequence \
         {seq} on channel {channel}; refusing this one. Report it to the publisher: their \
         key may be compromised"
    )]
    Equivocation {
        /// The release name.
        name: String,
        /// The channel.
        channel: String,
        /// The sequence used twice.
        seq: u64,
    },
}

impl PolicyError {
    /// A short name for the reason, as the metrics label it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Untrusted { .. } => "untrusted",
            Self::Expired { .. } => "expired",
            Self::WrongName { .. } => "wrong_name",
            Self::WrongChannel { .. } => "wrong_channel",
            Self::Rollback { .. } => "rollback",
            Self::Equivocation { .. } => "equivocation",
            Self::Threshold { .. } => "threshold",
            Self::BadSignature { .. } => "bad_signature",
            Self::Superseded { .. } => "superseded",
            Self::ChainMissing { .. } => "chain_missing",
            Self::Chain { .. } => "chain",
            Self::RootExpired { .. } => "root_expired",
            Self::SingleKey { .. } => "single_key",
        }
    }
}

impl Policy {
    /// Trust `key` under `label`.
    ///
    /// ```
    /// use swarm_engine::release::{Policy, SecretKey};
    ///
    /// let key = SecretKey::from_seed(&[1; 32]).public();
    /// let mut policy = Policy::default();
    /// policy.trust(key, "app publisher");
    /// assert_eq!(policy.trusted[&key], "app publisher");
    /// ```
    pub fn trust(&mut self, key: PublicKey, label: impl Into<String>) {
        self.trusted.insert(key, label.into());
    }

    /// Check `signed` (whose signature was verified when it was decoded)
    /// against the policy. `seen` holds the newest releases already seen.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use swarm_engine::release::{Policy, PolicyError, Seen, Want};
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
    /// let mut policy = Policy::default();
    /// policy.trust(key.public(), "app publisher");
    /// // Sequence 2 was seen before: sequence 1 is a rollback.
    /// let mut seen = BTreeMap::new();
    /// seen.insert(
    ///     (key.public(), "app".to_string(), "stable".to_string()),
    ///     Seen { seq: 2, record: Hash::of(b"record of sequence 2") },
    /// );
    /// assert!(matches!(
    ///     policy.check(&signed, &Want::default(), &seen),
    ///     Err(PolicyError::Rollback { got: 1, seen: 2, .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(
        &self,
        signed: &SignedRelease,
        want: &Want,
        seen: &dyn HighWater,
    ) -> Result<(), PolicyError> {
        self.check_trust(signed, want, seen).map(|_| ())
    }

    /// [`Self::check`], returning the publisher's chain when the release
    /// taught something new about it: roots it carried beyond the known
    /// chain, or a chain first trusted through a pinned fingerprint. The
    /// caller records it with the release, and nothing when it fails.
    pub fn check_trust(
        &self,
        signed: &SignedRelease,
        want: &Want,
        seen: &dyn HighWater,
    ) -> Result<Option<Chain>, PolicyError> {
        let r = signed.release();
        // Name and channel first: they are inside the signed bytes, so a
        // record for one app or channel cannot be replayed as another.
        if let Some(w) = want.name.as_ref().filter(|w| **w != r.name) {
            return Err(PolicyError::WrongName {
                want: w.clone(),
                got: r.name.clone(),
            });
        }
        if let Some(w) = want.channel.as_ref().filter(|w| **w != r.channel) {
            return Err(PolicyError::WrongChannel {
                want: w.clone(),
                got: r.channel.clone(),
            });
        }
        let learned = self.check_signers(signed)?;
        if let Some(at) = r.expires.filter(|at| self.now >= *at) {
            return Err(PolicyError::Expired {
                name: r.name.clone(),
                version: r.version.to_string(),
                at,
                ago: self.now - at,
            });
        }
        check_seq(signed, seen)?;
        Ok(learned)
    }

    /// Trust and signatures: a format 1 release by a trusted key that has
    /// not moved to a root of more keys; a format 2 release signed by a
    /// threshold of the newest root's keys, that root reached from a
    /// trusted one through the chain known and the roots it carries.
    fn check_signers(&self, signed: &SignedRelease) -> Result<Option<Chain>, PolicyError> {
        let r = signed.release();
        let known = self.roots.get(&r.publisher);
        let untrusted = || PolicyError::Untrusted {
            publisher: r.publisher,
            name: r.name.clone(),
        };
        let Some(root_version) = signed.root_version() else {
            if !self.trusted.contains_key(&r.publisher) {
                return Err(untrusted());
            }
            if let Some(c) = known.filter(|c| c.newest() != &super::Root::implicit(r.publisher)) {
                let n = c.newest();
                return Err(PolicyError::SingleKey {
                    name: r.name.clone(),
                    version: n.version,
                    threshold: n.threshold,
                    keys: n.keys.len(),
                });
            }
            return Ok(None);
        };
        let chain_error = |error| PolicyError::Chain {
            name: r.name.clone(),
            error,
        };
        let carried = signed.chain();
        let (mut chain, mut grew) = match known {
            Some(c) if self.trusted.contains_key(&r.publisher) => (c.clone(), false),
            None if self.trusted.contains_key(&r.publisher) => {
                if carried.first().is_some_and(|f| f.root().version == 1) {
                    return Err(chain_error(super::RootError::Text(
                        "its publisher key is trusted as a single key, and the release comes \
                         with a first root of other keys that key did not sign; trust that root \
                         instead (`swarm trust add`)"
                            .into(),
                    )));
                }
                (Chain::from_key(r.publisher), false)
            }
            _ => {
                // Trusted through a pinned fingerprint of the first root.
                let first = carried
                    .first()
                    .filter(|f| self.pins.contains_key(&f.fingerprint()))
                    .ok_or_else(untrusted)?;
                let c = Chain::start(first.clone()).map_err(chain_error)?;
                if c.pointer() != r.publisher {
                    return Err(untrusted());
                }
                // Follow on from what an earlier release from this pin
                // taught, so that its root version is not rolled back.
                match known.filter(|k| k.anchor() == c.anchor()) {
                    Some(k) => (k.clone(), false),
                    None => (c, true),
                }
            }
        };
        if chain.extend(carried).map_err(chain_error)? > 0 {
            grew = true;
        }
        let newest = chain.newest();
        if let Some(at) = newest.expires.filter(|at| self.now >= *at) {
            return Err(PolicyError::RootExpired {
                version: newest.version,
                at,
                ago: self.now - at,
            });
        }
        if root_version < newest.version {
            return Err(PolicyError::Superseded {
                name: r.name.clone(),
                signed_under: root_version,
                current: newest.version,
            });
        }
        if root_version > newest.version {
            return Err(PolicyError::ChainMissing {
                name: r.name.clone(),
                signed_under: root_version,
                known: newest.version,
            });
        }
        let signers = signed
            .signers(newest)
            .map_err(|e| PolicyError::BadSignature {
                name: r.name.clone(),
                why: match e {
                    super::ReleaseError::BadField { why, .. } => why,
                    other => other.to_string(),
                },
            })?;
        if signers.len() < usize::from(newest.threshold) {
            return Err(PolicyError::Threshold {
                name: r.name.clone(),
                root_version,
                have: signers.len(),
                need: newest.threshold,
                missing: newest
                    .keys
                    .iter()
                    .filter(|k| !signers.contains(k))
                    .copied()
                    .collect(),
            });
        }
        Ok(grew.then_some(chain))
    }
}

/// The freshness check alone (§5 step 5): against the newest seen, a lower
/// sequence is a rollback and the same one with other record bytes is
/// equivocation.
pub fn check_seq(signed: &SignedRelease, seen: &dyn HighWater) -> Result<(), PolicyError> {
    let r = signed.release();
    if let Some(s) = seen.seen(&r.publisher, &r.name, &r.channel) {
        if r.seq < s.seq {
            return Err(PolicyError::Rollback {
                name: r.name.clone(),
                channel: r.channel.clone(),
                got: r.seq,
                seen: s.seq,
            });
        }
        if r.seq == s.seq && signed.record_hash() != s.record {
            return Err(PolicyError::Equivocation {
                name: r.name.clone(),
                channel: r.channel.clone(),
                seq: r.seq,
            });
        }
    }
    Ok(())
}

impl HighWater for BTreeMap<(PublicKey, String, String), Seen> {
    fn seen(&self, publisher: &PublicKey, name: &str, channel: &str) -> Option<Seen> {
        self.get(&(*publisher, name.to_owned(), channel.to_owned()))
            .cloned()
    }
}
