//! `export`: write the files of a root out to a directory, verified.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::import::{BLOCK, PipeError, Progress, pipe};
use super::tables::BlobEntry;
use super::{FileKind, FileName, ReadError, Store, StoreError};
use crate::content::{Entry, Hash};

/// Options for [`Store::export`].
///
/// ```
/// use swarm_engine::store::ExportOptions;
///
/// # let store = swarm_engine::store::Store::memory()?;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("hello.txt");
/// # std::fs::write(&path, b"hello swarm")?;
/// # let added = store.add_paths(&[path], &Default::default())?;
/// let out = tempfile::tempdir()?;
/// let target = out.path().join("copy.txt");
/// std::fs::write(&target, b"old")?;
/// // Replace what is there.
/// let opts = ExportOptions { force: true, ..ExportOptions::default() };
/// store.export(&added.root, &target, &opts)?;
/// assert_eq!(std::fs::read(&target)?, b"hello swarm");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct ExportOptions {
    /// Replace files that already exist at the destination.
    pub force: bool,
    /// Called as work proceeds.
    pub progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
    /// Hand the root's content over instead of copying it: blob files no
    /// pin needs are linked into place (no copy, when the destination is on
    /// the store's file system) and removed from the store, and the root's
    /// other unpinned content is dropped afterwards. For one-off downloads,
    /// where the store is only a resumable staging area.
    pub release: bool,
    /// Remove what the root does not list from the directories it writes
    /// (as `rsync --delete`), so that they match it exactly. Without it,
    /// such files stay and are listed in [`Exported::extra`].
    pub delete: bool,
    /// Only these files of the root; the default writes all. Not with
    /// `delete`: what a subset leaves out is not extra.
    pub paths: crate::content::Selection,
}

impl std::fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("force", &self.force)
            .field("release", &self.release)
            .field("delete", &self.delete)
            .finish_non_exhaustive()
    }
}

/// What [`Store::export`] wrote.
///
/// ```
/// # let store = swarm_engine::store::Store::memory()?;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("hello.txt");
/// # std::fs::write(&path, b"hello swarm")?;
/// # let added = store.add_paths(&[path], &Default::default())?;
/// let out = tempfile::tempdir()?;
/// let done = store.export(&added.root, out.path(), &Default::default())?;
/// assert_eq!((done.files, done.bytes), (1, 11));
/// // An existing directory: the file goes into it.
/// assert_eq!(done.target, out.path());
/// assert!(out.path().join("hello.txt").is_file());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// The file or directory written to.
    pub target: PathBuf,
    /// Files, links and directories in the directories the root writes
    /// that the root does not list (paths relative to `target`, sorted):
    /// left from an older version, or put there by someone else.
    pub extra: Vec<PathBuf>,
    /// Whether `extra` was removed ([`ExportOptions::delete`]).
    pub deleted: bool,
}

/// An export that failed. Files already completely written stay; no
/// partial or unverified file is left at a destination path.
///
/// ```
/// use swarm_engine::store::ExportError;
///
/// # let store = swarm_engine::store::Store::memory()?;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("hello.txt");
/// # std::fs::write(&path, b"hello swarm")?;
/// # let added = store.add_paths(&[path], &Default::default())?;
/// let out = tempfile::tempdir()?;
/// store.export(&added.root, out.path(), &Default::default())?;
/// // Once more: the file exists, and is not replaced without `force`.
/// let err = store.export(&added.root, out.path(), &Default::default()).unwrap_err();
/// assert!(matches!(err, ExportError::Exists(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The root, or a blob it lists, cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A blob the manifest lists is missing or partial.
    #[error("{0} is not completely stored; fetch it again")]
    Missing(Hash),
    /// The destination file exists.
    #[error("{0} already exists; remove it, or export with `force` to replace it")]
    Exists(PathBuf),
    /// The destination is inside the store's own directory.
    #[error("{0} is inside the store; export somewhere outside it")]
    InsideStore(PathBuf),
    /// Writing would go through a symlink or a non-directory on the way.
    #[error("{0} is a symlink or not a directory; refusing to write through it")]
    Unsafe(PathBuf),
    /// Stored data no longer matches its hash. Nothing was written for it.
    #[error(
        "stored data for {path} does not match {hash}; check the store, then fetch the blob again"
    )]
    Corrupt {
        /// The file being exported.
        path: PathBuf,
        /// Its blob.
        hash: Hash,
    },
    /// The files chosen cannot be.
    #[error(transparent)]
    Select(#[from] crate::content::SelectError),
    /// `delete` with only some files chosen.
    #[error(
        "removing what the root does not list works on a whole root, not on some of its files; \
         leave out one of the two"
    )]
    DeleteSubset,
    /// Writing the destination failed.
    #[error("{path}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl From<StoreError> for ExportError {
    fn from(e: StoreError) -> Self {
        Self::Read(ReadError::Store(e))
    }
}

