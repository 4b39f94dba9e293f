//! The content model: BLAKE3 roots, Bao outboards at 16 KiB chunk groups,
//! sets of those groups ([`GroupSet`]), and manifests that list the files of
//! a release.
//!
//! Pure logic, no I/O of its own: functions take readers and writers.
//! See `wire-spec/content.md` for the byte formats.

pub mod delta;
mod groups;
mod hash;
pub mod manifest;
mod received;
mod select;

use std::io;

pub use bao_tree::io::sync::{ReadAt, Size, WriteAt};
pub use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};

pub use self::groups::GroupSet;
pub use self::hash::{Hash, ParseHashError};
pub use self::manifest::{Entry, Manifest, ManifestError};
pub use self::received::{Decoded, decode_chunks};
pub use self::select::{SelectError, Selection};

/// log2 of the number of 1 KiB BLAKE3 chunks in a chunk group.
///
/// ```
/// use swarm_engine::content::{GROUP_CHUNK_LOG, GROUP_SIZE};
///
/// assert_eq!(GROUP_SIZE, 1024 << GROUP_CHUNK_LOG);
/// ```
pub const GROUP_CHUNK_LOG: u8 = 4;
/// The verification granularity: a chunk group is 16 KiB.
///
/// ```
/// use swarm_engine::content::{GROUP_SIZE, group_count};
///
/// assert_eq!(GROUP_SIZE, 16 * 1024);
/// assert_eq!(group_count(GROUP_SIZE + 1), 2);
/// ```
pub const GROUP_SIZE: u64 = 1024 << GROUP_CHUNK_LOG;
/// The largest blob this engine stores, fetches or lists in a manifest:
/// 1 TiB (2^40 bytes, `wire-spec/content.md` §1.1).
///
/// Sizes come from manifests, which anyone can write, and a receiver sets up
/// a partial blob of the declared size before the first byte arrives; the
/// cap keeps that bounded. 1 TiB is well above any file a release carries,
/// its outboard (4 GiB) and group bookkeeping (2^26 groups) stay workable,
/// and every common filesystem holds a file of that size.
///
/// ```
/// use swarm_engine::content::{GROUP_SIZE, MAX_BLOB_SIZE, group_count};
///
/// assert_eq!(MAX_BLOB_SIZE, 1 << 40);
/// assert_eq!(group_count(MAX_BLOB_SIZE), 1 << 26);
/// assert_eq!(MAX_BLOB_SIZE % GROUP_SIZE, 0);
/// ```
pub const MAX_BLOB_SIZE: u64 = 1 << 40;
/// The bao-tree block size for [`GROUP_SIZE`].
///
/// ```
/// use swarm_engine::content::{BLOCK_SIZE, GROUP_SIZE};
///
/// assert_eq!(BLOCK_SIZE.bytes() as u64, GROUP_SIZE);
/// ```
pub const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(GROUP_CHUNK_LOG);

/// The Bao tree of a blob of `size` bytes at 16 KiB chunk groups.
///
/// ```
/// use swarm_engine::content::{GROUP_SIZE, tree};
///
/// let t = tree(100_000);
/// assert_eq!(t.size(), 100_000);
/// assert_eq!(t.block_size().bytes() as u64, GROUP_SIZE);
/// ```
pub fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK_SIZE)
}

/// Bytes of the post-order outboard of a blob of `size` bytes (64 per group
/// boundary, zero for a blob of one group).
///
/// ```
/// use swarm_engine::content::{GROUP_SIZE, outboard_size};
///
/// assert_eq!(outboard_size(GROUP_SIZE), 0); // one group: the root is enough
/// assert_eq!(outboard_size(4 * GROUP_SIZE), 3 * 64); // three parent nodes
/// ```
pub fn outboard_size(size: u64) -> u64 {
    tree(size).outboard_size()
}

