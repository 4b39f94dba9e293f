//! End to end: the example application, built as v1 and v2, updates itself
//! from a swarm on 127.0.0.1. A publisher node in this process publishes
//! v2 on a local DHT; v1 runs as a real process, finds v2, fetches it over
//! QUIC, installs it and restarts as v2. A v2 that exits non-zero at start
//! is rolled back to v1, and not installed again.

// Helpers of a test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use swarm_engine::discovery::LocalDht;
use swarm_engine::node::Node;
use swarm_engine::release::SecretKey;
use swarm_engine::store::PublishOptions;

const V1: &str = env!("CARGO_BIN_EXE_app-v1");
const V2: &str = env!("CARGO_BIN_EXE_app-v2");
const V2_BROKEN: &str = env!("CARGO_BIN_EXE_app-v2-broken");

/// A local DHT, a publisher node on it, and a place for the application.
struct World {
    dht: LocalDht,
    publisher: Node,
    key: SecretKey,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let dht = LocalDht::start(5).unwrap();
        let publisher = Node::builder()
            .listen(([127, 0, 0, 1], 0).into())
            .dht(dht.config())
            .spawn()
            .await
            .unwrap();
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
        Self {
            dht,
            publisher,
            key: SecretKey::from_seed(&seed),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Publish `exe` as `version` of the example on the DHT.
    async fn publish(&self, exe: &str, version: &str) {
        self.publish_from(exe, version, Vec::new()).await;
    }

    /// The same, with patches from the releases `from`; its root.
    async fn publish_from(
        &self,
        exe: &str,
        version: &str,
        from: Vec<swarm_engine::Hash>,
    ) -> swarm_engine::Hash {
        let mut opts =
            PublishOptions::new(swarm_selfupdate_example::NAME, version.parse().unwrap());
        opts.delta_from = from;
        self.publisher
            .publish(&self.key, &[exe], &opts)
            .await
            .unwrap()
            .added
            .root
    }

    /// Install `exe` as the application, `bin/app`.
    fn install(&self, exe: &str) -> PathBuf {
        let bin = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let app = bin.join("app");
        std::fs::copy(exe, &app).unwrap();
        app
    }

    /// The application's arguments.
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--data".to_owned(),
            self.dir.path().join("data").display().to_string(),
            "--publisher".to_owned(),
            self.key.public().to_string(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--trial-starts".to_owned(),
            "2".to_owned(),
        ];
        for b in self.dht.config().bootstrap {
            a.push("--bootstrap".to_owned());
            a.push(b);
        }
        a
    }

    /// Run `program` with `args` to the end (at most two minutes).
    async fn run(&self, program: &Path, args: Vec<String>) -> Run {
        let program = program.to_path_buf();
        tokio::task::spawn_blocking(move || run_bounded(Command::new(program).args(args)))
            .await
            .unwrap()
    }

    async fn run_app(&self, app: &Path) -> Run {
        self.run(app, self.args()).await
    }
}

/// What a run of the application printed, and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run_bounded(cmd: &mut Command) -> Run {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    // A watchdog: a hung application fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
        }
    });
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let _ = tx.send(());
    watchdog.join().unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn same_file(a: &Path, b: &str) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// Files beside the application other than itself.
fn leftovers(app: &Path) -> Vec<String> {
    let name = app.file_name().unwrap().to_string_lossy().into_owned();
    let mut v: Vec<String> = std::fs::read_dir(app.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| *n != name)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_updates_itself_to_v2_and_runs_as_v2() {
    let w = World::new().await;
    assert!(
        !same_file(Path::new(V1), V2),
        "v1 and v2 are different builds"
    );
    w.publish(V2, "2.0.0").await;
    let app = w.install(V1);

    let r = w.run_app(&app).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    // v1 ran, found v2, installed it and restarted as v2, on trial, which
    // marked itself healthy and found nothing newer.
    let expected = [
        "app 1.0.0 running",
        "found 2.0.0",
        "updated to 2.0.0; restarting",
        "on trial: start 1 of 2 of 2.0.0",
        "app 2.0.0 running",
        "up to date",
    ];
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines, expected, "{r:?}");
    assert!(same_file(&app, V2), "bin/app is v2");
    assert!(same_file(&app.with_file_name("app.previous"), V1));
    assert_eq!(
        leftovers(&app),
        ["app.previous", "app.update-history"],
        "nothing staged or downloaded remains"
    );

    // From now on it simply runs as v2.
    let r = w.run_app(&app).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["app 2.0.0 running", "up to date"]
    );
}

