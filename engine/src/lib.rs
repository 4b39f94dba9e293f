//! `swarm-engine`: the library behind the `swarm` binary.
//!
//! Content is named by BLAKE3 root hashes and verified in 16 KiB chunk groups
//! with Bao trees ([`content`]); a node keeps what it holds in a crash-safe
//! redb blockstore ([`store`]).
//!
//! An application embeds a [`node::Node`] (from [`node::Node::builder`]):
//! it adds, publishes, fetches (with progress, pause, resume and cancel),
//! seeds and resolves signed releases ([`release`]) over QUIC ([`net`]),
//! finding peers on the mainline DHT ([`discovery`]); [`update`] keeps the
//! application itself up to date from the swarm, with rollback. The guide
//! is `docs/embedding.md`.
//!
//! ```
//! use swarm_engine::store::Store;
//!
//! let store = Store::memory()?;
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("hello.txt"), b"hello swarm")?;
//! let added = store.add_paths(&[dir.path().join("hello.txt")], &Default::default())?;
//! let out = tempfile::tempdir()?;
//! store.export(&added.root, out.path(), &Default::default())?;
//! assert_eq!(std::fs::read(out.path().join("hello.txt"))?, b"hello swarm");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod content;
pub mod discovery;
pub mod metrics;
pub mod mirror;
pub mod net;
pub mod node;
pub mod release;
pub mod store;
pub mod swarm;
pub mod ticket;
pub mod update;
pub mod wire;

#[cfg(test)]
mod messages_tests;
#[cfg(test)]
mod mirror_tests;
#[cfg(test)]
mod testutil;

/// `docs/embedding.md`, whose examples run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/embedding.md")]
pub struct EmbeddingGuide;

pub use content::Hash;

/// An error and its causes on one line, `outer: cause: root cause`, for
/// messages that must say what went wrong all the way down.
///
/// ```
/// use swarm_engine::release::SignedRelease;
///
/// let err = SignedRelease::from_token("swr1-not-a-token").unwrap_err();
/// let line = swarm_engine::error_chain(&err);
/// assert!(line.starts_with(&err.to_string()));
/// ```
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A byte count as people read it: `512 B`, `1.5 KiB`, `64.0 MiB`, in
/// binary units up to TiB.
///
/// ```
/// assert_eq!(swarm_engine::human_bytes(512), "512 B");
/// assert_eq!(swarm_engine::human_bytes(3 << 19), "1.5 MiB");
/// ```
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
