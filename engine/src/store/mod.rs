//! The blockstore: one redb database for metadata and small blobs, plus a
//! data file and an outboard file for each blob larger than one 16 KiB group.
//!
//! # Crash safety
//!
//! Every redb commit is durable (fsync) and only ever claims bytes that were
//! synced before it: blob files are written under temporary names, synced,
//! renamed, the directory synced, and only then is the blob entry committed.
//! A crash at any point leaves either the old state or the new one plus some
//! unreferenced files, which [`Store::gc`] removes. The tests drive every
//! operation through [`MemBackend`] and crash it at every step.
//!
//! # Reference counting
//!
//! A pin names a root. Pinning adds one reference to the root and to each
//! distinct blob its manifest lists; unpinning removes them. [`Store::gc`]
//! deletes every blob with no references, so content shared by two roots is
//! stored once and survives until the last pin that reaches it is gone.

mod backend;
mod cat;
mod db;
mod delta;
mod export;
mod fastcopy;
mod guard;
mod import;
mod mirror;
mod partial;
mod releases;
mod salvage;
mod tables;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, ReadableTableMetadata};

pub use self::backend::{Backend, BlobFile, FileKind, FileName, FsBackend, MemBackend};
pub use self::cat::CatError;
pub use self::delta::{Applied, MadePatch};
pub use self::export::{ExportError, ExportOptions, Exported};
pub use self::import::{AddError, AddOptions, Added, Progress, manifest_of};
pub use self::mirror::{
    MIRROR_INDEX, MIRROR_INDEX_NAME, MIRROR_VERSION, MirrorError, MirrorOptions, MirrorWritten,
    mirror_blob_path, mirror_latest_path, mirror_outboard_path, mirror_proof_offsets,
};
pub use self::partial::{PartialBlob, Received, WriteError};
pub use self::releases::{
    AcceptError, PublishError, PublishOptions, Published, SeenRelease, TrustError,
};
pub use self::salvage::{
    LostBlob, LostPin, OldDatabase, PartialRecovered, PinSource, RestoredPin, SalvageError,
    SalvageReport,
};
use self::tables::{BLOBS, BlobEntry, INLINE, META, PINS, PinEntry, REFS, SECRETS, STORE_VERSION};
pub use crate::content::GroupSet; // in the pure core; `store::GroupSet` still names it
use crate::content::{self, ChunkRanges, GROUP_SIZE, Hash, Manifest, ManifestError};

/// Tuning for a store.
///
/// ```
/// use swarm_engine::store::{Store, StoreConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open_with(dir.path(), StoreConfig::default().cache_size(4 << 20))?;
/// # drop(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// redb page cache, in bytes. Blob data bypasses it; metadata is small.
    pub cache_size: usize,
    /// Open the database for reading only: nothing in the store is changed
    /// (redb rewrites parts of a database opened for writing whenever it is
    /// closed). Every write fails with [`StoreError::ReadOnly`]. A store
    /// that does not exist yet, or that was not closed cleanly and needs
    /// repair, is opened for writing all the same.
    pub read_only: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_size: 16 << 20,
            read_only: false,
        }
    }
}

impl StoreConfig {
    /// Set the redb page cache size in bytes.
    ///
    /// ```
    /// use swarm_engine::store::StoreConfig;
    ///
    /// let config = StoreConfig::default().cache_size(64 << 20);
    /// assert_eq!(config.cache_size, 64 << 20);
    /// ```
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size = bytes;
        self
    }

    /// Open for reading only (see [`Self::read_only`]).
    ///
    /// ```
    /// use swarm_engine::store::{Store, StoreConfig, StoreError};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let hash = Store::open(dir.path())?.put_blob(b"kept")?;
    /// let store = Store::open_with(dir.path(), StoreConfig::default().read_only(true))?;
    /// assert!(store.blob_info(&hash)?.is_some());
    /// assert!(matches!(store.put_blob(b"new"), Err(StoreError::ReadOnly)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }
}

/// A blockstore. Cheap to clone; all clones share one database.
///
/// ```
/// use swarm_engine::store::Store;
///
/// let store = Store::memory()?;
/// let other = store.clone();
/// let hash = store.put_blob(b"shared")?;
/// assert_eq!(other.read_blob(&hash, 1024)?, Some(b"shared".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: db::Db,
    backend: Box<dyn Backend>,
    next_temp: AtomicU64,
    /// Counts commits that changed the pins table: a reader that caches
    /// something made from the pins keeps it while this stays the same,
    /// and can wait for it to change. Bumped after the commit, so a cache
    /// can only be newer than its count, never older.
    pins_changed: tokio::sync::watch::Sender<u64>,
    /// Imports hold it shared while they have blobs committed but not yet
    /// pinned; gc holds it exclusively, so it never frees those.
    gc_lock: RwLock<()>,
    /// Groups of blobs being received that are verified and written but
    /// maybe not yet committed: served at once (a leecher serves what it
    /// has verified), forgotten on a crash (the commit is what lasts).
    live: std::sync::Mutex<std::collections::HashMap<Hash, GroupSet>>,
    /// Groups of each file blob whose stored bytes this process verified
    /// since it opened the store (see `verify`).
    verified: std::sync::Mutex<std::collections::HashMap<Hash, GroupSet>>,
    /// Open [`PartialBlob`]s per blob: gc never collects these, and two
    /// writers of one blob share its files.
    writers: std::sync::Mutex<std::collections::HashMap<Hash, usize>>,
    /// Serializes the start of partial blobs, so that two fetches of one new
    /// blob do not both create (and truncate) its files.
    starting: std::sync::Mutex<()>,
    /// Blobs that lost groups to damage since [`Store::take_damaged`] was
    /// last called: a node fetches them again.
    rotted: std::sync::Mutex<BTreeSet<Hash>>,
    /// The database file, for messages.
    location: String,
    /// Set when the database was found damaged (see `guard`).
    damaged: std::sync::atomic::AtomicBool,
    damage: std::sync::Mutex<String>,
}

/// A store that could not be opened.
///
/// ```
/// use swarm_engine::store::{OpenError, Store};
///
/// let dir = tempfile::tempdir()?;
/// let _running = Store::open(dir.path())?;
/// // A second open of the same store, as a second process would try.
/// assert!(matches!(Store::open(dir.path()), Err(OpenError::Locked(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process has the store open.
    #[error(
        "the store at {0} is in use by another swarm process; stop it or choose another store directory"
    )]
    Locked(String),
    /// The database file is damaged beyond redb's own repair.
    #[error("the store database at {path} is damaged: {reason}")]
    Corrupt {
        /// Where the store is.
        path: String,
        /// What redb reported.
        reason: String,
    },
    /// Written by a newer version.
    #[error(
        "the store at {path} has layout version {found}; this build reads version {STORE_VERSION}"
    )]
    Version {
        /// Where the store is.
        path: String,
        /// The version found.
        found: u64,
    },
    /// The directory could not be created or read.
    #[error("cannot open the store at {path}")]
    Io {
        /// Where the store is.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The directory holds other things and no store: opening it would
    /// turn it into one, and the store's clean-ups would delete its files
    /// that look like store files.
    #[error(
        "{path} is not a swarm store: it holds {found:?} and no swarm.redb; use an empty or new directory for a store"
    )]
    NotAStore {
        /// The directory.
        path: String,
        /// One of the entries in it that no store has.
        found: String,
    },
}