impl Store {
    /// Export the files of `root` to `out`.
    ///
    /// A root of a single top-level file is written *as* `out` unless `out`
    /// is an existing directory (like `cp`); any other root is written
    /// *into* the directory `out`, which is created if needed. Every file is
    /// written under a temporary name, verified against its hash, given its
    /// mode, and only then renamed into place.
    ///
    /// ```
    /// use swarm_engine::store::Store;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let src = dir.path().join("docs");
    /// std::fs::create_dir(&src)?;
    /// std::fs::write(src.join("a.md"), b"# A")?;
    /// std::fs::write(src.join("b.md"), b"# B")?;
    /// let store = Store::memory()?;
    /// let root = store.add_paths(&[src], &Default::default())?.root;
    /// // A root of a directory is written into `out`, created if needed.
    /// let out = dir.path().join("out");
    /// store.export(&root, &out, &Default::default())?;
    /// assert_eq!(std::fs::read(out.join("docs/b.md"))?, b"# B");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export(
        &self,
        root: &Hash,
        out: &Path,
        opts: &ExportOptions,
    ) -> Result<Exported, ExportError> {
        self.guard(|| {
            // Releasing deletes records, as gc does: keep gc out meanwhile.
            let _exclusive = opts.release.then(|| {
                self.inner
                    .gc_lock
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
            });
            self.refuse_inside(out)?;
            if opts.delete && !opts.paths.is_all() {
                return Err(ExportError::DeleteSubset);
            }
            let manifest = self.manifest(root)?;
            let chosen = opts.paths.entries(&manifest)?;
            let writing = self.being_written();
            let unpinned = if opts.release {
                self.unreferenced(std::iter::once(*root).chain(manifest.blobs()))
                    .map_err(ReadError::from)?
            } else {
                Default::default()
            };
            let last_use: std::collections::HashMap<Hash, usize> = chosen
                .iter()
                .enumerate()
                .map(|(i, e)| (e.hash, i))
                .collect();
            let mut entries = Vec::with_capacity(chosen.len());
            for &e in &chosen {
                let entry = self
                    .entry(&e.hash)
                    .map_err(ReadError::from)?
                    .filter(BlobEntry::is_complete)
                    .ok_or(ExportError::Missing(e.hash))?;
                entries.push((e, entry));
            }
            let progress = |p| {
                if let Some(f) = &opts.progress {
                    f(p)
                }
            };
            progress(Progress::Total(chosen.iter().map(|e| e.size).sum()));
            let single = match manifest.entries() {
                [e] => !e.path.contains('/') && !out.is_dir(),
                _ => false,
            };
            let mut done = Exported {
                files: 0,
                bytes: 0,
                target: out.to_owned(),
                extra: Vec::new(),
                deleted: false,
            };
            for (i, (e, entry)) in entries.into_iter().enumerate() {
                let dest = if single {
                    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                        fs::create_dir_all(parent).map_err(|source| ExportError::Write {
                            path: parent.to_owned(),
                            source,
                        })?;
                    }
                    out.to_owned()
                } else {
                    prepare_dirs(out, &e.path)?
                };
                // A blob is handed over at its last use, so earlier uses copy it.
                // A blob another download is writing keeps its files: the
                // export is a copy, and the blob stays.
                let hand_over = unpinned.contains(&e.hash)
                    && last_use.get(&e.hash) == Some(&i)
                    && matches!(entry, BlobEntry::File { .. })
                    && !writing.contains(&e.hash);
                if hand_over {
                    self.hand_over_file(e, &entry, &dest, opts.force, &progress)?;
                } else {
                    self.export_file(e, &entry, &dest, opts.force, &progress)?;
                }
                done.files += 1;
                done.bytes += e.size;
            }
            if opts.release {
                let unwritten = unpinned.difference(&writing).copied().collect();
                self.drop_blobs(&unwritten).map_err(ReadError::from)?;
            }
            if !single {
                done.extra = extra_paths(out, manifest.entries())?;
                if opts.delete && !done.extra.is_empty() {
                    remove_extra(out, &done.extra)?;
                    done.deleted = true;
                }
            }
            Ok(done)
        })
    }

    /// Export a blob file no pin needs by linking it into place, then take
    /// it out of the store. Order: link, commit the record's removal, unlink
    /// the store's name; a crash at any point leaves the store consistent
    /// (at worst an orphan file for gc) and the destination untouched.
    fn hand_over_file(
        &self,
        e: &Entry,
        entry: &BlobEntry,
        dest: &Path,
        force: bool,
        progress: &dyn Fn(Progress),
    ) -> Result<(), ExportError> {
        check_dest(dest, force)?;
        // Every byte given away is verified first, whatever the record says.
        let checked = self.reverify(&e.hash, true).map_err(ReadError::from)?;
        if !checked.dropped.is_empty() {
            return Err(ExportError::Corrupt {
                path: dest.to_owned(),
                hash: e.hash,
            });
        }
        let tmp = temp_path(dest);
        let werr = |source| ExportError::Write {
            path: dest.to_owned(),
            source,
        };
        remove_stale(&tmp).map_err(werr)?;
        let data = FileName::Blob(e.hash, FileKind::Data);
        if !self.backend().link_out(data, &tmp).map_err(werr)? {
            // Another file system: copy, verified, then drop from the store.
            self.export_file(e, entry, dest, force, progress)?;
            return self
                .drop_blobs(&[e.hash].into())
                .map_err(|err| ReadError::from(err).into());
        }
        self.drop_blobs(&[e.hash].into()).map_err(ReadError::from)?;
        progress(Progress::Advance(e.size));
        fs::set_permissions(&tmp, fs::Permissions::from_mode(e.mode)).map_err(werr)?;
        fs::rename(&tmp, dest).map_err(werr)
    }

    fn export_file(
        &self,
        e: &Entry,
        entry: &BlobEntry,
        dest: &Path,
        force: bool,
        progress: &dyn Fn(Progress),
    ) -> Result<(), ExportError> {
        check_dest(dest, force)?;
        let tmp = temp_path(dest);
        let werr = |source| ExportError::Write {
            path: dest.to_owned(),
            source,
        };
        let result = self.write_verified(e, entry, &tmp, progress);
        if let Err(mut err) = result {
            let _ = fs::remove_file(&tmp);
            if let ExportError::Corrupt { .. } = err {
                // Take the damaged groups out of the record, so that a fetch
                // gets them again.
                self.reverify(&e.hash, true).map_err(ReadError::from)?;
            }
            // Name what the user asked for, not our temporary file.
            match &mut err {
                ExportError::Corrupt { path, .. } | ExportError::Write { path, .. } => {
                    *path = dest.to_owned()
                }
                _ => {}
            }
            return Err(err);
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(e.mode)).map_err(werr)?;
        // rename replaces a file or a symlink itself, never its target.
        fs::rename(&tmp, dest).map_err(werr)
    }

    fn write_verified(
        &self,
        e: &Entry,
        entry: &BlobEntry,
        tmp: &Path,
        progress: &dyn Fn(Progress),
    ) -> Result<(), ExportError> {
        let werr = |source| ExportError::Write {
            path: tmp.to_owned(),
            source,
        };
        let corrupt = || ExportError::Corrupt {
            path: tmp.to_owned(),
            hash: e.hash,
        };
        // A leftover from a killed export is ours to replace; remove it rather
        // than truncate it, since it may be a link to a store file.
        remove_stale(tmp).map_err(werr)?;
        let mut file = fs::OpenOptions::new()
            // Read too: the copy is verified through a read-only mapping.
            .read(true)
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(werr)?;
        if let BlobEntry::Inline { .. } = entry {
            let data = match self.read_blob(&e.hash, e.size) {
                Ok(Some(d)) => d,
                Err(ReadError::Corrupt(_)) => return Err(corrupt()),
                Ok(None) => return Err(ExportError::Missing(e.hash)),
                Err(other) => return Err(other.into()),
            };
            io::Write::write_all(&mut file, &data).map_err(werr)?;
            progress(Progress::Advance(e.size));
            return Ok(());
        }
        let src = self
            .backend()
            .open(FileName::Blob(e.hash, FileKind::Data))
            .map_err(|err| ReadError::from(StoreError::from(err)))?;
        fn verify(mut r: impl io::Read) -> io::Result<Hash> {
            let mut h = blake3::Hasher::new();
            // Small enough to stay in cache between the copy and the hash.
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = io::Read::read(&mut r, &mut buf)?;
                if n == 0 {
                    return Ok(Hash::from(h.finalize()));
                }
                h.update(&buf[..n]);
            }
        }
        let hashed = if let (Some(from), true) = (src.as_file(), e.size > BLOCK as u64) {
            super::fastcopy::copy_then_hash(
                from,
                &file,
                e.size,
                &|n| progress(Progress::Advance(n)),
                |r| verify(r),
            )
        } else if e.size <= BLOCK as u64 {
            // Small files: not worth a thread.
            let mut buf = vec![0u8; e.size as usize];
            super::read_exact_at(&*src, 0, &mut buf)
                .map_err(|err| ReadError::from(StoreError::from(err)))?;
            io::Write::write_all(&mut file, &buf).map_err(werr)?;
            progress(Progress::Advance(e.size));
            Ok(Hash::of(&buf))
        } else {
            pipe(
                e.size,
                |off, buf| super::read_exact_at(&*src, off, buf),
                |_, buf| {
                    io::Write::write_all(&mut file, buf)?;
                    progress(Progress::Advance(buf.len() as u64));
                    Ok(())
                },
                verify,
            )
        };
        match hashed {
            Ok(h) if h == e.hash => Ok(()),
            Ok(_) => Err(corrupt()),
            Err(PipeError::Read(err)) if err.kind() == io::ErrorKind::UnexpectedEof => {
                Err(corrupt())
            }
            Err(PipeError::Read(err)) => Err(ReadError::from(StoreError::from(err)).into()),
            Err(PipeError::Write(err)) => Err(werr(err)),
        }
    }
}

