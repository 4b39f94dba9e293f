//! Manifests: the blob that lists the files of a release. Its hash is the root.
//!
//! Format (normative text in `wire-spec/content.md` §2):
//!
//! ```text
//! magic "SWMF" | version 0x01 | varint count | count × entry
//! entry = varint path_len | path | varint size | varint mode | hash[32]
//!         | varint ext_count | ext_count × (varint tag | varint len | bytes)
//! ```
//!
//! Entries are sorted by path bytes, unique, and no path is a directory of
//! another. Paths are relative, `/`-separated and can never leave the export
//! directory. Decoding checks all of it; nothing unchecked reaches the disk.

use std::collections::BTreeMap;

use super::{Hash, MAX_BLOB_SIZE};

/// The 4 magic bytes a manifest starts with.
///
/// ```
/// use swarm_engine::content::Manifest;
/// use swarm_engine::content::manifest::MAGIC;
///
/// assert!(Manifest::default().encode().starts_with(&MAGIC));
/// ```
pub const MAGIC: [u8; 4] = *b"SWMF";
/// The manifest format version this code writes and reads.
///
/// ```
/// use swarm_engine::content::Manifest;
/// use swarm_engine::content::manifest::{MAGIC, VERSION};
///
/// assert_eq!(Manifest::default().encode()[MAGIC.len()], VERSION);
/// ```
pub const VERSION: u8 = 1;
/// Largest encoded manifest accepted (64 MiB).
///
/// ```
/// use swarm_engine::content::manifest::MAX_ENCODED_SIZE;
/// use swarm_engine::content::{Manifest, ManifestError};
///
/// let huge = vec![0; MAX_ENCODED_SIZE as usize + 1];
/// assert_eq!(
///     Manifest::decode(&huge),
///     Err(ManifestError::TooLarge(MAX_ENCODED_SIZE + 1))
/// );
/// ```
pub const MAX_ENCODED_SIZE: u64 = 64 << 20;
/// Most entries in one manifest.
///
/// ```
/// use swarm_engine::content::manifest::{MAGIC, MAX_ENTRIES, VERSION};
/// use swarm_engine::content::{Manifest, ManifestError};
///
/// // A header claiming 2^20 entries (varint 80 80 40) is refused before
/// // anything is allocated for them.
/// let mut bytes = MAGIC.to_vec();
/// bytes.extend([VERSION, 0x80, 0x80, 0x40]);
/// assert!(1 << 20 > MAX_ENTRIES);
/// assert!(matches!(
///     Manifest::decode(&bytes),
///     Err(ManifestError::TooMany { what: "entries", .. })
/// ));
/// ```
pub const MAX_ENTRIES: u64 = 1_000_000;
/// Longest path, in bytes.
///
/// ```
/// use swarm_engine::content::manifest::{MAX_PATH_LEN, check_path};
///
/// let deep = vec!["d"; MAX_PATH_LEN / 2 + 1].join("/");
/// assert!(deep.len() > MAX_PATH_LEN);
/// assert!(check_path(&deep).is_err());
/// ```
pub const MAX_PATH_LEN: usize = 4096;
/// Longest path component, in bytes.
///
/// ```
/// use swarm_engine::content::manifest::{MAX_COMPONENT_LEN, check_path};
///
/// assert!(check_path(&"n".repeat(MAX_COMPONENT_LEN)).is_ok());
/// assert!(check_path(&"n".repeat(MAX_COMPONENT_LEN + 1)).is_err());
/// ```
pub const MAX_COMPONENT_LEN: usize = 255;
/// Most extension records on one entry.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::manifest::MAX_EXTENSIONS;
/// use swarm_engine::content::{Entry, Manifest, ManifestError};
///
/// let entry = Entry {
///     path: "a".into(),
///     size: 0,
///     mode: 0o644,
///     hash: Hash::of(b""),
///     extensions: (0..=MAX_EXTENSIONS).map(|tag| (tag, vec![])).collect(),
/// };
/// assert!(matches!(
///     Manifest::new(vec![entry]),
///     Err(ManifestError::TooMany { what: "extensions", .. })
/// ));
/// ```
pub const MAX_EXTENSIONS: u64 = 16;
/// Permission bits kept from a file's mode; setuid, setgid and sticky are dropped.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::manifest::MODE_MASK;
/// use swarm_engine::content::{Entry, Manifest, ManifestError};
///
/// let setuid = Entry {
///     path: "app".into(),
///     size: 0,
///     mode: 0o4755,
///     hash: Hash::of(b""),
///     extensions: vec![],
/// };
/// assert_ne!(setuid.mode & !MODE_MASK, 0);
/// assert_eq!(
///     Manifest::new(vec![setuid]),
///     Err(ManifestError::BadMode("app".into()))
/// );
/// ```
pub const MODE_MASK: u32 = 0o777;

