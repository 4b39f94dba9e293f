use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::*;
use crate::content::{BaoContentItem, Entry, Manifest, decode_ranges, group_ranges};
use crate::release::SecretKey;

const SPEC: &str = include_str!("../../../../wire-spec/mirror.md");

/// The text of the code block after `<!-- name -->` in mirror.md.
fn block(name: &str) -> &'static str {
    let open = format!("<!-- {name} -->");
    let at = SPEC
        .find(&open)
        .unwrap_or_else(|| panic!("{open} is in mirror.md"));
    let body = &SPEC[at + open.len()..];
    let a = body.find("```").unwrap() + 3;
    let a = a + body[a..].find('\n').unwrap() + 1;
    let b = a + body[a..].find("```").unwrap();
    &body[a..b]
}

fn hex_block(name: &str) -> String {
    block(name).split_whitespace().collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Byte `i` of the vector's large file.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

fn entry(path: &str, data: &[u8]) -> Entry {
    Entry {
        path: path.into(),
        size: data.len() as u64,
        mode: 0o644,
        hash: Hash::of(data),
        extensions: vec![],
    }
}

/// A store holding a root of `files`; returns the root.
fn store_with(store: &Store, files: &[(&str, Vec<u8>)]) -> Hash {
    let mut entries = Vec::new();
    for (path, data) in files {
        store.put_blob(data).unwrap();
        entries.push(entry(path, data));
    }
    let m = Manifest::new(entries).unwrap();
    let root = store.put_blob(&m.encode()).unwrap();
    assert_eq!(root, m.root());
    root
}

/// The vector of mirror.md §6: its store, root and release.
fn vector(store: &Store) -> (Hash, SignedRelease) {
    let root = store_with(
        store,
        &[
            ("big.bin", pattern(40_000)),
            ("hello.txt", b"hello".to_vec()),
        ],
    );
    let key = SecretKey::from_seed(&[7; 32]);
    let signed = Release {
        publisher: key.public(),
        name: "myapp".into(),
        channel: "stable".into(),
        version: semver::Version::new(1, 0, 0),
        seq: 1,
        root,
        size: 40_005,
        created: 1_800_000_000,
        expires: None,
        rollout: Default::default(),
    }
    .sign(&key)
    .unwrap();
    (root, signed)
}

/// Every file under `dir`: relative path to (size, BLAKE3).
fn listing(dir: &Path) -> BTreeMap<String, (u64, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, String)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let bytes = fs::read(&p).unwrap();
                out.insert(rel, (bytes.len() as u64, Hash::of(&bytes).to_hex()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn spec_listing() -> BTreeMap<String, (u64, String)> {
    block("mirror-vector-files")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "{l}");
            (f[0].to_owned(), (f[1].parse().unwrap(), f[2].to_owned()))
        })
        .collect()
}

fn with_release(signed: &SignedRelease) -> MirrorOptions {
    MirrorOptions {
        release: Some(signed.clone()),
        ..Default::default()
    }
}

/// The layout of mirror.md §6, byte for byte: every path, size and hash,
/// nothing else, and the small files' bytes.
#[test]
fn spec_vector() {
    let store = Store::memory().unwrap();
    let (root, signed) = vector(&store);
    let out = tempfile::tempdir().unwrap();
    let done = store
        .write_mirror(&root, out.path(), &with_release(&signed))
        .unwrap();
    assert_eq!(listing(out.path()), spec_listing());
    assert_eq!((done.files, done.written, done.replaced), (6, 6, 0));
    assert_eq!(
        done.bytes,
        spec_listing().values().map(|v| v.0).sum::<u64>()
    );

    let read = |rel: &str| fs::read(out.path().join(rel)).unwrap();
    assert_eq!(root.to_hex(), hex_block("mirror-vector-root"));
    assert_eq!(
        hex(&read(MIRROR_INDEX_NAME)),
        hex_block("mirror-vector-index")
    );
    assert_eq!(
        hex(&read(&mirror_blob_path(&root))),
        hex_block("mirror-vector-manifest")
    );
    let big = Hash::of(&pattern(40_000));
    assert_eq!(
        hex(&read(&mirror_outboard_path(&big))),
        hex_block("mirror-vector-outboard")
    );
    let latest = done.latest.unwrap();
    assert_eq!(
        String::from_utf8(read(&latest)).unwrap(),
        format!("{}\n", hex_block("mirror-vector-token"))
    );
    assert_eq!(signed.to_token(), hex_block("mirror-vector-token"));
    // The proof table: group → outboard offsets, root first.
    for line in block("mirror-vector-proof").lines() {
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let Some((&g, offsets)) = f.split_first() else {
            continue;
        };
        assert_eq!(mirror_proof_offsets(40_000, g), offsets, "group {g}");
    }
}