/// An operation on an open store failed.
///
/// ```
/// use std::io::ErrorKind;
/// use swarm_engine::store::{MemBackend, Store, StoreConfig, StoreError};
///
/// let backend = MemBackend::new();
/// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
/// // The disk fills up: the next write fails.
/// backend.fail_after(backend.ops() + 1, ErrorKind::StorageFull);
/// let err = store.put_blob(&[7; 100_000]).unwrap_err();
/// assert!(matches!(err, StoreError::DiskFull));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk is full. Nothing stored before was lost.
    #[error("the disk is full; nothing already stored was lost: free some space and try again")]
    DiskFull,
    /// Reading or writing a blob file failed.
    #[error("store I/O error: {0}")]
    Io(io::Error),
    /// The metadata database reported an error.
    #[error("store database error: {0}")]
    Db(String),
    /// A record in the database does not decode.
    #[error("store record for {0} is damaged; check the store")]
    BadRecord(Hash),
    /// A blob declared larger than [`content::MAX_BLOB_SIZE`]; nothing was
    /// created for it.
    #[error(
        "{hash} is declared as {size} bytes, more than the largest blob allowed ({} bytes)",
        content::MAX_BLOB_SIZE
    )]
    TooLarge {
        /// The blob.
        hash: Hash,
        /// Its declared size.
        size: u64,
    },
    /// The store was opened read-only, and this operation writes.
    #[error("the store was opened read-only")]
    ReadOnly,
    /// The metadata database is damaged: redb reported corruption or failed
    /// inside. Nothing more is read from it or written to it until the store
    /// is reopened; the blob files are untouched, and salvage rebuilds the
    /// database from them.
    #[error("the store database {path} is damaged ({what}); its blob files are untouched")]
    Damaged {
        /// The database file.
        path: String,
        /// What failed.
        what: String,
    },
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::StorageFull {
            Self::DiskFull
        } else {
            Self::Io(e)
        }
    }
}

macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                let e: redb::Error = e.into();
                match e {
                    redb::Error::Io(io) => io.into(),
                    redb::Error::Corrupted(what) => guard::damaged(what),
                    other => Self::Db(other.to_string()),
                }
            }
        }
    )*};
}
db_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A pinned root, as [`Store::pins`] lists it.
///
/// ```
/// # let store = swarm_engine::store::Store::memory()?;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("hello.txt");
/// # std::fs::write(&path, b"hello swarm")?;
/// # let added = store.add_paths(&[path], &Default::default())?;
/// let pins = store.pins()?;
/// assert_eq!(pins.len(), 1);
/// assert_eq!((pins[0].root, pins[0].name.as_str()), (added.root, "hello.txt"));
/// assert_eq!((pins[0].files, pins[0].size), (1, 11));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The root hash.
    pub root: Hash,
    /// The name given when it was pinned (the added path's file name).
    pub name: String,
    /// Total bytes of its files.
    pub size: u64,
    /// Number of files.
    pub files: u64,
    /// Seconds since the Unix epoch when it was pinned.
    pub created: u64,
}

/// What [`Store::gc`] did.
///
/// ```
/// use swarm_engine::store::Store;
///
/// let store = Store::memory()?;
/// store.put_blob(b"nobody pins this")?;
/// let stats = store.gc()?;
/// assert_eq!((stats.blobs, stats.bytes), (1, 16));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes freed on disk (data and outboards, plus leftover files).
    pub bytes: u64,
    /// Partial blobs no pin needs that were kept: written to within
    /// [`GcOptions::keep_partial_for`] (a download that may resume).
    pub kept_partials: u64,
    /// The bytes those take on disk.
    pub kept_partial_bytes: u64,
}

/// What [`Store::gc_with`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Keep a partial blob (an interrupted download) written to within
    /// this long, though no pin needs it; `None` collects every partial
    /// that no download has open. Partials a download has open are
    /// always kept. Default: [`GcOptions::KEEP_PARTIAL_FOR`].
    pub keep_partial_for: Option<std::time::Duration>,
}

impl GcOptions {
    /// How long [`Store::gc`] keeps a partial blob: a week.
    pub const KEEP_PARTIAL_FOR: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            keep_partial_for: Some(Self::KEEP_PARTIAL_FOR),
        }
    }
}

/// A blob being received, or whose download stopped: what
/// [`Store::partials`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialInfo {
    /// The blob.
    pub hash: Hash,
    /// Its full size.
    pub size: u64,
    /// Bytes of it verified and stored.
    pub present: u64,
    /// Bytes its files take on disk, where known.
    pub disk_bytes: Option<u64>,
    /// When its data was last written, where known.
    pub modified: Option<std::time::SystemTime>,
    /// Whether a download has it open now.
    pub writing: bool,
    /// Whether a pin needs it (a pinned root whose blob lost groups).
    pub referenced: bool,
}

/// One problem [`Store::check`] found.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::store::{FileKind, FileName, MemBackend, Store, StoreConfig};
///
/// let backend = MemBackend::new();
/// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
/// let data = vec![1u8; 100_000];
/// let hash = store.put_blob(&data)?;
/// assert_eq!(hash, Hash::of(&data));
/// backend.corrupt(FileName::Blob(hash, FileKind::Data), 40_000)?; // bit rot
/// let report = store.check(|_| {})?;
/// assert_eq!(report.problems.len(), 1);
/// assert_eq!(report.problems[0].hash, hash);
/// println!("{}", report.problems[0].what); // "stored data in the 16 KiB group at byte 32768 …"
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The blob or root concerned.
    pub hash: Hash,
    /// What is wrong, in words.
    pub what: String,
}

/// What [`Store::check`] found.
///
/// ```
/// # let store = swarm_engine::store::Store::memory()?;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("hello.txt");
/// # std::fs::write(&path, b"hello swarm")?;
/// # let added = store.add_paths(&[path], &Default::default())?;
/// let report = store.check(|_| {})?;
/// assert!(report.problems.is_empty());
/// assert_eq!(report.blobs, 2); // the file and the manifest
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Blobs re-verified.
    pub blobs: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Everything wrong; empty when the store is sound.
    pub problems: Vec<Problem>,
}

/// What the store holds of one blob.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::store::{BlobInfo, GroupSet, Store};
///
/// let store = Store::memory()?;
/// let data = vec![1u8; 100_000];
/// // A download has started, and nothing is verified yet.
/// let _receiving = store.partial(Hash::of(&data), 100_000)?;
/// assert_eq!(
///     store.blob_info(&Hash::of(&data))?,
///     Some(BlobInfo { size: 100_000, partial: Some(GroupSet::new()) })
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Size in bytes.
    pub size: u64,
    /// Verified groups, `None` when complete.
    pub partial: Option<GroupSet>,
}