/// Number of 16 KiB groups in a blob of `size` bytes (the last may be short).
///
/// ```
/// use swarm_engine::content::{GROUP_SIZE, group_count};
///
/// assert_eq!(group_count(0), 0);
/// assert_eq!(group_count(1), 1);
/// assert_eq!(group_count(3 * GROUP_SIZE), 3);
/// assert_eq!(group_count(3 * GROUP_SIZE + 1), 4);
/// ```
pub fn group_count(size: u64) -> u64 {
    size.div_ceil(GROUP_SIZE)
}

/// Chunk ranges covering groups `start..end`.
///
/// ```
/// use swarm_engine::content::{ChunkNum, ChunkRanges, group_ranges};
///
/// // Groups 2..4 are 1 KiB chunks 32..64.
/// assert_eq!(group_ranges(2, 4), ChunkRanges::from(ChunkNum(32)..ChunkNum(64)));
/// ```
pub fn group_ranges(start: u64, end: u64) -> ChunkRanges {
    let shift = u32::from(GROUP_CHUNK_LOG);
    ChunkRanges::from(ChunkNum(start << shift)..ChunkNum(end << shift))
}

/// Chunk ranges covering every group of a blob (`0..` to the end).
///
/// ```
/// use swarm_engine::content::{all, group_ranges};
///
/// assert!(all().is_superset(&group_ranges(0, 1_000_000)));
/// ```
pub fn all() -> ChunkRanges {
    ChunkRanges::all()
}

/// Hash `data` as one blob and compute its post-order outboard, reading it
/// once. Returns the root; the outboard goes to `outboard`.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::{compute_outboard, outboard_size};
///
/// let data = vec![7u8; 100_000];
/// let mut outboard = Vec::new();
/// let root = compute_outboard(&data[..], data.len() as u64, &mut outboard)?;
/// assert_eq!(root, Hash::of(&data));
/// assert_eq!(outboard.len() as u64, outboard_size(data.len() as u64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn compute_outboard(
    data: impl io::Read,
    size: u64,
    outboard: impl io::Write,
) -> io::Result<Hash> {
    let root = bao_tree::io::sync::outboard_post_order(data, tree(size), outboard)?;
    Ok(Hash::from(root))
}

/// A post-order outboard over any positioned storage.
///
/// ```
/// use swarm_engine::content::{Outboard, compute_outboard, outboard};
///
/// let data = vec![7u8; 100_000];
/// let mut ob = Vec::new();
/// let root = compute_outboard(&data[..], data.len() as u64, &mut ob)?;
/// let wrapped: Outboard<&[u8]> = outboard(root, data.len() as u64, &ob[..]);
/// assert_eq!(wrapped.tree.size(), 100_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Outboard<D> = bao_tree::io::outboard::PostOrderOutboard<D>;

/// Wrap outboard bytes (or a file holding them) for a blob.
///
/// ```
/// use swarm_engine::content::{all, compute_outboard, encode_ranges, outboard};
///
/// let data = vec![7u8; 100_000];
/// let mut ob = Vec::new();
/// let root = compute_outboard(&data[..], data.len() as u64, &mut ob)?;
/// // With the outboard, any range of the blob can be served verified.
/// let mut encoded = Vec::new();
/// encode_ranges(&data[..], outboard(root, 100_000, &ob[..]), &all(), &mut encoded)?;
/// assert!(encoded.len() > data.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn outboard<D>(root: Hash, size: u64, data: D) -> Outboard<D> {
    Outboard {
        root: root.into(),
        tree: tree(size),
        data,
    }
}

