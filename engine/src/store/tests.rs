//! Store tests against a model: crash at every operation, full disks,
//! partial blobs moving between two stores.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

/// A source tree on disk and what its files hold.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
}

fn data(seed: u8, n: usize) -> Vec<u8> {
    crate::testutil::data(u64::from(seed), n)
}

fn tree(name: &str, files: &[(&str, Vec<u8>)]) -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(name);
    let mut map = BTreeMap::new();
    for (p, d) in files {
        let path = root.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, d).unwrap();
        map.insert(format!("{name}/{p}"), d.clone());
    }
    Tree {
        _dir: dir,
        root,
        files: map,
    }
}

fn open(b: &MemBackend) -> Store {
    Store::with_backend(b.clone(), StoreConfig::default()).unwrap()
}

/// Export `root` and compare every file with `want`.
fn assert_exports(store: &Store, root: &Hash, want: &BTreeMap<String, Vec<u8>>) {
    let out = tempfile::tempdir().unwrap();
    store
        .export(root, out.path(), &ExportOptions::default())
        .unwrap();
    for (p, d) in want {
        assert_eq!(&fs::read(out.path().join(p)).unwrap(), d, "{p}");
    }
}

fn assert_sound(store: &Store) {
    let r = store.check(|_| {}).unwrap();
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
}

fn shared() -> Vec<u8> {
    data(9, 100_000)
}

fn tree_a() -> Tree {
    tree(
        "a",
        &[
            ("small.txt", b"hello".to_vec()),
            ("shared.bin", shared()),
            ("x/big.bin", data(1, 70_000)),
        ],
    )
}

fn tree_b() -> Tree {
    tree(
        "b",
        &[
            ("shared.bin", shared()),
            ("y/other.bin", data(2, 50_000)),
            ("tiny", b"t".to_vec()),
        ],
    )
}

fn add(store: &Store, t: &Tree) -> Result<Added, AddError> {
    store.add_paths(std::slice::from_ref(&t.root), &AddOptions::default())
}

#[test]
fn shared_content_is_stored_once_and_survives_gc_of_the_other_root() {
    let b = MemBackend::new();
    let store = open(&b);
    let (ta, tb) = (tree_a(), tree_b());
    let a = add(&store, &ta).unwrap();
    let bb = add(&store, &tb).unwrap();
    assert_eq!(bb.new_bytes, 50_000 + 1, "shared.bin must not count as new");
    let data_files = |b: &MemBackend| {
        b.list()
            .unwrap()
            .into_iter()
            .filter(|(n, _)| matches!(n, FileName::Blob(_, FileKind::Data)))
            .count()
    };
    // big.bin, shared.bin, other.bin: three data files, shared.bin once.
    assert_eq!(data_files(&b), 3);
    assert!(store.unpin(&a.root).unwrap());
    let stats = store.gc().unwrap();
    assert_eq!(stats.blobs, 3, "small.txt, big.bin and a's manifest");
    assert!(stats.bytes >= 70_000);
    assert_eq!(data_files(&b), 2);
    assert_exports(&store, &bb.root, &tb.files);
    assert_sound(&store);
    assert!(store.unpin(&bb.root).unwrap());
    store.gc().unwrap();
    assert_eq!(b.list().unwrap(), vec![]);
    assert!(!store.unpin(&bb.root).unwrap());
}