/// Issue 18, done when: with v2 published with a patch from v1, the
/// application running v1 updates by the patch from its own executable:
/// the same steps, about a tenth of the bytes (the two builds differ by a
/// version string, so far less here), and v2 byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_updates_itself_to_v2_by_a_patch_moving_a_small_part() {
    let w = World::new().await;
    let v1 = w.publish_from(V1, "1.0.0", Vec::new()).await;
    w.publish_from(V2, "2.0.0", vec![v1]).await;
    let app = w.install(V1);
    let r = w.run_app(&app).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.contains("updated to 2.0.0; restarting") && r.stdout.contains("app 2.0.0 running"),
        "{r:?}"
    );
    assert!(same_file(&app, V2), "bin/app is v2");
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("downloaded "))
        .unwrap_or_else(|| panic!("no download line: {r:?}"));
    assert!(
        line.ends_with("(a patch from the installed version)"),
        "{line}"
    );
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (moved, size) = (n[0], n[1]);
    assert_eq!(size, std::fs::metadata(V2).unwrap().len(), "{line}");
    assert!(moved < size / 10, "{moved} bytes moved for {size}: {line}");
    eprintln!("note: the update moved {moved} bytes for a file of {size}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_that_fails_at_start_is_rolled_back_to_v1() {
    let w = World::new().await;
    w.publish(V2_BROKEN, "2.0.0").await;
    let app = w.install(V1);

    // v1 installs the broken v2 and restarts as it; it fails.
    let r = w.run_app(&app).await;
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stdout.contains("updated to 2.0.0; restarting"), "{r:?}");
    assert!(r.stderr.contains("app 2.0.0: cannot start"), "{r:?}");
    assert!(same_file(&app, V2_BROKEN));

    // A supervisor starts it again: its second and last trial start fails.
    let r = w.run_app(&app).await;
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(
        r.stdout.contains("on trial: start 2 of 2 of 2.0.0"),
        "{r:?}"
    );

    // The next start rolls back and runs v1, which does not take 2.0.0
    // again.
    let r = w.run_app(&app).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stderr
            .contains("version 2.0.0 did not start; rolled back"),
        "{r:?}"
    );
    assert!(r.stdout.contains("app 1.0.0 running"), "{r:?}");
    assert!(
        r.stderr.contains("rolled back on this machine")
            && r.stderr.contains("still running 1.0.0"),
        "{r:?}"
    );
    assert!(same_file(&app, V1), "bin/app is v1 again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_while_staging_leaves_v1_running_and_nothing_behind() {
    // A small file system of its own for the application's directory: a
    // tmpfs in a user and mount namespace (no root needed).
    let probe = Command::new("unshare")
        .args(["-Urm", "true"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !probe {
        eprintln!(
            "SKIPPED: `unshare -Urm` is not permitted here, so no small file system can be made"
        );
        return;
    }
    let w = World::new().await;
    w.publish(V2, "2.0.0").await;
    let bin = w.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let size = |p: &str| std::fs::metadata(p).unwrap().len();
    // Room for v1 and the downloaded v2, not for the staged copy of v2.
    let room = size(V1) + size(V2) + (256 << 10);
    let app = bin.join("app");
    let args: Vec<String> = w.args().into_iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "set -e\n\
         mount -t tmpfs -o size={room} tmpfs '{bin}'\n\
         cp '{V1}' '{app}'\n\
         set +e\n\
         '{app}' {args}\n\
         echo \"exit=$?\"\n\
         echo \"left: $(ls -A '{bin}' | tr '\\n' ' ')\"\n\
         cmp -s '{app}' '{V1}' && echo 'app is v1'\n",
        bin = bin.display(),
        app = app.display(),
        args = args.join(" "),
    );
    let r = w
        .run(
            Path::new("unshare"),
            vec!["-Urm".into(), "sh".into(), "-c".into(), script],
        )
        .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("app 1.0.0 running"), "{r:?}");
    assert!(r.stdout.contains("exit=0"), "{r:?}");
    // The error says what happened, and v1 goes on.
    assert!(
        r.stderr.contains("update failed") && r.stderr.contains("No space left on device"),
        "{r:?}"
    );
    assert!(r.stderr.contains("still running 1.0.0"), "{r:?}");
    assert!(r.stdout.contains("app is v1"), "{r:?}");
    // Only the application itself (and the update history) remain.
    let left = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("left: "))
        .unwrap();
    for f in left.split_whitespace() {
        assert!(
            f == "app" || f == "app.update-history",
            "left behind: {f}; {r:?}"
        );
    }
}

/// Issue 20, done when: `watch()` drives the application, which waits out
/// its verification delay. v1 runs as a long-lived process watching, kept
/// connected to the publisher; v2 is published while it runs, reaches it
/// by gossip, is taken only once it is as old as the delay, and v1 then
/// installs it and restarts as v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_v1_takes_v2_from_gossip_after_its_verification_delay() {
    let w = World::new().await;
    let app = w.install(V1);
    let mut args = w.args();
    let peer = w.publisher.addr().unwrap();
    args.extend([
        "--watch".to_owned(),
        "6".to_owned(),
        "--delay".to_owned(),
        "2".to_owned(),
        "--peer".to_owned(),
        format!("{}@{}", peer.id.unwrap(), peer.addr),
    ]);
    let running = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || run_bounded(Command::new(app).args(args)))
    };
    // Published once v1 is up (gossip also offers the newest to a peer
    // that begins to follow, so the order does not matter).
    tokio::time::sleep(Duration::from_millis(700)).await;
    w.publish(V2, "2.0.0").await;
    let r = running.await.unwrap();
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    let at = |l: &str| lines.iter().position(|x| *x == l);
    let (running1, found, updated, running2) = (
        at("app 1.0.0 running"),
        at("found 2.0.0"),
        at("updated to 2.0.0; restarting"),
        at("app 2.0.0 running"),
    );
    assert!(
        running1 < found && found < updated && updated < running2 && running2.is_some(),
        "{r:?}"
    );
    // Gossip brought it (the DHT may have too).
    assert!(lines.contains(&"heard of 2.0.0 by gossip"), "{r:?}");
    // Taken only once as old as the delay.
    let age: u64 = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("taking 2.0.0: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(age >= 2, "taken at {age} s old: {r:?}");
    assert!(same_file(&app, V2), "bin/app is v2");
    // v2 watched on and found nothing newer.
    assert_eq!(lines.last(), Some(&"watched 6 s; no update"), "{r:?}");
}
