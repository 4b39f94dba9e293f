//! A set of 16 KiB group indices, kept as sorted disjoint ranges: compact for
//! the mostly-contiguous runs a download leaves behind.

use serde::{Deserialize, Serialize};

use crate::content::{self, ChunkRanges};

/// Sorted, disjoint, non-adjacent half-open ranges of group indices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSet(Vec<(u64, u64)>);

impl GroupSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add groups `start..end`.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Ranges that touch or overlap `start..end` form one run `lo..hi`;
        // merge them with it in place. Downloads insert in rough order, so
        // this is usually an append or an extension of one range.
        let lo = self.0.partition_point(|&(_, b)| b < start);
        let hi = self.0.partition_point(|&(a, _)| a <= end);
        if lo == hi {
            self.0.insert(lo, (start, end));
            return;
        }
        let s = start.min(self.0[lo].0);
        let e = end.max(self.0[hi - 1].1);
        self.0[lo] = (s, e);
        self.0.drain(lo + 1..hi);
    }

    /// Whether every group of `start..end` is in the set.
    pub fn covers_range(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let i = self.0.partition_point(|&(_, b)| b <= start);
        self.0.get(i).is_some_and(|&(a, b)| a <= start && end <= b)
    }

    /// Add every group of `other`.
    pub fn union(&mut self, other: &GroupSet) {
        for &(a, b) in &other.0 {
            self.insert(a, b);
        }
    }

    /// Whether group `g` is in the set.
    pub fn contains(&self, g: u64) -> bool {
        self.covers_range(g, g + 1)
    }

    /// Whether every group `0..n` is in the set.
    pub fn covers(&self, n: u64) -> bool {
        n == 0 || self.0.first().is_some_and(|&(a, b)| a == 0 && b >= n)
    }

    /// Number of groups in the set.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|&(a, b)| b - a).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// As bao chunk ranges.
    pub fn to_chunk_ranges(&self) -> ChunkRanges {
        let mut r = ChunkRanges::empty();
        for &(a, b) in &self.0 {
            r |= content::group_ranges(a, b);
        }
        r
    }

    /// Whether the set is well formed: sorted, disjoint, non-adjacent, non-empty ranges.
    pub(super) fn is_valid(&self) -> bool {
        self.0.iter().all(|&(a, b)| a < b) && self.0.windows(2).all(|w| w[0].1 < w[1].0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn matches_a_set_model(ops in prop::collection::vec((0u64..64, 0u64..8), 0..40)) {
            let mut s = GroupSet::new();
            let mut model = BTreeSet::new();
            for (a, len) in ops {
                s.insert(a, a + len);
                model.extend(a..a + len);
            }
            prop_assert!(s.is_valid());
            prop_assert_eq!(s.count(), model.len() as u64);
            for g in 0..80 {
                prop_assert_eq!(s.contains(g), model.contains(&g));
            }
            let n = (0..).find(|g| !model.contains(g)).unwrap();
            prop_assert!(s.covers(n));
            prop_assert!(!s.covers(n + 1));
        }
    }
}
