//! `swarm mirror`: the static layout of wire-spec/mirror.md, checked from
//! the written files alone, and a second run that changes nothing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use swarm_engine::content::{self, Manifest};
use swarm_engine::store::{MIRROR_INDEX, MIRROR_INDEX_NAME};

use crate::common::*;
use crate::{GROUP, KIB, data_file, tempdir};

/// Every file under `dir`: relative path to (inode, mtime, bytes).
fn files(dir: &Path) -> BTreeMap<String, (u64, i64, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, i64, Vec<u8>)>) {
        for e in fs::read_dir(dir).expect("read the mirror") {
            let p = e.expect("a directory entry").path();
            let meta = fs::symlink_metadata(&p).expect("stat");
            assert!(
                !meta.file_type().is_symlink(),
                "a symlink in the mirror: {p:?}"
            );
            if meta.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).expect("inside").to_string_lossy();
                let bytes = fs::read(&p).expect("read a mirror file");
                out.insert(rel.into_owned(), (meta.ino(), meta.mtime_nsec(), bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Check a mirror from its files alone: the index, each blob under its own
/// hash, each outboard equal to the one computed from its blob (and only
/// for blobs over one group), the manifest of `root` listing `want`, and
/// no file the layout does not name. Returns the token files.
fn check_layout(dir: &Path, root: &str, want: &[(&str, u64)]) -> BTreeMap<String, String> {
    let all = files(dir);
    let mut blobs = BTreeMap::new();
    let mut outboards = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for (rel, (_, _, bytes)) in &all {
        let parts: Vec<&str> = rel.split('/').collect();
        match parts.as_slice() {
            [name] if *name == MIRROR_INDEX_NAME => assert_eq!(bytes, MIRROR_INDEX),
            ["blobs", shard, name] => {
                let (hash, outboard) = match name.strip_suffix(".obao4") {
                    Some(h) => (h, true),
                    None => (*name, false),
                };
                assert!(is_root_hex(hash), "not a hash: {rel}");
                assert_eq!(*shard, &hash[..2], "{rel} is in the wrong directory");
                if outboard {
                    outboards.insert(hash.to_owned(), bytes.clone());
                } else {
                    assert_eq!(blob_hash(bytes), hash, "{rel} does not hash to its name");
                    blobs.insert(hash.to_owned(), bytes.clone());
                }
            }
            ["releases", _, _, _, "latest"] => {
                let text = String::from_utf8(bytes.clone()).expect("a token is text");
                assert!(text.starts_with("swr1") && text.ends_with('\n'), "{text:?}");
                tokens.insert(rel.clone(), text.trim().to_owned());
            }
            _ => panic!("{rel} is not part of the layout"),
        }
    }
    for (hash, data) in &blobs {
        let size = data.len() as u64;
        match outboards.remove(hash) {
            None => assert!(size <= GROUP as u64, "{hash}: {size} bytes and no outboard"),
            Some(ob) => {
                assert!(size > GROUP as u64, "{hash}: one group needs no outboard");
                let mut want_ob = Vec::new();
                let h = content::compute_outboard(&data[..], size, &mut want_ob).expect("hash");
                assert_eq!(h.to_hex(), *hash);
                assert_eq!(ob, want_ob, "the outboard of {hash} is not its own");
            }
        }
    }
    assert!(
        outboards.is_empty(),
        "outboards without data: {outboards:?}"
    );
    let manifest = Manifest::decode(blobs.get(root).expect("the manifest is there"))
        .expect("the manifest decodes");
    let listed: Vec<(&str, u64)> = manifest
        .entries()
        .iter()
        .map(|e| (e.path.as_str(), e.size))
        .collect();
    assert_eq!(listed, want);
    for e in manifest.entries() {
        let data = blobs
            .get(&e.hash.to_hex())
            .expect("every listed blob is there");
        assert_eq!(data.len() as u64, e.size);
    }
    tokens
}

#[test]
fn a_mirror_holds_every_blob_verified_and_a_second_run_changes_nothing() {
    let tmp = tempdir();
    let site = tmp.path().join("site");
    make_tree(
        &site,
        &[
            ("index.html", b"<h1>mirror</h1>\n".to_vec(), 0o644),
            ("empty", Vec::new(), 0o644),
            ("one-group.bin", pseudo_random(GROUP, 1), 0o644),
            ("data/big.bin", pseudo_random(300 * KIB + 7, 2), 0o600),
            ("data/copy.bin", pseudo_random(300 * KIB + 7, 2), 0o644),
        ],
    );
    let store = tmp.path().join("store");
    let root = add(&store, &[&site]).root;
    let out = tmp.path().join("out");
    let first = swarm_json(&store, args!["mirror", &root, &out]);
    let want = [
        ("site/data/big.bin", 300 * 1024 + 7),
        ("site/data/copy.bin", 300 * 1024 + 7),
        ("site/empty", 0),
        ("site/index.html", 16),
        ("site/one-group.bin", GROUP as u64),
    ];
    assert!(check_layout(&out, &root, &want).is_empty());
    // Index, manifest, four distinct blobs (the copy is shared), one outboard.
    assert_eq!(u64_field(&first, "files"), 7, "{first}");
    assert_eq!(u64_field(&first, "written"), 7, "{first}");
    assert_eq!(str_field(&first, "root"), root);

    let before = files(&out);
    let again = swarm_json(&store, args!["mirror", &root, &out]);
    assert_eq!(u64_field(&again, "written"), 0, "{again}");
    assert_eq!(u64_field(&again, "files"), 7, "{again}");
    assert_eq!(files(&out), before, "the second run changed a file");

    // A damaged blob is put right; its sound outboard stays.
    let big = blob_hash(&pseudo_random(300 * KIB + 7, 2));
    flip_byte(&out.join(format!("blobs/{}/{big}", &big[..2])), 100_000);
    let fixed = swarm_json(&store, args!["mirror", &root, &out]);
    assert_eq!(u64_field(&fixed, "replaced"), 1, "{fixed}");
    assert_eq!(u64_field(&fixed, "written"), 1, "{fixed}");
    check_layout(&out, &root, &want);
}

#[test]
fn a_release_token_is_checked_against_trust_and_written_as_latest() {
    let (tmp, p) = publish(&[("app.bin", pseudo_random(50 * KIB, 3), 0o755)]);
    let (store, token, publisher, root) = (p.store, p.token, p.publisher, p.root);
    let out = tmp.path().join("out");

    // Without trust in the publisher, nothing is written.
    let msg = swarm_err(&store, args!["mirror", &token, &out]);
    assert!(mentions(&msg, "trust"), "{msg}");
    assert!(!out.exists(), "nothing written for an untrusted release");

    let done = swarm_json(&store, args!["mirror", &token, &out, "--trust", &publisher]);
    let latest = format!("releases/{publisher}/app/stable/latest");
    assert_eq!(str_field(&done, "latest"), latest);
    let tokens = check_layout(&out, &root, &[("app/app.bin", 50 * 1024)]);
    assert_eq!(tokens, BTreeMap::from([(latest, token.clone())]));
    let again = swarm_json(&store, args!["mirror", &token, &out, "--trust", &publisher]);
    assert_eq!(u64_field(&again, "written"), 0, "{again}");
    // The token names the root the mirror holds.
    let signed = swarm_engine::release::SignedRelease::from_token(&token).expect("a token");
    assert_eq!(signed.release().root.to_hex(), root);
}

#[test]
fn a_mirror_inside_the_store_or_of_an_unknown_root_is_refused() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let site = tmp.path().join("f.txt");
    write_file(&site, b"x", 0o644);
    let root = add(&store, &[&site]).root;
    let msg = swarm_err(&store, args!["mirror", &root, store.join("www")]);
    assert!(mentions(&msg, "inside the store"), "{msg}");
    let unknown = blob_hash(b"not stored");
    let msg = swarm_err(&store, args!["mirror", &unknown, tmp.path().join("out")]);
    assert!(mentions(&msg, &unknown), "{msg}");
}

#[test]
fn corrupt_stored_data_is_not_mirrored() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let file = tmp.path().join("big.bin");
    let data = pseudo_random(100 * KIB, 4);
    write_file(&file, &data, 0o644);
    let root = add(&store, &[&file]).root;
    let hash = blob_hash(&data);
    flip_byte(&data_file(&store, &hash), 50_000);
    let out = tmp.path().join("out");
    let msg = swarm_err(&store, args!["mirror", &root, &out]);
    assert!(mentions(&msg, "does not match its hash"), "{msg}");
    assert!(mentions(&msg, &hash), "{msg}");
    let written = files(&out);
    assert!(
        written.keys().all(|k| !k.contains(&hash)),
        "nothing of the corrupt blob is in the mirror: {:?}",
        written.keys()
    );
}

/// A release published from a fresh store.
struct Published {
    store: std::path::PathBuf,
    token: String,
    publisher: String,
    root: String,
    content: std::path::PathBuf,
}

/// `swarm keygen`, then `swarm publish` of a tree of `specs` as app 1.0.0.
fn publish(specs: &[Spec<'_>]) -> (tempfile::TempDir, Published) {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let key = tmp.path().join("publisher.key");
    swarm_ok(&tmp.path().join("unused"), args!["keygen", "-o", &key]);
    let content = tmp.path().join("app");
    make_tree(&content, specs);
    let published = swarm_json(
        &store,
        args![
            "publish",
            &content,
            "--key",
            &key,
            "--name",
            "app",
            "--version",
            "1.0.0"
        ],
    );
    let p = Published {
        token: str_field(&published, "token").to_owned(),
        publisher: str_field(&published, "publisher").to_owned(),
        root: str_field(&published, "root").to_owned(),
        store,
        content,
    };
    (tmp, p)
}

/// A release of a tree (a file over many groups, small ones), mirrored
/// into `www`: (tmp, token, publisher, root, tree).
fn published_mirror() -> (
    tempfile::TempDir,
    String,
    String,
    String,
    std::path::PathBuf,
) {
    let (tmp, p) = publish(&[
        ("app.bin", pseudo_random(3 << 20, 21), 0o755),
        ("lib/small.txt", b"small\n".to_vec(), 0o644),
        ("lib/mid.dat", pseudo_random(100 * KIB, 22), 0o644),
    ]);
    let www = tmp.path().join("www");
    swarm_ok(
        &p.store,
        args!["mirror", &p.token, &www, "--trust", &p.publisher],
    );
    (tmp, p.token, p.publisher, p.root, p.content)
}

/// Print why a test that needs a system server did not run.
fn skipped(what: &swarm_testkit::servers::Missing) {
    eprintln!("SKIPPED: {what}");
}

#[test]
fn a_release_fetched_from_nginx_alone_is_byte_identical() {
    let (tmp, token, publisher, root, content) = published_mirror();
    let nginx = match swarm_testkit::servers::nginx(&tmp.path().join("www"), None) {
        Ok(n) => n.expect("nginx starts"),
        Err(missing) => return skipped(&missing),
    };
    let fetcher = tmp.path().join("fetcher");
    let out = tmp.path().join("out");
    let v = swarm_json(
        &fetcher,
        args![
            "fetch",
            &token,
            "--trust",
            &publisher,
            "--mirror",
            nginx.url(),
            "-o",
            &out
        ],
    );
    assert_same_tree(&content, &out.join("app"));
    assert_eq!(str_field(&v, "root"), root);
    let mirrors = v["mirrors"].as_array().expect("mirrors in the report");
    assert_eq!(mirrors.len(), 1, "{v}");
    assert_eq!(str_field(&mirrors[0], "url"), nginx.url());
    assert_eq!(u64_field(&mirrors[0], "bytes"), (3 << 20) + 6 + 100 * 1024);
    assert_eq!(v["peers"].as_array().map(Vec::len), Some(0), "{v}");
    // A mirror that is down, given first, is noted and the fetch goes on.
    let fetcher2 = tmp.path().join("fetcher2");
    let dead = format!("http://127.0.0.1:{}/", unused_tcp_port());
    let out2 = tmp.path().join("out2");
    let run = swarm_ok(
        &fetcher2,
        args![
            "fetch",
            &token,
            "--trust",
            &publisher,
            "--mirror",
            &dead,
            "--mirror",
            nginx.url(),
            "-o",
            &out2
        ],
    );
    assert_same_tree(&content, &out2.join("app"));
    assert!(mentions(&run.stderr, &dead), "{run}");
}

#[test]
fn python_http_server_ignores_range_and_is_dropped_naming_the_url() {
    let (tmp, token, publisher, _root, _content) = published_mirror();
    let py = match swarm_testkit::servers::python_http(&tmp.path().join("www")) {
        Ok(p) => p.expect("python3 -m http.server starts"),
        Err(missing) => return skipped(&missing),
    };
    let fetcher = tmp.path().join("fetcher");
    let msg = swarm_err(
        &fetcher,
        args![
            "fetch",
            &token,
            "--trust",
            &publisher,
            "--mirror",
            py.url(),
            "-o",
            tmp.path().join("out")
        ],
    );
    assert!(mentions(&msg, "ignores Range requests"), "{msg}");
    assert!(mentions(&msg, &py.url()), "{msg}");
    assert!(!tmp.path().join("out").join("app").exists());
    // Whatever it could send whole (the small files, the first piece) was
    // verified and kept; nginx completes the rest.
    if let Ok(nginx) = swarm_testkit::servers::nginx(&tmp.path().join("www"), None) {
        let nginx = nginx.expect("nginx starts");
        swarm_ok(
            &fetcher,
            args![
                "fetch",
                &token,
                "--trust",
                &publisher,
                "--mirror",
                nginx.url(),
                "-o",
                tmp.path().join("out")
            ],
        );
        assert_check_ok(&fetcher);
    }
}

#[test]
fn bad_mirror_urls_are_refused_before_anything_runs() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let root = blob_hash(b"whatever");
    for bad in ["ftp://example.com/", "not a url", "http://h/x?q=1"] {
        let msg = swarm_err(
            &store,
            args!["fetch", &root, "--mirror", bad, "-o", tmp.path()],
        );
        assert!(mentions(&msg, "not a mirror URL"), "{bad}: {msg}");
    }
}

fn unused_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
