//! Patches for a release being published (issue 18): for each file that
//! changed since an earlier release, a patch from that release's file,
//! stored as a blob and listed in the manifest (`wire-spec/content.md`
//! §2.6), so that the release's signature covers it.

use super::{Added, BlobFile, FileKind, FileName, PublishError, ReadError, Store, StoreError};
use crate::content::delta::{self, FORMAT_ZSTD, MAX_PATCHES, PatchError, PatchRef};
use crate::content::{Entry, GROUP_SIZE, Hash, Manifest, ReadAt};

/// How a patch went ([`Store::apply_patch`]).
#[derive(Debug)]
pub enum Applied {
    /// The file is stored, every byte checked against its hash.
    Stored,
    /// The base or the patch is not stored complete here.
    Unavailable,
    /// The patch made other bytes than the file's (a damaged patch, a
    /// buggy publisher, or a base changed on disk): nothing was stored.
    Wrong,
    /// The patch could not be applied: nothing was stored.
    Failed(PatchError),
}

/// A stored blob, read where asked.
struct At<'a>(&'a dyn BlobFile);

impl ReadAt for At<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read_at(pos, buf)
    }
}

/// A patch made for a published release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadePatch {
    /// The file it makes.
    pub path: String,
    /// The root of the release it patches from.
    pub from: Hash,
    /// The patch blob, and its size.
    pub patch: Hash,
    /// Bytes of the patch.
    pub size: u64,
    /// Bytes of the file it makes.
    pub file_size: u64,
}