impl Store {
    /// Open or create the store in directory `dir`.
    ///
    /// ```
    /// use swarm_engine::store::Store;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let hash = Store::open(dir.path())?.put_blob(b"kept")?;
    /// // Closed when the last clone is dropped; opened again, it still holds the blob.
    /// let store = Store::open(dir.path())?;
    /// assert!(store.blob_info(&hash)?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(dir, StoreConfig::default())
    }

    /// [`Self::open`] with tuning.
    ///
    /// ```
    /// use swarm_engine::store::{Store, StoreConfig};
    ///
    /// let dir = tempfile::tempdir()?;
    /// // A small page cache for a small device.
    /// let store = Store::open_with(dir.path(), StoreConfig::default().cache_size(1 << 20))?;
    /// assert!(store.pins()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Self, OpenError> {
        let dir = dir.as_ref();
        let io = |source| OpenError::Io {
            path: dir.display().to_string(),
            source,
        };
        // A store is a directory with its database, or, without one (never
        // created, or moved aside by salvage), nothing but what a store
        // holds. Anything else non-empty is somebody's directory.
        match std::fs::read_dir(dir) {
            Ok(entries) if !dir.join("swarm.redb").exists() => {
                for entry in entries {
                    let name = entry.map_err(io)?.file_name();
                    let ours = match name.to_str() {
                        Some("blobs" | "tmp") => dir.join(&name).is_dir(),
                        // A killed node's control socket, or the private
                        // directory it was being made in (api::serve).
                        Some(crate::api::SOCKET_NAME) => {
                            use std::os::unix::fs::FileTypeExt;
                            std::fs::symlink_metadata(dir.join(&name))
                                .is_ok_and(|m| m.file_type().is_socket())
                        }
                        Some(n) if n.starts_with(".api") => dir.join(&name).is_dir(),
                        Some(n) => n.starts_with("swarm.redb."),
                        None => false,
                    };
                    if !ours {
                        return Err(OpenError::NotAStore {
                            path: dir.display().to_string(),
                            found: name.to_string_lossy().into_owned(),
                        });
                    }
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let backend = FsBackend::new(dir).map_err(io)?;
        Self::with_backend(backend, config).map_err(|e| match e {
            OpenError::Locked(_) => OpenError::Locked(dir.display().to_string()),
            OpenError::Corrupt { reason, .. } => OpenError::Corrupt {
                path: dir.display().to_string(),
                reason,
            },
            OpenError::Version { found, .. } => OpenError::Version {
                path: dir.display().to_string(),
                found,
            },
            OpenError::Io { source, .. } => io(source),
            other => other,
        })
    }

    /// A store that lives in memory and is gone when dropped.
    ///
    /// ```
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let hash = store.put_blob(b"in memory")?;
    /// assert!(store.blob_info(&hash)?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn memory() -> Result<Self, OpenError> {
        Self::with_backend(MemBackend::new(), StoreConfig::default())
    }

    /// Open a store on any backend.
    ///
    /// ```
    /// use swarm_engine::store::{MemBackend, Store, StoreConfig};
    ///
    /// let backend = MemBackend::new();
    /// let store = Store::with_backend(backend.clone(), StoreConfig::default())?;
    /// let hash = store.put_blob(&[5; 50_000])?;
    /// // Power loss right after: what was committed is there.
    /// let after = Store::with_backend(backend.crash(), StoreConfig::default())?;
    /// assert_eq!(after.read_blob(&hash, 1 << 20)?, Some(vec![5; 50_000]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_backend(backend: impl Backend, config: StoreConfig) -> Result<Self, OpenError> {
        // redb panics on some damaged pages instead of returning an error;
        // a damaged file must give the user an error, not a crash.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::open_inner(backend, config)
        }))
        .unwrap_or_else(|panic| {
            Err(OpenError::Corrupt {
                path: String::new(),
                reason: panic_text(&panic),
            })
        })
    }

    fn open_inner(backend: impl Backend, config: StoreConfig) -> Result<Self, OpenError> {
        let read_only = match config.read_only {
            true => match backend.open_db_read_only(config.cache_size) {
                // Not there yet, or needing repair: open for writing.
                Ok(None) | Err(redb::DatabaseError::RepairAborted) => None,
                Ok(Some(db)) => Some(Ok(db::Db::Read(db))),
                Err(e) => Some(Err(e)),
            },
            false => None,
        };
        let opened =
            read_only.unwrap_or_else(|| backend.open_db(config.cache_size).map(db::Db::Write));
        let db = opened.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::Locked(String::new()),
            redb::DatabaseError::Storage(redb::StorageError::Io(source))
                if source.kind() != io::ErrorKind::InvalidData =>
            {
                OpenError::Io {
                    path: String::new(),
                    source,
                }
            }
            other => OpenError::Corrupt {
                path: String::new(),
                reason: other.to_string(),
            },
        })?;
        let location = backend.location();
        let store = Self {
            inner: Arc::new(Inner {
                db,
                location,
                verified: Default::default(),
                rotted: Default::default(),
                writers: Default::default(),
                starting: Default::default(),
                damaged: Default::default(),
                damage: Default::default(),
                backend: Box::new(backend),
                next_temp: AtomicU64::new(1),
                pins_changed: tokio::sync::watch::Sender::new(0),
                gc_lock: RwLock::new(()),
                live: Default::default(),
            }),
        };
        store.init().map_err(|e| match e {
            InitError::Version(found) => OpenError::Version {
                path: String::new(),
                found,
            },
            InitError::Store(StoreError::Io(source)) => OpenError::Io {
                path: String::new(),
                source,
            },
            InitError::Store(e) => OpenError::Corrupt {
                path: String::new(),
                reason: e.to_string(),
            },
        })?;
        Ok(store)
    }

    fn init(&self) -> Result<(), InitError> {
        if self.inner.db.is_read_only() {
            return match self.is_initialized()? {
                true => Ok(()),
                false => Err(StoreError::ReadOnly.into()),
            };
        }
        // A store that is already set up is only read: opening never
        // rewrites the database when nothing changed (a write would also
        // turn one damaged page into a database redb cannot repair).
        if !self.is_initialized()? {
            let tx = self.inner.db.begin_write()?;
            {
                let mut meta = tx.open_table(META).map_err(StoreError::from)?;
                let version = meta
                    .get("version")
                    .map_err(StoreError::from)?
                    .map(|v| v.value());
                match version {
                    None => {
                        meta.insert("version", STORE_VERSION)
                            .map_err(StoreError::from)?;
                    }
                    Some(v) if v == STORE_VERSION => {}
                    Some(v) => return Err(InitError::Version(v)),
                }
                for t in [BLOBS, INLINE, PINS] {
                    tx.open_table(t).map_err(StoreError::from)?;
                }
                tx.open_table(REFS).map_err(StoreError::from)?;
            }
            tx.commit().map_err(StoreError::from)?;
        }
        // Temporary files belong to imports that died with their process.
        for (name, _) in self.inner.backend.list().map_err(StoreError::from)? {
            if let FileName::Temp(..) = name {
                self.inner.backend.remove(name).map_err(StoreError::from)?;
            }
        }
        Ok(())
    }

    /// Whether the database has this layout's version and tables, read
    /// without writing anything.
    fn is_initialized(&self) -> Result<bool, InitError> {
        let tx = self.inner.db.begin_read().map_err(StoreError::from)?;
        let meta = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(StoreError::from(e).into()),
        };
        match meta.get("version").map_err(StoreError::from)? {
            None => return Ok(false),
            Some(v) if v.value() == STORE_VERSION => {}
            Some(v) => return Err(InitError::Version(v.value())),
        }
        for t in [BLOBS, INLINE, PINS] {
            match tx.open_table(t) {
                Ok(_) => {}
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
                Err(e) => return Err(StoreError::from(e).into()),
            }
        }
        match tx.open_table(REFS) {
            Ok(_) => Ok(true),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(e) => Err(StoreError::from(e).into()),
        }
    }

    fn backend(&self) -> &dyn Backend {
        &*self.inner.backend
    }

    fn temp_id(&self) -> u64 {
        self.inner.next_temp.fetch_add(1, Ordering::Relaxed)
    }

    fn entry(&self, hash: &Hash) -> Result<Option<BlobEntry>, StoreError> {
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(BLOBS)?;
        let Some(v) = t.get(hash.as_bytes())? else {
            return Ok(None);
        };
        BlobEntry::decode(v.value())
            .map(Some)
            .map_err(|_| StoreError::BadRecord(*hash))
    }

    /// What the store holds of `hash`, if anything. For a blob being
    /// received, this includes groups verified since the last commit.
    ///
    /// ```
    /// use swarm_engine::Hash;
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let hash = store.put_blob(b"complete")?;
    /// let info = store.blob_info(&hash)?.expect("stored");
    /// assert_eq!((info.size, info.partial), (8, None)); // None: complete
    /// assert_eq!(store.blob_info(&Hash::of(b"never stored"))?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn blob_info(&self, hash: &Hash) -> Result<Option<BlobInfo>, StoreError> {
        self.guard(|| {
            let live = self.live(hash);
            Ok(self.entry(hash)?.map(|e| match e {
                BlobEntry::Inline { size } => BlobInfo {
                    size,
                    partial: None,
                },
                BlobEntry::File { size, present } => BlobInfo {
                    size,
                    partial: present.map(|p| with_live(p, live.as_ref())),
                },
            }))
        })
    }

    /// The groups of `hash` verified but maybe not yet committed. Read it
    /// *before* the blob's entry: a writer commits and then forgets its
    /// live groups, so whatever this misses, the entry read after it has.
    /// (In the other order a commit between the two reads hides groups
    /// from both, and a peer is refused what is held.)
    fn live(&self, hash: &Hash) -> Option<GroupSet> {
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(hash).cloned()
    }

    fn live_insert(&self, hash: Hash, start: u64, end: u64) {
        let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        live.entry(hash).or_default().insert(start, end);
    }

    fn writer_joins(&self, hash: Hash) {
        let mut w = self.inner.writers.lock().unwrap_or_else(|e| e.into_inner());
        *w.entry(hash).or_default() += 1;
    }

    /// Whether that was the last writer of `hash`.
    fn writer_leaves(&self, hash: &Hash) -> bool {
        let mut w = self.inner.writers.lock().unwrap_or_else(|e| e.into_inner());
        match w.get_mut(hash) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                w.remove(hash);
                true
            }
        }
    }

    /// Blobs that a [`PartialBlob`] is open on.
    fn being_written(&self) -> BTreeSet<Hash> {
        let w = self.inner.writers.lock().unwrap_or_else(|e| e.into_inner());
        w.keys().copied().collect()
    }

    fn live_forget(&self, hash: &Hash) {
        let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(hash);
    }

    /// Read a whole complete blob into memory, verifying it. For manifests
    /// and other small blobs; refuses blobs over `limit` bytes.
    ///
    /// ```
    /// use swarm_engine::Hash;
    /// use swarm_engine::store::{ReadError, Store};
    ///
    /// let store = Store::memory()?;
    /// let hash = store.put_blob(b"small blob")?;
    /// assert_eq!(store.read_blob(&hash, 1024)?, Some(b"small blob".to_vec()));
    /// assert!(matches!(store.read_blob(&hash, 4), Err(ReadError::TooLarge { size: 10, .. })));
    /// assert_eq!(store.read_blob(&Hash::of(b"unknown"), 1024)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_blob(&self, hash: &Hash, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
        self.guard(|| {
            let Some(entry) = self.entry(hash)? else {
                return Ok(None);
            };
            let size = entry.size();
            if !entry.is_complete() {
                return Err(ReadError::Incomplete(*hash));
            }
            if size > limit {
                return Err(ReadError::TooLarge { hash: *hash, size });
            }
            let bytes = match entry {
                BlobEntry::Inline { .. } => {
                    let tx = self.inner.db.begin_read().map_err(StoreError::from)?;
                    let t = tx.open_table(INLINE).map_err(StoreError::from)?;
                    let v = t.get(hash.as_bytes()).map_err(StoreError::from)?;
                    v.map(|v| v.value().to_vec()).unwrap_or_default()
                }
                BlobEntry::File { .. } => {
                    let f = self
                        .backend()
                        .open(FileName::Blob(*hash, FileKind::Data))
                        .map_err(StoreError::from)?;
                    let len = usize::try_from(size)
                        .map_err(|_| ReadError::TooLarge { hash: *hash, size })?;
                    let mut buf = vec![0u8; len];
                    read_exact_at(&*f, 0, &mut buf).map_err(StoreError::from)?;
                    buf
                }
            };
            if bytes.len() as u64 != size || Hash::of(&bytes) != *hash {
                return Err(ReadError::Corrupt(*hash));
            }
            Ok(Some(bytes))
        })
    }

    /// Load and decode the manifest named by `root`.
    ///
    /// ```
    /// # let store = swarm_engine::store::Store::memory()?;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("hello.txt");
    /// # std::fs::write(&path, b"hello swarm")?;
    /// # let added = store.add_paths(&[path], &Default::default())?;
    /// let manifest = store.manifest(&added.root)?;
    /// assert_eq!(manifest.entries()[0].path, "hello.txt");
    /// assert_eq!(manifest.root(), added.root);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn manifest(&self, root: &Hash) -> Result<Manifest, ReadError> {
        let bytes = self
            .read_blob(root, content::manifest::MAX_ENCODED_SIZE)?
            .ok_or(ReadError::Unknown(*root))?;
        Manifest::decode(&bytes).map_err(|e| ReadError::NotManifest(*root, e))
    }

    /// Pin `root` under `name`. Its manifest must be stored complete.
    /// Pinning a pinned root changes nothing.
    ///
    /// ```
    /// use swarm_engine::store::Store;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # std::fs::write(dir.path().join("a.txt"), b"some file")?;
    /// # let paths = [dir.path().join("a.txt")];
    /// let store = Store::memory()?;
    /// let root = store.add_paths(&paths, &Default::default())?.root;
    /// store.pin(&root, "second name")?; // already pinned: nothing changes
    /// assert_eq!(store.pins()?.len(), 1);
    /// store.unpin(&root)?;
    /// store.pin(&root, "again")?; // pinned again before a gc collected it
    /// assert_eq!(store.pins()?[0].name, "again");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pin(&self, root: &Hash, name: &str) -> Result<(), ReadError> {
        self.guard(|| {
            let manifest = self.manifest(root)?;
            let tx = self.inner.db.begin_write()?;
            pin_in(&tx, root, &manifest, name)?;
            tx.commit().map_err(StoreError::from)?;
            self.pins_changed();
            Ok(())
        })
    }

    /// The 32-byte secret stored under `name`, created with `make` if absent.
    /// Used for the node's key, so its id survives restarts.
    ///
    /// ```
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let first = store.secret("node-key", || Ok([42; 32]))?;
    /// // From then on the stored value is returned; `make` is not called.
    /// let again = store.secret("node-key", || unreachable!())?;
    /// assert_eq!(first, again);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn secret(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<[u8; 32], StoreError>,
    ) -> Result<[u8; 32], StoreError> {
        self.guard(|| {
            let tx = self.inner.db.begin_write()?;
            let value = {
                let mut t = tx.open_table(SECRETS)?;
                let existing = t
                    .get(name)?
                    .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
                match existing {
                    Some(v) => v,
                    None => {
                        let v = make()?;
                        t.insert(name, v.as_slice())?;
                        v
                    }
                }
            };
            tx.commit()?;
            Ok(value)
        })
    }

    /// Every pin, sorted by root.
    ///
    /// ```
    /// # let store = swarm_engine::store::Store::memory()?;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("hello.txt");
    /// # std::fs::write(&path, b"hello swarm")?;
    /// # let added = store.add_paths(&[path], &Default::default())?;
    /// for pin in store.pins()? {
    ///     println!("{} {} ({} files, {} bytes)", pin.root, pin.name, pin.files, pin.size);
    /// }
    /// assert_eq!(store.pins()?[0].root, added.root);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pins(&self) -> Result<Vec<Pin>, StoreError> {
        self.guard(|| {
            let tx = self.inner.db.begin_read()?;
            let t = tx.open_table(PINS)?;
            let mut out = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                let root = Hash::from_bytes(k.value());
                let p = PinEntry::decode(v.value()).map_err(|_| StoreError::BadRecord(root))?;
                out.push(Pin {
                    root,
                    name: p.name,
                    size: p.size,
                    files: p.files,
                    created: p.created,
                });
            }
            Ok(out)
        })
    }

    /// How many commits have changed the pins so far: what
    /// [`Self::pins`] returns stays the same while this does.
    pub(crate) fn pins_version(&self) -> u64 {
        *self.inner.pins_changed.borrow()
    }

    /// A receiver that sees each change of [`Self::pins_version`].
    pub(crate) fn watch_pins(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.pins_changed.subscribe()
    }

    /// Note a committed change to the pins table.
    pub(super) fn pins_changed(&self) {
        self.inner
            .pins_changed
            .send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Remove the pin on `root`. Returns whether there was one. The content
    /// stays until [`Self::gc`].
    ///
    /// ```
    /// # let store = swarm_engine::store::Store::memory()?;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("hello.txt");
    /// # std::fs::write(&path, b"hello swarm")?;
    /// # let added = store.add_paths(&[path], &Default::default())?;
    /// assert!(store.unpin(&added.root)?);
    /// assert!(!store.unpin(&added.root)?); // no longer pinned
    /// // The content stays until gc.
    /// assert!(store.manifest(&added.root).is_ok());
    /// store.gc()?;
    /// assert!(store.manifest(&added.root).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unpin(&self, root: &Hash) -> Result<bool, ReadError> {
        self.guard(|| {
            let tx = self.inner.db.begin_write()?;
            {
                let mut pins = tx.open_table(PINS).map_err(StoreError::from)?;
                if pins
                    .remove(root.as_bytes())
                    .map_err(StoreError::from)?
                    .is_none()
                {
                    return Ok(false);
                }
            }
            // The manifest is alive: the pin being removed referenced it.
            let manifest = self.manifest(root)?;
            let mut refs = tx.open_table(REFS).map_err(StoreError::from)?;
            for h in std::iter::once(*root).chain(manifest.blobs()) {
                let n = refs
                    .get(h.as_bytes())
                    .map_err(StoreError::from)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                if n <= 1 {
                    refs.remove(h.as_bytes()).map_err(StoreError::from)?;
                } else {
                    refs.insert(h.as_bytes(), n - 1).map_err(StoreError::from)?;
                }
            }
            drop(refs);
            tx.commit().map_err(StoreError::from)?;
            self.pins_changed();
            Ok(true)
        })
    }

    /// Delete every blob that no pin reaches, and any leftover files.
    ///
    /// ```
    /// # let store = swarm_engine::store::Store::memory()?;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("hello.txt");
    /// # std::fs::write(&path, b"hello swarm")?;
    /// # let added = store.add_paths(&[path], &Default::default())?;
    /// let loose = store.put_blob(b"referenced by no pin")?;
    /// let stats = store.gc()?;
    /// assert_eq!(stats.blobs, 1);
    /// assert_eq!(store.blob_info(&loose)?, None);
    /// assert!(store.manifest(&added.root).is_ok()); // pinned content stays
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gc(&self) -> Result<GcStats, StoreError> {
        self.gc_with(&GcOptions::default())
    }

    /// [`Self::gc`], keeping partial blobs as `opts` says.
    ///
    /// ```
    /// use swarm_engine::store::{GcOptions, Store};
    ///
    /// let store = Store::memory()?;
    /// // Collect interrupted downloads too, however recent.
    /// let stats = store.gc_with(&GcOptions { keep_partial_for: None })?;
    /// assert_eq!(stats.kept_partials, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gc_with(&self, opts: &GcOptions) -> Result<GcStats, StoreError> {
        let now = std::time::SystemTime::now();
        self.guard(|| {
            let _excl = self
                .inner
                .gc_lock
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let mut stats = GcStats::default();
            let mut files = Vec::new();
            // Blobs being downloaded have no pin yet: they are not garbage.
            // A download that starts after this waits for the gc lock.
            let writing = self.being_written();
            // Patches a pinned release lists are kept while stored.
            let patches = self.pinned_patches()?;
            let tx = self.inner.db.begin_write()?;
            {
                let mut blobs = tx.open_table(BLOBS)?;
                let mut inline = tx.open_table(INLINE)?;
                let refs = tx.open_table(REFS)?;
                let mut dead = Vec::new();
                for item in blobs.iter()? {
                    let (k, v) = item?;
                    let hash = Hash::from_bytes(k.value());
                    if refs.get(hash.as_bytes())?.is_none()
                        && !writing.contains(&hash)
                        && !patches.contains(&hash)
                    {
                        let entry = BlobEntry::decode(v.value())
                            .map_err(|_| StoreError::BadRecord(hash))?;
                        if let (
                            BlobEntry::File {
                                present: Some(_), ..
                            },
                            Some(age),
                        ) = (&entry, opts.keep_partial_for)
                            && self.recent(&hash, now, age)?
                        {
                            stats.kept_partials += 1;
                            stats.kept_partial_bytes += self.blob_disk_bytes(&hash)?;
                            continue;
                        }
                        dead.push((hash, entry));
                    }
                }
                for (hash, entry) in dead {
                    blobs.remove(hash.as_bytes())?;
                    stats.blobs += 1;
                    match entry {
                        BlobEntry::Inline { size } => {
                            inline.remove(hash.as_bytes())?;
                            stats.bytes += size;
                        }
                        BlobEntry::File { .. } => files.push(hash),
                    }
                }
            }
            tx.commit()?;
            // The entries are gone for good; now the files can go too. A crash
            // here leaves orphans, which the sweep below finds next time.
            let live = self.file_blobs()?;
            for (name, len) in self.backend().list()? {
                let orphan = match name {
                    FileName::Blob(h, _) => !live.contains(&h) && !writing.contains(&h),
                    FileName::Temp(..) => true,
                };
                if orphan {
                    if let FileName::Blob(h, _) = name {
                        self.verified_forget(&h);
                    }
                    let on_disk = self.backend().disk_bytes(name)?.unwrap_or(len);
                    self.backend().remove(name)?;
                    stats.bytes += on_disk;
                }
            }
            self.backend().sync_dir()?;
            debug_assert!(files.iter().all(|h| !live.contains(h)));
            Ok(stats)
        })
    }

    /// Which of `hashes` no pin references.
    fn unreferenced(
        &self,
        hashes: impl IntoIterator<Item = Hash>,
    ) -> Result<BTreeSet<Hash>, StoreError> {
        let tx = self.inner.db.begin_read()?;
        let refs = tx.open_table(REFS)?;
        let mut out = BTreeSet::new();
        for h in hashes {
            if refs.get(h.as_bytes())?.is_none() {
                out.insert(h);
            }
        }
        Ok(out)
    }

    /// Delete these blobs' records, then their files. Callers make sure no
    /// pin references them.
    fn drop_blobs(&self, hashes: &BTreeSet<Hash>) -> Result<(), StoreError> {
        let mut files = Vec::new();
        let tx = self.inner.db.begin_write()?;
        {
            let mut blobs = tx.open_table(BLOBS)?;
            let mut inline = tx.open_table(INLINE)?;
            for h in hashes {
                let removed = blobs.remove(h.as_bytes())?;
                if let Some(Ok(BlobEntry::File { .. })) =
                    removed.map(|v| BlobEntry::decode(v.value()))
                {
                    files.push(*h);
                }
                inline.remove(h.as_bytes())?;
            }
        }
        tx.commit()?;
        for h in files {
            self.verified_forget(&h);
            self.backend().remove(FileName::Blob(h, FileKind::Data))?;
            self.backend()
                .remove(FileName::Blob(h, FileKind::Outboard))?;
        }
        Ok(())
    }

    /// Whether blob `hash`'s data was written within `age` of `now` (or
    /// when, is not known: kept, to be safe).
    fn recent(
        &self,
        hash: &Hash,
        now: std::time::SystemTime,
        age: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let modified = match self
            .backend()
            .modified(FileName::Blob(*hash, FileKind::Data))
        {
            Ok(m) => m,
            // No data file at all: nothing worth keeping.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        Ok(modified.is_none_or(|m| now.duration_since(m).unwrap_or_default() < age))
    }

    /// Bytes blob `hash`'s files take on disk (their lengths where the
    /// backend does not know).
    fn blob_disk_bytes(&self, hash: &Hash) -> Result<u64, StoreError> {
        let mut total = 0;
        for kind in [FileKind::Data, FileKind::Outboard] {
            let name = FileName::Blob(*hash, kind);
            total += match self.backend().disk_bytes(name) {
                Ok(Some(n)) => n,
                Ok(None) => self
                    .backend()
                    .open(name)
                    .and_then(|f| f.size())
                    .unwrap_or(0),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e.into()),
            };
        }
        Ok(total)
    }

    /// Every blob stored incompletely: being received, or left by a
    /// download that stopped. Largest first.
    ///
    /// ```
    /// # let store = swarm_engine::store::Store::memory()?;
    /// let hash = swarm_engine::Hash::of(&vec![7u8; 100_000]);
    /// let partial = store.partial(hash, 100_000)?; // nothing received yet
    /// let listed = store.partials()?;
    /// assert_eq!((listed[0].hash, listed[0].present, listed[0].writing), (hash, 0, true));
    /// drop(partial);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn partials(&self) -> Result<Vec<PartialInfo>, StoreError> {
        self.guard(|| {
            let writing = self.being_written();
            let tx = self.inner.db.begin_read()?;
            let blobs = tx.open_table(BLOBS)?;
            let refs = tx.open_table(REFS)?;
            let mut out = Vec::new();
            for item in blobs.iter()? {
                let (k, v) = item?;
                let hash = Hash::from_bytes(k.value());
                let Ok(BlobEntry::File {
                    size,
                    present: Some(groups),
                }) = BlobEntry::decode(v.value())
                else {
                    continue;
                };
                let groups = with_live(groups, self.live(&hash).as_ref());
                let modified = self
                    .backend()
                    .modified(FileName::Blob(hash, FileKind::Data))
                    .ok()
                    .flatten();
                out.push(PartialInfo {
                    hash,
                    size,
                    present: (groups.count() * crate::content::GROUP_SIZE).min(size),
                    disk_bytes: Some(self.blob_disk_bytes(&hash)?),
                    modified,
                    writing: writing.contains(&hash),
                    referenced: refs.get(hash.as_bytes())?.is_some(),
                });
            }
            out.sort_by(|a, b| b.size.cmp(&a.size).then(a.hash.cmp(&b.hash)));
            Ok(out)
        })
    }

    fn file_blobs(&self) -> Result<BTreeSet<Hash>, StoreError> {
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(BLOBS)?;
        let mut out = BTreeSet::new();
        for item in t.iter()? {
            let (k, v) = item?;
            let hash = Hash::from_bytes(k.value());
            if let Ok(BlobEntry::File { .. }) = BlobEntry::decode(v.value()) {
                out.insert(hash);
            }
        }
        Ok(out)
    }

    /// Re-verify every stored blob against its hash, every pin against its
    /// manifest, and the reference counts against the pins.
    ///
    /// ```
    /// # let store = swarm_engine::store::Store::memory()?;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("hello.txt");
    /// # std::fs::write(&path, b"hello swarm")?;
    /// # let added = store.add_paths(&[path], &Default::default())?;
    /// let mut checked = 0;
    /// let report = store.check(|bytes| checked += bytes)?;
    /// assert!(report.problems.is_empty(), "{:?}", report.problems);
    /// assert_eq!(checked, 11 + store.read_blob(&added.root, 1024)?.map_or(0, |m| m.len() as u64));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(&self, mut progress: impl FnMut(u64)) -> Result<CheckReport, StoreError> {
        self.guard(|| {
            let mut report = CheckReport::default();
            let entries: Vec<(Hash, Result<BlobEntry, ()>)> = {
                let tx = self.inner.db.begin_read()?;
                let t = tx.open_table(BLOBS)?;
                let mut v = Vec::with_capacity(t.len()? as usize);
                for item in t.iter()? {
                    let (k, val) = item?;
                    v.push((
                        Hash::from_bytes(k.value()),
                        BlobEntry::decode(val.value()).map_err(|_| ()),
                    ));
                }
                v
            };
            for (hash, entry) in entries {
                let Ok(entry) = entry else {
                    report.problems.push(Problem {
                        hash,
                        what: "blob record does not decode".into(),
                    });
                    continue;
                };
                report.blobs += 1;
                if let Err(what) = self.verify_blob(&hash, &entry, &mut report.bytes) {
                    report.problems.push(Problem { hash, what });
                }
                progress(entry.size());
            }
            self.check_refs(&mut report)?;
            Ok(report)
        })
    }

    fn verify_blob(&self, hash: &Hash, entry: &BlobEntry, bytes: &mut u64) -> Result<(), String> {
        match entry {
            BlobEntry::Inline { size } => {
                let tx = self.inner.db.begin_read().map_err(|e| e.to_string())?;
                let t = tx.open_table(INLINE).map_err(|e| e.to_string())?;
                let v = t.get(hash.as_bytes()).map_err(|e| e.to_string())?;
                let data = v.ok_or("inline data is missing")?;
                *bytes += *size;
                if data.value().len() as u64 != *size || Hash::of(data.value()) != *hash {
                    return Err("stored bytes do not match the hash".into());
                }
                Ok(())
            }
            BlobEntry::File { size, present } => {
                if present.as_ref().is_some_and(|p| !p.is_valid()) {
                    return Err("record of present groups is malformed".into());
                }
                let open = |k| {
                    self.backend()
                        .open(FileName::Blob(*hash, k))
                        .map_err(|e| format!("{k:?} file cannot be opened: {e}"))
                };
                let (data, ob) = (open(FileKind::Data)?, open(FileKind::Outboard)?);
                let ranges = match present {
                    None => content::all(),
                    Some(p) => p.to_chunk_ranges(),
                };
                *bytes += present
                    .as_ref()
                    .map_or(*size, |p| (p.count() * GROUP_SIZE).min(*size));
                let outboard = content::outboard(*hash, *size, FileAt(&*ob));
                content::encode_ranges(FileAt(&*data), outboard, &ranges, io::sink()).map_err(|e| {
                    match e {
                        content::EncodeError::Corrupt { offset } => {
                            format!("stored data in the 16 KiB group at byte {offset} does not match the hash")
                        }
                        other => format!("cannot be read: {other}"),
                    }
                })
            }
        }
    }

    fn check_refs(&self, report: &mut CheckReport) -> Result<(), StoreError> {
        let mut want: BTreeMap<Hash, u64> = BTreeMap::new();
        for pin in self.pins()? {
            match self.manifest(&pin.root) {
                Ok(m) => {
                    for h in std::iter::once(pin.root).chain(m.blobs()) {
                        *want.entry(h).or_default() += 1;
                        match self.entry(&h)? {
                            Some(e) if e.is_complete() => {}
                            _ => report.problems.push(Problem {
                                hash: h,
                                what: format!("pinned by {} but not stored complete", pin.root),
                            }),
                        }
                    }
                }
                Err(e) => report.problems.push(Problem {
                    hash: pin.root,
                    what: format!("pinned, but its manifest is unusable: {e}"),
                }),
            }
        }
        let tx = self.inner.db.begin_read()?;
        let t = tx.open_table(REFS)?;
        let mut have = BTreeMap::new();
        for item in t.iter()? {
            let (k, v) = item?;
            have.insert(Hash::from_bytes(k.value()), v.value());
        }
        for (h, n) in &want {
            if have.get(h) != Some(n) {
                report.problems.push(Problem {
                    hash: *h,
                    what: format!("reference count {:?}, expected {n}", have.get(h)),
                });
            }
        }
        for (h, n) in &have {
            if !want.contains_key(h) {
                report.problems.push(Problem {
                    hash: *h,
                    what: format!("reference count {n}, but no pin reaches it"),
                });
            }
        }
        Ok(())
    }

    /// Write the Bao encoding of `ranges` of `hash` to `out`, checking every
    /// group against the outboard as it is read.
    ///
    /// ```
    /// use swarm_engine::content::{BaoContentItem, decode_ranges, group_ranges};
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let data = vec![3u8; 100_000];
    /// let hash = store.put_blob(&data)?;
    /// // The second 16 KiB group, with the hashes that prove it.
    /// let ranges = group_ranges(1, 2);
    /// let mut encoded = Vec::new();
    /// store.encode_ranges(&hash, &ranges, &mut encoded)?;
    /// let leaves = decode_ranges(hash, 100_000, &ranges, &encoded[..])
    ///     .filter(|item| matches!(item, Ok(BaoContentItem::Leaf(_))))
    ///     .count();
    /// assert_eq!(leaves, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode_ranges(
        &self,
        hash: &Hash,
        ranges: &ChunkRanges,
        out: impl io::Write,
    ) -> Result<(), ReadError> {
        self.encode_ranges_with(hash, ranges, out, true)
    }

    /// [`Self::encode_ranges`], re-hashing stored data only if `verify`.
    /// Partial blobs refuse ranges they do not hold either way.
    ///
    /// ```
    /// use swarm_engine::content::all;
    /// use swarm_engine::store::Store;
    ///
    /// let store = Store::memory()?;
    /// let hash = store.put_blob(&[3u8; 100_000])?;
    /// let (mut checked, mut fast) = (Vec::new(), Vec::new());
    /// store.encode_ranges_with(&hash, &all(), &mut checked, true)?;
    /// store.encode_ranges_with(&hash, &all(), &mut fast, false)?;
    /// assert_eq!(checked, fast); // the same bytes while the store is sound
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode_ranges_with(
        &self,
        hash: &Hash,
        ranges: &ChunkRanges,
        out: impl io::Write,
        verify: bool,
    ) -> Result<(), ReadError> {
        self.encode_ranges_after(hash, ranges, out, verify, |_, _| Ok(()))
    }

    /// [`Self::encode_ranges_with`], calling `header` with the blob's size
    /// once it is known to hold the ranges and before any encoded byte: a
    /// server answers a request with one lookup this way.
    ///
    /// ```
    /// use std::io::Write;
    /// use swarm_engine::content::all;
    /// use swarm_engine::store::Store;
    /// use swarm_engine::wire::{Found, Message};
    ///
    /// let store = Store::memory()?;
    /// let hash = store.put_blob(&[3u8; 100_000])?;
    /// // A response: the `Found` header, then the Bao encoding.
    /// let mut response = Vec::new();
    /// store.encode_ranges_after(&hash, &all(), &mut response, false, |size, out| {
    ///     out.write_all(&Message::Found(Found { size }).encode())
    /// })?;
    /// let (header, _) = Message::decode_frame(&response)?.expect("a whole header");
    /// assert_eq!(header, Message::Found(Found { size: 100_000 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode_ranges_after<W: io::Write>(
        &self,
        hash: &Hash,
        ranges: &ChunkRanges,
        mut out: W,
        verify: bool,
        header: impl FnOnce(u64, &mut W) -> io::Result<()>,
    ) -> Result<(), ReadError> {
        self.guard(|| {
            let live = self.live(hash);
            let entry = self.entry(hash)?.ok_or(ReadError::Unknown(*hash))?;
            match entry {
                BlobEntry::Inline { size } => {
                    let data = self
                        .read_blob(hash, GROUP_SIZE)?
                        .ok_or(ReadError::Unknown(*hash))?;
                    header(size, &mut out).map_err(StoreError::from)?;
                    let ob = content::outboard(*hash, size, &[][..]);
                    content::encode_ranges(&data[..], ob, ranges, out)
                        .map_err(|e| encode_error(hash, e))
                }
                BlobEntry::File { size, present } => {
                    let want = content::truncate_ranges(ranges, size);
                    if let Some(p) = present.map(|p| with_live(p, live.as_ref()))
                        && !want.is_subset(&p.to_chunk_ranges())
                    {
                        return Err(ReadError::Incomplete(*hash));
                    }
                    let open = |k| self.backend().open(FileName::Blob(*hash, k));
                    let data = open(FileKind::Data).map_err(StoreError::from)?;
                    let ob = open(FileKind::Outboard).map_err(StoreError::from)?;
                    header(size, &mut out).map_err(StoreError::from)?;
                    let outboard = content::outboard(*hash, size, FileAt(&*ob));
                    // Groups this process verified are sent as stored; any
                    // other is verified as it is read, once.
                    let groups = GroupSet::of_chunks(&want);
                    let checked = verify || !self.verified_covers(hash, &groups);
                    let r = if checked {
                        content::encode_ranges(FileAt(&*data), outboard, ranges, out)
                    } else {
                        let sized = SizedFileAt(&*data, size);
                        content::encode_ranges_unverified(sized, outboard, ranges, out)
                    };
                    match r {
                        Ok(()) => {
                            for &(a, b) in groups.ranges() {
                                self.verified_insert(*hash, a, b);
                            }
                            Ok(())
                        }
                        Err(content::EncodeError::Corrupt { offset }) => {
                            tracing::warn!(%hash, offset, "stored data does not match its hash; no longer serving the damaged groups");
                            // Take every damaged group out of the record, so it
                            // is neither served nor counted as held again.
                            self.reverify(hash, false)?;
                            Err(ReadError::Corrupt(*hash))
                        }
                        Err(e) => Err(encode_error(hash, e)),
                    }
                }
            }
        })
    }
}

