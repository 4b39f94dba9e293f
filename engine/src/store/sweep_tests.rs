//! The page-corruption sweep: a real store on disk, one 4 KiB page of its
//! database overwritten with garbage at a time. Every case must end in a
//! clean result or a clean error, never a panic out of the store, and then
//! in a salvage that recovers every intact blob file and every root whose
//! blobs survived.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use super::*;
use crate::content::group_ranges;
use crate::release::{Policy, Release, SecretKey, Want};

const PAGE: u64 = 4096;
/// Header pages always swept, then this many spread over the rest.
const HEADER_PAGES: u64 = 4;
const SPREAD: u64 = 56;

fn data(seed: u64, n: usize) -> Vec<u8> {
    crate::testutil::data(seed, n)
}

/// A root as added: its name and the files it must export.
struct Root {
    root: Hash,
    name: String,
    files: BTreeMap<String, Vec<u8>>,
    /// Its blobs stored inline (the manifest among them, when small).
    inline: BTreeSet<Hash>,
}

struct Fixture {
    _src: tempfile::TempDir,
    dir: tempfile::TempDir,
    roots: Vec<Root>,
    /// Every complete blob held in a file.
    file_blobs: BTreeSet<Hash>,
    partial: (Hash, GroupSet),
    node_key: [u8; 32],
    publisher: crate::release::PublicKey,
}

