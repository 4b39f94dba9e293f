//! End-to-end tests of the control API through the real binary: store
//! commands on a store that a running `swarm node` holds go through the
//! node, print what they print on a stopped store, and never interrupt the
//! peers the node serves.
//!
//! No test asserts on wall-clock time; durations only bound hangs.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const MIB: u64 = 1 << 20;
/// Longest a node may take to print its address, or to exit after a signal.
const NODE_PATIENCE: Duration = Duration::from_secs(10);

/// `swarm --json node --listen 127.0.0.1:0 EXTRA...` on `store`.
fn start_node(store: &Path, extra: &[&str]) -> NodeChild {
    let mut cmd = node_cmd(store, true);
    cmd.args(extra);
    NodeChild::spawn(
        &mut cmd,
        &node_log(store),
        LogMode::Append,
        1,
        NODE_PATIENCE,
    )
}

/// `kill -s SIG PID`, then wait for the node to exit.
fn stop(mut node: NodeChild, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args(["-s", sig, &node.proc.pid().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -s {sig} failed");
    assert!(
        node.proc.wait_within(NODE_PATIENCE).is_some(),
        "the node did not exit after SIG{sig}"
    );
}

/// A run with what may differ between two stores taken out: the store's
/// path and the seconds at which something was pinned.
fn normalized(run: &Run, store: &Path) -> (Option<i32>, String, String) {
    let clean = |s: &str| {
        let s = s.replace(&store.display().to_string(), "STORE");
        match serde_json::from_str::<Value>(s.trim()) {
            Ok(mut v) => {
                strip_created(&mut v);
                v.to_string()
            }
            Err(_) => s,
        }
    };
    (run.code, clean(&run.stdout), clean(&run.stderr))
}

fn strip_created(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("created");
            m.values_mut().for_each(strip_created);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_created),
        _ => {}
    }
}

#[test]
fn store_commands_through_a_running_node_print_what_they_print_on_a_stopped_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (stopped, live) = (tmp.path().join("stopped"), tmp.path().join("live"));
    make_tree(
        tmp.path(),
        &[
            ("rel/a.txt", b"hello\n".to_vec(), 0o644),
            ("rel/sub/b.bin", pseudo_random(400_000, 1), 0o755),
            ("one.bin", pseudo_random(90_000, 2), 0o644),
        ],
    );
    let key_file = tmp.path().join("pub.key");
    let key = swarm_json(&stopped, args!["keygen", "-o", &key_file]);
    let key = str_field(&key, "public_key").to_owned();
    // The stores hold the same before the node starts on one of them.
    swarm_ok(&live, ["ls"]);
    let node = start_node(&live, &[]);
    let root = add(&stopped, &[tmp.path().join("rel")]).root;

    // Relative paths: the CLI runs in the test's directory, the node not.
    let steps: Vec<Vec<OsString>> = vec![
        args!["add", "rel"],
        args!["--json", "add", "one.bin", "--name", "single"],
        args!["ls"],
        args!["--json", "ls"],
        args!["rm", &root],
        args!["rm", &root],
        args!["rm", "not-a-root"],
        args!["add", "no/such/path"],
        args!["--json", "gc"],
        args!["gc"],
        args!["check"],
        args!["--json", "check"],
        args!["trust", "add", &key, "--name", "builds"],
        args!["--json", "trust", "ls"],
        args!["trust", "rm", &key],
        args!["trust", "rm", &key],
        args!["trust", "ls"],
        args!["--json", "ls"],
    ];
    // The stopped store got `rel` above; give the live one the same start.
    let add_rel: Vec<OsString> = args!["add", "rel"];
    let first = run_in(tmp.path(), &live, &add_rel);
    assert!(first.success(), "{first}");
    for step in &steps {
        let a = run_in(tmp.path(), &stopped, step);
        let b = run_in(tmp.path(), &live, step);
        assert_no_panic(&b);
        assert_eq!(
            normalized(&a, &stopped),
            normalized(&b, &live),
            "\n{a}\n--- through the node ---\n{b}"
        );
    }
    // They went through the node: it lists what was added, and says so.
    let status = swarm_json(&live, ["status"]);
    assert_eq!(
        status["node_id"],
        node.announcement()["node_id"],
        "{status}"
    );
    let names: Vec<&str> = status["pins"]
        .as_array()
        .expect("pins")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["single"], "{status}");
    stop(node, "TERM");
    assert_eq!(pinned_roots(&live), pinned_roots(&stopped));
}

