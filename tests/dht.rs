//! End-to-end discovery: real `swarm` processes find each other through a
//! DHT that this test runs on 127.0.0.1 (`LocalDht`); nothing
//! touches the internet.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// `swarm --store STORE` with the DHT on, bootstrapping from `bootstrap` only.
fn dht_cmd(store: &Path, bootstrap: &[String]) -> Command {
    let mut c = swarm_cmd(store);
    c.env("SWARM_NO_DHT", "0")
        .env("SWARM_BOOTSTRAP", bootstrap.join(","));
    c
}

fn run_json(mut c: Command) -> Value {
    let out = c.arg("--json").output().expect("run swarm");
    assert!(
        out.status.success(),
        "{:?} failed:\n{}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn run_err(mut c: Command) -> String {
    let out = c.output().expect("run swarm");
    assert!(!out.status.success(), "{c:?} unexpectedly succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Start a DHT node (killed on drop) and wait (bounded) until it says it
/// announced its roots.
fn start_node(store: &Path, bootstrap: &[String]) -> NodeChild {
    let mut c = dht_cmd(store, bootstrap);
    c.args(["--json", "node", "--listen", "127.0.0.1:0"]);
    let (node, _) = spawn_node(c, store, "announced");
    let text = node.log_text();
    assert!(text.contains("announced 2 pinned roots"), "{text}");
    node
}

/// Spawn `c` (a `--json node` command; killed on drop); wait (bounded) for
/// its address on stdout and for `until` in its stderr. Returns the node and
/// its address.
fn spawn_node(mut c: Command, store: &Path, until: &str) -> (NodeChild, String) {
    let log = store.with_extension("node-stderr");
    let node = NodeChild::spawn(&mut c, &log, LogMode::Truncate, 1, Duration::from_secs(10));
    let addr = node.json_addr();
    node.wait_for_log(until, Duration::from_secs(30));
    (node, addr)
}

#[test]
fn releases_are_published_resolved_and_fetched_through_the_dht_alone() {
    let testnet = swarm_engine::discovery::LocalDht::start(10).expect("local DHT");
    let bs = testnet.config().bootstrap;
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = tmp.path().join("pub.key");
    let k = run_json({
        let mut c = swarm_cmd(&tmp.path().join("unused"));
        c.args(["keygen", "-o"]).arg(&key);
        c
    });
    let pk = k["public_key"].as_str().expect("key").to_owned();

    // Two releases of one app; each publish puts its pointer on the DHT.
    let app = tmp.path().join("app");
    fs::create_dir_all(&app).expect("mkdir");
    let pubstore = tmp.path().join("publisher");
    let mut tokens = Vec::new();
    for (v, content) in [("1.0.0", 100_000), ("1.1.0", 200_000)] {
        fs::write(app.join("bin"), pseudo_random(content, 5)).expect("write");
        let mut c = dht_cmd(&pubstore, &bs);
        c.args(["publish"])
            .arg(&app)
            .args(["--key"])
            .arg(&key)
            .args(["--name", "app", "--version", v]);
        let p = run_json(c);
        assert_eq!(p["dht"], true, "{p}");
        tokens.push(p["token"].as_str().expect("token").to_owned());
    }

    // resolve returns the newer of the two publishes.
    let fetcher = tmp.path().join("fetcher");
    let pointer = format!("{pk}/app");
    let mut c = dht_cmd(&fetcher, &bs);
    c.args(["resolve", &pointer]);
    let r = run_json(c);
    assert_eq!(r["seq"], 2, "{r}");
    assert_eq!(r["token"], tokens[1].as_str(), "{r}");

    // The publisher's node announces both roots; fetching needs no --peer.
    let _node = start_node(&pubstore, &bs);
    // Listing the pointer's newest release fetches only its manifest.
    let mut c = dht_cmd(&tmp.path().join("lister"), &bs);
    c.args(["ls", &pointer]);
    let listed = run_json(c);
    assert_eq!(listed["files"][0]["path"], "app/bin", "{listed}");
    assert_eq!(listed["files"][0]["size"], 200_000, "{listed}");
    let out = tmp.path().join("out");
    let mut c = dht_cmd(&fetcher, &bs);
    c.args(["fetch", &pointer, "--trust", &pk, "-o"]).arg(&out);
    let f = run_json(c);
    assert_eq!(f["peers"].as_array().map(Vec::len), Some(1), "{f}");
    assert_eq!(
        fs::read(out.join("app").join("bin")).expect("fetched file"),
        pseudo_random(200_000, 5)
    );

    // A replayed older release is refused by the rollback policy.
    let mut c = dht_cmd(&fetcher, &bs);
    c.args(["fetch", &tokens[0], "--trust", &pk, "-o"])
        .arg(tmp.path().join("old"));
    let err = run_err(c);
    assert!(err.contains("refusing a rollback"), "{err}");

    // A restarted node announces again, and a new fetcher finds it.
    drop(_node);
    let _node = start_node(&pubstore, &bs);
    let mut c = dht_cmd(&tmp.path().join("late"), &bs);
    c.args(["fetch", &tokens[1], "--trust", &pk, "--no-export"]);
    let late = run_json(c);
    assert_eq!(late["peers"].as_array().map(Vec::len), Some(1), "{late}");

    // With the DHT off and no --peer there is nobody to ask.
    let mut c = swarm_cmd(&tmp.path().join("offline"));
    c.args(["fetch", &tokens[1], "--trust", &pk, "--no-export"]);
    let err = run_err(c);
    assert!(err.contains("the DHT is not in use"), "{err}");
}

/// A node configured to seed a release fetches it from a static peer, then
/// serves it; restarted, it keeps serving without fetching again.
#[test]
fn a_node_seeds_what_its_config_lists() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = tmp.path().join("pub.key");
    let k = run_json({
        let mut c = swarm_cmd(&tmp.path().join("unused"));
        c.args(["keygen", "-o"]).arg(&key);
        c
    });
    let pk = k["public_key"].as_str().expect("key").to_owned();
    let app = tmp.path().join("app");
    fs::create_dir_all(&app).expect("mkdir");
    fs::write(app.join("bin"), pseudo_random(150_000, 9)).expect("write");
    let pubstore = tmp.path().join("publisher");
    let p = run_json({
        let mut c = swarm_cmd(&pubstore);
        c.args(["publish"])
            .arg(&app)
            .args(["--key"])
            .arg(&key)
            .args(["--name", "app", "--version", "2.0.0"]);
        c
    });
    let token = p["token"].as_str().expect("token").to_owned();
    let (_origin, origin_addr) = {
        let mut c = swarm_cmd(&pubstore);
        c.args(["--json", "node", "--listen", "127.0.0.1:0"]);
        spawn_node(c, &pubstore, "")
    };

    let config = tmp.path().join("node.toml");
    fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nno_dht = true\npeers = [\"{origin_addr}\"]\n\
             trust = [\"{pk}\"]\nseed = [\"{token}\"]\n"
        ),
    )
    .expect("write config");
    let seeder = tmp.path().join("seeder");
    let start_seeder = || {
        let mut c = swarm_cmd(&seeder);
        c.args(["--json", "node", "--config"]).arg(&config);
        c
    };
    let (node, seeder_addr) = spawn_node(start_seeder(), &seeder, "and serving it");

    // A third node gets the release from the seeder alone.
    let out = run_json({
        let mut c = swarm_cmd(&tmp.path().join("third"));
        c.args([
            "fetch",
            &token,
            "--trust",
            &pk,
            "--no-export",
            "--peer",
            &seeder_addr,
        ]);
        c
    });
    assert_eq!(out["peers"].as_array().map(Vec::len), Some(1), "{out}");

    // Restarted, it serves what it kept and fetches nothing again.
    drop(node);
    let (node, seeder_addr) = spawn_node(start_seeder(), &seeder, "already stored");
    let text = fs::read_to_string(&node.log).unwrap_or_default();
    assert!(!text.contains("fetched"), "it fetched again:\n{text}");
    run_json({
        let mut c = swarm_cmd(&tmp.path().join("fourth"));
        c.args([
            "fetch",
            &token,
            "--trust",
            &pk,
            "--no-export",
            "--peer",
            &seeder_addr,
        ]);
        c
    });
}

/// The local addresses of the UDP sockets process `pid` holds, from
/// /proc (IPv4 only; `None` where /proc does not show them).
fn udp_sockets(pid: u32) -> Option<Vec<std::net::SocketAddrV4>> {
    let mut inodes = Vec::new();
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let link = fs::read_link(fd.ok()?.path()).ok()?;
        let link = link.to_string_lossy();
        if let Some(n) = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
        {
            inodes.push(n.to_owned());
        }
    }
    let table = fs::read_to_string("/proc/net/udp").ok()?;
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 || !inodes.iter().any(|i| i == cols[9]) {
            continue;
        }
        let (ip, port) = cols[1].split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        // The kernel prints the address in host byte order.
        let ip = std::net::Ipv4Addr::from(ip.to_le_bytes());
        out.push(std::net::SocketAddrV4::new(ip, port));
    }
    Some(out)
}

