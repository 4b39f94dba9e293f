//! End-to-end tests of the `swarm` binary against real files and a real store.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread::sleep;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::common::*;

#[path = "cli/limits.rs"]
mod limits;
#[path = "cli/messages.rs"]
mod messages;
#[path = "cli/mirror.rs"]
mod mirror;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// Blobs up to one 16 KiB group live inside redb; larger ones get files.
const GROUP: usize = 16 * KIB;

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// A store with one directory root in it, to check that a failing command
/// leaves earlier content alone.
struct Baseline {
    store: PathBuf,
    original: PathBuf,
    root: String,
}

impl Baseline {
    fn new(tmp: &Path) -> Self {
        let original = tmp.join("baseline/kept");
        make_tree(
            &original,
            &[
                ("small.txt", b"kept across failures\n".to_vec(), 0o644),
                ("large.bin", pseudo_random(200 * KIB, 99), 0o600),
            ],
        );
        let store = tmp.join("store");
        let root = add(&store, &[&original]).root;
        Self {
            store,
            original,
            root,
        }
    }

    /// Still pinned, still exports byte for byte, and `check` is clean.
    fn assert_intact(&self) {
        assert!(
            pinned_roots(&self.store).contains(&self.root),
            "the baseline pin is gone"
        );
        assert_exports_as(&self.store, &self.root, &self.original);
        assert_check_ok(&self.store);
    }
}

/// The path of a blob's data file in a store.
fn data_file(store: &Path, hash: &str) -> PathBuf {
    store
        .join("blobs")
        .join(&hash[..2])
        .join(format!("{hash}.data"))
}

/// Fail if any two `: `-separated clauses of an error message are equal,
/// as when a cause is printed both inside its wrapper and after it.
fn assert_no_repeated_clause(msg: &str) {
    let clauses: Vec<&str> = msg.split(": ").map(str::trim).collect();
    for (i, a) in clauses.iter().enumerate() {
        if a.len() >= 6 && clauses[i + 1..].contains(a) {
            panic!("error message repeats {a:?}: {msg}");
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Round trips.

#[test]
fn single_files_round_trip_at_every_size_boundary() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    // Empty, tiny, exactly one group (inline), one byte over (a blob file),
    // and several MiB (the threaded pipeline, an odd tail).
    let cases = [
        (0, 0o644),
        (1, 0o600),
        (GROUP, 0o755),
        (GROUP + 1, 0o640),
        (3 * MIB + 7, 0o700),
    ];
    for (i, &(size, mode)) in cases.iter().enumerate() {
        let src = tmp.path().join(format!("in/file-{size}.bin"));
        write_file(&src, &pseudo_random(size, i as u64 + 1), mode);
        let added = add(&store, &[&src]);
        assert_eq!(added.size, size as u64, "size reported for {size} bytes");
        assert_eq!(added.files, 1);
        assert_eq!(added.new_bytes, size as u64, "first add of {size} bytes");

        // Into an existing directory: stored under its own name.
        assert_exports_as(&store, &added.root, &src);
        // To a path that does not exist yet: the file is that path.
        let dest = tmp.path().join(format!("out/{i}/copy.bin"));
        export(&store, &added.root, &dest, false);
        assert_same_file(&src, &dest);
        assert_eq!(dir_names(dest.parent().expect("parent")), ["copy.bin"]);
    }
    assert_eq!(pinned_roots(&store).len(), cases.len());
    // Only the two blobs over 16 KiB have data files.
    assert_eq!(data_files(&store).len(), 2, "{:?}", data_files(&store));
    assert_check_ok(&store);
}

#[test]
fn single_file_export_refuses_to_overwrite_without_force() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let src = tmp.path().join("notes.bin");
    write_file(&src, &pseudo_random(40 * KIB, 5), 0o640);
    let root = add(&store, &[&src]).root;
    let dest = tmp.path().join("dest.bin");
    export(&store, &root, &dest, false);
    assert_same_file(&src, &dest);

    write_file(&dest, b"edited by the user", 0o644);
    let msg = swarm_err(&store, args!["export", root, "-o", dest]);
    assert!(mentions(&msg, "already exists"), "{msg}");
    // The engine says what to do in its terms; the CLI names its flag.
    assert!(
        msg.ends_with("; pass --force to replace it"),
        "the error should say how: {msg}"
    );
    assert_eq!(fs::read(&dest).expect("read dest"), b"edited by the user");
    assert_eq!(dir_names(tmp.path()), ["dest.bin", "notes.bin", "store"]);

    export(&store, &root, &dest, true);
    assert_same_file(&src, &dest);
}

fn sample_tree() -> Vec<Spec<'static>> {
    let deep = pseudo_random(GROUP + 1, 21);
    vec![
        ("src/README", b"# a tree of files\n".to_vec(), 0o644),
        ("src/bin/run.sh", b"#!/bin/sh\necho hi\n".to_vec(), 0o755),
        ("src/secret.key", pseudo_random(100, 22), 0o600),
        ("src/empty", Vec::new(), 0o644),
        ("src/a/b/c/deep.bin", deep.clone(), 0o644),
        // Same bytes as deep.bin, other mode: one blob, two files.
        ("src/a/copy-of-deep", deep, 0o755),
        ("src/a/exact.bin", pseudo_random(GROUP, 23), 0o444),
        ("src/a/big.bin", pseudo_random(3 * MIB, 24), 0o644),
    ]
}

