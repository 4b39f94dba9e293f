//! What the store keeps for signed releases: trusted publisher keys, and
//! the newest release seen per (publisher, name, channel), the high-water
//! mark that makes rollback and equivocation detectable across runs.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::content::Hash;
use crate::release::{Policy, PolicyError, PublicKey, Seen, SignedRelease, Want};

/// publisher key -> label
const TRUST: TableDefinition<'_, [u8; 32], &str> = TableDefinition::new("trust");
/// publisher || name || 0 || channel -> [`SeenEntry`]
const SEEN: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("releases_seen");

#[derive(Debug, Serialize, Deserialize)]
struct SeenEntry {
    seq: u64,
    record: [u8; 32],
    token: String,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRelease {
    /// Its sequence number.
    pub seq: u64,
    /// Its token.
    pub token: String,
}

impl Store {
    /// Trust `key` as a publisher, under `label`.
    pub fn trust(&self, key: &PublicKey, label: &str) -> Result<(), StoreError> {
        let tx = self.inner.db.begin_write()?;
        tx.open_table(TRUST)?.insert(key.as_bytes(), label)?;
        tx.commit()?;
        Ok(())
    }

    /// Stop trusting `key`. Returns whether it was trusted.
    pub fn distrust(&self, key: &PublicKey) -> Result<bool, StoreError> {
        let tx = self.inner.db.begin_write()?;
        let was = tx.open_table(TRUST)?.remove(key.as_bytes())?.is_some();
        tx.commit()?;
        Ok(was)
    }

    /// Trusted publishers with their labels.
    pub fn trusted(&self) -> Result<Vec<(PublicKey, String)>, StoreError> {
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
    }

    /// The newest release seen for (publisher, name, channel).
    pub fn release_seen(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
    ) -> Result<Option<SeenRelease>, StoreError> {
        Ok(self
            .seen_entry(publisher, name, channel)?
            .map(|e| SeenRelease {
                seq: e.seq,
                token: e.token,
            }))
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
    pub fn policy(&self, mut policy: Policy) -> Result<Policy, StoreError> {
        for (k, label) in self.trusted()? {
            policy.trusted.entry(k).or_insert(label);
        }
        Ok(policy)
    }

    /// Check `signed` against `policy` and this store's high-water mark
    /// without recording anything.
    pub fn check_release(
        &self,
        policy: &Policy,
        signed: &SignedRelease,
        want: &Want,
    ) -> Result<(), AcceptError> {
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
        policy.check(signed, want, &seen)?;
        Ok(())
    }

    /// Check `signed` and, if it passes, make it the newest seen, in one
    /// step (a concurrent accept cannot slip an older one in between).
    pub fn accept_release(
        &self,
        policy: &Policy,
        signed: &SignedRelease,
        want: &Want,
    ) -> Result<(), AcceptError> {
        let _one_at_a_time = self
            .inner
            .gc_lock
            .write()
            .unwrap_or_else(|e| e.into_inner());
        self.check_release(policy, signed, want)?;
        let r = signed.release();
        let tx = self.inner.db.begin_write().map_err(StoreError::from)?;
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

    /// The next sequence number for a publisher's (name, channel): one past
    /// the newest seen.
    pub fn next_seq(
        &self,
        publisher: &PublicKey,
        name: &str,
        channel: &str,
    ) -> Result<u64, StoreError> {
        Ok(self
            .seen_entry(publisher, name, channel)?
            .map_or(1, |e| e.seq + 1))
    }
}
