//! Every use of the metadata database runs inside [`Store::guard`].
//!
//! redb returns an error for most damage, but on some damaged pages it
//! panics inside its B-tree code instead. A panic in a library is a crash of
//! the program that embeds it, and of a node that serves thousands of
//! healthy blobs beside the one bad page. So a guard catches it, turns it
//! into [`StoreError::Damaged`] naming the database file, and marks the
//! store damaged: from then on every operation fails at once with the same
//! error, because redb's in-memory state after a panic is not to be trusted.
//! The blob files are never touched by this; salvage rebuilds the database
//! from them.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use super::{Store, StoreError};

thread_local! {
    /// The database file of the guard running on this thread, so that a
    /// corruption error converted deep inside names it.
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A [`StoreError::Damaged`] for the database the current guard protects.
pub(super) fn damaged(what: String) -> StoreError {
    let path = CURRENT
        .with(|c| c.borrow().clone())
        .unwrap_or_else(|| "swarm.redb".into());
    StoreError::Damaged { path, what }
}

impl Store {
    /// Run `f`, which uses the database, so that a panic inside redb or a
    /// corruption it reports becomes [`StoreError::Damaged`] and the store
    /// stops using the database. Guards nest.
    pub(super) fn guard<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if let Some(what) = self.damage() {
            return Err(StoreError::Damaged {
                path: self.inner.location.clone(),
                what,
            }
            .into());
        }
        let outer = CURRENT.with(|c| c.replace(Some(self.inner.location.clone())));
        let result = catch_unwind(AssertUnwindSafe(f));
        CURRENT.with(|c| *c.borrow_mut() = outer);
        match result {
            Ok(r) => r,
            Err(panic) => {
                let what = format!("the database failed inside: {}", panic_message(&*panic));
                self.mark_damaged(&what);
                Err(StoreError::Damaged {
                    path: self.inner.location.clone(),
                    what,
                }
                .into())
            }
        }
    }

    /// Stop using the database: it is damaged.
    pub(super) fn mark_damaged(&self, what: &str) {
        if !self.inner.damaged.swap(true, Ordering::SeqCst) {
            tracing::error!(
                path = %self.inner.location,
                "the store database is damaged ({what}); no more operations on it until it is repaired"
            );
            let mut d = self.inner.damage.lock().unwrap_or_else(|e| e.into_inner());
            *d = what.to_owned();
        }
    }

    /// Why the database is no longer used, if it is not.
    pub(super) fn damage(&self) -> Option<String> {
        if !self.inner.damaged.load(Ordering::SeqCst) {
            return None;
        }
        let d = self.inner.damage.lock().unwrap_or_else(|e| e.into_inner());
        Some(d.clone())
    }

    /// Whether the database was found damaged since this store was opened.
    ///
    /// ```
    /// let store = swarm_engine::store::Store::memory()?;
    /// assert!(!store.is_damaged());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_damaged(&self) -> bool {
        self.inner.damaged.load(Ordering::SeqCst)
    }
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown failure".into())
}
