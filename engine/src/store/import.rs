//! `add`: import files and directories, build their manifest, pin the root.

use std::collections::hash_map::Entry as Slot;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use redb::ReadableTable;

use super::tables::{BLOBS, BlobEntry, INLINE};
use super::{BlobFile, FileKind, FileName, Store, StoreError, pin_in};
use crate::content::{self, Entry, GROUP_SIZE, Hash, Manifest, ManifestError, manifest};

/// Size of the blocks the import and export pipelines move.
pub(super) const BLOCK: usize = 1 << 20;
/// Blocks in flight between the reading and the hashing thread.
const IN_FLIGHT: usize = 4;
/// Commit staged blobs once this much inline data or this many blobs pile up,
/// so memory stays bounded however many files an add has.
const BATCH_BYTES: u64 = 32 << 20;
const BATCH_BLOBS: usize = 4096;

/// Options for [`Store::add_paths`].
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use swarm_engine::store::{AddOptions, Progress, Store};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("data.bin"), vec![1u8; 50_000])?;
/// let done = Arc::new(AtomicU64::new(0));
/// let counter = done.clone();
/// let opts = AddOptions {
///     name: Some("my data".into()),
///     progress: Some(Arc::new(move |p| {
///         if let Progress::Advance(n) = p {
///             counter.fetch_add(n, Ordering::Relaxed);
///         }
///     })),
/// };
/// let store = Store::memory()?;
/// store.add_paths(&[dir.path().join("data.bin")], &opts)?;
/// assert_eq!(done.load(Ordering::Relaxed), 50_000);
/// assert_eq!(store.pins()?[0].name, "my data");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct AddOptions {
    /// Name of the pin; defaults to the first path's file name.
    pub name: Option<String>,
    /// Called as work proceeds.
    pub progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
}

impl std::fmt::Debug for AddOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddOptions")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Progress of a long operation.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use swarm_engine::store::{AddOptions, Progress, Store};
///
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a"), vec![1u8; 30_000])?;
/// let events = Arc::new(Mutex::new(Vec::new()));
/// let log = events.clone();
/// let opts = AddOptions {
///     progress: Some(Arc::new(move |p| log.lock().unwrap().push(p))),
///     ..AddOptions::default()
/// };
/// Store::memory()?.add_paths(&[dir.path().join("a")], &opts)?;
/// let events = events.lock().unwrap();
/// // First the total, then advances that add up to it.
/// assert_eq!(events[0], Progress::Total(30_000));
/// let advanced: u64 = events[1..].iter().map(|p| match p {
///     Progress::Advance(n) => *n,
///     Progress::Total(_) => 0,
/// }).sum();
/// assert_eq!(advanced, 30_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The total number of bytes the operation will move.
    Total(u64),
    /// This many more bytes are done.
    Advance(u64),
}

/// What [`Store::add_paths`] stored.
///
/// ```
/// use swarm_engine::store::Store;
///
/// let dir = tempfile::tempdir()?;
/// let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
/// std::fs::write(&a, b"same bytes")?;
/// std::fs::write(&b, b"same bytes")?;
/// let store = Store::memory()?;
/// let first = store.add_paths(&[a], &Default::default())?;
/// assert_eq!((first.files, first.size, first.new_bytes), (1, 10, 10));
/// // Another name, the same content: stored once.
/// let second = store.add_paths(&[b], &Default::default())?;
/// assert_eq!(second.new_bytes, 0);
/// assert_ne!(second.root, first.root); // the manifests differ in the name
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The root: hash of the manifest.
    pub root: Hash,
    /// Total bytes of the files.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// Bytes of blobs that were new to the store (the rest were deduplicated).
    pub new_bytes: u64,
}