/// One file of a manifest.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::{Entry, Manifest};
///
/// let bytes = b"hello";
/// let entry = Entry {
///     path: "docs/hello.txt".into(),
///     size: bytes.len() as u64,
///     mode: 0o644,
///     hash: Hash::of(bytes),
///     extensions: vec![],
/// };
/// let manifest = Manifest::new(vec![entry.clone()])?;
/// assert_eq!(manifest.entries(), &[entry]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative `/`-separated path.
    pub path: String,
    /// Size in bytes, at most [`MAX_BLOB_SIZE`].
    pub size: u64,
    /// Unix permission bits (`mode & 0o777`).
    pub mode: u32,
    /// BLAKE3 root of the file's bytes.
    pub hash: Hash,
    /// Extension records (tag, bytes) this version does not interpret, kept
    /// so that re-encoding yields the same root.
    pub extensions: Vec<(u64, Vec<u8>)>,
}

/// The files of a release, sorted by path.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::{Entry, Manifest};
///
/// let entry = |path: &str, bytes: &[u8]| Entry {
///     path: path.into(),
///     size: bytes.len() as u64,
///     mode: 0o644,
///     hash: Hash::of(bytes),
///     extensions: vec![],
/// };
/// let manifest = Manifest::new(vec![entry("b.txt", b"bee"), entry("a.txt", b"ay")])?;
/// let bytes = manifest.encode();
/// // The root names the manifest; a peer's copy is checked against it.
/// assert_eq!(Hash::of(&bytes), manifest.root());
/// assert_eq!(Manifest::decode(&bytes)?, manifest);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<Entry>,
}

/// A manifest that cannot be built or decoded.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::{Entry, Manifest, ManifestError};
///
/// // A path that would escape the export directory never gets into a manifest.
/// let evil = Entry {
///     path: "../../etc/passwd".into(),
///     size: 0,
///     mode: 0o644,
///     hash: Hash::of(b""),
///     extensions: vec![],
/// };
/// assert!(matches!(
///     Manifest::new(vec![evil]),
///     Err(ManifestError::BadPath { .. })
/// ));
/// assert_eq!(Manifest::decode(b"not a manifest"), Err(ManifestError::BadMagic));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Does not start with the manifest magic.
    #[error("not a swarm manifest (bad magic bytes)")]
    BadMagic,
    /// A version this build does not know.
    #[error("manifest version {0} is not supported by this build (it reads version 1)")]
    UnsupportedVersion(u8),
    /// Larger than [`MAX_ENCODED_SIZE`].
    #[error("manifest of {0} bytes is larger than the 64 MiB limit")]
    TooLarge(u64),
    /// More than [`MAX_ENTRIES`] or [`MAX_EXTENSIONS`].
    #[error("manifest lists too many {what} ({count})")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// How many were claimed.
        count: u64,
    },
    /// Ended in the middle of a field.
    #[error("manifest is truncated")]
    Truncated,
    /// A varint longer than 10 bytes or overflowing its type.
    #[error("manifest has a malformed number at byte {0}")]
    BadVarint(usize),
    /// Bytes after the last entry.
    #[error("manifest has {0} trailing bytes after the last entry")]
    TrailingBytes(usize),
    /// A path that is not valid UTF-8, is absolute, contains `..`, or is otherwise unsafe.
    #[error("unsafe or invalid path in manifest: {path:?} ({why})")]
    BadPath {
        /// The offending path (lossily decoded).
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Entries out of order or repeated.
    #[error("manifest entries are not sorted and unique at {0:?}")]
    NotSorted(String),
    /// A path that is both a file and a directory of another entry.
    #[error("manifest path {0:?} is both a file and a directory")]
    FileDirConflict(String),
    /// Mode with bits outside [`MODE_MASK`].
    #[error("manifest entry {0:?} has a mode with bits beyond 0o777")]
    BadMode(String),
    /// Sizes add up to more than 2^64.
    #[error("manifest sizes overflow")]
    SizeOverflow,
    /// An entry declares more than [`MAX_BLOB_SIZE`] bytes.
    #[error(
        "manifest entry {path:?} declares {size} bytes, more than the {MAX_BLOB_SIZE}-byte (1 TiB) limit"
    )]
    EntryTooLarge {
        /// The entry.
        path: String,
        /// The size it declares.
        size: u64,
    },
}