/// Write the Bao pre-order encoding of `ranges` of a blob to `out`,
/// checking every group against the outboard as it is read: corrupt stored
/// data is refused rather than sent.
///
/// ```
/// use swarm_engine::content::{
///     BaoContentItem, GROUP_SIZE, compute_outboard, decode_ranges, encode_ranges, group_ranges,
///     outboard,
/// };
///
/// let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
/// let size = data.len() as u64;
/// let mut ob = Vec::new();
/// let root = compute_outboard(&data[..], size, &mut ob)?;
/// // Send groups 3..5 only: 32 KiB of data plus the hashes that prove them.
/// let ranges = group_ranges(3, 5);
/// let mut encoded = Vec::new();
/// encode_ranges(&data[..], outboard(root, size, &ob[..]), &ranges, &mut encoded)?;
/// let mut leaves = 0;
/// for item in decode_ranges(root, size, &ranges, &encoded[..]) {
///     if let BaoContentItem::Leaf(leaf) = item? {
///         assert_eq!(leaf.offset % GROUP_SIZE, 0);
///         leaves += 1;
///     }
/// }
/// assert_eq!(leaves, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_ranges(
    data: impl ReadAt,
    outboard: impl bao_tree::io::sync::Outboard,
    ranges: &ChunkRanges,
    out: impl io::Write,
) -> Result<(), EncodeError> {
    bao_tree::io::sync::encode_ranges_validated(data, outboard, ranges, out).map_err(Into::into)
}

/// The ranges a response to `ranges` actually covers for a blob of `size`
/// bytes: ranges past the end select the last chunk (wire.md §3.3).
///
/// ```
/// use swarm_engine::content::{ChunkNum, ChunkRanges, all, truncate_ranges};
///
/// // A 3000-byte blob has chunks 0..3; `all()` covers exactly those.
/// assert_eq!(truncate_ranges(&all(), 3000), ChunkRanges::from(ChunkNum(0)..ChunkNum(3)));
/// // A range running past the end is cut at the end.
/// let long = ChunkRanges::from(ChunkNum(1)..ChunkNum(100));
/// assert_eq!(truncate_ranges(&long, 3000), ChunkRanges::from(ChunkNum(1)..ChunkNum(3)));
/// ```
pub fn truncate_ranges(ranges: &ChunkRanges, size: u64) -> ChunkRanges {
    let t = bao_tree::io::sync::truncate_ranges(ranges, size);
    let end = ChunkNum(size.div_ceil(1024).max(1));
    ChunkRanges::new(t.boundaries().into()).unwrap_or_default()
        & ChunkRanges::from(ChunkNum(0)..end)
}

/// Like [`encode_ranges`] but without re-hashing the stored data: for
/// serving when the receiver verifies anyway.
///
/// ```
/// use swarm_engine::content::{
///     all, compute_outboard, encode_ranges, encode_ranges_unverified, outboard,
/// };
///
/// let data = vec![1u8; 50_000];
/// let mut ob = Vec::new();
/// let root = compute_outboard(&data[..], 50_000, &mut ob)?;
/// let (mut checked, mut unchecked) = (Vec::new(), Vec::new());
/// encode_ranges(&data[..], outboard(root, 50_000, &ob[..]), &all(), &mut checked)?;
/// encode_ranges_unverified(&data[..], outboard(root, 50_000, &ob[..]), &all(), &mut unchecked)?;
/// // The same bytes on the wire, minus the re-hashing when the data is sound.
/// assert_eq!(checked, unchecked);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_ranges_unverified(
    data: impl ReadAt + Size,
    outboard: impl bao_tree::io::sync::Outboard,
    ranges: &ChunkRanges,
    out: impl io::Write,
) -> Result<(), EncodeError> {
    bao_tree::io::sync::encode_ranges(data, outboard, ranges, out).map_err(Into::into)
}

/// One verified item of a Bao response: a parent hash pair or a leaf of data.
pub use bao_tree::io::{BaoContentItem, Leaf, Parent};

