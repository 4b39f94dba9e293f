//! Verifying a response held as the chunks the transport delivered.
//!
//! [`super::decode_ranges`] reads through `io::Read`, so every 16 KiB leaf
//! costs an allocation, a zero fill and a copy, and is written on its own.
//! Here the chunks are copied once into one buffer for the whole response
//! (not zeroed first), every leaf is hashed where it lies in it, and a run
//! of adjacent groups is one slice of it for the store to write at once.
//! (Hashing straight from the chunks needs no copy, but BLAKE3 over
//! slices of one QUIC frame each runs at half speed.)

use std::collections::VecDeque;

use bao_tree::iter::{BaoChunk, ResponseIterRef};
use blake3::hazmat::{HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
use bytes::Bytes;

use super::{BaoContentItem, ChunkRanges, DecodeError, Hash, Leaf, Parent, tree};

/// What [`decode_chunks`] made of a response.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Decoded {
    /// Items verified against the root, in the order of the response. Each
    /// leaf's bytes are a slice of [`Self::data`].
    pub items: Vec<BaoContentItem>,
    /// The bytes of every leaf in `items`, in order, one after another.
    pub data: Bytes,
    /// Why the response stopped verifying, if it did: every item before
    /// it is good.
    pub failed: Option<DecodeError>,
}

/// Decode a Bao response for `ranges` of the blob `root` of `size` bytes,
/// held as `chunks` in the order received, verifying every item against
/// the root as [`super::decode_ranges`] does and failing with the same
/// errors. Bytes after the response are ignored.
///
/// ```
/// use bytes::Bytes;
/// use swarm_engine::content::{
///     BaoContentItem, compute_outboard, decode_chunks, encode_ranges, group_ranges, outboard,
/// };
///
/// let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
/// let mut ob = Vec::new();
/// let root = compute_outboard(&data[..], 100_000, &mut ob)?;
/// let ranges = group_ranges(1, 3);
/// let mut encoded = Vec::new();
/// encode_ranges(&data[..], outboard(root, 100_000, &ob[..]), &ranges, &mut encoded)?;
/// // As a transport delivers it: in pieces of any size.
/// let chunks: Vec<Bytes> = encoded.chunks(1200).map(Bytes::copy_from_slice).collect();
/// let decoded = decode_chunks(root, 100_000, &ranges, chunks);
/// assert!(decoded.failed.is_none());
/// let leaves: Vec<u64> = decoded.items.iter().filter_map(|i| match i {
///     BaoContentItem::Leaf(leaf) => Some(leaf.offset),
///     _ => None,
/// }).collect();
/// assert_eq!(leaves, [16_384, 32_768]);
/// assert_eq!(&decoded.data[..], &data[16_384..49_152]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_chunks(root: Hash, size: u64, ranges: &ChunkRanges, chunks: Vec<Bytes>) -> Decoded {
    let tree = tree(size);
    let ranges = bao_tree::io::sync::truncate_ranges(ranges, size);
    // Room for every byte received: no more is copied, and the parents
    // make the difference.
    let mut data = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
    let mut input = Input(chunks.into());
    let mut stack: Vec<blake3::Hash> = vec![root.into()];
    // Leaves as (offset, where their bytes start in `data`), by position in `items`.
    let mut leaves: Vec<(usize, u64, usize)> = Vec::new();
    let mut out = Decoded::default();
    // The traversal the reference decoder takes: down to single chunks
    // where the ranges cover part of a group.
    for item in ResponseIterRef::new(tree, ranges) {
        let Some(expected) = stack.pop() else { break };
        match item {
            BaoChunk::Parent {
                is_root,
                left,
                right,
                node,
                ..
            } => {
                let offset = node.chunk_range().start.to_bytes();
                let Some(pair) = input.take_parent() else {
                    out.failed = Some(DecodeError::Truncated { offset });
                    break;
                };
                let (mut l, mut r) = ([0u8; 32], [0u8; 32]);
                l.copy_from_slice(&pair[..32]);
                r.copy_from_slice(&pair[32..]);
                let actual = if is_root {
                    merge_subtrees_root(&l, &r, Mode::Hash)
                } else {
                    blake3::Hash::from(merge_subtrees_non_root(&l, &r, Mode::Hash))
                };
                if actual != expected {
                    out.failed = Some(DecodeError::ParentMismatch { offset });
                    break;
                }
                let (l, r) = (blake3::Hash::from(l), blake3::Hash::from(r));
                if right {
                    stack.push(r);
                }
                if left {
                    stack.push(l);
                }
                out.items
                    .push(BaoContentItem::Parent(Parent { node, pair: (l, r) }));
            }
            BaoChunk::Leaf {
                start_chunk,
                size: len,
                is_root,
                ..
            } => {
                let offset = start_chunk.to_bytes();
                let at = data.len();
                if !input.copy_to(len, &mut data) {
                    data.truncate(at);
                    out.failed = Some(DecodeError::Truncated { offset });
                    break;
                }
                if leaf_hash(start_chunk.0, &data[at..], is_root) != expected {
                    data.truncate(at);
                    out.failed = Some(DecodeError::LeafMismatch { offset });
                    break;
                }
                leaves.push((out.items.len(), offset, at));
                // A placeholder until `data` is frozen below.
                out.items.push(BaoContentItem::Leaf(Leaf {
                    offset,
                    data: Bytes::new(),
                }));
            }
        }
    }
    let total = data.len();
    out.data = Bytes::from(data);
    for (k, &(i, offset, at)) in leaves.iter().enumerate() {
        let end = leaves.get(k + 1).map_or(total, |&(_, _, next)| next);
        out.items[i] = BaoContentItem::Leaf(Leaf {
            offset,
            data: out.data.slice(at..end),
        });
    }
    out
}

