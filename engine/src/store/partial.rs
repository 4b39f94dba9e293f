//! Partial blobs: receiving verified ranges, as a download does.

use std::io;

use super::GroupSet;
use redb::ReadableTable;

use super::tables::{BLOBS, BlobEntry, INLINE};
use super::{BlobFile, FileAt, FileKind, FileName, Store, StoreError};
use bytes::Bytes;

use crate::content::{self, BaoContentItem, ChunkRanges, DecodeError, GROUP_SIZE, Hash};

/// Verified bytes written since the last commit before committing again.
const COMMIT_EVERY: u64 = 16 << 20;

/// Most adjacent groups of a response written in one call (64 KiB).
/// Measured on a 1 GiB fetch (Linux 6.18, ext4): the kernel's copy into
/// the page cache took 26 % of the fetcher's samples in 1 MiB writes and
/// under 9 % in 16 or 64 KiB ones, and 64 KiB writes beat one a group by
/// about 7 % (benches/README.md, issue #15).
const RUN_GROUPS: u64 = 4;

/// A blob being received. Every byte written through it has been verified
/// against the root first; verified groups become durable at each commit
/// (every 16 MiB and on [`PartialBlob::flush`] or drop), so a download that
/// is killed resumes from there.
///
/// ```
/// use swarm_engine::content::all;
/// use swarm_engine::store::Store;
///
/// // A seeder holds a blob; a fetcher receives it from the Bao encoding.
/// let seeder = Store::memory()?;
/// let hash = seeder.put_blob(&[9u8; 100_000])?;
/// let mut response = Vec::new();
/// seeder.encode_ranges(&hash, &all(), &mut response)?;
///
/// let fetcher = Store::memory()?;
/// let mut blob = fetcher.partial(hash, 100_000)?;
/// let written = blob.write_response(&all(), &response[..])?;
/// assert_eq!(written, 100_000);
/// assert!(blob.is_complete());
/// assert_eq!(fetcher.read_blob(&hash, 1 << 20)?, Some(vec![9u8; 100_000]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PartialBlob {
    store: Store,
    hash: Hash,
    size: u64,
    target: Target,
    present: GroupSet,
    pending: GroupSet,
    pending_bytes: u64,
}

#[derive(Debug)]
enum Target {
    /// One group or less: kept in memory until complete, then committed inline.
    Small(Vec<u8>),
    Files {
        data: Box<dyn BlobFile>,
        outboard: Box<dyn BlobFile>,
    },
    Complete,
}

/// What [`PartialBlob::receive`] did with a response.
#[derive(Debug)]
#[non_exhaustive]
pub struct Received {
    /// Bytes of new verified data written.
    pub written: u64,
    /// Why the response stopped verifying, if it did: what came before was
    /// written.
    pub failed: Option<DecodeError>,
}

