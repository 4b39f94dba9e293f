//! A Bao range response from an untrusted peer, checked against a fixed root.
//!
//! Input: byte 0 picks a group range of the fixed 100,000-byte blob (7 groups,
//! the last one short): start = b % 7, len = 1 + (b / 7) % 7 groups (ranges
//! running past the end are clipped by the tree). The rest is the encoded
//! stream. Every leaf the decoder yields must be the blob's own bytes and lie
//! inside the requested groups; if the stream starts with the honest encoding
//! of the range, decoding must also succeed and deliver the whole range.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use swarm_engine::content::{self, BaoContentItem, ChunkRanges, GROUP_SIZE, Hash};

const SIZE: u64 = 100_000;
const GROUPS: u64 = SIZE.div_ceil(GROUP_SIZE);

struct Fixture {
    blob: Vec<u8>,
    root: Hash,
    /// Honest encoding of each (start, len) selection, indexed by selector % 49.
    honest: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // 251 is prime and does not divide the group size, so no two groups
        // hold the same bytes and a leaf moved to another offset fails to match.
        let blob: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        let mut ob = Vec::new();
        let root = content::compute_outboard(&blob[..], SIZE, &mut ob).expect("hashing a Vec");
        let honest = (0..49u8)
            .map(|sel| {
                let (ranges, _, _) = select(sel);
                let mut enc = Vec::new();
                content::encode_ranges(
                    &blob[..],
                    content::outboard(root, SIZE, &ob[..]),
                    &ranges,
                    &mut enc,
                )
                .expect("encoding the fixture");
                enc
            })
            .collect();
        Fixture { blob, root, honest }
    })
}

/// The ranges a selector byte asks for, and the group span `start..end`
/// clipped to the blob.
fn select(b: u8) -> (ChunkRanges, u64, u64) {
    let b = u64::from(b);
    let start = b % GROUPS;
    let end = start + 1 + (b / GROUPS) % GROUPS;
    (content::group_ranges(start, end), start, end.min(GROUPS))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let (ranges, start, end) = select(sel);
    let want = start * GROUP_SIZE..(end * GROUP_SIZE).min(SIZE);

    let mut next = want.start;
    let mut failed = None;
    for item in content::decode_ranges(f.root, SIZE, &ranges, stream) {
        match item {
            Ok(BaoContentItem::Leaf(leaf)) => {
                let lo = leaf.offset;
                let hi = lo + leaf.data.len() as u64;
                assert!(
                    want.start <= lo && hi <= want.end,
                    "leaf {lo}..{hi} outside the requested bytes {want:?}"
                );
                assert_eq!(lo, next, "leaves out of order or with a gap");
                assert!(
                    leaf.data[..] == f.blob[lo as usize..hi as usize],
                    "unverified data yielded at {lo}..{hi}"
                );
                next = hi;
            }
            Ok(BaoContentItem::Parent(_)) => {}
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }

    let honest = &f.honest[usize::from(sel % 49)];
    if stream.starts_with(honest) {
        assert!(failed.is_none(), "honest stream refused: {failed:?}");
        assert_eq!(next, want.end, "honest stream delivered only up to {next}");
    } else if failed.is_none() {
        // Succeeding on anything else is fine only if it delivered the range.
        assert_eq!(next, want.end, "decode ended early without an error");
    }
});
