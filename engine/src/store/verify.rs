//! Verify at the boundaries: a group counts as held only while its stored
//! bytes still verify.
//!
//! A blob file can change under the store (bit rot, a bad disk, another
//! process), and the record of verified groups would not know. So the
//! groups a record claims are re-verified against the outboard (which is
//! itself checked against the root) before they count: when a download
//! resumes, before the first time a group is served after the store is
//! opened, and over every byte a hand-over gives away. Groups that fail are
//! dropped from the record, so they are fetched again, and the fact is
//! logged. Each check is BLAKE3 over the bytes, spread over the cores.
//!
//! What this process has verified since it opened the store is remembered
//! (`Inner::verified`), so a group is checked once, not on every request:
//! groups received (verified before they were written), imported (hashed as
//! they were stored), or checked here.

use std::io;

use redb::ReadableTable;

use super::GroupSet;
use super::tables::{BLOBS, BlobEntry};
use super::{BlobFile, FileAt, FileKind, FileName, Store, StoreError};
use crate::content::{self, GROUP_SIZE, Hash};

/// What a re-verification of a stored blob found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reverified {
    /// Bytes re-hashed.
    pub(crate) checked: u64,
    /// Groups that no longer verified and were dropped from the record.
    pub(crate) dropped: GroupSet,
}

impl Store {
    /// Remember that this process verified `start..end` of `hash`.
    pub(super) fn verified_insert(&self, hash: Hash, start: u64, end: u64) {
        let mut v = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        v.entry(hash).or_default().insert(start, end);
    }

    /// Forget what was verified of `hash`: its files are gone or replaced.
    pub(super) fn verified_forget(&self, hash: &Hash) {
        let mut v = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        v.remove(hash);
    }

    /// Whether every group of `groups` was verified by this process: checked
    /// here, imported, or received (a group received and not yet committed
    /// is among the live groups; its commit records it here before the live
    /// groups are forgotten, so reading those first misses nothing).
    pub(super) fn verified_covers(&self, hash: &Hash, groups: &GroupSet) -> bool {
        if groups.is_empty() {
            return true;
        }
        let live = self.live(hash);
        let v = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let have = v.get(hash);
        let covered = |a, b| have.is_some_and(|h: &GroupSet| h.covers_range(a, b));
        if groups.ranges().iter().all(|&(a, b)| covered(a, b)) {
            return true;
        }
        let Some(mut all) = live else {
            return false;
        };
        if let Some(h) = have {
            all.union(h);
        }
        groups.ranges().iter().all(|&(a, b)| all.covers_range(a, b))
    }

    fn verified_of(&self, hash: &Hash) -> GroupSet {
        let v = self
            .inner
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        v.get(hash).cloned().unwrap_or_default()
    }

    /// Re-verify the groups the record of file blob `hash` claims, except
    /// those this process verified already (all of them if `every`), and
    /// drop from the record those that fail. Inline blobs and unknown
    /// hashes are left alone (inline bytes are verified on every read).
    pub(crate) fn reverify(&self, hash: &Hash, every: bool) -> Result<Reverified, StoreError> {
        self.guard(|| self.reverify_inner(hash, every))
    }

