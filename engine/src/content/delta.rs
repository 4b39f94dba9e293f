//! Binary patches between two versions of a file (delta updates, issue 18).
//!
//! Two formats (`wire-spec/content.md` §3): bsdiff 4.x (`BSDIFF40`: a
//! header, then three bzip2 streams of control triples, bytes to add to
//! the base, and new bytes), and format 2 (`SWPATCH2`), the same with zstd
//! streams, which is what [`make`] writes. bsdiff's search was chosen by
//! measurement (benches/README, `bench-delta`): on two builds of this
//! project's own binary its patches were the smallest of bsdiff, zstd
//! `--patch-from` and xdelta3, and it is the one of those whose apply needs
//! no copy of the base in memory: the base is read where the patch points,
//! so applying takes a few MiB however large the file. zstd streams apply
//! several times faster than bzip2 at about the same size.
//!
//! Patches are made with the qbsdiff crate (a suffix-array search, in
//! fixed-size parallel parts, so that every machine makes the same patch
//! of the same pair). They are applied by [`apply`] here, which streams the
//! output in order, never past the size it was told, and allocates nothing
//! the patch asks for (a zstd window over 8 MiB is refused): what it
//! produces is checked by the caller against the new file's root before
//! anything is claimed.
//!
//! ```
//! use swarm_engine::content::delta;
//!
//! let old = b"the quick brown fox jumps over the lazy dog, twice over".repeat(40);
//! let mut new = old.clone();
//! new[100..110].copy_from_slice(b"0123456789");
//! new.extend_from_slice(b" and a tail");
//! let patch = delta::make(&old, &new)?;
//! assert!(patch.len() < new.len() / 4);
//!
//! let mut out = Vec::new();
//! let (o, p, n) = (old.len() as u64, patch.len() as u64, new.len() as u64);
//! delta::apply(&old[..], o, &patch[..], p, n, &mut |b| {
//!     out.extend_from_slice(b);
//!     Ok(())
//! })?;
//! assert_eq!(out, new);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{self, Read};

use super::manifest::Entry;
use super::{Hash, ReadAt};

/// The manifest extension tag of a file's patches (`wire-spec/content.md`
/// §2.6).
pub const PATCHES_TAG: u64 = 1;
/// The format of §3.1, as the record names it.
pub const FORMAT_BSDIFF4: u8 = 1;
/// The format of §3.2 (bsdiff's triples, zstd streams): what swarm makes.
pub const FORMAT_ZSTD: u8 = 2;
/// The most patches one file lists.
pub const MAX_PATCHES: usize = 8;

/// One patch a manifest lists for a file: applied to the file whose bytes
/// hash to `base`, it makes the entry's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchRef {
    /// The patch format ([`FORMAT_BSDIFF4`]; others are skipped).
    pub format: u8,
    /// The root of the base file's bytes.
    pub base: Hash,
    /// The root of the patch blob.
    pub patch: Hash,
    /// The patch blob's size.
    pub size: u64,
}

