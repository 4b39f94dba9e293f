//! The redb tables and the records stored in them (postcard-encoded).
//! Layout is described in `docs/store.md`.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::GroupSet;

/// hash -> [`BlobEntry`]
pub(super) const BLOBS: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("blobs");
/// hash -> bytes, for complete blobs of at most one group.
pub(super) const INLINE: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("inline");
/// root -> [`PinEntry`]
pub(super) const PINS: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("pins");
/// hash -> number of pins that reach it (absent = 0).
pub(super) const REFS: TableDefinition<'_, [u8; 32], u64> = TableDefinition::new("refs");
/// name -> secret bytes (the node key).
pub(super) const SECRETS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("secrets");
/// name -> value: format version and counters.
pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// The store layout version this code reads and writes.
pub(super) const STORE_VERSION: u64 = 1;

/// Where and how much of a blob is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum BlobEntry {
    /// Complete, bytes in [`INLINE`]; size at most one group.
    Inline { size: u64 },
    /// Bytes and outboard in blob files. `present` lists the verified groups
    /// for a partial blob; `None` means complete.
    File {
        size: u64,
        present: Option<GroupSet>,
    },
}

impl BlobEntry {
    pub(super) fn size(&self) -> u64 {
        match self {
            Self::Inline { size } | Self::File { size, .. } => *size,
        }
    }

    pub(super) fn is_complete(&self) -> bool {
        !matches!(
            self,
            Self::File {
                present: Some(_),
                ..
            }
        )
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        // Serializing plain enums of integers into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(super) fn decode(b: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(b)
    }
}

/// A pin: a named tag that keeps a root and everything it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PinEntry {
    pub(super) name: String,
    pub(super) size: u64,
    pub(super) files: u64,
    pub(super) created: u64,
}

impl PinEntry {
    pub(super) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(super) fn decode(b: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(b)
    }
}
