//! Where a store keeps its bytes: a small trait over the redb file and the
//! blob files, so tests can swap in a backend that fails the Nth write or
//! loses everything not yet synced (a model of power loss).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::content::Hash;

/// Which of a blob's two files.
///
/// ```
/// use swarm_engine::store::{Backend, FileKind, FileName, MemBackend, Store, StoreConfig};
///
/// let backend = MemBackend::new();
/// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
/// // A blob over 16 KiB gets two files: its bytes and its outboard.
/// let hash = store.put_blob(&[1; 100_000])?;
/// let names: Vec<FileName> = backend.list()?.into_iter().map(|(name, _)| name).collect();
/// assert_eq!(
///     names,
///     [FileName::Blob(hash, FileKind::Data), FileName::Blob(hash, FileKind::Outboard)]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// The blob's bytes.
    Data,
    /// The post-order Bao outboard.
    Outboard,
}

/// The name of a blob file.
///
/// ```
/// use swarm_engine::store::{Backend, FileKind, FileName, MemBackend, Store, StoreConfig};
///
/// let backend = MemBackend::new();
/// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
/// let hash = store.put_blob(&[1; 100_000])?;
/// let sizes: Vec<(FileName, u64)> = backend.list()?;
/// assert!(sizes.contains(&(FileName::Blob(hash, FileKind::Data), 100_000)));
/// // Small blobs live in the database, with no file.
/// store.put_blob(b"small")?;
/// assert_eq!(backend.list()?.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileName {
    /// A file that belongs to a blob.
    Blob(Hash, FileKind),
    /// A scratch file, renamed to a blob file once its content is known.
    Temp(u64, FileKind),
}

/// A file that can be read and written at offsets.
///
/// ```
/// use swarm_engine::store::{Backend, BlobFile, FileKind, FileName, MemBackend};
///
/// let backend = MemBackend::new();
/// let file = backend.create(FileName::Temp(1, FileKind::Data))?;
/// file.write_all_at(10, b"hello")?;
/// assert_eq!(file.size()?, 15); // bytes 0..10 read as zero
/// let mut buf = [0; 5];
/// assert_eq!(file.read_at(10, &mut buf)?, 5);
/// assert_eq!(&buf, b"hello");
/// file.sync()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait BlobFile: Send + Sync + fmt::Debug {
    /// Read up to `buf.len()` bytes at `offset`; 0 means end of file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Write all of `buf` at `offset`, growing the file as needed.
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Set the length; new bytes read as zero.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Make everything written so far durable.
    fn sync(&self) -> io::Result<()>;
    /// The underlying file, when there is one, for kernel-side copies.
    fn as_file(&self) -> Option<&fs::File> {
        None
    }
}

/// Storage for one store: its redb database and its blob files.
///
/// ```
/// use swarm_engine::store::{Backend, FileKind, FileName, MemBackend};
///
/// let backend = MemBackend::new();
/// let temp = FileName::Temp(1, FileKind::Data);
/// backend.create(temp)?.write_all_at(0, b"content")?;
/// let hash = swarm_engine::Hash::of(b"content");
/// backend.rename(temp, FileName::Blob(hash, FileKind::Data))?;
/// backend.sync_dir()?;
/// assert_eq!(backend.list()?, vec![(FileName::Blob(hash, FileKind::Data), 7)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// Open (or create) the metadata database with a page cache of `cache` bytes.
    fn open_db(&self, cache: usize) -> Result<redb::Database, redb::DatabaseError>;
    /// Open the database for reading only, when there is one to open;
    /// `Ok(None)` when there is none yet or this backend cannot.
    fn open_db_read_only(
        &self,
        cache: usize,
    ) -> Result<Option<redb::ReadOnlyDatabase>, redb::DatabaseError> {
        let _ = cache;
        Ok(None)
    }
    /// Create a file, truncating it if it exists.
    fn create(&self, name: FileName) -> io::Result<Box<dyn BlobFile>>;
    /// Open an existing file; `NotFound` if there is none.
    fn open(&self, name: FileName) -> io::Result<Box<dyn BlobFile>>;
    /// Atomically replace `to` with `from`.
    fn rename(&self, from: FileName, to: FileName) -> io::Result<()>;
    /// Remove a file; removing a missing file is not an error.
    fn remove(&self, name: FileName) -> io::Result<()>;
    /// Every file with its length.
    fn list(&self) -> io::Result<Vec<(FileName, u64)>>;
    /// Make creates, renames and removes so far durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Give the file a second name outside the store, at `to`, without
    /// copying it. `Ok(false)` when that is not possible here (another file
    /// system, or no file system at all); the caller copies instead.
    fn link_out(&self, name: FileName, to: &Path) -> io::Result<bool> {
        let _ = (name, to);
        Ok(false)
    }
    /// Bytes `name` takes on disk (a sparse file takes less than its
    /// length); `None` where that is not known.
    fn disk_bytes(&self, name: FileName) -> io::Result<Option<u64>> {
        let _ = name;
        Ok(None)
    }
    /// When `name` was last written; `None` where that is not known.
    fn modified(&self, name: FileName) -> io::Result<Option<std::time::SystemTime>> {
        let _ = name;
        Ok(None)
    }
    /// Where the metadata database is, in words, for messages.
    fn location(&self) -> String {
        "the in-memory store database".into()
    }
    /// The directory that holds the store, when it is on a file system.
    fn root(&self) -> Option<PathBuf> {
        None
    }
}

