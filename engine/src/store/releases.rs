//! What the store keeps for signed releases: trusted publisher keys, and
//! the newest release seen per (publisher, name, channel), the high-water
//! mark that makes rollback and equivocation detectable across runs.

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::content::Hash;
use crate::release::{Policy, PolicyError, PublicKey, Seen, SignedRelease, Want};

/// publisher key -> label
pub(super) const TRUST: TableDefinition<'_, [u8; 32], &str> = TableDefinition::new("trust");
/// publisher || name || 0 || channel -> [`SeenEntry`]
pub(super) const SEEN: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("releases_seen");

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SeenEntry {
    pub(super) seq: u64,
    pub(super) record: [u8; 32],
    pub(super) token: String,
}

fn seen_key(publisher: &PublicKey, name: &str, channel: &str) -> Vec<u8> {
    let mut k = publisher.as_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    // Names and channels never hold a zero byte, so this separates them.
    k.push(0);
    k.extend_from_slice(channel.as_bytes());
    k
}

/// A release that was refused, or could not be checked.
///
/// ```
/// use swarm_engine::release::{Policy, PolicyError, Want};
/// use swarm_engine::store::{AcceptError, Store};
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let release = |seq| {
/// #     Release {
/// #         publisher: key.public(),
/// #         name: "app".into(),
/// #         channel: "stable".into(),
/// #         version: semver::Version::new(1, seq, 0),
/// #         seq,
/// #         root: Hash::of(&seq.to_le_bytes()),
/// #         size: 1234,
/// #         created: 1_800_000_000,
/// #         expires: None,
/// #     }
/// #     .sign(&key)
/// # };
/// # let signed = release(1)?;
/// let store = Store::memory()?;
/// // Nobody trusts this publisher yet.
/// let err = store
///     .accept_release(&Policy::default(), &signed, &Want::default())
///     .unwrap_err();
/// assert!(matches!(err, AcceptError::Policy(PolicyError::Untrusted { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The policy refuses it.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The newest release seen for one (publisher, name, channel).
///
/// ```
/// use swarm_engine::release::{Policy, Want};
/// use swarm_engine::store::Store;
///
/// # use swarm_engine::Hash;
/// # use swarm_engine::release::{Release, SecretKey};
/// # let key = SecretKey::from_seed(&[1; 32]);
/// # let release = |seq| {
/// #     Release {
/// #         publisher: key.public(),
/// #         name: "app".into(),
/// #         channel: "stable".into(),
/// #         version: semver::Version::new(1, seq, 0),
/// #         seq,
/// #         root: Hash::of(&seq.to_le_bytes()),
/// #         size: 1234,
/// #         created: 1_800_000_000,
/// #         expires: None,
/// #     }
/// #     .sign(&key)
/// # };
/// # let signed = release(1)?;
/// let store = Store::memory()?;
/// store.trust(&key.public(), "app publisher")?;
/// let policy = store.policy(Policy::default())?;
/// store.accept_release(&policy, &signed, &Want::default())?;
/// let seen = store.release_seen(&key.public(), "app", "stable")?.expect("accepted");
/// assert_eq!(seen.seq, 1);
/// assert_eq!(seen.token, signed.to_token());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRelease {
    /// Its sequence number.
    pub seq: u64,
    /// Its token.
    pub token: String,
}