impl Store {
    /// Refuse to write anywhere inside the store's own directory: an
    /// export over the database or a blob file would destroy the store.
    fn refuse_inside(&self, out: &Path) -> Result<(), ExportError> {
        match self.backend().root() {
            Some(root) if is_inside(out, &root) => Err(ExportError::InsideStore(out.to_owned())),
            _ => Ok(()),
        }
    }

    /// Check an export destination before any work (a download, say)
    /// starts: refused if it lies inside this store's directory (however
    /// spelled: symlinks and `..` are resolved), or, without `force`, if it
    /// is an existing file. [`Self::export`] checks the same again.
    ///
    /// ```
    /// use swarm_engine::store::{ExportError, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("store"))?;
    /// let inside = dir.path().join("store/../store/swarm.redb");
    /// assert!(matches!(store.check_export_target(&inside, true), Err(ExportError::InsideStore(_))));
    /// std::fs::write(dir.path().join("taken"), b"x")?;
    /// let taken = dir.path().join("taken");
    /// assert!(matches!(store.check_export_target(&taken, false), Err(ExportError::Exists(_))));
    /// store.check_export_target(&taken, true)?;
    /// store.check_export_target(dir.path(), false)?; // a directory to export into
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_export_target(&self, out: &Path, force: bool) -> Result<(), ExportError> {
        self.refuse_inside(out)?;
        if !force && fs::symlink_metadata(out).is_ok() && !out.is_dir() {
            return Err(ExportError::Exists(out.to_owned()));
        }
        Ok(())
    }
}