/// The DHT socket binds the IP of --listen unless told otherwise, so a
/// node on loopback opens nothing on other interfaces.
#[test]
fn the_dht_socket_binds_the_listen_ip_or_what_dht_bind_says() {
    let testnet = swarm_engine::discovery::LocalDht::start(3).expect("local DHT");
    let bs = testnet.config().bootstrap;
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");

    let mut c = dht_cmd(&store, &bs);
    c.args(["--json", "node", "--listen", "127.0.0.1:0"]);
    let (node, _) = spawn_node(c, &store, "announced");
    let Some(socks) = udp_sockets(node.proc.pid()) else {
        eprintln!("SKIPPED: /proc does not show this process's sockets");
        return;
    };
    // The QUIC socket and the DHT's, both on 127.0.0.1.
    assert!(socks.len() >= 2, "{socks:?}");
    assert!(socks.iter().all(|s| s.ip().is_loopback()), "{socks:?}");
    drop(node);

    // An explicit address and port.
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("addr").port()
    };
    let mut c = dht_cmd(&store, &bs);
    c.args(["--json", "node", "--listen", "127.0.0.1:0"])
        .args(["--dht-bind", &format!("127.0.0.1:{port}")]);
    let (node, _) = spawn_node(c, &store, "announced");
    let socks = udp_sockets(node.proc.pid()).expect("sockets");
    assert!(
        socks.contains(&std::net::SocketAddrV4::new([127, 0, 0, 1].into(), port)),
        "{socks:?}"
    );

    // A bad one is refused before anything starts.
    let mut c = dht_cmd(&tmp.path().join("other"), &bs);
    c.args(["node", "--dht-bind", "::1"]);
    let err = run_err(c);
    assert!(err.contains("IPv4"), "{err}");
}