/// The steps of the crash scenario, run until the first error.
fn scenario(store: &Store, a: &Hash, tb: &Tree) -> Result<(), String> {
    add(store, tb).map_err(|e| e.to_string())?;
    store.unpin(a).map_err(|e| e.to_string())?;
    store.gc().map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn a_crash_at_any_operation_leaves_a_consistent_store() {
    let (ta, tb) = (tree_a(), tree_b());
    // Count the operations of a clean run.
    let b = MemBackend::new();
    let store = open(&b);
    let a = add(&store, &ta).unwrap().root;
    let start = b.ops();
    scenario(&store, &a, &tb).unwrap();
    let total = b.ops() - start;
    drop(store);
    assert!(total > 20, "scenario too small to be interesting: {total}");
    let b_root = {
        let s = Store::memory().unwrap();
        add(&s, &tb).unwrap().root
    };

    for n in 1..=total + 1 {
        let b = MemBackend::new();
        let store = open(&b);
        add(&store, &ta).unwrap();
        b.fail_after(b.ops() + n, io::ErrorKind::Other);
        let result = scenario(&store, &a, &tb);
        drop(store);
        let after = b.crash();
        let store = Store::with_backend(after.clone(), StoreConfig::default())
            .unwrap_or_else(|e| panic!("crash at op {n}: store does not open: {e}"));
        let report = store.check(|_| {}).unwrap();
        assert!(
            report.problems.is_empty(),
            "crash at op {n} ({result:?}): {:#?}",
            report.problems
        );
        let pins: Vec<Hash> = store.pins().unwrap().iter().map(|p| p.root).collect();
        for p in &pins {
            assert!(*p == a || *p == b_root, "crash at op {n}: unknown pin {p}");
        }
        // The unpin comes after the add committed: a gone implies b present.
        if !pins.contains(&a) {
            assert!(pins.contains(&b_root), "crash at op {n}: lost both roots");
        }
        if pins.contains(&a) {
            assert_exports(&store, &a, &ta.files);
        }
        if pins.contains(&b_root) {
            assert_exports(&store, &b_root, &tb.files);
        }
        // Whatever the crash left behind, gc cleans it and the store stays sound.
        store.gc().unwrap();
        assert_sound(&store);
        if result.is_ok() {
            assert_eq!(pins, vec![b_root]);
        }
    }
}

#[test]
fn a_full_disk_fails_the_add_and_loses_nothing() {
    let (ta, tb) = (tree_a(), tree_b());
    let b = MemBackend::new();
    let a = add(&open(&b), &ta).unwrap().root;
    for extra in [1, 3, 7, 12, 20] {
        let store = open(&b);
        b.fail_after(b.ops() + extra, io::ErrorKind::StorageFull);
        let err = add(&store, &tb).unwrap_err();
        assert!(
            matches!(err, AddError::Store(StoreError::DiskFull)),
            "after {extra} ops: {err:?}"
        );
        assert!(err.to_string().contains("disk is full"), "{err}");
        b.fail_after(0, io::ErrorKind::Other);
        // redb may refuse further writes after an I/O error: reopen, as the
        // CLI does for each command.
        drop(store);
        let reopened = open(&b);
        assert_exports(&reopened, &a, &ta.files);
        assert_sound(&reopened);
    }
    let store = open(&b);
    let bb = add(&store, &tb).unwrap().root;
    assert_exports(&store, &bb, &tb.files);
    assert_exports(&store, &a, &ta.files);
}

/// A blob big enough for several groups, added to a source store.
fn source_blob(n: usize) -> (Store, Hash, Vec<u8>) {
    let src = Store::memory().unwrap();
    let t = tree("s", &[("blob.bin", data(5, n))]);
    let root = add(&src, &t).unwrap().root;
    let m = src.manifest(&root).unwrap();
    let bytes = t.files["s/blob.bin"].clone();
    (src, m.entries()[0].hash, bytes)
}

fn encode(src: &Store, hash: &Hash, ranges: &ChunkRanges) -> Vec<u8> {
    let mut v = Vec::new();
    src.encode_ranges(hash, ranges, &mut v).unwrap();
    v
}

#[test]
fn partial_blobs_resume_after_a_crash_and_serve_what_they_have() {
    let n = 1_000_000usize; // 62 groups, the last one short
    let (src, hash, bytes) = source_blob(n);
    let b = MemBackend::new();
    let dst = open(&b);
    let first = content::group_ranges(0, 20);
    let mut pb = dst.partial(hash, n as u64).unwrap();
    let got = pb
        .write_response(&first, &encode(&src, &hash, &first)[..])
        .unwrap();
    assert_eq!(got, 20 * GROUP_SIZE);
    pb.flush().unwrap();
    std::mem::forget(pb); // as if killed: no drop-time flush
    drop(dst);

    let dst = open(&b.crash());
    assert_sound(&dst);
    let mut pb = dst.partial(hash, n as u64).unwrap();
    assert_eq!(pb.present().ranges(), &[(0, 20)]);
    // A partial blob serves the groups it has, and refuses the rest.
    let mut v = Vec::new();
    dst.encode_ranges(&hash, &content::group_ranges(5, 10), &mut v)
        .unwrap();
    assert_eq!(v, encode(&src, &hash, &content::group_ranges(5, 10)));
    assert!(matches!(
        dst.encode_ranges(&hash, &content::group_ranges(19, 21), io::sink()),
        Err(ReadError::Incomplete(_))
    ));
    // Resume: only the missing groups are requested and received.
    let missing = pb.missing();
    let got = pb
        .write_response(&missing, &encode(&src, &hash, &missing)[..])
        .unwrap();
    assert_eq!(got, n as u64 - 20 * GROUP_SIZE);
    assert!(pb.is_complete());
    drop(pb);
    assert_eq!(dst.blob_info(&hash).unwrap().unwrap().partial, None);
    let mut all = Vec::new();
    dst.encode_ranges(&hash, &content::all(), &mut all).unwrap();
    assert_eq!(all, encode(&src, &hash, &content::all()));
    assert_sound(&dst);
    // The exported bytes are the source bytes.
    let mut leaves = vec![0u8; n];
    for item in content::decode_ranges(hash, n as u64, &content::all(), &all[..]) {
        if let content::BaoContentItem::Leaf(l) = item.unwrap() {
            leaves[l.offset as usize..][..l.data.len()].copy_from_slice(&l.data);
        }
    }
    assert_eq!(leaves, bytes);
}

#[test]
fn tampered_data_is_refused_and_earlier_verified_groups_kept() {
    let n = 300_000usize;
    let (src, hash, _) = source_blob(n);
    let dst = Store::memory().unwrap();
    let all = content::all();
    let mut enc = encode(&src, &hash, &all);
    // Flip a byte in the last group's data (the end of the pre-order stream).
    let at = enc.len() - 100;
    enc[at] ^= 0x40;
    let mut pb = dst.partial(hash, n as u64).unwrap();
    let err = pb.write_response(&all, &enc[..]).unwrap_err();
    let WriteError::Verify { source, .. } = &err else {
        panic!("{err:?}")
    };
    let last = content::group_count(n as u64) - 1;
    assert!(
        matches!(source, content::DecodeError::LeafMismatch { offset } if *offset == last * GROUP_SIZE),
        "{source:?}"
    );
    assert_eq!(pb.present().ranges(), &[(0, last)]);
    drop(pb);
    assert_sound(&dst);
    // Refetching just the missing group completes it.
    let mut pb = dst.partial(hash, n as u64).unwrap();
    let missing = pb.missing();
    pb.write_response(&missing, &encode(&src, &hash, &missing)[..])
        .unwrap();
    assert!(pb.is_complete());
}

#[test]
fn a_crash_during_a_partial_write_keeps_only_verified_groups() {
    let n = 200_000usize;
    let (src, hash, _) = source_blob(n);
    let all = content::all();
    let enc = encode(&src, &hash, &all);
    let clean = MemBackend::new();
    let total = {
        let s = open(&clean);
        let start = clean.ops();
        let mut pb = s.partial(hash, n as u64).unwrap();
        pb.write_response(&all, &enc[..]).unwrap();
        drop(pb);
        clean.ops() - start
    };
    assert!(total > 5);
    for k in 1..=total + 1 {
        let b = MemBackend::new();
        let s = open(&b);
        b.fail_after(b.ops() + k, io::ErrorKind::Other);
        if let Ok(mut pb) = s.partial(hash, n as u64) {
            let _ = pb.write_response(&all, &enc[..]);
        }
        drop(s);
        let s = open(&b.crash());
        assert_sound(&s);
        // Whatever survived, resuming completes it and it verifies.
        let mut pb = s.partial(hash, n as u64).unwrap();
        let missing = pb.missing();
        pb.write_response(&missing, &encode(&src, &hash, &missing)[..])
            .unwrap();
        assert!(pb.is_complete(), "fault at op {k}");
        drop(pb);
        assert_sound(&s);
    }
}

#[test]
fn check_reports_a_flipped_bit_in_data_and_in_inline_blobs() {
    let b = MemBackend::new();
    let store = open(&b);
    let ta = tree_a();
    add(&store, &ta).unwrap();
    let big = Hash::of(&data(1, 70_000));
    b.corrupt(FileName::Blob(big, FileKind::Data), 40_000)
        .unwrap();
    let r = store.check(|_| {}).unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].hash, big);
    assert!(
        r.problems[0].what.contains("byte 32768"),
        "{}",
        r.problems[0].what
    );
    // Serving refuses the bad group rather than sending it.
    assert!(matches!(
        store.encode_ranges(&big, &content::all(), io::sink()),
        Err(ReadError::Corrupt(h)) if h == big
    ));
}

