//! Issue #12: nothing unverified leaves the store. Each test damages real
//! blob files on disk (an `FsBackend` in a temporary directory) the way rot,
//! a bad disk or another process would, and checks that the damage is found
//! where the bytes cross a boundary: a resumed download, serving, export.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::content::{self, GROUP_SIZE};

/// 62 groups, the last one short.
const SIZE: usize = 1_000_000;

fn data(n: usize) -> Vec<u8> {
    crate::testutil::data(12, n)
}

/// A seeder holding `bytes` as one blob.
fn seeder(bytes: &[u8]) -> (Store, Hash) {
    let src = Store::memory().unwrap();
    let hash = src.put_blob(bytes).unwrap();
    (src, hash)
}

fn encode(src: &Store, hash: &Hash, ranges: &ChunkRanges) -> Vec<u8> {
    let mut v = Vec::new();
    src.encode_ranges(hash, ranges, &mut v).unwrap();
    v
}

fn data_file(dir: &Path, hash: &Hash) -> PathBuf {
    let hex = hash.to_hex();
    dir.join("blobs")
        .join(&hex[..2])
        .join(format!("{hex}.data"))
}

/// Receive `ranges` of `hash` from `src` into the store at `dir`, then close it.
fn receive(dir: &Path, src: &Store, hash: Hash, ranges: &ChunkRanges) {
    let store = Store::open(dir).unwrap();
    let mut pb = store.partial(hash, SIZE as u64).unwrap();
    pb.write_response(ranges, &encode(src, &hash, ranges)[..])
        .unwrap();
    pb.flush().unwrap();
}

/// Zero 16 bytes at each offset, as the reproduction does.
fn zero_at(path: &Path, offsets: &[u64]) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    for &o in offsets {
        f.write_all_at(&[0u8; 16], o).unwrap();
    }
    f.sync_all().unwrap();
}

/// Finish receiving `hash` and return the blob's bytes as stored.
fn complete(store: &Store, src: &Store, hash: Hash) -> Vec<u8> {
    let mut pb = store.partial(hash, SIZE as u64).unwrap();
    let missing = pb.missing();
    pb.write_response(&missing, &encode(src, &hash, &missing)[..])
        .unwrap();
    assert!(pb.is_complete());
    drop(pb);
    store.read_blob(&hash, SIZE as u64).unwrap().unwrap()
}

#[test]
fn a_resumed_download_drops_groups_whose_bytes_changed_on_disk() {
    let bytes = data(SIZE);
    let (src, hash) = seeder(&bytes);
    let dir = tempfile::tempdir().unwrap();
    receive(dir.path(), &src, hash, &content::group_ranges(0, 40));
    // Groups 3, 20 and 39 are damaged while nothing runs.
    let g = GROUP_SIZE;
    zero_at(
        &data_file(dir.path(), &hash),
        &[3 * g + 100, 20 * g, 40 * g - 16],
    );

    let store = Store::open(dir.path()).unwrap();
    let pb = store.partial(hash, SIZE as u64).unwrap();
    assert_eq!(pb.present().ranges(), &[(0, 3), (4, 20), (21, 39)]);
    // The record was corrected at once, not only in memory.
    let info = store.blob_info(&hash).unwrap().unwrap();
    assert_eq!(info.partial.unwrap().ranges(), &[(0, 3), (4, 20), (21, 39)]);
    drop(pb);
    assert_eq!(complete(&store, &src, hash), bytes);
    assert!(store.check(|_| {}).unwrap().problems.is_empty());
}

#[test]
fn a_resumed_download_of_a_truncated_file_refetches_what_was_cut() {
    let bytes = data(SIZE);
    let (src, hash) = seeder(&bytes);
    let dir = tempfile::tempdir().unwrap();
    receive(dir.path(), &src, hash, &content::group_ranges(0, 50));
    let f = fs::OpenOptions::new()
        .write(true)
        .open(data_file(dir.path(), &hash))
        .unwrap();
    f.set_len(300_000).unwrap(); // 18 whole groups and a bit
    drop(f);

    let store = Store::open(dir.path()).unwrap();
    let pb = store.partial(hash, SIZE as u64).unwrap();
    assert_eq!(pb.present().ranges(), &[(0, 18)]);
    drop(pb);
    let got = complete(&store, &src, hash);
    assert_eq!(got.len(), SIZE);
    assert_eq!(got, bytes);
}

