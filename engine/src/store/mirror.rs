//! `mirror`: write the static layout of `wire-spec/mirror.md` for a root,
//! and for a signed release of it, so that any static web server or CDN
//! can serve it as it is and a fetcher can read it with Range requests.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::import::Progress;
use super::{ExportError, FileKind, FileName, ReadError, Store, StoreError};
use crate::content::{self, GROUP_SIZE, Hash};
use crate::release::{MAX_TOKEN_THRESHOLD, Release, SignedRelease};

/// The layout version this build writes and reads (`mirror.md` §2).
///
/// ```
/// use swarm_engine::store::{MIRROR_INDEX, MIRROR_VERSION};
///
/// assert_eq!(MIRROR_VERSION, 1);
/// assert_eq!(MIRROR_INDEX, b"swarm-mirror 1\n");
/// ```
pub const MIRROR_VERSION: u32 = 1;

/// The exact bytes of the index file a mirror of this layout version holds
/// at its top, under the name [`MIRROR_INDEX_NAME`].
pub const MIRROR_INDEX: &[u8] = b"swarm-mirror 1\n";

/// The index file's name, at the top of a mirror.
pub const MIRROR_INDEX_NAME: &str = "swarm-mirror";

/// The relative path of a blob's bytes in a mirror: `blobs/`, the first two
/// hex characters of the hash, `/`, the 64 hex characters.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::store::mirror_blob_path;
///
/// let h = Hash::of(b"hello");
/// assert_eq!(mirror_blob_path(&h), format!("blobs/ea/{h}"));
/// ```
pub fn mirror_blob_path(hash: &Hash) -> String {
    let hex = hash.to_hex();
    format!("blobs/{}/{hex}", &hex[..2])
}

/// The relative path of a blob's post-order outboard in a mirror: the blob's
/// path with `.obao4` added. Only blobs over 16 KiB have one.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::store::{mirror_blob_path, mirror_outboard_path};
///
/// let h = Hash::of(b"hello");
/// assert_eq!(mirror_outboard_path(&h), mirror_blob_path(&h) + ".obao4");
/// ```
pub fn mirror_outboard_path(hash: &Hash) -> String {
    mirror_blob_path(hash) + ".obao4"
}

/// The relative path of the file holding the newest release token a mirror
/// carries for (publisher, name, channel).
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::release::{Release, SecretKey};
/// use swarm_engine::store::mirror_latest_path;
///
/// let key = SecretKey::from_seed(&[1; 32]);
/// let r = Release {
///     publisher: key.public(),
///     name: "app".into(),
///     channel: "stable".into(),
///     version: semver::Version::new(1, 0, 0),
///     seq: 1,
///     root: Hash::of(b"manifest"),
///     size: 0,
///     created: 0,
///     expires: None,
///     rollout: Default::default(),
/// };
/// assert_eq!(mirror_latest_path(&r), format!("releases/{}/app/stable/latest", key.public()));
/// ```
pub fn mirror_latest_path(release: &Release) -> String {
    format!(
        "releases/{}/{}/{}/latest",
        release.publisher, release.name, release.channel
    )
}

/// Where in a blob's post-order outboard the parent nodes that prove
/// `group` are: one byte offset per 64-byte node, from the root down
/// (`mirror.md` §4.2). Empty for a blob of one group, or a group past the end.
///
/// ```
/// use swarm_engine::store::mirror_proof_offsets;
///
/// // 40,000 bytes: three groups; the outboard holds [0,2) at 0, the root at 64.
/// assert_eq!(mirror_proof_offsets(40_000, 0), vec![64, 0]);
/// assert_eq!(mirror_proof_offsets(40_000, 2), vec![64]);
/// assert!(mirror_proof_offsets(16_384, 0).is_empty());
/// ```
pub fn mirror_proof_offsets(size: u64, group: u64) -> Vec<u64> {
    let (mut a, mut b) = (0u64, content::group_count(size));
    let mut right_turns = 0;
    let mut out = Vec::new();
    if group >= b {
        return out;
    }
    while b - a > 1 {
        // The node covering groups [a, b) follows, in post-order, the
        // (b - a - 1) parents of its own subtree and the parents of the
        // `right_turns` complete subtrees to its left: a - right_turns.
        out.push(64 * (b - right_turns - 2));
        let split = a + largest_power_of_two_below(b - a);
        if group < split {
            b = split;
        } else {
            a = split;
            right_turns += 1;
        }
    }
    out
}