#[test]
fn reopening_a_store_removes_temporary_files() {
    let b = MemBackend::new();
    let store = open(&b);
    b.create(FileName::Temp(77, FileKind::Data)).unwrap();
    drop(store);
    let _store = open(&b);
    assert!(b.list().unwrap().is_empty());
}

#[test]
fn manifest_escapes_are_refused_before_anything_is_written() {
    // A manifest that tries to leave the export directory cannot even be
    // stored as a pin: decoding refuses it.
    let mut bytes = b"SWMF\x01\x01".to_vec();
    bytes.push(4);
    bytes.extend_from_slice(b"../x");
    bytes.extend_from_slice(&[1, 0xa4, 0x03]);
    bytes.extend_from_slice(Hash::of(b"x").as_bytes());
    bytes.push(0);
    assert!(matches!(
        Manifest::decode(&bytes),
        Err(ManifestError::BadPath { .. })
    ));
}

#[test]
fn a_response_for_part_of_a_group_does_not_mark_the_group_present() {
    let n = 100_000usize;
    let (src, hash, _) = source_blob(n);
    let dst = Store::memory().unwrap();
    // Chunks 3..5 of group 0, and the last chunk (in the last, short group).
    let ranges = ChunkRanges::from(content::ChunkNum(3)..content::ChunkNum(5))
        | ChunkRanges::from(content::ChunkNum(97)..);
    let mut pb = dst.partial(hash, n as u64).unwrap();
    pb.write_response(&ranges, &encode(&src, &hash, &ranges)[..])
        .unwrap();
    assert!(pb.present().is_empty(), "{:?}", pb.present());
    drop(pb);
    assert_sound(&dst);
}

