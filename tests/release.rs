//! End-to-end tests of signed releases (wire-spec/release.md): `swarm
//! keygen`, `publish`, `verify`, `trust` and `fetch` of a signed-root token,
//! with real `swarm node` processes on 127.0.0.1.
//!
//! Every refusal is checked the same way: exit code 1, no panic, exactly one
//! `error: ` line on stderr saying what is wrong, and nothing downloaded —
//! the fetcher's store pins nothing, holds no more blobs than before, and
//! the `-o` directory was never created. A peer that really has the content
//! is always given, so a refusal that did not happen would show up as a
//! download.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::*;

/// Longest any one command may take before the test gives up on it: a bound
/// against hangs, not a speed check.
const PATIENCE: Duration = Duration::from_secs(60);
/// Longest a node may take to print its address.
const NODE_PATIENCE: Duration = Duration::from_secs(10);
/// The longest token any valid release can have (wire-spec/release.md §4).
const MAX_TOKEN: usize = 1605;

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

// ---------------------------------------------------------------------------
// Nodes.

/// A running `swarm --json node --listen 127.0.0.1:0`, SIGKILLed when dropped.
struct Node {
    _node: NodeChild,
    /// Where it listens, `127.0.0.1:PORT`.
    addr: String,
}

impl Node {
    fn start(store: &Path) -> Self {
        let node = NodeChild::spawn(
            &mut node_cmd(store, true),
            &node_log(store),
            LogMode::Truncate,
            1,
            NODE_PATIENCE,
        );
        let v = node.announcement();
        let addr = str_field(&v, "addr").to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "{v}");
        Self { _node: node, addr }
    }
}

// ---------------------------------------------------------------------------
// The release commands.

/// A publisher key made by `swarm keygen`.
struct Key {
    file: PathBuf,
    /// `swpk1…`, as keygen printed it.
    public: String,
}

/// `swarm keygen -o DIR/NAME.key`, required to succeed.
fn keygen(dir: &Path, name: &str) -> Key {
    let file = dir.join(format!("{name}.key"));
    let run = swarm_ok(&dir.join("unused-store"), args!["keygen", "-o", file]);
    let public = run.stdout.trim().to_owned();
    assert!(is_public_key(&public), "keygen printed {public:?}:\n{run}");
    Key { file, public }
}

/// `swpk1` and 52 base32 characters (wire-spec/release.md §1).
fn is_public_key(s: &str) -> bool {
    s.len() == 57
        && s.starts_with("swpk1")
        && s[5..]
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
}

/// `swarm --json --store STORE publish PATH --key KEY --name NAME
/// --version VERSION EXTRA...`, required to succeed; the parsed output.
fn publish(
    store: &Path,
    path: &Path,
    key: &Key,
    name: &str,
    version: &str,
    extra: Vec<OsString>,
) -> Value {
    let mut args = args![
        "--json",
        "publish",
        path,
        "--key",
        key.file,
        "--name",
        name,
        "--version",
        version
    ];
    args.extend(extra);
    let run = swarm_ok(store, args);
    let v = run.json();
    let token = str_field(&v, "token");
    assert!(token.starts_with("swr1"), "{v}");
    assert!(token.len() <= MAX_TOKEN, "{v}");
    assert_eq!(str_field(&v, "publisher"), key.public, "{v}");
    assert_eq!(str_field(&v, "name"), name, "{v}");
    assert_eq!(str_field(&v, "version"), version, "{v}");
    assert!(is_root_hex(str_field(&v, "root")), "{v}");
    v
}

fn token(published: &Value) -> String {
    str_field(published, "token").to_owned()
}

/// `swarm --store STORE fetch TOKEN --peer PEER -o OUT EXTRA...`, bounded.
fn fetch(store: &Path, token: &str, peer: &str, out: &Path, extra: Vec<OsString>) -> Run {
    let mut args = args!["fetch", token, "--peer", peer, "-o", out];
    args.extend(extra);
    swarm_within(store, &args, PATIENCE)
}

/// [`fetch`], required to succeed.
fn fetch_ok(store: &Path, token: &str, peer: &str, out: &Path, extra: Vec<OsString>) {
    let run = fetch(store, token, peer, out, extra);
    assert_no_panic(&run);
    assert!(run.success(), "fetch failed:\n{run}");
}

/// Blobs held by a store, as `swarm check` counts them.
fn blobs(store: &Path) -> u64 {
    u64_field(&swarm_json(store, ["check"]), "blobs")
}

/// [`fetch`], required to be refused cleanly without downloading anything:
/// returns the message after `error: `.
fn fetch_refused(
    store: &Path,
    token: &str,
    peer: &str,
    out: &Path,
    extra: Vec<OsString>,
) -> String {
    assert!(!out.exists(), "pick an output path that does not exist yet");
    let before = blobs(store);
    let run = fetch(store, token, peer, out, extra);
    let msg = error_message(&run);
    assert!(
        !out.exists(),
        "a refused fetch created {}:\n{run}",
        out.display()
    );
    assert_eq!(
        pinned_roots(store),
        Vec::<String>::new(),
        "a refused fetch pinned something:\n{run}"
    );
    assert_eq!(blobs(store), before, "a refused fetch stored blobs:\n{run}");
    msg
}

/// A refusal by a command that may already have printed a report on stdout
/// (`verify`): exit code 1, no panic, one `error: ` line on stderr.
fn refused(run: &Run) -> String {
    assert_no_panic(run);
    assert_eq!(run.code, Some(1), "expected exit code 1:\n{run}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr:\n{run}");
    let msg = lines[0]
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("stderr does not start with `error: `:\n{run}"));
    assert!(!msg.trim().is_empty(), "empty error message:\n{run}");
    msg.to_owned()
}

/// `swarm --json verify TOKEN [PATH] EXTRA...` (exit code not checked); the
/// run and its report, the first JSON value on stdout. (On a refusal the
/// report is followed by the `{"error": …}` object every command prints.)
fn verify_json(store: &Path, token: &str, extra: Vec<OsString>) -> (Run, Value) {
    let mut args = args!["--json", "verify", token];
    args.extend(extra);
    let run = swarm(store, args);
    assert_no_panic(&run);
    let v = serde_json::Deserializer::from_str(&run.stdout)
        .into_iter::<Value>()
        .next()
        .unwrap_or_else(|| panic!("verify --json printed nothing:\n{run}"))
        .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}):\n{run}"));
    (run, v)
}

/// A small release directory `DIR/app`: several files in nested
/// directories, with different modes. `variant` changes one file's bytes.
fn make_app(dir: &Path, variant: u64) -> PathBuf {
    let app = dir.join("app");
    make_tree(
        &app,
        &[
            (
                "README.md",
                b"# app\n\nSigned and fetched.\n".to_vec(),
                0o644,
            ),
            (
                "bin/run.sh",
                b"#!/bin/sh\nexec ./tool \"$@\"\n".to_vec(),
                0o755,
            ),
            ("bin/tool", pseudo_random(40_000, 100 + variant), 0o755),
            ("etc/app.conf", b"level = 3\n".to_vec(), 0o600),
            ("share/empty", Vec::new(), 0o444),
        ],
    );
    app
}

/// Total bytes of the files [`make_app`] writes.
const APP_SIZE: u64 = 27 + 27 + 40_000 + 10;

// ---------------------------------------------------------------------------
// 1. keygen

