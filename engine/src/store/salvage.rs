//! Rebuilding a store's database from its blob files, when the database is
//! damaged beyond use.
//!
//! The blob files are named by their hash and carry their own proof, so they
//! are the part of a store that can be trusted after damage: every data file
//! is re-hashed against its name and gets a fresh outboard, and a file that
//! no longer matches keeps the 16 KiB groups its old outboard still proves.
//! The database is moved aside, never deleted, and read as far as it goes,
//! each table under `catch_unwind` (redb panics on some damaged pages) and
//! every record treated as untrusted input: inline blobs are kept only when
//! they hash to their key, release high-water marks only when their signed
//! token verifies. When redb cannot open the file at all, its leaf pages are
//! scanned directly for what proves itself (see `old.rs`).
//!
//! Pins are then made again through the normal path (`pin_in`), so the
//! reference counts are recomputed and [`Store::check`] passes afterwards.

mod old;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use redb::StorageBackend;

use self::old::{Old, read_old};
use super::backend::{BlobFile, FileKind, FileName};
use super::import::{SeqReader, SeqWriter};
use super::tables::{BLOBS, BlobEntry, INLINE, PinEntry, STORE_VERSION};
use super::{FileAt, GroupSet, OpenError, Store, StoreConfig, StoreError, now_secs, pin_in};
use crate::content::{self, GROUP_SIZE, Hash, Manifest, manifest};
use crate::release::{Policy, PublicKey, SignedRelease, Want};

/// Records written per transaction while rebuilding.
const BATCH: usize = 1024;

/// Where a restored pin's name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinSource {
    /// The old database's pins table.
    OldPin,
    /// A pin record found by scanning the old file's pages (the pins table
    /// could not be read whole).
    OldPage,
    /// No name survived: named after the manifest's first top-level path.
    FirstPath,
}

/// A pin made again by [`Store::salvage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredPin {
    /// The root.
    pub root: Hash,
    /// Its name.
    pub name: String,
    /// Where the name came from.
    pub source: PinSource,
}

/// A pin, or a manifest, that [`Store::salvage`] could not pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostPin {
    /// The root.
    pub root: Hash,
    /// Its old name, when known.
    pub name: Option<String>,
    /// Why, in words.
    pub why: String,
}

/// A blob recovered in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRecovered {
    /// The blob.
    pub hash: Hash,
    /// Its size.
    pub size: u64,
    /// The 16 KiB groups that still verify.
    pub groups: GroupSet,
}

/// A blob file that could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostBlob {
    /// The hash in the file's name.
    pub hash: Hash,
    /// Why, in words.
    pub why: String,
}

/// What could be read from the old database.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OldDatabase {
    /// Why redb could not open it, when it could not; its pages were then
    /// scanned directly.
    pub open_error: Option<String>,
    /// Inline blobs read that verified against their hash.
    pub inline: u64,
    /// Pins read, when the pins table could be read whole.
    pub pins: Option<u64>,
    /// Names of the secrets restored (the node key keeps the node's id).
    pub secrets: Vec<String>,
    /// Trusted publisher keys restored, when the table could be read whole.
    pub trusted: Option<u64>,
    /// When it could not: trust entries found on its pages, *not* restored
    /// (an old page can hold a key since distrusted). Trust them again if
    /// they are still wanted.
    pub trust_on_pages: Vec<(PublicKey, String)>,
    /// Release high-water marks restored (each one's signature verified).
    pub releases_seen: u64,
    /// What could not be read, in words.
    pub problems: Vec<String>,
}

/// What [`Store::salvage`] did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SalvageReport {
    /// Where the old database was moved; `None` when there was none.
    pub moved_to: Option<PathBuf>,
    /// What was read from it.
    pub old: OldDatabase,
    /// Blobs recovered complete, inline and file.
    pub complete: Vec<Hash>,
    /// Blobs recovered in part.
    pub partial: Vec<PartialRecovered>,
    /// Blob files that could not be recovered.
    pub lost: Vec<LostBlob>,
    /// Pins made again.
    pub pins: Vec<RestoredPin>,
    /// Pins, or manifests found, that were not pinned.
    pub pins_lost: Vec<LostPin>,
    /// Bytes of blob files re-hashed.
    pub bytes: u64,
    /// Recovered blobs that no restored pin reaches: kept for now, but the
    /// next `gc` deletes them unless a fetch or an add pins their root.
    pub unpinned: Vec<Hash>,
}