// ---------------------------------------------------------------------------
// The filesystem backend.

/// A store directory on disk:
///
/// ```text
/// DIR/swarm.redb                   metadata (redb)
/// DIR/blobs/ab/<hex>.data          blob bytes, for blobs larger than 16 KiB
/// DIR/blobs/ab/<hex>.obao4         their post-order outboards
/// DIR/tmp/<n>.data|.obao4          imports in progress
/// ```
///
/// ```
/// use swarm_engine::store::{FsBackend, Store, StoreConfig};
///
/// let dir = tempfile::tempdir()?;
/// // What `Store::open` does.
/// let store = Store::with_backend(FsBackend::new(dir.path())?, StoreConfig::default())?;
/// store.put_blob(&[1; 100_000])?;
/// assert!(dir.path().join("swarm.redb").exists());
/// assert!(dir.path().join("blobs").read_dir()?.next().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FsBackend {
    dir: PathBuf,
    dirty_dirs: Mutex<BTreeSet<PathBuf>>,
}

impl FsBackend {
    /// Use `dir`, creating it and its subdirectories if needed.
    ///
    /// ```
    /// use swarm_engine::store::FsBackend;
    ///
    /// let dir = tempfile::tempdir()?;
    /// FsBackend::new(dir.path().join("store"))?;
    /// assert!(dir.path().join("store/blobs").is_dir());
    /// assert!(dir.path().join("store/tmp").is_dir());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(dir.join("blobs"))?;
        fs::create_dir_all(dir.join("tmp"))?;
        Ok(Self {
            dir,
            dirty_dirs: Mutex::new(BTreeSet::new()),
        })
    }

    /// The store directory.
    ///
    /// ```
    /// use swarm_engine::store::FsBackend;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let backend = FsBackend::new(dir.path())?;
    /// assert_eq!(backend.dir(), dir.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: FileName) -> PathBuf {
        let ext = |k| match k {
            FileKind::Data => "data",
            FileKind::Outboard => "obao4",
        };
        match name {
            FileName::Blob(h, k) => {
                let hex = h.to_hex();
                self.dir
                    .join("blobs")
                    .join(&hex[..2])
                    .join(format!("{hex}.{}", ext(k)))
            }
            FileName::Temp(n, k) => self.dir.join("tmp").join(format!("{n}.{}", ext(k))),
        }
    }

    fn touched(&self, path: &Path) {
        if let Some(parent) = path.parent() {
            lock(&self.dirty_dirs).insert(parent.to_owned());
        }
    }

    fn parse(dir_kind: &str, file: &str) -> Option<FileName> {
        let (stem, ext) = file.rsplit_once('.')?;
        let kind = match ext {
            "data" => FileKind::Data,
            "obao4" => FileKind::Outboard,
            _ => return None,
        };
        match dir_kind {
            "blobs" => Some(FileName::Blob(stem.parse().ok()?, kind)),
            _ => Some(FileName::Temp(stem.parse().ok()?, kind)),
        }
    }
}

/// An I/O error that names the file, keeping its kind (a full disk stays
/// a full disk, a missing file stays missing).
fn at(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[derive(Debug)]
struct FsFile(fs::File, PathBuf);

impl BlobFile for FsFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.0, buf, offset).map_err(at(&self.1))
    }
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset).map_err(at(&self.1))
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len).map_err(at(&self.1))
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata().map_err(at(&self.1))?.len())
    }
    fn sync(&self) -> io::Result<()> {
        self.0.sync_data().map_err(at(&self.1))
    }
    fn as_file(&self) -> Option<&fs::File> {
        Some(&self.0)
    }
}