fn largest_power_of_two_below(n: u64) -> u64 {
    // n ≥ 2 here.
    1 << (63 - (n - 1).leading_zeros())
}

/// Options for [`Store::write_mirror`].
///
/// ```
/// use swarm_engine::store::MirrorOptions;
///
/// let opts = MirrorOptions::default();
/// assert!(opts.release.is_none());
/// ```
#[derive(Clone, Default)]
pub struct MirrorOptions {
    /// A signed release of the root: its token is written under
    /// [`mirror_latest_path`], unless the mirror already carries a newer one.
    /// Checking it against a trust policy is the caller's business.
    pub release: Option<SignedRelease>,
    /// Called as work proceeds, in bytes of blobs checked or written.
    pub progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
}

impl std::fmt::Debug for MirrorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorOptions")
            .field("release", &self.release)
            .finish_non_exhaustive()
    }
}

/// What [`Store::write_mirror`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorWritten {
    /// The root mirrored.
    pub root: Hash,
    /// The mirror's directory.
    pub dir: PathBuf,
    /// Files of the layout this root (and release) consists of, the index
    /// included.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files written this time: missing before, or replaced.
    pub written: u64,
    /// Bytes of those.
    pub written_bytes: u64,
    /// Of the files written, how many replaced a file that was wrong.
    pub replaced: u64,
    /// The release token's path relative to `dir`, if a release was given.
    pub latest: Option<String>,
    /// The mirror already carried a newer release for the same publisher,
    /// name and channel (this sequence number), which was left in place.
    pub newer_kept: Option<u64>,
}

