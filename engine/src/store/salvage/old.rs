//! Reading what is left of a damaged database: through redb where it still
//! opens, each table under `catch_unwind`, and by scanning the file's leaf
//! pages where it does not. Everything read here is untrusted input; what
//! is kept either proves itself (an inline blob by its hash, a release mark
//! by its signature) or is checked later against what does.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable};

use super::super::guard::panic_message;
use super::super::now_secs;
use super::super::releases::{ROOT_PINS, ROOTS, SEEN, SeenEntry as OldSeen, TRUST};
use super::super::tables::{INLINE, META, PINS, PinEntry, SECRETS};
use crate::content::{GROUP_SIZE, Hash};
use crate::release::{PublicKey, SignedRelease};

/// Longest trust label or secret name taken from the old database.
const MAX_LABEL: usize = 1024;
/// Largest leaf read when scanning pages: a leaf holds at most a few
/// inline blobs of 16 KiB.
const MAX_LEAF: usize = 1 << 20;

/// What was read from the old database.
#[derive(Debug, Default)]
pub(super) struct Old {
    pub(super) version: Option<u64>,
    pub(super) inline: BTreeMap<Hash, Vec<u8>>,
    /// `None` when the table could not be read whole.
    pub(super) pins: Option<Vec<(Hash, Option<String>)>>,
    /// Pin names found on pages, by root: untrusted until the root turns
    /// out to be a recovered manifest with matching size and file count.
    pub(super) page_pins: BTreeMap<Hash, Vec<PinEntry>>,
    pub(super) secrets: BTreeMap<String, [u8; 32]>,
    pub(super) trusted: Option<Vec<(PublicKey, String)>>,
    pub(super) trust_on_pages: BTreeMap<PublicKey, String>,
    /// Chains of roots that verified, when that table could be read whole
    /// (an older copy on a page would roll a rotation back).
    pub(super) roots: Option<Vec<crate::release::Chain>>,
    /// Pinned fingerprints, when that table could be read whole.
    pub(super) fingerprints: Option<Vec<(Hash, String)>>,
    pub(super) seen: Vec<SignedRelease>,
    pub(super) open_error: Option<String>,
    pub(super) problems: Vec<String>,
}