/// The hash of a subtree starting at chunk `start_chunk`, as its parent
/// (or, for a blob of one group, the root) has it.
fn leaf_hash(start_chunk: u64, data: &[u8], is_root: bool) -> blake3::Hash {
    if is_root {
        return blake3::hash(data);
    }
    let mut h = blake3::Hasher::new();
    h.set_input_offset(start_chunk * 1024);
    h.update(data);
    blake3::Hash::from(h.finalize_non_root())
}

/// The chunks of a response not yet decoded.
struct Input(VecDeque<Bytes>);

impl Input {
    /// Hand the next `n` bytes to `out`, a slice at a time; false if
    /// fewer are left.
    fn take(&mut self, mut n: usize, mut out: impl FnMut(&[u8])) -> bool {
        while n > 0 {
            let Some(front) = self.0.front_mut() else {
                return false;
            };
            let k = n.min(front.len());
            out(&front[..k]);
            bytes::Buf::advance(front, k);
            n -= k;
            if front.is_empty() {
                self.0.pop_front();
            }
        }
        true
    }

    /// Append the next `n` bytes to `out`; false if fewer are left.
    fn copy_to(&mut self, n: usize, out: &mut Vec<u8>) -> bool {
        self.take(n, |s| out.extend_from_slice(s))
    }