#[test]
fn keygen_writes_a_private_key_file_and_refuses_to_overwrite_it() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let file = tmp.path().join("keys/publisher.key");
    // keygen creates missing parent directories.
    let run = swarm_ok(&store, args!["keygen", "-o", file]);
    let public = run.stdout.trim().to_owned();
    assert!(is_public_key(&public), "keygen printed {public:?}:\n{run}");
    assert_eq!(run.stdout, format!("{public}\n"), "one line on stdout");

    let mode = fs::metadata(&file)
        .expect("stat key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode is {:o}", mode & 0o777);

    // The comment line names the same public key; the key line is swsk1….
    let text = fs::read_to_string(&file).expect("read key file");
    let comment = text
        .lines()
        .find(|l| l.starts_with('#'))
        .unwrap_or_else(|| panic!("no comment line in the key file:\n{text}"));
    let in_comment: Vec<&str> = comment
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.starts_with("swpk1"))
        .collect();
    assert_eq!(in_comment, [public.as_str()], "comment: {comment:?}");
    let secret: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(secret.len(), 1, "key file:\n{text}");
    assert!(secret[0].starts_with("swsk1"), "key file:\n{text}");
    assert!(
        !secret[0].contains(&public[5..]),
        "the secret line holds the public key"
    );

    // A second keygen to the same file is refused and changes nothing.
    let msg = swarm_err(&store, args!["keygen", "-o", file]);
    assert_eq!(
        msg,
        format!(
            "{} already exists; refusing to overwrite a key (move it away first, or use -o)",
            file.display()
        )
    );
    assert_eq!(fs::read_to_string(&file).expect("read key file"), text);
    let mode = fs::metadata(&file)
        .expect("stat key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Another file gets another key; --json names both.
    let other = tmp.path().join("keys/other.key");
    let v = swarm_json(&store, args!["keygen", "-o", other]);
    assert!(is_public_key(str_field(&v, "public_key")), "{v}");
    assert_ne!(str_field(&v, "public_key"), public, "{v}");
    assert_eq!(str_field(&v, "key_file"), other.to_str().expect("utf-8"));
}

// ---------------------------------------------------------------------------
// 2. Publish, serve, fetch by token.

#[test]
fn publish_then_fetch_by_token_between_two_processes() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app = make_app(&tmp.path().join("src"), 0);
    let publisher = tmp.path().join("publisher");
    let v = publish(&publisher, &app, &key, "myapp", "1.0.0", vec![]);
    assert_eq!(u64_field(&v, "seq"), 1, "{v}");
    assert_eq!(str_field(&v, "channel"), "stable", "{v}");
    assert_eq!(u64_field(&v, "size"), APP_SIZE, "{v}");
    assert_eq!(v["expires"], Value::Null, "{v}");
    let root = str_field(&v, "root").to_owned();
    let tok = token(&v);
    eprintln!("signed-root token ({} characters): {tok}", tok.len());
    // The content is pinned in the publisher's store, under the same root
    // `swarm add` gives it anywhere.
    assert_eq!(pinned_roots(&publisher), vec![root.clone()]);
    assert_eq!(add(&tmp.path().join("scratch"), &[&app]).root, root);

    // The token describes the release to anyone, trusted or not.
    let (_, info) = verify_json(&tmp.path().join("viewer"), &tok, vec![]);
    assert_eq!(str_field(&info, "root"), root, "{info}");
    assert_eq!(u64_field(&info, "seq"), 1, "{info}");
    assert_eq!(u64_field(&info, "token_length"), tok.len() as u64, "{info}");
    assert_eq!(info["trusted"], json!(false), "{info}");

    let node = Node::start(&publisher);

    // Trusted for this command only.
    let one = tmp.path().join("fetcher-one");
    let out = tmp.path().join("out-one");
    let run = fetch(&one, &tok, &node.addr, &out, args!["--trust", key.public]);
    assert!(run.success(), "{run}");
    // It says which release it got (issue 17), in text and in JSON.
    assert!(
        run.stderr.contains(&format!(
            "release myapp 1.0.0 on stable (seq 1) by {}",
            key.public
        )),
        "{run}"
    );
    assert_eq!(dir_names(&out), ["app"]);
    let json_args = args![
        "--json",
        "fetch",
        &tok,
        "--peer",
        &node.addr,
        "--trust",
        key.public,
        "--no-export"
    ];
    let again = swarm_within(&tmp.path().join("fetcher-json"), &json_args, PATIENCE);
    let v = again.json();
    assert_eq!(v["release"]["name"], json!("myapp"), "{v}");
    assert_eq!(v["release"]["version"], json!("1.0.0"), "{v}");
    assert_eq!(v["release"]["channel"], json!("stable"), "{v}");
    assert_eq!(v["release"]["publisher"], json!(key.public), "{v}");
    assert_same_tree(&app, &out.join("app"));
    // --trust is not remembered.
    assert_eq!(swarm_json(&one, ["trust", "ls"]), json!({ "trusted": [] }));

    // Trusted in the store.
    let two = tmp.path().join("fetcher-two");
    swarm_ok(
        &two,
        args!["trust", "add", key.public, "--name", "publisher"],
    );
    let out = tmp.path().join("out-two");
    let run = fetch(&two, &tok, &node.addr, &out, args!["--json"]);
    assert!(run.success(), "fetch failed:\n{run}");
    let fetched = run.json();
    assert_eq!(str_field(&fetched, "root"), root, "{fetched}");
    assert_eq!(u64_field(&fetched, "size"), APP_SIZE, "{fetched}");
    assert_eq!(u64_field(&fetched, "files"), 5, "{fetched}");
    assert_eq!(dir_names(&out), ["app"]);
    assert_same_tree(&app, &out.join("app"));
    // Now it verifies as trusted there, under its label.
    let run = swarm_ok(&two, args!["verify", tok]);
    assert!(
        run.stdout.contains("trusted as publisher"),
        "verify output:\n{run}"
    );
}

// ---------------------------------------------------------------------------
// 3. Untrusted publisher.

#[test]
fn untrusted_publisher_is_refused_with_the_command_to_trust_it() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let stranger = keygen(tmp.path(), "stranger");
    let app = make_app(&tmp.path().join("src"), 0);
    let publisher = tmp.path().join("publisher");
    let tok = token(&publish(&publisher, &app, &key, "myapp", "1.0.0", vec![]));
    let node = Node::start(&publisher);
    let fetcher = tmp.path().join("fetcher");

    let msg = fetch_refused(&fetcher, &tok, &node.addr, &tmp.path().join("out"), vec![]);
    assert_eq!(
        msg,
        format!(
            "release myapp is signed by {k}, which is not a trusted publisher; if you trust it, \
             add that key to the trusted publishers; run `swarm trust add {k}` or pass --trust {k}",
            k = key.public
        )
    );
    assert!(msg.contains(&format!("swarm trust add {}", key.public)));

    // Trusting another key does not help, on the command line or in the store.
    let msg = fetch_refused(
        &fetcher,
        &tok,
        &node.addr,
        &tmp.path().join("out"),
        args!["--trust", stranger.public],
    );
    assert!(msg.contains("which is not a trusted publisher"), "{msg}");
    swarm_ok(&fetcher, args!["trust", "add", stranger.public]);
    let msg = fetch_refused(&fetcher, &tok, &node.addr, &tmp.path().join("out"), vec![]);
    assert!(
        msg.contains(&format!("swarm trust add {}", key.public)),
        "{msg}"
    );

    // verify says so too.
    let (run, v) = verify_json(&fetcher, &tok, vec![]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(v["trusted"], json!(false), "{v}");
    assert_eq!(v["valid"], json!(false), "{v}");
    assert!(
        str_field(&v, "policy_error").contains("not a trusted publisher"),
        "{v}"
    );
    let run = swarm(&fetcher, args!["verify", tok]);
    assert!(run.stdout.contains("NOT TRUSTED"), "{run}");
    assert!(refused(&run).contains("not a trusted publisher"), "{run}");
}