/// Read what can be read of the old database, from a scratch copy so the
/// moved-aside file stays as it was found (redb repairs what it opens).
pub(super) fn read_old(dir: &Path, db_path: &Path) -> io::Result<Old> {
    let scratch = dir.join("tmp").join(format!("salvage-{}.redb", now_secs()));
    fs::create_dir_all(dir.join("tmp"))?;
    fs::copy(db_path, &scratch)?;
    let mut old = Old::default();
    let opened = catch_unwind(AssertUnwindSafe(|| redb::Builder::new().open(&scratch)));
    let db = match opened {
        Ok(Ok(db)) => Some(db),
        Ok(Err(e)) => {
            old.open_error = Some(e.to_string());
            None
        }
        Err(panic) => {
            old.open_error = Some(format!("redb failed inside: {}", panic_message(&*panic)));
            None
        }
    };
    let mut whole_inline = false;
    let mut whole_secrets = false;
    let mut whole_seen = false;
    if let Some(db) = &db {
        old.version = read_table(db, "meta", &mut old.problems, |tx, out| {
            let t = tx.open_table(META)?;
            if let Some(v) = t.get("version")? {
                out.push(v.value());
            }
            Ok(())
        })
        .0
        .first()
        .copied();
        let (inline, whole) = read_table(db, "inline blobs", &mut old.problems, |tx, out| {
            let t = tx.open_table(INLINE)?;
            for item in t.iter()? {
                let (k, v) = item?;
                out.push((Hash::from_bytes(k.value()), v.value().to_vec()));
            }
            Ok(())
        });
        whole_inline = whole;
        for (hash, bytes) in inline {
            keep_inline(&mut old.inline, hash, bytes);
        }
        let (pins, whole) = read_table(db, "pins", &mut old.problems, |tx, out| {
            let t = tx.open_table(PINS)?;
            for item in t.iter()? {
                let (k, v) = item?;
                let name = PinEntry::decode(v.value())
                    .ok()
                    .map(|p| p.name)
                    .filter(|n| n.len() <= MAX_LABEL);
                out.push((Hash::from_bytes(k.value()), name));
            }
            Ok(())
        });
        if whole {
            old.pins = Some(pins);
        }
        let (secrets, whole) = read_table(db, "secrets", &mut old.problems, |tx, out| {
            let t = tx.open_table(SECRETS)?;
            for item in t.iter()? {
                let (k, v) = item?;
                out.push((k.value().to_owned(), v.value().to_vec()));
            }
            Ok(())
        });
        whole_secrets = whole;
        for (name, value) in secrets {
            keep_secret(&mut old.secrets, name.as_bytes(), &value);
        }
        let (trusted, whole) = read_table(db, "trusted keys", &mut old.problems, |tx, out| {
            let t = tx.open_table(TRUST)?;
            for item in t.iter()? {
                let (k, v) = item?;
                let label = v.value();
                if let Some(pk) =
                    PublicKey::from_bytes(k.value()).filter(|_| label.len() <= MAX_LABEL)
                {
                    out.push((pk, label.to_owned()));
                }
            }
            Ok(())
        });
        if whole {
            old.trusted = Some(trusted);
        }
        let (roots, whole) = read_table(db, "chains of roots", &mut old.problems, |tx, out| {
            let t = tx.open_table(ROOTS)?;
            for item in t.iter()? {
                let (_, v) = item?;
                // Each chain proves itself by its signatures.
                if let Ok(c) = crate::release::Chain::from_text(v.value()) {
                    out.push(c);
                }
            }
            Ok(())
        });
        if whole {
            old.roots = Some(roots);
        }
        let (pins, whole) = read_table(
            db,
            "pinned root fingerprints",
            &mut old.problems,
            |tx, out| {
                let t = tx.open_table(ROOT_PINS)?;
                for item in t.iter()? {
                    let (k, v) = item?;
                    if v.value().len() <= MAX_LABEL {
                        out.push((Hash::from_bytes(k.value()), v.value().to_owned()));
                    }
                }
                Ok(())
            },
        );
        if whole {
            old.fingerprints = Some(pins);
        }
        let (seen, whole) = read_table(
            db,
            "release high-water marks",
            &mut old.problems,
            |tx, out| {
                let t = tx.open_table(SEEN)?;
                for item in t.iter()? {
                    let (k, v) = item?;
                    out.push((k.value().to_vec(), v.value().to_vec()));
                }
                Ok(())
            },
        );
        whole_seen = whole;
        for (key, value) in seen {
            if let Some(s) = verified_seen(&key, &value) {
                old.seen.push(s);
            }
        }
    }
    drop(db);
    if !(whole_inline && old.pins.is_some() && whole_secrets && whole_seen) {
        // Pages are read directly for what proves itself, or is checked
        // against what does: inline blobs by hash, pin names against
        // recovered manifests, release marks by signature. Not trust
        // entries: an old page can hold a key since distrusted.
        let file = fs::File::open(&scratch)?;
        let mut page_seen = Vec::new();
        scan_pages(
            &file,
            |k, v| {
                let hash = Hash::from_bytes(*k);
                if !whole_inline {
                    keep_inline(&mut old.inline, hash, v.to_vec());
                }
                if old.pins.is_none()
                    && let Ok((p, [])) = postcard::take_from_bytes::<PinEntry>(v)
                    && p.name.len() <= MAX_LABEL
                {
                    old.page_pins.entry(hash).or_default().push(p);
                } else if old.trusted.is_none()
                    && Hash::of(v) != hash
                    && let Some(label) = plain_label(v)
                    && let Some(pk) = PublicKey::from_bytes(*k)
                {
                    old.trust_on_pages.insert(pk, label);
                }
            },
            |k, v| {
                if !whole_secrets {
                    keep_secret(&mut old.secrets, k, v);
                }
                if !whole_seen && let Some(s) = verified_seen(k, v) {
                    page_seen.push(s);
                }
            },
        )?;
        old.seen.extend(page_seen);
        if old.pins.is_none() {
            old.problems.push(
                "the pins table could not be read whole: every complete manifest is pinned".into(),
            );
        }
        if old.trusted.is_none() {
            old.problems.push(
                "the trusted publisher keys could not be read whole: trust them again".into(),
            );
        }
        if old.roots.is_none() {
            old.problems.push(
                "the chains of roots of threshold publishers could not be read whole: releases \
                 carry them, and are taught again by the next release accepted"
                    .into(),
            );
        }
        if old.fingerprints.is_none() {
            old.problems.push(
                "the pinned root fingerprints could not be read whole: pin them again".into(),
            );
        }
        if !whole_seen {
            old.problems.push(
                "the release high-water marks could not be read whole: those not found start again at the next release accepted".into(),
            );
        }
    }
    let _ = fs::remove_file(&scratch);
    Ok(old)
}