/// Receiving data failed. Verified data received before the error is kept.
///
/// ```
/// use swarm_engine::content::all;
/// use swarm_engine::store::{Store, WriteError};
///
/// let seeder = Store::memory()?;
/// let hash = seeder.put_blob(&[9u8; 100_000])?;
/// let mut response = Vec::new();
/// seeder.encode_ranges(&hash, &all(), &mut response)?;
/// let last = response.len() - 1;
/// response[last] ^= 1; // damaged on the way
///
/// let fetcher = Store::memory()?;
/// let mut blob = fetcher.partial(hash, 100_000)?;
/// let err = blob.write_response(&all(), &response[..]).unwrap_err();
/// assert!(matches!(err, WriteError::Verify { .. }));
/// // The groups that verified before the damage are kept.
/// assert_eq!(blob.present().count(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The data did not verify against the root; nothing of it was stored.
    #[error("received data for {hash} does not verify")]
    Verify {
        /// The blob.
        hash: Hash,
        /// Where and how it failed.
        source: DecodeError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Start or resume receiving blob `hash` of `size` bytes. A stored
    /// partial blob of a different size is discarded and started over.
    ///
    /// ```
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::store::Store;
    ///
    /// # let seeder = Store::memory()?;
    /// # let hash = seeder.put_blob(&[9u8; 100_000])?;
    /// # let mut first_half = Vec::new();
    /// # seeder.encode_ranges(&hash, &group_ranges(0, 3), &mut first_half)?;
    /// let store = Store::memory()?;
    /// let mut blob = store.partial(hash, 100_000)?;
    /// blob.write_response(&group_ranges(0, 3), &first_half[..])?;
    /// drop(blob); // the download stops
    /// // Resuming picks up the verified groups.
    /// let blob = store.partial(hash, 100_000)?;
    /// assert_eq!(blob.present().ranges(), &[(0, 3)]);
    /// assert!(!blob.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn partial(&self, hash: Hash, size: u64) -> Result<PartialBlob, StoreError> {
        if size > content::MAX_BLOB_SIZE {
            return Err(StoreError::TooLarge { hash, size });
        }
        // Registered before anything is looked at, so that gc, running
        // meanwhile, leaves this blob alone; the PartialBlob's drop (or the
        // error below) unregisters it.
        self.writer_joins(hash);
        let r = {
            // One start at a time, so two fetches of a new blob do not both
            // create its files; and not during a gc (see `Store::gc`).
            let _one = self
                .inner
                .starting
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let _no_gc = self.inner.gc_lock.read().unwrap_or_else(|e| e.into_inner());
            self.partial_inner(hash, size)
        };
        if r.is_err() && self.writer_leaves(&hash) {
            self.live_forget(&hash);
        }
        r
    }

    fn partial_inner(&self, hash: Hash, size: u64) -> Result<PartialBlob, StoreError> {
        self.guard(|| {
            // What the record claims counts only if the bytes still verify:
            // groups that do not are dropped here and fetched again.
            if matches!(self.entry(&hash)?, Some(BlobEntry::File { .. })) {
                self.reverify(&hash, false)?;
            }
            let existing = self.entry(&hash)?;
            let mut pb = PartialBlob {
                store: self.clone(),
                hash,
                size,
                target: Target::Complete,
                present: GroupSet::new(),
                pending: GroupSet::new(),
                pending_bytes: 0,
            };
            match existing {
                Some(e) if e.is_complete() => return Ok(pb),
                Some(BlobEntry::File {
                    size: s,
                    present: Some(p),
                }) if s == size => {
                    let open = |k| self.backend().open(FileName::Blob(hash, k));
                    if let (Ok(data), Ok(outboard)) =
                        (open(FileKind::Data), open(FileKind::Outboard))
                    {
                        pb.present = p;
                        pb.target = Target::Files { data, outboard };
                        return Ok(pb);
                    }
                }
                _ => {}
            }
            if size <= GROUP_SIZE {
                pb.target = Target::Small(Vec::new());
                return Ok(pb);
            }
            let backend = self.backend();
            self.verified_forget(&hash);
            let data = backend.create(FileName::Blob(hash, FileKind::Data))?;
            let outboard = backend.create(FileName::Blob(hash, FileKind::Outboard))?;
            data.set_len(size)?;
            outboard.set_len(content::outboard_size(size))?;
            data.sync()?;
            outboard.sync()?;
            backend.sync_dir()?;
            let tx = self.inner.db.begin_write()?;
            {
                let mut blobs = tx.open_table(BLOBS)?;
                let e = BlobEntry::File {
                    size,
                    present: Some(GroupSet::new()),
                };
                blobs.insert(hash.as_bytes(), e.encode().as_slice())?;
            }
            tx.commit()?;
            pb.target = Target::Files { data, outboard };
            Ok(pb)
        })
    }
}