// ---------------------------------------------------------------------------
// 4. Expired release.

#[test]
fn expired_release_is_refused() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app = make_app(&tmp.path().join("src"), 0);
    let publisher = tmp.path().join("publisher");
    let v = publish(
        &publisher,
        &app,
        &key,
        "myapp",
        "1.0.0",
        args!["--expires", "1s"],
    );
    let expires = u64_field(&v, "expires");
    let tok = token(&v);
    let node = Node::start(&publisher);
    let fetcher = tmp.path().join("fetcher");

    // Wait (bounded) until verify says it has expired.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (run, v) = verify_json(&fetcher, &tok, args!["--trust", key.public]);
        assert_eq!(u64_field(&v, "expires"), expires, "{v}");
        match v["policy_error"].as_str() {
            Some(e) if e.contains("expired") => {
                assert_eq!(run.code, Some(1), "{run}");
                assert_eq!(v["valid"], json!(false), "{v}");
                assert_eq!(v["trusted"], json!(true), "{v}");
                break;
            }
            None => assert!(run.success(), "{run}"),
            Some(e) => panic!("unexpected policy error {e:?}:\n{run}"),
        }
        assert!(
            Instant::now() < deadline,
            "still not expired 10 s after publishing with --expires 1s:\n{run}"
        );
        sleep(Duration::from_millis(200));
    }

    let msg = fetch_refused(
        &fetcher,
        &tok,
        &node.addr,
        &tmp.path().join("out"),
        args!["--trust", key.public],
    );
    assert!(
        msg.starts_with("release myapp 1.0.0 expired ")
            && msg.contains(&format!("(at unix time {expires})"))
            && msg.ends_with("ask the publisher for a newer release"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------
// 5. Rollback, across runs.

#[test]
fn rollback_is_refused_across_runs() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app1 = make_app(&tmp.path().join("v1"), 1);
    let app2 = make_app(&tmp.path().join("v2"), 2);
    let publisher = tmp.path().join("publisher");
    let v1 = publish(&publisher, &app1, &key, "myapp", "1.0.0", vec![]);
    let v2 = publish(&publisher, &app2, &key, "myapp", "1.1.0", vec![]);
    // The sequence counts up by itself per (key, name, channel).
    assert_eq!(u64_field(&v1, "seq"), 1, "{v1}");
    assert_eq!(u64_field(&v2, "seq"), 2, "{v2}");
    assert_ne!(v1["root"], v2["root"]);
    let (tok1, tok2) = (token(&v1), token(&v2));
    let node = Node::start(&publisher);

    let fetcher = tmp.path().join("fetcher");
    swarm_ok(&fetcher, args!["trust", "add", key.public]);
    let out = tmp.path().join("out-v2");
    fetch_ok(&fetcher, &tok2, &node.addr, &out, vec![]);
    assert_same_tree(&app2, &out.join("app"));

    // A new process, the same store: v1 is older than what was seen.
    let rollback = "refusing a rollback: release myapp sequence 1 is older than sequence 2 \
                    already seen from this publisher on channel stable";
    let msg = fetch_refused(
        &fetcher,
        &tok1,
        &node.addr,
        &tmp.path().join("out-v1"),
        vec![],
    );
    assert_eq!(msg, rollback);
    // Even with the key given explicitly.
    let msg = fetch_refused(
        &fetcher,
        &tok1,
        &node.addr,
        &tmp.path().join("out-v1"),
        args!["--trust", key.public],
    );
    assert_eq!(msg, rollback);

    // verify reports it.
    let run = swarm(&fetcher, args!["verify", tok1]);
    assert_eq!(refused(&run), rollback);
    let (_, v) = verify_json(&fetcher, &tok1, vec![]);
    assert_eq!(v["valid"], json!(false), "{v}");
    assert_eq!(v["trusted"], json!(true), "{v}");
    assert_eq!(str_field(&v, "policy_error"), rollback, "{v}");

    // v2 itself is still fine, again and again.
    let (run, v) = verify_json(&fetcher, &tok2, vec![]);
    assert!(run.success(), "{run}");
    assert_eq!(v["policy_error"], Value::Null, "{v}");
    fetch_ok(
        &fetcher,
        &tok2,
        &node.addr,
        &tmp.path().join("out-v2-again"),
        vec![],
    );

    // The refusal comes from what this store has seen: a store that never
    // saw v2 takes v1.
    let fresh = tmp.path().join("fresh");
    let out = tmp.path().join("out-fresh");
    fetch_ok(
        &fresh,
        &tok1,
        &node.addr,
        &out,
        args!["--trust", key.public],
    );
    assert_same_tree(&app1, &out.join("app"));
}

// ---------------------------------------------------------------------------
// 6. Equivocation.

#[test]
fn two_releases_with_one_sequence_are_refused_as_equivocation() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app_a = make_app(&tmp.path().join("a"), 1);
    let app_b = make_app(&tmp.path().join("b"), 2);
    // The same key in two stores: each thinks it publishes sequence 1.
    let (store_a, store_b) = (tmp.path().join("pub-a"), tmp.path().join("pub-b"));
    let va = publish(&store_a, &app_a, &key, "myapp", "1.0.0", vec![]);
    let vb = publish(&store_b, &app_b, &key, "myapp", "1.0.0", vec![]);
    assert_eq!(u64_field(&va, "seq"), 1, "{va}");
    assert_eq!(u64_field(&vb, "seq"), 1, "{vb}");
    assert_ne!(va["root"], vb["root"]);
    let (tok_a, tok_b) = (token(&va), token(&vb));
    let (node_a, node_b) = (Node::start(&store_a), Node::start(&store_b));

    let fetcher = tmp.path().join("fetcher");
    let trust = || args!["--trust", key.public];
    let out = tmp.path().join("out-a");
    fetch_ok(&fetcher, &tok_a, &node_a.addr, &out, trust());
    assert_same_tree(&app_a, &out.join("app"));

    let equivocation = "equivocation: the publisher signed two different releases of myapp \
                        with sequence 1 on channel stable; refusing this one. Report it to the \
                        publisher: their key may be compromised";
    let msg = fetch_refused(
        &fetcher,
        &tok_b,
        &node_b.addr,
        &tmp.path().join("out-b"),
        trust(),
    );
    assert_eq!(msg, equivocation);
    let (run, v) = verify_json(&fetcher, &tok_b, trust());
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(str_field(&v, "policy_error"), equivocation, "{v}");

    // The same record as the one accepted is accepted again.
    let out = tmp.path().join("out-a-again");
    fetch_ok(&fetcher, &tok_a, &node_a.addr, &out, trust());
    assert_same_tree(&app_a, &out.join("app"));
    // And the other one is still refused.
    let msg = fetch_refused(
        &fetcher,
        &tok_b,
        &node_b.addr,
        &tmp.path().join("out-b"),
        trust(),
    );
    assert_eq!(msg, equivocation);
}