#[test]
fn a_second_run_writes_nothing() {
    let store = Store::memory().unwrap();
    let (root, signed) = vector(&store);
    let out = tempfile::tempdir().unwrap();
    let opts = with_release(&signed);
    store.write_mirror(&root, out.path(), &opts).unwrap();
    let inode = |rel: &str| fs::metadata(out.path().join(rel)).unwrap().ino();
    let before: Vec<u64> = spec_listing().keys().map(|k| inode(k)).collect();
    let again = store.write_mirror(&root, out.path(), &opts).unwrap();
    assert_eq!((again.files, again.written, again.written_bytes), (6, 0, 0));
    let after: Vec<u64> = spec_listing().keys().map(|k| inode(k)).collect();
    assert_eq!(before, after, "no file was rewritten");
    assert_eq!(listing(out.path()), spec_listing());
}

#[test]
fn damaged_files_are_replaced_and_a_symlink_is_not_followed() {
    let store = Store::memory().unwrap();
    let (root, signed) = vector(&store);
    let out = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let opts = with_release(&signed);
    store.write_mirror(&root, out.path(), &opts).unwrap();
    let big = Hash::of(&pattern(40_000));
    let hello = Hash::of(b"hello");
    let at = |rel: String| out.path().join(rel);

    // One flipped byte in the large file.
    let mut data = fs::read(at(mirror_blob_path(&big))).unwrap();
    data[20_000] ^= 1;
    fs::write(at(mirror_blob_path(&big)), &data).unwrap();
    // A wrong outboard for the manifest... it has none; a wrong one for big.
    let mut ob = fs::read(at(mirror_outboard_path(&big))).unwrap();
    ob[0] ^= 1;
    // The small file: a symlink to a file outside the target.
    let victim = outside.path().join("victim");
    fs::write(&victim, b"not yours").unwrap();
    fs::remove_file(at(mirror_blob_path(&hello))).unwrap();
    std::os::unix::fs::symlink(&victim, at(mirror_blob_path(&hello))).unwrap();
    // The token: truncated.
    let latest = mirror_latest_path(signed.release());
    fs::write(at(latest.clone()), b"swr1").unwrap();
    // The manifest: missing.
    fs::remove_file(at(mirror_blob_path(&root))).unwrap();

    let done = store.write_mirror(&root, out.path(), &opts).unwrap();
    assert_eq!(listing(out.path()), spec_listing());
    assert_eq!(fs::read(&victim).unwrap(), b"not yours");
    assert!(
        fs::symlink_metadata(at(mirror_blob_path(&hello)))
            .unwrap()
            .is_file()
    );
    // big's data (its sound outboard is kept), hello, the token, and the
    // manifest, which was missing.
    assert_eq!((done.written, done.replaced), (4, 3), "{done:?}");

    // An outboard alone damaged is replaced alone.
    fs::write(at(mirror_outboard_path(&big)), &ob).unwrap();
    let done = store.write_mirror(&root, out.path(), &opts).unwrap();
    assert_eq!((done.written, done.replaced), (1, 1), "{done:?}");
    assert_eq!(listing(out.path()), spec_listing());

    // Both damaged: both replaced; the outboard is checked against the
    // store's bytes, since the mirror's cannot vouch for it.
    fs::write(at(mirror_blob_path(&big)), &data).unwrap();
    fs::write(at(mirror_outboard_path(&big)), &ob).unwrap();
    let done = store.write_mirror(&root, out.path(), &opts).unwrap();
    assert_eq!((done.written, done.replaced), (2, 2), "{done:?}");
    assert_eq!(listing(out.path()), spec_listing());
}