#[test]
fn directory_tree_round_trips_with_modes() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let specs = sample_tree();
    make_tree(tmp.path(), &specs);
    let src = tmp.path().join("src");
    let added = add(&store, &[&src]);
    assert_eq!(added.files, specs.len() as u64);
    let total: usize = specs.iter().map(|(_, b, _)| b.len()).sum();
    assert_eq!(added.size, total as u64);
    // The duplicate is stored once.
    assert_eq!(added.new_bytes, (total - (GROUP + 1)) as u64);

    let out = tmp.path().join("out");
    export(&store, &added.root, &out, false);
    assert_eq!(dir_names(&out), ["src"]);
    assert_same_tree(&src, &out.join("src"));

    // A second export over the first is refused and changes nothing...
    write_file(&out.join("src/README"), b"local edit\n", 0o644);
    let msg = swarm_err(&store, args!["export", added.root, "-o", out]);
    assert!(mentions(&msg, "already exists"), "{msg}");
    assert!(msg.contains("--force"), "{msg}");
    assert_eq!(
        fs::read(out.join("src/README")).expect("read"),
        b"local edit\n"
    );
    assert!(files_ending(&out, ".swarm-part").is_empty());

    // ...and --force restores every file, modes included.
    export(&store, &added.root, &out, true);
    assert_same_tree(&src, &out.join("src"));
    assert_check_ok(&store);
}

// ---------------------------------------------------------------------------
// 2. Deduplication and garbage collection.

#[test]
fn shared_file_is_stored_once_and_freed_with_its_last_pin() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let shared = pseudo_random(2 * MIB, 7);
    make_tree(
        tmp.path(),
        &[
            ("one/shared.bin", shared.clone(), 0o644),
            ("one/only-one.txt", pseudo_random(50_000, 8), 0o644),
            ("two/shared.bin", shared.clone(), 0o755),
            ("two/sub/only-two.txt", pseudo_random(60_000, 9), 0o600),
        ],
    );
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));

    let a = add(&store, &[&one]);
    assert_eq!(a.new_bytes, (2 * MIB + 50_000) as u64);
    let b = add(&store, &[&two]);
    assert_ne!(a.root, b.root);
    assert_eq!(b.size, (2 * MIB + 60_000) as u64);
    assert_eq!(b.new_bytes, 60_000, "the shared 2 MiB counted as new again");

    let shared_hash = blob_hash(&shared);
    let data = data_files(&store);
    assert_eq!(data.len(), 3, "one data file per distinct blob: {data:?}");
    assert_eq!(
        data.iter().filter(|p| file_stem(p) == shared_hash).count(),
        1
    );

    assert!(swarm_ok(&store, ["rm", &a.root]).success());
    assert_eq!(pinned_roots(&store), [b.root.as_str()]);
    let (blobs, bytes) = gc(&store);
    assert_eq!(
        blobs, 2,
        "gc should free the first root's manifest and only-one.txt"
    );
    assert!(bytes >= 50_000, "gc freed only {bytes} bytes");
    assert!(
        data_file(&store, &shared_hash).exists(),
        "shared blob freed"
    );
    assert_eq!(data_files(&store).len(), 2);
    assert_exports_as(&store, &b.root, &two);
    assert_check_ok(&store);

    swarm_ok(&store, ["rm", &b.root]);
    let (blobs, bytes) = gc(&store);
    assert_eq!(blobs, 3);
    assert!(bytes > 2 * MIB as u64, "gc freed only {bytes} bytes");
    assert_eq!(data_files(&store), Vec::<PathBuf>::new());
    assert_eq!(
        files_ending(&store.join("blobs"), ".obao4"),
        Vec::<PathBuf>::new()
    );
    assert!(pinned_roots(&store).is_empty());
    assert_check_ok(&store);
    // Nothing left to free.
    assert_eq!(gc(&store), (0, 0));
}

// ---------------------------------------------------------------------------
// 3. Corruption on disk.

