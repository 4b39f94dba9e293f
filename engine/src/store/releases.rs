//! What the store keeps for signed releases: trusted publisher keys, and
//! the newest release seen per (publisher, name, channel), the high-water
//! mark that makes rollback and equivocation detectable across runs.

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::content::Hash;
use crate::release::{Chain, Policy, PolicyError, PublicKey, RootError, Seen, SignedRelease, Want};

/// publisher key -> label
pub(super) const TRUST: TableDefinition<'_, [u8; 32], &str> = TableDefinition::new("trust");
/// publisher || name || 0 || channel -> [`SeenEntry`]
pub(super) const SEEN: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("releases_seen");
/// publisher key -> its newest known chain of roots, as chain text
/// (`wire-spec/release.md` §8.3)
pub(super) const ROOTS: TableDefinition<'_, [u8; 32], &str> = TableDefinition::new("trust_roots");
/// fingerprint of a trusted first root -> label
pub(super) const ROOT_PINS: TableDefinition<'_, [u8; 32], &str> =
    TableDefinition::new("trust_pins");

/// A chain of roots that cannot be trusted as given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// It does not verify, or does not extend the chain already trusted.
    #[error(transparent)]
    Root(#[from] RootError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
/// #         rollout: Default::default(),
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
/// #         rollout: Default::default(),
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
            tx.open_table(ROOTS)?.remove(key.as_bytes())?;
            tx.commit()?;
            Ok(was)
        })
    }

    /// Trust the publisher of `chain` under `label`, from its first root
    /// (or the v1 key it starts from) to its newest. A chain already known
    /// for that publisher must be a prefix of this one, or this of it: the
    /// longer is kept.
    ///
    /// ```
    /// use swarm_engine::release::{Chain, Root, SecretKey};
    /// use swarm_engine::store::Store;
    ///
    /// let [a, b] = [1u8, 2].map(|s| SecretKey::from_seed(&[s; 32]));
    /// let pointer = SecretKey::from_seed(&[9; 32]).public();
    /// let mut v1 = Root::new(pointer, vec![a.public(), b.public()], 2)?.unsigned()?;
    /// v1.sign(&a, None)?;
    /// v1.sign(&b, None)?;
    /// let store = Store::memory()?;
    /// store.trust_chain(&Chain::start(v1)?, "ACME, 2 of 2")?;
    /// assert_eq!(store.trusted()?, vec![(pointer, "ACME, 2 of 2".to_string())]);
    /// assert_eq!(store.roots()?[0].1.newest().threshold, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust_chain(&self, chain: &Chain, label: &str) -> Result<(), TrustError> {
        let pointer = chain.pointer();
        let merged = match self.roots()?.into_iter().find(|(k, _)| *k == pointer) {
            Some((_, mut known)) => {
                let roots: Vec<_> = chain.roots().cloned().collect();
                if known.anchor() != chain.anchor() {
                    return Err(RootError::Fork(1).into());
                }
                known.extend(&roots)?;
                known
            }
            None => chain.clone(),
        };
        self.guard(|| {
            let tx = self.inner.db.begin_write()?;
            tx.open_table(TRUST)?.insert(pointer.as_bytes(), label)?;
            tx.open_table(ROOTS)?
                .insert(pointer.as_bytes(), merged.to_text().as_str())?;
            tx.commit()?;
            Ok::<(), StoreError>(())
        })?;
        Ok(())
    }

    /// Keep `chain` as the known chain of its publisher, unless one as new
    /// or newer is kept already; trusts nothing.
    pub(super) fn keep_chain(&self, chain: &Chain) -> Result<(), StoreError> {
        let pointer = chain.pointer();
        let known = self.roots()?.into_iter().find(|(k, _)| *k == pointer);
        if known.is_some_and(|(_, k)| k.newest().version >= chain.newest().version) {
            return Ok(());
        }
        self.guard(|| {
            let tx = self.inner.db.begin_write()?;
            tx.open_table(ROOTS)?
                .insert(pointer.as_bytes(), chain.to_text().as_str())?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Trust whichever publisher's chain starts at the root with this
    /// fingerprint (`swrf1…`), once a release carrying that chain arrives.
    pub fn trust_fingerprint(&self, fingerprint: &Hash, label: &str) -> Result<(), StoreError> {
        self.guard(|| {
            let tx = self.inner.db.begin_write()?;
            tx.open_table(ROOT_PINS)?
                .insert(fingerprint.as_bytes(), label)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// The known chains of trusted publishers that have one.
    pub fn roots(&self) -> Result<Vec<(PublicKey, Chain)>, StoreError> {
        self.read_table(ROOTS, |k, v| {
            // A chain we cannot read would silently drop a rotation:
            // refuse instead.
            let chain = Chain::from_text(v)
                .map_err(|e| StoreError::Db(format!("a trusted chain of roots is damaged: {e}")))?;
            Ok(PublicKey::from_bytes(k).map(|pk| (pk, chain)))
        })
    }

    /// Trusted fingerprints of first roots, with their labels.
    pub fn pins_trusted(&self) -> Result<Vec<(Hash, String)>, StoreError> {
        self.read_table(ROOT_PINS, |k, v| {
            Ok(Some((Hash::from_bytes(k), v.to_owned())))
        })
    }

    /// Every entry of `table` that `each` keeps; an empty list when the
    /// table was never written.
    fn read_table<K, V, T>(
        &self,
        table: TableDefinition<'_, K, V>,
        mut each: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError>
    where
        K: redb::Key + 'static,
        V: redb::Value + 'static,
    {
        self.guard(|| {
            let tx = self.inner.db.begin_read()?;
            let t = match tx.open_table(table) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                if let Some(x) = each(k.value(), v.value())? {
                    out.push(x);
                }
            }
            Ok(out)
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
        self.read_table(TRUST, |k, v| {
            Ok(PublicKey::from_bytes(k).map(|pk| (pk, v.to_owned())))
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
    /// #         rollout: Default::default(),
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
            for (k, chain) in self.roots()? {
                policy.roots.entry(k).or_insert(chain);
            }
            for (f, label) in self.pins_trusted()? {
                policy.pins.entry(f).or_insert(label);
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
    /// #         rollout: Default::default(),
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
        self.check_learning(policy, signed, want).map(|_| ())
    }

    fn check_learning(
        &self,
        policy: &Policy,
        signed: &SignedRelease,
        want: &Want,
    ) -> Result<Option<Chain>, AcceptError> {
        self.guard(|| {
            let seen = self.seen_map(signed.release())?;
            let learned = policy.check_trust(signed, want, &seen).inspect_err(|e| {
                crate::metrics::release(false, e.reason());
            })?;
            Ok(learned)
        })
    }

    /// The high-water mark of `r`'s (publisher, name, channel), as the
    /// policy reads it.
    fn seen_map(
        &self,
        r: &crate::release::Release,
    ) -> Result<BTreeMap<(PublicKey, String, String), Seen>, StoreError> {
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
        Ok(seen)
    }

    /// Make `signed` the newest seen; with `learned`, keep the chain of
    /// roots it taught, and trust its publisher under the label of the
    /// fingerprint pin it came through, if it did.
    fn write_seen(
        &self,
        signed: &SignedRelease,
        learned: Option<(&Chain, Option<&str>)>,
    ) -> Result<(), AcceptError> {
        let r = signed.release();
        let tx = self.inner.db.begin_write()?;
        if let Some((chain, pinned)) = learned {
            // Roots the release carried are kept with it, so that a root
            // version is never rolled back.
            if let Some(label) = pinned {
                tx.open_table(TRUST)
                    .map_err(StoreError::from)?
                    .insert(r.publisher.as_bytes(), label)
                    .map_err(StoreError::from)?;
            }
            tx.open_table(ROOTS)
                .map_err(StoreError::from)?
                .insert(r.publisher.as_bytes(), chain.to_text().as_str())
                .map_err(StoreError::from)?;
        }
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
        Ok(())
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
    /// #         rollout: Default::default(),
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
            let learned = self.check_learning(policy, signed, want)?;
            let pinned = learned.as_ref().and_then(|chain| {
                chain
                    .anchor()
                    .and_then(|a| policy.pins.get(&a))
                    .filter(|_| !policy.trusted.contains_key(&signed.release().publisher))
                    .map(|label| (chain, label.as_str()))
            });
            let learned = learned.as_ref().map(|c| (c, pinned.map(|p| p.1)));
            self.write_seen(signed, learned)?;
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
    /// #         rollout: Default::default(),
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
    /// Sign as a format 2 release under this chain's newest root, with the
    /// key given, one of its keys; the publisher is the chain's. `None`: a
    /// format 1 release by the key alone.
    pub chain: Option<Chain>,
    /// The sequence to use; refused if it is not past the newest known.
    /// `None`: one past the newest of this store's and [`Self::after`].
    pub seq: Option<u64>,
    /// The newest release of this (publisher, name, channel) known from
    /// elsewhere, as another machine published it: read from the DHT
    /// pointer, so that two machines never sign one sequence twice.
    pub after: Option<SignedRelease>,
    /// Publish a version lower than or equal to the newest published.
    pub allow_downgrade: bool,
    /// Who is offered it when, and whether it is critical
    /// (`wire-spec/release.md` §2.1); the default: everyone at once.
    pub rollout: crate::release::rollout::Rollout,
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
            chain: None,
            seq: None,
            after: None,
            allow_downgrade: false,
            rollout: Default::default(),
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
    /// The sequence asked for is not past the newest known.
    #[error(
        "sequence {seq} is not past the newest already published ({newest}) for {name} on \
         {channel}: a sequence is never reused; leave --seq out, or give one above {newest}"
    )]
    SeqUsed {
        /// The name.
        name: String,
        /// The channel.
        channel: String,
        /// Asked for.
        seq: u64,
        /// The newest known.
        newest: u64,
    },
    /// The version is not above the newest published on the channel.
    #[error(
        "version {version} is not above {newest}, the newest already published for {name} on \
         {channel}: fetchers would take it as the newest; raise the version, or pass \
         --allow-downgrade to publish it anyway"
    )]
    Downgrade {
        /// The name.
        name: String,
        /// The channel.
        channel: String,
        /// Asked for.
        version: String,
        /// The newest published.
        newest: String,
    },
    /// The key given cannot sign under the chain.
    #[error("{0}")]
    NotASigner(String),
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
    /// The sequence a publish of `release` takes, after checking that its
    /// version is above the newest published (unless allowed).
    fn publish_seq(
        &self,
        release: &crate::release::Release,
        opts: &PublishOptions,
    ) -> Result<u64, PublishError> {
        let r = release;
        let local = self
            .seen_entry(&r.publisher, &r.name, &r.channel)?
            .and_then(|e| SignedRelease::from_token(&e.token).ok());
        let elsewhere = opts.after.as_ref().filter(|a| {
            let a = a.release();
            a.publisher == r.publisher && a.name == r.name && a.channel == r.channel
        });
        let known: Vec<&crate::release::Release> = local
            .iter()
            .chain(elsewhere)
            .map(SignedRelease::release)
            .collect();
        let newest_seq = known.iter().map(|k| k.seq).max().unwrap_or(0);
        if let Some(v) = known.iter().map(|k| &k.version).max()
            && r.version <= *v
            && !opts.allow_downgrade
        {
            return Err(PublishError::Downgrade {
                name: r.name.clone(),
                channel: r.channel.clone(),
                version: r.version.to_string(),
                newest: v.to_string(),
            });
        }
        match opts.seq {
            Some(seq) if seq <= newest_seq => Err(PublishError::SeqUsed {
                name: r.name.clone(),
                channel: r.channel.clone(),
                seq,
                newest: newest_seq,
            }),
            Some(seq) => Ok(seq),
            None => Ok(newest_seq + 1),
        }
    }

    /// Record a release this machine signed (or co-signed) as the newest
    /// seen for its publisher, name and channel, so that the next publish
    /// here takes the sequence after it. Its signature and sequence are
    /// checked as for any release (a rollback or a second record under one
    /// sequence is refused); the threshold is not, as the other signers
    /// may still be to sign.
    pub fn record_signed(
        &self,
        signed: &SignedRelease,
        chain: Option<&Chain>,
    ) -> Result<(), AcceptError> {
        let r = signed.release();
        let mut own = Policy {
            now: r.created,
            ..Default::default()
        };
        own.trust(r.publisher, "this publisher");
        if let Some(c) = chain {
            own.roots.insert(r.publisher, c.clone());
        }
        match self.accept_release(&own, signed, &Want::default()) {
            Err(AcceptError::Policy(PolicyError::Threshold { .. })) => {
                // Recorded all the same, after the same rollback and
                // equivocation checks.
                self.guard(|| {
                    let _one_at_a_time = self
                        .inner
                        .gc_lock
                        .write()
                        .unwrap_or_else(|e| e.into_inner());
                    let seen = self.seen_map(r)?;
                    crate::release::check_seq(signed, &seen)?;
                    self.write_seen(signed, None)
                })
            }
            other => other,
        }
    }

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
                rollout: opts.rollout.clone(),
            };
            if let Some(chain) = &opts.chain {
                release.publisher = chain.pointer();
                if !chain.newest().keys.contains(&key.public()) {
                    return Err(PublishError::NotASigner(format!(
                        "{} is not one of the keys of the publisher's root version {}",
                        key.public(),
                        chain.newest().version
                    )));
                }
            }
            release.validate()?;
            release.seq = self.publish_seq(&release, opts)?;
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
            release.root = added.root;
            release.size = added.size;
            let signed = match &opts.chain {
                None => release.sign(key)?,
                Some(chain) => release.sign_threshold(key, chain)?,
            };
            self.record_signed(&signed, opts.chain.as_ref())?;
            Ok(Published {
                release: signed,
                added,
                patches,
            })
        })
    }
}
