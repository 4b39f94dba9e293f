//! Range lists on the wire (§2.1): sorted boundaries, an odd count meaning
//! the last range runs to the end. The one place they convert to and from
//! [`ChunkRanges`] (a `Get`'s chunk indices) and [`GroupSet`] (a `Have`'s
//! group indices).

use serde::{Deserialize, Serialize};

use crate::content::{self, ChunkNum, ChunkRanges, GroupSet};

/// A set of ranges as strictly increasing boundaries `b0 < b1 < …`; pairs
/// `[b0, b1), [b2, b3), …`, and with an odd count the last range is
/// `[b_last, ∞)`.
///
/// ```
/// use swarm_engine::content::{ChunkNum, ChunkRanges};
/// use swarm_engine::wire::WireRanges;
///
/// // Chunks 0..4, then 10 to the end.
/// let wire = WireRanges::from_boundaries(vec![0, 4, 10]);
/// let chunks = ChunkRanges::from(ChunkNum(0)..ChunkNum(4)) | ChunkRanges::from(ChunkNum(10)..);
/// assert_eq!(wire.to_chunk_ranges(), chunks);
/// assert_eq!(WireRanges::from_chunk_ranges(&chunks), wire);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRanges(Vec<u64>);

/// A malformed range list.
///
/// ```
/// use swarm_engine::wire::{RangeError, WireRanges};
///
/// let unsorted = WireRanges::from_boundaries(vec![8, 4]);
/// assert_eq!(unsorted.validate(16), Err(RangeError::NotSorted));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// Boundaries not strictly increasing.
    #[error("boundaries are not strictly increasing")]
    NotSorted,
    /// No ranges at all.
    #[error("empty range list")]
    Empty,
    /// More ranges than allowed.
    #[error("{count} ranges, at most {max} allowed")]
    TooMany {
        /// How many were sent.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl WireRanges {
    /// From raw boundaries (not checked; see [`Self::validate`]).
    ///
    /// ```
    /// use swarm_engine::wire::WireRanges;
    ///
    /// let r = WireRanges::from_boundaries(vec![0, 4, 10]);
    /// assert_eq!(r.boundaries(), &[0, 4, 10]);
    /// assert_eq!(r.validate(16), Ok(()));
    /// ```
    pub fn from_boundaries(b: Vec<u64>) -> Self {
        Self(b)
    }

    /// The raw boundaries.
    ///
    /// ```
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::wire::WireRanges;
    ///
    /// let r = WireRanges::from_chunk_ranges(&group_ranges(1, 2));
    /// assert_eq!(r.boundaries(), &[16, 32]);
    /// ```
    pub fn boundaries(&self) -> &[u64] {
        &self.0
    }

    /// Number of ranges.
    ///
    /// ```
    /// use swarm_engine::wire::WireRanges;
    ///
    /// assert_eq!(WireRanges::from_boundaries(vec![0, 4]).len(), 1);
    /// // An odd count: the last range runs to the end.
    /// assert_eq!(WireRanges::from_boundaries(vec![0, 4, 10]).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len().div_ceil(2)
    }

    /// Whether there are no ranges.
    ///
    /// ```
    /// use swarm_engine::wire::{RangeError, WireRanges};
    ///
    /// let none = WireRanges::default();
    /// assert!(none.is_empty());
    /// assert_eq!(none.validate(16), Err(RangeError::Empty));
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Check the invariants and the limit of `max` ranges.
    ///
    /// ```
    /// use swarm_engine::wire::{RangeError, WireRanges};
    ///
    /// let three = WireRanges::from_boundaries(vec![0, 1, 2, 3, 4]);
    /// assert_eq!(three.validate(3), Ok(()));
    /// assert_eq!(three.validate(2), Err(RangeError::TooMany { count: 3, max: 2 }));
    /// ```
    pub fn validate(&self, max: usize) -> Result<(), RangeError> {
        if self.0.is_empty() {
            return Err(RangeError::Empty);
        }
        if self.len() > max {
            return Err(RangeError::TooMany {
                count: self.len(),
                max,
            });
        }
        if self.0.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RangeError::NotSorted);
        }
        Ok(())
    }

    /// As chunk ranges.
    ///
    /// ```
    /// use swarm_engine::content::{ChunkNum, ChunkRanges};
    /// use swarm_engine::wire::WireRanges;
    ///
    /// let all = WireRanges::from_boundaries(vec![0]);
    /// assert_eq!(all.to_chunk_ranges(), ChunkRanges::from(ChunkNum(0)..));
    /// ```
    pub fn to_chunk_ranges(&self) -> ChunkRanges {
        let mut r = ChunkRanges::empty();
        for pair in self.0.chunks(2) {
            match pair {
                [a, b] => r |= ChunkRanges::from(ChunkNum(*a)..ChunkNum(*b)),
                [a] => r |= ChunkRanges::from(ChunkNum(*a)..),
                _ => {}
            }
        }
        r
    }

    /// From chunk ranges.
    ///
    /// ```
    /// use swarm_engine::content::group_ranges;
    /// use swarm_engine::wire::WireRanges;
    ///
    /// let r = WireRanges::from_chunk_ranges(&(group_ranges(0, 2) | group_ranges(5, 6)));
    /// assert_eq!(r.boundaries(), &[0, 32, 80, 96]);
    /// ```
    pub fn from_chunk_ranges(r: &ChunkRanges) -> Self {
        Self(r.boundaries().iter().map(|c| c.0).collect())
    }

    /// A `Have`'s group list (§3.2) of `groups`: its first `max` ranges, so a
    /// holding more fragmented than that lists only those.
    ///
    /// ```
    /// use swarm_engine::content::GroupSet;
    /// use swarm_engine::wire::WireRanges;
    ///
    /// let mut held = GroupSet::new();
    /// held.insert(0, 4);
    /// held.insert(10, 12);
    /// held.insert(20, 21);
    /// assert_eq!(WireRanges::from_groups(&held, 8).boundaries(), &[0, 4, 10, 12, 20, 21]);
    /// assert_eq!(WireRanges::from_groups(&held, 2).boundaries(), &[0, 4, 10, 12]);
    /// assert!(WireRanges::from_groups(&GroupSet::new(), 8).is_empty());
    /// ```
    pub fn from_groups(groups: &GroupSet, max: usize) -> Self {
        Self(
            groups
                .ranges()
                .iter()
                .take(max)
                .flat_map(|&(a, b)| [a, b])
                .collect(),
        )
    }

    /// A `Have`'s group list (§3.2) as a set of groups of a blob of `size`
    /// bytes: groups at or past its last one are dropped, and an open last
    /// range ends there.
    ///
    /// ```
    /// use swarm_engine::content::GROUP_SIZE;
    /// use swarm_engine::wire::WireRanges;
    ///
    /// // A blob of 10 groups; "2 to the end" is groups 2..10.
    /// let held = WireRanges::from_boundaries(vec![0, 1, 2]).to_groups(10 * GROUP_SIZE);
    /// assert_eq!(held.ranges(), &[(0, 1), (2, 10)]);
    /// // Groups the blob does not have are not held.
    /// let past = WireRanges::from_boundaries(vec![8, 40]).to_groups(10 * GROUP_SIZE);
    /// assert_eq!(past.ranges(), &[(8, 10)]);
    /// ```
    pub fn to_groups(&self, size: u64) -> GroupSet {
        let n = content::group_count(size).max(1);
        let mut set = GroupSet::new();
        for pair in self.0.chunks(2) {
            let (a, e) = (pair[0], pair.get(1).copied().unwrap_or(n));
            set.insert(a.min(n), e.min(n));
        }
        set
    }
}