/// An add that failed. Nothing already stored is affected.
///
/// ```
/// use swarm_engine::store::{AddError, Store};
///
/// let store = Store::memory()?;
/// let err = store
///     .add_paths(&["/no/such/file".into()], &Default::default())
///     .unwrap_err();
/// assert!(matches!(err, AddError::NotFound(_)));
/// assert!(matches!(store.add_paths(&[], &Default::default()), Err(AddError::Empty)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// A path given does not exist.
    #[error("{0}: no such file or directory")]
    NotFound(PathBuf),
    /// A file or directory could not be read.
    #[error("{path}: cannot read")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Following symlinks leads back into a directory being walked.
    #[error("{0}: symlink loop (a link points back into a directory that contains it)")]
    SymlinkLoop(PathBuf),
    /// Not a regular file, directory or symlink to one of those.
    #[error("{0}: not a regular file or directory (sockets, FIFOs and devices are not stored)")]
    Unsupported(PathBuf),
    /// A name that cannot appear in a manifest.
    #[error("{path}: cannot be stored under this name")]
    BadName {
        /// The path.
        path: PathBuf,
        /// Why the name is refused.
        source: ManifestError,
    },
    /// Two inputs would land at the same path in the manifest.
    #[error(
        "two inputs are both named {0:?}; add them from different directories or one at a time"
    )]
    NameClash(String),
    /// A file was written, replaced, grew or shrank while it was read:
    /// what was read may be neither version. Nothing of it is kept.
    #[error("{0}: changed while being read; try again once nothing writes to it")]
    Changed(PathBuf),
    /// No paths were given.
    #[error("nothing to add: give at least one path")]
    Empty,
    /// The manifest would break a limit.
    #[error("cannot build the manifest")]
    Manifest(#[from] ManifestError),
    /// The store failed (for example, the disk is full).
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Source {
    rel: String,
    path: PathBuf,
    size: u64,
    mode: u32,
    /// What the file looked like when it was listed.
    stamp: Stamp,
}

/// What changes when a file's bytes change: a write moves the mtime and the
/// ctime (which no one can set back), a replacement changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: (u64, u64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Self {
        Self {
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: (m.dev(), m.ino()),
        }
    }
}

/// A blob whose bytes are safe on disk but not yet committed.
enum Staged {
    Inline(Vec<u8>),
    Temp(u64),
}