/// A mirror that could not be written. Files already written stay (each is
/// complete and verified); no partial or unverified file is left under a
/// layout name.
///
/// ```
/// use swarm_engine::store::{MirrorError, Store};
///
/// let store = Store::memory()?;
/// let out = tempfile::tempdir()?;
/// let unknown = swarm_engine::Hash::of(b"not stored");
/// let err = store.write_mirror(&unknown, out.path(), &Default::default()).unwrap_err();
/// assert!(matches!(err, MirrorError::Read(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The root cannot be read as a manifest.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A blob the manifest lists is missing or partial.
    #[error("{0} is not completely stored; fetch it first")]
    Missing(Hash),
    /// Stored data no longer matches its hash. Nothing was written for it.
    #[error("stored data of {0} does not match its hash; nothing was written for it")]
    Corrupt(Hash),
    /// The target is inside the store's own directory.
    #[error("{0} is inside the store; write the mirror somewhere outside it")]
    InsideStore(PathBuf),
    /// Writing would go through a symlink or a non-directory, or replace a
    /// directory.
    #[error("{0} is a symlink, or not what the layout has there; refusing to write through it")]
    Unsafe(PathBuf),
    /// The directory holds a mirror of another layout version.
    #[error(
        "{path} says layout {found:?}; this build writes layout {MIRROR_VERSION}: use another directory"
    )]
    Version {
        /// The index file.
        path: PathBuf,
        /// Its first line.
        found: String,
    },
    /// The release given is of another root.
    #[error("the release is of root {release}, not of {root}")]
    ReleaseMismatch {
        /// The root being mirrored.
        root: Hash,
        /// The release's root.
        release: Hash,
    },
    /// The mirror carries another release with the same sequence number.
    #[error(
        "{path} holds a different release with the same sequence number {seq}; the publisher signed two releases with one sequence"
    )]
    Equivocation {
        /// The token file.
        path: PathBuf,
        /// The sequence number.
        seq: u64,
    },
    /// Reading a file already in the target failed.
    #[error("cannot read {path}")]
    ReadTarget {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing the target failed.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl From<StoreError> for MirrorError {
    fn from(e: StoreError) -> Self {
        Self::Read(ReadError::Store(e))
    }
}

/// Counts of the layout's files, for [`MirrorWritten`].
#[derive(Default)]
struct Tally {
    files: u64,
    bytes: u64,
    written: u64,
    written_bytes: u64,
    replaced: u64,
}

impl Tally {
    fn count(&mut self, len: u64, state: Existing) {
        self.files += 1;
        self.bytes += len;
        if state != Existing::Good {
            self.written += 1;
            self.written_bytes += len;
        }
        if state == Existing::Wrong {
            self.replaced += 1;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    Missing,
    Wrong,
    Good,
    /// An outboard of the right length whose blob bytes are not there to
    /// check it with: compared with the one computed from the store.
    Unchecked,
}

impl Store {
    /// Write the static mirror layout of `root` (`wire-spec/mirror.md`)
    /// into `dir`, created if needed: the index, every blob the manifest
    /// lists (its bytes, and its outboard when over 16 KiB), the manifest,
    /// and with [`MirrorOptions::release`] the token.
    ///
    /// Every file is written under a temporary name, verified against the
    /// root, and renamed into place, blobs before the manifest and the
    /// manifest before the token, so a reader never finds a name whose
    /// content is not there yet. Files already in place are verified and
    /// kept, and replaced when wrong: a second run writes nothing.
    ///
    /// ```
    /// use swarm_engine::store::{Store, mirror_blob_path};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let src = dir.path().join("site");
    /// std::fs::create_dir(&src)?;
    /// std::fs::write(src.join("index.html"), b"<h1>hi</h1>")?;
    /// let store = Store::memory()?;
    /// let root = store.add_paths(&[src], &Default::default())?.root;
    /// let out = dir.path().join("mirror");
    /// let done = store.write_mirror(&root, &out, &Default::default())?;
    /// assert_eq!(done.files, 3); // index, manifest, one small file
    /// assert!(out.join(mirror_blob_path(&root)).is_file());
    /// // Again: everything is in place already.
    /// assert_eq!(store.write_mirror(&root, &out, &Default::default())?.written, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_mirror(
        &self,
        root: &Hash,
        dir: &Path,
        opts: &MirrorOptions,
    ) -> Result<MirrorWritten, MirrorError> {
        self.guard(|| {
            match self.check_export_target(dir, true) {
                Err(ExportError::InsideStore(p)) => return Err(MirrorError::InsideStore(p)),
                Err(ExportError::Read(e)) => return Err(e.into()),
                _ => {}
            }
            if let Some(signed) = &opts.release
                && signed.release().root != *root
            {
                return Err(MirrorError::ReleaseMismatch {
                    root: *root,
                    release: signed.release().root,
                });
            }
            let manifest = self.manifest(root)?;
            let mut blobs = Vec::new();
            for e in manifest.entries() {
                if blobs.iter().any(|&(h, _)| h == e.hash) {
                    continue;
                }
                match self.entry(&e.hash)? {
                    Some(entry) if entry.is_complete() && entry.size() == e.size => {}
                    _ => return Err(MirrorError::Missing(e.hash)),
                }
                blobs.push((e.hash, e.size));
            }
            // The manifest goes last among the blobs.
            blobs.push((*root, manifest.encode().len() as u64));
            let progress = |p| {
                if let Some(f) = &opts.progress {
                    f(p)
                }
            };
            progress(Progress::Total(blobs.iter().map(|&(_, s)| s).sum()));

            fs::create_dir_all(dir).map_err(|source| MirrorError::Write {
                path: dir.to_owned(),
                source,
            })?;
            let mut tally = Tally::default();
            let index = dir.join(MIRROR_INDEX_NAME);
            let state = self.place_index(&index)?;
            tally.count(MIRROR_INDEX.len() as u64, state);
            for &(hash, size) in &blobs {
                self.place_blob(dir, &hash, size, &mut tally)?;
                progress(Progress::Advance(size));
            }
            let mut done = MirrorWritten {
                root: *root,
                dir: dir.to_owned(),
                files: 0,
                bytes: 0,
                written: 0,
                written_bytes: 0,
                replaced: 0,
                latest: None,
                newer_kept: None,
            };
            if let Some(signed) = &opts.release {
                let rel = mirror_latest_path(signed.release());
                done.newer_kept = place_token(dir, &rel, signed, &mut tally)?;
                done.latest = Some(rel);
            }
            done.files = tally.files;
            done.bytes = tally.bytes;
            done.written = tally.written;
            done.written_bytes = tally.written_bytes;
            done.replaced = tally.replaced;
            Ok(done)
        })
    }

    fn place_index(&self, path: &Path) -> Result<Existing, MirrorError> {
        let state = match read_small(path, 4096)? {
            Small::Missing => Existing::Missing,
            Small::Unusable => Existing::Wrong,
            Small::Bytes(b) if b == MIRROR_INDEX => Existing::Good,
            Small::Bytes(b) => {
                let first = b.split(|&c| c == b'\n').next().unwrap_or_default();
                let first = String::from_utf8_lossy(first).into_owned();
                if first.starts_with("swarm-mirror ") && first != "swarm-mirror 1" {
                    return Err(MirrorError::Version {
                        path: path.to_owned(),
                        found: first,
                    });
                }
                Existing::Wrong
            }
        };
        if state != Existing::Good {
            write_atomic(path, |f| f.write_all(MIRROR_INDEX))?;
        }
        Ok(state)
    }

    /// Put one blob's bytes, and its outboard if it has one, in place.
    fn place_blob(
        &self,
        dir: &Path,
        hash: &Hash,
        size: u64,
        tally: &mut Tally,
    ) -> Result<(), MirrorError> {
        let data_path = dir.join(mirror_blob_path(hash));
        prepare_dirs(dir, &data_path)?;
        if size <= GROUP_SIZE {
            // One group: the hash is the proof, and there is no outboard.
            let state = match read_small(&data_path, GROUP_SIZE)? {
                Small::Missing => Existing::Missing,
                Small::Bytes(b) if Hash::of(&b) == *hash => Existing::Good,
                Small::Bytes(_) | Small::Unusable => Existing::Wrong,
            };
            if state != Existing::Good {
                let bytes = match self.read_blob(hash, GROUP_SIZE) {
                    Ok(Some(b)) => b,
                    Ok(None) | Err(ReadError::Incomplete(_)) => {
                        return Err(MirrorError::Missing(*hash));
                    }
                    Err(ReadError::Corrupt(_)) => return Err(MirrorError::Corrupt(*hash)),
                    Err(e) => return Err(e.into()),
                };
                write_atomic(&data_path, |f| f.write_all(&bytes))?;
            }
            tally.count(size, state);
            return Ok(());
        }
        let ob_path = dir.join(mirror_outboard_path(hash));
        let ob_size = content::outboard_size(size);
        let (data_state, ob_state) = check_large(&data_path, &ob_path, hash, size, ob_size)?;
        let mut ob_state = ob_state;
        if data_state != Existing::Good || ob_state != Existing::Good {
            ob_state = self.copy_large(hash, size, &data_path, &ob_path, data_state, ob_state)?;
        }
        tally.count(ob_size, ob_state);
        tally.count(size, data_state);
        Ok(())
    }

    /// Write a blob's bytes and outboard (those of the two that are not
    /// good already) from the store, in one read that hashes every byte:
    /// nothing is renamed into place unless the bytes hash to `hash`.
    /// Returns what the outboard in place turned out to be.
    fn copy_large(
        &self,
        hash: &Hash,
        size: u64,
        data_path: &Path,
        ob_path: &Path,
        data_state: Existing,
        ob_state: Existing,
    ) -> Result<Existing, MirrorError> {
        let src = self
            .backend()
            .open(FileName::Blob(*hash, FileKind::Data))
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => MirrorError::Missing(*hash),
                _ => StoreError::from(e).into(),
            })?;
        let existing = match ob_state {
            Existing::Unchecked => open_existing(ob_path, content::outboard_size(size))?,
            _ => None,
        };
        let data_tmp = (data_state != Existing::Good).then(|| temp_path(data_path));
        let ob_tmp = (ob_state != Existing::Good).then(|| temp_path(ob_path));
        let cleanup = || {
            for t in [&data_tmp, &ob_tmp].into_iter().flatten() {
                let _ = fs::remove_file(t);
            }
        };
        let open = |t: &Option<PathBuf>| -> Result<Maybe, MirrorError> {
            Ok(Maybe(match t {
                Some(t) => Some(BufWriter::with_capacity(1 << 20, create_temp(t)?)),
                None => None,
            }))
        };
        let (data_out, ob_file) = match (open(&data_tmp), open(&ob_tmp)) {
            (Ok(d), Ok(o)) => (d, o),
            (Err(e), _) | (_, Err(e)) => {
                cleanup();
                return Err(e);
            }
        };
        let mut ob_out = ObOut {
            file: ob_file,
            failed: None,
            compare: Compare {
                equal: existing.is_some(),
                with: existing.map(|f| BufReader::with_capacity(1 << 16, f)),
            },
        };
        let src = StoreReader {
            f: &*src,
            pos: 0,
            end: size,
        };
        let mut reader = BufReader::with_capacity(
            1 << 20,
            Tee {
                src,
                copy: data_out,
                failed: None,
            },
        );
        let computed = content::compute_outboard(&mut reader, size, &mut ob_out);
        let tee = reader.into_inner();
        let werr = |path: &Path, source| MirrorError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(e) = tee.failed {
            cleanup();
            return Err(werr(data_path, e));
        }
        if let Some(e) = ob_out.failed.take() {
            cleanup();
            return Err(werr(ob_path, e));
        }
        match computed {
            Ok(h) if h == *hash => {}
            Ok(_) => {
                cleanup();
                // Take the damaged groups out of the store's record, so
                // that a fetch gets them again.
                self.reverify(hash, true)?;
                return Err(MirrorError::Corrupt(*hash));
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                cleanup();
                self.reverify(hash, true)?;
                return Err(MirrorError::Corrupt(*hash));
            }
            Err(e) => {
                cleanup();
                return Err(StoreError::from(e).into());
            }
        }
        let finish = |w: Maybe, tmp: &Option<PathBuf>, dest: &Path| {
            let (Some(w), Some(tmp)) = (w.0, tmp) else {
                return Ok(());
            };
            let f = w.into_inner().map_err(|e| werr(dest, e.into_error()))?;
            f.sync_all().map_err(|e| werr(dest, e))?;
            fs::rename(tmp, dest).map_err(|e| werr(dest, e))
        };
        // An outboard found right is kept as it is.
        let ob_final = match ob_state {
            Existing::Unchecked if ob_out.compare.equal => Existing::Good,
            Existing::Unchecked => Existing::Wrong,
            other => other,
        };
        let ob_file = if ob_final == Existing::Good {
            Maybe(None)
        } else {
            ob_out.file
        };
        // The outboard first: whoever finds the data finds its outboard.
        let r =
            finish(ob_file, &ob_tmp, ob_path).and_then(|()| finish(tee.copy, &data_tmp, data_path));
        // What was renamed is gone from the temporary names; the rest goes.
        cleanup();
        sync_dir(data_path);
        r.map(|()| ob_final)
    }
}

