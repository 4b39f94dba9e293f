//! `swarm share` and tickets (issue 17): the sendme-style flow, where a
//! ticket is all the other side needs, and tickets that are mistyped,
//! cut off, or point at nobody or at the wrong node.

use std::path::Path;

use swarm_engine::ticket::{Ticket, TicketPeer, TicketTarget};

use crate::common::*;
use crate::{NODE_PATIENCE, Node, PATIENCE, failure, signal, tempdir};

/// `swarm share PATHS... --listen 127.0.0.1:0`, once it has printed its
/// ticket; its stderr goes to `STORE.share-stderr`.
fn share(store: &Path, paths: &[&Path], json: bool) -> (NodeChild, String) {
    let mut cmd = swarm_cmd(store);
    if json {
        cmd.arg("--json");
    }
    cmd.arg("share")
        .args(paths)
        .args(["--listen", "127.0.0.1:0"]);
    let log = std::path::PathBuf::from(format!("{}.share-stderr", store.display()));
    let child = NodeChild::spawn(&mut cmd, &log, LogMode::Truncate, 1, NODE_PATIENCE);
    let line = child.lines[0].clone();
    let ticket = if json {
        let v: serde_json::Value = serde_json::from_str(&line).expect("share --json line");
        str_field(&v, "ticket").to_owned()
    } else {
        line
    };
    (child, ticket)
}

/// `swarm --store STORE ARGS...`, bounded by [`PATIENCE`].
fn within(store: &Path, args: Vec<std::ffi::OsString>) -> Run {
    swarm_within(store, &args, PATIENCE)
}

fn sample_tree(dir: &Path) {
    make_tree(
        dir,
        &[
            ("app/bin/tool", pseudo_random(700_000, 1), 0o755),
            ("app/README", b"read me\n".to_vec(), 0o644),
            ("app/data/empty", Vec::new(), 0o644),
        ],
    );
}

/// Done when (issue 17): `swarm share DIR`, then `swarm fetch TICKET` in
/// another store with nothing else given, ends with the same files; the
/// sharer says who came and what it sent.
#[test]
fn a_shared_directory_fetched_by_its_ticket_alone_arrives_identical() {
    let tmp = tempdir();
    sample_tree(&tmp.path().join("src"));
    let (mut sharer, ticket) = share(&tmp.path().join("a"), &[&tmp.path().join("src/app")], false);
    assert!(ticket.starts_with("swt1"), "{ticket}");
    let parsed: Ticket = ticket.parse().expect("the printed ticket parses");
    let peer = &parsed.peers[0];
    assert_eq!(
        peer.addrs.len(),
        1,
        "--listen names one address: {parsed:?}"
    );
    assert!(peer.addrs[0].ip().is_loopback());
    let out = tmp.path().join("out");
    let run = within(&tmp.path().join("b"), args!["fetch", &ticket, "-o", &out]);
    assert!(run.success(), "{run}");
    assert_same_tree(&tmp.path().join("src/app"), &out.join("app"));
    // The sharer saw the fetcher come and go, with what it was sent.
    sharer.wait_for_log("left after", PATIENCE);
    let log = sharer.log_text();
    assert!(mentions(&log, "connected from 127.0.0.1"), "{log}");
    // 683.6 KiB of files, and the Bao proofs with them.
    assert!(
        mentions(&log, "sent it 68") && mentions(&log, " KiB"),
        "{log}"
    );
    signal(sharer.proc.pid(), "INT");
    let status = sharer.proc.wait_within(NODE_PATIENCE).expect("share exits");
    assert!(status.success(), "{status:?}");
    assert!(
        mentions(&sharer.log_text(), "stopping: sent"),
        "{}",
        sharer.log_text()
    );
}