#[test]
fn flipped_byte_is_found_by_check_and_stops_export() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    // 3 MiB goes through the threaded export pipeline, 100 KB through the
    // single-read path; the small file stays good.
    let big = pseudo_random(3 * MIB, 31);
    let mid = pseudo_random(100_000, 32);
    write_file(&tmp.path().join("in/big.bin"), &big, 0o644);
    write_file(&tmp.path().join("in/mid.bin"), &mid, 0o644);
    write_file(&tmp.path().join("in/good.txt"), b"untouched", 0o644);
    let big_root = add(&store, &[tmp.path().join("in/big.bin")]).root;
    let mid_root = add(&store, &[tmp.path().join("in/mid.bin")]).root;
    let good_root = add(&store, &[tmp.path().join("in/good.txt")]).root;
    assert_check_ok(&store);

    let (hb, hm) = (blob_hash(&big), blob_hash(&mid));
    flip_byte(&data_file(&store, &hb), (big.len() / 2) as u64);
    flip_byte(&data_file(&store, &hm), 50_000);

    // Text output: one line per problem on stdout, exit 1.
    let run = swarm(&store, ["check"]);
    assert_no_panic(&run);
    assert_eq!(run.code, Some(1), "check must fail:\n{run}");
    for h in [&hb, &hm] {
        assert!(
            run.stdout.lines().any(|l| l.contains(h.as_str())),
            "check does not name {h}:\n{run}"
        );
    }
    assert!(run.stderr.contains("error: "), "{run}");

    // JSON output: the same, machine-readable.
    let run = swarm(&store, ["--json", "check"]);
    assert_eq!(run.code, Some(1), "check --json must fail:\n{run}");
    let v = run.json();
    assert_eq!(v["ok"], Value::Bool(false));
    let mut named: Vec<&str> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| str_field(p, "hash"))
        .collect();
    named.sort_unstable();
    let mut want = vec![hb.as_str(), hm.as_str()];
    want.sort_unstable();
    assert_eq!(named, want, "{v}");
    assert!(
        v["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .all(|p| !str_field(p, "problem").is_empty())
    );

    // Export verifies before renaming into place: nothing is left behind,
    // neither the file nor its temporary.
    let mut messages = Vec::new();
    for (root, hash) in [(&big_root, &hb), (&mid_root, &hm)] {
        let out = tmp.path().join(format!("out-{}", &hash[..8]));
        let dest = out.join("restored.bin");
        let msg = swarm_err(&store, args!["export", root, "-o", dest]);
        assert!(
            msg.contains(hash.as_str()),
            "error does not name the blob: {msg}"
        );
        assert!(
            mentions(&msg, "swarm check"),
            "error does not say what to do: {msg}"
        );
        assert!(
            !dest.exists(),
            "corrupt data was written to {}",
            dest.display()
        );
        assert_eq!(
            dir_names(&out),
            Vec::<String>::new(),
            "leftovers in {}",
            out.display()
        );
        // Into an existing directory too.
        let msg2 = swarm_err(&store, args!["export", root, "-o", out]);
        assert!(msg2.contains(hash.as_str()), "{msg2}");
        assert_eq!(
            dir_names(&out),
            Vec::<String>::new(),
            "leftovers in {}",
            out.display()
        );
        messages.push((msg, dest));
    }
    // The good root is unaffected.
    assert_exports_as(&store, &good_root, &tmp.path().join("in/good.txt"));

    // Recovery: unpin the damaged roots, collect, and the store is sound.
    swarm_ok(&store, ["rm", &big_root]);
    swarm_ok(&store, ["rm", &mid_root]);
    gc(&store);
    assert_check_ok(&store);

    // The message should name the file the user asked for, not the
    // exporter's temporary name.
    for (msg, dest) in messages {
        assert!(
            !msg.contains(".swarm-part"),
            "error names the internal temporary file instead of {}: {msg}",
            dest.display()
        );
    }
}

// ---------------------------------------------------------------------------
// 4. Crash safety.

/// Bytes written so far to the largest partial data file in DIR/tmp. An
/// import sizes the file first and fills it in, so count allocated blocks,
/// not the length.
fn tmp_data_len(store: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    files_ending(&store.join("tmp"), ".data")
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| (m.blocks() * 512).min(m.len()))
        .max()
        .unwrap_or(0)
}