/// A reader that has only the files: every group of every blob verifies
/// against the root from the outboard nodes mirror.md §4.2 names and the
/// group's bytes, and a bad node or byte is caught.
#[test]
fn every_group_verifies_from_the_files_alone() {
    let store = Store::memory().unwrap();
    let sizes = [0usize, 1, 16_384, 16_385, 40_000, 5 * 16_384, 1_000_001];
    let files: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .map(|&n| {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 253) as u8 ^ (n as u8)).collect();
            (format!("f{n}"), data)
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let root = store_with(&store, &refs);
    let out = tempfile::tempdir().unwrap();
    store
        .write_mirror(&root, out.path(), &Default::default())
        .unwrap();

    let manifest_bytes = fs::read(out.path().join(mirror_blob_path(&root))).unwrap();
    assert_eq!(Hash::of(&manifest_bytes), root);
    let manifest = Manifest::decode(&manifest_bytes).unwrap();
    assert_eq!(manifest.entries().len(), sizes.len());
    for e in manifest.entries() {
        let data = fs::read(out.path().join(mirror_blob_path(&e.hash))).unwrap();
        assert_eq!(data.len() as u64, e.size);
        let ob_path = out.path().join(mirror_outboard_path(&e.hash));
        if e.size <= GROUP_SIZE {
            assert!(!ob_path.exists(), "one group: no outboard");
            assert_eq!(Hash::of(&data), e.hash);
            continue;
        }
        let ob = fs::read(&ob_path).unwrap();
        assert_eq!(ob.len() as u64, content::outboard_size(e.size));
        for g in 0..content::group_count(e.size) {
            let encode = |ob: &[u8], data: &[u8]| {
                let mut enc = Vec::new();
                for off in mirror_proof_offsets(e.size, g) {
                    enc.extend_from_slice(&ob[off as usize..][..64]);
                }
                let a = (g * GROUP_SIZE) as usize;
                let b = (a + GROUP_SIZE as usize).min(data.len());
                enc.extend_from_slice(&data[a..b]);
                enc
            };
            let ranges = group_ranges(g, g + 1);
            let verify = |enc: Vec<u8>| -> Result<Vec<u8>, content::DecodeError> {
                let mut got = Vec::new();
                for item in decode_ranges(e.hash, e.size, &ranges, &enc[..]) {
                    if let BaoContentItem::Leaf(l) = item? {
                        got.extend_from_slice(&l.data);
                    }
                }
                Ok(got)
            };
            let a = (g * GROUP_SIZE) as usize;
            let got = verify(encode(&ob, &data)).unwrap();
            assert_eq!(got, data[a..(a + GROUP_SIZE as usize).min(data.len())]);
            // A flipped byte in the group's data is caught.
            let mut bad = data.clone();
            bad[a] ^= 1;
            assert!(
                verify(encode(&ob, &bad)).is_err(),
                "size {} group {g}",
                e.size
            );
            // So is a flipped byte in any node of its proof.
            for off in mirror_proof_offsets(e.size, g) {
                let mut bad_ob = ob.clone();
                bad_ob[off as usize + 5] ^= 1;
                assert!(verify(encode(&bad_ob, &data)).is_err());
            }
        }
    }
}

#[test]
fn proof_offsets_name_every_node_once_per_path() {
    // Each node's offset is a multiple of 64 inside the outboard, and the
    // root (the last node in post-order) heads every path.
    for size in [16_385u64, 3 * GROUP_SIZE, 7 * GROUP_SIZE + 1, 1 << 24] {
        let ob = content::outboard_size(size);
        let mut seen = std::collections::BTreeSet::new();
        for g in 0..content::group_count(size) {
            let p = mirror_proof_offsets(size, g);
            assert_eq!(p[0], ob - 64, "size {size}");
            for off in p {
                assert!(off % 64 == 0 && off < ob);
                seen.insert(off);
            }
        }
        assert_eq!(seen.len() as u64, content::group_count(size) - 1);
    }
    assert!(mirror_proof_offsets(40_000, 3).is_empty());
}

#[test]
fn a_target_inside_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let (root, _) = vector(&store);
    let err = store
        .write_mirror(&root, &dir.path().join("store/mirror"), &Default::default())
        .unwrap_err();
    assert!(matches!(err, MirrorError::InsideStore(_)), "{err:?}");
    assert!(!dir.path().join("store/mirror").exists());
}