/// The file of `old` a patch for `path` starts from: the same path; else
/// the same file name; else, for a release of one file, that file (a
/// program published as `app-1.4` and then `app-1.5`).
fn best_match<'m>(old: &'m Manifest, path: &str) -> Option<&'m crate::content::Entry> {
    let entries = old.entries();
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    entries
        .iter()
        .find(|o| o.path == path)
        .or_else(|| {
            let mut same = entries.iter().filter(|o| name(&o.path) == name(path));
            match (same.next(), same.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
        .or(match entries {
            [only] => Some(only),
            _ => None,
        })
}

/// A patch must save at least this share of the file to be listed.
const WORTH: f64 = 0.9;

impl Store {
    /// The release `added` with patches from each root in `bases`: a new
    /// manifest, stored and pinned under `name` in place of the plain one.
    pub(super) fn add_patches(
        &self,
        added: Added,
        name: &str,
        bases: &[Hash],
    ) -> Result<(Added, Vec<MadePatch>), PublishError> {
        let base_err = |root: Hash| move |source: ReadError| PublishError::Base { root, source };
        let mut olds = Vec::with_capacity(bases.len());
        for &b in bases {
            let m = self.manifest(&b).map_err(base_err(b))?;
            olds.push((b, m));
        }
        let manifest = self.manifest(&added.root)?;
        let mut entries = manifest.entries().to_vec();
        let mut made = Vec::new();
        for e in &mut entries {
            let mut refs: Vec<PatchRef> = Vec::new();
            let mut new_bytes: Option<Vec<u8>> = None;
            for (root, old) in &olds {
                let Some(base) = best_match(old, &e.path) else {
                    continue;
                };
                // A small file is fetched in one piece: not worth a patch.
                if e.size <= GROUP_SIZE || base.size <= GROUP_SIZE {
                    continue;
                }
                if base.hash == e.hash || refs.iter().any(|r| r.base == base.hash) {
                    continue;
                }
                if refs.len() == MAX_PATCHES {
                    break;
                }
                let old_bytes = self
                    .read_blob(&base.hash, base.size)
                    .map_err(base_err(*root))?
                    .ok_or(PublishError::Base {
                        root: *root,
                        source: ReadError::Incomplete(base.hash),
                    })?;
                let new = match &new_bytes {
                    Some(n) => n,
                    None => {
                        let n = self
                            .read_blob(&e.hash, e.size)?
                            .ok_or(ReadError::Incomplete(e.hash))?;
                        new_bytes.insert(n)
                    }
                };
                let patch = delta::make(&old_bytes, new).map_err(PublishError::Patch)?;
                if patch.len() as f64 > e.size as f64 * WORTH {
                    continue;
                }
                let hash = self.put_blob(&patch)?;
                refs.push(PatchRef {
                    format: FORMAT_ZSTD,
                    base: base.hash,
                    patch: hash,
                    size: patch.len() as u64,
                });
                made.push(MadePatch {
                    path: e.path.clone(),
                    from: *root,
                    patch: hash,
                    size: patch.len() as u64,
                    file_size: e.size,
                });
            }
            if !refs.is_empty() {
                e.extensions.retain(|(t, _)| *t != delta::PATCHES_TAG);
                e.extensions
                    .push((delta::PATCHES_TAG, delta::encode_record(&refs)));
                e.extensions.sort_by_key(|x| x.0);
            }
        }
        if made.is_empty() {
            return Ok((added, made));
        }
        let with = Manifest::new(entries)?;
        let root = self.put_blob(&with.encode())?;
        debug_assert_eq!(root, with.root());
        self.pin(&root, name)?;
        if root != added.root {
            self.unpin(&added.root)?;
        }
        Ok((Added { root, ..added }, made))
    }

    /// Make the file of `target` from the stored blob `p.base` and the
    /// stored patch blob `p.patch`, streaming, and store it only if every
    /// byte hashes to `target.hash`. Memory: a few MiB, whatever the sizes.
    pub fn apply_patch(&self, target: &Entry, p: &PatchRef) -> Result<Applied, StoreError> {
        self.guard(|| {
            let complete = |h: &Hash| -> Result<Option<u64>, StoreError> {
                Ok(self
                    .blob_info(h)?
                    .filter(|i| i.partial.is_none())
                    .map(|i| i.size))
            };
            let (Some(base_size), Some(patch_size)) = (complete(&p.base)?, complete(&p.patch)?)
            else {
                return Ok(Applied::Unavailable);
            };
            if patch_size != p.size || base_size <= GROUP_SIZE {
                return Ok(Applied::Unavailable);
            }
            let base = self
                .backend()
                .open(FileName::Blob(p.base, FileKind::Data))?;
            // A small patch is stored inline: read it whole.
            let patch = if patch_size <= GROUP_SIZE {
                PatchSrc::Bytes(
                    self.read_blob(&p.patch, patch_size)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                )
            } else {
                PatchSrc::File(
                    self.backend()
                        .open(FileName::Blob(p.patch, FileKind::Data))?,
                )
            };
            let made = self.put_produced(target.size, target.hash, |sink| {
                delta::apply(At(&*base), base_size, &patch, patch_size, target.size, sink)
            })?;
            Ok(match made {
                Ok(true) => Applied::Stored,
                Ok(false) => Applied::Wrong,
                Err(e) => Applied::Failed(e),
            })
        })
    }

    /// The patch blobs the pinned manifests list: kept by gc while stored,
    /// though a pin does not require them (a fetcher that took whole files
    /// has none, and its pin is complete).
    pub(super) fn pinned_patches(&self) -> Result<std::collections::BTreeSet<Hash>, StoreError> {
        let mut out = std::collections::BTreeSet::new();
        for pin in self.pins()? {
            let Ok(m) = self.manifest(&pin.root) else {
                continue;
            };
            for e in m.entries() {
                out.extend(delta::patches_of(e).iter().map(|p| p.patch));
            }
        }
        Ok(out)
    }
}

/// A patch stored inline (its bytes) or as a file, read where asked.
enum PatchSrc {
    Bytes(Vec<u8>),
    File(Box<dyn BlobFile>),
}

impl ReadAt for PatchSrc {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Bytes(b) => b.read_at(pos, buf),
            Self::File(f) => f.read_at(pos, buf),
        }
    }
}
