//! Bounded inputs through the binary: key and config files, key file
//! modes, durations and limits, foreign store directories, and export
//! destinations checked before any work (issue 12).

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::tempdir;

/// A sparse file of `len` bytes, `mode`.
fn sparse(path: &Path, len: u64, mode: u32) {
    let f = fs::File::create(path).expect("create");
    f.set_len(len).expect("set_len");
    set_mode(path, mode);
}

fn keygen(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("publisher.key");
    swarm_ok(&dir.join("unused"), args!["keygen", "-o", key]);
    key
}

fn publish(store: &Path, key: &Path, what: &Path, extra: &[&str]) -> String {
    let mut a = args![
        "publish",
        what,
        "--key",
        key,
        "--name",
        "app",
        "--version",
        "1.0.0"
    ];
    a.extend(extra.iter().map(Into::into));
    swarm_err(store, a)
}

/// Regression: `publish --key` read the whole file first (`/dev/zero`
/// grew to 9 GB); the config file likewise.
#[test]
fn huge_key_and_config_files_are_refused_before_they_are_read() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let content = tmp.path().join("app.txt");
    write_file(&content, b"app", 0o644);
    let big_key = tmp.path().join("big.key");
    sparse(&big_key, 64 << 20, 0o600);
    let msg = publish(&store, &big_key, &content, &[]);
    assert!(msg.contains(&big_key.display().to_string()), "{msg}");
    assert!(msg.contains("larger than 4096 bytes"), "{msg}");

    let big_config = tmp.path().join("node.toml");
    sparse(&big_config, 64 << 20, 0o644);
    let msg = swarm_err(&store, args!["node", "--config", big_config]);
    assert!(msg.contains(&big_config.display().to_string()), "{msg}");
    assert!(msg.contains("larger than 1048576 bytes"), "{msg}");
    // A device that never ends: refused for its mode, without reading it.
    let msg = publish(&store, Path::new("/dev/zero"), &content, &[]);
    assert!(msg.contains("/dev/zero"), "{msg}");
}

/// Regression: a key file of mode 0644 or 0666 was used without a word.
/// It is refused, as ssh refuses such keys, with the fix in the message.
#[test]
fn a_key_file_others_can_read_is_refused_with_the_chmod_to_run() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let content = tmp.path().join("app.txt");
    write_file(&content, b"app", 0o644);
    let key = keygen(tmp.path());
    let mode = fs::metadata(&key).expect("stat").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    for loose in [0o644, 0o666, 0o640] {
        set_mode(&key, loose);
        let msg = publish(&store, &key, &content, &[]);
        let path = key.display().to_string();
        assert!(msg.contains(&format!("mode {loose:04o}")), "{msg}");
        assert!(msg.contains(&format!("chmod 600 {path}")), "{msg}");
    }
    set_mode(&key, 0o600);
    swarm_ok(
        &store,
        args![
            "publish",
            content,
            "--key",
            key,
            "--name",
            "app",
            "--version",
            "1.0.0"
        ],
    );
}

/// Regression: `--expires 18446744073709551615s` wrapped around to a
/// release that had expired long ago.
#[test]
fn durations_that_overflow_or_are_zero_are_refused() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let content = tmp.path().join("app.txt");
    write_file(&content, b"app", 0o644);
    let key = keygen(tmp.path());
    for (expires, why) in [
        ("18446744073709551615s", "end of time"),
        ("18446744073709551616s", "too large"),
        ("999999999999999999w", "too large"),
        ("0s", "zero"),
    ] {
        let msg = publish(&store, &key, &content, &["--expires", expires]);
        assert!(msg.contains(why), "{expires}: {msg}");
    }
    // Nothing was published on the way.
    assert!(pinned_roots(&store).is_empty());
}

/// Regression: `max_connections = 0` and `--max-connections 0` were
/// accepted (a node that refuses everyone); zero peers likewise.
#[test]
fn zero_limits_are_refused_from_flags_and_the_config_file() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    for (flag, value) in [
        ("--max-connections", "0"),
        ("--max-connections", "18446744073709551616"),
        ("--max-peers", "0"),
        ("--upload-limit", "0"),
    ] {
        // Bounded: accepted, it would start a node that runs until stopped.
        let a = args!["node", "--listen", "127.0.0.1:0", flag, value];
        let run = swarm_within(&store, &a, Duration::from_secs(20));
        assert_no_panic(&run);
        assert!(!run.success(), "{run}");
        assert!(run.stderr.contains(flag), "{run}");
    }
    let run = swarm(&store, args!["fetch", "0".repeat(64), "--max-peers", "0"]);
    assert!(
        !run.success() && run.stderr.contains("--max-peers"),
        "{run}"
    );
    for (line, key) in [
        ("max_connections = 0", "max_connections"),
        ("max_peers = 0", "max_peers"),
        ("upload_limit = \"0\"", "upload_limit"),
    ] {
        let config = tmp.path().join("node.toml");
        write_file(&config, line.as_bytes(), 0o644);
        let a = args!["node", "--listen", "127.0.0.1:0", "--config", config];
        let msg = error_message(&swarm_within(&store, &a, Duration::from_secs(20)));
        assert!(msg.contains(key), "{line}: {msg}");
        assert!(msg.contains(&config.display().to_string()), "{msg}");
    }
}

/// Regression: `--store` on any directory made it a store, and later
/// clean-ups deleted its files that looked like store files.
#[test]
fn a_directory_that_is_not_a_store_is_refused_and_left_alone() {
    let tmp = tempdir();
    let home = tmp.path().join("home");
    write_file(&home.join("notes.txt"), b"mine", 0o644);
    write_file(&home.join("tmp/1.data"), b"also mine", 0o644);
    let before = dir_names(&home);
    for cmd in [
        args!["ls"],
        args!["gc"],
        args!["add", tmp.path().join("home/notes.txt")],
    ] {
        let msg = swarm_err(&home, cmd);
        assert!(msg.contains(&home.display().to_string()), "{msg}");
        assert!(msg.contains("not a swarm store"), "{msg}");
    }
    assert_eq!(dir_names(&home), before);
    assert_eq!(
        fs::read(home.join("tmp/1.data")).expect("kept"),
        b"also mine"
    );
    assert!(!home.join("swarm.redb").exists());
    // An empty directory, or a missing one, becomes a store.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    swarm_ok(&empty, args!["gc"]);
    swarm_ok(&tmp.path().join("new/store"), args!["gc"]);
    // And a store stays a store.
    swarm_ok(&empty, args!["gc"]);
}

/// Regression: `swarm export -o STORE/swarm.redb --force` overwrote the
/// store's database.
#[test]
fn export_into_the_store_is_refused_and_the_store_survives() {
    let tmp = tempdir();
    let store = tmp.path().join("store");
    let file = tmp.path().join("f.bin");
    write_file(&file, &pseudo_random(100_000, 3), 0o644);
    let root = add(&store, &[&file]).root;
    let db = store.join("swarm.redb");
    let original = fs::read(&file).expect("read the original");
    for out in [db.clone(), store.join("blobs"), store.join("new/f.bin")] {
        let msg = swarm_err(&store, args!["export", root, "-o", out, "--force"]);
        assert!(msg.contains("inside the store"), "{msg}");
    }
    // Not overwritten with the export (compared without printing either).
    assert!(fs::read(&db).expect("read the database") != original);
    assert!(!store.join("new").exists());
    assert_check_ok(&store);
    assert_exports_as(&store, &root, &file);
}