impl Store {
    /// Import files and directories, store their manifest and pin its root.
    ///
    /// Each path is stored under its own file name; directories keep their
    /// tree below that (`add a/dir` stores `dir/...`). Symlinks are followed;
    /// a link back into its own ancestry is an error. The add is atomic with
    /// respect to the pin: after a crash either the pin exists with all its
    /// content, or it does not.
    ///
    /// ```
    /// use swarm_engine::store::Store;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let site = dir.path().join("site");
    /// std::fs::create_dir_all(site.join("css"))?;
    /// std::fs::write(site.join("index.html"), b"<h1>hi</h1>")?;
    /// std::fs::write(site.join("css/style.css"), b"h1 { color: red }")?;
    /// let store = Store::memory()?;
    /// let added = store.add_paths(&[site], &Default::default())?;
    /// let manifest = store.manifest(&added.root)?;
    /// let paths: Vec<_> = manifest.entries().iter().map(|e| e.path.as_str()).collect();
    /// assert_eq!(paths, ["site/css/style.css", "site/index.html"]);
    /// assert_eq!(store.pins()?[0].name, "site");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_paths(&self, paths: &[PathBuf], opts: &AddOptions) -> Result<Added, AddError> {
        self.guard(|| {
            let _shared = self.inner.gc_lock.read().unwrap_or_else(|e| e.into_inner());
            if paths.is_empty() {
                return Err(AddError::Empty);
            }
            let sources = walk(paths)?;
            let progress = |p| {
                if let Some(f) = &opts.progress {
                    f(p)
                }
            };
            progress(Progress::Total(sources.iter().map(|s| s.size).sum()));

            let mut batch = Batch::default();
            let mut entries = Vec::with_capacity(sources.len());
            let mut new_bytes = 0;
            for s in &sources {
                let mut f = fs::File::open(&s.path).map_err(|e| AddError::Unreadable {
                    path: s.path.clone(),
                    source: e,
                })?;
                let file = f.try_clone().ok();
                let hash = self.stage(
                    &mut f,
                    file.as_ref(),
                    s.size,
                    &mut batch,
                    &s.path,
                    &progress,
                )?;
                // The bytes stored are those hashed, but if the file was
                // written meanwhile they may be neither the old version nor
                // the new one.
                let unreadable = |e| AddError::Unreadable {
                    path: s.path.clone(),
                    source: e,
                };
                let after = Stamp::of(&f.metadata().map_err(unreadable)?);
                let now = fs::metadata(&s.path).map(|m| Stamp::of(&m));
                if after != s.stamp || now.ok() != Some(s.stamp) {
                    return Err(AddError::Changed(s.path.clone()));
                }
                if !batch.known.contains(&hash) {
                    batch.known.insert(hash);
                    if self.entry(&hash)?.is_none_or(|e| !e.is_complete()) {
                        new_bytes += s.size;
                    }
                }
                entries.push(Entry {
                    path: s.rel.clone(),
                    size: s.size,
                    mode: s.mode,
                    hash,
                    extensions: vec![],
                });
                if batch.bytes >= BATCH_BYTES || batch.staged.len() >= BATCH_BLOBS {
                    self.commit_batch(&mut batch, None)?;
                }
            }
            let manifest = Manifest::new(entries)?;
            let encoded = manifest.encode();
            let root = self.stage(
                &mut &encoded[..],
                None,
                encoded.len() as u64,
                &mut batch,
                Path::new("manifest"),
                &|_| {},
            )?;
            let name = opts.name.clone().unwrap_or_else(|| {
                sources
                    .first()
                    .map(|s| s.rel.split('/').next().unwrap_or_default().to_owned())
                    .unwrap_or_default()
            });
            self.commit_batch(&mut batch, Some((root, &manifest, &name)))?;
            Ok(Added {
                root,
                size: manifest.total_size(),
                files: manifest.entries().len() as u64,
                new_bytes,
            })
        })
    }

    /// Store `bytes` as a blob (not pinned; protect it by pinning a root
    /// that lists it). For manifests received from peers.
    ///
    /// ```
    /// use swarm_engine::Hash;
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let hash = store.put_blob(b"a manifest from a peer")?;
    /// assert_eq!(hash, Hash::of(b"a manifest from a peer"));
    /// store.gc()?; // not pinned: collected
    /// assert_eq!(store.blob_info(&hash)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Hash, StoreError> {
        self.guard(|| {
            let _shared = self.inner.gc_lock.read().unwrap_or_else(|e| e.into_inner());
            let mut batch = Batch::default();
            let hash = self
                .stage(
                    &mut &bytes[..],
                    None,
                    bytes.len() as u64,
                    &mut batch,
                    Path::new("blob"),
                    &|_| {},
                )
                .map_err(|e| match e {
                    AddError::Store(s) => s,
                    other => StoreError::Io(io::Error::other(other.to_string())),
                })?;
            self.commit_batch(&mut batch, None)?;
            Ok(hash)
        })
    }

    /// Store the bytes of the file at `path` as a blob, unpinned (gc frees
    /// it unless a pin comes to need it), and return its hash: for a file
    /// that is already in place, such as the installed executable an update
    /// can be patched from. A file stored already is only hashed.
    pub fn put_file(&self, path: &Path) -> Result<Hash, AddError> {
        self.guard(|| {
            let unreadable = |source| AddError::Unreadable {
                path: path.to_owned(),
                source,
            };
            let mut h = blake3::Hasher::new();
            h.update_reader(fs::File::open(path).map_err(unreadable)?)
                .map_err(unreadable)?;
            let hash = Hash::from_bytes(*h.finalize().as_bytes());
            if self.blob_info(&hash)?.is_some_and(|i| i.partial.is_none()) {
                return Ok(hash);
            }
            let _shared = self.inner.gc_lock.read().unwrap_or_else(|e| e.into_inner());
            let mut f = fs::File::open(path).map_err(unreadable)?;
            let size = f.metadata().map_err(unreadable)?.len();
            let file = f.try_clone().map_err(unreadable)?;
            let mut batch = Batch::default();
            let got = self.stage(&mut f, Some(&file), size, &mut batch, path, &|_| {})?;
            if got != hash {
                // It changed while being read: store nothing.
                return Err(AddError::Changed(path.to_owned()));
            }
            self.commit_batch(&mut batch, None)?;
            Ok(hash)
        })
    }

    /// A blob of `size` bytes that `produce` writes in order into the sink
    /// it is given, stored only if they hash to `expected` (`Ok(true)`);
    /// bytes that hash otherwise, or too few or too many, are dropped
    /// (`Ok(false)`), and an error of `produce` drops them too. For bytes
    /// made here, such as a patch's output, checked as a download is.
    pub(super) fn put_produced<E>(
        &self,
        size: u64,
        expected: Hash,
        produce: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> Result<u64, E>,
    ) -> Result<Result<bool, E>, StoreError> {
        let _shared = self.inner.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        let id = self.temp_id();
        let backend = self.backend();
        let data = backend.create(FileName::Temp(id, FileKind::Data))?;
        let ob = backend.create(FileName::Temp(id, FileKind::Outboard))?;
        let mut pos = 0u64;
        let made = produce(&mut |b: &[u8]| {
            if pos + b.len() as u64 > size {
                return Err(io::Error::other("more bytes than the blob's size"));
            }
            data.write_all_at(pos, b)?;
            pos += b.len() as u64;
            Ok(())
        });
        let made = match made {
            Ok(n) => n,
            Err(e) => {
                drop((data, ob));
                self.drop_temp(id);
                return Ok(Err(e));
            }
        };
        let checked = if made == size && pos == size {
            outboard_into(
                SeqReader {
                    file: &*data,
                    pos: 0,
                },
                size,
                &*ob,
            )?
        } else {
            Hash::of(b"")
        };
        if checked != expected || size <= GROUP_SIZE {
            drop((data, ob));
            self.drop_temp(id);
            return Ok(Ok(false));
        }
        drop((data, ob));
        // Made durable, renamed into place and recorded as for an add.
        let mut batch = Batch::default();
        batch.staged.insert(expected, Staged::Temp(id));
        self.commit_batch(&mut batch, None)?;
        Ok(Ok(true))
    }

    /// Hash `size` bytes from `src` and stage them as a blob.
    /// `file` is `src` itself when it is a real file: then the kernel copies.
    fn stage(
        &self,
        src: &mut impl Read,
        file: Option<&fs::File>,
        size: u64,
        batch: &mut Batch,
        path: &Path,
        progress: &dyn Fn(Progress),
    ) -> Result<Hash, AddError> {
        let changed = |e: io::Error| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                AddError::Changed(path.to_owned())
            } else {
                AddError::Unreadable {
                    path: path.to_owned(),
                    source: e,
                }
            }
        };
        if size <= GROUP_SIZE {
            let mut buf = vec![0u8; size as usize];
            src.read_exact(&mut buf).map_err(changed)?;
            progress(Progress::Advance(size));
            let hash = Hash::of(&buf);
            if let Slot::Vacant(slot) = batch.staged.entry(hash) {
                batch.bytes += size;
                slot.insert(Staged::Inline(buf));
            }
            return Ok(hash);
        }
        let id = self.temp_id();
        let backend = self.backend();
        let data = backend
            .create(FileName::Temp(id, FileKind::Data))
            .map_err(StoreError::from)?;
        let ob = backend
            .create(FileName::Temp(id, FileKind::Outboard))
            .map_err(StoreError::from)?;
        let res = match (file, data.as_file()) {
            (Some(from), Some(to)) => super::fastcopy::copy_then_hash(
                from,
                to,
                size,
                &|n| progress(Progress::Advance(n)),
                |reader| outboard_into(reader, size, &*ob),
            ),
            _ => copy_and_hash(src, size, &*data, &*ob, progress),
        };
        let hash = match res {
            Ok(h) => h,
            Err(PipeError::Read(e)) => {
                drop((data, ob));
                self.drop_temp(id);
                return Err(changed(e));
            }
            Err(PipeError::Write(e)) => {
                drop((data, ob));
                self.drop_temp(id);
                return Err(StoreError::from(e).into());
            }
        };
        match batch.staged.entry(hash) {
            Slot::Occupied(_) => self.drop_temp(id),
            Slot::Vacant(slot) => {
                slot.insert(Staged::Temp(id));
            }
        }
        Ok(hash)
    }

    fn drop_temp(&self, id: u64) {
        // Best effort: a temp file left behind is removed at next open or gc.
        let _ = self.backend().remove(FileName::Temp(id, FileKind::Data));
        let _ = self
            .backend()
            .remove(FileName::Temp(id, FileKind::Outboard));
    }

    /// Make staged blobs durable and commit them, with the pin if given.
    fn commit_batch(
        &self,
        batch: &mut Batch,
        pin: Option<(Hash, &Manifest, &str)>,
    ) -> Result<(), StoreError> {
        let staged = std::mem::take(&mut batch.staged);
        batch.bytes = 0;
        let backend = self.backend();
        let mut inline = Vec::new();
        let mut files = Vec::new();
        for (hash, s) in staged {
            match s {
                Staged::Inline(b) => inline.push((hash, b)),
                Staged::Temp(id) => {
                    if self.entry(&hash)?.is_some_and(|e| e.is_complete()) {
                        self.drop_temp(id);
                        continue;
                    }
                    // Order matters: bytes synced, then renamed, then the
                    // directory synced, then (below) the commit that claims them.
                    for k in [FileKind::Data, FileKind::Outboard] {
                        backend.open(FileName::Temp(id, k))?.sync()?;
                    }
                    for k in [FileKind::Data, FileKind::Outboard] {
                        backend.rename(FileName::Temp(id, k), FileName::Blob(hash, k))?;
                    }
                    let size = backend.open(FileName::Blob(hash, FileKind::Data))?.size()?;
                    files.push((hash, size));
                    // Hashed as it was stored.
                    self.verified_insert(hash, 0, content::group_count(size).max(1));
                }
            }
        }
        backend.sync_dir()?;
        let tx = self.inner.db.begin_write()?;
        {
            let mut blobs = tx.open_table(BLOBS)?;
            let mut data = tx.open_table(INLINE)?;
            for (hash, bytes) in &inline {
                let complete = match blobs.get(hash.as_bytes())? {
                    Some(v) => BlobEntry::decode(v.value()).is_ok_and(|e| e.is_complete()),
                    None => false,
                };
                if !complete {
                    let e = BlobEntry::Inline {
                        size: bytes.len() as u64,
                    };
                    blobs.insert(hash.as_bytes(), e.encode().as_slice())?;
                    data.insert(hash.as_bytes(), bytes.as_slice())?;
                }
            }
            for (hash, size) in &files {
                let e = BlobEntry::File {
                    size: *size,
                    present: None,
                };
                blobs.insert(hash.as_bytes(), e.encode().as_slice())?;
            }
        }
        let pinned = pin.is_some();
        if let Some((root, manifest, name)) = pin {
            pin_in(&tx, &root, manifest, name)?;
        }
        tx.commit()?;
        if pinned {
            self.pins_changed();
        }
        Ok(())
    }
}