enum InitError {
    Version(u64),
    Store(StoreError),
}

impl From<StoreError> for InitError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Reading a blob or a manifest failed.
///
/// ```
/// use swarm_engine::store::{ReadError, Store};
///
/// let store = Store::memory()?;
/// let not_a_manifest = store.put_blob(b"just bytes")?;
/// assert!(matches!(
///     store.manifest(&not_a_manifest),
///     Err(ReadError::NotManifest(..))
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The store has no such blob.
    #[error("{0} is not in this store")]
    Unknown(Hash),
    /// Only part of it is stored.
    #[error("{0} is only partly stored; fetch it completely first")]
    Incomplete(Hash),
    /// The stored bytes no longer match the hash.
    #[error("stored data of {0} is corrupt; check the store, then fetch the blob again")]
    Corrupt(Hash),
    /// Larger than the caller allowed.
    #[error("{hash} is {size} bytes, too large to read into memory")]
    TooLarge {
        /// The blob.
        hash: Hash,
        /// Its size.
        size: u64,
    },
    /// The blob is not a manifest.
    #[error("{0} is not a manifest: {1}")]
    NotManifest(Hash, ManifestError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn encode_error(hash: &Hash, e: content::EncodeError) -> ReadError {
    match e {
        content::EncodeError::Corrupt { .. } => ReadError::Corrupt(*hash),
        content::EncodeError::Io(e) => ReadError::Store(e.into()),
    }
}

/// `present` plus the live groups read before it.
fn with_live(mut present: GroupSet, live: Option<&GroupSet>) -> GroupSet {
    if let Some(l) = live {
        present.union(l);
    }
    present
}

/// Add a pin and its references inside a write transaction.
fn pin_in(
    tx: &redb::WriteTransaction,
    root: &Hash,
    manifest: &Manifest,
    name: &str,
) -> Result<(), StoreError> {
    let mut pins = tx.open_table(PINS)?;
    if pins.get(root.as_bytes())?.is_some() {
        return Ok(());
    }
    let entry = PinEntry {
        name: name.to_owned(),
        size: manifest.total_size(),
        files: manifest.entries().len() as u64,
        created: now_secs(),
    };
    pins.insert(root.as_bytes(), entry.encode().as_slice())?;
    let mut refs = tx.open_table(REFS)?;
    for h in std::iter::once(*root).chain(manifest.blobs()) {
        let n = refs.get(h.as_bytes())?.map(|v| v.value()).unwrap_or(0);
        refs.insert(h.as_bytes(), n + 1)?;
    }
    Ok(())
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let msg = guard::panic_message(&**panic);
    format!(
        "the database failed while opening it ({msg}); restore it from a backup or move it away to start empty"
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_exact_at(f: &dyn BlobFile, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = f.read_at(offset, buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        offset += n as u64;
        buf = &mut buf[n..];
    }
    Ok(())
}

/// A [`FileAt`] that reports the blob's size, as unverified encoding needs.
struct SizedFileAt<'a>(&'a dyn BlobFile, u64);

impl content::ReadAt for SizedFileAt<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(pos, buf)
    }
}

impl content::Size for SizedFileAt<'_> {
    fn size(&self) -> io::Result<Option<u64>> {
        Ok(Some(self.1))
    }
}

/// Adapts a [`BlobFile`] to bao-tree's positioned I/O traits.
#[derive(Debug)]
pub(crate) struct FileAt<'a>(pub(crate) &'a dyn BlobFile);

impl content::ReadAt for FileAt<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(pos, buf)
    }
}

impl content::WriteAt for FileAt<'_> {
    fn write_at(&mut self, pos: u64, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all_at(pos, buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod delta_tests;
#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod sweep_tests;
#[cfg(test)]
mod tests;