    fn reverify_inner(&self, hash: &Hash, every: bool) -> Result<Reverified, StoreError> {
        let Some(BlobEntry::File { size, present }) = self.entry(hash)? else {
            return Ok(Reverified::default());
        };
        let n = content::group_count(size).max(1);
        let claimed = present.unwrap_or_else(|| {
            let mut all = GroupSet::new();
            all.insert(0, n);
            all
        });
        let mut todo = claimed.clone();
        if !every {
            todo = difference(&todo, &self.verified_of(hash));
        }
        if todo.is_empty() {
            return Ok(Reverified::default());
        }
        let open = |k| self.backend().open(FileName::Blob(*hash, k));
        let (good, bad) = match (open(FileKind::Data), open(FileKind::Outboard)) {
            (Ok(data), Ok(ob)) => check_groups(*hash, size, &*data, &*ob, &todo)?,
            // A file that is gone holds nothing.
            (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                (GroupSet::new(), todo.clone())
            }
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        for &(a, b) in good.ranges() {
            self.verified_insert(*hash, a, b);
        }
        let checked = (todo.count() * GROUP_SIZE).min(size);
        // A read-only store reports the damage (through the caller's error)
        // but cannot record it; the next writer finds it again.
        if !bad.is_empty() && self.drop_groups(hash, size, &bad)? {
            let mut rotted = self.inner.rotted.lock().unwrap_or_else(|e| e.into_inner());
            rotted.insert(*hash);
            drop(rotted);
            tracing::warn!(
                %hash,
                groups = bad.count(),
                first_byte = bad.ranges()[0].0 * GROUP_SIZE,
                "stored data no longer matches its hash; the damaged groups were dropped and are fetched again"
            );
        }
        Ok(Reverified {
            checked,
            dropped: bad,
        })
    }

    /// The pinned roots that lost stored groups to damage (found when a
    /// download resumed, while serving, or when exporting) since the last
    /// call, so that they can be fetched again. Each is reported once.
    ///
    /// ```
    /// let store = swarm_engine::store::Store::memory()?;
    /// assert!(store.take_damaged()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_damaged(&self) -> Result<Vec<Hash>, StoreError> {
        let blobs = {
            let mut rotted = self.inner.rotted.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *rotted)
        };
        if blobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut roots = Vec::new();
        for pin in self.pins()? {
            // A pin whose manifest is gone is reported by check; skip it.
            let Ok(m) = self.manifest(&pin.root) else {
                continue;
            };
            if blobs.contains(&pin.root) || m.blobs().iter().any(|h| blobs.contains(h)) {
                roots.push(pin.root);
            }
        }
        Ok(roots)
    }

    /// Take `bad` out of the record of file blob `hash`; a complete blob
    /// becomes partial. The files keep their length, so the groups can be
    /// written again in place.
    /// Whether the record was changed.
    fn drop_groups(&self, hash: &Hash, size: u64, bad: &GroupSet) -> Result<bool, StoreError> {
        if self.inner.db.is_read_only() {
            return Ok(false);
        }
        let n = content::group_count(size).max(1);
        let tx = self.inner.db.begin_write()?;
        {
            let mut blobs = tx.open_table(BLOBS)?;
            let current = blobs
                .get(hash.as_bytes())?
                .map(|v| BlobEntry::decode(v.value()));
            let present = match current {
                Some(Ok(BlobEntry::File { size: s, present })) if s == size => present
                    .unwrap_or_else(|| {
                        let mut all = GroupSet::new();
                        all.insert(0, n);
                        all
                    }),
                // Gone or replaced meanwhile: nothing to drop.
                _ => return Ok(false),
            };
            let e = BlobEntry::File {
                size,
                present: Some(difference(&present, bad)),
            };
            blobs.insert(hash.as_bytes(), e.encode().as_slice())?;
        }
        tx.commit()?;
        let data = self.backend().open(FileName::Blob(*hash, FileKind::Data));
        if let Ok(f) = data
            && f.size().is_ok_and(|len| len != size)
        {
            f.set_len(size)?;
        }
        Ok(true)
    }
}

/// `a` minus `b`.
pub(super) fn difference(a: &GroupSet, b: &GroupSet) -> GroupSet {
    let mut out = GroupSet::new();
    for &(s, e) in a.ranges() {
        let mut start = s;
        for &(bs, be) in b.ranges() {
            if be <= start || bs >= e {
                continue;
            }
            if bs > start {
                out.insert(start, bs);
            }
            start = start.max(be);
            if start >= e {
                break;
            }
        }
        if start < e {
            out.insert(start, e);
        }
    }
    out
}

/// Verify `groups` of blob `hash` (`size` bytes) stored in `data` against
/// the outboard `ob`, on as many threads as there are cores. Returns the
/// groups that verify and those that do not. Only errors reading the files
/// (other than their being short) are errors.
pub(super) fn check_groups(
    hash: Hash,
    size: u64,
    data: &dyn BlobFile,
    ob: &dyn BlobFile,
    groups: &GroupSet,
) -> io::Result<(GroupSet, GroupSet)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8)) as u64;
    let total = groups.count();
    // Below a few MiB a thread costs more than it saves.
    let parts = if total < 256 { 1 } else { threads };
    let chunks = split(groups, total.div_ceil(parts));
    if chunks.len() <= 1 {
        return check_serial(hash, size, data, ob, groups);
    }
    let results: Vec<io::Result<(GroupSet, GroupSet)>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|c| s.spawn(move || check_serial(hash, size, data, ob, c)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("verifying thread panicked")))
            })
            .collect()
    });
    let (mut good, mut bad) = (GroupSet::new(), GroupSet::new());
    for r in results {
        let (g, b) = r?;
        good.union(&g);
        bad.union(&b);
    }
    Ok((good, bad))
}