/// The outboard being computed: written to a temporary file, and compared
/// with one already in place.
struct ObOut {
    file: Maybe,
    /// A write failure, kept apart from read failures as in [`Tee`].
    failed: Option<io::Error>,
    compare: Compare<BufReader<fs::File>>,
}

impl Write for ObOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(e) = self.file.write_all(buf) {
            let msg = e.to_string();
            self.failed = Some(e);
            return Err(io::Error::other(msg));
        }
        self.compare.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A writer to a temporary file, or nowhere.
struct Maybe(Option<BufWriter<fs::File>>);

impl Write for Maybe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Some(w) => w.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// Put the token in place unless the mirror has a newer release for the
/// same publisher, name and channel; returns that one's sequence if so.
fn place_token(
    dir: &Path,
    rel: &str,
    signed: &SignedRelease,
    tally: &mut Tally,
) -> Result<Option<u64>, MirrorError> {
    let path = dir.join(rel);
    prepare_dirs(dir, &path)?;
    let text = format!("{}\n", signed.to_token());
    let ours = signed.release();
    let state = match read_small(&path, MAX_TOKEN_THRESHOLD as u64 + 2)? {
        Small::Missing => Existing::Missing,
        Small::Unusable => Existing::Wrong,
        Small::Bytes(b) if b == text.as_bytes() => Existing::Good,
        Small::Bytes(b) => {
            let theirs = std::str::from_utf8(&b)
                .ok()
                .and_then(|t| SignedRelease::from_token(t.trim()).ok());
            match theirs {
                Some(t)
                    if t.release().publisher == ours.publisher
                        && t.release().name == ours.name
                        && t.release().channel == ours.channel =>
                {
                    let seq = t.release().seq;
                    if seq > ours.seq {
                        let len = b.len() as u64;
                        tally.count(len, Existing::Good);
                        return Ok(Some(seq));
                    }
                    if seq == ours.seq && t.record_hash() != signed.record_hash() {
                        return Err(MirrorError::Equivocation { path, seq });
                    }
                    Existing::Wrong
                }
                _ => Existing::Wrong,
            }
        }
    };
    if state != Existing::Good {
        write_atomic(&path, |f| f.write_all(text.as_bytes()))?;
    }
    tally.count(text.len() as u64, state);
    Ok(None)
}