/// Whether `path` (which need not exist yet) is `dir` or lies inside it,
/// resolving symlinks and `..` the way the kernel will when it is written:
/// component by component, each prefix that exists resolved on the way.
fn is_inside(path: &Path, dir: &Path) -> bool {
    use std::path::Component;
    let Ok(dir) = fs::canonicalize(dir) else {
        return false;
    };
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => return false,
        }
    };
    let mut cur = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                cur.pop();
            }
            Component::Normal(name) => {
                cur.push(name);
                if let Ok(real) = fs::canonicalize(&cur) {
                    cur = real;
                }
            }
        }
    }
    cur.starts_with(&dir)
}

fn check_dest(dest: &Path, force: bool) -> Result<(), ExportError> {
    match fs::symlink_metadata(dest) {
        Ok(_) if !force => Err(ExportError::Exists(dest.to_owned())),
        Ok(m) if m.is_dir() => Err(ExportError::Unsafe(dest.to_owned())),
        _ => Ok(()),
    }
}

/// The temporary name a file is written under before it is renamed into
/// place: beside it, hidden, and never longer than a file name may be (255
/// bytes), however long the final name.
fn temp_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let short = format!(".{name}.swarm-part");
    if short.len() <= 255 {
        return dest.with_file_name(short);
    }
    let h = blake3::hash(name.as_bytes()).to_hex();
    dest.with_file_name(format!(".swarm-part-{}", &h[..32]))
}

