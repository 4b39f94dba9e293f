//! Range lists on the wire (§2.1): sorted boundaries, an odd count meaning
//! the last range runs to the end.

use serde::{Deserialize, Serialize};

use crate::content::{ChunkNum, ChunkRanges};

/// A set of ranges as strictly increasing boundaries `b0 < b1 < …`; pairs
/// `[b0, b1), [b2, b3), …`, and with an odd count the last range is
/// `[b_last, ∞)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRanges(Vec<u64>);

/// A malformed range list.
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
    pub fn from_boundaries(b: Vec<u64>) -> Self {
        Self(b)
    }

    /// The raw boundaries.
    pub fn boundaries(&self) -> &[u64] {
        &self.0
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.0.len().div_ceil(2)
    }

    /// Whether there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Check the invariants and the limit of `max` ranges.
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
    pub fn from_chunk_ranges(r: &ChunkRanges) -> Self {
        Self(r.boundaries().iter().map(|c| c.0).collect())
    }
}