#[test]
fn add_killed_midway_leaves_a_consistent_store() {
    let tmp = tempdir();
    let keep = tmp.path().join("keep.bin");
    write_file(&keep, &pseudo_random(100_000, 3), 0o644);
    let big = tmp.path().join("big.bin");

    // Grow the file until an add is still copying when we look; a loaded
    // machine needs no more than the first size.
    let mut size = 32 * MIB as u64;
    let (store, kept) = loop {
        assert!(
            size <= 1 << 30,
            "could not catch `swarm add` while it was copying"
        );
        let store = tmp.path().join(format!("store-{}", size >> 20));
        let kept = add(&store, &[&keep]);
        write_big_file(&big, size, 11);
        let mut child = swarm_cmd(&store)
            .arg("add")
            .arg(&big)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn swarm add");
        let copying = loop {
            if child.try_wait().expect("poll child").is_some() {
                break false;
            }
            let n = tmp_data_len(&store);
            if n >= 4 * MIB as u64 && n < size {
                break true;
            }
            sleep(Duration::from_millis(1));
        };
        // While the add runs, a second process is turned away, not let in.
        let ls = copying.then(|| swarm(&store, ["ls"]));
        child.kill().expect("kill -9 swarm add");
        let status = child.wait().expect("reap swarm add");
        let finished = status.success() || ls.as_ref().is_some_and(Run::success);
        if !copying || finished {
            size *= 4;
            continue;
        }
        let ls = ls.expect("ran ls");
        let msg = error_message(&ls);
        assert!(mentions(&msg, "in use"), "{msg}");

        // The kill left debris: a partial temporary, or a blob file that no
        // commit claims yet. (Listing is the first open after the kill.)
        let (partial, tmp_debris) = (tmp_data_len(&store), tmp_files(&store));
        let debris = tmp_debris.len() + data_files(&store).len() - 1;
        let pins = pinned_roots(&store);
        if pins.len() > 1 {
            // Killed after its commit after all; try again, larger.
            size *= 4;
            continue;
        }
        eprintln!(
            "note: killed `swarm add` of {} MiB with {} MiB in DIR/tmp ({tmp_debris:?})",
            size >> 20,
            partial >> 20
        );
        assert!(debris > 0, "the kill left nothing behind to recover from");
        // The store opens and has no pin for the killed add.
        assert_eq!(pins, [kept.root.as_str()]);
        break (store, kept);
    };

    // The store is sound and the earlier pin intact.
    assert_check_ok(&store);
    assert_exports_as(&store, &kept.root, &keep);

    // Adding the file again works and exports identically.
    let again = add(&store, &[&big]);
    assert_eq!(again.size, size);
    let mut roots = pinned_roots(&store);
    roots.sort();
    let mut want = vec![kept.root.clone(), again.root.clone()];
    want.sort();
    assert_eq!(roots, want);
    assert_exports_as(&store, &again.root, &big);

    // gc sweeps whatever the kill left; only live blobs keep files.
    gc(&store);
    assert_eq!(tmp_files(&store), Vec::<String>::new());
    assert_eq!(data_files(&store).len(), 2, "{:?}", data_files(&store));
    assert_eq!(files_ending(&store.join("blobs"), ".obao4").len(), 2);
    assert_check_ok(&store);
}

// ---------------------------------------------------------------------------
// 5. Bad input.

#[test]
fn add_of_a_missing_path_is_refused() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let missing = tmp.path().join("no-such-file");
    let msg = swarm_err(&base.store, args!["add", missing]);
    assert!(msg.contains("no-such-file"), "{msg}");
    assert!(mentions(&msg, "no such file"), "{msg}");

    // One good path with one missing: nothing is pinned.
    let msg = swarm_err(&base.store, args!["add", base.original, missing]);
    assert!(msg.contains("no-such-file"), "{msg}");
    assert_eq!(pinned_roots(&base.store), [base.root.as_str()]);
    base.assert_intact();
}

#[test]
fn add_of_an_unreadable_file_is_refused() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let dir = tmp.path().join("locked");
    write_file(&dir.join("readable.txt"), b"fine", 0o644);
    write_file(&dir.join("private.txt"), b"no entry", 0o000);

    if permissions_block_reads(tmp.path()) {
        let msg = swarm_err(&base.store, args!["add", dir]);
        assert!(msg.contains("private.txt"), "{msg}");
        assert!(mentions(&msg, "cannot read"), "{msg}");
        assert!(mentions(&msg, "permission denied"), "{msg}");

        // An unreadable directory too.
        let sub = dir.join("closed");
        write_file(&sub.join("inside.txt"), b"x", 0o644);
        set_mode(&dir.join("private.txt"), 0o644);
        set_mode(&sub, 0o000);
        let msg = swarm_err(&base.store, args!["add", dir]);
        set_mode(&sub, 0o755);
        assert!(msg.contains("closed"), "{msg}");
        assert!(mentions(&msg, "permission denied"), "{msg}");
        assert_eq!(pinned_roots(&base.store), [base.root.as_str()]);
    } else {
        eprintln!(
            "note: skipping the unreadable-file refusal: this process reads files \
             whatever their mode (running as root or with CAP_DAC_OVERRIDE); \
             checking instead that a mode-000 file round-trips"
        );
        let added = add(&base.store, &[&dir]);
        let out = tmp.path().join("out");
        export(&base.store, &added.root, &out, false);
        assert_same_tree(&dir, &out.join("locked"));
    }
    base.assert_intact();
}