fn write_tree(base: &Path, files: &[(&str, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (p, d) in files {
        let path = base.join(p);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(&path, d).expect("write");
        out.insert((*p).to_owned(), d.clone());
    }
    out
}

/// A root to add: its top-level name and its files.
type Spec = (&'static str, Vec<(String, Vec<u8>)>);

fn fixture() -> Fixture {
    let src = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let mut specs: Vec<Spec> = vec![
        (
            "docs",
            vec![
                ("docs/big.bin".into(), data(1, 300_000)),
                ("docs/mid.bin".into(), data(2, 40_000)),
                ("docs/readme.md".into(), b"# read me\n".to_vec()),
            ],
        ),
        ("movie.bin", vec![("movie.bin".into(), data(3, 1 << 20))]),
        (
            "note.txt",
            vec![("note.txt".into(), b"a small note".to_vec())],
        ),
    ];
    // Many small files: inline blobs over many pages, and a manifest that
    // is a file blob itself.
    let many: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| {
            (
                format!("many/f{i:03}.txt"),
                data(100 + i, 200 + (i as usize * 37) % 3000),
            )
        })
        .collect();
    specs.push(("many", many));
    let mut roots = Vec::new();
    for (name, files) in &specs {
        let files: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
        let written = write_tree(src.path(), &files);
        let added = store
            .add_paths(&[src.path().join(name)], &AddOptions::default())
            .expect("add");
        let m = store.manifest(&added.root).expect("manifest");
        let inline = std::iter::once(added.root)
            .chain(m.blobs())
            .filter(|h| matches!(store.entry(h), Ok(Some(BlobEntry::Inline { .. }))))
            .collect();
        roots.push(Root {
            root: added.root,
            name: (*name).to_owned(),
            files: written,
            inline,
        });
    }
    // A blob received in part: groups 0..3 of 10.
    let seeder = Store::memory().expect("memory");
    let partial_data = data(7, 160_000);
    let ph = seeder.put_blob(&partial_data).expect("put");
    let mut encoded = Vec::new();
    seeder
        .encode_ranges(&ph, &group_ranges(0, 3), &mut encoded)
        .expect("encode");
    let mut pb = store.partial(ph, 160_000).expect("partial");
    pb.write_response(&group_ranges(0, 3), &encoded[..])
        .expect("write");
    pb.flush().expect("flush");
    drop(pb);
    let node_key = store.secret("node-key", || Ok([42; 32])).expect("secret");
    let key = SecretKey::from_seed(&[5; 32]);
    store
        .trust(&key.public(), "sweep publisher")
        .expect("trust");
    let signed = Release {
        publisher: key.public(),
        name: "app".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, 4, 0),
        seq: 4,
        root: roots[0].root,
        size: 1234,
        created: 1_800_000_000,
        expires: None,
        rollout: Default::default(),
    }
    .sign(&key)
    .expect("sign");
    let policy = store.policy(Policy::default()).expect("policy");
    store
        .accept_release(&policy, &signed, &Want::default())
        .expect("accept");
    let file_blobs = store
        .file_blobs()
        .expect("file blobs")
        .into_iter()
        .filter(|h| *h != ph)
        .collect();
    assert!(store.check(|_| {}).expect("check").problems.is_empty());
    drop(store);
    let mut groups = GroupSet::new();
    groups.insert(0, 3);
    Fixture {
        _src: src,
        dir,
        roots,
        file_blobs,
        partial: (ph, groups),
        node_key,
        publisher: key.public(),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Overwrite page `page` of the database with garbage that depends on it.
fn damage(db: &Path, page: u64) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(db)
        .expect("open db");
    f.write_all_at(&data(page + 1, PAGE as usize), page * PAGE)
        .expect("write garbage");
    f.sync_all().expect("sync");
}

/// The pages swept: the first few (headers) and an even spread of the rest.
fn sample(pages: u64) -> Vec<u64> {
    let mut out: BTreeSet<u64> = (0..HEADER_PAGES.min(pages)).collect();
    if pages > HEADER_PAGES {
        let rest = pages - HEADER_PAGES;
        for i in 0..SPREAD.min(rest) {
            out.insert(HEADER_PAGES + i * rest / SPREAD.min(rest));
        }
    }
    out.into_iter().collect()
}

/// Whether the files of `root` export from `store`, byte for byte.
fn exports(store: &Store, root: &Root, out: &Path) -> Result<bool, String> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).expect("mkdir");
    store
        .export(&root.root, out, &ExportOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(root
        .files
        .iter()
        .all(|(p, d)| fs::read(out.join(p)).ok().as_ref() == Some(d)))
}

/// Run `f`; an escaped panic is recorded as (page, method, message).
fn guarded<T>(
    panics: &mut Vec<(u64, &'static str, String)>,
    page: u64,
    method: &'static str,
    f: impl FnOnce() -> T,
) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(p) => {
            panics.push((page, method, guard::panic_message(&*p)));
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Before {
    NoEffect,
    ErrorAtOpen,
    ErrorAfterOpen,
    Panicked,
}

#[derive(Debug, Default)]
struct Tally {
    before: BTreeMap<Before, u64>,
    salvaged: u64,
    db_unopenable: u64,
    names_kept: u64,
    names_fallback: u64,
    roots_lost_inline: u64,
    key_kept: u64,
    trust_kept: u64,
    trust_reported: u64,
    seen_kept: u64,
}

#[test]
fn page_corruption_sweep() {
    let fx = fixture();
    let db = fx.dir.path().join("swarm.redb");
    let pages = fs::metadata(&db).expect("db").len() / PAGE;
    let work = tempfile::tempdir().expect("tempdir");
    let mut panics = Vec::new();
    let mut failures = Vec::new();
    let mut tally = Tally::default();
    let sampled = sample(pages);
    for &page in &sampled {
        let case = work.path().join(format!("p{page}"));
        copy_dir(fx.dir.path(), &case);
        damage(&case.join("swarm.redb"), page);
        let out = work.path().join("out");

        // Before salvage: whatever happens, it happens cleanly.
        let opened = guarded(&mut panics, page, "Store::open", || Store::open(&case));
        let before = match opened {
            None => Before::Panicked,
            Some(Err(_)) => Before::ErrorAtOpen,
            Some(Ok(store)) => {
                let mut clean = true;
                let mut escaped = false;
                match guarded(&mut panics, page, "Store::check", || store.check(|_| {})) {
                    Some(Ok(r)) => clean &= r.problems.is_empty(),
                    Some(Err(_)) => clean = false,
                    None => escaped = true,
                }
                match guarded(&mut panics, page, "Store::pins", || store.pins()) {
                    Some(Ok(p)) => clean &= p.len() == fx.roots.len(),
                    Some(Err(_)) => clean = false,
                    None => escaped = true,
                }
                for r in &fx.roots {
                    match guarded(&mut panics, page, "Store::export", || {
                        exports(&store, r, &out)
                    }) {
                        // Nothing unverified ever leaves the store.
                        Some(Ok(false)) => failures.push(format!(
                            "page {page}: export of {} succeeded with wrong bytes",
                            r.name
                        )),
                        Some(Ok(true)) => {}
                        Some(Err(_)) => clean = false,
                        None => escaped = true,
                    }
                }
                drop(store);
                if escaped {
                    Before::Panicked
                } else if clean {
                    Before::NoEffect
                } else {
                    Before::ErrorAfterOpen
                }
            }
        };
        *tally.before.entry(before).or_default() += 1;

        // Salvage: always succeeds, and loses nothing that survived.
        let report = match guarded(&mut panics, page, "Store::salvage", || {
            Store::salvage(&case, |_| {})
        }) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                failures.push(format!("page {page}: salvage failed: {e}"));
                continue;
            }
            None => continue,
        };
        tally.salvaged += 1;
        tally.db_unopenable += u64::from(report.old.open_error.is_some());
        let complete: BTreeSet<Hash> = report.complete.iter().copied().collect();
        let missing: Vec<_> = fx.file_blobs.difference(&complete).collect();
        if !missing.is_empty() {
            failures.push(format!(
                "page {page}: intact blob files not recovered: {missing:?}"
            ));
        }
        let (ph, groups) = &fx.partial;
        let kept = report.partial.iter().find(|p| p.hash == *ph);
        if !kept.is_some_and(|p| {
            groups
                .ranges()
                .iter()
                .all(|(s, e)| p.groups.covers_range(*s, *e))
        }) {
            failures.push(format!(
                "page {page}: the partial blob's groups were not kept: {kept:?}"
            ));
        }
        let Ok(store) = Store::open(&case) else {
            failures.push(format!("page {page}: the salvaged store does not open"));
            continue;
        };
        match store.check(|_| {}) {
            Ok(r) if r.problems.is_empty() => {}
            other => failures.push(format!("page {page}: check after salvage: {other:?}")),
        }
        for r in &fx.roots {
            if !r.inline.is_subset(&complete) {
                tally.roots_lost_inline += 1;
                continue;
            }
            match report.pins.iter().find(|p| p.root == r.root) {
                Some(p) if p.name == r.name => tally.names_kept += 1,
                Some(_) => tally.names_fallback += 1,
                None => failures.push(format!("page {page}: {} was not pinned again", r.name)),
            }
            match exports(&store, r, &out) {
                Ok(true) => {}
                other => failures.push(format!("page {page}: {} after salvage: {other:?}", r.name)),
            }
        }
        tally.key_kept +=
            u64::from(store.secret("node-key", || Ok([0; 32])).ok() == Some(fx.node_key));
        tally.trust_kept += u64::from(
            store
                .trusted()
                .is_ok_and(|t| t.iter().any(|(k, _)| *k == fx.publisher)),
        );
        tally.trust_reported += u64::from(
            report
                .old
                .trust_on_pages
                .iter()
                .any(|(k, l)| *k == fx.publisher && l == "sweep publisher"),
        );
        tally.seen_kept += u64::from(
            store
                .release_seen(&fx.publisher, "app", "stable")
                .ok()
                .flatten()
                .is_some_and(|s| s.seq == 4),
        );
        drop(store);
        let _ = fs::remove_dir_all(&case);
    }

    let n = sampled.len() as u64;
    let get = |b| tally.before.get(&b).copied().unwrap_or(0);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "page sweep: {n} of {pages} pages of a {} KiB store",
        pages * 4
    );
    let _ = writeln!(table, "| before salvage | pages |\n|---|---|");
    let _ = writeln!(table, "| no effect | {} |", get(Before::NoEffect));
    let _ = writeln!(
        table,
        "| clean error at open | {} |",
        get(Before::ErrorAtOpen)
    );
    let _ = writeln!(
        table,
        "| clean error in check, pins or export | {} |",
        get(Before::ErrorAfterOpen)
    );
    let _ = writeln!(table, "| panic escaped | {} |", get(Before::Panicked));
    let _ = writeln!(table, "| salvage | cases |\n|---|---|");
    let _ = writeln!(table, "| succeeded | {} of {n} |", tally.salvaged);
    let _ = writeln!(
        table,
        "| database unopenable, pages scanned | {} |",
        tally.db_unopenable
    );
    let _ = writeln!(
        table,
        "| roots restored under their name / a fallback name | {} / {} |",
        tally.names_kept, tally.names_fallback
    );
    let _ = writeln!(
        table,
        "| roots lost with an inline page | {} |",
        tally.roots_lost_inline
    );
    let _ = writeln!(
        table,
        "| node key / trust / release mark kept | {} / {} / {} |",
        tally.key_kept, tally.trust_kept, tally.seen_kept
    );
    let _ = writeln!(
        table,
        "| trusted key found on pages, reported not restored | {} |",
        tally.trust_reported
    );
    println!("{table}");
    let mut msg = String::new();
    for (page, method, what) in &panics {
        let _ = writeln!(msg, "page {page}: {method} panicked: {what}");
    }
    for f in &failures {
        let _ = writeln!(msg, "{f}");
    }
    assert!(msg.is_empty(), "{table}\n{msg}");
}