impl PartialBlob {
    /// The blob being received.
    ///
    /// ```
    /// use swarm_engine::Hash;
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let blob = store.partial(Hash::of(b"wanted"), 6)?;
    /// assert_eq!(blob.hash(), Hash::of(b"wanted"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Its size.
    ///
    /// ```
    /// use swarm_engine::Hash;
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let blob = store.partial(Hash::of(b"wanted"), 6)?;
    /// assert_eq!(blob.size(), 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether every group is verified and stored.
    ///
    /// ```
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let hash = store.put_blob(b"already here")?;
    /// // Nothing to receive for a blob the store holds.
    /// assert!(store.partial(hash, 12)?.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        matches!(self.target, Target::Complete)
    }

    /// Groups verified so far (committed or not).
    ///
    /// ```
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::store::Store;
    ///
    /// # let seeder = Store::memory()?;
    /// # let hash = seeder.put_blob(&[9u8; 100_000])?;
    /// # let mut response = Vec::new();
    /// # seeder.encode_ranges(&hash, &group_ranges(2, 4), &mut response)?;
    /// let store = Store::memory()?;
    /// let mut blob = store.partial(hash, 100_000)?;
    /// assert!(blob.present().is_empty());
    /// blob.write_response(&group_ranges(2, 4), &response[..])?;
    /// assert_eq!(blob.present().ranges(), &[(2, 4)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn present(&self) -> GroupSet {
        if self.is_complete() {
            let mut all = GroupSet::new();
            all.insert(0, content::group_count(self.size));
            return all;
        }
        let mut p = self.present.clone();
        p.union(&self.pending);
        p
    }

    /// Chunk ranges still missing.
    ///
    /// ```
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::store::Store;
    ///
    /// # let seeder = Store::memory()?;
    /// # let hash = seeder.put_blob(&[9u8; 100_000])?;
    /// # let mut response = Vec::new();
    /// # seeder.encode_ranges(&hash, &group_ranges(0, 2), &mut response)?;
    /// let store = Store::memory()?;
    /// let mut blob = store.partial(hash, 100_000)?; // 7 groups
    /// blob.write_response(&group_ranges(0, 2), &response[..])?;
    /// assert_eq!(blob.missing(), group_ranges(2, 7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn missing(&self) -> ChunkRanges {
        let all = content::group_ranges(0, content::group_count(self.size).max(1));
        all - self.present().to_chunk_ranges()
    }

    /// Decode a Bao response for `ranges` from `encoded`, verifying every
    /// group before writing it. Returns the bytes of new verified data.
    ///
    /// ```
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::store::Store;
    ///
    /// # let seeder = Store::memory()?;
    /// # let hash = seeder.put_blob(&[9u8; 100_000])?;
    /// let ranges = group_ranges(0, 4);
    /// let mut response = Vec::new();
    /// seeder.encode_ranges(&hash, &ranges, &mut response)?;
    /// let store = Store::memory()?;
    /// let mut blob = store.partial(hash, 100_000)?;
    /// assert_eq!(blob.write_response(&ranges, &response[..])?, 4 * 16384);
    /// // Nothing new the second time.
    /// assert_eq!(blob.write_response(&ranges, &response[..])?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_response(
        &mut self,
        ranges: &ChunkRanges,
        encoded: impl io::Read,
    ) -> Result<u64, WriteError> {
        if self.is_complete() {
            return Ok(0);
        }
        let mut written = 0;
        let mut result = Ok(());
        for item in content::decode_ranges(self.hash, self.size, ranges, encoded) {
            match item {
                Ok(item) => written += self.write_item(&item)?,
                Err(source) => {
                    result = Err(WriteError::Verify {
                        hash: self.hash,
                        source,
                    });
                    break;
                }
            }
        }
        // Keep what verified before any error.
        self.flush()?;
        result.map(|()| written)
    }

    /// Verify a response for `ranges` of `blob` read from `encoded`, on
    /// this thread and without holding the blob, then write what verified
    /// under its lock: the one path from any source (a peer, a mirror) to
    /// disk, so several responses for one blob can be verified at once.
    /// What verified before a failure is written; the failure is returned
    /// beside it for the caller to judge (a source that sent bad data is
    /// dropped; one that stopped short may be asked again).
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::store::{PartialBlob, Store};
    ///
    /// # let seeder = Store::memory()?;
    /// # let hash = seeder.put_blob(&[9u8; 100_000])?;
    /// let ranges = group_ranges(0, 3);
    /// let mut response = Vec::new();
    /// seeder.encode_ranges(&hash, &ranges, &mut response)?;
    /// let store = Store::memory()?;
    /// let blob = Mutex::new(store.partial(hash, 100_000)?);
    /// // Cut short after the first group: that group is kept.
    /// let got = PartialBlob::receive(&blob, &ranges, &response[..20_000])?;
    /// assert_eq!(got.written, 16_384);
    /// assert!(got.failed.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn receive(
        blob: &std::sync::Mutex<PartialBlob>,
        ranges: &ChunkRanges,
        encoded: impl io::Read,
    ) -> Result<Received, StoreError> {
        let (hash, size) = {
            let b = blob.lock().unwrap_or_else(|e| e.into_inner());
            (b.hash, b.size)
        };
        let mut items = Vec::new();
        let mut failed = None;
        for item in content::decode_ranges(hash, size, ranges, encoded) {
            match item {
                Ok(i) => items.push(i),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let mut b = blob.lock().unwrap_or_else(|e| e.into_inner());
        let written = b.write_verified(&items)?;
        Ok(Received { written, failed })
    }

    /// [`Self::receive`] for a response held as the chunks it arrived in,
    /// as a transport delivers them: its data is copied once, verified
    /// where it lies ([`content::decode_chunks`]) and written 64 KiB at a
    /// time.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use std::sync::Mutex;
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::store::{PartialBlob, Store};
    ///
    /// # let seeder = Store::memory()?;
    /// # let hash = seeder.put_blob(&[9u8; 100_000])?;
    /// let ranges = group_ranges(0, 3);
    /// let mut response = Vec::new();
    /// seeder.encode_ranges(&hash, &ranges, &mut response)?;
    /// let chunks: Vec<Bytes> = response.chunks(1_200).map(Bytes::copy_from_slice).collect();
    /// let store = Store::memory()?;
    /// let blob = Mutex::new(store.partial(hash, 100_000)?);
    /// let got = PartialBlob::receive_chunks(&blob, &ranges, chunks)?;
    /// assert_eq!(got.written, 3 * 16_384);
    /// assert!(got.failed.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn receive_chunks(
        blob: &std::sync::Mutex<PartialBlob>,
        ranges: &ChunkRanges,
        chunks: Vec<Bytes>,
    ) -> Result<Received, StoreError> {
        let (hash, size) = {
            let b = blob.lock().unwrap_or_else(|e| e.into_inner());
            (b.hash, b.size)
        };
        let decoded = content::decode_chunks(hash, size, ranges, chunks);
        let mut b = blob.lock().unwrap_or_else(|e| e.into_inner());
        let written = b.write_received(&decoded)?;
        Ok(Received {
            written,
            failed: decoded.failed,
        })
    }

    /// Write items that [`content::decode_ranges`] has already verified
    /// against this blob's hash (so several responses can be decoded in
    /// parallel and written one after another). Returns the bytes of new
    /// verified data. Verified groups are servable at once and durable at
    /// the next commit.
    ///
    /// ```
    /// use swarm_engine::content::{all, decode_ranges};
    /// use swarm_engine::store::Store;
    ///
    /// # let seeder = Store::memory()?;
    /// # let hash = seeder.put_blob(&[9u8; 100_000])?;
    /// # let mut response = Vec::new();
    /// # seeder.encode_ranges(&hash, &all(), &mut response)?;
    /// // Verify first (on another thread, say), then write.
    /// let items = decode_ranges(hash, 100_000, &all(), &response[..])
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// let store = Store::memory()?;
    /// let mut blob = store.partial(hash, 100_000)?;
    /// assert_eq!(blob.write_verified(&items)?, 100_000);
    /// blob.flush()?;
    /// assert!(blob.is_complete());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_verified(&mut self, items: &[BaoContentItem]) -> Result<u64, StoreError> {
        let mut written = 0;
        for item in items {
            written += self.write_item(item)?;
        }
        Ok(written)
    }

    fn write_item(&mut self, item: &BaoContentItem) -> Result<u64, StoreError> {
        match item {
            BaoContentItem::Parent(p) => self.save_parent(p).map(|()| 0),
            BaoContentItem::Leaf(leaf) => {
                let len = leaf.data.len() as u64;
                let Some(group) = self.wanted(leaf.offset, len) else {
                    return Ok(0);
                };
                match &mut self.target {
                    Target::Small(buf) => *buf = leaf.data.to_vec(),
                    Target::Files { data, .. } => data.write_all_at(leaf.offset, &leaf.data)?,
                    Target::Complete => return Ok(0),
                }
                self.written(group, group + 1, len)?;
                Ok(len)
            }
        }
    }

    /// Write what [`content::decode_chunks`] verified of a response, each
    /// run of up to [`RUN_GROUPS`] adjacent new groups in one write from
    /// the response's buffer. Returns the bytes of new verified data.
    fn write_received(&mut self, decoded: &content::Decoded) -> Result<u64, StoreError> {
        // Where the next leaf's bytes start in `decoded.data`, and the run
        // of wanted groups being gathered: its first group, its end, and
        // where its bytes start.
        let mut pos = 0;
        let mut run: Option<(u64, u64, usize)> = None;
        let mut written = 0;
        for item in &decoded.items {
            match item {
                BaoContentItem::Parent(p) => self.save_parent(p)?,
                BaoContentItem::Leaf(leaf) => {
                    let len = leaf.data.len();
                    let at = pos;
                    pos += len;
                    let Some(group) = self.wanted(leaf.offset, len as u64) else {
                        continue;
                    };
                    if let Target::Small(buf) = &mut self.target {
                        *buf = leaf.data.to_vec();
                        self.written(group, group + 1, len as u64)?;
                        written += len as u64;
                        continue;
                    }
                    match &mut run {
                        Some((first, end, _)) if *end == group && group - *first < RUN_GROUPS => {
                            *end = group + 1
                        }
                        _ => {
                            if let Some(r) = run.take() {
                                written += self.write_run(r, &decoded.data)?;
                            }
                            run = Some((group, group + 1, at));
                        }
                    }
                }
            }
        }
        if let Some(r) = run {
            written += self.write_run(r, &decoded.data)?;
        }
        Ok(written)
    }

    /// Write groups `start..end`, whose bytes start at `at` in `data`, then
    /// record them (only then: recorded groups are served).
    fn write_run(
        &mut self,
        (start, end, at): (u64, u64, usize),
        data: &[u8],
    ) -> Result<u64, StoreError> {
        let Target::Files { data: file, .. } = &self.target else {
            return Ok(0);
        };
        let offset = start * GROUP_SIZE;
        let len = ((end * GROUP_SIZE).min(self.size) - offset) as usize;
        let bytes = data.get(at..at + len).ok_or_else(|| {
            StoreError::Io(io::Error::other(
                "a decoded response is shorter than its leaves",
            ))
        })?;
        file.write_all_at(offset, bytes)?;
        self.written(start, end, len as u64)?;
        Ok(len as u64)
    }

    fn save_parent(&self, p: &content::Parent) -> Result<(), StoreError> {
        if let Target::Files { outboard, .. } = &self.target {
            let mut ob = content::outboard(self.hash, self.size, FileAt(&**outboard));
            bao_tree::io::sync::OutboardMut::save(&mut ob, p.node, &p.pair)?;
        }
        Ok(())
    }

    /// The group a verified leaf at `offset` of `len` bytes fills, if it is
    /// a whole group this blob still lacks.
    fn wanted(&self, offset: u64, len: u64) -> Option<u64> {
        let group = offset / GROUP_SIZE;
        // A response to ranges that cover part of a group holds just those
        // chunks: verified, but not a whole group, so not recorded (the
        // store tracks whole groups only).
        if group >= content::group_count(self.size).max(1) {
            return None;
        }
        let group_len = GROUP_SIZE.min(self.size - group * GROUP_SIZE);
        if !offset.is_multiple_of(GROUP_SIZE) || len != group_len {
            return None;
        }
        if self.present.contains(group) || self.pending.contains(group) || self.is_complete() {
            return None;
        }
        Some(group)
    }

    /// Record groups `start..end` (`len` bytes) as written, and commit
    /// once enough is pending.
    fn written(&mut self, start: u64, end: u64, len: u64) -> Result<(), StoreError> {
        self.pending_bytes += len;
        self.pending.insert(start, end);
        if matches!(self.target, Target::Files { .. }) {
            // Verified before it was written: served at once, and as
            // checked by this process (see `verified_covers`).
            self.store.live_insert(self.hash, start, end);
        }
        if self.pending_bytes >= COMMIT_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Make all verified groups durable.
    ///
    /// ```
    /// use swarm_engine::content::{decode_ranges, group_ranges};
    /// use swarm_engine::store::Store;
    ///
    /// # let seeder = Store::memory()?;
    /// # let hash = seeder.put_blob(&[9u8; 100_000])?;
    /// # let mut response = Vec::new();
    /// # seeder.encode_ranges(&hash, &group_ranges(0, 1), &mut response)?;
    /// let store = Store::memory()?;
    /// let mut blob = store.partial(hash, 100_000)?;
    /// let items = decode_ranges(hash, 100_000, &group_ranges(0, 1), &response[..])
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// blob.write_verified(&items)?;
    /// blob.flush()?; // group 0 is now durable
    /// let info = store.blob_info(&hash)?.expect("started");
    /// assert_eq!(info.partial.map(|p| p.count()), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let store = self.store.clone();
        store.guard(|| {
            if self.pending.is_empty() || self.is_complete() {
                return Ok(());
            }
            let mut present = self.present.clone();
            present.union(&self.pending);
            let mut complete = present.covers(content::group_count(self.size).max(1));
            let store = self.store.clone();
            let tx = store.inner.db.begin_write()?;
            {
                let mut blobs = tx.open_table(BLOBS)?;
                // Another writer (an add of the same bytes) may have completed it.
                let current = blobs
                    .get(self.hash.as_bytes())?
                    .and_then(|v| BlobEntry::decode(v.value()).ok());
                if current.as_ref().is_some_and(BlobEntry::is_complete) {
                    drop(blobs);
                    tx.abort()?;
                    self.target = Target::Complete;
                    return Ok(());
                }
                // Another writer of the same blob (a second fetch that
                // shares it) may have committed groups since: keep them.
                // Its bytes were synced before its record was committed.
                if let Some(BlobEntry::File {
                    size,
                    present: Some(theirs),
                }) = &current
                    && *size == self.size
                {
                    present.union(theirs);
                    complete = present.covers(content::group_count(self.size).max(1));
                }
                match &self.target {
                    Target::Small(buf) => {
                        if complete {
                            let e = BlobEntry::Inline {
                                size: buf.len() as u64,
                            };
                            blobs.insert(self.hash.as_bytes(), e.encode().as_slice())?;
                            tx.open_table(INLINE)?
                                .insert(self.hash.as_bytes(), buf.as_slice())?;
                        }
                    }
                    Target::Files { data, outboard } => {
                        // Bytes first, then the record that claims them.
                        data.sync()?;
                        outboard.sync()?;
                        let e = BlobEntry::File {
                            size: self.size,
                            present: if complete {
                                None
                            } else {
                                Some(present.clone())
                            },
                        };
                        blobs.insert(self.hash.as_bytes(), e.encode().as_slice())?;
                    }
                    Target::Complete => {}
                }
            }
            tx.commit()?;
            if matches!(self.target, Target::Files { .. }) {
                // Verified before they were written (once a range, not once
                // a group: downloads leave many ranges, and this is a hot path).
                for &(a, b) in self.pending.ranges() {
                    self.store.verified_insert(self.hash, a, b);
                }
            }
            self.present = present;
            self.pending = GroupSet::new();
            self.pending_bytes = 0;
            if complete {
                self.target = Target::Complete;
            }
            Ok(())
        })
    }
}

impl Drop for PartialBlob {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(hash = %self.hash, "could not save verified data: {e}");
        }
        // The last writer gone: what is not committed now is not held, so
        // stop serving it, and gc may collect the blob again.
        if self.store.writer_leaves(&self.hash) {
            self.store.live_forget(&self.hash);
        }
    }
}