impl Store {
    /// Trust `key` as a publisher, under `label`.
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let key = SecretKey::from_seed(&[1; 32]).public();
    /// store.trust(&key, "ACME releases")?;
    /// assert_eq!(store.trusted()?, vec![(key, "ACME releases".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust(&self, key: &PublicKey, label: &str) -> Result<(), StoreError> {
        self.guard(|| {
            let tx = self.inner.db.begin_write()?;
            tx.open_table(TRUST)?.insert(key.as_bytes(), label)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Stop trusting `key`. Returns whether it was trusted.
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let key = SecretKey::from_seed(&[1; 32]).public();
    /// store.trust(&key, "ACME releases")?;
    /// assert!(store.distrust(&key)?);
    /// assert!(!store.distrust(&key)?); // no longer trusted
    /// assert!(store.trusted()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn distrust(&self, key: &PublicKey) -> Result<bool, StoreError> {
        self.guard(|| {
            let tx = self.inner.db.begin_write()?;
            let was = tx.open_table(TRUST)?.remove(key.as_bytes())?.is_some();
            tx.commit()?;
            Ok(was)
        })
    }

    /// Trusted publishers with their labels.
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// assert!(store.trusted()?.is_empty());
    /// store.trust(&SecretKey::from_seed(&[1; 32]).public(), "one")?;
    /// store.trust(&SecretKey::from_seed(&[2; 32]).public(), "two")?;
    /// for (key, label) in store.trusted()? {
    ///     println!("{key} {label}");
    /// }
    /// assert_eq!(store.trusted()?.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trusted(&self) -> Result<Vec<(PublicKey, String)>, StoreError> {
        self.guard(|| {
            let tx = self.inner.db.begin_read()?;
            let t = match tx.open_table(TRUST) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                if let Some(pk) = PublicKey::from_bytes(k.value()) {
                    out.push((pk, v.value().to_owned()));
                }
            }
            Ok(out)
        })
    }

    /// The newest release seen for (publisher, name, channel).
    ///
    /// ```
    /// use swarm_engine::release::{Policy, Want};
    /// use swarm_engine::store::Store;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let release = |seq| {
    /// #     Release {
    /// #         publisher: key.public(),
    /// #         name: "app".into(),
    /// #         channel: "stable".into(),
    /// #         version: semver::Version::new(1, seq, 0),
    /// #         seq,
    /// #         root: Hash::of(&seq.to_le_bytes()),
    /// #         size: 1234,
    /// #         created: 1_800_000_000,
    /// #         expires: None,
    /// #     }
    /// #     .sign(&key)
    /// # };
    /// # let signed = release(1)?;
    /// let store = Store::memory()?;
    /// assert_eq!(store.release_seen(&key.public(), "app", "stable")?, None);
    /// store.trust(&key.public(), "app publisher")?;
    /// store.accept_release(&store.policy(Policy::default())?, &signed, &Want::default())?;
    /// let seen = store.release_seen(&key.public(), "app", "stable")?;
    /// assert_eq!(seen.map(|s| s.seq), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release_seen(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
    ) -> Result<Option<SeenRelease>, StoreError> {
        self.guard(|| {
            Ok(self
                .seen_entry(publisher, name, channel)?
                .map(|e| SeenRelease {
                    seq: e.seq,
                    token: e.token,
                }))
        })
    }

    fn seen_entry(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
    ) -> Result<Option<SeenEntry>, StoreError> {
        let tx = self.inner.db.begin_read()?;
        let t = match tx.open_table(SEEN) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let key = seen_key(publisher, name, channel);
        let Some(v) = t.get(key.as_slice())? else {
            return Ok(None);
        };
        // A record we cannot read would silently disable rollback
        // protection: refuse instead.
        postcard::from_bytes(v.value())
            .map(Some)
            .map_err(|_| StoreError::Db("a release high-water record is damaged".into()))
    }

    /// The policy with this store's trusted keys added to `policy`'s.
    ///
    /// ```
    /// use swarm_engine::release::{Policy, SecretKey};
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let stored = SecretKey::from_seed(&[1; 32]).public();
    /// let given = SecretKey::from_seed(&[2; 32]).public();
    /// store.trust(&stored, "from the store")?;
    /// let mut base = Policy { now: 1_800_000_000, ..Policy::default() };
    /// base.trust(given, "from the command line");
    /// let policy = store.policy(base)?;
    /// assert_eq!(policy.trusted.len(), 2);
    /// assert_eq!(policy.now, 1_800_000_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn policy(&self, mut policy: Policy) -> Result<Policy, StoreError> {
        self.guard(|| {
            for (k, label) in self.trusted()? {
                policy.trusted.entry(k).or_insert(label);
            }
            Ok(policy)
        })
    }

    /// Check `signed` against `policy` and this store's high-water mark
    /// without recording anything.
    ///
    /// ```
    /// use swarm_engine::release::{Policy, Want};
    /// use swarm_engine::store::Store;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let release = |seq| {
    /// #     Release {
    /// #         publisher: key.public(),
    /// #         name: "app".into(),
    /// #         channel: "stable".into(),
    /// #         version: semver::Version::new(1, seq, 0),
    /// #         seq,
    /// #         root: Hash::of(&seq.to_le_bytes()),
    /// #         size: 1234,
    /// #         created: 1_800_000_000,
    /// #         expires: None,
    /// #     }
    /// #     .sign(&key)
    /// # };
    /// # let signed = release(1)?;
    /// let store = Store::memory()?;
    /// store.trust(&key.public(), "app publisher")?;
    /// let policy = store.policy(Policy::default())?;
    /// store.check_release(&policy, &signed, &Want::default())?;
    /// // Checking records nothing.
    /// assert_eq!(store.release_seen(&key.public(), "app", "stable")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_release(
        &self,
        policy: &Policy,
        signed: &SignedRelease,
        want: &Want,
    ) -> Result<(), AcceptError> {
        self.guard(|| {
            let r = signed.release();
            let mut seen = BTreeMap::new();
            if let Some(e) = self.seen_entry(&r.publisher, &r.name, &r.channel)? {
                seen.insert(
                    (r.publisher, r.name.clone(), r.channel.clone()),
                    Seen {
                        seq: e.seq,
                        record: Hash::from_bytes(e.record),
                    },
                );
            }
            policy.check(signed, want, &seen).inspect_err(|e| {
                crate::metrics::release(false, e.reason());
            })?;
            Ok(())
        })
    }

    /// Check `signed` and, if it passes, make it the newest seen, in one
    /// step (a concurrent accept cannot slip an older one in between).
    ///
    /// ```
    /// use swarm_engine::release::{Policy, PolicyError, Want};
    /// use swarm_engine::store::{AcceptError, Store};
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let release = |seq| {
    /// #     Release {
    /// #         publisher: key.public(),
    /// #         name: "app".into(),
    /// #         channel: "stable".into(),
    /// #         version: semver::Version::new(1, seq, 0),
    /// #         seq,
    /// #         root: Hash::of(&seq.to_le_bytes()),
    /// #         size: 1234,
    /// #         created: 1_800_000_000,
    /// #         expires: None,
    /// #     }
    /// #     .sign(&key)
    /// # };
    /// # let signed = release(1)?;
    /// let store = Store::memory()?;
    /// store.trust(&key.public(), "app publisher")?;
    /// let policy = store.policy(Policy::default())?;
    /// store.accept_release(&policy, &release(2)?, &Want::default())?;
    /// // From now on, sequence 1 is a rollback, in this run and the next.
    /// let err = store.accept_release(&policy, &signed, &Want::default()).unwrap_err();
    /// assert!(matches!(err, AcceptError::Policy(PolicyError::Rollback { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_release(
        &self,
        policy: &Policy,
        signed: &SignedRelease,
        want: &Want,
    ) -> Result<(), AcceptError> {
        self.guard(|| {
            let _one_at_a_time = self
                .inner
                .gc_lock
                .write()
                .unwrap_or_else(|e| e.into_inner());
            self.check_release(policy, signed, want)?;
            let r = signed.release();
            let tx = self.inner.db.begin_write()?;
            {
                let mut t = tx.open_table(SEEN).map_err(StoreError::from)?;
                let key = seen_key(&r.publisher, &r.name, &r.channel);
                let entry = SeenEntry {
                    seq: r.seq,
                    record: *signed.record_hash().as_bytes(),
                    token: signed.to_token(),
                };
                let bytes = postcard::to_allocvec(&entry).unwrap_or_default();
                t.insert(key.as_slice(), bytes.as_slice())
                    .map_err(StoreError::from)?;
            }
            tx.commit().map_err(StoreError::from)?;
            crate::metrics::release(true, "ok");
            Ok(())
        })
    }

    /// The next sequence number for a publisher's (name, channel): one past
    /// the newest seen.
    ///
    /// ```
    /// use swarm_engine::release::{Policy, Want};
    /// use swarm_engine::store::Store;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::release::{Release, SecretKey};
    /// # let key = SecretKey::from_seed(&[1; 32]);
    /// # let release = |seq| {
    /// #     Release {
    /// #         publisher: key.public(),
    /// #         name: "app".into(),
    /// #         channel: "stable".into(),
    /// #         version: semver::Version::new(1, seq, 0),
    /// #         seq,
    /// #         root: Hash::of(&seq.to_le_bytes()),
    /// #         size: 1234,
    /// #         created: 1_800_000_000,
    /// #         expires: None,
    /// #     }
    /// #     .sign(&key)
    /// # };
    /// # let signed = release(1)?;
    /// let store = Store::memory()?;
    /// assert_eq!(store.next_seq(&key.public(), "app", "stable")?, 1);
    /// store.trust(&key.public(), "app publisher")?;
    /// store.accept_release(&store.policy(Policy::default())?, &signed, &Want::default())?;
    /// assert_eq!(store.next_seq(&key.public(), "app", "stable")?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_seq(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
    ) -> Result<u64, StoreError> {
        self.guard(|| {
            Ok(self
                .seen_entry(publisher, name, channel)?
                .map_or(1, |e| e.seq + 1))
        })
    }
}