#[derive(Default)]
struct Batch {
    staged: HashMap<Hash, Staged>,
    bytes: u64,
    known: BTreeSet<Hash>,
}

/// The manifest `paths` would get from [`Store::add_paths`], computed by
/// hashing the files without storing anything: to check that local files
/// match a root.
///
/// ```
/// use swarm_engine::store::{Store, manifest_of};
///
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("app.bin");
/// std::fs::write(&file, b"release build")?;
/// let store = Store::memory()?;
/// let root = store.add_paths(&[file.clone()], &Default::default())?.root;
/// // Later: do the local files still match the root?
/// assert_eq!(manifest_of(&[file.clone()])?.root(), root);
/// std::fs::write(&file, b"edited")?;
/// assert_ne!(manifest_of(&[file])?.root(), root);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn manifest_of(paths: &[PathBuf]) -> Result<Manifest, AddError> {
    if paths.is_empty() {
        return Err(AddError::Empty);
    }
    let mut entries = Vec::new();
    for s in walk(paths)? {
        let unreadable = |e| AddError::Unreadable {
            path: s.path.clone(),
            source: e,
        };
        let f = fs::File::open(&s.path).map_err(unreadable)?;
        let mut h = blake3::Hasher::new();
        let n = io::copy(&mut f.take(s.size), &mut h).map_err(unreadable)?;
        if n != s.size {
            return Err(AddError::Changed(s.path));
        }
        entries.push(Entry {
            path: s.rel,
            size: s.size,
            mode: s.mode,
            hash: Hash::from(h.finalize()),
            extensions: vec![],
        });
    }
    Ok(Manifest::new(entries)?)
}