impl Manifest {
    /// Build a manifest from entries in any order; sorts and validates them.
    ///
    /// ```
    /// use swarm_engine::Hash;
    /// use swarm_engine::content::{Entry, Manifest, ManifestError};
    ///
    /// let entry = |path: &str| Entry {
    ///     path: path.into(),
    ///     size: 0,
    ///     mode: 0o644,
    ///     hash: Hash::of(b""),
    ///     extensions: vec![],
    /// };
    /// // Any order in, sorted out.
    /// let m = Manifest::new(vec![entry("b"), entry("a/x")])?;
    /// assert_eq!(m.entries()[0].path, "a/x");
    /// // "a" cannot be a file and a directory at once.
    /// assert_eq!(
    ///     Manifest::new(vec![entry("a"), entry("a/x")]),
    ///     Err(ManifestError::FileDirConflict("a".into()))
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(mut entries: Vec<Entry>) -> Result<Self, ManifestError> {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        for e in &mut entries {
            e.extensions.sort_by_key(|x| x.0);
        }
        let m = Self { entries };
        m.validate()?;
        Ok(m)
    }

    /// The entries, sorted by path bytes.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::content::{Entry, Manifest};
    /// # let file = |path: &str, bytes: &[u8], mode| Entry {
    /// #     path: path.into(),
    /// #     size: bytes.len() as u64,
    /// #     mode,
    /// #     hash: Hash::of(bytes),
    /// #     extensions: vec![],
    /// # };
    /// # let manifest = Manifest::new(vec![
    /// #     file("readme.txt", b"read me", 0o644),
    /// #     file("bin/app", b"#!/bin/sh\necho hi\n", 0o755),
    /// #     file("copy.txt", b"read me", 0o644),
    /// # ])?;
    /// let paths: Vec<&str> = manifest.entries().iter().map(|e| e.path.as_str()).collect();
    /// assert_eq!(paths, ["bin/app", "copy.txt", "readme.txt"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Total bytes of all files.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::content::{Entry, Manifest};
    /// # let file = |path: &str, bytes: &[u8], mode| Entry {
    /// #     path: path.into(),
    /// #     size: bytes.len() as u64,
    /// #     mode,
    /// #     hash: Hash::of(bytes),
    /// #     extensions: vec![],
    /// # };
    /// # let manifest = Manifest::new(vec![
    /// #     file("readme.txt", b"read me", 0o644),
    /// #     file("bin/app", b"#!/bin/sh\necho hi\n", 0o755),
    /// #     file("copy.txt", b"read me", 0o644),
    /// # ])?;
    /// assert_eq!(manifest.total_size(), 7 + 18 + 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn total_size(&self) -> u64 {
        // validate() proved the sum fits.
        self.entries.iter().map(|e| e.size).sum()
    }

    /// Distinct blob hashes the manifest references.
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::content::{Entry, Manifest};
    /// # let file = |path: &str, bytes: &[u8], mode| Entry {
    /// #     path: path.into(),
    /// #     size: bytes.len() as u64,
    /// #     mode,
    /// #     hash: Hash::of(bytes),
    /// #     extensions: vec![],
    /// # };
    /// # let manifest = Manifest::new(vec![
    /// #     file("readme.txt", b"read me", 0o644),
    /// #     file("bin/app", b"#!/bin/sh\necho hi\n", 0o755),
    /// #     file("copy.txt", b"read me", 0o644),
    /// # ])?;
    /// // Two files with the same bytes are one blob.
    /// assert_eq!(manifest.entries().len(), 3);
    /// assert_eq!(manifest.blobs().len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn blobs(&self) -> Vec<Hash> {
        let mut v: Vec<Hash> = self.entries.iter().map(|e| e.hash).collect();
        v.sort();
        v.dedup();
        v
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self.entries.len() as u64 > MAX_ENTRIES {
            return Err(ManifestError::TooMany {
                what: "entries",
                count: self.entries.len() as u64,
            });
        }
        let mut total: u64 = 0;
        for (i, e) in self.entries.iter().enumerate() {
            check_path(&e.path)?;
            if e.mode & !MODE_MASK != 0 {
                return Err(ManifestError::BadMode(e.path.clone()));
            }
            if e.size > MAX_BLOB_SIZE {
                return Err(ManifestError::EntryTooLarge {
                    path: e.path.clone(),
                    size: e.size,
                });
            }
            total = total
                .checked_add(e.size)
                .ok_or(ManifestError::SizeOverflow)?;
            if e.extensions.len() as u64 > MAX_EXTENSIONS {
                return Err(ManifestError::TooMany {
                    what: "extensions",
                    count: e.extensions.len() as u64,
                });
            }
            if e.extensions.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(ManifestError::NotSorted(e.path.clone()));
            }
            if i > 0 {
                let prev = &self.entries[i - 1].path;
                if prev.as_bytes() >= e.path.as_bytes() {
                    return Err(ManifestError::NotSorted(e.path.clone()));
                }
            }
        }
        // A file "a" and a file "a/b" cannot both exist. Sorting does not put
        // them side by side ("a" < "a-c" < "a/b" since '-' < '/'), so look
        // every ancestor up in a set.
        let files: BTreeMap<&str, ()> =
            self.entries.iter().map(|e| (e.path.as_str(), ())).collect();
        for e in &self.entries {
            let mut p = e.path.as_str();
            while let Some(i) = p.rfind('/') {
                p = &p[..i];
                if files.contains_key(p) {
                    return Err(ManifestError::FileDirConflict(p.to_owned()));
                }
            }
        }
        Ok(())
    }

    /// Encode to the canonical bytes whose BLAKE3 hash is the root.
    ///
    /// ```
    /// use swarm_engine::content::manifest::MAGIC;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::content::{Entry, Manifest};
    /// # let file = |path: &str, bytes: &[u8], mode| Entry {
    /// #     path: path.into(),
    /// #     size: bytes.len() as u64,
    /// #     mode,
    /// #     hash: Hash::of(bytes),
    /// #     extensions: vec![],
    /// # };
    /// # let manifest = Manifest::new(vec![
    /// #     file("readme.txt", b"read me", 0o644),
    /// #     file("bin/app", b"#!/bin/sh\necho hi\n", 0o755),
    /// #     file("copy.txt", b"read me", 0o644),
    /// # ])?;
    /// let bytes = manifest.encode();
    /// assert!(bytes.starts_with(&MAGIC));
    /// assert_eq!(Manifest::decode(&bytes)?, manifest);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 64);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        put_varint(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            put_varint(&mut out, e.path.len() as u64);
            out.extend_from_slice(e.path.as_bytes());
            put_varint(&mut out, e.size);
            put_varint(&mut out, u64::from(e.mode));
            out.extend_from_slice(e.hash.as_bytes());
            put_varint(&mut out, e.extensions.len() as u64);
            for (tag, bytes) in &e.extensions {
                put_varint(&mut out, *tag);
                put_varint(&mut out, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// The root: the hash of [`Self::encode`].
    ///
    /// ```
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::content::{Entry, Manifest};
    /// # let file = |path: &str, bytes: &[u8], mode| Entry {
    /// #     path: path.into(),
    /// #     size: bytes.len() as u64,
    /// #     mode,
    /// #     hash: Hash::of(bytes),
    /// #     extensions: vec![],
    /// # };
    /// # let manifest = Manifest::new(vec![
    /// #     file("readme.txt", b"read me", 0o644),
    /// #     file("bin/app", b"#!/bin/sh\necho hi\n", 0o755),
    /// #     file("copy.txt", b"read me", 0o644),
    /// # ])?;
    /// assert_eq!(manifest.root(), Hash::of(&manifest.encode()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn root(&self) -> Hash {
        Hash::of(&self.encode())
    }

    /// Decode and validate untrusted bytes.
    ///
    /// ```
    /// use swarm_engine::content::ManifestError;
    ///
    /// # use swarm_engine::Hash;
    /// # use swarm_engine::content::{Entry, Manifest};
    /// # let file = |path: &str, bytes: &[u8], mode| Entry {
    /// #     path: path.into(),
    /// #     size: bytes.len() as u64,
    /// #     mode,
    /// #     hash: Hash::of(bytes),
    /// #     extensions: vec![],
    /// # };
    /// # let manifest = Manifest::new(vec![
    /// #     file("readme.txt", b"read me", 0o644),
    /// #     file("bin/app", b"#!/bin/sh\necho hi\n", 0o755),
    /// #     file("copy.txt", b"read me", 0o644),
    /// # ])?;
    /// let bytes = manifest.encode();
    /// assert_eq!(Manifest::decode(&bytes)?, manifest);
    /// assert_eq!(
    ///     Manifest::decode(&bytes[..bytes.len() - 1]),
    ///     Err(ManifestError::Truncated)
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() as u64 > MAX_ENCODED_SIZE {
            return Err(ManifestError::TooLarge(bytes.len() as u64));
        }
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let version = r.take(1)?[0];
        if version != VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        let count = r.varint()?;
        if count > MAX_ENTRIES {
            return Err(ManifestError::TooMany {
                what: "entries",
                count,
            });
        }
        // Each entry takes at least 36 bytes; do not trust `count` for allocation.
        let mut entries = Vec::with_capacity(count.min(bytes.len() as u64 / 36) as usize);
        for _ in 0..count {
            let len = r.len()?;
            let raw = r.take(len)?;
            let path = std::str::from_utf8(raw)
                .map_err(|_| ManifestError::BadPath {
                    path: String::from_utf8_lossy(raw).into_owned(),
                    why: "not UTF-8",
                })?
                .to_owned();
            let size = r.varint()?;
            let mode =
                u32::try_from(r.varint()?).map_err(|_| ManifestError::BadMode(path.clone()))?;
            let mut hash = [0u8; 32];
            hash.copy_from_slice(r.take(32)?);
            let n_ext = r.varint()?;
            if n_ext > MAX_EXTENSIONS {
                return Err(ManifestError::TooMany {
                    what: "extensions",
                    count: n_ext,
                });
            }
            let mut extensions = Vec::new();
            for _ in 0..n_ext {
                let tag = r.varint()?;
                let len = r.len()?;
                extensions.push((tag, r.take(len)?.to_vec()));
            }
            entries.push(Entry {
                path,
                size,
                mode,
                hash: Hash::from_bytes(hash),
                extensions,
            });
        }
        if r.pos != bytes.len() {
            return Err(ManifestError::TrailingBytes(bytes.len() - r.pos));
        }
        let m = Self { entries };
        m.validate()?;
        Ok(m)
    }
}