/// Check a large blob's files already in the target: the data must hash to
/// `hash` (its name) and the outboard must be the one computed from it.
fn check_large(
    data_path: &Path,
    ob_path: &Path,
    hash: &Hash,
    size: u64,
    ob_size: u64,
) -> Result<(Existing, Existing), MirrorError> {
    let Some(data) = open_existing(data_path, size)? else {
        let ob = if open_existing(ob_path, ob_size)?.is_some() {
            Existing::Unchecked
        } else {
            Existing::Missing
        };
        return Ok((Existing::Missing, ob));
    };
    let existing_ob = open_existing(ob_path, ob_size)?;
    let rerr = |source| MirrorError::ReadTarget {
        path: data_path.to_owned(),
        source,
    };
    let mut cmp = Compare {
        with: existing_ob.map(|f| BufReader::with_capacity(1 << 16, f)),
        equal: true,
    };
    let reader = BufReader::with_capacity(1 << 20, data);
    let root = content::compute_outboard(reader, size, &mut cmp).map_err(rerr)?;
    if root != *hash {
        // Wrong data says nothing about the outboard.
        let ob = if cmp.with.is_some() {
            Existing::Unchecked
        } else {
            Existing::Missing
        };
        return Ok((Existing::Wrong, ob));
    }
    let ob = match (&cmp.with, cmp.equal) {
        (None, _) => Existing::Missing,
        (Some(_), true) => Existing::Good,
        (Some(_), false) => Existing::Wrong,
    };
    Ok((Existing::Good, ob))
}

