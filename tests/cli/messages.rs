//! Messages and help texts a new user met that said the wrong thing
//! (issue 17, item 8): one regression test each, through the real binary.

use std::process::Command;

use crate::common::*;
use crate::tempdir;

fn help(args: &[&str]) -> String {
    let out = Command::new(SWARM)
        .args(args)
        .arg("--help")
        .output()
        .expect("run swarm --help");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The last stderr line of a failed run, without its `error: `.
fn error_of(run: &Run) -> String {
    assert!(!run.success(), "expected a failure:\n{run}");
    assert_no_panic(run);
    error_message(run)
}

#[test]
fn help_texts_say_what_works_now_and_list_dht_flags_only_where_they_apply() {
    let top = help(&[]);
    assert!(!top.contains("(soon)"), "{top}");
    assert!(top.contains("share"), "{top}");
    for cmd in [
        "keygen", "gc", "check", "trust", "add", "export", "rm", "status",
    ] {
        let h = help(&[cmd]);
        for flag in ["--no-dht", "--bootstrap", "--dht-bind"] {
            assert!(!h.contains(flag), "`swarm {cmd} --help` lists {flag}:\n{h}");
        }
    }
    // ls looks a manifest up there when it is given a TARGET not stored.
    for cmd in ["node", "fetch", "publish", "resolve", "share", "ls"] {
        let h = help(&[cmd]);
        assert!(
            h.contains("--no-dht"),
            "`swarm {cmd} --help` lacks --no-dht"
        );
        // Not "only peers given with --peer": publish and resolve have none.
        assert!(!h.contains("only peers given with --peer"), "{cmd}: {h}");
    }
    let fetch = help(&["fetch"]);
    assert!(
        fetch.contains("<TARGET>") && !fetch.contains("<ROOT>"),
        "{fetch}"
    );
    assert!(fetch.contains("swt1"), "{fetch}");
}

#[test]
fn keep_with_no_export_or_seed_is_refused_as_they_exclude_each_other() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let root = "00".repeat(32);
    for pair in [
        ["--keep", "--no-export"],
        ["--keep", "--seed"],
        ["--no-export", "--seed"],
    ] {
        let run = swarm(&store, args!["fetch", &root, pair[0], pair[1]]);
        assert_eq!(run.code, Some(2), "{run}");
        assert!(run.stderr.contains("cannot be used with"), "{run}");
    }
}

#[test]
fn no_dht_and_no_peer_says_the_dht_is_off_and_how_the_setting_was_made() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let root = blob_hash(b"anything");
    // Through the environment (as the test harness sets it).
    let msg = error_of(&swarm(&store, args!["fetch", &root, "--no-export"]));
    assert!(!msg.contains("found on the DHT"), "{msg}");
    assert!(msg.contains("DHT is not in use"), "{msg}");
    assert!(msg.contains("unset SWARM_NO_DHT"), "{msg}");
    assert!(!msg.contains("remove --no-dht"), "{msg}");
    // Through the flag, with the environment clear.
    let run = {
        let mut c = swarm_cmd(&store);
        c.env_remove("SWARM_NO_DHT")
            .args(["fetch", &root, "--no-export", "--no-dht"]);
        let out = c.output().expect("run swarm");
        Run {
            cmd: "swarm fetch --no-dht".into(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let msg = error_of(&run);
    assert!(msg.contains("remove --no-dht"), "{msg}");
    assert!(!msg.contains("SWARM_NO_DHT"), "{msg}");
    // A pointer needs the DHT: the same words.
    let key = "swpk15jfgyy7ctrjavpxvkb5rglwf7gkuo5vox27hxescd3vgsfcg2iwa";
    let msg = error_of(&swarm(&store, args!["fetch", format!("{key}/app")]));
    assert!(msg.contains("unset SWARM_NO_DHT"), "{msg}");
}

#[test]
fn fetching_what_is_stored_already_needs_no_peer_and_exports_it() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let src = tmp.path().join("files");
    make_tree(&src, &[("a.bin", pseudo_random(300_000, 4), 0o644)]);
    let root = add(&store, &[&src]).root;
    let out = tmp.path().join("out");
    let run = swarm(
        &store,
        args!["--json", "fetch", &root, "-o", &out, "--keep"],
    );
    assert!(run.success(), "{run}");
    assert_eq!(u64_field(&run.json(), "received"), 0, "{run}");
    assert_same_tree(&src, &out.join("files"));
}

#[test]
fn a_peer_whose_node_id_is_not_a_key_is_named_as_that() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let root = blob_hash(b"anything");
    let id = format!("{}01", "0".repeat(62));
    let msg = error_of(&swarm(
        &store,
        args!["fetch", &root, "--peer", format!("{id}@127.0.0.1:7411")],
    ));
    assert!(!msg.contains("not a peer address"), "{msg}");
    assert!(msg.contains("not an Ed25519 public key"), "{msg}");
    // A short one is still not a node id, and says what one looks like.
    let msg = error_of(&swarm(
        &store,
        args!["fetch", &root, "--peer", "abc@127.0.0.1:1"],
    ));
    assert!(msg.contains("64 hex characters"), "{msg}");
}