// ---------------------------------------------------------------------------
// 7. Name and channel.

#[test]
fn release_for_another_name_or_channel_is_refused() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app = make_app(&tmp.path().join("src"), 0);
    let publisher = tmp.path().join("publisher");
    let stable = publish(&publisher, &app, &key, "myapp", "1.0.0", vec![]);
    let beta = publish(
        &publisher,
        &app,
        &key,
        "myapp",
        "1.1.0-beta.1",
        args!["--channel", "beta"],
    );
    assert_eq!(str_field(&stable, "channel"), "stable");
    assert_eq!(str_field(&beta, "channel"), "beta");
    // Each channel has its own sequence.
    assert_eq!(u64_field(&stable, "seq"), 1, "{stable}");
    assert_eq!(u64_field(&beta, "seq"), 1, "{beta}");
    let (tok_stable, tok_beta) = (token(&stable), token(&beta));
    let node = Node::start(&publisher);

    let fetcher = tmp.path().join("fetcher");
    let out = tmp.path().join("out");
    let with = |extra: &[&str]| {
        let mut a = args!["--trust", key.public];
        a.extend(extra.iter().map(OsString::from));
        a
    };

    let msg = fetch_refused(
        &fetcher,
        &tok_stable,
        &node.addr,
        &out,
        with(&["--name", "other"]),
    );
    assert_eq!(msg, r#"this release is for "myapp", not "other""#);
    let msg = fetch_refused(
        &fetcher,
        &tok_stable,
        &node.addr,
        &out,
        with(&["--channel", "beta"]),
    );
    assert_eq!(msg, r#"this release is on channel "stable", not "beta""#);
    let msg = fetch_refused(
        &fetcher,
        &tok_beta,
        &node.addr,
        &out,
        with(&["--channel", "stable"]),
    );
    assert_eq!(msg, r#"this release is on channel "beta", not "stable""#);
    // Name is checked before trust: even an untrusted one says why first.
    let msg = fetch_refused(
        &fetcher,
        &tok_beta,
        &node.addr,
        &out,
        args!["--name", "myapp", "--channel", "stable"],
    );
    assert_eq!(msg, r#"this release is on channel "beta", not "stable""#);

    // Asked for what they are, both are fine (nothing was recorded by the
    // refusals).
    fetch_ok(
        &fetcher,
        &tok_stable,
        &node.addr,
        &out,
        with(&["--name", "myapp", "--channel", "stable"]),
    );
    assert_same_tree(&app, &out.join("app"));
    let out = tmp.path().join("out-beta");
    fetch_ok(
        &fetcher,
        &tok_beta,
        &node.addr,
        &out,
        with(&["--name", "myapp", "--channel", "beta"]),
    );
    assert_same_tree(&app, &out.join("app"));
}

// ---------------------------------------------------------------------------
// 8. Damaged tokens.

/// `token` with the base32 character at `index` changed in its lowest bit.
fn flip_char(token: &str, index: usize) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut b = token.as_bytes().to_vec();
    let v = ALPHABET
        .iter()
        .position(|&c| c == b[index])
        .expect("a base32 character");
    b[index] = ALPHABET[v ^ 1];
    String::from_utf8(b).expect("ascii")
}

#[test]
fn damaged_tokens_are_refused_clearly() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app = make_app(&tmp.path().join("src"), 0);
    let publisher = tmp.path().join("publisher");
    let tok = token(&publish(&publisher, &app, &key, "myapp", "1.0.0", vec![]));
    let node = Node::start(&publisher);
    let fetcher = tmp.path().join("fetcher");
    let out = tmp.path().join("out");
    let trust = || args!["--trust", key.public];

    // Garbage. fetch also takes a bare root, and says what it expected.
    let msg = fetch_refused(&fetcher, "hello", &node.addr, &out, vec![]);
    assert_eq!(
        msg,
        r#""hello" is not a root hash (64 hex characters), and no pinned root is named so or starts with it (4 or more hex characters); see `swarm ls`"#
    );
    let msg = fetch_refused(&fetcher, "hello", &node.addr, &out, trust());
    assert_eq!(
        msg,
        "--trust, --name and --channel apply to a signed-root token, not a bare root"
    );
    let msg = swarm_err(&fetcher, args!["verify", "hello", "--trust", key.public]);
    assert_eq!(
        msg,
        "not a signed release: a token starts with swr1 or swr2, a ticket with swt1"
    );

    const TRUNCATED: &str = "token is truncated or has extra bytes; copy it again";
    const MISMATCH: &str = "the signature does not match: this token was mistyped, cut short or \
                            altered (a swr1 token has no checksum to tell which); copy it again, \
                            and if it still fails, it was altered";
    const DAMAGED: &str =
        "token is damaged (characters outside a-z, 2-7, or cut off); copy it again";
    // A token cut short: whether what is left ends on a whole byte with
    // zero padding bits depends on the length and on the bits cut through,
    // so the decoder ("damaged") or the record reader ("truncated") stops it.
    let cut_10 = &tok[..tok.len() - 10];
    let cut_1 = &tok[..tok.len() - 1];
    let flipped = flip_char(&tok, tok.len() / 2);
    let oversized = format!("swr1{}", "a".repeat(5000));
    let bad_char = format!("{}!{}", &tok[..40], &tok[41..]);
    let cases: [(&str, &[&str]); 5] = [
        (cut_10, &[TRUNCATED, DAMAGED]),
        (cut_1, &[TRUNCATED, DAMAGED]),
        (&flipped, &[MISMATCH]),
        (
            &oversized,
            &["token of 5004 characters is longer than any valid token (1605)"],
        ),
        (&bad_char, &[DAMAGED]),
    ];
    for (bad, says) in cases {
        let msg = fetch_refused(&fetcher, bad, &node.addr, &out, trust());
        assert!(says.contains(&msg.as_str()), "fetch of {bad:?}: {msg}");
        let msg = fetch_refused(&fetcher, bad, &node.addr, &out, vec![]);
        assert!(
            says.contains(&msg.as_str()),
            "fetch of {bad:?} without --trust: {msg}"
        );
        let msg = swarm_err(&fetcher, args!["verify", bad, "--trust", key.public]);
        assert!(says.contains(&msg.as_str()), "verify of {bad:?}: {msg}");
    }

    // Every single-bit change of a character anywhere after the prefix is
    // caught (by the decoder or the signature), without a panic.
    for i in (4..tok.len()).step_by(7) {
        let run = swarm(&fetcher, args!["verify", flip_char(&tok, i)]);
        let msg = error_message(&run);
        assert!(msg.contains("token"), "character {i}: {msg}");
    }

    // Whitespace around a pasted token is fine.
    let padded = format!("  {tok}\n");
    fetch_ok(&fetcher, &padded, &node.addr, &out, trust());
    assert_same_tree(&app, &out.join("app"));
}

/// What `swarm publish` prints is a ticket (issue 17): with the publishing
/// node's addresses when it goes through a running node, so the ticket is
/// all a fetch needs; a typo in it is reported as a typo, where the same
/// change in the bare token reads as a signature that does not match.
#[test]
fn publish_prints_a_ticket_that_tells_a_typo_from_a_forgery() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app = make_app(&tmp.path().join("src"), 0);
    let publisher = tmp.path().join("publisher");
    // Published with no node: the ticket names no peer, and says so.
    let run = swarm_ok(
        &publisher,
        args![
            "publish",
            &app,
            "--key",
            key.file,
            "--name",
            "myapp",
            "--version",
            "1.0.0"
        ],
    );
    let lonely = run.stdout.trim().to_owned();
    assert!(lonely.starts_with("swt1"), "{run}");
    assert!(run.stderr.contains("names no peer"), "{run}");

    // Through a running node: its addresses are in the ticket.
    let node = Node::start(&publisher);
    let v = publish(&publisher, &app, &key, "myapp", "1.1.0", vec![]);
    let ticket = str_field(&v, "ticket").to_owned();
    let tok = token(&v);
    assert!(ticket.starts_with("swt1"), "{v}");
    let fetcher = tmp.path().join("fetcher");
    let shown = swarm_ok(
        &fetcher,
        args!["--json", "verify", &ticket, "--trust", key.public],
    );
    let shown = shown.json();
    assert_eq!(shown["valid"], true, "{shown}");
    assert_eq!(shown["version"], "1.1.0", "{shown}");

    // One character changed, at several places: a typo in the ticket; in
    // the bare token, a signature that does not match.
    for i in [12, ticket.len() / 2, ticket.len() - 2] {
        let msg = swarm_err(&fetcher, args!["verify", flip_char(&ticket, i)]);
        assert!(msg.contains("typo"), "character {i}: {msg}");
        assert!(!msg.contains("forged") && !msg.contains("altered"), "{msg}");
    }
    let msg = swarm_err(&fetcher, args!["verify", flip_char(&tok, tok.len() / 2)]);
    assert!(msg.contains("mistyped"), "{msg}");

    // The ticket alone fetches, from the node it names; the release is
    // checked as a token's is.
    let out = tmp.path().join("out");
    let refused = swarm_err(&fetcher, args!["fetch", &ticket, "-o", &out, "--no-dht"]);
    assert!(refused.contains("not a trusted publisher"), "{refused}");
    let fetch_args = args![
        "fetch", &ticket, "-o", &out, "--no-dht", "--trust", key.public
    ];
    let run = swarm_within(&fetcher, &fetch_args, PATIENCE);
    assert!(run.success(), "{run}");
    assert!(run.stderr.contains("release myapp 1.1.0"), "{run}");
    assert_same_tree(&app, &out.join("app"));
    drop(node);

    // A ticket of a bare root where only a release is taken.
    let share = swarm_ok(&publisher, args!["--json", "add", &app]).json();
    let root: swarm_engine::Hash = str_field(&share, "root").parse().expect("root");
    let bare = swarm_engine::ticket::Ticket::new(swarm_engine::ticket::TicketTarget::Root(root));
    let msg = swarm_err(&fetcher, args!["verify", bare.to_string()]);
    assert!(msg.contains("names a bare root"), "{msg}");
}