fn remove_stale(tmp: &Path) -> io::Result<()> {
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Create the directories for manifest path `rel` under `out`, refusing to
/// pass through a symlink. Returns the file's destination path.
fn prepare_dirs(out: &Path, rel: &str) -> Result<PathBuf, ExportError> {
    let mkdir = |p: &Path| {
        fs::create_dir(p).or_else(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(ExportError::Write {
                    path: p.to_owned(),
                    source: e,
                })
            }
        })
    };
    fs::create_dir_all(out).map_err(|source| ExportError::Write {
        path: out.to_owned(),
        source,
    })?;
    let mut cur = out.to_owned();
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        // Manifest paths were validated on decode: no "..", no absolute
        // paths, no separators inside a component.
        cur.push(part);
        if parts.peek().is_none() {
            break;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(ExportError::Unsafe(cur)),
            Err(_) => mkdir(&cur)?,
        }
    }
    Ok(cur)
}

/// What the directories a root writes under `out` hold that the root does
/// not list: the top-level directories of its paths, walked without
/// following links. A listed directory's contents are looked into; an
/// unlisted one is reported whole (one path), as is any file or link.
fn extra_paths(out: &Path, entries: &[Entry]) -> Result<Vec<PathBuf>, ExportError> {
    use std::collections::BTreeSet;
    let files: BTreeSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for e in entries {
        let mut p = e.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(parent.to_owned());
            p = parent;
        }
    }
    let tops: BTreeSet<&str> = dirs
        .iter()
        .filter(|d| !d.contains('/'))
        .map(String::as_str)
        .collect();
    let mut extra = Vec::new();
    let mut stack: Vec<String> = tops.iter().map(|t| t.to_string()).collect();
    let rerr = |path: PathBuf| move |source| ExportError::Write { path, source };
    while let Some(dir) = stack.pop() {
        let abs = out.join(&dir);
        for item in fs::read_dir(&abs).map_err(rerr(abs.clone()))? {
            let item = item.map_err(rerr(abs.clone()))?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                // Not UTF-8: no manifest path can name it.
                extra.push(PathBuf::from(&dir).join(item.file_name()));
                continue;
            };
            let rel = format!("{dir}/{name}");
            let kind = item.file_type().map_err(rerr(item.path()))?;
            if kind.is_dir() && dirs.contains(&rel) {
                stack.push(rel);
            } else if kind.is_dir() || !files.contains(rel.as_str()) {
                extra.push(PathBuf::from(rel));
            }
        }
    }
    extra.sort();
    Ok(extra)
}

/// Remove `extra` (paths relative to `out`): files and links themselves,
/// never what a link points to; directories with what they hold.
fn remove_extra(out: &Path, extra: &[PathBuf]) -> Result<(), ExportError> {
    for rel in extra {
        let path = out.join(rel);
        let werr = |source| ExportError::Write {
            path: path.clone(),
            source,
        };
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(werr(e)),
        };
        if meta.is_dir() {
            fs::remove_dir_all(&path).map_err(werr)?;
        } else {
            fs::remove_file(&path).map_err(werr)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_inside;

    #[test]
    fn paths_inside_a_directory_are_found_however_spelled() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        std::os::unix::fs::symlink(&store, dir.path().join("link")).unwrap();
        for inside in [
            store.clone(),
            store.join("swarm.redb"),
            store.join("new/deeper"),
            dir.path().join("link/blobs"),
            dir.path().join("new/../store/x"),
            dir.path().join("no/such/../../store"),
            store.join("./x"),
        ] {
            assert!(is_inside(&inside, &store), "{}", inside.display());
        }
        for outside in [
            dir.path().to_owned(),
            dir.path().join("storefront"),
            dir.path().join("store/../out"),
            dir.path().join("link/../out"),
        ] {
            assert!(!is_inside(&outside, &store), "{}", outside.display());
        }
    }
}