#[test]
fn listen_takes_a_host_name_as_peer_does() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let src = tmp.path().join("f.txt");
    std::fs::write(&src, b"x").unwrap();
    let root = add(&store, &[&src]).root;
    // Stored already, so it ends at once; what matters is that
    // `--listen localhost:0` is taken.
    let run = swarm(
        &store,
        args!["fetch", &root, "--listen", "localhost:0", "--no-export"],
    );
    assert!(run.success(), "{run}");
    let run = swarm(
        &store,
        args!["fetch", &root, "--listen", "nowhere", "--no-export"],
    );
    assert_eq!(run.code, Some(2), "{run}");
    assert!(run.stderr.contains("HOST:PORT"), "{run}");
}

#[test]
fn publish_says_it_uses_the_dht_and_prints_no_raw_library_log() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let key = tmp.path().join("k");
    swarm_ok(&store, args!["keygen", "-o", &key]);
    let src = tmp.path().join("build");
    make_tree(&src, &[("app", b"v1".to_vec(), 0o755)]);
    // A bootstrap node that does not answer: no internet is touched.
    let mut c = swarm_cmd(&store);
    c.env_remove("SWARM_NO_DHT").args([
        "publish",
        src.to_str().unwrap(),
        "--name",
        "app",
        "--version",
        "1.0.0",
        "--key",
        key.to_str().unwrap(),
        "--bootstrap",
        "127.0.0.1:1",
    ]);
    let out = c.output().expect("run swarm publish");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("putting the release pointer on the DHT through 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(stderr.contains("--no-dht skips this"), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
    assert!(!stderr.contains("mainline::"), "{stderr}");
}

/// Item 7: the public key of an existing key file.
#[test]
fn key_show_prints_the_public_key_keygen_printed() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let key = tmp.path().join("publisher.key");
    let made = swarm_json(&store, args!["keygen", "-o", &key]);
    let public = str_field(&made, "public_key").to_owned();
    let shown = swarm_ok(&store, args!["key", "show", &key]);
    assert_eq!(shown.stdout.trim(), public);
    let v = swarm_json(&store, args!["key", "show", &key]);
    assert_eq!(str_field(&v, "public_key"), public);
    // It never prints the secret.
    let secret = std::fs::read_to_string(&key).unwrap();
    let secret = secret.lines().find(|l| l.starts_with("swsk1")).unwrap();
    assert!(!shown.stdout.contains(secret) && !shown.stderr.contains(secret));
    let msg = error_of(&swarm(
        &store,
        args!["key", "show", tmp.path().join("none")],
    ));
    assert!(msg.contains("swarm keygen"), "{msg}");
    std::fs::write(tmp.path().join("junk"), "not a key\n").unwrap();
    set_mode(&tmp.path().join("junk"), 0o600);
    let msg = error_of(&swarm(
        &store,
        args!["key", "show", tmp.path().join("junk")],
    ));
    assert!(msg.contains("not a swarm secret key file"), "{msg}");
}

