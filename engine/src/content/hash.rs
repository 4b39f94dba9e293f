//! The 32-byte BLAKE3 root hash that names every blob.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A BLAKE3 root hash: the name of a blob. Printed as 64 lowercase hex chars.
///
/// ```
/// use swarm_engine::Hash;
///
/// let h = Hash::of(b"abc");
/// assert_eq!(
///     h.to_string(),
///     "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
/// );
/// assert_eq!(h.to_string().parse::<Hash>()?, h);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The hash of `data`, as one blob.
    ///
    /// ```
    /// use swarm_engine::Hash;
    ///
    /// // The plain BLAKE3 hash: any BLAKE3 tool computes the same root.
    /// assert_eq!(Hash::of(b"abc"), Hash::from(blake3::hash(b"abc")));
    /// ```
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// Wrap raw bytes.
    ///
    /// ```
    /// use swarm_engine::Hash;
    ///
    /// let h = Hash::of(b"abc");
    /// assert_eq!(Hash::from_bytes(*h.as_bytes()), h);
    /// ```
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    ///
    /// ```
    /// use swarm_engine::Hash;
    ///
    /// let h = Hash::of(b"abc");
    /// assert_eq!(h.as_bytes(), blake3::hash(b"abc").as_bytes());
    /// ```
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex characters.
    ///
    /// ```
    /// use swarm_engine::Hash;
    ///
    /// let hex = Hash::of(b"abc").to_hex();
    /// assert_eq!(hex.len(), 64);
    /// assert!(hex.starts_with("6437b3ac"));
    /// ```
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl From<blake3::Hash> for Hash {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl From<Hash> for blake3::Hash {
    fn from(h: Hash) -> Self {
        blake3::Hash::from_bytes(h.0)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

/// A string that is not 64 hex characters.
///
/// ```
/// use swarm_engine::Hash;
/// use swarm_engine::content::ParseHashError;
///
/// let err: ParseHashError = "6437b3ac".parse::<Hash>().unwrap_err();
/// assert!(err.to_string().contains("expected 64 hex characters"));
/// // Either case is accepted.
/// let upper = Hash::of(b"abc").to_hex().to_uppercase();
/// assert_eq!(upper.parse::<Hash>()?, Hash::of(b"abc"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a root hash: expected 64 hex characters, got {got:?}")]
pub struct ParseHashError {
    got: String,
}

impl FromStr for Hash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseHashError {
            got: s.chars().take(80).collect(),
        };
        let b = s.as_bytes();
        if b.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or_else(err)?;
            let lo = hex_val(pair[1]).ok_or_else(err)?;
            out[i] = hi << 4 | lo;
        }
        Ok(Self(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = Hash::of(b"abc");
        assert_eq!(
            h.to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(h.to_hex().parse::<Hash>().unwrap(), h);
        assert_eq!(h.to_hex().to_uppercase().parse::<Hash>().unwrap(), h);
    }

    #[test]
    fn bad_hex_is_refused() {
        for s in ["", "abc", &"g".repeat(64), &"a".repeat(65), &"é".repeat(32)] {
            assert!(s.parse::<Hash>().is_err(), "{s}");
        }
    }
}