/// Walk the inputs, following symlinks, into a sorted list of files.
fn walk(paths: &[PathBuf]) -> Result<Vec<Source>, AddError> {
    let mut out: BTreeMap<String, Source> = BTreeMap::new();
    for p in paths {
        let meta = stat(p)?;
        let name = top_name(p)?;
        if meta.is_dir() {
            let mut ancestors = vec![(meta.dev(), meta.ino())];
            walk_dir(p, &name, &mut ancestors, &mut out)?;
        } else {
            push_file(p, name, &meta, &mut out)?;
        }
    }
    Ok(out.into_values().collect())
}

fn stat(p: &Path) -> Result<fs::Metadata, AddError> {
    fs::metadata(p).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => AddError::NotFound(p.to_owned()),
        _ if e.raw_os_error() == Some(40) => AddError::SymlinkLoop(p.to_owned()), // ELOOP
        _ => AddError::Unreadable {
            path: p.to_owned(),
            source: e,
        },
    })
}

fn top_name(p: &Path) -> Result<String, AddError> {
    let canon;
    let name = match p.file_name() {
        Some(n) => n,
        None => {
            canon = fs::canonicalize(p).map_err(|e| AddError::Unreadable {
                path: p.to_owned(),
                source: e,
            })?;
            canon.file_name().ok_or_else(|| AddError::BadName {
                path: p.to_owned(),
                source: ManifestError::BadPath {
                    path: p.display().to_string(),
                    why: "has no file name",
                },
            })?
        }
    };
    utf8(p, name)
}