/// An existing regular file of exactly `len` bytes at `path`, opened
/// without following a symlink; `None` if there is none (or it is a
/// symlink or of another size: it is replaced). A directory is refused.
fn open_existing(path: &Path, len: u64) -> Result<Option<fs::File>, MirrorError> {
    let rerr = |source| MirrorError::ReadTarget {
        path: path.to_owned(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(rerr(e)),
    };
    if meta.is_dir() {
        return Err(MirrorError::Unsafe(path.to_owned()));
    }
    if !meta.is_file() || meta.len() != len {
        return Ok(None);
    }
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(rerr(e)),
    };
    // Swapped for a symlink between the two looks: not the file we checked.
    let opened = f.metadata().map_err(rerr)?;
    if opened.ino() != meta.ino() || opened.dev() != meta.dev() {
        return Ok(None);
    }
    Ok(Some(f))
}

/// What a small layout file's path holds.
enum Small {
    Missing,
    /// A symlink, a special file, or a file over the limit: replaced.
    Unusable,
    Bytes(Vec<u8>),
}

/// The bytes of an existing regular file at `path`, if it has at most
/// `limit` bytes.
fn read_small(path: &Path, limit: u64) -> Result<Small, MirrorError> {
    let rerr = |source| MirrorError::ReadTarget {
        path: path.to_owned(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Small::Missing),
        Err(e) => return Err(rerr(e)),
    };
    if meta.is_dir() {
        return Err(MirrorError::Unsafe(path.to_owned()));
    }
    if !meta.is_file() || meta.len() > limit {
        return Ok(Small::Unusable);
    }
    let Some(f) = open_existing(path, meta.len())? else {
        return Ok(Small::Unusable);
    };
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf).map_err(rerr)?;
    Ok(Small::Bytes(buf))
}