/// Item 6: a root prefix, a pin's name, or `PREFIX…SUFFIX` wherever a root
/// is taken; an ambiguous name lists the candidates; one that matches
/// nothing says so.
#[test]
fn roots_are_taken_by_prefix_by_name_and_shortened_as_the_docs_print_them() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let src = tmp.path().join("site");
    make_tree(&src, &[("index.html", b"<h1>hi</h1>".to_vec(), 0o644)]);
    let added = swarm_json(&store, args!["add", &src, "--name", "my-site"]);
    let root = str_field(&added, "root").to_owned();
    for (i, given) in [
        root[..4].to_owned(),
        root[..10].to_uppercase(),
        "my-site".to_owned(),
        format!("{}…{}", &root[..4], &root[60..]),
        format!("{}...{}", &root[..4], &root[60..]),
    ]
    .iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("out{i}"));
        let v = swarm_json(&store, args!["export", given, "-o", &out]);
        assert_eq!(str_field(&v, "root"), root, "{given}");
        assert_same_tree(&src, &out.join("site"));
    }
    // Nothing pinned by that name or prefix.
    for given in ["other-site", "ffff0000", &root[..3]] {
        let msg = error_of(&swarm(
            &store,
            args!["export", given, "-o", tmp.path().join("x")],
        ));
        assert!(msg.contains("no pinned root is named"), "{given}: {msg}");
        assert!(msg.contains("swarm ls"), "{msg}");
    }
    // Two pins of one name: both are listed, nothing is removed.
    let other = tmp.path().join("other");
    make_tree(&other, &[("index.html", b"<h1>other</h1>".to_vec(), 0o644)]);
    let second = swarm_json(&store, args!["add", &other, "--name", "my-site"]);
    let msg = error_of(&swarm(&store, args!["rm", "my-site"]));
    assert!(msg.contains("matches 2 pinned roots"), "{msg}");
    assert!(
        msg.contains(&root) && msg.contains(str_field(&second, "root")),
        "{msg}"
    );
    assert_eq!(
        swarm_json(&store, args!["ls"])["pins"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // rm by prefix.
    let v = swarm_json(&store, args!["rm", &root[..8]]);
    assert_eq!(str_field(&v, "root"), root);
}

/// Item 5: `export --force` over an older version lists what the new one
/// no longer has; `--delete` removes it, so the folder matches the
/// release exactly. Nothing outside the directories the root writes is
/// touched, and a link is removed, never followed.
#[test]
fn export_over_an_older_version_reports_leftovers_and_delete_removes_them() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let v1 = tmp.path().join("v1/app");
    make_tree(
        &v1,
        &[
            ("bin/tool", b"tool v1".to_vec(), 0o755),
            ("old.txt", b"gone in v2".to_vec(), 0o644),
            ("plugins/a/x.so", b"plugin".to_vec(), 0o644),
        ],
    );
    let v2 = tmp.path().join("v2/app");
    make_tree(&v2, &[("bin/tool", b"tool v2".to_vec(), 0o755)]);
    let r1 = add(&store, &[&v1]).root;
    let r2 = add(&store, &[&v2]).root;
    let out = tmp.path().join("out");
    swarm_ok(&store, args!["export", &r1, "-o", &out]);
    // Someone else's file beside the app, and a link inside it.
    std::fs::write(out.join("mine.txt"), b"not swarm's").unwrap();
    let outside = tmp.path().join("precious");
    std::fs::write(&outside, b"keep me").unwrap();
    std::os::unix::fs::symlink(&outside, out.join("app/link")).unwrap();

    let run = swarm_ok(&store, args!["export", &r2, "-o", &out, "--force"]);
    assert!(run.stderr.contains("3 paths"), "{run}");
    assert!(run.stderr.contains("--delete removes them"), "{run}");
    for p in ["app/link", "app/old.txt", "app/plugins"] {
        assert!(run.stderr.contains(p), "{p}: {run}");
    }
    assert!(out.join("app/old.txt").exists());
    let v = swarm_json(&store, args!["export", &r2, "-o", &out, "--force"]);
    assert_eq!(v["extra"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["deleted"], serde_json::json!(false), "{v}");

    let v = swarm_json(
        &store,
        args!["export", &r2, "-o", &out, "--force", "--delete"],
    );
    assert_eq!(v["deleted"], serde_json::json!(true), "{v}");
    assert_same_tree(&v2, &out.join("app"));
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
    assert_eq!(std::fs::read(out.join("mine.txt")).unwrap(), b"not swarm's");
    // Once it matches, there is nothing to report.
    let run = swarm_ok(&store, args!["export", &r2, "-o", &out, "--force"]);
    assert!(!run.stderr.contains("does not list"), "{run}");
}

/// Item 2: `swarm cat ROOT[/PATH]` writes one verified file to stdout;
/// a directory, a missing path or a root of several files without a path
/// gets a one-line error; damaged stored bytes are never written.
#[test]
fn cat_writes_one_verified_file_and_never_a_damaged_byte() {
    let tmp = tempdir();
    let store = tmp.path().join("s");
    let src = tmp.path().join("site");
    let big = pseudo_random(10 << 20, 8);
    make_tree(
        &src,
        &[
            ("a.txt", b"hello\n".to_vec(), 0o644),
            ("img/big.bin", big.clone(), 0o644),
        ],
    );
    let root = str_field(
        &swarm_json(&store, args!["add", &src, "--name", "web"]),
        "root",
    )
    .to_owned();
    let cat = |target: &str| swarm(&store, args!["cat", target]);
    assert_eq!(cat("web/site/a.txt").stdout, "hello\n");
    let out = swarm_cmd(&store)
        .args(["cat", &format!("{}/site/img/big.bin", &root[..8])])
        .output()
        .expect("run swarm cat");
    assert!(out.status.success());
    assert!(out.stdout == big, "the bytes differ");
    for (target, says) in [
        ("web/site/img", "is a directory"),
        ("web/site/none.txt", "is not in this root"),
        ("web", "name one"),
        ("nosuchpin/x", "no pinned root is named"),
    ] {
        let msg = error_of(&cat(target));
        assert!(msg.contains(says), "{target}: {msg}");
    }
    // A root of one file needs no path.
    let single = tmp.path().join("one.txt");
    std::fs::write(&single, b"just me").unwrap();
    let one = add(&store, &[&single]).root;
    assert_eq!(cat(&one).stdout, "just me");
    // Damage at 6 MiB: what comes out is the verified part before the
    // damaged window, byte for byte, then an error.
    let data = data_files(&store)
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() == big.len() as u64)
        .expect("the big file's blob");
    flip_byte(&data, 6 << 20);
    let out = swarm_cmd(&store)
        .args(["cat", "web/site/img/big.bin"])
        .output()
        .expect("run swarm cat");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match its hash"), "{stderr}");
    assert!(
        out.stdout.len() < 6 << 20,
        "{} bytes written",
        out.stdout.len()
    );
    assert!(
        out.stdout[..] == big[..out.stdout.len()],
        "unverified bytes were written"
    );
}