#[test]
fn upper_case_token_still_works() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app = make_app(&tmp.path().join("src"), 0);
    let publisher = tmp.path().join("publisher");
    let tok = token(&publish(&publisher, &app, &key, "myapp", "1.0.0", vec![]));
    let node = Node::start(&publisher);
    let fetcher = tmp.path().join("fetcher");
    let trust = || args!["--trust", key.public];

    // Base32 in upper case after the prefix.
    let body_upper = format!("swr1{}", tok[4..].to_ascii_uppercase());
    let out = tmp.path().join("out-body");
    fetch_ok(&fetcher, &body_upper, &node.addr, &out, trust());
    assert_same_tree(&app, &out.join("app"));

    // The whole token upper-cased, as some channels (QR alphanumeric mode,
    // a shouting user) deliver it: wire-spec/release.md §4 says readers
    // accept upper-case letters.
    let all_upper = tok.to_ascii_uppercase();
    let run = swarm(&fetcher, args!["verify", all_upper, "--trust", key.public]);
    assert!(run.success(), "verify of the upper-cased token:\n{run}");
    let out = tmp.path().join("out-all");
    fetch_ok(&fetcher, &all_upper, &node.addr, &out, trust());
    assert_same_tree(&app, &out.join("app"));
}

// ---------------------------------------------------------------------------
// 9. verify TOKEN PATH.

#[test]
fn verify_with_a_path_compares_local_files_with_the_release() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let app = make_app(&tmp.path().join("src"), 0);
    let publisher = tmp.path().join("publisher");
    let v = publish(&publisher, &app, &key, "myapp", "1.0.0", vec![]);
    let (tok, root) = (token(&v), str_field(&v, "root").to_owned());
    let store = tmp.path().join("checker");

    let run = swarm_ok(&store, args!["verify", tok, app, "--trust", key.public]);
    assert!(run.stdout.contains("files     match the root"), "{run}");
    let (run, v) = verify_json(&store, &tok, args![app, "--trust", key.public]);
    assert!(run.success(), "{run}");
    assert_eq!(v["path_matches"], json!(true), "{v}");
    assert_eq!(v["valid"], json!(true), "{v}");

    // One file changed.
    let conf = app.join("etc/app.conf");
    let original = fs::read(&conf).expect("read conf");
    write_file(&conf, b"level = 4\n", 0o600);
    let run = swarm(&store, args!["verify", tok, app, "--trust", key.public]);
    let msg = refused(&run);
    assert!(run.stdout.contains("DO NOT match"), "{run}");
    let prefix = format!(
        "the files at {} do not match this release: they hash to ",
        app.display()
    );
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(
        msg.ends_with(&format!(", the release says {root}")),
        "{msg}"
    );
    let (run, v) = verify_json(&store, &tok, args![app, "--trust", key.public]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(v["path_matches"], json!(false), "{v}");
    assert_eq!(v["valid"], json!(false), "{v}");
    // The signature and policy are fine; only the files differ.
    assert_eq!(v["policy_error"], Value::Null, "{v}");

    // Put it back: it matches again.
    write_file(&conf, &original, 0o600);
    swarm_ok(&store, args!["verify", tok, app, "--trust", key.public]);
}

// ---------------------------------------------------------------------------
// 10. trust add / ls / rm.