#[test]
fn a_complete_blob_that_rotted_is_fetched_again_where_it_rotted() {
    let bytes = data(SIZE);
    let (src, hash) = seeder(&bytes);
    let dir = tempfile::tempdir().unwrap();
    receive(dir.path(), &src, hash, &content::all());
    zero_at(&data_file(dir.path(), &hash), &[7 * GROUP_SIZE + 5]);

    let store = Store::open(dir.path()).unwrap();
    let pb = store.partial(hash, SIZE as u64).unwrap();
    assert!(!pb.is_complete());
    assert_eq!(pb.missing(), content::group_ranges(7, 8));
    drop(pb);
    assert_eq!(complete(&store, &src, hash), bytes);
}

#[test]
fn a_damaged_outboard_drops_the_groups_it_can_no_longer_prove() {
    let bytes = data(SIZE);
    let (src, hash) = seeder(&bytes);
    let dir = tempfile::tempdir().unwrap();
    receive(dir.path(), &src, hash, &content::all());
    let ob = data_file(dir.path(), &hash).with_extension("obao4");
    zero_at(&ob, &[200]);

    let store = Store::open(dir.path()).unwrap();
    let pb = store.partial(hash, SIZE as u64).unwrap();
    assert!(!pb.is_complete(), "a damaged outboard went unnoticed");
    drop(pb);
    // The refetch brings the tree nodes back with the groups.
    assert_eq!(complete(&store, &src, hash), bytes);
    assert!(store.check(|_| {}).unwrap().problems.is_empty());
}

/// A store at `dir` holding an unpinned root of one big file, as a fetch
/// without a pin leaves it for a hand-over. Returns the root.
fn unpinned_root(dir: &Path, bytes: &[u8], name: &str) -> (Hash, Hash) {
    let store = Store::open(dir).unwrap();
    let hash = store.put_blob(bytes).unwrap();
    let m = Manifest::new(vec![content::Entry {
        path: name.into(),
        size: bytes.len() as u64,
        mode: 0o644,
        hash,
        extensions: vec![],
    }])
    .unwrap();
    let root = store.put_blob(&m.encode()).unwrap();
    (root, hash)
}

#[test]
fn a_hand_over_verifies_every_byte_it_gives_away() {
    let bytes = data(SIZE);
    let dir = tempfile::tempdir().unwrap();
    let (root, hash) = unpinned_root(dir.path(), &bytes, "app.bin");
    let store = Store::open(dir.path()).unwrap();
    // Served once, so this process remembers every group as verified; the
    // hand-over must still look at the bytes, not at what it remembers.
    store
        .encode_ranges_with(&hash, &content::all(), io::sink(), false)
        .unwrap();
    zero_at(&data_file(dir.path(), &hash), &[SIZE as u64 - 100]);
    let out = tempfile::tempdir().unwrap();
    let opts = ExportOptions {
        release: true,
        ..Default::default()
    };
    let err = store.export(&root, out.path(), &opts).unwrap_err();
    assert!(
        matches!(err, ExportError::Corrupt { hash: h, .. } if h == hash),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(out.path()).unwrap().count(),
        0,
        "something was written"
    );
    // The damaged group is no longer claimed, so a fetch gets it again.
    let info = store.blob_info(&hash).unwrap().unwrap();
    let last = content::group_count(SIZE as u64) - 1;
    assert_eq!(info.partial.unwrap().ranges(), &[(0, last)]);
}