/// Run `read` on a read transaction of `db`, catching a panic inside redb.
/// Returns what was read before any failure, and whether the read finished.
/// A table that does not exist reads as empty and whole.
fn read_table<T>(
    db: &redb::Database,
    what: &str,
    problems: &mut Vec<String>,
    read: impl FnOnce(&redb::ReadTransaction, &mut Vec<T>) -> Result<(), ReadFail>,
) -> (Vec<T>, bool) {
    let mut out = Vec::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let tx = db.begin_read()?;
        read(&tx, &mut out)
    }));
    let failure = match result {
        Ok(Ok(()) | Err(ReadFail::Missing)) => return (out, true),
        Ok(Err(ReadFail::Failed(e))) => e,
        Err(panic) => format!("redb failed inside: {}", panic_message(&*panic)),
    };
    problems.push(format!(
        "{what}: read {} record{} before a failure ({failure})",
        out.len(),
        if out.len() == 1 { "" } else { "s" }
    ));
    (out, false)
}

/// Why reading a table of the old database stopped.
enum ReadFail {
    /// The table was never created: nothing to read.
    Missing,
    Failed(String),
}

impl From<redb::TableError> for ReadFail {
    fn from(e: redb::TableError) -> Self {
        match e {
            redb::TableError::TableDoesNotExist(_) => Self::Missing,
            other => Self::Failed(other.to_string()),
        }
    }
}

macro_rules! read_fails {
    ($($t:ty),*) => {$(
        impl From<$t> for ReadFail {
            fn from(e: $t) -> Self {
                Self::Failed(e.to_string())
            }
        }
    )*};
}
read_fails!(redb::StorageError, redb::TransactionError);

/// A trust label as `trust` stores it: printable text of bounded length.
fn plain_label(v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?;
    (!s.is_empty() && s.len() <= MAX_LABEL && !s.chars().any(char::is_control))
        .then(|| s.to_owned())
}

fn keep_inline(inline: &mut BTreeMap<Hash, Vec<u8>>, hash: Hash, bytes: Vec<u8>) {
    if bytes.len() as u64 <= GROUP_SIZE && Hash::of(&bytes) == hash {
        inline.insert(hash, bytes);
    }
}