/// `swarm keygen -o DIR/NAME.key`; its public key.
fn keygen_in(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let file = dir.join(format!("{name}.key"));
    let k = run_json({
        let mut c = swarm_cmd(&dir.join("unused"));
        c.args(["keygen", "-o"]).arg(&file);
        c
    });
    (file, k["public_key"].as_str().expect("key").to_owned())
}

/// Publishing from a second machine takes its sequence from the DHT
/// pointer, so fetchers never see two releases under one sequence; and a
/// threshold release goes on the DHT once its last signer signs it.
#[test]
fn a_second_publishing_machine_continues_the_sequence_from_the_dht() {
    let testnet = swarm_engine::discovery::LocalDht::start(10).expect("local DHT");
    let bs = testnet.config().bootstrap;
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let (key, pk) = keygen_in(d, "pub");
    let app = d.join("app");
    fs::create_dir_all(&app).expect("mkdir");
    let publish = |store: &str, version: &str, content: usize, extra: &[&str]| {
        fs::write(app.join("bin"), pseudo_random(content, 7)).expect("write");
        let mut c = dht_cmd(&d.join(store), &bs);
        c.args(["publish"])
            .arg(&app)
            .args(["--key"])
            .arg(&key)
            .args(["--name", "app", "--version", version])
            .args(extra);
        c
    };
    let first = run_json(publish("machine-1", "1.0.0", 10_000, &[]));
    assert_eq!(
        (first["seq"].as_u64(), &first["dht"]),
        (Some(1), &Value::Bool(true)),
        "{first}"
    );
    // A fresh store on another machine: sequence 2, from the DHT.
    let second = run_json(publish("machine-2", "1.1.0", 20_000, &[]));
    assert_eq!(
        (second["seq"].as_u64(), &second["dht"]),
        (Some(2), &Value::Bool(true)),
        "{second}"
    );
    // A lower version than the DHT's newest is refused, unless allowed.
    let err = run_err(publish("machine-3", "1.0.5", 30_000, &[]));
    assert!(err.contains("is not above 1.1.0"), "{err}");
    let third = run_json(publish(
        "machine-3",
        "1.0.5",
        30_000,
        &["--allow-downgrade"],
    ));
    assert_eq!(third["seq"], 3, "{third}");
    // A sequence already used is refused.
    let err = run_err(publish("machine-4", "2.0.0", 40_000, &["--seq", "3"]));
    assert!(
        err.contains("sequence 3 is not past the newest already published (3)"),
        "{err}"
    );
    // A fetcher that took the first takes the pointer's newest: no alarm.
    let fetcher = d.join("fetcher");
    let mut c = dht_cmd(&fetcher, &bs);
    c.args([
        "verify",
        first["token"].as_str().expect("token"),
        "--trust",
        &pk,
    ]);
    run_json(c);
    let mut c = dht_cmd(&fetcher, &bs);
    c.args(["resolve", &format!("{pk}/app")]);
    let r = run_json(c);
    assert_eq!(r["seq"], 3, "{r}");
    for t in [&first, &second, &third] {
        let mut c = dht_cmd(&fetcher, &bs);
        c.args([
            "verify",
            t["token"].as_str().expect("token"),
            "--trust",
            &pk,
        ]);
        let v = run_json(c);
        assert_eq!(v["valid"], true, "{v}");
    }

    // A 2-of-2 publisher: the first signer cannot put it, the second does.
    let (a, a_pk) = keygen_in(d, "a");
    let (b, b_pk) = keygen_in(d, "b");
    let (pointer, pointer_pk) = keygen_in(d, "pointer");
    let chain = d.join("chain.txt");
    let mut c = swarm_cmd(&d.join("unused"));
    c.args([
        "root",
        "init",
        "--key",
        &a_pk,
        "--key",
        &b_pk,
        "--threshold",
        "2",
    ])
    .args(["--pointer", &pointer_pk, "-o"])
    .arg(&chain);
    run_json(c);
    for k in [&a, &b] {
        let mut c = swarm_cmd(&d.join("unused"));
        c.args(["root", "sign"]).arg(&chain).arg("--key").arg(k);
        run_json(c);
    }
    let threshold_publish = |store: &str, signer: &Path, version: &str| {
        let mut c = dht_cmd(&d.join(store), &bs);
        c.args(["publish"])
            .arg(&app)
            .arg("--key")
            .arg(signer)
            .arg("--root")
            .arg(&chain)
            .args(["--name", "tool", "--version", version]);
        run_json(c)
    };
    let sign = |store: &str, token: &str, signer: &Path| {
        let mut c = dht_cmd(&d.join(store), &bs);
        c.args(["sign", token, "--key"])
            .arg(signer)
            .arg("--pointer-key")
            .arg(&pointer);
        run_json(c)
    };
    let p1 = threshold_publish("machine-1", &a, "1.0.0");
    assert_eq!(
        (p1["seq"].as_u64(), &p1["dht"]),
        (Some(1), &Value::Bool(false)),
        "{p1}"
    );
    let s1 = sign("machine-2", p1["token"].as_str().expect("token"), &b);
    assert_eq!(
        (&s1["complete"], &s1["dht"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{s1}"
    );
    // Machine 2 publishes the next: sequence 2 from the DHT; machine 1 signs.
    let p2 = threshold_publish("machine-2", &b, "1.1.0");
    assert_eq!(p2["seq"], 2, "{p2}");
    let s2 = sign("machine-1", p2["token"].as_str().expect("token"), &a);
    assert_eq!(s2["dht"], true, "{s2}");
    let mut c = dht_cmd(&fetcher, &bs);
    c.args(["trust", "add"]).arg(&chain);
    run_json(c);
    let mut c = dht_cmd(&fetcher, &bs);
    c.args(["resolve", &format!("{pointer_pk}/tool")]);
    let r = run_json(c);
    assert_eq!(r["seq"], 2, "{r}");
    for t in [&s1, &s2] {
        let mut c = dht_cmd(&fetcher, &bs);
        c.args(["verify", t["token"].as_str().expect("token")]);
        let v = run_json(c);
        assert_eq!(v["valid"], true, "{v}");
    }
    // The pointer the DHT holds verifies too, with the chain trusted.
    let mut c = dht_cmd(&fetcher, &bs);
    c.args(["verify", r["token"].as_str().expect("token")]);
    let v = run_json(c);
    assert_eq!(
        (&v["valid"], &v["signatures"]),
        (&Value::Bool(true), &Value::from(2)),
        "{v}"
    );

    // b is rotated out for c. The fetcher knows only root 1: what it
    // resolves comes with root 2 from the DHT, and verifies.
    let (cc, c_pk) = keygen_in(d, "c");
    let mut c = swarm_cmd(&d.join("unused"));
    c.args(["root", "rotate"]).arg(&chain).args([
        "--key",
        &a_pk,
        "--key",
        &c_pk,
        "--threshold",
        "2",
    ]);
    run_json(c);
    for k in [&a, &b, &cc] {
        let mut c = swarm_cmd(&d.join("unused"));
        c.args(["root", "sign"]).arg(&chain).arg("--key").arg(k);
        run_json(c);
    }
    let p3 = threshold_publish("machine-1", &a, "2.0.0");
    assert_eq!(p3["seq"], 3, "{p3}");
    let s3 = sign("machine-3", p3["token"].as_str().expect("token"), &cc);
    assert_eq!(s3["dht"], true, "{s3}");
    let mut c = dht_cmd(&d.join("fresh-reader"), &bs);
    c.args(["resolve", &format!("{pointer_pk}/tool")]);
    let r = run_json(c);
    assert_eq!(r["seq"], 3, "{r}");
    let mut c = dht_cmd(&fetcher, &bs);
    c.args(["verify", r["token"].as_str().expect("token")]);
    let v = run_json(c);
    assert_eq!(
        (&v["valid"], &v["root_version"]),
        (&Value::Bool(true), &Value::from(2)),
        "{v}"
    );
}