#[test]
fn an_export_that_finds_damage_drops_the_damaged_groups() {
    let bytes = data(SIZE);
    let dir = tempfile::tempdir().unwrap();
    let (root, hash) = unpinned_root(dir.path(), &bytes, "app.bin");
    zero_at(&data_file(dir.path(), &hash), &[GROUP_SIZE * 2]);
    let store = Store::open(dir.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = store
        .export(&root, out.path(), &Default::default())
        .unwrap_err();
    assert!(matches!(err, ExportError::Corrupt { .. }), "{err}");
    assert!(!out.path().join("app.bin").exists());
    let info = store.blob_info(&hash).unwrap().unwrap();
    assert_eq!(
        info.partial.unwrap().ranges(),
        &[(0, 2), (3, content::group_count(SIZE as u64))]
    );
}

#[test]
fn serving_checks_stored_bytes_the_first_time_and_stops_serving_rot() {
    let bytes = data(SIZE);
    let dir = tempfile::tempdir().unwrap();
    let (root, hash) = unpinned_root(dir.path(), &bytes, "app.bin");
    Store::open(dir.path()).unwrap().pin(&root, "app").unwrap();
    zero_at(&data_file(dir.path(), &hash), &[GROUP_SIZE * 9 + 1]);

    // A node opens the store and is asked for the blob, with the fast path
    // (no re-hash on every request): the first serve still verifies.
    let store = Store::open(dir.path()).unwrap();
    let mut sent = Vec::new();
    let err = store
        .encode_ranges_with(&hash, &content::all(), &mut sent, false)
        .unwrap_err();
    assert!(matches!(err, ReadError::Corrupt(h) if h == hash), "{err}");
    // Nothing of the damaged group went out: what was sent decodes as the
    // groups before it and stops there.
    let mut leaves = 0;
    for item in content::decode_ranges(hash, SIZE as u64, &content::all(), &sent[..]) {
        match item {
            Ok(content::BaoContentItem::Leaf(l)) => {
                assert!(l.offset < 9 * GROUP_SIZE, "sent the group at {}", l.offset);
                leaves += 1;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(leaves <= 9);
    // From then on the damaged group is not offered at all, the rest is.
    assert!(matches!(
        store.encode_ranges_with(&hash, &content::group_ranges(9, 10), io::sink(), false),
        Err(ReadError::Incomplete(_))
    ));
    store
        .encode_ranges_with(&hash, &content::group_ranges(10, 20), io::sink(), false)
        .unwrap();
    // And check reports the pinned root as incomplete.
    let report = store.check(|_| {}).unwrap();
    assert!(
        report.problems.iter().any(|p| p.hash == hash),
        "{:?}",
        report.problems
    );
}

#[test]
fn groups_verified_once_are_served_without_hashing_again() {
    let bytes = data(SIZE);
    let dir = tempfile::tempdir().unwrap();
    let (_, hash) = unpinned_root(dir.path(), &bytes, "app.bin");
    let store = Store::open(dir.path()).unwrap();
    let groups = GroupSet::of_chunks(&content::truncate_ranges(&content::all(), SIZE as u64));
    assert!(
        !store.verified_covers(&hash, &groups),
        "nothing verified yet"
    );
    store
        .encode_ranges_with(&hash, &content::all(), io::sink(), false)
        .unwrap();
    assert!(store.verified_covers(&hash, &groups));
}

#[test]
fn a_file_name_of_255_bytes_exports() {
    let src = tempfile::tempdir().unwrap();
    let name = "n".repeat(255);
    let path = src.path().join(&name);
    fs::write(&path, data(40_000)).unwrap();
    let store = Store::memory().unwrap();
    let root = store.add_paths(&[path], &Default::default()).unwrap().root;
    let out = tempfile::tempdir().unwrap();
    store
        .export(&root, out.path(), &Default::default())
        .unwrap();
    assert_eq!(fs::read(out.path().join(&name)).unwrap(), data(40_000));
    let leftovers: Vec<_> = fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1);
}

#[test]
fn an_export_into_the_store_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = unpinned_root(dir.path(), &data(SIZE), "app.bin");
    let store = Store::open(dir.path()).unwrap();
    store.pin(&root, "app").unwrap();
    let opts = ExportOptions {
        force: true,
        ..Default::default()
    };
    for target in [
        dir.path().join("swarm.redb"),
        dir.path().to_owned(),
        dir.path().join("blobs/new/dir"),
        dir.path().join("tmp/../blobs"),
        dir.path().join("no/such/../../swarm.redb"),
    ] {
        let err = store.export(&root, &target, &opts).unwrap_err();
        assert!(
            matches!(err, ExportError::InsideStore(_)),
            "{target:?}: {err}"
        );
    }
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.check(|_| {}).unwrap().problems.is_empty());
}

#[test]
fn reading_a_store_writes_nothing_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = unpinned_root(dir.path(), &data(SIZE), "app.bin");
    Store::open(dir.path()).unwrap().pin(&root, "app").unwrap();
    let db = dir.path().join("swarm.redb");
    let before = fs::read(&db).unwrap();
    let config = StoreConfig::default().read_only(true);
    for _ in 0..3 {
        let store = Store::open_with(dir.path(), config.clone()).unwrap();
        assert!(store.check(|_| {}).unwrap().problems.is_empty());
        let out = tempfile::tempdir().unwrap();
        for pin in store.pins().unwrap() {
            store
                .export(&pin.root, out.path(), &Default::default())
                .unwrap();
        }
        assert!(matches!(store.put_blob(b"x"), Err(StoreError::ReadOnly)));
        drop(store);
    }
    let after = fs::read(&db).unwrap();
    let pages: Vec<usize> = (0..before.len().max(after.len()).div_ceil(4096))
        .filter(|&i| before.get(i * 4096..(i + 1) * 4096) != after.get(i * 4096..(i + 1) * 4096))
        .collect();
    assert!(
        pages.is_empty(),
        "opening rewrote pages {pages:?} of {}",
        before.len() / 4096
    );
}