/// With a node on the store, `swarm share` adds through it, prints a
/// ticket naming that node, and leaves it serving.
#[test]
fn share_on_a_store_a_node_holds_prints_the_nodes_ticket_and_returns() {
    let tmp = tempdir();
    sample_tree(&tmp.path().join("src"));
    let a = tmp.path().join("a");
    let node = Node::start(&a);
    let run = within(&a, args!["--json", "share", tmp.path().join("src/app")]);
    assert!(run.success(), "{run}");
    let v = run.json();
    let ticket: Ticket = str_field(&v, "ticket").parse().expect("ticket");
    assert_eq!(ticket.peers[0].id.to_string(), node.id);
    assert_eq!(ticket.peers[0].addrs[0].to_string(), node.addr);
    assert_eq!(ticket.root().to_hex(), str_field(&v, "root"));
    let out = tmp.path().join("out");
    let run = within(
        &tmp.path().join("b"),
        args!["fetch", ticket.to_string(), "-o", &out],
    );
    assert!(run.success(), "{run}");
    assert_same_tree(&tmp.path().join("src/app"), &out.join("app"));
}

/// A ticket that was mistyped, cut off or pasted with a stray character is
/// reported as that, at once, before anything connects.
#[test]
fn mistyped_cut_off_and_garbage_tickets_say_so_and_nothing_is_fetched() {
    let tmp = tempdir();
    sample_tree(&tmp.path().join("src"));
    let (_sharer, ticket) = share(&tmp.path().join("a"), &[&tmp.path().join("src/app")], true);
    let b = tmp.path().join("b");
    let swap = |i: usize| {
        let mut t = ticket.clone().into_bytes();
        t[i] = if t[i] == b'a' { b'b' } else { b'a' };
        String::from_utf8(t).unwrap()
    };
    let cases = [
        (swap(10), "typo"),
        (swap(ticket.len() - 3), "typo"),
        (ticket[..ticket.len() - 7].to_owned(), "typo"),
        (format!("{ticket}x"), "typo"),
        (format!("{}1{}", &ticket[..12], &ticket[13..]), "character"),
        ("swt1".to_owned(), "typo"),
    ];
    for (bad, says) in cases {
        let run = within(&b, args!["fetch", &bad, "-o", tmp.path().join("out")]);
        let msg = failure(&run);
        assert!(mentions(&msg, says), "{bad}: {msg}");
        assert!(mentions(&msg, "copy it again"), "{msg}");
        assert!(!mentions(&msg, "forged"), "{msg}");
    }
    assert!(!tmp.path().join("out").exists());
    assert!(
        swarm_json(&b, args!["ls"])["pins"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A ticket naming an address where nobody listens, or where another node
/// answers (a lying or stale hint): a clear error, and nothing fetched
/// from the wrong node.
#[test]
fn a_ticket_pointing_at_nobody_or_at_another_node_fails_clearly() {
    let tmp = tempdir();
    sample_tree(&tmp.path().join("src"));
    let (_sharer, ticket) = share(&tmp.path().join("a"), &[&tmp.path().join("src/app")], false);
    let real: Ticket = ticket.parse().unwrap();
    // Another node, holding nothing, at the address the ticket gives.
    let other = Node::start(&tmp.path().join("c"));
    let lying = Ticket {
        target: real.target.clone(),
        peers: vec![TicketPeer {
            id: real.peers[0].id,
            addrs: vec![other.addr.parse().unwrap()],
        }],
    };
    let b = tmp.path().join("b");
    let run = within(&b, args!["fetch", lying.to_string(), "--no-export"]);
    let msg = failure(&run);
    assert!(mentions(&msg, "no peer could be reached"), "{msg}");
    assert!(mentions(&msg, &other.addr), "{msg}");
    // Nobody there at all (port 1 on loopback).
    let nobody = Ticket {
        target: TicketTarget::Root(real.root()),
        peers: vec![TicketPeer {
            id: real.peers[0].id,
            addrs: vec!["127.0.0.1:1".parse().unwrap()],
        }],
    };
    let run = within(&b, args!["fetch", nobody.to_string(), "--no-export"]);
    let msg = failure(&run);
    assert!(mentions(&msg, "127.0.0.1:1"), "{msg}");
    assert!(
        swarm_json(&b, args!["ls"])["pins"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Issue 17, item 2: `swarm ls TICKET` in a store that has nothing lists
/// the files, fetching the manifest and no file; `fetch --path` takes only
/// what the globs select, and refuses a glob that matches nothing, a bad
/// glob, and a subset to be kept, each in one line.
#[test]
fn ls_of_a_ticket_fetches_only_the_manifest_and_fetch_path_takes_a_subset() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let (_sharer, ticket) = share(&tmp.path().join("a"), &[&src.join("app")], false);
    let b = tmp.path().join("b");

    let run = within(&b, args!["--json", "ls", &ticket, "--no-dht"]);
    assert!(run.success(), "{run}");
    let v = run.json();
    assert_eq!(v["fetched"], true, "{v}");
    let rows: Vec<(String, u64, String)> = v["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                str_field(f, "path").to_owned(),
                u64_field(f, "size"),
                str_field(f, "mode").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("app/README".to_owned(), 8, "644".to_owned()),
            ("app/bin/tool".to_owned(), 700_000, "755".to_owned()),
            ("app/data/empty".to_owned(), 0, "644".to_owned()),
        ]
    );
    // Only the manifest came: no file's data is stored.
    assert!(data_files(&b).is_empty(), "{:?}", data_files(&b));
    // Stored now, the text listing needs no peer.
    let run = within(&b, args!["ls", &ticket, "--no-dht"]);
    assert!(run.success(), "{run}");
    assert!(run.stdout.contains(" 755"), "{run}");
    assert!(
        run.stdout.lines().any(|l| l.ends_with("  app/bin/tool")),
        "{run}"
    );

    // A subset: the directory app/bin, and a glob.
    let out = tmp.path().join("out");
    let run = within(
        &b,
        args![
            "fetch",
            &ticket,
            "--no-dht",
            "--path",
            "app/bin",
            "--path",
            "app/READ*",
            "-o",
            &out
        ],
    );
    assert!(run.success(), "{run}");
    assert!(run.stderr.contains("fetched 2 of 3 files"), "{run}");
    assert_same_file(&src.join("app/bin/tool"), &out.join("app/bin/tool"));
    assert_same_file(&src.join("app/README"), &out.join("app/README"));
    assert!(!out.join("app/data").exists());

    // Refusals, in one line each, with nothing written.
    let none = tmp.path().join("none");
    let cases: [(Vec<std::ffi::OsString>, &str); 3] = [
        (
            args![
                "fetch",
                &ticket,
                "--no-dht",
                "--path",
                "app/nope/*",
                "-o",
                &none
            ],
            "no file of the root matches \"app/nope/*\" (it has 3 files)",
        ),
        (
            args!["fetch", &ticket, "--no-dht", "--path", "app/[", "-o", &none],
            "is not a path pattern",
        ),
        (
            args!["fetch", &ticket, "--no-dht", "--path", "app/bin", "--keep"],
            "cannot be used with '--keep'",
        ),
    ];
    for (a, says) in cases {
        let run = within(&b, a);
        assert!(!run.success(), "{run}");
        assert!(run.stderr.contains(says), "{run}");
        assert!(!run.stderr.contains("panicked"), "{run}");
        assert!(!none.exists(), "{run}");
    }
}

/// Issue 17, item 2: `swarm cat TICKET/PATH` on a store that has nothing
/// fetches that one file (and the manifest), and writes it to stdout byte
/// for byte; a path the root lacks is named, with what is there.
#[test]
fn cat_of_a_ticket_fetches_only_that_file_and_writes_it() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    sample_tree(&src);
    make_tree(&src, &[("app/data/big", pseudo_random(900_000, 9), 0o644)]);
    let (_sharer, ticket) = share(&tmp.path().join("a"), &[&src.join("app")], false);
    let b = tmp.path().join("b");
    let out = tmp.path().join("tool.out");
    let mut cat = Proc::spawn(
        swarm_cmd(&b)
            .args(["cat", &format!("{ticket}/app/bin/tool")])
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::process::Stdio::null()),
    );
    let status = cat.wait_within(PATIENCE).expect("cat finished");
    assert!(status.success(), "cat failed: {status}");
    // Bytes only: stdout has no mode.
    assert!(
        std::fs::read(&out).expect("read")
            == std::fs::read(src.join("app/bin/tool")).expect("read"),
        "cat wrote other bytes"
    );
    // One file's data came, not the other large one's.
    assert_eq!(data_files(&b).len(), 1, "{:?}", data_files(&b));

    let run = within(&b, args!["cat", format!("{ticket}/app/bin/nope")]);
    let msg = failure(&run);
    assert!(
        msg.contains("\"app/bin/nope\" is not in this root"),
        "{msg}"
    );
    assert!(msg.contains("app/bin/tool"), "{msg}");
}