fn keep_secret(secrets: &mut BTreeMap<String, [u8; 32]>, name: &[u8], value: &[u8]) {
    let (Ok(name), Ok(value)) = (std::str::from_utf8(name), <[u8; 32]>::try_from(value)) else {
        return;
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if !name.is_empty() && name.len() <= 64 && name.chars().all(plain) {
        secrets.entry(name.to_owned()).or_insert(value);
    }
}

/// A release high-water record whose token verifies and agrees with the
/// record's key, sequence and record hash.
fn verified_seen(key: &[u8], value: &[u8]) -> Option<SignedRelease> {
    let (entry, []) = postcard::take_from_bytes::<OldSeen>(value).ok()? else {
        return None;
    };
    let signed = SignedRelease::from_token(&entry.token).ok()?;
    let r = signed.release();
    let mut want = r.publisher.as_bytes().to_vec();
    want.extend_from_slice(r.name.as_bytes());
    want.push(0);
    want.extend_from_slice(r.channel.as_bytes());
    (want == key && r.seq == entry.seq && *signed.record_hash().as_bytes() == entry.record)
        .then_some(signed)
}

/// Walk every 4 KiB page of a redb file and hand each key-value pair of
/// anything shaped like a B-tree leaf (design.md, "Leaf page") to `fixed`
/// (32-byte keys) or `var` (variable keys). No redb code runs, so nothing
/// here can panic on damage; what is found is untrusted and the callers
/// check it.
fn scan_pages(
    file: &fs::File,
    mut fixed: impl FnMut(&[u8; 32], &[u8]),
    mut var: impl FnMut(&[u8], &[u8]),
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const PAGE: u64 = 4096;
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; PAGE as usize];
    let mut off = 0;
    while off < len {
        let n = file.read_at(&mut buf[..PAGE as usize], off)?;
        off += PAGE;
        if n < 4 || buf[0] != 1 {
            continue;
        }
        let pairs = usize::from(u16::from_le_bytes([buf[2], buf[3]]));
        if pairs == 0 {
            continue;
        }
        // The leaf may be larger than one page: read as far as its last
        // offset says, within bounds.
        let end = leaf_end(&buf[..n], pairs).min(MAX_LEAF);
        let page = if end > n {
            let mut big = vec![0u8; end];
            let got = file.read_at(&mut big, off - PAGE)?;
            big.truncate(got);
            big
        } else {
            buf[..n].to_vec()
        };
        if let Some(items) = leaf_fixed_key(&page, pairs) {
            for (k, v) in items {
                fixed(k, v);
            }
        }
        if let Some(items) = leaf_var_key(&page, pairs) {
            for (k, v) in items {
                var(k, v);
            }
        }
    }
    Ok(())
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// The largest end offset either leaf layout could claim.
fn leaf_end(b: &[u8], pairs: usize) -> usize {
    let a = u32_at(b, 4 + 4 * (pairs - 1)).unwrap_or(0);
    let v = u32_at(b, 4 + 4 * pairs + 4 * (pairs - 1)).unwrap_or(0);
    a.max(v)
}

/// Pairs of a leaf with 32-byte keys and variable values: `value_end` per
/// pair, then the keys, then the values.
fn leaf_fixed_key(b: &[u8], pairs: usize) -> Option<Vec<(&[u8; 32], &[u8])>> {
    let keys = 4 + 4 * pairs;
    let mut start = keys + 32 * pairs;
    let mut out = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let end = u32_at(b, 4 + 4 * i)?;
        let v = b.get(start..end)?;
        let k = b.get(keys + 32 * i..keys + 32 * (i + 1))?.try_into().ok()?;
        out.push((k, v));
        start = end;
    }
    Some(out)
}

/// Pairs of a leaf with variable keys and values: `key_end` per pair, then
/// `value_end` per pair, then the keys, then the values.
fn leaf_var_key(b: &[u8], pairs: usize) -> Option<Vec<(&[u8], &[u8])>> {
    let mut key_start = 4 + 8 * pairs;
    let mut keys = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let end = u32_at(b, 4 + 4 * i)?;
        keys.push(b.get(key_start..end)?);
        key_start = end;
    }
    let mut start = key_start;
    let mut out = Vec::with_capacity(pairs);
    for (i, k) in keys.into_iter().enumerate() {
        let end = u32_at(b, 4 + 4 * pairs + 4 * i)?;
        out.push((k, b.get(start..end)?));
        start = end;
    }
    Some(out)
}