/// Decode a Bao response for `ranges` of the blob `root` of `size` bytes from
/// `encoded`. Every item the iterator yields has been verified against the
/// root; the first mismatch ends it with an error.
///
/// ```
/// use swarm_engine::content::{
///     BaoContentItem, all, compute_outboard, decode_ranges, encode_ranges, outboard,
/// };
///
/// let data = vec![9u8; 40_000];
/// let mut ob = Vec::new();
/// let root = compute_outboard(&data[..], 40_000, &mut ob)?;
/// let mut encoded = Vec::new();
/// encode_ranges(&data[..], outboard(root, 40_000, &ob[..]), &all(), &mut encoded)?;
/// let mut received = Vec::new();
/// for item in decode_ranges(root, 40_000, &all(), &encoded[..]) {
///     if let BaoContentItem::Leaf(leaf) = item? {
///         received.extend_from_slice(&leaf.data);
///     }
/// }
/// assert_eq!(received, data);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_ranges<'a, R: io::Read + 'a>(
    root: Hash,
    size: u64,
    ranges: &'a ChunkRanges,
    encoded: R,
) -> impl Iterator<Item = Result<BaoContentItem, DecodeError>> + 'a {
    bao_tree::io::sync::DecodeResponseIter::new(root.into(), tree(size), encoded, ranges)
        .map(|r| r.map_err(Into::into))
}

/// Why data failed to verify while being decoded.
///
/// ```
/// use swarm_engine::content::{
///     DecodeError, GROUP_SIZE, all, compute_outboard, decode_ranges, encode_ranges, outboard,
/// };
///
/// let data = vec![9u8; 40_000];
/// let mut ob = Vec::new();
/// let root = compute_outboard(&data[..], 40_000, &mut ob)?;
/// let mut encoded = Vec::new();
/// encode_ranges(&data[..], outboard(root, 40_000, &ob[..]), &all(), &mut encoded)?;
/// // Damage the last byte: the last group no longer matches the root.
/// let last = encoded.len() - 1;
/// encoded[last] ^= 1;
/// let err = decode_ranges(root, 40_000, &all(), &encoded[..])
///     .find_map(Result::err)
///     .expect("the damage is found");
/// assert!(matches!(err, DecodeError::LeafMismatch { offset } if offset == 2 * GROUP_SIZE));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A leaf's bytes do not hash to what the tree says.
    #[error("data at byte {offset} does not match the root hash")]
    LeafMismatch {
        /// Byte offset of the bad group.
        offset: u64,
    },
    /// A parent hash pair does not hash to what the tree says.
    #[error("tree hash covering bytes from {offset} does not match the root hash")]
    ParentMismatch {
        /// Byte offset of the first byte the bad node covers.
        offset: u64,
    },
    /// The stream ended before the requested ranges were complete.
    #[error("stream ended early, before byte {offset}")]
    Truncated {
        /// Byte offset where data was missing.
        offset: u64,
    },
    /// Reading the stream failed.
    #[error("reading the stream")]
    Io(#[from] io::Error),
}

impl From<bao_tree::io::DecodeError> for DecodeError {
    fn from(e: bao_tree::io::DecodeError) -> Self {
        use bao_tree::io::DecodeError as E;
        match e {
            E::LeafHashMismatch(c) => Self::LeafMismatch {
                offset: c.to_bytes(),
            },
            E::ParentHashMismatch(n) => Self::ParentMismatch {
                offset: n.chunk_range().start.to_bytes(),
            },
            E::LeafNotFound(c) => Self::Truncated {
                offset: c.to_bytes(),
            },
            E::ParentNotFound(n) => Self::Truncated {
                offset: n.chunk_range().start.to_bytes(),
            },
            E::Io(e) => Self::Io(e),
        }
    }
}