/// Check that a manifest path is relative, normalized and safe to join onto
/// an export directory on Unix and Windows alike.
///
/// ```
/// use swarm_engine::content::manifest::check_path;
///
/// assert!(check_path("docs/guide.md").is_ok());
/// for bad in ["", "/etc/passwd", "a/../b", "a//b", "C:evil", "a\\b"] {
///     assert!(check_path(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn check_path(path: &str) -> Result<(), ManifestError> {
    let bad = |why| {
        Err(ManifestError::BadPath {
            path: path.to_owned(),
            why,
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > MAX_PATH_LEN {
        return bad("longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return bad("absolute");
    }
    for c in path.split('/') {
        match c {
            "" => return bad("empty component"),
            "." | ".." => return bad("'.' or '..' component"),
            _ if c.len() > MAX_COMPONENT_LEN => return bad("component longer than 255 bytes"),
            _ if c.bytes().any(|b| b < 0x20 || b == b'\\' || b == 0x7f) => {
                return bad("control character or backslash");
            }
            _ if c.len() >= 2 && c.as_bytes()[1] == b':' => return bad("drive prefix"),
            _ => {}
        }
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        let end = self.pos.checked_add(n).ok_or(ManifestError::Truncated)?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(ManifestError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, ManifestError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.take(1)?[0];
            let bits = u64::from(b & 0x7f);
            // The 10th byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return Err(ManifestError::BadVarint(start));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                // Canonical form: no redundant trailing zero bytes.
                if i > 0 && b == 0 {
                    return Err(ManifestError::BadVarint(start));
                }
                return Ok(v);
            }
        }
        Err(ManifestError::BadVarint(start))
    }

    fn len(&mut self) -> Result<usize, ManifestError> {
        let v = self.varint()?;
        usize::try_from(v).map_err(|_| ManifestError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(path: &str, size: u64, mode: u32, content: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            size,
            mode,
            hash: Hash::of(content),
            extensions: vec![],
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The test vector of wire-spec/content.md §2.4.
    #[test]
    fn spec_vector() {
        let m = Manifest::new(vec![
            entry("hello.txt", 5, 0o644, b"hello"),
            entry("bin/run", 0, 0o755, b""),
        ])
        .unwrap();
        let bytes = m.encode();
        let spec = include_str!("../../../wire-spec/content.md");
        let want_hex: String = section(spec, "manifest-vector-bytes");
        assert_eq!(hex(&bytes), want_hex);
        let want_root = section(spec, "manifest-vector-root");
        assert_eq!(m.root().to_hex(), want_root);
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
    }

    /// The refused vector of wire-spec/content.md §2.5, and its accepted twin.
    #[test]
    fn spec_vector_over_the_size_limit_is_refused() {
        let spec = include_str!("../../../wire-spec/content.md");
        let hex = section(spec, "manifest-vector-oversize");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            Manifest::decode(&bytes),
            Err(ManifestError::EntryTooLarge {
                path: "big".into(),
                size: MAX_BLOB_SIZE + 1,
            })
        );
        // The same entry at exactly the limit is fine, and encodes the same
        // apart from the size.
        let at_limit = Manifest::new(vec![entry("big", MAX_BLOB_SIZE, 0o644, b"")]).unwrap();
        let mut want = bytes.clone();
        let size_at = 5 + 1 + 1 + 3;
        assert_eq!(want[size_at], 0x81);
        want[size_at] = 0x80;
        assert_eq!(at_limit.encode(), want);
        assert_eq!(Manifest::decode(&want).unwrap(), at_limit);
    }

    #[test]
    fn huge_declared_sizes_are_refused_not_wrapped() {
        for size in [1 << 62, u64::MAX] {
            let e = entry("x", size, 0o644, b"");
            let err = Manifest::new(vec![e.clone()]).unwrap_err();
            assert_eq!(
                err,
                ManifestError::EntryTooLarge {
                    path: "x".into(),
                    size
                }
            );
            // Encoded by hand (new() refuses it), then decoded: the same error.
            let bytes = Manifest { entries: vec![e] }.encode();
            assert_eq!(Manifest::decode(&bytes), Err(err));
        }
    }

    /// Pull the hex of the fenced block after `<!-- name -->` out of the spec.
    fn section(spec: &str, name: &str) -> String {
        let open = format!("<!-- {name} -->");
        let start = spec.find(&open).unwrap() + open.len();
        let body = &spec[start..];
        let open_fence = body.find("```").unwrap() + 3;
        let close_fence = open_fence + body[open_fence..].find("```").unwrap();
        body[open_fence..close_fence]
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect()
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "C:x",
            "a\nb",
            "a/",
        ] {
            assert!(check_path(p).is_err(), "{p:?}");
        }
        for p in ["a", "a/b", "a b/c.d", "ünï/cödé", ".hidden", "a..b"] {
            check_path(p).unwrap();
        }
    }

    #[test]
    fn conflicts_and_duplicates_are_refused() {
        let e = |p: &str| entry(p, 1, 0o644, b"x");
        assert!(matches!(
            Manifest::new(vec![e("a"), e("a/b")]),
            Err(ManifestError::FileDirConflict(_))
        ));
        assert!(matches!(
            Manifest::new(vec![e("a/b"), e("a-c"), e("a")]),
            Err(ManifestError::FileDirConflict(_))
        ));
        assert!(matches!(
            Manifest::new(vec![e("a"), e("a")]),
            Err(ManifestError::NotSorted(_))
        ));
    }

    #[test]
    fn hostile_bytes_are_refused() {
        let good = Manifest::new(vec![entry("a", 1, 0o644, b"x")])
            .unwrap()
            .encode();
        assert_eq!(
            Manifest::decode(b"SWMX\x01\x00"),
            Err(ManifestError::BadMagic)
        );
        assert_eq!(
            Manifest::decode(b"SWMF\x02\x00"),
            Err(ManifestError::UnsupportedVersion(2))
        );
        for cut in 0..good.len() {
            assert!(Manifest::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            Manifest::decode(&trailing),
            Err(ManifestError::TrailingBytes(1))
        );
        // A huge claimed count must not allocate.
        let mut huge = b"SWMF\x01".to_vec();
        put_varint(&mut huge, MAX_ENTRIES);
        assert_eq!(Manifest::decode(&huge), Err(ManifestError::Truncated));
        // Non-canonical varint.
        assert!(matches!(
            Manifest::decode(b"SWMF\x01\x80\x00"),
            Err(ManifestError::BadVarint(5))
        ));
    }

    proptest! {
        #[test]
        fn round_trip(files in prop::collection::btree_map("[a-z]{1,8}(/[a-z]{1,8}){0,2}", (any::<u64>(), 0u32..0o1000, any::<[u8; 32]>()), 0..20)) {
            let entries: Vec<Entry> = files.into_iter().map(|(path, (size, mode, h))| Entry {
                path, size: size % (MAX_BLOB_SIZE + 1), mode, hash: Hash::from_bytes(h), extensions: vec![(7, h[..3].to_vec())],
            }).collect();
            // Random paths may clash as file and directory; then building must say so.
            match Manifest::new(entries) {
                Ok(m) => prop_assert_eq!(Manifest::decode(&m.encode()).unwrap(), m),
                Err(e) => prop_assert!(matches!(e, ManifestError::FileDirConflict(_)), "{e}"),
            }
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut b = b"SWMF\x01".to_vec();
            b.extend(bytes);
            let _ = Manifest::decode(&b);
        }
    }
}
