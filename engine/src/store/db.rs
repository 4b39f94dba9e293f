//! The metadata database, opened for writing or only for reading.
//!
//! redb rewrites its header and its saved allocator state every time a
//! database opened for writing is closed, even when no transaction wrote
//! anything, and marks the file as needing repair while it is open. Commands
//! that only read a store (listing, checking, exporting) therefore open it
//! read-only: they never change the file, and a crash or a damaged page met
//! while reading cannot make it worse.

use super::StoreError;

/// A redb database of either kind.
pub(super) enum Db {
    /// Opened for reading and writing.
    Write(redb::Database),
    /// Opened for reading only; every write fails with
    /// [`StoreError::ReadOnly`].
    Read(redb::ReadOnlyDatabase),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Write(db) => f.debug_tuple("Write").field(db).finish(),
            Self::Read(_) => f.write_str("Read(..)"),
        }
    }
}

impl Db {
    pub(super) fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        use redb::ReadableDatabase;
        match self {
            Self::Write(db) => db.begin_read(),
            Self::Read(db) => db.begin_read(),
        }
    }

    pub(super) fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        match self {
            Self::Write(db) => Ok(db.begin_write()?),
            Self::Read(_) => Err(StoreError::ReadOnly),
        }
    }

    pub(super) fn is_read_only(&self) -> bool {
        matches!(self, Self::Read(_))
    }
}