/// Create the directories between `dir` and the file `dest` below it,
/// refusing to pass through a symlink or a non-directory.
fn prepare_dirs(dir: &Path, dest: &Path) -> Result<(), MirrorError> {
    let Ok(rel) = dest.strip_prefix(dir) else {
        return Err(MirrorError::Unsafe(dest.to_owned()));
    };
    let mut cur = dir.to_owned();
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            break;
        }
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(MirrorError::Unsafe(cur)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !fs::symlink_metadata(&cur).is_ok_and(|m| m.is_dir()) {
                        return Err(MirrorError::Unsafe(cur));
                    }
                }
                Err(source) => return Err(MirrorError::Write { path: cur, source }),
            },
            Err(source) => return Err(MirrorError::ReadTarget { path: cur, source }),
        }
    }
    Ok(())
}

/// The temporary name a layout file is written under: beside it, hidden,
/// and unique to this process and call, so that two runs writing one
/// mirror at once never rename each other's unfinished files into place.
/// Layout names are short, so this one is too.
fn temp_path(dest: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}.{}-{n}.swarm-part", std::process::id()))
}

/// A new temporary file; a leftover of the same name (from a killed run
/// of a process with the same id) is removed, not truncated: it may be a
/// link to something else.
fn create_temp(tmp: &Path) -> Result<fs::File, MirrorError> {
    let werr = |source| MirrorError::Write {
        path: tmp.to_owned(),
        source,
    };
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(werr(e)),
        _ => {}
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(werr)
}

/// Write `dest` through a temporary file, synced, then renamed into place
/// (rename replaces a file or a symlink itself, never its target).
fn write_atomic(
    dest: &Path,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> Result<(), MirrorError> {
    let tmp = temp_path(dest);
    let mut f = create_temp(&tmp)?;
    let r = fill(&mut f)
        .and_then(|()| f.sync_all())
        .and_then(|()| fs::rename(&tmp, dest));
    if let Err(source) = r {
        let _ = fs::remove_file(&tmp);
        return Err(MirrorError::Write {
            path: dest.to_owned(),
            source,
        });
    }
    sync_dir(dest);
    Ok(())
}

/// Make a rename into `file`'s directory durable; best effort (a mirror is
/// rewritten by running again, and nothing refers to it that a crash breaks).
fn sync_dir(file: &Path) {
    if let Some(d) = file.parent()
        && let Ok(d) = fs::File::open(d)
    {
        let _ = d.sync_all();
    }
}

/// A store blob file read front to back.
struct StoreReader<'a> {
    f: &'a dyn super::BlobFile,
    pos: u64,
    end: u64,
}

impl Read for StoreReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.f.read_at(self.pos, &mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Copies what it reads to `copy`; a write failure is kept apart from read
/// failures (it is the target's, not the store's).
struct Tee<R> {
    src: R,
    copy: Maybe,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read(buf)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.failed = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

/// A writer that compares what it is given with an existing file.
struct Compare<R> {
    with: Option<R>,
    equal: bool,
}

impl<R: Read> Write for Compare<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let (Some(r), true) = (&mut self.with, self.equal) {
            let mut theirs = vec![0u8; buf.len()];
            match r.read_exact(&mut theirs) {
                Ok(()) => self.equal = theirs == buf,
                Err(_) => self.equal = false,
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