#[test]
fn add_of_a_symlink_loop_is_refused() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    // dir/up -> .. ; dir/here -> . ; me -> me
    let up = tmp.path().join("l1/dir");
    write_file(&up.join("file.txt"), b"x", 0o644);
    symlink("..", up.join("up")).expect("symlink");
    let here = tmp.path().join("l2/dir");
    write_file(&here.join("file.txt"), b"x", 0o644);
    symlink(".", here.join("here")).expect("symlink");
    let selfish = tmp.path().join("l3/dir");
    write_file(&selfish.join("file.txt"), b"x", 0o644);
    symlink("me", selfish.join("me")).expect("symlink");

    for dir in [&up, &here, &selfish] {
        let msg = swarm_err(&base.store, args!["add", dir]);
        assert!(mentions(&msg, "symlink loop"), "{msg}");
    }
    assert_eq!(pinned_roots(&base.store), [base.root.as_str()]);
    base.assert_intact();
}

#[test]
fn add_of_a_socket_is_refused() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let dir = tmp.path().join("withsock");
    write_file(&dir.join("file.txt"), b"x", 0o644);
    let _listener = UnixListener::bind(dir.join("sock")).expect("bind a unix socket");
    let msg = swarm_err(&base.store, args!["add", dir]);
    assert!(msg.contains("sock"), "{msg}");
    assert!(mentions(&msg, "not a regular file"), "{msg}");
    base.assert_intact();
}

#[test]
fn unknown_roots_are_refused_by_export_and_rm() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let unknown = blob_hash(b"never stored anywhere");
    let out = tmp.path().join("out");

    let msg = swarm_err(&base.store, args!["export", unknown, "-o", out]);
    assert!(msg.contains(&unknown), "{msg}");
    assert!(mentions(&msg, "not in this store"), "{msg}");
    assert!(
        !out.exists(),
        "export of an unknown root created {}",
        out.display()
    );

    let msg = swarm_err(&base.store, ["rm", &unknown]);
    assert!(msg.contains(&unknown), "{msg}");
    assert!(mentions(&msg, "not pinned"), "{msg}");
    base.assert_intact();
}

#[test]
fn a_blob_hash_is_not_taken_for_a_root() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let out = tmp.path().join("out");
    // Hashes of stored file contents, as `check` prints them: one inline
    // blob, one blob file.
    for bytes in [
        b"kept across failures\n".to_vec(),
        pseudo_random(200 * KIB, 99),
    ] {
        let h = blob_hash(&bytes);
        let msg = swarm_err(&base.store, args!["export", h, "-o", out]);
        assert!(msg.contains(&h), "{msg}");
        assert!(
            mentions(&msg, "not a manifest") || mentions(&msg, "not a root"),
            "export of a file's blob hash should say it is not a root: {msg}"
        );
        assert!(!out.exists());
        let msg = swarm_err(&base.store, ["rm", &h]);
        assert!(mentions(&msg, "not pinned"), "{msg}");
    }
    base.assert_intact();
}

#[test]
fn malformed_root_strings_are_refused() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let out = tmp.path().join("out");
    let bad = [
        "nothex".to_owned(),
        "".to_owned(),
        // Too short to be taken for a prefix of a pinned root.
        base.root[..3].to_owned(),
        format!("{}0", base.root),
        format!("{}g", &base.root[..63]),
        format!("{}/x", &base.root[..62]),
    ];
    for s in &bad {
        for args in [args!["export", s, "-o", out], args!["rm", s]] {
            let msg = swarm_err(&base.store, args);
            assert!(mentions(&msg, "not a root hash"), "{s:?}: {msg}");
            assert!(msg.contains("64 hex"), "{s:?}: {msg}");
        }
    }
    assert!(!out.exists());
    base.assert_intact();
}

/// A copy of the baseline store with `damage` applied to its swarm.redb.
fn damaged_copy(base: &Baseline, tmp: &Path, damage: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let copy = tmp.join("damaged-store");
    copy_dir(&base.store, &copy);
    let db = copy.join("swarm.redb");
    let mut bytes = fs::read(&db).expect("read swarm.redb");
    damage(&mut bytes);
    fs::write(&db, &bytes).expect("write damaged swarm.redb");
    copy
}