#[test]
fn a_symlinked_directory_in_the_target_is_refused() {
    let store = Store::memory().unwrap();
    let (root, _) = vector(&store);
    let out = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), out.path().join("blobs")).unwrap();
    let err = store
        .write_mirror(&root, out.path(), &Default::default())
        .unwrap_err();
    assert!(
        matches!(&err, MirrorError::Unsafe(p) if p.ends_with("blobs")),
        "{err:?}"
    );
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn corrupt_stored_data_is_refused_and_nothing_is_written_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir).unwrap();
    let (root, _) = vector(&store);
    let big = Hash::of(&pattern(40_000));
    let hex = big.to_hex();
    let file = store_dir.join(format!("blobs/{}/{hex}.data", &hex[..2]));
    let mut bytes = fs::read(&file).unwrap();
    bytes[30_000] ^= 1;
    fs::write(&file, &bytes).unwrap();
    let out = dir.path().join("mirror");
    let err = store
        .write_mirror(&root, &out, &Default::default())
        .unwrap_err();
    assert!(
        matches!(err, MirrorError::Corrupt(h) if h == big),
        "{err:?}"
    );
    let files = listing(&out);
    assert!(
        files.keys().all(|k| !k.contains(&hex)),
        "nothing for the corrupt blob: {files:?}"
    );
    // The store now knows that group is gone.
    assert!(matches!(
        store.read_blob(&big, 1 << 20),
        Err(ReadError::Incomplete(_))
    ));
}

#[test]
fn a_newer_release_in_the_mirror_is_kept_and_equivocation_refused() {
    let store = Store::memory().unwrap();
    let (root, one) = vector(&store);
    let key = SecretKey::from_seed(&[7; 32]);
    let sign = |seq, version| {
        let mut r = one.release().clone();
        r.seq = seq;
        r.version = semver::Version::new(1, version, 0);
        r.sign(&key).unwrap()
    };
    let two = sign(2, 0);
    let out = tempfile::tempdir().unwrap();
    store
        .write_mirror(&root, out.path(), &with_release(&two))
        .unwrap();
    let done = store
        .write_mirror(&root, out.path(), &with_release(&one))
        .unwrap();
    assert_eq!(done.newer_kept, Some(2));
    let latest = out.path().join(done.latest.unwrap());
    assert_eq!(
        fs::read_to_string(&latest).unwrap(),
        format!("{}\n", two.to_token())
    );
    let err = store
        .write_mirror(&root, out.path(), &with_release(&sign(2, 9)))
        .unwrap_err();
    assert!(
        matches!(err, MirrorError::Equivocation { seq: 2, .. }),
        "{err:?}"
    );
    // A newer one replaces it.
    let three = sign(3, 1);
    let done = store
        .write_mirror(&root, out.path(), &with_release(&three))
        .unwrap();
    assert_eq!((done.newer_kept, done.replaced), (None, 1));
    assert_eq!(
        fs::read_to_string(&latest).unwrap(),
        format!("{}\n", three.to_token())
    );
}

#[test]
fn another_layout_version_is_refused_and_a_release_of_another_root_too() {
    let store = Store::memory().unwrap();
    let (root, signed) = vector(&store);
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join(MIRROR_INDEX_NAME), b"swarm-mirror 2\n").unwrap();
    let err = store
        .write_mirror(&root, out.path(), &Default::default())
        .unwrap_err();
    assert!(matches!(&err, MirrorError::Version { found, .. } if found == "swarm-mirror 2"));
    let other = store_with(&store, &[("x", b"x".to_vec())]);
    let err = store
        .write_mirror(&other, out.path(), &with_release(&signed))
        .unwrap_err();
    assert!(
        matches!(err, MirrorError::ReleaseMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn a_partial_blob_is_missing() {
    let store = Store::memory().unwrap();
    let data = pattern(100_000);
    let m = Manifest::new(vec![entry("a", &data)]).unwrap();
    let root = store.put_blob(&m.encode()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = store
        .write_mirror(&root, out.path(), &Default::default())
        .unwrap_err();
    assert!(
        matches!(err, MirrorError::Missing(h) if h == Hash::of(&data)),
        "{err:?}"
    );
}