    /// The next 64 bytes: a parent's pair of hashes.
    fn take_parent(&mut self) -> Option<[u8; 64]> {
        let mut pair = [0u8; 64];
        let mut at = 0;
        let whole = self.take(64, |s| {
            pair[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        });
        whole.then_some(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ChunkNum;
    use crate::content::{
        BaoContentItem, compute_outboard, decode_ranges, encode_ranges, outboard,
    };
    use proptest::prelude::*;

    /// Leaves (offset, bytes), parents, and the failure, if any.
    type Outcome = (Vec<(u64, Vec<u8>)>, Vec<Parent>, Option<String>);

    fn blob(size: usize) -> (Vec<u8>, Hash, Vec<u8>) {
        let data: Vec<u8> = (0..size as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let mut ob = Vec::new();
        let root = compute_outboard(&data[..], size as u64, &mut ob).expect("in memory");
        (data, root, ob)
    }

    fn encode(data: &[u8], root: Hash, ob: &[u8], ranges: &ChunkRanges) -> Vec<u8> {
        let mut encoded = Vec::new();
        encode_ranges(
            data,
            outboard(root, data.len() as u64, ob),
            ranges,
            &mut encoded,
        )
        .expect("in memory");
        encoded
    }

    fn split(encoded: &[u8], cuts: &[usize]) -> Vec<Bytes> {
        let mut at = 0;
        let mut out = Vec::new();
        for &c in cuts {
            let c = c.min(encoded.len());
            if c > at {
                out.push(Bytes::copy_from_slice(&encoded[at..c]));
                at = c;
            }
        }
        out.push(Bytes::copy_from_slice(&encoded[at..]));
        out
    }

    /// What `decode_ranges` makes of the same bytes, in this module's terms.
    fn reference(root: Hash, size: u64, ranges: &ChunkRanges, encoded: &[u8]) -> Outcome {
        let (mut leaves, mut parents, mut failed) = (Vec::new(), Vec::new(), None);
        for item in decode_ranges(root, size, ranges, encoded) {
            match item {
                Ok(BaoContentItem::Leaf(l)) => leaves.push((l.offset, l.data.to_vec())),
                Ok(BaoContentItem::Parent(p)) => parents.push(p),
                Err(e) => {
                    failed = Some(format!("{e:?}"));
                    break;
                }
            }
        }
        (leaves, parents, failed)
    }

    fn ours(root: Hash, size: u64, ranges: &ChunkRanges, chunks: Vec<Bytes>) -> Outcome {
        let d = decode_chunks(root, size, ranges, chunks);
        let (mut leaves, mut parents) = (Vec::new(), Vec::new());
        let mut at = 0;
        for item in d.items {
            match item {
                BaoContentItem::Leaf(l) => {
                    // Each leaf is the next slice of `data`.
                    assert_eq!(&d.data[at..at + l.data.len()], &l.data[..]);
                    at += l.data.len();
                    leaves.push((l.offset, l.data.to_vec()));
                }
                BaoContentItem::Parent(p) => parents.push(p),
            }
        }
        assert_eq!(at, d.data.len());
        (leaves, parents, d.failed.map(|e| format!("{e:?}")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any response, cut anywhere, damaged anywhere or cut short:
        /// the same leaves, parents and error as the reference decoder.
        #[test]
        fn agrees_with_the_reference_decoder(
            size in 1usize..300_000,
            // Chunk ranges: whole groups mostly, any chunks sometimes.
            start in 0u64..320,
            len in 1u64..320,
            whole in any::<bool>(),
            cuts in proptest::collection::vec(0usize..400_000, 0..40),
            damage in proptest::option::of((0usize..400_000, 1u8..=255)),
            short in proptest::option::of(0usize..400_000),
        ) {
            let (data, root, ob) = blob(size);
            let ranges = if whole {
                crate::content::group_ranges(start / 16, (start + len) / 16 + 1)
            } else {
                ChunkRanges::from(ChunkNum(start)..ChunkNum(start + len))
            };
            let mut encoded = encode(&data, root, &ob, &ranges);
            if let Some((at, x)) = damage {
                let n = encoded.len();
                encoded[at % n] ^= x;
            }
            if let Some(s) = short {
                let n = encoded.len();
                encoded.truncate(s % n);
            }
            let mut cuts = cuts;
            cuts.sort_unstable();
            let want = reference(root, size as u64, &ranges, &encoded);
            let got = ours(root, size as u64, &ranges, split(&encoded, &cuts));
            prop_assert_eq!(&got.0, &want.0);
            prop_assert_eq!(got.1.len(), want.1.len());
            for (g, w) in got.1.iter().zip(&want.1) {
                prop_assert_eq!(g.node, w.node);
                prop_assert_eq!(g.pair, w.pair);
            }
            prop_assert_eq!(got.2, want.2);
        }
    }

    #[test]
    fn a_whole_response_gives_back_the_data() {
        let (data, root, ob) = blob(200_000);
        let all = crate::content::all();
        let encoded = encode(&data, root, &ob, &all);
        let cuts: Vec<usize> = (1..encoded.len()).step_by(8_952).collect();
        let d = decode_chunks(root, 200_000, &all, split(&encoded, &cuts));
        assert!(d.failed.is_none());
        let mut got = Vec::new();
        for item in &d.items {
            if let BaoContentItem::Leaf(l) = item {
                assert_eq!(l.offset, got.len() as u64);
                got.extend_from_slice(&l.data);
            }
        }
        assert_eq!(got, data);
        assert_eq!(&d.data[..], &data[..]);
    }

    #[test]
    fn ranges_past_the_end_are_answered_as_the_reference_decoder_answers_them() {
        // They select the last chunk (wire.md §3.3): part of a group.
        for (size, start) in [(1usize, 16u64), (5_000, 40), (100_000, 300)] {
            let (data, root, ob) = blob(size);
            let ranges = ChunkRanges::from(ChunkNum(start)..ChunkNum(start + 16));
            let encoded = encode(&data, root, &ob, &ranges);
            let want = reference(root, size as u64, &ranges, &encoded);
            let got = ours(root, size as u64, &ranges, split(&encoded, &[7, 100]));
            assert_eq!(got.0, want.0, "size {size}");
            assert_eq!(got.2, want.2, "size {size}");
            assert!(got.2.is_none() && !got.0.is_empty(), "size {size}");
        }
    }

    #[test]
    fn a_blob_of_one_group_is_checked_against_the_root() {
        let (data, root, ob) = blob(5_000);
        let all = crate::content::all();
        let mut encoded = encode(&data, root, &ob, &all);
        let d = decode_chunks(root, 5_000, &all, vec![Bytes::from(encoded.clone())]);
        assert!(d.failed.is_none());
        assert_eq!(d.items.len(), 1);
        encoded[4_999] ^= 1;
        let d = decode_chunks(root, 5_000, &all, vec![Bytes::from(encoded)]);
        assert!(matches!(
            d.failed,
            Some(DecodeError::LeafMismatch { offset: 0 })
        ));
        assert!(d.items.is_empty());
    }
}