/// Every command on a damaged store fails cleanly and names the store, and
/// none of them rewrites the damaged database.
fn assert_damaged_store_refused(store: &Path, root: &str, scratch: &Path) {
    let db = store.join("swarm.redb");
    let before = fs::read(&db).expect("read swarm.redb");
    let file = scratch.join("new-file.txt");
    write_file(&file, b"new", 0o644);
    let out = scratch.join("out");
    let commands = [
        args!["ls"],
        args!["check"],
        args!["gc"],
        args!["add", file],
        args!["export", root, "-o", out],
        args!["rm", root],
    ];
    for args in commands {
        let run = swarm(store, &args);
        let msg = error_message(&run);
        assert!(mentions(&msg, "store"), "does not mention the store: {msg}");
        assert!(
            msg.contains(&store.display().to_string()),
            "does not say which store: {msg}"
        );
    }
    assert!(!out.exists());
    assert!(
        fs::read(&db).expect("read swarm.redb") == before,
        "a command rewrote the damaged database"
    );
}

#[test]
fn store_with_a_garbage_header_gives_a_clear_error() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let garbage = pseudo_random(4 * KIB, 77);
    let copy = damaged_copy(&base, tmp.path(), |b| {
        b[..4 * KIB].copy_from_slice(&garbage)
    });
    assert_damaged_store_refused(&copy, &base.root, tmp.path());
    base.assert_intact();
}

#[test]
fn store_with_garbage_pages_gives_a_clear_error_not_a_panic() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    // The header stays valid; every page after it is noise.
    let copy = damaged_copy(&base, tmp.path(), |b| {
        let n = b.len() - 4 * KIB;
        b[4 * KIB..].copy_from_slice(&pseudo_random(n, 78));
    });
    assert_damaged_store_refused(&copy, &base.root, tmp.path());
    base.assert_intact();
}

/// The engine's message names no flag; the CLI adds the one that helps.
#[test]
fn fetch_with_no_peer_and_no_dht_says_to_pass_a_peer() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let root = blob_hash(b"held by nobody");
    let msg = swarm_err(&store, args!["fetch", root, "--no-export"]);
    assert!(mentions(&msg, "the DHT is not in use"), "{msg}");
    assert!(
        msg.ends_with("unset SWARM_NO_DHT (it turns the DHT off) to look the root up there"),
        "{msg}"
    );
    assert_eq!(msg.matches("--peer").count(), 1, "{msg}");
}

#[test]
fn error_messages_state_their_cause_once() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    // An export under a regular file: the OS says "Not a directory".
    let file = tmp.path().join("plain-file");
    write_file(&file, b"x", 0o644);
    let msg = swarm_err(
        &base.store,
        args!["export", base.root, "-o", file.join("sub")],
    );
    assert_no_repeated_clause(&msg);
    // A store that is not a redb database.
    let copy = damaged_copy(&base, tmp.path(), |b| b[..4 * KIB].fill(0xAA));
    let msg = swarm_err(&copy, ["ls"]);
    assert_no_repeated_clause(&msg);
}

#[test]
fn export_refuses_to_write_through_a_symlinked_directory() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    make_tree(
        tmp.path(),
        &[
            ("src/a.txt", b"a".to_vec(), 0o644),
            ("src/sub/b.txt", pseudo_random(30 * KIB, 41), 0o644),
        ],
    );
    let root = add(&store, &[tmp.path().join("src")]).root;

    // out/src is a symlink to a directory outside out.
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).expect("mkdir");
    let out = tmp.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    symlink(&elsewhere, out.join("src")).expect("symlink");
    for force in [false, true] {
        let mut args = args!["export", root, "-o", out];
        if force {
            args.push("--force".into());
        }
        let msg = swarm_err(&store, args);
        assert!(mentions(&msg, "symlink"), "{msg}");
        assert!(msg.contains("src"), "{msg}");
        assert_eq!(
            dir_names(&elsewhere),
            Vec::<String>::new(),
            "wrote through the link"
        );
    }

    // A deeper component: out2/src/sub -> elsewhere2.
    let elsewhere2 = tmp.path().join("elsewhere2");
    fs::create_dir(&elsewhere2).expect("mkdir");
    let out2 = tmp.path().join("out2");
    fs::create_dir_all(out2.join("src")).expect("mkdir");
    symlink(&elsewhere2, out2.join("src/sub")).expect("symlink");
    let msg = swarm_err(&store, args!["export", root, "-o", out2, "--force"]);
    assert!(mentions(&msg, "symlink"), "{msg}");
    assert_eq!(
        dir_names(&elsewhere2),
        Vec::<String>::new(),
        "wrote through the link"
    );
    assert!(files_ending(&out2, ".swarm-part").is_empty());

    // A symlink in the file's own place is replaced, never written through.
    let victim = tmp.path().join("victim.txt");
    write_file(&victim, b"must not change", 0o644);
    let out3 = tmp.path().join("out3");
    fs::create_dir_all(out3.join("src")).expect("mkdir");
    symlink(&victim, out3.join("src/a.txt")).expect("symlink");
    let msg = swarm_err(&store, args!["export", root, "-o", out3]);
    assert!(mentions(&msg, "already exists"), "{msg}");
    export(&store, &root, &out3, true);
    assert_eq!(fs::read(&victim).expect("read victim"), b"must not change");
    assert_same_tree(&tmp.path().join("src"), &out3.join("src"));
    assert_check_ok(&store);
}