fn utf8(p: &Path, name: &std::ffi::OsStr) -> Result<String, AddError> {
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| AddError::BadName {
            path: p.to_owned(),
            source: ManifestError::BadPath {
                path: name.to_string_lossy().into_owned(),
                why: "not UTF-8",
            },
        })
}

fn push_file(
    p: &Path,
    rel: String,
    meta: &fs::Metadata,
    out: &mut BTreeMap<String, Source>,
) -> Result<(), AddError> {
    if !meta.is_file() {
        return Err(AddError::Unsupported(p.to_owned()));
    }
    manifest::check_path(&rel).map_err(|source| AddError::BadName {
        path: p.to_owned(),
        source,
    })?;
    if out.contains_key(&rel) {
        return Err(AddError::NameClash(rel));
    }
    let src = Source {
        rel: rel.clone(),
        path: p.to_owned(),
        size: meta.len(),
        mode: meta.permissions().mode() & manifest::MODE_MASK,
        stamp: Stamp::of(meta),
    };
    out.insert(rel, src);
    Ok(())
}

fn walk_dir(
    dir: &Path,
    rel: &str,
    ancestors: &mut Vec<(u64, u64)>,
    out: &mut BTreeMap<String, Source>,
) -> Result<(), AddError> {
    let unreadable = |path: &Path, e| AddError::Unreadable {
        path: path.to_owned(),
        source: e,
    };
    let mut children = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
        let e = e.map_err(|e| unreadable(dir, e))?;
        children.push(e.path());
    }
    children.sort();
    for child in children {
        let name = utf8(&child, child.file_name().unwrap_or_default())?;
        let child_rel = format!("{rel}/{name}");
        let meta = stat(&child)?;
        if meta.is_dir() {
            let id = (meta.dev(), meta.ino());
            if ancestors.contains(&id) {
                return Err(AddError::SymlinkLoop(child));
            }
            ancestors.push(id);
            walk_dir(&child, &child_rel, ancestors, out)?;
            ancestors.pop();
        } else {
            push_file(&child, child_rel, &meta, out)?;
        }
    }
    Ok(())
}

pub(super) enum PipeError {
    Read(io::Error),
    Write(io::Error),
}