/// Why stored data could not be encoded.
///
/// ```
/// use swarm_engine::content::{EncodeError, all, compute_outboard, encode_ranges, outboard};
///
/// let mut data = vec![9u8; 40_000];
/// let mut ob = Vec::new();
/// let root = compute_outboard(&data[..], 40_000, &mut ob)?;
/// data[20_000] ^= 1; // bit rot in the second group
/// let err = encode_ranges(&data[..], outboard(root, 40_000, &ob[..]), &all(), std::io::sink())
///     .unwrap_err();
/// assert!(matches!(err, EncodeError::Corrupt { offset: 16384 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Stored bytes at `offset` do not match the root: the store is corrupt there.
    #[error("stored data at byte {offset} does not match its hash")]
    Corrupt {
        /// Byte offset of the bad group or node.
        offset: u64,
    },
    /// Reading storage or writing the output failed.
    #[error("reading stored data or writing the output")]
    Io(#[from] io::Error),
}

impl From<bao_tree::io::EncodeError> for EncodeError {
    fn from(e: bao_tree::io::EncodeError) -> Self {
        use bao_tree::io::EncodeError as E;
        match e {
            E::LeafHashMismatch(c) => Self::Corrupt {
                offset: c.to_bytes(),
            },
            E::ParentHashMismatch(n) => Self::Corrupt {
                offset: n.chunk_range().start.to_bytes(),
            },
            E::SizeMismatch => Self::Corrupt { offset: 0 },
            E::Io(e) => Self::Io(e),
            other => Self::Io(io::Error::other(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn root_is_plain_blake3() {
        for n in [0, 1, 1024, 16384, 16385, 100_000, 1 << 20] {
            let d = data(n);
            let mut ob = Vec::new();
            let root = compute_outboard(&d[..], n as u64, &mut ob).unwrap();
            assert_eq!(root, Hash::from(blake3::hash(&d)), "size {n}");
            assert_eq!(ob.len() as u64, outboard_size(n as u64));
        }
    }

    #[test]
    fn outboard_cost_is_64_bytes_per_group() {
        // 1 GiB: 65536 groups, 65535 parents of 64 bytes.
        assert_eq!(outboard_size(1 << 30), 65535 * 64);
        assert_eq!(outboard_size(GROUP_SIZE), 0);
    }

    #[test]
    fn ranges_round_trip_and_detect_a_flipped_byte() {
        let n = 200_000usize;
        let d = data(n);
        let mut ob = Vec::new();
        let root = compute_outboard(&d[..], n as u64, &mut ob).unwrap();
        let ranges = group_ranges(3, 7);
        let mut enc = Vec::new();
        encode_ranges(&d[..], outboard(root, n as u64, &ob[..]), &ranges, &mut enc).unwrap();
        let mut got = vec![0u8; n];
        let mut leaves = 0;
        for item in decode_ranges(root, n as u64, &ranges, &enc[..]) {
            if let BaoContentItem::Leaf(l) = item.unwrap() {
                got[l.offset as usize..][..l.data.len()].copy_from_slice(&l.data);
                leaves += 1;
            }
        }
        assert_eq!(leaves, 4);
        let r = 3 * GROUP_SIZE as usize..7 * GROUP_SIZE as usize;
        assert_eq!(got[r.clone()], d[r]);

        // Flip one byte of data in the encoding: decoding stops within that group.
        let last = enc.len() - 10;
        enc[last] ^= 1;
        let err = decode_ranges(root, n as u64, &ranges, &enc[..])
            .find_map(|i| i.err())
            .unwrap();
        assert!(
            matches!(err, DecodeError::LeafMismatch { offset } if offset == 6 * GROUP_SIZE),
            "{err:?}"
        );
    }

    #[test]
    fn encoding_refuses_corrupt_stored_data() {
        let n = 100_000usize;
        let mut d = data(n);
        let mut ob = Vec::new();
        let root = compute_outboard(&d[..], n as u64, &mut ob).unwrap();
        d[40_000] ^= 0x80;
        let err = encode_ranges(
            &d[..],
            outboard(root, n as u64, &ob[..]),
            &all(),
            io::sink(),
        )
        .unwrap_err();
        assert!(
            matches!(err, EncodeError::Corrupt { offset } if offset == 2 * GROUP_SIZE),
            "{err:?}"
        );
    }
}