#[test]
fn a_missing_blob_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, hash) = unpinned_root(dir.path(), &data(SIZE), "app.bin");
    let file = data_file(dir.path(), &hash);
    fs::remove_file(&file).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = store.read_blob(&hash, SIZE as u64).unwrap_err();
    let msg = crate::error_chain(&err);
    assert!(msg.contains(&file.display().to_string()), "{msg}");
}

/// Add `path` while `touch` changes it the first time progress is reported,
/// that is, while the import is under way.
fn add_while(
    path: &Path,
    touch: impl Fn(&Path) + Send + Sync + 'static,
) -> Result<Added, AddError> {
    // An old mtime, so that the change is seen however coarse the clock.
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    drop(f);
    let once = std::sync::Once::new();
    let target = path.to_owned();
    let opts = AddOptions {
        name: None,
        progress: Some(std::sync::Arc::new(move |p| {
            if let Progress::Advance(_) = p {
                once.call_once(|| touch(&target));
            }
        })),
    };
    let store = Store::memory().unwrap();
    let r = store.add_paths(&[path.to_owned()], &opts);
    if r.is_err() {
        // Nothing of it was pinned.
        assert!(store.pins().unwrap().is_empty());
    }
    r
}

#[test]
fn a_file_written_in_place_while_it_is_added_is_refused() {
    for size in [10_000usize, 3 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.bin");
        fs::write(&path, data(size)).unwrap();
        let err = add_while(&path, |p| {
            let f = fs::OpenOptions::new().write(true).open(p).unwrap();
            f.write_all_at(b"rewritten", 5).unwrap();
        })
        .unwrap_err();
        assert!(
            matches!(&err, AddError::Changed(p) if *p == path),
            "{size}: {err}"
        );
        assert!(
            err.to_string().contains("changed while being read"),
            "{err}"
        );
    }
}

#[test]
fn a_file_that_grows_or_is_replaced_while_it_is_added_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.bin");
    fs::write(&path, data(2 << 20)).unwrap();
    let err = add_while(&path, |p| {
        let mut f = fs::OpenOptions::new().append(true).open(p).unwrap();
        io::Write::write_all(&mut f, b"more").unwrap();
    })
    .unwrap_err();
    assert!(matches!(err, AddError::Changed(_)), "{err}");

    fs::write(&path, data(2 << 20)).unwrap();
    let err = add_while(&path, |p| {
        let tmp = p.with_extension("new");
        fs::write(&tmp, data(2 << 20)).unwrap();
        fs::rename(&tmp, p).unwrap();
    })
    .unwrap_err();
    assert!(matches!(err, AddError::Changed(_)), "{err}");
}

#[test]
fn a_file_left_alone_while_it_is_added_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calm.bin");
    fs::write(&path, data(3 << 20)).unwrap();
    let added = add_while(&path, |_| {}).unwrap();
    assert_eq!(added.size, 3 << 20);
}

#[test]
fn a_blob_declared_larger_than_the_maximum_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for size in [content::MAX_BLOB_SIZE + 1, 1 << 62, u64::MAX] {
        let err = store.partial(Hash::of(b"huge"), size).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    }
    assert_eq!(store.blob_info(&Hash::of(b"huge")).unwrap(), None);
    let files: Vec<_> = fs::read_dir(dir.path().join("blobs")).unwrap().collect();
    assert!(files.is_empty(), "{files:?}");
}