/// Copy `size` bytes from `src` into `data` while a second thread hashes
/// them and writes the post-order outboard to `ob`. Returns the root.
///
/// Reading and writing are memory copies through the page cache; hashing is
/// the one real computation, so it gets the other core. At most
/// `IN_FLIGHT + 2` blocks of 1 MiB are alive at once.
fn copy_and_hash(
    src: &mut impl Read,
    size: u64,
    data: &dyn BlobFile,
    ob: &dyn BlobFile,
    progress: &dyn Fn(Progress),
) -> Result<Hash, PipeError> {
    pipe(
        size,
        |_, buf| src.read_exact(buf),
        |off, buf| {
            data.write_all_at(off, buf)?;
            progress(Progress::Advance(buf.len() as u64));
            Ok(())
        },
        |reader| outboard_into(reader, size, ob),
    )
}

/// Hash `size` bytes from `reader`, writing the post-order outboard to `ob`.
fn outboard_into(reader: impl Read, size: u64, ob: &dyn BlobFile) -> io::Result<Hash> {
    let mut w = io::BufWriter::with_capacity(BLOCK, SeqWriter { file: ob, pos: 0 });
    let h = content::compute_outboard(reader, size, &mut w)?;
    io::Write::flush(&mut w)?;
    Ok(h)
}

/// The two-thread pipeline behind import and export. `read` fills a block
/// at an offset, `write` consumes it; `hash` runs on its own thread reading
/// the same bytes. Errors from `read` are [`PipeError::Read`], from `write`
/// and `hash` [`PipeError::Write`].
pub(super) fn pipe<T: Send>(
    size: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> io::Result<()>,
    mut write: impl FnMut(u64, &[u8]) -> io::Result<()>,
    hash: impl FnOnce(ChanReader) -> io::Result<T> + Send,
) -> Result<T, PipeError> {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(IN_FLIGHT);
        let (ret_tx, ret_rx) = mpsc::channel::<Arc<Vec<u8>>>();
        let hasher = s.spawn(move || {
            hash(ChanReader {
                rx,
                ret: ret_tx,
                cur: None,
                pos: 0,
            })
        });
        let mut allocated = 0;
        let mut off = 0u64;
        let mut result = Ok(());
        while off < size {
            let mut buf = match ret_rx.try_recv() {
                Ok(b) => b,
                Err(_) if allocated < IN_FLIGHT + 2 => {
                    allocated += 1;
                    Arc::new(Vec::with_capacity(BLOCK))
                }
                Err(_) => match ret_rx.recv() {
                    Ok(b) => b,
                    Err(_) => break, // the hasher ended early; its error follows
                },
            };
            // A returned block has no other owner: the hasher gave it back
            // and our clone was dropped after the write.
            let Some(v) = Arc::get_mut(&mut buf) else {
                break;
            };
            let n = (size - off).min(BLOCK as u64) as usize;
            v.resize(n, 0);
            if let Err(e) = read(off, v) {
                result = Err(PipeError::Read(e));
                break;
            }
            if tx.send(buf.clone()).is_err() {
                break;
            }
            if let Err(e) = write(off, &buf) {
                result = Err(PipeError::Write(e));
                break;
            }
            drop(buf);
            off += n as u64;
        }
        drop(tx);
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("hashing thread panicked")));
        result?;
        hashed.map_err(PipeError::Write)
    })
}

/// Reads the blocks a pipeline sends, returning each when done with it.
pub(super) struct ChanReader {
    rx: mpsc::Receiver<Arc<Vec<u8>>>,
    ret: mpsc::Sender<Arc<Vec<u8>>>,
    cur: Option<Arc<Vec<u8>>>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(cur) = &self.cur {
                if self.pos < cur.len() {
                    let n = (cur.len() - self.pos).min(out.len());
                    out[..n].copy_from_slice(&cur[self.pos..][..n]);
                    self.pos += n;
                    return Ok(n);
                }
                if let Some(done) = self.cur.take() {
                    let _ = self.ret.send(done);
                }
            }
            match self.rx.recv() {
                Ok(b) => {
                    self.cur = Some(b);
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
    }
}

/// Writes a [`BlobFile`] front to back.
/// Reads a [`BlobFile`] front to back.
pub(super) struct SeqReader<'a> {
    pub(super) file: &'a dyn BlobFile,
    pub(super) pos: u64,
}

impl Read for SeqReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

pub(super) struct SeqWriter<'a> {
    pub(super) file: &'a dyn BlobFile,
    pub(super) pos: u64,
}

impl io::Write for SeqWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(self.pos, buf)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