impl Backend for FsBackend {
    fn location(&self) -> String {
        self.dir.join("swarm.redb").display().to_string()
    }

    fn root(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }

    fn open_db(&self, cache: usize) -> Result<redb::Database, redb::DatabaseError> {
        redb::Builder::new()
            .set_cache_size(cache)
            .create(self.dir.join("swarm.redb"))
    }

    fn open_db_read_only(
        &self,
        cache: usize,
    ) -> Result<Option<redb::ReadOnlyDatabase>, redb::DatabaseError> {
        let path = self.dir.join("swarm.redb");
        if !path.exists() {
            return Ok(None);
        }
        redb::Builder::new()
            .set_cache_size(cache)
            .open_read_only(path)
            .map(Some)
    }

    fn create(&self, name: FileName) -> io::Result<Box<dyn BlobFile>> {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(at(parent))?;
        }
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(at(&path))?;
        self.touched(&path);
        Ok(Box::new(FsFile(f, path)))
    }

    fn open(&self, name: FileName) -> io::Result<Box<dyn BlobFile>> {
        let path = self.path(name);
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(at(&path))?;
        Ok(Box::new(FsFile(f, path)))
    }

    fn rename(&self, from: FileName, to: FileName) -> io::Result<()> {
        let (a, b) = (self.path(from), self.path(to));
        if let Some(parent) = b.parent() {
            fs::create_dir_all(parent).map_err(at(parent))?;
        }
        fs::rename(&a, &b).map_err(at(&a))?;
        self.touched(&a);
        self.touched(&b);
        Ok(())
    }

    fn remove(&self, name: FileName) -> io::Result<()> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Ok(()) => {
                self.touched(&path);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(at(&path)(e)),
        }
    }

    fn list(&self) -> io::Result<Vec<(FileName, u64)>> {
        let mut out = Vec::new();
        let mut dirs = vec![("tmp", self.dir.join("tmp"))];
        for shard in fs::read_dir(self.dir.join("blobs"))? {
            dirs.push(("blobs", shard?.path()));
        }
        for (kind, dir) in dirs {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd {
                let e = e?;
                let name = e.file_name();
                if let Some(n) = name.to_str().and_then(|s| Self::parse(kind, s)) {
                    out.push((n, e.metadata()?.len()));
                }
            }
        }
        Ok(out)
    }

    fn disk_bytes(&self, name: FileName) -> io::Result<Option<u64>> {
        use std::os::unix::fs::MetadataExt;
        Ok(Some(fs::symlink_metadata(self.path(name))?.blocks() * 512))
    }

    fn modified(&self, name: FileName) -> io::Result<Option<std::time::SystemTime>> {
        Ok(Some(fs::symlink_metadata(self.path(name))?.modified()?))
    }

    fn link_out(&self, name: FileName, to: &Path) -> io::Result<bool> {
        match fs::hard_link(self.path(name), to) {
            Ok(()) => Ok(true),
            // EXDEV (another file system), EPERM/EMLINK (no links here): copy.
            Err(e) if matches!(e.raw_os_error(), Some(18 | 1 | 31)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        let dirs = std::mem::take(&mut *lock(&self.dirty_dirs));
        for d in &dirs {
            fs::File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(at(d))?;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind
    // (sets and byte vectors), never a half-updated invariant.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The memory backend, with a power-loss model and fault injection.

/// A backend in memory, for embedding without a disk and for tests.
///
/// It models what a disk promises: file bytes become durable at
/// [`BlobFile::sync`], directory changes at [`Backend::sync_dir`], the
/// database at redb's own sync. [`MemBackend::crash`] returns what a machine
/// would find after power loss. [`MemBackend::fail_after`] makes every
/// mutating operation from the Nth on fail, as a full disk or a dying
/// machine would.
///
/// ```
/// use std::io::ErrorKind;
/// use swarm_engine::store::{AddError, MemBackend, Store, StoreConfig};
///
/// # let dir = tempfile::tempdir()?;
/// # let file = dir.path().join("big.bin");
/// # std::fs::write(&file, vec![1u8; 200_000])?;
/// let backend = MemBackend::new();
/// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
/// // The machine dies at the 3rd write of an add...
/// backend.fail_after(backend.ops() + 3, ErrorKind::Other);
/// assert!(matches!(store.add_paths(&[file], &Default::default()), Err(AddError::Store(_))));
/// // ...and after a restart the store is sound, and holds nothing of it.
/// let restarted = Store::with_backend(backend.crash(), StoreConfig::default())?;
/// assert!(restarted.check(|_| {})?.problems.is_empty());
/// assert!(restarted.pins()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemBackend {
    state: Arc<Mutex<MemState>>,
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
    ops: AtomicU64,
    fail_at: AtomicU64, // 0 = never
    kind: Mutex<Option<io::ErrorKind>>,
}

impl Faults {
    fn op(&self) -> io::Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        let at = self.fail_at.load(Ordering::SeqCst);
        if at != 0 && n >= at {
            let kind = lock(&self.kind).unwrap_or(io::ErrorKind::Other);
            return Err(io::Error::new(
                kind,
                format!("injected fault at operation {n}"),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct MemData {
    live: Vec<u8>,
    durable: Vec<u8>,
}

type Shared = Arc<Mutex<MemData>>;

#[derive(Debug, Default)]
struct MemState {
    db: Shared,
    files: BTreeMap<FileName, Shared>,
    durable_files: BTreeMap<FileName, Shared>,
}

impl MemBackend {
    /// An empty memory backend.
    ///
    /// ```
    /// use swarm_engine::store::{Backend, MemBackend};
    ///
    /// let backend = MemBackend::new();
    /// assert!(backend.list()?.is_empty());
    /// assert_eq!(backend.ops(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, the `n`th mutating operation (counted from creation)
    /// and all after it fail with `kind`. `n = 0` turns faults off.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use swarm_engine::store::{MemBackend, Store, StoreConfig, StoreError};
    ///
    /// let backend = MemBackend::new();
    /// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
    /// backend.fail_after(backend.ops() + 1, ErrorKind::StorageFull);
    /// assert!(matches!(store.put_blob(&[1; 100_000]), Err(StoreError::DiskFull)));
    /// backend.fail_after(0, ErrorKind::Other); // space freed
    /// store.put_blob(&[1; 100_000])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_after(&self, n: u64, kind: io::ErrorKind) {
        *lock(&self.faults.kind) = Some(kind);
        self.faults.fail_at.store(n, Ordering::SeqCst);
    }

    /// Mutating operations performed so far.
    ///
    /// ```
    /// use swarm_engine::store::{MemBackend, Store, StoreConfig};
    ///
    /// let backend = MemBackend::new();
    /// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
    /// let before = backend.ops();
    /// store.put_blob(&[1; 100_000])?;
    /// // Writes, syncs, renames: each a point where a test can crash it.
    /// assert!(backend.ops() > before);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ops(&self) -> u64 {
        self.faults.ops.load(Ordering::SeqCst)
    }

    /// What survives power loss now: synced bytes and synced directory
    /// entries only, with no faults armed.
    ///
    /// ```
    /// use swarm_engine::store::{Backend, FileKind, FileName, MemBackend};
    ///
    /// let backend = MemBackend::new();
    /// let synced = FileName::Temp(1, FileKind::Data);
    /// backend.create(synced)?.sync()?;
    /// backend.sync_dir()?;
    /// let unsynced = FileName::Temp(2, FileKind::Data);
    /// backend.create(unsynced)?.write_all_at(0, b"lost")?;
    /// // After power loss, only what was synced is there.
    /// let after = backend.crash();
    /// assert!(after.open(synced).is_ok());
    /// assert!(after.open(unsynced).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crash(&self) -> MemBackend {
        let st = lock(&self.state);
        let snap = |d: &Shared| {
            let d = lock(d);
            Arc::new(Mutex::new(MemData {
                live: d.durable.clone(),
                durable: d.durable.clone(),
            }))
        };
        let files: BTreeMap<_, _> = st
            .durable_files
            .iter()
            .map(|(k, v)| (*k, snap(v)))
            .collect();
        MemBackend {
            state: Arc::new(Mutex::new(MemState {
                db: snap(&st.db),
                durable_files: files.clone(),
                files,
            })),
            faults: Arc::default(),
        }
    }

    /// Flip one bit of a stored file, as bit rot would (tests of `check`).
    ///
    /// ```
    /// use swarm_engine::content::all;
    /// use swarm_engine::store::{FileKind, FileName, MemBackend, ReadError, Store, StoreConfig};
    ///
    /// let backend = MemBackend::new();
    /// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
    /// let hash = store.put_blob(&[1; 100_000])?;
    /// backend.corrupt(FileName::Blob(hash, FileKind::Data), 50_000)?;
    /// // Serving re-verifies by default, and refuses to send it.
    /// let err = store.encode_ranges(&hash, &all(), std::io::sink()).unwrap_err();
    /// assert!(matches!(err, ReadError::Corrupt(h) if h == hash));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn corrupt(&self, name: FileName, offset: u64) -> io::Result<()> {
        let st = lock(&self.state);
        let f = st.files.get(&name).ok_or(io::ErrorKind::NotFound)?;
        let mut d = lock(f);
        let i = usize::try_from(offset).map_err(io::Error::other)?;
        let b = d.live.get_mut(i).ok_or(io::ErrorKind::UnexpectedEof)?;
        *b ^= 1;
        let b = *b;
        if let Some(x) = d.durable.get_mut(i) {
            *x = b;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct MemFile {
    data: Shared,
    faults: Arc<Faults>,
}

fn read_from(v: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let Ok(start) = usize::try_from(offset) else {
        return 0;
    };
    let Some(src) = v.get(start..) else { return 0 };
    let n = src.len().min(buf.len());
    buf[..n].copy_from_slice(&src[..n]);
    n
}

fn write_to(v: &mut Vec<u8>, offset: u64, buf: &[u8]) -> io::Result<()> {
    let start = usize::try_from(offset).map_err(io::Error::other)?;
    let end = start + buf.len();
    if v.len() < end {
        v.resize(end, 0);
    }
    v[start..end].copy_from_slice(buf);
    Ok(())
}

impl BlobFile for MemFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Ok(read_from(&lock(&self.data).live, offset, buf))
    }
    fn write_all_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.faults.op()?;
        write_to(&mut lock(&self.data).live, offset, buf)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.op()?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        lock(&self.data).live.resize(len, 0);
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.data).live.len() as u64)
    }
    fn sync(&self) -> io::Result<()> {
        self.faults.op()?;
        let mut d = lock(&self.data);
        d.durable = d.live.clone();
        Ok(())
    }
}

/// The redb side of a [`MemBackend`].
#[derive(Debug)]
struct MemDb {
    data: Shared,
    faults: Arc<Faults>,
}

impl redb::StorageBackend for MemDb {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.data).live.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let n = read_from(&lock(&self.data).live, offset, out);
        if n < out.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.op()?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        lock(&self.data).live.resize(len, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.op()?;
        let mut d = lock(&self.data);
        d.durable = d.live.clone();
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.op()?;
        write_to(&mut lock(&self.data).live, offset, data)
    }
}