fn release_opts() -> ExportOptions {
    ExportOptions {
        release: true,
        ..Default::default()
    }
}

#[test]
fn a_release_export_hands_files_over_and_keeps_what_pins_need() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let (ta, tb) = (tree_a(), tree_b());
    let a = add(&store, &ta).unwrap().root;
    let b = add(&store, &tb).unwrap().root;
    // Unpin b, as a fetch without a pin leaves it; a still pins shared.bin.
    assert!(store.unpin(&b).unwrap());
    let out = dir.path().join("out");
    store.export(&b, &out, &release_opts()).unwrap();
    for (p, d) in &tb.files {
        assert_eq!(&fs::read(out.join(p)).unwrap(), d, "{p}");
    }
    // other.bin was handed over (linked, then dropped); shared.bin, which a
    // still pins, was copied and kept; b's other content is gone.
    assert_eq!(store.blob_info(&Hash::of(&data(2, 50_000))).unwrap(), None);
    assert!(store.blob_info(&Hash::of(&shared())).unwrap().is_some());
    assert_eq!(store.blob_info(&b).unwrap(), None);
    let other = out.join("b/y/other.bin");
    assert_eq!(
        fs::metadata(&other).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_exports(&store, &a, &ta.files);
    assert_sound(&store);
    // The store's gc finds nothing left over.
    assert_eq!(store.gc().unwrap(), GcStats::default());
}