/// The bytes of a patches record (§2.6) listing `refs` (at most
/// [`MAX_PATCHES`]; more are left out).
pub fn encode_record(refs: &[PatchRef]) -> Vec<u8> {
    let refs = &refs[..refs.len().min(MAX_PATCHES)];
    let mut out = Vec::with_capacity(1 + refs.len() * 74);
    out.push(refs.len() as u8);
    for r in refs {
        out.push(r.format);
        out.extend_from_slice(r.base.as_bytes());
        out.extend_from_slice(r.patch.as_bytes());
        let mut v = r.size;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    out
}

/// The patches `e` lists, in the formats this build reads. A record that
/// breaks the rules of §2.6 lists none: the file is fetched whole.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::Entry;
/// use swarm_engine::content::delta::{self, PatchRef};
///
/// let p = PatchRef {
///     format: delta::FORMAT_BSDIFF4,
///     base: Hash::of(b"v1"),
///     patch: Hash::of(b"patch"),
///     size: 300,
/// };
/// let e = Entry {
///     path: "app".into(),
///     size: 9,
///     mode: 0o755,
///     hash: Hash::of(b"v2 bytes!"),
///     extensions: vec![(delta::PATCHES_TAG, delta::encode_record(&[p]))],
/// };
/// assert_eq!(delta::patches_of(&e), vec![p]);
/// ```
pub fn patches_of(e: &Entry) -> Vec<PatchRef> {
    let Some((_, bytes)) = e.extensions.iter().find(|(t, _)| *t == PATCHES_TAG) else {
        return Vec::new();
    };
    decode_record(bytes).unwrap_or_default()
}

fn decode_record(b: &[u8]) -> Option<Vec<PatchRef>> {
    let (&count, mut rest) = b.split_first()?;
    if count == 0 || count as usize > MAX_PATCHES {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (&format, r) = rest.split_first()?;
        let base = Hash::from_bytes(r.get(..32)?.try_into().ok()?);
        let patch = Hash::from_bytes(r.get(32..64)?.try_into().ok()?);
        let mut r = &r[64..];
        let (mut size, mut shift) = (0u64, 0u32);
        loop {
            let (&byte, more) = r.split_first()?;
            r = more;
            if shift > 35 {
                return None;
            }
            size |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if size > super::MAX_BLOB_SIZE {
            return None;
        }
        if format == FORMAT_BSDIFF4 || format == FORMAT_ZSTD {
            out.push(PatchRef {
                format,
                base,
                patch,
                size,
            });
        }
        rest = r;
    }
    rest.is_empty().then_some(out)
}

/// The first 8 bytes of a patch of format 1 (bsdiff 4.x).
pub const MAGIC: &[u8; 8] = b"BSDIFF40";
/// The first 8 bytes of a patch of format 2.
pub const MAGIC_ZSTD: &[u8; 8] = b"SWPATCH2";
/// zstd level of format 2's streams.
const ZSTD_LEVEL: i32 = 19;
/// log2 of the largest zstd window a format 2 stream may need: 8 MiB, so
/// that three decoders take 24 MiB at most whatever a patch says.
const ZSTD_WINDOW_LOG: u32 = 23;
/// Bytes of the header: the magic and three lengths.
pub const HEADER_LEN: usize = 32;
/// Bytes of output handed to the sink at most at once.
const STEP: usize = 64 * 1024;
/// Target bytes per part of the parallel search: fixed, so that the patch
/// of a pair does not depend on the machine that makes it.
const SEARCH_PART: usize = 4 << 20;
/// bzip2 level of the three streams.
const LEVEL: u32 = 9;

/// A patch that cannot be applied, or an output that could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// Not a bsdiff 4.x patch (an unknown format is never guessed at).
    #[error("not a patch this build reads (expected BSDIFF40)")]
    UnknownFormat,
    /// The header or a control triple breaks the format's rules.
    #[error("the patch is malformed: {0}")]
    Malformed(&'static str),
    /// The patch makes a file of another size than the release says.
    #[error("the patch makes {made} bytes, the release says {signed}")]
    WrongSize {
        /// What its header says it makes.
        made: u64,
        /// What was expected.
        signed: u64,
    },
    /// Reading the patch or the base, or decompressing, failed.
    #[error("reading the patch or its base failed: {0}")]
    Read(#[source] io::Error),
    /// The sink refused the output.
    #[error("writing the patched output failed: {0}")]
    Write(#[source] io::Error),
}

/// The patch (format 2) that turns `old` into `new`: bsdiff's search, its
/// three streams compressed with zstd instead of bzip2, which applies
/// several times faster at about the same size.
pub fn make(old: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    let bs = make_bsdiff(old, new)?;
    let h = Header::parse(&bs, bs.len() as u64).map_err(|e| io::Error::other(e.to_string()))?;
    let start = HEADER_LEN;
    let (c, d) = (
        start + h.ctrl_len as usize,
        start + (h.ctrl_len + h.diff_len) as usize,
    );
    let mut out = Vec::with_capacity(bs.len());
    out.extend_from_slice(MAGIC_ZSTD);
    let mut lens = Vec::with_capacity(3);
    let mut body = Vec::with_capacity(bs.len());
    for part in [&bs[start..c], &bs[c..d], &bs[d..]] {
        let mut raw = Vec::new();
        bzip2::read::BzDecoder::new(part).read_to_end(&mut raw)?;
        let mut enc = zstd::stream::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
        enc.set_parameter(zstd::stream::raw::CParameter::WindowLog(ZSTD_WINDOW_LOG))?;
        enc.include_checksum(false)?;
        enc.set_pledged_src_size(Some(raw.len() as u64))?;
        std::io::Write::write_all(&mut enc, &raw)?;
        let z = enc.finish()?;
        lens.push(z.len() as u64);
        body.extend_from_slice(&z);
    }
    out.extend_from_slice(&lens[0].to_le_bytes());
    out.extend_from_slice(&lens[1].to_le_bytes());
    out.extend_from_slice(&h.new_size.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The patch in format 1, bsdiff 4.x exactly (`bspatch` applies it).
pub fn make_bsdiff(old: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    if old.len() > qbsdiff::bsdiff::MAX_LENGTH || new.len() > qbsdiff::bsdiff::MAX_LENGTH {
        return Err(io::Error::other("a file over 4 GiB is not patched"));
    }
    let mut patch = Vec::with_capacity(new.len() / 8 + HEADER_LEN);
    qbsdiff::Bsdiff::new(old, new)
        .parallel_scheme(qbsdiff::ParallelScheme::ChunkSize(SEARCH_PART))
        .compression_level(LEVEL)
        .compare(io::Cursor::new(&mut patch))?;
    Ok(patch)
}

/// What a patch's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes of the compressed control stream.
    pub ctrl_len: u64,
    /// Bytes of the compressed add stream.
    pub diff_len: u64,
    /// Bytes of the file it makes.
    pub new_size: u64,
}

impl Header {
    /// The header of a patch of `patch_len` bytes, from its first bytes.
    pub fn parse(head: &[u8], patch_len: u64) -> Result<Self, PatchError> {
        let head = head.get(..HEADER_LEN).ok_or(PatchError::UnknownFormat)?;
        if &head[..8] != MAGIC && &head[..8] != MAGIC_ZSTD {
            return Err(PatchError::UnknownFormat);
        }
        let field = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[8 + 8 * i..16 + 8 * i]);
            signed(b)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or(PatchError::Malformed("a negative length in the header"))
        };
        let h = Self {
            ctrl_len: field(0)?,
            diff_len: field(1)?,
            new_size: field(2)?,
        };
        let body = patch_len.saturating_sub(HEADER_LEN as u64);
        if h.ctrl_len.checked_add(h.diff_len).is_none_or(|n| n > body) {
            return Err(PatchError::Malformed("streams longer than the patch"));
        }
        Ok(h)
    }
}

/// bsdiff's 8-byte integer: little-endian magnitude, sign in the top bit.
/// `None` for "negative zero", which no writer makes.
fn signed(b: [u8; 8]) -> Option<i64> {
    let raw = u64::from_le_bytes(b);
    let mag = (raw & !(1 << 63)) as i64;
    match raw >> 63 {
        0 => Some(mag),
        _ if mag == 0 => None,
        _ => Some(-mag),
    }
}

/// A part of the patch read in order, as a stream.
struct Section<'a, P: ReadAt> {
    patch: &'a P,
    at: u64,
    end: u64,
}

impl<P: ReadAt> Read for Section<'_, P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.at);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let got = self.patch.read_at(self.at, &mut buf[..n])?;
        self.at += got as u64;
        Ok(got)
    }
}