/// Cut `groups` into sets of about `per` groups each, in order.
fn split(groups: &GroupSet, per: u64) -> Vec<GroupSet> {
    let per = per.max(1);
    let mut out = Vec::new();
    let mut cur = GroupSet::new();
    for &(a, b) in groups.ranges() {
        let mut s = a;
        while s < b {
            let room = per - cur.count();
            let e = b.min(s + room);
            cur.insert(s, e);
            s = e;
            if cur.count() >= per {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn check_serial(
    hash: Hash,
    size: u64,
    data: &dyn BlobFile,
    ob: &dyn BlobFile,
    groups: &GroupSet,
) -> io::Result<(GroupSet, GroupSet)> {
    let n = content::group_count(size).max(1);
    let (mut good, mut bad) = (GroupSet::new(), GroupSet::new());
    // Groups past the end of a data file that shrank hold nothing.
    let len = data.size()?;
    let whole = if len >= size { n } else { len / GROUP_SIZE };
    for &(a, b) in groups.ranges() {
        let (a, b) = (a.min(n), b.min(n));
        if a >= b {
            continue;
        }
        let cut = b.min(whole.max(a));
        bad.insert(cut, b);
        let mut start = a;
        while start < cut {
            match verify_range(hash, size, data, ob, start, cut) {
                Ok(()) => {
                    good.insert(start, cut);
                    break;
                }
                Err(Bad::At(g)) => {
                    // A damaged parent names the start of its subtree,
                    // which may lie before `start`: skip at least one group.
                    let g = g.clamp(start, cut - 1);
                    good.insert(start, g);
                    bad.insert(g, g + 1);
                    start = g + 1;
                }
                Err(Bad::Short) => {
                    // The outboard is short: check group by group.
                    for g in start..cut {
                        match verify_range(hash, size, data, ob, g, g + 1) {
                            Ok(()) => good.insert(g, g + 1),
                            Err(Bad::At(_) | Bad::Short) => bad.insert(g, g + 1),
                            Err(Bad::Io(e)) => return Err(e),
                        }
                    }
                    break;
                }
                Err(Bad::Io(e)) => return Err(e),
            }
        }
    }
    Ok((good, bad))
}

enum Bad {
    /// The group with this index does not verify.
    At(u64),
    /// A file ended early.
    Short,
    Io(io::Error),
}

fn verify_range(
    hash: Hash,
    size: u64,
    data: &dyn BlobFile,
    ob: &dyn BlobFile,
    start: u64,
    end: u64,
) -> Result<(), Bad> {
    let outboard = content::outboard(hash, size, FileAt(ob));
    let ranges = content::group_ranges(start, end);
    match content::encode_ranges(FileAt(data), outboard, &ranges, io::sink()) {
        Ok(()) => Ok(()),
        Err(content::EncodeError::Corrupt { offset }) => Err(Bad::At(offset / GROUP_SIZE)),
        Err(content::EncodeError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(Bad::Short)
        }
        Err(content::EncodeError::Io(e)) => Err(Bad::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(r: &[(u64, u64)]) -> GroupSet {
        let mut s = GroupSet::new();
        for &(a, b) in r {
            s.insert(a, b);
        }
        s
    }

    #[test]
    fn difference_of_ranges() {
        let a = set(&[(0, 10), (20, 30)]);
        assert_eq!(difference(&a, &set(&[])), a);
        assert_eq!(difference(&a, &set(&[(5, 25)])), set(&[(0, 5), (25, 30)]));
        assert_eq!(difference(&a, &set(&[(0, 30)])), set(&[]));
        assert_eq!(
            difference(&a, &set(&[(1, 2), (3, 4), (29, 40)])),
            set(&[(0, 1), (2, 3), (4, 10), (20, 29)])
        );
    }

    #[test]
    fn split_keeps_every_group_once() {
        let a = set(&[(0, 7), (10, 11), (20, 33)]);
        for per in 1..25 {
            let parts = split(&a, per);
            let mut all = GroupSet::new();
            let mut count = 0;
            for p in &parts {
                assert!(p.count() <= per);
                count += p.count();
                all.union(p);
            }
            assert_eq!((all, count), (a.clone(), a.count()));
        }
    }
}