#[test]
fn stale_temporary_from_an_interrupted_export_does_not_block_export() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let src = tmp.path().join("app.bin");
    write_file(&src, &pseudo_random(100 * KIB, 51), 0o755);
    let root = add(&store, &[&src]).root;
    // What `kill -9` during an export leaves: the half-written temporary.
    let out = tmp.path().join("out");
    write_file(&out.join(".app.bin.swarm-part"), &[0u8; 4096], 0o644);
    let run = swarm(&store, args!["export", root, "-o", out]);
    assert!(
        run.success(),
        "a leftover temporary blocked the export:\n{run}"
    );
    assert_same_file(&src, &out.join("app.bin"));
}

#[test]
fn full_disk_during_add_loses_nothing() {
    let tmp = tempdir();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let fs4m = match Tmpfs::mount(&mnt, "4m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("note: skipping the full-disk test: cannot mount a tmpfs ({e})");
            return;
        }
    };
    let store = fs4m.path().join("store");
    let first = tmp.path().join("first.bin");
    write_file(&first, &pseudo_random(100_000, 61), 0o644);
    let kept = add(&store, &[&first]);

    // A blob file that does not fit.
    let big = tmp.path().join("big.bin");
    write_file(&big, &pseudo_random(8 * MIB, 62), 0o644);
    let msg = swarm_err(&store, args!["add", big]);
    assert!(mentions(&msg, "disk is full"), "{msg}");
    assert_eq!(
        tmp_files(&store),
        Vec::<String>::new(),
        "the failed add left temporaries"
    );
    assert_eq!(pinned_roots(&store), [kept.root.as_str()]);
    assert_exports_as(&store, &kept.root, &first);
    assert_check_ok(&store);

    // Many small blobs, which go into the database itself.
    let many = tmp.path().join("many");
    for i in 0..300 {
        write_file(
            &many.join(format!("f{i:03}")),
            &pseudo_random(GROUP, 1000 + i),
            0o644,
        );
    }
    let msg = swarm_err(&store, args!["add", many]);
    assert!(mentions(&msg, "disk is full"), "{msg}");
    assert_eq!(pinned_roots(&store), [kept.root.as_str()]);
    assert_exports_as(&store, &kept.root, &first);
    assert_check_ok(&store);

    // The space the failed adds took is given back: a small add works.
    let small = tmp.path().join("small.txt");
    write_file(&small, b"fits", 0o644);
    let s = add(&store, &[&small]);
    assert_exports_as(&store, &s.root, &small);
    assert_check_ok(&store);
    drop(fs4m);
}

// ---------------------------------------------------------------------------
// 6. Errors in --json mode.

/// A failed `--json` run: exit 1, one JSON object `{"error": "..."}` on
/// stdout, and the same message as the usual line on stderr.
fn json_error(store: &Path, args: Vec<OsString>) -> String {
    let mut all = args!["--json"];
    all.extend(args);
    let run = swarm(store, all);
    assert_no_panic(&run);
    assert_eq!(run.code, Some(1), "expected exit code 1:\n{run}");
    let v = run.json();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object:\n{run}"));
    assert_eq!(obj.len(), 1, "expected only \"error\":\n{run}");
    let msg = str_field(&v, "error").to_owned();
    assert!(!msg.is_empty());
    assert_eq!(run.stderr.trim_end(), format!("error: {msg}"), "{run}");
    msg
}

#[test]
fn json_mode_reports_errors_as_json() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let missing = tmp.path().join("missing");
    let unknown = blob_hash(b"unknown");
    let out = tmp.path().join("out");

    let msg = json_error(&base.store, args!["add", missing]);
    assert!(mentions(&msg, "no such file"), "{msg}");
    let msg = json_error(&base.store, args!["export", unknown, "-o", out]);
    assert!(mentions(&msg, "not in this store"), "{msg}");
    let msg = json_error(&base.store, args!["rm", unknown]);
    assert!(mentions(&msg, "not pinned"), "{msg}");
    let msg = json_error(&base.store, args!["rm", "xyz"]);
    assert!(mentions(&msg, "not a root hash"), "{msg}");

    // Refusing to overwrite, with the CLI's hint in the JSON too.
    export(&base.store, &base.root, &out, false);
    let msg = json_error(&base.store, args!["export", base.root, "-o", out]);
    assert!(mentions(&msg, "already exists"), "{msg}");
    assert!(msg.contains("pass --force"), "{msg}");

    // A store that cannot be opened.
    let copy = damaged_copy(&base, tmp.path(), |b| b[..4 * KIB].fill(0));
    let msg = json_error(&copy, args!["ls"]);
    assert!(mentions(&msg, "store"), "{msg}");
    base.assert_intact();
}