#[test]
fn a_release_export_without_links_copies_then_drops() {
    let b = MemBackend::new();
    let store = open(&b);
    let tb = tree_b();
    let root = add(&store, &tb).unwrap().root;
    assert!(store.unpin(&root).unwrap());
    let out = tempfile::tempdir().unwrap();
    store.export(&root, out.path(), &release_opts()).unwrap();
    for (p, d) in &tb.files {
        assert_eq!(&fs::read(out.path().join(p)).unwrap(), d, "{p}");
    }
    assert!(b.list().unwrap().is_empty());
    assert_sound(&store);
}

#[test]
fn a_crash_during_a_release_export_leaves_a_consistent_store() {
    let tb = tree_b();
    let total = {
        let b = MemBackend::new();
        let store = open(&b);
        let root = add(&store, &tb).unwrap().root;
        store.unpin(&root).unwrap();
        let start = b.ops();
        let out = tempfile::tempdir().unwrap();
        store.export(&root, out.path(), &release_opts()).unwrap();
        b.ops() - start
    };
    for n in 1..=total + 1 {
        let b = MemBackend::new();
        let store = open(&b);
        let root = add(&store, &tb).unwrap().root;
        store.unpin(&root).unwrap();
        b.fail_after(b.ops() + n, io::ErrorKind::Other);
        let out = tempfile::tempdir().unwrap();
        let _ = store.export(&root, out.path(), &release_opts());
        drop(store);
        let store = open(&b.crash());
        assert_sound(&store);
        store.gc().unwrap();
        assert_sound(&store);
    }
}

#[test]
fn the_release_high_water_mark_and_trust_survive_a_reopen() {
    use crate::release::{Policy, PolicyError, Release, SecretKey, Want};
    let key = SecretKey::from_seed(&[3; 32]);
    let rel = |seq| {
        Release {
            publisher: key.public(),
            name: "app".into(),
            channel: "stable".into(),
            version: semver::Version::new(1, 0, seq),
            seq,
            root: Hash::of(b"r"),
            size: 1,
            created: 1_000,
            expires: None,
            rollout: Default::default(),
        }
        .sign(&key)
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.trust(&key.public(), "me").unwrap();
        let policy = store.policy(Policy::default()).unwrap();
        store
            .accept_release(&policy, &rel(5), &Want::default())
            .unwrap();
        assert_eq!(store.next_seq(&key.public(), "app", "stable").unwrap(), 6);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.trusted().unwrap(),
        vec![(key.public(), "me".to_owned())]
    );
    let policy = store.policy(Policy::default()).unwrap();
    let err = store
        .accept_release(&policy, &rel(4), &Want::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            AcceptError::Policy(PolicyError::Rollback {
                got: 4,
                seen: 5,
                ..
            })
        ),
        "{err}"
    );
    // Newer is accepted and becomes the mark.
    store
        .accept_release(&policy, &rel(6), &Want::default())
        .unwrap();
    let seen = store
        .release_seen(&key.public(), "app", "stable")
        .unwrap()
        .unwrap();
    assert_eq!(seen.seq, 6);
    assert_eq!(seen.token, rel(6).to_token());
    assert!(store.distrust(&key.public()).unwrap());
    let policy = store.policy(Policy::default()).unwrap();
    assert!(matches!(
        store.check_release(&policy, &rel(7), &Want::default()),
        Err(AcceptError::Policy(PolicyError::Untrusted { .. }))
    ));
}