/// Salvage could not run, or could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SalvageError {
    /// Another process has the store open.
    #[error("the store at {0} is in use by another swarm process; stop it before repairing")]
    Locked(String),
    /// The directory holds no store.
    #[error("{0} is not a store: it has no swarm.redb and no blobs directory")]
    NotAStore(String),
    /// The old database says a newer version wrote it.
    #[error(
        "the store at {path} has layout version {found}; this build repairs version {STORE_VERSION} only"
    )]
    Version {
        /// Where the store is.
        path: String,
        /// The version found.
        found: u64,
    },
    /// Moving or reading the old database failed.
    #[error("cannot repair the store at {path}")]
    Io {
        /// What was being read or moved.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The new database could not be created.
    #[error("cannot create the new database at {path}; the old one is kept at {moved}")]
    Open {
        /// The store.
        path: String,
        /// Where the old database is now.
        moved: String,
        /// Why.
        source: OpenError,
    },
    /// Writing the new database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Rebuild the database of the store in `dir` from its blob files and
    /// whatever of the old database can still be read. For a store whose
    /// database is damaged: it works when the database does not open at all.
    ///
    /// The old database is moved to `swarm.redb.damaged-<unix seconds>`,
    /// never deleted. `progress` is called with the bytes re-hashed. Open
    /// the store again afterwards; [`Store::check`] then passes.
    ///
    /// ```
    /// use swarm_engine::store::Store;
    ///
    /// let dir = tempfile::tempdir()?;
    /// # let src = tempfile::tempdir()?;
    /// # std::fs::write(src.path().join("big.bin"), vec![7u8; 100_000])?;
    /// let root = Store::open(dir.path())?.add_paths(&[src.path().join("big.bin")], &Default::default())?.root;
    /// // The database is lost; the blob files are not.
    /// std::fs::write(dir.path().join("swarm.redb"), b"not a database")?;
    /// assert!(Store::open(dir.path()).is_err());
    /// let report = Store::salvage(dir.path(), |_| {})?;
    /// assert!(report.moved_to.is_some());
    /// assert_eq!(report.lost, []);
    /// let store = Store::open(dir.path())?;
    /// assert!(store.check(|_| {})?.problems.is_empty());
    /// # let _ = root;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn salvage(
        dir: impl AsRef<Path>,
        mut progress: impl FnMut(u64),
    ) -> Result<SalvageReport, SalvageError> {
        let dir = dir.as_ref();
        let shown = dir.display().to_string();
        let db_path = dir.join("swarm.redb");
        if !db_path.exists() && !dir.join("blobs").is_dir() {
            return Err(SalvageError::NotAStore(shown));
        }
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| SalvageError::Io { path, source }
        };
        // Held until the new database is open: no other process opens the
        // old one while it is read and moved.
        let _lock = lock(&db_path, &shown)?;
        let mut report = SalvageReport::default();
        let old = if db_path.exists() {
            let old = read_old(dir, &db_path).map_err(io(&db_path))?;
            if let Some(found) = old.version.filter(|v| *v != STORE_VERSION) {
                return Err(SalvageError::Version { path: shown, found });
            }
            let moved = move_aside(dir, &db_path).map_err(io(&db_path))?;
            report.moved_to = Some(moved);
            old
        } else {
            Old {
                open_error: Some("there was no database".into()),
                ..Old::default()
            }
        };
        let store =
            Store::open_with(dir, StoreConfig::default()).map_err(|source| SalvageError::Open {
                path: shown.clone(),
                moved: report
                    .moved_to
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string()),
                source,
            })?;
        store.rebuild(old, &mut report, &mut progress)?;
        let recovered = report
            .complete
            .iter()
            .copied()
            .chain(report.partial.iter().map(|p| p.hash));
        report.unpinned = store
            .guard(|| store.unreferenced(recovered))?
            .into_iter()
            .collect();
        Ok(report)
    }

    fn rebuild(
        &self,
        old: Old,
        report: &mut SalvageReport,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), StoreError> {
        report.old = OldDatabase {
            open_error: old.open_error.clone(),
            inline: old.inline.len() as u64,
            pins: old.pins.as_ref().map(|p| p.len() as u64),
            problems: old.problems.clone(),
            trust_on_pages: old.trust_on_pages.clone().into_iter().collect(),
            ..OldDatabase::default()
        };
        let mut complete: BTreeSet<Hash> = BTreeSet::new();
        let mut small: BTreeMap<Hash, Vec<u8>> = old.inline;
        let mut records: Vec<(Hash, BlobEntry)> = Vec::new();
        let mut superseded: Vec<Hash> = Vec::new();
        for (hash, files) in self.blob_files()? {
            let Some(size) = files.data else {
                report.lost.push(LostBlob {
                    hash,
                    why: "only its outboard file is left".into(),
                });
                continue;
            };
            match self.recover_file(hash, size, files.outboard, progress) {
                Recovered::Complete if size <= GROUP_SIZE => {
                    // Small blobs live inline; a stray small file moves in.
                    if let Ok(Some(bytes)) = self.read_file(hash, size) {
                        small.insert(hash, bytes);
                        superseded.push(hash);
                    }
                }
                Recovered::Complete => {
                    complete.insert(hash);
                    records.push((
                        hash,
                        BlobEntry::File {
                            size,
                            present: None,
                        },
                    ));
                }
                Recovered::Partial(groups) => {
                    records.push((
                        hash,
                        BlobEntry::File {
                            size,
                            present: Some(groups.clone()),
                        },
                    ));
                    report.partial.push(PartialRecovered { hash, size, groups });
                }
                Recovered::Lost(why) => report.lost.push(LostBlob { hash, why }),
            }
            report.bytes += size;
            if records.len() >= BATCH {
                self.commit_records(&mut records)?;
            }
        }
        self.commit_records(&mut records)?;
        for chunk in small.iter().collect::<Vec<_>>().chunks(BATCH) {
            self.commit_inline(chunk)?;
        }
        for hash in superseded {
            // Best effort: a leftover file is an orphan that gc removes.
            let _ = self.backend().remove(FileName::Blob(hash, FileKind::Data));
            let _ = self
                .backend()
                .remove(FileName::Blob(hash, FileKind::Outboard));
        }
        complete.extend(small.keys().copied());
        report.complete = complete.iter().copied().collect();

        let manifests = self.recovered_manifests(&complete, &small);
        self.restore_pins(&manifests, &complete, old.pins, &old.page_pins, report)?;
        for (name, value) in old.secrets {
            self.secret(&name, || Ok(value))?;
            report.old.secrets.push(name);
        }
        if let Some(trusted) = old.trusted {
            for (key, label) in &trusted {
                self.trust(key, label)?;
            }
            report.old.trusted = Some(trusted.len() as u64);
        }
        for chain in old.roots.iter().flatten() {
            self.keep_chain(chain)?;
        }
        for (f, label) in old.fingerprints.iter().flatten() {
            self.trust_fingerprint(f, label)?;
        }
        report.old.releases_seen = self.restore_seen(old.seen)?;
        Ok(())
    }

    /// Every blob file, by hash.
    fn blob_files(&self) -> Result<BTreeMap<Hash, Files>, StoreError> {
        let mut out: BTreeMap<Hash, Files> = BTreeMap::new();
        for (name, len) in self.backend().list()? {
            if let FileName::Blob(hash, kind) = name {
                let f = out.entry(hash).or_default();
                match kind {
                    FileKind::Data => f.data = Some(len),
                    FileKind::Outboard => f.outboard = Some(len),
                }
            }
        }
        Ok(out)
    }

    /// Re-hash one data file; rebuild its outboard if it matches its name,
    /// else keep the groups its old outboard still proves.
    fn recover_file(
        &self,
        hash: Hash,
        size: u64,
        outboard_len: Option<u64>,
        progress: &mut dyn FnMut(u64),
    ) -> Recovered {
        let backend = self.backend();
        let data = match backend.open(FileName::Blob(hash, FileKind::Data)) {
            Ok(f) => f,
            Err(e) => return Recovered::Lost(format!("its data file cannot be opened: {e}")),
        };
        if size <= GROUP_SIZE {
            progress(size);
            return match self.read_file(hash, size) {
                Ok(Some(_)) => Recovered::Complete,
                Ok(None) => Recovered::Lost("its data does not match its hash".into()),
                Err(e) => Recovered::Lost(format!("its data file cannot be read: {e}")),
            };
        }
        match self.rebuild_outboard(hash, size, &*data) {
            Ok(true) => {
                progress(size);
                return Recovered::Complete;
            }
            Ok(false) => {}
            Err(e) => return Recovered::Lost(format!("its files cannot be read or written: {e}")),
        }
        progress(size);
        if outboard_len != Some(content::outboard_size(size)) {
            return Recovered::Lost("its data does not match its hash, and it has no usable outboard to find the good parts".into());
        }
        let ob = match backend.open(FileName::Blob(hash, FileKind::Outboard)) {
            Ok(f) => f,
            Err(e) => return Recovered::Lost(format!("its outboard cannot be opened: {e}")),
        };
        let groups = verified_groups(hash, size, &*data, &*ob);
        if groups.is_empty() {
            return Recovered::Lost("no 16 KiB group of it verifies".into());
        }
        // The record about to claim these groups must follow durable bytes.
        if let Err(e) = data.sync().and_then(|()| ob.sync()) {
            return Recovered::Lost(format!("its files cannot be synced: {e}"));
        }
        Recovered::Partial(groups)
    }

    /// Hash the data file while writing a fresh outboard beside it; if the
    /// hash matches the name, the new outboard replaces the old one.
    fn rebuild_outboard(&self, hash: Hash, size: u64, data: &dyn BlobFile) -> io::Result<bool> {
        let backend = self.backend();
        let temp = FileName::Temp(self.temp_id(), FileKind::Outboard);
        let ob = backend.create(temp)?;
        let reader = io::BufReader::with_capacity(1 << 20, SeqReader { file: data, pos: 0 });
        let mut writer = io::BufWriter::with_capacity(1 << 20, SeqWriter { file: &*ob, pos: 0 });
        let root = content::compute_outboard(reader.take(size), size, &mut writer);
        let flushed = io::Write::flush(&mut writer);
        drop(writer);
        let root = match root.and_then(|r| flushed.map(|()| r)) {
            Ok(r) => r,
            Err(e) => {
                drop(ob);
                let _ = backend.remove(temp);
                return Err(e);
            }
        };
        if root != hash {
            drop(ob);
            let _ = backend.remove(temp);
            return Ok(false);
        }
        ob.sync()?;
        drop(ob);
        backend.rename(temp, FileName::Blob(hash, FileKind::Outboard))?;
        data.sync()?;
        Ok(true)
    }

    /// The bytes of a small blob file, when they match the hash.
    fn read_file(&self, hash: Hash, size: u64) -> io::Result<Option<Vec<u8>>> {
        let f = self.backend().open(FileName::Blob(hash, FileKind::Data))?;
        let mut buf = vec![0u8; usize::try_from(size).map_err(io::Error::other)?];
        super::read_exact_at(&*f, 0, &mut buf)?;
        Ok((Hash::of(&buf) == hash).then_some(buf))
    }

    /// Commit blob records, after making the files they claim durable.
    fn commit_records(&self, records: &mut Vec<(Hash, BlobEntry)>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.backend().sync_dir()?;
        let tx = self.inner.db.begin_write()?;
        {
            let mut blobs = tx.open_table(BLOBS)?;
            for (hash, entry) in records.drain(..) {
                blobs.insert(hash.as_bytes(), entry.encode().as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn commit_inline(&self, blobs_in: &[(&Hash, &Vec<u8>)]) -> Result<(), StoreError> {
        let tx = self.inner.db.begin_write()?;
        {
            let mut blobs = tx.open_table(BLOBS)?;
            let mut inline = tx.open_table(INLINE)?;
            for (hash, bytes) in blobs_in {
                let e = BlobEntry::Inline {
                    size: bytes.len() as u64,
                };
                blobs.insert(hash.as_bytes(), e.encode().as_slice())?;
                inline.insert(hash.as_bytes(), bytes.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The complete blobs that decode as manifests.
    fn recovered_manifests(
        &self,
        complete: &BTreeSet<Hash>,
        small: &BTreeMap<Hash, Vec<u8>>,
    ) -> BTreeMap<Hash, Manifest> {
        let mut out = BTreeMap::new();
        for hash in complete {
            let decoded = match small.get(hash) {
                Some(bytes) => Manifest::decode(bytes).ok(),
                None if self.starts_like_manifest(hash) => self.manifest(hash).ok(),
                None => None,
            };
            if let Some(m) = decoded {
                out.insert(*hash, m);
            }
        }
        out
    }

    /// Whether a file blob is small enough and begins with the manifest
    /// magic, read before reading it whole.
    fn starts_like_manifest(&self, hash: &Hash) -> bool {
        let Ok(f) = self.backend().open(FileName::Blob(*hash, FileKind::Data)) else {
            return false;
        };
        if f.size().map_or(true, |s| s > manifest::MAX_ENCODED_SIZE) {
            return false;
        }
        let mut magic = [0u8; manifest::MAGIC.len()];
        super::read_exact_at(&*f, 0, &mut magic).is_ok() && magic == manifest::MAGIC
    }

    fn restore_pins(
        &self,
        manifests: &BTreeMap<Hash, Manifest>,
        complete: &BTreeSet<Hash>,
        old_pins: Option<Vec<(Hash, Option<String>)>>,
        page_pins: &BTreeMap<Hash, Vec<PinEntry>>,
        report: &mut SalvageReport,
    ) -> Result<(), StoreError> {
        let missing = |m: &Manifest| m.blobs().iter().filter(|h| !complete.contains(h)).count();
        let mut pin: Vec<(Hash, String, PinSource)> = Vec::new();
        match old_pins {
            Some(pins) => {
                for (root, name) in pins {
                    let Some(m) = manifests.get(&root) else {
                        let why = if report.partial.iter().any(|p| p.hash == root) {
                            "its manifest was recovered only in part"
                        } else {
                            "its manifest was not recovered"
                        };
                        report.pins_lost.push(LostPin {
                            root,
                            name,
                            why: why.into(),
                        });
                        continue;
                    };
                    match (missing(m), name) {
                        (0, Some(name)) => pin.push((root, name, PinSource::OldPin)),
                        (0, None) => pin.push((root, first_path(&root, m), PinSource::FirstPath)),
                        (_, name) => report.pins_lost.push(LostPin {
                            root,
                            name,
                            why: incomplete(complete, m),
                        }),
                    }
                }
            }
            None => {
                for (root, m) in manifests {
                    let page_name = page_pins
                        .get(root)
                        .into_iter()
                        .flatten()
                        .find(|p| p.files == m.entries().len() as u64 && p.size == m.total_size())
                        .map(|p| p.name.clone());
                    match (missing(m), page_name) {
                        (0, Some(name)) => pin.push((*root, name, PinSource::OldPage)),
                        (0, None) => pin.push((*root, first_path(root, m), PinSource::FirstPath)),
                        (_, name) => report.pins_lost.push(LostPin {
                            root: *root,
                            name,
                            why: format!("{}; not pinned", incomplete(complete, m)),
                        }),
                    }
                }
            }
        }
        let tx = self.inner.db.begin_write()?;
        for (root, name, _) in &pin {
            if let Some(m) = manifests.get(root) {
                pin_in(&tx, root, m, name)?;
            }
        }
        tx.commit()?;
        self.pins_changed();
        report.pins = pin
            .into_iter()
            .map(|(root, name, source)| RestoredPin { root, name, source })
            .collect();
        Ok(())
    }

    /// Record each verified release as seen, in sequence order, through the
    /// normal accept path (its signature is checked again there).
    fn restore_seen(&self, mut seen: Vec<SignedRelease>) -> Result<u64, StoreError> {
        seen.sort_by_key(|s| s.release().seq);
        let mut kept = BTreeSet::new();
        for signed in seen {
            let r = signed.release();
            let mut policy = Policy {
                now: 0,
                ..Policy::default()
            };
            policy.trust(r.publisher, "salvage");
            // A threshold release is recorded on its signatures and the
            // roots it carries, as its publisher's machines record it.
            let accepted = match signed.root_version() {
                None => self.accept_release(&policy, &signed, &Want::default()),
                Some(_) => match signed.carried_chain() {
                    Some(chain) => self.record_signed(&signed, Some(&chain)),
                    None => continue,
                },
            };
            match accepted {
                Ok(()) => {
                    kept.insert((r.publisher, r.name.clone(), r.channel.clone()));
                }
                Err(super::AcceptError::Store(e)) => return Err(e),
                // An older or conflicting copy of one already restored.
                Err(super::AcceptError::Policy(_)) => {}
            }
        }
        Ok(kept.len() as u64)
    }
}

#[derive(Debug, Default)]
struct Files {
    data: Option<u64>,
    outboard: Option<u64>,
}

enum Recovered {
    Complete,
    Partial(GroupSet),
    Lost(String),
}

/// Why a manifest's content is incomplete, naming the first files hit.
fn incomplete(complete: &BTreeSet<Hash>, m: &Manifest) -> String {
    let hit: Vec<&str> = m
        .entries()
        .iter()
        .filter(|e| !complete.contains(&e.hash))
        .map(|e| e.path.as_str())
        .collect();
    let mut why = format!(
        "{} of its {} files were not recovered complete ({}",
        hit.len(),
        m.entries().len(),
        hit.iter().take(3).copied().collect::<Vec<_>>().join(", ")
    );
    if hit.len() > 3 {
        why.push_str(", …");
    }
    why.push(')');
    why
}

/// A name for a manifest whose pin name was lost: its first top-level path.
fn first_path(root: &Hash, m: &Manifest) -> String {
    m.entries()
        .first()
        .and_then(|e| e.path.split('/').next())
        .filter(|s| !s.is_empty())
        .map_or_else(
            || format!("recovered-{}", &root.to_hex()[..12]),
            str::to_owned,
        )
}

/// The groups of a blob whose bytes still verify against `ob`, which is
/// itself checked against the root on the way down to each group.
fn verified_groups(hash: Hash, size: u64, data: &dyn BlobFile, ob: &dyn BlobFile) -> GroupSet {
    let mut set = GroupSet::new();
    for g in 0..content::group_count(size) {
        let outboard = content::outboard(hash, size, FileAt(ob));
        let ranges = content::group_ranges(g, g + 1);
        if content::encode_ranges(FileAt(data), outboard, &ranges, io::sink()).is_ok() {
            set.insert(g, g + 1);
        }
    }
    set
}

/// Refuse when a process has the old database open; else hold a lock on it.
fn lock(db_path: &Path, shown: &str) -> Result<Option<redb::backends::FileBackend>, SalvageError> {
    let file = match fs::OpenOptions::new().read(true).write(true).open(db_path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SalvageError::Io {
                path: db_path.display().to_string(),
                source,
            });
        }
    };
    let backend = redb::backends::FileBackend::new(file).map_err(|e| SalvageError::Io {
        path: db_path.display().to_string(),
        source: io::Error::other(e.to_string()),
    })?;
    match backend.try_lock_range(Bound::Unbounded, Bound::Unbounded) {
        Ok(true) => Ok(Some(backend)),
        Ok(false) => Err(SalvageError::Locked(shown.to_owned())),
        // No locking on this file system: nothing to respect or hold.
        Err(_) => Ok(None),
    }
}

/// Rename the old database out of the way, to a name not yet taken.
fn move_aside(dir: &Path, db_path: &Path) -> io::Result<PathBuf> {
    let secs = now_secs();
    let mut to = dir.join(format!("swarm.redb.damaged-{secs}"));
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("swarm.redb.damaged-{secs}-{n}"));
        n += 1;
    }
    fs::rename(db_path, &to)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path, files: &[(&str, Vec<u8>)]) -> Vec<PathBuf> {
        files
            .iter()
            .map(|(name, bytes)| {
                let p = dir.join(name);
                fs::write(&p, bytes).expect("write a test file");
                p
            })
            .collect()
    }

    fn big(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn an_unreadable_database_is_rebuilt_from_pages_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let paths = tree(
            src.path(),
            &[("a.bin", big(200_000, 1)), ("small.txt", b"tiny".to_vec())],
        );
        let a = store
            .add_paths(&paths[..1], &Default::default())
            .expect("add");
        let s = store
            .add_paths(&paths[1..], &Default::default())
            .expect("add");
        let key = store.secret("node-key", || Ok([9; 32])).expect("secret");
        drop(store);
        // Wreck the header: redb cannot open it, the leaf pages survive.
        let db = dir.path().join("swarm.redb");
        let mut bytes = fs::read(&db).expect("read db");
        bytes[..4096].fill(0xa5);
        fs::write(&db, &bytes).expect("write db");
        assert!(Store::open(dir.path()).is_err());

        let report = Store::salvage(dir.path(), |_| {}).expect("salvage");
        assert!(report.old.open_error.is_some(), "{report:?}");
        assert!(report.lost.is_empty(), "{report:?}");
        let moved = report.moved_to.clone().expect("moved");
        assert_eq!(fs::read(moved).expect("moved file"), bytes);
        let mut names: Vec<_> = report
            .pins
            .iter()
            .map(|p| (p.root, p.name.as_str()))
            .collect();
        names.sort();
        let mut want = vec![(a.root, "a.bin"), (s.root, "small.txt")];
        want.sort();
        assert_eq!(names, want);

        let store = Store::open(dir.path()).expect("reopen");
        assert!(store.check(|_| {}).expect("check").problems.is_empty());
        assert_eq!(
            store.secret("node-key", || Ok([0; 32])).expect("secret"),
            key
        );
        let out = tempfile::tempdir().expect("tempdir");
        store
            .export(&a.root, &out.path().join("a"), &Default::default())
            .expect("export");
        assert_eq!(
            fs::read(out.path().join("a")).expect("read"),
            big(200_000, 1)
        );
    }

    #[test]
    fn a_rotted_file_keeps_its_good_groups_and_loses_its_pin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let paths = tree(src.path(), &[("rot.bin", big(100_000, 2))]);
        let added = store.add_paths(&paths, &Default::default()).expect("add");
        drop(store);
        let hash = Hash::of(&big(100_000, 2));
        let hex = hash.to_hex();
        let data = dir
            .path()
            .join("blobs")
            .join(&hex[..2])
            .join(format!("{hex}.data"));
        let mut bytes = fs::read(&data).expect("read");
        bytes[40_000] ^= 1; // group 2
        fs::write(&data, &bytes).expect("write");

        let report = Store::salvage(dir.path(), |_| {}).expect("salvage");
        assert_eq!(report.partial.len(), 1, "{report:?}");
        assert_eq!(report.partial[0].groups.count(), 6);
        assert!(!report.partial[0].groups.contains(2));
        assert_eq!(report.old.pins, Some(1));
        assert_eq!(report.pins_lost.len(), 1);
        assert_eq!(report.pins_lost[0].root, added.root);
        // Its recovered blobs are kept, and reported as reached by no pin.
        let mut unpinned = report.unpinned.clone();
        unpinned.sort();
        let mut want = vec![hash, added.root];
        want.sort();
        assert_eq!(unpinned, want);
        let store = Store::open(dir.path()).expect("reopen");
        assert!(store.check(|_| {}).expect("check").problems.is_empty());
        let info = store.blob_info(&hash).expect("info").expect("kept");
        assert_eq!(info.partial.map(|p| p.count()), Some(6));
    }

    #[test]
    fn a_sound_store_comes_back_the_same() {
        use crate::release::{Release, SecretKey};
        let dir = tempfile::tempdir().expect("tempdir");
        let src = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let paths = tree(
            src.path(),
            &[("x.bin", big(50_000, 3)), ("y.txt", b"y".to_vec())],
        );
        let x = store
            .add_paths(&paths[..1], &Default::default())
            .expect("add");
        let y = store
            .add_paths(&paths[1..], &Default::default())
            .expect("add");
        store.pin(&y.root, "renamed").expect("pin");
        store.unpin(&y.root).expect("unpin");
        store.pin(&y.root, "renamed").expect("pin");
        let key = SecretKey::from_seed(&[3; 32]);
        store.trust(&key.public(), "label").expect("trust");
        let signed = Release {
            publisher: key.public(),
            name: "app".into(),
            channel: "stable".into(),
            version: semver::Version::new(1, 0, 0),
            seq: 7,
            root: x.root,
            size: 1,
            created: 1_800_000_000,
            expires: None,
            rollout: Default::default(),
        }
        .sign(&key)
        .expect("sign");
        let policy = store.policy(Policy::default()).expect("policy");
        store
            .accept_release(&policy, &signed, &Want::default())
            .expect("accept");
        let node_key = store.secret("node-key", || Ok([1; 32])).expect("secret");
        let pins_before = store.pins().expect("pins");
        drop(store);

        let report = Store::salvage(dir.path(), |_| {}).expect("salvage");
        assert_eq!(report.old.open_error, None);
        assert!(report.old.problems.is_empty(), "{:?}", report.old.problems);
        assert!(
            report.pins_lost.is_empty() && report.lost.is_empty(),
            "{report:?}"
        );
        assert!(report.pins.iter().all(|p| p.source == PinSource::OldPin));
        assert_eq!((report.old.trusted, report.old.releases_seen), (Some(1), 1));
        let store = Store::open(dir.path()).expect("reopen");
        let names = |p: Vec<crate::store::Pin>| -> Vec<(Hash, String)> {
            p.into_iter().map(|p| (p.root, p.name)).collect()
        };
        assert_eq!(names(store.pins().expect("pins")), names(pins_before));
        assert_eq!(
            store.secret("node-key", || Ok([0; 32])).expect("secret"),
            node_key
        );
        assert_eq!(
            store.trusted().expect("trusted"),
            vec![(key.public(), "label".into())]
        );
        let seen = store
            .release_seen(&key.public(), "app", "stable")
            .expect("seen");
        assert_eq!(seen.map(|s| s.seq), Some(7));
        assert!(store.check(|_| {}).expect("check").problems.is_empty());
    }

    #[test]
    fn a_threshold_publishers_chain_and_high_water_mark_survive() {
        use crate::release::{Chain, Release, Root, SecretKey};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let [a, b, c] = [1u8, 2, 3].map(|s| SecretKey::from_seed(&[s; 32]));
        let pointer = SecretKey::from_seed(&[9; 32]).public();
        let mut v1 = Root::new(pointer, vec![a.public(), b.public()], 2)
            .and_then(Root::unsigned)
            .expect("root");
        v1.sign(&a, None).expect("sign");
        v1.sign(&b, None).expect("sign");
        let first = Chain::start(v1).expect("v1");
        store.trust_chain(&first, "acme").expect("trust");
        store
            .trust_fingerprint(&Hash::of(b"some first root"), "pinned")
            .expect("pin");
        let mut v2 = first
            .newest()
            .next(vec![a.public(), c.public()], 2)
            .and_then(Root::unsigned)
            .expect("v2");
        for k in [&a, &b, &c] {
            v2.sign(k, Some(first.newest())).expect("sign");
        }
        let mut chain = first.clone();
        chain.extend(&[v2]).expect("v2");
        let mut signed = Release {
            publisher: pointer,
            name: "app".into(),
            channel: "stable".into(),
            version: semver::Version::new(2, 0, 0),
            seq: 5,
            root: Hash::of(b"manifest"),
            size: 1,
            created: 1_800_000_000,
            expires: None,
            rollout: Default::default(),
        }
        .sign_threshold(&a, &chain)
        .expect("sign");
        signed.cosign(&c, chain.newest()).expect("cosign");
        let policy = store.policy(Policy::default()).expect("policy");
        store
            .accept_release(&policy, &signed, &Want::default())
            .expect("accept");
        drop(store);

        let report = Store::salvage(dir.path(), |_| {}).expect("salvage");
        assert!(report.old.problems.is_empty(), "{:?}", report.old.problems);
        assert_eq!(report.old.releases_seen, 1);
        let store = Store::open(dir.path()).expect("reopen");
        let roots = store.roots().expect("roots");
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].1.newest().version, 2, "the rotation is kept");
        assert_eq!(store.pins_trusted().expect("pins").len(), 1);
        let seen = store.release_seen(&pointer, "app", "stable").expect("seen");
        assert_eq!(seen.map(|s| s.seq), Some(5));
    }

    #[test]
    fn refuses_a_store_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _open = Store::open(dir.path()).expect("open");
        assert!(matches!(
            Store::salvage(dir.path(), |_| {}),
            Err(SalvageError::Locked(_))
        ));
        assert!(dir.path().join("swarm.redb").exists());
    }

    #[test]
    fn refuses_a_directory_that_is_not_a_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            Store::salvage(dir.path(), |_| {}),
            Err(SalvageError::NotAStore(_))
        ));
    }
}
