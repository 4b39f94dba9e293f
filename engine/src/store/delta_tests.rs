//! Patches in a release (issue 18): made at publish, kept by gc, applied
//! into another store and checked whole, and refused when they lie.

use std::fs;

use super::*;
use crate::content::delta;
use crate::release::SecretKey;

/// A program-like file and its next build: the same bytes with a
/// few changes and a shift, as a small source change makes.
fn builds(n: usize) -> (Vec<u8>, Vec<u8>) {
    let old = crate::testutil::data(41, n / 64).repeat(64);
    let mut new = old.clone();
    new.splice(70_000..70_000, b"a new function".iter().copied());
    for i in (0..new.len()).step_by(4_099) {
        new[i] ^= 0x11;
    }
    (old, new)
}

fn publish(store: &Store, dir: &std::path::Path, bin: &[u8], v: &str, from: &[Hash]) -> Published {
    let app = dir.join(format!("v{v}/app"));
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("bin"), bin).unwrap();
    fs::write(app.join("README"), b"the same in every release").unwrap();
    let mut opts = PublishOptions::new("app", v.parse().unwrap());
    opts.delta_from = from.to_vec();
    store
        .publish(&SecretKey::from_seed(&[5; 32]), &[app], &opts)
        .unwrap()
}

#[test]
fn a_release_lists_its_patches_gc_keeps_them_and_another_store_makes_the_file_from_one() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = Store::memory().unwrap();
    let (old, new) = builds(1 << 20);
    let v1 = publish(&publisher, dir.path(), &old, "1.0.0", &[]);
    let v2 = publish(&publisher, dir.path(), &new, "1.1.0", &[v1.added.root]);
    // One patch, for the file that changed; none for the README.
    assert_eq!(v2.patches.len(), 1, "{:?}", v2.patches);
    let made = &v2.patches[0];
    assert_eq!(made.path, "app/bin");
    assert!(made.size < new.len() as u64 / 10, "{made:?}");
    // The signed root is the manifest that lists it.
    assert_eq!(v2.release.release().root, v2.added.root);
    let m = publisher.manifest(&v2.added.root).unwrap();
    let bin = m.entries().iter().find(|e| e.path == "app/bin").unwrap();
    let refs = delta::patches_of(bin);
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].patch, made.patch);
    // Only v2's manifest is pinned under the name; gc keeps the patch.
    publisher.gc().unwrap();
    assert!(publisher.blob_info(&made.patch).unwrap().is_some());
    let r = publisher.check(|_| {}).unwrap();
    assert!(r.problems.is_empty(), "{:#?}", r.problems);

    // Another store holds v1's file and the patch: it makes v2's file,
    // checked against its hash, and exports the same bytes.
    let other = Store::memory().unwrap();
    other.put_blob(&old).unwrap();
    let patch = publisher
        .read_blob(&made.patch, made.size)
        .unwrap()
        .unwrap();
    other.put_blob(&patch).unwrap();
    assert!(matches!(
        other.apply_patch(bin, &refs[0]).unwrap(),
        Applied::Stored
    ));
    let back = other.read_blob(&bin.hash, bin.size).unwrap().unwrap();
    assert!(back == new, "the made file differs");
}

#[test]
fn a_patch_that_makes_other_bytes_or_a_missing_base_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = Store::memory().unwrap();
    let (old, new) = builds(1 << 19);
    let v1 = publish(&publisher, dir.path(), &old, "1.0.0", &[]);
    let v2 = publish(&publisher, dir.path(), &new, "1.1.0", &[v1.added.root]);
    let m = publisher.manifest(&v2.added.root).unwrap();
    let bin = m
        .entries()
        .iter()
        .find(|e| e.path == "app/bin")
        .unwrap()
        .clone();
    let p = delta::patches_of(&bin)[0];

    // No base here: nothing to apply.
    let other = Store::memory().unwrap();
    assert!(matches!(
        other.apply_patch(&bin, &p).unwrap(),
        Applied::Unavailable
    ));

    // A base that is another file (changed on disk, or a wrong record):
    // the output does not hash right, and nothing is stored.
    let mut wrong_base = old.clone();
    wrong_base[1_000] ^= 1;
    let wb = other.put_blob(&wrong_base).unwrap();
    let patch = publisher.read_blob(&p.patch, p.size).unwrap().unwrap();
    other.put_blob(&patch).unwrap();
    let lying = delta::PatchRef { base: wb, ..p };
    assert!(matches!(
        other.apply_patch(&bin, &lying).unwrap(),
        Applied::Wrong
    ));
    assert_eq!(other.blob_info(&bin.hash).unwrap(), None);

    // A patch damaged in its streams: refused or wrong, never stored.
    other.put_blob(&old).unwrap();
    let mut bad = patch.clone();
    let at = bad.len() - 40;
    bad[at] ^= 0xff;
    let bad_hash = other.put_blob(&bad).unwrap();
    let damaged = delta::PatchRef {
        patch: bad_hash,
        ..p
    };
    let r = other.apply_patch(&bin, &damaged).unwrap();
    assert!(matches!(r, Applied::Wrong | Applied::Failed(_)), "{r:?}");
    assert_eq!(other.blob_info(&bin.hash).unwrap(), None);
    // And the good patch still works afterwards.
    assert!(matches!(
        other.apply_patch(&bin, &p).unwrap(),
        Applied::Stored
    ));
}