/// `swarm --store STORE ARGS` run in `cwd`.
fn run_in(cwd: &Path, store: &Path, args: &[OsString]) -> Run {
    let out = swarm_cmd(store)
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run swarm");
    Run {
        cmd: format!("swarm {args:?}"),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn status_shows_the_node_and_a_killed_node_leaves_nothing_that_blocks_the_next_start() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let file = tmp.path().join("f.bin");
    write_file(&file, &pseudo_random(50_000, 3), 0o644);
    let added = add(&store, &[&file]);

    let node = start_node(&store, &[]);
    let said = node.announcement();
    let socket = store.join("api.sock");
    assert_eq!(said["api"].as_str(), socket.to_str(), "{said}");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is owner-only: {mode:o}");

    let s = swarm_json(&store, ["status"]);
    assert_eq!(s["node_id"], said["node_id"], "{s}");
    assert_eq!(s["addr"], said["addr"], "{s}");
    assert_eq!(s["pins"][0]["root"], added.root.as_str(), "{s}");
    assert!(s["dht"].is_null(), "the tests run without the DHT: {s}");
    let text = swarm_ok(&store, ["status"]).stdout;
    let id = said["node_id"].as_str().expect("id");
    assert!(text.starts_with(&format!("node      {id}\n")), "{text}");
    assert!(text.contains("pins      1 root\n"), "{text}");
    assert!(text.contains(&added.root), "{text}");

    // Killed: the socket file stays, and nothing answers on it.
    stop(node, "KILL");
    assert!(socket.exists());
    let msg = swarm_err(&store, ["status"]);
    assert!(mentions(&msg, "no node is running"), "{msg}");
    // With the node gone, commands open the store themselves again.
    assert_eq!(pinned_roots(&store), [added.root.as_str()]);

    let node = start_node(&store, &[]);
    let s = swarm_json(&store, ["status"]);
    assert_eq!(s["node_id"], said["node_id"], "same node, same id: {s}");
    // A second node on the same store is refused, and the first goes on.
    let second = swarm(&store, args!["node", "--listen", "127.0.0.1:0"]);
    let msg = error_message(&second);
    assert!(mentions(&msg, "in use"), "{msg}");
    assert_eq!(swarm_json(&store, ["status"])["node_id"], said["node_id"]);
    stop(node, "TERM");
    assert!(!socket.exists(), "a node that stops removes its socket");
    let msg = swarm_err(&store, ["status"]);
    assert!(mentions(&msg, "no node is running"), "{msg}");
}

#[test]
fn a_fetcher_being_served_sees_no_interruption_while_the_operator_adds_removes_and_collects() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seed, fetcher) = (tmp.path().join("seed"), tmp.path().join("fetcher"));
    let big = tmp.path().join("big.bin");
    write_big_file(&big, 48 * MIB, 9);
    let release = add(&seed, &[&big]);
    let other = tmp.path().join("other.bin");
    write_file(&other, &pseudo_random(700_000, 4), 0o644);

    // Slow enough that the fetch is still running while the operator works.
    let node = start_node(&seed, &["--upload-limit", "8MiB"]);
    let addr = node.json_addr();
    let out = tmp.path().join("out.bin");
    let mut fetch = swarm_cmd(&fetcher)
        .args(args!["fetch", &release.root, "--peer", &addr, "-o", &out])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fetch");

    let mut rounds = 0;
    let mut during = 0;
    // Bounded: each round is a few commands; the fetch takes seconds.
    while rounds < 200 {
        let running = fetch.try_wait().expect("poll fetch").is_none();
        let extra = add(&seed, &[&other]);
        assert_eq!(
            swarm_json(&seed, ["status"])["pins"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        swarm_ok(&seed, ["rm", &extra.root]);
        let freed = gc(&seed);
        assert!(freed.0 >= 1, "the unpinned file is freed: {freed:?}");
        assert_eq!(pinned_roots(&seed), [release.root.as_str()]);
        rounds += 1;
        if running {
            during += 1;
        } else {
            break;
        }
    }
    let done = fetch.wait_with_output().expect("wait fetch");
    assert!(
        done.status.success(),
        "the fetch failed:\n{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        during >= 2,
        "only {during} rounds ran while the fetch did; it was too quick to tell"
    );
    assert_same_file(&big, &out);
    // The node served throughout: it still answers and holds the release.
    assert_check_ok(&seed);
    eprintln!("{during} rounds of add, status, rm and gc ran during the fetch");
    stop(node, "TERM");
}