/// What [`Store::publish`] makes of the files: the release's fields other
/// than the publisher (the key's), the sequence (the next one) and the
/// root and size (the files').
///
/// ```
/// use swarm_engine::store::PublishOptions;
///
/// // A beta that stops being accepted after 30 days.
/// let mut opts = PublishOptions::new("my-app", semver::Version::parse("2.0.0-beta.1")?);
/// opts.channel = "beta".into();
/// opts.expires = Some(opts.created + 30 * 24 * 3600);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The application or content name.
    pub name: String,
    /// The channel, e.g. `stable` ([`crate::release::DEFAULT_CHANNEL`]).
    pub channel: String,
    /// The version.
    pub version: semver::Version,
    /// When it was made, in Unix seconds.
    pub created: u64,
    /// When it stops being accepted, in Unix seconds; `None`: never.
    pub expires: Option<u64>,
    /// Earlier releases (their roots, stored here complete) to make patches
    /// from: each file that changed gets a patch from the file at the same
    /// path in each of them (`wire-spec/content.md` §2.6, §3), listed in
    /// the manifest so that the signature covers it.
    pub delta_from: Vec<Hash>,
}

impl PublishOptions {
    /// `name` at `version` on the default channel, created now, never
    /// expiring.
    ///
    /// ```
    /// use swarm_engine::store::PublishOptions;
    ///
    /// let opts = PublishOptions::new("my-app", semver::Version::new(1, 2, 0));
    /// assert_eq!(opts.channel, "stable");
    /// assert!(opts.expires.is_none());
    /// ```
    pub fn new(name: impl Into<String>, version: semver::Version) -> Self {
        Self {
            name: name.into(),
            channel: crate::release::DEFAULT_CHANNEL.to_owned(),
            version,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            expires: None,
            delta_from: Vec::new(),
        }
    }
}