#[test]
fn trust_add_ls_rm_round_trip() {
    let tmp = tempdir();
    let alice = keygen(tmp.path(), "alice");
    let bob = keygen(tmp.path(), "bob");
    let store = tmp.path().join("store");

    assert_eq!(
        swarm_json(&store, ["trust", "ls"]),
        json!({ "trusted": [] })
    );
    let v = swarm_json(
        &store,
        args!["trust", "add", alice.public, "--name", "alice"],
    );
    assert_eq!(v, json!({ "public_key": alice.public, "name": "alice" }));
    swarm_ok(&store, args!["trust", "add", bob.public]);

    let listed = swarm_json(&store, ["trust", "ls"]);
    let mut entries = listed["trusted"]
        .as_array()
        .unwrap_or_else(|| panic!("no trusted array: {listed}"))
        .clone();
    entries.sort_by_key(|e| e["public_key"].as_str().map(str::to_owned));
    let mut want = vec![
        json!({ "public_key": alice.public, "name": "alice" }),
        json!({ "public_key": bob.public, "name": "" }),
    ];
    want.sort_by_key(|e| e["public_key"].as_str().map(str::to_owned));
    assert_eq!(entries, want, "{listed}");
    // Text form: one line per key.
    let run = swarm_ok(&store, ["trust", "ls"]);
    assert_eq!(run.stdout.lines().count(), 2, "{run}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with(&alice.public) && l.contains("alice")),
        "{run}"
    );

    // Re-adding updates the label instead of duplicating.
    swarm_ok(
        &store,
        args!["trust", "add", alice.public, "--name", "alice2"],
    );
    let listed = swarm_json(&store, ["trust", "ls"]);
    assert_eq!(
        listed["trusted"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );

    swarm_ok(&store, args!["trust", "rm", alice.public]);
    assert_eq!(
        swarm_json(&store, ["trust", "ls"]),
        json!({ "trusted": [{ "public_key": bob.public, "name": "" }] })
    );
    let msg = swarm_err(&store, args!["trust", "rm", alice.public]);
    assert_eq!(
        msg,
        format!("{} is not trusted; see `swarm trust ls`", alice.public)
    );
    swarm_ok(&store, args!["trust", "rm", bob.public]);
    assert_eq!(
        swarm_json(&store, ["trust", "ls"]),
        json!({ "trusted": [] })
    );

    // Malformed keys.
    let bad_key = |k: &str| {
        format!(
            "not a publisher key: {k:?} (expected a public key, swpk1…); `swarm keygen` prints one"
        )
    };
    for k in [
        "hello",
        "swpk1abc",
        &alice.public[..alice.public.len() - 1],
        &format!("{}!", &alice.public[..alice.public.len() - 1]),
    ] {
        assert_eq!(
            swarm_err(&store, args!["trust", "add", k]),
            bad_key(k),
            "{k:?}"
        );
        assert_eq!(
            swarm_err(&store, args!["trust", "rm", k]),
            bad_key(k),
            "{k:?}"
        );
    }
    // The secret key line is not a public key.
    let secret = fs::read_to_string(&alice.file).expect("read key file");
    let secret = secret
        .lines()
        .find(|l| l.starts_with("swsk1"))
        .expect("swsk1 line");
    let msg = swarm_err(&store, args!["trust", "add", secret]);
    // It says what went wrong without repeating the secret.
    assert!(msg.contains("SECRET key"), "{msg}");
    assert!(
        !msg.contains(&secret[5..20]),
        "the error echoes the secret key: {msg}"
    );
    assert_eq!(
        swarm_json(&store, ["trust", "ls"]),
        json!({ "trusted": [] })
    );
}

/// Two builds of a program: the same bytes with small changes and a shift.
fn program_builds(dir: &Path) -> (PathBuf, PathBuf) {
    let old = pseudo_random(48 * 1024, 77).repeat(40);
    let mut new = old.clone();
    // New code (40 KB that no patch can find in the old build, so the
    // patch is a blob file of its own), and addresses changed throughout.
    new.splice(100_000..100_000, pseudo_random(40_000, 78));
    for i in (0..new.len()).step_by(5_003) {
        new[i] ^= 0x21;
    }
    let (a, b) = (dir.join("build-1/app"), dir.join("build-2/app"));
    make_tree(
        &a,
        &[
            ("bin/tool", old, 0o755),
            ("README", b"same\n".to_vec(), 0o644),
        ],
    );
    make_tree(
        &b,
        &[
            ("bin/tool", new, 0o755),
            ("README", b"same\n".to_vec(), 0o644),
        ],
    );
    (a, b)
}

/// Issue 18: a release published with `--delta-from` lists a patch for
/// the file that changed; a fetcher that keeps the earlier release fetches
/// the patch instead of the file and ends byte-identical. With the patch
/// damaged at the seeder, the fetch falls back to the whole file.
#[test]
fn a_release_with_a_patch_moves_a_tenth_and_a_damaged_patch_falls_back() {
    let tmp = tempdir();
    let key = keygen(tmp.path(), "publisher");
    let (v1_dir, v2_dir) = program_builds(tmp.path());
    let size = fs::metadata(v2_dir.join("bin/tool")).expect("stat").len();
    let publisher = tmp.path().join("publisher");
    let v1 = publish(&publisher, &v1_dir, &key, "app", "1.0.0", vec![]);
    let v2 = publish(
        &publisher,
        &v2_dir,
        &key,
        "app",
        "1.1.0",
        args!["--delta-from", str_field(&v1, "root")],
    );
    let patches = v2["patches"].as_array().expect("patches");
    assert_eq!(patches.len(), 1, "{v2}");
    assert_eq!(str_field(&patches[0], "path"), "app/bin/tool", "{v2}");
    let patch_bytes = u64_field(&patches[0], "bytes");
    assert!(patch_bytes < size / 10, "{v2}");
    let patch_hash = str_field(&patches[0], "patch").to_owned();
    let node = Node::start(&publisher);
    let trust = || args!["--trust", key.public, "--keep"];

    // Keeping v1, v2 comes as its patch.
    let a = tmp.path().join("fetcher-a");
    fetch_ok(&a, &token(&v1), &node.addr, &tmp.path().join("a1"), trust());
    let run = fetch(&a, &token(&v2), &node.addr, &tmp.path().join("a2"), trust());
    assert!(run.success(), "{run}");
    assert!(run.stderr.contains("1 file made by patches"), "{run}");
    assert_same_tree(&v2_dir, &tmp.path().join("a2/app"));
    let a2 = tmp.path().join("fetcher-a2");
    let json_fetch = |t: &str| {
        let a = args![
            "--json",
            "fetch",
            t,
            "--peer",
            &node.addr,
            "--trust",
            key.public,
            "--no-export"
        ];
        swarm_within(&a2, &a, PATIENCE)
    };
    let first = json_fetch(&token(&v1));
    assert!(first.success(), "{first}");
    let json_run = json_fetch(&token(&v2));
    let v = json_run.json();
    let received = u64_field(&v, "received");
    assert!(received < size / 4, "received {received} of {size}: {v}");
    assert_eq!(u64_field(&v["patched"], "files"), 1, "{v}");
    assert_check_ok(&a2);

    // The patch rots at the seeder: it stops serving it, and the fetch
    // takes the whole file, byte-identical.
    drop(node);
    let data = data_files(&publisher)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&patch_hash))
        .expect("the patch's data file");
    let mut bytes = fs::read(&data).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&data, bytes).expect("write");
    let node = Node::start(&publisher);
    let b = tmp.path().join("fetcher-b");
    fetch_ok(&b, &token(&v1), &node.addr, &tmp.path().join("b1"), trust());
    let run = fetch(&b, &token(&v2), &node.addr, &tmp.path().join("b2"), trust());
    assert!(run.success(), "{run}");
    assert!(!run.stderr.contains("made by patches"), "{run}");
    assert_same_tree(&v2_dir, &tmp.path().join("b2/app"));
    assert_check_ok(&b);
}

// ---------------------------------------------------------------------------
// Threshold releases, key rotation (wire-spec/release.md §7–§9).

/// `swarm --json root …` in `dir`, required to succeed.
fn root_cmd(dir: &Path, args: Vec<OsString>) -> Value {
    let mut all = args!["--json", "root"];
    all.extend(args);
    swarm_ok(&dir.join("unused-store"), all).json()
}

