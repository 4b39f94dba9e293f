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
    cmd.args(extra).env("RUST_LOG", "swarm_engine=info");
    NodeChild::spawn(
        &mut cmd,
        &node_log(store),
        LogMode::Append,
        1,
        NODE_PATIENCE,
    )
}

/// `kill -s SIG PID`.
fn signal(node: &NodeChild, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args(["-s", sig, &node.proc.pid().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -s {sig} failed");
}

/// `kill -s SIG PID`, then wait for the node to exit.
fn stop(mut node: NodeChild, sig: &str) {
    signal(&node, sig);
    assert!(
        node.proc.wait_within(NODE_PATIENCE).is_some(),
        "the node did not exit after SIG{sig}"
    );
}

/// A run with what may differ between two stores taken out: the store's
/// path and the seconds at which something was pinned.
fn normalized(run: &Run, store: &Path) -> (Option<i32>, String, String) {
    let clean = |s: &str| {
        let name = store.file_name().unwrap_or_default().to_string_lossy();
        let s = s
            .replace(&store.display().to_string(), "STORE")
            .replace(&format!("OUT-{name}"), "OUT");
        match serde_json::from_str::<Value>(s.trim()) {
            Ok(mut v) => {
                strip_created(&mut v);
                v.to_string()
            }
            // A token signs the second it was made in. A ticket also
            // carries the addresses of the node, when one runs, and only
            // without one does publish say that it names no peer.
            Err(_) => s
                .lines()
                .filter(|l| !l.starts_with("the ticket names no peer"))
                .map(|l| {
                    if l.starts_with("swr1") || l.starts_with("swt1") {
                        "TOKEN"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    };
    (run.code, clean(&run.stdout), clean(&run.stderr))
}

fn strip_created(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("created");
            m.remove("token");
            m.remove("ticket");
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
    // A release made elsewhere, to verify on both stores.
    let elsewhere = tmp.path().join("elsewhere");
    let made = swarm_json(
        &elsewhere,
        args![
            "publish",
            tmp.path().join("one.bin"),
            "--name",
            "other",
            "--version",
            "2.0.0",
            "--key",
            &key_file
        ],
    );
    let token = str_field(&made, "token").to_owned();
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
        // A mirror, written again (nothing changes), and refusals.
        args!["mirror", &root, "OUT/mirror"],
        args!["--json", "mirror", &root, "OUT/mirror"],
        args!["mirror", "not-a-root", "OUT/mirror"],
        args!["mirror", &root, "OUT/mirror", "--trust", &key],
        args!["mirror", &token, "OUT/release"],
        args!["mirror", &token, "OUT/release", "--trust", &key],
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
        args![
            "publish",
            "rel",
            "--name",
            "app",
            "--version",
            "1.0.0",
            "--key",
            &key_file
        ],
        args![
            "--json",
            "publish",
            "one.bin",
            "--name",
            "app",
            "--version",
            "1.0.1",
            "--key",
            &key_file
        ],
        args![
            "publish",
            "rel",
            "--name",
            "app",
            "--version",
            "x",
            "--key",
            &key_file
        ],
        // Not trusted yet, then trusted for this check, then a path.
        args!["verify", &token],
        args!["--json", "verify", &token],
        args!["verify", &token, "--trust", &key],
        args!["--json", "verify", &token, "one.bin", "--trust", &key],
        args!["verify", &token, "rel", "--trust", &key],
        args!["verify", "swr1damaged"],
        args!["--json", "export", &root, "-o", "OUT"],
        args!["ls", &root],
        args!["--json", "ls", &root[..8]],
        args!["export", &root, "-o", "OUT/again"],
        args!["--json", "ls"],
    ];
    // The stopped store got `rel` above; give the live one the same start.
    let add_rel: Vec<OsString> = args!["add", "rel"];
    let first = run_in(tmp.path(), &live, &add_rel);
    assert!(first.success(), "{first}");
    // Each store exports to a place of its own, OUT-stopped or OUT-live.
    let out_for = |step: &[OsString], store: &Path| -> Vec<OsString> {
        let name = format!(
            "OUT-{}",
            store.file_name().unwrap_or_default().to_string_lossy()
        );
        step.iter()
            .map(|a| a.to_string_lossy().replace("OUT", &name).into())
            .collect()
    };
    for step in &steps {
        let a = run_in(tmp.path(), &stopped, &out_for(step, &stopped));
        let b = run_in(tmp.path(), &live, &out_for(step, &live));
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
    assert!(names.contains(&"app"), "the published release: {status}");
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
    // With the node gone, commands open the store themselves again, and
    // a repair rebuilds the database beside the socket left behind.
    assert_eq!(pinned_roots(&store), [added.root.as_str()]);
    let repair = swarm(&store, ["check", "--repair"]);
    assert!(repair.success(), "{repair}");
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
fn a_fetcher_being_served_sees_no_interruption_while_the_operator_works_the_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seed, fetcher) = (tmp.path().join("seed"), tmp.path().join("fetcher"));
    let big = tmp.path().join("big.bin");
    write_big_file(&big, 48 * MIB, 9);
    let release = add(&seed, &[&big]);
    let other = tmp.path().join("other.bin");
    write_file(&other, &pseudo_random(700_000, 4), 0o644);
    let key_file = tmp.path().join("pub.key");
    swarm_ok(&seed, args!["keygen", "-o", &key_file]);
    // A third node, whose root the operator fetches into the seed's store.
    let third = tmp.path().join("third");
    let side = tmp.path().join("side.bin");
    write_file(&side, &pseudo_random(300_000, 5), 0o644);
    let side_root = add(&third, &[&side]).root;
    let third_node = start_node(&third, &[]);
    let token_file = tmp.path().join("api.token");
    write_file(&token_file, b"0123456789abcdef0123456789abcdef\n", 0o600);

    // Slow enough that the fetch is still running while the operator works.
    let node = start_node(
        &seed,
        &[
            "--log-served",
            "1",
            "--upload-limit",
            "8MiB",
            "--api",
            "127.0.0.1:0",
            "--api-token-file",
            token_file.to_str().expect("utf-8 path"),
        ],
    );
    let addr = node.json_addr();
    let dashboard = format!(
        "http://{}/#token=0123456789abcdef0123456789abcdef",
        node.announcement()["api_tcp"].as_str().expect("api_tcp")
    );
    let api = swarm_engine::api::Client::new(seed.join("api.sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = tmp.path().join("out.bin");
    let mut fetch = swarm_cmd(&fetcher)
        .args(args!["fetch", &release.root, "--peer", &addr, "-o", &out])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fetch");

    let mut rounds = 0;
    let mut during = 0;
    let mut dashboard_seen = false;
    let mut sent_seen = Vec::new();
    // Bounded: each round is a few commands; the fetch takes seconds.
    while rounds < 200 {
        let running = fetch.try_wait().expect("poll fetch").is_none();
        let extra = add(&seed, &[&other]);
        let version = format!("1.0.{rounds}");
        swarm_ok(
            &seed,
            args![
                "publish",
                &other,
                "--name",
                "side",
                "--version",
                &version,
                "--key",
                &key_file
            ],
        );
        swarm_ok(
            &seed,
            args![
                "fetch",
                &side_root,
                "--peer",
                third_node.json_addr(),
                "--no-export"
            ],
        );
        assert_eq!(
            swarm_json(&seed, ["status"])["pins"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        let metrics = rt.block_on(api.metrics()).expect("scrape /metrics");
        assert!(metrics.contains("\nswarm_pins 3\n"), "{metrics}");
        let sent = metrics
            .lines()
            .find_map(|l| l.strip_prefix("swarm_bytes_up_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("swarm_bytes_up_total");
        sent_seen.push(sent);
        if running && !dashboard_seen {
            match swarm_testkit::servers::chromium_dom(&dashboard, 2000) {
                Ok(dom) => {
                    let dom = dom.expect("chromium runs");
                    assert_eq!(attrs_where(&dom, "id=\"state\"", "data-ok"), ["1"], "{dom}");
                    assert!(dom.contains(&release.root), "{dom}");
                }
                Err(missing) => eprintln!("SKIPPED (the dashboard part): {missing}"),
            }
            dashboard_seen = true;
        }
        swarm_ok(&seed, ["rm", &extra.root]);
        swarm_ok(&seed, ["rm", &side_root]);
        let freed = gc(&seed);
        assert!(freed.0 >= 2, "the unpinned files are freed: {freed:?}");
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
    // The scrapes saw the upload grow while the fetch ran.
    assert!(
        sent_seen.windows(2).all(|w| w[0] <= w[1]) && sent_seen.last() > sent_seen.first(),
        "{sent_seen:?}"
    );
    assert!(
        during >= 2,
        "only {during} rounds ran while the fetch did; it was too quick to tell"
    );
    assert_same_file(&big, &out);
    // The session is logged, at info, with what it was served.
    node.wait_for_log("served a peer", NODE_PATIENCE);
    let log = node.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("served a peer"))
        .expect("the line");
    let sent: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("bytes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bytes= in {line:?}"));
    assert!(sent >= 48 * MIB, "{line}");
    assert!(
        line.contains(&release.root[..12]) || line.contains("blobs=2"),
        "{line}"
    );
    // Each second it sent anything, the node logged what the root served
    // in it: those add up to the root's total, all of the fetch.
    let named = format!("served root {} (", &release.root[..12]);
    let field = |l: &str, name: &str| -> Option<u64> {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|n| n.parse().ok())
    };
    let deadline = std::time::Instant::now() + NODE_PATIENCE;
    let (intervals, total) = loop {
        let log = node.log_text();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&named)).collect();
        let total = lines.iter().filter_map(|l| field(l, "total=")).max();
        if let Some(total) = total.filter(|t| *t >= 48 * MIB) {
            let sum: u64 = lines.iter().filter_map(|l| field(l, "bytes=")).sum();
            assert_eq!(sum, total, "the intervals add up:\n{}", lines.join("\n"));
            break (lines.len(), total);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {named:?} line with the whole fetch:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(intervals >= 2, "the fetch spanned several seconds");
    let log = node.log_text();
    let summed = log
        .lines()
        .filter(|l| l.contains("up since start"))
        .filter_map(|l| field(l, "total="))
        .max()
        .expect("a summary line");
    assert!(summed >= total, "{summed} < {total}");
    // The node served throughout: it still answers and holds the release.
    assert_check_ok(&seed);
    eprintln!(
        "{during} rounds of add, publish, fetch, status, metrics, rm and gc ran during the fetch"
    );
    stop(node, "TERM");
    stop(third_node, "TERM");
}

#[test]
fn fetches_into_a_running_nodes_store_go_through_it_two_at_once_and_resume_after_ctrl_c() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seed, live) = (tmp.path().join("seed"), tmp.path().join("live"));
    let (a, b, c) = (
        tmp.path().join("a.bin"),
        tmp.path().join("b.bin"),
        tmp.path().join("c.bin"),
    );
    write_big_file(&a, 12 * MIB, 21);
    write_big_file(&b, 9 * MIB, 22);
    write_big_file(&c, 48 * MIB, 23);
    let (ra, rb) = (add(&seed, &[&a]).root, add(&seed, &[&b]).root);
    let rc = add(&seed, &[&c]).root;
    let seeder = start_node(&seed, &["--upload-limit", "8MiB"]);
    let peer = seeder.json_addr();
    let node = start_node(&live, &[]);

    // Two fetches into the node's store at once, exported by the node.
    let spawn = |root: &str, out: &Path| {
        swarm_cmd(&live)
            .args(args!["--json", "fetch", root, "--peer", &peer, "-o", out])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fetch")
    };
    let (oa, ob) = (tmp.path().join("out-a.bin"), tmp.path().join("out-b.bin"));
    let (fa, fb) = (spawn(&ra, &oa), spawn(&rb, &ob));
    for (child, root, out, original) in [(fa, &ra, &oa, &a), (fb, &rb, &ob, &b)] {
        let done = child.wait_with_output().expect("wait fetch");
        let stdout = String::from_utf8_lossy(&done.stdout);
        assert!(
            done.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&done.stderr)
        );
        let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        assert_eq!(v["root"], root.as_str(), "{v}");
        assert_eq!(v["target"].as_str(), out.to_str(), "{v}");
        assert_same_file(original, out);
    }
    // Exported without --keep: the files were handed over, nothing pinned.
    assert!(
        swarm_json(&live, ["status"])["pins"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );

    // A bare root with --trust is refused as on a stopped store.
    let msg = swarm_err(
        &live,
        args!["fetch", &ra, "--trust", "swpk1x", "--no-export"],
    );
    assert!(mentions(&msg, "apply to a signed-root token"), "{msg}");
    // An error from the node's fetch reaches the caller.
    let msg = swarm_err(
        &live,
        args!["fetch", &"ab".repeat(32), "--peer", &peer, "--no-export"],
    );
    assert!(mentions(&msg, "peer"), "{msg}");

    // Ctrl-C on the caller cancels the node's fetch; the next resumes.
    // 48 MiB from a seeder capped at 8 MiB/s takes about 6 s; the
    // interrupt comes once the node has committed some (it commits every
    // 16 MiB), which `check` through the node shows.
    let first = swarm_cmd(&live)
        .args(args!["fetch", &rc, "--peer", &peer, "--no-export"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fetch");
    // `status` lists it while it runs.
    let mut listed = None;
    for _ in 0..300 {
        let s = swarm_json(&live, ["status"]);
        if let Some(f) = s["fetches"].as_array().and_then(|f| f.first()).cloned()
            && f["have"].as_u64().unwrap_or(0) > 0
        {
            listed = Some(f);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let listed = listed.expect("status never listed the running fetch");
    assert_eq!(listed["root"], rc.as_str(), "{listed}");
    assert_eq!(listed["total"], 48 * MIB, "{listed}");
    let mut polls = 0;
    while polls < 300 && u64_field(&swarm_json(&live, ["check"]), "bytes") < 8 * MIB {
        std::thread::sleep(Duration::from_millis(50));
        polls += 1;
    }
    let ok = std::process::Command::new("kill")
        .args(["-s", "INT", &first.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    let out = first.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("interrupted"),
        "{err}"
    );
    let again = swarm_json(&live, args!["fetch", &rc, "--peer", &peer, "--no-export"]);
    let s = swarm_json(&live, ["status"]);
    assert_eq!(s["fetches"], serde_json::json!([]), "none runs now: {s}");
    let received = u64_field(&again, "received");
    assert!(
        received < 48 * MIB,
        "the second fetch resumed: it received {received} of {} bytes",
        48 * MIB
    );
    assert_eq!(pinned_roots(&live), [rc.as_str()]);
    let out = tmp.path().join("out-c.bin");
    swarm_ok(&live, args!["export", &rc, "-o", &out]);
    assert_same_file(&c, &out);
    stop(node, "TERM");
    stop(seeder, "TERM");
    assert_check_ok(&live);
}

/// The value of attribute `attr` in each tag of `dom` that has `marker`.
fn attrs_where(dom: &str, marker: &str, attr: &str) -> Vec<String> {
    dom.split('<')
        .filter(|tag| tag.contains(marker))
        .filter_map(|tag| {
            let at = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
            Some(tag[at..].split('"').next()?.to_owned())
        })
        .collect()
}

#[test]
fn the_dashboard_in_a_real_browser_shows_the_node_its_pins_and_a_fetchers_rate() {
    if let Err(missing) = swarm_testkit::servers::chromium() {
        eprintln!("SKIPPED: {missing}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (seed, fetcher) = (tmp.path().join("seed"), tmp.path().join("fetcher"));
    let big = tmp.path().join("big.bin");
    write_big_file(&big, 16 * MIB, 11);
    let release = add(&seed, &[&big]);
    // A token with the characters base64 uses, which a URL must escape.
    let token = "k+9/Zq0=abcdefghijklmnopqrstuvwx";
    let token_file = tmp.path().join("api.token");
    write_file(&token_file, format!("{token}\n").as_bytes(), 0o600);

    // Capped, so that the fetch spans the node's rate samples.
    let node = start_node(
        &seed,
        &[
            "--upload-limit",
            "2MiB",
            "--api",
            "127.0.0.1:0",
            "--api-token-file",
            token_file.to_str().expect("utf-8 path"),
        ],
    );
    let said = node.announcement();
    let api = said["api_tcp"].as_str().expect("api_tcp").to_owned();
    let out = tmp.path().join("out.bin");
    swarm_ok(
        &fetcher,
        args![
            "fetch",
            &release.root,
            "--peer",
            node.json_addr(),
            "-o",
            &out
        ],
    );
    assert_same_file(&big, &out);
    node.wait_for_log("served a peer", NODE_PATIENCE);
    let log = node.log_text();
    let short = log
        .lines()
        .find(|l| l.contains("served a peer"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("peer=")))
        .expect("the served line names the peer")
        .to_owned();

    let escaped = token
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let url = format!("http://{api}/#token={escaped}");
    // The node samples rates every 5 s: load until a sample holds the
    // fetch (bounded: the fetch took seconds, a sample follows it).
    let mut dom = String::new();
    for _ in 0..10 {
        dom = swarm_testkit::servers::chromium_dom(&url, 3000)
            .expect("chromium")
            .expect("chromium runs");
        if dom.contains("data-dir=\"up\"") {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        attrs_where(&dom, "id=\"state\"", "data-ok"),
        ["1"],
        "the page read the node: {dom}"
    );
    let id = said["node_id"].as_str().expect("id");
    assert!(dom.contains(&format!("id=\"node-id\">{id}<")), "{dom}");
    // The token left the address once read, so history does not keep it.
    assert_eq!(
        attrs_where(&dom, "id=\"state\"", "data-fragment"),
        [""],
        "{dom}"
    );
    assert!(!dom.contains(token), "{dom}");
    assert!(
        dom.contains(&format!("data-key=\"{}\"", release.root)),
        "{dom}"
    );
    // The pin's row shows what it served: all of it, to one peer.
    let row = dom
        .split("<tr")
        .find(|r| r.contains(&format!("data-key=\"{}\"", release.root)))
        .expect("the pin's row");
    assert!(row.contains(">16.0 MiB<"), "{row}");
    assert!(row.contains(">1</td>"), "{row}");
    // One line in the plot: the fetcher, sent to, at a rate above zero.
    let peers = attrs_where(&dom, "data-dir=\"up\"", "data-peer");
    assert_eq!(peers.len(), 1, "{dom}");
    assert!(peers[0].starts_with(&short), "{} is not {short}", peers[0]);
    let max: f64 = attrs_where(&dom, "data-dir=\"up\"", "data-max")[0]
        .parse()
        .expect("a rate");
    assert!(max > 0.0 && max <= 4.0 * MIB as f64, "{max}");

    // A wrong token: the page loads, and says it cannot read the node.
    let dom = swarm_testkit::servers::chromium_dom(&format!("http://{api}/#token=wrong"), 2000)
        .expect("chromium")
        .expect("chromium runs");
    assert_eq!(attrs_where(&dom, "id=\"state\"", "data-ok"), ["0"], "{dom}");
    assert!(dom.contains("Bearer"), "{dom}");
    assert!(
        !dom.contains(&release.root),
        "nothing of the node shows: {dom}"
    );
    stop(node, "TERM");
}

/// Publish `app` as app 1.0.0 from `store` with a new key (kept beside
/// the store): the public key, the token and the root.
fn publish_app(store: &Path, app: &Path) -> (String, String, String) {
    let key_file = store.with_extension("key");
    let key = swarm_json(store, args!["keygen", "-o", &key_file]);
    let key = str_field(&key, "public_key").to_owned();
    let published = swarm_json(
        store,
        args![
            "publish",
            app,
            "--name",
            "app",
            "--version",
            "1.0.0",
            "--key",
            &key_file
        ],
    );
    let token = str_field(&published, "token").to_owned();
    let root = str_field(&published, "root").to_owned();
    (key, token, root)
}

#[test]
fn sighup_reloads_the_seed_list_and_status_shows_each_seed_with_its_next_attempt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (publisher, follower) = (tmp.path().join("publisher"), tmp.path().join("follower"));
    let app = tmp.path().join("app.bin");
    write_file(&app, &pseudo_random(400_000, 6), 0o755);
    let (key, token, root) = publish_app(&publisher, &app);
    let serving = start_node(&publisher, &[]);
    let config = tmp.path().join("node.toml");
    let write_config = |seed: &[&str], extra: &str| {
        let seeds: Vec<String> = seed.iter().map(|s| format!("{s:?}")).collect();
        let text = format!(
            "peers = [{:?}]\ntrust = [{key:?}]\nseed = [{}]\n{extra}",
            serving.json_addr(),
            seeds.join(", ")
        );
        write_file(&config, text.as_bytes(), 0o644);
    };
    write_config(&[], "");
    let node = start_node(&follower, &["--config", config.to_str().expect("utf-8")]);
    let s = swarm_json(&follower, ["status"]);
    assert_eq!(s["seeds"], serde_json::json!([]), "{s}");
    assert_eq!(s["limits"]["upload_limit"], Value::Null, "{s}");

    // The release, an entry that cannot work, and limits; then SIGHUP.
    write_config(
        &[&token, "swr1thisisnotatoken"],
        "upload_limit = \"3MiB\"\nmax_connections = 40\nwindow = \"2MiB\"\n",
    );
    signal(&node, "HUP");
    node.wait_for_log("and serving it", NODE_PATIENCE);
    assert!(
        node.log_text()
            .contains("following 2 seeds (2 new, 0 dropped"),
        "{}",
        node.log_text()
    );
    assert_eq!(pinned_roots(&follower), [root.as_str()]);
    let s = swarm_json(&follower, ["status"]);
    let seeds = s["seeds"].as_array().expect("seeds");
    assert_eq!(seeds.len(), 2, "{s}");
    assert_eq!(seeds[0]["entry"], token.as_str());
    assert_eq!(seeds[0]["serving"], true, "{s}");
    assert_eq!(seeds[0]["root"], root.as_str(), "{s}");
    assert_eq!(seeds[1]["serving"], false, "{s}");
    assert_eq!(seeds[1]["failures"], 1, "{s}");
    assert!(!seeds[1]["error"].is_null(), "{s}");
    // Retried with backoff: the first retry is 30 s away.
    let next = seeds[1]["next_attempt_secs"]
        .as_u64()
        .expect("next attempt");
    assert!((15..=30).contains(&next), "{s}");
    let text = swarm_ok(&follower, ["status"]).stdout;
    assert!(text.contains("seeds     2 followed"), "{text}");
    assert!(text.contains("next attempt in"), "{text}");
    assert!(
        node.log_text().contains("next attempt in 30 s"),
        "{}",
        node.log_text()
    );
    // The limits apply at once, without a restart.
    assert_eq!(s["limits"]["upload_limit"], 3 * MIB, "{s}");
    assert_eq!(s["limits"]["max_connections"], 40, "{s}");
    assert_eq!(s["limits"]["window"], 2 * MIB, "{s}");

    // A config that does not parse is refused, and nothing changes.
    write_file(&config, b"seed = [unquoted\n", 0o644);
    signal(&node, "HUP");
    node.wait_for_log("the config was not reloaded", NODE_PATIENCE);
    let s = swarm_json(&follower, ["status"]);
    assert_eq!(s["seeds"].as_array().map(Vec::len), Some(2), "{s}");
    // Emptied: nothing is followed; what was fetched stays served, and
    // the cap is lifted.
    write_config(&[], "");
    signal(&node, "HUP");
    node.wait_for_log("following 0 seeds", NODE_PATIENCE);
    let s = swarm_json(&follower, ["status"]);
    assert_eq!(s["seeds"], serde_json::json!([]), "{s}");
    assert_eq!(s["limits"]["upload_limit"], Value::Null, "{s}");
    assert_eq!(s["limits"]["window"], 4 * MIB, "the default again: {s}");
    assert_eq!(pinned_roots(&follower), [root.as_str()]);
    stop(node, "TERM");
    stop(serving, "TERM");
}

#[test]
fn a_seed_being_fetched_is_in_the_status_fetches_and_pauses_by_its_id() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (publisher, follower) = (tmp.path().join("publisher"), tmp.path().join("follower"));
    let app = tmp.path().join("app.bin");
    write_big_file(&app, 8 * MIB, 12);
    let (key, token, _) = publish_app(&publisher, &app);
    // Capped: 8 MiB at 1 MiB/s is about 8 s.
    let serving = start_node(&publisher, &["--upload-limit", "1MiB"]);
    let config = tmp.path().join("node.toml");
    let text = format!(
        "peers = [{:?}]\ntrust = [{key:?}]\nseed = [{token:?}]\n",
        serving.json_addr()
    );
    write_file(&config, text.as_bytes(), 0o644);
    let node = start_node(&follower, &["--config", config.to_str().expect("utf-8")]);
    // The seed's fetch is one of the node's fetches, labelled with it.
    let mut seen = None;
    for _ in 0..100 {
        let s = swarm_json(&follower, ["status"]);
        if s["fetches"].as_array().is_some_and(|f| !f.is_empty()) {
            seen = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = seen.expect("the seed's fetch shows in the status");
    let fetch = &s["fetches"][0];
    assert_eq!(fetch["label"], token.as_str(), "{s}");
    let id = fetch["id"].as_u64().expect("an id");
    assert_eq!(s["seeds"][0]["fetching"]["id"], id, "{s}");
    // Paused by its id through the API, as for any fetch.
    let api = swarm_engine::api::Client::new(follower.join("api.sock"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    assert!(rt.block_on(api.fetch_pause(id)).expect("pause").paused);
    let s = swarm_json(&follower, ["status"]);
    assert_eq!(s["fetches"][0]["paused"], true, "{s}");
    assert_eq!(s["seeds"][0]["fetching"]["paused"], true, "{s}");
    let text = swarm_ok(&follower, ["status"]).stdout;
    assert!(text.contains(&format!("#{id} (paused) ")), "{text}");
    assert!(
        text.contains(&format!("fetching (#{id}, paused)")),
        "{text}"
    );
    // Resumed, it completes and the seed is served.
    assert!(!rt.block_on(api.fetch_resume(id)).expect("resume").paused);
    node.wait_for_log("and serving it", NODE_PATIENCE);
    let s = swarm_json(&follower, ["status"]);
    assert_eq!(s["fetches"], serde_json::json!([]), "{s}");
    assert_eq!(s["seeds"][0]["serving"], true, "{s}");
    assert_check_ok(&follower);
    stop(node, "TERM");
    stop(serving, "TERM");
}

/// Issue 17, item 6, through a running node: names and prefixes are
/// resolved by the node against its pins, as on a stopped store.
#[test]
fn a_running_node_takes_a_pins_name_and_a_root_prefix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("s");
    let src = tmp.path().join("site");
    make_tree(&src, &[("a.txt", b"through the node".to_vec(), 0o644)]);
    let root = str_field(
        &swarm_json(&store, args!["add", &src, "--name", "site-v1"]),
        "root",
    )
    .to_owned();
    let node = start_node(&store, &[]);
    let out = tmp.path().join("out");
    let v = swarm_json(&store, args!["export", "site-v1", "-o", &out]);
    assert_eq!(str_field(&v, "root"), root);
    assert_same_tree(&src, &out.join("site"));
    let msg = swarm_err(&store, args!["rm", "site-v2"]);
    assert!(msg.contains("no pinned root is named"), "{msg}");
    let v = swarm_json(&store, args!["rm", &root[..6]]);
    assert_eq!(str_field(&v, "root"), root);
    stop(node, "TERM");
}
