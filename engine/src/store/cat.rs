//! Writing one stored file to a stream (`swarm cat`), every 16 KiB
//! verified against the root before it is written.

use std::io::{self, Write};

use super::backend::{FileKind, FileName};
use super::tables::BlobEntry;
use super::verify::check_groups;
use super::{ReadError, Store, StoreError};
use crate::content::{self, Entry, GROUP_SIZE, GroupSet, Hash};

/// Groups verified and written at a time: 4 MiB, enough to spread the
/// hashing over the cores, small enough to stay in the page cache.
const WINDOW_GROUPS: u64 = 256;

/// A file that cannot be written out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatError {
    /// The root lists no such path.
    #[error("{path:?} is not in this root{}", hint(.near))]
    NoSuchPath {
        /// What was asked for.
        path: String,
        /// Paths of the root that start like it, a few.
        near: Vec<String>,
    },
    /// The path is a directory of the root, not a file.
    #[error("{path:?} is a directory of this root, not a file; it holds {}", .files.join(", "))]
    IsDirectory {
        /// What was asked for.
        path: String,
        /// Some of the files under it.
        files: Vec<String>,
    },
    /// No path was given, and the root has more than one file.
    #[error("this root has {0} files; name one ({1})")]
    WhichFile(usize, String),
    /// The stored bytes no longer match: nothing unverified was written,
    /// and the damaged groups are dropped so that a fetch gets them again.
    #[error(
        "stored data of {path:?} does not match its hash at byte {offset}; it was not written out"
    )]
    Corrupt {
        /// The file.
        path: String,
        /// Where the first damaged group starts.
        offset: u64,
    },
    /// Writing to the output failed (a closed pipe, a full disk).
    #[error("cannot write the output")]
    Write(#[source] io::Error),
    /// Reading the store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

fn hint(near: &[String]) -> String {
    match near {
        [] => String::new(),
        n => format!("; it has {}", n.join(", ")),
    }
}

impl From<StoreError> for CatError {
    fn from(e: StoreError) -> Self {
        Self::Read(e.into())
    }
}

impl Store {
    /// Write the file at `path` of `root` (or its only file, with `None`)
    /// to `out`, verified window by window before each is written; the
    /// file is streamed, never held in memory. Returns the bytes written.
    ///
    /// ```
    /// use swarm_engine::store::{CatError, Store};
    ///
    /// let store = Store::memory()?;
    /// let dir = tempfile::tempdir()?;
    /// std::fs::create_dir(dir.path().join("site"))?;
    /// std::fs::write(dir.path().join("site/index.html"), b"<h1>hi</h1>")?;
    /// let root = store.add_paths(&[dir.path().join("site")], &Default::default())?.root;
    /// let mut out = Vec::new();
    /// store.cat(&root, Some("site/index.html"), &mut out)?;
    /// assert_eq!(out, b"<h1>hi</h1>");
    /// let err = store.cat(&root, Some("site"), &mut Vec::new()).unwrap_err();
    /// assert!(matches!(err, CatError::IsDirectory { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cat(
        &self,
        root: &Hash,
        path: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<u64, CatError> {
        let entry = self.file_entry(root, path)?;
        self.cat_file(&entry, out)
    }

    /// The entry [`Self::cat`] would write: the file at `path` of `root`,
    /// or its only file with `None`.
    pub fn file_entry(&self, root: &Hash, path: Option<&str>) -> Result<Entry, CatError> {
        let manifest = self.manifest(root)?;
        let entries = manifest.entries();
        let entry = match path.map(|p| p.trim_matches('/')) {
            None | Some("") => match entries {
                [e] => e,
                many => {
                    let shown: Vec<&str> = many.iter().take(3).map(|e| e.path.as_str()).collect();
                    let more = if many.len() > 3 { ", …" } else { "" };
                    return Err(CatError::WhichFile(
                        many.len(),
                        format!("{}{more}", shown.join(", ")),
                    ));
                }
            },
            Some(p) => match entries.iter().find(|e| e.path == p) {
                Some(e) => e,
                None => {
                    let dir = format!("{p}/");
                    let under: Vec<String> = entries
                        .iter()
                        .filter(|e| e.path.starts_with(&dir))
                        .take(5)
                        .map(|e| e.path.clone())
                        .collect();
                    if !under.is_empty() {
                        return Err(CatError::IsDirectory {
                            path: p.to_owned(),
                            files: under,
                        });
                    }
                    let stem = p.rsplit_once('/').map_or("", |(d, _)| d);
                    let near = entries
                        .iter()
                        .filter(|e| stem.is_empty() || e.path.starts_with(stem))
                        .take(5)
                        .map(|e| e.path.clone())
                        .collect();
                    return Err(CatError::NoSuchPath {
                        path: p.to_owned(),
                        near,
                    });
                }
            },
        };
        Ok(entry.clone())
    }

    /// Write the file `e` (an entry of a stored root's manifest) to `out`,
    /// as [`Self::cat`] does.
    pub fn cat_file(&self, e: &Entry, out: &mut dyn Write) -> Result<u64, CatError> {
        let entry = self
            .entry(&e.hash)?
            .filter(BlobEntry::is_complete)
            .ok_or(ReadError::Incomplete(e.hash))?;
        if let BlobEntry::Inline { .. } = entry {
            let data = match self.read_blob(&e.hash, e.size) {
                Ok(Some(d)) => d,
                Ok(None) => return Err(ReadError::Incomplete(e.hash).into()),
                Err(ReadError::Corrupt(_)) => {
                    return Err(CatError::Corrupt {
                        path: e.path.clone(),
                        offset: 0,
                    });
                }
                Err(other) => return Err(other.into()),
            };
            out.write_all(&data).map_err(CatError::Write)?;
            return Ok(data.len() as u64);
        }
        let open = |k| self.backend().open(FileName::Blob(e.hash, k));
        let data = open(FileKind::Data).map_err(StoreError::from)?;
        let ob = open(FileKind::Outboard).map_err(StoreError::from)?;
        let groups = content::group_count(e.size).max(1);
        let mut buf = vec![0u8; (WINDOW_GROUPS * GROUP_SIZE) as usize];
        let mut written = 0u64;
        let mut first = 0;
        while first < groups {
            let last = (first + WINDOW_GROUPS).min(groups);
            let start = first * GROUP_SIZE;
            let end = (last * GROUP_SIZE).min(e.size);
            let chunk = &mut buf[..(end - start) as usize];
            super::read_exact_at(&*data, start, chunk).map_err(StoreError::from)?;
            // The bytes read are the bytes verified, and then written: a
            // file changing on disk meanwhile cannot slip through.
            let mut window = GroupSet::new();
            window.insert(first, last);
            let read = Window {
                start,
                bytes: chunk,
                size: e.size,
            };
            let (_, bad) =
                check_groups(e.hash, e.size, &read, &*ob, &window).map_err(StoreError::from)?;
            if let Some(&(a, _)) = bad.ranges().first() {
                // Record the damage, so that a fetch gets it again.
                self.reverify(&e.hash, true)?;
                return Err(CatError::Corrupt {
                    path: e.path.clone(),
                    offset: a * GROUP_SIZE,
                });
            }
            out.write_all(chunk).map_err(CatError::Write)?;
            written += chunk.len() as u64;
            first = last;
        }
        Ok(written)
    }
}

/// Bytes of a blob read into memory, from `start`, seen as the blob's data
/// file by the verifier.
struct Window<'a> {
    start: u64,
    bytes: &'a [u8],
    /// The blob's whole size.
    size: u64,
}

impl std::fmt::Debug for Window<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Window({}+{})", self.start, self.bytes.len())
    }
}

impl super::BlobFile for Window<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let end = self.start + self.bytes.len() as u64;
        if offset < self.start || offset > end {
            return Err(io::Error::other("read outside the window being verified"));
        }
        let from = &self.bytes[(offset - self.start) as usize..];
        let n = from.len().min(buf.len());
        buf[..n].copy_from_slice(&from[..n]);
        Ok(n)
    }

    fn write_all_at(&self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("a window is read-only"))
    }

    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::Error::other("a window is read-only"))
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}