impl Backend for MemBackend {
    fn open_db(&self, cache: usize) -> Result<redb::Database, redb::DatabaseError> {
        let db = MemDb {
            data: lock(&self.state).db.clone(),
            faults: self.faults.clone(),
        };
        redb::Builder::new()
            .set_cache_size(cache)
            .create_with_backend(db)
    }

    fn create(&self, name: FileName) -> io::Result<Box<dyn BlobFile>> {
        self.faults.op()?;
        let data = Shared::default();
        lock(&self.state).files.insert(name, data.clone());
        Ok(Box::new(MemFile {
            data,
            faults: self.faults.clone(),
        }))
    }

    fn open(&self, name: FileName) -> io::Result<Box<dyn BlobFile>> {
        let st = lock(&self.state);
        let data = st.files.get(&name).ok_or(io::ErrorKind::NotFound)?.clone();
        Ok(Box::new(MemFile {
            data,
            faults: self.faults.clone(),
        }))
    }

    fn rename(&self, from: FileName, to: FileName) -> io::Result<()> {
        self.faults.op()?;
        let mut st = lock(&self.state);
        let f = st.files.remove(&from).ok_or(io::ErrorKind::NotFound)?;
        st.files.insert(to, f);
        Ok(())
    }

    fn remove(&self, name: FileName) -> io::Result<()> {
        self.faults.op()?;
        lock(&self.state).files.remove(&name);
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<(FileName, u64)>> {
        let st = lock(&self.state);
        Ok(st
            .files
            .iter()
            .map(|(k, v)| (*k, lock(v).live.len() as u64))
            .collect())
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.faults.op()?;
        let mut st = lock(&self.state);
        st.durable_files = st.files.clone();
        Ok(())
    }
}