/// Apply `patch` (of `patch_len` bytes) to `base` (of `base_size` bytes),
/// handing the output to `sink` in order, in pieces of at most 64 KiB.
/// The patch must make exactly `new_size` bytes, which is checked before
/// anything is produced, and no more is ever produced. Base bytes the patch
/// points past the end of read as zero, as in bspatch. Memory: a few
/// buffers and three bzip2 decoders, whatever the sizes.
pub fn apply<B: ReadAt, P: ReadAt>(
    base: B,
    base_size: u64,
    patch: P,
    patch_len: u64,
    new_size: u64,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<u64, PatchError> {
    let mut head = [0u8; HEADER_LEN];
    read_full(&patch, 0, &mut head).map_err(PatchError::Read)?;
    let h = Header::parse(&head, patch_len)?;
    if h.new_size != new_size {
        return Err(PatchError::WrongSize {
            made: h.new_size,
            signed: new_size,
        });
    }
    let start = HEADER_LEN as u64;
    let section = |from: u64, to: u64| Section {
        patch: &patch,
        at: from,
        end: to,
    };
    let zstd = &head[..8] == MAGIC_ZSTD;
    let decoder = |from: u64, to: u64| -> Result<Box<dyn Read + '_>, PatchError> {
        let sec = section(from, to);
        if !zstd {
            return Ok(Box::new(bzip2::read::BzDecoder::new(sec)));
        }
        let mut d = zstd::stream::read::Decoder::new(sec).map_err(PatchError::Read)?;
        // A frame that needs a larger window is refused, not allocated.
        d.window_log_max(ZSTD_WINDOW_LOG)
            .map_err(PatchError::Read)?;
        Ok(Box::new(d))
    };
    let diff_at = start + h.ctrl_len;
    let mut ctrl = decoder(start, diff_at)?;
    let mut diff = decoder(diff_at, diff_at + h.diff_len)?;
    let mut extra = decoder(diff_at + h.diff_len, patch_len)?;
    let (mut out_pos, mut old_pos) = (0u64, 0i64);
    let mut buf = vec![0u8; STEP];
    let mut old = vec![0u8; STEP];
    while out_pos < new_size {
        let mut triple = [0u8; 24];
        ctrl.read_exact(&mut triple).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => PatchError::Malformed("the control stream ends early"),
            _ => PatchError::Read(e),
        })?;
        let num = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&triple[8 * i..8 * i + 8]);
            signed(b).ok_or(PatchError::Malformed("negative zero in a control triple"))
        };
        let (add, copy, seek) = (num(0)?, num(1)?, num(2)?);
        let (Ok(add), Ok(copy)) = (u64::try_from(add), u64::try_from(copy)) else {
            return Err(PatchError::Malformed(
                "a negative length in a control triple",
            ));
        };
        if add
            .checked_add(copy)
            .and_then(|n| n.checked_add(out_pos))
            .is_none_or(|end| end > new_size)
        {
            return Err(PatchError::Malformed("output past the size it makes"));
        }
        // `add` bytes: the add stream plus the base where the patch points.
        let mut left = add;
        while left > 0 {
            let n = left.min(STEP as u64) as usize;
            read_stream(&mut diff, &mut buf[..n], "the add stream ends early")?;
            base_bytes(&base, base_size, old_pos, &mut old[..n])?;
            for (b, o) in buf[..n].iter_mut().zip(&old[..n]) {
                *b = b.wrapping_add(*o);
            }
            sink(&buf[..n]).map_err(PatchError::Write)?;
            left -= n as u64;
            old_pos = old_pos
                .checked_add(n as i64)
                .ok_or(PatchError::Malformed("a base position out of range"))?;
        }
        // `copy` bytes straight from the new-bytes stream.
        let mut left = copy;
        while left > 0 {
            let n = left.min(STEP as u64) as usize;
            read_stream(&mut extra, &mut buf[..n], "the new-bytes stream ends early")?;
            sink(&buf[..n]).map_err(PatchError::Write)?;
            left -= n as u64;
        }
        out_pos += add + copy;
        old_pos = old_pos
            .checked_add(seek)
            .ok_or(PatchError::Malformed("a base position out of range"))?;
    }
    Ok(out_pos)
}

fn read_stream(r: &mut impl Read, buf: &mut [u8], short: &'static str) -> Result<(), PatchError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => PatchError::Malformed(short),
        _ => PatchError::Read(e),
    })
}

/// `buf.len()` base bytes from `pos`; those outside the base read as zero.
fn base_bytes<B: ReadAt>(
    base: &B,
    base_size: u64,
    pos: i64,
    buf: &mut [u8],
) -> Result<(), PatchError> {
    buf.fill(0);
    let len = buf.len() as i64;
    let (from, to) = (pos.max(0), (pos + len).min(base_size as i64));
    if from >= to {
        return Ok(());
    }
    let at = (from - pos) as usize;
    let n = (to - from) as usize;
    read_full(base, from as u64, &mut buf[at..at + n]).map_err(PatchError::Read)
}

fn read_full<R: ReadAt>(r: &R, mut at: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = r.read_at(at, buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        at += n as u64;
        buf = &mut buf[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests;
