//! A set of 16 KiB group indices, kept as sorted disjoint ranges: compact for
//! the mostly-contiguous runs a download leaves behind.

use serde::{Deserialize, Serialize};

use crate::content::{self, ChunkRanges};

/// Sorted, disjoint, non-adjacent half-open ranges of group indices.
///
/// ```
/// use swarm_engine::content::GroupSet;
///
/// let mut held = GroupSet::new();
/// held.insert(0, 4);
/// held.insert(4, 6); // touches 0..4: merged
/// held.insert(10, 12);
/// assert_eq!(held.ranges(), &[(0, 6), (10, 12)]);
/// assert_eq!(held.count(), 8);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSet(Vec<(u64, u64)>);

impl GroupSet {
    /// The empty set.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let s = GroupSet::new();
    /// assert!(s.is_empty());
    /// assert_eq!(s, GroupSet::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The groups that chunk ranges `ranges` touch (a bounded set: ranges
    /// that run to the end are cut at the last chunk first).
    ///
    /// ```
    /// use swarm_engine::content::{ChunkNum, ChunkRanges, GroupSet};
    ///
    /// // Chunks 10..40 lie in groups 0, 1 and 2 (16 chunks to a group).
    /// let s = GroupSet::of_chunks(&ChunkRanges::from(ChunkNum(10)..ChunkNum(40)));
    /// assert_eq!(s.ranges(), &[(0, 3)]);
    /// ```
    pub fn of_chunks(ranges: &ChunkRanges) -> Self {
        let per = content::GROUP_SIZE / 1024;
        let mut s = Self::new();
        let b = ranges.boundaries();
        for pair in b.chunks(2) {
            let start = pair[0].0 / per;
            let end = pair.get(1).map_or(u64::MAX, |e| e.0.div_ceil(per));
            s.insert(start, end);
        }
        s
    }

    /// Add groups `start..end`.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let mut s = GroupSet::new();
    /// s.insert(5, 8);
    /// s.insert(0, 2);
    /// s.insert(1, 6); // bridges both
    /// assert_eq!(s.ranges(), &[(0, 8)]);
    /// s.insert(9, 9); // empty: nothing added
    /// assert_eq!(s.count(), 8);
    /// ```
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
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let mut s = GroupSet::new();
    /// s.insert(0, 4);
    /// s.insert(6, 8);
    /// assert!(s.covers_range(1, 4));
    /// assert!(!s.covers_range(3, 7)); // groups 4 and 5 are missing
    /// ```
    pub fn covers_range(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let i = self.0.partition_point(|&(_, b)| b <= start);
        self.0.get(i).is_some_and(|&(a, b)| a <= start && end <= b)
    }

    /// Add every group of `other`.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let (mut a, mut b) = (GroupSet::new(), GroupSet::new());
    /// a.insert(0, 2);
    /// b.insert(2, 5);
    /// a.union(&b);
    /// assert_eq!(a.ranges(), &[(0, 5)]);
    /// ```
    pub fn union(&mut self, other: &GroupSet) {
        for &(a, b) in &other.0 {
            self.insert(a, b);
        }
    }

    /// Whether group `g` is in the set.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let mut s = GroupSet::new();
    /// s.insert(3, 5);
    /// assert!(s.contains(3) && s.contains(4));
    /// assert!(!s.contains(5)); // ranges are half-open
    /// ```
    pub fn contains(&self, g: u64) -> bool {
        self.covers_range(g, g + 1)
    }

    /// Whether every group `0..n` is in the set.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let mut s = GroupSet::new();
    /// s.insert(0, 10);
    /// assert!(s.covers(10)); // a blob of 10 groups is complete
    /// assert!(!s.covers(11));
    /// assert!(GroupSet::new().covers(0));
    /// ```
    pub fn covers(&self, n: u64) -> bool {
        n == 0 || self.0.first().is_some_and(|&(a, b)| a == 0 && b >= n)
    }

    /// Number of groups in the set.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let mut s = GroupSet::new();
    /// s.insert(0, 3);
    /// s.insert(10, 12);
    /// assert_eq!(s.count(), 5);
    /// ```
    pub fn count(&self) -> u64 {
        self.0.iter().map(|&(a, b)| b - a).sum()
    }

    /// Whether the set is empty.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let mut s = GroupSet::new();
    /// assert!(s.is_empty());
    /// s.insert(7, 8);
    /// assert!(!s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges, sorted.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    ///
    /// let mut s = GroupSet::new();
    /// s.insert(8, 9);
    /// s.insert(0, 2);
    /// assert_eq!(s.ranges(), &[(0, 2), (8, 9)]);
    /// ```
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// As bao chunk ranges.
    ///
    /// ```
    /// use swarm_engine::content::{GroupSet, group_ranges};
    ///
    /// let mut s = GroupSet::new();
    /// s.insert(1, 3);
    /// // 16 chunks of 1 KiB per group.
    /// assert_eq!(s.to_chunk_ranges(), group_ranges(1, 3));
    /// ```
    pub fn to_chunk_ranges(&self) -> ChunkRanges {
        let mut r = ChunkRanges::empty();
        for &(a, b) in &self.0 {
            r |= content::group_ranges(a, b);
        }
        r
    }

    /// Whether the set is well formed: sorted, disjoint, non-adjacent, non-empty ranges.
    pub(crate) fn is_valid(&self) -> bool {
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