/// `DIR/chain.txt`: version 1 of a root of `keys` with `threshold`, named
/// by `pointer`, signed by every key; what `swarm root show` then says.
fn signed_chain(d: &Path, keys: &[&Key], threshold: u8, pointer: &Key) -> (PathBuf, Value) {
    let chain = d.join("chain.txt");
    let mut init = args![
        "init",
        "--threshold",
        threshold.to_string(),
        "--pointer",
        pointer.public,
        "-o",
        chain
    ];
    for k in keys {
        init.extend(args!["--key", k.public]);
    }
    root_cmd(d, init);
    let mut shown = Value::Null;
    for k in keys {
        shown = root_cmd(d, args!["sign", chain, "--key", k.file]);
    }
    (chain, shown)
}

/// `swarm --json --store STORE publish … --root CHAIN EXTRA…` (threshold),
/// required to succeed.
fn publish_threshold(
    store: &Path,
    path: &Path,
    key: &Key,
    chain: &Path,
    version: &str,
    extra: Vec<OsString>,
) -> Value {
    let mut args = args![
        "--json",
        "publish",
        path,
        "--key",
        key.file,
        "--root",
        chain,
        "--name",
        "myapp",
        "--version",
        version
    ];
    args.extend(extra);
    let v = swarm_ok(store, args).json();
    assert!(str_field(&v, "token").starts_with("swr2"), "{v}");
    v
}

/// `swarm --json --store STORE sign TOKEN --key KEY EXTRA…`, required to
/// succeed.
fn sign(store: &Path, token: &str, key: &Key, extra: Vec<OsString>) -> Value {
    let mut args = args!["--json", "sign", token, "--key", key.file];
    args.extend(extra);
    swarm_ok(store, args).json()
}

#[test]
fn a_2_of_3_publisher_signs_on_two_machines_rotates_a_key_out_and_publishes_from_a_third() {
    let tmp = tempdir();
    let d = tmp.path();
    let [a, b, c, new] = ["a", "b", "c", "d"].map(|n| keygen(d, n));
    let pointer = keygen(d, "pointer");
    let chain = d.join("chain.txt");
    let v = root_cmd(
        d,
        args![
            "init",
            "--key",
            a.file,
            "--key",
            b.public,
            "--key",
            c.file,
            "--threshold",
            "2",
            "--pointer",
            pointer.public,
            "-o",
            chain
        ],
    );
    assert_eq!(v["roots"][0]["complete"], false, "{v}");
    for k in [&a, &b] {
        root_cmd(d, args!["sign", chain, "--key", k.file]);
    }
    let v = root_cmd(d, args!["show", chain]);
    assert_eq!(v["roots"][0]["complete"], true, "{v}");
    // The fetcher pins the first root and nothing else.
    let first = d.join("first-root.txt");
    fs::copy(&chain, &first).expect("copy the chain file");
    let fetcher = d.join("fetcher");
    swarm_ok(&fetcher, args!["trust", "add", first, "--name", "acme"]);

    // Machine 1 publishes v1 with key a: 1 of 2, refused by fetchers.
    let m1 = d.join("machine-1");
    let app1 = make_app(&d.join("v1"), 1);
    let p1 = publish_threshold(&m1, &app1, &a, &chain, "1.0.0", vec![]);
    assert_eq!(
        (u64_field(&p1, "signatures"), u64_field(&p1, "threshold")),
        (1, 2),
        "{p1}"
    );
    let half = token(&p1);
    let (run, v) = verify_json(&fetcher, &half, vec![]);
    assert_eq!(run.code, Some(1), "{run}");
    let why = str_field(&v, "policy_error");
    assert!(
        why.contains("signed by 1 of the 2 keys") && why.contains("swarm sign"),
        "{why}"
    );
    // Machine 2 adds b's signature: complete.
    let m2 = d.join("machine-2");
    let s1 = sign(&m2, &half, &b, vec![]);
    assert_eq!(s1["complete"], true, "{s1}");
    let full = str_field(&s1, "token").to_owned();
    eprintln!(
        "a 2-of-3 release token, 2 signatures, carrying its first root: {} characters\n{full}",
        full.len()
    );
    let node1 = Node::start(&m1);
    let out = d.join("out-1");
    fetch_ok(&fetcher, &full, &node1.addr, &out, vec![]);
    assert_same_tree(&app1, &out.join("app"));

    // Rotate c out for d: a and b sign for both the old and the new set.
    root_cmd(
        d,
        args![
            "rotate",
            chain,
            "--key",
            a.public,
            "--key",
            b.public,
            "--key",
            new.public,
            "--threshold",
            "2"
        ],
    );
    root_cmd(d, args!["sign", chain, "--key", a.file]);
    // Not enough yet: publishing under it is refused.
    let m3 = d.join("machine-3");
    let app2 = make_app(&d.join("v2"), 2);
    let err = swarm_err(
        &m3,
        args![
            "publish",
            app2,
            "--key",
            new.file,
            "--root",
            chain,
            "--name",
            "myapp",
            "--version",
            "2.0.0",
            "--seq",
            "2"
        ],
    );
    assert!(err.contains("has 1 of the signatures it needs"), "{err}");
    root_cmd(d, args!["sign", chain, "--key", b.file]);
    // Machine 3 (a fresh store, no DHT) publishes v2 with d; machine 1 co-signs.
    let p2 = publish_threshold(&m3, &app2, &new, &chain, "2.0.0", args!["--seq", "2"]);
    assert_eq!(u64_field(&p2, "seq"), 2, "{p2}");
    let s2 = sign(&m1, &token(&p2), &a, vec![]);
    assert_eq!(s2["complete"], true, "{s2}");
    let v2 = str_field(&s2, "token").to_owned();
    eprintln!(
        "the v2 token, 2 signatures, carrying roots 1 and 2: {} characters",
        v2.len()
    );
    let node3 = Node::start(&m3);
    let out = d.join("out-2");
    fetch_ok(&fetcher, &v2, &node3.addr, &out, vec![]);
    assert_same_tree(&app2, &out.join("app"));
    let list = swarm_json(&fetcher, ["trust", "ls"]);
    assert_eq!(list["trusted"][0]["root_version"], 2, "{list}");

    // c, rotated out, signs alone, or with a under the old root: refused.
    let old_root = d.join("old-root.txt");
    fs::copy(&first, &old_root).expect("copy");
    let m4 = d.join("machine-4");
    let app3 = make_app(&d.join("v3"), 3);
    let evil = publish_threshold(&m4, &app3, &c, &old_root, "3.0.0", args!["--seq", "9"]);
    let node4 = Node::start(&m4);
    let msg = fetch_refused(
        &fetcher,
        &token(&evil),
        &node4.addr,
        &d.join("out-3"),
        vec![],
    );
    assert!(
        msg.contains("signed under root version 1") && msg.contains("replaced"),
        "{msg}"
    );
    let with_a = sign(
        &d.join("machine-5"),
        &token(&evil),
        &a,
        args!["--root", old_root],
    );
    assert_eq!(with_a["complete"], true, "{with_a}");
    let msg = fetch_refused(
        &fetcher,
        str_field(&with_a, "token"),
        &node4.addr,
        &d.join("out-3"),
        vec![],
    );
    assert!(msg.contains("root version 2 replaced"), "{msg}");
    // Under the new root, c has no place at all.
    let err = swarm_err(
        &d.join("machine-5"),
        args!["sign", token(&p2), "--key", c.file],
    );
    assert!(
        err.contains("is not one of the keys of root version 2"),
        "{err}"
    );
}