/// `receive_chunks` (the path of every piece from a peer or a mirror)
/// leaves a store exactly as `receive` does: the same groups, the same
/// bytes, the same failure, for responses cut anywhere, overlapping what
/// is already held, damaged or cut short.
#[test]
fn receiving_chunks_stores_what_receiving_a_stream_does() {
    use proptest::prelude::*;
    use std::sync::Mutex;
    let n = 700_000usize; // 43 groups, the last one short
    let (src, hash, _) = source_blob(n);
    let groups = content::group_count(n as u64);
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 48,
        ..Default::default()
    });
    let case = (
        (0..groups, 1..groups),
        (0..groups, 1..12u64),
        proptest::collection::vec(1usize..20_000, 1..60),
        proptest::option::of((0usize..800_000, 1u8..=255)),
        proptest::option::of(0usize..800_000),
    );
    runner
        .run(&case, |((a, len), (had, had_len), cuts, damage, short)| {
            let ranges = content::group_ranges(a, (a + len).min(groups));
            let mut enc = encode(&src, &hash, &ranges);
            if let Some((at, x)) = damage {
                let k = enc.len();
                enc[at % k] ^= x;
            }
            if let Some(s) = short {
                let k = enc.len();
                enc.truncate(s % k);
            }
            // Cut as a transport might.
            let mut chunks = Vec::new();
            let mut rest = &enc[..];
            for c in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (head, tail) = rest.split_at((*c).min(rest.len()));
                chunks.push(bytes::Bytes::copy_from_slice(head));
                rest = tail;
            }
            let held = content::group_ranges(had, (had + had_len).min(groups));
            let stores: Vec<Store> = (0..2).map(|_| Store::memory().unwrap()).collect();
            let mut outcomes = Vec::new();
            for (i, s) in stores.iter().enumerate() {
                let pb = Mutex::new(s.partial(hash, n as u64).unwrap());
                pb.lock()
                    .unwrap()
                    .write_response(&held, &encode(&src, &hash, &held)[..])
                    .unwrap();
                let got = if i == 0 {
                    PartialBlob::receive(&pb, &ranges, &enc[..]).unwrap()
                } else {
                    PartialBlob::receive_chunks(&pb, &ranges, chunks.clone()).unwrap()
                };
                let present = pb.lock().unwrap().present();
                outcomes.push((got.written, format!("{:?}", got.failed), present));
            }
            prop_assert_eq!(&outcomes[0], &outcomes[1]);
            // What the chunks path holds is the source's bytes.
            let s = &stores[1];
            for &(g0, g1) in outcomes[1].2.ranges() {
                let r = content::group_ranges(g0, g1);
                prop_assert_eq!(encode(s, &hash, &r), encode(&src, &hash, &r));
            }
            Ok(())
        })
        .unwrap();
}

/// Issue 17, item 3: gc kept nothing of an interrupted download and
/// counted the whole length of its sparse files as freed.
#[test]
fn gc_keeps_a_recent_partial_lists_it_and_counts_bytes_on_disk() {
    let n = 4_000_000usize; // 245 groups
    let (src, hash, _) = source_blob(n);
    let dir = tempfile::tempdir().unwrap();
    let dst = Store::open(dir.path()).unwrap();
    let first = content::group_ranges(0, 20);
    let mut pb = dst.partial(hash, n as u64).unwrap();
    pb.write_response(&first, &encode(&src, &hash, &first)[..])
        .unwrap();
    let listed = dst.partials().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].writing);
    drop(pb); // the download stopped
    let p = &dst.partials().unwrap()[0];
    assert_eq!(
        (p.hash, p.size, p.present),
        (hash, n as u64, 20 * GROUP_SIZE)
    );
    assert!(!p.writing && !p.referenced);
    let on_disk = p.disk_bytes.unwrap();
    assert!(on_disk < n as u64, "sparse: {on_disk} of {n}");
    // The default keeps it, and says so.
    let stats = dst.gc().unwrap();
    assert_eq!((stats.blobs, stats.kept_partials), (0, 1), "{stats:?}");
    assert_eq!(stats.kept_partial_bytes, on_disk);
    assert_eq!(dst.partials().unwrap().len(), 1);
    // A shorter age than its own keeps it still; none collects it, and
    // counts what it took on disk, not its length.
    let hour = GcOptions {
        keep_partial_for: Some(std::time::Duration::from_secs(3600)),
    };
    assert_eq!(dst.gc_with(&hour).unwrap().kept_partials, 1);
    let stats = dst
        .gc_with(&GcOptions {
            keep_partial_for: None,
        })
        .unwrap();
    assert_eq!((stats.blobs, stats.kept_partials), (1, 0), "{stats:?}");
    assert!(
        stats.bytes <= on_disk && stats.bytes > 0,
        "{stats:?} vs {on_disk}"
    );
    assert!(dst.partials().unwrap().is_empty());
    // It resumes from nothing, as a fresh download.
    assert!(dst.partial(hash, n as u64).unwrap().present().is_empty());
}