/// The README's first command: the demo runs every step and says so. It
/// runs its own DHT on 127.0.0.1, so it needs no network.
#[test]
fn demo_round_trips_locally_and_over_quic() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["--json", "demo"])
        .env("TMPDIR", scratch.path())
        .output()
        .expect("run swarm demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["files"], 5, "{v}");
    assert!(v["received"].as_u64().expect("received") >= 64 << 20, "{v}");
    // Three fetchers found the release through the demo's own DHT, and
    // swarmed: node A alone would have uploaded three copies.
    assert_eq!(v["fetchers"], 3, "{v}");
    // Release builds show about 1.1; a debug build on a busy machine is
    // CPU-bound and takes more from A, but never all three copies.
    let copies = v["seed_copies"].as_f64().expect("seed_copies");
    assert!((1.0..2.9).contains(&copies), "{v}");
    assert!(
        v["first_byte_seconds"].as_f64().expect("first byte") > 0.0,
        "{v}"
    );
    // It cleans up after itself.
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("read scratch")
        .collect();
    assert!(left.is_empty(), "demo left {left:?}");
}

#[test]
fn check_repair_rebuilds_a_store_whose_database_is_damaged() {
    let tmp = tempdir();
    let base = Baseline::new(tmp.path());
    let movie = tmp.path().join("movie.bin");
    write_file(&movie, &pseudo_random(MIB + 123, 5), 0o644);
    let movie_root = add(&base.store, &[&movie]).root;
    let garbage = pseudo_random(4 * KIB, 79);
    let copy = damaged_copy(&base, tmp.path(), |b| {
        b[..4 * KIB].copy_from_slice(&garbage)
    });
    let before = fs::read(copy.join("swarm.redb")).expect("read swarm.redb");

    // A clean error that says how to repair, not a panic.
    let msg = swarm_err(&copy, ["ls"]);
    assert!(msg.contains("swarm check --repair"), "{msg}");
    let msg = swarm_err(&copy, ["check"]);
    assert!(msg.contains("swarm check --repair"), "{msg}");

    let run = swarm(&copy, ["--json", "check", "--repair"]);
    assert_no_panic(&run);
    assert!(run.success(), "check --repair failed:\n{run}");
    let v = run.json();
    assert_eq!(v["ok"], Value::Bool(true), "{run}");
    let repair = &v["repair"];
    assert_eq!(repair["lost"].as_array().map(Vec::len), Some(0), "{run}");
    let mut pins: Vec<(String, String)> = repair["pins"]
        .as_array()
        .expect("a pins array")
        .iter()
        .map(|p| {
            (
                str_field(p, "root").to_owned(),
                str_field(p, "name").to_owned(),
            )
        })
        .collect();
    pins.sort();
    let mut want = vec![
        (base.root.clone(), "kept".to_owned()),
        (movie_root.clone(), "movie.bin".to_owned()),
    ];
    want.sort();
    assert_eq!(pins, want, "{run}");
    // The damaged file is kept, untouched, where the report says.
    let moved = PathBuf::from(str_field(repair, "moved_to"));
    assert!(moved.starts_with(&copy), "{run}");
    assert!(fs::read(&moved).expect("read the moved database") == before);

    // Every root exports byte for byte, and a second repair (text) is clean.
    assert_exports_as(&copy, &base.root, &base.original);
    assert_exports_as(&copy, &movie_root, &movie);
    let run = swarm(&copy, ["check", "--repair"]);
    assert_no_panic(&run);
    assert!(run.success(), "{run}");
    assert!(run.stdout.contains("pinned: "), "{run}");
    assert!(run.stderr.contains("all good"), "{run}");
    assert_check_ok(&copy);
    base.assert_intact();
}

#[test]
fn a_reader_that_closes_stdout_early_is_not_an_error() {
    // `swarm ls | head -1`, with the reader gone before anything is
    // written: every write gets a broken pipe.
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let src = tmp.path().join("a.bin");
    write_file(&src, b"a", 0o644);
    add(&store, &[&src]);
    for args in [&["ls"][..], &["--json", "ls"], &["--json", "trust", "ls"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = swarm_cmd(&store)
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run swarm");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{args:?}: {:?}\n{stderr}",
            out.status
        );
    }
}