/// A release made by [`Store::publish`].
///
/// ```
/// use swarm_engine::release::{SecretKey, SignedRelease};
/// use swarm_engine::store::{PublishOptions, Store};
///
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("app");
/// std::fs::write(&file, b"the app")?;
/// let store = Store::memory()?;
/// let key = SecretKey::from_seed(&[7; 32]);
/// let opts = PublishOptions::new("app", semver::Version::new(1, 0, 0));
/// let published = store.publish(&key, &[file], &opts)?;
/// // The token is what users give `swarm fetch`.
/// let token = published.release.to_token();
/// assert_eq!(SignedRelease::from_token(&token)?.release().root, published.added.root);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Published {
    /// The signed release; [`SignedRelease::to_token`] is what to hand out.
    pub release: SignedRelease,
    /// What adding the files stored.
    pub added: super::Added,
    /// The patches made for it ([`PublishOptions::delta_from`]).
    pub patches: Vec<super::MadePatch>,
}

/// Publishing failed. Nothing is recorded as published.
///
/// ```
/// use swarm_engine::release::{ReleaseError, SecretKey};
/// use swarm_engine::store::{PublishError, PublishOptions, Store};
///
/// let store = Store::memory()?;
/// let key = SecretKey::from_seed(&[7; 32]);
/// let opts = PublishOptions::new("My App", semver::Version::new(1, 0, 0));
/// // Refused before anything is stored: names are lowercase.
/// let err = store.publish(&key, &["app".into()], &opts).unwrap_err();
/// assert!(matches!(err, PublishError::Release(ReleaseError::BadField { field: "name", .. })));
/// assert!(store.pins()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The release's fields are invalid (checked before anything is stored).
    #[error(transparent)]
    Release(#[from] crate::release::ReleaseError),
    /// Adding the files failed.
    #[error(transparent)]
    Add(#[from] super::AddError),
    /// Recording it as the newest release failed.
    #[error(transparent)]
    Accept(#[from] AcceptError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading what was added, to patch it, failed.
    #[error(transparent)]
    Read(#[from] super::ReadError),
    /// Making a patch failed.
    #[error("making a patch failed: {0}")]
    Patch(#[source] std::io::Error),
    /// The manifest with its patches is not valid (a bug here).
    #[error("the manifest with patches is not valid: {0}")]
    Manifest(#[from] crate::content::ManifestError),
    /// A release to patch from is not stored complete here.
    #[error("cannot make patches from {root}: {source}")]
    Base {
        /// Its root.
        root: Hash,
        /// Why it cannot be read.
        source: super::ReadError,
    },
}

impl Store {
    /// Add `paths` (pinned under the release name), sign a release of them
    /// with `key` at the next sequence for (key, name, channel), and record
    /// it as the newest seen, so the next publish takes the sequence after.
    /// Nothing leaves the machine: hand out the token, or put it on the DHT
    /// ([`crate::node::Node::publish`] does both steps).
    ///
    /// ```
    /// use swarm_engine::release::SecretKey;
    /// use swarm_engine::store::{PublishOptions, Store};
    ///
    /// let store = Store::memory()?;
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("app");
    /// std::fs::write(&file, b"version one")?;
    /// let key = SecretKey::from_seed(&[7; 32]);
    /// let opts = PublishOptions::new("app", semver::Version::new(1, 0, 0));
    /// let first = store.publish(&key, &[file.clone()], &opts)?;
    /// assert_eq!(first.release.release().seq, 1);
    /// std::fs::write(&file, b"version two")?;
    /// let opts = PublishOptions::new("app", semver::Version::new(2, 0, 0));
    /// let second = store.publish(&key, &[file], &opts)?;
    /// assert_eq!(second.release.release().seq, 2);
    /// assert_eq!(second.release.release().root, second.added.root);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn publish(
        &self,
        key: &crate::release::SecretKey,
        paths: &[std::path::PathBuf],
        opts: &PublishOptions,
    ) -> Result<Published, PublishError> {
        self.guard(|| {
            let mut release = crate::release::Release {
                publisher: key.public(),
                name: opts.name.clone(),
                channel: opts.channel.clone(),
                version: opts.version.clone(),
                seq: 0,
                root: Hash::of(b""),
                size: 0,
                created: opts.created,
                expires: opts.expires,
            };
            release.validate()?;
            let added = self.add_paths(
                paths,
                &super::AddOptions {
                    name: Some(opts.name.clone()),
                    progress: None,
                },
            )?;
            let (added, patches) = if opts.delta_from.is_empty() {
                (added, Vec::new())
            } else {
                self.add_patches(added, &opts.name, &opts.delta_from)?
            };
            release.seq = self.next_seq(&key.public(), &opts.name, &opts.channel)?;
            release.root = added.root;
            release.size = added.size;
            let signed = release.sign(key)?;
            // The signer is trusted for this step only.
            let mut own = Policy {
                now: opts.created,
                ..Default::default()
            };
            own.trust(key.public(), "this key");
            self.accept_release(&own, &signed, &Want::default())?;
            Ok(Published {
                release: signed,
                added,
                patches,
            })
        })
    }
}