#[test]
fn bad_roots_and_signing_input_get_clear_errors() {
    let tmp = tempdir();
    let d = tmp.path();
    let [a, b] = ["a", "b"].map(|n| keygen(d, n));
    let store = d.join("store");
    let chain = d.join("chain.txt");
    let init = |extra: Vec<OsString>| {
        let mut args = args!["root", "init", "--pointer", a.public, "-o", chain];
        args.extend(extra);
        swarm_err(&store, args)
    };
    // A threshold of 0, above the key count, a key listed twice, too many.
    let msg = init(args!["--key", a.public, "--threshold", "0"]);
    assert!(msg.contains("threshold 0 with 1 keys"), "{msg}");
    let msg = init(args![
        "--key",
        a.public,
        "--key",
        b.public,
        "--threshold",
        "3"
    ]);
    assert!(msg.contains("threshold 3 with 2 keys"), "{msg}");
    let msg = init(args![
        "--key",
        a.public,
        "--key",
        a.file,
        "--threshold",
        "1"
    ]);
    assert!(msg.contains("is listed twice"), "{msg}");
    let mut many = args!["--threshold", "1"];
    for i in 0..17u8 {
        let k = keygen(d, &format!("k{i}"));
        many.extend(args!["--key", k.public]);
    }
    let msg = init(many);
    assert!(msg.contains("more than 16"), "{msg}");
    assert!(!chain.exists(), "nothing written");
    // A secret key where a public key belongs is refused and not echoed.
    let secret = fs::read_to_string(&a.file).unwrap();
    let secret_line = secret.lines().find(|l| l.starts_with("swsk1")).unwrap();
    let msg = init(args!["--key", secret_line, "--threshold", "1"]);
    assert!(
        msg.contains("SECRET key") && !msg.contains(secret_line),
        "{msg}"
    );
    // A chain file with a gap, and a damaged one.
    swarm_ok(
        &store,
        args![
            "root",
            "init",
            "--key",
            a.public,
            "--threshold",
            "1",
            "--pointer",
            a.public,
            "-o",
            chain
        ],
    );
    swarm_ok(&store, args!["root", "sign", chain, "--key", a.file]);
    // Versions 2 (b alone) and 3 (a alone), each signed by the old key and
    // the new.
    for (next, old) in [(&b, &a), (&a, &b)] {
        let rotate = args![
            "root",
            "rotate",
            chain,
            "--key",
            next.public,
            "--threshold",
            "1"
        ];
        swarm_ok(&store, rotate);
        for k in [old, next] {
            swarm_ok(&store, args!["root", "sign", chain, "--key", k.file]);
        }
    }
    let text = fs::read_to_string(&chain).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("swrt1")).collect();
    assert_eq!(lines.len(), 3, "{text}");
    let gap = d.join("gap.txt");
    fs::write(&gap, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    let msg = swarm_err(&store, args!["trust", "add", gap]);
    assert!(msg.contains("jumps from root version 1 to 3"), "{msg}");
    let looped = d.join("loop.txt");
    fs::write(
        &looped,
        format!("{}\n{}\n{}\n", lines[0], lines[1], lines[0]),
    )
    .unwrap();
    let msg = swarm_err(&store, args!["trust", "add", looped]);
    assert!(
        msg.contains("a chain starts at root version 1") || msg.contains("after version 2"),
        "{msg}"
    );
    let damaged = d.join("damaged.txt");
    fs::write(&damaged, flip_char(lines[0], lines[0].len() - 20)).unwrap();
    let msg = swarm_err(&store, args!["trust", "add", damaged]);
    assert!(
        msg.contains("does not verify") || msg.contains("canonical") || msg.contains("damaged"),
        "{msg}"
    );
    assert_eq!(
        swarm_json(&store, ["trust", "ls"])["trusted"],
        json!([]),
        "nothing trusted"
    );
    // A key file of the wrong kind for signing.
    let not_a_key = d.join("not-a-key");
    fs::write(&not_a_key, format!("{}\n", a.public)).unwrap();
    fs::set_permissions(&not_a_key, fs::Permissions::from_mode(0o600)).unwrap();
    let msg = swarm_err(&store, args!["root", "sign", chain, "--key", not_a_key]);
    assert!(msg.contains("not a swarm secret key file"), "{msg}");
    // A single-key token takes no second signature.
    let app = make_app(&d.join("src"), 0);
    let single = token(&publish(&d.join("p"), &app, &a, "myapp", "1.0.0", vec![]));
    let msg = swarm_err(&store, args!["sign", single, "--key", b.file]);
    assert!(msg.contains("single-key release"), "{msg}");
}

#[test]
fn trust_for_one_command_takes_a_chain_file_or_a_first_root_fingerprint() {
    let tmp = tempdir();
    let d = tmp.path();
    let [a, pointer] = ["a", "pointer"].map(|n| keygen(d, n));
    let (chain, shown) = signed_chain(d, &[&a], 1, &pointer);
    let fingerprint = str_field(&shown, "first_root_fingerprint").to_owned();
    assert!(fingerprint.starts_with("swrf1"), "{shown}");
    let app = make_app(&d.join("src"), 0);
    let p = publish_threshold(&d.join("publisher"), &app, &a, &chain, "1.0.0", vec![]);
    assert_eq!(u64_field(&p, "signatures"), 1, "{p}");
    let fetcher = d.join("fetcher");
    let (run, v) = verify_json(&fetcher, &token(&p), vec![]);
    assert_eq!(run.code, Some(1), "untrusted without --trust:\n{run}");
    assert!(
        str_field(&v, "policy_error").contains("not a trusted publisher"),
        "{v}"
    );
    for trust in [chain.clone().into_os_string(), fingerprint.into()] {
        let (run, v) = verify_json(&fetcher, &token(&p), vec!["--trust".into(), trust]);
        assert_eq!(run.code, Some(0), "{run}");
        assert_eq!(v["valid"], true, "{v}");
    }
    // Nothing was trusted for good.
    assert_eq!(swarm_json(&fetcher, ["trust", "ls"])["trusted"], json!([]));
}

#[test]
fn signing_through_a_running_node_records_the_sequence_in_its_store() {
    let tmp = tempdir();
    let d = tmp.path();
    let [a, b, pointer] = ["a", "b", "pointer"].map(|n| keygen(d, n));
    let (chain, _) = signed_chain(d, &[&a, &b], 2, &pointer);
    let app = make_app(&d.join("src"), 0);
    let p1 = publish_threshold(&d.join("m1"), &app, &a, &chain, "1.0.0", vec![]);
    // Machine 2 runs a node: the signature goes through it.
    let m2 = d.join("m2");
    let _node = Node::start(&m2);
    let s = sign(&m2, &token(&p1), &b, vec![]);
    assert_eq!(
        (&s["complete"], &s["signatures"]),
        (&json!(true), &json!(2)),
        "{s}"
    );
    // Its store knows it signed sequence 1: its next release is 2.
    let app2 = make_app(&d.join("src2"), 1);
    let p2 = publish_threshold(&m2, &app2, &b, &chain, "1.1.0", vec![]);
    assert_eq!(u64_field(&p2, "seq"), 2, "{p2}");
}
